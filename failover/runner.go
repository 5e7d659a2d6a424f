package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// This file is the imperative shell: the Runner carries a Plan out step by
// step against the interfaces of interfaces.go. The decisions stay in the
// core; what the runner decides is only how a run ends (see Run).

// Log keys.
const (
	logCluster   = "cluster"
	logOperation = "operation"
	logOpID      = "operation_id"
	logStep      = "step"
	logResult    = "result"
	logReason    = "reason"
	logErr       = "err"
	logDuration  = "duration"
)

// ErrInvalidRunner is wrapped by NewRunner's errors.
var ErrInvalidRunner = errors.New("invalid runner configuration")

// ErrInvalidPlan is wrapped by Run's error when the plan cannot be run at all
// (nothing is touched then).
var ErrInvalidPlan = errors.New("invalid plan")

// RunnerConfig holds a Runner's dependencies. Inspector, Actuator,
// Leadership, Store, Router, Clock and NewOperationID are required.
type RunnerConfig struct {
	Inspector  Inspector
	Actuator   Actuator
	Leadership Leadership
	Store      StateStore
	Router     Router
	// Hooks runs the operator's hooks; nil means none are configured and
	// hook steps are skipped.
	Hooks Hooks
	Clock Clock
	// Logger receives one line per step and per run; nil discards.
	Logger *slog.Logger
	// NewOperationID returns a fresh operation id for each run (consensus
	// refuses an id used before).
	NewOperationID func() string
	// Observer, when set, hears every step start and end (StepEvent), for
	// progress streams. It is called synchronously from Run's goroutine, so
	// it must not block: buffer, or drop.
	Observer func(StepEvent)
	// Halt, when set, is asked after every step (its ending event) whether
	// the run must stop dead there, as if its process had died: nothing
	// more is done, undone or recorded, and Run returns ErrHalted. Tests
	// use it to kill or partition the leader at any named step.
	Halt func(StepEvent) bool
}

// ErrHalted is returned by a run that RunnerConfig.Halt stopped.
var ErrHalted = errors.New("run halted after a step (RunnerConfig.Halt)")

// Runner executes plans. It holds no state between runs: one Runner may run
// the plans of several replication clusters at once, but the caller runs at
// most one plan per cluster at a time (the replicated state refuses a second
// operation anyway).
type Runner struct {
	cfg RunnerConfig
	log *slog.Logger
}

