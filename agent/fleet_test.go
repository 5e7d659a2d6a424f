package agent

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regentdb/regent/config"
	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/topology/mysqlsim"
	"github.com/regentdb/regent/topology/mysqltest"
)

// simCluster is one replication cluster of simulated instances: its
// primary first.
type simCluster struct {
	name    string
	servers []*mysqlsim.Server
}

func (c simCluster) instance(i int) string { return fmt.Sprintf("%s-db%d", c.name, i+1) }

// withSimFleet adds n replication clusters of three simulated MariaDB
// instances each (topology/mysqlsim), none with an agent beside it, probed
// once a second, declared dead after 3 s of silence.
func withSimFleet(t *testing.T, n int) (harnessOpt, []simCluster) {
	t.Helper()
	f := mysqlsim.NewFleet()
	t.Cleanup(f.Close)
	var clusters []simCluster
	for c := range n {
		sc := simCluster{name: fmt.Sprintf("f%03d", c)}
		for i := range 3 {
			s, err := f.Start(mysqlsim.Options{ServerID: uint32(10000 + 3*c + i), User: mysqltest.AdminUser, Password: mysqltest.AdminPassword})
			if err != nil {
				t.Fatal(err)
			}
			sc.servers = append(sc.servers, s)
		}
		sc.servers[0].SetVariable("read_only", "OFF")
		if err := sc.servers[0].Write(10); err != nil {
			t.Fatal(err)
		}
		for _, r := range sc.servers[1:] {
			r.Replicate(sc.servers[0], 250*time.Millisecond)
		}
		clusters = append(clusters, sc)
	}
	return func(cfg *config.Config) {
		// Hundreds of probes a second on two cores under -race: a dial
		// may wait for the CPU longer than the harness's 300ms, and a
		// probe round longer than its 150ms period.
		cfg.MySQL.ConnectTimeout = 2 * time.Second
		pol := harnessPolicy()
		pol.ProbeInterval, pol.ObservationTTL, pol.FailureTimeout = time.Second, 4*time.Second, 3*time.Second
		for _, sc := range clusters {
			cc := config.ClusterConfig{Name: sc.name, Policy: pol}
			for i, s := range sc.servers {
				cc.Instances = append(cc.Instances, config.InstanceConfig{Name: sc.instance(i), Address: s.Addr()})
			}
			cfg.Clusters = append(cfg.Clusters, cc)
		}
	}, clusters
}

// 30 clusters (90 simulated instances, each probed by three agents in this
// one process): at 67 the three agents under -race on two cores starved
// their own probes and Raft, and the leader recorded a third of the
// clusters in a minute: a fleet of that size needs processes of its own
// (issue 15's fleet benchmark, not built yet).
//
// A correlated failure across a fleet: the primaries of 10 of 30 simulated
// clusters die at once. Each of the 10 fails over on its own, to one of its
// replicas, with the other replica repointed under it, at most
// max_parallel_operations (2) at a time and more than one at a time; none
// of the other clusters moves; and Regent sent the emulation nothing it
// does not emulate.
func TestFleetCorrelatedFailovers(t *testing.T) {
	const clusters, dead, parallel = 30, 10, 2
	opt, fleet := withSimFleet(t, clusters)
	h := newHarness(t, mysqltest.MariaDB, opt, func(c *config.Config) { c.MaxParallelOperations = parallel })
	for _, sc := range fleet {
		h.eventually(sc.name+" has its first primary", 60*time.Second, func() (bool, string) {
			st := h.clusterNamed(sc.name)
			return st.Primary == sc.instance(0), fmt.Sprintf("primary %q epoch %d", st.Primary, st.Epoch)
		})
	}
	for _, sc := range fleet[:dead] {
		sc.servers[0].Stop()
	}
	for _, sc := range fleet[:dead] {
		h.eventually(sc.name+" fails over", 60*time.Second, func() (bool, string) {
			st := h.clusterNamed(sc.name)
			return st.Epoch == 2 && st.Primary != sc.instance(0) && st.Operation == nil, fmt.Sprintf("primary %q epoch %d operation %v", st.Primary, st.Epoch, st.Operation != nil)
		})
	}
	for k, sc := range fleet {
		st := h.clusterNamed(sc.name)
		if k >= dead {
			if st.Epoch != 1 || st.Primary != sc.instance(0) {
				t.Errorf("%s, whose primary lives, moved: primary %s epoch %d", sc.name, st.Primary, st.Epoch)
			}
			continue
		}
		var promoted, other *mysqlsim.Server
		for i, s := range sc.servers[1:] {
			if sc.instance(i+1) == st.Primary {
				promoted = s
			} else {
				other = s
			}
		}
		if promoted == nil || promoted.ReadOnly() || promoted.Source() != "" {
			t.Errorf("%s: the new primary %s is not a writable non-replica", sc.name, st.Primary)
			continue
		}
		h.eventually(sc.name+"'s other replica under the new primary", 30*time.Second, func() (bool, string) {
			return other.Source() == promoted.Addr(), "source " + other.Source()
		})
	}
	// The operations' spans, from the replicated history: never more than
	// the bound at once, and more than one at once.
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, sc := range fleet[:dead] {
		for _, e := range h.clusterNamed(sc.name).History {
			if e.Automatic {
				edges = append(edges, edge{e.StartedAt, 1}, edge{e.EndedAt, -1})
			}
		}
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.delta - b.delta // an end before a start at the same instant
	})
	most, now := 0, 0
	for _, e := range edges {
		now += e.delta
		most = max(most, now)
	}
	// Left unbounded, 4 of the 10 overlapped here.
	if most != parallel {
		t.Errorf("at most %d automatic operations ran at once, want %d (max_parallel_operations: the bound reached, never passed)", most, parallel)
	}
	for _, sc := range fleet {
		for i, s := range sc.servers {
			if u := s.Unhandled(); len(u) > 0 {
				t.Errorf("%s: Regent sent statements the emulation does not emulate: %q", sc.instance(i), u)
			}
		}
	}
}

