package proxyhook

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func healthyPrimary() LocalState {
	return LocalState{Cluster: "c1", Instance: "db1", Epoch: 7, Reachable: true, IsPrimary: true, Writable: true, LeaseHeld: true}
}

func healthyReplica() LocalState {
	return LocalState{Cluster: "c1", Instance: "db2", Epoch: 7, Reachable: true, Replicating: true,
		IOThreadRunning: true, SQLThreadRunning: true, Lag: 2 * time.Second, LagKnown: true}
}

func TestDecide(t *testing.T) {
	with := func(s LocalState, f func(*LocalState)) LocalState { f(&s); return s }
	lag := func(d time.Duration) HealthQuery { return HealthQuery{MaxLag: d, HasMaxLag: true} }
	tests := []struct {
		name       string
		check      Check
		state      LocalState
		query      HealthQuery
		wantStatus int
		wantRole   string
	}{
		// /primary: all three conditions, nothing less.
		{name: "primary: current primary, writable, lease held", check: CheckPrimary, state: healthyPrimary(), wantStatus: 200, wantRole: "primary"},
		{name: "primary: writable but not Raft's primary (old primary back from the dead)", check: CheckPrimary,
			state: with(healthyPrimary(), func(s *LocalState) { s.IsPrimary = false }), wantStatus: 503, wantRole: "writable-not-primary"},
		{name: "primary: lease lost (partitioned from the quorum)", check: CheckPrimary,
			state: with(healthyPrimary(), func(s *LocalState) { s.LeaseHeld = false }), wantStatus: 503, wantRole: "primary-not-writable"},
		{name: "primary: read-only (fenced, or promotion not finished)", check: CheckPrimary,
			state: with(healthyPrimary(), func(s *LocalState) { s.Writable = false }), wantStatus: 503, wantRole: "primary-not-writable"},
		{name: "primary: a switchover's intent is recorded: out of routing before the fence", check: CheckPrimary,
			state: with(healthyPrimary(), func(s *LocalState) { s.Replacing = "switchover 0f3a" }), wantStatus: 503, wantRole: "primary-being-replaced"},
		{name: "primary: mysqld down", check: CheckPrimary,
			state: with(healthyPrimary(), func(s *LocalState) { s.Reachable = false }), wantStatus: 503, wantRole: "unreachable"},
		{name: "primary: a replica is never the primary", check: CheckPrimary, state: healthyReplica(), wantStatus: 503, wantRole: "replica"},
		{name: "primary: zero state", check: CheckPrimary, state: LocalState{}, wantStatus: 503, wantRole: "unreachable"},

		// /replica
		{name: "replica: healthy, no bound", check: CheckReplica, state: healthyReplica(), wantStatus: 200, wantRole: "replica"},
		{name: "replica: lag within bound", check: CheckReplica, state: healthyReplica(), query: lag(5 * time.Second), wantStatus: 200, wantRole: "replica"},
		{name: "replica: lag equal to bound", check: CheckReplica, state: healthyReplica(), query: lag(2 * time.Second), wantStatus: 200, wantRole: "replica"},
		{name: "replica: lag above bound", check: CheckReplica, state: healthyReplica(), query: lag(time.Second), wantStatus: 503, wantRole: "replica"},
		{name: "replica: max_lag=0 needs zero lag", check: CheckReplica, state: healthyReplica(), query: lag(0), wantStatus: 503, wantRole: "replica"},
		{name: "replica: lag unknown with a bound", check: CheckReplica,
			state: with(healthyReplica(), func(s *LocalState) { s.LagKnown = false }), query: lag(time.Hour), wantStatus: 503, wantRole: "replica"},
		{name: "replica: lag unknown without a bound", check: CheckReplica,
			state: with(healthyReplica(), func(s *LocalState) { s.LagKnown = false }), wantStatus: 200, wantRole: "replica"},
		{name: "replica: IO thread stopped", check: CheckReplica,
			state: with(healthyReplica(), func(s *LocalState) { s.IOThreadRunning = false }), wantStatus: 503, wantRole: "replica"},
		{name: "replica: SQL thread stopped", check: CheckReplica,
			state: with(healthyReplica(), func(s *LocalState) { s.SQLThreadRunning = false }), wantStatus: 503, wantRole: "replica"},
		{name: "replica: both threads stopped", check: CheckReplica,
			state: with(healthyReplica(), func(s *LocalState) { s.IOThreadRunning, s.SQLThreadRunning = false, false }), wantStatus: 503, wantRole: "replica"},
		{name: "replica: in maintenance serves no reads", check: CheckReplica,
			state: with(healthyReplica(), func(s *LocalState) { s.Maintenance = "until 2026-12-08T01:00:00Z by alice: disk swap" }), wantStatus: 503, wantRole: "replica"},
		{name: "read-only: a replica in maintenance serves no reads", check: CheckReadOnly,
			state: with(healthyReplica(), func(s *LocalState) { s.Maintenance = "until 2026-12-08T01:00:00Z by alice: disk swap" }), wantStatus: 503, wantRole: "replica"},
		{name: "replica: not replicating (fenced old primary)", check: CheckReplica,
			state: LocalState{Reachable: true}, wantStatus: 503, wantRole: "standalone-read-only"},
		{name: "replica: the primary is not a replica", check: CheckReplica, state: healthyPrimary(), wantStatus: 503, wantRole: "primary"},
		{name: "replica: unreachable", check: CheckReplica,
			state: with(healthyReplica(), func(s *LocalState) { s.Reachable = false }), wantStatus: 503, wantRole: "unreachable"},

		// /read-only: anything that serves reads.
		{name: "read-only: primary", check: CheckReadOnly, state: healthyPrimary(), query: lag(0), wantStatus: 200, wantRole: "primary"},
		{name: "read-only: replica within bound", check: CheckReadOnly, state: healthyReplica(), query: lag(10 * time.Second), wantStatus: 200, wantRole: "replica"},
		{name: "read-only: replica above bound", check: CheckReadOnly, state: healthyReplica(), query: lag(time.Second), wantStatus: 503, wantRole: "replica"},
		{name: "read-only: fenced primary (lease lost) is not served", check: CheckReadOnly,
			state: with(healthyPrimary(), func(s *LocalState) { s.LeaseHeld = false }), wantStatus: 503, wantRole: "primary-not-writable"},

		// /health
		{name: "health: reachable", check: CheckHealth, state: LocalState{Reachable: true}, wantStatus: 200, wantRole: "standalone-read-only"},
		{name: "health: unreachable", check: CheckHealth, state: LocalState{}, wantStatus: 503, wantRole: "unreachable"},

		{name: "unknown check", check: Check("writer"), state: healthyPrimary(), wantStatus: 404, wantRole: "primary"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.check, tc.state, tc.query)
			if d.Status != tc.wantStatus || d.Role != tc.wantRole {
				t.Errorf("Decide = status %d role %q (%s), want %d %q", d.Status, d.Role, d.Reason, tc.wantStatus, tc.wantRole)
			}
			if d.OK != (d.Status == 200) {
				t.Errorf("OK = %v with status %d", d.OK, d.Status)
			}
			if d.Reason == "" {
				t.Error("empty reason: a person reading the body must learn why")
			}
		})
	}
}

