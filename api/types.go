package api

import (
	"time"
)

// Probe is the answer of GET /liveness and GET /readiness (container
// orchestrators' probes): OK, with the reason when not.
type Probe struct {
	OK     bool   `json:"ok"`
	Agent  string `json:"agent"`
	Reason string `json:"reason,omitempty"`
}

// Status is the answer of GET /v1/status: the regent cluster (the Raft
// group of agents) as the answering agent sees it.
type Status struct {
	// AgentID is the node id of the agent that answered.
	AgentID string `json:"agent_id"`
	// Version is the answering agent's build version.
	Version string `json:"version"`
	// RaftState is this agent's Raft state: leader, follower, candidate or
	// shutdown.
	RaftState string `json:"raft_state"`
	// IsLeader is true when the answering agent is the Raft leader.
	IsLeader bool `json:"is_leader"`
	// LeaderID is the node id of the Raft leader; empty when there is none
	// (an election is running or this agent has lost the quorum).
	LeaderID string `json:"leader_id,omitempty"`
	// LeaderAPIAddr is the leader's API address (host:port); empty when
	// there is no leader.
	LeaderAPIAddr string `json:"leader_api_addr,omitempty"`
	// Term is the current Raft term.
	Term uint64 `json:"term"`
	// CommitIndex is the highest Raft log index known to be committed.
	CommitIndex uint64 `json:"commit_index"`
	// AppliedIndex is the highest Raft log index applied to this agent's
	// state; it trails CommitIndex briefly on a follower.
	AppliedIndex uint64 `json:"applied_index"`
	// Members are the agents of the Raft configuration, sorted by ID.
	Members []Member `json:"members"`
	// Clusters are the names of the replication clusters this regent
	// cluster manages, sorted.
	Clusters []string `json:"clusters"`
	// Lease is this agent's self-fencing lease (docs/safety.md); nil when
	// the agent has no local instance.
	Lease *Lease `json:"lease,omitempty"`
	// Time is the answering agent's clock when it answered.
	Time time.Time `json:"time"`
}

// Lease is an agent's right to keep its local instance writable.
type Lease struct {
	// Held is true while the agent has heard from the Raft quorum within
	// lease_timeout.
	Held bool `json:"held"`
	// Needed is true when this agent's local instance is the current
	// primary, so that losing the lease fences it.
	Needed bool `json:"needed"`
	// LastQuorumContact is when the agent last heard from a quorum.
	LastQuorumContact *time.Time `json:"last_quorum_contact,omitempty"`
	// Expires is when the lease lapses unless the quorum is heard again.
	Expires *time.Time `json:"expires,omitempty"`
}

// Member is one agent of the Raft configuration.
type Member struct {
	// ID is the agent's stable node id, never an IP: a membership keyed by
	// address breaks when hosts are re-addressed or rescheduled.
	ID string `json:"id"`
	// RaftAddr is the advertised Raft address (host:port).
	RaftAddr string `json:"raft_addr"`
	// APIAddr is the agent's HTTP API address (host:port).
	APIAddr string `json:"api_addr,omitempty"`
	// Voter is false for a non-voting member (it replicates the log but
	// does not count towards the quorum).
	Voter bool `json:"voter"`
	// State is leader, follower, candidate, unreachable or unknown, as the
	// answering agent sees it.
	State string `json:"state"`
	// LastContact is when the answering agent last heard from this member
	// (the leader knows it for every follower; a follower knows it for the
	// leader); nil when unknown.
	LastContact *time.Time `json:"last_contact,omitempty"`
	// LocalInstance is the name of the database instance on this agent's
	// host; empty for a tie-breaker agent.
	LocalInstance string `json:"local_instance,omitempty"`
	// Self is true for the agent that answered.
	Self bool `json:"self,omitempty"`
}

