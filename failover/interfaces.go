package failover

import (
	"context"
	"errors"
	"time"
)

// This file declares what the runner (the imperative shell, not built yet)
// consumes. cmd/regent adapts topology, consensus and proxyhook to these
// interfaces; this package imports none of them. Every call takes a context
// whose deadline the runner derives from the step's Timeout. The interfaces
// are small on purpose: a fake for tests is a few lines each.

// Inspector reads facts about instances, as seen from this agent.
type Inspector interface {
	// Probe returns this agent's probe of the named instance. A failed probe
	// is a Probe with Reachable false and its ErrorClass, not an error: an
	// error means the instance is not configured.
	Probe(ctx context.Context, instance string) (Probe, error)
}

// Actuator changes instances. Each method is idempotent (a retried step must
// be harmless) and bounded by ctx. Adapted from topology's instance actions.
type Actuator interface {
	// SetReadOnly sets read_only (and super_read_only on MySQL) on or off.
	SetReadOnly(ctx context.Context, instance string, on bool) error
	// KillClientConnections kills every client session except replication
	// threads, system threads and Regent's own.
	KillClientConnections(ctx context.Context, instance string) error
	// StopReplicaIO / StartReplicaIO stop or start the IO (receiver) thread.
	StopReplicaIO(ctx context.Context, instance string) error
	StartReplicaIO(ctx context.Context, instance string) error
	// WaitExecuted returns when the instance has executed set, or an error
	// when ctx ends first (MASTER_GTID_WAIT / WAIT_FOR_EXECUTED_GTID_SET).
	WaitExecuted(ctx context.Context, instance string, set GTIDSet) error
	// Repoint makes instance replicate from source with GTID auto-position.
	Repoint(ctx context.Context, instance, source string, opts RepointOptions) error
	// Promote stops and resets replication on instance and sets it writable,
	// enabling the semi-sync source side (AFTER_SYNC) when semiSync is set.
	Promote(ctx context.Context, instance string, semiSync bool) error
	// ConfigureSemiSync enables the semi-sync role ("source" or "replica").
	ConfigureSemiSync(ctx context.Context, instance, role string) error
	// WaitWriteTransactions returns when no write transaction older than
	// a few hundred milliseconds runs on instance, or an error naming the
	// blockers when ctx ends first (FIELD-NOTES §12).
	WaitWriteTransactions(ctx context.Context, instance string) error
}

// RepointOptions tunes a repoint.
type RepointOptions struct {
	// Demote marks a former primary (MariaDB MASTER_DEMOTE_TO_SLAVE=1).
	Demote bool
	// SemiSync enables the semi-sync replica side.
	SemiSync bool
	// KeepDelay keeps the replica's SQL_Delay.
	KeepDelay bool
}

// Leadership is the runner's view of the Raft leadership (consensus).
type Leadership interface {
	// Barrier returns once every command committed by earlier leaders is
	// applied; a new leader calls it before acting.
	Barrier(ctx context.Context) error
	// VerifyLeader confirms this node still leads; called before every
	// irreversible step. It returns ErrNotLeader otherwise.
	VerifyLeader(ctx context.Context) error
}

// StateStore applies the cluster's replicated-state changes (consensus).
// Every change is conditional: an Apply whose condition no longer holds
// returns ErrStaleEpoch or ErrConflict and changes nothing, so a deposed
// leader's command is harmless.
type StateStore interface {
	Apply(ctx context.Context, c Change) error
	// LastContact is how long ago each agent was last heard, for
	// AgentReport.LastHeard, and when this node last had the quorum, for the
	// self-fencing lease.
	LastContact(ctx context.Context) (map[AgentID]time.Time, time.Time, error)
}

// ChangeKind names a replicated-state change.
type ChangeKind string

// The changes, one per plan step that touches the replicated state.
const (
	ChangeIntent         ChangeKind = "intent"          // StepRecordIntent
	ChangeCommitEpoch    ChangeKind = "commit-epoch"    // StepCommitEpoch
	ChangeFinish         ChangeKind = "finish"          // StepFinish, or an aborted run
	ChangeQuarantine     ChangeKind = "quarantine"      // StepQuarantine
	ChangeLiftQuarantine ChangeKind = "lift-quarantine" // StepLiftQuarantine
)

// Change is one conditional replicated-state command.
type Change struct {
	Kind        ChangeKind
	Cluster     string
	OperationID string
	Operation   OperationKind
	// ExpectEpoch is the condition; Epoch the epoch after the change.
	ExpectEpoch uint64
	Epoch       uint64
	// TakesOver is an abandoned operation's id that this intent replaces.
	TakesOver string
	Instance  string
	// GTID is the GTID set at promotion (commit) or the errant set
	// (quarantine), as text.
	GTID string
	// AntiFlapUntil is set by a failover's commit.
	AntiFlapUntil time.Time
	// Result, Reason and Steps complete the history entry (finish, commit).
	Result string
	Reason string
	Steps  []StepRecord
}

// StepRecord is one executed step in the history.
type StepRecord struct {
	Kind     StepKind
	Instance string
	Started  time.Time
	Duration time.Duration
	Err      string
	Output   string // hook output, truncated
}

// Router moves the write route (proxyhook). Every change carries the epoch;
// a router refuses a change older than the last one it applied.
type Router interface {
	// RouteWrites sends writes to instance.
	RouteWrites(ctx context.Context, cluster, instance string, epoch uint64) error
	// UnrouteWrites removes instance from write routing and cuts its open
	// sessions.
	UnrouteWrites(ctx context.Context, cluster, instance string, epoch uint64) error
}

// Hooks runs the operator's scripts (proxyhook).
type Hooks interface {
	// Run runs the hooks of a phase ("pre-failover", "post-switchover", ...)
	// with the plan's facts as environment; output goes to the history.
	Run(ctx context.Context, phase string, plan Plan) (output string, err error)
}

// Clock is the runner's only source of time, so that its loops can be tested
// with a fake clock or testing/synctest.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// Errors the adapters return so that the runner can branch with errors.Is.
var (
	// ErrNotLeader: this node no longer leads; stop acting.
	ErrNotLeader = errors.New("not the raft leader")
	// ErrStaleEpoch: a conditional change saw another epoch.
	ErrStaleEpoch = errors.New("stale epoch")
	// ErrConflict: another live operation holds the cluster.
	ErrConflict = errors.New("another operation holds the cluster")
)
