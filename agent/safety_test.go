package agent

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/config"
	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/topology/mysqltest"
)

// Issue 9, defect 9: a unix socket file deleted under a serving mysqld (tmp
// cleaners do this) was classed "refused", which is the fast path's evidence
// that mysqld is gone: a false failover. Only a refused TCP connection to the
// instance's address counts; a missing or refusing socket is re-checked over
// TCP.
func TestDeletedSocketFileIsNotMysqldGone(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		s := mysqltest.Start(t, k)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		dial := func() (failover.LocalState, string) {
			state, detail, conn := localDial(ctx, "unix", s.Socket(), s.Addr(), 300*time.Millisecond)
			if conn != nil {
				_ = conn.Close()
			}
			return state, detail
		}
		if st, d := dial(); st != failover.LocalRunning {
			t.Fatalf("serving mysqld with its socket: %s (%s), want running", st, d)
		}
		if err := os.Remove(s.Socket()); err != nil {
			t.Fatal(err)
		}
		if st, d := dial(); st != failover.LocalRunning {
			t.Fatalf("serving mysqld whose socket file was deleted: %s (%s), want running", st, d)
		}
		// A stale socket file that refuses (left by a mysqld that moved it)
		// is not evidence either while TCP answers.
		if err := os.WriteFile(s.Socket(), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if st, d := dial(); st == failover.LocalGone {
			t.Fatalf("serving mysqld behind a stale socket file: %s (%s)", st, d)
		}
		s.Kill(t)
		if st, d := dial(); st != failover.LocalGone {
			t.Fatalf("killed mysqld: %s (%s), want gone", st, d)
		}
	})
}

// Issue 9, defect 7: with only its Raft port cut, the primary's agent fences
// itself, but its reports kept refreshing "last heard" on the leader, so the
// lease never lapsed there and nothing was promoted: a permanent write
// outage. The leader counts the lease from Raft contact alone.
func TestRaftOnlyPartitionOfThePrimarysAgentFailsOver(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k, func(c *config.Config) { c.Clusters[0].FastPath = false })
		h.eventually("primary writable under a held lease", 15*time.Second, func() (bool, string) {
			c := h.cluster()
			return c.Primary == "p" && c.Epoch == 1 && h.db.Primary.QueryString(t, "SELECT @@read_only") == "0",
				fmt.Sprintf("primary %q epoch %d", c.Primary, c.Epoch)
		})
		h.isolateRaft(0)
		h.eventually("a replica promoted in epoch 2", 30*time.Second, func() (bool, string) {
			c, _ := h.nodes[1].State().Cluster("main")
			return c.Epoch == 2 && c.Primary != "p" && c.Operation == nil, fmt.Sprintf("primary %q epoch %d operation %v", c.Primary, c.Epoch, c.Operation)
		})
		if ro := h.db.Primary.QueryString(t, "SELECT @@read_only"); ro != "1" {
			t.Fatalf("old primary read_only=%s after the failover", ro)
		}
	})
}

// Issue 9, defect 3: with the server's default semi-sync timeout (10 s) a
// replica outage longer than that made the primary commit asynchronously,
// silently, and a later failover lost those writes. Regent keeps a timeout
// the server never reaches: a commit made while no replica can acknowledge
// stays blocked — never acknowledged to its client — past the old default,
// and completes when a replica is back.
func TestSemiSyncReplicaOutageLeavesCommitsBlocked(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k, func(c *config.Config) { c.Clusters[0].Durability = "semi_sync" })
		h.waitRecorded()
		p := h.db.Primary
		h.waitLossless(k)
		// Both replicas stop acknowledging: frozen, their connections open.
		for _, r := range h.db.Replicas {
			r.Pause(t)
		}
		resumed := false
		resume := func() {
			if !resumed {
				for _, r := range h.db.Replicas {
					r.Resume(t)
				}
				resumed = true
			}
		}
		defer resume()
		app := appDB(t, p)
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			_, err := app.Exec("INSERT INTO regent_test.writes (id) VALUES (7)")
			done <- err
		}()
		select {
		case err := <-done:
			t.Fatalf("a commit no replica acknowledged returned after %v (err %v): the primary fell back to asynchronous", time.Since(start), err)
		case <-time.After(12 * time.Second): // the server default is 10 s
		}
		resume()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("the blocked commit failed once a replica was back: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("the blocked commit never completed after the replicas came back")
		}
	})
}

