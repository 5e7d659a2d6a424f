package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/topology"
)

// Observation is one agent's latest probe of one instance, in a form that
// travels between agents as JSON (GTID sets as text with their flavour).
type Observation struct {
	ObservedAt   time.Time           `json:"observed_at"`
	Reachable    bool                `json:"reachable"`
	Error        topology.ErrorClass `json:"error,omitempty"`
	ErrorDetail  string              `json:"error_detail,omitempty"`
	FailingSince time.Time           `json:"failing_since,omitzero"`
	// LastReachedAt is the latest successful probe (see
	// failover.Probe.LastReachedAt).
	LastReachedAt time.Time `json:"last_reached_at,omitzero"`
	// Stream is this agent's binlog stream from the instance, set only on
	// the recorded primary's observation.
	Stream *StreamObservation `json:"stream,omitempty"`

	ReadOnly      bool              `json:"read_only"`
	SuperReadOnly bool              `json:"super_read_only"`
	ServerID      uint32            `json:"server_id,omitempty"`
	Flavor        string            `json:"flavor,omitempty"`
	Executed      *topology.GTIDSet `json:"executed,omitempty"`
	// Own is the part of Executed this instance wrote itself (see
	// failover.Probe.Own).
	Own *topology.GTIDSet `json:"own,omitempty"`

	// LogsReplicaUpdates: log_bin and log_slave_updates are on
	// (failover.Probe.LogsReplicaUpdates).
	LogsReplicaUpdates bool                `json:"logs_replica_updates,omitempty"`
	Replica            *ReplicaObservation `json:"replica,omitempty"`

	SemiSync topology.SemiSyncStatus `json:"semi_sync"`
	// SemiSyncShortSince is when this instance, a semi-sync source, was
	// first seen with fewer semi-sync replicas connected than it waits for
	// (zero while it has enough): semi_sync_fallback counts from it.
	SemiSyncShortSince time.Time     `json:"semi_sync_short_since,omitzero"`
	Questions          uint64        `json:"questions"`
	ThreadsConnected   uint64        `json:"threads_connected"`
	Latency            time.Duration `json:"latency"`

	// epoch is the cluster's epoch when the probe was taken (local use,
	// not reported): a probe older than the current epoch predates the
	// change of primary.
	epoch uint64
}

// StreamObservation is an agent's binlog stream from the primary (see
// failover.Stream).
type StreamObservation struct {
	Period  time.Duration `json:"period"`
	HeardAt time.Time     `json:"heard_at,omitzero"`
	Detail  string        `json:"detail,omitempty"`
}

// ReplicaObservation is the replication part of an Observation.
type ReplicaObservation struct {
	// Source is the configured instance name of the source when the address
	// matches one, host:port otherwise.
	Source             string            `json:"source"`
	IOState            topology.IOState  `json:"io_state"`
	SQLRunning         bool              `json:"sql_running"`
	LastIOErrno        int               `json:"last_io_errno,omitempty"`
	LastIOError        string            `json:"last_io_error,omitempty"`
	LastSQLError       string            `json:"last_sql_error,omitempty"`
	LagSeconds         *int64            `json:"lag_seconds,omitempty"`
	SQLDelay           int64             `json:"sql_delay,omitempty"`
	Retrieved          *topology.GTIDSet `json:"retrieved,omitempty"`
	HeartbeatPeriod    float64           `json:"heartbeat_period"`
	ReceivedHeartbeats uint64            `json:"received_heartbeats"`
	ReadPosition       string            `json:"read_position"`
	LastProgressAt     time.Time         `json:"last_progress_at,omitzero"`
}

// prober keeps one agent's latest observation of every instance of a
// cluster, probing each at the cluster's interval.
type prober struct {
	cluster string
	timeout time.Duration
	// set is the cluster's current instances (read once per round).
	set func() *instanceSet

	// primary names the replicated state's primary ("" when unknown), and
	// its epoch.
	primary func() (string, uint64)
	// now is the agent's clock (Deps.Clock); nil is the wall clock.
	now func() time.Time
	// probe reads one instance (topology.Instance.Probe; a fake in the
	// loop's test).
	probe func(ctx context.Context, name string, inst *topology.Instance) (*topology.Snapshot, error)

	// observe, when set, is told how long each probe took (Deps.OnProbe).
	observe func(time.Duration)
	// slots, when set, bounds the probes running at once across the
	// agent's clusters (max_parallel_probes): one token per probe.
	slots chan struct{}

	mu   sync.Mutex
	obs  map[string]Observation
	seen map[string]Observation // last successful probe per instance
}

func newProber(cluster string, timeout time.Duration, set func() *instanceSet) *prober {
	return &prober{cluster: cluster, timeout: timeout, set: set,
		probe: func(ctx context.Context, _ string, inst *topology.Instance) (*topology.Snapshot, error) {
			return inst.Probe(ctx)
		},
		obs: map[string]Observation{}, seen: map[string]Observation{}}
}

