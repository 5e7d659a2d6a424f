package failover

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// StepKind names a step of a plan. The runner has one handler per kind.
type StepKind string

// The steps. Parameters are in Step; Timeout always applies.
const (
	// StepRecordIntent: conditional Raft command "operation Operation on
	// this cluster, epoch ExpectEpoch → Epoch"; rejected if the epoch moved
	// or another live operation holds the cluster. Instance is the
	// operation's subject: the primary being replaced, or the instance acted
	// on; the instance to promote, when known, is Plan.NewPrimary (switchover)
	// or Plan.Target (forced failover), and the runner records it as the
	// operation's target. Seeing the intent, the old primary's agent releases
	// its lease.
	StepRecordIntent StepKind = "record-intent"
	// StepPreHooks / StepPostHooks: the operator's hooks; a failed pre-hook
	// aborts, a failed post-hook is a failed step, never a success.
	StepPreHooks  StepKind = "pre-hooks"
	StepPostHooks StepKind = "post-hooks"
	// StepWaitLongTransactions: wait (at most Timeout) until Instance runs no
	// long write transaction; give up the switchover otherwise.
	StepWaitLongTransactions StepKind = "wait-long-transactions"
	// StepUnrouteOldPrimary: remove Instance from write routing.
	StepUnrouteOldPrimary StepKind = "unroute-old-primary"
	// StepFenceOldPrimary: stop Instance from taking writes, Via direct
	// (read_only, super_read_only, kill client connections; if that fails,
	// wait until Until for the lease to lapse) or Via agent (its live agent
	// saw the intent and keeps it read-only; wait at most Timeout for the
	// acknowledgement, then until its lease lapses on fresh facts).
	StepFenceOldPrimary StepKind = "fence-old-primary"
	// StepWaitLease: wait until Until, when the silent agent's lease has
	// surely lapsed and it has fenced Instance by itself.
	StepWaitLease StepKind = "wait-lease"
	// StepStopIOThreads: stop the IO thread of each of Instances.
	StepStopIOThreads StepKind = "stop-io-threads"
	// StepStartIOThreads: the undo of StepStopIOThreads.
	StepStartIOThreads StepKind = "start-io-threads"
	// StepWaitRelayLogs: wait (bounded) until each of Instances has applied
	// what it received.
	StepWaitRelayLogs StepKind = "wait-relay-logs"
	// StepChooseCandidate: re-probe Instances and call ChooseCandidate on the
	// fresh facts; it appends the remaining steps.
	StepChooseCandidate StepKind = "choose-candidate"
	// StepCatchUp: make Instance execute GTID. When Source is another
	// instance: wait until Source has executed GTID, point Instance at it
	// with auto-position, wait until Instance has executed GTID. When Source
	// is Instance: wait for its own relay log. GTID nil means "Source's
	// executed set once it stopped taking writes" (switchover). ForbidExtra:
	// abort if Instance holds transactions Source lacks (errant).
	StepCatchUp StepKind = "catch-up"
	// StepPromote: stop and reset replication on Instance, read_only=OFF,
	// semi-sync source on (AFTER_SYNC) when SemiSync.
	StepPromote StepKind = "promote"
	// StepRepoint: point Instance at Source with GTID auto-position (MariaDB
	// MASTER_DEMOTE_TO_SLAVE when Demote), semi-sync replica side when
	// SemiSync; a delayed replica keeps its delay.
	StepRepoint StepKind = "repoint"
	// StepRoute: route writes to Instance with Epoch.
	StepRoute StepKind = "route"
	// StepCommitEpoch: conditional Raft command "primary=Instance,
	// epoch=Epoch if epoch==ExpectEpoch", ending the operation, recording
	// GTID as the GTID at promotion and blocking automatic failovers for
	// AntiFlap.
	StepCommitEpoch StepKind = "commit-epoch"
	// StepFence: read_only (and super_read_only) and kill client connections
	// on Instance, which is not the primary.
	StepFence StepKind = "fence"
	// StepSetWritable: read_only=OFF on Instance (the undo of a switchover's
	// fence, and restoring writes on the epoch's primary); when SemiSync,
	// the lossless semi-sync source side is configured first
	// (losslessWrites).
	StepSetWritable StepKind = "set-writable"
	// StepConfigureSemiSync: configure Instance as a semi-sync Role
	// ("source" with AFTER_SYNC, or "replica").
	StepConfigureSemiSync StepKind = "configure-semi-sync"
	// StepRecordSemiSync: record in Raft that the primary Instance commits
	// asynchronously by the leader's decision (Role "degraded"), or is
	// lossless again (Role "restored"). The fallback records it before it
	// switches the source side off.
	StepRecordSemiSync StepKind = "record-semi-sync"
	// StepQuarantine: record Instance quarantined for the errant GTID.
	StepQuarantine StepKind = "quarantine"
	// StepLiftQuarantine: remove Instance from quarantine.
	StepLiftQuarantine StepKind = "lift-quarantine"
	// StepRecordSource records where an operator relocated a replica
	// (Source; "" for directly under the primary): ChangeSource.
	StepRecordSource StepKind = "record-source"
	// StepFinish: record the operation's result without a change of epoch.
	StepFinish StepKind = "finish"
)

// FenceVia says how an old primary is fenced.
type FenceVia string

// The fencing methods.
const (
	FenceDirect  FenceVia = "direct"
	FenceByAgent FenceVia = "agent"
)

// Step is one named step of a plan, with its parameters. Fields that do not
// apply to a kind are zero.
type Step struct {
	Kind     StepKind
	Instance string
	// Source: where a catch-up reads from, or what a repoint points at.
	Source string
	// Instances: the replicas a stop/wait/choose step covers.
	Instances []string
	Via       FenceVia
	Until     time.Time
	GTID      GTIDSet
	// SourceGTID, for a catch-up whose source does not hold all of GTID,
	// is what the source must have executed first: what the instance
	// lacks (nil: all of GTID).
	SourceGTID  GTIDSet
	Operation   OperationKind
	Epoch       uint64
	ExpectEpoch uint64
	Demote      bool
	SemiSync    bool
	Role        string
	ForbidExtra bool
	AntiFlap    time.Duration
	// Timeout bounds the step (from the policy).
	Timeout time.Duration
	// Irreversible steps are preceded by VerifyLeader: only the Raft leader
	// acts, and a deposed one must stop before a step it cannot take back.
	Irreversible bool
	// Undo is the step that reverses this one when the run aborts after it.
	Undo StepKind
	// UndoSource, for a repoint whose undo is a repoint, is where the undo
	// points the instance back to.
	UndoSource string
	// Chain, on a repoint, says that its source is itself still a replica
	// receiving from the primary: the instance's IO thread was stopped by
	// an earlier step, and it is repointed once the source has executed
	// everything it holds (docs/safety.md, *The switchover's order*).
	Chain bool
	// Why says why the step is there, for the history and for people.
	Why string
}

