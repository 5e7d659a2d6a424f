package failover

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// This file derives facts from a View: freshness, reachability, whether
// replicas still receive from the primary, whether the primary is dead in the
// sense of README "Detection", whether its agent is isolated, and errant
// transactions. Analyze, Rank and the planners share them, so that a status
// page, an automatic decision and a plan never disagree.

// fresh reports whether a probe is recent enough to count. A probe stamped in
// the future (clock skew between agents) counts as fresh.
func fresh(v View, p Policy, pr Probe) bool {
	return !pr.ObservedAt.IsZero() && v.Now.Sub(pr.ObservedAt) <= p.ObservationTTL
}

// reach classifies what the leader knows about reaching an instance.
type reach int

const (
	reachOK      reach = iota // a fresh successful probe
	reachDown                 // a fresh failed probe: nothing answered
	reachAnswers              // a fresh failed probe, but the server answered (auth, privileges)
	reachStale                // the leader's latest probe is too old to count
	reachNone                 // the leader never probed it
)

// leaderReach returns the leader's latest probe of an instance and how to
// read it.
func leaderReach(v View, p Policy, name string) (Probe, reach) {
	pr, ok := v.Instances[name].Probes[v.Leader]
	switch {
	case !ok || pr.ObservedAt.IsZero():
		return pr, reachNone
	case !fresh(v, p, pr):
		return pr, reachStale
	case pr.Reachable:
		return pr, reachOK
	case pr.Error.answered():
		return pr, reachAnswers
	default:
		return pr, reachDown
	}
}

// unreachableReason says, for people, why the leader cannot act on an
// instance.
func unreachableReason(v View, pr Probe, r reach) string {
	switch r {
	case reachDown:
		return fmt.Sprintf("unreachable from the leader (%s): %s since %s", v.Leader, classText(pr), stamp(failingSince(pr)))
	case reachAnswers:
		return fmt.Sprintf("answers the leader (%s) but refuses it (%s): fix Regent's MySQL credentials or privileges", v.Leader, classText(pr))
	case reachStale:
		return fmt.Sprintf("the leader's (%s) latest probe is stale (from %s)", v.Leader, stamp(pr.ObservedAt))
	case reachNone:
		return fmt.Sprintf("never probed by the leader (%s)", v.Leader)
	}
	return ""
}

func classText(pr Probe) string {
	c := string(pr.Error)
	if c == "" {
		c = string(ClassUnknown)
	}
	if pr.ErrorDetail != "" {
		return c + " (" + pr.ErrorDetail + ")"
	}
	return c
}

func failingSince(pr Probe) time.Time {
	if pr.FailingSince.IsZero() {
		return pr.ObservedAt
	}
	return pr.FailingSince
}

// lastLife is Probe.LastLife.
func lastLife(pr Probe) time.Time { return pr.LastLife() }

// LastLife is the latest sign of life the probe carries: a successful
// probe (this one, or the last before a failed one) or a packet on the
// agent's binlog stream; zero when there was none.
func (pr Probe) LastLife() time.Time {
	t := pr.LastReachedAt
	if pr.Reachable && pr.ObservedAt.After(t) {
		t = pr.ObservedAt
	}
	if pr.Stream.HeardAt.After(t) {
		t = pr.Stream.HeardAt
	}
	return t
}

// streamWindow is how long a binlog stream may go without a packet and still
// count as alive: two heartbeats (one late heartbeat is not silence) plus one
// probe interval (the report that carries the stream's last packet is sent
// once per probe interval).
func streamWindow(p Policy, s Stream) time.Duration {
	return 2*s.Period + p.ProbeInterval
}

// streamAlive reports whether an agent's binlog stream from an instance
// heard it recently: evidence that the instance's mysqld runs and that the
// network between them carries packets, however slowly.
func streamAlive(v View, p Policy, s Stream) bool {
	return s.Period > 0 && !s.HeardAt.IsZero() && v.Now.Sub(s.HeardAt) <= streamWindow(p, s)
}

