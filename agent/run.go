package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/failover"
)

type clock struct{}

func (clock) Now() time.Time                         { return time.Now() }
func (clock) After(d time.Duration) <-chan time.Time { return time.After(d) }

func newOperationID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// runs remembers this agent's recent operations, for progress and for the
// write-blocked window, which Raft's history does not hold.
type runs struct {
	mu      sync.Mutex
	pending map[string]api.Operation
	blocked map[string]blockedWindow
	// measuring holds, for a switchover this agent runs, a channel closed
	// once its write-blocked window is known: the run is in the history a
	// moment before (resumedWindow).
	measuring map[string]chan struct{}
}

// blockedWindow is a switchover's write-blocked window and what it runs up
// to (api.Operation.WriteBlockedUntil).
type blockedWindow struct {
	d     time.Duration
	until string
}

// balancerWindow extends a switchover's write-blocked window, which the
// runner measures up to the route every push target confirmed, to what
// clients of the balancers that route by health checks alone can see: up to
// the moment those balancers' checks are expected to have moved the route
// (proxyhook.HealthCheckConfig.Converged, from the intent, when the old
// primary's /primary turned 503, and the commit, when the new one's turned
// 200). It says which of the two the window runs up to.
func (c *clusterRT) balancerWindow(res failover.RunResult) (time.Duration, string) {
	end := res.BlockedAt.Add(res.WriteBlocked)
	until := "Regent's own steps: no balancer is pushed to or declared (routing.health_checks); health-check routing adds its own delay"
	if c.routing != nil && len(c.routing.Targets) > 0 {
		until = "every pushed balancer confirmed the route"
	}
	if c.routing == nil || res.RoutedAt.IsZero() || res.CommittedAt.IsZero() || res.IntentAt.IsZero() {
		return res.WriteBlocked, until
	}
	for _, hc := range c.routing.HealthChecks {
		if at, _, why := hc.Converged(res.IntentAt, res.CommittedAt); at.After(end) {
			end, until = at, why+" (derived from the declared timings, not observed)"
		}
	}
	return end.Sub(res.BlockedAt), until
}

// run executes a plan with the failover runner, recording progress.
func (c *clusterRT) run(ctx context.Context, v failover.View, plan failover.Plan, id string, requester string) (failover.RunResult, error) {
	if id == "" {
		id = newOperationID()
	}
	tok := newRouteToken(c.a.raft.AppliedIndex())
	var watch *commitWatch // a switchover's promoted instance, from its promotion
	r, err := failover.NewRunner(failover.RunnerConfig{
		Inspector: c.act, Actuator: c.act, Leadership: store{c: c}, Store: store{c: c, tok: tok},
		Router: routerAdapter{c: c, tok: tok}, Hooks: routerAdapter{c: c}, Clock: c.clock, Logger: c.log,
		NewOperationID: func() string { return id },
		Halt: func(ev failover.StepEvent) bool {
			return c.a.deps.Halt != nil && c.a.deps.Halt(c.name, ev)
		},
		Observer: func(ev failover.StepEvent) {
			if c.a.deps.OnStep != nil {
				c.a.deps.OnStep(c.name, ev)
			}
			// Only the run's goroutine calls the observer.
			if ev.Operation == failover.OpSwitchover && ev.Step.Kind == failover.StepPromote && ev.Result == failover.StepResultOK && !ev.Undo && watch == nil {
				watch = c.act.watchFirstCommit(ctx, ev.Step.Instance, c.now)
			}
		},
	})
	if err != nil {
		return failover.RunResult{}, err
	}
	c.notePending(id, plan)
	res, err := r.RunWith(ctx, v, c.pol(), plan, failover.RunOptions{Requester: requester})
	var until string
	if res.WriteBlocked > 0 {
		res.WriteBlocked, until = c.balancerWindow(res)
	}
	if watch != nil {
		// At most resumedWatch past the window's expected end; by then a
		// switchover under writes has long seen its commit.
		res.WriteBlocked, until = c.resumedWindow(watch, res, res.WriteBlocked, until)
	}
	c.runs.mu.Lock()
	delete(c.runs.pending, id)
	if res.WriteBlocked > 0 {
		c.runs.blocked[id] = blockedWindow{d: res.WriteBlocked, until: until}
	}
	if ch, ok := c.runs.measuring[id]; ok {
		close(ch)
		delete(c.runs.measuring, id)
	}
	c.runs.mu.Unlock()
	if res.Committed && res.EpochAfter > 0 {
		c.router.SeedEpoch(c.name, res.EpochAfter)
	}
	// The next decision must see what the operation did, not probes taken
	// before it.
	c.prober.round(context.WithoutCancel(ctx))
	if c.a.deps.Observe != nil {
		c.a.deps.Observe(c.name, res)
	}
	c.log.Info("operation ended", logOp, res.OperationID, "kind", res.Kind, "outcome", res.Outcome, "reason", res.Reason,
		"new_primary", res.NewPrimary, "epoch", res.EpochAfter, "duration", res.Duration, "write_blocked", res.WriteBlocked)
	return res, err
}

// notePending records an operation this agent is starting, until Raft has
// it; a second call for the same id keeps the first record.
func (c *clusterRT) notePending(id string, plan failover.Plan) {
	c.runs.mu.Lock()
	defer c.runs.mu.Unlock()
	if _, ok := c.runs.pending[id]; ok {
		return
	}
	c.runs.pending[id] = api.Operation{ID: id, Cluster: c.name, Kind: string(plan.Kind), Started: c.now(), OldPrimary: plan.OldPrimary,
		Target: plan.Target, EpochBefore: plan.ExpectEpoch, Result: api.ResultRunning}
	if plan.Kind == failover.OpSwitchover {
		c.runs.measuring[id] = make(chan struct{})
	}
}

// writeBlocked returns the write-blocked window of a switchover this agent
// ran, waiting while it is still being measured (at most resumedWatch past
// the run's end).
func (c *clusterRT) writeBlocked(ctx context.Context, id string) (blockedWindow, bool) {
	c.runs.mu.Lock()
	ch := c.runs.measuring[id]
	c.runs.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return blockedWindow{}, false
		}
	}
	c.runs.mu.Lock()
	defer c.runs.mu.Unlock()
	w, ok := c.runs.blocked[id]
	return w, ok
}

// pendingOp returns an operation this agent started that Raft has not
// recorded yet.
func (c *clusterRT) pendingOp(id string) (api.Operation, bool) {
	c.runs.mu.Lock()
	defer c.runs.mu.Unlock()
	op, ok := c.runs.pending[id]
	return op, ok
}
