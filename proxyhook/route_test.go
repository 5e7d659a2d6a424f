package proxyhook

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTarget records the changes it receives and fails on demand.
type fakeTarget struct {
	name string
	err  error
	// block, when set, holds Route until closed (to test serialisation).
	block chan struct{}

	mu       sync.Mutex
	routes   []RouteChange
	unroutes []UnrouteRequest
	closed   int
}

var _ Target = (*fakeTarget)(nil)

func (f *fakeTarget) Name() string { return f.name }

func (f *fakeTarget) Route(ctx context.Context, c RouteChange) (Outcome, error) {
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return Outcome{}, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes = append(f.routes, c)
	return Outcome{Detail: "routed to " + c.NewPrimary.Name}, f.err
}

func (f *fakeTarget) Unroute(_ context.Context, r UnrouteRequest) (Outcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unroutes = append(f.unroutes, r)
	return Outcome{Detail: "unrouted " + r.Old.Name}, f.err
}

func (f *fakeTarget) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed++
	return nil
}

func (f *fakeTarget) routeCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.routes)
}

func TestRouterEpochOrdering(t *testing.T) {
	tests := []struct {
		name      string
		seed      uint64
		epochs    []uint64 // applied in order
		wantStale []bool
	}{
		{name: "growing epochs", epochs: []uint64{1, 2, 5}, wantStale: []bool{false, false, false}},
		{name: "same epoch again is a retry, allowed", epochs: []uint64{3, 3}, wantStale: []bool{false, false}},
		{name: "older epoch refused", epochs: []uint64{4, 3}, wantStale: []bool{false, true}},
		{name: "refusal does not lower the bar", epochs: []uint64{4, 2, 3, 4}, wantStale: []bool{false, true, true, false}},
		{name: "seeded from Raft", seed: 10, epochs: []uint64{9, 10, 11}, wantStale: []bool{true, false, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRouter(testLogger(t))
			ft := &fakeTarget{name: "f"}
			r.SetTargets("c1", ft)
			r.SeedEpoch("c1", tc.seed)
			for i, e := range tc.epochs {
				_, err := r.Route(t.Context(), RouteChange{Cluster: "c1", Epoch: e, NewPrimary: ep2})
				var stale *StaleEpochError
				if got := errors.As(err, &stale); got != tc.wantStale[i] {
					t.Fatalf("change %d (epoch %d): err = %v, want stale=%v", i, e, err, tc.wantStale[i])
				}
				if stale != nil && !errors.Is(err, ErrStaleEpoch) {
					t.Error("StaleEpochError does not match ErrStaleEpoch")
				}
			}
			wantRouted := 0
			for _, s := range tc.wantStale {
				if !s {
					wantRouted++
				}
			}
			if ft.routeCount() != wantRouted {
				t.Errorf("target saw %d changes, want %d (a stale change must touch nothing)", ft.routeCount(), wantRouted)
			}
		})
	}
}

func TestRouterTokenOrdering(t *testing.T) {
	r := NewRouter(testLogger(t))
	ft := &fakeTarget{name: "f"}
	r.SetTargets("c1", ft)
	steps := []struct {
		epoch, token uint64
		stale        bool
	}{
		{2, 40, false}, // an operation's push at its planned epoch
		{1, 55, false}, // the next leader's reconciliation at the committed epoch
		{2, 40, true},  // the deposed leader's retry
		{3, 54, true},  // a higher epoch does not make up for a lower token
		{1, 55, false}, // the same attempt again
		{2, 60, false},
	}
	for i, st := range steps {
		_, err := r.Route(t.Context(), RouteChange{Cluster: "c1", Epoch: st.epoch, Token: st.token, NewPrimary: ep2})
		if got := errors.Is(err, ErrStaleEpoch); got != st.stale {
			t.Fatalf("change %d (epoch %d token %d): err = %v, want stale=%v", i, st.epoch, st.token, err, st.stale)
		}
	}
	if ft.routeCount() != 4 {
		t.Errorf("target saw %d changes, want 4", ft.routeCount())
	}
	var stale *StaleEpochError
	_, err := r.UnrouteRequest(t.Context(), UnrouteRequest{Cluster: "c1", Epoch: 9, Token: 59, Old: ep2})
	if !errors.As(err, &stale) || stale.AppliedToken != 60 || !strings.Contains(err.Error(), "attempt 60 was already applied") {
		t.Fatalf("superseded unroute: %v", err)
	}
}

