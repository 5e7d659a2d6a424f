package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/failover"
)

// leaderLoop runs on every agent and acts only while this agent leads: after
// winning an election it waits for a Barrier (every earlier leader's commands
// applied), then evaluates each cluster (eval: clusterRT.evaluate) every
// probe interval and at once when woken (an agent reports its mysqld gone, a
// primary's failure_timeout runs out, leadership was just won).
func (a *Agent) leaderLoop(ctx context.Context, eval func(*clusterRT, context.Context)) {
	ch, cancel := a.raft.WatchLeadership()
	defer cancel()
	leading := false
	every := time.Hour
	for _, c := range a.rts() {
		every = min(every, c.policy.ProbeInterval)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case l, ok := <-ch:
			if !ok {
				return
			}
			leading = false
			if l.IsLeader {
				bctx, bcancel := context.WithTimeout(ctx, 5*time.Second)
				err := a.raft.Barrier(bctx)
				bcancel()
				if err != nil {
					a.log.Warn("new leader: barrier failed; not acting until it succeeds", logErr, err)
					a.wake()
					continue
				}
				leading = true
				a.leaderGen.Add(1) // every cluster reconciles its routes at once
				a.log.Info("leading: evaluating replication clusters")
				a.wake() // evaluate at once: abandoned operations are aborted there
			}
			continue
		case <-t.C:
		case <-a.kick:
		}
		if !leading {
			if a.raft.IsLeader() {
				// A failed barrier: try again.
				bctx, bcancel := context.WithTimeout(ctx, 5*time.Second)
				leading = a.raft.Barrier(bctx) == nil
				bcancel()
				if leading {
					a.leaderGen.Add(1)
				}
			}
			if !leading {
				continue
			}
		}
		if !a.raft.IsLeader() {
			leading = false
			continue
		}
		// Each cluster on its own goroutine: one cluster's failover must
		// never wait for another's. evaluate returns at once while the
		// cluster's previous evaluation or operation still runs.
		clusters := a.rts()
		for _, name := range sortedNames(clusters) {
			c := clusters[name]
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				eval(c, ctx)
			}()
		}
	}
}

// abortOrphan aborts an operation recorded in the replicated state that no
// run on this leader owns: evaluate holds the cluster's token, which every
// run holds from its intent to its finish, so such an operation was left by
// a previous leader, by a run whose intent timed out but committed later, or
// by a run whose finish failed. Waiting operation_timeout for it would leave
// a dead primary unreplaced; the Raft log is ours, so whatever its run still
// tries to record is refused. The next evaluation sees what it did and
// repairs from there.
func (c *clusterRT) abortOrphan(ctx context.Context, op *consensus.Operation) {
	pctx, cancel := context.WithTimeout(ctx, c.policy.RaftTimeout)
	defer cancel()
	reason := fmt.Sprintf("abandoned: no run on the leader %s owns it (its leader lost leadership, its intent committed after its run gave up, or its finish failed)", c.a.id)
	if op.Committed {
		// Aborted, yet the change of primary stands: say so, or the
		// history reads as if the primary had not changed.
		reason = fmt.Sprintf("%s; it had committed epoch %d with %s as the primary, which stands: the steps after the commit (post-hooks included) did not run", reason, op.CommitEpoch, op.NewPrimary)
	}
	_, err := c.a.raft.Propose(pctx, consensus.AbortOperation{Cluster: c.name, OperationID: op.ID, At: c.now(), Reason: reason})
	if err != nil {
		c.log.Warn("could not abort an abandoned operation; trying again at the next evaluation", logOp, op.ID, logErr, err)
		return
	}
	c.log.Warn("aborted an abandoned operation", logOp, op.ID, "kind", op.Kind)
	// Its run died before its undo: the IO threads it stopped stay
	// stopped (Regent restarts no IO thread an operator stopped), and a
	// lossless primary would have no acknowledger left. Start them again;
	// a later failover stops them again if it needs to. One that cannot
	// be reached now is repointed once it can (ReplicaIOLeftStopped).
	if op.Committed {
		return
	}
	for _, name := range stoppedIO(op.Steps) {
		sctx, cancel := context.WithTimeout(ctx, c.policy.StepTimeout)
		err := c.act.StartReplicaIO(sctx, name)
		cancel()
		if err != nil {
			c.log.Warn("could not restart an IO thread the abandoned operation stopped", logOp, op.ID, logInstance, name, logErr, err)
			continue
		}
		c.log.Info("restarted an IO thread the abandoned operation stopped", logOp, op.ID, logInstance, name)
	}
}

