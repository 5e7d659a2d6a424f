package topology

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regentdb/regent/topology/mysqltest"
)

// Binlog watches against real servers of both flavours. Every wait is a poll
// with a generous deadline; no test asserts how fast anything happens.

// watchConfig returns a watch on s as the replication user, with a short
// heartbeat.
func watchConfig(s *mysqltest.Server, serverID uint32) WatchConfig {
	cfg := WatchConfig{Addr: s.Addr(), User: mysqltest.ReplUser, Password: mysqltest.ReplPassword,
		ServerID: serverID, Heartbeat: 200 * time.Millisecond, ConnectTimeout: 2 * time.Second}
	if s.Kind == mysqltest.MySQL {
		// caching_sha2_password wants TLS for a first password login; the
		// server made its own certificate.
		cfg.TLS, _ = ClientTLS(TLSFiles{InsecureSkipVerify: true})
	}
	return cfg
}

// watchRun is a watch running in the background, recording what it sees. With
// reconnect it starts a new watch after each error, as the agent will.
type watchRun struct {
	mu     sync.Mutex
	events []seenEvent
	errs   []error
	errAt  []time.Time
	ended  error // what the last watch returned once the run stopped
	cancel context.CancelFunc
	done   chan struct{}
}

type seenEvent struct {
	at time.Time
	ev binlogEvent
}

func startWatch(t *testing.T, cfg WatchConfig, reconnect bool) *watchRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watchRun{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			err := watchBinlog(ctx, cfg, func(at time.Time, ev binlogEvent) {
				w.mu.Lock()
				w.events = append(w.events, seenEvent{at, ev})
				w.mu.Unlock()
			})
			at := time.Now()
			w.mu.Lock()
			if ctx.Err() == nil {
				w.errs = append(w.errs, err)
				w.errAt = append(w.errAt, at)
			}
			w.ended = err
			w.mu.Unlock()
			if !reconnect || ctx.Err() != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond): // reconnect pause
			}
		}
	}()
	t.Cleanup(w.stop)
	return w
}

// stop ends the run and waits for it.
func (w *watchRun) stop() {
	w.cancel()
	<-w.done
}

func (w *watchRun) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.events)
}

// countIf counts the events that satisfy keep.
func (w *watchRun) countIf(keep func(binlogEvent) bool) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, e := range w.events {
		if keep(e.ev) {
			n++
		}
	}
	return n
}

func (w *watchRun) heartbeats() int { return w.countIf(binlogEvent.isHeartbeat) }

// quietBeforeFirstError returns how long before the first error the last
// event arrived.
func (w *watchRun) quietBeforeFirstError() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var last time.Time
	for _, e := range w.events {
		if e.at.After(w.errAt[0]) {
			break
		}
		last = e.at
	}
	return w.errAt[0].Sub(last)
}

func (w *watchRun) errors() []error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]error(nil), w.errs...)
}

// finished returns what the run's watch returned, once it has ended.
func (w *watchRun) finished() (bool, error) {
	select {
	case <-w.done:
		w.mu.Lock()
		defer w.mu.Unlock()
		return true, w.ended
	default:
		return false, nil
	}
}

func (w *watchRun) waitHeartbeats(t *testing.T, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d heartbeats", n), 30*time.Second, func() (bool, string) {
		return w.heartbeats() >= n, fmt.Sprintf("%d heartbeats, %d events, errors %v", w.heartbeats(), w.count(), w.errors())
	})
}

// transactionEvent reports whether the event belongs to a logged
// transaction (as opposed to the stream's own rotate, format description,
// GTID list, checkpoint and heartbeat events).
func transactionEvent(e binlogEvent) bool {
	switch e.Type {
	case 2, // query (BEGIN, DDL)
		16,         // xid (COMMIT)
		19,         // table map
		23, 24, 25, // rows v1 (MariaDB)
		30, 31, 32, // rows v2 (MySQL)
		33, 34, 162: // GTID, anonymous GTID (MySQL), GTID (MariaDB)
		return true
	}
	return false
}

func gtidEvent(e binlogEvent) bool { return e.Type == 33 || e.Type == 162 }

