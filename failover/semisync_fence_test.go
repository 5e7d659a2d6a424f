package failover

import (
	"strings"
	"testing"
	"time"
)

// The fence rule of issue 10 (README, "Semi-sync as a fence"): when may a
// failover promote without waiting out the old primary's lease, because no
// replica can acknowledge its commits any more?
func TestSemiSyncFenceOf(t *testing.T) {
	hung := func() *B {
		return base().down("db1", ClassTimeout, ago(3*time.Second))
	}
	lastSemi := func(name string, f func(*SemiSyncState)) func(*B) *B {
		return func(b *B) *B { return b.inst(name, func(in *Instance) { f(&in.LastSeen.SemiSync) }) }
	}
	cases := []struct {
		name   string
		b      *B
		ok     bool
		acks   []string
		reason string
	}{
		{name: "two reachable replicas of a lossless primary: both to stop", b: hung(), ok: true, acks: []string{"db2", "db3"}, reason: "once db2, db3 receive nothing more from db1"},
		{name: "three replicas, one more than the wait count needs: all three to stop",
			b:  hung().addInstance("db4", "", true).down("db1", ClassTimeout, ago(3*time.Second)).inst("db1", func(in *Instance) { in.LastSeen.SemiSync.SourceClients = 3 }),
			ok: true, acks: []string{"db2", "db3", "db4"}},
		{name: "wait count 2: the same rule (every acknowledger stopped)",
			b:  lastSemi("db1", func(s *SemiSyncState) { s.WaitCount = 2 })(hung()),
			ok: true, acks: []string{"db2", "db3"}},
		{name: "a replica of an address Regent cannot name is stopped too (it may be the old primary under another name)", b: hung().source("db3", "10.9.9.9:3306"), ok: true, acks: []string{"db2", "db3"}},
		{name: "a replica of another instance of the cluster is no acknowledger", b: hung().source("db3", "db2"), ok: true, acks: []string{"db2"}},
		{name: "an instance that is no replica is no acknowledger", b: hung().probes("db3", func(pr *Probe) { pr.Replica = nil }), ok: true, acks: []string{"db2"}},
		{name: "async: no fence", b: hung().policy(func(p *Policy) { p.Durability = DurabilityAsync }), reason: "durability is async"},
		{name: "degraded by semi_sync_fallback: no fence", b: hung().state(func(s *ReplicatedState) { s.SemiSyncDegraded = true; s.SemiSyncDegradedSince = ago(time.Minute) }), reason: "degraded"},
		{name: "last seen with the server's default timeout: no fence", b: hung().notLossless("db1"), reason: "semi-sync timeout of 10s"},
		{name: "last seen falling back by itself: no fence", b: lastSemi("db1", func(s *SemiSyncState) { s.SourceActive = false })(hung()), reason: "committing without semi-sync"},
		{name: "last seen with wait point AFTER_COMMIT: no fence", b: lastSemi("db1", func(s *SemiSyncState) { s.WaitPoint = "AFTER_COMMIT" })(hung()), reason: "not AFTER_SYNC"},
		{name: "last seen with wait_no_replica OFF: no fence", b: lastSemi("db1", func(s *SemiSyncState) { s.WaitNoReplica = false })(hung()), reason: "wait_no_replica OFF"},
		{name: "never seen: no fence", b: hung().inst("db1", func(in *Instance) { in.LastSeen = Probe{} }), reason: "never seen"},
		{name: "a semi-sync replica the leader cannot reach: no fence", b: hung().down("db3", ClassTimeout, ago(time.Second)), reason: "replicas db3 could acknowledge"},
		// Found by TestFrozenPrimaryWithAReplicaUnaccountedForWaitsOutTheLease
		// under load: the leader's last view of a replica predated its own
		// repair that switched the replica's semi-sync side on.
		{name: "an unreachable replica last seen without its semi-sync side: it may have it now, no fence",
			b:      hung().down("db3", ClassTimeout, ago(time.Second)).inst("db3", func(in *Instance) { in.LastSeen.SemiSync.ReplicaEnabled = false }).inst("db1", func(in *Instance) { in.LastSeen.SemiSync.SourceClients = 1 }),
			reason: "replicas db3 could acknowledge"},
		{name: "an unreachable instance last seen replicating from another: it may have been repointed, no fence",
			b:      hung().source("db3", "db2").down("db3", ClassTimeout, ago(time.Second)).inst("db3", func(in *Instance) { in.LastSeen.Replica.Source = "db2" }),
			reason: "replicas db3 could acknowledge"},
		{name: "more semi-sync clients than Regent's replicas: an unmanaged one could acknowledge",
			b: lastSemi("db1", func(s *SemiSyncState) { s.SourceClients = 3 })(hung()), reason: "3 semi-sync replicas connected and only 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, p := tc.b.build()
			got := SemiSyncFenceOf(v, p, "db1")
			if got.OK != tc.ok {
				t.Fatalf("OK = %v, want %v (%s)", got.OK, tc.ok, got.Reason)
			}
			if tc.ok && strings.Join(got.Acknowledgers, ",") != strings.Join(tc.acks, ",") {
				t.Errorf("acknowledgers %v, want %v", got.Acknowledgers, tc.acks)
			}
			if !strings.Contains(got.Reason, tc.reason) {
				t.Errorf("reason %q does not say %q", got.Reason, tc.reason)
			}
		})
	}
}
