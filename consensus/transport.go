package consensus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/regentdb/regent/identity"
)

// streamLayer is a raft.StreamLayer over TCP, with mutual TLS when configured.
//
// Inbound TLS handshakes run in their own goroutines, not in Accept, so one
// slow or hostile client cannot stall the listener; only authenticated
// connections reach Raft. Every connection is tracked and closed by Close:
// hashicorp/raft's NetworkTransport leaves inbound handler goroutines blocked
// on open connections otherwise.
//
// With TLS, a peer is a member, not merely a holder of a certificate from
// the CA: its certificate must name (URI SAN urn:regent:agent:ID) a server
// of the current Raft configuration on accept, and on dial the very server
// configured at the address dialled. Anything else is refused before Raft
// sees a byte, and logged with what the peer presented.
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

	// members returns the servers (id → Raft address) whose certificates
	// are accepted; set once by setMembers, which closes ready. Until then
	// handshakes wait (Raft itself is not running yet).
	members atomic.Pointer[func() map[string]string]
	ready   chan struct{}

	// lease serves the connections that open with leaseMagic (lease.go)
	// instead of handing them to Raft; nil: there is no such channel.
	lease func(c net.Conn, peer string)
	// raftInBlocked refuses Raft connections, both ways, while the lease
	// channel stays open (tests: Raft's streams stalled by loss).
	raftInBlocked atomic.Bool

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

// loadTLS reads the PEM files of a TLSConfig and checks that the
// certificate is this node's (URI SAN urn:regent:agent:NodeID, serverAuth
// and clientAuth). Errors name the field.
func loadTLS(t TLSConfig, nodeID string) (*tlsPair, error) {
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
	if err := identity.CheckAgentCert(cert.Leaf, nodeID); err != nil {
		return nil, &ConfigError{Field: "TLS.CertFile", Reason: fmt.Sprintf("%s: %v", t.CertFile, err)}
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
		ready:     make(chan struct{}),
	}
	if pair != nil {
		s.server, s.client = pair.server.Clone(), pair.client
		s.server.VerifyConnection = s.verifyInbound
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// setMembers sets the source of the accepted servers (id → Raft address)
// and lets waiting handshakes proceed. Later calls are ignored.
func (s *streamLayer) setMembers(f func() map[string]string) {
	if s.members.CompareAndSwap(nil, &f) {
		close(s.ready)
	}
}

// waitMembers waits until setMembers was called, or ctx ends.
func (s *streamLayer) waitMembers(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *streamLayer) memberSet() map[string]string {
	if f := s.members.Load(); f != nil {
		return (*f)()
	}
	return nil
}

// verifyInbound accepts a client whose verified certificate names a member.
func (s *streamLayer) verifyInbound(cs tls.ConnectionState) error {
	leaf := cs.PeerCertificates[0]
	id, err := identity.Agent(leaf)
	if err != nil {
		return &identity.PeerError{Presented: identity.Describe(leaf), Reason: "the certificate names no agent: " + err.Error()}
	}
	members := s.memberSet()
	if _, ok := members[id]; !ok {
		return &identity.PeerError{Presented: identity.Describe(leaf), Reason: fmt.Sprintf(
			"agent %s is not a member of this Raft group (members: %s)", id, strings.Join(slices.Sorted(maps.Keys(members)), ", "))}
	}
	return nil
}

// expectedAt returns the member configured at a Raft address.
func (s *streamLayer) expectedAt(address string) (string, bool) {
	for id, addr := range s.memberSet() {
		if addr == address {
			return id, true
		}
	}
	return "", false
}

// dropNonMembers closes the connections of peers no longer members (a
// member removed keeps no open channel into Raft).
func (s *streamLayer) dropNonMembers(members map[string]string) {
	s.mu.Lock()
	var drop []*trackedConn
	for c := range s.live {
		if _, ok := members[c.peer]; c.peer != "" && !ok {
			drop = append(drop, c)
		}
	}
	s.mu.Unlock()
	for _, c := range drop {
		s.log.Info("closing a raft connection of a removed member", logKeyPeer, c.peer, logKeyRemote, c.RemoteAddr().String())
		_ = c.Close()
	}
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
	if s.raftInBlocked.Load() {
		return nil, errors.New("raft connections blocked (test)")
	}
	return s.dial(address, timeout)
}

func (s *streamLayer) dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, err
	}
	if s.client == nil {
		return s.track(c, "")
	}
	if err := s.waitMembers(ctx); err != nil {
		_ = c.Close()
		return nil, err
	}
	want, ok := s.expectedAt(string(address))
	if !ok {
		_ = c.Close()
		err := fmt.Errorf("no member of the Raft configuration is at %s", address)
		s.rejected("outbound", string(address), err)
		return nil, err
	}
	cfg := s.client.Clone()
	cfg.VerifyConnection = identity.RequireAgent(want)
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
	return s.track(tc, want)
}

