package topology

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Flavor is the SQL dialect an instance speaks.
type Flavor int

const (
	// FlavorUnknown is the zero value: the instance has not been probed.
	FlavorUnknown Flavor = iota
	// FlavorMariaDB is MariaDB 10.6 and later (tested on 10.11).
	FlavorMariaDB
	// FlavorMySQL80 is Oracle MySQL 8.0: the SLAVE/MASTER statement forms.
	FlavorMySQL80
	// FlavorMySQL84 is Oracle MySQL 8.4 and later (9.x included): the
	// REPLICA/SOURCE statement forms only.
	FlavorMySQL84
)

func (f Flavor) String() string {
	switch f {
	case FlavorMariaDB:
		return "mariadb"
	case FlavorMySQL80:
		return "mysql-8.0"
	case FlavorMySQL84:
		return "mysql-8.4"
	default:
		return "unknown"
	}
}

// IsMySQL reports whether f is one of the Oracle MySQL flavours.
func (f Flavor) IsMySQL() bool { return f == FlavorMySQL80 || f == FlavorMySQL84 }

// ParseFlavor derives the flavour from @@version (and, when it helps,
// @@version_comment). MariaDB always says "MariaDB" in its version string.
func ParseFlavor(version, comment string) (Flavor, error) {
	if strings.Contains(strings.ToLower(version), "mariadb") || strings.Contains(strings.ToLower(comment), "mariadb") {
		return FlavorMariaDB, nil
	}
	major, minor, ok := parseMajorMinor(version)
	if !ok {
		return FlavorUnknown, fmt.Errorf("cannot tell the server flavour from version %q: expected MAJOR.MINOR.PATCH", version)
	}
	switch {
	case major < 8:
		return FlavorUnknown, fmt.Errorf("MySQL %d.%d is not supported: Regent needs MySQL 8.0 or later, or MariaDB 10.6 or later", major, minor)
	case major == 8 && minor < 4:
		return FlavorMySQL80, nil
	default:
		return FlavorMySQL84, nil
	}
}

func parseMajorMinor(version string) (major, minor int, ok bool) {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	return major, minor, err1 == nil && err2 == nil
}

// IOState is the state of a replica's IO (receiver) thread.
type IOState string

// The states SHOW REPLICA STATUS reports for the IO thread.
const (
	IORunning    IOState = "Yes"
	IOConnecting IOState = "Connecting"
	IOStopped    IOState = "No"
)

// ReplicaStatus is one row of SHOW SLAVE STATUS / SHOW REPLICA STATUS with the
// column names of every flavour mapped to one set of fields.
type ReplicaStatus struct {
	SourceHost string
	SourcePort int
	SourceUser string

	IOState      IOState
	SQLRunning   bool
	LastIOErrno  int
	LastIOError  string
	LastSQLErrno int
	LastSQLError string

	// SecondsBehind is nil when the server reports NULL (SQL thread stopped or
	// IO thread not connected).
	SecondsBehind *int64
	// SQLDelay is the configured delay (MASTER_DELAY / SOURCE_DELAY), seconds.
	SQLDelay int64

	// SourceLogFile/ReadSourceLogPos: how far the IO thread has read;
	// RelaySourceLogFile/ExecSourceLogPos: how far the SQL thread has applied.
	SourceLogFile      string
	ReadSourceLogPos   uint64
	RelaySourceLogFile string
	ExecSourceLogPos   uint64

	// AutoPosition is true when the replica uses GTID auto-positioning
	// (MySQL Auto_Position=1, MariaDB Using_Gtid=Slave_Pos or Current_Pos).
	AutoPosition bool
	// UsingGTID is MariaDB's Using_Gtid column verbatim ("No", "Slave_Pos",
	// "Current_Pos"); empty on MySQL.
	UsingGTID string

	// RetrievedGTID is what the IO thread has received: MySQL's
	// Retrieved_Gtid_Set, MariaDB's Gtid_IO_Pos. Raw text.
	RetrievedGTID string
	// ExecutedGTID is MySQL's Executed_Gtid_Set column (raw text); empty on
	// MariaDB, whose executed state comes from @@gtid_binlog_state.
	ExecutedGTID string

	// HeartbeatPeriod is the replication heartbeat period in seconds; 0 when
	// unknown. ReceivedHeartbeats counts heartbeats received since the last
	// CHANGE MASTER/SOURCE (MariaDB: Slave_received_heartbeats; MySQL:
	// performance_schema.replication_connection_status).
	HeartbeatPeriod    float64
	ReceivedHeartbeats uint64

	SSLAllowed bool
	// SourceServerID is the server_id of the source the IO thread talks to.
	SourceServerID uint32
	// ChannelName is the replication channel (MySQL) or connection name
	// (MariaDB multi-source); empty for the default channel.
	ChannelName string
}

