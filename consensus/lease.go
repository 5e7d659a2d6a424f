package consensus

import (
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// The lease channel keeps the lease clock (doc.go) fresh over a lossy link.
//
// Raft's own contact comes from one heartbeat at a time over one TCP
// connection per peer: a lost segment holds everything behind it for a
// retransmission timeout, which jitter inflates and repeated losses double,
// so 20% loss on a primary's link stalls contact for seconds at a time and
// the agent fences a primary that is alive. Over the lease channel every
// follower sends small pings to the leader on leaseConns connections of
// their own, each every leaseInterval: a loss stalls one connection while the
// others go on, so contact survives unless the link is really cut.
//
// A ping carries the follower's current term and applied index and echoes
// the nonce of the last pong it received. The leader answers only while it
// leads, with its term, its commit index, a fresh nonce, and how long ago a
// quorum last acknowledged its leadership (the age of its quorum contact, a
// duration, so no clocks are compared). The follower takes the ping's send
// time minus that age as a quorum contact (the leader had a quorum at that
// moment at the latest), but only once it has applied everything the
// leader had committed: a lease is the right to act on the replicated
// state, and a follower that misses committed entries (an operation that
// replaces its instance) must not keep it by pings alone. A leader that
// lost its quorum answers with an ever older age, so its pongs keep no
// follower's lease alive. The leader, in turn, counts a ping whose term is
// its own, whose echoed nonce it sent to that peer, and whose applied index
// reaches the commit index it sent with that nonce, as the peer's
// acknowledgement of its leadership dated when that nonce was sent (the
// follower held this term and leader, and this state, after it received
// it): the same meaning as an answered AppendEntries, so it feeds the same
// tracker, and the leader's quorum contact and PeerContacts survive loss
// too. Both sides count a lagging follower by Raft alone, as before.
//
// The channel runs on the Raft port, inside the same mutual TLS and member
// checks (a connection whose first byte is leaseMagic goes to serveLease
// instead of Raft), so only members can ping or answer. Without TLS there
// is no channel (a ping's sender could not be told). An agent that does not
// know the channel closes such a connection; its peers then count on Raft
// alone, as before.

const (
	// leaseMagic is the first byte of a lease connection; Raft's RPC types
	// are 0 to 4.
	leaseMagic byte = 'L'
	// leaseConns is how many connections each follower pings over.
	leaseConns = 3
	// pingSize and pongSize are the frames' lengths.
	pingSize = 32 + VitalsSize // seq, term, echo, applied, vitals
	pongSize = 40              // seq, term, nonce, age (ns; negative: not leading), commit
	// noncesKept bounds how many pong nonces the leader remembers per peer.
	noncesKept = 64
)

type ping struct {
	seq, term, echo uint64
	applied         uint64 // the follower's applied index
	vitals          Vitals // the follower's own news (SetVitals)
}

// VitalsSize is the length of the news a node attaches to its pings.
const VitalsSize = 16

// Vitals is what a node's user attaches to its lease pings (SetVitals) and
// the leader reads back per peer (PeerVitals): a few bytes of news that
// must reach the leader through whatever loss Raft's and the API's streams
// stall on. This package does not interpret them.
type Vitals [VitalsSize]byte

// PeerVitals is a peer's latest Vitals and when the leader received them.
type PeerVitals struct {
	Vitals
	At time.Time
}

type pong struct {
	seq, term, nonce uint64
	age              time.Duration // < 0: not the leader, or no quorum contact yet
	commit           uint64        // the leader's commit index
}

func (p ping) encode() []byte {
	b := make([]byte, pingSize)
	binary.BigEndian.PutUint64(b[0:], p.seq)
	binary.BigEndian.PutUint64(b[8:], p.term)
	binary.BigEndian.PutUint64(b[16:], p.echo)
	binary.BigEndian.PutUint64(b[24:], p.applied)
	copy(b[32:], p.vitals[:])
	return b
}

func decodePing(b []byte) ping {
	p := ping{seq: binary.BigEndian.Uint64(b[0:]), term: binary.BigEndian.Uint64(b[8:]), echo: binary.BigEndian.Uint64(b[16:]),
		applied: binary.BigEndian.Uint64(b[24:])}
	copy(p.vitals[:], b[32:])
	return p
}

func (p pong) encode() []byte {
	b := make([]byte, pongSize)
	binary.BigEndian.PutUint64(b[0:], p.seq)
	binary.BigEndian.PutUint64(b[8:], p.term)
	binary.BigEndian.PutUint64(b[16:], p.nonce)
	binary.BigEndian.PutUint64(b[24:], uint64(p.age))
	binary.BigEndian.PutUint64(b[32:], p.commit)
	return b
}

func decodePong(b []byte) pong {
	return pong{seq: binary.BigEndian.Uint64(b[0:]), term: binary.BigEndian.Uint64(b[8:]), nonce: binary.BigEndian.Uint64(b[16:]),
		age: time.Duration(int64(binary.BigEndian.Uint64(b[24:]))), commit: binary.BigEndian.Uint64(b[32:])}
}

// leaseState is what the channel needs of the node; the node implements it,
// the tests fake it.
type leaseState interface {
	// leading returns the current term and whether this node leads in it.
	leading() (term uint64, leader bool)
	// quorumAge is how long ago a quorum last acknowledged this node's
	// leadership; negative when none did.
	quorumAge(now time.Time) time.Duration
	// leaderAddr is the current leader's Raft address and id ("" when none
	// is known or this node leads).
	leaderAddr() (addr, id string)
	// commitIndex is Raft's commit index; appliedIndex the index of the
	// last command applied to the replicated state here.
	commitIndex() uint64
	appliedIndex() uint64
	// vitals is this node's news for its pings.
	vitals() Vitals
}

// leaseServer answers pings on the leader side.
type leaseServer struct {
	state    leaseState
	contacts *contactTracker
	udp      *leaseUDP // nil: no datagrams (lease_udp.go)

	mu     sync.Mutex
	nonces map[string]*nonceRing // per peer: the pong nonces sent to it
	next   uint64
	news   map[string]PeerVitals // per peer: its latest vitals
	// newsSeq is the sequence number of the ping news came with.
	newsSeq map[string]uint64
}

// nonceRing remembers the last noncesKept nonces sent to one peer, with
// when, in which term and at which commit index.
type nonceRing struct {
	nonce  [noncesKept]uint64
	term   [noncesKept]uint64
	commit [noncesKept]uint64
	at     [noncesKept]time.Time
	i      int
}

func (r *nonceRing) add(n, term, commit uint64, at time.Time) {
	r.nonce[r.i], r.term[r.i], r.commit[r.i], r.at[r.i] = n, term, commit, at
	r.i = (r.i + 1) % noncesKept
}

// sent returns when nonce n was sent in term, and the commit index sent
// with it, if it was.
func (r *nonceRing) sent(n, term uint64) (time.Time, uint64, bool) {
	for i, v := range r.nonce {
		if v == n && r.term[i] == term && !r.at[i].IsZero() {
			return r.at[i], r.commit[i], true
		}
	}
	return time.Time{}, 0, false
}

func newLeaseServer(state leaseState, contacts *contactTracker) *leaseServer {
	return &leaseServer{state: state, contacts: contacts, nonces: map[string]*nonceRing{}, next: rand.Uint64() | 1,
		news: map[string]PeerVitals{}, newsSeq: map[string]uint64{}}
}

// serve answers the pings of one connection from peer until it breaks.
func (l *leaseServer) serve(c net.Conn, peer string) {
	if peer == "" {
		return // no identity: no channel (plain TCP)
	}
	if l.udp != nil {
		if sess, ok := sessionOf(c); ok {
			defer l.udp.register(sess, peer)()
		}
	}
	buf := make([]byte, pingSize)
	for {
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		if _, err := c.Write(l.answer(peer, decodePing(buf), time.Now()).encode()); err != nil {
			return
		}
	}
}

// answer records what a ping proves and builds the pong.
func (l *leaseServer) answer(peer string, p ping, now time.Time) pong {
	term, leader := l.state.leading()
	out := pong{seq: p.seq, term: term, age: -1}
	l.mu.Lock()
	ring := l.nonces[peer]
	if ring == nil {
		ring = &nonceRing{}
		l.nonces[peer] = ring
	}
	// The newest ping's news only: datagrams and connections reorder them.
	if v := l.news[peer]; p.seq > l.newsSeq[peer] || v.At.IsZero() {
		l.news[peer] = PeerVitals{Vitals: p.vitals, At: now}
		l.newsSeq[peer] = p.seq
	}
	var sent time.Time
	var commit uint64
	echoed := false
	if p.echo != 0 {
		sent, commit, echoed = ring.sent(p.echo, term)
	}
	if leader {
		l.next++
		if l.next == 0 {
			l.next = 1 // 0 means "no nonce" in a ping
		}
		out.nonce, out.commit = l.next, l.state.commitIndex()
		ring.add(out.nonce, term, out.commit, now)
		out.age = l.state.quorumAge(now)
	}
	l.mu.Unlock()
	// A ping counts only from a peer that holds this term, echoes a nonce
	// sent to it, and has applied what was committed when it was sent.
	if leader && echoed && p.term == term && p.applied >= commit {
		l.contacts.answered(raft.ServerID(peer), sent, term, p.term, true)
	}
	return out
}

// peerVitals returns every peer's latest vitals.
func (l *leaseServer) peerVitals() map[string]PeerVitals {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]PeerVitals, len(l.news))
	for k, v := range l.news {
		out[k] = v
	}
	return out
}