// Issue 9, defect 8: an operation recorded in Raft that no run owns (an
// intent whose proposal timed out but committed later, a failed finish, a
// leader that lost a tryLock race at takeover) blocked every automatic action
// for operation_timeout: a dead primary stayed unreplaced for minutes. Every
// evaluation now aborts such an operation at once.
func TestOrphanedOperationIsAbortedAtOnce(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k, func(c *config.Config) { c.Clusters[0].OperationTimeout = 10 * time.Minute })
		st := h.waitRecorded()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := h.nodes[h.leader()].Propose(ctx, consensus.BeginOperation{Cluster: "main", OperationID: "orphan-1",
			Kind: consensus.KindFailover, ExpectEpoch: st.Epoch, Trigger: "test: an intent whose run gave up before it committed", At: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		h.eventually("the orphan aborted", 10*time.Second, func() (bool, string) {
			c := h.cluster()
			for _, e := range c.History {
				if e.ID == "orphan-1" {
					return c.Operation == nil && e.Result == consensus.ResultAborted, fmt.Sprintf("result %s: %s", e.Result, e.Reason)
				}
			}
			return false, fmt.Sprintf("operation %v in progress", c.Operation)
		})
		// Automation is not blocked: a dead primary is replaced.
		after := len(h.cluster().History)
		h.db.Primary.Kill(t)
		e := h.waitOp(consensus.KindFailover, after, 30*time.Second)
		if e.Result != consensus.ResultSuccess {
			t.Fatalf("failover after the orphan: %s (%s)", e.Result, e.Reason)
		}
	})
}

// Issue 9, defect 5 (in part): a new leader relied on the routes its
// predecessor pushed, and a deposed leader's late push (a planned route of
// an operation that never committed) stayed in place. The leader now pushes
// the committed primary's route on taking over and every reconcile period,
// so a stray route is overwritten. (The balancer here is the recording fake
// of the harness; the race over a real HAProxy is in proxyhook's
// TestDeposedLeaderCannotRouteOverItsSuccessor.)
func TestLeaderReconcilesTheWriteRoute(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k)
		h.waitRecorded()
		last := func() string {
			ev, _ := h.router.seen()
			if len(ev) == 0 {
				return ""
			}
			return ev[len(ev)-1]
		}
		h.eventually("the leader routed the committed primary on taking over", 10*time.Second, func() (bool, string) {
			return last() == "route p epoch 1", last()
		})
		// A deposed leader's stray push: r1 routed at the committed epoch,
		// with a token from its days as leader (the recording balancer
		// here keeps no tokens; proxyhook's tests show real ones refuse).
		stray := h.agents[(h.leader()+1)%3].rts()["main"]
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := (routerAdapter{c: stray, tok: newRouteToken(1)}).RouteWrites(ctx, "main", "r1", 1); err != nil {
			t.Fatal(err)
		}
		if last() != "route r1 epoch 1" {
			t.Fatalf("the stray push was not recorded: %s", last())
		}
		h.eventually("the stray route overwritten by the committed one", 15*time.Second, func() (bool, string) {
			return last() == "route p epoch 1", last()
		})
		// A new leader reconciles at once (if the old one was p's agent, a
		// failover of p follows lease_timeout later; the push comes first).
		// Its token is no lower than any the old leader pushed with (equal:
		// the same replicated state, so the same route), so a balancer that
		// keeps tokens refuses nothing it sends and every stray push older
		// than the state it read.
		ev, _ := h.router.seen()
		n := len(ev)
		before := slices.Max(h.router.seenTokens())
		h.stop(h.leader())
		h.eventually("the new leader routed the committed primary", 10*time.Second, func() (bool, string) {
			ev, _ := h.router.seen()
			return slices.Contains(ev[n:], "route p epoch 1"), fmt.Sprint(ev[n:])
		})
		tokens := h.router.seenTokens()[n:]
		if slices.Min(tokens) < before || slices.Min(tokens) <= 1 {
			t.Fatalf("the new leader pushed with tokens %v, below the old leader's %d or the stray push's 1", tokens, before)
		}
	})
}

