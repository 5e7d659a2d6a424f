package failover

import (
	"testing"
	"time"
)

// judged probes the primary after the replicas, so that their GTID sets can
// be compared exactly (errant judgement).
func (b *B) judged() *B {
	return b.probes("db1", func(pr *Probe) { pr.ObservedAt = ago(100 * ms) })
}

// relocated records db3 relocated under db2.
func (b *B) relocated() *B {
	b.v.State.Sources = map[string]string{"db3": "db2"}
	return b
}

func TestAnalyzeRelocatedReplicas(t *testing.T) {
	healthy := probSum{Code: Healthy, Instances: []string{"db1"}}
	cases := []struct {
		name    string
		b       *B
		want    []probSum
		reasons map[Code][]string
	}{
		{
			name: "a replica under the replica it was relocated under is healthy",
			b:    base().relocated().source("db3", "db2").judged(),
			want: []probSum{healthy},
		},
		{
			name: "a relocated replica found under the primary goes back under its source",
			b:    base().relocated().judged(),
			want: []probSum{{Code: ReplicaPointsElsewhere, Instances: []string{"db3"}, Target: "db3", Action: ActionRepoint, Actionable: true}},
			reasons: map[Code][]string{
				ReplicaPointsElsewhere: {"db3 replicates from db1, but it was relocated under db2 (regentctl repoint)"},
			},
		},
		{
			name: "it waits while its source is visibly behind it",
			b:    base().relocated().exec("db2", "p:1-90").judged(),
			want: []probSum{{Code: ReplicaPointsElsewhere, Instances: []string{"db3"}, Target: "db3", Action: ActionRepoint, Blocked: []BlockKind{BlockWaiting}}},
			reasons: map[Code][]string{
				ReplicaPointsElsewhere: {"db2 has not executed everything db3 has yet (missing p:91-100)"},
			},
		},
		{
			name: "its source dead: moved under the primary (DeadIntermediateMaster)",
			b: base().relocated().source("db3", "db2").down("db2", ClassRefused, ago(5*time.Second)).
				replica("db3", func(rs *ReplicaStatus) { rs.IOState = IOConnecting; rs.LastIOError = "error reconnecting to master" }).judged(),
			want: []probSum{
				{Code: IntermediateSourceLost, Instances: []string{"db3", "db2"}, Target: "db3", Action: ActionRepoint, Actionable: true},
				{Code: ReplicaNotReplicating, Instances: []string{"db3"}},
				{Code: ReplicaUnreachable, Instances: []string{"db2"}},
			},
			reasons: map[Code][]string{
				IntermediateSourceLost: {"db3 replicates from db2, under which it was relocated, but db2 is", "moved under the primary db1", "back under db2 once db2 can serve it again"},
			},
		},
		{
			name: "its source dead and it already under the primary: nothing to do",
			b:    base().relocated().down("db2", ClassRefused, ago(5*time.Second)).judged(),
			want: []probSum{{Code: ReplicaUnreachable, Instances: []string{"db2"}}},
		},
		{
			name: "a source that does not log what it replicates cannot serve",
			b:    base().relocated().source("db3", "db2").probes("db2", func(pr *Probe) { pr.LogsReplicaUpdates = false }).judged(),
			want: []probSum{{Code: IntermediateSourceLost, Instances: []string{"db3", "db2"}, Target: "db3", Action: ActionRepoint, Actionable: true}},
			reasons: map[Code][]string{
				IntermediateSourceLost: {"log_bin and log_slave_updates must be ON"},
			},
		},
		{
			name: "a source in maintenance cannot serve",
			b: base().relocated().source("db3", "db2").judged().state(func(s *ReplicatedState) {
				s.Maintenance = map[string]Maintenance{"db2": {By: "alice", Reason: "disk swap", Until: t0.Add(time.Hour)}}
			}),
			want: []probSum{
				{Code: IntermediateSourceLost, Instances: []string{"db3", "db2"}, Target: "db3", Action: ActionRepoint, Actionable: true},
				{Code: InstanceInMaintenance, Instances: []string{"db2"}},
			},
			reasons: map[Code][]string{IntermediateSourceLost: {"db2 is in maintenance until"}},
		},
		{
			name: "the primary short of semi-sync acknowledgers takes the replica back",
			b:    base().relocated().source("db3", "db2").probes("db2", func(pr *Probe) { pr.SemiSync.ReplicaEnabled = false }).judged(),
			want: []probSum{
				{Code: SemiSyncNotEnforced, Instances: []string{"db1", "db2"}, Target: "db1", Action: ActionConfigureSemiSync, Actionable: true},
				{Code: IntermediateSourceLost, Instances: []string{"db3", "db2"}, Target: "db3", Action: ActionRepoint, Actionable: true},
			},
			reasons: map[Code][]string{
				IntermediateSourceLost: {"the primary db1 needs db3 as a semi-sync acknowledger: 0 other replica(s) acknowledge, semi_sync_wait_for is 1"},
			},
		},
		{
			name: "without a relocation a replica under a sibling goes under the primary",
			b:    base().source("db3", "db2").judged(),
			want: []probSum{{Code: ReplicaPointsElsewhere, Instances: []string{"db3"}, Target: "db3", Action: ActionRepoint, Actionable: true}},
			reasons: map[Code][]string{
				ReplicaPointsElsewhere: {"not from the primary db1", "unless relocated with regentctl repoint"},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, p := tc.b.build()
			got := Analyze(v, p)
			check(t, "problems", tc.want, summarize(got))
			for code, subs := range tc.reasons {
				for _, pr := range got {
					if pr.Code == code {
						text := pr.Reason
						for _, b := range pr.Blockers {
							text += " | " + b.Reason
						}
						mustContain(t, string(code), text, subs...)
					}
				}
			}
		})
	}
}

