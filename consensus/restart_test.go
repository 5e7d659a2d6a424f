package consensus

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestRestartKeepsStateAndRejoins runs three nodes over plain TCP with
// durable stores: a follower restarted from its data directory keeps its
// state and catches up; then the whole cluster restarts and keeps its state.
func TestRestartKeepsStateAndRejoins(t *testing.T) {
	c := newTCPCluster(t, 3, nil, nil)
	for i := range c.cfgs {
		if !logHas(c.logs[i], `"level":"WARN"`, "INSECURE: raft runs over plain TCP") {
			t.Errorf("%s: no warning about plain TCP", c.cfgs[i].NodeID)
		}
	}
	c.mustPropose(InitCluster{Cluster: "c1", Primary: "db1", At: at(0)})
	c.mustPropose(BeginOperation{Cluster: "c1", OperationID: "op1", Kind: KindSwitchover, ExpectEpoch: 1, Target: "db2", At: at(1)})
	c.mustPropose(CommitPrimary{Cluster: "c1", OperationID: "op1", NewPrimary: "db2", ExpectEpoch: 1, At: at(2)})
	out := c.mustPropose(FinishOperation{Cluster: "c1", OperationID: "op1", Result: ResultSuccess, At: at(3)})

	l := c.waitLeader()
	f := (l + 1) % 3
	c.waitApplied(f, out.Index)
	// A snapshot on the follower, then more entries on top of it.
	if err := c.nodes[f].Snapshot(context.Background()); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	c.mustPropose(SetQuarantine{Cluster: "c1", Instance: "db1", Reason: "errant GTIDs", At: at(4)})
	c.waitApplied(f, c.mustPropose(SetPaused{Cluster: "c1", Paused: true, By: "ops", At: at(5)}).Index)
	c.stop(f)

	// Life goes on without it.
	c.mustPropose(InitCluster{Cluster: "c2", At: at(6)})
	last := c.mustPropose(SetAntiFlap{Cluster: "c1", Until: at(600)})

	// Restarted from its directory (with Peers still configured: it must not
	// bootstrap again), it has its own state at once and then catches up.
	n := c.startTCP(f)
	if !logHas(c.logs[f], "restarting from existing raft state") {
		t.Error("restart not recognised")
	}
	if strings.Count(c.logs[f].String(), "bootstrapped a new raft cluster") != 1 {
		t.Error("the restarted node bootstrapped again")
	}
	// Restored is read first: once true, the state must hold what the node
	// had applied before it stopped (the quarantine and the pause).
	restored := n.Restored()
	cl, ok := n.Cluster("c1")
	if !ok || cl.Epoch != 2 || cl.Primary != "db2" || len(cl.History) != 1 {
		t.Errorf("right after restart the node holds %+v, want its snapshot's state", cl)
	}
	if _, q := cl.Quarantined["db1"]; !q && restored {
		t.Errorf("Restored() before the node applied its own log again (state %+v)", cl)
	}
	c.waitApplied(f, last.Index)
	// Raft records its applied index after the FSM's Apply returns, which
	// waitApplied watches: Restored() follows a moment later.
	waitFor(t, 10*time.Second, "Restored() after catching up", n.Restored)
	leaderState := c.nodes[c.waitLeader()].State()
	if got := n.State(); !reflect.DeepEqual(got, leaderState) {
		t.Fatalf("restarted node's state differs from the leader's:\n%s", diffJSON(leaderState, got))
	}

	// The whole cluster goes down and comes back.
	before := leaderState
	c.closeAll()
	for i := range c.cfgs {
		c.startTCP(i)
	}
	l = c.waitLeader()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := c.nodes[l].ReadState(ctx)
	if err != nil {
		t.Fatalf("ReadState: %v", err)
	}
	if !reflect.DeepEqual(got.Clusters, before.Clusters) {
		t.Fatalf("state after a full restart differs:\n%s", diffJSON(before.Clusters, got.Clusters))
	}
	// And the cluster still commits, from the epoch it had.
	out = c.mustPropose(BeginOperation{Cluster: "c1", OperationID: "op2", Kind: KindFailover, ExpectEpoch: 2, At: at(7)})
	if out.Cluster.Operation.CommitEpoch != 3 {
		t.Errorf("after restart: %+v", out.Cluster.Operation)
	}
}

// TestStartRefusesALockedDataDir: a second agent on the same directory fails
// fast instead of corrupting it.
func TestStartRefusesALockedDataDir(t *testing.T) {
	c := newTCPCluster(t, 1, nil, nil)
	c.waitLeader()
	cfg := c.cfgs[0]
	cfg.Peers = nil // the store is opened (and found locked) before the port
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	n, err := Start(ctx, cfg, nil)
	if err == nil {
		_ = n.Close(context.Background())
		t.Fatal("second Start on the same DataDir succeeded")
	}
	if !strings.Contains(err.Error(), "another agent") {
		t.Errorf("error = %v", err)
	}
}
