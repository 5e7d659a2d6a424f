package apiserver_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/apiserver"
	"github.com/regentdb/regent/apiserver/apiservertest"
	"github.com/regentdb/regent/identity"
	"github.com/regentdb/regent/integration/testpki"
)

// cas are the CAs of a test installation as make-certs.sh makes them:
// agents (and people), and mysqld.
type cas struct {
	dir           string
	agents, mysql *testpki.CA
}

func newCAs(t *testing.T) *cas {
	t.Helper()
	c := &cas{dir: t.TempDir()}
	var err error
	if c.agents, err = testpki.NewCA("regent CA"); err != nil {
		t.Fatal(err)
	}
	if c.mysql, err = testpki.NewCA("mysql CA"); err != nil {
		t.Fatal(err)
	}
	c.write(t, "regent-ca.pem", c.agents.PEM)
	c.write(t, "mysql-ca.pem", c.mysql.PEM)
	return c
}

func (c *cas) write(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(c.dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// pair writes a certificate and key made by mk and returns their paths.
func (c *cas) pair(t *testing.T, name string) func(cert, key []byte, err error) (string, string) {
	return func(cert, key []byte, err error) (string, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return c.write(t, name+".pem", cert), c.write(t, name+"-key.pem", key)
	}
}

// keyPair is the tls.Certificate made by mk.
func keyPair(t *testing.T) func(cert, key []byte, err error) tls.Certificate {
	return func(cert, key []byte, err error) tls.Certificate {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		kp, err := tls.X509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		return kp
	}
}

// agentServer serves the real apiserver of agent id over TLS as
// cmd/regent does: its certificate from the agents' CA, client
// certificates verified against the people's CA (clientCA) and the
// agents' CA together.
func agentServer(t *testing.T, c *cas, id, clientCA string, fake *apiservertest.FakeBackend, mutate func(*apiserver.Config)) *httptest.Server {
	t.Helper()
	cert, key := c.pair(t, id)(c.agents.Agent(id, []net.IP{net.ParseIP("127.0.0.1")}, nil))
	tlsCfg, err := apiserver.ServerTLS(apiserver.TLSFiles{CertFile: cert, KeyFile: key, ClientCAFile: clientCA, AgentCAFile: filepath.Join(c.dir, "regent-ca.pem")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := apiserver.Config{AgentID: id, Backend: fake, Logger: testLogger(t, nil),
		Auth:    apiserver.AuthConfig{Tokens: apiservertest.Tokens(), AgentCAs: c.agents.Pool()},
		Forward: apiserver.ForwardConfig{Scheme: "https"}}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := apiserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.TLS = tlsCfg
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts
}

func tlsClient(c *cas, certs ...tls.Certificate) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: c.agents.Pool(), MinVersion: tls.VersionTLS12, Certificates: certs}}}
}