func TestRouterUnrouteThenRouteSameEpoch(t *testing.T) {
	r := NewRouter(testLogger(t))
	ft := &fakeTarget{name: "f"}
	r.SetTargets("c1", ft)
	if _, err := r.Unroute(t.Context(), "c1", 5, ep1); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Route(t.Context(), RouteChange{Cluster: "c1", Epoch: 5, OldPrimary: ep1, NewPrimary: ep2}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Unroute(t.Context(), "c1", 4, ep2); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("stale unroute: %v", err)
	}
	if len(ft.unroutes) != 1 || len(ft.routes) != 1 {
		t.Errorf("unroutes %d routes %d", len(ft.unroutes), len(ft.routes))
	}
	if r.AppliedEpoch("c1") != 5 {
		t.Errorf("applied epoch = %d", r.AppliedEpoch("c1"))
	}
}

func TestRouterReportsEveryTarget(t *testing.T) {
	r := NewRouter(testLogger(t))
	ok1, bad, ok2 := &fakeTarget{name: "haproxy lb1"}, &fakeTarget{name: "haproxy lb2", err: ErrNotAdmin}, &fakeTarget{name: "proxysql p"}
	r.SetTargets("c1", ok1, bad, ok2)
	rep, err := r.Route(t.Context(), RouteChange{Cluster: "c1", Epoch: 1, NewPrimary: ep2})
	if !errors.Is(err, ErrRouteIncomplete) || !errors.Is(err, ErrNotAdmin) {
		t.Fatalf("err = %v, want ErrRouteIncomplete wrapping the target's error", err)
	}
	var re *RouteError
	if !errors.As(err, &re) || re.Report.Cluster != "c1" {
		t.Fatalf("not a RouteError: %v", err)
	}
	if rep.OK() || len(rep.Results) != 3 || len(rep.Failed()) != 1 || rep.Failed()[0].Target != "haproxy lb2" {
		t.Fatalf("report = %+v", rep)
	}
	if ok1.routeCount() != 1 || ok2.routeCount() != 1 {
		t.Error("a failing target kept the others from being routed")
	}
	if !strings.Contains(err.Error(), "haproxy lb2") || !strings.Contains(err.Error(), "1 of 3") {
		t.Errorf("message %q should name the failed target", err)
	}
	if rep.Results[0].Detail != "routed to db2" || rep.Results[0].Target != "haproxy lb1" {
		t.Errorf("results keep target order and detail: %+v", rep.Results)
	}
}

func TestRouterNoTargetsAndUnknownCluster(t *testing.T) {
	r := NewRouter(nil)
	r.SetTargets("pullonly")
	rep, err := r.Route(t.Context(), RouteChange{Cluster: "pullonly", Epoch: 1, NewPrimary: ep1})
	if err != nil || !rep.OK() {
		t.Fatalf("health-check-only cluster: %v %+v", err, rep)
	}
	if _, err := r.Route(t.Context(), RouteChange{Cluster: "nope", Epoch: 1, NewPrimary: ep1}); !errors.Is(err, ErrUnknownCluster) {
		t.Fatalf("unknown cluster: %v", err)
	}
	if _, err := r.Route(t.Context(), RouteChange{Cluster: "pullonly", Epoch: 1}); err == nil {
		t.Fatal("a change without a new primary was accepted")
	}
	if _, err := r.Unroute(t.Context(), "pullonly", 1, Endpoint{}); err == nil {
		t.Fatal("an unroute without an old primary was accepted")
	}
}

