package topology

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Column names of SHOW SLAVE STATUS (MariaDB, MySQL 8.0), SHOW ALL SLAVES
// STATUS (MariaDB) and SHOW REPLICA STATUS (MySQL 8.0.22+): each field lists
// the names it may go by, the first present wins. This table is the one place
// where a renamed column is taught to Regent.
var replicaColumns = struct {
	sourceHost, sourcePort, sourceUser, ioRunning, sqlRunning,
	lastIOErrno, lastIOError, lastSQLErrno, lastSQLError,
	secondsBehind, sqlDelay, sourceLogFile, readPos, relaySourceLogFile, execPos,
	autoPosition, usingGTID, retrievedGTID, executedGTID, gtidIOPos,
	receivedHeartbeats, heartbeatPeriod, sslAllowed, sourceServerID, channel []string
}{
	sourceHost:         []string{"Source_Host", "Master_Host"},
	sourcePort:         []string{"Source_Port", "Master_Port"},
	sourceUser:         []string{"Source_User", "Master_User"},
	ioRunning:          []string{"Replica_IO_Running", "Slave_IO_Running"},
	sqlRunning:         []string{"Replica_SQL_Running", "Slave_SQL_Running"},
	lastIOErrno:        []string{"Last_IO_Errno"},
	lastIOError:        []string{"Last_IO_Error"},
	lastSQLErrno:       []string{"Last_SQL_Errno"},
	lastSQLError:       []string{"Last_SQL_Error"},
	secondsBehind:      []string{"Seconds_Behind_Source", "Seconds_Behind_Master"},
	sqlDelay:           []string{"SQL_Delay"},
	sourceLogFile:      []string{"Source_Log_File", "Master_Log_File"},
	readPos:            []string{"Read_Source_Log_Pos", "Read_Master_Log_Pos"},
	relaySourceLogFile: []string{"Relay_Source_Log_File", "Relay_Master_Log_File"},
	execPos:            []string{"Exec_Source_Log_Pos", "Exec_Master_Log_Pos"},
	autoPosition:       []string{"Auto_Position"},
	usingGTID:          []string{"Using_Gtid"},
	retrievedGTID:      []string{"Retrieved_Gtid_Set"},
	executedGTID:       []string{"Executed_Gtid_Set"},
	gtidIOPos:          []string{"Gtid_IO_Pos"},
	receivedHeartbeats: []string{"Slave_received_heartbeats", "Replica_received_heartbeats"},
	heartbeatPeriod:    []string{"Slave_heartbeat_period", "Replica_heartbeat_period"},
	sslAllowed:         []string{"Source_SSL_Allowed", "Master_SSL_Allowed"},
	sourceServerID:     []string{"Source_Server_Id", "Master_Server_Id"},
	channel:            []string{"Channel_Name", "Connection_name"},
}

type row map[string]string

func (r row) get(names []string) (string, bool) {
	for _, n := range names {
		if v, ok := r[n]; ok {
			return v, true
		}
	}
	return "", false
}

func (r row) str(names []string) string {
	v, _ := r.get(names)
	return strings.TrimSpace(v)
}

func (r row) int64(names []string) (int64, error) {
	v, ok := r.get(names)
	v = strings.TrimSpace(v)
	if !ok || v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("column %s: %q is not a number", names[0], v)
	}
	return n, nil
}

// parseReplicaStatus maps one row of replica status to ReplicaStatus.
// Missing columns leave their field zero; a column with a malformed value is
// an error, so that a new server version that changes a format is noticed
// instead of misread.
func parseReplicaStatus(r row) (*ReplicaStatus, error) {
	c := &replicaColumns
	if _, ok := r.get(c.ioRunning); !ok {
		return nil, fmt.Errorf("replica status has no IO thread column (%s)", strings.Join(c.ioRunning, " or "))
	}
	s := &ReplicaStatus{
		SourceHost:         r.str(c.sourceHost),
		SourceUser:         r.str(c.sourceUser),
		IOState:            IOState(r.str(c.ioRunning)),
		SQLRunning:         strings.EqualFold(r.str(c.sqlRunning), "Yes"),
		LastIOError:        r.str(c.lastIOError),
		LastSQLError:       r.str(c.lastSQLError),
		SourceLogFile:      r.str(c.sourceLogFile),
		RelaySourceLogFile: r.str(c.relaySourceLogFile),
		UsingGTID:          r.str(c.usingGTID),
		ExecutedGTID:       compactGTIDText(r.str(c.executedGTID)),
		SSLAllowed:         strings.EqualFold(r.str(c.sslAllowed), "Yes"),
		ChannelName:        r.str(c.channel),
	}
	switch s.IOState {
	case IORunning, IOConnecting, IOStopped:
	case "Preparing":
		// MariaDB, while the IO thread starts: not yet receiving.
		s.IOState = IOConnecting
	default:
		return nil, fmt.Errorf("IO thread state %q is none of Yes, Connecting, Preparing, No", s.IOState)
	}
	if v, ok := r.get(c.retrievedGTID); ok {
		s.RetrievedGTID = compactGTIDText(v)
	} else {
		s.RetrievedGTID = r.str(c.gtidIOPos)
	}
	var err error
	var n int64
	fields := []struct {
		names []string
		set   func(int64)
	}{
		{c.sourcePort, func(v int64) { s.SourcePort = int(v) }},
		{c.lastIOErrno, func(v int64) { s.LastIOErrno = int(v) }},
		{c.lastSQLErrno, func(v int64) { s.LastSQLErrno = int(v) }},
		{c.sqlDelay, func(v int64) { s.SQLDelay = v }},
		{c.readPos, func(v int64) { s.ReadSourceLogPos = uint64(v) }},
		{c.execPos, func(v int64) { s.ExecSourceLogPos = uint64(v) }},
		{c.receivedHeartbeats, func(v int64) { s.ReceivedHeartbeats = uint64(v) }},
		{c.sourceServerID, func(v int64) { s.SourceServerID = uint32(v) }},
	}
	for _, f := range fields {
		if n, err = r.int64(f.names); err != nil {
			return nil, err
		}
		f.set(n)
	}
	if v, ok := r.get(c.secondsBehind); ok && strings.TrimSpace(v) != "" && !strings.EqualFold(v, "NULL") {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("column %s: %q is not a number", c.secondsBehind[0], v)
		}
		s.SecondsBehind = &n
	}
	if v := r.str(c.heartbeatPeriod); v != "" {
		p, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("column %s: %q is not a number", c.heartbeatPeriod[0], v)
		}
		s.HeartbeatPeriod = p
	}
	if s.UsingGTID != "" {
		s.AutoPosition = !strings.EqualFold(s.UsingGTID, "No")
	} else {
		s.AutoPosition = r.str(c.autoPosition) == "1"
	}
	return s, nil
}

