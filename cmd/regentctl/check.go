package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/regentdb/regent/api"
)

func (a *app) checkCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Preflight: is every instance set up the way Regent needs?",
		Long: `Run every preflight check on every instance and list what each found,
ok included, grouped by instance: whether it is reachable and Regent's MySQL
user has its privileges, a unique server_id, read_only on replicas (and
super_read_only on MySQL), log_bin and log_slave_updates, GTIDs,
binlog_format, semi-sync availability and, on the primary, lossless
settings (under durability semi_sync), the replication heartbeat period (a missing one
delays failure detection), and slave_net_timeout / replica_net_timeout (too
short: replicas keep reconnecting on a lossy link). Each warning and error
says how to fix it. Exits 1 when there is at least one error.`,
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
	renderCheck(a.stdout, rep, a.width(), a.ago(&rep.CheckedAt))
}

// renderCheck lists every check of every instance, grouped by instance in
// the agent's order: the result, the check, what it found, and under a
// warning or an error its fix, wrapped to width.
func renderCheck(w io.Writer, rep api.CheckReport, width int, probed string) {
	count := map[string]int{}
	checkW := len("CHECK")
	for _, f := range rep.Findings {
		count[f.Severity]++
		checkW = max(checkW, len(f.Check))
	}
	fmt.Fprintf(w, "Preflight of cluster %s (probed %s): %d error(s), %d warning(s), %d ok\n",
		rep.Cluster, probed, count[api.SeverityError], count[api.SeverityWarning], count[api.SeverityOK])
	indent := 2 + 7 + 2 + checkW + 2
	textW := max(width-indent, 24)
	pad := strings.Repeat(" ", indent)
	last := "\x00"
	for _, f := range rep.Findings {
		if f.Instance != last {
			last = f.Instance
			fmt.Fprintf(w, "\n%s\n", orDefault(f.Instance, "cluster"))
		}
		sev := f.Severity
		if sev != api.SeverityOK {
			sev = strings.ToUpper(sev)
		}
		lines := wrap(f.Message, textW)
		if len(lines) == 0 {
			lines = []string{""}
		}
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("  %-7s  %-*s  %s", sev, checkW, f.Check, lines[0]), " "))
		for _, l := range lines[1:] {
			fmt.Fprintf(w, "%s%s\n", pad, l)
		}
		if f.Fix != "" {
			for _, l := range wrap("fix: "+f.Fix, textW) {
				fmt.Fprintf(w, "%s%s\n", pad, l)
			}
		}
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
