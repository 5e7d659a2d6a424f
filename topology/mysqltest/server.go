// Package mysqltest starts real MariaDB and MySQL servers for tests: one at a
// time or as a primary with replicas using GTID replication, on free loopback
// ports, in temporary directories, always cleaned up when the test ends (also
// when it fails).
//
// MariaDB comes from the host's mariadbd (Debian's mariadb-server). Oracle
// MySQL runs from a root directory made with debootstrap from Debian sid
// (scripts/mysql-root.sh builds it; see README "The two commands"), because
// its mysqld needs a newer libc than the host's. Set REGENT_MYSQL_ROOT to use
// another root, and REGENT_TEST_FLAVORS=mariadb (or mysql) to run one flavour
// only.
//
// Every server starts with read_only=ON, as every production my.cnf should:
// only the test (or Regent) makes a primary writable.
//
// InNetns starts a server inside a network namespace instead, on a host
// address of its own (integration/netlab's hosts); WithAccountHosts gives
// its users the other hosts' addresses.
package mysqltest

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Kind names a server flavour the helper can start.
type Kind string

// The kinds of server the helper starts.
const (
	MariaDB Kind = "mariadb"
	MySQL   Kind = "mysql"
)

// DefaultMySQLRoot is where scripts/mysql-root.sh caches the MySQL root.
const DefaultMySQLRoot = "/var/cache/regent/mysql-root"

// Users every server is created with (see bootstrapSQL). The root user has no
// password and is reachable only over loopback in tests.
const (
	AdminUser     = "regent"
	AdminPassword = "regent-admin-pw"
	ReplUser      = "repl"
	ReplPassword  = "repl-pw"
	AppUser       = "app"
	AppPassword   = "app-pw"
	TestDatabase  = "regent_test"
)

// TB is the part of testing.TB the helper uses. *testing.T satisfies it; so
// can a program (the sandbox behind `make demo`) that starts servers outside
// a test.
type TB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
	Failed() bool
}

// Kinds returns the flavours to test: both unless REGENT_TEST_FLAVORS names a
// subset. A flavour that cannot be started fails the test with what to install:
// a missing server is a broken test machine, never a reason to skip.
func Kinds(t TB) []Kind {
	t.Helper()
	kinds := []Kind{MariaDB, MySQL}
	if env := strings.TrimSpace(os.Getenv("REGENT_TEST_FLAVORS")); env != "" {
		kinds = nil
		for _, k := range strings.Split(env, ",") {
			switch Kind(strings.TrimSpace(k)) {
			case MariaDB:
				kinds = append(kinds, MariaDB)
			case MySQL:
				kinds = append(kinds, MySQL)
			default:
				t.Fatalf("REGENT_TEST_FLAVORS=%q: unknown flavour %q (use mariadb, mysql or both, comma-separated)", env, k)
			}
		}
	}
	for _, k := range kinds {
		if err := available(k); err != nil {
			t.Fatalf("cannot start %s servers: %v", k, err)
		}
	}
	return kinds
}

func mysqlRoot() string {
	if r := os.Getenv("REGENT_MYSQL_ROOT"); r != "" {
		return r
	}
	return DefaultMySQLRoot
}

func available(k Kind) error {
	switch k {
	case MariaDB:
		for _, bin := range []string{"mariadbd", "mariadb-install-db"} {
			if _, err := lookPath(bin); err != nil {
				return fmt.Errorf("%s not found: install Debian's mariadb-server (apt-get install mariadb-server), or run 'make test' as root", bin)
			}
		}
	case MySQL:
		if _, err := os.Stat(filepath.Join(mysqlRoot(), "usr/sbin/mysqld")); err != nil {
			return fmt.Errorf("no MySQL root at %s: run scripts/mysql-root.sh (or 'make test') to build it, or set REGENT_MYSQL_ROOT", mysqlRoot())
		}
	}
	return nil
}

// lookPath finds a binary on PATH or in the sbin directories a non-root PATH
// may lack.
func lookPath(bin string) (string, error) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin"} {
		p := filepath.Join(dir, bin)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found", bin)
}

