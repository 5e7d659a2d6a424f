package agent

import (
	"context"
	"crypto/tls"
	"sync"
	"time"

	"github.com/regentdb/regent/topology"
)

// primaryStream holds this agent's binlog stream to the cluster's recorded
// primary: a dump connection opened at the end of its binlog with a short
// heartbeat period (topology.WatchBinlog), whose packets date the
// primary's last sign of life from this agent's side (README "Detection").
// It follows the replicated state: a new primary gets a new stream.
type primaryStream struct {
	c      *clusterRT
	period time.Duration
	cfg    func(addr string) topology.WatchConfig
	// watch holds one stream until it breaks or ctx ends
	// (topology.WatchBinlog; a fake in the loop's test).
	watch func(ctx context.Context, cfg topology.WatchConfig, heard func(time.Time)) error

	mu      sync.Mutex
	target  string    // the instance streamed ("" none)
	heardAt time.Time // its latest packet
	detail  string    // why the stream is down ("" while up)
}

// newPrimaryStream builds the stream of a cluster: heartbeats every half
// probe interval (at least 50ms), the replication user's credentials and
// the agent's own MySQL TLS settings.
func newPrimaryStream(c *clusterRT, nodeID, user, password string, tlsCfg *tls.Config, connectTimeout time.Duration) *primaryStream {
	period := max(50*time.Millisecond, c.policy.ProbeInterval/2)
	id := topology.WatchServerID(nodeID)
	return &primaryStream{c: c, period: period, watch: topology.WatchBinlog, cfg: func(addr string) topology.WatchConfig {
		return topology.WatchConfig{Addr: addr, User: user, Password: password, TLS: tlsCfg, ServerID: id,
			Heartbeat: period, ConnectTimeout: connectTimeout}
	}}
}

// loop streams from the recorded primary until ctx ends, reconnecting
// after every break (at most once a heartbeat period) and moving to the
// new primary when the replicated state names one.
func (s *primaryStream) loop(ctx context.Context) {
	for ctx.Err() == nil {
		primary := ""
		if st := s.c.state(); st != nil {
			primary = st.Primary
		}
		addr := s.c.set().addrs[primary]
		if addr == "" {
			s.set("", time.Time{}, "no recorded primary")
			if !sleepCtx(ctx, s.period) {
				return
			}
			continue
		}
		s.switchTo(primary)
		sctx, cancel := context.WithCancel(ctx)
		moved := make(chan struct{})
		go func() {
			defer close(moved)
			s.followPrimary(sctx, cancel, primary)
		}()
		started := time.Now()
		err := s.watch(sctx, s.cfg(addr), func(at time.Time) { s.heard(primary, at) })
		cancel()
		<-moved
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.down(primary, err.Error())
			s.c.log.Debug("binlog stream from the primary ended", logInstance, primary, logErr, err)
		}
		if wait := s.period - time.Since(started); wait > 0 && !sleepCtx(ctx, wait) {
			return
		}
	}
}

// followPrimary cancels the stream when the replicated state names another
// primary, checking every heartbeat period.
func (s *primaryStream) followPrimary(ctx context.Context, cancel context.CancelFunc, primary string) {
	t := time.NewTicker(s.period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if st := s.c.state(); st == nil || st.Primary != primary {
				cancel()
				return
			}
		}
	}
}

func (s *primaryStream) switchTo(primary string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.target != primary {
		s.target, s.heardAt, s.detail = primary, time.Time{}, ""
	}
}

func (s *primaryStream) heard(primary string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.target == primary && at.After(s.heardAt) {
		s.heardAt, s.detail = at, ""
	}
}

func (s *primaryStream) down(primary, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.target == primary {
		s.detail = detail
	}
}

func (s *primaryStream) set(target string, at time.Time, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.target, s.heardAt, s.detail = target, at, detail
}

// observation returns the stream's state for the named instance's
// observation, nil when this agent does not stream it.
func (s *primaryStream) observation(name string) *StreamObservation {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.target != name || name == "" {
		return nil
	}
	return &StreamObservation{Period: s.period, HeardAt: s.heardAt, Detail: s.detail}
}

// sleepCtx waits d or until ctx ends; false when ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