// The emulation decides as a real cluster does: an agentless real MariaDB
// cluster and an agentless simulated one, under the same agents, both lose
// their primary (kill -9 and its emulation); Regent fails both over with
// the same steps, each to a replica, each result a success.
func TestSimulatedClusterFailsOverLikeARealOne(t *testing.T) {
	other := mysqltest.StartCluster(t, mysqltest.MariaDB, 2)
	mysqltest.EnsureTable(t, other.Primary)
	opt, fleet := withSimFleet(t, 1)
	sim := fleet[0]
	h := newHarness(t, mysqltest.MariaDB, withCluster("other", "o", other), opt, func(c *config.Config) {
		// The real cluster on the simulated ones' timings.
		for k := range c.Clusters {
			if c.Clusters[k].Name == "other" {
				c.Clusters[k].Policy = c.Clusters[len(c.Clusters)-1].Policy
			}
		}
	})
	h.waitRecorded()
	for name, primary := range map[string]string{"other": "op", sim.name: sim.instance(0)} {
		h.eventually(name+" has its first primary", 30*time.Second, func() (bool, string) {
			st := h.clusterNamed(name)
			return st.Primary == primary, fmt.Sprintf("primary %q", st.Primary)
		})
	}
	other.Primary.Kill(t)
	sim.servers[0].Stop()
	steps := map[string][]string{}
	for name, old := range map[string]string{"other": "op", sim.name: sim.instance(0)} {
		h.eventually(name+" fails over", 60*time.Second, func() (bool, string) {
			st := h.clusterNamed(name)
			return st.Epoch == 2 && st.Primary != old && st.Operation == nil, fmt.Sprintf("primary %q epoch %d", st.Primary, st.Epoch)
		})
		for _, e := range h.clusterNamed(name).History {
			if e.EpochAfter != 2 {
				continue
			}
			if e.Result != consensus.ResultSuccess {
				t.Errorf("%s: the failover ended %s: %s", name, e.Result, e.Reason)
			}
			for _, s := range e.Steps {
				kind, _, _ := strings.Cut(s.Name, " ")
				steps[name] = append(steps[name], kind+" "+string(s.Result))
			}
		}
	}
	if !slices.Equal(steps["other"], steps[sim.name]) {
		t.Errorf("the failovers differ:\nreal      %v\nsimulated %v", steps["other"], steps[sim.name])
	}
	if len(steps["other"]) == 0 {
		t.Errorf("no failover recorded")
	}
}