// stamp prints a time for a reason string: UTC, to the millisecond, so that
// reasons read the same on every agent.
func stamp(t time.Time) string { return t.UTC().Format("15:04:05.000") }

// dayStamp prints a time that may be days away, for reasons.
func dayStamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// freshestOK returns the most recent fresh successful probe of an instance by
// any agent, ties broken by agent id.
func freshestOK(v View, p Policy, name string) (Probe, AgentID, bool) {
	var best Probe
	var who AgentID
	found := false
	for _, a := range v.agentIDs() {
		pr, ok := v.Instances[name].Probes[a]
		if !ok || !pr.Reachable || !fresh(v, p, pr) {
			continue
		}
		if !found || pr.ObservedAt.After(best.ObservedAt) {
			best, who, found = pr, a, true
		}
	}
	return best, who, found
}

// resolveSource maps a replica's Source (a name or host:port) to an instance
// name.
func resolveSource(v View, src string) (string, bool) {
	if src == "" {
		return "", false
	}
	if _, ok := v.Instances[src]; ok {
		return src, true
	}
	for _, n := range v.names() {
		if a := v.Instances[n].Addr; a != "" && a == src {
			return n, true
		}
	}
	return "", false
}

// agentSilent reports whether the leader has not heard from an agent for
// longer than fence_after: by then the agent has lost the quorum and fenced
// its local instance (the self-fencing lease, docs/safety.md).
func agentSilent(v View, p Policy, a AgentID) bool {
	r, ok := v.Agents[a]
	return !ok || r.LastHeard.IsZero() || v.Now.Sub(r.LastHeard) > p.FenceAfter
}

// leaseLapse is when an agent's lease has surely lapsed: last heard plus
// lease_timeout.
func leaseLapse(v View, p Policy, a AgentID) time.Time {
	return v.Agents[a].LastHeard.Add(p.LeaseTimeout)
}

// progressWindow is how long a replica may go without receive progress and
// still count as receiving: two heartbeats plus one probe interval, so that
// one late heartbeat or one probe between two heartbeats is not read as
// silence.
func progressWindow(p Policy, rs *ReplicaStatus) time.Duration {
	return 2*rs.HeartbeatPeriod + p.ProbeInterval
}

// receives reports whether a probe shows a replica still receiving from the
// named source: IO thread connected to it and, when progress is tracked,
// progress within the window. Without heartbeats an idle primary shows no
// progress, so then a connected IO thread alone counts (conservative: no
// failover); `regentctl check` flags the missing heartbeat period.
func receives(v View, p Policy, pr Probe, source string) bool {
	rs := pr.Replica
	if rs == nil || rs.IOState != IOYes {
		return false
	}
	if n, ok := resolveSource(v, rs.Source); !ok || n != source {
		return false
	}
	if rs.HeartbeatPeriod <= 0 || rs.LastProgressAt.IsZero() {
		return true
	}
	return v.Now.Sub(rs.LastProgressAt) <= progressWindow(p, rs)
}

// receiversOf lists the instances whose freshest probe (by any agent) shows
// them receiving from source. Only probes observed after `after` count: a
// probe taken while the source was still alive is no evidence about now.
func receiversOf(v View, p Policy, source string, after time.Time) []string {
	var out []string
	for _, n := range v.names() {
		if n == source {
			continue
		}
		pr, _, ok := freshestOK(v, p, n)
		if !ok || !pr.ObservedAt.After(after) {
			continue
		}
		if receives(v, p, pr, source) {
			out = append(out, n)
		}
	}
	return out
}

