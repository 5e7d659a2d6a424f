//go:build system

package system

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/integration/sandbox"
	"github.com/regentdb/regent/integration/testpki"
)

// Timings of the replication cluster under test (regent.yaml). They are
// the integration sandbox's: quick enough for short scenarios, with the
// lease's margins intact (fence_after + step_timeout < lease_timeout).
const (
	probeInterval  = 200 * time.Millisecond
	failureTimeout = time.Second
	fenceAfter     = time.Second
	leaseTimeout   = 3 * time.Second
	stepTimeout    = 1500 * time.Millisecond
	clusterName    = "main"
	projectPrefix  = "regentsys_"
)

// env is one running docker-compose.test.yml environment.
type env struct {
	t       *testing.T
	root    string   // repository root (where the compose file is)
	compose []string // docker-compose, or docker compose
	project string
	prefix  string // first three octets of the private /24
	dir     string // generated files, mounted into the containers
	binDir  string
	started time.Time

	adminToken             string
	mysqlPw, replPw, appPw string
	caFile                 string
	tlsConfig              *tls.Config
	haproxyAddr            string // HAProxy's write frontend, published on loopback
	haproxyIP              string
	hosts                  []*host
	logOnce                sync.Once
	composeEnv             []string
	keepEnvOnClose         bool
}

// host is one database host: mariadbd and its regent agent.
type host struct {
	name      string // db1: also the agent id and the instance name
	serverID  uint32
	ip        string
	sqlAddr   string // mariadbd, published on 127.0.0.1
	apiAddr   string // the agent's API, published on 127.0.0.1
	container string
	db        *sql.DB // the regent account, for set-up and sampling
	api       *api.Client
	health    *http.Client
}

func (e *env) host(name string) *host {
	for _, h := range e.hosts {
		if h.name == name {
			return h
		}
	}
	e.t.Fatalf("no host %q", name)
	return nil
}

// logf logs with the time since the environment started.
func (e *env) logf(format string, args ...any) {
	e.t.Helper()
	e.t.Logf("[%6.2fs] %s", time.Since(e.started).Seconds(), fmt.Sprintf(format, args...))
}

// TestMain removes the binaries built for the containers when the tests end.
func TestMain(m *testing.M) {
	code := m.Run()
	if prepBin != "" {
		_ = os.RemoveAll(prepBin)
	}
	os.Exit(code)
}

var (
	prepOnce  sync.Once
	prepErr   error
	prepBin   string
	imageTook time.Duration
	imageLog  string
)

// prepare checks the machine, builds (or reuses) the base image and builds
// the binaries, once per test process.
func prepare(t *testing.T, root string) (compose []string, binDir string) {
	t.Helper()
	compose = requireDocker(t)
	prepOnce.Do(func() {
		start := time.Now()
		cmd := exec.Command(filepath.Join(root, "scripts", "build-image.sh"))
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		imageTook, imageLog = time.Since(start), strings.TrimSpace(string(out))
		if err != nil {
			prepErr = fmt.Errorf("scripts/build-image.sh: %v\n%s", err, out)
			return
		}
		dir, err := os.MkdirTemp("", "regent-system-bin-")
		if err != nil {
			prepErr = err
			return
		}
		_ = os.Chmod(dir, 0o755)
		// Static binaries: they run in any root, whatever its libc.
		build := exec.Command("go", "build", "-trimpath", "-o", dir+"/", "./cmd/regent", "./cmd/regentctl")
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			prepErr = fmt.Errorf("go build (CGO_ENABLED=0): %v\n%s", err, out)
			return
		}
		prepBin = dir
	})
	if prepErr != nil {
		t.Fatal(prepErr)
	}
	t.Logf("base image: %s (%.1f s)", imageLog, imageTook.Seconds())
	return compose, prepBin
}