// Trigger says who asked for an operation.
type Trigger string

// The triggers. Pause and the anti-flap window block only automatic ones.
const (
	TriggerAutomatic Trigger = "automatic"
	TriggerManual    Trigger = "manual"
)

// Plan is an operation as an ordered list of steps.
type Plan struct {
	Kind    OperationKind
	Cluster string
	Trigger Trigger
	// OldPrimary is the primary being replaced (or the cluster's primary).
	OldPrimary string
	// NewPrimary is the instance promoted; "" in a failover's first phase.
	NewPrimary string
	// Expected is, in a failover's first phase, the candidate the current
	// facts point to; the choice is made by ChooseCandidate.
	Expected string
	// Target and Force are a forced failover's request, carried to
	// ChooseCandidate.
	Target string
	Force  bool
	// Epoch is the epoch the operation ends in; ExpectEpoch the one it
	// starts from.
	Epoch       uint64
	ExpectEpoch uint64
	// TakesOver is the id of an abandoned operation this one replaces.
	TakesOver string
	Steps     []Step
	// Ranking is the candidate ranking the plan rests on (nil when none).
	Ranking *Ranking
	// KnownLag carries the lag seen before IO threads were stopped to
	// ChooseCandidate.
	KnownLag map[string]time.Duration
	Warnings []string
}

// ErrRefused is matched (errors.Is) by every Refusal.
var ErrRefused = errors.New("operation refused")

// Refusal is a planner's "no", with every reason. It is a decision, not a
// failure: the HTTP API turns it into a 409 with the reasons.
type Refusal struct {
	Kind    OperationKind
	Cluster string
	Reasons []string
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("%s of cluster %s refused: %s", r.Kind, r.Cluster, strings.Join(r.Reasons, "; "))
}

// Unwrap lets errors.Is(err, ErrRefused) match.
func (r *Refusal) Unwrap() error { return ErrRefused }

func refuse(kind OperationKind, v View, reasons ...string) *Refusal {
	return &Refusal{Kind: kind, Cluster: v.Cluster, Reasons: reasons}
}

// validate checks the inputs every planner needs.
func validate(v View, p Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	return v.Validate()
}

// gate applies the checks every operation shares: an operation in progress
// refuses (unless abandoned, then it is taken over), and an automatic trigger
// is refused while paused, and — for failovers — inside the anti-flap window.
func gate(v View, p Policy, plan *Plan) []string {
	var reasons []string
	if b, busy := operationBlocker(v, p); busy {
		reasons = append(reasons, b.Reason)
	} else if op := v.State.Operation; op.Kind != OpNone {
		plan.TakesOver = op.ID
		plan.Warnings = append(plan.Warnings, fmt.Sprintf("operation %s (%s) started at %s was abandoned (operation_timeout %v): this one takes over", op.ID, op.Kind, stamp(op.StartedAt), p.OperationTimeout))
	}
	if plan.Trigger == TriggerAutomatic {
		if v.State.Paused {
			reasons = append(reasons, "the cluster is paused: no automatic action (regentctl resume)")
		}
		if plan.Kind == OpFailover && v.Now.Before(v.State.AntiFlapUntil) {
			reasons = append(reasons, fmt.Sprintf("anti-flap window until %s: automatic failover blocked (a manual failover is allowed)", stamp(v.State.AntiFlapUntil)))
		}
	}
	return reasons
}

func newPlan(v View, kind OperationKind, t Trigger) Plan {
	return Plan{Kind: kind, Cluster: v.Cluster, Trigger: t, OldPrimary: v.State.Primary, ExpectEpoch: v.State.Epoch, Epoch: v.State.Epoch}
}

func (pl *Plan) add(s Step) { pl.Steps = append(pl.Steps, s) }

// intent is the record-intent step of a plan.
func intent(p Policy, pl Plan, instance, why string) Step {
	return Step{Kind: StepRecordIntent, Instance: instance, Operation: pl.Kind, Epoch: pl.Epoch, ExpectEpoch: pl.ExpectEpoch, Timeout: p.RaftTimeout, Why: why}
}

// PlanFailover plans the first phase of an unplanned failover of the recorded
// primary (package doc, # Plans): record intent (epoch N+1) → pre-hooks →
// unroute the old primary → fence it (directly, through its agent, or by
// waiting out its lease) → stop replica IO threads → wait for relay logs →
// choose-candidate. The runner then re-probes and calls ChooseCandidate, which
// appends catch-up → promote → repoint → route → commit-epoch → post-hooks.
// Candidate choice happens on fresh facts because stopping the IO threads and
// applying relay logs changes them.
//
// An automatic trigger requires the primary to be dead (README "Detection") or
// its agent's lease to have lapsed (PrimaryIsolated), and is refused while
// paused or inside the anti-flap window. Both triggers are refused when no
// instance could be promoted on the current facts, before anything is touched.
func PlanFailover(v View, p Policy, t Trigger) (Plan, error) {
	return planFailover(v, p, t, "", false)
}

// PlanForcedFailover plans a manual failover to target. It is refused when
// the target may not be promoted — it breaks a rule (must_not, delayed,
// lagging, quarantined, errant transactions, silent agent) or would lose
// transactions another survivor holds — unless force is set, in which case
// each such reason becomes a warning. An unreachable target, or the primary
// itself, is always refused. Pause and the anti-flap window do not apply.
func PlanForcedFailover(v View, p Policy, target string, force bool) (Plan, error) {
	return planFailover(v, p, TriggerManual, target, force)
}

