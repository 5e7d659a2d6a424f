package failover

import (
	"fmt"
	"time"
)

// Chained replication (README "Relocating replicas"). Regent keeps every
// replica directly under the primary unless an operator relocated it under
// another replica (regentctl repoint REPLICA --to SOURCE, recorded in
// ReplicatedState.Sources). A relocation is followed only while its source
// can serve the replica; otherwise the replica belongs under the primary
// again (orchestrator's DeadIntermediateMaster), and it goes back under its
// source once that source can serve it again. Failovers and switchovers
// flatten the tree (every replica goes under the new primary, as before);
// the relocations are then restored by the same repair.

// ExpectedSource returns the instance name should replicate from: the
// source an operator relocated it under while that source can serve it,
// otherwise the primary. why says, when a relocation is recorded but not
// followed now, what stops it ("" otherwise).
func ExpectedSource(v View, p Policy, name string) (source, why string) {
	prim := v.State.Primary
	s := v.State.Sources[name]
	if s == "" || s == prim {
		return prim, ""
	}
	if why := unusableSource(v, p, name, s); why != "" {
		return prim, why
	}
	return s, ""
}

// unusableSource says why s cannot serve name as its source now ("" when
// it can): it must be a live, read-only replica of the cluster that writes
// what it replicates to its binary log, not quarantined nor in maintenance,
// and moving name off the primary must leave the primary enough semi-sync
// acknowledgers.
func unusableSource(v View, p Policy, name, s string) string {
	if _, ok := v.Instances[s]; !ok {
		return fmt.Sprintf("%s is not an instance of cluster %s", s, v.Cluster)
	}
	pr, rc := leaderReach(v, p, s)
	if rc != reachOK {
		return fmt.Sprintf("%s is %s", s, unreachableReason(v, pr, rc))
	}
	if why, q := v.State.Quarantined[s]; q {
		return fmt.Sprintf("%s is quarantined (%s)", s, why)
	}
	if m, in := v.InMaintenance(s); in {
		return fmt.Sprintf("%s is in maintenance until %s (%s)", s, stamp(m.Until), m.Reason)
	}
	rs := pr.Replica
	switch {
	case pr.Writable():
		return fmt.Sprintf("%s is writable", s)
	case rs == nil:
		return fmt.Sprintf("%s is not a replica", s)
	case rs.IOState == IONo || !rs.SQLRunning:
		return fmt.Sprintf("%s does not replicate (IO thread %s, SQL thread running %t)", s, ioText(rs.IOState), rs.SQLRunning)
	case !pr.LogsReplicaUpdates:
		return fmt.Sprintf("%s does not write what it replicates to its binary log (log_bin and log_slave_updates must be ON)", s)
	}
	if _, ok := resolveSource(v, rs.Source); !ok {
		return fmt.Sprintf("%s replicates from %q, which is not an instance of this cluster", s, rs.Source)
	}
	if p.Durability == DurabilitySemiSync {
		if n := acknowledgersWithout(v, p, name); n < p.SemiSyncWaitFor {
			return fmt.Sprintf("the primary %s needs %s as a semi-sync acknowledger: %d other replica(s) acknowledge, semi_sync_wait_for is %d", v.State.Primary, name, n, p.SemiSyncWaitFor)
		}
	}
	return ""
}

// acknowledgersWithout counts the replicas other than name that replicate
// directly from the primary with the semi-sync replica side on and the IO
// thread connected, as the leader last saw them.
func acknowledgersWithout(v View, p Policy, name string) int {
	n := 0
	for _, in := range v.names() {
		if in == name || in == v.State.Primary {
			continue
		}
		pr, rc := leaderReach(v, p, in)
		if rc != reachOK || pr.Replica == nil || pr.Replica.IOState != IOYes || !pr.SemiSync.ReplicaEnabled {
			continue
		}
		if src, ok := resolveSource(v, pr.Replica.Source); ok && src == v.State.Primary {
			n++
		}
	}
	return n
}

// chainBlocker says why name cannot be moved under the replica src yet:
// a replica holding transactions its new source has not executed would be
// refused by it (MySQL: the replica has more GTIDs than the source; MariaDB:
// the GTID is not in the source's binary log), so src must have caught up.
// The move stops name's IO thread first and waits a moment for src; this
// only keeps Regent from trying while src is visibly behind.
func chainBlocker(v View, p Policy, name, src string) (Blocker, bool) {
	rp, _ := leaderReach(v, p, name)
	sp, _ := leaderReach(v, p, src)
	if sp.Executed == nil || rp.Executed == nil {
		return Blocker{Kind: BlockWaiting, Reason: fmt.Sprintf("the GTID sets of %s and %s are not known yet", name, src)}, true
	}
	if !gtidContains(sp.Executed, rp.Executed) {
		return Blocker{Kind: BlockWaiting, Reason: fmt.Sprintf("%s has not executed everything %s has yet (missing %s)", src, name, gtidText(gtidSubtract(rp.Executed, sp.Executed)))}, true
	}
	return Blocker{}, false
}

// detectIntermediateLost finds the replicas still under the source an
// operator relocated them under, when that source can no longer serve them:
// each is moved under the primary.
func detectIntermediateLost(f *facts) []finding {
	if f.primary == "" {
		return nil
	}
	var out []finding
	for _, n := range sortedKeys(f.v.State.Sources) {
		rel := f.v.State.Sources[n]
		pr, ok := replicaProbe(f, n)
		if !ok || n == f.primary || pr.Replica == nil || f.v.State.Quarantined[n] != "" || opTarget(f.v, n) {
			continue
		}
		if src, known := resolveSource(f.v, pr.Replica.Source); !known || src != rel {
			continue
		}
		exp, why := ExpectedSource(f.v, f.p, n)
		if exp == rel {
			continue
		}
		fd := finding{instances: []string{n, rel}, target: n,
			reason: fmt.Sprintf("%s replicates from %s, under which it was relocated, but %s: it is moved under the primary %s with GTID auto-positioning, and back under %s once %s can serve it again", n, rel, why, f.primary, rel, rel)}
		if b, unsafe := repointBlocker(f, n, pr); unsafe {
			fd.blockers = append(fd.blockers, b)
		}
		out = append(out, fd)
	}
	return out
}

