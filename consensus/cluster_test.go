package consensus

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestInmemElection(t *testing.T) {
	c := newInmemCluster(t, 3, nil)
	l := c.waitLeader()

	// Leadership notifications: the leader's channel says so.
	ch, cancel := c.nodes[l].WatchLeadership()
	defer cancel()
	select {
	case ev := <-ch:
		if !ev.IsLeader || ev.Term == 0 {
			t.Errorf("leader's first notification = %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no leadership notification")
	}

	// The new leader records every initial peer in the member table, so a
	// follower can point at the leader's API.
	f := (l + 1) % 3
	waitFor(t, 5*time.Second, "member table on a follower", func() bool { return len(c.nodes[f].Members()) == 3 })
	_, err := c.nodes[f].Propose(context.Background(), InitCluster{Cluster: "c1", At: at(0)})
	var nl *NotLeaderError
	if !errors.As(err, &nl) || !errors.Is(err, ErrNotLeader) {
		t.Fatalf("follower propose error = %v, want a NotLeaderError", err)
	}
	if nl.LeaderID != c.cfgs[l].NodeID || nl.LeaderAddr != c.cfgs[l].RaftAddr || nl.LeaderAPIAddr != c.cfgs[l].APIAddr {
		t.Errorf("NotLeaderError = %+v, want leader %s at %s, api %s", nl, c.cfgs[l].NodeID, c.cfgs[l].RaftAddr, c.cfgs[l].APIAddr)
	}
	if m, ok := c.nodes[f].State().InstanceOwner("db2"); !ok || m.ID != "n2" {
		t.Errorf("owner of db2 = %+v, %v", m, ok)
	}

	s := c.nodes[l].Stats()
	if !s.IsLeader || s.State != "Leader" || s.Voters != 3 || s.Term == 0 || s.CommitIndex == 0 || s.LeaderID != c.cfgs[l].NodeID {
		t.Errorf("leader stats = %+v", s)
	}
	if err := c.nodes[l].VerifyLeader(context.Background()); err != nil {
		t.Errorf("VerifyLeader on the leader: %v", err)
	}
	if err := c.nodes[f].VerifyLeader(context.Background()); !errors.Is(err, ErrNotLeader) {
		t.Errorf("VerifyLeader on a follower = %v, want ErrNotLeader", err)
	}
}

func TestInmemLeaderLossAndReelection(t *testing.T) {
	c := newInmemCluster(t, 3, nil)
	c.mustPropose(InitCluster{Cluster: "c1", Primary: "db1", At: at(0)})
	old := c.waitLeader()

	// The followers' leadership channels report the new leader.
	var watchers []<-chan Leadership
	for _, i := range c.running() {
		if i != old {
			ch, cancel := c.nodes[i].WatchLeadership()
			defer cancel()
			watchers = append(watchers, ch)
		}
	}
	c.stop(old)
	l := c.waitLeader()
	if l == old {
		t.Fatal("stopped node still leader")
	}
	gotTrue := false
	for _, ch := range watchers {
		for drained := false; !drained; {
			select {
			case ev := <-ch:
				gotTrue = gotTrue || ev.IsLeader
			default:
				drained = true
			}
		}
	}
	if !gotTrue {
		t.Error("no follower was notified of its leadership")
	}

	out := c.mustPropose(SetPaused{Cluster: "c1", Paused: true, By: "test", At: at(1)})
	for _, i := range c.running() {
		c.waitApplied(i, out.Index)
		cl, ok := c.nodes[i].Cluster("c1")
		if !ok || cl.Primary != "db1" || !cl.Paused {
			t.Errorf("%s sees %+v", c.cfgs[i].NodeID, cl)
		}
	}
}

func TestInmemGracefulCloseHandsOverLeadership(t *testing.T) {
	c := newInmemCluster(t, 3, func(cfg *Config) { cfg.TransferLeadershipOnClose = true })
	old := c.waitLeader()
	n := c.nodes[old]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatal(err)
	}
	c.nodes[old] = nil
	c.isolate(old)
	if err := n.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := n.Propose(ctx, InitCluster{Cluster: "c", At: at(0)}); !errors.Is(err, ErrClosed) {
		t.Errorf("Propose after Close = %v, want ErrClosed", err)
	}
	c.waitLeader()
	if !strings.Contains(c.logs[old].String(), "leadership transferred before close") {
		t.Errorf("no handover logged:\n%s", c.logs[old])
	}
}