// primaryHealth is the assessment of the recorded primary against the
// conditions of README "Detection".
type primaryHealth struct {
	name        string
	probe       Probe // the leader's latest probe of it
	leader      reach
	fresh       int // agents with a fresh probe of it
	failing     int // of which failed without the server answering
	receivers   []string
	condA       bool
	condB       bool
	condC       bool
	condD       bool
	ownView     string // what (d) found, for people
	dead        bool
	fast        bool      // dead by the fast path
	fastAgent   AgentID   // the agent whose report allowed the fast path
	unmet       []string  // why it is not dead, for people
	notBefore   time.Time // when condition (a) will hold, if it is the one missing
	silentSince time.Time // the leader's last sign of life from it, when its probes fail
	leaderCanDo bool      // the leader reaches it and can fence it directly
}

// assessPrimary judges whether the recorded primary is dead. Dead means:
// (a) the leader's probes have failed for failure_timeout, (b) a strict
// majority of the agents with a fresh probe (and at least
// min_agreeing_agents) fail to reach it, and (c) no replica still receives
// from it. Or the fast path: its own agent, alive, reports its mysqld gone,
// and nothing seen after that contradicts it (no agent reached it, no replica
// still receives from it).
func assessPrimary(v View, p Policy) primaryHealth {
	name := v.State.Primary
	h := primaryHealth{name: name}
	in := v.Instances[name]
	h.probe, h.leader = leaderReach(v, p, name)
	h.leaderCanDo = h.leader == reachOK

	// (a) The leader's probes fail and the primary has been silent to the
	// leader for failure_timeout: no successful probe and no packet on the
	// leader's binlog stream. Silence is measured from the last sign of
	// life, not from the first failed probe, which comes a probe interval
	// and a probe timeout later.
	switch {
	case h.leader == reachOK:
		h.unmet = append(h.unmet, fmt.Sprintf("the leader (%s) reaches %s", v.Leader, name))
	case h.leader == reachDown && streamAlive(v, p, h.probe.Stream):
		h.unmet = append(h.unmet, fmt.Sprintf("the leader's (%s) probes fail (%s) but its binlog stream from %s heard it at %s", v.Leader, classText(h.probe), name, stamp(h.probe.Stream.HeardAt)))
	case h.leader == reachDown:
		since := lastLife(h.probe)
		what := "silent to the leader"
		if since.IsZero() {
			since, what = failingSince(h.probe), "failing from the leader"
		}
		h.silentSince = since
		if d := v.Now.Sub(since); d >= p.FailureTimeout {
			h.condA = true
		} else {
			h.notBefore = since.Add(p.FailureTimeout)
			h.unmet = append(h.unmet, fmt.Sprintf("%s has been %s (%s) for %v only (failure_timeout %v)", name, what, classText(h.probe), d, p.FailureTimeout))
		}
	default:
		h.unmet = append(h.unmet, fmt.Sprintf("%s: %s", name, unreachableReason(v, h.probe, h.leader)))
	}

	// (b)
	for _, a := range v.agentIDs() {
		pr, ok := in.Probes[a]
		if !ok || !fresh(v, p, pr) {
			continue
		}
		h.fresh++
		if !pr.Reachable && !pr.Error.answered() && !streamAlive(v, p, pr.Stream) {
			h.failing++
		}
	}
	h.condB = h.failing*2 > h.fresh && h.failing >= p.MinAgreeingAgents
	if !h.condB {
		h.unmet = append(h.unmet, fmt.Sprintf("only %d of the %d agents with a fresh probe fail to reach %s and hear nothing on their binlog streams (a strict majority and at least min_agreeing_agents=%d are needed)", h.failing, h.fresh, name, p.MinAgreeingAgents))
	}

	// (c)
	h.receivers = receiversOf(v, p, name, time.Time{})
	h.condC = len(h.receivers) == 0
	if !h.condC {
		h.unmet = append(h.unmet, fmt.Sprintf("replicas %s still receive from %s: it is unreachable, not dead", strings.Join(h.receivers, ", "), name))
	}
	// (d) Nothing alive says otherwise: the primary's own agent, while the
	// leader hears it (it holds its lease), has the last word on its local
	// instance. When its latest probe reached the primary, able to commit
	// (under semi_sync: with enough semi-sync replicas connected), the
	// silence on every other path is the network's, not the primary's: a
	// lossy or slow link stalls all of them at once for seconds, and
	// failing over a primary that serves its clients would be a false
	// failover. A hung mysqld fails its agent's probe too; a host that is
	// frozen or cut off silences its agent, which then fences.
	h.condD = true
	switch a := in.OwnerAgent; {
	case a == "":
		h.ownView = "it has no agent of its own"
	case agentSilent(v, p, a):
		h.ownView = fmt.Sprintf("its agent %s has not been heard since %s", a, stamp(v.Agents[a].LastHeard))
	default:
		pr, ok := in.Probes[a]
		via := "report"
		if lp := v.Agents[a].LocalProbe; lp != nil && (!ok || lp.ObservedAt.After(pr.ObservedAt)) {
			pr, ok, via = *lp, true, "lease pings"
		}
		retrying := retryingTo(v, p, name)
		switch {
		case !ok:
			h.ownView = fmt.Sprintf("its agent %s has sent no probe of it", a)
		case !pr.Reachable:
			h.ownView = fmt.Sprintf("its agent %s's probe of it failed at %s (%s, by its %s)", a, stamp(pr.ObservedAt), classText(pr), via)
		case v.Now.Sub(pr.ObservedAt) > p.LeaseTimeout:
			h.ownView = fmt.Sprintf("its agent %s's latest probe of it is from %s (by its %s), older than lease_timeout", a, stamp(pr.ObservedAt), via)
		case cannotCommit(p, pr) && !pr.SemiSync.ShortSince.IsZero() && v.Now.Sub(pr.SemiSync.ShortSince) < shortVeto(p):
			// Its replicas' connections broke on the same bad link as every
			// other remote path and are being made again: the shortfall is
			// the network's too (found by the soak under 20 % loss, where
			// both replicas reconnecting at once made a live primary dead).
			h.condD = false
			h.unmet = append(h.unmet, fmt.Sprintf("its own agent %s, which the leader hears, reached it at %s (by its %s); it has lacked semi-sync replicas only since %s, less than failure_timeout + lease_timeout (%v): its replicas are reconnecting, not gone",
				a, stamp(pr.ObservedAt), via, stamp(pr.SemiSync.ShortSince), shortVeto(p)))
		case cannotCommit(p, pr) && !pr.SemiSync.ShortSince.IsZero() && v.Now.Sub(pr.SemiSync.ShortSince) < reconnectVeto(p) && len(retrying) > 0:
			// Longer while replicas keep trying to connect to it: on a
			// lossy link one attempt can take up to the replica's
			// slave_net_timeout (the issue 10 soak: both replicas of a
			// live MariaDB primary reconnecting at once for over 5 s).
			h.condD = false
			h.unmet = append(h.unmet, fmt.Sprintf("its own agent %s, which the leader hears, reached it at %s (by its %s); it has lacked semi-sync replicas since %s, but replicas %s keep connecting to it, for less than %v: the link to its replicas is failing, not the primary",
				a, stamp(pr.ObservedAt), via, stamp(pr.SemiSync.ShortSince), strings.Join(retrying, ", "), reconnectVeto(p)))
		case cannotCommit(p, pr):
			h.ownView = fmt.Sprintf("its agent %s saw it at %s with %d semi-sync replica(s), fewer than it waits for", a, stamp(pr.ObservedAt), pr.SemiSync.SourceClients)
			if !pr.SemiSync.ShortSince.IsZero() {
				h.ownView += fmt.Sprintf(" since %s", stamp(pr.SemiSync.ShortSince))
			}
		default:
			h.condD = false
			h.unmet = append(h.unmet, fmt.Sprintf("its own agent %s, which the leader hears, reached it at %s, able to commit (by its %s): the silence is the network's", a, stamp(pr.ObservedAt), via))
		}
	}
	h.dead = h.condA && h.condB && h.condC && h.condD

	// Fast path.
	if !h.dead && p.FastPath && in.OwnerAgent != "" {
		rep := v.Agents[in.OwnerAgent]
		if rep.Local == LocalGone && !agentSilent(v, p, in.OwnerAgent) {
			contradiction := ""
			if rcv := receiversOf(v, p, name, rep.LocalSince); len(rcv) > 0 {
				contradiction = fmt.Sprintf("replicas %s still receive from it", strings.Join(rcv, ", "))
			}
			for _, a := range v.agentIDs() {
				pr, ok := in.Probes[a]
				if !ok {
					continue
				}
				if pr.Reachable && fresh(v, p, pr) && pr.ObservedAt.After(rep.LocalSince) {
					contradiction = fmt.Sprintf("agent %s reached it at %s", a, stamp(pr.ObservedAt))
					break
				}
				if streamAlive(v, p, pr.Stream) && pr.Stream.HeardAt.After(rep.LocalSince) {
					contradiction = fmt.Sprintf("agent %s's binlog stream heard it at %s", a, stamp(pr.Stream.HeardAt))
					break
				}
			}
			if contradiction == "" {
				h.dead, h.fast, h.fastAgent = true, true, in.OwnerAgent
				h.unmet = nil
				h.notBefore = time.Time{}
			} else {
				h.unmet = append(h.unmet, fmt.Sprintf("its agent %s reports mysqld gone (%s) but %s", in.OwnerAgent, rep.LocalDetail, contradiction))
			}
		}
	}
	if h.dead {
		h.unmet = nil
	}
	return h
}

