package failover

import (
	"errors"
	"testing"
	"time"
)

func TestPolicyValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Policy)
		want []string // substrings; none means valid
	}{
		{name: "defaults are valid", edit: func(*Policy) {}},
		{name: "async needs no semi-sync count", edit: func(p *Policy) { p.Durability, p.SemiSyncWaitFor = DurabilityAsync, 0 }},
		{name: "unknown durability", edit: func(p *Policy) { p.Durability = "quorum" },
			want: []string{`durability is "quorum"; want semi_sync or async`}},
		{name: "semi_sync without acknowledging replicas", edit: func(p *Policy) { p.SemiSyncWaitFor = 0 },
			want: []string{"semi_sync_wait_for is 0"}},
		{name: "zero timeouts named by key", edit: func(p *Policy) { p.ProbeInterval, p.CatchUpTimeout = 0, 0 },
			want: []string{"probe_interval is 0s; it must be positive", "catch_up_timeout is 0s"}},
		{name: "negative anti-flap", edit: func(p *Policy) { p.AntiFlapPeriod = -time.Second },
			want: []string{"anti_flap_period is -1s; it must not be negative"}},
		{name: "min_agreeing_agents below one", edit: func(p *Policy) { p.MinAgreeingAgents = 0 },
			want: []string{"min_agreeing_agents is 0"}},
		{name: "fence_after must be shorter than lease_timeout", edit: func(p *Policy) { p.FenceAfter = 3 * time.Second },
			want: []string{"fence_after (3s) must be shorter than lease_timeout (3s)", "isolated primary must stop taking writes"}},
		{name: "lease leaves no time to set read_only", edit: func(p *Policy) { p.FenceAfter = 2500 * time.Millisecond },
			want: []string{"lease_timeout (3s) leaves less than step_timeout (1s) after fence_after (2.5s)"}},
		{name: "lease leaves no room for the fence and its escalation", edit: func(p *Policy) {
			p.FenceAfter, p.LeaseTimeout, p.StepTimeout = 2500*time.Millisecond, 3*time.Second, 100*time.Millisecond
		}, want: []string{"lease_timeout (3s) leaves 500ms after fence_after (2.5s)", "twice the lease margin (300ms)"}},
		{name: "observation_ttl shorter than the probe interval", edit: func(p *Policy) { p.ObservationTTL = 100 * time.Millisecond },
			want: []string{"observation_ttl (100ms) is shorter than probe_interval (500ms)"}},
		{name: "failure_timeout shorter than the probe interval", edit: func(p *Policy) { p.FailureTimeout = 100 * time.Millisecond },
			want: []string{"failure_timeout (100ms) is shorter than probe_interval"}},
		{name: "operation_timeout too short for its steps", edit: func(p *Policy) { p.OperationTimeout = 10 * time.Second },
			want: []string{"operation_timeout (10s) is shorter than the longest operation"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultPolicy()
			tc.edit(&p)
			err := p.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("want ErrInvalidPolicy, got %v", err)
			}
			mustContain(t, "error", err.Error(), tc.want...)
		})
	}
}

func TestViewValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*View)
		want []string
	}{
		{name: "base view is valid", edit: func(*View) {}},
		{name: "no now", edit: func(v *View) { v.Now = time.Time{} }, want: []string{"now is not set"}},
		{name: "key and name differ", edit: func(v *View) {
			in := v.Instances["db3"]
			in.Name = "db4"
			v.Instances["db3"] = in
		}, want: []string{`instance key "db3" holds an instance named "db4"`}},
		{name: "unknown promotion rule", edit: func(v *View) {
			in := v.Instances["db3"]
			in.Promotion = "never"
			v.Instances["db3"] = in
		}, want: []string{`unknown promotion rule "never"`}},
		{name: "an agent owns two instances", edit: func(v *View) {
			in := v.Instances["db3"]
			in.OwnerAgent = "a2"
			v.Instances["db3"] = in
		}, want: []string{`agent "a2" owns both "db2" and "db3"`}},
		{name: "probe by an unknown agent", edit: func(v *View) {
			v.Instances["db3"].Probes["a7"] = Probe{}
		}, want: []string{`probe by unknown agent "a7"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := base().build()
			tc.edit(&v)
			err := v.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidView) {
				t.Fatalf("want ErrInvalidView, got %v", err)
			}
			mustContain(t, "error", err.Error(), tc.want...)
		})
	}
}
