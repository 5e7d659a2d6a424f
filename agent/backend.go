package agent

import (
	"context"
	"errors"
	"fmt"
	"github.com/regentdb/regent/topology"
	"maps"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/apiserver"
	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/proxyhook"
)

// API is the agent's API backend (apiserver.Backend): every call the HTTP
// API makes of an agent, the reads (status, members, clusters, history,
// operations, preflight, health) and the writes (pause, switchover,
// failover, rejoin, maintenance, acknowledgements, membership), in this one
// file; apitypes.go converts the agent's values to the API's types. It is a
// view of the agent, a value: Agent.API returns one.
type API struct{ a *Agent }

var _ apiserver.Backend = API{}

// API returns the agent's API backend.
func (a *Agent) API() API { return API{a: a} }

// Leadership says whether this agent leads and where the leader's API is.
func (b API) Leadership() apiserver.Leadership {
	li := b.a.raft.Leader()
	return apiserver.Leadership{IsLeader: b.a.raft.IsLeader(), LeaderID: li.ID, LeaderAPIAddr: li.APIAddr}
}

// apiErr maps consensus errors to the API's.
func apiErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, consensus.ErrNotLeader):
		return fmt.Errorf("%w: %w", apiserver.ErrNotLeader, err)
	case errors.Is(err, consensus.ErrNotFound):
		return fmt.Errorf("%w: %w", apiserver.ErrNotFound, err)
	case errors.Is(err, consensus.ErrConflict), errors.Is(err, consensus.ErrStaleEpoch):
		return fmt.Errorf("%w: %w", apiserver.ErrConflict, err)
	case errors.Is(err, consensus.ErrInvalidCommand):
		return fmt.Errorf("%w: %w", apiserver.ErrInvalid, err)
	case errors.Is(err, consensus.ErrTimeout), errors.Is(err, consensus.ErrClosed):
		return fmt.Errorf("%w: %w", apiserver.ErrUnavailable, err)
	}
	return err
}

func callerName(ctx context.Context) string {
	if c, ok := apiserver.CallerFrom(ctx); ok && c.Name != "" {
		return c.Name
	}
	return "api"
}

// Pause blocks automatic action on a cluster.
func (b API) Pause(ctx context.Context, cluster string, req api.PauseRequest) (api.Cluster, error) {
	return b.setPaused(ctx, cluster, true, req.Reason)
}

// Resume lifts a pause.
func (b API) Resume(ctx context.Context, cluster string) (api.Cluster, error) {
	return b.setPaused(ctx, cluster, false, "")
}

func (b API) setPaused(ctx context.Context, cluster string, paused bool, reason string) (api.Cluster, error) {
	c, err := b.a.cluster(cluster)
	if err != nil {
		return api.Cluster{}, fmt.Errorf("%w: %w", apiserver.ErrNotFound, err)
	}
	if c.state() == nil {
		return api.Cluster{}, fmt.Errorf("%w: cluster %s is not recorded in Raft yet (no leader has seen it); try again in a few seconds", apiserver.ErrUnavailable, cluster)
	}
	if _, err := b.a.raft.Propose(ctx, consensus.SetPaused{Cluster: cluster, Paused: paused, By: callerName(ctx), Reason: reason, At: b.a.now()}); err != nil {
		return api.Cluster{}, apiErr(err)
	}
	return b.Cluster(ctx, cluster)
}

// discoverTimeout bounds one discovery walk.
const discoverTimeout = 20 * time.Second

// Discover walks the replication tree around address with Regent's MySQL
// account and proposes a cluster definition (nothing is changed).
func (b API) Discover(ctx context.Context, address string) (api.Discovery, error) {
	if _, _, err := net.SplitHostPort(address); err != nil {
		return api.Discovery{}, fmt.Errorf("%w: address %q is not host:port", apiserver.ErrInvalid, address)
	}
	ctx, cancel := context.WithTimeout(ctx, discoverTimeout)
	defer cancel()
	src := &openedServers{open: b.a.openMySQL, insts: map[string]*topology.Instance{}}
	defer src.close()
	d, err := discover(ctx, src, address)
	if err != nil {
		return d, fmt.Errorf("%w: cannot read %s with Regent's MySQL account: %w", apiserver.ErrRefused, address, err)
	}
	b.a.log.Info("discovery", "start", address, "instances", len(d.Instances), "by", callerName(ctx))
	return d, nil
}