// shortVeto is how long a primary that its own agent reaches, and that the
// leader hears, may lack semi-sync replicas before condition (d) stops
// vetoing its death: long enough for replicas to reconnect through a lossy
// link, short enough that a primary cut off from its replicas alone still
// fails over within seconds.
func shortVeto(p Policy) time.Duration { return p.FailureTimeout + p.LeaseTimeout }

// replicaReconnect is how long the veto of condition (d) may last while
// replicas keep trying to connect to the primary: two of a replica's
// connection attempts at the slave_net_timeout / replica_net_timeout of
// 15 s that README "Detection" recommends (on a lossy link one attempt
// can last that long: its TCP handshake and logins retransmitted with
// growing back-off).
const replicaReconnect = 30 * time.Second

// reconnectVeto is the longer bound of condition (d)'s veto, for a primary
// whose replicas keep trying to connect to it.
func reconnectVeto(p Policy) time.Duration { return max(shortVeto(p), replicaReconnect) }

// retryingTo lists the replicas whose freshest probe shows their IO thread
// running (connected or connecting) with source as their source and no
// error but a lost or refused connection's: replicas that are
// (re)connecting to it. A stopped thread, or one that stopped on another
// error (wrong password, purged binlogs), is not retrying.
func retryingTo(v View, p Policy, source string) []string {
	var out []string
	for _, n := range v.names() {
		if n == source {
			continue
		}
		pr, _, ok := freshestOK(v, p, n)
		if !ok || pr.Replica == nil {
			continue
		}
		rs := pr.Replica
		if rs.IOState != IOYes && rs.IOState != IOConnecting {
			continue
		}
		if rs.LastIOError != "" && !reconnectError(rs.LastIOErrno, rs.LastIOError) {
			continue
		}
		if src, ok := resolveSource(v, rs.Source); ok && src == source {
			out = append(out, n)
		}
	}
	return out
}

