package chaos

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/integration/netlab"
	"github.com/regentdb/regent/proxyhook"
	"github.com/regentdb/regent/topology/mysqltest"
)

// RunOptions shape one schedule's run.
type RunOptions struct {
	// Clients is how many clients write through HAProxy (besides the
	// direct one).
	Clients int
	// Interval is each client's pause between two attempts.
	Interval time.Duration
	// SampleEvery is the sampler's period.
	SampleEvery time.Duration
	// Profile is the agents' settings profile.
	Profile netlab.Profile
	// AntiFlap is the agents' anti_flap_period: short, so that a
	// schedule can drive several failovers.
	AntiFlap time.Duration
	// KeepDir, when set, receives the agents' and HAProxy's logs of a
	// run whose test failed, in KeepDir/<flavour>-seed-<seed>.
	KeepDir string
}

// DefaultRun is what the campaigns use: three clients through HAProxy and
// one direct, every 20 ms; samples every 50 ms; the sandbox's fast settings
// with a 5 s anti-flap period.
var DefaultRun = RunOptions{Clients: 3, Interval: 20 * time.Millisecond, SampleEvery: 50 * time.Millisecond,
	Profile: netlab.Fast, AntiFlap: 5 * time.Second}

// writeBackend is the lab's HAProxy write backend; its servers are
// "mysql_" + the host's name.
const writeBackend = "mysql_write"

// run is one schedule's run on one lab.
type run struct {
	t     mysqltest.TB
	r     *netlab.Regent
	o     RunOptions
	sch   Schedule
	start time.Time
	names map[uint32]string // server_id -> instance
	http  *http.Client
	rt    *proxyhook.RuntimeClient
	pools map[string]*sql.DB // the sampler's and the direct client's, by instance

	mu       sync.Mutex
	attempts []Attempt
	samples  []Sample
	events   []Event
	applied  []Kind
	writable string // the instance last seen writable (the direct client's target)
	nextID   atomic.Int64
}

// Run starts a fresh lab of flavour k, runs sch against it under the
// workload and the sampler, heals everything, waits for convergence, and
// returns what it recorded. It fails t only when the harness itself breaks
// (a fault that cannot be injected); Check judges the history.
func Run(t mysqltest.TB, k mysqltest.Kind, sch Schedule, o RunOptions) History {
	t.Helper()
	r := netlab.StartRegent(t, k, netlab.Options{Profile: o.Profile, AntiFlapPeriod: o.AntiFlap})
	x := &run{t: t, r: r, o: o, sch: sch, names: map[uint32]string{}, pools: map[string]*sql.DB{}}
	if o.KeepDir != "" {
		// Registered after the lab's own cleanup, so run before it, while
		// the logs are still there.
		t.Cleanup(func() {
			if t.Failed() {
				x.keepLogs(filepath.Join(o.KeepDir, fmt.Sprintf("%s-seed-%d", k, sch.Seed)))
			}
		})
	}
	for _, h := range r.DBHosts {
		x.names[h.DB.ServerID] = h.Name
		x.pools[h.Name] = x.pool(h, mysqltest.AdminUser, mysqltest.AdminPassword, "", 300*time.Millisecond, time.Second, 4)
	}
	x.http = &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{TLSClientConfig: r.TLS.Clone()}}
	t.Cleanup(x.http.CloseIdleConnections)
	rt, err := proxyhook.NewRuntimeClient("tcp:"+r.HAProxyRuntimeAddr, proxyhook.RuntimeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	x.rt = rt
	x.writable = r.DBHosts[0].Name

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wctx, stopClients := context.WithCancel(ctx)
	for i := range o.Clients {
		wg.Go(func() { x.client(wctx, fmt.Sprintf("haproxy-%d", i+1)) })
	}
	wg.Go(func() { x.client(wctx, DirectClient) })
	sctx, stopSampler := context.WithCancel(ctx)
	var sg sync.WaitGroup
	sg.Go(func() { x.sampler(sctx) })

	x.start = time.Now()
	x.nemesis(ctx)
	healed := time.Now()
	final := x.converge(ctx, healed)
	stopClients()
	wg.Wait()
	stopSampler()
	sg.Wait()
	x.collect(ctx, &final)

	x.mu.Lock()
	defer x.mu.Unlock()
	return History{Flavor: string(k), Schedule: sch, Attempts: x.attempts, Samples: x.samples, Events: x.events,
		Applied: x.applied, Final: final, Started: x.start, Logs: r.Dir}
}

func (x *run) apply(k Kind) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.applied = append(x.applied, k)
}

func (x *run) event(kind, format string, args ...any) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.events = append(x.events, Event{At: time.Now(), Kind: kind, Detail: fmt.Sprintf(format, args...)})
}

