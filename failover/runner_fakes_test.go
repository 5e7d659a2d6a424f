package failover

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Hand-written fakes for the runner's tests. Every fake writes what it is
// asked to do to one shared journal, so that a test reads the order of
// actions across the store, the router, the instances and the hooks.

var (
	_ Inspector    = (*fakeInspector)(nil)
	_ Actuator     = (*fakeActuator)(nil)
	_ Leadership   = (*fakeLeadership)(nil)
	_ StateStore   = (*fakeStore)(nil)
	_ HistoryKinds = (*kindsStore)(nil)
	_ Router       = (*fakeRouter)(nil)
	_ Hooks        = (*fakeHooks)(nil)
	_ Clock        = (*fakeClock)(nil)
)

// journal is the ordered list of everything the fakes were asked to do.
type journal struct {
	mu    sync.Mutex
	lines []string
}

func (j *journal) add(format string, a ...any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.lines = append(j.lines, fmt.Sprintf(format, a...))
}

func (j *journal) all() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string{}, j.lines...)
}

// without returns the journal minus the lines starting with any prefix.
func (j *journal) without(prefixes ...string) []string {
	out := []string{}
	for _, l := range j.all() {
		skip := false
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				skip = true
			}
		}
		if !skip {
			out = append(out, l)
		}
	}
	return out
}

