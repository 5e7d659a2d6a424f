package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/integration/testpki"
	"github.com/regentdb/regent/proxyhook"
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
	ca, err := testpki.NewCA("config test CA")
	if err != nil {
		t.Fatal(err)
	}
	write("ca.pem", string(ca.PEM), 0o644)
	for name, mk := range map[string]func() ([]byte, []byte, error){
		"a1":     func() ([]byte, []byte, error) { return ca.Agent("a1", nil, nil) },
		"a2":     func() ([]byte, []byte, error) { return ca.Agent("a2", nil, nil) },
		"mysqld": func() ([]byte, []byte, error) { return ca.MySQL("db1", nil, []string{"db1"}) },
	} {
		c, k, err := mk()
		if err != nil {
			t.Fatal(err)
		}
		write(name+".pem", string(c), 0o644)
		write(name+"-key.pem", string(k), 0o600)
	}
	tokens := write("tokens", "admin:0123456789abcdef0123\n", 0o600)
	agentTok := write("agent-token", "0123456789abcdef0123\n", 0o600)
	pw := write("pw", "secret\n", 0o600)
	return `node_id: a1
data_dir: ` + dir + `
local_instance: db1
raft:
  bind: 127.0.0.1:7001
  insecure_plaintext: true
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
		{"max_parallel_operations set", func(y, _ string) string { return y + "max_parallel_operations: 4\n" }, ""},
		{"max_parallel_operations negative", func(y, _ string) string { return y + "max_parallel_operations: -1\n" }, "max_parallel_operations: is -1; want 1 or more (absent: 32)"},
		{"max_parallel_probes set", func(y, _ string) string { return y + "max_parallel_probes: 64\n" }, ""},
		{"max_parallel_probes negative", func(y, _ string) string { return y + "max_parallel_probes: -2\n" }, "max_parallel_probes: is -2; want 1 or more (absent: 256)"},
		{"bad node id", func(y, _ string) string { return strings.Replace(y, "node_id: a1", "node_id: \"a 1\"", 1) }, "node_id"},
		{"node not among peers", func(y, _ string) string { return strings.Replace(y, "node_id: a1", "node_id: a9", 1) }, "not among the peers"},
		{"two voters", func(y, _ string) string {
			return strings.Replace(y, "    - {id: a3, address: 127.0.0.1:7003}\n", "", 1)
		}, "use 3 or 5"},
		{"unknown promotion", func(y, _ string) string { return strings.Replace(y, "must_not", "never", 1) }, "promotion"},
		{"location labels with promotion_same", func(y, _ string) string {
			y = strings.Replace(y, "  - name: main\n", "  - name: main\n    promotion_same: [region]\n    promotion_prefer_same: [zone]\n", 1)
			y = strings.Replace(y, "agent: a1}", "agent: a1, labels: {region: eu, zone: eu-1a}}", 1)
			return strings.Replace(y, "promotion: must_not}", "promotion: must_not, labels: {region: eu}}", 1)
		}, ""},
		{"an instance without the promotion_same label", func(y, _ string) string {
			y = strings.Replace(y, "  - name: main\n", "  - name: main\n    promotion_same: [region]\n", 1)
			return strings.Replace(y, "agent: a1}", "agent: a1, labels: {region: eu}}", 1)
		}, `clusters[0].instances[1].labels: has no "region", which clusters[0].promotion_same names`},
		{"a bad label value", func(y, _ string) string {
			return strings.Replace(y, "agent: a1}", "agent: a1, labels: {region: \"eu west\"}}", 1)
		}, `clusters[0].instances[0].labels: "region": "eu west"`},
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
		{"misspelt cluster key", func(y, _ string) string {
			return strings.Replace(y, "  - name: main\n", "  - name: main\n    failure_timout: 2s\n", 1)
		}, `unknown key "failure_timout"`},
		{"cluster duration not a duration", func(y, _ string) string {
			return strings.Replace(y, "  - name: main\n", "  - name: main\n    lease_timeout: three\n", 1)
		}, "`three` into time.Duration"},
		{"explicit zero kept, not defaulted", func(y, _ string) string {
			return strings.Replace(y, "  - name: main\n", "  - name: main\n    step_timeout: 0s\n", 1)
		}, "step_timeout is 0s; it must be positive"},
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
		{"raft with TLS", func(y, dir string) string { return withRaftTLS(y, dir, "a1") }, ""},
		{"raft with neither TLS nor the insecure setting", func(y, _ string) string {
			return strings.Replace(y, "  insecure_plaintext: true\n", "", 1)
		}, "raft.tls: required"},
		{"raft with TLS and the insecure setting", func(y, dir string) string {
			return strings.Replace(withRaftTLS(y, dir, "a1"), "  bind: 127.0.0.1:7001", "  bind: 127.0.0.1:7001\n  insecure_plaintext: true", 1)
		}, "raft.insecure_plaintext: set together with raft.tls"},
		{"raft certificate of another agent", func(y, dir string) string { return withRaftTLS(y, dir, "a2") }, `names agent "a2"`},
		{"raft certificate without the agent URI says how to make one", func(y, dir string) string { return withRaftTLS(y, dir, "mysqld") }, "make-certs.sh"},
		{"api certificate without the agent URI", func(y, dir string) string {
			return strings.Replace(y, "  listen: 127.0.0.1:8001", "  listen: 127.0.0.1:8001\n  tls: "+tlsFiles(dir, "mysqld"), 1)
		}, "api.tls.cert_file"},
		{"api TLS without a CA", func(y, dir string) string {
			return strings.Replace(y, "  listen: 127.0.0.1:8001", "  listen: 127.0.0.1:8001\n  tls: {cert_file: "+filepath.Join(dir, "a1.pem")+", key_file: "+filepath.Join(dir, "a1-key.pem")+"}", 1)
		}, "api.tls.ca_file: required"},
		{"cert role given as a URI", func(y, dir string) string {
			return strings.Replace(y, "  listen: 127.0.0.1:8001", "  listen: 127.0.0.1:8001\n  tls: "+tlsFiles(dir, "a1")+"\n  client_ca_file: "+filepath.Join(dir, "ca.pem")+"\n  cert_admins: [\"urn:regent:user:alice\"]", 1)
		}, "api.cert_admins[0]"},
		{"cert roles", func(y, dir string) string {
			return strings.Replace(y, "  listen: 127.0.0.1:8001", "  listen: 127.0.0.1:8001\n  tls: "+tlsFiles(dir, "a1")+"\n  client_ca_file: "+filepath.Join(dir, "ca.pem")+"\n  cert_admins: [alice]\n  cert_readers: [grafana]", 1)
		}, ""},
		{"joining agent listing itself", func(y, _ string) string {
			return strings.Replace(y, "  bind: 127.0.0.1:7001", "  bind: 127.0.0.1:7001\n  join: true", 1)
		}, "must not list itself"},
		{"fence_after shorter than a re-election", func(y, _ string) string {
			return strings.Replace(y, "  - name: main\n", "  - name: main\n    fence_after: 900ms\n", 1)
		}, "re-election"},
		{"api limits", func(y, _ string) string {
			return strings.Replace(y, "api:\n", "api:\n  limits: {max_connections: 1024, health_connections: 64, read_header_timeout: 2s, idle_timeout: 30s}\n", 1)
		}, ""},
		{"api limits too tight", func(y, _ string) string {
			return strings.Replace(y, "api:\n", "api:\n  limits: {max_connections: 8}\n", 1)
		}, "api.limits.max_connections"},
		{"api limits misspelt", func(y, _ string) string {
			return strings.Replace(y, "api:\n", "api:\n  limits: {max_conns: 100}\n", 1)
		}, `unknown key "max_conns"`},
		{"local instance elsewhere", func(y, _ string) string { return strings.Replace(y, "local_instance: db1", "local_instance: db2", 1) }, "must name it as its agent"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			y, dir := validConfigYAML(t)
			_, err := Parse([]byte(tc.edit(y, dir)))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("valid config refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// tlsFiles is a tls: value with the config test CA and cert's files.
func tlsFiles(dir, cert string) string {
	return "{ca_file: " + filepath.Join(dir, "ca.pem") + ", cert_file: " + filepath.Join(dir, cert+".pem") + ", key_file: " + filepath.Join(dir, cert+"-key.pem") + "}"
}

// withRaftTLS replaces the insecure setting with raft.tls using cert.
func withRaftTLS(y, dir, cert string) string {
	return strings.Replace(y, "  insecure_plaintext: true\n", "  tls: "+tlsFiles(dir, cert)+"\n", 1)
}

// Every file that holds a secret follows the tokens file's rule: no
// permission for other users (a dedicated group may read it).
func TestSecretFilesMustBePrivate(t *testing.T) {
	proxySQL := func(y, dir string) string {
		pw := filepath.Join(dir, "proxysql-pw")
		if err := os.WriteFile(pw, []byte("admin-pw\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return y + `    routing:
      proxysql:
        - {name: px1, admin: 127.0.0.1:6032, user: radmin, password_file: ` + pw + `, writer_hostgroup: 10}
