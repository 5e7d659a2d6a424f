package failover

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// tset is the test GTIDSet: an explicit set of "source:n" strings. It is the
// reference model the real implementation is compared with in topology; here
// it only has to be obviously right.
type tset map[string]bool

var _ GTIDSet = tset(nil)

// gsCache memoises gs: tsets are never mutated after creation, so sharing
// them is safe, and parsing dominated the property test's time.
var gsCache sync.Map

// gs parses "a:1-3,b:5" into a tset; "" is the empty set.
func gs(s string) tset {
	if c, ok := gsCache.Load(s); ok {
		return c.(tset)
	}
	out := parseTset(s)
	gsCache.Store(s, out)
	return out
}

func parseTset(s string) tset {
	out := tset{}
	if strings.TrimSpace(s) == "" {
		return out
	}
	for _, part := range strings.Split(s, ",") {
		src, rng, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			panic("bad gtid " + part)
		}
		lo, hi, isRange := strings.Cut(rng, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			panic(err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				panic(err)
			}
		}
		for i := a; i <= b; i++ {
			out[fmt.Sprintf("%s:%d", src, i)] = true
		}
	}
	return out
}

func (a tset) Contains(o GTIDSet) bool {
	for k := range o.(tset) {
		if !a[k] {
			return false
		}
	}
	return true
}

func (a tset) Equal(o GTIDSet) bool { return a.Contains(o) && o.Contains(a) }

func (a tset) Subtract(o GTIDSet) GTIDSet {
	if o.Contains(a) {
		return tset{}
	}
	out := tset{}
	for k := range a {
		if !o.(tset)[k] {
			out[k] = true
		}
	}
	return out
}

func (a tset) Union(o GTIDSet) GTIDSet {
	// Sets are immutable, so returning an operand is safe.
	if a.Contains(o) {
		return a
	}
	if o.Contains(a) {
		return o
	}
	out := tset{}
	for k := range a {
		out[k] = true
	}
	for k := range o.(tset) {
		out[k] = true
	}
	return out
}

func (a tset) IsEmpty() bool { return len(a) == 0 }

func (a tset) Restrict(o GTIDSet) GTIDSet {
	srcs := map[string]bool{}
	for k := range o.(tset) {
		src, _, _ := strings.Cut(k, ":")
		srcs[src] = true
	}
	out := tset{}
	for k := range a {
		if src, _, _ := strings.Cut(k, ":"); srcs[src] {
			out[k] = true
		}
	}
	return out
}

// String prints canonically: sources sorted, numbers merged into ranges.
func (a tset) String() string {
	bySrc := map[string][]int{}
	for k := range a {
		src, n, _ := strings.Cut(k, ":")
		i, _ := strconv.Atoi(n)
		bySrc[src] = append(bySrc[src], i)
	}
	srcs := make([]string, 0, len(bySrc))
	for s := range bySrc {
		srcs = append(srcs, s)
	}
	sort.Strings(srcs)
	var parts []string
	for _, s := range srcs {
		ns := bySrc[s]
		sort.Ints(ns)
		for i := 0; i < len(ns); {
			j := i
			for j+1 < len(ns) && ns[j+1] == ns[j]+1 {
				j++
			}
			if i == j {
				parts = append(parts, fmt.Sprintf("%s:%d", s, ns[i]))
			} else {
				parts = append(parts, fmt.Sprintf("%s:%d-%d", s, ns[i], ns[j]))
			}
			i = j + 1
		}
	}
	return strings.Join(parts, ",")
}

// --- view builder ---

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const ms = time.Millisecond

func ago(d time.Duration) time.Time { return t0.Add(-d) }
func dur(d time.Duration) *time.Duration {
	return &d
}

// B builds a view. base() is a healthy cluster: db1 primary (agent a1),
// replicas db2 (agent a2, the leader) and db3 (agent a3); every agent probed
// every instance 200ms ago; everything executed p:1-100; heartbeats every
// second, last progress 300ms ago; semi-sync lossless with two clients.
type B struct {
	v View
	p Policy
}

func base() *B {
	b := &B{p: DefaultPolicy()}
	b.v = View{
		Cluster:   "main",
		Now:       t0,
		Leader:    "a2",
		Agents:    map[AgentID]AgentReport{},
		Instances: map[string]Instance{},
		State:     ReplicatedState{Primary: "db1", Epoch: 7},
	}
	for _, a := range []AgentID{"a1", "a2", "a3"} {
		b.v.Agents[a] = AgentReport{LastHeard: ago(100 * ms), Local: LocalRunning, LocalSince: ago(time.Hour)}
	}
	b.agent("a1", func(r *AgentReport) { r.LeaseHeld = true })
	b.addInstance("db1", "a1", false)
	b.addInstance("db2", "a2", true)
	b.addInstance("db3", "a3", true)
	return b
}

