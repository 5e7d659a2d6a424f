package consensus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/regentdb/regent/internal/freeport"
)

// TestMain fails the run if any Raft or consensus goroutine outlives the
// tests: every test must Close what it starts.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := waitNoGoroutines(10 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines left behind after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// ourGoroutines returns the stacks of goroutines running Raft or this
// package's code, other than the caller's.
func ourGoroutines() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 { // the calling goroutine
			continue
		}
		if strings.Contains(g, "github.com/hashicorp/raft") || strings.Contains(g, "regent/consensus.") {
			if strings.Contains(g, "testing.tRunner") || strings.Contains(g, "testing.(*F)") {
				continue // another test's own goroutine, not one we started
			}
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

func waitNoGoroutines(timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for {
		g := ourGoroutines()
		if g == "" || time.Now().After(deadline) {
			return g
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testTimings shortens Raft's timeouts for tests (production: 500/500/250/20),
// keeping enough slack that a leader does not lose its lease on a busy
// two-core machine running the race detector.
func testTimings(c *Config) {
	c.HeartbeatTimeout = 200 * time.Millisecond
	c.ElectionTimeout = 200 * time.Millisecond
	c.LeaderLeaseTimeout = 200 * time.Millisecond
	c.CommitTimeout = 10 * time.Millisecond
	c.ApplyTimeout = 3 * time.Second
	c.TransportTimeout = time.Second
}

// logSink collects one node's log records (JSON) and mirrors them to t.Log
// until the test ends.
type logSink struct {
	t    testing.TB
	name string

	mu   sync.Mutex
	buf  bytes.Buffer
	done bool
}

func newLogSink(t testing.TB, name string) *logSink {
	s := &logSink{t: t, name: name}
	t.Cleanup(func() {
		s.mu.Lock()
		s.done = true
		s.mu.Unlock()
	})
	return s
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	if !s.done && testing.Verbose() {
		s.t.Logf("%s: %s", s.name, bytes.TrimRight(p, "\n"))
	}
	return len(p), nil
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func (s *logSink) logger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(s, &slog.HandlerOptions{Level: level}))
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// cluster is a group of nodes under test, in memory or over TCP.
type cluster struct {
	t     testing.TB
	cfgs  []Config
	nodes []*Node // nil when stopped
	logs  []*logSink
	// in-memory only
	trans  []*raft.InmemTransport
	stores []*raft.InmemStore
	snaps  []*raft.InmemSnapshotStore
}

// inmemAddr gives node i a syntactically valid address for the in-memory
// transport.
func inmemAddr(i int) string { return fmt.Sprintf("127.0.0.1:%d", 17001+i) }

// newInmemCluster starts n bootstrapped voters on in-memory transports and
// stores.
func newInmemCluster(t testing.TB, n int, tweak func(*Config)) *cluster {
	t.Helper()
	c := &cluster{t: t}
	var peers []Peer
	for i := range n {
		peers = append(peers, Peer{ID: fmt.Sprintf("n%d", i+1), RaftAddr: inmemAddr(i), APIAddr: fmt.Sprintf("127.0.0.1:%d", 18001+i), Instance: fmt.Sprintf("db%d", i+1)})
	}
	for i := range n {
		cfg := DefaultConfig()
		testTimings(&cfg)
		cfg.NodeID, cfg.RaftAddr, cfg.APIAddr, cfg.Instance = peers[i].ID, peers[i].RaftAddr, peers[i].APIAddr, peers[i].Instance
		cfg.Peers = peers
		cfg.TransferLeadershipOnClose = false
		if tweak != nil {
			tweak(&cfg)
		}
		c.addInmem(cfg)
	}
	c.connectAll()
	for i := range c.cfgs {
		c.startInmem(i)
	}
	t.Cleanup(c.closeAll)
	return c
}

// addInmem prepares (but does not start) an in-memory node.
func (c *cluster) addInmem(cfg Config) int {
	_, tr := raft.NewInmemTransportWithTimeout(raft.ServerAddress(cfg.RaftAddr), 200*time.Millisecond)
	c.cfgs = append(c.cfgs, cfg)
	c.trans = append(c.trans, tr)
	c.stores = append(c.stores, raft.NewInmemStore())
	c.snaps = append(c.snaps, raft.NewInmemSnapshotStore())
	c.nodes = append(c.nodes, nil)
	c.logs = append(c.logs, newLogSink(c.t, cfg.NodeID))
	return len(c.cfgs) - 1
}

func (c *cluster) startInmem(i int) *Node {
	c.t.Helper()
	n, err := StartWith(context.Background(), c.cfgs[i], c.logs[i].logger(slog.LevelInfo), Infra{
		Transport: c.trans[i], LogStore: c.stores[i], StableStore: c.stores[i], SnapshotStore: c.snaps[i],
	})
	if err != nil {
		c.t.Fatalf("start %s: %v", c.cfgs[i].NodeID, err)
	}
	c.nodes[i] = n
	return n
}

func (c *cluster) connectAll() {
	for i := range c.trans {
		for j := range c.trans {
			if i != j {
				c.trans[i].Connect(c.trans[j].LocalAddr(), c.trans[j])
			}
		}
	}
}

// isolate cuts node i off from every other node, both ways.
func (c *cluster) isolate(i int) {
	c.trans[i].DisconnectAll()
	for j := range c.trans {
		if j != i {
			c.trans[j].Disconnect(c.trans[i].LocalAddr())
		}
	}
}

// partition splits the in-memory nodes into two groups that cannot talk.
func (c *cluster) partition(a, b []int) {
	for _, i := range a {
		for _, j := range b {
			c.trans[i].Disconnect(c.trans[j].LocalAddr())
			c.trans[j].Disconnect(c.trans[i].LocalAddr())
		}
	}
}

// stop closes node i (no leadership transfer: like a crash) and cuts it
// off, so in-memory peers do not wait on its dead transport.
func (c *cluster) stop(i int) {
	c.t.Helper()
	n := c.nodes[i]
	if n == nil {
		return
	}
	if c.trans != nil {
		c.isolate(i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		c.t.Errorf("close %s: %v", n.ID(), err)
	}
	c.nodes[i] = nil
}

func (c *cluster) closeAll() {
	for i := range c.nodes {
		c.stop(i)
	}
}

// running returns the indexes of started nodes.
func (c *cluster) running() []int {
	var out []int
	for i, n := range c.nodes {
		if n != nil {
			out = append(out, i)
		}
	}
	return out
}

// waitLeader waits until exactly one of the given nodes (default: all
// running) is leader and the others of them name it, and returns its index.
func (c *cluster) waitLeader(among ...int) int {
	c.t.Helper()
	if len(among) == 0 {
		among = c.running()
	}
	leader := -1
	waitFor(c.t, 10*time.Second, "a single leader all nodes agree on", func() bool {
		leader = -1
		for _, i := range among {
			if c.nodes[i].IsLeader() {
				if leader >= 0 {
					return false
				}
				leader = i
			}
		}
		if leader < 0 {
			return false
		}
		for _, i := range among {
			if c.nodes[i].Leader().ID != c.cfgs[leader].NodeID {
				return false
			}
		}
		return true
	})
	return leader
}

// propose sends cmd to the leader among the given nodes, retrying while
// leadership moves (only on errors that guarantee nothing was applied).
func (c *cluster) propose(cmd Command, among ...int) (Outcome, error) {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l := c.waitLeader(among...)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		out, err := c.nodes[l].Propose(ctx, cmd)
		cancel()
		var nl *NotLeaderError
		if errors.As(err, &nl) && nl.Err == nil && time.Now().Before(deadline) {
			continue
		}
		return out, err
	}
}

// onLeader runs an idempotent leader-only call, retrying while leadership
// moves.
func (c *cluster) onLeader(what string, call func(n *Node) error, among ...int) {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := call(c.nodes[c.waitLeader(among...)])
		if err == nil {
			return
		}
		if !errors.Is(err, ErrNotLeader) || time.Now().After(deadline) {
			c.t.Fatalf("%s: %v", what, err)
		}
	}
}

func (c *cluster) mustPropose(cmd Command, among ...int) Outcome {
	c.t.Helper()
	out, err := c.propose(cmd, among...)
	if err != nil {
		c.t.Fatalf("propose %s: %v", cmd.Name(), err)
	}
	return out
}

// waitApplied waits until node i has applied at least index.
func (c *cluster) waitApplied(i int, index uint64) {
	c.t.Helper()
	waitFor(c.t, 10*time.Second, fmt.Sprintf("%s to apply index %d", c.cfgs[i].NodeID, index), func() bool {
		_, idx := c.nodes[i].fsm.current()
		return idx >= index
	})
}

// freePorts returns n free loopback ports (see package freeport).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var out []int
	for range n {
		p, err := freeport.Get()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// newTCPCluster starts n voters on loopback TCP (TLS when tlsFor is given)
// with durable stores in temporary directories.
func newTCPCluster(t testing.TB, n int, tlsFor func(i int) TLSConfig, tweak func(*Config)) *cluster {
	t.Helper()
	c := &cluster{t: t}
	ports := freePorts(t, n)
	var peers []Peer
	for i := range n {
		peers = append(peers, Peer{ID: fmt.Sprintf("n%d", i+1), RaftAddr: fmt.Sprintf("127.0.0.1:%d", ports[i]), APIAddr: fmt.Sprintf("127.0.0.1:%d", 18001+i)})
	}
	for i := range n {
		cfg := DefaultConfig()
		testTimings(&cfg)
		cfg.NodeID, cfg.RaftAddr, cfg.APIAddr = peers[i].ID, peers[i].RaftAddr, peers[i].APIAddr
		cfg.Peers = peers
		cfg.DataDir = t.TempDir()
		cfg.TransferLeadershipOnClose = false
		if tlsFor != nil {
			cfg.TLS = tlsFor(i)
		} else {
			cfg.InsecurePlaintext = true
		}
		if tweak != nil {
			tweak(&cfg)
		}
		c.cfgs = append(c.cfgs, cfg)
		c.nodes = append(c.nodes, nil)
		c.logs = append(c.logs, newLogSink(t, cfg.NodeID))
	}
	for i := range c.cfgs {
		c.startTCP(i)
	}
	t.Cleanup(c.closeAll)
	return c
}

func (c *cluster) startTCP(i int) *Node {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := Start(ctx, c.cfgs[i], c.logs[i].logger(slog.LevelInfo))
	if err != nil {
		c.t.Fatalf("start %s: %v", c.cfgs[i].NodeID, err)
	}
	c.nodes[i] = n
	return n
}