// leaseClient pings the leader on the follower side.
type leaseClient struct {
	state    leaseState
	dial     func(addr string, timeout time.Duration) (net.Conn, error)
	interval time.Duration
	timeout  time.Duration // a pong later than this recycles the connection
	// datagrams: each connection's session also pings as datagrams.
	datagrams bool

	seq     atomic.Uint64
	echo    atomic.Uint64
	mu      sync.Mutex
	contact time.Time // the latest quorum contact the pongs prove
	last    string    // the last leader address Raft named
}

// target is the leader to ping: Raft's current one, or the last one Raft
// knew. A follower that misses heartbeats forgets its leader while it asks
// for a pre-vote, which is exactly when its lease needs the channel; the
// pongs of a leader that lost its quorum, or of an older term, prove
// nothing, so pinging it stays safe.
func (l *leaseClient) target() string {
	addr, _ := l.state.leaderAddr()
	l.mu.Lock()
	defer l.mu.Unlock()
	if addr != "" {
		l.last = addr
	}
	return l.last
}

// latest returns the latest quorum contact proven by a pong (zero: none).
func (l *leaseClient) latest() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.contact
}

// received takes a pong to a ping sent at sent in term, with applied the
// index applied here when it arrived.
func (l *leaseClient) received(sent time.Time, term, applied uint64, p pong) {
	if p.age < 0 || p.term < term {
		return // not leading, or a leader of an older term
	}
	l.echo.Store(p.nonce)
	if applied < p.commit {
		return // entries committed that this node has not applied yet
	}
	at := sent.Add(-p.age)
	l.mu.Lock()
	if at.After(l.contact) {
		l.contact = at
	}
	l.mu.Unlock()
}

