package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/regentdb/regent/api"
)

func (a *app) checkCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Preflight: is every instance set up the way Regent needs?",
		Long: `Show the agent's preflight findings for the cluster, computed from its
latest probes: privileges of Regent's MySQL user, GTID mode,
log_slave_updates, unique server_id, read_only on replicas, semi-sync
availability, binlog format, a missing heartbeat period (which delays
failure detection), and a slave_net_timeout too short for a lossy link
(replicas that keep reconnecting). Each finding says how to
fix it. Exits 1 when there is at least one error.`,
		Args: args(0, ""),
		RunE: func(*cobra.Command, []string) error {
			c, name, err := a.setup()
			if err != nil {
				return classify(err)
			}
			rep, err := c.Check(a.ctx, name)
			if err != nil {
				return classify(err)
			}
			if a.json() {
				if err := a.printJSON(rep); err != nil {
					return err
				}
			} else {
				a.printCheck(rep)
			}
			if n := rep.Errors(); n > 0 {
				return failed("check found %d error(s) in cluster %s", n, name)
			}
			return nil
		},
	}
}

func (a *app) printCheck(rep api.CheckReport) {
	w := a.stdout
	fmt.Fprintf(w, "Preflight of cluster %s (probed %s)\n", rep.Cluster, a.ago(&rep.CheckedAt))
	warnings, errs := 0, 0
	t := newTable(w, "INSTANCE", "CHECK", "RESULT", "FINDING")
	for _, f := range rep.Findings {
		sev := f.Severity
		switch sev {
		case api.SeverityError:
			errs++
			sev = "ERROR"
		case api.SeverityWarning:
			warnings++
			sev = "WARNING"
		}
		t.row(orDash(f.Instance), f.Check, sev, f.Message)
		if f.Fix != "" {
			t.row("", "", "", "fix: "+f.Fix)
		}
	}
	t.flush()
	fmt.Fprintf(w, "%d error(s), %d warning(s)\n", errs, warnings)
}