// Issue 9, defect 6: a writable primary that the balancers do not route to
// is not Healthy. The leader's periodic route push fails; the status names
// PrimaryNotRouted with the balancer's error until a push succeeds again.
func TestUnroutedPrimaryIsNotHealthy(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k)
		h.waitRecorded()
		// notRouted returns PrimaryNotRouted's reason ("" when absent) and
		// every problem code, as the leader's status shows them.
		notRouted := func() (string, []string, error) {
			c, err := h.agents[h.leader()].API().Cluster(context.Background(), "main")
			if err != nil {
				return "", nil, err
			}
			reason, codes := "", []string{}
			for _, p := range c.Problems {
				codes = append(codes, p.Code)
				if p.Code == string(failover.PrimaryNotRouted) {
					reason = p.Reason
				}
			}
			return reason, codes, nil
		}
		h.router.refuseRoutes(errors.New("balancer lb1 refused the change"))
		h.eventually("PrimaryNotRouted reported while the route pushes fail", 30*time.Second, func() (bool, string) {
			reason, codes, err := notRouted()
			return err == nil && strings.Contains(reason, "balancer lb1 refused the change") && !slices.Contains(codes, "Healthy"),
				fmt.Sprintf("%q %v %v", reason, codes, err)
		})
		h.router.refuseRoutes(nil)
		h.eventually("the problem gone once the balancer takes the route", 30*time.Second, func() (bool, string) {
			reason, codes, err := notRouted()
			return err == nil && reason == "", fmt.Sprintf("%q %v %v", reason, codes, err)
		})
	})
}

// Issue 9, defect 8: the leader runs each cluster's operations on their own
// goroutine, so one cluster's failover never waits for another's operation.
// Cluster "other" has a switchover held after its first step (the halt hook
// blocks instead of halting); meanwhile main's primary is killed and its
// failover must complete, with other's switchover still in progress.
func TestOneClustersFailoverNeverWaitsForAnothers(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		other := mysqltest.StartCluster(t, k, 2)
		mysqltest.EnsureTable(t, other.Primary)
		h := newHarness(t, k, withCluster("other", "o", other))
		h.waitRecorded()
		h.eventually("cluster other recorded with op as primary", 15*time.Second, func() (bool, string) {
			c := h.clusterNamed("other")
			return c.Primary == "op" && c.Epoch == 1, fmt.Sprintf("primary %q epoch %d", c.Primary, c.Epoch)
		})
		release := make(chan struct{})
		released := sync.OnceFunc(func() { close(release) })
		t.Cleanup(released)
		held := make(chan string, 1)
		h.mu.Lock()
		h.halt = func(_ int, ev failover.StepEvent) bool {
			if ev.Cluster != "other" {
				return false
			}
			select {
			case held <- string(ev.Step.Kind):
			default:
			}
			<-release
			return false
		}
		h.mu.Unlock()
		h.switchover("other", "or1")
		select {
		case step := <-held:
			t.Logf("other's switchover held after step %s", step)
		case <-time.After(30 * time.Second):
			t.Fatal("other's switchover never reached its first step")
		}
		h.db.Primary.Kill(t)
		e := h.waitOp(consensus.KindFailover, 0, 30*time.Second)
		if e.Result != consensus.ResultSuccess {
			t.Fatalf("main's failover: %s (%s); steps %s", e.Result, e.Reason, stepNames(e))
		}
		if op := h.clusterNamed("other").Operation; op == nil || op.Kind != consensus.KindSwitchover {
			t.Fatalf("other's switchover is no longer in progress (%+v): the test did not overlap the two", op)
		}
		released()
	})
}

