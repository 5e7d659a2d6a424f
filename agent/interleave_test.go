package agent

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/config"
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
	{kind: failover.StepStopIOThreads}, {kind: failover.StepRepoint, instance: "r2"}, {kind: failover.StepFenceOldPrimary},
	{kind: failover.StepUnrouteOldPrimary},
	{kind: failover.StepCatchUp}, {kind: failover.StepPromote}, {kind: failover.StepRoute},
	{kind: failover.StepCommitEpoch}, {kind: failover.StepRepoint, instance: "p"}, {kind: failover.StepPostHooks},
}

func TestKillLeaderAfterFailoverStep(t *testing.T) {
	forEachStep(t, failoverHaltSteps, func(t *testing.T, k mysqltest.Kind, step haltStep) {
		killLeaderAfterStep(t, k, failover.OpFailover, step, false)
	})
}

// A forced failover (regentctl failover --to r2) of a live primary: the
// leader fences it directly, then the steps of a failover.
func TestKillLeaderAfterForcedFailoverStep(t *testing.T) {
	forEachStep(t, failoverHaltSteps, func(t *testing.T, k mysqltest.Kind, step haltStep) {
		killLeaderAfterStep(t, k, failover.OpForcedFailover, step, false)
	})
}

func TestKillLeaderAfterSwitchoverStep(t *testing.T) {
	forEachStep(t, switchoverHaltSteps, func(t *testing.T, k mysqltest.Kind, step haltStep) {
		killLeaderAfterStep(t, k, failover.OpSwitchover, step, false)
	})
}

// A frozen primary (mysqld stopped with SIGSTOP, its agent alive) is
// failed over too: detection waits for more evidence, and the old primary
// is fenced by lossless semi-sync (its replicas are stopped and receive
// nothing more) rather than by SET read_only. The leader dies after the
// steps where that differs from a killed primary, or that the frozen
// primary, resumed at the end, could still undo. Settled includes the old
// primary: resumed, it must be read-only and replicate from the new
// primary, or be quarantined if it holds a commit no replica received.
var frozenHaltSteps = []haltStep{
	{kind: failover.StepFenceOldPrimary}, {kind: failover.StepStopIOThreads}, {kind: failover.StepPromote}, {kind: failover.StepCommitEpoch},
}

func TestKillLeaderAfterFrozenPrimaryFailoverStep(t *testing.T) {
	forEachStep(t, frozenHaltSteps, func(t *testing.T, k mysqltest.Kind, step haltStep) {
		killLeaderAfterStep(t, k, failover.OpFailover, step, true)
	})
}

// forEachStep runs run for each flavour and each step of steps, as
// subtests named after the step.
func forEachStep(t *testing.T, steps []haltStep, run func(t *testing.T, k mysqltest.Kind, step haltStep)) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		for _, step := range steps {
			t.Run(step.String(), func(t *testing.T) { run(t, k, step) })
		}
	})
}

// killLeaderAfterStep starts an operation of kind under writes and kills
// the leader right after step; a failover is of a killed primary, or
// (frozen) of a frozen one.
func killLeaderAfterStep(t *testing.T, k mysqltest.Kind, kind failover.OperationKind, step haltStep, frozen bool) {
	h := newHarness(t, k, func(c *config.Config) { c.Clusters[0].Durability = "semi_sync" })
	h.waitRecorded()
	p := h.db.Primary
	h.waitLossless(k)
	w := mysqltest.NewWriter(p.Addr(), k, 100000, 2*time.Millisecond)
	w.Start(context.Background())
	defer w.Stop()
	w.WaitAcked(t, 30, 30*time.Second)

	halted := h.haltAfter(kind, step)

	switch {
	case kind == failover.OpFailover && frozen:
		p.Pause(t)
		defer p.Resume(t)
	case kind == failover.OpFailover:
		p.Kill(t)
	case kind == failover.OpSwitchover:
		h.switchover("main", "r1")
	default:
		h.failover("main", api.FailoverRequest{To: "r2"})
	}
	h.waitHalted(halted, kind, step)
	w.Stop()
	var lingering []string
	if frozen {
		p.Resume(t)
		lingering = append(lingering, p.Name)
	}

	live := map[string]*mysqltest.Server{}
	for _, s := range h.db.Servers() {
		if kind == failover.OpFailover && !frozen && s == p {
			continue // killed
		}
		live[s.Name] = s
	}
	h.checkSettled(live, w, lingering...)
}

