package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/integration/netlab"
	"github.com/regentdb/regent/integration/sandbox"
	"github.com/regentdb/regent/topology/mysqltest"
)

// benchEnv is one netlab installation (three database hosts with their
// agents, an HAProxy host) owned by a benchmark, which can throw it away and
// start a fresh one mid-run.
type benchEnv struct {
	k       mysqltest.Kind
	opts    netlab.Options
	tb      *ownedTB
	r       *netlab.Regent
	version string // the servers' VERSION()
	labs    int    // labs started by this env, this one included
	// ids numbers every writer's inserts, across labs.
	ids        atomic.Int64
	lastStatus string
}

// ownedTB passes everything to the benchmark but keeps the cleanups, so
// that a lab can be stopped before the benchmark ends.
type ownedTB struct {
	*testing.B
	mu       sync.Mutex
	cleanups []func()
}

func (o *ownedTB) Cleanup(f func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.cleanups = append(o.cleanups, f)
}

func (o *ownedTB) runCleanups() {
	o.mu.Lock()
	fs := o.cleanups
	o.cleanups = nil
	o.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// newBenchEnv starts a lab of flavour k with options o and waits until it
// is healthy.
func newBenchEnv(b *testing.B, k mysqltest.Kind, o netlab.Options) *benchEnv {
	b.Helper()
	e := &benchEnv{k: k, opts: o}
	e.start(b)
	return e
}

func (e *benchEnv) start(b *testing.B) {
	b.Helper()
	e.tb = &ownedTB{B: b}
	b.Cleanup(e.tb.runCleanups) // also when the benchmark fails
	began := time.Now()
	e.r = netlab.StartRegent(e.tb, e.k, e.opts)
	e.labs++
	e.version = e.r.DBHosts[0].DB.QueryString(b, "SELECT VERSION()")
	benchPrintf("%s lab %s up in %s: %s, profile %s, %s, HAProxy %s (files in %s; load average %s)\n", e.k, e.r.ID, time.Since(began).Round(100*time.Millisecond),
		e.version, e.opts.Profile, e.routing(), e.r.HAProxyAddr, e.r.Dir, sandbox.LoadAvg())
	if !e.waitHealthy(60 * time.Second) {
		b.Fatalf("a new lab is not healthy: %s", e.lastStatus)
	}
}

// fresh replaces the lab with a new one.
func (e *benchEnv) fresh(b *testing.B) {
	b.Helper()
	e.close()
	e.start(b)
}

// routing says how writes are routed in this env.
func (e *benchEnv) routing() string {
	if e.opts.PullOnly {
		hc := netlab.HAProxyChecks
		return fmt.Sprintf("health checks only (inter %v, fastinter %v, downinter %v, fall %d, rise %d)", hc.Inter, hc.FastInter, hc.DownInter, hc.Fall, hc.Rise)
	}
	return "runtime-API push and health checks"
}

// close stops the lab and removes its files; with REGENT_BENCH_LOGS set to
// a directory it first copies the agents' and HAProxy's logs there.
func (e *benchEnv) close() {
	if dir := os.Getenv("REGENT_BENCH_LOGS"); dir != "" && e.r != nil {
		dst := filepath.Join(dir, filepath.Base(e.r.Dir))
		if err := e.r.KeepLogs(dst); err == nil {
			benchPrintf("%s lab logs copied to %s\n", e.k, dst)
		}
	}
	e.tb.runCleanups()
}

// status is the cluster as the Raft leader sees it.
func (e *benchEnv) status() (api.Cluster, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := e.r.LeaderCluster(ctx)
	if err != nil {
		e.lastStatus = err.Error()
		return api.Cluster{}, false
	}
	e.lastStatus = sandbox.Describe(c)
	return c, true
}

// healthy: the three instances, settled (sandbox.HealthyCluster: a
// writable primary with semi-sync active, the others replicating from it).
func healthy(c api.Cluster) bool {
	return len(c.Instances) == 3 && sandbox.HealthyCluster(c)
}

// settled is healthy but for the anti-flap window a failover opened
// (AutomationBlocked): after a failover under the default 5m window the
// cluster is as it should be, only automation waits.
func settled(c api.Cluster) bool {
	c.Problems = slices.DeleteFunc(slices.Clone(c.Problems), func(p api.Problem) bool { return p.Code == string(failover.AutomationBlocked) })
	return healthy(c)
}

// waitHealthy waits, at most timeout, for a healthy cluster; false when it
// did not come, or when an instance stays quarantined (it stays so until
// someone repairs it: no use waiting the whole timeout).
func (e *benchEnv) waitHealthy(timeout time.Duration) bool {
	return e.waitCluster(nil, healthy, timeout)
}

// waitCluster waits, at most timeout, until ok holds of the cluster, as
// waitHealthy, restarting old's mysqld whenever it has exited meanwhile
// (its agent stops it with SHUTDOWN when read_only cannot hold, and a
// service manager would start it again).
func (e *benchEnv) waitCluster(old *netlab.Host, ok func(api.Cluster) bool, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	quarantined := 0
	for {
		if old != nil && old.DB.Exited() {
			old.DB.WaitExited(e.tb, time.Minute)
			e.r.RestartMySQL(old)
			benchPrintf("      %s's mysqld had stopped (its agent's SHUTDOWN fence): restarted\n", old.Name)
		}
		c, got := e.status()
		if got && ok(c) {
			return true
		}
		for _, in := range c.Instances {
			if in.Role == api.RoleQuarantined {
				quarantined++
				break
			}
		}
		if quarantined >= 10 || time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond) // poll interval
	}
}