// NewRunner checks the dependencies and returns a Runner.
func NewRunner(c RunnerConfig) (*Runner, error) {
	var missing []string
	for _, d := range []struct {
		name   string
		absent bool
	}{
		{"Inspector", c.Inspector == nil},
		{"Actuator", c.Actuator == nil},
		{"Leadership", c.Leadership == nil},
		{"Store", c.Store == nil},
		{"Router", c.Router == nil},
		{"Clock", c.Clock == nil},
		{"NewOperationID", c.NewOperationID == nil},
	} {
		if d.absent {
			missing = append(missing, d.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: missing %s", ErrInvalidRunner, strings.Join(missing, ", "))
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{cfg: c, log: log}, nil
}

// Outcome is how a run ended.
type Outcome string

// The outcomes. The first three are the history's results; an interrupted
// run is in no history entry of its own: the next leader takes the operation
// over once operation_timeout has passed.
const (
	// OutcomeSuccess: every step succeeded.
	OutcomeSuccess Outcome = "success"
	// OutcomeFailed: a step failed. Before a promotion, the completed steps
	// were undone; after one, the run went on without undoing (see Run).
	OutcomeFailed Outcome = "failed"
	// OutcomeAborted: the run decided not to go on — a refusal on fresh
	// facts, a failed pre-hook, long write transactions, an intent the
	// replicated state refused — and undid what it had done.
	OutcomeAborted Outcome = "aborted"
	// OutcomeInterrupted: this node lost the leadership, or another run moved
	// the epoch or holds the operation. The run stopped at once, undid
	// nothing and recorded nothing more: the cluster belongs to another
	// leader now.
	OutcomeInterrupted Outcome = "interrupted"
)

// RunResult is what a run did, for the API, regentctl and the metrics.
type RunResult struct {
	OperationID string
	Cluster     string
	Kind        OperationKind
	Trigger     Trigger
	Outcome     Outcome
	// Reason says why the run ended so, for people.
	Reason string
	// Recorded is true when the operation is in the replicated history
	// (its intent was accepted).
	Recorded   bool
	OldPrimary string
	// NewPrimary is the instance promoted ("" when none was).
	NewPrimary string
	// EpochBefore is the epoch the run started from; EpochAfter the one it
	// committed (EpochBefore when it committed none).
	EpochBefore uint64
	EpochAfter  uint64
	Committed   bool
	// GTIDAtPromotion is the GTID set the new primary held when promoted, as
	// recorded by the commit ("" when unknown or none).
	GTIDAtPromotion string
	// Steps are the executed steps in order, undo steps included.
	Steps    []StepRecord
	Started  time.Time
	Duration time.Duration
	// WriteBlocked is, for a switchover, the write-blocked window (README
	// "Configuration", How a switchover runs): from the moment the old
	// primary began holding writes back (the fence's SET GLOBAL read_only,
	// as the actuator reports it through WritesHeldFrom; else the start of
	// the fence or of the unroute, whichever came first), to the moment
	// writes were routed to the new primary — or, when the switchover was
	// undone, to the moment the old primary took writes again (the run's end
	// if it never did). Zero for other kinds and when writes were never
	// blocked.
	WriteBlocked time.Duration
	// IntentAt, BlockedAt, RoutedAt and CommittedAt date the moments of a
	// change of primary that balancers react to (zero when the run did not
	// get there): the intent recorded in the replicated state (the replaced
	// primary's /primary answers 503 from then on), the start of the
	// write-blocked window, writes routed to the new primary (every push
	// target confirmed it), and the new epoch committed (the new primary's
	// /primary answers 200 from then on).
	IntentAt, BlockedAt, RoutedAt, CommittedAt time.Time
	// TimeToRoute is, for a run that promoted an instance, the time from the
	// run's start to the moment writes were routed to it (zero when they
	// were not).
	TimeToRoute time.Duration
	// Plan is the plan as finally run (after ChooseCandidate for a failover).
	Plan Plan
	// Warnings are things an operator should know that did not end the run.
	Warnings []string
}

// StepEvent is sent to the Observer when a step starts (Result "") and when
// it ends.
type StepEvent struct {
	Cluster     string
	OperationID string
	Operation   OperationKind
	// Index is the step's position in the plan (0-based); for an undo step,
	// the position of the step it reverses; -1 for a step the runner adds at
	// the end (failed-hooks). Total is the number of steps the plan has so
	// far: a failover's grows at choose-candidate.
	Index int
	Total int
	Step  Step
	Undo  bool
	// Started is when the step started.
	Started time.Time
	// Result, Duration, Detail and Err are set when the step ends.
	Result   StepResult
	Duration time.Duration
	Detail   string
	Err      string
}

// String renders the event as a progress line: "[5/12] promote db2: ok
// (14ms)".
func (e StepEvent) String() string {
	rec := StepRecord{Kind: e.Step.Kind, Instance: e.Step.Instance, Instances: e.Step.Instances, Undo: e.Undo}
	pos := fmt.Sprintf("%d/%d", e.Index+1, e.Total)
	if e.Index < 0 {
		pos = "+"
	}
	line := fmt.Sprintf("[%s] %s: ", pos, rec.HistoryName())
	if e.Result == "" {
		return line + "started"
	}
	line += fmt.Sprintf("%s (%v)", e.Result, e.Duration.Round(time.Millisecond))
	switch {
	case e.Err != "":
		line += ": " + e.Err
	case e.Detail != "":
		line += ": " + e.Detail
	}
	return line
}

// RunOptions carries what a run needs beyond the plan.
type RunOptions struct {
	// Requester says who asked for a manual operation ("regentctl
	// switchover by admin from 10.0.0.5"); it heads the recorded trigger.
	Requester string
	// Observer, when set, hears this run's steps, in addition to the
	// Runner's Observer. The same rules apply: it must not block.
	Observer func(StepEvent)
}

// Run executes plan on the cluster of v, as the package doc's sections
// Plans and The runner describe, with no RunOptions. See RunWith.
func (r *Runner) Run(ctx context.Context, v View, p Policy, plan Plan) (RunResult, error) {
	return r.RunWith(ctx, v, p, plan, RunOptions{})
}

// RunWith executes plan on the cluster of v, which must be the view the plan
// was made from; p is the policy it was made with.
//
// Each step runs under its own Timeout; VerifyLeader precedes every
// Irreversible step; each step is recorded in the replicated history as it
// ends (ChangeStep), timed with the injected Clock. For a failover, the
// choose-candidate step re-probes its instances and calls ChooseCandidate,
// which appends the rest of the plan.
//
// How a run ends:
//   - A failed step, before any instance was promoted, aborts the run: the
//     undo of every step that ran and has one — the failed step included,
//     since it may have half-happened and every action is idempotent — runs
//     in reverse order (IO threads restarted, read_only lifted on a
//     switchover's old primary, writes routed back to it with the new
//     epoch). A failed promote is compensated by fencing its instance,
//     which may have become writable before the failure. The operation is
//     finished as failed, or aborted when the run decided to stop (a refusal
//     on fresh facts, a failed pre-hook, long write transactions).
//   - Once an instance was promoted there is no way back that does not risk
//     two writers or lost writes: a later failure is recorded as a failed
//     step and the run goes on (repoint, route, commit, post-hooks), ending
//     failed, never successful.
//   - Lost leadership (ErrNotLeader), or another run holding the cluster
//     (ErrStaleEpoch, or ErrConflict from the store), stops the run at once,
//     undoing and recording nothing: the error wraps the cause and the
//     outcome is OutcomeInterrupted.
//
// The error is nil only for OutcomeSuccess. It wraps the cause: errors.Is
// works for ErrRefused, ErrNotLeader, ErrStaleEpoch, ErrConflict, ErrPaused,
// ErrAntiFlap, ErrStepTimeout and ErrInvalidPlan.
func (r *Runner) RunWith(ctx context.Context, v View, p Policy, plan Plan, o RunOptions) (RunResult, error) {
	ru := &run{r: r, ctx: ctx, v: v, p: p, plan: plan, opts: o}
	ru.start = r.cfg.Clock.Now()
	ru.res = RunResult{
		Cluster: plan.Cluster, Kind: plan.Kind, Trigger: plan.Trigger,
		OldPrimary: plan.OldPrimary, NewPrimary: plan.NewPrimary,
		EpochBefore: plan.ExpectEpoch, EpochAfter: plan.ExpectEpoch,
		Started: ru.start, Warnings: append([]string(nil), plan.Warnings...),
	}
	if err := checkRunnable(v, plan); err != nil {
		return ru.end(OutcomeAborted, err.Error(), err)
	}
	ru.id = r.cfg.NewOperationID()
	ru.res.OperationID = ru.id
	ru.record = ru.recordable()
	ru.log = r.log.With(logCluster, plan.Cluster, logOperation, string(plan.Kind), logOpID, ru.id)
	ru.log.Info("operation starts", "trigger", string(plan.Trigger), "steps", len(plan.Steps), "recorded", ru.record)
	return ru.loop()
}

// checkRunnable refuses a plan that cannot be run, before anything is touched.
func checkRunnable(v View, plan Plan) error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidPlan}, a...)...))
	}
	if len(plan.Steps) == 0 {
		bad("the plan has no step")
	}
	if plan.Cluster != v.Cluster {
		bad("the plan is for cluster %q but the view is of %q", plan.Cluster, v.Cluster)
	}
	for i, s := range plan.Steps {
		if s.Timeout <= 0 {
			bad("step %d (%s) has no timeout: every step must be bounded", i+1, s.Kind)
		}
		if s.Undo == StepRepoint && s.UndoSource == "" {
			bad("step %d (%s) is undone by a repoint but names no source to point back to", i+1, stepName(s))
		}
		if s.Kind == StepChooseCandidate && i != len(plan.Steps)-1 {
			bad("step %d (choose-candidate) must be the last step of a failover's first phase", i+1)
		}
	}
	return errors.Join(errs...)
}

