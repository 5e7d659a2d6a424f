package consensus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// logCacheSize is how many of the newest log entries are kept in memory in
// front of raft-boltdb.
const logCacheSize = 512

// Infra lets a caller supply Raft's transport and storage instead of the
// defaults built from Config (TCP/TLS transport; raft-boltdb in DataDir and
// file snapshots in DataDir/snapshots). Tests use it for in-memory
// transports and stores. Give all three stores or none.
type Infra struct {
	Transport     raft.Transport
	LogStore      raft.LogStore
	StableStore   raft.StableStore
	SnapshotStore raft.SnapshotStore
}

// Node is one agent's member of the Raft group.
type Node struct {
	cfg      Config
	log      *slog.Logger
	raft     *raft.Raft
	fsm      *fsm
	contacts *contactTracker
	bolt     *raftboltdb.BoltStore // nil with supplied stores

	notifyCh    chan bool
	reconcileCh chan struct{}
	raftStopped chan struct{}

	ctx    context.Context // cancelled when Close starts
	cancel context.CancelFunc
	owned  sync.WaitGroup // goroutines this node runs for its whole life

	mu        sync.Mutex
	closing   bool
	waiting   atomic.Int64 // goroutines waiting on a Raft future
	closeDone chan struct{}
	closeErr  error

	subMu sync.Mutex
	subs  map[*subscription]struct{}

	leadership atomic.Pointer[Leadership]

	// startIndex is the last index of the log this node found on disk at
	// start (Restored).
	startIndex uint64

	lqcMu sync.Mutex
	lqc   time.Time // LastQuorumContact never goes backwards

	// lease is the follower side of the lease channel (lease.go); nil
	// without one (in-memory transports, plain TCP).
	lease *leaseClient
	// stream is the TCP stream layer; nil with a supplied transport.
	stream *streamLayer
	// leaseUDP answers the lease channel's datagrams; nil without.
	leaseUDP *leaseUDP
	// leaseServer answers pings; nil without a lease channel.
	leaseServer *leaseServer
	vitalsFn    atomic.Pointer[func() Vitals]
}

// Leadership is a change of this node's leadership, as delivered by
// WatchLeadership.
type Leadership struct {
	IsLeader bool
	// Term is the Raft term observed with the change. Two successive events
	// with IsLeader true and different terms mean leadership was lost and
	// won again in between.
	Term uint64
	At   time.Time // when this node observed the change
}

// LeaderInfo names the current leader as this node knows it.
type LeaderInfo struct {
	ID       string
	RaftAddr string
	APIAddr  string // from the member table; empty if not recorded
}

// Outcome is the FSM's answer to an applied command.
type Outcome struct {
	// Index is the Raft log index of the command.
	Index uint64
	// Cluster is a copy of the replication cluster after the command; nil
	// for member commands.
	Cluster *Cluster
}

// Server is a member of the Raft configuration.
type Server struct {
	ID    string
	Addr  string
	Voter bool
}

// PeerContact is what the leader knows about hearing from one peer.
type PeerContact struct {
	Server
	// LastHeard is the latest moment the peer may have been in contact with
	// a quorum, as far as this leader can tell: when its last answer arrived,
	// or — if it has not answered since this node became leader (Heard is
	// false) — the moment this node became leader, because the peer may have
	// been talking to the previous leader until then.
	LastHeard time.Time
	Heard     bool
}

// Stats are the figures exported as metrics.
type Stats struct {
	NodeID       string
	State        string // Follower, Candidate, Leader or Shutdown
	IsLeader     bool
	LeaderID     string
	LeaderAddr   string
	Term         uint64
	CommitIndex  uint64
	AppliedIndex uint64
	LastLogIndex uint64
	// LastContact is Raft's last contact with a leader (zero if never); on a
	// leader it is when it last stepped up or down, not meaningful.
	LastContact       time.Time
	LastQuorumContact time.Time
	Voters            int
	NonVoters         int
	Servers           []Server
}

