package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/apiserver"
	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/topology/mysqltest"
)

// Issue 14: a cluster's settings changed at run time through Raft are
// applied by every agent without a restart, refused with the key named when
// invalid (nothing changes), kept in the history with who made them, and
// still in force after a leader change; the leader acts on them on the real
// servers (durability async → semi_sync: it makes the primary lossless).
func TestRunTimeSettingsApplyOnEveryAgentWithoutARestart(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k)
		h.waitRecorded()
		ctx := context.Background()
		leader := func() API { return h.agents[h.leader()].API() }
		enabled := func(s *mysqltest.Server) string {
			return s.QueryString(t, "SELECT @@GLOBAL."+semiSyncVar(k)+"_enabled")
		}
		if on := enabled(h.db.Primary); on != "0" {
			t.Fatalf("the async cluster's primary has semi-sync enabled=%s before the change", on)
		}

		for _, bad := range []struct{ set, says string }{
			{"fence_after: 1s\n", "fence_after: set only in regent.yaml"},
			{"failure_timeout: 1ms\n", "failure_timeout"},
			{"instances: []\n", "instances: not a run-time setting"},
		} {
			_, err := leader().EditSettings(ctx, "main", api.EditSettingsRequest{Set: bad.set})
			if !errors.Is(err, apiserver.ErrInvalid) || !strings.Contains(err.Error(), bad.says) {
				t.Fatalf("edit %q: %v, want an invalid edit naming %q", bad.set, err, bad.says)
			}
		}
		if st, _ := leader().Settings(ctx, "main"); st.Version != 0 || st.Effective["durability"] != "async" {
			t.Fatalf("refused edits changed the settings: version %d durability %s", st.Version, st.Effective["durability"])
		}

		st, err := leader().EditSettings(ctx, "main", api.EditSettingsRequest{Set: "durability: semi_sync\n"})
		if err != nil || st.Version != 1 {
			t.Fatalf("edit: %v version %d", err, st.Version)
		}
		if _, err := leader().EditSettings(ctx, "main", api.EditSettingsRequest{Set: "auto_rejoin: false\n"}); !errors.Is(err, apiserver.ErrConflict) {
			t.Fatalf("an edit against version 0 after version 1: %v, want a conflict", err)
		}
		for i, a := range h.agents {
			h.eventually(fmt.Sprintf("agent %d applies version 1", i), 10*time.Second, func() (bool, string) {
				st, err := a.API().Settings(ctx, "main")
				c, _ := a.API().Cluster(ctx, "main")
				return err == nil && st.Version == 1 && st.Effective["durability"] == "semi_sync" && c.Durability == "semi_sync",
					fmt.Sprintf("%v version %d durability %s / %s", err, st.Version, st.Effective["durability"], c.Durability)
			})
		}
		h.eventually("the leader makes the primary lossless", 20*time.Second, func() (bool, string) {
			on := enabled(h.db.Primary)
			return on == "1", "enabled=" + on
		})
		checkLossless(t, k, h.db.Primary)
		var entry *consensus.HistoryEntry
		for _, e := range h.cluster().History {
			if e.Kind == consensus.KindEditConfig {
				entry = &e
			}
		}
		if entry == nil || !strings.Contains(entry.Reason, "durability: async → semi_sync") || !strings.Contains(entry.Trigger, "by api") {
			t.Fatalf("history entry of the edit: %+v", entry)
		}

		// A leader change keeps them: the new leader reads the same
		// replicated state, and whatever the primary is then, it is lossless.
		old := h.leader()
		h.stop(old)
		h.eventually("a new leader", 20*time.Second, func() (bool, string) {
			l := h.leader()
			return l != old, fmt.Sprint("leader ", l)
		})
		if st, err := leader().Settings(ctx, "main"); err != nil || st.Version != 1 || st.Effective["durability"] != "semi_sync" {
			t.Fatalf("after the leader change: %v version %d durability %s", err, st.Version, st.Effective["durability"])
		}
		h.eventually("the recorded primary lossless under the new leader", 60*time.Second, func() (bool, string) {
			prim := h.cluster().Primary
			for _, s := range h.db.Servers() {
				if s.Name == prim && h.cluster().Operation == nil {
					on := enabled(s)
					return on == "1", prim + " enabled=" + on
				}
			}
			return false, "primary " + prim
		})
	})
}

