package apiserver_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/apiserver"
	"github.com/regentdb/regent/apiserver/apiservertest"
)

// limitedServer is the API served by apiserver.HTTPServer on loopback, as
// the agent serves it, with a health handler that holds its answer while
// asked to (?hold=1) and a /hold route that does the same for a call that
// is not a health check.
type limitedServer struct {
	addr    string
	url     string
	metrics *apiserver.Metrics
	release chan struct{} // closing it ends every held answer
	held    chan struct{} // one value per answer being held
}

func startLimited(t *testing.T, limits apiserver.Limits, mutate func(*apiserver.Config)) *limitedServer {
	t.Helper()
	ls := &limitedServer{metrics: apiserver.NewMetrics("test"), release: make(chan struct{}), held: make(chan struct{}, 100)}
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(ls.release) }) })
	hold := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("hold") == "1" || r.URL.Path == "/hold" {
			ls.held <- struct{}{}
			<-ls.release
		}
		_, _ = io.WriteString(w, `{"ok":true}`)
	}
	fake := apiservertest.NewFakeBackend()
	t.Cleanup(fake.Close)
	cfg := apiserver.Config{
		AgentID: "a1", Version: "test", Backend: fake,
		Health:  http.HandlerFunc(hold),
		Metrics: ls.metrics,
		Auth:    apiserver.AuthConfig{Tokens: apiservertest.Tokens()},
		Forward: apiserver.ForwardConfig{Scheme: "http"},
		Logger:  testLogger(t, nil),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := apiserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/hold", hold)
	mux.Handle("/", srv.Handler())
	hs, err := srv.NewHTTPServer(mux, limits, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(ln) }()
	t.Cleanup(func() {
		once.Do(func() { close(ls.release) })
		_ = hs.Shutdown(t.Context())
		<-done
	})
	ls.addr = ln.Addr().String()
	ls.url = "http://" + ls.addr
	return ls
}

