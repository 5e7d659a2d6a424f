package consensus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// TestCloseLeavesNoGoroutines starts a TLS cluster, exercises it (commits,
// leadership watchers, a rejected handshake, a leader change), closes every
// node twice — concurrently — and checks that no goroutine of Raft or this
// package survives.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	if g := waitNoGoroutines(5 * time.Second); g != "" {
		t.Fatalf("goroutines left by earlier tests:\n%s", g)
	}
	ca := newTestCA(t, "regent")
	rogue := newTestCA(t, "rogue")
	c := newTCPCluster(t, 3, func(i int) TLSConfig { return ca.issue(fmt.Sprintf("n%d", i+1), "127.0.0.1") },
		func(cfg *Config) { cfg.TransferLeadershipOnClose = true })
	for _, i := range c.running() {
		_, cancel := c.nodes[i].WatchLeadership() // one left open: Close closes it
		_ = cancel
	}
	c.mustPropose(InitCluster{Cluster: "c1", At: at(0)})
	l := c.waitLeader()
	// A handshake that fails.
	bad := rogue.issue("x", "127.0.0.1")
	_ = tlsExchange(c.cfgs[l].RaftAddr, mustLoadTLS(t, bad, "x").client)
	// A proposal in flight while the leader closes.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			_, _ = c.nodes[l].Propose(context.Background(), SetAntiFlap{Cluster: "c1", Until: at(1)})
		}
	}()
	nodes := append([]*Node(nil), c.nodes...)
	for _, n := range nodes {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := n.Close(ctx); err != nil {
					t.Errorf("close %s: %v", n.ID(), err)
				}
			}()
		}
	}
	wg.Wait()
	for i := range c.nodes {
		c.nodes[i] = nil
	}
	if g := waitNoGoroutines(10 * time.Second); g != "" {
		t.Fatalf("goroutines left behind:\n%s", g)
	}
	// Calls after Close fail cleanly.
	n := nodes[0]
	if _, err := n.Propose(context.Background(), InitCluster{Cluster: "x", At: at(0)}); !errors.Is(err, ErrClosed) {
		t.Errorf("Propose after Close = %v", err)
	}
	if err := n.Barrier(context.Background()); err == nil {
		t.Error("Barrier after Close succeeded")
	}
	if ch, _ := n.WatchLeadership(); ch != nil {
		if _, ok := <-ch; ok {
			if _, ok := <-ch; ok {
				t.Error("WatchLeadership after Close: channel not closed")
			}
		}
	}
}

