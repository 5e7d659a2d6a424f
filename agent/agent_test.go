package agent

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/apiserver"
	"github.com/regentdb/regent/config"
	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/proxyhook"
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
		h := newHarness(t, k, func(c *config.Config) { c.Clusters[0].FastPath = false })
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
		if lease := 3 * time.Second; fenced >= lease {
			t.Fatalf("fenced %v after the cut, not before lease_timeout %v", fenced, lease)
		}
	})
}

// waitOp waits until the cluster's history holds an operation of kind that
// ended, and returns it.
func (h *harness) waitOp(kind consensus.OpKind, after int, timeout time.Duration) consensus.HistoryEntry {
	h.t.Helper()
	var got consensus.HistoryEntry
	h.eventually(fmt.Sprintf("a finished %s", kind), timeout, func() (bool, string) {
		c := h.cluster()
		for i := after; i < len(c.History); i++ {
			if c.History[i].Kind == kind {
				got = c.History[i]
				return true, ""
			}
		}
		op := "none"
		if c.Operation != nil {
			op = fmt.Sprintf("%s %s (%d steps)", c.Operation.Kind, c.Operation.ID, len(c.Operation.Steps))
		}
		return false, fmt.Sprintf("history has %d entries; in progress: %s; primary %s epoch %d", len(c.History), op, c.Primary, c.Epoch)
	})
	return got
}

func (h *harness) waitRecorded() consensus.Cluster {
	h.t.Helper()
	h.eventually("cluster recorded with p as primary and writable", 15*time.Second, func() (bool, string) {
		c := h.cluster()
		return c.Primary == "p" && c.Epoch == 1 && h.db.Primary.QueryString(h.t, "SELECT @@read_only") == "0",
			fmt.Sprintf("primary %q epoch %d", c.Primary, c.Epoch)
	})
	return h.cluster()
}

// checkEpochsGrow asserts that the routing target saw epochs that never go
// back, and returns its events.
func (h *harness) checkEpochsGrow() []string {
	h.t.Helper()
	events, epochs := h.router.seen()
	for i := 1; i < len(epochs); i++ {
		if epochs[i] < epochs[i-1] {
			h.t.Fatalf("routing epochs went back: %v (%v)", epochs, events)
		}
	}
	h.checkTokensGrow()
	return events
}

// checkTokensGrow checks that every push carried a token (proxyhook.Order)
// and that, with no deposed leader pushing late, tokens only grow, across
// leaders too, even where epochs go back (a reconciliation after an
// aborted operation).
func (h *harness) checkTokensGrow() {
	h.t.Helper()
	events, _ := h.router.seen()
	tokens := h.router.seenTokens()
	for i, tok := range tokens {
		if tok == 0 || (i > 0 && tok < tokens[i-1]) {
			h.t.Fatalf("routing tokens %v: each push needs one, and they must not go back (%v)", tokens, events)
		}
	}
}

// stepNames lists a history entry's steps.
func stepNames(e consensus.HistoryEntry) string {
	var s []string
	for _, st := range e.Steps {
		s = append(s, fmt.Sprintf("%s=%s(%v)", st.Name, st.Result, st.Duration.Round(time.Millisecond)))
	}
	return strings.Join(s, " ")
}

func TestKillPrimaryPromotesMostAdvancedReplica(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k)
		h.waitRecorded()
		p, r1, r2 := h.db.Primary, h.db.Replicas[0], h.db.Replicas[1]
		p.Exec(t, "INSERT INTO regent_test.writes (id) VALUES (1)")
		mysqltest.WaitCaughtUp(t, r2, p, 30*time.Second)
		// r2 stops receiving while r1 gets two more transactions: r1 is the
		// most advanced replica and must win.
		r2.Exec(t, "STOP "+replicaWord(k)+" IO_THREAD")
		p.Exec(t, "INSERT INTO regent_test.writes (id) VALUES (2)", "INSERT INTO regent_test.writes (id) VALUES (3)")
		mysqltest.WaitCaughtUp(t, r1, p, 30*time.Second)
		r2.Exec(t, "START "+replicaWord(k)+" IO_THREAD")

		p.Kill(t)
		e := h.waitOp(consensus.KindFailover, 0, 30*time.Second)
		if e.Result != consensus.ResultSuccess || e.NewPrimary != "r1" || e.OldPrimary != "p" || e.EpochBefore != 1 || e.EpochAfter != 2 {
			t.Fatalf("failover: result %s (%s), %s → %s, epoch %d → %d; steps %s", e.Result, e.Reason, e.OldPrimary, e.NewPrimary, e.EpochBefore, e.EpochAfter, stepNames(e))
		}
		if len(e.Steps) < 5 || e.GTIDAtPromotion == "" {
			t.Fatalf("history entry lacks steps or GTID: %d steps, gtid %q: %s", len(e.Steps), e.GTIDAtPromotion, stepNames(e))
		}
		for _, st := range e.Steps {
			if st.Start.IsZero() {
				t.Fatalf("step %s has no start time", st.Name)
			}
		}
		c := h.cluster()
		if c.Primary != "r1" || c.Epoch != 2 {
			t.Fatalf("state: primary %s epoch %d", c.Primary, c.Epoch)
		}
		if r1.QueryString(t, "SELECT @@read_only") != "0" {
			t.Fatalf("promoted r1 is read-only")
		}
		// r2 now replicates from r1 and has everything, including 2 and 3.
		h.eventually("r2 replicates from r1", 20*time.Second, func() (bool, string) {
			io, sqlT, e := mysqltest.ReplicaThreads(t, r2)
			src := r2.QueryString(t, "SELECT COUNT(*) FROM regent_test.writes")
			return io == "Yes" && sqlT == "Yes" && src == "3", fmt.Sprintf("IO=%s SQL=%s rows=%s %s", io, sqlT, src, e)
		})
		r1.Exec(t, "INSERT INTO regent_test.writes (id) VALUES (4)")
		mysqltest.WaitCaughtUp(t, r2, r1, 30*time.Second)
		events := h.checkEpochsGrow()
		if !slices.Contains(events, "route r1 epoch 2") {
			t.Fatalf("router never routed writes to r1 in epoch 2: %v", events)
		}
	})
}

