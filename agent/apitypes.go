package agent

// Conversions from the agent's and the replicated state's values to the
// API's types, for backend.go.

import (
	"fmt"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/proxyhook"
)

// This file serves the read side of the HTTP API from the agent's state.

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

// resultOp is an operation that ended in this agent's run, for the calls
// that run a small repair to its end (it has no history entry).
func resultOp(res failover.RunResult) api.Operation {
	ended := res.Started.Add(res.Duration)
	op := api.Operation{ID: res.OperationID, Cluster: res.Cluster, Kind: string(res.Kind), Trigger: string(res.Trigger),
		Started: res.Started, Ended: &ended, OldPrimary: res.OldPrimary, EpochBefore: res.EpochBefore, EpochAfter: res.EpochAfter,
		Result: string(res.Outcome), Reason: res.Reason}
	if res.Outcome == failover.OutcomeInterrupted {
		op.Result = api.ResultAborted
	}
	for _, s := range res.Steps {
		r := string(s.Result)
		if s.Result == failover.StepResultOK {
			r = api.ResultSuccess
		}
		detail := s.HistoryDetail()
		op.Steps = append(op.Steps, api.Step{Name: s.HistoryName(), Started: s.Started, Duration: api.Duration(s.Duration), Result: r, Detail: detail})
	}
	return op
}

func runningOp(cluster string, op *consensus.Operation) api.Operation {
	return api.Operation{ID: op.ID, Cluster: cluster, Kind: string(op.Kind), Trigger: op.Trigger, Target: op.Target,
		Started: op.StartedAt, OldPrimary: op.OldPrimary, NewPrimary: op.NewPrimary, EpochBefore: op.EpochBefore,
		GTIDAtPromotion: op.GTIDAtPromotion, Result: api.ResultRunning, Steps: apiSteps(op.Steps)}
}

func historyOp(cluster string, h consensus.HistoryEntry) api.Operation {
	ended := h.EndedAt
	op := api.Operation{ID: h.ID, Cluster: cluster, Kind: string(h.Kind), Trigger: h.Trigger, Target: h.Target,
		Started: h.StartedAt, Ended: &ended, OldPrimary: h.OldPrimary, NewPrimary: h.NewPrimary, EpochBefore: h.EpochBefore,
		EpochAfter: h.EpochAfter, GTIDAtPromotion: h.GTIDAtPromotion, Result: string(h.Result), Reason: h.Reason, Steps: apiSteps(h.Steps)}
	if a := h.Ack; a != nil {
		op.Ack = &api.Ack{By: a.By, Comment: a.Comment, At: a.At}
	}
	return op
}

func fillHealth(s *proxyhook.LocalState, c *clusterRT, o Observation, st *consensus.Cluster) {
	s.Cluster, s.Instance = c.name, c.local
	s.Reachable = o.Reachable && c.now().Sub(o.ObservedAt) < 3*c.policy.ProbeInterval+c.cfg.ProbeTimeoutOrDefault()
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
		if m, ok := st.InMaintenance(c.local, c.now()); ok {
			s.Maintenance = fmt.Sprintf("until %s by %s: %s", m.Until.UTC().Format(time.RFC3339), m.By, m.Reason)
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
