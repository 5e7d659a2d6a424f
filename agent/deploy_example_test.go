package agent

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/regentdb/regent/apiserver"
	"github.com/regentdb/regent/config"
	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/identity"
)

// The example deployment of deploy/regent/: one regent.yaml per host, checked
// as an operator would run them, with only the /etc/regent/ paths moved to
// files this test makes.
const (
	deployDir        = "../deploy/regent"
	deployEnvExample = "../deploy/systemd/regent.env.example"
	deployHAProxyCfg = "../deploy/haproxy/haproxy.cfg"
)

var deployHosts = []string{"db1", "db2", "db3"}

// deployFixture makes stand-ins for the files the examples name under
// /etc/regent/: a real CA and key pair, and copies of the token examples.
type deployFixture struct {
	// host is the example being loaded: its agent certificates name it
	// (urn:regent:agent:HOST), rewritten in place at each forHost.
	host  string
	dir   string
	files map[string]string // path in the example → file made here
	keys  map[string]*ecdsa.PrivateKey
	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
}

func newDeployFixture(t *testing.T) *deployFixture {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "deploy example CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &deployFixture{dir: t.TempDir(), files: map[string]string{}, keys: map[string]*ecdsa.PrivateKey{}, ca: ca, caKey: key}
}

var etcRegentPath = regexp.MustCompile(`^/etc/regent/[A-Za-z0-9._/-]+$`)

// rewrite moves every /etc/regent/ path among an example's values (not its
// comments) to a fixture file of the kind the path names. The same path gets
// the same file in every example, so that the three hosts' configurations
// stay comparable.
func (f *deployFixture) rewrite(t *testing.T, data []byte) []byte {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode && strings.HasPrefix(n.Value, "/etc/regent/") {
			if !etcRegentPath.MatchString(n.Value) {
				t.Fatalf("%q is not a plain path", n.Value)
			}
			n.Value = f.file(t, n.Value)
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&doc)
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (f *deployFixture) file(t *testing.T, path string) string {
	t.Helper()
	if got, ok := f.files[path]; ok {
		return got
	}
	name := strings.ReplaceAll(strings.TrimPrefix(path, "/etc/regent/"), "/", "_")
	out := filepath.Join(f.dir, name)
	base := filepath.Base(path)
	var content []byte
	switch {
	case strings.HasSuffix(base, "ca.crt"):
		content = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.ca.Raw})
	case strings.HasSuffix(base, ".crt"):
		// The certificate that goes with the key of the same name.
		content = f.leaf(t, strings.TrimSuffix(path, ".crt")+".key")
	case strings.HasSuffix(base, ".key"):
		f.leaf(t, path)
		return f.files[path]
	case base == "tokens":
		content = readFile(t, filepath.Join(deployDir, "tokens.example"))
	case base == "agent-token":
		content = readFile(t, filepath.Join(deployDir, "agent-token.example"))
	default:
		t.Fatalf("the examples name %s, and this test does not know what kind of file that is: add it to deployFixture.file", path)
	}
	if err := os.WriteFile(out, content, 0o600); err != nil {
		t.Fatal(err)
	}
	f.files[path] = out
	return out
}

