package apiserver

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/regentdb/regent/identity"
)

// TLSFiles names the files of the API's TLS server configuration.
type TLSFiles struct {
	// CertFile and KeyFile are the agent's API certificate (PEM, chain
	// included) and key.
	CertFile, KeyFile string
	// ClientCAFile is a PEM bundle of CAs whose client certificates are
	// verified for people and programs (AuthConfig.CertAdmins and
	// CertReaders); empty accepts none of theirs.
	ClientCAFile string
	// AgentCAFile is the CA of the agents' certificates (api.tls.ca_file):
	// the other agents present theirs when they send reports and forward
	// calls. Empty accepts no agent certificate.
	AgentCAFile string
	// RequireClientCert refuses connections without a verified client
	// certificate. Leave it off when HAProxy's health checks or Prometheus
	// come without one.
	RequireClientCert bool
}

// ServerTLS builds the API's TLS server configuration: TLS 1.2 or later,
// and client certificates verified against ClientCAFile and AgentCAFile
// together when either is given. The handshake only says that one of them
// signed a certificate; which one vouches for what is decided per request
// (AuthConfig.ClientCAs for roles, AgentCAs for agents), so that a person's
// CA can never vouch for an agent.
func ServerTLS(f TLSFiles) (*tls.Config, error) {
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, errors.New("api tls: both a certificate file and a key file are needed")
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("api tls: load certificate %s and key %s: %w", f.CertFile, f.KeyFile, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	var files []string
	for _, ca := range []string{f.ClientCAFile, f.AgentCAFile} {
		if ca != "" {
			files = append(files, ca)
		}
	}
	if len(files) == 0 {
		if f.RequireClientCert {
			return nil, errors.New("api tls: requiring client certificates needs a client CA file to verify them")
		}
		return cfg, nil
	}
	pool, err := identity.LoadPool(files...)
	if err != nil {
		return nil, fmt.Errorf("api tls: client certificate CAs: %w", err)
	}
	cfg.ClientCAs = pool
	cfg.ClientAuth = tls.VerifyClientCertIfGiven
	if f.RequireClientCert {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