// Start opens (or creates) the node's durable state in cfg.DataDir, starts
// the TCP transport (mutual TLS when configured) and joins the Raft group:
// it bootstraps a new cluster from cfg.Peers only on the very first start of
// a fresh cluster, and otherwise restarts from its durable state.
func Start(ctx context.Context, cfg Config, logger *slog.Logger) (*Node, error) {
	return StartWith(ctx, cfg, logger, Infra{})
}

// StartWith is Start with caller-supplied transport and/or stores.
func StartWith(ctx context.Context, cfg Config, logger *slog.Logger, infra Infra) (_ *Node, err error) {
	stores := 0
	for _, s := range []any{infra.LogStore, infra.StableStore, infra.SnapshotStore} {
		if s != nil {
			stores++
		}
	}
	if stores != 0 && stores != 3 {
		return nil, errors.New("consensus: Infra needs all of LogStore, StableStore and SnapshotStore, or none")
	}
	if err := cfg.validate(stores == 0, infra.Transport == nil); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With(logKeyNode, cfg.NodeID)

	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	n := &Node{
		cfg:         cfg,
		log:         logger,
		contacts:    newContactTracker(),
		notifyCh:    make(chan bool, 16),
		reconcileCh: make(chan struct{}, 1),
		raftStopped: make(chan struct{}),
		closeDone:   make(chan struct{}),
		subs:        map[*subscription]struct{}{},
	}
	n.fsm = newFSM(logger.With(logKeyComponent, "fsm"))
	n.leadership.Store(&Leadership{At: time.Now()})

	logs, stable, snaps := infra.LogStore, infra.StableStore, infra.SnapshotStore
	if stores == 0 {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, &ConfigError{Field: "DataDir", Reason: err.Error()}
		}
		lockWait := 5 * time.Second
		if d, ok := ctx.Deadline(); ok {
			lockWait = max(time.Until(d), time.Millisecond)
		}
		path := filepath.Join(cfg.DataDir, "raft.db")
		bolt, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bbolt.Options{Timeout: lockWait}})
		if err != nil {
			return nil, fmt.Errorf("open raft store %s (is another agent using DataDir?): %w", path, err)
		}
		undo = append(undo, func() { _ = bolt.Close() })
		n.bolt = bolt
		// The newest entries from memory: the leader reads the entry before
		// each AppendEntries it sends (every CommitTimeout per follower even
		// at rest), and reading it from bolt was a third of that cost. The
		// cache writes through, so what is durable does not change.
		cached, err := raft.NewLogCache(logCacheSize, bolt)
		if err != nil {
			return nil, fmt.Errorf("raft log cache: %w", err)
		}
		logs, stable = cached, bolt
		snaps, err = raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, cfg.SnapshotRetain, newHCLogAdapter(logger, "raft-snapshot"))
		if err != nil {
			return nil, fmt.Errorf("open raft snapshots in %s: %w", cfg.DataDir, err)
		}
	}

	trans := infra.Transport
	var sl *streamLayer
	if trans == nil {
		var pair *tlsPair
		if cfg.TLS.Enabled() {
			if pair, err = loadTLS(cfg.TLS, cfg.NodeID); err != nil {
				return nil, err
			}
		} else {
			// Validate refused this without InsecurePlaintext.
			logger.Warn("INSECURE: raft runs over plain TCP without authentication (insecure plaintext set): anyone who reaches the raft port can rewrite the replicated state, commit a primary or pause a cluster; give each agent a certificate (deploy/regent/make-certs.sh) and set the TLS files")
		}
		bind := cfg.BindAddr
		if bind == "" {
			bind = cfg.RaftAddr
		}
		sl, err = newStreamLayer(bind, cfg.RaftAddr, pair, cfg.TransportTimeout, logger.With(logKeyComponent, "raft-stream"))
		if err != nil {
			return nil, err
		}
		n.stream = sl
		if pair != nil {
			// The lease channel (lease.go): identified members only, over
			// TCP and as datagrams on the same port (lease_udp.go).
			ls := newLeaseServer(n, n.contacts)
			n.leaseServer = ls
			udp, uerr := listenLeaseUDP(bind, ls)
			if uerr != nil {
				logger.Warn("lease datagrams off: cannot listen on UDP; the lease channel runs over TCP alone", logKeyAddr, bind, logKeyErr, uerr)
			} else {
				ls.udp = udp
				n.leaseUDP = udp
				undo = append(undo, func() { _ = udp.close() })
			}
			sl.lease = ls.serve
			n.lease = &leaseClient{state: n, dial: sl.dialLease, datagrams: true,
				interval: max(5*time.Millisecond, cfg.HeartbeatTimeout/10), timeout: cfg.TransportTimeout}
		}
		nt := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  sl,
			MaxPool: cfg.MaxPool,
			Timeout: cfg.TransportTimeout,
			Logger:  newHCLogAdapter(logger, "raft-net"),
		})
		trans = nt
		logger.Info("raft transport listening", logKeyAddr, bind, "advertise", cfg.RaftAddr, "tls", pair != nil)
	}
	if _, ok := trans.(raft.WithPreVote); !ok {
		return nil, errors.New("consensus: the transport must support pre-vote (raft.WithPreVote); the lease depends on it")
	}
	tt := &trackingTransport{Transport: trans, contacts: n.contacts}
	undo = append(undo, func() { _ = tt.Close() })

	rc := cfg.raftConfig()
	rc.NotifyCh = n.notifyCh
	rc.Logger = newHCLogAdapter(logger, "raft")

	existing, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return nil, fmt.Errorf("check raft state: %w", err)
	}
	switch {
	case existing:
		logger.Info("restarting from existing raft state")
	case len(cfg.Peers) > 0:
		conf := raft.Configuration{}
		ids := make([]string, 0, len(cfg.Peers))
		for _, p := range cfg.Peers {
			conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.RaftAddr)})
			ids = append(ids, p.ID)
		}
		if err := raft.BootstrapCluster(rc, logs, stable, snaps, tt, conf); err != nil {
			return nil, fmt.Errorf("bootstrap raft cluster: %w", err)
		}
		logger.Info("bootstrapped a new raft cluster", logKeyPeers, ids)
	default:
		logger.Info("no raft state and no initial peers: waiting for the leader to add this node")
	}

	r, err := raft.NewRaft(rc, n.fsm, logs, stable, snaps, tt)
	if err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	n.raft = r
	n.startIndex = r.LastIndex()
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.owned.Add(2)
	go n.runLeadership()
	go n.runReconcile()
	if sl != nil && sl.server != nil {
		sl.setMembers(n.memberAddrs)
		n.owned.Add(1)
		go n.runMemberSweep(sl)
	}
	if n.lease != nil {
		n.owned.Add(1)
		go func() {
			defer n.owned.Done()
			n.lease.run(n.ctx.Done())
		}()
	}
	if n.leaseUDP != nil {
		n.owned.Add(1)
		go func() {
			defer n.owned.Done()
			n.leaseUDP.serve()
		}()
		context.AfterFunc(n.ctx, func() { _ = n.leaseUDP.close() })
	}
	return n, nil
}