// Members is the answer of GET/POST /v1/members and DELETE
// /v1/members/{id}.
type Members struct {
	// LeaderID is the node id of the Raft leader, empty when there is none.
	LeaderID string `json:"leader_id,omitempty"`
	// Members are the agents of the Raft configuration, sorted by ID.
	Members []Member `json:"members"`
}

// Role is an instance's role in its replication cluster.
type Role string

// The roles.
const (
	RolePrimary     Role = "primary"
	RoleReplica     Role = "replica"
	RoleUnknown     Role = "unknown"
	RoleQuarantined Role = "quarantined"
	// RoleFormerPrimary: the primary the last failover replaced, not a
	// replica since (still down, or back and waiting to be rejoined).
	RoleFormerPrimary Role = "former-primary"
)

// Roles lists every Role, in a fixed order.
func Roles() []Role {
	return []Role{RolePrimary, RoleReplica, RoleUnknown, RoleQuarantined, RoleFormerPrimary}
}

// Durability modes of a replication cluster (docs/safety.md: no
// acknowledged write is lost with semi_sync only).
const (
	DurabilitySemiSync = "semi_sync"
	DurabilityAsync    = "async"
)

// Cluster is the answer of GET /v1/clusters/{name}: one replication
// cluster, its state in Raft and the latest probes of its instances.
type Cluster struct {
	// Name is the replication cluster's name from the configuration.
	Name string `json:"name"`
	// Primary is the instance the current epoch names as the writer; empty
	// when the cluster has no primary.
	Primary string `json:"primary,omitempty"`
	// Epoch grows by one at every change of primary; it is the fencing
	// token carried by every promotion and routing change.
	Epoch uint64 `json:"epoch"`
	// Durability is semi_sync or async.
	Durability string `json:"durability"`
	// Operation is the failover, switchover or rejoin running now; nil when
	// none is.
	Operation *OperationRef `json:"operation,omitempty"`
	// Paused is set while all automatic action on this cluster is paused.
	Paused *Pause `json:"paused,omitempty"`
	// Defined is set for a cluster added at run time (regentctl cluster
	// create), nil for one of regent.yaml.
	Defined *Defined `json:"defined,omitempty"`
	// Unacknowledged lists the recorded failovers no operator has
	// acknowledged yet (regentctl ack), newest first.
	Unacknowledged []OperationRef `json:"unacknowledged,omitempty"`
	// SemiSyncDegraded is set while the primary commits asynchronously by
	// the leader's decision (semi_sync_fallback): writes acknowledged since
	// may be lost by a failover.
	SemiSyncDegraded *SemiSyncDegraded `json:"semi_sync_degraded,omitempty"`
	// AntiFlapUntil is when the anti-flap window that follows a failover
	// ends; until then automatic failovers of this cluster are blocked (a
	// manual one is always allowed). Nil when no window is open.
	AntiFlapUntil *time.Time `json:"anti_flap_until,omitempty"`
	// AutomaticFailover says whether an automatic failover could happen now
	// and, if not, why: recovery that is off or blocked must say so, never
	// fail silently.
	AutomaticFailover AutomaticFailover `json:"automatic_failover"`
	// Problems are the findings of the latest analysis, most urgent first.
	Problems []Problem `json:"problems"`
	// Instances are the cluster's instances, sorted by name.
	Instances []Instance `json:"instances"`
	// ObservedBy is the id of the agent whose analysis this is (the
	// leader's, when it is reachable).
	ObservedBy string `json:"observed_by,omitempty"`
	// ObservedAt is when the facts behind this view were gathered.
	ObservedAt time.Time `json:"observed_at"`
}

// OperationRef names an operation in progress.
type OperationRef struct {
	// ID is the operation's id; GET /v1/clusters/{name}/operations/{id}
	// shows its steps.
	ID string `json:"id"`
	// Kind is the operation's kind (OpFailover, OpSwitchover, ...).
	Kind string `json:"kind"`
	// Started is when the operation started.
	Started time.Time `json:"started"`
	// Target is the instance being promoted or rejoined, when known.
	Target string `json:"target,omitempty"`
}

