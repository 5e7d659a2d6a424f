package failover

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// genView decodes a byte stream into a cluster whose primary db1 is dead,
// with 1-5 replicas in every state the ranking knows: behind, ahead of the
// old primary's last set, errant (known or by the prefix rule), relay logs not
// applied, must_not / prefer, lagging, delayed, broken SQL, quarantined,
// unreachable, pointing elsewhere, with a silent agent. The same bytes always
// give the same view, so a fuzz failure replays.
func genView(next func() byte) (View, Policy) {
	pick := func(n int) int { return int(next()) % n }
	b := base()
	extra := pick(5) // 0..4 replicas beyond db2
	for i := 0; i < extra; i++ {
		b.addInstance(fmt.Sprintf("db%d", 4+i), "", true)
	}
	last := 95 + pick(10)
	b.primaryGone(ago(3*time.Second)).silent("a1", ago(2*time.Second)).lastSeen("db1", fmt.Sprintf("p:1-%d", last))
	for _, n := range b.v.names() {
		if n == "db1" {
			continue
		}
		k := 88 + pick(20)
		set := fmt.Sprintf("p:1-%d", k)
		if pick(8) == 0 {
			set += fmt.Sprintf(",r%s:1", n) // errant
			if pick(2) == 0 {
				b.knownErrant(n, "r"+n+":1")
			}
		}
		b.exec(n, set)
		if pick(4) == 0 {
			b.retrieved(n, fmt.Sprintf("p:1-%d", k+1+pick(3)))
		}
		switch pick(6) {
		case 0:
			b.rule(n, PromotionMustNot)
		case 1:
			b.rule(n, PromotionPrefer)
		}
		switch pick(8) {
		case 0:
			b.lag(n, time.Duration(pick(40))*time.Second)
		case 1:
			b.delay(n, time.Hour)
		case 2:
			b.sqlStopped(n, "Error 1062")
		case 3:
			b.quarantine(n, "errant")
		case 4:
			b.down(n, ClassTimeout, ago(time.Second))
		case 5:
			b.source(n, "db2")
		}
		if own := b.v.Instances[n].OwnerAgent; own != "" && pick(12) == 0 {
			b.silent(own, ago(5*time.Second))
		}
	}
	if pick(4) == 0 {
		b.policy(func(p *Policy) { p.Durability = DurabilityAsync })
	}
	return b.build()
}

// checkRankInvariants states what must hold for every ranking; it returns
// the broken ones.
func checkRankInvariants(v View, p Policy, r Ranking) []string {
	var bad []string
	fail := func(format string, a ...any) { bad = append(bad, fmt.Sprintf(format, a...)) }
	if (r.Chosen == "") == (len(r.Refusals) == 0) {
		fail("chosen %q vs refusals %v: exactly one must be set", r.Chosen, r.Refusals)
	}
	seenExcluded := false
	for _, c := range r.Candidates {
		if !c.Eligible {
			seenExcluded = true
			if len(c.Exclusions) == 0 {
				fail("%s excluded without a reason", c.Instance)
			}
			continue
		}
		if seenExcluded {
			fail("eligible %s ranked after an excluded candidate", c.Instance)
		}
		if !gtidContains(r.Target, c.Holds) {
			fail("target %s does not contain eligible %s's set %s", gtidText(r.Target), c.Instance, gtidText(c.Holds))
		}
	}
	if r.Chosen == "" {
		return bad
	}
	c, ok := r.candidate(r.Chosen)
	switch {
	case !ok:
		fail("chosen %s is not a candidate", r.Chosen)
	case !c.Eligible:
		fail("chosen %s is excluded: %v", c.Instance, c.Exclusions)
	case c.Promotion == PromotionMustNot:
		fail("chosen %s is must_not", c.Instance)
	case !gtidEmpty(c.Errant):
		fail("chosen %s holds errant %s", c.Instance, gtidText(c.Errant))
	case v.State.Quarantined[c.Instance] != "":
		fail("chosen %s is quarantined", c.Instance)
	}
	// Never promote a replica that lacks a transaction another survivor has,
	// unless it catches up from one that has them all.
	if r.CatchUpFrom == "" {
		if !gtidContains(c.Holds, r.Target) {
			fail("chosen %s (%s) lacks part of target %s and has no catch-up", c.Instance, gtidText(c.Holds), gtidText(r.Target))
		}
		for _, o := range r.Candidates {
			if o.Eligible && !gtidContains(c.Holds, o.Holds) {
				fail("chosen %s lacks transactions of eligible %s without a catch-up", c.Instance, o.Instance)
			}
		}
	} else {
		src, ok := r.candidate(r.CatchUpFrom)
		if r.CatchUpFrom != r.OldPrimary && (!ok || !src.Source || !gtidContains(src.Holds, r.Target)) {
			fail("catch-up source %s does not hold target %s", r.CatchUpFrom, gtidText(r.Target))
		}
	}
	// The ranking order puts the chosen first (no target requested).
	for _, o := range r.Candidates {
		if o.Eligible {
			if o.Instance != r.Chosen {
				fail("chosen %s is not the first eligible (%s)", r.Chosen, o.Instance)
			}
			break
		}
	}
	return bad
}