func TestInmemMinorityCannotCommit(t *testing.T) {
	c := newInmemCluster(t, 5, nil)
	c.mustPropose(InitCluster{Cluster: "c1", Primary: "db1", At: at(0)})
	l := c.waitLeader()

	// The leader and one follower end up on the minority side.
	minority := []int{l}
	var majority []int
	for _, i := range c.running() {
		switch {
		case i == l:
		case len(minority) < 2:
			minority = append(minority, i)
		default:
			majority = append(majority, i)
		}
	}
	c.partition(minority, majority)

	// A command proposed on the minority side never commits.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err := c.nodes[l].Propose(ctx, InitCluster{Cluster: "minority", At: at(1)})
	cancel()
	if err == nil {
		t.Fatal("the minority committed a command")
	}
	if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrTimeout) {
		t.Errorf("minority propose error = %v, want ErrNotLeader or ErrTimeout", err)
	}

	// The majority elects a leader and commits.
	out := c.mustPropose(InitCluster{Cluster: "majority", At: at(2)}, majority...)
	for _, i := range minority {
		if _, ok := c.nodes[i].Cluster("majority"); ok {
			t.Errorf("%s on the minority side applied the majority's command", c.cfgs[i].NodeID)
		}
	}

	// After healing, everyone converges on the majority's history.
	c.connectAll()
	for _, i := range c.running() {
		c.waitApplied(i, out.Index)
	}
	for _, i := range c.running() {
		st := c.nodes[i].State()
		if _, ok := st.Clusters["minority"]; ok {
			t.Errorf("%s applied the minority's command", c.cfgs[i].NodeID)
		}
		if _, ok := st.Clusters["majority"]; !ok {
			t.Errorf("%s lacks the majority's command", c.cfgs[i].NodeID)
		}
	}
}

func TestInmemStaleEpochRejected(t *testing.T) {
	c := newInmemCluster(t, 3, nil)
	c.mustPropose(InitCluster{Cluster: "c1", Primary: "db1", At: at(0)})

	// A leader runs a failover to epoch 2.
	out := c.mustPropose(BeginOperation{Cluster: "c1", OperationID: "op1", Kind: KindFailover, ExpectEpoch: 1, Automatic: true, At: at(1)})
	if out.Cluster == nil || out.Cluster.Operation == nil || out.Cluster.Operation.CommitEpoch != 2 {
		t.Fatalf("outcome cluster = %+v", out.Cluster)
	}
	out = c.mustPropose(CommitPrimary{Cluster: "c1", OperationID: "op1", NewPrimary: "db2", ExpectEpoch: 1, GTID: "0-1-10", At: at(2)})
	if out.Cluster.Epoch != 2 || out.Cluster.Primary != "db2" {
		t.Fatalf("after commit: %+v", out.Cluster)
	}
	last := c.mustPropose(FinishOperation{Cluster: "c1", OperationID: "op1", Result: ResultSuccess, At: at(3)})
	for _, i := range c.running() {
		c.waitApplied(i, last.Index)
	}
	before := make([]map[string]*Cluster, len(c.nodes))
	for _, i := range c.running() {
		before[i] = c.nodes[i].State().Clusters
	}

	// Commands prepared from the old view (epoch 1) — what a deposed leader
	// would send — are rejected with the current epoch and change nothing.
	for _, cmd := range []Command{
		BeginOperation{Cluster: "c1", OperationID: "stale-op", Kind: KindFailover, ExpectEpoch: 1, Automatic: true, At: at(4)},
		CommitPrimary{Cluster: "c1", OperationID: "op1", NewPrimary: "db3", ExpectEpoch: 1, At: at(4)},
	} {
		_, err := c.propose(cmd)
		var se *StaleEpochError
		var conflictOK = errors.Is(err, ErrConflict) && cmd.Name() == "commit_primary" // op1 no longer in progress
		if !conflictOK && (!errors.As(err, &se) || se.Current != 2 || se.Expected != 1) {
			t.Errorf("%s: error = %v, want a stale epoch (current 2)", cmd.Name(), err)
		}
	}
	// A barrier makes sure the rejected entries were applied everywhere.
	probe := c.mustPropose(SetAntiFlap{Cluster: "c1"})
	for _, i := range c.running() {
		c.waitApplied(i, probe.Index)
		if got := c.nodes[i].State().Clusters; !reflect.DeepEqual(got, before[i]) {
			t.Errorf("%s: a rejected command changed the state:\n%s", c.cfgs[i].NodeID, diffJSON(before[i], got))
		}
	}
}

