package failover

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// stepLine prints a step's kind and parameters on one line, so that a plan
// reads (and diffs) as a list.
func stepLine(s Step) string {
	parts := []string{string(s.Kind)}
	add := func(format string, a ...any) { parts = append(parts, fmt.Sprintf(format, a...)) }
	if s.Instance != "" {
		add("%s", s.Instance)
	}
	if s.Source != "" {
		add("source=%s", s.Source)
	}
	if len(s.Instances) > 0 {
		add("%v", s.Instances)
	}
	if s.Via != "" {
		add("via=%s", s.Via)
	}
	if !s.Until.IsZero() {
		add("until=%s", stamp(s.Until))
	}
	if s.GTID != nil {
		add("gtid=%s", s.GTID.String())
	}
	if s.Operation != "" {
		add("op=%s", s.Operation)
	}
	switch {
	case s.ExpectEpoch != 0:
		add("epoch=%d->%d", s.ExpectEpoch, s.Epoch)
	case s.Epoch != 0:
		add("epoch=%d", s.Epoch)
	}
	if s.Role != "" {
		add("role=%s", s.Role)
	}
	if s.Demote {
		add("demote")
	}
	if s.SemiSync {
		add("semisync")
	}
	if s.ForbidExtra {
		add("forbid-extra")
	}
	if s.AntiFlap != 0 {
		add("antiflap=%v", s.AntiFlap)
	}
	if s.Chain {
		add("chain")
	}
	if s.UndoSource != "" {
		add("undo=%s source=%s", s.Undo, s.UndoSource)
	}
	return strings.Join(parts, " ")
}

type planSum struct {
	Kind      OperationKind
	Trigger   Trigger
	Old, New  string
	Expected  string
	Epoch     uint64
	TakesOver string
	Steps     []string
}

func summarizePlan(p Plan) planSum {
	s := planSum{Kind: p.Kind, Trigger: p.Trigger, Old: p.OldPrimary, New: p.NewPrimary, Expected: p.Expected, Epoch: p.Epoch, TakesOver: p.TakesOver, Steps: []string{}}
	for _, st := range p.Steps {
		s.Steps = append(s.Steps, stepLine(st))
	}
	return s
}

// checkPlan compares a planner's result with the expectations and checks the
// rules every plan obeys.
func checkPlan(t *testing.T, pl Plan, err error, want planSum, refusal, warnings []string) {
	t.Helper()
	if len(refusal) > 0 {
		if !errors.Is(err, ErrRefused) {
			t.Fatalf("want a refusal, got err=%v plan=%v", err, summarizePlan(pl).Steps)
		}
		mustContain(t, "refusal", err.Error(), refusal...)
		return
	}
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	check(t, "plan", want, summarizePlan(pl))
	mustContain(t, "warnings", strings.Join(pl.Warnings, "; "), warnings...)
	for i, s := range pl.Steps {
		if s.Timeout <= 0 {
			t.Errorf("step %d (%s) has no timeout", i, s.Kind)
		}
		if s.Why == "" {
			t.Errorf("step %d (%s) does not say why", i, s.Kind)
		}
		if (s.Kind == StepPromote || s.Kind == StepRoute || s.Kind == StepFence || s.Kind == StepSetWritable) && !s.Irreversible {
			t.Errorf("step %d (%s) must be marked irreversible (VerifyLeader before it)", i, s.Kind)
		}
	}
}

// stopped is the fresh view after the runner stopped the IO threads: IO No,
// lag NULL.
func (b *B) stopped() *B {
	for _, n := range b.v.names() {
		if n != "db1" {
			b.replica(n, func(rs *ReplicaStatus) { rs.IOState, rs.Lag, rs.LastIOError = IONo, nil, "" })
		}
	}
	return b
}

var (
	preSteps = func(fence ...string) []string {
		out := []string{"record-intent db1 op=failover epoch=7->8", "pre-hooks op=failover", "unroute-old-primary db1 epoch=8"}
		out = append(out, fence...)
		return append(out, "stop-io-threads [db2 db3]", "wait-relay-logs [db2 db3]", "choose-candidate [db2 db3]")
	}
	tail = func(chosen, other string, lead ...string) []string {
		out := append([]string(nil), lead...)
		return append(out,
			"promote "+chosen+" semisync",
			"repoint "+other+" source="+chosen+" semisync",
			"route "+chosen+" epoch=8",
			"commit-epoch "+chosen+" gtid=p:1-100 epoch=7->8 antiflap=5m0s",
			"post-hooks op=failover")
	}
)

