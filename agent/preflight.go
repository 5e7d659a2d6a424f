package agent

import (
	"fmt"
	"strings"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/topology"
)

// The preflight of regentctl check: every check runs on every instance and
// says what it found, ok included, so that an operator can see what was
// checked; a warning or an error comes with its fix. preflight is pure: the
// agent gathers its input (its latest probe, a detailed probe now, the
// replicated state) and the table test in preflight_test.go names a case for
// each finding.

// The checks, in the order they are reported.
const (
	checkReachable         = "reachable"
	checkPrivileges        = "privileges"
	checkServerID          = "server_id"
	checkReadOnly          = "read_only"
	checkSuperReadOnly     = "super_read_only"
	checkBinlog            = "binlog"
	checkGTID              = "gtid"
	checkBinlogFormat      = "binlog_format"
	checkSemiSync          = "semi_sync"
	checkHeartbeat         = "heartbeat"
	checkReplicaNetTimeout = "replica_net_timeout"
	checkGrants            = "grants"
	checkReportHost        = "report_host"
)

// minReplicaNetTimeout is the shortest slave_net_timeout /
// replica_net_timeout the preflight accepts without a warning, in seconds.
const minReplicaNetTimeout = 8

// preflightInput is what the checks of one instance look at.
type preflightInput struct {
	Name string
	// Observed: the agent has probed it at least once; Obs is its latest
	// probe.
	Observed bool
	Obs      Observation
	// Snap is a detailed probe taken for the check (binlog, GTID and
	// timeout settings); nil with SnapErr when it failed.
	Snap    *topology.Snapshot
	SnapErr error
	// SameServerID names an instance checked before with the same
	// server_id ("" when none).
	SameServerID string
	// PrimaryKnown: the replicated state names a primary; Primary: it is
	// this instance.
	PrimaryKnown, Primary bool
	// SemiSync: the cluster's durability is semi_sync; WaitFor is its
	// semi_sync_wait_for.
	SemiSync bool
	WaitFor  int
	// Account is Regent's account's grants and the server's report_host
	// (nil with AccountErr when they could not be read); User is the
	// account's name and Host the host of the instance's configured
	// address, for the fixes.
	Account    *topology.Account
	AccountErr error
	User, Host string
}

