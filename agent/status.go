package agent

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/apiserver"
	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/proxyhook"
)

// This file serves the read side of the HTTP API from the agent's state.

// Status describes the regent cluster as this agent sees it.
func (a *Agent) Status(ctx context.Context) (api.Status, error) {
	li := a.raft.Leader()
	st := api.Status{AgentID: a.id, IsLeader: a.raft.IsLeader(), LeaderID: li.ID, LeaderAPIAddr: li.APIAddr,
		Clusters: sortedNames(a.clusters), Time: a.now(), RaftState: "follower"}
	if st.IsLeader {
		st.RaftState = "leader"
	}
	if s, ok := a.raft.(interface{ Stats() consensus.Stats }); ok {
		stats := s.Stats()
		st.RaftState, st.Term, st.CommitIndex, st.AppliedIndex = strings.ToLower(stats.State), stats.Term, stats.CommitIndex, stats.AppliedIndex
	}
	m, err := a.Members(ctx)
	if err != nil {
		return st, err
	}
	st.Members = m.Members
	if a.cfg.LocalInstance != "" {
		lqc := a.raft.LastQuorumContact()
		l := &api.Lease{}
		for _, c := range a.clusters {
			if c.local == "" {
				continue
			}
			l.Held = c.LeaseHeld()
			if s := c.state(); s != nil && s.Primary == c.local {
				l.Needed = true
			}
			if !lqc.IsZero() {
				exp := lqc.Add(c.policy.FenceAfter)
				l.LastQuorumContact, l.Expires = &lqc, &exp
			}
		}
		st.Lease = l
	}
	return st, nil
}

// Members lists the agents of the Raft configuration.
func (a *Agent) Members(ctx context.Context) (api.Members, error) {
	out := api.Members{LeaderID: a.raft.Leader().ID}
	state := a.raft.State()
	contacts := map[string]time.Time{}
	if pcs, err := a.raft.PeerContacts(); err == nil {
		for _, pc := range pcs {
			if pc.Heard {
				contacts[pc.ID] = pc.LastHeard
			}
		}
	}
	var servers []consensus.Server
	if s, ok := a.raft.(interface{ Servers() []consensus.Server }); ok {
		servers = s.Servers()
	}
	seen := map[string]bool{}
	add := func(id, raftAddr string, voter bool) {
		if seen[id] {
			return
		}
		seen[id] = true
		m := api.Member{ID: id, RaftAddr: raftAddr, Voter: voter, State: "follower", Self: id == a.id}
		if rec, ok := state.Members[id]; ok {
			m.APIAddr, m.LocalInstance = rec.APIAddr, rec.Instance
			if m.RaftAddr == "" {
				m.RaftAddr = rec.RaftAddr
			}
		}
		if id == out.LeaderID {
			m.State = "leader"
		}
		if t, ok := contacts[id]; ok {
			m.LastContact = &t
		}
		out.Members = append(out.Members, m)
	}
	for _, s := range servers {
		add(s.ID, s.Addr, s.Voter)
	}
	if len(servers) == 0 {
		for _, p := range a.cfg.Raft.Peers {
			add(p.ID, p.Address, true)
		}
	}
	sort.Slice(out.Members, func(i, j int) bool { return out.Members[i].ID < out.Members[j].ID })
	return out, nil
}

