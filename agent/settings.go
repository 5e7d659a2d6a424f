package agent

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/apiserver"
	"github.com/regentdb/regent/config"
	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/failover"
)

// Run-time settings (README "Changing settings at run time"): the cluster's
// failover settings are regent.yaml's, with the replicated state's
// run-time settings applied over them (config.EditPolicy). The decisions
// read the policy from the same replicated state as their view, so one
// round never mixes two versions.

// versionedRuntime is the effective run-time configuration of one settings
// version.
type versionedRuntime struct {
	version uint64
	rt      config.Runtime
}

// policyFor returns the effective policy under st's run-time settings.
func (c *clusterRT) policyFor(st *consensus.Cluster) failover.Policy { return c.runtimeFor(st).Policy }

// runtimeFor returns the effective run-time configuration under st's
// settings. A version this agent cannot apply (a newer binary's key, say)
// leaves regent.yaml's settings in force, logged once.
func (c *clusterRT) runtimeFor(st *consensus.Cluster) config.Runtime {
	if st == nil || st.Config == nil {
		return config.Runtime{Policy: c.policy}
	}
	if vp := c.effective.Load(); vp != nil && vp.version == st.Config.Version {
		return vp.rt
	}
	rt, err := config.ApplySettings(c.policy, st.Config.Settings)
	if err != nil {
		c.log.Error("run-time settings not applied: regent.yaml's stay in force", "version", st.Config.Version, "by", st.Config.By, "err", err)
	} else {
		c.log.Info("run-time settings applied", "version", st.Config.Version, "by", st.Config.By, "change", config.SettingsChange(config.Runtime{Policy: c.policy}, rt))
	}
	c.effective.Store(&versionedRuntime{version: st.Config.Version, rt: rt})
	return rt
}

// pol is the effective policy now.
func (c *clusterRT) pol() failover.Policy { return c.policyFor(c.state()) }

// Settings returns a cluster's settings: run-time keys with their
// effective values, what was changed at run time, and the keys that only
// regent.yaml sets.
func (b API) Settings(_ context.Context, cluster string) (api.ClusterSettings, error) {
	c, err := b.a.cluster(cluster)
	if err != nil {
		return api.ClusterSettings{}, fmt.Errorf("%w: %w", apiserver.ErrNotFound, err)
	}
	return c.settings(c.state()), nil
}

func (c *clusterRT) settings(st *consensus.Cluster) api.ClusterSettings {
	out := api.ClusterSettings{Cluster: c.name, Effective: config.RuntimeSettings(c.runtimeFor(st)), RestartOnly: config.RestartOnlySettings(c.policy)}
	if st != nil && st.Config != nil {
		at := st.Config.At
		out.Version, out.Changed, out.By, out.At = st.Config.Version, st.Config.Settings, st.Config.By, &at
	}
	return out
}

// EditSettings changes a cluster's run-time settings through Raft, if they
// are still at req.Version: the keys of req.Set are set, those of req.Reset
// go back to regent.yaml's values. The result is validated with the rules
// used at start, and refused with the key named; nothing changes then.
func (b API) EditSettings(ctx context.Context, cluster string, req api.EditSettingsRequest) (api.ClusterSettings, error) {
	c, err := b.a.cluster(cluster)
	if err != nil {
		return api.ClusterSettings{}, fmt.Errorf("%w: %w", apiserver.ErrNotFound, err)
	}
	st := c.state()
	if st == nil {
		return api.ClusterSettings{}, fmt.Errorf("%w: cluster %s is not recorded in Raft yet; try again in a few seconds", apiserver.ErrUnavailable, cluster)
	}
	var version uint64
	current := ""
	if st.Config != nil {
		version, current = st.Config.Version, st.Config.Settings
	}
	if req.Version != version {
		return api.ClusterSettings{}, fmt.Errorf("%w: the settings of cluster %s are at version %d, not %d: someone changed them meanwhile; read them again (regentctl cluster show-config)", apiserver.ErrConflict, cluster, version, req.Version)
	}
	merged, err := config.MergeSettings(current, req.Set, req.Reset)
	if err != nil {
		return api.ClusterSettings{}, fmt.Errorf("%w: %w", apiserver.ErrInvalid, err)
	}
	rt, err := config.ApplySettings(c.policy, merged)
	if err != nil {
		return api.ClusterSettings{}, fmt.Errorf("%w: %w (nothing was changed)", apiserver.ErrInvalid, err)
	}
	for _, n := range slices.Sorted(maps.Keys(rt.Promotion)) {
		if set := c.set(); set.addrs[n] == "" {
			return api.ClusterSettings{}, fmt.Errorf("%w: promotion: %s is not an instance of cluster %s (its instances: %s; nothing was changed)", apiserver.ErrInvalid, n, cluster, strings.Join(slices.Sorted(maps.Keys(set.addrs)), ", "))
		}
	}
	change := config.SettingsChange(c.runtimeFor(st), rt)
	if change == "" {
		return api.ClusterSettings{}, fmt.Errorf("%w: nothing would change: the settings already have these values", apiserver.ErrInvalid)
	}
	by := callerName(ctx)
	if _, err := b.a.raft.Propose(ctx, consensus.SetConfig{Cluster: cluster, ExpectVersion: version, Settings: merged, Change: change, By: by, At: b.a.now()}); err != nil {
		return api.ClusterSettings{}, apiErr(err)
	}
	b.a.log.Warn("run-time settings changed", "cluster", cluster, "by", by, "change", change)
	return c.settings(c.state()), nil
}
