package consensus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

var t0 = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

// build applies commands to an empty state and fails the test on any error.
func build(t testing.TB, cmds ...Command) State {
	t.Helper()
	var s State
	for i, c := range cmds {
		if _, err := applyCommand(&s, c); err != nil {
			t.Fatalf("setup command %d (%s): %v", i, c.Name(), err)
		}
	}
	return s
}

var (
	initC1   = InitCluster{Cluster: "c1", Primary: "db1", At: at(0)}
	beginOp1 = BeginOperation{Cluster: "c1", OperationID: "op1", Kind: KindFailover, ExpectEpoch: 1,
		Trigger: "primary dead", Automatic: true, At: at(10)}
	stepOp1   = RecordStep{Cluster: "c1", OperationID: "op1", Step: Step{Name: "fence", Start: at(11), Duration: 20 * time.Millisecond, Result: StepOK, Detail: "read_only=ON"}}
	setCand1  = SetCandidate{Cluster: "c1", OperationID: "op1", Instance: "db2"}
	commitOp1 = CommitPrimary{Cluster: "c1", OperationID: "op1", NewPrimary: "db2", ExpectEpoch: 1, GTID: "0-2-100", At: at(12)}
)

func TestApplyCommand(t *testing.T) {
	tests := []struct {
		name    string
		setup   []Command
		cmd     Command
		wantErr error // nil: success
		// want edits a copy of the state before the command into the
		// expected state after it; nil means "unchanged".
		want func(s *State)
	}{
		{
			name: "init_cluster creates at epoch 1",
			cmd:  initC1,
			want: func(s *State) {
				s.Clusters = map[string]*Cluster{"c1": {Name: "c1", CreatedAt: at(0), Primary: "db1", Epoch: 1}}
			},
		},
		{
			name: "init_cluster without a known primary",
			cmd:  InitCluster{Cluster: "c1", At: at(0)},
			want: func(s *State) {
				s.Clusters = map[string]*Cluster{"c1": {Name: "c1", CreatedAt: at(0), Epoch: 1}}
			},
		},
		{
			name:    "init_cluster rejects an existing cluster",
			setup:   []Command{initC1},
			cmd:     InitCluster{Cluster: "c1", Primary: "db9", At: at(5)},
			wantErr: ErrConflict,
		},
		{
			name:    "init_cluster rejects an empty name",
			cmd:     InitCluster{Cluster: "", At: at(0)},
			wantErr: ErrInvalidCommand,
		},
		{
			name:  "begin_operation starts a failover",
			setup: []Command{initC1},
			cmd:   beginOp1,
			want: func(s *State) {
				s.Clusters["c1"].Operation = &Operation{ID: "op1", Kind: KindFailover, Trigger: "primary dead", Automatic: true,
					StartedAt: at(10), OldPrimary: "db1", EpochBefore: 1, CommitEpoch: 2}
			},
		},
		{
			name:  "begin_operation of a rejoin commits no epoch",
			setup: []Command{initC1},
			cmd:   BeginOperation{Cluster: "c1", OperationID: "rj", Kind: KindRejoin, ExpectEpoch: 1, Target: "db0", At: at(3)},
			want: func(s *State) {
				s.Clusters["c1"].Operation = &Operation{ID: "rj", Kind: KindRejoin, Target: "db0", StartedAt: at(3), OldPrimary: "db1", EpochBefore: 1}
			},
		},
		{
			name:    "begin_operation of a rejoin needs a target",
			setup:   []Command{initC1},
			cmd:     BeginOperation{Cluster: "c1", OperationID: "rj", Kind: KindRejoin, ExpectEpoch: 1, At: at(3)},
			wantErr: ErrInvalidCommand,
		},
		{
			name:    "begin_operation with an older epoch is stale",
			setup:   []Command{initC1, beginOp1, commitOp1, FinishOperation{Cluster: "c1", OperationID: "op1", Result: ResultSuccess, At: at(13)}},
			cmd:     BeginOperation{Cluster: "c1", OperationID: "op2", Kind: KindSwitchover, ExpectEpoch: 1, At: at(20)},
			wantErr: ErrStaleEpoch,
		},
		{
			name:    "begin_operation with a future epoch is stale",
			setup:   []Command{initC1},
			cmd:     BeginOperation{Cluster: "c1", OperationID: "op2", Kind: KindSwitchover, ExpectEpoch: 7, At: at(20)},
			wantErr: ErrStaleEpoch,
		},
		{
			name:    "begin_operation while another is in progress conflicts",
			setup:   []Command{initC1, beginOp1},
			cmd:     BeginOperation{Cluster: "c1", OperationID: "op2", Kind: KindSwitchover, ExpectEpoch: 1, At: at(20)},
			wantErr: ErrConflict,
		},
		{
			name: "begin_operation reusing a finished id conflicts",
			setup: []Command{initC1, BeginOperation{Cluster: "c1", OperationID: "op1", Kind: KindSwitchover, ExpectEpoch: 1, At: at(1)},
				AbortOperation{Cluster: "c1", OperationID: "op1", At: at(2)}},
			cmd:     BeginOperation{Cluster: "c1", OperationID: "op1", Kind: KindSwitchover, ExpectEpoch: 1, At: at(3)},
			wantErr: ErrConflict,
		},
		{
			name:    "begin_operation automatic while paused is refused",
			setup:   []Command{initC1, SetPaused{Cluster: "c1", Paused: true, By: "alice", Reason: "maintenance", At: at(1)}},
			cmd:     beginOp1,
			wantErr: ErrPaused,
		},
		{
			name:  "begin_operation manual while paused is allowed",
			setup: []Command{initC1, SetPaused{Cluster: "c1", Paused: true, By: "alice", At: at(1)}},
			cmd:   BeginOperation{Cluster: "c1", OperationID: "m1", Kind: KindSwitchover, ExpectEpoch: 1, Target: "db2", At: at(5)},
			want: func(s *State) {
				s.Clusters["c1"].Operation = &Operation{ID: "m1", Kind: KindSwitchover, Target: "db2", StartedAt: at(5), OldPrimary: "db1", EpochBefore: 1, CommitEpoch: 2}
			},
		},
		{
			name:    "begin_operation automatic during anti-flap is refused",
			setup:   []Command{initC1, SetAntiFlap{Cluster: "c1", Until: at(60)}},
			cmd:     beginOp1, // at(10)
			wantErr: ErrAntiFlap,
		},
		{
			name:  "begin_operation automatic after anti-flap is allowed",
			setup: []Command{initC1, SetAntiFlap{Cluster: "c1", Until: at(10)}},
			cmd:   beginOp1, // at(10): the deadline itself has passed
			want: func(s *State) {
				s.Clusters["c1"].Operation = &Operation{ID: "op1", Kind: KindFailover, Trigger: "primary dead", Automatic: true,
					StartedAt: at(10), OldPrimary: "db1", EpochBefore: 1, CommitEpoch: 2}
			},
		},
		{
			name:  "begin_operation manual during anti-flap is allowed",
			setup: []Command{initC1, SetAntiFlap{Cluster: "c1", Until: at(60)}},
			cmd:   BeginOperation{Cluster: "c1", OperationID: "f1", Kind: KindForcedFailover, ExpectEpoch: 1, At: at(10)},
			want: func(s *State) {
				s.Clusters["c1"].Operation = &Operation{ID: "f1", Kind: KindForcedFailover, StartedAt: at(10), OldPrimary: "db1", EpochBefore: 1, CommitEpoch: 2}
			},
		},
		{
			name:    "begin_operation on an unknown cluster",
			cmd:     beginOp1,
			wantErr: ErrNotFound,
		},
		{
			name:    "begin_operation with an unknown kind",
			setup:   []Command{initC1},
			cmd:     BeginOperation{Cluster: "c1", OperationID: "x", Kind: "reboot", ExpectEpoch: 1, At: at(1)},
			wantErr: ErrInvalidCommand,
		},
		{
			name:  "record_step appends to the operation",
			setup: []Command{initC1, beginOp1},
			cmd:   stepOp1,
			want: func(s *State) {
				s.Clusters["c1"].Operation.Steps = []Step{stepOp1.Step}
			},
		},
		{
			name:    "record_step for another operation conflicts",
			setup:   []Command{initC1, beginOp1},
			cmd:     RecordStep{Cluster: "c1", OperationID: "op0", Step: stepOp1.Step},
			wantErr: ErrConflict,
		},
		{
			name:    "record_step without an operation conflicts",
			setup:   []Command{initC1},
			cmd:     stepOp1,
			wantErr: ErrConflict,
		},
		{
			name:    "record_step beyond the step limit is refused",
			setup:   append([]Command{initC1, beginOp1}, repeat(stepOp1, MaxSteps)...),
			cmd:     stepOp1,
			wantErr: ErrInvalidCommand,
		},
		{
			name:    "record_step with a detail over the limit is refused",
			setup:   []Command{initC1, beginOp1},
			cmd:     RecordStep{Cluster: "c1", OperationID: "op1", Step: Step{Name: "x", Start: at(1), Result: StepFailed, Detail: strings.Repeat("a", MaxDetailLen+1)}},
			wantErr: ErrInvalidCommand,
		},
		{
			name:  "commit_primary sets the primary and moves the epoch by one",
			setup: []Command{initC1, beginOp1},
			cmd:   commitOp1,
			want: func(s *State) {
				c := s.Clusters["c1"]
				c.Primary, c.Epoch = "db2", 2
				c.Operation.Committed, c.Operation.CommittedAt, c.Operation.NewPrimary = true, at(12), "db2"
				c.Operation.GTIDAtPromotion, c.Operation.CommitEpoch = "0-2-100", 2
			},
		},
		{
			name: "commit_primary ends the new primary's maintenance (a forced failover may promote it)",
			setup: []Command{initC1, SetMaintenance{Cluster: "c1", Instance: "db2", On: true, Reason: "r", At: at(5), Until: at(50)},
				SetMaintenance{Cluster: "c1", Instance: "db3", On: true, Reason: "r", At: at(5), Until: at(50)}, beginOp1},
			cmd: commitOp1,
			want: func(s *State) {
				c := s.Clusters["c1"]
				c.Primary, c.Epoch = "db2", 2
				c.Operation.Committed, c.Operation.CommittedAt, c.Operation.NewPrimary = true, at(12), "db2"
				c.Operation.GTIDAtPromotion, c.Operation.CommitEpoch = "0-2-100", 2
				delete(c.Maintenance, "db2")
			},
		},
		{
			name: "commit_primary removes the new primary's relocation and those under it",
			setup: []Command{initC1, SetSource{Cluster: "c1", Instance: "db2", Source: "db3", At: at(5)},
				SetSource{Cluster: "c1", Instance: "db4", Source: "db2", At: at(5)}, SetSource{Cluster: "c1", Instance: "db5", Source: "db3", At: at(5)}, beginOp1},
			cmd: commitOp1,
			want: func(s *State) {
				c := s.Clusters["c1"]
				c.Primary, c.Epoch = "db2", 2
				c.Operation.Committed, c.Operation.CommittedAt, c.Operation.NewPrimary = true, at(12), "db2"
				c.Operation.GTIDAtPromotion, c.Operation.CommitEpoch = "0-2-100", 2
				c.Sources = map[string]Relocation{"db5": {Source: "db3", At: at(5)}}
			},
		},
		{
			name:    "commit_primary with a stale epoch is rejected",
			setup:   []Command{initC1, beginOp1},
			cmd:     CommitPrimary{Cluster: "c1", OperationID: "op1", NewPrimary: "db2", ExpectEpoch: 2, At: at(12)},
			wantErr: ErrStaleEpoch,
		},
		{
			// The runner asks again when the answer was lost (a timeout);
			// the commit is already there, so nothing changes.
			name:  "commit_primary asked again by its own operation is a no-op",
			setup: []Command{initC1, beginOp1, commitOp1},
			cmd:   commitOp1,
		},
		{
			name:    "commit_primary replayed after the operation ended is refused",
			setup:   []Command{initC1, beginOp1, commitOp1, FinishOperation{Cluster: "c1", OperationID: "op1", Result: ResultSuccess, At: at(13)}},
			cmd:     commitOp1,
			wantErr: ErrConflict,
		},
		{
			name:    "commit_primary twice for one operation conflicts",
			setup:   []Command{initC1, beginOp1, commitOp1},
			cmd:     CommitPrimary{Cluster: "c1", OperationID: "op1", NewPrimary: "db3", ExpectEpoch: 2, At: at(13)},
			wantErr: ErrConflict,
		},
		{
			name:    "commit_primary for another operation conflicts",
			setup:   []Command{initC1, beginOp1},
			cmd:     CommitPrimary{Cluster: "c1", OperationID: "opX", NewPrimary: "db2", ExpectEpoch: 1, At: at(12)},
			wantErr: ErrConflict,
		},
		{
			name:    "commit_primary without an operation conflicts",
			setup:   []Command{initC1},
			cmd:     commitOp1,
			wantErr: ErrConflict,
		},
		{
			name:    "commit_primary during a rejoin is invalid",
			setup:   []Command{initC1, BeginOperation{Cluster: "c1", OperationID: "rj", Kind: KindRejoin, ExpectEpoch: 1, Target: "db0", At: at(1)}},
			cmd:     CommitPrimary{Cluster: "c1", OperationID: "rj", NewPrimary: "db0", ExpectEpoch: 1, At: at(2)},
			wantErr: ErrInvalidCommand,
		},
		{
			name:    "commit_primary of the current primary is invalid",
			setup:   []Command{initC1, beginOp1},
			cmd:     CommitPrimary{Cluster: "c1", OperationID: "op1", NewPrimary: "db1", ExpectEpoch: 1, At: at(12)},
			wantErr: ErrInvalidCommand,
		},
		{
			name:  "finish_operation success appends history and clears the operation",
			setup: []Command{initC1, beginOp1, stepOp1, commitOp1},
			cmd:   FinishOperation{Cluster: "c1", OperationID: "op1", Result: ResultSuccess, Reason: "promoted db2", At: at(14)},
			want: func(s *State) {
				c := s.Clusters["c1"]
				c.Operation = nil
				c.History = []HistoryEntry{{
					ID: "op1", Kind: KindFailover, Trigger: "primary dead", Automatic: true, StartedAt: at(10), EndedAt: at(14),
					OldPrimary: "db1", NewPrimary: "db2", EpochBefore: 1, EpochAfter: 2, GTIDAtPromotion: "0-2-100",
					Result: ResultSuccess, Reason: "promoted db2", Steps: []Step{stepOp1.Step}, Duration: 4 * time.Second,
				}}
			},
		},
		{
			name:    "finish_operation success without a commit conflicts",
			setup:   []Command{initC1, beginOp1},
			cmd:     FinishOperation{Cluster: "c1", OperationID: "op1", Result: ResultSuccess, At: at(14)},
			wantErr: ErrConflict,
		},
		{
			name:  "finish_operation success of a rejoin needs no commit",
			setup: []Command{initC1, BeginOperation{Cluster: "c1", OperationID: "rj", Kind: KindRejoin, ExpectEpoch: 1, Target: "db0", At: at(1)}},
			cmd:   FinishOperation{Cluster: "c1", OperationID: "rj", Result: ResultSuccess, At: at(3)},
			want: func(s *State) {
				c := s.Clusters["c1"]
				c.Operation = nil
				c.History = []HistoryEntry{{ID: "rj", Kind: KindRejoin, Target: "db0", StartedAt: at(1), EndedAt: at(3), OldPrimary: "db1",
					EpochBefore: 1, EpochAfter: 1, Result: ResultSuccess, Duration: 2 * time.Second}}
			},
		},
		{
			name:  "finish_operation failed keeps the epoch",
			setup: []Command{initC1, beginOp1},
			cmd:   FinishOperation{Cluster: "c1", OperationID: "op1", Result: ResultFailed, Reason: "no candidate", At: at(11)},
			want: func(s *State) {
				c := s.Clusters["c1"]
				c.Operation = nil
				c.History = []HistoryEntry{{ID: "op1", Kind: KindFailover, Trigger: "primary dead", Automatic: true, StartedAt: at(10), EndedAt: at(11),
					OldPrimary: "db1", EpochBefore: 1, EpochAfter: 1, Result: ResultFailed, Reason: "no candidate", Duration: time.Second}}
			},
		},
		{
			name:    "finish_operation of another operation conflicts",
			setup:   []Command{initC1, beginOp1},
			cmd:     FinishOperation{Cluster: "c1", OperationID: "op9", Result: ResultFailed, At: at(11)},
			wantErr: ErrConflict,
		},
		{
			name:    "finish_operation with an unknown result is invalid",
			setup:   []Command{initC1, beginOp1},
			cmd:     FinishOperation{Cluster: "c1", OperationID: "op1", Result: "meh", At: at(11)},
			wantErr: ErrInvalidCommand,
		},
		{
			name:  "abort_operation records an aborted entry",
			setup: []Command{initC1, beginOp1},
			cmd:   AbortOperation{Cluster: "c1", OperationID: "op1", Reason: "leader lost", At: at(9)}, // clock skew: no negative duration
			want: func(s *State) {
				c := s.Clusters["c1"]
				c.Operation = nil
				c.History = []HistoryEntry{{ID: "op1", Kind: KindFailover, Trigger: "primary dead", Automatic: true, StartedAt: at(10), EndedAt: at(9),
					OldPrimary: "db1", EpochBefore: 1, EpochAfter: 1, Result: ResultAborted, Reason: "leader lost"}}
			},
		},
		{
			name:    "abort_operation of another operation conflicts",
			setup:   []Command{initC1, beginOp1},
			cmd:     AbortOperation{Cluster: "c1", OperationID: "op2", At: at(11)},
			wantErr: ErrConflict,
		},
		{
			name:  "set_paused pauses",
			setup: []Command{initC1},
			cmd:   SetPaused{Cluster: "c1", Paused: true, By: "alice", Reason: "upgrade", At: at(3)},
			want: func(s *State) {
				c := s.Clusters["c1"]
				c.Paused, c.PausedBy, c.PauseReason, c.PausedAt = true, "alice", "upgrade", at(3)
			},
		},
		{
			name:  "set_paused resumes and forgets who paused",
			setup: []Command{initC1, SetPaused{Cluster: "c1", Paused: true, By: "alice", Reason: "upgrade", At: at(3)}},
			cmd:   SetPaused{Cluster: "c1", Paused: false, By: "bob", At: at(4)},
			want: func(s *State) {
				c := s.Clusters["c1"]
				c.Paused, c.PausedBy, c.PauseReason, c.PausedAt = false, "", "", time.Time{}
			},
		},
		{
			name:    "set_paused on an unknown cluster",
			cmd:     SetPaused{Cluster: "zz", Paused: true, At: at(1)},
			wantErr: ErrNotFound,
		},
		{
			name:  "set_anti_flap sets the deadline",
			setup: []Command{initC1},
			cmd:   SetAntiFlap{Cluster: "c1", Until: at(300)},
			want:  func(s *State) { s.Clusters["c1"].AntiFlapUntil = at(300) },
		},
		{
			name:  "set_anti_flap with the zero time clears it",
			setup: []Command{initC1, SetAntiFlap{Cluster: "c1", Until: at(300)}},
			cmd:   SetAntiFlap{Cluster: "c1"},
			want:  func(s *State) { s.Clusters["c1"].AntiFlapUntil = time.Time{} },
		},
		{
			name:  "set_promotion_rule sets an override",
			setup: []Command{initC1},
			cmd:   SetPromotionRule{Cluster: "c1", Instance: "db3", Rule: PromotionMustNot},
			want: func(s *State) {
				s.Clusters["c1"].PromotionRules = map[string]PromotionRule{"db3": PromotionMustNot}
			},
		},
		{
			name:  "set_promotion_rule neutral removes the override",
			setup: []Command{initC1, SetPromotionRule{Cluster: "c1", Instance: "db3", Rule: PromotionPrefer}},
			cmd:   SetPromotionRule{Cluster: "c1", Instance: "db3", Rule: PromotionNeutral},
			want:  func(s *State) { s.Clusters["c1"].PromotionRules = nil },
		},
		{
			name:    "set_promotion_rule with an unknown rule is invalid",
			setup:   []Command{initC1},
			cmd:     SetPromotionRule{Cluster: "c1", Instance: "db3", Rule: "always"},
			wantErr: ErrInvalidCommand,
		},
		{
			name:  "set_quarantine records the reason",
			setup: []Command{initC1},
			cmd:   SetQuarantine{Cluster: "c1", Instance: "db1", Reason: "errant GTIDs 0-1-7", By: "regent", At: at(5)},
			want: func(s *State) {
				s.Clusters["c1"].Quarantined = map[string]Quarantine{"db1": {Reason: "errant GTIDs 0-1-7", By: "regent", At: at(5)}}
			},
		},
		{
			name:  "clear_quarantine lifts it",
			setup: []Command{initC1, SetQuarantine{Cluster: "c1", Instance: "db1", Reason: "errant", At: at(5)}},
			cmd:   ClearQuarantine{Cluster: "c1", Instance: "db1"},
			want:  func(s *State) { s.Clusters["c1"].Quarantined = nil },
		},
		{
			name:    "clear_quarantine of an instance not quarantined",
			setup:   []Command{initC1},
			cmd:     ClearQuarantine{Cluster: "c1", Instance: "db1"},
			wantErr: ErrNotFound,
		},
		{
			name:  "ack_operation records who acknowledged a finished operation",
			setup: []Command{initC1, beginOp1, commitOp1, FinishOperation{Cluster: "c1", OperationID: "op1", Result: ResultSuccess, At: at(13)}},
			cmd:   AckOperation{Cluster: "c1", OperationID: "op1", By: "alice", Comment: "disk died", At: at(20)},
			want: func(s *State) {
				s.Clusters["c1"].History[0].Ack = &Ack{By: "alice", Comment: "disk died", At: at(20)}
			},
		},
		{
			name: "ack_operation twice conflicts",
			setup: []Command{initC1, beginOp1, commitOp1, FinishOperation{Cluster: "c1", OperationID: "op1", Result: ResultSuccess, At: at(13)},
				AckOperation{Cluster: "c1", OperationID: "op1", By: "alice", At: at(20)}},
			cmd:     AckOperation{Cluster: "c1", OperationID: "op1", By: "bob", At: at(21)},
			wantErr: ErrConflict,
		},
		{
			name:    "ack_operation of an operation not in the history",
			setup:   []Command{initC1, beginOp1},
			cmd:     AckOperation{Cluster: "c1", OperationID: "op1", By: "alice", At: at(20)},
			wantErr: ErrNotFound,
		},
		{
			name:  "set_maintenance records who, why and until when",
			setup: []Command{initC1},
			cmd:   SetMaintenance{Cluster: "c1", Instance: "db2", On: true, By: "alice", Reason: "kernel upgrade", At: at(5), Until: at(6)},
			want: func(s *State) {
				s.Clusters["c1"].Maintenance = map[string]Maintenance{"db2": {By: "alice", Reason: "kernel upgrade", Since: at(5), Until: at(6)}}
			},
		},
		{
			name:  "set_maintenance off ends it",
			setup: []Command{initC1, SetMaintenance{Cluster: "c1", Instance: "db2", On: true, Reason: "r", At: at(5), Until: at(6)}},
			cmd:   SetMaintenance{Cluster: "c1", Instance: "db2", At: at(5)},
			want:  func(s *State) { s.Clusters["c1"].Maintenance = nil },
		},
		{
			name:    "set_maintenance off of an instance not in maintenance",
			setup:   []Command{initC1},
			cmd:     SetMaintenance{Cluster: "c1", Instance: "db2", At: at(5)},
			wantErr: ErrNotFound,
		},
		{
			name:    "set_maintenance of the primary is refused",
			setup:   []Command{initC1},
			cmd:     SetMaintenance{Cluster: "c1", Instance: "db1", On: true, Reason: "r", At: at(5), Until: at(6)},
			wantErr: ErrConflict,
		},
		{
			name:  "set_config records the settings and a history entry",
			setup: []Command{initC1},
			cmd:   SetConfig{Cluster: "c1", Settings: "anti_flap_period: 10m\n", Change: "anti_flap_period: 1h0m0s → 10m0s", By: "alice", At: at(5)},
			want: func(s *State) {
				c := s.Clusters["c1"]
				c.Config = &RuntimeConfig{Version: 1, Settings: "anti_flap_period: 10m\n", By: "alice", At: at(5)}
				c.History = []HistoryEntry{{ID: "config-1", Kind: KindEditConfig, Trigger: "regentctl cluster edit-config by alice", StartedAt: at(5), EndedAt: at(5),
					EpochBefore: 1, EpochAfter: 1, Result: ResultSuccess, Reason: "anti_flap_period: 1h0m0s → 10m0s", Steps: []Step{}}}
			},
		},
		{
			name:    "set_config on a stale version is refused",
			setup:   []Command{initC1, SetConfig{Cluster: "c1", Settings: "auto_rejoin: false\n", Change: "x", By: "bob", At: at(4)}},
			cmd:     SetConfig{Cluster: "c1", Settings: "anti_flap_period: 10m\n", Change: "x", By: "alice", At: at(5)},
			wantErr: ErrConflict,
		},
		{
			name:  "set_instance adds an instance, counts the change and keeps it in the history",
			setup: []Command{initC1},
			cmd:   SetInstance{Cluster: "c1", Instance: "db4", Address: "10.0.0.4:3306", Promotion: "prefer", Labels: map[string]string{"zone": "a"}, By: "alice", At: at(5)},
			want: func(s *State) {
				c := s.Clusters["c1"]
				c.Instances = map[string]InstanceChange{"db4": {Address: "10.0.0.4:3306", Promotion: "prefer", Labels: map[string]string{"zone": "a"}, By: "alice", At: at(5)}}
				c.InstancesVersion = 1
				c.History = []HistoryEntry{{ID: "instances-1", Kind: KindEditConfig, Trigger: "regentctl cluster add by alice", Target: "db4", StartedAt: at(5), EndedAt: at(5),
					EpochBefore: 1, EpochAfter: 1, Result: ResultSuccess, Reason: "instance db4 added at 10.0.0.4:3306", Steps: []Step{}}}
			},
		},
		{
			name:    "set_instance removing the primary is refused",
			setup:   []Command{initC1},
			cmd:     SetInstance{Cluster: "c1", Instance: "db1", Remove: true, By: "alice", At: at(5)},
			wantErr: ErrConflict,
		},
		{
			name:    "set_instance adding without an address is invalid",
			setup:   []Command{initC1},
			cmd:     SetInstance{Cluster: "c1", Instance: "db4", By: "alice", At: at(5)},
			wantErr: ErrInvalidCommand,
		},
		{
			name:  "define_cluster keeps the definition, who and when",
			setup: []Command{initC1},
			cmd:   DefineCluster{Cluster: "c2", Definition: "name: c2\n", By: "alice", At: at(5)},
			want: func(s *State) {
				s.Defined = map[string]Definition{"c2": {Definition: "name: c2\n", By: "alice", At: at(5)}}
			},
		},
		{
			name:  "init_cluster of a defined cluster starts its history with who created it",
			setup: []Command{DefineCluster{Cluster: "c2", Definition: "name: c2\n", By: "alice", At: at(5)}},
			cmd:   InitCluster{Cluster: "c2", Primary: "x1", At: at(6)},
			want: func(s *State) {
				s.Clusters = map[string]*Cluster{"c2": {Name: "c2", CreatedAt: at(6), Primary: "x1", Epoch: 1,
					History: []HistoryEntry{{ID: "created", Kind: KindEditConfig, Trigger: "regentctl cluster create by alice", StartedAt: at(5), EndedAt: at(6),
						EpochBefore: 1, EpochAfter: 1, Result: ResultSuccess, Reason: "cluster created at run time; first primary x1", Steps: []Step{}}}}}
			},
		},
		{
			name:    "define_cluster of a name defined already conflicts",
			setup:   []Command{initC1, DefineCluster{Cluster: "c2", Definition: "name: c2\n", At: at(5)}},
			cmd:     DefineCluster{Cluster: "c2", Definition: "name: c2\n", At: at(6)},
			wantErr: ErrConflict,
		},
		{
			name:    "define_cluster of a regent.yaml cluster conflicts",
			setup:   []Command{initC1},
			cmd:     DefineCluster{Cluster: "c1", Definition: "name: c1\n", At: at(5)},
			wantErr: ErrConflict,
		},
		{
			name:    "define_cluster without a definition is invalid",
			setup:   []Command{initC1},
			cmd:     DefineCluster{Cluster: "c2", At: at(5)},
			wantErr: ErrInvalidCommand,
		},
		{
			name: "define_cluster remove takes out the definition and the record",
			setup: []Command{initC1, DefineCluster{Cluster: "c2", Definition: "name: c2\n", At: at(5)},
				InitCluster{Cluster: "c2", Primary: "x1", At: at(6)}},
			cmd:  DefineCluster{Cluster: "c2", Remove: true, By: "alice", At: at(7)},
			want: func(s *State) { s.Defined = nil; delete(s.Clusters, "c2") },
		},
		{
			name:    "define_cluster remove of a regent.yaml cluster is not found",
			setup:   []Command{initC1},
			cmd:     DefineCluster{Cluster: "c1", Remove: true, At: at(5)},
			wantErr: ErrNotFound,
		},
		{
			name:    "define_cluster remove during an operation conflicts",
			setup:   []Command{DefineCluster{Cluster: "c1", Definition: "name: c1\n", At: at(1)}, initC1, beginOp1},
			cmd:     DefineCluster{Cluster: "c1", Remove: true, At: at(20)},
			wantErr: ErrConflict,
		},
		{
			name:  "set_source records a relocation with who and when",
			setup: []Command{initC1},
			cmd:   SetSource{Cluster: "c1", Instance: "db3", Source: "db2", By: "alice", At: at(5)},
			want: func(s *State) {
				s.Clusters["c1"].Sources = map[string]Relocation{"db3": {Source: "db2", By: "alice", At: at(5)}}
			},
		},
		{
			name:  "set_source without a source removes the record",
			setup: []Command{initC1, SetSource{Cluster: "c1", Instance: "db3", Source: "db2", At: at(5)}},
			cmd:   SetSource{Cluster: "c1", Instance: "db3", At: at(6)},
			want:  func(s *State) { s.Clusters["c1"].Sources = nil },
		},
		{
			name:    "set_source removing a record that does not exist",
			setup:   []Command{initC1},
			cmd:     SetSource{Cluster: "c1", Instance: "db3", At: at(6)},
			wantErr: ErrNotFound,
		},
		{
			name:    "set_source under the primary needs no record",
			setup:   []Command{initC1},
			cmd:     SetSource{Cluster: "c1", Instance: "db3", Source: "db1", At: at(5)},
			wantErr: ErrConflict,
		},
		{
			name:    "set_source of the primary is refused",
			setup:   []Command{initC1},
			cmd:     SetSource{Cluster: "c1", Instance: "db1", Source: "db2", At: at(5)},
			wantErr: ErrConflict,
		},
		{
			name:    "set_source making a cycle is refused",
			setup:   []Command{initC1, SetSource{Cluster: "c1", Instance: "db3", Source: "db2", At: at(5)}, SetSource{Cluster: "c1", Instance: "db4", Source: "db3", At: at(5)}},
			cmd:     SetSource{Cluster: "c1", Instance: "db2", Source: "db4", At: at(6)},
			wantErr: ErrConflict,
		},
		{
			name:    "set_source of an instance under itself is invalid",
			setup:   []Command{initC1},
			cmd:     SetSource{Cluster: "c1", Instance: "db3", Source: "db3", At: at(5)},
			wantErr: ErrInvalidCommand,
		},
		{
			name: "set_member adds an agent",
			cmd:  SetMember{Member: Member{ID: "a1", RaftAddr: "10.0.0.1:7000", APIAddr: "10.0.0.1:8080", Instance: "db1"}},
			want: func(s *State) {
				s.Members = map[string]Member{"a1": {ID: "a1", RaftAddr: "10.0.0.1:7000", APIAddr: "10.0.0.1:8080", Instance: "db1"}}
			},
		},
		{
			name:  "set_member replaces an agent's record",
			setup: []Command{SetMember{Member: Member{ID: "a1", RaftAddr: "10.0.0.1:7000"}}},
			cmd:   SetMember{Member: Member{ID: "a1", RaftAddr: "10.0.0.1:7001", APIAddr: "10.0.0.1:8080"}},
			want: func(s *State) {
				s.Members["a1"] = Member{ID: "a1", RaftAddr: "10.0.0.1:7001", APIAddr: "10.0.0.1:8080"}
			},
		},
		{
			name:    "set_member with another agent's raft address conflicts",
			setup:   []Command{SetMember{Member: Member{ID: "a1", RaftAddr: "10.0.0.1:7000"}}},
			cmd:     SetMember{Member: Member{ID: "a2", RaftAddr: "10.0.0.1:7000"}},
			wantErr: ErrConflict,
		},
		{
			name:    "set_member with another agent's instance conflicts",
			setup:   []Command{SetMember{Member: Member{ID: "a1", RaftAddr: "10.0.0.1:7000", Instance: "db1"}}},
			cmd:     SetMember{Member: Member{ID: "a2", RaftAddr: "10.0.0.2:7000", Instance: "db1"}},
			wantErr: ErrConflict,
		},
		{
			name:    "set_member without a raft address is invalid",
			cmd:     SetMember{Member: Member{ID: "a1"}},
			wantErr: ErrInvalidCommand,
		},
		{
			name:  "remove_member deletes the last record",
			setup: []Command{SetMember{Member: Member{ID: "a1", RaftAddr: "10.0.0.1:7000"}}},
			cmd:   RemoveMember{ID: "a1"},
			want:  func(s *State) { s.Members = nil },
		},
		{
			name:    "remove_member of an unknown agent",
			cmd:     RemoveMember{ID: "a9"},
			wantErr: ErrNotFound,
		},
		{
			name:  "set_candidate records the instance about to be promoted",
			setup: []Command{initC1, beginOp1},
			cmd:   setCand1,
			want:  func(s *State) { s.Clusters["c1"].Operation.Candidate = "db2" },
		},
		{
			name:    "set_candidate of another operation conflicts",
			setup:   []Command{initC1, beginOp1},
			cmd:     SetCandidate{Cluster: "c1", OperationID: "op9", Instance: "db2"},
			wantErr: ErrConflict,
		},
		{
			name:    "set_candidate of an operation that changes no primary conflicts",
			setup:   []Command{initC1, BeginOperation{Cluster: "c1", OperationID: "rj", Kind: KindRejoin, ExpectEpoch: 1, Target: "db0", At: at(3)}},
			cmd:     SetCandidate{Cluster: "c1", OperationID: "rj", Instance: "db0"},
			wantErr: ErrConflict,
		},
		{
			// Issue 9, defect 1: a promoted but uncommitted candidate must
			// stay visible to the next leader.
			name:  "an operation aborted after set_candidate leaves the candidate uncommitted",
			setup: []Command{initC1, beginOp1, setCand1},
			cmd:   AbortOperation{Cluster: "c1", OperationID: "op1", Reason: "leader lost", At: at(20)},
			want: func(s *State) {
				c := s.Clusters["c1"]
				c.Operation = nil
				c.Uncommitted = map[string]UncommittedPromotion{"db2": {OperationID: "op1", At: at(20)}}
				c.History = []HistoryEntry{{ID: "op1", Kind: KindFailover, Trigger: "primary dead", Automatic: true, StartedAt: at(10), EndedAt: at(20),
					OldPrimary: "db1", EpochBefore: 1, EpochAfter: 1, Result: ResultAborted, Reason: "leader lost", Duration: 10 * time.Second}}
			},
		},
		{
			// Issue 9, defect 3: a fallback to asynchronous commits is the
			// leader's decision, in Raft and in the history.
			name: "set_semi_sync_degraded records the fallback decision",
			setup: []Command{initC1, BeginOperation{Cluster: "c1", OperationID: "fb", Kind: KindSemiSyncFallback, ExpectEpoch: 1,
				Trigger: "no semi-sync replica for 30s", Automatic: true, At: at(3)}},
			cmd: SetSemiSyncDegraded{Cluster: "c1", OperationID: "fb", Degraded: true, Reason: "no semi-sync replica for 30s", At: at(4)},
			want: func(s *State) {
				s.Clusters["c1"].SemiSyncDegraded = &SemiSyncDegradation{OperationID: "fb", Since: at(4), Reason: "no semi-sync replica for 30s"}
			},
		},
		{
			name:    "set_semi_sync_degraded outside a fallback operation conflicts",
			setup:   []Command{initC1, beginOp1},
			cmd:     SetSemiSyncDegraded{Cluster: "c1", OperationID: "op1", Degraded: true, At: at(4)},
			wantErr: ErrConflict,
		},
		{
			name: "a restore clears the degradation",
			setup: []Command{initC1, BeginOperation{Cluster: "c1", OperationID: "fb", Kind: KindSemiSyncFallback, ExpectEpoch: 1, Automatic: true, At: at(3)},
				SetSemiSyncDegraded{Cluster: "c1", OperationID: "fb", Degraded: true, At: at(4)},
				FinishOperation{Cluster: "c1", OperationID: "fb", Result: ResultSuccess, At: at(5)},
				BeginOperation{Cluster: "c1", OperationID: "rs", Kind: KindSemiSyncRestore, ExpectEpoch: 1, Automatic: true, At: at(6)}},
			cmd:  SetSemiSyncDegraded{Cluster: "c1", OperationID: "rs", At: at(7)},
			want: func(s *State) { s.Clusters["c1"].SemiSyncDegraded = nil },
		},
		{
			name: "a failover's commit clears every uncommitted promotion",
			setup: []Command{initC1, beginOp1, setCand1, AbortOperation{Cluster: "c1", OperationID: "op1", At: at(20)},
				BeginOperation{Cluster: "c1", OperationID: "op2", Kind: KindFailover, ExpectEpoch: 1, At: at(21)},
				SetCandidate{Cluster: "c1", OperationID: "op2", Instance: "db3"}},
			cmd: CommitPrimary{Cluster: "c1", OperationID: "op2", NewPrimary: "db3", ExpectEpoch: 1, At: at(22)},
			want: func(s *State) {
				c := s.Clusters["c1"]
				c.Uncommitted = nil
				c.Primary, c.Epoch = "db3", 2
				c.Operation.Committed, c.Operation.CommittedAt, c.Operation.NewPrimary, c.Operation.CommitEpoch = true, at(22), "db3", 2
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := build(t, tt.setup...)
			before := s.Clone()
			got, err := applyCommand(&s, tt.cmd)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error = %v, want %v", err, tt.wantErr)
				}
				if got != nil {
					t.Errorf("rejected command returned a cluster: %+v", got)
				}
				if !reflect.DeepEqual(s, before) {
					t.Fatalf("rejected command changed the state:\n%s", diffState(before, s))
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			want := before.Clone()
			if tt.want != nil {
				tt.want(&want)
			}
			if !reflect.DeepEqual(s, want) {
				t.Fatalf("state after %s:\n%s", tt.cmd.Name(), diffState(want, s))
			}
			if name := clusterOf(tt.cmd); name != "" && !reflect.DeepEqual(got, s.Clusters[name]) {
				t.Errorf("returned cluster differs from the state's:\n%s", diffJSON(s.Clusters[name], got))
			}
		})
	}
}

