package identity_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/regentdb/regent/identity"
	"github.com/regentdb/regent/integration/testpki"
)

func mustCA(t *testing.T, name string) *testpki.CA {
	t.Helper()
	ca, err := testpki.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func parse(t *testing.T, certPEM []byte, err error) *x509.Certificate {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(certPEM)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func issue(t *testing.T, ca *testpki.CA, s testpki.Spec) *x509.Certificate {
	t.Helper()
	c, _, err := ca.Issue(s)
	return parse(t, c, err)
}

func TestAgentAndUser(t *testing.T) {
	ca := mustCA(t, "regent")
	lo := []net.IP{net.ParseIP("127.0.0.1")}
	cases := []struct {
		name      string
		spec      testpki.Spec
		agent     string // "" when Agent must fail
		user      string // "" when User must fail
		agentWhy  string
		userWhyIn string
	}{
		{"agent", testpki.Spec{CN: "db1", IPs: lo, URIs: []string{"urn:regent:agent:db1"}}, "db1", "", "", "no URI SAN urn:regent:user:"},
		{"user", testpki.Spec{CN: "alice", URIs: []string{"urn:regent:user:alice"}}, "", "alice", "no URI SAN urn:regent:agent:", ""},
		{"mysqld: names only", testpki.Spec{CN: "db1", IPs: lo, DNSNames: []string{"db1"}}, "", "", "no URI SAN", "no URI SAN"},
		{"two agents", testpki.Spec{CN: "x", URIs: []string{"urn:regent:agent:db1", "urn:regent:agent:db2"}}, "", "", "several agents", "no URI SAN"},
		{"agent and user", testpki.Spec{CN: "x", URIs: []string{"urn:regent:agent:db1", "urn:regent:user:alice"}}, "", "", "both an agent and a user", "names an agent"},
		{"other URN namespace", testpki.Spec{CN: "x", URIs: []string{"urn:other:agent:db1", "spiffe://regent/agent/db1"}}, "", "", "no URI SAN", "no URI SAN"},
		{"upper-case prefix is not ours", testpki.Spec{CN: "x", URIs: []string{"URN:REGENT:AGENT:db1"}}, "", "", "no URI SAN", "no URI SAN"},
		{"bad id", testpki.Spec{CN: "x", URIs: []string{"urn:regent:agent:a%20b"}}, "", "", "is not valid", "no URI SAN"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := issue(t, ca, tc.spec)
			got, err := identity.Agent(c)
			if tc.agent != "" {
				if err != nil || got != tc.agent {
					t.Errorf("Agent = %q, %v; want %q", got, err, tc.agent)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.agentWhy) {
				t.Errorf("Agent = %q, %v; want an error with %q", got, err, tc.agentWhy)
			}
			gotU, err := identity.User(c)
			if tc.user != "" {
				if err != nil || gotU != tc.user {
					t.Errorf("User = %q, %v; want %q", gotU, err, tc.user)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.userWhyIn) {
				t.Errorf("User = %q, %v; want an error with %q", gotU, err, tc.userWhyIn)
			}
		})
	}
}

func TestCheckAgentCert(t *testing.T) {
	ca := mustCA(t, "regent")
	cases := []struct {
		name string
		spec testpki.Spec
		want string // "" valid
	}{
		{"good", testpki.Spec{CN: "db1", URIs: []string{identity.AgentURI("db1")}}, ""},
		{"another agent's", testpki.Spec{CN: "db1", URIs: []string{identity.AgentURI("db2")}}, `names agent "db2"`},
		{"no URI: says how to make one", testpki.Spec{CN: "db1", DNSNames: []string{"db1"}}, "make-certs.sh"},
		{"server only", testpki.Spec{CN: "db1", URIs: []string{identity.AgentURI("db1")}, Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, "clientAuth"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := identity.CheckAgentCert(issue(t, ca, tc.spec), "db1")
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("CheckAgentCert = %v, want %q", err, tc.want)
			}
		})
	}
	certPEM, _, err := ca.Agent("db1", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "c.pem")
	if err := os.WriteFile(path, append([]byte("junk before\n"), certPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := identity.CheckAgentCertFile(path, "db1"); err != nil {
		t.Fatal(err)
	}
	if err := identity.CheckAgentCertFile(path, "db9"); err == nil {
		t.Fatal("db1's certificate passed as db9's")
	}
}

// Only the agents' CA vouches for an agent: a client certificate from
// another CA the server also accepts (people's, mysqld's) is no agent's even
// if it carries the URI.
func TestVerifiedAgent(t *testing.T) {
	agents, other := mustCA(t, "agents"), mustCA(t, "other")
	mk := certOf(t)
	good := mk(agents.Agent("db1", nil, nil))
	forged := mk(other.Agent("db1", nil, nil))
	serverOnly := issue(t, agents, testpki.Spec{CN: "db1", URIs: []string{identity.AgentURI("db1")}, Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if id, err := identity.VerifiedAgent(&tls.ConnectionState{PeerCertificates: []*x509.Certificate{good}}, agents.Pool()); err != nil || id != "db1" {
		t.Fatalf("good: %q, %v", id, err)
	}
	for name, c := range map[string]*x509.Certificate{"other CA": forged, "no clientAuth": serverOnly} {
		if id, err := identity.VerifiedAgent(&tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}}, agents.Pool()); err == nil {
			t.Errorf("%s: accepted as %q", name, id)
		}
	}
	if _, err := identity.VerifiedAgent(&tls.ConnectionState{}, agents.Pool()); !errors.Is(err, identity.ErrNoIdentity) {
		t.Errorf("no certificate: %v", err)
	}
}

// certOf returns a function that parses what a testpki constructor returns.
func certOf(t *testing.T) func(c, _ []byte, err error) *x509.Certificate {
	return func(c, _ []byte, err error) *x509.Certificate {
		t.Helper()
		return parse(t, c, err)
	}
}

func TestRequireAgent(t *testing.T) {
	ca := mustCA(t, "regent")
	mk := certOf(t)
	db1 := mk(ca.Agent("db1", nil, nil))
	mysqld := mk(ca.MySQL("db2", []net.IP{net.ParseIP("10.0.0.12")}, []string{"db2"}))
	check := identity.RequireAgent("db2")
	if err := check(tls.ConnectionState{PeerCertificates: []*x509.Certificate{mk(ca.Agent("db2", nil, nil))}}); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*x509.Certificate{"another agent": db1, "mysqld of the right host": mysqld} {
		err := check(tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}})
		var pe *identity.PeerError
		if !errors.As(err, &pe) || pe.Want != "db2" || !strings.Contains(err.Error(), "presented") {
			t.Errorf("%s: %v", name, err)
		}
	}
	ctx := identity.WithExpectedAgent(context.Background(), "db3")
	if id, ok := identity.ExpectedAgent(ctx); !ok || id != "db3" {
		t.Errorf("ExpectedAgent = %q, %v", id, ok)
	}
	if _, ok := identity.ExpectedAgent(context.Background()); ok {
		t.Error("an expected agent without one set")
	}
}
