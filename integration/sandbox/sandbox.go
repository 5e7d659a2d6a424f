// Package sandbox runs a whole Regent installation on loopback: three real
// database servers (a primary and two replicas), three real regent processes
// with mutual TLS on Raft and TLS on the API, optionally HAProxy in front, and
// the regentctl binary. The end-to-end tests drive it only through
// regentctl; `make demo` starts one for people to try.
package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/regentdb/regent/integration/testpki"
	"github.com/regentdb/regent/internal/freeport"
	"github.com/regentdb/regent/topology/mysqltest"
)

// Sandbox is one running installation.
type Sandbox struct {
	t      mysqltest.TB
	Dir    string
	DB     *mysqltest.Cluster
	Agents []*Agent

	// AdminToken and ReadToken are the API tokens; AdminTokenFile holds the
	// admin one (for REGENT_TOKEN_FILE). CAFile signs every certificate.
	AdminToken, ReadToken string
	AdminTokenFile        string
	CAFile                string
	ca                    *testpki.CA
	profileDir            string
	// HAProxyAddr is HAProxy's write frontend, when started.
	HAProxyAddr string
}

// Agent is one regent process.
type Agent struct {
	ID, CfgPath, LogPath string
	APIAddr, RaftAddr    string
	cmd                  *exec.Cmd
	done                 chan struct{}
}

// PID is the agent process's id (0 before it started).
func (a *Agent) PID() int {
	if a.cmd == nil || a.cmd.Process == nil {
		return 0
	}
	return a.cmd.Process.Pid
}

// Options choose what to start.
type Options struct {
	// HAProxy puts HAProxy in front: health checks on /primary (pull) and
	// the runtime API socket (push).
	HAProxy bool
	// AntiFlapPeriod replaces the clusters' anti_flap_period (1m when
	// zero). The benchmarks, which kill one primary after another, set it
	// short so that each trial fails over automatically.
	AntiFlapPeriod time.Duration
	// DefaultTimings leaves Raft's and the cluster's timings (probe
	// interval, failure timeout, fencing, lease, steps) at Regent's
	// defaults instead of the sandbox's fast ones.
	DefaultTimings bool
	// RaftExtra is lines added to every agent's raft section, e.g.
	// "  commit_timeout: 100ms\n".
	RaftExtra string
	// ProfileDir, when set, receives each agent's CPU profile of its
	// whole run (regent --cpu-profile), as ID.pprof.
	ProfileDir string
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// Binaries builds regent and regentctl once per process and returns their
// paths.
func Binaries(t mysqltest.TB) (regent, regentctl string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "regent-bin-")
		if buildErr != nil {
			return
		}
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
		// Stamped as make build stamps them (the end-to-end test reads the
		// version back from both binaries).
		version := "sandbox"
		describe := exec.Command("git", "describe", "--tags", "--always", "--dirty")
		describe.Dir = root
		if out, err := describe.Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
			version = string(bytes.TrimSpace(out))
		}
		cmd := exec.Command("go", "build", "-ldflags", "-X main.version="+version, "-o", binDir+"/", "./cmd/regent", "./cmd/regentctl")
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