func TestStaleEpochErrorCarriesEpochs(t *testing.T) {
	s := build(t, initC1)
	_, err := applyCommand(&s, BeginOperation{Cluster: "c1", OperationID: "x", Kind: KindFailover, ExpectEpoch: 5, At: at(1)})
	var se *StaleEpochError
	if !errors.As(err, &se) || se.Cluster != "c1" || se.Expected != 5 || se.Current != 1 {
		t.Fatalf("error = %#v, want a StaleEpochError{c1, 5, 1}", err)
	}
}

func TestHistoryIsBounded(t *testing.T) {
	s := build(t, initC1)
	for i := range HistoryLimit + 25 {
		id := fmt.Sprintf("op%03d", i)
		for _, c := range []Command{
			BeginOperation{Cluster: "c1", OperationID: id, Kind: KindSwitchover, ExpectEpoch: uint64(i + 1), At: at(i)},
			CommitPrimary{Cluster: "c1", OperationID: id, NewPrimary: fmt.Sprintf("db%d", i%2+10), ExpectEpoch: uint64(i + 1), At: at(i)},
			FinishOperation{Cluster: "c1", OperationID: id, Result: ResultSuccess, At: at(i)},
		} {
			if _, err := applyCommand(&s, c); err != nil {
				t.Fatalf("op %d %s: %v", i, c.Name(), err)
			}
		}
	}
	h := s.Clusters["c1"].History
	if len(h) != HistoryLimit {
		t.Fatalf("history holds %d entries, want %d", len(h), HistoryLimit)
	}
	if h[0].ID != "op025" || h[len(h)-1].ID != fmt.Sprintf("op%03d", HistoryLimit+24) {
		t.Errorf("history spans %s..%s, want the newest %d", h[0].ID, h[len(h)-1].ID, HistoryLimit)
	}
	if got := s.Clusters["c1"].Epoch; got != HistoryLimit+26 {
		t.Errorf("epoch = %d, want %d (one step per commit)", got, HistoryLimit+26)
	}
}

