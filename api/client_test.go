package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regentdb/regent/api"
)

// deadAddr returns a loopback address nobody listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// silentAddr returns a loopback address that accepts connections and
// never answers.
func silentAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(done)
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + l.Addr().String()
}

// agent is a scripted HTTP handler that counts its hits.
type agent struct {
	hits atomic.Int32
	h    http.HandlerFunc
}

func newAgent(t *testing.T, h http.HandlerFunc) (*agent, string) {
	a := &agent{h: h}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.hits.Add(1)
		a.h(w, r)
	}))
	t.Cleanup(ts.Close)
	return a, ts.URL
}

func statusOK(id string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(api.Status{AgentID: id, Clusters: []string{"main"}})
	}
}

func apiErr(status int, code, msg string, extra ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		e := map[string]string{"error": msg, "code": code}
		for i := 0; i+1 < len(extra); i += 2 {
			e[extra[i]] = extra[i+1]
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(e)
	}
}

func client(t *testing.T, timeout time.Duration, endpoints ...string) *api.Client {
	t.Helper()
	c, err := api.NewClient(api.ClientConfig{Endpoints: endpoints, Token: "tok-0123456789abcdef", Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClientMovesToTheNextEndpointWhenOneIsDown(t *testing.T) {
	ctx := context.Background()
	t.Run("refused", func(t *testing.T) {
		b, burl := newAgent(t, statusOK("a2"))
		c := client(t, time.Second, deadAddr(t), burl)
		st, err := c.Status(ctx)
		if err != nil || st.AgentID != "a2" {
			t.Fatalf("%+v %v", st, err)
		}
		// The client remembers the endpoint that answered.
		if _, err := c.Status(ctx); err != nil || b.hits.Load() != 2 {
			t.Fatalf("%v, hits %d", err, b.hits.Load())
		}
	})
	t.Run("timeout", func(t *testing.T) {
		_, burl := newAgent(t, statusOK("a2"))
		c := client(t, 200*time.Millisecond, silentAddr(t), burl)
		start := time.Now()
		st, err := c.Status(ctx)
		if err != nil || st.AgentID != "a2" {
			t.Fatalf("%+v %v", st, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("took %v: the timeout is per endpoint", d)
		}
	})
	t.Run("no leader there", func(t *testing.T) {
		a, aurl := newAgent(t, apiErr(503, api.CodeNoLeader, "agent a1 knows no Raft leader now"))
		_, burl := newAgent(t, statusOK("a2"))
		c := client(t, time.Second, aurl, burl)
		if _, err := c.Pause(ctx, "main", api.PauseRequest{}); err != nil {
			t.Fatal(err)
		}
		if a.hits.Load() != 1 {
			t.Fatalf("first agent hits %d", a.hits.Load())
		}
	})
	t.Run("POST retried when the connection was refused", func(t *testing.T) {
		b, burl := newAgent(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(202)
			_ = json.NewEncoder(w).Encode(api.Operation{ID: "op-1", Result: api.ResultRunning})
		})
		c := client(t, time.Second, deadAddr(t), burl)
		op, err := c.Switchover(ctx, "main", api.SwitchoverRequest{To: "db2"})
		if err != nil || op.ID != "op-1" || b.hits.Load() != 1 {
			t.Fatalf("%+v %v", op, err)
		}
	})
}

func TestClientDoesNotResendAPOSTThatMayHaveArrived(t *testing.T) {
	b, burl := newAgent(t, statusOK("a2"))
	c := client(t, 200*time.Millisecond, silentAddr(t), burl)
	_, err := c.Switchover(context.Background(), "main", api.SwitchoverRequest{})
	if err == nil || !strings.Contains(err.Error(), "may have received it") {
		t.Fatalf("err %v", err)
	}
	if b.hits.Load() != 0 {
		t.Fatal("the switchover was sent to a second agent")
	}
}

func TestClientStopsAtAnErrorAnswer(t *testing.T) {
	a, aurl := newAgent(t, apiErr(404, api.CodeNotFound, `no replication cluster "x" here (clusters: [main])`))
	b, burl := newAgent(t, statusOK("a2"))
	c := client(t, time.Second, aurl, burl)
	_, err := c.Cluster(context.Background(), "x")
	var e *api.Error
	if !errors.As(err, &e) {
		t.Fatalf("err %T %v", err, err)
	}
	if e.Status != 404 || e.Code != api.CodeNotFound || !strings.Contains(e.Message, "clusters: [main]") || e.Endpoint != aurl {
		t.Fatalf("%+v", e)
	}
	if api.StatusOf(err) != 404 || api.IsAuth(err) {
		t.Fatal("StatusOf/IsAuth")
	}
	if a.hits.Load() != 1 || b.hits.Load() != 0 {
		t.Fatalf("hits %d %d: a 4xx must not move to the next agent", a.hits.Load(), b.hits.Load())
	}
}

func TestClientFollowsTheLeaderHint(t *testing.T) {
	l, lurl := newAgent(t, statusOK("a3"))
	_, furl := newAgent(t, apiErr(503, api.CodeNotLeader, "not the leader", "leader_id", "a3", "leader_api_addr", strings.TrimPrefix(lurl, "http://")))
	c := client(t, time.Second, furl)
	if _, err := c.Resume(context.Background(), "main"); err != nil {
		t.Fatal(err)
	}
	if l.hits.Load() != 1 {
		t.Fatal("the leader was not asked")
	}
}

func TestClientUnreachable(t *testing.T) {
	c := client(t, 200*time.Millisecond, deadAddr(t), deadAddr(t))
	_, err := c.Status(context.Background())
	if !errors.Is(err, api.ErrUnreachable) {
		t.Fatalf("err %v", err)
	}
	var u *api.UnreachableError
	if !errors.As(err, &u) || len(u.Attempts) != 2 {
		t.Fatalf("%v", err)
	}
}

func TestClientSendsTheToken(t *testing.T) {
	var got string
	_, url := newAgent(t, func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("Authorization")
		statusOK("a1")(w, r)
	})
	c := client(t, time.Second, url)
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got != "Bearer tok-0123456789abcdef" {
		t.Fatalf("Authorization %q", got)
	}
}

func TestClientRejectsNonJSONAnswers(t *testing.T) {
	_, url := newAgent(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "<html>502 Bad Gateway</html>", http.StatusBadGateway)
	})
	_, err := client(t, time.Second, url).Status(context.Background())
	var e *api.Error
	if !errors.As(err, &e) || e.Status != 502 || !strings.Contains(e.Message, "is this a Regent agent") {
		t.Fatalf("%v", err)
	}
}

