package chaos

import (
	"strings"
	"testing"
	"time"

	"github.com/regentdb/regent/api"
)

// t0 is the start of every synthetic history.
var t0 = time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func ptr[T any](v T) *T { return &v }

// failoverOp is a successful failover from db1 to db2, committed at 2.9 s
// and ended at 3 s.
func failoverOp() api.Operation {
	return api.Operation{ID: "op-1", Kind: api.OpFailover, Started: at(2000), Ended: ptr(at(3000)),
		OldPrimary: "db1", NewPrimary: "db2", EpochBefore: 1, EpochAfter: 2, Result: api.ResultSuccess,
		Steps: []api.Step{{Name: "commit-epoch db2", Started: at(2800), Duration: api.Duration(100 * time.Millisecond), Result: api.ResultSuccess}}}
}

// clean is a history in which every promise held: writes to db1, a
// failover to db2, writes to db2; db1 quarantined holding one unacknowledged
// row sent before the failover (a queued INSERT a frozen server ran on
// waking), db3 replicating.
func clean() History {
	h := History{Flavor: "mariadb", Started: t0, Schedule: Generate(1, DefaultGen)}
	h.Attempts = []Attempt{
		{Client: "haproxy-1", ID: 1, Start: at(100), End: at(110), Target: "db1", OK: true},
		{Client: "haproxy-1", ID: 2, Start: at(1900), End: at(5000), Target: "db1", Err: "invalid connection"},
		{Client: "haproxy-1", ID: 3, Start: at(3100), End: at(3110), Target: "db2", OK: true},
		{Client: DirectClient, ID: 4, Start: at(3200), End: at(3300), Target: "db1", Err: "read-only"},
	}
	h.Samples = []Sample{
		{At: at(0), Epoch: map[string]uint64{"db1": 1, "db2": 1, "db3": 1}},
		{At: at(3050), Epoch: map[string]uint64{"db1": 1, "db2": 2, "db3": 2}},
		{At: at(4000), Epoch: map[string]uint64{"db1": 2, "db2": 2, "db3": 2}},
	}
	h.Final = Final{HealedAt: at(10000), ConvergedAt: at(12000), Primary: "db2", Epoch: 2, Routed: "db2",
		AutomaticFailover: api.AutomaticFailover{Enabled: true, Possible: true},
		Instances: []FinalInstance{
			{Name: "db1", Reachable: true, Role: api.RoleQuarantined, QuarantineReason: "errant transactions", Rows: []int64{1, 2}},
			{Name: "db2", Reachable: true, Writable: true, Role: api.RolePrimary, Rows: []int64{1, 3}},
			{Name: "db3", Reachable: true, Role: api.RoleReplica, SourceName: "db2", Rows: []int64{1, 3}},
		},
		Operations: []api.Operation{failoverOp()},
	}
	return h
}

func TestCheckerPassesACleanHistory(t *testing.T) {
	if v := Check(clean()); len(v) != 0 {
		t.Fatalf("violations in a clean history: %v", v)
	}
}