func TestWatchLeadershipNeverBlocks(t *testing.T) {
	c := newInmemCluster(t, 1, nil)
	n := c.nodes[0]
	slow, cancelSlow := n.WatchLeadership() // never read until the end
	defer cancelSlow()
	c.waitLeader()
	// Flip leadership by hand a few times through the same path Raft uses.
	for i := range 50 {
		n.notifyCh <- i%2 == 0
	}
	c.mustPropose(InitCluster{Cluster: "c1", At: at(0)}) // Raft is not blocked
	waitFor(t, 5*time.Second, "the notifications to drain", func() bool { return len(n.notifyCh) == 0 })
	// The slow subscriber holds only the latest state.
	var got []Leadership
	for len(slow) > 0 {
		got = append(got, <-slow)
	}
	if len(got) != 1 {
		t.Fatalf("slow subscriber holds %d values, want 1", len(got))
	}
	cancelSlow()
	cancelSlow() // twice is fine
	if _, ok := <-slow; ok {
		t.Error("channel open after cancel")
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := DefaultConfig()
		c.NodeID, c.RaftAddr, c.DataDir = "n1", "10.0.0.1:7000", "/var/lib/regent"
		c.Peers = []Peer{{ID: "n1", RaftAddr: "10.0.0.1:7000"}, {ID: "n2", RaftAddr: "10.0.0.2:7000"}, {ID: "n3", RaftAddr: "10.0.0.3:7000"}}
		c.TLS = TLSConfig{CAFile: "ca", CertFile: "cert", KeyFile: "key"}
		return c
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	d := DefaultConfig()
	if d.HeartbeatTimeout != 500*time.Millisecond || d.ElectionTimeout != 500*time.Millisecond || d.LeaderLeaseTimeout != 250*time.Millisecond || d.CommitTimeout != 20*time.Millisecond {
		t.Errorf("defaults drifted from 500/500/250/20 ms: %+v", d)
	}
	tests := []struct {
		name   string
		edit   func(*Config)
		fields []string
	}{
		{"empty node id", func(c *Config) { c.NodeID = ""; c.Peers = nil }, []string{"NodeID"}},
		{"node id with a space", func(c *Config) { c.NodeID = "n 1"; c.Peers = nil }, []string{"NodeID"}},
		{"raft address without a port", func(c *Config) { c.RaftAddr = "10.0.0.1"; c.Peers = nil }, []string{"RaftAddr"}},
		{"wildcard raft address", func(c *Config) { c.RaftAddr = "0.0.0.0:7000"; c.Peers = nil }, []string{"RaftAddr"}},
		{"port zero", func(c *Config) { c.RaftAddr = "10.0.0.1:0"; c.Peers = nil }, []string{"RaftAddr"}},
		{"bad bind address", func(c *Config) { c.BindAddr = "nope" }, []string{"BindAddr"}},
		{"bad api address", func(c *Config) { c.APIAddr = "nope" }, []string{"APIAddr"}},
		{"no data dir", func(c *Config) { c.DataDir = "" }, []string{"DataDir"}},
		{"peers without this node", func(c *Config) { c.Peers = c.Peers[1:] }, []string{"Peers"}},
		{"peer address differs for this node", func(c *Config) { c.Peers[0].RaftAddr = "10.0.0.9:7000" }, []string{"Peers[0].RaftAddr"}},
		{"duplicate peer id", func(c *Config) { c.Peers[2].ID = "n2" }, []string{"Peers[2].ID"}},
		{"duplicate peer address", func(c *Config) { c.Peers[2].RaftAddr = "10.0.0.2:7000" }, []string{"Peers[2].RaftAddr"}},
		{"TLS without a key", func(c *Config) { c.TLS.KeyFile = "" }, []string{"TLS.KeyFile"}},
		{"TLS with only a CA", func(c *Config) { c.TLS.CertFile, c.TLS.KeyFile = "", "" }, []string{"TLS.CertFile", "TLS.KeyFile"}},
		{"heartbeat too short, and now below lease and commit", func(c *Config) { c.HeartbeatTimeout = time.Millisecond },
			[]string{"HeartbeatTimeout", "LeaderLeaseTimeout", "CommitTimeout"}},
		{"election shorter than heartbeat", func(c *Config) { c.ElectionTimeout = 100 * time.Millisecond }, []string{"ElectionTimeout"}},
		{"lease longer than heartbeat", func(c *Config) { c.LeaderLeaseTimeout = time.Second }, []string{"LeaderLeaseTimeout"}},
		{"commit not below heartbeat", func(c *Config) { c.CommitTimeout = time.Second }, []string{"CommitTimeout"}},
		{"no apply timeout", func(c *Config) { c.ApplyTimeout = 0 }, []string{"ApplyTimeout"}},
		{"no transport timeout", func(c *Config) { c.TransportTimeout = 0 }, []string{"TransportTimeout"}},
		{"no pool", func(c *Config) { c.MaxPool = 0 }, []string{"MaxPool"}},
		{"no snapshot threshold", func(c *Config) { c.SnapshotThreshold = 0 }, []string{"SnapshotThreshold"}},
		{"no snapshots retained", func(c *Config) { c.SnapshotRetain = 0 }, []string{"SnapshotRetain"}},
		{"several problems at once", func(c *Config) { c.MaxPool = 0; c.DataDir = "" }, []string{"DataDir", "MaxPool"}},
		{"no TLS and no insecure setting", func(c *Config) { c.TLS = TLSConfig{} }, []string{"TLS"}},
		{"TLS and the insecure setting", func(c *Config) { c.InsecurePlaintext = true }, []string{"InsecurePlaintext"}},
		{"join peers with peers", func(c *Config) { c.JoinPeers = c.Peers[1:] }, []string{"JoinPeers"}},
		{"a join peer without an address", func(c *Config) { c.Peers, c.JoinPeers = nil, []Peer{{ID: "n2"}} }, []string{"JoinPeers[0].RaftAddr"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.edit(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			var got []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var ce *ConfigError
				if !errors.As(e, &ce) {
					t.Fatalf("%v is not a ConfigError", e)
				}
				got = append(got, ce.Field)
			}
			if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
				t.Errorf("fields %v, want %v (%v)", got, tt.fields, err)
			}
		})
	}
}

func TestStartWithRejectsPartialInfra(t *testing.T) {
	cfg := DefaultConfig()
	cfg.NodeID, cfg.RaftAddr = "n1", "127.0.0.1:7000"
	_, err := StartWith(context.Background(), cfg, nil, Infra{LogStore: raft.NewInmemStore()})
	if err == nil || !strings.Contains(err.Error(), "all of") {
		t.Fatalf("error = %v", err)
	}
}

func TestHCLogAdapter(t *testing.T) {
	sink := newLogSink(t, "hclog")
	var l hclog.Logger = newHCLogAdapter(sink.logger(levelTrace), "raft")
	l = l.With("term", 3).Named("net")
	l.Info("hello", "peer", "n2", "dangling")
	l.Trace("tracing", "x", hclog.Fmt("%d-%s", 7, "y"))
	l.Error("failed to decode incoming command", "error", fmt.Errorf("read: %w", net.ErrClosed))
	l.ResetNamed("other").Warn("warned", 42, "non-string key")
	out := sink.String()
	for _, want := range []string{
		`"msg":"hello","component":"raft.net","term":3,"peer":"n2","EXTRA_VALUE_AT_END":"dangling"`,
		`"level":"DEBUG-4","msg":"tracing","component":"raft.net","term":3,"x":"7-y"`,
		`"level":"DEBUG","msg":"failed to decode incoming command"`, // closed connection: expected at shutdown
		`"level":"WARN","msg":"warned","component":"other","term":3,"42":"non-string key"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s\n%s", want, out)
		}
	}
	if l.Name() != "raft.net" || len(l.ImpliedArgs()) != 2 {
		t.Errorf("name %q implied %v", l.Name(), l.ImpliedArgs())
	}
	l.SetLevel(hclog.Warn)
	if l.IsInfo() || !l.IsWarn() || l.GetLevel() != hclog.Warn {
		t.Error("SetLevel ignored")
	}
	l.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Error}).Print("from the std logger\nsecond line")
	if !strings.Contains(sink.String(), "second line") {
		t.Errorf("standard logger output lost:\n%s", sink.String())
	}
	quiet := newHCLogAdapter(slog.New(slog.DiscardHandler), "raft")
	if quiet.IsError() {
		t.Error("a discarding handler reports enabled")
	}
}