func repeat(c Command, n int) []Command {
	out := make([]Command, n)
	for i := range out {
		out[i] = c
	}
	return out
}

// richState exercises every part of the state.
func richState(t testing.TB) State {
	return build(t,
		initC1,
		InitCluster{Cluster: "c2", At: at(1)},
		beginOp1, stepOp1, commitOp1,
		FinishOperation{Cluster: "c1", OperationID: "op1", Result: ResultSuccess, Reason: "ok ✓", At: at(20)},
		AckOperation{Cluster: "c1", OperationID: "op1", By: "alice", Comment: "host replaced", At: at(21)},
		BeginOperation{Cluster: "c1", OperationID: "op2", Kind: KindSwitchover, ExpectEpoch: 2, Target: "db3", Trigger: "regentctl switchover by alice", At: at(30)},
		RecordStep{Cluster: "c1", OperationID: "op2", Step: Step{Name: "set read_only", Start: at(31), Duration: 3 * time.Millisecond, Result: StepOK}},
		SetPaused{Cluster: "c2", Paused: true, By: "bob", Reason: "maintenance", At: at(40)},
		SetAntiFlap{Cluster: "c1", Until: time.Date(2025, 3, 4, 6, 0, 0, 123456789, time.UTC)},
		SetPromotionRule{Cluster: "c1", Instance: "db3", Rule: PromotionPrefer},
		SetPromotionRule{Cluster: "c1", Instance: "db4", Rule: PromotionMustNot},
		SetQuarantine{Cluster: "c2", Instance: "db7", Reason: "errant GTIDs", By: "regent", At: at(50)},
		SetMaintenance{Cluster: "c1", Instance: "db4", On: true, By: "carol", Reason: "disk swap", At: at(51), Until: at(52)},
		SetMember{Member: Member{ID: "a1", RaftAddr: "10.0.0.1:7000", APIAddr: "10.0.0.1:8080", Instance: "db1"}},
		SetMember{Member: Member{ID: "a2", RaftAddr: "10.0.0.2:7000"}},
		DefineCluster{Cluster: "c3", Definition: "name: c3\ninstances:\n  - {name: x1, address: 10.0.1.1:3306}\n", By: "alice", At: at(53)},
	)
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Cancel() error { m.cancelled = true; return nil }
func (m *memSink) Close() error  { return nil }

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	f := newFSM(slog.New(slog.DiscardHandler))
	want := richState(t)
	f.state, f.index = want.Clone(), 42

	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// The snapshot is a copy: applying after taking it must not leak in.
	f.Apply(&raft.Log{Index: 43, Type: raft.LogCommand, Data: mustEncode(t, SetAntiFlap{Cluster: "c1"})})
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	g := newFSM(slog.New(slog.DiscardHandler))
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	got, idx := g.current()
	if idx != 42 {
		t.Errorf("restored index = %d, want 42", idx)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("restored state differs:\n%s", diffState(want, got))
	}
	// And restoring replaces, not merges.
	if err := g.Restore(io.NopCloser(strings.NewReader(`{"version":1,"index":1,"state":{"clusters":null,"members":null}}`))); err != nil {
		t.Fatal(err)
	}
	if got, _ := g.current(); !reflect.DeepEqual(got, State{}) {
		t.Errorf("restore of an empty snapshot left %+v", got)
	}
}