// requireDocker fails the test, saying what is missing, when Docker or
// Compose cannot be used. The system tests are never skipped.
func requireDocker(t *testing.T) []string {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatal("the system tests need Docker: the docker CLI is not on PATH (install Docker Engine, e.g. apt-get install docker.io docker-compose)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Fatalf("the system tests need a running Docker engine this user may use; docker info: %v: %s", err, bytes.TrimSpace(out))
	}
	if exec.CommandContext(ctx, "docker-compose", "version").Run() == nil {
		return []string{"docker-compose"}
	}
	if exec.CommandContext(ctx, "docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	t.Fatal("the system tests need Docker Compose: neither docker-compose (v1, Debian's docker-compose package) nor the docker compose plugin (v2) works")
	return nil
}

// startEnv brings up a fresh environment with db1 as the primary, db2 and db3
// replicating from it, the agents running and agreeing on it, and HAProxy
// routing writes to it. It is torn down (down -v) when the test ends,
// whatever happened; REGENT_SYSTEM_KEEP=1 leaves it running after a failure.
func startEnv(t *testing.T) *env {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	compose, binDir := prepare(t, root)
	removeStaleProjects(t)

	e := &env{t: t, root: root, compose: compose, binDir: binDir, started: time.Now()}
	e.project = fmt.Sprintf("%s%d_%s", projectPrefix, os.Getpid(), randomHex(t, 3))
	e.keepEnvOnClose = os.Getenv("REGENT_SYSTEM_KEEP") == "1"
	t.Cleanup(e.close)

	taken := usedSubnets(t)
	var upErr error
	for attempt := 0; attempt < 6; attempt++ {
		e.prefix = pickPrefix(taken)
		e.generate()
		e.logf("docker-compose up (project %s, network %s.0/24)", e.project, e.prefix)
		out, err := e.composeRun(3*time.Minute, "up", "-d", "--no-build")
		if err == nil {
			upErr = nil
			break
		}
		upErr = fmt.Errorf("docker-compose up: %v\n%s", err, out)
		if !strings.Contains(strings.ToLower(out), "overlap") {
			break
		}
		// Another network took this subnet meanwhile: take another.
		taken = append(taken, e.prefix)
		_, _ = e.composeRun(2*time.Minute, "down", "-v", "--remove-orphans", "-t", "1")
	}
	if upErr != nil {
		t.Fatal(upErr)
	}
	e.attach()
	e.setUpReplication()
	return e
}

// generate writes certificates, secrets, regent.yaml for every host and
// haproxy.cfg for the current prefix.
func (e *env) generate() {
	t := e.t
	t.Helper()
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
	dir, err := os.MkdirTemp("", "regent-system-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	e.dir = dir
	e.composeEnv = append(os.Environ(),
		"REGENT_NET_PREFIX="+e.prefix, "REGENT_SYSTEM_DIR="+e.dir, "REGENT_SYSTEM_BIN="+e.binDir)

	e.adminToken = randomHex(t, 24)
	readToken := randomHex(t, 24)
	agentToken := randomHex(t, 24)
	e.mysqlPw, e.replPw, e.appPw = randomHex(t, 12), randomHex(t, 12), randomHex(t, 12)
	e.haproxyIP = e.prefix + ".20"

	e.hosts = nil
	for i := 1; i <= 3; i++ {
		e.hosts = append(e.hosts, &host{name: fmt.Sprintf("db%d", i), serverID: uint32(10 + i), ip: fmt.Sprintf("%s.%d", e.prefix, 10+i)})
	}
	ca, caPEM := newCA(t)
	e.caFile = writeFile(t, filepath.Join(dir, "ca.pem"), caPEM, 0o644)
	e.tlsConfig = ca.ClientConfig()

	var peers, instances, writeServers strings.Builder
	for _, h := range e.hosts {
		fmt.Fprintf(&peers, "    - {id: %s, address: \"%s:7000\", api: \"%s:8008\"}\n", h.name, h.ip, h.ip)
		fmt.Fprintf(&instances, "      - {name: %s, address: \"%s:3306\", agent: %s}\n", h.name, h.ip, h.name)
		fmt.Fprintf(&writeServers, "            %s: mysql_write/%s\n", h.name, h.name)
	}
	for _, h := range e.hosts {
		hd := filepath.Join(dir, h.name)
		if err := os.MkdirAll(hd, 0o755); err != nil {
			t.Fatal(err)
		}
		certPEM, keyPEM := newLeaf(t, ca, h.name, net.ParseIP(h.ip))
		writeFile(t, filepath.Join(hd, "ca.pem"), caPEM, 0o644)
		writeFile(t, filepath.Join(hd, "agent.pem"), certPEM, 0o644)
		writeFile(t, filepath.Join(hd, "agent-key.pem"), keyPEM, 0o600)
		writeFile(t, filepath.Join(hd, "tokens"), fmt.Sprintf("admin:%s:system-test\nread-only:%s:dashboard\n", e.adminToken, readToken), 0o600)
		writeFile(t, filepath.Join(hd, "agent-token"), agentToken+"\n", 0o600)
		writeFile(t, filepath.Join(hd, "mysql-password"), e.mysqlPw+"\n", 0o600)
		writeFile(t, filepath.Join(hd, "repl-password"), e.replPw+"\n", 0o600)
		writeFile(t, filepath.Join(hd, "app-password"), e.appPw+"\n", 0o600)
		cfg := fmt.Sprintf(`# Generated by integration/system for %[1]s (%[2]s).
node_id: %[1]s
data_dir: /var/lib/regent
local_instance: %[1]s
raft:
  bind: "%[2]s:7000"
  peers:
%[3]s  # The sandbox's Raft timings: a re-election fits in fence_after minus
  # two leader leases, as the configuration check requires.
  heartbeat_timeout: 300ms
  election_timeout: 300ms
  leader_lease_timeout: 200ms
  tls: {ca_file: /etc/regent/ca.pem, cert_file: /etc/regent/agent.pem, key_file: /etc/regent/agent-key.pem}
api:
  listen: "0.0.0.0:8008"
  advertise: "%[2]s:8008"
  tls: {ca_file: /etc/regent/ca.pem, cert_file: /etc/regent/agent.pem, key_file: /etc/regent/agent-key.pem}
  tokens_file: /etc/regent/tokens
  agent_token_file: /etc/regent/agent-token
mysql:
  user: regent
  password_file: /etc/regent/mysql-password
  replication_user: repl
  replication_password_file: /etc/regent/repl-password
  connect_timeout: 500ms
  replication_heartbeat: 250ms
  local_socket: /run/mysqld/mysqld.sock
clusters:
  - name: %[4]s
    durability: semi_sync
    probe_interval: %[5]s
    failure_timeout: %[6]s
    fence_after: %[7]s
    lease_timeout: %[8]s
    step_timeout: %[9]s
    anti_flap_period: 1m
    instances:
%[10]s    routing:
      haproxy:
        - name: lb1
          runtime_api: "tcp:%[11]s:9999"
          write_servers:
%[12]slog: {format: text, level: info}
`, h.name, h.ip, peers.String(), clusterName, probeInterval, failureTimeout, fenceAfter, leaseTimeout, stepTimeout,
			instances.String(), e.haproxyIP, writeServers.String())
		writeFile(t, filepath.Join(hd, "regent.yaml"), cfg, 0o600)
	}

	cd := filepath.Join(dir, "client")
	if err := os.MkdirAll(cd, 0o755); err != nil {
		t.Fatal(err)
	}
	// The application's login on the client host, for the mariadb client.
	writeFile(t, filepath.Join(cd, "app.cnf"), fmt.Sprintf("[client]\nhost=%s\nport=3306\nuser=app\npassword=%s\ndatabase=regent_test\n", e.haproxyIP, e.appPw), 0o600)

	hd := filepath.Join(dir, "haproxy")
	if err := os.MkdirAll(hd, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(hd, "ca.pem"), caPEM, 0o644)
	var servers strings.Builder
	for _, h := range e.hosts {
		fmt.Fprintf(&servers, "    server %s %s:3306 check addr %s port 8008\n", h.name, h.ip, h.ip)
	}
	// deploy/haproxy/haproxy.cfg's write side, with the checks over TLS and
	// the runtime API on TCP for the agents on the other hosts.
	writeFile(t, filepath.Join(hd, "haproxy.cfg"), fmt.Sprintf(`global
    stats socket ipv4@0.0.0.0:9999 level admin
    stats timeout 30s
defaults
    mode tcp
    timeout connect 2s
    timeout client 1h
    timeout server 1h
    timeout check 1s
frontend mysql_write_in
    bind :3306
    default_backend mysql_write
backend mysql_write
    # Pull: only the agent whose instance is the epoch's writable primary,
    # holding its lease, answers 200 on /primary. Push: the agents drive
    # the runtime API above.
    balance first
    option httpchk GET /primary
    http-check expect status 200
    default-server inter 200ms fastinter 200ms downinter 250ms fall 2 rise 1 on-marked-down shutdown-sessions check-ssl verify required ca-file /etc/regent-haproxy/ca.pem
%s`, servers.String()), 0o644)
}

// attach finds the published ports and containers and opens connections.
func (e *env) attach() {
	t := e.t
	t.Helper()
	e.haproxyAddr = e.port("haproxy", 3306)
	for _, h := range e.hosts {
		h.sqlAddr = e.port(h.name, 3306)
		h.apiAddr = e.port(h.name, 8008)
		out, err := e.composeRun(time.Minute, "ps", "-q", h.name)
		if err != nil || strings.TrimSpace(out) == "" {
			t.Fatalf("docker-compose ps -q %s: %v %s", h.name, err, out)
		}
		h.container = lastLine(out)
		h.db = openDB(h.sqlAddr, "regent", e.mysqlPw, "")
		c, err := api.NewClient(api.ClientConfig{Endpoints: []string{"https://" + h.apiAddr}, Token: e.adminToken,
			TLS: e.tlsConfig, Timeout: 2 * time.Second, UserAgent: "regent-system-test"})
		if err != nil {
			t.Fatal(err)
		}
		h.api = c
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil
		tr.TLSClientConfig = e.tlsConfig.Clone()
		h.health = &http.Client{Transport: tr, Timeout: 500 * time.Millisecond}
	}
}

// setUpReplication makes db1 the writable primary with the test table,
// points db2 and db3 at it, starts the agents and waits until they agree on
// db1 and HAProxy routes writes to it.
func (e *env) setUpReplication() {
	t := e.t
	t.Helper()
	for _, h := range e.hosts {
		e.eventually("mariadbd on "+h.name+" accepts the regent account", 3*time.Minute, func() (bool, string) {
			var one int
			err := h.db.QueryRow("SELECT 1").Scan(&one)
			return err == nil, fmt.Sprint(err)
		})
	}
	e.logf("mariadbd up on every host")
	p := e.hosts[0]
	e.exec(p, "SET GLOBAL read_only=OFF",
		"CREATE TABLE regent_test.writes (id BIGINT PRIMARY KEY, sid INT UNSIGNED NOT NULL, at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))")
	for _, r := range e.hosts[1:] {
		e.exec(r, "STOP SLAVE",
			fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=3306, MASTER_USER='repl', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=0.25",
				p.ip, e.replPw),
			"START SLAVE")
	}
	for _, r := range e.hosts[1:] {
		e.eventually(r.name+" replicates from db1 and has the table", time.Minute, func() (bool, string) {
			st, err := slaveStatus(r.db)
			if err != nil {
				return false, err.Error()
			}
			var n int
			_ = r.db.QueryRow("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema='regent_test' AND table_name='writes'").Scan(&n)
			return st["Slave_IO_Running"] == "Yes" && st["Slave_SQL_Running"] == "Yes" && n == 1,
				fmt.Sprintf("IO=%s SQL=%s table=%d %s", st["Slave_IO_Running"], st["Slave_SQL_Running"], n, st["Last_IO_Error"]+st["Last_SQL_Error"])
		})
	}
	for _, h := range e.hosts {
		writeFile(t, filepath.Join(e.dir, h.name, "start"), "", 0o644)
	}
	e.logf("replication set up; agents starting")
	e.eventually("the agents record db1 as the writable primary with nothing to fix", 90*time.Second, func() (bool, string) {
		c, err := e.leaderCluster()
		if err != nil {
			return false, err.Error()
		}
		return c.Primary == "db1" && c.Epoch >= 1 && writable(c, "db1") && healthy(c), describe(c)
	})
	e.eventually("HAProxy routes writes to db1", time.Minute, func() (bool, string) {
		sid, err := e.serverIDThroughHAProxy()
		return err == nil && sid == p.serverID, fmt.Sprintf("server_id %d, %v", sid, err)
	})
	e.logf("ready: db1 primary, epoch 1, HAProxy routes to it")
}

func (e *env) exec(h *host, stmts ...string) {
	e.t.Helper()
	for _, q := range stmts {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := h.db.ExecContext(ctx, q)
		cancel()
		if err != nil {
			e.t.Fatalf("%s: %s: %v", h.name, redact(q), err)
		}
	}
}

func redact(q string) string {
	if i := strings.Index(q, "PASSWORD='"); i >= 0 {
		if j := strings.Index(q[i+10:], "'"); j >= 0 {
			return q[:i+10] + "***" + q[i+10+j:]
		}
	}
	return q
}

// serverIDThroughHAProxy asks the write frontend which server it reaches,
// as the application.
func (e *env) serverIDThroughHAProxy() (uint32, error) {
	db := openDB(e.haproxyAddr, "app", e.appPw, "regent_test")
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var sid uint32
	var ro int
	if err := db.QueryRowContext(ctx, "SELECT @@server_id, @@read_only").Scan(&sid, &ro); err != nil {
		return 0, err
	}
	if ro != 0 {
		return sid, fmt.Errorf("server_id %d is read-only", sid)
	}
	return sid, nil
}

// leaderCluster returns the cluster as the Raft leader sees it.
func (e *env) leaderCluster() (api.Cluster, error) {
	return e.leaderClusterExcept()
}

// leaderClusterExcept asks the agents except those named which one leads,
// and returns that one's view of the cluster.
func (e *env) leaderClusterExcept(skip ...string) (api.Cluster, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var errs []error
	for _, h := range e.hosts {
		if contains(skip, h.name) {
			continue
		}
		st, err := h.api.Status(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h.name, err))
			continue
		}
		if !st.IsLeader {
			continue
		}
		c, err := h.api.Cluster(ctx, clusterName)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s (leader): %w", h.name, err))
			continue
		}
		return c, nil
	}
	if len(errs) == 0 {
		return api.Cluster{}, errors.New("no agent says it leads")
	}
	return api.Cluster{}, errors.Join(errs...)
}

