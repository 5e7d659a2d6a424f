package apiserver

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"
)

// connLimiter is a net.Listener that admits at most max connections, plus
// reserve more for the health endpoints (Limits). http.Server tells it
// (ConnState) which connections are serving a request; the others may be
// closed to make room for a new one, the one that has waited longest
// first. A connection that finds no room is closed at once: it costs the
// agent an accept, never a file descriptor held.
type connLimiter struct {
	net.Listener
	max, reserve   int
	reserveTimeout time.Duration
	now            func() time.Time
	// onShed, when set, is called (outside the lock) after a connection
	// was evicted or refused.
	onShed func()

	mu       sync.Mutex
	conns    map[*limitedConn]struct{}
	general  int // connections in the main pool
	reserved int // connections on the health reserve
	evicted  uint64
	refused  uint64
}

func newConnLimiter(ln net.Listener, max, reserve int, reserveTimeout time.Duration) *connLimiter {
	return &connLimiter{Listener: ln, max: max, reserve: reserve, reserveTimeout: reserveTimeout, now: time.Now,
		conns: map[*limitedConn]struct{}{}}
}

// limitedConn is an admitted connection. Its fields other than Conn, l,
// reserve and deadline are guarded by l.mu.
type limitedConn struct {
	net.Conn
	l *connLimiter
	// reserve: admitted on the health reserve; deadline is then the latest
	// any read or write may end.
	reserve  bool
	deadline time.Time

	busy     bool      // serving a request (StateActive, or hijacked)
	since    time.Time // when it was admitted or last became idle
	released bool      // its slot is given back
}

// Accept returns the next connection there is room for.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if lc := l.admit(c); lc != nil {
			return lc, nil
		}
		_ = c.Close()
	}
}

// admit finds c a slot: a free one in the main pool, or the one of the main
// pool's connection that has waited longest without a request, or a free
// or waiting one on the reserve. nil when every connection is busy.
func (l *connLimiter) admit(c net.Conn) *limitedConn {
	l.mu.Lock()
	now := l.now()
	lc := &limitedConn{Conn: c, l: l, since: now}
	var victim *limitedConn
	if l.general >= l.max {
		if victim = l.oldestWaiting(false); victim == nil {
			lc.reserve = true
			if l.reserved >= l.reserve {
				if victim = l.oldestWaiting(true); victim == nil {
					l.refused++
					l.mu.Unlock()
					l.notify()
					return nil
				}
			}
		}
	}
	if victim != nil {
		l.releaseLocked(victim)
		l.evicted++
	}
	if lc.reserve {
		l.reserved++
		lc.deadline = now.Add(l.reserveTimeout)
	} else {
		l.general++
	}
	l.conns[lc] = struct{}{}
	l.mu.Unlock()
	if victim != nil {
		_ = victim.Conn.Close()
		l.notify()
	}
	if lc.reserve {
		_ = c.SetDeadline(lc.deadline)
	}
	return lc
}

func (l *connLimiter) notify() {
	if l.onShed != nil {
		l.onShed()
	}
}

// oldestWaiting returns the connection of a pool that has waited longest
// without a request in progress; nil when all are busy.
func (l *connLimiter) oldestWaiting(reserve bool) *limitedConn {
	var oldest *limitedConn
	for c := range l.conns {
		if c.reserve == reserve && !c.busy && (oldest == nil || c.since.Before(oldest.since)) {
			oldest = c
		}
	}
	return oldest
}

func (l *connLimiter) releaseLocked(c *limitedConn) {
	if c.released {
		return
	}
	c.released = true
	delete(l.conns, c)
	if c.reserve {
		l.reserved--
	} else {
		l.general--
	}
}

// setState is http.Server.ConnState: it learns which connections serve a
// request.
func (l *connLimiter) setState(nc net.Conn, st http.ConnState) {
	c := asLimited(nc)
	if c == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch st {
	case http.StateActive, http.StateHijacked:
		c.busy = true
	case http.StateIdle:
		c.busy, c.since = false, l.now()
	case http.StateClosed:
		l.releaseLocked(c)
	}
}

// counts returns the connections held in each pool and how many were
// evicted and refused so far.
func (l *connLimiter) counts() (general, reserved int, evicted, refused uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.general, l.reserved, l.evicted, l.refused
}

// asLimited finds the limitedConn under a connection http.Server hands
// out: itself, or the transport of a *tls.Conn.
func asLimited(c net.Conn) *limitedConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	lc, _ := c.(*limitedConn)
	return lc
}

// Close gives the slot back and closes the connection.
func (c *limitedConn) Close() error {
	c.l.mu.Lock()
	c.l.releaseLocked(c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// A connection on the reserve never gets a deadline later than its own:
// http.Server sets (and clears) deadlines as it goes.
func (c *limitedConn) clamp(t time.Time) time.Time {
	if c.reserve && (t.IsZero() || t.After(c.deadline)) {
		return c.deadline
	}
	return t
}

func (c *limitedConn) SetDeadline(t time.Time) error { return c.Conn.SetDeadline(c.clamp(t)) }

func (c *limitedConn) SetReadDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(c.clamp(t))
}

func (c *limitedConn) SetWriteDeadline(t time.Time) error {
	return c.Conn.SetWriteDeadline(c.clamp(t))
}
