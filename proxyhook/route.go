package proxyhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Log keys, shared by everything in the package so that log lines can be
// searched the same way whichever backend wrote them.
const (
	logKeyCluster  = "cluster"
	logKeyEpoch    = "epoch"
	logKeyApplied  = "applied_epoch"
	logKeyToken    = "route_token"
	logKeyTarget   = "target"
	logKeyAction   = "action"
	logKeyInstance = "instance"
	logKeyErr      = "err"
	logKeyAttempt  = "attempt"
	logKeyDuration = "duration"
	logKeyHook     = "hook"
	logKeyEvent    = "event"
	logKeyStmt     = "statement"
)

// Endpoint names one MySQL/MariaDB instance: its name in the Regent
// configuration and the address clients use to reach it.
type Endpoint struct {
	Name string `json:"name"`
	Host string `json:"host"`
	Port int    `json:"port"`
}

// Addr is host:port, or "" when the endpoint has no host.
func (e Endpoint) Addr() string {
	if e.Host == "" {
		return ""
	}
	return net.JoinHostPort(e.Host, strconv.Itoa(e.Port))
}

// IsZero reports whether the endpoint is unset.
func (e Endpoint) IsZero() bool { return e == Endpoint{} }

func (e Endpoint) String() string {
	switch {
	case e.IsZero():
		return "<none>"
	case e.Host == "":
		return e.Name
	default:
		return e.Name + "(" + e.Addr() + ")"
	}
}

// Action says which kind of routing change a report is about.
type Action string

const (
	// ActionRoute sends writes to a new primary (and takes every other
	// instance out of write routing).
	ActionRoute Action = "route"
	// ActionUnroute takes an old primary out of write routing and cuts its
	// sessions, before it is fenced. It routes writes nowhere new.
	ActionUnroute Action = "unroute"
)

// RouteChange moves the write route of one replication cluster to NewPrimary.
// Epoch is the epoch the change belongs to (the fencing token stored in Raft).
// Token orders attempts: see Order.
type RouteChange struct {
	Cluster    string     `json:"cluster"`
	Epoch      uint64     `json:"epoch"`
	Token      uint64     `json:"token,omitempty"`
	OldPrimary Endpoint   `json:"old_primary"`
	NewPrimary Endpoint   `json:"new_primary"`
	Replicas   []Endpoint `json:"replicas,omitempty"`

	// Operation, OperationID and Reason are optional; they are handed to
	// routing hooks (REGENT_OPERATION, REGENT_OPERATION_ID, REGENT_REASON).
	Operation   string `json:"operation,omitempty"`
	OperationID string `json:"operation_id,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

// UnrouteRequest takes Old out of write routing for Cluster at Epoch.
type UnrouteRequest struct {
	Cluster string   `json:"cluster"`
	Epoch   uint64   `json:"epoch"`
	Token   uint64   `json:"token,omitempty"`
	Old     Endpoint `json:"old"`

	Operation   string `json:"operation,omitempty"`
	OperationID string `json:"operation_id,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

func (c RouteChange) validate() error {
	if c.Cluster == "" {
		return errors.New("route change has no cluster name")
	}
	if c.NewPrimary.Name == "" {
		return fmt.Errorf("route change for cluster %q at epoch %d names no new primary", c.Cluster, c.Epoch)
	}
	if c.NewPrimary.Port < 0 || c.NewPrimary.Port > 65535 {
		return fmt.Errorf("route change for cluster %q: new primary %s has port %d out of range", c.Cluster, c.NewPrimary.Name, c.NewPrimary.Port)
	}
	return nil
}

// Target is one routing backend: one HAProxy runtime API, one ProxySQL admin
// interface, or the routing hooks. A Target must be idempotent: the Router may
// send the same change twice (a retried failover step), and both must leave
// the same state.
type Target interface {
	// Name identifies the target in reports and logs, e.g. "haproxy lb1".
	Name() string
	// Route makes NewPrimary the only write destination.
	Route(ctx context.Context, change RouteChange) (Outcome, error)
	// Unroute takes the old primary out of write routing and cuts its sessions.
	Unroute(ctx context.Context, req UnrouteRequest) (Outcome, error)
}

// Outcome is what a target did, successful or not.
type Outcome struct {
	// Detail lists the steps done, e.g. "mysql_write/db1 maint, sessions cut".
	Detail string
	// Hooks holds the runs of routing hooks (the hooks target only).
	Hooks []HookResult
}

// TargetResult is one target's outcome in a RouteReport.
type TargetResult struct {
	Target   string        `json:"target"`
	OK       bool          `json:"ok"`
	Detail   string        `json:"detail,omitempty"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration"`
	Hooks    []HookResult  `json:"hooks,omitempty"`
	// Err is the error itself, for errors.Is/As; Error is its text for JSON.
	Err error `json:"-"`
}

// RouteReport lists what every target of a cluster did with one change.
type RouteReport struct {
	Cluster  string         `json:"cluster"`
	Epoch    uint64         `json:"epoch"`
	Action   Action         `json:"action"`
	Instance string         `json:"instance"` // new primary (route) or old primary (unroute)
	Results  []TargetResult `json:"results"`
	Duration time.Duration  `json:"duration"`
}

// OK reports whether every target succeeded. A report with no targets is OK:
// the cluster relies on the HAProxy health-check (pull) path only.
func (r RouteReport) OK() bool { return len(r.Failed()) == 0 }

// Failed returns the results of the targets that failed.
func (r RouteReport) Failed() []TargetResult {
	var out []TargetResult
	for _, res := range r.Results {
		if !res.OK {
			out = append(out, res)
		}
	}
	return out
}

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrStaleEpoch: the change is older than one already applied.
	ErrStaleEpoch = errors.New("routing change is older than the last applied epoch")
	// ErrRouteIncomplete: at least one target failed; the report says which.
	ErrRouteIncomplete = errors.New("routing change did not reach every target")
	// ErrUnknownCluster: the Router has no targets registered for the cluster.
	ErrUnknownCluster = errors.New("no routing configured for cluster")
	// ErrClosed: the Router (or a client) was closed.
	ErrClosed = errors.New("proxyhook: closed")
)

