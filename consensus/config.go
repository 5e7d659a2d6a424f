package consensus

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/hashicorp/raft"
)

// Config configures a Node. Start from DefaultConfig and fill in the
// identity fields; Validate reports every problem, each as a *ConfigError
// naming the field.
type Config struct {
	// NodeID is this agent's stable Raft server id.
	NodeID string
	// RaftAddr is the advertised host:port other agents dial for Raft.
	RaftAddr string
	// BindAddr is the local listen address; empty means RaftAddr.
	BindAddr string
	// APIAddr and Instance are this agent's HTTP API address and local
	// database instance (empty for a tie-breaker). The leader writes them to
	// the replicated member table.
	APIAddr  string
	Instance string
	// DataDir holds raft.db (log and stable store) and snapshots/.
	DataDir string
	// Peers are the voters of a new regent cluster, this node included. They
	// are used only on the very first start of a fresh cluster (no Raft state
	// in DataDir); every initial agent must list the same peers. An agent
	// joining an existing cluster leaves Peers empty and is added by the
	// leader (Node.AddVoter).
	Peers []Peer

	// JoinPeers are the running agents a node joining an existing cluster
	// (no Raft state, no Peers) accepts Raft connections from until it has
	// received the cluster's configuration: the leader that adds it must be
	// among them. Ignored once the node has a configuration.
	JoinPeers []Peer

	// TLS enables mutual TLS for Raft traffic; every peer's certificate must
	// name a member of the Raft configuration (see TLSConfig). Start refuses
	// to run without it unless InsecurePlaintext is set.
	TLS TLSConfig
	// InsecurePlaintext lets Raft run over plain TCP, without TLS: anyone
	// who reaches the Raft port can then rewrite the replicated state. For
	// a test on a trusted network only; Start warns at every start.
	InsecurePlaintext bool

	// Raft timings. See DefaultConfig for the LAN-tuned values.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration

	// ApplyTimeout bounds Propose, Barrier and VerifyLeader when the caller's
	// context has no deadline.
	ApplyTimeout time.Duration
	// TransportTimeout is the network transport's dial and I/O deadline; it
	// also bounds a TLS handshake.
	TransportTimeout time.Duration
	// MaxPool is the number of pooled outgoing connections per peer.
	MaxPool int

	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64
	SnapshotRetain    int

	// TransferLeadershipOnClose makes Close on the leader hand leadership to
	// a follower first, so the cluster has a leader again in milliseconds
	// instead of an election timeout.
	TransferLeadershipOnClose bool
}

// Peer is one initial voter, with the member-table facts the leader records
// for it when it first leads.
type Peer struct {
	ID       string
	RaftAddr string
	APIAddr  string
	Instance string
}

// TLSConfig names the PEM files for mutual TLS. Every agent presents its
// certificate and accepts only peers whose certificate chains to CAFile and
// names a member of the Raft configuration by its URI SAN
// urn:regent:agent:<id>; on dial, the certificate must name the member
// configured at the address dialled. Certificates need that URI SAN (their
// own node id: Start checks it), both the serverAuth and clientAuth
// extended key usages, and a SAN matching the agent's advertised Raft host
// (or ServerName).
type TLSConfig struct {
	CAFile   string
	CertFile string
	KeyFile  string
	// ServerName, if set, is the name every peer's certificate is checked
	// against instead of the host of the address dialled.
	ServerName string
}

// Enabled reports whether any TLS file is configured.
func (t TLSConfig) Enabled() bool {
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != ""
}

// DefaultConfig returns the LAN-tuned defaults: heartbeat 500 ms, election
// 500 ms, leader lease 250 ms, commit 20 ms. In tests here they elected a new
// leader about 0.7–1.1 s after the old one died.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:          500 * time.Millisecond,
		ElectionTimeout:           500 * time.Millisecond,
		LeaderLeaseTimeout:        250 * time.Millisecond,
		CommitTimeout:             20 * time.Millisecond,
		ApplyTimeout:              5 * time.Second,
		TransportTimeout:          2 * time.Second,
		MaxPool:                   3,
		SnapshotInterval:          2 * time.Minute,
		SnapshotThreshold:         4096,
		TrailingLogs:              4096,
		SnapshotRetain:            2,
		TransferLeadershipOnClose: true,
	}
}