// Ack records an operator's acknowledgement of a finished operation.
func (b API) Ack(ctx context.Context, cluster, id string, req api.AckRequest) (api.Operation, error) {
	c, err := b.a.cluster(cluster)
	if err != nil {
		return api.Operation{}, fmt.Errorf("%w: %w", apiserver.ErrNotFound, err)
	}
	by := callerName(ctx)
	if _, err := b.a.raft.Propose(ctx, consensus.AckOperation{Cluster: cluster, OperationID: id, By: by, Comment: req.Comment, At: b.a.now()}); err != nil {
		return api.Operation{}, apiErr(err)
	}
	b.a.log.Info("operation acknowledged", "cluster", cluster, logOp, id, "by", by, "comment", req.Comment)
	if st := c.state(); st != nil {
		for _, h := range st.History {
			if h.ID == id {
				return historyOp(cluster, h), nil
			}
		}
	}
	return api.Operation{}, fmt.Errorf("%w: operation %s acknowledged, but this agent has not applied it yet; see regentctl history show %s", apiserver.ErrUnavailable, id, id)
}

// StartMaintenance puts an instance in maintenance for req.For.
func (b API) StartMaintenance(ctx context.Context, cluster, instance string, req api.MaintenanceRequest) (api.Cluster, error) {
	now := b.a.now()
	return b.setMaintenance(ctx, cluster, consensus.SetMaintenance{Cluster: cluster, Instance: instance, On: true,
		By: callerName(ctx), Reason: req.Reason, At: now, Until: now.Add(req.For.Std())})
}

// EndMaintenance ends an instance's maintenance.
func (b API) EndMaintenance(ctx context.Context, cluster, instance string) (api.Cluster, error) {
	return b.setMaintenance(ctx, cluster, consensus.SetMaintenance{Cluster: cluster, Instance: instance, By: callerName(ctx), At: b.a.now()})
}

func (b API) setMaintenance(ctx context.Context, cluster string, cmd consensus.SetMaintenance) (api.Cluster, error) {
	c, err := b.a.cluster(cluster)
	if err != nil {
		return api.Cluster{}, fmt.Errorf("%w: %w", apiserver.ErrNotFound, err)
	}
	if set := c.set(); set.addrs[cmd.Instance] == "" {
		return api.Cluster{}, fmt.Errorf("%w: cluster %s has no instance %q (its instances: %s)", apiserver.ErrNotFound, cluster, cmd.Instance, strings.Join(slices.Sorted(maps.Keys(set.addrs)), ", "))
	}
	if c.state() == nil {
		return api.Cluster{}, fmt.Errorf("%w: cluster %s is not recorded in Raft yet (no leader has seen it); try again in a few seconds", apiserver.ErrUnavailable, cluster)
	}
	if _, err := b.a.raft.Propose(ctx, cmd); err != nil {
		return api.Cluster{}, apiErr(err)
	}
	if cmd.On {
		b.a.log.Warn("instance in maintenance", "cluster", cluster, logInstance, cmd.Instance, "by", cmd.By, "until", cmd.Until, "reason", cmd.Reason)
	} else {
		b.a.log.Warn("instance maintenance ended", "cluster", cluster, logInstance, cmd.Instance, "by", cmd.By)
	}
	return b.Cluster(ctx, cluster)
}

// AddMember adds an agent to the Raft configuration and the member table.
func (b API) AddMember(ctx context.Context, req api.AddMemberRequest) (api.Members, error) {
	n, ok := b.a.raft.(interface {
		AddAgent(context.Context, consensus.Member) error
	})
	if !ok {
		return api.Members{}, fmt.Errorf("%w: membership changes are not available", apiserver.ErrUnavailable)
	}
	if req.NonVoter {
		return api.Members{}, fmt.Errorf("%w: non-voting members are not supported yet", apiserver.ErrInvalid)
	}
	if err := n.AddAgent(ctx, consensus.Member{ID: req.ID, RaftAddr: req.RaftAddr, APIAddr: req.APIAddr}); err != nil {
		return api.Members{}, apiErr(err)
	}
	return b.Members(ctx)
}

