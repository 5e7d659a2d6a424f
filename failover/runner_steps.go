package failover

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// This file holds the runner's step handlers: one per StepKind, each doing
// exactly what plan.go's documentation of the kind says.

// StepFailedHooks runs the operator's "failed" hooks (for alerting) when a
// recorded failover or switchover ends failed or aborted. The runner adds it;
// no planner does.
const StepFailedHooks StepKind = "failed-hooks"

// handle runs the handler of s.Kind under ctx, which carries the step's
// timeout.
func (ru *run) handle(ctx context.Context, s Step, undo bool, x *outcome) error {
	a := ru.r.cfg.Actuator
	switch s.Kind {
	case StepRecordIntent:
		return ru.recordIntent(ctx, s, x)
	case StepPreHooks, StepPostHooks, StepFailedHooks:
		return ru.hooks(ctx, s, x)
	case StepWaitLongTransactions:
		x.touched = []string{s.Instance}
		if err := a.WaitWriteTransactions(ctx, s.Instance); err != nil {
			return fmt.Errorf("%s still runs long write transactions: %w", s.Instance, err)
		}
		x.note("no long write transaction on %s", s.Instance)
		return nil
	case StepUnrouteOldPrimary:
		ru.markBlock()
		x.touched = []string{s.Instance}
		if err := ru.r.cfg.Router.UnrouteWrites(ctx, ru.plan.Cluster, s.Instance, s.Epoch); err != nil {
			return err
		}
		x.note("%s removed from write routing (epoch %d)", s.Instance, s.Epoch)
		return nil
	case StepFenceOldPrimary:
		return ru.fenceOld(ctx, s, x)
	case StepWaitLease:
		return ru.waitLease(ctx, s, x)
	case StepStopIOThreads:
		return ru.stopIO(ctx, s, x)
	case StepStartIOThreads:
		return ru.startIO(ctx, s, x)
	case StepWaitRelayLogs:
		return ru.waitRelayLogs(ctx, s, x)
	case StepChooseCandidate:
		return ru.choose(ctx, s, x)
	case StepCatchUp:
		return ru.catchUp(ctx, s, x)
	case StepPromote:
		// Recorded before it is made writable: if this run dies before the
		// commit, the next leader knows an instance may be writable outside
		// the epoch, fences it and counts its data (docs/safety.md).
		if err := ru.apply(ctx, Change{Kind: ChangeCandidate, Instance: s.Instance}); err != nil {
			return err
		}
		x.touched = []string{s.Instance}
		if err := a.Promote(ctx, s.Instance, s.SemiSync); err != nil {
			return err
		}
		ru.promoted = true
		ru.res.NewPrimary = s.Instance
		x.note("%s is writable", s.Instance)
		return nil
	case StepRepoint:
		x.touched = []string{s.Instance}
		if s.Demote {
			fresh, err := ru.r.cfg.Inspector.Probe(ctx, s.Instance)
			if err != nil {
				return err
			}
			if alreadyReplicates(ru.v, s, fresh) {
				x.note("%s already replicates from %s", s.Instance, s.Source)
				return nil
			}
			if err := ru.stillSubset(ctx, s, fresh); err != nil {
				return err
			}
		}
		if s.Chain {
			if err := ru.chainUnder(ctx, s, x); err != nil {
				return err
			}
		}
		if err := a.Repoint(ctx, s.Instance, s.Source, RepointOptions{Demote: s.Demote, SemiSync: s.SemiSync, KeepDelay: true}); err != nil {
			return err
		}
		x.note("%s replicates from %s", s.Instance, s.Source)
		return nil
	case StepRoute:
		return ru.route(ctx, s, undo, x)
	case StepCommitEpoch:
		return ru.commit(ctx, s, x)
	case StepFence:
		x.touched = []string{s.Instance}
		if err := a.SetReadOnly(ctx, s.Instance, true); err != nil {
			return err
		}
		if err := a.KillClientConnections(ctx, s.Instance); err != nil {
			return fmt.Errorf("%s is read-only but its client connections were not killed: %w", s.Instance, err)
		}
		x.note("read_only=ON, client connections killed")
		return nil
	case StepSetWritable:
		x.touched = []string{s.Instance}
		if s.SemiSync {
			// Before the writes, never after: a commit acknowledged
			// meanwhile could be held by this instance alone
			// (losslessWrites).
			if err := a.ConfigureSemiSync(ctx, s.Instance, "source"); err != nil {
				return fmt.Errorf("writes not given back: configuring the lossless semi-sync source side failed: %w", err)
			}
			x.note("lossless semi-sync source side on %s", s.Instance)
		}
		if err := a.SetReadOnly(ctx, s.Instance, false); err != nil {
			return err
		}
		x.note("read_only=OFF on %s", s.Instance)
		return nil
	case StepConfigureSemiSync:
		x.touched = []string{s.Instance}
		return a.ConfigureSemiSync(ctx, s.Instance, s.Role)
	case StepRecordSemiSync:
		if err := ru.apply(ctx, Change{Kind: ChangeSemiSync, Instance: s.Instance, Degraded: s.Role == "degraded", Reason: s.Why}); err != nil {
			return err
		}
		x.note("semi-sync %s recorded in the replicated state", s.Role)
		return nil
	case StepQuarantine:
		c := Change{Kind: ChangeQuarantine, Instance: s.Instance, Reason: s.Why}
		if s.GTID != nil {
			c.GTID = s.GTID.String()
		}
		if err := ru.apply(ctx, c); err != nil {
			return err
		}
		x.note("%s quarantined", s.Instance)
		return nil
	case StepRecordSource:
		if err := ru.apply(ctx, Change{Kind: ChangeSource, Instance: s.Instance, Target: s.Source, Trigger: ru.opts.Requester}); err != nil {
			return err
		}
		if s.Source == "" {
			x.note("%s recorded directly under the primary", s.Instance)
		} else {
			x.note("%s recorded under %s", s.Instance, s.Source)
		}
		return nil
	case StepLiftQuarantine:
		if err := ru.apply(ctx, Change{Kind: ChangeLiftQuarantine, Instance: s.Instance}); err != nil {
			return err
		}
		x.note("%s no longer quarantined", s.Instance)
		return nil
	}
	return fmt.Errorf("the runner has no handler for step kind %q", s.Kind)
}