// run is the state of one Run.
type run struct {
	r    *Runner
	ctx  context.Context
	log  *slog.Logger
	v    View // the current view: replaced by the fresh one at choose-candidate
	p    Policy
	plan Plan
	opts RunOptions
	id   string
	res  RunResult

	start    time.Time
	record   bool      // the plan's kind goes to the replicated history
	recorded bool      // the intent was accepted: the operation is in progress
	finished bool      // the operation was finished in the replicated state
	intentAt time.Time // when the intent was accepted
	promoted bool      // an instance was promoted: no undo from here on
	// done lists the steps that ran (the failed one last), for undo.
	done []executed
	// failures are the steps that failed after the promotion.
	failures []string
	// promotionGTID is a switchover's final set, found at catch-up.
	promotionGTID GTIDSet
	// The write-blocked window.
	blockStart, blockEnd time.Time
	restored             map[StepKind]bool // undo steps that gave writes back
	lastEvent            StepEvent         // the last step's ending event, for Halt
}

// executed is one step that ran.
type executed struct {
	index   int
	step    Step
	failed  bool
	touched []string // the instances it acted on, for its undo
	noUndo  bool     // its effect is not the runner's to undo
}

// outcome is what a step handler reports besides its error.
type outcome struct {
	detail  string
	output  string
	touched []string
	skipped bool
	noUndo  bool
}