// r1Ahead writes rows 1 and 2 on p so that r1 has both and r2 only the
// first: r1 is the most advanced replica.
func r1Ahead(t *testing.T, k mysqltest.Kind, p, r1, r2 *mysqltest.Server) {
	t.Helper()
	p.Exec(t, "INSERT INTO regent_test.writes (id) VALUES (1)")
	mysqltest.WaitCaughtUp(t, r2, p, 30*time.Second)
	r2.Exec(t, "STOP "+replicaWord(k)+" IO_THREAD")
	p.Exec(t, "INSERT INTO regent_test.writes (id) VALUES (2)")
	mysqltest.WaitCaughtUp(t, r1, p, 30*time.Second)
	r2.Exec(t, "START "+replicaWord(k)+" IO_THREAD")
}

func replicaWord(k mysqltest.Kind) string {
	if k == mysqltest.MySQL {
		return "REPLICA"
	}
	return "SLAVE"
}

func TestSwitchoverUnderWritesLosesNothing(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k)
		h.waitRecorded()
		p, r1 := h.db.Primary, h.db.Replicas[0]
		w := mysqltest.NewWriter(p.Addr(), k, 100000, 2*time.Millisecond)
		w.Start(context.Background())
		defer w.Stop()
		w.WaitAcked(t, 50, 20*time.Second)

		op := h.switchover("main", "r1")
		e := h.waitOp(consensus.KindSwitchover, 0, 30*time.Second)
		w.Stop()
		if e.ID != op.ID || e.Result != consensus.ResultSuccess || e.NewPrimary != "r1" || e.EpochAfter != 2 {
			t.Fatalf("switchover %s: result %s (%s), new primary %s, epoch %d; steps %s", e.ID, e.Result, e.Reason, e.NewPrimary, e.EpochAfter, stepNames(e))
		}
		// The history entry is written by the run's finish step; the
		// window is noted when the run returns, a moment later (a read
		// waits for it).
		var got api.Operation
		h.eventually("write-blocked window recorded", 10*time.Second, func() (bool, string) {
			var err error
			got, err = h.agents[h.leader()].API().Operation(context.Background(), "main", op.ID)
			return err == nil && got.WriteBlocked != nil && *got.WriteBlocked > 0, fmt.Sprintf("%+v, %v", got.WriteBlocked, err)
		})
		// The old primary replicates from the new one, and every
		// acknowledged write is on the new primary and on the old one.
		h.eventually("old primary replicates from r1", 20*time.Second, func() (bool, string) {
			io, sqlT, e := mysqltest.ReplicaThreads(t, p)
			return io == "Yes" && sqlT == "Yes", fmt.Sprintf("IO=%s SQL=%s %s", io, sqlT, e)
		})
		if p.QueryString(t, "SELECT @@read_only") != "1" {
			t.Fatalf("old primary is writable after the switchover")
		}
		r1.Exec(t, "INSERT INTO regent_test.writes (id) VALUES (999999)")
		mysqltest.WaitCaughtUp(t, p, r1, 30*time.Second)
		if len(w.Acked()) < 50 {
			t.Fatalf("only %d writes acknowledged", len(w.Acked()))
		}
		for _, s := range []*mysqltest.Server{r1, p} {
			if m := w.Missing(t, s); len(m) != 0 {
				t.Fatalf("%s misses %d acknowledged writes, e.g. %v", s.Name, len(m), m[:min(5, len(m))])
			}
		}
		t.Logf("switchover %s: write-blocked %v, %d writes acknowledged", op.ID, time.Duration(*got.WriteBlocked), len(w.Acked()))
		h.checkEpochsGrow()
	})
}

// A switchover's write-blocked window ends at the new primary's first
// commit when clients write (what they see), not at the route: here one
// client writes to r1 100 ms after the route, and the window reaches its
// commit. With no client writing, it ends at the route and says so.
func TestSwitchoverWindowEndsAtTheFirstCommit(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k)
		h.waitRecorded()
		app := appDB(t, h.db.Replicas[0])
		const late = 100 * time.Millisecond
		var sent, acked time.Time
		wrote := make(chan error, 1)
		h.afterStep(failover.OpSwitchover, haltStep{kind: failover.StepRoute}, false, func(int) {
			time.AfterFunc(late, func() {
				sent = time.Now()
				_, err := app.Exec("INSERT INTO " + mysqltest.TestDatabase + ".writes (id) VALUES (1)")
				acked = time.Now()
				wrote <- err
			})
		})
		op := h.switchover("main", "r1")
		h.waitOp(consensus.KindSwitchover, 0, 30*time.Second)
		if err := <-wrote; err != nil {
			t.Fatalf("the write to r1 after the route: %v", err)
		}
		got := h.blockedWindow(op.ID)
		if !strings.Contains(got.WriteBlockedUntil, "the first commit on r1") {
			t.Fatalf("write_blocked %v runs up to %q, want the first commit on r1", got.WriteBlocked, got.WriteBlockedUntil)
		}
		// The window ends after the write was sent, and soon after it was
		// acknowledged (the watch polls every few milliseconds). Its end
		// is read from the route's end and the delay the history gives:
		// its start is the moment the fence's SET GLOBAL read_only was
		// sent, inside the fence step, which the history does not time
		// (a start taken at the fence step's start put the end up to the
		// fence's kills too early: found by a CI run).
		m := regexp.MustCompile(`observed (\S+) after the route`).FindStringSubmatch(got.WriteBlockedUntil)
		if m == nil {
			t.Fatalf("write_blocked_until %q does not say when the commit was observed", got.WriteBlockedUntil)
		}
		after, err := time.ParseDuration(m[1])
		if err != nil {
			t.Fatal(err)
		}
		end := stepEnd(t, got, "route r1").Add(after)
		if end.Before(sent) || end.After(acked.Add(150*time.Millisecond)) {
			t.Fatalf("the window ends at %s; the write was sent at %s and acknowledged at %s (until %q)",
				end.Format("15:04:05.000"), sent.Format("15:04:05.000"), acked.Format("15:04:05.000"), got.WriteBlockedUntil)
		}

		// Back to r2 with nobody writing: the window ends at the route.
		n := len(h.cluster().History)
		op = h.switchover("main", "r2")
		h.waitOp(consensus.KindSwitchover, n, 30*time.Second)
		got = h.blockedWindow(op.ID)
		if !strings.Contains(got.WriteBlockedUntil, "no commit on r2 was seen") {
			t.Fatalf("write_blocked %v runs up to %q, want no commit seen", got.WriteBlocked, got.WriteBlockedUntil)
		}
		if end, routed := blockStart(t, got).Add(got.WriteBlocked.Std()), stepEnd(t, got, "route r2"); end.After(routed.Add(5 * time.Millisecond)) {
			t.Fatalf("with nobody writing the window ends at %s, after the route at %s", end.Format("15:04:05.000"), routed.Format("15:04:05.000"))
		}
	})
}

