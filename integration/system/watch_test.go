//go:build system

package system

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regentdb/regent/failover"
)

// writer is the application: one connection through HAProxy's write
// frontend, one autocommit INSERT after another, each row recording the
// server_id that took it. A write is acknowledged when the server answered
// OK; every acknowledged write must survive any failover (semi_sync).
type writer struct {
	db     *sql.DB
	mu     sync.Mutex
	acked  []write
	failed int
	last   error
	cancel context.CancelFunc
	done   chan struct{}
}

type write struct {
	id    int64
	acked time.Time
}

// startWriter starts a writer whose ids begin after first.
func (e *env) startWriter(first int64) *writer {
	db := openDB(e.haproxyAddr, "app", e.appPw, "regent_test")
	// One connection, so a failover shows as errors and a reconnect, as an
	// application would see it.
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{db: db, cancel: cancel, done: make(chan struct{})}
	go w.run(ctx, first)
	e.t.Cleanup(w.stop)
	return w
}

func (w *writer) run(ctx context.Context, first int64) {
	defer close(w.done)
	for id := first + 1; ctx.Err() == nil; id++ {
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := w.db.ExecContext(qctx, fmt.Sprintf("INSERT INTO writes (id, sid) VALUES (%d, @@server_id)", id))
		cancel()
		now := time.Now()
		w.mu.Lock()
		if err == nil {
			w.acked = append(w.acked, write{id: id, acked: now})
		} else if ctx.Err() == nil {
			w.failed++
			w.last = err
		}
		w.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond): // the write rate: ~50/s
		}
	}
}

// stop ends the writer and waits until its last write has returned.
func (w *writer) stop() {
	w.cancel()
	<-w.done
	_ = w.db.Close()
}

func (w *writer) writes() []write {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]write(nil), w.acked...)
}

func (w *writer) status() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return fmt.Sprintf("%d acknowledged, %d failed (last error: %v)", len(w.acked), w.failed, w.last)
}

// ackedAfter returns the writes acknowledged after at.
func (w *writer) ackedAfter(at time.Time) []write {
	var out []write
	for _, x := range w.writes() {
		if x.acked.After(at) {
			out = append(out, x)
		}
	}
	return out
}

// waitAcked waits until n more writes than now are acknowledged after at.
func (e *env) waitAcked(w *writer, at time.Time, n int, timeout time.Duration) {
	e.t.Helper()
	e.eventually(fmt.Sprintf("%d writes acknowledged", n), timeout, func() (bool, string) {
		return len(w.ackedAfter(at)) >= n, w.status()
	})
}

