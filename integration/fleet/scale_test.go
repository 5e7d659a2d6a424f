package fleet

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/integration/sandbox"
)

// The scale test CI affords: three real agents (processes) over 67
// simulated clusters of three (201 instances, two fleetsim processes),
// probed once a second; the primaries of 10 clusters die at once. Each of
// the 10 fails over to one of its replicas, with its other replica
// repointed under the new primary, at most max_parallel_operations (4) at
// a time; none of the other 57 moves; and Regent sent the emulation
// nothing it does not emulate. It fails on behaviour, never on time (the
// timings are make bench-fleet's).
func TestFleetScale(t *testing.T) {
	const clusters, dead, parallel = 67, 10, 4
	e := start(t, options{clusters: clusters, size: 3, procs: 2, probe: time.Second, failureTimeout: 3 * time.Second, parallel: parallel})
	e.waitRecorded(3 * time.Minute)

	for c := range dead {
		if _, err := e.sim(c).do("stop " + instanceName(c, 0)); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	var all []api.Cluster
	e.eventually(fmt.Sprintf("the %d clusters whose primary died fail over", dead), 3*time.Minute, func() (bool, string) {
		var err error
		if all, err = e.clusters(ctx, 1); err != nil {
			return false, err.Error()
		}
		var waiting []string
		for _, c := range all[:dead] {
			if !failedOver(c) || !repointed(c) {
				waiting = append(waiting, fmt.Sprintf("%s (primary %s epoch %d)", c.Name, c.Primary, c.Epoch))
			}
		}
		return len(waiting) == 0, strings.Join(waiting, ", ")
	})
	for k, c := range all {
		if k < dead {
			continue
		}
		if c.Epoch != 1 || c.Primary != instanceName(k, 0) {
			t.Errorf("%s, whose primary lives, moved: primary %s epoch %d", c.Name, c.Primary, c.Epoch)
		}
	}

	// The operations' spans, from the replicated history: never more than
	// the bound at once.
	var spans []span
	var mu sync.Mutex
	var wg sync.WaitGroup
	client := e.client(0)
	for c := range dead {
		wg.Go(func() {
			h, err := client.History(ctx, clusterName(c), 10)
			if err != nil {
				t.Errorf("history of %s: %v", clusterName(c), err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, op := range h.Operations {
				if op.Kind == "failover" && op.Ended != nil {
					spans = append(spans, span{op.Started, *op.Ended})
				}
			}
		})
	}
	wg.Wait()
	if most := overlap(spans); most > parallel || most < 1 {
		t.Errorf("at most %d failovers ran at once, want between 1 and %d (max_parallel_operations)", most, parallel)
	}
	for _, p := range e.sims {
		answer, err := p.do("unhandled")
		if err != nil {
			t.Fatal(err)
		}
		if answer != `ok ""` {
			t.Errorf("Regent sent statements the emulation does not emulate: %s", answer)
		}
	}
}

// repointed reports whether every replica of c replicates from its primary.
func repointed(c api.Cluster) bool {
	for _, in := range c.Instances {
		if in.Name == c.Primary || strings.HasSuffix(in.Name, "-db1") {
			continue
		}
		if in.Replication == nil || in.Replication.SourceName != c.Primary {
			return false
		}
	}
	_, ok := sandbox.InstanceOf(c, c.Primary)
	return ok
}