// memberAddrs is the set of servers (id → Raft address) whose certificates
// the transport accepts: the latest Raft configuration, committed or not (a
// voter being added is dialled at once). A node that has none yet — it is
// waiting to be added to a running cluster — accepts the agents it was told
// run it (JoinPeers), and its initial peers.
func (n *Node) memberAddrs() map[string]string {
	out := map[string]string{}
	for _, s := range n.Servers() {
		out[s.ID] = s.Addr
	}
	if len(out) > 0 {
		return out
	}
	for _, p := range append(append([]Peer(nil), n.cfg.Peers...), n.cfg.JoinPeers...) {
		out[p.ID] = p.RaftAddr
	}
	return out
}

// runMemberSweep closes the open Raft connections of servers that left the
// configuration: the accepted set is read at every handshake, and this
// makes a removal take effect on connections already open too.
func (n *Node) runMemberSweep(sl *streamLayer) {
	defer n.owned.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last string
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		members := n.memberAddrs()
		key := strings.Join(slices.Sorted(maps.Keys(members)), ",")
		if key != last && last != "" {
			sl.dropNonMembers(members)
		}
		last = key
	}
}

// ID returns this node's id.
func (n *Node) ID() string { return n.cfg.NodeID }

// IsLeader reports whether this node is the Raft leader now. Use
// VerifyLeader before an irreversible step.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader names the leader as this node knows it.
func (n *Node) Leader() LeaderInfo {
	addr, id := n.raft.LeaderWithID()
	li := LeaderInfo{ID: string(id), RaftAddr: string(addr)}
	if id != "" {
		li.APIAddr = n.fsm.member(string(id)).APIAddr
	}
	return li
}