// addInstance adds an instance probed healthy by every agent; a replica
// replicates from db1.
func (b *B) addInstance(name string, owner AgentID, replica bool) *B {
	in := Instance{Name: name, Addr: "10.0.0." + strings.TrimPrefix(name, "db") + ":3306", Promotion: PromotionNeutral, OwnerAgent: owner, Probes: map[AgentID]Probe{}}
	for _, a := range b.v.agentIDs() {
		in.Probes[a] = healthyProbe(replica)
	}
	in.LastSeen = healthyProbe(replica)
	b.v.Instances[name] = in
	return b
}

func healthyProbe(replica bool) Probe {
	pr := Probe{ObservedAt: ago(200 * ms), Reachable: true, Executed: gs("p:1-100"), LogsReplicaUpdates: true}
	if replica {
		pr.ReadOnly = true
		pr.SemiSync = SemiSyncState{ReplicaEnabled: true, ReplicaActive: true}
		pr.Replica = &ReplicaStatus{
			Source: "db1", IOState: IOYes, SQLRunning: true, Lag: dur(0),
			Retrieved: gs("p:1-100"), HeartbeatPeriod: time.Second,
			ReceivedHeartbeats: 42, ReadPosition: "binlog.000003:1234", LastProgressAt: ago(300 * ms),
		}
	} else {
		pr.SemiSync = SemiSyncState{SourceEnabled: true, SourceActive: true, SourceClients: 2, WaitPoint: "AFTER_SYNC",
			WaitNoReplica: true, Timeout: 4294967295 * time.Millisecond, WaitCount: 1}
	}
	return pr
}

func (b *B) build() (View, Policy) { return b.v, b.p }

func (b *B) inst(name string, f func(*Instance)) *B {
	in := b.v.Instances[name]
	f(&in)
	b.v.Instances[name] = in
	return b
}

// probes applies f to every agent's probe of the instance.
func (b *B) probes(name string, f func(*Probe)) *B {
	return b.inst(name, func(in *Instance) {
		for a, pr := range in.Probes {
			if pr.Replica != nil {
				rs := *pr.Replica
				pr.Replica = &rs
			}
			f(&pr)
			in.Probes[a] = pr
		}
	})
}

// probeBy applies f to one agent's probe.
func (b *B) probeBy(a AgentID, name string, f func(*Probe)) *B {
	return b.inst(name, func(in *Instance) {
		pr := in.Probes[a]
		if pr.Replica != nil {
			rs := *pr.Replica
			pr.Replica = &rs
		}
		f(&pr)
		in.Probes[a] = pr
	})
}

func (b *B) replica(name string, f func(*ReplicaStatus)) *B {
	return b.probes(name, func(pr *Probe) {
		if pr.Replica != nil {
			f(pr.Replica)
		}
	})
}

func failed(pr *Probe, c ErrorClass, since time.Time) {
	*pr = Probe{ObservedAt: ago(100 * ms), Error: c, FailingSince: since}
}

// down makes every agent fail to reach the instance since `since`.
func (b *B) down(name string, c ErrorClass, since time.Time) *B {
	return b.probes(name, func(pr *Probe) { failed(pr, c, since) })
}

// exec sets the executed (and, for replicas, retrieved) set.
func (b *B) exec(name, set string) *B {
	return b.probes(name, func(pr *Probe) {
		pr.Executed = gs(set)
		if pr.Replica != nil {
			pr.Replica.Retrieved = gs(set)
		}
	})
}

func (b *B) retrieved(name, set string) *B {
	return b.replica(name, func(rs *ReplicaStatus) { rs.Retrieved = gs(set) })
}

func (b *B) lastSeen(name, set string) *B {
	return b.inst(name, func(in *Instance) { in.LastSeen.Executed = gs(set) })
}

// notLossless makes the instance last seen with the server's default
// semi-sync timeout (10s): not lossless, so semi-sync does not fence it
// (SemiSyncFenceOf) and a failover waits out its agent's lease.
func (b *B) notLossless(name string) *B {
	return b.inst(name, func(in *Instance) { in.LastSeen.SemiSync.Timeout = 10 * time.Second })
}

// lastSeenOwn sets the instance's last known set and the part of it that
// it wrote itself (Probe.Own).
func (b *B) lastSeenOwn(name, set, own string) *B {
	return b.inst(name, func(in *Instance) { in.LastSeen.Executed, in.LastSeen.Own = gs(set), gs(own) })
}

// primaryGone: the primary's mysqld is dead since `since`: every agent's
// probe fails, replicas' IO threads are Connecting.
func (b *B) primaryGone(since time.Time) *B {
	b.down("db1", ClassRefused, since)
	for _, n := range b.v.names() {
		if n != "db1" {
			b.replica(n, func(rs *ReplicaStatus) {
				rs.IOState = IOConnecting
				rs.Lag = nil
				rs.LastIOError = "error reconnecting to master 'repl@10.0.0.1:3306'"
			})
		}
	}
	return b
}