// Snapshots written before the operation kinds were shared with the
// failover package spell three of them with underscores; they still read,
// as today's kinds.
func TestRestoreReadsLegacyKindSpellings(t *testing.T) {
	f := newFSM(slog.New(slog.DiscardHandler))
	f.state = build(t,
		initC1,
		BeginOperation{Cluster: "c1", OperationID: "op1", Kind: KindForcedFailover, ExpectEpoch: 1, Target: "db2", At: at(10)},
		FinishOperation{Cluster: "c1", OperationID: "op1", Result: ResultFailed, Reason: "x", At: at(11)},
		BeginOperation{Cluster: "c1", OperationID: "op2", Kind: KindSemiSyncFallback, ExpectEpoch: 1, At: at(20)},
		FinishOperation{Cluster: "c1", OperationID: "op2", Result: ResultSuccess, At: at(21)},
		BeginOperation{Cluster: "c1", OperationID: "op3", Kind: KindSemiSyncRestore, ExpectEpoch: 1, At: at(30)},
	)
	want := f.state.Clone()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	legacy := sink.String()
	for now, old := range map[OpKind]string{KindForcedFailover: "forced_failover", KindSemiSyncFallback: "semi_sync_fallback", KindSemiSyncRestore: "semi_sync_restore"} {
		if !strings.Contains(legacy, `"`+string(now)+`"`) {
			t.Fatalf("the snapshot does not hold kind %s:\n%s", now, legacy)
		}
		legacy = strings.ReplaceAll(legacy, `"`+string(now)+`"`, `"`+old+`"`)
	}
	g := newFSM(slog.New(slog.DiscardHandler))
	if err := g.Restore(io.NopCloser(strings.NewReader(legacy))); err != nil {
		t.Fatal(err)
	}
	if got, _ := g.current(); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored state differs:\n%s", diffState(want, got))
	}
}

