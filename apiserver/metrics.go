package apiserver

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/regentdb/regent/api"
)

// Label names. The database instance label is db_instance, not instance:
// Prometheus gives every scraped series an "instance" label (the scrape
// target), which would clash.
const (
	labelCluster    = "cluster"
	labelDBInstance = "db_instance"
	labelRole       = "role"
	labelAgent      = "agent"
	labelReason     = "reason"
	labelKind       = "kind"
	labelResult     = "result"
	labelTarget     = "target"
	labelState      = "state"
	labelMember     = "member"
	labelCode       = "code"
	labelRoute      = "route"
	labelVersion    = "version"
)

// Metrics is the agent's Prometheus registry with the metrics of README
// "Metrics, alerts, dashboard" (prefix regent_), Go's runtime and process
// collectors, and the methods the agent calls to update them. Cluster,
// instance and Raft metrics are snapshots: the agent hands over its latest
// views (ObserveCluster, ObserveStatus) and they are rendered at scrape time,
// so an instance removed from a view disappears from /metrics. Operations,
// detections and routing updates are counters and histograms.
//
// No label ever holds a GTID set or free text: label values are names
// (clusters, instances, agents) or members of fixed sets (roles, blocker
// kinds, results, problem codes).
type Metrics struct {
	reg *prometheus.Registry
	now func() time.Time

	mu       sync.Mutex
	clusters map[string]api.Cluster
	status   *api.Status
	source   SnapshotSource // nil: snapshots come from Observe* alone

	operations   *prometheus.CounterVec
	opDuration   *prometheus.HistogramVec
	writeBlocked *prometheus.HistogramVec
	detection    *prometheus.HistogramVec
	routing      *prometheus.CounterVec
	requests     *prometheus.CounterVec
	reports      *prometheus.CounterVec
	probes       prometheus.Histogram
	probeRounds  prometheus.Histogram
	missedRounds prometheus.Counter
}

// NewMetrics builds the registry. version is exported in regent_build_info.
func NewMetrics(version string) *Metrics {
	m := &Metrics{
		reg:      prometheus.NewRegistry(),
		now:      time.Now,
		clusters: map[string]api.Cluster{},
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regent_operations_total",
			Help: "Failovers, forced failovers, switchovers and rejoins that ended, by kind and result (success, failed, aborted). Counted by the agent that ran them (the leader).",
		}, []string{labelCluster, labelKind, labelResult}),
		opDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "regent_operation_duration_seconds",
			Help:    "Run time of failovers, switchovers and rejoins, from start to end, by kind.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300},
		}, []string{labelCluster, labelKind}),
		writeBlocked: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "regent_operation_write_blocked_seconds",
			Help:    "How long writes were refused during a switchover (read_only on the old primary until the new one's first commit, or until routed when no client wrote) or a failover (primary lost until routed), by kind.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 4, 8, 15, 30},
		}, []string{labelCluster, labelKind}),
		detection: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "regent_failure_detection_seconds",
			Help:    "Time from the first failed probe of a primary to the decision that it is dead.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60},
		}, []string{labelCluster}),
		routing: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regent_routing_updates_total",
			Help: "Routing changes pushed to a target (haproxy, proxysql, a hook), by result (success, failed, rejected).",
		}, []string{labelCluster, labelTarget, labelResult}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regent_api_requests_total",
			Help: "HTTP API requests served, by route pattern and status code.",
		}, []string{labelRoute, labelCode}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regent_reports_refused_total",
			Help: "Agents' reports this agent refused, by reason: token (no or wrong agent token), identity (no agent certificate, or one naming another agent than the report), invalid, unknown_agent, skew (sent_at too far from this agent's clock), future (a time after the report's own sent_at).",
		}, []string{labelReason}),
		// No cluster label: across a fleet of a thousand clusters that
		// would be a thousand histograms; these say how the agent keeps up.
		probes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "regent_probe_seconds",
			Help:    "Time one probe of one instance took (dial or pooled connection, variables, status, replica status), all clusters together.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
		}),
		probeRounds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "regent_probe_round_seconds",
			Help:    "Time one round of a cluster's probes took (its replicas in parallel, then its primary), all clusters together.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
		}),
		missedRounds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "regent_probe_rounds_missed_total",
			Help: "Probe rounds skipped because the round before ran past the cluster's next probe_interval tick: the agent is not keeping up with its probes.",
		}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "regent_build_info",
		Help:        "Always 1; the version label names the agent's build.",
		ConstLabels: prometheus.Labels{labelVersion: version},
	})
	build.Set(1)
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		build, m.operations, m.opDuration, m.writeBlocked, m.detection, m.routing, m.requests, m.reports,
		m.probes, m.probeRounds, m.missedRounds,
		&snapshotCollector{m: m, d: newSnapshotDescs()},
	)
	return m
}

