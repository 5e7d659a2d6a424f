package topology

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// This file holds every statement whose text differs between flavours. MySQL
// 8.4 removed the SLAVE/MASTER forms that orchestrator, MHA and
// replication-manager hard-coded (FIELD-NOTES §11); here a new form is one
// switch case.

// Thread selects replica threads for start and stop.
type Thread int

// The replica threads.
const (
	ThreadsBoth Thread = iota
	ThreadIO
	ThreadSQL
)

func (t Thread) suffix() string {
	switch t {
	case ThreadIO:
		return " IO_THREAD"
	case ThreadSQL:
		return " SQL_THREAD"
	default:
		return ""
	}
}

func (f Flavor) usesReplicaWords() bool { return f == FlavorMySQL84 }

// replicaStatusSQL: MariaDB's SHOW ALL SLAVES STATUS has the heartbeat
// columns that SHOW SLAVE STATUS lacks, and names the connection.
func (f Flavor) replicaStatusSQL() string {
	switch f {
	case FlavorMariaDB:
		return "SHOW ALL SLAVES STATUS"
	case FlavorMySQL80:
		return "SHOW SLAVE STATUS"
	default:
		return "SHOW REPLICA STATUS"
	}
}

func (f Flavor) stopReplicaSQL(t Thread) string {
	if f.usesReplicaWords() {
		return "STOP REPLICA" + t.suffix()
	}
	return "STOP SLAVE" + t.suffix()
}

func (f Flavor) startReplicaSQL(t Thread) string {
	if f.usesReplicaWords() {
		return "START REPLICA" + t.suffix()
	}
	return "START SLAVE" + t.suffix()
}

func (f Flavor) resetReplicaAllSQL() string {
	if f.usesReplicaWords() {
		return "RESET REPLICA ALL"
	}
	return "RESET SLAVE ALL"
}

func (f Flavor) listReplicasSQL() string {
	if f.usesReplicaWords() {
		return "SHOW REPLICAS"
	}
	return "SHOW SLAVE HOSTS"
}

// readOnlySQL: on MySQL super_read_only=ON implies read_only=ON, and turning
// read_only off needs super_read_only off first. MariaDB 10.11 has no
// super_read_only: read_only also stops SUPER there; only READ ONLY ADMIN
// bypasses it.
func (f Flavor) readOnlySQL(on bool) []string {
	switch {
	case f.IsMySQL() && on:
		return []string{"SET GLOBAL super_read_only=ON"}
	case f.IsMySQL():
		// offline_mode may be left on by a fence that could not set
		// read_only (Fence): a writable primary must accept its clients.
		return []string{"SET GLOBAL offline_mode=OFF", "SET GLOBAL super_read_only=OFF", "SET GLOBAL read_only=OFF"}
	case on:
		return []string{"SET GLOBAL read_only=ON"}
	default:
		return []string{"SET GLOBAL read_only=OFF"}
	}
}

// ReplicationTLS configures TLS on the replication channel itself.
type ReplicationTLS struct {
	Enabled bool
	// Paths as the replica's mysqld sees them.
	CAFile   string
	CertFile string
	KeyFile  string
	// VerifyServerCert checks the source's certificate against CAFile and its
	// host name.
	VerifyServerCert bool
}

// ChangeSourceOptions points a replica at a source.
type ChangeSourceOptions struct {
	Host     string
	Port     int
	User     string
	Password string
	// Demote is for an old primary becoming a replica: on MariaDB it adds
	// MASTER_DEMOTE_TO_SLAVE=1 so that its own transactions count as
	// already replicated; MySQL needs nothing (gtid_executed covers them).
	Demote bool
	// HeartbeatPeriod makes the source send heartbeats on an idle stream, so
	// that the replica notices a dead source quickly; 0 keeps the server's
	// default.
	HeartbeatPeriod time.Duration
	// ConnectRetry is the delay between reconnection attempts; 0 keeps the
	// default.
	ConnectRetry time.Duration
	TLS          ReplicationTLS
}

// LogValue keeps the password out of structured logs.
func (o ChangeSourceOptions) String() string {
	return fmt.Sprintf("%s@%s", o.User, net.JoinHostPort(o.Host, strconv.Itoa(o.Port)))
}

func (o ChangeSourceOptions) validate() error {
	if o.Host == "" || strings.ContainsAny(o.Host, "'\"\\`; \t\n") {
		return fmt.Errorf("source host %q is not a host name or address", o.Host)
	}
	if o.Port <= 0 || o.Port > 65535 {
		return fmt.Errorf("source port %d is out of range", o.Port)
	}
	if o.User == "" {
		return errors.New("no replication user")
	}
	return nil
}