func TestRestoreRejectsBadSnapshots(t *testing.T) {
	for name, data := range map[string]string{
		"garbage":         "not json",
		"unknown version": `{"version":2,"index":1,"state":{}}`,
		"truncated":       `{"version":1,"index":1,"state":{"clusters":{`,
	} {
		t.Run(name, func(t *testing.T) {
			f := newFSM(slog.New(slog.DiscardHandler))
			f.state = richState(t)
			before := f.state.Clone()
			if err := f.Restore(io.NopCloser(strings.NewReader(data))); err == nil {
				t.Fatal("restore succeeded")
			}
			if !reflect.DeepEqual(f.state, before) {
				t.Error("failed restore changed the state")
			}
		})
	}
}

func TestFSMApplyRejectsUndecodableEntries(t *testing.T) {
	f := newFSM(slog.New(slog.DiscardHandler))
	f.state = richState(t)
	before := f.state.Clone()
	good := mustEncode(t, SetAntiFlap{Cluster: "c1", Until: at(99)})
	for name, data := range map[string][]byte{
		"empty":     nil,
		"truncated": good[:len(good)-1],
		"corrupt":   append(append([]byte{}, good[:3]...), append([]byte{good[3] ^ 0x40}, good[4:]...)...),
		"version 9": append([]byte{9}, good[1:]...),
	} {
		t.Run(name, func(t *testing.T) {
			resp, ok := f.Apply(&raft.Log{Index: 7, Type: raft.LogCommand, Data: data}).(*applyResponse)
			if !ok || !errors.Is(resp.err, ErrInvalidCommand) {
				t.Fatalf("response = %#v, want ErrInvalidCommand", resp)
			}
			if !reflect.DeepEqual(f.state, before) {
				t.Fatal("undecodable entry changed the state")
			}
		})
	}
	if r := f.Apply(&raft.Log{Index: 8, Type: raft.LogNoop}); r != nil {
		t.Errorf("non-command entry answered %v", r)
	}
	resp := f.Apply(&raft.Log{Index: 9, Type: raft.LogCommand, Data: good}).(*applyResponse)
	if resp.err != nil || resp.cluster == nil || !resp.cluster.AntiFlapUntil.Equal(at(99)) {
		t.Fatalf("good entry: %+v", resp)
	}
}

