package apiservertest

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/apiserver"
)

var _ apiserver.Backend = (*FakeBackend)(nil)

// Test credentials: TokensFile holds them in the tokens file format.
const (
	AdminToken    = "fake-admin-token-0123456789"
	ReadOnlyToken = "fake-read-token-0123456789"
	TokensFile    = "admin:" + AdminToken + ":ops-admin\nread-only:" + ReadOnlyToken + ":dashboard\n"
)

// Tokens returns TokensFile parsed.
func Tokens() *apiserver.Tokens {
	t, err := apiserver.ParseTokens([]byte(TokensFile))
	if err != nil {
		panic(err) // a constant: cannot fail
	}
	return t
}

// FakeStep is one scripted step of a fake operation.
type FakeStep struct {
	Name   string
	Delay  time.Duration
	Result string // "" means success
	Detail string
}

// FakeBackend is an in-memory Backend. Its exported fields may be set
// before the server starts; afterwards use the methods, which lock.
type FakeBackend struct {
	// SwitchoverSteps and FailoverSteps script the operations.
	SwitchoverSteps []FakeStep
	FailoverSteps   []FakeStep

	mu        sync.Mutex
	status    api.Status
	clusters  map[string]*api.Cluster
	history   map[string][]api.Operation
	checks    map[string]api.CheckReport
	settings  map[string]*api.ClusterSettings
	ops       map[string]*api.Operation
	leader    apiserver.Leadership
	failNext  map[string]error
	calls     []Call
	seq       int
	wg        sync.WaitGroup
	closing   chan struct{}
	closeOnce sync.Once
	now       func() time.Time
}

// Call records a call to a method that changes something.
type Call struct {
	Method string
	Caller string
	Arg    string
}

