package integration

// Benchmarks of DESIGN.md §10 that can be measured on one machine: the
// time from a fault of the primary's mysqld to the first write that
// succeeds through HAProxy, and the window in which a planned switchover
// blocks writes, as a client sees it through HAProxy. They are Go
// benchmarks, not timed tests: `make test` never runs them; `make bench`
// does (see BENCHMARKS.md for the figures and the configuration).
//
// Each benchmark runs a fixed number of trials per flavour, whatever b.N is
// (run them with -benchtime 1x): REGENT_BENCH_TRIALS overrides the count.
// Every trial prints one line as it ends; the sub-benchmark reports the
// median and the maximum with b.ReportMetric.

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/integration/sandbox"
	"github.com/regentdb/regent/topology/mysqltest"
)

const (
	// benchAttemptTimeout bounds one write attempt (connect through HAProxy
	// and INSERT): an attempt stuck on a dead or frozen backend is given up
	// and retried on a new connection, as an application with short
	// timeouts would.
	benchAttemptTimeout = time.Second
	// benchRetryPause is the pause after a failed attempt.
	benchRetryPause = 5 * time.Millisecond
	// benchAntiFlap is the sandbox's anti_flap_period in the benchmarks:
	// each trial must be able to fail over automatically a few seconds
	// after the previous one.
	benchAntiFlap = 2 * time.Second
)

func benchTrials(def int) int {
	if v := os.Getenv("REGENT_BENCH_TRIALS"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 && n <= 200 {
			return n
		}
	}
	return def
}

// BenchmarkFailoverKill: kill -9 of the primary's mysqld (its host and
// agent alive) → the first write that succeeds through HAProxy. Target
// (DESIGN §10): median ≤ 500 ms, worst ≤ 1 s.
func BenchmarkFailoverKill(b *testing.B) {
	benchFailover(b, faultKill, benchTrials(20))
}

// BenchmarkFailoverFrozen: the primary's mysqld frozen with SIGSTOP (it
// keeps its sockets and answers nothing) → the first write that succeeds
// through HAProxy. Target: median ≤ 3 s, worst ≤ 4 s.
func BenchmarkFailoverFrozen(b *testing.B) {
	benchFailover(b, faultFreeze, benchTrials(10))
}

// BenchmarkSwitchoverWriteBlocked: `regentctl switchover` back and forth
// under a writer through HAProxy → the largest gap between two successful
// writes around each switchover, and Regent's own write_blocked. Target:
// median ≤ 100 ms, worst ≤ 300 ms, and the old primary replicating from the
// new one afterwards.
func BenchmarkSwitchoverWriteBlocked(b *testing.B) {
	for _, k := range mysqltest.Kinds(b) {
		b.Run(string(k), func(b *testing.B) {
			trials := benchTrials(20)
			env := newBenchEnv(b, k)
			defer env.close()
			var client, regent []time.Duration
			lost, refused := 0, 0
			for i := 1; i <= trials; i++ {
				r := env.switchoverTrial(b)
				if r.refused != "" {
					refused++
					benchPrintf("switchover %s trial %2d/%d: %s -> %s REFUSED (%s); status: %s; trying again once the cluster is healthy\n", k, i, trials, r.from, r.to, r.refused, env.describe(r.from+"/"+r.to))
					if refused > 3 {
						b.Fatalf("%d switchovers refused", refused)
					}
					i--
					continue
				}
				client = append(client, r.clientGap)
				if r.regentBlocked > 0 {
					regent = append(regent, r.regentBlocked)
				}
				lost += r.lost
				benchPrintf("switchover %s trial %2d/%d: %s -> %s: client write gap %s (%d failed attempts; last write %s before the fence, next %s after the route), regent write_blocked %s, switchover took %s; acked %d, lost %d; %s replicates from %s\n",
					k, i, trials, r.from, r.to, ms(r.clientGap), r.failedAttempts, signedMS(r.gapBeforeFence), signedMS(r.gapAfterRoute), ms(r.regentBlocked), ms(r.regentTook), r.acked, r.lost, r.from, r.to)
				printSteps(r.op)
				if !env.waitHealthy(b, 60*time.Second) {
					b.Fatalf("the cluster did not become healthy after the switchover: %s", env.lastStatus)
				}
			}
			report(b, k, "switchover client write gap", client, "")
			report(b, k, "switchover regent write_blocked", regent, "regent-")
			b.ReportMetric(float64(lost), "lost-writes")
			b.ReportMetric(float64(refused), "refused")
			if lost > 0 {
				b.Errorf("%d acknowledged writes lost over %d switchovers", lost, trials)
			}
		})
	}
}

