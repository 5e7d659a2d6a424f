package agent

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/topology/mysqltest"
)

// The means to reach interleavings on purpose (issue 9): the Raft leader is
// killed right after step k of an operation, on real servers, by halting its
// run there (Deps.Halt: nothing more is done, undone or recorded, as if the
// process had died) and then stopping the agent and its Raft node. The
// invariants are checked once the two remaining agents have settled the
// cluster: exactly one writable instance, the primary of the committed epoch;
// no acknowledged write missing on it (durability semi_sync); every other
// live instance replicating from it; automation not blocked.

// haltStep names the step after which the leader dies: its kind and, when
// the kind occurs more than once (repoint), its instance.
type haltStep struct {
	kind     failover.StepKind
	instance string
}

func (s haltStep) String() string {
	if s.instance != "" {
		return string(s.kind) + "_" + s.instance
	}
	return string(s.kind)
}

// Every step of a failover of p with two replicas. (catch-up occurs only
// when the chosen replica lacks transactions another has: the table of
// TestMustNotReplicaIsCatchUpSourceOnly's set-up, not this one.)
var failoverHaltSteps = []haltStep{
	{kind: failover.StepRecordIntent}, {kind: failover.StepPreHooks}, {kind: failover.StepUnrouteOldPrimary},
	{kind: failover.StepFenceOldPrimary}, {kind: failover.StepStopIOThreads}, {kind: failover.StepWaitRelayLogs},
	{kind: failover.StepChooseCandidate}, {kind: failover.StepPromote}, {kind: failover.StepRepoint},
	{kind: failover.StepRoute}, {kind: failover.StepCommitEpoch}, {kind: failover.StepPostHooks},
}

// Every step of a switchover from p to r1.
var switchoverHaltSteps = []haltStep{
	{kind: failover.StepRecordIntent}, {kind: failover.StepPreHooks}, {kind: failover.StepWaitLongTransactions},
	{kind: failover.StepFenceOldPrimary}, {kind: failover.StepUnrouteOldPrimary}, {kind: failover.StepCatchUp},
	{kind: failover.StepPromote}, {kind: failover.StepRepoint, instance: "r2"}, {kind: failover.StepRoute},
	{kind: failover.StepCommitEpoch}, {kind: failover.StepRepoint, instance: "p"}, {kind: failover.StepPostHooks},
}

func TestKillLeaderAfterFailoverStep(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		for _, step := range failoverHaltSteps {
			t.Run(step.String(), func(t *testing.T) {
				killLeaderAfterStep(t, k, failover.OpFailover, step)
			})
		}
	})
}

// A forced failover (regentctl failover --to r2) of a live primary: the
// leader fences it directly, then the steps of a failover.
func TestKillLeaderAfterForcedFailoverStep(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		for _, step := range failoverHaltSteps {
			t.Run(step.String(), func(t *testing.T) {
				killLeaderAfterStep(t, k, failover.OpForcedFailover, step)
			})
		}
	})
}

func TestKillLeaderAfterSwitchoverStep(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		for _, step := range switchoverHaltSteps {
			t.Run(step.String(), func(t *testing.T) {
				killLeaderAfterStep(t, k, failover.OpSwitchover, step)
			})
		}
	})
}

func killLeaderAfterStep(t *testing.T, k mysqltest.Kind, kind failover.OperationKind, step haltStep) {
	h := newHarness(t, k, func(c *Config) { c.Clusters[0].Durability = "semi_sync" })
	h.waitRecorded()
	p := h.db.Primary
	h.waitLossless(k)
	w := mysqltest.NewWriter(p.Addr(), k, 100000, 2*time.Millisecond)
	w.Start(context.Background())
	defer w.Stop()
	w.WaitAcked(t, 30, 30*time.Second)

	halted := h.haltAfter(kind, step)

	switch kind {
	case failover.OpFailover:
		p.Kill(t)
	case failover.OpSwitchover:
		h.switchover("main", "r1")
	default:
		h.failover("main", api.FailoverRequest{To: "r2"})
	}
	h.waitHalted(halted, kind, step)
	w.Stop()

	live := map[string]*mysqltest.Server{}
	for _, s := range h.db.Servers() {
		if kind == failover.OpFailover && s == p {
			continue // killed
		}
		live[s.Name] = s
	}
	h.checkSettled(live, w)
}