// SnapshotSource is where the snapshot metrics come from at scrape time
// (the agent's API: agent.API has both).
type SnapshotSource interface {
	Status(ctx context.Context) (api.Status, error)
	Cluster(ctx context.Context, name string) (api.Cluster, error)
}

// scrapeRefreshTimeout bounds the refresh a scrape makes.
const scrapeRefreshTimeout = 5 * time.Second

// SetSource makes every scrape through Handler refresh the snapshots from
// src first: the status of every cluster is built per scrape, not on a
// timer (refreshing a thousand clusters' status every second was a tenth of
// an agent's CPU, measured, whether or not anyone scraped). Call it before
// serving; DeclareCluster makes a cluster's counters exist before the first
// scrape.
func (m *Metrics) SetSource(src SnapshotSource) {
	m.mu.Lock()
	m.source = src
	m.mu.Unlock()
}

// refresh reads the snapshots from the source (a no-op without one).
// Clusters the source no longer names are forgotten.
func (m *Metrics) refresh(ctx context.Context) {
	m.mu.Lock()
	src := m.source
	m.mu.Unlock()
	if src == nil {
		return
	}
	st, err := src.Status(ctx)
	if err != nil {
		return
	}
	m.ObserveStatus(st)
	named := make(map[string]bool, len(st.Clusters))
	for _, name := range st.Clusters {
		named[name] = true
		if c, err := src.Cluster(ctx, name); err == nil {
			m.ObserveCluster(c)
		}
	}
	m.mu.Lock()
	var gone []string
	for name := range m.clusters {
		if !named[name] {
			gone = append(gone, name)
		}
	}
	m.mu.Unlock()
	for _, name := range gone {
		m.ForgetCluster(name)
	}
}

// Registry returns the registry, to add collectors or gather in tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format, refreshing
// the snapshots from the source first. The refresh comes before the gather,
// not inside a collector: the registry runs its collectors concurrently, so
// a refresh inside one would race the others (a cluster just forgotten
// could still show its counters, one just seen miss them).
func (m *Metrics) Handler() http.Handler {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, ErrorHandling: promhttp.ContinueOnError})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), scrapeRefreshTimeout)
		m.refresh(ctx)
		cancel()
		h.ServeHTTP(w, r)
	})
}

// ObserveCluster replaces the snapshot of one replication cluster: its
// primary, epoch, pause, automatic-failover state, problems and every
// instance's facts. Call it after each analysis round.
func (m *Metrics) ObserveCluster(c api.Cluster) {
	m.mu.Lock()
	_, known := m.clusters[c.Name]
	m.clusters[c.Name] = c
	m.mu.Unlock()
	if !known {
		m.DeclareCluster(c.Name)
	}
}

// DeclareCluster creates a cluster's operation counters at 0. Counters that
// exist before the first operation make increase() see it, and dashboards
// show 0 rather than nothing; the agent declares its configured clusters at
// start, and a cluster defined at run time is declared at its first scrape.
func (m *Metrics) DeclareCluster(name string) {
	for _, kind := range []string{api.OpFailover, api.OpForcedFailover, api.OpSwitchover, api.OpRejoin} {
		for _, res := range []string{api.ResultSuccess, api.ResultFailed, api.ResultAborted} {
			m.operations.WithLabelValues(name, kind, res)
		}
	}
}

