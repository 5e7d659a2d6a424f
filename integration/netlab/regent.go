package netlab

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/integration/sandbox"
	"github.com/regentdb/regent/integration/testpki"
	"github.com/regentdb/regent/proxyhook"
	"github.com/regentdb/regent/topology/mysqltest"
)

// Ports every host uses (each host has its own address).
const (
	MySQLPort      = 3306
	RaftPort       = 7000
	APIPort        = 8008
	RuntimeAPIPort = 9999 // HAProxy's runtime API, on the HAProxy host
	// ClusterName is the replication cluster's name in Regent's
	// configuration.
	ClusterName = "main"
)

// Profile chooses Regent's settings.
type Profile string

const (
	// Defaults is what README.md and deploy/regent/db1.yaml document: Raft
	// 500/500/250 ms, probe_interval 500ms, failure_timeout 2s,
	// fence_after 1500ms, lease_timeout 3s, step_timeout 1500ms,
	// replication_heartbeat 500ms, semi_sync, anti_flap_period 5m, the
	// routing push's timeout 500ms; config/config.go's defaults for the
	// keys the example leaves out. What the lab does not copy from the
	// example: TLS to mysqld and on the replication channel (MariaDB runs
	// without; MySQL's own certificate is not verified, as in the
	// sandbox), db1's promotion: prefer (all are neutral, the default),
	// hooks, a second HAProxy, and JSON logs (text, for people).
	Defaults Profile = "defaults"
	// Fast is the loopback sandbox's (integration/sandbox): Raft
	// 300/300/200 ms, probe_interval 200ms, failure_timeout 1s,
	// fence_after 1s, lease_timeout 3s, step_timeout 1500ms,
	// replication_heartbeat 250ms, semi_sync, anti_flap_period 1m.
	Fast Profile = "fast"
)

// Options choose what StartRegent starts.
type Options struct {
	// Profile is the settings profile; empty means Defaults.
	Profile Profile
	// AntiFlapPeriod replaces the profile's anti_flap_period when not
	// zero (benchmarks fail over one trial after another).
	AntiFlapPeriod time.Duration
	// PullOnly leaves the routing push out of Regent's configuration (no
	// runtime_api): HAProxy then follows its health checks of /primary
	// alone, and Regent's configuration declares them
	// (routing.health_checks, with HAProxyChecks' timings) so that it
	// reports a switchover's write-blocked window up to when those checks
	// must have converged.
	PullOnly bool
}

// HAProxyChecks are the timings of HAProxy's checks of /primary on the
// write backend (deploy/haproxy/haproxy.cfg's default-server line): the
// lab's haproxy.cfg is written from them, and a PullOnly installation
// declares them to Regent as routing.health_checks.
var HAProxyChecks = proxyhook.HealthCheckConfig{Name: "lb", Inter: 200 * time.Millisecond,
	FastInter: 200 * time.Millisecond, DownInter: 250 * time.Millisecond, Fall: 2, Rise: 1}

// haproxyMS writes a duration as HAProxy's timings take it (whole
// milliseconds).
func haproxyMS(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }

// Agent is one regent process, inside its host's namespace.
type Agent struct {
	ID                string
	Host              *Host
	CfgPath, LogPath  string
	DataDir           string
	APIAddr, RaftAddr string
	bin               string
	mu                sync.Mutex
	cmd               *exec.Cmd
	done              chan struct{}
}

