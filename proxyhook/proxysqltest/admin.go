// Package proxysqltest is an EMULATION of ProxySQL's admin interface, for
// tests. ProxySQL cannot be installed on the machines Regent is developed on,
// so this stands in for it; it is not ProxySQL and proves only that a client
// speaks the admin protocol the way ProxySQL documents it.
//
// What it emulates, on go-mysql's server package (MySQL protocol,
// mysql_native_password):
//
//   - the configuration tables mysql_servers and mysql_replication_hostgroups
//     in three layers, as ProxySQL keeps them: memory (what admin SQL edits),
//     runtime (what routes traffic; runtime_mysql_servers,
//     runtime_mysql_replication_hostgroups) and disk (disk.mysql_servers);
//   - LOAD MYSQL SERVERS TO RUNTIME / FROM MEMORY (memory → runtime),
//     SAVE MYSQL SERVERS TO DISK / FROM MEMORY (memory → disk),
//     SAVE MYSQL SERVERS TO MEMORY / FROM RUNTIME (runtime → memory),
//     LOAD MYSQL SERVERS TO MEMORY / FROM DISK (disk → memory), and the
//     RUN/MEM abbreviations;
//   - SELECT (columns or *, WHERE, ORDER BY, LIMIT), INSERT/REPLACE INTO,
//     UPDATE ... SET, DELETE FROM on those tables, with ProxySQL's column
//     defaults, its primary key (hostgroup_id, hostname, port) and its check
//     on status; strings as SQLite reads them (a quote is doubled, a
//     backslash is literal); errors carry code 1045 and "ProxySQL Admin
//     Error:" as ProxySQL's do; no prepared statements.
//
// What it does not: monitoring, shunning, the effect of
// mysql_replication_hostgroups on runtime (ProxySQL's monitor moving servers
// by read_only), query rules, any other table, SQLite's full grammar. Every
// statement received is recorded (Statements) so tests can assert what a
// client sent.
package proxysqltest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
)

// Server is one row of mysql_servers, for seeding and inspecting the
// emulation.
type Server struct {
	HostgroupID       int
	Hostname          string
	Port              int
	GTIDPort          int
	Status            string
	Weight            int
	Compression       int
	MaxConnections    int
	MaxReplicationLag int
	UseSSL            int
	MaxLatencyMS      int
	Comment           string
}

// NewServer returns a row with ProxySQL's defaults (ONLINE, weight 1,
// max_connections 1000).
func NewServer(hostgroup int, host string, port int) Server {
	return Server{HostgroupID: hostgroup, Hostname: host, Port: port, Status: "ONLINE", Weight: 1, MaxConnections: 1000}
}

// ReplicationHostgroup is one row of mysql_replication_hostgroups.
type ReplicationHostgroup struct {
	WriterHostgroup int
	ReaderHostgroup int
	CheckType       string
	Comment         string
}

type column struct {
	name  string
	isInt bool
	def   value
}

type schema struct {
	name    string
	columns []column
	key     []string
	check   func(get func(string) value) error
}

func (s *schema) col(name string) (int, bool) {
	for i, c := range s.columns {
		if c.name == name {
			return i, true
		}
	}
	return -1, false
}

var serversSchema = &schema{
	name: "mysql_servers",
	columns: []column{
		{name: "hostgroup_id", isInt: true, def: value{s: "0"}},
		{name: "hostname", def: value{null: true}},
		{name: "port", isInt: true, def: value{s: "3306"}},
		{name: "gtid_port", isInt: true, def: value{s: "0"}},
		{name: "status", def: value{s: "ONLINE"}},
		{name: "weight", isInt: true, def: value{s: "1"}},
		{name: "compression", isInt: true, def: value{s: "0"}},
		{name: "max_connections", isInt: true, def: value{s: "1000"}},
		{name: "max_replication_lag", isInt: true, def: value{s: "0"}},
		{name: "use_ssl", isInt: true, def: value{s: "0"}},
		{name: "max_latency_ms", isInt: true, def: value{s: "0"}},
		{name: "comment", def: value{s: ""}},
	},
	key: []string{"hostgroup_id", "hostname", "port"},
	check: func(get func(string) value) error {
		if get("hostname").null {
			return errors.New("NOT NULL constraint failed: mysql_servers.hostname")
		}
		switch get("status").s {
		case "ONLINE", "SHUNNED", "OFFLINE_SOFT", "OFFLINE_HARD":
		default:
			return errors.New("CHECK constraint failed: mysql_servers")
		}
		return nil
	},
}