// Issue 9, defect 3: a fallback to asynchronous commits happens only as
// Regent's own decision, under semi_sync_fallback, recorded in Raft and the
// history before any commit is acknowledged without a replica; semi-sync is
// restored, and recorded, when an acknowledger is back.
func TestSemiSyncFallbackIsARecordedDecision(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k, func(c *config.Config) {
			c.Clusters[0].Durability = "semi_sync"
			c.Clusters[0].SemiSyncFallback = 3 * time.Second
		})
		h.waitRecorded()
		h.waitLossless(k)
		p := h.db.Primary
		// No replica acknowledges any more: their IO threads stop (Regent
		// restarts no IO thread an operator stopped).
		setReplicas := func(verb string) {
			for _, r := range h.db.Replicas {
				r.Exec(t, verb+" "+replicaWord(k)+" IO_THREAD")
			}
		}
		setReplicas("STOP")
		app := appDB(t, p)
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			_, err := app.Exec("INSERT INTO regent_test.writes (id) VALUES (9)")
			done <- err
		}()
		var err error
		select {
		case err = <-done:
		case <-time.After(60 * time.Second):
			t.Fatalf("the blocked commit was never released by the fallback")
		}
		if err != nil {
			t.Fatalf("commit after the fallback: %v", err)
		}
		if took := time.Since(start); took < 3*time.Second {
			t.Fatalf("the commit returned after %v, before semi_sync_fallback (3s)", took)
		}
		// The decision was in Raft before the commit was acknowledged.
		c := h.cluster()
		if c.SemiSyncDegraded == nil {
			t.Fatalf("commit acknowledged without a replica, and no degradation recorded")
		}
		h.eventually("the fallback in the history", 10*time.Second, func() (bool, string) {
			for _, e := range h.cluster().History {
				if e.Kind == consensus.KindSemiSyncFallback && e.Result == consensus.ResultSuccess {
					return true, ""
				}
			}
			return false, "not yet"
		})
		// An acknowledger is back: lossless again, and recorded.
		setReplicas("START")
		h.eventually("semi-sync restored", 30*time.Second, func() (bool, string) {
			c := h.cluster()
			restored := false
			for _, e := range c.History {
				restored = restored || e.Kind == consensus.KindSemiSyncRestore && e.Result == consensus.ResultSuccess
			}
			return c.SemiSyncDegraded == nil && restored, fmt.Sprintf("degraded %v, %d history entries", c.SemiSyncDegraded, len(c.History))
		})
		checkLossless(t, k, p)
	})
}

// Issue 9, "also decide": the primary's agent down for longer than
// lease_timeout while the primary is healthy. Decided: Regent fails over.
// Without its agent nothing enforces the lease on that host, so a later
// cut would leave a writer nobody can fence; while the leader still reaches
// the old primary it fences it directly and promotes another. Planned agent
// maintenance pauses the cluster first (README "Restarting agents").
func TestPrimaryAgentDownFailsOverWithADirectFence(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k)
		h.waitRecorded()
		h.stop(0) // p's agent
		e := h.waitOp(consensus.KindFailover, 0, 30*time.Second)
		if e.Result != consensus.ResultSuccess || e.NewPrimary == "p" {
			t.Fatalf("failover: %s (%s) to %s; steps %s", e.Result, e.Reason, e.NewPrimary, stepNames(e))
		}
		if !strings.Contains(stepNames(e), "fence-old-primary") {
			t.Fatalf("the old primary was not fenced: %s", stepNames(e))
		}
		if ro := h.db.Primary.QueryString(t, "SELECT @@read_only"); ro != "1" {
			t.Fatalf("old primary p writable after the failover (read_only=%s)", ro)
		}
	})
}

