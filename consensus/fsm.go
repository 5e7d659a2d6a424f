package consensus

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// snapshotVersion is the version of the snapshot format (JSON, see doc.go).
const snapshotVersion = 1

// applyResponse is the FSM's answer to one log entry, handed back by Raft to
// the proposer through ApplyFuture.Response.
type applyResponse struct {
	cluster *Cluster // copy after the change; nil for member commands
	err     error
}

// fsm is the Raft state machine. Apply runs on Raft's FSM goroutine; reads
// come from any goroutine, hence the lock. It never reads a clock and never
// panics on input: a command it cannot decode or that fails its conditions is
// answered with an error and changes nothing.
type fsm struct {
	log *slog.Logger

	mu    sync.RWMutex
	state State
	index uint64 // log index of the last applied command
}

var _ raft.FSM = (*fsm)(nil)

func newFSM(log *slog.Logger) *fsm {
	return &fsm{log: log}
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	cmd, err := DecodeCommand(l.Data)
	if err != nil {
		f.log.Error("rejected undecodable raft command", logKeyIndex, l.Index, logKeyErr, err)
		f.mu.Lock()
		f.index = l.Index
		f.mu.Unlock()
		return &applyResponse{err: err}
	}
	f.mu.Lock()
	cl, err := applyCommand(&f.state, cmd)
	f.index = l.Index
	f.mu.Unlock()
	if err != nil {
		f.log.Debug("raft command rejected", logKeyIndex, l.Index, logKeyCommand, cmd.Name(),
			logKeyCluster, clusterOf(cmd), logKeyErr, err)
		return &applyResponse{err: err}
	}
	return &applyResponse{cluster: cl}
}

// current returns a deep copy of the state and the index it reflects.
func (f *fsm) current() (State, uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.Clone(), f.index
}

// cluster returns a copy of one cluster (Cluster.Clone: its history shared,
// never changed in place) and the index it reflects, without copying the
// others: what the agents read on every probe round and decision, whose
// cost must not grow with the number of clusters (issue 15).
func (f *fsm) cluster(name string) (Cluster, uint64, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	c, ok := f.state.Clusters[name]
	if !ok {
		return Cluster{}, f.index, false
	}
	return *c.Clone(), f.index, true
}

// defined returns a copy of the clusters defined at run time.
func (f *fsm) defined() map[string]Definition {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return maps.Clone(f.state.Defined)
}

// memberIDs returns the ids of the member table.
func (f *fsm) memberIDs() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return slices.Sorted(maps.Keys(f.state.Members))
}

// member returns one member's record (zero if absent) without copying the
// whole state.
func (f *fsm) member(id string) Member {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.Members[id]
}

// snapshotFile is the JSON document a snapshot holds.
type snapshotFile struct {
	Version int    `json:"version"`
	Index   uint64 `json:"index"`
	State   State  `json:"state"`
}

// Snapshot implements raft.FSM: a deep copy now, encoding later in Persist.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	st, idx := f.current()
	return &fsmSnapshot{file: snapshotFile{Version: snapshotVersion, Index: idx, State: st}}, nil
}

// Restore implements raft.FSM. It refuses a snapshot it cannot decode, of
// another version, or whose state breaks the commands' rules
// (validateState), and then leaves the state as it was.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var file snapshotFile
	if err := json.NewDecoder(rc).Decode(&file); err != nil {
		return fmt.Errorf("decode snapshot: %w", err)
	}
	if file.Version != snapshotVersion {
		return fmt.Errorf("snapshot version %d not supported (this agent reads %d)", file.Version, snapshotVersion)
	}
	// A snapshot comes from disk or from the leader (InstallSnapshot); it
	// replaces the whole state, so it must pass the commands' rules first.
	if err := validateState(file.State); err != nil {
		f.log.Error("refused a snapshot that breaks the state's rules; the state is unchanged", logKeyIndex, file.Index, logKeyErr, err)
		return err
	}
	f.mu.Lock()
	f.state = file.State
	f.index = file.Index
	f.mu.Unlock()
	return nil
}