// leaf makes the key at keyPath (once) and returns a certificate for it.
func (f *deployFixture) leaf(t *testing.T, keyPath string) []byte {
	t.Helper()
	key, ok := f.keys[keyPath]
	if !ok {
		var err error
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(f.dir, strings.ReplaceAll(strings.TrimPrefix(keyPath, "/etc/regent/"), "/", "_"))
		if err := os.WriteFile(out, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
			t.Fatal(err)
		}
		f.keys[keyPath], f.files[keyPath] = key, out
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "deploy example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	if f.host != "" {
		tpl.URIs = []*url.URL{{Scheme: "urn", Opaque: strings.TrimPrefix(identity.AgentURI(f.host), "urn:")}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, f.ca, &key.PublicKey, f.caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// exampleEnv returns the environment variables an example's *_env keys
// name. It decodes without validating: validation needs them set.
func exampleEnv(t *testing.T, data []byte) []string {
	t.Helper()
	var c config.Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("decoding: %v", err)
	}
	var names []string
	for _, n := range []string{c.MySQL.PasswordEnv, c.MySQL.ReplicationPasswordEnv} {
		if n != "" {
			names = append(names, n)
		}
	}
	return names
}

// forHost makes the fixture's certificates the given host's: each file
// keeps its path and key, and its certificate names the host's agent.
func (f *deployFixture) forHost(t *testing.T, host string) {
	t.Helper()
	f.host = host
	for path, file := range f.files {
		if base := filepath.Base(path); strings.HasSuffix(base, ".crt") && !strings.HasSuffix(base, "ca.crt") {
			if err := os.WriteFile(file, f.leaf(t, strings.TrimSuffix(path, ".crt")+".key"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// loadDeployExample reads deploy/regent/HOST.yaml, moves its paths to the
// fixture and sets the environment it names. The fixture's certificates
// are HOST's until the next load.
func loadDeployExample(t *testing.T, fx *deployFixture, host string) []byte {
	t.Helper()
	fx.forHost(t, host)
	data := fx.rewrite(t, readFile(t, filepath.Join(deployDir, host+".yaml")))
	for _, n := range exampleEnv(t, data) {
		t.Setenv(n, "example-secret-of-"+n)
	}
	return data
}

func TestDeployExampleConfigs(t *testing.T) {
	fx := newDeployFixture(t)
	cfgs := map[string]config.Config{}
	env := map[string]bool{}
	for _, host := range deployHosts {
		data := loadDeployExample(t, fx, host)
		for _, n := range exampleEnv(t, data) {
			env[n] = true
		}
		c, err := config.Parse(data)
		if err != nil {
			t.Fatalf("%s.yaml is refused: %v", host, err)
		}
		cfgs[host] = c
	}

	for _, host := range deployHosts {
		c := cfgs[host]
		peer := func(id string) config.PeerConfig {
			for _, p := range c.Raft.Peers {
				if p.ID == id {
					return p
				}
			}
			return config.PeerConfig{}
		}
		checks := []struct {
			name  string
			check func() error
		}{
			{"names itself", func() error {
				if c.NodeID != host || c.LocalInstance != host {
					return fmt.Errorf("node_id %q, local_instance %q; want %q for both", c.NodeID, c.LocalInstance, host)
				}
				return nil
			}},
			{"its local instance names it as agent", func() error {
				for _, cl := range c.Clusters {
					for _, in := range cl.Instances {
						if in.Name == host && in.Agent != host {
							return fmt.Errorf("instance %s has agent %q", in.Name, in.Agent)
						}
					}
				}
				return nil
			}},
			{"advertises what the peers list", func() error {
				p := peer(host)
				if c.Raft.Bind != c.Raft.Advertise || p.Address != c.Raft.Advertise {
					return fmt.Errorf("raft bind %s, advertise %s, peers[%s].address %s", c.Raft.Bind, c.Raft.Advertise, host, p.Address)
				}
				if c.API.Listen != c.API.Advertise || p.API != c.API.Advertise {
					return fmt.Errorf("api listen %s, advertise %s, peers[%s].api %s", c.API.Listen, c.API.Advertise, host, p.API)
				}
				return nil
			}},
			{"each agent runs on its instance's host", func() error {
				for _, cl := range c.Clusters {
					for _, in := range cl.Instances {
						ih, _, _ := net.SplitHostPort(in.Address)
						ah, _, _ := net.SplitHostPort(peer(in.Agent).Address)
						if ih != ah {
							return fmt.Errorf("instance %s at %s, its agent %s at %s", in.Name, ih, in.Agent, ah)
						}
					}
				}
				return nil
			}},
			{"raft is mutual TLS", func() error {
				if t := c.Raft.TLS; t.CAFile == "" || t.CertFile == "" || t.KeyFile == "" {
					return fmt.Errorf("raft.tls: %+v", t)
				}
				return nil
			}},
			{"the API serves TLS and verifies the other agents", func() error {
				if t := c.API.TLS; t.CAFile == "" || t.CertFile == "" || t.KeyFile == "" {
					return fmt.Errorf("api.tls: %+v", t)
				}
				if _, err := tls.LoadX509KeyPair(c.API.TLS.CertFile, c.API.TLS.KeyFile); err != nil {
					return fmt.Errorf("api.tls certificate and key do not match: %v", err)
				}
				return nil
			}},
			{"MySQL connections use verified TLS", func() error {
				m := c.MySQL
				if !m.TLS.Enabled || m.TLS.CAFile == "" || m.TLS.InsecureSkipVerify {
					return fmt.Errorf("mysql.tls: %+v", m.TLS)
				}
				if !m.ReplicationTLS.Enabled || m.ReplicationTLS.CAFile == "" || !m.ReplicationTLS.VerifyServerCert {
					return fmt.Errorf("mysql.replication_tls: %+v", m.ReplicationTLS)
				}
				if _, err := mysqlTLS(c); err != nil {
					return err
				}
				return nil
			}},
			{"nothing draws a security warning at start", func() error {
				if ws := c.SecurityWarnings(); len(ws) > 0 {
					return fmt.Errorf("%v", ws)
				}
				return nil
			}},
			{"each balancer's runtime API is its SSH tunnel's socket", func() error {
				// deploy/systemd/regent-haproxy-tunnel@.service, instance = name
				for _, cl := range c.Clusters {
					for _, h := range cl.Routing.HAProxy {
						if want := "unix:/run/regent-haproxy-" + h.Name + "/admin.sock"; h.RuntimeAPI != want {
							return fmt.Errorf("haproxy %s: runtime_api %s, want %s", h.Name, h.RuntimeAPI, want)
						}
					}
				}
				return nil
			}},
			{"secrets come from the environment or files", func() error {
				m := c.MySQL
				if m.PasswordEnv == "" && m.PasswordFile == "" || m.ReplicationPasswordEnv == "" && m.ReplicationPasswordFile == "" {
					return fmt.Errorf("mysql: %+v", m)
				}
				return nil
			}},
			{"the tokens file loads", func() error {
				tok, err := apiserver.LoadTokenFile(c.API.TokensFile)
				if err != nil {
					return err
				}
				if tok.Len() < 2 {
					return fmt.Errorf("%d token(s); the example shows admin and read-only", tok.Len())
				}
				return nil
			}},
			{"the local mysqld is watched on its socket", func() error {
				if !filepath.IsAbs(c.MySQL.LocalSocket) {
					return fmt.Errorf("mysql.local_socket %q", c.MySQL.LocalSocket)
				}
				return nil
			}},
			{"durability and lease", func() error {
				for _, cl := range c.Clusters {
					p := cl.Policy
					if p.Durability != failover.DurabilitySemiSync {
						return fmt.Errorf("cluster %s: durability %s", cl.Name, p.Durability)
					}
					if p.FenceAfter+p.StepTimeout > p.LeaseTimeout {
						return fmt.Errorf("cluster %s: fence_after %v + step_timeout %v > lease_timeout %v", cl.Name, p.FenceAfter, p.StepTimeout, p.LeaseTimeout)
					}
					// A Raft election must not outlast fence_after, or every
					// change of leader would fence the primary.
					if 2*c.Raft.ElectionTimeout >= p.FenceAfter {
						return fmt.Errorf("cluster %s: fence_after %v is within two election timeouts (%v)", cl.Name, p.FenceAfter, c.Raft.ElectionTimeout)
					}
				}
				return nil
			}},
			{"routing reaches every instance on both balancers, without pre- hooks", func() error {
				for _, cl := range c.Clusters {
					if len(cl.Routing.HAProxy) != 2 {
						return fmt.Errorf("cluster %s: %d haproxy targets", cl.Name, len(cl.Routing.HAProxy))
					}
					for _, h := range cl.Routing.HAProxy {
						for _, in := range cl.Instances {
							if _, ok := h.WriteServers[in.Name]; !ok {
								return fmt.Errorf("cluster %s: haproxy %s has no write server for %s", cl.Name, h.Name, in.Name)
							}
						}
					}
					if len(cl.Routing.Hooks) == 0 {
						return fmt.Errorf("cluster %s: no hook example", cl.Name)
					}
					for _, h := range cl.Routing.Hooks {
						for _, e := range h.Events {
							if e.IsPre() {
								return fmt.Errorf("hook %s runs on %s, which delays every failover", h.Name, e)
							}
						}
					}
				}
				return nil
			}},
		}
		for _, ck := range checks {
			t.Run(host+"/"+ck.name, func(t *testing.T) {
				if err := ck.check(); err != nil {
					t.Error(err)
				}
			})
		}
	}

	// Everything but the per-host keys is the same on the three agents:
	// they decide together.
	shared := []struct {
		name string
		part func(config.Config) any
	}{
		{"data_dir", func(c config.Config) any { return c.DataDir }},
		{"raft.peers", func(c config.Config) any { return c.Raft.Peers }},
		{"raft timings", func(c config.Config) any {
			return []time.Duration{c.Raft.HeartbeatTimeout, c.Raft.ElectionTimeout, c.Raft.LeaderLeaseTimeout, c.Raft.CommitTimeout}
		}},
		{"raft.tls", func(c config.Config) any { return c.Raft.TLS }},
		{"api (but listen, advertise)", func(c config.Config) any { a := c.API; a.Listen, a.Advertise = "", ""; return a }},
		{"mysql", func(c config.Config) any { return c.MySQL }},
		{"clusters", func(c config.Config) any { return c.Clusters }},
		{"log", func(c config.Config) any { return c.Log }},
	}
	for _, s := range shared {
		t.Run("agree/"+s.name, func(t *testing.T) {
			want := s.part(cfgs[deployHosts[0]])
			for _, host := range deployHosts[1:] {
				if got := s.part(cfgs[host]); !reflect.DeepEqual(got, want) {
					t.Errorf("%s.yaml differs from %s.yaml:\n got  %+v\n want %+v", host, deployHosts[0], got, want)
				}
			}
		})
	}
	t.Run("agree/the peers are the three hosts", func(t *testing.T) {
		var ids []string
		for _, p := range cfgs[deployHosts[0]].Raft.Peers {
			ids = append(ids, p.ID)
		}
		if !slices.Equal(ids, deployHosts) {
			t.Errorf("peers %v, want %v", ids, deployHosts)
		}
	})

	t.Run("the env example sets exactly the variables the configs name", func(t *testing.T) {
		inFile := map[string]bool{}
		sc := bufio.NewScanner(bytes.NewReader(readFile(t, deployEnvExample)))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			name, _, ok := strings.Cut(line, "=")
			if !ok {
				t.Errorf("%s: %q is not NAME=value", deployEnvExample, line)
				continue
			}
			inFile[name] = true
		}
		if !reflect.DeepEqual(inFile, env) {
			t.Errorf("%s sets %v; the configs name %v", deployEnvExample, inFile, env)
		}
	})

	t.Run("haproxy.cfg has the write servers and checks the agents' API", func(t *testing.T) {
		servers := haproxyWriteServers(t, string(readFile(t, deployHAProxyCfg)))
		c := cfgs[deployHosts[0]]
		api := map[string]string{}
		for _, p := range c.Raft.Peers {
			api[p.ID] = p.API
		}
		for _, cl := range c.Clusters {
			for _, h := range cl.Routing.HAProxy {
				for _, in := range cl.Instances {
					ref := h.WriteServers[in.Name]
					srv, ok := servers[ref]
					if !ok {
						t.Errorf("haproxy %s maps %s to %s, which %s lacks (it has %v)", h.Name, in.Name, ref, deployHAProxyCfg, servers)
						continue
					}
					if srv.addr != in.Address {
						t.Errorf("%s sends %s's traffic to %s; the instance is at %s", ref, in.Name, srv.addr, in.Address)
					}
					if srv.check != api[in.Agent] {
						t.Errorf("%s is health-checked at %s; %s's agent API is %s", ref, srv.check, in.Name, api[in.Agent])
					}
				}
			}
		}
	})
}

type haproxyServer struct{ addr, check string }

// haproxyWriteServers returns "backend/server" → address and health-check
// address of every server line in the backends of a haproxy.cfg.
func haproxyWriteServers(t *testing.T, cfg string) map[string]haproxyServer {
	t.Helper()
	out := map[string]haproxyServer{}
	backend := ""
	for _, line := range strings.Split(cfg, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch {
		case f[0] == "backend" && len(f) > 1:
			backend = f[1]
		case f[0] == "frontend" || f[0] == "listen" || f[0] == "global" || f[0] == "defaults":
			backend = ""
		case f[0] == "server" && backend != "" && len(f) > 2:
			s := haproxyServer{addr: f[2]}
			host, port := "", ""
			for i := 3; i+1 < len(f); i++ {
				switch f[i] {
				case "addr":
					host = f[i+1]
				case "port":
					port = f[i+1]
				}
			}
			if host != "" && port != "" {
				if _, err := strconv.Atoi(port); err == nil {
					s.check = net.JoinHostPort(host, port)
				}
			}
			out[backend+"/"+f[1]] = s
		}
	}
	return out
}

// yamlSet sets key to value (YAML text) in the mapping at path (dotted keys
// and sequence indexes, "" for the top), adding the key when it is absent.
func yamlSet(t *testing.T, doc *yaml.Node, path, key, value string) {
	t.Helper()
	n := doc.Content[0]
	if path != "" {
		for _, step := range strings.Split(path, ".") {
			switch n.Kind {
			case yaml.MappingNode:
				var next *yaml.Node
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == step {
						next = n.Content[i+1]
					}
				}
				if next == nil {
					t.Fatalf("yamlSet: no key %q on the way to %q", step, path)
				}
				n = next
			case yaml.SequenceNode:
				i, err := strconv.Atoi(step)
				if err != nil || i >= len(n.Content) {
					t.Fatalf("yamlSet: no item %q on the way to %q", step, path)
				}
				n = n.Content[i]
			default:
				t.Fatalf("yamlSet: %q is not a mapping or sequence on the way to %q", step, path)
			}
		}
	}
	if n.Kind != yaml.MappingNode {
		t.Fatalf("yamlSet: %q is not a mapping", path)
	}
	var v yaml.Node
	if err := yaml.Unmarshal([]byte(value), &v); err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content[i+1] = v.Content[0]
			return
		}
	}
	n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v.Content[0])
}

// TestDeployExampleRejects changes one thing in db1's example and checks
// that the agent refuses it, naming the key.
func TestDeployExampleRejects(t *testing.T) {
	fx := newDeployFixture(t)
	base := loadDeployExample(t, fx, "db1")
	cases := []struct {
		name      string
		path, key string
		value     string
		want      string // "" when the configuration must be accepted
	}{
		{name: "the example unchanged is accepted"},
		{name: "an unknown top-level key", key: "clustres", value: "[]", want: "clustres"},
		{name: "a misspelt key in raft.tls", path: "raft.tls", key: "ca_flie", value: "/tmp/ca.crt", want: "ca_flie"},
		{name: "a misspelt key in a cluster", path: "clusters.0", key: "probe_intervall", value: "1s", want: "probe_intervall"},
		{name: "an unknown key in a haproxy target", path: "clusters.0.routing.haproxy.0", key: "runtime_socket", value: "/run/haproxy.sock", want: "runtime_socket"},
		{name: "an inline password", path: "mysql", key: "password", value: "hunter2", want: "password"},
		{name: "fence_after not below lease_timeout", path: "clusters.0", key: "fence_after", value: "3s", want: "fence_after"},
		{name: "a password variable that is not set", path: "mysql", key: "password_env", value: "REGENT_DEPLOY_TEST_UNSET", want: "mysql.password_env"},
		{name: "a local instance of no cluster", key: "local_instance", value: "db9", want: "local_instance"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal(base, &doc); err != nil {
				t.Fatal(err)
			}
			if tc.key != "" {
				yamlSet(t, &doc, tc.path, tc.key, tc.value)
			}
			data, err := yaml.Marshal(&doc)
			if err != nil {
				t.Fatal(err)
			}
			_, err = config.Parse(data)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == "":
			case err == nil:
				t.Fatalf("accepted; want an error naming %q", tc.want)
			case !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

// TestMakeCertsMakesTheTrustModelsCertificates runs deploy/regent/make-certs.sh
// and checks what it makes against what the agents check (README
// "Security"): each agent's certificate names it and chains to the Regent
// CA; mysqld's chains only to the MySQL CA and names no agent, so it can
// stand in for no agent, on no port; a user's certificate names the user,
// for client authentication only.
func TestMakeCertsMakesTheTrustModelsCertificates(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("make-certs.sh needs openssl: apt-get install openssl (make deps installs it)")
	}
	dir := t.TempDir()
	out, err := exec.Command("bash", filepath.Join(deployDir, "make-certs.sh"), "-o", dir, "-d", "30", "-u", "alice",
		"db1=10.0.0.11", "db2=10.0.0.12,db2.example.internal").CombinedOutput()
	if err != nil {
		t.Fatalf("make-certs.sh: %v\n%s", err, out)
	}
	regentCA, err := identity.LoadPool(filepath.Join(dir, "regent-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	mysqlCA, err := identity.LoadPool(filepath.Join(dir, "mysql-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(rel string) *x509.Certificate {
		t.Helper()
		c, err := identity.LeafFromFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	verify := func(c *x509.Certificate, pool *x509.CertPool, usage x509.ExtKeyUsage) error {
		return identity.Verify([]*x509.Certificate{c}, pool, usage)
	}
	for _, host := range []string{"db1", "db2"} {
		agent, mysqld := leaf(host+"/regent.crt"), leaf(host+"/mysql.crt")
		if err := identity.CheckAgentCert(agent, host); err != nil {
			t.Errorf("%s/regent.crt: %v", host, err)
		}
		for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if err := verify(agent, regentCA, u); err != nil {
				t.Errorf("%s/regent.crt does not chain to the Regent CA for %v: %v", host, u, err)
			}
			if err := verify(mysqld, mysqlCA, u); err != nil {
				t.Errorf("%s/mysql.crt does not chain to the MySQL CA for %v: %v", host, u, err)
			}
		}
		if verify(mysqld, regentCA, x509.ExtKeyUsageClientAuth) == nil {
			t.Errorf("%s/mysql.crt chains to the Regent CA: it could reach an agent's ports", host)
		}
		if verify(agent, mysqlCA, x509.ExtKeyUsageClientAuth) == nil {
			t.Errorf("%s/regent.crt chains to the MySQL CA", host)
		}
		if _, err := identity.Agent(mysqld); err == nil {
			t.Errorf("%s/mysql.crt names an agent", host)
		}
		if _, err := identity.User(mysqld); err == nil {
			t.Errorf("%s/mysql.crt names a user", host)
		}
		for _, rel := range []string{host + "/regent.key", host + "/mysql.key", "regent-ca.key", "mysql-ca.key"} {
			st, err := os.Stat(filepath.Join(dir, rel))
			if err != nil {
				t.Errorf("%s: %v", rel, err)
			} else if st.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v, want 600", rel, st.Mode().Perm())
			}
		}
	}
	if got := leaf("db2/regent.crt").DNSNames; !slices.Contains(got, "db2.example.internal") {
		t.Errorf("db2's extra name missing: %v", got)
	}
	alice := leaf("users/alice.crt")
	if name, err := identity.User(alice); err != nil || name != "alice" {
		t.Errorf("users/alice.crt: %q, %v", name, err)
	}
	if err := verify(alice, regentCA, x509.ExtKeyUsageClientAuth); err != nil {
		t.Errorf("users/alice.crt: %v", err)
	}
	if verify(alice, regentCA, x509.ExtKeyUsageServerAuth) == nil {
		t.Error("users/alice.crt can serve")
	}
	if _, err := identity.Agent(alice); err == nil {
		t.Error("users/alice.crt names an agent")
	}
}
