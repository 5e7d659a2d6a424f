// Package agent is one Regent agent at run time: it probes every instance,
// enforces the self-fencing lease on its local instance, sends its
// observations to the Raft leader, and — when it leads — analyses each
// replication cluster and runs the failover package's plans.
//
// It is the place where topology, consensus, proxyhook and failover meet:
// it adapts the first three to the small interfaces failover declares.
// cmd/regent only loads the configuration, starts Raft and the HTTP server,
// and hands them to New.
//
// # Loops and what flows between them
//
// Start runs, for each replication cluster, the loops on the left; the
// leader loop runs once per agent and acts only while its Raft node leads.
//
//	probeLoop (every instance,        ──Report──▶ Transport ──▶ Receive (the
//	  each probe_interval)                         (HTTPS,       leader): rebased
//	localLoop (held connection to     ──Report──▶   agent        to its clock,
//	  the local mysqld: refused =                   certificate) kept per agent
//	  gone, reported at once)                                         │
//	processLoop (pidfd on the local   ──Report──▶                     ▼
//	  mysqld: exit = gone)                           leaderLoop ─▶ evaluate:
//	stream.loop (binlog stream from   ──its last packet,              view (reports +
//	  the primary, heartbeats)          in each Report                own probes +
//	                                                                  replicated state)
//	                                                  ─▶ failover.Analyze
//	lease.loop (quorum contact ─▶ failover.DecideLease  ─▶ failover.PlanAction
//	  ─▶ fence / escalate the local instance)          ─▶ run: failover.Runner
//	                                                      through actuator
//	                                                      (topology), store
//	                                                      (consensus), router
//	                                                      and hooks (proxyhook)
//
// The replicated state (consensus) is the only thing the agents share: the
// committed primary and epoch, an operation in progress, the history,
// quarantine, maintenance, pause and the anti-flap window. Every agent
// reads it to serve /primary and the API (type API, backend.go: Agent.API
// hands it to the HTTP server) and its lease keeper reads
// it to fence a local instance that another has replaced. Only the leader
// writes it, through the runner's steps. The agent reads the time from
// Deps.Clock, and the loops reach the host and the network through seams
// (hostIO, prober.probe, primaryStream.watch) that their tests replace to
// run them in simulated time (docs/architecture.md).
package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/regentdb/regent/config"
	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/topology"
)

// Log keys.
const (
	logCluster  = "cluster"
	logInstance = "instance"
	logErr      = "err"
	logAgent    = "agent"
	logProblem  = "problem"
	logOp       = "operation"
)

// Report is what an agent tells the leader after every probe round, and at
// once when its local mysqld disappears.
type Report struct {
	Agent    string                   `json:"agent"`
	SentAt   time.Time                `json:"sent_at"`
	Clusters map[string]ClusterReport `json:"clusters"`
}

// ClusterReport is an agent's view of one replication cluster.
type ClusterReport struct {
	Observations map[string]Observation `json:"observations"`
	// LeaseHeld: the agent may let its local instance be writable.
	LeaseHeld   bool                `json:"lease_held"`
	Local       failover.LocalState `json:"local,omitempty"`
	LocalSince  time.Time           `json:"local_since,omitzero"`
	LocalDetail string              `json:"local_detail,omitempty"`
}

// Transport carries reports to the leader.
type Transport interface {
	// Deliver sends r to the agent with id to (the Raft leader).
	Deliver(ctx context.Context, to string, r Report) error
}