// RemoveMember removes an agent.
func (b API) RemoveMember(ctx context.Context, id string) (api.Members, error) {
	if id == b.a.id {
		return api.Members{}, fmt.Errorf("%w: agent %s leads; remove another agent, or move leadership first by stopping this one", apiserver.ErrRefused, id)
	}
	n, ok := b.a.raft.(interface {
		RemoveAgent(context.Context, string) error
	})
	if !ok {
		return api.Members{}, fmt.Errorf("%w: membership changes are not available", apiserver.ErrUnavailable)
	}
	if err := n.RemoveAgent(ctx, id); err != nil {
		return api.Members{}, apiErr(err)
	}
	return b.Members(ctx)
}

// Check is the preflight of regentctl check (README "regentctl"): every
// check of preflight on every instance, from this agent's latest probes and
// a detailed probe of each reachable instance now.
func (b API) Check(ctx context.Context, cluster string) (api.CheckReport, error) {
	c, err := b.a.cluster(cluster)
	if err != nil {
		return api.CheckReport{}, fmt.Errorf("%w: %w", apiserver.ErrNotFound, err)
	}
	rep := api.CheckReport{Cluster: cluster, CheckedAt: b.a.now()}
	obs := c.prober.snapshot()
	st := c.state()
	pol := c.policyFor(st)
	ids := map[uint32]string{}
	set := c.set()
	for _, ic := range set.configs {
		o, observed := obs[ic.Name]
		in := preflightInput{Name: ic.Name, Observed: observed, Obs: o, SemiSync: pol.Durability == failover.DurabilitySemiSync, WaitFor: pol.SemiSyncWaitFor,
			PrimaryKnown: st != nil && st.Primary != "", Primary: st != nil && st.Primary == ic.Name}
		if observed && o.Reachable {
			in.SameServerID = ids[o.ServerID]
			if in.SameServerID == "" {
				ids[o.ServerID] = ic.Name
			}
			if inst, ok := set.insts[ic.Name]; ok {
				in.Snap, in.SnapErr = inst.Probe(ctx)
				if acc, err := inst.Account(ctx); err != nil {
					in.AccountErr = err
				} else {
					in.Account = &acc
				}
			}
			in.User = b.a.cfg.MySQL.User
			if h, _, err := net.SplitHostPort(ic.Address); err == nil {
				in.Host = h
			}
		}
		rep.Findings = append(rep.Findings, preflight(in)...)
	}
	return rep, nil
}

// manual runs a planned operation asked for through the API: it plans on the
// current view, starts the run in the background and returns the running
// operation at once (regentctl follows it).
func (b API) manual(ctx context.Context, cluster string, plan func(failover.View, failover.Policy) (failover.Plan, error)) (api.Operation, error) {
	c, v, p, err := b.planManual(ctx, cluster, plan)
	if err != nil {
		return api.Operation{}, err
	}
	id := newOperationID()
	requester := callerName(ctx)
	// Known before the call returns, so that regentctl can follow it at once.
	c.notePending(id, p)
	b.a.wg.Add(1)
	go func() {
		defer b.a.wg.Done()
		defer c.unlock()
		_, _ = c.run(b.a.runCtx, v, p, id, requester)
	}()
	op, _ := c.pendingOp(id)
	return op, nil
}

// planManual takes the cluster's operation lock and plans on the current
// view; on success the caller owns the lock.
func (b API) planManual(ctx context.Context, cluster string, plan func(failover.View, failover.Policy) (failover.Plan, error)) (*clusterRT, failover.View, failover.Plan, error) {
	c, err := b.a.cluster(cluster)
	if err != nil {
		return nil, failover.View{}, failover.Plan{}, fmt.Errorf("%w: %w", apiserver.ErrNotFound, err)
	}
	if !b.a.raft.IsLeader() {
		return nil, failover.View{}, failover.Plan{}, apiserver.ErrNotLeader
	}
	if c.state() == nil {
		return nil, failover.View{}, failover.Plan{}, fmt.Errorf("%w: cluster %s is not recorded in Raft yet; try again in a few seconds", apiserver.ErrUnavailable, cluster)
	}
	// A repair the leader started on its own (semi-sync, restoring writes)
	// takes milliseconds: wait for it rather than refuse.
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	locked := c.lock(lctx)
	cancel()
	if !locked {
		return nil, failover.View{}, failover.Plan{}, fmt.Errorf("%w: another operation is running on cluster %s; follow it with regentctl history", apiserver.ErrConflict, cluster)
	}
	v := c.view(c.now())
	p, err := plan(v, c.pol())
	if err != nil {
		c.unlock()
		if errors.Is(err, failover.ErrRefused) {
			return nil, v, p, fmt.Errorf("%w: %w", apiserver.ErrRefused, err)
		}
		return nil, v, p, fmt.Errorf("%w: %w", apiserver.ErrInvalid, err)
	}
	return c, v, p, nil
}

