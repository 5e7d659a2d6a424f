// Package mysqlsim is an EMULATION of MariaDB 10.11 servers for Regent's
// scale tests and benchmarks (issue 15): thousands of "instances" in one
// process, where thousands of real mysqld would not fit on one machine. It
// is not MariaDB and proves nothing about MariaDB; the package tests run the
// same calls against a real server and a simulated one and compare what
// Regent reads (TestSimulatedServerReadsLikeMariaDB).
//
// What it emulates, on go-mysql's server package (MySQL protocol,
// mysql_native_password, optional TLS), for the statements Regent's topology
// package sends:
//
//   - the probe: SHOW GLOBAL VARIABLES / STATUS WHERE Variable_name IN (...),
//     SHOW ALL SLAVES STATUS, and the @@ reads (read_only, gtid positions,
//     version, offline_mode, CONNECTION_ID(), SELECT 1);
//   - one GTID domain (0) whose sequence moves as simulated writes arrive on
//     the writable server (Server.Write) and reaches its replicas while
//     their IO and SQL threads run and their source is up;
//   - the actions: SET GLOBAL read_only and the other variables (kept, and
//     read back), STOP/START SLAVE [IO_THREAD|SQL_THREAD], CHANGE MASTER TO
//     (host, port, heartbeat period; refused while the IO thread runs, as
//     MariaDB does), RESET SLAVE ALL, MASTER_GTID_WAIT, SHOW FULL
//     PROCESSLIST, the processlist counts and KILL CONNECTION, SHOW SLAVE
//     HOSTS, FLUSH BINARY LOGS;
//   - faults: Stop (connections refused, as after kill -9), Start again, and
//     Freeze (connections accepted, nothing answered, as SIGSTOP).
//
// What it does not: SQL in general (any other statement is refused with
// error 1064 and recorded: Unhandled), binlog dumps (the agents' binlog
// watches fail and retry, so detection rests on the probes alone),
// semi-sync acknowledgements (a replica's semi-sync side counts as
// connected while its IO thread is), MySQL's dialect.
package mysqlsim

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
)

// Version is what the emulation reports as its version: a MariaDB 10.11
// version string, so that Regent's flavour detection reads it as MariaDB,
// and a comment that says what it is.
const (
	Version        = "10.11.19-MariaDB-log"
	VersionComment = "Regent mysqlsim EMULATION of MariaDB"
)

// Options configure a simulated server.
type Options struct {
	// Addr is host:port to listen on ("127.0.0.1:0" by default). Spread a
	// large fleet over 127.0.0.0/8 to stay within one address's ports.
	Addr string
	// ServerID is the server_id (required, unique in a fleet).
	ServerID uint32
	// User and Password are the only account (regent/regent by default).
	User, Password string
	// TLS, when set, is offered to clients.
	TLS *tls.Config
}

// Fleet is a set of simulated servers that replicate from one another by
// address.
type Fleet struct {
	mu      sync.Mutex
	servers map[string]*Server
	// replicas indexes the servers by the address of their source.
	replicas map[string]map[*Server]struct{}
}

// NewFleet returns an empty fleet.
func NewFleet() *Fleet {
	return &Fleet{servers: map[string]*Server{}, replicas: map[string]map[*Server]struct{}{}}
}

// setSource moves s in the index from the source address from to to ("":
// none).
func (f *Fleet) setSource(s *Server, from, to string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if from != "" {
		delete(f.replicas[from], s)
	}
	if to != "" {
		if f.replicas[to] == nil {
			f.replicas[to] = map[*Server]struct{}{}
		}
		f.replicas[to][s] = struct{}{}
	}
}

// replicasOf lists the servers whose source is addr.
func (f *Fleet) replicasOf(addr string) []*Server {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*Server, 0, len(f.replicas[addr]))
	for s := range f.replicas[addr] {
		out = append(out, s)
	}
	return out
}