// only returns the journal lines starting with one of the prefixes.
func (j *journal) only(prefixes ...string) []string {
	out := []string{}
	for _, l := range j.all() {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

// fakeClock is a manual clock. After advances the clock to the deadline at
// once and returns a fired channel: a wait on the injected clock ends
// immediately, at the right fake time.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.now = c.now.Add(d)
	}
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// behaviour scripts a fake call, keyed by its journal line: an error, or
// blocking until the context ends.
type behaviour struct {
	err   error
	block bool
	// once, when set, plays the behaviour on the first call only.
	once *atomic.Bool
}

type script map[string]behaviour

// do journals the call, advances the clock by cost and plays the script.
func do(ctx context.Context, j *journal, c *fakeClock, cost time.Duration, sc script, format string, a ...any) error {
	line := fmt.Sprintf(format, a...)
	j.add("%s", line)
	c.advanceIfAny(cost)
	b, ok := sc[line]
	if !ok || b.once != nil && b.once.Swap(true) {
		return nil
	}
	if b.block {
		<-ctx.Done()
		return ctx.Err()
	}
	return b.err
}

// fakeActuator journals every action ("act promote db2 semisync"); each
// costs `cost` on the fake clock.
type fakeActuator struct {
	j     *journal
	clock *fakeClock
	cost  time.Duration
	sc    script

	// heldAfter, when set, makes read-only on report writes held back
	// that long after the call began (WritesHeldFrom), as the real fence
	// does once it has listed and killed the sessions.
	heldAfter time.Duration

	mu        sync.Mutex
	stoppedIO map[string]bool // IO threads stopped by a successful stop-io
}

func (a *fakeActuator) act(ctx context.Context, format string, args ...any) error {
	return do(ctx, a.j, a.clock, a.cost, a.sc, "act "+format, args...)
}

func (a *fakeActuator) SetReadOnly(ctx context.Context, n string, on bool) error {
	if on {
		began := a.clock.Now()
		err := a.act(ctx, "read-only on %s", n)
		if a.heldAfter > 0 {
			WritesHeldFrom(ctx, began.Add(a.heldAfter))
		}
		return err
	}
	return a.act(ctx, "read-only off %s", n)
}
func (a *fakeActuator) KillClientConnections(ctx context.Context, n string) error {
	return a.act(ctx, "kill %s", n)
}
func (a *fakeActuator) StopReplicaIO(ctx context.Context, n string) error {
	err := a.act(ctx, "stop-io %s", n)
	a.setIO(n, err == nil)
	return err
}
func (a *fakeActuator) StartReplicaIO(ctx context.Context, n string) error {
	err := a.act(ctx, "start-io %s", n)
	a.setIO(n, err != nil && a.ioStopped(n))
	return err
}

// setIO records whether n's IO thread is stopped, for the probes.
func (a *fakeActuator) setIO(n string, stopped bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stoppedIO == nil {
		a.stoppedIO = map[string]bool{}
	}
	a.stoppedIO[n] = stopped
}

func (a *fakeActuator) ioStopped(n string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stoppedIO[n]
}
func (a *fakeActuator) WaitExecuted(ctx context.Context, n string, set GTIDSet) error {
	return a.act(ctx, "wait-executed %s %s", n, gtidText(set))
}
func (a *fakeActuator) Repoint(ctx context.Context, n, src string, o RepointOptions) error {
	err := a.act(ctx, "repoint %s from %s demote=%t semisync=%t", n, src, o.Demote, o.SemiSync)
	if err == nil {
		a.setIO(n, false)
	}
	return err
}
func (a *fakeActuator) Promote(ctx context.Context, n string, semi bool) error {
	return a.act(ctx, "promote %s semisync=%t", n, semi)
}
func (a *fakeActuator) ConfigureSemiSync(ctx context.Context, n, role string) error {
	return a.act(ctx, "semisync %s %s", n, role)
}
func (a *fakeActuator) WaitWriteTransactions(ctx context.Context, n string) error {
	return a.act(ctx, "wait-transactions %s", n)
}

// fakeInspector answers probes from a view: the leader's probe of the
// instance there, observed now.
type fakeInspector struct {
	j     *journal
	clock *fakeClock
	from  View
	sc    script
	// act, when set, is the actuator whose IO thread stops the probes show.
	act *fakeActuator
}

func (i *fakeInspector) Probe(ctx context.Context, n string) (Probe, error) {
	if err := do(ctx, i.j, i.clock, 0, i.sc, "probe %s", n); err != nil {
		return Probe{}, err
	}
	in, ok := i.from.Instances[n]
	if !ok {
		return Probe{}, fmt.Errorf("instance %q is not configured", n)
	}
	pr := in.Probes[i.from.Leader]
	if pr.Replica != nil {
		rs := *pr.Replica
		if i.act != nil && i.act.ioStopped(n) {
			rs.IOState = IONo
		}
		pr.Replica = &rs
	}
	pr.ObservedAt = i.clock.Now()
	return pr, nil
}

// fakeLeadership confirms the leadership `leads` times, then says
// ErrNotLeader (leads < 0: always confirms).
type fakeLeadership struct {
	j     *journal
	leads int
}

func (l *fakeLeadership) Barrier(context.Context) error { l.j.add("barrier"); return nil }

func (l *fakeLeadership) VerifyLeader(context.Context) error {
	l.j.add("verify")
	if l.leads == 0 {
		return fmt.Errorf("raft: %w (leader is a3)", ErrNotLeader)
	}
	if l.leads > 0 {
		l.leads--
	}
	return nil
}

// fakeStore journals every change the way the consensus adapter would issue
// it, and keeps the changes for closer checks.
type fakeStore struct {
	j       *journal
	clock   *fakeClock
	agents  []AgentID
	mu      sync.Mutex
	changes []Change
	sc      script
}

func (s *fakeStore) Apply(ctx context.Context, c Change) error {
	s.mu.Lock()
	s.changes = append(s.changes, c)
	s.mu.Unlock()
	return do(ctx, s.j, s.clock, 0, s.sc, "%s", changeLine(c))
}

// changeLine prints a change as the consensus command it maps to.
func changeLine(c Change) string {
	switch c.Kind {
	case ChangeIntent:
		return fmt.Sprintf("store begin %s %s subject=%s target=%s expect=%d automatic=%t", c.OperationID, c.Operation, c.Instance, c.Target, c.ExpectEpoch, c.Automatic)
	case ChangeStep:
		return fmt.Sprintf("store step %s %s", c.Step.HistoryName(), c.Step.Result)
	case ChangeCommitEpoch:
		return fmt.Sprintf("store commit %s expect=%d gtid=%s", c.Instance, c.ExpectEpoch, c.GTID)
	case ChangeAntiFlap:
		return fmt.Sprintf("store anti-flap until=%s", stamp(c.AntiFlapUntil))
	case ChangeFinish:
		return fmt.Sprintf("store finish %s %s", c.OperationID, c.Result)
	case ChangeAbort:
		return fmt.Sprintf("store abort %s", c.OperationID)
	case ChangeQuarantine:
		return fmt.Sprintf("store quarantine %s gtid=%s", c.Instance, c.GTID)
	case ChangeLiftQuarantine:
		return fmt.Sprintf("store lift-quarantine %s", c.Instance)
	case ChangeCandidate:
		return fmt.Sprintf("store candidate %s", c.Instance)
	}
	return "store " + string(c.Kind)
}

func (s *fakeStore) LastContact(context.Context) (map[AgentID]time.Time, time.Time, error) {
	s.j.add("store last-contact")
	now := s.clock.Now()
	out := map[AgentID]time.Time{}
	for _, a := range s.agents {
		out[a] = now
	}
	return out, now, nil
}

func (s *fakeStore) all() []Change {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Change(nil), s.changes...)
}

// kindsStore is a fakeStore that cannot record some operation kinds.
type kindsStore struct {
	*fakeStore
	unrecorded map[OperationKind]bool
}