type fault string

const (
	faultKill   fault = "kill"
	faultFreeze fault = "freeze"
)

func benchFailover(b *testing.B, f fault, trials int) {
	for _, k := range mysqltest.Kinds(b) {
		b.Run(string(k), func(b *testing.B) {
			env := newBenchEnv(b, k)
			defer func() { env.close() }()
			var client, detect, regentBlocked []time.Duration
			lost, notBack := 0, 0
			for i := 1; i <= trials; i++ {
				r := env.failoverTrial(b, f)
				client = append(client, r.firstWrite)
				if r.op.ID != "" {
					detect = append(detect, r.detected)
				}
				if r.regentBlocked > 0 {
					regentBlocked = append(regentBlocked, r.regentBlocked)
				}
				lost += r.lost
				result := r.op.Result
				if r.op.Result != api.ResultSuccess && r.op.Reason != "" {
					result += " (" + r.op.Reason + ")"
				}
				benchPrintf("%s %s trial %2d/%d: %s -> %s (epoch %d): first write through HAProxy after %s (%d failed attempts); regent: failover started +%s, took %s, write_blocked %s, result %s; acked %d, lost %d; %s\n",
					f, k, i, trials, r.from, r.to, r.epoch, ms(r.firstWrite), r.failedAttempts, ms(r.detected), ms(r.regentTook), ms(r.regentBlocked), result, r.acked, r.lost, r.after)
				printSteps(r.op)
				if r.needFresh {
					notBack++
					if i < trials {
						env.close()
						env = newBenchEnv(b, k)
					}
				}
			}
			report(b, k, string(f)+" to first write through HAProxy", client, "")
			report(b, k, string(f)+" to failover start (regent)", detect, "detect-")
			report(b, k, string(f)+" regent write_blocked", regentBlocked, "regent-")
			b.ReportMetric(float64(lost), "lost-writes")
			b.ReportMetric(float64(notBack), "old-primary-not-rejoined")
			if lost > 0 {
				b.Errorf("%d acknowledged writes lost over %d trials", lost, trials)
			}
		})
	}
}

// benchSteps: REGENT_BENCH_STEPS=1 prints every operation's steps after
// its trial line (to see where the time goes).
var benchSteps = os.Getenv("REGENT_BENCH_STEPS") == "1"

func printSteps(op api.Operation) {
	if !benchSteps {
		return
	}
	for _, st := range op.Steps {
		benchPrintf("      [+%7.3fs] %-22s %-8s %8s  %s\n", st.Started.Sub(op.Started).Seconds(), st.Name, st.Result, st.Duration.Std().Round(time.Millisecond), st.Detail)
	}
}

// loadAvg is the machine's 1, 5 and 15 minute load averages: the figures
// depend on what else runs on these 2 cores.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// benchPrintf prints a line at once (b.Logf would hold it until the
// benchmark ends).
func benchPrintf(format string, args ...any) { fmt.Printf(format, args...) }

func ms(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
}

func signedMS(d time.Duration) string {
	return fmt.Sprintf("%.0fms", float64(d)/float64(time.Millisecond))
}

