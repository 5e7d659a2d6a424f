package mysqltest

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
	"time"
)

// TLSFiles is a throwaway CA with a server certificate for 127.0.0.1 and a
// client certificate, all PEM.
type TLSFiles struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey []byte
	pool                                             *x509.CertPool
}

// NewTLSFiles makes a CA, a server certificate valid for 127.0.0.1 and
// localhost, and a client certificate.
func NewTLSFiles(t TB) *TLSFiles {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "regent test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTpl, caTpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	}
	f := &TLSFiles{CA: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), pool: x509.NewCertPool()}
	f.pool.AddCert(caCert)
	f.ServerCert, f.ServerKey = leaf(2, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	f.ClientCert, f.ClientKey = leaf(3, "regent client", x509.ExtKeyUsageClientAuth)
	return f
}

// install writes the files into dir (ca.pem, server.pem, server-key.pem,
// client.pem, client-key.pem).
func (f *TLSFiles) install(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, b := range map[string][]byte{
		"ca.pem": f.CA, "server.pem": f.ServerCert, "server-key.pem": f.ServerKey,
		"client.pem": f.ClientCert, "client-key.pem": f.ClientKey,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// WriteTo writes the files into dir and returns dir.
func (f *TLSFiles) WriteTo(t TB, dir string) string {
	t.Helper()
	if err := f.install(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// ClientConfig is a tls.Config that verifies servers against the CA.
func (f *TLSFiles) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: f.pool, MinVersion: tls.VersionTLS12}
}