// opStream writes snapshots of an operation with steps 0..n.
func snapshot(n int, done bool) api.Operation {
	op := api.Operation{ID: "op-7", Cluster: "main", Kind: api.OpSwitchover, Result: api.ResultRunning, Steps: []api.Step{}}
	for i := 0; i < n; i++ {
		op.Steps = append(op.Steps, api.Step{Name: fmt.Sprintf("step-%d", i), Result: api.ResultSuccess})
	}
	if done {
		op.Result = api.ResultSuccess
	}
	return op
}

func TestFollowOperationSurvivesABrokenStream(t *testing.T) {
	// Agent A sends two snapshots and drops the connection; agent B has
	// the rest.
	_, aurl := newAgent(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("follow") != "1" {
			t.Errorf("query %q", r.URL.RawQuery)
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		_ = enc.Encode(snapshot(0, false))
		_ = enc.Encode(snapshot(1, false))
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	_, burl := newAgent(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		_ = enc.Encode(snapshot(2, false))
		_ = enc.Encode(snapshot(3, true))
	})
	c := client(t, time.Second, aurl, burl)
	var seen []int
	op, err := c.FollowOperation(context.Background(), "main", "op-7", func(o api.Operation) { seen = append(seen, len(o.Steps)) })
	if err != nil {
		t.Fatal(err)
	}
	if !op.Done() || len(op.Steps) != 3 {
		t.Fatalf("final %+v", op)
	}
	if fmt.Sprint(seen) != "[0 1 2 3]" {
		// The broken stream on A makes the client follow again; A is asked
		// again first (it answered before) and may repeat itself, B ends.
		if seen[len(seen)-1] != 3 {
			t.Fatalf("snapshots seen %v", seen)
		}
	}
}

func TestFollowOperationStopsOnAnErrorAnswer(t *testing.T) {
	_, url := newAgent(t, apiErr(404, api.CodeNotFound, `no operation "op-7"`))
	_, err := client(t, time.Second, url).FollowOperation(context.Background(), "main", "op-7", func(api.Operation) {})
	if api.StatusOf(err) != 404 {
		t.Fatalf("%v", err)
	}
}

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "db1:7443", want: "https://db1:7443"},
		{in: " http://127.0.0.1:8080 ", want: "http://127.0.0.1:8080"},
		{in: "https://[::1]:7443/", want: "https://[::1]:7443"},
		{in: "", err: "empty"},
		{in: "ftp://x:1", err: "scheme"},
		{in: "https://x:1/v1", err: "only scheme://host:port"},
		{in: "https://user:pw@x:1", err: "only scheme://host:port"},
	} {
		u, err := api.ParseEndpoint(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v", tc.in, err)
			}
			continue
		}
		if err != nil || u.String() != tc.want {
			t.Errorf("%q: %v %v", tc.in, u, err)
		}
	}
	if _, err := api.NewClient(api.ClientConfig{}); err == nil || !strings.Contains(err.Error(), "REGENT_ENDPOINT") {
		t.Errorf("no endpoint: %v", err)
	}
}

func TestDurationJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{`"1.5s"`, 1500 * time.Millisecond, false},
		{`"2m"`, 2 * time.Minute, false},
		{`3`, 3 * time.Second, false},
		{`0.25`, 250 * time.Millisecond, false},
		{`null`, 0, false},
		{`"soon"`, 0, true},
		{`1e300`, 0, true},
		{`true`, 0, true},
	} {
		var d api.Duration
		err := json.Unmarshal([]byte(tc.in), &d)
		if (err != nil) != tc.err || !tc.err && d.Std() != tc.want {
			t.Errorf("%s: %v %v", tc.in, d, err)
		}
	}
	b, _ := json.Marshal(api.Duration(183 * time.Millisecond))
	if string(b) != `"183ms"` {
		t.Errorf("marshal: %s", b)
	}
}

func TestRequestValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  interface{ Validate() error }
		err  string
	}{
		{"switchover any", api.SwitchoverRequest{}, ""},
		{"switchover to", api.SwitchoverRequest{To: "db2", WaitForWrites: api.Duration(time.Minute)}, ""},
		{"switchover bad name", api.SwitchoverRequest{To: "db 2"}, "not a valid name"},
		{"switchover long wait", api.SwitchoverRequest{WaitForWrites: api.Duration(2 * time.Hour)}, "out of range"},
		{"failover needs to", api.FailoverRequest{Force: true}, "--to"},
		{"failover", api.FailoverRequest{To: "db3.example.com:3306"}, ""},
		{"rejoin", api.RejoinRequest{}, "instance is empty"},
		{"pause long reason", api.PauseRequest{Reason: strings.Repeat("x", 2000)}, "under 1024"},
		{"pause bad utf8", api.PauseRequest{Reason: "\xff"}, "UTF-8"},
		{"member", api.AddMemberRequest{ID: "a4", RaftAddr: "10.0.0.14:7000", APIAddr: "[::1]:7443"}, ""},
		{"member no port", api.AddMemberRequest{ID: "a4", RaftAddr: "10.0.0.14", APIAddr: "h:1"}, "raft_addr"},
		{"member bad port", api.AddMemberRequest{ID: "a4", RaftAddr: "h:1", APIAddr: "h:70000"}, "bad port"},
		{"member bad id", api.AddMemberRequest{ID: "-a4", RaftAddr: "h:1", APIAddr: "h:2"}, "member id"},
	} {
		err := tc.req.Validate()
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
		}
	}
}

func TestLoadClientTLS(t *testing.T) {
	if _, err := api.LoadClientTLS(api.TLSFiles{CAFile: "/nonexistent/ca.pem"}); err == nil {
		t.Error("missing CA file: no error")
	}
	if _, err := api.LoadClientTLS(api.TLSFiles{CertFile: "c.pem"}); err == nil || !strings.Contains(err.Error(), "both") {
		t.Errorf("cert without key: %v", err)
	}
	cfg, err := api.LoadClientTLS(api.TLSFiles{InsecureSkipVerify: true})
	if err != nil || !cfg.InsecureSkipVerify {
		t.Errorf("%v", err)
	}
}