type fsmSnapshot struct{ file snapshotFile }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(&s.file); err != nil {
		return errors.Join(fmt.Errorf("encode snapshot: %w", err), sink.Cancel())
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}

// applyCommand applies one command to s. It is a pure function of (s, cmd):
// on error s is left exactly as it was.
func applyCommand(s *State, cmd Command) (*Cluster, error) {
	if err := cmd.validate(); err != nil {
		return nil, err
	}
	switch c := cmd.(type) {
	case InitCluster:
		if _, ok := s.Clusters[c.Cluster]; ok {
			return nil, fmt.Errorf("%w: cluster %q already exists", ErrConflict, c.Cluster)
		}
		cl := &Cluster{Name: c.Cluster, CreatedAt: c.At, Primary: c.Primary, Epoch: 1}
		if d, ok := s.Defined[c.Cluster]; ok {
			// A cluster created at run time starts its history with who
			// created it (regentctl history).
			appendHistory(cl, HistoryEntry{ID: "created", Kind: KindEditConfig, Trigger: "regentctl cluster create by " + orAPI(d.By),
				StartedAt: d.At, EndedAt: c.At, EpochBefore: 1, EpochAfter: 1, Result: ResultSuccess,
				Reason: TruncateDetail("cluster created at run time; first primary " + orNone(c.Primary)), Steps: []Step{}})
		}
		if s.Clusters == nil {
			s.Clusters = make(map[string]*Cluster)
		}
		s.Clusters[c.Cluster] = cl
		return cl.Clone(), nil
	case SetMember:
		return nil, setMember(s, c.Member)
	case DefineCluster:
		return nil, defineCluster(s, c)
	case RemoveMember:
		if _, ok := s.Members[c.ID]; !ok {
			return nil, fmt.Errorf("%w: member %q", ErrNotFound, c.ID)
		}
		delete(s.Members, c.ID)
		if len(s.Members) == 0 {
			s.Members = nil
		}
		return nil, nil
	}

	name := clusterOf(cmd)
	cur, ok := s.Clusters[name]
	if !ok {
		return nil, fmt.Errorf("%w: cluster %q", ErrNotFound, name)
	}
	// Work on a copy and swap it in only on success: a rejected command can
	// never leave half a change behind.
	cl := cur.Clone()
	if err := applyToCluster(cl, cmd); err != nil {
		return nil, err
	}
	s.Clusters[name] = cl
	return cl.Clone(), nil
}

func setMember(s *State, m Member) error {
	for id, o := range s.Members {
		if id == m.ID {
			continue
		}
		if o.RaftAddr == m.RaftAddr {
			return fmt.Errorf("%w: raft address %s is already member %q's", ErrConflict, m.RaftAddr, id)
		}
		if m.Instance != "" && o.Instance == m.Instance {
			return fmt.Errorf("%w: instance %q is already member %q's local instance", ErrConflict, m.Instance, id)
		}
	}
	if s.Members == nil {
		s.Members = make(map[string]Member)
	}
	s.Members[m.ID] = m
	return nil
}

