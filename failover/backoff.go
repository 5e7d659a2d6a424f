package failover

import (
	"strings"
	"time"
)

// RetryCause is why the leader leaves a problem alone for a while.
type RetryCause int

const (
	// RetryPlanRefused: the plan for the problem was refused (a gate, a
	// blocker the analysis did not know of). The facts may change with the
	// next probes.
	RetryPlanRefused RetryCause = iota
	// RetryRunFailed: the operation ran and failed (its steps said why, and
	// it left the topology as it was or undid what it did). Trying again at
	// once would hit the same wall, and fill the history.
	RetryRunFailed
)

// RetryAfter is how long the leader waits before it acts on the same
// problem (ProblemKey) again: five probe intervals after a refused plan,
// ten (at least 5 s) after a failed run.
func RetryAfter(p Policy, c RetryCause) time.Duration {
	if c == RetryRunFailed {
		return max(5*time.Second, 10*p.ProbeInterval)
	}
	return 5 * p.ProbeInterval
}

// ProblemKey names a problem for RetryAfter: its code and instances, so
// that the same finding on other instances is not held back.
func ProblemKey(pr Problem) string {
	return string(pr.Code) + ":" + strings.Join(pr.Instances, ",")
}
