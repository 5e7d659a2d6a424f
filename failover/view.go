package failover

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/regentdb/regent/vocab"
)

// AgentID names one regent agent (its Raft server id).
type AgentID string

// ErrorClass says how a probe failed. Detection depends on the difference: a
// refused connection or a timeout says nothing answers; an authentication or
// privilege error says a server answered, so it is alive and is never counted
// as evidence of a dead instance.
type ErrorClass string

// The error classes topology.Classify produces.
const (
	ClassNone         ErrorClass = ""              // the probe succeeded
	ClassRefused      ErrorClass = "refused"       // TCP RST / ECONNREFUSED: nothing listens
	ClassTimeout      ErrorClass = "timeout"       // no answer within the probe deadline
	ClassAuth         ErrorClass = "auth"          // the server rejected our credentials
	ClassAccessDenied ErrorClass = "access_denied" // logged in, but lacks a privilege
	ClassGoneAway     ErrorClass = "gone_away"     // the server closed the connection mid-call
	ClassUnknown      ErrorClass = "unknown"       // anything else
)

// answered reports whether the class proves a server answered.
func (c ErrorClass) answered() bool { return c == ClassAuth || c == ClassAccessDenied }

// IOState is the state of a replica's IO (receiver) thread as SHOW REPLICA
// STATUS prints it.
type IOState string

// The IO thread states.
const (
	IOYes        IOState = "Yes"
	IOConnecting IOState = "Connecting"
	IONo         IOState = "No"
)

// PromotionRule is the operator's wish about promoting an instance
// (vocab.PromotionRule).
type PromotionRule = vocab.PromotionRule

// The promotion rules of the configuration (clusters[].instances[].promotion).
const (
	PromotionNeutral = vocab.PromotionNeutral
	PromotionPrefer  = vocab.PromotionPrefer
	PromotionMustNot = vocab.PromotionMustNot
)

// LocalState is what an agent sees of the mysqld on its own host.
type LocalState string

// The local mysqld states an agent reports.
const (
	// LocalUnknown: the agent cannot tell (hung server, probe timed out), or
	// it has no local instance. The empty string means the same.
	LocalUnknown LocalState = "unknown"
	// LocalRunning: the local server answers on its socket.
	LocalRunning LocalState = "running"
	// LocalGone: the local socket refuses connections or the process has
	// exited. Strong evidence: it allows the fast path (README "Detection").
	LocalGone LocalState = "gone"
)

// OperationKind names an operation (vocab.OperationKind, shared with the
// replicated state).
type OperationKind = vocab.OperationKind

// The operations.
const (
	OpNone              = vocab.OpNone
	OpFailover          = vocab.OpFailover
	OpForcedFailover    = vocab.OpForcedFailover
	OpSwitchover        = vocab.OpSwitchover
	OpRejoin            = vocab.OpRejoin
	OpQuarantine        = vocab.OpQuarantine
	OpFence             = vocab.OpFence
	OpRepoint           = vocab.OpRepoint
	OpRestoreWrites     = vocab.OpRestoreWrites
	OpConfigureSemiSync = vocab.OpConfigureSemiSync
	OpSemiSyncFallback  = vocab.OpSemiSyncFallback
	OpSemiSyncRestore   = vocab.OpSemiSyncRestore
)

// View is everything the decisions look at for one replication cluster, as
// plain values. The runner assembles it from the agents' probes and reports and
// from the replicated (Raft) state; nothing in this package reads a clock, so
// Now is part of the view.
type View struct {
	// Cluster is the replication cluster's name (clusters[].name).
	Cluster string
	// Now is the leader's clock when the view was assembled. Every age and
	// deadline is measured against it.
	Now time.Time
	// Leader is the agent that analyses and acts: the Raft leader. Condition
	// (a) of README "Detection" is about its own probes; Rank only trusts what it
	// can reach, because it is the one that will act.
	Leader AgentID
	// Agents holds each agent's own report, by agent id.
	Agents map[AgentID]AgentReport
	// Instances holds every configured instance by name (the key equals
	// Instance.Name).
	Instances map[string]Instance
	// State is the cluster's replicated state (Raft).
	State ReplicatedState
	// Route is what the leader last learned pushing the committed primary's
	// write route to the balancers that take pushes.
	Route RouteCheck
}

// RouteCheck is the outcome of the leader's latest push of the committed
// primary's write route (the reconciliation after taking over, and every
// few seconds while no operation runs). Zero: pushed without error, or
// nothing pushed yet (no balancer takes pushes, or no push was due).
type RouteCheck struct {
	// Primary and Epoch are what the failing push routed to.
	Primary string
	Epoch   uint64
	// Err is the push's error; "" when every balancer took it.
	Err string
	// FailingSince is when the pushes started failing (the first failure
	// of the current run); zero when the last push succeeded.
	FailingSince time.Time
}