// WatchLeadership returns a channel that receives this node's leadership
// state, first the current one, then every change. Delivery never blocks
// Raft: a subscriber that falls behind sees only the latest state (compare
// Terms to detect a loss in between). Call cancel when done; Close closes
// every channel.
func (n *Node) WatchLeadership() (<-chan Leadership, func()) {
	s := &subscription{ch: make(chan Leadership, 1)}
	s.ch <- *n.leadership.Load()
	n.subMu.Lock()
	if n.subs == nil { // closed
		n.subMu.Unlock()
		close(s.ch)
		return s.ch, func() {}
	}
	n.subs[s] = struct{}{}
	n.subMu.Unlock()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			n.subMu.Lock()
			defer n.subMu.Unlock()
			if _, ok := n.subs[s]; ok {
				delete(n.subs, s)
				close(s.ch)
			}
		})
	}
}

type subscription struct{ ch chan Leadership }

// runLeadership drains Raft's NotifyCh (a full channel would block Raft) and
// fans the changes out without blocking. It runs until Raft has shut down.
func (n *Node) runLeadership() {
	defer n.owned.Done()
	for {
		select {
		case isLeader := <-n.notifyCh:
			ev := Leadership{IsLeader: isLeader, Term: n.raft.CurrentTerm(), At: time.Now()}
			n.leadership.Store(&ev)
			n.log.Info("raft leadership changed", logKeyLeader, isLeader, logKeyTerm, ev.Term)
			n.publish(ev)
			if isLeader {
				select {
				case n.reconcileCh <- struct{}{}:
				default:
				}
			}
		case <-n.raftStopped:
			return
		}
	}
}

func (n *Node) publish(ev Leadership) {
	n.subMu.Lock()
	defer n.subMu.Unlock()
	for s := range n.subs {
		// Only this goroutine sends, under subMu, so after dropping a stale
		// value the send cannot block.
		select {
		case s.ch <- ev:
		default:
			select {
			case <-s.ch:
			default:
			}
			s.ch <- ev
		}
	}
}

// runReconcile keeps the member table's entries for this node and the
// initial peers in step with the configuration, each time this node becomes
// leader, so every agent can find the leader's API address.
func (n *Node) runReconcile() {
	defer n.owned.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.reconcileCh:
			n.reconcileMembers()
		}
	}
}

func (n *Node) reconcileMembers() {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.ApplyTimeout)
	defer cancel()
	if err := n.Barrier(ctx); err != nil {
		n.log.Debug("member table not reconciled", logKeyErr, err)
		return
	}
	inConf := map[string]bool{}
	for _, s := range n.Servers() {
		inConf[s.ID] = true
	}
	st, _ := n.fsm.current()
	want := []Member{{ID: n.cfg.NodeID, RaftAddr: n.cfg.RaftAddr, APIAddr: n.cfg.APIAddr, Instance: n.cfg.Instance}}
	for _, p := range n.cfg.Peers {
		if _, known := st.Members[p.ID]; !known && p.ID != n.cfg.NodeID && inConf[p.ID] {
			want = append(want, Member(p))
		}
	}
	for _, m := range want {
		if cur, ok := st.Members[m.ID]; ok && cur == m {
			continue
		}
		if _, err := n.Propose(ctx, SetMember{Member: m}); err != nil {
			if errors.Is(err, ErrClosed) {
				return
			}
			n.log.Warn("could not record member", logKeyPeer, m.ID, logKeyErr, err)
		}
	}
}

