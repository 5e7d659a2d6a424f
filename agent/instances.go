package agent

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/apiserver"
	"github.com/regentdb/regent/config"
	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/topology"
)

// instanceSet is one version of a cluster's instances with their
// connections. It is never changed: when the replicated state adds or
// removes an instance (regentctl cluster add|remove), a new set replaces
// it whole, so every loop reads one consistent set per round
// (README "Changing settings at run time").
type instanceSet struct {
	// version is the replicated state's instance version it reflects (0:
	// regent.yaml's instances only).
	version uint64
	configs []config.InstanceConfig
	insts   map[string]*topology.Instance
	addrs   map[string]string // name → host:port
	byAddr  map[string]string // host:port → name
}

func newInstanceSet(version uint64, configs []config.InstanceConfig, insts map[string]*topology.Instance) *instanceSet {
	s := &instanceSet{version: version, configs: slices.Clone(configs), insts: insts, addrs: map[string]string{}, byAddr: map[string]string{}}
	for _, in := range configs {
		s.addrs[in.Name] = in.Address
		s.byAddr[in.Address] = in.Name
	}
	return s
}

// names returns the instances' names in configuration order.
func (s *instanceSet) names() []string {
	out := make([]string, 0, len(s.configs))
	for _, in := range s.configs {
		out = append(out, in.Name)
	}
	return out
}

// set returns the cluster's current instances.
func (c *clusterRT) set() *instanceSet { return c.members.Load() }

// instanceCloseGrace is how long a removed instance's connections stay
// open, for calls already under way.
const instanceCloseGrace = 30 * time.Second

// syncInstances applies the replicated state's instance changes
// (regentctl cluster add|remove) once per probe round: a new set, with a
// connection opened for an added instance; a removed one's is closed after
// instanceCloseGrace. Every agent does it, so each probes what the leader
// decides on.
func (c *clusterRT) syncInstances(st *consensus.Cluster) {
	var version uint64
	var changes map[string]consensus.InstanceChange
	if st != nil {
		version, changes = st.InstancesVersion, st.Instances
	}
	cur := c.set()
	if cur.version == version {
		return
	}
	configs := config.EffectiveInstances(c.cfg.Instances, changes)
	insts := make(map[string]*topology.Instance, len(configs))
	for _, in := range configs {
		if i, ok := cur.insts[in.Name]; ok && cur.addrs[in.Name] == in.Address {
			insts[in.Name] = i
			continue
		}
		i, err := c.open(in.Address, 3)
		if err != nil {
			c.log.Error("instance added at run time cannot be opened; retrying next round", logInstance, in.Name, logErr, err)
			for n, opened := range insts {
				if cur.insts[n] != opened {
					_ = opened.Close()
				}
			}
			return
		}
		insts[in.Name] = i
	}
	next := newInstanceSet(version, configs, insts)
	c.members.Store(next)
	for name, i := range cur.insts {
		if insts[name] != i {
			time.AfterFunc(instanceCloseGrace, func() { _ = i.Close() })
		}
	}
	c.log.Info("instances changed at run time", "version", version, "instances", next.names())
}

// AddInstance adds an instance to a cluster at run time, through Raft
// (regentctl cluster add): checked with the rules used at start against the
// cluster's current instances, refused with the key named. Every agent
// starts probing it within a probe interval; it is then a failover
// candidate like any replica.
func (b API) AddInstance(ctx context.Context, cluster string, req api.AddInstanceRequest) (api.Cluster, error) {
	c, err := b.a.cluster(cluster)
	if err != nil {
		return api.Cluster{}, fmt.Errorf("%w: %w", apiserver.ErrNotFound, err)
	}
	st := c.state()
	if st == nil {
		return api.Cluster{}, fmt.Errorf("%w: cluster %s is not recorded in Raft yet; try again in a few seconds", apiserver.ErrUnavailable, cluster)
	}
	in := config.InstanceConfig{Name: req.Name, Address: req.Address, Promotion: req.Promotion, Labels: req.Labels}
	// Checked against the replicated state's instances, not the set the
	// probe loop last took from it (up to a probe interval behind): two
	// quick additions must see each other.
	current := config.EffectiveInstances(c.cfg.Instances, st.Instances)
	if err := config.CheckAddedInstance(current, in, c.pol().PromotionSame); err != nil {
		return api.Cluster{}, fmt.Errorf("%w: %w (nothing was changed)", apiserver.ErrInvalid, err)
	}
	by := callerName(ctx)
	if _, err := b.a.raft.Propose(ctx, consensus.SetInstance{Cluster: cluster, Instance: in.Name, Address: in.Address, Promotion: in.Promotion,
		Labels: in.Labels, By: by, At: b.a.now()}); err != nil {
		return api.Cluster{}, apiErr(err)
	}
	b.a.log.Warn("instance added at run time", "cluster", cluster, logInstance, in.Name, "address", in.Address, "by", by)
	return b.Cluster(ctx, cluster)
}

// RemoveInstance takes an instance out of a cluster at run time (regentctl
// cluster remove): no longer probed nor promoted. Refused for the primary
// and for an instance with an agent on its host (regent.yaml declares it).
func (b API) RemoveInstance(ctx context.Context, cluster, instance string) (api.Cluster, error) {
	c, err := b.a.cluster(cluster)
	if err != nil {
		return api.Cluster{}, fmt.Errorf("%w: %w", apiserver.ErrNotFound, err)
	}
	st := c.state()
	if st == nil {
		return api.Cluster{}, fmt.Errorf("%w: cluster %s is not recorded in Raft yet; try again in a few seconds", apiserver.ErrUnavailable, cluster)
	}
	set := c.set()
	i := slices.IndexFunc(set.configs, func(in config.InstanceConfig) bool { return in.Name == instance })
	switch {
	case i < 0:
		return api.Cluster{}, fmt.Errorf("%w: cluster %s has no instance %q (its instances: %s)", apiserver.ErrNotFound, cluster, instance, strings.Join(set.names(), ", "))
	case set.configs[i].Agent != "":
		return api.Cluster{}, fmt.Errorf("%w: %s has an agent (%s) on its host: take it out of regent.yaml on every agent and stop that agent instead", apiserver.ErrInvalid, instance, set.configs[i].Agent)
	case st.Primary == instance:
		return api.Cluster{}, fmt.Errorf("%w: %s is the primary: switch over to another instance first", apiserver.ErrConflict, instance)
	}
	by := callerName(ctx)
	if _, err := b.a.raft.Propose(ctx, consensus.SetInstance{Cluster: cluster, Instance: instance, Remove: true, By: by, At: b.a.now()}); err != nil {
		return api.Cluster{}, apiErr(err)
	}
	b.a.log.Warn("instance removed at run time", "cluster", cluster, logInstance, instance, "by", by)
	return b.Cluster(ctx, cluster)
}