`
	}
	cases := []struct {
		name string
		file string // under the test's directory
		mode os.FileMode
		edit func(y, dir string) string
		want []string // keys named in the error; none: accepted
	}{
		{"agent token world-readable", "agent-token", 0o644, nil, []string{"api.agent_token_file"}},
		{"tokens file world-readable", "tokens", 0o604, nil, []string{"api.tokens_file"}},
		{"passwords world-readable", "pw", 0o604, nil, []string{"mysql.password_file", "mysql.replication_password_file"}},
		{"password world-writable", "pw", 0o602, nil, []string{"mysql.password_file"}},
		{"password readable by a group", "pw", 0o640, nil, nil},
		{"proxysql password world-readable", "proxysql-pw", 0o644, proxySQL, []string{"clusters[0].routing.proxysql[0].password_file"}},
		{"proxysql password private", "proxysql-pw", 0o600, proxySQL, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			y, dir := validConfigYAML(t)
			if tc.edit != nil {
				y = tc.edit(y, dir)
			}
			if err := os.Chmod(filepath.Join(dir, tc.file), tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := Parse([]byte(y))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "readable by other users") {
				t.Fatalf("accepted, or refused for another reason: %v", err)
			}
			for _, k := range tc.want {
				if !strings.Contains(err.Error(), k+":") {
					t.Errorf("the error does not name %s: %v", k, err)
				}
			}
		})
	}
}

// ReadSecret checks the file it reads too: the configuration was validated
// earlier, and the mode may have changed since.
func TestReadSecretRefusesAFileOthersCanRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(p, []byte("s3cret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadSecret(p, ""); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("ReadSecret of a world-readable file: %q, %v", got, err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadSecret(p, ""); err != nil || got != "s3cret" {
		t.Fatalf("ReadSecret of a private file: %q, %v", got, err)
	}
}

func TestClusterPolicyDefaultsAndOverrides(t *testing.T) {
	y, _ := validConfigYAML(t)
	y = strings.Replace(y, "  - name: main\n", "  - name: main\n    probe_interval: 200ms\n    min_agreeing_agents: 2\n    operation_timeout: 5m\n    fast_path: false\n    semi_sync_fallback: 30s\n    automatic_failover: false\n", 1)
	c, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Clusters[0].Policy
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
		{"automatic_failover", p.AutomaticFailover, false},
		{"auto_rejoin default", p.AutoRejoin, true},
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

// A key set to zero is zero, not its default: anti_flap_period: 0 turns the
// window off.
func TestClusterPolicyKeepsAnExplicitZero(t *testing.T) {
	y, _ := validConfigYAML(t)
	y = strings.Replace(y, "  - name: main\n", "  - name: main\n    anti_flap_period: 0s\n    max_lag_on_failover: 0s\n", 1)
	c, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Clusters[0].Policy
	if p.AntiFlapPeriod != 0 || p.MaxLagOnFailover != 0 {
		t.Fatalf("anti_flap_period %v, max_lag_on_failover %v: want both 0 as configured", p.AntiFlapPeriod, p.MaxLagOnFailover)
	}
	if d := DefaultPolicy(); p.LeaseTimeout != d.LeaseTimeout || p.ObservationTTL != 3*d.ProbeInterval {
		t.Fatalf("absent keys: lease_timeout %v, observation_ttl %v; want the defaults %v, %v", p.LeaseTimeout, p.ObservationTTL, d.LeaseTimeout, 3*d.ProbeInterval)
	}
}

func TestSecretEnvNames(t *testing.T) {
	var c Config
	c.MySQL.PasswordEnv, c.MySQL.ReplicationPasswordFile = "REGENT_MYSQL_PASSWORD", "/etc/regent/repl-password"
	c.Clusters = []ClusterConfig{{Routing: proxyhook.RoutingConfig{ProxySQL: []proxyhook.ProxySQLConfig{
		{Name: "px1", PasswordEnv: "REGENT_PROXYSQL_PASSWORD"}, {Name: "px2", PasswordFile: "/etc/regent/px2"}}}}}
	if got, want := c.SecretEnvNames(), []string{"REGENT_MYSQL_PASSWORD", "REGENT_PROXYSQL_PASSWORD"}; !slices.Equal(got, want) {
		t.Fatalf("SecretEnvNames() = %q, want %q", got, want)
	}
}

func TestConsensusConfigFromTheRaftSection(t *testing.T) {
	y, dir := validConfigYAML(t)
	y = strings.Replace(y, "  insecure_plaintext: true\n", "  insecure_plaintext: true\n  commit_timeout: 35ms\n", 1)
	c, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := c.Consensus()
	if err != nil {
		t.Fatal(err)
	}
	def := consensus.DefaultConfig()
	checks := []struct {
		name      string
		got, want any
	}{
		{"node id", cc.NodeID, "a1"},
		{"data dir", cc.DataDir, dir},
		{"bind", cc.BindAddr, "127.0.0.1:7001"},
		{"raft address: bind when not advertised", cc.RaftAddr, "127.0.0.1:7001"},
		{"api address: listen when not advertised", cc.APIAddr, "127.0.0.1:8001"},
		{"local instance", cc.Instance, "db1"},
		{"commit timeout set", cc.CommitTimeout, 35 * time.Millisecond},
		{"heartbeat timeout left at the default", cc.HeartbeatTimeout, def.HeartbeatTimeout},
		{"voters", len(cc.Peers), 3},
		{"a voter's instance, from the cluster that names its agent", cc.Peers[1].Instance, "db2"},
		{"a voter whose agent runs beside no instance", cc.Peers[2].Instance, ""},
		{"no join peers when bootstrapping", len(cc.JoinPeers), 0},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}

	// Joining: no voters of its own, the running agents to accept.
	c.Raft.Join = true
	if cc, err = c.Consensus(); err != nil {
		t.Fatal(err)
	}
	if len(cc.Peers) != 0 || len(cc.JoinPeers) != 3 {
		t.Errorf("join: %d voters and %d join peers, want 0 and 3", len(cc.Peers), len(cc.JoinPeers))
	}

	// What consensus refuses stops the agent with the section named.
	c.Raft.Join = false
	c.Raft.HeartbeatTimeout = 2 * c.Raft.ElectionTimeout
	if c.Raft.HeartbeatTimeout == 0 {
		c.Raft.HeartbeatTimeout = time.Second // over the default election timeout
	}
	if _, err := c.Consensus(); err == nil || !strings.HasPrefix(err.Error(), "raft: ") {
		t.Errorf("a heartbeat timeout longer than the election timeout: error %v, want one that starts with \"raft: \"", err)
	}
}