func writable(c api.Cluster, name string) bool {
	for _, in := range c.Instances {
		if in.Name == name {
			return in.ReadOnly != nil && !*in.ReadOnly
		}
	}
	return false
}

func healthy(c api.Cluster) bool {
	for _, p := range c.Problems {
		if p.Code != "Healthy" {
			return false
		}
	}
	return len(c.Problems) > 0
}

// describe is a one-line summary of a cluster view for messages.
func describe(c api.Cluster) string { return sandbox.Describe(c) }

func instance(c api.Cluster, name string) (api.Instance, bool) { return sandbox.InstanceOf(c, name) }

// eventually polls cond every 100 ms until it holds, and fails the test
// (and stops it) when timeout passes first.
func (e *env) eventually(what string, timeout time.Duration, cond func() (bool, string)) time.Duration {
	e.t.Helper()
	took, ok := e.within(what, timeout, cond)
	if !ok {
		e.t.FailNow()
	}
	return took
}

// within polls cond every 100 ms until it holds or timeout passes; on
// timeout it reports an error but lets the test go on, so that one broken
// expectation does not hide what happens next.
func (e *env) within(what string, timeout time.Duration, cond func() (bool, string)) (time.Duration, bool) {
	e.t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return time.Since(start), true
		}
		if time.Now().After(deadline) {
			e.t.Errorf("%s: not true after %v; last: %s", what, timeout, detail)
			return time.Since(start), false
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
}

