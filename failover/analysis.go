package failover

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Code names a kind of problem.
type Code string

// The problem codes, in the order of the table (see problemTable).
const (
	InvalidInput               Code = "InvalidInput"
	TwoWritablePrimaries       Code = "TwoWritablePrimaries"
	WritableReplica            Code = "WritableReplica"
	UncommittedPromotion       Code = "UncommittedPromotion"
	NoPrimary                  Code = "NoPrimary"
	DeadPrimaryAndSomeReplicas Code = "DeadPrimaryAndSomeReplicas"
	DeadPrimary                Code = "DeadPrimary"
	PrimaryIsolated            Code = "PrimaryIsolated"
	UnreachablePrimary         Code = "UnreachablePrimary"
	PrimaryNotWritable         Code = "PrimaryNotWritable"
	PrimaryNotRouted           Code = "PrimaryNotRouted"
	SemiSyncBlocked            Code = "SemiSyncBlocked"
	SemiSyncNotEnforced        Code = "SemiSyncNotEnforced"
	ErrantGTIDOnReplica        Code = "ErrantGTIDOnReplica"
	IntermediateSourceLost     Code = "IntermediateSourceLost"
	ReplicaPointsElsewhere     Code = "ReplicaPointsElsewhere"
	ReplicaIOLeftStopped       Code = "ReplicaIOLeftStopped"
	RejoinNeeded               Code = "RejoinNeeded"
	ReplicaNotReplicating      Code = "ReplicaNotReplicating"
	ReplicaUnreachable         Code = "ReplicaUnreachable"
	FormerPrimaryUnreachable   Code = "FormerPrimaryUnreachable"
	ReplicaLagging             Code = "ReplicaLagging"
	InstanceQuarantined        Code = "InstanceQuarantined"
	InstanceInMaintenance      Code = "InstanceInMaintenance"
	AutomationBlocked          Code = "AutomationBlocked"
	Healthy                    Code = "Healthy"
)

// Action is what the runner does about a problem.
type Action string

// The actions. Each has a planner: PlanAction maps a Problem to its plan.
const (
	ActionNone              Action = ""
	ActionFailover          Action = "failover"
	ActionFence             Action = "fence"
	ActionRestoreWrites     Action = "restore-writes"
	ActionConfigureSemiSync Action = "configure-semi-sync"
	ActionSemiSyncFallback  Action = "semi-sync-fallback"
	ActionRepoint           Action = "repoint"
	ActionRejoin            Action = "rejoin"
)

// BlockKind names why an action is not taken now.
type BlockKind string

// The reasons an action waits. Operators hate silent non-action
// (recovery off or held back must say why): every one is named in the Problem.
const (
	BlockPaused      BlockKind = "paused"
	BlockAntiFlap    BlockKind = "anti_flap"
	BlockOperation   BlockKind = "operation_in_progress"
	BlockLease       BlockKind = "lease_not_lapsed"
	BlockNoCandidate BlockKind = "no_candidate"
	BlockDisabled    BlockKind = "disabled"
	BlockUnsafe      BlockKind = "unsafe"
	// BlockWaiting: a configured grace period has not run out yet.
	BlockWaiting BlockKind = "waiting"
)

// Blocker is one reason an action is not taken now.
type Blocker struct {
	Kind   BlockKind
	Reason string
	// Until is when this blocker ends by itself (zero: it does not).
	Until time.Time
}

// Problem is one finding of Analyze.
type Problem struct {
	Code        Code
	Description string
	// Priority orders problems: lower first. The runner acts on the first
	// actionable one.
	Priority int
	// Instances involved; the first is the subject.
	Instances []string
	// Target is the instance the action acts on: the one to fence, repoint
	// or rejoin; for a failover, the candidate the current facts point to
	// (the final choice is made on fresh facts, see ChooseCandidate).
	Target string
	// Reason says what is wrong in terms a person can act on.
	Reason string
	// Action is the automatic action this problem calls for (ActionNone when
	// it is only reported).
	Action Action
	// Actionable is true when Action should start now: no blocker.
	Actionable bool
	// Blockers say why Action is not taken now.
	Blockers []Blocker
	// Errant holds the errant transactions of an ErrantGTIDOnReplica.
	Errant GTIDSet
}

// finding is what a table predicate reports.
type finding struct {
	instances []string
	target    string
	reason    string
	errant    GTIDSet
	blockers  []Blocker
}

// problemKind is one row of the declarative table.
type problemKind struct {
	code        Code
	description string
	priority    int
	action      Action
	// informational problems do not make a cluster unhealthy.
	informational bool
	// quietInMaintenance: a finding whose instances are all in maintenance
	// is dropped (the operator is working on them: nothing is reported
	// nor repaired).
	quietInMaintenance bool
	// supersedes: when this kind fires, these kinds are dropped (they are
	// consequences of it, or it is the more specific form).
	supersedes []Code
	// detect is a pure predicate over the facts; one finding per occurrence.
	detect func(f *facts) []finding
}

// facts are computed once per Analyze and shared by the predicates.
type facts struct {
	v       View
	p       Policy
	primary string // "" when none is recorded or it is not configured
	health  primaryHealth
	iso     isolation
	live    map[string]map[AgentID]ErrantJudgement // exact errant judgements possible now
	ranking *Ranking                               // lazily, for failover blockers
}

func (f *facts) rank() Ranking {
	if f.ranking == nil {
		r := Rank(f.v, f.p, RankOptions{OldPrimary: f.primary})
		f.ranking = &r
	}
	return *f.ranking
}

// replicas returns the names of the instances other than the primary.
func (f *facts) others() []string {
	var out []string
	for _, n := range f.v.names() {
		if n != f.primary {
			out = append(out, n)
		}
	}
	return out
}