func planFailover(v View, p Policy, t Trigger, target string, force bool) (Plan, error) {
	kind := OpFailover
	if target != "" {
		kind = OpForcedFailover
	}
	if err := validate(v, p); err != nil {
		return Plan{}, err
	}
	pl := newPlan(v, kind, t)
	pl.Target, pl.Force = target, force
	old := v.State.Primary
	if _, ok := v.Instances[old]; !ok {
		return pl, refuse(kind, v, "no primary is recorded for this cluster: there is nothing to fail over (adopt a primary with regentctl failover --to NAME once one is recorded)")
	}
	reasons := gate(v, p, &pl)
	h := assessPrimary(v, p)
	if t == TriggerAutomatic {
		iso := assessIsolation(v, p)
		switch {
		case h.dead:
		case iso.isolated && iso.lapsed:
		case len(v.State.Uncommitted) > 0:
			// An aborted operation promoted an instance without committing
			// it: finish the change of primary (its instance may be writable
			// outside the epoch).
		case iso.isolated:
			reasons = append(reasons, fmt.Sprintf("%s: %s; its lease lapses at %s", old, iso.reason, stamp(iso.lapse)))
		default:
			reasons = append(reasons, fmt.Sprintf("%s is not dead: %s", old, strings.Join(h.unmet, "; ")))
		}
	} else if h.leaderCanDo {
		if pr, _ := leaderReach(v, p, old); pr.Writable() {
			pl.Warnings = append(pl.Warnings, fmt.Sprintf("%s is reachable and writable: a switchover would block writes for less time", old))
		}
	}

	r := Rank(v, p, RankOptions{OldPrimary: old, Target: target, Force: force})
	pl.Ranking = &r
	pl.Warnings = append(pl.Warnings, r.Warnings...)
	reasons = append(reasons, r.Refusals...)
	if len(reasons) > 0 {
		return pl, refuse(kind, v, reasons...)
	}
	pl.Expected = r.Chosen
	pl.Epoch = v.State.Epoch + 1
	pl.KnownLag = map[string]time.Duration{}
	for _, c := range r.Candidates {
		if c.Lag != nil {
			pl.KnownLag[c.Instance] = *c.Lag
		}
	}

	why := fmt.Sprintf("%s of %s: epoch %d → %d", kind, old, pl.ExpectEpoch, pl.Epoch)
	if h.dead {
		why += "; " + h.deadReason(v)
	}
	pl.add(intent(p, pl, old, why))
	pl.add(Step{Kind: StepPreHooks, Operation: kind, Timeout: p.HookTimeout, Why: "operator's pre-failover hooks; a failure aborts"})
	unroute := Step{Kind: StepUnrouteOldPrimary, Instance: old, Epoch: pl.Epoch, Timeout: p.StepTimeout, Irreversible: true, Why: "no new write may reach the old primary"}
	fence, warns := fenceSteps(v, p, old)
	if len(fence) == 1 && fence[0].Undo == StepSetWritable {
		// An abort undoes a direct fence (the old primary gets its writes
		// back), and must then route it back too: a writable primary that
		// nothing routes to is a write outage. A primary fenced by its agent
		// or its lease stays read-only and unrouted.
		unroute.Undo = StepRoute
	}
	pl.add(unroute)
	pl.Warnings = append(pl.Warnings, warns...)
	// A fence that would wait out the old primary's lease (it is hung or
	// cut off, its agent cannot fence it) is replaced, under lossless
	// semi-sync, by stopping every replica that could acknowledge it
	// (README, "Semi-sync as a fence"). The lease stays the fallback.
	var semiFence *Step
	if waitsOnLease(fence, v.Now) {
		if sf := SemiSyncFenceOf(v, p, old); sf.OK {
			until := fence[0].Until
			semiFence = &Step{Kind: StepFenceOldPrimary, Instance: old, Via: FenceSemiSync, Instances: sf.Acknowledgers, Until: until, Timeout: p.LeaseTimeout,
				Why: fmt.Sprintf("%s; if one still receives from it, wait for the lease of its agent %s to lapse at %s", sf.Reason, v.Instances[old].OwnerAgent, stamp(until))}
		}
	}
	if semiFence == nil {
		pl.Steps = append(pl.Steps, fence...)
	}
	for _, u := range sortedKeys(v.State.Uncommitted) {
		if u == old {
			continue
		}
		// Promoted by an aborted operation and never committed: it may be
		// writable. Fence it (or wait out its agent's lease) before anyone
		// else is made writable; its data still counts (Rank), and it may
		// be the one promoted again.
		uf, _ := fenceSteps(v, p, u)
		if len(uf) == 0 {
			return pl, refuse(kind, v, fmt.Sprintf("%s was promoted by the aborted operation %s and never committed: it may be writable, and it has no agent and the leader cannot reach it to fence it", u, v.State.Uncommitted[u]))
		}
		for _, s := range uf {
			s.Undo, s.Irreversible = "", false
			s.Why = fmt.Sprintf("promoted by the aborted operation %s, never committed: it may be writable; %s", v.State.Uncommitted[u], s.Why)
			pl.add(s)
		}
	}
	feeders := feedersOf(v, p, old)
	stopTimeout := p.StepTimeout
	if semiFence != nil {
		// The fence depends on these stops: give a slow one (a MariaDB
		// replica of a frozen source) twice the step time rather than
		// fall back to the lease, which costs more.
		feeders, stopTimeout = semiFence.Instances, 2*p.StepTimeout
	}
	pl.add(Step{Kind: StepStopIOThreads, Instances: feeders, Timeout: stopTimeout, Undo: StepStartIOThreads, Why: "the old primary can deliver nothing more and its semi-sync acknowledgements are withdrawn while a candidate is chosen"})
	if semiFence != nil {
		pl.add(*semiFence)
	}
	pl.add(Step{Kind: StepWaitRelayLogs, Instances: feeders, Timeout: p.RelayLogTimeout, Why: "rank on what each replica has applied, not on what it will apply"})
	pl.add(Step{Kind: StepChooseCandidate, Instances: survivorsOf(v, p, old), Timeout: p.StepTimeout, Why: fmt.Sprintf("re-probe and rank on fresh facts (current facts point to %s)", r.Chosen)})
	return pl, nil
}

// waitsOnLease reports whether fence would wait for the old primary's agent's
// lease to lapse, from now.
func waitsOnLease(fence []Step, now time.Time) bool {
	if len(fence) != 1 || !fence[0].Until.After(now) {
		return false
	}
	f := fence[0]
	return f.Kind == StepWaitLease || f.Kind == StepFenceOldPrimary && f.Via == FenceByAgent
}

