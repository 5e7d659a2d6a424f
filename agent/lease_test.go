package agent

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/topology"
	"github.com/regentdb/regent/topology/mysqltest"
)

// fakeFencer records what the lease asked of the local instance. It stands
// in for a server only in the synctest cases, where time is simulated; the
// same keeper runs against real servers in TestLeaseFencesAfterAFailedProbe.
type fakeFencer struct {
	mu        sync.Mutex
	readOnly  bool
	readErr   error
	holds     bool // Fence succeeds at once; otherwise it blocks until ctx ends
	fences    []time.Time
	deadlines []time.Time
	shutdowns []time.Time
}

func (f *fakeFencer) ReadOnly(ctx context.Context) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.readOnly, f.readErr
}

func (f *fakeFencer) Fence(ctx context.Context) error {
	f.mu.Lock()
	f.fences = append(f.fences, time.Now())
	dl, _ := ctx.Deadline()
	f.deadlines = append(f.deadlines, dl)
	holds := f.holds
	f.mu.Unlock()
	if holds {
		f.mu.Lock()
		f.readOnly = true
		f.mu.Unlock()
		return nil
	}
	<-ctx.Done()
	return fmt.Errorf("fence: %w: set read_only=ON: %w", topology.ErrReadOnlyPending, ctx.Err())
}

func (f *fakeFencer) Shutdown(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shutdowns = append(f.shutdowns, time.Now())
	return nil
}

func (f *fakeFencer) calls() (fences, deadlines, shutdowns []time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.fences...), append([]time.Time(nil), f.deadlines...), append([]time.Time(nil), f.shutdowns...)
}

type leaseRig struct {
	k        *leaseKeeper
	f        *fakeFencer
	mu       sync.Mutex
	contact  time.Time
	st       *consensus.Cluster
	fenced   []string
	fencedAt []time.Time
}

func newLeaseRig(f *fakeFencer) *leaseRig { return newLeaseRigWith(f, f) }

// newLeaseRigWith builds the rig around fencer; f, when not nil, is the same
// fencer as a recorder.
func newLeaseRigWith(f *fakeFencer, fencer localFencer) *leaseRig {
	r := &leaseRig{f: f, contact: time.Now()}
	r.k = &leaseKeeper{policy: failover.DefaultPolicy(), local: "db1", clock: clock{}, log: slog.New(slog.DiscardHandler),
		contact: func() time.Time { r.mu.Lock(); defer r.mu.Unlock(); return r.contact },
		state:   func() *consensus.Cluster { r.mu.Lock(); defer r.mu.Unlock(); return r.st },
		fencer:  fencer, changed: func(context.Context) {},
		fenced: func(_ context.Context, why string) {
			r.mu.Lock()
			r.fenced, r.fencedAt = append(r.fenced, why), append(r.fencedAt, time.Now())
			r.mu.Unlock()
		}}
	return r
}

// keepContact renews the quorum contact every 100ms until stop.
func (r *leaseRig) keepContact(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
			r.mu.Lock()
			r.contact = time.Now()
			r.mu.Unlock()
		}
	}
}

