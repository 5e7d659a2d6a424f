package topology

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
)

// ConnConfig says how to reach one instance.
type ConnConfig struct {
	// Addr is host:port. Socket, when set, is used instead (the agent's own
	// local instance: "connection refused" on the local socket is strong
	// evidence that mysqld is gone).
	Addr   string
	Socket string

	User string
	// Password comes from a file or the environment, never from the command
	// line; it never appears in errors or logs.
	Password string

	ConnectTimeout time.Duration
	ReadTimeout    time.Duration
	WriteTimeout   time.Duration
	// MaxOpenConns bounds the pool per instance; 0 means 2 (a probe and an
	// action may run at once).
	MaxOpenConns int

	// TLS for the client connection; nil means plain text.
	TLS *tls.Config
}

// LogValue keeps the password out of structured logs.
func (c ConnConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("addr", c.Addr), slog.String("socket", c.Socket), slog.String("user", c.User))
}

// String keeps the password out of fmt output.
func (c ConnConfig) String() string {
	return fmt.Sprintf("%s@%s", c.User, c.address())
}

func (c ConnConfig) address() string {
	if c.Socket != "" {
		return "unix:" + c.Socket
	}
	return c.Addr
}

// Validate checks the fields a connection cannot do without.
func (c ConnConfig) Validate() error {
	if c.Addr == "" && c.Socket == "" {
		return errors.New("no address: set addr (host:port) or socket")
	}
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			return fmt.Errorf("addr %q: %w (want host:port)", c.Addr, err)
		}
	}
	if c.User == "" {
		return errors.New("no user")
	}
	return nil
}

// TLSFiles names PEM files for a TLS client configuration.
type TLSFiles struct {
	CAFile   string // verify the server against this CA; empty: system roots
	CertFile string // optional client certificate
	KeyFile  string
	// ServerName overrides the name checked in the server certificate.
	ServerName string
	// InsecureSkipVerify encrypts without verifying the server: for servers
	// that made their own certificates. Not for production.
	InsecureSkipVerify bool
}

// ClientTLS builds a *tls.Config from files.
func ClientTLS(f TLSFiles) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName, InsecureSkipVerify: f.InsecureSkipVerify} //nolint:gosec // opt-in, documented
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", f.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, errors.New("client certificate and key must be given together")
	}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Instance is a small connection pool to one MySQL or MariaDB server, with
// every call bounded by its ctx and the configured timeouts.
type Instance struct {
	addr string
	user string
	db   *sql.DB
	log  *slog.Logger

	readTimeout   time.Duration
	lastIOTimeout atomic.Int64 // unix nanoseconds
	// writes counts the writes to the instance's connections (a command is
	// one write) and dials the connections opened: tests count round trips
	// and logins with them.
	writes, dials atomic.Int64

	mu     sync.Mutex
	flavor Flavor

	// afterStop, when set (tests), runs in ChangeSource right after the
	// replica threads were stopped.
	afterStop func()
}

// Open prepares a pool to the instance; it does not connect yet.
func Open(cfg ConnConfig, log *slog.Logger) (*Instance, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("instance %s: %w", cfg.address(), err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mc := mysql.NewConfig()
	mc.User = cfg.User
	mc.Passwd = cfg.Password
	if cfg.Socket != "" {
		mc.Net, mc.Addr = "unix", cfg.Socket
	} else {
		mc.Net, mc.Addr = "tcp", cfg.Addr
	}
	mc.Timeout = orDefault(cfg.ConnectTimeout, 2*time.Second)
	mc.ReadTimeout = orDefault(cfg.ReadTimeout, 10*time.Second)
	mc.WriteTimeout = orDefault(cfg.WriteTimeout, 10*time.Second)
	mc.AllowNativePasswords = true
	mc.InterpolateParams = true
	mc.TLS = cfg.TLS
	mc.Logger = discardLogger{}
	// The probe sends its reads as one multi-statement (probe.go). Actions
	// send one statement at a time on the same connections, every value in
	// them quoted for the session (quoteFor); see docs/architecture.md,
	// "The probe: one round trip".
	mc.MultiStatements = true
	inst := &Instance{addr: cfg.address(), user: cfg.User, readTimeout: mc.ReadTimeout}
	mc.DialFunc = inst.dial
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("instance %s: %w", cfg.address(), err)
	}
	db := sql.OpenDB(conn)
	n := cfg.MaxOpenConns
	if n <= 0 {
		n = 2
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(time.Minute)
	inst.db = db
	inst.log = log.With(slog.String("instance", cfg.address()))
	return inst, nil
}

// dial opens connections for the driver through a wrapper that remembers
// read and write timeouts: the driver reports those as "invalid connection",
// and detection must tell a silent server from a dropped connection.
func (i *Instance) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	i.dials.Add(1)
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &notingConn{Conn: c, note: i.noteIOError, writes: &i.writes}, nil
}

func (i *Instance) noteIOError(err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		i.lastIOTimeout.Store(time.Now().UnixNano())
	}
}

// notingConn hands every read and write error to note. The client libraries
// flatten them (go-sql-driver into "invalid connection", go-mysql into
// "connection was bad" with the cause as text), and failure detection must
// tell a timeout from a reset.
type notingConn struct {
	net.Conn
	note   func(error)
	writes *atomic.Int64 // nil: not counted
}

func (c *notingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil {
		c.note(err)
	}
	return n, err
}