// Issue 9, "also decide": a MariaDB replica rebuilt from a backup (RESET
// MASTER, replication resumed from gtid_slave_pos) keeps in
// gtid_binlog_state only what it binlogged since: no key for earlier
// writers. Found: when it alone held the primary's newest transactions (an
// acknowledgement under semi_sync), it was either called errant (beyond the
// primary's last known set while lacking part of it) and those writes were
// dropped, or the failover was refused as a divergence. Now the other
// replica, which holds the history, is promoted after catching up from the
// rebuilt one, and nothing is quarantined. MariaDB only: a MySQL replica
// restored from a backup carries its whole history in gtid_executed
// (gtid_purged), so the shape does not arise there.
func TestRebuiltMariaDBReplicaKeepsTheNewestWrites(t *testing.T) {
	h := newHarness(t, mysqltest.MariaDB, func(c *config.Config) { c.Clusters[0].Durability = "semi_sync" })
	h.waitRecorded()
	h.waitLossless(mysqltest.MariaDB)
	p, r1, r2 := h.db.Primary, h.db.Replicas[0], h.db.Replicas[1]
	// An earlier writer's transaction (another server_id in domain 0), as
	// a primary before a switchover would have left.
	p.Exec(t, "SET STATEMENT server_id = 4242 FOR INSERT INTO regent_test.writes (id) VALUES (1)")
	p.Exec(t, "INSERT INTO regent_test.writes (id) VALUES (2)")
	mysqltest.WaitCaughtUp(t, r1, p, 30*time.Second)
	mysqltest.WaitCaughtUp(t, r2, p, 30*time.Second)
	// Rebuild r2 as a restore would leave it: same data, binlog state reset.
	r2.Exec(t, "STOP SLAVE")
	r2.Exec(t, "RESET MASTER")
	r2.Exec(t, "START SLAVE")
	p.Exec(t, "INSERT INTO regent_test.writes (id) VALUES (3)")
	mysqltest.WaitCaughtUp(t, r1, p, 30*time.Second)
	h.eventually("r2 replicates again", 30*time.Second, func() (bool, string) {
		got := r2.QueryString(t, "SELECT COUNT(*) FROM regent_test.writes WHERE id = 3")
		return got == "1", "rows with id 3: " + got
	})
	if st := r2.QueryString(t, "SELECT @@gtid_binlog_state"); strings.Contains(st, "-4242-") {
		t.Fatalf("r2's binlog state %q still has the earlier writer's key: the rebuild did not take", st)
	}
	// Only r2 receives the newest write, and acknowledges it.
	r1.Exec(t, "STOP SLAVE IO_THREAD")
	p.Exec(t, "INSERT INTO regent_test.writes (id) VALUES (4)")
	p.Kill(t)
	r1.Exec(t, "START SLAVE IO_THREAD")

	e := h.waitOp(consensus.KindFailover, 0, 30*time.Second)
	if e.Result != consensus.ResultSuccess {
		t.Fatalf("failover: %s (%s); steps %s", e.Result, e.Reason, stepNames(e))
	}
	np := r1
	if e.NewPrimary == "r2" {
		np = r2
	}
	if got := np.QueryString(t, "SELECT COUNT(*) FROM regent_test.writes WHERE id IN (1, 2, 3, 4)"); got != "4" {
		t.Fatalf("the new primary %s has %s of the 4 rows; steps %s", np.Name, got, stepNames(e))
	}
	other := r2
	if np == r2 {
		other = r1
	}
	h.eventually(other.Name+" replicates from the new primary", 30*time.Second, func() (bool, string) {
		io, sqlT, le := mysqltest.ReplicaThreads(t, other)
		return io == "Yes" && sqlT == "Yes", fmt.Sprintf("IO=%s SQL=%s %s", io, sqlT, le)
	})
	if q := h.cluster().Quarantined; len(q) != 0 {
		t.Fatalf("quarantined after the failover: %v", q)
	}
	t.Logf("promoted %s; steps %s", np.Name, stepNames(e))
}