// checkSettled waits until the remaining agents have settled the cluster
// and checks the invariants of the kill tables: at most one writable
// instance at any time, and at the end the committed primary alone, holding
// every write w had acknowledged, every other live instance replicating from
// it (or quarantined, and then not replicating), nothing in progress,
// routing tokens never going back.
//
// Instances named in lingering may be writable beside another for a while:
// a resumed frozen old primary is fenced by semi-sync (nothing can
// acknowledge its commits) until its agent or the leader sets read_only.
func (h *harness) checkSettled(live map[string]*mysqltest.Server, w *mysqltest.Writer, lingering ...string) {
	t := h.t
	t.Helper()
	var primary *mysqltest.Server
	var quarantined map[string]bool
	// Settled is judged in one reading of everything: a state between two
	// operations (the old primary writable again after an abort, the
	// promoted replica fenced and not replicating, a repair about to start)
	// has the committed primary alone writable and nothing in progress, yet
	// another instance neither replicating from it nor quarantined.
	h.eventually("the cluster settled: one writable instance, the committed primary, nothing in progress, every other live instance replicating from it or quarantined", 90*time.Second, func() (bool, string) {
		c := h.cluster()
		var writable []string
		for _, name := range sortedNames(live) {
			if live[name].QueryString(t, "SELECT @@read_only") == "0" {
				writable = append(writable, name)
			}
		}
		if others := slices.DeleteFunc(slices.Clone(writable), func(n string) bool { return slices.Contains(lingering, n) }); len(others) > 1 {
			t.Fatalf("two writers: %v (committed primary %q, epoch %d)", writable, c.Primary, c.Epoch)
		}
		primary = live[c.Primary]
		state := fmt.Sprintf("primary %q epoch %d, writable %v, operation %v", c.Primary, c.Epoch, writable, c.Operation)
		if c.Operation != nil || primary == nil || len(writable) != 1 || writable[0] != c.Primary {
			return false, state
		}
		quarantined = map[string]bool{}
		for _, name := range sortedNames(live) {
			s := live[name]
			if s == primary {
				continue
			}
			// Quarantined: kept out on purpose, read-only as checked
			// above, never silently rejoined.
			io, sqlT, e := mysqltest.ReplicaThreads(t, s)
			if _, q := c.Quarantined[name]; q {
				if io == "Yes" {
					return false, state + "; " + name + " quarantined, yet its IO thread runs"
				}
				quarantined[name] = true
				continue
			}
			if src := mysqltest.ReplicationSource(t, s); io != "Yes" || sqlT != "Yes" || src != primary.Addr() {
				return false, fmt.Sprintf("%s; %s replicates from %q: IO=%s SQL=%s %s", state, name, src, io, sqlT, e)
			}
		}
		return true, state
	})
	if m := w.Missing(t, primary); len(m) != 0 {
		t.Fatalf("%d acknowledged writes missing on the primary %s, e.g. %v", len(m), primary.Name, m[:min(5, len(m))])
	}
	for name, s := range live {
		if s == primary || quarantined[name] {
			continue
		}
		mysqltest.WaitCaughtUp(t, s, primary, 30*time.Second)
	}
	// Automation is not blocked: nothing abandoned is left in progress, and
	// the history says how the killed run ended.
	// (A later repair may have started by now; the settled condition above
	// already saw nothing in progress.)
	c := h.cluster()
	if !h.lateRoutes {
		h.checkTokensGrow()
	}
	t.Logf("settled on %s, epoch %d, %d history entries", c.Primary, c.Epoch, len(c.History))
}