// Order places a routing attempt among the others of its cluster. Epochs
// alone cannot: an operation pushes its planned epoch before it commits, so
// a deposed leader's attempt and its successor's can carry the same epoch,
// and the successor's reconciliation to the committed primary carries a
// lower one. Token is the Raft log index that authorised the attempt: an
// operation's recorded intent, or the replicated state a leader reconciled
// the route from. A deposed leader's operation carries the index of its
// intent; its successor acts only after it has aborted that operation,
// which is a later entry, so every push of the successor carries a higher
// token. Two reconciliations read at the same index say the same thing.
// Retries of one attempt share its token.
//
// A change with a token is stale when a higher token was applied; a change
// without one (a caller that has none) is ordered by epoch alone. Equal is
// never stale: it is the same attempt retried.
type Order struct {
	Epoch uint64
	Token uint64
}

// StaleAgainst reports whether o must be refused once applied was accepted.
func (o Order) StaleAgainst(applied Order) bool {
	if o.Token != 0 {
		return o.Token < applied.Token
	}
	return o.Epoch < applied.Epoch
}

// Max returns the order to record after accepting o on top of applied.
func (o Order) Max(applied Order) Order {
	return Order{Epoch: max(o.Epoch, applied.Epoch), Token: max(o.Token, applied.Token)}
}

// StaleEpochError is returned when a change is older than one already
// applied for its cluster (see Order). errors.Is(err, ErrStaleEpoch) is true.
type StaleEpochError struct {
	Cluster      string
	Epoch        uint64 // the refused change's epoch
	Applied      uint64 // the newest epoch already applied
	Token        uint64 // the refused change's token (0: none)
	AppliedToken uint64 // the newest token already applied
	Where        string // who refused: "router" or a target name
}

func (e *StaleEpochError) Error() string {
	where := e.Where
	if where == "" {
		where = "router"
	}
	if e.Token != 0 {
		return fmt.Sprintf("%s refused routing change for cluster %q at epoch %d, attempt %d: attempt %d was already applied (a deposed leader or a delayed retry sent it; nothing was changed)",
			where, e.Cluster, e.Epoch, e.Token, e.AppliedToken)
	}
	return fmt.Sprintf("%s refused routing change for cluster %q at epoch %d: epoch %d was already applied (a stale leader or a delayed retry sent it; nothing was changed)",
		where, e.Cluster, e.Epoch, e.Applied)
}

