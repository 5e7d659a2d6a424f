package failover

import (
	"testing"
	"time"
)

// Issue 9, defects 4 and 10: the lease is decided from the last quorum
// contact alone (never from a probe, never from when a check ran), and its
// deadline is anchored to that contact.
func TestDecideLease(t *testing.T) {
	p := DefaultPolicy() // fence_after 1.5s, lease_timeout 3s: margin 300ms
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	cases := []struct {
		name string
		in   LeaseInput
		want LeaseDecision
	}{
		{name: "fresh contact: held",
			in:   LeaseInput{Now: at(time.Second), LastQuorumContact: at(900 * ms)},
			want: LeaseDecision{Held: true}},
		{name: "contact just under fence_after: still held",
			in:   LeaseInput{Now: at(1499 * ms), LastQuorumContact: t0},
			want: LeaseDecision{Held: true}},
		{name: "contact lost for fence_after: fence, deadline anchored to the contact, not to now",
			in:   LeaseInput{Now: at(1500 * ms), LastQuorumContact: t0},
			want: LeaseDecision{Fence: true, ForContact: true, Deadline: at(2700 * ms), EscalateAt: at(2100 * ms)}},
		{name: "a check that runs late gets no fresh budget",
			in:   LeaseInput{Now: at(2400 * ms), LastQuorumContact: t0},
			want: LeaseDecision{Fence: true, ForContact: true, Deadline: at(2700 * ms), EscalateAt: at(2100 * ms)}},
		{name: "past the deadline (a frozen host wakes): fence and escalate at once",
			in:   LeaseInput{Now: at(10 * time.Second), LastQuorumContact: t0},
			want: LeaseDecision{Fence: true, ForContact: true, Deadline: at(10 * time.Second), EscalateAt: at(10 * time.Second)}},
		{name: "never in contact since start: fence at once",
			in:   LeaseInput{Now: t0},
			want: LeaseDecision{Fence: true, ForContact: true, Deadline: t0, EscalateAt: t0}},
		{name: "an operation replaces the instance: released, deadline from when it was seen",
			in:   LeaseInput{Now: at(100 * ms), LastQuorumContact: at(90 * ms), ReplacedSince: at(50 * ms)},
			want: LeaseDecision{Fence: true, Deadline: at(2750 * ms), EscalateAt: at(1400 * ms)}},
		{name: "replaced, then cut off: the earlier deadline rules",
			in:   LeaseInput{Now: at(1600 * ms), LastQuorumContact: t0, ReplacedSince: at(-50 * ms)},
			want: LeaseDecision{Fence: true, Deadline: at(2650 * ms), EscalateAt: at(1300 * ms)}},
		{name: "cut off, then the replacement seen late: the contact's deadline rules",
			in:   LeaseInput{Now: at(1600 * ms), LastQuorumContact: t0, ReplacedSince: at(1550 * ms)},
			want: LeaseDecision{Fence: true, Deadline: at(2700 * ms), EscalateAt: at(2100 * ms)}},
		{name: "another instance is primary: fence at once",
			in:   LeaseInput{Now: t0, LastQuorumContact: t0, OtherPrimary: "db2", Epoch: 4},
			want: LeaseDecision{Held: true, Fence: true, Deadline: t0, EscalateAt: t0}},
		{name: "cut off while another is primary: not a fence for contact alone",
			in:   LeaseInput{Now: at(1600 * ms), LastQuorumContact: t0, OtherPrimary: "db2", Epoch: 4},
			want: LeaseDecision{Fence: true, Deadline: at(1600 * ms), EscalateAt: at(1600 * ms)}},
		{name: "contact back after a fence for contact, still the primary with nothing in progress: restore the writes",
			in:   LeaseInput{Now: at(2 * time.Second), LastQuorumContact: at(1900 * ms), FencedForContact: true, LocalPrimary: true, CaughtUp: true},
			want: LeaseDecision{Held: true, Restore: true}},
		{name: "contact back, but entries committed that it has not applied yet: no restore until it has",
			in:   LeaseInput{Now: at(2 * time.Second), LastQuorumContact: at(1900 * ms), FencedForContact: true, LocalPrimary: true},
			want: LeaseDecision{Held: true}},
		{name: "contact back, but the state no longer names it primary (or something is in progress): no restore",
			in:   LeaseInput{Now: at(2 * time.Second), LastQuorumContact: at(1900 * ms), FencedForContact: true},
			want: LeaseDecision{Held: true}},
		{name: "contact back, but another is primary: fence, no restore",
			in:   LeaseInput{Now: at(2 * time.Second), LastQuorumContact: at(1900 * ms), FencedForContact: true, OtherPrimary: "db2", Epoch: 5},
			want: LeaseDecision{Held: true, Fence: true, Deadline: at(2 * time.Second), EscalateAt: at(2 * time.Second)}},
		{name: "still cut off: no restore",
			in:   LeaseInput{Now: at(3 * time.Second), LastQuorumContact: at(1000 * ms), FencedForContact: true, LocalPrimary: true},
			want: LeaseDecision{Fence: true, ForContact: true, Deadline: at(3700 * ms), EscalateAt: at(3100 * ms)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := DecideLease(p, tc.in)
			got.Reason = ""
			check(t, "decision", tc.want, got)
		})
	}
}

// The deadline is never later than the moment the leader may treat the lease
// as lapsed, whatever the timings Validate accepts.
func TestLeaseDeadlineBeforeLeaderLapse(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for _, fa := range []time.Duration{100 * ms, 500 * ms, time.Second, 1500 * ms} {
		for _, lt := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 10 * time.Second} {
			p := DefaultPolicy()
			p.FenceAfter, p.LeaseTimeout, p.StepTimeout = fa, lt, 100*ms
			if p.Validate() != nil {
				continue
			}
			for _, now := range []time.Duration{fa, (fa + lt) / 2, lt, 2 * lt} {
				d := DecideLease(p, LeaseInput{Now: t0.Add(now), LastQuorumContact: t0})
				lapse := t0.Add(lt)
				if now < lt && !d.Deadline.Before(lapse) {
					t.Errorf("fence_after %v lease_timeout %v now +%v: deadline %v not before the lapse %v", fa, lt, now, d.Deadline, lapse)
				}
				if d.EscalateAt.After(d.Deadline) || d.EscalateAt.Before(t0.Add(min(now, fa))) {
					t.Errorf("fence_after %v lease_timeout %v now +%v: escalate at %v outside [fence, deadline %v]", fa, lt, now, d.EscalateAt, d.Deadline)
				}
			}
		}
	}
}
