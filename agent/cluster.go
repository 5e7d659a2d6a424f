package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/config"
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
	// OnProbe, when set, is told how long each probe of an instance took
	// (metrics: probe latency across the fleet).
	OnProbe func(took time.Duration)
	// OnProbeRound, when set, is told how long each round of a cluster's
	// probes took and how many of its probe_interval ticks the round
	// missed by running past them (metrics: missed rounds).
	OnProbeRound func(took time.Duration, missed int)
	// Clock is the agent's, the lease's and the runner's clock; New takes
	// the wall clock when it is nil.
	Clock failover.Clock
	// Halt, when set, may stop an operation dead after any step, as if the
	// process had died there (tests: failover.RunnerConfig.Halt).
	Halt func(cluster string, ev failover.StepEvent) bool
}

// clusterRT is the run-time state of one replication cluster on this agent.
type clusterRT struct {
	a    *Agent
	name string
	cfg  config.ClusterConfig
	// definition is the replicated state's definition of a cluster added
	// at run time (nil: regent.yaml's).
	definition *consensus.Definition
	// stop ends the cluster's loops (Agent.startCluster); loops counts
	// them.
	stop  context.CancelFunc
	loops sync.WaitGroup
	// policy is regent.yaml's; the decisions use policyFor, which applies
	// the run-time settings of the replicated state over it.
	policy    failover.Policy
	effective atomic.Pointer[versionedRuntime]
	log       *slog.Logger
	clock     failover.Clock

	// members holds the current instances (set); open connects to one.
	members   atomic.Pointer[instanceSet]
	open      func(addr string, conns int) (*topology.Instance, error)
	prober    *prober
	stream    *primaryStream // nil when watch_binlog is off
	act       *actuator
	routing   *proxyhook.ClusterRouting
	router    *proxyhook.Router
	ownRouter bool

	// local is the name of this agent's local instance in this cluster ("").
	local               string
	localNet, localDial string
	localCheckEvery     time.Duration
	// watchedPID is the local mysqld's process the process watch holds a
	// pidfd on (0: none now).
	watchedPID atomic.Int64
	// host is how the local and process loops reach the host.
	host hostIO
	// notify sends this agent's report at once (Agent.publish).
	notify func(context.Context)

	mu          sync.Mutex
	localState  failover.LocalState
	localSince  time.Time
	localDetail string
	lease       *leaseKeeper       // nil without a local instance
	fenceInst   *topology.Instance // the lease's own pool to the local instance

	// leader side
	lmu      sync.Mutex
	lastSeen map[string]Observation
	errant   map[string]map[failover.AgentID]failover.ErrantJudgement
	backoff  map[string]time.Time // problem key → not before
	running  chan struct{}        // holds a token while the cluster is analysed or an operation runs
	// the last route reconciliation: the leadership generation and when
	routedGen uint64
	routedAt  time.Time
	// routeCheck is the outcome of the last reconciliation push, shown in
	// every view (failover.PrimaryNotRouted while it fails).
	routeCheck failover.RouteCheck
	runs       runs
	// deadAt wakes the leader loop when the primary will have been silent
	// for failure_timeout (failover.DeadAt).
	deadAt *time.Timer
}