// Regent is a Regent installation on a lab: db1 (the primary), db2 and db3
// (replicas with GTID replication), each with its mysqld and its agent, and
// an HAProxy host in front.
type Regent struct {
	*Lab
	Kind    mysqltest.Kind
	Options Options
	// DBHosts are db1, db2 and db3.
	DBHosts []*Host
	// LB is HAProxy's host.
	LB *Host
	// HAProxyAddr is HAProxy's write frontend (LB's address, port 3306),
	// reachable from the root namespace.
	HAProxyAddr string
	// HAProxyRuntimeAddr is HAProxy's runtime API (TCP, admin level).
	HAProxyRuntimeAddr string
	// HAProxyLog is HAProxy's output.
	HAProxyLog string
	// AdminToken and ReadToken are the API tokens; AdminTokenFile holds the
	// admin one. CAFile signs every agent's certificate.
	AdminToken, ReadToken string
	AdminTokenFile        string
	CAFile                string
	// TLS trusts the lab's CA, for API clients.
	TLS *tls.Config

	haproxy     *exec.Cmd
	haproxyDone chan struct{}
	clientsMu   sync.Mutex
	clients     map[string]*api.Client // by host name
	lastLeader  *Host                  // the agent that led at the last Leader call
}

// StartRegent creates a lab and starts a Regent installation of flavour k
// on it, and waits until db1 is the recorded writable primary, nothing is
// left to fix, and HAProxy routes writes to db1. Everything stops and is
// removed at t's cleanup; the agents' and HAProxy's log tails are printed
// when the test failed.
func StartRegent(t TB, k mysqltest.Kind, o Options) *Regent {
	t.Helper()
	if o.Profile == "" {
		o.Profile = Defaults
	}
	if o.Profile != Defaults && o.Profile != Fast {
		t.Fatalf("netlab: unknown profile %q", o.Profile)
	}
	requireRoot(t) // before the build: say first what the machine lacks
	regentBin, _ := sandbox.Binaries(t)
	l := New(t)
	r := &Regent{Lab: l, Kind: k, Options: o}
	for i := 1; i <= 3; i++ {
		r.DBHosts = append(r.DBHosts, l.AddHost(fmt.Sprintf("db%d", i)))
	}
	r.LB = l.AddHost("lb")
	r.HAProxyAddr = net.JoinHostPort(r.LB.IP, fmt.Sprint(MySQLPort))
	r.HAProxyRuntimeAddr = net.JoinHostPort(r.LB.IP, fmt.Sprint(RuntimeAPIPort))
	p := o.profile()

	r.startDatabases(p)
	r.writeSecrets()
	r.startHAProxy()
	for _, h := range r.DBHosts {
		a := &Agent{ID: h.Name, Host: h, bin: regentBin,
			APIAddr:  net.JoinHostPort(h.IP, fmt.Sprint(APIPort)),
			RaftAddr: net.JoinHostPort(h.IP, fmt.Sprint(RaftPort)),
			DataDir:  filepath.Join(l.Dir, h.Name, "data"),
			LogPath:  filepath.Join(l.Dir, h.Name+".log"),
		}
		h.Agent = a
	}
	for _, h := range r.DBHosts {
		h.Agent.CfgPath = sandbox.WriteFile(t, filepath.Join(l.Dir, h.Name, "regent.yaml"), r.agentConfig(h, p), 0o600)
	}
	for _, h := range r.DBHosts {
		h.Agent.start(t)
	}
	t.Cleanup(r.stopAgents)
	r.WaitReady(t, "db1", 90*time.Second)
	return r
}

// settings are one profile's values, as YAML durations.
type settings struct {
	raft          string // the raft timing lines
	mysql         string // the mysql timing lines
	cluster       string // the cluster's timing lines
	routing       string // the haproxy target's extra lines
	replHeartbeat time.Duration
}