func (x *outcome) note(format string, a ...any) {
	s := fmt.Sprintf(format, a...)
	if x.detail == "" {
		x.detail = s
	} else {
		x.detail += "; " + s
	}
}

// failure classes.
type failClass int

const (
	failStep  failClass = iota // a step failed: undo (before the promotion), finish failed
	failAbort                  // the run decided to stop: undo, finish aborted
	failStop                   // leadership or ownership lost: stop, no undo, no record
)

// storeError marks an error returned by the StateStore, so that ErrConflict
// from the store (another operation holds the cluster) is told apart.
type storeError struct{ err error }

func (e *storeError) Error() string { return e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

func (ru *run) classify(s Step, err error) failClass {
	var se *storeError
	fromStore := errors.As(err, &se)
	switch {
	case errors.Is(err, ErrNotLeader):
		return failStop
	case s.Kind == StepRecordIntent:
		// Nothing was begun: the plan rests on a state that changed, or
		// consensus refused it (paused, anti-flap, another operation).
		return failAbort
	case errors.Is(err, ErrStaleEpoch), fromStore && errors.Is(err, ErrConflict):
		return failStop
	case errors.Is(err, ErrRefused), s.Kind == StepPreHooks, s.Kind == StepWaitLongTransactions:
		return failAbort
	}
	return failStep
}

func (ru *run) loop() (RunResult, error) {
	for i := 0; i < len(ru.plan.Steps); i++ {
		s := ru.plan.Steps[i]
		if s.Kind == StepFinish {
			ru.finishStep(i, s)
			continue
		}
		err := ru.step(ru.ctx, i, s, false, nil)
		if h := ru.r.cfg.Halt; h != nil && h(ru.lastEvent) {
			ru.log.Warn("run halted after a step: nothing more is done", logStep, stepName(s))
			return ru.end(OutcomeInterrupted, fmt.Sprintf("halted after step %d/%d %s", i+1, len(ru.plan.Steps), stepName(s)), ErrHalted)
		}
		if err == nil {
			continue
		}
		why := fmt.Sprintf("step %d/%d %s failed: %v", i+1, len(ru.plan.Steps), stepName(s), err)
		switch ru.classify(s, err) {
		case failStop:
			return ru.interrupt(why, err)
		case failAbort:
			if s.Kind == StepRecordIntent {
				return ru.end(OutcomeAborted, why, err)
			}
			return ru.abort(OutcomeAborted, why, err)
		}
		if !ru.promoted {
			return ru.abort(OutcomeFailed, why, err)
		}
		// Past the promotion: record and go on, never back.
		ru.failures = append(ru.failures, why)
		if ru.ctx.Err() != nil {
			ru.failures = append(ru.failures, "the run was cancelled: the remaining steps did not run")
			break
		}
	}
	if len(ru.failures) > 0 {
		reason := strings.Join(ru.failures, "; ")
		if ru.res.NewPrimary != "" {
			reason = fmt.Sprintf("%s was promoted (epoch %s) but: %s", ru.res.NewPrimary, ru.epochText(), reason)
		}
		ru.failedHooks()
		if err := ru.finishOp(OutcomeFailed, reason); err != nil && errors.Is(err, ErrNotLeader) {
			return ru.interrupt(reason, err)
		}
		return ru.end(OutcomeFailed, reason, errors.New(reason))
	}
	reason := ru.successReason()
	if err := ru.finishOp(OutcomeSuccess, reason); err != nil {
		w := fmt.Sprintf("the operation could not be finished in the replicated state: %v (it is taken over as abandoned after operation_timeout)", err)
		ru.res.Warnings = append(ru.res.Warnings, w)
		res, _ := ru.end(OutcomeSuccess, reason, nil)
		return res, fmt.Errorf("%s %s succeeded but was not recorded as finished: %w", ru.plan.Kind, ru.id, err)
	}
	return ru.end(OutcomeSuccess, reason, nil)
}

func (ru *run) epochText() string {
	if ru.res.Committed {
		return fmt.Sprintf("%d committed", ru.res.EpochAfter)
	}
	return fmt.Sprintf("%d not committed", ru.plan.Epoch)
}

func (ru *run) successReason() string {
	switch {
	case ru.res.Committed:
		return fmt.Sprintf("%s is the primary of epoch %d (was %s at epoch %d)", ru.res.NewPrimary, ru.res.EpochAfter, ru.res.OldPrimary, ru.res.EpochBefore)
	case len(ru.plan.Steps) > 0:
		return fmt.Sprintf("%s done: %s", ru.plan.Kind, ru.plan.Steps[0].Why)
	}
	return string(ru.plan.Kind) + " done"
}

// abort undoes what ran and finishes the operation.
func (ru *run) abort(o Outcome, why string, cause error) (RunResult, error) {
	undone, stop, stopErr := ru.undo()
	reason := why
	if undone != "" {
		reason += "; " + undone
	}
	if stop {
		return ru.interrupt(reason, stopErr)
	}
	ru.failedHooks()
	if err := ru.finishOp(o, reason); err != nil && errors.Is(err, ErrNotLeader) {
		return ru.interrupt(reason, err)
	}
	return ru.end(o, reason, cause)
}

// failedHooks runs the operator's "failed" hooks when a recorded failover or
// switchover ends failed or aborted. Their own failure only shows in the
// step's record.
func (ru *run) failedHooks() {
	if !ru.recorded || ru.r.cfg.Hooks == nil || ru.p.HookTimeout <= 0 {
		return
	}
	switch ru.plan.Kind {
	case OpFailover, OpForcedFailover, OpSwitchover:
	default:
		return
	}
	var ex executed
	s := Step{Kind: StepFailedHooks, Operation: ru.plan.Kind, Timeout: ru.p.HookTimeout, Why: "operator's hooks for a failed operation (alerting)"}
	_ = ru.step(context.WithoutCancel(ru.ctx), -1, s, false, &ex)
}

// interrupt ends a run that lost the cluster: nothing more is touched.
func (ru *run) interrupt(why string, cause error) (RunResult, error) {
	ru.log.Warn("operation interrupted: this node no longer owns the cluster; nothing is undone, the next leader takes the operation over", logReason, why)
	return ru.end(OutcomeInterrupted, why, cause)
}

// end fills the result in.
func (ru *run) end(o Outcome, reason string, cause error) (RunResult, error) {
	now := ru.r.cfg.Clock.Now()
	ru.res.Outcome = o
	ru.res.Reason = reason
	ru.res.Recorded = ru.recorded
	ru.res.Duration = now.Sub(ru.start)
	ru.res.Plan = ru.plan
	ru.res.IntentAt, ru.res.BlockedAt = ru.intentAt, ru.blockStart
	if ru.plan.Kind == OpSwitchover && !ru.blockStart.IsZero() {
		end := ru.blockEnd
		if end.IsZero() {
			end = now
			ru.res.Warnings = append(ru.res.Warnings, fmt.Sprintf("writes on %s were blocked at %s and not given back by the run", ru.plan.OldPrimary, stamp(ru.blockStart)))
		}
		ru.res.WriteBlocked = end.Sub(ru.blockStart)
	}
	if ru.log == nil {
		ru.log = ru.r.log.With(logCluster, ru.plan.Cluster, logOperation, string(ru.plan.Kind))
	}
	lvl := slog.LevelInfo
	if o != OutcomeSuccess {
		lvl = slog.LevelWarn
	}
	ru.log.Log(context.WithoutCancel(ru.ctx), lvl, "operation ends", logResult, string(o), logReason, reason, logDuration, ru.res.Duration)
	if o == OutcomeSuccess {
		return ru.res, nil
	}
	if cause == nil {
		cause = errors.New(reason)
	}
	id := ru.id
	if id == "" {
		id = "(not started)"
	}
	return ru.res, fmt.Errorf("%s %s of cluster %s %s: %w", ru.plan.Kind, id, ru.plan.Cluster, o, cause)
}

// recordable says whether the plan's operation goes to the replicated
// history.
func (ru *run) recordable() bool {
	hasIntent := false
	for _, s := range ru.plan.Steps {
		switch s.Kind {
		case StepCommitEpoch:
			return true
		case StepRecordIntent:
			hasIntent = true
		}
	}
	if !hasIntent {
		return false
	}
	if hk, ok := ru.r.cfg.Store.(HistoryKinds); ok {
		return hk.RecordsOperation(ru.plan.Kind)
	}
	return true
}

// step runs one step: VerifyLeader when irreversible, the handler under the
// step's timeout, then the record, the log line and the events. It returns
// the step's error, or a recording error that must stop the run.
func (ru *run) step(ctx context.Context, index int, s Step, undo bool, ex *executed) error {
	clock := ru.r.cfg.Clock
	started := clock.Now()
	ru.observe(StepEvent{Index: index, Step: s, Undo: undo, Started: started})
	ru.log.Debug("step starts", logStep, stepName(s), "undo", undo, "why", s.Why)

	var x outcome
	err := func() error {
		if s.Irreversible {
			if err := ru.verifyLeader(ctx); err != nil {
				return err
			}
		}
		sctx, cancel := context.WithTimeout(ctx, s.Timeout)
		defer cancel()
		err := ru.handle(sctx, s, undo, &x)
		if err != nil && errors.Is(sctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("%w after %v: %w", ErrStepTimeout, s.Timeout, err)
		}
		return err
	}()

	rec := StepRecord{Kind: s.Kind, Instance: s.Instance, Instances: s.Instances, Started: started,
		Duration: clock.Now().Sub(started), Undo: undo, Detail: x.detail, Output: x.output, Result: StepResultOK}
	switch {
	case err != nil:
		rec.Result, rec.Err = StepResultFailed, err.Error()
	case x.skipped:
		rec.Result = StepResultSkipped
	}
	ru.res.Steps = append(ru.res.Steps, rec)
	if !x.skipped && (err == nil || s.Kind != StepRecordIntent) {
		e := executed{index: index, step: s, failed: err != nil, touched: x.touched, noUndo: x.noUndo}
		if ex != nil {
			*ex = e
		} else {
			ru.done = append(ru.done, e)
		}
	}
	ru.observe(StepEvent{Index: index, Step: s, Undo: undo, Started: started, Result: rec.Result,
		Duration: rec.Duration, Detail: rec.Detail, Err: rec.Err})
	level := slog.LevelInfo
	if err != nil {
		level = slog.LevelWarn
	}
	ru.log.Log(context.WithoutCancel(ctx), level, "step ends", logStep, rec.HistoryName(), logResult, string(rec.Result),
		logDuration, rec.Duration, "detail", rec.Detail, logErr, rec.Err)

	if errors.Is(err, ErrNotLeader) {
		return err // no more writes to the replicated state: it is not ours
	}
	if rerr := ru.recordStep(ctx, rec); rerr != nil {
		if err == nil && ru.classify(s, rerr) == failStop {
			return rerr
		}
	}
	return err
}

// recordStep sends a step to the history. A failure to record is a warning
// unless it says the operation is no longer this run's.
func (ru *run) recordStep(ctx context.Context, rec StepRecord) error {
	if !ru.recorded || ru.finished {
		return nil
	}
	err := ru.apply(ctx, Change{Kind: ChangeStep, Step: rec})
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrStaleEpoch) || errors.Is(err, ErrConflict) {
		return err
	}
	ru.res.Warnings = append(ru.res.Warnings, fmt.Sprintf("step %s not recorded in the history: %v", rec.HistoryName(), err))
	ru.log.Warn("step not recorded in the history", logStep, rec.HistoryName(), logErr, err)
	return nil
}

