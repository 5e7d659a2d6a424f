package main

import (
	"github.com/spf13/cobra"

	"github.com/regentdb/regent/api"
)

func (a *app) rejoinCommand() *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "rejoin INSTANCE",
		Short: "Make a returned old primary (or a stray instance) a replica of the primary",
		Long: `Rejoin INSTANCE as a replica of the current primary with GTID
auto-positioning. The leader refuses when INSTANCE has errant transactions
(it stays quarantined: re-clone it or deal with the transactions first).`,
		Args:              args(1, "INSTANCE"),
		ValidArgsFunction: a.completeInstances,
		RunE: func(_ *cobra.Command, argv []string) error {
			req := api.RejoinRequest{Instance: argv[0]}
			if err := req.Validate(); err != nil {
				return usageErr("%v", err)
			}
			c, name, err := a.setup()
			if err != nil {
				return classify(err)
			}
			op, err := c.Rejoin(a.ctx, name, req)
			if err != nil {
				return classify(err)
			}
			return classify(a.followAndReport(c, op, wait))
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", true, "follow the rejoin to its end")
	return cmd
}
