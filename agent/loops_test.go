package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/regentdb/regent/config"
	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/topology"
)

// The probe, local, process and stream loops in simulated time
// (testing/synctest), each with a fake of what it reads from the host and
// the network (hostIO, prober.probe, primaryStream.watch). The real-server
// tests run the same loops against mysqld.

// loopState serves the replicated state the loops read; the rest of Raft is
// not used by them (a call panics).
type loopState struct {
	Raft
	mu sync.Mutex
	st consensus.State
}

func (r *loopState) State() consensus.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st.Clone()
}

func (r *loopState) Cluster(name string) (consensus.Cluster, bool) { return r.State().Cluster(name) }
func (r *loopState) ClusterAt(name string) (consensus.Cluster, uint64, bool) {
	return clusterAt(r.State(), name)
}

func (r *loopState) setPrimary(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.st.Clusters["main"].Primary = name
	r.st.Clusters["main"].Epoch++
}

var loopInstances = []config.InstanceConfig{
	{Name: "p", Address: "10.9.0.1:3306"}, {Name: "r1", Address: "10.9.0.2:3306"}, {Name: "r2", Address: "10.9.0.3:3306"}}

// loopCluster is a cluster on agent a0 beside p, with p the recorded
// primary, counting the reports the loops send (notify).
func loopCluster() (*clusterRT, *loopState, *atomic.Int32) {
	r := &loopState{st: consensus.State{Clusters: map[string]*consensus.Cluster{"main": {Name: "main", Primary: "p", Epoch: 1}}}}
	a := &Agent{id: "a0", raft: r, log: slog.New(slog.DiscardHandler)}
	c := &clusterRT{a: a, name: "main", local: "p", policy: failover.Policy{ProbeInterval: 100 * time.Millisecond}, clock: clock{},
		log: a.log, localState: failover.LocalUnknown, localNet: "tcp", localDial: "10.9.0.1:3306", localCheckEvery: 20 * time.Millisecond}
	// No connections: the probe loop's test probes through a fake.
	c.members.Store(newInstanceSet(0, loopInstances, map[string]*topology.Instance{"p": nil, "r1": nil, "r2": nil}))
	var sent atomic.Int32
	c.notify = func(context.Context) { sent.Add(1) }
	return c, r, &sent
}

// run starts loop and returns the function that stops it and waits.
func run(loop func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); loop(ctx) }()
	return func() { cancel(); <-done }
}

func (c *clusterRT) local3() (failover.LocalState, time.Time, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.localState, c.localSince, c.localDetail
}

// fakeMySQLD answers the local loop's dials: while up, with a connection
// it closes after connectTimeout, as mysqld does with a client that never
// logs in; while down, refused.
type fakeMySQLD struct {
	connectTimeout time.Duration

	mu    sync.Mutex
	up    bool
	dials []time.Time
	held  []net.Conn // the server ends
}

func (f *fakeMySQLD) dial(ctx context.Context, _, addr, _ string, _ time.Duration) (failover.LocalState, string, net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dials = append(f.dials, time.Now())
	if !f.up {
		return failover.LocalGone, "connection refused on " + addr, nil
	}
	client, server := net.Pipe()
	f.held = append(f.held, server)
	time.AfterFunc(f.connectTimeout, func() { _ = server.Close() })
	return failover.LocalRunning, "", client
}

// kill closes every held connection and refuses the next dials.
func (f *fakeMySQLD) kill() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.up = false
	for _, s := range f.held {
		_ = s.Close()
	}
	f.held = nil
}

func (f *fakeMySQLD) dialCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.dials)
}

