// Command regentctl is Regent's admin CLI. It talks to the agents' HTTP API
// only, through package api; it imports nothing else of the agent.
//
// Each subcommand lives in its own file; root.go holds the global flags,
// the client construction and the exit codes, which scripts rely on:
//
//	0  success
//	1  the operation failed or was refused (or check found errors)
//	2  usage error: bad flags or arguments, unknown cluster or instance
//	3  no agent could be reached
//	4  authentication or authorization error (401, 403)
package main
