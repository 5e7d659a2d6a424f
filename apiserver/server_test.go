package apiserver_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/apiserver"
	"github.com/regentdb/regent/apiserver/apiservertest"
)

const (
	admin    = apiservertest.AdminToken
	readOnly = apiservertest.ReadOnlyToken
)

// testLogger sends the server's logs to t.Log and, if buf is not nil, to
// buf as JSON lines.
func testLogger(t *testing.T, buf *lockedBuffer) *slog.Logger {
	if buf != nil {
		return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newServer starts the real apiserver over fake on a loopback httptest
// server. mutate adjusts the configuration.
func newServer(t *testing.T, fake *apiservertest.FakeBackend, mutate func(*apiserver.Config)) (*apiserver.Server, *httptest.Server) {
	t.Helper()
	cfg := apiserver.Config{
		AgentID: "a1", Version: "test", Backend: fake,
		Health: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"check":"`+strings.TrimPrefix(r.URL.Path, "/")+`"}`)
		}),
		Metrics:    apiserver.NewMetrics("test"),
		Auth:       apiserver.AuthConfig{Tokens: apiservertest.Tokens()},
		Forward:    apiserver.ForwardConfig{Scheme: "http"},
		Logger:     testLogger(t, nil),
		FollowPoll: 2 * time.Millisecond,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := apiserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) apiError(t *testing.T) api.Error {
	t.Helper()
	var e api.Error
	if err := json.Unmarshal(a.body, &e); err != nil {
		t.Fatalf("answer %d is not a JSON error: %v: %s", a.status, err, a.body)
	}
	if e.Message == "" || e.Code == "" {
		t.Fatalf("error answer without message or code: %s", a.body)
	}
	return e
}

func call(t *testing.T, ts *httptest.Server, method, path, token, body string, hdr ...string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

func TestAuthorizationPerRoute(t *testing.T) {
	type route struct {
		name, method, path, body string
		open                     bool // needs no credential
		mutating                 bool // needs admin
		okStatus                 int
		setup                    func(*apiservertest.FakeBackend) // the state the call needs
	}
	routes := []route{
		{name: "health primary", method: "GET", path: "/primary", open: true, okStatus: 200},
		{name: "health replica", method: "GET", path: "/replica?max_lag=5", open: true, okStatus: 200},
		{name: "health read-only", method: "GET", path: "/read-only", open: true, okStatus: 200},
		{name: "health", method: "GET", path: "/health", open: true, okStatus: 200},
		{name: "metrics", method: "GET", path: "/metrics", open: true, okStatus: 200},
		{name: "status page", method: "GET", path: "/", okStatus: 200},
		{name: "status", method: "GET", path: "/v1/status", okStatus: 200},
		{name: "cluster", method: "GET", path: "/v1/clusters/main", okStatus: 200},
		{name: "history", method: "GET", path: "/v1/clusters/main/history?limit=5", okStatus: 200},
		{name: "clusters", method: "GET", path: "/v1/clusters?limit=5&problems_only=true", okStatus: 200},
		{name: "check", method: "GET", path: "/v1/clusters/main/check", okStatus: 200},
		{name: "settings", method: "GET", path: "/v1/clusters/main/config", okStatus: 200},
		{name: "add instance", method: "POST", path: "/v1/clusters/main/instances", body: `{"name":"db4","address":"10.0.0.14:3306"}`, mutating: true, okStatus: 200},
		{name: "remove instance", method: "DELETE", path: "/v1/clusters/main/instances/db3", mutating: true, okStatus: 200},
		{name: "define cluster", method: "POST", path: "/v1/clusters", body: `{"definition":"name: shop\ninstances: [{name: x1, address: 10.0.1.1:3306}]\n"}`, mutating: true, okStatus: 201},
		{name: "remove cluster", method: "DELETE", path: "/v1/clusters/shop", mutating: true, okStatus: 200,
			setup: func(f *apiservertest.FakeBackend) {
				if _, err := f.DefineCluster(context.Background(), api.DefineClusterRequest{Definition: "name: shop\n"}); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "edit settings", method: "PUT", path: "/v1/clusters/main/config", body: `{"version":0,"set":"anti_flap_period: 10m"}`, mutating: true, okStatus: 200},
		{name: "operation", method: "GET", path: "/v1/clusters/main/operations/op-0006", okStatus: 200},
		{name: "members", method: "GET", path: "/v1/members", okStatus: 200},
		{name: "pause", method: "POST", path: "/v1/clusters/main/pause", body: `{"reason":"maintenance"}`, mutating: true, okStatus: 200},
		{name: "resume", method: "POST", path: "/v1/clusters/main/resume", mutating: true, okStatus: 200},
		{name: "rejoin", method: "POST", path: "/v1/clusters/main/rejoin", body: `{"instance":"db3"}`, mutating: true, okStatus: 202},
		{name: "add member", method: "POST", path: "/v1/members", body: `{"id":"a4","raft_addr":"10.0.0.14:7000","api_addr":"10.0.0.14:7443"}`, mutating: true, okStatus: 200},
		{name: "remove member", method: "DELETE", path: "/v1/members/a3", mutating: true, okStatus: 200},
		{name: "discover", method: "GET", path: "/v1/discover?address=10.0.0.11:3306", mutating: true, okStatus: 200},
		{name: "ack", method: "POST", path: "/v1/clusters/main/operations/op-0006/ack", body: `{"comment":"disk died"}`, mutating: true, okStatus: 200},
		{name: "start maintenance", method: "POST", path: "/v1/clusters/main/instances/db3/maintenance", body: `{"reason":"disk swap","for":"2h"}`, mutating: true, okStatus: 200},
		{name: "repoint", method: "POST", path: "/v1/clusters/main/instances/db3/repoint", body: `{"to":"db2"}`, mutating: true, okStatus: 200},
		{name: "end maintenance", method: "DELETE", path: "/v1/clusters/main/instances/db3/maintenance", mutating: true, okStatus: 200,
			setup: func(f *apiservertest.FakeBackend) {
				if _, err := f.StartMaintenance(context.Background(), "main", "db3", api.MaintenanceRequest{Reason: "disk swap", For: api.Duration(time.Hour)}); err != nil {
					t.Fatal(err)
				}
			}},
	}
	creds := []struct {
		name, token string
		role        apiserver.Role
	}{
		{"no token", "", apiserver.RoleNone},
		{"wrong token", "not-a-token-of-this-agent", apiserver.RoleNone},
		{"read-only token", readOnly, apiserver.RoleReadOnly},
		{"admin token", admin, apiserver.RoleAdmin},
	}
	for _, r := range routes {
		for _, c := range creds {
			t.Run(r.name+"/"+c.name, func(t *testing.T) {
				fake := apiservertest.NewFakeBackend()
				defer fake.Close()
				if r.setup != nil {
					r.setup(fake)
				}
				_, ts := newServer(t, fake, nil)
				a := call(t, ts, r.method, r.path, c.token, r.body)
				want := r.okStatus
				switch {
				case r.open:
				case c.name == "wrong token" || c.role == apiserver.RoleNone:
					want = http.StatusUnauthorized
				case r.mutating && c.role < apiserver.RoleAdmin:
					want = http.StatusForbidden
				}
				if r.open && c.name == "wrong token" {
					want = r.okStatus // open routes ignore credentials
				}
				if a.status != want {
					t.Fatalf("%s %s with %s: status %d, want %d: %s", r.method, r.path, c.name, a.status, want, a.body)
				}
				if want == http.StatusUnauthorized {
					e := a.apiError(t)
					if e.Code != api.CodeUnauthorized || !strings.Contains(e.Message, "--token-file") {
						t.Errorf("401 should say how to pass a token: %+v", e)
					}
					if a.header.Get("WWW-Authenticate") == "" {
						t.Error("401 without WWW-Authenticate")
					}
				}
				if want == http.StatusForbidden {
					if e := a.apiError(t); e.Code != api.CodeForbidden || !strings.Contains(e.Message, "admin") {
						t.Errorf("403 should say an admin credential is needed: %+v", e)
					}
				}
				if a.header.Get("X-Regent-Agent") != "a1" {
					t.Errorf("X-Regent-Agent = %q", a.header.Get("X-Regent-Agent"))
				}
			})
		}
	}
}

func TestProtectedHealthAndMetricsAndOpenPage(t *testing.T) {
	fake := apiservertest.NewFakeBackend()
	defer fake.Close()
	_, ts := newServer(t, fake, func(c *apiserver.Config) {
		c.Auth.ProtectHealth = true
		c.Auth.ProtectMetrics = true
		c.Auth.OpenStatusPage = true
	})
	for _, tc := range []struct {
		path, token string
		want        int
	}{
		{"/primary", "", 401}, {"/primary", readOnly, 200},
		{"/metrics", "", 401}, {"/metrics", readOnly, 200},
		{"/", "", 200},
	} {
		if a := call(t, ts, "GET", tc.path, tc.token, ""); a.status != tc.want {
			t.Errorf("GET %s token=%q: %d, want %d", tc.path, tc.token, a.status, tc.want)
		}
	}
}

// /liveness answers while the process serves, whatever the health of the
// local mysqld; /readiness says what the agent waits for until it is ready.
// Both are open like the health checks, and protected with them.
func TestLivenessAndReadiness(t *testing.T) {
	fake := apiservertest.NewFakeBackend()
	defer fake.Close()
	var mu sync.Mutex
	notReady := errors.New("no Raft leader known")
	ready := func(context.Context) error { mu.Lock(); defer mu.Unlock(); return notReady }
	_, ts := newServer(t, fake, func(c *apiserver.Config) {
		c.Ready = ready
		// mysqld is down: the health checks answer 503.
		c.Health = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	})
	probe := func(path string) (int, api.Probe) {
		t.Helper()
		a := call(t, ts, "GET", path, "", "")
		var p api.Probe
		if err := json.Unmarshal(a.body, &p); err != nil {
			t.Fatalf("GET %s: %d %s: %v", path, a.status, a.body, err)
		}
		return a.status, p
	}
	if a := call(t, ts, "GET", "/health", "", ""); a.status != 503 {
		t.Fatalf("/health %d, want 503 (mysqld down)", a.status)
	}
	if st, p := probe("/liveness"); st != 200 || !p.OK || p.Agent != "a1" {
		t.Errorf("/liveness with mysqld down: %d %+v, want 200 ok", st, p)
	}
	if st, p := probe("/readiness"); st != 503 || p.OK || p.Reason != notReady.Error() {
		t.Errorf("/readiness before the agent is ready: %d %+v, want 503 with the reason", st, p)
	}
	mu.Lock()
	notReady = nil
	mu.Unlock()
	if st, p := probe("/readiness"); st != 200 || !p.OK || p.Reason != "" {
		t.Errorf("/readiness once ready: %d %+v, want 200 ok", st, p)
	}
	if a := call(t, ts, "POST", "/liveness", admin, ""); a.status != 405 {
		t.Errorf("POST /liveness: %d, want 405", a.status)
	}

	_, protected := newServer(t, fake, func(c *apiserver.Config) { c.Ready = ready; c.Auth.ProtectHealth = true })
	for _, tc := range []struct {
		path, token string
		want        int
	}{{"/liveness", "", 401}, {"/liveness", readOnly, 200}, {"/readiness", "", 401}, {"/readiness", readOnly, 200}} {
		if a := call(t, protected, "GET", tc.path, tc.token, ""); a.status != tc.want {
			t.Errorf("protect_health: GET %s token=%q: %d, want %d", tc.path, tc.token, a.status, tc.want)
		}
	}
}

func TestNewRefusesNoAuth(t *testing.T) {
	fake := apiservertest.NewFakeBackend()
	defer fake.Close()
	_, err := apiserver.New(apiserver.Config{AgentID: "a1", Backend: fake})
	if err == nil || !strings.Contains(err.Error(), "disable auth explicitly") {
		t.Fatalf("New without credentials: %v", err)
	}
	if _, err := apiserver.New(apiserver.Config{AgentID: "a1", Backend: fake, Auth: apiserver.AuthConfig{Disabled: true}}); err != nil {
		t.Fatal(err)
	}
}

func TestErrorAnswers(t *testing.T) {
	fake := apiservertest.NewFakeBackend()
	defer fake.Close()
	_, ts := newServer(t, fake, nil)
	big := `{"reason":"` + strings.Repeat("x", apiserver.DefaultMaxBodyBytes) + `"}`
	tests := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		code, says               string
	}{
		{name: "unknown route", method: "GET", path: "/v1/nothing", status: 404, code: api.CodeNotFound, says: "/v1/"},
		{name: "unknown cluster", method: "GET", path: "/v1/clusters/other", status: 404, code: api.CodeNotFound, says: "main"},
		{name: "bad cluster name", method: "GET", path: "/v1/clusters/%3Cscript%3E", status: 400, code: api.CodeBadRequest, says: "not a valid name"},
		{name: "wrong method", method: "PUT", path: "/v1/clusters/main/switchover", status: 405, code: api.CodeMethodNotAllowed, says: "POST"},
		{name: "wrong method on status", method: "DELETE", path: "/v1/status", status: 405, code: api.CodeMethodNotAllowed, says: "GET"},
		{name: "history limit not a number", method: "GET", path: "/v1/clusters/main/history?limit=ten", status: 400, code: api.CodeBadRequest, says: "limit"},
		{name: "history limit too big", method: "GET", path: "/v1/clusters/main/history?limit=100000", status: 400, code: api.CodeBadRequest, says: "1000"},
		{name: "history before an unknown operation", method: "GET", path: "/v1/clusters/main/history?before=op-9999", status: 404, code: api.CodeNotFound, says: "start again without before"},
		{name: "clusters limit zero", method: "GET", path: "/v1/clusters?limit=0", status: 400, code: api.CodeBadRequest, says: "from 1 to 1000"},
		{name: "clusters problems_only not a bool", method: "GET", path: "/v1/clusters?problems_only=some", status: 400, code: api.CodeBadRequest, says: "true or false"},
		{name: "clusters after a bad name", method: "GET", path: "/v1/clusters?after=%3Cx%3E", status: 400, code: api.CodeBadRequest, says: "after"},
		{name: "follow not a bool", method: "GET", path: "/v1/clusters/main/operations/op-0006?follow=maybe", status: 400, code: api.CodeBadRequest, says: "follow"},
		{name: "unknown operation", method: "GET", path: "/v1/clusters/main/operations/op-9999", status: 404, code: api.CodeNotFound, says: "op-9999"},
		{name: "bad JSON", method: "POST", path: "/v1/clusters/main/switchover", body: `{"to":`, status: 400, code: api.CodeBadRequest, says: "JSON"},
		{name: "not JSON", method: "POST", path: "/v1/clusters/main/switchover", body: `to=db2`, status: 400, code: api.CodeBadRequest, says: "not valid JSON"},
		{name: "unknown field", method: "POST", path: "/v1/clusters/main/switchover", body: `{"target":"db2"}`, status: 400, code: api.CodeBadRequest, says: `"target" in the body (valid fields: to, wait_for_writes)`},
		{name: "wrong type", method: "POST", path: "/v1/clusters/main/failover", body: `{"to":"db2","force":"yes"}`, status: 400, code: api.CodeBadRequest, says: "force"},
		{name: "array body", method: "POST", path: "/v1/clusters/main/failover", body: `[1,2]`, status: 400, code: api.CodeBadRequest, says: "object"},
		{name: "trailing data", method: "POST", path: "/v1/clusters/main/pause", body: `{} {}`, status: 400, code: api.CodeBadRequest, says: "trailing"},
		{name: "bad duration", method: "POST", path: "/v1/clusters/main/switchover", body: `{"wait_for_writes":"soon"}`, status: 400, code: api.CodeBadRequest, says: "30s"},
		{name: "negative duration", method: "POST", path: "/v1/clusters/main/switchover", body: `{"wait_for_writes":-5}`, status: 400, code: api.CodeBadRequest, says: "out of range"},
		{name: "failover without target", method: "POST", path: "/v1/clusters/main/failover", body: `{}`, status: 400, code: api.CodeBadRequest, says: "--to"},
		{name: "bad member address", method: "POST", path: "/v1/members", body: `{"id":"a4","raft_addr":"nohost","api_addr":"h:1"}`, status: 400, code: api.CodeBadRequest, says: "raft_addr"},
		{name: "huge body", method: "POST", path: "/v1/clusters/main/pause", body: big, status: 413, code: api.CodeTooLarge, says: "larger"},
		{name: "form content type", method: "POST", path: "/v1/clusters/main/pause", body: `{}`, hdr: []string{"Content-Type", "application/x-www-form-urlencoded"}, status: 415, code: api.CodeUnsupportedMedia, says: "JSON"},
		{name: "unknown instance", method: "POST", path: "/v1/clusters/main/switchover", body: `{"to":"db9"}`, status: 404, code: api.CodeNotFound, says: "db9"},
		{name: "refused", method: "POST", path: "/v1/clusters/main/switchover", body: `{"to":"db1"}`, status: 422, code: api.CodeRefused, says: "not a replica"},
		{name: "remove unknown member", method: "DELETE", path: "/v1/members/a9", status: 404, code: api.CodeNotFound, says: "a9"},
		{name: "discover without an address", method: "GET", path: "/v1/discover", status: 400, code: api.CodeBadRequest, says: "address=HOST:PORT"},
		{name: "discover of a server that does not answer", method: "GET", path: "/v1/discover?address=10.0.0.99:5", status: 422, code: api.CodeRefused, says: "connection refused"},
		{name: "ack of an unknown operation", method: "POST", path: "/v1/clusters/main/operations/op-9999/ack", body: `{}`, status: 404, code: api.CodeNotFound, says: "op-9999"},
		{name: "ack with an unknown field", method: "POST", path: "/v1/clusters/main/operations/op-0006/ack", body: `{"note":"x"}`, status: 400, code: api.CodeBadRequest, says: `"note"`},
		{name: "maintenance without a reason", method: "POST", path: "/v1/clusters/main/instances/db3/maintenance", body: `{"for":"1h"}`, status: 400, code: api.CodeBadRequest, says: "needs a reason"},
		{name: "maintenance without a duration", method: "POST", path: "/v1/clusters/main/instances/db3/maintenance", body: `{"reason":"r"}`, status: 400, code: api.CodeBadRequest, says: "how long it lasts"},
		{name: "maintenance too long", method: "POST", path: "/v1/clusters/main/instances/db3/maintenance", body: `{"reason":"r","for":"1000h"}`, status: 400, code: api.CodeBadRequest, says: "at most 720h"},
		{name: "maintenance of an unknown instance", method: "POST", path: "/v1/clusters/main/instances/db9/maintenance", body: `{"reason":"r","for":"1h"}`, status: 404, code: api.CodeNotFound, says: "db9"},
		{name: "maintenance of the primary", method: "POST", path: "/v1/clusters/main/instances/db1/maintenance", body: `{"reason":"r","for":"1h"}`, status: 409, code: api.CodeConflict, says: "switch over first"},
		{name: "add instance without a port", method: "POST", path: "/v1/clusters/main/instances", body: `{"name":"db4","address":"10.0.0.14"}`, status: 400, code: api.CodeBadRequest, says: "not host:port"},
		{name: "add an instance already there", method: "POST", path: "/v1/clusters/main/instances", body: `{"name":"db2","address":"10.0.0.14:3306"}`, status: 400, code: api.CodeBadRequest, says: "already an instance"},
		{name: "define an empty cluster", method: "POST", path: "/v1/clusters", body: `{"definition":" "}`, status: 400, code: api.CodeBadRequest, says: "definition is empty"},
		{name: "define a cluster with an unknown field", method: "POST", path: "/v1/clusters", body: `{"yaml":"name: x"}`, status: 400, code: api.CodeBadRequest, says: `"yaml"`},
		{name: "define a cluster that exists", method: "POST", path: "/v1/clusters", body: `{"definition":"name: main\n"}`, status: 409, code: api.CodeConflict, says: "already exists"},
		{name: "remove a regent.yaml cluster", method: "DELETE", path: "/v1/clusters/main", status: 400, code: api.CodeBadRequest, says: "remove it from regent.yaml"},
		{name: "remove an unknown cluster", method: "DELETE", path: "/v1/clusters/nope", status: 404, code: api.CodeNotFound, says: "nope"},
		{name: "remove the primary", method: "DELETE", path: "/v1/clusters/main/instances/db1", status: 409, code: api.CodeConflict, says: "switch over"},
		{name: "remove an unknown instance", method: "DELETE", path: "/v1/clusters/main/instances/db9", status: 404, code: api.CodeNotFound, says: "db9"},
		{name: "edit settings with nothing to change", method: "PUT", path: "/v1/clusters/main/config", body: `{"version":0}`, status: 400, code: api.CodeBadRequest, says: "nothing to change"},
		{name: "edit settings of a restart-only key", method: "PUT", path: "/v1/clusters/main/config", body: `{"version":0,"set":"fence_after: 1s"}`, status: 400, code: api.CodeBadRequest, says: "fence_after: set only in regent.yaml"},
		{name: "edit settings against an old version", method: "PUT", path: "/v1/clusters/main/config", body: `{"version":7,"set":"anti_flap_period: 10m"}`, status: 409, code: api.CodeConflict, says: "not 7"},
		{name: "repoint with an unknown field", method: "POST", path: "/v1/clusters/main/instances/db3/repoint", body: `{"source":"db2"}`, status: 400, code: api.CodeBadRequest, says: "to"},
		{name: "repoint under an unknown instance", method: "POST", path: "/v1/clusters/main/instances/db3/repoint", body: `{"to":"db9"}`, status: 404, code: api.CodeNotFound, says: "db9"},
		{name: "end of a maintenance that is not", method: "DELETE", path: "/v1/clusters/main/instances/db2/maintenance", status: 404, code: api.CodeNotFound, says: "not in maintenance"},
		{name: "unknown field on resume", method: "POST", path: "/v1/clusters/main/resume", body: `{"now":true}`, status: 400, code: api.CodeBadRequest, says: `"now"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := call(t, ts, tc.method, tc.path, admin, tc.body, tc.hdr...)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			e := a.apiError(t)
			if e.Code != tc.code || !strings.Contains(e.Message, tc.says) {
				t.Fatalf("error %+v: want code %s and a message with %q", e, tc.code, tc.says)
			}
		})
	}
}