// TestCheckerFindsEachViolation feeds the checker histories with one broken
// promise each and wants exactly that check to fail, naming what broke.
func TestCheckerFindsEachViolation(t *testing.T) {
	cases := []struct {
		name    string
		check   string
		want    string // in the violation's detail
		breakIt func(h *History)
	}{
		{"an acknowledged write missing on the final primary", CheckLostWrite, "row 3 acknowledged to haproxy-1 by db2",
			func(h *History) { h.Final.Instances[1].Rows = []int64{1} }},
		{"the final primary's rows unreadable", CheckLostWrite, "db2's rows could not be read",
			func(h *History) { h.Final.Instances[1].Rows, h.Final.Instances[1].RowsErr = nil, "connection refused" }},
		{"the old primary acknowledged a write after the failover", CheckDualWriter, "db1 acknowledged row 6",
			func(h *History) {
				h.Attempts = append(h.Attempts, Attempt{Client: DirectClient, ID: 6, Start: at(3500), End: at(3510), Target: "db1", OK: true})
			}},
		{"HAProxy routed a write to the replaced primary, which took it", CheckStaleRoute, "HAProxy sent row 7 (haproxy-2",
			func(h *History) {
				h.Attempts = append(h.Attempts, Attempt{Client: "haproxy-2", ID: 7, Start: at(4000), End: at(4010), Target: "db1", OK: true})
				for i := range h.Final.Instances {
					h.Final.Instances[i].Rows = append(h.Final.Instances[i].Rows, 7) // replicated: not lost
				}
			}},
		{"an agent's epoch went down", CheckEpoch, "agent db2 reported epoch 1",
			func(h *History) {
				h.Samples = append(h.Samples, Sample{At: at(5000), Epoch: map[string]uint64{"db2": 1}})
			}},
		{"two operations committed epochs out of order", CheckEpoch, "committed epoch 2 after operation op-1",
			func(h *History) {
				op := failoverOp()
				op.ID, op.Started, op.Ended, op.OldPrimary, op.NewPrimary = "op-2", at(6000), ptr(at(7000)), "db2", "db3"
				op.Steps = nil
				h.Final.Operations = append(h.Final.Operations, op)
				h.Final.Primary = "db3" // and the rest as if it were so
				h.Final.Instances[2].Writable, h.Final.Instances[1].Writable = true, false
				h.Final.Instances[1].SourceName = "db3"
				h.Final.Routed = "db3"
			}},
		{"an operation left running", CheckStuckOperation, "switchover op-9",
			func(h *History) {
				h.Final.Operations = append(h.Final.Operations, api.Operation{ID: "op-9", Kind: api.OpSwitchover, Started: at(8000), Result: api.ResultRunning, Target: "db3"})
			}},
		{"never converged after the heal", CheckConverged, "not converged within 30s",
			func(h *History) { h.Final.ConvergedAt = time.Time{}; h.Final.Why = "db3 lags" }},
		{"converged too late", CheckConverged, "not converged within 30s",
			func(h *History) { h.Final.ConvergedAt = h.Final.HealedAt.Add(ConvergeWithin + time.Second) }},
		{"two writable instances in the kept final state", CheckConverged, "writable instances [db1 db2]",
			func(h *History) { h.Final.Instances[0].Writable = true }},
		{"a replica that neither replicates nor is quarantined", CheckConverged, "db3 neither replicates from db2",
			func(h *History) { h.Final.Instances[2].SourceName = "" }},
		{"HAProxy routing to another server", CheckConverged, `HAProxy routes writes to ""`,
			func(h *History) { h.Final.Routed = "" }},
		{"automatic failover impossible with no reason given", CheckConverged, "no blocker says why",
			func(h *History) {
				h.Final.AutomaticFailover = api.AutomaticFailover{Enabled: true, Blockers: []api.Blocker{{Kind: api.BlockNoCandidate}}}
			}},
	}
	// Faults that break a second promise too.
	also := map[string]string{"the old primary acknowledged a write after the failover": CheckLostWrite}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := clean()
			c.breakIt(&h)
			vs := Check(h)
			if len(vs) == 0 {
				t.Fatalf("no violation found")
			}
			found := false
			for _, v := range vs {
				switch {
				case v.Check == c.check && strings.Contains(v.Detail, c.want):
					found = true
				case v.Check == c.check || v.Check == also[c.name]:
				default:
					t.Errorf("unexpected violation %v", v)
				}
			}
			if !found {
				t.Errorf("no %s violation says %q: %v", c.check, c.want, vs)
			}
		})
	}
}

// TestCheckerCountsUnacknowledgedDivergentRows: a replaced primary that
// runs a statement it cannot acknowledge (lossless semi-sync fences it) and
// commits it locally when the fence kills the session holds divergent data
// for the quarantine, not a second writer; Divergent counts it. The same
// write acknowledged after the new epoch committed is a second writer.
func TestCheckerCountsUnacknowledgedDivergentRows(t *testing.T) {
	h := clean()
	h.Attempts = append(h.Attempts, Attempt{Client: DirectClient, ID: 8, Start: at(4000), End: at(4100), Target: "db1", Err: "invalid connection"})
	h.Final.Instances[0].Rows = append(h.Final.Instances[0].Rows, 8)
	if v := Check(h); len(v) != 0 {
		t.Fatalf("violations: %v", v)
	}
	// Row 2 (sent before the failover, committed on db1 as it was
	// replaced) and row 8.
	if d := Divergent(h); len(d) != 2 || d[0].ID != 2 || d[1].ID != 8 {
		t.Fatalf("divergent %v, want rows 2 and 8", d)
	}
	h.Attempts[len(h.Attempts)-1].OK = true
	for _, v := range Check(h) {
		if v.Check != CheckDualWriter && v.Check != CheckLostWrite {
			t.Errorf("unexpected violation %v", v)
		}
	}
	if v := dualWriters(h); len(v) != 1 {
		t.Fatalf("dual writers %v, want one", v)
	}
	// Acknowledged before the new epoch committed (2.9 s), by the primary of
	// the time: a lost write, not a second writer.
	h.Attempts[len(h.Attempts)-1].Start, h.Attempts[len(h.Attempts)-1].End = at(2850), at(2860)
	if v := dualWriters(h); len(v) != 0 {
		t.Fatalf("dual writers %v, want none", v)
	}
}

