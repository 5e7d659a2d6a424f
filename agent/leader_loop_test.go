package agent

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/failover"
)

// loopRaft is the part of Raft the leader loop uses, scripted by the test:
// leadership events, whether a Barrier succeeds, and IsLeader.
type loopRaft struct {
	Raft // the rest is not used by the loop: a call panics
	ch   chan consensus.Leadership

	mu          sync.Mutex
	leader      bool
	barrierErrs int // this many Barriers fail before one succeeds
	barriers    int
}

func (r *loopRaft) WatchLeadership() (<-chan consensus.Leadership, func()) { return r.ch, func() {} }

func (r *loopRaft) IsLeader() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leader
}

func (r *loopRaft) Barrier(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.barriers++
	if r.barrierErrs > 0 {
		r.barrierErrs--
		return errors.New("barrier timed out")
	}
	return nil
}

// setLeader changes leadership and tells the loop, as the Raft node does.
func (r *loopRaft) setLeader(l bool) {
	r.mu.Lock()
	r.leader = l
	r.mu.Unlock()
	r.ch <- consensus.Leadership{IsLeader: l}
}

// evalLog records, per cluster, when the loop evaluated it (simulated time).
type evalLog struct {
	mu    sync.Mutex
	at    map[string][]time.Time
	block map[string]chan struct{} // an evaluation of this cluster waits on it
}

func (e *evalLog) eval(c *clusterRT, ctx context.Context) {
	e.mu.Lock()
	e.at[c.name] = append(e.at[c.name], time.Now())
	b := e.block[c.name]
	e.mu.Unlock()
	if b != nil {
		select {
		case <-b:
		case <-ctx.Done():
		}
	}
}

func (e *evalLog) count(name string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.at[name])
}

// The leader loop in simulated time (testing/synctest) with a scripted Raft
// node and recorded evaluations: it acts only while leading and only after a
// Barrier, retries a failed Barrier at the next tick, evaluates every probe
// interval and at once when woken, stops when leadership is lost, and one
// cluster's evaluation never holds up another's (issue 9, defect 8).
func TestLeaderLoopInSimulatedTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 100 * time.Millisecond
		r := &loopRaft{ch: make(chan consensus.Leadership, 4)}
		a := &Agent{id: "a0", raft: r, log: slog.New(slog.DiscardHandler), kick: make(chan struct{}, 1),
			deps: Deps{Clock: clock{}}}
		clusters := map[string]*clusterRT{}
		for _, name := range []string{"slow", "main"} {
			clusters[name] = &clusterRT{name: name, policy: failover.Policy{ProbeInterval: interval}, clock: clock{}}
		}
		a.clusters.Store(&clusters)
		ev := &evalLog{at: map[string][]time.Time{}, block: map[string]chan struct{}{}}
		ctx, cancel := context.WithCancel(context.Background())
		a.wg.Add(1)
		go func() { defer a.wg.Done(); a.leaderLoop(ctx, ev.eval) }()
		defer func() { cancel(); a.wg.Wait() }()

		// A follower never evaluates.
		time.Sleep(time.Second)
		synctest.Wait()
		if n := ev.count("main"); n != 0 {
			t.Fatalf("a follower evaluated %d times", n)
		}

		// Elected, but the Barrier fails, and again when retried at once:
		// nothing until the next tick retries it.
		r.mu.Lock()
		r.barrierErrs = 2
		r.mu.Unlock()
		won := time.Now()
		r.setLeader(true)
		synctest.Wait()
		r.mu.Lock()
		barriers := r.barriers
		r.mu.Unlock()
		if n := ev.count("main"); n != 0 || a.leaderGen.Load() != 0 || barriers != 2 {
			t.Fatalf("%d evaluations (generation %d) after %d failed Barriers, want none and 2", n, a.leaderGen.Load(), barriers)
		}
		time.Sleep(interval)
		synctest.Wait()
		if n := ev.count("main"); n != 1 || a.leaderGen.Load() != 1 {
			t.Fatalf("after the retried Barrier: %d evaluations, generation %d; want 1 and 1", n, a.leaderGen.Load())
		}
		if first := ev.at["main"][0].Sub(won); first > interval {
			t.Fatalf("first evaluation %v after winning, want within one interval", first)
		}

		// Every interval while leading; a wake-up evaluates at once.
		before := ev.count("main")
		time.Sleep(10 * interval)
		synctest.Wait()
		if n := ev.count("main") - before; n < 9 || n > 11 {
			t.Fatalf("%d evaluations in 10 intervals", n)
		}
		before = ev.count("main")
		a.wake()
		synctest.Wait()
		if n := ev.count("main") - before; n != 1 {
			t.Fatalf("a wake-up gave %d evaluations without time passing, want 1", n)
		}

		// A cluster whose evaluation hangs does not hold up the other.
		ev.mu.Lock()
		hang := make(chan struct{})
		ev.block["slow"] = hang
		ev.mu.Unlock()
		before = ev.count("main")
		time.Sleep(5 * interval)
		synctest.Wait()
		if n := ev.count("main") - before; n < 4 {
			t.Fatalf("main was evaluated %d times in 5 intervals while slow's evaluation hung", n)
		}
		close(hang)
		ev.mu.Lock()
		ev.block["slow"] = nil
		ev.mu.Unlock()

		// Leadership lost: no more evaluations.
		r.setLeader(false)
		synctest.Wait()
		before = ev.count("main")
		time.Sleep(10 * interval)
		synctest.Wait()
		if n := ev.count("main") - before; n != 0 {
			t.Fatalf("%d evaluations after losing leadership", n)
		}
	})
}

func TestFormerPrimary(t *testing.T) {
	h := func(old string, before, after uint64) consensus.HistoryEntry {
		return consensus.HistoryEntry{OldPrimary: old, EpochBefore: before, EpochAfter: after}
	}
	for _, tc := range []struct {
		name    string
		primary string
		history []consensus.HistoryEntry
		want    string
	}{
		{"no history", "db1", nil, ""},
		{"a failover replaced db1", "db2", []consensus.HistoryEntry{h("db1", 1, 2)}, "db1"},
		{"an aborted one after it changes nothing", "db2", []consensus.HistoryEntry{h("db1", 1, 2), h("db2", 2, 2)}, "db1"},
		{"switched back: db2 is the one replaced last", "db1", []consensus.HistoryEntry{h("db1", 1, 2), h("db2", 2, 3)}, "db2"},
		{"the one replaced is the primary again", "db1", []consensus.HistoryEntry{h("db1", 1, 2)}, ""},
	} {
		if got := formerPrimary(&consensus.Cluster{Primary: tc.primary, History: tc.history}); got != tc.want {
			t.Errorf("%s: former primary %q, want %q", tc.name, got, tc.want)
		}
	}
}
