package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/regentdb/regent/failover"
)

// A switchover's write-blocked window, as the runner measures it, ends when
// the route is confirmed (or, for balancers that route by health checks
// alone, when their declared timings say the route must have moved). What
// clients see ends later: their reconnect through the balancer and their
// first commit on the new primary, which waits for a semi-sync
// acknowledgement; with health checks the real move falls anywhere in a
// check period. So, when clients
// write, the leader watches the promoted instance for its first commit and
// ends the window there (README "Configuration", *The window clients see*).
const (
	// resumedWatch is how long after the expected end of the window the
	// leader waits for that commit: a client writing at least this often
	// is seen.
	resumedWatch = 250 * time.Millisecond
	// resumedPoll is the watch's period, the resolution of the window it
	// observes.
	resumedPoll = 2 * time.Millisecond
)

// commitWatch watches an instance for its first commit beyond the set it
// held when the watch began.
type commitWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	at     time.Time // when the commit was seen; zero when none was
}

// watchFirstCommit starts watching name: it reads the executed set once,
// then polls until a transaction outside it is executed, ctx ends or stop
// is called. Started when a switchover's promotion ends, before any
// balancer routes to the instance.
func (a *actuator) watchFirstCommit(ctx context.Context, name string, now func() time.Time) *commitWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &commitWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		i, err := a.inst(name)
		if err != nil {
			return
		}
		base, err := i.Executed(ctx)
		if err != nil {
			return
		}
		tick := time.NewTicker(resumedPoll)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			beyond, err := i.CommittedBeyond(ctx, base)
			if err != nil {
				return
			}
			if beyond {
				w.at = now()
				return
			}
		}
	}()
	return w
}

// wait waits up to d for the commit, then stops the watch, and returns
// when the commit was seen (ok false: none was).
func (w *commitWatch) wait(d time.Duration) (at time.Time, ok bool) {
	select {
	case <-w.done:
	default:
		t := time.NewTimer(max(d, 0))
		defer t.Stop()
		select {
		case <-w.done:
		case <-t.C:
		}
	}
	w.stop()
	return w.at, !w.at.IsZero()
}

// stop ends the watch and waits for its goroutine.
func (w *commitWatch) stop() {
	w.cancel()
	<-w.done
}

// resumedWindow returns a switchover's write-blocked window and what it
// runs up to, from the window up to the route (or the balancers' expected
// move) and its description: up to the promoted instance's first commit
// when w sees one by resumedWatch after that, never earlier than the
// route itself.
func (c *clusterRT) resumedWindow(w *commitWatch, res failover.RunResult, window time.Duration, until string) (time.Duration, string) {
	if !res.Committed || res.NewPrimary == "" || res.RoutedAt.IsZero() {
		w.stop()
		return window, until
	}
	expected := res.BlockedAt.Add(window)
	at, ok := w.wait(expected.Add(resumedWatch).Sub(c.now()))
	if !ok {
		return window, until + fmt.Sprintf("; no commit on %s was seen within %v after that (clients not writing)", res.NewPrimary, resumedWatch)
	}
	if at.Before(res.RoutedAt) {
		at = res.RoutedAt
	}
	return at.Sub(res.BlockedAt), fmt.Sprintf("the first commit on %s, observed %v after the route (%s: %v)",
		res.NewPrimary, at.Sub(res.RoutedAt).Round(time.Millisecond), until, window.Round(time.Millisecond))
}
