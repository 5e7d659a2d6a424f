package agent

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/topology/mysqltest"
)

// streamOf returns agent i's stream observation of the named instance as
// its report carries it (nil: none).
func (h *harness) streamOf(i int, name string) *StreamObservation {
	return h.agents[i].rts()["main"].report().Observations[name].Stream
}

// Issue 10 item 2: every agent holds a binlog stream to the recorded
// primary, whose heartbeats date the primary's last sign of life; the
// packets stop while the primary is frozen, and the streams follow the
// primary a failover records.
func TestAgentsStreamThePrimary(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k)
		h.waitRecorded()
		fresh := func(name string) (bool, string) {
			var why string
			for i := range h.agents {
				s := h.streamOf(i, name)
				switch {
				case s == nil:
					return false, fmt.Sprintf("agent %d reports no stream of %s", i, name)
				case s.HeardAt.IsZero() || time.Since(s.HeardAt) > 4*s.Period:
					return false, fmt.Sprintf("agent %d last heard %s at %v (detail %q)", i, name, s.HeardAt, s.Detail)
				}
				why += fmt.Sprintf("agent %d heard %s %v ago; ", i, name, time.Since(h.streamOf(i, name).HeardAt).Round(time.Millisecond))
			}
			return true, why
		}
		h.eventually("every agent streams p", 15*time.Second, func() (bool, string) { return fresh("p") })
		for i := range h.agents {
			for _, r := range []string{"r1", "r2"} {
				if s := h.streamOf(i, r); s != nil {
					t.Fatalf("agent %d streams the replica %s: %+v", i, r, s)
				}
			}
		}

		// Frozen: no packet arrives after the freeze on any agent's stream.
		p := h.db.Primary
		p.Pause(t)
		pausedAt := time.Now()
		resumed := false
		defer func() {
			if !resumed {
				p.Resume(t)
			}
		}()
		h.eventually("every stream silent since the freeze", 10*time.Second, func() (bool, string) {
			if time.Since(pausedAt) < time.Second {
				return false, "waiting a second of freeze"
			}
			for i := range h.agents {
				s := h.streamOf(i, "p")
				if s == nil {
					continue // the primary changed: the failover below
				}
				// A packet already on its way when the server stopped may
				// arrive just after.
				if s.HeardAt.After(pausedAt.Add(100 * time.Millisecond)) {
					return false, fmt.Sprintf("agent %d heard the frozen p %v after the freeze", i, s.HeardAt.Sub(pausedAt))
				}
			}
			return true, ""
		})

		// The failover of the frozen primary moves every stream to the new
		// primary.
		e := h.waitOp(consensus.KindFailover, 0, 60*time.Second)
		if e.Result != consensus.ResultSuccess {
			t.Fatalf("failover: %s (%s)", e.Result, e.Reason)
		}
		p.Resume(t)
		resumed = true
		h.eventually("every agent streams the new primary "+e.NewPrimary, 15*time.Second, func() (bool, string) { return fresh(e.NewPrimary) })
	})
}

// Issue 10 item 2: the agent beside a killed mysqld sees the process exit
// itself (a pidfd), not only a refused dial.
func TestLocalMysqldExitIsSeenThroughItsProcess(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k)
		h.waitRecorded()
		c := h.agents[0].rts()["main"]
		// The watch finds the process once the server answers; give it the
		// time to (it looks every second at most).
		h.eventually("the process of p watched", 15*time.Second, func() (bool, string) {
			pid := c.watchedPID.Load()
			return pid == int64(h.db.Primary.PID()), fmt.Sprintf("watching pid %d (mysqltest: %d)", pid, h.db.Primary.PID())
		})
		h.db.Primary.Kill(t)
		h.eventually("agent a0 reports p's mysqld exited", 10*time.Second, func() (bool, string) {
			r := c.report()
			return r.Local == failover.LocalGone && strings.Contains(r.LocalDetail, "exited"), fmt.Sprintf("%s: %s", r.Local, r.LocalDetail)
		})
	})
}
