package topology

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/regentdb/regent/topology/mysqltest"
)

// A lossless semi-sync primary freezes (SIGSTOP) while a commit waits for
// its acknowledgement, the benchmark's frozen-primary failover in small: the
// failover stops a replica's IO thread and repoints a sibling to it. Both
// must complete without error, and afterwards neither replica may have a
// connection to the old primary (the semi-sync fence rests on that: README
// "Semi-sync as a fence"). On MariaDB the IO thread's exit connects to the
// frozen source (endIOThreads); MySQL needs nothing and runs as a check.
//
// The durations are logged, not asserted: the machine is shared, and what
// the test guards is that the calls return on their own, without running
// into a deadline, and leave nothing connected to the old primary.
func TestStopAndRepointAgainstFrozenSemiSyncPrimary(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		c, p, ctx := losslessCluster(t, k, func(c *mysqltest.Cluster, r *Instance) {
			// The benchmark's heartbeat: a stream that is never idle long.
			o := replOpts(c.Primary)
			o.HeartbeatPeriod = 250 * time.Millisecond
			if err := r.ChangeSource(ctxT(t, time.Minute), o); err != nil {
				t.Fatal(err)
			}
		})
		r1, r2 := open(t, c.Replicas[0]), open(t, c.Replicas[1])

		// A commit in flight: the primary freezes while the commit waits for
		// an acknowledgement. The replicas are paused meanwhile, so that it
		// surely still waits; the primary's dump threads have (most likely)
		// sent it to their sockets, and once resumed the replicas write it
		// and acknowledge it to the frozen primary, as in the benchmark.
		for _, r := range c.Replicas {
			r.Pause(t)
		}
		done := insertInBackground(ctx, t, c.Primary, 1)
		eventually(t, "the commit waits for an acknowledgement", 30*time.Second, func() (bool, string) {
			rows, err := queryRows(ctx, p.db, "SELECT USER, COMMAND, STATE FROM information_schema.PROCESSLIST WHERE USER = '"+mysqltest.AppUser+"' OR COMMAND LIKE 'Binlog Dump%'")
			waiting, sent := 0, 0
			for _, r := range rows {
				switch {
				case r["USER"] == mysqltest.AppUser && strings.Contains(r["STATE"], "semi-sync"):
					waiting++
				case strings.Contains(r["STATE"], "has sent all binlog"):
					// Most likely sent to the replicas' sockets already
					// (the state may be from before the commit woke them).
					sent++
				}
			}
			return err == nil && waiting == 1 && sent == 2, fmt.Sprintf("err %v; %v", err, rows)
		})
		c.Primary.Pause(t)
		for _, r := range c.Replicas {
			r.Resume(t)
		}
		// Both receive it before r1's IO thread is stopped, as in the
		// benchmark (where the IO threads idle on the frozen source): had
		// r1 stopped first, r2 would hold a commit r1 lacks and could never
		// replicate from it (seen in CI under load).
		for _, r := range c.Replicas {
			eventually(t, r.Name+" applied the commit in flight", 30*time.Second, func() (bool, string) {
				n := r.QueryString(t, "SELECT COUNT(*) FROM regent_test.writes")
				return n == "1", n + " rows"
			})
		}

		start := time.Now()
		if err := r1.StopReplica(ctx, ThreadIO); err != nil {
			t.Fatalf("stop r1's IO thread against the frozen primary (class %s): %v", Classify(err), err)
		}
		stopped := time.Since(start)
		start = time.Now()
		if err := r2.ChangeSource(ctx, replOpts(c.Replicas[0])); err != nil {
			t.Fatalf("repoint r2 from the frozen primary to r1 (class %s): %v", Classify(err), err)
		}
		t.Logf("IO thread stopped in %v, sibling repointed in %v; rows of the commit in flight on r1: %s, on r2: %s",
			stopped.Round(time.Millisecond), time.Since(start).Round(time.Millisecond),
			c.Replicas[0].QueryString(t, "SELECT COUNT(*) FROM regent_test.writes"), c.Replicas[1].QueryString(t, "SELECT COUNT(*) FROM regent_test.writes"))

		if s := probe(t, r1).Replica; s == nil || s.IOState != IOStopped || s.SourcePort != c.Primary.Port {
			t.Fatalf("r1 after the stop: %+v, want its IO thread stopped, still pointed at p", s)
		}
		if n := ioThreads(t, c.Replicas[0]); n != 0 {
			t.Fatalf("r1 still has %d IO threads after the stop", n)
		}
		mysqltest.WaitReplicating(t, c.Replicas[1], 60*time.Second)
		if s := probe(t, r2).Replica; s == nil || s.SourcePort != c.Replicas[0].Port || s.IOState != IORunning {
			t.Fatalf("r2 after the repoint: %+v, want it receiving from r1 (port %d)", s, c.Replicas[0].Port)
		}
		if n := ioThreads(t, c.Replicas[1]); n != 1 {
			t.Fatalf("r2 has %d IO threads after the repoint, want the one to r1", n)
		}

		// The frozen primary never acknowledged the commit to its client.
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("the frozen primary acknowledged a commit")
			}
		case <-ctx.Done():
			t.Fatalf("the client of the frozen primary never got an answer")
		}
	})
}

// ioThreads counts the replica IO (receiver) threads that exist on s, in
// whatever state: a thread that was killed but has not ended yet counts.
func ioThreads(t *testing.T, s *mysqltest.Server) int {
	t.Helper()
	q := "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND IN ('Slave_IO', 'Killed')"
	if s.Kind == mysqltest.MySQL {
		q = "SELECT COUNT(*) FROM performance_schema.threads WHERE NAME = 'thread/sql/replica_io'"
	}
	var n int
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.DB().QueryRowContext(ctx, q).Scan(&n); err != nil {
		t.Fatalf("%s: %s: %v", s, q, err)
	}
	return n
}

// insertInBackground starts an application INSERT of id into the writer's
// table on s, and returns where its result arrives.
func insertInBackground(ctx context.Context, t *testing.T, s *mysqltest.Server, id int) <-chan error {
	t.Helper()
	app := openAs(t, s, mysqltest.AppUser, mysqltest.AppPassword)
	done := make(chan error, 1)
	go func() {
		_, err := app.db.ExecContext(ctx, fmt.Sprintf("INSERT INTO regent_test.writes (id) VALUES (%d)", id))
		done <- err
	}()
	return done
}