// Issue 9, "also decide": decisions that compare wall clocks of different
// agents. The leader judges another agent's probe fresh by its own clock
// (ObservationTTL), and the fast path's contradiction check compares one
// agent's probe time with another's report of its mysqld gone. So reports
// are rebased to the leader's clock on receipt: each time keeps the age the
// sender gave it. Here the sender's clock is 4 s ahead (within the skew
// Receive allows, maxReportSkew); without the rebase its probe would look 4
// s in the future (fresh that much longer), or with a clock behind, stale
// at once.
func TestReportsAreRebasedToTheLeadersClock(t *testing.T) {
	leaderNow := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	senderNow := leaderNow.Add(4 * time.Second)
	r := Report{Agent: "a1", SentAt: senderNow, Clusters: map[string]ClusterReport{"main": {
		LocalSince: senderNow.Add(-3 * time.Second),
		Observations: map[string]Observation{
			"p": {ObservedAt: senderNow.Add(-200 * time.Millisecond), FailingSince: senderNow.Add(-2 * time.Second),
				LastReachedAt: senderNow.Add(-2500 * time.Millisecond),
				Stream:        &StreamObservation{Period: 250 * time.Millisecond, HeardAt: senderNow.Add(-2300 * time.Millisecond)}},
			"r1": {ObservedAt: senderNow.Add(-100 * time.Millisecond), SemiSyncShortSince: senderNow.Add(-time.Minute),
				Replica: &ReplicaObservation{LastProgressAt: senderNow.Add(-50 * time.Millisecond)}},
			"r2": {},
		},
	}}}
	got := rebaseReport(r, leaderNow)
	cr := got.Clusters["main"]
	checks := []struct {
		what      string
		got, want time.Time
	}{
		{"sent at", got.SentAt, leaderNow},
		{"local since", cr.LocalSince, leaderNow.Add(-3 * time.Second)},
		{"p observed", cr.Observations["p"].ObservedAt, leaderNow.Add(-200 * time.Millisecond)},
		{"p failing since", cr.Observations["p"].FailingSince, leaderNow.Add(-2 * time.Second)},
		{"p last reached", cr.Observations["p"].LastReachedAt, leaderNow.Add(-2500 * time.Millisecond)},
		{"p stream heard", cr.Observations["p"].Stream.HeardAt, leaderNow.Add(-2300 * time.Millisecond)},
		{"r1 observed", cr.Observations["r1"].ObservedAt, leaderNow.Add(-100 * time.Millisecond)},
		{"r1 semi-sync short since", cr.Observations["r1"].SemiSyncShortSince, leaderNow.Add(-time.Minute)},
		{"r1 last progress", cr.Observations["r1"].Replica.LastProgressAt, leaderNow.Add(-50 * time.Millisecond)},
		{"r2 never observed stays zero", cr.Observations["r2"].ObservedAt, time.Time{}},
	}
	for _, c := range checks {
		if !c.got.Equal(c.want) {
			t.Errorf("%s = %s, want %s", c.what, c.got, c.want)
		}
	}
	// The sender's report is untouched (in-process transports share it).
	if o := r.Clusters["main"].Observations["p"]; !o.Stream.HeardAt.Equal(senderNow.Add(-2300 * time.Millisecond)) {
		t.Errorf("the sender's stream observation was changed: %+v", o.Stream)
	}
	if o := r.Clusters["main"].Observations["r1"]; !o.ObservedAt.Equal(senderNow.Add(-100*time.Millisecond)) || !o.Replica.LastProgressAt.Equal(senderNow.Add(-50*time.Millisecond)) {
		t.Errorf("the sender's report was changed: %+v", o)
	}
}

// Issue 11 item 2: a report in the primary's agent's name saying mysqld is
// gone, dated an hour ahead, reached the leader with the shared agent token.
// The fast path's contradiction check looks for a probe or a replica's
// receipt after the claim's time: none could come after an hour ahead, and
// the leader failed the healthy primary over at once. Now the leader refuses
// the report (and over HTTP with TLS, it would also have to come with the
// primary's agent's certificate: TestReportRouteChecksTheSender), and the
// primary stays.
func TestReportWithFutureTimesDoesNotStartAFailover(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k)
		h.waitRecorded()
		leader := h.leader()
		owner := h.agents[0].ID() // beside p, the primary
		now := time.Now()
		forged := Report{Agent: owner, SentAt: now, Clusters: map[string]ClusterReport{"main": {
			Local: failover.LocalGone, LocalSince: now.Add(time.Hour), LocalDetail: "connection refused (forged)", LeaseHeld: true}}}
		err := h.agents[leader].Receive(forged)
		var re *ReportError
		if !errors.As(err, &re) || re.Reason != RefusedFuture {
			t.Fatalf("the leader took the forged report: %v", err)
		}
		// Give the leader several evaluations (it would act at once).
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			c := h.cluster()
			if c.Operation != nil || len(c.History) > 0 || c.Primary != "p" || c.Epoch != 1 {
				t.Fatalf("the forged report started an operation: primary %s epoch %d, operation %+v, history %d", c.Primary, c.Epoch, c.Operation, len(c.History))
			}
			time.Sleep(100 * time.Millisecond)
		}
		if got := h.db.Primary.QueryString(t, "SELECT @@read_only"); got != "0" {
			t.Fatalf("the primary was made read-only (%s)", got)
		}
	})
}

// fenceStep returns an operation's (last) step that fenced the old
// primary, nil when it has none.
func fenceStep(e consensus.HistoryEntry) *consensus.Step {
	var fence *consensus.Step
	for i := range e.Steps {
		if strings.HasPrefix(e.Steps[i].Name, "fence-old-primary") || strings.HasPrefix(e.Steps[i].Name, "wait-lease") {
			fence = &e.Steps[i]
		}
	}
	return fence
}