func (o Options) profile() settings {
	var s settings
	antiFlap := o.AntiFlapPeriod
	switch o.Profile {
	case Fast:
		if antiFlap == 0 {
			antiFlap = time.Minute
		}
		s.raft = "  heartbeat_timeout: 300ms\n  election_timeout: 300ms\n  leader_lease_timeout: 200ms\n"
		s.mysql = "  replication_heartbeat: 250ms\n"
		s.replHeartbeat = 250 * time.Millisecond
		s.cluster = fmt.Sprintf(`    durability: semi_sync
    probe_interval: 200ms
    failure_timeout: 1s
    fence_after: 1s
    lease_timeout: 3s
    step_timeout: 1500ms
    anti_flap_period: %s
`, antiFlap)
	default:
		if antiFlap == 0 {
			antiFlap = 5 * time.Minute
		}
		s.raft = "  heartbeat_timeout: 500ms\n  election_timeout: 500ms\n  leader_lease_timeout: 250ms\n  commit_timeout: 20ms\n"
		s.mysql = "  connect_timeout: 500ms\n  read_timeout: 10s\n  replication_heartbeat: 500ms\n"
		s.replHeartbeat = 500 * time.Millisecond
		s.cluster = fmt.Sprintf(`    durability: semi_sync
    probe_interval: 500ms
    probe_timeout: 500ms
    observation_ttl: 1500ms
    failure_timeout: 2s
    fast_path: true
    fence_after: 1500ms
    lease_timeout: 3s
    max_lag_on_failover: 10s
    switchover_max_lag: 1s
    anti_flap_period: %s
    auto_rejoin: true
    step_timeout: 1500ms
    hook_timeout: 10s
    catch_up_timeout: 10s
    long_transaction_wait: 5s
`, antiFlap)
		s.routing = "          timeout: 500ms\n          retry: {attempts: 3, initial_backoff: 50ms, max_backoff: 200ms}\n"
	}
	return s
}

// startDatabases starts mysqld on db1, db2 and db3 (bound to their
// addresses, port 3306, accounts for the lab's subnet), makes db1 the
// writable primary with the writer's table, and db2 and db3 its replicas
// with the profile's heartbeat.
func (r *Regent) startDatabases(p settings) {
	t := r.t
	t.Helper()
	netTimeout := "--slave-net-timeout=15"
	if r.Kind == mysqltest.MySQL {
		netTimeout = "--replica-net-timeout=15"
	}
	for _, h := range r.DBHosts {
		// slave_net_timeout = 15 as in deploy/regent's my.cnf (see its
		// comment: shorter, a lossy link keeps the replicas reconnecting).
		h.DB = mysqltest.Start(t, r.Kind, mysqltest.WithName(h.Name),
			mysqltest.InNetns(h.NS, net.JoinHostPort(h.IP, fmt.Sprint(MySQLPort))),
			mysqltest.WithAccountHosts(r.AccountHost()), mysqltest.WithArgs(netTimeout))
	}
	primary := r.DBHosts[0].DB
	mysqltest.SetWritable(t, primary, true)
	mysqltest.EnsureTable(t, primary)
	hb := fmt.Sprintf("%.3f", p.replHeartbeat.Seconds())
	for _, h := range r.DBHosts[1:] {
		mysqltest.ReplicateFrom(t, h.DB, primary)
		switch r.Kind {
		case mysqltest.MariaDB:
			h.DB.Exec(t, "STOP SLAVE", "CHANGE MASTER TO MASTER_HEARTBEAT_PERIOD="+hb, "START SLAVE")
		case mysqltest.MySQL:
			h.DB.Exec(t, "STOP REPLICA", "CHANGE REPLICATION SOURCE TO SOURCE_HEARTBEAT_PERIOD="+hb, "START REPLICA")
		}
	}
	for _, h := range r.DBHosts[1:] {
		mysqltest.WaitReplicating(t, h.DB, 60*time.Second)
		mysqltest.WaitCaughtUp(t, h.DB, primary, 60*time.Second)
	}
}