// TestCheckerSparesASwitchoverBack: db1 → db2 → db1, every write kept.
func TestCheckerSparesASwitchoverBack(t *testing.T) {
	h := clean()
	back := api.Operation{ID: "op-2", Kind: api.OpSwitchover, Started: at(5000), Ended: ptr(at(5200)),
		OldPrimary: "db2", NewPrimary: "db1", EpochBefore: 2, EpochAfter: 3, Result: api.ResultSuccess}
	h.Final.Operations = append(h.Final.Operations, back)
	h.Attempts = append(h.Attempts, Attempt{Client: "haproxy-1", ID: 9, Start: at(5300), End: at(5310), Target: "db1", OK: true})
	h.Final.Primary, h.Final.Epoch, h.Final.Routed = "db1", 3, "db1"
	h.Final.Instances = []FinalInstance{
		{Name: "db1", Reachable: true, Writable: true, Role: api.RolePrimary, Rows: []int64{1, 3, 9}},
		{Name: "db2", Reachable: true, Role: api.RoleReplica, SourceName: "db1", Rows: []int64{1, 3, 9}},
		{Name: "db3", Reachable: true, Role: api.RoleReplica, SourceName: "db1", Rows: []int64{1, 3, 9}},
	}
	if v := Check(h); len(v) != 0 {
		t.Fatalf("violations: %v", v)
	}
}

func TestCheckerDistrustsAnEmptyHistory(t *testing.T) {
	vs := Check(History{Started: t0})
	if len(vs) != 1 || vs[0].Check != CheckConverged {
		t.Fatalf("violations %v, want one %s", vs, CheckConverged)
	}
}

// A failover whose leader died after it committed the new epoch is
// finished by the next leader as "aborted": it still changed the primary
// (chaos seed 20261420 on MySQL, where every write of the run was reported
// as a stale route to db1).
func TestCheckerCountsACommittedAbortedOperation(t *testing.T) {
	h := clean()
	op := failoverOp()
	op.Result, op.Ended, op.Reason = api.ResultAborted, ptr(at(3500)), "abandoned: no run on the leader db3 owns it"
	h.Final.Operations = []api.Operation{op}
	if v := Check(h); len(v) != 0 {
		t.Fatalf("violations: %v", v)
	}
	// The leader may die between the commit and the record of its step:
	// the history's epoch_after says it committed.
	op.Steps = nil
	h.Final.Operations = []api.Operation{op}
	if v := Check(h); len(v) != 0 {
		t.Fatalf("violations with the commit step unrecorded: %v", v)
	}
	// Aborted before its commit, it changed nothing: db2's write is a
	// second writer's.
	op.EpochAfter = op.EpochBefore
	h.Final.Operations = []api.Operation{op}
	if v := Check(h); len(v) == 0 {
		t.Fatal("an operation aborted before its commit was counted as a change of primary")
	}
}

// A failover whose leader died after its route step, before its commit:
// HAProxy already sent writes to the promoted db2, which took them; the
// next leader aborted the run and finished the change with a failover to
// db2 that kept them (chaos seed 20261420's replay on MySQL).
func TestCheckerCountsAnUncommittedPromotionFinishedLater(t *testing.T) {
	h := clean()
	died := api.Operation{ID: "op-0", Kind: api.OpFailover, Started: at(1500), Ended: ptr(at(2500)),
		OldPrimary: "db1", EpochBefore: 1, EpochAfter: 1, Result: api.ResultAborted,
		Steps: []api.Step{
			{Name: "promote db2", Started: at(1600), Duration: api.Duration(10 * time.Millisecond), Result: api.ResultSuccess},
			{Name: "route db2", Started: at(1650), Duration: api.Duration(10 * time.Millisecond), Result: api.ResultSuccess},
		}}
	h.Final.Operations = []api.Operation{died, failoverOp()}
	h.Attempts = append(h.Attempts, Attempt{Client: "haproxy-2", ID: 5, Start: at(1700), End: at(1710), Target: "db2", OK: true})
	for i := range h.Final.Instances {
		if h.Final.Instances[i].Name != "db1" {
			h.Final.Instances[i].Rows = append(h.Final.Instances[i].Rows, 5)
		}
	}
	if v := Check(h); len(v) != 0 {
		t.Fatalf("violations: %v", v)
	}
	// Without the later failover to db2 the write was to an instance that
	// never became the primary.
	other := failoverOp()
	other.NewPrimary = "db3"
	other.Steps[0].Name = "commit-epoch db3"
	h.Final.Operations = []api.Operation{died, other}
	if v := Check(h); len(v) == 0 {
		t.Fatal("a write to a promotion that was never committed passed")
	}
}