// Propose replicates cmd and returns the FSM's answer. Errors: a
// *NotLeaderError (ErrNotLeader), the FSM's rejection (ErrStaleEpoch,
// ErrConflict, ErrNotFound, ErrPaused, ErrAntiFlap, ErrInvalidCommand),
// ErrTimeout, ErrClosed. After ErrTimeout, ErrClosed or a NotLeaderError
// wrapping raft.ErrLeadershipLost the command may still have been applied;
// every command is conditional, so re-read the state or retry as is.
// Without a deadline in ctx, Config.ApplyTimeout applies.
func (n *Node) Propose(ctx context.Context, cmd Command) (Outcome, error) {
	data, err := EncodeCommand(cmd)
	if err != nil {
		return Outcome{}, err
	}
	if n.isClosing() {
		return Outcome{}, ErrClosed
	}
	if n.raft.State() != raft.Leader {
		return Outcome{}, n.notLeader(nil)
	}
	ctx, cancel := n.bound(ctx)
	defer cancel()
	f := n.raft.Apply(data, remaining(ctx))
	if err := n.await(ctx, f); err != nil {
		return Outcome{}, n.mapErr(err)
	}
	resp, ok := f.Response().(*applyResponse)
	if !ok {
		return Outcome{Index: f.Index()}, fmt.Errorf("consensus: unexpected FSM response %T", f.Response())
	}
	if resp.err != nil {
		return Outcome{Index: f.Index()}, resp.err
	}
	return Outcome{Index: f.Index(), Cluster: resp.cluster}, nil
}

// Barrier waits until every entry committed before it is applied to the
// FSM. A new leader calls it before acting. Leader only.
func (n *Node) Barrier(ctx context.Context) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	if err := n.await(ctx, n.raft.Barrier(remaining(ctx))); err != nil {
		return n.mapErr(err)
	}
	return nil
}

// VerifyLeader checks with a quorum that this node is still the leader. Call
// it before every irreversible step.
func (n *Node) VerifyLeader(ctx context.Context) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	if err := n.await(ctx, n.raft.VerifyLeader()); err != nil {
		return n.mapErr(err)
	}
	return nil
}

// State returns a copy of the replicated state as applied on this node. On a
// follower it may lag; use ReadState for a linearizable read on the leader.
func (n *Node) State() State {
	st, _ := n.fsm.current()
	return st
}

// StateAt returns a copy of the replicated state as applied on this node and
// the Raft log index it reflects, read together. On a leader after its
// Barrier the index is higher than any index an earlier leader applied: the
// agent orders routing attempts by it.
func (n *Node) StateAt() (State, uint64) { return n.fsm.current() }

// AppliedIndex returns the Raft log index of the last command applied on
// this node, without copying the state.
func (n *Node) AppliedIndex() uint64 {
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	return n.fsm.index
}

// ReadState returns a copy of the replicated state that reflects every
// command committed before the call (Barrier, then read). Leader only.
func (n *Node) ReadState(ctx context.Context) (State, error) {
	if err := n.Barrier(ctx); err != nil {
		return State{}, err
	}
	return n.State(), nil
}

// Cluster returns a copy of one replication cluster's state on this node
// (Cluster.Clone), without copying the others.
func (n *Node) Cluster(name string) (Cluster, bool) {
	c, _, ok := n.fsm.cluster(name)
	return c, ok
}

// ClusterAt is Cluster with the Raft log index it reflects, read together
// (see StateAt).
func (n *Node) ClusterAt(name string) (Cluster, uint64, bool) { return n.fsm.cluster(name) }

// Defined returns the clusters defined at run time (DefineCluster), by name.
func (n *Node) Defined() map[string]Definition { return n.fsm.defined() }

// MemberIDs returns the ids of the member table, sorted.
func (n *Node) MemberIDs() []string { return n.fsm.memberIDs() }

// Members returns the member table on this node, sorted by id.
func (n *Node) Members() []Member { return n.State().MemberList() }

// Servers returns the Raft configuration (voters and non-voters).
func (n *Node) Servers() []Server {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out
}