// dial opens a raw connection that has sent nothing yet.
func (ls *limitedServer) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", ls.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitConns waits until the server holds n connections in pool.
func (ls *limitedServer) waitConns(t *testing.T, pool string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := ls.gauge(t, "regent_api_connections", pool)
		if got == float64(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server holds %v connections in pool %s, want %d", got, pool, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gauge reads one series of a metric by its only label's value.
func (ls *limitedServer) gauge(t *testing.T, name, label string) float64 {
	t.Helper()
	mfs, err := ls.metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == label {
				if m.GetGauge() != nil {
					return m.GetGauge().GetValue()
				}
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

// request writes a request on c and reads the answer.
func request(t *testing.T, c net.Conn, raw string) *http.Response {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp
}

// closedWithin reports whether the server closes c within d (a read then
// ends with EOF or a reset, not with our own deadline).
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// wantClosedAfter checks that the server closes c about d from now.
func wantClosedAfter(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	start := time.Now()
	if !closedWithin(c, d+2*time.Second) {
		t.Fatalf("not closed within %v", d+2*time.Second)
	}
	if got := time.Since(start); got > d+700*time.Millisecond {
		t.Fatalf("closed after %v, want about %v", got, d)
	}
}

func get(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: agent\r\n\r\n"
}

// At the cap, a new connection takes the slot of the one that has waited
// longest without a request: a flood of idle connections closes only its
// own oldest.
func TestConnectionLimitEvictsTheLongestWaiting(t *testing.T) {
	ls := startLimited(t, apiserver.Limits{MaxConnections: 16, HealthConnections: 1}, nil)
	var idle []net.Conn
	for range 16 {
		idle = append(idle, ls.dial(t))
		ls.waitConns(t, "main", len(idle)) // admitted in this order
	}
	late := ls.dial(t)
	if resp := request(t, late, get("/v1/status")); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the 17th connection: %s, want the API's own answer (401)", resp.Status)
	}
	if !closedWithin(idle[0], time.Second) {
		t.Fatal("the oldest idle connection was not closed to make room")
	}
	for i, c := range idle[1:] {
		if closedWithin(c, 10*time.Millisecond) {
			t.Fatalf("idle connection %d was closed too", i+1)
		}
	}
	if got := ls.gauge(t, "regent_api_connections_shed_total", "evicted"); got != 1 {
		t.Errorf("evicted %v connections, want 1", got)
	}
}

// When every connection is busy with a request, the reserve still answers
// health checks (and only them, closing after one answer); with the reserve
// busy too a new connection is closed at once.
func TestConnectionLimitKeepsAReserveForHealthChecks(t *testing.T) {
	ls := startLimited(t, apiserver.Limits{MaxConnections: 16, HealthConnections: 2}, nil)
	for range 16 {
		c := ls.dial(t)
		if _, err := io.WriteString(c, get("/hold")); err != nil {
			t.Fatal(err)
		}
		<-ls.held
	}
	ls.waitConns(t, "main", 16)

	c := ls.dial(t)
	resp := request(t, c, get("/primary"))
	if resp.StatusCode != http.StatusOK || !resp.Close {
		t.Fatalf("/primary on the reserve: %s, close %v; want 200 and the connection closed", resp.Status, resp.Close)
	}
	if !closedWithin(c, time.Second) {
		t.Fatal("a reserve connection stayed open after its answer")
	}
	c = ls.dial(t)
	resp = request(t, c, get("/v1/status"))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/v1/status on the reserve: %s, want 503", resp.Status)
	}

	// A reserve connection that sends nothing is closed by its deadline.
	start := time.Now()
	if c := ls.dial(t); !closedWithin(c, apiserver.HealthReserveTimeout+time.Second) {
		t.Fatal("an idle reserve connection was not closed")
	}
	if d := time.Since(start); d < apiserver.HealthReserveTimeout-200*time.Millisecond {
		t.Errorf("the idle reserve connection was closed after %v, before its %v", d, apiserver.HealthReserveTimeout)
	}

	// Reserve busy too: refused.
	for range 2 {
		c := ls.dial(t)
		if _, err := io.WriteString(c, get("/primary?hold=1")); err != nil {
			t.Fatal(err)
		}
		<-ls.held
	}
	if c := ls.dial(t); !closedWithin(c, time.Second) {
		t.Fatal("a connection with every slot busy was not closed")
	}
	if got := ls.gauge(t, "regent_api_connections_shed_total", "refused"); got != 1 {
		t.Errorf("refused %v connections, want 1", got)
	}
}

// A caller that the API answers without reading its body (no token) loses
// the connection right after the answer: the server does not wait for a
// body sent a byte at a time. A call whose body is read keeps it.
func TestUnreadBodyClosesTheConnection(t *testing.T) {
	ls := startLimited(t, apiserver.Limits{ReadTimeout: 20 * time.Second}, nil)
	slow := ls.dial(t)
	_, err := io.WriteString(slow, "POST /v1/clusters/main/pause HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"reason\":")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
		t.Fatalf("%s, close %v: want 401 and Connection: close", resp.Status, resp.Close)
	}
	if !closedWithin(slow, 2*time.Second) {
		t.Fatal("the connection stays open waiting for the rest of the body")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("closed after %v", d)
	}

	ok := ls.dial(t)
	body := `{"reason":"test"}`
	for i := range 2 {
		resp := request(t, ok, fmt.Sprintf("POST /v1/clusters/main/pause HTTP/1.1\r\nHost: agent\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			admin, len(body), body))
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("authenticated call %d: %s, close %v; want 200 on a kept-alive connection", i, resp.Status, resp.Close)
		}
	}
}

func TestServerTimeoutsAndHeaderLimit(t *testing.T) {
	lim := apiserver.Limits{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: time.Second, IdleTimeout: 300 * time.Millisecond, MaxHeaderBytes: 8 << 10}
	ls := startLimited(t, lim, nil)
	t.Run("headers sent slowly", func(t *testing.T) {
		c := ls.dial(t)
		_, _ = io.WriteString(c, "GET /primary HTTP/1.1\r\nHost: agent\r\n")
		wantClosedAfter(t, c, lim.ReadHeaderTimeout)
	})
	t.Run("idle after a request", func(t *testing.T) {
		c := ls.dial(t)
		if resp := request(t, c, get("/primary")); resp.StatusCode != 200 {
			t.Fatal(resp.Status)
		}
		wantClosedAfter(t, c, lim.IdleTimeout)
	})
	t.Run("headers too large", func(t *testing.T) {
		c := ls.dial(t)
		resp := request(t, c, "GET /primary HTTP/1.1\r\nHost: agent\r\nX-Big: "+strings.Repeat("a", 20<<10)+"\r\n\r\n")
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("%s, want 431", resp.Status)
		}
	})
}

// An operation stream lasts longer than the read and write timeouts, on
// the leader and through a follower.
func TestOperationStreamOutlivesTheTimeouts(t *testing.T) {
	lim := apiserver.Limits{ReadHeaderTimeout: 200 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}
	slowSteps := func(c *apiserver.Config) {
		f := c.Backend.(*apiservertest.FakeBackend)
		f.SwitchoverSteps = []apiservertest.FakeStep{{Name: "a", Delay: 400 * time.Millisecond}, {Name: "b", Delay: 400 * time.Millisecond}, {Name: "c", Delay: 400 * time.Millisecond}}
		c.FollowPoll = 20 * time.Millisecond
	}
	for _, tc := range []struct {
		name    string
		forward bool
	}{{"leader", false}, {"through a follower", true}} {
		t.Run(tc.name, func(t *testing.T) {
			leader := startLimited(t, lim, func(c *apiserver.Config) {
				slowSteps(c)
				c.Backend.(*apiservertest.FakeBackend).SetLeadership(apiserver.Leadership{IsLeader: true, LeaderID: "a1"})
			})
			via := leader
			if tc.forward {
				via = startLimited(t, lim, func(c *apiserver.Config) {
					c.AgentID = "a2"
					c.Backend.(*apiservertest.FakeBackend).SetLeadership(apiserver.Leadership{LeaderID: "a1", LeaderAPIAddr: leader.addr})
				})
			}
			req, _ := http.NewRequest("POST", via.url+"/v1/clusters/main/switchover", strings.NewReader(`{"to":"db2"}`))
			req.Header.Set("Authorization", "Bearer "+admin)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("switchover: %s", resp.Status)
			}
			start := time.Now()
			req, _ = http.NewRequest("GET", via.url+resp.Header.Get("Location")+"?follow=1", nil)
			req.Header.Set("Authorization", "Bearer "+readOnly)
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var last api.Operation
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
					t.Fatal(err)
				}
			}
			if last.Result != api.ResultSuccess {
				t.Fatalf("the stream ended after %v with %q (%v): cut by a timeout?", time.Since(start), last.Result, sc.Err())
			}
			if d := time.Since(start); d < lim.ReadTimeout+lim.WriteTimeout {
				t.Fatalf("the operation took %v: too short to show anything", d)
			}
		})
	}
}

func TestLimitsValidate(t *testing.T) {
	cases := []struct {
		name string
		l    apiserver.Limits
		want string
	}{
		{"defaults", apiserver.Limits{}, ""},
		{"too few connections", apiserver.Limits{MaxConnections: 4}, "max_connections"},
		{"no health reserve", apiserver.Limits{HealthConnections: -1}, "health_connections"},
		{"header timeout above read timeout", apiserver.Limits{ReadHeaderTimeout: time.Minute}, "read_header_timeout"},
		{"headers too small for a token", apiserver.Limits{MaxHeaderBytes: 4096}, "max_header_bytes"},
		{"negative", apiserver.Limits{IdleTimeout: -time.Second}, "idle_timeout"},
	}
	for _, tc := range cases {
		err := tc.l.WithDefaults().Validate("api.limits")
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), "api.limits."+tc.want)):
			t.Errorf("%s: %v, want an error about %s", tc.name, err, tc.want)
		}
	}
}