// pool opens a pool of at most n connections to h's mysqld from the root
// namespace as user, with a connect timeout and statement timeouts of read: the sampler's (the
// admin account, short: a frozen server must not hold up a sample) and
// the direct client's (the application's, patient). Closed at cleanup.
func (x *run) pool(h *netlab.Host, user, password, dbName string, connect, read time.Duration, n int) *sql.DB {
	c := h.DB.Config(user, password)
	c.DBName = dbName
	c.Timeout, c.ReadTimeout, c.WriteTimeout = connect, read, read
	c.Logger = netlab.Quiet{}
	conn, err := mysql.NewConnector(c)
	if err != nil {
		x.t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(n)
	x.t.Cleanup(func() { _ = db.Close() })
	return db
}

// keepLogs copies the agents', HAProxy's and the servers' logs to dir.
func (x *run) keepLogs(dir string) {
	if err := x.r.KeepLogs(dir); err != nil {
		x.t.Logf("chaos: keeping logs: %v", err)
		return
	}
	x.t.Logf("chaos: logs kept in %s", dir)
}

// client writes rows with unique ids until ctx ends, recording every
// attempt: through HAProxy, or (DirectClient) straight to the instance the
// sampler last saw writable.
func (x *run) client(ctx context.Context, name string) {
	direct := map[string]*sql.DB{} // closed at cleanup (pool)
	var through *sql.DB
	if name != DirectClient {
		through = x.r.AppDB()
		defer through.Close()
	}
	const most = 100000 // bound on attempts, far above a run's
	for range most {
		if ctx.Err() != nil {
			return
		}
		db := through
		if db == nil {
			x.mu.Lock()
			target := x.writable
			x.mu.Unlock()
			if direct[target] == nil {
				h := x.r.Host(target)
				direct[target] = x.pool(h, mysqltest.AppUser, mysqltest.AppPassword, mysqltest.TestDatabase, time.Second, 10*time.Second, 1)
			}
			db = direct[target]
		}
		x.record(x.attempt(ctx, db, name))
		select {
		case <-ctx.Done():
			return
		case <-time.After(x.o.Interval):
		}
	}
}

func (x *run) record(a Attempt) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.attempts = append(x.attempts, a)
}

// attempt reads the session's server_id, then inserts one row on the same
// connection. Start is taken just before the INSERT is sent (when the
// session was established), so that a row is judged by when it was sent.
func (x *run) attempt(ctx context.Context, db *sql.DB, name string) Attempt {
	a := Attempt{Client: name, ID: x.nextID.Add(1), Start: time.Now()}
	timeout := 3 * time.Second
	if name == DirectClient {
		timeout = 12 * time.Second
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := db.Conn(actx)
	if err == nil {
		var sid uint32
		if err = conn.QueryRowContext(actx, "SELECT @@server_id").Scan(&sid); err == nil {
			a.Target = x.names[sid]
			a.Start = time.Now()
			_, err = conn.ExecContext(actx, "INSERT INTO writes (id) VALUES (?)", a.ID)
		}
		if err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn }) // never reuse a broken session
		}
		_ = conn.Close()
	}
	a.End = time.Now()
	a.OK = err == nil
	if err != nil {
		a.Err = err.Error()
	}
	return a
}

// sampler records a Sample every SampleEvery until ctx ends.
func (x *run) sampler(ctx context.Context) {
	for ctx.Err() == nil {
		began := time.Now()
		s := x.sample(ctx)
		x.mu.Lock()
		x.samples = append(x.samples, s)
		x.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(max(x.o.SampleEvery-time.Since(began), 0)):
		}
	}
}

