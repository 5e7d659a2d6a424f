// Package apiserver is the HTTP side of Regent's API: routes, authentication
// (bearer tokens and client certificates), forwarding of mutating calls from
// a follower to the Raft leader, strict request decoding, the Prometheus
// metrics registry (Metrics), the HTML status page and request logs.
//
// It knows the agent only through the Backend interface, which cmd/regent
// implements by adapting consensus, topology, failover and proxyhook. It
// must not import any of them: it deals in the JSON types of package api and
// nothing else. The health endpoints HAProxy polls (/primary, /replica,
// /read-only, /health) are decided in proxyhook; the server only mounts the
// http.Handler it is given for them.
//
// # Routes and who may call them
//
//	GET  /primary /replica /read-only /health   Config.Health; open unless Auth.ProtectHealth
//	GET  /metrics                               open unless Auth.ProtectMetrics
//	GET  /                                      status page; read-only unless Auth.OpenStatusPage
//	GET  /v1/status                             read-only
//	GET  /v1/clusters/{name}                    read-only
//	GET  /v1/clusters/{name}/history[?limit=N]  read-only
//	GET  /v1/clusters/{name}/check              read-only
//	GET  /v1/clusters/{name}/operations/{id}[?follow=1]  read-only; served by the leader
//	POST /v1/clusters/{name}/switchover|failover|rejoin  admin; leader; 202 + Operation
//	POST /v1/clusters/{name}/pause|resume                admin; leader; 200 + Cluster
//	POST /v1/clusters/{name}/operations/{id}/ack       admin; leader; 200 + Operation
//	POST|DELETE /v1/clusters/{name}/instances/{instance}/maintenance
//	                                                     admin; leader; 200 + Cluster
//	GET  /v1/discover?address=HOST:PORT         admin; answered by the agent asked
//	GET  /v1/members                            read-only
//	POST /v1/members                            admin; leader
//	DELETE /v1/members/{id}                     admin; leader
//
// "read-only" means a read-only or an admin credential. "leader" means a
// follower forwards the call to the leader (keeping the caller's
// Authorization header, with a hop count that stops loops); a caller
// authenticated only by client certificate cannot be vouched for that way,
// so it gets 503 not_leader with the leader's API address instead, which
// api.Client follows.
//
// # Client certificates
//
// ServerTLS verifies client certificates against the people's CA
// (ClientCAFile) and the agents' CA (AgentCAFile) together; which CA vouches
// for what is decided per request. A certificate gets a role only if the
// people's CA (AuthConfig.ClientCAs) verifies it and its URI SAN
// urn:regent:user:NAME names a user of CertAdmins or CertReaders; its
// common name and DNS names count for nothing (mysqld's certificates carry
// their hosts' names). An agent's certificate (urn:regent:agent:ID,
// verified by AuthConfig.AgentCAs) grants no role: agents call each other
// with tokens. The request log names who forwarded a call
// (X-Regent-Forwarded-By, X-Forwarded-For) only when it came with the
// certificate of the agent the header names last; otherwise it notes
// forward_headers_ignored. NewForwardTransport sends a call meant for an
// agent only to a server whose certificate names that agent.
//
// # Tokens file
//
// One credential per line, "role:token" or "role:token:name"; role is admin
// or read-only; blank lines and lines starting with # are ignored. Tokens
// are 16 to 4096 printable ASCII characters without spaces or colons (for
// example the output of `openssl rand -hex 32`); the optional name (letters,
// digits, . _ @ -) is how the caller appears in logs and in "paused by".
// The file must not be readable by other users. Every agent should hold the
// same file: a forwarded call is authenticated again by the leader.
package apiserver
