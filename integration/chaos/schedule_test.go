package chaos

import (
	"reflect"
	"testing"
)

func TestScheduleIsASeedsFunction(t *testing.T) {
	a, b := Generate(42, DefaultGen), Generate(42, DefaultGen)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("seed 42 gave two schedules:\n%v\n%v", a, b)
	}
	if c := Generate(43, DefaultGen); reflect.DeepEqual(a.Steps, c.Steps) {
		t.Fatalf("seeds 42 and 43 gave the same steps:\n%v", a)
	}
}

// TestSchedulesCoverTheRepertoire: a few hundred seeds reach every kind and
// every target, and every schedule stays inside its bounds.
func TestSchedulesCoverTheRepertoire(t *testing.T) {
	kinds := map[Kind]int{}
	targets := map[Target]int{}
	for seed := range uint64(300) {
		s := Generate(seed, DefaultGen)
		if len(s.Steps) == 0 || len(s.Steps) > DefaultGen.MaxSteps {
			t.Fatalf("seed %d: %d steps", seed, len(s.Steps))
		}
		for i, st := range s.Steps {
			kinds[st.Kind]++
			targets[st.Target]++
			if st.At < 0 || st.At >= DefaultGen.Window {
				t.Errorf("seed %d: step %v starts outside the window", seed, st)
			}
			if i > 0 && st.At < s.Steps[i-1].At {
				t.Errorf("seed %d: steps out of order:\n%v", seed, s)
			}
			if st.At+st.For > s.Length {
				t.Errorf("seed %d: step %v outlasts the schedule's length %v", seed, st, s.Length)
			}
			if st.Kind == Lossy && (st.Loss < 5 || st.Loss > 40) {
				t.Errorf("seed %d: loss %v%%", seed, st.Loss)
			}
		}
	}
	for _, k := range Kinds {
		if kinds[k] == 0 {
			t.Errorf("no schedule of 300 uses %s", k)
		}
	}
	for _, tg := range []Target{TargetPrimary, TargetReplica, TargetLeader} {
		if targets[tg] == 0 {
			t.Errorf("no step of 300 schedules targets the %s", tg)
		}
	}
}

// A strike waits for a step by kind; the API names steps with the
// instances they acted on. (Matched on whole names, no strike ever came.)
func TestStepKind(t *testing.T) {
	for name, want := range map[string]string{
		"promote db2":               "promote",
		"stop-io-threads db2,db3":   "stop-io-threads",
		"pre-hooks":                 "pre-hooks",
		"undo start-io-threads db2": "undo",
	} {
		if got := stepKind(name); got != want {
			t.Errorf("stepKind(%q) = %q, want %q", name, got, want)
		}
	}
	for _, s := range opSteps {
		if stepKind(s+" db1") != s {
			t.Errorf("opSteps entry %q is not a step kind", s)
		}
	}
}
