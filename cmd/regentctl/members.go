package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/regentdb/regent/api"
)

func (a *app) membersCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List, add or remove Regent agents (Raft members)",
		Long: `Without a subcommand, list the agents of the Raft configuration.
Members are named by stable node ids, never by address, so an agent that
moves keeps its id.`,
		Args: args(0, ""),
		RunE: func(*cobra.Command, []string) error { return classify(a.membersList()) },
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the agents of the Raft configuration",
		Args:  args(0, ""),
		RunE:  func(*cobra.Command, []string) error { return classify(a.membersList()) },
	}
	var nonVoter bool
	add := &cobra.Command{
		Use:   "add ID RAFT_ADDR API_ADDR",
		Short: "Add an agent to the Raft configuration",
		Long: `Add agent ID, reachable by the other agents at RAFT_ADDR (host:port) and
serving its API at API_ADDR (host:port). Start the new agent first, with an
empty data directory and the same TLS CA.`,
		Args: args(3, "ID RAFT_ADDR API_ADDR"),
		RunE: func(_ *cobra.Command, argv []string) error {
			req := api.AddMemberRequest{ID: argv[0], RaftAddr: argv[1], APIAddr: argv[2], NonVoter: nonVoter}
			if err := req.Validate(); err != nil {
				return usageErr("%v", err)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			m, err := c.AddMember(a.ctx, req)
			if err != nil {
				return classify(err)
			}
			return a.printMembersAnswer(m, fmt.Sprintf("agent %s added", req.ID))
		},
	}
	add.Flags().BoolVar(&nonVoter, "non-voter", false, "add it as a non-voting member")
	remove := &cobra.Command{
		Use:   "remove ID",
		Short: "Remove an agent from the Raft configuration",
		Args:  args(1, "ID"),
		RunE: func(_ *cobra.Command, argv []string) error {
			if err := api.CheckName("member id", argv[0]); err != nil {
				return usageErr("%v", err)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			m, err := c.RemoveMember(a.ctx, argv[0])
			if err != nil {
				return classify(err)
			}
			return a.printMembersAnswer(m, fmt.Sprintf("agent %s removed", argv[0]))
		},
	}
	cmd.AddCommand(list, add, remove)
	return cmd
}

func (a *app) membersList() error {
	c, err := a.client()
	if err != nil {
		return err
	}
	m, err := c.Members(a.ctx)
	if err != nil {
		return err
	}
	return a.printMembersAnswer(m, "")
}

func (a *app) printMembersAnswer(m api.Members, done string) error {
	if a.json() {
		return a.printJSON(m)
	}
	if done != "" {
		fmt.Fprintln(a.stdout, done)
	}
	a.printMembers(m.LeaderID, m.Members, nil)
	return nil
}
