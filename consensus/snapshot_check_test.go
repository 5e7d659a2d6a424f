package consensus

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// snapshotJSON is a snapshot file holding state, as Persist writes it.
func snapshotJSON(t testing.TB, st State) []byte {
	t.Helper()
	var sink memSink
	if err := (&fsmSnapshot{file: snapshotFile{Version: snapshotVersion, Index: 7, State: st}}).Persist(&sink); err != nil {
		t.Fatal(err)
	}
	return sink.Bytes()
}

// TestRestoreRefusesSnapshotsThatBreakTheRules: a snapshot replaces the
// whole state, and a leader sends one to any follower that lags; one that
// holds what no valid command could have built is refused and the state
// stays as it was. Issue 11: {"clusters":{"main":null}} was restored, and
// the first read of cluster main, or the next command for it, crashed the
// agent on every restart.
func TestRestoreRefusesSnapshotsThatBreakTheRules(t *testing.T) {
	edit := func(change func(s *State)) string {
		s := richState(t)
		change(&s)
		return string(snapshotJSON(t, s))
	}
	cases := []struct {
		name string
		data string
		want string
	}{
		{"a null cluster (issue 11)", `{"version":1,"index":5,"state":{"clusters":{"main":null}}}`, `cluster "main": null`},
		{"a cluster under another name", edit(func(s *State) { s.Clusters["c1"].Name = "c2" }), `holds the state of cluster "c2"`},
		{"epoch 0", edit(func(s *State) { s.Clusters["c2"].Epoch = 0 }), "epoch 0"},
		{"no creation time", edit(func(s *State) { s.Clusters["c2"].CreatedAt = time.Time{} }), "must be set"},
		{"a time out of the wire format's range", edit(func(s *State) { s.Clusters["c2"].CreatedAt = at(0).AddDate(-2000, 0, 0) }), "out of range"},
		{"a control character in the primary", edit(func(s *State) { s.Clusters["c1"].Primary = "db1\n" }), "control character"},
		{"an unknown operation kind", edit(func(s *State) { s.Clusters["c1"].Operation.Kind = "takeover" }), "unknown operation kind"},
		{"too many steps", edit(func(s *State) {
			op := s.Clusters["c1"].Operation
			for len(op.Steps) <= MaxSteps {
				op.Steps = append(op.Steps, op.Steps[0])
			}
		}), "steps, more than"},
		{"a step with an unknown result", edit(func(s *State) { s.Clusters["c1"].Operation.Steps[0].Result = "maybe" }), "unknown step result"},
		{"a history entry with an unknown result", edit(func(s *State) { s.Clusters["c1"].History[0].Result = "won" }), "unknown result"},
		{"an unknown promotion rule", edit(func(s *State) { s.Clusters["c1"].PromotionRules["db3"] = "always" }), "unknown promotion rule"},
		{"a defined cluster without its definition", edit(func(s *State) { s.Defined["c3"] = Definition{At: at(1)} }), "definition: must not be empty"},
		{"a paused cluster with no time", edit(func(s *State) { s.Clusters["c2"].PausedAt = time.Time{} }), "must be set"},
		{"a member under another id", edit(func(s *State) { m := s.Members["a2"]; m.ID = "a9"; s.Members["a2"] = m }), `member "a2" holds the record of "a9"`},
		{"two members on one raft address", edit(func(s *State) { m := s.Members["a2"]; m.RaftAddr = s.Members["a1"].RaftAddr; s.Members["a2"] = m }), "raft address"},
		{"a member without a raft address", edit(func(s *State) { m := s.Members["a2"]; m.RaftAddr = ""; s.Members["a2"] = m }), "raft_addr"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFSM(slog.New(slog.DiscardHandler))
			f.state, f.index = richState(t), 3
			before := f.state.Clone()
			err := f.Restore(io.NopCloser(strings.NewReader(tc.data)))
			if !errors.Is(err, ErrInvalidSnapshot) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Restore = %v, want ErrInvalidSnapshot mentioning %q", err, tc.want)
			}
			if got, idx := f.current(); !reflect.DeepEqual(got, before) || idx != 3 {
				t.Fatalf("a refused snapshot changed the state (index %d):\n%s", idx, diffState(before, got))
			}
			// The agent goes on: reads and commands work.
			if _, ok := f.state.Cluster("c1"); !ok {
				t.Fatal("cluster c1 lost")
			}
			if r := f.Apply(&raft.Log{Index: 4, Type: raft.LogCommand, Data: mustEncode(t, SetAntiFlap{Cluster: "c1", Until: at(9)})}).(*applyResponse); r.err != nil {
				t.Fatal(r.err)
			}
		})
	}
	// And every snapshot the FSM itself writes passes.
	f := newFSM(slog.New(slog.DiscardHandler))
	if err := f.Restore(io.NopCloser(bytes.NewReader(snapshotJSON(t, richState(t))))); err != nil {
		t.Fatalf("a snapshot of a valid state was refused: %v", err)
	}
}

// FuzzRestoreSnapshot: whatever a snapshot holds, Restore never panics;
// either it refuses the snapshot and leaves the state alone, or the state
// it restores can be read, changed by commands and snapshotted again
// without a panic, and the new snapshot restores to the same state.
func FuzzRestoreSnapshot(f *testing.F) {
	base := richState(f)
	f.Add(snapshotJSON(f, base))
	f.Add(snapshotJSON(f, State{}))
	f.Add([]byte(`{"version":1,"index":5,"state":{"clusters":{"main":null}}}`))
	f.Add([]byte(`{"version":1,"index":1,"state":{"clusters":{"main":{"name":"main","epoch":1,"created_at":"2025-01-01T00:00:00Z","operation":{"id":"x","kind":"failover","epoch_before":1,"started_at":"2025-01-01T00:00:00Z","steps":[null]}}}}}`))
	f.Add([]byte(`{"version":1,"index":1,"state":{"members":{"a":{"id":"a","raft_addr":"h:1"},"b":{"id":"b","raft_addr":"h:1"}}}}`))
	f.Add([]byte(`{"version":1,"state":{"clusters":{"":{"name":"","epoch":18446744073709551615}}}}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fsm := newFSM(slog.New(slog.DiscardHandler))
		fsm.state, fsm.index = base.Clone(), 3
		if err := fsm.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
			if got, idx := fsm.current(); !reflect.DeepEqual(got, base) || idx != 3 {
				t.Fatalf("a refused snapshot (%v) changed the state", err)
			}
			return
		}
		st, _ := fsm.current()
		for _, name := range sortedKeys(st.Clusters) {
			if _, ok := st.Cluster(name); !ok {
				t.Fatalf("cluster %q listed but not readable", name)
			}
		}
		st.ClusterList()
		for _, m := range st.MemberList() {
			st.InstanceOwner(m.Instance)
		}
		for i, cmd := range everyCommand() {
			fsm.Apply(&raft.Log{Index: uint64(10 + i), Type: raft.LogCommand, Data: mustEncode(t, cmd)})
		}
		after, _ := fsm.current()
		again := newFSM(slog.New(slog.DiscardHandler))
		if err := again.Restore(io.NopCloser(bytes.NewReader(snapshotJSON(t, after)))); err != nil {
			t.Fatalf("the FSM's own snapshot after valid commands is refused: %v", err)
		}
		got, _ := again.current()
		a, _ := json.Marshal(after)
		b, _ := json.Marshal(got)
		if !bytes.Equal(a, b) {
			t.Fatalf("snapshot round trip differs:\n%s\n%s", a, b)
		}
	})
}