// recordIntent begins the operation in the replicated state.
func (ru *run) recordIntent(ctx context.Context, s Step, x *outcome) error {
	if !ru.record {
		x.skipped = true
		x.note("%s is not recorded in the replicated history (it changes no epoch)", ru.plan.Kind)
		return nil
	}
	if old := ru.plan.TakesOver; old != "" {
		err := ru.apply(ctx, Change{Kind: ChangeAbort, OperationID: old,
			Reason: fmt.Sprintf("abandoned: in progress for longer than operation_timeout (%v); taken over by %s %s", ru.p.OperationTimeout, ru.plan.Kind, ru.id)})
		switch {
		case err == nil:
			x.note("abandoned operation %s aborted", old)
		case errors.Is(err, ErrConflict):
			// It ended meanwhile; the intent below says whether the
			// cluster is free.
			x.note("abandoned operation %s had already ended", old)
		default:
			return err
		}
	}
	now := ru.r.cfg.Clock.Now()
	err := ru.apply(ctx, Change{Kind: ChangeIntent, ExpectEpoch: s.ExpectEpoch, Epoch: s.Epoch,
		TakesOver: ru.plan.TakesOver, Instance: s.Instance, Target: ru.target(s), Trigger: ru.triggerText(s),
		Automatic: ru.plan.Trigger == TriggerAutomatic, Reason: s.Why, At: now})
	if err != nil {
		return err
	}
	ru.recorded, ru.intentAt = true, now
	if s.Epoch != s.ExpectEpoch {
		x.note("operation %s recorded at epoch %d (commits epoch %d)", ru.id, s.ExpectEpoch, s.Epoch)
	} else {
		x.note("operation %s recorded at epoch %d", ru.id, s.ExpectEpoch)
	}
	return nil
}

// target is the instance the operation promotes or acts on, as far as known.
func (ru *run) target(s Step) string {
	switch {
	case ru.plan.NewPrimary != "":
		return ru.plan.NewPrimary
	case ru.plan.Target != "":
		return ru.plan.Target
	case ru.plan.Kind == OpFailover:
		return "" // chosen later, on fresh facts
	}
	return s.Instance
}

// triggerText says why the operation runs: who asked, or what was detected.
func (ru *run) triggerText(s Step) string {
	switch {
	case ru.opts.Requester != "":
		return "requested by " + ru.opts.Requester + ": " + s.Why
	case ru.plan.Trigger == TriggerAutomatic:
		return "automatic: " + s.Why
	}
	return string(ru.plan.Trigger) + ": " + s.Why
}

