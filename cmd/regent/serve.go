package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/regentdb/regent/agent"
	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/apiserver"
	"github.com/regentdb/regent/config"
	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/identity"
	"github.com/regentdb/regent/proxyhook"
)

// serve runs the agent until ctx ends: Raft, the agent's loops and the HTTP
// API, then stops them in reverse order.
func serve(ctx context.Context, cfg config.Config, stderr io.Writer) error {
	// SIGHUP reloads the tokens; caught from the start so that an early
	// `systemctl reload` cannot kill the agent.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log := newLogger(cfg.Log, stderr)
	// Settings that expose secrets or the write route: said once, at start.
	for _, w := range append(cfg.SecurityWarnings(), cfg.CertificateWarnings(time.Now())...) {
		log.Warn(w.Message, "key", w.Key)
	}
	secrets, agentToken, err := readSecrets(cfg)
	if err != nil {
		return &configError{err}
	}
	tokens, err := apiserver.LoadTokenFile(cfg.API.TokensFile)
	if err != nil {
		return &configError{err}
	}

	apiAddr := cfg.APIAddr()
	scheme := "http"
	var serverTLS, clientTLS *tls.Config
	var agentCAs *x509.CertPool  // verifies the other agents' certificates
	var clientCAs *x509.CertPool // verifies people's (cert_admins, cert_readers)
	if cfg.API.TLS.CertFile != "" {
		scheme = "https"
		if serverTLS, err = apiserver.ServerTLS(apiserver.TLSFiles{CertFile: cfg.API.TLS.CertFile, KeyFile: cfg.API.TLS.KeyFile,
			ClientCAFile: cfg.API.ClientCAFile, AgentCAFile: cfg.API.TLS.CAFile}); err != nil {
			return &configError{err}
		}
		if agentCAs, err = identity.LoadPool(cfg.API.TLS.CAFile); err != nil {
			return &configError{fmt.Errorf("api.tls.ca_file: %w", err)}
		}
		if cfg.API.ClientCAFile != "" {
			if clientCAs, err = identity.LoadPool(cfg.API.ClientCAFile); err != nil {
				return &configError{fmt.Errorf("api.client_ca_file: %w", err)}
			}
		}
		clientTLS = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: agentCAs}
		// Agents present their API certificate when they call each other:
		// the receiver takes a report only from the agent it names.
		cert, err := tls.LoadX509KeyPair(cfg.API.TLS.CertFile, cfg.API.TLS.KeyFile)
		if err != nil {
			return &configError{fmt.Errorf("api.tls: %w", err)}
		}
		clientTLS.Certificates = []tls.Certificate{cert}
	} else {
		log.Warn("the HTTP API runs without TLS: set api.tls to encrypt tokens and operations in transit")
		log.Warn("without api.tls, agents' reports are bound only to the shared agent token: any process that holds it can report in any agent's name, including \"mysqld gone\" for the primary's agent, which starts a failover; set api.tls so that each report must come with its agent's certificate")
	}

	ccfg, err := cfg.Consensus()
	if err != nil {
		return &configError{err}
	}
	node, err := consensus.Start(ctx, ccfg, log.With("component", "raft"))
	if err != nil {
		return fmt.Errorf("starting raft: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := node.Close(cctx); err != nil {
			log.Warn("raft close", "err", err)
		}
	}()

	transport := &agent.HTTPTransport{
		Client: &http.Client{Transport: apiserver.NewForwardTransport(clientTLS), Timeout: 2 * time.Second},
		Scheme: scheme, Token: agentToken,
		Addr: func(id string) string {
			if m, ok := node.State().Members[id]; ok && m.APIAddr != "" {
				return m.APIAddr
			}
			for _, p := range cfg.Raft.Peers {
				if p.ID == id {
					return p.API
				}
			}
			return ""
		},
	}
	router := proxyhook.NewRouter(log.With("component", "router"))
	defer router.Close()
	metrics := apiserver.NewMetrics(version)
	deps := agent.Deps{
		Router:       router,
		OnDetect:     metrics.ObserveDetection,
		OnProbe:      metrics.ObserveProbe,
		OnProbeRound: metrics.ObserveProbeRound,
		Observe: func(cluster string, res failover.RunResult) {
			if !res.Recorded {
				return
			}
			ended := res.Started.Add(res.Duration)
			op := api.Operation{ID: res.OperationID, Cluster: cluster, Kind: string(res.Kind), Started: res.Started, Ended: &ended, Result: string(res.Outcome)}
			if res.WriteBlocked > 0 {
				wb := api.Duration(res.WriteBlocked)
				op.WriteBlocked = &wb
			}
			metrics.ObserveOperation(op)
		},
	}
	ag, err := agent.New(cfg, secrets, node, transport, deps, log.With("component", "agent"))
	if err != nil {
		return &configError{err}
	}
	// Every secret is read (and copied) by now: take the *_env ones out of
	// the environment that hooks and other processes of this user can read.
	if err := scrubEnvironment(cfg.SecretEnvNames()); err != nil {
		log.Warn("secrets could not be fully removed from the agent's environment: prefer *_file settings", "err", err)
	}
	srv, err := apiserver.New(apiserver.Config{
		AgentID: cfg.NodeID, Version: version, Backend: ag.API(),
		Health:  proxyhook.NewHealthHandler(ag.API().HealthState, log.With("component", "health")),
		Ready:   ag.API().Ready,
		Metrics: metrics,
		Auth: apiserver.AuthConfig{Tokens: tokens, CertAdmins: cfg.API.CertAdmins, CertReaders: cfg.API.CertReaders,
			ClientCAs: clientCAs, AgentCAs: agentCAs,
			OpenStatusPage: cfg.API.OpenStatusPage,
			ProtectHealth:  cfg.API.OpenHealth != nil && !*cfg.API.OpenHealth,
			ProtectMetrics: cfg.API.OpenMetrics != nil && !*cfg.API.OpenMetrics},
		Forward: apiserver.ForwardConfig{Transport: apiserver.NewForwardTransport(clientTLS), Scheme: scheme},
		Logger:  log.With("component", "api"),
	})
	if err != nil {
		return &configError{err}
	}
	metrics.DeclareReportRefusals(agent.RefusalReasons)
	reports := ag.ReportHandler(agent.ReportAuth{Token: agentToken, AgentCAs: agentCAs, Refused: metrics.ObserveReportRefused})
	hs, err := newAPIServer(srv, reports, cfg.API.Limits, serverTLS)
	if err != nil {
		return &configError{err}
	}
	ln, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return fmt.Errorf("api.listen %s: %w", cfg.API.Listen, err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()

	ag.Start(ctx)
	defer ag.Close()
	stopReload := reloadTokensOnHUP(ctx, hup, cfg.API.TokensFile, srv, log)
	defer stopReload()
	// The snapshot metrics are built per scrape. The configured clusters'
	// operation counters exist from the start, so that increase() sees a
	// first failover that comes before the first scrape.
	metrics.SetSource(ag.API())
	for _, cc := range cfg.Clusters {
		metrics.DeclareCluster(cc.Name)
	}
	log.Info("regent started", "node", cfg.NodeID, "api", scheme+"://"+apiAddr, "raft", ccfg.RaftAddr, "version", version)

	select {
	case <-ctx.Done():
		log.Info("stopping")
	case err := <-serveErr:
		return fmt.Errorf("api server: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("api shutdown", "err", err)
	}
	return nil
}

// newAPIServer is the agent's HTTP server: the agents' report route beside
// the API, behind api.limits (apiserver.Limits), over TLS when serverTLS is
// set.
func newAPIServer(srv *apiserver.Server, reports http.Handler, limits apiserver.Limits, serverTLS *tls.Config) (*apiserver.HTTPServer, error) {
	mux := http.NewServeMux()
	mux.Handle(agent.ReportPath, reports)
	mux.Handle("/", srv.Handler())
	return srv.NewHTTPServer(mux, limits, serverTLS)
}

func newLogger(c config.LogConfig, w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	switch strings.ToLower(c.Level) {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// readSecrets reads the passwords and the agent token from their files or
// environment variables.
func readSecrets(cfg config.Config) (agent.Secrets, string, error) {
	var s agent.Secrets
	var err error
	if s.MySQLPassword, err = config.ReadSecret(cfg.MySQL.PasswordFile, cfg.MySQL.PasswordEnv); err != nil {
		return s, "", fmt.Errorf("mysql.password_file: %w", err)
	}
	if s.ReplicationPassword, err = config.ReadSecret(cfg.MySQL.ReplicationPasswordFile, cfg.MySQL.ReplicationPasswordEnv); err != nil {
		return s, "", fmt.Errorf("mysql.replication_password_file: %w", err)
	}
	tok, err := config.ReadSecret(cfg.API.AgentTokenFile, "")
	if err != nil {
		return s, "", fmt.Errorf("api.agent_token_file: %w", err)
	}
	return s, tok, nil
}

// reloadTokensOnHUP re-reads the tokens file on SIGHUP, so that a token can
// be rotated without a restart. A bad file keeps the old tokens.
func reloadTokensOnHUP(ctx context.Context, hup <-chan os.Signal, path string, srv *apiserver.Server, log *slog.Logger) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				t, err := apiserver.LoadTokenFile(path)
				if err != nil {
					log.Error("SIGHUP: tokens file not reloaded; the old tokens stay in force", "err", err)
					continue
				}
				srv.SetTokens(t)
				log.Info("SIGHUP: tokens reloaded", "tokens", t.Len())
			}
		}
	}()
	return func() { cancel(); <-done }
}