// sourceAddr is a replica connection's source address ("" for none).
func (r *replica) sourceAddr() string {
	if r == nil || r.host == "" {
		return ""
	}
	return net.JoinHostPort(r.host, strconv.Itoa(r.port))
}

// server returns the fleet's server at addr (nil if none).
func (f *Fleet) server(addr string) *Server {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.servers[addr]
}

// Close stops every server of the fleet.
func (f *Fleet) Close() {
	f.mu.Lock()
	all := make([]*Server, 0, len(f.servers))
	for _, s := range f.servers {
		all = append(all, s)
	}
	f.mu.Unlock()
	for _, s := range all {
		s.Close()
	}
}

// gtid is the last transaction of domain 0 a server holds.
type gtid struct {
	server uint32
	seq    uint64
}

func (g gtid) String() string {
	if g.seq == 0 {
		return ""
	}
	return fmt.Sprintf("0-%d-%d", g.server, g.seq)
}

// replica is a server's replication connection ("" source: none).
type replica struct {
	host      string
	port      int
	io, sql   bool
	retrieved gtid
	heartbeat time.Duration
	connected time.Time // when the IO thread last connected; zero while not
	ioErrno   int
	ioError   string
	// readPos counts the transactions received, as Read_Master_Log_Pos
	// would move.
	readPos uint64
}

// Server is one simulated MariaDB server.
type Server struct {
	fleet *Fleet
	opts  Options
	srv   *server.Server
	start time.Time

	mu        sync.Mutex
	ln        net.Listener
	addr      string
	up        bool
	frozen    chan struct{} // closed to thaw; nil when not frozen
	conns     map[uint32]*session
	nextID    uint32
	vars      map[string]string
	executed  gtid
	rep       *replica
	unhandled []string
	wg        sync.WaitGroup
}

// session is one client connection.
type session struct {
	id    uint32
	user  string
	host  string
	nc    net.Conn
	since time.Time
	query string
}

// Start starts a simulated server in the fleet.
func (f *Fleet) Start(opts Options) (*Server, error) {
	if opts.ServerID == 0 {
		return nil, errors.New("mysqlsim: a server needs a server_id")
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.User == "" {
		opts.User, opts.Password = "regent", "regent"
	}
	s := &Server{
		fleet: f,
		opts:  opts,
		srv:   server.NewServer(Version, mysql.DEFAULT_COLLATION_ID, mysql.AUTH_NATIVE_PASSWORD, nil, opts.TLS),
		start: time.Now(),
		conns: map[uint32]*session{},
		vars:  defaultVariables(opts.ServerID),
	}
	if err := s.listen(opts.Addr); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.servers[s.addr] = s
	f.mu.Unlock()
	return s, nil
}

// defaultVariables are a replica's settings as deploy/regent's my.cnf makes
// them: read-only, binlog with log_slave_updates, GTID strict mode, the
// semi-sync plugin's both sides off until Regent configures them.
func defaultVariables(id uint32) map[string]string {
	return map[string]string{
		"server_id":                             strconv.FormatUint(uint64(id), 10),
		"version":                               Version,
		"version_comment":                       VersionComment,
		"read_only":                             "ON",
		"log_bin":                               "ON",
		"log_slave_updates":                     "ON",
		"binlog_format":                         "ROW",
		"gtid_strict_mode":                      "ON",
		"slave_net_timeout":                     "15",
		"rpl_semi_sync_slave_kill_conn_timeout": "5",
		"rpl_semi_sync_master_enabled":          "OFF",
		"rpl_semi_sync_slave_enabled":           "OFF",
		"rpl_semi_sync_master_wait_point":       "AFTER_SYNC",
		"rpl_semi_sync_master_timeout":          "10000",
		"rpl_semi_sync_master_wait_no_slave":    "ON",
		"offline_mode":                          "OFF",
		"sql_mode":                              "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION",
	}
}

// Addr is the server's host:port.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// ServerID is the server's server_id.
func (s *Server) ServerID() uint32 { return s.opts.ServerID }

func (s *Server) listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("mysqlsim: %w", err)
	}
	s.mu.Lock()
	s.ln, s.addr, s.up = ln, ln.Addr().String(), true
	s.mu.Unlock()
	s.wg.Go(func() { s.accept(ln) })
	return nil
}

