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

// Issue 14: a replica added at run time (regentctl cluster add) is probed
// by every agent without a restart and becomes a failover candidate; one
// removed is no longer probed; an invalid addition is refused with the key
// named and nothing changes; the instances survive a leader change and an
// agent's restart.
func TestInstancesAddedAndRemovedAtRunTime(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k)
		h.waitRecorded()
		ctx := context.Background()
		p := h.db.Primary
		r3 := mysqltest.Start(t, k, mysqltest.WithName("r3"))
		mysqltest.ReplicateFrom(t, r3, p)
		mysqltest.WaitReplicating(t, r3, 60*time.Second)
		leader := func() API { return h.agents[h.leader()].API() }
		listed := func(a *Agent, name string) (api.Instance, bool) {
			c, err := a.API().Cluster(ctx, "main")
			if err != nil {
				return api.Instance{}, false
			}
			for _, in := range c.Instances {
				if in.Name == name {
					return in, true
				}
			}
			return api.Instance{}, false
		}
		// probedByAll: every running agent lists it, reached by every agent
		// and replicating.
		probedByAll := func(agents []*Agent, name string) (bool, string) {
			for i, a := range agents {
				in, ok := listed(a, name)
				if !ok {
					return false, fmt.Sprintf("agent %d does not list %s", i, name)
				}
				reached := 0
				for _, r := range in.Reachable {
					if r.OK {
						reached++
					}
				}
				if reached < len(agents) || in.Replication == nil {
					return false, fmt.Sprintf("agent %d: %s reached by %d agents, replication %+v", i, name, reached, in.Replication)
				}
			}
			return true, ""
		}

		for _, bad := range []struct {
			req  api.AddInstanceRequest
			says string
		}{
			{api.AddInstanceRequest{Name: "r3", Address: "no-port"}, "instances[r3].address"},
			{api.AddInstanceRequest{Name: "r1", Address: r3.Addr()}, `"r1" is already an instance`},
			{api.AddInstanceRequest{Name: "r3", Address: r3.Addr(), Promotion: "always"}, "instances[r3].promotion"},
		} {
			if _, err := leader().AddInstance(ctx, "main", bad.req); !errors.Is(err, apiserver.ErrInvalid) || !strings.Contains(err.Error(), bad.says) {
				t.Fatalf("add %+v: %v, want an invalid request naming %q", bad.req, err, bad.says)
			}
		}
		if v := h.cluster().InstancesVersion; v != 0 {
			t.Fatalf("refused additions changed the instances (version %d)", v)
		}

		if _, err := leader().AddInstance(ctx, "main", api.AddInstanceRequest{Name: "r3", Address: r3.Addr(), Promotion: "prefer"}); err != nil {
			t.Fatal(err)
		}
		h.eventually("r3 probed by every agent", 20*time.Second, func() (bool, string) { return probedByAll(h.agents, "r3") })

		// Removed: no longer listed (so no longer probed) by any agent;
		// added again.
		if _, err := leader().RemoveInstance(ctx, "main", "r1"); !errors.Is(err, apiserver.ErrInvalid) || !strings.Contains(err.Error(), "has an agent") {
			t.Fatalf("removing r1, which has an agent: %v", err)
		}
		if _, err := leader().RemoveInstance(ctx, "main", "r3"); err != nil {
			t.Fatal(err)
		}
		h.eventually("r3 gone from every agent", 20*time.Second, func() (bool, string) {
			for i, a := range h.agents {
				if _, ok := listed(a, "r3"); ok {
					return false, fmt.Sprintf("agent %d still lists r3", i)
				}
				if _, ok := a.rts()["main"].prober.set().insts["r3"]; ok {
					return false, fmt.Sprintf("agent %d still probes r3", i)
				}
			}
			return true, ""
		})
		if _, err := leader().AddInstance(ctx, "main", api.AddInstanceRequest{Name: "r3", Address: r3.Addr(), Promotion: "prefer"}); err != nil {
			t.Fatal(err)
		}
		h.eventually("r3 probed by every agent again", 20*time.Second, func() (bool, string) { return probedByAll(h.agents, "r3") })
		var kinds []string
		for _, e := range h.cluster().History {
			if e.Kind == consensus.KindEditConfig {
				kinds = append(kinds, e.Reason)
			}
		}
		if len(kinds) != 3 || !strings.Contains(kinds[1], "instance r3 removed") {
			t.Fatalf("history of the changes: %q", kinds)
		}

		// A failover candidate like any replica: preferred, it is promoted.
		mysqltest.WaitCaughtUp(t, r3, p, 30*time.Second)
		p.Kill(t)
		e := h.waitOp(consensus.KindFailover, 0, 30*time.Second)
		if e.Result != consensus.ResultSuccess || e.NewPrimary != "r3" {
			t.Fatalf("failover: %s (%s) to %q, want r3 (added at run time, prefer); steps %s", e.Result, e.Reason, e.NewPrimary, stepNames(e))
		}

		// A leader change keeps the instances: the new leader reads them
		// from the replicated state.
		old := h.leader()
		h.stop(old)
		h.eventually("a new leader that lists r3 as the primary", 20*time.Second, func() (bool, string) {
			l := h.leader()
			if l == old {
				return false, "no new leader"
			}
			in, ok := listed(h.agents[l], "r3")
			return ok && in.Role == api.RolePrimary, fmt.Sprintf("r3 listed %v role %s", ok, in.Role)
		})

		// So does a restart: the old leader's agent, started again from
		// regent.yaml (which has no r3), probes r3 as the primary once it
		// has its Raft log back.
		h.restart(old)
		h.eventually("the restarted agent probes r3 as the primary", 30*time.Second, func() (bool, string) {
			a := h.agents[old]
			o, probed := a.rts()["main"].prober.get("r3")
			in, ok := listed(a, "r3")
			return ok && in.Role == api.RolePrimary && probed && o.Reachable && !o.ReadOnly,
				fmt.Sprintf("listed %v role %s, probed %v reachable %v read-only %v", ok, in.Role, probed, o.Reachable, o.ReadOnly)
		})
	})
}