// AddVoter adds a voter to the Raft configuration (or updates its address).
// Leader only. The new agent must have been started without Peers.
func (n *Node) AddVoter(ctx context.Context, id, raftAddr string) error {
	if e := checkID(id); e != "" {
		return fmt.Errorf("%w: member id: %s", ErrInvalidCommand, e)
	}
	if e := checkAdvertised(raftAddr); e != "" {
		return fmt.Errorf("%w: member raft address: %s", ErrInvalidCommand, e)
	}
	if !n.IsLeader() {
		return n.notLeader(nil)
	}
	ctx, cancel := n.bound(ctx)
	defer cancel()
	if err := n.await(ctx, n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(raftAddr), 0, remaining(ctx))); err != nil {
		return n.mapErr(err)
	}
	n.log.Info("raft voter added", logKeyPeer, id, logKeyAddr, raftAddr)
	return nil
}

// RemoveServer removes a server from the Raft configuration. Leader only.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	if !n.IsLeader() {
		return n.notLeader(nil)
	}
	ctx, cancel := n.bound(ctx)
	defer cancel()
	if err := n.await(ctx, n.raft.RemoveServer(raft.ServerID(id), 0, remaining(ctx))); err != nil {
		return n.mapErr(err)
	}
	n.log.Info("raft server removed", logKeyPeer, id)
	return nil
}

// AddAgent adds an agent as a voter and records it in the member table.
// Leader only.
func (n *Node) AddAgent(ctx context.Context, m Member) error {
	if _, err := EncodeCommand(SetMember{Member: m}); err != nil {
		return err
	}
	if err := n.AddVoter(ctx, m.ID, m.RaftAddr); err != nil {
		return err
	}
	_, err := n.Propose(ctx, SetMember{Member: m})
	return err
}

