package proxyhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
)

// ProxySQLConfig is one ProxySQL instance in a cluster's routing section.
//
//	proxysql:
//	  - name: proxysql1
//	    admin: 10.0.0.7:6032            # or unix:/var/lib/proxysql/proxysql_admin.sock
//	    user: regent
//	    password_file: /etc/regent/proxysql.pass
//	    writer_hostgroup: 10
//	    reader_hostgroup: 20
//	    old_primary: remove             # remove | offline_soft | offline_hard
//	    tls: {enabled: true, ca_file: /etc/regent/tls/proxysql-ca.pem}
type ProxySQLConfig struct {
	Name string `yaml:"name" json:"name"`
	// Admin is the admin interface: host:port (usually 6032) or unix:/path.
	Admin string `yaml:"admin" json:"admin"`
	User  string `yaml:"user" json:"user"`
	// PasswordFile holds the admin password (first line); other users must
	// have no permission on it. PasswordEnv names an environment variable
	// that holds it instead. Never on a command line.
	PasswordFile string `yaml:"password_file" json:"password_file"`
	PasswordEnv  string `yaml:"password_env" json:"password_env"`
	// Password is for programs and tests that build the config in code.
	Password string `yaml:"-" json:"-"`

	// WriterHostgroup receives the new primary; required.
	WriterHostgroup *int `yaml:"writer_hostgroup" json:"writer_hostgroup"`
	// ReaderHostgroup, when set, is kept in step: replicas ONLINE, the new
	// primary out of it (unless WriterIsAlsoReader), the old one OFFLINE_SOFT.
	ReaderHostgroup    *int `yaml:"reader_hostgroup" json:"reader_hostgroup"`
	WriterIsAlsoReader bool `yaml:"writer_is_also_reader" json:"writer_is_also_reader"`
	// OldPrimary: remove (default), offline_soft or offline_hard; what
	// happens to writer-hostgroup rows other than the new primary.
	OldPrimary string `yaml:"old_primary" json:"old_primary"`
	// Servers maps an instance name to its hostname:port in mysql_servers
	// when ProxySQL reaches it by another address than the one Regent uses.
	Servers map[string]string `yaml:"servers" json:"servers"`
	// SkipSaveToDisk leaves out SAVE MYSQL SERVERS TO DISK (the route then
	// lasts until ProxySQL restarts). Saving is the default.
	SkipSaveToDisk bool `yaml:"skip_save_to_disk" json:"skip_save_to_disk"`
	// TLS encrypts the admin connection. ProxySQL 2.x accepts TLS on its
	// admin port once mysql-have_ssl is true (with the certificates of its
	// data directory). Without TLS the admin password's login exchange and
	// every statement cross the network in the clear: use TLS whenever the
	// admin interface is not on this host.
	TLS ProxySQLTLS `yaml:"tls" json:"tls"`
	// Timeout bounds one attempt (connect and all statements). Default 5s.
	Timeout time.Duration `yaml:"timeout" json:"timeout"`
	Retry   RetryPolicy   `yaml:"retry" json:"retry"`
}

// ProxySQLTLS is the TLS of the admin connection.
type ProxySQLTLS struct {
	// Enabled requires TLS: a ProxySQL that does not offer it is refused,
	// never talked to in plain text.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// CAFile verifies ProxySQL's certificate (PEM); empty: the system's
	// roots.
	CAFile string `yaml:"ca_file" json:"ca_file"`
	// CertFile and KeyFile are a client certificate, when ProxySQL asks for
	// one.
	CertFile string `yaml:"cert_file" json:"cert_file"`
	KeyFile  string `yaml:"key_file" json:"key_file"`
	// ServerName is the name checked in ProxySQL's certificate; default the
	// host of admin.
	ServerName string `yaml:"server_name" json:"server_name"`
	// InsecureSkipVerify encrypts without checking who answers (ProxySQL's
	// self-made certificate): a man in the middle is then not stopped.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify" json:"insecure_skip_verify"`
}

