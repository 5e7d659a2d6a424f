package proxyhook

import (
	"fmt"
	"time"
)

// HealthCheckConfig declares a balancer that routes writes by its own
// checks of the agents' /primary, without a runtime API Regent pushes to
// (clusters[].routing.health_checks): its check timings, as configured in
// the balancer (HAProxy's default-server inter/fastinter/downinter/fall/
// rise). Regent cannot see such a balancer change its route; it reports a
// switchover's write-blocked window up to the moment these timings say the
// balancer's checks must have converged (Converged), labelled as such.
type HealthCheckConfig struct {
	Name string `yaml:"name" json:"name"`
	// Inter is the interval between checks of a server that is up.
	Inter time.Duration `yaml:"inter" json:"inter"`
	// FastInter is the interval while a server is going up or down after
	// its first changed answer; zero means Inter (HAProxy's rule).
	FastInter time.Duration `yaml:"fastinter" json:"fastinter,omitempty"`
	// DownInter is the interval between checks of a server that is down;
	// zero means Inter.
	DownInter time.Duration `yaml:"downinter" json:"downinter,omitempty"`
	// Fall and Rise are the consecutive failed (passed) checks that mark a
	// server down (up); zero means HAProxy's defaults, 3 and 2.
	Fall int `yaml:"fall" json:"fall,omitempty"`
	Rise int `yaml:"rise" json:"rise,omitempty"`
}

// Validate checks the declaration; key is its path for messages.
func (h HealthCheckConfig) Validate(key string) error {
	switch {
	case h.Name == "":
		return fmt.Errorf("%s.name: empty; name the balancer (it labels the reported write-blocked window)", key)
	case h.Inter <= 0:
		return fmt.Errorf("%s.inter: %v; give the balancer's check interval (HAProxy: inter, default 2s)", key, h.Inter)
	case h.FastInter < 0 || h.DownInter < 0:
		return fmt.Errorf("%s: fastinter and downinter must not be negative (0 means inter)", key)
	case h.Fall < 0 || h.Rise < 0:
		return fmt.Errorf("%s: fall and rise must not be negative (0 means HAProxy's defaults, 3 and 2)", key)
	}
	return nil
}

func (h HealthCheckConfig) timings() (inter, fast, down time.Duration, fall, rise int) {
	inter, fast, down, fall, rise = h.Inter, h.FastInter, h.DownInter, h.Fall, h.Rise
	if fast == 0 {
		fast = inter
	}
	if down == 0 {
		down = inter
	}
	if fall == 0 {
		fall = 3
	}
	if rise == 0 {
		rise = 2
	}
	return
}

// Converged returns when this balancer's checks are expected to have moved
// the write route, and by when they must have, after a change of primary
// whose old primary began answering 503 at downAt and whose new primary
// began answering 200 at upAt, with a line saying how that was derived. The
// old primary is up: its next check comes within inter (half of it on
// average), the fall-1 after it every fastinter. The new one is down: its
// next check comes within downinter (half on average), the rise-1 after it
// every fastinter. A check's own duration is not counted.
func (h HealthCheckConfig) Converged(downAt, upAt time.Time) (expected, worst time.Time, why string) {
	inter, fast, down, fall, rise := h.timings()
	later := func(a, b time.Time) time.Time {
		if b.After(a) {
			return b
		}
		return a
	}
	expected = later(downAt.Add(inter/2+time.Duration(fall-1)*fast), upAt.Add(down/2+time.Duration(rise-1)*fast))
	worst = later(downAt.Add(inter+time.Duration(fall-1)*fast), upAt.Add(down+time.Duration(rise-1)*fast))
	why = fmt.Sprintf("%s's checks, expected (at worst %v later): old primary down about inter/2 %v + %d×fastinter %v after its /primary turned 503, new primary up about downinter/2 %v + %d×fastinter %v after its /primary turned 200",
		h.Name, worst.Sub(expected), inter/2, fall-1, fast, down/2, rise-1, fast)
	return expected, worst, why
}