// Cluster describes one replication cluster.
func (a *Agent) Cluster(ctx context.Context, name string) (api.Cluster, error) {
	c, err := a.cluster(name)
	if err != nil {
		return api.Cluster{}, fmt.Errorf("%w: %v", apiserver.ErrNotFound, err)
	}
	if !a.raft.Restored() {
		// Found by the chaos campaign: a restarted agent answered with
		// the state of its last snapshot (epoch 0 before any), older than
		// what it had shown before it stopped.
		return api.Cluster{}, fmt.Errorf("%w: this agent restarted and has not yet applied its Raft log (applied index %d); its view would be older than before the restart: ask another agent, or retry once it reaches the leader",
			apiserver.ErrUnavailable, a.raft.AppliedIndex())
	}
	now := a.now()
	out := api.Cluster{Name: name, Durability: string(c.policy.Durability), ObservedBy: a.id, ObservedAt: now}
	st := c.state()
	quarantined := map[string]string{}
	if st != nil {
		out.Primary, out.Epoch = st.Primary, st.Epoch
		if op := st.Operation; op != nil {
			out.Operation = &api.OperationRef{ID: op.ID, Kind: string(op.Kind), Started: op.StartedAt, Target: op.Target}
		}
		if st.Paused {
			out.Paused = &api.Pause{By: st.PausedBy, Reason: st.PauseReason, Since: st.PausedAt}
		}
		if d := st.SemiSyncDegraded; d != nil {
			out.SemiSyncDegraded = &api.SemiSyncDegraded{Since: d.Since, Reason: d.Reason, OperationID: d.OperationID}
		}
		if st.AntiFlapUntil.After(now) {
			t := st.AntiFlapUntil
			out.AntiFlapUntil = &t
		}
		for n, q := range st.Quarantined {
			quarantined[n] = q.Reason
		}
	}
	problems := c.problems(now)
	out.AutomaticFailover = api.AutomaticFailover{Enabled: true, Possible: true}
	for _, p := range problems {
		ap := api.Problem{Code: string(p.Code), Description: p.Description, Priority: p.Priority, Instances: p.Instances,
			Target: p.Target, Reason: p.Reason, Action: string(p.Action), Actionable: p.Actionable}
		if p.Errant != nil {
			ap.Errant = p.Errant.String()
		}
		for _, b := range p.Blockers {
			ap.Blockers = append(ap.Blockers, apiBlocker(b))
		}
		out.Problems = append(out.Problems, ap)
		if p.Code == failover.AutomationBlocked {
			out.AutomaticFailover.Possible = false
			bs := ap.Blockers
			if len(bs) == 0 {
				bs = []api.Blocker{{Kind: api.BlockUnsafe, Reason: p.Reason}}
			}
			out.AutomaticFailover.Blockers = append(out.AutomaticFailover.Blockers, bs...)
		}
	}
	if st != nil && st.Paused {
		out.AutomaticFailover.Possible = false
		if len(out.AutomaticFailover.Blockers) == 0 {
			out.AutomaticFailover.Blockers = append(out.AutomaticFailover.Blockers, api.Blocker{Kind: api.BlockPaused, Reason: "paused: " + st.PauseReason})
		}
	}
	// Instances as seen by every agent: this agent's probes for the facts,
	// every agent's for reachability.
	reports := a.reports()
	reports[a.id] = receivedReport{Report: Report{Agent: a.id, Clusters: map[string]ClusterReport{name: c.report()}}, At: now}
	for _, in := range c.cfg.Instances {
		ai := api.Instance{Name: in.Name, Address: in.Address, Role: api.RoleUnknown, Promotion: in.Promotion, Reachable: map[string]api.Reachability{}}
		for id, rr := range reports {
			o, ok := rr.Clusters[name].Observations[in.Name]
			if !ok || o.ObservedAt.IsZero() {
				continue
			}
			at := o.ObservedAt
			ai.Reachable[id] = api.Reachability{OK: o.Reachable, Error: string(o.Error), At: &at}
		}
		o := reports[a.id].Clusters[name].Observations[in.Name]
		if !o.Reachable {
			// Fall back to the freshest successful observation of any agent.
			for _, rr := range reports {
				if oo := rr.Clusters[name].Observations[in.Name]; oo.Reachable && oo.ObservedAt.After(o.ObservedAt) {
					o = oo
				}
			}
		}
		if o.Reachable {
			ro, sro := o.ReadOnly, o.SuperReadOnly
			at := o.ObservedAt
			conns := int64(o.ThreadsConnected)
			ai.ReadOnly, ai.SuperReadOnly, ai.ServerID, ai.LastProbe, ai.Connections, ai.Questions = &ro, &sro, o.ServerID, &at, &conns, o.Questions
			if o.Executed != nil {
				ai.GTIDSummary = o.Executed.Summary()
			}
			ai.SemiSync = &api.SemiSync{SourceEnabled: o.SemiSync.SourceEnabled, SourceActive: o.SemiSync.SourceActive,
				Clients: o.SemiSync.SourceClients, ReplicaEnabled: o.SemiSync.ReplicaEnabled, WaitPoint: o.SemiSync.WaitPoint}
			if r := o.Replica; r != nil {
				rep := &api.Replication{Source: r.Source, IOThread: threadState(string(r.IOState)), SQLThread: threadState(boolYes(r.SQLRunning)),
					LastIOError: r.LastIOError, LastSQLError: r.LastSQLError, AutoPosition: true}
				if _, ok := c.addrs[r.Source]; ok {
					rep.SourceName = r.Source
				}
				if r.LagSeconds != nil {
					l := float64(*r.LagSeconds)
					rep.LagSeconds = &l
				}
				ai.Replication = rep
			}
		}
		switch {
		case quarantined[in.Name] != "":
			ai.Role, ai.QuarantineReason = api.RoleQuarantined, quarantined[in.Name]
		case st != nil && st.Primary == in.Name:
			ai.Role = api.RolePrimary
		case ai.Replication != nil:
			ai.Role = api.RoleReplica
		}
		out.Instances = append(out.Instances, ai)
	}
	return out, nil
}