// RemoveAgent removes an agent from the Raft configuration and the member
// table. Leader only.
func (n *Node) RemoveAgent(ctx context.Context, id string) error {
	if err := n.RemoveServer(ctx, id); err != nil {
		return err
	}
	if _, err := n.Propose(ctx, RemoveMember{ID: id}); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// Snapshot asks Raft to take a snapshot now.
func (n *Node) Snapshot(ctx context.Context) error {
	ctx, cancel := n.bound(ctx)
	defer cancel()
	if err := n.await(ctx, n.raft.Snapshot()); err != nil {
		return fmt.Errorf("raft snapshot: %w", n.mapErr(err))
	}
	return nil
}

// LastQuorumContact returns a time at which this node is known to have been
// in contact with a quorum of the Raft group; the self-fencing lease counts
// from it (docs/safety.md). It never goes backwards. See doc.go for how it
// is computed on leaders and followers and the bounds it guarantees.
func (n *Node) LastQuorumContact() time.Time {
	now := time.Now()
	var best time.Time
	if lc := n.raft.LastContact(); !lc.IsZero() {
		// A leader that lost its quorum keeps sending heartbeats until its
		// lease check notices, at most 2×LeaderLeaseTimeout later; the same
		// bound covers the last-contact stamp Raft sets on stepping down.
		best = lc.Add(-2 * n.cfg.LeaderLeaseTimeout)
	}
	if t := n.contacts.quorumAck(raft.ServerID(n.cfg.NodeID), n.voters(), n.IsLeader(), now); t.After(best) {
		best = t
	}
	if n.lease != nil {
		if t := n.lease.latest(); t.After(best) {
			best = t
		}
	}
	n.lqcMu.Lock()
	defer n.lqcMu.Unlock()
	if best.After(n.lqc) {
		n.lqc = best
	}
	return n.lqc
}

// voters lists the voting servers of the current configuration.
func (n *Node) voters() []raft.ServerID {
	var voters []raft.ServerID
	for _, s := range n.Servers() {
		if s.Voter {
			voters = append(voters, raft.ServerID(s.ID))
		}
	}
	return voters
}

// leading, quorumAge and leaderAddr are the lease channel's view of this
// node (leaseState).
func (n *Node) leading() (uint64, bool) {
	return n.raft.CurrentTerm(), n.raft.State() == raft.Leader
}

func (n *Node) quorumAge(now time.Time) time.Duration {
	t := n.contacts.quorumAck(raft.ServerID(n.cfg.NodeID), n.voters(), n.raft.State() == raft.Leader, now)
	if t.IsZero() {
		return -1
	}
	return max(0, now.Sub(t))
}

func (n *Node) vitals() Vitals {
	if f := n.vitalsFn.Load(); f != nil {
		return (*f)()
	}
	return Vitals{}
}

// CaughtUp reports whether this node has applied every entry it knows to be
// committed (on a follower: as of the leader's last AppendEntries), so that
// what State returns is current as of its last contact.
func (n *Node) CaughtUp() bool { return n.raft.AppliedIndex() >= n.raft.CommitIndex() }

// Restored reports whether this node has applied its log as far as it had
// it on disk when it started. Until then, after a restart, State is older
// than what this node itself knew before it stopped (Raft applies the
// entries past the snapshot only once it learns they are committed), so it
// must not be shown as the replicated state. It stays false while no
// leader commits: the node cannot tell what is current then.
func (n *Node) Restored() bool { return n.raft.AppliedIndex() >= n.startIndex }

// SetVitals sets what this node attaches to its lease pings: a few bytes
// of news for the leader that travel wherever the pings get through
// (PeerVitals). f is called for every ping and must be cheap.
func (n *Node) SetVitals(f func() Vitals) { n.vitalsFn.Store(&f) }

// PeerVitals returns, on the leader, each peer's latest vitals and when
// they arrived (nil without a lease channel).
func (n *Node) PeerVitals() map[string]PeerVitals {
	if n.leaseServer == nil {
		return nil
	}
	return n.leaseServer.peerVitals()
}

func (n *Node) commitIndex() uint64  { return n.raft.CommitIndex() }
func (n *Node) appliedIndex() uint64 { return n.raft.AppliedIndex() }

func (n *Node) leaderAddr() (string, string) {
	addr, id := n.raft.LeaderWithID()
	if string(id) == n.cfg.NodeID {
		return "", ""
	}
	return string(addr), string(id)
}

// PeerContacts tells, on the leader, how recently each other server was
// heard. Leader only.
func (n *Node) PeerContacts() ([]PeerContact, error) {
	if !n.IsLeader() {
		return nil, n.notLeader(nil)
	}
	// If the leadership goroutine has not yet seen this term's election,
	// take "now" as the start of leadership: later is the safe side.
	since := time.Now()
	if l := n.leadership.Load(); l.IsLeader && l.Term == n.raft.CurrentTerm() {
		since = l.At
	}
	var out []PeerContact
	for _, s := range n.Servers() {
		if s.ID == n.cfg.NodeID {
			continue
		}
		pc := PeerContact{Server: s, LastHeard: since}
		if h := n.contacts.lastHeard(raft.ServerID(s.ID)); h.After(since) {
			pc.LastHeard, pc.Heard = h, true
		}
		out = append(out, pc)
	}
	return out, nil
}

// Stats returns the figures for metrics.
func (n *Node) Stats() Stats {
	addr, id := n.raft.LeaderWithID()
	st := n.raft.State()
	s := Stats{
		NodeID:            n.cfg.NodeID,
		State:             st.String(),
		IsLeader:          st == raft.Leader,
		LeaderID:          string(id),
		LeaderAddr:        string(addr),
		Term:              n.raft.CurrentTerm(),
		CommitIndex:       n.raft.CommitIndex(),
		AppliedIndex:      n.raft.AppliedIndex(),
		LastLogIndex:      n.raft.LastIndex(),
		LastContact:       n.raft.LastContact(),
		LastQuorumContact: n.LastQuorumContact(),
		Servers:           n.Servers(),
	}
	for _, sv := range s.Servers {
		if sv.Voter {
			s.Voters++
		} else {
			s.NonVoters++
		}
	}
	return s
}

// Close leaves the group: on the leader it first hands leadership over (if
// configured, bounded by ctx), lets proposals in flight finish (bounded by
// ctx), then shuts Raft down, stops every goroutine, closes the stores and
// every WatchLeadership channel. The shutdown itself always runs to the end;
// ctx only bounds the courtesy steps. Safe to call more than once: later
// calls wait for the first and return its result.
func (n *Node) Close(ctx context.Context) error {
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		select {
		case <-n.closeDone:
			return n.closeErr
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting for close: %w", ErrTimeout, ctx.Err())
		}
	}
	n.closing = true
	n.mu.Unlock()

	var errs []error
	if n.cfg.TransferLeadershipOnClose && n.IsLeader() && len(n.Servers()) > 1 {
		n.transferLeadership(ctx)
	}
	// Let calls waiting on Raft finish while Raft can still answer them:
	// hashicorp/raft resolves every future while it runs, but on shutdown
	// drops those it had already queued to its FSM goroutine, which would
	// leave our waiting goroutines blocked for ever.
	n.drainWaiting(ctx)
	n.mu.Lock() // orders the cancel with await's check
	n.cancel()
	n.mu.Unlock()
	n.drainWaiting(ctx) // calls that slipped in before the cancel
	if err := n.raft.Shutdown().Error(); err != nil {
		errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
	}
	close(n.raftStopped)
	n.owned.Wait()
	if k := n.drainWaiting(ctx); k > 0 {
		errs = append(errs, fmt.Errorf("%w: %d raft futures unresolved after shutdown", ErrTimeout, k))
	}

	if n.bolt != nil {
		if err := n.bolt.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close raft store: %w", err))
		}
	}
	n.subMu.Lock()
	for s := range n.subs {
		close(s.ch)
	}
	n.subs = nil
	n.subMu.Unlock()

	n.closeErr = errors.Join(errs...)
	close(n.closeDone)
	n.log.Info("raft node closed")
	return n.closeErr
}