// Pause records who paused automatic action on a cluster, and why.
type Pause struct {
	// By is who paused it: the authenticated caller (a token's role and
	// line, or a client certificate's name).
	By string `json:"by"`
	// Reason is the text given with the pause request.
	Reason string `json:"reason,omitempty"`
	// Since is when the pause started.
	Since time.Time `json:"since"`
}

// AutomaticFailover says whether Regent would fail this cluster over by
// itself right now.
type AutomaticFailover struct {
	// Enabled is the cluster's automatic_failover setting: false, a dead
	// primary is reported and not replaced (blocker "disabled").
	Enabled bool `json:"enabled"`
	// Possible is true when nothing blocks an automatic failover: it is
	// enabled, not paused, outside the anti-flap window, no operation is
	// running and a promotable candidate exists.
	Possible bool `json:"possible"`
	// Blockers say why it is not possible; empty when Possible.
	Blockers []Blocker `json:"blockers,omitempty"`
}

// SemiSyncDegraded says when and why the leader let the primary commit
// asynchronously.
type SemiSyncDegraded struct {
	Since       time.Time `json:"since"`
	Reason      string    `json:"reason"`
	OperationID string    `json:"operation_id"`
}

// Blocker kinds: why an automatic action waits. They are also the values of
// the reason label of regent_cluster_automatic_failover_blocked.
const (
	BlockPaused      = "paused"
	BlockAntiFlap    = "anti_flap"
	BlockOperation   = "operation_in_progress"
	BlockLease       = "lease_not_lapsed"
	BlockNoCandidate = "no_candidate"
	BlockDisabled    = "disabled"
	BlockUnsafe      = "unsafe"
	BlockNoQuorum    = "no_quorum"
	BlockWaiting     = "waiting"
)

// Blocker is one reason an automatic action is not taken now.
type Blocker struct {
	// Kind is one of the Block… constants.
	Kind string `json:"kind"`
	// Reason says what blocks, in words a person can act on.
	Reason string `json:"reason"`
	// Until is when this blocker ends by itself; nil when it does not.
	Until *time.Time `json:"until,omitempty"`
}

// Problem is one finding of the analysis of a replication cluster.
type Problem struct {
	// Code names the kind of problem (DeadPrimary, ReplicaLagging, ...).
	Code string `json:"code"`
	// Description is the generic description of this kind of problem.
	Description string `json:"description"`
	// Priority orders problems: lower is more urgent.
	Priority int `json:"priority"`
	// Instances involved; the first is the subject.
	Instances []string `json:"instances,omitempty"`
	// Target is the instance the automatic action would act on.
	Target string `json:"target,omitempty"`
	// Reason says what is wrong in this case, in words a person can act on.
	Reason string `json:"reason,omitempty"`
	// Action is the automatic action this problem calls for (failover,
	// fence, repoint, rejoin, ...); empty when it is only reported.
	Action string `json:"action,omitempty"`
	// Actionable is true when Action will start now: nothing blocks it.
	Actionable bool `json:"actionable"`
	// Blockers say why Action is not taken now.
	Blockers []Blocker `json:"blockers,omitempty"`
	// Errant lists errant transactions (a GTID set as text) for an errant
	// GTID problem.
	Errant string `json:"errant,omitempty"`
}