// Raft is what the agent needs of the consensus node; *consensus.Node has it.
type Raft interface {
	ID() string
	IsLeader() bool
	Leader() consensus.LeaderInfo
	WatchLeadership() (<-chan consensus.Leadership, func())
	Propose(ctx context.Context, cmd consensus.Command) (consensus.Outcome, error)
	Barrier(ctx context.Context) error
	VerifyLeader(ctx context.Context) error
	State() consensus.State
	StateAt() (consensus.State, uint64)
	// Cluster, ClusterAt, Defined and MemberIDs read a part of the state
	// without copying the rest: the loops of every cluster call them on
	// every round, and their cost must not grow with the fleet.
	Cluster(name string) (consensus.Cluster, bool)
	ClusterAt(name string) (consensus.Cluster, uint64, bool)
	Defined() map[string]consensus.Definition
	MemberIDs() []string
	AppliedIndex() uint64
	LastQuorumContact() time.Time
	// CaughtUp reports whether this node has applied every entry it knows
	// committed.
	CaughtUp() bool
	// Restored reports whether this node has applied its log as far as
	// it had it at start (after a restart the state lags until it has).
	Restored() bool
	PeerContacts() ([]consensus.PeerContact, error)
	// SetVitals and PeerVitals carry each agent's latest probe of its
	// local instance on the lease channel's pings (vitals.go).
	SetVitals(func() consensus.Vitals)
	PeerVitals() map[string]consensus.PeerVitals
}

var _ Raft = (*consensus.Node)(nil)

// Agent is one running agent.
type Agent struct {
	id        string
	cfg       config.Config
	raft      Raft
	transport Transport
	log       *slog.Logger

	// clusters holds the replication clusters this agent runs, by name:
	// regent.yaml's and those added at run time (defined.go). The map is
	// never changed; a change stores a new one (under defineMu).
	clusters atomic.Pointer[map[string]*clusterRT]
	defineMu sync.Mutex
	// secrets and mysqlTLS build the clusters added at run time.
	secrets  Secrets
	mysqlTLS *tls.Config

	mu       sync.Mutex
	received map[string]receivedReport  // latest report per agent
	sending  map[string]bool            // a delivery to this agent is in flight
	pending  map[string]map[string]bool // clusters to send to this agent next
	kick     chan struct{}              // wakes the leader loop
	// slots bounds the automatic operations running at once
	// (max_parallel_operations): one token per running operation.
	slots chan struct{}
	// probeSlots bounds the probes running at once across all clusters
	// (max_parallel_probes).
	probeSlots chan struct{}
	// leaderGen grows each time this agent starts leading (after its
	// Barrier): clusters reconcile their routes on a new generation.
	leaderGen atomic.Uint64

	deps Deps
	// openMySQL opens a server at an address with Regent's own account
	// (discovery).
	openMySQL func(addr string) (*topology.Instance, error)
	runCtx    context.Context // ends at Close: operations started by the API run in it
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closed    sync.Once
}

type receivedReport struct {
	Report
	At time.Time // leader's clock
}

// Secrets are the passwords the agent needs, read by the caller from files
// or the environment.
type Secrets struct {
	MySQLPassword       string
	ReplicationPassword string
}

// New builds an agent from a validated configuration. Nothing runs until
// Start.
func New(cfg config.Config, secrets Secrets, raft Raft, transport Transport, deps Deps, log *slog.Logger) (*Agent, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if deps.Clock == nil {
		deps.Clock = clock{}
	}
	a := &Agent{id: cfg.NodeID, cfg: cfg, raft: raft, transport: transport, log: log, deps: deps,
		secrets: secrets, received: map[string]receivedReport{}, sending: map[string]bool{}, pending: map[string]map[string]bool{}, kick: make(chan struct{}, 1),
		slots: make(chan struct{}, cfg.ParallelOperations()), probeSlots: make(chan struct{}, cfg.ParallelProbes())}
	tlsCfg, err := mysqlTLS(cfg)
	if err != nil {
		return nil, err
	}
	a.mysqlTLS = tlsCfg
	clusters := map[string]*clusterRT{}
	a.clusters.Store(&clusters)
	a.openMySQL = func(addr string) (*topology.Instance, error) {
		return topology.Open(topology.ConnConfig{
			Addr: addr, User: cfg.MySQL.User, Password: secrets.MySQLPassword,
			ConnectTimeout: orDur(cfg.MySQL.ConnectTimeout, time.Second), ReadTimeout: orDur(cfg.MySQL.ReadTimeout, 10*time.Second),
			WriteTimeout: orDur(cfg.MySQL.ReadTimeout, 10*time.Second), TLS: tlsCfg, MaxOpenConns: 1,
		}, log)
	}
	for _, cc := range cfg.Clusters {
		if err := cc.Policy.Validate(); err != nil {
			return nil, fmt.Errorf("clusters[%s]: %w", cc.Name, err)
		}
		c, err := newClusterRT(a, cc, secrets, tlsCfg, deps)
		if err != nil {
			a.closeClusters()
			return nil, err
		}
		clusters[cc.Name] = c
	}
	raft.SetVitals(a.vitals)
	return a, nil
}