var replHGSchema = &schema{
	name: "mysql_replication_hostgroups",
	columns: []column{
		{name: "writer_hostgroup", isInt: true, def: value{null: true}},
		{name: "reader_hostgroup", isInt: true, def: value{null: true}},
		{name: "check_type", def: value{s: "read_only"}},
		{name: "comment", def: value{s: ""}},
	},
	key: []string{"writer_hostgroup"},
	check: func(get func(string) value) error {
		if get("writer_hostgroup").null || get("reader_hostgroup").null {
			return errors.New("NOT NULL constraint failed: mysql_replication_hostgroups")
		}
		if get("writer_hostgroup").s == get("reader_hostgroup").s {
			return errors.New("CHECK constraint failed: mysql_replication_hostgroups")
		}
		return nil
	},
}

type row []value

type table struct {
	schema *schema
	rows   []row
}

func (t *table) clone() *table {
	c := &table{schema: t.schema, rows: make([]row, len(t.rows))}
	for i, r := range t.rows {
		c.rows[i] = slices.Clone(r)
	}
	return c
}

// layer is one of memory, runtime, disk.
type layer struct {
	servers *table
	replHG  *table
}

func newLayer() layer {
	return layer{servers: &table{schema: serversSchema}, replHG: &table{schema: replHGSchema}}
}

func (l layer) clone() layer { return layer{servers: l.servers.clone(), replHG: l.replHG.clone()} }

// Options configures an Admin.
type Options struct {
	// Addr to listen on; default 127.0.0.1:0.
	Addr string
	// User and Password of the admin credentials; default admin/admin.
	User, Password string
	// TLS, when set, is offered to clients as ProxySQL 2.x offers it on
	// the admin port with mysql-have_ssl=true: a client may upgrade to it
	// or stay in plain text.
	TLS *tls.Config
}

// Admin is a running emulation of ProxySQL's admin interface.
type Admin struct {
	ln   net.Listener
	srv  *server.Server
	opts Options

	mu         sync.Mutex
	memory     layer
	runtime    layer
	disk       layer
	statements []string
	injected   []injectedError
	tlsLogins  int
	conns      map[net.Conn]struct{}
	closed     bool

	wg sync.WaitGroup
}

type injectedError struct {
	substr string
	count  int
	msg    string
}

// New starts an emulation listening on opts.Addr.
func New(opts Options) (*Admin, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.User == "" {
		opts.User, opts.Password = "admin", "admin"
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("proxysql admin emulation: %w", err)
	}
	a := &Admin{
		ln:      ln,
		srv:     server.NewServer("5.5.30 (ProxySQL Admin Module EMULATION)", mysql.DEFAULT_COLLATION_ID, mysql.AUTH_NATIVE_PASSWORD, nil, opts.TLS),
		opts:    opts,
		memory:  newLayer(),
		runtime: newLayer(),
		disk:    newLayer(),
		conns:   map[net.Conn]struct{}{},
	}
	a.wg.Go(a.accept)
	return a, nil
}

// Start is New for tests: it fails the test on error and closes the
// emulation in t.Cleanup.
func Start(t testing.TB, opts Options) *Admin {
	t.Helper()
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// Addr returns host:port of the admin interface.
func (a *Admin) Addr() string { return a.ln.Addr().String() }

// TLSLogins returns how many sessions logged in over TLS.
func (a *Admin) TLSLogins() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tlsLogins
}

// User and Password return the admin credentials.
func (a *Admin) User() string     { return a.opts.User }
func (a *Admin) Password() string { return a.opts.Password }

// Close stops listening, closes every connection and waits for them. Safe to
// call twice.
func (a *Admin) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	err := a.ln.Close()
	for c := range a.conns {
		_ = c.Close()
	}
	a.mu.Unlock()
	a.wg.Wait()
	return err
}