func TestPlanRelocatedRepairs(t *testing.T) {
	cases := []struct {
		name    string
		b       *B
		want    planSum
		refusal []string
	}{
		{
			name: "back under its source: stop, let the source catch up, repoint (a step's wait at most)",
			b:    base().relocated().judged(),
			want: planSum{Kind: OpRepoint, Trigger: TriggerAutomatic, Old: "db1", Epoch: 7, Steps: []string{
				"record-intent db3 op=repoint epoch=7->7", "stop-io-threads [db3]", "repoint db3 source=db2 semisync chain", "finish op=repoint"}},
		},
		{
			name: "its source dead: straight under the primary",
			b:    base().relocated().source("db3", "db2").down("db2", ClassRefused, ago(5*time.Second)).judged(),
			want: planSum{Kind: OpRepoint, Trigger: TriggerAutomatic, Old: "db1", Epoch: 7, Steps: []string{
				"record-intent db3 op=repoint epoch=7->7", "repoint db3 source=db1 semisync", "finish op=repoint"}},
		},
		{
			name:    "not while its source is behind it",
			b:       base().relocated().exec("db2", "p:1-90").judged(),
			refusal: []string{"db2 has not executed everything db3 has yet"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, p := tc.b.build()
			pl, err := PlanRepoint(v, p, "db3")
			checkPlan(t, pl, err, tc.want, tc.refusal, nil)
			if err == nil {
				for _, s := range pl.Steps {
					if s.Chain && s.Timeout != p.StepTimeout {
						t.Errorf("an automatic chain waits %v, want step_timeout %v", s.Timeout, p.StepTimeout)
					}
				}
			}
		})
	}
}

