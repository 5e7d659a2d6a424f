package integration

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/integration/sandbox"
	"github.com/regentdb/regent/topology/mysqltest"
)

// A figure is one measured quantity of a benchmark on one flavour and
// setting: a value per trial, summarised as median / min / max beside its
// target. Figures with a target go into the table printed when the test
// binary ends (TestMain), ready to paste into BENCHMARKS.md.

type unit int

const (
	unitMS    unit = iota // milliseconds
	unitPct               // percent
	unitCount             // a count
)

func (u unit) format(v float64) string {
	switch u {
	case unitMS:
		return fmt.Sprintf("%.0f ms", v)
	case unitPct:
		return fmt.Sprintf("%.0f %%", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// target is what a figure should meet; met nil: no target (the figure
// only explains another).
type target struct {
	text string
	met  func(median, lo, hi float64) bool
}

// durTarget: median ≤ median, and worst ≤ worst when worst is set.
func durTarget(median, worst time.Duration) target {
	text := "median ≤ " + humanDur(median)
	if worst > 0 {
		text += ", worst ≤ " + humanDur(worst)
	}
	return target{text: text, met: func(med, _, hi float64) bool {
		return med <= msOf(median) && (worst == 0 || hi <= msOf(worst))
	}}
}

// ratioTarget: every trial's ratio (in percent) within [100-pct, 100+pct].
func ratioTarget(pct float64) target {
	return target{text: fmt.Sprintf("every trial within %.0f %% of the client's gap", pct), met: func(_, lo, hi float64) bool {
		return lo >= 100-pct && hi <= 100+pct
	}}
}

// zeroTarget: none at all, in any trial.
var zeroTarget = target{text: "0", met: func(_, _, hi float64) bool { return hi == 0 }}

var noTarget = target{text: "none (explains the figure above)"}

func humanDur(d time.Duration) string {
	if d%time.Second == 0 || d > 10*time.Second {
		return fmt.Sprintf("%g s", d.Seconds())
	}
	if d >= time.Second {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

type sample struct {
	trial int
	v     float64
	op    api.Operation // the trial's operation, for its timeline
}

type figure struct {
	what    string
	kind    mysqltest.Kind
	setup   string // profile and routing
	unit    unit
	target  target
	metric  string // b.ReportMetric's unit prefix
	samples []sample
	// farthest picks the trial to explain when the figure misses its
	// target; nil: the one with the largest value.
	farthest func(sample) float64
}

func newFigure(what string, k mysqltest.Kind, setup string, u unit, t target, metric string) *figure {
	return &figure{what: what, kind: k, setup: setup, unit: u, target: t, metric: metric}
}

func (f *figure) add(trial int, v float64, op api.Operation) {
	f.samples = append(f.samples, sample{trial: trial, v: v, op: op})
}

func (f *figure) addDur(trial int, d time.Duration, op api.Operation) { f.add(trial, msOf(d), op) }

// stats returns the median, minimum and maximum.
func (f *figure) stats() (med, lo, hi float64) {
	vs := make([]float64, len(f.samples))
	for i, s := range f.samples {
		vs[i] = s.v
	}
	slices.Sort(vs)
	n := len(vs)
	med = vs[n/2]
	if n%2 == 0 {
		med = (vs[n/2-1] + vs[n/2]) / 2
	}
	return med, vs[0], vs[n-1]
}

// verdict is "met", "MISSED", or "-" without a target.
func (f *figure) verdict() string {
	if f.target.met == nil || len(f.samples) == 0 {
		return "-"
	}
	if f.target.met(f.stats()) {
		return "met"
	}
	return "MISSED"
}

// values is "median … / min … / max … (N trials)", or the one value of a
// figure measured once.
func (f *figure) values() string {
	if len(f.samples) == 0 {
		return "no value"
	}
	if len(f.samples) == 1 {
		return f.unit.format(f.samples[0].v) + " (1 run)"
	}
	med, lo, hi := f.stats()
	return fmt.Sprintf("median %s / min %s / max %s (%d trials)", f.unit.format(med), f.unit.format(lo), f.unit.format(hi), len(f.samples))
}

// summarize prints the figure's summary line, reports its median and
// maximum to the benchmark, adds it to the table (when it has a target,
// with notes for the table), and, when it missed its target, prints the
// farthest trial's steps: what BENCHMARKS.md explains a miss with.
func (f *figure) summarize(b *testing.B, notes string) {
	b.Helper()
	if len(f.samples) == 0 {
		benchPrintf("SUMMARY %s %s: %s: no value\n", f.kind, f.setup, f.what)
		return
	}
	v := f.verdict()
	tgt := f.target.text
	benchPrintf("SUMMARY %s %s: %s: %s — target: %s — %s\n", f.kind, f.setup, f.what, f.values(), tgt, v)
	med, _, hi := f.stats()
	b.ReportMetric(med, f.metric+"-median")
	b.ReportMetric(hi, f.metric+"-max")
	if f.target.met != nil {
		table = append(table, tableRow{fig: f, notes: notes})
	}
	if v == "MISSED" {
		far := f.samples[0]
		dist := f.farthest
		if dist == nil {
			dist = func(s sample) float64 { return s.v }
		}
		for _, s := range f.samples {
			if dist(s) > dist(far) {
				far = s
			}
		}
		benchPrintf("        missed: the farthest trial is %d (%s); its operation's steps:\n", far.trial, f.unit.format(far.v))
		printOpSteps(far.op)
	}
}

type tableRow struct {
	fig   *figure
	notes string
}

// table collects the summarised figures with a target, in the order the
// benchmarks ran (one at a time).
var table []tableRow

var flavourNames = map[mysqltest.Kind]string{mysqltest.MariaDB: "MariaDB", mysqltest.MySQL: "MySQL"}

// printTable prints rows as a Markdown table.
func printTable(title string, rows []tableRow) {
	if len(rows) == 0 {
		return
	}
	benchPrintf("\n%s (load average now %s):\n\n", title, sandbox.LoadAvg())
	benchPrintf("| figure | flavour | settings | median | min | max | trials | target | verdict | notes |\n")
	benchPrintf("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		f := r.fig
		med, lo, hi := f.stats()
		benchPrintf("| %s | %s | %s | %s | %s | %s | %d | %s | %s | %s |\n", f.what, flavourNames[f.kind], f.setup,
			f.unit.format(med), f.unit.format(lo), f.unit.format(hi), len(f.samples), f.target.text, f.verdict(), r.notes)
	}
	benchPrintf("\n")
}

// benchTable returns a function that prints the table rows added since
// benchTable was called: a benchmark's own rows (defer benchTable(t)()).
func benchTable(title string) func() {
	mark := len(table)
	return func() { printTable(title, table[mark:]) }
}

// TestMain runs the tests or benchmarks, then prints the table of every
// figure the benchmarks measured beside its target.
func TestMain(m *testing.M) {
	code := m.Run()
	printTable("All figures beside their targets", table)
	os.Exit(code)
}

// benchSteps: REGENT_BENCH_STEPS=1 prints every operation's steps after
// its trial line (to see where the time goes).
var benchSteps = os.Getenv("REGENT_BENCH_STEPS") == "1"

func printSteps(op api.Operation) {
	if benchSteps {
		printOpSteps(op)
	}
}

func printOpSteps(op api.Operation) {
	if op.ID == "" {
		benchPrintf("      (no operation recorded)\n")
		return
	}
	for _, st := range op.Steps {
		benchPrintf("      [+%7.3fs] %-22s %-8s %8s  %s\n", st.Started.Sub(op.Started).Seconds(), st.Name, st.Result, st.Duration.Std().Round(time.Millisecond), st.Detail)
	}
	if op.WriteBlockedUntil != "" {
		benchPrintf("      write_blocked runs up to: %s\n", op.WriteBlockedUntil)
	}
}

// benchPrintf prints a line at once (b.Logf would hold it until the
// benchmark ends).
func benchPrintf(format string, args ...any) { fmt.Printf(format, args...) }

// ms formats a duration in milliseconds, "-" when there is none.
func ms(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0fms", msOf(d))
}

func signedMS(d time.Duration) string { return fmt.Sprintf("%+.0fms", msOf(d)) }

// pctOf is a/b in percent (NaN when b is 0).
func pctOf(a, b time.Duration) float64 {
	if b <= 0 {
		return math.NaN()
	}
	return 100 * float64(a) / float64(b)
}

// notes joins the non-empty parts of a table row's notes.
func notes(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "; ")
}
