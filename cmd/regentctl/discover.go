package main

import (
	"fmt"
	"net"

	"github.com/spf13/cobra"
)

func (a *app) discoverCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "discover HOST:PORT",
		Short: "Propose a cluster definition from a running replication tree",
		Long: `Ask an agent to walk the replication tree around HOST:PORT with Regent's
MySQL account: up through each replica's source to the top, then down
through the replicas each source lists (SHOW SLAVE HOSTS / SHOW REPLICAS:
replicas must set report_host and report_port). It prints the tree, what
does not fit a Regent cluster (chained or writable replicas, replicas that
do not report their address), and a proposed clusters: entry for
regent.yaml. Nothing is changed on any server and nothing is recorded:
check the proposal, fill in each instance's agent, and put it in the
configuration of every agent. Needs an admin credential (the agent connects
where you say).`,
		Args: args(1, "HOST:PORT"),
		RunE: func(_ *cobra.Command, argv []string) error {
			if _, _, err := net.SplitHostPort(argv[0]); err != nil {
				return usageErr("%q is not HOST:PORT", argv[0])
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			d, err := c.Discover(a.ctx, argv[0])
			if err != nil {
				return classify(err)
			}
			if a.json() {
				return a.printJSON(d)
			}
			w := a.stdout
			fmt.Fprintf(w, "Replication tree around %s (%d instances):\n", d.Start, len(d.Instances))
			t := newTable(w, "NAME", "ADDRESS", "SOURCE", "SERVER_ID", "READ_ONLY", "VERSION")
			for _, in := range d.Instances {
				ro := "OFF"
				if in.ReadOnly {
					ro = "ON"
				}
				t.row(in.Name, in.Address, orDash(in.Source), fmt.Sprint(in.ServerID), ro, orDash(in.Version))
			}
			t.flush()
			if len(d.Warnings) > 0 {
				fmt.Fprintln(w, "\nWarnings:")
				for _, x := range d.Warnings {
					for i, l := range wrap(x, a.width()-4) {
						if i == 0 {
							fmt.Fprintf(w, "  - %s\n", l)
						} else {
							fmt.Fprintf(w, "    %s\n", l)
						}
					}
				}
			}
			fmt.Fprintf(w, "\n%s", d.YAML)
			return nil
		},
	}
}