// Server is one running (or stopped) test server.
type Server struct {
	Kind     Kind
	Name     string
	Host     string
	Port     int
	ServerID uint32

	t       TB
	dir     string // host path of the data directory
	inRoot  string // data directory as the server sees it (differs under chroot)
	errLog  string // host path of the error log
	opts    options
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	db      *sql.DB
	stopped bool
}

type options struct {
	name     string
	serverID uint32
	extra    []string
	tls      *TLSFiles
	// netns, host and port: see InNetns. Empty netns is the test's own
	// namespace; zero port picks a free one.
	netns string
	host  string
	port  int
	// accountHosts: see WithAccountHosts.
	accountHosts []string
}

// Option changes how a server starts.
type Option func(*options)

// WithName names the server (used in messages and as the data directory prefix).
func WithName(name string) Option { return func(o *options) { o.name = name } }

// WithServerID sets server_id; by default each server gets a unique one.
func WithServerID(id uint32) Option { return func(o *options) { o.serverID = id } }

// WithArgs adds mysqld command-line arguments.
func WithArgs(args ...string) Option {
	return func(o *options) { o.extra = append(o.extra, args...) }
}

// InNetns runs the server inside the network namespace netns (ip netns exec
// NETNS mysqld ..., or ... chroot ROOT mysqld for MySQL), listening on addr
// (ip:port, an address of that namespace) and reporting it as its
// report_host and report_port: how replicas and agents on other hosts reach
// it. The namespace must exist and hold the address. The test's root
// connection still goes through the unix socket, which is not bound to a
// network namespace.
func InNetns(netns, addr string) Option {
	return func(o *options) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			// Reported by Start: an address without a port cannot be bound.
			host, port = addr, ""
		}
		o.netns, o.host = netns, host
		o.port, _ = strconv.Atoi(port)
	}
}

// WithAccountHosts creates the admin, replication and application users
// (AdminUser, ReplUser, AppUser) also for each of hosts, MySQL account host
// patterns such as '10.1.2.%': a server in a network namespace sees
// connections from the other hosts' addresses, not from 127.0.0.1 (which
// keeps its accounts).
func WithAccountHosts(hosts ...string) Option {
	return func(o *options) { o.accountHosts = append(o.accountHosts, hosts...) }
}

// WithTLS makes the server offer TLS with the given certificate (see
// NewTLSFiles). The files are copied where the server can read them.
func WithTLS(f *TLSFiles) Option { return func(o *options) { o.tls = f } }

var serverIDs struct {
	sync.Mutex
	next uint32
}

func nextServerID() uint32 {
	serverIDs.Lock()
	defer serverIDs.Unlock()
	if serverIDs.next == 0 {
		// Distinct per test process, so that servers of parallel packages
		// never share an id by accident.
		serverIDs.next = uint32(os.Getpid()%10000)*100 + 1
	}
	serverIDs.next++
	return serverIDs.next
}