// rowsOn reads the writer's table on h: id -> server_id that took it.
func rowsOn(t *testing.T, h *host) map[int64]uint32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := h.db.QueryContext(ctx, "SELECT id, sid FROM regent_test.writes")
	if err != nil {
		t.Fatalf("%s: reading the writes: %v", h.name, err)
	}
	defer rows.Close()
	m := map[int64]uint32{}
	for rows.Next() {
		var id int64
		var sid uint32
		if err := rows.Scan(&id, &sid); err != nil {
			t.Fatal(err)
		}
		m[id] = sid
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// Instance states as a sample sees them.
const (
	stWritable    = "writable"
	stReadOnly    = "read-only"
	stUnreachable = "unreachable"
	// stNoAcks: read_only is OFF, but the instance is a lossless semi-sync
	// source with no semi-sync replica connected: it can acknowledge no
	// commit (docs/safety.md, "Semi-sync as a fence"), so it is no writer.
	stNoAcks = "writable-no-acks"
)

// round is one sample of every instance's read_only and every agent's
// /primary, taken concurrently: all answers of a round come from one window
// of at most sampleTimeout.
type round struct {
	at, end time.Time
	state   map[string]string // instance -> writable, read-only, unreachable
	primary map[string]int    // agent -> HTTP status of /primary (0: no answer)
	reason  map[string]string // agent -> why /primary is not 200
}

const sampleTimeout = 400 * time.Millisecond

type epochSample struct {
	at      time.Time
	epoch   uint64
	primary string
}

// watcher samples the invariants in the background: read_only of every
// instance and /primary of every agent every 100 ms, and every agent's
// epoch every 250 ms.
type watcher struct {
	e      *env
	mu     sync.Mutex
	rounds []round
	epochs map[string][]epochSample
	shown  bool // the timeline was logged
	// semiFenced: instances the leader fenced by lossless semi-sync, and
	// until when their own agents may still let them look writable or
	// claim /primary (fencedBySemiSync).
	semiFenced map[string]semiFence
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

func (e *env) startWatcher() *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{e: e, cancel: cancel, epochs: map[string][]epochSample{}}
	w.wg.Go(func() { w.sampleLoop(ctx) })
	for _, h := range e.hosts {
		w.wg.Go(func() { w.epochLoop(ctx, h) })
	}
	start := time.Now()
	e.t.Cleanup(func() {
		w.stop()
		w.mu.Lock()
		shown := w.shown
		w.mu.Unlock()
		if e.t.Failed() && !shown {
			e.t.Logf("watcher timeline (seconds since the watcher started):%s", w.timeline(start))
		}
	})
	return w
}

// semiFence is the window in which an old primary fenced by lossless
// semi-sync is no second writer though it looks like one.
type semiFence struct {
	from          time.Time // the leader's fence step ended
	claimsUntil   time.Time // its agent's lease lapsed: /primary 503
	writableUntil time.Time // its agent's fence must hold: read_only
}

// fencedBySemiSync records that the leader fenced name by lossless
// semi-sync when its fence step ended (from). No replica receives from it
// then, so it can acknowledge no commit, but the watcher cannot see that
// from its side (a cut-off source's replica connections just go quiet):
// until its own agent fences it, it looks writable and its agent may claim
// /primary. checkInvariants counts it as no writer and no claimant from
// `from` until the agent's bounds: its lease lapses at last contact +
// fence_after, and read_only must hold by last contact + lease_timeout −
// margin (docs/safety.md). lastContact bounds the agent's last contact
// with the quorum from above (the cut).
func (w *watcher) fencedBySemiSync(name string, from, lastContact time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.semiFenced == nil {
		w.semiFenced = map[string]semiFence{}
	}
	w.semiFenced[name] = semiFence{from: from,
		// The round's request to /primary leaves a little after its start.
		claimsUntil:   lastContact.Add(fenceAfter + 100*time.Millisecond),
		writableUntil: lastContact.Add(leaseTimeout - failover.LeaseMargin(failover.Policy{LeaseTimeout: leaseTimeout})),
	}
}

func (w *watcher) stop() {
	w.cancel()
	w.wg.Wait()
}

func (w *watcher) sampleLoop(ctx context.Context) {
	for ctx.Err() == nil {
		r := round{at: time.Now(), state: map[string]string{}, primary: map[string]int{}, reason: map[string]string{}}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, h := range w.e.hosts {
			wg.Go(func() {
				qctx, cancel := context.WithTimeout(ctx, sampleTimeout)
				defer cancel()
				st := stUnreachable
				var ro, semi, waitNo, clients int
				if err := h.db.QueryRowContext(qctx, "SELECT @@global.read_only, @@global.rpl_semi_sync_master_enabled, @@global.rpl_semi_sync_master_wait_no_slave, "+
					"(SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'Rpl_semi_sync_master_clients')").Scan(&ro, &semi, &waitNo, &clients); err == nil {
					switch {
					case ro == 1:
						st = stReadOnly
					case semi == 1 && waitNo == 1 && clients == 0:
						st = stNoAcks
					default:
						st = stWritable
					}
				}
				mu.Lock()
				r.state[h.name] = st
				mu.Unlock()
			})
			wg.Go(func() {
				qctx, cancel := context.WithTimeout(ctx, sampleTimeout)
				defer cancel()
				code, reason := 0, ""
				req, _ := http.NewRequestWithContext(qctx, http.MethodGet, "https://"+h.apiAddr+"/primary", nil)
				resp, err := h.health.Do(req)
				if err == nil {
					code = resp.StatusCode
					var d struct {
						Reason string `json:"reason"`
					}
					if json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&d) == nil {
						reason = d.Reason
					}
					_ = resp.Body.Close()
				} else {
					reason = err.Error()
				}
				mu.Lock()
				r.primary[h.name], r.reason[h.name] = code, reason
				mu.Unlock()
			})
		}
		wg.Wait()
		r.end = time.Now()
		if ctx.Err() != nil {
			return // a cancelled round says nothing
		}
		w.mu.Lock()
		w.rounds = append(w.rounds, r)
		w.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond): // the sampling period
		}
	}
}

func (w *watcher) epochLoop(ctx context.Context, h *host) {
	for ctx.Err() == nil {
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := h.api.Cluster(qctx, clusterName)
		cancel()
		if err == nil {
			w.mu.Lock()
			w.epochs[h.name] = append(w.epochs[h.name], epochSample{at: time.Now(), epoch: c.Epoch, primary: c.Primary})
			w.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond): // the epoch polling period
		}
	}
}

func (w *watcher) snapshot() ([]round, map[string][]epochSample) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ep := map[string][]epochSample{}
	for k, v := range w.epochs {
		ep[k] = append([]epochSample(nil), v...)
	}
	return append([]round(nil), w.rounds...), ep
}

// firstState is the start of the first round after `after` in which name was
// seen in state st; zero when never.
func (w *watcher) firstState(name string, after time.Time, states ...string) time.Time {
	rounds, _ := w.snapshot()
	for _, r := range rounds {
		if r.at.After(after) && slices.Contains(states, r.state[name]) {
			return r.at
		}
	}
	return time.Time{}
}

// claimLosses counts how often, after name's agent first answered 200 on
// /primary after `after`, it stopped answering 200 while its instance stayed
// writable (each such drop makes HAProxy cut every write session), and why.
func (w *watcher) claimLosses(name string, after time.Time) (int, map[string]int) {
	rounds, _ := w.snapshot()
	n, reasons := 0, map[string]int{}
	claimed := false
	for _, r := range rounds {
		if !r.at.After(after) {
			continue
		}
		switch {
		case r.primary[name] == http.StatusOK:
			claimed = true
		case claimed && r.state[name] == stWritable:
			n++
			reasons[fmt.Sprintf("%d %s", r.primary[name], r.reason[name])]++
			claimed = false
		}
	}
	return n, reasons
}

