// Package identity says who a certificate names in Regent's trust model.
//
// An agent's certificate carries the URI subject alternative name
// urn:regent:agent:<node_id>; that URI, and nothing else in the certificate
// (not its common name, not its DNS names), is the agent's identity on the
// Raft port in both directions, on the report route, on forwarded API calls
// and in the audit log. A person's client certificate carries
// urn:regent:user:<name>, which api.cert_admins and api.cert_readers name.
// mysqld's certificates come from another CA and carry no urn:regent: URI, so
// they can stand in for neither (deploy/regent/make-certs.sh makes them so).
//
// The URIs are compared exactly: lower-case scheme and namespace, and the id
// or name as written in the configuration.
//
// The package knows certificates and TLS connection states, nothing of Raft,
// MySQL or HTTP routes; consensus, agent, apiserver and cmd/regent use it.
package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// The URI prefixes. Prefix is what every Regent identity starts with.
const (
	Prefix      = "urn:regent:"
	AgentPrefix = Prefix + "agent:"
	UserPrefix  = Prefix + "user:"
)

// howToMake ends errors about an agent's own certificate.
func howToMake(id string) string {
	return "make one with deploy/regent/make-certs.sh (or add subjectAltName URI:" + AgentURI(id) + " and extendedKeyUsage serverAuth,clientAuth to yours)"
}

// ErrNoIdentity: the certificate names no agent (or no user).
var ErrNoIdentity = errors.New("the certificate carries no Regent identity")

// AgentURI is the URI SAN that names agent id.
func AgentURI(id string) string { return AgentPrefix + id }

// UserURI is the URI SAN that names the person or program name.
func UserURI(name string) string { return UserPrefix + name }

// uris returns the certificate's URI SANs with the given prefix, the prefix
// cut off.
func uris(c *x509.Certificate, prefix string) []string {
	var out []string
	for _, u := range c.URIs {
		if rest, ok := strings.CutPrefix(u.String(), prefix); ok {
			out = append(out, rest)
		}
	}
	return out
}

// Agent returns the agent id the certificate names. It is an error for a
// certificate to name no agent, several, or an agent and a user at once.
func Agent(c *x509.Certificate) (string, error) {
	return one(c, AgentPrefix, "<node_id>", "agent", UserPrefix,
		"the certificate names both an agent and a user: an agent's certificate must not double as a person's")
}

// User returns the user name the certificate names (urn:regent:user:NAME).
// A certificate that also names an agent is no user's.
func User(c *x509.Certificate) (string, error) {
	return one(c, UserPrefix, "<name>", "user", AgentPrefix,
		"the certificate names an agent: agents' certificates grant no API role")
}

// one returns the single name under prefix; a name under other is an error.
func one(c *x509.Certificate, prefix, placeholder, kind, other, bothMsg string) (string, error) {
	names := uris(c, prefix)
	switch {
	case len(names) == 0:
		return "", fmt.Errorf("%w: no URI SAN %s%s", ErrNoIdentity, prefix, placeholder)
	case len(names) > 1:
		return "", fmt.Errorf("the certificate names several %ss (%s): one certificate per %s", kind, strings.Join(names, ", "), kind)
	case len(uris(c, other)) > 0:
		return "", errors.New(bothMsg)
	case !validName(names[0]):
		return "", fmt.Errorf("the certificate's %s name %q is not valid (1 to 64 letters, digits, '.', '_', '@', '-')", kind, names[0])
	}
	return names[0], nil
}

// validName: 1 to 64 letters, digits, '.', '_', '@' or '-' (node ids and
// token names fit).
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '@' || c == '-') {
			return false
		}
	}
	return true
}

// ValidName reports whether s can be an agent id or a user name in a URI.
func ValidName(s string) bool { return validName(s) }

// Describe sums up what a certificate presents, for logs: subject, URI
// SANs, DNS and IP SANs, issuer. It holds nothing secret.
func Describe(c *x509.Certificate) string {
	if c == nil {
		return "no certificate"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "subject %q", c.Subject.String())
	var us []string
	for _, u := range c.URIs {
		us = append(us, u.String())
	}
	if len(us) > 0 {
		fmt.Fprintf(&b, ", URIs [%s]", strings.Join(us, " "))
	} else {
		b.WriteString(", no URI SAN")
	}
	names := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) > 0 {
		fmt.Fprintf(&b, ", names [%s]", strings.Join(names, " "))
	}
	fmt.Fprintf(&b, ", issuer %q", c.Issuer.String())
	return b.String()
}