// Start starts a server of kind k with read_only=ON, the users in this
// package's constants and an empty test database. The server is killed and its
// files removed when the test ends.
func Start(t TB, k Kind, opts ...Option) *Server {
	t.Helper()
	o := options{name: string(k)}
	for _, f := range opts {
		f(&o)
	}
	if o.serverID == 0 {
		o.serverID = nextServerID()
	}
	if err := available(k); err != nil {
		t.Fatalf("cannot start %s: %v", k, err)
	}
	if o.netns != "" && o.port == 0 {
		t.Fatalf("mysqltest.InNetns(%q, ...): the address needs an explicit port", o.netns)
	}
	tpl, err := template(k)
	if err != nil {
		t.Fatalf("preparing a %s data directory: %v", k, err)
	}
	s := &Server{Kind: k, Name: o.name, Host: "127.0.0.1", ServerID: o.serverID, t: t, opts: o}
	if o.host != "" {
		s.Host = o.host
	}
	base := os.TempDir()
	if k == MySQL {
		base = filepath.Join(mysqlRoot(), "var/lib/regent-test")
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	// Short names: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp(base, "rt-")
	if err != nil {
		t.Fatal(err)
	}
	s.dir = dir
	s.inRoot = dir
	if k == MySQL {
		s.inRoot = "/" + strings.TrimPrefix(strings.TrimPrefix(dir, mysqlRoot()), "/")
	}
	t.Cleanup(s.cleanup)
	if out, err := exec.Command("cp", "-a", tpl+"/.", filepath.Join(dir, "data")).CombinedOutput(); err != nil {
		t.Fatalf("copying the %s template data directory: %v: %s", k, err, out)
	}
	// MySQL derives server_uuid from auto.cnf; each copy needs its own.
	_ = os.Remove(filepath.Join(dir, "data", "auto.cnf"))
	if o.tls != nil {
		if err := o.tls.install(filepath.Join(dir, "tls")); err != nil {
			t.Fatal(err)
		}
	}
	s.errLog = filepath.Join(dir, "err.log")
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if o.port != 0 {
			// A fixed address (a host of its own): no other port to try.
			s.Port = o.port
			lastErr = s.start()
			break
		}
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		s.Port = port
		if lastErr = s.start(); lastErr == nil {
			break
		}
		if !errors.Is(lastErr, errPortInUse) {
			t.Fatalf("starting %s: %v", s, lastErr)
		}
	}
	if lastErr != nil {
		t.Fatalf("starting %s: %v", s, lastErr)
	}
	s.mustExec(bootstrapSQL(k, append([]string{"127.0.0.1"}, o.accountHosts...))...)
	return s
}

func (s *Server) String() string {
	return fmt.Sprintf("%s %s (server_id %d, %s:%d)", s.Kind, s.Name, s.ServerID, s.Host, s.Port)
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// DataDir is the host path of the server's data directory.
func (s *Server) DataDir() string { return filepath.Join(s.dir, "data") }

// PID is the server's process id, 0 when it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

var errPortInUse = errors.New("port in use")

func (s *Server) args() []string {
	d := s.inRoot
	port := strconv.Itoa(s.Port)
	common := []string{
		"--no-defaults", "--user=root",
		"--datadir=" + d + "/data",
		"--socket=" + d + "/s.sock",
		"--port=" + port, "--bind-address=" + s.Host,
		"--server-id=" + strconv.FormatUint(uint64(s.ServerID), 10),
		"--report-host=" + s.Host, "--report-port=" + port,
		"--pid-file=" + d + "/pid",
		"--log-error=" + d + "/err.log",
		"--read-only=ON",
		"--binlog-format=ROW",
		"--skip-name-resolve",
		"--innodb-buffer-pool-size=32M",
		"--max-connections=200",
	}
	switch s.Kind {
	case MariaDB:
		common = append(common,
			"--log-bin=mysql-bin", "--log-slave-updates",
			"--gtid-strict-mode=ON",
			"--innodb-log-file-size=16M",
		)
	case MySQL:
		common = append(common,
			"--log-bin=binlog", "--mysqlx=OFF", "--secure-file-priv=",
			"--gtid-mode=ON", "--enforce-gtid-consistency=ON",
			"--performance-schema-max-table-instances=200",
			// As production servers should: INSTALL PLUGIN cannot run under
			// super_read_only.
			"--plugin-load-add=semisync_source.so;semisync_replica.so",
		)
	}
	if s.opts.tls != nil {
		common = append(common, "--ssl-ca="+d+"/tls/ca.pem", "--ssl-cert="+d+"/tls/server.pem", "--ssl-key="+d+"/tls/server-key.pem")
	}
	return append(common, s.opts.extra...)
}

func (s *Server) start() error {
	var argv []string
	switch s.Kind {
	case MariaDB:
		bin, err := lookPath("mariadbd")
		if err != nil {
			return err
		}
		argv = append([]string{bin}, s.args()...)
	case MySQL:
		chroot, err := lookPath("chroot")
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(mysqlRoot(), "run/mysqld"), 0o755); err != nil {
			return err
		}
		argv = append([]string{chroot, mysqlRoot(), "/usr/sbin/mysqld"}, s.args()...)
	}
	if s.opts.netns != "" {
		// ip netns exec execs the server in place: the process (and its
		// pid, which Kill and Pause signal) stays the server's.
		ip, err := lookPath("ip")
		if err != nil {
			return fmt.Errorf("%w (install iproute2)", err)
		}
		argv = append([]string{ip, "netns", "exec", s.opts.netns}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	// A process group of its own: a Ctrl-C on the test does not reach it
	// first, and Kill can signal it precisely.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	_ = os.Truncate(s.errLog, 0)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited, s.stopped = cmd, exited, false
	s.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			log := s.ErrorLog()
			if strings.Contains(log, "Address already in use") || strings.Contains(log, "Do you already have another") {
				return errPortInUse
			}
			return fmt.Errorf("server exited during start-up; error log:\n%s", tail(log, 30))
		default:
		}
		db, err := s.openRoot()
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err = db.PingContext(ctx)
			cancel()
			if err == nil {
				s.mu.Lock()
				s.db = db
				s.mu.Unlock()
				return nil
			}
			_ = db.Close()
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("server did not accept connections within 60 s (last error: %v); error log:\n%s", err, tail(s.ErrorLog(), 30))
		}
		time.Sleep(50 * time.Millisecond) // poll interval while waiting for start-up
	}
}