// TestClientCertificateRoles: a client certificate gets a role only by the
// URI SAN urn:regent:user:NAME, verified by the people's CA
// (api.client_ca_file), for a NAME in cert_admins or cert_readers. Issue 11
// item 5: roles went by any name in the certificate, so with one CA for
// everything, mysqld's certificate for db1 (CN=db1) was admin wherever
// cert_admins named db1, and any certificate with CN=alice was alice.
func TestClientCertificateRoles(t *testing.T) {
	c := newCAs(t)
	// The people's CA here is the agents' CA, as make-certs.sh makes it;
	// and mysqld's certificates signed by it too, as make-certs.sh used to:
	// the URI, not the CA, keeps them out.
	fake := apiservertest.NewFakeBackend()
	defer fake.Close()
	ts := agentServer(t, c, "a1", filepath.Join(c.dir, "regent-ca.pem"), fake, func(cfg *apiserver.Config) {
		cfg.Auth.CertAdmins, cfg.Auth.CertReaders, cfg.Auth.ClientCAs = []string{"alice", "db1"}, []string{"grafana"}, c.agents.Pool()
	})
	kp := keyPair(t)
	lo := []net.IP{net.ParseIP("127.0.0.1")}
	certs := map[string]tls.Certificate{
		"alice":              kp(c.agents.User("alice")),
		"grafana":            kp(c.agents.User("grafana")),
		"mallory":            kp(c.agents.User("mallory")),
		"mysqld db1":         kp(c.agents.MySQL("db1", lo, []string{"db1"})),
		"CN alice, no URI":   kp(c.agents.Issue(testpki.Spec{CN: "alice", DNSNames: []string{"alice"}})),
		"agent a2":           kp(c.agents.Agent("a2", lo, nil)),
		"agent and user URI": kp(c.agents.Issue(testpki.Spec{CN: "x", URIs: []string{identity.AgentURI("a2"), identity.UserURI("alice")}})),
	}
	do := func(cert, method, path, token string) int {
		t.Helper()
		var cl *http.Client
		if cert == "" {
			cl = tlsClient(c)
		} else {
			cl = tlsClient(c, certs[cert])
		}
		req, _ := http.NewRequest(method, ts.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		name, cert, method, path, token string
		want                            int
	}{
		{"an admin's user certificate may pause", "alice", "POST", "/v1/clusters/main/pause", "", 200},
		{"a reader's may read", "grafana", "GET", "/v1/status", "", 200},
		{"a reader's may not pause", "grafana", "POST", "/v1/clusters/main/pause", "", 403},
		{"an unknown user", "mallory", "GET", "/v1/status", "", 401},
		{"mysqld's certificate for a host cert_admins names", "mysqld db1", "POST", "/v1/clusters/main/pause", "", 401},
		{"an admin's name as common name, no URI", "CN alice, no URI", "GET", "/v1/status", "", 401},
		{"an agent's certificate", "agent a2", "GET", "/v1/status", "", 401},
		{"an agent's certificate that also names a user", "agent and user URI", "GET", "/v1/status", "", 401},
		{"no certificate, no token", "", "GET", "/v1/status", "", 401},
		{"no certificate, a token", "", "GET", "/v1/status", readOnly, 200},
		{"a wrong token is an error even with an admin's certificate", "alice", "GET", "/v1/status", "wrong-token-0123456789", 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := do(tc.cert, tc.method, tc.path, tc.token); got != tc.want {
				t.Fatalf("%d, want %d", got, tc.want)
			}
		})
	}

	// A follower cannot vouch for a certificate: it names the leader.
	fake.SetLeadership(apiserver.Leadership{LeaderID: "a3", LeaderAPIAddr: "10.0.0.13:7443"})
	req, _ := http.NewRequest("POST", ts.URL+"/v1/clusters/main/resume", nil)
	resp, err := tlsClient(c, certs["alice"]).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e api.Error
	_ = json.NewDecoder(resp.Body).Decode(&e)
	if resp.StatusCode != 503 || e.Code != api.CodeNotLeader || e.LeaderAPIAddr != "10.0.0.13:7443" {
		t.Fatalf("certificate caller on a follower: %d %+v", resp.StatusCode, e)
	}
}