func (x *run) sample(ctx context.Context) Sample {
	s := Sample{At: time.Now(), ReadOnly: map[string]bool{}, PrimaryCheck: map[string]int{}, HAProxy: map[string]string{},
		Epoch: map[string]uint64{}, Primary: map[string]string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, h := range x.r.DBHosts {
		wg.Go(func() {
			qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			var ro int
			if err := x.pools[h.Name].QueryRowContext(qctx, "SELECT @@GLOBAL.read_only").Scan(&ro); err == nil {
				mu.Lock()
				s.ReadOnly[h.Name] = ro == 1
				mu.Unlock()
			}
		})
		wg.Go(func() {
			code := 0
			if resp, err := x.http.Get("https://" + h.Agent.APIAddr + "/primary"); err == nil {
				code = resp.StatusCode
				_ = resp.Body.Close()
			}
			mu.Lock()
			s.PrimaryCheck[h.Name] = code
			mu.Unlock()
		})
		wg.Go(func() {
			qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			if c, err := x.r.API(h).Cluster(qctx, netlab.ClusterName); err == nil {
				mu.Lock()
				s.Epoch[h.Name], s.Primary[h.Name] = c.Epoch, c.Primary
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if states, err := x.rt.ShowServersState(qctx, writeBackend); err == nil {
			mu.Lock()
			for _, st := range states {
				s.HAProxy[strings.TrimPrefix(st.Server, "mysql_")] = haproxyState(st)
			}
			mu.Unlock()
		}
	})
	wg.Wait()
	var writable []string
	for name, ro := range s.ReadOnly {
		if !ro {
			writable = append(writable, name)
		}
	}
	if len(writable) == 1 {
		x.mu.Lock()
		x.writable = writable[0]
		x.mu.Unlock()
	}
	return s
}

func haproxyState(st proxyhook.ServerState) string {
	switch {
	case st.AdminState.InMaint():
		return "MAINT"
	case st.AdminState.Draining():
		return "DRAIN"
	case st.OpState == proxyhook.OpRunning:
		return "UP"
	default:
		return "DOWN"
	}
}

// routed returns the only server HAProxy's write backend would route to,
// or "" when none or several are routable.
func (x *run) routed(ctx context.Context) string {
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	states, err := x.rt.ShowServersState(qctx, writeBackend)
	if err != nil {
		return ""
	}
	var up []string
	for _, st := range states {
		if st.Routable() {
			up = append(up, strings.TrimPrefix(st.Server, "mysql_"))
		}
	}
	if len(up) != 1 {
		return ""
	}
	return up[0]
}

// converge waits up to ConvergeWithin after the heal for the convergence
// conditions and no running operation, and returns the state it last saw.
func (x *run) converge(ctx context.Context, healed time.Time) Final {
	f := Final{HealedAt: healed}
	deadline := healed.Add(ConvergeWithin)
	for {
		// As a service manager would: a mysqld its agent's fence stopped
		// (which may still have been stopping at the heal) is started
		// again, read-only as its configuration says.
		for _, h := range x.r.DBHosts {
			if h.DB.Exited() {
				x.r.RestartMySQL(h)
				x.event("heal", "restarted %s's mysqld, found stopped", h.Name)
			}
		}
		f = x.snapshot(ctx, healed)
		ok, why := Converged(f)
		if ok && f.Why == "" {
			f.ConvergedAt = time.Now()
			return f
		}
		if f.Why == "" {
			f.Why = why
		}
		if time.Now().After(deadline) {
			return f
		}
		select {
		case <-ctx.Done():
			return f
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// snapshot reads the final state (without rows and operations: collect).
// Why is set when something kept it from being read, or an operation runs.
func (x *run) snapshot(ctx context.Context, healed time.Time) Final {
	f := Final{HealedAt: healed}
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := x.r.LeaderCluster(qctx)
	if err != nil {
		f.Why = "no leader answers: " + err.Error()
		return f
	}
	f.Primary, f.Epoch, f.AutomaticFailover = c.Primary, c.Epoch, c.AutomaticFailover
	if c.Operation != nil {
		f.Why = fmt.Sprintf("operation %s (%s) still runs", c.Operation.ID, c.Operation.Kind)
	}
	for _, h := range x.r.DBHosts {
		in := FinalInstance{Name: h.Name}
		var ro int
		if err := x.pools[h.Name].QueryRowContext(qctx, "SELECT @@GLOBAL.read_only").Scan(&ro); err == nil {
			in.Reachable, in.Writable = true, ro == 0
		}
		for _, ci := range c.Instances {
			if ci.Name != h.Name {
				continue
			}
			in.Role, in.QuarantineReason = ci.Role, ci.QuarantineReason
			if rp := ci.Replication; rp != nil && rp.IOThread == api.ThreadRunning && rp.SQLThread == api.ThreadRunning {
				in.SourceName = rp.SourceName
			}
		}
		f.Instances = append(f.Instances, in)
	}
	f.Routed = x.routed(ctx)
	return f
}

// collect adds each instance's rows and the cluster's operations to f.
func (x *run) collect(ctx context.Context, f *Final) {
	qctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	// Replicas are read as they are: what they lack of the primary's rows
	// judges nothing (only the final primary's rows count as kept, and only
	// rows another instance holds that the primary lacks show a writer).
	for i := range f.Instances {
		ids, err := x.rows(qctx, f.Instances[i].Name)
		f.Instances[i].Rows = ids
		if err != nil {
			f.Instances[i].RowsErr = err.Error()
		}
	}
	_, c, err := x.r.Leader(qctx)
	if err != nil {
		return
	}
	h, err := x.r.API(x.r.Host(c.ObservedBy)).History(qctx, netlab.ClusterName, 1000)
	if err != nil {
		return
	}
	ops := h.Operations
	slices.Reverse(ops) // oldest first
	for _, op := range ops {
		if !op.Started.Before(x.start.Add(-time.Minute)) {
			f.Operations = append(f.Operations, op)
		}
	}
}

// rows reads the workload's row ids on an instance.
func (x *run) rows(ctx context.Context, name string) ([]int64, error) {
	rows, err := x.pools[name].QueryContext(ctx, "SELECT id FROM "+mysqltest.TestDatabase+".writes")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return ids, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// Describe is a one-line summary of a violation-free or failed run, for
// logs: writes acknowledged and lost, operations and their results.
func (h History) Describe() string {
	acked := 0
	for _, a := range h.Attempts {
		if a.OK {
			acked++
		}
	}
	results := map[string]int{}
	for _, op := range h.Final.Operations {
		results[op.Kind+" "+op.Result]++
	}
	return fmt.Sprintf("%d attempts, %d acknowledged; operations %v; final primary %s epoch %d", len(h.Attempts), acked, results, h.Final.Primary, h.Final.Epoch)
}
