package failover

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// RankOptions says what a ranking is for.
type RankOptions struct {
	// OldPrimary is the instance being replaced: never a candidate; a
	// catch-up source when the leader still reaches it (a fenced primary, a
	// switchover).
	OldPrimary string
	// Target, when set, is the instance an operator asked for: it is chosen
	// if it may be, otherwise the ranking refuses and says why.
	Target string
	// Force lets a Target that breaks a rule, or that cannot be caught up to
	// every surviving transaction, be chosen anyway; what it breaks becomes a
	// warning. An unreachable Target is never chosen.
	Force bool
	// KnownLag is the lag each replica showed before the runner stopped the
	// IO threads: stopping them turns Seconds_Behind_Source into NULL, and a
	// replica excluded for lag must stay excluded on the fresh facts.
	KnownLag map[string]time.Duration
}

// Candidate is one instance as the ranking saw it.
type Candidate struct {
	Instance  string
	Promotion PromotionRule
	// Holds is what it has durably: executed plus received (nil: unknown).
	Holds GTIDSet
	// Behind is what it lacks of the ranking's Target (nil or empty: none).
	Behind GTIDSet
	// Errant is the errant transactions it is known to hold.
	Errant GTIDSet
	// Lag is its replication lag when known.
	Lag *time.Duration
	// Eligible is true when it may be promoted.
	Eligible bool
	// Source is true when a candidate can catch up from it: it holds the
	// whole Target and can serve it.
	Source bool
	// Exclusions lists every reason it may not be promoted, for people.
	Exclusions []string
	// Near counts the promotion_prefer_same labels it shares with the old
	// primary.
	Near int
}

// Ranking is the outcome of Rank.
type Ranking struct {
	OldPrimary string
	// Target is the most advanced surviving set: the union of what every
	// surviving clean instance holds (and of the old primary's set when it is
	// still reachable). Nothing in it may be lost.
	Target GTIDSet
	// Candidates: the eligible ones in rank order, then the others by name.
	Candidates []Candidate
	// Chosen is the instance to promote; "" when none may be (see Refusals).
	Chosen string
	// CatchUpFrom is the instance Chosen must catch up from before it is
	// promoted: "" when it already executed Target, Chosen itself when it only
	// needs to apply its own relay log.
	CatchUpFrom string
	// Lost holds transactions the old primary was last seen with that no
	// survivor holds: a failover cannot keep them.
	Lost GTIDSet
	// Warnings are things an operator should know that do not block.
	Warnings []string
	// Refusals say why nothing is chosen.
	Refusals []string
}

// candidate returns the named candidate.
func (r Ranking) candidate(name string) (Candidate, bool) {
	for _, c := range r.Candidates {
		if c.Instance == name {
			return c, true
		}
	}
	return Candidate{}, false
}

// survivor is what Rank keeps of an instance the leader can act on.
type survivor struct {
	name     string
	probe    Probe
	holds    GTIDSet
	clean    bool // its data counts: not quarantined, not errant, a replica of this cluster
	canApply bool // its SQL thread runs without delay, so it can apply what it holds
}

