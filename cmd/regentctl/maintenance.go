package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/regentdb/regent/api"
)

func (a *app) maintenanceCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "maintenance start|end INSTANCE",
		Short: "Take a replica out of Regent's care while you work on it",
		Long: `An instance in maintenance is never promoted (a forced failover to it
needs --force), its replica problems are neither reported nor repaired
(Regent restarts no thread and repoints nothing on it), and /replica and
/read-only answer 503 on it, so balancers send it no reads. Its data still
counts in a failover. Status, the status page and metrics show who started
it, why and until when; it ends by itself then. The primary cannot be put in
maintenance: switch over first.`,
	}
	cmd.AddCommand(a.maintenanceStartCommand(), a.maintenanceEndCommand())
	return cmd
}

func (a *app) maintenanceStartCommand() *cobra.Command {
	var reason string
	var dur time.Duration
	cmd := &cobra.Command{
		Use:               "start INSTANCE --reason TEXT --for DURATION",
		Short:             "Put an instance in maintenance until DURATION from now",
		Args:              args(1, "INSTANCE"),
		ValidArgsFunction: a.completeInstances,
		RunE: func(_ *cobra.Command, argv []string) error {
			req := api.MaintenanceRequest{Reason: reason, For: api.Duration(dur)}
			if err := api.CheckName("instance", argv[0]); err != nil {
				return usageErr("%v", err)
			}
			if err := req.Validate(); err != nil {
				return usageErr("%v", err)
			}
			c, name, err := a.setup()
			if err != nil {
				return classify(err)
			}
			cl, err := c.StartMaintenance(a.ctx, name, argv[0], req)
			if err != nil {
				return classify(err)
			}
			if a.json() {
				return a.printJSON(cl)
			}
			m := maintenanceOf(cl, argv[0])
			if m == nil {
				return failed("the leader accepted the maintenance of %s but the cluster it returned does not show it; see regentctl status", argv[0])
			}
			fmt.Fprintf(a.stdout, "%s is in maintenance until %s (by %s): never promoted, its replica problems not reported, no reads routed to it\n",
				argv[0], m.Until.Local().Format("2006-01-02 15:04 MST"), m.By)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the people who will see it (required)")
	cmd.Flags().DurationVar(&dur, "for", 0, "how long, e.g. 2h; it ends by itself then (required, at most 720h)")
	return cmd
}

func (a *app) maintenanceEndCommand() *cobra.Command {
	return &cobra.Command{
		Use:               "end INSTANCE",
		Short:             "End an instance's maintenance now",
		Args:              args(1, "INSTANCE"),
		ValidArgsFunction: a.completeInstances,
		RunE: func(_ *cobra.Command, argv []string) error {
			if err := api.CheckName("instance", argv[0]); err != nil {
				return usageErr("%v", err)
			}
			c, name, err := a.setup()
			if err != nil {
				return classify(err)
			}
			cl, err := c.EndMaintenance(a.ctx, name, argv[0])
			if err != nil {
				return classify(err)
			}
			if a.json() {
				return a.printJSON(cl)
			}
			fmt.Fprintf(a.stdout, "%s's maintenance ended: it may be promoted again, and its problems are reported\n", argv[0])
			return nil
		},
	}
}

// maintenanceOf returns an instance's maintenance, nil when none.
func maintenanceOf(c api.Cluster, instance string) *api.Maintenance {
	for _, in := range c.Instances {
		if in.Name == instance {
			return in.Maintenance
		}
	}
	return nil
}
