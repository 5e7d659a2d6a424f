package proxyhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// HookEvent is when a hook runs.
type HookEvent string

// Hook events. The pre- events run before the operation changes anything
// and can veto it; the others report what happened.
const (
	EventPreFailover    HookEvent = "pre-failover"
	EventPostFailover   HookEvent = "post-failover"
	EventPreSwitchover  HookEvent = "pre-switchover"
	EventPostSwitchover HookEvent = "post-switchover"
	// EventFence: an agent fenced its local instance (read_only, sessions
	// killed) after losing its lease, or the leader fenced an old primary.
	EventFence HookEvent = "fence"
	// EventRoute / EventUnroute run as routing targets, next to HAProxy and
	// ProxySQL: for routing layers Regent does not speak (DNS, a service
	// registry, a cloud load balancer).
	EventRoute   HookEvent = "route"
	EventUnroute HookEvent = "unroute"
	// EventFailed: a failover or switchover aborted or failed (for alerting).
	EventFailed HookEvent = "failed"
)

// AllHookEvents lists every event, in the order they can occur.
func AllHookEvents() []HookEvent {
	return []HookEvent{EventPreFailover, EventPreSwitchover, EventUnroute, EventFence, EventRoute,
		EventPostFailover, EventPostSwitchover, EventFailed}
}

// IsPre reports whether the event is a pre- event, whose failure aborts the
// operation.
func (e HookEvent) IsPre() bool { return strings.HasPrefix(string(e), "pre-") }

// Phase is REGENT_PHASE: "pre", "post" or "on".
func (e HookEvent) Phase() string {
	switch {
	case e.IsPre():
		return "pre"
	case strings.HasPrefix(string(e), "post-"):
		return "post"
	default:
		return "on"
	}
}

func (e HookEvent) valid() bool { return slices.Contains(AllHookEvents(), e) }

// HookConfig declares one hook.
//
//	hooks:
//	  - name: notify
//	    command: [/usr/local/bin/regent-notify, --channel, dba]
//	    events: [post-failover, post-switchover, failed]
//	    timeout: 10s
type HookConfig struct {
	Name string `yaml:"name" json:"name"`
	// Command is the argv; Command[0] is an absolute path. No shell unless
	// you write one: [/bin/sh, -c, "..."].
	Command []string    `yaml:"command" json:"command"`
	Events  []HookEvent `yaml:"events" json:"events"`
	// Timeout bounds the hook; when it passes, the hook's whole process
	// group gets SIGTERM, then SIGKILL after the kill grace. Default 30s.
	Timeout time.Duration `yaml:"timeout" json:"timeout"`
	// Env adds non-secret variables. Names that look like secrets are
	// refused: a hook reads its secrets from its own files.
	Env map[string]string `yaml:"env" json:"env"`
	// Dir is the working directory (default: the agent's).
	Dir string `yaml:"dir" json:"dir"`
}

// DefaultHookTimeout bounds a hook without a timeout of its own.
const DefaultHookTimeout = 30 * time.Second

var secretLikeName = regexp.MustCompile(`(?i)pass(word|wd)?|secret|token|credential|api_?key|private_?key`)

// Validate checks one hook declaration; key names it in messages.
func (c HookConfig) Validate(key string) error {
	if c.Name == "" {
		return fmt.Errorf("%s.name: required", key)
	}
	if len(c.Command) == 0 || c.Command[0] == "" {
		return fmt.Errorf("%s.command: required (an argv list, e.g. [/usr/local/bin/notify, --failover])", key)
	}
	if !filepath.IsAbs(c.Command[0]) {
		return fmt.Errorf("%s.command: %q must be an absolute path (hooks run with a minimal PATH)", key, c.Command[0])
	}
	if len(c.Events) == 0 {
		return fmt.Errorf("%s.events: required; one or more of %v", key, AllHookEvents())
	}
	for _, e := range c.Events {
		if !e.valid() {
			return fmt.Errorf("%s.events: %q is not an event; use %v", key, e, AllHookEvents())
		}
	}
	if c.Timeout < 0 {
		return fmt.Errorf("%s.timeout: must not be negative", key)
	}
	for name := range c.Env {
		switch {
		case name == "" || strings.ContainsAny(name, "=\x00"):
			return fmt.Errorf("%s.env: %q is not a valid variable name", key, name)
		case strings.HasPrefix(strings.ToUpper(name), "REGENT_"):
			return fmt.Errorf("%s.env.%s: REGENT_ variables are set by Regent", key, name)
		case secretLikeName.MatchString(name):
			return fmt.Errorf("%s.env.%s: looks like a secret; secrets are never passed in a hook's environment or arguments, let the hook read them from a file only it can read", key, name)
		}
	}
	return nil
}