// Rank orders the candidates for replacing opts.OldPrimary, as the package
// doc's section Ranking describes:
//
//  1. Exclude, each with a reason: instances the leader cannot reach (it is
//     the one that acts), quarantined ones, ones with errant transactions,
//     must_not, ones that do not replicate from an instance of this cluster,
//     a stopped or broken SQL thread, a delayed replica (SQL_Delay > 0), lag
//     above max_lag_on_failover, ones whose own agent is silent (it could
//     neither hold the lease nor answer /primary), ones in maintenance, and
//     ones whose promotion_same label differs from the old primary's.
//  2. Target is the union of what every clean survivor holds — must_not,
//     delayed, lagging and broken ones included, since their data counts
//     even when they may not be promoted.
//  3. Order the eligible by: holds all of Target first; then how many other
//     eligible candidates' sets their set contains (so that incomparable sets
//     still get a total order); then how many promotion_prefer_same labels
//     they share with the old primary; then prefer before neutral; then
//     name.
//  4. If the chosen one lacks part of Target, it catches up from a source
//     that holds all of it (a must_not replica may be that source). If no
//     instance holds all of Target, the survivors have diverged — under GTID
//     replication with ordered commits replicas' sets are prefixes of one
//     history, so this means errant transactions that went unnoticed — and
//     nothing is chosen: promoting any of them would silently drop someone's
//     transactions.
//
// Errant transactions at failover time, with the primary gone: the reference
// is the old primary's last known set L (Instance.LastSeen). A replica's
// transactions beyond L are either ones the primary committed after it was
// last seen, or errant. A legitimate late transaction can only reach a
// replica after everything before it, i.e. after all of L; so a replica that
// holds transactions beyond L while lacking part of L holds errant ones. A
// replica holding all of L plus more cannot be told apart by sets alone:
// there the carried judgements (Instance.ErrantJudged, made while the primary
// lived) decides, and a divergence between two such replicas refuses (rule
// 4). When the old primary is reachable, the exact live comparison is used as
// well.
func Rank(v View, p Policy, opts RankOptions) Ranking {
	r := Ranking{OldPrimary: opts.OldPrimary}
	old := v.Instances[opts.OldPrimary]
	last := old.LastSeen.Executed
	oldProbe, oldReach := leaderReach(v, p, opts.OldPrimary)
	oldAlive := opts.OldPrimary != "" && oldReach == reachOK && oldProbe.Executed != nil
	live := judgeErrant(v)
	uheld := uncommittedHeld(v, p)

	var survivors []survivor
	for _, n := range v.names() {
		if n == opts.OldPrimary {
			continue
		}
		in := v.Instances[n]
		c := Candidate{Instance: n, Promotion: in.rule()}
		pr, rc := leaderReach(v, p, n)
		if rc != reachOK {
			c.Exclusions = append(c.Exclusions, unreachableReason(v, pr, rc))
			r.Candidates = append(r.Candidates, c)
			continue
		}
		s := survivor{name: n, probe: pr, holds: pr.holds(), clean: true}
		c.Holds = s.holds
		if pr.Replica != nil {
			c.Lag = pr.Replica.Lag
		}
		if c.Lag == nil {
			if l, ok := opts.KnownLag[n]; ok {
				c.Lag = &l
			}
		}
		exclude := func(format string, a ...any) { c.Exclusions = append(c.Exclusions, fmt.Sprintf(format, a...)) }

		if why, q := v.State.Quarantined[n]; q {
			s.clean = false
			exclude("quarantined: %s", why)
		}
		// An instance an aborted operation promoted without committing may
		// have taken writes as the would-be primary: they may have been
		// acknowledged, so they are data, not errant, and it counts as a
		// survivor (and a catch-up source, or the candidate) though it no
		// longer replicates.
		_, uncommitted := v.State.Uncommitted[n]
		errant := errantNow(v, live, n)
		if gtidKnown(last) && !gtidEmpty(s.holds) {
			if extra := gtidSubtract(s.holds, last); !gtidEmpty(extra) && !gtidContains(s.holds, last) {
				// Beyond the old primary's last known set while lacking part
				// of it: not the primary's late transactions, except those
				// from the primary's own sources when the instance holds
				// all the primary wrote up to L — a MariaDB replica rebuilt
				// from a backup keeps in gtid_binlog_state only what it
				// binlogged since, so it lacks earlier writers' keys while
				// holding their data.
				extra = gtidSubtract(extra, lateOwn(s.holds, extra, last, old.LastSeen.Own))
				if !gtidEmpty(extra) {
					errant = gtidUnion(errant, extra)
				}
			}
		}
		if oldAlive && !uncommitted && pr.Executed != nil && !oldProbe.ObservedAt.Before(pr.ObservedAt) {
			if e := gtidSubtract(pr.Executed, oldProbe.Executed); !gtidEmpty(e) {
				errant = gtidUnion(errant, e)
			}
		}
		// Nor is what it received from one (a replica repointed under it).
		errant = gtidSubtract(errant, uheld)
		if !gtidEmpty(errant) {
			c.Errant = errant
			s.clean = false
			exclude("errant transactions %s: they exist on no primary; promoting it would push them to every replica (re-clone it, or inject empty transactions for them on the primary)", gtidText(errant))
		}
		if pr.Executed == nil {
			s.clean = false
			exclude("its executed GTID set is unknown")
		}
		rs := pr.Replica
		switch {
		case rs == nil && !uncommitted:
			s.clean = false
			exclude("not configured as a replica")
		case rs != nil:
			if _, ok := resolveSource(v, rs.Source); !ok {
				s.clean = false
				exclude("replicates from %q, which is not an instance of this cluster", rs.Source)
			}
		}
		if c.Promotion == PromotionMustNot {
			exclude("promotion rule is must_not")
		}
		if oldKnown := opts.OldPrimary != "" && old.Name != ""; oldKnown {
			for _, key := range p.PromotionSame {
				if ov, nv := old.Labels[key], in.Labels[key]; ov != nv {
					exclude("its %s is %q, the old primary's %q: promotion_same forbids crossing it", key, nv, ov)
				}
			}
			for _, key := range p.PromotionPreferSame {
				if ov, ok := old.Labels[key]; ok && in.Labels[key] == ov {
					c.Near++
				}
			}
		}
		if m, ok := v.InMaintenance(n); ok {
			// Its data still counts: it stays clean.
			exclude("in maintenance until %s (%s, by %s)", dayStamp(m.Until), m.Reason, orDefault(m.By, "unknown"))
		}
		if in.OwnerAgent != "" && agentSilent(v, p, in.OwnerAgent) {
			exclude("its agent %s has not been heard since %s: it could neither hold the lease nor answer /primary", in.OwnerAgent, stamp(v.Agents[in.OwnerAgent].LastHeard))
		}
		if rs != nil {
			switch {
			case !rs.SQLRunning && rs.LastSQLError != "":
				exclude("SQL thread stopped with error: %s", rs.LastSQLError)
			case !rs.SQLRunning:
				exclude("SQL thread is stopped: its relay log is not being applied")
			}
			if rs.SQLDelay > 0 {
				exclude("delayed replica (SQL_Delay %v)", rs.SQLDelay)
			}
			s.canApply = rs.SQLRunning && rs.SQLDelay == 0
		}
		if c.Lag != nil && *c.Lag > p.MaxLagOnFailover+delayOf(rs) {
			exclude("lag %v exceeds max_lag_on_failover %v", *c.Lag, p.MaxLagOnFailover)
		}
		c.Eligible = len(c.Exclusions) == 0
		r.Candidates = append(r.Candidates, c)
		survivors = append(survivors, s)
	}

	// Target: everything a clean survivor (or the reachable old primary)
	// holds.
	for _, s := range survivors {
		if s.clean {
			r.Target = gtidUnion(r.Target, s.holds)
		}
	}
	if oldAlive {
		if refusal := r.addOldPrimary(v, p, opts.OldPrimary, oldProbe.Executed); refusal != "" {
			r.Refusals = append(r.Refusals, refusal)
			return r
		}
	}

	// Sources: hold all of Target and can serve it (already executed, or
	// able to apply their relay log).
	isSource := map[string]bool{}
	var sources []string
	for _, s := range survivors {
		if !s.clean || !gtidContains(s.holds, r.Target) {
			continue
		}
		if gtidContains(s.probe.Executed, r.Target) || s.canApply {
			isSource[s.name] = true
			sources = append(sources, s.name)
		}
	}
	if oldAlive && gtidContains(oldProbe.Executed, r.Target) {
		isSource[opts.OldPrimary] = true
		sources = append(sources, opts.OldPrimary)
	}
	// Prefer sources that need not apply anything first, then name.
	execOf := func(n string) GTIDSet {
		if n == opts.OldPrimary {
			return oldProbe.Executed
		}
		for _, s := range survivors {
			if s.name == n {
				return s.probe.Executed
			}
		}
		return nil
	}
	sort.SliceStable(sources, func(i, j int) bool {
		ai, aj := gtidContains(execOf(sources[i]), r.Target), gtidContains(execOf(sources[j]), r.Target)
		if ai != aj {
			return ai
		}
		return sources[i] < sources[j]
	})

	for i := range r.Candidates {
		c := &r.Candidates[i]
		c.Source = isSource[c.Instance]
		if c.Holds != nil && gtidKnown(r.Target) {
			if b := gtidSubtract(r.Target, c.Holds); !gtidEmpty(b) {
				c.Behind = b
			}
		}
	}
	if !oldAlive && gtidKnown(last) {
		if lost := gtidSubtract(last, r.Target); !gtidEmpty(lost) {
			r.Lost = lost
			r.Warnings = append(r.Warnings, lostWarning(p, opts.OldPrimary, lost))
		}
	}
	rankCandidates(r.Candidates, r.Target, old.LastSeen.Own)

	// Under semi_sync every acknowledged commit reached at least
	// semi_sync_wait_for replicas. When that many replicas that could have
	// acknowledged are unreachable, an acknowledged commit may exist only on
	// them: promoting among the others could lose it.
	if p.Durability == DurabilitySemiSync && !opts.Force {
		if away := acknowledgersAway(v, p, opts.OldPrimary); len(away) >= p.SemiSyncWaitFor {
			r.Refusals = append(r.Refusals, fmt.Sprintf("replicas %s are unreachable and could hold acknowledged writes that no reachable instance has (durability semi_sync, semi_sync_wait_for %d): promoting now could lose them; bring one back, or fail over manually with --force to accept the loss",
				strings.Join(away, ", "), p.SemiSyncWaitFor))
			return r
		}
	}

	// Choose.
	var chosen *Candidate
	if opts.Target != "" {
		c, ok := r.candidate(opts.Target)
		switch {
		case opts.Target == opts.OldPrimary:
			r.Refusals = append(r.Refusals, fmt.Sprintf("%s is the primary being replaced", opts.Target))
		case !ok:
			r.Refusals = append(r.Refusals, fmt.Sprintf("%s is not an instance of cluster %s", opts.Target, v.Cluster))
		case c.Eligible:
			chosen = &c
		case !survivorNamed(survivors, c.Instance):
			r.Refusals = append(r.Refusals, fmt.Sprintf("%s cannot be promoted: %s", c.Instance, strings.Join(c.Exclusions, "; ")))
		case opts.Force:
			chosen = &c
			for _, e := range c.Exclusions {
				r.Warnings = append(r.Warnings, fmt.Sprintf("forced: %s: %s", c.Instance, e))
			}
		default:
			r.Refusals = append(r.Refusals, fmt.Sprintf("%s may not be promoted: %s (force overrides)", c.Instance, strings.Join(c.Exclusions, "; ")))
		}
	} else {
		for i := range r.Candidates {
			if r.Candidates[i].Eligible {
				c := r.Candidates[i]
				chosen = &c
				break
			}
		}
		if chosen == nil {
			r.Refusals = append(r.Refusals, noCandidateReason(r.Candidates))
		}
	}
	if chosen == nil {
		return r
	}

	// Catch-up: never promote an instance that lacks a transaction another
	// survivor has, unless it can catch up.
	var exec GTIDSet
	for _, s := range survivors {
		if s.name == chosen.Instance {
			exec = s.probe.Executed
		}
	}
	switch {
	case gtidContains(exec, r.Target):
		// Nothing to do.
	case gtidContains(chosen.Holds, r.Target) && isSource[chosen.Instance]:
		r.CatchUpFrom = chosen.Instance
	default:
		for _, s := range sources {
			if s != chosen.Instance {
				r.CatchUpFrom = s
				break
			}
		}
		if r.CatchUpFrom == "" && lacksOnlyOwn(chosen.Holds, r.Target, old.LastSeen.Own) {
			r.CatchUpFrom = catchUpSource(survivors, chosen.Instance, chosen.Holds, r.Target)
		}
		if r.CatchUpFrom == "" {
			why := divergenceReason(survivors, r.Target, chosen.Instance)
			if opts.Force && opts.Target != "" {
				r.Warnings = append(r.Warnings, "forced: "+why)
			} else {
				r.Refusals = append(r.Refusals, why)
				return r
			}
		}
	}
	r.Chosen = chosen.Instance
	return r
}

