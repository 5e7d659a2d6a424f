package config

import (
	"strings"
	"testing"
	"time"

	"github.com/regentdb/regent/consensus"
)

func TestEditPolicy(t *testing.T) {
	base := DefaultPolicy()
	cases := []struct {
		name, settings string
		check          func(t *testing.T, got string)
		err            string
	}{
		{name: "nothing changes nothing", settings: "", check: func(t *testing.T, got string) {
			if got != "" {
				t.Errorf("change %q, want none", got)
			}
		}},
		{name: "durations, booleans, lists and the fallback", settings: "anti_flap_period: 10m\nauto_rejoin: false\npromotion_prefer_same: [zone]\nsemi_sync_fallback: 30s\n",
			check: func(t *testing.T, got string) {
				for _, want := range []string{"anti_flap_period: 5m0s → 10m0s", "auto_rejoin: true → false", "promotion_prefer_same: [] → [zone]", "semi_sync_fallback: never → 30s"} {
					if !strings.Contains(got, want) {
						t.Errorf("change %q lacks %q", got, want)
					}
				}
			}},
		{name: "promotion rules by instance", settings: "promotion: {db2: must_not, db3: prefer}\n", check: func(t *testing.T, got string) {
			if want := "promotion: {} → {db2: must_not, db3: prefer}"; got != want {
				t.Errorf("change %q, want %q", got, want)
			}
		}},
		{name: "a bad promotion rule", settings: "promotion: {db2: always}\n", err: `promotion: db2: "always": want prefer, neutral or must_not`},
		{name: "a restart-only key", settings: "fence_after: 1s\n", err: "fence_after: set only in regent.yaml"},
		{name: "an unknown key", settings: "instances: []\n", err: "instances: not a run-time setting"},
		{name: "a badly typed value", settings: "failure_timeout: soon\n", err: "soon"},
		{name: "a value the start-up rules refuse", settings: "failure_timeout: 10ms\n", err: "failure_timeout"},
		{name: "a bad fallback", settings: "semi_sync_fallback: -1s\n", err: "semi_sync_fallback"},
		{name: "not a mapping", settings: "- a\n- b\n", err: "not a YAML mapping"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ApplySettings(base, tc.settings)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				if SettingsChange(Runtime{Policy: base}, got) != "" {
					t.Fatalf("a refused edit changed the policy: %s", SettingsChange(Runtime{Policy: base}, got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, SettingsChange(Runtime{Policy: base}, got))
		})
	}
	if got, _ := ApplySettings(base, "anti_flap_period: 10m\n"); got.Policy.AntiFlapPeriod != 10*time.Minute || got.Policy.FenceAfter != base.FenceAfter {
		t.Fatalf("anti_flap_period %v fence_after %v", got.Policy.AntiFlapPeriod, got.Policy.FenceAfter)
	}
}

func TestRuntimeKeysLeaveTheLeaseInRegentYAML(t *testing.T) {
	keys := strings.Join(RuntimeKeys(), " ")
	for _, k := range RestartOnlyKeys() {
		if strings.Contains(" "+keys+" ", " "+k+" ") {
			t.Errorf("%s is a run-time key", k)
		}
	}
	for _, k := range []string{"failure_timeout", "anti_flap_period", "durability", "semi_sync_fallback", "promotion_same"} {
		if !strings.Contains(" "+keys+" ", " "+k+" ") {
			t.Errorf("%s is not a run-time key: %s", k, keys)
		}
	}
}

func TestMergeSettings(t *testing.T) {
	got, err := MergeSettings("auto_rejoin: false\nanti_flap_period: 10m\n", "failure_timeout: 3s\nanti_flap_period: 20m\n", []string{"auto_rejoin"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "anti_flap_period: 20m\nfailure_timeout: 3s\n"; got != want {
		t.Fatalf("merged %q, want %q", got, want)
	}
	if got, _ := MergeSettings("auto_rejoin: false\n", "", []string{"auto_rejoin"}); got != "" {
		t.Fatalf("everything reset: %q", got)
	}
	if _, err := MergeSettings("", "not: [a mapping", nil); err == nil || !strings.Contains(err.Error(), "not a YAML mapping") {
		t.Fatalf("bad set: %v", err)
	}
}

func TestEffectiveInstancesAndCheckAddedInstance(t *testing.T) {
	file := []InstanceConfig{{Name: "db1", Address: "10.0.0.1:3306", Agent: "a1"}, {Name: "db2", Address: "10.0.0.2:3306", Agent: "a2"}, {Name: "db3", Address: "10.0.0.3:3306"}}
	got := EffectiveInstances(file, map[string]consensus.InstanceChange{
		"db3": {Removed: true},
		"db9": {Address: "10.0.0.9:3306", Promotion: "prefer"},
		"db5": {Address: "10.0.0.5:3306"},
	})
	var names []string
	for _, in := range got {
		names = append(names, in.Name)
	}
	if strings.Join(names, " ") != "db1 db2 db5 db9" || got[3].Promotion != "prefer" || got[0].Agent != "a1" {
		t.Fatalf("effective instances %+v", got)
	}
	for _, tc := range []struct {
		in   InstanceConfig
		says string
	}{
		{InstanceConfig{Name: "db4", Address: "10.0.0.4:3306", Labels: map[string]string{"region": "eu"}}, ""},
		{InstanceConfig{Name: "db4", Address: "10.0.0.4"}, "instances[db4].address"},
		{InstanceConfig{Name: "db2", Address: "10.0.0.4:3306", Labels: map[string]string{"region": "eu"}}, `"db2" is already an instance`},
		{InstanceConfig{Name: "db4", Address: "10.0.0.2:3306", Labels: map[string]string{"region": "eu"}}, "already the address of db2"},
		{InstanceConfig{Name: "db4", Address: "10.0.0.4:3306"}, `has no "region"`},
		{InstanceConfig{Name: "db4", Address: "10.0.0.4:3306", Labels: map[string]string{"region": "eu"}, Agent: "a4"}, "declared in regent.yaml"},
		{InstanceConfig{Name: "bad name", Address: "10.0.0.4:3306", Labels: map[string]string{"region": "eu"}}, "is not a valid name"},
	} {
		err := CheckAddedInstance(file, tc.in, []string{"region"})
		if tc.says == "" && err != nil || tc.says != "" && (err == nil || !strings.Contains(err.Error(), tc.says)) {
			t.Errorf("%+v: %v, want %q", tc.in, err, tc.says)
		}
	}
}

func TestRestartOnlySettings(t *testing.T) {
	got := RestartOnlySettings(DefaultPolicy())
	if len(got) != len(RestartOnlyKeys()) || got["fence_after"] != DefaultPolicy().FenceAfter.String() || got["semi_sync_wait_for"] != "1" {
		t.Fatalf("restart-only settings %v", got)
	}
}