func TestPlanFailover(t *testing.T) {
	hostLost := func() *B {
		return base().primaryGone(ago(3*time.Second)).silent("a1", ago(2*time.Second)).notLossless("db1")
	}
	cases := []struct {
		name     string
		b        *B
		trigger  Trigger
		target   string
		force    bool
		want     planSum
		refusal  []string
		warnings []string
	}{
		{
			name: "host lost: wait out the silent agent's lease",
			b:    hostLost(),
			want: planSum{Kind: OpFailover, Trigger: TriggerAutomatic, Old: "db1", Expected: "db2", Epoch: 8,
				Steps: preSteps("wait-lease db1 until=12:00:01.000")},
		},
		{
			// Issue 10: lossless semi-sync fences the old primary once both
			// replicas' IO threads are stopped, so the lease is not waited
			// out (only the fallback if a replica still receives).
			name: "host lost, lossless semi-sync: stop the replicas, then semi-sync fences, no lease wait",
			b:    base().primaryGone(ago(3*time.Second)).silent("a1", ago(2*time.Second)),
			want: planSum{Kind: OpFailover, Trigger: TriggerAutomatic, Old: "db1", Expected: "db2", Epoch: 8,
				Steps: []string{"record-intent db1 op=failover epoch=7->8", "pre-hooks op=failover", "unroute-old-primary db1 epoch=8",
					"stop-io-threads [db2 db3]", "fence-old-primary db1 [db2 db3] via=semi-sync until=12:00:01.000",
					"wait-relay-logs [db2 db3]", "choose-candidate [db2 db3]"}},
		},
		{
			name: "hung primary, lossless semi-sync: the same, though its agent is alive",
			b:    base().down("db1", ClassTimeout, ago(3*time.Second)).progress("db2", ago(5*time.Second)).progress("db3", ago(5*time.Second)),
			want: planSum{Kind: OpFailover, Trigger: TriggerAutomatic, Old: "db1", Expected: "db2", Epoch: 8,
				Steps: []string{"record-intent db1 op=failover epoch=7->8", "pre-hooks op=failover", "unroute-old-primary db1 epoch=8",
					"stop-io-threads [db2 db3]", "fence-old-primary db1 [db2 db3] via=semi-sync until=12:00:02.900",
					"wait-relay-logs [db2 db3]", "choose-candidate [db2 db3]"}},
		},
		{
			name: "fast path: fenced through the agent that saw mysqld go, no wait",
			b:    base().localGone("a1", ago(50*ms)).down("db1", ClassRefused, ago(100*ms)),
			want: planSum{Kind: OpFailover, Trigger: TriggerAutomatic, Old: "db1", Expected: "db2", Epoch: 8,
				Steps: preSteps("fence-old-primary db1 via=agent")},
		},
		{
			name: "fast path while the leader's last probe predates the report: still fenced through the agent",
			b:    base().localGone("a1", ago(50*ms)),
			want: planSum{Kind: OpFailover, Trigger: TriggerAutomatic, Old: "db1", Expected: "db2", Epoch: 8,
				Steps: preSteps("fence-old-primary db1 via=agent")},
		},
		{
			name: "isolated primary whose lease lapsed, still reachable: fenced directly",
			b:    base().silent("a1", ago(4*time.Second)).writable("db1", false),
			want: planSum{Kind: OpFailover, Trigger: TriggerAutomatic, Old: "db1", Expected: "db2", Epoch: 8,
				Steps: preSteps("fence-old-primary db1 via=direct until=11:59:59.000 semisync")},
		},
		{
			name: "hung primary, agent alive: fenced through the agent, bounded by the lease",
			b:    base().down("db1", ClassTimeout, ago(3*time.Second)).progress("db2", ago(5*time.Second)).progress("db3", ago(5*time.Second)).notLossless("db1"),
			want: planSum{Kind: OpFailover, Trigger: TriggerAutomatic, Old: "db1", Expected: "db2", Epoch: 8,
				Steps: preSteps("fence-old-primary db1 via=agent until=12:00:02.900")},
		},
		{
			name: "primary without agent: cannot be fenced, warned",
			b:    base().primaryGone(ago(3*time.Second)).inst("db1", func(in *Instance) { in.OwnerAgent = "" }),
			want: planSum{Kind: OpFailover, Trigger: TriggerAutomatic, Old: "db1", Expected: "db2", Epoch: 8,
				Steps: preSteps()},
			warnings: []string{"db1 has no agent and the leader cannot reach it"},
		},
		{
			name:    "blip: automatic failover refused with the reason",
			b:       base().down("db1", ClassTimeout, ago(5*time.Second)),
			refusal: []string{"db1 is not dead", "replicas db2, db3 still receive from db1"},
		},
		{
			name:    "isolated but lease not lapsed: refused until it lapses",
			b:       base().silent("a1", ago(2*time.Second)),
			refusal: []string{"lost the quorum", "its lease lapses at 12:00:01.000"},
		},
		{
			name:    "paused: automatic refused",
			b:       hostLost().state(func(s *ReplicatedState) { s.Paused = true }),
			refusal: []string{"paused"},
		},
		{
			name:    "anti-flap: automatic refused",
			b:       hostLost().state(func(s *ReplicatedState) { s.AntiFlapUntil = t0.Add(time.Minute) }),
			refusal: []string{"anti-flap window until 12:01:00.000"},
		},
		{
			name:    "anti-flap and pause: a manual failover bypasses both",
			b:       hostLost().state(func(s *ReplicatedState) { s.AntiFlapUntil, s.Paused = t0.Add(time.Minute), true }),
			trigger: TriggerManual,
			want: planSum{Kind: OpFailover, Trigger: TriggerManual, Old: "db1", Expected: "db2", Epoch: 8,
				Steps: preSteps("wait-lease db1 until=12:00:01.000")},
		},
		{
			name: "operation in progress: refused, manual too",
			b: hostLost().state(func(s *ReplicatedState) {
				s.Operation = Operation{Kind: OpSwitchover, ID: "op-9", StartedAt: ago(time.Second)}
			}),
			trigger: TriggerManual,
			refusal: []string{"operation op-9 (switchover) in progress"},
		},
		{
			name: "abandoned operation is taken over",
			b: hostLost().state(func(s *ReplicatedState) {
				s.Operation = Operation{Kind: OpFailover, ID: "op-8", StartedAt: ago(10 * time.Minute)}
			}),
			want: planSum{Kind: OpFailover, Trigger: TriggerAutomatic, Old: "db1", Expected: "db2", Epoch: 8, TakesOver: "op-8",
				Steps: preSteps("wait-lease db1 until=12:00:01.000")},
			warnings: []string{"operation op-8 (failover) started at 11:50:00.000 was abandoned"},
		},
		{
			name:    "nothing promotable: refused before anything is touched",
			b:       hostLost().rule("db2", PromotionMustNot).sqlStopped("db3", "Error 1062"),
			refusal: []string{"no instance can be promoted", "db2: promotion rule is must_not", "db3: SQL thread stopped with error: Error 1062"},
		},
		{
			name:    "manual failover of a healthy primary: planned, with a hint",
			b:       base(),
			trigger: TriggerManual,
			want: planSum{Kind: OpFailover, Trigger: TriggerManual, Old: "db1", Expected: "db2", Epoch: 8,
				Steps: preSteps("fence-old-primary db1 via=direct until=12:00:02.900 semisync")},
			warnings: []string{"a switchover would block writes for less time"},
		},
		{
			name:    "no primary recorded",
			b:       hostLost().state(func(s *ReplicatedState) { s.Primary = "" }),
			refusal: []string{"no primary is recorded"},
		},
		{
			name:   "forced failover to a replica behind: planned",
			b:      hostLost().exec("db3", "p:1-97"),
			target: "db3",
			want: planSum{Kind: OpForcedFailover, Trigger: TriggerManual, Old: "db1", Expected: "db3", Epoch: 8,
				Steps: []string{"record-intent db1 op=forced-failover epoch=7->8", "pre-hooks op=forced-failover", "unroute-old-primary db1 epoch=8",
					"wait-lease db1 until=12:00:01.000", "stop-io-threads [db2 db3]", "wait-relay-logs [db2 db3]", "choose-candidate [db2 db3]"}},
		},
		{
			name:    "forced failover to a replica with errant transactions: refused without force",
			b:       hostLost().exec("db3", "p:1-100,r3:1").knownErrant("db3", "r3:1"),
			target:  "db3",
			refusal: []string{"db3 may not be promoted: errant transactions r3:1", "force overrides"},
		},
		{
			name:   "forced failover to a replica with errant transactions: force warns",
			b:      hostLost().exec("db3", "p:1-100,r3:1").knownErrant("db3", "r3:1"),
			target: "db3", force: true,
			want: planSum{Kind: OpForcedFailover, Trigger: TriggerManual, Old: "db1", Expected: "db3", Epoch: 8,
				Steps: []string{"record-intent db1 op=forced-failover epoch=7->8", "pre-hooks op=forced-failover", "unroute-old-primary db1 epoch=8",
					"wait-lease db1 until=12:00:01.000", "stop-io-threads [db2 db3]", "wait-relay-logs [db2 db3]", "choose-candidate [db2 db3]"}},
			warnings: []string{"forced: db3: errant transactions r3:1"},
		},
		{
			name:    "forced failover to the primary itself",
			b:       hostLost(),
			target:  "db1",
			refusal: []string{"db1 is the primary being replaced"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, p := tc.b.build()
			var pl Plan
			var err error
			switch {
			case tc.target != "":
				pl, err = PlanForcedFailover(v, p, tc.target, tc.force)
			case tc.trigger == TriggerManual:
				pl, err = PlanFailover(v, p, TriggerManual)
			default:
				pl, err = PlanFailover(v, p, TriggerAutomatic)
			}
			checkPlan(t, pl, err, tc.want, tc.refusal, tc.warnings)
		})
	}
}

