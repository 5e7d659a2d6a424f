package apiserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/identity"
)

// Role is what a credential may do.
type Role int

// The roles, weakest first.
const (
	RoleNone Role = iota
	RoleReadOnly
	RoleAdmin
)

func (r Role) String() string {
	switch r {
	case RoleReadOnly:
		return "read-only"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// Token limits.
const (
	minTokenLen = 16
	maxTokenLen = 4096
)

// Tokens is a parsed tokens file (see the package documentation). Only
// SHA-256 digests of the tokens are kept.
type Tokens struct {
	entries []tokenEntry
}

type tokenEntry struct {
	digest [sha256.Size]byte
	role   Role
	name   string
}

// Len returns how many tokens there are.
func (t *Tokens) Len() int { return len(t.entries) }

// LoadTokenFile reads and parses a tokens file. It refuses a file that
// other users can read.
func LoadTokenFile(path string) (*Tokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokens file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("tokens file: %w", err)
	}
	if st.Mode().Perm()&0o007 != 0 {
		return nil, fmt.Errorf("tokens file %s is readable by other users (mode %v): run chmod 600 %s (or 640 with a dedicated group)",
			path, st.Mode().Perm(), path)
	}
	data, err := readAllLimited(f, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	t, err := ParseTokens(data)
	if err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	return t, nil
}

func readAllLimited(f *os.File, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return b, nil
}

// ParseTokens parses the contents of a tokens file. Errors name the line
// but never echo a token.
func ParseTokens(data []byte) (*Tokens, error) {
	t := &Tokens{}
	seen := map[[sha256.Size]byte]int{}
	names := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxTokenLen+1024)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		parts := strings.Split(text, ":")
		if len(parts) < 2 || len(parts) > 3 {
			return nil, fmt.Errorf("line %d: want role:token or role:token:name (role admin or read-only)", line)
		}
		var role Role
		switch parts[0] {
		case "admin":
			role = RoleAdmin
		case "read-only", "readonly":
			role = RoleReadOnly
		default:
			return nil, fmt.Errorf("line %d: unknown role %q: want admin or read-only", line, truncateName(parts[0]))
		}
		tok := parts[1]
		if len(tok) < minTokenLen || len(tok) > maxTokenLen {
			return nil, fmt.Errorf("line %d: the token must be %d to %d characters long (openssl rand -hex 32 makes a good one)", line, minTokenLen, maxTokenLen)
		}
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; c <= ' ' || c > '~' {
				return nil, fmt.Errorf("line %d: the token has a character other than printable ASCII at position %d", line, i+1)
			}
		}
		name := role.String() + "-token-line-" + strconv.Itoa(line)
		if len(parts) == 3 {
			name = parts[2]
			if !identity.ValidName(name) {
				return nil, fmt.Errorf("line %d: name %q: use 1 to 64 letters, digits, '.', '_', '@' or '-'", line, truncateName(name))
			}
			if prev, dup := names[name]; dup {
				return nil, fmt.Errorf("line %d: name %q is already used on line %d", line, name, prev)
			}
			names[name] = line
		}
		d := sha256.Sum256([]byte(tok))
		if prev, dup := seen[d]; dup {
			return nil, fmt.Errorf("line %d: the same token is already on line %d", line, prev)
		}
		seen[d] = line
		t.entries = append(t.entries, tokenEntry{digest: d, role: role, name: name})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	if len(t.entries) == 0 {
		return nil, errors.New("no token: add a line such as admin:$(openssl rand -hex 32)")
	}
	return t, nil
}