// writeSecrets writes the CA, each host's certificate (its address as the
// SAN), the tokens and the passwords.
func (r *Regent) writeSecrets() {
	t := r.t
	t.Helper()
	ca, err := testpki.NewCA("regent netlab CA")
	if err != nil {
		t.Fatal(err)
	}
	r.TLS = ca.ClientConfig()
	r.CAFile = sandbox.WriteFile(t, filepath.Join(r.Dir, "ca.pem"), string(ca.PEM), 0o644)
	for _, h := range r.DBHosts {
		hd := filepath.Join(r.Dir, h.Name)
		if err := os.MkdirAll(hd, 0o700); err != nil {
			t.Fatal(err)
		}
		cert, key, err := ca.Agent(h.Name, []net.IP{net.ParseIP(h.IP)}, []string{h.Name})
		if err != nil {
			t.Fatal(err)
		}
		sandbox.WriteFile(t, filepath.Join(hd, "agent.pem"), string(cert), 0o644)
		sandbox.WriteFile(t, filepath.Join(hd, "agent-key.pem"), string(key), 0o600)
	}
	r.AdminToken, r.ReadToken = randomHex(t, 24), randomHex(t, 24)
	r.AdminTokenFile = sandbox.WriteFile(t, filepath.Join(r.Dir, "admin-token"), r.AdminToken+"\n", 0o600)
	sandbox.WriteFile(t, filepath.Join(r.Dir, "tokens"), fmt.Sprintf("admin:%s:operator\nread-only:%s:dashboard\n", r.AdminToken, r.ReadToken), 0o600)
	sandbox.WriteFile(t, filepath.Join(r.Dir, "agent-token"), randomHex(t, 24)+"\n", 0o600)
	sandbox.WriteFile(t, filepath.Join(r.Dir, "mysql-password"), mysqltest.AdminPassword+"\n", 0o600)
	sandbox.WriteFile(t, filepath.Join(r.Dir, "repl-password"), mysqltest.ReplPassword+"\n", 0o600)
}

// agentConfig is h's regent.yaml.
func (r *Regent) agentConfig(h *Host, p settings) string {
	var peers, instances, writeServers strings.Builder
	for _, d := range r.DBHosts {
		fmt.Fprintf(&peers, "    - {id: %s, address: %q, api: %q}\n", d.Name, d.Agent.RaftAddr, d.Agent.APIAddr)
		fmt.Fprintf(&instances, "      - {name: %s, address: %q, agent: %s}\n", d.Name, d.DB.Addr(), d.Name)
		fmt.Fprintf(&writeServers, "            %s: mysql_write/mysql_%s\n", d.Name, d.Name)
	}
	mysqlTLS := ""
	if r.Kind == mysqltest.MySQL {
		// MySQL made its own certificate; the lab does not verify it.
		mysqlTLS = "  tls: {insecure_skip_verify: true}\n"
	}
	hc := HAProxyChecks
	routing := fmt.Sprintf(`    routing:
      health_checks:
        - {name: %s, inter: %s, fastinter: %s, downinter: %s, fall: %d, rise: %d}
`, hc.Name, haproxyMS(hc.Inter), haproxyMS(hc.FastInter), haproxyMS(hc.DownInter), hc.Fall, hc.Rise)
	if !r.Options.PullOnly {
		routing = fmt.Sprintf(`    routing:
      haproxy:
        - name: lb
          runtime_api: "tcp:%s"
          write_servers:
%s%s`, r.HAProxyRuntimeAddr, writeServers.String(), p.routing)
	}
	hd := filepath.Join(r.Dir, h.Name)
	tlsFiles := fmt.Sprintf("{ca_file: %s, cert_file: %s, key_file: %s}", r.CAFile, filepath.Join(hd, "agent.pem"), filepath.Join(hd, "agent-key.pem"))
	return fmt.Sprintf(`# Generated by integration/netlab for %[1]s (%[2]s), profile %[3]s.
node_id: %[1]s
data_dir: %[4]s
local_instance: %[1]s
raft:
  bind: %[5]q
  advertise: %[5]q
  peers:
%[6]s%[7]s  tls: %[8]s
api:
  listen: %[9]q
  advertise: %[9]q
  tls: %[8]s
  tokens_file: %[10]s
  agent_token_file: %[11]s
mysql:
  user: %[12]s
  password_file: %[13]s
  replication_user: %[14]s
  replication_password_file: %[15]s
%[16]s  local_socket: %[17]s
%[18]sclusters:
  - name: %[19]s
%[20]s    instances:
%[21]s%[22]slog: {format: text, level: %[23]s}
`, h.Name, h.IP, r.Options.Profile, h.Agent.DataDir, h.Agent.RaftAddr, peers.String(), p.raft, tlsFiles,
		h.Agent.APIAddr, filepath.Join(r.Dir, "tokens"), filepath.Join(r.Dir, "agent-token"),
		mysqltest.AdminUser, filepath.Join(r.Dir, "mysql-password"), mysqltest.ReplUser, filepath.Join(r.Dir, "repl-password"),
		p.mysql, h.DB.Socket(), mysqlTLS, ClusterName, p.cluster, instances.String(), routing, logLevel())
}