// Instance is one MySQL or MariaDB server of a replication cluster, as last
// probed.
type Instance struct {
	// Name is the instance's name from the configuration.
	Name string `json:"name"`
	// Address is the instance's MySQL address (host:port).
	Address string `json:"address"`
	// Role is primary, replica, unknown or quarantined.
	Role Role `json:"role"`
	// Promotion is the configured promotion rule: prefer, neutral or
	// must_not.
	Promotion string `json:"promotion,omitempty"`
	// Reachable maps an agent id to whether that agent's last probe of this
	// instance succeeded.
	Reachable map[string]Reachability `json:"reachable,omitempty"`
	// Version is the server's version string (for example
	// "10.11.6-MariaDB-0+deb12u1-log").
	Version string `json:"version,omitempty"`
	// ServerID is @@server_id; 0 when unknown.
	ServerID uint32 `json:"server_id,omitempty"`
	// ReadOnly is @@read_only; nil when unknown.
	ReadOnly *bool `json:"read_only,omitempty"`
	// SuperReadOnly is @@super_read_only; nil when unknown or not supported
	// (MariaDB has none).
	SuperReadOnly *bool `json:"super_read_only,omitempty"`
	// Replication is the instance's replica status; nil when it does not
	// replicate (a primary, or replication not configured).
	Replication *Replication `json:"replication,omitempty"`
	// GTIDSummary is a short human summary of the executed GTID set (for
	// example "3-1-5034" or "b5e1…:1-5034"). For display only: never parse
	// it, never use it as a metric label.
	GTIDSummary string `json:"gtid_summary,omitempty"`
	// SemiSync is the semi-synchronous replication state; nil when unknown.
	SemiSync *SemiSync `json:"semi_sync,omitempty"`
	// QPS is queries per second, from the growth of Questions between the
	// last two probes; nil when not yet known.
	QPS *float64 `json:"qps,omitempty"`
	// Questions is the server's cumulative Questions status counter (it
	// restarts from 0 when mysqld restarts).
	Questions uint64 `json:"questions,omitempty"`
	// Connections is Threads_connected; nil when unknown.
	Connections *int64 `json:"connections,omitempty"`
	// QuarantineReason says why the instance is quarantined (for example
	// errant transactions); empty unless Role is quarantined.
	QuarantineReason string `json:"quarantine_reason,omitempty"`
	// Labels are the instance's configured location labels (zone,
	// region, ...).
	Labels map[string]string `json:"labels,omitempty"`
	// Maintenance is set while the instance is in maintenance (regentctl
	// maintenance start): never promoted, no replica problem of it
	// reported, nothing on it repaired, /replica 503.
	Maintenance *Maintenance `json:"maintenance,omitempty"`
	// Relocated is where an operator relocated this replica (regentctl
	// repoint); nil when it belongs directly under the primary.
	Relocated *Relocation `json:"relocated,omitempty"`
	// LastProbe is when the answering agent's view of this instance was
	// last refreshed.
	LastProbe *time.Time `json:"last_probe,omitempty"`
}

// Maintenance is an instance's maintenance window.
type Maintenance struct {
	// By is who started it: the authenticated caller.
	By string `json:"by"`
	// Reason is the text given when it started.
	Reason string `json:"reason"`
	// Since is when it started; Until is when it ends by itself.
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
}

// Reachability is one agent's view of whether it can reach an instance.
type Reachability struct {
	// OK is true when the agent's last probe succeeded.
	OK bool `json:"ok"`
	// Error is the error class of a failed probe: refused, timeout, auth,
	// access_denied, gone_away or unknown.
	Error string `json:"error,omitempty"`
	// At is when that agent probed.
	At *time.Time `json:"at,omitempty"`
}

// Replication thread states.
const (
	ThreadRunning    = "running"
	ThreadConnecting = "connecting"
	ThreadStopped    = "stopped"
)

// Replication is an instance's replica status.
type Replication struct {
	// Source is the address (host:port) the instance replicates from.
	Source string `json:"source"`
	// SourceName is the configured instance name of Source, when it matches
	// one; empty when the source is outside the cluster.
	SourceName string `json:"source_name,omitempty"`
	// IOThread is running, connecting or stopped.
	IOThread string `json:"io_thread"`
	// SQLThread is running or stopped.
	SQLThread string `json:"sql_thread"`
	// LagSeconds is Seconds_Behind_Master/Source (or a heartbeat measure);
	// nil when the server reports NULL (for example a stopped thread).
	LagSeconds *float64 `json:"lag_seconds,omitempty"`
	// LastIOError is the last IO thread error, empty when none.
	LastIOError string `json:"last_io_error,omitempty"`
	// LastSQLError is the last SQL thread error, empty when none.
	LastSQLError string `json:"last_sql_error,omitempty"`
	// AutoPosition is true when replication uses GTID auto-positioning.
	AutoPosition bool `json:"auto_position"`
}

