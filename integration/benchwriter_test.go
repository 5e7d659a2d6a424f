package integration

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/regentdb/regent/topology/mysqltest"
)

// writerConfig is what a benchmark writer does: one connection to addr as
// the application user, autocommit INSERTs of unique ids into
// regent_test.writes, one at a time.
type writerConfig struct {
	// addr is HAProxy's write frontend, or a server's own address (the
	// patient direct client).
	addr string
	// attempt bounds one attempt (connect if needed, then the INSERT): an
	// attempt stuck on a dead or frozen backend is given up and retried on
	// a new connection, as an application with short timeouts would.
	attempt time.Duration
	// pause is the pause after an acknowledged write (0: none).
	pause time.Duration
	// retry is the pause after a failed attempt.
	retry time.Duration
}

// benchWriter runs a writerConfig: on any error it drops the connection,
// pauses and tries again on a new one with the next id. It records when each
// acknowledged insert started and ended, and which server acknowledged it
// (the @@server_id of its connection, asked once per connection after the
// connection's first acknowledged write, so that the question never delays
// a recorded acknowledgement). Ids come from a counter shared by every
// writer of a lab, so that two writers never insert the same id.
type benchWriter struct {
	cfg    writerConfig
	conn   driver.Connector
	ids    *atomic.Int64
	mu     sync.Mutex
	acks   []writeAck
	fails  []writeFail
	last   error
	cur    int64 // the id being written now
	cancel context.CancelFunc
	done   chan struct{}
	notify chan struct{}
}

// writeFail is an attempt that got no acknowledgement: its insert may
// still have been committed by the server (an errant transaction when that
// server is an old primary).
type writeFail struct {
	id  int64
	end time.Time
}

type writeAck struct {
	id         int64
	start, end time.Time
	// server is the server_id of the server that acknowledged it (0:
	// unknown, the question failed).
	server uint32
}

// startWriter starts a writer of kind k's servers; ids gives its ids.
func startWriter(tb interface{ Fatal(...any) }, k mysqltest.Kind, cfg writerConfig, ids *atomic.Int64) *benchWriter {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = mysqltest.AppUser, mysqltest.AppPassword, "tcp", cfg.addr, mysqltest.TestDatabase
	c.Timeout, c.ReadTimeout, c.WriteTimeout = cfg.attempt, cfg.attempt, cfg.attempt
	if k == mysqltest.MySQL {
		// MySQL's caching_sha2_password needs TLS for a first login; the
		// session runs end to end through HAProxy (TCP mode).
		c.TLSConfig = "skip-verify"
	}
	c.Logger = quietLogger{}
	conn, err := mysql.NewConnector(c)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &benchWriter{cfg: cfg, conn: conn, ids: ids, cancel: cancel, done: make(chan struct{}), notify: make(chan struct{}, 1)}
	go w.run(ctx)
	return w
}

type quietLogger struct{}

func (quietLogger) Print(...any) {}

func (w *benchWriter) run(ctx context.Context) {
	defer close(w.done)
	var c driver.Conn
	var server uint32 // of c; 0 when unknown
	asked := false    // whether c was asked
	defer func() {
		if c != nil {
			_ = c.Close()
		}
	}()
	for ctx.Err() == nil {
		id := w.ids.Add(1)
		w.mu.Lock()
		w.cur = id
		w.mu.Unlock()
		start := time.Now()
		actx, cancel := context.WithTimeout(ctx, w.cfg.attempt)
		err := func() error {
			if c == nil {
				nc, err := w.conn.Connect(actx)
				if err != nil {
					return err
				}
				c, server, asked = nc, 0, false
			}
			ex, ok := c.(driver.ExecerContext)
			if !ok {
				return errors.New("the driver's connection cannot Exec")
			}
			_, err := ex.ExecContext(actx, fmt.Sprintf("INSERT INTO writes (id) VALUES (%d)", id), nil)
			return err
		}()
		end := time.Now()
		if err == nil && !asked {
			server, asked = serverID(actx, c), true
		}
		cancel()
		if ctx.Err() != nil {
			return // stopped: the outcome of this attempt does not count
		}
		w.mu.Lock()
		if err != nil {
			w.fails = append(w.fails, writeFail{id: id, end: end})
			w.last = err
		} else {
			w.acks = append(w.acks, writeAck{id: id, start: start, end: end, server: server})
		}
		w.mu.Unlock()
		select {
		case w.notify <- struct{}{}:
		default:
		}
		pause := w.cfg.pause
		if err != nil {
			if c != nil {
				_ = c.Close()
				c = nil
			}
			pause = w.cfg.retry
		}
		if pause > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(pause):
			}
		}
	}
}