// changeSourceSQL returns the CHANGE MASTER / CHANGE REPLICATION SOURCE
// statement with GTID auto-positioning. It holds the password: never log it or
// put it in an error.
func (f Flavor) changeSourceSQL(o ChangeSourceOptions) (string, error) {
	if err := o.validate(); err != nil {
		return "", err
	}
	// One table of option names per flavour; the order of the list below is
	// the order in the statement.
	type kv struct{ key, value string }
	p := "MASTER_"
	if f.usesReplicaWords() {
		p = "SOURCE_"
	}
	opts := []kv{
		{p + "HOST", quote(o.Host)},
		{p + "PORT", strconv.Itoa(o.Port)},
		{p + "USER", quote(o.User)},
		{p + "PASSWORD", quote(o.Password)},
	}
	switch f {
	case FlavorMariaDB:
		opts = append(opts, kv{"MASTER_USE_GTID", "slave_pos"})
		if o.Demote {
			opts = append(opts, kv{"MASTER_DEMOTE_TO_SLAVE", "1"})
		}
	case FlavorMySQL80:
		opts = append(opts, kv{"MASTER_AUTO_POSITION", "1"}, kv{"GET_MASTER_PUBLIC_KEY", "1"})
	default:
		opts = append(opts, kv{"SOURCE_AUTO_POSITION", "1"}, kv{"GET_SOURCE_PUBLIC_KEY", "1"})
	}
	if o.ConnectRetry > 0 {
		opts = append(opts, kv{p + "CONNECT_RETRY", strconv.Itoa(max(1, int(o.ConnectRetry.Seconds())))})
	}
	if o.HeartbeatPeriod > 0 {
		opts = append(opts, kv{p + "HEARTBEAT_PERIOD", strconv.FormatFloat(o.HeartbeatPeriod.Seconds(), 'f', 3, 64)})
	}
	if o.TLS.Enabled {
		opts = append(opts, kv{p + "SSL", "1"})
		if o.TLS.CAFile != "" {
			opts = append(opts, kv{p + "SSL_CA", quote(o.TLS.CAFile)})
		}
		if o.TLS.CertFile != "" {
			opts = append(opts, kv{p + "SSL_CERT", quote(o.TLS.CertFile)})
		}
		if o.TLS.KeyFile != "" {
			opts = append(opts, kv{p + "SSL_KEY", quote(o.TLS.KeyFile)})
		}
		opts = append(opts, kv{p + "SSL_VERIFY_SERVER_CERT", boolDigit(o.TLS.VerifyServerCert)})
	} else if f == FlavorMariaDB {
		// MariaDB 11.4+ turns MASTER_SSL on by default; say what we mean.
		opts = append(opts, kv{"MASTER_SSL", "0"})
	}
	parts := make([]string, len(opts))
	for k, o := range opts {
		parts[k] = o.key + "=" + o.value
	}
	verb := "CHANGE MASTER TO "
	if f.usesReplicaWords() {
		verb = "CHANGE REPLICATION SOURCE TO "
	}
	return verb + strings.Join(parts, ", "), nil
}