// docker runs docker with a deadline and returns its combined output.
func (e *env) docker(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	return string(out), err
}

func (e *env) composeRun(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := append(append([]string{}, e.compose[1:]...), "-p", e.project, "-f", filepath.Join(e.root, "docker-compose.test.yml"))
	cmd := exec.CommandContext(ctx, e.compose[0], append(full, args...)...)
	cmd.Dir = e.root
	cmd.Env = e.composeEnv
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// port returns the loopback address Docker published a container port on.
func (e *env) port(service string, port int) string {
	e.t.Helper()
	out, err := e.composeRun(time.Minute, "port", service, strconv.Itoa(port))
	if err != nil {
		e.t.Fatalf("docker-compose port %s %d: %v: %s", service, port, err, out)
	}
	addr := lastLine(out)
	if _, _, err := net.SplitHostPort(addr); err != nil {
		e.t.Fatalf("docker-compose port %s %d: unexpected answer %q", service, port, out)
	}
	// "0.0.0.0:N" from some versions: the port is bound to loopback anyway.
	return strings.Replace(addr, "0.0.0.0:", "127.0.0.1:", 1)
}

// close dumps logs when the test failed and takes the environment down.
func (e *env) close() {
	t := e.t
	for _, h := range e.hosts {
		if h.db != nil {
			_ = h.db.Close()
		}
	}
	if t.Failed() || os.Getenv("REGENT_SYSTEM_LOGS") == "1" {
		e.dumpLogs()
	}
	if t.Failed() {
		if e.keepEnvOnClose {
			t.Logf("REGENT_SYSTEM_KEEP=1: leaving project %s running; files in %s; take it down with:\n  REGENT_NET_PREFIX=%s REGENT_SYSTEM_DIR=%s REGENT_SYSTEM_BIN=%s %s -p %s -f docker-compose.test.yml down -v",
				e.project, e.dir, e.prefix, e.dir, e.binDir, strings.Join(e.compose, " "), e.project)
			return
		}
	}
	start := time.Now()
	if out, err := e.composeRun(3*time.Minute, "down", "-v", "--remove-orphans", "-t", "1"); err != nil {
		t.Errorf("docker-compose down: %v\n%s", err, out)
		removeProject(t, e.project)
	}
	t.Logf("environment %s taken down in %.1f s", e.project, time.Since(start).Seconds())
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
}

// dumpLogs writes every container's log to a file and shows their tails.
func (e *env) dumpLogs() {
	e.logOnce.Do(func() {
		out, _ := e.composeRun(time.Minute, "logs", "--no-color", "-t")
		f, err := os.CreateTemp("", "regent-system-logs-*.txt")
		if err == nil {
			_, _ = f.WriteString(out)
			_ = f.Close()
			e.t.Logf("all container logs: %s", f.Name())
		}
		for _, svc := range []string{"db1", "db2", "db3", "haproxy"} {
			o, _ := e.composeRun(time.Minute, "logs", "--no-color", "--tail", "80", svc)
			e.t.Logf("%s log (tail):\n%s", svc, o)
		}
	})
}

// removeStaleProjects removes what earlier runs of these tests left behind
// when they could not clean up (the test binary killed by -timeout): their
// containers and networks would hold subnets and memory.
func removeStaleProjects(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "ps", "-a", "--filter", "label=com.docker.compose.project",
		"--format", `{{.Label "com.docker.compose.project"}}`).Output()
	if err != nil {
		return
	}
	seen := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		if seen[p] || !strings.HasPrefix(p, projectPrefix) {
			continue
		}
		seen[p] = true
		pidText, _, _ := strings.Cut(strings.TrimPrefix(p, projectPrefix), "_")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue // its test process still runs (another package or run)
		}
		t.Logf("removing %s, left behind by an earlier run", p)
		removeProject(t, p)
	}
}

