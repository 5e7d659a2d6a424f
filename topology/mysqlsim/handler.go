package mysqlsim

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
)

// handler answers one connection's statements.
type handler struct {
	server.EmptyHandler
	s    *Server
	sess *session
	conn *server.Conn
}

func (h *handler) UseDB(string) error { return nil }

// statement is one emulated statement: a pattern and what it does.
type statement struct {
	re *regexp.Regexp
	do func(h *handler, m []string) (*mysql.Result, error)
}

var (
	inListRE = regexp.MustCompile(`'([^']*)'`)
	// statements are tried in order; the first match answers.
	statements = []statement{
		{re(`^SHOW GLOBAL VARIABLES WHERE Variable_name IN \((.*)\)$`), func(h *handler, m []string) (*mysql.Result, error) {
			return h.nameValues(m[1], h.s.variables)
		}},
		{re(`^SHOW GLOBAL STATUS WHERE Variable_name IN \((.*)\)$`), func(h *handler, m []string) (*mysql.Result, error) {
			return h.nameValues(m[1], h.s.status)
		}},
		{re(`^SHOW (ALL SLAVES|SLAVE) STATUS$`), func(h *handler, m []string) (*mysql.Result, error) {
			return h.s.replicaStatus(m[1] == "ALL SLAVES")
		}},
		{re(`^SELECT @@(?:GLOBAL\.|SESSION\.)?([a-z_]+)$`), func(h *handler, m []string) (*mysql.Result, error) {
			v, ok := h.s.variables()[strings.ToLower(m[1])]
			if !ok {
				return nil, mysql.NewError(mysql.ER_UNKNOWN_SYSTEM_VARIABLE, fmt.Sprintf("Unknown system variable '%s'", m[1]))
			}
			return one("@@"+m[1], numericBool(v)), nil
		}},
		{re(`^SELECT @@version, @@version_comment$`), func(h *handler, _ []string) (*mysql.Result, error) {
			return rows([]string{"@@version", "@@version_comment"}, [][]any{{Version, VersionComment}})
		}},
		{re(`^SELECT CONNECTION_ID\(\)$`), func(h *handler, _ []string) (*mysql.Result, error) {
			return one("CONNECTION_ID()", strconv.FormatUint(uint64(h.sess.id), 10)), nil
		}},
		{re(`^SELECT 1$`), func(*handler, []string) (*mysql.Result, error) { return one("1", "1"), nil }},
		{re(`^SET GLOBAL ([a-z_]+)\s*=\s*'?([^']*)'?$`), func(h *handler, m []string) (*mysql.Result, error) {
			return h.s.setGlobal(strings.ToLower(m[1]), m[2])
		}},
		{re(`^SET @(master_heartbeat_period|slave_connect_state|mariadb_slave_capability|master_binlog_checksum) = .*$`), func(*handler, []string) (*mysql.Result, error) {
			return ok(), nil
		}},
		{re(`^STOP SLAVE( IO_THREAD| SQL_THREAD)?$`), func(h *handler, m []string) (*mysql.Result, error) {
			return h.s.threads(false, strings.TrimSpace(m[1]))
		}},
		{re(`^START SLAVE( IO_THREAD| SQL_THREAD)?$`), func(h *handler, m []string) (*mysql.Result, error) {
			return h.s.threads(true, strings.TrimSpace(m[1]))
		}},
		{re(`^CHANGE MASTER TO (.*)$`), func(h *handler, m []string) (*mysql.Result, error) {
			return h.s.changeMaster(m[1])
		}},
		{re(`^RESET SLAVE ALL$`), func(h *handler, _ []string) (*mysql.Result, error) { return h.s.resetSlaveAll() }},
		{re(`^SELECT MASTER_GTID_WAIT\('([^']*)', ([0-9.]+)\)$`), func(h *handler, m []string) (*mysql.Result, error) {
			return h.s.gtidWait(m[1], m[2])
		}},
		{re(`^SHOW FULL PROCESSLIST$`), func(h *handler, _ []string) (*mysql.Result, error) { return h.s.processList() }},
		{re(`^SELECT (.+) FROM information_schema\.PROCESSLIST WHERE (.*)$`), func(h *handler, m []string) (*mysql.Result, error) {
			return h.s.selectProcesses(m[1], m[2])
		}},
		{re(`^KILL (?:CONNECTION )?([0-9]+)$`), func(h *handler, m []string) (*mysql.Result, error) { return h.s.kill(m[1]) }},
		{re(`^SHOW SLAVE HOSTS$`), func(h *handler, _ []string) (*mysql.Result, error) { return h.s.slaveHosts() }},
		{re(`^FLUSH BINARY LOGS$`), func(*handler, []string) (*mysql.Result, error) { return ok(), nil }},
	}
)