// SemiSync is an instance's semi-synchronous replication state.
type SemiSync struct {
	// SourceEnabled is rpl_semi_sync_master/source_enabled.
	SourceEnabled bool `json:"source_enabled"`
	// SourceActive is true when the source currently waits for acks
	// (Rpl_semi_sync_master/source_status ON).
	SourceActive bool `json:"source_active"`
	// Clients is the number of semi-sync replicas connected to a source.
	Clients int `json:"clients,omitempty"`
	// ReplicaEnabled is rpl_semi_sync_slave/replica_enabled.
	ReplicaEnabled bool `json:"replica_enabled"`
	// WaitPoint is AFTER_SYNC or AFTER_COMMIT.
	WaitPoint string `json:"wait_point,omitempty"`
}

// Operation kinds.
const (
	OpFailover       = "failover"
	OpForcedFailover = "forced-failover"
	OpSwitchover     = "switchover"
	OpRejoin         = "rejoin"
	// OpRepoint is a relocation of a replica (regentctl repoint): a small
	// repair, answered when it has ended, not kept in the history.
	OpRepoint = "repoint"
)

// Operation results (and step results).
const (
	ResultRunning = "running"
	ResultSuccess = "success"
	ResultFailed  = "failed"
	ResultAborted = "aborted"
	// ResultSkipped is a step result only: the step had nothing to do.
	ResultSkipped = "skipped"
)

// Operation is a failover, switchover or rejoin: the answer of the POST that
// starts it, of GET /v1/clusters/{name}/operations/{id}, and one entry of
// GET /v1/clusters/{name}/history.
type Operation struct {
	// ID identifies the operation; it is in every log line of the run.
	ID string `json:"id"`
	// Cluster is the replication cluster's name.
	Cluster string `json:"cluster"`
	// Kind is failover, forced-failover, switchover or rejoin.
	Kind string `json:"kind"`
	// Trigger says what started it: "manual by admin@line 2", or the
	// problem code that started an automatic failover ("DeadPrimary").
	Trigger string `json:"trigger,omitempty"`
	// Target is the requested or chosen instance to promote or rejoin.
	Target string `json:"target,omitempty"`
	// Started is when the operation started.
	Started time.Time `json:"started"`
	// Ended is when it ended; nil while it runs.
	Ended *time.Time `json:"ended,omitempty"`
	// OldPrimary is the primary before the operation.
	OldPrimary string `json:"old_primary,omitempty"`
	// NewPrimary is the primary after the operation; empty until promoted.
	NewPrimary string `json:"new_primary,omitempty"`
	// EpochBefore is the cluster's epoch when the operation started.
	EpochBefore uint64 `json:"epoch_before"`
	// EpochAfter is the epoch it committed; 0 until committed.
	EpochAfter uint64 `json:"epoch_after,omitempty"`
	// GTIDAtPromotion is the promoted instance's executed GTID set when it
	// was promoted (the election record used to judge a rejoin).
	GTIDAtPromotion string `json:"gtid_at_promotion,omitempty"`
	// Result is running, success, failed or aborted.
	Result string `json:"result"`
	// Reason explains a failed or aborted result (what blocked, which step
	// failed and what to do).
	Reason string `json:"reason,omitempty"`
	// WriteBlocked is how long writes were refused (switchover: from
	// read_only on the old primary to the route on the new one; failover:
	// from the primary's loss to the new route, when known).
	WriteBlocked *Duration `json:"write_blocked,omitempty"`
	// WriteBlockedUntil says what the window runs up to: the new
	// primary's first commit, observed (when clients wrote by 250 ms after
	// the figures that follow); else every pushed balancer confirming the
	// route, or the moment a balancer that routes by health checks alone
	// must have moved it (a bound derived from its declared check timings),
	// or Regent's own steps when no balancer is known.
	WriteBlockedUntil string `json:"write_blocked_until,omitempty"`
	// Steps are the steps run so far, in order.
	Steps []Step `json:"steps"`
	// Ack is set once an operator acknowledged the operation (regentctl
	// ack).
	Ack *Ack `json:"ack,omitempty"`
}