// cannotCommit reports whether a probe shows a primary that cannot commit:
// under semi_sync, fewer semi-sync replicas connected than it waits for.
func cannotCommit(p Policy, pr Probe) bool {
	ss := pr.SemiSync
	return p.Durability == DurabilitySemiSync && ss.SourceEnabled && ss.SourceClients < max(1, ss.WaitCount)
}

// DeadAt is when the recorded primary will be declared dead if nothing but
// time changes: the moment it will have been silent to the leader for
// failure_timeout, while the leader's probes of it fail. Zero when there is
// no such moment (no primary, reachable, dead already, or the leader's
// binlog stream still hears it). The leader evaluates again at that moment
// rather than at its next tick, which can be a probe interval later.
func DeadAt(v View, p Policy) time.Time {
	if v.State.Primary == "" {
		return time.Time{}
	}
	return assessPrimary(v, p).notBefore
}

// deadReason explains a dead primary for people.
func (h primaryHealth) deadReason(v View) string {
	if h.fast {
		rep := v.Agents[h.fastAgent]
		detail := rep.LocalDetail
		if detail == "" {
			detail = "mysqld gone"
		}
		return fmt.Sprintf("%s is dead: its own agent %s reports %s since %s and no replica still receives from it (fast path)", h.name, h.fastAgent, detail, stamp(rep.LocalSince))
	}
	return fmt.Sprintf("%s is dead: silent to the leader since %s (%s), %d of %d agents with a fresh probe fail to reach it and hear nothing on their binlog streams, no replica still receives from it, and %s", h.name, stamp(h.silentSince), classText(h.probe), h.failing, h.fresh, h.ownView)
}