// blockedWindow reads a switchover's operation from the leader, whose
// window the leader has measured by the time it answers.
func (h *harness) blockedWindow(id string) api.Operation {
	h.t.Helper()
	got, err := h.agents[h.leader()].API().Operation(context.Background(), "main", id)
	if err != nil || got.WriteBlocked == nil {
		h.t.Fatalf("operation %s: write_blocked %v, error %v", id, got.WriteBlocked, err)
	}
	return got
}

// blockStart is when a switchover's write-blocked window began: the start
// of its fence of the old primary.
func blockStart(t *testing.T, op api.Operation) time.Time {
	t.Helper()
	for _, s := range op.Steps {
		if strings.HasPrefix(s.Name, "fence-old-primary") {
			return s.Started
		}
	}
	t.Fatalf("operation %s has no fence step: %+v", op.ID, op.Steps)
	return time.Time{}
}

// stepEnd is when the step named name ended.
func stepEnd(t *testing.T, op api.Operation, name string) time.Time {
	t.Helper()
	for _, s := range op.Steps {
		if s.Name == name {
			return s.Started.Add(s.Duration.Std())
		}
	}
	t.Fatalf("operation %s has no step %q: %+v", op.ID, name, op.Steps)
	return time.Time{}
}

func TestErrantReplicaIsNeverPromoted(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k)
		h.waitRecorded()
		p, r1, r2 := h.db.Primary, h.db.Replicas[0], h.db.Replicas[1]
		p.Exec(t, "INSERT INTO regent_test.writes (id) VALUES (1)")
		mysqltest.WaitCaughtUp(t, r1, p, 30*time.Second)
		mysqltest.WaitCaughtUp(t, r2, p, 30*time.Second)
		// r1, first by name, gets an errant write from a DBA.
		r1.Exec(t, "INSERT INTO regent_test.writes (id) VALUES (500)")
		// Let the leader see the errant transaction while p lives.
		leader := h.agents[h.leader()]
		h.eventually("errant transaction reported", 10*time.Second, func() (bool, string) {
			c, _ := leader.API().Cluster(context.Background(), "main")
			for _, pr := range c.Problems {
				if pr.Code == "ErrantGTIDOnReplica" {
					return true, ""
				}
			}
			return false, fmt.Sprint(c.Problems)
		})
		p.Kill(t)
		e := h.waitOp(consensus.KindFailover, 0, 30*time.Second)
		if e.NewPrimary != "r2" || e.Result != consensus.ResultSuccess {
			t.Fatalf("failover promoted %q (result %s: %s), want r2: the errant r1 must never win; steps %s", e.NewPrimary, e.Result, e.Reason, stepNames(e))
		}
		if r1.QueryString(t, "SELECT @@read_only") != "1" {
			t.Fatalf("errant replica r1 is writable")
		}
	})
}

func TestAntiFlapBlocksSecondFailoverButManualWorks(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k)
		h.waitRecorded()
		p := h.db.Primary
		p.Kill(t)
		first := h.waitOp(consensus.KindFailover, 0, 30*time.Second)
		if first.Result != consensus.ResultSuccess {
			t.Fatalf("first failover: %s (%s)", first.Result, first.Reason)
		}
		newPrimary := first.NewPrimary
		var srv *mysqltest.Server
		for _, s := range h.db.Replicas {
			if s.Name == newPrimary {
				srv = s
			}
		}
		srv.Kill(t)
		leader := h.agents[h.leader()]
		// The second failure is reported, with the anti-flap window as the
		// reason nothing happens.
		h.eventually("second failure reported as blocked by anti-flap", 15*time.Second, func() (bool, string) {
			c, _ := leader.API().Cluster(context.Background(), "main")
			for _, pr := range c.Problems {
				if strings.HasPrefix(pr.Code, "DeadPrimary") {
					for _, b := range pr.Blockers {
						if b.Kind == "anti_flap" {
							return true, ""
						}
					}
				}
			}
			return false, fmt.Sprintf("%+v", c.Problems)
		})
		if c := h.cluster(); c.Primary != newPrimary || c.Epoch != 2 {
			t.Fatalf("automatic failover inside the anti-flap window: primary %s epoch %d", c.Primary, c.Epoch)
		}
		// A manual failover to the last replica still works.
		last := "r1"
		if newPrimary == "r1" {
			last = "r2"
		}
		h.failover("main", api.FailoverRequest{To: last})
		e := h.waitOp(consensus.KindForcedFailover, 0, 30*time.Second)
		if e.Result != consensus.ResultSuccess || e.NewPrimary != last || e.EpochAfter != 3 {
			t.Fatalf("manual failover: %s (%s) to %s epoch %d; steps %s", e.Result, e.Reason, e.NewPrimary, e.EpochAfter, stepNames(e))
		}
		h.checkEpochsGrow()
	})
}

// The old primary comes back after a failover: it stays read-only and is
// rejoined as a replica of the new primary when it holds nothing the new
// primary lacks, and quarantined when it holds a transaction nobody else got.
func TestOldPrimaryRejoinsOrIsQuarantined(t *testing.T) {
	for _, errant := range []bool{false, true} {
		name := "clean"
		if errant {
			name = "errant"
		}
		t.Run(name, func(t *testing.T) {
			forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
				h := newHarness(t, k)
				h.waitRecorded()
				p := h.db.Primary
				h.failOverFromP(k, errant)
				p.Restart(t)
				if errant {
					h.eventually("old primary quarantined", 30*time.Second, func() (bool, string) {
						c := h.cluster()
						_, q := c.Quarantined["p"]
						return q, fmt.Sprintf("quarantined %v", c.Quarantined)
					})
					// Never silently rejoined, never writable.
					if io, _, _ := mysqltest.ReplicaThreads(t, p); io == "Yes" {
						t.Fatalf("quarantined old primary replicates")
					}
				} else {
					h.eventually("old primary rejoined", 30*time.Second, func() (bool, string) {
						io, sqlT, e := mysqltest.ReplicaThreads(t, p)
						return io == "Yes" && sqlT == "Yes", fmt.Sprintf("IO=%s SQL=%s %s", io, sqlT, e)
					})
				}
				if p.QueryString(t, "SELECT @@read_only") != "1" {
					t.Fatalf("old primary is writable after coming back")
				}
			})
		})
	}
}