// Issue 10: a frozen (SIGSTOP) lossless semi-sync primary is replaced
// without waiting out its agent's lease: once both replicas' IO threads are
// stopped it can acknowledge nothing, so the fence step is the semi-sync
// check, not the lease wait. With async durability the same freeze waits
// for the lease (the control).
func TestFrozenPrimaryFencedBySemiSync(t *testing.T) {
	for _, durability := range []string{"semi_sync", "async"} {
		t.Run(durability, func(t *testing.T) {
			forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
				h := newHarness(t, k, func(c *config.Config) { c.Clusters[0].Durability = failover.Durability(durability) })
				h.waitRecorded()
				if durability == "semi_sync" {
					h.waitLossless(k)
				}
				p := h.db.Primary
				p.Exec(t, "INSERT INTO regent_test.writes (id) VALUES (1)")
				for _, r := range h.db.Replicas {
					mysqltest.WaitCaughtUp(t, r, p, 30*time.Second)
				}
				p.Pause(t)
				defer p.Resume(t)
				e := h.waitOp(consensus.KindFailover, 0, 60*time.Second)
				if e.Result != consensus.ResultSuccess {
					t.Fatalf("failover: %s (%s); steps %s", e.Result, e.Reason, stepNames(e))
				}
				fence := fenceStep(e)
				if fence == nil {
					t.Fatalf("no fence step: %s", stepNames(e))
				}
				bySemiSync := strings.Contains(fence.Detail, "lossless semi-sync fences")
				if want := durability == "semi_sync"; bySemiSync != want {
					var stop string
					for _, s := range e.Steps {
						if strings.HasPrefix(s.Name, "stop-io-threads") {
							stop = s.Detail
						}
					}
					t.Fatalf("fenced by semi-sync: %v, want %v; fence %s took %v: %s; stop-io-threads: %s", bySemiSync, want, fence.Name, fence.Duration, fence.Detail, stop)
				}
				t.Logf("%s took %v (%s); steps %s", fence.Name, fence.Duration, fence.Detail, stepNames(e))
			})
		})
	}
}

// Issue 10, "must show": the other half of the rule. A frozen lossless
// primary with one replica unreachable (its mysqld killed) is not fenced by
// semi-sync: that replica could still be connected to it, and acknowledge.
// The failover (forced: with semi_sync_wait_for 1 an unreachable replica
// that could hold an acknowledged write blocks the automatic one) waits out
// the old primary's agent's lease instead.
func TestFrozenPrimaryWithAReplicaUnaccountedForWaitsOutTheLease(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k, func(c *config.Config) { c.Clusters[0].Durability = "semi_sync" })
		h.waitRecorded()
		h.waitLossless(k)
		p, r2 := h.db.Primary, h.db.Replicas[1]
		p.Exec(t, "INSERT INTO regent_test.writes (id) VALUES (1)")
		for _, r := range h.db.Replicas {
			mysqltest.WaitCaughtUp(t, r, p, 30*time.Second)
		}
		r2.Kill(t)
		p.Pause(t)
		defer p.Resume(t)
		h.eventually("p and r2 seen unreachable", 20*time.Second, func() (bool, string) {
			obs := h.agents[h.leader()].rts()["main"].prober.snapshot()
			return !obs["p"].Reachable && !obs["r2"].Reachable, fmt.Sprintf("p reachable %v, r2 reachable %v", obs["p"].Reachable, obs["r2"].Reachable)
		})
		leader := h.agents[h.leader()]
		if _, err := leader.API().Failover(context.Background(), "main", api.FailoverRequest{To: "r1", Force: true}); err != nil {
			t.Fatalf("forced failover to r1: %v", err)
		}
		e := h.waitOp(consensus.KindForcedFailover, 0, 60*time.Second)
		if e.Result != consensus.ResultSuccess {
			t.Fatalf("forced failover: %s (%s); steps %s", e.Result, e.Reason, stepNames(e))
		}
		fence := fenceStep(e)
		switch {
		case fence == nil:
			t.Fatalf("no fence step: %s", stepNames(e))
		case strings.Contains(fence.Detail, "lossless semi-sync fences"):
			t.Fatalf("fenced by semi-sync although r2 was unaccounted for: %s %s", fence.Name, fence.Detail)
		case !strings.Contains(fence.Detail, "lease"):
			t.Fatalf("the fence step did not wait out a lease: %s (%v): %s", fence.Name, fence.Duration, fence.Detail)
		}
		t.Logf("%s took %v (%s); steps %s", fence.Name, fence.Duration, fence.Detail, stepNames(e))
	})
}

