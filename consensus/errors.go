package consensus

import (
	"errors"
	"fmt"

	"github.com/regentdb/regent/vocab"
)

// Sentinel errors. Callers branch on them with errors.Is; the errors returned
// carry details (wrapped with %w, or typed as NotLeaderError and
// StaleEpochError).
var (
	// ErrNotLeader: this node is not the Raft leader. The error is a
	// *NotLeaderError naming the leader when one is known.
	ErrNotLeader = vocab.ErrNotLeader
	// ErrStaleEpoch: the command expected an epoch the cluster no longer (or
	// not yet) has. The error is a *StaleEpochError.
	ErrStaleEpoch = vocab.ErrStaleEpoch
	// ErrConflict: the command names an operation that is not the one in
	// progress, starts one while another is in progress, or creates something
	// that exists.
	ErrConflict = vocab.ErrConflict
	// ErrNotFound: the command names a replication cluster or member that
	// does not exist.
	ErrNotFound = errors.New("not found")
	// ErrPaused: an automatic operation was refused because the cluster is
	// paused.
	ErrPaused = vocab.ErrPaused
	// ErrAntiFlap: an automatic operation was refused because the cluster's
	// anti-flap period has not ended.
	ErrAntiFlap = vocab.ErrAntiFlap
	// ErrInvalidCommand: the command is malformed (bad field, unknown kind,
	// unsupported version, truncated or corrupt encoding). Nothing changed.
	ErrInvalidCommand = errors.New("invalid command")
	// ErrTimeout: the deadline passed before the outcome was known. The
	// command may still be applied later; commands are conditional, so read
	// the state (after Barrier) or retry with the same expectations.
	ErrTimeout = errors.New("timed out")
	// ErrClosed: the node is closed or closing.
	ErrClosed = errors.New("consensus node closed")
)

// NotLeaderError is returned on a node that is not the leader. It names the
// leader when one is known, including its API address from the replicated
// member table, so an HTTP handler can answer "ask there".
type NotLeaderError struct {
	LeaderID      string
	LeaderAddr    string // Raft address
	LeaderAPIAddr string // from the member table; empty when not recorded
	// Err is the underlying Raft error, if any (e.g. leadership lost while
	// the command was in flight: then the command may or may not be applied).
	Err error
}

func (e *NotLeaderError) Error() string {
	msg := "not the raft leader"
	switch {
	case e.LeaderID == "":
		msg += " (no leader known)"
	case e.LeaderAPIAddr != "":
		msg += fmt.Sprintf(" (leader is %s, raft %s, api %s)", e.LeaderID, e.LeaderAddr, e.LeaderAPIAddr)
	default:
		msg += fmt.Sprintf(" (leader is %s, raft %s)", e.LeaderID, e.LeaderAddr)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// Unwrap returns the underlying Raft error.
func (e *NotLeaderError) Unwrap() error { return e.Err }

// StaleEpochError is the FSM's answer to a command whose expected epoch is not
// the cluster's current one: typically a command prepared by a deposed leader.
type StaleEpochError struct {
	Cluster  string
	Expected uint64
	Current  uint64
}

func (e *StaleEpochError) Error() string {
	return fmt.Sprintf("stale epoch: cluster %q is at epoch %d, command expected %d", e.Cluster, e.Current, e.Expected)
}

// Is makes errors.Is(err, ErrStaleEpoch) true.
func (e *StaleEpochError) Is(target error) bool { return target == ErrStaleEpoch }
