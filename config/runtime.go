package config

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/failover"
)

// Run-time settings (README "Changing settings at run time"). A cluster's
// failover settings may be changed while the agents run, through the
// replicated state (regentctl cluster edit-config): every agent applies the
// same YAML mapping of changed keys over its own regent.yaml. The keys below
// stay in regent.yaml, because an agent reads them once at start and
// agents applying a change at different moments could break what they
// guarantee together: the lease (fence_after, lease_timeout: an isolated
// primary must stop writing before the leader may promote another), the
// probe loop's period and what it keeps (probe_interval, observation_ttl),
// and the count of acknowledgements the fence relies on
// (semi_sync_wait_for).
var restartOnlyKeys = []string{"fence_after", "lease_timeout", "observation_ttl", "probe_interval", "semi_sync_wait_for"}

// policyKeys calls f with each failover setting's key and value, in the
// order of failover.Policy's fields (semi_sync_fallback, decoded on its
// own, is not among them).
func policyKeys(p failover.Policy, f func(key string, value any)) {
	v := reflect.ValueOf(p)
	t := v.Type()
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			f(name, v.Field(i).Interface())
		}
	}
}

// RuntimeKeys lists the settings that may change at run time, sorted.
func RuntimeKeys() []string {
	return slices.Sorted(maps.Keys(RuntimeSettings(Runtime{Policy: failover.DefaultPolicy()})))
}

// RestartOnlyKeys lists the failover settings that only regent.yaml sets.
func RestartOnlyKeys() []string { return slices.Clone(restartOnlyKeys) }

// RestartOnlySettings renders p's regent.yaml-only settings, by key.
func RestartOnlySettings(p failover.Policy) map[string]string {
	out := map[string]string{}
	policyKeys(p, func(key string, value any) {
		if slices.Contains(restartOnlyKeys, key) {
			out[key] = settingText(value)
		}
	})
	return out
}

// Runtime is a cluster's effective run-time configuration: the failover
// policy, and the promotion rules set at run time by instance (the key
// promotion, a mapping of instance to prefer, neutral or must_not), which
// take the place of the instances' promotion in regent.yaml.
type Runtime struct {
	Policy    failover.Policy
	Promotion map[string]failover.PromotionRule
}

// ApplySettings applies settings, a YAML mapping of run-time keys, over
// base (the cluster's policy from regent.yaml) and validates the result
// with the rules used at start. Errors name the key: unknown, restart-only,
// badly typed or invalid in combination. The promotion rules' instance
// names are the caller's to check (it knows the cluster's instances).
func ApplySettings(base failover.Policy, settings string) (Runtime, error) {
	rt, err := applySettings(base, settings)
	if err != nil {
		return Runtime{Policy: base}, err
	}
	return rt, nil
}

func applySettings(base failover.Policy, settings string) (Runtime, error) {
	if strings.TrimSpace(settings) == "" {
		return Runtime{Policy: base}, nil
	}
	var keys map[string]yaml.Node
	if err := yaml.Unmarshal([]byte(settings), &keys); err != nil {
		return Runtime{}, fmt.Errorf("the settings are not a YAML mapping of keys to values: %w", err)
	}
	runtime := RuntimeKeys()
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		switch {
		case slices.Contains(restartOnlyKeys, k):
			return Runtime{}, fmt.Errorf("%s: set only in regent.yaml (every agent, rolling restart): agents applying it at different moments could break the lease or the probe loop", k)
		case !slices.Contains(runtime, k):
			return Runtime{}, fmt.Errorf("%s: not a run-time setting of a cluster; these are: %s (instances and routing stay in regent.yaml)", k, strings.Join(runtime, ", "))
		}
	}
	var in struct {
		failover.Policy `yaml:",inline"`
		Fallback        *string           `yaml:"semi_sync_fallback"`
		Promotion       map[string]string `yaml:"promotion"`
	}
	in.Policy = base
	dec := yaml.NewDecoder(bytes.NewReader([]byte(settings)))
	dec.KnownFields(true)
	if err := dec.Decode(&in); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return Runtime{}, fmt.Errorf("%s", strings.Join(te.Errors, "; "))
		}
		return Runtime{}, err
	}
	if in.Fallback != nil {
		d, err := parseFallback(*in.Fallback)
		if err != nil {
			return Runtime{}, fmt.Errorf("semi_sync_fallback: %w", err)
		}
		in.SemiSyncFallback = d
	}
	if err := in.Policy.Validate(); err != nil {
		return Runtime{}, err
	}
	rt := Runtime{Policy: in.Policy}
	for _, n := range slices.Sorted(maps.Keys(in.Promotion)) {
		r := failover.PromotionRule(in.Promotion[n])
		if r != failover.PromotionPrefer && r != failover.PromotionNeutral && r != failover.PromotionMustNot {
			return Runtime{}, fmt.Errorf("promotion: %s: %q: want prefer, neutral or must_not", n, in.Promotion[n])
		}
		if rt.Promotion == nil {
			rt.Promotion = map[string]failover.PromotionRule{}
		}
		rt.Promotion[n] = r
	}
	return rt, nil
}