func (b *B) io(name string, s IOState) *B {
	return b.replica(name, func(rs *ReplicaStatus) { rs.IOState = s })
}

func (b *B) sqlStopped(name, err string) *B {
	return b.replica(name, func(rs *ReplicaStatus) { rs.SQLRunning = false; rs.LastSQLError = err })
}

func (b *B) lag(name string, d time.Duration) *B {
	return b.replica(name, func(rs *ReplicaStatus) { rs.Lag = dur(d) })
}

func (b *B) delay(name string, d time.Duration) *B {
	return b.replica(name, func(rs *ReplicaStatus) { rs.SQLDelay = d })
}

func (b *B) source(name, src string) *B {
	return b.replica(name, func(rs *ReplicaStatus) { rs.Source = src })
}

func (b *B) progress(name string, at time.Time) *B {
	return b.replica(name, func(rs *ReplicaStatus) { rs.LastProgressAt = at })
}

// stream sets agent a's binlog stream from the instance: heartbeats every
// period, the latest packet at heardAt (zero: none yet).
func (b *B) stream(a AgentID, name string, period time.Duration, heardAt time.Time) *B {
	return b.probeBy(a, name, func(pr *Probe) { pr.Stream = Stream{Period: period, HeardAt: heardAt} })
}

// heartbeats sets every replica's heartbeat period.
func (b *B) heartbeats(period time.Duration) *B {
	for _, n := range b.v.names() {
		b.replica(n, func(rs *ReplicaStatus) { rs.HeartbeatPeriod = period })
	}
	return b
}

// lastReached sets when every agent last reached the instance.
func (b *B) lastReached(name string, at time.Time) *B {
	return b.probes(name, func(pr *Probe) { pr.LastReachedAt = at })
}

func (b *B) rule(name string, r PromotionRule) *B {
	return b.inst(name, func(in *Instance) { in.Promotion = r })
}

func (b *B) writable(name string, on bool) *B {
	return b.probes(name, func(pr *Probe) { pr.ReadOnly = !on; pr.SuperReadOnly = false })
}

// notAcking marks an instance as not a semi-sync acknowledger when it was
// last seen (its replica side off): it cannot hold the only copy of an
// acknowledged write.
func (b *B) notAcking(name string) *B {
	return b.inst(name, func(in *Instance) { in.LastSeen.SemiSync.ReplicaEnabled = false })
}

func (b *B) notReplica(name string) *B {
	return b.probes(name, func(pr *Probe) { pr.Replica = nil })
}

func (b *B) agent(a AgentID, f func(*AgentReport)) *B {
	r := b.v.Agents[a]
	f(&r)
	b.v.Agents[a] = r
	return b
}

func (b *B) localGone(a AgentID, since time.Time) *B {
	return b.agent(a, func(r *AgentReport) {
		r.Local, r.LocalSince, r.LocalDetail = LocalGone, since, "connection refused on /run/mysqld/mysqld.sock"
	})
}

func (b *B) silent(a AgentID, lastHeard time.Time) *B {
	return b.agent(a, func(r *AgentReport) { r.LastHeard = lastHeard })
}

func (b *B) state(f func(*ReplicatedState)) *B {
	f(&b.v.State)
	return b
}

func (b *B) policy(f func(*Policy)) *B {
	f(&b.p)
	return b
}

func (b *B) quarantine(name, why string) *B {
	return b.state(func(s *ReplicatedState) {
		if s.Quarantined == nil {
			s.Quarantined = map[string]string{}
		}
		s.Quarantined[name] = why
	})
}

// maintenance puts an instance in maintenance until `until`.
func (b *B) maintenance(name string, until time.Time) *B {
	return b.state(func(s *ReplicatedState) {
		if s.Maintenance == nil {
			s.Maintenance = map[string]Maintenance{}
		}
		s.Maintenance[name] = Maintenance{By: "alice", Reason: "kernel upgrade", Until: until}
	})
}

func (b *B) route(rc RouteCheck) *B {
	b.v.Route = rc
	return b
}

// knownErrant records that a1 found set on name an hour ago.
func (b *B) knownErrant(name, set string) *B {
	return b.knownErrantBy("a1", name, set, ago(time.Hour))
}

// knownErrantBy records one agent's earlier judgement that name holds set,
// made from a probe of name taken at at.
func (b *B) knownErrantBy(agent AgentID, name, set string, at time.Time) *B {
	return b.inst(name, func(in *Instance) {
		if in.ErrantJudged == nil {
			in.ErrantJudged = map[AgentID]ErrantJudgement{}
		}
		in.ErrantJudged[agent] = ErrantJudgement{Errant: gs(set), At: at}
	})
}