// ForgetCluster drops a cluster that is no longer configured.
func (m *Metrics) ForgetCluster(name string) {
	m.mu.Lock()
	delete(m.clusters, name)
	m.mu.Unlock()
	m.operations.DeletePartialMatch(prometheus.Labels{labelCluster: name})
	m.opDuration.DeletePartialMatch(prometheus.Labels{labelCluster: name})
	m.writeBlocked.DeletePartialMatch(prometheus.Labels{labelCluster: name})
	m.detection.DeletePartialMatch(prometheus.Labels{labelCluster: name})
	m.routing.DeletePartialMatch(prometheus.Labels{labelCluster: name})
}

// ObserveStatus replaces the snapshot of the regent cluster: this agent's
// Raft state, the leader, term, indexes, members and lease.
func (m *Metrics) ObserveStatus(s api.Status) {
	m.mu.Lock()
	m.status = &s
	m.mu.Unlock()
}

// ObserveOperation counts an operation that ended, with its duration and
// write-blocked window. Call it once per operation, on the agent that ran
// it; a running operation is ignored.
func (m *Metrics) ObserveOperation(op api.Operation) {
	if !op.Done() || op.Ended == nil {
		return
	}
	m.operations.WithLabelValues(op.Cluster, op.Kind, op.Result).Inc()
	m.opDuration.WithLabelValues(op.Cluster, op.Kind).Observe(op.Ended.Sub(op.Started).Seconds())
	if op.WriteBlocked != nil {
		m.writeBlocked.WithLabelValues(op.Cluster, op.Kind).Observe(op.WriteBlocked.Std().Seconds())
	}
}

// ObserveDetection records how long it took to declare a primary dead.
func (m *Metrics) ObserveDetection(cluster string, latency time.Duration) {
	m.detection.WithLabelValues(cluster).Observe(latency.Seconds())
}

// ObserveProbe records the time one probe of one instance took.
func (m *Metrics) ObserveProbe(took time.Duration) { m.probes.Observe(took.Seconds()) }

// ObserveProbeRound records the time one round of a cluster's probes took
// and the rounds it made the cluster miss.
func (m *Metrics) ObserveProbeRound(took time.Duration, missed int) {
	m.probeRounds.Observe(took.Seconds())
	if missed > 0 {
		m.missedRounds.Add(float64(missed))
	}
}

// ObserveRoutingUpdate counts one routing change; target names the routing
// target (haproxy, proxysql, a hook's name), result is success, failed or
// rejected (an epoch older than the last applied one).
func (m *Metrics) ObserveRoutingUpdate(cluster, target, result string) {
	m.routing.WithLabelValues(cluster, target, result).Inc()
}

// DeclareReportRefusals makes the refused-report counters of these reasons
// exist at zero, so that rate() sees the first refusal.
func (m *Metrics) DeclareReportRefusals(reasons []string) {
	for _, r := range reasons {
		m.reports.WithLabelValues(r)
	}
}

// ObserveReportRefused counts one report refused for reason.
func (m *Metrics) ObserveReportRefused(reason string) {
	m.reports.WithLabelValues(reason).Inc()
}

func (m *Metrics) observeRequest(route, code string) {
	m.requests.WithLabelValues(route, code).Inc()
}

// snapshotDescs are the descriptors of the snapshot metrics.
type snapshotDescs struct {
	dInstanceUp            *prometheus.Desc
	dInstanceReachable     *prometheus.Desc
	dInstanceReadOnly      *prometheus.Desc
	dInstanceSuperReadOnly *prometheus.Desc
	dInstanceRole          *prometheus.Desc
	dInstanceLag           *prometheus.Desc
	dInstanceIO            *prometheus.Desc
	dInstanceSQL           *prometheus.Desc
	dInstanceQuestions     *prometheus.Desc
	dInstanceQPS           *prometheus.Desc
	dInstanceConnections   *prometheus.Desc
	dInstanceQuarantined   *prometheus.Desc
	dInstanceMaintenance   *prometheus.Desc
	dClusterPrimary        *prometheus.Desc
	dClusterHasPrimary     *prometheus.Desc
	dClusterEpoch          *prometheus.Desc
	dClusterPaused         *prometheus.Desc
	dClusterUnacked        *prometheus.Desc
	dClusterSemiDegraded   *prometheus.Desc
	dClusterPausedSince    *prometheus.Desc
	dClusterAutoEnabled    *prometheus.Desc
	dClusterAutoPossible   *prometheus.Desc
	dClusterAutoBlocked    *prometheus.Desc
	dClusterAntiFlap       *prometheus.Desc
	dClusterOperation      *prometheus.Desc
	dClusterProblems       *prometheus.Desc
	dRaftState             *prometheus.Desc
	dRaftIsLeader          *prometheus.Desc
	dRaftHasLeader         *prometheus.Desc
	dRaftLeader            *prometheus.Desc
	dRaftTerm              *prometheus.Desc
	dRaftCommit            *prometheus.Desc
	dRaftApplied           *prometheus.Desc
	dRaftLastContact       *prometheus.Desc
	dRaftMembers           *prometheus.Desc
	dRaftMemberReachable   *prometheus.Desc
	dLeaseHeld             *prometheus.Desc
	dLeaseNeeded           *prometheus.Desc
}