// Repoint relocates a replica under another replica of its cluster, or
// back under the primary (README "Relocating replicas"). A repoint is a
// small repair with no place in the history, so the call runs it to its
// end and answers with its outcome and steps.
func (b API) Repoint(ctx context.Context, cluster, instance string, req api.RepointRequest) (api.Operation, error) {
	c, v, p, err := b.planManual(ctx, cluster, func(v failover.View, p failover.Policy) (failover.Plan, error) {
		return failover.PlanRelocate(v, p, instance, req.To)
	})
	if err != nil {
		return api.Operation{}, err
	}
	defer c.unlock()
	res, _ := c.run(b.a.runCtx, v, p, "", callerName(ctx))
	return resultOp(res), nil
}

// Switchover starts a planned switchover.
func (b API) Switchover(ctx context.Context, cluster string, req api.SwitchoverRequest) (api.Operation, error) {
	return b.manual(ctx, cluster, func(v failover.View, p failover.Policy) (failover.Plan, error) {
		if req.WaitForWrites > 0 {
			p.LongTransactionWait = time.Duration(req.WaitForWrites)
		}
		return failover.PlanSwitchover(v, p, req.To)
	})
}

// Failover starts a manual (forced) failover to an instance.
func (b API) Failover(ctx context.Context, cluster string, req api.FailoverRequest) (api.Operation, error) {
	if req.To == "" {
		return api.Operation{}, fmt.Errorf("%w: name the instance to promote (--to)", apiserver.ErrInvalid)
	}
	return b.manual(ctx, cluster, func(v failover.View, p failover.Policy) (failover.Plan, error) {
		return failover.PlanForcedFailover(v, p, req.To, req.Force)
	})
}

// Rejoin starts the rejoin of an old primary as a replica.
func (b API) Rejoin(ctx context.Context, cluster string, req api.RejoinRequest) (api.Operation, error) {
	if req.Instance == "" {
		return api.Operation{}, fmt.Errorf("%w: name the instance to rejoin", apiserver.ErrInvalid)
	}
	return b.manual(ctx, cluster, func(v failover.View, p failover.Policy) (failover.Plan, error) {
		return failover.PlanRejoin(v, p, req.Instance)
	})
}

// Status describes the regent cluster as this agent sees it.
func (b API) Status(ctx context.Context) (api.Status, error) {
	li := b.a.raft.Leader()
	st := api.Status{AgentID: b.a.id, IsLeader: b.a.raft.IsLeader(), LeaderID: li.ID, LeaderAPIAddr: li.APIAddr,
		Clusters: sortedNames(b.a.rts()), Time: b.a.now(), RaftState: "follower"}
	if st.IsLeader {
		st.RaftState = "leader"
	}
	if s, ok := b.a.raft.(interface{ Stats() consensus.Stats }); ok {
		stats := s.Stats()
		st.RaftState, st.Term, st.CommitIndex, st.AppliedIndex = strings.ToLower(stats.State), stats.Term, stats.CommitIndex, stats.AppliedIndex
	}
	m, err := b.Members(ctx)
	if err != nil {
		return st, err
	}
	st.Members = m.Members
	if b.a.cfg.LocalInstance != "" {
		lqc := b.a.raft.LastQuorumContact()
		l := &api.Lease{}
		for _, c := range b.a.rts() {
			if c.local == "" {
				continue
			}
			l.Held = c.LeaseHeld()
			if s := c.state(); s != nil && s.Primary == c.local {
				l.Needed = true
			}
			if !lqc.IsZero() {
				exp := lqc.Add(c.policy.FenceAfter)
				l.LastQuorumContact, l.Expires = &lqc, &exp
			}
		}
		st.Lease = l
	}
	return st, nil
}