// hooks runs the operator's hooks of the step's phase.
func (ru *run) hooks(ctx context.Context, s Step, x *outcome) error {
	phase := hookPhase(ru.plan.Kind, s)
	if ru.r.cfg.Hooks == nil {
		x.skipped = true
		x.note("no %s hooks configured", phase)
		return nil
	}
	out, err := ru.r.cfg.Hooks.Run(ctx, phase, ru.plan)
	x.output = out
	x.note("%s hooks", phase)
	if err != nil {
		return fmt.Errorf("%s hooks: %w", phase, err)
	}
	return nil
}

// hookPhase names the hooks' event: "pre-failover", "post-switchover",
// "failed". A forced failover is a failover to the hooks.
func hookPhase(kind OperationKind, s Step) string {
	op := s.Operation
	if op == "" {
		op = kind
	}
	if op == OpForcedFailover {
		op = OpFailover
	}
	switch s.Kind {
	case StepPreHooks:
		return "pre-" + string(op)
	case StepPostHooks:
		return "post-" + string(op)
	}
	return "failed"
}

// markBlock notes when writes to the old primary start being blocked.
func (ru *run) markBlock() {
	if ru.blockStart.IsZero() {
		ru.blockStart = ru.r.cfg.Clock.Now()
	}
}

// heldKey is the context key of the report WritesHeldFrom makes.
type heldKey struct{}

// WritesHeldFrom lets an Actuator say, from inside SetReadOnly(ctx, i,
// true), when the instance began holding new writes back: the moment it sent
// the statement that does (SET GLOBAL read_only). The fence step starts
// there, not where writes stop: before it come the connection, the session
// listing and the kills, and killed clients that reconnect meanwhile still
// commit. A switchover's write-blocked window starts at the reported moment,
// so that it measures what clients see (README "Configuration", *The window
// clients see*). It must be called before SetReadOnly returns, on the
// goroutine that runs it, with a time of the runner's clock; outside such a
// call it does nothing.
func WritesHeldFrom(ctx context.Context, t time.Time) {
	if report, ok := ctx.Value(heldKey{}).(func(time.Time)); ok && !t.IsZero() {
		report(t)
	}
}

// heldReport is ctx carrying the report WritesHeldFrom makes, and a
// function that returns the first moment reported (zero when none was).
// The report is made before the call it was given to returns, on the
// goroutine that runs it (WritesHeldFrom's contract): no lock.
func heldReport(ctx context.Context) (context.Context, func() time.Time) {
	var held time.Time
	ctx = context.WithValue(ctx, heldKey{}, func(t time.Time) {
		if held.IsZero() {
			held = t
		}
	})
	return ctx, func() time.Time { return held }
}

// moveBlock moves the window's start, set by markBlock before the fence, to
// the moment the fence reported writes held back, when that is later and
// the window has not ended.
func (ru *run) moveBlock(held time.Time) {
	if held.After(ru.blockStart) && ru.blockEnd.IsZero() && !ru.blockStart.IsZero() {
		ru.blockStart = held
	}
}

func (ru *run) waitUntil(ctx context.Context, t time.Time) error {
	clock := ru.r.cfg.Clock
	d := t.Sub(clock.Now())
	if d <= 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return fmt.Errorf("waiting until %s: %w", stamp(t), ctx.Err())
	case <-clock.After(d):
		return nil
	}
}

// leaseBound is when the old primary's agent has surely let its lease lapse.
// A silent agent's lapses at until (its last contact + lease_timeout). A live
// agent keeps hearing the quorum, but it renews no lease once it has seen the
// intent replacing its instance, so its lease lapses at the latest
// lease_timeout after the intent.
func (ru *run) leaseBound(until time.Time) time.Time {
	if until.After(ru.v.Now) && !ru.intentAt.IsZero() {
		if b := ru.intentAt.Add(ru.p.LeaseTimeout); b.After(until) {
			return b
		}
	}
	return until
}

func (ru *run) ownerOf(instance string) AgentID { return ru.v.Instances[instance].OwnerAgent }