// Replicating reports whether both replica threads run.
func (r *ReplicaStatus) Replicating() bool {
	return r != nil && r.IOState == IORunning && r.SQLRunning
}

// SemiSyncStatus is the semi-synchronous replication state of an instance.
type SemiSyncStatus struct {
	// Available is true when the server can do semi-sync (built in on MariaDB,
	// plugin loaded on MySQL).
	Available bool
	// SourceEnabled/ReplicaEnabled: the configured switches
	// (rpl_semi_sync_master_enabled / rpl_semi_sync_source_enabled, ...).
	SourceEnabled  bool
	ReplicaEnabled bool
	// SourceActive is the runtime status (Rpl_semi_sync_master_status): ON
	// when the source is currently waiting for acknowledgements.
	SourceActive bool
	// ReplicaActive is Rpl_semi_sync_slave_status / _replica_status.
	ReplicaActive bool
	// SourceClients is the number of semi-sync replicas connected.
	SourceClients int
	// WaitPoint is AFTER_SYNC or AFTER_COMMIT.
	WaitPoint string
	// WaitNoReplica is rpl_semi_sync_master_wait_no_slave /
	// rpl_semi_sync_source_wait_no_replica: ON keeps waiting (until the
	// timeout) when fewer replicas than needed are connected; OFF falls back
	// to asynchronous at once.
	WaitNoReplica bool
	// TimeoutMillis is how long the source waits for an ack before it falls
	// back to asynchronous replication.
	TimeoutMillis int64
	// WaitForReplicaCount is the number of acks a commit waits for (MySQL);
	// MariaDB always waits for one.
	WaitForReplicaCount int
}

// Snapshot is what one probe learned about an instance.
type Snapshot struct {
	// Addr is the host:port that was probed.
	Addr     string
	ProbedAt time.Time
	// Latency is how long the probe took.
	Latency time.Duration

	ServerID   uint32
	ServerUUID string // MySQL only; MariaDB has none
	Version    string
	Flavor     Flavor

	ReadOnly      bool
	SuperReadOnly bool // MySQL only

	LogBin            bool
	LogReplicaUpdates bool
	BinlogFormat      string
	// GTIDMode is MySQL's @@gtid_mode ("ON", "OFF", ...); on MariaDB, where
	// GTIDs are always on, it is "ON".
	GTIDMode string
	// GTIDStrict is MySQL's enforce_gtid_consistency=ON or MariaDB's
	// gtid_strict_mode=ON.
	GTIDStrict bool
	// ReplicaNetTimeout is slave_net_timeout / replica_net_timeout, seconds.
	ReplicaNetTimeout int64

	// Executed is the set of transactions this instance has applied:
	// @@gtid_executed on MySQL, @@gtid_binlog_state on MariaDB (which needs
	// log_bin and log_slave_updates to include replicated transactions).
	Executed GTIDSet
	// MariaDB's per-domain positions, raw text; empty on MySQL.
	GTIDCurrentPos string
	GTIDSlavePos   string
	GTIDBinlogPos  string

	// Replica is nil when the instance is not configured as a replica.
	Replica *ReplicaStatus

	SemiSync SemiSyncStatus

	// Questions and ThreadsConnected are global status counters, for QPS and
	// connection metrics.
	Questions        uint64
	ThreadsConnected uint64
	Uptime           time.Duration
}

// Writable reports whether the instance accepts writes from ordinary users.
func (s *Snapshot) Writable() bool { return s != nil && !s.ReadOnly && !s.SuperReadOnly }