func applyToCluster(cl *Cluster, cmd Command) error {
	switch c := cmd.(type) {
	case BeginOperation:
		if cl.Epoch != c.ExpectEpoch {
			return &StaleEpochError{Cluster: cl.Name, Expected: c.ExpectEpoch, Current: cl.Epoch}
		}
		if op := cl.Operation; op != nil {
			return fmt.Errorf("%w: cluster %q: %s %s is in progress", ErrConflict, cl.Name, op.Kind, op.ID)
		}
		for _, h := range cl.History {
			if h.ID == c.OperationID {
				return fmt.Errorf("%w: cluster %q: operation id %s was already used", ErrConflict, cl.Name, c.OperationID)
			}
		}
		if c.Automatic && cl.Paused {
			return fmt.Errorf("%w: cluster %q paused by %q: %s", ErrPaused, cl.Name, cl.PausedBy, cl.PauseReason)
		}
		if c.Automatic && c.At.Before(cl.AntiFlapUntil) {
			return fmt.Errorf("%w: cluster %q: automatic operations blocked until %s", ErrAntiFlap, cl.Name, cl.AntiFlapUntil)
		}
		op := &Operation{
			ID: c.OperationID, Kind: c.Kind, Trigger: c.Trigger, Automatic: c.Automatic,
			StartedAt: c.At, Target: c.Target, OldPrimary: cl.Primary, EpochBefore: cl.Epoch,
		}
		if c.Kind.ChangesPrimary() {
			op.CommitEpoch = cl.Epoch + 1
		}
		cl.Operation = op
		return nil

	case RecordStep:
		op, err := currentOp(cl, c.OperationID)
		if err != nil {
			return err
		}
		if len(op.Steps) >= MaxSteps {
			return fmt.Errorf("%w: operation %s already has %d steps", ErrInvalidCommand, op.ID, MaxSteps)
		}
		op.Steps = append(op.Steps, c.Step)
		return nil

	case CommitPrimary:
		op, err := currentOp(cl, c.OperationID)
		if err != nil {
			return err
		}
		if !op.Kind.ChangesPrimary() {
			return fmt.Errorf("%w: a %s operation does not change the primary", ErrInvalidCommand, op.Kind)
		}
		if op.Committed && op.NewPrimary == c.NewPrimary && op.CommitEpoch == cl.Epoch && c.ExpectEpoch+1 == cl.Epoch {
			// The same operation's commit asked again after its answer was
			// lost: already applied, nothing to do.
			return nil
		}
		if cl.Epoch != c.ExpectEpoch {
			return &StaleEpochError{Cluster: cl.Name, Expected: c.ExpectEpoch, Current: cl.Epoch}
		}
		if op.Committed {
			return fmt.Errorf("%w: operation %s already committed %s at epoch %d", ErrConflict, op.ID, op.NewPrimary, op.CommitEpoch)
		}
		if c.NewPrimary == cl.Primary {
			return fmt.Errorf("%w: %s is already the primary", ErrInvalidCommand, c.NewPrimary)
		}
		if c.ExpectEpoch == math.MaxUint64 {
			return fmt.Errorf("%w: epoch would overflow", ErrInvalidCommand)
		}
		cl.Primary = c.NewPrimary
		cl.Epoch = c.ExpectEpoch + 1
		// The new primary is committed; a failover fenced every other
		// uncommitted promotion before promoting (failover.PlanFailover).
		delete(cl.Uncommitted, c.NewPrimary)
		if op.Kind == KindFailover || op.Kind == KindForcedFailover {
			cl.Uncommitted = nil
		}
		if len(cl.Uncommitted) == 0 {
			cl.Uncommitted = nil
		}
		// A primary is not in maintenance (a forced failover may promote
		// one that was).
		delete(cl.Maintenance, c.NewPrimary)
		if len(cl.Maintenance) == 0 {
			cl.Maintenance = nil
		}
		// Nor a relocated replica; and a replica relocated under it is
		// under the primary now, where it stays.
		maps.DeleteFunc(cl.Sources, func(inst string, r Relocation) bool { return inst == c.NewPrimary || r.Source == c.NewPrimary })
		if len(cl.Sources) == 0 {
			cl.Sources = nil
		}
		op.Committed = true
		op.CommittedAt = c.At
		op.NewPrimary = c.NewPrimary
		op.GTIDAtPromotion = c.GTID
		op.CommitEpoch = cl.Epoch
		return nil

	case SetCandidate:
		op, err := currentOp(cl, c.OperationID)
		if err != nil {
			return err
		}
		if !op.Kind.ChangesPrimary() {
			return fmt.Errorf("%w: a %s operation promotes no candidate", ErrConflict, op.Kind)
		}
		if op.Committed {
			return fmt.Errorf("%w: operation %s already committed %s", ErrConflict, op.ID, op.NewPrimary)
		}
		op.Candidate = c.Instance
		return nil

	case SetSemiSyncDegraded:
		op, err := currentOp(cl, c.OperationID)
		if err != nil {
			return err
		}
		want := KindSemiSyncRestore
		if c.Degraded {
			want = KindSemiSyncFallback
		}
		if op.Kind != want {
			return fmt.Errorf("%w: a %s operation cannot set semi-sync degraded=%v", ErrConflict, op.Kind, c.Degraded)
		}
		if c.Degraded {
			cl.SemiSyncDegraded = &SemiSyncDegradation{OperationID: op.ID, Since: c.At, Reason: c.Reason}
		} else {
			cl.SemiSyncDegraded = nil
		}
		return nil

	case FinishOperation:
		return finishOperation(cl, c.OperationID, c.Result, c.Reason, c.At)

	case AbortOperation:
		return finishOperation(cl, c.OperationID, ResultAborted, c.Reason, c.At)

	case SetPaused:
		if c.Paused {
			cl.Paused, cl.PausedBy, cl.PauseReason, cl.PausedAt = true, c.By, c.Reason, c.At
		} else {
			cl.Paused, cl.PausedBy, cl.PauseReason, cl.PausedAt = false, "", "", time.Time{}
		}
		return nil

	case SetAntiFlap:
		cl.AntiFlapUntil = c.Until
		return nil

	case SetPromotionRule:
		if c.Rule == PromotionNeutral {
			delete(cl.PromotionRules, c.Instance)
			if len(cl.PromotionRules) == 0 {
				cl.PromotionRules = nil
			}
			return nil
		}
		if cl.PromotionRules == nil {
			cl.PromotionRules = make(map[string]PromotionRule)
		}
		cl.PromotionRules[c.Instance] = c.Rule
		return nil

	case SetQuarantine:
		if cl.Quarantined == nil {
			cl.Quarantined = make(map[string]Quarantine)
		}
		cl.Quarantined[c.Instance] = Quarantine{Reason: c.Reason, By: c.By, At: c.At}
		return nil

	case AckOperation:
		for i, h := range cl.History {
			if h.ID != c.OperationID {
				continue
			}
			if h.Ack != nil {
				return fmt.Errorf("%w: operation %s was acknowledged by %s at %s", ErrConflict, h.ID, h.Ack.By, h.Ack.At.UTC().Format(time.RFC3339))
			}
			// A new slice, not a change in place: copies of the cluster
			// share the old one (Cluster.Clone).
			hist := slices.Clone(cl.History)
			hist[i].Ack = &Ack{By: c.By, Comment: c.Comment, At: c.At}
			cl.History = hist
			return nil
		}
		return fmt.Errorf("%w: no finished operation %q in the history of cluster %q", ErrNotFound, c.OperationID, cl.Name)

	case SetInstance:
		if c.Remove && c.Instance == cl.Primary {
			return fmt.Errorf("%w: %s is the primary of cluster %q: switch over to another instance first", ErrConflict, c.Instance, cl.Name)
		}
		if op := cl.Operation; op != nil && (op.Candidate == c.Instance || op.Target == c.Instance || op.OldPrimary == c.Instance) {
			return fmt.Errorf("%w: operation %s acts on %s: wait for it to end", ErrConflict, op.ID, c.Instance)
		}
		if cl.Instances == nil {
			cl.Instances = make(map[string]InstanceChange)
		}
		cl.Instances[c.Instance] = InstanceChange{Removed: c.Remove, Address: c.Address, Promotion: c.Promotion, Labels: maps.Clone(c.Labels), By: c.By, At: c.At}
		cl.InstancesVersion++
		what, verb := fmt.Sprintf("instance %s added at %s", c.Instance, c.Address), "add"
		if c.Remove {
			what, verb = fmt.Sprintf("instance %s removed", c.Instance), "remove"
		}
		appendHistory(cl, HistoryEntry{ID: fmt.Sprintf("instances-%d", cl.InstancesVersion), Kind: KindEditConfig, Trigger: "regentctl cluster " + verb + " by " + c.By,
			Target: c.Instance, StartedAt: c.At, EndedAt: c.At, EpochBefore: cl.Epoch, EpochAfter: cl.Epoch, Result: ResultSuccess, Reason: what, Steps: []Step{}})
		return nil

	case SetConfig:
		var cur uint64
		if cl.Config != nil {
			cur = cl.Config.Version
		}
		if cur != c.ExpectVersion {
			by := ""
			if cl.Config != nil {
				by = fmt.Sprintf(" by %s at %s", cl.Config.By, cl.Config.At.UTC().Format(time.RFC3339))
			}
			return fmt.Errorf("%w: the settings of cluster %q are at version %d%s, not %d: read them again and redo the edit", ErrConflict, cl.Name, cur, by, c.ExpectVersion)
		}
		cl.Config = &RuntimeConfig{Version: cur + 1, Settings: c.Settings, By: c.By, At: c.At}
		appendHistory(cl, HistoryEntry{ID: fmt.Sprintf("config-%d", cur+1), Kind: KindEditConfig, Trigger: "regentctl cluster edit-config by " + c.By,
			StartedAt: c.At, EndedAt: c.At, EpochBefore: cl.Epoch, EpochAfter: cl.Epoch, Result: ResultSuccess, Reason: c.Change, Steps: []Step{}})
		return nil

	case SetSource:
		if c.Source == "" {
			if _, ok := cl.Sources[c.Instance]; !ok {
				return fmt.Errorf("%w: replica %q of cluster %q is not relocated", ErrNotFound, c.Instance, cl.Name)
			}
			delete(cl.Sources, c.Instance)
			if len(cl.Sources) == 0 {
				cl.Sources = nil
			}
			return nil
		}
		if c.Instance == cl.Primary || c.Source == cl.Primary {
			return fmt.Errorf("%w: %s is the primary of cluster %q: a replica under the primary needs no record (relocate under a replica, or remove the record)", ErrConflict, cl.Primary, cl.Name)
		}
		// The chain above Source must not come back to Instance.
		for at, hops := c.Source, 0; at != ""; at, hops = cl.Sources[at].Source, hops+1 {
			if at == c.Instance || hops > len(cl.Sources) {
				return fmt.Errorf("%w: %s under %s would make a replication cycle", ErrConflict, c.Instance, c.Source)
			}
		}
		if cl.Sources == nil {
			cl.Sources = make(map[string]Relocation)
		}
		cl.Sources[c.Instance] = Relocation{Source: c.Source, By: c.By, At: c.At}
		return nil

	case SetMaintenance:
		if !c.On {
			if _, ok := cl.Maintenance[c.Instance]; !ok {
				return fmt.Errorf("%w: instance %q of cluster %q is not in maintenance", ErrNotFound, c.Instance, cl.Name)
			}
			delete(cl.Maintenance, c.Instance)
			if len(cl.Maintenance) == 0 {
				cl.Maintenance = nil
			}
			return nil
		}
		if c.Instance == cl.Primary {
			return fmt.Errorf("%w: %s is the primary of cluster %q: switch over to another instance first, then put it in maintenance", ErrConflict, c.Instance, cl.Name)
		}
		if op := cl.Operation; op != nil && op.Candidate == c.Instance {
			return fmt.Errorf("%w: %s is being promoted by operation %s", ErrConflict, c.Instance, op.ID)
		}
		if cl.Maintenance == nil {
			cl.Maintenance = make(map[string]Maintenance)
		}
		cl.Maintenance[c.Instance] = Maintenance{By: c.By, Reason: c.Reason, Since: c.At, Until: c.Until}
		return nil

	case ClearQuarantine:
		if _, ok := cl.Quarantined[c.Instance]; !ok {
			return fmt.Errorf("%w: instance %q of cluster %q is not quarantined", ErrNotFound, c.Instance, cl.Name)
		}
		delete(cl.Quarantined, c.Instance)
		if len(cl.Quarantined) == 0 {
			cl.Quarantined = nil
		}
		return nil
	}
	return fmt.Errorf("%w: %s is not a cluster command", ErrInvalidCommand, cmd.Name())
}

