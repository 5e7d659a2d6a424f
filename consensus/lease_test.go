package consensus

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

type fakeLeaseState struct {
	term            uint64
	leader          bool
	age             time.Duration
	commit, applied uint64
}

func (f *fakeLeaseState) leading() (uint64, bool)           { return f.term, f.leader }
func (f *fakeLeaseState) quorumAge(time.Time) time.Duration { return f.age }
func (f *fakeLeaseState) leaderAddr() (string, string)      { return "", "" }
func (f *fakeLeaseState) commitIndex() uint64               { return f.commit }
func (f *fakeLeaseState) appliedIndex() uint64              { return f.applied }
func (f *fakeLeaseState) vitals() Vitals                    { return Vitals{1, 2, 3} }

func TestLeaseFramesRoundTrip(t *testing.T) {
	p := ping{seq: 1<<63 + 5, term: 7, echo: 42, applied: 99}
	if got := decodePing(p.encode()); got != p {
		t.Errorf("ping %+v came back as %+v", p, got)
	}
	for _, q := range []pong{{seq: 9, term: 7, nonce: 3, age: 1500 * time.Microsecond, commit: 12}, {seq: 1, term: 2, age: -1}} {
		if got := decodePong(q.encode()); got != q {
			t.Errorf("pong %+v came back as %+v", q, got)
		}
	}
}

// The leader's side: a pong carries the age of its quorum contact only
// while it leads; a ping is heard, and is an acknowledgement of the
// leader's term dated when the echoed nonce was sent, only when the peer
// holds that term, echoes a nonce sent to it in that term, and has applied
// the commit index sent with it.
func TestLeaseServerAnswer(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)
	st := &fakeLeaseState{term: 7, leader: true, age: 30 * time.Millisecond, commit: 10}
	ct := newContactTracker()
	l := newLeaseServer(st, ct)

	first := l.answer("n2", ping{seq: 1, term: 7, applied: 10}, t0)
	if first.age != 30*time.Millisecond || first.term != 7 || first.nonce == 0 || first.seq != 1 || first.commit != 10 {
		t.Fatalf("first pong %+v", first)
	}
	if a := ct.acks["n2"]; !a.at.IsZero() || !ct.lastHeard("n2").IsZero() {
		t.Errorf("a ping echoing no nonce counted: ack %+v, heard %v", a, ct.lastHeard("n2"))
	}

	// A follower that has not applied index 10 yet is not counted.
	st.commit = 11
	lagging := l.answer("n2", ping{seq: 2, term: 7, echo: first.nonce, applied: 9}, t0.Add(20*time.Millisecond))
	if a := ct.acks["n2"]; !a.at.IsZero() || !ct.lastHeard("n2").IsZero() {
		t.Errorf("a lagging follower's ping counted: ack %+v, heard %v", a, ct.lastHeard("n2"))
	}
	second := l.answer("n2", ping{seq: 3, term: 7, echo: first.nonce, applied: 10}, t0.Add(50*time.Millisecond))
	if a := ct.acks["n2"]; !a.at.Equal(t0) || a.term != 7 || ct.lastHeard("n2").IsZero() {
		t.Errorf("echo of the first nonce: ack %+v, want at %v term 7; heard %v", a, t0, ct.lastHeard("n2"))
	}
	if second.nonce == first.nonce || second.nonce == lagging.nonce || second.commit != 11 {
		t.Errorf("second pong %+v (first %+v)", second, first)
	}
	if second.nonce == first.nonce {
		t.Errorf("the nonce did not change")
	}

	// Another peer echoing n2's nonce, and n2 with an older term: heard,
	// no acknowledgement.
	l.answer("n3", ping{seq: 1, term: 7, echo: second.nonce, applied: 11}, t0.Add(60*time.Millisecond))
	if a, ok := ct.acks["n3"]; ok {
		t.Errorf("n3 echoing n2's nonce was taken as an acknowledgement: %+v", a)
	}
	l.answer("n2", ping{seq: 4, term: 6, echo: second.nonce, applied: 11}, t0.Add(70*time.Millisecond))
	if a := ct.acks["n2"]; !a.at.Equal(t0) {
		t.Errorf("a ping of an older term moved the acknowledgement to %v", a.at)
	}

	// No longer leading: no age, no nonce, no acknowledgement.
	st.leader = false
	third := l.answer("n2", ping{seq: 5, term: 7, echo: second.nonce, applied: 11}, t0.Add(80*time.Millisecond))
	if third.age >= 0 || third.nonce != 0 {
		t.Errorf("a follower answered as a leader: %+v", third)
	}
	if a := ct.acks["n2"]; !a.at.Equal(t0) {
		t.Errorf("a follower took an acknowledgement: %v", a.at)
	}

	// Leading again in a later term: a nonce of the earlier term is no
	// acknowledgement of this one.
	st.leader, st.term = true, 8
	l.answer("n2", ping{seq: 6, term: 8, echo: second.nonce, applied: 11}, t0.Add(90*time.Millisecond))
	if a := ct.acks["n2"]; a.term == 8 {
		t.Errorf("a nonce of term 7 acknowledged term 8: %+v", a)
	}
}

