package chaos

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/regentdb/regent/api"
)

// The checks, by name (Violation.Check).
const (
	// CheckLostWrite: a write acknowledged to a client is missing on the
	// final primary (durability: semi_sync).
	CheckLostWrite = "lost-write"
	// CheckDualWriter: an instance acknowledged a write that the final
	// primary lacks, in an attempt sent after an operation had already made
	// another instance the primary (and before any later one gave the role
	// back). "Accepted" means acknowledged: with lossless semi-sync as the
	// fence (docs/safety.md), a replaced primary that wakes may still run a
	// statement it received, but cannot acknowledge it; such rows are
	// divergent data the quarantine keeps apart, counted by Divergent.
	CheckDualWriter = "dual-writer"
	// CheckStaleRoute: a write through HAProxy was acknowledged by an
	// instance that was not the primary of any epoch current during the
	// attempt.
	CheckStaleRoute = "stale-route"
	// CheckEpoch: an agent's epoch went down, or operations committed
	// epochs out of order.
	CheckEpoch = "epoch"
	// CheckStuckOperation: an operation had not ended when the run did.
	CheckStuckOperation = "stuck-operation"
	// CheckConverged: within ConvergeWithin of the last heal, one writable
	// primary, the others replicating from it or quarantined with a reason,
	// automatic failover possible or blocked with a stated reason, HAProxy
	// routing to the primary.
	CheckConverged = "converged"
)

// Checks lists every check, in the order Check runs them.
var Checks = []string{CheckLostWrite, CheckDualWriter, CheckStaleRoute, CheckEpoch, CheckStuckOperation, CheckConverged}

// Violation is one broken promise.
type Violation struct {
	Check string `json:"check"`
	// At is the moment the timeline should be centred on.
	At     time.Time `json:"at"`
	Detail string    `json:"detail"`
}

func (v Violation) String() string { return v.Check + ": " + v.Detail }

// Check reads a history and returns every violation it finds, each check's
// in time order. A history with no acknowledged write, no operation and no
// sample still gets the convergence check: a run that recorded nothing
// proves nothing, and says so.
func Check(h History) []Violation {
	var out []Violation
	out = append(out, lostWrites(h)...)
	out = append(out, dualWriters(h)...)
	out = append(out, staleRoutes(h)...)
	out = append(out, epochs(h)...)
	out = append(out, stuckOperations(h)...)
	out = append(out, convergence(h)...)
	return out
}

// rowsOn returns the row ids each instance held at the end.
func rowsOn(h History) map[string]map[int64]bool {
	m := make(map[string]map[int64]bool, len(h.Final.Instances))
	for _, in := range h.Final.Instances {
		set := make(map[int64]bool, len(in.Rows))
		for _, id := range in.Rows {
			set[id] = true
		}
		m[in.Name] = set
	}
	return m
}

func lostWrites(h History) []Violation {
	if in, ok := finalInstance(h.Final, h.Final.Primary); ok && in.RowsErr != "" {
		return []Violation{{Check: CheckLostWrite, At: h.Final.HealedAt,
			Detail: fmt.Sprintf("the final primary %s's rows could not be read (%s): no acknowledged write can be shown kept", h.Final.Primary, in.RowsErr)}}
	}
	kept := rowsOn(h)[h.Final.Primary]
	var out []Violation
	for _, a := range h.Attempts {
		if a.OK && !kept[a.ID] {
			out = append(out, Violation{Check: CheckLostWrite, At: a.End,
				Detail: fmt.Sprintf("row %d acknowledged to %s by %s at %s is not on the final primary %s (epoch %d)",
					a.ID, a.Client, orUnknown(a.Target), clock(a.End), orUnknown(h.Final.Primary), h.Final.Epoch)})
		}
	}
	return out
}

func finalInstance(f Final, name string) (FinalInstance, bool) {
	for _, in := range f.Instances {
		if in.Name == name {
			return in, true
		}
	}
	return FinalInstance{}, false
}

// Divergent returns the attempts whose row an instance other than the final
// primary committed, unacknowledged, and the final primary lacks: data a
// replaced primary took in after it could no longer acknowledge (see
// CheckDualWriter), or before it was replaced.
func Divergent(h History) []Attempt {
	rows := rowsOn(h)
	kept := rows[h.Final.Primary]
	var out []Attempt
	for _, a := range h.Attempts {
		if !a.OK && a.Target != "" && a.Target != h.Final.Primary && rows[a.Target][a.ID] && !kept[a.ID] {
			out = append(out, a)
		}
	}
	return out
}

// tenure is when an instance was legitimately the writer, as the
// operations say: from the start of the operation that promoted it (or the
// beginning of the run, for the first primary) to the end of the one that
// replaced it.
type tenure struct {
	instance   string
	from, to   time.Time // to is zero while it lasts
	epoch      uint64
	promotedBy string
}

