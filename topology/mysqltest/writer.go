package mysqltest

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Writer inserts rows, one per statement with autocommit, and remembers which
// inserts the server acknowledged. After a failover, every acknowledged row
// must be on the new primary: Missing tells which are not.
//
// Its loop is bounded in count and time. Rows go to regent_test.writes; the
// table is created by EnsureTable on the primary.
type Writer struct {
	cfg    *mysql.Config
	max    int
	pause  time.Duration
	mu     sync.Mutex
	acked  []int64
	failed int
	firstErr,
	lastErr error
	cancel context.CancelFunc
	done   chan struct{}
}

// EnsureTable creates the writer's table on s (a writable primary).
func EnsureTable(t TB, s *Server) {
	t.Helper()
	s.Exec(t, "CREATE TABLE IF NOT EXISTS "+TestDatabase+".writes (id BIGINT PRIMARY KEY, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))")
}

// NewWriter returns a writer that connects to addr (a server or a proxy in
// front of one) as the application user, writing at most max rows with pause
// between them.
func NewWriter(addr string, kind Kind, max int, pause time.Duration) *Writer {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr, c.DBName = AppUser, AppPassword, "tcp", addr, TestDatabase
	c.Timeout, c.ReadTimeout, c.WriteTimeout = time.Second, 2*time.Second, 2*time.Second
	if kind == MySQL {
		c.TLSConfig = "skip-verify"
	}
	c.Logger = quiet{}
	return &Writer{cfg: c, max: max, pause: pause}
}

// Start begins writing in the background until Stop, ctx's end, or max rows.
func (w *Writer) Start(ctx context.Context) {
	ctx, w.cancel = context.WithCancel(ctx)
	w.done = make(chan struct{})
	go w.run(ctx)
}

func (w *Writer) run(ctx context.Context) {
	defer close(w.done)
	conn, err := mysql.NewConnector(w.cfg)
	if err != nil {
		w.record(0, err)
		return
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	// One connection, so a failover shows as errors and a reconnect, as an
	// application would see it.
	db.SetMaxOpenConns(1)
	for id := int64(1); id <= int64(w.max); id++ {
		if ctx.Err() != nil {
			return
		}
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := db.ExecContext(qctx, fmt.Sprintf("INSERT INTO writes (id) VALUES (%d)", id))
		cancel()
		w.record(id, err)
		if w.pause > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(w.pause):
			}
		}
	}
}

func (w *Writer) record(id int64, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.failed++
		if w.firstErr == nil {
			w.firstErr = err
		}
		w.lastErr = err
		return
	}
	w.acked = append(w.acked, id)
}

// Stop ends the writer and waits for it.
func (w *Writer) Stop() {
	if w.cancel == nil {
		return
	}
	w.cancel()
	<-w.done
}

// Wait waits until the writer has written its max rows (or ctx ends).
func (w *Writer) Wait(ctx context.Context) error {
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Acked returns the ids the server acknowledged, in order.
func (w *Writer) Acked() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.acked)
}

// Failed returns how many inserts failed and the first and last errors.
func (w *Writer) Failed() (n int, first, last error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed, w.firstErr, w.lastErr
}

// WaitAcked waits until at least n rows are acknowledged.
func (w *Writer) WaitAcked(t TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for len(w.Acked()) < n {
		if time.Now().After(deadline) {
			failed, first, last := w.Failed()
			t.Fatalf("writer: %d rows acknowledged after %v, wanted %d (%d failed; first error %v; last %v)", len(w.Acked()), timeout, n, failed, first, last)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

// Missing returns the acknowledged ids that s does not have.
func (w *Writer) Missing(t TB, s *Server) []int64 {
	t.Helper()
	have := WrittenIDs(t, s)
	var missing []int64
	for _, id := range w.Acked() {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	return missing
}

// WrittenIDs returns the ids in s's writes table (regent_test.writes),
// read as root; it fails the test when they cannot be read within 30 s.
func WrittenIDs(t TB, s *Server) map[int64]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rows *sql.Rows
	err := retryKilled(func() (err error) {
		rows, err = s.DB().QueryContext(ctx, "SELECT id FROM "+TestDatabase+".writes")
		return err
	})
	if err != nil {
		t.Fatalf("%s: reading writes: %v", s, err)
	}
	defer rows.Close()
	have := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		have[id] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return have
}