// mysqlTLS is the TLS configuration of Regent's own MySQL connections; nil
// for plain text.
func mysqlTLS(cfg config.Config) (*tls.Config, error) {
	t := cfg.MySQL.TLS
	if !t.Enabled && !t.TLSFilesConfig.Enabled() && !t.InsecureSkipVerify {
		return nil, nil
	}
	c, err := topology.ClientTLS(topology.TLSFiles{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile,
		ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify})
	if err != nil {
		return nil, fmt.Errorf("mysql.tls: %w", err)
	}
	return c, nil
}

// Start runs the agent's loops until Close.
func (a *Agent) Start(ctx context.Context) {
	ctx, a.cancel = context.WithCancel(context.WithoutCancel(ctx))
	a.runCtx = ctx
	for _, c := range a.rts() {
		a.startCluster(ctx, c)
	}
	a.wg.Add(2)
	go func() { defer a.wg.Done(); a.leaderLoop(ctx, (*clusterRT).evaluate) }()
	go func() { defer a.wg.Done(); a.definedLoop(ctx) }()
}

// startCluster runs a cluster's loops until ctx ends or the cluster is
// stopped (stopCluster).
func (a *Agent) startCluster(ctx context.Context, c *clusterRT) {
	ctx, c.stop = context.WithCancel(ctx)
	run := func(loop func(context.Context)) {
		a.wg.Add(1)
		c.loops.Add(1)
		go func() { defer a.wg.Done(); defer c.loops.Done(); loop(ctx) }()
	}
	run(c.probeLoop)
	if c.stream != nil {
		run(c.stream.loop)
	}
	if c.local != "" {
		run(c.lease.loop)
		run(c.localLoop)
		run(c.processLoop)
	}
}

// rts returns the clusters this agent runs, by name (never changed: see
// Agent.clusters).
func (a *Agent) rts() map[string]*clusterRT {
	if m := a.clusters.Load(); m != nil {
		return *m
	}
	return nil
}

// Close stops every loop, waits for them and closes the connection pools.
// Safe to call more than once.
func (a *Agent) Close() {
	a.closed.Do(func() {
		if a.cancel != nil {
			a.cancel()
		}
		a.wg.Wait()
		a.closeClusters()
	})
}

func (a *Agent) closeClusters() {
	for _, c := range a.rts() {
		c.close()
	}
}

// rebaseReport moves every time in r from the sender's clock to the
// leader's: the leader compares them with its own clock (is a probe fresh,
// did another agent reach the instance after its own agent reported it
// gone), and agents' clocks differ. Each time keeps the age the sender gave
// it at SentAt, anchored at now, the receipt: only the transit time is lost
// (the report looks that much fresher). Then no time may lie after now: a
// later one is clamped to now, so that no observation stays fresh for ever
// and no "mysqld gone" claim is dated beyond any probe that could contradict
// it (Receive refuses reports dated far ahead of their own sent_at). A
// report without SentAt keeps its times, clamped. The maps are copied:
// in-process transports share them with the sender.
func rebaseReport(r Report, now time.Time) Report {
	var shift time.Duration
	if !r.SentAt.IsZero() {
		shift = now.Sub(r.SentAt)
	}
	out := r.clone()
	out.eachTime(func(t *time.Time) {
		if t.IsZero() {
			return
		}
		*t = t.Add(shift)
		if t.After(now) {
			*t = now
		}
	})
	if !r.SentAt.IsZero() {
		out.SentAt = now
	}
	return out
}

