package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/config"
	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/proxyhook"
	"github.com/regentdb/regent/topology/mysqltest"
)

// harness runs three agents in this process, one beside each server of a
// real replication cluster (p, r1, r2), over in-memory Raft transports that
// a test can cut, and an in-process report transport that honours the same
// cuts.
type harness struct {
	t      *testing.T
	log    *testLog
	db     *mysqltest.Cluster
	agents []*Agent
	nodes  []*consensus.Node
	trans  []*raft.InmemTransport
	router *recordingTarget

	mu  sync.Mutex
	cut map[string]bool // agent id isolated from the others
	// halt, when set, stops an agent's run dead after a step (Deps.Halt):
	// it returns true to halt.
	halt func(agent int, ev failover.StepEvent) bool
	// lateRoutes: a deposed leader may push routes late (to the recording
	// target, which does not refuse stale tokens); tokens need not grow.
	lateRoutes bool
	// setups are what each agent is started from (restart uses them again).
	setups []agentSetup
}

// agentSetup is one agent's configuration and Raft stores.
type agentSetup struct {
	cfg   config.Config
	ccfg  consensus.Config
	infra consensus.Infra
}

type harnessOpt func(*config.Config)

func newHarness(t *testing.T, k mysqltest.Kind, opts ...harnessOpt) *harness {
	t.Helper()
	h := &harness{t: t, cut: map[string]bool{}, router: &recordingTarget{}}
	h.db = mysqltest.StartCluster(t, k, 2)
	mysqltest.EnsureTable(t, h.db.Primary)
	servers := h.db.Servers()
	ids := []string{"a0", "a1", "a2"}
	var peers []config.PeerConfig
	var cpeers []consensus.Peer
	for i, id := range ids {
		_, tr := raft.NewInmemTransport(raft.ServerAddress(raftAddr(i)))
		h.trans = append(h.trans, tr)
		peers = append(peers, config.PeerConfig{ID: id, Address: raftAddr(i)})
		cpeers = append(cpeers, consensus.Peer{ID: id, RaftAddr: raftAddr(i), Instance: servers[i].Name})
	}
	for i := range h.trans {
		for j := range h.trans {
			if i != j {
				h.trans[i].Connect(h.trans[j].LocalAddr(), h.trans[j])
			}
		}
	}
	var instances []config.InstanceConfig
	for i, s := range servers {
		instances = append(instances, config.InstanceConfig{Name: s.Name, Address: s.Addr(), Agent: ids[i]})
	}
	logOut := &testLog{t: t}
	h.log = logOut
	t.Cleanup(func() {
		// What the agents did, for a failure seen where the test cannot
		// be run again with REGENT_TEST_LOG (CI): the operations' lines.
		if t.Failed() && os.Getenv("REGENT_TEST_LOG") == "" {
			t.Logf("the agents' operations and problems (REGENT_TEST_LOG=1 shows every line):\n%s", logOut.matching("acting on problem", "step ends", "operation ends", "aborted an abandoned", "self-fenc"))
		}
	})
	for i, id := range ids {
		cfg := config.Config{
			NodeID: id, DataDir: t.TempDir(), LocalInstance: servers[i].Name,
			Raft: config.RaftConfig{Bind: raftAddr(i), Peers: peers},
			MySQL: config.MySQLConfig{User: mysqltest.AdminUser, ReplicationUser: mysqltest.ReplUser,
				ReplicationHeartbeat: 250 * time.Millisecond, ConnectTimeout: 300 * time.Millisecond, ReadTimeout: 5 * time.Second},
			Clusters: []config.ClusterConfig{{Name: "main", Instances: instances, Policy: harnessPolicy()}},
		}
		if k == mysqltest.MySQL {
			cfg.MySQL.TLS.InsecureSkipVerify = true
		}
		for _, o := range opts {
			o(&cfg)
		}
		ccfg := consensus.DefaultConfig()
		ccfg.NodeID, ccfg.RaftAddr, ccfg.DataDir, ccfg.Peers, ccfg.Instance = id, raftAddr(i), cfg.DataDir, cpeers, servers[i].Name
		ccfg.HeartbeatTimeout, ccfg.ElectionTimeout, ccfg.LeaderLeaseTimeout, ccfg.CommitTimeout = 200*time.Millisecond, 200*time.Millisecond, 150*time.Millisecond, 10*time.Millisecond
		ccfg.ApplyTimeout = 3 * time.Second
		h.setups = append(h.setups, agentSetup{cfg: cfg, ccfg: ccfg, infra: consensus.Infra{
			Transport: h.trans[i], LogStore: raft.NewInmemStore(), StableStore: raft.NewInmemStore(), SnapshotStore: raft.NewInmemSnapshotStore()}})
		node, a := h.startAgent(i)
		h.nodes = append(h.nodes, node)
		h.agents = append(h.agents, a)
	}
	t.Cleanup(h.close)
	for _, a := range h.agents {
		a.Start(context.Background())
	}
	return h
}