// Ready reports whether this agent serves its state as current (GET
// /readiness): it knows a Raft leader, it is in the Raft configuration, and
// it has applied its log as far as it had it at start and every entry it
// knows committed. The error says what it waits for.
func (b API) Ready(context.Context) error {
	r := b.a.raft
	if r.Leader().ID == "" {
		return errors.New("no Raft leader known: the agent is starting, an election is running, or it has not joined the regent cluster yet (`regentctl members add` on the others)")
	}
	if s, ok := r.(interface{ Servers() []consensus.Server }); ok {
		in := false
		for _, sv := range s.Servers() {
			in = in || sv.ID == b.a.id
		}
		if !in {
			return fmt.Errorf("agent %s is not in the Raft configuration yet: add it with `regentctl members add`", b.a.id)
		}
	}
	if !r.Restored() {
		return errors.New("applying the Raft log it had at start: its state is older than what it knew before")
	}
	if !r.CaughtUp() {
		return errors.New("applying committed Raft entries: its state lags the leader's")
	}
	return nil
}

// ClusterNames lists the replication clusters, sorted.
func (b API) ClusterNames(context.Context) ([]string, error) { return sortedNames(b.a.rts()), nil }

// Members lists the agents of the Raft configuration.
func (b API) Members(ctx context.Context) (api.Members, error) {
	out := api.Members{LeaderID: b.a.raft.Leader().ID}
	state := b.a.raft.State()
	contacts := map[string]time.Time{}
	if pcs, err := b.a.raft.PeerContacts(); err == nil {
		for _, pc := range pcs {
			if pc.Heard {
				contacts[pc.ID] = pc.LastHeard
			}
		}
	}
	var servers []consensus.Server
	if s, ok := b.a.raft.(interface{ Servers() []consensus.Server }); ok {
		servers = s.Servers()
	}
	seen := map[string]bool{}
	add := func(id, raftAddr string, voter bool) {
		if seen[id] {
			return
		}
		seen[id] = true
		m := api.Member{ID: id, RaftAddr: raftAddr, Voter: voter, State: "follower", Self: id == b.a.id}
		if rec, ok := state.Members[id]; ok {
			m.APIAddr, m.LocalInstance = rec.APIAddr, rec.Instance
			if m.RaftAddr == "" {
				m.RaftAddr = rec.RaftAddr
			}
		}
		if id == out.LeaderID {
			m.State = "leader"
		}
		if t, ok := contacts[id]; ok {
			m.LastContact = &t
		}
		out.Members = append(out.Members, m)
	}
	for _, s := range servers {
		add(s.ID, s.Addr, s.Voter)
	}
	if len(servers) == 0 {
		for _, p := range b.a.cfg.Raft.Peers {
			add(p.ID, p.Address, true)
		}
	}
	sort.Slice(out.Members, func(i, j int) bool { return out.Members[i].ID < out.Members[j].ID })
	return out, nil
}