// The follower's side: a pong proves a quorum contact at the ping's send
// time minus the leader's quorum age, once the follower has applied the
// leader's commit index; a pong from a non-leader or from an older term
// proves nothing; the contact never goes back.
func TestLeaseClientReceived(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)
	l := &leaseClient{}
	l.received(t0.Add(time.Second), 7, 4, pong{term: 7, nonce: 4, age: 0, commit: 5})
	if got := l.latest(); !got.IsZero() {
		t.Errorf("a follower that has not applied the leader's commit index took a contact: %v", got)
	}
	l.received(t0, 7, 5, pong{term: 7, nonce: 5, age: 40 * time.Millisecond, commit: 5})
	if got := l.latest(); !got.Equal(t0.Add(-40 * time.Millisecond)) {
		t.Errorf("contact %v, want %v", got, t0.Add(-40*time.Millisecond))
	}
	if l.echo.Load() != 5 {
		t.Errorf("echo %d, want 5", l.echo.Load())
	}
	l.received(t0.Add(time.Second), 7, 5, pong{term: 7, age: -1})
	l.received(t0.Add(time.Second), 8, 5, pong{term: 7, age: 0})
	l.received(t0.Add(-time.Second), 7, 5, pong{term: 7, age: 0})
	if got := l.latest(); !got.Equal(t0.Add(-40 * time.Millisecond)) {
		t.Errorf("contact moved to %v on pongs that prove nothing newer", got)
	}
	l.received(t0.Add(time.Second), 7, 5, pong{term: 9, nonce: 6, age: 10 * time.Millisecond})
	if got := l.latest(); !got.Equal(t0.Add(990 * time.Millisecond)) {
		t.Errorf("contact %v after a newer leader's pong", got)
	}
}

