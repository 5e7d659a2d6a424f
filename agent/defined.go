package agent

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/apiserver"
	"github.com/regentdb/regent/consensus"
)

// Replication clusters added at run time (regentctl cluster create, README
// "Changing settings at run time"). The replicated state keeps each one's
// regent.yaml entry (consensus.State.Defined); every agent reads it with
// the start-up rules (config.ParseDefinition) and runs the cluster beside
// regent.yaml's, and stops it when the definition is removed. Such a
// cluster has no agent on its hosts: its instances are probed by every
// agent, its write route moves by push (routing:) or hooks, and its first
// primary is decided by the leader as for any new cluster.

// definedEvery is how often an agent compares the clusters it runs with
// the replicated state's definitions (the leader also does it at once
// after a change it proposes).
const definedEvery = time.Second

// definedLoop keeps the clusters added at run time running on this agent.
func (a *Agent) definedLoop(ctx context.Context) {
	t := time.NewTicker(definedEvery)
	defer t.Stop()
	for {
		a.syncDefined(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// syncDefined starts the clusters defined in the replicated state that this
// agent does not run yet, and stops those whose definition was removed (or
// replaced: removed, then defined again under the same name).
func (a *Agent) syncDefined(ctx context.Context) {
	a.defineMu.Lock()
	defer a.defineMu.Unlock()
	defined := a.raft.Defined()
	cur := a.rts()
	next := maps.Clone(cur)
	changed := false
	for name, c := range cur {
		if c.definition == nil {
			continue // regent.yaml's
		}
		if d, ok := defined[name]; !ok || d != *c.definition {
			a.stopCluster(c)
			delete(next, name)
			changed = true
			a.log.Warn("cluster added at run time removed; no longer run", logCluster, name)
		}
	}
	for name, d := range defined {
		if _, ok := next[name]; ok {
			continue
		}
		cc, err := a.cfg.ParseDefinition([]byte(d.Definition))
		if err == nil && cc.Name != name {
			err = fmt.Errorf("the definition names cluster %q", cc.Name)
		}
		var c *clusterRT
		if err == nil {
			c, err = newClusterRT(a, cc, a.secrets, a.mysqlTLS, a.deps)
		}
		if err != nil {
			// The leader checked it with the same rules; what fails here
			// is this agent's own (a routing file missing on this host).
			a.log.Error("cluster added at run time cannot run on this agent; retrying", logCluster, name, logErr, err)
			continue
		}
		c.definition = &d
		next[name] = c
		changed = true
		if a.runCtx != nil && ctx.Err() == nil { // else Start runs it
			a.startCluster(ctx, c)
		}
		a.log.Warn("cluster added at run time; now run", logCluster, name, "by", d.By, "instances", strings.Join(c.set().names(), ","))
	}
	if changed {
		a.clusters.Store(&next)
		a.wake()
	}
}

// stopCluster ends a cluster's loops, waits for them, and closes its
// connections.
func (a *Agent) stopCluster(c *clusterRT) {
	if c.stop != nil {
		c.stop()
	}
	c.loops.Wait()
	c.close()
}

// DefineCluster adds a replication cluster at run time (regentctl cluster
// create): its regent.yaml entry, checked with the start-up rules and
// refused with the key named, is kept in the replicated state; every agent
// runs it within a second, and the leader decides its first primary.
func (b API) DefineCluster(ctx context.Context, req api.DefineClusterRequest) (api.DefinedCluster, error) {
	cc, err := b.a.cfg.ParseDefinition([]byte(req.Definition))
	if err != nil {
		return api.DefinedCluster{}, fmt.Errorf("%w: %w (nothing was changed)", apiserver.ErrInvalid, err)
	}
	by, at := callerName(ctx), b.a.now()
	if _, err := b.a.raft.Propose(ctx, consensus.DefineCluster{Cluster: cc.Name, Definition: req.Definition, By: by, At: at}); err != nil {
		return api.DefinedCluster{}, apiErr(err)
	}
	b.a.log.Warn("cluster added at run time", logCluster, cc.Name, "by", by)
	b.a.syncDefined(b.a.runContext())
	out := api.DefinedCluster{Name: cc.Name, Defined: api.Defined{By: by, At: at}}
	for _, in := range cc.Instances {
		out.Instances = append(out.Instances, in.Name)
	}
	return out, nil
}

// RemoveCluster takes out a cluster added at run time: its definition,
// record and history leave the replicated state, and every agent stops
// probing it. Refused for regent.yaml's clusters and while an operation
// runs on it. The leader holds the cluster (as an operation does) while it
// proposes the removal, so that no analysis records the cluster again.
func (b API) RemoveCluster(ctx context.Context, cluster string) (api.DefinedCluster, error) {
	c, err := b.a.cluster(cluster)
	if err != nil {
		return api.DefinedCluster{}, fmt.Errorf("%w: %w", apiserver.ErrNotFound, err)
	}
	if c.definition == nil {
		return api.DefinedCluster{}, fmt.Errorf("%w: cluster %s is in regent.yaml, not defined at run time: remove it from regent.yaml on every agent", apiserver.ErrInvalid, cluster)
	}
	if !c.lock(ctx) {
		return api.DefinedCluster{}, fmt.Errorf("%w: cluster %s is busy: %w", apiserver.ErrUnavailable, cluster, ctx.Err())
	}
	defer c.unlock()
	by := callerName(ctx)
	if _, err := b.a.raft.Propose(ctx, consensus.DefineCluster{Cluster: cluster, Remove: true, By: by, At: b.a.now()}); err != nil {
		return api.DefinedCluster{}, apiErr(err)
	}
	b.a.log.Warn("cluster removed at run time", logCluster, cluster, "by", by)
	b.a.syncDefined(b.a.runContext())
	return api.DefinedCluster{Name: cluster, Instances: c.set().names(), Defined: api.Defined{By: c.definition.By, At: c.definition.At}}, nil
}

// runContext is the context the agent's loops run in (background before
// Start).
func (a *Agent) runContext() context.Context {
	if a.runCtx != nil {
		return a.runCtx
	}
	return context.Background()
}