// startAgent builds agent i and its Raft node from its setup, over the
// setup's stores: on a restart they hold what the node wrote before, as a
// restarted process finds its data directory.
func (h *harness) startAgent(i int) (*consensus.Node, *Agent) {
	t := h.t
	t.Helper()
	su := h.setups[i]
	cfg := su.cfg
	log := slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: logLevel()})).With("agent", cfg.NodeID)
	node, err := consensus.StartWith(context.Background(), su.ccfg, log, su.infra)
	if err != nil {
		t.Fatal(err)
	}
	router := proxyhook.NewRouter(log)
	halt := func(_ string, ev failover.StepEvent) bool {
		h.mu.Lock()
		f := h.halt
		h.mu.Unlock()
		return f != nil && f(i, ev)
	}
	secrets := Secrets{MySQLPassword: mysqltest.AdminPassword, ReplicationPassword: mysqltest.ReplPassword}
	if cfg.MySQL.ReplicationPasswordEnv != "" {
		// A test's own replication password (withReplicationPasswordEnv).
		secrets.ReplicationPassword, _ = config.ReadSecret("", cfg.MySQL.ReplicationPasswordEnv)
	}
	a, err := New(cfg, secrets, node, h, Deps{Router: router, Halt: halt}, log)
	if err != nil {
		t.Fatal(err)
	}
	for _, cc := range cfg.Clusters {
		router.SetTargets(cc.Name, h.router)
	}
	return node, a
}

// restart starts agent i again after stop, as its process would be: the
// same configuration, Raft stores and transport, and a fresh agent that
// learns the replicated state from its log and its peers.
func (h *harness) restart(i int) {
	h.t.Helper()
	node, a := h.startAgent(i)
	h.mu.Lock()
	h.nodes[i], h.agents[i] = node, a
	delete(h.cut, a.ID())
	h.mu.Unlock()
	for j := range h.trans {
		if j != i {
			h.trans[i].Connect(h.trans[j].LocalAddr(), h.trans[j])
			h.trans[j].Connect(h.trans[i].LocalAddr(), h.trans[i])
		}
	}
	a.Start(context.Background())
}

func (h *harness) close() {
	for _, a := range h.agents {
		a.Close()
	}
	for _, n := range h.nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = n.Close(ctx)
		cancel()
	}
}

// stop closes agent i and its Raft node, as if its process died.
func (h *harness) stop(i int) {
	h.mu.Lock()
	h.cut[h.agents[i].ID()] = true
	h.mu.Unlock()
	h.agents[i].Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = h.nodes[i].Close(ctx)
}

// Deliver is the in-process report transport.
func (h *harness) Deliver(ctx context.Context, to string, r Report) error {
	h.mu.Lock()
	cut := h.cut[to] || h.cut[r.Agent]
	agents := slices.Clone(h.agents)
	h.mu.Unlock()
	if cut {
		return fmt.Errorf("%s → %s: network cut", r.Agent, to)
	}
	for _, a := range agents {
		if a.ID() == to {
			return a.Receive(r)
		}
	}
	return fmt.Errorf("no agent %s", to)
}

// isolate cuts agent i off from the other agents (Raft and reports), but
// not from the databases: the partition the self-fencing lease is for
// (docs/safety.md).
func (h *harness) isolate(i int) {
	h.mu.Lock()
	h.cut[h.agents[i].ID()] = true
	h.mu.Unlock()
	h.isolateRaft(i)
}

// isolateRaft cuts only agent i's Raft transport: its reports still reach
// the others (the API port open, the Raft port firewalled, or Raft TLS
// broken).
func (h *harness) isolateRaft(i int) {
	for j := range h.trans {
		if j != i {
			h.trans[i].Disconnect(h.trans[j].LocalAddr())
			h.trans[j].Disconnect(h.trans[i].LocalAddr())
		}
	}
}

// leader returns the index of the agent that leads, waiting for one.
func (h *harness) leader() int {
	h.t.Helper()
	var idx int
	h.eventually("a leader", 10*time.Second, func() (bool, string) {
		for i, n := range h.nodes {
			h.mu.Lock()
			gone := h.cut[h.agents[i].ID()]
			h.mu.Unlock()
			if !gone && n.IsLeader() {
				idx = i
				return true, ""
			}
		}
		return false, "no leader"
	})
	return idx
}

// cluster returns the replicated state as the leader sees it.
func (h *harness) cluster() consensus.Cluster {
	h.t.Helper()
	return h.clusterNamed("main")
}

// clusterNamed returns one cluster's replicated state as the leader sees it.
func (h *harness) clusterNamed(name string) consensus.Cluster {
	h.t.Helper()
	c, _ := h.nodes[h.leader()].State().Cluster(name)
	return c
}

// withCluster adds a second replication cluster, on servers db, whose
// instances (named prefix+server name) have no agent beside them.
func withCluster(name, prefix string, db *mysqltest.Cluster) harnessOpt {
	return func(c *config.Config) {
		cc := c.Clusters[0]
		cc.Name, cc.Instances = name, nil
		for _, s := range db.Servers() {
			cc.Instances = append(cc.Instances, config.InstanceConfig{Name: prefix + s.Name, Address: s.Addr()})
		}
		c.Clusters = append(c.Clusters, cc)
	}
}

