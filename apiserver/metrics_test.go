package apiserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/apiserver"
	"github.com/regentdb/regent/apiserver/apiservertest"
)

// promtoolPath finds promtool or fails the test saying what to install.
func promtoolPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found in PATH: install Debian's prometheus package " +
			"(apt-get install prometheus), which provides /usr/bin/promtool")
	}
	return p
}

// populate feeds m every kind of observation, from the fake's views.
func populate(t *testing.T, m *apiserver.Metrics) api.Cluster {
	t.Helper()
	fake := apiservertest.NewFakeBackend()
	defer fake.Close()
	ctx := context.Background()
	c, err := fake.Cluster(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	since := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	until := since.Add(time.Hour)
	c.Paused = &api.Pause{By: "ops-admin", Reason: "kernel upgrade", Since: since}
	c.AntiFlapUntil = &until
	c.AutomaticFailover = api.AutomaticFailover{Enabled: true, Blockers: []api.Blocker{
		{Kind: api.BlockPaused, Reason: "paused by ops-admin"}, {Kind: api.BlockAntiFlap, Reason: "failed over 10m ago", Until: &until},
		{Kind: api.BlockAntiFlap, Reason: "the same kind twice"}}}
	c.Operation = &api.OperationRef{ID: "op-1", Kind: api.OpSwitchover, Started: since}
	for i := range c.Instances {
		if c.Instances[i].Name == "db2" {
			c.Instances[i].Maintenance = &api.Maintenance{By: "ops-admin", Reason: "disk swap", Since: since, Until: until}
		}
	}
	m.ObserveCluster(c)
	st, err := fake.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.IsLeader, st.RaftState, st.LeaderID = false, "follower", "a2"
	contact := time.Now().Add(-300 * time.Millisecond)
	st.Members[1].LastContact = &contact
	m.ObserveStatus(st)
	h, err := fake.History(ctx, "main", 10)
	if err != nil {
		t.Fatal(err)
	}
	m.ObserveOperation(h[0])
	m.ObserveOperation(api.Operation{Cluster: "main", Kind: api.OpSwitchover, Result: api.ResultRunning}) // ignored
	m.ObserveDetection("main", 420*time.Millisecond)
	m.ObserveProbe(3 * time.Millisecond)
	m.ObserveProbeRound(2500*time.Millisecond, 2)
	m.ObserveRoutingUpdate("main", "haproxy", "success")
	return c
}

func scrape(t *testing.T, m *apiserver.Metrics) []byte {
	t.Helper()
	fake := apiservertest.NewFakeBackend()
	defer fake.Close()
	_, ts := newServer(t, fake, func(c *apiserver.Config) { c.Metrics = m })
	_ = call(t, ts, "GET", "/v1/status", readOnly, "") // count one API request
	a := call(t, ts, "GET", "/metrics", "", "")
	if a.status != 200 {
		t.Fatalf("/metrics: %d %s", a.status, a.body)
	}
	return a.body
}

func TestMetricsPassPromtoolCheck(t *testing.T) {
	pt := promtoolPath(t)
	m := apiserver.NewMetrics("v1.2.3")
	populate(t, m)
	body := scrape(t, m)
	cmd := exec.Command(pt, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Fatalf("promtool check metrics: %v\n%s\n--- scraped:\n%s", err, out, body)
	}
	for _, want := range []string{
		`regent_cluster_primary{cluster="main",db_instance="db1"} 1`,
		`regent_cluster_has_primary{cluster="main"} 1`,
		`regent_cluster_epoch{cluster="main"} 7`,
		`regent_cluster_paused{cluster="main"} 1`,
		`regent_cluster_automatic_failover_possible{cluster="main"} 0`,
		`regent_cluster_automatic_failover_blocked{cluster="main",reason="anti_flap"} 1`,
		`regent_cluster_automatic_failover_blocked{cluster="main",reason="paused"} 1`,
		`regent_cluster_problems{cluster="main",code="ReplicaLagging"} 1`,
		`regent_instance_role{cluster="main",db_instance="db2",role="replica"} 1`,
		`regent_instance_role{cluster="main",db_instance="db2",role="primary"} 0`,
		`regent_instance_replication_lag_seconds{cluster="main",db_instance="db3"} 2.5`,
		`regent_instance_replication_io_running{cluster="main",db_instance="db2"} 1`,
		`regent_instance_reachable{agent="a3",cluster="main",db_instance="db3"} 0`,
		`regent_instance_up{cluster="main",db_instance="db3"} 1`,
		`regent_instance_questions_total{cluster="main",db_instance="db1"} 9.120331e+06`,
		`regent_instance_read_only{cluster="main",db_instance="db1"} 0`,
		`regent_operations_total{cluster="main",kind="failover",result="success"} 1`,
		`regent_operations_total{cluster="main",kind="switchover",result="failed"} 0`,
		`regent_operation_write_blocked_seconds_count{cluster="main",kind="failover"} 1`,
		`regent_failure_detection_seconds_count{cluster="main"} 1`,
		`regent_probe_seconds_bucket{le="0.005"} 1`,
		`regent_probe_round_seconds_count 1`,
		`regent_probe_rounds_missed_total 2`,
		`regent_routing_updates_total{cluster="main",result="success",target="haproxy"} 1`,
		`regent_raft_state{state="follower"} 1`,
		`regent_raft_has_leader 1`,
		`regent_raft_leader{member="a2"} 1`,
		`regent_raft_term 5`,
		`regent_lease_held 1`,
		`regent_build_info{version="v1.2.3"} 1`,
		`regent_api_requests_total{code="200",route="GET /v1/status"} 1`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !regexp.MustCompile(`(?m)^regent_raft_last_contact_seconds 0\.[0-9]+`).Match(body) {
		t.Error("regent_raft_last_contact_seconds is not the time since the leader's last contact")
	}
}

func TestMetricsNeverLabelWithGTIDs(t *testing.T) {
	m := apiserver.NewMetrics("test")
	c := populate(t, m)
	var gtids []string
	for _, in := range c.Instances {
		gtids = append(gtids, in.GTIDSummary)
	}
	gtids = append(gtids, "0-2-4980") // the history's GTID at promotion
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, metric := range f.Metric {
			for _, l := range metric.Label {
				if slices.Contains(gtids, l.GetValue()) {
					t.Errorf("%s has a GTID in label %s", f.GetName(), l.GetName())
				}
				if l.GetName() == "instance" {
					t.Errorf("%s uses the label name instance, which Prometheus reserves for the scrape target", f.GetName())
				}
			}
		}
	}
}

// A fallback to asynchronous commits (Regent's recorded decision under
// semi_sync_fallback) shows as regent_cluster_semi_sync_degraded 1, the
// series the RegentSemiSyncDegraded alert watches, and 0 once restored.
func TestMetricsSemiSyncDegraded(t *testing.T) {
	m := apiserver.NewMetrics("test")
	c := populate(t, m)
	const series = `regent_cluster_semi_sync_degraded{cluster="main"} `
	if body := scrape(t, m); !bytes.Contains(body, []byte(series+"0")) {
		t.Fatalf("lossless cluster: want %s0 in\n%s", series, body)
	}
	c.SemiSyncDegraded = &api.SemiSyncDegraded{Since: time.Now(), Reason: "no replica acknowledged for 30s", OperationID: "op-7"}
	m.ObserveCluster(c)
	if body := scrape(t, m); !bytes.Contains(body, []byte(series+"1")) {
		t.Fatalf("degraded cluster: want %s1 in\n%s", series, body)
	}
	c.SemiSyncDegraded = nil
	m.ObserveCluster(c)
	if body := scrape(t, m); !bytes.Contains(body, []byte(series+"0")) {
		t.Fatalf("restored cluster: want %s0 in\n%s", series, body)
	}
}

// An instance in maintenance shows when its maintenance ends; the series is
// absent once it has ended.
func TestMetricsInstanceMaintenance(t *testing.T) {
	m := apiserver.NewMetrics("test")
	c := populate(t, m)
	const series = `regent_instance_maintenance_until_seconds{cluster="main",db_instance="db3"} `
	if body := scrape(t, m); bytes.Contains(body, []byte(series)) {
		t.Fatalf("no maintenance: want no %s series in\n%s", series, body)
	}
	until := time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)
	for i := range c.Instances {
		if c.Instances[i].Name == "db3" {
			c.Instances[i].Maintenance = &api.Maintenance{By: "alice", Reason: "disk swap", Since: until.Add(-time.Hour), Until: until}
		}
	}
	m.ObserveCluster(c)
	if body := scrape(t, m); !bytes.Contains(body, []byte(series+strconv.FormatFloat(float64(until.Unix()), 'g', -1, 64))) {
		t.Fatalf("in maintenance: want %s%d in\n%s", series, until.Unix(), body)
	}
}