func (t ProxySQLTLS) validate(key string) error {
	if !t.Enabled {
		if t != (ProxySQLTLS{}) {
			return fmt.Errorf("%s: set enabled: true to use TLS (the other keys do nothing without it)", key)
		}
		return nil
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return fmt.Errorf("%s: cert_file and key_file go together", key)
	}
	return nil
}

// clientConfig loads the files; nil when TLS is off.
func (t ProxySQLTLS) clientConfig() (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, documented
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file %s holds no PEM certificate", t.CAFile)
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file/key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Hostgroup returns a pointer to n, for ProxySQLConfig's hostgroup fields.
func Hostgroup(n int) *int { return &n }

// Validate checks the entry; instances, when not nil, are the cluster's
// instance names and every servers key must be one of them.
func (c ProxySQLConfig) Validate(key string, instances []string) error {
	if c.Name == "" {
		return fmt.Errorf("%s.name: required (a label for reports, e.g. proxysql1)", key)
	}
	if c.Admin == "" {
		return fmt.Errorf("%s.admin: required (the admin interface, e.g. 127.0.0.1:6032)", key)
	}
	if _, _, err := proxySQLNetAddr(c.Admin); err != nil {
		return fmt.Errorf("%s.admin: %w", key, err)
	}
	if c.User == "" {
		return fmt.Errorf("%s.user: required (an admin-credentials user of ProxySQL)", key)
	}
	if c.PasswordFile != "" && c.PasswordEnv != "" {
		return fmt.Errorf("%s: set password_file or password_env, not both", key)
	}
	if c.WriterHostgroup == nil {
		return fmt.Errorf("%s.writer_hostgroup: required (the hostgroup your query rules send writes to)", key)
	}
	if *c.WriterHostgroup < 0 {
		return fmt.Errorf("%s.writer_hostgroup: %d is negative", key, *c.WriterHostgroup)
	}
	if c.ReaderHostgroup != nil {
		if *c.ReaderHostgroup < 0 {
			return fmt.Errorf("%s.reader_hostgroup: %d is negative", key, *c.ReaderHostgroup)
		}
		if *c.ReaderHostgroup == *c.WriterHostgroup {
			return fmt.Errorf("%s.reader_hostgroup: equals writer_hostgroup (%d); use two hostgroups", key, *c.WriterHostgroup)
		}
	} else if c.WriterIsAlsoReader {
		return fmt.Errorf("%s.writer_is_also_reader: needs reader_hostgroup", key)
	}
	switch c.OldPrimary {
	case "", OldPrimaryRemove, OldPrimaryOfflineSoft, OldPrimaryOfflineHard:
	default:
		return fmt.Errorf("%s.old_primary: %q; use remove, offline_soft or offline_hard", key, c.OldPrimary)
	}
	for _, inst := range slices.Sorted(maps.Keys(c.Servers)) {
		if _, err := parseHostPort(c.Servers[inst]); err != nil {
			return fmt.Errorf("%s.servers.%s: %w", key, inst, err)
		}
		if instances != nil && !slices.Contains(instances, inst) {
			return fmt.Errorf("%s.servers.%s: no instance of that name in the cluster (instances: %s)", key, inst, strings.Join(instances, ", "))
		}
	}
	if err := c.TLS.validate(key + ".tls"); err != nil {
		return err
	}
	if c.Timeout < 0 {
		return fmt.Errorf("%s.timeout: must not be negative", key)
	}
	return c.Retry.validate(key + ".retry")
}

func parseHostPort(s string) (hostPort, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil || h == "" {
		return hostPort{}, fmt.Errorf("%q: want hostname:port", s)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return hostPort{}, fmt.Errorf("%q: port must be 1..65535", s)
	}
	return hostPort{host: h, port: port}, nil
}

// readPrivateFile reads a file that holds a secret, refusing it when other
// users have any permission on it (the rule of Regent's tokens file).
func readPrivateFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if perm := st.Mode().Perm(); perm&0o007 != 0 {
		return nil, fmt.Errorf("%s is readable by other users (mode %v): run chmod 600 %s (or 640 with a dedicated group)", path, perm, path)
	}
	return io.ReadAll(io.LimitReader(f, 1<<20))
}