// HookInput is what Regent tells a hook about the operation.
type HookInput struct {
	Cluster     string
	Operation   string // failover, switchover, fence...; derived from the event for pre-/post- events
	OperationID string
	Epoch       uint64
	// Token orders routing attempts (REGENT_ROUTE_TOKEN, see Order); 0
	// outside route and unroute events.
	Token      uint64
	OldPrimary Endpoint
	NewPrimary Endpoint
	Replicas   []Endpoint
	Reason     string
	// Result is REGENT_RESULT for post- and failed events: "succeeded" or
	// "failed" (with Reason saying why).
	Result string
}

// HookResult is one hook run, for the operation's history.
type HookResult struct {
	Hook     string        `json:"hook"`
	Event    HookEvent     `json:"event"`
	Command  []string      `json:"command"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration"`
	OK       bool          `json:"ok"`
	// ExitCode is -1 when the hook was killed by a signal or never started.
	ExitCode int    `json:"exit_code"`
	TimedOut bool   `json:"timed_out,omitempty"`
	Error    string `json:"error,omitempty"`
	// Output is stdout and stderr interleaved, bounded: when longer than the
	// limit, its head and tail are kept around a marker.
	Output          string `json:"output"`
	OutputBytes     int64  `json:"output_bytes"`
	OutputTruncated bool   `json:"output_truncated,omitempty"`
}

// Errors of the hook runner.
var (
	// ErrHookAborted: a pre- hook failed; the operation must not go on.
	ErrHookAborted = errors.New("pre-hook failed: operation aborted")
	// ErrHookFailed: a post- (or other) hook failed; its step is failed.
	ErrHookFailed = errors.New("hook failed")
)

// HookError reports failed hooks of one event. errors.Is(err, ErrHookAborted)
// for pre- events, errors.Is(err, ErrHookFailed) otherwise.
type HookError struct {
	Event  HookEvent
	Failed []HookResult
}

func (e *HookError) Error() string {
	parts := make([]string, 0, len(e.Failed))
	for _, f := range e.Failed {
		parts = append(parts, fmt.Sprintf("%q: %s", f.Hook, f.Error))
	}
	what := "step failed"
	if e.Event.IsPre() {
		what = "operation aborted"
	}
	return fmt.Sprintf("%s hook %s (%s; see the hook's output in the operation history)", e.Event, strings.Join(parts, ", "), what)
}

// Is maps the event's policy onto the sentinel errors.
func (e *HookError) Is(target error) bool {
	if e.Event.IsPre() {
		return target == ErrHookAborted
	}
	return target == ErrHookFailed
}

// HooksOptions tunes a Hooks runner; zero values take defaults.
type HooksOptions struct {
	// KillGrace is the time between SIGTERM and SIGKILL to a timed-out
	// hook's process group. Default 2s.
	KillGrace time.Duration
	// OutputLimit bounds the output kept per hook run. Default 64 KiB.
	OutputLimit int
}

// Hooks runs operator hooks with a declared failure policy: a failed pre-
// hook aborts the operation (the hooks after it do not run); every other
// hook of an event runs, and any failure marks the step failed.
type Hooks struct {
	hooks   []HookConfig
	opts    HooksOptions
	baseEnv []string
	logger  *slog.Logger
}

