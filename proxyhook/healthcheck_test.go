package proxyhook

import (
	"strings"
	"testing"
	"time"
)

func TestHealthCheckConverged(t *testing.T) {
	ms := time.Millisecond
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	// The deploy example's HAProxy: inter 200ms fastinter 200ms downinter
	// 250ms fall 2 rise 1.
	deploy := HealthCheckConfig{Name: "lb1", Inter: 200 * ms, FastInter: 200 * ms, DownInter: 250 * ms, Fall: 2, Rise: 1}
	cases := []struct {
		name            string
		h               HealthCheckConfig
		down, up        time.Time
		expected, worst time.Time
		wantReason      string
	}{
		{"deploy example: the old primary's fall decides", deploy, t0, t0.Add(50 * ms), t0.Add(300 * ms), t0.Add(400 * ms), "inter/2 100ms + 1×fastinter 200ms"},
		{"deploy example, a late commit: the new primary's rise decides", deploy, t0, t0.Add(600 * ms), t0.Add(725 * ms), t0.Add(850 * ms), "downinter/2 125ms + 0×fastinter 200ms"},
		{"HAProxy's defaults: fall 3, rise 2, every interval inter", HealthCheckConfig{Name: "lb2", Inter: 2 * time.Second}, t0, t0.Add(100 * ms),
			t0.Add(5 * time.Second), t0.Add(6 * time.Second), "inter/2 1s + 2×fastinter 2s"},
		{"rise 3 after a slow downinter", HealthCheckConfig{Name: "lb3", Inter: 100 * ms, FastInter: 50 * ms, DownInter: time.Second, Fall: 1, Rise: 3}, t0, t0,
			t0.Add(600 * ms), t0.Add(1100 * ms), "downinter/2 500ms + 2×fastinter 50ms"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expected, worst, why := tc.h.Converged(tc.down, tc.up)
			if !expected.Equal(tc.expected) || !worst.Equal(tc.worst) {
				t.Errorf("Converged = %v (worst %v), want %v (worst %v)", expected.Sub(t0), worst.Sub(t0), tc.expected.Sub(t0), tc.worst.Sub(t0))
			}
			if !strings.Contains(why, tc.wantReason) || !strings.HasPrefix(why, tc.h.Name+"'s checks") {
				t.Errorf("reason %q lacks %q", why, tc.wantReason)
			}
		})
	}
}

func TestHealthCheckConfigValidate(t *testing.T) {
	ok := HealthCheckConfig{Name: "lb1", Inter: time.Second}
	if err := ok.Validate("k"); err != nil {
		t.Fatalf("valid declaration refused: %v", err)
	}
	bad := []struct {
		h    HealthCheckConfig
		want string
	}{
		{HealthCheckConfig{Inter: time.Second}, "k.name: empty"},
		{HealthCheckConfig{Name: "lb1"}, "k.inter: 0s"},
		{HealthCheckConfig{Name: "lb1", Inter: time.Second, FastInter: -1}, "must not be negative"},
		{HealthCheckConfig{Name: "lb1", Inter: time.Second, Rise: -1}, "fall and rise"},
	}
	for _, b := range bad {
		if err := b.h.Validate("k"); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%+v: error %v, want one containing %q", b.h, err, b.want)
		}
	}
}