// The leader is cut off from the other agents (Raft and reports; it still
// reaches every database) right after step k, and its run goes on: the
// steps after k, its commit (which fails without a quorum) and its undo run
// on the deposed leader while the others elect a new one and repair from
// the state. Nothing is killed, so every instance is live at the end. The
// steps are those after which the rest of the run acts on the primary or
// the candidate.
var cutSwitchoverSteps = []haltStep{{kind: failover.StepFenceOldPrimary}, {kind: failover.StepPromote}, {kind: failover.StepCommitEpoch}}
var cutFailoverSteps = []haltStep{{kind: failover.StepPromote}}

func TestCutLeaderAfterSwitchoverStep(t *testing.T) {
	forEachStep(t, cutSwitchoverSteps, func(t *testing.T, k mysqltest.Kind, step haltStep) {
		cutLeaderAfterStep(t, k, failover.OpSwitchover, step)
	})
}

// A forced failover of a live primary, so that the deposed leader's undo
// could give the old primary its writes back.
func TestCutLeaderAfterForcedFailoverStep(t *testing.T) {
	forEachStep(t, cutFailoverSteps, func(t *testing.T, k mysqltest.Kind, step haltStep) {
		cutLeaderAfterStep(t, k, failover.OpForcedFailover, step)
	})
}

func cutLeaderAfterStep(t *testing.T, k mysqltest.Kind, kind failover.OperationKind, step haltStep) {
	h := newHarness(t, k, func(c *config.Config) { c.Clusters[0].Durability = "semi_sync" })
	// The deposed leader's late route pushes reach the recording target,
	// which (unlike HAProxy's target) does not refuse a stale token.
	h.lateRoutes = true
	h.waitRecorded()
	h.waitLossless(k)
	w := mysqltest.NewWriter(h.db.Primary.Addr(), k, 100000, 2*time.Millisecond)
	w.Start(context.Background())
	defer w.Stop()
	w.WaitAcked(t, 30, 30*time.Second)
	cut := h.afterStep(kind, step, false, h.isolate)
	if kind == failover.OpSwitchover {
		h.switchover("main", "r1")
	} else {
		h.failover("main", api.FailoverRequest{To: "r2"})
	}
	select {
	case a := <-cut:
		t.Logf("leader %s cut off after %s; its run goes on", h.agents[a].ID(), step)
	case <-time.After(60 * time.Second):
		t.Fatalf("the %s never reached step %s", kind, step)
	}
	// Writes go on to the old primary until it is fenced; the writer is
	// stopped once the new leader is elected.
	h.leader()
	w.Stop()
	live := map[string]*mysqltest.Server{}
	for _, s := range h.db.Servers() {
		live[s.Name] = s
	}
	h.checkSettled(live, w)
}

// haltAfter makes the first run of kind that completes step stop dead; the
// channel says which agent it was.
func (h *harness) haltAfter(kind failover.OperationKind, step haltStep) <-chan int {
	return h.afterStep(kind, step, true, nil)
}

// afterStep calls act (when set) with the agent whose run of kind first
// completes step, in that run's goroutine before its next step, and sends
// the agent on the channel; halt stops that run dead there.
func (h *harness) afterStep(kind failover.OperationKind, step haltStep, halt bool, act func(agent int)) <-chan int {
	reached := make(chan int, 1)
	var once sync.Once
	h.mu.Lock()
	h.halt = func(agent int, ev failover.StepEvent) bool {
		if ev.Operation != kind || ev.Step.Kind != step.kind || step.instance != "" && ev.Step.Instance != step.instance {
			return false
		}
		stop := false
		once.Do(func() {
			if act != nil {
				act(agent)
			}
			stop = halt
			reached <- agent
		})
		return stop
	}
	h.mu.Unlock()
	return reached
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
	forEachStep(t, rejoinHaltSteps, func(t *testing.T, k mysqltest.Kind, step haltStep) {
		killLeaderWhenPComesBack(t, k, failover.OpRejoin, step)
	})
}

