package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/regentdb/regent/api"
)

func (a *app) historyCommand() *cobra.Command {
	var limit int
	var steps bool
	var before string
	cmd := &cobra.Command{
		Use:   "history [--limit N] [--before ID] [--steps]",
		Short: "List recent failovers, switchovers and rejoins, newest first, one line each",
		Long: "List recent operations, newest first, one line each: when, kind, old -> new primary,\n" +
			"epoch, result, how long it took and how long writes were blocked. Columns that do not\n" +
			"fit the terminal are left out (COLUMNS sets its width). `history show ID` gives one\n" +
			"operation whole: its trigger, reason, window and steps.",
		Args: args(0, ""),
		RunE: func(*cobra.Command, []string) error {
			if limit < 1 || limit > 1000 {
				return usageErr("--limit must be from 1 to 1000")
			}
			c, name, err := a.setup()
			if err != nil {
				return classify(err)
			}
			h, err := c.HistoryBefore(a.ctx, name, limit, before)
			if err != nil {
				return classify(err)
			}
			if a.json() {
				return a.printJSON(h)
			}
			width := a.width()
			renderHistory(a.stdout, h, width, a.now())
			if h.Next != "" {
				fmt.Fprintf(a.stdout, "older operations: regentctl history --before %s\n", h.Next)
			}
			if steps {
				for _, op := range h.Operations {
					fmt.Fprintln(a.stdout)
					renderOperation(a.stdout, op, width, a.now())
				}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "how many operations to show")
	cmd.Flags().StringVar(&before, "before", "", "start with the operation before this id (the last line of a page gives it)")
	cmd.Flags().BoolVar(&steps, "steps", false, "after the list, show each operation whole, as history show does")
	cmd.AddCommand(a.historyShowCommand())
	return cmd
}

func (a *app) historyShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show one operation whole: trigger, reason, write-blocked window and every step",
		Long: "Show one operation whole. ID is its id as history prints it, or any unique part of it\n" +
			"(history prints the end of long ids).",
		Args: args(1, "the operation's id (regentctl history lists them)"),
		RunE: func(_ *cobra.Command, argv []string) error {
			_, _, op, err := a.operationArg(argv[0])
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(op)
			}
			renderOperation(a.stdout, op, a.width(), a.now())
			return nil
		},
	}
}

// operationArg connects and finds the operation an argument names (see
// findOperation).
func (a *app) operationArg(id string) (*api.Client, string, api.Operation, error) {
	c, name, err := a.setup()
	if err != nil {
		return nil, "", api.Operation{}, classify(err)
	}
	op, err := a.findOperation(c, name, id)
	return c, name, op, err
}

// findOperation finds an operation by its id, or by any unique part of the
// id of a recent one (history prints the end of long ids).
func (a *app) findOperation(c *api.Client, cluster, id string) (api.Operation, error) {
	op, err := c.Operation(a.ctx, cluster, id)
	if err == nil {
		return op, nil
	}
	h, herr := c.History(a.ctx, cluster, 1000)
	if herr != nil {
		return op, classify(err)
	}
	var found []api.Operation
	for _, o := range h.Operations {
		if strings.Contains(o.ID, id) {
			found = append(found, o)
		}
	}
	switch len(found) {
	case 0:
		return op, classify(err)
	case 1:
		return found[0], nil
	}
	ids := make([]string, len(found))
	for i, o := range found {
		ids[i] = o.ID
	}
	return op, usageErr("%q is part of %d operations' ids (%s): give more of it", id, len(found), strings.Join(ids, ", "))
}

// shortID is the end of an operation id that history prints: the random
// part of the agents' ids ("20261206-224946-70241c0c35ca" → "70241c0c35ca").
func shortID(id string) string {
	if i := strings.LastIndexByte(id, '-'); i >= 0 && len(id)-i-1 >= 8 {
		return id[i+1:]
	}
	return id
}

// historyColumns are the list's columns, in order; drop is the order in
// which they are left out when the terminal is too narrow (0: never).
var historyColumns = []column{
	{"STARTED", 0}, {"ID", 0}, {"KIND", 0}, {"PRIMARY", 0}, {"EPOCH", 3}, {"RESULT", 0}, {"TOOK", 2}, {"BLOCKED", 1},
}

