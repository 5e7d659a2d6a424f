package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/regentdb/regent/identity"
)

// CertExpiryWarning is how long before a certificate expires the agent and
// `regent check-config` start warning about it.
const CertExpiryWarning = 30 * 24 * time.Hour

// certCheck is one certificate and key the agent presents, and what they
// must satisfy.
type certCheck struct {
	key      string // the TLS section, for messages ("raft.tls")
	files    TLSFilesConfig
	usages   []x509.ExtKeyUsage
	dialedAs string // host:port others dial to reach it ("" when none)
	dialKey  string // the setting that says so
}

// agentCertChecks lists the certificates of c to check: the agent's on the
// Raft and API ports (each presented to callers and, calling out, to its
// peers: serverAuth and clientAuth), and the client certificate of
// Regent's MySQL connections when one is set.
func (c Config) agentCertChecks() []certCheck {
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	raftDial, raftKey := c.Raft.Advertise, "raft.advertise"
	if raftDial == "" {
		raftDial, raftKey = c.Raft.Bind, "raft.bind"
	}
	apiDial, apiKey := c.API.Advertise, "api.advertise"
	if apiDial == "" {
		apiDial, apiKey = c.API.Listen, "api.listen"
	}
	return []certCheck{
		{key: "raft.tls", files: c.Raft.TLS, usages: both, dialedAs: raftDial, dialKey: raftKey},
		{key: "api.tls", files: c.API.TLS, usages: both, dialedAs: apiDial, dialKey: apiKey},
		{key: "mysql.tls", files: c.MySQL.TLS.TLSFilesConfig, usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
	}
}

// checkCerts checks each certificate the agent presents, as of now: it and
// its key can be read and belong together, it chains to the section's CA
// for each usage it is presented for, and it is valid now. What only
// degrades (names that do not cover the dialed address, an expiry within
// CertExpiryWarning) is for CertificateWarnings.
func (c Config) checkCerts(v *validation, now time.Time) {
	for _, cc := range c.agentCertChecks() {
		f := cc.files
		if f.CertFile == "" || f.KeyFile == "" || !exists(f.CertFile) || !exists(f.KeyFile) {
			continue // checkTLS says what is missing
		}
		pair, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			v.bad(cc.key+".key_file", "%s and %s: %v (the key must be the certificate's, both PEM)", f.CertFile, f.KeyFile, err)
			continue
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			v.bad(cc.key+".cert_file", "%s: %v", f.CertFile, err)
			continue
		}
		switch {
		case now.Before(leaf.NotBefore):
			v.bad(cc.key+".cert_file", "%s is not valid before %s (check this host's clock, or the certificate)", f.CertFile, leaf.NotBefore.UTC().Format(time.RFC3339))
			continue
		case now.After(leaf.NotAfter):
			v.bad(cc.key+".cert_file", "%s expired at %s: renew it (deploy/regent/make-certs.sh with the same -o directory)", f.CertFile, leaf.NotAfter.UTC().Format(time.RFC3339))
			continue
		}
		if f.CAFile == "" || !exists(f.CAFile) {
			continue
		}
		roots, err := identity.LoadPool(f.CAFile)
		if err != nil {
			v.bad(cc.key+".ca_file", "%v", err)
			continue
		}
		chain := []*x509.Certificate{leaf}
		for _, der := range pair.Certificate[1:] {
			if ic, err := x509.ParseCertificate(der); err == nil {
				chain = append(chain, ic)
			}
		}
		for _, u := range cc.usages {
			if err := identity.Verify(chain, roots, u); err != nil {
				v.bad(cc.key+".cert_file", "%s does not verify against %s for %s: %v", f.CertFile, f.CAFile, usageName(u), err)
				break
			}
		}
	}
}

// CertificateWarnings lists what works now but will not, or not for every
// caller: a certificate that expires within CertExpiryWarning, and one
// whose names do not cover the address others dial to reach it (a client
// that checks the name, regentctl or a browser, refuses it). The agent
// logs each at start; `regent check-config` prints them.
func (c Config) CertificateWarnings(now time.Time) []Warning {
	var ws []Warning
	for _, cc := range c.agentCertChecks() {
		f := cc.files
		if f.CertFile == "" || !exists(f.CertFile) {
			continue
		}
		leaf, err := identity.LeafFromFile(f.CertFile)
		if err != nil {
			continue // Validate says so
		}
		if left := leaf.NotAfter.Sub(now); left > 0 && left < CertExpiryWarning {
			ws = append(ws, Warning{Key: cc.key + ".cert_file", Message: fmt.Sprintf("%s expires at %s, in %d day(s): renew it before (deploy/regent/make-certs.sh with the same -o directory), or the agent's connections fail then",
				f.CertFile, leaf.NotAfter.UTC().Format(time.RFC3339), int(left.Hours()/24))})
		}
		if cc.dialedAs == "" {
			continue
		}
		host, _, err := net.SplitHostPort(cc.dialedAs)
		if err != nil || host == "" || host == "0.0.0.0" || host == "::" {
			continue
		}
		if err := leaf.VerifyHostname(host); err != nil {
			ws = append(ws, Warning{Key: cc.key + ".cert_file", Message: fmt.Sprintf("%s does not name %s, the host of %s (%s): callers that check the name (regentctl, the status page in a browser, HAProxy's checks with verify) refuse it; give the certificate that name or address (make-certs.sh db1=ADDRESS,NAME)",
				f.CertFile, host, cc.dialKey, cc.dialedAs)})
		}
	}
	return ws
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func usageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageServerAuth:
		return "serverAuth (serving)"
	case x509.ExtKeyUsageClientAuth:
		return "clientAuth (calling a peer)"
	}
	return strings.TrimSpace(fmt.Sprint(u))
}
