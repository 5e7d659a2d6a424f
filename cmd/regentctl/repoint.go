package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/regentdb/regent/api"
)

func (a *app) repointCommand() *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "repoint REPLICA --to SOURCE",
		Short: "Relocate a replica under another replica (chained replication), or back under the primary",
		Long: `Relocate REPLICA under SOURCE, another replica of the cluster, with GTID
auto-positioning: its IO thread stops, SOURCE executes everything REPLICA
holds, then REPLICA replicates from SOURCE. The relocation is recorded in
the replicated state, and Regent keeps REPLICA there while SOURCE can serve
it. When SOURCE dies, is fenced, stops replicating, goes into maintenance,
or the primary would lack semi-sync acknowledgers, REPLICA is moved under
the primary (IntermediateSourceLost), and back under SOURCE once it can
serve it again. A failover or switchover puts every replica under the new
primary; relocations are restored afterwards. --to with the primary's name
(or no --to) puts REPLICA directly under the primary and removes the record.

Refused, with the reason, when SOURCE cannot serve (not a replicating
replica, log_slave_updates off, quarantined, in maintenance), when it would
make a cycle, or when REPLICA holds errant transactions.`,
		Args:              args(1, "REPLICA"),
		ValidArgsFunction: a.completeInstances,
		RunE: func(_ *cobra.Command, argv []string) error {
			req := api.RepointRequest{To: to}
			if err := api.CheckName("replica", argv[0]); err != nil {
				return usageErr("%v", err)
			}
			if err := req.Validate(); err != nil {
				return usageErr("%v", err)
			}
			c, name, err := a.setup()
			if err != nil {
				return classify(err)
			}
			op, err := c.Repoint(a.ctx, name, argv[0], req)
			if err != nil {
				return classify(err)
			}
			if a.json() {
				if err := a.printJSON(op); err != nil {
					return err
				}
			} else {
				for _, s := range op.Steps {
					fmt.Fprintln(a.stdout, progressLine(s, op.Started))
				}
			}
			if op.Result != api.ResultSuccess {
				return failed("repoint of %s %s: %s", argv[0], op.Result, orDash(op.Reason))
			}
			where := to
			if where == "" {
				where = "the primary"
			}
			fmt.Fprintf(a.progressWriter(), "%s replicates from %s; took %s\n", argv[0], where, short(op.Duration(a.now())))
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the instance to replicate from: a replica of the cluster, or the primary (the default)")
	return cmd
}
