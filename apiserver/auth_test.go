package apiserver_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regentdb/regent/apiserver"
	"github.com/regentdb/regent/apiserver/apiservertest"
)

func TestParseTokens(t *testing.T) {
	tok := strings.Repeat("a", 16)
	tests := []struct {
		name, in string
		n        int
		errSays  string
	}{
		{name: "admin and read-only", in: "# comment\n\nadmin:" + tok + "\nread-only:" + strings.Repeat("b", 64) + ":grafana\n", n: 2},
		{name: "readonly alias", in: "readonly:" + tok, n: 1},
		{name: "crlf lines", in: "admin:" + tok + "\r\n", n: 1},
		{name: "empty", in: "# nothing\n", errSays: "no token"},
		{name: "unknown role", in: "root:" + tok, errSays: `unknown role "root"`},
		{name: "no colon", in: tok, errSays: "line 1: want role:token"},
		{name: "too short", in: "admin:short", errSays: "16 to 4096"},
		{name: "space inside", in: "admin:" + tok + " x", errSays: "printable ASCII"},
		{name: "duplicate token", in: "admin:" + tok + "\nread-only:" + tok, errSays: "line 2: the same token is already on line 1"},
		{name: "bad name", in: "admin:" + tok + ":bad name", errSays: "name"},
		{name: "duplicate name", in: "admin:" + tok + ":x\nadmin:" + strings.Repeat("c", 16) + ":x", errSays: "already used"},
		{name: "four fields", in: "admin:" + tok + ":n:x", errSays: "want role:token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := apiserver.ParseTokens([]byte(tc.in))
			if tc.errSays != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errSays) {
					t.Fatalf("error %v, want one saying %q", err, tc.errSays)
				}
				if strings.Contains(err.Error(), tok) {
					t.Fatalf("the error echoes the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Len() != tc.n {
				t.Fatalf("%d tokens, want %d", got.Len(), tc.n)
			}
		})
	}
}

func FuzzParseTokens(f *testing.F) {
	f.Add([]byte("admin:0123456789abcdef\nread-only:fedcba9876543210:x\n"))
	f.Add([]byte("# c\n\nadmin:0123456789abcdef:a:b\n"))
	f.Add([]byte("\x00:\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		toks, err := apiserver.ParseTokens(data)
		if err == nil && toks.Len() == 0 {
			t.Fatal("no error and no token")
		}
	})
}

func TestLoadTokenFileRefusesWorldReadable(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tokens")
	if err := os.WriteFile(p, []byte(apiservertest.TokensFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := apiserver.LoadTokenFile(p); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable tokens file: %v", err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	toks, err := apiserver.LoadTokenFile(p)
	if err != nil || toks.Len() != 2 {
		t.Fatalf("%v %v", toks, err)
	}
}

func TestSetTokensRotates(t *testing.T) {
	fake := apiservertest.NewFakeBackend()
	defer fake.Close()
	s, ts := newServer(t, fake, nil)
	newTok := "rotated-token-0123456789"
	toks, err := apiserver.ParseTokens([]byte("admin:" + newTok))
	if err != nil {
		t.Fatal(err)
	}
	s.SetTokens(toks)
	if a := call(t, ts, "GET", "/v1/status", admin, ""); a.status != 401 {
		t.Errorf("old token after rotation: %d", a.status)
	}
	if a := call(t, ts, "GET", "/v1/status", newTok, ""); a.status != 200 {
		t.Errorf("new token: %d", a.status)
	}
}

// pki is a throwaway CA with server and client certificates.
type pki struct {
	dir    string
	caPool *x509.CertPool
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "regent test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &pki{dir: t.TempDir(), caPool: x509.NewCertPool(), ca: ca, caKey: key}
	p.caPool.AddCert(ca)
	writePEM(t, filepath.Join(p.dir, "ca.pem"), "CERTIFICATE", der)
	return p
}

// issue writes name.pem and name-key.pem and returns their paths.
func (p *pki) issue(t *testing.T, name string, client bool, dns ...string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	usage := x509.ExtKeyUsageServerAuth
	if client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		DNSNames: dns, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, keyPath := filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+"-key.pem")
	writePEM(t, cert, "CERTIFICATE", der)
	writePEM(t, keyPath, "EC PRIVATE KEY", kder)
	return cert, keyPath
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestServerTLSNeedsFiles(t *testing.T) {
	if _, err := apiserver.ServerTLS(apiserver.TLSFiles{}); err == nil {
		t.Fatal("no files: no error")
	}
	p := newPKI(t)
	c, k := p.issue(t, "a1", false)
	if _, err := apiserver.ServerTLS(apiserver.TLSFiles{CertFile: c, KeyFile: k, RequireClientCert: true}); err == nil {
		t.Fatal("client certificates required without a CA: no error")
	}
	cfg, err := apiserver.ServerTLS(apiserver.TLSFiles{CertFile: c, KeyFile: k, ClientCAFile: filepath.Join(p.dir, "ca.pem"), RequireClientCert: true})
	if err != nil || cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.MinVersion != tls.VersionTLS12 {
		t.Fatalf("%v %+v", err, cfg)
	}
}