func TestChooseCandidate(t *testing.T) {
	hostLost := func() *B {
		return base().primaryGone(ago(3*time.Second)).silent("a1", ago(2*time.Second)).notLossless("db1")
	}
	pre := preSteps("wait-lease db1 until=12:00:01.000")
	withPre := func(tail []string) []string { return append(append([]string(nil), pre...), tail...) }
	cases := []struct {
		name     string
		before   *B
		fresh    *B
		target   string
		force    bool
		want     planSum
		refusal  []string
		warnings []string
	}{
		{
			name:   "plain: the first ranked is promoted, the other repointed",
			before: hostLost(),
			fresh:  hostLost().stopped(),
			want:   planSum{Kind: OpFailover, Trigger: TriggerAutomatic, Old: "db1", New: "db2", Expected: "db2", Epoch: 8, Steps: withPre(tail("db2", "db3"))},
		},
		{
			name:   "fresh facts change the choice: the most advanced after relay logs wins",
			before: hostLost(),
			fresh:  hostLost().stopped().exec("db3", "p:1-101"),
			want: planSum{Kind: OpFailover, Trigger: TriggerAutomatic, Old: "db1", New: "db3", Expected: "db2", Epoch: 8,
				Steps: withPre([]string{"promote db3 semisync", "repoint db2 source=db3 semisync", "route db3 epoch=8",
					"commit-epoch db3 gtid=p:1-101 epoch=7->8 antiflap=5m0s", "post-hooks op=failover"})},
		},
		{
			name:   "must_not most advanced: catch the permitted one up from it",
			before: hostLost().rule("db2", PromotionMustNot),
			fresh:  hostLost().stopped().rule("db2", PromotionMustNot).exec("db2", "p:1-103"),
			want: planSum{Kind: OpFailover, Trigger: TriggerAutomatic, Old: "db1", New: "db3", Expected: "db3", Epoch: 8,
				Steps: withPre([]string{"catch-up db3 source=db2 gtid=p:1-103", "promote db3 semisync", "repoint db2 source=db3 semisync",
					"route db3 epoch=8", "commit-epoch db3 gtid=p:1-103 epoch=7->8 antiflap=5m0s", "post-hooks op=failover"})},
		},
		{
			name:   "lag seen before the IO threads stopped still excludes",
			before: hostLost().lag("db2", 30*time.Second),
			fresh:  hostLost().stopped(),
			want:   planSum{Kind: OpFailover, Trigger: TriggerAutomatic, Old: "db1", New: "db3", Expected: "db3", Epoch: 8, Steps: withPre(tail("db3", "db2"))},
		},
		{
			name:    "replicas diverged on fresh facts: refuse, the runner undoes",
			before:  hostLost(),
			fresh:   hostLost().stopped().exec("db2", "p:1-101,x:1").exec("db3", "p:1-101,y:1"),
			refusal: []string{"the replicas have diverged"},
		},
		{
			name:   "chosen one died meanwhile: the next one is promoted, the dead one warned about",
			before: hostLost(),
			fresh:  hostLost().stopped().down("db2", ClassRefused, ago(200*ms)).notAcking("db2"),
			want: planSum{Kind: OpFailover, Trigger: TriggerAutomatic, Old: "db1", New: "db3", Expected: "db2", Epoch: 8,
				Steps: withPre([]string{"promote db3 semisync", "route db3 epoch=8", "commit-epoch db3 gtid=p:1-100 epoch=7->8 antiflap=5m0s", "post-hooks op=failover"})},
			warnings: []string{"db2 is unreachable and is not repointed now"},
		},
		{
			name:   "quarantined replica is left alone",
			before: hostLost().quarantine("db3", "errant r3:1"),
			fresh:  hostLost().stopped().quarantine("db3", "errant r3:1"),
			want: planSum{Kind: OpFailover, Trigger: TriggerAutomatic, Old: "db1", New: "db2", Expected: "db2", Epoch: 8,
				Steps: withPre([]string{"promote db2 semisync", "route db2 epoch=8", "commit-epoch db2 gtid=p:1-100 epoch=7->8 antiflap=5m0s", "post-hooks op=failover"})},
			warnings: []string{"db3 is quarantined (errant r3:1) and is left as it is"},
		},
		{
			name:   "delayed replica is repointed and keeps its delay",
			before: hostLost().delay("db3", time.Hour),
			fresh:  hostLost().stopped().delay("db3", time.Hour),
			want:   planSum{Kind: OpFailover, Trigger: TriggerAutomatic, Old: "db1", New: "db2", Expected: "db2", Epoch: 8, Steps: withPre(tail("db2", "db3"))},
		},
		{
			name:   "candidate applies its own relay log first",
			before: hostLost(),
			fresh:  hostLost().stopped().exec("db2", "p:1-99").retrieved("db2", "p:1-101").exec("db3", "p:1-100"),
			want: planSum{Kind: OpFailover, Trigger: TriggerAutomatic, Old: "db1", New: "db2", Expected: "db2", Epoch: 8,
				Steps: withPre([]string{"catch-up db2 source=db2 gtid=p:1-101", "promote db2 semisync", "repoint db3 source=db2 semisync",
					"route db2 epoch=8", "commit-epoch db2 gtid=p:1-101 epoch=7->8 antiflap=5m0s", "post-hooks op=failover"})},
		},
		{
			name:   "async durability: no semi-sync on promote and repoint",
			before: hostLost().policy(func(p *Policy) { p.Durability = DurabilityAsync }),
			fresh:  hostLost().stopped().policy(func(p *Policy) { p.Durability = DurabilityAsync }),
			want: planSum{Kind: OpFailover, Trigger: TriggerAutomatic, Old: "db1", New: "db2", Expected: "db2", Epoch: 8,
				Steps: withPre([]string{"promote db2", "repoint db3 source=db2", "route db2 epoch=8",
					"commit-epoch db2 gtid=p:1-100 epoch=7->8 antiflap=5m0s", "post-hooks op=failover"})},
		},
		{
			name:   "forced target kept on fresh facts and caught up",
			before: hostLost().exec("db3", "p:1-97"),
			fresh:  hostLost().stopped().exec("db3", "p:1-97"),
			target: "db3",
			want: planSum{Kind: OpForcedFailover, Trigger: TriggerManual, Old: "db1", New: "db3", Expected: "db3", Epoch: 8,
				Steps: []string{"record-intent db1 op=forced-failover epoch=7->8", "pre-hooks op=forced-failover", "unroute-old-primary db1 epoch=8",
					"wait-lease db1 until=12:00:01.000", "stop-io-threads [db2 db3]", "wait-relay-logs [db2 db3]", "choose-candidate [db2 db3]",
					"catch-up db3 source=db2 gtid=p:1-100", "promote db3 semisync", "repoint db2 source=db3 semisync", "route db3 epoch=8",
					"commit-epoch db3 gtid=p:1-100 epoch=7->8 antiflap=5m0s", "post-hooks op=forced-failover"}},
		},
		{
			name:     "lost transactions are carried as a warning",
			before:   hostLost().lastSeen("db1", "p:1-102"),
			fresh:    hostLost().stopped().lastSeen("db1", "p:1-102"),
			want:     planSum{Kind: OpFailover, Trigger: TriggerAutomatic, Old: "db1", New: "db2", Expected: "db2", Epoch: 8, Steps: withPre(tail("db2", "db3"))},
			warnings: []string{"transactions p:101-102 were last seen on db1"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, p := tc.before.build()
			var first Plan
			var err error
			if tc.target != "" {
				first, err = PlanForcedFailover(v, p, tc.target, tc.force)
			} else {
				first, err = PlanFailover(v, p, TriggerAutomatic)
			}
			if err != nil {
				t.Fatalf("first phase: %v", err)
			}
			fv, fp := tc.fresh.build()
			pl, err := ChooseCandidate(fv, fp, first)
			checkPlan(t, pl, err, tc.want, tc.refusal, tc.warnings)
			if len(first.Steps) != len(pre) && tc.target == "" {
				t.Errorf("ChooseCandidate changed the first phase's steps")
			}
		})
	}
}