// lateOwn returns the part of extra (what an instance holds beyond the old
// primary's last known set last) that can be the old primary's late
// transactions: from the sources the primary writes to (own, its own part of
// last), on an instance that holds everything of those sources in last.
// Anything else beyond last is errant. Empty when own is unknown.
func lateOwn(holds, extra, last, own GTIDSet) GTIDSet {
	if gtidEmpty(own) {
		return nil
	}
	late := gtidRestrict(extra, own)
	if gtidEmpty(late) || !gtidContains(holds, gtidRestrict(last, own)) {
		return nil
	}
	return late
}

// lacksOnlyOwn reports whether an instance holding holds lacks nothing of
// target but transactions from the old primary's own sources (own): the
// primary's newest ones, which any survivor holding them can send it. One
// that lacks anything else either diverged or, as a MariaDB replica rebuilt
// from a backup, lacks earlier writers' keys that no survivor can send it.
// False when own is unknown.
func lacksOnlyOwn(holds, target, own GTIDSet) bool {
	if gtidEmpty(own) || !gtidKnown(holds) {
		return false
	}
	need := gtidSubtract(target, holds)
	return gtidContains(gtidRestrict(need, own), need)
}

// catchUpSource returns a clean survivor other than chosen that holds what
// chosen lacks of target and can serve it: the fallback when no survivor
// holds all of target. A MariaDB replica rebuilt from a backup lacks
// earlier writers' keys but may hold the newest transactions; the chosen
// instance (which holds the history) only needs those. Sources that need
// not apply anything come first, then name.
func catchUpSource(survivors []survivor, chosen string, holds, target GTIDSet) string {
	need := gtidSubtract(target, holds)
	best, bestExec := "", false
	for _, s := range survivors {
		if s.name == chosen || !s.clean || !gtidContains(s.holds, need) {
			continue
		}
		exec := gtidContains(s.probe.Executed, need)
		if !exec && !s.canApply {
			continue
		}
		if best == "" || (exec && !bestExec) || (exec == bestExec && s.name < best) {
			best, bestExec = s.name, exec
		}
	}
	return best
}