func writeRows(t *testing.T, s *mysqltest.Server, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		s.Exec(t, "INSERT INTO regent_test.writes (id) VALUES ("+strconv.Itoa(i)+")")
	}
}

// 1. An idle source sends heartbeats, and every beat has a time inside the
// watch.
func TestWatchHeartbeatsOnIdleSource(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		s := mysqltest.Start(t, k)
		w := startWatch(t, watchConfig(s, WatchServerID(t.Name())), false)
		w.waitHeartbeats(t, 5)
		if errs := w.errors(); len(errs) != 0 {
			t.Fatalf("watch ended: %v", errs)
		}

		// The exported function: beats arrive in order, each stamped between
		// the start and now.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var mu sync.Mutex
		var beats []time.Time
		start := time.Now()
		done := make(chan error, 1)
		go func() {
			done <- WatchBinlog(ctx, watchConfig(s, WatchServerID(t.Name()+"/2")), func(at time.Time) {
				mu.Lock()
				beats = append(beats, at)
				mu.Unlock()
			})
		}()
		eventually(t, "beats through WatchBinlog", 30*time.Second, func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			// The stream's opening events are at most five: the rest are
			// heartbeats.
			return len(beats) >= 10, strconv.Itoa(len(beats))
		})
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("WatchBinlog after cancel returned %v, want context.Canceled", err)
		}
		end := time.Now()
		mu.Lock()
		defer mu.Unlock()
		for i, at := range beats {
			if at.Before(start) || at.After(end) || (i > 0 && at.Before(beats[i-1])) {
				t.Fatalf("beat %d at %v: outside [%v, %v] or before the previous one", i, at, start, end)
			}
		}
	})
}

// 2. A write on the source reaches the watch even when no heartbeat is due.
func TestWatchWriteProducesBeat(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		s := writableServer(t, k)
		cfg := watchConfig(s, WatchServerID(t.Name()))
		// No heartbeat within the test: every later beat is the write.
		cfg.Heartbeat, cfg.Silence = time.Hour, time.Hour
		w := startWatch(t, cfg, false)
		eventually(t, "the stream's opening events", 30*time.Second, func() (bool, string) {
			return w.count() > 0, fmt.Sprintf("errors %v", w.errors())
		})
		writeRows(t, s, 1, 1)
		eventually(t, "the write's GTID event", 30*time.Second, func() (bool, string) {
			return w.countIf(gtidEvent) == 1, fmt.Sprintf("%d GTID events of %d, errors %v", w.countIf(gtidEvent), w.count(), w.errors())
		})

		// An event larger than a protocol packet (16 MiB) arrives in several
		// packets: it is one event, and the stream goes on after it. An
		// update logs the 10 MiB value twice (before and after images).
		s.Exec(t, "CREATE TABLE regent_test.big (id INT PRIMARY KEY, n INT, b LONGBLOB)",
			"INSERT INTO regent_test.big VALUES (1, 0, REPEAT('x', 10 << 20))",
			"UPDATE regent_test.big SET n = 1")
		huge := func(e binlogEvent) bool { return e.Size > 1<<24 }
		writeRows(t, s, 2, 1)
		eventually(t, "the update and the write after it", 60*time.Second, func() (bool, string) {
			return w.countIf(huge) == 1 && w.countIf(gtidEvent) == 5, fmt.Sprintf("%d GTID events, %d over 16 MiB, errors %v", w.countIf(gtidEvent), w.countIf(huge), w.errors())
		})
	})
}

// 3. A watch starts at the source's current end: after many transactions
// over several binlog files it receives none of them, only the next one.
func TestWatchStartsAtCurrentEnd(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		s := writableServer(t, k)
		writeRows(t, s, 1, 50)
		s.Exec(t, "FLUSH BINARY LOGS")
		writeRows(t, s, 51, 50)
		s.Exec(t, "FLUSH BINARY LOGS")
		s.Exec(t, "INSERT INTO regent_test.writes (id) SELECT id + 1000 FROM regent_test.writes")
		writeRows(t, s, 10000, 20)

		w := startWatch(t, watchConfig(s, WatchServerID(t.Name())), false)
		// Two heartbeats: the source has skipped the history and waits.
		w.waitHeartbeats(t, 2)
		if n := w.countIf(transactionEvent); n != 0 {
			t.Fatalf("the watch received %d events of old transactions", n)
		}
		writeRows(t, s, 20000, 1)
		eventually(t, "the new transaction", 30*time.Second, func() (bool, string) {
			return w.countIf(gtidEvent) > 0, fmt.Sprintf("%d events, errors %v", w.count(), w.errors())
		})
		w.waitHeartbeats(t, w.heartbeats()+2) // anything else in flight has arrived
		if n := w.countIf(gtidEvent); n != 1 {
			t.Fatalf("%d GTID events after one new transaction, want 1", n)
		}
		if errs := w.errors(); len(errs) != 0 {
			t.Fatalf("watch ended: %v", errs)
		}
	})
}