func TestChooseCandidateRejectsOtherPlans(t *testing.T) {
	v, p := base().build()
	sw, err := PlanSwitchover(v, p, "db2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ChooseCandidate(v, p, sw); err == nil || errors.Is(err, ErrRefused) {
		t.Fatalf("want a usage error, got %v", err)
	}
}

func TestPlanSwitchover(t *testing.T) {
	steps := func(to, other string) []string {
		return []string{
			"record-intent db1 op=switchover epoch=7->8",
			"pre-hooks op=switchover",
			"wait-long-transactions db1",
			"stop-io-threads [" + other + "]",
			"repoint " + other + " source=" + to + " semisync chain undo=repoint source=db1",
			"fence-old-primary db1 via=direct semisync",
			"unroute-old-primary db1 epoch=8",
			"catch-up " + to + " source=db1 forbid-extra",
			"promote " + to + " semisync",
			"route " + to + " epoch=8",
			"commit-epoch " + to + " epoch=7->8",
			"repoint db1 source=" + to + " demote semisync",
			"post-hooks op=switchover",
		}
	}
	cases := []struct {
		name    string
		b       *B
		target  string
		want    planSum
		refusal []string
	}{
		{
			name: "no target: the best replica",
			b:    base(),
			want: planSum{Kind: OpSwitchover, Trigger: TriggerManual, Old: "db1", New: "db2", Epoch: 8, Steps: steps("db2", "db3")},
		},
		{
			name: "no target: prefer wins among equals",
			b:    base().rule("db3", PromotionPrefer),
			want: planSum{Kind: OpSwitchover, Trigger: TriggerManual, Old: "db1", New: "db3", Epoch: 8, Steps: steps("db3", "db2")},
		},
		{
			name:   "named target",
			b:      base(),
			target: "db3",
			want:   planSum{Kind: OpSwitchover, Trigger: TriggerManual, Old: "db1", New: "db3", Epoch: 8, Steps: steps("db3", "db2")},
		},
		{
			name:   "paused: a switchover is manual and allowed",
			b:      base().state(func(s *ReplicatedState) { s.Paused = true }),
			target: "db2",
			want:   planSum{Kind: OpSwitchover, Trigger: TriggerManual, Old: "db1", New: "db2", Epoch: 8, Steps: steps("db2", "db3")},
		},
		{
			name: "no target: a lagging replica is passed over",
			b:    base().lag("db2", 5*time.Second),
			want: planSum{Kind: OpSwitchover, Trigger: TriggerManual, Old: "db1", New: "db3", Epoch: 8, Steps: steps("db3", "db2")},
		},
		{
			// The old primary still needs two acknowledgements until its
			// fence: db3 stays under it, and goes under db2 after the
			// catch-up.
			name: "semi_sync_wait_for 2: the other replica is not chained",
			b:    base().policy(func(p *Policy) { p.SemiSyncWaitFor = 2 }),
			want: planSum{Kind: OpSwitchover, Trigger: TriggerManual, Old: "db1", New: "db2", Epoch: 8, Steps: []string{
				"record-intent db1 op=switchover epoch=7->8",
				"pre-hooks op=switchover",
				"wait-long-transactions db1",
				"fence-old-primary db1 via=direct semisync",
				"unroute-old-primary db1 epoch=8",
				"catch-up db2 source=db1 forbid-extra",
				"repoint db3 source=db2 semisync undo=repoint source=db1",
				"promote db2 semisync",
				"route db2 epoch=8",
				"commit-epoch db2 epoch=7->8",
				"repoint db1 source=db2 demote semisync",
				"post-hooks op=switchover",
			}},
		},
		{
			name: "async durability: the other replica is chained all the same",
			b:    base().policy(func(p *Policy) { p.Durability, p.SemiSyncWaitFor = DurabilityAsync, 2 }),
			want: planSum{Kind: OpSwitchover, Trigger: TriggerManual, Old: "db1", New: "db2", Epoch: 8, Steps: []string{
				"record-intent db1 op=switchover epoch=7->8",
				"pre-hooks op=switchover",
				"wait-long-transactions db1",
				"stop-io-threads [db3]",
				"repoint db3 source=db2 chain undo=repoint source=db1",
				"fence-old-primary db1 via=direct",
				"unroute-old-primary db1 epoch=8",
				"catch-up db2 source=db1 forbid-extra",
				"promote db2",
				"route db2 epoch=8",
				"commit-epoch db2 epoch=7->8",
				"repoint db1 source=db2 demote",
				"post-hooks op=switchover",
			}},
		},
		{
			name:    "target lags: refused",
			b:       base().lag("db3", 5*time.Second),
			target:  "db3",
			refusal: []string{"db3 cannot take over", "lags 5s, more than switchover_max_lag 2s"},
		},
		{
			name:    "target lag unknown: refused",
			b:       base().replica("db3", func(rs *ReplicaStatus) { rs.Lag = nil }),
			target:  "db3",
			refusal: []string{"lag unknown"},
		},
		{
			name:    "target must_not: refused",
			b:       base().rule("db3", PromotionMustNot),
			target:  "db3",
			refusal: []string{"promotion rule is must_not"},
		},
		{
			name:    "target is the primary: refused",
			b:       base(),
			target:  "db1",
			refusal: []string{"db1 is already the primary"},
		},
		{
			name:    "target holds errant transactions: refused",
			b:       base().exec("db3", "p:1-100,r3:1").probes("db1", func(pr *Probe) { pr.ObservedAt = ago(100 * ms) }),
			target:  "db3",
			refusal: []string{"errant transactions r3:1"},
		},
		{
			name:    "target not replicating: refused",
			b:       base().io("db3", IONo),
			target:  "db3",
			refusal: []string{"IO thread is No"},
		},
		{
			name:    "target with a broken SQL thread: refused",
			b:       base().sqlStopped("db3", "Error 1032"),
			target:  "db3",
			refusal: []string{"SQL thread stopped with error: Error 1032"},
		},
		{
			name:    "target replicates from a sibling: refused",
			b:       base().source("db3", "db2"),
			target:  "db3",
			refusal: []string{"does not replicate from the primary db1"},
		},
		{
			name:    "target delayed: refused",
			b:       base().delay("db3", time.Hour).lag("db3", time.Hour),
			target:  "db3",
			refusal: []string{"delayed replica"},
		},
		{
			name:    "target unreachable: refused",
			b:       base().down("db3", ClassTimeout, ago(time.Second)),
			target:  "db3",
			refusal: []string{"unreachable from the leader"},
		},
		{
			name:    "primary dead: use a failover",
			b:       base().primaryGone(ago(3 * time.Second)),
			refusal: []string{"a switchover needs a healthy primary; use a failover"},
		},
		{
			name:    "primary read-only: refused",
			b:       base().writable("db1", false),
			refusal: []string{"db1 is read-only"},
		},
		{
			name:    "no replica can take over",
			b:       base().lag("db2", 5*time.Second).rule("db3", PromotionMustNot),
			refusal: []string{"no replica can take over", "db2: lags 5s", "db3: promotion rule is must_not"},
		},
		{
			name: "operation in progress: refused",
			b: base().state(func(s *ReplicatedState) {
				s.Operation = Operation{Kind: OpRejoin, ID: "op-3", StartedAt: ago(time.Second), Target: "db3"}
			}),
			refusal: []string{"operation op-3 (rejoin to db3) in progress"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, p := tc.b.build()
			pl, err := PlanSwitchover(v, p, tc.target)
			checkPlan(t, pl, err, tc.want, tc.refusal, nil)
		})
	}
}