func TestInstanceOwner(t *testing.T) {
	s := richState(t)
	if m, ok := s.InstanceOwner("db1"); !ok || m.ID != "a1" {
		t.Errorf("owner of db1 = %+v, %v", m, ok)
	}
	if _, ok := s.InstanceOwner(""); ok {
		t.Error("empty instance has an owner")
	}
	if _, ok := s.InstanceOwner("db9"); ok {
		t.Error("db9 has an owner")
	}
}

func TestTruncateDetail(t *testing.T) {
	long := strings.Repeat("é", MaxDetailLen) // 2 bytes each
	got := TruncateDetail(long)
	if len(got) > MaxDetailLen || !strings.HasSuffix(got, "[truncated]") {
		t.Fatalf("len %d, suffix %q", len(got), got[len(got)-20:])
	}
	if _, err := EncodeCommand(RecordStep{Cluster: "c", OperationID: "o", Step: Step{Name: "n", Start: at(0), Result: StepOK, Detail: got}}); err != nil {
		t.Fatalf("truncated detail does not encode: %v", err)
	}
	if TruncateDetail("short") != "short" {
		t.Error("short detail changed")
	}
}

func mustEncode(t testing.TB, c Command) []byte {
	t.Helper()
	b, err := EncodeCommand(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// diffState and diffJSON show a line diff of the JSON forms.
func diffState(want, got State) string { return diffJSON(want, got) }

func diffJSON(want, got any) string {
	w, _ := json.MarshalIndent(want, "", "  ")
	g, _ := json.MarshalIndent(got, "", "  ")
	wl, gl := strings.Split(string(w), "\n"), strings.Split(string(g), "\n")
	var b strings.Builder
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var a, c string
		if i < len(wl) {
			a = wl[i]
		}
		if i < len(gl) {
			c = gl[i]
		}
		if a != c {
			fmt.Fprintf(&b, "line %d:\n  want %s\n  got  %s\n", i+1, a, c)
		}
	}
	if b.Len() == 0 {
		return "(JSON forms equal; difference in nil/empty or time representation)"
	}
	return b.String()
}

// Copies of a cluster share its history with the state machine
// (Cluster.Clone): neither an acknowledgement nor new entries applied after
// the copy may reach it, and an append to the copy must not reach the state.
func TestCopiesKeepTheirHistory(t *testing.T) {
	f := newFSM(slog.New(slog.DiscardHandler))
	f.state = build(t, initC1, beginOp1, stepOp1, commitOp1,
		FinishOperation{Cluster: "c1", OperationID: "op1", Result: ResultSuccess, At: at(20)})
	cp, _, ok := f.cluster("c1")
	if !ok || len(cp.History) != 1 {
		t.Fatalf("copy of c1: ok %v, history %+v", ok, cp.History)
	}
	for _, c := range []Command{
		AckOperation{Cluster: "c1", OperationID: "op1", By: "alice", At: at(21)},
		BeginOperation{Cluster: "c1", OperationID: "op2", Kind: KindSwitchover, ExpectEpoch: 2, At: at(30)},
		FinishOperation{Cluster: "c1", OperationID: "op2", Result: ResultAborted, At: at(31)},
	} {
		if _, err := applyCommand(&f.state, c); err != nil {
			t.Fatalf("%s: %v", c.Name(), err)
		}
	}
	if len(cp.History) != 1 || cp.History[0].Ack != nil {
		t.Fatalf("the copy's history changed after it was taken: %+v", cp.History)
	}
	now := f.state.Clusters["c1"].History
	if len(now) != 2 || now[0].Ack == nil || now[0].Ack.By != "alice" {
		t.Fatalf("the state's history: %+v", now)
	}
	cp.History = append(cp.History, HistoryEntry{ID: "mine"})
	if _, err := applyCommand(&f.state, BeginOperation{Cluster: "c1", OperationID: "op3", Kind: KindSwitchover, ExpectEpoch: 2, At: at(40)}); err != nil {
		t.Fatal(err)
	}
	if _, err := applyCommand(&f.state, FinishOperation{Cluster: "c1", OperationID: "op3", Result: ResultAborted, At: at(41)}); err != nil {
		t.Fatal(err)
	}
	if h := f.state.Clusters["c1"].History; len(h) != 3 || h[1].ID != "op2" || h[2].ID != "op3" || cp.History[1].ID != "mine" {
		t.Fatalf("an append to the copy reached the state, or the state's reached the copy: state %v, copy %v", ids(h), ids(cp.History))
	}
}

func ids(h []HistoryEntry) []string {
	var out []string
	for _, e := range h {
		out = append(out, e.ID)
	}
	return out
}

// What the agents read on every round (one cluster, the definitions, the
// member ids) costs the same whatever the number of other clusters and the
// length of their histories (issue 15): counted in allocations, which do not
// depend on the machine's speed.
func TestPartialReadsDoNotGrowWithTheFleet(t *testing.T) {
	withFleet := func(n int) *fsm {
		f := newFSM(slog.New(slog.DiscardHandler))
		f.state = build(t, initC1, SetMember{Member: Member{ID: "a1", RaftAddr: "10.0.0.1:7000"}})
		for i := range HistoryLimit {
			id := fmt.Sprintf("op%03d", i)
			for _, c := range []Command{
				BeginOperation{Cluster: "c1", OperationID: id, Kind: KindSwitchover, ExpectEpoch: 1, At: at(i)},
				RecordStep{Cluster: "c1", OperationID: id, Step: Step{Name: "fence", Start: at(i), Result: StepOK}},
				FinishOperation{Cluster: "c1", OperationID: id, Result: ResultAborted, At: at(i)},
			} {
				if _, err := applyCommand(&f.state, c); err != nil {
					t.Fatalf("%s: %v", c.Name(), err)
				}
			}
		}
		for i := range n {
			f.state.Clusters[fmt.Sprintf("other%04d", i)] = f.state.Clusters["c1"].Clone()
		}
		return f
	}
	small, large := withFleet(1), withFleet(1000)
	for name, read := range map[string]func(f *fsm){
		"cluster":    func(f *fsm) { _, _, _ = f.cluster("c1") },
		"defined":    func(f *fsm) { _ = f.defined() },
		"member ids": func(f *fsm) { _ = f.memberIDs() },
	} {
		a := testing.AllocsPerRun(20, func() { read(small) })
		b := testing.AllocsPerRun(20, func() { read(large) })
		if a != b || b > 10 {
			t.Errorf("%s: %v allocations with 1 other cluster, %v with 1,000 (each with %d history entries): want the same, and few", name, a, b, HistoryLimit)
		}
	}
	if got := len(large.state.Clusters["c1"].History); got != HistoryLimit {
		t.Fatalf("the fleet's clusters hold %d history entries, want %d", got, HistoryLimit)
	}
}