// Failovers no operator has acknowledged are counted per cluster.
func TestMetricsUnacknowledgedFailovers(t *testing.T) {
	m := apiserver.NewMetrics("test")
	c := populate(t, m)
	const series = `regent_cluster_unacknowledged_failovers{cluster="main"} `
	c.Unacknowledged = nil
	m.ObserveCluster(c)
	if body := scrape(t, m); !bytes.Contains(body, []byte(series+"0")) {
		t.Fatalf("none: want %s0 in\n%s", series, body)
	}
	c.Unacknowledged = []api.OperationRef{{ID: "op-1", Kind: api.OpFailover}, {ID: "op-2", Kind: api.OpForcedFailover}}
	m.ObserveCluster(c)
	if body := scrape(t, m); !bytes.Contains(body, []byte(series+"2")) {
		t.Fatalf("two: want %s2 in\n%s", series, body)
	}
}

func TestMetricsFollowTheSnapshots(t *testing.T) {
	m := apiserver.NewMetrics("test")
	c := populate(t, m)
	c.Instances = c.Instances[:2] // db3 removed from the configuration
	c.Primary = ""
	m.ObserveCluster(c)
	body := scrape(t, m)
	if bytes.Contains(body, []byte(`db_instance="db3"`)) {
		t.Error("a removed instance is still exported")
	}
	if !bytes.Contains(body, []byte(`regent_cluster_has_primary{cluster="main"} 0`)) || bytes.Contains(body, []byte(`regent_cluster_primary{`)) {
		t.Error("a cluster without a primary must export has_primary 0 and no primary series")
	}
	m.ForgetCluster("main")
	body = scrape(t, m)
	if bytes.Contains(body, []byte(`cluster="main"`)) {
		t.Error("a forgotten cluster is still exported")
	}
}