// Instance is one configured mysqld and what the agents observed of it.
type Instance struct {
	// Name is the instance's configured name; replicas' Source fields and the
	// replicated state refer to instances by it.
	Name string
	// Addr is host:port as replicas see it, so that a Source given as
	// host:port can be resolved to a name.
	Addr string
	// Promotion is the configured promotion rule ("" means neutral).
	Promotion PromotionRule
	// Labels are the configured location labels (for example zone,
	// region): Policy.PromotionSame and PromotionPreferSame compare them.
	Labels map[string]string
	// OwnerAgent is the agent on the same host, whose local instance this is
	// and who enforces its lease; "" when no agent runs beside it.
	OwnerAgent AgentID
	// Probes holds each agent's latest probe of this instance.
	Probes map[AgentID]Probe
	// LastSeen is the freshest successful probe of this instance by any agent,
	// kept by the runner across failures (zero ObservedAt: never seen). After
	// a primary dies it is the old primary's last known GTID set, the
	// reference for errant transactions and for what a failover loses.
	LastSeen Probe
	// ErrantJudged holds each agent's newest exact comparison of this
	// instance with a primary (see ErrantGTIDs and CarryErrant); the errant
	// transactions known on it are the union of their sets. The runner
	// carries it from one view to the next so that the knowledge survives
	// the primary's death.
	ErrantJudged map[AgentID]ErrantJudgement
}

// rule returns the promotion rule, neutral when unset.
func (i Instance) rule() PromotionRule {
	if i.Promotion == "" {
		return PromotionNeutral
	}
	return i.Promotion
}

// Probe is what one agent learned about one instance at one moment.
type Probe struct {
	// ObservedAt is when the probe's result was known (on the probing agent's
	// clock, so comparisons between probes of one agent are exact).
	ObservedAt time.Time
	// Reachable is true when the probe succeeded; the fields below are only
	// meaningful then.
	Reachable bool
	// Error classifies the failure when Reachable is false.
	Error ErrorClass
	// ErrorDetail is the error text for people (never a password).
	ErrorDetail string
	// FailingSince is when the current run of failed probes began (zero when
	// Reachable).
	FailingSince time.Time
	// LastReachedAt is when this agent last reached the instance: ObservedAt
	// of a successful probe, and on a failed one the latest success before
	// it (zero: never reached). With Stream it dates the latest sign of
	// life, from which condition (a) of README "Detection" measures the silence.
	LastReachedAt time.Time
	// Stream is this agent's binlog stream from the instance (agents
	// stream only the recorded primary); the zero value means none.
	Stream Stream

	// ReadOnly is @@read_only.
	ReadOnly bool
	// SuperReadOnly is @@super_read_only (MySQL only).
	SuperReadOnly bool
	// Executed is the executed GTID set (@@gtid_executed on MySQL,
	// @@gtid_binlog_state on MariaDB); nil when unknown.
	Executed GTIDSet
	// Own is the part of Executed the instance wrote itself: its
	// server_uuid's on MySQL, its server_id's (every domain) on MariaDB;
	// nil when unknown. A primary's late transactions, committed after its
	// last probe, come from these sources.
	Own GTIDSet
	// LogsReplicaUpdates: log_bin and log_slave_updates are on, so the
	// instance's binary log carries what it replicates and other replicas
	// can replicate from it.
	LogsReplicaUpdates bool
	// Replica is nil when the instance is not configured as a replica.
	Replica *ReplicaStatus
	// SemiSync is the semi-synchronous replication state.
	SemiSync SemiSyncState
}

// Writable reports whether the probe saw a server that takes writes.
func (p Probe) Writable() bool { return p.Reachable && !p.ReadOnly && !p.SuperReadOnly }

// holds returns the transactions the instance has durably: executed, plus
// received into its relay log. Semi-sync acknowledges on receipt, so a
// transaction only in a relay log may already be acknowledged to a client;
// ranking by Executed alone could throw it away.
func (p Probe) holds() GTIDSet {
	if p.Replica == nil {
		return p.Executed
	}
	if p.Executed == nil {
		return nil
	}
	return gtidUnion(p.Executed, p.Replica.Retrieved)
}

