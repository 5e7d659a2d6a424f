package main

import (
	"context"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

// versionOutput is what `version -o json` prints.
type versionOutput struct {
	Regentctl string `json:"regentctl"`
	Go        string `json:"go"`
	Agent     string `json:"agent,omitempty"`
	AgentID   string `json:"agent_id,omitempty"`
	AgentErr  string `json:"agent_error,omitempty"`
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print regentctl's version, and the agent's when an endpoint is set",
		Args:  args(0, ""),
		RunE: func(*cobra.Command, []string) error {
			out := versionOutput{Regentctl: version, Go: runtime.Version()}
			// The agent's version is a bonus: version works with no agent.
			if first(a.endpoints, a.env(envEndpoint)) != "" {
				if c, err := a.client(); err != nil {
					out.AgentErr = err.Error()
				} else {
					ctx, cancel := context.WithTimeout(a.ctx, a.timeout)
					st, err := c.Status(ctx)
					cancel()
					if err != nil {
						out.AgentErr = err.Error()
					} else {
						out.Agent, out.AgentID = st.Version, st.AgentID
					}
				}
			}
			if a.json() {
				return a.printJSON(out)
			}
			fmt.Fprintf(a.stdout, "regentctl %s (%s)\n", out.Regentctl, out.Go)
			switch {
			case out.Agent != "":
				fmt.Fprintf(a.stdout, "agent %s: regent %s\n", out.AgentID, out.Agent)
			case out.AgentErr != "":
				fmt.Fprintf(a.stderr, "agent: %s\n", out.AgentErr)
			}
			return nil
		},
	}
}
