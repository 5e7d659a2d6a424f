// Package vocab holds the words the other packages share: the kinds of
// operation, how a step ends, the promotion rules, and the sentinel errors
// of the replicated state. It imports nothing of the project, so that
// failover (the pure core), consensus and the agent can all use one
// spelling of each (README "Layout").
package vocab

import "errors"

// OperationKind names an operation: the ones recorded in the replicated
// state (ChangesPrimary ones, rejoin, the semi-sync fallback and restore) and
// the ones the failover package only plans.
type OperationKind string

// The operations.
const (
	OpNone              OperationKind = ""
	OpFailover          OperationKind = "failover"
	OpForcedFailover    OperationKind = "forced-failover"
	OpSwitchover        OperationKind = "switchover"
	OpRejoin            OperationKind = "rejoin"
	OpQuarantine        OperationKind = "quarantine"
	OpFence             OperationKind = "fence"
	OpRepoint           OperationKind = "repoint"
	OpRestoreWrites     OperationKind = "restore-writes"
	OpConfigureSemiSync OperationKind = "configure-semi-sync"
	// OpSemiSyncFallback lets the primary commit asynchronously after
	// semi_sync_fallback without an acknowledger; OpSemiSyncRestore makes it
	// lossless again. Both are recorded in the history.
	OpSemiSyncFallback OperationKind = "semi-sync-fallback"
	OpSemiSyncRestore  OperationKind = "semi-sync-restore"
	// OpEditConfig is a change of a cluster's run-time settings
	// (regentctl cluster edit-config), kept in the history with who made
	// it and the difference.
	OpEditConfig OperationKind = "edit-config"
)

// legacyKinds are the spellings the replicated state used before this
// package: snapshots written then still read (UnmarshalText).
var legacyKinds = map[string]OperationKind{
	"forced_failover":    OpForcedFailover,
	"semi_sync_fallback": OpSemiSyncFallback,
	"semi_sync_restore":  OpSemiSyncRestore,
}

// UnmarshalText reads a kind, in today's spelling or a legacy one.
func (k *OperationKind) UnmarshalText(b []byte) error {
	if old, ok := legacyKinds[string(b)]; ok {
		*k = old
		return nil
	}
	*k = OperationKind(b)
	return nil
}

// ChangesPrimary reports whether operations of this kind end by committing a
// new primary (and therefore a new epoch).
func (k OperationKind) ChangesPrimary() bool {
	return k == OpFailover || k == OpSwitchover || k == OpForcedFailover
}

// Phase is the name of a cluster's state while an operation of this kind is
// in progress ("failing_over", "switching_over", "rejoining", ...).
func (k OperationKind) Phase() string {
	switch k {
	case OpFailover, OpForcedFailover:
		return "failing_over"
	case OpSwitchover:
		return "switching_over"
	case OpRejoin:
		return "rejoining"
	case OpSemiSyncFallback:
		return "degrading_semi_sync"
	case OpSemiSyncRestore:
		return "restoring_semi_sync"
	}
	return "unknown"
}

// StepResult is how one step of an operation ended. Every recorded step
// ends with one of these.
type StepResult string

// The step results.
const (
	StepOK      StepResult = "ok"
	StepFailed  StepResult = "failed"
	StepSkipped StepResult = "skipped"
)

// PromotionRule is the operator's wish about promoting an instance
// (clusters[].instances[].promotion).
type PromotionRule string

// The promotion rules.
const (
	// PromotionNeutral is the default: a candidate like any other.
	PromotionNeutral PromotionRule = "neutral"
	// PromotionPrefer wins ties between equally advanced candidates.
	PromotionPrefer PromotionRule = "prefer"
	// PromotionMustNot is never promoted; it may still serve as the source a
	// candidate catches up from.
	PromotionMustNot PromotionRule = "must_not"
)

// The replicated state's refusals, which the runner branches on with
// errors.Is. The errors returned carry details (wrapped, or typed as
// consensus.NotLeaderError and StaleEpochError).
var (
	// ErrNotLeader: this node is not (or no longer) the Raft leader; stop
	// acting.
	ErrNotLeader = errors.New("not the raft leader")
	// ErrStaleEpoch: a conditional change expected an epoch the cluster no
	// longer (or not yet) has.
	ErrStaleEpoch = errors.New("stale epoch")
	// ErrConflict: the command names an operation that is not the one in
	// progress, starts one while another is in progress, or creates
	// something that exists.
	ErrConflict = errors.New("conflict")
	// ErrPaused: an automatic operation was refused because the cluster is
	// paused.
	ErrPaused = errors.New("cluster paused")
	// ErrAntiFlap: an automatic operation was refused because the cluster's
	// anti-flap period has not ended.
	ErrAntiFlap = errors.New("anti-flap period active")
)