// checkSettled waits until the remaining agents have settled the cluster
// and checks the invariants of the kill tables: at most one writable
// instance at any time, and at the end the committed primary alone, holding
// every write w had acknowledged, every other live instance replicating from
// it, nothing in progress, routing tokens never going back.
func (h *harness) checkSettled(live map[string]*mysqltest.Server, w *mysqltest.Writer) {
	t := h.t
	t.Helper()
	var primary *mysqltest.Server
	h.eventually("the cluster settled: one writable instance, the committed primary, nothing in progress", 90*time.Second, func() (bool, string) {
		c := h.cluster()
		var writable []string
		for _, name := range sortedNames(live) {
			if live[name].QueryString(t, "SELECT @@read_only") == "0" {
				writable = append(writable, name)
			}
		}
		if len(writable) > 1 {
			t.Fatalf("two writers: %v (committed primary %q, epoch %d)", writable, c.Primary, c.Epoch)
		}
		primary = live[c.Primary]
		ok := c.Operation == nil && primary != nil && len(writable) == 1 && writable[0] == c.Primary
		return ok, fmt.Sprintf("primary %q epoch %d, writable %v, operation %v", c.Primary, c.Epoch, writable, c.Operation)
	})
	if m := w.Missing(t, primary); len(m) != 0 {
		t.Fatalf("%d acknowledged writes missing on the primary %s, e.g. %v", len(m), primary.Name, m[:min(5, len(m))])
	}
	for name, s := range live {
		if s == primary {
			continue
		}
		h.eventually(name+" replicates from the primary", 60*time.Second, func() (bool, string) {
			io, sqlT, e := mysqltest.ReplicaThreads(t, s)
			return io == "Yes" && sqlT == "Yes", fmt.Sprintf("IO=%s SQL=%s %s", io, sqlT, e)
		})
		mysqltest.WaitCaughtUp(t, s, primary, 30*time.Second)
	}
	// Automation is not blocked: nothing abandoned is left in progress, and
	// the history says how the killed run ended.
	// (A later repair may have started by now; the settled condition above
	// already saw nothing in progress.)
	c := h.cluster()
	h.checkTokensGrow()
	t.Logf("settled on %s, epoch %d, %d history entries", c.Primary, c.Epoch, len(c.History))
}

// haltAfter makes the first run of kind that completes step stop dead; the
// channel says which agent it was.
func (h *harness) haltAfter(kind failover.OperationKind, step haltStep) <-chan int {
	halted := make(chan int, 1)
	var once sync.Once
	h.mu.Lock()
	h.halt = func(agent int, ev failover.StepEvent) bool {
		if ev.Operation != kind || ev.Step.Kind != step.kind || step.instance != "" && ev.Step.Instance != step.instance {
			return false
		}
		stop := false
		once.Do(func() { stop = true; halted <- agent })
		return stop
	}
	h.mu.Unlock()
	return halted
}

// waitHalted waits for the halted run and kills its agent and Raft node.
func (h *harness) waitHalted(halted <-chan int, kind failover.OperationKind, step haltStep) int {
	h.t.Helper()
	var dead int
	select {
	case dead = <-halted:
	case <-time.After(60 * time.Second):
		c := h.cluster()
		h.t.Fatalf("the %s never reached step %s; history %d entries, operation %v", kind, step, len(c.History), c.Operation)
	}
	h.stop(dead)
	h.t.Logf("leader %s killed after %s", h.agents[dead].ID(), step)
	return dead
}