// The local loop holds one connection per connect_timeout while mysqld is
// up, sees it die the moment the server closes it (no polling delay), then
// dials every localCheckEvery until it answers again.
func TestLocalLoopInSimulatedTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _, sent := loopCluster()
		db := &fakeMySQLD{connectTimeout: 10 * time.Second, up: true}
		c.host.dialLocal = db.dial
		start := time.Now()
		stop := run(c.localLoop)
		defer stop()

		synctest.Wait()
		if st, since, _ := c.local3(); st != failover.LocalRunning || !since.Equal(start) || db.dialCount() != 1 || sent.Load() != 1 {
			t.Fatalf("at start: %v since %v, %d dials, %d reports; want running at once, 1 dial, 1 report", st, since.Sub(start), db.dialCount(), sent.Load())
		}
		// mysqld closes the idle connection: dialled again at once, no
		// change reported.
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := db.dialCount(); n != 2 || sent.Load() != 1 {
			t.Fatalf("after connect_timeout: %d dials, %d reports; want 2 and 1", n, sent.Load())
		}
		db.mu.Lock()
		second := db.dials[1]
		db.mu.Unlock()
		if d := second.Sub(start); d != 10*time.Second {
			t.Fatalf("second dial %v after start, want at the close (10s)", d)
		}

		// Killed: gone at the instant, reported at once.
		time.Sleep(2 * time.Second)
		killed := time.Now()
		db.kill()
		synctest.Wait()
		st, since, detail := c.local3()
		if st != failover.LocalGone || !since.Equal(killed) || !strings.Contains(detail, "refused") || sent.Load() != 2 {
			t.Fatalf("after the kill: %v %v after it (%q), %d reports; want gone at once and reported", st, since.Sub(killed), detail, sent.Load())
		}
		// Down: one dial every localCheckEvery, no more.
		n := db.dialCount()
		time.Sleep(10*c.localCheckEvery - time.Nanosecond)
		synctest.Wait()
		if got := db.dialCount() - n; got != 9 {
			t.Fatalf("%d dials in 10 check periods while down, want 9 (every %v)", got, c.localCheckEvery)
		}

		// Back: running within one check period.
		db.mu.Lock()
		db.up = true
		db.mu.Unlock()
		back := time.Now()
		time.Sleep(c.localCheckEvery)
		synctest.Wait()
		if st, since, _ := c.local3(); st != failover.LocalRunning || since.Sub(back) > c.localCheckEvery || sent.Load() != 3 {
			t.Fatalf("after the restart: %v %v after it, %d reports; want running within %v", st, since.Sub(back), sent.Load(), c.localCheckEvery)
		}
	})
}

// fakeProcess is mysqld's process as the process loop sees it.
type fakeProcess struct {
	mu    sync.Mutex
	pid   int // 0: not found
	finds []time.Time
	exit  map[int]chan struct{}
}

func (f *fakeProcess) find(context.Context) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finds = append(f.finds, time.Now())
	if f.pid == 0 {
		return 0, errors.New("no mysqld process found")
	}
	return f.pid, nil
}

func (f *fakeProcess) wait(ctx context.Context, pid int) (bool, error) {
	f.mu.Lock()
	ch := f.exit[pid]
	f.mu.Unlock()
	select {
	case <-ch:
		return true, nil
	case <-ctx.Done():
		return false, nil
	}
}

func (f *fakeProcess) findCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.finds)
}

