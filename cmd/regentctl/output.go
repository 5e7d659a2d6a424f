package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/regentdb/regent/api"
)

// printJSON writes v indented, for scripts.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return failed("write JSON: %v", err)
	}
	return nil
}

func (a *app) json() bool { return a.output == "json" }

// table writes aligned columns; rows are tab-separated cells.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		// A tab or newline in a value would break the columns.
		cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(c)
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() { _ = t.tw.Flush() }

// column is one column of a table fitted to the terminal: its header, and
// when it is left out if the table is too wide (1 first, then 2, ...; 0:
// never).
type column struct {
	head string
	drop int
}

// fitTable writes rows under cols' headers in at most width columns,
// leaving columns out in their drop order until the table fits (or nothing
// more may go), and returns the headers it left out, in lower case.
func fitTable(w io.Writer, cols []column, rows [][]string, width int) []string {
	keep := make([]bool, len(cols))
	for i := range keep {
		keep[i] = true
	}
	var dropped []string
	for level := 1; tableWidth(cols, rows, keep) > width; level++ {
		found := false
		for i, c := range cols {
			if c.drop == level {
				keep[i], found = false, true
				dropped = append(dropped, strings.ToLower(c.head))
			}
		}
		if !found {
			break // nothing more to leave out: the lines are longer than the terminal
		}
	}
	t := newTable(w)
	heads := make([]string, len(cols))
	for i, c := range cols {
		heads[i] = c.head
	}
	t.row(pick(heads, keep)...)
	for _, r := range rows {
		t.row(pick(r, keep)...)
	}
	t.flush()
	return dropped
}

func pick(cells []string, keep []bool) []string {
	var out []string
	for i, c := range cells {
		if keep[i] {
			out = append(out, c)
		}
	}
	return out
}

// tableWidth is the width newTable gives rows (and the header) with the
// kept columns: each column as wide as its widest cell, two spaces apart.
func tableWidth(cols []column, rows [][]string, keep []bool) int {
	total, n := 0, 0
	for i := range keep {
		if !keep[i] {
			continue
		}
		wd := len([]rune(cols[i].head))
		for _, r := range rows {
			wd = max(wd, len([]rune(r[i])))
		}
		total += wd
		n++
	}
	return total + 2*max(n-1, 0)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func lagText(r *api.Replication) string { return r.LagText("-") }

// short rounds a duration for people.
func short(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + short(-d)
	case d < time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func (a *app) ago(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return short(a.now().Sub(*t)) + " ago"
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

// reachText lists each agent's view of an instance, in agent order.
func reachText(m map[string]api.Reachability) string {
	if len(m) == 0 {
		return "-"
	}
	agents := make([]string, 0, len(m))
	for k := range m {
		agents = append(agents, k)
	}
	sort.Strings(agents)
	parts := make([]string, 0, len(agents))
	for _, ag := range agents {
		r := m[ag]
		v := "ok"
		if !r.OK {
			v = orDash(r.Error)
			if v == "-" {
				v = "down"
			}
		}
		parts = append(parts, ag+":"+v)
	}
	return strings.Join(parts, " ")
}

// defaultWidth is the width long texts are fitted to when neither COLUMNS
// nor a terminal says otherwise (output to a pipe or a file).
const defaultWidth = 100

// width is the number of columns to fit long texts and tables to: COLUMNS
// when set (at least 40), else the terminal's when stdout is one, else
// defaultWidth.
func (a *app) width() int {
	if n, err := strconv.Atoi(a.getenv("COLUMNS")); err == nil && n >= 40 {
		return n
	}
	if f, ok := a.stdout.(*os.File); ok {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col >= 40 {
			return int(ws.Col)
		}
	}
	return defaultWidth
}