// report prints and reports the median and maximum of ds in milliseconds.
func report(b *testing.B, k mysqltest.Kind, what string, ds []time.Duration, prefix string) {
	if len(ds) == 0 {
		benchPrintf("%s %s: no figure\n", k, what)
		return
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	toMS := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	benchPrintf("%s %s over %d trials: median %.0f ms, min %.0f ms, max %.0f ms (load average now: %s)\n", k, what, len(s), toMS(med), toMS(s[0]), toMS(s[len(s)-1]), loadAvg())
	b.ReportMetric(toMS(med), prefix+"median-ms")
	b.ReportMetric(toMS(s[len(s)-1]), prefix+"max-ms")
}

// ---------------------------------------------------------------- env ----

// benchEnv is one sandbox (three servers, three agents, HAProxy) owned by
// a benchmark, which can throw it away and start a fresh one mid-run.
type benchEnv struct {
	k          mysqltest.Kind
	tb         *ownedTB
	s          *sandbox.Sandbox
	nextID     int64
	lastStatus string
}

// ownedTB passes everything to the benchmark but keeps the cleanups, so
// that a sandbox can be stopped before the benchmark ends.
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

func newBenchEnv(b *testing.B, k mysqltest.Kind) *benchEnv {
	b.Helper()
	tb := &ownedTB{B: b}
	b.Cleanup(tb.runCleanups) // also when the benchmark fails
	start := time.Now()
	s := sandbox.Start(tb, k, sandbox.Options{HAProxy: true, AntiFlapPeriod: benchAntiFlap})
	benchPrintf("%s sandbox up in %s (files in %s; load average %s)\n", k, time.Since(start).Round(100*time.Millisecond), s.Dir, loadAvg())
	env := &benchEnv{k: k, tb: tb, s: s, nextID: 1}
	// The sandbox's replicas start with mysqltest's 1 s heartbeat; set the
	// 250 ms of the agents' mysql.replication_heartbeat, as an operator
	// does when starting replication (deploy/regent/replica-*.sql). Regent
	// sets it itself on every replica it repoints.
	for _, r := range s.DB.Replicas {
		switch k {
		case mysqltest.MariaDB:
			r.Exec(b, "STOP SLAVE", "CHANGE MASTER TO MASTER_HEARTBEAT_PERIOD=0.25", "START SLAVE")
		case mysqltest.MySQL:
			r.Exec(b, "STOP REPLICA", "CHANGE REPLICATION SOURCE TO SOURCE_HEARTBEAT_PERIOD=0.25", "START REPLICA")
		}
	}
	if !env.waitHealthy(b, 60*time.Second) {
		b.Fatalf("a new sandbox is not healthy: %s", env.lastStatus)
	}
	return env
}

// close stops the sandbox and removes its files; with REGENT_BENCH_LOGS
// set to a directory it first copies the agents' and HAProxy's logs there.
func (e *benchEnv) close() {
	if dir := os.Getenv("REGENT_BENCH_LOGS"); dir != "" && e.s != nil {
		dst := filepath.Join(dir, filepath.Base(e.s.Dir))
		if err := os.MkdirAll(dst, 0o755); err == nil {
			files := []string{filepath.Join(e.s.Dir, "haproxy.log")}
			for _, a := range e.s.Agents {
				files = append(files, a.LogPath)
			}
			for _, f := range files {
				if b, err := os.ReadFile(f); err == nil {
					_ = os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o644)
				}
			}
			benchPrintf("%s sandbox logs copied to %s\n", e.k, dst)
		}
	}
	e.tb.runCleanups()
}