func re(p string) *regexp.Regexp { return regexp.MustCompile(`(?is)` + p) }

// HandleQuery answers a COM_QUERY. It may hold several statements separated
// by ';' (Regent's probe sends its reads as one): each is answered in order,
// every result but the last written here with SERVER_MORE_RESULTS_EXISTS, and
// the first error ends the batch, as a server does. A server refuses them on
// a connection that did not ask for CLIENT_MULTI_STATEMENTS; the emulation
// cannot tell, since go-mysql's server does not offer that capability and
// clients drop what the server does not offer.
func (h *handler) HandleQuery(query string) (*mysql.Result, error) {
	stmts := splitStatements(query)
	for _, q := range stmts[:len(stmts)-1] {
		r, err := h.handleOne(q)
		if err != nil {
			return nil, err
		}
		h.conn.SetStatus(mysql.SERVER_MORE_RESULTS_EXISTS)
		err = h.conn.WriteValue(r)
		h.conn.UnsetStatus(mysql.SERVER_MORE_RESULTS_EXISTS)
		if err != nil {
			return nil, err
		}
	}
	return h.handleOne(stmts[len(stmts)-1])
}

// splitStatements cuts a query at the semicolons outside quoted strings,
// leaving out empty statements (a trailing ';'); it returns one statement at
// least.
func splitStatements(query string) []string {
	var out []string
	var quote byte
	start := 0
	for k := 0; k < len(query); k++ {
		c := query[k]
		switch {
		case quote != 0 && c == '\\':
			k++
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == ';':
			if q := strings.TrimSpace(query[start:k]); q != "" {
				out = append(out, q)
			}
			start = k + 1
		}
	}
	if q := strings.TrimSpace(query[start:]); q != "" || len(out) == 0 {
		out = append(out, q)
	}
	return out
}

// handleOne answers one statement.
func (h *handler) handleOne(q string) (*mysql.Result, error) {
	h.s.waitThawed()
	h.s.mu.Lock()
	h.sess.query = q
	h.s.mu.Unlock()
	defer func() {
		h.s.mu.Lock()
		h.sess.query = ""
		h.s.mu.Unlock()
	}()
	for _, st := range statements {
		if m := st.re.FindStringSubmatch(q); m != nil {
			return st.do(h, m)
		}
	}
	h.s.mu.Lock()
	h.s.unhandled = append(h.s.unhandled, q)
	h.s.mu.Unlock()
	return nil, mysql.NewError(mysql.ER_PARSE_ERROR, "mysqlsim EMULATION: statement not emulated: "+q)
}

func ok() *mysql.Result { return mysql.NewResultReserveResultset(0) }

func one(col, v string) *mysql.Result {
	r, _ := rows([]string{col}, [][]any{{v}})
	return r
}

func rows(cols []string, values [][]any) (*mysql.Result, error) {
	rs, err := mysql.BuildSimpleTextResultset(cols, values)
	if err != nil {
		return nil, err
	}
	return mysql.NewResult(rs), nil
}

// numericBool answers @@read_only and the like as MariaDB does: 1 or 0.
func numericBool(v string) string {
	switch v {
	case "ON":
		return "1"
	case "OFF":
		return "0"
	}
	return v
}

// nameValues answers SHOW ... WHERE Variable_name IN (...) from a map.
func (h *handler) nameValues(list string, all func() map[string]string) (*mysql.Result, error) {
	m := all()
	var values [][]any
	for _, n := range inListRE.FindAllStringSubmatch(list, -1) {
		if v, ok := m[n[1]]; ok {
			values = append(values, []any{n[1], v})
		}
	}
	return rows([]string{"Variable_name", "Value"}, values)
}