func currentOp(cl *Cluster, id string) (*Operation, error) {
	op := cl.Operation
	if op == nil {
		return nil, fmt.Errorf("%w: cluster %q has no operation in progress (command names %s)", ErrConflict, cl.Name, id)
	}
	if op.ID != id {
		return nil, fmt.Errorf("%w: cluster %q: operation in progress is %s, command names %s", ErrConflict, cl.Name, op.ID, id)
	}
	return op, nil
}

func finishOperation(cl *Cluster, id string, result Result, reason string, at time.Time) error {
	op, err := currentOp(cl, id)
	if err != nil {
		return err
	}
	if result == ResultSuccess && op.Kind.ChangesPrimary() && !op.Committed {
		return fmt.Errorf("%w: %s %s committed no new primary; finish it as failed or aborted", ErrConflict, op.Kind, op.ID)
	}
	e := HistoryEntry{
		ID: op.ID, Kind: op.Kind, Trigger: op.Trigger, Automatic: op.Automatic, Target: op.Target,
		StartedAt: op.StartedAt, EndedAt: at, OldPrimary: op.OldPrimary, NewPrimary: op.NewPrimary,
		EpochBefore: op.EpochBefore, EpochAfter: cl.Epoch, GTIDAtPromotion: op.GTIDAtPromotion,
		Result: result, Reason: reason, Steps: op.Steps,
	}
	if d := at.Sub(op.StartedAt); d > 0 {
		e.Duration = d
	}
	if op.Candidate != "" && !op.Committed {
		// Promoted, perhaps writable, never committed: the next change of
		// primary must fence it and count its data.
		if cl.Uncommitted == nil {
			cl.Uncommitted = make(map[string]UncommittedPromotion)
		}
		cl.Uncommitted[op.Candidate] = UncommittedPromotion{OperationID: op.ID, At: at}
	}
	appendHistory(cl, e)
	cl.Operation = nil
	return nil
}

