package agent

import (
	"errors"
	"strings"
	"testing"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/topology"
)

// healthyPreflight is a replica set up the way Regent needs.
func healthyPreflight() preflightInput {
	return preflightInput{
		Name: "db2", Observed: true, PrimaryKnown: true, SemiSync: true,
		Obs: Observation{Reachable: true, ReadOnly: true, ServerID: 2, Replica: &ReplicaObservation{HeartbeatPeriod: 0.25}},
		Snap: &topology.Snapshot{LogBin: true, LogReplicaUpdates: true, GTIDMode: "ON", GTIDStrict: true, BinlogFormat: "ROW",
			ReplicaNetTimeout: 15, SemiSync: topology.SemiSyncStatus{Available: true}},
		// As SHOW GRANTS prints ALL PRIVILEGES: on MySQL the dynamic
		// privileges on their own line.
		Account: &topology.Account{Grants: []string{"GRANT ALL PRIVILEGES ON *.* TO `regent`@`10.0.0.%`",
			"GRANT CONNECTION_ADMIN,REPLICATION_SLAVE_ADMIN,SYSTEM_USER,SYSTEM_VARIABLES_ADMIN ON *.* TO `regent`@`10.0.0.%`"}, ReportHost: "10.0.0.12"},
		User: "regent", Host: "10.0.0.12",
	}
}

