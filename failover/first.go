package failover

import (
	"fmt"
	"strings"
)

// FirstPrimary is what a leader records for a cluster the replicated state
// does not hold yet (README "Configuration": a new cluster is recorded from
// what the instances show).
type FirstPrimary struct {
	// Record: record the cluster now, with Primary as its primary ("": no
	// primary, for a cluster whose instances are all read-only and follow
	// none of them).
	Record  bool
	Primary string
	// Conflict: the instances contradict each other (several writable
	// ones); an operator must settle it. Otherwise a decision not to record
	// is a wait for probes.
	Conflict bool
	// Why says what the decision rests on.
	Why string
}

// DecideFirstPrimary decides from the leader's own probes of every instance:
// the one writable instance that is nobody's replica; when none is writable
// (a fresh set-up, or self-fenced), the one the most replicas follow, ties
// broken by name. It waits while an instance is not probed yet, or when no
// primary is found and an instance was not reached (the one the others
// follow may be among those): recording no primary, or the wrong one,
// would stick.
func DecideFirstPrimary(v View) FirstPrimary {
	var writable, unreachable []string
	follows := map[string]int{}
	for _, name := range v.names() {
		pr, ok := v.Instances[name].Probes[v.Leader]
		if !ok {
			return FirstPrimary{Why: fmt.Sprintf("%s is not probed yet", name)}
		}
		if !pr.Reachable {
			unreachable = append(unreachable, name)
			continue
		}
		if pr.Replica != nil {
			if src, ok := resolveSource(v, pr.Replica.Source); ok {
				follows[src]++
			}
		} else if pr.Writable() {
			writable = append(writable, name)
		}
	}
	switch {
	case len(writable) == 1:
		return FirstPrimary{Record: true, Primary: writable[0], Why: fmt.Sprintf("%s is the one writable instance", writable[0])}
	case len(writable) > 1:
		return FirstPrimary{Conflict: true, Why: fmt.Sprintf("several instances are writable (%s): make all but the primary read-only", strings.Join(writable, ", "))}
	}
	best, most := "", 0
	for _, n := range v.names() { // by name: the first of equals wins
		if follows[n] > most {
			best, most = n, follows[n]
		}
	}
	switch {
	case best != "":
		return FirstPrimary{Record: true, Primary: best, Why: fmt.Sprintf("no instance is writable; %d replicas follow %s", most, best)}
	case len(unreachable) > 0:
		return FirstPrimary{Why: fmt.Sprintf("no primary among the instances reached; not reached: %s", strings.Join(unreachable, ", "))}
	}
	return FirstPrimary{Record: true, Why: "every instance is read-only and follows none of them: recorded without a primary"}
}