// variables are the global variables, the GTID positions computed.
func (s *Server) variables() map[string]string {
	s.sync()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.vars)+4)
	for k, v := range s.vars {
		out[k] = v
	}
	pos := s.executed.String()
	out["gtid_binlog_pos"], out["gtid_current_pos"], out["gtid_binlog_state"] = pos, pos, pos
	out["gtid_slave_pos"] = ""
	if s.rep != nil {
		out["gtid_slave_pos"] = pos
	}
	return out
}

// status is the global status: uptime, connections and semi-sync.
func (s *Server) status() map[string]string {
	s.sync()
	clients := s.semiSyncClients()
	s.mu.Lock()
	defer s.mu.Unlock()
	master := boolVar(s.vars["rpl_semi_sync_master_enabled"])
	out := map[string]string{
		"Uptime":                       strconv.Itoa(int(time.Since(s.start).Seconds())),
		"Threads_connected":            strconv.Itoa(len(s.conns)),
		"Questions":                    "0",
		"Rpl_semi_sync_master_status":  onOff(master),
		"Rpl_semi_sync_master_clients": strconv.Itoa(clients),
		"Rpl_semi_sync_slave_status":   onOff(boolVar(s.vars["rpl_semi_sync_slave_enabled"]) && s.rep != nil && !s.rep.connected.IsZero()),
	}
	return out
}

func onOff(b bool) string {
	if b {
		return "ON"
	}
	return "OFF"
}

