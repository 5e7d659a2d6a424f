// Package fleet measures and tests Regent over a large simulated fleet:
// real regent agents (processes) managing replication clusters of
// simulated MariaDB instances (topology/mysqlsim, an EMULATION) served by
// fleetsim processes (integration/fleetsim) on loopback addresses.
package fleet

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/integration/sandbox"
	"github.com/regentdb/regent/integration/testpki"
	"github.com/regentdb/regent/topology/mysqltest"
)

// options describe a simulated fleet and the agents over it.
type options struct {
	clusters, size int
	// procs is the number of fleetsim processes the clusters are spread
	// over.
	procs int
	// probe and failureTimeout are every cluster's probe_interval and
	// failure_timeout (Regent's defaults when zero).
	probe, failureTimeout time.Duration
	// parallel is max_parallel_operations (Regent's default when zero).
	parallel int
	// top is more top-level regent.yaml lines ("max_parallel_probes: 512").
	top string
	// prefix is the second octet of the instances' loopback addresses.
	prefix int
	// logLevel is the agents' (warn when empty).
	logLevel string
	// agents is the size of the Raft group (3 when zero).
	agents int
	// profileDir, when set, receives each agent's CPU profile of its whole
	// run (regent --cpu-profile), as ID.pprof.
	profileDir string
}

func instanceName(c, i int) string { return fmt.Sprintf("c%04d-db%d", c, i+1) }
func clusterName(c int) string     { return fmt.Sprintf("c%04d", c) }

// simAddr must match integration/fleetsim's Addr.
func simAddr(prefix, g int) string {
	return fmt.Sprintf("127.%d.%d.%d:%d", prefix, g/250, g%250+1, simPort)
}

const simPort = 23306

type simProc struct {
	first, count int
	cmd          *exec.Cmd
	mu           sync.Mutex
	in           io.WriteCloser
	out          *bufio.Scanner
}

// do sends one command and returns the answer's line.
func (p *simProc) do(command string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := io.WriteString(p.in, command+"\n"); err != nil {
		return "", err
	}
	if !p.out.Scan() {
		return "", fmt.Errorf("fleetsim exited: %v", p.out.Err())
	}
	line := p.out.Text()
	if strings.HasPrefix(line, "error") {
		return line, fmt.Errorf("fleetsim: %s", line)
	}
	return line, nil
}

type agentProc struct {
	id, apiAddr, raftAddr, dataDir, cfgPath, logPath string
	cmd                                              *exec.Cmd
	done                                             chan struct{}
}

type env struct {
	tb     testing.TB
	o      options
	dir    string
	sims   []*simProc
	agents []*agentProc
	token  string
	hc     *http.Client
	ca     string
}

func buildFleetsim(tb testing.TB, dir string) string {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
	bin := filepath.Join(dir, "fleetsim")
	cmd := exec.Command("go", "build", "-o", bin, "./integration/fleetsim")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build fleetsim: %v\n%s", err, out)
	}
	return bin
}