// apply sends one change, bounded by raft_timeout, and marks its errors as
// the store's.
func (ru *run) apply(ctx context.Context, c Change) error {
	c.Cluster = ru.plan.Cluster
	if c.OperationID == "" {
		c.OperationID = ru.id
	}
	if c.Operation == "" {
		c.Operation = ru.plan.Kind
	}
	if c.At.IsZero() {
		c.At = ru.r.cfg.Clock.Now()
	}
	actx, cancel := context.WithTimeout(ctx, ru.p.RaftTimeout)
	defer cancel()
	if err := ru.r.cfg.Store.Apply(actx, c); err != nil {
		return &storeError{fmt.Errorf("replicated state: %s: %w", c.Kind, err)}
	}
	return nil
}

func (ru *run) verifyLeader(ctx context.Context) error {
	vctx, cancel := context.WithTimeout(ctx, ru.p.RaftTimeout)
	defer cancel()
	if err := ru.r.cfg.Leadership.VerifyLeader(vctx); err != nil {
		return fmt.Errorf("leadership not confirmed before an irreversible step: %w", err)
	}
	return nil
}

func (ru *run) observe(e StepEvent) {
	e.Cluster, e.OperationID, e.Operation, e.Total = ru.plan.Cluster, ru.id, ru.plan.Kind, len(ru.plan.Steps)
	if e.Result != "" {
		ru.lastEvent = e
	}
	if f := ru.r.cfg.Observer; f != nil {
		f(e)
	}
	if f := ru.opts.Observer; f != nil {
		f(e)
	}
}