func TestPlanRejoin(t *testing.T) {
	// After a failover: db2 is the primary of epoch 8, db1 (the old primary)
	// is back, read-only and not a replica.
	after := func() *B {
		return base().state(func(s *ReplicatedState) { s.Primary, s.Epoch = "db2", 8 }).
			notReplica("db2").writable("db2", true).source("db3", "db2").
			writable("db1", false).
			probes("db2", func(pr *Probe) { pr.ObservedAt = ago(100 * ms) })
	}
	cases := []struct {
		name     string
		b        *B
		instance string
		want     planSum
		refusal  []string
		warnings []string
		errant   string
	}{
		{
			name:     "subset of the new primary: rejoined as a demoted replica",
			b:        after().exec("db2", "p:1-110"),
			instance: "db1",
			want: planSum{Kind: OpRejoin, Trigger: TriggerManual, Old: "db2", Epoch: 8, Steps: []string{
				"record-intent db1 op=rejoin epoch=8->8", "fence db1", "repoint db1 source=db2 demote semisync", "finish op=rejoin"}},
		},
		{
			name:     "errant transactions: quarantined and reported, never rejoined",
			b:        after().exec("db1", "p:1-103").exec("db2", "p:1-101"),
			instance: "db1",
			want: planSum{Kind: OpQuarantine, Trigger: TriggerManual, Old: "db2", Epoch: 8, Steps: []string{
				"record-intent db1 op=quarantine epoch=8->8", "fence db1", "quarantine db1 gtid=p:102-103", "finish op=quarantine"}},
			warnings: []string{"db1 holds errant transactions p:102-103 that db2 lacks", "kept read-only, never silently rejoined"},
		},
		{
			name:     "still errant while quarantined: refused with the fix",
			b:        after().exec("db1", "p:1-103").exec("db2", "p:1-101").quarantine("db1", "errant p:102-103"),
			instance: "db1",
			refusal:  []string{"db1 is quarantined and still holds errant transactions p:102-103", "re-clone it from db2"},
		},
		{
			name:     "repaired while quarantined: rejoined and lifted",
			b:        after().exec("db2", "p:1-110").quarantine("db1", "errant p:102-103"),
			instance: "db1",
			want: planSum{Kind: OpRejoin, Trigger: TriggerManual, Old: "db2", Epoch: 8, Steps: []string{
				"record-intent db1 op=rejoin epoch=8->8", "fence db1", "repoint db1 source=db2 demote semisync", "lift-quarantine db1", "finish op=rejoin"}},
		},
		{
			name:     "still writable: fence first",
			b:        after().writable("db1", true),
			instance: "db1",
			refusal:  []string{"db1 is writable although db2 is the primary of epoch 8"},
		},
		{
			name:     "unreachable: later",
			b:        after().down("db1", ClassRefused, ago(time.Second)),
			instance: "db1",
			refusal:  []string{"rejoin it when it is back"},
		},
		{
			name:     "already a replica of the primary: nothing to do",
			b:        after(),
			instance: "db3",
			refusal:  []string{"db3 already replicates from db2: nothing to do"},
		},
		{
			name:     "the primary itself",
			b:        after(),
			instance: "db2",
			refusal:  []string{"db2 is the primary of epoch 8"},
		},
		{
			name:     "primary unreachable: cannot judge",
			b:        after().down("db2", ClassTimeout, ago(time.Second)),
			instance: "db1",
			refusal:  []string{"its GTID set is needed to judge db1"},
		},
		{
			name:     "unknown instance",
			b:        after(),
			instance: "db9",
			refusal:  []string{"db9 is not an instance of cluster main"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, p := tc.b.build()
			pl, err := PlanRejoin(v, p, tc.instance)
			checkPlan(t, pl, err, tc.want, tc.refusal, tc.warnings)
		})
	}
}

