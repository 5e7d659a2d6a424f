package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/proxyhook"
	"github.com/regentdb/regent/topology"
)

// Deps are the optional collaborators of an agent.
type Deps struct {
	// Router moves write routes; nil builds one from each cluster's routing
	// configuration.
	Router *proxyhook.Router
	// HookOptions are passed to the hooks of every cluster.
	HookOptions proxyhook.HooksOptions
	// Observe, when set, is told about every finished operation (metrics).
	Observe func(cluster string, res failover.RunResult)
	// OnStep, when set, is told about every step as it happens (progress).
	OnStep func(cluster string, ev failover.StepEvent)
	// OnDetect, when set, is told how long after the first evidence a dead
	// or isolated primary was acted on (metrics).
	OnDetect func(cluster string, latency time.Duration)
}

// clusterRT is the run-time state of one replication cluster on this agent.
type clusterRT struct {
	a      *Agent
	name   string
	cfg    ClusterConfig
	policy failover.Policy
	log    *slog.Logger

	instances map[string]*topology.Instance
	addrs     map[string]string
	prober    *prober
	act       *actuator
	routing   *proxyhook.ClusterRouting
	router    *proxyhook.Router
	ownRouter bool

	// local is the name of this agent's local instance in this cluster ("").
	local               string
	localNet, localDial string
	localCheckEvery     time.Duration

	mu          sync.Mutex
	localState  failover.LocalState
	localSince  time.Time
	localDetail string
	leaseHeld   bool
	fencedOp    string // the operation whose intent made this agent fence

	// leader side
	lmu      sync.Mutex
	lastSeen map[string]Observation
	errant   map[string]failover.GTIDSet
	backoff  map[string]time.Time // problem key → not before
	running  chan struct{}        // holds a token while the cluster is analysed or an operation runs
	runs     runs
}

func newClusterRT(a *Agent, cc ClusterConfig, secrets Secrets, tlsCfg *tls.Config, deps Deps) (*clusterRT, error) {
	c := &clusterRT{a: a, name: cc.Name, cfg: cc, policy: cc.Policy(), log: a.log.With(logCluster, cc.Name),
		instances: map[string]*topology.Instance{}, addrs: map[string]string{},
		lastSeen: map[string]Observation{}, errant: map[string]failover.GTIDSet{}, backoff: map[string]time.Time{},
		localState: failover.LocalUnknown, leaseHeld: true,
		runs:    runs{pending: map[string]api.Operation{}, blocked: map[string]time.Duration{}},
		running: make(chan struct{}, 1)}
	timeout := cc.probeTimeout()
	for _, in := range cc.Instances {
		inst, err := topology.Open(topology.ConnConfig{
			Addr: in.Address, User: a.cfg.MySQL.User, Password: secrets.MySQLPassword,
			ConnectTimeout: orDur(a.cfg.MySQL.ConnectTimeout, timeout), ReadTimeout: orDur(a.cfg.MySQL.ReadTimeout, 10*time.Second),
			WriteTimeout: orDur(a.cfg.MySQL.ReadTimeout, 10*time.Second), TLS: tlsCfg, MaxOpenConns: 3,
		}, a.log)
		if err != nil {
			c.close()
			return nil, fmt.Errorf("clusters[%s].instances[%s]: %w", cc.Name, in.Name, err)
		}
		c.instances[in.Name] = inst
		c.addrs[in.Name] = in.Address
		if in.Name == a.cfg.LocalInstance {
			c.local = in.Name
			c.localNet, c.localDial = localAddr(a.cfg, in.Address)
		}
	}
	c.localCheckEvery = max(50*time.Millisecond, c.policy.ProbeInterval/5)
	c.prober = newProber(cc.Name, timeout, c.instances, c.addrs)
	c.prober.primary = func() string {
		if st := c.state(); st != nil {
			return st.Primary
		}
		return ""
	}
	rt := a.cfg.MySQL.ReplicationTLS
	c.act = &actuator{cluster: cc.Name, prober: c.prober, instances: c.instances, addrs: c.addrs,
		repl: replicationAuth{User: a.cfg.MySQL.ReplicationUser, Password: secrets.ReplicationPassword,
			Heartbeat: orDur(a.cfg.MySQL.ReplicationHeartbeat, time.Second),
			TLS:       topology.ReplicationTLS{Enabled: rt.Enabled, CAFile: rt.CAFile, CertFile: rt.CertFile, KeyFile: rt.KeyFile, VerifyServerCert: rt.VerifyServerCert}},
		keepUsers: []string{a.cfg.MySQL.ReplicationUser}}
	routing, err := proxyhook.NewClusterRouting(cc.Routing, deps.HookOptions, c.log)
	if err != nil {
		c.close()
		return nil, fmt.Errorf("clusters[%s].routing: %w", cc.Name, err)
	}
	c.routing = routing
	c.router = deps.Router
	if c.router == nil {
		c.router = proxyhook.NewRouter(c.log)
		c.ownRouter = true
	}
	c.router.SetTargets(cc.Name, routing.Targets...)
	return c, nil
}