func proxySQLNetAddr(s string) (network, addr string, err error) {
	if path, ok := strings.CutPrefix(s, "unix:"); ok {
		if path == "" {
			return "", "", errors.New("unix: needs a socket path")
		}
		return "unix", path, nil
	}
	if _, err := parseHostPort(s); err != nil {
		return "", "", fmt.Errorf("%w (or unix:/path/to/admin.sock)", err)
	}
	return "tcp", s, nil
}

// Errors of the ProxySQL target.
var (
	// ErrProxySQLMixedMode: mysql_replication_hostgroups covers a hostgroup
	// Regent manages, so ProxySQL's monitor would move servers by read_only
	// behind Regent's back.
	ErrProxySQLMixedMode = errors.New("proxysql manages these hostgroups itself (mysql_replication_hostgroups)")
	// ErrProxySQLNotApplied: runtime_mysql_servers does not show the route
	// after LOAD MYSQL SERVERS TO RUNTIME.
	ErrProxySQLNotApplied = errors.New("proxysql runtime does not show the new route")
)

// ProxySQLTarget moves the write route in one ProxySQL through its admin
// interface. It edits mysql_servers itself; see the package documentation for
// why it refuses a setup where mysql_replication_hostgroups does it too.
type ProxySQLTarget struct {
	cfg      ProxySQLConfig
	servers  map[string]hostPort
	writerHG int
	readerHG int
	logger   *slog.Logger

	mu     sync.Mutex
	db     *sql.DB
	closed bool
}

var _ Target = (*ProxySQLTarget)(nil)