// definedMetrics returns every metric name the registry exports, with the
// series names of histograms and summaries.
func definedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	m := apiserver.NewMetrics("test")
	populate(t, m)
	scrape(t, m)
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		n := f.GetName()
		names[n] = true
		if f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY {
			names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
		}
	}
	return names
}

// metricNames extracts the metric names a PromQL expression selects: it
// drops strings, label matchers, ranges and grouping clauses, then keeps
// identifiers that are neither functions nor keywords.
func metricNames(expr string) []string {
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`"(?:[^"\\]|\\.)*"`),
		regexp.MustCompile(`\{[^}]*\}`),
		regexp.MustCompile(`\[[^\]]*\]`),
		regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`),
	} {
		expr = re.ReplaceAllString(expr, " ")
	}
	keywords := map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true,
		"Inf": true, "NaN": true, "group_left": true, "group_right": true}
	var out []string
	for _, loc := range regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`).FindAllStringIndex(expr, -1) {
		id := expr[loc[0]:loc[1]]
		if loc[0] > 0 && (expr[loc[0]-1] == '$' || expr[loc[0]-1] >= '0' && expr[loc[0]-1] <= '9' || expr[loc[0]-1] == '.') {
			continue // a Grafana variable, or a number such as 1e3
		}
		rest := strings.TrimLeft(expr[loc[1]:], " \t\n")
		if strings.HasPrefix(rest, "(") || keywords[id] {
			continue
		}
		out = append(out, id)
	}
	return out
}

func TestMetricNamesExtractor(t *testing.T) {
	got := metricNames(`histogram_quantile(0.5, sum by (le, kind) (rate(regent_x_bucket{cluster=~"$cluster"}[5m]))) / on(a) group_left regent_y and max by (c) (regent_z) > 1e3`)
	want := []string{"regent_x_bucket", "regent_y", "regent_z"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// collectExprs walks a JSON document and returns every "expr" string, and
// the metric of every Grafana label_values(metric, label) query.
func collectExprs(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && (k == "expr" || k == "definition") {
				if m := regexp.MustCompile(`^label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)`).FindStringSubmatch(s); m != nil {
					*out = append(*out, m[1])
				} else if k == "expr" {
					*out = append(*out, s)
				}
				continue
			}
			collectExprs(e, out)
		}
	case []any:
		for _, e := range x {
			collectExprs(e, out)
		}
	}
}

func TestGrafanaDashboardUsesOnlyDefinedMetrics(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "regent-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("the dashboard is not valid JSON: %v", err)
	}
	if dash["title"] != "Regent" || dash["uid"] == "" {
		t.Errorf("title %v uid %v", dash["title"], dash["uid"])
	}
	var exprs []string
	collectExprs(dash, &exprs)
	if len(exprs) < 20 {
		t.Fatalf("only %d expressions in the dashboard", len(exprs))
	}
	defined := definedMetrics(t)
	used := map[string]bool{}
	for _, e := range exprs {
		names := metricNames(e)
		if len(names) == 0 {
			t.Errorf("expression selects no metric: %s", e)
		}
		for _, n := range names {
			used[n] = true
			if !defined[n] {
				t.Errorf("the dashboard uses %s, which Regent does not export (in %s)", n, e)
			}
		}
	}
	// Every regent_ metric family should be on the dashboard or in an alert.
	alerts, err := os.ReadFile(filepath.Join("..", "deploy", "prometheus", "regent-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for n := range defined {
		if strings.HasPrefix(n, "regent_") && !used[n] && !bytes.Contains(alerts, []byte(n)) &&
			!strings.HasSuffix(n, "_sum") && !strings.HasSuffix(n, "_count") && !strings.HasSuffix(n, "_bucket") {
			missing = append(missing, n)
		}
	}
	sort.Strings(missing)
	t.Logf("regent_ metrics on neither the dashboard nor an alert: %v", missing)
}

