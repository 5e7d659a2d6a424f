package failover

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/regentdb/regent/vocab"
)

// This file declares what the runner (the imperative shell, runner.go)
// consumes. The agent package adapts topology, consensus and proxyhook to these
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
	// ConfigureSemiSync enables the semi-sync role ("source": lossless, or
	// "replica"), or switches the source side off ("off").
	ConfigureSemiSync(ctx context.Context, instance, role string) error
	// WaitWriteTransactions returns when no write transaction older than
	// a few hundred milliseconds runs on instance, or an error naming the
	// blockers when ctx ends first: the wait is bounded, and what held it up
	// is reported.
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
// leader's command is harmless. Each Change maps to exactly one consensus
// command (see ChangeKind), so that a failure is never half-applied.
type StateStore interface {
	Apply(ctx context.Context, c Change) error
	// LastContact is how long ago each agent was last heard, for
	// AgentReport.LastHeard, and when this node last had the quorum, for the
	// self-fencing lease.
	LastContact(ctx context.Context) (map[AgentID]time.Time, time.Time, error)
}

// ChangeKind names a replicated-state change. Each kind maps to exactly one
// consensus command, issued by the StateStore adapter:
//
//	ChangeIntent         BeginOperation{Cluster, OperationID, Kind: Operation (translated,
//	                     see below), ExpectEpoch, Target, Trigger, Automatic, At}
//	ChangeStep           RecordStep{Cluster, OperationID, Step{Name: Step.HistoryName(),
//	                     Start: Step.Started, Duration, Result: Step.Result,
//	                     Detail: Step.HistoryDetail() (truncated)}}
//	ChangeCommitEpoch    CommitPrimary{Cluster, OperationID, NewPrimary: Instance,
//	                     ExpectEpoch, GTID, At}
//	ChangeAntiFlap       SetAntiFlap{Cluster, Until: AntiFlapUntil}
//	ChangeFinish         FinishOperation{Cluster, OperationID, Result, Reason, At}
//	ChangeAbort          AbortOperation{Cluster, OperationID, Reason, At}
//	ChangeQuarantine     SetQuarantine{Cluster, Instance, Reason, At} (By: the node id)
//	ChangeLiftQuarantine ClearQuarantine{Cluster, Instance}
//	ChangeCandidate      SetCandidate{Cluster, OperationID, Instance}
//	ChangeSemiSync       SetSemiSyncDegraded{Cluster, OperationID, Degraded, Reason, At}
//	ChangeSource         SetSource{Cluster, Instance, Source: Target, By: Trigger, At}
//
// Operation kinds are the replicated state's own (vocab.OperationKind),
// except that a quarantine is recorded as a rejoin (it is the outcome of a
// rejoin that found errant transactions; Target names the instance). The
// small repairs (fence, repoint, restore-writes, configure-semi-sync) have
// no place in the history: a store that cannot record them says so through
// HistoryKinds, and the runner then runs them with a log line instead of a
// history entry.
//
// The replicated state's refusals are vocab's sentinel errors, which this
// package re-exports (ErrNotLeader, ErrStaleEpoch, ErrConflict, ErrPaused,
// ErrAntiFlap): the adapter passes them through unchanged.
type ChangeKind string

