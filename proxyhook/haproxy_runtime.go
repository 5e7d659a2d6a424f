package proxyhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Errors of the HAProxy runtime API client.
var (
	// ErrNotAdmin: the stats socket is not at admin level, so HAProxy answers
	// "Permission denied" to set/shutdown commands.
	ErrNotAdmin = errors.New("haproxy stats socket is not at admin level")
	// ErrNoSuchServer: HAProxy does not know the backend or server named.
	ErrNoSuchServer = errors.New("haproxy has no such backend or server")
	// ErrHAProxyCommand: HAProxy refused or did not understand a command.
	ErrHAProxyCommand = errors.New("haproxy refused the command")
	// ErrNoProcVars: HAProxy has no "get var"/"set var" runtime commands
	// (they came with HAProxy 2.4).
	ErrNoProcVars = errors.New("haproxy has no runtime process variables")
)

// maxRuntimeAnswer bounds what the client reads from one answer: "show
// servers state" for a few thousand servers fits comfortably.
const maxRuntimeAnswer = 8 << 20

// ServerRef names one server in HAProxy: backend/server.
type ServerRef struct {
	Backend string
	Server  string
}

func (r ServerRef) String() string { return r.Backend + "/" + r.Server }

// ParseServerRef parses "backend/server". Names must be HAProxy identifiers
// (letters, digits, '-', '_', '.', ':'), which also keeps them from smuggling
// a second command (';') or a new line into the runtime API.
func ParseServerRef(s string) (ServerRef, error) {
	b, srv, ok := strings.Cut(s, "/")
	if !ok {
		return ServerRef{}, fmt.Errorf("haproxy server %q must be written backend/server", s)
	}
	ref := ServerRef{Backend: b, Server: srv}
	return ref, ref.validate()
}

func (r ServerRef) validate() error {
	if err := validHAProxyName(r.Backend); err != nil {
		return fmt.Errorf("haproxy backend in %q: %w", r.String(), err)
	}
	if err := validHAProxyName(r.Server); err != nil {
		return fmt.Errorf("haproxy server in %q: %w", r.String(), err)
	}
	return nil
}

func validHAProxyName(n string) error {
	if n == "" {
		return errors.New("empty name")
	}
	for _, c := range n {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == ':':
		default:
			return fmt.Errorf("name %q has %q; haproxy names use letters, digits, '-', '_', '.' and ':'", n, c)
		}
	}
	return nil
}

// AdminStateCommand is the argument of "set server B/S state".
type AdminStateCommand string

// Values of "set server B/S state".
const (
	StateReady AdminStateCommand = "ready"
	StateDrain AdminStateCommand = "drain"
	StateMaint AdminStateCommand = "maint"
)

// HealthCommand is the argument of "set server B/S health".
type HealthCommand string

// Values of "set server B/S health".
const (
	HealthUp       HealthCommand = "up"
	HealthStopping HealthCommand = "stopping"
	HealthDown     HealthCommand = "down"
)

// RuntimeClient talks to one HAProxy runtime API (stats socket) over a unix
// socket or TCP. Each command uses its own connection in HAProxy's
// non-interactive mode: write one line, read the answer until HAProxy closes.
// Commands that change state are idempotent and retried with RetryPolicy.
type RuntimeClient struct {
	network string
	address string
	timeout time.Duration
	retry   RetryPolicy
}

// RuntimeOptions tunes a RuntimeClient; zero values take defaults.
type RuntimeOptions struct {
	// Timeout bounds one command (dial, write, read). Default 2s.
	Timeout time.Duration
	Retry   RetryPolicy
}

