package proxyhook

import (
	"errors"
	"fmt"
	"log/slog"
)

// RoutingConfig is the routing section of one replication cluster
// (clusters[].routing in regent.yaml). Every part is optional: with none,
// writes are routed by HAProxy's health checks against /primary alone.
type RoutingConfig struct {
	HAProxy  []HAProxyConfig  `yaml:"haproxy" json:"haproxy"`
	ProxySQL []ProxySQLConfig `yaml:"proxysql" json:"proxysql"`
	Hooks    []HookConfig     `yaml:"hooks" json:"hooks"`
	// HealthChecks declares the balancers that route by their checks of
	// /primary alone, with their check timings, for the write-blocked
	// window Regent reports (HealthCheckConfig).
	HealthChecks []HealthCheckConfig `yaml:"health_checks" json:"health_checks,omitempty"`
}

// Validate checks the section; key is its path for messages (e.g.
// "clusters[0].routing") and instances the cluster's instance names.
func (c RoutingConfig) Validate(key string, instances []string) error {
	names := map[string]string{}
	for i, h := range c.HAProxy {
		k := fmt.Sprintf("%s.haproxy[%d]", key, i)
		if err := h.Validate(k, instances); err != nil {
			return err
		}
		if prev, dup := names["haproxy "+h.Name]; dup {
			return fmt.Errorf("%s.name: %q is also the name of %s", k, h.Name, prev)
		}
		names["haproxy "+h.Name] = k
	}
	for i, p := range c.ProxySQL {
		k := fmt.Sprintf("%s.proxysql[%d]", key, i)
		if err := p.Validate(k, instances); err != nil {
			return err
		}
		if prev, dup := names["proxysql "+p.Name]; dup {
			return fmt.Errorf("%s.name: %q is also the name of %s", k, p.Name, prev)
		}
		names["proxysql "+p.Name] = k
	}
	for i, h := range c.HealthChecks {
		k := fmt.Sprintf("%s.health_checks[%d]", key, i)
		if err := h.Validate(k); err != nil {
			return err
		}
		if prev, dup := names["health_checks "+h.Name]; dup {
			return fmt.Errorf("%s.name: %q is also the name of %s", k, h.Name, prev)
		}
		names["health_checks "+h.Name] = k
	}
	hookNames := map[string]bool{}
	for i, h := range c.Hooks {
		k := fmt.Sprintf("%s.hooks[%d]", key, i)
		if err := h.Validate(k); err != nil {
			return err
		}
		if hookNames[h.Name] {
			return fmt.Errorf("%s.name: %q is used twice", k, h.Name)
		}
		hookNames[h.Name] = true
	}
	return nil
}

// ClusterRouting is what NewClusterRouting builds for one cluster.
type ClusterRouting struct {
	// Targets go to Router.SetTargets: every HAProxy, every ProxySQL and,
	// when a hook listens to route or unroute, the hooks.
	Targets []Target
	// Hooks runs the other events (pre/post failover and switchover, fence,
	// failed) for the failover runner.
	Hooks *Hooks
	// HealthChecks are the balancers that route by health checks alone.
	HealthChecks []HealthCheckConfig
}

// NewClusterRouting validates cfg and builds the cluster's targets and hooks.
// Nothing connects yet. On error, whatever was built is closed.
func NewClusterRouting(cfg RoutingConfig, hookOpts HooksOptions, logger *slog.Logger) (*ClusterRouting, error) {
	if err := cfg.Validate("routing", nil); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cr := &ClusterRouting{HealthChecks: cfg.HealthChecks}
	fail := func(err error) (*ClusterRouting, error) {
		var errs []error
		for _, t := range cr.Targets {
			if c, ok := t.(interface{ Close() error }); ok {
				errs = append(errs, c.Close())
			}
		}
		return nil, errors.Join(append([]error{err}, errs...)...)
	}
	for _, h := range cfg.HAProxy {
		t, err := NewHAProxyTarget(h, logger)
		if err != nil {
			return fail(err)
		}
		cr.Targets = append(cr.Targets, t)
	}
	for _, p := range cfg.ProxySQL {
		t, err := NewProxySQLTarget(p, logger)
		if err != nil {
			return fail(err)
		}
		cr.Targets = append(cr.Targets, t)
	}
	hooks, err := NewHooks(cfg.Hooks, hookOpts, logger)
	if err != nil {
		return fail(err)
	}
	cr.Hooks = hooks
	if len(hooks.For(EventRoute)) > 0 || len(hooks.For(EventUnroute)) > 0 {
		cr.Targets = append(cr.Targets, hooks.RouteTarget())
	}
	return cr, nil
}