// waitNewPrimary waits, at most timeout, until the leader records a
// primary other than old with no operation running.
func (e *benchEnv) waitNewPrimary(old string, timeout time.Duration) (api.Cluster, bool) {
	deadline := time.Now().Add(timeout)
	for {
		c, ok := e.status()
		if ok && c.Primary != "" && c.Primary != old && c.Operation == nil {
			return c, true
		}
		if time.Now().After(deadline) {
			return c, false
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
}

// history returns the newest operations, newest first, from the leader.
func (e *benchEnv) history(limit int) ([]api.Operation, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, _, err := e.r.Leader(ctx)
	if err != nil {
		return nil, false
	}
	hist, err := e.r.API(h).History(ctx, netlab.ClusterName, limit)
	if err != nil {
		return nil, false
	}
	return hist.Operations, true
}

// ctlHistory is `regentctl history -o json`: every operation recorded.
func (e *benchEnv) ctlHistory(b *testing.B, limit int) []api.Operation {
	b.Helper()
	out, errOut, code := e.r.Ctl("history", "-o", "json", "--limit", strconv.Itoa(limit))
	if code != 0 {
		b.Fatalf("regentctl history: exit %d: %s %s", code, out, errOut)
	}
	var h api.History
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		b.Fatalf("regentctl history -o json: %v:\n%s", err, out)
	}
	return h.Operations
}

// newestOp returns the newest operation of kind that promoted newPrimary.
func (e *benchEnv) newestOp(kind, newPrimary string) (api.Operation, bool) {
	ops, _ := e.history(5)
	for _, op := range ops {
		if op.Kind == kind && op.NewPrimary == newPrimary {
			return op, true
		}
	}
	return api.Operation{}, false
}

// others returns the database hosts other than h.
func (e *benchEnv) others(h *netlab.Host) []*netlab.Host {
	var out []*netlab.Host
	for _, d := range e.r.DBHosts {
		if d != h {
			out = append(out, d)
		}
	}
	return out
}

// missing returns how many of the acknowledged ids srv lacks.
func missing(b *testing.B, srv *mysqltest.Server, acks []writeAck) int {
	b.Helper()
	if len(acks) == 0 {
		return 0
	}
	return missingFrom(mysqltest.WrittenIDs(b, srv), acks)
}

// missingFrom returns how many of the acknowledged ids are not in have.
func missingFrom(have map[int64]bool, acks []writeAck) int {
	n := 0
	for _, a := range acks {
		if !have[a.id] {
			n++
		}
	}
	return n
}

// waitApplied waits until srv has every acknowledged id (a replica may
// still be applying its relay log), bounded; missing then counts what it
// lacks.
func waitApplied(srv *mysqltest.Server, acks []writeAck, timeout time.Duration) {
	var last int64
	for _, a := range acks {
		last = max(last, a.id)
	}
	if last == 0 {
		return
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var n int
		err := srv.DB().QueryRow(fmt.Sprintf("SELECT COUNT(*) FROM %s.writes WHERE id = %d", mysqltest.TestDatabase, last)).Scan(&n)
		if err == nil && n == 1 {
			return
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// rowsFrom says which rows from id on the old primary holds that no client
// got acknowledged, which writer tried each (writers: by name), and when it
// was written relative to the fault (t0) and to the heal: the rows behind
// errant transactions.
func rowsFrom(srv *mysqltest.Server, id int64, t0, back time.Time, writers map[string]*benchWriter) string {
	if srv.Exited() {
		return srv.Name + "'s mysqld is not running"
	}
	rows, err := srv.DB().Query(fmt.Sprintf("SELECT id, UNIX_TIMESTAMP(at) FROM %s.writes WHERE id >= %d ORDER BY id", mysqltest.TestDatabase, id-1))
	if err != nil {
		return fmt.Sprintf("reading %s: %v", srv.Name, err)
	}
	defer rows.Close()
	acked := 0
	var parts []string
	for rows.Next() {
		var n int64
		var at float64
		if err := rows.Scan(&n, &at); err != nil {
			return err.Error()
		}
		who := ""
		for name, w := range writers {
			if w != nil && w.tried(n) {
				who = name
			}
		}
		if who == "" {
			acked++
			continue
		}
		when := time.Unix(0, int64(at*1e9))
		parts = append(parts, fmt.Sprintf("id %d (%s, not acknowledged) written %+.0fms after the fault (%+.0fms after the heal)", n, who, float64(when.Sub(t0))/1e6, float64(when.Sub(back))/1e6))
	}
	return fmt.Sprintf("rows on %s from id %d (in flight through HAProxy at the fault: %d): %d acknowledged; %s", srv.Name, id-1, id, acked, strings.Join(parts, ", "))
}

// sourceAddr is host:port of the source s replicates from, "" when none.
func sourceAddr(b *testing.B, s *mysqltest.Server) string {
	b.Helper()
	q, hostCol, portCol := "SHOW SLAVE STATUS", "Master_Host", "Master_Port"
	if s.Kind == mysqltest.MySQL {
		q, hostCol, portCol = "SHOW REPLICA STATUS", "Source_Host", "Source_Port"
	}
	rows, err := s.DB().Query(q)
	if err != nil {
		b.Fatalf("%s: %s: %v", s, q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		return ""
	}
	vals := make([]any, len(cols))
	var host, port string
	for i, c := range cols {
		switch c {
		case hostCol:
			vals[i] = &host
		case portCol:
			vals[i] = &port
		default:
			vals[i] = new(any)
		}
	}
	if err := rows.Scan(vals...); err != nil {
		b.Fatal(err)
	}
	return host + ":" + port
}
