package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/apiserver"
	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/failover"
)

// Apply maps the runner's replicated-state changes to consensus commands,
// one to one.
func (s store) Apply(ctx context.Context, ch failover.Change) error {
	var cmd consensus.Command
	switch ch.Kind {
	case failover.ChangeIntent:
		cmd = consensus.BeginOperation{Cluster: ch.Cluster, OperationID: ch.OperationID, Kind: recordedKind(ch.Operation),
			ExpectEpoch: ch.ExpectEpoch, Target: ch.Target, Trigger: consensus.TruncateDetail(ch.Trigger), At: ch.At,
			// Consensus refuses automatic operations in the anti-flap
			// window; only failovers are meant to be (the core has
			// already applied pause to every automatic action).
			Automatic: ch.Automatic && (ch.Operation == failover.OpFailover || ch.Operation == failover.OpForcedFailover)}
	case failover.ChangeStep:
		res := consensus.StepOK
		switch ch.Step.Result {
		case failover.StepResultFailed:
			res = consensus.StepFailed
		case failover.StepResultSkipped:
			res = consensus.StepSkipped
		}
		detail := ch.Step.Detail
		if ch.Step.Err != "" {
			detail = ch.Step.Err
		}
		if ch.Step.Output != "" {
			detail += "\n" + ch.Step.Output
		}
		cmd = consensus.RecordStep{Cluster: ch.Cluster, OperationID: ch.OperationID, Step: consensus.Step{
			Name: ch.Step.HistoryName(), Start: ch.Step.Started, Duration: ch.Step.Duration, Result: res, Detail: consensus.TruncateDetail(detail)}}
	case failover.ChangeCommitEpoch:
		cmd = consensus.CommitPrimary{Cluster: ch.Cluster, OperationID: ch.OperationID, NewPrimary: ch.Instance,
			ExpectEpoch: ch.ExpectEpoch, GTID: consensus.TruncateDetail(ch.GTID), At: ch.At}
	case failover.ChangeAntiFlap:
		cmd = consensus.SetAntiFlap{Cluster: ch.Cluster, Until: ch.AntiFlapUntil}
	case failover.ChangeFinish:
		res := consensus.Result(ch.Result)
		if res == consensus.ResultAborted {
			cmd = consensus.AbortOperation{Cluster: ch.Cluster, OperationID: ch.OperationID, Reason: consensus.TruncateDetail(ch.Reason), At: ch.At}
		} else {
			cmd = consensus.FinishOperation{Cluster: ch.Cluster, OperationID: ch.OperationID, Result: res, Reason: consensus.TruncateDetail(ch.Reason), At: ch.At}
		}
	case failover.ChangeAbort:
		cmd = consensus.AbortOperation{Cluster: ch.Cluster, OperationID: ch.OperationID, Reason: consensus.TruncateDetail(ch.Reason), At: ch.At}
	case failover.ChangeQuarantine:
		reason := ch.Reason
		if ch.GTID != "" {
			reason += " (errant GTIDs: " + ch.GTID + ")"
		}
		cmd = consensus.SetQuarantine{Cluster: ch.Cluster, Instance: ch.Instance, Reason: consensus.TruncateDetail(reason), By: s.c.a.id, At: ch.At}
	case failover.ChangeLiftQuarantine:
		cmd = consensus.ClearQuarantine{Cluster: ch.Cluster, Instance: ch.Instance}
	case failover.ChangeSemiSync:
		cmd = consensus.SetSemiSyncDegraded{Cluster: ch.Cluster, OperationID: ch.OperationID, Degraded: ch.Degraded, Reason: consensus.TruncateDetail(ch.Reason), At: ch.At}
	case failover.ChangeCandidate:
		cmd = consensus.SetCandidate{Cluster: ch.Cluster, OperationID: ch.OperationID, Instance: ch.Instance}
	default:
		return fmt.Errorf("no consensus command for change %q", ch.Kind)
	}
	return s.propose(ctx, cmd)
}

var (
	_ failover.StateStore   = store{}
	_ failover.HistoryKinds = store{}
)