// NewFakeBackend returns a fake of a three-agent regent cluster (a1, a2,
// a3; a1 answers and leads) managing one replication cluster "main": db1
// primary, db2 and db3 replicas (db3 lagging 2.5 s), epoch 7, with one past
// failover in its history.
func NewFakeBackend() *FakeBackend {
	now := time.Date(2026, 11, 28, 13, 45, 0, 0, time.UTC)
	t := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
	yes, no := true, false
	lag0, lag25 := 0.0, 2.5
	qps1, qps2 := 412.5, 38.0
	conns1, conns2 := int64(57), int64(6)
	reach := func(errs ...string) map[string]api.Reachability {
		m := map[string]api.Reachability{}
		for i, a := range []string{"a1", "a2", "a3"} {
			if i < len(errs) && errs[i] != "" {
				m[a] = api.Reachability{OK: false, Error: errs[i], At: t(-time.Second)}
			} else {
				m[a] = api.Reachability{OK: true, At: t(-time.Second)}
			}
		}
		return m
	}
	main := &api.Cluster{
		Name: "main", Primary: "db1", Epoch: 7, Durability: api.DurabilitySemiSync,
		AutomaticFailover: api.AutomaticFailover{Enabled: true, Possible: true},
		Problems: []api.Problem{{Code: "ReplicaLagging", Description: "a replica lags behind its source",
			Priority: 60, Instances: []string{"db3"}, Reason: "db3 is 2.5s behind db1 (max_lag_on_failover is 10s)"}},
		Instances: []api.Instance{
			{Name: "db1", Address: "10.0.0.11:3306", Role: api.RolePrimary, Promotion: "neutral", Reachable: reach(),
				Version: "10.11.6-MariaDB-log", ServerID: 1, ReadOnly: &no, GTIDSummary: "0-1-5034",
				SemiSync: &api.SemiSync{SourceEnabled: true, SourceActive: true, Clients: 2, WaitPoint: "AFTER_SYNC"},
				QPS:      &qps1, Questions: 9_120_331, Connections: &conns1, LastProbe: t(-time.Second)},
			{Name: "db2", Address: "10.0.0.12:3306", Role: api.RoleReplica, Promotion: "prefer", Reachable: reach(),
				Version: "10.11.6-MariaDB-log", ServerID: 2, ReadOnly: &yes, GTIDSummary: "0-1-5034",
				Replication: &api.Replication{Source: "10.0.0.11:3306", SourceName: "db1", IOThread: api.ThreadRunning,
					SQLThread: api.ThreadRunning, LagSeconds: &lag0, AutoPosition: true},
				SemiSync: &api.SemiSync{ReplicaEnabled: true}, QPS: &qps2, Questions: 120_004, Connections: &conns2, LastProbe: t(-time.Second)},
			{Name: "db3", Address: "10.0.0.13:3306", Role: api.RoleReplica, Promotion: "neutral", Reachable: reach("", "", "timeout"),
				Version: "10.11.6-MariaDB-log", ServerID: 3, ReadOnly: &yes, GTIDSummary: "0-1-5031",
				Replication: &api.Replication{Source: "10.0.0.11:3306", SourceName: "db1", IOThread: api.ThreadRunning,
					SQLThread: api.ThreadRunning, LagSeconds: &lag25, AutoPosition: true},
				SemiSync: &api.SemiSync{ReplicaEnabled: true}, LastProbe: t(-time.Second)},
		},
		ObservedBy: "a1", ObservedAt: now.Add(-time.Second),
	}
	members := []api.Member{
		{ID: "a1", RaftAddr: "10.0.0.11:7000", APIAddr: "10.0.0.11:7443", Voter: true, State: "leader", LocalInstance: "db1", Self: true},
		{ID: "a2", RaftAddr: "10.0.0.12:7000", APIAddr: "10.0.0.12:7443", Voter: true, State: "follower", LastContact: t(-200 * time.Millisecond), LocalInstance: "db2"},
		{ID: "a3", RaftAddr: "10.0.0.13:7000", APIAddr: "10.0.0.13:7443", Voter: true, State: "follower", LastContact: t(-150 * time.Millisecond), LocalInstance: "db3"},
	}
	blocked := api.Duration(1700 * time.Millisecond)
	ended := now.Add(-48 * time.Hour).Add(1800 * time.Millisecond)
	past := api.Operation{
		ID: "op-0006", Cluster: "main", Kind: api.OpFailover, Trigger: "DeadPrimary",
		Target: "db1", Started: now.Add(-48 * time.Hour), Ended: &ended, OldPrimary: "db2", NewPrimary: "db1",
		EpochBefore: 6, EpochAfter: 7, GTIDAtPromotion: "0-2-4980", Result: api.ResultSuccess, WriteBlocked: &blocked,
		Steps: []api.Step{{Name: "fence-old-primary", Started: now.Add(-48 * time.Hour), Duration: api.Duration(300 * time.Millisecond), Result: api.ResultSuccess},
			{Name: "promote", Started: now.Add(-48 * time.Hour).Add(300 * time.Millisecond), Duration: api.Duration(900 * time.Millisecond), Result: api.ResultSuccess}},
	}
	f := &FakeBackend{
		SwitchoverSteps: []FakeStep{
			{Name: "check-target", Delay: 5 * time.Millisecond},
			{Name: "set-read-only", Delay: 5 * time.Millisecond, Detail: "db1 read_only=ON, 3 write sessions killed"},
			{Name: "wait-for-gtid", Delay: 10 * time.Millisecond},
			{Name: "promote", Delay: 5 * time.Millisecond},
			{Name: "route", Delay: 5 * time.Millisecond},
		},
		FailoverSteps: []FakeStep{
			{Name: "fence-old-primary", Delay: 5 * time.Millisecond},
			{Name: "promote", Delay: 5 * time.Millisecond},
			{Name: "route", Delay: 5 * time.Millisecond},
		},
		status: api.Status{AgentID: "a1", Version: "test", RaftState: "leader", IsLeader: true, LeaderID: "a1",
			LeaderAPIAddr: "10.0.0.11:7443", Term: 5, CommitIndex: 1042, AppliedIndex: 1042, Members: members,
			Clusters: []string{"main"}, Lease: &api.Lease{Held: true, Needed: true, LastQuorumContact: t(-100 * time.Millisecond)}, Time: now},
		clusters: map[string]*api.Cluster{"main": main},
		history:  map[string][]api.Operation{"main": {past}},
		checks: map[string]api.CheckReport{"main": {Cluster: "main", CheckedAt: now, Findings: []api.Finding{
			{Check: "gtid_mode", Instance: "db1", Severity: api.SeverityOK, Message: "GTID strict mode is on"},
			{Check: "replica_net_timeout", Instance: "db2", Severity: api.SeverityWarning, Message: "slave_net_timeout is 60s and no heartbeat period is set: a dead primary is noticed by this replica only after 60s",
				Fix: "SET GLOBAL slave_net_timeout=15 and add slave_net_timeout=15 to my.cnf; CHANGE MASTER TO MASTER_HEARTBEAT_PERIOD=1"},
			{Check: "read_only", Instance: "db3", Severity: api.SeverityError, Message: "read_only is OFF on a replica",
				Fix: "SET GLOBAL read_only=ON and put read_only=ON in my.cnf (only Regent turns it off on the primary)"},
		}}},
		ops:      map[string]*api.Operation{},
		leader:   apiserver.Leadership{IsLeader: true, LeaderID: "a1", LeaderAPIAddr: "10.0.0.11:7443"},
		failNext: map[string]error{},
		closing:  make(chan struct{}),
		now:      time.Now,
	}
	return f
}