func TestPlanRelocate(t *testing.T) {
	cases := []struct {
		name    string
		b       *B
		who, to string
		want    planSum
		refusal []string
	}{
		{
			name: "under a replica: chained, then recorded",
			b:    base().judged(), who: "db3", to: "db2",
			want: planSum{Kind: OpRepoint, Trigger: TriggerManual, Old: "db1", Epoch: 7, Steps: []string{
				"record-intent db3 op=repoint epoch=7->7", "stop-io-threads [db3]", "repoint db3 source=db2 semisync chain",
				"record-source db3 source=db2", "finish op=repoint"}},
		},
		{
			name: "back under the primary: repointed, record removed",
			b:    base().relocated().source("db3", "db2").judged(), who: "db3", to: "db1",
			want: planSum{Kind: OpRepoint, Trigger: TriggerManual, Old: "db1", Epoch: 7, Steps: []string{
				"record-intent db3 op=repoint epoch=7->7", "repoint db3 source=db1 semisync", "record-source db3", "finish op=repoint"}},
		},
		{
			name: "already there by hand: only recorded",
			b:    base().source("db3", "db2").judged(), who: "db3", to: "db2",
			want: planSum{Kind: OpRepoint, Trigger: TriggerManual, Old: "db1", Epoch: 7, Steps: []string{
				"record-intent db3 op=repoint epoch=7->7", "record-source db3 source=db2", "finish op=repoint"}},
		},
		{name: "nothing to do", b: base().relocated().source("db3", "db2").judged(), who: "db3", to: "db2", refusal: []string{"db3 already replicates from db2: nothing to do"}},
		{name: "a cycle", b: base().relocated().source("db3", "db2").judged(), who: "db2", to: "db3", refusal: []string{"would make a replication cycle"}},
		{name: "itself", b: base().judged(), who: "db3", to: "db3", refusal: []string{"db3 cannot replicate from itself"}},
		{name: "the primary", b: base().judged(), who: "db1", to: "db2", refusal: []string{"db1 is not a replica of cluster main"}},
		{name: "an unknown source", b: base().judged(), who: "db3", to: "db9", refusal: []string{"db9 is not an instance of cluster main"}},
		{name: "a source that cannot serve", b: base().judged().sqlStopped("db2", "boom"), who: "db3", to: "db2", refusal: []string{"db2 cannot serve db3 as its source: db2 does not replicate"}},
		{name: "the primary's last acknowledger", b: base().judged().probes("db2", func(pr *Probe) { pr.SemiSync.ReplicaEnabled = false }), who: "db3", to: "db2", refusal: []string{"needs db3 as a semi-sync acknowledger"}},
		{name: "errant transactions", b: base().exec("db3", "p:1-100,r3:1").judged(), who: "db3", to: "db2", refusal: []string{"holds errant transactions r3:1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, p := tc.b.build()
			pl, err := PlanRelocate(v, p, tc.who, tc.to)
			checkPlan(t, pl, err, tc.want, tc.refusal, nil)
		})
	}
}

// A failover flattens the tree: a relocated replica goes under the new
// primary like every other, and the relocation is restored afterwards.
func TestFailoverRepointsRelocatedReplicas(t *testing.T) {
	b := base().addInstance("db4", "", true).relocated().source("db3", "db2").primaryGone(ago(3 * time.Second))
	b.v.State.Sources["db4"] = "db3"
	b.source("db4", "db3")
	v, p := b.build()
	pl, err := PlanFailover(v, p, TriggerAutomatic)
	if err != nil {
		t.Fatal(err)
	}
	v = b.stopped().v
	full, err := ChooseCandidate(v, p, pl)
	if err != nil {
		t.Fatal(err)
	}
	repointed := map[string]string{}
	for _, s := range full.Steps {
		if s.Kind == StepRepoint {
			repointed[s.Instance] = s.Source
		}
	}
	for _, n := range []string{"db3", "db4"} {
		if n != full.NewPrimary && repointed[n] != full.NewPrimary {
			t.Errorf("%s repointed under %q, want the new primary %s (steps %v)", n, repointed[n], full.NewPrimary, summarizePlan(full).Steps)
		}
	}
}