func removeProject(t *testing.T, project string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	label := "label=com.docker.compose.project=" + project
	if ids, err := exec.CommandContext(ctx, "docker", "ps", "-aq", "--filter", label).Output(); err == nil && len(bytes.TrimSpace(ids)) > 0 {
		if out, err := exec.CommandContext(ctx, "docker", append([]string{"rm", "-f", "-v"}, strings.Fields(string(ids))...)...).CombinedOutput(); err != nil {
			t.Logf("docker rm: %v %s", err, out)
		}
	}
	if ids, err := exec.CommandContext(ctx, "docker", "network", "ls", "-q", "--filter", label).Output(); err == nil && len(bytes.TrimSpace(ids)) > 0 {
		if out, err := exec.CommandContext(ctx, "docker", append([]string{"network", "rm"}, strings.Fields(string(ids))...)...).CombinedOutput(); err != nil {
			t.Logf("docker network rm: %v %s", err, out)
		}
	}
}

// usedSubnets lists the /24 prefixes ("a.b.c") that must not be used: the
// host's own networks and routes, and Docker's networks.
func usedSubnets(t *testing.T) []string {
	t.Helper()
	var nets []*net.IPNet
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
				nets = append(nets, n)
			}
		}
	}
	// Routes (VPNs route networks the host has no address in).
	if b, err := os.ReadFile("/proc/net/route"); err == nil {
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 8 {
				continue
			}
			dst, err1 := strconv.ParseUint(f[1], 16, 32)
			mask, err2 := strconv.ParseUint(f[7], 16, 32)
			if err1 != nil || err2 != nil || mask == 0 {
				continue
			}
			ip := net.IPv4(byte(dst), byte(dst>>8), byte(dst>>16), byte(dst>>24))
			m := net.IPv4Mask(byte(mask), byte(mask>>8), byte(mask>>16), byte(mask>>24))
			nets = append(nets, &net.IPNet{IP: ip, Mask: m})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if ids, err := exec.CommandContext(ctx, "docker", "network", "ls", "-q").Output(); err == nil && len(bytes.TrimSpace(ids)) > 0 {
		out, _ := exec.CommandContext(ctx, "docker", append([]string{"network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"}, strings.Fields(string(ids))...)...).Output()
		for _, s := range strings.Fields(string(out)) {
			if _, n, err := net.ParseCIDR(s); err == nil && n.IP.To4() != nil {
				nets = append(nets, n)
			}
		}
	}
	var taken []string
	for b := 0; b < 256; b++ {
		cand := net.IPNet{IP: net.IPv4(10, 213, byte(b), 0), Mask: net.CIDRMask(24, 32)}
		for _, n := range nets {
			if n.Contains(cand.IP) || cand.Contains(n.IP) {
				taken = append(taken, fmt.Sprintf("10.213.%d", b))
				break
			}
		}
	}
	return taken
}