func TestBackendErrorsMapToStatuses(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("x: %w", apiserver.ErrInvalid), 400, api.CodeBadRequest},
		{fmt.Errorf("x: %w", apiserver.ErrNotFound), 404, api.CodeNotFound},
		{fmt.Errorf("switchover op-1 runs: %w", apiserver.ErrConflict), 409, api.CodeConflict},
		{fmt.Errorf("db2 lags 40s: %w", apiserver.ErrRefused), 422, api.CodeRefused},
		{fmt.Errorf("x: %w", apiserver.ErrNotLeader), 503, api.CodeNotLeader},
		{fmt.Errorf("x: %w", apiserver.ErrNoLeader), 503, api.CodeNoLeader},
		{fmt.Errorf("x: %w", apiserver.ErrUnavailable), 503, api.CodeUnavailable},
		{errors.New("disk on fire"), 500, api.CodeInternal},
	} {
		fake := apiservertest.NewFakeBackend()
		_, ts := newServer(t, fake, nil)
		fake.FailNext("Switchover", tc.err)
		a := call(t, ts, "POST", "/v1/clusters/main/switchover", admin, `{}`)
		if a.status != tc.status || a.apiError(t).Code != tc.code || a.apiError(t).Message != tc.err.Error() {
			t.Errorf("%v: %d %s, want %d %s", tc.err, a.status, a.body, tc.status, tc.code)
		}
		fake.Close()
	}
}

