package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/regentdb/regent/api"
)

func (a *app) pauseCommand() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "pause [--reason TEXT]",
		Short: "Stop all automatic action on a whole cluster (for one replica: maintenance)",
		Long: `Pause automatic action on the cluster: no automatic failover, fencing
repair or rejoin until 'regentctl resume'. Manual switchover and failover
still work. The pause, who made it and why are shown by status, on the
status page, and in metrics (an alert fires when it lasts over an hour).`,
		Args: args(0, ""),
		RunE: func(*cobra.Command, []string) error {
			req := api.PauseRequest{Reason: reason}
			if err := req.Validate(); err != nil {
				return usageErr("%v", err)
			}
			c, name, err := a.setup()
			if err != nil {
				return classify(err)
			}
			cl, err := c.Pause(a.ctx, name, req)
			if err != nil {
				return classify(err)
			}
			if a.json() {
				return a.printJSON(cl)
			}
			by := ""
			if cl.Paused != nil {
				by = " by " + cl.Paused.By
			}
			fmt.Fprintf(a.stdout, "cluster %s paused%s: Regent takes no automatic action on it until 'regentctl resume'\n", name, by)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the people who will see the cluster paused")
	return cmd
}