func boolYes(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

func threadState(s string) string {
	switch s {
	case "Yes":
		return api.ThreadRunning
	case "Connecting":
		return api.ThreadConnecting
	}
	return api.ThreadStopped
}

func apiBlocker(b failover.Blocker) api.Blocker {
	ab := api.Blocker{Kind: string(b.Kind), Reason: b.Reason}
	if !b.Until.IsZero() {
		u := b.Until
		ab.Until = &u
	}
	return ab
}

// History returns up to limit finished operations, newest first, with the
// running one (if any) in front.
func (a *Agent) History(ctx context.Context, cluster string, limit int) ([]api.Operation, error) {
	c, err := a.cluster(cluster)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", apiserver.ErrNotFound, err)
	}
	st := c.state()
	if st == nil {
		return nil, nil
	}
	var out []api.Operation
	if st.Operation != nil {
		out = append(out, runningOp(cluster, st.Operation))
	}
	for i := len(st.History) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
		out = append(out, historyOp(cluster, st.History[i]))
	}
	return out, nil
}

// Operation returns one operation, running or finished.
func (a *Agent) Operation(ctx context.Context, cluster, id string) (api.Operation, error) {
	c, err := a.cluster(cluster)
	if err != nil {
		return api.Operation{}, fmt.Errorf("%w: %v", apiserver.ErrNotFound, err)
	}
	if st := c.state(); st != nil {
		if st.Operation != nil && st.Operation.ID == id {
			return runningOp(cluster, st.Operation), nil
		}
		for i := len(st.History) - 1; i >= 0; i-- {
			if st.History[i].ID == id {
				op := historyOp(cluster, st.History[i])
				if wb, ok := c.writeBlocked(ctx, id); ok {
					d := api.Duration(wb.d)
					op.WriteBlocked, op.WriteBlockedUntil = &d, wb.until
				}
				return op, nil
			}
		}
	}
	// Started but not yet recorded (the intent is being proposed).
	if op, ok := c.pendingOp(id); ok {
		return op, nil
	}
	return api.Operation{}, fmt.Errorf("%w: no operation %q in cluster %s", apiserver.ErrNotFound, id, cluster)
}

