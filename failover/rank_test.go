package failover

import (
	"sort"
	"strings"
	"testing"
	"time"
)

type rankSum struct {
	Chosen      string
	CatchUpFrom string
	Order       []string // eligible, in rank order
	Excluded    []string // by name
	Sources     []string
	Target      string
	Lost        string
}

func summarizeRank(r Ranking) rankSum {
	s := rankSum{Chosen: r.Chosen, CatchUpFrom: r.CatchUpFrom, Order: []string{}, Excluded: []string{}, Sources: []string{}}
	for _, c := range r.Candidates {
		if c.Eligible {
			s.Order = append(s.Order, c.Instance)
		} else {
			s.Excluded = append(s.Excluded, c.Instance)
		}
		if c.Source {
			s.Sources = append(s.Sources, c.Instance)
		}
	}
	sort.Strings(s.Sources)
	if r.Target != nil {
		s.Target = r.Target.String()
	}
	if r.Lost != nil {
		s.Lost = r.Lost.String()
	}
	return s
}

func TestRank(t *testing.T) {
	dead := func() *B { return base().primaryGone(ago(3 * time.Second)) }
	cases := []struct {
		name     string
		b        *B
		opts     RankOptions
		want     rankSum
		excl     map[string][]string // instance → substrings of its exclusions
		refusal  []string
		warnings []string
	}{
		{
			// A MariaDB replica rebuilt from a backup (RESET MASTER, then
			// gtid_slave_pos) keeps in gtid_binlog_state only what it
			// binlogged since: no key for the earlier primary "o". Here it
			// (db2) also received the primary's newest transactions p:101-102
			// after the primary was last seen — under semi_sync possibly
			// acknowledged. Found: it was called errant ("beyond the last
			// known set while lacking part of it") and its transactions were
			// dropped. Now they are the primary's late ones (its own source,
			// and db2 holds all of p up to the last known set), db3 (which
			// holds the history) is chosen and catches up from db2.
			name: "a rebuilt replica with the primary's late transactions is a catch-up source, not errant",
			b: dead().lastSeenOwn("db1", "o:1-50,p:1-100", "p:1-100").
				exec("db3", "o:1-50,p:1-100").exec("db2", "p:1-102"),
			want: rankSum{Chosen: "db3", CatchUpFrom: "db2", Order: []string{"db3", "db2"}, Excluded: []string{}, Sources: []string{}, Target: "o:1-50,p:1-102"},
		},
		{
			// The rebuilt replica (db2) holds the newest transaction, the
			// other lags by one: neither holds everything. db3 lacks only
			// the primary's own transaction and can get it from db2; db2
			// lacks the earlier writer's key, which nobody can send it. So
			// db3 ranks first, though db2 comes first by name; the old
			// code refused ("survivors have diverged").
			name: "the replica that lacks only the primary's transactions ranks before a rebuilt one",
			b: dead().lastSeenOwn("db1", "o:1-50,p:1-100", "p:1-100").
				exec("db3", "o:1-50,p:1-99").exec("db2", "p:1-100"),
			want: rankSum{Chosen: "db3", CatchUpFrom: "db2", Order: []string{"db3", "db2"}, Excluded: []string{}, Sources: []string{}, Target: "o:1-50,p:1-100"},
		},
		{
			// The same shape without knowing which sources the primary
			// writes to: errant, as before (the safe side).
			name: "without the primary's own sources a set beyond it that lacks part of it is errant",
			b: dead().lastSeen("db1", "o:1-50,p:1-100").
				exec("db3", "o:1-50,p:1-100").exec("db2", "p:1-102"),
			want: rankSum{Chosen: "db3", Order: []string{"db3"}, Excluded: []string{"db2"}, Sources: []string{"db3"}, Target: "o:1-50,p:1-100"},
			excl: map[string][]string{"db2": {"errant transactions p:101-102"}},
		},
		{
			// Transactions of another source beyond the last known set stay
			// errant even on an instance that holds the primary's stream.
			name: "a rebuilt replica's own writes are errant",
			b: dead().lastSeenOwn("db1", "o:1-50,p:1-100", "p:1-100").
				exec("db3", "o:1-50,p:1-100").exec("db2", "p:1-100,r:1"),
			want: rankSum{Chosen: "db3", Order: []string{"db3"}, Excluded: []string{"db2"}, Sources: []string{"db3"}, Target: "o:1-50,p:1-100"},
			excl: map[string][]string{"db2": {"errant transactions r:1"}},
		},
		{
			// Two survivors that each lack something not from the primary's
			// own sources have diverged: refused, as before, though each
			// holds what the other lacks.
			name: "diverged survivors are not merged by a catch-up",
			b: dead().lastSeenOwn("db1", "p:1-100", "p:1-100").
				exec("db2", "p:1-100,x:1").exec("db3", "p:1-100,y:1"),
			want:    rankSum{Order: []string{"db2", "db3"}, Excluded: []string{}, Sources: []string{}, Target: "p:1-100,x:1,y:1"},
			refusal: []string{"no reachable instance holds every surviving transaction"},
		},
		{
			name: "equal replicas: ties broken by name",
			b:    dead(),
			want: rankSum{Chosen: "db2", Order: []string{"db2", "db3"}, Excluded: []string{}, Sources: []string{"db2", "db3"}, Target: "p:1-100"},
		},
		{
			name: "four equal replicas: name order",
			b:    dead().addInstance("db4", "", true).addInstance("db0", "", true).primaryGone(ago(3 * time.Second)),
			want: rankSum{Chosen: "db0", Order: []string{"db0", "db2", "db3", "db4"}, Excluded: []string{}, Sources: []string{"db0", "db2", "db3", "db4"}, Target: "p:1-100"},
		},
		{
			name: "prefer wins among equals",
			b:    dead().rule("db3", PromotionPrefer),
			want: rankSum{Chosen: "db3", Order: []string{"db3", "db2"}, Excluded: []string{}, Sources: []string{"db2", "db3"}, Target: "p:1-100"},
		},
		{
			name: "most advanced beats prefer; prefer is a tie-break",
			b:    dead().rule("db2", PromotionPrefer).exec("db2", "p:1-99"),
			want: rankSum{Chosen: "db3", Order: []string{"db3", "db2"}, Excluded: []string{}, Sources: []string{"db3"}, Target: "p:1-100"},
		},
		{
			name: "a lagging replica never wins over a caught-up one",
			b:    base().lag("db2", time.Minute).exec("db2", "p:1-60"),
			opts: RankOptions{OldPrimary: "db1"},
			want: rankSum{Chosen: "db3", Order: []string{"db3"}, Excluded: []string{"db2"}, Sources: []string{"db3"}, Target: "p:1-100"},
			excl: map[string][]string{"db2": {"lag 1m0s exceeds max_lag_on_failover 10s"}},
		},
		{
			name: "lag carried from before the IO threads stopped",
			b:    dead(),
			opts: RankOptions{OldPrimary: "db1", KnownLag: map[string]time.Duration{"db2": 30 * time.Second}},
			want: rankSum{Chosen: "db3", Order: []string{"db3"}, Excluded: []string{"db2"}, Sources: []string{"db2", "db3"}, Target: "p:1-100"},
			excl: map[string][]string{"db2": {"lag 30s exceeds"}},
		},
		{
			name: "lagging replica that received the most is a catch-up source, not a candidate",
			b:    dead().lag("db2", time.Minute).exec("db2", "p:1-90").retrieved("db2", "p:1-105").exec("db3", "p:1-100"),
			want: rankSum{Chosen: "db3", CatchUpFrom: "db2", Order: []string{"db3"}, Excluded: []string{"db2"}, Sources: []string{"db2"}, Target: "p:1-105"},
		},
		{
			name: "known errant replica never wins even when most advanced",
			b:    dead().exec("db2", "p:1-100,r2:1").knownErrant("db2", "r2:1"),
			want: rankSum{Chosen: "db3", Order: []string{"db3"}, Excluded: []string{"db2"}, Sources: []string{"db3"}, Target: "p:1-100"},
			excl: map[string][]string{"db2": {"errant transactions r2:1", "inject empty transactions"}},
		},
		{
			// The primary was just killed: a1 and the leader a2 see it gone,
			// but a3's last report still holds a pair of probes taken before
			// the errant write reached db2. That pair judged db2 clean and
			// erased a1's finding; db2, first by name and most advanced, was
			// promoted (real servers, MySQL, TestErrantReplicaIsNeverPromoted).
			name: "an older clean pair from another agent does not clear a known errant replica",
			b: dead().exec("db2", "p:1-100,r2:1").knownErrantBy("a1", "db2", "r2:1", ago(time.Second)).
				probeBy("a3", "db1", func(pr *Probe) { pr.Reachable, pr.ObservedAt, pr.Executed = true, ago(400*ms), gs("p:1-100") }).
				probeBy("a3", "db2", func(pr *Probe) { pr.ObservedAt, pr.Executed = ago(500*ms), gs("p:1-100") }),
			want: rankSum{Chosen: "db3", Order: []string{"db3"}, Excluded: []string{"db2"}, Sources: []string{"db3"}, Target: "p:1-100"},
			excl: map[string][]string{"db2": {"errant transactions r2:1"}},
		},
		{
			name: "errant by the prefix rule: beyond the old primary's last set while lacking part of it",
			b:    dead().exec("db2", "p:1-95,r2:1-2").rule("db2", PromotionPrefer),
			want: rankSum{Chosen: "db3", Order: []string{"db3"}, Excluded: []string{"db2"}, Sources: []string{"db3"}, Target: "p:1-100"},
			excl: map[string][]string{"db2": {"errant transactions r2:1-2"}},
		},
		{
			name: "late transactions beyond the old primary's last set are kept, not errant",
			b:    dead().exec("db2", "p:1-104"),
			want: rankSum{Chosen: "db2", Order: []string{"db2", "db3"}, Excluded: []string{}, Sources: []string{"db2"}, Target: "p:1-104"},
		},
		{
			name: "must_not most advanced: a permitted replica catches up from it",
			b:    dead().rule("db2", PromotionMustNot).exec("db2", "p:1-103"),
			want: rankSum{Chosen: "db3", CatchUpFrom: "db2", Order: []string{"db3"}, Excluded: []string{"db2"}, Sources: []string{"db2"}, Target: "p:1-103"},
			excl: map[string][]string{"db2": {"promotion rule is must_not"}},
		},
		{
			name:    "all must_not: refuse with every reason",
			b:       dead().rule("db2", PromotionMustNot).rule("db3", PromotionMustNot),
			want:    rankSum{Order: []string{}, Excluded: []string{"db2", "db3"}, Sources: []string{"db2", "db3"}, Target: "p:1-100"},
			refusal: []string{"no instance can be promoted", "db2: promotion rule is must_not", "db3: promotion rule is must_not"},
		},
		{
			name: "delayed replica excluded",
			b:    dead().delay("db2", time.Hour),
			want: rankSum{Chosen: "db3", Order: []string{"db3"}, Excluded: []string{"db2"}, Sources: []string{"db2", "db3"}, Target: "p:1-100"},
			excl: map[string][]string{"db2": {"delayed replica (SQL_Delay 1h0m0s)"}},
		},
		{
			name: "broken SQL thread excludes a replica",
			b:    dead().sqlStopped("db2", "Error 1062: Duplicate entry"),
			want: rankSum{Chosen: "db3", Order: []string{"db3"}, Excluded: []string{"db2"}, Sources: []string{"db2", "db3"}, Target: "p:1-100"},
			excl: map[string][]string{"db2": {"SQL thread stopped with error: Error 1062"}},
		},
		{
			name: "stopped SQL thread without error excludes too",
			b:    dead().sqlStopped("db3", ""),
			want: rankSum{Chosen: "db2", Order: []string{"db2"}, Excluded: []string{"db3"}, Sources: []string{"db2", "db3"}, Target: "p:1-100"},
			excl: map[string][]string{"db3": {"SQL thread is stopped"}},
		},
		{
			name: "quarantined excluded and its data not counted",
			b:    dead().exec("db3", "p:1-101").quarantine("db3", "errant r3:1"),
			want: rankSum{Chosen: "db2", Order: []string{"db2"}, Excluded: []string{"db3"}, Sources: []string{"db2"}, Target: "p:1-100"},
			excl: map[string][]string{"db3": {"quarantined: errant r3:1"}},
		},
		{
			name: "unreachable replica excluded (it was not a semi-sync acknowledger)",
			b:    dead().down("db2", ClassTimeout, ago(time.Second)).notAcking("db2"),
			want: rankSum{Chosen: "db3", Order: []string{"db3"}, Excluded: []string{"db2"}, Sources: []string{"db3"}, Target: "p:1-100"},
			excl: map[string][]string{"db2": {"unreachable from the leader (a2): timeout"}},
		},
		{
			// Issue 9, "also decide": DeadPrimaryAndSomeReplicas. With
			// semi_sync_wait_for 1 an acknowledged commit may be on the
			// unreachable replica alone.
			name:    "unreachable semi-sync replica: refused, it may hold the only acknowledged copies",
			b:       dead().down("db2", ClassTimeout, ago(time.Second)),
			want:    rankSum{Order: []string{"db3"}, Excluded: []string{"db2"}, Sources: []string{"db3"}, Target: "p:1-100"},
			refusal: []string{"replicas db2 are unreachable and could hold acknowledged writes", "--force"},
		},
		{
			name: "unreachable replica with async durability: excluded, no refusal",
			b:    dead().down("db2", ClassTimeout, ago(time.Second)).policy(func(p *Policy) { p.Durability = DurabilityAsync }),
			want: rankSum{Chosen: "db3", Order: []string{"db3"}, Excluded: []string{"db2"}, Sources: []string{"db3"}, Target: "p:1-100"},
			excl: map[string][]string{"db2": {"unreachable from the leader (a2): timeout"}},
		},
		{
			name: "two acknowledgements per commit: one unreachable replica cannot hold the only copy",
			b: dead().addInstance("db4", "", true).primaryGone(ago(3*time.Second)).down("db2", ClassTimeout, ago(time.Second)).
				policy(func(p *Policy) { p.SemiSyncWaitFor = 2 }),
			want: rankSum{Chosen: "db3", Order: []string{"db3", "db4"}, Excluded: []string{"db2"}, Sources: []string{"db3", "db4"}, Target: "p:1-100"},
		},
		{
			name: "replica whose agent is silent excluded",
			b:    dead().silent("a3", ago(5*time.Second)),
			want: rankSum{Chosen: "db2", Order: []string{"db2"}, Excluded: []string{"db3"}, Sources: []string{"db2", "db3"}, Target: "p:1-100"},
			excl: map[string][]string{"db3": {"its agent a3 has not been heard"}},
		},
		{
			name: "instance that is not a replica excluded",
			b:    dead().notReplica("db3"),
			want: rankSum{Chosen: "db2", Order: []string{"db2"}, Excluded: []string{"db3"}, Sources: []string{"db2"}, Target: "p:1-100"},
			excl: map[string][]string{"db3": {"not configured as a replica"}},
		},
		{
			name: "replica of a server outside the cluster excluded",
			b:    dead().source("db3", "192.168.1.1:3306"),
			want: rankSum{Chosen: "db2", Order: []string{"db2"}, Excluded: []string{"db3"}, Sources: []string{"db2"}, Target: "p:1-100"},
			excl: map[string][]string{"db3": {`replicates from "192.168.1.1:3306"`}},
		},
		{
			name:    "diverged replicas: refuse rather than drop transactions",
			b:       dead().exec("db2", "p:1-101,x:1").exec("db3", "p:1-101,y:1"),
			want:    rankSum{Order: []string{"db2", "db3"}, Excluded: []string{}, Sources: []string{}, Target: "p:1-101,x:1,y:1"},
			refusal: []string{"the replicas have diverged", "db2 lacks y:1", "db3 lacks x:1"},
		},
		{
			name: "relay log not yet applied: the holder catches up from itself",
			b:    dead().exec("db3", "p:1-98").retrieved("db3", "p:1-100").exec("db2", "p:1-99"),
			want: rankSum{Chosen: "db3", CatchUpFrom: "db3", Order: []string{"db3", "db2"}, Excluded: []string{}, Sources: []string{"db3"}, Target: "p:1-100"},
		},
		{
			name: "only holder cannot apply its relay log: refuse",
			b: dead().exec("db3", "p:1-95").retrieved("db3", "p:1-100").sqlStopped("db3", "Error 1032").
				exec("db2", "p:1-99"),
			want:    rankSum{Order: []string{"db2"}, Excluded: []string{"db3"}, Sources: []string{}, Target: "p:1-100"},
			refusal: []string{"db2 cannot catch up", "only db3 hold every surviving transaction", "cannot apply"},
		},
		{
			name:     "transactions only on the dead primary are reported lost",
			b:        dead().lastSeen("db1", "p:1-103"),
			want:     rankSum{Chosen: "db2", Order: []string{"db2", "db3"}, Excluded: []string{}, Sources: []string{"db2", "db3"}, Target: "p:1-100", Lost: "p:101-103"},
			warnings: []string{"transactions p:101-103 were last seen on db1", "with semi_sync none of them was acknowledged"},
		},
		{
			name:     "async durability: lost writes may have been acknowledged",
			b:        dead().lastSeen("db1", "p:1-101").policy(func(p *Policy) { p.Durability = DurabilityAsync }),
			want:     rankSum{Chosen: "db2", Order: []string{"db2", "db3"}, Excluded: []string{}, Sources: []string{"db2", "db3"}, Target: "p:1-100", Lost: "p:101"},
			warnings: []string{"may have been acknowledged"},
		},
		{
			name: "reachable old primary counts in the target and serves as source",
			b:    base().exec("db1", "p:1-102").exec("db2", "p:1-101"),
			want: rankSum{Chosen: "db2", CatchUpFrom: "db1", Order: []string{"db2", "db3"}, Excluded: []string{}, Sources: []string{}, Target: "p:1-102"},
		},
		{
			name:     "forced target must_not: refused without force",
			b:        dead().rule("db3", PromotionMustNot),
			opts:     RankOptions{Target: "db3"},
			want:     rankSum{Order: []string{"db2"}, Excluded: []string{"db3"}, Sources: []string{"db2", "db3"}, Target: "p:1-100"},
			refusal:  []string{"db3 may not be promoted: promotion rule is must_not (force overrides)"},
			warnings: nil,
		},
		{
			name:     "forced target must_not with force: chosen with a warning",
			b:        dead().rule("db3", PromotionMustNot),
			opts:     RankOptions{Target: "db3", Force: true},
			want:     rankSum{Chosen: "db3", Order: []string{"db2"}, Excluded: []string{"db3"}, Sources: []string{"db2", "db3"}, Target: "p:1-100"},
			warnings: []string{"forced: db3: promotion rule is must_not"},
		},
		{
			name:    "forced target unreachable: refused even with force",
			b:       dead().down("db3", ClassRefused, ago(time.Second)),
			opts:    RankOptions{Target: "db3", Force: true},
			want:    rankSum{Order: []string{"db2"}, Excluded: []string{"db3"}, Sources: []string{"db2"}, Target: "p:1-100"},
			refusal: []string{"db3 cannot be promoted: unreachable"},
		},
		{
			name: "forced target behind: caught up from the most advanced",
			b:    dead().exec("db3", "p:1-97"),
			opts: RankOptions{Target: "db3"},
			want: rankSum{Chosen: "db3", CatchUpFrom: "db2", Order: []string{"db2", "db3"}, Excluded: []string{}, Sources: []string{"db2"}, Target: "p:1-100"},
		},
		{
			name:     "forced into a divergence: warned, not refused",
			b:        dead().exec("db2", "p:1-101,x:1").exec("db3", "p:1-101,y:1"),
			opts:     RankOptions{Target: "db3", Force: true},
			want:     rankSum{Chosen: "db3", Order: []string{"db2", "db3"}, Excluded: []string{}, Sources: []string{}, Target: "p:1-101,x:1,y:1"},
			warnings: []string{"forced: no reachable instance holds every surviving transaction"},
		},
		{
			name:    "forced target is the old primary",
			b:       dead(),
			opts:    RankOptions{Target: "db1"},
			want:    rankSum{Order: []string{"db2", "db3"}, Excluded: []string{}, Sources: []string{"db2", "db3"}, Target: "p:1-100"},
			refusal: []string{"db1 is the primary being replaced"},
		},
		{
			name:    "forced target unknown",
			b:       dead(),
			opts:    RankOptions{Target: "db7"},
			want:    rankSum{Order: []string{"db2", "db3"}, Excluded: []string{}, Sources: []string{"db2", "db3"}, Target: "p:1-100"},
			refusal: []string{"db7 is not an instance of cluster main"},
		},
		{
			name: "incomparable sets with one holder of everything: total order by dominance",
			b: dead().addInstance("db4", "", true).primaryGone(ago(3*time.Second)).
				exec("db2", "p:1-99").exec("db3", "p:1-98").exec("db4", "p:1-100"),
			want: rankSum{Chosen: "db4", Order: []string{"db4", "db2", "db3"}, Excluded: []string{}, Sources: []string{"db4"}, Target: "p:1-100"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, p := tc.b.build()
			if tc.opts.OldPrimary == "" {
				tc.opts.OldPrimary = "db1"
			}
			r := Rank(v, p, tc.opts)
			check(t, "ranking", tc.want, summarizeRank(r))
			for inst, subs := range tc.excl {
				c, ok := r.candidate(inst)
				if !ok {
					t.Fatalf("no candidate %s", inst)
				}
				mustContain(t, inst+" exclusions", strings.Join(c.Exclusions, "; "), subs...)
			}
			mustContain(t, "refusal", strings.Join(r.Refusals, "; "), tc.refusal...)
			if len(tc.refusal) == 0 && len(r.Refusals) > 0 {
				t.Errorf("unexpected refusal: %v", r.Refusals)
			}
			mustContain(t, "warnings", strings.Join(r.Warnings, "; "), tc.warnings...)
			if (r.Chosen == "") != (len(r.Refusals) > 0) {
				t.Errorf("chosen %q with refusals %v: exactly one of them must be set", r.Chosen, r.Refusals)
			}
		})
	}
}