// preflight runs every check on one instance.
func preflight(in preflightInput) []api.Finding {
	var out []api.Finding
	add := func(check, sev, msg, fix string) {
		out = append(out, api.Finding{Check: check, Instance: in.Name, Severity: sev, Message: msg, Fix: fix})
	}
	ok := func(check, msg string) { add(check, api.SeverityOK, msg, "") }
	o := in.Obs
	switch {
	case !in.Observed:
		add(checkReachable, api.SeverityWarning, "not probed yet", "wait a probe interval and check again")
		return out
	case !o.Reachable && (o.Error == topology.ClassAuth || o.Error == topology.ClassAccessDenied):
		add(checkReachable, api.SeverityOK, "mysqld answers", "")
		add(checkPrivileges, api.SeverityError, "Regent's MySQL user cannot log in or lacks privileges: "+o.ErrorDetail,
			"create Regent's user with the grants in deploy/regent/users-mariadb.sql or users-mysql.sql, and check mysql.user and the password file")
		return out
	case !o.Reachable:
		add(checkReachable, api.SeverityError, "unreachable: "+o.ErrorDetail, "start mysqld or fix the address in the configuration")
		return out
	}
	ok(checkReachable, "reachable")
	ok(checkPrivileges, "Regent's user logs in and reads what it needs")
	if in.SameServerID != "" {
		add(checkServerID, api.SeverityError, fmt.Sprintf("server_id %d is also the server_id of %s", o.ServerID, in.SameServerID), "give every server a unique server_id in my.cnf")
	} else {
		ok(checkServerID, fmt.Sprintf("server_id %d is unique", o.ServerID))
	}
	// Before a primary is recorded (or on an agent that has not applied it
	// yet) a writable instance is not known to be a replica.
	switch {
	case !in.PrimaryKnown:
		ok(checkReadOnly, "no primary recorded yet: not judged")
	case in.Primary:
		ok(checkReadOnly, "the primary: Regent sets read_only")
	case !o.ReadOnly && !o.SuperReadOnly:
		add(checkReadOnly, api.SeverityError, "a replica is writable", "SET GLOBAL read_only=ON, and put read_only=ON in my.cnf (only Regent turns it off on the primary)")
	default:
		ok(checkReadOnly, "read-only, as a replica must be")
	}
	if in.Snap == nil {
		add(checkBinlog, api.SeverityWarning, fmt.Sprintf("the detailed probe failed (%v): binlog, GTID, semi-sync and timeout settings not checked", in.SnapErr), "check again; if it keeps failing, see the agent's log")
		return out
	}
	s := in.Snap
	switch {
	case !s.Flavor.IsMySQL():
		ok(checkSuperReadOnly, "a MySQL setting: none here")
	case in.Primary || !in.PrimaryKnown:
		ok(checkSuperReadOnly, "not judged on the primary, or before one is recorded")
	case !s.SuperReadOnly:
		add(checkSuperReadOnly, api.SeverityWarning, "super_read_only is OFF on a replica: an account with SUPER or CONNECTION_ADMIN can still write to it",
			"SET GLOBAL super_read_only=ON, and put super_read_only=ON in my.cnf (Regent sets it with every fence and clears it on promotion)")
	default:
		ok(checkSuperReadOnly, "ON")
	}
	if !s.LogBin || !s.LogReplicaUpdates {
		add(checkBinlog, api.SeverityError, "log_bin or log_slave_updates is off", "set log_bin and log_slave_updates=ON in my.cnf: every instance must be able to become a primary")
	} else {
		ok(checkBinlog, "log_bin and log_slave_updates are on")
	}
	if s.GTIDMode != "ON" || !s.GTIDStrict {
		add(checkGTID, api.SeverityError, fmt.Sprintf("GTIDs: gtid_mode=%s, strict/consistency=%v", s.GTIDMode, s.GTIDStrict),
			"MySQL: gtid_mode=ON and enforce_gtid_consistency=ON; MariaDB: gtid_strict_mode=ON")
	} else {
		ok(checkGTID, "GTIDs on, strict")
	}
	if s.BinlogFormat != "ROW" {
		add(checkBinlogFormat, api.SeverityWarning, "binlog_format="+s.BinlogFormat, "set binlog_format=ROW")
	} else {
		ok(checkBinlogFormat, "binlog_format=ROW")
	}
	switch {
	case !in.SemiSync:
		ok(checkSemiSync, "durability is async: not needed")
	case !s.SemiSync.Available:
		add(checkSemiSync, api.SeverityError, "semi-synchronous replication is not available", "MySQL: plugin-load-add=semisync_source.so;semisync_replica.so in my.cnf")
	case in.Primary:
		if why := notLossless(s.SemiSync, s.Flavor, in.WaitFor); why != "" {
			add(checkSemiSync, api.SeverityWarning, "the primary is not lossless semi-sync: "+why,
				"Regent configures it (the configure-semi-sync repair, at once while it leads); if this stays, see the leader's log: the account needs SYSTEM_VARIABLES_ADMIN / SUPER")
		} else {
			ok(checkSemiSync, "the primary is lossless semi-sync (AFTER_SYNC, waits with no replica, no timeout it would reach)")
		}
	default:
		ok(checkSemiSync, "available (Regent configures it)")
	}
	var hb float64 = -1 // not a replica
	if r := o.Replica; r != nil {
		hb = r.HeartbeatPeriod
	}
	switch {
	case hb < 0:
		ok(checkHeartbeat, "not a replica")
	case hb == 0 || hb > 2:
		add(checkHeartbeat, api.SeverityWarning, fmt.Sprintf("replication heartbeat period %.1fs: a dead source is noticed late", hb),
			"repoint with MASTER_HEARTBEAT_PERIOD / SOURCE_HEARTBEAT_PERIOD of 1s or less (Regent does when it repoints)")
	default:
		ok(checkHeartbeat, fmt.Sprintf("heartbeat every %.2gs", hb))
	}
	// Short: on a lossy or jittery link TCP's backoff alone stalls a stream
	// for seconds, the replica reconnects, and each reconnect takes a dozen
	// round trips under the same timeout; replicas that reconnect at once
	// leave a semi-sync primary unable to commit (the soak in
	// BENCHMARKS.md, with 4 s). Regent does not need the replica to notice a
	// dead source: it watches heartbeat progress.
	switch {
	case s.ReplicaNetTimeout > 0 && s.ReplicaNetTimeout < minReplicaNetTimeout:
		add(checkReplicaNetTimeout, api.SeverityWarning, fmt.Sprintf("replica_net_timeout=%ds: on a lossy or slow link this replica keeps reconnecting, and a semi-sync primary whose replicas reconnect at once cannot commit", s.ReplicaNetTimeout),
			fmt.Sprintf("SET GLOBAL slave_net_timeout=15 (replica_net_timeout on MySQL), and the same in my.cnf; %ds or more passes. Regent notices a dead source by the heartbeats, not by this timeout", minReplicaNetTimeout))
	case s.ReplicaNetTimeout > 10 && s.Replica != nil && s.Replica.HeartbeatPeriod == 0:
		add(checkReplicaNetTimeout, api.SeverityWarning, fmt.Sprintf("replica_net_timeout=%ds without heartbeats: a dead source is noticed only after that long", s.ReplicaNetTimeout),
			"repoint with a heartbeat period of 1s or less (Regent does when it repoints), and keep slave_net_timeout/replica_net_timeout at about 15s")
	default:
		ok(checkReplicaNetTimeout, fmt.Sprintf("%ds", s.ReplicaNetTimeout))
	}
	accountChecks(in, s.Flavor, add, ok)
	return out
}

