package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/regentdb/regent/topology/mysqltest"
)

// sandbox is a whole Regent installation on loopback: three real database
// servers (a primary and two replicas), three real regent processes with
// mutual TLS on Raft and TLS on the API, and the regentctl binary. Tests drive
// it only through regentctl, as an operator would.
type sandbox struct {
	t      testing.TB
	dir    string
	db     *mysqltest.Cluster
	agents []*agentProc

	adminToken, readToken string
	caFile                string
}

type agentProc struct {
	id, cfgPath, logPath string
	apiAddr, raftAddr    string
	cmd                  *exec.Cmd
	done                 chan struct{}
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds regent and regentctl once per test process.
func binaries(t testing.TB) (regent, regentctl string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "regent-bin-")
		if buildErr != nil {
			return
		}
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Dir(filepath.Dir(file))
		cmd := exec.Command("go", "build", "-o", binDir+"/", "./cmd/regent", "./cmd/regentctl")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "regent"), filepath.Join(binDir, "regentctl")
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomToken(t testing.TB) string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func write(t testing.TB, path, content string, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeCerts makes a CA and one certificate for 127.0.0.1 usable as server
// and client (Raft's mutual TLS and the API).
func writeCerts(t testing.TB, dir string) (ca, cert, key string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "regent sandbox CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTpl, caTpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "regent agent"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, caCert, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(k)
	ca = write(t, filepath.Join(dir, "ca.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})), 0o644)
	cert = write(t, filepath.Join(dir, "agent.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), 0o644)
	key = write(t, filepath.Join(dir, "agent-key.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})), 0o600)
	return ca, cert, key
}

// startSandbox starts the databases and three agents, and waits until the
// cluster is recorded with p as its writable primary.
func startSandbox(t testing.TB, k mysqltest.Kind) *sandbox {
	t.Helper()
	regent, _ := binaries(t)
	s := &sandbox{t: t, dir: t.TempDir()}
	s.db = mysqltest.StartCluster(t, k, 2)
	mysqltest.EnsureTable(t, s.db.Primary)

	ca, cert, key := writeCerts(t, s.dir)
	s.caFile = ca
	s.adminToken, s.readToken = randomToken(t), randomToken(t)
	tokens := write(t, filepath.Join(s.dir, "tokens"), fmt.Sprintf("admin:%s:operator\nread-only:%s:dashboard\n", s.adminToken, s.readToken), 0o600)
	agentToken := write(t, filepath.Join(s.dir, "agent-token"), randomToken(t)+"\n", 0o600)
	mysqlPw := write(t, filepath.Join(s.dir, "mysql-password"), mysqltest.AdminPassword+"\n", 0o600)
	replPw := write(t, filepath.Join(s.dir, "repl-password"), mysqltest.ReplPassword+"\n", 0o600)

	servers := s.db.Servers()
	for i := range servers {
		s.agents = append(s.agents, &agentProc{id: fmt.Sprintf("agent%d", i+1),
			apiAddr: "127.0.0.1:" + strconv.Itoa(freePort(t)), raftAddr: "127.0.0.1:" + strconv.Itoa(freePort(t))})
	}
	var peers, instances strings.Builder
	for i, a := range s.agents {
		fmt.Fprintf(&peers, "    - {id: %s, address: %q, api: %q}\n", a.id, a.raftAddr, a.apiAddr)
		fmt.Fprintf(&instances, "      - {name: %s, address: %q, agent: %s}\n", servers[i].Name, servers[i].Addr(), a.id)
	}
	mysqlTLS := ""
	if k == mysqltest.MySQL {
		// MySQL made its own certificate; the sandbox does not verify it.
		mysqlTLS = "  tls: {insecure_skip_verify: true}\n"
	}
	for i, a := range s.agents {
		cfg := fmt.Sprintf(`node_id: %s
data_dir: %s
local_instance: %s
raft:
  bind: %q
  peers:
%s  heartbeat_timeout: 300ms
  election_timeout: 300ms
  leader_lease_timeout: 200ms
  tls: {ca_file: %s, cert_file: %s, key_file: %s}
api:
  listen: %q
  tls: {ca_file: %s, cert_file: %s, key_file: %s}
  tokens_file: %s
  agent_token_file: %s
mysql:
  user: %s
  password_file: %s
  replication_user: %s
  replication_password_file: %s
  replication_heartbeat: 250ms
%sclusters:
  - name: main
    durability: semi_sync
    probe_interval: 200ms
    failure_timeout: 1s
    fence_after: 1s
    lease_timeout: 3s
    step_timeout: 1500ms
    anti_flap_period: 1m
    instances:
%slog: {format: text, level: info}
`, a.id, filepath.Join(s.dir, a.id), servers[i].Name, a.raftAddr, peers.String(), ca, cert, key,
			a.apiAddr, ca, cert, key, tokens, agentToken,
			mysqltest.AdminUser, mysqlPw, mysqltest.ReplUser, replPw, mysqlTLS, instances.String())
		a.cfgPath = write(t, filepath.Join(s.dir, a.id+".yaml"), cfg, 0o600)
		a.logPath = filepath.Join(s.dir, a.id+".log")
		s.start(regent, a)
	}
	t.Cleanup(s.stopAll)
	// Agents that start without the quorum fence their primary until the
	// leader restores writes; semi-sync is configured by the leader too.
	// Ready means: p is the writable primary and nothing is left to fix.
	s.eventually("cluster recorded, p writable, nothing to fix", 30*time.Second, func() (bool, string) {
		c, raw := s.cluster()
		return c.Primary == "p" && c.writable("p") && c.healthy(), raw
	})
	return s
}

func (s *sandbox) start(regent string, a *agentProc) {
	s.t.Helper()
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	a.cmd = exec.Command(regent, "--config", a.cfgPath)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	a.done = make(chan struct{})
	go func() { _ = a.cmd.Wait(); logf.Close(); close(a.done) }()
}

// stopAll stops the agents with SIGTERM (as systemd would) and shows their
// logs when the test failed.
func (s *sandbox) stopAll() {
	for _, a := range s.agents {
		if a.cmd != nil && a.cmd.Process != nil {
			_ = a.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, a := range s.agents {
		if a.done == nil {
			continue
		}
		select {
		case <-a.done:
		case <-time.After(15 * time.Second):
			_ = a.cmd.Process.Kill()
			<-a.done
			s.t.Errorf("%s did not stop within 15 s of SIGTERM", a.id)
		}
	}
	if s.t.Failed() {
		for _, a := range s.agents {
			b, _ := os.ReadFile(a.logPath)
			lines := strings.Split(string(b), "\n")
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			s.t.Logf("%s log (tail):\n%s", a.id, strings.Join(lines, "\n"))
		}
	}
}

// endpoints lists every agent's API for regentctl.
func (s *sandbox) endpoints() string {
	var e []string
	for _, a := range s.agents {
		e = append(e, "https://"+a.apiAddr)
	}
	return strings.Join(e, ",")
}

// ctl runs regentctl with the admin token (from the environment, never an
// argument) and returns stdout, stderr and the exit code.
func (s *sandbox) ctl(args ...string) (string, string, int) {
	return s.ctlAs(s.adminToken, args...)
}

func (s *sandbox) ctlAs(token string, args ...string) (string, string, int) {
	s.t.Helper()
	_, regentctl := binaries(s.t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, regentctl, append([]string{"--endpoint", s.endpoints(), "--ca-file", s.caFile}, args...)...)
	cmd.Env = append(os.Environ(), "REGENT_TOKEN="+token)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatalf("regentctl: %v", err)
	}
	return out.String(), errb.String(), code
}

func (s *sandbox) eventually(what string, timeout time.Duration, cond func() (bool, string)) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: not true after %v; last: %s", what, timeout, detail)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
}