// The quarantine path of a rejoin: p comes back holding a write that no
// replica received (asynchronous replication), so the rejoin quarantines it
// instead; the leader dies after each step of that. Settled means p
// quarantined, read-only and not replicating, the new primary alone
// writable.
var quarantineHaltSteps = []haltStep{{kind: failover.StepRecordIntent}, {kind: failover.StepFence}, {kind: failover.StepQuarantine}}

func TestKillLeaderAfterQuarantineStep(t *testing.T) {
	forEachStep(t, quarantineHaltSteps, func(t *testing.T, k mysqltest.Kind, step haltStep) {
		killLeaderWhenPComesBack(t, k, failover.OpQuarantine, step)
	})
}

// killLeaderWhenPComesBack fails p over, writes to the new primary, brings
// p back and kills the leader right after step of what that starts: a
// rejoin (semi_sync), or, when p holds a write no replica received
// (asynchronous replication), its quarantine.
func killLeaderWhenPComesBack(t *testing.T, k mysqltest.Kind, op failover.OperationKind, step haltStep) {
	errant := op == failover.OpQuarantine
	var opts []harnessOpt
	if !errant {
		opts = append(opts, func(c *config.Config) { c.Clusters[0].Durability = "semi_sync" })
	}
	h := newHarness(t, k, opts...)
	h.waitRecorded()
	if !errant {
		h.waitLossless(k)
	}
	e := h.failOverFromP(k, errant)
	live := map[string]*mysqltest.Server{}
	for _, s := range h.db.Servers() {
		live[s.Name] = s
	}
	w := mysqltest.NewWriter(live[e.NewPrimary].Addr(), k, 100000, 2*time.Millisecond)
	w.Start(context.Background())
	defer w.Stop()
	w.WaitAcked(t, 30, 30*time.Second)
	halted := h.haltAfter(op, step)
	h.db.Primary.Restart(t)
	h.waitHalted(halted, op, step)
	w.Stop()
	h.checkSettled(live, w)
	if _, q := h.cluster().Quarantined["p"]; q != errant {
		t.Fatalf("p quarantined %v, want %v: %v", q, errant, h.cluster().Quarantined)
	}
}