// TestUserCertificatesComeOnlyFromTheClientCA: with a people's CA of its
// own (api.client_ca_file), a user URI in a certificate the agents' CA
// signed grants nothing: each CA vouches only for its own kind.
func TestUserCertificatesComeOnlyFromTheClientCA(t *testing.T) {
	c := newCAs(t)
	people, err := testpki.NewCA("people CA")
	if err != nil {
		t.Fatal(err)
	}
	peopleFile := c.write(t, "people-ca.pem", people.PEM)
	fake := apiservertest.NewFakeBackend()
	defer fake.Close()
	ts := agentServer(t, c, "a1", peopleFile, fake, func(cfg *apiserver.Config) {
		cfg.Auth.CertAdmins, cfg.Auth.ClientCAs = []string{"alice"}, people.Pool()
	})
	kp := keyPair(t)
	for _, tc := range []struct {
		name string
		cert tls.Certificate
		want int
	}{
		{"from the people's CA", kp(people.User("alice")), 200},
		{"from the agents' CA", kp(c.agents.User("alice")), 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tlsClient(c, tc.cert).Get(ts.URL + "/v1/status")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("%d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

// TestForwardingHeadersNeedAnAgentCertificate: the request log names who
// forwarded a call and for whom only when the call came with the
// certificate of the agent that forwarded it. Issue 11 item 4: any caller
// could write X-Regent-Forwarded-By and X-Forwarded-For and have the audit
// log repeat them.
func TestForwardingHeadersNeedAnAgentCertificate(t *testing.T) {
	c := newCAs(t)
	fake := apiservertest.NewFakeBackend()
	defer fake.Close()
	var logs lockedBuffer
	ts := agentServer(t, c, "a1", "", fake, func(cfg *apiserver.Config) { cfg.Logger = testLogger(t, &logs) })
	kp := keyPair(t)
	lo := []net.IP{net.ParseIP("127.0.0.1")}
	for _, tc := range []struct {
		name    string
		client  *http.Client
		by      string
		trusted bool
	}{
		{"a token caller writing the headers", tlsClient(c), "a2", false},
		{"agent a3's certificate claiming a2 forwarded", tlsClient(c, kp(c.agents.Agent("a3", lo, nil))), "a2", false},
		// mysqld's CA is not among those the server names: Go's client then
		// sends no certificate at all.
		{"mysqld's certificate", tlsClient(c, kp(c.mysql.MySQL("db2", lo, nil))), "a2", false},
		{"agent a2's certificate", tlsClient(c, kp(c.agents.Agent("a2", lo, nil))), "a2", true},
		{"agent a2's certificate, the last of two hops", tlsClient(c, kp(c.agents.Agent("a2", lo, nil))), "a3,a2", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mark := "/v1/status?case=" + strings.ReplaceAll(tc.name, " ", "-")
			req, _ := http.NewRequest("GET", ts.URL+mark, nil)
			req.Header.Set("Authorization", "Bearer "+readOnly)
			req.Header.Set(apiserver.HeaderForwardedBy, tc.by)
			req.Header.Set("X-Forwarded-For", "203.0.113.9")
			resp, err := tc.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			var line map[string]any
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, `"msg":"api request"`) {
					line = map[string]any{} // the last request's line
					_ = json.Unmarshal([]byte(l), &line)
				}
			}
			_, by := line["forwarded_by"]
			_, ignored := line["forward_headers_ignored"]
			if tc.trusted && (!by || ignored || line["forwarded_by"] != tc.by || line["forwarded_for"] != "203.0.113.9") {
				t.Fatalf("trusted headers not logged: %v", line)
			}
			if !tc.trusted && (by || !ignored) {
				t.Fatalf("untrusted headers logged as fact: %v", line)
			}
		})
	}
}

// TestForwardedCallsGoOnlyToTheLeadersCertificate: a follower forwards an
// admin's call, token included, only to a server whose certificate names
// the leader it expects. Issue 11: a process on the leader's address (or
// on the address a rewritten member table gave it) with any certificate
// the CA signed collected the admin tokens that followers forwarded.
func TestForwardedCallsGoOnlyToTheLeadersCertificate(t *testing.T) {
	c := newCAs(t)
	lo := []net.IP{net.ParseIP("127.0.0.1")}
	var seen atomic.Int64
	impostor := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		w.WriteHeader(200)
	}))
	impostor.TLS = &tls.Config{Certificates: []tls.Certificate{keyPair(t)(c.agents.Agent("a9", lo, nil))}}
	impostor.StartTLS()
	defer impostor.Close()

	leader := apiservertest.NewFakeBackend()
	defer leader.Close()
	var leaderLogs lockedBuffer
	lts := agentServer(t, c, "a1", "", leader, func(cfg *apiserver.Config) { cfg.Logger = testLogger(t, &leaderLogs) })
	leader.SetLeadership(apiserver.Leadership{IsLeader: true, LeaderID: "a1", LeaderAPIAddr: strings.TrimPrefix(lts.URL, "https://")})

	follower := apiservertest.NewFakeBackend()
	defer follower.Close()
	own := keyPair(t)(c.agents.Agent("a2", lo, nil))
	fts := agentServer(t, c, "a2", "", follower, func(cfg *apiserver.Config) {
		cfg.Forward.Transport = apiserver.NewForwardTransport(&tls.Config{RootCAs: c.agents.Pool(), Certificates: []tls.Certificate{own}, MinVersion: tls.VersionTLS12})
	})
	pause := func() answer {
		t.Helper()
		req, _ := http.NewRequestWithContext(context.Background(), "POST", fts.URL+"/v1/clusters/main/pause", strings.NewReader(`{"reason":"x"}`))
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := tlsClient(c).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return answer{status: resp.StatusCode, header: resp.Header, body: body}
	}

	follower.SetLeadership(apiserver.Leadership{LeaderID: "a1", LeaderAPIAddr: strings.TrimPrefix(impostor.URL, "https://")})
	a := pause()
	if a.status != http.StatusBadGateway || a.apiError(t).Code != api.CodeLeaderUnreachable || !strings.Contains(a.apiError(t).Message, "not run") {
		t.Fatalf("forwarding to the impostor: %d %s", a.status, a.body)
	}
	if n := seen.Load(); n != 0 {
		t.Fatalf("the impostor received %d forwarded calls", n)
	}

	follower.SetLeadership(apiserver.Leadership{LeaderID: "a1", LeaderAPIAddr: strings.TrimPrefix(lts.URL, "https://")})
	if a := pause(); a.status != 200 {
		t.Fatalf("forwarding to the leader: %d %s", a.status, a.body)
	}
	if calls := leader.Calls(); len(calls) != 1 || calls[0].Method != "Pause" {
		t.Fatalf("leader calls %+v", calls)
	}
	if !strings.Contains(leaderLogs.String(), `"forwarded_by":"a2"`) {
		t.Fatalf("the leader did not log the forwarding agent it verified:\n%s", leaderLogs.String())
	}
}
