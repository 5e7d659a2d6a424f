package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/regentdb/regent/api"
)

func (a *app) ackCommand() *cobra.Command {
	var comment string
	cmd := &cobra.Command{
		Use:   "ack ID [--comment TEXT]",
		Short: "Acknowledge a failover: you have looked at it",
		Long: `Record that you have looked at a finished failover, with what you found or
did. Until then status lists it under UNACKNOWLEDGED FAILOVERS and the metric
regent_cluster_unacknowledged_failovers counts it. ID is its id as history
prints it, or any unique part of it. Acknowledging changes nothing in the
cluster.`,
		Args: args(1, "the operation's id (regentctl history lists them)"),
		RunE: func(_ *cobra.Command, argv []string) error {
			req := api.AckRequest{Comment: comment}
			if err := req.Validate(); err != nil {
				return usageErr("%v", err)
			}
			c, name, op, err := a.operationArg(argv[0])
			if err != nil {
				return err
			}
			op, err = c.Ack(a.ctx, name, op.ID, req)
			if err != nil {
				return classify(err)
			}
			if a.json() {
				return a.printJSON(op)
			}
			fmt.Fprintf(a.stdout, "%s %s acknowledged by %s\n", op.Kind, op.ID, op.Ack.By)
			return nil
		},
	}
	cmd.Flags().StringVar(&comment, "comment", "", "what you found or did, for the people who read the history")
	return cmd
}