// acknowledgersAway lists the replicas the leader cannot reach that could
// have acknowledged semi-sync commits: their last successful probe showed the
// semi-sync replica side on, or they were never seen (the safe side).
func acknowledgersAway(v View, p Policy, old string) []string {
	var out []string
	for _, n := range v.names() {
		if n == old {
			continue
		}
		if _, rc := leaderReach(v, p, n); rc == reachOK {
			continue
		}
		if ls := v.Instances[n].LastSeen; ls.ObservedAt.IsZero() || ls.SemiSync.ReplicaEnabled {
			out = append(out, n)
		}
	}
	return out
}

// delayOf returns a replica's configured delay: a delayed replica's lag is
// measured on top of it.
func delayOf(rs *ReplicaStatus) time.Duration {
	if rs == nil {
		return 0
	}
	return rs.SQLDelay
}

func survivorNamed(ss []survivor, name string) bool {
	for _, s := range ss {
		if s.name == name {
			return true
		}
	}
	return false
}

// rankCandidates sorts in place: eligible first in rank order, the others by
// name. Among candidates that do not hold all of target, those that lack
// only the old primary's own transactions come first (lacksOnlyOwn): any
// holder can send them those, while one that lacks older ones (a MariaDB
// replica rebuilt from a backup lacks earlier writers' keys) might get them
// from no one. A set that contains another never ranks below it by this:
// it lacks a subset of what the other lacks.
func rankCandidates(cs []Candidate, target, own GTIDSet) {
	dominance := make(map[string]int, len(cs))
	for _, a := range cs {
		if !a.Eligible {
			continue
		}
		for _, b := range cs {
			if b.Eligible && a.Instance != b.Instance && gtidContains(a.Holds, b.Holds) {
				dominance[a.Instance]++
			}
		}
	}
	sort.SliceStable(cs, func(i, j int) bool {
		a, b := cs[i], cs[j]
		if a.Eligible != b.Eligible {
			return a.Eligible
		}
		if !a.Eligible {
			return a.Instance < b.Instance
		}
		ca, cb := gtidContains(a.Holds, target), gtidContains(b.Holds, target)
		if ca != cb {
			return ca
		}
		if oa, ob := lacksOnlyOwn(a.Holds, target, own), lacksOnlyOwn(b.Holds, target, own); oa != ob {
			return oa
		}
		if dominance[a.Instance] != dominance[b.Instance] {
			return dominance[a.Instance] > dominance[b.Instance]
		}
		if a.Near != b.Near {
			return a.Near > b.Near
		}
		pa, pb := a.Promotion == PromotionPrefer, b.Promotion == PromotionPrefer
		if pa != pb {
			return pa
		}
		return a.Instance < b.Instance
	})
}