// apiSteps converts recorded steps to the API's, whose results are the
// documented ones: a step that completed is "success" (recorded "ok").
func apiSteps(steps []consensus.Step) []api.Step {
	out := make([]api.Step, 0, len(steps))
	for _, s := range steps {
		res := string(s.Result)
		if s.Result == consensus.StepOK {
			res = api.ResultSuccess
		}
		out = append(out, api.Step{Name: s.Name, Started: s.Start, Duration: api.Duration(s.Duration), Result: res, Detail: s.Detail})
	}
	return out
}

func runningOp(cluster string, op *consensus.Operation) api.Operation {
	return api.Operation{ID: op.ID, Cluster: cluster, Kind: string(op.Kind), Trigger: op.Trigger, Target: op.Target,
		Started: op.StartedAt, OldPrimary: op.OldPrimary, NewPrimary: op.NewPrimary, EpochBefore: op.EpochBefore,
		GTIDAtPromotion: op.GTIDAtPromotion, Result: api.ResultRunning, Steps: apiSteps(op.Steps)}
}

func historyOp(cluster string, h consensus.HistoryEntry) api.Operation {
	ended := h.EndedAt
	return api.Operation{ID: h.ID, Cluster: cluster, Kind: string(h.Kind), Trigger: h.Trigger, Target: h.Target,
		Started: h.StartedAt, Ended: &ended, OldPrimary: h.OldPrimary, NewPrimary: h.NewPrimary, EpochBefore: h.EpochBefore,
		EpochAfter: h.EpochAfter, GTIDAtPromotion: h.GTIDAtPromotion, Result: string(h.Result), Reason: h.Reason, Steps: apiSteps(h.Steps)}
}

// HealthState is the local state behind /primary, /replica and /read-only.
func (a *Agent) HealthState(ctx context.Context) (proxyhook.LocalState, error) {
	var s proxyhook.LocalState
	for _, c := range a.clusters {
		if c.local == "" {
			continue
		}
		o := c.prober.snapshot()[c.local]
		st := c.state()
		s = proxyhook.LocalState{}
		fillHealth(&s, c, o, st)
		return s, nil
	}
	return s, nil
}

func fillHealth(s *proxyhook.LocalState, c *clusterRT, o Observation, st *consensus.Cluster) {
	s.Cluster, s.Instance = c.name, c.local
	s.Reachable = o.Reachable && c.clock.Now().Sub(o.ObservedAt) < 3*c.policy.ProbeInterval+c.cfg.probeTimeout()
	s.Writable = o.Reachable && !o.ReadOnly && !o.SuperReadOnly
	s.LeaseHeld = c.LeaseHeld()
	if st != nil {
		s.Epoch = st.Epoch
		s.IsPrimary = st.Primary == c.local
		// The balancers' checks must see a change of primary the moment it
		// happens, not at the next probe (issue 10 item 4). The primary an
		// operation replaces leaves write routing when the operation's
		// intent is recorded, before its fence; the promoted instance was
		// made writable by the promotion, before the commit that names it,
		// so a probe older than the commit's epoch says nothing about it.
		if op := st.Operation; op != nil && op.OldPrimary == c.local && !op.Committed &&
			(op.Kind == consensus.KindSwitchover || op.Kind == consensus.KindFailover || op.Kind == consensus.KindForcedFailover) {
			s.Replacing = fmt.Sprintf("%s %s", op.Kind, op.ID)
		}
		if s.IsPrimary && o.Reachable && !s.Writable && o.epoch < st.Epoch {
			s.Writable = true
		}
	}
	if r := o.Replica; r != nil {
		s.Replicating = true
		s.IOThreadRunning = r.IOState == "Yes"
		s.SQLThreadRunning = r.SQLRunning
		if r.LagSeconds != nil {
			s.Lag, s.LagKnown = time.Duration(*r.LagSeconds)*time.Second, true
		}
	}
}
