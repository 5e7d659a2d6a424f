package mysqltest

import (
	"context"
	"testing"
	"time"
)

// The helper is used by every later package, so it is checked on its own:
// a cluster replicates, the writer's acknowledged rows reach the replicas, and
// a killed server can be restarted with its data.
func TestClusterReplicatesAndSurvivesRestart(t *testing.T) {
	for _, k := range Kinds(t) {
		t.Run(string(k), func(t *testing.T) {
			t.Parallel()
			c := StartCluster(t, k, 2)
			if got := c.Primary.QueryString(t, "SELECT @@read_only"); got != "0" {
				t.Fatalf("primary read_only = %s, want 0", got)
			}
			for _, r := range c.Replicas {
				if got := r.QueryString(t, "SELECT @@read_only"); got != "1" {
					t.Fatalf("%s read_only = %s, want 1", r, got)
				}
			}
			EnsureTable(t, c.Primary)
			w := NewWriter(c.Primary.Addr(), k, 50, 0)
			w.Start(context.Background())
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := w.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			if n, first, _ := w.Failed(); n != 0 {
				t.Fatalf("%d writes failed, first: %v", n, first)
			}
			if len(w.Acked()) != 50 {
				t.Fatalf("acked %d rows, want 50", len(w.Acked()))
			}
			for _, r := range c.Replicas {
				WaitCaughtUp(t, r, c.Primary, 30*time.Second)
				if m := w.Missing(t, r); len(m) != 0 {
					t.Fatalf("%s misses acknowledged rows %v", r, m)
				}
			}
			r := c.Replicas[0]
			before := ExecutedGTID(t, r)
			r.Kill(t)
			r.Restart(t)
			if after := ExecutedGTID(t, r); after != before {
				t.Fatalf("executed GTIDs changed across restart: %q -> %q", before, after)
			}
			if m := w.Missing(t, r); len(m) != 0 {
				t.Fatalf("after restart %s misses rows %v", r, m)
			}
		})
	}
}
