package config

import (
	"strings"
	"testing"
	"time"
)

// A cluster added at run time (regentctl cluster create) is read in the
// shapes an operator has at hand and checked with the start-up rules; each
// refusal names the key.
func TestParseDefinition(t *testing.T) {
	y, _ := validConfigYAML(t)
	c, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	const one = "name: shop\nprobe_interval: 200ms\ninstances:\n  - {name: x1, address: 10.0.1.1:3306, promotion: prefer}\n  - {name: x2, address: 10.0.1.2:3306}\n"
	cases := []struct {
		name, def, want string // want "" means valid
	}{
		{"a mapping", one, ""},
		{"a list of one, as discover proposes", "  - name: shop\n    instances:\n      - {name: x1, address: 10.0.1.1:3306}   # primary\n", ""},
		{"under clusters:", "clusters:\n  - name: shop\n    instances:\n      - {name: x1, address: 10.0.1.1:3306}\n", ""},
		{"an instance named like this agent's local one", "name: shop\ninstances:\n  - {name: db1, address: 10.0.1.1:3306}\n", ""},
		{"two clusters", "- name: a\n  instances: [{name: x1, address: 10.0.1.1:3306}]\n- name: b\n  instances: [{name: x2, address: 10.0.1.2:3306}]\n", "give one at a time"},
		{"other keys of regent.yaml", "node_id: a9\nclusters:\n  - name: shop\n", "alone under clusters:"},
		{"not a cluster", "just words", "want one clusters: entry"},
		{"an unknown key", "name: shop\nprobe_intervall: 1s\ninstances: [{name: x1, address: 10.0.1.1:3306}]\n", `unknown key "probe_intervall"`},
		{"the name of a regent.yaml cluster", "name: main\ninstances: [{name: x1, address: 10.0.1.1:3306}]\n", `cluster.name: "main" is a cluster of regent.yaml already`},
		{"an agent-owned instance", "name: shop\ninstances: [{name: x1, address: 10.0.1.1:3306, agent: AGENT}]\n", "cluster.instances[0].agent"},
		{"an address without a port", "name: shop\ninstances: [{name: x1, address: 10.0.1.1}]\n", "cluster.instances[0].address"},
		{"no instances", "name: shop\n", "cluster.instances"},
		{"a bad setting", "name: shop\nlease_timeout: 1s\nfence_after: 5s\ninstances: [{name: x1, address: 10.0.1.1:3306}]\n", "cluster"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := c.ParseDefinition([]byte(tc.def))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if cl.Name == "" || len(cl.Instances) == 0 || cl.Policy.ProbeInterval == 0 {
					t.Fatalf("read %+v", cl)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	cl, err := c.ParseDefinition([]byte(one))
	if err != nil {
		t.Fatal(err)
	}
	if cl.Policy.ProbeInterval != 200*time.Millisecond || cl.Instances[0].Promotion != "prefer" || cl.Policy.ObservationTTL != 600*time.Millisecond {
		t.Fatalf("settings not read onto the defaults: %+v", cl.Policy)
	}
}