// renderHistory writes the list, one line per operation, in at most width
// columns: the columns that do not fit are left out, least needed first,
// and a last line says which.
func renderHistory(w io.Writer, h api.History, width int, now time.Time) {
	if len(h.Operations) == 0 {
		fmt.Fprintf(w, "no operation recorded for cluster %s\n", h.Cluster)
		return
	}
	rows := make([][]string, 0, len(h.Operations))
	failedID := ""
	for _, op := range h.Operations {
		epoch := strconv.FormatUint(op.EpochBefore, 10)
		if op.EpochAfter != 0 && op.EpochAfter != op.EpochBefore {
			epoch += "→" + strconv.FormatUint(op.EpochAfter, 10)
		}
		blocked := "-"
		if op.WriteBlocked != nil {
			blocked = short(op.WriteBlocked.Std())
		}
		if failedID == "" && op.Result != api.ResultSuccess && op.Result != api.ResultRunning {
			failedID = shortID(op.ID)
		}
		primary := "-" // a change of settings involves no primary
		if op.OldPrimary != "" || op.NewPrimary != "" {
			primary = orDash(op.OldPrimary) + "→" + orDash(op.NewPrimary)
		}
		rows = append(rows, []string{op.Started.UTC().Format("01-02 15:04:05"), shortID(op.ID), op.Kind,
			primary, epoch, op.Result, short(op.Duration(now)), blocked})
	}
	if dropped := fitTable(w, historyColumns, rows, width); len(dropped) > 0 {
		fmt.Fprintf(w, "(%s left out to fit %d columns: regentctl history show ID has them)\n", strings.Join(dropped, ", "), width)
	}
	if failedID != "" {
		fmt.Fprintf(w, "why an operation failed or was aborted: regentctl history show %s\n", failedID)
	}
}

// renderOperation writes one operation whole; long texts are wrapped to
// width under their label.
func renderOperation(w io.Writer, op api.Operation, width int, now time.Time) {
	fmt.Fprintf(w, "%s %s of cluster %s: %s\n", op.Kind, op.ID, op.Cluster, op.Result)
	field := func(label, text string) {
		if text == "" {
			return
		}
		const pad = "  %-15s"
		lines := wrap(text, max(width-17, 20))
		for i, l := range lines {
			if i == 0 {
				fmt.Fprintf(w, pad+"%s\n", label, l)
				continue
			}
			fmt.Fprintf(w, pad+"%s\n", "", l)
		}
	}
	took := short(op.Duration(now))
	if op.Ended == nil {
		took += " so far"
	}
	field("started", stamp(op.Started)+", took "+took)
	field("trigger", op.Trigger)
	primary := orDash(op.OldPrimary) + " → " + orDash(op.NewPrimary)
	epoch := strconv.FormatUint(op.EpochBefore, 10)
	if op.EpochAfter != 0 {
		epoch += " → " + strconv.FormatUint(op.EpochAfter, 10)
	}
	if op.OldPrimary == "" && op.NewPrimary == "" {
		field("epoch", epoch)
	} else {
		field("primary", primary+", epoch "+epoch)
	}
	field("target", op.Target)
	if op.WriteBlocked != nil {
		blocked := short(op.WriteBlocked.Std())
		if op.WriteBlockedUntil != "" {
			blocked += ", up to " + op.WriteBlockedUntil
		}
		field("writes blocked", blocked)
	}
	field("reason", op.Reason)
	field("GTID promoted", op.GTIDAtPromotion)
	switch {
	case op.Ack != nil:
		ack := "by " + op.Ack.By + " at " + stamp(op.Ack.At)
		if op.Ack.Comment != "" {
			ack += ": " + op.Ack.Comment
		}
		field("acknowledged", ack)
	case op.NeedsAck():
		field("acknowledged", "not yet (regentctl ack "+shortID(op.ID)+" --comment TEXT)")
	}
	if len(op.Steps) == 0 {
		return
	}
	fmt.Fprintln(w, "  steps")
	nameWidth := 0
	for _, s := range op.Steps {
		nameWidth = max(nameWidth, len([]rune(s.Name)))
	}
	for _, s := range op.Steps {
		at := fmt.Sprintf("+%.3fs", max(0, s.Started.Sub(op.Started).Seconds()))
		head := strings.TrimRight(fmt.Sprintf("    %8s  %-*s  %-8s %8s", at, nameWidth, s.Name, s.Result, short(s.Duration.Std())), " ")
		if s.Detail == "" {
			fmt.Fprintln(w, head)
			continue
		}
		// The detail under the step, indented, wrapped to the terminal.
		fmt.Fprintln(w, head)
		for _, l := range wrap(s.Detail, max(width-8, 20)) {
			fmt.Fprintf(w, "        %s\n", l)
		}
	}
}

// wrap breaks text into lines of at most width runes, at spaces where it
// can; a word longer than width (a GTID set) is cut.
func wrap(text string, width int) []string {
	var lines []string
	for _, para := range strings.Split(text, "\n") {
		line := ""
		for _, word := range strings.Fields(para) {
			for len([]rune(word)) > width {
				if line != "" {
					lines, line = append(lines, line), ""
				}
				r := []rune(word)
				lines, word = append(lines, string(r[:width])), string(r[width:])
			}
			switch {
			case line == "":
				line = word
			case len([]rune(line))+1+len([]rune(word)) <= width:
				line += " " + word
			default:
				lines, line = append(lines, line), word
			}
		}
		if line != "" {
			lines = append(lines, line)
		}
	}
	return lines
}