// isolation is the state of the primary's own agent.
type isolation struct {
	isolated bool
	agent    AgentID
	lapse    time.Time // when its lease has surely lapsed
	lapsed   bool
	reason   string
}

// assessIsolation says whether the primary's own agent has lost the quorum:
// not heard for fence_after, or reporting it does not hold the lease.
func assessIsolation(v View, p Policy) isolation {
	in := v.Instances[v.State.Primary]
	a := in.OwnerAgent
	if a == "" {
		return isolation{}
	}
	rep := v.Agents[a]
	iso := isolation{agent: a, lapse: leaseLapse(v, p, a)}
	iso.lapsed = !v.Now.Before(iso.lapse)
	switch {
	case agentSilent(v, p, a):
		iso.isolated = true
		iso.reason = fmt.Sprintf("its agent %s has not been heard since %s (fence_after %v): it has lost the quorum and fences %s", a, stamp(rep.LastHeard), p.FenceAfter, in.Name)
	case !rep.LeaseHeld:
		iso.isolated = true
		iso.reason = fmt.Sprintf("its agent %s reports it does not hold the lease: it keeps %s read-only until it does", a, in.Name)
	}
	return iso
}

// ErrantJudgement is one agent's exact comparison of an instance with the
// primary: the transactions the instance had executed that the primary
// lacked (nil: none), and when that agent probed the instance for it, on the
// agent's own clock.
type ErrantJudgement struct {
	Errant GTIDSet
	At     time.Time
}

// judgeErrant makes the exact judgements the view allows now, per instance
// other than the primary and per agent: an agent's probe of the primary is
// compared with the same agent's probe of the instance when the primary's was
// taken no earlier, so that one clock orders them and every legitimate
// transaction of the instance was already on the primary. (MySQL with
// AFTER_SYNC updates gtid_executed on the primary just after the replica's
// acknowledgement; a replica applying a transaction inside that window could
// be misjudged for one probe round, which is why a judgement reports and
// never acts by itself.)
func judgeErrant(v View) map[string]map[AgentID]ErrantJudgement {
	out := map[string]map[AgentID]ErrantJudgement{}
	prim, ok := v.Instances[v.State.Primary]
	if !ok {
		return out
	}
	for _, n := range v.names() {
		if n == prim.Name {
			continue
		}
		in := v.Instances[n]
		for _, a := range v.agentIDs() {
			pp, ok1 := prim.Probes[a]
			rp, ok2 := in.Probes[a]
			if !ok1 || !ok2 || !pp.Reachable || !rp.Reachable || pp.Executed == nil || rp.Executed == nil {
				continue
			}
			if pp.ObservedAt.Before(rp.ObservedAt) {
				continue
			}
			j := ErrantJudgement{At: rp.ObservedAt}
			if e := gtidSubtract(rp.Executed, uncommittedSeenBy(v, a, rp.ObservedAt, pp.Executed)); !gtidEmpty(e) {
				j.Errant = e
			}
			if out[n] == nil {
				out[n] = map[AgentID]ErrantJudgement{}
			}
			out[n][a] = j
		}
	}
	return out
}