// Cluster describes one replication cluster.
func (b API) Cluster(ctx context.Context, name string) (api.Cluster, error) {
	c, err := b.a.cluster(name)
	if err != nil {
		return api.Cluster{}, fmt.Errorf("%w: %w", apiserver.ErrNotFound, err)
	}
	if !b.a.raft.Restored() {
		// Found by the chaos campaign: a restarted agent answered with
		// the state of its last snapshot (epoch 0 before any), older than
		// what it had shown before it stopped.
		return api.Cluster{}, fmt.Errorf("%w: this agent restarted and has not yet applied its Raft log (applied index %d); its view would be older than before the restart: ask another agent, or retry once it reaches the leader",
			apiserver.ErrUnavailable, b.a.raft.AppliedIndex())
	}
	now := b.a.now()
	out := api.Cluster{Name: name, Durability: string(c.pol().Durability), ObservedBy: b.a.id, ObservedAt: now}
	if d := c.definition; d != nil {
		out.Defined = &api.Defined{By: d.By, At: d.At}
	}
	st := c.state()
	quarantined := map[string]string{}
	if st != nil {
		out.Primary, out.Epoch = st.Primary, st.Epoch
		if op := st.Operation; op != nil {
			out.Operation = &api.OperationRef{ID: op.ID, Kind: string(op.Kind), Started: op.StartedAt, Target: op.Target}
		}
		if st.Paused {
			out.Paused = &api.Pause{By: st.PausedBy, Reason: st.PauseReason, Since: st.PausedAt}
		}
		if d := st.SemiSyncDegraded; d != nil {
			out.SemiSyncDegraded = &api.SemiSyncDegraded{Since: d.Since, Reason: d.Reason, OperationID: d.OperationID}
		}
		if st.AntiFlapUntil.After(now) {
			t := st.AntiFlapUntil
			out.AntiFlapUntil = &t
		}
		for n, q := range st.Quarantined {
			quarantined[n] = q.Reason
		}
		for i := len(st.History) - 1; i >= 0; i-- {
			if op := historyOp(name, st.History[i]); op.NeedsAck() {
				out.Unacknowledged = append(out.Unacknowledged, api.OperationRef{ID: op.ID, Kind: op.Kind, Started: op.Started, Target: op.Target})
			}
		}
	}
	problems := c.problems(now)
	out.AutomaticFailover = api.AutomaticFailover{Enabled: c.policyFor(st).AutomaticFailover, Possible: true}
	for _, p := range problems {
		ap := api.Problem{Code: string(p.Code), Description: p.Description, Priority: p.Priority, Instances: p.Instances,
			Target: p.Target, Reason: p.Reason, Action: string(p.Action), Actionable: p.Actionable}
		if p.Errant != nil {
			ap.Errant = p.Errant.String()
		}
		for _, b := range p.Blockers {
			ap.Blockers = append(ap.Blockers, apiBlocker(b))
		}
		out.Problems = append(out.Problems, ap)
		if p.Code == failover.AutomationBlocked {
			out.AutomaticFailover.Possible = false
			bs := ap.Blockers
			if len(bs) == 0 {
				bs = []api.Blocker{{Kind: api.BlockUnsafe, Reason: p.Reason}}
			}
			out.AutomaticFailover.Blockers = append(out.AutomaticFailover.Blockers, bs...)
		}
	}
	if st != nil && st.Paused {
		out.AutomaticFailover.Possible = false
		if len(out.AutomaticFailover.Blockers) == 0 {
			out.AutomaticFailover.Blockers = append(out.AutomaticFailover.Blockers, api.Blocker{Kind: api.BlockPaused, Reason: "paused: " + st.PauseReason})
		}
	}
	// Instances as seen by every agent: this agent's probes for the facts,
	// every agent's for reachability.
	reports := b.a.reportsOf(name)
	reports[b.a.id] = receivedReport{Report: Report{Agent: b.a.id, Clusters: map[string]ClusterReport{name: c.report()}}, At: now}
	promotion := c.runtimeFor(st).Promotion
	set := c.set()
	for _, in := range set.configs {
		ai := api.Instance{Name: in.Name, Address: in.Address, Role: api.RoleUnknown, Promotion: in.Promotion, Labels: in.Labels, Reachable: map[string]api.Reachability{}}
		if r, ok := promotion[in.Name]; ok {
			ai.Promotion = string(r)
		}
		for id, rr := range reports {
			o, ok := rr.Clusters[name].Observations[in.Name]
			if !ok || o.ObservedAt.IsZero() {
				continue
			}
			at := o.ObservedAt
			ai.Reachable[id] = api.Reachability{OK: o.Reachable, Error: string(o.Error), At: &at}
		}
		o := reports[b.a.id].Clusters[name].Observations[in.Name]
		if !o.Reachable {
			// Fall back to the freshest successful observation of any agent.
			for _, rr := range reports {
				if oo := rr.Clusters[name].Observations[in.Name]; oo.Reachable && oo.ObservedAt.After(o.ObservedAt) {
					o = oo
				}
			}
		}
		if o.Reachable {
			ro, sro := o.ReadOnly, o.SuperReadOnly
			at := o.ObservedAt
			conns := int64(o.ThreadsConnected)
			ai.ReadOnly, ai.SuperReadOnly, ai.ServerID, ai.LastProbe, ai.Connections, ai.Questions = &ro, &sro, o.ServerID, &at, &conns, o.Questions
			if o.Executed != nil {
				ai.GTIDSummary = o.Executed.Summary()
			}
			ai.SemiSync = &api.SemiSync{SourceEnabled: o.SemiSync.SourceEnabled, SourceActive: o.SemiSync.SourceActive,
				Clients: o.SemiSync.SourceClients, ReplicaEnabled: o.SemiSync.ReplicaEnabled, WaitPoint: o.SemiSync.WaitPoint}
			if r := o.Replica; r != nil {
				rep := &api.Replication{Source: r.Source, IOThread: threadState(string(r.IOState)), SQLThread: threadState(boolYes(r.SQLRunning)),
					LastIOError: r.LastIOError, LastSQLError: r.LastSQLError, AutoPosition: true}
				if _, ok := set.addrs[r.Source]; ok {
					rep.SourceName = r.Source
				}
				if r.LagSeconds != nil {
					l := float64(*r.LagSeconds)
					rep.LagSeconds = &l
				}
				ai.Replication = rep
			}
		}
		if st != nil {
			if m, ok := st.InMaintenance(in.Name, now); ok {
				ai.Maintenance = &api.Maintenance{By: m.By, Reason: m.Reason, Since: m.Since, Until: m.Until}
			}
			if r, ok := st.Sources[in.Name]; ok {
				ai.Relocated = &api.Relocation{Source: r.Source, By: r.By, At: r.At}
			}
		}
		switch {
		case quarantined[in.Name] != "":
			ai.Role, ai.QuarantineReason = api.RoleQuarantined, quarantined[in.Name]
		case st != nil && st.Primary == in.Name:
			ai.Role = api.RolePrimary
		case ai.Replication != nil:
			ai.Role = api.RoleReplica
		case st != nil && in.Name == formerPrimary(st):
			ai.Role = api.RoleFormerPrimary
		}
		out.Instances = append(out.Instances, ai)
	}
	return out, nil
}

