// Package api holds the JSON types of Regent's HTTP API, shared by the agent
// (package apiserver, cmd/regent) and the admin CLI (cmd/regentctl), and a Go
// client for that API.
//
// It is the whole contract between the CLI and the agent: regentctl imports
// nothing of the agent but this package. So the package must not know Raft,
// MySQL, the failover logic or the routing layer; it knows only the shapes
// that travel over HTTP and how to send them.
//
// # Conventions on the wire
//
//   - Times are RFC 3339 strings in UTC ("2026-11-28T13:45:04.123Z").
//   - Durations (type Duration) are Go duration strings ("1.5s", "183ms");
//     when decoding, a JSON number is also accepted as seconds.
//   - Optional facts are pointers and omitted when unknown: a replica whose
//     lag the server reports as NULL has no lag_seconds, which is not the
//     same as a lag of 0.
//   - Errors are one object, {"error": "...", "code": "..."}, with a 4xx or
//     5xx status (see Error and the Code… constants).
//
// # Long operations
//
// POST /v1/clusters/{name}/switchover (and failover, rejoin) answers
// 202 Accepted with an Operation whose Result is "running" and a Location
// header naming GET /v1/clusters/{name}/operations/{id}. That GET returns the
// current Operation; with ?follow=1 it streams newline-delimited JSON, one
// complete Operation per line, each time the operation changes (and at least
// every few seconds as a keep-alive), and ends after the line whose Result is
// no longer "running". Every line is a full snapshot, so a client that loses
// the stream (the agent it talked to died) follows again on another agent and
// compares steps by index: nothing is lost and nothing is printed twice.
// Client.FollowOperation does exactly that.
package api
