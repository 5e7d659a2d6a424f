package mysqlsim

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/regentdb/regent/topology"
	"github.com/regentdb/regent/topology/mysqltest"
)

// pair is a primary and its replica, real or simulated, as Regent's
// topology package reaches them.
type pair struct {
	name             string
	primary, replica *topology.Instance
	primaryHost      string
	primaryPort      int
	write            func(t *testing.T, n int)
	unhandled        func() []string
}

func openInstance(t *testing.T, addr, user, password string) *topology.Instance {
	t.Helper()
	i, err := topology.Open(topology.ConnConfig{Addr: addr, User: user, Password: password,
		ConnectTimeout: time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = i.Close() })
	return i
}

func realPair(t *testing.T) pair {
	c := mysqltest.StartCluster(t, mysqltest.MariaDB, 1)
	mysqltest.EnsureTable(t, c.Primary)
	next := 0
	return pair{
		name:        "MariaDB",
		primary:     openInstance(t, c.Primary.Addr(), mysqltest.AdminUser, mysqltest.AdminPassword),
		replica:     openInstance(t, c.Replicas[0].Addr(), mysqltest.AdminUser, mysqltest.AdminPassword),
		primaryHost: c.Primary.Host, primaryPort: c.Primary.Port,
		write: func(t *testing.T, n int) {
			for range n {
				next++
				c.Primary.Exec(t, fmt.Sprintf("INSERT INTO regent_test.writes (id) VALUES (%d)", next))
			}
		},
		unhandled: func() []string { return nil },
	}
}

// simServers starts a writable simulated primary and its replica, with
// a heartbeat period.
func simServers(t *testing.T, heartbeat time.Duration) (p, r *Server) {
	t.Helper()
	f := NewFleet()
	t.Cleanup(f.Close)
	var err error
	if p, err = f.Start(Options{ServerID: 101, User: mysqltest.AdminUser, Password: mysqltest.AdminPassword}); err != nil {
		t.Fatal(err)
	}
	if r, err = f.Start(Options{ServerID: 102, User: mysqltest.AdminUser, Password: mysqltest.AdminPassword}); err != nil {
		t.Fatal(err)
	}
	p.SetVariable("read_only", "OFF")
	r.Replicate(p, heartbeat)
	return p, r
}

func simPair(t *testing.T) pair {
	p, r := simServers(t, time.Second)
	host, portText, _ := net.SplitHostPort(p.Addr())
	port, _ := strconv.Atoi(portText)
	return pair{
		name:        "mysqlsim",
		primary:     openInstance(t, p.Addr(), mysqltest.AdminUser, mysqltest.AdminPassword),
		replica:     openInstance(t, r.Addr(), mysqltest.AdminUser, mysqltest.AdminPassword),
		primaryHost: host, primaryPort: port,
		write: func(t *testing.T, n int) {
			if err := p.Write(n); err != nil {
				t.Fatal(err)
			}
		},
		unhandled: func() []string { return append(p.Unhandled(), r.Unhandled()...) },
	}
}

// reading is what Regent's decisions read of a probe.
type reading struct {
	Flavor                              topology.Flavor
	Writable, LogBin, LogReplicaUpdates bool
	GTIDStrict                          bool
	Replica                             bool
	IO                                  topology.IOState
	SQL, AutoPosition, Heartbeats       bool
	SourceEnabled, ReplicaEnabled       bool
	Clients                             int
}

func read(t *testing.T, i *topology.Instance) reading {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := i.Probe(ctx)
	if err != nil {
		t.Fatalf("probe %s: %v", i.Addr(), err)
	}
	r := reading{Flavor: s.Flavor, Writable: s.Writable(), LogBin: s.LogBin, LogReplicaUpdates: s.LogReplicaUpdates, GTIDStrict: s.GTIDStrict,
		SourceEnabled: s.SemiSync.SourceEnabled, ReplicaEnabled: s.SemiSync.ReplicaEnabled, Clients: s.SemiSync.SourceClients}
	if rs := s.Replica; rs != nil {
		r.Replica, r.IO, r.SQL, r.AutoPosition, r.Heartbeats = true, rs.IOState, rs.SQLRunning, rs.AutoPosition, rs.HeartbeatPeriod > 0
	}
	return r
}