// Issue 10: a follower whose Raft stream stalls (a lossy link holds its one
// heartbeat connection) keeps its quorum contact through the lease channel,
// and the leader keeps hearing it: its lease does not lapse while the
// leader is alive and reachable. Here the follower's Raft connections
// are refused outright, both ways, so Raft's own contact stops.
func TestLeaseChannelKeepsContactWhileRaftStalls(t *testing.T) {
	ca := newTestCA(t, "regent")
	c := newTCPCluster(t, 3, func(i int) TLSConfig { return ca.issue(fmt.Sprintf("n%d", i+1), "127.0.0.1") }, nil)
	init := c.mustPropose(InitCluster{Cluster: "c1", Primary: "db1", At: at(0)})
	l := c.waitLeader()
	x := (l + 1) % 3
	fx := c.nodes[x]
	c.waitApplied(x, init.Index)
	// Quiet first: nothing committed for a while (the nodes record their
	// members after starting) and all of it applied by the follower. An
	// entry it misses later ends what its pings prove, by design (below).
	var lastCommit uint64
	stableSince := time.Now()
	waitFor(t, 20*time.Second, "a quiet cluster, everything applied by the follower", func() bool {
		if ci := c.nodes[l].raft.CommitIndex(); ci != lastCommit {
			lastCommit, stableSince = ci, time.Now()
		}
		return time.Since(stableSince) > 500*time.Millisecond && fx.raft.AppliedIndex() >= lastCommit
	})
	fx.stream.blockRaft(true)
	defer fx.stream.blockRaft(false)
	blocked := time.Now()

	waitFor(t, 10*time.Second, "Raft's own contact of the follower to stop", func() bool {
		return time.Since(fx.raft.LastContact()) > 4*c.cfgs[x].HeartbeatTimeout
	})
	deadline := time.Now().Add(3 * time.Second)
	worst := time.Duration(0)
	for time.Now().Before(deadline) {
		if c.nodes[l].raft.State() != raft.Leader {
			t.Fatalf("the leader lost its leadership: the test cannot tell")
		}
		age := time.Since(fx.LastQuorumContact())
		worst = max(worst, age)
		if age > 2*c.cfgs[x].ElectionTimeout+c.cfgs[x].HeartbeatTimeout {
			t.Fatalf("%s's quorum contact is %v old, %v after its Raft stream stopped (Raft's last contact %v ago): the lease channel did not keep it",
				c.cfgs[x].NodeID, age, time.Since(blocked), time.Since(fx.raft.LastContact()))
		}
		pcs, err := c.nodes[l].PeerContacts()
		if err != nil {
			t.Fatal(err)
		}
		for _, pc := range pcs {
			if pc.ID == c.cfgs[x].NodeID && time.Since(pc.LastHeard) > time.Second {
				t.Fatalf("the leader last heard %s %v ago", pc.ID, time.Since(pc.LastHeard))
			}
		}
		time.Sleep(20 * time.Millisecond) // sampling interval
	}
	t.Logf("%s's quorum contact stayed within %v of now for 3 s without Raft contact", c.cfgs[x].NodeID, worst)

	// A decision committed without it (its Raft stream still stalled): its
	// pings no longer count on either side, so its lease ages as it would
	// without the channel, and the leader stops hearing it.
	committed := c.mustPropose(SetPaused{Cluster: "c1", Paused: true, By: "test", Reason: "committed while its Raft stalls", At: at(2)}, l, 3-l-x)
	if fx.AppliedIndex() >= committed.Index {
		t.Fatalf("the stalled follower applied index %d: the test cannot tell", committed.Index)
	}
	missed := time.Now()
	waitFor(t, 10*time.Second, "the stalled follower's quorum contact to age past a second", func() bool {
		return time.Since(fx.LastQuorumContact()) > time.Second
	})
	if lqc := fx.LastQuorumContact(); lqc.After(missed) {
		t.Errorf("%s took a quorum contact at %v, after missing the entry committed at %v", c.cfgs[x].NodeID, lqc, missed)
	}
	pcs, err := c.nodes[l].PeerContacts()
	if err != nil {
		t.Fatal(err)
	}
	for _, pc := range pcs {
		if pc.ID == c.cfgs[x].NodeID && pc.LastHeard.After(missed.Add(100*time.Millisecond)) {
			t.Errorf("the leader heard %s at %v, after it missed the entry committed at %v", pc.ID, pc.LastHeard, missed)
		}
	}
}