// compactGTIDText removes the newlines MySQL puts after each comma of a long
// GTID set.
func compactGTIDText(s string) string {
	return strings.Join(strings.Fields(s), "")
}

// pickReplicaRow chooses the default replication connection: the row whose
// channel/connection name is empty, or the only row.
func pickReplicaRow(rows []map[string]string) (row, bool) {
	if len(rows) == 0 {
		return nil, false
	}
	for _, r := range rows {
		if row(r).str(replicaColumns.channel) == "" {
			return r, true
		}
	}
	return rows[0], true
}

func parseBoolVar(v string) bool {
	switch strings.ToUpper(strings.TrimSpace(v)) {
	case "ON", "1", "YES", "TRUE":
		return true
	}
	return false
}

// applyVariables fills s from SHOW GLOBAL VARIABLES / STATUS output.
func applyVariables(s *Snapshot, vars, status map[string]string) error {
	var err error
	if s.Flavor, err = ParseFlavor(vars["version"], vars["version_comment"]); err != nil {
		return err
	}
	id, err := strconv.ParseUint(strings.TrimSpace(vars["server_id"]), 10, 32)
	if err != nil {
		return fmt.Errorf("server_id %q: %w", vars["server_id"], err)
	}
	s.ServerID = uint32(id)
	s.ServerUUID = vars["server_uuid"]
	s.Version = vars["version"]
	s.ReadOnly = parseBoolVar(vars["read_only"])
	s.SuperReadOnly = parseBoolVar(vars["super_read_only"])
	s.LogBin = parseBoolVar(vars["log_bin"])
	if v, ok := vars["log_replica_updates"]; ok {
		s.LogReplicaUpdates = parseBoolVar(v)
	} else {
		s.LogReplicaUpdates = parseBoolVar(vars["log_slave_updates"])
	}
	s.BinlogFormat = vars["binlog_format"]
	timeout := vars["replica_net_timeout"]
	if timeout == "" {
		timeout = vars["slave_net_timeout"]
	}
	if timeout != "" {
		if s.ReplicaNetTimeout, err = strconv.ParseInt(timeout, 10, 64); err != nil {
			return fmt.Errorf("replica_net_timeout %q: %w", timeout, err)
		}
	}
	if s.Flavor == FlavorMariaDB {
		s.GTIDMode = "ON"
		s.GTIDStrict = parseBoolVar(vars["gtid_strict_mode"])
		s.GTIDCurrentPos, s.GTIDSlavePos, s.GTIDBinlogPos = vars["gtid_current_pos"], vars["gtid_slave_pos"], vars["gtid_binlog_pos"]
		if s.Executed, err = ParseMariaDBGTIDState(vars["gtid_binlog_state"]); err != nil {
			return fmt.Errorf("gtid_binlog_state: %w", err)
		}
	} else {
		s.GTIDMode = vars["gtid_mode"]
		s.GTIDStrict = parseBoolVar(vars["enforce_gtid_consistency"])
		if s.Executed, err = ParseMySQLGTIDSet(compactGTIDText(vars["gtid_executed"])); err != nil {
			return fmt.Errorf("gtid_executed: %w", err)
		}
	}

	names := s.Flavor.semiSync(vars)
	_, s.SemiSync.Available = vars[names.sourceEnabled]
	if !s.SemiSync.Available {
		_, s.SemiSync.Available = vars[names.replicaEnabled]
	}
	s.SemiSync.SourceEnabled = parseBoolVar(vars[names.sourceEnabled])
	s.SemiSync.ReplicaEnabled = parseBoolVar(vars[names.replicaEnabled])
	s.SemiSync.WaitPoint = vars[names.waitPoint]
	s.SemiSync.WaitNoReplica = parseBoolVar(vars[names.waitNoReplica])
	s.SemiSync.TimeoutMillis, _ = strconv.ParseInt(vars[names.timeout], 10, 64)
	s.SemiSync.WaitForReplicaCount = 1
	if v, ok := vars[names.waitCount]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%s %q: %w", names.waitCount, v, err)
		}
		s.SemiSync.WaitForReplicaCount = n
	}
	s.SemiSync.SourceActive = parseBoolVar(status[names.sourceStatus])
	s.SemiSync.ReplicaActive = parseBoolVar(status[names.replicaStatus])
	s.SemiSync.SourceClients, _ = strconv.Atoi(status[names.clients])

	s.Questions, _ = strconv.ParseUint(status["Questions"], 10, 64)
	s.ThreadsConnected, _ = strconv.ParseUint(status["Threads_connected"], 10, 64)
	up, _ := strconv.ParseInt(status["Uptime"], 10, 64)
	s.Uptime = time.Duration(up) * time.Second
	return nil
}