// The process loop looks for mysqld every second until it finds it,
// reports its exit at the instant, and looks for the new process only
// once a server answers again.
func TestProcessLoopInSimulatedTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _, sent := loopCluster()
		proc := &fakeProcess{exit: map[int]chan struct{}{42: make(chan struct{}), 43: make(chan struct{})}}
		c.host.findPID, c.host.waitExit = proc.find, proc.wait
		stop := run(c.processLoop)
		defer stop()

		synctest.Wait()
		if n := proc.findCount(); n != 1 || c.watchedPID.Load() != 0 {
			t.Fatalf("at start: %d looks, watching %d; want 1 and none", n, c.watchedPID.Load())
		}
		proc.mu.Lock()
		proc.pid = 42
		proc.mu.Unlock()
		time.Sleep(time.Second)
		synctest.Wait()
		if n := proc.findCount(); n != 2 || c.watchedPID.Load() != 42 {
			t.Fatalf("a second later: %d looks, watching %d; want 2 and 42", n, c.watchedPID.Load())
		}

		time.Sleep(3 * time.Second)
		exited := time.Now()
		close(proc.exit[42])
		synctest.Wait()
		st, since, detail := c.local3()
		if st != failover.LocalGone || !since.Equal(exited) || detail != "mysqld (pid 42) exited" || sent.Load() != 1 || c.watchedPID.Load() != 0 {
			t.Fatalf("after the exit: %v %v later (%q), %d reports, watching %d; want gone at the instant, reported, none watched",
				st, since.Sub(exited), detail, sent.Load(), c.watchedPID.Load())
		}
		// Not looked for while nothing answers (the dial decides).
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if n := proc.findCount(); n != 2 {
			t.Fatalf("%d looks while mysqld was down, want none after the exit", n-2)
		}
		proc.mu.Lock()
		proc.pid = 43
		proc.mu.Unlock()
		c.setLocal(context.Background(), failover.LocalRunning, "")
		time.Sleep(time.Second)
		synctest.Wait()
		if n := proc.findCount(); n != 3 || c.watchedPID.Load() != 43 {
			t.Fatalf("after the restart: %d looks, watching %d; want 3 and 43", n, c.watchedPID.Load())
		}
	})
}

// fakeBinlog serves the stream loop's dumps: each sends a heartbeat every
// period until it is cancelled, or fails at once while broken.
type fakeBinlog struct {
	period time.Duration

	mu     sync.Mutex
	broken bool
	dumps  []string // the addresses dumped from, in order
}

func (f *fakeBinlog) watch(ctx context.Context, cfg topology.WatchConfig, heard func(time.Time)) error {
	f.mu.Lock()
	f.dumps = append(f.dumps, cfg.Addr)
	broken := f.broken
	f.mu.Unlock()
	if broken {
		return fmt.Errorf("dial %s: connection refused", cfg.Addr)
	}
	t := time.NewTicker(f.period)
	defer t.Stop()
	for {
		heard(time.Now())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (f *fakeBinlog) dumpCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.dumps)
}

// The stream loop dumps from the recorded primary, dates its heartbeats,
// retries a failing dump at most once a period, and moves to the new
// primary within one period of the replicated state naming it.
func TestStreamLoopInSimulatedTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, r, _ := loopCluster()
		const period = 50 * time.Millisecond
		bl := &fakeBinlog{period: period}
		s := &primaryStream{c: c, period: period, watch: bl.watch, cfg: func(addr string) topology.WatchConfig { return topology.WatchConfig{Addr: addr} }}
		stop := run(s.loop)
		defer stop()

		time.Sleep(10 * period)
		synctest.Wait()
		o := s.observation("p")
		if o == nil || time.Since(o.HeardAt) >= period || o.Detail != "" || bl.dumpCount() != 1 {
			t.Fatalf("streaming from p: %+v, %d dumps; want a heartbeat within the period, one dump", o, bl.dumpCount())
		}

		// The primary is replaced: the stream follows within a period.
		r.setPrimary("r1")
		moved := time.Now()
		time.Sleep(period)
		synctest.Wait()
		bl.mu.Lock()
		dumps := append([]string(nil), bl.dumps...)
		bl.mu.Unlock()
		if s.observation("p") != nil || s.observation("r1") == nil || dumps[len(dumps)-1] != "10.9.0.2:3306" {
			t.Fatalf("%v after r1 was recorded: streams %v, dumps %v", time.Since(moved), s.observation("r1"), dumps)
		}

		// A dump that fails is retried once a period, and says why.
		bl.mu.Lock()
		bl.broken = true
		bl.mu.Unlock()
		r.setPrimary("r2")
		time.Sleep(period)
		synctest.Wait()
		n := bl.dumpCount()
		time.Sleep(20 * period)
		synctest.Wait()
		if got := bl.dumpCount() - n; got != 20 {
			t.Fatalf("%d dumps in 20 periods of failing, want 20", got)
		}
		if o := s.observation("r2"); o == nil || !o.HeardAt.IsZero() || !strings.Contains(o.Detail, "refused") {
			t.Fatalf("failing stream from r2: %+v, want no heartbeat and the reason", o)
		}

		// No recorded primary: no dump, and the reason.
		r.setPrimary("")
		time.Sleep(2 * period)
		synctest.Wait()
		n = bl.dumpCount()
		time.Sleep(10 * period)
		synctest.Wait()
		s.mu.Lock()
		target, detail := s.target, s.detail
		s.mu.Unlock()
		if got := bl.dumpCount(); got != n || target != "" || detail != "no recorded primary" {
			t.Fatalf("without a primary: %d more dumps, target %q (%q)", got-n, target, detail)
		}
	})
}

