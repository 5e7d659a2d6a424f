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
// replication-manager hard-coded, and broke them; here a new form is one
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

// applierAutoPositionSQL reads, on MySQL, whether the applier runs and
// whether the receiver uses GTID auto-positioning (no row: not a replica).
const applierAutoPositionSQL = "SELECT s.SERVICE_STATE, c.AUTO_POSITION FROM performance_schema.replication_applier_status s " +
	"JOIN performance_schema.replication_connection_configuration c ON c.CHANNEL_NAME = s.CHANNEL_NAME WHERE s.CHANNEL_NAME = ''"

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

	// receiverOnly (MySQL, set by ChangeSource) leaves out the options
	// that need the applier stopped: auto-positioning is on already, and
	// the statement runs with the applier running (see ChangeSource).
	receiverOnly bool
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
// statement with GTID auto-positioning, its strings quoted for a session with
// (noBackslashEscapes) or without NO_BACKSLASH_ESCAPES. It holds the
// password: never log it or put it in an error.
func (f Flavor) changeSourceSQL(o ChangeSourceOptions, noBackslashEscapes bool) (string, error) {
	if err := o.validate(); err != nil {
		return "", err
	}
	// One table of option names per flavour; the order of the list below is
	// the order in the statement.
	type kv struct{ key, value string }
	q := func(s string) string { return quoteFor(s, noBackslashEscapes) }
	p := "MASTER_"
	if f.usesReplicaWords() {
		p = "SOURCE_"
	}
	opts := []kv{
		{p + "HOST", q(o.Host)},
		{p + "PORT", strconv.Itoa(o.Port)},
		{p + "USER", q(o.User)},
		{p + "PASSWORD", q(o.Password)},
	}
	switch f {
	case FlavorMariaDB:
		opts = append(opts, kv{"MASTER_USE_GTID", "slave_pos"})
		if o.Demote {
			opts = append(opts, kv{"MASTER_DEMOTE_TO_SLAVE", "1"})
		}
	// MySQL: caching_sha2_password sends the password over TLS as it is;
	// without TLS the replica encrypts it with the source's RSA public key,
	// which it must then ask for. That key comes over the same unencrypted
	// connection, so a man in the middle can hand over his own and read the
	// password: ask for it only when there is no TLS, and set it back to 0
	// otherwise (a CHANGE keeps an option's old value when it is left out).
	case FlavorMySQL80:
		if !o.receiverOnly {
			opts = append(opts, kv{"MASTER_AUTO_POSITION", "1"})
		}
		opts = append(opts, kv{"GET_MASTER_PUBLIC_KEY", boolDigit(!o.TLS.Enabled)})
	default:
		if !o.receiverOnly {
			opts = append(opts, kv{"SOURCE_AUTO_POSITION", "1"})
		}
		opts = append(opts, kv{"GET_SOURCE_PUBLIC_KEY", boolDigit(!o.TLS.Enabled)})
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
			opts = append(opts, kv{p + "SSL_CA", q(o.TLS.CAFile)})
		}
		if o.TLS.CertFile != "" {
			opts = append(opts, kv{p + "SSL_CERT", q(o.TLS.CertFile)})
		}
		if o.TLS.KeyFile != "" {
			opts = append(opts, kv{p + "SSL_KEY", q(o.TLS.KeyFile)})
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

// quote makes a SQL string literal for a value that holds no backslash and
// no control character (names, paths, GTID sets): its text is then the same
// whether or not the session's sql_mode has NO_BACKSLASH_ESCAPES. Anything
// else, a password above all, goes through quoteFor with the session's mode.
func quote(s string) string { return quoteFor(s, false) }

// quoteFor makes a SQL string literal that reads back as s in a session
// whose sql_mode has (noBackslashEscapes) or lacks NO_BACKSLASH_ESCAPES. A
// quote is doubled, which both modes read as one quote. Without the mode a
// backslash starts an escape, so it and NUL, newlines and Ctrl-Z are
// escaped; with it a backslash is an ordinary character and there is no
// escape at all, so everything but the quote goes in as it is. Escaping a
// backslash in that mode would double it in the value, and `\'` would end
// the literal early: a password with a backslash would be wrong or, worse,
// cut the statement where its tail ends up in a syntax error's text.
func quoteFor(s string, noBackslashEscapes bool) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for _, r := range s {
		if r == '\'' {
			b.WriteString("''")
			continue
		}
		if noBackslashEscapes {
			b.WriteRune(r)
			continue
		}
		switch r {
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

// hasNoBackslashEscapes reports whether a sql_mode value (as @@sql_mode
// shows it) has NO_BACKSLASH_ESCAPES.
func hasNoBackslashEscapes(sqlMode string) bool {
	for _, m := range strings.Split(sqlMode, ",") {
		if strings.EqualFold(strings.TrimSpace(m), "NO_BACKSLASH_ESCAPES") {
			return true
		}
	}
	return false
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

// watchStartSQL reads the source's current end as a GTID position, with no
// privilege beyond logging in: a binlog watch starts there (binlogwatch.go).
func (f Flavor) watchStartSQL() string {
	if f == FlavorMariaDB {
		return "SELECT @@GLOBAL.gtid_binlog_pos"
	}
	return "SELECT @@GLOBAL.gtid_executed"
}

// watchSetupSQL returns the user variables a binlog watch sets before its
// dump, as a replica's IO thread would, minus registration and semi-sync:
// the heartbeat period in nanoseconds, the checksum it can read (the source
// refuses to stream CRC32 events to a dump that does not announce one), and
// per flavour:
//   - MariaDB: the GTID capability (4), without which GTID events arrive
//     rewritten, and the GTID position to start from (start, from
//     watchStartSQL);
//   - MySQL: a replica UUID derived from serverID, by which the source ends a
//     stale dump of the same watcher when it reconnects. 8.4 reads the
//     source_ names; 8.0 before 8.0.26 only the master_ ones.
func (f Flavor) watchSetupSQL(heartbeat time.Duration, serverID uint32, start string) []string {
	ns := strconv.FormatInt(heartbeat.Nanoseconds(), 10)
	switch f {
	case FlavorMariaDB:
		return []string{"SET @master_heartbeat_period = " + ns +
			", @master_binlog_checksum = @@GLOBAL.binlog_checksum" +
			", @mariadb_slave_capability = 4" +
			", @slave_connect_state = " + quote(start)}
	case FlavorMySQL80:
		uuid := quote(watchReplicaUUID(serverID))
		return []string{"SET @master_heartbeat_period = " + ns + ", @source_heartbeat_period = " + ns +
			", @master_binlog_checksum = @@GLOBAL.binlog_checksum, @source_binlog_checksum = @@GLOBAL.binlog_checksum" +
			", @slave_uuid = " + uuid + ", @replica_uuid = " + uuid}
	default:
		return []string{"SET @source_heartbeat_period = " + ns +
			", @source_binlog_checksum = @@GLOBAL.binlog_checksum" +
			", @replica_uuid = " + quote(watchReplicaUUID(serverID))}
	}
}

// watchReplicaUUID is the UUID a watcher with serverID presents to MySQL:
// stable across reconnects, distinct per server id, and recognisable
// ("5265676e" is "Regn").
func watchReplicaUUID(serverID uint32) string {
	return fmt.Sprintf("5265676e-7400-4000-8000-%012x", serverID)
}
