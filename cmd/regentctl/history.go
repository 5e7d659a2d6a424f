package main

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/regentdb/regent/api"
)

func (a *app) historyCommand() *cobra.Command {
	var limit int
	var steps bool
	cmd := &cobra.Command{
		Use:   "history [--limit N] [--steps]",
		Short: "List recent failovers, switchovers and rejoins, newest first",
		Args:  args(0, ""),
		RunE: func(*cobra.Command, []string) error {
			if limit < 1 || limit > 1000 {
				return usageErr("--limit must be from 1 to 1000")
			}
			c, name, err := a.setup()
			if err != nil {
				return classify(err)
			}
			h, err := c.History(a.ctx, name, limit)
			if err != nil {
				return classify(err)
			}
			if a.json() {
				return a.printJSON(h)
			}
			a.printHistory(h, steps)
			return nil
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 20, "how many operations to show")
	cmd.Flags().BoolVar(&steps, "steps", false, "show each operation's steps")
	return cmd
}

func (a *app) printHistory(h api.History, steps bool) {
	if len(h.Operations) == 0 {
		fmt.Fprintf(a.stdout, "no operation recorded for cluster %s\n", h.Cluster)
		return
	}
	t := newTable(a.stdout, "STARTED", "ID", "KIND", "TRIGGER", "PRIMARY", "EPOCH", "RESULT", "TOOK", "WRITES BLOCKED", "REASON")
	for _, op := range h.Operations {
		primary := orDash(op.OldPrimary) + " -> " + orDash(op.NewPrimary)
		epoch := strconv.FormatUint(op.EpochBefore, 10)
		if op.EpochAfter != 0 {
			epoch += " -> " + strconv.FormatUint(op.EpochAfter, 10)
		}
		blocked := "-"
		if op.WriteBlocked != nil {
			blocked = short(op.WriteBlocked.Std())
		}
		t.row(stamp(op.Started), op.ID, op.Kind, orDash(op.Trigger), primary, epoch, op.Result,
			short(op.Duration(a.now())), blocked, orDash(op.Reason))
		if steps {
			for _, s := range op.Steps {
				t.row("", "  "+s.Name, s.Result, short(s.Duration.Std()), orDash(s.Detail), "", "", "", "", "")
			}
		}
	}
	t.flush()
}