func (c *notingConn) Write(b []byte) (int, error) {
	if c.writes != nil {
		c.writes.Add(1)
	}
	n, err := c.Conn.Write(b)
	if err != nil {
		c.note(err)
	}
	return n, err
}

// recentTimeout reports whether a connection of the pool timed out within the
// last read timeout: a "gone away" just after is that timeout, reported by the
// driver under another name.
func (i *Instance) recentTimeout() bool {
	at := i.lastIOTimeout.Load()
	return at != 0 && time.Since(time.Unix(0, at)) < i.readTimeout+time.Second
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// discardLogger silences go-sql-driver's own logging: Regent reports errors
// itself, classified, through slog.
type discardLogger struct{}

func (discardLogger) Print(...any) {}

// Addr is the address the instance was opened with.
func (i *Instance) Addr() string { return i.addr }

// Close closes the pool. It is safe to call more than once.
func (i *Instance) Close() error { return i.db.Close() }

// Flavor returns the instance's flavour, asking the server the first time.
func (i *Instance) Flavor(ctx context.Context) (Flavor, error) {
	if f := i.cachedFlavor(); f != FlavorUnknown {
		return f, nil
	}
	var version, comment string
	if err := i.db.QueryRowContext(ctx, "SELECT @@version, @@version_comment").Scan(&version, &comment); err != nil {
		return FlavorUnknown, i.wrap("read version", err)
	}
	f, err := ParseFlavor(version, comment)
	if err != nil {
		return FlavorUnknown, &Error{Class: ClassUnknown, Op: "read version", Addr: i.addr, Err: err}
	}
	i.setFlavor(f)
	return f, nil
}

// cachedFlavor is the flavour the last probe or Flavor call found, or
// FlavorUnknown.
func (i *Instance) cachedFlavor() Flavor {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.flavor
}

func (i *Instance) setFlavor(f Flavor) {
	i.mu.Lock()
	i.flavor = f
	i.mu.Unlock()
}

// exec runs statements in order on one connection, stopping at the first
// error. Statements that carry secrets must go through changeSource, which
// keeps them out of errors.
func (i *Instance) exec(ctx context.Context, op string, stmts ...string) error {
	conn, err := i.db.Conn(ctx)
	if err != nil {
		return i.wrap(op, err)
	}
	defer conn.Close()
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return i.wrap(op, fmt.Errorf("%s: %w", q, err))
		}
	}
	return nil
}

// changeSource runs the CHANGE statement built by build for the session it
// runs in: the strings are quoted for that session's sql_mode (a server or
// an account may set NO_BACKSLASH_ESCAPES), so the mode is read on the same
// connection first. The statement holds the replication password: errors
// name op, never the statement, and the server's message is redacted (see
// redactServerError).
func (i *Instance) changeSource(ctx context.Context, op string, build func(noBackslashEscapes bool) (string, error), secrets ...string) error {
	conn, err := i.db.Conn(ctx)
	if err != nil {
		return i.wrap(op, err)
	}
	defer conn.Close()
	var mode string
	if err := conn.QueryRowContext(ctx, "SELECT @@SESSION.sql_mode").Scan(&mode); err != nil {
		return i.wrap(op+": read sql_mode", err)
	}
	stmt, err := build(hasNoBackslashEscapes(mode))
	if err != nil {
		return &Error{Class: ClassUnknown, Op: op, Addr: i.addr, Err: err}
	}
	if _, err := conn.ExecContext(ctx, stmt); err != nil {
		return i.wrap(op, redactServerError(err, secrets...))
	}
	return nil
}

// redactServerError returns err with the server's message stripped of what
// may be a secret of the statement that failed. Servers quote the text they
// choke on: MariaDB answers a replication password over 96 characters with
// "String '<its first 64 characters>...' is too long for MASTER_PASSWORD",
// and a syntax error quotes the statement from the point it failed
// ("near '<the rest of a password>, MASTER_...' at line 1"). Such errors go
// to the log and into the operation's history in Raft, so everything
// between the first and the last quote of the message goes, and any
// remaining occurrence of a secret too. The error number, SQLSTATE and the
// unquoted words stay: they say what went wrong.
func redactServerError(err error, secrets ...string) error {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return err
	}
	msg := me.Message
	if first, last := strings.IndexByte(msg, '\''), strings.LastIndexByte(msg, '\''); first >= 0 {
		if last == first {
			last = len(msg) - 1 // an unterminated quote: the rest may be secret
		}
		msg = msg[:first] + "'<redacted>'" + msg[last+1:]
	}
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "<redacted>")
		}
	}
	return &mysql.MySQLError{Number: me.Number, SQLState: me.SQLState, Message: msg}
}

// queryRows runs q and returns every row as column name → value (NULL as a
// missing key), the form SHOW statements are easiest to map from.
func queryRows(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string) ([]map[string]string, error) {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return readRowMaps(rows)
}

// nameValues runs q, a two-column Variable_name/Value statement, and returns
// its rows as a map.
func nameValues(ctx context.Context, conn *sql.Conn, q string) (map[string]string, error) {
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return readNameValues(rows)
}

// readRowMaps reads the current result set of rows as queryRows returns it.
func readRowMaps(rows *sql.Rows) ([]map[string]string, error) {
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []map[string]string
	for rows.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for k := range vals {
			ptrs[k] = &vals[k]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		m := make(map[string]string, len(cols))
		for k, c := range cols {
			if vals[k] != nil {
				m[c] = string(vals[k])
			}
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
