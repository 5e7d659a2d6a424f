package agent

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/topology"
)

// Discovery is an aid, not a source of truth (issue 14): from one instance
// the agent walks up to the top of its replication tree (each replica's
// configured source) and down through every replica a source lists (SHOW
// SLAVE HOSTS / SHOW REPLICAS, which need report_host on the replicas), and
// proposes a cluster definition that the operator checks and puts in
// regent.yaml. Nothing is changed on any server, and nothing is recorded.

// maxDiscovered bounds the walk: a replication tree larger than this is not
// one Regent cluster.
const maxDiscovered = 64

// discoverSource is what the walk needs of a server at an address; the
// agent opens one with its own MySQL account, the tests pass a fake.
type discoverSource interface {
	Probe(ctx context.Context, addr string) (*topology.Snapshot, error)
	ListReplicas(ctx context.Context, addr string) ([]topology.ConnectedReplica, error)
}

// discover walks the tree around start.
func discover(ctx context.Context, src discoverSource, start string) (api.Discovery, error) {
	d := api.Discovery{Start: start}
	snaps := map[string]*topology.Snapshot{}
	probe := func(addr string) (*topology.Snapshot, error) {
		if s, ok := snaps[addr]; ok {
			return s, nil
		}
		s, err := src.Probe(ctx, addr)
		if err != nil {
			return nil, err
		}
		snaps[addr] = s
		return s, nil
	}
	// Up: follow configured sources to the top.
	if _, err := probe(start); err != nil {
		return d, fmt.Errorf("%s: %w", start, err)
	}
	top := start
	seen := map[string]bool{start: true}
	for {
		s := snaps[top]
		if s.Replica == nil || s.Replica.SourceHost == "" {
			break
		}
		up := net.JoinHostPort(s.Replica.SourceHost, strconv.Itoa(s.Replica.SourcePort))
		if seen[up] {
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s and its sources replicate in a circle (a ring): Regent manages one primary and its replicas", top))
			break
		}
		if _, err := probe(up); err != nil {
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s, the source of %s, does not answer (%v): the tree is shown from %s down", up, top, err, top))
			break
		}
		seen[up] = true
		top = up
	}
	// Down: breadth first from the top.
	type item struct{ addr, source string }
	queue := []item{{addr: top}}
	listed := map[string]bool{top: true}
	for len(queue) > 0 && len(d.Instances) < maxDiscovered {
		it := queue[0]
		queue = queue[1:]
		s, err := probe(it.addr)
		if err != nil {
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s (a replica of %s) does not answer: %v", it.addr, it.source, err))
			continue
		}
		in := api.DiscoveredInstance{Address: it.addr, Source: it.source, ServerID: s.ServerID, Version: s.Version, ReadOnly: !s.Writable()}
		if s.Replica != nil && it.source == "" && it.addr != top {
			in.Source = net.JoinHostPort(s.Replica.SourceHost, strconv.Itoa(s.Replica.SourcePort))
		}
		d.Instances = append(d.Instances, in)
		reps, err := src.ListReplicas(ctx, it.addr)
		if err != nil {
			d.Warnings = append(d.Warnings, fmt.Sprintf("cannot list the replicas of %s: %v", it.addr, err))
			continue
		}
		for _, r := range reps {
			if r.Host == "" || r.Port == 0 {
				d.Warnings = append(d.Warnings, fmt.Sprintf("a replica of %s connected from %s does not report its address (set report_host and report_port on it): not followed", it.addr, orDefault(r.ClientAddr, "an unknown address")))
				continue
			}
			addr := net.JoinHostPort(r.Host, strconv.Itoa(r.Port))
			if listed[addr] {
				continue
			}
			listed[addr] = true
			queue = append(queue, item{addr: addr, source: it.addr})
		}
	}
	if len(queue) > 0 {
		d.Warnings = append(d.Warnings, fmt.Sprintf("more than %d instances: the walk stopped; this is not one Regent cluster", maxDiscovered))
	}
	nameInstances(d.Instances)
	for i, in := range d.Instances {
		switch {
		case in.Source == "" && !in.ReadOnly:
			d.Primary = in.Name
		case in.Source == "":
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s, the top of the tree, is read-only: no writable primary found", in.Name))
		case in.Source != d.Instances[0].Address:
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s replicates from %s, not from the top (chained): Regent repoints it under the primary unless you relocate it there with regentctl repoint %s --to SOURCE once the cluster is defined", in.Name, in.Source, in.Name))
		}
		if in.Source != "" && !in.ReadOnly {
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s is a writable replica: set read_only=ON on it", in.Name))
		}
		d.Instances[i] = in
	}
	d.YAML = proposeYAML(d)
	return d, nil
}

// nameInstances gives each instance a configuration name from its address:
// the host's first label (an IP's octets joined by '-'), with the port
// when it is not 3306; the whole host and the port when two would share a
// name.
func nameInstances(ins []api.DiscoveredInstance) {
	dashes := strings.NewReplacer(".", "-", ":", "-")
	base := func(addr string, whole bool) string {
		host, port, _ := net.SplitHostPort(addr)
		n := host
		switch {
		case net.ParseIP(host) != nil:
			n = "db-" + dashes.Replace(host)
		case whole:
			n = dashes.Replace(host)
		case strings.IndexByte(host, '.') > 0:
			n = host[:strings.IndexByte(host, '.')]
		}
		if whole || port != "3306" {
			n += "-" + port
		}
		return n
	}
	count := map[string]int{}
	for _, in := range ins {
		count[base(in.Address, false)]++
	}
	for i := range ins {
		n := base(ins[i].Address, false)
		ins[i].Name = base(ins[i].Address, count[n] > 1)
	}
}

// proposeYAML writes the cluster definition for regent.yaml.
func proposeYAML(d api.Discovery) string {
	var b strings.Builder
	b.WriteString("# Proposed by regentctl discover from " + d.Start + ": check it, set each\n")
	b.WriteString("# instance's agent (the regent agent on its host), then put it under clusters:\n")
	b.WriteString("# in regent.yaml; for hosts without an agent, remove the agent keys and give\n")
	b.WriteString("# it to regentctl cluster create --file FILE instead.\n")
	b.WriteString("  - name: main\n    instances:\n")
	ins := slices.Clone(d.Instances)
	for _, in := range ins {
		role := "replica of " + in.Source
		if in.Source == "" {
			role = "primary"
		}
		fmt.Fprintf(&b, "      - {name: %s, address: %s, agent: AGENT}   # %s, server_id %d\n", in.Name, in.Address, role, in.ServerID)
	}
	return b.String()
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// openedServers opens the servers the walk visits with Regent's account,
// each once, and closes them all at the end.
type openedServers struct {
	open  func(addr string) (*topology.Instance, error)
	insts map[string]*topology.Instance
}

func (o *openedServers) inst(addr string) (*topology.Instance, error) {
	if i, ok := o.insts[addr]; ok {
		return i, nil
	}
	i, err := o.open(addr)
	if err != nil {
		return nil, err
	}
	o.insts[addr] = i
	return i, nil
}

func (o *openedServers) Probe(ctx context.Context, addr string) (*topology.Snapshot, error) {
	i, err := o.inst(addr)
	if err != nil {
		return nil, err
	}
	return i.Probe(ctx)
}

func (o *openedServers) ListReplicas(ctx context.Context, addr string) ([]topology.ConnectedReplica, error) {
	i, err := o.inst(addr)
	if err != nil {
		return nil, err
	}
	return i.ListReplicas(ctx)
}

func (o *openedServers) close() {
	for _, i := range o.insts {
		_ = i.Close()
	}
}
