package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/regentdb/regent/api"
)

// progressWriter is where progress lines go: stdout for people, stderr
// when stdout carries JSON.
func (a *app) progressWriter() io.Writer {
	if a.json() {
		return a.stderr
	}
	return a.stdout
}

// progressLine is one ended step of an operation, timed from its start.
func progressLine(s api.Step, start time.Time) string {
	line := fmt.Sprintf("  [+%7.3fs] %-22s %-8s %8s", max(0, s.Started.Sub(start).Seconds()), s.Name, s.Result, short(s.Duration.Std()))
	if s.Detail != "" {
		line += "  " + s.Detail
	}
	return strings.TrimRight(line, " ")
}

// followAndReport follows a started operation, printing a line per step as
// each ends, then the outcome. With wait false it only says how to follow.
// The exit code is 0 only if the operation succeeded.
func (a *app) followAndReport(c *api.Client, op api.Operation, wait bool) error {
	w := a.progressWriter()
	target := ""
	if op.Target != "" {
		target = " (target " + op.Target + ")"
	}
	fmt.Fprintf(w, "%s %s of cluster %s started%s\n", op.Kind, op.ID, op.Cluster, target)
	if !wait {
		fmt.Fprintf(w, "not waiting; see it with: regentctl history --cluster %s\n", op.Cluster)
		if a.json() {
			return a.printJSON(op)
		}
		return nil
	}
	printed := 0
	start := op.Started
	final, err := c.FollowOperation(a.ctx, op.Cluster, op.ID, func(o api.Operation) {
		if !o.Started.IsZero() {
			start = o.Started
		}
		// Snapshots are complete: print the steps not printed yet that
		// have ended, in order.
		for printed < len(o.Steps) && o.Steps[printed].Result != api.ResultRunning {
			fmt.Fprintln(w, progressLine(o.Steps[printed], start))
			printed++
		}
	})
	if err != nil {
		if errors.Is(err, a.ctx.Err()) && a.ctx.Err() != nil {
			return failed("stopped following %s %s; it goes on at the leader: see regentctl history --cluster %s", op.Kind, op.ID, op.Cluster)
		}
		return fmt.Errorf("following %s %s: %w", op.Kind, op.ID, err)
	}
	blocked := ""
	if final.WriteBlocked != nil {
		blocked = "; writes blocked " + short(final.WriteBlocked.Std())
		if final.WriteBlockedUntil != "" {
			blocked += " (until " + final.WriteBlockedUntil + ")"
		}
	}
	took := short(final.Duration(a.now()))
	if final.Result == api.ResultSuccess {
		switch {
		case final.NewPrimary != "":
			fmt.Fprintf(w, "%s succeeded: %s is the primary (epoch %d)%s; took %s\n", final.Kind, final.NewPrimary, final.EpochAfter, blocked, took)
		default:
			fmt.Fprintf(w, "%s succeeded; took %s\n", final.Kind, took)
		}
	} else {
		fmt.Fprintf(w, "%s %s%s; took %s: %s\n", final.Kind, final.Result, blocked, took, orDash(final.Reason))
	}
	if a.json() {
		if err := a.printJSON(final); err != nil {
			return err
		}
	}
	if final.Result != api.ResultSuccess {
		return failed("%s %s %s", final.Kind, final.ID, final.Result)
	}
	return nil
}