// tenures derives the writers' tenures from the successful operations that
// changed the primary, in the order they ended.
func tenures(h History) []tenure {
	ops := changes(h.Final.Operations)
	var ts []tenure
	first := h.Final.Primary
	var epoch uint64
	if len(ops) > 0 {
		first, epoch = ops[0].OldPrimary, ops[0].EpochBefore
	}
	if first != "" {
		ts = append(ts, tenure{instance: first, from: h.Started, epoch: epoch})
	}
	for _, op := range ops {
		from := op.Started
		if len(ts) > 0 {
			// An earlier run that promoted the same instance and died
			// before its commit (the leader killed after its route step)
			// made it writable then; this operation finished that change
			// (an uncommitted promotion is repaired by a failover that
			// counts its data), so the tenure starts with that run.
			prev := ts[len(ts)-1]
			for _, early := range h.Final.Operations {
				if early.ID != op.ID && early.Started.Before(from) && early.Started.After(prev.from) &&
					promotedStep(early, op.NewPrimary) && !committed(early) {
					from = early.Started
				}
			}
			ts[len(ts)-1].to = committedAt(op)
		}
		ts = append(ts, tenure{instance: op.NewPrimary, from: from, epoch: op.EpochAfter, promotedBy: op.ID})
	}
	return ts
}

// promotedStep reports whether op's promote step made instance writable.
func promotedStep(op api.Operation, instance string) bool {
	for _, s := range op.Steps {
		if s.Name == "promote "+instance && s.Result == api.ResultSuccess {
			return true
		}
	}
	return false
}

// committedAt is when op committed its epoch: the end of its commit-epoch
// step, or when that is not recorded, the operation's end (later: more
// lenient to the replaced primary).
func committedAt(op api.Operation) time.Time {
	for _, s := range op.Steps {
		if stepKind(s.Name) == commitStep && s.Result == api.ResultSuccess {
			return s.Started.Add(time.Duration(s.Duration))
		}
	}
	return *op.Ended
}

// commitStep is the name of the step that commits the new epoch in Raft.
const commitStep = "commit-epoch"

// changes returns the operations that committed a new primary, ordered by
// their commit: the successful ones, and those that committed their epoch
// and were then finished otherwise (a leader killed after its commit-epoch
// step: the next one aborts the run, and the change stands).
func changes(ops []api.Operation) []api.Operation {
	var out []api.Operation
	for _, op := range ops {
		if op.Ended == nil || op.NewPrimary == "" || op.EpochAfter == 0 {
			continue
		}
		if op.Result == api.ResultSuccess || committed(op) {
			out = append(out, op)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return committedAt(out[i]).Before(committedAt(out[j])) })
	return out
}

// committed reports whether op committed its new epoch: the history says
// so (its epoch_after is past its epoch_before: the commit itself sets it,
// even when the leader died before recording the step), or its
// commit-epoch step succeeded.
func committed(op api.Operation) bool {
	if op.EpochAfter > op.EpochBefore {
		return true
	}
	for _, s := range op.Steps {
		if stepKind(s.Name) == commitStep && s.Result == api.ResultSuccess {
			return true
		}
	}
	return false
}

// legitimate reports whether instance was a writer by some tenure
// overlapping [from, to].
func legitimate(ts []tenure, instance string, from, to time.Time) bool {
	for _, t := range ts {
		if t.instance == instance && !to.Before(t.from) && (t.to.IsZero() || !from.After(t.to)) {
			return true
		}
	}
	return false
}

// tenureAt returns the tenure that had most recently begun by t.
func tenureAt(ts []tenure, t time.Time) (tenure, bool) {
	var best tenure
	found := false
	for _, x := range ts {
		if !x.from.After(t) {
			best, found = x, true
		}
	}
	return best, found
}

func dualWriters(h History) []Violation {
	kept := rowsOn(h)[h.Final.Primary]
	ts := tenures(h)
	var out []Violation
	for _, a := range h.Attempts {
		if !a.OK || a.Target == "" || a.Target == h.Final.Primary || kept[a.ID] {
			continue
		}
		if legitimate(ts, a.Target, a.Start, a.End) {
			continue
		}
		cur, _ := tenureAt(ts, a.Start)
		out = append(out, Violation{Check: CheckDualWriter, At: a.Start,
			Detail: fmt.Sprintf("%s acknowledged row %d (%s's attempt %s..%s) while %s was the primary of epoch %d (promoted by operation %s); the final primary %s lacks the row",
				a.Target, a.ID, a.Client, clock(a.Start), clock(a.End), orUnknown(cur.instance), cur.epoch, orUnknown(cur.promotedBy), h.Final.Primary)})
	}
	return out
}