// NewHooks validates cfgs and returns a runner. The environment handed to
// hooks is built from scratch: PATH, HOME, LANG, LC_ALL, TZ and TMPDIR of the
// agent, the hook's env, and the REGENT_ variables; nothing else of the
// agent's environment (which may hold credentials) leaks through.
func NewHooks(cfgs []HookConfig, opts HooksOptions, logger *slog.Logger) (*Hooks, error) {
	names := map[string]bool{}
	for i, c := range cfgs {
		if err := c.Validate(fmt.Sprintf("hooks[%d]", i)); err != nil {
			return nil, err
		}
		if names[c.Name] {
			return nil, fmt.Errorf("hooks[%d].name: %q is used twice", i, c.Name)
		}
		names[c.Name] = true
	}
	if opts.KillGrace <= 0 {
		opts.KillGrace = 2 * time.Second
	}
	if opts.OutputLimit <= 0 {
		opts.OutputLimit = 64 << 10
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var base []string
	for _, k := range []string{"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			base = append(base, k+"="+v)
		}
	}
	if _, ok := os.LookupEnv("PATH"); !ok {
		base = append(base, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	return &Hooks{hooks: slices.Clone(cfgs), opts: opts, baseEnv: base, logger: logger}, nil
}

// For returns the hooks declared for event, in declaration order.
func (h *Hooks) For(event HookEvent) []HookConfig {
	var out []HookConfig
	for _, c := range h.hooks {
		if slices.Contains(c.Events, event) {
			out = append(out, c)
		}
	}
	return out
}

// Run runs the hooks of event, one after another, and returns every run's
// result and a *HookError when one failed. With no hook for the event it
// returns (nil, nil).
func (h *Hooks) Run(ctx context.Context, event HookEvent, in HookInput) ([]HookResult, error) {
	if !event.valid() {
		return nil, fmt.Errorf("unknown hook event %q", event)
	}
	var results, failed []HookResult
	for _, hc := range h.For(event) {
		res := h.runOne(ctx, hc, event, in)
		results = append(results, res)
		if res.OK {
			h.logger.Info("hook succeeded", logKeyHook, hc.Name, logKeyEvent, string(event), logKeyCluster, in.Cluster, logKeyDuration, res.Duration)
			continue
		}
		h.logger.Error("hook failed", logKeyHook, hc.Name, logKeyEvent, string(event), logKeyCluster, in.Cluster, logKeyErr, res.Error)
		failed = append(failed, res)
		if event.IsPre() {
			break
		}
	}
	if len(failed) > 0 {
		return results, &HookError{Event: event, Failed: failed}
	}
	return results, nil
}

// HookEnv returns the REGENT_ variables a hook gets for event and in; exported so
// the README and tests can show them.
func HookEnv(hc HookConfig, event HookEvent, in HookInput) []string {
	op := in.Operation
	switch {
	case event.IsPre() || event.Phase() == "post":
		_, op, _ = strings.Cut(string(event), "-")
	case op == "":
		op = string(event)
	}
	timeout := hc.Timeout
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	replicas := make([]string, 0, len(in.Replicas))
	for _, r := range in.Replicas {
		replicas = append(replicas, r.Name+"="+r.Addr())
	}
	env := []string{
		"REGENT_CLUSTER=" + in.Cluster,
		"REGENT_EVENT=" + string(event),
		"REGENT_OPERATION=" + op,
		"REGENT_OPERATION_ID=" + in.OperationID,
		"REGENT_PHASE=" + event.Phase(),
		"REGENT_EPOCH=" + strconv.FormatUint(in.Epoch, 10),
		"REGENT_ROUTE_TOKEN=" + strconv.FormatUint(in.Token, 10),
		"REGENT_REASON=" + oneLine(in.Reason),
		"REGENT_RESULT=" + in.Result,
		"REGENT_REPLICAS=" + strings.Join(replicas, ","),
		"REGENT_HOOK_NAME=" + hc.Name,
		"REGENT_HOOK_TIMEOUT=" + strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64),
	}
	env = append(env, endpointEnv("REGENT_OLD_PRIMARY", in.OldPrimary)...)
	env = append(env, endpointEnv("REGENT_NEW_PRIMARY", in.NewPrimary)...)
	return env
}

func endpointEnv(prefix string, e Endpoint) []string {
	port := ""
	if e.Port > 0 {
		port = strconv.Itoa(e.Port)
	}
	return []string{
		prefix + "=" + e.Name,
		prefix + "_HOST=" + e.Host,
		prefix + "_PORT=" + port,
		prefix + "_ADDR=" + e.Addr(),
	}
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == 0 {
			return ' '
		}
		return r
	}, s)
}

func (h *Hooks) runOne(ctx context.Context, hc HookConfig, event HookEvent, in HookInput) HookResult {
	res := HookResult{Hook: hc.Name, Event: event, Command: slices.Clone(hc.Command), ExitCode: -1, Started: time.Now()}
	timeout := hc.Timeout
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	env := slices.Clone(h.baseEnv)
	for _, k := range slices.Sorted(maps.Keys(hc.Env)) {
		env = append(env, k+"="+hc.Env[k])
	}
	env = append(env, HookEnv(hc, event, in)...)

	out := newBoundedBuffer(h.opts.OutputLimit)
	cmd := exec.Command(hc.Command[0], hc.Command[1:]...)
	cmd.Env = env
	cmd.Dir = hc.Dir
	cmd.Stdout = out
	cmd.Stderr = out // the same writer: one pipe, output in order
	// Own process group, so a timeout kills the hook and everything it
	// started, not just the shell.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// When the hook exits but something it left behind still holds the
	// output pipe, stop reading after this long.
	cmd.WaitDelay = h.opts.KillGrace

	finish := func(err error) HookResult {
		res.Duration = time.Since(res.Started)
		res.Output, res.OutputBytes, res.OutputTruncated = out.result()
		if cmd.ProcessState != nil {
			res.ExitCode = cmd.ProcessState.ExitCode()
		}
		res.OK = err == nil && !res.TimedOut
		if !res.OK {
			switch {
			case res.TimedOut:
				res.Error = fmt.Sprintf("timed out after %s; its process group was killed", timeout)
			case err != nil:
				res.Error = err.Error()
			}
		}
		return res
	}

	if err := cmd.Start(); err != nil {
		return finish(fmt.Errorf("starting hook: %w", err))
	}
	pgid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		res.TimedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		grace := time.NewTimer(h.opts.KillGrace)
		select {
		case err = <-done:
			grace.Stop()
		case <-grace.C:
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			err = <-done
		}
		if !res.TimedOut {
			err = fmt.Errorf("hook cancelled: %w", ctx.Err())
		}
	}
	// Whatever the hook left running in its group goes too: a hook must not
	// outlive its step (the group exists only while a member lives, so this
	// cannot hit an unrelated process).
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success() {
		// The hook itself succeeded; something it started in the background
		// kept its output open and was killed above.
		h.logger.Warn("hook left a background process holding its output; it was killed", logKeyHook, hc.Name, logKeyEvent, string(event))
		err = nil
	}
	if err != nil && cmd.ProcessState != nil && cmd.ProcessState.ExitCode() > 0 {
		err = fmt.Errorf("exited with status %d", cmd.ProcessState.ExitCode())
	}
	return finish(err)
}

