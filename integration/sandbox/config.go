package sandbox

import (
	"cmp"
	"fmt"
	"strings"
)

// Peer is one agent of a rig as regent.yaml's raft.peers names it.
type Peer struct{ ID, Raft, API string }

// AgentConfig is what differs between the rigs' agents (the sandbox's and
// the fleet benchmark's); YAML writes the agent's regent.yaml. Every agent
// of a rig shares one CA, one token file and one agent token; the MySQL
// passwords come from files.
type AgentConfig struct {
	NodeID, DataDir string
	LocalInstance   string // "" for an agent without a local instance
	// Top is extra top-level lines (e.g. "max_parallel_operations: 4\n").
	Top string
	// RaftBind and APIListen are the agent's own addresses; Peers every
	// agent of the rig, this one included.
	RaftBind, APIListen string
	Peers               []Peer
	// RaftTimings is extra lines of the raft section ("  heartbeat_timeout:
	// ...\n"); "" for Regent's defaults.
	RaftTimings       string
	CAFile, CertFile  string
	KeyFile           string
	TokensFile        string
	AgentTokenFile    string
	MySQLUser         string
	MySQLPasswordFile string
	ReplUser          string
	ReplPasswordFile  string
	// MySQLExtra is extra lines of the mysql section ("  tls: ...\n").
	MySQLExtra string
	// Clusters is the clusters section's items, each "  - name: ...".
	Clusters string
	LogLevel string // "info" when empty
}

// YAML is the agent's regent.yaml.
func (c AgentConfig) YAML() string {
	var peers strings.Builder
	for _, p := range c.Peers {
		fmt.Fprintf(&peers, "    - {id: %s, address: %q, api: %q}\n", p.ID, p.Raft, p.API)
	}
	local := ""
	if c.LocalInstance != "" {
		local = "local_instance: " + c.LocalInstance + "\n"
	}
	tls := fmt.Sprintf("{ca_file: %s, cert_file: %s, key_file: %s}", c.CAFile, c.CertFile, c.KeyFile)
	return fmt.Sprintf(`node_id: %s
data_dir: %s
%s%sraft:
  bind: %q
  peers:
%s%s  tls: %s
api:
  listen: %q
  tls: %s
  tokens_file: %s
  agent_token_file: %s
mysql:
  user: %s
  password_file: %s
  replication_user: %s
  replication_password_file: %s
%sclusters:
%slog: {format: text, level: %s}
`, c.NodeID, c.DataDir, local, c.Top, c.RaftBind, peers.String(), c.RaftTimings, tls,
		c.APIListen, tls, c.TokensFile, c.AgentTokenFile,
		c.MySQLUser, c.MySQLPasswordFile, c.ReplUser, c.ReplPasswordFile, c.MySQLExtra, c.Clusters, cmp.Or(c.LogLevel, "info"))
}