func TestAlertRulesPassPromtool(t *testing.T) {
	pt := promtoolPath(t)
	dir := filepath.Join("..", "deploy", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "regent-alerts.yml"},
		{"test", "rules", "regent-alerts.test.yml"},
	} {
		cmd := exec.Command(pt, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
	}
}

func TestEveryAlertIsTestedAndUsesDefinedMetrics(t *testing.T) {
	dir := filepath.Join("..", "deploy", "prometheus")
	rules, err := os.ReadFile(filepath.Join(dir, "regent-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join(dir, "regent-alerts.test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	defined := definedMetrics(t)
	alerts := regexp.MustCompile(`(?m)^\s*- alert: (\S+)`).FindAllSubmatch(rules, -1)
	if len(alerts) < 9 {
		t.Fatalf("only %d alerts", len(alerts))
	}
	for _, a := range alerts {
		name := string(a[1])
		// A test that expects it to fire has exp_alerts with labels after
		// "alertname: NAME".
		if !regexp.MustCompile(`alertname: ` + name + `\s+exp_alerts:\s+- exp_labels`).Match(tests) {
			t.Errorf("alert %s has no test that makes it fire", name)
		}
	}
	for _, m := range regexp.MustCompile(`\b(regent_[a-z_]+|process_[a-z_]+|go_[a-z_]+)\b`).FindAll(rules, -1) {
		if !defined[string(m)] && string(m) != "regent_alerts" {
			t.Errorf("an alert uses %s, which Regent does not export", m)
		}
	}
}

// countingSource is the fake backend as a snapshot source that counts its
// reads and can stop naming its clusters.
type countingSource struct {
	*apiservertest.FakeBackend
	reads    int
	noneLeft bool
}

func (s *countingSource) Status(ctx context.Context) (api.Status, error) {
	s.reads++
	st, err := s.FakeBackend.Status(ctx)
	if s.noneLeft {
		st.Clusters = nil
	}
	return st, err
}

// The snapshots are read from the source when scraped, not on a timer, and
// a cluster the source stops naming leaves /metrics.
func TestMetricsReadTheSourceWhenScraped(t *testing.T) {
	fake := apiservertest.NewFakeBackend()
	defer fake.Close()
	src := &countingSource{FakeBackend: fake}
	m := apiserver.NewMetrics("test")
	m.SetSource(src)
	if src.reads != 0 {
		t.Fatalf("the source was read %d times before any scrape", src.reads)
	}
	body := scrape(t, m)
	if src.reads != 1 {
		t.Errorf("one scrape read the source %d times, want 1", src.reads)
	}
	if !bytes.Contains(body, []byte(`regent_cluster_has_primary{cluster="main"} 1`)) {
		t.Errorf("the scrape does not show the source's cluster:\n%s", body)
	}
	src.noneLeft = true
	if body := scrape(t, m); bytes.Contains(body, []byte(`cluster="main"`)) {
		t.Errorf("a cluster the source no longer names is still exported:\n%s", body)
	}
}

// A configured cluster's operation counters exist at 0 before anything was
// observed of it, so that increase() sees its first failover even when that
// failover comes before the first scrape that could read the cluster.
func TestDeclaredClusterCountsFromZero(t *testing.T) {
	m := apiserver.NewMetrics("test")
	m.DeclareCluster("main")
	body := scrape(t, m)
	want := `regent_operations_total{cluster="main",kind="failover",result="success"} 0`
	if !bytes.Contains(body, []byte(want)) {
		t.Fatalf("a declared cluster's scrape lacks %s:\n%s", want, body)
	}
	ended := time.Unix(102, 0)
	m.ObserveOperation(api.Operation{Cluster: "main", Kind: api.OpFailover, Result: api.ResultSuccess,
		Started: time.Unix(100, 0), Ended: &ended})
	if body := scrape(t, m); !bytes.Contains(body, []byte(`regent_operations_total{cluster="main",kind="failover",result="success"} 1`)) {
		t.Errorf("the failover was not counted on the declared counter:\n%s", body)
	}
}