func (a *Admin) accept() {
	for {
		c, err := a.ln.Accept()
		if err != nil {
			return
		}
		a.mu.Lock()
		if a.closed {
			a.mu.Unlock()
			_ = c.Close()
			return
		}
		a.conns[c] = struct{}{}
		a.mu.Unlock()
		a.wg.Go(func() {
			defer func() {
				a.mu.Lock()
				delete(a.conns, c)
				a.mu.Unlock()
				_ = c.Close()
			}()
			auth := server.NewInMemoryAuthenticationHandler(mysql.AUTH_NATIVE_PASSWORD)
			if err := auth.AddUser(a.opts.User, a.opts.Password); err != nil {
				return
			}
			conn, err := a.srv.NewCustomizedConn(c, auth, &handler{a: a})
			if err != nil {
				return
			}
			if _, ok := conn.Conn.Conn.(*tls.Conn); ok {
				a.mu.Lock()
				a.tlsLogins++
				a.mu.Unlock()
			}
			for !conn.Closed() {
				if err := conn.HandleCommand(); err != nil {
					return
				}
			}
		})
	}
}

// SetServers replaces mysql_servers in memory and runtime (as after LOAD ...
// TO RUNTIME) and on disk: the state of a ProxySQL configured before the test.
func (a *Admin) SetServers(servers ...Server) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := &table{schema: serversSchema}
	for _, s := range servers {
		t.rows = append(t.rows, serverRow(s))
	}
	a.memory.servers, a.runtime.servers, a.disk.servers = t, t.clone(), t.clone()
}

// SetReplicationHostgroups replaces mysql_replication_hostgroups in all
// three layers.
func (a *Admin) SetReplicationHostgroups(rows ...ReplicationHostgroup) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := &table{schema: replHGSchema}
	for _, r := range rows {
		ct := r.CheckType
		if ct == "" {
			ct = "read_only"
		}
		t.rows = append(t.rows, row{intVal(r.WriterHostgroup), intVal(r.ReaderHostgroup), {s: ct}, {s: r.Comment}})
	}
	a.memory.replHG, a.runtime.replHG, a.disk.replHG = t, t.clone(), t.clone()
}

// SetRuntimeStatus changes a runtime row's status, as ProxySQL's monitor
// does when it shuns a server.
func (a *Admin) SetRuntimeStatus(hostgroup int, host string, port int, status string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.runtime.servers.rows {
		if r[0].s == strconv.Itoa(hostgroup) && r[1].s == host && r[2].s == strconv.Itoa(port) {
			r[4] = value{s: status}
			return true
		}
	}
	return false
}

// Servers returns mysql_servers (memory), sorted by key.
func (a *Admin) Servers() []Server { return a.servers(func() *table { return a.memory.servers }) }

// RuntimeServers returns runtime_mysql_servers, sorted by key.
func (a *Admin) RuntimeServers() []Server {
	return a.servers(func() *table { return a.runtime.servers })
}

// DiskServers returns disk.mysql_servers, sorted by key.
func (a *Admin) DiskServers() []Server { return a.servers(func() *table { return a.disk.servers }) }

func (a *Admin) servers(pick func() *table) []Server {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Server
	for _, r := range pick().rows {
		out = append(out, rowServer(r))
	}
	slices.SortFunc(out, func(x, y Server) int {
		if x.HostgroupID != y.HostgroupID {
			return x.HostgroupID - y.HostgroupID
		}
		if c := strings.Compare(x.Hostname, y.Hostname); c != 0 {
			return c
		}
		return x.Port - y.Port
	})
	return out
}

// Statements returns every statement received, in order.
func (a *Admin) Statements() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.statements)
}

// Writes returns the statements received that are not SELECTs.
func (a *Admin) Writes() []string {
	var out []string
	for _, s := range a.Statements() {
		if !strings.HasPrefix(strings.ToUpper(strings.TrimSpace(s)), "SELECT") {
			out = append(out, s)
		}
	}
	return out
}

// ResetStatements forgets the recorded statements.
func (a *Admin) ResetStatements() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.statements = nil
}

// FailStatements makes the next count statements containing substr (case
// insensitive) fail with msg, as a ProxySQL admin error.
func (a *Admin) FailStatements(substr string, count int, msg string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.injected = append(a.injected, injectedError{substr: strings.ToUpper(substr), count: count, msg: msg})
}