func (s *kindsStore) RecordsOperation(k OperationKind) bool { return !s.unrecorded[k] }

// fakeRouter journals routing changes and, like a real router, refuses one
// older than the last it applied.
type fakeRouter struct {
	j     *journal
	clock *fakeClock
	cost  time.Duration
	sc    script
	last  uint64
}

func (r *fakeRouter) change(ctx context.Context, what, cluster, n string, epoch uint64) error {
	if err := do(ctx, r.j, r.clock, r.cost, r.sc, "router %s %s epoch=%d", what, n, epoch); err != nil {
		return err
	}
	if epoch < r.last {
		return fmt.Errorf("routing change for %s at epoch %d is older than %d: %w", cluster, epoch, r.last, ErrStaleEpoch)
	}
	r.last = epoch
	return nil
}

func (r *fakeRouter) RouteWrites(ctx context.Context, cluster, n string, epoch uint64) error {
	return r.change(ctx, "route", cluster, n, epoch)
}

func (r *fakeRouter) UnrouteWrites(ctx context.Context, cluster, n string, epoch uint64) error {
	return r.change(ctx, "unroute", cluster, n, epoch)
}

// fakeHooks journals each phase run ("hooks pre-failover new=") and returns
// its scripted output.
type fakeHooks struct {
	j  *journal
	sc script
}

func (h *fakeHooks) Run(ctx context.Context, phase string, plan Plan) (string, error) {
	err := do(ctx, h.j, nil, 0, h.sc, "hooks %s", phase)
	return fmt.Sprintf("%s ran for epoch %d, new primary %q", phase, plan.Epoch, plan.NewPrimary), err
}

// rig is a runner wired to fakes.
type rig struct {
	j        *journal
	clock    *fakeClock
	act      *fakeActuator
	insp     *fakeInspector
	lead     *fakeLeadership
	store    *fakeStore
	router   *fakeRouter
	hooks    *fakeHooks
	events   []StepEvent
	runner   *Runner
	storeArg StateStore
	halt     func(StepEvent) bool
	actArg   Actuator // nil: act
}

// parallelActuator is a fakeActuator with the ParallelIOStopper capability:
// it journals the whole batch as one line, then each stop.
type parallelActuator struct{ *fakeActuator }

func (a parallelActuator) StopReplicaIOs(ctx context.Context, names []string) []error {
	a.j.add("act stop-io-all %s", strings.Join(names, ","))
	errs := make([]error, len(names))
	for i, n := range names {
		errs[i] = a.StopReplicaIO(ctx, n)
	}
	return errs
}

// newRig builds fakes around view v; fresh is the view the inspector answers
// from (the facts after the IO threads stopped).
func newRig(v, fresh View) *rig {
	j := &journal{}
	c := &fakeClock{now: v.Now}
	act := &fakeActuator{j: j, clock: c, cost: 5 * ms, sc: script{}}
	r := &rig{j: j, clock: c,
		act:    act,
		insp:   &fakeInspector{j: j, clock: c, from: fresh, sc: script{}, act: act},
		lead:   &fakeLeadership{j: j, leads: -1},
		store:  &fakeStore{j: j, clock: c, agents: liveAgents(v), sc: script{}},
		router: &fakeRouter{j: j, clock: c, cost: 5 * ms, sc: script{}},
		hooks:  &fakeHooks{j: j, sc: script{}},
	}
	return r
}

// liveAgents are the agents the fake store reports as just heard: all but
// the old primary's.
func liveAgents(v View) []AgentID {
	var out []AgentID
	for _, a := range v.agentIDs() {
		if a != v.Instances[v.State.Primary].OwnerAgent {
			out = append(out, a)
		}
	}
	return out
}

// fakeHooks has no clock of its own: do() must tolerate a nil clock.
func (c *fakeClock) advanceIfAny(d time.Duration) {
	if c != nil {
		c.Advance(d)
	}
}

// testLog sends the runner's log lines to t.Log.
type testLog struct{ t *testing.T }

func (w testLog) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

func (r *rig) build(t *testing.T) *Runner {
	store := r.storeArg
	if store == nil {
		store = r.store
	}
	var act Actuator = r.act
	if r.actArg != nil {
		act = r.actArg
	}
	n := 0
	runner, err := NewRunner(RunnerConfig{
		Inspector: r.insp, Actuator: act, Leadership: r.lead, Store: store, Router: r.router, Hooks: r.hooks,
		Clock: r.clock, Logger: slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		NewOperationID: func() string { n++; return fmt.Sprintf("op-%d", n) },
		Observer:       func(e StepEvent) { r.events = append(r.events, e) },
		Halt:           r.halt,
	})
	if err != nil {
		panic(err)
	}
	r.runner = runner
	return runner
}