// appendHistory adds a finished entry, keeping the newest HistoryLimit. It
// only writes past the end of the slice (or into a new one), so copies that
// share the history (Cluster.Clone) never see it change.
func appendHistory(cl *Cluster, e HistoryEntry) {
	h := append(cl.History, e)
	if len(h) > HistoryLimit {
		// Copy rather than reslice so dropped entries are not kept alive.
		h = append([]HistoryEntry(nil), h[len(h)-HistoryLimit:]...)
	}
	cl.History = h
}

// defineCluster applies DefineCluster to s.
func defineCluster(s *State, c DefineCluster) error {
	_, defined := s.Defined[c.Cluster]
	cl, recorded := s.Clusters[c.Cluster]
	if !c.Remove {
		switch {
		case defined:
			return fmt.Errorf("%w: cluster %q is already defined", ErrConflict, c.Cluster)
		case recorded:
			return fmt.Errorf("%w: cluster %q already exists (regent.yaml names it)", ErrConflict, c.Cluster)
		}
		if s.Defined == nil {
			s.Defined = make(map[string]Definition)
		}
		s.Defined[c.Cluster] = Definition{Definition: c.Definition, By: c.By, At: c.At}
		return nil
	}
	if !defined {
		return fmt.Errorf("%w: no cluster %q was defined at run time (a regent.yaml cluster is removed from regent.yaml)", ErrNotFound, c.Cluster)
	}
	if recorded && cl.Operation != nil {
		return fmt.Errorf("%w: cluster %q has an operation in progress (%s %s)", ErrConflict, c.Cluster, cl.Operation.Kind, cl.Operation.ID)
	}
	delete(s.Defined, c.Cluster)
	if len(s.Defined) == 0 {
		s.Defined = nil
	}
	delete(s.Clusters, c.Cluster)
	return nil
}

func orAPI(by string) string {
	if by == "" {
		return "api"
	}
	return by
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