// problemTable is the declarative table of problem kinds, in priority order.
// Each predicate is pure; Analyze evaluates every row, drops superseded
// kinds, then decides blockers.
var problemTable = []problemKind{
	{
		code:        TwoWritablePrimaries,
		description: "two instances take writes: the one outside the epoch must be fenced",
		priority:    10,
		action:      ActionFence,
		supersedes:  []Code{WritableReplica},
		detect:      detectTwoWritable,
	},
	{
		code:        WritableReplica,
		description: "an instance that is not the epoch's primary takes writes",
		priority:    12,
		action:      ActionFence,
		detect:      detectWritableReplica,
	},
	{
		code:        UncommittedPromotion,
		description: "an aborted operation promoted an instance without committing it: the change of primary is finished by a failover that fences it and counts its data",
		priority:    14,
		action:      ActionFailover,
		supersedes:  []Code{TwoWritablePrimaries, WritableReplica, PrimaryNotWritable, ReplicaPointsElsewhere, IntermediateSourceLost, ReplicaNotReplicating, RejoinNeeded, UnreachablePrimary},
		detect:      detectUncommitted,
	},
	{
		code:        NoPrimary,
		description: "the replicated state records no primary for the cluster",
		priority:    15,
		supersedes:  []Code{ReplicaPointsElsewhere, IntermediateSourceLost, ReplicaNotReplicating, RejoinNeeded, WritableReplica},
		detect:      detectNoPrimary,
	},
	{
		code:        DeadPrimaryAndSomeReplicas,
		description: "the primary and some replicas are dead",
		priority:    20,
		action:      ActionFailover,
		supersedes:  []Code{DeadPrimary, PrimaryIsolated, UnreachablePrimary, ReplicaUnreachable, ReplicaNotReplicating, ReplicaPointsElsewhere, IntermediateSourceLost},
		detect:      detectDeadPrimaryAndReplicas,
	},
	{
		code:        DeadPrimary,
		description: "the primary is dead (README \"Detection\"): fail over",
		priority:    21,
		action:      ActionFailover,
		supersedes:  []Code{PrimaryIsolated, UnreachablePrimary, ReplicaNotReplicating},
		detect:      detectDeadPrimary,
	},
	{
		code:        PrimaryIsolated,
		description: "the primary's agent lost the quorum and fences it; fail over once its lease has lapsed",
		priority:    25,
		action:      ActionFailover,
		supersedes:  []Code{PrimaryNotWritable, UnreachablePrimary},
		detect:      detectPrimaryIsolated,
	},
	{
		code:        UnreachablePrimary,
		description: "the leader cannot reach the primary, but it is not dead: no failover",
		priority:    30,
		detect:      detectUnreachablePrimary,
	},
	{
		code:        PrimaryNotWritable,
		description: "the epoch's primary is read-only",
		priority:    35,
		action:      ActionRestoreWrites,
		detect:      detectPrimaryNotWritable,
	},
	{
		code:        PrimaryNotRouted,
		description: "the balancers did not take the write route to the writable primary: clients may not reach it",
		priority:    37,
		detect:      detectPrimaryNotRouted,
	},
	{
		code:        SemiSyncBlocked,
		description: "semi-sync durability cannot be honoured: commits wait or fell back to asynchronous",
		priority:    40,
		action:      ActionSemiSyncFallback,
		detect:      detectSemiSyncBlocked,
	},
	{
		code:        SemiSyncNotEnforced,
		description: "durability is semi_sync but the primary is not configured for lossless semi-sync",
		priority:    45,
		action:      ActionConfigureSemiSync,
		detect:      detectSemiSyncNotEnforced,
	},
	{
		code:        ErrantGTIDOnReplica,
		description: "a replica holds transactions the primary never had",
		priority:    50,
		detect:      detectErrant,
	},
	{
		code:               IntermediateSourceLost,
		description:        "the replica an operator relocated a replica under is down or can no longer serve it: the replica is moved under the primary (orchestrator's DeadIntermediateMaster), and back once its source can serve it",
		priority:           54,
		action:             ActionRepoint,
		detect:             detectIntermediateLost,
		quietInMaintenance: true,
	},
	{
		code:               ReplicaPointsElsewhere,
		description:        "a replica replicates from an instance other than the one it belongs under: the primary, or the replica an operator relocated it under",
		priority:           55,
		action:             ActionRepoint,
		detect:             detectPointsElsewhere,
		quietInMaintenance: true,
	},
	{
		code:               ReplicaIOLeftStopped,
		description:        "a replica's IO thread is stopped, by an operation that changed no primary and could not start it again (the replica was unreachable then), or by itself after giving up reconnecting to a source that is back: repoint it under its source",
		priority:           56,
		action:             ActionRepoint,
		detect:             detectIOLeftStopped,
		quietInMaintenance: true,
	},
	{
		code:               RejoinNeeded,
		description:        "a read-only instance (typically a former primary) is not a replica: rejoin it",
		priority:           58,
		action:             ActionRejoin,
		detect:             detectRejoinNeeded,
		quietInMaintenance: true,
	},
	{
		code:               ReplicaNotReplicating,
		description:        "a replica's IO or SQL thread is not running",
		priority:           60,
		detect:             detectNotReplicating,
		quietInMaintenance: true,
	},
	{
		code:               ReplicaUnreachable,
		description:        "the leader cannot reach a replica",
		priority:           62,
		detect:             detectReplicaUnreachable,
		quietInMaintenance: true,
	},
	{
		code:               FormerPrimaryUnreachable,
		description:        "the old primary a failover replaced is still down: expected, and it is rejoined or quarantined when it returns",
		priority:           63,
		informational:      true,
		detect:             detectFormerPrimaryUnreachable,
		quietInMaintenance: true,
	},
	{
		code:               ReplicaLagging,
		description:        "a replica lags more than max_lag_on_failover: it is no failover candidate",
		priority:           65,
		detect:             detectLagging,
		quietInMaintenance: true,
	},
	{
		code:        InstanceQuarantined,
		description: "an instance is quarantined: read-only, never promoted nor rejoined until repaired",
		priority:    70,
		detect:      detectQuarantined,
	},
	{
		code:          InstanceInMaintenance,
		description:   "an instance is in maintenance: never promoted, its replica problems not reported, nothing on it repaired, until it ends",
		priority:      72,
		informational: true,
		detect:        detectMaintenance,
	},
	{
		code:          AutomationBlocked,
		description:   "automatic failover is off or blocked",
		priority:      90,
		informational: true,
		detect:        detectAutomationBlocked,
	},
}