func newClusterRT(a *Agent, cc config.ClusterConfig, secrets Secrets, tlsCfg *tls.Config, deps Deps) (*clusterRT, error) {
	c := &clusterRT{a: a, name: cc.Name, cfg: cc, policy: cc.Policy, log: a.log.With(logCluster, cc.Name),
		lastSeen: map[string]Observation{}, errant: map[string]map[failover.AgentID]failover.ErrantJudgement{}, backoff: map[string]time.Time{},
		localState: failover.LocalUnknown,
		runs:       runs{pending: map[string]api.Operation{}, blocked: map[string]blockedWindow{}, measuring: map[string]chan struct{}{}},
		running:    make(chan struct{}, 1)}
	c.clock = deps.Clock
	c.notify = func(ctx context.Context) { a.publish(ctx, cc.Name) }
	c.host = hostIO{dialLocal: localDial, findPID: c.findLocalPID, waitExit: waitProcessExit}
	timeout := cc.ProbeTimeoutOrDefault()
	localAddress := ""
	open := func(addr string, conns int) (*topology.Instance, error) {
		return topology.Open(topology.ConnConfig{
			Addr: addr, User: a.cfg.MySQL.User, Password: secrets.MySQLPassword,
			ConnectTimeout: orDur(a.cfg.MySQL.ConnectTimeout, timeout), ReadTimeout: orDur(a.cfg.MySQL.ReadTimeout, 10*time.Second),
			WriteTimeout: orDur(a.cfg.MySQL.ReadTimeout, 10*time.Second), TLS: tlsCfg, MaxOpenConns: conns,
		}, a.log)
	}
	c.open = open
	insts := map[string]*topology.Instance{}
	c.members.Store(newInstanceSet(0, cc.Instances, insts))
	for _, in := range cc.Instances {
		inst, err := open(in.Address, 3)
		if err != nil {
			c.close()
			return nil, fmt.Errorf("clusters[%s].instances[%s]: %w", cc.Name, in.Name, err)
		}
		insts[in.Name] = inst
		if in.Name == a.cfg.LocalInstance && in.Agent == a.cfg.NodeID {
			c.local, localAddress = in.Name, in.Address
			c.localNet, c.localDial = localAddr(a.cfg, in.Address)
		}
	}
	if c.local != "" {
		// The lease fences through a pool of its own: probes stuck on a
		// hung server must not starve it.
		fi, err := open(localAddress, 2)
		if err != nil {
			c.close()
			return nil, fmt.Errorf("clusters[%s].instances[%s]: %w", cc.Name, c.local, err)
		}
		c.fenceInst = fi
		c.lease = &leaseKeeper{policy: c.policy, local: c.local, clock: c.clock, log: c.log,
			contact: a.raft.LastQuorumContact, caughtUp: a.raft.CaughtUp, leads: a.raft.IsLeader, state: c.state, effective: c.pol,
			fencer:  instanceFencer{inst: fi, keepUsers: []string{a.cfg.MySQL.ReplicationUser}, pid: func() int { return int(c.watchedPID.Load()) }},
			changed: c.notify,
			fenced: func(ctx context.Context, why string) {
				c.runFenceHooks(ctx, why)
				// Re-probe so that the leader sees read_only at once.
				c.prober.probeOne(ctx, c.local, c.set().insts[c.local])
				c.notify(ctx)
			}}
	}
	if cc.WatchesBinlog() {
		c.stream = newPrimaryStream(c, a.id, a.cfg.MySQL.ReplicationUser, secrets.ReplicationPassword, tlsCfg,
			orDur(a.cfg.MySQL.ConnectTimeout, timeout))
	}
	c.localCheckEvery = max(50*time.Millisecond, c.policy.ProbeInterval/5)
	c.prober = newProber(cc.Name, timeout, c.set)
	c.prober.observe = a.deps.OnProbe
	c.prober.slots = a.probeSlots
	c.prober.now = c.now
	c.prober.primary = func() (string, uint64) {
		if st := c.state(); st != nil {
			return st.Primary, st.Epoch
		}
		return "", 0
	}
	rt := a.cfg.MySQL.ReplicationTLS
	c.act = &actuator{cluster: cc.Name, prober: c.prober, set: c.set,
		repl: replicationAuth{User: a.cfg.MySQL.ReplicationUser, Password: secrets.ReplicationPassword,
			Heartbeat: orDur(a.cfg.MySQL.ReplicationHeartbeat, 500*time.Millisecond),
			TLS:       topology.ReplicationTLS{Enabled: rt.Enabled, CAFile: rt.CAFile, CertFile: rt.CertFile, KeyFile: rt.KeyFile, VerifyServerCert: rt.VerifyServerCert}},
		keepUsers: []string{a.cfg.MySQL.ReplicationUser}, semiWaitFor: c.policy.SemiSyncWaitFor}
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
	c.lmu.Lock()
	if c.deadAt != nil {
		c.deadAt.Stop()
	}
	c.lmu.Unlock()
	if set := c.members.Load(); set != nil {
		for _, i := range set.insts {
			_ = i.Close()
		}
	}
	if c.fenceInst != nil {
		_ = c.fenceInst.Close()
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
		c.syncInstances(c.state())
		start := time.Now()
		c.prober.round(ctx)
		if f := c.a.deps.OnProbeRound; f != nil && ctx.Err() == nil {
			took := time.Since(start)
			// The ticker drops the ticks a long round runs past.
			f(took, int(took/c.policy.ProbeInterval))
		}
		c.notify(ctx)
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
		state, detail, conn := c.host.dialLocal(ctx, c.localNet, c.localDial, c.set().addrs[c.local], c.localCheckEvery)
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

// setLocal records what a watch of the local mysqld saw. The process
// watch's "exited" and the dial's "refused" often come within microseconds
// of each other; whichever comes second keeps the first's detail in front.
func (c *clusterRT) setLocal(ctx context.Context, state failover.LocalState, detail string) {
	c.mu.Lock()
	changed := state != c.localState
	if changed {
		c.localState, c.localSince = state, c.now()
	} else if state == failover.LocalGone && c.localDetail != "" && !strings.Contains(c.localDetail, detail) {
		if strings.Contains(detail, "exited") {
			detail = detail + "; " + c.localDetail
		} else if strings.Contains(c.localDetail, "exited") {
			detail = c.localDetail
		}
	}
	c.localDetail = detail
	c.mu.Unlock()
	if changed {
		c.log.Info("local mysqld state", logInstance, c.local, "state", state, "detail", detail)
		c.notify(ctx)
	}
}

// now reads the agent's clock (Deps.Clock).
func (c *clusterRT) now() time.Time { return c.clock.Now() }

// report is this agent's view of the cluster.
func (c *clusterRT) report() ClusterReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := ClusterReport{Observations: c.prober.snapshot(), LeaseHeld: c.LeaseHeld()}
	if c.stream != nil {
		for name, o := range r.Observations {
			if so := c.stream.observation(name); so != nil {
				o.Stream = so
				r.Observations[name] = o
			}
		}
	}
	if c.local != "" {
		r.Local, r.LocalSince, r.LocalDetail = c.localState, c.localSince, c.localDetail
	}
	return r
}

// LeaseHeld reports whether this agent holds its lease: only then may its
// local instance be the writable primary. An agent without a local instance
// has nothing to fence and always holds it.
func (c *clusterRT) LeaseHeld() bool {
	if c.lease == nil {
		return true
	}
	return c.lease.heldNow()
}

// state returns the replicated state of the cluster (nil before InitCluster).
func (c *clusterRT) state() *consensus.Cluster {
	st, ok := c.a.raft.Cluster(c.name)
	if !ok {
		return nil
	}
	return &st
}

// stateAt is state with the Raft index it reflects, read together.
func (c *clusterRT) stateAt() (*consensus.Cluster, uint64) {
	st, index, ok := c.a.raft.ClusterAt(c.name)
	if !ok {
		return nil, index
	}
	return &st, index
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
	in := proxyhook.HookInput{Cluster: c.name, Operation: "fence", Epoch: epoch, OldPrimary: routerAdapter{c: c}.endpoint(c.local), Reason: why}
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
