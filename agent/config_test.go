package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// validConfigYAML is a minimal configuration that passes; each case below
// changes one thing. Paths are filled in per test.
func validConfigYAML(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tokens := write("tokens", "admin:0123456789abcdef0123\n", 0o600)
	agentTok := write("agent-token", "0123456789abcdef0123\n", 0o600)
	pw := write("pw", "secret\n", 0o600)
	return `node_id: a1
data_dir: ` + dir + `
local_instance: db1
raft:
  bind: 127.0.0.1:7001
  peers:
    - {id: a1, address: 127.0.0.1:7001}
    - {id: a2, address: 127.0.0.1:7002}
    - {id: a3, address: 127.0.0.1:7003}
api:
  listen: 127.0.0.1:8001
  tokens_file: ` + tokens + `
  agent_token_file: ` + agentTok + `
mysql:
  user: regent
  password_file: ` + pw + `
  replication_user: repl
  replication_password_file: ` + pw + `
clusters:
  - name: main
    instances:
      - {name: db1, address: 127.0.0.1:3306, agent: a1}
      - {name: db2, address: 127.0.0.1:3307, agent: a2, promotion: must_not}
`, dir
}

func TestParseConfig(t *testing.T) {
	cases := []struct {
		name string
		edit func(y, dir string) string
		want string // "" means valid
	}{
		{"valid", func(y, _ string) string { return y }, ""},
		{"misspelt top-level key", func(y, _ string) string { return y + "clustres: []\n" }, `unknown key "clustres"`},
		{"misspelt nested key", func(y, _ string) string {
			return strings.Replace(y, "  bind: 127.0.0.1:7001", "  bind: 127.0.0.1:7001\n  tsl: {}", 1)
		}, `unknown key "tsl"`},
		{"inline password refused", func(y, _ string) string {
			return strings.Replace(y, "  user: regent", "  user: regent\n  password: hunter2", 1)
		}, `unknown key "password"`},
		{"bad node id", func(y, _ string) string { return strings.Replace(y, "node_id: a1", "node_id: \"a 1\"", 1) }, "node_id"},
		{"node not among peers", func(y, _ string) string { return strings.Replace(y, "node_id: a1", "node_id: a9", 1) }, "not among the peers"},
		{"two voters", func(y, _ string) string {
			return strings.Replace(y, "    - {id: a3, address: 127.0.0.1:7003}\n", "", 1)
		}, "use 3 or 5"},
		{"unknown promotion", func(y, _ string) string { return strings.Replace(y, "must_not", "never", 1) }, "promotion"},
		{"instance agent unknown", func(y, _ string) string { return strings.Replace(y, "agent: a2", "agent: a7", 1) }, "not among raft.peers"},
		{"fence_after not below lease_timeout", func(y, _ string) string {
			return strings.Replace(y, "  - name: main\n", "  - name: main\n    fence_after: 5s\n    lease_timeout: 4s\n", 1)
		}, "fence_after"},
		{"durability typo", func(y, _ string) string {
			return strings.Replace(y, "  - name: main\n", "  - name: main\n    durability: semisync\n", 1)
		}, "durability"},
		{"semi_sync_fallback not a duration", func(y, _ string) string {
			return strings.Replace(y, "  - name: main\n", "  - name: main\n    semi_sync_fallback: soon\n", 1)
		}, `semi_sync_fallback: "soon": want never or a positive duration`},
		{"semi_sync_fallback shorter than a probe", func(y, _ string) string {
			return strings.Replace(y, "  - name: main\n", "  - name: main\n    semi_sync_fallback: 1ms\n", 1)
		}, "semi_sync_fallback (1ms) is shorter than probe_interval"},
		{"missing password file", func(y, dir string) string {
			return strings.Replace(y, "  password_file: "+filepath.Join(dir, "pw"), "  password_file: /nonexistent/pw", 1)
		}, "mysql.password_file"},
		{"password env not set", func(y, dir string) string {
			return strings.Replace(y, "  password_file: "+filepath.Join(dir, "pw"), "  password_env: REGENT_TEST_UNSET_VARIABLE", 1)
		}, "REGENT_TEST_UNSET_VARIABLE is not set"},
		{"cert roles without client CA", func(y, _ string) string {
			return strings.Replace(y, "  listen: 127.0.0.1:8001", "  listen: 127.0.0.1:8001\n  cert_admins: [ops]", 1)
		}, "client_ca_file"},
		{"raft tls without a CA", func(y, dir string) string {
			return strings.Replace(y, "  bind: 127.0.0.1:7001", "  bind: 127.0.0.1:7001\n  tls: {cert_file: "+filepath.Join(dir, "pw")+", key_file: "+filepath.Join(dir, "pw")+"}", 1)
		}, "raft.tls.ca_file"},
		{"joining agent listing itself", func(y, _ string) string {
			return strings.Replace(y, "  bind: 127.0.0.1:7001", "  bind: 127.0.0.1:7001\n  join: true", 1)
		}, "must not list itself"},
		{"fence_after shorter than a re-election", func(y, _ string) string {
			return strings.Replace(y, "  - name: main\n", "  - name: main\n    fence_after: 900ms\n", 1)
		}, "re-election"},
		{"local instance elsewhere", func(y, _ string) string { return strings.Replace(y, "local_instance: db1", "local_instance: db2", 1) }, "must name it as its agent"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			y, dir := validConfigYAML(t)
			_, err := ParseConfig([]byte(tc.edit(y, dir)))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("valid config refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestAgentTokenFileMustBePrivate(t *testing.T) {
	y, dir := validConfigYAML(t)
	if err := os.Chmod(filepath.Join(dir, "agent-token"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseConfig([]byte(y)); err == nil || !strings.Contains(err.Error(), "readable by other users") {
		t.Fatalf("a world-readable agent token was accepted: %v", err)
	}
}

func TestClusterPolicyDefaultsAndOverrides(t *testing.T) {
	y, _ := validConfigYAML(t)
	y = strings.Replace(y, "  - name: main\n", "  - name: main\n    probe_interval: 200ms\n    min_agreeing_agents: 2\n    operation_timeout: 5m\n    fast_path: false\n    semi_sync_fallback: 30s\n", 1)
	c, err := ParseConfig([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Clusters[0].Policy()
	checks := []struct {
		name      string
		got, want any
	}{
		{"probe_interval", p.ProbeInterval, 200 * time.Millisecond},
		{"observation_ttl follows probe_interval", p.ObservationTTL, 600 * time.Millisecond},
		{"min_agreeing_agents", p.MinAgreeingAgents, 2},
		{"operation_timeout", p.OperationTimeout, 5 * time.Minute},
		{"fast_path", p.FastPath, false},
		{"step_timeout default", p.StepTimeout, 1500 * time.Millisecond},
		{"fence_after default", p.FenceAfter, 1500 * time.Millisecond},
		{"durability default", string(p.Durability), "semi_sync"},
		{"semi_sync_fallback", p.SemiSyncFallback, 30 * time.Second},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("default policy with overrides invalid: %v", err)
	}
}