// Issue 10, "must show": a patient client writing straight to the old
// primary (not through any balancer, 60 s timeouts) while it is frozen gets
// no acknowledgement once the new primary has acknowledged a write. Its
// INSERT waits in the frozen server's socket; the failover fences by
// semi-sync (nobody left to acknowledge); when the server resumes it either
// refuses the statement (read-only, session killed) or commits it into its
// binlog and waits for an acknowledgement that never comes.
func TestPatientDirectClientOfAFrozenPrimaryGetsNoLateAcknowledgement(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k, func(c *config.Config) { c.Clusters[0].Durability = "semi_sync" })
		h.waitRecorded()
		h.waitLossless(k)
		p := h.db.Primary
		cfg := mysql.NewConfig()
		cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = mysqltest.AppUser, mysqltest.AppPassword, "tcp", p.Addr(), mysqltest.TestDatabase
		cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 60*time.Second, 60*time.Second, 60*time.Second
		if k == mysqltest.MySQL {
			cfg.TLSConfig = "skip-verify"
		}
		connector, err := mysql.NewConnector(cfg)
		if err != nil {
			t.Fatal(err)
		}
		db := sql.OpenDB(connector)
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "INSERT INTO writes (id) VALUES (1)"); err != nil {
			t.Fatalf("the patient client cannot write before the freeze: %v", err)
		}
		p.Pause(t)
		answered := make(chan error, 1)
		go func() {
			_, err := conn.ExecContext(ctx, "INSERT INTO writes (id) VALUES (2)")
			answered <- err
		}()
		e := h.waitOp(consensus.KindFailover, 0, 30*time.Second)
		if e.Result != consensus.ResultSuccess {
			p.Resume(t)
			t.Fatalf("failover: %s (%s); steps %s", e.Result, e.Reason, stepNames(e))
		}
		var np *mysqltest.Server
		for _, r := range h.db.Replicas {
			if r.Name == e.NewPrimary {
				np = r
			}
		}
		np.Exec(t, "INSERT INTO regent_test.writes (id) VALUES (3)") // the new primary's first acknowledged write
		p.Resume(t)
		select {
		case err := <-answered:
			if err == nil {
				t.Fatalf("the old primary acknowledged the patient client's write after the new primary %s acknowledged one", np.Name)
			}
			t.Logf("the patient client got an error: %v", err)
		case <-time.After(15 * time.Second):
			t.Logf("the patient client is still waiting 15 s after the resume: no acknowledgement")
		}
		if got := np.QueryString(t, "SELECT COUNT(*) FROM regent_test.writes WHERE id = 2"); got != "0" {
			t.Fatalf("the patient client's write reached the new primary %s", np.Name)
		}
	})
}

// A follower's status of a healthy cluster shows it healthy. A follower
// has no Raft contact times for the other agents (only the leader does):
// taken as never heard, every follower reported the primary isolated
// (PrimaryIsolated, "not heard since 00:00"), and a benchmark waiting for
// a healthy status through a follower waited for ever.
func TestFollowerStatusOfAHealthyCluster(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		h := newHarness(t, k)
		h.waitRecorded()
		leader := h.leader()
		for i, a := range h.agents {
			if i == leader {
				continue
			}
			h.eventually("follower "+a.ID()+" reports the cluster healthy", 20*time.Second, func() (bool, string) {
				c, err := a.API().Cluster(context.Background(), "main")
				if err != nil {
					return false, err.Error()
				}
				var codes []string
				for _, p := range c.Problems {
					codes = append(codes, p.Code)
					if p.Code == string(failover.PrimaryIsolated) {
						t.Fatalf("follower %s reports %s: %v", a.ID(), p.Code, p)
					}
				}
				return len(codes) == 1 && codes[0] == string(failover.Healthy), fmt.Sprint(codes)
			})
		}
	})
}