// finishStep runs a plan's finish step: the operation ends here.
func (ru *run) finishStep(index int, s Step) {
	clock := ru.r.cfg.Clock
	started := clock.Now()
	ru.observe(StepEvent{Index: index, Step: s, Started: started})
	rec := StepRecord{Kind: s.Kind, Started: started, Result: StepResultOK}
	o, reason := OutcomeSuccess, ru.successReason()
	if len(ru.failures) > 0 {
		o, reason = OutcomeFailed, strings.Join(ru.failures, "; ")
	}
	switch err := ru.finishOp(o, reason); {
	case !ru.recorded:
		rec.Result, rec.Detail = StepResultSkipped, fmt.Sprintf("%s is not recorded in the replicated history", ru.plan.Kind)
	case err != nil:
		rec.Result, rec.Err = StepResultFailed, err.Error()
	}
	rec.Duration = clock.Now().Sub(started)
	ru.res.Steps = append(ru.res.Steps, rec)
	ru.observe(StepEvent{Index: index, Step: s, Started: started, Result: rec.Result, Duration: rec.Duration, Detail: rec.Detail, Err: rec.Err})
}

// finishOp ends the operation in the replicated state, once. It runs even
// when the run's context was cancelled: the history must say how it ended.
func (ru *run) finishOp(o Outcome, reason string) error {
	if !ru.recorded || ru.finished {
		return nil
	}
	ctx := context.WithoutCancel(ru.ctx)
	err := ru.apply(ctx, Change{Kind: ChangeFinish, Result: string(o), Reason: reason})
	if err != nil {
		ru.log.Warn("operation not finished in the replicated state", logErr, err)
		return err
	}
	ru.finished = true
	return nil
}