func TestParseHealthQuery(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		want    HealthQuery
		wantErr string
	}{
		{name: "absent", query: "", want: HealthQuery{}},
		{name: "integer seconds", query: "max_lag=10", want: HealthQuery{MaxLag: 10 * time.Second, HasMaxLag: true}},
		{name: "fractional seconds", query: "max_lag=0.5", want: HealthQuery{MaxLag: 500 * time.Millisecond, HasMaxLag: true}},
		{name: "zero", query: "max_lag=0", want: HealthQuery{HasMaxLag: true}},
		{name: "go duration", query: "max_lag=1500ms", want: HealthQuery{MaxLag: 1500 * time.Millisecond, HasMaxLag: true}},
		{name: "other parameters are ignored", query: "x=1&max_lag=3", want: HealthQuery{MaxLag: 3 * time.Second, HasMaxLag: true}},
		{name: "negative", query: "max_lag=-1", wantErr: "between 0 and"},
		{name: "negative duration", query: "max_lag=-1s", wantErr: "negative"},
		{name: "word", query: "max_lag=ten", wantErr: "neither seconds"},
		{name: "empty", query: "max_lag=", wantErr: "empty"},
		{name: "NaN", query: "max_lag=NaN", wantErr: "between 0 and"},
		{name: "infinite", query: "max_lag=Inf", wantErr: "between 0 and"},
		{name: "twice", query: "max_lag=1&max_lag=2", wantErr: "2 times"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tc.query)
			got, err := ParseHealthQuery(q)
			checkErr(t, err, tc.wantErr)
			if tc.wantErr == "" && got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func FuzzParseHealthQuery(f *testing.F) {
	for _, s := range []string{"max_lag=10", "max_lag=0.25", "max_lag=1h", "max_lag=-0", "max_lag=1e400", "max_lag=%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		hq, err := ParseHealthQuery(q)
		if err == nil && hq.MaxLag < 0 {
			t.Fatalf("%q gave a negative bound %s", raw, hq.MaxLag)
		}
	})
}