// round probes every instance and records the results: the replicas in
// parallel, then the primary. Reading the primary last makes its executed
// set a superset of anything its replicas received from it in this round, so
// that comparing them finds only true errant transactions even under a
// steady stream of writes.
func (p *prober) round(ctx context.Context) {
	primary := ""
	if p.primary != nil {
		primary, _ = p.primary()
	}
	set := p.set()
	var wg sync.WaitGroup
	for name, inst := range set.insts {
		if name == primary {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.probeOne(ctx, name, inst)
		}()
	}
	wg.Wait()
	if inst, ok := set.insts[primary]; ok {
		p.probeOne(ctx, primary, inst)
	}
}

// probeOne probes one instance now and records the result.
func (p *prober) probeOne(ctx context.Context, name string, inst *topology.Instance) Observation {
	var epoch uint64
	if p.primary != nil {
		_, epoch = p.primary()
	}
	if p.slots != nil {
		// Waiting for a slot is not the instance's fault: the timeout
		// starts once the probe does.
		select {
		case p.slots <- struct{}{}:
			defer func() { <-p.slots }()
		case <-ctx.Done():
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.obs[name] // shutting down: not evidence
		}
	}
	pctx, cancel := context.WithTimeout(ctx, p.timeout)
	start := time.Now()
	snap, err := p.probe(pctx, name, inst)
	if p.observe != nil && ctx.Err() == nil {
		p.observe(time.Since(start))
	}
	cancel()
	now := time.Now()
	if p.now != nil {
		now = p.now()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := p.obs[name]
	var o Observation
	if err != nil {
		if ctx.Err() != nil {
			return prev // shutting down: not evidence
		}
		o = Observation{ObservedAt: now, Error: topology.Classify(err), ErrorDetail: err.Error(), FailingSince: prev.FailingSince,
			LastReachedAt: p.seen[name].ObservedAt}
		if o.Error == topology.ClassNone {
			o.Error = topology.ClassUnknown
		}
		if prev.Reachable || o.FailingSince.IsZero() {
			o.FailingSince = now
		}
	} else {
		o = p.fromSnapshot(snap, now, p.seen[name])
		o.LastReachedAt = now
		p.seen[name] = o
	}
	o.epoch = epoch
	p.obs[name] = o
	return o
}

func (p *prober) fromSnapshot(s *topology.Snapshot, now time.Time, prev Observation) Observation {
	exec := s.Executed
	own := exec.OwnedBy(s.ServerUUID, s.ServerID)
	o := Observation{
		ObservedAt: now, Reachable: true, ReadOnly: s.ReadOnly, SuperReadOnly: s.SuperReadOnly,
		ServerID: s.ServerID, Flavor: s.Flavor.String(), Executed: &exec, Own: &own, SemiSync: s.SemiSync,
		Questions: s.Questions, ThreadsConnected: s.ThreadsConnected, Latency: s.Latency,
		LogsReplicaUpdates: s.LogBin && s.LogReplicaUpdates,
	}
	if ss := s.SemiSync; ss.SourceEnabled && ss.SourceClients < ss.WaitForReplicaCount {
		o.SemiSyncShortSince = now
		if !prev.SemiSyncShortSince.IsZero() {
			o.SemiSyncShortSince = prev.SemiSyncShortSince
		}
	}
	if r := s.Replica; r != nil {
		ro := &ReplicaObservation{
			Source:  net.JoinHostPort(r.SourceHost, strconv.Itoa(r.SourcePort)),
			IOState: r.IOState, SQLRunning: r.SQLRunning, LastIOErrno: r.LastIOErrno, LastIOError: r.LastIOError, LastSQLError: r.LastSQLError,
			LagSeconds: r.SecondsBehind, SQLDelay: r.SQLDelay, HeartbeatPeriod: r.HeartbeatPeriod,
			ReceivedHeartbeats: r.ReceivedHeartbeats,
			ReadPosition:       r.SourceLogFile + ":" + strconv.FormatUint(r.ReadSourceLogPos, 10),
		}
		if name, ok := p.set().byAddr[ro.Source]; ok {
			ro.Source = name
		}
		if set, err := topology.ParseGTIDSet(s.Flavor, r.RetrievedGTID); err == nil && r.RetrievedGTID != "" {
			ro.Retrieved = &set
		}
		// Progress: the heartbeat counter or the read position moved since
		// the previous successful probe. A replica whose source is frozen
		// stops progressing even though its IO thread still says Yes.
		ro.LastProgressAt = now
		if pr := prev.Replica; pr != nil && pr.Source == ro.Source &&
			pr.ReceivedHeartbeats == ro.ReceivedHeartbeats && pr.ReadPosition == ro.ReadPosition {
			ro.LastProgressAt = pr.LastProgressAt
		}
		o.Replica = ro
	}
	return o
}

// get returns the latest observation of one instance.
func (p *prober) get(name string) (Observation, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o, ok := p.obs[name]
	return o, ok
}

// snapshot returns a copy of the latest observations.
func (p *prober) snapshot() map[string]Observation {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]Observation, len(p.obs))
	for k, v := range p.obs {
		out[k] = v
	}
	return out
}