func TestPlanSmallActions(t *testing.T) {
	cases := []struct {
		name    string
		plan    func(View, Policy) (Plan, error)
		b       *B
		want    planSum
		refusal []string
	}{
		{
			name: "fence a writable replica",
			plan: func(v View, p Policy) (Plan, error) { return PlanFence(v, p, "db3") },
			b:    base().writable("db3", true),
			want: planSum{Kind: OpFence, Trigger: TriggerAutomatic, Old: "db1", Epoch: 7, Steps: []string{
				"record-intent db3 op=fence epoch=7->7", "fence db3", "unroute-old-primary db3 epoch=7", "finish op=fence"}},
		},
		{
			name:    "fencing the primary is a failover's job",
			plan:    func(v View, p Policy) (Plan, error) { return PlanFence(v, p, "db1") },
			b:       base(),
			refusal: []string{"fencing it is part of a failover or switchover"},
		},
		{
			name: "repoint a replica under the primary",
			plan: func(v View, p Policy) (Plan, error) { return PlanRepoint(v, p, "db3") },
			b:    base().source("db3", "db2").probes("db1", func(pr *Probe) { pr.ObservedAt = ago(100 * ms) }),
			want: planSum{Kind: OpRepoint, Trigger: TriggerAutomatic, Old: "db1", Epoch: 7, Steps: []string{
				"record-intent db3 op=repoint epoch=7->7", "repoint db3 source=db1 semisync", "finish op=repoint"}},
		},
		{
			name:    "repoint refused with errant transactions",
			plan:    func(v View, p Policy) (Plan, error) { return PlanRepoint(v, p, "db3") },
			b:       base().source("db3", "db2").exec("db3", "p:1-100,r3:1").probes("db1", func(pr *Probe) { pr.ObservedAt = ago(100 * ms) }),
			refusal: []string{"cannot be repointed safely: it holds errant transactions r3:1"},
		},
		{
			name:    "repoint refused until the sets can be compared",
			plan:    func(v View, p Policy) (Plan, error) { return PlanRepoint(v, p, "db3") },
			b:       base().source("db3", "db2").probes("db1", func(pr *Probe) { pr.ObservedAt = ago(time.Second) }),
			refusal: []string{"cannot be compared with the primary's yet"},
		},
		{
			name: "restore writes on the lease holder's primary",
			plan: PlanRestoreWrites,
			b:    base().writable("db1", false),
			want: planSum{Kind: OpRestoreWrites, Trigger: TriggerAutomatic, Old: "db1", Epoch: 7, Steps: []string{
				"record-intent db1 op=restore-writes epoch=7->7", "set-writable db1 semisync", "route db1 epoch=7", "finish op=restore-writes"}},
		},
		{
			// The leader's fallback stands: the primary commits
			// asynchronously by decision, and a restart does not change that.
			name: "restore writes after the leader's semi-sync fallback: no lossless source side",
			plan: PlanRestoreWrites,
			b: base().writable("db1", false).
				state(func(s *ReplicatedState) { s.SemiSyncDegraded, s.SemiSyncDegradedSince = true, ago(time.Minute) }),
			want: planSum{Kind: OpRestoreWrites, Trigger: TriggerAutomatic, Old: "db1", Epoch: 7, Steps: []string{
				"record-intent db1 op=restore-writes epoch=7->7", "set-writable db1", "route db1 epoch=7", "finish op=restore-writes"}},
		},
		{
			name: "restore writes under async durability: read_only only",
			plan: PlanRestoreWrites,
			b:    base().writable("db1", false).policy(func(p *Policy) { p.Durability = DurabilityAsync }),
			want: planSum{Kind: OpRestoreWrites, Trigger: TriggerAutomatic, Old: "db1", Epoch: 7, Steps: []string{
				"record-intent db1 op=restore-writes epoch=7->7", "set-writable db1", "route db1 epoch=7", "finish op=restore-writes"}},
		},
		{
			name:    "restore writes refused while another instance is writable",
			plan:    PlanRestoreWrites,
			b:       base().writable("db1", false).writable("db3", true),
			refusal: []string{"db3 is writable: it must be fenced first"},
		},
		{
			name:    "restore writes refused on a writable primary",
			plan:    PlanRestoreWrites,
			b:       base(),
			refusal: []string{"nothing to restore"},
		},
		{
			name: "configure semi-sync",
			plan: PlanConfigureSemiSync,
			b:    base().semi(func(s *SemiSyncState) { *s = SemiSyncState{} }),
			want: planSum{Kind: OpConfigureSemiSync, Trigger: TriggerAutomatic, Old: "db1", Epoch: 7, Steps: []string{
				"record-intent db1 op=configure-semi-sync epoch=7->7", "configure-semi-sync db2 role=replica", "configure-semi-sync db3 role=replica",
				"configure-semi-sync db1 role=source semisync", "finish op=configure-semi-sync"}},
		},
		{
			name: "fence refused while another operation runs",
			plan: func(v View, p Policy) (Plan, error) { return PlanFence(v, p, "db3") },
			b: base().writable("db3", true).state(func(s *ReplicatedState) {
				s.Operation = Operation{Kind: OpSwitchover, ID: "op-5", StartedAt: ago(time.Second)}
			}),
			refusal: []string{"operation op-5 (switchover) in progress"},
		},
		{
			name:    "automatic restore writes refused while paused",
			plan:    PlanRestoreWrites,
			b:       base().writable("db1", false).state(func(s *ReplicatedState) { s.Paused = true }),
			refusal: []string{"paused"},
		},
		{
			// Issue 9, defect 3: the decision is in Raft before any commit
			// can be acknowledged without a replica.
			name: "semi-sync fallback after semi_sync_fallback: recorded, then the source side off",
			plan: PlanSemiSyncFallback,
			b: base().semi(func(s *SemiSyncState) { s.SourceClients, s.ShortSince = 0, ago(31*time.Second) }).
				policy(func(p *Policy) { p.SemiSyncFallback = 30 * time.Second }),
			want: planSum{Kind: OpSemiSyncFallback, Trigger: TriggerAutomatic, Old: "db1", Epoch: 7, Steps: []string{
				"record-intent db1 op=semi-sync-fallback epoch=7->7", "record-semi-sync db1 role=degraded",
				"configure-semi-sync db1 role=off", "finish op=semi-sync-fallback"}},
		},
		{
			name:    "semi-sync fallback refused while semi_sync_fallback is never",
			plan:    PlanSemiSyncFallback,
			b:       base().semi(func(s *SemiSyncState) { s.SourceClients, s.ShortSince = 0, ago(time.Hour) }),
			refusal: []string{"semi_sync_fallback is never"},
		},
		{
			name: "semi-sync fallback refused before semi_sync_fallback has passed",
			plan: PlanSemiSyncFallback,
			b: base().semi(func(s *SemiSyncState) { s.SourceClients, s.ShortSince = 0, ago(10*time.Second) }).
				policy(func(p *Policy) { p.SemiSyncFallback = 30 * time.Second }),
			refusal: []string{"too few semi-sync replicas since 11:59:50.000 only"},
		},
		{
			name: "configure semi-sync after a fallback: a recorded restore",
			plan: PlanConfigureSemiSync,
			b: base().semi(func(s *SemiSyncState) { *s = SemiSyncState{} }).
				state(func(s *ReplicatedState) { s.SemiSyncDegraded, s.SemiSyncDegradedSince = true, ago(time.Minute) }),
			want: planSum{Kind: OpSemiSyncRestore, Trigger: TriggerAutomatic, Old: "db1", Epoch: 7, Steps: []string{
				"record-intent db1 op=semi-sync-restore epoch=7->7", "configure-semi-sync db2 role=replica", "configure-semi-sync db3 role=replica",
				"configure-semi-sync db1 role=source semisync", "record-semi-sync db1 role=restored", "finish op=semi-sync-restore"}},
		},
		{
			name:    "configure semi-sync refused under async durability",
			plan:    PlanConfigureSemiSync,
			b:       base().policy(func(p *Policy) { p.Durability = DurabilityAsync }),
			refusal: []string{"durability is async"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, p := tc.b.build()
			pl, err := tc.plan(v, p)
			checkPlan(t, pl, err, tc.want, tc.refusal, nil)
		})
	}
}

// PlanAction closes the loop the runner runs: Analyze, then plan the first
// actionable problem.
func TestPlanAction(t *testing.T) {
	cases := []struct {
		name    string
		b       *B
		kind    OperationKind
		refusal []string
	}{
		{name: "dead primary → failover", b: base().primaryGone(ago(3*time.Second)).silent("a1", ago(2*time.Second)), kind: OpFailover},
		{name: "two writers → fence", b: base().writable("db3", true), kind: OpFence},
		{name: "former primary → rejoin", b: base().notReplica("db3"), kind: OpRejoin},
		{name: "replica elsewhere → repoint", b: base().source("db3", "db2").probes("db1", func(pr *Probe) { pr.ObservedAt = ago(100 * ms) }), kind: OpRepoint},
		{name: "read-only primary → restore writes", b: base().writable("db1", false), kind: OpRestoreWrites},
		{name: "semi-sync off → configure", b: base().semi(func(s *SemiSyncState) { *s = SemiSyncState{} }), kind: OpConfigureSemiSync},
		{name: "paused dead primary → refused with the blocker", b: base().primaryGone(ago(3 * time.Second)).state(func(s *ReplicatedState) { s.Paused = true }), refusal: []string{"DeadPrimary is not actionable", "paused"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, p := tc.b.build()
			probs := Analyze(v, p)
			var target Problem
			for _, pr := range probs {
				if pr.Action != ActionNone {
					target = pr
					break
				}
			}
			pl, err := PlanAction(v, p, target)
			if len(tc.refusal) > 0 {
				if !errors.Is(err, ErrRefused) {
					t.Fatalf("want refusal, got %v", err)
				}
				mustContain(t, "refusal", err.Error(), tc.refusal...)
				return
			}
			if err != nil {
				t.Fatalf("PlanAction(%s): %v", target.Code, err)
			}
			check(t, "kind", tc.kind, pl.Kind)
			if pl.Trigger != TriggerAutomatic {
				t.Errorf("trigger %s, want automatic", pl.Trigger)
			}
		})
	}
}