// undo runs, in reverse order, the undo of every step that ran and has one.
// It goes on past a failed undo (each is independent), and stops at once if
// leadership is lost. It returns a summary for the reason.
func (ru *run) undo() (summary string, stop bool, stopErr error) {
	ctx := context.WithoutCancel(ru.ctx)
	var okParts, badParts []string
	for i := len(ru.done) - 1; i >= 0; i-- {
		d := ru.done[i]
		us, ok := undoOf(d)
		if !ok {
			continue
		}
		var ex executed
		err := ru.step(ctx, d.index, us, true, &ex)
		name := stepName(us)
		if err != nil {
			if ru.classify(us, err) == failStop {
				return strings.Join(append(okParts, badParts...), "; "), true, err
			}
			badParts = append(badParts, fmt.Sprintf("undo %s failed: %v", name, err))
			continue
		}
		okParts = append(okParts, name)
		if us.Kind == StepRoute || us.Kind == StepSetWritable {
			if ru.restored == nil {
				ru.restored = map[StepKind]bool{}
			}
			ru.restored[us.Kind] = true
			// The window ends when writes are given back, not after the
			// undos that follow (a chained replica pointed back).
			ru.writesRestored()
		}
	}
	ru.writesRestored()
	var parts []string
	if len(okParts) > 0 {
		parts = append(parts, "undone: "+strings.Join(okParts, ", "))
	}
	parts = append(parts, badParts...)
	return strings.Join(parts, "; "), false, nil
}