func TestInmemAddAndRemoveMember(t *testing.T) {
	c := newInmemCluster(t, 3, nil)
	c.mustPropose(InitCluster{Cluster: "c1", Primary: "db1", At: at(0)})
	l := c.waitLeader()

	// A fourth agent starts with no peers: it waits to be added.
	cfg := c.cfgs[0]
	cfg.NodeID, cfg.RaftAddr, cfg.APIAddr, cfg.Instance, cfg.Peers = "n4", inmemAddr(3), "127.0.0.1:18004", "db4", nil
	i4 := c.addInmem(cfg)
	c.connectAll()
	c.startInmem(i4)

	f := (l + 1) % 3
	err := c.nodes[f].AddVoter(context.Background(), "n4", cfg.RaftAddr)
	var nl *NotLeaderError
	if !errors.As(err, &nl) || nl.LeaderID != c.cfgs[l].NodeID {
		t.Fatalf("AddVoter on a follower = %v, want NotLeaderError naming %s", err, c.cfgs[l].NodeID)
	}
	c.onLeader("AddAgent", func(n *Node) error {
		return n.AddAgent(context.Background(), Member{ID: "n4", RaftAddr: cfg.RaftAddr, APIAddr: cfg.APIAddr, Instance: "db4"})
	}, 0, 1, 2)
	waitFor(t, 10*time.Second, "n4 to replicate the state", func() bool {
		cl, ok := c.nodes[i4].Cluster("c1")
		return ok && cl.Primary == "db1" && len(c.nodes[i4].Members()) == 4
	})
	if got := voters(c.nodes[0]); !reflect.DeepEqual(got, []string{"n1", "n2", "n3", "n4"}) {
		t.Errorf("voters = %v", got)
	}
	if m, ok := c.nodes[i4].State().InstanceOwner("db4"); !ok || m.ID != "n4" {
		t.Errorf("owner of db4 = %+v %v", m, ok)
	}

	c.onLeader("RemoveAgent", func(n *Node) error { return n.RemoveAgent(context.Background(), "n4") }, 0, 1, 2)
	l = c.waitLeader(0, 1, 2)
	if got := voters(c.nodes[l]); !reflect.DeepEqual(got, []string{"n1", "n2", "n3"}) {
		t.Errorf("voters after removal = %v", got)
	}
	if _, ok := c.nodes[l].State().Members["n4"]; ok {
		t.Error("n4 still in the member table")
	}
	// The three remaining commit without n4, which no longer gets entries.
	out := c.mustPropose(SetAntiFlap{Cluster: "c1", Until: at(9)}, 0, 1, 2)
	for _, i := range []int{0, 1, 2} {
		c.waitApplied(i, out.Index)
	}
	if _, idx := c.nodes[i4].fsm.current(); idx >= out.Index {
		t.Errorf("removed n4 applied index %d", idx)
	}
}

func voters(n *Node) []string {
	var out []string
	for _, s := range n.Servers() {
		if s.Voter {
			out = append(out, s.ID)
		}
	}
	slices.Sort(out)
	return out
}

