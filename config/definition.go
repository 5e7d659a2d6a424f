package config

import (
	"bytes"
	"errors"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// ParseDefinition reads a replication cluster added at run time (regentctl
// cluster create, README "Changing settings at run time"): one clusters:
// entry of regent.yaml, given as a mapping, as a one-item list (what
// regentctl discover proposes) or under a clusters: key, and checks it with
// the rules used at start against this agent's configuration. Its
// instances have no agent: an agent's local instance is declared in that
// agent's regent.yaml. Errors name the key and say what to change.
func (c Config) ParseDefinition(data []byte) (ClusterConfig, error) {
	item, err := definitionItem(data)
	if err != nil {
		return ClusterConfig{}, err
	}
	var cl ClusterConfig
	dec := yaml.NewDecoder(bytes.NewReader(item))
	dec.KnownFields(true)
	if err := dec.Decode(&cl); err != nil {
		return ClusterConfig{}, fmt.Errorf("cluster: %s", unknownKeyRE.ReplaceAllString(err.Error(), `unknown key "$1" (check its spelling against the README's Configuration section)`))
	}
	var v validation
	for _, yc := range c.Clusters {
		if yc.Name == cl.Name {
			v.bad("cluster.name", "%q is a cluster of regent.yaml already", cl.Name)
		}
	}
	for j, in := range cl.Instances {
		if in.Agent != "" {
			v.bad(fmt.Sprintf("cluster.instances[%d].agent", j), "%s names agent %q: a cluster added at run time has no agent-owned instance (an agent's local instance is declared in its regent.yaml); remove the agent keys",
				in.Name, in.Agent)
		}
	}
	// Its instances are nobody's local instance, whatever their names.
	other := c
	other.LocalInstance = ""
	other.validateCluster(&v, "cluster", cl, nil)
	if err := errors.Join(v.errs...); err != nil {
		return ClusterConfig{}, err
	}
	return cl, nil
}

// definitionItem returns the YAML of the one cluster in data.
func definitionItem(data []byte) ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if m, ok := doc.(map[string]any); ok {
		if list, ok := m["clusters"]; ok {
			if len(m) > 1 {
				return nil, errors.New("cluster: give one cluster, alone under clusters: (the other keys of regent.yaml stay in regent.yaml)")
			}
			doc = list
		}
	}
	switch d := doc.(type) {
	case map[string]any:
		return data, nil
	case []any:
		if len(d) != 1 {
			return nil, fmt.Errorf("cluster: the list holds %d clusters; give one at a time", len(d))
		}
		return yaml.Marshal(d[0])
	default:
		return nil, errors.New("cluster: want one clusters: entry of regent.yaml (name, instances and its settings)")
	}
}
