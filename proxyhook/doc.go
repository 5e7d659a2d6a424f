// Package proxyhook moves the write route of a replication cluster: it holds
// the health decisions behind the agent's /primary, /replica, /read-only and
// /health endpoints (HAProxy's pull path), a client of HAProxy's runtime API
// (the push path), a ProxySQL admin client, and operator script hooks.
//
// It knows the HAProxy and ProxySQL protocols and how to run a hook; it knows
// nothing of Raft or of MySQL replication: it imports neither consensus,
// topology nor failover. The failover runner reaches it through an interface
// of its own, which Router satisfies; cmd/regent builds the Router from each
// cluster's routing section (RoutingConfig) and mounts NewHealthHandler.
//
// # Health decisions (pull)
//
// Decide is a pure function from the agent's view of its local instance
// (LocalState: reachable, Raft's current primary, writable, lease held,
// replication threads and lag) to an HTTP status and a short JSON body.
// /primary answers 200 only when all of "current epoch's primary", "writable"
// and "lease held" hold, so an isolated old primary drops out of HAProxy as
// soon as its agent loses the lease, and a restarted one never comes back.
// NewHealthHandler serves the four endpoints from a StateFunc; a bad
// ?max_lag= is a 400 with a message.
//
// # Routing changes (push)
//
// A RouteChange carries the cluster, its epoch and the new primary. Router
// sends it to every Target of the cluster in parallel (each HAProxy runtime
// API, each ProxySQL, the route hooks) and returns a RouteReport with one
// TargetResult per target; a failed target does not stop the others, and the
// error (a *RouteError) wraps every target's error. Unroute takes the old
// primary out of write routing and cuts its sessions, which a failover does
// before fencing it; Route then makes the new primary the only writer.
//
// Attempts are ordered by Order: a change carries its planned epoch and a
// token, the Raft index that authorised it. The Router and every target
// refuse a change older than the newest they accepted for the cluster
// (*StaleEpochError, errors.Is ErrStaleEpoch) and log it; an equal one is a
// retry and is allowed. A change without a token is ordered by epoch (seed
// the Router with SeedEpoch from Raft for those). Targets keep the order
// next to the route, so a deposed leader on another agent is refused by the
// proxy's own state: ProxySQL as "regent-epoch=E regent-token=T" in
// mysql_servers.comment, HAProxy in the process variable RouteVar(cluster),
// checked before every command that changes a server (its runtime API has
// no compare-and-set; see HAProxyTarget.guard).
//
// Every target is idempotent and verifies what it did by reading it back
// (HAProxy: "show servers state"; ProxySQL: runtime_mysql_servers).
//
// # HAProxy
//
// RuntimeClient speaks the runtime API over a unix socket or TCP, one
// command per connection: set server state ready/drain/maint, set server
// health, set server addr/port, shutdown sessions server, show servers state
// (parsed by ParseServersState). Transient failures are retried with a
// bounded backoff (RetryPolicy) within the ctx; answers that a retry cannot
// change are not. A socket below admin level makes HAProxy answer "Permission
// denied": the client returns ErrNotAdmin with the line to fix.
//
// HAProxyTarget maps each instance to its backend/server (write_servers: no
// name is guessed). Route puts every other mapped server in maint and shuts
// its sessions, then sets the new primary ready and forces its health up
// (unless wait_for_health_check), so the route moves at once even while Raft
// has not committed the epoch yet; the checks against /primary then keep it
// right. Runtime changes are lost on a reload unless HAProxy loads a
// server-state file: HAProxyTarget can write it after every change
// (server_state_file), or a systemd ExecReload step saves it
// (deploy/haproxy).
//
// # ProxySQL: Regent moves the hostgroups itself
//
// ProxySQL can route by itself with mysql_replication_hostgroups: its monitor
// reads read_only on every server and moves servers between the writer and
// reader hostgroups. Regent does not use that, and refuses to manage a
// hostgroup that a mysql_replication_hostgroups row also covers
// (ErrProxySQLMixedMode, with what to delete), because the two fight: Regent
// would put the new primary in the writer hostgroup and ProxySQL's monitor
// would move servers back and forth by a flag it polls, with nothing to tell
// it which epoch is current. read_only is a symptom, not the decision: a
// restarted old primary whose my.cnf lacks read_only=ON would be made a
// writer again by the monitor, and between the switchover's read_only=ON and
// the promotion the monitor would leave the writer hostgroup empty or keep
// the old writer in it for a monitor interval. Regent's decision is in Raft,
// so Regent writes it: the writer hostgroup gets exactly one ONLINE row, the
// new primary; the other rows are removed (or set OFFLINE_SOFT/OFFLINE_HARD,
// old_primary); a managed reader hostgroup gets the replicas ONLINE and loses
// the new primary (unless writer_is_also_reader). Then LOAD MYSQL SERVERS TO
// RUNTIME, SAVE MYSQL SERVERS TO DISK, and a check of runtime_mysql_servers.
// Unroute sets the old primary OFFLINE_HARD, which drops its connections. A
// row Regent inserts copies the server's other row (use_ssl, weight,
// max_connections), so TLS to the backends is kept.
//
// The client is tested against an emulation of ProxySQL's admin interface
// (package proxysqltest, built on go-mysql's server package): ProxySQL cannot
// be installed where Regent is developed. The emulation keeps mysql_servers
// and mysql_replication_hostgroups in memory, runtime and disk layers,
// implements LOAD/SAVE between them and records every statement.
//
// # Hooks
//
// Hooks run an argv (no shell unless configured) at pre-/post-failover,
// pre-/post-switchover, fence, route, unroute and failed. The environment is
// built from scratch: PATH, HOME, LANG, LC_ALL, TZ, TMPDIR, the hook's own
// non-secret env, and REGENT_CLUSTER, REGENT_EVENT, REGENT_OPERATION,
// REGENT_OPERATION_ID, REGENT_PHASE, REGENT_EPOCH, REGENT_ROUTE_TOKEN, REGENT_REASON,
// REGENT_RESULT, REGENT_REPLICAS, REGENT_HOOK_NAME, REGENT_HOOK_TIMEOUT and
// REGENT_OLD_PRIMARY / REGENT_NEW_PRIMARY with _HOST, _PORT and _ADDR. No
// secret is ever passed in the environment or the arguments (env names that
// look like secrets are refused): a hook reads its own from a file. A hook
// runs in its own process group; at its timeout (or when the ctx ends) the
// whole group gets SIGTERM, then SIGKILL, and whatever it left running is
// killed when it exits. Its stdout and stderr are captured together, bounded
// (head and tail kept), for the operation's history.
//
// The failure policy is declared by the event: a failed pre- hook aborts the
// operation (ErrHookAborted; the hooks after it do not run); a failed hook of
// any other event marks its step failed (ErrHookFailed) and is never
// reported as success, while the event's other hooks still run.
package proxyhook
