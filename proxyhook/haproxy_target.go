package proxyhook

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// HAProxyConfig is one HAProxy instance in a cluster's routing section.
//
//	haproxy:
//	  - name: lb1
//	    runtime_api: unix:/run/haproxy/admin.sock   # or tcp:10.0.0.5:9999
//	    write_servers:                              # instance name -> backend/server
//	      db1: mysql_write/db1
//	      db2: mysql_write/db2
//	      db3: mysql_write/db3
type HAProxyConfig struct {
	// Name labels the instance in reports and logs.
	Name string `yaml:"name" json:"name"`
	// RuntimeAPI is the stats socket, at admin level: unix:/path or tcp:host:port.
	RuntimeAPI string `yaml:"runtime_api" json:"runtime_api"`
	// WriteServers maps each instance of the cluster to its server in the
	// write backend, as backend/server. Names come from haproxy.cfg and are
	// never guessed: a route pushed to a guessed name could leave writes
	// pointing at the wrong server.
	WriteServers map[string]string `yaml:"write_servers" json:"write_servers"`
	// WaitForHealthCheck leaves the new primary's health to HAProxy's checks
	// against /primary instead of forcing it up ("set server health up").
	// Forcing is the default: writes move at once, and the checks still
	// correct it within fall × inter if the agent disagrees.
	WaitForHealthCheck bool `yaml:"wait_for_health_check" json:"wait_for_health_check"`
	// ServerStateFile, when set, is rewritten with "show servers state" after
	// every change, so that a reload (load-server-state-from-file) keeps the
	// route. Only useful when Regent runs on the HAProxy host and may write
	// the file named by haproxy.cfg's server-state-file.
	ServerStateFile string `yaml:"server_state_file" json:"server_state_file"`
	// Timeout bounds one runtime API command. Default 2s.
	Timeout time.Duration `yaml:"timeout" json:"timeout"`
	Retry   RetryPolicy   `yaml:"retry" json:"retry"`
}

// Validate checks the entry; instances, when not nil, are the cluster's
// instance names and every write_servers key must be one of them.
func (c HAProxyConfig) Validate(key string, instances []string) error {
	if c.Name == "" {
		return fmt.Errorf("%s.name: required (a label for reports, e.g. lb1)", key)
	}
	if c.RuntimeAPI == "" {
		return fmt.Errorf("%s.runtime_api: required (e.g. unix:/run/haproxy/admin.sock, the stats socket at level admin)", key)
	}
	if _, _, err := ParseRuntimeAddress(c.RuntimeAPI); err != nil {
		return fmt.Errorf("%s.runtime_api: %w", key, err)
	}
	if len(c.WriteServers) == 0 {
		return fmt.Errorf("%s.write_servers: required: map each instance to its backend/server in haproxy.cfg", key)
	}
	seen := map[string]string{}
	for _, inst := range slices.Sorted(maps.Keys(c.WriteServers)) {
		ref, err := ParseServerRef(c.WriteServers[inst])
		if err != nil {
			return fmt.Errorf("%s.write_servers.%s: %w", key, inst, err)
		}
		if other, dup := seen[ref.String()]; dup {
			return fmt.Errorf("%s.write_servers.%s: %s is already the server of instance %s", key, inst, ref, other)
		}
		seen[ref.String()] = inst
		if instances != nil && !slices.Contains(instances, inst) {
			return fmt.Errorf("%s.write_servers.%s: no instance of that name in the cluster (instances: %s)", key, inst, strings.Join(instances, ", "))
		}
	}
	if c.Timeout < 0 {
		return fmt.Errorf("%s.timeout: must not be negative", key)
	}
	if c.ServerStateFile != "" && !filepath.IsAbs(c.ServerStateFile) {
		return fmt.Errorf("%s.server_state_file: %q must be an absolute path", key, c.ServerStateFile)
	}
	return c.Retry.validate(key + ".retry")
}

// HAProxyTarget pushes write-route changes to one HAProxy over its runtime API.
type HAProxyTarget struct {
	cfg     HAProxyConfig
	client  *RuntimeClient
	servers map[string]ServerRef
	logger  *slog.Logger

	// unguarded is set once HAProxy turned out to have no process
	// variables (older than 2.4): attempts are then not ordered there.
	unguarded atomic.Bool
	// unconditional is set once HAProxy turned out to have no set-var
	// conditions (before 2.6): the token is then written, not raised.
	unconditional atomic.Bool
}