// healthyKind is the row used when nothing else is found.
var healthyKind = problemKind{code: Healthy, description: "the cluster is healthy", priority: 100}

// invalidKind reports a view or policy the analysis cannot use.
var invalidKind = problemKind{code: InvalidInput, description: "the view or the policy is invalid: nothing can be judged", priority: 0}

// ProblemKinds returns the table (code, description, priority, action) for
// documentation and for the status page's legend.
func ProblemKinds() []Problem {
	out := make([]Problem, 0, len(problemTable)+1)
	for _, k := range append(append([]problemKind(nil), problemTable...), healthyKind) {
		out = append(out, Problem{Code: k.code, Description: k.description, Priority: k.priority, Action: k.action})
	}
	return out
}

// Analyze judges a cluster view against a policy and returns its problems in
// priority order, each with its reason, its action, and — when the action is
// not taken now — every blocker. A cluster with no problem yields one Healthy
// problem. Pure: the same view gives the same answer.
func Analyze(v View, p Policy) []Problem {
	if err := p.Validate(); err != nil {
		return []Problem{invalidKind.problem(finding{reason: err.Error()})}
	}
	if err := v.Validate(); err != nil {
		return []Problem{invalidKind.problem(finding{reason: err.Error()})}
	}
	f := &facts{v: v, p: p, live: judgeErrant(v)}
	if _, ok := v.Instances[v.State.Primary]; ok {
		f.primary = v.State.Primary
		f.health = assessPrimary(v, p)
		f.iso = assessIsolation(v, p)
	}

	fired := map[Code][]finding{}
	superseded := map[Code]bool{}
	for _, k := range problemTable {
		if fs := k.detect(f); len(fs) > 0 {
			fired[k.code] = fs
			for _, s := range k.supersedes {
				superseded[s] = true
			}
		}
	}
	var out []Problem
	unhealthy := false
	for _, k := range problemTable {
		if superseded[k.code] {
			continue
		}
		for _, fd := range fired[k.code] {
			if k.quietInMaintenance && allInMaintenance(v, fd.instances) {
				continue
			}
			pr := k.problem(fd)
			block(f, &pr)
			out = append(out, pr)
			if !k.informational {
				unhealthy = true
			}
		}
	}
	if !unhealthy {
		out = append(out, healthyKind.problem(finding{instances: nonEmpty(f.primary), reason: healthyReason(f)}))
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Priority != out[j].Priority {
			return out[i].Priority < out[j].Priority
		}
		return first(out[i].Instances) < first(out[j].Instances)
	})
	return out
}

func (k problemKind) problem(fd finding) Problem {
	return Problem{
		Code:        k.code,
		Description: k.description,
		Priority:    k.priority,
		Instances:   fd.instances,
		Target:      fd.target,
		Reason:      fd.reason,
		Action:      k.action,
		Errant:      fd.errant,
		Blockers:    fd.blockers,
	}
}

// block adds the blockers every action shares and sets Actionable.
func block(f *facts, pr *Problem) {
	if pr.Action == ActionNone {
		return
	}
	v := f.v
	var bs []Blocker
	if b, ok := operationBlocker(v, f.p); ok {
		bs = append(bs, b)
	}
	if v.State.Paused {
		why := "the cluster is paused: no automatic action is taken (regentctl resume)"
		if v.State.PauseReason != "" {
			why += "; pause note: " + v.State.PauseReason
		}
		bs = append(bs, Blocker{Kind: BlockPaused, Reason: why})
	}
	if pr.Action == ActionFailover {
		if !f.p.AutomaticFailover {
			bs = append(bs, Blocker{Kind: BlockDisabled, Reason: automaticFailoverOff})
		}
		if v.Now.Before(v.State.AntiFlapUntil) {
			bs = append(bs, Blocker{Kind: BlockAntiFlap, Until: v.State.AntiFlapUntil, Reason: fmt.Sprintf("anti-flap window: a failover happened recently; automatic failover is blocked until %s (a manual failover is allowed: regentctl failover)", stamp(v.State.AntiFlapUntil))})
		}
		if r := f.rank(); r.Chosen == "" {
			bs = append(bs, Blocker{Kind: BlockNoCandidate, Reason: strings.Join(r.Refusals, "; ")})
		} else {
			pr.Target = r.Chosen
		}
	}
	pr.Blockers = append(pr.Blockers, bs...)
	pr.Actionable = len(pr.Blockers) == 0
}