// switchover asks the current leader for a switchover of cluster to
// instance to, and failover for a manual failover; both ask again until the
// request is accepted: a probe that timed out on a loaded machine makes the
// leader refuse one for a moment ("unreachable from the leader"), which is
// the refusal working, not the thing under test.
func (h *harness) switchover(cluster, to string) api.Operation {
	h.t.Helper()
	return h.accepted("switchover of "+cluster+" to "+to, func(ctx context.Context, a *Agent) (api.Operation, error) {
		return a.API().Switchover(ctx, cluster, api.SwitchoverRequest{To: to})
	})
}

func (h *harness) failover(cluster string, req api.FailoverRequest) api.Operation {
	h.t.Helper()
	return h.accepted("failover of "+cluster+" to "+req.To, func(ctx context.Context, a *Agent) (api.Operation, error) {
		return a.API().Failover(ctx, cluster, req)
	})
}

func (h *harness) accepted(what string, ask func(context.Context, *Agent) (api.Operation, error)) api.Operation {
	h.t.Helper()
	var op api.Operation
	h.eventually(what+" accepted", 20*time.Second, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		op, err = ask(ctx, h.agents[h.leader()])
		return err == nil, fmt.Sprint(err)
	})
	return op
}

// instance is the leader's view of one instance of cluster main.
func (h *harness) instance(name string) api.Instance {
	h.t.Helper()
	c, err := h.agents[h.leader()].API().Cluster(context.Background(), "main")
	if err != nil {
		h.t.Fatal(err)
	}
	for _, in := range c.Instances {
		if in.Name == name {
			return in
		}
	}
	h.t.Fatalf("no instance %s", name)
	return api.Instance{}
}

func (h *harness) eventually(what string, timeout time.Duration, cond func() (bool, string)) {
	h.t.Helper()
	mysqltest.Eventually(h.t, what, timeout, cond)
}

// recordingTarget is a routing target that records every change: a fake
// router, as the failover issue allows (real HAProxy is tested in proxyhook).
type recordingTarget struct {
	mu     sync.Mutex
	events []string
	epochs []uint64
	tokens []uint64
	refuse error // routes fail with it while set
}

func (r *recordingTarget) Name() string { return "recorder" }

// refuseRoutes makes every route change fail with err (nil: take them again).
func (r *recordingTarget) refuseRoutes(err error) {
	r.mu.Lock()
	r.refuse = err
	r.mu.Unlock()
}

func (r *recordingTarget) Route(_ context.Context, c proxyhook.RouteChange) (proxyhook.Outcome, error) {
	r.mu.Lock()
	err := r.refuse
	r.mu.Unlock()
	if err != nil {
		return proxyhook.Outcome{}, err
	}
	r.record(fmt.Sprintf("route %s epoch %d", c.NewPrimary.Name, c.Epoch), c.Epoch, c.Token)
	return proxyhook.Outcome{}, nil
}

func (r *recordingTarget) Unroute(_ context.Context, u proxyhook.UnrouteRequest) (proxyhook.Outcome, error) {
	r.record(fmt.Sprintf("unroute %s epoch %d", u.Old.Name, u.Epoch), u.Epoch, u.Token)
	return proxyhook.Outcome{}, nil
}

func (r *recordingTarget) record(ev string, epoch, token uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	r.epochs = append(r.epochs, epoch)
	r.tokens = append(r.tokens, token)
}

func (r *recordingTarget) seenTokens() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.tokens...)
}

func (r *recordingTarget) seen() ([]string, []uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...), append([]uint64(nil), r.epochs...)
}

// testLog sends agent logs to t.Log while the test runs.
type testLog struct {
	t   *testing.T
	mu  sync.Mutex
	all strings.Builder // every line, for tests that read the logs
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(p)
	if os.Getenv("REGENT_TEST_LOG") != "" {
		l.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// matching returns the lines logged so far that contain any of words.
func (l *testLog) matching(words ...string) string {
	var b strings.Builder
	for line := range strings.Lines(l.String()) {
		for _, w := range words {
			if strings.Contains(line, w) {
				b.WriteString(line)
				break
			}
		}
	}
	return b.String()
}

// String returns every line logged so far.
func (l *testLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

// raftAddr names agent i's in-memory Raft transport. No packet is sent: the
// address is only a key of raft.InmemTransport.
func raftAddr(i int) string { return fmt.Sprintf("127.0.0.1:%d", 17001+i) }

// logLevel is debug when REGENT_TEST_LOG=debug, info otherwise.
func logLevel() slog.Level {
	if os.Getenv("REGENT_TEST_LOG") == "debug" {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// harnessPolicy is the scenarios' failover policy: fast probing and
// detection, async unless a test asks for semi-sync.
func harnessPolicy() failover.Policy {
	p := config.DefaultPolicy()
	p.Durability = failover.DurabilityAsync
	p.ProbeInterval, p.ObservationTTL, p.FailureTimeout = 150*time.Millisecond, 450*time.Millisecond, time.Second
	p.FenceAfter, p.LeaseTimeout, p.AntiFlapPeriod = time.Second, 3*time.Second, time.Minute
	return p
}