// The changes, one per plan step that touches the replicated state, plus the
// ones the runner issues around them.
const (
	ChangeIntent         ChangeKind = "intent"          // StepRecordIntent
	ChangeCommitEpoch    ChangeKind = "commit-epoch"    // StepCommitEpoch
	ChangeFinish         ChangeKind = "finish"          // StepFinish, or the end of any recorded run
	ChangeQuarantine     ChangeKind = "quarantine"      // StepQuarantine
	ChangeLiftQuarantine ChangeKind = "lift-quarantine" // StepLiftQuarantine
	// ChangeCandidate records the instance a promote step is about to make
	// writable, before it does (StepPromote).
	ChangeCandidate ChangeKind = "candidate"
	// ChangeSemiSync records the fallback to asynchronous commits
	// (Degraded) or the return to lossless semi-sync (StepRecordSemiSync).
	ChangeSemiSync ChangeKind = "semi-sync"
	// ChangeSource records the source an operator relocated Instance under
	// (Target; "" removes the record), asked for by Trigger
	// (StepRecordSource).
	ChangeSource ChangeKind = "source"
	// ChangeStep records one executed step on the operation in progress, as
	// it finishes (undo steps included).
	ChangeStep ChangeKind = "step"
	// ChangeAntiFlap follows a commit whose step sets an anti-flap period.
	ChangeAntiFlap ChangeKind = "anti-flap"
	// ChangeAbort ends an abandoned operation (Plan.TakesOver) before the
	// intent of the one that takes it over.
	ChangeAbort ChangeKind = "abort"
)

// Change is one conditional replicated-state command. Fields that do not
// apply to a kind are zero.
type Change struct {
	Kind        ChangeKind
	Cluster     string
	OperationID string
	Operation   OperationKind
	// ExpectEpoch is the condition; Epoch the epoch after the change.
	ExpectEpoch uint64
	Epoch       uint64
	// TakesOver is an abandoned operation's id that this intent replaces (the
	// runner has aborted it with a ChangeAbort just before).
	TakesOver string
	// Instance is the intent's subject (the primary being replaced, or the
	// instance acted on), the commit's new primary, or the instance
	// quarantined or lifted.
	Instance string
	// GTID is the GTID set at promotion (commit) or the errant set
	// (quarantine), as text.
	GTID string
	// AntiFlapUntil is set by ChangeAntiFlap (only there: the commit itself
	// does not carry it, so that each change is one command).
	AntiFlapUntil time.Time
	// Result, Reason and Steps complete the history entry. Result is
	// "success", "failed" or "aborted" (finish); Reason is why (finish,
	// abort, quarantine). Steps is unused: steps are recorded one by one
	// with ChangeStep.
	Result string
	Reason string
	Steps  []StepRecord

	// Target is the intent's instance to promote (switchover, forced
	// failover; "" for a failover until ChooseCandidate) or the instance
	// acted on (rejoin, quarantine and the small repairs).
	Target string
	// Trigger says, for people, why the operation runs: the detection
	// summary of an automatic one, or who asked for a manual one.
	Trigger string
	// Automatic is true for an automatic operation: consensus refuses those
	// while the cluster is paused or inside the anti-flap window.
	Automatic bool
	// At is the runner's clock when the change was made.
	At time.Time
	// Step is the step a ChangeStep records.
	Step StepRecord
	// Degraded is ChangeSemiSync's decision.
	Degraded bool
}

// StepResult is how one step ended (vocab.StepResult, the replicated
// state's words). Every recorded step ends with one of them.
type StepResult = vocab.StepResult

// The step results.
const (
	StepResultOK      = vocab.StepOK
	StepResultFailed  = vocab.StepFailed
	StepResultSkipped = vocab.StepSkipped
)

// StepRecord is one executed step in the history.
type StepRecord struct {
	Kind     StepKind
	Instance string
	Started  time.Time
	Duration time.Duration
	Err      string
	Output   string // hook output, truncated

	// Instances are the instances a multi-instance step covered.
	Instances []string
	// Result is how the step ended.
	Result StepResult
	// Undo marks a step run to reverse an earlier one after a failure.
	Undo bool
	// Detail says what the step found or did, for people ("waited for
	// agent a1's lease to lapse at 12:00:03.000").
	Detail string
}

// maxHistoryName is the longest step name the history keeps (consensus
// MaxNameLen).
const maxHistoryName = 255