// Ack is an operator's acknowledgement of a finished operation.
type Ack struct {
	// By is the authenticated caller who acknowledged it.
	By string `json:"by"`
	// Comment is what they wrote (what was found, what was done).
	Comment string `json:"comment,omitempty"`
	// At is when.
	At time.Time `json:"at"`
}

// AckRequest is the body of POST
// /v1/clusters/{name}/operations/{id}/ack.
type AckRequest struct {
	// Comment says what was found or done, for the people who read the
	// history.
	Comment string `json:"comment,omitempty"`
}

// NeedsAck reports whether the operation waits for an operator's
// acknowledgement: a failover (automatic or forced) that has ended and has
// not been acknowledged. A planned switchover needs none.
func (o Operation) NeedsAck() bool {
	return (o.Kind == OpFailover || o.Kind == OpForcedFailover) && o.Done() && o.Ack == nil
}

// Done reports whether the operation has ended.
func (o Operation) Done() bool { return o.Result != "" && o.Result != ResultRunning }

// Duration is the operation's run time (so far, while it runs, measured
// against now).
func (o Operation) Duration(now time.Time) time.Duration {
	if o.Ended != nil {
		return o.Ended.Sub(o.Started)
	}
	return now.Sub(o.Started)
}

// History is the answer of GET /v1/clusters/{name}/history.
type History struct {
	// Cluster is the replication cluster's name.
	Cluster string `json:"cluster"`
	// Operations are the most recent operations, newest first.
	Operations []Operation `json:"operations"`
	// Next, when more (older) operations follow, is the id to pass as
	// ?before= for the next page.
	Next string `json:"next,omitempty"`
}

// ClusterList is a page of GET /v1/clusters: the replication clusters in
// name order, each as GET /v1/clusters/{name} describes it.
type ClusterList struct {
	Clusters []Cluster `json:"clusters"`
	// Next, when more clusters follow, is the name to pass as ?after= for
	// the next page.
	Next string `json:"next,omitempty"`
	// Total counts every cluster, Scanned those this page looked at (with
	// problems_only, more than it returned).
	Total   int `json:"total"`
	Scanned int `json:"scanned"`
}

// NeedsAttention reports whether a cluster is not simply healthy: no
// primary, an operation running, paused, failovers not acknowledged,
// semi-sync degraded, automatic failover not possible, or any problem
// found. GET /v1/clusters?problems_only=true and regentctl status
// --problems-only list only these.
func (c Cluster) NeedsAttention() bool {
	if c.Primary == "" || c.Operation != nil || c.Paused != nil || len(c.Unacknowledged) > 0 ||
		c.SemiSyncDegraded != nil || !c.AutomaticFailover.Possible {
		return true
	}
	for _, p := range c.Problems {
		if p.Code != ProblemHealthy {
			return true
		}
	}
	return false
}

// ProblemHealthy is the analysis's "nothing else is wrong": a summary in
// Problems, not a problem.
const ProblemHealthy = "Healthy"

// Step is one named step of an operation.
type Step struct {
	// Name is the step's name (for example "set-read-only",
	// "wait-for-gtid", "promote", "route").
	Name string `json:"name"`
	// Started is when the step started.
	Started time.Time `json:"started"`
	// Duration is how long the step took; 0 while it runs.
	Duration Duration `json:"duration"`
	// Result is running, success, failed, aborted or skipped.
	Result string `json:"result"`
	// Detail is what the step did or why it failed, including a hook's
	// output.
	Detail string `json:"detail,omitempty"`
}

