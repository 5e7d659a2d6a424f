package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func (a *app) resumeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "resume",
		Short: "Lift a pause: automatic action on the cluster starts again",
		Args:  args(0, ""),
		RunE: func(*cobra.Command, []string) error {
			c, name, err := a.setup()
			if err != nil {
				return classify(err)
			}
			cl, err := c.Resume(a.ctx, name)
			if err != nil {
				return classify(err)
			}
			if a.json() {
				return a.printJSON(cl)
			}
			state := "possible"
			if !cl.AutomaticFailover.Possible {
				state = "still blocked (see regentctl status)"
			}
			fmt.Fprintf(a.stdout, "cluster %s resumed; automatic failover is %s\n", name, state)
			return nil
		},
	}
}