// NewProxySQLTarget validates cfg, reads the password (file or environment)
// and returns the target. It does not connect.
func NewProxySQLTarget(cfg ProxySQLConfig, logger *slog.Logger) (*ProxySQLTarget, error) {
	if err := cfg.Validate("proxysql["+cfg.Name+"]", nil); err != nil {
		return nil, err
	}
	password := cfg.Password
	switch {
	case cfg.PasswordFile != "":
		b, err := readPrivateFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("proxysql %s: reading password_file: %w", cfg.Name, err)
		}
		password, _, _ = strings.Cut(string(b), "\n")
		password = strings.TrimRight(password, "\r")
	case cfg.PasswordEnv != "":
		v, ok := os.LookupEnv(cfg.PasswordEnv)
		if !ok {
			return nil, fmt.Errorf("proxysql %s: password_env names %s, which is not set in the agent's environment", cfg.Name, cfg.PasswordEnv)
		}
		// A copy: the agent may overwrite the environment's memory once
		// everything is read (agent.ScrubEnvironment).
		password = strings.Clone(v)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.OldPrimary == "" {
		cfg.OldPrimary = OldPrimaryRemove
	}
	network, addr, _ := proxySQLNetAddr(cfg.Admin)
	tlsCfg, err := cfg.TLS.clientConfig()
	if err != nil {
		return nil, fmt.Errorf("proxysql %s: %w", cfg.Name, err)
	}
	mc := mysql.NewConfig()
	mc.TLS = tlsCfg
	mc.User = cfg.User
	mc.Passwd = password
	mc.Net = network
	mc.Addr = addr
	// Statements are sent as text with values quoted by serverOp.sql; no
	// placeholders, so neither prepared statements nor the driver's
	// (backslash) escaping are involved.
	mc.Timeout = cfg.Timeout
	mc.ReadTimeout = cfg.Timeout
	mc.WriteTimeout = cfg.Timeout
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("proxysql %s: %w", cfg.Name, err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(2)
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(time.Minute)

	servers := map[string]hostPort{}
	for inst, s := range cfg.Servers {
		servers[inst], _ = parseHostPort(s) // validated
	}
	readerHG := -1
	if cfg.ReaderHostgroup != nil {
		readerHG = *cfg.ReaderHostgroup
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &ProxySQLTarget{cfg: cfg, servers: servers, writerHG: *cfg.WriterHostgroup, readerHG: readerHG, db: db,
		logger: logger.With(logKeyTarget, "proxysql "+cfg.Name)}, nil
}

// Name implements Target.
func (t *ProxySQLTarget) Name() string { return "proxysql " + t.cfg.Name }

// Close closes the connection pool; safe to call twice.
func (t *ProxySQLTarget) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	return t.db.Close()
}

func (t *ProxySQLTarget) address(e Endpoint) (hostPort, error) {
	if hp, ok := t.servers[e.Name]; ok {
		return hp, nil
	}
	if e.Host == "" || e.Port <= 0 {
		return hostPort{}, permanent(fmt.Errorf("instance %s has no address for proxysql %s: give its host and port, or add it to servers", e.Name, t.cfg.Name))
	}
	return hostPort{host: e.Host, port: e.Port}, nil
}

func (t *ProxySQLTarget) conn(ctx context.Context) (*sql.Conn, error) {
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return nil, permanent(ErrClosed)
	}
	c, err := t.db.Conn(ctx)
	if err == nil {
		// database/sql opens lazily; make sure this one talks.
		err = c.PingContext(ctx)
		if err != nil {
			c.Close()
		}
	}
	if err != nil {
		err = fmt.Errorf("connecting to proxysql %s admin at %s: %w", t.cfg.Name, t.cfg.Admin, err)
		if isAccessDenied(err) {
			return nil, permanent(fmt.Errorf("%w: check user and the password (password_file or password_env) against ProxySQL's admin-admin_credentials", err))
		}
		return nil, err
	}
	return c, nil
}

// Route makes the new primary the only ONLINE server of the writer hostgroup,
// loads the change to runtime, saves it to disk and reads the runtime back.
func (t *ProxySQLTarget) Route(ctx context.Context, change RouteChange) (Outcome, error) {
	newHP, err := t.address(change.NewPrimary)
	if err != nil {
		return Outcome{}, err
	}
	var oldHP hostPort
	if change.OldPrimary.Name != "" {
		if hp, err := t.address(change.OldPrimary); err == nil {
			oldHP = hp
		}
	}
	var replicas []hostPort
	for _, r := range change.Replicas {
		hp, err := t.address(r)
		if err != nil {
			return Outcome{}, err
		}
		replicas = append(replicas, hp)
	}
	plan := proxySQLRoute{writerHG: t.writerHG, readerHG: t.readerHG, newPrimary: newHP, oldPrimary: oldHP,
		replicas: replicas, oldPolicy: t.cfg.OldPrimary, writerIsAlsoReader: t.cfg.WriterIsAlsoReader, order: Order{Epoch: change.Epoch, Token: change.Token}}
	var detail string
	_, err = retry(ctx, t.cfg.Retry, func(ctx context.Context) error {
		var err error
		detail, err = t.apply(ctx, change.Cluster, plan.order, func(rows []ProxySQLServer) []serverOp {
			return planProxySQLRoute(rows, plan)
		}, func(runtime []ProxySQLServer) []string {
			return checkWriterRuntime(runtime, t.writerHG, newHP)
		})
		return err
	})
	return Outcome{Detail: detail}, err
}

