package chaos

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regentdb/regent/topology/mysqltest"
)

// TestChaosCampaign runs CHAOS_SCHEDULES seeded schedules per flavour
// (default 6, as `make test` runs it: inside CI's time budget), seeds CHAOS_SEED, CHAOS_SEED+1, ...
// (default 1: CI replays the same schedules every run; `make chaos` draws a
// new base seed and prints it). Each schedule runs on a fresh lab and is
// judged by Check; a failure prints the seed, the schedule, every violation
// and the timeline around the first, and keeps the logs (CHAOS_DIR, default
// a temporary directory, named in the output). CHAOS_REPORT names a file
// for the campaign's Markdown table. Replay one seed:
//
//	CHAOS_SEED=1234 CHAOS_SCHEDULES=1 make chaos
func TestChaosCampaign(t *testing.T) {
	n := envInt(t, "CHAOS_SCHEDULES", 6)
	base := uint64(envInt(t, "CHAOS_SEED", 1))
	dir := os.Getenv("CHAOS_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "regent-chaos")
	}
	o := DefaultRun
	o.KeepDir = dir
	var tallies []*Tally
	// The report is written again after every schedule, so that a long
	// campaign stopped part way still leaves what it ran.
	began := time.Now().UTC()
	report := func(done bool) {
		path := os.Getenv("CHAOS_REPORT")
		if path == "" {
			return
		}
		state := "complete"
		if !done {
			state = "in progress"
		}
		text := fmt.Sprintf("Chaos campaign (%s): base seed %d, %d schedules per flavour, started %s, written %s.\n\n%s",
			state, base, n, began.Format(time.RFC3339), time.Now().UTC().Format(time.RFC3339), Markdown(tallies))
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Errorf("writing the report: %v", err)
		}
	}
	for _, k := range mysqltest.Kinds(t) {
		tally := &Tally{Flavor: string(k)}
		tallies = append(tallies, tally)
		t.Run(string(k), func(t *testing.T) {
			for i := range uint64(n) {
				seed := base + i
				sch := Generate(seed, DefaultGen)
				t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
					began := time.Now()
					h := Run(t, k, sch, o)
					vs := Check(h)
					tally.Add(h, vs)
					t.Logf("%s\n%s in %.1fs: %s", sch, k, time.Since(began).Seconds(), h.Describe())
					if len(vs) == 0 {
						return
					}
					var b strings.Builder
					fmt.Fprintf(&b, "%s seed %d broke %d promises (replay: CHAOS_SEED=%d CHAOS_SCHEDULES=1 REGENT_TEST_FLAVORS=%s make chaos)\n%s\n", k, seed, len(vs), seed, k, sch)
					for _, v := range vs {
						fmt.Fprintf(&b, "  %s at %s\n", v, clock(v.At))
					}
					fmt.Fprintf(&b, "timeline around the first:\n%s", Timeline(h, vs[0].At, 3*time.Second))
					if path, err := saveHistory(dir, h); err == nil {
						fmt.Fprintf(&b, "history: %s\n", path)
					}
					t.Error(b.String())
				})
				report(false)
			}
		})
	}
	t.Logf("chaos campaign, base seed %d, %d schedules per flavour:\n%s", base, n, Markdown(tallies))
	report(true)
}

func saveHistory(dir string, h History) (string, error) {
	b, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-seed-%d", h.Flavor, h.Schedule.Seed), "history.json")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, b, 0o644)
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n
}
