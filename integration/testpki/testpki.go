// Package testpki makes throwaway certificates for test installations of
// Regent (the loopback sandbox, the Docker system tests, the network
// namespace lab) and for unit tests: CAs, and leaf certificates of the three
// kinds Regent's trust model knows (README "Security"): an agent's (URI SAN
// urn:regent:agent:ID, server and client), mysqld's (no Regent URI, from a
// CA of its own in a real installation) and a person's (URI SAN
// urn:regent:user:NAME, client only). Nothing in the product imports it.
package testpki

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
	"net/url"
	"time"

	"github.com/regentdb/regent/identity"
)

// CA is a certificate authority valid for a day (from an hour ago).
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// PEM is the CA certificate, for ca_file settings.
	PEM []byte
}

// NewCA makes a CA named cn.
func NewCA(cn string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Spec describes a leaf certificate.
type Spec struct {
	CN       string
	IPs      []net.IP
	DNSNames []string
	URIs     []string
	// Usages are the extended key usages; nil means serverAuth and
	// clientAuth.
	Usages []x509.ExtKeyUsage
	// NotBefore and NotAfter bound its validity; zero means from an hour
	// ago, and for a day.
	NotBefore, NotAfter time.Time
}

// Issue makes a certificate from s signed by the CA and returns it and its
// EC private key, PEM-encoded.
func (ca *CA) Issue(s Spec) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return nil, nil, err
	}
	usages := s.Usages
	if usages == nil {
		usages = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	if s.NotBefore.IsZero() {
		s.NotBefore = time.Now().Add(-time.Hour)
	}
	if s.NotAfter.IsZero() {
		s.NotAfter = time.Now().Add(24 * time.Hour)
	}
	tpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: s.CN},
		NotBefore: s.NotBefore, NotAfter: s.NotAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usages,
		IPAddresses: s.IPs, DNSNames: s.DNSNames}
	for _, u := range s.URIs {
		pu, err := url.Parse(u)
		if err != nil {
			return nil, nil, err
		}
		tpl.URIs = append(tpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// Agent makes agent id's certificate for the given IP addresses and DNS
// names: URI SAN urn:regent:agent:ID, serverAuth and clientAuth (an agent
// presents the same certificate to callers and to its peers).
func (ca *CA) Agent(id string, ips []net.IP, dnsNames []string) (certPEM, keyPEM []byte, err error) {
	return ca.Issue(Spec{CN: id, IPs: ips, DNSNames: dnsNames, URIs: []string{identity.AgentURI(id)}})
}

// MySQL makes a certificate as make-certs.sh makes mysqld's: the host's
// names, serverAuth and clientAuth, and no Regent URI.
func (ca *CA) MySQL(name string, ips []net.IP, dnsNames []string) (certPEM, keyPEM []byte, err error) {
	return ca.Issue(Spec{CN: name, IPs: ips, DNSNames: dnsNames})
}

// User makes a person's client certificate: URI SAN urn:regent:user:NAME,
// clientAuth only.
func (ca *CA) User(name string) (certPEM, keyPEM []byte, err error) {
	return ca.Issue(Spec{CN: name, URIs: []string{identity.UserURI(name)}, Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
}

// ClientConfig is a TLS client configuration that trusts only this CA.
func (ca *CA) ClientConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// Pool is a pool holding this CA.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return pool
}