// A promotion rule set at run time (cluster edit-config, key promotion)
// steers a failover on real servers: the most advanced replica, made
// must_not, is passed over; its data still counts. An unknown instance is
// refused by name.
func TestRunTimePromotionRuleSteersAFailover(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k)
		h.waitRecorded()
		ctx := context.Background()
		p, r1, r2 := h.db.Primary, h.db.Replicas[0], h.db.Replicas[1]
		leader := h.agents[h.leader()].API()
		if _, err := leader.EditSettings(ctx, "main", api.EditSettingsRequest{Set: "promotion: {db9: prefer}\n"}); !errors.Is(err, apiserver.ErrInvalid) || !strings.Contains(err.Error(), "db9 is not an instance") {
			t.Fatalf("a rule for an unknown instance: %v", err)
		}
		if _, err := leader.EditSettings(ctx, "main", api.EditSettingsRequest{Set: "promotion: {" + r1.Name + ": must_not}\n"}); err != nil {
			t.Fatal(err)
		}
		h.eventually("every agent shows "+r1.Name+" as must_not", 10*time.Second, func() (bool, string) {
			for i, a := range h.agents {
				c, err := a.API().Cluster(ctx, "main")
				if err != nil {
					return false, err.Error()
				}
				for _, in := range c.Instances {
					if in.Name == r1.Name && in.Promotion != "must_not" {
						return false, fmt.Sprintf("agent %d: %s is %q", i, r1.Name, in.Promotion)
					}
				}
			}
			return true, ""
		})
		r1Ahead(t, k, p, r1, r2)
		p.Kill(t)
		e := h.waitOp(consensus.KindFailover, 0, 30*time.Second)
		if e.Result != consensus.ResultSuccess || e.NewPrimary != r2.Name {
			t.Fatalf("failover: %s (%s) to %q, want %s (%s is must_not at run time); steps %s", e.Result, e.Reason, e.NewPrimary, r2.Name, r1.Name, stepNames(e))
		}
		if got := r2.QueryString(t, "SELECT COUNT(*) FROM regent_test.writes WHERE id IN (1, 2)"); got != "2" {
			t.Fatalf("promoted %s has %s of the 2 rows: %s's data did not count", r2.Name, got, r1.Name)
		}
	})
}

// automatic_failover: false, set at run time: a dead primary is reported,
// blocked as disabled, and replaced only when an operator asks. The status
// names the blocker's kind (and a pause reads as paused, not as unsafe: the
// RegentAutomaticFailoverBlocked alert leaves paused clusters to
// RegentPausedForLong).
func TestAutomaticFailoverOff(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k)
		h.waitRecorded()
		ctx := context.Background()
		leader := func() API { return h.agents[h.leader()].API() }
		blockers := func(c api.Cluster) []string {
			var kinds []string
			for _, b := range c.AutomaticFailover.Blockers {
				kinds = append(kinds, b.Kind)
			}
			return kinds
		}
		if _, err := leader().Pause(ctx, "main", api.PauseRequest{Reason: "CHG-1"}); err != nil {
			t.Fatal(err)
		}
		h.eventually("paused, blocked as paused", 10*time.Second, func() (bool, string) {
			c, err := leader().Cluster(ctx, "main")
			return err == nil && !c.AutomaticFailover.Possible && slices.Equal(blockers(c), []string{api.BlockPaused}), fmt.Sprintf("%v %+v", err, c.AutomaticFailover)
		})
		if _, err := leader().Resume(ctx, "main"); err != nil {
			t.Fatal(err)
		}
		if _, err := leader().EditSettings(ctx, "main", api.EditSettingsRequest{Set: "automatic_failover: false\n"}); err != nil {
			t.Fatal(err)
		}
		for i, a := range h.agents {
			h.eventually(fmt.Sprintf("agent %d: automatic failover disabled", i), 10*time.Second, func() (bool, string) {
				c, err := a.API().Cluster(ctx, "main")
				return err == nil && !c.AutomaticFailover.Enabled && !c.AutomaticFailover.Possible && slices.Equal(blockers(c), []string{api.BlockDisabled}),
					fmt.Sprintf("%v %+v", err, c.AutomaticFailover)
			})
		}
		h.db.Primary.Kill(t)
		h.eventually("the dead primary reported, blocked as disabled", 20*time.Second, func() (bool, string) {
			c, _ := leader().Cluster(ctx, "main")
			for _, p := range c.Problems {
				if p.Code == string(failover.DeadPrimary) && !p.Actionable && len(p.Blockers) == 1 && p.Blockers[0].Kind == api.BlockDisabled {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%+v", c.Problems)
		})
		if c := h.cluster(); c.Primary != "p" || c.Epoch != 1 {
			t.Fatalf("failed over with automatic_failover false: primary %s epoch %d", c.Primary, c.Epoch)
		}
		h.failover("main", api.FailoverRequest{To: "r1"})
		e := h.waitOp(consensus.KindForcedFailover, 0, 30*time.Second) // an operator's, with a target
		if e.Result != consensus.ResultSuccess || e.NewPrimary != "r1" {
			t.Fatalf("the operator's failover: %s (%s) to %s; steps %s", e.Result, e.Reason, e.NewPrimary, stepNames(e))
		}
	})
}