func (s *Server) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.wg.Go(func() { s.serve(c) })
	}
}

// serve runs one client connection: the handshake, then its commands, each
// held while the server is frozen.
func (s *Server) serve(c net.Conn) {
	defer c.Close()
	s.waitThawed()
	auth := server.NewInMemoryAuthenticationHandler(mysql.AUTH_NATIVE_PASSWORD)
	if err := auth.AddUser(s.opts.User, s.opts.Password); err != nil {
		return
	}
	h := &handler{s: s}
	conn, err := s.srv.NewCustomizedConn(newFlushingConn(c), auth, h)
	if err != nil {
		return
	}
	h.conn = conn
	host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	s.mu.Lock()
	if !s.up {
		s.mu.Unlock()
		return
	}
	s.nextID++
	h.sess = &session{id: s.nextID, user: conn.GetUser(), host: host, nc: c, since: time.Now()}
	s.conns[h.sess.id] = h.sess
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, h.sess.id)
		s.mu.Unlock()
	}()
	for !conn.Closed() {
		if err := conn.HandleCommand(); err != nil {
			return
		}
	}
}

// flushingConn gathers a response's packets and sends them when the server
// turns to read the next command, as mysqld does through its network buffer:
// go-mysql's server writes each packet with a system call of its own, which
// made the emulation, and the client reading it, cost several times what a
// result set costs against a real server. The protocol is request and
// response, so flushing before every read never holds an answer back.
type flushingConn struct {
	net.Conn
	w *bufio.Writer
}

func newFlushingConn(c net.Conn) *flushingConn {
	return &flushingConn{Conn: c, w: bufio.NewWriterSize(c, 16<<10)}
}

func (c *flushingConn) Write(b []byte) (int, error) { return c.w.Write(b) }

func (c *flushingConn) Read(b []byte) (int, error) {
	if c.w.Buffered() > 0 {
		if err := c.w.Flush(); err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(b)
}

// waitThawed returns at once unless the server is frozen.
func (s *Server) waitThawed() {
	s.mu.Lock()
	ch := s.frozen
	s.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

// Stop is kill -9: the listener and every connection close, and
// connections are refused until Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	if !s.up {
		s.mu.Unlock()
		return
	}
	s.up = false
	ln := s.ln
	for _, c := range s.conns {
		_ = c.nc.Close()
	}
	if s.frozen != nil {
		close(s.frozen)
		s.frozen = nil
	}
	s.mu.Unlock()
	_ = ln.Close()
	s.wg.Wait()
}

// Restart starts a stopped server again on the same address, with its data
// and settings: read_only comes back ON, as deploy/regent's my.cnf has it.
func (s *Server) Restart() error {
	s.mu.Lock()
	if s.up {
		s.mu.Unlock()
		return nil
	}
	addr := s.addr
	s.vars["read_only"] = "ON"
	if s.rep != nil {
		s.rep.connected = time.Time{}
	}
	s.mu.Unlock()
	return s.listen(addr)
}

// Freeze makes the server accept connections and answer nothing (SIGSTOP)
// until Thaw.
func (s *Server) Freeze() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.frozen == nil && s.up {
		s.frozen = make(chan struct{})
	}
}

// Thaw lets a frozen server answer again.
func (s *Server) Thaw() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.frozen != nil {
		close(s.frozen)
		s.frozen = nil
	}
}