// Stream is an agent's binlog dump connection to an instance, opened at the
// end of its binlog with a short heartbeat period: every packet (an event or
// a heartbeat) is a sign of life. A hung mysqld or a silent network stops
// the packets at once, a slow or lossy one only delays them (README
// "Detection").
type Stream struct {
	// Period is the heartbeat period the stream asked for; zero means the
	// agent holds no stream to the instance.
	Period time.Duration
	// HeardAt is when the latest packet arrived; zero: none yet.
	HeardAt time.Time
	// Detail says, for people, why the stream is down ("" while it is up).
	Detail string
}

// ReplicaStatus is the replication state of a replica.
type ReplicaStatus struct {
	// Source is the instance it replicates from: the instance name when the
	// agent resolved it, otherwise host:port as the server reports it.
	Source string
	// IOState is the IO thread state (Replica_IO_Running).
	IOState IOState
	// SQLRunning is Replica_SQL_Running.
	SQLRunning bool
	// LastIOError and LastSQLError are the threads' last errors ("" none);
	// LastIOErrno is the IO thread's error number (0: none, or not
	// reported by the agent).
	LastIOErrno  int
	LastIOError  string
	LastSQLError string
	// Lag is Seconds_Behind_Source; nil when the server reports NULL (a
	// thread stopped, the IO thread not connected).
	Lag *time.Duration
	// SQLDelay is the configured delay (SOURCE_DELAY/MASTER_DELAY); a delayed
	// replica is never a failover candidate.
	SQLDelay time.Duration
	// Retrieved is what the IO thread has received (MySQL Retrieved_Gtid_Set,
	// MariaDB Gtid_IO_Pos converted); nil when unknown.
	Retrieved GTIDSet
	// HeartbeatPeriod is the replication heartbeat period; 0 when none is
	// configured, and then receive progress cannot be judged on an idle
	// primary.
	HeartbeatPeriod time.Duration
	// ReceivedHeartbeats is the received-heartbeats counter and ReadPosition
	// the IO thread's read position (file:pos); shown to people, and the
	// agent compares successive values to set LastProgressAt.
	ReceivedHeartbeats uint64
	ReadPosition       string
	// LastProgressAt is when this agent last saw the heartbeat counter or the
	// read position advance. The agent sets it to its first sample's time, so
	// that a replica that never makes progress ages; zero means progress is
	// not tracked.
	LastProgressAt time.Time
}

// SemiSyncState is an instance's semi-synchronous replication state.
type SemiSyncState struct {
	// SourceEnabled is rpl_semi_sync_{master,source}_enabled.
	SourceEnabled bool
	// SourceActive is Rpl_semi_sync_{master,source}_status: the source waits
	// for acknowledgements (OFF after a fallback to asynchronous).
	SourceActive bool
	// SourceClients is the number of semi-sync replicas connected.
	SourceClients int
	// WaitPoint is AFTER_SYNC or AFTER_COMMIT.
	WaitPoint string
	// WaitNoReplica is wait_no_slave / wait_no_replica: keep waiting when
	// too few replicas are connected.
	WaitNoReplica bool
	// Timeout is how long a commit waits for acknowledgements before the
	// server falls back to asynchronous commits by itself.
	Timeout time.Duration
	// WaitCount is how many acknowledgements a commit waits for.
	WaitCount int
	// ShortSince is when the source was first seen, in the current run of
	// observations, with fewer semi-sync replicas connected than it waits
	// for (zero when it has enough).
	ShortSince time.Time
	// ReplicaEnabled and ReplicaActive are the replica side's switch and
	// status.
	ReplicaEnabled bool
	ReplicaActive  bool
}

// AgentReport is an agent's report about itself.
type AgentReport struct {
	// LastHeard is when the leader last had Raft contact with the agent (for
	// the leader itself, Now; never earlier than the start of the leader's
	// term). Reports do not count: they travel over the API, which may work
	// while the agent's Raft port is cut and its lease lost. An agent not heard for
	// fence_after has lost the quorum and, by the lease (docs/safety.md), fences its local
	// instance.
	LastHeard time.Time
	// LeaseHeld is the agent's last report of whether it holds the lease that
	// lets its local instance be writable.
	LeaseHeld bool
	// Local is the agent's view of its local mysqld.
	Local LocalState
	// LocalSince is when Local began to hold (for LocalGone: when the server
	// was first seen gone).
	LocalSince time.Time
	// LocalDetail says why, for people: "connection refused on
	// /run/mysqld/mysqld.sock", "process exited (signal 9)".
	LocalDetail string
	// LocalProbe is the agent's latest probe of its local instance as it
	// reached the leader over the lease channel (ObservedAt, Reachable,
	// ReadOnly and the source side of SemiSync only), when that is newer
	// news than its report; nil when there is none. Reports travel over
	// the API, which a lossy link stalls; the lease channel's pings do not
	// wait for one another.
	LocalProbe *Probe
}