// The probe loop probes every instance once per interval, the replicas
// before the primary, bounds a probe that hangs by the probe timeout, and
// keeps when an unreachable instance began failing.
func TestProbeLoopInSimulatedTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, _, sent := loopCluster()
		const timeout = 30 * time.Millisecond
		c.prober = newProber("main", timeout, c.set)
		c.prober.now = c.now
		c.prober.primary = func() (string, uint64) { st := c.state(); return st.Primary, st.Epoch }
		var mu sync.Mutex
		probed := map[string][]time.Time{}
		hang := map[string]bool{}
		c.prober.probe = func(ctx context.Context, name string, _ *topology.Instance) (*topology.Snapshot, error) {
			mu.Lock()
			probed[name] = append(probed[name], time.Now())
			h := hang[name]
			mu.Unlock()
			if h {
				<-ctx.Done()
				return nil, ctx.Err()
			}
			s := &topology.Snapshot{ReadOnly: name != "p", Flavor: topology.FlavorMariaDB}
			if name != "p" {
				s.Replica = &topology.ReplicaStatus{SourceHost: "10.9.0.1", SourcePort: 3306, IOState: topology.IORunning, SQLRunning: true}
			}
			return s, nil
		}
		start := time.Now()
		stop := run(c.probeLoop)
		defer stop()

		time.Sleep(10*c.policy.ProbeInterval - time.Nanosecond)
		synctest.Wait()
		mu.Lock()
		for _, name := range []string{"p", "r1", "r2"} {
			if n := len(probed[name]); n != 10 {
				t.Errorf("%s probed %d times in 10 intervals, want 10", name, n)
			}
		}
		if n := sent.Load(); n != 10 {
			t.Errorf("%d reports sent in 10 intervals, want one a round", n)
		}
		mu.Unlock()
		if o, _ := c.prober.get("r1"); !o.Reachable || o.Replica == nil || o.Replica.Source != "p" {
			t.Fatalf("r1's observation: %+v, want reachable, replicating from p (by name)", o)
		}

		// r2 hangs: each round waits for it up to the timeout, then probes
		// the primary; it stays failing since its first timeout.
		mu.Lock()
		hang["r2"] = true
		mu.Unlock()
		round := start.Add(10 * c.policy.ProbeInterval)
		time.Sleep(3 * c.policy.ProbeInterval)
		synctest.Wait()
		o, _ := c.prober.get("r2")
		if o.Reachable || o.Error != topology.ClassTimeout || !o.FailingSince.Equal(round.Add(timeout)) || !o.LastReachedAt.Equal(round.Add(-c.policy.ProbeInterval)) {
			t.Fatalf("hung r2: %+v; want a timeout failing since %v, last reached %v", o, timeout, -c.policy.ProbeInterval)
		}
		mu.Lock()
		last := probed["p"][len(probed["p"])-1]
		mu.Unlock()
		if d := last.Sub(round.Add(2 * c.policy.ProbeInterval)); d != timeout {
			t.Fatalf("the primary probed %v into the round, want after the replicas (the hung one's %v timeout)", d, timeout)
		}

		mu.Lock()
		hang["r2"] = false
		mu.Unlock()
		time.Sleep(c.policy.ProbeInterval)
		synctest.Wait()
		if o, _ := c.prober.get("r2"); !o.Reachable || !o.FailingSince.IsZero() {
			t.Fatalf("r2 back: %+v, want reachable and no longer failing", o)
		}
	})
}