// RuntimeSettings renders each run-time setting of rt as YAML text (the
// form ApplySettings reads), by key.
func RuntimeSettings(rt Runtime) map[string]string {
	p := rt.Policy
	out := map[string]string{}
	policyKeys(p, func(key string, value any) {
		if !slices.Contains(restartOnlyKeys, key) {
			out[key] = settingText(value)
		}
	})
	out["semi_sync_fallback"] = "never"
	if p.SemiSyncFallback > 0 {
		out["semi_sync_fallback"] = p.SemiSyncFallback.String()
	}
	var rules []string
	for _, n := range slices.Sorted(maps.Keys(rt.Promotion)) {
		rules = append(rules, n+": "+string(rt.Promotion[n]))
	}
	out["promotion"] = "{" + strings.Join(rules, ", ") + "}"
	return out
}

func settingText(x any) string {
	switch x := x.(type) {
	case time.Duration:
		return x.String()
	case []string:
		return "[" + strings.Join(x, ", ") + "]"
	}
	return fmt.Sprint(x)
}

// SettingsChange describes, for people and the history, how the run-time
// settings of before and after differ: "key: old → new; ..." ("" when they
// do not).
func SettingsChange(before, after Runtime) string {
	b, a := RuntimeSettings(before), RuntimeSettings(after)
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(a)) {
		if b[k] != a[k] {
			parts = append(parts, fmt.Sprintf("%s: %s → %s", k, b[k], a[k]))
		}
	}
	return strings.Join(parts, "; ")
}

// MergeSettings returns the run-time settings current (a YAML mapping, as
// stored) with the keys of set (a YAML mapping) replaced or added and the
// keys named in reset removed (back to regent.yaml), as a YAML mapping with
// its keys sorted. It checks the shape only: ApplySettings judges the values.
func MergeSettings(current, set string, reset []string) (string, error) {
	m := map[string]any{}
	if strings.TrimSpace(current) != "" {
		if err := yaml.Unmarshal([]byte(current), &m); err != nil {
			return "", fmt.Errorf("the stored settings cannot be read: %w", err)
		}
	}
	if strings.TrimSpace(set) != "" {
		var add map[string]any
		if err := yaml.Unmarshal([]byte(set), &add); err != nil {
			return "", fmt.Errorf("the settings to set are not a YAML mapping of keys to values (key: value, one per line): %w", err)
		}
		maps.Copy(m, add)
	}
	for _, k := range reset {
		delete(m, k)
	}
	if len(m) == 0 {
		return "", nil
	}
	out, err := yaml.Marshal(m)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

// EffectiveInstances returns a cluster's instances: regent.yaml's, less
// those removed at run time, then those added at run time (by name), as
// the replicated state records them (regentctl cluster add|remove).
func EffectiveInstances(fromFile []InstanceConfig, changes map[string]consensus.InstanceChange) []InstanceConfig {
	var out []InstanceConfig
	for _, in := range fromFile {
		if _, changed := changes[in.Name]; !changed {
			out = append(out, in)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(changes)) {
		if ch := changes[n]; !ch.Removed {
			out = append(out, InstanceConfig{Name: n, Address: ch.Address, Promotion: ch.Promotion, Labels: maps.Clone(ch.Labels)})
		}
	}
	return out
}

// CheckAddedInstance checks an instance to add at run time to a cluster
// whose instances are now current, with the rules used at start (its own
// keys, a name and an address not used yet); errors name the key. An
// instance added at run time has no agent: one with an agent on its host
// is declared in regent.yaml, where that agent's local_instance names it.
func CheckAddedInstance(current []InstanceConfig, in InstanceConfig, promotionSame []string) error {
	var v validation
	key := "instances[" + in.Name + "]"
	checkInstance(&v, key, in, promotionSame, "the cluster")
	for _, c := range current {
		if c.Name == in.Name {
			v.bad(key+".name", "%q is already an instance of the cluster", in.Name)
		}
		if c.Address == in.Address {
			v.bad(key+".address", "%s is already the address of %s", in.Address, c.Name)
		}
	}
	if in.Agent != "" {
		v.bad(key+".agent", "an instance with an agent on its host is declared in regent.yaml (that agent's local_instance), not added at run time")
	}
	return errors.Join(v.errs...)
}