// fenceOld stops the old primary from taking writes (StepFenceOldPrimary).
func (ru *run) fenceOld(ctx context.Context, s Step, x *outcome) error {
	a := ru.r.cfg.Actuator
	agent := ru.ownerOf(s.Instance)
	if s.Via == FenceSemiSync {
		return ru.fenceSemiSync(ctx, s, x)
	}
	if s.Via == FenceByAgent {
		// Its agent does it: nothing for the runner to undo.
		x.noUndo = true
		if s.Until.IsZero() {
			x.note("mysqld is gone; its agent %s keeps %s read-only if it restarts (it sees the intent)", agent, s.Instance)
			return nil
		}
		lapse := ru.leaseBound(s.Until)
		if err := ru.waitUntil(ctx, lapse); err != nil {
			return fmt.Errorf("agent %s's lease had not surely lapsed: %w", agent, err)
		}
		// Said as it is: a frozen mysqld is not read-only yet; what the
		// lease guarantees is that its agent fences it before letting it
		// take writes again.
		x.note("agent %s released or lost its lease by %s: %s may not take writes again without being fenced first", agent, stamp(lapse), s.Instance)
		return nil
	}
	ru.markBlock()
	x.touched = []string{s.Instance}
	fctx, held := heldReport(ctx)
	err := a.SetReadOnly(fctx, s.Instance, true)
	ru.moveBlock(held())
	if err == nil {
		err = a.KillClientConnections(ctx, s.Instance)
		if err == nil {
			x.note("read_only=ON, client connections killed")
			return nil
		}
	}
	if s.Until.IsZero() {
		return err
	}
	// The lease fences it instead. This wait is bounded by the lease, not by
	// the step's timeout, which the direct attempt may have used up.
	lapse := ru.leaseBound(s.Until)
	x.noUndo = true
	x.note("direct fence failed (%v); waited for agent %s's lease to lapse at %s", err, agent, stamp(lapse))
	if werr := ru.waitUntil(ru.ctx, lapse); werr != nil {
		return fmt.Errorf("direct fence failed (%v), and the wait for agent %s's lease was cut short: %w", err, agent, werr)
	}
	return nil
}

// waitLease waits until a silent agent's lease has surely lapsed.
// fenceSemiSync checks, on fresh probes, that none of the replicas that could
// acknowledge the old primary's commits still receives from it (the step
// before stopped their IO threads): then lossless semi-sync fences it and the
// failover goes on at once. Otherwise it falls back to waiting for its
// agent's lease to lapse, as a fence by the agent would.
func (ru *run) fenceSemiSync(ctx context.Context, s Step, x *outcome) error {
	x.noUndo = true
	var unsure []string
	for _, n := range s.Instances {
		pr, err := ru.r.cfg.Inspector.Probe(ctx, n)
		switch {
		case err != nil:
			unsure = append(unsure, fmt.Sprintf("%s: %v", n, err))
		case !pr.Reachable:
			unsure = append(unsure, fmt.Sprintf("%s: %s", n, classText(pr)))
		case pr.Replica == nil:
		case pr.Replica.IOState == IOYes || pr.Replica.IOState == IOConnecting:
			if src, ok := resolveSource(ru.v, pr.Replica.Source); !ok || src == s.Instance {
				unsure = append(unsure, fmt.Sprintf("%s: its IO thread is %s", n, pr.Replica.IOState))
			}
		}
	}
	agent := ru.ownerOf(s.Instance)
	if len(unsure) == 0 {
		x.note("lossless semi-sync fences %s: %s receive nothing from it, so it can acknowledge no commit; its agent %s sets it read-only when it can", s.Instance, orNone(s.Instances), agent)
		return nil
	}
	lapse := ru.leaseBound(s.Until)
	x.note("not every acknowledger is accounted for (%s): waited for agent %s's lease to lapse at %s", strings.Join(unsure, "; "), agent, stamp(lapse))
	if err := ru.waitUntil(ctx, lapse); err != nil {
		return fmt.Errorf("an acknowledger may still receive from %s (%s), and agent %s's lease had not surely lapsed: %w", s.Instance, strings.Join(unsure, "; "), agent, err)
	}
	return nil
}

func (ru *run) waitLease(ctx context.Context, s Step, x *outcome) error {
	agent := ru.ownerOf(s.Instance)
	if !s.Until.After(ru.r.cfg.Clock.Now()) {
		x.note("agent %s's lease had lapsed at %s", agent, stamp(s.Until))
		return nil
	}
	if err := ru.waitUntil(ctx, s.Until); err != nil {
		return err
	}
	x.note("waited for agent %s's lease to lapse at %s: it has set %s read-only", agent, stamp(s.Until), s.Instance)
	return nil
}

