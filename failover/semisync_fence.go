package failover

import (
	"fmt"
	"strings"
)

// FenceSemiSync is the fencing method of a failover that does not wait out
// the old primary's lease: lossless semi-sync fences it once no replica can
// acknowledge its commits (SemiSyncFenceOf).
const FenceSemiSync FenceVia = "semi-sync"

// SemiSyncFence is SemiSyncFenceOf's answer.
type SemiSyncFence struct {
	// OK: once every instance of Acknowledgers is seen not receiving from
	// the old primary, it can acknowledge no commit, hung or not.
	OK bool
	// Acknowledgers are the replicas that receive from the old primary and
	// the leader reaches: the failover stops their IO threads, then checks.
	Acknowledgers []string
	// Reason says why it holds, or the first reason it does not.
	Reason string
}

// SemiSyncFenceOf decides whether lossless semi-sync fences old, so that a
// failover may promote without waiting out its agent's lease (README,
// "Semi-sync as a fence").
//
// The proof: a lossless semi-sync primary (wait point AFTER_SYNC,
// wait_no_replica ON, a timeout it never reaches, no fallback decided by the
// leader) acknowledges a commit to its client only after
// rpl_semi_sync_*_wait_for_*_count ≥ 1 replicas acknowledged receiving it.
// A replica acknowledges only over a connection of its IO thread to that
// primary. If every replica that could be connected to it is seen with no
// such IO thread — stopped by the failover, or replicating from elsewhere —
// no acknowledgement can come, so the old primary acknowledges nothing from
// then on, whether it is frozen, cut off or serving. What it committed before
// is on a replica that acknowledged it, and Rank counts every replica's data.
//
// It does not hold, and the lease wait stays, when: durability is async; the
// leader degraded semi-sync (semi_sync_fallback); the old primary was never
// seen, or last seen not lossless; any other instance is unreachable (its IO
// thread cannot be stopped or seen, and what it was last seen doing may have
// changed since: its semi-sync side switched on, its IO thread restarted);
// or the old primary
// had more semi-sync replicas connected than Regent's instances account for
// (an unmanaged replica could acknowledge).
func SemiSyncFenceOf(v View, p Policy, old string) SemiSyncFence {
	return semiSyncFence(v, p, old, false)
}

// semiSyncFence is SemiSyncFenceOf; offCounts takes a source side last
// seen switched off for lossless when its other settings are
// (unreceivedUnacknowledged says when that holds).
func semiSyncFence(v View, p Policy, old string, offCounts bool) SemiSyncFence {
	no := func(format string, a ...any) SemiSyncFence {
		return SemiSyncFence{Reason: fmt.Sprintf(format, a...)}
	}
	if p.Durability != DurabilitySemiSync {
		return no("durability is %s: the old primary needs no acknowledgement to commit", p.Durability)
	}
	if v.State.SemiSyncDegraded {
		return no("semi-sync was degraded to asynchronous commits (semi_sync_fallback) since %s", stamp(v.State.SemiSyncDegradedSince))
	}
	in, ok := v.Instances[old]
	if !ok {
		return no("%s is not an instance of the cluster", old)
	}
	ls := in.LastSeen
	if ls.ObservedAt.IsZero() || !ls.Reachable {
		return no("%s was never seen, so its semi-sync settings are unknown", old)
	}
	ss := ls.SemiSync
	switch {
	case !offCounts && (!ss.SourceEnabled || !ss.SourceActive):
		return no("%s was last seen committing without semi-sync", old)
	case !strings.EqualFold(ss.WaitPoint, "AFTER_SYNC"):
		return no("%s was last seen with wait point %q, not AFTER_SYNC", old, ss.WaitPoint)
	case !ss.WaitNoReplica:
		return no("%s was last seen with wait_no_replica OFF: it would commit without replicas", old)
	case ss.Timeout < LosslessMinTimeout:
		return no("%s was last seen with a semi-sync timeout of %v: it would fall back to asynchronous commits by itself", old, ss.Timeout)
	case ss.WaitCount < 1:
		return no("%s was last seen waiting for %d acknowledgements", old, ss.WaitCount)
	}
	var acks, away []string
	known := 0 // instances last seen receiving from old with the semi-sync side on
	for _, n := range v.names() {
		if n == old {
			continue
		}
		last := v.Instances[n].LastSeen
		if last.Replica != nil && last.SemiSync.ReplicaEnabled {
			if src, ok := resolveSource(v, last.Replica.Source); ok && src == old {
				known++
			}
		}
		pr, rc := leaderReach(v, p, n)
		if rc != reachOK {
			// Whatever it was last seen doing: its semi-sync side may have
			// been switched on since (the leader itself repairs replicas
			// that receive without it, and restarts their IO threads), and
			// its IO thread may have been pointed at old. Only a probe now
			// can say it receives nothing.
			away = append(away, n)
			continue
		}
		if pr.Replica == nil {
			continue // not a replica: no IO thread
		}
		if src, ok := resolveSource(v, pr.Replica.Source); ok && src != old {
			continue // receives from another source
		}
		acks = append(acks, n)
	}
	if len(away) > 0 {
		return no("replicas %s could acknowledge %s's commits and the leader cannot reach them to stop their IO threads", strings.Join(away, ", "), old)
	}
	if ss.SourceClients > known {
		return no("%s last had %d semi-sync replicas connected and only %d of Regent's instances were among them: an unmanaged replica could acknowledge", old, ss.SourceClients, known)
	}
	why := fmt.Sprintf("lossless semi-sync: once %s receive nothing more from %s, it can acknowledge no commit", orNone(acks), old)
	return SemiSyncFence{OK: true, Acknowledgers: acks, Reason: why}
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "no replica (none receives from it)"
	}
	return strings.Join(names, ", ")
}