// SwitchoverRequest is the body of POST /v1/clusters/{name}/switchover.
type SwitchoverRequest struct {
	// To is the replica to promote; empty lets Regent choose the best one.
	To string `json:"to,omitempty"`
	// WaitForWrites bounds how long to wait for running write transactions
	// on the primary to finish before refusing; 0 takes the agent's
	// default.
	WaitForWrites Duration `json:"wait_for_writes,omitempty"`
}

// FailoverRequest is the body of POST /v1/clusters/{name}/failover: a manual
// failover, allowed even during the anti-flap window.
type FailoverRequest struct {
	// To is the replica to promote.
	To string `json:"to"`
	// Force promotes To even when the safety checks refuse (the primary
	// still looks alive, To lags or is not the most advanced replica).
	// Fencing of the old primary is never skipped.
	Force bool `json:"force,omitempty"`
}

// PauseRequest is the body of POST /v1/clusters/{name}/pause.
type PauseRequest struct {
	// Reason says why, for the people who will see the cluster paused.
	Reason string `json:"reason,omitempty"`
}

// MaintenanceRequest is the body of POST
// /v1/clusters/{name}/instances/{instance}/maintenance.
type MaintenanceRequest struct {
	// Reason says why, for the people who will see it (required).
	Reason string `json:"reason"`
	// For is how long it lasts: it ends by itself then (at most
	// MaxMaintenance).
	For Duration `json:"for"`
}

// Discovery is what GET /v1/discover?address=HOST:PORT found: the
// replication tree around that instance and a proposed cluster definition.
// It is an aid: nothing is changed or recorded.
type Discovery struct {
	// Start is the address asked about.
	Start string `json:"start"`
	// Primary names the writable top of the tree ("" when none).
	Primary string `json:"primary,omitempty"`
	// Instances: the top first, then its replicas, breadth first.
	Instances []DiscoveredInstance `json:"instances"`
	// Warnings say what does not fit a Regent cluster (chained or writable
	// replicas, replicas without report_host, ...) or could not be read.
	Warnings []string `json:"warnings,omitempty"`
	// YAML is the proposed clusters: entry for regent.yaml.
	YAML string `json:"yaml"`
}

// DiscoveredInstance is one server of a discovered tree.
type DiscoveredInstance struct {
	// Name is a proposed configuration name, from the address.
	Name    string `json:"name"`
	Address string `json:"address"`
	// Source is the address it replicates from ("" for the top).
	Source   string `json:"source,omitempty"`
	ServerID uint32 `json:"server_id"`
	Version  string `json:"version,omitempty"`
	ReadOnly bool   `json:"read_only"`
}

// MaxMaintenance is the longest maintenance one request may start (it can
// be started again before it ends).
const MaxMaintenance = 30 * 24 * time.Hour