// clone copies r deeply enough that eachTime may change the copy.
func (r Report) clone() Report {
	out := Report{Agent: r.Agent, SentAt: r.SentAt, Clusters: make(map[string]ClusterReport, len(r.Clusters))}
	for name, cr := range r.Clusters {
		obs := make(map[string]Observation, len(cr.Observations))
		for inst, o := range cr.Observations {
			if o.Stream != nil {
				st := *o.Stream
				o.Stream = &st
			}
			if o.Replica != nil {
				rep := *o.Replica
				o.Replica = &rep
			}
			obs[inst] = o
		}
		cr.Observations = obs
		out.Clusters[name] = cr
	}
	return out
}

// eachTime calls f with every time of the report's contents (not SentAt).
// Map entries are written back, so f may change them; pointed-to structs
// are changed in place (clone first).
func (r *Report) eachTime(f func(*time.Time)) {
	for name, cr := range r.Clusters {
		f(&cr.LocalSince)
		for inst, o := range cr.Observations {
			f(&o.ObservedAt)
			f(&o.FailingSince)
			f(&o.SemiSyncShortSince)
			f(&o.LastReachedAt)
			if o.Stream != nil {
				f(&o.Stream.HeardAt)
			}
			if o.Replica != nil {
				f(&o.Replica.LastProgressAt)
			}
			cr.Observations[inst] = o
		}
		r.Clusters[name] = cr
	}
}

// ID is the agent's node id.
func (a *Agent) ID() string { return a.id }

// Receive takes a report from another agent (the HTTP handler calls it on
// the leader, once it has checked who sent it) or from this agent itself.
// It refuses, with a *ReportError, a report that names no known agent, has
// no sent_at, was sent at a time further from this agent's clock than
// maxReportSkew, or holds a time more than reportFutureSlack after its own
// sent_at: no agent can have observed anything after it sent its report,
// and a "mysqld gone" claim dated in the future would defeat the fast
// path's contradiction check for as long as it lasted (issue 11). The times
// of an accepted report are rebased to this agent's clock and clamped to the
// receipt (rebaseReport).
func (a *Agent) Receive(r Report) error {
	now := a.now()
	if err := a.checkReport(r, now); err != nil {
		return err
	}
	r = rebaseReport(r, now)
	gone := false
	a.mu.Lock()
	// A report carries the clusters that changed since the sender's last
	// one (publish): it replaces those and keeps the others, in place (no
	// copy of the sender's other clusters per report: at a thousand clusters
	// that was the receiver's largest cost). Readers copy out the one
	// cluster they read (reportsOf).
	cur := a.received[r.Agent]
	if cur.Clusters == nil {
		cur.Clusters = make(map[string]ClusterReport, len(r.Clusters))
	}
	for name, cr := range r.Clusters {
		// A local mysqld that just went away is the fast path: evaluate now.
		if cr.Local == failover.LocalGone && cur.Clusters[name].Local != failover.LocalGone {
			gone = true
		}
		cur.Clusters[name] = cr
	}
	cur.Agent, cur.SentAt, cur.At = r.Agent, r.SentAt, now
	a.received[r.Agent] = cur
	a.mu.Unlock()
	if gone {
		a.wake()
	}
	return nil
}

func (a *Agent) knownAgent(id string) bool { return a.agentIDs()[id] }

// agentIDs is every agent this one knows of: the configured peers and the
// replicated member table (agents added at run time).
func (a *Agent) agentIDs() map[string]bool {
	ids := map[string]bool{}
	for _, p := range a.cfg.Raft.Peers {
		ids[p.ID] = true
	}
	for _, id := range a.raft.MemberIDs() {
		ids[id] = true
	}
	return ids
}