func TestRouterSerialisesAClusterAndHonoursCtx(t *testing.T) {
	r := NewRouter(testLogger(t))
	block := make(chan struct{})
	ft := &fakeTarget{name: "slow", block: block}
	r.SetTargets("c1", ft)
	done := make(chan error, 1)
	go func() {
		_, err := r.Route(context.Background(), RouteChange{Cluster: "c1", Epoch: 1, NewPrimary: ep1})
		done <- err
	}()
	// Wait until the first change holds the cluster's lock.
	deadline := time.Now().Add(5 * time.Second)
	for r.AppliedEpoch("c1") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("first change never started")
		}
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := r.Route(ctx, RouteChange{Cluster: "c1", Epoch: 2, NewPrimary: ep2}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second change while the first runs: %v, want to wait and give up with ctx", err)
	}
	close(block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestRouterClose(t *testing.T) {
	r := NewRouter(nil)
	ft := &fakeTarget{name: "f"}
	r.SetTargets("c1", ft)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if ft.closed != 1 {
		t.Errorf("target closed %d times, want 1", ft.closed)
	}
	if _, err := r.Route(t.Context(), RouteChange{Cluster: "c1", Epoch: 1, NewPrimary: ep1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("route after close: %v", err)
	}
}

func TestRouteHooksAsTarget(t *testing.T) {
	cr, err := NewClusterRouting(RoutingConfig{Hooks: []HookConfig{
		{Name: "dns", Command: sh(`test "$REGENT_NEW_PRIMARY_ADDR" = 10.0.0.2:3306 && echo "dns -> $REGENT_NEW_PRIMARY"`), Events: []HookEvent{EventRoute}},
		{Name: "page", Command: sh(`exit 1`), Events: []HookEvent{EventUnroute}},
		{Name: "notify", Command: sh(`true`), Events: []HookEvent{EventPostFailover}},
	}}, HooksOptions{}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(cr.Targets) != 1 || cr.Targets[0].Name() != "hooks" {
		t.Fatalf("targets = %v, want the hooks target only", cr.Targets)
	}
	r := NewRouter(testLogger(t))
	r.SetTargets("c1", cr.Targets...)
	rep, err := r.Route(t.Context(), RouteChange{Cluster: "c1", Epoch: 3, OldPrimary: ep1, NewPrimary: ep2})
	if err != nil {
		t.Fatalf("route: %v", err)
	}
	if len(rep.Results[0].Hooks) != 1 || !strings.Contains(rep.Results[0].Hooks[0].Output, "dns -> db2") {
		t.Errorf("hook output not in the report: %+v", rep.Results[0])
	}
	rep, err = r.Unroute(t.Context(), "c1", 3, ep1)
	if !errors.Is(err, ErrHookFailed) || rep.OK() {
		t.Fatalf("failed unroute hook must fail its target: %v %+v", err, rep)
	}
}

func TestRoutingConfigValidate(t *testing.T) {
	instances := []string{"db1", "db2", "db3"}
	hap := func(name string) HAProxyConfig {
		return HAProxyConfig{Name: name, RuntimeAPI: "unix:/run/haproxy/admin.sock",
			WriteServers: map[string]string{"db1": "mysql_write/db1", "db2": "mysql_write/db2"}}
	}
	tests := []struct {
		name    string
		cfg     RoutingConfig
		wantErr string
	}{
		{name: "empty is valid (health checks only)", cfg: RoutingConfig{}},
		{name: "two haproxies", cfg: RoutingConfig{HAProxy: []HAProxyConfig{hap("lb1"), hap("lb2")}}},
		{name: "duplicate haproxy names", cfg: RoutingConfig{HAProxy: []HAProxyConfig{hap("lb1"), hap("lb1")}}, wantErr: "routing.haproxy[1].name"},
		{name: "haproxy without runtime api", cfg: RoutingConfig{HAProxy: []HAProxyConfig{{Name: "x", WriteServers: map[string]string{"db1": "b/s"}}}},
			wantErr: "routing.haproxy[0].runtime_api: required"},
		{name: "haproxy bad server ref", cfg: RoutingConfig{HAProxy: []HAProxyConfig{{Name: "x", RuntimeAPI: "/s", WriteServers: map[string]string{"db1": "db1"}}}},
			wantErr: "write_servers.db1"},
		{name: "haproxy server name with a command separator", cfg: RoutingConfig{HAProxy: []HAProxyConfig{{Name: "x", RuntimeAPI: "/s",
			WriteServers: map[string]string{"db1": "b/s;shutdown"}}}}, wantErr: "write_servers.db1"},
		{name: "haproxy unknown instance", cfg: RoutingConfig{HAProxy: []HAProxyConfig{{Name: "x", RuntimeAPI: "/s",
			WriteServers: map[string]string{"db9": "b/s"}}}}, wantErr: "write_servers.db9: no instance"},
		{name: "haproxy same server twice", cfg: RoutingConfig{HAProxy: []HAProxyConfig{{Name: "x", RuntimeAPI: "/s",
			WriteServers: map[string]string{"db1": "b/s", "db2": "b/s"}}}}, wantErr: "already the server of instance db1"},
		{name: "haproxy relative state file", cfg: RoutingConfig{HAProxy: []HAProxyConfig{func() HAProxyConfig {
			c := hap("x")
			c.ServerStateFile = "state"
			return c
		}()}}, wantErr: "absolute"},
		{name: "bad tcp runtime api", cfg: RoutingConfig{HAProxy: []HAProxyConfig{func() HAProxyConfig {
			c := hap("x")
			c.RuntimeAPI = "tcp:localhost"
			return c
		}()}}, wantErr: "runtime_api"},
		{name: "bad retry", cfg: RoutingConfig{HAProxy: []HAProxyConfig{func() HAProxyConfig {
			c := hap("x")
			c.Retry = RetryPolicy{Attempts: 3, InitialBackoff: time.Second, MaxBackoff: time.Millisecond}
			return c
		}()}}, wantErr: "retry.initial_backoff"},
		{name: "hook names unique", cfg: RoutingConfig{Hooks: []HookConfig{
			{Name: "a", Command: []string{"/bin/true"}, Events: []HookEvent{EventFence}},
			{Name: "a", Command: []string{"/bin/true"}, Events: []HookEvent{EventFence}},
		}}, wantErr: "routing.hooks[1].name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, tc.cfg.Validate("routing", instances), tc.wantErr)
		})
	}
}
