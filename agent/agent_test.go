package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/regentdb/regent/topology/mysqltest"
)

func forEachFlavor(t *testing.T, f func(t *testing.T, k mysqltest.Kind)) {
	t.Helper()
	for _, k := range mysqltest.Kinds(t) {
		t.Run(string(k), func(t *testing.T) {
			t.Parallel()
			f(t, k)
		})
	}
}

// An agent cut off from the others (but not from its database) makes its
// primary read-only within fence_after, before the leader on the other side
// may promote anyone (it waits lease_timeout since it last heard the agent).
func TestIsolatedPrimaryFencesItself(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k, func(c *Config) { c.Clusters[0].FastPath = new(bool) })
		h.eventually("cluster recorded with p as primary", 15*time.Second, func() (bool, string) {
			c := h.cluster()
			return c.Primary == "p" && c.Epoch == 1, fmt.Sprintf("primary %q epoch %d", c.Primary, c.Epoch)
		})
		// Agents that start without the quorum fence their primary; the
		// leader restores writes once the lease is held.
		h.eventually("primary writable under a held lease", 15*time.Second, func() (bool, string) {
			return h.db.Primary.QueryString(t, "SELECT @@read_only") == "0", "read-only"
		})
		cut := time.Now()
		h.isolate(0)
		h.eventually("isolated primary read-only", 10*time.Second, func() (bool, string) {
			return h.db.Primary.QueryString(t, "SELECT @@read_only") == "1", "still writable"
		})
		fenced := time.Since(cut)
		// Fenced before the lease could have lapsed on the majority side.
		if lease := 2 * time.Second; fenced >= lease {
			t.Fatalf("fenced %v after the cut, not before lease_timeout %v", fenced, lease)
		}
	})
}