func TestInmemSnapshotInstalledOnNewMember(t *testing.T) {
	c := newInmemCluster(t, 3, func(cfg *Config) {
		cfg.TrailingLogs = 2 // compact aggressively so a new member needs the snapshot
		cfg.SnapshotThreshold = 1 << 20
	})
	c.mustPropose(InitCluster{Cluster: "c1", Primary: "db1", At: at(0)})
	for i := range 20 {
		c.mustPropose(SetQuarantine{Cluster: "c1", Instance: "db" + strconv.Itoa(i), Reason: fmt.Sprintf("test %d", i), At: at(i)})
	}
	c.mustPropose(BeginOperation{Cluster: "c1", OperationID: "op1", Kind: KindSwitchover, ExpectEpoch: 1, Target: "db2", At: at(30)})
	c.mustPropose(RecordStep{Cluster: "c1", OperationID: "op1", Step: Step{Name: "read_only", Start: at(31), Result: StepOK}})
	snapshotAll := func() { // every node, so whichever leads has compacted its log
		for _, i := range c.running() {
			if err := c.nodes[i].Snapshot(context.Background()); err != nil {
				t.Fatalf("snapshot on %s: %v", c.cfgs[i].NodeID, err)
			}
		}
	}
	snapshotAll()
	last := c.mustPropose(SetPromotionRule{Cluster: "c1", Instance: "db2", Rule: PromotionPrefer}) // after the snapshot
	for _, i := range c.running() {
		c.waitApplied(i, last.Index)
	}
	snapshotAll()

	cfg := c.cfgs[0]
	cfg.NodeID, cfg.RaftAddr, cfg.APIAddr, cfg.Instance, cfg.Peers = "n4", inmemAddr(3), "", "", nil
	i4 := c.addInmem(cfg)
	c.connectAll()
	c.startInmem(i4)
	c.onLeader("AddVoter", func(n *Node) error { return n.AddVoter(context.Background(), "n4", cfg.RaftAddr) }, 0, 1, 2)
	c.waitApplied(i4, last.Index)
	l := c.waitLeader(0, 1, 2)
	want, _ := c.nodes[l].fsm.current()
	got, _ := c.nodes[i4].fsm.current()
	if !reflect.DeepEqual(got.Clusters, want.Clusters) {
		t.Fatalf("restored state differs from the leader's:\n%s", diffJSON(want.Clusters, got.Clusters))
	}
	// n4 can only have caught up through the snapshot: the others' logs no
	// longer hold the early entries.
	waitFor(t, 5*time.Second, "n4 to record the installed snapshot", func() bool {
		return c.nodes[i4].raft.Stats()["last_snapshot_index"] != "0"
	})
}