// FreePort returns a free TCP port of 127.0.0.1 for an agent to bind later
// (see package freeport).
func FreePort(t mysqltest.TB) int {
	t.Helper()
	p, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// RandomToken returns a random hex token (API tokens, passwords).
func RandomToken(t mysqltest.TB) string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func WriteFile(t mysqltest.TB, path, content string, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// AgentCert makes agent id's certificate (URI SAN urn:regent:agent:ID, for
// 127.0.0.1, server and client: Raft's mutual TLS and the API), signed by
// the sandbox's CA, and returns the paths of the certificate and its key.
// An agent added later (a member joining) needs one of its own: every agent
// is known by its certificate.
func (s *Sandbox) AgentCert(id string) (cert, key string) {
	s.t.Helper()
	certPEM, keyPEM, err := s.ca.Agent(id, []net.IP{net.ParseIP("127.0.0.1")}, []string{"localhost"})
	if err != nil {
		s.t.Fatal(err)
	}
	cert = WriteFile(s.t, filepath.Join(s.Dir, id+".pem"), string(certPEM), 0o644)
	key = WriteFile(s.t, filepath.Join(s.Dir, id+"-key.pem"), string(keyPEM), 0o600)
	return cert, key
}

// Start starts the databases and three agents (and HAProxy), and waits
// until the cluster is recorded with p as its writable primary and nothing
// is left to fix. Everything stops and is removed at t's cleanup.
func Start(t mysqltest.TB, k mysqltest.Kind, o Options) *Sandbox {
	t.Helper()
	regent, _ := Binaries(t)
	dir, err := os.MkdirTemp("", "regent-sandbox-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	s := &Sandbox{t: t, Dir: dir, profileDir: o.ProfileDir}
	s.DB = mysqltest.StartCluster(t, k, 2)
	mysqltest.EnsureTable(t, s.DB.Primary)

	if s.ca, err = testpki.NewCA("regent sandbox CA"); err != nil {
		t.Fatal(err)
	}
	ca := WriteFile(t, filepath.Join(s.Dir, "ca.pem"), string(s.ca.PEM), 0o644)
	s.CAFile = ca
	s.AdminToken, s.ReadToken = RandomToken(t), RandomToken(t)
	s.AdminTokenFile = WriteFile(t, filepath.Join(s.Dir, "admin-token"), s.AdminToken+"\n", 0o600)
	tokens := WriteFile(t, filepath.Join(s.Dir, "tokens"), fmt.Sprintf("admin:%s:operator\nread-only:%s:dashboard\n", s.AdminToken, s.ReadToken), 0o600)
	agentToken := WriteFile(t, filepath.Join(s.Dir, "agent-token"), RandomToken(t)+"\n", 0o600)
	mysqlPw := WriteFile(t, filepath.Join(s.Dir, "mysql-password"), mysqltest.AdminPassword+"\n", 0o600)
	replPw := WriteFile(t, filepath.Join(s.Dir, "repl-password"), mysqltest.ReplPassword+"\n", 0o600)

	servers := s.DB.Servers()
	for i := range servers {
		s.Agents = append(s.Agents, &Agent{ID: fmt.Sprintf("agent%d", i+1),
			APIAddr: "127.0.0.1:" + strconv.Itoa(FreePort(t)), RaftAddr: "127.0.0.1:" + strconv.Itoa(FreePort(t))})
	}
	var peers []Peer
	var instances strings.Builder
	for i, a := range s.Agents {
		peers = append(peers, Peer{ID: a.ID, Raft: a.RaftAddr, API: a.APIAddr})
		fmt.Fprintf(&instances, "      - {name: %s, address: %q, agent: %s}\n", servers[i].Name, servers[i].Addr(), a.ID)
	}
	mysqlExtra := "  replication_heartbeat: 250ms\n"
	if k == mysqltest.MySQL {
		// MySQL made its own certificate; the sandbox does not verify it.
		mysqlExtra += "  tls: {insecure_skip_verify: true}\n"
	}
	antiFlap := time.Minute
	if o.AntiFlapPeriod > 0 {
		antiFlap = o.AntiFlapPeriod
	}
	routing := ""
	if o.HAProxy {
		routing = s.startHAProxy(servers)
	}
	raftTimings := "  heartbeat_timeout: 300ms\n  election_timeout: 300ms\n  leader_lease_timeout: 200ms\n"
	clusterTimings := "    probe_interval: 200ms\n    failure_timeout: 1s\n    fence_after: 1s\n    lease_timeout: 3s\n    step_timeout: 1500ms\n"
	if o.DefaultTimings {
		raftTimings, clusterTimings = "", ""
	}
	raftTimings += o.RaftExtra
	for i, a := range s.Agents {
		cert, key := s.AgentCert(a.ID)
		cfg := AgentConfig{NodeID: a.ID, DataDir: filepath.Join(s.Dir, a.ID), LocalInstance: servers[i].Name,
			RaftBind: a.RaftAddr, APIListen: a.APIAddr, Peers: peers, RaftTimings: raftTimings,
			CAFile: ca, CertFile: cert, KeyFile: key, TokensFile: tokens, AgentTokenFile: agentToken,
			MySQLUser: mysqltest.AdminUser, MySQLPasswordFile: mysqlPw, ReplUser: mysqltest.ReplUser, ReplPasswordFile: replPw,
			MySQLExtra: mysqlExtra,
			Clusters: fmt.Sprintf("  - name: main\n    durability: semi_sync\n%s    anti_flap_period: %s\n    instances:\n%s%s",
				clusterTimings, antiFlap, instances.String(), routing),
		}.YAML()
		a.CfgPath = WriteFile(t, filepath.Join(s.Dir, a.ID+".yaml"), cfg, 0o600)
		a.LogPath = filepath.Join(s.Dir, a.ID+".log")
		s.start(regent, a)
	}
	t.Cleanup(s.stopAll)
	// Agents that start without the quorum fence their primary until the
	// leader restores writes; semi-sync is configured by the leader too.
	// Ready means: p is the writable primary and nothing is left to fix.
	s.Eventually("cluster recorded, p writable, nothing to fix", 30*time.Second, func() (bool, string) {
		c, raw := s.Cluster()
		return c.Primary == "p" && c.Writable("p") && c.Healthy(), raw
	})
	return s
}

func (s *Sandbox) start(regent string, a *Agent) {
	s.t.Helper()
	logf, err := os.OpenFile(a.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	args := []string{"--config", a.CfgPath}
	if s.profileDir != "" {
		args = append(args, "--cpu-profile", filepath.Join(s.profileDir, a.ID+".pprof"))
	}
	a.cmd = exec.Command(regent, args...)
	a.done = StartLogged(s.t, logf, a.cmd)
}

// StartLogged starts cmd in a process group of its own with its output in
// logf, and returns a channel closed once it has exited (logf is closed
// then).
func StartLogged(t mysqltest.TB, logf *os.File, cmd *exec.Cmd) chan struct{} {
	t.Helper()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	return done
}

// LoadAvg is the machine's 1, 5 and 15 minute load averages: benchmark
// figures depend on what else runs on the same cores.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// stopAll stops the agents with SIGTERM (as systemd would) and shows their
// logs when the test failed.
func (s *Sandbox) stopAll() {
	for _, a := range s.Agents {
		if a.cmd != nil && a.cmd.Process != nil {
			_ = a.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, a := range s.Agents {
		if a.done == nil {
			continue
		}
		select {
		case <-a.done:
		case <-time.After(15 * time.Second):
			_ = a.cmd.Process.Kill()
			<-a.done
			s.t.Logf("%s did not stop within 15 s of SIGTERM: killed", a.ID)
		}
	}
	if s.t.Failed() {
		for _, a := range s.Agents {
			s.t.Logf("%s log (tail):\n%s", a.ID, LogTail(a.LogPath, 60))
		}
	}
}

// LogTail returns the last n lines of the file at path (what there is when
// it cannot be read).
func LogTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Server returns the database server of the instance named name (p, r1,
// r2), nil when there is none.
func (s *Sandbox) Server(name string) *mysqltest.Server {
	for _, srv := range s.DB.Servers() {
		if srv.Name == name {
			return srv
		}
	}
	return nil
}

// endpoints lists every agent's API for regentctl.
func (s *Sandbox) Endpoints() string {
	var e []string
	for _, a := range s.Agents {
		e = append(e, "https://"+a.APIAddr)
	}
	return strings.Join(e, ",")
}

// ctl runs regentctl with the admin token (from the environment, never an
// argument) and returns stdout, stderr and the exit code.
func (s *Sandbox) Ctl(args ...string) (string, string, int) {
	return s.CtlAs(s.AdminToken, args...)
}

func (s *Sandbox) CtlAs(token string, args ...string) (string, string, int) {
	s.t.Helper()
	return RunCtl(s.t, s.Endpoints(), s.CAFile, token, args...)
}

// RunCtl runs the built regentctl against endpoints (comma-separated
// URLs), trusting caFile, with token from the environment (never an
// argument), for at most a minute; it returns stdout, stderr and the exit
// code, and fails t only when regentctl cannot be run at all.
func RunCtl(t mysqltest.TB, endpoints, caFile, token string, args ...string) (string, string, int) {
	t.Helper()
	_, regentctl := Binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, regentctl, append([]string{"--endpoint", endpoints, "--ca-file", caFile}, args...)...)
	cmd.Env = append(os.Environ(), "REGENT_TOKEN="+token)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("regentctl: %v", err)
	}
	return out.String(), errb.String(), code
}

// Eventually polls cond until it holds, failing the test when timeout passes.
func (s *Sandbox) Eventually(what string, timeout time.Duration, cond func() (bool, string)) {
	s.t.Helper()
	mysqltest.Eventually(s.t, what, timeout, cond)
}

// ClusterJSON is the part of `regentctl status -o json` the tests read.
type ClusterJSON struct {
	Name     string `json:"name"`
	Primary  string `json:"primary"`
	Epoch    uint64 `json:"epoch"`
	Problems []struct {
		Code     string `json:"code"`
		Blockers []struct {
			Kind string `json:"kind"`
		} `json:"blockers"`
	} `json:"problems"`
	Instances []struct {
		Name     string `json:"name"`
		Address  string `json:"address"`
		ReadOnly *bool  `json:"read_only"`
	} `json:"instances"`
	Unacknowledged []struct {
		ID string `json:"id"`
	} `json:"unacknowledged"`
}

// Healthy reports whether the analysis found nothing but Healthy.
func (c ClusterJSON) Healthy() bool {
	for _, p := range c.Problems {
		if p.Code != "Healthy" {
			return false
		}
	}
	return len(c.Problems) > 0
}

// Writable reports whether the agents see the instance as writable.
func (c ClusterJSON) Writable(name string) bool {
	for _, in := range c.Instances {
		if in.Name == name {
			return in.ReadOnly != nil && !*in.ReadOnly
		}
	}
	return false
}

// Cluster reads the only replication cluster through regentctl, and returns
// the raw output too (for messages).
func (s *Sandbox) Cluster() (ClusterJSON, string) {
	s.t.Helper()
	out, errOut, code := s.Ctl("status", "-o", "json")
	if code != 0 {
		return ClusterJSON{}, fmt.Sprintf("exit %d: %s %s", code, out, errOut)
	}
	var st struct {
		Clusters []ClusterJSON `json:"clusters"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Clusters) != 1 {
		return ClusterJSON{}, fmt.Sprintf("unexpected status JSON (%v): %s", err, out)
	}
	return st.Clusters[0], out
}

// startHAProxy starts HAProxy in TCP mode in front of the three servers:
// health checks against each agent's /primary (the pull path) and a runtime
// API socket at admin level for Regent's pushes. It returns the routing
// section of the agents' configuration.
func (s *Sandbox) startHAProxy(servers []*mysqltest.Server) string {
	s.t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/haproxy"); err != nil {
			s.t.Fatalf("haproxy not found: apt-get install haproxy")
		}
	}
	sock := filepath.Join(s.Dir, "haproxy.sock")
	var backends, mapping strings.Builder
	for i, srv := range servers {
		_, apiPort, _ := net.SplitHostPort(s.Agents[i].APIAddr)
		fmt.Fprintf(&backends, "    server %s %s check port %s\n", srv.Name, srv.Addr(), apiPort)
		fmt.Fprintf(&mapping, "            %s: mysql_write/%s\n", srv.Name, srv.Name)
	}
	// The port is picked free and then bound by HAProxy: another process
	// may take it in between, and HAProxy then exits at once. Start it
	// until its runtime socket answers, a few times.
	for attempt := 1; ; attempt++ {
		port := FreePort(s.t)
		s.HAProxyAddr = "127.0.0.1:" + strconv.Itoa(port)
		log, ok := s.runHAProxy(bin, sock, backends.String())
		if ok {
			break
		}
		if attempt == 3 {
			s.t.Fatalf("haproxy did not start (3 attempts); its log:\n%s", log)
		}
		s.t.Logf("haproxy did not start on %s, trying another port; its log:\n%s", s.HAProxyAddr, log)
	}
	return fmt.Sprintf(`    routing:
      haproxy:
        - name: sandbox
          runtime_api: unix:%s
          write_servers:
%s`, sock, mapping.String())
}

// runHAProxy starts HAProxy on s.HAProxyAddr and waits until its runtime
// socket accepts a connection (ok), or it exits (its log is returned).
func (s *Sandbox) runHAProxy(bin, sock, backends string) (string, bool) {
	s.t.Helper()
	cfg := fmt.Sprintf(`global
    stats socket %s mode 600 level admin
defaults
    mode tcp
    timeout connect 1s
    timeout client 1m
    timeout server 1m
frontend mysql_write
    bind %s
    default_backend mysql_write
backend mysql_write
    # Pull: only the agent whose instance is the epoch's writable primary,
    # holding its lease, answers 200 on /primary.
    option httpchk GET /primary
    http-check expect status 200
    default-server inter 300ms fall 2 rise 1 on-marked-down shutdown-sessions check-ssl verify required ca-file %s
%s`, sock, s.HAProxyAddr, s.CAFile, backends)
	path := WriteFile(s.t, filepath.Join(s.Dir, "haproxy.cfg"), cfg, 0o644)
	logPath := filepath.Join(s.Dir, "haproxy.log")
	logf, err := os.Create(logPath)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", path, "-db")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	readLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-done:
			return readLog(), false
		default:
		}
		if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
			c.Close()
			s.t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-done
			})
			return "", true
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return readLog() + "\n(runtime socket not answering after 10s)", false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