func staleRoutes(h History) []Violation {
	ts := tenures(h)
	var out []Violation
	for _, a := range h.Attempts {
		if !a.OK || !a.Through() || a.Target == "" || legitimate(ts, a.Target, a.Start, a.End) {
			continue
		}
		cur, _ := tenureAt(ts, a.Start)
		out = append(out, Violation{Check: CheckStaleRoute, At: a.Start,
			Detail: fmt.Sprintf("HAProxy sent row %d (%s, %s..%s) to %s, which acknowledged it, while %s was the primary of epoch %d",
				a.ID, a.Client, clock(a.Start), clock(a.End), a.Target, orUnknown(cur.instance), cur.epoch)})
	}
	return out
}

func epochs(h History) []Violation {
	var out []Violation
	last := map[string]uint64{}
	for _, s := range h.Samples {
		for _, agent := range sortedKeys(s.Epoch) {
			e := s.Epoch[agent]
			if prev, ok := last[agent]; ok && e < prev {
				out = append(out, Violation{Check: CheckEpoch, At: s.At,
					Detail: fmt.Sprintf("agent %s reported epoch %d at %s after %d", agent, e, clock(s.At), prev)})
			}
			last[agent] = max(last[agent], e)
		}
	}
	var prev *api.Operation
	for _, op := range changes(h.Final.Operations) {
		if prev != nil && op.EpochAfter <= prev.EpochAfter {
			out = append(out, Violation{Check: CheckEpoch, At: *op.Ended,
				Detail: fmt.Sprintf("operation %s committed epoch %d after operation %s had committed %d", op.ID, op.EpochAfter, prev.ID, prev.EpochAfter)})
		}
		prev = &op
	}
	return out
}

func stuckOperations(h History) []Violation {
	var out []Violation
	for _, op := range h.Final.Operations {
		if op.Ended == nil || op.Result == api.ResultRunning || op.Result == "" {
			out = append(out, Violation{Check: CheckStuckOperation, At: op.Started,
				Detail: fmt.Sprintf("%s %s (started %s, target %s) had not ended when the run did (result %q)", op.Kind, op.ID, clock(op.Started), orUnknown(op.Target), op.Result)})
		}
	}
	return out
}

// Converged reports whether the final state meets the convergence
// conditions, and when not, what is missing. The runner polls it; the
// checker applies it to the state the runner kept.
func Converged(f Final) (bool, string) {
	var why []string
	var writable []string
	for _, in := range f.Instances {
		if in.Writable {
			writable = append(writable, in.Name)
		}
	}
	switch {
	case f.Primary == "":
		why = append(why, "Regent names no primary")
	case len(writable) != 1 || writable[0] != f.Primary:
		why = append(why, fmt.Sprintf("writable instances %v, want exactly the primary %s", writable, f.Primary))
	}
	for _, in := range f.Instances {
		if in.Name == f.Primary {
			continue
		}
		switch {
		case in.Role == api.RoleQuarantined && in.QuarantineReason == "":
			why = append(why, in.Name+" is quarantined without a reason")
		case in.Role == api.RoleQuarantined:
		case in.SourceName != f.Primary:
			why = append(why, fmt.Sprintf("%s neither replicates from %s (source %q, role %s) nor is quarantined", in.Name, f.Primary, in.SourceName, orUnknown(string(in.Role))))
		}
	}
	if af := f.AutomaticFailover; !af.Possible {
		stated := len(af.Blockers) > 0
		for _, b := range af.Blockers {
			stated = stated && b.Reason != ""
		}
		if !stated {
			why = append(why, "automatic failover is not possible and no blocker says why")
		}
	}
	if f.Primary != "" && f.Routed != f.Primary {
		why = append(why, fmt.Sprintf("HAProxy routes writes to %q, not to the primary %s", f.Routed, f.Primary))
	}
	return len(why) == 0, strings.Join(why, "; ")
}

func convergence(h History) []Violation {
	f := h.Final
	if f.ConvergedAt.IsZero() || f.ConvergedAt.Sub(f.HealedAt) > ConvergeWithin {
		why := f.Why
		if why == "" {
			_, why = Converged(f)
		}
		return []Violation{{Check: CheckConverged, At: f.HealedAt,
			Detail: fmt.Sprintf("not converged within %v of the heal at %s: %s", ConvergeWithin, clock(f.HealedAt), orUnknown(why))}}
	}
	if ok, why := Converged(f); !ok {
		return []Violation{{Check: CheckConverged, At: f.ConvergedAt,
			Detail: "the kept final state does not meet the conditions: " + why}}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

func clock(t time.Time) string {
	if t.IsZero() {
		return "(never)"
	}
	return t.UTC().Format("15:04:05.000")
}
