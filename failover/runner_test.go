package failover

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// The runner's tests run plans made by the real planners from small views
// against the fakes of runner_fakes_test.go, and read what happened from the
// journal. Time is the fake clock's: every instance or router action costs
// 5ms, the store and the probes nothing, so durations are exact.

// stepLines summarises executed steps as "name result".
func stepLines(steps []StepRecord) []string {
	out := []string{}
	for _, s := range steps {
		out = append(out, s.HistoryName()+" "+string(s.Result))
	}
	return out
}

// actions are the journal without the step records, probes and contact
// reads: what the run did to the cluster and to its replicated state.
func (r *rig) actions() []string {
	return r.j.without("store step ", "probe ", "store last-contact")
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

type runCase struct {
	name string
	// plan builds the plan from the view; default: automatic failover.
	plan   func(View, Policy) (Plan, error)
	before *B
	// fresh is what the inspector answers (default: before).
	fresh *B
	setup func(*rig)
	// want
	outcome Outcome
	errIs   []error
	actions []string
	steps   []string
	reason  []string
	check   func(*testing.T, *rig, RunResult)
}

func (tc runCase) run(t *testing.T) {
	t.Helper()
	v, p := tc.before.build()
	fresh := v
	if tc.fresh != nil {
		fresh, _ = tc.fresh.build()
	}
	plan := tc.plan
	if plan == nil {
		plan = func(v View, p Policy) (Plan, error) { return PlanFailover(v, p, TriggerAutomatic) }
	}
	pl, err := plan(v, p)
	if err != nil {
		t.Fatalf("planner: %v", err)
	}
	r := newRig(v, fresh)
	if tc.setup != nil {
		tc.setup(r)
	}
	res, err := r.build(t).Run(context.Background(), v, p, pl)
	if tc.outcome == OutcomeSuccess && err != nil {
		t.Errorf("unexpected error: %v", err)
	}
	if tc.outcome != OutcomeSuccess && err == nil {
		t.Errorf("want an error for outcome %s", tc.outcome)
	}
	for _, target := range tc.errIs {
		if !errors.Is(err, target) {
			t.Errorf("error %q does not match %q", errText(err), target)
		}
	}
	check(t, "outcome", tc.outcome, res.Outcome)
	if tc.actions != nil {
		check(t, "actions", tc.actions, r.actions())
	}
	if tc.steps != nil {
		check(t, "steps", tc.steps, stepLines(res.Steps))
	}
	mustContain(t, "reason", res.Reason, tc.reason...)
	if tc.check != nil {
		tc.check(t, r, res)
	}
}

var (
	hostLost = func() *B {
		return base().primaryGone(ago(3*time.Second)).silent("a1", ago(2*time.Second)).notLossless("db1")
	}
	// fastPath: db1's agent saw mysqld go; the leader's probes fail too.
	fastPath = func() *B { return base().localGone("a1", ago(50*ms)).down("db1", ClassRefused, ago(100*ms)) }
	// isolated: db1's agent lost the quorum long ago, the leader still
	// reaches the read-only db1: it is fenced directly.
	isolated = func() *B { return base().silent("a1", ago(4*time.Second)).writable("db1", false) }

	failoverStart = []string{
		"store begin op-1 failover subject=db1 target= expect=7 automatic=true",
		"hooks pre-failover",
		"verify",
		"router unroute db1 epoch=8",
		"act stop-io db2",
		"act stop-io db3",
	}
	relayApplied = []string{
		"act wait-executed db2 p:1-100",
		"act wait-executed db3 p:1-100",
	}
	failoverEnd = []string{
		"verify",
		"store candidate db2",
		"act promote db2 semisync=true",
		"act repoint db3 from db2 demote=false semisync=true",
		"verify",
		"router route db2 epoch=8",
	}
	failoverSteps = []string{
		"record-intent db1 ok", "pre-hooks ok", "unroute-old-primary db1 ok", "wait-lease db1 ok",
		"stop-io-threads db2,db3 ok", "wait-relay-logs db2,db3 ok", "choose-candidate db2,db3 ok",
		"promote db2 ok", "repoint db3 ok", "route db2 ok", "commit-epoch db2 ok", "post-hooks ok",
	}
)

func concat(parts ...[]string) []string {
	out := []string{}
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func fail(err string) behaviour { return behaviour{err: errors.New(err)} }

func TestRunnerFailover(t *testing.T) {
	cases := []runCase{
		{
			name:    "host lost: intent, steps, commit and finish recorded in order, epoch 7 → 8",
			before:  hostLost(),
			fresh:   hostLost().stopped(),
			outcome: OutcomeSuccess,
			actions: concat(failoverStart, relayApplied, failoverEnd, []string{
				"store commit db2 expect=7 gtid=p:1-100",
				// wait-lease ended at 12:00:01.000; 7 actions of 5ms since.
				"store anti-flap until=12:05:01.035",
				"hooks post-failover",
				"store finish op-1 success",
			}),
			steps:  failoverSteps,
			reason: []string{"db2 is the primary of epoch 8 (was db1 at epoch 7)"},
			check: func(t *testing.T, r *rig, res RunResult) {
				// Every step is recorded as it ends, before the next begins,
				// and the operation is finished last.
				recorded := r.j.only("store ", "act ", "router ", "hooks ")
				check(t, "journal", []string{
					"store begin op-1 failover subject=db1 target= expect=7 automatic=true",
					"store step record-intent db1 ok",
					"hooks pre-failover",
					"store step pre-hooks ok",
					"router unroute db1 epoch=8",
					"store step unroute-old-primary db1 ok",
					"store step wait-lease db1 ok",
					"act stop-io db2", "act stop-io db3",
					"store step stop-io-threads db2,db3 ok",
					"act wait-executed db2 p:1-100", "act wait-executed db3 p:1-100",
					"store step wait-relay-logs db2,db3 ok",
					"store last-contact",
					"store step choose-candidate db2,db3 ok",
					"store candidate db2",
					"act promote db2 semisync=true",
					"store step promote db2 ok",
					"act repoint db3 from db2 demote=false semisync=true",
					"store step repoint db3 ok",
					"router route db2 epoch=8",
					"store step route db2 ok",
					"store commit db2 expect=7 gtid=p:1-100",
					"store anti-flap until=12:05:01.035",
					"store step commit-epoch db2 ok",
					"hooks post-failover",
					"store step post-hooks ok",
					"store finish op-1 success",
				}, recorded)
				for _, c := range r.store.all() {
					if c.OperationID != "op-1" || c.Cluster != "main" || c.At.IsZero() {
						t.Errorf("change %s: operation %q, cluster %q, at %v", c.Kind, c.OperationID, c.Cluster, c.At)
					}
					switch c.Kind {
					case ChangeIntent:
						check(t, "intent epochs", [2]uint64{7, 8}, [2]uint64{c.ExpectEpoch, c.Epoch})
						mustContain(t, "trigger", c.Trigger, "automatic: failover of db1: epoch 7 → 8", "db1 is dead")
					case ChangeCommitEpoch:
						check(t, "commit epochs", [2]uint64{7, 8}, [2]uint64{c.ExpectEpoch, c.Epoch})
					}
				}
				check(t, "result", struct {
					ID, Old, New, GTID string
					Before, After      uint64
					Committed          bool
					Recorded           bool
					Duration, Route    time.Duration
					Blocked            time.Duration
				}{"op-1", "db1", "db2", "p:1-100", 7, 8, true, true, 1035 * ms, 1035 * ms, 0},
					struct {
						ID, Old, New, GTID string
						Before, After      uint64
						Committed          bool
						Recorded           bool
						Duration, Route    time.Duration
						Blocked            time.Duration
					}{res.OperationID, res.OldPrimary, res.NewPrimary, res.GTIDAtPromotion, res.EpochBefore, res.EpochAfter,
						res.Committed, res.Recorded, res.Duration, res.TimeToRoute, res.WriteBlocked})
				check(t, "wait-lease duration", 995*ms, res.Steps[3].Duration)
				if len(res.Plan.Steps) != 12 || res.Plan.NewPrimary != "db2" {
					t.Errorf("the result's plan is not the final one: %v", summarizePlan(res.Plan).Steps)
				}
			},
		},
		{
			name:    "fast path: fenced through the agent that saw mysqld go, no wait",
			before:  fastPath(),
			fresh:   fastPath().stopped(),
			outcome: OutcomeSuccess,
			check: func(t *testing.T, r *rig, res RunResult) {
				check(t, "fence step", "fence-old-primary db1 ok", stepLines(res.Steps)[3])
				mustContain(t, "fence detail", res.Steps[3].Detail, "mysqld is gone; its agent a1 keeps db1 read-only if it restarts")
				check(t, "fence duration", time.Duration(0), res.Steps[3].Duration)
			},
		},
		{
			name:    "isolated primary reached by the leader: VerifyLeader before each irreversible step",
			before:  isolated(),
			fresh:   isolated().stopped(),
			outcome: OutcomeSuccess,
			check: func(t *testing.T, r *rig, res RunResult) {
				var after []string
				lines := r.j.all()
				for i, l := range lines {
					if l == "verify" && i+1 < len(lines) {
						after = append(after, lines[i+1])
					}
				}
				check(t, "action after each verify", []string{
					"router unroute db1 epoch=8",
					"act read-only on db1",
					"store candidate db2",
					"router route db2 epoch=8",
				}, after)
				// The old primary, still reached, was re-probed at
				// choose-candidate: its transactions count.
				check(t, "re-probed", []string{"probe db2", "probe db3", "probe db2", "probe db3", "probe db1"}, r.j.only("probe "))
			},
		},
		{
			name:   "direct fence fails on an isolated primary: its lapsed lease fences it, and an abort does not make it writable",
			before: isolated(),
			fresh:  isolated().stopped().sqlStopped("db2", "Error 1062").sqlStopped("db3", "Error 1062"),
			setup: func(r *rig) {
				r.act.sc["act read-only on db1"] = fail("Error 2013: lost connection")
			},
			outcome: OutcomeAborted,
			errIs:   []error{ErrRefused},
			check: func(t *testing.T, r *rig, res RunResult) {
				check(t, "fence step", "fence-old-primary db1 ok", stepLines(res.Steps)[3])
				mustContain(t, "fence detail", res.Steps[3].Detail, "direct fence failed (Error 2013: lost connection); waited for agent a1's lease to lapse at 11:59:59.000")
				check(t, "undo", []string{"act start-io db2", "act start-io db3"}, r.j.only("act start-io", "act read-only off"))
			},
		},
		{
			// Issue 9, defect 6: the fence's undo made the old primary
			// writable again while nothing routed writes back to it.
			name:    "aborted after a direct fence: the old primary is given its writes and its route back",
			before:  isolated(),
			fresh:   isolated().stopped().sqlStopped("db2", "Error 1062").sqlStopped("db3", "Error 1062"),
			outcome: OutcomeAborted,
			errIs:   []error{ErrRefused},
			check: func(t *testing.T, r *rig, res RunResult) {
				check(t, "undo", []string{"act read-only off db1", "router route db1 epoch=8"}, r.j.only("act read-only off", "router route"))
				mustContain(t, "reason", res.Reason, "undone: start-io-threads db2,db3, set-writable db1, route db1")
			},
		},
		{
			name:    "hung primary with a live agent: fenced by the lease, lease_timeout after the intent",
			before:  base().down("db1", ClassTimeout, ago(3*time.Second)).progress("db2", ago(5*time.Second)).progress("db3", ago(5*time.Second)).notLossless("db1"),
			fresh:   base().down("db1", ClassTimeout, ago(3*time.Second)).stopped().notLossless("db1"),
			outcome: OutcomeSuccess,
			check: func(t *testing.T, r *rig, res RunResult) {
				// The plan's bound is a1's last contact + lease_timeout
				// (12:00:02.900), but a live agent kept renewing until it saw
				// the intent at 12:00:00.000.
				mustContain(t, "fence detail", res.Steps[3].Detail, "agent a1 released or lost its lease by 12:00:03.000")
				check(t, "fence duration", 2995*ms, res.Steps[3].Duration)
			},
		},
		{
			// Issue 10: lossless semi-sync fences a hung primary once both
			// replicas' IO threads are stopped: no lease wait at all.
			name:    "hung lossless primary: fenced by semi-sync once its replicas stopped receiving, no lease wait",
			before:  base().down("db1", ClassTimeout, ago(3*time.Second)).progress("db2", ago(5*time.Second)).progress("db3", ago(5*time.Second)),
			fresh:   base().down("db1", ClassTimeout, ago(3*time.Second)).stopped(),
			outcome: OutcomeSuccess,
			check: func(t *testing.T, r *rig, res RunResult) {
				steps := stepNamesOf(res)
				if !strings.Contains(steps, "stop-io-threads db2,db3 fence-old-primary db1 wait-relay-logs") {
					t.Fatalf("steps %s: want the IO threads stopped, then the semi-sync fence", steps)
				}
				f := res.Steps[4]
				mustContain(t, "fence detail", f.Detail, "lossless semi-sync fences db1")
				if f.Duration > 100*ms {
					t.Errorf("the semi-sync fence took %v: it must not wait for the lease", f.Duration)
				}
			},
		},
		{
			// An actuator that can stop several replicas at once is asked
			// for all of them in one call; a failure is still per replica.
			name:   "an actuator that stops IO threads in parallel gets them all at once",
			before: base().down("db1", ClassTimeout, ago(3*time.Second)).progress("db2", ago(5*time.Second)).progress("db3", ago(5*time.Second)),
			fresh:  base().down("db1", ClassTimeout, ago(3*time.Second)).stopped(),
			setup: func(r *rig) {
				r.actArg = parallelActuator{r.act}
			},
			outcome: OutcomeSuccess,
			check: func(t *testing.T, r *rig, res RunResult) {
				if got := r.j.only("act stop-io"); strings.Join(got, "|") != "act stop-io-all db2,db3|act stop-io db2|act stop-io db3" {
					t.Errorf("stops %q, want one batch of db2,db3", got)
				}
				mustContain(t, "fence detail", res.Steps[4].Detail, "lossless semi-sync fences db1")
			},
		},
		{
			// A replica still receiving (its IO thread could not be
			// stopped): the fence falls back to the lease.
			name:   "semi-sync fence with a replica still receiving: waits out the lease after all",
			before: base().down("db1", ClassTimeout, ago(3*time.Second)).progress("db2", ago(5*time.Second)).progress("db3", ago(5*time.Second)),
			fresh:  base().down("db1", ClassTimeout, ago(3*time.Second)).stopped().io("db3", IOYes),
			setup: func(r *rig) {
				r.act.sc["act stop-io db3"] = fail("Lock wait timeout exceeded")
			},
			outcome: OutcomeSuccess,
			check: func(t *testing.T, r *rig, res RunResult) {
				f := res.Steps[4]
				mustContain(t, "fence detail", f.Detail, "db3: its IO thread is Yes", "waited for agent a1's lease to lapse")
				if f.Duration < time.Second {
					t.Errorf("the fallback fence took %v: it must wait for the lease", f.Duration)
				}
			},
		},
		{
			name:   "leadership lost before the promotion: stop at once, nothing undone, nothing recorded",
			before: hostLost(),
			fresh:  hostLost().stopped(),
			setup: func(r *rig) {
				r.lead.leads = 1 // the unroute's check passes, the promote's fails
			},
			outcome: OutcomeInterrupted,
			errIs:   []error{ErrNotLeader},
			actions: concat(failoverStart, relayApplied, []string{"verify"}),
			reason:  []string{"promote db2 failed", "not the raft leader"},
			check: func(t *testing.T, r *rig, res RunResult) {
				if got := r.j.only("store step promote"); len(got) != 0 {
					t.Errorf("a step was recorded after the leadership was lost: %v", got)
				}
				if !res.Recorded || res.Committed {
					t.Errorf("recorded=%v committed=%v", res.Recorded, res.Committed)
				}
			},
		},
		{
			name:    "leadership lost at the first irreversible step: only the intent was made",
			before:  hostLost(),
			setup:   func(r *rig) { r.lead.leads = 0 },
			outcome: OutcomeInterrupted,
			errIs:   []error{ErrNotLeader},
			actions: []string{"store begin op-1 failover subject=db1 target= expect=7 automatic=true", "hooks pre-failover", "verify"},
		},
		{
			name:   "a failing promote: fenced back, IO threads restarted, finished failed with the reason",
			before: hostLost(),
			fresh:  hostLost().stopped(),
			setup: func(r *rig) {
				r.act.sc["act promote db2 semisync=true"] = fail("Error 1290: the server is running with --read-only")
			},
			outcome: OutcomeFailed,
			actions: concat(failoverStart, relayApplied, []string{
				"verify",
				"store candidate db2",
				"act promote db2 semisync=true",
				// Compensation first: it may have gone writable. A
				// protective fence is not gated on VerifyLeader.
				"act read-only on db2",
				"act kill db2",
				// Then the undo of what ran, in reverse.
				"act start-io db2",
				"act start-io db3",
				"hooks failed",
				"store finish op-1 failed",
			}),
			steps: []string{
				"record-intent db1 ok", "pre-hooks ok", "unroute-old-primary db1 ok", "wait-lease db1 ok",
				"stop-io-threads db2,db3 ok", "wait-relay-logs db2,db3 ok", "choose-candidate db2,db3 ok",
				"promote db2 failed", "undo fence db2 ok", "undo start-io-threads db2,db3 ok", "failed-hooks ok",
			},
			reason: []string{"step 8/12 promote db2 failed: Error 1290", "undone: fence db2, start-io-threads db2,db3"},
			check: func(t *testing.T, r *rig, res RunResult) {
				if res.Committed || res.EpochAfter != 7 {
					t.Errorf("committed=%v epoch after=%d", res.Committed, res.EpochAfter)
				}
				check(t, "recorded undo steps", []string{
					"store step promote db2 failed", "store step undo fence db2 ok", "store step undo start-io-threads db2,db3 ok", "store step failed-hooks ok",
				}, r.j.only("store step promote", "store step undo", "store step failed-hooks"))
			},
		},
		{
			// Issue 9, defect 1 (in part): the fence of a failed promotion
			// was gated on VerifyLeader, so a leader deposed in between left
			// the half-promoted candidate writable.
			name:   "a failing promote after the leadership is lost: the candidate is still fenced",
			before: hostLost(),
			fresh:  hostLost().stopped(),
			setup: func(r *rig) {
				r.lead.leads = 2 // the unroute's and the promote's checks pass, nothing after
				r.act.sc["act promote db2 semisync=true"] = fail("Error 2013: lost connection")
			},
			outcome: OutcomeFailed,
			check: func(t *testing.T, r *rig, res RunResult) {
				check(t, "fence after the failed promote", []string{"act promote db2 semisync=true", "act read-only on db2", "act kill db2"},
					r.j.only("act promote", "act read-only", "act kill"))
			},
		},
		{
			name:   "halted after the promotion: nothing more is done, undone or recorded",
			before: hostLost(),
			fresh:  hostLost().stopped(),
			setup: func(r *rig) {
				r.halt = func(e StepEvent) bool { return e.Step.Kind == StepPromote }
			},
			outcome: OutcomeInterrupted,
			errIs:   []error{ErrHalted},
			reason:  []string{"halted after step 8/12 promote db2"},
			check: func(t *testing.T, r *rig, res RunResult) {
				if got := r.j.only("act repoint", "router route", "store commit", "store finish", "act read-only", "act start-io"); len(got) != 0 {
					t.Errorf("a halted run went on: %v", got)
				}
			},
		},
		{
			name:    "fresh facts refuse every candidate: undone and aborted with the reasons",
			before:  hostLost(),
			fresh:   hostLost().stopped().sqlStopped("db2", "Error 1062").sqlStopped("db3", "Error 1062"),
			outcome: OutcomeAborted,
			errIs:   []error{ErrRefused},
			actions: concat(failoverStart, []string{
				"act start-io db2",
				"act start-io db3",
				"hooks failed",
				"store finish op-1 aborted",
			}),
			reason: []string{"choose-candidate db2,db3 failed", "no instance can be promoted", "SQL thread stopped with error: Error 1062", "undone: start-io-threads db2,db3"},
			check: func(t *testing.T, r *rig, res RunResult) {
				mustContain(t, "relay-log detail", res.Steps[5].Detail, "db2: SQL thread stopped, cannot apply")
			},
		},
		{
			name:    "a failed pre-hook aborts before anything is touched",
			before:  hostLost(),
			setup:   func(r *rig) { r.hooks.sc["hooks pre-failover"] = fail("exit status 3") },
			outcome: OutcomeAborted,
			actions: []string{
				"store begin op-1 failover subject=db1 target= expect=7 automatic=true",
				"hooks pre-failover",
				"hooks failed",
				"store finish op-1 aborted",
			},
			steps:  []string{"record-intent db1 ok", "pre-hooks failed", "failed-hooks ok"},
			reason: []string{"pre-hooks failed: pre-failover hooks: exit status 3"},
			check: func(t *testing.T, r *rig, res RunResult) {
				mustContain(t, "hook output kept", res.Steps[1].Output, "pre-failover ran for epoch 8")
			},
		},
		{
			name:    "a failed post-hook is a failed step: the failover is done but never a success",
			before:  hostLost(),
			fresh:   hostLost().stopped(),
			setup:   func(r *rig) { r.hooks.sc["hooks post-failover"] = fail("exit status 1") },
			outcome: OutcomeFailed,
			actions: concat(failoverStart, relayApplied, failoverEnd, []string{
				"store commit db2 expect=7 gtid=p:1-100",
				"store anti-flap until=12:05:01.035",
				"hooks post-failover",
				"hooks failed",
				"store finish op-1 failed",
			}),
			reason: []string{"db2 was promoted (epoch 8 committed) but: step 12/12 post-hooks failed: post-failover hooks: exit status 1"},
			check: func(t *testing.T, r *rig, res RunResult) {
				if !res.Committed || res.EpochAfter != 8 || res.NewPrimary != "db2" {
					t.Errorf("committed=%v epoch=%d new=%s", res.Committed, res.EpochAfter, res.NewPrimary)
				}
			},
		},
		{
			name:   "past the promotion a failed repoint is recorded and the run goes on to commit",
			before: hostLost(),
			fresh:  hostLost().stopped(),
			setup: func(r *rig) {
				r.act.sc["act repoint db3 from db2 demote=false semisync=true"] = fail("Error 2003: can't connect")
			},
			outcome: OutcomeFailed,
			actions: concat(failoverStart, relayApplied, failoverEnd, []string{
				"store commit db2 expect=7 gtid=p:1-100",
				"store anti-flap until=12:05:01.035",
				"hooks post-failover",
				"hooks failed",
				"store finish op-1 failed",
			}),
			reason: []string{"db2 was promoted (epoch 8 committed) but: step 9/12 repoint db3 failed: Error 2003"},
		},
		{
			name:    "another leader moved the epoch: the commit is refused, the run stops without undo",
			before:  hostLost(),
			fresh:   hostLost().stopped(),
			setup:   func(r *rig) { r.store.sc["store commit db2 expect=7 gtid=p:1-100"] = behaviour{err: ErrStaleEpoch} },
			outcome: OutcomeInterrupted,
			errIs:   []error{ErrStaleEpoch},
			actions: concat(failoverStart, relayApplied, failoverEnd, []string{"store commit db2 expect=7 gtid=p:1-100"}),
		},
		{
			// The commit's answer is lost (a Raft timeout: it may have been
			// applied). One retry settles it; consensus takes the same
			// operation's commit again as a no-op.
			name:   "a commit whose answer was lost is asked again",
			before: hostLost(),
			fresh:  hostLost().stopped(),
			setup: func(r *rig) {
				r.store.sc["store commit db2 expect=7 gtid=p:1-100"] = behaviour{err: errors.New("consensus: timed out"), once: new(atomic.Bool)}
			},
			outcome: OutcomeSuccess,
			check: func(t *testing.T, r *rig, res RunResult) {
				if got := len(r.j.only("store commit")); got != 2 || !res.Committed {
					t.Errorf("%d commits sent (committed %v), want 2 and committed", got, res.Committed)
				}
			},
		},
		{
			name:   "a step the history cannot take is a warning, not a failure",
			before: hostLost(),
			fresh:  hostLost().stopped(),
			setup: func(r *rig) {
				r.store.sc["store step wait-lease db1 ok"] = fail("invalid command: operation op-1 already has 64 steps")
			},
			outcome: OutcomeSuccess,
			check: func(t *testing.T, r *rig, res RunResult) {
				mustContain(t, "warnings", strings.Join(res.Warnings, "; "), "step wait-lease db1 not recorded in the history: replicated state: step: invalid command")
			},
		},
		{
			name:   "the operation was taken from this run (the store's conflict on a step): stop without undo",
			before: hostLost(),
			fresh:  hostLost().stopped(),
			setup: func(r *rig) {
				r.store.sc["store step stop-io-threads db2,db3 ok"] = behaviour{err: fmt.Errorf("operation in progress is op-9: %w", ErrConflict)}
			},
			outcome: OutcomeInterrupted,
			errIs:   []error{ErrConflict},
			check: func(t *testing.T, r *rig, res RunResult) {
				if got := r.j.only("act start-io", "store finish", "probe "); len(got) != 0 {
					t.Errorf("the run went on after losing its operation: %v", got)
				}
			},
		},
		{
			name:   "consensus refuses the automatic intent inside the anti-flap window: aborted, nothing touched, not recorded",
			before: hostLost(),
			setup: func(r *rig) {
				r.store.sc["store begin op-1 failover subject=db1 target= expect=7 automatic=true"] = behaviour{err: ErrAntiFlap}
			},
			outcome: OutcomeAborted,
			errIs:   []error{ErrAntiFlap},
			actions: []string{"store begin op-1 failover subject=db1 target= expect=7 automatic=true"},
			steps:   []string{"record-intent db1 failed"},
			check: func(t *testing.T, r *rig, res RunResult) {
				if res.Recorded {
					t.Error("an operation consensus refused is reported recorded")
				}
			},
		},
		{
			name: "an abandoned operation is aborted before the intent that takes it over",
			before: hostLost().state(func(s *ReplicatedState) {
				s.Operation = Operation{Kind: OpFailover, ID: "op-0", StartedAt: ago(10 * time.Minute)}
			}),
			fresh:   hostLost().stopped(),
			outcome: OutcomeSuccess,
			check: func(t *testing.T, r *rig, res RunResult) {
				check(t, "first changes", []string{"store abort op-0", "store begin op-1 failover subject=db1 target= expect=7 automatic=true"}, r.j.all()[:2])
				mustContain(t, "intent detail", res.Steps[0].Detail, "abandoned operation op-0 aborted")
			},
		},
		{
			name:    "forced failover: the requested target is recorded as the operation's target",
			before:  hostLost().exec("db3", "p:1-97"),
			fresh:   hostLost().exec("db3", "p:1-97").stopped(),
			plan:    func(v View, p Policy) (Plan, error) { return PlanForcedFailover(v, p, "db3", false) },
			outcome: OutcomeSuccess,
			check: func(t *testing.T, r *rig, res RunResult) {
				check(t, "intent", "store begin op-1 forced-failover subject=db1 target=db3 expect=7 automatic=false", r.j.all()[0])
				check(t, "catch-up", []string{"act wait-executed db2 p:1-100", "act repoint db3 from db2 demote=false semisync=false", "act wait-executed db3 p:1-100"},
					r.j.only("act wait-executed", "act repoint db3")[2:])
				check(t, "new primary", "db3", res.NewPrimary)
				check(t, "pre-hooks phase", "hooks pre-failover", r.j.only("hooks ")[0])
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, tc.run)
	}
}

func TestRunnerSwitchover(t *testing.T) {
	switchover := func(v View, p Policy) (Plan, error) { return PlanSwitchover(v, p, "") }
	// startWith is the run up to the catch-up when db3 holds db3Holds.
	startWith := func(db3Holds string) []string {
		return []string{
			"store begin op-1 switchover subject=db1 target=db2 expect=7 automatic=false",
			"hooks pre-switchover",
			"act wait-transactions db1",
			// db3 goes under db2 before the fence: its IO thread stopped,
			// once db2 holds what db3 holds.
			"act stop-io db3",
			"act wait-executed db2 " + db3Holds,
			"act repoint db3 from db2 demote=false semisync=true",
			"verify",
			"act read-only on db1",
			"act kill db1",
			"router unroute db1 epoch=8",
			"act wait-executed db2 p:1-100",
		}
	}
	start := startWith("p:1-100")
	// behind is a cluster where db3 holds less than db1, so that the wait
	// for db3's set and the catch-up are told apart.
	behind := func() *B { return base().exec("db3", "p:1-99") }
	giveBack := []string{
		// Undo in reverse: route back with the new epoch (the router refuses
		// an older one), lift read_only (lossless first: durability
		// semi_sync), then db3 back under db1.
		"verify",
		"router route db1 epoch=8",
		"verify",
		"act semisync db1 source",
		"act read-only off db1",
		"act repoint db3 from db1 demote=false semisync=true",
		"act start-io db3",
		"hooks failed",
	}
	succeeded := concat(start, []string{
		"verify",
		"store candidate db2",
		"act promote db2 semisync=true",
		"verify",
		"router route db2 epoch=8",
		"store commit db2 expect=7 gtid=p:1-100",
		"act repoint db1 from db2 demote=true semisync=true",
		"hooks post-switchover",
		"store finish op-1 success",
	})
	cases := []runCase{
		{
			name:    "success: old primary demoted, write-blocked window from read-only to route",
			before:  base(),
			plan:    switchover,
			outcome: OutcomeSuccess,
			actions: succeeded,
			check: func(t *testing.T, r *rig, res RunResult) {
				// read-only, kill, unroute, wait, promote, route: 6 actions
				// of 5ms; the wait for transactions and db3's chaining came
				// before, and the old primary is repointed after the route.
				check(t, "write-blocked window", 30*ms, res.WriteBlocked)
				check(t, "time to route", 50*ms, res.TimeToRoute)
				// The moments balancers react to, in the run's own order.
				check(t, "routed at", res.Started.Add(res.TimeToRoute), res.RoutedAt)
				check(t, "blocked at", res.RoutedAt.Add(-res.WriteBlocked), res.BlockedAt)
				if !res.IntentAt.After(res.Started.Add(-time.Nanosecond)) || !res.IntentAt.Before(res.BlockedAt) || res.CommittedAt.Before(res.RoutedAt) || res.CommittedAt.IsZero() {
					t.Errorf("moments out of order: started %v intent %v blocked %v routed %v committed %v",
						res.Started, res.IntentAt, res.BlockedAt, res.RoutedAt, res.CommittedAt)
				}
				check(t, "gtid at promotion", "p:1-100", res.GTIDAtPromotion)
				if got := r.j.only("store anti-flap"); len(got) != 0 {
					t.Errorf("a switchover started an anti-flap window: %v", got)
				}
			},
		},
		{
			name:    "the fence says when writes were held back: the window starts there, not at the step's start",
			before:  base(),
			plan:    switchover,
			setup:   func(r *rig) { r.act.heldAfter = 4 * ms },
			outcome: OutcomeSuccess,
			actions: succeeded,
			check: func(t *testing.T, r *rig, res RunResult) {
				// The 30ms of the case above less the 4ms the fence spent
				// before its SET GLOBAL read_only (connecting, listing and
				// killing the sessions, while killed clients could reconnect
				// and commit).
				check(t, "write-blocked window", 26*ms, res.WriteBlocked)
				check(t, "blocked at", res.RoutedAt.Add(-26*ms), res.BlockedAt)
			},
		},
		{
			name:    "target cannot catch up: the old primary's writes are given back and it is routed back",
			before:  behind(),
			plan:    switchover,
			setup:   func(r *rig) { r.act.sc["act wait-executed db2 p:1-100"] = fail("MASTER_GTID_WAIT timed out") },
			outcome: OutcomeFailed,
			actions: concat(startWith("p:1-99"), giveBack, []string{"store finish op-1 failed"}),
			steps: []string{
				"record-intent db1 ok", "pre-hooks ok", "wait-long-transactions db1 ok", "stop-io-threads db3 ok", "repoint db3 ok", "fence-old-primary db1 ok",
				"unroute-old-primary db1 ok", "catch-up db2 failed", "undo route db1 ok", "undo set-writable db1 ok", "undo repoint db3 ok", "undo start-io-threads db3 ok", "failed-hooks ok",
			},
			reason: []string{"catch-up db2 failed: db2 did not reach p:1-100: MASTER_GTID_WAIT timed out", "undone: route db1, set-writable db1, repoint db3, start-io-threads db3"},
			check: func(t *testing.T, r *rig, res RunResult) {
				// read-only, kill, unroute, wait, route back, lossless semi-sync,
				// read-only off.
				check(t, "write-blocked window", 35*ms, res.WriteBlocked)
				check(t, "router", []string{"router unroute db1 epoch=8", "router route db1 epoch=8"}, r.j.only("router "))
			},
		},
		{
			name:    "the promotion fails: the replica chained under the target goes back to the old primary",
			before:  base(),
			plan:    switchover,
			setup:   func(r *rig) { r.act.sc["act promote db2 semisync=true"] = fail("connection refused") },
			outcome: OutcomeFailed,
			actions: concat(start, []string{
				"verify",
				"store candidate db2",
				"act promote db2 semisync=true",
				"act read-only on db2",
				"act kill db2",
			}, giveBack, []string{"store finish op-1 failed"}),
			steps: []string{
				"record-intent db1 ok", "pre-hooks ok", "wait-long-transactions db1 ok", "stop-io-threads db3 ok", "repoint db3 ok", "fence-old-primary db1 ok",
				"unroute-old-primary db1 ok", "catch-up db2 ok", "promote db2 failed", "undo fence db2 ok",
				"undo route db1 ok", "undo set-writable db1 ok", "undo repoint db3 ok", "undo start-io-threads db3 ok", "failed-hooks ok",
			},
			reason: []string{"promote db2 failed: connection refused", "undone: fence db2, route db1, set-writable db1, repoint db3, start-io-threads db3"},
		},
		{
			name:   "the chaining fails: db3 back under db1 before the primary is touched",
			before: base(),
			plan:   switchover,
			setup: func(r *rig) {
				r.act.sc["act repoint db3 from db2 demote=false semisync=true"] = fail("START REPLICA: timed out")
			},
			outcome: OutcomeFailed,
			actions: concat(start[:6], []string{
				"act repoint db3 from db1 demote=false semisync=true",
				"act start-io db3",
				"hooks failed",
				"store finish op-1 failed",
			}),
			reason: []string{"repoint db3 failed: START REPLICA: timed out", "undone: repoint db3, start-io-threads db3"},
			check: func(t *testing.T, r *rig, res RunResult) {
				check(t, "write-blocked window", time.Duration(0), res.WriteBlocked)
			},
		},
		{
			name:    "db3's IO thread did not stop: not chained, since what it holds could still grow",
			before:  base(),
			plan:    switchover,
			setup:   func(r *rig) { r.act.sc["act stop-io db3"] = fail("Lost connection") },
			outcome: OutcomeFailed,
			actions: concat(start[:4], []string{
				"act repoint db3 from db1 demote=false semisync=true",
				"act start-io db3",
				"hooks failed",
				"store finish op-1 failed",
			}),
			reason: []string{"repoint db3 failed: the IO thread of db3 still runs (Yes)", "undone: repoint db3, start-io-threads db3"},
		},
		{
			name:    "the target does not reach what db3 holds: db3 back under db1, the primary untouched",
			before:  behind(),
			plan:    switchover,
			setup:   func(r *rig) { r.act.sc["act wait-executed db2 p:1-99"] = fail("MASTER_GTID_WAIT timed out") },
			outcome: OutcomeFailed,
			actions: concat(startWith("p:1-99")[:5], []string{
				"act repoint db3 from db1 demote=false semisync=true",
				"act start-io db3",
				"hooks failed",
				"store finish op-1 failed",
			}),
			reason: []string{"repoint db3 failed: db2 did not reach p:1-99, which db3 holds: MASTER_GTID_WAIT timed out", "undone: repoint db3, start-io-threads db3"},
			check: func(t *testing.T, r *rig, res RunResult) {
				check(t, "write-blocked window", time.Duration(0), res.WriteBlocked)
			},
		},
		{
			name:    "errant transactions on the target at catch-up: refused, writes given back",
			before:  base(),
			fresh:   base().exec("db2", "p:1-100,x:1"),
			plan:    switchover,
			outcome: OutcomeAborted,
			errIs:   []error{ErrRefused},
			actions: concat(start[:len(start)-1], giveBack, []string{"store finish op-1 aborted"}),
			reason:  []string{"db2 holds transactions x:1 that db1 lacks (errant)"},
		},
		{
			name:    "long write transactions: given up before the primary is touched",
			before:  base(),
			plan:    switchover,
			setup:   func(r *rig) { r.act.sc["act wait-transactions db1"] = fail("thread 42 (user app, 10000 rows)") },
			outcome: OutcomeAborted,
			actions: concat(start[:3], []string{"hooks failed", "store finish op-1 aborted"}),
			reason:  []string{"db1 still runs long write transactions: thread 42"},
			check: func(t *testing.T, r *rig, res RunResult) {
				check(t, "write-blocked window", time.Duration(0), res.WriteBlocked)
			},
		},
		{
			name:   "the route back fails: the window runs to the run's end and says so",
			before: behind(),
			plan:   switchover,
			setup: func(r *rig) {
				r.act.sc["act wait-executed db2 p:1-100"] = fail("MASTER_GTID_WAIT timed out")
				r.router.sc["router route db1 epoch=8"] = fail("haproxy: no such server")
			},
			outcome: OutcomeFailed,
			reason:  []string{"undone: set-writable db1", "undo route db1 failed: haproxy: no such server"},
			check: func(t *testing.T, r *rig, res RunResult) {
				// Blocked from the fence, after the intent and db3's
				// chaining (stop, wait, repoint: 15ms).
				check(t, "write-blocked window", res.Duration-20*ms, res.WriteBlocked)
				mustContain(t, "warnings", strings.Join(res.Warnings, "; "), "writes on db1 were blocked at 12:00:00.020 and not given back by the run")
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, tc.run)
	}
}

func TestRunnerSmallActions(t *testing.T) {
	// After a failover: db2 is the primary of epoch 8, db1 is back,
	// read-only and not a replica.
	after := func() *B {
		return base().state(func(s *ReplicatedState) { s.Primary, s.Epoch = "db2", 8 }).
			notReplica("db2").writable("db2", true).source("db3", "db2").
			writable("db1", false).
			probes("db2", func(pr *Probe) { pr.ObservedAt = ago(100 * ms) }).
			exec("db2", "p:1-110")
	}
	// A rejoin of db1 under db2, repointed or found replicating already.
	rejoinActions := func(repoint bool) []string {
		a := []string{"store begin op-1 rejoin subject=db1 target=db1 expect=8 automatic=false", "verify", "act read-only on db1", "act kill db1"}
		if repoint {
			a = append(a, "act repoint db1 from db2 demote=true semisync=true")
		}
		return append(a, "store finish op-1 success")
	}
	cases := []runCase{
		{
			name:    "rejoin: recorded, fenced, repointed, finished",
			before:  after(),
			plan:    func(v View, p Policy) (Plan, error) { return PlanRejoin(v, p, "db1") },
			outcome: OutcomeSuccess,
			actions: rejoinActions(true),
			steps:   []string{"record-intent db1 ok", "fence db1 ok", "repoint db1 ok", "finish ok"},
		},
		{
			// The previous leader repointed db1 and died before it could
			// finish the rejoin; this leader's view is from before.
			name:   "rejoin of an instance a fresh probe shows replicating from the primary: not repointed again",
			before: after(),
			fresh: after().probes("db1", func(pr *Probe) {
				pr.Replica = &ReplicaStatus{Source: "db2", IOState: IOYes, SQLRunning: true}
				pr.SemiSync.ReplicaEnabled, pr.SemiSync.SourceEnabled = true, false
			}),
			plan:    func(v View, p Policy) (Plan, error) { return PlanRejoin(v, p, "db1") },
			outcome: OutcomeSuccess,
			actions: rejoinActions(false),
			steps:   []string{"record-intent db1 ok", "fence db1 ok", "repoint db1 ok", "finish ok"},
		},
		{
			name:   "rejoin of an instance replicating from the primary with its semi-sync replica side off: repointed",
			before: after(),
			fresh: after().probes("db1", func(pr *Probe) {
				pr.Replica = &ReplicaStatus{Source: "db2", IOState: IOYes, SQLRunning: true}
				pr.SemiSync.ReplicaEnabled, pr.SemiSync.SourceEnabled = false, false
			}),
			plan:    func(v View, p Policy) (Plan, error) { return PlanRejoin(v, p, "db1") },
			outcome: OutcomeSuccess,
			actions: rejoinActions(true),
		},
		{
			// Found by the frozen-mysqld benchmark (MySQL): the plan saw
			// db1's set a subset of db2's, then its fence (the lease
			// keeper's release of killed semi-sync waiters) let two
			// commits complete, and db1 was repointed holding them.
			name:    "rejoin of an instance whose set grew after the plan: not repointed, so that it is quarantined next",
			before:  after(),
			fresh:   after().exec("db1", "p:1-100,q:1-2"),
			plan:    func(v View, p Policy) (Plan, error) { return PlanRejoin(v, p, "db1") },
			outcome: OutcomeFailed,
			actions: append(rejoinActions(false)[:4], "store finish op-1 failed"),
			reason:  []string{"db1 now holds transactions q:1-2 that db2 lacks"},
		},
		{
			name:    "quarantine: the errant set is recorded, the instance kept read-only",
			before:  after().exec("db1", "p:1-100,q:1-2"),
			plan:    func(v View, p Policy) (Plan, error) { return PlanRejoin(v, p, "db1") },
			outcome: OutcomeSuccess,
			actions: []string{
				"store begin op-1 quarantine subject=db1 target=db1 expect=8 automatic=false",
				"verify",
				"act read-only on db1",
				"act kill db1",
				"store quarantine db1 gtid=q:1-2",
				"store finish op-1 success",
			},
			check: func(t *testing.T, r *rig, res RunResult) {
				for _, c := range r.store.all() {
					if c.Kind == ChangeQuarantine {
						mustContain(t, "quarantine reason", c.Reason, "db1 holds errant transactions q:1-2")
					}
				}
			},
		},
		{
			name:   "fence of a writable replica, when the store cannot record fences: run and logged only",
			before: base().writable("db3", true),
			plan:   func(v View, p Policy) (Plan, error) { return PlanFence(v, p, "db3") },
			setup: func(r *rig) {
				r.storeArg = &kindsStore{fakeStore: r.store, unrecorded: map[OperationKind]bool{OpFence: true}}
			},
			outcome: OutcomeSuccess,
			actions: []string{"verify", "act read-only on db3", "act kill db3", "router unroute db3 epoch=7"},
			steps:   []string{"record-intent db3 skipped", "fence db3 ok", "unroute-old-primary db3 ok", "finish skipped"},
			check: func(t *testing.T, r *rig, res RunResult) {
				if res.Recorded {
					t.Error("an unrecorded fence is reported recorded")
				}
			},
		},
		{
			name:    "restore writes on the epoch's primary: recorded by a store that records every kind",
			before:  base().writable("db1", false),
			plan:    PlanRestoreWrites,
			outcome: OutcomeSuccess,
			actions: []string{
				"store begin op-1 restore-writes subject=db1 target=db1 expect=7 automatic=true",
				"verify", "act semisync db1 source", "act read-only off db1",
				"verify", "router route db1 epoch=7",
				"store finish op-1 success",
			},
			check: func(t *testing.T, r *rig, res RunResult) {
				check(t, "no promotion", [2]string{"", "0s"}, [2]string{res.NewPrimary, res.TimeToRoute.String()})
			},
		},
		{
			// Chaos seed 20262851: a restarted primary given its writes
			// back before its lossless source side acknowledged commits no
			// replica held. If the source side cannot be configured, the
			// writes are not given back at all.
			name:    "restore writes: the lossless source side fails, read_only stays on",
			before:  base().writable("db1", false),
			plan:    PlanRestoreWrites,
			setup:   func(r *rig) { r.act.sc["act semisync db1 source"] = fail("Error 1193: Unknown system variable") },
			outcome: OutcomeFailed,
			actions: []string{
				"store begin op-1 restore-writes subject=db1 target=db1 expect=7 automatic=true",
				"verify", "act semisync db1 source",
				"store finish op-1 failed",
			},
			reason: []string{"writes not given back: configuring the lossless semi-sync source side failed: Error 1193"},
		},
		{
			name:    "a failed fence of a small action: finished failed, nothing to undo",
			before:  base().writable("db3", true),
			plan:    func(v View, p Policy) (Plan, error) { return PlanFence(v, p, "db3") },
			setup:   func(r *rig) { r.act.sc["act kill db3"] = fail("Error 1094") },
			outcome: OutcomeFailed,
			actions: []string{
				"store begin op-1 fence subject=db3 target=db3 expect=7 automatic=true",
				"verify", "act read-only on db3", "act kill db3",
				"store finish op-1 failed",
			},
			reason: []string{"fence db3 failed: db3 is read-only but its client connections were not killed: Error 1094"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, tc.run)
	}
}

// TestRunnerStepTimeout runs in a synctest bubble: the step's context
// deadline fires as soon as the blocked fake action is the only thing left,
// without waiting for real time.
func TestRunnerStepTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		runCase{
			before:  hostLost(),
			fresh:   hostLost().stopped(),
			setup:   func(r *rig) { r.act.sc["act promote db2 semisync=true"] = behaviour{block: true} },
			outcome: OutcomeFailed,
			errIs:   []error{ErrStepTimeout, context.DeadlineExceeded},
			reason:  []string{"promote db2 failed: step timed out after 1s: context deadline exceeded", "undone: fence db2, start-io-threads db2,db3"},
			check: func(t *testing.T, r *rig, res RunResult) {
				check(t, "promote record", "promote db2 failed", stepLines(res.Steps)[7])
				mustContain(t, "promote error", res.Steps[7].Err, "step timed out after 1s")
			},
		}.run(t)
	})
}

func TestRunnerCancelledRunStillCleansUp(t *testing.T) {
	v, p := hostLost().build()
	fresh, _ := hostLost().stopped().build()
	pl, err := PlanFailover(v, p, TriggerAutomatic)
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(v, fresh)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The agent shuts down while the promote runs.
	r.act.sc["act promote db2 semisync=true"] = behaviour{block: true}
	r.build(t)
	r.runner.cfg.Observer = func(e StepEvent) {
		if e.Step.Kind == StepPromote && e.Result == "" {
			cancel()
		}
	}
	res, err := r.runner.Run(ctx, v, p, pl)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v is not context.Canceled", err)
	}
	check(t, "outcome", OutcomeFailed, res.Outcome)
	check(t, "cleanup", []string{"act read-only on db2", "act kill db2", "act start-io db2", "act start-io db3", "hooks failed", "store finish op-1 failed"},
		r.j.only("act read-only", "act kill", "act start-io", "hooks failed", "store finish"))
}

func TestRunnerLeavesTheViewAlone(t *testing.T) {
	v, p := hostLost().build()
	fresh, _ := hostLost().stopped().build()
	before := render(v)
	pl, err := PlanFailover(v, p, TriggerAutomatic)
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(v, fresh)
	if _, err := r.build(t).Run(context.Background(), v, p, pl); err != nil {
		t.Fatal(err)
	}
	check(t, "view", before, render(v))
}

func TestRunnerObserver(t *testing.T) {
	v, p := base().writable("db1", false).build()
	pl, err := PlanRestoreWrites(v, p)
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(v, v)
	var perRun []string
	res, err := r.build(t).RunWith(context.Background(), v, p, pl, RunOptions{
		Requester: "regentctl by admin",
		Observer:  func(e StepEvent) { perRun = append(perRun, e.String()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range r.events {
		if e.OperationID != res.OperationID || e.Cluster != "main" || e.Operation != OpRestoreWrites {
			t.Errorf("event %+v does not name its operation", e)
		}
		lines = append(lines, e.String())
	}
	want := []string{
		"[1/4] record-intent db1: started",
		"[1/4] record-intent db1: ok (0s): operation op-1 recorded at epoch 7",
		"[2/4] set-writable db1: started",
		"[2/4] set-writable db1: ok (10ms): lossless semi-sync source side on db1; read_only=OFF on db1",
		"[3/4] route db1: started",
		"[3/4] route db1: ok (5ms): writes routed to db1 (epoch 7)",
		"[4/4] finish: started",
		"[4/4] finish: ok (0s)",
	}
	check(t, "runner observer", want, lines)
	check(t, "run observer", want, perRun)
	for _, c := range r.store.all() {
		if c.Kind == ChangeIntent {
			mustContain(t, "trigger", c.Trigger, "requested by regentctl by admin: restore writes on db1")
		}
	}
}

func TestRunnerRefusesUnrunnablePlans(t *testing.T) {
	v, p := base().build()
	good, err := PlanSwitchover(v, p, "")
	if err != nil {
		t.Fatal(err)
	}
	noTimeout := good
	noTimeout.Steps = append([]Step(nil), good.Steps...)
	noTimeout.Steps[5].Timeout = 0
	noUndoSource := good
	noUndoSource.Steps = append([]Step(nil), good.Steps...)
	noUndoSource.Steps[4].UndoSource = ""
	otherCluster := good
	otherCluster.Cluster = "other"
	cases := []struct {
		name string
		plan Plan
		want []string
	}{
		{"empty plan", Plan{Cluster: "main"}, []string{"the plan has no step"}},
		{"a step without timeout", noTimeout, []string{"step 6 (fence-old-primary) has no timeout"}},
		{"a repoint undone to nowhere", noUndoSource, []string{"step 5 (repoint db3) is undone by a repoint but names no source"}},
		{"another cluster's plan", otherCluster, []string{`the plan is for cluster "other" but the view is of "main"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(v, v)
			res, err := r.build(t).Run(context.Background(), v, p, tc.plan)
			if !errors.Is(err, ErrInvalidPlan) {
				t.Fatalf("error %v is not ErrInvalidPlan", err)
			}
			mustContain(t, "error", err.Error(), tc.want...)
			check(t, "outcome", OutcomeAborted, res.Outcome)
			check(t, "journal", []string{}, r.j.all())
		})
	}
}

func TestNewRunnerNamesMissingDependencies(t *testing.T) {
	_, err := NewRunner(RunnerConfig{Clock: &fakeClock{}})
	if !errors.Is(err, ErrInvalidRunner) {
		t.Fatalf("error %v is not ErrInvalidRunner", err)
	}
	mustContain(t, "error", err.Error(), "Inspector", "Actuator", "Leadership", "Store", "Router", "NewOperationID")
	if strings.Contains(err.Error(), "Clock") || strings.Contains(err.Error(), "Hooks") {
		t.Errorf("error names a dependency that was given or is optional: %v", err)
	}
}

func TestStepRecordHistoryText(t *testing.T) {
	long := strings.Repeat("é", 200)
	cases := []struct {
		name         string
		rec          StepRecord
		name_, detai string
	}{
		{"one instance", StepRecord{Kind: StepPromote, Instance: "db2"}, "promote db2", ""},
		{"several", StepRecord{Kind: StepStopIOThreads, Instances: []string{"db2", "db3"}}, "stop-io-threads db2,db3", ""},
		{"undo", StepRecord{Kind: StepSetWritable, Instance: "db1", Undo: true, Detail: "read_only=OFF on db1"}, "undo set-writable db1", "read_only=OFF on db1"},
		{"failed hook", StepRecord{Kind: StepPostHooks, Err: "exit status 1", Detail: "post-failover hooks", Output: "boom"}, "post-hooks", "error: exit status 1; post-failover hooks; output: boom"},
		{"long name cut on a rune boundary", StepRecord{Kind: StepRepoint, Instance: long}, "repoint " + strings.Repeat("é", 122) + "…", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			check(t, "name", tc.name_, tc.rec.HistoryName())
			check(t, "detail", tc.detai, tc.rec.HistoryDetail())
			if n := len(tc.rec.HistoryName()); n > 255 {
				t.Errorf("name is %d bytes", n)
			}
		})
	}
}

func TestStepEventString(t *testing.T) {
	e := StepEvent{Index: 7, Total: 12, Step: Step{Kind: StepPromote, Instance: "db2"}, Result: StepResultFailed, Duration: 1234567 * time.Microsecond, Err: "Error 1290"}
	check(t, "failed", "[8/12] promote db2: failed (1.235s): Error 1290", e.String())
	e = StepEvent{Index: 4, Total: 7, Undo: true, Step: Step{Kind: StepStartIOThreads, Instances: []string{"db2", "db3"}}}
	check(t, "undo started", "[5/7] undo start-io-threads db2,db3: started", e.String())
	e = StepEvent{Index: -1, Total: 7, Step: Step{Kind: StepFailedHooks}, Result: StepResultOK}
	check(t, "added step", "[+] failed-hooks: ok (0s)", e.String())
}

// StoppedIOThreads reads what HistoryName wrote: the next leader restarts
// the IO threads an abandoned operation's recorded steps stopped and did
// not start again, and nothing else.
func TestStoppedIOThreadsReadsTheHistory(t *testing.T) {
	stop := StepRecord{Kind: StepStopIOThreads, Instances: []string{"db2", "db3"}}
	undo := StepRecord{Kind: StepStartIOThreads, Instances: []string{"db2", "db3"}, Undo: true}
	undoOne := StepRecord{Kind: StepStartIOThreads, Instances: []string{"db3"}, Undo: true}
	other := StepRecord{Kind: StepPromote, Instance: "db2"}
	chainStop := StepRecord{Kind: StepStopIOThreads, Instances: []string{"db3"}}
	chained := StepRecord{Kind: StepRepoint, Instance: "db3"}
	pointedBack := StepRecord{Kind: StepRepoint, Instance: "db3", Undo: true}
	cases := []struct {
		name  string
		steps []StepRecord
		ok    []bool
		want  string
	}{
		{"stopped, run died", []StepRecord{stop, other}, []bool{true, true}, "db2,db3"},
		{"stopped and undone", []StepRecord{stop, other, undo}, []bool{true, false, true}, ""},
		{"one undone", []StepRecord{stop, undoOne}, []bool{true, true}, "db2"},
		{"the stop failed: it may have stopped some", []StepRecord{stop}, []bool{false}, "db2,db3"},
		{"the undo failed", []StepRecord{stop, undo}, []bool{true, false}, "db2,db3"},
		{"no stop", []StepRecord{other}, []bool{true}, ""},
		{"a switchover's chained replica, run died before its repoint", []StepRecord{chainStop}, []bool{true}, "db3"},
		{"a chained replica repointed", []StepRecord{chainStop, chained}, []bool{true, true}, ""},
		{"a chained replica whose repoint failed", []StepRecord{chainStop, chained}, []bool{true, false}, "db3"},
		{"a chained replica pointed back by the undo", []StepRecord{chainStop, chained, pointedBack}, []bool{true, false, true}, ""},
		{"more results than names are ignored", []StepRecord{stop}, []bool{true, true}, "db2,db3"},
		{"fewer results than names: an undo without a result did not happen", []StepRecord{stop, undo}, []bool{true}, "db2,db3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			names := make([]string, len(tc.steps))
			for i, s := range tc.steps {
				names[i] = s.HistoryName()
			}
			if got := strings.Join(StoppedIOThreads(names, tc.ok), ","); got != tc.want {
				t.Fatalf("StoppedIOThreads(%q, %v) = %q, want %q", names, tc.ok, got, tc.want)
			}
		})
	}
}
