// Package consensus runs the Raft group of Regent agents (hashicorp/raft) and
// holds the replicated state of every replication cluster: its primary, its
// epoch (the fencing token), the operation in progress, pause and anti-flap
// state, promotion-rule overrides, quarantined instances and the bounded
// history of operations; and the member table of agents (API address, Raft
// address, local instance), so any agent can find the leader's API and the
// owner of an instance.
//
// It knows Raft, not MySQL: it imports neither topology, failover nor
// proxyhook. The failover package uses it through small interfaces of its
// own (leadership, Barrier, VerifyLeader, Propose, reads, the lease clock).
//
// # Node
//
// Start opens the durable state in Config.DataDir (raft-boltdb for the log
// and stable store, file snapshots), starts the transport and joins the
// group. The initial voters (Config.Peers) bootstrap the cluster only on the
// very first start of a fresh cluster (raft.HasExistingState); later starts
// resume from disk and ignore Peers. An agent joining later starts without
// Peers and is added by the leader (AddVoter, or AddAgent which also records
// it in the member table). StartWith takes caller-supplied transport and
// stores (in-memory ones in tests).
//
// Leadership changes are read from Raft's NotifyCh by a goroutine the node
// owns and fanned out to WatchLeadership subscribers without ever blocking
// Raft (a slow subscriber sees only the latest state). A new leader calls
// Barrier before acting and VerifyLeader before every irreversible step.
// Propose returns the FSM's own answer or a typed error: *NotLeaderError
// (ErrNotLeader, naming the leader and its API address), *StaleEpochError
// (ErrStaleEpoch), ErrConflict, ErrNotFound, ErrPaused, ErrAntiFlap,
// ErrInvalidCommand, ErrTimeout, ErrClosed. Close is safe to call twice and
// leaves no goroutine behind; on the leader it first transfers leadership so
// the group is not left waiting for an election timeout.
//
// When the leader becomes leader it records its own member entry (and those
// of the initial peers still in the configuration but missing from the
// table), so NotLeaderError can always point at the leader's API.
//
// # Transport
//
// Raft traffic runs over TCP with mutual TLS (TLS 1.3): every agent presents
// its certificate and verifies its peer's against the configured CA, in both
// directions, and then checks who the certificate names (package identity:
// the URI SAN urn:regent:agent:<id>). On accept the peer must be a server of
// the latest Raft configuration; on dial it must be the very server
// configured at the address dialled. A certificate the CA signed for
// anything else — another agent, a removed member, a mysqld — is refused.
// The accepted set is read at every handshake, so adding and removing
// members changes it at once, and a removed member's open connections are
// closed within a second. A node joining a running cluster has no
// configuration yet: it accepts the agents named in Config.JoinPeers until
// the leader's first entries give it one. A refused peer is logged ("raft
// peer rejected: ...", with what it presented) and never reaches Raft.
// Start checks that this node's own certificate names it.
//
// Without TLS files Start refuses to run unless Config.InsecurePlaintext is
// set; then the transport is plain TCP, anyone who reaches the port can
// rewrite the state, and a warning says so at every start.
//
// Snapshots, restored from disk or installed by a leader, must pass the
// same rules as commands (validateState) before they replace the state.
//
// # Commands and their encoding
//
// A command is one of the exported command structs (InitCluster,
// BeginOperation, RecordStep, CommitPrimary, FinishOperation,
// AbortOperation, SetPaused, SetAntiFlap, SetPromotionRule, SetQuarantine,
// ClearQuarantine, SetMaintenance, AckOperation, SetSource, SetConfig, SetInstance, DefineCluster, SetCandidate, SetSemiSyncDegraded,
// SetMember, RemoveMember). Commands that touch an operation
// or the primary are conditional: compare-and-set on the epoch and the
// operation id. CommitPrimary is the only way an epoch moves, by exactly one.
// A command prepared by a deposed leader therefore fails with ErrStaleEpoch
// or ErrConflict and changes nothing. Times are the proposer's: Apply never
// reads a clock, so every replica computes the same state.
//
// Commands use a compact hand-written binary encoding:
//
//	version(1 byte) kind(1 byte) body checksum(CRC-32C, 4 bytes)
//
// with the body's fields in a fixed order per kind (uvarints, length-prefixed
// UTF-8 strings, one-byte booleans and enum codes, times as Unix
// nanoseconds). Why not JSON or protobuf: commands sit in the Raft log
// forever and are decoded by every replica, so the format must be exact and
// strict, not merely tolerant — JSON silently ignores unknown fields and
// would let two agent versions apply the same entry differently, and it
// cannot detect a flipped bit. The binary form is a few dozen bytes, has one
// decoding per input, rejects trailing bytes, unknown kinds and enum codes,
// invalid UTF-8 and out-of-range values, and the checksum catches
// corruption. It needs no code generation and no dependency. A command that
// fails to decode is answered with ErrInvalidCommand and changes nothing; the
// decoder never panics (FuzzDecodeCommand).
//
// Versioning: byte 0 is the encoding version (CommandVersion, now 1). Kinds
// and enum codes are only ever appended, never renumbered. A change to an
// existing kind's body, or a new kind, needs care because every replica must
// apply every entry identically: a new agent version must first be able to
// read the new form while still writing the old, and may write the new form
// only once every agent runs a version that reads it (a rolling upgrade in
// two steps). An agent meeting a version byte higher than it knows rejects
// the entry with ErrInvalidCommand — it does not guess.
//
// Snapshots are JSON ({"version":1,"index":N,"state":{...}}): they are
// written rarely, are read whole, are useful to inspect with jq, and restore
// to a state deep-equal to the one saved (all times are UTC, empty maps are
// kept as nil).
//
// # The lease clock
//
// The self-fencing lease (docs/safety.md) counts from this clock.
// LastQuorumContact returns a time at which this node is known to have been
// in contact with a quorum. It never goes backwards and is the maximum of:
//
//   - as leader: hashicorp/raft does not expose when each follower last
//     answered, so the node wraps Raft's transport and records, per peer,
//     the start time of each AppendEntries/InstallSnapshot the peer answered
//     without a higher term (heartbeats go every HeartbeatTimeout/10). The
//     leader's quorum contact is the latest time by which a majority of the
//     voters (itself included) had acknowledged one of its terms.
//
//   - as follower: Raft's LastContact (the last AppendEntries accepted from
//     a leader) minus 2×LeaderLeaseTimeout. A leader cut off from its quorum
//     keeps heartbeating the followers on its side until its own lease check
//     notices, at most 2×LeaderLeaseTimeout later, so subtracting that makes
//     the figure a real quorum contact. (Raft also stamps LastContact when a
//     leader steps down; the same bound covers it.) Pre-vote stays enabled:
//     without it a candidate stuck in a minority would win votes from its
//     fellows, refreshing their last contact.
//
//   - the lease channel (lease.go), on a TCP transport with TLS: each
//     follower pings the leader every HeartbeatTimeout/10 over three
//     connections of their own; a pong proves a quorum contact at the
//     ping's send time minus the age of the leader's own quorum contact,
//     once the follower has applied the leader's commit index. On the
//     leader, such a ping is the peer's acknowledgement of its term, dated
//     when the nonce it echoes was sent, under the same conditions. Raft's
//     heartbeats travel one at a time over one connection, so a lossy link
//     stalls them for retransmission timeouts; the channel keeps the figure
//     fresh through that, and never for a follower that misses a committed
//     entry.
//
// Network transit time is taken as negligible (LAN). An isolated node's
// clock therefore stops while the majority's keeps going.
//
// On the leader, PeerContacts gives for each other server when it was last
// heard: the arrival time of its last answer. For a server not heard since
// this node became leader, it reports the moment this node became leader
// (Heard false): the server may have been in contact with a quorum through
// the previous leader until then, and not after, since a majority had moved
// to this node's term. So the rule "the leader promotes only after
// lease_timeout has passed since the old primary's agent was last heard,
// the agent fences after fence_after < lease_timeout without quorum contact"
// holds with both figures taken from this package. The remaining
// approximation: an asymmetric partition in which a deposed leader still
// reaches the majority but not the reverse is not covered by Raft's lease
// check; it is resolved when the new leader's first message reaches it.
package consensus
