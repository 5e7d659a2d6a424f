package agent

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/topology"
)

// fakeTree is a replication tree for discover: snapshots and listed
// replicas by address.
type fakeTree struct {
	snaps map[string]*topology.Snapshot
	reps  map[string][]topology.ConnectedReplica
}

func (f fakeTree) Probe(_ context.Context, addr string) (*topology.Snapshot, error) {
	if s, ok := f.snaps[addr]; ok {
		return s, nil
	}
	return nil, errors.New("connection refused")
}

func (f fakeTree) ListReplicas(_ context.Context, addr string) ([]topology.ConnectedReplica, error) {
	return f.reps[addr], nil
}

func replicaOf(host string, port int, id uint32) *topology.Snapshot {
	return &topology.Snapshot{ServerID: id, ReadOnly: true, Replica: &topology.ReplicaStatus{SourceHost: host, SourcePort: port}}
}

func TestDiscover(t *testing.T) {
	tree := fakeTree{
		snaps: map[string]*topology.Snapshot{
			"10.0.0.11:3306": {ServerID: 11},
			"10.0.0.12:3306": replicaOf("10.0.0.11", 3306, 12),
			"10.0.0.13:3306": replicaOf("10.0.0.12", 3306, 13),
		},
		reps: map[string][]topology.ConnectedReplica{
			"10.0.0.11:3306": {{Host: "10.0.0.12", Port: 3306}, {ClientAddr: "10.0.0.14:51000"}},
			"10.0.0.12:3306": {{Host: "10.0.0.13", Port: 3306}},
		},
	}
	// From the bottom of the chain: up to the top, then down.
	d, err := discover(context.Background(), tree, "10.0.0.13:3306")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, in := range d.Instances {
		got = append(got, in.Name+"<"+in.Source)
	}
	if strings.Join(got, " ") != "db-10-0-0-11< db-10-0-0-12<10.0.0.11:3306 db-10-0-0-13<10.0.0.12:3306" {
		t.Errorf("instances %v", got)
	}
	if d.Primary != "db-10-0-0-11" {
		t.Errorf("primary %q", d.Primary)
	}
	warnings := strings.Join(d.Warnings, "\n")
	for _, w := range []string{"db-10-0-0-13 replicates from 10.0.0.12:3306, not from the top (chained)", "connected from 10.0.0.14:51000 does not report its address"} {
		if !strings.Contains(warnings, w) {
			t.Errorf("warnings lack %q:\n%s", w, warnings)
		}
	}
	for _, w := range []string{"- {name: db-10-0-0-11, address: 10.0.0.11:3306, agent: AGENT}   # primary", "- {name: db-10-0-0-13, address: 10.0.0.13:3306, agent: AGENT}   # replica of 10.0.0.12:3306"} {
		if !strings.Contains(d.YAML, w) {
			t.Errorf("the proposal lacks %q:\n%s", w, d.YAML)
		}
	}

	// A source that does not answer: the tree from the last one that did.
	delete(tree.snaps, "10.0.0.11:3306")
	d, err = discover(context.Background(), tree, "10.0.0.13:3306")
	if err != nil || len(d.Instances) != 2 || !strings.Contains(strings.Join(d.Warnings, "\n"), "10.0.0.11:3306, the source of 10.0.0.12:3306, does not answer") {
		t.Errorf("unreachable top: %v %+v %v", err, d.Instances, d.Warnings)
	}
	// The instance asked about does not answer: an error.
	if _, err := discover(context.Background(), tree, "10.0.0.99:3306"); err == nil || !strings.Contains(err.Error(), "10.0.0.99:3306") {
		t.Errorf("unreachable start: %v", err)
	}
}

func TestNameInstances(t *testing.T) {
	for _, tc := range []struct{ addrs, want string }{
		{"db1.example.com:3306 db2.example.com:3306", "db1 db2"},
		{"127.0.0.1:33061 127.0.0.1:33062", "db-127-0-0-1-33061 db-127-0-0-1-33062"},
		{"a.x:3306 a.y:3306", "a-x-3306 a-y-3306"},
	} {
		var ins []api.DiscoveredInstance
		for _, a := range strings.Fields(tc.addrs) {
			ins = append(ins, api.DiscoveredInstance{Address: a})
		}
		nameInstances(ins)
		var got []string
		for _, in := range ins {
			got = append(got, in.Name)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%s: names %v, want %s", tc.addrs, got, tc.want)
		}
	}
}
