package agent

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regentdb/regent/topology"
)

// max_parallel_probes holds across clusters: three clusters' rounds run at
// once over one agent's slots, and never more probes run together than
// the slots allow, while every instance is still probed. A probe that
// waited for its slot is not timed out by the wait: each probe takes
// 20 ms against a 30 ms timeout, and waits far longer than that.
func TestProbesShareTheAgentsSlots(t *testing.T) {
	const slots, perCluster = 2, 4
	var running, most atomic.Int32
	probe := func(ctx context.Context, _ string, _ *topology.Instance) (*topology.Snapshot, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		select {
		case <-time.After(20 * time.Millisecond):
			return &topology.Snapshot{}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	shared := make(chan struct{}, slots)
	var probers []*prober
	for c := range 3 {
		insts := map[string]*topology.Instance{}
		for i := range perCluster {
			insts[fmt.Sprintf("c%d-db%d", c, i)] = nil
		}
		set := &instanceSet{insts: insts}
		p := newProber(fmt.Sprintf("c%d", c), 30*time.Millisecond, func() *instanceSet { return set })
		p.probe, p.slots = probe, shared
		probers = append(probers, p)
	}
	var wg sync.WaitGroup
	for _, p := range probers {
		wg.Go(func() { p.round(t.Context()) })
	}
	wg.Wait()
	if m := most.Load(); m != slots {
		t.Errorf("at most %d probes ran at once, want %d (the slots, reached and never passed)", m, slots)
	}
	for _, p := range probers {
		for name, o := range p.snapshot() {
			if o.Error != topology.ClassNone || o.ObservedAt.IsZero() {
				t.Errorf("%s: %s (%s): a probe that waited for its slot failed", name, o.Error, o.ErrorDetail)
			}
		}
		if n := len(p.snapshot()); n != perCluster {
			t.Errorf("%s: %d instances probed, want %d", p.cluster, n, perCluster)
		}
	}
}