// noCandidateReason lists why every instance was excluded.
func noCandidateReason(cs []Candidate) string {
	if len(cs) == 0 {
		return "no instance can be promoted: the cluster has no other instance"
	}
	parts := make([]string, 0, len(cs))
	for _, c := range cs {
		parts = append(parts, fmt.Sprintf("%s: %s", c.Instance, strings.Join(c.Exclusions, "; ")))
	}
	return "no instance can be promoted — " + strings.Join(parts, " | ")
}

// divergenceReason explains why the chosen instance cannot reach Target.
func divergenceReason(ss []survivor, target GTIDSet, chosen string) string {
	var lacks []string
	for _, s := range ss {
		if !s.clean {
			continue
		}
		if b := gtidSubtract(target, s.holds); !gtidEmpty(b) {
			lacks = append(lacks, fmt.Sprintf("%s lacks %s", s.name, gtidText(b)))
		}
	}
	var stuck []string
	for _, s := range ss {
		if s.clean && gtidContains(s.holds, target) && !s.canApply {
			stuck = append(stuck, s.name)
		}
	}
	if len(stuck) > 0 {
		return fmt.Sprintf("%s cannot catch up: only %s hold every surviving transaction, in relay logs they cannot apply (SQL thread stopped or delayed); start their SQL thread (or clear the delay) and retry, or force a failover and lose %s", chosen, joinNames(stuck), gtidText(gtidSubtract(target, holdsOf(ss, chosen))))
	}
	return fmt.Sprintf("no reachable instance holds every surviving transaction (%s): the replicas have diverged, so at least one of them holds errant transactions; promoting %s would drop the others' transactions — inspect them, then force a failover to the one to keep", strings.Join(lacks, "; "), chosen)
}