// History returns up to limit finished operations, newest first, with the
// running one (if any) in front.
func (b API) History(ctx context.Context, cluster string, limit int) ([]api.Operation, error) {
	c, err := b.a.cluster(cluster)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", apiserver.ErrNotFound, err)
	}
	st := c.state()
	if st == nil {
		return nil, nil
	}
	var out []api.Operation
	if st.Operation != nil {
		out = append(out, runningOp(cluster, st.Operation))
	}
	for i := len(st.History) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
		out = append(out, historyOp(cluster, st.History[i]))
	}
	return out, nil
}

// Operation returns one operation, running or finished.
func (b API) Operation(ctx context.Context, cluster, id string) (api.Operation, error) {
	c, err := b.a.cluster(cluster)
	if err != nil {
		return api.Operation{}, fmt.Errorf("%w: %w", apiserver.ErrNotFound, err)
	}
	if st := c.state(); st != nil {
		if st.Operation != nil && st.Operation.ID == id {
			return runningOp(cluster, st.Operation), nil
		}
		for i := len(st.History) - 1; i >= 0; i-- {
			if st.History[i].ID == id {
				op := historyOp(cluster, st.History[i])
				if wb, ok := c.writeBlocked(ctx, id); ok {
					d := api.Duration(wb.d)
					op.WriteBlocked, op.WriteBlockedUntil = &d, wb.until
				}
				return op, nil
			}
		}
	}
	// Started but not yet recorded (the intent is being proposed).
	if op, ok := c.pendingOp(id); ok {
		return op, nil
	}
	return api.Operation{}, fmt.Errorf("%w: no operation %q in cluster %s", apiserver.ErrNotFound, id, cluster)
}

// HealthState is the local state behind /primary, /replica and /read-only.
func (b API) HealthState(ctx context.Context) (proxyhook.LocalState, error) {
	var s proxyhook.LocalState
	for _, c := range b.a.rts() {
		if c.local == "" {
			continue
		}
		o := c.prober.snapshot()[c.local]
		st := c.state()
		s = proxyhook.LocalState{}
		fillHealth(&s, c, o, st)
		return s, nil
	}
	return s, nil
}
