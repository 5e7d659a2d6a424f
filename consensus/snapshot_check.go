package consensus

import (
	"errors"
	"fmt"
	"sort"
)

// ErrInvalidSnapshot: a snapshot's state breaks a rule the FSM enforces on
// commands. Restore refuses it and the state stays as it was.
var ErrInvalidSnapshot = errors.New("invalid snapshot")

// validateState checks a state read from a snapshot under the rules the FSM
// applies to commands, so that a snapshot can hold nothing a sequence of
// valid commands could not have built field by field: no null cluster, keys
// that match the names they hold, every name, text and time within the
// command limits, known kinds, results and rules, at most MaxSteps steps and
// HistoryLimit history entries, and no two members with one Raft address or
// one local instance. A leader sends snapshots to followers
// (InstallSnapshot), and a follower must never take from one a state that
// would crash it or that no command could have made.
func validateState(s State) error {
	for _, name := range sortedKeys(s.Clusters) {
		if err := validateCluster(name, s.Clusters[name]); err != nil {
			return fmt.Errorf("%w: cluster %q: %w", ErrInvalidSnapshot, name, err)
		}
	}
	for _, name := range sortedKeys(s.Defined) {
		d := s.Defined[name]
		if err := (DefineCluster{Cluster: name, Definition: d.Definition, By: d.By, At: d.At}).validate(); err != nil {
			return fmt.Errorf("%w: defined cluster %q: %w", ErrInvalidSnapshot, name, err)
		}
	}
	var members State
	for _, id := range sortedKeys(s.Members) {
		m := s.Members[id]
		if m.ID != id {
			return fmt.Errorf("%w: member %q holds the record of %q", ErrInvalidSnapshot, id, m.ID)
		}
		if err := (SetMember{Member: m}).validate(); err != nil {
			return fmt.Errorf("%w: member %q: %w", ErrInvalidSnapshot, id, err)
		}
		if err := setMember(&members, m); err != nil {
			return fmt.Errorf("%w: member %q: %w", ErrInvalidSnapshot, id, err)
		}
	}
	return nil
}

func validateCluster(name string, cl *Cluster) error {
	if cl == nil {
		return errors.New("null")
	}
	if cl.Name != name {
		return fmt.Errorf("holds the state of cluster %q", cl.Name)
	}
	if cl.Epoch == 0 {
		return errors.New("epoch 0 (epochs start at 1)")
	}
	checks := []Command{
		InitCluster{Cluster: name, Primary: cl.Primary, At: cl.CreatedAt},
		SetAntiFlap{Cluster: name, Until: cl.AntiFlapUntil},
	}
	if cl.Paused {
		checks = append(checks, SetPaused{Cluster: name, Paused: true, By: cl.PausedBy, Reason: cl.PauseReason, At: cl.PausedAt})
	}
	if op := cl.Operation; op != nil {
		if len(op.Steps) > MaxSteps {
			return fmt.Errorf("operation %s has %d steps, more than %d", op.ID, len(op.Steps), MaxSteps)
		}
		checks = append(checks, BeginOperation{Cluster: name, OperationID: op.ID, Kind: op.Kind, ExpectEpoch: op.EpochBefore,
			Target: op.Target, Trigger: op.Trigger, Automatic: op.Automatic, At: op.StartedAt})
		for _, st := range op.Steps {
			checks = append(checks, RecordStep{Cluster: name, OperationID: op.ID, Step: st})
		}
		if op.Candidate != "" {
			checks = append(checks, SetCandidate{Cluster: name, OperationID: op.ID, Instance: op.Candidate})
		}
		if op.Committed {
			checks = append(checks, CommitPrimary{Cluster: name, OperationID: op.ID, NewPrimary: op.NewPrimary,
				ExpectEpoch: op.EpochBefore, GTID: op.GTIDAtPromotion, At: op.CommittedAt})
		}
	}
	for _, inst := range sortedKeys(cl.PromotionRules) {
		checks = append(checks, SetPromotionRule{Cluster: name, Instance: inst, Rule: cl.PromotionRules[inst]})
	}
	for _, inst := range sortedKeys(cl.Quarantined) {
		q := cl.Quarantined[inst]
		checks = append(checks, SetQuarantine{Cluster: name, Instance: inst, Reason: q.Reason, By: q.By, At: q.At})
	}
	for _, inst := range sortedKeys(cl.Maintenance) {
		m := cl.Maintenance[inst]
		checks = append(checks, SetMaintenance{Cluster: name, Instance: inst, On: true, By: m.By, Reason: m.Reason, At: m.Since, Until: m.Until})
	}
	for _, n := range sortedKeys(cl.Instances) {
		ic := cl.Instances[n]
		checks = append(checks, SetInstance{Cluster: name, Instance: n, Remove: ic.Removed, Address: ic.Address, Promotion: ic.Promotion, Labels: ic.Labels, By: ic.By, At: ic.At})
	}
	if rc := cl.Config; rc != nil {
		checks = append(checks, SetConfig{Cluster: name, ExpectVersion: rc.Version - 1, Settings: rc.Settings, Change: "-", By: rc.By, At: rc.At})
	}
	for _, inst := range sortedKeys(cl.Sources) {
		r := cl.Sources[inst]
		checks = append(checks, SetSource{Cluster: name, Instance: inst, Source: r.Source, By: r.By, At: r.At})
	}
	for _, inst := range sortedKeys(cl.Uncommitted) {
		u := cl.Uncommitted[inst]
		checks = append(checks, SetCandidate{Cluster: name, OperationID: u.OperationID, Instance: inst},
			AbortOperation{Cluster: name, OperationID: u.OperationID, At: u.At})
	}
	if d := cl.SemiSyncDegraded; d != nil {
		checks = append(checks, SetSemiSyncDegraded{Cluster: name, OperationID: d.OperationID, Degraded: true, Reason: d.Reason, At: d.Since})
	}
	if len(cl.History) > HistoryLimit {
		return fmt.Errorf("%d history entries, more than %d", len(cl.History), HistoryLimit)
	}
	for _, h := range cl.History {
		if len(h.Steps) > MaxSteps {
			return fmt.Errorf("history entry %s has %d steps, more than %d", h.ID, len(h.Steps), MaxSteps)
		}
		checks = append(checks,
			BeginOperation{Cluster: name, OperationID: h.ID, Kind: h.Kind, ExpectEpoch: max(h.EpochBefore, 1),
				Target: h.Target, Trigger: h.Trigger, Automatic: h.Automatic, At: h.StartedAt},
			FinishOperation{Cluster: name, OperationID: h.ID, Result: h.Result, Reason: h.Reason, At: h.EndedAt})
		for _, st := range h.Steps {
			checks = append(checks, RecordStep{Cluster: name, OperationID: h.ID, Step: st})
		}
		if a := h.Ack; a != nil {
			checks = append(checks, AckOperation{Cluster: name, OperationID: h.ID, By: a.By, Comment: a.Comment, At: a.At})
		}
		if h.NewPrimary != "" || h.GTIDAtPromotion != "" {
			checks = append(checks, CommitPrimary{Cluster: name, OperationID: h.ID, NewPrimary: h.NewPrimary,
				ExpectEpoch: max(h.EpochBefore, 1), GTID: h.GTIDAtPromotion, At: h.EndedAt})
		}
	}
	for _, c := range checks {
		if err := c.validate(); err != nil {
			return fmt.Errorf("%s: %w", c.Name(), err)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