// logLevel is the agents' log level: REGENT_TEST_LOG_LEVEL (debug shows the
// leader's analysis and why a problem is blocked, for replaying a chaos
// seed), info by default.
func logLevel() string {
	switch l := os.Getenv("REGENT_TEST_LOG_LEVEL"); l {
	case "debug", "info", "warn", "error":
		return l
	default:
		return "info"
	}
}

// startHAProxy starts HAProxy in LB's namespace: TCP mode, the write
// frontend on LB's port 3306, health checks GET /primary over TLS to each
// agent with deploy/haproxy/haproxy.cfg's timings, and the runtime API on
// TCP for the agents' pushes. It waits until the runtime API answers.
func (r *Regent) startHAProxy() {
	t := r.t
	t.Helper()
	bin, err := lookPath("haproxy")
	if err != nil {
		t.Fatalf("netlab: haproxy not found: apt-get install haproxy (scripts/deps.sh installs it)")
	}
	hc := HAProxyChecks
	var servers strings.Builder
	for _, h := range r.DBHosts {
		fmt.Fprintf(&servers, "    server mysql_%s %s:%d check addr %s port %d\n", h.Name, h.IP, MySQLPort, h.IP, APIPort)
	}
	// deploy/haproxy/haproxy.cfg's write side, with the checks over TLS
	// and the runtime API on TCP for the agents on the other hosts.
	cfg := fmt.Sprintf(`global
    stats socket ipv4@%s level admin
    stats timeout 30s
defaults
    mode tcp
    timeout connect 2s
    timeout client 8h
    timeout server 8h
    timeout check 400ms
frontend mysql_write_in
    bind %s
    default_backend mysql_write
backend mysql_write
    # Pull: only the agent whose instance is the epoch's writable primary,
    # holding its lease, answers 200 on /primary. Push: the agents drive
    # the runtime API above (unless the lab runs pull-only).
    balance first
    option httpchk GET /primary
    http-check expect status 200
    default-server inter %s fastinter %s downinter %s fall %d rise %d on-marked-down shutdown-sessions check-ssl verify required ca-file %s
%s`, r.HAProxyRuntimeAddr, r.HAProxyAddr, haproxyMS(hc.Inter), haproxyMS(hc.FastInter), haproxyMS(hc.DownInter), hc.Fall, hc.Rise,
		r.CAFile, servers.String())
	path := sandbox.WriteFile(t, filepath.Join(r.Dir, "haproxy.cfg"), cfg, 0o644)
	r.HAProxyLog = filepath.Join(r.Dir, "haproxy.log")
	logf, err := os.Create(r.HAProxyLog)
	if err != nil {
		t.Fatal(err)
	}
	cmd := r.LB.Command(context.Background(), bin, "-f", path, "-db")
	done := sandbox.StartLogged(t, logf, cmd)
	r.haproxy, r.haproxyDone = cmd, done
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("haproxy log (tail):\n%s", sandbox.LogTail(r.HAProxyLog, 40))
		}
	})
	mysqltest.Eventually(t, "HAProxy's runtime API answers on "+r.HAProxyRuntimeAddr, 30*time.Second, func() (bool, string) {
		select {
		case <-done:
			t.Fatalf("netlab: haproxy exited at start; its log:\n%s", sandbox.LogTail(r.HAProxyLog, 40))
		default:
		}
		c, err := net.DialTimeout("tcp", r.HAProxyRuntimeAddr, time.Second)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
}

func (a *Agent) start(t TB) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	logf, err := os.OpenFile(a.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := a.Host.Command(context.Background(), a.bin, "--config", a.CfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("netlab: starting the agent on %s: %v", a.Host.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	a.cmd, a.done = cmd, done
}

// PID is the agent's process id, 0 when it is not running.
func (a *Agent) PID() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil || a.cmd.Process == nil || a.exited() {
		return 0
	}
	return a.cmd.Process.Pid
}

// exited reports whether the last started process has ended (mu held).
func (a *Agent) exited() bool {
	if a.done == nil {
		return true
	}
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

func (a *Agent) signal(sig syscall.Signal) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil || a.exited() {
		return fmt.Errorf("the agent on %s is not running", a.Host.Name)
	}
	return a.cmd.Process.Signal(sig)
}

// stop sends sig (SIGCONT too, so that a frozen agent can act on it) and
// waits at most timeout for the agent to exit, then kills it.
func (a *Agent) stop(sig syscall.Signal, timeout time.Duration) (killed bool) {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.mu.Unlock()
	if cmd == nil || done == nil {
		return false
	}
	_ = cmd.Process.Signal(sig)
	_ = cmd.Process.Signal(syscall.SIGCONT)
	select {
	case <-done:
		return false
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return true
	}
}

// stopAgents stops the agents with SIGTERM (as systemd would) and shows
// their logs when the test failed.
func (r *Regent) stopAgents() {
	for _, h := range r.DBHosts {
		if h.Agent != nil && h.Agent.stop(syscall.SIGTERM, 15*time.Second) {
			r.t.Logf("netlab: the agent on %s did not stop within 15 s of SIGTERM: killed", h.Name)
		}
	}
	if r.t.Failed() {
		for _, h := range r.DBHosts {
			if h.Agent != nil {
				r.t.Logf("%s agent log (%s, tail):\n%s", h.Name, h.Agent.LogPath, sandbox.LogTail(h.Agent.LogPath, 60))
			}
		}
	}
}

// Endpoints lists every agent's API for regentctl (comma-separated URLs).
func (r *Regent) Endpoints() string {
	var e []string
	for _, h := range r.DBHosts {
		e = append(e, "https://"+h.Agent.APIAddr)
	}
	return strings.Join(e, ",")
}

// Ctl runs regentctl from the root namespace with the admin token against
// every agent, and returns stdout, stderr and the exit code.
func (r *Regent) Ctl(args ...string) (string, string, int) {
	r.t.Helper()
	return sandbox.RunCtl(r.t, r.Endpoints(), r.CAFile, r.AdminToken, args...)
}

// API returns an API client for h's agent alone, with the admin token (one
// per host, kept: its connections are reused).
func (r *Regent) API(h *Host) *api.Client {
	r.t.Helper()
	r.clientsMu.Lock()
	defer r.clientsMu.Unlock()
	if c, ok := r.clients[h.Name]; ok {
		return c
	}
	c, err := api.NewClient(api.ClientConfig{Endpoints: []string{"https://" + h.Agent.APIAddr}, Token: r.AdminToken,
		TLS: r.TLS.Clone(), Timeout: 2 * time.Second, UserAgent: "regent-netlab"})
	if err != nil {
		r.t.Fatal(err)
	}
	if r.clients == nil {
		r.clients = map[string]*api.Client{}
	}
	r.clients[h.Name] = c
	return c
}

// LeaderCluster returns the replication cluster as the Raft leader sees it
// (Leader).
func (r *Regent) LeaderCluster(ctx context.Context) (api.Cluster, error) {
	_, c, err := r.Leader(ctx)
	return c, err
}

// Leader returns the host whose agent leads and the replication cluster
// as it sees it, asking each agent whether it leads (an agent cut off from
// the others answers with its own, stale view, which this skips). The agent
// that led last time is asked first: a frozen agent costs a client timeout
// per call, and the leader is rarely it.
func (r *Regent) Leader(ctx context.Context) (*Host, api.Cluster, error) {
	r.clientsMu.Lock()
	last := r.lastLeader
	r.clientsMu.Unlock()
	hosts := []*Host{}
	if last != nil {
		hosts = append(hosts, last)
	}
	for _, h := range r.DBHosts {
		if h != last {
			hosts = append(hosts, h)
		}
	}
	var errs []error
	for _, h := range hosts {
		c := r.API(h)
		st, err := c.Status(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h.Name, err))
			continue
		}
		if !st.IsLeader {
			continue
		}
		cl, err := c.Cluster(ctx, ClusterName)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s (leader): %w", h.Name, err))
			continue
		}
		r.clientsMu.Lock()
		r.lastLeader = h
		r.clientsMu.Unlock()
		return h, cl, nil
	}
	if len(errs) == 0 {
		return nil, api.Cluster{}, errors.New("no agent says it leads")
	}
	return nil, api.Cluster{}, errors.Join(errs...)
}