// PlanRelocate plans an operator's relocation of a replica under another
// replica of the cluster (regentctl repoint NAME --to TO), or back under
// the primary (to is the primary or ""): its IO thread stops, the new
// source catches up with what it holds, it is repointed with GTID
// auto-positioning, and the relocation is recorded so that Regent keeps it
// there. Refused when TO could not serve it (ExpectedSource's rules), when
// it would make a cycle, or when NAME is not a replica the leader reaches.
func PlanRelocate(v View, p Policy, name, to string) (Plan, error) {
	if err := validate(v, p); err != nil {
		return Plan{}, err
	}
	pl := newPlan(v, OpRepoint, TriggerManual)
	prim := v.State.Primary
	if _, ok := v.Instances[prim]; !ok {
		return pl, refuse(OpRepoint, v, "no primary is recorded for this cluster")
	}
	if _, ok := v.Instances[name]; !ok || name == prim {
		return pl, refuse(OpRepoint, v, fmt.Sprintf("%s is not a replica of cluster %s", name, v.Cluster))
	}
	if to == "" {
		to = prim
	}
	if _, ok := v.Instances[to]; !ok {
		return pl, refuse(OpRepoint, v, fmt.Sprintf("%s is not an instance of cluster %s", to, v.Cluster))
	}
	if to == name {
		return pl, refuse(OpRepoint, v, fmt.Sprintf("%s cannot replicate from itself", name))
	}
	reasons := gate(v, p, &pl)
	pr, rc := leaderReach(v, p, name)
	switch {
	case rc != reachOK:
		reasons = append(reasons, fmt.Sprintf("%s is %s", name, unreachableReason(v, pr, rc)))
	case pr.Replica == nil:
		reasons = append(reasons, fmt.Sprintf("%s is not a replica (rejoin it first)", name))
	case v.State.Quarantined[name] != "":
		reasons = append(reasons, fmt.Sprintf("%s is quarantined: %s", name, v.State.Quarantined[name]))
	default:
		f := &facts{v: v, p: p, primary: prim, live: judgeErrant(v)}
		if b, unsafe := repointBlocker(f, name, pr); unsafe {
			reasons = append(reasons, fmt.Sprintf("%s cannot be repointed safely: %s", name, b.Reason))
		}
	}
	if to != prim {
		for at, hops := to, 0; at != "" && at != prim; at, hops = v.State.Sources[at], hops+1 {
			if at == name || hops > len(v.Instances) {
				reasons = append(reasons, fmt.Sprintf("%s is relocated under %s: %s under %s would make a replication cycle", to, name, name, to))
				break
			}
		}
		if why := unusableSource(v, p, name, to); why != "" {
			reasons = append(reasons, fmt.Sprintf("%s cannot serve %s as its source: %s", to, name, why))
		}
	}
	if len(reasons) > 0 {
		return pl, refuse(OpRepoint, v, reasons...)
	}
	under := false
	if src, ok := resolveSource(v, pr.Replica.Source); ok && src == to {
		under = true
	}
	rec := to
	if to == prim {
		rec = ""
	}
	if under && v.State.Sources[name] == rec {
		return pl, refuse(OpRepoint, v, fmt.Sprintf("%s already replicates from %s: nothing to do", name, to))
	}
	pl.Target = name
	semi := p.Durability == DurabilitySemiSync
	pl.add(intent(p, pl, name, fmt.Sprintf("relocate %s under %s", name, to)))
	switch {
	case under:
	case to == prim:
		pl.add(Step{Kind: StepRepoint, Instance: name, Source: prim, SemiSync: semi, Timeout: p.StepTimeout, Why: "the primary holds everything its replicas hold"})
	default:
		pl.Steps = append(pl.Steps, chainSteps(p, name, to, p.CatchUpTimeout)...)
	}
	if v.State.Sources[name] != rec {
		why := fmt.Sprintf("Regent keeps %s under %s while %s can serve it", name, to, to)
		if rec == "" {
			why = fmt.Sprintf("%s belongs directly under the primary again", name)
		}
		pl.add(Step{Kind: StepRecordSource, Instance: name, Source: rec, Timeout: p.RaftTimeout, Why: why})
	}
	pl.add(Step{Kind: StepFinish, Operation: OpRepoint, Timeout: p.RaftTimeout, Why: "the relocation is done"})
	return pl, nil
}

// chainSteps moves name under the replica src: its IO thread stops (so
// that what it holds stops growing; started again if the move fails), src
// executes everything it holds (waiting at most wait), then it is repointed
// with GTID auto-positioning.
func chainSteps(p Policy, name, src string, wait time.Duration) []Step {
	return []Step{
		{Kind: StepStopIOThreads, Instances: []string{name}, Timeout: p.StepTimeout, Undo: StepStartIOThreads,
			Why: fmt.Sprintf("what %s holds stops growing, so that %s can be seen to hold it all", name, src)},
		{Kind: StepRepoint, Instance: name, Source: src, Chain: true, SemiSync: p.Durability == DurabilitySemiSync, Timeout: wait,
			Why: fmt.Sprintf("%s goes under %s once %s has executed everything it holds", name, src, src)},
	}
}