func TestPlannersRejectInvalidInput(t *testing.T) {
	v, p := base().build()
	bad := p
	bad.LeaseTimeout = 0
	if _, err := PlanFailover(v, bad, TriggerManual); !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("PlanFailover with a bad policy: %v", err)
	}
	v.Leader = ""
	if _, err := PlanSwitchover(v, p, ""); !errors.Is(err, ErrInvalidView) {
		t.Errorf("PlanSwitchover with a bad view: %v", err)
	}
}

// Issue 9, defect 1: an instance an aborted operation promoted (replication
// reset, perhaps writable) was invisible to the next leader: "not a
// replica", its transactions left out, and it stayed writable beside the
// next primary. Recorded as uncommitted, it is fenced before anyone is
// promoted, its data counts, and it may be promoted again.
func TestPlanFailoverFencesAndCountsAnUncommittedPromotion(t *testing.T) {
	uncommitted := func(b *B) *B {
		return b.notReplica("db2").writable("db2", true).exec("db2", "p:1-105").
			state(func(s *ReplicatedState) { s.Uncommitted = map[string]string{"db2": "op-9"} })
	}
	t.Run("primary dead: db2 fenced first, then promoted again with its writes", func(t *testing.T) {
		v, p := uncommitted(base().primaryGone(ago(3*time.Second)).silent("a1", ago(2*time.Second))).build()
		pl, err := PlanFailover(v, p, TriggerAutomatic)
		if err != nil {
			t.Fatal(err)
		}
		lines := summarizePlan(pl).Steps
		fence, stop := -1, -1
		for i, l := range lines {
			switch {
			case strings.HasPrefix(l, "fence-old-primary db2 via=direct"):
				fence = i
			case strings.HasPrefix(l, "stop-io-threads"):
				stop = i
			}
		}
		if fence < 0 || stop < fence {
			t.Fatalf("db2 is not fenced before the IO threads stop: %v", lines)
		}
		if s := pl.Steps[fence]; s.Undo != "" || s.Irreversible {
			t.Errorf("the fence of db2 has undo %q, irreversible %v: an abort must not make it writable", s.Undo, s.Irreversible)
		}
		mustContain(t, "why", pl.Steps[fence].Why, "promoted by the aborted operation op-9")
		if pl.Expected != "db2" {
			t.Errorf("expected candidate %q, want db2 (it holds p:101-105, which no one else has)", pl.Expected)
		}
		if got := gtidText(pl.Ranking.Target); got != "p:1-105" {
			t.Errorf("target %s, want p:1-105: db2's writes count", got)
		}
	})
	t.Run("primary alive and read-only (an aborted switchover): the change of primary is finished", func(t *testing.T) {
		v, p := uncommitted(base().writable("db1", false)).build()
		pl, err := PlanFailover(v, p, TriggerAutomatic)
		if err != nil {
			t.Fatalf("automatic failover refused: %v", err)
		}
		if pl.Expected != "db2" {
			t.Errorf("expected %q, want db2", pl.Expected)
		}
		probs := Analyze(v, p)
		if probs[0].Code != UncommittedPromotion || !probs[0].Actionable || probs[0].Action != ActionFailover {
			t.Fatalf("first problem %s actionable=%v action=%s, want an actionable UncommittedPromotion failover", probs[0].Code, probs[0].Actionable, probs[0].Action)
		}
		for _, pr := range probs {
			if pr.Code == PrimaryNotWritable || pr.Code == WritableReplica {
				t.Errorf("%s reported beside the uncommitted promotion: restoring db1 or fencing db2 alone would drop db2's writes", pr.Code)
			}
		}
	})
}

// Found by the chaos campaign (MariaDB, seed 20261911): a failover's leader
// was cut off right after promoting db2 and repointing db3 under it; db2
// took writes (q:1-4) that db3 received, while the old primary db1, fenced
// by lossless semi-sync, still committed one its client never had
// acknowledged (p:101, received by no replica). The next leader refused to
// finish: db2's and db3's q:1-4 were judged errant against db1, and nothing
// ran again. Transactions an uncommitted promotion holds are data; the old
// primary's that no replica received were never acknowledged under lossless
// semi-sync, so db2 is promoted again and db1 keeps p:101 alone.
func TestFailoverFinishesAnUncommittedPromotionThatDivergedFromTheOldPrimary(t *testing.T) {
	diverged := func() *B {
		return base().writable("db1", false).exec("db1", "p:1-101").lastSeen("db1", "p:1-101").
			notReplica("db2").exec("db2", "p:1-100,q:1-4").
			source("db3", "db2").exec("db3", "p:1-100,q:1-4").
			state(func(s *ReplicatedState) { s.Uncommitted = map[string]string{"db2": "op-9"} })
	}
	t.Run("lossless semi-sync: db2 promoted again, db1's unreceived transaction left to it", func(t *testing.T) {
		v, p := diverged().build()
		probs := Analyze(v, p)
		if probs[0].Code != UncommittedPromotion || !probs[0].Actionable {
			t.Fatalf("first problem %s actionable=%v (%s; blockers %v), want an actionable UncommittedPromotion", probs[0].Code, probs[0].Actionable, probs[0].Reason, probs[0].Blockers)
		}
		for _, pr := range probs {
			if pr.Code == ErrantGTIDOnReplica {
				t.Errorf("%s reported on %v: db2's writes are not errant while its promotion is pending", pr.Code, pr.Instances)
			}
		}
		pl, err := PlanFailover(v, p, TriggerAutomatic)
		if err != nil {
			t.Fatalf("automatic failover refused: %v", err)
		}
		fresh := v
		pl, err = ChooseCandidate(fresh, p, pl)
		if err != nil {
			t.Fatalf("choose-candidate refused: %v", err)
		}
		if pl.NewPrimary != "db2" {
			t.Errorf("new primary %q, want db2", pl.NewPrimary)
		}
		if got := gtidText(pl.Ranking.Target); got != "p:1-100,q:1-4" {
			t.Errorf("target %s, want p:1-100,q:1-4: db2's writes count, db1's unreceived p:101 does not", got)
		}
		for _, s := range pl.Steps {
			if s.Kind == StepCatchUp {
				t.Errorf("a catch-up step %+v: db2 holds all that counts", s)
			}
		}
		mustContain(t, "warnings", strings.Join(pl.Warnings, "\n"), "db1 holds p:101", "no replica received")
	})
	// Found by the chaos campaign (MySQL, seed 20262215): the old primary's
	// agent had switched its semi-sync source side off to release the
	// commits of the sessions its fence killed, so it was last seen
	// committing without semi-sync, and the failover refused; db2's
	// acknowledged writes stayed off the recorded primary and nothing was
	// writable.
	t.Run("the old primary's source side switched off, its settings lossless: db2 promoted again", func(t *testing.T) {
		v, p := diverged().inst("db1", func(in *Instance) {
			in.LastSeen.SemiSync.SourceEnabled, in.LastSeen.SemiSync.SourceActive, in.LastSeen.ReadOnly = false, false, true
		}).build()
		pl, err := PlanFailover(v, p, TriggerAutomatic)
		if err != nil {
			t.Fatalf("automatic failover refused: %v", err)
		}
		if pl, err = ChooseCandidate(v, p, pl); err != nil || pl.NewPrimary != "db2" {
			t.Fatalf("choose-candidate: %v, new primary %q; want db2", err, pl.NewPrimary)
		}
		if v.Instances["db1"].LastSeen.SemiSync.SourceEnabled {
			t.Error("the ranking changed the view it was given")
		}
	})
	t.Run("not lossless: both sides may hold acknowledged writes, refused", func(t *testing.T) {
		v, p := diverged().notLossless("db1").build()
		_, err := PlanFailover(v, p, TriggerAutomatic)
		if err == nil {
			t.Fatal("automatic failover planned, want a refusal: db1's p:101 may have been acknowledged")
		}
		mustContain(t, "refusal", err.Error(), "diverged", "p:101", "q:1-4", "--force")
	})
}