// stopIO stops the IO threads. A replica whose thread cannot be stopped does
// not fail the step: its lag and set are read again at choose-candidate, and
// the old primary is already fenced, so it can deliver nothing new.
func (ru *run) stopIO(ctx context.Context, s Step, x *outcome) error {
	var stopped, failed []string
	if ps, ok := ru.r.cfg.Actuator.(ParallelIOStopper); ok && len(s.Instances) > 1 {
		x.touched = append(x.touched, s.Instances...)
		errs := ps.StopReplicaIOs(ctx, s.Instances)
		for i, n := range s.Instances {
			if i < len(errs) && errs[i] != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", n, errs[i]))
				continue
			}
			stopped = append(stopped, n)
		}
	} else {
		for _, n := range s.Instances {
			if ctx.Err() != nil {
				failed = append(failed, n+": not attempted (step timeout)")
				continue
			}
			x.touched = append(x.touched, n)
			if err := ru.r.cfg.Actuator.StopReplicaIO(ctx, n); err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", n, err))
				continue
			}
			stopped = append(stopped, n)
		}
	}
	switch {
	case len(s.Instances) == 0:
		x.note("no replica to stop")
	case len(stopped) > 0:
		x.note("stopped on %s", strings.Join(stopped, ", "))
	}
	if len(failed) > 0 {
		x.note("not stopped: %s (ranked on fresh facts all the same)", strings.Join(failed, "; "))
	}
	return nil
}

// startIO restarts IO threads (the undo of stopIO).
func (ru *run) startIO(ctx context.Context, s Step, x *outcome) error {
	var started, failed []string
	for _, n := range s.Instances {
		x.touched = append(x.touched, n)
		if err := ru.r.cfg.Actuator.StartReplicaIO(ctx, n); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", n, err))
			continue
		}
		started = append(started, n)
	}
	if len(started) > 0 {
		x.note("started on %s", strings.Join(started, ", "))
	}
	if len(failed) > 0 {
		return fmt.Errorf("IO thread not started on %s", strings.Join(failed, "; "))
	}
	return nil
}

// waitRelayLogs waits for each replica to apply what it received. It is an
// optimisation, never a gate: ranking counts received transactions as held,
// and ChooseCandidate adds a catch-up when the chosen one still has relay log
// to apply. So a replica that cannot apply (SQL thread stopped, delayed) is
// not waited for, and the step ends ok at its timeout, saying who was not
// done.
func (ru *run) waitRelayLogs(ctx context.Context, s Step, x *outcome) error {
	var applied, notes []string
	for _, n := range s.Instances {
		if ctx.Err() != nil {
			notes = append(notes, n+": not confirmed within the step's timeout")
			continue
		}
		pr, err := ru.r.cfg.Inspector.Probe(ctx, n)
		switch {
		case err != nil:
			notes = append(notes, fmt.Sprintf("%s: %v", n, err))
		case !pr.Reachable:
			notes = append(notes, fmt.Sprintf("%s: unreachable (%s)", n, classText(pr)))
		case pr.Replica == nil:
			notes = append(notes, n+": not a replica")
		case !pr.Replica.SQLRunning:
			notes = append(notes, n+": SQL thread stopped, cannot apply")
		case pr.Replica.SQLDelay > 0:
			notes = append(notes, fmt.Sprintf("%s: delayed replica (%v), not waited for", n, pr.Replica.SQLDelay))
		case pr.Replica.Retrieved == nil:
			notes = append(notes, n+": received set unknown")
		default:
			if err := ru.r.cfg.Actuator.WaitExecuted(ctx, n, pr.Replica.Retrieved); err != nil {
				notes = append(notes, fmt.Sprintf("%s: relay log not applied: %v", n, err))
				continue
			}
			applied = append(applied, n)
		}
	}
	if len(applied) > 0 {
		x.note("applied on %s", strings.Join(applied, ", "))
	}
	if len(notes) > 0 {
		x.note("%s", strings.Join(notes, "; "))
	}
	return nil
}

