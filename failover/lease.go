package failover

import (
	"fmt"
	"time"
)

// The self-fencing lease, decided here so that every rule has a named table
// case (lease_test.go) and the agent only carries the decision out.
//
// An agent may let its local instance be writable only while it holds the
// lease: contact with the Raft quorum within fence_after, and no operation
// replacing the instance. The leader, on its side, may promote another
// instance once lease_timeout has passed since it last had Raft contact with
// that agent (never counting from a report, which travels over the API).
// Between the two the agent must have made its instance read-only, so its
// deadline is anchored to the same moment — its own last quorum contact,
// which is never later than the leader's last contact with it — and never to
// when a check happened to run:
//
//	last quorum contact ──fence_after──▶ fence ──▶ escalate ──▶ deadline ─margin─▶ lease lapses on the leader
//
// The margin absorbs clock-rate differences between the two hosts and the
// time a fence takes to reach the server. Clocks of different hosts are never
// compared: each side measures durations on its own monotonic clock.

// LeaseInput is what an agent knows when it checks its lease.
type LeaseInput struct {
	// Now is the agent's clock.
	Now time.Time
	// LastQuorumContact is when the agent last had contact with the Raft
	// quorum (zero: never since it started).
	LastQuorumContact time.Time
	// ReplacedSince is when the agent saw, in the replicated state, an
	// operation that replaces its instance (a failover whose old primary it
	// is): it releases the lease then. Zero when none.
	ReplacedSince time.Time
	// OtherPrimary names the primary the replicated state records when it is
	// not the local instance ("" otherwise).
	OtherPrimary string
	// Epoch is the replicated state's epoch, for reasons.
	Epoch uint64
	// FencedForContact: the agent fenced its instance itself because it
	// lost contact with the quorum, while the instance was the primary, and
	// has not given the writes back since.
	FencedForContact bool
	// LocalPrimary: the replicated state names the local instance primary,
	// and no operation is in progress.
	LocalPrimary bool
	// CaughtUp: this agent has applied every entry the leader told it is
	// committed, so the replicated state it read is current as of its
	// contact.
	CaughtUp bool
}

// LeaseDecision is what the agent must do.
type LeaseDecision struct {
	// Held: the agent holds its lease (in contact with the quorum, and no
	// operation replaces its instance). Only a lease holder's instance may
	// be the writable primary; holding it does not make the instance the
	// primary.
	Held bool
	// Fence: make the local instance read-only now, and keep trying until
	// it holds.
	Fence bool
	// Deadline is when the fence must hold: the leader may treat the lease
	// as lapsed LeaseMargin later. Zero when there is no deadline (held, or
	// another instance is primary and nothing is pending).
	Deadline time.Time
	// EscalateAt is when, if read_only still does not hold, the agent stops
	// its mysqld rather than let it take writes past the deadline.
	EscalateAt time.Time
	// Reason says why, for logs.
	Reason string
	// ForContact: the fence is due to lost contact with the quorum alone.
	ForContact bool
	// Restore: give the writes back. The agent fenced the instance only
	// because it lost contact, it holds the lease again, it has applied
	// everything committed, and the replicated state still names it
	// primary with nothing in progress: what the lease allowed before the
	// gap it allows again. Without this the instance waited for the leader's
	// restore-writes, which a lossy link to it could hold off for minutes.
	Restore bool
}

// LeaseMargin is how long before the leader's view of the lapse the agent's
// fence must hold: a tenth of lease_timeout, at least 100ms.
func LeaseMargin(p Policy) time.Duration {
	return max(100*time.Millisecond, p.LeaseTimeout/10)
}

// DecideLease decides the lease of an agent on its local instance. When
// several reasons hold, the earliest deadline rules.
func DecideLease(p Policy, in LeaseInput) LeaseDecision {
	margin := LeaseMargin(p)
	d := LeaseDecision{Held: true}
	var start time.Time // when fencing became due, for the chosen deadline
	consider := func(releases bool, reason string, due, deadline time.Time) {
		if releases {
			d.Held = false
		}
		if d.Fence && !deadline.Before(d.Deadline) {
			return
		}
		d.Fence, d.Reason, d.Deadline, start = true, reason, deadline, due
	}
	switch {
	case in.LastQuorumContact.IsZero():
		// Never in contact since start: no leader counts on this agent's
		// lease, and the instance must not take writes until it holds one.
		consider(true, "no contact with the Raft quorum since the agent started", in.Now, in.Now)
	case in.Now.Sub(in.LastQuorumContact) >= p.FenceAfter:
		consider(true, fmt.Sprintf("lost contact with the Raft quorum for more than fence_after (%v) since %s", p.FenceAfter, stamp(in.LastQuorumContact)),
			in.LastQuorumContact.Add(p.FenceAfter), in.LastQuorumContact.Add(p.LeaseTimeout-margin))
	}
	if !in.ReplacedSince.IsZero() {
		// The leader waits lease_timeout after recording the intent; the
		// agent saw it a little later, which the margin covers.
		consider(true, "an operation is replacing the local instance", in.ReplacedSince, in.ReplacedSince.Add(p.LeaseTimeout-margin))
	}
	contact := d.Fence
	if in.OtherPrimary != "" {
		// Another instance is primary in the committed epoch: this one must
		// be read-only already, and is made so at once if not. The lease
		// itself is not lost.
		consider(false, fmt.Sprintf("the replicated state names %s primary in epoch %d", in.OtherPrimary, in.Epoch), in.Now, in.Now)
	}
	if !d.Fence {
		d.Restore = in.FencedForContact && in.LocalPrimary && in.CaughtUp
		return d
	}
	d.ForContact = contact && in.ReplacedSince.IsZero() && in.OtherPrimary == ""
	if d.Deadline.Before(in.Now) {
		// Past it already (a frozen host woke up): fence and escalate now.
		d.Deadline, start = in.Now, in.Now
	}
	if start.After(d.Deadline) {
		start = d.Deadline
	}
	// Escalate halfway between when fencing became due and the deadline:
	// stopping mysqld needs the other half.
	d.EscalateAt = start.Add(d.Deadline.Sub(start) / 2)
	return d
}