// status reads the cluster through regentctl.
func (e *benchEnv) status() (api.Cluster, bool) {
	out, errOut, code := e.s.Ctl("status", "-o", "json")
	if code != 0 {
		e.lastStatus = fmt.Sprintf("regentctl status exit %d: %s %s", code, out, errOut)
		return api.Cluster{}, false
	}
	e.lastStatus = out
	var st struct {
		Clusters []api.Cluster `json:"clusters"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Clusters) != 1 {
		return api.Cluster{}, false
	}
	return st.Clusters[0], true
}

// healthy: a writable primary, nothing but Healthy in the analysis, no
// operation running, every other instance a replica of the primary with
// both threads running, and the primary's semi-sync active with a client.
func healthy(c api.Cluster) bool {
	if c.Primary == "" || c.Operation != nil || len(c.Instances) != 3 || len(c.Problems) == 0 {
		return false
	}
	for _, p := range c.Problems {
		if p.Code != "Healthy" {
			return false
		}
	}
	for _, in := range c.Instances {
		if in.Name == c.Primary {
			if in.ReadOnly == nil || *in.ReadOnly || in.SemiSync == nil || !in.SemiSync.SourceActive || in.SemiSync.Clients < 1 {
				return false
			}
			continue
		}
		r := in.Replication
		if in.Role != api.RoleReplica || r == nil || r.SourceName != c.Primary || r.IOThread != api.ThreadRunning || r.SQLThread != api.ThreadRunning {
			return false
		}
	}
	return true
}

func (e *benchEnv) waitHealthy(b *testing.B, timeout time.Duration) bool {
	b.Helper()
	deadline := time.Now().Add(timeout)
	quarantined := 0
	for {
		c, ok := e.status()
		if ok && healthy(c) {
			return true
		}
		// A quarantined instance stays so until someone repairs it: do
		// not wait the whole timeout for it (a few polls, in case the
		// view is stale).
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

// newestOp returns the newest operation of kind in the history.
func (e *benchEnv) newestOp(kind string) (api.Operation, bool) {
	out, _, code := e.s.Ctl("history", "-o", "json", "--limit", "5")
	if code != 0 {
		return api.Operation{}, false
	}
	var h api.History
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		return api.Operation{}, false
	}
	for _, op := range h.Operations {
		if op.Kind == kind {
			return op, true
		}
	}
	return api.Operation{}, false
}

// missing returns how many of the acknowledged ids srv lacks.
func missing(b *testing.B, srv *mysqltest.Server, acks []writeAck) int {
	b.Helper()
	if len(acks) == 0 {
		return 0
	}
	from := acks[0].id
	rows, err := srv.DB().Query(fmt.Sprintf("SELECT id FROM %s.writes WHERE id >= %d", mysqltest.TestDatabase, from))
	if err != nil {
		b.Fatalf("%s: reading writes: %v", srv, err)
	}
	defer rows.Close()
	have := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			b.Fatal(err)
		}
		have[id] = true
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, a := range acks {
		if !have[a.id] {
			n++
		}
	}
	return n
}

// waitApplied waits until srv has applied the last acknowledged write
// (a replica may still be applying its relay log), bounded.
func waitApplied(srv *mysqltest.Server, acks []writeAck, timeout time.Duration) {
	if len(acks) == 0 {
		return
	}
	last := acks[len(acks)-1].id
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

// ------------------------------------------------------------- trials ----

type failoverResult struct {
	from, to       string
	epoch          uint64
	firstWrite     time.Duration // fault → first successful write through HAProxy
	detected       time.Duration // fault → Regent's failover started
	regentTook     time.Duration
	regentBlocked  time.Duration
	failedAttempts int
	acked, lost    int
	after          string // what became of the old primary
	needFresh      bool   // the old primary did not come back as a replica
	op             api.Operation
}

func (e *benchEnv) failoverTrial(b *testing.B, f fault) failoverResult {
	b.Helper()
	if !e.waitHealthy(b, 30*time.Second) {
		b.Fatalf("a trial starts on a healthy cluster: %s", e.lastStatus)
	}
	c, _ := e.status()
	r := failoverResult{from: c.Primary, epoch: c.Epoch}
	old := e.s.Server(c.Primary)
	w := e.startWriter()
	defer w.stop()
	w.waitAcked(b, 200, 20*time.Second)
	time.Sleep(200 * time.Millisecond) // steady writing before the fault

	inFlight := w.inFlight()
	t0 := time.Now()
	switch f {
	case faultKill:
		old.Kill(b)
	case faultFreeze:
		old.Pause(b)
	}
	first, ok := w.waitFirstAckAfter(t0, 30*time.Second)
	if !ok {
		if f == faultFreeze {
			old.Resume(b)
		}
		n, last := w.failures()
		b.Fatalf("%s of %s: no write succeeded through HAProxy within 30 s (%d failed attempts, last error %v); status: %s", f, r.from, n, last, e.lastStatus)
	}
	r.firstWrite = first.end.Sub(t0)
	// Keep writing on the new primary for a moment, then stop.
	w.waitAckedAfter(t0, 100, 5*time.Second)
	w.stop()
	acks := w.acked()
	r.acked = len(acks)
	r.failedAttempts = w.failedAfter(t0)

	// Regent's view: the new primary and its record of the failover.
	var nc api.Cluster
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ok bool
		nc, ok = e.status()
		if ok && nc.Primary != "" && nc.Primary != r.from && nc.Operation == nil {
			break
		}
		if time.Now().After(deadline) {
			if f == faultFreeze {
				old.Resume(b)
			}
			b.Fatalf("%s of %s: no new primary recorded within 30 s: %s", f, r.from, e.lastStatus)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	r.to, r.epoch = nc.Primary, nc.Epoch
	if op, ok := e.newestOp(api.OpFailover); ok && op.NewPrimary == r.to {
		r.op = op
		r.detected = op.Started.Sub(t0)
		if op.Ended != nil {
			r.regentTook = op.Ended.Sub(op.Started)
		}
		if op.WriteBlocked != nil {
			r.regentBlocked = op.WriteBlocked.Std()
		}
	}
	newPrimary := e.s.Server(r.to)
	waitApplied(newPrimary, acks, 10*time.Second)
	r.lost = missing(b, newPrimary, acks)

	// Bring the old primary back: Regent should rejoin it as a replica.
	switch f {
	case faultKill:
		old.Restart(b)
	case faultFreeze:
		old.Resume(b)
	}
	back := time.Now()
	if e.waitHealthy(b, 60*time.Second) {
		r.after = fmt.Sprintf("%s back as a replica in %s", r.from, time.Since(back).Round(100*time.Millisecond))
		return r
	}
	r.needFresh = true
	r.after = fmt.Sprintf("%s NOT back as a replica (%s); %s: next trial on a fresh sandbox", r.from, e.describe(r.from), rowsFrom(old, inFlight, t0, back))
	return r
}

// rowsFrom says which rows from id on the old primary holds, and when each
// was written relative to the fault (t0) and to the restart or resume:
// the rows behind errant transactions.
func rowsFrom(srv *mysqltest.Server, id int64, t0, back time.Time) string {
	rows, err := srv.DB().Query(fmt.Sprintf("SELECT id, UNIX_TIMESTAMP(at) FROM %s.writes WHERE id >= %d ORDER BY id", mysqltest.TestDatabase, id-1))
	if err != nil {
		return fmt.Sprintf("reading %s: %v", srv.Name, err)
	}
	defer rows.Close()
	parts := []string{fmt.Sprintf("in flight at the fault: id %d; rows on %s from id %d", id, srv.Name, id-1)}
	for rows.Next() {
		var n int64
		var at float64
		if err := rows.Scan(&n, &at); err != nil {
			return err.Error()
		}
		when := time.Unix(0, int64(at*1e9))
		parts = append(parts, fmt.Sprintf("id %d written %+.0fms after the fault (%+.0fms after it came back)", n, float64(when.Sub(t0))/1e6, float64(when.Sub(back))/1e6))
	}
	return strings.Join(parts, ", ")
}

// describe says what Regent shows of an instance (role, quarantine reason,
// problems that name it).
func (e *benchEnv) describe(name string) string {
	c, ok := e.status()
	if !ok {
		return e.lastStatus
	}
	var parts []string
	if c.Primary != "" {
		parts = append(parts, fmt.Sprintf("primary %s, epoch %d", c.Primary, c.Epoch))
	}
	for _, in := range c.Instances {
		if slices.Contains(strings.Split(name, "/"), in.Name) {
			parts = append(parts, in.Name)
			parts = append(parts, "role "+string(in.Role))
			if in.ReadOnly != nil {
				parts = append(parts, fmt.Sprintf("read_only=%v", *in.ReadOnly))
			}
			if in.QuarantineReason != "" {
				parts = append(parts, "quarantined: "+in.QuarantineReason)
			}
			if in.Replication != nil {
				parts = append(parts, fmt.Sprintf("replicating from %q io=%s sql=%s %s %s", in.Replication.SourceName, in.Replication.IOThread, in.Replication.SQLThread, in.Replication.LastIOError, in.Replication.LastSQLError))
			}
		}
	}
	for _, p := range c.Problems {
		if p.Code != "Healthy" {
			parts = append(parts, fmt.Sprintf("problem %s %v: %s", p.Code, p.Instances, p.Reason))
		}
	}
	return strings.Join(parts, "; ")
}

type switchoverResult struct {
	from, to       string
	clientGap      time.Duration
	regentBlocked  time.Duration
	regentTook     time.Duration
	failedAttempts int
	acked, lost    int
	op             api.Operation
	refused        string // the refusal, when the switchover was refused
	// gapBeforeFence is how long before Regent's fence step the client's
	// last write before the gap was acknowledged; gapAfterRoute how long
	// after the route step ended the first write after it was.
	gapBeforeFence, gapAfterRoute time.Duration
}

func (e *benchEnv) switchoverTrial(b *testing.B) switchoverResult {
	b.Helper()
	if !e.waitHealthy(b, 30*time.Second) {
		b.Fatalf("a trial starts on a healthy cluster: %s", e.lastStatus)
	}
	c, _ := e.status()
	// Back and forth between p and r1.
	r := switchoverResult{from: c.Primary, to: "r1"}
	if c.Primary == "r1" {
		r.to = "p"
	}
	w := e.startWriter()
	defer w.stop()
	w.waitAcked(b, 200, 20*time.Second)
	time.Sleep(200 * time.Millisecond) // steady writing before the switchover

	t0 := time.Now()
	out, errOut, code := e.s.Ctl("-o", "json", "switchover", "--to", r.to)
	t1 := time.Now()
	if code == 1 && strings.Contains(errOut, "refused") {
		// Refused before it started (the cluster changed since the
		// check): the caller reports it and tries again.
		r.refused = strings.TrimSpace(errOut)
		return r
	}
	if code != 0 {
		b.Fatalf("switchover %s -> %s: exit %d:\n%s\n%s", r.from, r.to, code, out, errOut)
	}
	var op api.Operation
	if err := json.Unmarshal([]byte(out), &op); err != nil {
		b.Fatalf("switchover output is not an operation (%v):\n%s", err, out)
	}
	if op.NewPrimary != r.to || op.Result != api.ResultSuccess {
		b.Fatalf("switchover %s -> %s: %s", r.from, r.to, out)
	}
	r.op = op
	if op.WriteBlocked != nil {
		r.regentBlocked = op.WriteBlocked.Std()
	}
	if op.Ended != nil {
		r.regentTook = op.Ended.Sub(op.Started)
	}
	w.waitAckedAfter(t1, 100, 10*time.Second)
	w.stop()
	acks := w.acked()
	r.acked = len(acks)
	var gapFrom, gapTo time.Time
	r.clientGap, gapFrom, gapTo = largestGap(acks, t0, t1)
	for _, st := range op.Steps {
		switch {
		case strings.HasPrefix(st.Name, "fence-old-primary"):
			r.gapBeforeFence = st.Started.Sub(gapFrom)
		case strings.HasPrefix(st.Name, "route"):
			r.gapAfterRoute = gapTo.Sub(st.Started.Add(st.Duration.Std()))
		}
	}
	r.failedAttempts = w.failedAfter(t0)

	newPrimary := e.s.Server(r.to)
	waitApplied(newPrimary, acks, 10*time.Second)
	r.lost = missing(b, newPrimary, acks)

	// The old primary replicates from the new one: as Regent sees it, and
	// as the server itself says.
	oldSrv := e.s.Server(r.from)
	deadline := time.Now().Add(20 * time.Second)
	for {
		io, sqlT, lastErr := mysqltest.ReplicaThreads(b, oldSrv)
		port := sourcePort(b, oldSrv)
		if io == "Yes" && sqlT == "Yes" && port == newPrimary.Port {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("after switchover %s -> %s, %s does not replicate from %s: IO=%q SQL=%q source port %d (want %d) %s", r.from, r.to, r.from, r.to, io, sqlT, port, newPrimary.Port, lastErr)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	return r
}

// sourcePort is the port oldSrv replicates from, 0 when it does not.
func sourcePort(b *testing.B, s *mysqltest.Server) int {
	q, col := "SHOW SLAVE STATUS", "Master_Port"
	if s.Kind == mysqltest.MySQL {
		q, col = "SHOW REPLICA STATUS", "Source_Port"
	}
	rows, err := s.DB().Query(q)
	if err != nil {
		b.Fatalf("%s: %s: %v", s, q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		return 0
	}
	vals := make([]any, len(cols))
	var port string
	for i, c := range cols {
		if c == col {
			vals[i] = &port
		} else {
			vals[i] = new(any)
		}
	}
	if err := rows.Scan(vals...); err != nil {
		b.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	return n
}

// largestGap is the longest time between two consecutive acknowledgements
// (by end time) among those that enclose the interval [from, to] or lie in
// it: how long the client saw no write succeed around the switchover.
// It returns the gap and the two acknowledgements around it.
func largestGap(acks []writeAck, from, to time.Time) (gap time.Duration, start, end time.Time) {
	for i := 1; i < len(acks); i++ {
		prev, cur := acks[i-1].end, acks[i].end
		if cur.Before(from) || prev.After(to) {
			continue
		}
		if d := cur.Sub(prev); d > gap {
			gap, start, end = d, prev, cur
		}
	}
	return gap, start, end
}

// ------------------------------------------------------------- writer ----

// benchWriter inserts one row at a time through HAProxy with autocommit,
// on one connection; on any error it drops the connection, pauses
// benchRetryPause and tries again on a new one with the next id. It records
// when each acknowledged insert started and ended.
type benchWriter struct {
	conn   driver.Connector
	mu     sync.Mutex
	acks   []writeAck
	fails  []time.Time
	last   error
	nextID int64
	cur    int64 // the id being written now
	cancel context.CancelFunc
	done   chan struct{}
	notify chan struct{}
}

type writeAck struct {
	id         int64
	start, end time.Time
}

func (e *benchEnv) startWriter() *benchWriter {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = mysqltest.AppUser, mysqltest.AppPassword, "tcp", e.s.HAProxyAddr, mysqltest.TestDatabase
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = benchAttemptTimeout, benchAttemptTimeout, benchAttemptTimeout
	if e.k == mysqltest.MySQL {
		cfg.TLSConfig = "skip-verify"
	}
	cfg.Logger = quietLogger{}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		e.tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &benchWriter{conn: conn, nextID: e.nextID, cancel: cancel, done: make(chan struct{}), notify: make(chan struct{}, 1)}
	go w.run(ctx, e)
	return w
}

type quietLogger struct{}

func (quietLogger) Print(...any) {}

func (w *benchWriter) run(ctx context.Context, e *benchEnv) {
	defer close(w.done)
	var c driver.Conn
	defer func() {
		if c != nil {
			_ = c.Close()
		}
	}()
	id := w.nextID
	defer func() { e.nextID = id + 1 }()
	for ; ctx.Err() == nil; id++ {
		w.mu.Lock()
		w.cur = id
		w.mu.Unlock()
		start := time.Now()
		actx, cancel := context.WithTimeout(ctx, benchAttemptTimeout)
		err := func() error {
			if c == nil {
				nc, err := w.conn.Connect(actx)
				if err != nil {
					return err
				}
				c = nc
			}
			ex, ok := c.(driver.ExecerContext)
			if !ok {
				return errors.New("the driver's connection cannot Exec")
			}
			_, err := ex.ExecContext(actx, fmt.Sprintf("INSERT INTO writes (id) VALUES (%d)", id), nil)
			return err
		}()
		cancel()
		end := time.Now()
		if ctx.Err() != nil {
			return // stopped: the outcome of this attempt does not count
		}
		w.mu.Lock()
		if err != nil {
			w.fails = append(w.fails, end)
			w.last = err
		} else {
			w.acks = append(w.acks, writeAck{id: id, start: start, end: end})
		}
		w.mu.Unlock()
		select {
		case w.notify <- struct{}{}:
		default:
		}
		if err != nil {
			if c != nil {
				_ = c.Close()
				c = nil
			}
			time.Sleep(benchRetryPause)
		}
	}
}

// inFlight returns the id being written now.
func (w *benchWriter) inFlight() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur
}

func (w *benchWriter) stop() {
	w.cancel()
	<-w.done
}

func (w *benchWriter) acked() []writeAck {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.acks)
}

func (w *benchWriter) failures() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.fails), w.last
}

func (w *benchWriter) failedAfter(t time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, f := range w.fails {
		if f.After(t) {
			n++
		}
	}
	return n
}

// wait waits until cond holds (checked after every attempt) or timeout.
func (w *benchWriter) wait(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		ok := cond()
		w.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-w.notify:
		case <-w.done:
			w.mu.Lock()
			ok := cond()
			w.mu.Unlock()
			return ok
		case <-deadline.C:
			return false
		}
	}
}

func (w *benchWriter) waitAcked(b *testing.B, n int, timeout time.Duration) {
	b.Helper()
	if !w.wait(timeout, func() bool { return len(w.acks) >= n }) {
		nf, last := w.failures()
		b.Fatalf("writer: fewer than %d writes acknowledged within %v (%d failed, last error %v)", n, timeout, nf, last)
	}
}

// waitFirstAckAfter returns the first acknowledged write that started
// after t.
func (w *benchWriter) waitFirstAckAfter(t time.Time, timeout time.Duration) (writeAck, bool) {
	var first writeAck
	ok := w.wait(timeout, func() bool {
		for i := len(w.acks) - 1; i >= 0 && w.acks[i].start.After(t); i-- {
			first = w.acks[i]
		}
		return !first.start.IsZero()
	})
	return first, ok
}

func (w *benchWriter) waitAckedAfter(t time.Time, n int, timeout time.Duration) {
	w.wait(timeout, func() bool {
		c := 0
		for i := len(w.acks) - 1; i >= 0 && w.acks[i].start.After(t); i-- {
			c++
		}
		return c >= n
	})
}
