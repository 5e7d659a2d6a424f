package vocab

import (
	"encoding/json"
	"testing"
)

func TestOperationKindReadsLegacySpellings(t *testing.T) {
	cases := []struct {
		in   string
		want OperationKind
	}{
		{in: `"forced_failover"`, want: OpForcedFailover},
		{in: `"semi_sync_fallback"`, want: OpSemiSyncFallback},
		{in: `"semi_sync_restore"`, want: OpSemiSyncRestore},
		{in: `"forced-failover"`, want: OpForcedFailover},
		{in: `"failover"`, want: OpFailover},
		{in: `"switchover"`, want: OpSwitchover},
		{in: `"something-new"`, want: OperationKind("something-new")},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			var got OperationKind
			if err := json.Unmarshal([]byte(tc.in), &got); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("read %s as %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestOperationKindPhaseAndChangesPrimary(t *testing.T) {
	cases := []struct {
		k       OperationKind
		phase   string
		changes bool
	}{
		{OpFailover, "failing_over", true},
		{OpForcedFailover, "failing_over", true},
		{OpSwitchover, "switching_over", true},
		{OpRejoin, "rejoining", false},
		{OpSemiSyncFallback, "degrading_semi_sync", false},
		{OpSemiSyncRestore, "restoring_semi_sync", false},
		{OpFence, "unknown", false},
	}
	for _, tc := range cases {
		t.Run(string(tc.k), func(t *testing.T) {
			if got := tc.k.Phase(); got != tc.phase {
				t.Errorf("Phase = %q, want %q", got, tc.phase)
			}
			if got := tc.k.ChangesPrimary(); got != tc.changes {
				t.Errorf("ChangesPrimary = %v, want %v", got, tc.changes)
			}
		})
	}
}