// checkPlanInvariants states what every failover plan obeys.
func checkPlanInvariants(v View, pl Plan) []string {
	var bad []string
	promoted := 0
	for _, s := range pl.Steps {
		if s.Kind == StepPromote {
			promoted++
			if s.Instance == pl.OldPrimary {
				bad = append(bad, "promotes the old primary")
			}
			if v.Instances[s.Instance].rule() == PromotionMustNot && !pl.Force {
				bad = append(bad, "promotes a must_not instance")
			}
		}
		if s.Kind == StepRepoint && s.Instance == pl.NewPrimary {
			bad = append(bad, "repoints the new primary")
		}
		if (s.Kind == StepRoute || s.Kind == StepCommitEpoch) && s.Epoch != v.State.Epoch+1 {
			bad = append(bad, fmt.Sprintf("%s with epoch %d, want %d", s.Kind, s.Epoch, v.State.Epoch+1))
		}
	}
	if promoted != 1 {
		bad = append(bad, fmt.Sprintf("%d promote steps", promoted))
	}
	order := []StepKind{StepRecordIntent, StepUnrouteOldPrimary, StepStopIOThreads, StepWaitRelayLogs, StepChooseCandidate, StepPromote, StepRoute, StepCommitEpoch, StepPostHooks}
	at := 0
	for _, s := range pl.Steps {
		if at < len(order) && s.Kind == order[at] {
			at++
		}
	}
	if at != len(order) {
		bad = append(bad, fmt.Sprintf("steps out of the failover order (the package doc's section Plans): reached %s", order[min(at, len(order)-1)]))
	}
	return bad
}

func runInvariants(t testing.TB, next func() byte) {
	t.Helper()
	v, p := genView(next)
	r := Rank(v, p, RankOptions{OldPrimary: "db1"})
	if bad := checkRankInvariants(v, p, r); len(bad) > 0 {
		t.Fatalf("rank invariants broken:\n  %s\nranking: %s", strings.Join(bad, "\n  "), strings.Join(render(summarizeRank(r)), "; "))
	}
	if again := Rank(v, p, RankOptions{OldPrimary: "db1"}); diff(summarizeRank(r), summarizeRank(again)) != "" {
		t.Fatal("Rank is not deterministic")
	}
	for _, pr := range Analyze(v, p) {
		if pr.Reason == "" || pr.Action != ActionNone && !pr.Actionable && len(pr.Blockers) == 0 {
			t.Fatalf("problem %s: silent or unexplained", pr.Code)
		}
	}
	pl, err := PlanFailover(v, p, TriggerManual)
	if err != nil {
		if r.Chosen != "" {
			t.Fatalf("ranking chose %s but the plan was refused: %v", r.Chosen, err)
		}
		return
	}
	full, err := ChooseCandidate(v, p, pl)
	if err != nil {
		t.Fatalf("same facts, second phase refused: %v", err)
	}
	if bad := checkPlanInvariants(v, full); len(bad) > 0 {
		lines := make([]string, 0, len(full.Steps))
		for _, s := range full.Steps {
			lines = append(lines, stepLine(s))
		}
		t.Fatalf("plan invariants broken: %v\n%s", bad, strings.Join(lines, "\n"))
	}
}

// TestRankProperties checks the invariants on a few thousand generated
// clusters (seeded: the same every run).
func TestRankProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 2026))
	chosen, refused := 0, 0
	for i := 0; i < 1500; i++ {
		seed := rng.Uint64()
		r := rand.New(rand.NewPCG(seed, 0))
		next := func() byte { return byte(r.UintN(256)) }
		runInvariants(seeded{t, seed}, next)
		replay := rand.New(rand.NewPCG(seed, 0))
		v, p := genView(func() byte { return byte(replay.UintN(256)) })
		if Rank(v, p, RankOptions{OldPrimary: "db1"}).Chosen != "" {
			chosen++
		} else {
			refused++
		}
	}
	t.Logf("%d chosen, %d refused", chosen, refused)
	// Guard the generator's coverage: both outcomes must be common.
	if chosen < 150 || refused < 15 {
		t.Errorf("generator too narrow: %d chosen, %d refused", chosen, refused)
	}
}

// seeded prefixes failures with the generator seed, so that one can be
// replayed (rand.NewPCG(seed, 0)).
type seeded struct {
	*testing.T
	seed uint64
}

func (s seeded) Fatalf(format string, a ...any) {
	s.T.Helper()
	s.T.Fatalf("seed %d: "+format, append([]any{s.seed}, a...)...)
}

func (s seeded) Fatal(a ...any) {
	s.T.Helper()
	s.T.Fatal(append([]any{fmt.Sprintf("seed %d:", s.seed)}, a...)...)
}

// FuzzRank runs the same invariants on fuzzer-chosen bytes:
// go test -fuzz=FuzzRank ./failover/
func FuzzRank(f *testing.F) {
	for _, seed := range []string{"", "\x00", "\x01\x02\x03\x04\x05\x06\x07\x08", "\xff\xfe\xfd\xfc\xfb", "must_not and errant and delayed"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		i := 0
		next := func() byte {
			if len(data) == 0 {
				return 0
			}
			c := data[i%len(data)]
			i++
			return c
		}
		runInvariants(t, next)
	})
}