// Unroute sets the old primary OFFLINE_HARD in the writer hostgroup (ProxySQL
// drops its connections) and loads that to runtime.
func (t *ProxySQLTarget) Unroute(ctx context.Context, req UnrouteRequest) (Outcome, error) {
	oldHP, err := t.address(req.Old)
	if err != nil {
		return Outcome{}, err
	}
	var detail string
	_, err = retry(ctx, t.cfg.Retry, func(ctx context.Context) error {
		var err error
		order := Order{Epoch: req.Epoch, Token: req.Token}
		detail, err = t.apply(ctx, req.Cluster, order, func(rows []ProxySQLServer) []serverOp {
			return planProxySQLUnroute(rows, t.writerHG, oldHP, order)
		}, func(runtime []ProxySQLServer) []string {
			for _, r := range runtime {
				if r.HostgroupID == t.writerHG && r.Hostname == oldHP.host && r.Port == oldHP.port && r.Status == ProxySQLOnline {
					return []string{fmt.Sprintf("%s is still ONLINE in runtime writer hostgroup %d", oldHP, t.writerHG)}
				}
			}
			return nil
		})
		return err
	})
	return Outcome{Detail: detail}, err
}

// apply is one attempt: refuse mixed setups and stale epochs, plan from the
// current table, run the plan, load, save, verify.
func (t *ProxySQLTarget) apply(ctx context.Context, cluster string, order Order,
	plan func([]ProxySQLServer) []serverOp, verify func([]ProxySQLServer) []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	c, err := t.conn(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()

	if err := t.checkMixedMode(ctx, c); err != nil {
		return "", err
	}
	rows, err := queryServers(ctx, c, "mysql_servers")
	if err != nil {
		return "", t.sqlErr("reading mysql_servers", err)
	}
	runtime, err := queryServers(ctx, c, "runtime_mysql_servers")
	if err != nil {
		return "", t.sqlErr("reading runtime_mysql_servers", err)
	}
	var newest Order
	for _, r := range append(slices.Clone(rows), runtime...) {
		if r.HostgroupID != t.writerHG {
			continue
		}
		if o, ok := orderOf(r.Comment); ok {
			newest = o.Max(newest)
		}
	}
	if order.StaleAgainst(newest) {
		err := &StaleEpochError{Cluster: cluster, Epoch: order.Epoch, Applied: newest.Epoch, Token: order.Token, AppliedToken: newest.Token, Where: t.Name()}
		t.logger.Warn("refused stale routing change", logKeyCluster, cluster, logKeyEpoch, order.Epoch, logKeyToken, order.Token, logKeyApplied, newest.Epoch)
		return "", permanent(err)
	}

	ops := plan(rows)
	var steps []string
	for _, op := range ops {
		if _, err := c.ExecContext(ctx, op.sql()); err != nil {
			return strings.Join(steps, "; "), t.sqlErr(op.String(), err)
		}
		t.logger.Debug("proxysql statement", logKeyStmt, op.String())
		steps = append(steps, op.String())
	}
	if len(ops) == 0 {
		steps = append(steps, "mysql_servers already as wanted")
	}
	// Load even when nothing changed: the runtime may lag the table (an
	// earlier attempt that failed between the edit and the load).
	if _, err := c.ExecContext(ctx, "LOAD MYSQL SERVERS TO RUNTIME"); err != nil {
		return strings.Join(steps, "; "), t.sqlErr("LOAD MYSQL SERVERS TO RUNTIME", err)
	}
	steps = append(steps, "loaded to runtime")
	if !t.cfg.SkipSaveToDisk {
		if _, err := c.ExecContext(ctx, "SAVE MYSQL SERVERS TO DISK"); err != nil {
			return strings.Join(steps, "; "), t.sqlErr("SAVE MYSQL SERVERS TO DISK", err)
		}
		steps = append(steps, "saved to disk")
	}
	runtime, err = queryServers(ctx, c, "runtime_mysql_servers")
	if err != nil {
		return strings.Join(steps, "; "), t.sqlErr("reading runtime_mysql_servers back", err)
	}
	if problems := verify(runtime); len(problems) > 0 {
		return strings.Join(steps, "; "), permanent(fmt.Errorf("%w: proxysql %s: %s (is another tool or an operator editing mysql_servers?)",
			ErrProxySQLNotApplied, t.cfg.Name, strings.Join(problems, "; ")))
	}
	steps = append(steps, "verified in runtime_mysql_servers")
	return strings.Join(steps, "; "), nil
}

func (t *ProxySQLTarget) sqlErr(what string, err error) error {
	err = fmt.Errorf("proxysql %s (%s): %s: %w", t.cfg.Name, t.cfg.Admin, what, err)
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		// The server understood and refused: a retry gets the same answer.
		// (ProxySQL's admin gives every SQL error code 1045, so the code
		// alone does not mean bad credentials.)
		return permanent(err)
	}
	return err
}

