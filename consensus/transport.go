package consensus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer is a raft.StreamLayer over TCP, with mutual TLS when configured.
//
// Inbound TLS handshakes run in their own goroutines, not in Accept, so one
// slow or hostile client cannot stall the listener; only authenticated
// connections reach Raft. Every connection is tracked and closed by Close:
// hashicorp/raft's NetworkTransport leaves inbound handler goroutines blocked
// on open connections otherwise.
type streamLayer struct {
	ln        net.Listener
	advertise net.Addr
	server    *tls.Config // nil: plain TCP
	client    *tls.Config
	timeout   time.Duration // handshake bound
	log       *slog.Logger

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	conns  chan net.Conn
	wg     sync.WaitGroup // accept loop and handshakes

	mu     sync.Mutex
	live   map[*trackedConn]struct{}
	closed bool
	warned map[string]time.Time // rejection logging: last warning per peer
}

var _ raft.StreamLayer = (*streamLayer)(nil)

// advertiseAddr is the address other agents dial, kept as a string so a host
// name is not resolved at start.
type advertiseAddr string

func (a advertiseAddr) Network() string { return "tcp" }
func (a advertiseAddr) String() string  { return string(a) }

// tlsPair holds the server and client sides of a mutual TLS setup.
type tlsPair struct {
	server, client *tls.Config
}

// loadTLS reads the PEM files of a TLSConfig. Errors name the field.
func loadTLS(t TLSConfig) (*tlsPair, error) {
	caPEM, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, &ConfigError{Field: "TLS.CAFile", Reason: err.Error()}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, &ConfigError{Field: "TLS.CAFile", Reason: fmt.Sprintf("%s holds no PEM certificate", t.CAFile)}
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, &ConfigError{Field: "TLS.CertFile", Reason: fmt.Sprintf("load %s with key %s: %v", t.CertFile, t.KeyFile, err)}
	}
	return &tlsPair{
		server: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			Certificates: []tls.Certificate{cert},
			ClientCAs:    pool,
			ClientAuth:   tls.RequireAndVerifyClientCert,
		},
		client: &tls.Config{
			MinVersion: tls.VersionTLS13,
			// Always present our certificate, even when the server's list of
			// acceptable CAs does not include its issuer (Go would then send
			// none): the server then logs the real reason, "signed by
			// unknown authority", not a bare "certificate required".
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
			RootCAs:              pool,
			ServerName:           t.ServerName,
		},
	}, nil
}

// newStreamLayer listens on bind and advertises advertise. With pair nil the
// layer is plain TCP.
func newStreamLayer(bind, advertise string, pair *tlsPair, timeout time.Duration, log *slog.Logger) (*streamLayer, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("listen for raft on %s: %w", bind, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &streamLayer{
		ln:        ln,
		advertise: advertiseAddr(advertise),
		timeout:   timeout,
		log:       log,
		ctx:       ctx,
		cancel:    cancel,
		conns:     make(chan net.Conn),
		live:      make(map[*trackedConn]struct{}),
		warned:    make(map[string]time.Time),
	}
	if pair != nil {
		s.server, s.client = pair.server, pair.client
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// Accept implements net.Listener: it returns the next authenticated
// connection.
func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Addr implements net.Listener: the advertised address, which Raft hands to
// its peers.
func (s *streamLayer) Addr() net.Addr { return s.advertise }

// Close implements net.Listener: it stops accepting, closes every open
// connection and waits for its goroutines. Safe to call twice.
func (s *streamLayer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	live := s.live
	s.live = nil
	s.mu.Unlock()

	s.cancel()
	err := s.ln.Close()
	for c := range live {
		_ = c.Conn.Close()
	}
	s.wg.Wait()
	return err
}

// Dial implements raft.StreamLayer.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, err
	}
	if s.client == nil {
		return s.track(c)
	}
	cfg := s.client.Clone()
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(string(address))
		if err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("raft peer address %q: %w", address, err)
		}
		cfg.ServerName = host
	}
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		s.rejected("outbound", string(address), err)
		return nil, fmt.Errorf("tls handshake with raft peer %s: %w", address, err)
	}
	return s.track(tc)
}

func (s *streamLayer) acceptLoop() {
	defer s.wg.Done()
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Transient (e.g. out of file descriptors): back off.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("raft listener accept failed", logKeyErr, err)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(delay):
			}
			continue
		}
		delay = 0
		if s.server == nil {
			s.handOver(c)
			continue
		}
		s.wg.Add(1)
		go s.handshake(c)
	}
}

func (s *streamLayer) handshake(c net.Conn) {
	defer s.wg.Done()
	tc := tls.Server(c, s.server)
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		_ = c.Close()
		s.rejected("inbound", c.RemoteAddr().String(), err)
		return
	}
	s.handOver(tc)
}

// handOver passes an accepted connection to Accept, or closes it if the layer
// closes first.
func (s *streamLayer) handOver(c net.Conn) {
	tc, err := s.track(c)
	if err != nil {
		return
	}
	select {
	case s.conns <- tc:
	case <-s.ctx.Done():
		_ = tc.Close()
	}
}

func (s *streamLayer) track(c net.Conn) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, s: s}
	s.live[tc] = struct{}{}
	return tc, nil
}

// rejected logs a failed handshake: a warning the first time for a peer in a
// minute (it is what an operator must see when a certificate is wrong), debug
// after that so a retrying peer does not flood the log.
func (s *streamLayer) rejected(direction, peer string, err error) {
	host := peer
	if h, _, e := net.SplitHostPort(peer); e == nil {
		host = h
	}
	key := direction + " " + host
	now := time.Now()
	s.mu.Lock()
	last, seen := s.warned[key]
	loud := !seen || now.Sub(last) > time.Minute
	if loud {
		if len(s.warned) > 1024 { // many distinct peers (a scan): start over
			clear(s.warned)
		}
		s.warned[key] = now
	}
	s.mu.Unlock()
	level := slog.LevelWarn
	if !loud || errors.Is(err, io.EOF) { // EOF: a bare TCP connect, e.g. a port check
		level = slog.LevelDebug
	}
	s.log.Log(context.Background(), level, "raft peer rejected: tls handshake failed",
		logKeyDirection, direction, logKeyRemote, peer, logKeyErr, err)
}

// trackedConn removes itself from the live set when closed.
type trackedConn struct {
	net.Conn
	s *streamLayer
}

func (c *trackedConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.live, c)
	c.s.mu.Unlock()
	return c.Conn.Close()
}