// toProbe converts an observation for the failover core.
func (o Observation) toProbe() failover.Probe {
	pr := failover.Probe{
		ObservedAt: o.ObservedAt, Reachable: o.Reachable, Error: failover.ErrorClass(o.Error),
		ErrorDetail: o.ErrorDetail, FailingSince: o.FailingSince, LastReachedAt: o.LastReachedAt,
		ReadOnly: o.ReadOnly, SuperReadOnly: o.SuperReadOnly, LogsReplicaUpdates: o.LogsReplicaUpdates,
		SemiSync: failover.SemiSyncState{
			SourceEnabled: o.SemiSync.SourceEnabled, SourceActive: o.SemiSync.SourceActive,
			SourceClients: o.SemiSync.SourceClients, WaitPoint: o.SemiSync.WaitPoint,
			WaitNoReplica: o.SemiSync.WaitNoReplica, Timeout: time.Duration(o.SemiSync.TimeoutMillis) * time.Millisecond,
			WaitCount: o.SemiSync.WaitForReplicaCount, ShortSince: o.SemiSyncShortSince,
			ReplicaEnabled: o.SemiSync.ReplicaEnabled, ReplicaActive: o.SemiSync.ReplicaActive,
		},
	}
	if s := o.Stream; s != nil {
		pr.Stream = failover.Stream{Period: s.Period, HeardAt: s.HeardAt, Detail: s.Detail}
	}
	if o.Executed != nil {
		pr.Executed = wrapGTID(*o.Executed)
	}
	if o.Own != nil {
		pr.Own = wrapGTID(*o.Own)
	}
	if r := o.Replica; r != nil {
		rs := &failover.ReplicaStatus{
			Source: r.Source, IOState: failover.IOState(r.IOState), SQLRunning: r.SQLRunning,
			LastIOErrno: r.LastIOErrno, LastIOError: r.LastIOError, LastSQLError: r.LastSQLError,
			SQLDelay:           time.Duration(r.SQLDelay) * time.Second,
			HeartbeatPeriod:    time.Duration(r.HeartbeatPeriod * float64(time.Second)),
			ReceivedHeartbeats: r.ReceivedHeartbeats, ReadPosition: r.ReadPosition, LastProgressAt: r.LastProgressAt,
		}
		if r.LagSeconds != nil {
			d := time.Duration(*r.LagSeconds) * time.Second
			rs.Lag = &d
		}
		if r.Retrieved != nil {
			rs.Retrieved = wrapGTID(*r.Retrieved)
		}
		pr.Replica = rs
	}
	return pr
}

// localDial tells whether the local mysqld is there by dialling its socket or
// port, and returns the open connection when it answers.
//
// Only a refused TCP connection to the instance's own address is evidence
// that mysqld is gone (the fast path acts on it alone). A unix socket is
// weaker: its file may have been deleted by a tmp cleaner while mysqld serves
// (ENOENT), or left behind by a mysqld that moved it. So a socket that is
// missing or refuses is checked again over TCP at tcpAddr, and that dial
// decides; when it answers, its connection is the one held.
func localDial(ctx context.Context, network, addr, tcpAddr string, timeout time.Duration) (failover.LocalState, string, net.Conn) {
	state, detail, conn, err := dialOnce(ctx, network, addr, timeout)
	if network != "unix" || err == nil || tcpAddr == "" {
		return state, detail, conn
	}
	if !errors.Is(err, syscall.ENOENT) && topology.Classify(err) != topology.ClassRefused {
		return state, detail, conn
	}
	state, tcpDetail, conn, _ := dialOnce(ctx, "tcp", tcpAddr, timeout)
	if state == failover.LocalRunning {
		return state, fmt.Sprintf("socket %s: %v; mysqld answers on %s", addr, err, tcpAddr), conn
	}
	return state, fmt.Sprintf("socket %s: %v; %s", addr, err, tcpDetail), conn
}

// dialOnce dials once and classifies the result: refused is LocalGone (over
// TCP; localDial confirms a unix socket's refusal), a timeout or any other
// error LocalUnknown.
func dialOnce(ctx context.Context, network, addr string, timeout time.Duration) (failover.LocalState, string, net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, network, addr)
	if err == nil {
		return failover.LocalRunning, "", c, nil
	}
	if topology.Classify(err) == topology.ClassRefused {
		return failover.LocalGone, "connection refused on " + addr, nil, err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return failover.LocalUnknown, "no answer from " + addr + " within " + timeout.String(), nil, err
	}
	return failover.LocalUnknown, err.Error(), nil, err
}

// waitClosed reads (and ignores) what the server sends on conn until the
// server closes it or ctx ends.
func waitClosed(ctx context.Context, conn net.Conn) {
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	defer conn.Close()
	buf := make([]byte, 512)
	for {
		if _, err := conn.Read(buf); err != nil {
			return
		}
	}
}