func TestHealthHandler(t *testing.T) {
	state := healthyPrimary()
	var stateErr error
	h := NewHealthHandler(func(context.Context) (LocalState, error) { return state, stateErr }, testLogger(t))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	do := func(method, path string) (int, Decision, http.Header) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var d Decision
		if method != http.MethodHead {
			if err := json.Unmarshal(body, &d); err != nil {
				t.Fatalf("%s %s: body %q is not JSON: %v", method, path, body, err)
			}
		} else if len(body) != 0 {
			t.Errorf("HEAD returned a body: %q", body)
		}
		return resp.StatusCode, d, resp.Header
	}

	tests := []struct {
		name       string
		method     string
		path       string
		setup      func()
		wantStatus int
		wantReason string
	}{
		{name: "primary 200", method: "GET", path: "/primary", wantStatus: 200},
		{name: "HEAD works for checks that use it", method: "HEAD", path: "/primary", wantStatus: 200},
		{name: "primary 503 when lease lost", method: "GET", path: "/primary",
			setup: func() { state.LeaseHeld = false }, wantStatus: 503, wantReason: "lease"},
		{name: "replica on the primary 503", method: "GET", path: "/replica", wantStatus: 503, wantReason: "not a replica"},
		{name: "replica with a healthy replica and max_lag", method: "GET", path: "/replica?max_lag=5",
			setup: func() { state = healthyReplica() }, wantStatus: 200},
		{name: "bad max_lag is 400 with a message", method: "GET", path: "/replica?max_lag=soon", wantStatus: 400, wantReason: "max_lag=soon"},
		{name: "read-only", method: "GET", path: "/read-only?max_lag=10", setup: func() { state = healthyReplica() }, wantStatus: 200},
		{name: "health", method: "GET", path: "/health", wantStatus: 200},
		{name: "state error is 503 for everything", method: "GET", path: "/health",
			setup: func() { stateErr = errors.New("probe loop not started") }, wantStatus: 503, wantReason: "probe loop not started"},
		{name: "POST refused", method: "POST", path: "/primary", wantStatus: 405, wantReason: "GET or HEAD"},
		{name: "unknown path", method: "GET", path: "/master", wantStatus: 404, wantReason: "/primary"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			state, stateErr = healthyPrimary(), nil
			if tc.setup != nil {
				tc.setup()
			}
			status, d, hdr := do(tc.method, tc.path)
			if status != tc.wantStatus {
				t.Errorf("status = %d, want %d (%+v)", status, tc.wantStatus, d)
			}
			if tc.method != http.MethodHead && d.Status != status {
				t.Errorf("body status %d differs from HTTP status %d", d.Status, status)
			}
			if tc.wantReason != "" && !containsFold(d.Reason, tc.wantReason) {
				t.Errorf("reason %q does not mention %q", d.Reason, tc.wantReason)
			}
			if hdr.Get("Cache-Control") != "no-store" {
				t.Error("health answers must not be cached")
			}
		})
	}
}

func TestHealthPathsMountOnMux(t *testing.T) {
	h := NewHealthHandler(func(context.Context) (LocalState, error) { return healthyPrimary(), nil }, nil)
	mux := http.NewServeMux()
	for _, p := range HealthPaths() {
		mux.Handle("GET "+p, h)
	}
	for _, p := range HealthPaths() {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		if rec.Code == http.StatusNotFound {
			t.Errorf("%s: 404 when mounted on a mux", p)
		}
	}
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
