// Package config reads regent.yaml: it refuses unknown keys, fills the
// defaults, validates the whole file before the agent starts (every error
// names its key), reads secrets from files or the environment, and lists the
// settings that leave a secret or the write route exposed. It hands each
// package its part in that package's own type: a cluster's failover keys
// decode straight into a failover.Policy, the raft section becomes a
// consensus.Config (Config.Consensus), a cluster's routing section is a
// proxyhook.RoutingConfig, the API limits an apiserver.Limits
// (docs/architecture.md, Configuration).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/regentdb/regent/apiserver"
	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/identity"
	"github.com/regentdb/regent/proxyhook"
	"go.yaml.in/yaml/v3"
)

// Config is the agent's configuration file (regent.yaml). Secrets are never in
// it: passwords and tokens come from files or environment variables named
// here.
type Config struct {
	// NodeID is this agent's stable id (its Raft server id); never an IP.
	NodeID string `yaml:"node_id"`
	// DataDir holds the Raft log, stable store and snapshots.
	DataDir string `yaml:"data_dir"`
	// LocalInstance is the name of the instance on this host (one of
	// clusters[].instances[].name), which this agent fences; empty on a
	// tie-breaker host with no database.
	LocalInstance string `yaml:"local_instance"`

	Raft     RaftConfig      `yaml:"raft"`
	API      APIConfig       `yaml:"api"`
	MySQL    MySQLConfig     `yaml:"mysql"`
	Clusters []ClusterConfig `yaml:"clusters"`
	Log      LogConfig       `yaml:"log"`

	// MaxParallelOperations bounds the automatic operations (failovers,
	// rejoins, repoints, ...) the leader runs at once across all clusters:
	// a correlated failure (a rack lost: dozens of primaries at once) is
	// handled by concurrent failovers without swamping the agents and the
	// network. Operators' requests are never held back by it. 0 or absent:
	// DefaultMaxParallelOperations.
	MaxParallelOperations int `yaml:"max_parallel_operations"`

	// MaxParallelProbes bounds the probes this agent runs at once across
	// all clusters: when a rack freezes, hundreds of probes hang until
	// their timeout, and the others wait for a slot instead of adding
	// connections and goroutines without end (the wait does not count
	// against a probe's timeout; rounds it delays count in
	// regent_probe_rounds_missed_total). 0 or absent:
	// DefaultMaxParallelProbes.
	MaxParallelProbes int `yaml:"max_parallel_probes"`
}

// DefaultMaxParallelOperations is max_parallel_operations when absent.
const DefaultMaxParallelOperations = 32

// DefaultMaxParallelProbes is max_parallel_probes when absent.
const DefaultMaxParallelProbes = 256

// ParallelProbes is max_parallel_probes with its default.
func (c Config) ParallelProbes() int {
	if c.MaxParallelProbes > 0 {
		return c.MaxParallelProbes
	}
	return DefaultMaxParallelProbes
}

// ParallelOperations is max_parallel_operations with its default.
func (c Config) ParallelOperations() int {
	if c.MaxParallelOperations > 0 {
		return c.MaxParallelOperations
	}
	return DefaultMaxParallelOperations
}

// RaftConfig is the Raft side of the agent.
type RaftConfig struct {
	// Bind is the listen address; Advertise what the others dial (defaults
	// to Bind).
	Bind      string `yaml:"bind"`
	Advertise string `yaml:"advertise"`
	// Peers are the initial voters, used only to bootstrap a fresh cluster.
	Peers []PeerConfig `yaml:"peers"`
	// Join: this agent joins a running cluster instead of bootstrapping one
	// (it waits until the leader adds it: regentctl members add). Peers
	// then name the running agents, so that reports and forwarding can
	// reach them before the member table arrives.
	Join bool `yaml:"join"`

	HeartbeatTimeout   time.Duration `yaml:"heartbeat_timeout"`
	ElectionTimeout    time.Duration `yaml:"election_timeout"`
	LeaderLeaseTimeout time.Duration `yaml:"leader_lease_timeout"`
	CommitTimeout      time.Duration `yaml:"commit_timeout"`

	// TLS: mutual TLS between agents. Required, unless InsecurePlaintext.
	// The certificate must carry the URI SAN urn:regent:agent:<node_id>
	// (make-certs.sh): peers accept only members, by that name.
	TLS TLSFilesConfig `yaml:"tls"`
	// InsecurePlaintext runs Raft over plain TCP without TLS: anyone who
	// reaches the Raft port can rewrite the replicated state. For tests on
	// a trusted network only; the agent warns at every start.
	InsecurePlaintext bool `yaml:"insecure_plaintext"`
}