// pickPrefix picks a random free /24 in 10.213.0.0/16.
func pickPrefix(taken []string) string {
	for {
		p := fmt.Sprintf("10.213.%d", 1+mrand.IntN(254))
		if !contains(taken, p) {
			return p
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

type quiet struct{}

func (quiet) Print(...any) {}

// openDB returns a small pool to a server through a published port.
func openDB(addr, user, password, dbName string) *sql.DB {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = user, password, "tcp", addr, dbName
	c.Timeout, c.ReadTimeout, c.WriteTimeout = time.Second, 3*time.Second, 3*time.Second
	c.AllowNativePasswords = true
	c.Logger = quiet{}
	conn, err := mysql.NewConnector(c)
	if err != nil {
		panic(err) // only a malformed configuration gets here
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	return db
}

func slaveStatus(db *sql.DB) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		return map[string]string{}, rows.Err()
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	m := map[string]string{}
	for i, c := range cols {
		m[c] = vals[i].String
	}
	return m, nil
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func newCA(t *testing.T) (*testpki.CA, string) {
	t.Helper()
	ca, err := testpki.NewCA("regent system-test CA")
	if err != nil {
		t.Fatal(err)
	}
	return ca, string(ca.PEM)
}

// newLeaf makes one host's agent certificate (URI SAN
// urn:regent:agent:NAME; the host name is the agent's node id), for its API
// (server, and client towards the other agents) and Raft (server and
// client): its own address, and loopback for the test's published ports.
func newLeaf(t *testing.T, ca *testpki.CA, name string, ip net.IP) (certPEM, keyPEM string) {
	t.Helper()
	c, k, err := ca.Agent(name, []net.IP{ip, net.ParseIP("127.0.0.1")}, []string{name, "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	return string(c), string(k)
}

// fenceStep returns the fence step of the newest operation that replaced
// old, as the leader's history records it ("fence-old-primary …" or
// "wait-lease …"), polling until that operation has ended.
func (e *env) fenceStep(old string) api.Step {
	e.t.Helper()
	var step api.Step
	e.eventually("the leader's history records how "+old+" was fenced", 30*time.Second, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		for _, h := range e.hosts {
			if h.name == old {
				continue
			}
			hist, err := h.api.History(ctx, clusterName, 10)
			if err != nil {
				continue
			}
			for _, op := range hist.Operations {
				if op.OldPrimary != old || op.Ended == nil {
					continue
				}
				for _, s := range op.Steps {
					if strings.HasPrefix(s.Name, "fence-old-primary") || strings.HasPrefix(s.Name, "wait-lease") {
						step = s
						return true, ""
					}
				}
				return false, fmt.Sprintf("operation %s (%s) has no fence step", op.ID, op.Result)
			}
		}
		return false, "no ended operation replaced " + old
	})
	return step
}