// WaitReady waits until the leader records primary as the writable
// primary, with nothing but Healthy in its analysis, no operation running,
// every other instance replicating from it, and HAProxy's write frontend
// leading to it.
func (r *Regent) WaitReady(t TB, primary string, timeout time.Duration) {
	t.Helper()
	want := r.Lab.Host(primary)
	mysqltest.Eventually(t, "the leader records "+primary+" as the writable primary, healthy, and HAProxy routes writes to it", timeout, func() (bool, string) {
		ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
		defer cancel()
		c, err := r.LeaderCluster(ctx)
		if err != nil {
			return false, err.Error()
		}
		if !sandbox.HealthyCluster(c) || c.Primary != primary {
			return false, sandbox.Describe(c)
		}
		id, err := r.WriteServerID(ctx)
		if err != nil || id != want.DB.ServerID {
			return false, fmt.Sprintf("HAProxy's write frontend leads to server_id %d (%v), want %d; %s", id, err, want.DB.ServerID, sandbox.Describe(c))
		}
		return true, ""
	})
}

// WriteServerID connects to HAProxy's write frontend as the application
// and returns the server_id of the server it leads to.
func (r *Regent) WriteServerID(ctx context.Context) (uint32, error) {
	db := r.AppDB()
	defer db.Close()
	var id uint32
	err := db.QueryRowContext(ctx, "SELECT @@server_id").Scan(&id)
	return id, err
}