// PeerConfig is one initial voter.
type PeerConfig struct {
	ID      string `yaml:"id"`
	Address string `yaml:"address"`
	// API is the peer's API host:port, so that agents can reach each other
	// before the member table is replicated.
	API string `yaml:"api"`
}

// TLSFilesConfig names PEM files.
type TLSFilesConfig struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Enabled reports whether any TLS file is configured.
func (t TLSFilesConfig) Enabled() bool { return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" }

// APIConfig is the HTTP API.
type APIConfig struct {
	Listen string `yaml:"listen"`
	// Advertise is the host:port other agents and regentctl use (defaults
	// to listen). The scheme is https when tls is set, http otherwise: all
	// agents must agree.
	Advertise string `yaml:"advertise"`
	// TLS: the server certificate and key, which this agent also presents
	// as a client to the other agents (it must carry the URI SAN
	// urn:regent:agent:<node_id>); ca_file (required with tls) verifies the
	// other agents' certificates, as servers when this agent calls them and
	// as clients when they send reports and forwarded calls. ClientCAFile
	// verifies people's client certificates (cert_admins, cert_readers).
	TLS          TLSFilesConfig `yaml:"tls"`
	ClientCAFile string         `yaml:"client_ca_file"`
	// TokensFile holds the bearer tokens (see the README).
	TokensFile string `yaml:"tokens_file"`
	// AgentTokenFile holds the token agents present to each other (the same
	// file on every agent; at least 16 characters).
	AgentTokenFile string `yaml:"agent_token_file"`
	// OpenHealth and OpenMetrics let the health endpoints and /metrics
	// answer without a token (default true: HAProxy and Prometheus).
	OpenHealth  *bool `yaml:"open_health"`
	OpenMetrics *bool `yaml:"open_metrics"`
	// OpenStatusPage serves the status page at / without a token (default
	// false: it shows the topology).
	OpenStatusPage bool `yaml:"open_status_page"`
	// CertAdmins and CertReaders grant admin or read-only to client
	// certificates verified by client_ca_file that carry the URI SAN
	// urn:regent:user:NAME with one of these names (no other part of a
	// certificate counts: mysqld's and agents' certificates carry no such
	// URI). Needs client_ca_file.
	CertAdmins  []string `yaml:"cert_admins"`
	CertReaders []string `yaml:"cert_readers"`
	// Limits bound what clients can hold of the API server: connections,
	// timeouts, header size (zero values take apiserver.DefaultLimits).
	Limits apiserver.Limits `yaml:"limits"`
}

// MySQLConfig says how agents log in to the database servers.
type MySQLConfig struct {
	User string `yaml:"user"`
	// PasswordFile or PasswordEnv: where the password is.
	PasswordFile string `yaml:"password_file"`
	PasswordEnv  string `yaml:"password_env"`

	ReplicationUser         string `yaml:"replication_user"`
	ReplicationPasswordFile string `yaml:"replication_password_file"`
	ReplicationPasswordEnv  string `yaml:"replication_password_env"`

	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	ReadTimeout    time.Duration `yaml:"read_timeout"`
	// ReplicationHeartbeat is the heartbeat period set on every replica
	// Regent repoints, so that a dead source is noticed quickly (default
	// 500ms: a replica counts as still receiving for two heartbeats and a
	// probe interval, which must end before failure_timeout does).
	ReplicationHeartbeat time.Duration `yaml:"replication_heartbeat"`

	// TLS for Regent's own connections.
	TLS struct {
		TLSFilesConfig     `yaml:",inline"`
		ServerName         string `yaml:"server_name"`
		InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
		Enabled            bool   `yaml:"enabled"`
	} `yaml:"tls"`
	// ReplicationTLS for the replication channel (paths as mysqld sees them).
	ReplicationTLS struct {
		TLSFilesConfig   `yaml:",inline"`
		Enabled          bool `yaml:"enabled"`
		VerifyServerCert bool `yaml:"verify_server_cert"`
	} `yaml:"replication_tls"`
	// LocalSocket is the unix socket of the local instance: "connection
	// refused" there is the fast path's evidence (README "Detection";
	// docs/safety.md says how it is confirmed over TCP).
	LocalSocket string `yaml:"local_socket"`
}

// ClusterConfig is one replication cluster.
type ClusterConfig struct {
	Name      string           `yaml:"name"`
	Instances []InstanceConfig `yaml:"instances"`
	// Policy holds the failover settings, under the cluster's own keys
	// (each field's yaml tag). Decoded from YAML it starts from
	// DefaultPolicy, so an absent key keeps its default; a ClusterConfig
	// built in Go starts from DefaultPolicy() too.
	failover.Policy `yaml:",inline"`

	ProbeTimeout time.Duration `yaml:"probe_timeout"`
	// WatchBinlog: every agent holds a binlog stream to the primary with
	// heartbeats every half probe interval, as evidence of life (default
	// true; README "Detection").
	WatchBinlog *bool `yaml:"watch_binlog"`

	Routing proxyhook.RoutingConfig `yaml:"routing"`
}

// DefaultPolicy is a cluster's failover policy when its configuration sets
// nothing: failover.DefaultPolicy, with one difference. MySQL can take most
// of a second for one semi-sync switch, so a step gets 1.5 s; fence_after
// stays 1.5 s, long enough to ride out a Raft re-election (see Validate),
// and lease_timeout still leaves a step after it.
func DefaultPolicy() failover.Policy {
	p := failover.DefaultPolicy()
	p.StepTimeout = 1500 * time.Millisecond
	return p
}

// UnmarshalYAML decodes a cluster onto DefaultPolicy, with the decoder's
// own strictness (unknown keys are refused), and reads the two keys that
// are not plain values: semi_sync_fallback ("never" or a duration), and
// observation_ttl, whose default is three probe intervals.
func (c *ClusterConfig) UnmarshalYAML(unmarshal func(any) error) error {
	type plain ClusterConfig // without this method
	var in struct {
		plain    `yaml:",inline"`
		Fallback string `yaml:"semi_sync_fallback"`
	}
	in.Policy = DefaultPolicy()
	in.ObservationTTL = 0
	if err := unmarshal(&in); err != nil {
		return err
	}
	if in.ObservationTTL == 0 {
		in.ObservationTTL = 3 * in.ProbeInterval
	}
	d, err := parseFallback(in.Fallback)
	if err != nil {
		return fmt.Errorf("semi_sync_fallback: %w", err)
	}
	in.SemiSyncFallback = d
	*c = ClusterConfig(in.plain)
	return nil
}

// InstanceConfig is one mysqld.
type InstanceConfig struct {
	Name string `yaml:"name"`
	// Address is host:port as agents and replicas reach it.
	Address string `yaml:"address"`
	// Agent is the id of the agent on the same host ("" when none).
	Agent string `yaml:"agent"`
	// Promotion: prefer, neutral (default) or must_not.
	Promotion string `yaml:"promotion"`
	// Labels place the instance (for example zone, region): the cluster's
	// promotion_same and promotion_prefer_same compare them.
	Labels map[string]string `yaml:"labels"`
}

// LogConfig chooses the log format and level.
type LogConfig struct {
	Format string `yaml:"format"` // json (default) or text
	Level  string `yaml:"level"`  // debug, info (default), warn, error
}

// Parse reads YAML, rejecting unknown keys, and validates it.
func Parse(data []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("config: %s", unknownKeyRE.ReplaceAllString(err.Error(), `unknown key "$1" (check its spelling against the README's Configuration section)`))
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Load reads and validates the file at path.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// unknownKeyRE rewrites yaml's "field x not found in type agent.T" into words
// an operator can use.
var unknownKeyRE = regexp.MustCompile(`field (\S+) not found in type \S+`)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// ValidName reports whether s is a valid agent, cluster or instance name:
// letters, digits, '.', '_', '-', at most 63, starting with a letter or a
// digit.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// Validate checks every field and the relations between them; each error
// names the key and says what is wrong.
func (c Config) Validate() error {
	var v validation
	v.check(nameRE.MatchString(c.NodeID), "node_id", "%q is not a valid id (letters, digits, '.', '_', '-'; at most 63)", c.NodeID)
	v.check(c.DataDir != "", "data_dir", "required: where the Raft log and snapshots live")
	peers := c.validateRaft(&v)
	c.validateAPI(&v)
	c.validateMySQL(&v)
	c.validateClusters(&v, peers)
	c.validateLog(&v)
	c.checkCerts(&v, time.Now())
	v.check(c.MaxParallelOperations >= 0, "max_parallel_operations", "is %d; want 1 or more (absent: %d)", c.MaxParallelOperations, DefaultMaxParallelOperations)
	v.check(c.MaxParallelProbes >= 0, "max_parallel_probes", "is %d; want 1 or more (absent: %d)", c.MaxParallelProbes, DefaultMaxParallelProbes)
	return errors.Join(v.errs...)
}

// validation collects what is wrong with a configuration, each finding
// under the key it is about.
type validation struct{ errs []error }

func (v *validation) bad(key, format string, a ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
}

// check records a finding unless ok.
func (v *validation) check(ok bool, key, format string, a ...any) {
	if !ok {
		v.bad(key, format, a...)
	}
}

func (v *validation) add(err error) {
	if err != nil {
		v.errs = append(v.errs, err)
	}
}

// checkTLS checks a TLS section's files: they exist, a certificate comes
// with its key, and a CA is given when needCA (mutual TLS).
func (v *validation) checkTLS(key string, t TLSFilesConfig, needCA bool) {
	if !t.Enabled() {
		return
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		v.bad(key, "cert_file and key_file go together")
	}
	if needCA && t.CAFile == "" {
		v.bad(key+".ca_file", "required for mutual TLS")
	}
	for k, f := range map[string]string{"ca_file": t.CAFile, "cert_file": t.CertFile, "key_file": t.KeyFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			v.bad(key+"."+k, "%v", err)
		}
	}
}

// agentCert checks that a certificate this agent presents to its peers
// names it: said now rather than at the first handshake.
func (v *validation) agentCert(nodeID, key, path string) {
	if path == "" {
		return
	}
	if _, err := os.Stat(path); err != nil {
		return // checkTLS said so
	}
	if err := identity.CheckAgentCertFile(path, nodeID); err != nil {
		v.bad(key, "%s: %v", path, err)
	}
}

// validateRaft checks the raft section and returns the peers' ids.
func (c Config) validateRaft(v *validation) map[string]bool {
	if _, _, err := net.SplitHostPort(c.Raft.Bind); err != nil {
		v.bad("raft.bind", "%q is not host:port", c.Raft.Bind)
	}
	if c.Raft.Advertise != "" {
		if h, _, err := net.SplitHostPort(c.Raft.Advertise); err != nil || h == "" || h == "0.0.0.0" || h == "::" {
			v.bad("raft.advertise", "%q must be host:port that other agents can dial", c.Raft.Advertise)
		}
	}
	if len(c.Raft.Peers) == 0 {
		v.bad("raft.peers", "list the initial voters (this node included)")
	}
	seenPeer, self := map[string]bool{}, false
	for i, p := range c.Raft.Peers {
		key := fmt.Sprintf("raft.peers[%d]", i)
		if !nameRE.MatchString(p.ID) {
			v.bad(key+".id", "%q is not a valid id", p.ID)
		}
		if seenPeer[p.ID] {
			v.bad(key+".id", "%q is listed twice", p.ID)
		}
		seenPeer[p.ID] = true
		self = self || p.ID == c.NodeID
		if _, _, err := net.SplitHostPort(p.Address); err != nil {
			v.bad(key+".address", "%q is not host:port", p.Address)
		}
		if p.API != "" {
			if _, _, err := net.SplitHostPort(p.API); err != nil {
				v.bad(key+".api", "%q is not host:port", p.API)
			}
		}
	}
	if len(c.Raft.Peers) > 0 && !self && !c.Raft.Join {
		v.bad("raft.peers", "node_id %q is not among the peers (set raft.join: true to join a running cluster)", c.NodeID)
	}
	if self && c.Raft.Join {
		v.bad("raft.join", "a joining agent must not list itself among the peers: it would bootstrap a cluster of its own")
	}
	if !c.Raft.Join && (len(c.Raft.Peers) == 2 || len(c.Raft.Peers) == 4) {
		v.bad("raft.peers", "%d voters tolerate no more failures than %d: use 3 or 5", len(c.Raft.Peers), len(c.Raft.Peers)-1)
	}
	v.checkTLS("raft.tls", c.Raft.TLS, true)
	if c.Raft.TLS.Enabled() && (c.Raft.TLS.CertFile == "") {
		v.bad("raft.tls.cert_file", "required for mutual TLS")
	}
	switch {
	case !c.Raft.TLS.Enabled() && !c.Raft.InsecurePlaintext:
		v.bad("raft.tls", "required: without it anyone who reaches the Raft port can rewrite the replicated state (commit a primary, pause a cluster); give each agent a certificate with deploy/regent/make-certs.sh, or set raft.insecure_plaintext: true on a trusted test network only")
	case c.Raft.TLS.Enabled() && c.Raft.InsecurePlaintext:
		v.bad("raft.insecure_plaintext", "set together with raft.tls: remove it")
	}
	v.agentCert(c.NodeID, "raft.tls.cert_file", c.Raft.TLS.CertFile)
	return seenPeer
}

// validateAPI checks the api section: addresses, TLS, limits, the tokens
// and the client-certificate names.
func (c Config) validateAPI(v *validation) {
	if _, _, err := net.SplitHostPort(c.API.Listen); err != nil {
		v.bad("api.listen", "%q is not host:port", c.API.Listen)
	}
	v.checkTLS("api.tls", c.API.TLS, false)
	if c.API.TLS.Enabled() && c.API.TLS.CertFile == "" {
		v.bad("api.tls.cert_file", "required to serve TLS")
	}
	if c.API.TLS.Enabled() && c.API.TLS.CAFile == "" {
		v.bad("api.tls.ca_file", "required with api.tls: it verifies the other agents' certificates, when this agent calls them and when they send reports and forwarded calls")
	}
	v.agentCert(c.NodeID, "api.tls.cert_file", c.API.TLS.CertFile)
	if c.API.Advertise != "" {
		if h, _, err := net.SplitHostPort(c.API.Advertise); err != nil || h == "" || h == "0.0.0.0" || h == "::" {
			v.bad("api.advertise", "%q must be host:port that other agents and regentctl can reach", c.API.Advertise)
		}
	}
	if err := c.API.Limits.WithDefaults().Validate("api.limits"); err != nil {
		v.add(err)
	}
	if (len(c.API.CertAdmins) > 0 || len(c.API.CertReaders) > 0) && c.API.ClientCAFile == "" {
		v.bad("api.cert_admins", "client certificates are only verified with api.client_ca_file")
	}
	for _, l := range []struct {
		key   string
		names []string
	}{{"api.cert_admins", c.API.CertAdmins}, {"api.cert_readers", c.API.CertReaders}} {
		for i, n := range l.names {
			if !identity.ValidName(n) {
				v.bad(fmt.Sprintf("%s[%d]", l.key, i), "%q: give the NAME of the URI SAN %sNAME the client certificate carries (1 to 64 letters, digits, '.', '_', '@', '-'); make-certs.sh -u NAME makes one", n, identity.UserPrefix)
			}
		}
	}
	if len(c.API.CertAdmins) > 0 || len(c.API.CertReaders) > 0 {
		if !c.API.TLS.Enabled() {
			v.bad("api.cert_admins", "client certificates need api.tls")
		}
	}
	if c.API.AgentTokenFile == "" {
		v.bad("api.agent_token_file", "required: agents authenticate to each other with it")
	} else if tok, err := ReadSecret(c.API.AgentTokenFile, ""); err != nil {
		v.bad("api.agent_token_file", "%v", err)
	} else if len(tok) < 16 {
		v.bad("api.agent_token_file", "the token must be at least 16 characters (openssl rand -hex 32)")
	}
	if c.API.TokensFile == "" {
		v.bad("api.tokens_file", "required: mutating calls need an admin token (see README, Authentication)")
	} else if err := checkSecretFile(c.API.TokensFile); err != nil {
		v.bad("api.tokens_file", "%v", err)
	}
}

// validateMySQL checks the mysql section: users, secrets and TLS.
func (c Config) validateMySQL(v *validation) {
	if c.MySQL.User == "" {
		v.bad("mysql.user", "required")
	}
	secret := func(key, file, env string) {
		switch {
		case file != "" && env != "":
			v.bad(key, "set %s_file or %s_env, not both", key, key)
		case file != "":
			if err := checkSecretFile(file); err != nil {
				v.bad(key+"_file", "%v", err)
			}
		case env != "":
			if _, ok := os.LookupEnv(env); !ok {
				v.bad(key+"_env", "environment variable %s is not set", env)
			}
		}
	}
	secret("mysql.password", c.MySQL.PasswordFile, c.MySQL.PasswordEnv)
	v.checkTLS("mysql.tls", c.MySQL.TLS.TLSFilesConfig, false)
	if c.MySQL.ReplicationUser == "" {
		v.bad("mysql.replication_user", "required: replicas are repointed with it")
	}
	secret("mysql.replication_password", c.MySQL.ReplicationPasswordFile, c.MySQL.ReplicationPasswordEnv)

}

// validateClusters checks every replication cluster: names, instances (and
// their agents among peers), durability, the policy, the lease against the
// Raft timings, routing.
func (c Config) validateClusters(v *validation, seenPeer map[string]bool) {
	if len(c.Clusters) == 0 {
		v.bad("clusters", "at least one replication cluster")
	}
	seenCluster, localFound := map[string]bool{}, c.LocalInstance == ""
	for i, cl := range c.Clusters {
		key := fmt.Sprintf("clusters[%d]", i)
		if seenCluster[cl.Name] {
			v.bad(key+".name", "%q is used twice", cl.Name)
		}
		seenCluster[cl.Name] = true
		if c.validateCluster(v, key, cl, seenPeer) {
			localFound = true
		}
	}
	if !localFound {
		v.bad("local_instance", "%q is not an instance of any cluster", c.LocalInstance)
	}
}

// validateCluster checks one replication cluster under key; it reports
// whether the cluster holds this agent's local instance.
func (c Config) validateCluster(v *validation, key string, cl ClusterConfig, seenPeer map[string]bool) (local bool) {
	if !nameRE.MatchString(cl.Name) {
		v.bad(key+".name", "%q is not a valid name", cl.Name)
	}
	if len(cl.Instances) == 0 {
		v.bad(key+".instances", "list the primary and replicas")
	}
	names, owners := map[string]bool{}, map[string]string{}
	var instNames []string
	for j, in := range cl.Instances {
		ikey := fmt.Sprintf("%s.instances[%d]", key, j)
		if names[in.Name] {
			v.bad(ikey+".name", "%q is used twice", in.Name)
		}
		names[in.Name] = true
		instNames = append(instNames, in.Name)
		checkInstance(v, ikey, in, cl.Policy.PromotionSame, key)
		if in.Agent != "" {
			if !seenPeer[in.Agent] {
				v.bad(ikey+".agent", "%q is not among raft.peers", in.Agent)
			}
			if other, dup := owners[in.Agent]; dup {
				v.bad(ikey+".agent", "agent %q already owns %s: one local instance per agent", in.Agent, other)
			}
			owners[in.Agent] = in.Name
		}
		if in.Name == c.LocalInstance {
			local = true
			if in.Agent != c.NodeID {
				v.bad(ikey+".agent", "the local instance of %q must name it as its agent (got %q)", c.NodeID, in.Agent)
			}
		}
	}
	pol := cl.Policy
	if err := pol.Validate(); err != nil {
		v.bad(key, "%v", err)
	}
	// A follower counts its quorum contact from the leader's last
	// heartbeat minus two leader leases (consensus.LastQuorumContact),
	// so it fences after fence_after - 2*leader_lease_timeout without a
	// leader. A re-election (election_timeout plus a heartbeat) must fit
	// in that, or a leader stalling for a moment fences a healthy
	// primary.
	rt := consensus.DefaultConfig()
	orSet := func(v, def time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return def
	}
	llt := orSet(c.Raft.LeaderLeaseTimeout, rt.LeaderLeaseTimeout)
	election := orSet(c.Raft.ElectionTimeout, rt.ElectionTimeout) + orSet(c.Raft.HeartbeatTimeout, rt.HeartbeatTimeout)
	if pol.FenceAfter-2*llt < election {
		v.bad(key+".fence_after", "%v leaves %v without a leader before fencing, less than a Raft re-election (election_timeout + heartbeat_timeout = %v): a short leader stall would fence a healthy primary; raise fence_after (and lease_timeout) or lower the Raft timings",
			pol.FenceAfter, pol.FenceAfter-2*llt, election)
	}
	if err := cl.Routing.Validate(key+".routing", instNames); err != nil {
		v.add(err)
	}
	for j, px := range cl.Routing.ProxySQL {
		if px.PasswordFile != "" {
			if err := checkSecretFile(px.PasswordFile); err != nil {
				v.bad(fmt.Sprintf("%s.routing.proxysql[%d].password_file", key, j), "%v", err)
			}
		}
	}
	return local
}

func (c Config) validateLog(v *validation) {
	switch c.Log.Format {
	case "", "json", "text":
	default:
		v.bad("log.format", "%q: want json or text", c.Log.Format)
	}
	switch strings.ToLower(c.Log.Level) {
	case "", "debug", "info", "warn", "error":
	default:
		v.bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
}

// WatchesBinlog reports whether the agents stream the primary's binlog.
func (c ClusterConfig) WatchesBinlog() bool { return c.WatchBinlog == nil || *c.WatchBinlog }

// ProbeTimeoutOrDefault bounds one probe: by default the probe interval, so that a
// hung server is seen as a timeout before the next round.
func (c ClusterConfig) ProbeTimeoutOrDefault() time.Duration {
	if c.ProbeTimeout > 0 {
		return c.ProbeTimeout
	}
	return c.ProbeInterval
}

// APIAddr is the address other agents and regentctl reach this agent's
// API at: api.advertise, else api.listen.
func (c Config) APIAddr() string {
	if c.API.Advertise != "" {
		return c.API.Advertise
	}
	return c.API.Listen
}

// Consensus is the Raft node's configuration: the raft section over
// consensus's defaults (a duration left at zero keeps the default), the
// initial voters with the instance each one's agent runs beside, and in
// join mode no voters (the leader adds this agent) but the running agents
// to accept connections from. consensus validates the result.
func (c Config) Consensus() (consensus.Config, error) {
	cc := consensus.DefaultConfig()
	cc.NodeID, cc.DataDir, cc.APIAddr, cc.Instance = c.NodeID, c.DataDir, c.APIAddr(), c.LocalInstance
	cc.BindAddr, cc.RaftAddr = c.Raft.Bind, c.Raft.Advertise
	if cc.RaftAddr == "" {
		cc.RaftAddr = c.Raft.Bind
	}
	for _, p := range c.Raft.Peers {
		inst := ""
		for _, cl := range c.Clusters {
			for _, in := range cl.Instances {
				if in.Agent == p.ID {
					inst = in.Name
				}
			}
		}
		cc.Peers = append(cc.Peers, consensus.Peer{ID: p.ID, RaftAddr: p.Address, APIAddr: p.API, Instance: inst})
	}
	if c.Raft.Join {
		// Never bootstrap: the leader adds this agent (regentctl members
		// add). Until it has, accept Raft connections from the running
		// agents only.
		cc.Peers, cc.JoinPeers = nil, cc.Peers
	}
	cc.TLS = consensus.TLSConfig{CAFile: c.Raft.TLS.CAFile, CertFile: c.Raft.TLS.CertFile, KeyFile: c.Raft.TLS.KeyFile}
	cc.InsecurePlaintext = c.Raft.InsecurePlaintext
	for _, d := range []struct {
		dst *time.Duration
		v   time.Duration
	}{
		{&cc.HeartbeatTimeout, c.Raft.HeartbeatTimeout}, {&cc.ElectionTimeout, c.Raft.ElectionTimeout},
		{&cc.LeaderLeaseTimeout, c.Raft.LeaderLeaseTimeout}, {&cc.CommitTimeout, c.Raft.CommitTimeout},
	} {
		if d.v > 0 {
			*d.dst = d.v
		}
	}
	if err := cc.Validate(); err != nil {
		return consensus.Config{}, fmt.Errorf("raft: %w", err)
	}
	return cc, nil
}

// ReadSecret returns the secret from a file (trailing newline trimmed) or an
// environment variable; "" when neither is configured. A file that other
// users may read is refused (checkSecretFile). A value from the environment
// is copied: ScrubEnvironment may overwrite the memory the environment
// lives in.
func ReadSecret(file, env string) (string, error) {
	switch {
	case file != "":
		f, err := os.Open(file)
		if err != nil {
			return "", err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return "", err
		}
		if err := checkSecretMode(file, st); err != nil {
			return "", err
		}
		b, err := io.ReadAll(io.LimitReader(f, 1<<20))
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case env != "":
		return strings.Clone(os.Getenv(env)), nil
	}
	return "", nil
}

// SecretEnvNames lists the environment variables the configuration takes
// secrets from (*_env), for the caller to scrub once they are read.
func (c Config) SecretEnvNames() []string {
	var names []string
	for _, n := range []string{c.MySQL.PasswordEnv, c.MySQL.ReplicationPasswordEnv} {
		if n != "" {
			names = append(names, n)
		}
	}
	for _, cl := range c.Clusters {
		for _, p := range cl.Routing.ProxySQL {
			if p.PasswordEnv != "" {
				names = append(names, p.PasswordEnv)
			}
		}
	}
	return names
}

// checkSecretFile stats a file that holds a secret and refuses it when
// other users may read it.
func checkSecretFile(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	return checkSecretMode(path, st)
}

// checkSecretMode is the rule of the tokens file (apiserver.LoadTokenFile)
// for every file that holds a secret: no permission at all for other users.
// The owner and a dedicated group may read it.
func checkSecretMode(path string, st os.FileInfo) error {
	if perm := st.Mode().Perm(); perm&0o007 != 0 {
		return fmt.Errorf("%s is readable by other users (mode %v): run chmod 600 %s (or 640 with a dedicated group)", path, perm, path)
	}
	return nil
}

// checkInstance checks one instance's own keys (ikey names it): its name,
// address, promotion rule and labels, and that it carries every label key
// promotion_same names (on the cluster at ckey).
func checkInstance(v *validation, ikey string, in InstanceConfig, promotionSame []string, ckey string) {
	if !nameRE.MatchString(in.Name) {
		v.bad(ikey+".name", "%q is not a valid name", in.Name)
	}
	if _, _, err := net.SplitHostPort(in.Address); err != nil {
		v.bad(ikey+".address", "%q is not host:port", in.Address)
	}
	switch in.Promotion {
	case "", "prefer", "neutral", "must_not":
	default:
		v.bad(ikey+".promotion", "%q: want prefer, neutral or must_not", in.Promotion)
	}
	for _, k := range slices.Sorted(maps.Keys(in.Labels)) {
		if !failover.ValidLabel(k) || !failover.ValidLabel(in.Labels[k]) {
			v.bad(ikey+".labels", "%q: %q: a label key and its value are 1 to 63 letters, digits, '.', '_' or '-'", k, in.Labels[k])
		}
	}
	for _, k := range promotionSame {
		if _, ok := in.Labels[k]; !ok {
			v.bad(ikey+".labels", "has no %q, which %s.promotion_same names: give every instance one, or a failover could not tell whether it crosses it", k, ckey)
		}
	}
}

// parseFallback reads semi_sync_fallback: "never" (or empty) is 0, anything
// else a positive Go duration.
func parseFallback(s string) (time.Duration, error) {
	if s == "" || s == "never" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q: want never or a positive duration such as 30s", s)
	}
	return d, nil
}