// until polls cond for up to 10 s.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The emulation is honest where Regent looks: the same calls of Regent's
// topology package against a real MariaDB primary and replica and against
// simulated ones read the same, step by step, and the emulation was sent
// nothing it does not emulate.
func TestSimulatedServerReadsLikeMariaDB(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pairs := []pair{realPair(t), simPair(t)}
	type step struct {
		name string
		do   func(t *testing.T, p pair)
		// settle, when set, is polled on each until it holds.
		settle func(p pair) bool
	}
	steps := []step{
		{name: "as set up", do: func(*testing.T, pair) {}, settle: func(p pair) bool { return read(t, p.replica).IO == topology.IORunning }},
		{name: "writes reach the replica", do: func(t *testing.T, p pair) {
			p.write(t, 5)
			set, err := p.primary.Executed(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.replica.WaitForGTID(ctx, set, 5*time.Second); err != nil {
				t.Fatalf("%s: the replica did not reach %s: %v", p.name, set, err)
			}
			got, err := p.replica.Executed(ctx)
			if err != nil || !got.Contains(set) {
				t.Fatalf("%s: replica holds %s (%v), primary %s", p.name, got, err, set)
			}
		}},
		{name: "lossless semi-sync configured", do: func(t *testing.T, p pair) {
			if err := p.primary.SetSemiSync(ctx, topology.SemiSyncConfig{Source: true, Lossless: true}); err != nil {
				t.Fatalf("%s: %v", p.name, err)
			}
			if err := p.replica.SetSemiSync(ctx, topology.SemiSyncConfig{Replica: true}); err != nil {
				t.Fatalf("%s: %v", p.name, err)
			}
		}, settle: func(p pair) bool { return read(t, p.primary).Clients == 1 }},
		{name: "IO thread stopped", do: func(t *testing.T, p pair) {
			if err := p.replica.StopReplica(ctx, topology.ThreadIO); err != nil {
				t.Fatalf("%s: %v", p.name, err)
			}
		}, settle: func(p pair) bool { return read(t, p.primary).Clients == 0 }},
		{name: "repointed with a heartbeat and started", do: func(t *testing.T, p pair) {
			err := p.replica.ChangeSource(ctx, topology.ChangeSourceOptions{Host: p.primaryHost, Port: p.primaryPort,
				User: mysqltest.ReplUser, Password: mysqltest.ReplPassword, HeartbeatPeriod: 500 * time.Millisecond, ConnectRetry: time.Second})
			if err != nil {
				t.Fatalf("%s: %v", p.name, err)
			}
			if err := p.replica.StartReplica(ctx, topology.ThreadsBoth); err != nil {
				t.Fatalf("%s: %v", p.name, err)
			}
		}, settle: func(p pair) bool {
			r := read(t, p.replica)
			return r.IO == topology.IORunning && read(t, p.primary).Clients == 1
		}},
		{name: "primary made read-only", do: func(t *testing.T, p pair) {
			if err := p.primary.SetReadOnly(ctx, true); err != nil {
				t.Fatalf("%s: %v", p.name, err)
			}
		}},
		{name: "replica promoted: replication reset, writable", do: func(t *testing.T, p pair) {
			if err := p.replica.StopReplica(ctx, topology.ThreadsBoth); err != nil {
				t.Fatalf("%s: %v", p.name, err)
			}
			if err := p.replica.ResetReplication(ctx); err != nil {
				t.Fatalf("%s: %v", p.name, err)
			}
			if err := p.replica.SetReadOnly(ctx, false); err != nil {
				t.Fatalf("%s: %v", p.name, err)
			}
		}},
	}
	for _, s := range steps {
		var got [2][2]reading
		for k, p := range pairs {
			s.do(t, p)
			if s.settle != nil {
				until(t, p.name+": "+s.name, func() bool { return s.settle(p) })
			}
			got[k] = [2]reading{read(t, p.primary), read(t, p.replica)}
		}
		got[1][0].Flavor, got[1][1].Flavor = got[0][0].Flavor, got[0][1].Flavor // both MariaDB: checked below
		if got[0] != got[1] {
			t.Errorf("%s: MariaDB reads\n  primary %+v\n  replica %+v\nthe emulation\n  primary %+v\n  replica %+v",
				s.name, got[0][0], got[0][1], got[1][0], got[1][1])
		}
	}
	if f := read(t, pairs[1].primary).Flavor; f != topology.FlavorMariaDB {
		t.Errorf("the emulation reads as flavour %v, want MariaDB", f)
	}
	if u := pairs[1].unhandled(); len(u) > 0 {
		t.Errorf("Regent sent the emulation statements it does not emulate: %q", u)
	}
}

// The faults read as Regent's error classes read the real ones: a stopped
// server refuses, a frozen one times out, and its replica reconnects with a
// connection error until its source is back, then catches up.
func TestFaults(t *testing.T) {
	ctx := context.Background()
	probe := func(i *topology.Instance) error {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		_, err := i.Probe(pctx)
		return err
	}
	sim, rep := simServers(t, 500*time.Millisecond)
	i := openInstance(t, sim.Addr(), mysqltest.AdminUser, mysqltest.AdminPassword)
	r := openInstance(t, rep.Addr(), mysqltest.AdminUser, mysqltest.AdminPassword)
	if err := probe(i); err != nil {
		t.Fatal(err)
	}
	sim.Freeze()
	if err := probe(i); topology.Classify(err) != topology.ClassTimeout {
		t.Errorf("frozen: %v (class %v), want a timeout", err, topology.Classify(err))
	}
	sim.Thaw()
	sim.Stop()
	if err := probe(i); topology.Classify(err) != topology.ClassRefused {
		t.Errorf("stopped: %v (class %v), want refused", err, topology.Classify(err))
	}
	if got := read(t, r); got.IO != topology.IOConnecting {
		t.Errorf("the replica of a stopped source reads IO %q, want Connecting", got.IO)
	}
	if err := sim.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, i); got.Writable {
		t.Errorf("a restarted server came back writable")
	}
	sim.SetVariable("read_only", "OFF")
	if err := sim.Write(3); err != nil {
		t.Fatal(err)
	}
	until(t, "the replica catches up after the restart", func() bool {
		return read(t, r).IO == topology.IORunning && rep.Executed() == sim.Executed()
	})
	if u := append(sim.Unhandled(), rep.Unhandled()...); len(u) > 0 {
		t.Errorf("statements not emulated: %q", u)
	}
}

func TestSplitStatements(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"SELECT 1", []string{"SELECT 1"}},
		{"SELECT 1;", []string{"SELECT 1"}},
		{"", []string{""}},
		{"SHOW GLOBAL STATUS; SHOW ALL SLAVES STATUS ;", []string{"SHOW GLOBAL STATUS", "SHOW ALL SLAVES STATUS"}},
		{`CHANGE MASTER TO MASTER_PASSWORD='a;b\';c'; SELECT 1`, []string{`CHANGE MASTER TO MASTER_PASSWORD='a;b\';c'`, "SELECT 1"}},
		{"SELECT `a;b` FROM t; SELECT \"x;\"", []string{"SELECT `a;b` FROM t", `SELECT "x;"`}},
	}
	for _, c := range cases {
		if got := splitStatements(c.in); !slices.Equal(got, c.want) {
			t.Errorf("splitStatements(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