// ErrorLog returns the server's error log.
func (s *Server) ErrorLog() string {
	b, _ := os.ReadFile(s.errLog)
	return string(b)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Config returns a go-sql-driver configuration for user on this server.
func (s *Server) Config(user, password string) *mysql.Config {
	c := mysql.NewConfig()
	c.User = user
	c.Passwd = password
	c.Net = "tcp"
	c.Addr = s.Addr()
	c.Timeout = 5 * time.Second
	c.ReadTimeout = 30 * time.Second
	c.WriteTimeout = 30 * time.Second
	c.AllowNativePasswords = true
	// MySQL's caching_sha2_password needs TLS or the server's RSA key for a
	// first login with a password; MySQL makes its own certificates.
	if s.Kind == MySQL {
		c.TLSConfig = "skip-verify"
	}
	c.ParseTime = true
	c.Logger = quiet{}
	return c
}

// quiet drops go-sql-driver's own log lines: servers are killed on purpose in
// these tests, and the driver's complaints would bury the test output.
type quiet struct{}

func (quiet) Print(...any) {}

// TLSDir is the directory holding the server's TLS files as the server sees
// it (inside the MySQL root for MySQL): ca.pem, server.pem, server-key.pem,
// client.pem, client-key.pem. Replication TLS options take these paths.
func (s *Server) TLSDir() string { return s.inRoot + "/tls" }

// Socket is the host path of the server's unix socket.
func (s *Server) Socket() string { return filepath.Join(s.dir, "s.sock") }

// rootConfig connects as root over the unix socket: a fresh MySQL only has
// root@localhost, which a TCP connection with skip-name-resolve is not.
func (s *Server) rootConfig() *mysql.Config {
	c := s.Config("root", "")
	c.Net, c.Addr, c.TLSConfig = "unix", s.Socket(), ""
	return c
}

func (s *Server) openRoot() (*sql.DB, error) {
	conn, err := mysql.NewConnector(s.rootConfig())
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(4)
	return db, nil
}

// DB returns a root connection pool to the server over its unix socket
// (shared; do not close it).
func (s *Server) DB() *sql.DB {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		s.t.Fatalf("%s is not running", s)
	}
	return s.db
}

// Exec runs statements as root and fails the test on the first error.
func (s *Server) Exec(t TB, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		err := retryKilled(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := s.DB().ExecContext(ctx, q)
			return err
		})
		if err != nil {
			t.Fatalf("%s: %s: %v", s, q, err)
		}
	}
}

// retryKilled retries f when the pooled connection it used had been killed
// (Regent kills client sessions when it fences a primary, the test's own
// included): the test then simply reconnects, as an application would.
func retryKilled(f func() error) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = f(); !errors.Is(err, mysql.ErrInvalidConn) && !errors.Is(err, driver.ErrBadConn) {
			return err
		}
	}
	return err
}