// boundedBuffer keeps the first and last limit/2 bytes written to it.
type boundedBuffer struct {
	mu    sync.Mutex
	limit int
	head  []byte
	tail  []byte // ring of the last bytes once head is full
	total int64
}

func newBoundedBuffer(limit int) *boundedBuffer {
	return &boundedBuffer{limit: limit}
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	written := len(p)
	b.total += int64(len(p))
	headCap := b.limit / 2
	if room := headCap - len(b.head); room > 0 {
		n := min(room, len(p))
		b.head = append(b.head, p[:n]...)
		p = p[n:]
	}
	tailCap := b.limit - headCap
	if len(p) > 0 && tailCap > 0 {
		b.tail = append(b.tail, p...)
		if len(b.tail) > tailCap {
			b.tail = append(b.tail[:0], b.tail[len(b.tail)-tailCap:]...)
		}
	}
	return written, nil
}

func (b *boundedBuffer) result() (string, int64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	kept := int64(len(b.head) + len(b.tail))
	if kept == b.total {
		return string(b.head) + string(b.tail), b.total, false
	}
	return fmt.Sprintf("%s\n[... %d bytes omitted ...]\n%s", b.head, b.total-kept, b.tail), b.total, true
}

// RouteTarget returns a Target that runs the route and unroute hooks, for a
// Router next to HAProxy and ProxySQL targets. A failed routing hook fails
// its target like any other backend.
func (h *Hooks) RouteTarget() Target { return hookTarget{h: h} }

type hookTarget struct{ h *Hooks }

var _ Target = hookTarget{}

func (t hookTarget) Name() string { return "hooks" }

func (t hookTarget) Route(ctx context.Context, c RouteChange) (Outcome, error) {
	res, err := t.h.Run(ctx, EventRoute, HookInput{Cluster: c.Cluster, Operation: c.Operation, OperationID: c.OperationID,
		Epoch: c.Epoch, Token: c.Token, OldPrimary: c.OldPrimary, NewPrimary: c.NewPrimary, Replicas: c.Replicas, Reason: c.Reason})
	return Outcome{Detail: summarizeHooks(res), Hooks: res}, err
}

func (t hookTarget) Unroute(ctx context.Context, r UnrouteRequest) (Outcome, error) {
	res, err := t.h.Run(ctx, EventUnroute, HookInput{Cluster: r.Cluster, Operation: r.Operation, OperationID: r.OperationID,
		Epoch: r.Epoch, Token: r.Token, OldPrimary: r.Old, Reason: r.Reason})
	return Outcome{Detail: summarizeHooks(res), Hooks: res}, err
}

func summarizeHooks(res []HookResult) string {
	if len(res) == 0 {
		return "no hooks for this event"
	}
	parts := make([]string, 0, len(res))
	for _, r := range res {
		state := "ok"
		if !r.OK {
			state = "FAILED: " + r.Error
		}
		parts = append(parts, fmt.Sprintf("%s %s (%s)", r.Hook, state, r.Duration.Round(time.Millisecond)))
	}
	return strings.Join(parts, "; ")
}

// FormatHookResults renders hook runs for an operation's history: a header
// line per run (hook, event, result, exit code, duration) and its output.
func FormatHookResults(results []HookResult) string {
	var b strings.Builder
	for _, r := range results {
		state := "ok"
		if !r.OK {
			state = "FAILED: " + r.Error
		}
		fmt.Fprintf(&b, "== hook %s (%s): %s, exit %d, %s ==\n", r.Hook, r.Event, state, r.ExitCode, r.Duration.Round(time.Millisecond))
		b.WriteString(r.Output)
		if r.Output != "" && !strings.HasSuffix(r.Output, "\n") {
			b.WriteByte('\n')
		}
	}
	return b.String()
}