// accountChecks checks Regent's account's grants and the server's
// report_host.
func accountChecks(in preflightInput, f topology.Flavor, add func(check, sev, msg, fix string), ok func(check, msg string)) {
	a := in.Account
	if a == nil {
		add(checkGrants, api.SeverityWarning, fmt.Sprintf("the grants and report_host could not be read (%v): not checked", in.AccountErr), "check again; if it keeps failing, see the agent's log")
		return
	}
	if miss := topology.MissingPrivileges(f, a.Grants); len(miss) > 0 {
		var names, why []string
		for _, p := range miss {
			names = append(names, p.Name)
			why = append(why, p.Name+": "+p.Why)
		}
		user := in.User
		if user == "" {
			user = "the account"
		}
		add(checkGrants, api.SeverityWarning, fmt.Sprintf("Regent's account lacks %s on *.* (%s); the actions that need them fail when Regent acts (SHOW GRANTS does not expand roles: privileges from a role look missing)",
			strings.Join(names, ", "), strings.Join(why, "; ")),
			fmt.Sprintf("GRANT %s ON *.* TO %s@'<its host>' (deploy/regent/users-mariadb.sql or users-mysql.sql lists every grant and why)", strings.Join(names, ", "), user))
	} else {
		ok(checkGrants, "Regent's account holds every global privilege its actions need")
	}
	switch {
	case a.ReportHost == "":
		add(checkReportHost, api.SeverityWarning, "report_host is not set: as a replica it is listed by SHOW SLAVE HOSTS / SHOW REPLICAS without an address, and discovery (regentctl discover) cannot follow it",
			fmt.Sprintf("report_host=%s (and report_port) in my.cnf, then restart mysqld", orDefault(in.Host, "<its address>")))
	case in.Host != "" && !strings.EqualFold(a.ReportHost, in.Host):
		add(checkReportHost, api.SeverityWarning, fmt.Sprintf("report_host is %s, but the configuration reaches it at %s: discovery lists it under an address Regent does not know", a.ReportHost, in.Host),
			fmt.Sprintf("report_host=%s in my.cnf (restart mysqld), or the instance's address in regent.yaml", in.Host))
	default:
		ok(checkReportHost, "report_host="+a.ReportHost)
	}
}

// notLossless says why a source's semi-sync settings are not lossless (""
// when they are): the same rules as the analysis's SemiSyncNotEnforced.
func notLossless(ss topology.SemiSyncStatus, f topology.Flavor, waitFor int) string {
	var why []string
	if !ss.SourceEnabled {
		why = append(why, "the source side is off")
	}
	if !strings.EqualFold(ss.WaitPoint, "AFTER_SYNC") {
		why = append(why, fmt.Sprintf("wait point %q, not AFTER_SYNC", ss.WaitPoint))
	}
	if !ss.WaitNoReplica {
		why = append(why, "wait_no_replica is OFF")
	}
	if time.Duration(ss.TimeoutMillis)*time.Millisecond < failover.LosslessMinTimeout {
		why = append(why, fmt.Sprintf("a timeout of %v, after which it commits asynchronously", time.Duration(ss.TimeoutMillis)*time.Millisecond))
	}
	if f.IsMySQL() && ss.WaitForReplicaCount != max(waitFor, 1) {
		why = append(why, fmt.Sprintf("it waits for %d acknowledgements, semi_sync_wait_for is %d", ss.WaitForReplicaCount, waitFor))
	}
	return strings.Join(why, "; ")
}