// serverID asks c which server it is connected to; 0 when that fails.
func serverID(ctx context.Context, c driver.Conn) uint32 {
	q, ok := c.(driver.QueryerContext)
	if !ok {
		return 0
	}
	rows, err := q.QueryContext(ctx, "SELECT @@server_id", nil)
	if err != nil {
		return 0
	}
	defer rows.Close()
	v := make([]driver.Value, 1)
	if err := rows.Next(v); err != nil && !errors.Is(err, io.EOF) {
		return 0
	}
	switch x := v[0].(type) {
	case uint64:
		return uint32(x)
	case int64:
		return uint32(x)
	case []byte:
		n, _ := strconv.ParseUint(string(x), 10, 32)
		return uint32(n)
	}
	return 0
}

// inFlight returns the id being written now.
func (w *benchWriter) inFlight() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur
}

// stop ends the writer and waits for it (at most one attempt's bound).
func (w *benchWriter) stop() {
	w.cancel()
	<-w.done
}

func (w *benchWriter) acked() []writeAck {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.acks)
}

// tried reports whether this writer attempted id without an
// acknowledgement.
func (w *benchWriter) tried(id int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.fails {
		if f.id == id {
			return true
		}
	}
	return w.cur == id
}

// failures returns how many attempts failed and the last error.
func (w *benchWriter) failures() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.fails), w.last
}

func (w *benchWriter) failedAfter(t time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, f := range w.fails {
		if f.end.After(t) {
			n++
		}
	}
	return n
}

// wait waits until cond holds (checked after every attempt) or timeout.
func (w *benchWriter) wait(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		ok := cond()
		w.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-w.notify:
		case <-w.done:
			w.mu.Lock()
			ok := cond()
			w.mu.Unlock()
			return ok
		case <-deadline.C:
			return false
		}
	}
}

// waitAcked waits until n writes are acknowledged, failing the benchmark
// when they are not within timeout.
func (w *benchWriter) waitAcked(tb interface{ Fatalf(string, ...any) }, what string, n int, timeout time.Duration) {
	if !w.wait(timeout, func() bool { return len(w.acks) >= n }) {
		nf, last := w.failures()
		tb.Fatalf("%s: fewer than %d writes acknowledged within %v (%d failed, last error %v)", what, n, timeout, nf, last)
	}
}

// waitFirstAckAfter returns the first acknowledged write that started
// after t, by another server than not (0: by any).
func (w *benchWriter) waitFirstAckAfter(t time.Time, not uint32, timeout time.Duration) (writeAck, bool) {
	var first writeAck
	ok := w.wait(timeout, func() bool {
		for i := len(w.acks) - 1; i >= 0 && w.acks[i].start.After(t); i-- {
			if not == 0 || w.acks[i].server != not {
				first = w.acks[i]
			}
		}
		return !first.start.IsZero()
	})
	return first, ok
}

// waitAckedAfter waits, at most timeout, until n writes that started at t
// or later are acknowledged.
func (w *benchWriter) waitAckedAfter(t time.Time, n int, timeout time.Duration) {
	w.wait(timeout, func() bool {
		c := 0
		for i := len(w.acks) - 1; i >= 0 && !w.acks[i].start.Before(t); i-- {
			c++
		}
		return c >= n
	})
}

// largestGap is the longest time between two consecutive acknowledgements
// (by end time) among those that enclose the interval [from, to] or lie in
// it: how long the client saw no write succeed around a switchover. It
// returns the gap and the two acknowledgements around it.
func largestGap(acks []writeAck, from, to time.Time) (gap time.Duration, start, end time.Time) {
	for i := 1; i < len(acks); i++ {
		prev, cur := acks[i-1].end, acks[i].end
		if cur.Before(from) || prev.After(to) {
			continue
		}
		if d := cur.Sub(prev); d > gap {
			gap, start, end = d, prev, cur
		}
	}
	return gap, start, end
}
