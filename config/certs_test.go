package config

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regentdb/regent/identity"
	"github.com/regentdb/regent/integration/testpki"
)

// check-config reads the certificates, not only their paths: each
// certificate the agent presents must come with its own key, chain to the
// section's CA for serving and for calling peers, and be valid now; names
// that miss the dialed address and an expiry within 30 days are warnings.
// Each case breaks one thing in an otherwise valid raft.tls.
func TestCertificateChecks(t *testing.T) {
	y, dir := validConfigYAML(t)
	ca, err := testpki.NewCA("config test CA")
	if err != nil {
		t.Fatal(err)
	}
	// The CA of validConfigYAML's certificates is another one: write this
	// test's own CA beside them.
	caFile := filepath.Join(dir, "certs-ca.pem")
	if err := os.WriteFile(caFile, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	other, err := testpki.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	loopback := []net.IP{net.ParseIP("127.0.0.1")}
	agent := testpki.Spec{CN: "a1", IPs: loopback, URIs: []string{identity.AgentURI("a1")}, NotAfter: time.Now().Add(365 * 24 * time.Hour)}
	write := func(name string, c *testpki.CA, s testpki.Spec) (cert, key string) {
		t.Helper()
		cp, kp, err := c.Issue(s)
		if err != nil {
			t.Fatal(err)
		}
		cert, key = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		if err := os.WriteFile(cert, cp, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(key, kp, 0o600); err != nil {
			t.Fatal(err)
		}
		return cert, key
	}
	good, goodKey := write("good", ca, agent)
	_, otherKey := write("other-key", ca, agent)
	foreign, foreignKey := write("foreign", other, agent)
	expired := agent
	expired.NotBefore, expired.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
	expiredCert, expiredKey := write("expired", ca, expired)
	future := agent
	future.NotBefore, future.NotAfter = time.Now().Add(time.Hour), time.Now().Add(48*time.Hour)
	futureCert, futureKey := write("future", ca, future)
	clientOnly := agent
	clientOnly.Usages = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	clientCert, clientKey := write("client-only", ca, clientOnly)
	soon := agent
	soon.NotAfter = time.Now().Add(10 * 24 * time.Hour)
	soonCert, soonKey := write("soon", ca, soon)
	unnamed := agent
	unnamed.IPs = []net.IP{net.ParseIP("10.9.9.9")}
	unnamedCert, unnamedKey := write("unnamed", ca, unnamed)

	raftTLS := func(cert, key string) string {
		return strings.Replace(y, "  insecure_plaintext: true\n", "  tls: {ca_file: "+caFile+", cert_file: "+cert+", key_file: "+key+"}\n", 1)
	}
	for _, c := range []struct {
		name       string
		cert, key  string
		err, warns string // substrings; "" for none
	}{
		{"valid", good, goodKey, "", ""},
		{"the key of another certificate", good, otherKey, "raft.tls.key_file: " + good, ""},
		{"signed by another CA", foreign, foreignKey, "raft.tls.cert_file: " + foreign + " does not verify against " + caFile, ""},
		{"expired", expiredCert, expiredKey, "raft.tls.cert_file: " + expiredCert + " expired at", ""},
		{"not valid yet", futureCert, futureKey, "is not valid before", ""},
		{"without serverAuth", clientCert, clientKey, "for serverAuth (serving)", ""},
		{"expires within 30 days", soonCert, soonKey, "", "expires at"},
		{"names another address", unnamedCert, unnamedKey, "", "does not name 127.0.0.1, the host of raft.bind"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse([]byte(raftTLS(c.cert, c.key)))
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("error %v, want one with %q", err, c.err)
			case c.err != "":
				return
			}
			var ws []string
			for _, w := range cfg.CertificateWarnings(time.Now()) {
				if w.Key == "raft.tls.cert_file" {
					ws = append(ws, w.Message)
				}
			}
			got := strings.Join(ws, "\n")
			if c.warns == "" && got != "" || c.warns != "" && !strings.Contains(got, c.warns) {
				t.Fatalf("warnings %q, want %q", got, c.warns)
			}
		})
	}
}