// Found by the chaos campaign (seed 20262851, MariaDB): the primary's
// mysqld was killed and came back within a second and a half, read-only and
// with its semi-sync source side off (SET GLOBAL does not survive a
// restart). The leader's restore-writes gave it its writes back 200 ms
// before the SemiSyncNotEnforced repair made it lossless again, and
// meanwhile it acknowledged 29 commits that no replica held: a failover
// that followed lost them. Here both replicas are down, so no commit
// acknowledged after the restart can be held by anyone but p: none may be
// acknowledged. Restore-writes makes the source side lossless first.
func TestRestartedPrimaryGetsItsWritesBackLosslessly(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k, func(c *config.Config) {
			c.Clusters[0].Durability = "semi_sync"
			// Commits wait for a replica for as long as it takes: the
			// leader never decides a fallback in the middle of the test.
			c.Clusters[0].SemiSyncFallback = 0
		})
		h.waitRecorded()
		h.waitLossless(k)
		p := h.db.Primary
		for _, r := range h.db.Replicas {
			r.Kill(t)
		}
		p.Kill(t)
		w := mysqltest.NewWriter(p.Addr(), k, 1000000, 2*time.Millisecond)
		w.Start(context.Background())
		defer w.Stop()
		p.Restart(t)
		// restore-writes, which the history does not record (it changes
		// no epoch), gives the writes back.
		v := semiSyncVar(k)
		h.eventually("p writable and lossless", 30*time.Second, func() (bool, string) {
			ro, on, to := p.QueryString(t, "SELECT @@read_only"), p.QueryString(t, "SELECT @@"+v+"_enabled"), p.QueryString(t, "SELECT @@"+v+"_timeout")
			return ro == "0" && on == "1" && to == "4294967295", fmt.Sprintf("read_only=%s enabled=%s timeout=%s", ro, on, to)
		})
		if acked := w.Acked(); len(acked) > 0 {
			n, _, last := w.Failed()
			t.Fatalf("%d commits acknowledged by the restarted primary with no replica to hold them (first id %d; %d attempts failed, the last with %v)", len(acked), acked[0], n, last)
		}
		// The writes were given back: a commit reaches the server and waits
		// for a replica there, it is not refused as read-only.
		h.eventually("a commit waiting for a semi-sync acknowledgement", 10*time.Second, func() (bool, string) {
			n := p.QueryString(t, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '"+mysqltest.AppUser+"' AND STATE LIKE '%semi-sync%'")
			return n == "1", n + " sessions waiting"
		})
	})
}

// failOverFromP writes a row that every replica receives, then (errant)
// one that none receives (asynchronous replication: the failover loses it,
// and it is errant when p comes back), kills p and waits for the automatic
// failover to succeed. It returns the failover's history entry.
func (h *harness) failOverFromP(k mysqltest.Kind, errant bool) consensus.HistoryEntry {
	t := h.t
	t.Helper()
	p := h.db.Primary
	p.Exec(t, "INSERT INTO regent_test.writes (id) VALUES (1)")
	for _, r := range h.db.Replicas {
		mysqltest.WaitCaughtUp(t, r, p, 30*time.Second)
	}
	if errant {
		// The IO threads start again only once p is dead, or they could
		// fetch the write before the kill.
		for _, r := range h.db.Replicas {
			r.Exec(t, "STOP "+replicaWord(k)+" IO_THREAD")
		}
		p.Exec(t, "INSERT INTO regent_test.writes (id) VALUES (2)")
	}
	p.Kill(t)
	if errant {
		for _, r := range h.db.Replicas {
			r.Exec(t, "START "+replicaWord(k)+" IO_THREAD")
		}
	}
	e := h.waitOp(consensus.KindFailover, 0, 30*time.Second)
	if e.Result != consensus.ResultSuccess {
		t.Fatalf("failover: %s (%s)", e.Result, e.Reason)
	}
	if errant {
		for _, r := range h.db.Replicas {
			if got := r.QueryString(t, "SELECT COUNT(*) FROM regent_test.writes WHERE id = 2"); got != "0" {
				t.Fatalf("%s received the write meant to be errant", r.Name)
			}
		}
	}
	return e
}

// The most advanced replica may not be promoted (must_not): the permitted
// one catches up from it first, so that nothing it has is lost.
func TestMustNotReplicaIsCatchUpSourceOnly(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k, func(c *config.Config) { c.Clusters[0].Instances[1].Promotion = "must_not" })
		h.waitRecorded()
		p, r1, r2 := h.db.Primary, h.db.Replicas[0], h.db.Replicas[1]
		r1Ahead(t, k, p, r1, r2)
		p.Kill(t)
		e := h.waitOp(consensus.KindFailover, 0, 30*time.Second)
		if e.Result != consensus.ResultSuccess || e.NewPrimary != "r2" {
			t.Fatalf("failover: %s (%s) to %q, want r2 (r1 is must_not); steps %s", e.Result, e.Reason, e.NewPrimary, stepNames(e))
		}
		if got := r2.QueryString(t, "SELECT COUNT(*) FROM regent_test.writes WHERE id IN (1, 2)"); got != "2" {
			t.Fatalf("promoted r2 has %s of the 2 rows: it was not caught up from r1", got)
		}
		if !strings.Contains(stepNames(e), "catch-up") {
			t.Fatalf("no catch-up step: %s", stepNames(e))
		}
	})
}

// Issue 14: discovery from the bottom of the tree finds the primary and
// both replicas, with Regent's account, and proposes them.
func TestDiscoverRealTree(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k)
		h.waitRecorded()
		p, r1, r2 := h.db.Primary, h.db.Replicas[0], h.db.Replicas[1]
		d, err := h.agents[0].API().Discover(context.Background(), r2.Addr())
		if err != nil {
			t.Fatal(err)
		}
		var addrs []string
		for _, in := range d.Instances {
			addrs = append(addrs, in.Address)
		}
		if len(addrs) != 3 || addrs[0] != p.Addr() || !slices.Contains(addrs, r1.Addr()) || !slices.Contains(addrs, r2.Addr()) {
			t.Fatalf("discovered %v, want %s first, then %s and %s (warnings %v)", addrs, p.Addr(), r1.Addr(), r2.Addr(), d.Warnings)
		}
		if d.Primary != d.Instances[0].Name || d.Instances[1].Source != p.Addr() || !strings.Contains(d.YAML, "address: "+r1.Addr()) {
			t.Fatalf("discovery: %+v\n%s", d, d.YAML)
		}
		if _, err := h.agents[0].API().Discover(context.Background(), "127.0.0.1:1"); !errors.Is(err, apiserver.ErrRefused) {
			t.Fatalf("discovery of a closed port: %v, want a refusal", err)
		}
	})
}