func newSnapshotDescs() *snapshotDescs {
	return &snapshotDescs{
		dInstanceUp: prometheus.NewDesc("regent_instance_up",
			"1 when at least one agent's last probe of the instance succeeded.", []string{labelCluster, labelDBInstance}, nil),
		dInstanceReachable: prometheus.NewDesc("regent_instance_reachable",
			"1 when the given agent's last probe of the instance succeeded.", []string{labelCluster, labelDBInstance, labelAgent}, nil),
		dInstanceReadOnly: prometheus.NewDesc("regent_instance_read_only",
			"The instance's read_only (1 ON, 0 OFF); absent when unknown.", []string{labelCluster, labelDBInstance}, nil),
		dInstanceSuperReadOnly: prometheus.NewDesc("regent_instance_super_read_only",
			"The instance's super_read_only (1 ON, 0 OFF); absent when unknown or unsupported (MariaDB).", []string{labelCluster, labelDBInstance}, nil),
		dInstanceRole: prometheus.NewDesc("regent_instance_role",
			"1 for the instance's current role (primary, replica, unknown, quarantined), 0 for the others.", []string{labelCluster, labelDBInstance, labelRole}, nil),
		dInstanceLag: prometheus.NewDesc("regent_instance_replication_lag_seconds",
			"Replication lag (Seconds_Behind_Master/Source); absent when the server reports NULL or the instance does not replicate.", []string{labelCluster, labelDBInstance}, nil),
		dInstanceIO: prometheus.NewDesc("regent_instance_replication_io_running",
			"1 when the replica's IO thread is running, 0 when stopped or still connecting; absent when the instance does not replicate.", []string{labelCluster, labelDBInstance}, nil),
		dInstanceSQL: prometheus.NewDesc("regent_instance_replication_sql_running",
			"1 when the replica's SQL thread is running, 0 when stopped; absent when the instance does not replicate.", []string{labelCluster, labelDBInstance}, nil),
		dInstanceQuestions: prometheus.NewDesc("regent_instance_questions_total",
			"The server's Questions status counter (statements from clients); it restarts at 0 with mysqld. Use rate() for queries per second.", []string{labelCluster, labelDBInstance}, nil),
		dInstanceQPS: prometheus.NewDesc("regent_instance_queries_per_second",
			"Queries per second over the last probe interval, as computed by the agent from Questions.", []string{labelCluster, labelDBInstance}, nil),
		dInstanceConnections: prometheus.NewDesc("regent_instance_connections",
			"Client connections (Threads_connected).", []string{labelCluster, labelDBInstance}, nil),
		dInstanceQuarantined: prometheus.NewDesc("regent_instance_quarantined",
			"1 when the instance is quarantined (for example errant transactions) and kept out of the topology.", []string{labelCluster, labelDBInstance}, nil),
		dInstanceMaintenance: prometheus.NewDesc("regent_instance_maintenance_until_seconds",
			"While the instance is in maintenance (never promoted, its replica problems not reported): when it ends, as a Unix time. Absent otherwise.", []string{labelCluster, labelDBInstance}, nil),
		dClusterPrimary: prometheus.NewDesc("regent_cluster_primary",
			"1 for the instance the current epoch names as primary (one series per cluster; none when the cluster has no primary).", []string{labelCluster, labelDBInstance}, nil),
		dClusterHasPrimary: prometheus.NewDesc("regent_cluster_has_primary",
			"1 when the cluster has a primary in the current epoch, 0 when it has none.", []string{labelCluster}, nil),
		dClusterEpoch: prometheus.NewDesc("regent_cluster_epoch",
			"The cluster's epoch: it grows by one at every change of primary.", []string{labelCluster}, nil),
		dClusterUnacked: prometheus.NewDesc("regent_cluster_unacknowledged_failovers",
			"Failovers in the recorded history that no operator has acknowledged yet (regentctl ack).", []string{labelCluster}, nil),
		dClusterPaused: prometheus.NewDesc("regent_cluster_paused",
			"1 while automatic action on the cluster is paused.", []string{labelCluster}, nil),
		dClusterSemiDegraded: prometheus.NewDesc("regent_cluster_semi_sync_degraded",
			"1 while the primary commits asynchronously by the leader's decision (semi_sync_fallback): acknowledged writes may be lost by a failover.", []string{labelCluster}, nil),
		dClusterPausedSince: prometheus.NewDesc("regent_cluster_paused_since_timestamp_seconds",
			"When the current pause started (Unix time); absent when not paused.", []string{labelCluster}, nil),
		dClusterAutoEnabled: prometheus.NewDesc("regent_cluster_automatic_failover_enabled",
			"1 when the configuration allows automatic failover of the cluster.", []string{labelCluster}, nil),
		dClusterAutoPossible: prometheus.NewDesc("regent_cluster_automatic_failover_possible",
			"1 when nothing blocks an automatic failover right now.", []string{labelCluster}, nil),
		dClusterAutoBlocked: prometheus.NewDesc("regent_cluster_automatic_failover_blocked",
			"1 for each reason automatic failover is blocked now (paused, anti_flap, operation_in_progress, lease_not_lapsed, no_candidate, disabled, unsafe, no_quorum).", []string{labelCluster, labelReason}, nil),
		dClusterAntiFlap: prometheus.NewDesc("regent_cluster_anti_flap_until_timestamp_seconds",
			"When the anti-flap window after the last failover ends (Unix time); absent when none is open.", []string{labelCluster}, nil),
		dClusterOperation: prometheus.NewDesc("regent_cluster_operation_running",
			"1 while a failover, switchover or rejoin of the cluster runs.", []string{labelCluster}, nil),
		dClusterProblems: prometheus.NewDesc("regent_cluster_problems",
			"Problems found by the latest analysis, by problem code.", []string{labelCluster, labelCode}, nil),
		dRaftState: prometheus.NewDesc("regent_raft_state",
			"1 for this agent's Raft state (leader, follower, candidate, shutdown), 0 for the others.", []string{labelState}, nil),
		dRaftIsLeader: prometheus.NewDesc("regent_raft_is_leader",
			"1 when this agent is the Raft leader.", nil, nil),
		dRaftHasLeader: prometheus.NewDesc("regent_raft_has_leader",
			"1 when this agent knows a Raft leader; 0 means an election runs or this agent lost the quorum.", nil, nil),
		dRaftLeader: prometheus.NewDesc("regent_raft_leader",
			"1, labelled with the Raft leader's node id as this agent sees it; absent when there is no leader.", []string{labelMember}, nil),
		dRaftTerm: prometheus.NewDesc("regent_raft_term",
			"The current Raft term.", nil, nil),
		dRaftCommit: prometheus.NewDesc("regent_raft_commit_index",
			"The highest Raft log index known to be committed.", nil, nil),
		dRaftApplied: prometheus.NewDesc("regent_raft_applied_index",
			"The highest Raft log index applied to this agent's state.", nil, nil),
		dRaftLastContact: prometheus.NewDesc("regent_raft_last_contact_seconds",
			"Seconds since this agent last heard from the leader (0 on the leader); absent when unknown.", nil, nil),
		dRaftMembers: prometheus.NewDesc("regent_raft_members",
			"Agents in the Raft configuration, by whether they vote.", []string{"voter"}, nil),
		dRaftMemberReachable: prometheus.NewDesc("regent_raft_member_reachable",
			"0 when this agent sees the member as unreachable, 1 otherwise.", []string{labelMember}, nil),
		dLeaseHeld: prometheus.NewDesc("regent_lease_held",
			"1 while this agent holds its self-fencing lease (it heard the quorum within lease_timeout).", nil, nil),
		dLeaseNeeded: prometheus.NewDesc("regent_lease_needed",
			"1 when this agent's local instance is the primary, so that losing the lease fences it.", nil, nil),
	}
}