func orDur(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (c *clusterRT) close() {
	for _, i := range c.instances {
		_ = i.Close()
	}
	if c.ownRouter && c.router != nil {
		_ = c.router.Close()
	}
}

// probeLoop probes every instance each probe_interval and sends the report.
func (c *clusterRT) probeLoop(ctx context.Context) {
	t := time.NewTicker(c.policy.ProbeInterval)
	defer t.Stop()
	for {
		c.prober.round(ctx)
		c.a.publish(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// localLoop watches the local mysqld by holding a connection to its socket
// or port without logging in. The server closes it after connect_timeout
// when healthy, and at once when it dies; either way the loop dials again at
// once, and a refused dial is the fast path's evidence, reported to the
// leader immediately. This costs one connection per connect_timeout instead
// of a dial every few milliseconds (each of which the server logs as an
// aborted connection).
func (c *clusterRT) localLoop(ctx context.Context) {
	for ctx.Err() == nil {
		state, detail, conn := localDial(ctx, c.localNet, c.localDial, c.addrs[c.local], c.localCheckEvery)
		c.setLocal(ctx, state, detail)
		if conn == nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(c.localCheckEvery):
			}
			continue
		}
		waitClosed(ctx, conn)
	}
}

func (c *clusterRT) setLocal(ctx context.Context, state failover.LocalState, detail string) {
	c.mu.Lock()
	changed := state != c.localState
	if changed {
		c.localState, c.localSince = state, time.Now()
	}
	c.localDetail = detail
	c.mu.Unlock()
	if changed {
		c.log.Info("local mysqld state", logInstance, c.local, "state", state, "detail", detail)
		c.a.publish(ctx)
	}
}

// leaseLoop enforces DESIGN §3.3 on the local instance: without contact with
// the Raft quorum for fence_after, or when the replicated state says another
// instance is primary, or when an operation replacing it has begun, the local
// instance is made read-only and its client sessions are killed.
func (c *clusterRT) leaseLoop(ctx context.Context) {
	if c.local == "" {
		return
	}
	every := max(20*time.Millisecond, c.policy.FenceAfter/5)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c.checkLease(ctx)
	}
}

func (c *clusterRT) checkLease(ctx context.Context) {
	held := time.Since(c.a.raft.LastQuorumContact()) < c.policy.FenceAfter
	st := c.state()
	var why, opID string
	switch {
	case !held:
		why = fmt.Sprintf("lost contact with the Raft quorum for more than fence_after (%v)", c.policy.FenceAfter)
	case st != nil && st.Operation != nil && st.Operation.Kind.ChangesPrimary() &&
		st.Operation.Kind != consensus.KindSwitchover && st.Operation.OldPrimary == c.local:
		// A failover replacing this instance: the leader may not reach it,
		// so its agent fences it. A switchover fences the old primary
		// itself, after waiting for long write transactions: fencing here
		// would start the write-blocked window early.
		opID = st.Operation.ID
		why = fmt.Sprintf("operation %s (%s) is replacing it", st.Operation.ID, st.Operation.Kind)
	case st != nil && st.Operation != nil && st.Operation.Kind.ChangesPrimary():
		// A promotion is under way: the promoted instance is writable a
		// moment before the new epoch is committed. The leader fenced the
		// old primary; wait for the commit.
	case st != nil && st.Primary != "" && st.Primary != c.local:
		why = fmt.Sprintf("the replicated state names %s primary in epoch %d", st.Primary, st.Epoch)
	}
	c.mu.Lock()
	wasHeld := c.leaseHeld
	c.leaseHeld = held && opID == ""
	nowHeld := c.leaseHeld
	already := opID != "" && c.fencedOp == opID
	c.mu.Unlock()
	if wasHeld != nowHeld {
		level := slog.LevelInfo
		if !nowHeld {
			level = slog.LevelWarn
		}
		c.log.Log(ctx, level, "lease", "held", nowHeld, "quorum_contact", held)
		defer c.a.publish(ctx) // after fencing: reports must not delay it
	}
	if why == "" || already {
		return
	}
	// Fence only a writable instance; the probe is cheap and avoids killing
	// sessions on a replica every tick.
	obs := c.prober.snapshot()[c.local]
	if !obs.Reachable || (obs.ReadOnly || obs.SuperReadOnly) && opID == "" {
		return
	}
	// Until the lease would lapse on the leader's side: this must hold.
	fctx, cancel := context.WithTimeout(ctx, c.policy.LeaseTimeout-c.policy.FenceAfter)
	defer cancel()
	if err := c.act.SetReadOnly(fctx, c.local, true); err != nil {
		c.log.Error("self-fencing: cannot set read_only", logInstance, c.local, "why", why, logErr, err)
		return
	}
	c.log.Warn("self-fenced the local instance: read_only=ON, client sessions killed", logInstance, c.local, "why", why)
	c.runFenceHooks(ctx, why)
	c.mu.Lock()
	if opID != "" {
		c.fencedOp = opID
	}
	c.mu.Unlock()
	// Re-probe so that the leader sees read_only at once.
	c.prober.probeOne(ctx, c.local, c.instances[c.local])
	c.a.publish(ctx)
}

// report is this agent's view of the cluster.
func (c *clusterRT) report() ClusterReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := ClusterReport{Observations: c.prober.snapshot(), LeaseHeld: c.leaseHeld}
	if c.local != "" {
		r.Local, r.LocalSince, r.LocalDetail = c.localState, c.localSince, c.localDetail
	}
	return r
}

