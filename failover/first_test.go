package failover

import "testing"

func TestDecideFirstPrimary(t *testing.T) {
	readOnlyPrimary := func(pr *Probe) { pr.ReadOnly = true }
	standalone := func(pr *Probe) { pr.Replica = nil }
	cases := []struct {
		name string
		b    *B
		want FirstPrimary
	}{
		{name: "one writable instance, the others its replicas",
			b:    base(),
			want: FirstPrimary{Record: true, Primary: "db1"}},
		{name: "all read-only: the one the replicas follow",
			b:    base().probes("db1", readOnlyPrimary),
			want: FirstPrimary{Record: true, Primary: "db1"}},
		{name: "all read-only, replicas split evenly: the first by name",
			b: base().probes("db1", readOnlyPrimary).probes("db2", standalone).probes("db3", standalone).
				addInstance("db4", "a1", true).replica("db4", func(r *ReplicaStatus) { r.Source = "db3" }).
				addInstance("db5", "a1", true).replica("db5", func(r *ReplicaStatus) { r.Source = "db2" }),
			want: FirstPrimary{Record: true, Primary: "db2"}},
		{name: "a source given by address counts for its instance",
			b:    base().probes("db1", readOnlyPrimary).replica("db2", func(r *ReplicaStatus) { r.Source = "10.0.0.1:3306" }).replica("db3", func(r *ReplicaStatus) { r.Source = "10.0.0.1:3306" }),
			want: FirstPrimary{Record: true, Primary: "db1"}},
		{name: "a source outside the cluster is not a candidate",
			b:    base().probes("db1", readOnlyPrimary).probes("db1", standalone).replica("db2", func(r *ReplicaStatus) { r.Source = "elsewhere:3306" }).replica("db3", func(r *ReplicaStatus) { r.Source = "elsewhere:3306" }),
			want: FirstPrimary{Record: true}},
		{name: "several writable: a conflict for an operator",
			b:    base().probes("db2", standalone).probes("db2", func(pr *Probe) { pr.ReadOnly = false }),
			want: FirstPrimary{Conflict: true}},
		{name: "a writable replica is not a primary",
			b:    base().probes("db2", func(pr *Probe) { pr.ReadOnly = false }),
			want: FirstPrimary{Record: true, Primary: "db1"}},
		{name: "an instance not probed by the leader yet: wait",
			b:    base().inst("db3", func(in *Instance) { delete(in.Probes, "a2") }),
			want: FirstPrimary{}},
		{name: "only probes by other agents: wait",
			b:    base().inst("db1", func(in *Instance) { delete(in.Probes, "a2") }),
			want: FirstPrimary{}},
		{name: "the one writable instance, another not reached: recorded",
			b:    base().probes("db3", func(pr *Probe) { failed(pr, ClassRefused, ago(0)) }),
			want: FirstPrimary{Record: true, Primary: "db1"}},
		{name: "no primary found and one not reached: wait, it may be the one",
			b:    base().probes("db1", func(pr *Probe) { failed(pr, ClassRefused, ago(0)) }).replica("db2", func(r *ReplicaStatus) { r.Source = "elsewhere:3306" }).replica("db3", func(r *ReplicaStatus) { r.Source = "elsewhere:3306" }),
			want: FirstPrimary{}},
		{name: "every instance read-only and standalone: recorded without a primary",
			b:    base().probes("db1", readOnlyPrimary).probes("db2", standalone).probes("db3", standalone),
			want: FirstPrimary{Record: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := tc.b.build()
			got := DecideFirstPrimary(v)
			if got.Why == "" {
				t.Errorf("no reason given: %+v", got)
			}
			got.Why = ""
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