// Every step of the rejoin of an old primary that holds nothing the new
// primary lacks.
var rejoinHaltSteps = []haltStep{{kind: failover.StepRecordIntent}, {kind: failover.StepFence}, {kind: failover.StepRepoint}}

// The old primary p comes back after a failover and is rejoined; the
// leader dies after each step of that rejoin.
func TestKillLeaderAfterRejoinStep(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		for _, step := range rejoinHaltSteps {
			t.Run(step.String(), func(t *testing.T) {
				h := newHarness(t, k, func(c *Config) { c.Clusters[0].Durability = "semi_sync" })
				h.waitRecorded()
				h.waitLossless(k)
				p := h.db.Primary
				p.Kill(t)
				e := h.waitOp(consensus.KindFailover, 0, 30*time.Second)
				if e.Result != consensus.ResultSuccess {
					t.Fatalf("failover: %s (%s)", e.Result, e.Reason)
				}
				live := map[string]*mysqltest.Server{}
				for _, s := range h.db.Servers() {
					live[s.Name] = s
				}
				w := mysqltest.NewWriter(live[e.NewPrimary].Addr(), k, 100000, 2*time.Millisecond)
				w.Start(context.Background())
				defer w.Stop()
				w.WaitAcked(t, 30, 30*time.Second)
				halted := h.haltAfter(failover.OpRejoin, step)
				p.Restart(t)
				h.waitHalted(halted, failover.OpRejoin, step)
				w.Stop()
				h.checkSettled(live, w)
			})
		}
	})
}

// waitLossless waits until Regent has made the primary p lossless: its
// semi-sync timeout is the one the server never reaches.
func (h *harness) waitLossless(k mysqltest.Kind) {
	h.t.Helper()
	h.eventually("lossless semi-sync on the primary", 20*time.Second, func() (bool, string) {
		to := h.db.Primary.QueryString(h.t, "SELECT @@"+semiSyncVar(k)+"_timeout")
		return to == "4294967295", "timeout=" + to
	})
	// And every replica acknowledging: switching a replica's semi-sync
	// side on restarts its IO thread, and an operation started meanwhile
	// would find it Connecting.
	status, table := "Rpl_semi_sync_slave_status", "information_schema.GLOBAL_STATUS"
	if k == mysqltest.MySQL {
		status, table = "Rpl_semi_sync_replica_status", "performance_schema.global_status"
	}
	for _, r := range h.db.Replicas {
		h.eventually(r.Name+" replicating with semi-sync", 20*time.Second, func() (bool, string) {
			on := r.QueryString(h.t, "SELECT VARIABLE_VALUE FROM "+table+" WHERE UPPER(VARIABLE_NAME) = UPPER('"+status+"')")
			io, sqlT, _ := mysqltest.ReplicaThreads(h.t, r)
			return on == "ON" && io == "Yes" && sqlT == "Yes", fmt.Sprintf("%s=%s IO=%s SQL=%s", status, on, io, sqlT)
		})
	}
}

// Found by the forced-failover table: a leader killed after stop-io-threads
// left both replicas' IO threads stopped for good once its operation was
// aborted (the primary stayed, and nothing restarts an IO thread). The
// next leader restarts what the recorded steps stopped and did not undo.
func TestStoppedIOOfAnAbandonedOperation(t *testing.T) {
	steps := []consensus.Step{
		{Name: "record-intent p", Result: consensus.StepOK},
		{Name: "stop-io-threads r1,r2", Result: consensus.StepOK},
		{Name: "stop-io-threads r3", Result: consensus.StepFailed},
		{Name: "undo start-io-threads r2", Result: consensus.StepOK},
	}
	// r3's stop failed, but it may have taken effect: restarted too.
	if got := fmt.Sprint(stoppedIO(steps)); got != "[r1 r3]" {
		t.Fatalf("stoppedIO = %s, want [r1 r3]", got)
	}
	if got := stoppedIO(nil); len(got) != 0 {
		t.Fatalf("stoppedIO(nil) = %v", got)
	}
}