// StoppedIOThreads reads the recorded steps of an operation (HistoryName,
// and whether each succeeded) and returns the instances whose IO threads it
// may have stopped and did not start again, sorted. The next leader restarts
// them when it aborts the operation, and repoints those it could not reach
// once they are back (ReplicaIOLeftStopped): Regent restarts no IO thread an
// operator stopped, so nothing else would. A stop step that failed counts
// too (it may have stopped some before failing on another, and starting a
// running IO thread only draws a warning); an undo, or a repoint (which
// starts replication), counts only when it succeeded.
func StoppedIOThreads(names []string, ok []bool) []string {
	stopped := map[string]bool{}
	for i, name := range names {
		succeeded := i < len(ok) && ok[i]
		kind, list, _ := strings.Cut(name, " ")
		switch kind {
		case string(StepStopIOThreads):
			for _, n := range strings.Split(list, ",") {
				stopped[n] = true
			}
		case string(StepRepoint):
			// A repoint starts replication again (a switchover's chained
			// replica, stopped just before).
			if succeeded {
				delete(stopped, list)
			}
		case "undo":
			if !succeeded {
				continue
			}
			switch k2, l2, _ := strings.Cut(list, " "); k2 {
			case string(StepStartIOThreads):
				for _, n := range strings.Split(l2, ",") {
					delete(stopped, n)
				}
			case string(StepRepoint):
				delete(stopped, l2)
			}
		}
	}
	out := make([]string, 0, len(stopped))
	for n := range stopped {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// HistoryName is the step's name in the history: its kind and the instances
// it acted on ("promote db2", "undo start-io-threads db2,db3"), at most 255
// bytes.
func (r StepRecord) HistoryName() string {
	name := string(r.Kind)
	if r.Undo {
		name = "undo " + name
	}
	switch {
	case r.Instance != "":
		name += " " + r.Instance
	case len(r.Instances) > 0:
		name += " " + strings.Join(r.Instances, ",")
	}
	if len(name) > maxHistoryName {
		cut := maxHistoryName - len("…")
		for cut > 0 && name[cut]&0xC0 == 0x80 { // a UTF-8 continuation byte
			cut--
		}
		name = name[:cut] + "…"
	}
	return name
}

// HistoryDetail is the step's detail in the history: the error first, then
// what the step did, then a hook's output. The adapter truncates it
// (consensus.TruncateDetail).
func (r StepRecord) HistoryDetail() string {
	var parts []string
	if r.Err != "" {
		parts = append(parts, "error: "+r.Err)
	}
	if r.Detail != "" {
		parts = append(parts, r.Detail)
	}
	if r.Output != "" {
		parts = append(parts, "output: "+r.Output)
	}
	return strings.Join(parts, "; ")
}

// ParallelIOStopper is an optional Actuator capability, found by type
// assertion: stop the IO threads of several replicas at once, so that one
// slow to stop (a MariaDB semi-sync replica of a frozen source can take a
// second) does not hold up the others. errs[i] is names[i]'s result. An
// Actuator without it is asked one replica at a time.
type ParallelIOStopper interface {
	StopReplicaIOs(ctx context.Context, names []string) (errs []error)
}

// HistoryKinds is an optional StateStore capability, found by type
// assertion: it says whether the replicated history can record operations of
// a kind. A store without it records every plan that has a record-intent
// step. For a kind it cannot record, the runner skips the plan's
// record-intent and finish steps (the run is logged, not recorded); a plan
// that commits an epoch is always recorded, since consensus commits an epoch
// only inside an operation.
type HistoryKinds interface {
	RecordsOperation(kind OperationKind) bool
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
	ErrNotLeader = vocab.ErrNotLeader
	// ErrStaleEpoch: a conditional change saw another epoch.
	ErrStaleEpoch = vocab.ErrStaleEpoch
	// ErrConflict: another live operation holds the cluster.
	ErrConflict = vocab.ErrConflict
	// ErrPaused: the replicated state refused an automatic operation because
	// the cluster is paused.
	ErrPaused = vocab.ErrPaused
	// ErrAntiFlap: the replicated state refused an automatic operation inside
	// the anti-flap window.
	ErrAntiFlap = vocab.ErrAntiFlap
	// ErrStepTimeout: a step did not finish within its Timeout.
	ErrStepTimeout = errors.New("step timed out")
)