// ReplicatedState is the cluster's state held in Raft.
type ReplicatedState struct {
	// Primary is the instance that is primary in Epoch; "" when none is
	// recorded.
	Primary string
	// Epoch grows by one at every change of primary: the fencing token.
	Epoch uint64
	// Operation is the operation in progress (Kind == OpNone when none).
	Operation Operation
	// Paused blocks every automatic action; PauseReason is the operator's
	// note.
	Paused      bool
	PauseReason string
	// AntiFlapUntil blocks automatic failovers until then.
	AntiFlapUntil time.Time
	// SemiSyncDegraded: the primary commits asynchronously by the leader's
	// decision since SemiSyncDegradedSince (semi_sync_fallback).
	SemiSyncDegraded      bool
	SemiSyncDegradedSince time.Time
	// Uncommitted maps an instance that an operation promoted but never
	// committed (it ended before its commit-epoch) to that operation's id:
	// it may be writable outside the epoch, and may hold transactions no one
	// else has.
	Uncommitted map[string]string
	// Quarantined maps an instance to the reason it is quarantined (errant
	// transactions): kept read-only, never promoted nor silently rejoined.
	Quarantined map[string]string
	// FormerPrimary is the primary the most recent change of primary
	// replaced ("" when none, or when it is the primary again).
	FormerPrimary string
	// Maintenance maps an instance an operator put in maintenance to its
	// window; it is in force while Now is before Until (InMaintenance).
	Maintenance map[string]Maintenance
	// Sources maps a replica an operator relocated under another replica
	// (regentctl repoint) to that source: ExpectedSource.
	Sources map[string]string
	// StoppedIO lists the replicas whose IO threads the operations since
	// the last change of primary stopped and did not start again, those
	// that ended without one (aborted or failed, their undo or the abort's
	// restart not reaching them): ReplicaIOLeftStopped.
	StoppedIO []string
}

// Maintenance is an instance's maintenance window, set by an operator:
// while it is in force the instance is never promoted, no replica problem
// of it is reported and nothing on it is repaired.
type Maintenance struct {
	By, Reason string
	Until      time.Time
}

// InMaintenance returns the instance's maintenance when it is in force at
// v.Now (it ends by itself at Until).
func (v View) InMaintenance(name string) (Maintenance, bool) {
	m, ok := v.State.Maintenance[name]
	if !ok || !v.Now.Before(m.Until) {
		return Maintenance{}, false
	}
	return m, true
}

// Operation is an operation recorded in progress in the replicated state.
type Operation struct {
	Kind      OperationKind
	ID        string
	StartedAt time.Time
	// Target is the instance being promoted or acted on, when known.
	Target string
}

// ErrInvalidView is wrapped by View.Validate's errors.
var ErrInvalidView = errors.New("invalid cluster view")

// Validate checks the view's internal consistency. It does not judge the
// cluster: a view of a broken cluster is valid.
func (v View) Validate() error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidView}, a...)...))
	}
	if v.Now.IsZero() {
		bad("now is not set")
	}
	if v.Leader == "" {
		bad("leader is not set")
	} else if _, ok := v.Agents[v.Leader]; !ok {
		bad("leader %q has no agent report", v.Leader)
	}
	owners := map[AgentID]string{}
	for _, name := range v.names() {
		in := v.Instances[name]
		if in.Name != name {
			bad("instance key %q holds an instance named %q", name, in.Name)
		}
		switch in.rule() {
		case PromotionNeutral, PromotionPrefer, PromotionMustNot:
		default:
			bad("instance %q: unknown promotion rule %q (want prefer, neutral or must_not)", name, in.Promotion)
		}
		if in.OwnerAgent != "" {
			if _, ok := v.Agents[in.OwnerAgent]; !ok {
				bad("instance %q: owner agent %q has no agent report", name, in.OwnerAgent)
			}
			if other, dup := owners[in.OwnerAgent]; dup {
				bad("agent %q owns both %q and %q: an agent has one local instance", in.OwnerAgent, other, name)
			}
			owners[in.OwnerAgent] = name
		}
		for a := range in.Probes {
			if _, ok := v.Agents[a]; !ok {
				bad("instance %q: probe by unknown agent %q", name, a)
			}
		}
	}
	return errors.Join(errs...)
}

// names returns the instance names in order: every loop over instances goes
// through it, so that results never depend on map order.
func (v View) names() []string {
	out := make([]string, 0, len(v.Instances))
	for n := range v.Instances {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// agentIDs returns the agent ids in order.
func (v View) agentIDs() []AgentID {
	out := make([]AgentID, 0, len(v.Agents))
	for a := range v.Agents {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
