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
