package failover

import (
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	fast := DefaultPolicy()
	fast.ProbeInterval = 100 * time.Millisecond
	slow := DefaultPolicy()
	slow.ProbeInterval = 2 * time.Second
	cases := []struct {
		name string
		p    Policy
		c    RetryCause
		want time.Duration
	}{
		{name: "refused plan: five probe intervals", p: fast, c: RetryPlanRefused, want: 500 * time.Millisecond},
		{name: "refused plan, slow probes", p: slow, c: RetryPlanRefused, want: 10 * time.Second},
		{name: "failed run: at least 5 s", p: fast, c: RetryRunFailed, want: 5 * time.Second},
		{name: "failed run, slow probes: ten probe intervals", p: slow, c: RetryRunFailed, want: 20 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := RetryAfter(tc.p, tc.c); got != tc.want {
				t.Errorf("RetryAfter = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestProblemKey(t *testing.T) {
	cases := []struct {
		name string
		a, b Problem
		same bool
	}{
		{name: "same code and instances", a: Problem{Code: DeadPrimary, Instances: []string{"db1"}}, b: Problem{Code: DeadPrimary, Instances: []string{"db1"}}, same: true},
		{name: "same code, another instance", a: Problem{Code: DeadPrimary, Instances: []string{"db1"}}, b: Problem{Code: DeadPrimary, Instances: []string{"db2"}}},
		{name: "same instances, another code", a: Problem{Code: DeadPrimary, Instances: []string{"db1"}}, b: Problem{Code: SemiSyncNotEnforced, Instances: []string{"db1"}}},
		{name: "more instances", a: Problem{Code: DeadPrimary, Instances: []string{"db1", "db2"}}, b: Problem{Code: DeadPrimary, Instances: []string{"db1"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ProblemKey(tc.a) == ProblemKey(tc.b); got != tc.same {
				t.Errorf("keys %q and %q: same %v, want %v", ProblemKey(tc.a), ProblemKey(tc.b), got, tc.same)
			}
		})
	}
}