func holdsOf(ss []survivor, name string) GTIDSet {
	for _, s := range ss {
		if s.name == name {
			return s.holds
		}
	}
	return nil
}

// lostWarning tells what a failover cannot keep.
// uncommittedHeld is what the instances an aborted operation promoted
// without committing hold (their last known set when the leader does not
// reach them now). It is data, not errant, on them and on their replicas:
// as the would-be primary each may have acknowledged writes.
func uncommittedHeld(v View, p Policy) GTIDSet {
	var held GTIDSet
	for _, u := range sortedKeys(v.State.Uncommitted) {
		pr, rc := leaderReach(v, p, u)
		if rc != reachOK {
			pr = v.Instances[u].LastSeen
		}
		held = gtidUnion(held, pr.holds())
	}
	return held
}

// addOldPrimary adds the reachable old primary's set to Target. Its
// transactions count unless the survivors hold ones it lacks, which only an
// uncommitted promotion's writes can be (errant ones are not clean): then
// no instance can hold both histories. Under lossless semi-sync with every
// acknowledger accounted for (SemiSyncFenceOf's preconditions), what the
// old primary holds and no survivor received was never acknowledged, so
// the survivors' history wins and the old primary keeps those alone (it is
// quarantined for them when it rejoins). Otherwise both may hold
// acknowledged writes, and the choice is the operator's: the refusal says
// so.
func (r *Ranking) addOldPrimary(v View, p Policy, old string, oldSet GTIDSet) string {
	survivorsOnly := gtidSubtract(r.Target, oldSet)
	if gtidEmpty(survivorsOnly) {
		r.Target = gtidUnion(r.Target, oldSet)
		return ""
	}
	oldOnly := gtidSubtract(oldSet, r.Target)
	if gtidEmpty(oldOnly) {
		return ""
	}
	if sf := unreceivedUnacknowledged(v, p, old); !sf.OK {
		return fmt.Sprintf("%s and the survivors have diverged: %s is only on %s, %s only on the survivors (written by the uncommitted promotion of %s), and either side may hold acknowledged writes (%s); choose which history to keep: regentctl failover --to NAME --force keeps NAME's, and the other side is quarantined",
			old, gtidText(oldOnly), old, gtidText(survivorsOnly), joinNames(sortedKeys(v.State.Uncommitted)), sf.Reason)
	}
	r.Lost = oldOnly
	r.Warnings = append(r.Warnings, fmt.Sprintf("%s holds %s, which no replica received: it was lossless semi-sync, so none of it was acknowledged to a client; the survivors hold %s (written by the uncommitted promotion of %s), so %s keeps %s alone and is quarantined for it when it rejoins",
		old, gtidText(oldOnly), gtidText(survivorsOnly), joinNames(sortedKeys(v.State.Uncommitted)), old, gtidText(oldOnly)))
	return ""
}

// unreceivedUnacknowledged decides whether what old holds and no replica
// received was never acknowledged: SemiSyncFenceOf's preconditions, except
// that a source side last seen switched off counts as lossless when its
// settings are. Regent switches a replaced primary's source side off only
// to release the commits of sessions its fence killed, which no live
// client is told of (docs/safety.md, *The lease*), and the
// SemiSyncNotEnforced repair turns it back on otherwise (chaos seed
// 20262215: the old primary was last seen so, and the failover refused).
func unreceivedUnacknowledged(v View, p Policy, old string) SemiSyncFence {
	return semiSyncFence(v, p, old, true)
}

func lostWarning(p Policy, old string, lost GTIDSet) string {
	if p.Durability == DurabilitySemiSync {
		return fmt.Sprintf("transactions %s were last seen on %s and no survivor holds them: they will be lost and become errant on %s if it returns; with semi_sync none of them was acknowledged to a client, unless semi-sync had fallen back to asynchronous", gtidText(lost), old, old)
	}
	return fmt.Sprintf("transactions %s were last seen on %s and no survivor holds them: with async durability they are lost (they may have been acknowledged to clients) and become errant on %s if it returns", gtidText(lost), old, old)
}