// Close stops running operations' goroutines and waits for them.
func (f *FakeBackend) Close() {
	f.closeOnce.Do(func() { close(f.closing) })
	f.wg.Wait()
}

// SetLeadership changes what Leadership reports.
func (f *FakeBackend) SetLeadership(l apiserver.Leadership) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leader = l
	f.status.IsLeader = l.IsLeader
	f.status.LeaderID = l.LeaderID
	f.status.LeaderAPIAddr = l.LeaderAPIAddr
	if l.IsLeader {
		f.status.RaftState = "leader"
	} else {
		f.status.RaftState = "follower"
	}
}

// SetAgentID changes the answering agent's id in Status.
func (f *FakeBackend) SetAgentID(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status.AgentID = id
}

// SetCluster adds or replaces a cluster.
func (f *FakeBackend) SetCluster(c api.Cluster) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cc := c
	f.clusters[c.Name] = &cc
	if !slices.Contains(f.status.Clusters, c.Name) {
		f.status.Clusters = append(f.status.Clusters, c.Name)
		slices.Sort(f.status.Clusters)
	}
}

// SetHistory replaces a cluster's finished operations, newest first.
func (f *FakeBackend) SetHistory(cluster string, ops []api.Operation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.history[cluster] = slices.Clone(ops)
}

// SetStatus replaces the Status answer (its Clusters are kept).
func (f *FakeBackend) SetStatus(s api.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s.Clusters = f.status.Clusters
	f.status = s
}

// FailNext makes the next call of method (for example "Switchover") return
// err.
func (f *FakeBackend) FailNext(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext[method] = err
}

// Calls returns the recorded calls that change something.
func (f *FakeBackend) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// record notes a call and returns an injected error, if any. f.mu held.
func (f *FakeBackend) record(ctx context.Context, method, arg string) error {
	c, _ := apiserver.CallerFrom(ctx)
	f.calls = append(f.calls, Call{Method: method, Caller: c.Name, Arg: arg})
	if err, ok := f.failNext[method]; ok {
		delete(f.failNext, method)
		return err
	}
	return nil
}

func (f *FakeBackend) injected(method string) error {
	if err, ok := f.failNext[method]; ok {
		delete(f.failNext, method)
		return err
	}
	return nil
}

// Leadership implements apiserver.Operator.
func (f *FakeBackend) Leadership() apiserver.Leadership {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.leader
}

// Status implements apiserver.Reader.
func (f *FakeBackend) Status(context.Context) (api.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("Status"); err != nil {
		return api.Status{}, err
	}
	s := f.status
	s.Members = slices.Clone(s.Members)
	s.Clusters = slices.Clone(s.Clusters)
	return s, nil
}

// ClusterNames implements apiserver.Reader: the clusters of Status.
func (f *FakeBackend) ClusterNames(context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("ClusterNames"); err != nil {
		return nil, err
	}
	return slices.Sorted(slices.Values(f.status.Clusters)), nil
}