// choose re-probes the survivors (and the old primary when the leader still
// reached it: its transactions must not be lost), refreshes the agents' last
// contact, and lets ChooseCandidate append the rest of the plan.
func (ru *run) choose(ctx context.Context, s Step, x *outcome) error {
	fresh := cloneView(ru.v)
	names := append([]string(nil), s.Instances...)
	old := ru.plan.OldPrimary
	if _, rc := leaderReach(ru.v, ru.p, old); rc == reachOK && !contains(names, old) {
		names = append(names, old)
	}
	for _, n := range names {
		pr, err := ru.r.cfg.Inspector.Probe(ctx, n)
		if err != nil {
			return fmt.Errorf("re-probe %s: %w", n, err)
		}
		in := fresh.Instances[n]
		probes := make(map[AgentID]Probe, len(in.Probes)+1)
		for a, p := range in.Probes {
			probes[a] = p
		}
		probes[fresh.Leader] = pr
		in.Probes = probes
		if pr.Reachable && pr.ObservedAt.After(in.LastSeen.ObservedAt) {
			in.LastSeen = pr
		}
		fresh.Instances[n] = in
	}
	contacts, _, err := ru.r.cfg.Store.LastContact(ctx)
	switch {
	case errors.Is(err, ErrNotLeader):
		return err
	case err != nil:
		x.note("agents' last contact not refreshed (%v)", err)
	}
	for a, t := range contacts {
		if rep, ok := fresh.Agents[a]; ok && t.After(rep.LastHeard) {
			rep.LastHeard = t
			fresh.Agents[a] = rep
		}
	}
	fresh.Now = ru.r.cfg.Clock.Now()
	if rep, ok := fresh.Agents[fresh.Leader]; ok {
		rep.LastHeard = fresh.Now
		fresh.Agents[fresh.Leader] = rep
	}
	ru.v = fresh
	pl, err := ChooseCandidate(fresh, ru.p, ru.plan)
	for _, w := range pl.Warnings {
		if !contains(ru.res.Warnings, w) {
			ru.res.Warnings = append(ru.res.Warnings, w)
		}
	}
	if err != nil {
		return err
	}
	ru.plan = pl
	ru.res.NewPrimary = pl.NewPrimary
	x.note("%s chosen on fresh facts", pl.NewPrimary)
	if pl.Expected != "" && pl.Expected != pl.NewPrimary {
		x.note("the facts before pointed to %s", pl.Expected)
	}
	if r := pl.Ranking; r != nil && r.CatchUpFrom != "" {
		x.note("it catches up from %s first", r.CatchUpFrom)
	}
	return nil
}

// cloneView copies the maps the runner changes, so that the caller's view is
// never modified.
func cloneView(v View) View {
	out := v
	out.Instances = make(map[string]Instance, len(v.Instances))
	for k, in := range v.Instances {
		out.Instances[k] = in
	}
	out.Agents = make(map[AgentID]AgentReport, len(v.Agents))
	for k, a := range v.Agents {
		out.Agents[k] = a
	}
	return out
}

// catchUp makes s.Instance execute s.GTID (StepCatchUp).
func (ru *run) catchUp(ctx context.Context, s Step, x *outcome) error {
	a := ru.r.cfg.Actuator
	inst, src := s.Instance, s.Source
	target := s.GTID
	if target == nil || s.ForbidExtra {
		// A switchover: the source's final set, now that it takes no
		// writes.
		pr, err := ru.r.cfg.Inspector.Probe(ctx, src)
		if err != nil {
			return fmt.Errorf("probe %s: %w", src, err)
		}
		if !pr.Reachable || pr.Executed == nil {
			return fmt.Errorf("the executed GTID set of %s cannot be read (%s)", src, classText(pr))
		}
		if target == nil {
			target = pr.Executed
		}
		if s.ForbidExtra {
			ip, err := ru.r.cfg.Inspector.Probe(ctx, inst)
			if err != nil {
				return fmt.Errorf("probe %s: %w", inst, err)
			}
			if !ip.Reachable || ip.Executed == nil {
				return fmt.Errorf("the executed GTID set of %s cannot be read (%s)", inst, classText(ip))
			}
			if extra := gtidSubtract(ip.Executed, pr.Executed); !gtidEmpty(extra) {
				return refuse(ru.plan.Kind, ru.v, fmt.Sprintf("%s holds transactions %s that %s lacks (errant): it is not promoted, so they do not spread; re-clone it, or inject empty transactions for them on %s", inst, gtidText(extra), src, src))
			}
		}
	}
	ru.promotionGTID = target
	if src != inst {
		if s.GTID != nil {
			need := target
			if s.SourceGTID != nil {
				need = s.SourceGTID
			}
			if err := a.WaitExecuted(ctx, src, need); err != nil {
				return fmt.Errorf("%s did not apply %s: %w", src, gtidText(need), err)
			}
		}
		if !ru.replicatesFrom(inst, src) {
			x.touched = []string{inst}
			if err := a.Repoint(ctx, inst, src, RepointOptions{KeepDelay: true}); err != nil {
				return fmt.Errorf("point %s at %s: %w", inst, src, err)
			}
			x.note("%s replicates from %s", inst, src)
		}
	}
	if err := a.WaitExecuted(ctx, inst, target); err != nil {
		return fmt.Errorf("%s did not reach %s: %w", inst, gtidText(target), err)
	}
	x.note("%s executed %s", inst, gtidText(target))
	return nil
}