// dialLease opens a lease connection to the member at address: the same
// mutual TLS and identity checks as Raft's, then leaseMagic.
func (s *streamLayer) dialLease(address string, timeout time.Duration) (net.Conn, error) {
	c, err := s.dial(raft.ServerAddress(address), timeout)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*trackedConn); ok {
		s.mu.Lock()
		tc.lease = true
		s.mu.Unlock()
	}
	_ = c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{leaseMagic}); err != nil {
		_ = c.Close()
		return nil, err
	}
	_ = c.SetWriteDeadline(time.Time{})
	return c, nil
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
			s.handOver(c, "")
			continue
		}
		s.wg.Add(1)
		go s.handshake(c)
	}
}

func (s *streamLayer) handshake(c net.Conn) {
	defer s.wg.Done()
	if err := s.waitMembers(s.ctx); err != nil {
		_ = c.Close()
		return
	}
	tc := tls.Server(c, s.server)
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		_ = c.Close()
		s.rejected("inbound", c.RemoteAddr().String(), err)
		return
	}
	// verifyInbound passed: the certificate names a member.
	id, _ := identity.Agent(tc.ConnectionState().PeerCertificates[0])
	if s.lease == nil {
		s.handOver(tc, id)
		return
	}
	// The first byte says what the connection is for: a Raft RPC type, or
	// leaseMagic. A dialler sends it at once (Raft dials only to send).
	var first [1]byte
	_ = tc.SetReadDeadline(time.Now().Add(s.timeout))
	if _, err := io.ReadFull(tc, first[:]); err != nil {
		_ = tc.Close()
		return
	}
	_ = tc.SetReadDeadline(time.Time{})
	if first[0] == leaseMagic {
		lc, err := s.trackAs(tc, id, true)
		if err != nil {
			return
		}
		defer lc.Close()
		s.lease(lc, id)
		return
	}
	if s.raftInBlocked.Load() {
		_ = tc.Close()
		return
	}
	s.handOver(&prefixedConn{Conn: tc, first: first[0], pending: true}, id)
}

// prefixedConn gives back the byte the stream layer read to tell a lease
// connection from Raft's, before the rest of the stream.
type prefixedConn struct {
	net.Conn
	first   byte
	pending bool
}

func (c *prefixedConn) Read(b []byte) (int, error) {
	if c.pending && len(b) > 0 {
		b[0], c.pending = c.first, false
		return 1, nil
	}
	return c.Conn.Read(b)
}

// handOver passes an accepted connection from peer (its agent id, "" in
// plain TCP) to Accept, or closes it if the layer closes first.
func (s *streamLayer) handOver(c net.Conn, peer string) {
	tc, err := s.trackAs(c, peer, false)
	if err != nil {
		return
	}
	select {
	case s.conns <- tc:
	case <-s.ctx.Done():
		_ = tc.Close()
	}
}

func (s *streamLayer) track(c net.Conn, peer string) (net.Conn, error) {
	return s.trackAs(c, peer, false)
}

func (s *streamLayer) trackAs(c net.Conn, peer string, lease bool) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, s: s, peer: peer, lease: lease}
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
	var pe *identity.PeerError
	if errors.As(err, &pe) {
		// Each different certificate from a host is worth a warning.
		key += " " + pe.Presented
	}
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
	if pe != nil {
		s.log.Log(context.Background(), level, "raft peer rejected: its certificate does not name the member expected",
			logKeyDirection, direction, logKeyRemote, peer, logKeyExpected, orAnyMember(pe.Want),
			logKeyPresented, pe.Presented, logKeyErr, pe.Reason)
		return
	}
	s.log.Log(context.Background(), level, "raft peer rejected: tls handshake failed",
		logKeyDirection, direction, logKeyRemote, peer, logKeyErr, err)
}

func orAnyMember(id string) string {
	if id == "" {
		return "any member"
	}
	return id
}

// blockRaft closes the Raft connections and refuses new ones, both ways
// (on), or lets them through again (off); the lease channel is not
// touched. Tests use it to stall Raft's streams the way a lossy link does.
func (s *streamLayer) blockRaft(on bool) {
	s.raftInBlocked.Store(on)
	if !on {
		return
	}
	s.mu.Lock()
	var drop []*trackedConn
	for c := range s.live {
		if !c.lease {
			drop = append(drop, c)
		}
	}
	s.mu.Unlock()
	for _, c := range drop {
		_ = c.Close()
	}
}

// trackedConn removes itself from the live set when closed.
type trackedConn struct {
	net.Conn
	s     *streamLayer
	peer  string // the agent id its certificate names; "" in plain TCP
	lease bool   // a lease connection, not Raft's
}

func (c *trackedConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.live, c)
	c.s.mu.Unlock()
	return c.Conn.Close()
}