func (s *Server) mustExec(stmts ...string) {
	s.t.Helper()
	s.Exec(s.t, stmts...)
}

// QueryString runs a query as root that returns one value and returns it as
// text ("" for NULL).
func (s *Server) QueryString(t TB, q string) string {
	t.Helper()
	var v sql.NullString
	err := retryKilled(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return s.DB().QueryRowContext(ctx, q).Scan(&v)
	})
	if err != nil {
		t.Fatalf("%s: %s: %v", s, q, err)
	}
	return v.String
}

// Kill sends SIGKILL to the server and waits for it to exit.
func (s *Server) Kill(t TB) { t.Helper(); s.signalAndWait(t, syscall.SIGKILL) }

// Stop shuts the server down cleanly (SIGTERM) and waits for it to exit.
func (s *Server) Stop(t TB) { t.Helper(); s.signalAndWait(t, syscall.SIGTERM) }

// Pause freezes the server with SIGSTOP: it keeps its sockets but answers
// nothing, like a hung host. It returns once every thread of the server has
// stopped: the kernel stops the threads of a process one after the other
// as each gets to run, and on a loaded machine a thread can still finish a
// commit milliseconds after the signal was sent.
func (s *Server) Pause(t TB) {
	t.Helper()
	s.signal(t, syscall.SIGSTOP)
	pid := s.PID()
	deadline := time.Now().Add(30 * time.Second)
	for {
		running, err := runningThreads(pid)
		if err != nil {
			t.Fatalf("pausing %s: %v", s, err)
		}
		if running == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pausing %s: %d threads still running 30 s after SIGSTOP", s, running)
		}
		time.Sleep(time.Millisecond) // poll interval while the threads stop
	}
}

// runningThreads counts the threads of process pid that are not stopped
// (nor exiting), from /proc/PID/task/*/stat.
func runningThreads(pid int) (int, error) {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "task")
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, task.Name(), "stat"))
		if err != nil {
			continue // the thread ended meanwhile
		}
		// "tid (comm) S ...": the command may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) {
			return 0, fmt.Errorf("%s/%s/stat: unexpected %q", dir, task.Name(), b)
		}
		switch b[i+2] {
		case 'T', 't', 'Z', 'X':
		default:
			n++
		}
	}
	return n, nil
}

// Resume undoes Pause.
func (s *Server) Resume(t TB) { t.Helper(); s.signal(t, syscall.SIGCONT) }

func (s *Server) signal(t TB, sig syscall.Signal) {
	t.Helper()
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		t.Fatalf("%s is not running", s)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to %s: %v", sig, s, err)
	}
}

func (s *Server) signalAndWait(t TB, sig syscall.Signal) {
	t.Helper()
	s.mu.Lock()
	cmd, exited, db := s.cmd, s.exited, s.db
	s.db, s.stopped = nil, true
	s.mu.Unlock()
	if cmd == nil {
		t.Fatalf("%s is not running", s)
	}
	if db != nil {
		_ = db.Close()
	}
	_ = cmd.Process.Signal(sig)
	_ = cmd.Process.Signal(syscall.SIGCONT) // a paused server must be able to die
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("%s did not exit within 60 s of %v", s, sig)
	}
}

// WaitExited waits, at most timeout, until the server has exited by itself
// (a SHUTDOWN statement).
func (s *Server) WaitExited(t TB, timeout time.Duration) {
	t.Helper()
	s.mu.Lock()
	exited := s.exited
	s.mu.Unlock()
	select {
	case <-exited:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v", s, timeout)
	}
	s.mu.Lock()
	db := s.db
	s.db, s.stopped = nil, true
	s.mu.Unlock()
	if db != nil {
		_ = db.Close()
	}
}

// Exited reports whether the server's process has ended, whoever ended it
// (a SHUTDOWN statement, a signal); WaitExited or Restart then apply.
func (s *Server) Exited() bool {
	s.mu.Lock()
	exited := s.exited
	s.mu.Unlock()
	if exited == nil {
		return false
	}
	select {
	case <-exited:
		return true
	default:
		return false
	}
}