// Relocation is where an operator relocated a replica (regentctl repoint):
// Regent keeps it under Source while Source can serve it, and under the
// primary otherwise.
type Relocation struct {
	Source string    `json:"source"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
}

// ClusterSettings is a cluster's failover settings (GET
// /v1/clusters/{name}/config): the run-time keys with their effective
// values, what was changed at run time, and the keys only regent.yaml sets.
type ClusterSettings struct {
	Cluster string `json:"cluster"`
	// Version counts the changes made at run time (0: none ever).
	Version uint64 `json:"version"`
	// Effective holds every run-time key's value in force, as YAML text.
	Effective map[string]string `json:"effective"`
	// Changed is the YAML mapping of the keys set at run time, over
	// regent.yaml ("" when none); By and At say who changed them last.
	Changed string     `json:"changed,omitempty"`
	By      string     `json:"by,omitempty"`
	At      *time.Time `json:"at,omitempty"`
	// RestartOnly holds the settings only regent.yaml sets, with their
	// values on the agent that answered.
	RestartOnly map[string]string `json:"restart_only"`
}

// AddInstanceRequest is the body of POST /v1/clusters/{name}/instances: an
// instance added at run time (no agent on its host; one with an agent is
// declared in regent.yaml).
type AddInstanceRequest struct {
	Name      string            `json:"name"`
	Address   string            `json:"address"`
	Promotion string            `json:"promotion,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// DefineClusterRequest is the body of POST /v1/clusters: a replication
// cluster added at run time, as its regent.yaml clusters: entry (a
// mapping, a one-item list as regentctl discover proposes, or under
// clusters:). Its instances have no agent on their hosts.
type DefineClusterRequest struct {
	Definition string `json:"definition"`
}

// Defined says who added a cluster at run time, and when.
type Defined struct {
	By string    `json:"by,omitempty"`
	At time.Time `json:"at"`
}

// DefinedCluster is the answer to POST and DELETE /v1/clusters: the
// cluster added or removed.
type DefinedCluster struct {
	Name      string   `json:"name"`
	Instances []string `json:"instances"`
	Defined
}

// EditSettingsRequest is the body of PUT /v1/clusters/{name}/config.
type EditSettingsRequest struct {
	// Version is the version the edit was made against: refused (409) if
	// someone changed the settings meanwhile.
	Version uint64 `json:"version"`
	// Set is a YAML mapping of the keys to set ("failure_timeout: 3s").
	Set string `json:"set,omitempty"`
	// Reset names keys to return to regent.yaml's values.
	Reset []string `json:"reset,omitempty"`
}

// RepointRequest is the body of POST
// /v1/clusters/{name}/instances/{instance}/repoint.
type RepointRequest struct {
	// To is the instance to replicate from: another replica of the cluster
	// (chained replication), or the primary ("" means the primary).
	To string `json:"to"`
}

// RejoinRequest is the body of POST /v1/clusters/{name}/rejoin.
type RejoinRequest struct {
	// Instance is the instance to rejoin as a replica of the primary.
	Instance string `json:"instance"`
}

// AddMemberRequest is the body of POST /v1/members.
type AddMemberRequest struct {
	// ID is the new agent's node id.
	ID string `json:"id"`
	// RaftAddr is its advertised Raft address (host:port).
	RaftAddr string `json:"raft_addr"`
	// APIAddr is its HTTP API address (host:port).
	APIAddr string `json:"api_addr"`
	// NonVoter adds it as a non-voting member.
	NonVoter bool `json:"non_voter,omitempty"`
}

// Severities of a check finding.
const (
	SeverityOK      = "ok"
	SeverityWarning = "warning"
	SeverityError   = "error"
)

// CheckReport is the answer of GET /v1/clusters/{name}/check: the preflight
// findings computed by the agent from its probes.
type CheckReport struct {
	// Cluster is the replication cluster's name.
	Cluster string `json:"cluster"`
	// CheckedAt is when the facts behind the findings were probed.
	CheckedAt time.Time `json:"checked_at"`
	// Findings are sorted by instance, then check.
	Findings []Finding `json:"findings"`
}

// Errors counts the findings of severity error.
func (r CheckReport) Errors() int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == SeverityError {
			n++
		}
	}
	return n
}

// Finding is one preflight check on one instance.
type Finding struct {
	// Check names what was checked: privileges, gtid_mode,
	// log_slave_updates, server_id, read_only, semi_sync, binlog_format,
	// replica_net_timeout, heartbeat, ...
	Check string `json:"check"`
	// Instance is the instance checked; empty for a cluster-wide check
	// (such as unique server_id).
	Instance string `json:"instance,omitempty"`
	// Severity is ok, warning or error.
	Severity string `json:"severity"`
	// Message says what was found.
	Message string `json:"message"`
	// Fix says how to fix it (a my.cnf line, a GRANT), empty when ok.
	Fix string `json:"fix,omitempty"`
}
