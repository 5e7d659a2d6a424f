// Package failover holds Regent's decisions: detection, analysis of a
// cluster view into problems, candidate ranking, and the plans for failover,
// switchover, forced failover, rejoin and the smaller repairs, with anti-flap
// and pause; and the Runner, the thin imperative shell that carries the plans
// out through the small interfaces of interfaces.go.
//
// # A functional core
//
// Analyze, Rank and the Plan functions take plain values — a View, a Policy
// — and return plain values. They read no clock (View.Now is an input), do no
// I/O, use no randomness and start no goroutine; ties are broken by instance
// name and map order never shows. The same view always gives the same
// decision, which is what lets hundreds of named table cases run in
// milliseconds, and a status page, an automatic decision and a plan never
// disagree.
//
// It must not import topology, consensus or proxyhook (README "Layout";
// TestCoreStaysPure enforces it): it declares its own value types and small
// interfaces, and the agent package adapts the others to them. GTIDSet is an
// interface shaped like topology.GTIDSet (Contains, Equal, Subtract, Union,
// IsEmpty, String) so that the adapter is a one-field wrapper.
//
// # The loop the agent runs
//
//	leadership.Barrier(ctx)         // once, after becoming leader, before the first view
//	view := assemble()              // probes, agent reports, Raft state, Now
//	known := CarryErrant(prevView)  // set each view.Instances[n].ErrantJudged from it
//	for _, p := range Analyze(view, policy) { // priority order
//		if p.Actionable {
//			plan, err := PlanAction(view, policy, p)
//			if err == nil {
//				res, err := runner.Run(ctx, view, policy, plan)
//				... metrics and logs from res
//			}
//			break
//		}
//	}
//
// # Detection
//
// The recorded primary is dead when (a) the leader's own probes have failed
// for failure_timeout, (b) a strict majority of the agents with a fresh probe
// (and at least min_agreeing_agents) fail to reach it, and (c) no replica
// still receives from it: its IO thread is not connected to it, or — when
// heartbeats are configured — no heartbeat or read-position progress for two
// heartbeat periods plus a probe interval. An authentication or privilege
// error proves a server answered and never counts as a failure. If replicas
// still receive, the primary is unreachable, not dead: no failover (a blip on
// the managers' side, or a primary the agents cannot reach but its replicas
// can).
//
// The fast path: when the primary's own agent is alive and reports its mysqld
// gone (connection refused on the local socket, process exited), the primary
// is dead at once, unless something observed after that report contradicts
// it (an agent reached it, or a replica still receives from it). Probes taken
// before the report are no evidence either way.
//
// Isolation is a separate question: when the primary's agent has not been
// heard for fence_after (or reports it does not hold the lease), it has lost
// the quorum and sets its instance read-only (the self-fencing lease,
// docs/safety.md). Writes stop there, so a failover is called for once its lease
// has surely lapsed (last heard + lease_timeout), even if replicas still
// receive from the now read-only primary. A consequence for operators: an
// agent restart on the primary's host that lasts longer than lease_timeout
// causes a failover; pause, or switch over, before maintenance on that agent.
//
// # The problem table
//
// Analyze evaluates a declarative table (analysis.go: problemTable), each row
// a code, a description, a priority, the action it calls for, the codes it
// supersedes, and a pure predicate over the derived facts:
//
//	prio code                        action               notes
//	  10 TwoWritablePrimaries        fence                the one outside the epoch
//	  12 WritableReplica             fence                a non-primary takes writes
//	  15 NoPrimary                   -                    names the writable instance to adopt
//	  20 DeadPrimaryAndSomeReplicas  failover             supersedes DeadPrimary
//	  21 DeadPrimary                 failover             (a)+(b)+(c), or the fast path
//	  25 PrimaryIsolated             failover             once its agent's lease has lapsed
//	  30 UnreachablePrimary          -                    says which condition is missing
//	  35 PrimaryNotWritable          restore-writes       only while its agent holds the lease; lossless semi-sync first
//	  37 PrimaryNotRouted            -                    the leader's route push fails; it keeps pushing
//	  40 SemiSyncBlocked             -                    commits wait, or fell back to async
//	  45 SemiSyncNotEnforced         configure-semi-sync  source off or not AFTER_SYNC
//	  50 ErrantGTIDOnReplica         -                    with the errant GTIDs
//	  54 IntermediateSourceLost      repoint              a relocation's source is down: under the primary
//	  55 ReplicaPointsElsewhere      repoint              only when provably errant-free; relocations kept
//	  56 ReplicaIOLeftStopped        repoint              an operation's stop not undone, or a receiver that gave up
//	  58 RejoinNeeded                rejoin               former primary; auto_rejoin
//	  60 ReplicaNotReplicating       -                    IO/SQL thread and last errors
//	  62 ReplicaUnreachable          -
//	  63 FormerPrimaryUnreachable    -                    informational: the old primary still down
//	  65 ReplicaLagging              -                    beyond max_lag_on_failover (+ SQL_Delay)
//	  70 InstanceQuarantined         -
//	  72 InstanceInMaintenance       -                    informational; quiets 55–65 for it
//	  90 AutomationBlocked           -                    paused / anti-flap / operation (informational)
//	 100 Healthy                     -                    when nothing else (but informational) fired
//
// A Problem whose action is not taken now is never silent — an operator
// must be able to see that recovery is off or held back, and why: it lists
// its Blockers — paused, anti_flap (until when), operation in progress,
// lease not lapsed (until when), no candidate (with every candidate's
// exclusions), disabled (auto_rejoin off), unsafe. Pause blocks
// every automatic action; the anti-flap window blocks only automatic
// failovers; manual operations bypass both. An operation recorded in progress
// for longer than operation_timeout is taken for abandoned (its leader died)
// and taken over, so that a crashed run never blocks recovery forever.
//
// # Ranking
//
// Rank excludes, each with a reason: instances the leader cannot reach (it is
// the one that acts), quarantined ones, ones in maintenance, errant transactions, must_not, not a
// replica of this cluster, a stopped or broken SQL thread, SQL_Delay > 0, lag
// above max_lag_on_failover (the lag seen before the IO threads stopped is
// carried, since stopping them makes it NULL), and a silent own agent (it
// could neither hold the lease nor answer /primary).
//
// The Target is the union of what every clean survivor holds — executed plus
// received into the relay log, since semi-sync acknowledges on receipt —
// must_not, delayed, lagging and broken replicas included, plus the old
// primary's set when the leader still reaches it. Candidates are ordered by:
// holds all of Target; then how many other candidates' sets theirs contains
// (a total order even for incomparable sets); then prefer before neutral;
// then name. So prefer is a tie-break between equally advanced replicas: the
// most advanced one is promoted without a catch-up step when it may be.
//
// If the chosen one lacks part of Target, the plan catches it up first from a
// source that holds all of it and can serve it (already executed, or able to
// apply its relay log) — a must_not or lagging replica may be that source. If
// no instance holds all of Target the survivors have diverged and nothing is
// chosen: with GTID replication and ordered commits, replicas' sets are
// prefixes of one history, so incomparable sets mean errant transactions
// somewhere, and promoting either side would drop the other's. A forced
// failover may override that, with a warning naming what is lost.
//
// Errant transactions. While the primary lives, ErrantGTIDs compares each
// agent's probe of a replica with the same agent's probe of the primary taken
// no earlier (one clock orders them, so every legitimate transaction of the
// replica is on the primary): exact. CarryErrant keeps each agent's newest
// judgement from view to view, so it survives the primary's death, and one
// agent's judgement is replaced only by a newer one of the same agent (an
// older pair of probes from another agent, taken before the errant write
// arrived, must not clear it). At failover time the
// reference is the old primary's last known set L (Instance.LastSeen): a
// replica holding transactions beyond L while lacking part of L holds errant
// ones (late transactions from the primary would come after all of L). A
// replica holding all of L plus more is indistinguishable by sets from one
// that received the primary's last transactions, which must not be lost;
// there the carried judgement decides, and a disagreement between two such
// replicas is a divergence. Transactions in L that no survivor holds are
// reported as lost (with semi_sync none was acknowledged, unless semi-sync
// had fallen back to asynchronous).
//
// # Plans
//
// A failover is planned in two phases because the choice must be made on
// fresh facts: PlanFailover returns record-intent → pre-hooks →
// unroute-old-primary → fence-old-primary (direct when the leader reaches it;
// through its live agent, at once when that agent saw mysqld go) or wait-lease
// (until its silent agent's last contact + lease_timeout) → stop-io-threads →
// wait-relay-logs → choose-candidate; the runner re-probes and ChooseCandidate
// appends catch-up (when needed) → promote → repoint → route → commit-epoch
// (epoch N+1, anti-flap window) → post-hooks. PlanSwitchover,
// PlanForcedFailover, PlanRejoin (rejoin when the old primary's set is a
// subset of the primary's, quarantine with the errant GTIDs otherwise),
// PlanFence, PlanRepoint, PlanRestoreWrites and PlanConfigureSemiSync return
// complete plans. Every step carries its timeout from the Policy, a reason,
// whether it is irreversible (VerifyLeader before it) and its undo. A planner
// says no with a *Refusal (errors.Is(err, ErrRefused)) listing every reason.
//
// # The runner
//
// Runner (runner.go, runner_steps.go) is the imperative shell: it executes a
// Plan step by step, one handler per StepKind, through Inspector, Actuator,
// Leadership, StateStore, Router, Hooks and Clock, which the agent adapts
// from topology, consensus and proxyhook. It reads time only from the Clock
// and starts no goroutine, so its tests run on a fake clock.
//
//   - Every step runs under context.WithTimeout(its Timeout); a step that
//     runs out of it fails with ErrStepTimeout. VerifyLeader precedes every
//     Irreversible step: only the Raft leader acts, and a deposed one must
//     stop before a step it cannot take back.
//   - The intent is a conditional BeginOperation (ChangeIntent); each step
//     is recorded as it ends (ChangeStep), with its timing, result and
//     detail; a commit is CommitPrimary (ChangeCommitEpoch) then SetAntiFlap
//     (ChangeAntiFlap); the run ends with FinishOperation (ChangeFinish).
//     Each Change is exactly one consensus command. An abandoned operation
//     the plan takes over is aborted first (ChangeAbort). The small repairs
//     (fence, repoint, restore-writes, configure-semi-sync) are recorded
//     when the store can record their kind (HistoryKinds), and otherwise run
//     with log lines only.
//   - Choose-candidate re-probes the survivors (and the old primary when the
//     leader still reached it), refreshes the agents' last contact, sets
//     Now, and calls ChooseCandidate, which appends the rest of the plan.
//   - A failed step before any promotion aborts the run cleanly: the undo of
//     every step that ran — the failed one included, as it may have
//     half-happened and every action is idempotent — runs in reverse order:
//     IO threads restarted, a switchover's old primary routed back (with the
//     new epoch, which the router accepts as not older) and made writable
//     again. A failed promote is compensated by fencing its instance. The
//     operation finishes failed, or aborted when the run chose to stop (a
//     refusal on fresh facts, a failed pre-hook, long write transactions).
//     A failover or switchover that ends so runs the "failed" hooks.
//   - After a promotion there is no way back that is safe — undoing would
//     risk two writers or lose the new primary's writes — so a later failure
//     is recorded as a failed step and the run goes on to route, commit and
//     post-hooks; it ends failed, never successful: a failed step, a
//     post-hook's included, is never reported as a success.
//   - Lost leadership (ErrNotLeader), or another run owning the cluster
//     (ErrStaleEpoch, the store's ErrConflict), stops the run at once,
//     undoing and recording nothing: a new leader owns the cluster and takes
//     the operation over after operation_timeout.
//
// Fencing waits on the lease: a silent agent's lease has lapsed at Step.Until
// (last contact + lease_timeout). A live agent renews no lease once it has
// seen the intent replacing its instance, so its lease has lapsed at the
// latest lease_timeout after the intent; the runner waits for that bound.
//
// RunResult tells what happened: outcome and reason, old and new primary,
// epochs, GTID at promotion, every step with its timing, the total duration,
// a switchover's write-blocked window (from the moment the old primary began
// to be made read-only or unrouted, to the moment writes reached the new
// primary, or the old one again after an undo; README "Configuration", How
// a switchover runs) and, when an instance was promoted, the time from the
// run's start to the route. An Observer hears each step start and end
// (StepEvent) for progress streams.
package failover