// Restart starts a stopped or killed server again on the same port and data
// directory.
func (s *Server) Restart(t TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatalf("restarting %s: %v", s, err)
	}
}

// RestartWith stops the server (SIGTERM) and starts it again with args
// added to its command line from now on (a later option overrides an
// earlier one: --report-host=other).
func (s *Server) RestartWith(t TB, args ...string) {
	t.Helper()
	s.Stop(t)
	s.opts.extra = append(s.opts.extra, args...)
	s.Restart(t)
}

func (s *Server) cleanup() {
	s.mu.Lock()
	cmd, exited, db, stopped := s.cmd, s.exited, s.db, s.stopped
	s.db = nil
	s.mu.Unlock()
	if db != nil {
		_ = db.Close()
	}
	if cmd != nil && !stopped {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
		}
	}
	if s.t.Failed() {
		s.t.Logf("%s error log (tail):\n%s", s, tail(s.ErrorLog(), 20))
	}
	_ = os.RemoveAll(s.dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// bootstrapSQL creates the test users, for each of hosts, and the test
// database. Every server gets the same users so that any of them can become
// a primary or a replica.
func bootstrapSQL(k Kind, hosts []string) []string {
	stmts := []string{"SET SESSION sql_log_bin=0"}
	for _, h := range hosts {
		stmts = append(stmts,
			fmt.Sprintf("CREATE USER '%s'@'%s' IDENTIFIED BY '%s'", AdminUser, h, AdminPassword),
			fmt.Sprintf("GRANT ALL PRIVILEGES ON *.* TO '%s'@'%s' WITH GRANT OPTION", AdminUser, h),
			fmt.Sprintf("CREATE USER '%s'@'%s' IDENTIFIED BY '%s'", ReplUser, h, ReplPassword),
			fmt.Sprintf("GRANT REPLICATION SLAVE ON *.* TO '%s'@'%s'", ReplUser, h),
			fmt.Sprintf("CREATE USER '%s'@'%s' IDENTIFIED BY '%s'", AppUser, h, AppPassword),
		)
	}
	stmts = append(stmts, fmt.Sprintf("CREATE DATABASE %s", TestDatabase))
	for _, h := range hosts {
		stmts = append(stmts, fmt.Sprintf("GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP ON %s.* TO '%s'@'%s'", TestDatabase, AppUser, h))
	}
	_ = k // the same statements serve both flavours today
	return append(stmts, "SET SESSION sql_log_bin=1")
}

// template returns a freshly initialised data directory for kind k, made once
// per machine and reused (copying is much faster than initialising). A file
// lock keeps parallel test binaries from initialising it twice.
func template(k Kind) (string, error) {
	var base string
	switch k {
	case MariaDB:
		base = filepath.Join(os.TempDir(), "regent-mysqltest")
	case MySQL:
		base = filepath.Join(mysqlRoot(), "var/lib/regent-template")
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(base, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()

	tpl := filepath.Join(base, string(k)+"-data")
	done := tpl + ".complete"
	if _, err := os.Stat(done); err == nil {
		return tpl, nil
	}
	_ = os.RemoveAll(tpl)
	var cmd *exec.Cmd
	switch k {
	case MariaDB:
		bin, err := lookPath("mariadb-install-db")
		if err != nil {
			return "", err
		}
		cmd = exec.Command(bin, "--no-defaults", "--datadir="+tpl,
			"--auth-root-authentication-method=normal", "--skip-test-db", "--user=root")
	case MySQL:
		chroot, err := lookPath("chroot")
		if err != nil {
			return "", err
		}
		inRoot := "/var/lib/regent-template/" + string(k) + "-data"
		cmd = exec.Command(chroot, mysqlRoot(), "/usr/sbin/mysqld", "--no-defaults",
			"--initialize-insecure", "--datadir="+inRoot, "--user=root", "--innodb-buffer-pool-size=32M")
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, tail(out.String(), 30))
	}
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		return "", err
	}
	return tpl, nil
}