// run keeps leaseConns connections to the current leader, each pinging
// every interval, until stop is closed.
func (l *leaseClient) run(stop <-chan struct{}) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := range leaseConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the connections' pings over the interval.
			if !sleepOrStop(stop, time.Duration(i)*l.interval/leaseConns) {
				return
			}
			for {
				if addr := l.target(); addr != "" {
					l.pingLoop(stop, addr)
				}
				if !sleepOrStop(stop, l.interval) {
					return
				}
			}
		}()
	}
}

// pingLoop pings the leader at addr over one connection until it breaks,
// the leader changes or stop is closed.
func (l *leaseClient) pingLoop(stop <-chan struct{}, addr string) {
	c, err := l.dial(addr, l.timeout)
	if err != nil {
		return
	}
	done := make(chan struct{})
	ended := make(chan struct{}) // the connection is closed
	defer func() { close(done); <-ended }()
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() {
		defer close(ended)
		select {
		case <-stop:
		case <-done:
		}
		_ = c.Close()
	}()
	if l.datagrams {
		if sess, ok := sessionOf(c); ok {
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.udpPings(ended, addr, sess)
			}()
		}
	}
	buf := make([]byte, pongSize)
	for {
		if l.target() != addr {
			return
		}
		term, _ := l.state.leading()
		p := ping{seq: l.seq.Add(1), term: term, echo: l.echo.Load(), applied: l.state.appliedIndex(), vitals: l.state.vitals()}
		sent := time.Now()
		_ = c.SetDeadline(sent.Add(l.timeout))
		if _, err := c.Write(p.encode()); err != nil {
			return
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		r := decodePong(buf)
		if r.seq != p.seq {
			return
		}
		l.received(sent, term, l.state.appliedIndex(), r)
		if !sleepOrStop(stop, l.interval-time.Since(sent)) {
			return
		}
	}
}

func sleepOrStop(stop <-chan struct{}, d time.Duration) bool {
	if d <= 0 {
		select {
		case <-stop:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-stop:
		return false
	case <-t.C:
		return true
	}
}