func (b *B) semi(f func(*SemiSyncState)) *B {
	return b.probes("db1", func(pr *Probe) { f(&pr.SemiSync) })
}

// --- diff ---

// render prints a value one field per line, deterministically (maps sorted,
// GTID sets and times as text), so that two renderings can be diffed line by
// line.
func render(v any) []string {
	var out []string
	leaf := func(prefix, s string) {
		name := strings.TrimSuffix(prefix, ".")
		if name == "" {
			out = append(out, s)
			return
		}
		out = append(out, name+" = "+s)
	}
	var walk func(prefix string, rv reflect.Value)
	walk = func(prefix string, rv reflect.Value) {
		if !rv.IsValid() {
			leaf(prefix, "<nil>")
			return
		}
		if rv.Type().Implements(reflect.TypeOf((*GTIDSet)(nil)).Elem()) {
			if rv.Kind() == reflect.Interface && rv.IsNil() || rv.Kind() == reflect.Map && rv.IsNil() {
				leaf(prefix, "<nil set>")
				return
			}
			leaf(prefix, "{"+rv.Interface().(GTIDSet).String()+"}")
			return
		}
		if t, ok := rv.Interface().(time.Time); ok {
			leaf(prefix, t.UTC().Format("15:04:05.000"))
			return
		}
		switch rv.Kind() {
		case reflect.Interface, reflect.Pointer:
			if rv.IsNil() {
				leaf(prefix, "<nil>")
				return
			}
			walk(prefix, rv.Elem())
		case reflect.Struct:
			for i := 0; i < rv.NumField(); i++ {
				if !rv.Type().Field(i).IsExported() {
					continue
				}
				walk(prefix+rv.Type().Field(i).Name+".", rv.Field(i))
			}
		case reflect.Slice:
			if rv.Len() == 0 {
				leaf(prefix, "[]")
			}
			for i := 0; i < rv.Len(); i++ {
				walk(fmt.Sprintf("%s[%d].", prefix, i), rv.Index(i))
			}
		case reflect.Map:
			keys := rv.MapKeys()
			sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
			if len(keys) == 0 {
				leaf(prefix, "{}")
			}
			for _, k := range keys {
				walk(fmt.Sprintf("%s[%v].", prefix, k), rv.MapIndex(k))
			}
		default:
			leaf(prefix, fmt.Sprint(rv.Interface()))
		}
	}
	walk("", reflect.ValueOf(v))
	return out
}

// diff returns "" when want and got render the same, else a line diff
// (-want +got) from a longest common subsequence.
func diff(want, got any) string {
	a, b := render(want), render(got)
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var sb strings.Builder
	same := true
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			sb.WriteString("  " + a[i] + "\n")
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			sb.WriteString("+ " + b[j] + "\n")
			same = false
			j++
		default:
			sb.WriteString("- " + a[i] + "\n")
			same = false
			i++
		}
	}
	if same {
		return ""
	}
	return sb.String()
}

func check(t *testing.T, what string, want, got any) {
	t.Helper()
	if d := diff(want, got); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, d)
	}
}

// mustContain checks that each substring occurs in text.
func mustContain(t *testing.T, what, text string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(text, s) {
			t.Errorf("%s: %q does not contain %q", what, text, s)
		}
	}
}

func TestDiffHelperReportsFieldPaths(t *testing.T) {
	type inner struct {
		S GTIDSet
		N int
	}
	d := diff(inner{S: gs("a:1-2"), N: 1}, inner{S: gs("a:1-3"), N: 1})
	mustContain(t, "diff", d, "- S = {a:1-2}", "+ S = {a:1-3}", "  N = 1")
	if diff(inner{S: gs("a:1,a:2")}, inner{S: gs("a:1-2")}) != "" {
		t.Error("equal sets rendered differently")
	}
}

func TestTestGTIDSet(t *testing.T) {
	a, b := gs("p:1-5,q:1"), gs("p:1-3")
	check(t, "string", "p:1-5,q:1", a.String())
	if !a.Contains(b) || b.Contains(a) || a.Equal(b) {
		t.Error("containment wrong")
	}
	check(t, "subtract", "p:4-5,q:1", a.Subtract(b).String())
	check(t, "union", "p:1-5,q:1", b.Union(a).String())
	if !gs("").IsEmpty() {
		t.Error("empty set not empty")
	}
}

// stepNamesOf lists a run's steps by history name, space-separated.
func stepNamesOf(res RunResult) string {
	names := make([]string, 0, len(res.Steps))
	for _, s := range res.Steps {
		names = append(names, s.HistoryName())
	}
	return strings.Join(names, " ")
}