// ParseRuntimeAddress splits a runtime API address into a network and an
// address for net.Dial: "unix:/run/haproxy/admin.sock" or an absolute path
// for a unix socket, "tcp:127.0.0.1:9999" or "127.0.0.1:9999" for TCP.
func ParseRuntimeAddress(s string) (network, address string, err error) {
	switch {
	case strings.HasPrefix(s, "unix:"):
		network, address = "unix", strings.TrimPrefix(s, "unix:")
	case strings.HasPrefix(s, "unix@"): // haproxy.cfg's own spelling
		network, address = "unix", strings.TrimPrefix(s, "unix@")
	case strings.HasPrefix(s, "/"):
		network, address = "unix", s
	case strings.HasPrefix(s, "tcp:"):
		network, address = "tcp", strings.TrimPrefix(s, "tcp:")
	case strings.HasPrefix(s, "ipv4@"), strings.HasPrefix(s, "ipv6@"):
		network, address = "tcp", s[5:]
	default:
		network, address = "tcp", s
	}
	if address == "" {
		return "", "", fmt.Errorf("haproxy runtime API address %q is empty after the %s: prefix", s, network)
	}
	if network == "tcp" {
		if _, port, err := net.SplitHostPort(address); err != nil || port == "" {
			return "", "", fmt.Errorf("haproxy runtime API address %q: want unix:/path/to/admin.sock or tcp:host:port", s)
		}
	}
	return network, address, nil
}