var _ Target = (*HAProxyTarget)(nil)

// NewHAProxyTarget validates cfg and returns the target. It does not connect.
func NewHAProxyTarget(cfg HAProxyConfig, logger *slog.Logger) (*HAProxyTarget, error) {
	if err := cfg.Validate("haproxy["+cfg.Name+"]", nil); err != nil {
		return nil, err
	}
	client, err := NewRuntimeClient(cfg.RuntimeAPI, RuntimeOptions{Timeout: cfg.Timeout, Retry: cfg.Retry})
	if err != nil {
		return nil, err
	}
	servers := make(map[string]ServerRef, len(cfg.WriteServers))
	for inst, s := range cfg.WriteServers {
		servers[inst], _ = ParseServerRef(s) // validated above
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &HAProxyTarget{cfg: cfg, client: client, servers: servers, logger: logger.With(logKeyTarget, "haproxy "+cfg.Name)}, nil
}

// Name implements Target.
func (t *HAProxyTarget) Name() string { return "haproxy " + t.cfg.Name }

// Client returns the runtime API client, for status pages and tools.
func (t *HAProxyTarget) Client() *RuntimeClient { return t.client }

// Route puts every other instance's write server in maintenance and cuts its
// sessions, then makes the new primary's server ready (and forces its health
// up unless WaitForHealthCheck). Taking the others out first means no moment
// has two write servers. It then reads the state back and checks it.
func (t *HAProxyTarget) Route(ctx context.Context, change RouteChange) (Outcome, error) {
	newRef, ok := t.servers[change.NewPrimary.Name]
	if !ok {
		return Outcome{}, permanent(fmt.Errorf("new primary %s has no entry in write_servers of haproxy %s: add \"%s: backend/server\"",
			change.NewPrimary.Name, t.cfg.Name, change.NewPrimary.Name))
	}
	order := Order{Epoch: change.Epoch, Token: change.Token}
	var steps []string
	expect := map[string]bool{}
	for _, inst := range slices.Sorted(maps.Keys(t.servers)) {
		expect[inst] = inst == change.NewPrimary.Name
		if inst == change.NewPrimary.Name {
			continue
		}
		ref := t.servers[inst]
		if err := t.guard(ctx, change.Cluster, order, &steps); err != nil {
			return Outcome{Detail: strings.Join(steps, "; ")}, err
		}
		if err := t.takeOut(ctx, ref); err != nil {
			return Outcome{Detail: strings.Join(steps, "; ")}, err
		}
		steps = append(steps, ref.String()+" maint, sessions cut")
	}
	if err := t.guard(ctx, change.Cluster, order, &steps); err != nil {
		return Outcome{Detail: strings.Join(steps, "; ")}, err
	}
	if err := t.client.SetServerState(ctx, newRef, StateReady); err != nil {
		return Outcome{Detail: strings.Join(steps, "; ")}, err
	}
	if t.cfg.WaitForHealthCheck {
		steps = append(steps, newRef.String()+" ready (health from checks)")
	} else {
		if err := t.client.SetServerHealth(ctx, newRef, HealthUp); err != nil {
			return Outcome{Detail: strings.Join(steps, "; ")}, err
		}
		steps = append(steps, newRef.String()+" ready, health up")
	}
	return t.finish(ctx, change.Cluster, order, expect, steps)
}

// finish reads the route back and checks that no later attempt superseded
// this one meanwhile (its own check, or a lower attempt's overwrite of the
// recorded token, would show here), then saves the server state.
func (t *HAProxyTarget) finish(ctx context.Context, cluster string, order Order, expect map[string]bool, steps []string) (Outcome, error) {
	if err := t.verify(ctx, expect); err != nil {
		// A later attempt's commands interleaved with ours: say so, not
		// only that the state differs.
		if gerr := t.guard(ctx, cluster, order, &steps); errors.Is(gerr, ErrStaleEpoch) {
			return Outcome{Detail: strings.Join(steps, "; ")}, gerr
		}
		return Outcome{Detail: strings.Join(steps, "; ")}, err
	}
	if err := t.guard(ctx, cluster, order, &steps); err != nil {
		return Outcome{Detail: strings.Join(steps, "; ")}, err
	}
	steps = append(steps, "verified")
	t.saveState(ctx, &steps)
	return Outcome{Detail: strings.Join(steps, "; ")}, nil
}

// RouteVar is the HAProxy process variable (proc.NAME) in which Regent keeps
// the highest routing token it applied for a cluster: the cluster's name
// when it is made of letters, digits and _ only, and its hex encoding
// otherwise, so that two clusters never share one.
func RouteVar(cluster string) string {
	if validProcVar(cluster) == nil {
		return "regent_route_" + cluster
	}
	return "regent_route_x" + hex.EncodeToString([]byte(cluster))
}

// guard orders attempts over this HAProxy (see Order): two leaders, or a
// deposed leader's late retry, can push to it at once, and its runtime API
// has no compare-and-set. So HAProxy keeps the highest token applied in a
// process variable, and guard runs before the first and every later command
// that changes a server: it refuses the attempt when a higher token is
// recorded (a permanent StaleEpochError, nothing more is changed) and
// raises the recorded token to this attempt's when it is lower. The raise
// is one conditional command (RaiseProcVar) that cannot lower a higher
// token a successor recorded after this attempt's read; a write there let
// a deposed leader's whole route through. A superseded attempt thus stops
// at its next command; at most the one in flight lands after its
// successor's, and the leader's periodic reconciliation (and the health
// checks for the new primary) put that right. A change without a token, or
// an HAProxy older than 2.4, is not guarded; before 2.6 the token is
// written, not raised (both are logged once). The variable lives until
// HAProxy restarts or reloads.
func (t *HAProxyTarget) guard(ctx context.Context, cluster string, o Order, steps *[]string) error {
	if o.Token == 0 || t.unguarded.Load() {
		return nil
	}
	name := RouteVar(cluster)
	cur, ok, err := t.client.ProcVar(ctx, name)
	if errors.Is(err, ErrNoProcVars) {
		if !t.unguarded.Swap(true) {
			t.logger.Warn("this haproxy cannot order routing attempts (no process variables before HAProxy 2.4): a deposed leader's late push is put right only by the next reconciliation", logKeyErr, err)
		}
		*steps = append(*steps, "attempts not ordered (haproxy older than 2.4)")
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the routing token of cluster %q: %w", cluster, err)
	}
	if ok && cur > 0 && uint64(cur) > o.Token {
		t.logger.Warn("refused superseded routing attempt", logKeyCluster, cluster, logKeyEpoch, o.Epoch, logKeyToken, o.Token, "applied_token", cur)
		return permanent(&StaleEpochError{Cluster: cluster, Epoch: o.Epoch, Token: o.Token, AppliedToken: uint64(cur), Where: t.Name()})
	}
	if ok && uint64(cur) == o.Token {
		return nil
	}
	if o.Token > math.MaxInt64 {
		return permanent(fmt.Errorf("routing token %d does not fit an haproxy integer", o.Token))
	}
	if !t.unconditional.Load() {
		// Raise, never lower: a successor may have recorded a higher
		// token since the read above.
		now, err := t.client.RaiseProcVar(ctx, name, int64(o.Token))
		switch {
		case err == nil:
			if uint64(now) > o.Token {
				t.logger.Warn("refused superseded routing attempt", logKeyCluster, cluster, logKeyEpoch, o.Epoch, logKeyToken, o.Token, "applied_token", now)
				return permanent(&StaleEpochError{Cluster: cluster, Epoch: o.Epoch, Token: o.Token, AppliedToken: uint64(now), Where: t.Name()})
			}
			return nil
		case errors.Is(err, ErrNoConditionalVars):
			if !t.unconditional.Swap(true) {
				t.logger.Warn("this haproxy cannot raise the routing token atomically (set-var conditions came with HAProxy 2.6): two leaders pushing at the same moment may interleave until the next reconciliation", logKeyErr, err)
			}
		default:
			return fmt.Errorf("recording the routing token of cluster %q: %w", cluster, err)
		}
	}
	if err := t.client.SetProcVar(ctx, name, int64(o.Token)); err != nil {
		return fmt.Errorf("recording the routing token of cluster %q: %w", cluster, err)
	}
	return nil
}

// Unroute puts the old primary's write server in maintenance and cuts its
// sessions.
func (t *HAProxyTarget) Unroute(ctx context.Context, req UnrouteRequest) (Outcome, error) {
	ref, ok := t.servers[req.Old.Name]
	if !ok {
		return Outcome{}, permanent(fmt.Errorf("old primary %s has no entry in write_servers of haproxy %s: add \"%s: backend/server\"",
			req.Old.Name, t.cfg.Name, req.Old.Name))
	}
	order := Order{Epoch: req.Epoch, Token: req.Token}
	var steps []string
	if err := t.guard(ctx, req.Cluster, order, &steps); err != nil {
		return Outcome{}, err
	}
	if err := t.takeOut(ctx, ref); err != nil {
		return Outcome{Detail: strings.Join(steps, "; ")}, err
	}
	steps = append(steps, ref.String()+" maint, sessions cut")
	return t.finish(ctx, req.Cluster, order, map[string]bool{req.Old.Name: false}, steps)
}

func (t *HAProxyTarget) takeOut(ctx context.Context, ref ServerRef) error {
	if err := t.client.SetServerState(ctx, ref, StateMaint); err != nil {
		return err
	}
	// maint keeps open sessions; a write session left on an old primary
	// would keep writing until fencing, so cut them now.
	return t.client.ShutdownSessions(ctx, ref)
}

// ErrRouteNotApplied: HAProxy's state read back after a change does not
// match the change.
var ErrRouteNotApplied = errors.New("routing state read back does not match the change")

// verify reads the write backends back and checks them against expect:
// instance name -> true when its server must take new connections (not in
// maintenance or draining, and running unless health is left to checks),
// false when it must be in forced maintenance.
func (t *HAProxyTarget) verify(ctx context.Context, expect map[string]bool) error {
	backends := map[string]bool{}
	for inst := range expect {
		backends[t.servers[inst].Backend] = true
	}
	got := map[ServerRef]ServerState{}
	for _, b := range slices.Sorted(maps.Keys(backends)) {
		states, err := t.client.ShowServersState(ctx, b)
		if err != nil {
			return fmt.Errorf("reading back backend %s: %w", b, err)
		}
		for _, s := range states {
			got[s.Ref()] = s
		}
	}
	var problems []string
	for _, inst := range slices.Sorted(maps.Keys(expect)) {
		ref := t.servers[inst]
		s, ok := got[ref]
		switch {
		case !ok:
			problems = append(problems, ref.String()+" is missing")
		case expect[inst] && (s.AdminState.InMaint() || s.AdminState.Draining()):
			problems = append(problems, fmt.Sprintf("%s (new primary %s) is %s", ref, inst, s.AdminState))
		case expect[inst] && !t.cfg.WaitForHealthCheck && s.OpState != OpRunning:
			problems = append(problems, fmt.Sprintf("%s (new primary %s) is %s", ref, inst, s.OpState))
		case !expect[inst] && s.AdminState&AdminForcedMaint == 0:
			problems = append(problems, fmt.Sprintf("%s (%s) is not in maint (%s)", ref, inst, s.AdminState))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: haproxy %s: %s (is another tool or an operator changing it?)", ErrRouteNotApplied, t.cfg.Name, strings.Join(problems, "; "))
	}
	return nil
}

// saveState rewrites ServerStateFile. A failure is logged and noted in the
// detail, not returned: the route itself is in place, and health checks
// converge after a reload anyway.
func (t *HAProxyTarget) saveState(ctx context.Context, steps *[]string) {
	if t.cfg.ServerStateFile == "" {
		return
	}
	if err := t.SaveServerState(ctx); err != nil {
		t.logger.Warn("could not save haproxy server state; a reload would start from haproxy.cfg until health checks converge", logKeyErr, err)
		*steps = append(*steps, "server state NOT saved: "+err.Error())
		return
	}
	*steps = append(*steps, "server state saved")
}

// SaveServerState writes "show servers state" to ServerStateFile atomically
// (a temporary file in the same directory, then rename).
func (t *HAProxyTarget) SaveServerState(ctx context.Context) error {
	if t.cfg.ServerStateFile == "" {
		return errors.New("no server_state_file configured")
	}
	state, err := t.client.RawServersState(ctx)
	if err != nil {
		return err
	}
	return writeFileAtomic(t.cfg.ServerStateFile, []byte(state), 0o644)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	return nil
}