// chainUnder readies a chained repoint: s.Source still replicates from the
// primary, and must hold all that s.Instance holds before the instance asks
// it for the rest (MariaDB refuses a replica that asks for a GTID beyond the
// source's binlog). The instance's IO thread was stopped by the step before,
// so that what it holds stops growing: a running one is refused. Its relay
// log needs no waiting for: the repoint discards it and asks from the
// executed set.
func (ru *run) chainUnder(ctx context.Context, s Step, x *outcome) error {
	pr, err := ru.r.cfg.Inspector.Probe(ctx, s.Instance)
	if err != nil {
		return fmt.Errorf("probe %s: %w", s.Instance, err)
	}
	held := pr.holds()
	switch {
	case !pr.Reachable || held == nil:
		return fmt.Errorf("what %s holds cannot be read (%s)", s.Instance, classText(pr))
	case pr.Replica == nil:
		return fmt.Errorf("%s is not a replica", s.Instance)
	case pr.Replica.IOState == IOYes || pr.Replica.IOState == IOConnecting:
		return fmt.Errorf("the IO thread of %s still runs (%s): what it holds could still grow", s.Instance, pr.Replica.IOState)
	}
	if err := ru.r.cfg.Actuator.WaitExecuted(ctx, s.Source, held); err != nil {
		return fmt.Errorf("%s did not reach %s, which %s holds: %w", s.Source, gtidText(held), s.Instance, err)
	}
	x.note("%s holds %s", s.Source, gtidText(held))
	return nil
}

// alreadyReplicates reports whether a fresh probe pr shows s.Instance doing
// what the repoint s would make it do: both threads running from s.Source,
// with the semi-sync replica side on when s asks for it and the source side
// off. An old primary's rejoin is then done already, by a previous leader
// whose run died before it could record that (its view, from before that
// repoint, said "not a replica"): repeating it would only stop and restart
// a working replica (on MariaDB such a repeat hung in CHANGE MASTER, in
// TestKillLeaderAfterRejoinStep). Only for the repoints of old primaries
// (Demote): a failover's repoints of its replicas are on the write-blocked
// path, and their replicas never replicate from the new primary yet.
func alreadyReplicates(v View, s Step, pr Probe) bool {
	if !pr.Reachable || pr.Replica == nil || pr.Replica.IOState != IOYes || !pr.Replica.SQLRunning {
		return false
	}
	if s.SemiSync && !pr.SemiSync.ReplicaEnabled || pr.SemiSync.SourceEnabled {
		return false
	}
	n, ok := resolveSource(v, pr.Replica.Source)
	return ok && n == s.Source
}

// stillSubset checks, before an old primary is repointed under s.Source,
// that its executed set (pr, probed after the fence that precedes this
// step) is still a subset of the source's, probed after it. The plan judged
// it on the view's probes, and the fence can let commits complete after
// that: on a replaced instance whose killed sessions wait for a semi-sync
// acknowledgement, switching the source side off so that read_only holds
// completes them (docs/safety.md). Repointing it then would make a replica
// that holds errant transactions (found by the frozen-mysqld benchmark on
// MySQL); failing the step leaves it fenced, and the next evaluation
// quarantines it. Once read_only holds nothing commits there any more, so
// the check cannot go stale before the repoint.
func (ru *run) stillSubset(ctx context.Context, s Step, pr Probe) error {
	if !pr.Reachable || pr.Executed == nil {
		return fmt.Errorf("%s's executed GTID set is unknown after its fence (%s): not repointed", s.Instance, classText(pr))
	}
	sp, err := ru.r.cfg.Inspector.Probe(ctx, s.Source)
	if err != nil {
		return err
	}
	if !sp.Reachable || sp.Executed == nil {
		return fmt.Errorf("%s's executed GTID set is unknown (%s): %s not repointed under it", s.Source, classText(sp), s.Instance)
	}
	if errant := gtidSubtract(pr.Executed, sp.Executed); !gtidEmpty(errant) {
		return fmt.Errorf("%s now holds transactions %s that %s lacks (committed after the plan judged it, as its fence completed commits that waited): not repointed, so that it is quarantined instead", s.Instance, gtidText(errant), s.Source)
	}
	return nil
}