func (a *Agent) wake() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// clusterReport builds this agent's report of the named clusters (those it
// still runs). It is dated when complete, so that nothing in it is later
// than its sent_at.
func (a *Agent) clusterReport(names []string) Report {
	r := Report{Agent: a.id, Clusters: make(map[string]ClusterReport, len(names))}
	rts := a.rts()
	for _, name := range names {
		if c, ok := rts[name]; ok {
			r.Clusters[name] = c.report()
		}
	}
	r.SentAt = a.now()
	return r
}

// maxReportClusters bounds the clusters one delivery carries, and so its
// size (a cluster's report is a few KiB; the receiver takes at most
// maxReportBytes): a peer that missed many is caught up over several.
const maxReportClusters = 100

// publish sends this agent's view of one cluster (after each of its probe
// rounds, and when its local mysqld changes state) to every other agent and
// keeps it locally: the leader decides on it, and every agent can then show
// the same analysis on its status page. The receivers merge it into what
// they hold (Receive), so a report carries only the clusters that changed
// since the last one: the cost follows the probes, not the fleet squared.
// Deliveries run in the background — a dead peer must not hold up a probe
// round or a fence — one at a time per peer; the clusters that change
// while one is in flight go in the next, at most maxReportClusters at a
// time. A failed delivery is not retried: each cluster is sent again after
// its next probe round.
func (a *Agent) publish(ctx context.Context, cluster string) {
	_ = a.Receive(a.clusterReport([]string{cluster}))
	if a.transport == nil || ctx.Err() != nil {
		return
	}
	ids := a.agentIDs()
	delete(ids, a.id)
	for id := range ids {
		a.mu.Lock()
		if a.pending[id] == nil {
			a.pending[id] = map[string]bool{}
		}
		a.pending[id][cluster] = true
		busy := a.sending[id]
		a.sending[id] = true
		a.mu.Unlock()
		if !busy {
			a.wg.Add(1)
			go a.deliverPending(ctx, id)
		}
	}
}

// deliverPending sends peer id the clusters pending for it until none is
// left or a delivery fails.
func (a *Agent) deliverPending(ctx context.Context, id string) {
	defer a.wg.Done()
	for {
		a.mu.Lock()
		var names []string
		for name := range a.pending[id] {
			if len(names) == maxReportClusters {
				break
			}
			names = append(names, name)
			delete(a.pending[id], name)
		}
		if len(names) == 0 || ctx.Err() != nil {
			delete(a.sending, id)
			a.mu.Unlock()
			return
		}
		a.mu.Unlock()
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		err := a.transport.Deliver(dctx, id, a.clusterReport(names))
		cancel()
		if err != nil {
			a.mu.Lock()
			delete(a.sending, id)
			a.mu.Unlock()
			if ctx.Err() == nil {
				a.log.Debug("report not delivered", logAgent, id, logErr, err)
			}
			return
		}
	}
}

// reportsOf returns every agent's latest report of one cluster (each
// receivedReport holding that cluster alone, in a map of its own).
func (a *Agent) reportsOf(cluster string) map[string]receivedReport {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]receivedReport, len(a.received)+1)
	for id, rr := range a.received {
		one := rr
		one.Clusters = map[string]ClusterReport{}
		if cr, ok := rr.Clusters[cluster]; ok {
			one.Clusters[cluster] = cr
		}
		out[id] = one
	}
	return out
}

// localAddr returns the network and address to dial for the local instance.
func localAddr(cfg config.Config, addr string) (string, string) {
	if cfg.MySQL.LocalSocket != "" {
		return "unix", cfg.MySQL.LocalSocket
	}
	return "tcp", addr
}

// sortedNames returns map keys in order.
// now reads the agent's clock (Deps.Clock; New gives the wall clock when
// none was given).
func (a *Agent) now() time.Time { return a.deps.Clock.Now() }

func sortedNames[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

func hostPort(addr string) (string, string) {
	h, p, _ := net.SplitHostPort(addr)
	return h, p
}