// panicky is a Backend whose Status panics.
type panicky struct{ *apiservertest.FakeBackend }

func (panicky) Status(context.Context) (api.Status, error) { panic("boom") }

func TestHandlerPanicIs500JSON(t *testing.T) {
	fake := apiservertest.NewFakeBackend()
	defer fake.Close()
	buf := &lockedBuffer{}
	_, ts := newServer(t, fake, func(c *apiserver.Config) {
		c.Backend = panicky{fake}
		c.Logger = testLogger(t, buf)
	})
	a := call(t, ts, "GET", "/v1/status", readOnly, "")
	if a.status != 500 || a.apiError(t).Code != api.CodeInternal {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if !strings.Contains(buf.String(), "boom") {
		t.Error("the panic is not logged")
	}
}

// GET /v1/status names the answering agent's build (regentctl version
// prints it).
func TestStatusNamesTheBuild(t *testing.T) {
	fake := apiservertest.NewFakeBackend()
	defer fake.Close()
	_, ts := newServer(t, fake, func(c *apiserver.Config) { c.Version = "1.4.0-3-gc69fa7f" })
	a := call(t, ts, "GET", "/v1/status", readOnly, "")
	var st api.Status
	if err := json.Unmarshal(a.body, &st); err != nil || a.status != 200 || st.Version != "1.4.0-3-gc69fa7f" {
		t.Fatalf("%d %s (%v): want the server's version", a.status, a.body, err)
	}
}

func TestSwitchoverStartsAndFollows(t *testing.T) {
	fake := apiservertest.NewFakeBackend()
	defer fake.Close()
	_, ts := newServer(t, fake, nil)
	a := call(t, ts, "POST", "/v1/clusters/main/switchover", admin, `{"to":"db2","wait_for_writes":"5s"}`)
	if a.status != http.StatusAccepted {
		t.Fatalf("switchover: %d %s", a.status, a.body)
	}
	var op api.Operation
	if err := json.Unmarshal(a.body, &op); err != nil {
		t.Fatal(err)
	}
	if op.ID == "" || op.Result != api.ResultRunning || op.Kind != api.OpSwitchover || op.Target != "db2" {
		t.Fatalf("started operation: %+v", op)
	}
	loc := a.header.Get("Location")
	if loc != "/v1/clusters/main/operations/"+op.ID {
		t.Fatalf("Location %q", loc)
	}
	if c := fake.Calls(); len(c) != 1 || c[0].Caller != "ops-admin" {
		t.Fatalf("backend calls %+v: want one by ops-admin", c)
	}
	// A second one while the first runs is a conflict.
	if a := call(t, ts, "POST", "/v1/clusters/main/switchover", admin, `{}`); a.status != http.StatusConflict {
		t.Errorf("second switchover: %d %s", a.status, a.body)
	}

	req, _ := http.NewRequest("GET", ts.URL+loc+"?follow=1", nil)
	req.Header.Set("Authorization", "Bearer "+readOnly)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Fatalf("Content-Type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var lines []api.Operation
	for sc.Scan() {
		var o api.Operation
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, o)
	}
	if len(lines) < 2 {
		t.Fatalf("want several snapshots, got %d", len(lines))
	}
	last := lines[len(lines)-1]
	if last.Result != api.ResultSuccess || last.NewPrimary != "db2" || len(last.Steps) != len(fake.SwitchoverSteps) || last.WriteBlocked == nil {
		t.Fatalf("last snapshot: %+v", last)
	}
	for i := 1; i < len(lines); i++ {
		if len(lines[i].Steps) < len(lines[i-1].Steps) {
			t.Fatalf("steps went backwards at line %d", i)
		}
	}
	// Following a finished operation answers one line at once.
	a = call(t, ts, "GET", loc+"?follow=true", readOnly, "")
	if a.status != 200 || bytes.Count(a.body, []byte("\n")) != 1 {
		t.Fatalf("follow of a finished operation: %d %q", a.status, a.body)
	}
	// The cluster moved on.
	a = call(t, ts, "GET", "/v1/clusters/main", readOnly, "")
	var c api.Cluster
	_ = json.Unmarshal(a.body, &c)
	if c.Primary != "db2" || c.Epoch != 8 {
		t.Fatalf("after switchover: primary %s epoch %d", c.Primary, c.Epoch)
	}
}

func TestPauseRecordsTheCaller(t *testing.T) {
	fake := apiservertest.NewFakeBackend()
	defer fake.Close()
	_, ts := newServer(t, fake, nil)
	a := call(t, ts, "POST", "/v1/clusters/main/pause", admin, `{"reason":"kernel upgrade"}`)
	var c api.Cluster
	if err := json.Unmarshal(a.body, &c); err != nil || a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if c.Paused == nil || c.Paused.By != "ops-admin" || c.Paused.Reason != "kernel upgrade" || c.AutomaticFailover.Possible {
		t.Fatalf("paused: %+v %+v", c.Paused, c.AutomaticFailover)
	}
	// An empty body is a pause without a reason.
	if a := call(t, ts, "POST", "/v1/clusters/main/pause", admin, ""); a.status != 200 {
		t.Fatalf("pause without body: %d %s", a.status, a.body)
	}
}

func TestMaintenanceRecordsTheCallerAndEnds(t *testing.T) {
	fake := apiservertest.NewFakeBackend()
	defer fake.Close()
	_, ts := newServer(t, fake, nil)
	a := call(t, ts, "POST", "/v1/clusters/main/instances/db3/maintenance", admin, `{"reason":"disk swap","for":"90m"}`)
	var c api.Cluster
	if err := json.Unmarshal(a.body, &c); err != nil || a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	in, _ := findInstance(c, "db3")
	if m := in.Maintenance; m == nil || m.By != "ops-admin" || m.Reason != "disk swap" || m.Until.Sub(m.Since) != 90*time.Minute {
		t.Fatalf("db3's maintenance: %+v", in.Maintenance)
	}
	a = call(t, ts, "DELETE", "/v1/clusters/main/instances/db3/maintenance", admin, "")
	c = api.Cluster{}
	if err := json.Unmarshal(a.body, &c); err != nil || a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if in, _ := findInstance(c, "db3"); in.Maintenance != nil {
		t.Fatalf("db3 still in maintenance after its end: %+v", in.Maintenance)
	}
}

func findInstance(c api.Cluster, name string) (api.Instance, bool) {
	for _, in := range c.Instances {
		if in.Name == name {
			return in, true
		}
	}
	return api.Instance{}, false
}

func TestLogsCarryOperationButNeverTheToken(t *testing.T) {
	fake := apiservertest.NewFakeBackend()
	defer fake.Close()
	buf := &lockedBuffer{}
	_, ts := newServer(t, fake, func(c *apiserver.Config) { c.Logger = testLogger(t, buf) })
	a := call(t, ts, "POST", "/v1/clusters/main/switchover", admin, `{"to":"db3"}`)
	if a.status != 202 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	_ = call(t, ts, "GET", "/v1/status", "wrong-token-"+admin, "")
	logs := buf.String()
	if strings.Contains(logs, admin) {
		t.Fatalf("a token is in the logs:\n%s", logs)
	}
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["path"] == "/v1/clusters/main/switchover" {
			found = true
			for _, k := range []string{"method", "status", "duration", "remote", "caller", "operation"} {
				if _, ok := m[k]; !ok {
					t.Errorf("log line lacks %s: %s", k, line)
				}
			}
			if m["operation"] != strings.Trim(a.header.Get("X-Regent-Operation"), " ") {
				t.Errorf("operation %v, header %q", m["operation"], a.header.Get("X-Regent-Operation"))
			}
		}
	}
	if !found {
		t.Fatalf("no log line for the switchover:\n%s", logs)
	}
}

