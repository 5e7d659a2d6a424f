package chaos

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Timeline merges a history's faults, commands, operations (with their
// steps), the sampler's changes and the clients' transitions between
// success and failure within span of center, one line each, in time order.
func Timeline(h History, center time.Time, span time.Duration) string {
	type line struct {
		at   time.Time
		text string
	}
	var lines []line
	in := func(t time.Time) bool { return !t.Before(center.Add(-span)) && !t.After(center.Add(span)) }
	add := func(t time.Time, format string, args ...any) {
		if in(t) {
			lines = append(lines, line{t, fmt.Sprintf(format, args...)})
		}
	}
	for _, e := range h.Events {
		add(e.At, "nemesis   %s: %s", e.Kind, e.Detail)
	}
	for _, op := range h.Final.Operations {
		add(op.Started, "operation %s %s started (target %s, epoch %d)", op.Kind, op.ID, orUnknown(op.Target), op.EpochBefore)
		for _, s := range op.Steps {
			add(s.Started, "  step    %s %s: %s in %v %s", op.ID, s.Name, s.Result, time.Duration(s.Duration), s.Detail)
		}
		if op.Ended != nil {
			add(*op.Ended, "operation %s %s ended: %s (%s -> %s, epoch %d) %s", op.Kind, op.ID, op.Result, op.OldPrimary, op.NewPrimary, op.EpochAfter, op.Reason)
		}
	}
	prev := ""
	for _, s := range h.Samples {
		cur := describeSample(s)
		if cur != prev {
			add(s.At, "sample    %s", cur)
			prev = cur
		}
	}
	last := map[string]bool{}
	for _, a := range h.Attempts {
		was, seen := last[a.Client]
		if !seen || was != a.OK {
			res := "ok"
			if !a.OK {
				res = "failing: " + a.Err
			}
			add(a.End, "client    %s row %d on %s %s", a.Client, a.ID, orUnknown(a.Target), res)
		}
		last[a.Client] = a.OK
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].at.Before(lines[j].at) })
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "%s %+7.3fs  %s\n", clock(l.at), l.at.Sub(h.Started).Seconds(), l.text)
	}
	return b.String()
}

// describeSample says what a sample saw in one line: the writable
// instances, the agents answering 200 on /primary, HAProxy's routable
// servers, and the epochs and primaries the agents hold.
func describeSample(s Sample) string {
	var writable, checks, up, views []string
	for _, n := range sortedKeys(s.ReadOnly) {
		if !s.ReadOnly[n] {
			writable = append(writable, n)
		}
	}
	for _, n := range sortedKeys(s.PrimaryCheck) {
		if s.PrimaryCheck[n] == 200 {
			checks = append(checks, n)
		}
	}
	for _, n := range sortedKeys(s.HAProxy) {
		if s.HAProxy[n] == "UP" {
			up = append(up, n)
		}
	}
	for _, n := range sortedKeys(s.Epoch) {
		views = append(views, fmt.Sprintf("%s:%d/%s", n, s.Epoch[n], s.Primary[n]))
	}
	return fmt.Sprintf("writable %v, /primary 200 %v, HAProxy UP %v, agents %v", writable, checks, up, views)
}

// Tally sums a campaign's runs, for its table.
type Tally struct {
	Flavor    string
	Schedules int
	Failed    int
	// Kinds counts the faults and commands the nemesis applied, by kind
	// (a skipped step is not counted).
	Kinds map[Kind]int
	// Operations counts operations by kind and result.
	Operations map[string]int
	Acked      int
	Attempts   int
	// Divergent counts unacknowledged rows left on replaced primaries
	// (Divergent).
	Divergent int
	// Checks counts the schedules each check failed (absent: none).
	Checks map[string]int
	// FailedSeeds lists the seeds of failed schedules.
	FailedSeeds []uint64
}

// Add counts one schedule's history and violations.
func (t *Tally) Add(h History, vs []Violation) {
	if t.Kinds == nil {
		t.Kinds, t.Operations, t.Checks = map[Kind]int{}, map[string]int{}, map[string]int{}
	}
	t.Flavor = h.Flavor
	t.Schedules++
	for _, k := range h.Applied {
		t.Kinds[k]++
	}
	for _, op := range h.Final.Operations {
		t.Operations[op.Kind+" "+op.Result]++
	}
	t.Divergent += len(Divergent(h))
	for _, a := range h.Attempts {
		t.Attempts++
		if a.OK {
			t.Acked++
		}
	}
	failed := map[string]bool{}
	for _, v := range vs {
		failed[v.Check] = true
	}
	for c := range failed {
		t.Checks[c]++
	}
	if len(vs) > 0 {
		t.Failed++
		t.FailedSeeds = append(t.FailedSeeds, h.Schedule.Seed)
	}
}

// Markdown writes the tallies as the campaign's table.
func Markdown(ts []*Tally) string {
	var b strings.Builder
	b.WriteString("| flavour | schedules | failed | faults and commands applied | operations | writes acknowledged / attempted | unacknowledged rows left on replaced primaries | checks failed (schedules) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, t := range ts {
		var kinds, ops, checks []string
		for _, k := range Kinds {
			if t.Kinds[k] > 0 {
				kinds = append(kinds, fmt.Sprintf("%s %d", k, t.Kinds[k]))
			}
		}
		for _, k := range sortedKeys(t.Operations) {
			ops = append(ops, fmt.Sprintf("%s %d", k, t.Operations[k]))
		}
		for _, c := range Checks {
			if t.Checks[c] > 0 {
				checks = append(checks, fmt.Sprintf("%s %d", c, t.Checks[c]))
			}
		}
		if len(checks) == 0 {
			checks = []string{"none: every check passed"}
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %s | %d / %d | %d | %s |\n", t.Flavor, t.Schedules, t.Failed,
			strings.Join(kinds, ", "), strings.Join(ops, ", "), t.Acked, t.Attempts, t.Divergent, strings.Join(checks, ", "))
	}
	for _, t := range ts {
		if len(t.FailedSeeds) > 0 {
			seeds := slices.Clone(t.FailedSeeds)
			slices.Sort(seeds)
			fmt.Fprintf(&b, "\nFailed seeds (%s): %v\n", t.Flavor, seeds)
		}
	}
	return b.String()
}
