package consensus

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// Benchmarks run three agents over real loopback TCP with mutual TLS and the
// production timings (DefaultConfig: 500/500/250/20 ms). They are benchmarks,
// not tests: timing targets are reported, never asserted.
//
//	go test -run '^$' -bench . ./consensus/

func productionTimings(cfg *Config) {
	d := DefaultConfig()
	cfg.HeartbeatTimeout, cfg.ElectionTimeout = d.HeartbeatTimeout, d.ElectionTimeout
	cfg.LeaderLeaseTimeout, cfg.CommitTimeout = d.LeaderLeaseTimeout, d.CommitTimeout
	cfg.ApplyTimeout, cfg.TransportTimeout = d.ApplyTimeout, d.TransportTimeout
}

func benchCluster(b *testing.B, transfer bool) *cluster {
	ca := newTestCA(b, "regent")
	return newTCPCluster(b, 3, func(i int) TLSConfig { return ca.issue(fmt.Sprintf("n%d", i+1), "127.0.0.1") },
		func(cfg *Config) {
			productionTimings(cfg)
			cfg.TransferLeadershipOnClose = transfer
		})
}

// BenchmarkLeaderFailover: the leader is stopped without handing over (as
// when its agent dies); time until a survivor is leader. At least 10 runs;
// the stopped agent is restarted from its data directory between runs.
func BenchmarkLeaderFailover(b *testing.B) { benchLeaderChange(b, false) }

// BenchmarkLeaderHandover: the leader closes gracefully (Close transfers
// leadership first); time until a survivor is leader.
func BenchmarkLeaderHandover(b *testing.B) { benchLeaderChange(b, true) }

func benchLeaderChange(b *testing.B, transfer bool) {
	c := benchCluster(b, transfer)
	c.mustPropose(InitCluster{Cluster: "c1", At: at(0)})
	runs := max(b.N, 10)
	var took []time.Duration
	b.ResetTimer()
	for range runs {
		old := c.waitLeader()
		var chans []<-chan Leadership
		var cancels []func()
		for _, i := range c.running() {
			if i != old {
				ch, cancel := c.nodes[i].WatchLeadership()
				chans, cancels = append(chans, ch), append(cancels, cancel)
			}
		}
		start := time.Now()
		c.stop(old)
		took = append(took, waitAnyLeader(b, chans).Sub(start))
		for _, cancel := range cancels {
			cancel()
		}
		c.startTCP(old)
		c.waitLeader()
	}
	b.StopTimer()
	slices.Sort(took)
	median := took[len(took)/2]
	if len(took)%2 == 0 {
		median = (took[len(took)/2-1] + took[len(took)/2]) / 2
	}
	b.ReportMetric(float64(median.Nanoseconds()), "ns/op")
	b.ReportMetric(float64(median.Milliseconds()), "ms-median-to-leader")
	b.ReportMetric(float64(took[0].Milliseconds()), "ms-min")
	b.ReportMetric(float64(took[len(took)-1].Milliseconds()), "ms-max")
	b.ReportMetric(float64(len(took)), "runs")
	b.Logf("time to a new leader over %d runs: %v", len(took), took)
}

// waitAnyLeader returns the moment one of the channels reports leadership.
func waitAnyLeader(b *testing.B, chans []<-chan Leadership) time.Time {
	timeout := time.After(30 * time.Second)
	for {
		for _, ch := range chans {
			select {
			case ev := <-ch:
				if ev.IsLeader {
					return ev.At
				}
			default:
			}
		}
		select {
		case <-timeout:
			b.Fatal("no new leader within 30s")
			return time.Time{}
		case <-time.After(time.Millisecond):
		}
	}
}

// BenchmarkProposeLatency: one command at a time, proposed on the leader and
// answered by its FSM once a majority has it (ns/op is the commit latency).
func BenchmarkProposeLatency(b *testing.B) {
	c := benchCluster(b, false)
	c.mustPropose(InitCluster{Cluster: "c1", At: at(0)})
	l := c.waitLeader()
	n := c.nodes[l]
	lat := make([]time.Duration, 0, b.N)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := n.Propose(ctx, SetAntiFlap{Cluster: "c1", Until: at(i)}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "µs-p50")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "µs-p99")
}
