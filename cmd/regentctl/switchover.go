package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/regentdb/regent/api"
)

func (a *app) switchoverCommand() *cobra.Command {
	var to string
	var wait bool
	var waitWrites time.Duration
	cmd := &cobra.Command{
		Use:   "switchover [--to INSTANCE]",
		Short: "Move the primary role to a replica, planned (writes blocked briefly)",
		Long: `Planned switchover: the leader refuses if the target lags, is unhealthy or
long write transactions keep running (bounded by --wait-for-writes), then
sets the primary read-only, waits for the target to catch up, promotes it,
repoints the other replicas and the old primary, and moves the route.

Prints a line per step as it ends, then the write-blocked window and the
total duration. Exits 0 only if the switchover succeeded. Without --to,
Regent chooses the best replica.`,
		Args: args(0, ""),
		RunE: func(*cobra.Command, []string) error {
			c, name, err := a.setup()
			if err != nil {
				return classify(err)
			}
			req := api.SwitchoverRequest{To: to, WaitForWrites: api.Duration(waitWrites)}
			if err := req.Validate(); err != nil {
				return usageErr("%v", err)
			}
			op, err := c.Switchover(a.ctx, name, req)
			if err != nil {
				return classify(err)
			}
			return classify(a.followAndReport(c, op, wait))
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "replica to promote (default: Regent chooses)")
	cmd.Flags().BoolVar(&wait, "wait", true, "follow the switchover to its end (--wait=false returns once it started)")
	cmd.Flags().DurationVar(&waitWrites, "wait-for-writes", 0, "how long to wait for running write transactions before refusing (default: the agent's)")
	_ = cmd.RegisterFlagCompletionFunc("to", a.completeInstances)
	return cmd
}