// writesRestored closes the write-blocked window of an undone switchover when
// every undo that gives writes back to the old primary succeeded.
func (ru *run) writesRestored() {
	if ru.blockStart.IsZero() || !ru.blockEnd.IsZero() {
		return
	}
	for _, d := range ru.done {
		u, ok := undoOf(d)
		if ok && u.Instance == ru.plan.OldPrimary && (u.Kind == StepRoute || u.Kind == StepSetWritable) && !ru.restored[u.Kind] {
			return
		}
	}
	ru.blockEnd = ru.r.cfg.Clock.Now()
}

// undoOf returns the step that reverses d.
func undoOf(d executed) (Step, bool) {
	s := d.step
	if d.noUndo {
		return Step{}, false
	}
	if d.failed && s.Kind == StepPromote {
		// It may have set read_only=OFF before failing: nothing promoted may
		// stay writable outside the epoch.
		// Not gated on VerifyLeader: a protective fence is safe for anyone
		// to run, and a deposed leader must still leave nothing writable.
		return Step{Kind: StepFence, Instance: s.Instance, Timeout: s.Timeout,
			Why: fmt.Sprintf("the promotion of %s failed: keep it read-only", s.Instance)}, true
	}
	if s.Undo == "" || (d.failed && len(d.touched) == 0) {
		return Step{}, false
	}
	u := Step{Kind: s.Undo, Instance: s.Instance, Epoch: s.Epoch, Timeout: s.Timeout,
		// Undos that give writes back are gated on VerifyLeader; a fence is
		// protective and never is.
		Irreversible: s.Undo == StepSetWritable || s.Undo == StepRoute,
		Why:          fmt.Sprintf("undo %s", stepName(s))}
	if len(s.Instances) > 0 {
		u.Instances = d.touched
	}
	if s.Undo == StepSetWritable {
		u.SemiSync = s.SemiSync
	}
	if s.Undo == StepRepoint {
		u.Source, u.SemiSync = s.UndoSource, s.SemiSync
		u.Why = fmt.Sprintf("undo %s: %s replicates from %s again", stepName(s), s.Instance, s.UndoSource)
	}
	return u, true
}

// stepName names a step for reasons: "promote db2".
func stepName(s Step) string {
	return StepRecord{Kind: s.Kind, Instance: s.Instance, Instances: s.Instances}.HistoryName()
}