// CheckAgentCert checks this agent's own certificate: it must name agent
// id and be usable both as a server and as a client (Raft is mutual TLS;
// agents present it when they call each other).
func CheckAgentCert(c *x509.Certificate, id string) error {
	got, err := Agent(c)
	switch {
	case errors.Is(err, ErrNoIdentity):
		return fmt.Errorf("the certificate has no URI SAN %s, this agent's identity: %s", AgentURI(id), howToMake(id))
	case err != nil:
		return fmt.Errorf("%w: %s", err, howToMake(id))
	case got != id:
		return fmt.Errorf("the certificate names agent %q (URI SAN %s), not this agent %q: give each agent its own certificate; %s", got, AgentURI(got), id, howToMake(id))
	}
	if len(c.ExtKeyUsage) > 0 && !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny) &&
		(!slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth)) {
		return fmt.Errorf("the certificate lacks the serverAuth or clientAuth extended key usage (it needs both): %s", howToMake(id))
	}
	return nil
}

// CheckAgentCertFile reads the first certificate of a PEM file and checks it
// with CheckAgentCert.
func CheckAgentCertFile(path, id string) error {
	c, err := LeafFromFile(path)
	if err != nil {
		return err
	}
	return CheckAgentCert(c, id)
}

// LeafFromFile parses the first certificate of a PEM file.
func LeafFromFile(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("%s holds no PEM certificate", path)
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			return c, nil
		}
	}
}

// LoadPool reads PEM bundles of CA certificates into one pool; each file
// must hold at least one certificate.
func LoadPool(paths ...string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("%s holds no PEM certificate", path)
		}
	}
	return pool, nil
}

// Verify checks that a presented chain (leaf first, as in
// tls.ConnectionState.PeerCertificates) chains to roots with the given
// extended key usage. A TLS server that accepts client certificates from
// several CAs uses it to tell which CA vouches for a caller: only the
// agents' CA may vouch for an agent.
func Verify(chain []*x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage) error {
	if len(chain) == 0 {
		return errors.New("no certificate")
	}
	if roots == nil {
		return errors.New("no CA to verify it against")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

// VerifiedAgent returns the agent that a TLS client's certificate names,
// provided the certificate chains to agentCAs for client authentication.
func VerifiedAgent(cs *tls.ConnectionState, agentCAs *x509.CertPool) (string, error) {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return "", fmt.Errorf("%w: no client certificate", ErrNoIdentity)
	}
	if err := Verify(cs.PeerCertificates, agentCAs, x509.ExtKeyUsageClientAuth); err != nil {
		return "", fmt.Errorf("the client certificate is not an agent's (%s): %w", Describe(cs.PeerCertificates[0]), err)
	}
	id, err := Agent(cs.PeerCertificates[0])
	if err != nil {
		return "", fmt.Errorf("%w (presented %s)", err, Describe(cs.PeerCertificates[0]))
	}
	return id, nil
}

// PeerError is a TLS peer refused for who its certificate names.
type PeerError struct {
	Presented string // Describe of the peer's certificate
	Want      string // the agent expected, "" for any member
	Reason    string
}

func (e *PeerError) Error() string {
	return e.Reason + " (presented " + e.Presented + ")"
}

// RequireAgent returns a tls.Config.VerifyConnection function that accepts
// only a peer whose (already verified) certificate names agent want.
func RequireAgent(want string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return &PeerError{Presented: "no certificate", Want: want, Reason: "expected agent " + want}
		}
		leaf := cs.PeerCertificates[0]
		got, err := Agent(leaf)
		switch {
		case err != nil:
			return &PeerError{Presented: Describe(leaf), Want: want, Reason: fmt.Sprintf("expected agent %s, and the certificate names no agent: %v", want, err)}
		case got != want:
			return &PeerError{Presented: Describe(leaf), Want: want, Reason: fmt.Sprintf("expected agent %s, and the certificate names agent %s", want, got)}
		}
		return nil
	}
}

type expectKey struct{}

// WithExpectedAgent returns ctx asking a TLS dial made with it to accept only
// agent id's certificate (apiserver's agent transport honours it).
func WithExpectedAgent(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, expectKey{}, id)
}

// ExpectedAgent returns the agent a dial made with ctx must reach.
func ExpectedAgent(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(expectKey{}).(string)
	return id, ok && id != ""
}