// ConfigError is one configuration problem.
type ConfigError struct {
	Field  string // Go field name, e.g. "HeartbeatTimeout" or "Peers[1].RaftAddr"
	Reason string
}

func (e *ConfigError) Error() string { return "consensus config: " + e.Field + ": " + e.Reason }

// Validate checks the configuration, cross-field rules included, and returns
// all problems joined (each a *ConfigError).
func (c Config) Validate() error { return c.validate(true, true) }

// validate checks c; needDataDir and needTransport are false when StartWith
// is given stores or a transport of the caller's.
func (c Config) validate(needDataDir, needTransport bool) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}

	if err := checkID(c.NodeID); err != "" {
		bad("NodeID", "%s", err)
	}
	if err := checkAdvertised(c.RaftAddr); err != "" {
		bad("RaftAddr", "%s", err)
	}
	if c.BindAddr != "" {
		if _, _, err := net.SplitHostPort(c.BindAddr); err != nil {
			bad("BindAddr", "%q is not host:port: %v", c.BindAddr, err)
		}
	}
	if c.APIAddr != "" {
		if _, _, err := net.SplitHostPort(c.APIAddr); err != nil {
			bad("APIAddr", "%q is not host:port: %v", c.APIAddr, err)
		}
	}
	if len(c.Instance) > MaxNameLen {
		bad("Instance", "longer than %d bytes", MaxNameLen)
	}
	if needDataDir && c.DataDir == "" {
		bad("DataDir", "must be set")
	}

	if len(c.Peers) > 0 {
		ids := map[string]int{}
		addrs := map[string]int{}
		self := false
		for i, p := range c.Peers {
			f := fmt.Sprintf("Peers[%d]", i)
			if err := checkID(p.ID); err != "" {
				bad(f+".ID", "%s", err)
			}
			if err := checkAdvertised(p.RaftAddr); err != "" {
				bad(f+".RaftAddr", "%s", err)
			}
			if j, dup := ids[p.ID]; dup {
				bad(f+".ID", "%q repeats Peers[%d]", p.ID, j)
			}
			if j, dup := addrs[p.RaftAddr]; dup {
				bad(f+".RaftAddr", "%q repeats Peers[%d]", p.RaftAddr, j)
			}
			ids[p.ID], addrs[p.RaftAddr] = i, i
			if p.ID == c.NodeID {
				self = true
				if p.RaftAddr != c.RaftAddr {
					bad(f+".RaftAddr", "%q differs from RaftAddr %q for this node", p.RaftAddr, c.RaftAddr)
				}
			}
		}
		if !self {
			bad("Peers", "does not include this node (%q); list every initial voter, this one too", c.NodeID)
		}
	}

	for i, p := range c.JoinPeers {
		f := fmt.Sprintf("JoinPeers[%d]", i)
		if len(c.Peers) > 0 {
			bad("JoinPeers", "only for a node that joins a running cluster (no Peers)")
			break
		}
		if err := checkID(p.ID); err != "" {
			bad(f+".ID", "%s", err)
		}
		if err := checkAdvertised(p.RaftAddr); err != "" {
			bad(f+".RaftAddr", "%s", err)
		}
	}

	switch {
	case !needTransport:
	case c.TLS.Enabled() && c.InsecurePlaintext:
		bad("InsecurePlaintext", "set together with TLS files: choose one (TLS)")
	case !c.TLS.Enabled() && !c.InsecurePlaintext:
		bad("TLS", "not set: Raft without TLS lets anyone who reaches the Raft port rewrite the replicated state; give each agent a certificate (deploy/regent/make-certs.sh) or, on a trusted test network only, set InsecurePlaintext")
	}
	if t := c.TLS; t.Enabled() && (t.CAFile == "" || t.CertFile == "" || t.KeyFile == "") {
		for _, f := range []struct{ name, v string }{{"TLS.CAFile", t.CAFile}, {"TLS.CertFile", t.CertFile}, {"TLS.KeyFile", t.KeyFile}} {
			if f.v == "" {
				bad(f.name, "must be set when any TLS file is set (mutual TLS needs a CA, a certificate and its key)")
			}
		}
	}

	if c.HeartbeatTimeout < 5*time.Millisecond {
		bad("HeartbeatTimeout", "%s is below 5ms", c.HeartbeatTimeout)
	}
	if c.ElectionTimeout < c.HeartbeatTimeout {
		bad("ElectionTimeout", "%s must be at least HeartbeatTimeout (%s)", c.ElectionTimeout, c.HeartbeatTimeout)
	}
	if c.LeaderLeaseTimeout < 5*time.Millisecond {
		bad("LeaderLeaseTimeout", "%s is below 5ms", c.LeaderLeaseTimeout)
	} else if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		bad("LeaderLeaseTimeout", "%s must not exceed HeartbeatTimeout (%s)", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	if c.CommitTimeout < time.Millisecond {
		bad("CommitTimeout", "%s is below 1ms", c.CommitTimeout)
	} else if c.CommitTimeout >= c.HeartbeatTimeout {
		bad("CommitTimeout", "%s must be below HeartbeatTimeout (%s)", c.CommitTimeout, c.HeartbeatTimeout)
	}
	if c.ApplyTimeout <= 0 {
		bad("ApplyTimeout", "must be positive")
	}
	if c.TransportTimeout <= 0 {
		bad("TransportTimeout", "must be positive")
	}
	if c.MaxPool < 1 {
		bad("MaxPool", "must be at least 1")
	}
	if c.SnapshotInterval < 5*time.Millisecond {
		bad("SnapshotInterval", "%s is below 5ms", c.SnapshotInterval)
	}
	if c.SnapshotThreshold == 0 {
		bad("SnapshotThreshold", "must be positive")
	}
	if c.SnapshotRetain < 1 {
		bad("SnapshotRetain", "must be at least 1")
	}

	if len(errs) == 0 {
		// Raft's own checks, in case its rules are stricter than ours.
		if err := raft.ValidateConfig(c.raftConfig()); err != nil {
			bad("raft", "%v", err)
		}
	}
	return errors.Join(errs...)
}