// NewRuntimeClient returns a client for the runtime API at address (see
// ParseRuntimeAddress). It does not connect.
func NewRuntimeClient(address string, opts RuntimeOptions) (*RuntimeClient, error) {
	network, addr, err := ParseRuntimeAddress(address)
	if err != nil {
		return nil, err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	return &RuntimeClient{network: network, address: addr, timeout: opts.Timeout, retry: opts.Retry.withDefaults()}, nil
}

// Address returns the address the client dials, as network:address.
func (c *RuntimeClient) Address() string { return c.network + ":" + c.address }

// Exec sends one raw command (no retry) and returns HAProxy's answer. Only
// "Permission denied" is turned into an error (ErrNotAdmin); everything else
// is for the caller to read.
func (c *RuntimeClient) Exec(ctx context.Context, command string) (string, error) {
	if strings.ContainsAny(command, "\r\n") {
		return "", permanent(fmt.Errorf("haproxy command %q contains a line break", command))
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, c.network, c.address)
	if err != nil {
		return "", fmt.Errorf("connecting to haproxy runtime API %s (is haproxy running, and is this its stats socket?): %w", c.Address(), err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if _, err := io.WriteString(conn, command+"\n"); err != nil {
		return "", fmt.Errorf("sending %q to haproxy runtime API %s: %w", command, c.Address(), err)
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(conn, maxRuntimeAnswer+1))
	if err != nil {
		// The connection's deadline is the ctx's: it may fire a moment
		// before ctx reports it.
		if cerr := ctx.Err(); cerr != nil {
			err = fmt.Errorf("%w (%w)", cerr, err)
		} else if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
			err = fmt.Errorf("%w (%w)", context.DeadlineExceeded, err)
		}
		return "", fmt.Errorf("reading the answer to %q from haproxy runtime API %s: %w", command, c.Address(), err)
	}
	if n > maxRuntimeAnswer {
		return "", permanent(fmt.Errorf("answer to %q from haproxy runtime API %s is larger than %d bytes", command, c.Address(), maxRuntimeAnswer))
	}
	if n == 0 {
		// HAProxy answers at least a new line, even to a command that has
		// nothing to say: nothing at all means the connection was cut (a
		// reload, a restart), and the command may not have run.
		return "", fmt.Errorf("haproxy runtime API %s closed the connection without answering %q (reloading?)", c.Address(), command)
	}
	answer := buf.String()
	if isPermissionDenied(answer) {
		return answer, permanent(fmt.Errorf("%w: haproxy at %s answered %q to %q: add \"level admin\" to that \"stats socket\" line in haproxy.cfg (and keep the socket's file mode or bind address private), then reload haproxy: %w",
			ErrNotAdmin, c.Address(), "Permission denied", verbOf(command), ErrHAProxyCommand))
	}
	return answer, nil
}

func isPermissionDenied(answer string) bool {
	return strings.HasPrefix(strings.TrimSpace(answer), "Permission denied")
}

// verbOf returns the command without its arguments after the server name,
// for error messages.
func verbOf(command string) string {
	f := strings.Fields(command)
	if len(f) > 2 {
		f = f[:2]
	}
	return strings.Join(f, " ")
}

// commandError interprets a non-empty answer to a command that answers
// nothing on success.
func (c *RuntimeClient) commandError(command, answer string) error {
	a := strings.TrimSpace(answer)
	switch {
	case a == "":
		return nil
	case strings.HasPrefix(a, "No such server"), strings.HasPrefix(a, "No such backend"),
		strings.HasPrefix(a, "Can't find backend"), strings.HasPrefix(a, "Require 'backend/server'"):
		return permanent(fmt.Errorf("%w: haproxy at %s answered %q to %q: check the backend/server names in Regent's routing configuration against haproxy.cfg",
			ErrNoSuchServer, c.Address(), firstLine(a), command))
	case strings.HasPrefix(a, "Unknown command"):
		return permanent(fmt.Errorf("%w: haproxy at %s does not know %q (Regent needs HAProxy 2.0 or newer): %s",
			ErrHAProxyCommand, c.Address(), command, firstLine(a)))
	default:
		return permanent(fmt.Errorf("%w: haproxy at %s answered %q to %q", ErrHAProxyCommand, c.Address(), firstLine(a), command))
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// do runs a state-changing command with retries; ok decides whether the
// answer means success.
func (c *RuntimeClient) do(ctx context.Context, command string, check func(answer string) error) error {
	_, err := retry(ctx, c.retry, func(ctx context.Context) error {
		answer, err := c.Exec(ctx, command)
		if err != nil {
			return err
		}
		return check(answer)
	})
	return err
}

// SetServerState runs "set server B/S state ready|drain|maint".
// maint alone keeps open sessions: follow it with ShutdownSessions to cut them.
func (c *RuntimeClient) SetServerState(ctx context.Context, ref ServerRef, state AdminStateCommand) error {
	if err := ref.validate(); err != nil {
		return err
	}
	switch state {
	case StateReady, StateDrain, StateMaint:
	default:
		return fmt.Errorf("haproxy server state %q: want ready, drain or maint", state)
	}
	cmd := fmt.Sprintf("set server %s state %s", ref, state)
	return c.do(ctx, cmd, func(a string) error { return c.commandError(cmd, a) })
}

// SetServerHealth runs "set server B/S health up|stopping|down": it forces the
// check result until the next health check says otherwise.
func (c *RuntimeClient) SetServerHealth(ctx context.Context, ref ServerRef, health HealthCommand) error {
	if err := ref.validate(); err != nil {
		return err
	}
	switch health {
	case HealthUp, HealthStopping, HealthDown:
	default:
		return fmt.Errorf("haproxy server health %q: want up, stopping or down", health)
	}
	cmd := fmt.Sprintf("set server %s health %s", ref, health)
	return c.do(ctx, cmd, func(a string) error { return c.commandError(cmd, a) })
}

// ShutdownSessions runs "shutdown sessions server B/S": every open session
// to that server is closed at once.
func (c *RuntimeClient) ShutdownSessions(ctx context.Context, ref ServerRef) error {
	if err := ref.validate(); err != nil {
		return err
	}
	cmd := "shutdown sessions server " + ref.String()
	return c.do(ctx, cmd, func(a string) error { return c.commandError(cmd, a) })
}

// SetServerAddr runs "set server B/S addr IP port N". HAProxy 2.6 takes an IP
// address here; a host name needs "set server B/S fqdn" and a resolver.
func (c *RuntimeClient) SetServerAddr(ctx context.Context, ref ServerRef, ip string, port int) error {
	if err := ref.validate(); err != nil {
		return err
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return fmt.Errorf("haproxy server address %q for %s: want an IP address (haproxy's runtime API does not resolve names here)", ip, ref)
	}
	if port < 1 || port > 65535 {
		return fmt.Errorf("haproxy server port %d for %s is out of range 1..65535", port, ref)
	}
	cmd := fmt.Sprintf("set server %s addr %s port %d", ref, addr, port)
	return c.do(ctx, cmd, func(a string) error {
		t := strings.TrimSpace(a)
		// Success reads "IP changed from ... to ..., port changed from ..."
		// or "no need to change the addr, no need to change the port ...".
		if strings.Contains(t, "changed from") || strings.HasPrefix(t, "no need to change") {
			return nil
		}
		if t == "" {
			return nil
		}
		return c.commandError(cmd, a)
	})
}

// procVarRE is what "get var" answers for an integer variable.
var procVarRE = regexp.MustCompile(`^proc\.[A-Za-z0-9_.]+: type=sint value=<(-?\d+)>$`)

// ProcVar runs "get var proc.NAME" and returns the variable's integer value;
// ok is false when HAProxy has no such variable (never set since it
// started). A variable of another type is an error.
func (c *RuntimeClient) ProcVar(ctx context.Context, name string) (value int64, ok bool, err error) {
	if err := validProcVar(name); err != nil {
		return 0, false, err
	}
	cmd := "get var proc." + name
	_, err = retry(ctx, c.retry, func(ctx context.Context) error {
		answer, err := c.Exec(ctx, cmd)
		if err != nil {
			return err
		}
		a := strings.TrimSpace(answer)
		switch {
		case strings.HasPrefix(a, "Variable not found"):
			value, ok = 0, false
			return nil
		case strings.HasPrefix(a, "Unknown command"):
			return permanent(fmt.Errorf("%w: haproxy at %s does not know %q (HAProxy 2.4 or newer has it)", ErrNoProcVars, c.Address(), cmd))
		}
		m := procVarRE.FindStringSubmatch(a)
		if m == nil {
			return c.commandError(cmd, answer)
		}
		value, err = strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			return permanent(fmt.Errorf("haproxy at %s: %q: %w", c.Address(), a, err))
		}
		ok = true
		return nil
	})
	return value, ok, err
}

// SetProcVar sets the process-wide variable proc.NAME to an integer. HAProxy
// accepts "set var" only in experimental mode, which lasts for the one
// command line it is switched on in.
func (c *RuntimeClient) SetProcVar(ctx context.Context, name string, value int64) error {
	if err := validProcVar(name); err != nil {
		return err
	}
	cmd := fmt.Sprintf("experimental-mode on; set var proc.%s int(%d)", name, value)
	return c.do(ctx, cmd, func(a string) error {
		if strings.HasPrefix(strings.TrimSpace(a), "Unknown command") {
			return permanent(fmt.Errorf("%w: haproxy at %s does not know \"set var\" (HAProxy 2.4 or newer has it)", ErrNoProcVars, c.Address()))
		}
		return c.commandError(cmd, a)
	})
}

// ErrNoConditionalVars: this HAProxy cannot set a variable on a condition
// ("set var NAME,iflt" came with HAProxy 2.6).
var ErrNoConditionalVars = errors.New("haproxy cannot set a variable on a condition")

// RaiseProcVar sets the process-wide variable proc.NAME to value unless it
// already holds a higher one (or an equal one), and returns what it holds
// afterwards. The comparison and the write are one command that HAProxy
// runs under the variable's lock ("set var proc.NAME,iflt"), so two clients
// raising it at once never lose the higher value, as a read followed by a
// write can. An HAProxy without set-var conditions (before 2.6) answers
// ErrNoConditionalVars and has not changed the variable.
func (c *RuntimeClient) RaiseProcVar(ctx context.Context, name string, value int64) (int64, error) {
	if err := validProcVar(name); err != nil {
		return 0, err
	}
	cmd := fmt.Sprintf("experimental-mode on; set var proc.%s,iflt int(%d)", name, value)
	err := c.do(ctx, cmd, func(a string) error {
		a = strings.TrimSpace(a)
		switch {
		case a == "":
			return nil
		case strings.HasPrefix(a, "Unknown command"):
			return permanent(fmt.Errorf("%w: haproxy at %s does not know \"set var\" (HAProxy 2.4 or newer has it)", ErrNoProcVars, c.Address()))
		case strings.Contains(a, "condition"), strings.Contains(a, "syntax"), strings.Contains(a, "variable"):
			return permanent(fmt.Errorf("%w: haproxy at %s answered %q to %q (HAProxy 2.6 or newer has set-var conditions)", ErrNoConditionalVars, c.Address(), firstLine(a), cmd))
		}
		return c.commandError(cmd, a)
	})
	if err != nil {
		return 0, err
	}
	cur, ok, err := c.ProcVar(ctx, name)
	if err != nil {
		return 0, err
	}
	if !ok {
		// Only a restart or a reload between the two commands drops it.
		return 0, fmt.Errorf("haproxy at %s: proc.%s is not set right after it was raised (did haproxy restart?)", c.Address(), name)
	}
	return cur, nil
}

func validProcVar(name string) error {
	if name == "" || strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" {
		return fmt.Errorf("haproxy variable name %q: use letters, digits and _ only", name)
	}
	return nil
}

// ShowServersState runs "show servers state [backend]" and parses the answer.
// An empty backend lists every backend.
func (c *RuntimeClient) ShowServersState(ctx context.Context, backend string) ([]ServerState, error) {
	cmd := "show servers state"
	if backend != "" {
		if err := validHAProxyName(backend); err != nil {
			return nil, fmt.Errorf("haproxy backend: %w", err)
		}
		cmd += " " + backend
	}
	var states []ServerState
	_, err := retry(ctx, c.retry, func(ctx context.Context) error {
		answer, err := c.Exec(ctx, cmd)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(answer, "1\n") && !strings.HasPrefix(answer, "#") {
			return c.commandError(cmd, answer)
		}
		s, err := ParseServersState(answer)
		if err != nil {
			return permanent(fmt.Errorf("haproxy at %s: %w", c.Address(), err))
		}
		states = s
		return nil
	})
	return states, err
}

// RawServersState returns the unparsed answer of "show servers state": the
// exact format HAProxy's server-state-file expects.
func (c *RuntimeClient) RawServersState(ctx context.Context) (string, error) {
	var out string
	_, err := retry(ctx, c.retry, func(ctx context.Context) error {
		answer, err := c.Exec(ctx, "show servers state")
		if err != nil {
			return err
		}
		if !strings.HasPrefix(answer, "1\n") {
			return c.commandError("show servers state", answer)
		}
		out = answer
		return nil
	})
	return out, err
}

// OpState is a server's operational state (srv_op_state).
type OpState int

// Operational states, as HAProxy numbers them.
const (
	OpStopped  OpState = 0
	OpStarting OpState = 1
	OpRunning  OpState = 2
	OpStopping OpState = 3
)

func (s OpState) String() string {
	switch s {
	case OpStopped:
		return "stopped"
	case OpStarting:
		return "starting"
	case OpRunning:
		return "running"
	case OpStopping:
		return "stopping"
	}
	return "op_state(" + strconv.Itoa(int(s)) + ")"
}

// AdminState is a server's administrative state flags (srv_admin_state).
type AdminState uint

// Administrative state flags (HAProxy's SRV_ADMF_*).
const (
	AdminForcedMaint     AdminState = 0x01 // set server state maint
	AdminInheritedMaint  AdminState = 0x02 // tracked server in maint
	AdminConfigMaint     AdminState = 0x04 // "disabled" in the config
	AdminForcedDrain     AdminState = 0x08 // set server state drain
	AdminInheritedDrain  AdminState = 0x10
	AdminResolutionMaint AdminState = 0x20 // DNS resolution failed
	AdminHostnameMaint   AdminState = 0x40 // no address yet (init-addr none)
)

const adminAnyMaint = AdminForcedMaint | AdminInheritedMaint | AdminConfigMaint | AdminResolutionMaint | AdminHostnameMaint

// InMaint reports whether any maintenance flag is set.
func (a AdminState) InMaint() bool { return a&adminAnyMaint != 0 }

// Draining reports whether a drain flag is set.
func (a AdminState) Draining() bool { return a&(AdminForcedDrain|AdminInheritedDrain) != 0 }

func (a AdminState) String() string {
	if a == 0 {
		return "ready"
	}
	var parts []string
	names := []struct {
		f AdminState
		n string
	}{
		{AdminForcedMaint, "maint"}, {AdminInheritedMaint, "inherited-maint"}, {AdminConfigMaint, "config-maint"},
		{AdminForcedDrain, "drain"}, {AdminInheritedDrain, "inherited-drain"},
		{AdminResolutionMaint, "resolution-maint"}, {AdminHostnameMaint, "hostname-maint"},
	}
	rest := a
	for _, n := range names {
		if a&n.f != 0 {
			parts = append(parts, n.n)
			rest &^= n.f
		}
	}
	if rest != 0 {
		parts = append(parts, fmt.Sprintf("0x%x", uint(rest)))
	}
	return strings.Join(parts, "+")
}

// ServerState is one row of "show servers state" (format version 1).
type ServerState struct {
	BackendID  int
	Backend    string
	ServerID   int
	Server     string
	Addr       string
	Port       int
	OpState    OpState
	AdminState AdminState
	// Weights: user-set and initial.
	UserWeight, InitialWeight int
	// SinceLastChange is srv_time_since_last_change, in seconds.
	SinceLastChange int
	CheckPort       int
	CheckAddr       string
	// Fields holds every column by its header name, for what is not above.
	Fields map[string]string
}

// Ref returns backend/server.
func (s ServerState) Ref() ServerRef { return ServerRef{Backend: s.Backend, Server: s.Server} }

// Routable reports whether HAProxy would send new connections to the server:
// running and neither in maintenance nor draining.
func (s ServerState) Routable() bool {
	return s.OpState == OpRunning && !s.AdminState.InMaint() && !s.AdminState.Draining()
}

// ParseServersState parses the answer of "show servers state": a version
// line ("1"), a header line starting with "#" naming the columns, then one
// line per server. Columns are found by name, so versions that add columns
// still parse.
func ParseServersState(text string) ([]ServerState, error) {
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	var header []string
	var out []ServerState
	sawVersion := false
	for i, line := range lines {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		switch {
		case !sawVersion && header == nil && !strings.HasPrefix(line, "#"):
			if line != "1" {
				return nil, fmt.Errorf("servers state line %d: format version %q is not supported (want 1)", i+1, truncate(line, 40))
			}
			sawVersion = true
		case strings.HasPrefix(line, "#"):
			if header != nil {
				return nil, fmt.Errorf("servers state line %d: a second header line", i+1)
			}
			header = strings.Fields(strings.TrimPrefix(line, "#"))
			if err := checkStateHeader(header); err != nil {
				return nil, fmt.Errorf("servers state line %d: %w", i+1, err)
			}
		default:
			if header == nil {
				return nil, fmt.Errorf("servers state line %d: server line before the header line", i+1)
			}
			fields := strings.Fields(line)
			if len(fields) != len(header) {
				return nil, fmt.Errorf("servers state line %d: %d fields, the header names %d", i+1, len(fields), len(header))
			}
			st, err := parseStateRow(header, fields)
			if err != nil {
				return nil, fmt.Errorf("servers state line %d: %w", i+1, err)
			}
			out = append(out, st)
		}
	}
	if header == nil {
		return nil, errors.New("servers state: no header line (is this the answer to \"show servers state\"?)")
	}
	return out, nil
}

var requiredStateColumns = []string{"be_name", "srv_name", "srv_op_state", "srv_admin_state"}

func checkStateHeader(h []string) error {
	seen := make(map[string]bool, len(h))
	for _, c := range h {
		if seen[c] {
			return fmt.Errorf("column %q appears twice in the header", truncate(c, 40))
		}
		seen[c] = true
	}
	for _, c := range requiredStateColumns {
		if !seen[c] {
			return fmt.Errorf("header lacks column %q", c)
		}
	}
	return nil
}

func parseStateRow(header, fields []string) (ServerState, error) {
	st := ServerState{Fields: make(map[string]string, len(header))}
	for i, name := range header {
		st.Fields[name] = fields[i]
	}
	var err error
	num := func(col string) int {
		v, ok := st.Fields[col]
		if !ok || v == "-" || err != nil {
			return 0
		}
		n, e := strconv.Atoi(v)
		if e != nil {
			err = fmt.Errorf("column %s: %q is not a number", col, truncate(v, 40))
		}
		return n
	}
	str := func(col string) string {
		if v := st.Fields[col]; v != "-" {
			return v
		}
		return ""
	}
	st.BackendID = num("be_id")
	st.Backend = str("be_name")
	st.ServerID = num("srv_id")
	st.Server = str("srv_name")
	st.Addr = str("srv_addr")
	st.Port = num("srv_port")
	st.OpState = OpState(num("srv_op_state"))
	admin := num("srv_admin_state")
	st.UserWeight = num("srv_uweight")
	st.InitialWeight = num("srv_iweight")
	st.SinceLastChange = num("srv_time_since_last_change")
	st.CheckPort = num("srv_check_port")
	st.CheckAddr = str("srv_check_addr")
	if err != nil {
		return ServerState{}, err
	}
	if admin < 0 {
		return ServerState{}, fmt.Errorf("column srv_admin_state: %d is negative", admin)
	}
	st.AdminState = AdminState(admin)
	if st.Backend == "" || st.Server == "" {
		return ServerState{}, errors.New("row without a backend or server name")
	}
	return st, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