// start starts the fleetsim processes and three agents, and waits until
// every cluster is recorded with its db1 as primary.
func start(tb testing.TB, o options) *env {
	tb.Helper()
	if o.prefix == 0 {
		o.prefix = 21
	}
	dir, err := os.MkdirTemp("", "regent-fleet-")
	if err != nil {
		tb.Fatal(err)
	}
	if os.Getenv("REGENT_FLEET_KEEP") != "" {
		// The agents' logs and configuration, kept to read after a run.
		fmt.Printf("fleet: keeping %s (REGENT_FLEET_KEEP)\n", dir)
	} else {
		tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	}
	e := &env{tb: tb, o: o, dir: dir, token: sandbox.RandomToken(tb)}
	password := sandbox.RandomToken(tb)

	sim := buildFleetsim(tb, dir)
	per := (o.clusters + o.procs - 1) / o.procs
	for first := 0; first < o.clusters; first += per {
		n := min(per, o.clusters-first)
		p := &simProc{first: first, count: n}
		p.cmd = exec.Command(sim, "-first", strconv.Itoa(first), "-clusters", strconv.Itoa(n), "-size", strconv.Itoa(o.size),
			"-prefix", strconv.Itoa(o.prefix), "-port", strconv.Itoa(simPort), "-user", "regent")
		p.cmd.Env = append(os.Environ(), "FLEETSIM_PASSWORD="+password)
		p.cmd.Stderr = os.Stderr
		if p.in, err = p.cmd.StdinPipe(); err != nil {
			tb.Fatal(err)
		}
		stdout, err := p.cmd.StdoutPipe()
		if err != nil {
			tb.Fatal(err)
		}
		p.out = bufio.NewScanner(stdout)
		if err := p.cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = p.in.Close(); _ = p.cmd.Wait() })
		if !p.out.Scan() || !strings.HasPrefix(p.out.Text(), "ready ") {
			tb.Fatalf("fleetsim for clusters %d..%d did not start: %q %v", first, first+n-1, p.out.Text(), p.out.Err())
		}
		e.sims = append(e.sims, p)
	}

	ca, err := testpki.NewCA("regent fleet CA")
	if err != nil {
		tb.Fatal(err)
	}
	e.ca = sandbox.WriteFile(tb, filepath.Join(dir, "ca.pem"), string(ca.PEM), 0o644)
	tokens := sandbox.WriteFile(tb, filepath.Join(dir, "tokens"), "admin:"+e.token+":bench\n", 0o600)
	agentToken := sandbox.WriteFile(tb, filepath.Join(dir, "agent-token"), sandbox.RandomToken(tb)+"\n", 0o600)
	pw := sandbox.WriteFile(tb, filepath.Join(dir, "mysql-password"), password+"\n", 0o600)

	for i := range cmp.Or(o.agents, 3) {
		e.agents = append(e.agents, &agentProc{id: fmt.Sprintf("agent%d", i+1),
			apiAddr:  "127.0.0.1:" + strconv.Itoa(sandbox.FreePort(tb)),
			raftAddr: "127.0.0.1:" + strconv.Itoa(sandbox.FreePort(tb))})
	}
	var peers []sandbox.Peer
	for _, a := range e.agents {
		peers = append(peers, sandbox.Peer{ID: a.id, Raft: a.raftAddr, API: a.apiAddr})
	}
	var clusters strings.Builder
	for c := range o.clusters {
		// The emulation serves no binlog dumps: a stream would only
		// reconnect every half probe interval (a quarter of an agent's
		// CPU at 1,000 instances, measured), which a real primary's one
		// idle stream does not cost. Detection rests on the probes.
		fmt.Fprintf(&clusters, "  - name: %s\n    durability: async\n    watch_binlog: false\n", clusterName(c))
		if o.probe > 0 {
			fmt.Fprintf(&clusters, "    probe_interval: %s\n", o.probe)
		}
		if o.failureTimeout > 0 {
			fmt.Fprintf(&clusters, "    failure_timeout: %s\n", o.failureTimeout)
		}
		clusters.WriteString("    instances:\n")
		for i := range o.size {
			fmt.Fprintf(&clusters, "      - {name: %s, address: %q}\n", instanceName(c, i), simAddr(o.prefix, c*o.size+i))
		}
	}
	top := ""
	if o.parallel > 0 {
		top = fmt.Sprintf("max_parallel_operations: %d\n", o.parallel)
	}
	if o.top != "" {
		top += strings.TrimSpace(o.top) + "\n"
	}
	regent, _ := sandbox.Binaries(tb)
	for _, a := range e.agents {
		certPEM, keyPEM, err := ca.Agent(a.id, []net.IP{net.ParseIP("127.0.0.1")}, []string{"localhost"})
		if err != nil {
			tb.Fatal(err)
		}
		cert := sandbox.WriteFile(tb, filepath.Join(dir, a.id+".pem"), string(certPEM), 0o644)
		key := sandbox.WriteFile(tb, filepath.Join(dir, a.id+"-key.pem"), string(keyPEM), 0o600)
		a.dataDir = filepath.Join(dir, a.id)
		cfg := sandbox.AgentConfig{NodeID: a.id, DataDir: a.dataDir, Top: top,
			RaftBind: a.raftAddr, APIListen: a.apiAddr, Peers: peers,
			CAFile: e.ca, CertFile: cert, KeyFile: key, TokensFile: tokens, AgentTokenFile: agentToken,
			MySQLUser: "regent", MySQLPasswordFile: pw, ReplUser: "regent", ReplPasswordFile: pw,
			Clusters: clusters.String(), LogLevel: cmp.Or(o.logLevel, "warn"),
		}.YAML()
		a.cfgPath = sandbox.WriteFile(tb, filepath.Join(dir, a.id+".yaml"), cfg, 0o600)
		a.logPath = filepath.Join(dir, a.id+".log")
		logf, err := os.Create(a.logPath)
		if err != nil {
			tb.Fatal(err)
		}
		args := []string{"--config", a.cfgPath}
		if o.profileDir != "" {
			args = append(args, "--cpu-profile", filepath.Join(o.profileDir, a.id+".pprof"))
		}
		a.cmd = exec.Command(regent, args...)
		a.done = sandbox.StartLogged(tb, logf, a.cmd)
	}
	tb.Cleanup(e.stopAgents)

	tlsCfg, err := api.LoadClientTLS(api.TLSFiles{CAFile: e.ca})
	if err != nil {
		tb.Fatal(err)
	}
	e.hc = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg, MaxIdleConnsPerHost: 64}}
	return e
}