// Issue 14: an instance in maintenance is never promoted, its data still
// counts, it serves no reads (/replica 503), and its maintenance ends by
// itself.
// The failover is then acknowledged (regentctl ack).
func TestMaintenanceBlocksPromotionAndExpiresThenTheFailoverIsAcknowledged(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k)
		h.waitRecorded()
		p, r1, r2 := h.db.Primary, h.db.Replicas[0], h.db.Replicas[1]
		ctx := context.Background()
		leader := h.agents[h.leader()]
		instanceOf := h.instance
		// A short maintenance of r2 ends by itself.
		if _, err := leader.API().StartMaintenance(ctx, "main", r2.Name, api.MaintenanceRequest{Reason: "short", For: api.Duration(time.Second)}); err != nil {
			t.Fatal(err)
		}
		if instanceOf(r2.Name).Maintenance == nil {
			t.Fatalf("%s not shown in maintenance after it started", r2.Name)
		}
		h.eventually(r2.Name+"'s maintenance ends by itself", 10*time.Second, func() (bool, string) {
			in := instanceOf(r2.Name)
			return in.Maintenance == nil, fmt.Sprint(in.Maintenance)
		})
		if _, err := leader.API().StartMaintenance(ctx, "main", p.Name, api.MaintenanceRequest{Reason: "r", For: api.Duration(time.Hour)}); !errors.Is(err, apiserver.ErrConflict) {
			t.Fatalf("maintenance of the primary: %v, want a conflict", err)
		}

		// r1 is the most advanced replica, and in maintenance.
		r1Ahead(t, k, p, r1, r2)
		if _, err := leader.API().StartMaintenance(ctx, "main", r1.Name, api.MaintenanceRequest{Reason: "disk swap", For: api.Duration(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		h.eventually(r1.Name+"'s agent answers 503 on /replica", 10*time.Second, func() (bool, string) {
			s, err := h.agents[1].API().HealthState(ctx)
			d := proxyhook.Decide(proxyhook.CheckReplica, s, proxyhook.HealthQuery{})
			return err == nil && s.Instance == r1.Name && d.Status == 503 && strings.Contains(d.Reason, "in maintenance"), fmt.Sprintf("%v %+v", err, d)
		})
		p.Kill(t)
		e := h.waitOp(consensus.KindFailover, 0, 30*time.Second)
		if e.Result != consensus.ResultSuccess || e.NewPrimary != r2.Name {
			t.Fatalf("failover: %s (%s) to %q, want %s (%s is in maintenance); steps %s", e.Result, e.Reason, e.NewPrimary, r2.Name, r1.Name, stepNames(e))
		}
		if got := r2.QueryString(t, "SELECT COUNT(*) FROM regent_test.writes WHERE id IN (1, 2)"); got != "2" {
			t.Fatalf("promoted %s has %s of the 2 rows: %s's data did not count", r2.Name, got, r1.Name)
		}

		// The failover waits for an operator's acknowledgement.
		leader = h.agents[h.leader()]
		h.eventually("the failover listed as unacknowledged", 10*time.Second, func() (bool, string) {
			c, err := leader.API().Cluster(ctx, "main")
			return err == nil && len(c.Unacknowledged) == 1 && c.Unacknowledged[0].ID == e.ID, fmt.Sprintf("%v %+v", err, c.Unacknowledged)
		})
		op, err := leader.API().Ack(ctx, "main", e.ID, api.AckRequest{Comment: "p was killed by the test"})
		if err != nil || op.Ack == nil || op.Ack.Comment != "p was killed by the test" {
			t.Fatalf("ack: %v %+v", err, op.Ack)
		}
		if c, _ := leader.API().Cluster(ctx, "main"); len(c.Unacknowledged) != 0 {
			t.Fatalf("still unacknowledged after the ack: %+v", c.Unacknowledged)
		}
		if _, err := leader.API().Ack(ctx, "main", e.ID, api.AckRequest{}); !errors.Is(err, apiserver.ErrConflict) {
			t.Fatalf("second ack: %v, want a conflict", err)
		}
	})
}

// With semi_sync, Regent configures lossless semi-synchronous replication
// itself, and a primary killed under writes loses no acknowledged write.
func TestSemiSyncKillUnderWritesLosesNoAcknowledgedWrite(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k, func(c *config.Config) { c.Clusters[0].Durability = "semi_sync" })
		h.waitRecorded()
		p := h.db.Primary
		h.eventually("semi-sync enforced on the primary", 20*time.Second, func() (bool, string) {
			on := p.QueryString(t, "SELECT @@"+semiSyncVar(k)+"_enabled")
			wp := p.QueryString(t, "SELECT @@"+semiSyncVar(k)+"_wait_point")
			to := p.QueryString(t, "SELECT @@"+semiSyncVar(k)+"_timeout")
			return on == "1" && wp == "AFTER_SYNC" && to == "4294967295", "enabled=" + on + " wait_point=" + wp + " timeout=" + to
		})
		checkLossless(t, k, p)
		w := mysqltest.NewWriter(p.Addr(), k, 100000, time.Millisecond)
		w.Start(context.Background())
		defer w.Stop()
		w.WaitAcked(t, 100, 30*time.Second)
		p.Kill(t)
		e := h.waitOp(consensus.KindFailover, 0, 30*time.Second)
		w.Stop()
		if e.Result != consensus.ResultSuccess {
			t.Fatalf("failover: %s (%s); steps %s", e.Result, e.Reason, stepNames(e))
		}
		var np *mysqltest.Server
		for _, r := range h.db.Replicas {
			if r.Name == e.NewPrimary {
				np = r
			}
		}
		if m := w.Missing(t, np); len(m) != 0 {
			t.Fatalf("%d acknowledged writes lost by the failover to %s, e.g. %v", len(m), np.Name, m[:min(5, len(m))])
		}
		t.Logf("%d writes acknowledged before the kill, none lost", len(w.Acked()))
		// The promoted primary is lossless from its first commit (issue 9,
		// defect 3): SHOW GLOBAL VARIABLES says so.
		checkLossless(t, k, np)
	})
}