// 4. A frozen source sends nothing: no beat while it is stopped, the watch
// gives up on the silence with a timeout, and beats come again after it
// resumes, through the caller's reconnect loop. A frozen source never holds a
// watch past its ctx, neither in the stream nor while logging in.
func TestWatchFrozenSource(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		s := mysqltest.Start(t, k)
		cfg := watchConfig(s, WatchServerID(t.Name()))
		cfg.ConnectTimeout = time.Second
		w := startWatch(t, cfg, true)
		w.waitHeartbeats(t, 3)
		patient := cfg
		patient.ServerID, patient.Silence = WatchServerID(t.Name()+"/patient"), time.Hour
		held := startWatch(t, patient, false)
		held.waitHeartbeats(t, 1)

		s.Pause(t)
		t.Cleanup(func() { s.Resume(t) })
		// The watch notices the silence, then fails to log in again: from the
		// first timeout on, no packet can have come from the source.
		eventually(t, "a timeout while frozen", 30*time.Second, func() (bool, string) {
			errs := w.errors()
			return len(errs) >= 1, fmt.Sprint(errs)
		})
		paused := w.count()
		// The stream ended on its read deadline, set after the last packet
		// it took: no beat can be closer to the error than the silence.
		if q, silence := w.quietBeforeFirstError(), cfg.withDefaults().Silence; q < silence {
			t.Fatalf("a beat %v before the silence timeout, which needs %v without a packet", q, silence)
		}
		eventually(t, "two more failed attempts", 60*time.Second, func() (bool, string) {
			errs := w.errors()
			return len(errs) >= 3, fmt.Sprint(errs)
		})
		if n := w.count(); n != paused {
			t.Fatalf("%d beats while the source was frozen", n-paused)
		}
		for _, err := range w.errors() {
			if Classify(err) != ClassTimeout {
				t.Fatalf("a frozen source gave class %q (%v), want timeout", Classify(err), err)
			}
		}

		// Neither a stream waiting out a long silence nor a log-in to the
		// frozen source outlives ctx.
		login := cfg
		login.ServerID, login.ConnectTimeout, login.Silence = WatchServerID(t.Name()+"/login"), time.Hour, time.Hour
		stuck := startWatch(t, login, false)
		// Give it time to reach the log-in; a cancel at any stage must end it.
		time.Sleep(500 * time.Millisecond)
		for name, run := range map[string]*watchRun{"stream": held, "log-in": stuck} {
			run.cancel()
			eventually(t, name+" ends with ctx", 30*time.Second, func() (bool, string) {
				ok, _ := run.finished()
				return ok, "still running"
			})
			if _, err := run.finished(); !errors.Is(err, context.Canceled) {
				t.Fatalf("%s on a frozen source returned %v after cancel, want context.Canceled", name, err)
			}
		}

		s.Resume(t)
		eventually(t, "beats after resume", 60*time.Second, func() (bool, string) {
			return w.count() >= paused+3, fmt.Sprintf("%d beats since the pause, errors %v", w.count()-paused, w.errors())
		})
	})
}