// The catch-up step of a failover: r1 may not be promoted (must_not) and
// holds writes r2 lacks, so r2 catches up from r1 before its promotion; the
// leader dies right after the catch-up. The next leader must still promote
// r2 with every acknowledged write.
func TestKillLeaderAfterCatchUpStep(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k, func(c *config.Config) { c.Clusters[0].Instances[1].Promotion = "must_not" })
		h.waitRecorded()
		p, r1, r2 := h.db.Primary, h.db.Replicas[0], h.db.Replicas[1]
		w := mysqltest.NewWriter(p.Addr(), k, 100000, 2*time.Millisecond)
		w.Start(context.Background())
		defer w.Stop()
		w.WaitAcked(t, 30, 30*time.Second)
		r2.Exec(t, "STOP "+replicaWord(k)+" IO_THREAD")
		w.WaitAcked(t, len(w.Acked())+30, 30*time.Second)
		w.Stop()
		// Asynchronous replication: what r1 has at the kill is what can
		// survive; the writer stopped first, so that is every write.
		mysqltest.WaitCaughtUp(t, r1, p, 30*time.Second)
		halted := h.haltAfter(failover.OpFailover, haltStep{kind: failover.StepCatchUp})
		p.Kill(t)
		// As for any replica of a dead primary, r2's IO thread is running
		// (connecting) when the failover starts.
		r2.Exec(t, "START "+replicaWord(k)+" IO_THREAD")
		h.waitHalted(halted, failover.OpFailover, haltStep{kind: failover.StepCatchUp})
		h.checkSettled(map[string]*mysqltest.Server{"r1": r1, "r2": r2}, w)
		if c := h.cluster(); c.Primary != "r2" {
			t.Fatalf("primary %s after the failover, want r2 (r1 is must_not)", c.Primary)
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

// A switchover whose leader was frozen in its stop-io-threads step stopped
// db3's IO thread after the next leader had aborted it, and nothing
// recorded the stop (chaos seed 20262543): every replica of a failover or
// switchover that ended without a change of primary counts as possibly
// left stopped; other kinds keep to their recorded steps.
func TestLeftStoppedCountsUnrecordedStops(t *testing.T) {
	aborted := consensus.HistoryEntry{Kind: consensus.KindSwitchover, Result: consensus.ResultAborted,
		Steps: []consensus.Step{{Name: "record-intent db1", Result: consensus.StepOK}}}
	if got := fmt.Sprint(leftStopped(aborted, []string{"db1", "db2", "db3"}, "db1")); got != "[db2 db3]" {
		t.Fatalf("leftStopped of an aborted switchover = %s, want [db2 db3]", got)
	}
	rejoin := consensus.HistoryEntry{Kind: consensus.KindRejoin, Result: consensus.ResultFailed}
	if got := leftStopped(rejoin, []string{"db1", "db2", "db3"}, "db1"); len(got) != 0 {
		t.Fatalf("leftStopped of a failed rejoin = %v, want none", got)
	}

	// Chaos seed 20263035: a failover of db2 aborted by the next leader,
	// which could not reach db3 to start the IO thread it had stopped, then
	// db1's quarantine (a rejoin that succeeded), then db3 back. The
	// aborted failover still counts: only a change of primary ends the walk.
	all := []string{"db1", "db2", "db3"}
	failedOver := consensus.HistoryEntry{Kind: consensus.KindFailover, Result: consensus.ResultSuccess, EpochBefore: 1, EpochAfter: 2}
	abortedFailover := consensus.HistoryEntry{Kind: consensus.KindFailover, Result: consensus.ResultAborted, EpochBefore: 2, EpochAfter: 2,
		Steps: []consensus.Step{{Name: "record-intent db2", Result: consensus.StepOK}, {Name: "stop-io-threads db3", Result: consensus.StepOK}}}
	quarantine := consensus.HistoryEntry{Kind: consensus.KindRejoin, Result: consensus.ResultSuccess, EpochBefore: 2, EpochAfter: 2}
	for _, c := range []struct {
		name    string
		history []consensus.HistoryEntry
		want    string
	}{
		{"an aborted failover, then a quarantine", []consensus.HistoryEntry{failedOver, abortedFailover, quarantine}, "[db1 db3]"},
		{"an aborted failover last", []consensus.HistoryEntry{failedOver, abortedFailover}, "[db1 db3]"},
		{"a change of primary since", []consensus.HistoryEntry{abortedFailover, quarantine, failedOver}, "[]"},
		{"nothing aborted", []consensus.HistoryEntry{failedOver, quarantine}, "[]"},
		{"no history", nil, "[]"},
		// Chaos seed 20263204: a switchover's leader killed after the
		// commit, in the repoint of the old primary db1 (CHANGE MASTER
		// done, START SLAVE not): the abort keeps epoch 2, and db1 counts.
		{"a switchover aborted after its commit", []consensus.HistoryEntry{failedOver, {Kind: consensus.KindSwitchover, Result: consensus.ResultAborted,
			EpochBefore: 2, EpochAfter: 3, OldPrimary: "db1"}}, "[db1]"},
	} {
		if got := fmt.Sprint(leftStoppedSince(c.history, all, "db2")); got != c.want {
			t.Errorf("%s: leftStoppedSince = %s, want %s", c.name, got, c.want)
		}
	}
}