// replicatesFrom reports whether the current view shows inst receiving from
// src with a running IO thread (a switchover's target), so that no repoint is
// needed.
func (ru *run) replicatesFrom(inst, src string) bool {
	pr, rc := leaderReach(ru.v, ru.p, inst)
	if rc != reachOK || pr.Replica == nil || pr.Replica.IOState != IOYes {
		return false
	}
	n, ok := resolveSource(ru.v, pr.Replica.Source)
	return ok && n == src
}

// route sends writes to s.Instance with s.Epoch.
func (ru *run) route(ctx context.Context, s Step, undo bool, x *outcome) error {
	x.touched = []string{s.Instance}
	if err := ru.r.cfg.Router.RouteWrites(ctx, ru.plan.Cluster, s.Instance, s.Epoch); err != nil {
		return err
	}
	now := ru.r.cfg.Clock.Now()
	if !undo && s.Instance == ru.res.NewPrimary && ru.res.NewPrimary != "" {
		ru.res.TimeToRoute, ru.res.RoutedAt = now.Sub(ru.start), now
		if !ru.blockStart.IsZero() {
			ru.blockEnd = now
		}
	}
	x.note("writes routed to %s (epoch %d)", s.Instance, s.Epoch)
	return nil
}

// commit makes the new primary the epoch's (StepCommitEpoch), then starts
// the anti-flap window.
// commitUnknown reports whether a failed commit may still have been
// applied: anything but the store's refusals (another leader, another
// operation, a moved epoch, pause or anti-flap), which say it was not.
func commitUnknown(err error) bool {
	for _, refused := range []error{ErrNotLeader, ErrStaleEpoch, ErrConflict, ErrPaused, ErrAntiFlap} {
		if errors.Is(err, refused) {
			return false
		}
	}
	return true
}

func (ru *run) commit(ctx context.Context, s Step, x *outcome) error {
	gtid := s.GTID
	if gtid == nil {
		gtid = ru.promotionGTID
	}
	var text string
	if gtid != nil {
		text = gtid.String()
	}
	commit := Change{Kind: ChangeCommitEpoch, Instance: s.Instance, ExpectEpoch: s.ExpectEpoch, Epoch: s.Epoch, GTID: text}
	if err := ru.apply(ctx, commit); err != nil {
		if !commitUnknown(err) || ctx.Err() != nil {
			return err
		}
		// The answer was lost (a timeout): the commit may have been
		// applied. The command is conditional and the store accepts this
		// operation's own commit again as a no-op, so one retry tells:
		// success, or a refusal that says what happened instead.
		ru.log.Warn("commit answer lost; asking again", logStep, "commit-epoch", logErr, err)
		if err2 := ru.apply(ctx, commit); err2 != nil {
			return fmt.Errorf("%w (asked again after: %v)", err2, err)
		}
	}
	ru.res.Committed, ru.res.EpochAfter, ru.res.GTIDAtPromotion = true, s.Epoch, text
	ru.res.CommittedAt = ru.r.cfg.Clock.Now()
	x.note("primary=%s, epoch %d → %d", s.Instance, s.ExpectEpoch, s.Epoch)
	if s.AntiFlap > 0 {
		until := ru.r.cfg.Clock.Now().Add(s.AntiFlap)
		if err := ru.apply(ctx, Change{Kind: ChangeAntiFlap, AntiFlapUntil: until}); err != nil {
			return fmt.Errorf("epoch %d committed, but the anti-flap window was not set: %w", s.Epoch, err)
		}
		x.note("automatic failovers blocked until %s", stamp(until))
	}
	return nil
}