func serverRow(s Server) row {
	return row{intVal(s.HostgroupID), {s: s.Hostname}, intVal(s.Port), intVal(s.GTIDPort), {s: s.Status}, intVal(s.Weight),
		intVal(s.Compression), intVal(s.MaxConnections), intVal(s.MaxReplicationLag), intVal(s.UseSSL), intVal(s.MaxLatencyMS), {s: s.Comment}}
}

func rowServer(r row) Server {
	n := func(i int) int { v, _ := strconv.Atoi(r[i].s); return v }
	return Server{HostgroupID: n(0), Hostname: r[1].s, Port: n(2), GTIDPort: n(3), Status: r[4].s, Weight: n(5),
		Compression: n(6), MaxConnections: n(7), MaxReplicationLag: n(8), UseSSL: n(9), MaxLatencyMS: n(10), Comment: r[11].s}
}

func intVal(n int) value { return value{s: strconv.Itoa(n)} }

// handler answers one connection's commands.
type handler struct {
	server.EmptyHandler
	a *Admin
}

func adminError(format string, args ...any) error {
	return mysql.NewError(mysql.ER_ACCESS_DENIED_ERROR, "ProxySQL Admin Error: "+fmt.Sprintf(format, args...))
}

func (h *handler) UseDB(string) error { return nil }

func (h *handler) HandleQuery(query string) (*mysql.Result, error) {
	a := h.a
	a.mu.Lock()
	defer a.mu.Unlock()
	a.statements = append(a.statements, query)
	up := strings.ToUpper(query)
	for i := range a.injected {
		inj := &a.injected[i]
		if inj.count > 0 && strings.Contains(up, inj.substr) {
			inj.count--
			return nil, adminError("%s", inj.msg)
		}
	}
	res, err := a.exec(query)
	if err != nil {
		var me *mysql.MyError
		if errors.As(err, &me) {
			return nil, err
		}
		return nil, adminError("%s", err.Error())
	}
	return res, nil
}

func (h *handler) HandleStmtPrepare(string) (int, int, any, error) {
	return 0, 0, nil, adminError("prepared statements are not supported by the admin interface (use interpolateParams=true)")
}

