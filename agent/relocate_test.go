package agent

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/apiserver"
	"github.com/regentdb/regent/config"
	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/topology/mysqltest"
)

// A replica relocated under another (regentctl repoint) replicates from it;
// when that intermediate replica's mysqld dies, the replica is moved under
// the primary and loses nothing (every write acknowledged by the lossless
// primary is on it), and it goes back under the intermediate once that one
// is back and caught up (README "Relocating replicas").
func TestRelocatedReplicaSurvivesItsDeadIntermediate(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k, func(c *config.Config) { c.Clusters[0].Durability = "semi_sync" })
		h.waitRecorded()
		p, r1, r2 := h.db.Primary, h.db.Replicas[0], h.db.Replicas[1]
		ctx := context.Background()
		leader := func() API { return h.agents[h.leader()].API() }
		instanceOf := h.instance
		// under reports whether name replicates from src with both threads
		// running, as the leader last probed it.
		under := func(name, src string) (bool, string) {
			in := instanceOf(name)
			r := in.Replication
			if r == nil {
				return false, "not a replica"
			}
			return r.SourceName == src && r.IOThread == api.ThreadRunning && r.SQLThread == api.ThreadRunning,
				fmt.Sprintf("source %s io %s sql %s", r.SourceName, r.IOThread, r.SQLThread)
		}
		h.eventually("lossless semi-sync on the primary", 20*time.Second, func() (bool, string) {
			on := p.QueryString(t, "SELECT @@"+semiSyncVar(k)+"_enabled")
			return on == "1", "enabled=" + on
		})

		// Refusals say why and change nothing.
		if _, err := leader().Repoint(ctx, "main", r2.Name, api.RepointRequest{To: r2.Name}); !errors.Is(err, apiserver.ErrRefused) {
			t.Fatalf("repoint under itself: %v, want a refusal", err)
		}
		if _, err := leader().Repoint(ctx, "main", p.Name, api.RepointRequest{To: r1.Name}); !errors.Is(err, apiserver.ErrRefused) {
			t.Fatalf("repoint of the primary: %v, want a refusal", err)
		}

		w := mysqltest.NewWriter(p.Addr(), k, 100000, 2*time.Millisecond)
		w.Start(ctx)
		defer w.Stop()
		w.WaitAcked(t, 20, 20*time.Second)

		op, err := leader().Repoint(ctx, "main", r2.Name, api.RepointRequest{To: r1.Name})
		if err != nil || op.Result != api.ResultSuccess {
			t.Fatalf("repoint %s under %s: %v %s (%s) steps %+v", r2.Name, r1.Name, err, op.Result, op.Reason, op.Steps)
		}
		h.eventually(r2.Name+" replicating from "+r1.Name, 10*time.Second, func() (bool, string) { return under(r2.Name, r1.Name) })
		if rel := instanceOf(r2.Name).Relocated; rel == nil || rel.Source != r1.Name {
			t.Fatalf("relocation not recorded: %+v", rel)
		}
		// Regent keeps it there: no repair moves it back under the primary.
		acked := len(w.Acked())
		w.WaitAcked(t, acked+100, 20*time.Second)
		if ok, why := under(r2.Name, r1.Name); !ok {
			t.Fatalf("%s left %s: %s", r2.Name, r1.Name, why)
		}

		// The intermediate dies under writes.
		r1.Kill(t)
		h.eventually(r2.Name+" moved under the primary", 20*time.Second, func() (bool, string) { return under(r2.Name, p.Name) })
		acked = len(w.Acked())
		w.WaitAcked(t, acked+50, 20*time.Second)
		w.Stop()
		mysqltest.WaitCaughtUp(t, r2, p, 30*time.Second)
		if m := w.Missing(t, r2); len(m) != 0 {
			t.Fatalf("%d acknowledged writes missing on %s, e.g. %v", len(m), r2.Name, m[:min(5, len(m))])
		}
		if rel := instanceOf(r2.Name).Relocated; rel == nil || rel.Source != r1.Name {
			t.Fatalf("the relocation was dropped when its source died: %+v", rel)
		}

		// Back, and caught up: the replica returns under it.
		r1.Restart(t)
		h.eventually(r2.Name+" back under "+r1.Name, 60*time.Second, func() (bool, string) { return under(r2.Name, r1.Name) })
		p.Exec(t, "INSERT INTO regent_test.writes (id) VALUES (900001)")
		mysqltest.WaitCaughtUp(t, r2, p, 30*time.Second)

		// Back under the primary by hand: the record goes.
		if op, err := leader().Repoint(ctx, "main", r2.Name, api.RepointRequest{}); err != nil || op.Result != api.ResultSuccess {
			t.Fatalf("repoint back under the primary: %v %+v", err, op)
		}
		h.eventually(r2.Name+" under the primary", 10*time.Second, func() (bool, string) { return under(r2.Name, p.Name) })
		if rel := instanceOf(r2.Name).Relocated; rel != nil {
			t.Fatalf("record kept after repointing under the primary: %+v", rel)
		}
	})
}

// Location labels on real servers: with promotion_same on the region, the
// most advanced replica, in another region, is passed over; the one in the
// old primary's region is promoted and catches up from it, so nothing is
// lost (README "Configuration": labels, promotion_same).
func TestFailoverStaysInTheOldPrimarysRegion(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k, func(c *config.Config) {
			cl := &c.Clusters[0]
			cl.PromotionSame = []string{"region"}
			regions := []string{"eu", "us", "eu"} // p, r1, r2
			for i := range cl.Instances {
				cl.Instances[i].Labels = map[string]string{"region": regions[i]}
			}
		})
		h.waitRecorded()
		p, r1, r2 := h.db.Primary, h.db.Replicas[0], h.db.Replicas[1]
		r1Ahead(t, k, p, r1, r2)
		p.Kill(t)
		e := h.waitOp(consensus.KindFailover, 0, 30*time.Second)
		if e.Result != consensus.ResultSuccess || e.NewPrimary != r2.Name {
			t.Fatalf("failover: %s (%s) to %q, want %s (%s is in region us); steps %s", e.Result, e.Reason, e.NewPrimary, r2.Name, r1.Name, stepNames(e))
		}
		if got := r2.QueryString(t, "SELECT COUNT(*) FROM regent_test.writes WHERE id IN (1, 2)"); got != "2" {
			t.Fatalf("promoted %s has %s of the 2 rows: %s's data did not count", r2.Name, got, r1.Name)
		}
	})
}