// Is makes errors.Is(err, ErrStaleEpoch) work.
func (e *StaleEpochError) Is(target error) bool { return target == ErrStaleEpoch }

// RouteError is returned when some targets failed. It wraps every target's
// error (errors.Is/As see them) and ErrRouteIncomplete.
type RouteError struct {
	Report RouteReport
}

func (e *RouteError) Error() string {
	failed := e.Report.Failed()
	parts := make([]string, 0, len(failed))
	for _, f := range failed {
		parts = append(parts, f.Target+": "+f.Error)
	}
	return fmt.Sprintf("%s of cluster %q at epoch %d failed on %d of %d targets: %s",
		e.Report.Action, e.Report.Cluster, e.Report.Epoch, len(failed), len(e.Report.Results), strings.Join(parts, "; "))
}

// Unwrap exposes ErrRouteIncomplete and each target's error.
func (e *RouteError) Unwrap() []error {
	errs := []error{ErrRouteIncomplete}
	for _, f := range e.Report.Failed() {
		if f.Err != nil {
			errs = append(errs, f.Err)
		}
	}
	return errs
}

// Router fans a routing change out to every target of the change's cluster,
// in parallel, and reports each one's result. It refuses changes older than
// the newest epoch it has accepted for the cluster, and serialises changes of
// one cluster so that two never interleave.
//
// A Router holds in-memory epochs only; seed it with SeedEpoch from the Raft
// state when an agent becomes leader, so that a restarted agent is no easier
// to fool than a running one. The Raft FSM's conditional commands remain the
// primary guard; this is the second one, next to the targets.
type Router struct {
	logger *slog.Logger

	mu       sync.Mutex
	clusters map[string]*clusterRoutes
	closed   bool
}

type clusterRoutes struct {
	// lock serialises changes of one cluster; a channel so that waiting for
	// it can respect ctx.
	lock    chan struct{}
	targets []Target
	applied Order
}

// NewRouter returns a Router with no clusters. A nil logger discards logs.
func NewRouter(logger *slog.Logger) *Router {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Router{logger: logger, clusters: map[string]*clusterRoutes{}}
}

// SetTargets registers the targets of a cluster, replacing previous ones. An
// empty list is valid: the cluster is routed by health checks alone.
func (r *Router) SetTargets(cluster string, targets ...Target) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.clusterLocked(cluster)
	c.targets = append([]Target(nil), targets...)
}

func (r *Router) clusterLocked(cluster string) *clusterRoutes {
	c, ok := r.clusters[cluster]
	if !ok {
		c = &clusterRoutes{lock: make(chan struct{}, 1)}
		r.clusters[cluster] = c
	}
	return c
}

// SeedEpoch raises the cluster's last applied epoch to epoch (never lowers it).
func (r *Router) SeedEpoch(cluster string, epoch uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.clusterLocked(cluster)
	c.applied.Epoch = max(c.applied.Epoch, epoch)
}

// AppliedEpoch returns the newest epoch accepted for the cluster (0 if none).
func (r *Router) AppliedEpoch(cluster string) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clusters[cluster]; ok {
		return c.applied.Epoch
	}
	return 0
}

// Route sends writes of change.Cluster to change.NewPrimary on every target.
// It returns the report and, when a target failed, a *RouteError; a stale
// change returns a *StaleEpochError and touches nothing.
func (r *Router) Route(ctx context.Context, change RouteChange) (RouteReport, error) {
	if err := change.validate(); err != nil {
		return RouteReport{Cluster: change.Cluster, Epoch: change.Epoch, Action: ActionRoute}, err
	}
	return r.apply(ctx, change.Cluster, Order{change.Epoch, change.Token}, ActionRoute, change.NewPrimary.Name,
		func(ctx context.Context, t Target) (Outcome, error) { return t.Route(ctx, change) })
}

// Unroute takes old out of the cluster's write routing on every target and
// cuts its sessions (a failover does it before it fences the old primary:
// failover's package doc, # Plans).
func (r *Router) Unroute(ctx context.Context, cluster string, epoch uint64, old Endpoint) (RouteReport, error) {
	return r.UnrouteRequest(ctx, UnrouteRequest{Cluster: cluster, Epoch: epoch, Old: old})
}

