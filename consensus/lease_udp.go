package consensus

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"time"
)

// The lease channel's pings also travel as datagrams (lease.go). Over TCP,
// every lost segment still stalls its connection for a retransmission
// timeout, and with 20% loss and a few hundred milliseconds of jitter all
// three connections are stalled at once often enough to cost a lease. A
// datagram that is lost is just lost: the next one, an interval later, does
// not wait for it.
//
// Datagrams carry no identity of their own. Each TCP lease connection's TLS
// session exports a session id and a key (RFC 5705 keying material, so both
// ends derive the same ones and nobody else can); a datagram names the
// session and carries an HMAC-SHA256 (truncated to 16 bytes) under its
// key. The leader takes a ping only for a session whose TCP connection is
// open, only with a valid MAC, and only once (a window of recent sequence
// numbers refuses replays); the follower takes a pong only with a valid
// MAC and only for a ping it sent and has not had answered. The datagrams
// go to the Raft port's number over UDP; where UDP is filtered the TCP
// connections carry on alone.

const (
	udpPing   byte = 'P'
	udpPong   byte = 'Q'
	macSize        = 16
	udpPingSz      = 1 + 8 + pingSize + macSize
	udpPongSz      = 1 + 8 + pongSize + macSize
	// replayWindow is how far below the highest sequence number seen a
	// datagram may still be taken (jitter reorders them).
	replayWindow = 256
	// exporterLabel names the keying material (RFC 5705).
	exporterLabel = "EXPORTER-regent-lease-datagrams"
)

// leaseSession is what a lease connection's TLS session exports for its
// datagrams.
type leaseSession struct {
	id  uint64
	key []byte
}

// sessionOf derives the datagram session of a TLS lease connection.
func sessionOf(c net.Conn) (leaseSession, bool) {
	for {
		switch x := c.(type) {
		case *trackedConn:
			c = x.Conn
		case *prefixedConn:
			c = x.Conn
		case *tls.Conn:
			cs := x.ConnectionState()
			m, err := cs.ExportKeyingMaterial(exporterLabel, nil, 8+32)
			if err != nil {
				return leaseSession{}, false
			}
			return leaseSession{id: binary.BigEndian.Uint64(m[:8]), key: m[8:]}, true
		default:
			return leaseSession{}, false
		}
	}
}

func (s leaseSession) mac(b []byte) []byte {
	h := hmac.New(sha256.New, s.key)
	h.Write(b)
	return h.Sum(nil)[:macSize]
}

// seal frames a ping or pong body as a datagram of this session.
func (s leaseSession) seal(kind byte, body []byte) []byte {
	b := make([]byte, 0, 1+8+len(body)+macSize)
	b = append(b, kind)
	b = binary.BigEndian.AppendUint64(b, s.id)
	b = append(b, body...)
	return append(b, s.mac(b)...)
}

// open checks a datagram of this session and returns its body.
func (s leaseSession) open(kind byte, d []byte, bodySize int) ([]byte, error) {
	if len(d) != 1+8+bodySize+macSize || d[0] != kind {
		return nil, errors.New("not a lease datagram of this kind")
	}
	if binary.BigEndian.Uint64(d[1:9]) != s.id {
		return nil, errors.New("another session's datagram")
	}
	n := len(d) - macSize
	if !hmac.Equal(d[n:], s.mac(d[:n])) {
		return nil, errors.New("bad MAC")
	}
	return d[9:n], nil
}

// seqWindow refuses sequence numbers seen before or too old.
type seqWindow struct {
	max  uint64
	seen map[uint64]bool
}

func (w *seqWindow) fresh(seq uint64) bool {
	if w.seen == nil {
		w.seen = map[uint64]bool{}
	}
	if seq+replayWindow <= w.max || w.seen[seq] {
		return false
	}
	w.seen[seq] = true
	if seq > w.max {
		w.max = seq
		for s := range w.seen {
			if s+replayWindow <= w.max {
				delete(w.seen, s)
			}
		}
	}
	return true
}

// leaseUDP answers ping datagrams for the sessions of open lease
// connections (every node listens; only a leader's pongs prove anything).
type leaseUDP struct {
	pc     net.PacketConn
	server *leaseServer

	mu       sync.Mutex
	sessions map[uint64]*udpSession
}

type udpSession struct {
	leaseSession
	peer   string
	window seqWindow
}

func listenLeaseUDP(addr string, server *leaseServer) (*leaseUDP, error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, err
	}
	return &leaseUDP{pc: pc, server: server, sessions: map[uint64]*udpSession{}}, nil
}

// register opens a session's datagrams while its connection lasts; the
// returned func closes them.
func (u *leaseUDP) register(s leaseSession, peer string) func() {
	u.mu.Lock()
	u.sessions[s.id] = &udpSession{leaseSession: s, peer: peer}
	u.mu.Unlock()
	return func() {
		u.mu.Lock()
		delete(u.sessions, s.id)
		u.mu.Unlock()
	}
}

// serve answers datagrams until the socket is closed.
func (u *leaseUDP) serve() {
	buf := make([]byte, 512)
	for {
		n, from, err := u.pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if reply := u.handle(buf[:n], time.Now()); reply != nil {
			_, _ = u.pc.WriteTo(reply, from)
		}
	}
}

// handle answers one datagram; nil when it is not to be answered.
func (u *leaseUDP) handle(d []byte, now time.Time) []byte {
	if len(d) != udpPingSz || d[0] != udpPing {
		return nil
	}
	u.mu.Lock()
	s, ok := u.sessions[binary.BigEndian.Uint64(d[1:9])]
	u.mu.Unlock()
	if !ok {
		return nil
	}
	body, err := s.open(udpPing, d, pingSize)
	if err != nil {
		return nil
	}
	p := decodePing(body)
	u.mu.Lock()
	fresh := s.window.fresh(p.seq)
	u.mu.Unlock()
	if !fresh {
		return nil
	}
	return s.seal(udpPong, u.server.answer(s.peer, p, now).encode())
}

func (u *leaseUDP) close() error { return u.pc.Close() }

// udpPings sends this session's pings to the leader at addr as datagrams
// every interval and takes their pongs, until done is closed.
func (l *leaseClient) udpPings(done <-chan struct{}, addr string, s leaseSession) {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return
	}
	// Not connected: a leader bound to a wildcard address may answer from
	// another of its addresses; the MAC says who answered.
	pc, err := net.ListenPacket("udp", ":0")
	if err != nil {
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer pc.Close()
	var mu sync.Mutex
	type outstanding struct {
		sent time.Time
		term uint64
	}
	pending := map[uint64]outstanding{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 512)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			body, err := s.open(udpPong, buf[:n], pongSize)
			if err != nil {
				continue
			}
			r := decodePong(body)
			mu.Lock()
			o, ok := pending[r.seq]
			delete(pending, r.seq)
			mu.Unlock()
			if ok {
				l.received(o.sent, o.term, l.state.appliedIndex(), r)
			}
		}
	}()
	for {
		term, _ := l.state.leading()
		p := ping{seq: l.seq.Add(1), term: term, echo: l.echo.Load(), applied: l.state.appliedIndex(), vitals: l.state.vitals()}
		now := time.Now()
		mu.Lock()
		pending[p.seq] = outstanding{sent: now, term: term}
		for seq, o := range pending {
			if now.Sub(o.sent) > l.timeout {
				delete(pending, seq)
			}
		}
		mu.Unlock()
		_, _ = pc.WriteTo(s.seal(udpPing, p.encode()), raddr)
		if !sleepOrStop(done, l.interval) {
			return
		}
	}
}