// 5. A killed source ends the watch at once with gone_away (no silence
// timeout could: it is an hour), and the next attempt is refused.
func TestWatchKilledSource(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		s := mysqltest.Start(t, k)
		cfg := watchConfig(s, WatchServerID(t.Name()))
		cfg.Silence = time.Hour
		w := startWatch(t, cfg, false)
		w.waitHeartbeats(t, 2)
		s.Kill(t)
		eventually(t, "the watch ends", 30*time.Second, func() (bool, string) {
			ok, _ := w.finished()
			return ok, fmt.Sprintf("%d events", w.count())
		})
		_, err := w.finished()
		if Classify(err) != ClassGoneAway {
			t.Fatalf("killed source: class %q (%v), want gone_away", Classify(err), err)
		}
		err = WatchBinlog(ctxT(t, 30*time.Second), cfg, func(time.Time) {})
		if Classify(err) != ClassRefused {
			t.Fatalf("watch on a dead source: class %q (%v), want refused", Classify(err), err)
		}
		if strings.Contains(err.Error(), mysqltest.ReplPassword) {
			t.Fatalf("error text leaks the password: %v", err)
		}
	})
}

// Wrong credentials are an auth error, without the password in it; an
// account without REPLICATION SLAVE is denied the dump.
func TestWatchAccountErrors(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		s := mysqltest.Start(t, k)
		ctx := ctxT(t, 60*time.Second)
		cfg := watchConfig(s, WatchServerID(t.Name()))
		cfg.Password = "not-the-password"
		err := WatchBinlog(ctx, cfg, func(time.Time) {})
		if Classify(err) != ClassAuth || strings.Contains(err.Error(), cfg.Password) {
			t.Fatalf("wrong password: class %q, error %v", Classify(err), err)
		}
		cfg.User, cfg.Password = mysqltest.AppUser, mysqltest.AppPassword
		err = WatchBinlog(ctx, cfg, func(time.Time) {})
		if Classify(err) != ClassAccessDenied || strings.Contains(err.Error(), cfg.Password) {
			t.Fatalf("account without REPLICATION SLAVE: class %q, error %v", Classify(err), err)
		}
	})
}

// 6. Watches are invisible to what Regent reads about replicas and to
// semi-sync: they are neither listed nor counted as semi-sync clients, and
// the replicas keep replicating while watches come and go.
func TestWatchesAreNotReplicas(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		c := mysqltest.StartCluster(t, k, 2)
		mysqltest.EnsureTable(t, c.Primary)
		ctx := ctxT(t, 180*time.Second)
		p := open(t, c.Primary)
		if err := p.SetSemiSync(ctx, SemiSyncConfig{Source: true, Timeout: 10 * time.Second}); err != nil {
			t.Fatal(err)
		}
		for _, r := range c.Replicas {
			if err := open(t, r).SetSemiSync(ctx, SemiSyncConfig{Replica: true}); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, "two semi-sync clients", 30*time.Second, func() (bool, string) {
			s := probe(t, p)
			return s.SemiSync.SourceActive && s.SemiSync.SourceClients == 2, strconv.Itoa(s.SemiSync.SourceClients)
		})
		dumps := func() int {
			var n int
			err := p.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'").Scan(&n)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		check := func(when string) {
			t.Helper()
			if s := probe(t, p); s.SemiSync.SourceClients != 2 || !s.SemiSync.SourceActive {
				t.Fatalf("%s: %d semi-sync clients (active %v), want the 2 replicas", when, s.SemiSync.SourceClients, s.SemiSync.SourceActive)
			}
			reps, err := p.ListReplicas(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ports := map[int]bool{}
			for _, r := range reps {
				ports[r.Port] = true
			}
			if len(reps) != 2 || !ports[c.Replicas[0].Port] || !ports[c.Replicas[1].Port] {
				t.Fatalf("%s: ListReplicas = %+v, want the 2 replicas only", when, reps)
			}
			for _, r := range c.Replicas {
				if io, sqlT, e := mysqltest.ReplicaThreads(t, r); io != "Yes" || sqlT != "Yes" {
					t.Fatalf("%s: %s IO=%s SQL=%s %s", when, r.Name, io, sqlT, e)
				}
			}
		}

		ids := []uint32{WatchServerID("agent-1"), WatchServerID("agent-2")}
		watches := make([]*watchRun, len(ids))
		for i, id := range ids {
			watches[i] = startWatch(t, watchConfig(c.Primary, id), true)
		}
		for _, w := range watches {
			w.waitHeartbeats(t, 2)
		}
		if n := dumps(); n != 4 {
			t.Fatalf("%d binlog dumps on the primary, want 2 replicas + 2 watches", n)
		}
		check("with two watches")

		wr := mysqltest.NewWriter(c.Primary.Addr(), k, 300, 5*time.Millisecond)
		wr.Start(context.Background())
		defer wr.Stop()
		for round := 0; round < 4; round++ {
			for i, id := range ids {
				watches[i].stop()
				watches[i] = startWatch(t, watchConfig(c.Primary, id), true)
			}
			for _, w := range watches {
				w.waitHeartbeats(t, 1)
			}
			check(fmt.Sprintf("round %d", round))
		}
		if err := wr.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if n, first, _ := wr.Failed(); n != 0 {
			t.Fatalf("%d writes failed; first %v", n, first)
		}
		for _, r := range c.Replicas {
			mysqltest.WaitCaughtUp(t, r, c.Primary, 30*time.Second)
			if m := wr.Missing(t, r); len(m) != 0 {
				t.Fatalf("%s misses %d rows", r.Name, len(m))
			}
		}
		for i, w := range watches {
			if errs := w.errors(); len(errs) != 0 {
				t.Fatalf("watch %d broke: %v", i, errs)
			}
		}
		check("after the writes")
		// A semi-sync acknowledgement would need the watch to ask for it: the
		// source never waited on one from a watch, so no commit timed out.
		if s := probe(t, p); !s.SemiSync.SourceActive {
			t.Fatalf("semi-sync fell back to asynchronous")
		}
	})
}