func TestHeadOnGetRoutes(t *testing.T) {
	fake := apiservertest.NewFakeBackend()
	defer fake.Close()
	_, ts := newServer(t, fake, nil)
	if a := call(t, ts, "HEAD", "/primary", "", ""); a.status != 200 {
		t.Fatalf("HEAD /primary: %d", a.status)
	}
}

// A fleet's clusters come a page at a time in name order, each page's next
// leading to the following one, and problems_only keeps those that need
// attention (api.Cluster.NeedsAttention).
func TestClusterListPages(t *testing.T) {
	fake := apiservertest.NewFakeBackend()
	healthy := func(name string) api.Cluster {
		return api.Cluster{Name: name, Primary: "db1", Epoch: 3, Durability: "semi_sync", AutomaticFailover: api.AutomaticFailover{Enabled: true, Possible: true}}
	}
	for _, n := range []string{"c1", "c2", "c3", "c4"} {
		fake.SetCluster(healthy(n))
	}
	sick := healthy("c3")
	sick.Primary = ""
	fake.SetCluster(sick)
	_, ts := newServer(t, fake, nil)
	pages := func(query string) (names []string, scanned int) {
		t.Helper()
		after := ""
		for range 10 {
			a := call(t, ts, "GET", "/v1/clusters?"+query+"&after="+after, readOnly, "")
			if a.status != 200 {
				t.Fatalf("%s after %q: %d %s", query, after, a.status, a.body)
			}
			var page api.ClusterList
			if err := json.Unmarshal(a.body, &page); err != nil {
				t.Fatal(err)
			}
			if page.Total != 5 {
				t.Fatalf("total %d, want 5", page.Total)
			}
			for _, c := range page.Clusters {
				names = append(names, c.Name)
			}
			scanned += page.Scanned
			if page.Next == "" {
				return names, scanned
			}
			after = page.Next
		}
		t.Fatalf("%s: more than 10 pages: %v", query, names)
		return nil, 0
	}
	all, scanned := pages("limit=2")
	if want := []string{"c1", "c2", "c3", "c4", "main"}; !slices.Equal(all, want) || scanned != 5 {
		t.Errorf("pages of 2: %v (%d scanned), want %v, each once", all, scanned, want)
	}
	// c3 has no primary; main (the fake's) has a lagging replica.
	sickOnes, scanned := pages("limit=1&problems_only=true")
	if want := []string{"c3", "main"}; !slices.Equal(sickOnes, want) || scanned != 5 {
		t.Errorf("problems only: %v (%d scanned), want %v, each cluster looked at once", sickOnes, scanned, want)
	}
	// The listing needs the names only, not Status (the Raft membership,
	// the lease): a failing Status leaves it working, a failing listing is
	// a JSON error.
	fake.FailNext("Status", errors.New("members unavailable"))
	if a := call(t, ts, "GET", "/v1/clusters?limit=2", readOnly, ""); a.status != 200 {
		t.Errorf("with Status failing: %d %s, want 200", a.status, a.body)
	}
	fake.FailNext("ClusterNames", fmt.Errorf("raft not started: %w", apiserver.ErrUnavailable))
	if a := call(t, ts, "GET", "/v1/clusters?limit=2", readOnly, ""); a.status != 503 || a.apiError(t).Code == "" {
		t.Errorf("with the listing failing: %d %s, want 503 with a JSON error", a.status, a.body)
	}
}