// The lease loop against simulated time (testing/synctest) and a recording
// fencer: when the lease is lost, when the fence starts, its deadline, the
// escalation. Default policy: fence_after 1.5s, lease_timeout 3s, a check
// every 300ms, deadline at contact + 2.7s, escalation at contact + 2.1s.
func TestLeaseKeeper(t *testing.T) {
	t.Run("issue 9 defect 4: the fence is attempted though the last probe failed and read_only cannot be read", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeFencer{readErr: errors.New("read read_only: timeout"), holds: true}
			r := newLeaseRig(f)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			t0 := r.contact // contact stops now
			go r.k.loop(ctx)
			time.Sleep(3 * time.Second)
			fences, deadlines, _ := f.calls()
			if len(fences) == 0 {
				t.Fatalf("no fence within 3s of the last contact")
			}
			if d := fences[0].Sub(t0); d < 1500*time.Millisecond || d > 1800*time.Millisecond {
				t.Errorf("first fence %v after the contact, want within one check (300ms) of fence_after (1.5s)", d)
			}
			if want := t0.Add(2100 * time.Millisecond); !deadlines[0].Equal(want) {
				t.Errorf("fence budget ends at +%v, want the escalation point +2.1s", deadlines[0].Sub(t0))
			}
			if r.k.heldNow() {
				t.Errorf("lease reported held after losing contact")
			}
			cancel()
			synctest.Wait()
		})
	})
	t.Run("issue 9 defect 10: a fence that never holds ends in a stop before the deadline, not a fresh budget per retry", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeFencer{}
			r := newLeaseRig(f)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			t0 := r.contact
			go r.k.loop(ctx)
			time.Sleep(2800 * time.Millisecond)
			fences, deadlines, shutdowns := f.calls()
			if len(fences) == 0 || len(shutdowns) == 0 {
				t.Fatalf("fences %d, shutdowns %d", len(fences), len(shutdowns))
			}
			// One budget up to the escalation point, not a fresh one per
			// retry; after it, single attempts.
			if !deadlines[0].Equal(t0.Add(2100 * time.Millisecond)) {
				t.Errorf("first fence's budget ends at +%v, want the escalation point +2.1s", deadlines[0].Sub(t0))
			}
			for i := 1; i < len(deadlines); i++ {
				if b := deadlines[i].Sub(fences[i]); b > fenceAttemptMin {
					t.Errorf("fence %d at +%v got a budget of %v", i, fences[i].Sub(t0), b)
				}
			}
			if s := shutdowns[0].Sub(t0); s < 2100*time.Millisecond || s >= 2700*time.Millisecond {
				t.Errorf("mysqld stopped at +%v, want between the escalation point (+2.1s) and the deadline (+2.7s)", s)
			}
			cancel()
			synctest.Wait()
		})
	})
	t.Run("a read-only instance is not fenced again on every check", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeFencer{readOnly: true, holds: true}
			r := newLeaseRig(f)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go r.k.loop(ctx)
			time.Sleep(5 * time.Second)
			if fences, _, _ := f.calls(); len(fences) != 0 {
				t.Errorf("read-only instance fenced %d times", len(fences))
			}
			cancel()
			synctest.Wait()
		})
	})
	t.Run("a failover replacing the instance: fenced once, though read-only, while the lease is held", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeFencer{readOnly: true, holds: true}
			r := newLeaseRig(f)
			r.st = &consensus.Cluster{Primary: "db1", Epoch: 3, Operation: &consensus.Operation{ID: "op-1", Kind: consensus.KindFailover, OldPrimary: "db1"}}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go r.keepContact(ctx)
			go r.k.loop(ctx)
			time.Sleep(2 * time.Second)
			if fences, _, _ := f.calls(); len(fences) != 1 {
				t.Errorf("fenced %d times for one operation, want 1", len(fences))
			}
			if r.k.heldNow() {
				t.Errorf("lease held while an operation replaces the instance")
			}
			cancel()
			synctest.Wait()
		})
	})
	t.Run("in contact and primary: held, never fenced", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeFencer{holds: true}
			r := newLeaseRig(f)
			r.st = &consensus.Cluster{Primary: "db1", Epoch: 3}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go r.keepContact(ctx)
			go r.k.loop(ctx)
			time.Sleep(5 * time.Second)
			if fences, _, _ := f.calls(); len(fences) != 0 || !r.k.heldNow() {
				t.Errorf("fences %d, held %v", len(fences), r.k.heldNow())
			}
			cancel()
			synctest.Wait()
		})
	})
}

