package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/regentdb/regent/api"
)

// goldenCheck is a preflight as an agent returns it: every check of every
// instance, a warning and an error with their fixes, one instance not
// reachable.
func goldenCheck() api.CheckReport {
	ok := func(inst, check, msg string) api.Finding {
		return api.Finding{Instance: inst, Check: check, Severity: api.SeverityOK, Message: msg}
	}
	var fs []api.Finding
	for _, inst := range []string{"db1", "db2"} {
		fs = append(fs, ok(inst, "reachable", "reachable"), ok(inst, "privileges", "Regent's user logs in and reads what it needs"),
			ok(inst, "server_id", "server_id 11 is unique"), ok(inst, "read_only", "read-only, as a replica must be"),
			ok(inst, "binlog", "log_bin and log_slave_updates are on"), ok(inst, "gtid", "GTIDs on, strict"))
	}
	fs = append(fs,
		api.Finding{Instance: "db2", Check: "binlog_format", Severity: api.SeverityWarning, Message: "binlog_format=STATEMENT", Fix: "set binlog_format=ROW"},
		api.Finding{Instance: "db2", Check: "replica_net_timeout", Severity: api.SeverityWarning,
			Message: "replica_net_timeout=4s: on a lossy or slow link this replica keeps reconnecting, and a semi-sync primary whose replicas reconnect at once cannot commit",
			Fix:     "SET GLOBAL slave_net_timeout=15 (replica_net_timeout on MySQL), and the same in my.cnf; 8s or more passes. Regent notices a dead source by the heartbeats, not by this timeout"},
		api.Finding{Instance: "db3", Check: "reachable", Severity: api.SeverityError, Message: "unreachable: dial tcp 10.0.0.3:3306: connect: connection refused",
			Fix: "start mysqld or fix the address in the configuration"})
	return api.CheckReport{Cluster: "main", CheckedAt: time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC), Findings: fs}
}

// Every check of every instance, grouped by instance, at 80 and 200
// columns (testdata/check-*.golden).
func TestCheckGolden(t *testing.T) {
	for _, width := range []int{80, 200} {
		var b bytes.Buffer
		renderCheck(&b, goldenCheck(), width, "3s ago")
		matchGolden(t, "check", width, b.String())
	}
}
