package agent

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/topology/mysqltest"
)

// Issue 9, defect 9: a unix socket file deleted under a serving mysqld (tmp
// cleaners do this) was classed "refused", which is the fast path's evidence
// that mysqld is gone: a false failover. Only a refused TCP connection to the
// instance's address counts; a missing or refusing socket is re-checked over
// TCP.
func TestDeletedSocketFileIsNotMysqldGone(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		s := mysqltest.Start(t, k)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		dial := func() (failover.LocalState, string) {
			state, detail, conn := localDial(ctx, "unix", s.Socket(), s.Addr(), 300*time.Millisecond)
			if conn != nil {
				_ = conn.Close()
			}
			return state, detail
		}
		if st, d := dial(); st != failover.LocalRunning {
			t.Fatalf("serving mysqld with its socket: %s (%s), want running", st, d)
		}
		if err := os.Remove(s.Socket()); err != nil {
			t.Fatal(err)
		}
		if st, d := dial(); st != failover.LocalRunning {
			t.Fatalf("serving mysqld whose socket file was deleted: %s (%s), want running", st, d)
		}
		// A stale socket file that refuses (left by a mysqld that moved it)
		// is not evidence either while TCP answers.
		if err := os.WriteFile(s.Socket(), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if st, d := dial(); st == failover.LocalGone {
			t.Fatalf("serving mysqld behind a stale socket file: %s (%s)", st, d)
		}
		s.Kill(t)
		if st, d := dial(); st != failover.LocalGone {
			t.Fatalf("killed mysqld: %s (%s), want gone", st, d)
		}
	})
}

// Issue 9, defect 7: with only its Raft port cut, the primary's agent fences
// itself, but its reports kept refreshing "last heard" on the leader, so the
// lease never lapsed there and nothing was promoted: a permanent write
// outage. The leader counts the lease from Raft contact alone.
func TestRaftOnlyPartitionOfThePrimarysAgentFailsOver(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k, func(c *Config) { c.Clusters[0].FastPath = new(bool) })
		h.eventually("primary writable under a held lease", 15*time.Second, func() (bool, string) {
			c := h.cluster()
			return c.Primary == "p" && c.Epoch == 1 && h.db.Primary.QueryString(t, "SELECT @@read_only") == "0",
				fmt.Sprintf("primary %q epoch %d", c.Primary, c.Epoch)
		})
		h.isolateRaft(0)
		h.eventually("a replica promoted in epoch 2", 30*time.Second, func() (bool, string) {
			c, _ := h.nodes[1].State().Cluster("main")
			return c.Epoch == 2 && c.Primary != "p" && c.Operation == nil, fmt.Sprintf("primary %q epoch %d operation %v", c.Primary, c.Epoch, c.Operation)
		})
		if ro := h.db.Primary.QueryString(t, "SELECT @@read_only"); ro != "1" {
			t.Fatalf("old primary read_only=%s after the failover", ro)
		}
	})
}