func (d *snapshotDescs) all() []*prometheus.Desc {
	return []*prometheus.Desc{
		d.dInstanceUp,
		d.dInstanceReachable,
		d.dInstanceReadOnly,
		d.dInstanceSuperReadOnly,
		d.dInstanceRole,
		d.dInstanceLag,
		d.dInstanceIO,
		d.dInstanceSQL,
		d.dInstanceQuestions,
		d.dInstanceQPS,
		d.dInstanceConnections,
		d.dInstanceQuarantined,
		d.dInstanceMaintenance,
		d.dClusterPrimary,
		d.dClusterHasPrimary,
		d.dClusterEpoch,
		d.dClusterPaused,
		d.dClusterUnacked,
		d.dClusterSemiDegraded,
		d.dClusterPausedSince,
		d.dClusterAutoEnabled,
		d.dClusterAutoPossible,
		d.dClusterAutoBlocked,
		d.dClusterAntiFlap,
		d.dClusterOperation,
		d.dClusterProblems,
		d.dRaftState,
		d.dRaftIsLeader,
		d.dRaftHasLeader,
		d.dRaftLeader,
		d.dRaftTerm,
		d.dRaftCommit,
		d.dRaftApplied,
		d.dRaftLastContact,
		d.dRaftMembers,
		d.dRaftMemberReachable,
		d.dLeaseHeld,
		d.dLeaseNeeded,
	}
}

