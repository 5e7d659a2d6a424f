package topology

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// The statement forms of each flavour. MySQL 8.0 cannot run here, so its
// forms are checked as text; MariaDB's and MySQL 8.4's also run against real
// servers in instance_test.go.
func TestStatementForms(t *testing.T) {
	flavors := []Flavor{FlavorMariaDB, FlavorMySQL80, FlavorMySQL84}
	cases := []struct {
		name string
		gen  func(Flavor) string
		want [3]string // MariaDB, MySQL 8.0, MySQL 8.4
	}{
		{"replica status", Flavor.replicaStatusSQL, [3]string{"SHOW ALL SLAVES STATUS", "SHOW SLAVE STATUS", "SHOW REPLICA STATUS"}},
		{"stop io", func(f Flavor) string { return f.stopReplicaSQL(ThreadIO) }, [3]string{"STOP SLAVE IO_THREAD", "STOP SLAVE IO_THREAD", "STOP REPLICA IO_THREAD"}},
		{"stop sql", func(f Flavor) string { return f.stopReplicaSQL(ThreadSQL) }, [3]string{"STOP SLAVE SQL_THREAD", "STOP SLAVE SQL_THREAD", "STOP REPLICA SQL_THREAD"}},
		{"start both", func(f Flavor) string { return f.startReplicaSQL(ThreadsBoth) }, [3]string{"START SLAVE", "START SLAVE", "START REPLICA"}},
		{"reset", Flavor.resetReplicaAllSQL, [3]string{"RESET SLAVE ALL", "RESET SLAVE ALL", "RESET REPLICA ALL"}},
		{"list replicas", Flavor.listReplicasSQL, [3]string{"SHOW SLAVE HOSTS", "SHOW SLAVE HOSTS", "SHOW REPLICAS"}},
		{"binlog watch start", Flavor.watchStartSQL, [3]string{"SELECT @@GLOBAL.gtid_binlog_pos", "SELECT @@GLOBAL.gtid_executed", "SELECT @@GLOBAL.gtid_executed"}},
		{"binlog watch setup", func(f Flavor) string {
			return strings.Join(f.watchSetupSQL(500*time.Millisecond, 0xF1234567, "0-1-5,1-2-'7"), "; ")
		}, [3]string{
			`SET @master_heartbeat_period = 500000000, @master_binlog_checksum = @@GLOBAL.binlog_checksum, @mariadb_slave_capability = 4, @slave_connect_state = '0-1-5,1-2-''7'`,
			`SET @master_heartbeat_period = 500000000, @source_heartbeat_period = 500000000, @master_binlog_checksum = @@GLOBAL.binlog_checksum, @source_binlog_checksum = @@GLOBAL.binlog_checksum, @slave_uuid = '5265676e-7400-4000-8000-0000f1234567', @replica_uuid = '5265676e-7400-4000-8000-0000f1234567'`,
			`SET @source_heartbeat_period = 500000000, @source_binlog_checksum = @@GLOBAL.binlog_checksum, @replica_uuid = '5265676e-7400-4000-8000-0000f1234567'`,
		}},
		{"read only on", func(f Flavor) string { return strings.Join(f.readOnlySQL(true), "; ") }, [3]string{
			"SET GLOBAL read_only=ON", "SET GLOBAL super_read_only=ON", "SET GLOBAL super_read_only=ON"}},
		{"read only off", func(f Flavor) string { return strings.Join(f.readOnlySQL(false), "; ") }, [3]string{
			"SET GLOBAL read_only=OFF", "SET GLOBAL offline_mode=OFF; SET GLOBAL super_read_only=OFF; SET GLOBAL read_only=OFF", "SET GLOBAL offline_mode=OFF; SET GLOBAL super_read_only=OFF; SET GLOBAL read_only=OFF"}},
		{"change source", func(f Flavor) string {
			s, err := f.changeSourceSQL(ChangeSourceOptions{Host: "10.0.0.2", Port: 3306, User: "repl", Password: `p'w\d`, HeartbeatPeriod: 500 * time.Millisecond, ConnectRetry: time.Second}, false)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, [3]string{
			`CHANGE MASTER TO MASTER_HOST='10.0.0.2', MASTER_PORT=3306, MASTER_USER='repl', MASTER_PASSWORD='p''w\\d', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=0.500, MASTER_SSL=0`,
			`CHANGE MASTER TO MASTER_HOST='10.0.0.2', MASTER_PORT=3306, MASTER_USER='repl', MASTER_PASSWORD='p''w\\d', MASTER_AUTO_POSITION=1, GET_MASTER_PUBLIC_KEY=1, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=0.500`,
			`CHANGE REPLICATION SOURCE TO SOURCE_HOST='10.0.0.2', SOURCE_PORT=3306, SOURCE_USER='repl', SOURCE_PASSWORD='p''w\\d', SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1, SOURCE_CONNECT_RETRY=1, SOURCE_HEARTBEAT_PERIOD=0.500`,
		}},
		{"change source with the applier running (receiver options only)", func(f Flavor) string {
			s, err := f.changeSourceSQL(ChangeSourceOptions{Host: "10.0.0.2", Port: 3306, User: "repl", Password: "x", receiverOnly: f != FlavorMariaDB}, false)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, [3]string{
			`CHANGE MASTER TO MASTER_HOST='10.0.0.2', MASTER_PORT=3306, MASTER_USER='repl', MASTER_PASSWORD='x', MASTER_USE_GTID=slave_pos, MASTER_SSL=0`,
			`CHANGE MASTER TO MASTER_HOST='10.0.0.2', MASTER_PORT=3306, MASTER_USER='repl', MASTER_PASSWORD='x', GET_MASTER_PUBLIC_KEY=1`,
			`CHANGE REPLICATION SOURCE TO SOURCE_HOST='10.0.0.2', SOURCE_PORT=3306, SOURCE_USER='repl', SOURCE_PASSWORD='x', GET_SOURCE_PUBLIC_KEY=1`,
		}},
		{"change source demote with TLS", func(f Flavor) string {
			s, err := f.changeSourceSQL(ChangeSourceOptions{Host: "db2", Port: 3307, User: "repl", Password: "x", Demote: true,
				TLS: ReplicationTLS{Enabled: true, CAFile: "/etc/mysql/ca.pem", VerifyServerCert: true}}, false)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, [3]string{
			`CHANGE MASTER TO MASTER_HOST='db2', MASTER_PORT=3307, MASTER_USER='repl', MASTER_PASSWORD='x', MASTER_USE_GTID=slave_pos, MASTER_DEMOTE_TO_SLAVE=1, MASTER_SSL=1, MASTER_SSL_CA='/etc/mysql/ca.pem', MASTER_SSL_VERIFY_SERVER_CERT=1`,
			`CHANGE MASTER TO MASTER_HOST='db2', MASTER_PORT=3307, MASTER_USER='repl', MASTER_PASSWORD='x', MASTER_AUTO_POSITION=1, GET_MASTER_PUBLIC_KEY=0, MASTER_SSL=1, MASTER_SSL_CA='/etc/mysql/ca.pem', MASTER_SSL_VERIFY_SERVER_CERT=1`,
			`CHANGE REPLICATION SOURCE TO SOURCE_HOST='db2', SOURCE_PORT=3307, SOURCE_USER='repl', SOURCE_PASSWORD='x', SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=0, SOURCE_SSL=1, SOURCE_SSL_CA='/etc/mysql/ca.pem', SOURCE_SSL_VERIFY_SERVER_CERT=1`,
		}},
	}
	for _, tc := range cases {
		for i, f := range flavors {
			if got := tc.gen(f); got != tc.want[i] {
				t.Errorf("%s on %s:\n got %s\nwant %s", tc.name, f, got, tc.want[i])
			}
		}
	}
}

func TestWaitGTIDStatements(t *testing.T) {
	maria, err := ParseMariaDBGTIDState("0-1-100,0-2-150,1-1-7")
	if err != nil {
		t.Fatal(err)
	}
	my, err := ParseMySQLGTIDSet("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		f    Flavor
		set  GTIDSet
		want string
	}{
		{FlavorMariaDB, maria, "SELECT MASTER_GTID_WAIT('0-2-150,1-1-7', 1.500)"},
		{FlavorMySQL80, my, "SELECT WAIT_FOR_EXECUTED_GTID_SET('3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5', 1.500)"},
		{FlavorMySQL84, my, "SELECT WAIT_FOR_EXECUTED_GTID_SET('3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5', 1.500)"},
	}
	for _, tc := range cases {
		if got := tc.f.waitGTIDSQL(tc.set, 1500*time.Millisecond); got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.f, got, tc.want)
		}
	}
}

func TestSemiSyncNamesPerFlavour(t *testing.T) {
	cases := []struct {
		name string
		f    Flavor
		vars map[string]string
		want string
	}{
		{"MariaDB built in", FlavorMariaDB, nil, "rpl_semi_sync_master_enabled"},
		{"MySQL 8.0 with the old plugin", FlavorMySQL80, map[string]string{"rpl_semi_sync_master_enabled": "OFF"}, "rpl_semi_sync_master_enabled"},
		{"MySQL 8.0 with the new plugin", FlavorMySQL80, map[string]string{"rpl_semi_sync_source_enabled": "OFF"}, "rpl_semi_sync_source_enabled"},
		{"MySQL 8.0 replica-only new plugin", FlavorMySQL80, map[string]string{"rpl_semi_sync_replica_enabled": "OFF"}, "rpl_semi_sync_source_enabled"},
		{"MySQL 8.0 no plugin", FlavorMySQL80, map[string]string{}, "rpl_semi_sync_master_enabled"},
		{"MySQL 8.4", FlavorMySQL84, map[string]string{}, "rpl_semi_sync_source_enabled"},
	}
	for _, tc := range cases {
		if got := tc.f.semiSync(tc.vars).sourceEnabled; got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestChangeSourceRejectsBadInput(t *testing.T) {
	cases := []struct {
		name string
		o    ChangeSourceOptions
		want string
	}{
		{"quote in host", ChangeSourceOptions{Host: "db1' --", Port: 3306, User: "repl"}, "not a host"},
		{"empty host", ChangeSourceOptions{Port: 3306, User: "repl"}, "not a host"},
		{"port zero", ChangeSourceOptions{Host: "db1", User: "repl"}, "out of range"},
		{"no user", ChangeSourceOptions{Host: "db1", Port: 3306}, "no replication user"},
	}
	for _, tc := range cases {
		_, err := FlavorMySQL84.changeSourceSQL(tc.o, false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	if s := (ChangeSourceOptions{Host: "db1", Port: 3306, User: "repl", Password: "secret"}).String(); strings.Contains(s, "secret") {
		t.Errorf("String() leaks the password: %s", s)
	}
}

func TestQuote(t *testing.T) {
	cases := []struct {
		name, in string
		want     string // default sql_mode
		wantNBE  string // NO_BACKSLASH_ESCAPES
	}{
		{"plain", "plain", `'plain'`, `'plain'`},
		{"quote", `it's`, `'it''s'`, `'it''s'`},
		{"backslash", `back\sl`, `'back\\sl'`, `'back\sl'`},
		{"backslash before quote", `a\'b`, `'a\\''b'`, `'a\''b'`},
		{"trailing backslash", `a\`, `'a\\'`, `'a\'`},
		{"control characters", "nl\nnul\x00", `'nl\nnul\0'`, "'nl\nnul\x00'"},
	}
	for _, tc := range cases {
		if got := quoteFor(tc.in, false); got != tc.want {
			t.Errorf("%s: quoteFor(%q, false) = %s, want %s", tc.name, tc.in, got, tc.want)
		}
		if got := quoteFor(tc.in, true); got != tc.wantNBE {
			t.Errorf("%s: quoteFor(%q, true) = %s, want %s", tc.name, tc.in, got, tc.wantNBE)
		}
	}
}

func TestHasNoBackslashEscapes(t *testing.T) {
	cases := []struct {
		mode string
		want bool
	}{
		{"", false},
		{"STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION", false},
		{"NO_BACKSLASH_ESCAPES", true},
		{"ONLY_FULL_GROUP_BY,NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES", true},
		{"NO_BACKSLASH_ESCAPES_NOT", false},
	}
	for _, tc := range cases {
		if got := hasNoBackslashEscapes(tc.mode); got != tc.want {
			t.Errorf("hasNoBackslashEscapes(%q) = %v, want %v", tc.mode, got, tc.want)
		}
	}
}

// Server messages quote what they choke on; for a statement that holds a
// password that can be the password itself. The messages below are the
// ones MariaDB 10.11 and MySQL 9.7 sent (TestChangeSourceErrorsHideThePassword
// provokes them on real servers).
func TestRedactServerError(t *testing.T) {
	const pw = "S3cretS3cretS3cretS3cret"
	cases := []struct {
		name string
		msg  string
		want string
	}{
		{"too long (MariaDB)", "String 'S3cretS3cretS3cretS3cretS3cretS3cretS3cretS3cretS3cretS3cretS3...' is too long for MASTER_PASSWORD (should be no longer than 96)",
			"String '<redacted>' is too long for MASTER_PASSWORD (should be no longer than 96)"},
		{"syntax error with the tail of a password", "You have an error in your SQL syntax; check the manual that corresponds to your MariaDB server version for the right syntax to use near 'w-TAIL', MASTER_USE_GTID=slave_pos, MASTER_SSL=0' at line 1",
			"You have an error in your SQL syntax; check the manual that corresponds to your MariaDB server version for the right syntax to use near '<redacted>' at line 1"},
		{"unterminated quote", "near 'S3cr", "near '<redacted>'"},
		{"unquoted echo", "bad password S3cretS3cretS3cretS3cret here", "bad password <redacted> here"},
		{"nothing quoted", "The password provided for the replication user exceeds the maximum length of 32 characters",
			"The password provided for the replication user exceeds the maximum length of 32 characters"},
	}
	for _, tc := range cases {
		err := redactServerError(fmt.Errorf("wrapped: %w", &mysql.MySQLError{Number: 1470, SQLState: [5]byte{'H', 'Y', '0', '0', '0'}, Message: tc.msg}), pw)
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != 1470 {
			t.Errorf("%s: %v lost the server error's number", tc.name, err)
			continue
		}
		if me.Message != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, me.Message, tc.want)
		}
	}
	plain := errors.New("invalid connection")
	if got := redactServerError(plain, pw); got != plain {
		t.Errorf("a client-side error was changed: %v", got)
	}
}

// The probe's statement of every flavour (built once, probeStatements): the
// variables and status, then that flavour's replica status statements
// (MySQL 8.0's unit-tested here only; MariaDB and MySQL 8.4+ run on real
// servers in TestProbeIsOneRoundTrip).
func TestProbeStatements(t *testing.T) {
	want := map[Flavor][]string{
		FlavorUnknown: {showVariablesSQL, showStatusSQL},
		FlavorMariaDB: {showVariablesSQL, showStatusSQL, "SHOW ALL SLAVES STATUS"},
		FlavorMySQL80: {showVariablesSQL, showStatusSQL, "SHOW SLAVE STATUS", mysqlHeartbeatSQL},
		FlavorMySQL84: {showVariablesSQL, showStatusSQL, "SHOW REPLICA STATUS", mysqlHeartbeatSQL},
	}
	for f, stmts := range want {
		if got := probeSQL(f); got != strings.Join(stmts, ";") {
			t.Errorf("probeSQL(%v) = %q, want %q", f, got, strings.Join(stmts, ";"))
		}
	}
	if got := replicaOnlySQL(FlavorMySQL80); got != "SHOW SLAVE STATUS;"+mysqlHeartbeatSQL {
		t.Errorf("replicaOnlySQL(mysql-8.0) = %q", got)
	}
}