// UnrouteRequest is Unroute with the optional operation fields for hooks.
func (r *Router) UnrouteRequest(ctx context.Context, req UnrouteRequest) (RouteReport, error) {
	if req.Cluster == "" || req.Old.Name == "" {
		return RouteReport{Cluster: req.Cluster, Epoch: req.Epoch, Action: ActionUnroute},
			fmt.Errorf("unroute needs a cluster and the old primary's name (got cluster %q, old %q)", req.Cluster, req.Old.Name)
	}
	return r.apply(ctx, req.Cluster, Order{req.Epoch, req.Token}, ActionUnroute, req.Old.Name,
		func(ctx context.Context, t Target) (Outcome, error) { return t.Unroute(ctx, req) })
}

func (r *Router) apply(ctx context.Context, cluster string, order Order, action Action, instance string,
	do func(context.Context, Target) (Outcome, error)) (RouteReport, error) {
	epoch := order.Epoch
	report := RouteReport{Cluster: cluster, Epoch: epoch, Action: action, Instance: instance}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return report, ErrClosed
	}
	c, ok := r.clusters[cluster]
	r.mu.Unlock()
	if !ok {
		return report, fmt.Errorf("%w %q: add it to the routing configuration (an empty routing section is fine for health-check-only routing)", ErrUnknownCluster, cluster)
	}

	select {
	case c.lock <- struct{}{}:
	case <-ctx.Done():
		return report, fmt.Errorf("waiting for another routing change of cluster %q: %w", cluster, ctx.Err())
	}
	defer func() { <-c.lock }()

	r.mu.Lock()
	applied := c.applied
	if order.StaleAgainst(applied) {
		r.mu.Unlock()
		err := &StaleEpochError{Cluster: cluster, Epoch: epoch, Applied: applied.Epoch, Token: order.Token, AppliedToken: applied.Token, Where: "router"}
		r.logger.Warn("refused stale routing change", logKeyCluster, cluster, logKeyEpoch, epoch, logKeyToken, order.Token,
			logKeyApplied, applied.Epoch, logKeyAction, string(action), logKeyInstance, instance)
		return report, err
	}
	// Accept before pushing: a change that fails half-way has still moved
	// some targets to this attempt, and an older one must not undo that.
	c.applied = order.Max(applied)
	targets := append([]Target(nil), c.targets...)
	r.mu.Unlock()

	start := time.Now()
	report.Results = make([]TargetResult, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			tStart := time.Now()
			out, err := do(ctx, t)
			res := TargetResult{Target: t.Name(), OK: err == nil, Detail: out.Detail, Hooks: out.Hooks, Duration: time.Since(tStart), Err: err}
			if err != nil {
				res.Error = err.Error()
			}
			report.Results[i] = res
		})
	}
	wg.Wait()
	report.Duration = time.Since(start)

	for _, res := range report.Results {
		if res.OK {
			r.logger.Info("routing target updated", logKeyCluster, cluster, logKeyEpoch, epoch, logKeyAction, string(action),
				logKeyInstance, instance, logKeyTarget, res.Target, logKeyDuration, res.Duration)
		} else {
			r.logger.Error("routing target failed", logKeyCluster, cluster, logKeyEpoch, epoch, logKeyAction, string(action),
				logKeyInstance, instance, logKeyTarget, res.Target, logKeyErr, res.Error)
		}
	}
	if len(targets) == 0 {
		r.logger.Debug("no push targets; routing relies on health checks", logKeyCluster, cluster, logKeyEpoch, epoch)
	}
	if !report.OK() {
		return report, &RouteError{Report: report}
	}
	return report, nil
}

// Close closes every target that has a Close method. It is safe to call more
// than once; after Close, Route and Unroute return ErrClosed.
func (r *Router) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	var targets []Target
	for _, c := range r.clusters {
		targets = append(targets, c.targets...)
	}
	r.mu.Unlock()
	var errs []error
	for _, t := range targets {
		if cl, ok := t.(interface{ Close() error }); ok {
			if err := cl.Close(); err != nil {
				errs = append(errs, fmt.Errorf("closing %s: %w", t.Name(), err))
			}
		}
	}
	return errors.Join(errs...)
}
