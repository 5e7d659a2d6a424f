package main

import (
	"github.com/spf13/cobra"

	"github.com/regentdb/regent/api"
)

func (a *app) failoverCommand() *cobra.Command {
	var to string
	var force, wait bool
	cmd := &cobra.Command{
		Use:   "failover --to INSTANCE [--force]",
		Short: "Promote a replica now, as after a primary failure (manual failover)",
		Long: `Manual failover to INSTANCE: fence the old primary (read_only, or wait out its
lease), promote INSTANCE, repoint the others and move the route. Allowed
during the anti-flap window. Without --force, the leader refuses when the
primary still looks healthy or the target is behind another replica;
--force overrides those checks (never the fencing). Exits 0 only if the
failover succeeded.`,
		Args: args(0, ""),
		RunE: func(*cobra.Command, []string) error {
			if to == "" {
				return usageErr("failover needs --to INSTANCE: the replica to promote")
			}
			c, name, err := a.setup()
			if err != nil {
				return classify(err)
			}
			req := api.FailoverRequest{To: to, Force: force}
			if err := req.Validate(); err != nil {
				return usageErr("%v", err)
			}
			op, err := c.Failover(a.ctx, name, req)
			if err != nil {
				return classify(err)
			}
			return classify(a.followAndReport(c, op, wait))
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "replica to promote (required)")
	cmd.Flags().BoolVar(&force, "force", false, "promote even if the safety checks refuse (fencing still happens)")
	cmd.Flags().BoolVar(&wait, "wait", true, "follow the failover to its end")
	_ = cmd.RegisterFlagCompletionFunc("to", a.completeInstances)
	return cmd
}
