package apiserver

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSFiles names the files of the API's TLS server configuration.
type TLSFiles struct {
	// CertFile and KeyFile are the agent's API certificate (PEM, chain
	// included) and key.
	CertFile, KeyFile string
	// ClientCAFile is a PEM bundle of CAs whose client certificates are
	// verified; empty accepts no client certificates.
	ClientCAFile string
	// RequireClientCert refuses connections without a verified client
	// certificate. Leave it off when HAProxy's health checks or Prometheus
	// come without one.
	RequireClientCert bool
}

// ServerTLS builds the API's TLS server configuration: TLS 1.2 or later,
// and client certificates verified against ClientCAFile when given (then
// AuthConfig.CertAdmins/CertReaders map them to roles).
func ServerTLS(f TLSFiles) (*tls.Config, error) {
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, errors.New("api tls: both a certificate file and a key file are needed")
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("api tls: load certificate %s and key %s: %w", f.CertFile, f.KeyFile, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if f.ClientCAFile == "" {
		if f.RequireClientCert {
			return nil, errors.New("api tls: requiring client certificates needs a client CA file to verify them")
		}
		return cfg, nil
	}
	pem, err := os.ReadFile(f.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("api tls: client CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("api tls: client CA file %s holds no PEM certificate", f.ClientCAFile)
	}
	cfg.ClientCAs = pool
	cfg.ClientAuth = tls.VerifyClientCertIfGiven
	if f.RequireClientCert {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