func (f *FakeBackend) cluster(name string) (*api.Cluster, error) {
	c, ok := f.clusters[name]
	if !ok {
		names := make([]string, 0, len(f.clusters))
		for n := range f.clusters {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, fmt.Errorf("no replication cluster %q here (clusters: %v): %w", name, names, apiserver.ErrNotFound)
	}
	return c, nil
}

// Cluster implements apiserver.Reader.
func (f *FakeBackend) Cluster(_ context.Context, name string) (api.Cluster, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("Cluster"); err != nil {
		return api.Cluster{}, err
	}
	c, err := f.cluster(name)
	if err != nil {
		return api.Cluster{}, err
	}
	out := cloneCluster(c)
	out.Unacknowledged = nil
	for _, op := range f.history[name] {
		if op.NeedsAck() {
			out.Unacknowledged = append(out.Unacknowledged, api.OperationRef{ID: op.ID, Kind: op.Kind, Started: op.Started, Target: op.Target})
		}
	}
	return out, nil
}

// History implements apiserver.Reader.
func (f *FakeBackend) History(_ context.Context, cluster string, limit int) ([]api.Operation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.cluster(cluster); err != nil {
		return nil, err
	}
	h := f.history[cluster]
	if len(h) > limit {
		h = h[:limit]
	}
	return slices.Clone(h), nil
}

// Check implements apiserver.Reader.
func (f *FakeBackend) Check(_ context.Context, cluster string) (api.CheckReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.cluster(cluster); err != nil {
		return api.CheckReport{}, err
	}
	return f.checks[cluster], nil
}

// Operation implements apiserver.Operator.
func (f *FakeBackend) Operation(_ context.Context, cluster, id string) (api.Operation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if op, ok := f.ops[id]; ok && op.Cluster == cluster {
		cp := *op
		cp.Steps = slices.Clone(op.Steps)
		return cp, nil
	}
	for _, op := range f.history[cluster] {
		if op.ID == id {
			return op, nil
		}
	}
	return api.Operation{}, fmt.Errorf("no operation %q in cluster %q: %w", id, cluster, apiserver.ErrNotFound)
}

func (f *FakeBackend) instance(c *api.Cluster, name string) (*api.Instance, error) {
	for i := range c.Instances {
		if c.Instances[i].Name == name {
			return &c.Instances[i], nil
		}
	}
	return nil, fmt.Errorf("cluster %q has no instance %q: %w", c.Name, name, apiserver.ErrNotFound)
}

// start begins a scripted operation. f.mu held.
func (f *FakeBackend) start(ctx context.Context, c *api.Cluster, kind, target string, steps []FakeStep) api.Operation {
	f.seq++
	caller, _ := apiserver.CallerFrom(ctx)
	op := &api.Operation{
		ID: fmt.Sprintf("op-%04d", 100+f.seq), Cluster: c.Name, Kind: kind, Trigger: "manual by " + caller.Name,
		Target: target, Started: f.now(), OldPrimary: c.Primary, EpochBefore: c.Epoch, Result: api.ResultRunning,
		Steps: []api.Step{},
	}
	f.ops[op.ID] = op
	c.Operation = &api.OperationRef{ID: op.ID, Kind: kind, Started: op.Started, Target: target}
	f.wg.Add(1)
	go f.run(op.ID, c.Name, target, steps)
	cp := *op
	cp.Steps = []api.Step{}
	return cp
}

// run plays the steps of an operation.
func (f *FakeBackend) run(id, cluster, target string, steps []FakeStep) {
	defer f.wg.Done()
	result, reason := api.ResultSuccess, ""
	started := f.now()
	for i, st := range steps {
		f.mu.Lock()
		op := f.ops[id]
		op.Steps = append(op.Steps, api.Step{Name: st.Name, Started: f.now(), Result: api.ResultRunning})
		f.mu.Unlock()
		t0 := f.now()
		select {
		case <-time.After(st.Delay):
		case <-f.closing:
		}
		res := st.Result
		if res == "" {
			res = api.ResultSuccess
		}
		f.mu.Lock()
		op.Steps[i].Result = res
		op.Steps[i].Duration = api.Duration(f.now().Sub(t0))
		op.Steps[i].Detail = st.Detail
		f.mu.Unlock()
		if res == api.ResultFailed || res == api.ResultAborted {
			result = res
			reason = fmt.Sprintf("step %s %s: %s", st.Name, res, st.Detail)
			break
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	op := f.ops[id]
	c := f.clusters[cluster]
	end := f.now()
	op.Ended = &end
	op.Result = result
	op.Reason = reason
	if result == api.ResultSuccess && op.Kind != api.OpRejoin {
		blocked := api.Duration(end.Sub(started) / 2)
		op.WriteBlocked = &blocked
		op.NewPrimary = target
		op.EpochAfter = c.Epoch + 1
		op.GTIDAtPromotion = "0-1-5034"
		c.Epoch++
		for i := range c.Instances {
			switch c.Instances[i].Name {
			case target:
				c.Instances[i].Role = api.RolePrimary
				c.Instances[i].Replication = nil
			case c.Primary:
				c.Instances[i].Role = api.RoleReplica
			}
		}
		c.Primary = target
	}
	c.Operation = nil
	f.history[cluster] = append([]api.Operation{*op}, f.history[cluster]...)
}

// Switchover implements apiserver.Operator.
func (f *FakeBackend) Switchover(ctx context.Context, cluster string, req api.SwitchoverRequest) (api.Operation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(ctx, "Switchover", req.To); err != nil {
		return api.Operation{}, err
	}
	c, err := f.cluster(cluster)
	if err != nil {
		return api.Operation{}, err
	}
	if c.Operation != nil {
		return api.Operation{}, fmt.Errorf("%s %s is running on cluster %s; wait for it (regentctl status): %w", c.Operation.Kind, c.Operation.ID, cluster, apiserver.ErrConflict)
	}
	to := req.To
	if to == "" {
		to = "db2"
	}
	in, err := f.instance(c, to)
	if err != nil {
		return api.Operation{}, err
	}
	if in.Role != api.RoleReplica {
		return api.Operation{}, fmt.Errorf("%s is the %s, not a replica: name a replica with --to: %w", to, in.Role, apiserver.ErrRefused)
	}
	return f.start(ctx, c, api.OpSwitchover, to, f.SwitchoverSteps), nil
}

// Failover implements apiserver.Operator.
func (f *FakeBackend) Failover(ctx context.Context, cluster string, req api.FailoverRequest) (api.Operation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(ctx, "Failover", req.To); err != nil {
		return api.Operation{}, err
	}
	c, err := f.cluster(cluster)
	if err != nil {
		return api.Operation{}, err
	}
	if c.Operation != nil {
		return api.Operation{}, fmt.Errorf("%s %s is running: %w", c.Operation.Kind, c.Operation.ID, apiserver.ErrConflict)
	}
	if _, err := f.instance(c, req.To); err != nil {
		return api.Operation{}, err
	}
	kind := api.OpFailover
	if req.Force {
		kind = api.OpForcedFailover
	}
	return f.start(ctx, c, kind, req.To, f.FailoverSteps), nil
}

// Rejoin implements apiserver.Operator.
func (f *FakeBackend) Rejoin(ctx context.Context, cluster string, req api.RejoinRequest) (api.Operation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(ctx, "Rejoin", req.Instance); err != nil {
		return api.Operation{}, err
	}
	c, err := f.cluster(cluster)
	if err != nil {
		return api.Operation{}, err
	}
	if _, err := f.instance(c, req.Instance); err != nil {
		return api.Operation{}, err
	}
	return f.start(ctx, c, api.OpRejoin, req.Instance, []FakeStep{{Name: "change-source", Delay: time.Millisecond}}), nil
}

// definedName finds a definition's cluster name (the fake reads no more
// of it).
var definedName = regexp.MustCompile(`(?m)^\s*-?\s*name:\s*([A-Za-z0-9_.-]+)\s*$`)

// DefineCluster implements apiserver.Operator: the cluster named by the
// definition's name: line is listed at once, with no instances.
func (f *FakeBackend) DefineCluster(ctx context.Context, req api.DefineClusterRequest) (api.DefinedCluster, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := definedName.FindStringSubmatch(req.Definition)
	name := ""
	if m != nil {
		name = m[1]
	}
	if err := f.record(ctx, "DefineCluster", name); err != nil {
		return api.DefinedCluster{}, err
	}
	if name == "" {
		return api.DefinedCluster{}, fmt.Errorf("%w: cluster.name: missing (nothing was changed)", apiserver.ErrInvalid)
	}
	if _, ok := f.clusters[name]; ok {
		return api.DefinedCluster{}, fmt.Errorf("%w: cluster %q already exists", apiserver.ErrConflict, name)
	}
	by, _ := apiserver.CallerFrom(ctx)
	d := api.Defined{By: by.Name, At: f.now()}
	f.clusters[name] = &api.Cluster{Name: name, Durability: "semi_sync", Defined: &d, ObservedBy: "a1", ObservedAt: d.At}
	f.status.Clusters = append(f.status.Clusters, name)
	return api.DefinedCluster{Name: name, Instances: []string{}, Defined: d}, nil
}

// RemoveCluster implements apiserver.Operator: only a cluster added by
// DefineCluster can be removed.
func (f *FakeBackend) RemoveCluster(ctx context.Context, cluster string) (api.DefinedCluster, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(ctx, "RemoveCluster", cluster); err != nil {
		return api.DefinedCluster{}, err
	}
	c, err := f.cluster(cluster)
	if err != nil {
		return api.DefinedCluster{}, err
	}
	if c.Defined == nil {
		return api.DefinedCluster{}, fmt.Errorf("%w: cluster %s is in regent.yaml, not defined at run time: remove it from regent.yaml on every agent", apiserver.ErrInvalid, cluster)
	}
	delete(f.clusters, cluster)
	f.status.Clusters = slices.DeleteFunc(f.status.Clusters, func(n string) bool { return n == cluster })
	return api.DefinedCluster{Name: cluster, Instances: []string{}, Defined: *c.Defined}, nil
}

// AddInstance implements apiserver.Operator: the instance is listed as a
// replica at once.
func (f *FakeBackend) AddInstance(ctx context.Context, cluster string, req api.AddInstanceRequest) (api.Cluster, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(ctx, "AddInstance", req.Name); err != nil {
		return api.Cluster{}, err
	}
	c, err := f.cluster(cluster)
	if err != nil {
		return api.Cluster{}, err
	}
	if _, err := f.instance(c, req.Name); err == nil {
		return api.Cluster{}, fmt.Errorf("%w: instances[%s].name: %q is already an instance of the cluster (nothing was changed)", apiserver.ErrInvalid, req.Name, req.Name)
	}
	c.Instances = append(c.Instances, api.Instance{Name: req.Name, Address: req.Address, Role: api.RoleReplica, Promotion: req.Promotion, Labels: req.Labels})
	return cloneCluster(c), nil
}

// RemoveInstance implements apiserver.Operator; the primary is refused.
func (f *FakeBackend) RemoveInstance(ctx context.Context, cluster, instance string) (api.Cluster, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(ctx, "RemoveInstance", instance); err != nil {
		return api.Cluster{}, err
	}
	c, err := f.cluster(cluster)
	if err != nil {
		return api.Cluster{}, err
	}
	in, err := f.instance(c, instance)
	if err != nil {
		return api.Cluster{}, err
	}
	if in.Role == api.RolePrimary {
		return api.Cluster{}, fmt.Errorf("%w: %s is the primary: switch over to another instance first", apiserver.ErrConflict, instance)
	}
	c.Instances = slices.DeleteFunc(c.Instances, func(i api.Instance) bool { return i.Name == instance })
	return cloneCluster(c), nil
}

// Settings implements apiserver.Reader: a few run-time keys, changed by
// EditSettings.
func (f *FakeBackend) Settings(ctx context.Context, cluster string) (api.ClusterSettings, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.cluster(cluster); err != nil {
		return api.ClusterSettings{}, err
	}
	return cloneSettings(f.settingsOf(cluster)), nil
}

func (f *FakeBackend) settingsOf(cluster string) *api.ClusterSettings {
	if f.settings == nil {
		f.settings = map[string]*api.ClusterSettings{}
	}
	st, ok := f.settings[cluster]
	if !ok {
		st = &api.ClusterSettings{Cluster: cluster, Effective: map[string]string{"anti_flap_period": "5m0s", "auto_rejoin": "true", "failure_timeout": "2s"},
			RestartOnly: map[string]string{"fence_after": "1.5s", "lease_timeout": "3s"}}
		f.settings[cluster] = st
	}
	return st
}

func cloneSettings(st *api.ClusterSettings) api.ClusterSettings {
	out := *st
	out.Effective = maps.Clone(st.Effective)
	out.RestartOnly = maps.Clone(st.RestartOnly)
	return out
}

// EditSettings implements apiserver.Operator: "key: value" lines of known
// keys are set; a restart-only key is refused, as the agent does.
func (f *FakeBackend) EditSettings(ctx context.Context, cluster string, req api.EditSettingsRequest) (api.ClusterSettings, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(ctx, "EditSettings", req.Set); err != nil {
		return api.ClusterSettings{}, err
	}
	if _, err := f.cluster(cluster); err != nil {
		return api.ClusterSettings{}, err
	}
	st := f.settingsOf(cluster)
	if req.Version != st.Version {
		return api.ClusterSettings{}, fmt.Errorf("%w: the settings are at version %d, not %d", apiserver.ErrConflict, st.Version, req.Version)
	}
	next := maps.Clone(st.Effective)
	for _, line := range strings.Split(strings.TrimSpace(req.Set), "\n") {
		k, v, _ := strings.Cut(line, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if _, restartOnly := st.RestartOnly[k]; restartOnly {
			return api.ClusterSettings{}, fmt.Errorf("%w: %s: set only in regent.yaml (nothing was changed)", apiserver.ErrInvalid, k)
		}
		if _, known := next[k]; !known {
			return api.ClusterSettings{}, fmt.Errorf("%w: %s: not a run-time setting (nothing was changed)", apiserver.ErrInvalid, k)
		}
		next[k] = v
	}
	caller, _ := apiserver.CallerFrom(ctx)
	now := f.now()
	st.Effective, st.Version, st.Changed, st.By, st.At = next, st.Version+1, st.Changed+req.Set, caller.Name, &now
	return cloneSettings(st), nil
}

// Repoint implements apiserver.Operator: it relocates a replica at once
// (no server is touched) and answers with the ended operation.
func (f *FakeBackend) Repoint(ctx context.Context, cluster, instance string, req api.RepointRequest) (api.Operation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(ctx, "Repoint", instance+" "+req.To); err != nil {
		return api.Operation{}, err
	}
	c, err := f.cluster(cluster)
	if err != nil {
		return api.Operation{}, err
	}
	in, err := f.instance(c, instance)
	if err != nil {
		return api.Operation{}, err
	}
	to := req.To
	if to == "" {
		to = c.Primary
	}
	if in.Role != api.RoleReplica {
		return api.Operation{}, fmt.Errorf("%w: %s is not a replica of cluster %s", apiserver.ErrRefused, instance, cluster)
	}
	if _, err := f.instance(c, to); err != nil {
		return api.Operation{}, err
	}
	caller, _ := apiserver.CallerFrom(ctx)
	now := f.now()
	in.Relocated = nil
	if to != c.Primary {
		in.Relocated = &api.Relocation{Source: to, By: caller.Name, At: now}
	}
	f.seq++
	return api.Operation{ID: fmt.Sprintf("op-%04d", 100+f.seq), Cluster: c.Name, Kind: api.OpRepoint, Trigger: "manual",
		Target: instance, Started: now, Ended: &now, OldPrimary: c.Primary, EpochBefore: c.Epoch, EpochAfter: c.Epoch,
		Result: api.ResultSuccess, Steps: []api.Step{
			{Name: "repoint " + instance, Started: now, Result: api.ResultSuccess, Detail: instance + " replicates from " + to},
			{Name: "record-source " + instance, Started: now, Result: api.ResultSuccess},
		}}, nil
}

// Pause implements apiserver.Operator.
func (f *FakeBackend) Pause(ctx context.Context, cluster string, req api.PauseRequest) (api.Cluster, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(ctx, "Pause", req.Reason); err != nil {
		return api.Cluster{}, err
	}
	c, err := f.cluster(cluster)
	if err != nil {
		return api.Cluster{}, err
	}
	caller, _ := apiserver.CallerFrom(ctx)
	c.Paused = &api.Pause{By: caller.Name, Reason: req.Reason, Since: f.now()}
	c.AutomaticFailover.Possible = false
	c.AutomaticFailover.Blockers = []api.Blocker{{Kind: api.BlockPaused, Reason: "paused by " + caller.Name + ": " + req.Reason}}
	return cloneCluster(c), nil
}

// Resume implements apiserver.Operator.
func (f *FakeBackend) Resume(ctx context.Context, cluster string) (api.Cluster, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(ctx, "Resume", ""); err != nil {
		return api.Cluster{}, err
	}
	c, err := f.cluster(cluster)
	if err != nil {
		return api.Cluster{}, err
	}
	c.Paused = nil
	c.AutomaticFailover.Possible = c.AutomaticFailover.Enabled
	c.AutomaticFailover.Blockers = nil
	return cloneCluster(c), nil
}

// Discover implements apiserver.Operator: a fixed tree of three servers
// from any address on port 3306; any other address cannot be read.
func (f *FakeBackend) Discover(ctx context.Context, address string) (api.Discovery, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(ctx, "Discover", address); err != nil {
		return api.Discovery{}, err
	}
	if !strings.HasSuffix(address, ":3306") {
		return api.Discovery{}, fmt.Errorf("%w: cannot read %s: connection refused", apiserver.ErrRefused, address)
	}
	return api.Discovery{Start: address, Primary: "db1", Instances: []api.DiscoveredInstance{
		{Name: "db1", Address: "10.0.0.11:3306", ServerID: 11},
		{Name: "db2", Address: "10.0.0.12:3306", Source: "10.0.0.11:3306", ServerID: 12, ReadOnly: true},
		{Name: "db3", Address: "10.0.0.13:3306", Source: "10.0.0.11:3306", ServerID: 13, ReadOnly: true},
	}, YAML: "  - name: main\n    instances:\n      - {name: db1, address: 10.0.0.11:3306, agent: AGENT}   # primary, server_id 11\n"}, nil
}

// Ack implements apiserver.Operator: it acknowledges an operation of the
// history.
func (f *FakeBackend) Ack(ctx context.Context, cluster, id string, req api.AckRequest) (api.Operation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(ctx, "Ack", id); err != nil {
		return api.Operation{}, err
	}
	if _, err := f.cluster(cluster); err != nil {
		return api.Operation{}, err
	}
	for i, op := range f.history[cluster] {
		if op.ID != id {
			continue
		}
		if op.Ack != nil {
			return api.Operation{}, fmt.Errorf("%w: operation %s was acknowledged by %s", apiserver.ErrConflict, id, op.Ack.By)
		}
		caller, _ := apiserver.CallerFrom(ctx)
		op.Ack = &api.Ack{By: caller.Name, Comment: req.Comment, At: f.now()}
		f.history[cluster][i] = op
		return op, nil
	}
	return api.Operation{}, fmt.Errorf("no finished operation %q in cluster %q: %w", id, cluster, apiserver.ErrNotFound)
}

// StartMaintenance implements apiserver.Operator.
func (f *FakeBackend) StartMaintenance(ctx context.Context, cluster, instance string, req api.MaintenanceRequest) (api.Cluster, error) {
	return f.setMaintenance(ctx, "StartMaintenance", cluster, instance, func(in *api.Instance, by string) error {
		if in.Role == api.RolePrimary {
			return fmt.Errorf("%w: %s is the primary: switch over first", apiserver.ErrConflict, instance)
		}
		now := f.now()
		in.Maintenance = &api.Maintenance{By: by, Reason: req.Reason, Since: now, Until: now.Add(req.For.Std())}
		return nil
	})
}

// EndMaintenance implements apiserver.Operator.
func (f *FakeBackend) EndMaintenance(ctx context.Context, cluster, instance string) (api.Cluster, error) {
	return f.setMaintenance(ctx, "EndMaintenance", cluster, instance, func(in *api.Instance, _ string) error {
		if in.Maintenance == nil {
			return fmt.Errorf("%w: %s is not in maintenance", apiserver.ErrNotFound, instance)
		}
		in.Maintenance = nil
		return nil
	})
}

func (f *FakeBackend) setMaintenance(ctx context.Context, call, cluster, instance string, change func(*api.Instance, string) error) (api.Cluster, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(ctx, call, instance); err != nil {
		return api.Cluster{}, err
	}
	c, err := f.cluster(cluster)
	if err != nil {
		return api.Cluster{}, err
	}
	caller, _ := apiserver.CallerFrom(ctx)
	for i := range c.Instances {
		if c.Instances[i].Name == instance {
			if err := change(&c.Instances[i], caller.Name); err != nil {
				return api.Cluster{}, err
			}
			return cloneCluster(c), nil
		}
	}
	return api.Cluster{}, fmt.Errorf("%w: cluster %s has no instance %q", apiserver.ErrNotFound, cluster, instance)
}

// Members implements apiserver.Membership.
func (f *FakeBackend) Members(context.Context) (api.Members, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return api.Members{LeaderID: f.status.LeaderID, Members: slices.Clone(f.status.Members)}, nil
}

// AddMember implements apiserver.Membership.
func (f *FakeBackend) AddMember(ctx context.Context, req api.AddMemberRequest) (api.Members, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(ctx, "AddMember", req.ID); err != nil {
		return api.Members{}, err
	}
	for _, m := range f.status.Members {
		if m.ID == req.ID {
			return api.Members{}, fmt.Errorf("member %s already exists at %s: %w", m.ID, m.RaftAddr, apiserver.ErrConflict)
		}
	}
	f.status.Members = append(f.status.Members, api.Member{ID: req.ID, RaftAddr: req.RaftAddr, APIAddr: req.APIAddr, Voter: !req.NonVoter, State: "follower"})
	slices.SortFunc(f.status.Members, func(a, b api.Member) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return api.Members{LeaderID: f.status.LeaderID, Members: slices.Clone(f.status.Members)}, nil
}

// RemoveMember implements apiserver.Membership.
func (f *FakeBackend) RemoveMember(ctx context.Context, id string) (api.Members, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record(ctx, "RemoveMember", id); err != nil {
		return api.Members{}, err
	}
	i := slices.IndexFunc(f.status.Members, func(m api.Member) bool { return m.ID == id })
	if i < 0 {
		return api.Members{}, fmt.Errorf("no member %q in the Raft configuration: %w", id, apiserver.ErrNotFound)
	}
	f.status.Members = slices.Delete(f.status.Members, i, i+1)
	return api.Members{LeaderID: f.status.LeaderID, Members: slices.Clone(f.status.Members)}, nil
}

// cloneCluster copies a cluster with its slices, so that a running fake
// operation changing the fake's own copy never races with a handler encoding
// the one it returned.
func cloneCluster(c *api.Cluster) api.Cluster {
	out := *c
	out.Instances = append([]api.Instance(nil), c.Instances...)
	out.Problems = append([]api.Problem(nil), c.Problems...)
	out.AutomaticFailover.Blockers = append([]api.Blocker(nil), c.AutomaticFailover.Blockers...)
	return out
}