func (n *Node) transferLeadership(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*n.cfg.ElectionTimeout)
	defer cancel()
	err := n.await(ctx, n.raft.LeadershipTransfer())
	if err != nil {
		n.log.Warn("leadership transfer before close failed; followers will elect a leader after the election timeout", logKeyErr, err)
		return
	}
	n.log.Info("leadership transferred before close", logKeyLeader, n.Leader().ID)
}

// await waits for a Raft future, or for ctx or the node closing. Raft's
// futures cannot be selected on, hence the goroutine; it ends when the
// future resolves, which Raft guarantees on shutdown (bar the case in
// Close).
func (n *Node) await(ctx context.Context, f raft.Future) error {
	n.mu.Lock()
	if n.closing && n.ctx.Err() != nil {
		n.mu.Unlock()
		return ErrClosed
	}
	n.waiting.Add(1)
	n.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		defer n.waiting.Add(-1)
		done <- f.Error()
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
	case <-n.ctx.Done():
		return ErrClosed
	}
}

// drainWaiting waits, at most ApplyTimeout and while ctx lasts, for the
// goroutines waiting on Raft futures to finish, and returns how many remain.
func (n *Node) drainWaiting(ctx context.Context) int64 {
	limit := time.NewTimer(n.cfg.ApplyTimeout)
	defer limit.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		k := n.waiting.Load()
		if k == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			return k
		case <-limit.C:
			return k
		case <-tick.C:
		}
	}
}

func (n *Node) isClosing() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closing
}

func (n *Node) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, n.cfg.ApplyTimeout)
}

func remaining(ctx context.Context) time.Duration {
	d, ok := ctx.Deadline()
	if !ok {
		return 0
	}
	return max(time.Until(d), time.Millisecond)
}

func (n *Node) mapErr(err error) error {
	switch {
	case errors.Is(err, ErrTimeout), errors.Is(err, ErrClosed):
		return err
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrNotVoter):
		return n.notLeader(err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return fmt.Errorf("raft: %w", err)
}

func (n *Node) notLeader(cause error) error {
	li := n.Leader()
	if li.ID == n.cfg.NodeID { // stale view of ourselves while stepping down
		li = LeaderInfo{}
	}
	return &NotLeaderError{LeaderID: li.ID, LeaderAddr: li.RaftAddr, LeaderAPIAddr: li.APIAddr, Err: cause}
}
