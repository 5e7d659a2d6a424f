package main

import (
	"bytes"
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/regentdb/regent/api"
)

// status of a cluster with MySQL's long GTID sets, a replica in
// maintenance and a problem with a long reason, at 80 and 200 columns
// (testdata/status-*.golden): the columns that do not fit are left out and
// named, long texts wrapped.
func TestStatusGolden(t *testing.T) {
	fake, url := agentServer(t)
	c, _ := fake.Cluster(context.Background(), "main")
	for i := range c.Instances {
		c.Instances[i].GTIDSummary = "1007e19d-f1cb-11f1-bac7-ea5c9bf67df9:1-6471,1098c353-f1cb-11f1-8f7d-5ebf1291faae:1-7815"
		if c.Instances[i].Name == "db2" {
			c.Instances[i].Maintenance = &api.Maintenance{By: "alice", Reason: "disk swap",
				Since: time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC), Until: time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)}
		}
	}
	c.Problems = append(c.Problems, api.Problem{Code: "InstanceInMaintenance", Instances: []string{"db2"}, Priority: 72,
		Reason: "db2 is in maintenance until 2026-12-07 03:00 UTC by alice: disk swap; it is never promoted, and its replica problems are neither reported nor repaired until then (regentctl maintenance end db2)"})
	fake.SetCluster(c)
	for _, width := range []int{80, 200} {
		var out, errb bytes.Buffer
		e := env(url)
		e["COLUMNS"] = strconv.Itoa(width)
		a := &app{ctx: context.Background(), stdout: &out, stderr: &errb, getenv: func(k string) string { return e[k] },
			now: func() time.Time { return time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC) }}
		root := a.rootCommand()
		root.SetArgs([]string{"status"})
		if err := root.ExecuteContext(context.Background()); err != nil {
			t.Fatalf("status: %v %s", err, errb.String())
		}
		matchGolden(t, "status", width, out.String())
	}
}