// operationBlocker reports an operation in progress that is not abandoned.
func operationBlocker(v View, p Policy) (Blocker, bool) {
	op := v.State.Operation
	if op.Kind == OpNone {
		return Blocker{}, false
	}
	deadline := op.StartedAt.Add(p.OperationTimeout)
	if !v.Now.Before(deadline) {
		return Blocker{}, false
	}
	what := string(op.Kind)
	if op.Target != "" {
		what += " to " + op.Target
	}
	return Blocker{Kind: BlockOperation, Until: deadline, Reason: fmt.Sprintf("operation %s (%s) in progress since %s; it is taken for abandoned after %s", op.ID, what, stamp(op.StartedAt), stamp(deadline))}, true
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// --- predicates ---

func detectTwoWritable(f *facts) []finding {
	if f.primary == "" {
		return nil
	}
	pp, r := leaderReach(f.v, f.p, f.primary)
	if r != reachOK || !pp.Writable() {
		return nil
	}
	var out []finding
	for _, n := range f.others() {
		pr, r := leaderReach(f.v, f.p, n)
		if r != reachOK || !pr.Writable() || opTarget(f.v, n) {
			continue
		}
		out = append(out, finding{
			instances: []string{n, f.primary},
			target:    n,
			reason:    fmt.Sprintf("%s and %s are both writable; %s is the primary of epoch %d, so %s is fenced (read_only, client connections killed) and removed from write routing", f.primary, n, f.primary, f.v.State.Epoch, n),
		})
	}
	return out
}

func detectWritableReplica(f *facts) []finding {
	if f.primary == "" {
		return nil
	}
	var out []finding
	for _, n := range f.others() {
		pr, r := leaderReach(f.v, f.p, n)
		if r != reachOK || !pr.Writable() || opTarget(f.v, n) {
			continue
		}
		out = append(out, finding{
			instances: []string{n},
			target:    n,
			reason:    fmt.Sprintf("%s is writable but the primary of epoch %d is %s: writes to it would be errant; it is fenced (read_only, client connections killed)", n, f.v.State.Epoch, f.primary),
		})
	}
	return out
}

func detectUncommitted(f *facts) []finding {
	if f.primary == "" {
		return nil
	}
	var out []finding
	for _, n := range sortedKeys(f.v.State.Uncommitted) {
		if _, ok := f.v.Instances[n]; !ok || n == f.primary {
			continue
		}
		out = append(out, finding{
			instances: []string{n},
			reason: fmt.Sprintf("%s was promoted by operation %s, which ended before committing it: it may be writable outside epoch %d and may hold acknowledged writes no one else has; a failover fences it, counts its data and commits a primary",
				n, f.v.State.Uncommitted[n], f.v.State.Epoch),
		})
	}
	return out
}

// opTarget reports whether an operation in progress is promoting the
// instance: it is expected to become writable before the epoch is committed.
func opTarget(v View, name string) bool {
	return v.State.Operation.Kind != OpNone && v.State.Operation.Target == name
}

func detectNoPrimary(f *facts) []finding {
	if f.primary != "" {
		return nil
	}
	reason := "no primary is recorded for this cluster"
	if f.v.State.Primary != "" {
		reason = fmt.Sprintf("the recorded primary %q is not an instance of this cluster", f.v.State.Primary)
	}
	var writable []string
	for _, n := range f.v.names() {
		if pr, r := leaderReach(f.v, f.p, n); r == reachOK && pr.Writable() {
			writable = append(writable, n)
		}
	}
	switch len(writable) {
	case 0:
		reason += "; no instance is writable; choose one with regentctl failover --to NAME"
	case 1:
		reason += fmt.Sprintf("; %s is the only writable instance: adopt it with regentctl failover --to %s", writable[0], writable[0])
	default:
		reason += fmt.Sprintf("; %s are all writable: fence all but one, then adopt it with regentctl failover --to NAME", joinNames(writable))
	}
	return []finding{{instances: writable, reason: reason}}
}

// unreachableReplicas lists the replicas the leader cannot reach.
func unreachableReplicas(f *facts) []string {
	var out []string
	for _, n := range f.others() {
		if _, r := leaderReach(f.v, f.p, n); r != reachOK {
			out = append(out, n)
		}
	}
	return out
}

func detectDeadPrimaryAndReplicas(f *facts) []finding {
	if f.primary == "" || !f.health.dead {
		return nil
	}
	down := unreachableReplicas(f)
	if len(down) == 0 {
		return nil
	}
	return []finding{{
		instances: append([]string{f.primary}, down...),
		reason:    f.health.deadReason(f.v) + fmt.Sprintf("; replicas %s are unreachable too", strings.Join(down, ", ")),
	}}
}

func detectDeadPrimary(f *facts) []finding {
	if f.primary == "" || !f.health.dead {
		return nil
	}
	return []finding{{instances: []string{f.primary}, reason: f.health.deadReason(f.v)}}
}

func detectPrimaryIsolated(f *facts) []finding {
	if f.primary == "" || !f.iso.isolated {
		return nil
	}
	fd := finding{instances: []string{f.primary}, reason: fmt.Sprintf("%s: %s", f.primary, f.iso.reason)}
	if !f.iso.lapsed {
		fd.blockers = append(fd.blockers, Blocker{Kind: BlockLease, Until: f.iso.lapse, Reason: fmt.Sprintf("waiting for agent %s's lease to lapse at %s (last heard %s + lease_timeout %v) so that %s has stopped taking writes before another is promoted", f.iso.agent, stamp(f.iso.lapse), stamp(f.v.Agents[f.iso.agent].LastHeard), f.p.LeaseTimeout, f.primary)})
	}
	return []finding{fd}
}

func detectUnreachablePrimary(f *facts) []finding {
	if f.primary == "" || f.health.dead || f.health.leader == reachOK {
		return nil
	}
	return []finding{{
		instances: append([]string{f.primary}, f.health.receivers...),
		reason:    fmt.Sprintf("%s is not declared dead: %s", f.primary, strings.Join(f.health.unmet, "; ")),
	}}
}

func detectPrimaryNotWritable(f *facts) []finding {
	if f.primary == "" {
		return nil
	}
	pr, r := leaderReach(f.v, f.p, f.primary)
	if r != reachOK || pr.Writable() {
		return nil
	}
	op := f.v.State.Operation
	if op.Kind == OpSwitchover || op.Kind == OpFailover || op.Kind == OpForcedFailover {
		// An operation sets the old primary read-only on purpose.
		return nil
	}
	fd := finding{
		instances: []string{f.primary},
		target:    f.primary,
		reason:    fmt.Sprintf("%s is the primary of epoch %d but read_only is ON: writes fail", f.primary, f.v.State.Epoch),
	}
	in := f.v.Instances[f.primary]
	if in.OwnerAgent != "" && !f.v.Agents[in.OwnerAgent].LeaseHeld {
		fd.blockers = append(fd.blockers, Blocker{Kind: BlockUnsafe, Reason: fmt.Sprintf("its agent %s does not hold the lease: only a lease holder's instance may take writes", in.OwnerAgent)})
	}
	for _, n := range f.others() {
		if o, r := leaderReach(f.v, f.p, n); r == reachOK && o.Writable() {
			fd.blockers = append(fd.blockers, Blocker{Kind: BlockUnsafe, Reason: fmt.Sprintf("%s is writable: it must be fenced first", n)})
		}
	}
	return []finding{fd}
}

// detectPrimaryNotRouted reports the committed primary writable while the
// leader's pushes of its write route fail: an aborted operation's undo or a
// balancer restarted without Regent's route can leave it so, and writes then
// fail although every instance looks well. Only reported: the leader pushes
// the route again every few seconds (and health checks, where configured,
// converge by themselves); the reason names the balancer's error.
func detectPrimaryNotRouted(f *facts) []finding {
	rc := f.v.Route
	if f.primary == "" || rc.Err == "" || rc.Primary != f.primary || rc.Epoch != f.v.State.Epoch {
		return nil
	}
	if pr, r := leaderReach(f.v, f.p, f.primary); r != reachOK || !pr.Writable() {
		return nil // the primary's own state is the problem then
	}
	return []finding{{
		instances: []string{f.primary},
		target:    f.primary,
		reason: fmt.Sprintf("%s is the writable primary of epoch %d, but pushing its write route has failed since %s: %s; clients writing through those balancers may not reach it (the leader keeps pushing; check the balancer and `regentctl status`)",
			f.primary, f.v.State.Epoch, stamp(rc.FailingSince), rc.Err),
	}}
}

// primarySemiSync returns the primary's semi-sync state when semi_sync
// durability applies and the leader reaches a writable primary.
func primarySemiSync(f *facts) (SemiSyncState, bool) {
	if f.primary == "" || f.p.Durability != DurabilitySemiSync {
		return SemiSyncState{}, false
	}
	pr, r := leaderReach(f.v, f.p, f.primary)
	if r != reachOK || !pr.Writable() {
		return SemiSyncState{}, false
	}
	return pr.SemiSync, true
}

func detectSemiSyncBlocked(f *facts) []finding {
	ss, ok := primarySemiSync(f)
	if !ok || !ss.SourceEnabled {
		return nil
	}
	if ss.SourceClients >= f.p.SemiSyncWaitFor && ss.SourceActive {
		return nil
	}
	fd := finding{instances: []string{f.primary}, target: f.primary}
	if !ss.SourceActive {
		// The server fell back by itself: its settings are not lossless,
		// which SemiSyncNotEnforced repairs. Nothing to decide here.
		fd.reason = fmt.Sprintf("%s fell back to asynchronous replication (%d semi-sync replica(s) connected, %d needed): acknowledged writes may be lost by a failover until a semi-sync replica returns", f.primary, ss.SourceClients, f.p.SemiSyncWaitFor)
		fd.blockers = append(fd.blockers, Blocker{Kind: BlockUnsafe, Reason: "the server fell back by itself; Regent restores lossless settings (SemiSyncNotEnforced)"})
		return []finding{fd}
	}
	fd.reason = fmt.Sprintf("%s waits for %d semi-sync acknowledgement(s) but only %d semi-sync replica(s) are connected: commits block until one returns", f.primary, f.p.SemiSyncWaitFor, ss.SourceClients)
	switch {
	case f.p.SemiSyncFallback <= 0:
		fd.blockers = append(fd.blockers, Blocker{Kind: BlockDisabled, Reason: "semi_sync_fallback is never: commits stay blocked, and are never acknowledged without a replica, until a semi-sync replica returns"})
	case ss.ShortSince.IsZero() || f.v.Now.Sub(ss.ShortSince) < f.p.SemiSyncFallback:
		until := ss.ShortSince.Add(f.p.SemiSyncFallback)
		if ss.ShortSince.IsZero() {
			until = f.v.Now.Add(f.p.SemiSyncFallback)
		}
		fd.blockers = append(fd.blockers, Blocker{Kind: BlockWaiting, Until: until, Reason: fmt.Sprintf("semi_sync_fallback (%v): the leader lets commits become asynchronous at %s if no semi-sync replica returns", f.p.SemiSyncFallback, stamp(until))})
	}
	return []finding{fd}
}

func detectSemiSyncNotEnforced(f *facts) []finding {
	ss, ok := primarySemiSync(f)
	if !ok {
		return nil
	}
	var missing []string
	if !ss.SourceEnabled {
		missing = append(missing, "the semi-sync source side is off")
	}
	if ss.SourceEnabled && !strings.EqualFold(ss.WaitPoint, "AFTER_SYNC") {
		missing = append(missing, fmt.Sprintf("the wait point is %q, not AFTER_SYNC (lossless)", ss.WaitPoint))
	}
	if !ss.WaitNoReplica {
		missing = append(missing, "wait_no_slave/wait_no_replica is OFF (the server falls back to asynchronous commits as soon as too few replicas are connected)")
	}
	if ss.Timeout < LosslessMinTimeout {
		missing = append(missing, fmt.Sprintf("the semi-sync timeout is %v (the server falls back to asynchronous commits by itself when no replica acknowledges for that long; Regent sets about 49 days)", ss.Timeout))
	}
	if ss.WaitCount != f.p.SemiSyncWaitFor {
		missing = append(missing, fmt.Sprintf("commits wait for %d acknowledgement(s), semi_sync_wait_for is %d", ss.WaitCount, f.p.SemiSyncWaitFor))
	}
	// A replica that receives without its semi-sync side can never
	// acknowledge: with a lossless primary, too few such acknowledgers
	// block commits for good.
	var plain []string
	for _, r := range receiversOf(f.v, f.p, f.primary, time.Time{}) {
		if pr, rc := leaderReach(f.v, f.p, r); rc == reachOK && !pr.SemiSync.ReplicaEnabled {
			plain = append(plain, r)
		}
	}
	if len(plain) > 0 {
		missing = append(missing, fmt.Sprintf("replicas %s receive from it with their semi-sync replica side off, so they cannot acknowledge", strings.Join(plain, ", ")))
	}
	if len(missing) == 0 {
		return nil
	}
	fd := finding{instances: append([]string{f.primary}, plain...), target: f.primary, reason: fmt.Sprintf("durability is semi_sync but on %s %s; Regent configures it", f.primary, strings.Join(missing, " and "))}
	if f.v.State.SemiSyncDegraded {
		fd.reason = fmt.Sprintf("%s commits asynchronously since %s by the leader's decision (semi_sync_fallback): writes acknowledged since may be lost by a failover; %s", f.primary, stamp(f.v.State.SemiSyncDegradedSince), fd.reason)
		if n := semiSyncReceivers(f); n < f.p.SemiSyncWaitFor {
			fd.blockers = append(fd.blockers, Blocker{Kind: BlockUnsafe, Reason: fmt.Sprintf("only %d replica(s) receive from %s, %d needed: restoring lossless semi-sync now would block commits again", n, f.primary, f.p.SemiSyncWaitFor)})
		}
	}
	return []finding{fd}
}

// semiSyncReceivers counts the reachable replicas that receive from the
// primary: the acknowledgers a restore can count on (it switches their
// semi-sync replica side on where it is off).
func semiSyncReceivers(f *facts) int {
	n := 0
	for _, r := range receiversOf(f.v, f.p, f.primary, time.Time{}) {
		if _, rc := leaderReach(f.v, f.p, r); rc == reachOK {
			n++
		}
	}
	return n
}

func detectErrant(f *facts) []finding {
	if f.primary == "" {
		return nil
	}
	var out []finding
	for _, n := range f.others() {
		e := errantNow(f.v, f.live, n)
		if gtidEmpty(e) {
			continue
		}
		how := "found by comparing it with the primary"
		if finders := errantFinders(f.v, f.live, n); len(finders) > 0 {
			how = fmt.Sprintf("found earlier by agent %s, while it could compare it with the primary", strings.Join(finders, ", "))
		}
		out = append(out, finding{
			instances: []string{n},
			errant:    e,
			reason:    fmt.Sprintf("%s holds errant transactions %s (%s): it is never promoted; re-clone it, or inject empty transactions for them on the primary", n, gtidText(e), how),
		})
	}
	return out
}

// replicaProbe returns the leader's fresh successful probe of a replica.
func replicaProbe(f *facts, n string) (Probe, bool) {
	pr, r := leaderReach(f.v, f.p, n)
	return pr, r == reachOK
}

func detectPointsElsewhere(f *facts) []finding {
	if f.primary == "" {
		return nil
	}
	var out []finding
	for _, n := range f.others() {
		pr, ok := replicaProbe(f, n)
		if !ok || pr.Replica == nil || f.v.State.Quarantined[n] != "" || opTarget(f.v, n) {
			continue
		}
		src, known := resolveSource(f.v, pr.Replica.Source)
		exp, why := ExpectedSource(f.v, f.p, n)
		rel := f.v.State.Sources[n]
		if known && (src == exp || src == rel && why != "") {
			// Where it belongs, or under a relocation source that can no
			// longer serve it (IntermediateSourceLost).
			continue
		}
		fd := finding{instances: []string{n}, target: n}
		switch {
		case !known:
			fd.reason = fmt.Sprintf("%s replicates from %q, which is not an instance of this cluster; Regent does not repoint it (fix by hand or remove it from the cluster)", n, pr.Replica.Source)
			fd.blockers = append(fd.blockers, Blocker{Kind: BlockUnsafe, Reason: "its source is outside the cluster"})
		case exp != f.primary:
			fd.reason = fmt.Sprintf("%s replicates from %s, but it was relocated under %s (regentctl repoint): it is moved there once %s has executed everything it holds", n, src, exp, exp)
		case rel != "":
			fd.reason = fmt.Sprintf("%s replicates from %s; it was relocated under %s, but %s, so it belongs under the primary %s for now; it is repointed with GTID auto-positioning", n, src, rel, why, f.primary)
		default:
			fd.reason = fmt.Sprintf("%s replicates from %s, not from the primary %s (Regent keeps every replica directly under the primary unless relocated with regentctl repoint); it is repointed with GTID auto-positioning", n, src, f.primary)
		}
		if known {
			if b, unsafe := repointBlocker(f, n, pr); unsafe {
				fd.blockers = append(fd.blockers, b)
			} else if exp != f.primary {
				if b, wait := chainBlocker(f.v, f.p, n, exp); wait {
					fd.blockers = append(fd.blockers, b)
				}
			}
		}
		out = append(out, fd)
	}
	return out
}

// detectIOLeftStopped finds the replicas an operation stopped and left so:
// Regent starts no IO thread an operator stopped, so these would stay
// stopped for good, and a lossless primary would lose acknowledgers. Only
// until the next change of primary (State.StoppedIO) and while nothing
// runs; a replica whose IO thread runs, errs or points elsewhere is not
// this.
func detectIOLeftStopped(f *facts) []finding {
	if f.primary == "" || f.v.State.Operation.Kind != OpNone {
		return nil
	}
	var out []finding
	for _, n := range f.others() {
		pr, ok := replicaProbe(f, n)
		if !ok || pr.Replica == nil || f.v.State.Quarantined[n] != "" {
			continue
		}
		rs := pr.Replica
		if rs.IOState != IONo || (rs.LastIOError != "" && !reconnectError(rs.LastIOErrno, rs.LastIOError)) {
			continue
		}
		// Stopped by the last operation, or by itself after giving up
		// reconnecting (its error number says so: MySQL's receiver stops
		// after SOURCE_RETRY_COUNT attempts, so a source down longer than
		// that leaves it stopped for good; chaos seed 20262586). One an
		// operator stopped has no error.
		gaveUp := rs.LastIOErrno != 0 && reconnectError(rs.LastIOErrno, rs.LastIOError)
		if !gaveUp && !slices.Contains(f.v.State.StoppedIO, n) {
			continue
		}
		exp, _ := ExpectedSource(f.v, f.p, n)
		if src, known := resolveSource(f.v, rs.Source); !known || src != exp {
			continue
		}
		if _, rc := leaderReach(f.v, f.p, exp); gaveUp && rc != reachOK {
			continue // it would only give up again
		}
		under := "the primary " + exp
		if exp != f.primary {
			under = exp + ", under which it was relocated,"
		}
		fd := finding{instances: []string{n}, target: n,
			reason: fmt.Sprintf("%s's IO thread was stopped by the last operation, which ended without a change of primary and could not start it again; it is repointed under %s (which starts it)", n, under)}
		if gaveUp {
			fd.reason = fmt.Sprintf("%s's IO thread stopped by itself after giving up reconnecting (%s); its source can be reached again: it is repointed under %s (which starts it)", n, rs.LastIOError, under)
		}
		if b, unsafe := repointBlocker(f, n, pr); unsafe {
			fd.blockers = append(fd.blockers, b)
		}
		out = append(out, fd)
	}
	return out
}

// reconnectError reports whether an IO thread's last error is its
// reconnect loop's (the source went away): a thread the operation stopped
// while it was reconnecting keeps that error after the stop (chaos seed
// 20262330, MySQL), unlike an error that stopped the thread by itself
// (1236 and the like). By number: the client errors of a connection that
// could not be made or was lost (CR_CONN_HOST_ERROR 2003,
// CR_UNKNOWN_HOST 2005, CR_SERVER_GONE_ERROR 2006, CR_SERVER_LOST 2013);
// by text when the agent reported no number.
func reconnectError(errno int, text string) bool {
	switch errno {
	case 2003, 2005, 2006, 2013:
		return true
	case 0:
		l := strings.ToLower(text)
		return strings.Contains(l, "reconnecting to") || strings.Contains(l, "connecting to master") || strings.Contains(l, "connecting to source")
	}
	return false
}

// repointBlocker says why repointing an instance under the primary is not
// safe now: errant transactions, or no exact comparison possible.
func repointBlocker(f *facts, n string, pr Probe) (Blocker, bool) {
	if e := errantNow(f.v, f.live, n); !gtidEmpty(e) {
		return Blocker{Kind: BlockUnsafe, Reason: fmt.Sprintf("it holds errant transactions %s", gtidText(e))}, true
	}
	if _, judged := f.live[n]; !judged {
		return Blocker{Kind: BlockUnsafe, Reason: "its GTID set cannot be compared with the primary's yet (waiting for an agent to probe both in order)"}, true
	}
	return Blocker{}, false
}

func detectRejoinNeeded(f *facts) []finding {
	if f.primary == "" {
		return nil
	}
	var out []finding
	for _, n := range f.others() {
		pr, ok := replicaProbe(f, n)
		if !ok || pr.Replica != nil || pr.Writable() || f.v.State.Quarantined[n] != "" || opTarget(f.v, n) {
			continue
		}
		fd := finding{instances: []string{n}, target: n,
			reason: fmt.Sprintf("%s is read-only and not a replica (a former primary?); it is rejoined under %s when its GTID set is a subset of the primary's, or quarantined when it holds errant transactions", n, f.primary)}
		if !f.p.AutoRejoin {
			fd.blockers = append(fd.blockers, Blocker{Kind: BlockDisabled, Reason: fmt.Sprintf("auto_rejoin is off: run regentctl rejoin %s", n)})
		}
		out = append(out, fd)
	}
	return out
}

func detectNotReplicating(f *facts) []finding {
	if f.primary == "" {
		return nil
	}
	primaryDown := f.health.leader != reachOK
	if _, busy := operationBlocker(f.v, f.p); busy {
		switch f.v.State.Operation.Kind {
		case OpFailover, OpForcedFailover, OpSwitchover:
			// The operation stops and repoints replication on purpose.
			return nil
		}
	}
	var out []finding
	for _, n := range f.others() {
		pr, ok := replicaProbe(f, n)
		if !ok || pr.Replica == nil {
			continue
		}
		rs := pr.Replica
		if rs.IOState == IOYes && rs.SQLRunning {
			continue
		}
		if primaryDown && rs.IOState == IOConnecting && rs.SQLRunning {
			// A consequence of the primary's state, reported there.
			continue
		}
		var parts []string
		if rs.IOState != IOYes {
			s := fmt.Sprintf("IO thread %s", ioText(rs.IOState))
			if rs.LastIOError != "" {
				s += ": " + rs.LastIOError
			}
			parts = append(parts, s)
		}
		if !rs.SQLRunning {
			s := "SQL thread stopped"
			if rs.LastSQLError != "" {
				s += ": " + rs.LastSQLError + " (it is no failover candidate)"
			}
			parts = append(parts, s)
		}
		out = append(out, finding{instances: []string{n}, reason: fmt.Sprintf("%s does not replicate: %s", n, strings.Join(parts, "; "))})
	}
	return out
}

func ioText(s IOState) string {
	if s == "" {
		return "state unknown"
	}
	return string(s)
}

func detectReplicaUnreachable(f *facts) []finding {
	if f.primary == "" {
		return nil
	}
	var out []finding
	for _, n := range f.others() {
		pr, r := leaderReach(f.v, f.p, n)
		if r == reachOK {
			continue
		}
		if formerDown(f.v, n) {
			continue // FormerPrimaryUnreachable
		}
		out = append(out, finding{instances: []string{n}, reason: fmt.Sprintf("%s is %s; it is no failover candidate", n, unreachableReason(f.v, pr, r))})
	}
	return out
}

// formerDown reports whether n is the primary the last change of primary
// replaced, unreachable and not seen as a replica since: an old primary
// still down, expected after a failover, not a broken replica.
func formerDown(v View, n string) bool {
	if n == "" || n != v.State.FormerPrimary {
		return false
	}
	return v.Instances[n].LastSeen.Replica == nil
}

func detectFormerPrimaryUnreachable(f *facts) []finding {
	n := f.v.State.FormerPrimary
	if f.primary == "" || n == "" || n == f.primary {
		return nil
	}
	if _, ok := f.v.Instances[n]; !ok {
		return nil
	}
	pr, r := leaderReach(f.v, f.p, n)
	if r == reachOK || !formerDown(f.v, n) {
		return nil
	}
	how := "it is rejoined as a replica of " + f.primary + " when it returns without errant transactions (auto_rejoin), quarantined otherwise"
	if !f.p.AutoRejoin {
		how = "when it returns, rejoin it with regentctl rejoin " + n + " (auto_rejoin is off)"
	}
	return []finding{{instances: []string{n}, reason: fmt.Sprintf("%s, the primary the last failover replaced, is %s; %s", n, unreachableReason(f.v, pr, r), how)}}
}

func detectLagging(f *facts) []finding {
	if f.primary == "" {
		return nil
	}
	var out []finding
	for _, n := range f.others() {
		pr, ok := replicaProbe(f, n)
		if !ok || pr.Replica == nil || pr.Replica.Lag == nil {
			continue
		}
		lag, delay := *pr.Replica.Lag, pr.Replica.SQLDelay
		if lag <= f.p.MaxLagOnFailover+delay {
			continue
		}
		reason := fmt.Sprintf("%s lags %v, more than max_lag_on_failover %v: it is no failover candidate", n, lag, f.p.MaxLagOnFailover)
		if delay > 0 {
			reason = fmt.Sprintf("%s lags %v, more than its SQL_Delay %v plus max_lag_on_failover %v", n, lag, delay, f.p.MaxLagOnFailover)
		}
		out = append(out, finding{instances: []string{n}, reason: reason})
	}
	return out
}

func detectQuarantined(f *facts) []finding {
	var out []finding
	for _, n := range f.v.names() {
		why, q := f.v.State.Quarantined[n]
		if !q {
			continue
		}
		out = append(out, finding{instances: []string{n}, reason: fmt.Sprintf("%s is quarantined: %s; repair it (re-clone, or inject empty transactions on the primary), then regentctl rejoin %s", n, why, n)})
	}
	return out
}

func detectMaintenance(f *facts) []finding {
	var out []finding
	for _, n := range f.v.names() {
		m, ok := f.v.InMaintenance(n)
		if !ok {
			continue
		}
		out = append(out, finding{instances: []string{n}, reason: fmt.Sprintf("%s is in maintenance until %s by %s: %s; it is never promoted, and its replica problems are neither reported nor repaired until then (regentctl maintenance end %s)",
			n, dayStamp(m.Until), orDefault(m.By, "unknown"), m.Reason, n)})
	}
	return out
}

// allInMaintenance reports whether every named instance is in maintenance
// (false for none).
func allInMaintenance(v View, names []string) bool {
	for _, n := range names {
		if _, ok := v.InMaintenance(n); !ok {
			return false
		}
	}
	return len(names) > 0
}

// automaticFailoverOff is the reason of the blocker the automatic_failover
// setting adds.
const automaticFailoverOff = "automatic_failover is false: a dead primary is reported, not replaced; fail over by hand (regentctl failover), or set it true (regentctl cluster edit-config)"

func detectAutomationBlocked(f *facts) []finding {
	// Each reason is also a blocker of its kind: the status's
	// automatic_failover and the blocked gauge name the kind (a paused
	// cluster must not read as an unsafe one).
	var bs []Blocker
	v := f.v
	if v.State.Paused {
		s := "the cluster is paused: automatic failover is off (regentctl resume)"
		if v.State.PauseReason != "" {
			s += "; note: " + v.State.PauseReason
		}
		bs = append(bs, Blocker{Kind: BlockPaused, Reason: s})
	}
	if !f.p.AutomaticFailover {
		bs = append(bs, Blocker{Kind: BlockDisabled, Reason: automaticFailoverOff})
	}
	if v.Now.Before(v.State.AntiFlapUntil) {
		bs = append(bs, Blocker{Kind: BlockAntiFlap, Until: v.State.AntiFlapUntil,
			Reason: fmt.Sprintf("anti-flap window until %s: automatic failover is blocked (manual failover allowed)", stamp(v.State.AntiFlapUntil))})
	}
	if b, ok := operationBlocker(v, f.p); ok {
		bs = append(bs, b)
	}
	if len(bs) == 0 {
		return nil
	}
	parts := make([]string, len(bs))
	for i, b := range bs {
		parts[i] = b.Reason
	}
	return []finding{{instances: nonEmpty(f.primary), reason: strings.Join(parts, "; "), blockers: bs}}
}

func healthyReason(f *facts) string {
	if f.primary == "" {
		return "no primary recorded"
	}
	n := 0
	for _, o := range f.others() {
		if pr, ok := replicaProbe(f, o); ok && pr.Replica != nil && pr.Replica.IOState == IOYes && pr.Replica.SQLRunning {
			n++
		}
	}
	return fmt.Sprintf("%s is the primary of epoch %d; %d replica(s) replicate from it", f.primary, f.v.State.Epoch, n)
}