// RecordsOperation says which operations have a place in the replicated
// history: the small repairs (fence, repoint, restore writes, configuring
// semi-sync) change no epoch and are only logged; a fallback to
// asynchronous commits and its restore are recorded.
func (store) RecordsOperation(k failover.OperationKind) bool {
	switch k {
	case failover.OpFailover, failover.OpForcedFailover, failover.OpSwitchover, failover.OpRejoin, failover.OpQuarantine,
		failover.OpSemiSyncFallback, failover.OpSemiSyncRestore:
		return true
	}
	return false
}

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
				watch = c.act.watchFirstCommit(ctx, ev.Step.Instance, c.clock.Now)
			}
		},
	})
	if err != nil {
		return failover.RunResult{}, err
	}
	c.notePending(id, plan)
	res, err := r.RunWith(ctx, v, c.policy, plan, failover.RunOptions{Requester: requester})
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
	c.runs.pending[id] = api.Operation{ID: id, Cluster: c.name, Kind: string(plan.Kind), Started: c.clock.Now(), OldPrimary: plan.OldPrimary,
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

// manual runs a planned operation asked for through the API: it plans on the
// current view, starts the run in the background and returns the running
// operation at once (regentctl follows it).
func (a *Agent) manual(ctx context.Context, cluster string, plan func(failover.View, failover.Policy) (failover.Plan, error)) (api.Operation, error) {
	c, err := a.cluster(cluster)
	if err != nil {
		return api.Operation{}, fmt.Errorf("%w: %v", apiserver.ErrNotFound, err)
	}
	if !a.raft.IsLeader() {
		return api.Operation{}, apiserver.ErrNotLeader
	}
	if c.state() == nil {
		return api.Operation{}, fmt.Errorf("%w: cluster %s is not recorded in Raft yet; try again in a few seconds", apiserver.ErrUnavailable, cluster)
	}
	// A repair the leader started on its own (semi-sync, restoring writes)
	// takes milliseconds: wait for it rather than refuse.
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	locked := c.lock(lctx)
	cancel()
	if !locked {
		return api.Operation{}, fmt.Errorf("%w: another operation is running on cluster %s; follow it with regentctl history", apiserver.ErrConflict, cluster)
	}
	v := c.view(c.clock.Now())
	p, err := plan(v, c.policy)
	if err != nil {
		c.unlock()
		if errors.Is(err, failover.ErrRefused) {
			return api.Operation{}, fmt.Errorf("%w: %v", apiserver.ErrRefused, err)
		}
		return api.Operation{}, fmt.Errorf("%w: %v", apiserver.ErrInvalid, err)
	}
	id := newOperationID()
	requester := callerName(ctx)
	// Known before the call returns, so that regentctl can follow it at once.
	c.notePending(id, p)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer c.unlock()
		_, _ = c.run(a.runCtx, v, p, id, requester)
	}()
	op, _ := c.pendingOp(id)
	return op, nil
}

// Switchover starts a planned switchover.
func (a *Agent) Switchover(ctx context.Context, cluster string, req api.SwitchoverRequest) (api.Operation, error) {
	return a.manual(ctx, cluster, func(v failover.View, p failover.Policy) (failover.Plan, error) {
		if req.WaitForWrites > 0 {
			p.LongTransactionWait = time.Duration(req.WaitForWrites)
		}
		return failover.PlanSwitchover(v, p, req.To)
	})
}

// Failover starts a manual (forced) failover to an instance.
func (a *Agent) Failover(ctx context.Context, cluster string, req api.FailoverRequest) (api.Operation, error) {
	if req.To == "" {
		return api.Operation{}, fmt.Errorf("%w: name the instance to promote (--to)", apiserver.ErrInvalid)
	}
	return a.manual(ctx, cluster, func(v failover.View, p failover.Policy) (failover.Plan, error) {
		return failover.PlanForcedFailover(v, p, req.To, req.Force)
	})
}

// Rejoin starts the rejoin of an old primary as a replica.
func (a *Agent) Rejoin(ctx context.Context, cluster string, req api.RejoinRequest) (api.Operation, error) {
	if req.Instance == "" {
		return api.Operation{}, fmt.Errorf("%w: name the instance to rejoin", apiserver.ErrInvalid)
	}
	return a.manual(ctx, cluster, func(v failover.View, p failover.Policy) (failover.Plan, error) {
		return failover.PlanRejoin(v, p, req.Instance)
	})
}