func TestPreflight(t *testing.T) {
	every := []string{checkReachable, checkPrivileges, checkServerID, checkReadOnly, checkSuperReadOnly, checkBinlog, checkGTID,
		checkBinlogFormat, checkSemiSync, checkHeartbeat, checkReplicaNetTimeout, checkGrants, checkReportHost}
	lossless := topology.SemiSyncStatus{Available: true, SourceEnabled: true, WaitPoint: "AFTER_SYNC", WaitNoReplica: true,
		TimeoutMillis: 4294967295, WaitForReplicaCount: 1}
	for _, tc := range []struct {
		name   string
		change func(*preflightInput)
		checks []string // the checks reported, in order (nil: every one)
		// bad is the one finding that is not ok: check, severity, words of
		// its message; "" when all are ok.
		bad, sev string
		says     []string
	}{
		{name: "a healthy replica: every check ok", change: func(*preflightInput) {}},
		{name: "not probed yet", change: func(in *preflightInput) { in.Observed = false },
			checks: []string{checkReachable}, bad: checkReachable, sev: api.SeverityWarning, says: []string{"not probed yet"}},
		{name: "unreachable", change: func(in *preflightInput) {
			in.Obs = Observation{Error: topology.ClassRefused, ErrorDetail: "connection refused"}
		},
			checks: []string{checkReachable}, bad: checkReachable, sev: api.SeverityError, says: []string{"unreachable: connection refused"}},
		{name: "access denied", change: func(in *preflightInput) {
			in.Obs = Observation{Error: topology.ClassAccessDenied, ErrorDetail: "Error 1227"}
		}, checks: []string{checkReachable, checkPrivileges}, bad: checkPrivileges, sev: api.SeverityError, says: []string{"lacks privileges", "Error 1227"}},
		{name: "duplicate server_id", change: func(in *preflightInput) { in.SameServerID = "db1" },
			bad: checkServerID, sev: api.SeverityError, says: []string{"server_id 2 is also the server_id of db1"}},
		{name: "writable replica", change: func(in *preflightInput) { in.Obs.ReadOnly = false },
			bad: checkReadOnly, sev: api.SeverityError, says: []string{"a replica is writable"}},
		{name: "writable primary is fine", change: func(in *preflightInput) {
			in.Obs.ReadOnly, in.Primary, in.Obs.Replica, in.Snap.SemiSync, in.WaitFor = false, true, nil, lossless, 1
		}},
		{name: "no primary recorded: a writable instance is not judged", change: func(in *preflightInput) { in.Obs.ReadOnly, in.PrimaryKnown = false, false }},
		{name: "the detailed probe failed", change: func(in *preflightInput) { in.Snap, in.SnapErr = nil, errors.New("i/o timeout") },
			checks: append(every[:4:4], checkBinlog), bad: checkBinlog, sev: api.SeverityWarning, says: []string{"i/o timeout", "not checked"}},
		{name: "a MySQL replica without super_read_only", change: func(in *preflightInput) { in.Snap.Flavor = topology.FlavorMySQL84 },
			bad: checkSuperReadOnly, sev: api.SeverityWarning, says: []string{"super_read_only is OFF on a replica"}},
		{name: "a MySQL replica with super_read_only", change: func(in *preflightInput) { in.Snap.Flavor, in.Snap.SuperReadOnly = topology.FlavorMySQL84, true }},
		{name: "a lossless semi-sync primary", change: func(in *preflightInput) {
			in.Primary, in.Obs.ReadOnly, in.Obs.Replica, in.Snap.SemiSync, in.WaitFor = true, false, nil, lossless, 1
		}},
		{name: "a primary that would fall back to asynchronous commits", change: func(in *preflightInput) {
			in.Primary, in.Obs.ReadOnly, in.Obs.Replica, in.Snap.SemiSync, in.WaitFor = true, false, nil, lossless, 1
			in.Snap.SemiSync.TimeoutMillis = 10000
		}, bad: checkSemiSync, sev: api.SeverityWarning, says: []string{"not lossless", "a timeout of 10s"}},
		{name: "log_slave_updates off", change: func(in *preflightInput) { in.Snap.LogReplicaUpdates = false },
			bad: checkBinlog, sev: api.SeverityError, says: []string{"log_slave_updates is off"}},
		{name: "GTIDs off", change: func(in *preflightInput) { in.Snap.GTIDMode = "OFF" },
			bad: checkGTID, sev: api.SeverityError, says: []string{"gtid_mode=OFF"}},
		{name: "statement binlog", change: func(in *preflightInput) { in.Snap.BinlogFormat = "STATEMENT" },
			bad: checkBinlogFormat, sev: api.SeverityWarning, says: []string{"binlog_format=STATEMENT"}},
		{name: "semi-sync unavailable under semi_sync", change: func(in *preflightInput) { in.Snap.SemiSync.Available = false },
			bad: checkSemiSync, sev: api.SeverityError, says: []string{"not available"}},
		{name: "semi-sync unavailable under async is fine", change: func(in *preflightInput) { in.Snap.SemiSync.Available, in.SemiSync = false, false }},
		{name: "no heartbeat", change: func(in *preflightInput) { in.Obs.Replica.HeartbeatPeriod = 0 },
			bad: checkHeartbeat, sev: api.SeverityWarning, says: []string{"heartbeat period 0.0s"}},
		{name: "short replica_net_timeout", change: func(in *preflightInput) { in.Snap.ReplicaNetTimeout = 4 },
			bad: checkReplicaNetTimeout, sev: api.SeverityWarning, says: []string{"replica_net_timeout=4s", "keeps reconnecting"}},
		{name: "long replica_net_timeout without heartbeats", change: func(in *preflightInput) {
			in.Snap.ReplicaNetTimeout, in.Snap.Replica = 60, &topology.ReplicaStatus{}
			in.Obs.Replica.HeartbeatPeriod = 1
		}, bad: checkReplicaNetTimeout, sev: api.SeverityWarning, says: []string{"60s without heartbeats"}},
		{name: "an account without READ ONLY ADMIN", change: func(in *preflightInput) {
			in.Account.Grants = []string{"GRANT PROCESS, RELOAD, SHUTDOWN, CONNECTION ADMIN, SLAVE MONITOR, REPLICATION SLAVE ADMIN, REPLICATION MASTER ADMIN ON *.* TO `regent`@`%`"}
		}, bad: checkGrants, sev: api.SeverityWarning, says: []string{"lacks READ ONLY ADMIN", "SET GLOBAL read_only"}},
		{name: "a MySQL account without SYSTEM_USER", change: func(in *preflightInput) {
			in.Snap.Flavor, in.Snap.SuperReadOnly = topology.FlavorMySQL84, true
			in.Account.Grants = []string{"GRANT RELOAD, SHUTDOWN, PROCESS, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `regent`@`%`",
				"GRANT CONNECTION_ADMIN,REPLICATION_SLAVE_ADMIN,SYSTEM_VARIABLES_ADMIN ON *.* TO `regent`@`%`"}
		}, bad: checkGrants, sev: api.SeverityWarning, says: []string{"lacks SYSTEM_USER"}},
		{name: "grants not readable", change: func(in *preflightInput) { in.Account, in.AccountErr = nil, errors.New("Error 1141") },
			checks: every[:len(every)-1], bad: checkGrants, sev: api.SeverityWarning, says: []string{"Error 1141", "not checked"}},
		{name: "report_host not set", change: func(in *preflightInput) { in.Account.ReportHost = "" },
			bad: checkReportHost, sev: api.SeverityWarning, says: []string{"report_host is not set", "discovery"}},
		{name: "report_host another address", change: func(in *preflightInput) { in.Account.ReportHost = "db2.old.example" },
			bad: checkReportHost, sev: api.SeverityWarning, says: []string{"report_host is db2.old.example", "10.0.0.12"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := healthyPreflight()
			tc.change(&in)
			fs := preflight(in)
			want := tc.checks
			if want == nil {
				want = every
			}
			var got []string
			for _, f := range fs {
				got = append(got, f.Check)
				if f.Instance != in.Name {
					t.Errorf("finding %+v for instance %q, want %q", f, f.Instance, in.Name)
				}
				switch {
				case f.Check == tc.bad:
					if f.Severity != tc.sev || f.Fix == "" {
						t.Errorf("%s: severity %s, fix %q; want %s with a fix", f.Check, f.Severity, f.Fix, tc.sev)
					}
					for _, w := range tc.says {
						if !strings.Contains(f.Message, w) {
							t.Errorf("%s says %q, want %q in it", f.Check, f.Message, w)
						}
					}
				case f.Severity != api.SeverityOK || f.Message == "" || f.Fix != "":
					t.Errorf("%+v: want ok, with what was found and no fix", f)
				}
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("checks %v, want %v", got, want)
			}
		})
	}
}