// checkLossless asserts a primary's lossless semi-sync settings.
func checkLossless(t *testing.T, k mysqltest.Kind, s *mysqltest.Server) {
	t.Helper()
	v := semiSyncVar(k)
	noReplica := "_wait_no_slave"
	if k == mysqltest.MySQL {
		noReplica = "_wait_no_replica"
	}
	got := map[string]string{}
	for _, name := range []string{"_enabled", "_wait_point", "_timeout", noReplica} {
		got[name] = s.QueryString(t, "SELECT @@GLOBAL."+v+name)
	}
	want := map[string]string{"_enabled": "1", "_wait_point": "AFTER_SYNC", "_timeout": "4294967295", noReplica: "1"}
	if k == mysqltest.MySQL {
		got["_wait_for_replica_count"] = s.QueryString(t, "SELECT @@GLOBAL."+v+"_wait_for_replica_count")
		want["_wait_for_replica_count"] = "1"
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("lossless semi-sync on %s: %s%s=%s, want %s", s.Name, v, name, got[name], w)
		}
	}
}

func semiSyncVar(k mysqltest.Kind) string {
	if k == mysqltest.MySQL {
		return "rpl_semi_sync_source"
	}
	return "rpl_semi_sync_master"
}

// The preflight reports what is wrong with a fix, and what is right as ok.
func TestCheckFindings(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k)
		h.waitRecorded()
		w := replicaWord(k)
		// r1 restarted with another report_host than the address the
		// configuration gives it (first: a restart loses the SET GLOBALs
		// below).
		h.db.Replicas[0].RestartWith(t, "--report-host=db2.old.example")
		mysqltest.WaitReplicating(t, h.db.Replicas[0], 30*time.Second)
		if k == mysqltest.MySQL {
			// super_read_only off on r1, on on r2.
			h.db.Replicas[0].Exec(t, "SET GLOBAL super_read_only=OFF")
			h.db.Replicas[1].Exec(t, "SET GLOBAL super_read_only=ON")
		}
		h.db.Replicas[1].Exec(t, "STOP "+w+" SQL_THREAD", "SET GLOBAL binlog_format=STATEMENT", "START "+w+" SQL_THREAD")
		netTimeout := "slave_net_timeout"
		if k == mysqltest.MySQL {
			netTimeout = "replica_net_timeout"
		}
		h.db.Replicas[0].Exec(t, "SET GLOBAL "+netTimeout+"=4")
		// Regent's account loses SHUTDOWN everywhere: revoked on the
		// primary, the revoke replicates.
		for _, host := range strings.Split(h.db.Primary.QueryString(t, "SELECT GROUP_CONCAT(host) FROM mysql.user WHERE user = '"+mysqltest.AdminUser+"'"), ",") {
			h.db.Primary.Exec(t, "REVOKE SHUTDOWN ON *.* FROM '"+mysqltest.AdminUser+"'@'"+host+"'")
		}
		for _, r := range h.db.Replicas {
			mysqltest.WaitCaughtUp(t, r, h.db.Primary, 30*time.Second)
		}
		a := h.agents[0]
		var rep api.CheckReport
		h.eventually("findings for every instance", 10*time.Second, func() (bool, string) {
			var err error
			rep, err = a.API().Check(context.Background(), "main")
			ok := 0
			for _, f := range rep.Findings {
				if f.Check == "reachable" && f.Severity == api.SeverityOK {
					ok++
				}
			}
			return err == nil && ok == 3, fmt.Sprintf("%+v %v", rep.Findings, err)
		})
		var found, shortTimeout bool
		checks, noShutdown := map[string]int{}, map[string]bool{}
		for _, f := range rep.Findings {
			checks[f.Instance]++
			switch {
			case f.Check == "report_host" && (f.Instance == "r1") != (f.Severity != api.SeverityOK):
				t.Errorf("report_host finding %+v: want a warning on r1 alone (restarted with another --report-host)", f)
			case f.Check == "report_host" && f.Instance == "r1" && !strings.Contains(f.Message, "db2.old.example"):
				t.Errorf("report_host finding %+v does not name what r1 reports", f)
			case f.Check == "super_read_only" && k == mysqltest.MySQL && (f.Instance == "r1") != (f.Severity == api.SeverityWarning):
				t.Errorf("super_read_only finding %+v: want a warning on r1 alone (OFF there, ON on r2, p the primary)", f)
			case f.Check == "super_read_only" && k == mysqltest.MariaDB && f.Severity != api.SeverityOK:
				t.Errorf("super_read_only finding on MariaDB: %+v", f)
			}
			if f.Severity == api.SeverityOK {
				continue
			}
			if f.Check == "grants" {
				noShutdown[f.Instance] = f.Severity == api.SeverityWarning && strings.Contains(f.Message, "lacks SHUTDOWN") && strings.Contains(f.Fix, "GRANT SHUTDOWN ON *.*")
			}
			if f.Check == "binlog_format" {
				found = f.Instance == "r2" && f.Severity == api.SeverityWarning && f.Fix != ""
			}
			if f.Check == "replica_net_timeout" {
				if f.Instance != "r1" || f.Severity != api.SeverityWarning || !strings.Contains(f.Fix, "=15") {
					t.Errorf("replica_net_timeout finding: %+v, want a warning on r1 only, with the fix", f)
				}
				shortTimeout = true
			}
			if f.Severity == api.SeverityError {
				t.Errorf("unexpected error finding: %+v", f)
			}
		}
		if !found {
			t.Fatalf("binlog_format=STATEMENT on r2 not reported with a fix: %+v", rep.Findings)
		}
		if !shortTimeout {
			t.Errorf("%s=4 on r1 not reported: %+v", netTimeout, rep.Findings)
		}
		// Every check is listed for every instance, ok ones included.
		for _, n := range []string{"p", "r1", "r2"} {
			if checks[n] != 13 {
				t.Errorf("%s: %d findings, want one per check (13): %+v", n, checks[n], rep.Findings)
			}
			if !noShutdown[n] {
				t.Errorf("%s: the revoked SHUTDOWN is not reported with its GRANT: %+v", n, rep.Findings)
			}
		}
		if _, err := a.API().Check(context.Background(), "nope"); err == nil || !strings.Contains(err.Error(), "main") {
			t.Fatalf("unknown cluster: %v (want an error naming the configured clusters)", err)
		}
	})
}