// stoppedIO lists the instances whose IO threads an operation's recorded
// steps stopped and did not start again (failover.StoppedIOThreads).
func stoppedIO(steps []consensus.Step) []string {
	names, ok := make([]string, len(steps)), make([]bool, len(steps))
	for i, s := range steps {
		names[i], ok[i] = s.Name, s.Result == consensus.StepOK
	}
	return failover.StoppedIOThreads(names, ok)
}

// leftStopped lists the instances whose IO threads an operation that
// ended without a change of primary may have left stopped: those its
// recorded steps stopped and did not start again, and, for the kinds that
// stop IO threads (failover, forced failover, switchover), every replica:
// a run that lost the leadership records no step it carried out after
// that, and a leader that thawed from a freeze still carries out the step
// it was in (chaos seed 20262543: a switchover's stop-io-threads on db3
// ran after the next leader had aborted the switchover, and was never
// recorded). ReplicaIOLeftStopped repoints only those whose IO thread is
// stopped without an error of its own, under the source they belong
// under; an operator who stops one by hand right after such an operation
// should pause the cluster first.
func leftStopped(last consensus.HistoryEntry, instances []string, primary string) []string {
	out := stoppedIO(last.Steps)
	switch last.Kind {
	case consensus.KindFailover, consensus.KindForcedFailover, consensus.KindSwitchover:
		for _, n := range instances {
			if n != primary && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// leftStoppedSince lists the instances whose IO threads the operations
// since the last change of primary may have left stopped (leftStopped of
// each that ended without one), sorted. Not the last operation's
// alone: one that stops nothing may follow while the replica is still
// unreachable (chaos seed 20263035: a failover aborted by the next leader,
// which could not reach db3 to start its IO thread again, then db1's
// quarantine, then db3 back; looking at the quarantine alone, db3 stayed
// stopped for good). A change of primary ends the walk: its repoints
// started every IO thread it had stopped, but for the old primary's when it
// did not end well.
func leftStoppedSince(history []consensus.HistoryEntry, instances []string, primary string) []string {
	var out []string
	for i := len(history) - 1; i >= 0; i-- {
		e := history[i]
		if e.EpochAfter > e.EpochBefore {
			// A change of primary that did not end well: its leader died
			// after the commit, and its repoint of the old primary, the
			// step after it, may have been cut between CHANGE MASTER and
			// START SLAVE (chaos seed 20263204: db1 left pointing at db2
			// with both threads stopped, and not a RejoinNeeded since it is
			// a replica).
			if e.Result != consensus.ResultSuccess && e.OldPrimary != "" && e.OldPrimary != primary && !slices.Contains(out, e.OldPrimary) {
				out = append(out, e.OldPrimary)
			}
			break
		}
		if e.Result == consensus.ResultSuccess {
			continue
		}
		for _, n := range leftStopped(e, instances, primary) {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

// view assembles the failover core's view of the cluster from this agent's
// probes, the other agents' reports and the replicated state.
func (c *clusterRT) view(now time.Time) failover.View {
	a := c.a
	v := failover.View{Cluster: c.name, Now: now, Leader: failover.AgentID(a.id),
		Agents: map[failover.AgentID]failover.AgentReport{}, Instances: map[string]failover.Instance{}}
	reports := a.reportsOf(c.name)
	// This agent's own report is always current.
	reports[a.id] = receivedReport{Report: Report{Agent: a.id, SentAt: now, Clusters: map[string]ClusterReport{c.name: c.report()}}, At: now}
	heard := map[string]time.Time{a.id: now}
	agents := a.agentIDs()
	if pcs, err := a.raft.PeerContacts(); err == nil {
		for _, pc := range pcs {
			heard[pc.ID] = pc.LastHeard
		}
	} else if last := a.raft.LastQuorumContact(); !last.IsZero() {
		// A follower (building a view for its status page, never to act)
		// has no contact times of its own for the other agents: it shows
		// them as heard when it last heard from the leader, whose view
		// decides. Without this every follower's status reported the
		// primary isolated ("not heard since 00:00").
		for id := range agents {
			if id != a.id {
				heard[id] = last
			}
		}
	}
	vitals := a.raft.PeerVitals()
	for id := range agents {
		// LastHeard is Raft contact alone: reports travel over the API and
		// keep arriving from an agent whose Raft port is cut, which has lost
		// its lease all the same (docs/safety.md, issue 9 defect 7).
		r := failover.AgentReport{LastHeard: heard[id], Local: failover.LocalUnknown}
		if pv, ok := vitals[id]; ok && id != a.id {
			r.LocalProbe = decodeVitals(pv.Vitals, pv.At)
		}
		if rr, ok := reports[id]; ok {
			if cr, ok := rr.Clusters[c.name]; ok {
				r.LeaseHeld, r.Local, r.LocalSince, r.LocalDetail = cr.LeaseHeld, cr.Local, cr.LocalSince, cr.LocalDetail
				if r.Local == "" {
					r.Local = failover.LocalUnknown
				}
			}
		}
		v.Agents[failover.AgentID(id)] = r
	}
	st := c.state()
	promotion := c.runtimeFor(st).Promotion // cluster edit-config's rules
	c.lmu.Lock()
	defer c.lmu.Unlock()
	for _, in := range c.set().configs {
		fi := failover.Instance{Name: in.Name, Addr: in.Address, Promotion: failover.PromotionRule(in.Promotion), Labels: in.Labels,
			OwnerAgent: failover.AgentID(in.Agent), Probes: map[failover.AgentID]failover.Probe{}}
		if r, ok := promotion[in.Name]; ok {
			fi.Promotion = r
		}
		if st != nil {
			if r, ok := st.PromotionRules[in.Name]; ok {
				fi.Promotion = failover.PromotionRule(r)
			}
		}
		for id, rr := range reports {
			if !agents[id] {
				continue
			}
			o, ok := rr.Clusters[c.name].Observations[in.Name]
			if !ok || o.ObservedAt.IsZero() {
				continue
			}
			fi.Probes[failover.AgentID(id)] = o.toProbe()
			if o.Reachable && o.ObservedAt.After(c.lastSeen[in.Name].ObservedAt) {
				c.lastSeen[in.Name] = o
			}
		}
		if ls, ok := c.lastSeen[in.Name]; ok {
			fi.LastSeen = ls.toProbe()
		}
		fi.ErrantJudged = c.errant[in.Name]
		v.Instances[in.Name] = fi
	}
	v.Route = c.routeCheck
	if st != nil {
		defer c.carryErrantLocked(&v)
		v.State = failover.ReplicatedState{Primary: st.Primary, Epoch: st.Epoch, Paused: st.Paused, PauseReason: st.PauseReason,
			AntiFlapUntil: st.AntiFlapUntil}
		if op := st.Operation; op != nil {
			v.State.Operation = failover.Operation{Kind: op.Kind, ID: op.ID, StartedAt: op.StartedAt, Target: op.Target}
		}
		if d := st.SemiSyncDegraded; d != nil {
			v.State.SemiSyncDegraded, v.State.SemiSyncDegradedSince = true, d.Since
		}
		if len(st.Uncommitted) > 0 {
			v.State.Uncommitted = map[string]string{}
			for n, u := range st.Uncommitted {
				v.State.Uncommitted[n] = u.OperationID
			}
		}
		if len(st.Maintenance) > 0 {
			v.State.Maintenance = map[string]failover.Maintenance{}
			for n, m := range st.Maintenance {
				v.State.Maintenance[n] = failover.Maintenance{By: m.By, Reason: m.Reason, Until: m.Until}
			}
		}
		if len(st.Sources) > 0 {
			v.State.Sources = map[string]string{}
			for n, r := range st.Sources {
				v.State.Sources[n] = r.Source
			}
		}
		if len(st.Quarantined) > 0 {
			v.State.Quarantined = map[string]string{}
			for n, q := range st.Quarantined {
				v.State.Quarantined[n] = q.Reason
			}
		}
		// The IO threads operations since the last change of primary left
		// stopped: their undo, or the abort of an abandoned run, may not
		// have reached them (ReplicaIOLeftStopped).
		v.State.StoppedIO = leftStoppedSince(st.History, c.set().names(), st.Primary)
		v.State.FormerPrimary = formerPrimary(st)
	}
	return v
}

// formerPrimary is the primary the most recent change of primary in the
// history replaced, unless it is the primary again.
func formerPrimary(st *consensus.Cluster) string {
	for i := len(st.History) - 1; i >= 0; i-- {
		if h := st.History[i]; h.EpochAfter > h.EpochBefore {
			if h.OldPrimary == st.Primary {
				return ""
			}
			return h.OldPrimary
		}
	}
	return ""
}

// carryErrantLocked keeps errant sets found while the primary was alive:
// every view built (for a decision or for the status page) refreshes the
// knowledge, so that it survives the primary's death. c.lmu is held.
func (c *clusterRT) carryErrantLocked(v *failover.View) {
	c.errant = failover.CarryErrant(*v)
	for name, in := range v.Instances {
		in.ErrantJudged = c.errant[name]
		v.Instances[name] = in
	}
}

// evaluate runs on the leader: make sure the cluster exists in the
// replicated state, analyse it, and act on the most urgent actionable
// problem.
func (c *clusterRT) evaluate(ctx context.Context) {
	if !c.tryLock() {
		return // an operation is running; it has fresher facts than we do
	}
	defer c.unlock()
	now := c.now()
	st, index := c.stateAt()
	if st == nil {
		c.initState(ctx, c.view(now))
		return
	}
	if st.Operation != nil {
		c.abortOrphan(ctx, st.Operation)
		return
	}
	v := c.view(now)
	pol := c.policyFor(st)
	c.reconcileRoute(ctx, st, index, v)
	if err := v.Validate(); err != nil {
		c.log.Error("cluster view is inconsistent; not acting", logErr, err)
		return
	}
	problems := failover.Analyze(v, pol)
	if at := failover.DeadAt(v, pol); !at.IsZero() {
		c.wakeAt(at)
	}
	if c.log.Enabled(ctx, slog.LevelDebug) {
		var codes []string
		for _, p := range problems {
			codes = append(codes, fmt.Sprintf("%s(actionable=%v)", p.Code, p.Actionable))
		}
		c.log.Debug("analysis", "problems", strings.Join(codes, " "))
	}
	for _, p := range problems {
		if p.Code == failover.InvalidInput {
			c.log.Error("cannot analyse the cluster", "reason", p.Reason)
			return
		}
		if !p.Actionable {
			if p.Action != failover.ActionNone {
				c.log.Debug("problem blocked", logProblem, p.Code, "reason", p.Reason, "blockers", fmt.Sprint(p.Blockers))
			}
			continue
		}
		key := failover.ProblemKey(p)
		c.lmu.Lock()
		notBefore := c.backoff[key]
		c.lmu.Unlock()
		if now.Before(notBefore) {
			continue
		}
		plan, err := failover.PlanAction(v, pol, p)
		if err != nil {
			c.log.Info("problem not acted on", logProblem, p.Code, "reason", err)
			c.setBackoff(key, now.Add(failover.RetryAfter(pol, failover.RetryPlanRefused)))
			continue
		}
		// A slot of max_parallel_operations, held for the run.
		select {
		case c.a.slots <- struct{}{}:
		default:
			c.log.Info("operation deferred: as many automatic operations run as max_parallel_operations allows; the next evaluation tries again",
				logProblem, p.Code, "plan", plan.Kind, "max_parallel_operations", cap(c.a.slots))
			return
		}
		c.log.Warn("acting on problem", logProblem, p.Code, "description", p.Description, "instances", p.Instances, "plan", plan.Kind)
		if plan.Kind == failover.OpFailover && c.a.deps.OnDetect != nil {
			if at := firstEvidence(v, v.State.Primary); !at.IsZero() {
				c.a.deps.OnDetect(c.name, now.Sub(at))
			}
		}
		res, err := c.run(ctx, v, plan, "", "regent (automatic)")
		<-c.a.slots
		if err != nil {
			c.log.Error("operation failed", logProblem, p.Code, logOp, res.OperationID, logErr, err)
			c.setBackoff(key, c.now().Add(failover.RetryAfter(pol, failover.RetryRunFailed)))
		}
		return // one operation per evaluation: the next one sees its effects
	}
}

// wakeAt makes the leader loop evaluate again just after t, instead of at
// its next tick: one timer per cluster, moved to the latest request.
func (c *clusterRT) wakeAt(t time.Time) {
	d := t.Sub(c.now()) + time.Millisecond
	c.lmu.Lock()
	defer c.lmu.Unlock()
	if c.deadAt == nil {
		c.deadAt = time.AfterFunc(d, c.a.wake)
		return
	}
	c.deadAt.Reset(d)
}

// reconcileRoute pushes the committed primary's write route to every
// balancer when this agent has just become leader and then every
// reconcileEvery, while no operation runs and the leader sees the primary
// writable. A deposed leader's late or retried push (a route of an aborted
// operation) is thereby overwritten within one period, and a new leader
// never relies on what its predecessor pushed. The push's token is index,
// the Raft index st was read at (with st, atomically): higher than the
// intent of any operation an earlier leader left (this leader aborted it
// first), lower than any later operation's (st shows none in progress), so
// balancers that keep tokens refuse what an earlier leader's run still
// sends.
// The router is seeded with the committed epoch first, for tokenless
// targets.
func (c *clusterRT) reconcileRoute(ctx context.Context, st *consensus.Cluster, index uint64, v failover.View) {
	if st.Primary == "" || st.Operation != nil {
		return
	}
	gen := c.a.leaderGen.Load()
	now := c.now()
	c.lmu.Lock()
	due := c.routedGen != gen || now.Sub(c.routedAt) >= c.reconcileEvery()
	c.lmu.Unlock()
	if !due {
		return
	}
	if pr, ok := v.Instances[st.Primary].Probes[v.Leader]; !ok || !pr.Writable() {
		return // nothing to route to yet; the analysis acts on the primary
	}
	c.router.SeedEpoch(c.name, st.Epoch)
	rctx, cancel := context.WithTimeout(ctx, c.policy.StepTimeout)
	_, err := routerAdapter{c: c, tok: newRouteToken(index)}.route(rctx, c.name, st.Primary, st.Epoch)
	cancel()
	c.lmu.Lock()
	c.routedGen, c.routedAt = gen, now
	if err != nil {
		since := c.routeCheck.FailingSince
		if since.IsZero() || c.routeCheck.Primary != st.Primary || c.routeCheck.Epoch != st.Epoch {
			since = now
		}
		c.routeCheck = failover.RouteCheck{Primary: st.Primary, Epoch: st.Epoch, Err: err.Error(), FailingSince: since}
	} else {
		c.routeCheck = failover.RouteCheck{}
	}
	c.lmu.Unlock()
	if err != nil {
		c.log.Warn("reconciling the write route to the committed primary failed; health checks converge meanwhile", logInstance, st.Primary, "epoch", st.Epoch, logErr, err)
		return
	}
	c.log.Debug("write route reconciled to the committed primary", logInstance, st.Primary, "epoch", st.Epoch)
}

// reconcileEvery is how often the leader re-pushes the committed route:
// twenty probe intervals, at least 5 s.
func (c *clusterRT) reconcileEvery() time.Duration {
	return max(5*time.Second, 20*c.policy.ProbeInterval)
}

func (c *clusterRT) setBackoff(key string, until time.Time) {
	c.lmu.Lock()
	c.backoff[key] = until
	c.lmu.Unlock()
}

// initState records the cluster in the replicated state the first time a
// leader sees it, as failover.DecideFirstPrimary says.
func (c *clusterRT) initState(ctx context.Context, v failover.View) {
	d := failover.DecideFirstPrimary(v)
	switch {
	case d.Conflict:
		c.log.Error("cannot record the cluster", "why", d.Why)
		return
	case !d.Record:
		c.log.Debug("cluster not recorded yet", "why", d.Why)
		return
	}
	primary := d.Primary
	pctx, cancel := context.WithTimeout(ctx, c.policy.RaftTimeout)
	defer cancel()
	_, err := c.a.raft.Propose(pctx, consensus.InitCluster{Cluster: c.name, Primary: primary, At: v.Now})
	if err != nil && !errors.Is(err, consensus.ErrConflict) {
		c.log.Warn("cannot record the cluster in the replicated state", logErr, err)
		return
	}
	c.log.Info("cluster recorded", "primary", primary, "why", d.Why)
}

// recordedKind is the kind the history records an operation under: its
// own, except a quarantine, which is the outcome of a rejoin that found
// errant transactions and is recorded as a rejoin.
func recordedKind(k failover.OperationKind) consensus.OpKind {
	if k == failover.OpQuarantine {
		return consensus.KindRejoin
	}
	return k
}

// problems returns the current analysis (for status), on any agent.
func (c *clusterRT) problems(now time.Time) []failover.Problem {
	v := c.view(now)
	if v.Validate() != nil {
		return nil
	}
	ps := failover.Analyze(v, c.pol())
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Priority < ps[j].Priority })
	return ps
}

// errNotConfigured names an unknown cluster.
func (a *Agent) cluster(name string) (*clusterRT, error) {
	c, ok := a.rts()[name]
	if !ok {
		return nil, fmt.Errorf("no replication cluster named %q (configured: %s)", name, strings.Join(sortedNames(a.rts()), ", "))
	}
	return c, nil
}

// firstEvidence is when the first sign of the primary's failure was seen: the
// leader's last sign of life from it before its probes started to fail
// (when it went silent), or its own agent seeing mysqld gone.
func firstEvidence(v failover.View, primary string) time.Time {
	in, ok := v.Instances[primary]
	if !ok {
		return time.Time{}
	}
	var at time.Time
	if pr, ok := in.Probes[v.Leader]; ok && !pr.Reachable {
		at = pr.LastLife()
		if at.IsZero() {
			at = pr.FailingSince
		}
	}
	if r, ok := v.Agents[in.OwnerAgent]; ok && r.Local == failover.LocalGone && !r.LocalSince.IsZero() && (at.IsZero() || r.LocalSince.Before(at)) {
		at = r.LocalSince
	}
	return at
}