// exec runs one statement; a.mu is held.
func (a *Admin) exec(query string) (*mysql.Result, error) {
	toks, err := tokenize(query)
	if err != nil {
		return nil, fmt.Errorf("near %q: %w", truncate(query, 60), err)
	}
	p := &parser{toks: toks}
	first := p.peek()
	switch {
	case first.is("SELECT"):
		return a.execSelect(p)
	case first.is("INSERT"), first.is("REPLACE"):
		return a.execInsert(p)
	case first.is("UPDATE"):
		return a.execUpdate(p)
	case first.is("DELETE"):
		return a.execDelete(p)
	case first.is("LOAD"), first.is("SAVE"):
		return a.execLoadSave(p)
	case first.kind == tokEOF:
		return nil, errors.New("empty statement")
	}
	return nil, fmt.Errorf("the emulation does not understand %q", truncate(query, 80))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func okResult(affected uint64) *mysql.Result {
	return &mysql.Result{Status: mysql.SERVER_STATUS_AUTOCOMMIT, AffectedRows: affected}
}

// resolve maps a table name to the table of a layer; writable says whether
// admin SQL may change it.
func (a *Admin) resolve(name string) (t *table, writable bool, err error) {
	switch strings.ToLower(name) {
	case "mysql_servers", "main.mysql_servers":
		return a.memory.servers, true, nil
	case "runtime_mysql_servers", "main.runtime_mysql_servers":
		return a.runtime.servers, false, nil
	case "disk.mysql_servers":
		return a.disk.servers, false, nil
	case "mysql_replication_hostgroups", "main.mysql_replication_hostgroups":
		return a.memory.replHG, true, nil
	case "runtime_mysql_replication_hostgroups", "main.runtime_mysql_replication_hostgroups":
		return a.runtime.replHG, false, nil
	case "disk.mysql_replication_hostgroups":
		return a.disk.replHG, false, nil
	}
	return nil, false, fmt.Errorf("no such table: %s (the emulation has mysql_servers and mysql_replication_hostgroups)", name)
}

func (a *Admin) execLoadSave(p *parser) (*mysql.Result, error) {
	verb := strings.ToUpper(p.next().text)
	if !p.accept("MYSQL") || !p.accept("SERVERS") {
		return nil, errors.New("the emulation only knows LOAD/SAVE MYSQL SERVERS")
	}
	dir := strings.ToUpper(p.next().text)
	where := strings.ToUpper(p.next().text)
	if err := p.end(); err != nil {
		return nil, err
	}
	switch where {
	case "RUN":
		where = "RUNTIME"
	case "MEM":
		where = "MEMORY"
	}
	switch verb + " " + dir + " " + where {
	case "LOAD TO RUNTIME", "LOAD FROM MEMORY":
		a.runtime = a.memory.clone()
	case "SAVE TO DISK", "SAVE FROM MEMORY":
		a.disk = a.memory.clone()
	case "SAVE TO MEMORY", "SAVE FROM RUNTIME":
		a.memory = a.runtime.clone()
	case "LOAD TO MEMORY", "LOAD FROM DISK":
		a.memory = a.disk.clone()
	default:
		return nil, fmt.Errorf("unknown command %s MYSQL SERVERS %s %s", verb, dir, where)
	}
	return okResult(0), nil
}

func (a *Admin) execSelect(p *parser) (*mysql.Result, error) {
	p.next() // SELECT
	var cols []string
	star := false
	countStar := false
	switch {
	case p.accept("*"):
		star = true
	case p.peek().is("COUNT"):
		p.next()
		if p.expect("(") != nil || p.expect("*") != nil || p.expect(")") != nil {
			return nil, errors.New("the emulation only knows COUNT(*)")
		}
		countStar = true
	default:
		for {
			c, err := p.ident()
			if err != nil {
				return nil, err
			}
			cols = append(cols, c)
			if !p.accept(",") {
				break
			}
		}
	}
	if err := p.expect("FROM"); err != nil {
		return nil, err
	}
	name, err := p.ident()
	if err != nil {
		return nil, err
	}
	t, _, err := a.resolve(name)
	if err != nil {
		return nil, err
	}
	if star {
		for _, c := range t.schema.columns {
			cols = append(cols, c.name)
		}
	}
	idx := make([]int, len(cols))
	for i, c := range cols {
		j, ok := t.schema.col(c)
		if !ok {
			return nil, fmt.Errorf("no such column: %s", c)
		}
		idx[i] = j
	}
	where, err := whereClause(p)
	if err != nil {
		return nil, err
	}
	var order []orderKey
	if p.accept("ORDER") {
		if err := p.expect("BY"); err != nil {
			return nil, err
		}
		for {
			c, err := p.ident()
			if err != nil {
				return nil, err
			}
			j, ok := t.schema.col(c)
			if !ok {
				return nil, fmt.Errorf("no such column: %s", c)
			}
			desc := false
			if p.accept("DESC") {
				desc = true
			} else {
				p.accept("ASC")
			}
			order = append(order, orderKey{idx: j, isInt: t.schema.columns[j].isInt, desc: desc})
			if !p.accept(",") {
				break
			}
		}
	}
	limit := -1
	if p.accept("LIMIT") {
		l, err := p.literal()
		if err != nil || !l.number {
			return nil, errors.New("LIMIT needs a number")
		}
		limit, _ = strconv.Atoi(l.text)
	}
	if err := p.end(); err != nil {
		return nil, err
	}
	matched, err := filter(t, where)
	if err != nil {
		return nil, err
	}
	sortRows(matched, order)
	if limit >= 0 && len(matched) > limit {
		matched = matched[:limit]
	}
	if countStar {
		rs, err := mysql.BuildSimpleTextResultset([]string{"COUNT(*)"}, [][]any{{[]byte(strconv.Itoa(len(matched)))}})
		if err != nil {
			return nil, err
		}
		return mysql.NewResult(rs), nil
	}
	// ProxySQL's admin answers every column as text; empty strings must be
	// []byte{} (nil would read as NULL).
	values := make([][]any, 0, len(matched))
	for _, r := range matched {
		vals := make([]any, len(idx))
		for i, j := range idx {
			if r[j].null {
				vals[i] = nil
			} else {
				vals[i] = append([]byte{}, r[j].s...)
			}
		}
		values = append(values, vals)
	}
	rs, err := mysql.BuildSimpleTextResultset(cols, values)
	if err != nil {
		return nil, err
	}
	return mysql.NewResult(rs), nil
}

type orderKey struct {
	idx   int
	isInt bool
	desc  bool
}

func sortRows(rows []row, order []orderKey) {
	slices.SortStableFunc(rows, func(x, y row) int {
		for _, o := range order {
			var c int
			if o.isInt {
				a, _ := strconv.ParseInt(x[o.idx].s, 10, 64)
				b, _ := strconv.ParseInt(y[o.idx].s, 10, 64)
				c = cmpInt(a, b)
			} else {
				c = strings.Compare(x[o.idx].s, y[o.idx].s)
			}
			if o.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return 0
	})
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func whereClause(p *parser) (expr, error) {
	if !p.accept("WHERE") {
		return nil, nil
	}
	return p.expr()
}

func rowGetter(t *table, r row) func(string) (value, bool, error) {
	return func(col string) (value, bool, error) {
		j, ok := t.schema.col(strings.ToLower(col))
		if !ok {
			return value{}, false, fmt.Errorf("no such column: %s", col)
		}
		return r[j], t.schema.columns[j].isInt, nil
	}
}

func filter(t *table, where expr) ([]row, error) {
	var out []row
	for _, r := range t.rows {
		if where != nil {
			ok, err := where.eval(rowGetter(t, r))
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		}
		out = append(out, slices.Clone(r))
	}
	return out, nil
}

// canonical turns a literal into a cell of column c.
func canonical(c column, l literal) (value, error) {
	if l.null {
		return value{null: true}, nil
	}
	if c.isInt {
		n, err := strconv.ParseInt(strings.TrimSpace(l.text), 10, 64)
		if err != nil {
			return value{}, fmt.Errorf("datatype mismatch: %s wants an integer, got %q", c.name, l.text)
		}
		return value{s: strconv.FormatInt(n, 10)}, nil
	}
	return value{s: l.text}, nil
}

func (t *table) keyOf(r row) string {
	var parts []string
	for _, k := range t.schema.key {
		j, _ := t.schema.col(k)
		parts = append(parts, r[j].String())
	}
	return strings.Join(parts, "\x00")
}

func (t *table) validate(r row) error {
	return t.schema.check(func(name string) value {
		j, _ := t.schema.col(name)
		return r[j]
	})
}

func (a *Admin) execInsert(p *parser) (*mysql.Result, error) {
	replace := p.next().is("REPLACE")
	if p.accept("OR") {
		if !p.accept("REPLACE") {
			return nil, errors.New("the emulation knows INSERT OR REPLACE only")
		}
		replace = true
	}
	if err := p.expect("INTO"); err != nil {
		return nil, err
	}
	name, err := p.ident()
	if err != nil {
		return nil, err
	}
	t, writable, err := a.resolve(name)
	if err != nil {
		return nil, err
	}
	if !writable {
		return nil, fmt.Errorf("table %s is read-only: edit the main table and LOAD it to runtime", name)
	}
	var cols []string
	if p.accept("(") {
		for {
			c, err := p.ident()
			if err != nil {
				return nil, err
			}
			if _, ok := t.schema.col(c); !ok {
				return nil, fmt.Errorf("table %s has no column named %s", name, c)
			}
			cols = append(cols, c)
			if !p.accept(",") {
				break
			}
		}
		if err := p.expect(")"); err != nil {
			return nil, err
		}
	} else {
		for _, c := range t.schema.columns {
			cols = append(cols, c.name)
		}
	}
	if err := p.expect("VALUES"); err != nil {
		return nil, err
	}
	var newRows []row
	for {
		if err := p.expect("("); err != nil {
			return nil, err
		}
		r := make(row, len(t.schema.columns))
		for i, c := range t.schema.columns {
			r[i] = c.def
		}
		for i := range cols {
			if i > 0 {
				if err := p.expect(","); err != nil {
					return nil, err
				}
			}
			l, err := p.literal()
			if err != nil {
				return nil, err
			}
			j, _ := t.schema.col(cols[i])
			if r[j], err = canonical(t.schema.columns[j], l); err != nil {
				return nil, err
			}
		}
		if err := p.expect(")"); err != nil {
			return nil, fmt.Errorf("%d values for %d columns: %w", len(cols)+1, len(cols), err)
		}
		if err := t.validate(r); err != nil {
			return nil, err
		}
		newRows = append(newRows, r)
		if !p.accept(",") {
			break
		}
	}
	if err := p.end(); err != nil {
		return nil, err
	}
	// All or nothing, as one SQLite statement.
	next := slices.Clone(t.rows)
	for _, r := range newRows {
		k := t.keyOf(r)
		i := slices.IndexFunc(next, func(x row) bool { return t.keyOf(x) == k })
		switch {
		case i >= 0 && replace:
			next[i] = r
		case i >= 0:
			return nil, fmt.Errorf("UNIQUE constraint failed: %s.%s", t.schema.name, strings.Join(t.schema.key, ", "+t.schema.name+"."))
		default:
			next = append(next, r)
		}
	}
	t.rows = next
	return okResult(uint64(len(newRows))), nil
}

func (a *Admin) execUpdate(p *parser) (*mysql.Result, error) {
	p.next() // UPDATE
	name, err := p.ident()
	if err != nil {
		return nil, err
	}
	t, writable, err := a.resolve(name)
	if err != nil {
		return nil, err
	}
	if !writable {
		return nil, fmt.Errorf("table %s is read-only: edit the main table and LOAD it to runtime", name)
	}
	if err := p.expect("SET"); err != nil {
		return nil, err
	}
	type set struct {
		idx int
		v   value
	}
	var sets []set
	for {
		c, err := p.ident()
		if err != nil {
			return nil, err
		}
		j, ok := t.schema.col(c)
		if !ok {
			return nil, fmt.Errorf("no such column: %s", c)
		}
		if err := p.expect("="); err != nil {
			return nil, err
		}
		l, err := p.literal()
		if err != nil {
			return nil, err
		}
		v, err := canonical(t.schema.columns[j], l)
		if err != nil {
			return nil, err
		}
		sets = append(sets, set{idx: j, v: v})
		if !p.accept(",") {
			break
		}
	}
	where, err := whereClause(p)
	if err != nil {
		return nil, err
	}
	if err := p.end(); err != nil {
		return nil, err
	}
	next := make([]row, len(t.rows))
	var n uint64
	for i, r := range t.rows {
		next[i] = slices.Clone(r)
		if where != nil {
			ok, err := where.eval(rowGetter(t, r))
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		}
		for _, s := range sets {
			next[i][s.idx] = s.v
		}
		if err := t.validate(next[i]); err != nil {
			return nil, err
		}
		n++
	}
	seen := map[string]bool{}
	for _, r := range next {
		k := t.keyOf(r)
		if seen[k] {
			return nil, fmt.Errorf("UNIQUE constraint failed: %s", t.schema.name)
		}
		seen[k] = true
	}
	t.rows = next
	return okResult(n), nil
}

func (a *Admin) execDelete(p *parser) (*mysql.Result, error) {
	p.next() // DELETE
	if err := p.expect("FROM"); err != nil {
		return nil, err
	}
	name, err := p.ident()
	if err != nil {
		return nil, err
	}
	t, writable, err := a.resolve(name)
	if err != nil {
		return nil, err
	}
	if !writable {
		return nil, fmt.Errorf("table %s is read-only: edit the main table and LOAD it to runtime", name)
	}
	where, err := whereClause(p)
	if err != nil {
		return nil, err
	}
	if err := p.end(); err != nil {
		return nil, err
	}
	var keep []row
	var n uint64
	for _, r := range t.rows {
		del := true
		if where != nil {
			ok, err := where.eval(rowGetter(t, r))
			if err != nil {
				return nil, err
			}
			del = ok
		}
		if del {
			n++
		} else {
			keep = append(keep, r)
		}
	}
	t.rows = keep
	return okResult(n), nil
}