// The same keeper against real servers, with the real fencer: the quorum
// contact stops at t0 and the instance is writable.
func TestLeaseKeeperOnRealServers(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		t.Run("writable primary: read-only before the deadline", func(t *testing.T) {
			c := mysqltest.StartCluster(t, k, 1)
			r := realLeaseRig(t, c.Primary)
			mysqltest.SetWritable(t, c.Primary, true)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go r.k.loop(ctx)
			deadline := r.contact.Add(r.k.policy.LeaseTimeout - failover.LeaseMargin(r.k.policy))
			h := &harness{t: t}
			h.eventually("read-only", 10*time.Second, func() (bool, string) {
				return c.Primary.QueryString(t, "SELECT @@read_only") == "1", "writable"
			})
			if time.Now().After(deadline) {
				t.Fatalf("read-only only at %v, after the deadline %v", time.Now(), deadline)
			}
		})
		t.Run("frozen through the deadline: fenced as soon as it answers", func(t *testing.T) {
			c := mysqltest.StartCluster(t, k, 1)
			r := realLeaseRig(t, c.Primary)
			mysqltest.SetWritable(t, c.Primary, true)
			c.Primary.Pause(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go r.k.loop(ctx)
			time.Sleep(r.k.policy.LeaseTimeout) // the deadline passes while frozen
			c.Primary.Resume(t)
			woke := time.Now()
			h := &harness{t: t}
			h.eventually("read-only", 10*time.Second, func() (bool, string) {
				return c.Primary.QueryString(t, "SELECT @@read_only") == "1", "writable"
			})
			t.Logf("fenced %v after waking", time.Since(woke))
			// Fenced, not stopped: a frozen server commits nothing, and
			// stopping it on waking would only lose the instance.
			if v := c.Primary.QueryString(t, "SELECT 1"); v != "1" {
				t.Fatalf("the woken server does not answer")
			}
		})
		t.Run("a commit stuck waiting for semi-sync: fenced on MariaDB, stopped on MySQL, never acknowledged", func(t *testing.T) {
			c := mysqltest.StartCluster(t, k, 1)
			mysqltest.EnsureTable(t, c.Primary)
			r := realLeaseRig(t, c.Primary)
			mysqltest.SetWritable(t, c.Primary, true)
			c.Primary.Exec(t, "SET GLOBAL "+semiSyncVar(k)+"_enabled=ON", "SET GLOBAL "+semiSyncVar(k)+"_timeout=3600000")
			c.Replicas[0].Exec(t, "STOP "+replicaWord(k)+" IO_THREAD")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			app := appDB(t, c.Primary)
			done := make(chan error, 1)
			go func() {
				_, err := app.ExecContext(ctx, "INSERT INTO regent_test.writes (id) VALUES (1)")
				done <- err
			}()
			h0 := &harness{t: t}
			h0.eventually("the commit waits for an acknowledgement", 10*time.Second, func() (bool, string) {
				n := c.Primary.QueryString(t, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '"+mysqltest.AppUser+"' AND STATE LIKE '%semi-sync%'")
				return n == "1", n + " sessions waiting"
			})
			r.contact = time.Now()
			go r.k.loop(ctx)
			deadline := r.contact.Add(r.k.policy.LeaseTimeout - failover.LeaseMargin(r.k.policy))
			h := &harness{t: t}
			if k == mysqltest.MariaDB {
				// Killing the waiter releases read_only there.
				h.eventually("read-only", 10*time.Second, func() (bool, string) {
					return c.Primary.QueryString(t, "SELECT @@read_only") == "1", "writable"
				})
			} else {
				// The killed waiter keeps the commit lock: read_only cannot
				// hold, and the keeper stops mysqld.
				c.Primary.WaitExited(t, 20*time.Second)
			}
			var at []time.Time
			h.eventually("the keeper reports the fence", 10*time.Second, func() (bool, string) {
				r.mu.Lock()
				defer r.mu.Unlock()
				at = r.fencedAt
				return len(at) > 0, "not yet"
			})
			if at[0].After(deadline) {
				t.Errorf("fenced or stopped at %v, want before the deadline %v", at, deadline)
			}
			select {
			case err := <-done:
				if err == nil {
					t.Fatalf("the stuck commit was acknowledged")
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("the stuck client never got an answer")
			}
		})
	})
}

func realLeaseRig(t *testing.T, s *mysqltest.Server) *leaseRig {
	t.Helper()
	cfg := topology.ConnConfig{Addr: s.Addr(), User: mysqltest.AdminUser, Password: mysqltest.AdminPassword,
		ConnectTimeout: 300 * time.Millisecond, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	if s.Kind == mysqltest.MySQL {
		cfg.TLS, _ = topology.ClientTLS(topology.TLSFiles{InsecureSkipVerify: true})
	}
	inst, err := topology.Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inst.Close() })
	r := newLeaseRigWith(nil, instanceFencer{inst: inst})
	r.k.log = slog.New(slog.NewTextHandler(&testLog{t: t}, nil))
	r.st = &consensus.Cluster{Primary: "db1", Epoch: 1}
	return r
}

// appDB is a connection pool of the application's account.
func appDB(t *testing.T, s *mysqltest.Server) *sql.DB {
	t.Helper()
	conn, err := mysql.NewConnector(s.Config(mysqltest.AppUser, mysqltest.AppPassword))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	t.Cleanup(func() { _ = db.Close() })
	return db
}