// checkInvariants fails the test for every round with two writable
// instances or two agents claiming /primary, and for any agent whose epoch
// went down. It logs how densely the window was sampled.
func (w *watcher) checkInvariants(t *testing.T) {
	t.Helper()
	rounds, epochs := w.snapshot()
	if len(rounds) == 0 {
		t.Fatal("the watcher took no sample")
	}
	var maxGap time.Duration
	// Violations, aggregated per kind: how many rounds, first and last.
	type violation struct {
		n           int
		first, last time.Time
		example     string
	}
	violations := map[string]*violation{}
	var kinds []string
	note := func(kind string, at time.Time, example string) {
		v := violations[kind]
		if v == nil {
			v = &violation{first: at, example: example}
			violations[kind] = v
			kinds = append(kinds, kind)
		}
		v.n++
		v.last = at
	}
	w.mu.Lock()
	semi := maps.Clone(w.semiFenced)
	w.mu.Unlock()
	var excused []string // rounds in which a semi-sync-fenced instance looked like a writer
	for i, r := range rounds {
		if i > 0 {
			maxGap = max(maxGap, r.end.Sub(rounds[i-1].at))
		}
		var writers, claimants []string
		for _, h := range w.e.hosts {
			f, fenced := semi[h.name]
			fenced = fenced && !r.at.Before(f.from)
			switch {
			case r.state[h.name] != stWritable:
			case fenced && r.at.Before(f.writableUntil):
				excused = append(excused, fmt.Sprintf("%s writable at %s", h.name, r.at.Format("15:04:05.000")))
			default:
				writers = append(writers, h.name)
			}
			switch {
			case r.primary[h.name] != http.StatusOK:
			case fenced && r.at.Before(f.claimsUntil):
				excused = append(excused, fmt.Sprintf("%s's agent claiming /primary at %s", h.name, r.at.Format("15:04:05.000")))
			default:
				claimants = append(claimants, h.name)
			}
		}
		if len(writers) > 1 {
			note("two writable instances "+strings.Join(writers, "+"), r.at, fmt.Sprintf("round of %v", r.end.Sub(r.at).Round(time.Millisecond)))
		}
		if len(claimants) > 1 {
			note("two agents answering 200 on /primary "+strings.Join(claimants, "+"), r.at, "")
		}
		// An agent claiming /primary must have a writable instance.
		for _, c := range claimants {
			if r.state[c] == stReadOnly {
				note(c+"'s agent answering 200 on /primary while its instance is read-only", r.at, "")
			}
		}
	}
	if len(excused) > 0 {
		t.Logf("fenced by lossless semi-sync, so no second writer, though it still looked like one (until its agent fenced it): %s", strings.Join(excused, "; "))
	}
	for _, k := range kinds {
		v := violations[k]
		t.Errorf("%s: in %d sample rounds, from %s to %s (%s)", k, v.n, v.first.Format("15:04:05.000"), v.last.Format("15:04:05.000"), v.example)
	}
	for name, ss := range epochs {
		for i := 1; i < len(ss); i++ {
			if ss[i].epoch < ss[i-1].epoch {
				t.Errorf("%s's epoch went down at %s: %d -> %d", name, ss[i].at.Format("15:04:05.000"), ss[i-1].epoch, ss[i].epoch)
			}
		}
	}
	w.e.logf("invariants: %d sample rounds over %.1f s (longest gap %v), epochs sampled %s",
		len(rounds), rounds[len(rounds)-1].end.Sub(rounds[0].at).Seconds(), maxGap.Round(time.Millisecond), epochCounts(epochs))
}

func epochCounts(m map[string][]epochSample) string {
	var parts []string
	for name, ss := range m {
		last := ss[len(ss)-1]
		parts = append(parts, fmt.Sprintf("%s:%d times (last epoch %d, primary %s)", name, len(ss), last.epoch, last.primary))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// timeline logs the state changes the watcher saw, for the test log.
func (w *watcher) timeline(since time.Time) string {
	rounds, _ := w.snapshot()
	w.mu.Lock()
	w.shown = true
	w.mu.Unlock()
	var b strings.Builder
	prev := ""
	for _, r := range rounds {
		var parts []string
		for _, h := range w.e.hosts {
			p := ""
			switch {
			case r.primary[h.name] == http.StatusOK:
				p = "+/primary"
			case r.state[h.name] == stWritable:
				// A writable instance its agent does not (or no longer)
				// claim: say why.
				p = fmt.Sprintf("(/primary %d: %s)", r.primary[h.name], r.reason[h.name])
			}
			parts = append(parts, fmt.Sprintf("%s=%s%s", h.name, r.state[h.name], p))
		}
		line := strings.Join(parts, " ")
		if line != prev {
			fmt.Fprintf(&b, "\n  %+7.2fs  %s", r.at.Sub(since).Seconds(), line)
			prev = line
		}
	}
	return b.String()
}