// AppDB opens a pool of one connection to HAProxy's write frontend as the
// application user, on the test database (close it).
func (r *Regent) AppDB() *sql.DB {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = mysqltest.AppUser, mysqltest.AppPassword, "tcp", r.HAProxyAddr, mysqltest.TestDatabase
	c.Timeout, c.ReadTimeout, c.WriteTimeout = time.Second, 2*time.Second, 2*time.Second
	if r.Kind == mysqltest.MySQL {
		c.TLSConfig = "skip-verify"
	}
	c.Logger = Quiet{}
	conn, err := mysql.NewConnector(c)
	if err != nil {
		panic(err) // only a malformed configuration gets here
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	return db
}

// Quiet is a MySQL driver logger that drops what the driver prints (its
// "unexpected EOF" lines while faults are applied are expected).
type Quiet struct{}

func (Quiet) Print(...any) {}

// KeepLogs copies the agents' logs, HAProxy's log and each mysqld's error
// log into dir (made if missing), for a failed run to be read later.
func (r *Regent) KeepLogs(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := []string{r.HAProxyLog}
	for _, h := range r.DBHosts {
		files = append(files, h.Agent.LogPath)
		if err := os.WriteFile(filepath.Join(dir, h.Name+"-mysqld.err"), []byte(h.DB.ErrorLog()), 0o644); err != nil {
			return err
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // never written: that process did not start
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