// The preflight's findings about a primary that is not lossless, on real
// servers: durability semi_sync, the cluster paused so that nothing repairs
// it, the primary's semi-sync timeout shortened (and on MySQL its wait
// count raised above semi_sync_wait_for): reported with the fix.
func TestCheckFindsAPrimaryThatIsNotLossless(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k, func(c *config.Config) { c.Clusters[0].Durability = "semi_sync" })
		h.waitRecorded()
		h.waitLossless(k)
		ctx := context.Background()
		if _, err := h.agents[h.leader()].API().Pause(ctx, "main", api.PauseRequest{Reason: "preflight test"}); err != nil {
			t.Fatal(err)
		}
		v := semiSyncVar(k)
		stmts := []string{"SET GLOBAL " + v + "_timeout=10000"}
		says := []string{"not lossless", "a timeout of 10s"}
		if k == mysqltest.MySQL {
			stmts = append(stmts, "SET GLOBAL "+v+"_wait_for_replica_count=2")
			says = append(says, "it waits for 2 acknowledgements, semi_sync_wait_for is 1")
		}
		h.db.Primary.Exec(t, stmts...)
		h.eventually("the primary's semi-sync finding", 10*time.Second, func() (bool, string) {
			rep, err := h.agents[0].API().Check(ctx, "main")
			for _, f := range rep.Findings {
				if f.Check != "semi_sync" || f.Instance != "p" {
					continue
				}
				ok := f.Severity == api.SeverityWarning && f.Fix != ""
				for _, w := range says {
					ok = ok && strings.Contains(f.Message, w)
				}
				return ok, fmt.Sprintf("%+v", f)
			}
			return false, fmt.Sprintf("no semi_sync finding for p (%v): %+v", err, rep.Findings)
		})
	})
}

// A frozen primary (SIGSTOP: its agent is healthy, the port accepts but
// nothing answers) is replaced once the probes time out and the replicas
// stop receiving; when it wakes, its own agent sees the epoch moved on and
// keeps it read-only.
func TestFrozenPrimaryIsReplacedAndStaysReadOnlyOnWake(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k)
		h.waitRecorded()
		p := h.db.Primary
		p.Exec(t, "INSERT INTO regent_test.writes (id) VALUES (1)")
		// Replicated before the freeze: with async durability a write the
		// replicas never got would make p errant (and quarantined) on wake.
		for _, r := range h.db.Replicas {
			mysqltest.WaitCaughtUp(t, r, p, 30*time.Second)
		}
		p.Pause(t)
		e := h.waitOp(consensus.KindFailover, 0, 60*time.Second)
		if e.Result != consensus.ResultSuccess || e.NewPrimary == "p" {
			p.Resume(t)
			t.Fatalf("failover of a frozen primary: %s (%s) to %q; steps %s", e.Result, e.Reason, e.NewPrimary, stepNames(e))
		}
		p.Resume(t)
		h.eventually("woken old primary read-only", 20*time.Second, func() (bool, string) {
			ro := p.QueryString(t, "SELECT @@read_only")
			return ro == "1", "read_only=" + ro
		})
		h.eventually("woken old primary rejoined", 30*time.Second, func() (bool, string) {
			io, sqlT, e := mysqltest.ReplicaThreads(t, p)
			return io == "Yes" && sqlT == "Yes", fmt.Sprintf("IO=%s SQL=%s %s", io, sqlT, e)
		})
		h.checkEpochsGrow()
	})
}

// The Raft leader dies in the middle of a failover (held up by a slow
// pre-failover hook): a new leader is elected, aborts the abandoned operation
// at once instead of waiting operation_timeout, and fails over itself.
func TestLeaderKilledMidFailover(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		slowHook := func(c *config.Config) {
			c.Clusters[0].Routing.Hooks = []proxyhook.HookConfig{{Name: "slow", Command: []string{"/bin/sleep", "2"},
				Events: []proxyhook.HookEvent{proxyhook.EventPreFailover}, Timeout: 10 * time.Second}}
		}
		h := newHarness(t, k, slowHook)
		h.waitRecorded()
		// Whichever agent leads is killed; two of three keep the quorum.
		leader := h.leader()
		p := h.db.Primary
		p.Kill(t)
		h.eventually("failover in progress", 20*time.Second, func() (bool, string) {
			c := h.cluster()
			return c.Operation != nil && c.Operation.Kind == consensus.KindFailover, fmt.Sprintf("%+v", c.Operation)
		})
		abandoned := h.cluster().Operation.ID
		h.stop(leader)
		var e consensus.HistoryEntry
		h.eventually("a new leader's failover succeeded", 60*time.Second, func() (bool, string) {
			c := h.cluster()
			for _, he := range c.History {
				if he.Kind == consensus.KindFailover && he.Result == consensus.ResultSuccess {
					e = he
					return true, ""
				}
			}
			return false, fmt.Sprintf("primary %s epoch %d history %d", c.Primary, c.Epoch, len(c.History))
		})
		if e.ID == abandoned {
			t.Fatalf("the abandoned operation %s finished as a success after its leader died", abandoned)
		}
		var aborted bool
		for _, he := range h.cluster().History {
			aborted = aborted || he.ID == abandoned && he.Result == consensus.ResultAborted
		}
		if !aborted {
			t.Fatalf("abandoned operation %s not recorded as aborted: %+v", abandoned, h.cluster().History)
		}
		if c := h.cluster(); c.Epoch != 2 || c.Primary == "p" {
			t.Fatalf("after the take-over: primary %s epoch %d", c.Primary, c.Epoch)
		}
	})
}