func TestLeaseDatagramsSealAndOpen(t *testing.T) {
	s := leaseSession{id: 42, key: []byte("0123456789abcdef0123456789abcdef")}
	body := ping{seq: 3, term: 7, echo: 9, applied: 11}.encode()
	d := s.seal(udpPing, body)
	if len(d) != udpPingSz {
		t.Fatalf("datagram of %d bytes, want %d", len(d), udpPingSz)
	}
	got, err := s.open(udpPing, d, pingSize)
	if err != nil || decodePing(got) != decodePing(body) {
		t.Fatalf("open: %v, %+v", err, decodePing(got))
	}
	tampered := append([]byte(nil), d...)
	tampered[12] ^= 1
	other := leaseSession{id: 43, key: s.key}
	otherKey := leaseSession{id: 42, key: []byte("another key, just as long as it!")}
	for name, tc := range map[string]struct {
		s    leaseSession
		kind byte
		d    []byte
	}{
		"a flipped bit":       {s, udpPing, tampered},
		"another session id":  {other, udpPing, d},
		"another session key": {otherKey, udpPing, d},
		"a pong for a ping":   {s, udpPong, d},
		"truncated":           {s, udpPing, d[:len(d)-1]},
	} {
		if _, err := tc.s.open(tc.kind, tc.d, pingSize); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
}

func TestSeqWindowRefusesReplays(t *testing.T) {
	var w seqWindow
	for _, seq := range []uint64{10, 12, 11} { // reordered, all new
		if !w.fresh(seq) {
			t.Errorf("%d refused", seq)
		}
	}
	if w.fresh(12) {
		t.Errorf("a replay of 12 taken")
	}
	if !w.fresh(10 + replayWindow) {
		t.Errorf("a far newer one refused")
	}
	if w.fresh(10) || w.fresh(9) {
		t.Errorf("one older than the window taken")
	}
}

// Datagrams alone prove a contact, for a registered session only: the
// follower's pings reach the leader's socket, are answered under the
// session's key, and the pong proves the contact; a session the leader does
// not know gets no answer.
func TestLeaseDatagramsProveContact(t *testing.T) {
	st := &fakeLeaseState{term: 7, leader: true, age: 10 * time.Millisecond, commit: 5, applied: 5}
	ct := newContactTracker()
	srv := newLeaseServer(st, ct)
	u, err := listenLeaseUDP("127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	srv.udp = u
	go u.serve()
	defer u.close()
	known := leaseSession{id: 1, key: []byte("0123456789abcdef0123456789abcdef")}
	stranger := leaseSession{id: 2, key: []byte("fedcba9876543210fedcba9876543210")}
	defer u.register(known, "n2")()

	run := func(s leaseSession, wait time.Duration) *leaseClient {
		l := &leaseClient{state: st, interval: 10 * time.Millisecond, timeout: time.Second}
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { defer close(done); l.udpPings(stop, u.pc.LocalAddr().String(), s) }()
		deadline := time.Now().Add(wait)
		for time.Now().Before(deadline) && (s.id == stranger.id || l.latest().IsZero() || ct.lastHeard("n2").IsZero()) {
			time.Sleep(10 * time.Millisecond) // sampling interval
		}
		close(stop)
		<-done
		return l
	}
	if l := run(known, 10*time.Second); l.latest().IsZero() || ct.lastHeard("n2").IsZero() {
		t.Errorf("datagrams of a registered session: contact %v, leader heard n2 at %v", l.latest(), ct.lastHeard("n2"))
	}
	if l := run(stranger, 300*time.Millisecond); !l.latest().IsZero() {
		t.Errorf("a session the leader does not know took a contact at %v", l.latest())
	}
}

// Vitals ride on pings and the leader keeps each peer's newest, by the
// ping's sequence number, whichever way it came.
func TestLeaseServerKeepsTheNewestVitals(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)
	l := newLeaseServer(&fakeLeaseState{term: 7, leader: true}, newContactTracker())
	l.answer("n2", ping{seq: 5, term: 7, vitals: Vitals{5}}, t0)
	l.answer("n2", ping{seq: 4, term: 7, vitals: Vitals{4}}, t0.Add(time.Millisecond)) // reordered: older
	l.answer("n3", ping{seq: 1, term: 7, vitals: Vitals{9}}, t0)
	got := l.peerVitals()
	if got["n2"].Vitals[0] != 5 || !got["n2"].At.Equal(t0) || got["n3"].Vitals[0] != 9 {
		t.Errorf("vitals %+v", got)
	}
	l.answer("n2", ping{seq: 6, term: 7, vitals: Vitals{6}}, t0.Add(2*time.Millisecond))
	if v := l.peerVitals()["n2"]; v.Vitals[0] != 6 || !v.At.Equal(t0.Add(2*time.Millisecond)) {
		t.Errorf("newer vitals not kept: %+v", v)
	}
}