// semiSyncClients counts the fleet's servers connected to s as semi-sync
// replicas.
func (s *Server) semiSyncClients() int {
	addr := s.Addr()
	n := 0
	for _, o := range s.fleet.replicasOf(addr) {
		if o == s {
			continue
		}
		o.sync()
		o.mu.Lock()
		if r := o.rep; r != nil && r.io && !r.connected.IsZero() && o.up && boolVar(o.vars["rpl_semi_sync_slave_enabled"]) && r.sourceAddr() == addr {
			n++
		}
		o.mu.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !boolVar(s.vars["rpl_semi_sync_master_enabled"]) {
		return 0 // replicas register as semi-sync only with a semi-sync source
	}
	return n
}

// replicaStatus answers SHOW ALL SLAVES STATUS (all: with the connection
// name and heartbeat columns) or SHOW SLAVE STATUS.
func (s *Server) replicaStatus(all bool) (*mysql.Result, error) {
	s.sync()
	s.mu.Lock()
	defer s.mu.Unlock()
	cols := []string{"Slave_IO_State", "Master_Host", "Master_User", "Master_Port", "Connect_Retry", "Master_Log_File", "Read_Master_Log_Pos",
		"Relay_Master_Log_File", "Slave_IO_Running", "Slave_SQL_Running", "Last_Errno", "Last_Error", "Exec_Master_Log_Pos",
		"Seconds_Behind_Master", "Master_SSL_Allowed", "Last_IO_Errno", "Last_IO_Error", "Last_SQL_Errno", "Last_SQL_Error",
		"Master_Server_Id", "Using_Gtid", "Gtid_IO_Pos", "SQL_Delay"}
	if all {
		cols = append([]string{"Connection_name"}, cols...)
		cols = append(cols, "Slave_received_heartbeats", "Slave_heartbeat_period", "Gtid_Slave_Pos")
	}
	r := s.rep
	if r == nil {
		return rows(cols, nil)
	}
	io := "No"
	switch {
	case r.io && !r.connected.IsZero():
		io = "Yes"
	case r.io:
		io = "Connecting"
	}
	behind := any(nil)
	if io == "Yes" && r.sql {
		behind = "0"
	}
	var beats uint64
	if !r.connected.IsZero() && r.heartbeat > 0 {
		beats = uint64(time.Since(r.connected) / r.heartbeat)
	}
	sourceID := "0"
	if src := s.fleet.server(r.sourceAddr()); src != nil {
		sourceID = strconv.FormatUint(uint64(src.opts.ServerID), 10)
	}
	v := []any{"", r.host, s.opts.User, strconv.Itoa(r.port), "1", "mysql-bin.000001", strconv.FormatUint(4+r.readPos, 10),
		"mysql-bin.000001", io, yesNo(r.sql), "0", "", strconv.FormatUint(4+r.readPos, 10),
		behind, "No", strconv.Itoa(r.ioErrno), r.ioError, "0", "",
		sourceID, "Slave_Pos", r.retrieved.String(), "0"}
	if all {
		v = append([]any{""}, v...)
		v = append(v, strconv.FormatUint(beats, 10), strconv.FormatFloat(r.heartbeat.Seconds(), 'f', 3, 64), s.executed.String())
	}
	return rows(cols, [][]any{v})
}

func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

// setGlobal keeps a variable; read_only refuses while a write could not
// be stopped (never, here: no transaction runs).
func (s *Server) setGlobal(name, value string) (*mysql.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch strings.ToUpper(value) {
	case "ON", "1", "TRUE":
		if _, isBool := boolVariables[name]; isBool {
			value = "ON"
		}
	case "OFF", "0", "FALSE":
		if _, isBool := boolVariables[name]; isBool {
			value = "OFF"
		}
	}
	s.vars[name] = value
	return ok(), nil
}

// boolVariables are kept as ON/OFF however they are set.
var boolVariables = map[string]struct{}{
	"read_only": {}, "offline_mode": {}, "rpl_semi_sync_master_enabled": {}, "rpl_semi_sync_slave_enabled": {},
	"rpl_semi_sync_master_wait_no_slave": {}, "gtid_strict_mode": {}, "log_slave_updates": {},
}

// threads starts or stops the replica threads (which: "", IO_THREAD,
// SQL_THREAD).
func (s *Server) threads(start bool, which string) (*mysql.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rep
	if r == nil {
		if start {
			return nil, mysql.NewError(mysql.ER_BAD_SLAVE, "Misconfigured slave: MASTER_HOST was not set; Fix in config file or with CHANGE MASTER TO")
		}
		return ok(), nil // MariaDB: a warning, no error
	}
	if which != "SQL_THREAD" {
		if !start {
			r.connected = time.Time{}
		}
		r.io = start
	}
	if which != "IO_THREAD" {
		r.sql = start
	}
	return ok(), nil
}

var changeOptionRE = regexp.MustCompile(`(?i)(MASTER_[A-Z_]+)\s*=\s*('(?:[^']|'')*'|[0-9.]+|[a-z_]+)`)

// changeMaster applies CHANGE MASTER TO: host, port and heartbeat period;
// the other options (user, password, GTID mode, TLS) are accepted as they
// are. Refused while the IO thread runs, as MariaDB does (error 1198).
func (s *Server) changeMaster(opts string) (*mysql.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rep != nil && (s.rep.io || s.rep.sql) {
		return nil, mysql.NewError(mysql.ER_SLAVE_MUST_STOP, "This operation cannot be performed as you have a running slave ''; run STOP SLAVE '' first")
	}
	next := replica{}
	if s.rep != nil {
		next = *s.rep
	}
	changedSource := false
	for _, m := range changeOptionRE.FindAllStringSubmatch(opts, -1) {
		key, val := strings.ToUpper(m[1]), strings.Trim(m[2], "'")
		switch key {
		case "MASTER_HOST":
			changedSource = changedSource || val != next.host
			next.host = val
		case "MASTER_PORT":
			p, err := strconv.Atoi(val)
			if err != nil {
				return nil, mysql.NewError(mysql.ER_PARSE_ERROR, "MASTER_PORT "+val)
			}
			changedSource = changedSource || p != next.port
			next.port = p
		case "MASTER_HEARTBEAT_PERIOD":
			f, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return nil, mysql.NewError(mysql.ER_PARSE_ERROR, "MASTER_HEARTBEAT_PERIOD "+val)
			}
			next.heartbeat = time.Duration(f * float64(time.Second))
		}
	}
	if next.host == "" {
		return nil, mysql.NewError(mysql.ER_BAD_SLAVE, "CHANGE MASTER TO without MASTER_HOST on a server that replicates from nowhere")
	}
	if changedSource {
		// MASTER_USE_GTID=slave_pos: the new source sends what follows
		// this server's own position.
		next.retrieved, next.readPos = s.executed, 0
	}
	next.ioErrno, next.ioError, next.connected = 0, "", time.Time{}
	s.fleet.setSource(s, s.rep.sourceAddr(), next.sourceAddr())
	s.rep = &next
	return ok(), nil
}

