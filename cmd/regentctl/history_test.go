package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regentdb/regent/api"
)

// goldenHistory is a history as an agent of a busy cluster returns it:
// long operation ids, an aborted run with a long reason, a switchover whose
// window says what it ran up to, steps with GTID sets in their details, a
// change of settings (edit-config).
func goldenHistory() api.History {
	t0 := time.Date(2026, 12, 6, 22, 49, 46, 587_000_000, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	end := func(d time.Duration) *time.Time { e := t0.Add(d); return &e }
	dur := func(d time.Duration) *api.Duration { v := api.Duration(d); return &v }
	return api.History{Cluster: "main", Operations: []api.Operation{
		{ID: "config-2", Cluster: "main", Kind: "edit-config", Trigger: "regentctl cluster edit-config by alice",
			Started: at(31 * time.Minute), Ended: end(31 * time.Minute), EpochBefore: 15, EpochAfter: 15, Result: api.ResultSuccess,
			Reason: "anti_flap_period: 5m0s → 10m0s; failure_timeout: 2s → 3s", Steps: []api.Step{}},
		{ID: "20261206-231657-91d4d75eaaca", Cluster: "main", Kind: api.OpSwitchover, Trigger: "manual by admin", Target: "db3",
			Started: at(27 * time.Minute), Ended: end(27*time.Minute + 1162*time.Millisecond), OldPrimary: "db2", NewPrimary: "db3",
			EpochBefore: 14, EpochAfter: 15, Result: api.ResultSuccess, WriteBlocked: dur(91 * time.Millisecond),
			WriteBlockedUntil: "the first commit on db3, observed 51ms after the route (every pushed balancer confirmed the route: 40ms)",
			Steps: []api.Step{
				{Name: "stop-io-threads db1", Started: at(27*time.Minute + 15*time.Millisecond), Duration: api.Duration(4 * time.Millisecond), Result: api.ResultSuccess, Detail: "stopped on db1"},
				{Name: "repoint db1", Started: at(27*time.Minute + 22*time.Millisecond), Duration: api.Duration(31 * time.Millisecond), Result: api.ResultSuccess,
					Detail: "db3 holds 1007e19d-f1cb-11f1-bac7-ea5c9bf67df9:1-6471,1098c353-f1cb-11f1-8f7d-5ebf1291faae:1-7815; db1 replicates from db3"},
				{Name: "fence-old-primary db2", Started: at(27*time.Minute + 54*time.Millisecond), Duration: api.Duration(3 * time.Millisecond), Result: api.ResultSuccess, Detail: "read_only=ON, client connections killed"},
				{Name: "promote db3", Started: at(27*time.Minute + 73*time.Millisecond), Duration: api.Duration(16 * time.Millisecond), Result: api.ResultSuccess, Detail: "db3 is writable"},
			}},
		{ID: "20261206-224946-70241c0c35ca", Cluster: "main", Kind: api.OpFailover, Trigger: "PrimaryIsolated",
			Started: t0, Ended: end(240 * time.Millisecond), OldPrimary: "db1", EpochBefore: 1, Result: api.ResultAborted,
			Reason: "abandoned: no run on the leader db3 owns it (its leader lost leadership, its intent committed after its run gave up, or its finish failed)",
			Steps:  []api.Step{{Name: "stop-io-threads db2,db3", Started: at(28 * time.Millisecond), Duration: api.Duration(9 * time.Millisecond), Result: api.ResultSuccess, Detail: "stopped on db2, db3"}}},
		{ID: "20261206-224700-0a1b2c3d4e5f", Cluster: "main", Kind: api.OpForcedFailover, Trigger: "manual by admin",
			Started: at(-166 * time.Second), Ended: end(-165 * time.Second), OldPrimary: "db3", NewPrimary: "db1",
			EpochBefore: 0, EpochAfter: 1, Result: api.ResultSuccess, WriteBlocked: dur(1300 * time.Millisecond),
			Ack: &api.Ack{By: "alice", Comment: "db3's host lost its disk; db3 re-cloned and rejoined by hand", At: at(-100 * time.Second)}},
	}}
}

// The list and one operation whole, at 80 and 200 columns, against the
// files in testdata (REGENT_UPDATE_GOLDEN=1 writes them): one line per
// operation, the columns that do not fit left out and said so, long texts
// wrapped under their label.
func TestHistoryGolden(t *testing.T) {
	now := time.Date(2026, 12, 6, 23, 30, 0, 0, time.UTC)
	h := goldenHistory()
	for _, width := range []int{80, 200} {
		var list, show bytes.Buffer
		renderHistory(&list, h, width, now)
		for _, op := range h.Operations {
			renderOperation(&show, op, width, now)
		}
		for name, got := range map[string]string{"history": list.String(), "history-show": show.String()} {
			matchGolden(t, name, width, got)
		}
	}
}

// matchGolden compares what a command printed at width columns with
// testdata/NAME-WIDTH.golden (REGENT_UPDATE_GOLDEN=1 writes it), and fails
// for any line wider than width.
func matchGolden(t *testing.T, name string, width int, got string) {
	t.Helper()
	file := filepath.Join("testdata", name+"-"+strconv.Itoa(width)+".golden")
	if os.Getenv("REGENT_UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (REGENT_UPDATE_GOLDEN=1 writes it)", err)
	}
	if got != string(want) {
		t.Errorf("%s at %d columns:\n%s\nwant:\n%s", name, width, got, want)
	}
	for i, l := range strings.Split(strings.TrimRight(got, "\n"), "\n") {
		if n := len([]rune(l)); n > width {
			t.Errorf("%s at %d columns, line %d is %d wide: %q", name, width, i+1, n, l)
		}
	}
}

func TestWrap(t *testing.T) {
	cases := []struct {
		text  string
		width int
		want  []string
	}{
		{"a b c", 20, []string{"a b c"}},
		{"aaa bbb ccc", 7, []string{"aaa bbb", "ccc"}},
		{"0123456789abc x", 5, []string{"01234", "56789", "abc x"}},
		{"one\ntwo", 20, []string{"one", "two"}},
		{"", 10, nil},
	}
	for _, c := range cases {
		if got := wrap(c.text, c.width); strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("wrap(%q, %d) = %q, want %q", c.text, c.width, got, c.want)
		}
	}
}

// history show takes an id whole or any unique part of it (history prints
// the end of long ids).
func TestHistoryShowFindsAnOperationByPartOfItsID(t *testing.T) {
	_, url := agentServer(t)
	for _, id := range []string{"op-0006", "0006"} {
		r := ctl(t, env(url), "history", "show", id)
		if r.code != exitOK || !strings.Contains(r.stdout, "failover op-0006 of cluster main: success") || !strings.Contains(r.stdout, "fence-old-primary") {
			t.Fatalf("history show %s: exit %d\n%s%s", id, r.code, r.stdout, r.stderr)
		}
	}
	r := ctl(t, env(url), "history", "show", "nope")
	if r.code == exitOK || !strings.Contains(r.stderr, "nope") {
		t.Fatalf("history show nope: exit %d, stderr %q", r.code, r.stderr)
	}
}