// Issue 14: an instance in maintenance is never promoted, but its data
// counts; the maintenance ends by itself.
func TestFailoverNeverPromotesAnInstanceInMaintenance(t *testing.T) {
	dead := func() *B { return base().primaryGone(ago(3*time.Second)).silent("a1", ago(2*time.Second)) }
	t.Run("db2, first by name, is in maintenance: db3 is promoted", func(t *testing.T) {
		v, p := dead().maintenance("db2", t0.Add(time.Hour)).build()
		pl, err := PlanFailover(v, p, TriggerAutomatic)
		if err != nil {
			t.Fatal(err)
		}
		if pl.Expected != "db3" {
			t.Errorf("expected %q, want db3", pl.Expected)
		}
		c, _ := pl.Ranking.candidate("db2")
		mustContain(t, "db2's exclusions", strings.Join(c.Exclusions, "; "), "in maintenance until", "kernel upgrade", "by alice")
	})
	t.Run("its data counts: db3 catches up from it", func(t *testing.T) {
		v, p := dead().maintenance("db2", t0.Add(time.Hour)).exec("db2", "p:1-105").build()
		pl, err := PlanFailover(v, p, TriggerAutomatic)
		if err != nil {
			t.Fatal(err)
		}
		pl, err = ChooseCandidate(v, p, pl)
		if err != nil {
			t.Fatal(err)
		}
		if pl.NewPrimary != "db3" || pl.Ranking.CatchUpFrom != "db2" {
			t.Errorf("new primary %q catching up from %q, want db3 from db2", pl.NewPrimary, pl.Ranking.CatchUpFrom)
		}
	})
	t.Run("the maintenance ended: db2 is promoted", func(t *testing.T) {
		v, p := dead().maintenance("db2", t0).build()
		pl, err := PlanFailover(v, p, TriggerAutomatic)
		if err != nil {
			t.Fatal(err)
		}
		if pl.Expected != "db2" {
			t.Errorf("expected %q, want db2", pl.Expected)
		}
	})
	t.Run("a forced failover to it needs --force", func(t *testing.T) {
		v, p := dead().maintenance("db2", t0.Add(time.Hour)).build()
		if _, err := PlanForcedFailover(v, p, "db2", false); err == nil || !strings.Contains(err.Error(), "in maintenance") {
			t.Errorf("forced failover to db2 without --force: %v, want a refusal naming the maintenance", err)
		}
		if _, err := PlanForcedFailover(v, p, "db2", true); err != nil {
			t.Errorf("forced failover to db2 with --force: %v", err)
		}
	})
}

// Issue 14: location labels. promotion_same forbids crossing a label (a
// region), promotion_prefer_same prefers sharing one (a zone) when the data
// allows.
func TestFailoverHonoursLocationLabels(t *testing.T) {
	labels := func(b *B, l map[string]map[string]string) *B {
		for n, m := range l {
			b.inst(n, func(in *Instance) { in.Labels = m })
		}
		return b
	}
	located := func() *B {
		return labels(base().primaryGone(ago(3*time.Second)).silent("a1", ago(2*time.Second)), map[string]map[string]string{
			"db1": {"region": "eu", "zone": "eu-1a"},
			"db2": {"region": "us", "zone": "us-1a"},
			"db3": {"region": "eu", "zone": "eu-1b"},
		})
	}
	t.Run("promotion_same region: db2 in another region is never promoted", func(t *testing.T) {
		v, p := located().policy(func(p *Policy) { p.PromotionSame = []string{"region"} }).build()
		pl, err := PlanFailover(v, p, TriggerAutomatic)
		if err != nil {
			t.Fatal(err)
		}
		if pl.Expected != "db3" {
			t.Errorf("expected %q, want db3 (db2 is in region us)", pl.Expected)
		}
		c, _ := pl.Ranking.candidate("db2")
		mustContain(t, "db2's exclusions", strings.Join(c.Exclusions, "; "), `its region is "us", the old primary's "eu": promotion_same forbids crossing it`)
	})
	t.Run("promotion_same region with no candidate in the region: refused with the reason", func(t *testing.T) {
		v, p := located().lag("db3", time.Hour).policy(func(p *Policy) { p.PromotionSame = []string{"region"} }).build()
		_, err := PlanFailover(v, p, TriggerAutomatic)
		if err == nil {
			t.Fatal("planned a failover across regions")
		}
		mustContain(t, "refusal", err.Error(), "promotion_same forbids crossing it")
		if _, err := PlanForcedFailover(v, p, "db2", true); err != nil {
			t.Errorf("a forced failover with --force: %v", err)
		}
	})
	t.Run("no label rule: db2 first by name", func(t *testing.T) {
		v, p := located().build()
		pl, err := PlanFailover(v, p, TriggerAutomatic)
		if err != nil {
			t.Fatal(err)
		}
		if pl.Expected != "db2" {
			t.Errorf("expected %q, want db2", pl.Expected)
		}
	})
	t.Run("promotion_prefer_same zone: the replica in the old primary's zone comes first", func(t *testing.T) {
		b := labels(base().primaryGone(ago(3*time.Second)).silent("a1", ago(2*time.Second)), map[string]map[string]string{
			"db1": {"zone": "a"}, "db2": {"zone": "b"}, "db3": {"zone": "a"},
		})
		v, p := b.policy(func(p *Policy) { p.PromotionPreferSame = []string{"zone"} }).build()
		pl, err := PlanFailover(v, p, TriggerAutomatic)
		if err != nil {
			t.Fatal(err)
		}
		if pl.Expected != "db3" {
			t.Errorf("expected %q, want db3 (in zone a with the old primary)", pl.Expected)
		}
		// Data comes first: db2 holding more wins over the zone.
		v, p = b.exec("db2", "p:1-105").build()
		pl, err = PlanFailover(v, p, TriggerAutomatic)
		if err != nil {
			t.Fatal(err)
		}
		if pl.Expected != "db2" {
			t.Errorf("expected %q, want db2 (it alone holds p:101-105)", pl.Expected)
		}
	})
	t.Run("a bad label key is refused", func(t *testing.T) {
		p := DefaultPolicy()
		p.PromotionSame = []string{"re gion"}
		if err := p.Validate(); err == nil || !strings.Contains(err.Error(), "promotion_same") {
			t.Errorf("Validate: %v, want an error naming promotion_same", err)
		}
	})
}

// A switchover does not fence an instance an aborted operation promoted
// and never committed (only a failover does, before it promotes anyone):
// it is refused until the change of primary is finished.
func TestSwitchoverRefusedWhileAPromotionIsUncommitted(t *testing.T) {
	v, p := base().state(func(s *ReplicatedState) { s.Uncommitted = map[string]string{"db3": "op-9"} }).build()
	_, err := PlanSwitchover(v, p, "db2")
	if err == nil {
		t.Fatal("switchover planned while db3's promotion by op-9 is uncommitted")
	}
	mustContain(t, "refusal", err.Error(), "db3 was promoted by the aborted operation op-9", "finish the change of primary first")
}