func TestInmemLeaseClock(t *testing.T) {
	for _, isolateLeader := range []bool{true, false} {
		t.Run(map[bool]string{true: "isolated leader", false: "isolated follower"}[isolateLeader], func(t *testing.T) {
			c := newInmemCluster(t, 3, nil)
			l := c.waitLeader()
			x := l
			if !isolateLeader {
				x = (l + 1) % 3
			}
			// Everyone's clock runs while connected.
			start := time.Now()
			for _, i := range c.running() {
				waitFor(t, 5*time.Second, c.cfgs[i].NodeID+"'s lease clock to pass the start", func() bool {
					return c.nodes[i].LastQuorumContact().After(start)
				})
			}

			c.isolate(x)
			cut := time.Now()
			var rest []int
			for _, i := range c.running() {
				if i != x {
					rest = append(rest, i)
				}
			}
			// The majority elects a leader, and its clocks keep going well
			// past the cut...
			c.waitLeader(rest...)
			for _, i := range rest {
				waitFor(t, 10*time.Second, c.cfgs[i].NodeID+"'s lease clock to keep going", func() bool {
					return c.nodes[i].LastQuorumContact().After(cut.Add(500 * time.Millisecond))
				})
			}
			// ...while the isolated node's stopped at or before the cut.
			if got := c.nodes[x].LastQuorumContact(); got.After(cut) {
				t.Fatalf("isolated node's lease clock advanced to %s after the cut at %s", got.Format(time.StampMicro), cut.Format(time.StampMicro))
			}
			// The majority's leader never thinks it heard the isolated node
			// later than that node's own clock says it had a quorum: the
			// basis of "fence before the new primary is promoted".
			nl := c.waitLeader(rest...)
			pcs, err := c.nodes[nl].PeerContacts()
			if err != nil {
				t.Fatal(err)
			}
			for _, pc := range pcs {
				if pc.ID != c.cfgs[x].NodeID {
					if !pc.Heard || time.Since(pc.LastHeard) > 2*time.Second {
						t.Errorf("connected peer %s: %+v", pc.ID, pc)
					}
					continue
				}
				if own := c.nodes[x].LastQuorumContact(); pc.LastHeard.Before(own) {
					t.Errorf("leader last heard %s at %s, before its own quorum contact %s", pc.ID, pc.LastHeard, own)
				}
				if isolateLeader && pc.Heard {
					t.Errorf("new leader claims to have heard the isolated old leader: %+v", pc)
				}
			}
			follower := rest[0]
			if follower == nl {
				follower = rest[1]
			}
			if _, err := c.nodes[follower].PeerContacts(); !errors.Is(err, ErrNotLeader) {
				t.Errorf("PeerContacts on a follower = %v", err)
			}

			// Healed, the isolated node's clock runs again.
			heal := time.Now()
			c.connectAll()
			waitFor(t, 10*time.Second, "the healed node's lease clock to resume", func() bool {
				return c.nodes[x].LastQuorumContact().After(heal)
			})
		})
	}
}

func TestContactTrackerQuorum(t *testing.T) {
	base := time.Unix(1000, 0)
	ids := func(s ...string) []raft.ServerID {
		var out []raft.ServerID
		for _, x := range s {
			out = append(out, raft.ServerID(x))
		}
		return out
	}
	tests := []struct {
		name    string
		acks    map[string]ack
		voters  []raft.ServerID
		leading bool
		want    time.Time
	}{
		{"single voter leading", nil, ids("a"), true, base.Add(time.Hour)},
		{"single voter not leading", nil, ids("a"), false, time.Time{}},
		{"not a voter", map[string]ack{"b": {base, 1}, "c": {base, 1}}, ids("b", "c"), true, time.Time{}},
		{"three voters take the freshest other", map[string]ack{"b": {base.Add(1), 3}, "c": {base.Add(5), 3}}, ids("a", "b", "c"), true, base.Add(5)},
		{"five voters need two others", map[string]ack{"b": {base.Add(1), 3}, "c": {base.Add(5), 3}, "d": {base.Add(3), 3}}, ids("a", "b", "c", "d", "e"), true, base.Add(3)},
		{"acks of an older term are ignored", map[string]ack{"b": {base.Add(9), 2}, "c": {base.Add(5), 3}}, ids("a", "b", "c"), true, base.Add(5)},
		{"no majority", map[string]ack{"b": {base.Add(1), 3}}, ids("a", "b", "c", "d", "e"), true, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := newContactTracker()
			for id, a := range tt.acks {
				ct.acks[raft.ServerID(id)] = a
			}
			if got := ct.quorumAck("a", tt.voters, tt.leading, base.Add(time.Hour)); !got.Equal(tt.want) {
				t.Errorf("quorumAck = %v, want %v", got, tt.want)
			}
		})
	}
	// answered ignores answers from a higher term and keeps the latest.
	ct := newContactTracker()
	ct.answered("b", base.Add(2), 3, 3, true)
	ct.answered("b", base.Add(1), 3, 3, true) // older start: kept out
	ct.answered("b", base.Add(9), 3, 4, true) // higher term answer: heard, not an ack
	if a := ct.acks["b"]; !a.at.Equal(base.Add(2)) || a.term != 3 {
		t.Errorf("ack = %+v", a)
	}
	if ct.lastHeard("b").IsZero() {
		t.Error("answer not counted as heard")
	}
}