// Issue 10 item 4: the balancers' health checks see a change of primary
// when it happens, not at the agent's next probe. The primary an operation
// replaces answers 503 on /primary from the recorded intent on (before its
// fence); the promoted instance answers 200 from the commit on, although
// its agent's last probe, taken before the promotion, saw it read-only.
func TestHealthFollowsTheReplicatedStateAtOnce(t *testing.T) {
	now := time.Now()
	c := &clusterRT{name: "main", local: "p", policy: failover.DefaultPolicy(), clock: clock{}}
	primaryProbe := Observation{ObservedAt: now, Reachable: true, epoch: 1}
	readOnlyProbe := func(epoch uint64) Observation {
		return Observation{ObservedAt: now, Reachable: true, ReadOnly: true, epoch: epoch}
	}
	op := func(kind consensus.OpKind, committed bool) *consensus.Operation {
		return &consensus.Operation{ID: "op1", Kind: kind, OldPrimary: "p", EpochBefore: 1, CommitEpoch: 2, Committed: committed}
	}
	cases := []struct {
		name   string
		o      Observation
		st     consensus.Cluster
		status int
		reason string
	}{
		{"the primary, nothing in progress", primaryProbe, consensus.Cluster{Primary: "p", Epoch: 1}, 200, "primary of epoch 1"},
		{"a switchover's intent names it the old primary", primaryProbe,
			consensus.Cluster{Primary: "p", Epoch: 1, Operation: op(consensus.KindSwitchover, false)}, 503, "being replaced (switchover op1)"},
		{"a failover's intent names it the old primary", primaryProbe,
			consensus.Cluster{Primary: "p", Epoch: 1, Operation: op(consensus.KindFailover, false)}, 503, "being replaced (failover op1)"},
		{"a rejoin of another instance does not replace it", primaryProbe,
			consensus.Cluster{Primary: "p", Epoch: 1, Operation: op(consensus.KindRejoin, false)}, 200, "primary of epoch 1"},
		{"promoted and committed, probed read-only before the commit", readOnlyProbe(1),
			consensus.Cluster{Primary: "p", Epoch: 2, Operation: &consensus.Operation{ID: "op1", Kind: consensus.KindSwitchover, OldPrimary: "q", Committed: true}}, 200, "primary of epoch 2"},
		{"probed read-only in its own epoch: fenced", readOnlyProbe(2), consensus.Cluster{Primary: "p", Epoch: 2}, 503, "read-only"},
		{"not the primary: a probe's epoch changes nothing", readOnlyProbe(1), consensus.Cluster{Primary: "q", Epoch: 2}, 503, "not the primary of epoch 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s proxyhook.LocalState
			fillHealth(&s, c, tc.o, &tc.st)
			d := proxyhook.Decide(proxyhook.CheckPrimary, s, proxyhook.HealthQuery{})
			if d.Status != tc.status || !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("/primary = %d %q, want %d containing %q", d.Status, d.Reason, tc.status, tc.reason)
			}
		})
	}
}

// Issue 10 item 4: a switchover's reported write-blocked window runs up to
// what the balancers' clients can see. With a balancer that routes by
// health checks alone, that is when its declared check timings say it must
// have moved the route, counted from the intent (the old primary's
// /primary turned 503) and the commit (the new one's turned 200).
func TestSwitchoverWindowRunsUpToTheBalancers(t *testing.T) {
	ms := time.Millisecond
	t0 := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	res := failover.RunResult{IntentAt: t0, BlockedAt: t0.Add(10 * ms), RoutedAt: t0.Add(60 * ms), CommittedAt: t0.Add(70 * ms), WriteBlocked: 50 * ms}
	deploy := proxyhook.HealthCheckConfig{Name: "lb1", Inter: 500 * ms, FastInter: 200 * ms, DownInter: 250 * ms, Fall: 2, Rise: 1}
	fast := proxyhook.HealthCheckConfig{Name: "lb2", Inter: 20 * ms, Fall: 1, Rise: 1}
	cases := []struct {
		name    string
		routing *proxyhook.ClusterRouting
		res     failover.RunResult
		want    time.Duration
		until   string
	}{
		{"nothing declared: Regent's own steps, said so", nil, res, 50 * ms, "no balancer is pushed to or declared"},
		{"pull balancer: the old primary's fall decides (intent + 500ms/2 + 200ms)", &proxyhook.ClusterRouting{HealthChecks: []proxyhook.HealthCheckConfig{deploy}}, res,
			440 * ms, "lb1's checks, expected (at worst 250ms later)"},
		{"the slowest of two balancers", &proxyhook.ClusterRouting{HealthChecks: []proxyhook.HealthCheckConfig{fast, deploy}}, res, 440 * ms, "lb1's checks"},
		{"fast checks: the new primary's first check after the commit decides", &proxyhook.ClusterRouting{HealthChecks: []proxyhook.HealthCheckConfig{fast}}, res, 70 * ms, "lb2's checks"},
		{"undone before a commit: the runner's window", &proxyhook.ClusterRouting{HealthChecks: []proxyhook.HealthCheckConfig{deploy}},
			failover.RunResult{IntentAt: t0, BlockedAt: t0.Add(10 * ms), WriteBlocked: 30 * ms}, 30 * ms, "no balancer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &clusterRT{routing: tc.routing, clock: clock{}}
			got, until := c.balancerWindow(tc.res)
			if got != tc.want || !strings.Contains(until, tc.until) {
				t.Errorf("window %v (until %q), want %v (until …%q…)", got, until, tc.want, tc.until)
			}
		})
	}
}

// resumedWindow's rules on a finished watch: the window runs to the first
// commit seen, never ends before the route, and keeps the route's figure
// when no commit came or nothing was routed.
func TestResumedWindowRules(t *testing.T) {
	const ms = time.Millisecond
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	routed := failover.RunResult{Committed: true, NewPrimary: "db2", BlockedAt: t0, RoutedAt: t0.Add(50 * ms), WriteBlocked: 50 * ms}
	seen := func(at time.Time) *commitWatch {
		w := &commitWatch{cancel: func() {}, done: make(chan struct{}), at: at}
		close(w.done)
		return w
	}
	cases := []struct {
		name  string
		res   failover.RunResult
		w     *commitWatch
		want  time.Duration
		until string
	}{
		{"a commit 20ms after the route ends the window there", routed, seen(t0.Add(70 * ms)), 70 * ms, "the first commit on db2, observed 20ms after the route (pushed: 50ms)"},
		{"a commit before the route (a direct client) ends it at the route", routed, seen(t0.Add(30 * ms)), 50 * ms, "observed 0s after the route"},
		{"no commit: the route's figure, said so", routed, seen(time.Time{}), 50 * ms, "pushed; no commit on db2 was seen within 250ms after that"},
		{"not committed: the runner's window", failover.RunResult{BlockedAt: t0, WriteBlocked: 30 * ms}, seen(t0.Add(70 * ms)), 30 * ms, "pushed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &clusterRT{clock: clock{}}
			got, until := c.resumedWindow(tc.w, tc.res, tc.res.WriteBlocked, "pushed")
			if got != tc.want || !strings.Contains(until, tc.until) {
				t.Errorf("window %v (until %q), want %v (until …%q…)", got, until, tc.want, tc.until)
			}
		})
	}
}