// fenceSteps chooses how to fence an old primary. The agent's report of a
// gone mysqld comes first: the leader's last successful probe may predate it,
// and a direct fence against a dead server would only fail and fall back to
// waiting out a live agent's lease, losing the fast path.
func fenceSteps(v View, p Policy, old string) ([]Step, []string) {
	in := v.Instances[old]
	a := in.OwnerAgent
	pr, rc := leaderReach(v, p, old)
	alive := a != "" && !agentSilent(v, p, a)
	rep := v.Agents[a]
	gone := alive && rep.Local == LocalGone && !(rc == reachOK && pr.ObservedAt.After(rep.LocalSince))
	switch {
	case gone:
		return []Step{{Kind: StepFenceOldPrimary, Instance: old, Via: FenceByAgent, Timeout: p.StepTimeout,
			Why: fmt.Sprintf("mysqld is gone (%s, agent %s); the agent saw the intent and keeps it read-only if it restarts", orDefault(rep.LocalDetail, "reported by its agent"), a)}}, nil
	case rc == reachOK:
		s := Step{Kind: StepFenceOldPrimary, Instance: old, Via: FenceDirect, Timeout: p.StepTimeout, Irreversible: true, Undo: StepSetWritable,
			SemiSync: losslessWrites(v, p), Why: "the leader reaches it: read_only, super_read_only, kill client connections"}
		if a != "" {
			s.Until = leaseLapse(v, p, a)
			if !v.Now.Before(s.Until) {
				s.Why += fmt.Sprintf("; its agent %s's lease lapsed at %s", a, stamp(s.Until))
			} else {
				s.Why += fmt.Sprintf("; if that fails, wait until its agent %s's lease lapses at %s", a, stamp(s.Until))
			}
		}
		return []Step{s}, nil
	case alive:
		return []Step{{Kind: StepFenceOldPrimary, Instance: old, Via: FenceByAgent, Until: leaseLapse(v, p, a), Timeout: p.LeaseTimeout,
			Why: fmt.Sprintf("the leader cannot reach it (%s) but its agent %s is alive: it releases its lease on seeing the intent and keeps it read-only; wait for its acknowledgement, at most lease_timeout, then for its lease to lapse", classText(pr), a)}}, nil
	case a != "":
		until := leaseLapse(v, p, a)
		why := fmt.Sprintf("its agent %s was last heard at %s: by %s (lease_timeout %v) it has set %s read-only by itself (fence_after %v)", a, stamp(v.Agents[a].LastHeard), stamp(until), p.LeaseTimeout, old, p.FenceAfter)
		if !v.Now.Before(until) {
			why += "; already lapsed"
		}
		return []Step{{Kind: StepWaitLease, Instance: old, Until: until, Timeout: p.LeaseTimeout, Why: why}}, nil
	default:
		return nil, []string{fmt.Sprintf("%s has no agent and the leader cannot reach it: it cannot be fenced, only removed from routing; writes from clients connected to it directly would become errant", old)}
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// feedersOf lists the reachable instances that replicate from old.
func feedersOf(v View, p Policy, old string) []string {
	var out []string
	for _, n := range v.names() {
		if n == old {
			continue
		}
		pr, rc := leaderReach(v, p, n)
		if rc != reachOK || pr.Replica == nil {
			continue
		}
		if src, ok := resolveSource(v, pr.Replica.Source); ok && src == old {
			out = append(out, n)
		}
	}
	return out
}

// survivorsOf lists the instances other than old that the leader reaches.
func survivorsOf(v View, p Policy, old string) []string {
	var out []string
	for _, n := range v.names() {
		if _, rc := leaderReach(v, p, n); n != old && rc == reachOK {
			out = append(out, n)
		}
	}
	return out
}

// ChooseCandidate is a failover's second phase: on the fresh facts read after
// the IO threads stopped and relay logs were applied, rank again (keeping the
// lag seen before, and a forced failover's target) and append the remaining
// steps to pre: catch-up (when needed) → promote → repoint the others → route
// → commit-epoch → post-hooks. A refusal means the run must abort and undo
// (restart the IO threads it stopped).
func ChooseCandidate(fresh View, p Policy, pre Plan) (Plan, error) {
	if err := validate(fresh, p); err != nil {
		return pre, err
	}
	if pre.Kind != OpFailover && pre.Kind != OpForcedFailover {
		return pre, fmt.Errorf("choose candidate: plan is a %s, not a failover", pre.Kind)
	}
	pl := pre
	pl.Steps = append([]Step(nil), pre.Steps...)
	pl.Warnings = append([]string(nil), pre.Warnings...)
	r := Rank(fresh, p, RankOptions{OldPrimary: pre.OldPrimary, Target: pre.Target, Force: pre.Force, KnownLag: pre.KnownLag})
	pl.Ranking = &r
	for _, w := range r.Warnings {
		if !contains(pl.Warnings, w) {
			pl.Warnings = append(pl.Warnings, w)
		}
	}
	if r.Chosen == "" {
		return pl, refuse(pre.Kind, fresh, r.Refusals...)
	}
	pl.NewPrimary = r.Chosen
	semi := p.Durability == DurabilitySemiSync
	if r.CatchUpFrom != "" {
		why := fmt.Sprintf("%s lacks %s, held by %s", r.Chosen, gtidText(gtidSubtract(r.Target, holdsIn(r, r.Chosen))), r.CatchUpFrom)
		if r.CatchUpFrom == r.Chosen {
			why = fmt.Sprintf("%s must apply its relay log up to %s first", r.Chosen, gtidText(r.Target))
		}
		st := Step{Kind: StepCatchUp, Instance: r.Chosen, Source: r.CatchUpFrom, GTID: r.Target, Timeout: p.CatchUpTimeout, Why: why + ": never promote a replica that lacks a transaction another survivor has"}
		if src, _ := r.candidate(r.CatchUpFrom); r.CatchUpFrom != r.Chosen && !src.Source {
			// A source that holds only what the chosen lacks (Rank's
			// catchUpSource: a rebuilt MariaDB replica).
			st.SourceGTID = gtidSubtract(r.Target, holdsIn(r, r.Chosen))
		}
		pl.add(st)
	}
	pl.add(Step{Kind: StepPromote, Instance: r.Chosen, SemiSync: semi, Timeout: p.StepTimeout, Irreversible: true, Why: promoteWhy(r)})
	pl.Steps = append(pl.Steps, repointSteps(fresh, p, r.Chosen, pre.OldPrimary, semi, &pl)...)
	pl.add(Step{Kind: StepRoute, Instance: r.Chosen, Epoch: pl.Epoch, Timeout: p.StepTimeout, Irreversible: true, Why: "writes go to the new primary, carrying the new epoch"})
	pl.add(Step{Kind: StepCommitEpoch, Instance: r.Chosen, Epoch: pl.Epoch, ExpectEpoch: pl.ExpectEpoch, GTID: r.Target, AntiFlap: p.AntiFlapPeriod, Timeout: p.RaftTimeout,
		Why: fmt.Sprintf("primary=%s, epoch=%d; automatic failovers blocked for anti_flap_period %v", r.Chosen, pl.Epoch, p.AntiFlapPeriod)})
	pl.add(Step{Kind: StepPostHooks, Operation: pre.Kind, Timeout: p.HookTimeout, Why: "operator's post-failover hooks; a failure is a failed step"})
	return pl, nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func holdsIn(r Ranking, name string) GTIDSet {
	c, _ := r.candidate(name)
	return c.Holds
}

func promoteWhy(r Ranking) string {
	c, _ := r.candidate(r.Chosen)
	why := fmt.Sprintf("%s ranks first (%s", r.Chosen, c.Promotion)
	if gtidContains(c.Holds, r.Target) {
		why += ", holds every surviving transaction"
	}
	return why + "): stop and reset replication, read_only=OFF"
}

// repointSteps points every reachable replica other than the new primary at
// it; quarantined instances stay where they are.
func repointSteps(v View, p Policy, newPrimary, old string, semi bool, pl *Plan) []Step {
	var out []Step
	for _, n := range v.names() {
		if n == newPrimary || n == old {
			continue
		}
		pr, rc := leaderReach(v, p, n)
		if rc != reachOK {
			if in := v.Instances[n]; in.Name != "" {
				pl.Warnings = append(pl.Warnings, fmt.Sprintf("%s is unreachable and is not repointed now; it is repointed under %s when it returns (ReplicaPointsElsewhere)", n, newPrimary))
			}
			continue
		}
		if pr.Replica == nil {
			continue
		}
		if why, q := v.State.Quarantined[n]; q {
			pl.Warnings = append(pl.Warnings, fmt.Sprintf("%s is quarantined (%s) and is left as it is", n, why))
			continue
		}
		why := fmt.Sprintf("%s replicates from the new primary with GTID auto-position", n)
		if pr.Replica.SQLDelay > 0 {
			why += fmt.Sprintf("; it keeps its SQL_Delay %v", pr.Replica.SQLDelay)
		}
		out = append(out, Step{Kind: StepRepoint, Instance: n, Source: newPrimary, SemiSync: semi, Timeout: p.StepTimeout, Why: why})
	}
	return out
}

// PlanSwitchover plans a planned switchover to target, or to the best
// candidate when target is "". Refused when the primary is not healthy and
// writable (use a failover), when the target is the primary, lags more than
// switchover_max_lag, does not replicate from the primary, is unhealthy, holds
// errant transactions, is must_not, delayed or quarantined, and while an
// aborted operation's promotion is uncommitted (only a failover fences it). Steps (README
// "Configuration", How a switchover runs): record intent → pre-hooks → wait
// for long write transactions → chain the other replicas under the target
// (as many as semi_sync_wait_for spares) → fence the primary (read-only,
// kill write sessions) → unroute it → catch the target up to the primary's
// final set (aborting on any transaction the primary lacks) → repoint the
// remaining others under the target → promote → route → commit-epoch →
// repoint the old primary (demoted) → post-hooks. Writes are blocked from
// the fence to the route; the old primary comes after the commit because
// switching its semi-sync source side off can take most of a second on
// MySQL. Pause does not apply (it is manual); it does not start an
// anti-flap window.
func PlanSwitchover(v View, p Policy, target string) (Plan, error) {
	if err := validate(v, p); err != nil {
		return Plan{}, err
	}
	pl := newPlan(v, OpSwitchover, TriggerManual)
	old := v.State.Primary
	if _, ok := v.Instances[old]; !ok {
		return pl, refuse(OpSwitchover, v, "no primary is recorded for this cluster")
	}
	reasons := gate(v, p, &pl)
	for _, u := range sortedKeys(v.State.Uncommitted) {
		// Only a failover fences it before promoting anyone.
		reasons = append(reasons, fmt.Sprintf("%s was promoted by the aborted operation %s and never committed: finish the change of primary first (the leader's UncommittedPromotion failover, or regentctl failover --to NAME), then switch over", u, v.State.Uncommitted[u]))
	}
	pp, rc := leaderReach(v, p, old)
	switch {
	case rc != reachOK:
		reasons = append(reasons, fmt.Sprintf("the primary %s is %s: a switchover needs a healthy primary; use a failover", old, unreachableReason(v, pp, rc)))
	case !pp.Writable():
		reasons = append(reasons, fmt.Sprintf("the primary %s is read-only: a switchover needs a writable primary; use a failover", old))
	}
	r := Rank(v, p, RankOptions{OldPrimary: old})
	pl.Ranking = &r
	issues := func(n string) []string {
		if n == old {
			return []string{fmt.Sprintf("%s is already the primary", n)}
		}
		c, ok := r.candidate(n)
		if !ok {
			return []string{fmt.Sprintf("%s is not an instance of cluster %s", n, v.Cluster)}
		}
		out := append([]string(nil), c.Exclusions...)
		pr, rc := leaderReach(v, p, n)
		if rc != reachOK {
			return out
		}
		rs := pr.Replica
		if rs == nil {
			return out
		}
		if src, ok := resolveSource(v, rs.Source); !ok || src != old {
			out = append(out, fmt.Sprintf("does not replicate from the primary %s (source %q)", old, rs.Source))
		}
		if rs.IOState != IOYes {
			out = append(out, fmt.Sprintf("IO thread is %s", ioText(rs.IOState)))
		}
		switch {
		case rs.Lag == nil:
			out = append(out, "lag unknown (Seconds_Behind_Source is NULL)")
		case *rs.Lag > p.SwitchoverMaxLag:
			out = append(out, fmt.Sprintf("lags %v, more than switchover_max_lag %v: writes would be blocked that long", *rs.Lag, p.SwitchoverMaxLag))
		}
		return out
	}
	chosen := target
	if target != "" {
		if is := issues(target); len(is) > 0 {
			reasons = append(reasons, fmt.Sprintf("%s cannot take over: %s", target, strings.Join(is, "; ")))
		}
	} else {
		var why []string
		for _, c := range r.Candidates {
			is := issues(c.Instance)
			if len(is) == 0 {
				chosen = c.Instance
				break
			}
			why = append(why, fmt.Sprintf("%s: %s", c.Instance, strings.Join(is, "; ")))
		}
		if chosen == "" {
			reasons = append(reasons, "no replica can take over — "+strings.Join(why, " | "))
		}
	}
	if len(reasons) > 0 {
		return pl, refuse(OpSwitchover, v, reasons...)
	}
	pl.NewPrimary = chosen
	pl.Epoch = v.State.Epoch + 1
	semi := p.Durability == DurabilitySemiSync
	pl.add(intent(p, pl, old, fmt.Sprintf("switchover %s → %s: epoch %d → %d", old, chosen, pl.ExpectEpoch, pl.Epoch)))
	pl.add(Step{Kind: StepPreHooks, Operation: OpSwitchover, Timeout: p.HookTimeout, Why: "operator's pre-switchover hooks; a failure aborts"})
	pl.add(Step{Kind: StepWaitLongTransactions, Instance: old, Timeout: p.LongTransactionWait, Why: "long write transactions would stretch the write-blocked window; give up rather than stall production"})
	// The other replicas go under the target before it is promoted, so that
	// the new primary's first commit finds its semi-sync acknowledgers
	// connected: as many as the old primary can spare before its fence
	// (chained under the target, outside the write-blocked window), the
	// rest once the target has caught up. An abort before the promotion
	// points them back at the old primary (docs/safety.md, *The
	// switchover's order*).
	others := repointSteps(v, p, chosen, old, semi, &pl)
	early := len(others)
	if semi {
		// Until its fence the old primary waits for semi_sync_wait_for
		// acknowledgements: the target and the replicas not chained give
		// them.
		early = min(early, max(0, len(others)+1-p.SemiSyncWaitFor))
	}
	for i := range others {
		others[i].Undo, others[i].UndoSource = StepRepoint, old
	}
	if early > 0 {
		var names []string
		for _, s := range others[:early] {
			names = append(names, s.Instance)
		}
		// A step of its own, so that the history says a stop happened:
		// a leader that dies before the repoints leaves them stopped, and
		// the next one starts them again (StoppedIOThreads).
		pl.add(Step{Kind: StepStopIOThreads, Instances: names, Timeout: p.StepTimeout, Undo: StepStartIOThreads,
			Why: fmt.Sprintf("what %s hold stops growing, so that %s can be seen to hold it all", strings.Join(names, ", "), chosen)})
	}
	for _, s := range others[:early] {
		s.Chain, s.Timeout = true, p.CatchUpTimeout
		s.Why = fmt.Sprintf("%s goes under %s before the fence (chained until %s is promoted), once %s holds all it received", s.Instance, chosen, chosen, chosen)
		pl.add(s)
	}
	pl.add(Step{Kind: StepFenceOldPrimary, Instance: old, Via: FenceDirect, Timeout: p.StepTimeout, Irreversible: true, Undo: StepSetWritable, SemiSync: losslessWrites(v, p), Why: "read_only and kill write sessions: the write-blocked window starts"})
	pl.add(Step{Kind: StepUnrouteOldPrimary, Instance: old, Epoch: pl.Epoch, Timeout: p.StepTimeout, Undo: StepRoute, Why: "no new write is sent to the read-only primary"})
	pl.add(Step{Kind: StepCatchUp, Instance: chosen, Source: old, ForbidExtra: true, Timeout: p.CatchUpTimeout, Why: fmt.Sprintf("%s reaches %s's final set; any transaction %s lacks is errant and aborts", chosen, old, old)})
	pl.Steps = append(pl.Steps, others[early:]...)
	pl.add(Step{Kind: StepPromote, Instance: chosen, SemiSync: semi, Timeout: p.StepTimeout, Irreversible: true, Why: "stop and reset replication, read_only=OFF"})
	pl.add(Step{Kind: StepRoute, Instance: chosen, Epoch: pl.Epoch, Timeout: p.StepTimeout, Irreversible: true, Why: "writes go to the new primary: the write-blocked window ends"})
	pl.add(Step{Kind: StepCommitEpoch, Instance: chosen, Epoch: pl.Epoch, ExpectEpoch: pl.ExpectEpoch, Timeout: p.RaftTimeout, Why: fmt.Sprintf("primary=%s, epoch=%d (a switchover starts no anti-flap window)", chosen, pl.Epoch)})
	// The old primary is repointed last: demoting it switches its semi-sync
	// source side off, which takes most of a second on MySQL. Before the
	// route it was write-blocked time; between route and commit the new
	// primary's /primary still answered 503 (not yet the epoch's primary),
	// and HAProxy's checks took it down again. The other replicas were
	// repointed before the promotion, so a semi-sync new primary has its
	// acknowledgers.
	pl.add(Step{Kind: StepRepoint, Instance: old, Source: chosen, Demote: true, SemiSync: semi, Timeout: p.StepTimeout, Why: fmt.Sprintf("the old primary %s becomes a replica of %s", old, chosen)})
	pl.add(Step{Kind: StepPostHooks, Operation: OpSwitchover, Timeout: p.HookTimeout, Why: "operator's post-switchover hooks; a failure is a failed step"})
	return pl, nil
}

// PlanRejoin decides what to do with an instance that is not the primary and
// not a replica — typically the old primary back after a failover. When its
// executed set is a subset of the primary's it is rejoined as a replica
// (demoted, auto-position; lifted from quarantine if it was there). When it
// holds errant transactions it is quarantined: kept read-only, reported with
// the errant GTIDs, never silently rejoined. The result's Kind says which.
func PlanRejoin(v View, p Policy, name string) (Plan, error) {
	if err := validate(v, p); err != nil {
		return Plan{}, err
	}
	pl := newPlan(v, OpRejoin, TriggerManual)
	prim := v.State.Primary
	var reasons []string
	if _, ok := v.Instances[name]; !ok {
		return pl, refuse(OpRejoin, v, fmt.Sprintf("%s is not an instance of cluster %s", name, v.Cluster))
	}
	if _, ok := v.Instances[prim]; !ok {
		return pl, refuse(OpRejoin, v, "no primary is recorded for this cluster: there is nothing to rejoin")
	}
	if name == prim {
		return pl, refuse(OpRejoin, v, fmt.Sprintf("%s is the primary of epoch %d", name, v.State.Epoch))
	}
	if b, busy := operationBlocker(v, p); busy {
		reasons = append(reasons, b.Reason)
	}
	pp, prc := leaderReach(v, p, prim)
	if prc != reachOK || pp.Executed == nil {
		reasons = append(reasons, fmt.Sprintf("the primary %s is %s: its GTID set is needed to judge %s", prim, orDefault(unreachableReason(v, pp, prc), "of unknown GTID set"), name))
	}
	op, orc := leaderReach(v, p, name)
	switch {
	case orc != reachOK:
		reasons = append(reasons, fmt.Sprintf("%s is %s; rejoin it when it is back", name, unreachableReason(v, op, orc)))
	case op.Writable():
		reasons = append(reasons, fmt.Sprintf("%s is writable although %s is the primary of epoch %d: it must be fenced first (TwoWritablePrimaries / WritableReplica fence it unless paused)", name, prim, v.State.Epoch))
	case op.Executed == nil:
		reasons = append(reasons, fmt.Sprintf("%s's executed GTID set is unknown", name))
	case op.Replica != nil:
		if src, ok := resolveSource(v, op.Replica.Source); ok && src == prim {
			reasons = append(reasons, fmt.Sprintf("%s already replicates from %s: nothing to do", name, prim))
		} else if pp.ObservedAt.Before(op.ObservedAt) {
			reasons = append(reasons, fmt.Sprintf("%s still replicates from %q, so its set may grow: retry once the primary has been probed after it", name, op.Replica.Source))
		}
	}
	if len(reasons) > 0 {
		return pl, refuse(OpRejoin, v, reasons...)
	}
	errant := gtidSubtract(op.Executed, pp.Executed)
	semi := p.Durability == DurabilitySemiSync
	if !gtidEmpty(errant) {
		if _, q := v.State.Quarantined[name]; q {
			return pl, refuse(OpRejoin, v, fmt.Sprintf("%s is quarantined and still holds errant transactions %s: re-clone it from %s, or inject empty transactions for them on %s, then retry", name, gtidText(errant), prim, prim))
		}
		pl.Kind = OpQuarantine
		why := fmt.Sprintf("%s holds errant transactions %s that %s lacks", name, gtidText(errant), prim)
		pl.Warnings = append(pl.Warnings, why+": it is quarantined and kept read-only, never silently rejoined; repair it (re-clone from "+prim+", or inject empty transactions for them on "+prim+"), then regentctl rejoin "+name)
		pl.add(intent(p, pl, name, why))
		pl.add(Step{Kind: StepFence, Instance: name, Timeout: p.StepTimeout, Irreversible: true, Why: "keep it read-only, kill client connections"})
		pl.add(Step{Kind: StepQuarantine, Instance: name, GTID: errant, Timeout: p.RaftTimeout, Why: why})
		pl.add(Step{Kind: StepFinish, Operation: OpQuarantine, Timeout: p.RaftTimeout, Why: "record the quarantine in the history"})
		return pl, nil
	}
	pl.add(intent(p, pl, name, fmt.Sprintf("rejoin %s under %s: its set is a subset of the primary's", name, prim)))
	pl.add(Step{Kind: StepFence, Instance: name, Timeout: p.StepTimeout, Irreversible: true, Why: "make sure it stays read-only while it is repointed"})
	pl.add(Step{Kind: StepRepoint, Instance: name, Source: prim, Demote: true, SemiSync: semi, Timeout: p.StepTimeout, Why: fmt.Sprintf("%s replicates from %s with GTID auto-position", name, prim)})
	if _, q := v.State.Quarantined[name]; q {
		pl.add(Step{Kind: StepLiftQuarantine, Instance: name, Timeout: p.RaftTimeout, Why: "it no longer holds errant transactions"})
	}
	pl.add(Step{Kind: StepFinish, Operation: OpRejoin, Timeout: p.RaftTimeout, Why: "record the rejoin in the history"})
	return pl, nil
}

// PlanFence plans fencing an instance that takes writes but is not the
// epoch's primary: read-only and connections killed first, then removed from
// any write route.
func PlanFence(v View, p Policy, name string) (Plan, error) {
	if err := validate(v, p); err != nil {
		return Plan{}, err
	}
	pl := newPlan(v, OpFence, TriggerAutomatic)
	if _, ok := v.Instances[name]; !ok {
		return pl, refuse(OpFence, v, fmt.Sprintf("%s is not an instance of cluster %s", name, v.Cluster))
	}
	var reasons []string
	reasons = append(reasons, gate(v, p, &pl)...)
	if name == v.State.Primary {
		reasons = append(reasons, fmt.Sprintf("%s is the primary of epoch %d: fencing it is part of a failover or switchover", name, v.State.Epoch))
	}
	if pr, rc := leaderReach(v, p, name); rc != reachOK {
		reasons = append(reasons, fmt.Sprintf("%s is %s", name, unreachableReason(v, pr, rc)))
	}
	if len(reasons) > 0 {
		return pl, refuse(OpFence, v, reasons...)
	}
	pl.add(intent(p, pl, name, fmt.Sprintf("fence %s: writable outside epoch %d", name, v.State.Epoch)))
	pl.add(Step{Kind: StepFence, Instance: name, Timeout: p.StepTimeout, Irreversible: true, Why: "read_only, super_read_only, kill client connections"})
	pl.add(Step{Kind: StepUnrouteOldPrimary, Instance: name, Epoch: v.State.Epoch, Timeout: p.StepTimeout, Why: "no write route may point at it"})
	pl.add(Step{Kind: StepFinish, Operation: OpFence, Timeout: p.RaftTimeout, Why: "record the fence in the history"})
	return pl, nil
}

// PlanRepoint plans pointing a replica that replicates from elsewhere back
// under the primary, when that is safe (no errant transaction, exactly
// judged).
func PlanRepoint(v View, p Policy, name string) (Plan, error) {
	if err := validate(v, p); err != nil {
		return Plan{}, err
	}
	pl := newPlan(v, OpRepoint, TriggerAutomatic)
	prim := v.State.Primary
	var reasons []string
	reasons = append(reasons, gate(v, p, &pl)...)
	if _, ok := v.Instances[name]; !ok || name == prim {
		return pl, refuse(OpRepoint, v, fmt.Sprintf("%s is not a replica of cluster %s", name, v.Cluster))
	}
	if _, ok := v.Instances[prim]; !ok {
		return pl, refuse(OpRepoint, v, "no primary is recorded for this cluster")
	}
	src, _ := ExpectedSource(v, p, name)
	pr, rc := leaderReach(v, p, name)
	if rc != reachOK {
		reasons = append(reasons, fmt.Sprintf("%s is %s", name, unreachableReason(v, pr, rc)))
	} else {
		f := &facts{v: v, p: p, primary: prim, live: judgeErrant(v)}
		if b, unsafe := repointBlocker(f, name, pr); unsafe {
			reasons = append(reasons, fmt.Sprintf("%s cannot be repointed safely: %s", name, b.Reason))
		}
		if b, wait := chainBlocker(v, p, name, src); src != prim && wait {
			reasons = append(reasons, b.Reason)
		}
	}
	if len(reasons) > 0 {
		return pl, refuse(OpRepoint, v, reasons...)
	}
	pl.Target = name
	pl.add(intent(p, pl, name, fmt.Sprintf("repoint %s under %s", name, src)))
	if src == prim {
		pl.add(Step{Kind: StepRepoint, Instance: name, Source: prim, SemiSync: p.Durability == DurabilitySemiSync, Timeout: p.StepTimeout, Why: "every replica replicates from the primary unless relocated under a replica that can serve it"})
	} else {
		// A repair waits for its source no longer than a step: it runs
		// in the leader's loop, where a failover may be waiting.
		pl.Steps = append(pl.Steps, chainSteps(p, name, src, p.StepTimeout)...)
	}
	pl.add(Step{Kind: StepFinish, Operation: OpRepoint, Timeout: p.RaftTimeout, Why: "record the repoint in the history"})
	return pl, nil
}

// PlanRestoreWrites plans making the epoch's primary writable again (for
// example after it restarted with read_only=ON from my.cnf and no failover
// happened), only while its agent holds the lease and no other instance is
// writable.
func PlanRestoreWrites(v View, p Policy) (Plan, error) {
	if err := validate(v, p); err != nil {
		return Plan{}, err
	}
	pl := newPlan(v, OpRestoreWrites, TriggerAutomatic)
	if reasons := gate(v, p, &pl); len(reasons) > 0 {
		return pl, refuse(OpRestoreWrites, v, reasons...)
	}
	f := &facts{v: v, p: p}
	if _, ok := v.Instances[v.State.Primary]; ok {
		f.primary = v.State.Primary
	}
	fs := detectPrimaryNotWritable(f)
	if len(fs) == 0 {
		return pl, refuse(OpRestoreWrites, v, "the primary is not a reachable read-only primary: nothing to restore")
	}
	if len(fs[0].blockers) > 0 {
		var rs []string
		for _, b := range fs[0].blockers {
			rs = append(rs, b.Reason)
		}
		return pl, refuse(OpRestoreWrites, v, rs...)
	}
	prim := f.primary
	pl.add(intent(p, pl, prim, fmt.Sprintf("restore writes on %s, primary of epoch %d", prim, v.State.Epoch)))
	lossless := losslessWrites(v, p)
	why := "read_only=OFF on the epoch's primary, whose agent holds the lease"
	if lossless {
		why = "lossless semi-sync source side (a restarted mysqld comes back without it), then " + why
	}
	pl.add(Step{Kind: StepSetWritable, Instance: prim, SemiSync: lossless, Timeout: p.StepTimeout, Irreversible: true, Why: why})
	pl.add(Step{Kind: StepRoute, Instance: prim, Epoch: v.State.Epoch, Timeout: p.StepTimeout, Irreversible: true, Why: "make sure writes are routed to it"})
	pl.add(Step{Kind: StepFinish, Operation: OpRestoreWrites, Timeout: p.RaftTimeout, Why: "record it in the history"})
	return pl, nil
}

// losslessWrites reports whether writes given back to a primary (an undone
// fence, restore-writes) must be acknowledged losslessly: durability
// semi_sync, and no fallback to asynchronous commits decided by the leader.
// SET GLOBAL does not survive a restart, so a primary whose mysqld
// restarted comes back with the source side off; given writes so, it would
// acknowledge commits that no replica holds until the SemiSyncNotEnforced
// repair ran (found by the chaos campaign, docs/safety.md *Writes are given
// back only losslessly*).
func losslessWrites(v View, p Policy) bool {
	return p.Durability == DurabilitySemiSync && !v.State.SemiSyncDegraded
}

// PlanConfigureSemiSync plans configuring lossless semi-sync: the primary as
// source (AFTER_SYNC), every reachable replica as semi-sync replica. After a
// fallback it is a restore, recorded in the history, that ends the
// degradation in Raft once the source is lossless again.
func PlanConfigureSemiSync(v View, p Policy) (Plan, error) {
	if err := validate(v, p); err != nil {
		return Plan{}, err
	}
	kind := OpConfigureSemiSync
	if v.State.SemiSyncDegraded {
		kind = OpSemiSyncRestore
	}
	pl := newPlan(v, kind, TriggerAutomatic)
	if reasons := gate(v, p, &pl); len(reasons) > 0 {
		return pl, refuse(kind, v, reasons...)
	}
	prim := v.State.Primary
	if p.Durability != DurabilitySemiSync {
		return pl, refuse(OpConfigureSemiSync, v, "durability is async")
	}
	if pr, rc := leaderReach(v, p, prim); rc != reachOK {
		return pl, refuse(OpConfigureSemiSync, v, fmt.Sprintf("the primary %s is %s", prim, unreachableReason(v, pr, rc)))
	}
	pl.add(intent(p, pl, prim, "configure lossless semi-sync"))
	for _, n := range v.names() {
		if n == prim {
			continue
		}
		if pr, rc := leaderReach(v, p, n); rc == reachOK && pr.Replica != nil {
			pl.add(Step{Kind: StepConfigureSemiSync, Instance: n, Role: "replica", Timeout: p.StepTimeout, Why: "acknowledge the primary's transactions on receipt"})
		}
	}
	pl.add(Step{Kind: StepConfigureSemiSync, Instance: prim, Role: "source", SemiSync: true, Timeout: p.StepTimeout, Why: "wait for acknowledgements with wait point AFTER_SYNC (lossless)"})
	if kind == OpSemiSyncRestore {
		pl.add(Step{Kind: StepRecordSemiSync, Instance: prim, Role: "restored", Timeout: p.RaftTimeout,
			Why: fmt.Sprintf("lossless again: the asynchronous commits since %s are over", stamp(v.State.SemiSyncDegradedSince))})
	}
	pl.add(Step{Kind: StepFinish, Operation: kind, Timeout: p.RaftTimeout, Why: "record it in the history"})
	return pl, nil
}

// PlanSemiSyncFallback plans the leader's decision to let the primary commit
// asynchronously: too few semi-sync replicas have been connected for
// semi_sync_fallback. The decision is recorded in Raft before the source
// side is switched off (which releases the waiting commits: they are
// acknowledged with no replica holding them).
func PlanSemiSyncFallback(v View, p Policy) (Plan, error) {
	if err := validate(v, p); err != nil {
		return Plan{}, err
	}
	pl := newPlan(v, OpSemiSyncFallback, TriggerAutomatic)
	reasons := gate(v, p, &pl)
	prim := v.State.Primary
	pr, rc := leaderReach(v, p, prim)
	ss := pr.SemiSync
	switch {
	case p.Durability != DurabilitySemiSync:
		reasons = append(reasons, "durability is async")
	case p.SemiSyncFallback <= 0:
		reasons = append(reasons, "semi_sync_fallback is never: commits stay blocked until a semi-sync replica acknowledges")
	case rc != reachOK:
		reasons = append(reasons, fmt.Sprintf("the primary %s is %s", prim, unreachableReason(v, pr, rc)))
	case !ss.SourceEnabled || ss.SourceClients >= p.SemiSyncWaitFor || ss.ShortSince.IsZero():
		reasons = append(reasons, fmt.Sprintf("%s has enough semi-sync replicas connected (%d, %d needed) or its source side is off", prim, ss.SourceClients, p.SemiSyncWaitFor))
	case v.Now.Sub(ss.ShortSince) < p.SemiSyncFallback:
		reasons = append(reasons, fmt.Sprintf("too few semi-sync replicas since %s only (semi_sync_fallback %v)", stamp(ss.ShortSince), p.SemiSyncFallback))
	}
	if len(reasons) > 0 {
		return pl, refuse(OpSemiSyncFallback, v, reasons...)
	}
	why := fmt.Sprintf("%s has had %d of %d semi-sync replicas connected since %s, longer than semi_sync_fallback (%v): commits become asynchronous, and writes acknowledged from now on may be lost by a failover until semi-sync is restored",
		prim, ss.SourceClients, p.SemiSyncWaitFor, stamp(ss.ShortSince), p.SemiSyncFallback)
	pl.add(intent(p, pl, prim, why))
	pl.add(Step{Kind: StepRecordSemiSync, Instance: prim, Role: "degraded", Timeout: p.RaftTimeout, Why: why})
	pl.add(Step{Kind: StepConfigureSemiSync, Instance: prim, Role: "off", Timeout: p.StepTimeout, Why: "switch the semi-sync source side off: the waiting commits complete"})
	pl.add(Step{Kind: StepFinish, Operation: OpSemiSyncFallback, Timeout: p.RaftTimeout, Why: "record it in the history"})
	return pl, nil
}

// PlanAction maps an actionable problem from Analyze to its plan. A problem
// that is not actionable is refused with its blockers, so the caller can show
// them.
func PlanAction(v View, p Policy, pr Problem) (Plan, error) {
	if !pr.Actionable {
		reasons := []string{fmt.Sprintf("%s is not actionable", pr.Code)}
		for _, b := range pr.Blockers {
			reasons = append(reasons, b.Reason)
		}
		return Plan{}, refuse(OperationKind(pr.Action), v, reasons...)
	}
	switch pr.Action {
	case ActionFailover:
		return PlanFailover(v, p, TriggerAutomatic)
	case ActionFence:
		return PlanFence(v, p, pr.Target)
	case ActionRepoint:
		return PlanRepoint(v, p, pr.Target)
	case ActionRejoin:
		pl, err := PlanRejoin(v, p, pr.Target)
		pl.Trigger = TriggerAutomatic
		return pl, err
	case ActionRestoreWrites:
		return PlanRestoreWrites(v, p)
	case ActionConfigureSemiSync:
		return PlanConfigureSemiSync(v, p)
	case ActionSemiSyncFallback:
		return PlanSemiSyncFallback(v, p)
	}
	return Plan{}, fmt.Errorf("plan action: %s has no action", pr.Code)
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