func isAccessDenied(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && strings.Contains(me.Message, "Access denied")
}

// checkMixedMode refuses to edit hostgroups that ProxySQL's monitor also
// moves servers between by read_only.
func (t *ProxySQLTarget) checkMixedMode(ctx context.Context, c *sql.Conn) error {
	managed := []int{t.writerHG}
	if t.readerHG >= 0 {
		managed = append(managed, t.readerHG)
	}
	for _, table := range []string{"mysql_replication_hostgroups", "runtime_mysql_replication_hostgroups"} {
		rows, err := c.QueryContext(ctx, "SELECT writer_hostgroup, reader_hostgroup FROM "+table)
		if err != nil {
			return t.sqlErr("reading "+table, err)
		}
		var w, r int
		var hit []string
		for rows.Next() {
			if err := rows.Scan(&w, &r); err != nil {
				rows.Close()
				return t.sqlErr("reading "+table, err)
			}
			if slices.Contains(managed, w) || slices.Contains(managed, r) {
				hit = append(hit, fmt.Sprintf("writer_hostgroup=%d reader_hostgroup=%d", w, r))
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return t.sqlErr("reading "+table, err)
		}
		if len(hit) > 0 {
			return permanent(fmt.Errorf("%w: proxysql %s: %s has %s; Regent moves the writer itself and the two would fight: DELETE that row from mysql_replication_hostgroups, LOAD MYSQL SERVERS TO RUNTIME and SAVE MYSQL SERVERS TO DISK, or remove this proxysql from Regent's routing",
				ErrProxySQLMixedMode, t.cfg.Name, table, strings.Join(hit, ", ")))
		}
	}
	return nil
}

const serverColumns = "hostgroup_id, hostname, port, gtid_port, status, weight, compression, max_connections, max_replication_lag, use_ssl, max_latency_ms, comment"

func queryServers(ctx context.Context, c *sql.Conn, table string) ([]ProxySQLServer, error) {
	rows, err := c.QueryContext(ctx, "SELECT "+serverColumns+" FROM "+table+" ORDER BY hostgroup_id, hostname, port")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ProxySQLServer
	for rows.Next() {
		var s ProxySQLServer
		var comment sql.NullString
		if err := rows.Scan(&s.HostgroupID, &s.Hostname, &s.Port, &s.GTIDPort, &s.Status, &s.Weight, &s.Compression,
			&s.MaxConnections, &s.MaxReplicationLag, &s.UseSSL, &s.MaxLatencyMS, &comment); err != nil {
			return nil, err
		}
		s.Comment = comment.String
		out = append(out, s)
	}
	return out, rows.Err()
}

// RuntimeServers returns runtime_mysql_servers, for status pages and tools.
func (t *ProxySQLTarget) RuntimeServers(ctx context.Context) ([]ProxySQLServer, error) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	c, err := t.conn(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	rows, err := queryServers(ctx, c, "runtime_mysql_servers")
	if err != nil {
		return nil, t.sqlErr("reading runtime_mysql_servers", err)
	}
	return rows, nil
}