// LeaseHeld reports whether this agent lets its local instance be writable.
func (c *clusterRT) LeaseHeld() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leaseHeld
}

// state returns the replicated state of the cluster (nil before InitCluster).
func (c *clusterRT) state() *consensus.Cluster {
	st, ok := c.a.raft.State().Cluster(c.name)
	if !ok {
		return nil
	}
	return &st
}

// tryLock takes the cluster for an analysis round without waiting.
func (c *clusterRT) tryLock() bool {
	select {
	case c.running <- struct{}{}:
		return true
	default:
		return false
	}
}

// lock takes the cluster for an operation, waiting for a running analysis
// or small repair to finish, at most until ctx ends.
func (c *clusterRT) lock(ctx context.Context) bool {
	select {
	case c.running <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (c *clusterRT) unlock() { <-c.running }

// runFenceHooks tells the operator's "fence" hooks that this agent fenced its
// local instance. It runs in the background, bounded by the hook timeout: a
// slow hook must not delay the next lease check.
func (c *clusterRT) runFenceHooks(ctx context.Context, why string) {
	if c.routing == nil || c.routing.Hooks == nil || len(c.routing.Hooks.For(proxyhook.EventFence)) == 0 {
		return
	}
	epoch := uint64(0)
	if st := c.state(); st != nil {
		epoch = st.Epoch
	}
	in := proxyhook.HookInput{Cluster: c.name, Operation: "fence", Epoch: epoch, OldPrimary: routerAdapter{c}.endpoint(c.local), Reason: why}
	c.a.wg.Add(1)
	go func() {
		defer c.a.wg.Done()
		hctx, cancel := context.WithTimeout(ctx, c.policy.HookTimeout)
		defer cancel()
		if _, err := c.routing.Hooks.Run(hctx, proxyhook.EventFence, in); err != nil {
			c.log.Warn("fence hook failed", logErr, err)
		}
	}()
}
