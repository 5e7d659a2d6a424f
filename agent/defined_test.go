package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/apiserver"
	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/topology/mysqltest"
)

// Issue 14: a whole replication cluster created at run time (regentctl
// cluster create) is run by every agent without a restart: probed, its
// first primary recorded, failed over when that primary dies, run again by
// a restarted agent; an invalid definition is refused with the key named
// and nothing changes; deleted, no agent runs it and its record is gone.
func TestClusterCreatedAndDeletedAtRunTime(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k)
		h.waitRecorded()
		ctx := context.Background()
		x := mysqltest.StartCluster(t, k, 1)
		mysqltest.EnsureTable(t, x.Primary)
		x1, x2 := x.Primary, x.Replicas[0]
		leader := func() API { return h.agents[h.leader()].API() }
		def := fmt.Sprintf(`name: shop
durability: async
probe_interval: 150ms
failure_timeout: 1s
instances:
  - {name: x1, address: %s}
  - {name: x2, address: %s, promotion: prefer}
`, x1.Addr(), x2.Addr())

		for _, bad := range []struct{ def, says string }{
			{strings.Replace(def, "promotion: prefer", "agent: a1", 1), "cluster.instances[1].agent"},
			{strings.Replace(def, "name: shop", "name: main", 1), `"main" is a cluster of regent.yaml`},
			{strings.Replace(def, "failure_timeout", "failure_timout", 1), `unknown key "failure_timout"`},
		} {
			if _, err := leader().DefineCluster(ctx, api.DefineClusterRequest{Definition: bad.def}); !errors.Is(err, apiserver.ErrInvalid) || !strings.Contains(err.Error(), bad.says) {
				t.Fatalf("define %q: %v, want an invalid request naming %q", bad.def, err, bad.says)
			}
		}
		if d := h.agents[h.leader()].raft.State().Defined; d != nil {
			t.Fatalf("refused definitions changed the state: %v", d)
		}

		if _, err := leader().DefineCluster(ctx, api.DefineClusterRequest{Definition: def}); err != nil {
			t.Fatal(err)
		}
		// runByAll: every running agent runs shop and reaches both
		// instances.
		runByAll := func() (bool, string) {
			for i, a := range h.agents {
				c, ok := a.rts()["shop"]
				if !ok {
					return false, fmt.Sprintf("agent %d does not run shop", i)
				}
				for _, n := range []string{"x1", "x2"} {
					if o, ok := c.prober.get(n); !ok || !o.Reachable {
						return false, fmt.Sprintf("agent %d has not reached %s", i, n)
					}
				}
			}
			return true, ""
		}
		h.eventually("shop run by every agent", 20*time.Second, runByAll)
		h.eventually("shop's first primary recorded", 20*time.Second, func() (bool, string) {
			c := h.clusterNamed("shop")
			return c.Primary == "x1" && c.Epoch == 1, fmt.Sprintf("primary %q epoch %d", c.Primary, c.Epoch)
		})
		if c, err := leader().Cluster(ctx, "shop"); err != nil || c.Defined == nil || c.Defined.By == "" {
			t.Fatalf("shop's view: %+v, %v; want it marked as created at run time, with who", c.Defined, err)
		}
		if hs := h.clusterNamed("shop").History; len(hs) == 0 || hs[0].ID != "created" || !strings.Contains(hs[0].Trigger, "cluster create by") {
			t.Fatalf("shop's history does not start with its creation: %+v", hs)
		}
		if _, err := leader().DefineCluster(ctx, api.DefineClusterRequest{Definition: def}); !errors.Is(err, apiserver.ErrConflict) {
			t.Fatalf("defining shop twice: %v, want a conflict", err)
		}

		// A restarted agent runs it again from the replicated state.
		follower := (h.leader() + 1) % 3
		h.stop(follower)
		h.restart(follower)
		h.eventually("shop run again by the restarted agent", 30*time.Second, runByAll)

		// Managed like any cluster: its primary dies, x2 is promoted.
		w := mysqltest.NewWriter(x1.Addr(), k, 200, 5*time.Millisecond)
		w.Start(ctx)
		w.WaitAcked(t, 50, 20*time.Second)
		w.Stop()
		mysqltest.WaitCaughtUp(t, x2, x1, 30*time.Second)
		x1.Kill(t)
		h.eventually("shop failed over to x2", 30*time.Second, func() (bool, string) {
			c := h.clusterNamed("shop")
			for _, e := range c.History {
				if e.Kind == consensus.KindFailover {
					return e.Result == consensus.ResultSuccess && e.NewPrimary == "x2", fmt.Sprintf("failover %s (%s) to %q", e.Result, e.Reason, e.NewPrimary)
				}
			}
			return false, fmt.Sprintf("primary %q, no failover yet", c.Primary)
		})
		if got := x2.QueryString(t, "SELECT @@read_only"); got != "0" {
			t.Fatalf("x2 promoted but read_only=%s", got)
		}
		if m := w.Missing(t, x2); len(m) > 0 {
			t.Fatalf("%d acknowledged writes missing on x2: %v", len(m), m)
		}

		// Deleted: no agent runs it, its record is gone, and a regent.yaml
		// cluster cannot be deleted.
		if _, err := leader().RemoveCluster(ctx, "main"); !errors.Is(err, apiserver.ErrInvalid) {
			t.Fatalf("deleting main: %v, want refused", err)
		}
		if _, err := leader().RemoveCluster(ctx, "shop"); err != nil {
			t.Fatal(err)
		}
		h.eventually("shop run by no agent", 20*time.Second, func() (bool, string) {
			for i, a := range h.agents {
				if _, ok := a.rts()["shop"]; ok {
					return false, fmt.Sprintf("agent %d still runs shop", i)
				}
				if _, ok := a.raft.State().Clusters["shop"]; ok {
					return false, fmt.Sprintf("agent %d still has shop's record", i)
				}
			}
			return true, ""
		})
		// The main cluster was never disturbed.
		if c := h.cluster(); c.Primary != "p" || c.Epoch != 1 {
			t.Fatalf("main: primary %q epoch %d, want p at 1", c.Primary, c.Epoch)
		}
	})
}