// uncommittedSeenBy adds to ref what agent a saw, no earlier than at, on
// the instances an aborted operation promoted without committing: as the
// would-be primary each may have acknowledged writes, so they and their
// copies on its replicas are data, not errant (docs/safety.md, *Promotions
// are recorded before they happen*). The same ordering as the primary's
// probe applies: one clock, taken no earlier.
func uncommittedSeenBy(v View, a AgentID, at time.Time, ref GTIDSet) GTIDSet {
	for u := range v.State.Uncommitted {
		up, ok := v.Instances[u].Probes[a]
		if ok && up.Reachable && up.Executed != nil && !up.ObservedAt.Before(at) {
			ref = gtidUnion(ref, up.Executed)
		}
	}
	return ref
}

// ErrantGTIDs returns the exact judgements the view allows now (see
// judgeErrant), the union over the agents that could judge: instances no
// agent can judge now are absent; judged clean ones map to nil.
func ErrantGTIDs(v View) map[string]GTIDSet {
	out := map[string]GTIDSet{}
	for n, js := range judgeErrant(v) {
		out[n] = unionJudged(js)
	}
	return out
}

// CarryErrant returns the ErrantJudged values for the next view: for each
// instance and each agent of the view, that agent's newest judgement, the
// one it can make now or else the one the view carries. The runner calls it
// every round, so that errant transactions found while the primary lived are
// still known after it died. A judgement is only ever replaced by a newer one
// of the same agent: one agent's pair of probes taken before an errant write
// reached the instance says nothing about what another agent found after it.
// The knowledge is forgotten once every agent that found it judges the
// instance clean again (the operator re-cloned it, or injected empty
// transactions on the primary); judgements of agents no longer in the view
// are dropped.
func CarryErrant(v View) map[string]map[AgentID]ErrantJudgement {
	live := judgeErrant(v)
	out := map[string]map[AgentID]ErrantJudgement{}
	for _, n := range v.names() {
		if m := carryOne(v, live, n); len(m) > 0 {
			out[n] = m
		}
	}
	return out
}

// carryOne merges an instance's carried judgements with the live ones.
func carryOne(v View, live map[string]map[AgentID]ErrantJudgement, name string) map[AgentID]ErrantJudgement {
	m := map[AgentID]ErrantJudgement{}
	for a, j := range v.Instances[name].ErrantJudged {
		if _, ok := v.Agents[a]; ok {
			m[a] = j
		}
	}
	for a, j := range live[name] {
		if old, ok := m[a]; !ok || !j.At.Before(old.At) {
			m[a] = j
		}
	}
	return m
}

// unionJudged is the union of some judgements' errant sets; nil when clean.
func unionJudged(js map[AgentID]ErrantJudgement) GTIDSet {
	var u GTIDSet
	for _, j := range js {
		if !gtidEmpty(j.Errant) {
			u = gtidUnion(u, j.Errant)
		}
	}
	return u
}

// errantNow returns what is known of an instance's errant transactions: the
// union of every agent's newest judgement, live or carried.
func errantNow(v View, live map[string]map[AgentID]ErrantJudgement, name string) GTIDSet {
	return unionJudged(carryOne(v, live, name))
}

// errantFinders names the agents whose newest judgement of an instance found
// errant transactions but who cannot compare it with the primary now.
func errantFinders(v View, live map[string]map[AgentID]ErrantJudgement, name string) []string {
	var out []string
	for a, j := range carryOne(v, live, name) {
		if _, now := live[name][a]; !now && !gtidEmpty(j.Errant) {
			out = append(out, string(a))
		}
	}
	sort.Strings(out)
	return out
}

// joinNames prints a sorted list of names.
func joinNames(names []string) string {
	s := append([]string(nil), names...)
	sort.Strings(s)
	return strings.Join(s, ", ")
}