func truncateName(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// lookup finds the entry of a presented token. It compares the token's
// digest with every entry in constant time, with no early exit, so neither
// the position of a match nor the length of a token leaks through timing.
func (t *Tokens) lookup(token string) (tokenEntry, bool) {
	d := sha256.Sum256([]byte(token))
	found := -1
	for i := range t.entries {
		eq := subtle.ConstantTimeCompare(d[:], t.entries[i].digest[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return tokenEntry{}, false
	}
	return t.entries[found], true
}

// Caller is who made a request, as authenticated.
type Caller struct {
	// Name is the token's name, or the client certificate's matching
	// name, or "anonymous" when authentication is disabled or not needed.
	Name string
	// Role is what the caller may do.
	Role Role
	// Method is how the caller was authenticated: token, certificate or
	// none.
	Method string
}

type callerKey struct{}

// CallerFrom returns the caller a handler authenticated, for a Backend
// that records who asked (a pause's By, an operation's Trigger).
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// WithCaller returns ctx carrying c (for tests of a Backend).
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// AuthConfig says who may call what.
type AuthConfig struct {
	// Tokens are the accepted bearer tokens (LoadTokenFile); nil accepts
	// none. Server.SetTokens replaces them at run time.
	Tokens *Tokens
	// CertAdmins and CertReaders are user names granted admin or
	// read-only to a client certificate that ClientCAs verifies and that
	// carries the URI SAN urn:regent:user:NAME. Nothing else in a
	// certificate counts (not its common name, not its DNS names): mysqld's
	// certificates share their hosts' names, and neither they nor agents'
	// certificates carry a user URI. They need a server TLS configuration
	// that asks for client certificates (ServerTLS with a ClientCAFile).
	CertAdmins, CertReaders []string
	// ClientCAs verifies the client certificates of CertAdmins and
	// CertReaders (api.client_ca_file).
	ClientCAs *x509.CertPool
	// AgentCAs verifies agents' certificates (api.tls.ca_file): only a
	// call that comes with one has its forwarding headers believed in the
	// request log.
	AgentCAs *x509.CertPool
	// Disabled turns authentication off: every caller is admin. For tests
	// and loopback demos only.
	Disabled bool
	// ProtectHealth makes the health endpoints need a read-only
	// credential; by default they are open (HAProxy polls them).
	ProtectHealth bool
	// ProtectMetrics makes /metrics need a read-only credential; by
	// default it is open (Prometheus scrapes it).
	ProtectMetrics bool
	// OpenStatusPage serves the status page at / without credentials; by
	// default it needs a read-only credential like the rest of the API.
	OpenStatusPage bool
}

func (a AuthConfig) validate() error {
	if a.Disabled {
		return nil
	}
	if a.Tokens == nil && len(a.CertAdmins) == 0 && len(a.CertReaders) == 0 {
		return errors.New("auth: no tokens and no client certificate names, so nobody could call the API: give a tokens file, client certificate names, or disable auth explicitly")
	}
	for _, n := range append(append([]string{}, a.CertAdmins...), a.CertReaders...) {
		if !identity.ValidName(n) {
			return fmt.Errorf("auth: client certificate user %q: want the NAME of the URI SAN %sNAME (1 to 64 letters, digits, '.', '_', '@', '-')", truncateName(n), identity.UserPrefix)
		}
	}
	if len(a.CertAdmins)+len(a.CertReaders) > 0 && a.ClientCAs == nil {
		return errors.New("auth: client certificate users need the CA that verifies them (ClientCAs, api.client_ca_file)")
	}
	return nil
}

// authError is why authentication failed; it becomes a 401 or 403.
type authError struct {
	status int
	msg    string
}

// authenticate finds the caller of r. A presented token must be valid even
// when a certificate would do: a wrong token is always an error, so
// mistakes show.
func (s *Server) authenticate(r *http.Request) (Caller, *authError) {
	if s.cfg.Auth.Disabled {
		return Caller{Name: "anonymous", Role: RoleAdmin, Method: "none"}, nil
	}
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return Caller{}, &authError{http.StatusUnauthorized,
				"the Authorization header must be 'Bearer TOKEN' (regentctl reads the token from --token-file or REGENT_TOKEN)"}
		}
		tokens := s.tokens.Load()
		if tokens != nil {
			if e, ok := tokens.lookup(strings.TrimSpace(tok)); ok {
				return Caller{Name: e.name, Role: e.role, Method: "token"}, nil
			}
		}
		return Caller{}, &authError{http.StatusUnauthorized,
			"the token was not accepted: pass a token that is in this agent's tokens file, with --token-file FILE or the REGENT_TOKEN environment variable (header 'Authorization: Bearer TOKEN')"}
	}
	if c, ok := s.certCaller(r); ok {
		return c, nil
	}
	return Caller{}, &authError{http.StatusUnauthorized,
		"this call needs credentials: pass a token with --token-file FILE or the REGENT_TOKEN environment variable (header 'Authorization: Bearer TOKEN'), or a client certificate the agent is configured to accept"}
}

// certCaller maps a client certificate to a role: it must chain to
// ClientCAs (not merely to some CA the TLS server accepts, which includes
// the agents') and name a user (urn:regent:user:NAME) of CertAdmins or
// CertReaders.
func (s *Server) certCaller(r *http.Request) (Caller, bool) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || len(r.TLS.VerifiedChains) == 0 || s.cfg.Auth.ClientCAs == nil {
		return Caller{}, false
	}
	if err := identity.Verify(r.TLS.PeerCertificates, s.cfg.Auth.ClientCAs, x509.ExtKeyUsageClientAuth); err != nil {
		return Caller{}, false
	}
	name, err := identity.User(r.TLS.PeerCertificates[0])
	if err != nil {
		return Caller{}, false
	}
	if slices.Contains(s.cfg.Auth.CertAdmins, name) {
		return Caller{Name: name, Role: RoleAdmin, Method: "certificate"}, true
	}
	if slices.Contains(s.cfg.Auth.CertReaders, name) {
		return Caller{Name: name, Role: RoleReadOnly, Method: "certificate"}, true
	}
	return Caller{}, false
}

// forwardingAgent is the agent a request comes from, by its certificate
// (verified by AgentCAs, URI SAN urn:regent:agent:ID): set when a follower
// forwards a call.
func (s *Server) forwardingAgent(r *http.Request) (string, bool) {
	if s.cfg.Auth.AgentCAs == nil || r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return "", false
	}
	id, err := identity.VerifiedAgent(r.TLS, s.cfg.Auth.AgentCAs)
	return id, err == nil
}

// require wraps h so that it runs only for a caller with at least role.
func (s *Server) require(role Role, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, aerr := s.authenticate(r)
		if aerr != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="regent"`)
			code := api.CodeUnauthorized
			if aerr.status == http.StatusForbidden {
				code = api.CodeForbidden
			}
			writeError(w, aerr.status, code, aerr.msg)
			return
		}
		if c.Role < role {
			writeError(w, http.StatusForbidden, api.CodeForbidden, fmt.Sprintf(
				"this call needs the %s role, and %s is %s: use an admin token (a line 'admin:TOKEN' in the agent's tokens file) or an admin client certificate",
				role, c.Name, c.Role))
			return
		}
		noteCaller(r, c.Name)
		h.ServeHTTP(w, r.WithContext(WithCaller(r.Context(), c)))
	})
}

// open wraps h for a route that needs no credentials; a caller who sends
// some anyway is still identified, for the Backend and the logs.
func (s *Server) open(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := Caller{Name: "anonymous", Role: RoleNone, Method: "none"}
		if r.Header.Get("Authorization") != "" || r.TLS != nil {
			if got, aerr := s.authenticate(r); aerr == nil {
				c = got
			}
		}
		h.ServeHTTP(w, r.WithContext(WithCaller(r.Context(), c)))
	})
}