func (s *Server) resetSlaveAll() (*mysql.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rep != nil && (s.rep.io || s.rep.sql) {
		return nil, mysql.NewError(mysql.ER_SLAVE_MUST_STOP, "This operation cannot be performed as you have a running slave ''; run STOP SLAVE '' first")
	}
	s.fleet.setSource(s, s.rep.sourceAddr(), "")
	s.rep = nil
	return ok(), nil
}

// gtidWait answers MASTER_GTID_WAIT(pos, timeout): 0 once the server holds
// pos (domain 0's sequence reached), -1 at the timeout.
func (s *Server) gtidWait(pos, timeout string) (*mysql.Result, error) {
	want, err := parsePos(pos)
	if err != nil {
		return nil, mysql.NewError(mysql.ER_MALFORMED_GTID_SET_SPECIFICATION, err.Error())
	}
	secs, _ := strconv.ParseFloat(timeout, 64)
	deadline := time.Now().Add(time.Duration(secs * float64(time.Second)))
	for {
		s.sync()
		s.mu.Lock()
		have := s.executed.seq
		s.mu.Unlock()
		if have >= want {
			return one("MASTER_GTID_WAIT", "0"), nil
		}
		if !time.Now().Before(deadline) {
			return one("MASTER_GTID_WAIT", "-1"), nil
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// parsePos reads domain 0's sequence from a MariaDB GTID position ("" is
// 0; another domain is refused: the emulation has one).
func parsePos(pos string) (uint64, error) {
	var seq uint64
	for _, g := range strings.Split(pos, ",") {
		g = strings.TrimSpace(g)
		if g == "" {
			continue
		}
		parts := strings.Split(g, "-")
		if len(parts) != 3 || parts[0] != "0" {
			return 0, fmt.Errorf("mysqlsim EMULATION: GTID %q is not of domain 0", g)
		}
		n, err := strconv.ParseUint(parts[2], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("GTID %q: %w", g, err)
		}
		seq = max(seq, n)
	}
	return seq, nil
}

// The replica threads' ids in the process list.
const (
	ioThreadID  = 1 << 30
	sqlThreadID = 1<<30 + 1
)

// process is one row of the process list.
type process struct {
	id                  uint32
	user, host, command string
	time                int
	state, info         string
}

// processes lists the connections and the replica threads.
func (s *Server) processes() []process {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]uint32, 0, len(s.conns))
	for id := range s.conns {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []process
	if r := s.rep; r != nil && r.io {
		st := "Waiting for master to send event"
		if r.connected.IsZero() {
			st = "Connecting to master"
		}
		out = append(out, process{id: ioThreadID, user: "system user", command: "Slave_IO", state: st})
	}
	if r := s.rep; r != nil && r.sql {
		out = append(out, process{id: sqlThreadID, user: "system user", command: "Slave_SQL", state: "Slave has read all relay log; waiting for more updates"})
	}
	for _, id := range ids {
		c := s.conns[id]
		p := process{id: id, user: c.user, host: c.host, command: "Sleep", time: int(time.Since(c.since).Seconds())}
		if c.query != "" {
			p.command, p.state, p.info = "Query", "starting", c.query
		}
		out = append(out, p)
	}
	return out
}

func (p process) column(name string) any {
	switch strings.ToUpper(name) {
	case "ID":
		return strconv.FormatUint(uint64(p.id), 10)
	case "USER":
		return p.user
	case "HOST":
		return p.host
	case "COMMAND":
		return p.command
	case "TIME":
		return strconv.Itoa(p.time)
	case "STATE", "COALESCE(STATE, '')":
		return p.state
	case "INFO":
		if p.info == "" {
			return nil
		}
		return p.info
	}
	return nil
}

func (s *Server) processList() (*mysql.Result, error) {
	var out [][]any
	for _, p := range s.processes() {
		out = append(out, []any{p.column("ID"), p.user, p.host, nil, p.command, p.column("TIME"), p.state, p.column("INFO")})
	}
	return rows([]string{"Id", "User", "Host", "db", "Command", "Time", "State", "Info"}, out)
}

var (
	whereEqRE   = regexp.MustCompile(`(?i)^(ID|USER|COMMAND|INFO)\s*=\s*'?((?:[^']|'')*)'?$`)
	whereInRE   = regexp.MustCompile(`(?i)^(ID|COMMAND)\s+IN\s*\((.*)\)$`)
	whereLikeRE = regexp.MustCompile(`(?i)^(COMMAND|USER)\s+LIKE\s+'([^']*)%'$`)
)

// selectProcesses answers the reads Regent makes of
// information_schema.PROCESSLIST: some columns or COUNT(*), under one
// condition (column = value, column IN (...), column LIKE 'prefix%').
func (s *Server) selectProcesses(cols, where string) (*mysql.Result, error) {
	var match func(p process) bool
	where = strings.TrimSpace(where)
	switch {
	case whereEqRE.MatchString(where):
		m := whereEqRE.FindStringSubmatch(where)
		match = func(p process) bool { return p.column(m[1]) == strings.ReplaceAll(m[2], "''", "'") }
	case whereInRE.MatchString(where):
		m := whereInRE.FindStringSubmatch(where)
		var in []string
		for _, v := range strings.Split(m[2], ",") {
			in = append(in, strings.Trim(strings.TrimSpace(v), "'"))
		}
		match = func(p process) bool { v, _ := p.column(m[1]).(string); return slices.Contains(in, v) }
	case whereLikeRE.MatchString(where):
		m := whereLikeRE.FindStringSubmatch(where)
		match = func(p process) bool { v, _ := p.column(m[1]).(string); return strings.HasPrefix(v, m[2]) }
	default:
		return nil, mysql.NewError(mysql.ER_PARSE_ERROR, "mysqlsim EMULATION: process list condition not emulated: "+where)
	}
	var found []process
	for _, p := range s.processes() {
		if match(p) {
			found = append(found, p)
		}
	}
	if strings.EqualFold(strings.TrimSpace(cols), "COUNT(*)") {
		return one("COUNT(*)", strconv.Itoa(len(found))), nil
	}
	names := strings.Split(cols, ",")
	for k := range names {
		names[k] = strings.TrimSpace(names[k])
	}
	var out [][]any
	for _, p := range found {
		row := make([]any, len(names))
		for k, n := range names {
			row[k] = p.column(n)
		}
		out = append(out, row)
	}
	return rows(names, out)
}

// kill ends a connection, or a replica thread (KILL of the IO thread
// stops it with its connection, as MariaDB's does).
func (s *Server) kill(idText string) (*mysql.Result, error) {
	id, err := strconv.ParseUint(idText, 10, 32)
	if err != nil {
		return nil, mysql.NewError(mysql.ER_NO_SUCH_THREAD, "Unknown thread id: "+idText)
	}
	s.mu.Lock()
	if r := s.rep; r != nil && (id == ioThreadID && r.io || id == sqlThreadID && r.sql) {
		if id == ioThreadID {
			r.io, r.connected = false, time.Time{}
		} else {
			r.sql = false
		}
		s.mu.Unlock()
		return ok(), nil
	}
	c, found := s.conns[uint32(id)]
	s.mu.Unlock()
	if !found {
		return nil, mysql.NewError(mysql.ER_NO_SUCH_THREAD, "Unknown thread id: "+idText)
	}
	_ = c.nc.Close()
	return ok(), nil
}

// slaveHosts lists the fleet's servers replicating from s.
func (s *Server) slaveHosts() (*mysql.Result, error) {
	addr := s.Addr()
	var out [][]any
	for _, o := range s.fleet.replicasOf(addr) {
		o.sync()
		o.mu.Lock()
		if r := o.rep; o != s && r != nil && r.io && !r.connected.IsZero() && r.sourceAddr() == addr {
			host, port, _ := net.SplitHostPort(o.addr)
			out = append(out, []any{strconv.FormatUint(uint64(o.opts.ServerID), 10), host, port, strconv.FormatUint(uint64(s.opts.ServerID), 10)})
		}
		o.mu.Unlock()
	}
	return rows([]string{"Server_id", "Host", "Port", "Master_id"}, out)
}