// Close stops the server for good and takes it out of its fleet.
func (s *Server) Close() {
	s.Stop()
	s.fleet.mu.Lock()
	if s.fleet.servers[s.addr] == s {
		delete(s.fleet.servers, s.addr)
	}
	s.fleet.mu.Unlock()
}

// ErrReadOnly is what Write returns on a read-only server.
var ErrReadOnly = errors.New("mysqlsim: the server is read-only")

// Write commits n simulated transactions: the domain's sequence moves on,
// with this server as their origin. A read-only or stopped server refuses.
func (s *Server) Write(n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.up {
		return errors.New("mysqlsim: the server is stopped")
	}
	if boolVar(s.vars["read_only"]) {
		return ErrReadOnly
	}
	s.executed = gtid{server: s.opts.ServerID, seq: s.executed.seq + uint64(n)}
	return nil
}

// Replicate points the server at a source and starts both threads, as
// the set-up of a replica before Regent manages it does (CHANGE MASTER TO
// ..., START SLAVE), with a heartbeat period.
func (s *Server) Replicate(source *Server, heartbeat time.Duration) {
	host, portText, _ := net.SplitHostPort(source.Addr())
	port, _ := strconv.Atoi(portText)
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.rep.sourceAddr()
	s.rep = &replica{host: host, port: port, io: true, sql: true, heartbeat: heartbeat}
	s.fleet.setSource(s, old, s.rep.sourceAddr())
}

// SetVariable sets a global variable directly (a my.cnf setting).
func (s *Server) SetVariable(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vars[name] = value
}

// Executed is the last transaction the server holds, as gtid_binlog_pos.
func (s *Server) Executed() string {
	s.sync()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.executed.String()
}

// Unhandled returns the statements the emulation refused as not emulated.
func (s *Server) Unhandled() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.unhandled...)
}

// sync brings the replica's threads up to date with its source: while the
// IO thread runs and the source is up and not frozen, it is connected and
// has received all the source holds; while the SQL thread runs, what was
// received is executed.
func (s *Server) sync() {
	s.mu.Lock()
	r := s.rep
	if r == nil || !r.io {
		if r != nil && r.sql && r.retrieved.seq > s.executed.seq {
			s.executed = r.retrieved
		}
		s.mu.Unlock()
		return
	}
	addr := net.JoinHostPort(r.host, strconv.Itoa(r.port))
	s.mu.Unlock()
	var src gtid
	ok := false
	if source := s.fleet.server(addr); source != nil && source != s {
		source.mu.Lock()
		if source.up && source.frozen == nil {
			// The source's own replica thread state is its own affair;
			// what it holds is what it executed.
			src, ok = source.executed, true
		}
		source.mu.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rep != r || !r.io {
		return
	}
	switch {
	case ok && r.connected.IsZero():
		r.connected, r.ioErrno, r.ioError = time.Now(), 0, ""
	case !ok && !r.connected.IsZero():
		r.connected = time.Time{}
		r.ioErrno, r.ioError = 2013, "error reconnecting to master 'regent@"+addr+"' - retry-time: 1  maximum-retries: 100000  message: Lost connection to server during query"
	case !ok:
		r.ioErrno, r.ioError = 2003, "error connecting to master 'regent@"+addr+"' - retry-time: 1  maximum-retries: 100000  message: Can't connect to server on '"+r.host+"' (111 \"Connection refused\")"
	}
	if ok && src.seq > r.retrieved.seq {
		r.readPos += src.seq - r.retrieved.seq
		r.retrieved = src
	}
	if r.sql && r.retrieved.seq > s.executed.seq {
		s.executed = r.retrieved
	}
}

func boolVar(v string) bool {
	switch v {
	case "ON", "1", "on", "TRUE", "true":
		return true
	}
	return false
}

// Source is the address the server replicates from ("" when none).
func (s *Server) Source() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rep.sourceAddr()
}

// ReadOnly reports read_only.
func (s *Server) ReadOnly() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return boolVar(s.vars["read_only"])
}