func (e *env) stopAgents() {
	for _, a := range e.agents {
		if a.cmd.Process != nil {
			_ = a.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, a := range e.agents {
		select {
		case <-a.done:
		case <-time.After(20 * time.Second):
			_ = a.cmd.Process.Kill()
			<-a.done
		}
	}
	if e.tb.Failed() {
		for _, a := range e.agents {
			e.tb.Logf("%s log (tail):\n%s", a.id, sandbox.LogTail(a.logPath, 40))
		}
	}
}

// client is an API client of agent i.
func (e *env) client(i int) *api.Client {
	e.tb.Helper()
	c, err := api.NewClient(api.ClientConfig{Endpoints: []string{e.agents[i].apiAddr}, Token: e.token,
		Transport: e.hc.Transport, Timeout: 10 * time.Second})
	if err != nil {
		e.tb.Fatal(err)
	}
	return c
}

// sim returns the fleetsim process that serves cluster c.
func (e *env) sim(c int) *simProc {
	for _, p := range e.sims {
		if c >= p.first && c < p.first+p.count {
			return p
		}
	}
	e.tb.Fatalf("no fleetsim serves cluster %d", c)
	return nil
}

// eventually polls cond until it holds or timeout passes, failing at once
// if an agent exited meanwhile.
func (e *env) eventually(what string, timeout time.Duration, cond func() (bool, string)) {
	e.tb.Helper()
	mysqltest.EventuallyEvery(e.tb, what, timeout, 200*time.Millisecond, func() (bool, string) {
		ok, detail := cond()
		if !ok {
			for _, a := range e.agents {
				select {
				case <-a.done:
					e.tb.Fatalf("%s: %s exited: %s", what, a.id, sandbox.LogTail(a.logPath, 5))
				default:
				}
			}
		}
		return ok, detail
	})
}

// clusters reads every cluster from agent i, page by page.
func (e *env) clusters(ctx context.Context, i int) ([]api.Cluster, error) {
	c := e.client(i)
	var all []api.Cluster
	after := ""
	for {
		page, err := c.Clusters(ctx, api.ClusterListOptions{Limit: 200, After: after})
		if err != nil {
			return nil, err
		}
		all = append(all, page.Clusters...)
		if page.Next == "" {
			return all, nil
		}
		after = page.Next
	}
}

// waitRecorded waits until agent 0 reads every cluster with its db1 as the
// writable primary and no operation running.
func (e *env) waitRecorded(timeout time.Duration) time.Duration {
	e.tb.Helper()
	start := time.Now()
	e.eventually(fmt.Sprintf("all %d clusters recorded", e.o.clusters), timeout, func() (bool, string) {
		all, err := e.clusters(context.Background(), 0)
		if err != nil {
			return false, err.Error()
		}
		ready := 0
		for _, c := range all {
			if c.Epoch >= 1 && c.Operation == nil && strings.HasSuffix(c.Primary, "-db1") && writable(c, c.Primary) {
				ready++
			}
		}
		return ready == e.o.clusters, fmt.Sprintf("%d of %d clusters ready", ready, e.o.clusters)
	})
	return time.Since(start)
}

// writable reports whether the agents see the instance as writable.
func writable(c api.Cluster, name string) bool {
	in, ok := sandbox.InstanceOf(c, name)
	return ok && in.ReadOnly != nil && !*in.ReadOnly
}

// failedOver reports whether cluster c has moved from its db1 to a
// writable replica, with nothing left running.
func failedOver(c api.Cluster) bool {
	return c.Epoch >= 2 && c.Operation == nil && c.Primary != "" && !strings.HasSuffix(c.Primary, "-db1") && writable(c, c.Primary)
}

// span is the run of one operation.
type span struct{ start, end time.Time }

// overlap returns the most spans open at once (an end before a start at
// the same instant).
func overlap(spans []span) int {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, s := range spans {
		edges = append(edges, edge{s.start, 1}, edge{s.end, -1})
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.delta - b.delta
	})
	most, now := 0, 0
	for _, e := range edges {
		now += e.delta
		most = max(most, now)
	}
	return most
}