// Two watches with the same server id on one source: the newer one ends the
// older one's stream (MariaDB by server id, MySQL by the replica UUID the
// watch derives from it). This is why ServerID must be unique per watcher.
func TestWatchSameServerIDReplacesOlder(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		s := mysqltest.Start(t, k)
		cfg := watchConfig(s, WatchServerID(t.Name()))
		cfg.Silence = time.Hour
		older := startWatch(t, cfg, false)
		older.waitHeartbeats(t, 2)
		other := startWatch(t, watchConfig(s, WatchServerID(t.Name()+"/other")), false)
		other.waitHeartbeats(t, 2)
		newer := startWatch(t, cfg, false)
		newer.waitHeartbeats(t, 2)
		eventually(t, "the older watch ends", 30*time.Second, func() (bool, string) {
			ok, _ := older.finished()
			return ok, "still running"
		})
		if _, err := older.finished(); Classify(err) == ClassNone {
			t.Fatalf("older watch: %v", err)
		}
		before := other.heartbeats()
		newer.waitHeartbeats(t, newer.heartbeats()+2)
		other.waitHeartbeats(t, before+2)
		if errs := append(newer.errors(), other.errors()...); len(errs) != 0 {
			t.Fatalf("watches with distinct ids broke: %v", errs)
		}
	})
}

// 7. TLS: with an account that may only log in over TLS, a watch with a TLS
// configuration streams and one without is refused. MariaDB verifies the
// test CA; MySQL uses the certificate it made itself, unverified.
func TestWatchTLS(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		var s *mysqltest.Server
		cfg := WatchConfig{User: mysqltest.ReplUser, Password: mysqltest.ReplPassword, ServerID: WatchServerID(t.Name()), Heartbeat: 200 * time.Millisecond}
		if k == mysqltest.MariaDB {
			files := mysqltest.NewTLSFiles(t)
			s = mysqltest.Start(t, k, mysqltest.WithTLS(files))
			cfg.TLS = files.ClientConfig()
		} else {
			s = mysqltest.Start(t, k)
			cfg.TLS, _ = ClientTLS(TLSFiles{InsecureSkipVerify: true})
		}
		cfg.Addr = s.Addr()
		s.Exec(t, "ALTER USER '"+mysqltest.ReplUser+"'@'127.0.0.1' REQUIRE SSL")
		w := startWatch(t, cfg, false)
		w.waitHeartbeats(t, 3)

		plain := cfg
		plain.TLS = nil
		err := WatchBinlog(ctxT(t, 30*time.Second), plain, func(time.Time) {})
		if Classify(err) != ClassAuth {
			t.Fatalf("plain-text watch for an account that requires TLS: class %q (%v), want auth", Classify(err), err)
		}
		if errs := w.errors(); len(errs) != 0 {
			t.Fatalf("TLS watch broke: %v", errs)
		}
	})
}