func boolDigit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// quote makes a SQL string literal. Backslash and quote are escaped, and NUL
// and newlines too, so that any password is safe to embed.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\'':
			b.WriteString(`\'`)
		case '\\':
			b.WriteString(`\\`)
		case 0:
			b.WriteString(`\0`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case 0x1a:
			b.WriteString(`\Z`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// waitGTIDSQL returns a query that waits until the instance has executed set
// and returns 0, or returns a non-zero value on timeout (MariaDB -1, MySQL 1).
func (f Flavor) waitGTIDSQL(set GTIDSet, timeout time.Duration) string {
	secs := strconv.FormatFloat(timeout.Seconds(), 'f', 3, 64)
	if f == FlavorMariaDB {
		return "SELECT MASTER_GTID_WAIT(" + quote(set.MariaDBPos()) + ", " + secs + ")"
	}
	return "SELECT WAIT_FOR_EXECUTED_GTID_SET(" + quote(set.String()) + ", " + secs + ")"
}

// semiSyncNames are the variable and status names of semi-sync replication,
// which changed twice: MariaDB and MySQL 8.0's master/slave plugins, then
// MySQL's source/replica plugins (8.0.26+, the only ones in 8.4).
type semiSyncNames struct {
	sourceEnabled, replicaEnabled, waitPoint, timeout, waitCount, waitNoReplica string
	sourceStatus, replicaStatus, clients                                        string
	sourcePlugin, replicaPlugin                                                 string // MySQL: plugin name
	sourceLib, replicaLib                                                       string // MySQL: shared library
}

var (
	semiSyncMasterNames = semiSyncNames{
		sourceEnabled: "rpl_semi_sync_master_enabled", replicaEnabled: "rpl_semi_sync_slave_enabled",
		waitPoint: "rpl_semi_sync_master_wait_point", timeout: "rpl_semi_sync_master_timeout",
		waitCount: "rpl_semi_sync_master_wait_for_slave_count", waitNoReplica: "rpl_semi_sync_master_wait_no_slave",
		sourceStatus: "Rpl_semi_sync_master_status", replicaStatus: "Rpl_semi_sync_slave_status",
		clients:      "Rpl_semi_sync_master_clients",
		sourcePlugin: "rpl_semi_sync_master", replicaPlugin: "rpl_semi_sync_slave",
		sourceLib: "semisync_master.so", replicaLib: "semisync_slave.so",
	}
	semiSyncSourceNames = semiSyncNames{
		sourceEnabled: "rpl_semi_sync_source_enabled", replicaEnabled: "rpl_semi_sync_replica_enabled",
		waitPoint: "rpl_semi_sync_source_wait_point", timeout: "rpl_semi_sync_source_timeout",
		waitCount: "rpl_semi_sync_source_wait_for_replica_count", waitNoReplica: "rpl_semi_sync_source_wait_no_replica",
		sourceStatus: "Rpl_semi_sync_source_status", replicaStatus: "Rpl_semi_sync_replica_status",
		clients:      "Rpl_semi_sync_source_clients",
		sourcePlugin: "rpl_semi_sync_source", replicaPlugin: "rpl_semi_sync_replica",
		sourceLib: "semisync_source.so", replicaLib: "semisync_replica.so",
	}
)

// semiSync picks the names an instance uses. vars are its global variables:
// on MySQL 8.0 either plugin generation may be loaded, and the loaded one
// decides.
func (f Flavor) semiSync(vars map[string]string) semiSyncNames {
	switch f {
	case FlavorMariaDB:
		return semiSyncMasterNames
	case FlavorMySQL80:
		if _, ok := vars[semiSyncSourceNames.sourceEnabled]; ok {
			return semiSyncSourceNames
		}
		if _, ok := vars[semiSyncSourceNames.replicaEnabled]; ok {
			return semiSyncSourceNames
		}
		return semiSyncMasterNames
	default:
		return semiSyncSourceNames
	}
}

// variableNames are the global variables a probe reads, all flavours at once:
// SHOW GLOBAL VARIABLES simply leaves out the ones a server lacks.
var variableNames = []string{
	"server_id", "server_uuid", "version", "version_comment",
	"read_only", "super_read_only", "log_bin", "log_slave_updates", "log_replica_updates",
	"binlog_format", "gtid_mode", "enforce_gtid_consistency", "gtid_strict_mode",
	"gtid_executed", "gtid_binlog_state", "gtid_current_pos", "gtid_slave_pos", "gtid_binlog_pos",
	"slave_net_timeout", "replica_net_timeout", "rpl_semi_sync_slave_kill_conn_timeout",
	semiSyncMasterNames.sourceEnabled, semiSyncMasterNames.replicaEnabled, semiSyncMasterNames.waitPoint,
	semiSyncMasterNames.timeout, semiSyncMasterNames.waitCount, semiSyncMasterNames.waitNoReplica,
	semiSyncSourceNames.sourceEnabled, semiSyncSourceNames.replicaEnabled, semiSyncSourceNames.waitPoint,
	semiSyncSourceNames.timeout, semiSyncSourceNames.waitCount, semiSyncSourceNames.waitNoReplica,
}

var statusNames = []string{
	"Questions", "Threads_connected", "Uptime",
	semiSyncMasterNames.sourceStatus, semiSyncMasterNames.replicaStatus, semiSyncMasterNames.clients,
	semiSyncSourceNames.sourceStatus, semiSyncSourceNames.replicaStatus, semiSyncSourceNames.clients,
}

func inList(names []string) string {
	q := make([]string, len(names))
	for k, n := range names {
		q[k] = quote(n)
	}
	return "(" + strings.Join(q, ",") + ")"
}

var (
	showVariablesSQL = "SHOW GLOBAL VARIABLES WHERE Variable_name IN " + inList(variableNames)
	showStatusSQL    = "SHOW GLOBAL STATUS WHERE Variable_name IN " + inList(statusNames)
)

// mysqlHeartbeatSQL reads heartbeat figures MySQL keeps out of SHOW REPLICA
// STATUS.
const mysqlHeartbeatSQL = "SELECT s.COUNT_RECEIVED_HEARTBEATS, c.HEARTBEAT_INTERVAL FROM performance_schema.replication_connection_status s JOIN performance_schema.replication_connection_configuration c USING (CHANNEL_NAME) WHERE CHANNEL_NAME = ''"