// raftConfig maps the Config onto hashicorp/raft's.
func (c Config) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.NodeID)
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ElectionTimeout = c.ElectionTimeout
	rc.LeaderLeaseTimeout = c.LeaderLeaseTimeout
	rc.CommitTimeout = c.CommitTimeout
	rc.SnapshotInterval = c.SnapshotInterval
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.TrailingLogs = c.TrailingLogs
	rc.NoLegacyTelemetry = true
	// Pre-vote stays on: without it a candidate cut off in a minority keeps
	// winning votes from its fellow minority nodes, which refreshes their
	// last-contact time and would keep their lease clocks running.
	rc.PreVoteDisabled = false
	return rc
}

func checkID(id string) string {
	switch {
	case id == "":
		return "must not be empty"
	case len(id) > 64:
		return "longer than 64 characters"
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Sprintf("%q may hold only letters, digits, '-', '_' and '.'", id)
		}
	}
	return ""
}

// checkAdvertised checks an address other agents will dial: host:port with a
// real port and not a wildcard host.
func checkAdvertised(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("%q is not host:port: %v", addr, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Sprintf("%q needs a port between 1 and 65535", addr)
	}
	if host == "" {
		return fmt.Sprintf("%q has no host; other agents must be able to dial it", addr)
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		return fmt.Sprintf("%q is a wildcard address; advertise an address other agents can dial (listen on it with BindAddr)", addr)
	}
	return ""
}
