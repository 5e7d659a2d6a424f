package topology

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

func loadRow(t *testing.T, name string) row {
	t.Helper()
	b, err := os.ReadFile("testdata/status/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var r row
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func i64(v int64) *int64 { return &v }

// Captured replica status of each flavour and version, parsed into one shape.
func TestParseCapturedReplicaStatus(t *testing.T) {
	cases := []struct {
		file string
		want ReplicaStatus
	}{
		{"mariadb-running.json", ReplicaStatus{
			SourceHost: "127.0.0.1", SourcePort: 33805, SourceUser: "repl", IOState: IORunning, SQLRunning: true,
			SecondsBehind: i64(0), SourceLogFile: "mysql-bin.000001", ReadSourceLogPos: 806,
			RelaySourceLogFile: "mysql-bin.000001", ExecSourceLogPos: 806, AutoPosition: true, UsingGTID: "Slave_Pos",
			RetrievedGTID: "0-945502-2", HeartbeatPeriod: 1, SourceServerID: 945502,
		}},
		{"mariadb-source-dead.json", ReplicaStatus{
			SourceHost: "127.0.0.1", SourcePort: 33805, SourceUser: "repl", IOState: IOConnecting, SQLRunning: true,
			LastIOErrno: 2003, SourceLogFile: "mysql-bin.000001", ReadSourceLogPos: 806,
			RelaySourceLogFile: "mysql-bin.000001", ExecSourceLogPos: 806, AutoPosition: true, UsingGTID: "Slave_Pos",
			RetrievedGTID: "0-945502-2", HeartbeatPeriod: 1, SourceServerID: 945502,
		}},
		{"mysql-running.json", ReplicaStatus{
			SourceHost: "127.0.0.1", SourcePort: 38763, SourceUser: "repl", IOState: IORunning, SQLRunning: true,
			SecondsBehind: i64(0), SourceLogFile: "binlog.000001", ReadSourceLogPos: 742,
			RelaySourceLogFile: "binlog.000001", ExecSourceLogPos: 158, AutoPosition: true,
			RetrievedGTID: "83d68d4d-eb31-11f1-8388-02fc00000001:1-2", ExecutedGTID: "83d68d4d-eb31-11f1-8388-02fc00000001:1-2",
			SSLAllowed: true, SourceServerID: 945504,
		}},
		{"mysql-source-dead.json", ReplicaStatus{
			SourceHost: "127.0.0.1", SourcePort: 38763, SourceUser: "repl", IOState: IOConnecting, SQLRunning: true,
			LastIOErrno: 2003, SourceLogFile: "binlog.000001", ReadSourceLogPos: 742,
			RelaySourceLogFile: "binlog.000001", ExecSourceLogPos: 742, AutoPosition: true,
			RetrievedGTID: "83d68d4d-eb31-11f1-8388-02fc00000001:1-2", ExecutedGTID: "83d68d4d-eb31-11f1-8388-02fc00000001:1-2",
			SSLAllowed: true, SourceServerID: 945504,
		}},
		{"mysql80-delayed-broken.json", ReplicaStatus{
			SourceHost: "db1.example.internal", SourcePort: 3306, SourceUser: "repl", IOState: IORunning, SQLRunning: false,
			LastSQLErrno: 1062, SQLDelay: 3600, SecondsBehind: nil, SourceLogFile: "binlog.000012", ReadSourceLogPos: 91823,
			RelaySourceLogFile: "binlog.000012", ExecSourceLogPos: 89740, AutoPosition: true,
			RetrievedGTID: "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5120",
			ExecutedGTID:  "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5003,4a6f9c2e-0b1d-11ee-8f4e-0242ac120002:1-17",
			SSLAllowed:    true, SourceServerID: 1,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			r := loadRow(t, tc.file)
			got, err := parseReplicaStatus(r)
			if err != nil {
				t.Fatal(err)
			}
			// Error texts are long; check they were read, then compare the rest.
			if (got.LastIOErrno != 0) != (got.LastIOError != "") || (got.LastSQLErrno != 0) != (got.LastSQLError != "") {
				t.Errorf("error numbers and texts disagree: %d %q / %d %q", got.LastIOErrno, got.LastIOError, got.LastSQLErrno, got.LastSQLError)
			}
			got.LastIOError, got.LastSQLError = "", ""
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("parsed\n%+v\nwant\n%+v", *got, tc.want)
			}
			if got.ExecutedGTID != "" {
				if _, err := ParseMySQLGTIDSet(got.ExecutedGTID); err != nil {
					t.Errorf("Executed_Gtid_Set does not parse: %v", err)
				}
			}
		})
	}
}

func TestParseReplicaStatusIOStates(t *testing.T) {
	cases := map[string]IOState{"Yes": IORunning, "Connecting": IOConnecting, "Preparing": IOConnecting, "No": IOStopped}
	for in, want := range cases {
		r := loadRow(t, "mariadb-running.json")
		r["Slave_IO_Running"] = in
		got, err := parseReplicaStatus(r)
		if err != nil || got.IOState != want {
			t.Errorf("IO state %q: got %v, %v; want %v", in, got, err, want)
		}
	}
}

func TestParseReplicaStatusRejectsMalformed(t *testing.T) {
	base := func() row { return loadRow(t, "mysql-running.json") }
	cases := []struct {
		name   string
		mutate func(row)
		want   string
	}{
		{"no IO column", func(r row) { delete(r, "Replica_IO_Running") }, "no IO thread column"},
		{"unknown IO state", func(r row) { r["Replica_IO_Running"] = "Maybe" }, "IO thread state"},
		{"port not a number", func(r row) { r["Source_Port"] = "33o6" }, "Source_Port"},
		{"lag not a number", func(r row) { r["Seconds_Behind_Source"] = "soon" }, "Seconds_Behind_Source"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			tc.mutate(r)
			_, err := parseReplicaStatus(r)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func FuzzParseReplicaStatus(f *testing.F) {
	f.Add("Yes", "Yes", "3306", "0", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5", "1.000", "Slave_Pos")
	f.Add("Connecting", "No", "x", "NULL", "", "", "No")
	f.Fuzz(func(t *testing.T, io, sqlT, port, lag, gtid, hb, using string) {
		r := row{"Slave_IO_Running": io, "Slave_SQL_Running": sqlT, "Master_Port": port,
			"Seconds_Behind_Master": lag, "Retrieved_Gtid_Set": gtid, "Slave_heartbeat_period": hb, "Using_Gtid": using}
		s, err := parseReplicaStatus(r)
		if err == nil && s.IOState != IORunning && s.IOState != IOConnecting && s.IOState != IOStopped {
			t.Fatalf("accepted IO state %q", s.IOState)
		}
	})
}

func TestParseFlavor(t *testing.T) {
	cases := []struct {
		version, comment string
		want             Flavor
		err              bool
	}{
		{"10.11.19-MariaDB-0+deb12u1-log", "Debian 12", FlavorMariaDB, false},
		{"5.5.5-10.6.12-MariaDB", "", FlavorMariaDB, false},
		{"8.0.36", "MySQL Community Server - GPL", FlavorMySQL80, false},
		{"8.0.22-13", "Percona Server", FlavorMySQL80, false},
		{"8.4.3", "MySQL Community Server - GPL", FlavorMySQL84, false},
		{"9.7.4-2", "(Debian)", FlavorMySQL84, false},
		{"5.7.44-log", "MySQL Community Server (GPL)", FlavorUnknown, true},
		{"garbage", "", FlavorUnknown, true},
	}
	for _, tc := range cases {
		got, err := ParseFlavor(tc.version, tc.comment)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("ParseFlavor(%q, %q) = %v, %v; want %v, error %v", tc.version, tc.comment, got, err, tc.want, tc.err)
		}
	}
}
