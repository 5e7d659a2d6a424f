package proxyhook

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/regentdb/regent/proxyhook/haproxytest"
)

const (
	exampleHAProxyCfg = "../deploy/haproxy/haproxy.cfg"
	exampleRouting    = "../deploy/haproxy/regent-routing.example.yaml"
)

// haproxySections returns backend name -> server names of a haproxy.cfg.
func haproxySections(cfg string) map[string][]string {
	out := map[string][]string{}
	backend := ""
	for _, line := range strings.Split(cfg, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "backend":
			backend = f[1]
			out[backend] = nil
		case "frontend", "listen", "global", "defaults":
			backend = ""
		case "server":
			if backend != "" {
				out[backend] = append(out[backend], f[1])
			}
		}
	}
	return out
}

// section returns the lines of the named section of a haproxy.cfg, without
// comments.
func section(cfg, header string) string {
	var b strings.Builder
	in := false
	for _, line := range strings.Split(cfg, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") {
			in = t == header
			continue
		}
		if in {
			b.WriteString(t + "\n")
		}
	}
	return b.String()
}

func TestDeployHAProxyConfig(t *testing.T) {
	raw, err := os.ReadFile(exampleHAProxyCfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(raw)
	if out, err := haproxytest.Check(t, exampleHAProxyCfg); err != nil {
		t.Fatalf("haproxy -c rejects %s: %v\n%s", exampleHAProxyCfg, err, out)
	}

	global, defaults, write, read := section(cfg, "global"), section(cfg, "defaults"), section(cfg, "backend mysql_write"), section(cfg, "backend mysql_read")
	musts := []struct {
		what, in, text string
	}{
		{"TCP mode (TLS passes through to mysqld)", defaults, "mode tcp\n"},
		{"server state loaded on reload", defaults, "load-server-state-from-file global\n"},
		{"a server state file", global, "server-state-file "},
		{"a runtime API at admin level", global, "level admin"},
		{"writes checked against /primary", write, "option httpchk GET /primary\n"},
		{"only 200 passes", write, "http-check expect status 200\n"},
		{"sessions cut when the writer goes down", write, "on-marked-down shutdown-sessions"},
		{"fast checks", write, "inter 200ms"},
		{"reads checked against /replica with a lag bound", read, "option httpchk GET /replica?max_lag="},
	}
	for _, m := range musts {
		if !strings.Contains(m.in, m.text) {
			t.Errorf("%s: missing %q", m.what, m.text)
		}
	}
	// TLS is not terminated at the balancer: no certificate on any bind.
	if regexp.MustCompile(`(?m)^\s*bind\s.*\bssl\b`).MatchString(cfg) {
		t.Error("a bind line terminates TLS; MySQL's TLS must pass through")
	}
	// Every write server is health-checked on the agent's port.
	for _, line := range strings.Split(write, "\n") {
		if strings.HasPrefix(line, "server ") && (!strings.Contains(line, " check") || !strings.Contains(line, " port ")) {
			t.Errorf("write server without an agent health check: %q", line)
		}
	}

	// The routing example is valid, and names only servers haproxy.cfg has.
	y, err := os.ReadFile(exampleRouting)
	if err != nil {
		t.Fatal(err)
	}
	var rc RoutingConfig
	dec := yaml.NewDecoder(bytes.NewReader(y))
	dec.KnownFields(true)
	if err := dec.Decode(&rc); err != nil {
		t.Fatalf("%s: %v", exampleRouting, err)
	}
	if err := rc.Validate("routing", []string{"db1", "db2", "db3"}); err != nil {
		t.Fatalf("%s: %v", exampleRouting, err)
	}
	if len(rc.HAProxy) == 0 || len(rc.ProxySQL) == 0 || len(rc.Hooks) == 0 || rc.HAProxy[1].Timeout != time.Second {
		t.Errorf("example decoded incompletely: %+v", rc)
	}
	servers := haproxySections(cfg)
	for _, h := range rc.HAProxy {
		for inst, s := range h.WriteServers {
			ref, _ := ParseServerRef(s)
			if !slices.Contains(servers[ref.Backend], ref.Server) {
				t.Errorf("%s: %s maps %s to %s, which haproxy.cfg lacks (backends: %v)", exampleRouting, h.Name, inst, s, servers)
			}
		}
	}
}

// TestDeployHAProxyConfigRuns runs the example haproxy.cfg itself, with only
// its addresses and paths moved to the test's, and checks that its timings
// move writes by health checks alone within about a second.
func TestDeployHAProxyConfigRuns(t *testing.T) {
	raw, err := os.ReadFile(exampleHAProxyCfg)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"db1", "db2", "db3"}
	agents := map[string]*agent{}
	backends := map[string]*idBackend{}
	for i, n := range names {
		st := replicaState(n, 1)
		if i == 0 {
			st = primaryState(n, 1)
		}
		agents[n], backends[n] = startAgent(t, st), startIDBackend(t, n)
	}
	wport, rport := haproxytest.FreePort(t), haproxytest.FreePort(t)
	h := haproxytest.StartRaw(t, func(h *haproxytest.HAProxy) string {
		// Comments go first: they hold commented-out alternatives.
		cfg := regexp.MustCompile(`(?m)^\s*#.*\n`).ReplaceAllString(string(raw), "")
		// Not for a test: logging to syslog, chroot and dropping privileges.
		cfg = regexp.MustCompile(`(?m)^\s*(log /dev/log|chroot|user|group|stats socket)\b.*\n`).ReplaceAllString(cfg, "")
		cfg = strings.Replace(cfg, "server-state-file /var/lib/haproxy/server-state",
			fmt.Sprintf("server-state-file %s\n    stats socket %s mode 600 level admin", h.StateFile, h.AdminSocket), 1)
		cfg = strings.Replace(cfg, "bind :3306", fmt.Sprintf("bind 127.0.0.1:%d", wport), 1)
		cfg = strings.Replace(cfg, "bind :3307", fmt.Sprintf("bind 127.0.0.1:%d", rport), 1)
		for i, n := range names {
			ip := fmt.Sprintf("10.0.0.1%d", i+1)
			cfg = strings.ReplaceAll(cfg, ip+":3306", fmt.Sprintf("127.0.0.1:%d", backends[n].port()))
			cfg = strings.ReplaceAll(cfg, "addr "+ip+" port 8008", fmt.Sprintf("addr 127.0.0.1 port %d", agents[n].port()))
		}
		if strings.Contains(cfg, "10.0.0.") || strings.Contains(cfg, "/run/haproxy") {
			t.Fatalf("the example changed shape; update this test's rewriting:\n%s", cfg)
		}
		return cfg
	})
	waddr, raddr := fmt.Sprintf("127.0.0.1:%d", wport), fmt.Sprintf("127.0.0.1:%d", rport)

	waitRoutedTo(t, waddr, "db1", 5*time.Second)
	id, session, err := dialID(waddr)
	if err != nil || id != "db1" {
		t.Fatalf("session on %q (%v)", id, err)
	}
	defer session.Close()
	// Servers start up until their first check; the read backend checks
	// once a second, so wait for db1 (the primary) to leave it.
	rt, err := NewRuntimeClient(h.AdminSocket, RuntimeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for n := 0; ; n++ {
		states, err := rt.ShowServersState(t.Context(), "mysql_read")
		if err == nil && slices.ContainsFunc(states, func(s ServerState) bool { return s.Server == "mysql_db1" && s.OpState == OpStopped }) {
			break
		}
		if time.Now().After(deadline) || n > 500 {
			t.Fatalf("db1 still in the read backend: %v %+v", err, states)
		}
		time.Sleep(20 * time.Millisecond)
	}
	readers := map[string]bool{}
	for range 20 {
		if id, err := idOnce(raddr); err == nil {
			readers[id] = true
		}
	}
	if readers["db1"] || !readers["db2"] || !readers["db3"] {
		t.Errorf("reads went to %v, want the replicas db2 and db3", readers)
	}

	// Pull alone: db1's agent loses its lease, db2's becomes primary.
	st := primaryState("db1", 1)
	st.LeaseHeld = false
	agents["db1"].set(st)
	agents["db2"].set(primaryState("db2", 2))
	moved := waitRoutedTo(t, waddr, "db2", 5*time.Second)
	waitCut(t, session, 5*time.Second)
	t.Logf("example haproxy.cfg: writes moved to db2 by health checks alone in %s", moved)
	if moved > 2*time.Second {
		t.Errorf("writes took %s to move; the example's timings promise about a second", moved)
	}
	// The new primary leaves the read backend (fall 3 × fastinter 500ms).
	waitRoutedTo(t, raddr, "db3", 5*time.Second)
}