// snapshotCollector renders the latest snapshots at scrape time.
type snapshotCollector struct {
	m *Metrics
	d *snapshotDescs
}

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.d.all() {
		ch <- d
	}
}

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	clusters := make([]api.Cluster, 0, len(c.m.clusters))
	for _, cl := range c.m.clusters {
		clusters = append(clusters, cl)
	}
	status := c.m.status
	c.m.mu.Unlock()
	now := c.m.now()
	for _, cl := range clusters {
		c.d.collectCluster(ch, cl)
	}
	if status != nil {
		c.d.collectStatus(ch, *status, now)
	}
}

func gauge(ch chan<- prometheus.Metric, desc *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (d *snapshotDescs) collectCluster(ch chan<- prometheus.Metric, cl api.Cluster) {
	n := cl.Name
	gauge(ch, d.dClusterHasPrimary, b2f(cl.Primary != ""), n)
	if cl.Primary != "" {
		gauge(ch, d.dClusterPrimary, 1, n, cl.Primary)
	}
	gauge(ch, d.dClusterEpoch, float64(cl.Epoch), n)
	gauge(ch, d.dClusterPaused, b2f(cl.Paused != nil), n)
	gauge(ch, d.dClusterUnacked, float64(len(cl.Unacknowledged)), n)
	gauge(ch, d.dClusterSemiDegraded, b2f(cl.SemiSyncDegraded != nil), n)
	if cl.Paused != nil {
		gauge(ch, d.dClusterPausedSince, unix(cl.Paused.Since), n)
	}
	gauge(ch, d.dClusterAutoEnabled, b2f(cl.AutomaticFailover.Enabled), n)
	gauge(ch, d.dClusterAutoPossible, b2f(cl.AutomaticFailover.Possible), n)
	var reasons []string
	for _, b := range cl.AutomaticFailover.Blockers {
		if !slices.Contains(reasons, b.Kind) {
			reasons = append(reasons, b.Kind)
		}
	}
	for _, r := range reasons {
		gauge(ch, d.dClusterAutoBlocked, 1, n, r)
	}
	if cl.AntiFlapUntil != nil {
		gauge(ch, d.dClusterAntiFlap, unix(*cl.AntiFlapUntil), n)
	}
	gauge(ch, d.dClusterOperation, b2f(cl.Operation != nil), n)
	problems := map[string]int{}
	for _, p := range cl.Problems {
		problems[p.Code]++
	}
	for code, count := range problems {
		gauge(ch, d.dClusterProblems, float64(count), n, code)
	}
	for _, in := range cl.Instances {
		d.collectInstance(ch, n, in)
	}
}

func (d *snapshotDescs) collectInstance(ch chan<- prometheus.Metric, cluster string, in api.Instance) {
	i := in.Name
	up := false
	for agent, r := range in.Reachable {
		up = up || r.OK
		gauge(ch, d.dInstanceReachable, b2f(r.OK), cluster, i, agent)
	}
	gauge(ch, d.dInstanceUp, b2f(up), cluster, i)
	if in.ReadOnly != nil {
		gauge(ch, d.dInstanceReadOnly, b2f(*in.ReadOnly), cluster, i)
	}
	if in.SuperReadOnly != nil {
		gauge(ch, d.dInstanceSuperReadOnly, b2f(*in.SuperReadOnly), cluster, i)
	}
	role := in.Role
	if role == "" {
		role = api.RoleUnknown
	}
	for _, r := range api.Roles() {
		gauge(ch, d.dInstanceRole, b2f(r == role), cluster, i, string(r))
	}
	if rep := in.Replication; rep != nil {
		if rep.LagSeconds != nil {
			gauge(ch, d.dInstanceLag, *rep.LagSeconds, cluster, i)
		}
		gauge(ch, d.dInstanceIO, b2f(rep.IOThread == api.ThreadRunning), cluster, i)
		gauge(ch, d.dInstanceSQL, b2f(rep.SQLThread == api.ThreadRunning), cluster, i)
	}
	if in.Questions > 0 {
		ch <- prometheus.MustNewConstMetric(d.dInstanceQuestions, prometheus.CounterValue, float64(in.Questions), cluster, i)
	}
	if in.QPS != nil {
		gauge(ch, d.dInstanceQPS, *in.QPS, cluster, i)
	}
	if in.Connections != nil {
		gauge(ch, d.dInstanceConnections, float64(*in.Connections), cluster, i)
	}
	gauge(ch, d.dInstanceQuarantined, b2f(role == api.RoleQuarantined), cluster, i)
	if m := in.Maintenance; m != nil {
		gauge(ch, d.dInstanceMaintenance, float64(m.Until.Unix()), cluster, i)
	}
}

var raftStates = []string{"leader", "follower", "candidate", "shutdown"}

func (d *snapshotDescs) collectStatus(ch chan<- prometheus.Metric, s api.Status, now time.Time) {
	for _, st := range raftStates {
		gauge(ch, d.dRaftState, b2f(s.RaftState == st), st)
	}
	gauge(ch, d.dRaftIsLeader, b2f(s.IsLeader))
	gauge(ch, d.dRaftHasLeader, b2f(s.LeaderID != ""))
	if s.LeaderID != "" {
		gauge(ch, d.dRaftLeader, 1, s.LeaderID)
	}
	gauge(ch, d.dRaftTerm, float64(s.Term))
	gauge(ch, d.dRaftCommit, float64(s.CommitIndex))
	gauge(ch, d.dRaftApplied, float64(s.AppliedIndex))
	if s.IsLeader {
		gauge(ch, d.dRaftLastContact, 0)
	} else {
		for _, mem := range s.Members {
			if mem.ID == s.LeaderID && mem.LastContact != nil {
				gauge(ch, d.dRaftLastContact, max(0, now.Sub(*mem.LastContact).Seconds()))
			}
		}
	}
	voters, others := 0, 0
	for _, mem := range s.Members {
		if mem.Voter {
			voters++
		} else {
			others++
		}
		gauge(ch, d.dRaftMemberReachable, b2f(mem.State != "unreachable"), mem.ID)
	}
	gauge(ch, d.dRaftMembers, float64(voters), "true")
	gauge(ch, d.dRaftMembers, float64(others), "false")
	if s.Lease != nil {
		gauge(ch, d.dLeaseHeld, b2f(s.Lease.Held))
		gauge(ch, d.dLeaseNeeded, b2f(s.Lease.Needed))
	}
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