// A history comes a page at a time, newest first, each page's next being
// the before of the following one.
func TestHistoryPages(t *testing.T) {
	fake := apiservertest.NewFakeBackend()
	var ops []api.Operation
	for i := 9; i >= 1; i-- {
		ops = append(ops, api.Operation{ID: fmt.Sprintf("op-%02d", i), Cluster: "main", Kind: "switchover", Result: api.ResultSuccess})
	}
	fake.SetHistory("main", ops)
	_, ts := newServer(t, fake, nil)
	var got []string
	before := ""
	for range 10 {
		a := call(t, ts, "GET", "/v1/clusters/main/history?limit=4&before="+before, readOnly, "")
		if a.status != 200 {
			t.Fatalf("before %q: %d %s", before, a.status, a.body)
		}
		var h api.History
		if err := json.Unmarshal(a.body, &h); err != nil {
			t.Fatal(err)
		}
		if len(h.Operations) > 4 {
			t.Fatalf("a page of %d operations, limit 4", len(h.Operations))
		}
		for _, o := range h.Operations {
			got = append(got, o.ID)
		}
		if h.Next == "" {
			break
		}
		before = h.Next
	}
	want := []string{"op-09", "op-08", "op-07", "op-06", "op-05", "op-04", "op-03", "op-02", "op-01"}
	if !slices.Equal(got, want) {
		t.Errorf("pages: %v, want %v", got, want)
	}
}
