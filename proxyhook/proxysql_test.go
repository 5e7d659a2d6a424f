package proxyhook

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regentdb/regent/proxyhook/proxysqltest"
)

func srv(hg int, host string, port int, status, comment string) ProxySQLServer {
	s := defaultProxySQLServer()
	s.HostgroupID, s.Hostname, s.Port, s.Status, s.Comment = hg, host, port, status, comment
	return s
}

func TestPlanProxySQLRoute(t *testing.T) {
	db1, db2, db3 := hostPort{"10.0.0.1", 3306}, hostPort{"10.0.0.2", 3306}, hostPort{"10.0.0.3", 3306}
	base := []ProxySQLServer{
		srv(10, "10.0.0.1", 3306, ProxySQLOnline, "primary"),
		srv(20, "10.0.0.2", 3306, ProxySQLOnline, ""),
		srv(20, "10.0.0.3", 3306, ProxySQLOnline, ""),
	}
	withSSL := func(s ProxySQLServer) ProxySQLServer { s.UseSSL, s.MaxConnections = 1, 200; return s }
	tests := []struct {
		name  string
		rows  []ProxySQLServer
		route proxySQLRoute
		want  []string
	}{
		{
			name:  "failover removes the old writer and inserts the new one, reader hostgroup unmanaged",
			rows:  base,
			route: proxySQLRoute{writerHG: 10, readerHG: -1, newPrimary: db2, oldPrimary: db1, order: Order{Epoch: 4}},
			want: []string{
				"delete hostgroup 10 10.0.0.1:3306",
				"insert hostgroup 10 10.0.0.2:3306 ONLINE comment=regent-epoch=4",
			},
		},
		{
			name:  "failover with a managed reader hostgroup takes the new primary out of readers",
			rows:  base,
			route: proxySQLRoute{writerHG: 10, readerHG: 20, newPrimary: db2, oldPrimary: db1, replicas: []hostPort{db3}, order: Order{Epoch: 4}},
			want: []string{
				"delete hostgroup 10 10.0.0.1:3306",
				"insert hostgroup 10 10.0.0.2:3306 ONLINE comment=regent-epoch=4",
				"delete hostgroup 20 10.0.0.2:3306",
			},
		},
		{
			name: "old primary that was also a reader goes OFFLINE_SOFT in readers",
			rows: append(slices.Clone(base), srv(20, "10.0.0.1", 3306, ProxySQLOnline, "")),
			route: proxySQLRoute{writerHG: 10, readerHG: 20, newPrimary: db2, oldPrimary: db1, replicas: []hostPort{db3},
				writerIsAlsoReader: true, order: Order{Epoch: 4}},
			want: []string{
				"delete hostgroup 10 10.0.0.1:3306",
				"insert hostgroup 10 10.0.0.2:3306 ONLINE comment=regent-epoch=4",
				"set hostgroup 20 10.0.0.1:3306 OFFLINE_SOFT comment=",
			},
		},
		{
			name:  "switchover: the old primary is a replica and joins the readers ONLINE",
			rows:  base,
			route: proxySQLRoute{writerHG: 10, readerHG: 20, newPrimary: db2, oldPrimary: db1, replicas: []hostPort{db1, db3}, order: Order{Epoch: 5}},
			want: []string{
				"delete hostgroup 10 10.0.0.1:3306",
				"insert hostgroup 10 10.0.0.2:3306 ONLINE comment=regent-epoch=5",
				"delete hostgroup 20 10.0.0.2:3306",
				"insert hostgroup 20 10.0.0.1:3306 ONLINE comment=primary",
			},
		},
		{
			name:  "offline_soft policy keeps the old writer row, tagged",
			rows:  base,
			route: proxySQLRoute{writerHG: 10, readerHG: -1, newPrimary: db2, oldPrimary: db1, oldPolicy: OldPrimaryOfflineSoft, order: Order{Epoch: 4}},
			want: []string{
				"set hostgroup 10 10.0.0.1:3306 OFFLINE_SOFT comment=primary regent-epoch=4",
				"insert hostgroup 10 10.0.0.2:3306 ONLINE comment=regent-epoch=4",
			},
		},
		{
			name:  "offline_hard policy",
			rows:  base,
			route: proxySQLRoute{writerHG: 10, readerHG: -1, newPrimary: db2, oldPolicy: OldPrimaryOfflineHard, order: Order{Epoch: 4}},
			want: []string{
				"set hostgroup 10 10.0.0.1:3306 OFFLINE_HARD comment=primary regent-epoch=4",
				"insert hostgroup 10 10.0.0.2:3306 ONLINE comment=regent-epoch=4",
			},
		},
		{
			name: "already routed: nothing to do",
			rows: []ProxySQLServer{
				srv(10, "10.0.0.2", 3306, ProxySQLOnline, "regent-epoch=4"),
				srv(20, "10.0.0.3", 3306, ProxySQLOnline, ""),
			},
			route: proxySQLRoute{writerHG: 10, readerHG: 20, newPrimary: db2, oldPrimary: db1, replicas: []hostPort{db3}, order: Order{Epoch: 4}},
			want:  nil,
		},
		{
			name:  "new primary present but offline is brought online and re-tagged",
			rows:  []ProxySQLServer{srv(10, "10.0.0.2", 3306, ProxySQLOfflineHard, "note regent-epoch=2")},
			route: proxySQLRoute{writerHG: 10, readerHG: -1, newPrimary: db2, order: Order{Epoch: 3}},
			want:  []string{"set hostgroup 10 10.0.0.2:3306 ONLINE comment=note regent-epoch=3"},
		},
		{
			name: "inserted writer copies the server's settings from its reader row (use_ssl kept: TLS end to end)",
			rows: []ProxySQLServer{
				withSSL(srv(10, "10.0.0.1", 3306, ProxySQLOnline, "")),
				withSSL(srv(20, "10.0.0.2", 3306, ProxySQLOnline, "")),
			},
			route: proxySQLRoute{writerHG: 10, readerHG: -1, newPrimary: db2, order: Order{Epoch: 9}},
			want: []string{
				"delete hostgroup 10 10.0.0.1:3306",
				"insert hostgroup 10 10.0.0.2:3306 ONLINE comment=regent-epoch=9 use_ssl=1 max_connections=200",
			},
		},
		{
			name:  "unknown server copies the writer hostgroup's settings",
			rows:  []ProxySQLServer{withSSL(srv(10, "10.0.0.1", 3306, ProxySQLOnline, "x"))},
			route: proxySQLRoute{writerHG: 10, readerHG: -1, newPrimary: db3, order: Order{Epoch: 2}},
			want: []string{
				"delete hostgroup 10 10.0.0.1:3306",
				"insert hostgroup 10 10.0.0.3:3306 ONLINE comment=regent-epoch=2 use_ssl=1 max_connections=200",
			},
		},
		{
			name:  "empty table: the writer is inserted with ProxySQL's defaults",
			rows:  nil,
			route: proxySQLRoute{writerHG: 0, readerHG: 1, newPrimary: db1, replicas: []hostPort{db2}, order: Order{Epoch: 1}},
			want: []string{
				"insert hostgroup 0 10.0.0.1:3306 ONLINE comment=regent-epoch=1",
				"insert hostgroup 1 10.0.0.2:3306 ONLINE comment=",
			},
		},
		{
			name: "several stale writers all go",
			rows: []ProxySQLServer{
				srv(10, "10.0.0.3", 3306, ProxySQLOnline, ""),
				srv(10, "10.0.0.1", 3306, ProxySQLShunned, ""),
			},
			route: proxySQLRoute{writerHG: 10, readerHG: -1, newPrimary: db2, order: Order{Epoch: 2}},
			want: []string{
				"delete hostgroup 10 10.0.0.1:3306",
				"delete hostgroup 10 10.0.0.3:3306",
				"insert hostgroup 10 10.0.0.2:3306 ONLINE comment=regent-epoch=2",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := describeOps(planProxySQLRoute(tc.rows, tc.route))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("plan differs\n got: %q\nwant: %q", got, tc.want)
			}
		})
	}
}

func describeOps(ops []serverOp) []string {
	var out []string
	d := defaultProxySQLServer()
	for _, op := range ops {
		s := op.String()
		if op.kind != opDelete {
			s += " comment=" + op.row.Comment
		}
		if op.kind == opInsert {
			if op.row.UseSSL != d.UseSSL {
				s += fmt.Sprintf(" use_ssl=%d", op.row.UseSSL)
			}
			if op.row.MaxConnections != d.MaxConnections {
				s += fmt.Sprintf(" max_connections=%d", op.row.MaxConnections)
			}
		}
		out = append(out, s)
	}
	return out
}

func TestPlanProxySQLUnroute(t *testing.T) {
	rows := []ProxySQLServer{srv(10, "h1", 3306, ProxySQLOnline, ""), srv(20, "h1", 3306, ProxySQLOnline, "")}
	tests := []struct {
		name string
		rows []ProxySQLServer
		old  hostPort
		want []string
	}{
		{name: "online writer goes OFFLINE_HARD", rows: rows, old: hostPort{"h1", 3306},
			want: []string{"set hostgroup 10 h1:3306 OFFLINE_HARD comment=regent-epoch=3"}},
		{name: "not in the writer hostgroup: nothing", rows: rows, old: hostPort{"h2", 3306}},
		{name: "already offline and tagged: nothing", rows: []ProxySQLServer{srv(10, "h1", 3306, ProxySQLOfflineHard, "regent-epoch=3")},
			old: hostPort{"h1", 3306}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := describeOps(planProxySQLUnroute(tc.rows, 10, tc.old, Order{Epoch: 3}))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("plan differs\n got: %q\nwant: %q", got, tc.want)
			}
		})
	}
}

func TestEpochTag(t *testing.T) {
	tests := []struct {
		name, comment string
		order         Order
		want          string
	}{
		{name: "empty", comment: "", order: Order{Epoch: 3}, want: "regent-epoch=3"},
		{name: "keeps operator text", comment: "rack a", order: Order{Epoch: 3}, want: "rack a regent-epoch=3"},
		{name: "replaces an old tag", comment: "rack a regent-epoch=2", order: Order{Epoch: 12}, want: "rack a regent-epoch=12"},
		{name: "replaces several tags", comment: "regent-epoch=9 x regent-epoch=2", order: Order{Epoch: 10}, want: "x regent-epoch=10"},
		{name: "with a token", comment: "rack a regent-epoch=2", order: Order{Epoch: 3, Token: 41}, want: "rack a regent-epoch=3 regent-token=41"},
		{name: "replaces a token", comment: "regent-epoch=3 regent-token=41", order: Order{Epoch: 3, Token: 57}, want: "regent-epoch=3 regent-token=57"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := withEpochTag(tc.comment, tc.order)
			if got != tc.want {
				t.Errorf("withEpochTag(%q, %+v) = %q, want %q", tc.comment, tc.order, got, tc.want)
			}
			if o, ok := orderOf(got); !ok || o != tc.order {
				t.Errorf("orderOf(%q) = %+v, %v; want %+v", got, o, ok, tc.order)
			}
		})
	}
	if _, ok := orderOf("no tag here"); ok {
		t.Error("orderOf found a tag in a comment without one")
	}
}

func TestOrderStaleAgainst(t *testing.T) {
	tests := []struct {
		name          string
		change, after Order
		stale         bool
	}{
		{"no tokens: a lower epoch is stale", Order{Epoch: 1}, Order{Epoch: 2}, true},
		{"no tokens: the same epoch is a retry", Order{Epoch: 2}, Order{Epoch: 2}, false},
		{"a lower token is stale even at a higher epoch (a deposed leader's planned epoch)", Order{Epoch: 3, Token: 40}, Order{Epoch: 2, Token: 55}, true},
		{"a higher token wins at a lower epoch (the successor's reconciliation to the committed primary)", Order{Epoch: 2, Token: 55}, Order{Epoch: 3, Token: 40}, false},
		{"the same token is the same attempt retried", Order{Epoch: 3, Token: 40}, Order{Epoch: 3, Token: 40}, false},
		{"a token beats a record without one", Order{Epoch: 1, Token: 9}, Order{Epoch: 5}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.change.StaleAgainst(tc.after); got != tc.stale {
				t.Errorf("%+v.StaleAgainst(%+v) = %v, want %v", tc.change, tc.after, got, tc.stale)
			}
		})
	}
}

func TestCheckWriterRuntime(t *testing.T) {
	np := hostPort{"n", 1}
	tests := []struct {
		name string
		rows []ProxySQLServer
		want int
	}{
		{name: "only the new primary online", rows: []ProxySQLServer{srv(10, "n", 1, ProxySQLOnline, ""), srv(10, "o", 1, ProxySQLOfflineSoft, ""), srv(20, "o", 1, ProxySQLOnline, "")}},
		{name: "new primary missing", rows: []ProxySQLServer{srv(20, "n", 1, ProxySQLOnline, "")}, want: 1},
		{name: "new primary shunned", rows: []ProxySQLServer{srv(10, "n", 1, ProxySQLShunned, "")}, want: 1},
		{name: "two writers online", rows: []ProxySQLServer{srv(10, "n", 1, ProxySQLOnline, ""), srv(10, "o", 1, ProxySQLOnline, "")}, want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkWriterRuntime(tc.rows, 10, np); len(got) != tc.want {
				t.Errorf("problems = %q, want %d", got, tc.want)
			}
		})
	}
}

// proxySQLFixture is an emulated ProxySQL admin seeded like a production
// one: db1 the writer in hostgroup 10, db2 and db3 readers in 20.
func proxySQLFixture(t *testing.T, mutate func(*ProxySQLConfig)) (*proxysqltest.Admin, *ProxySQLTarget) {
	t.Helper()
	admin := proxysqltest.Start(t, proxysqltest.Options{User: "radmin", Password: "s3cret"})
	w := proxysqltest.NewServer(10, "10.0.0.1", 3306)
	w.Comment = "primary"
	w.UseSSL = 1
	r2 := proxysqltest.NewServer(20, "10.0.0.2", 3306)
	r2.UseSSL = 1
	r3 := proxysqltest.NewServer(20, "10.0.0.3", 3306)
	r3.UseSSL = 1
	admin.SetServers(w, r2, r3)
	cfg := ProxySQLConfig{Name: "psql1", Admin: admin.Addr(), User: "radmin", Password: "s3cret",
		WriterHostgroup: Hostgroup(10), ReaderHostgroup: Hostgroup(20), Timeout: 2 * time.Second,
		Retry: RetryPolicy{Attempts: 2, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond}}
	if mutate != nil {
		mutate(&cfg)
	}
	target, err := NewProxySQLTarget(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = target.Close() })
	return admin, target
}

var (
	ep1 = Endpoint{Name: "db1", Host: "10.0.0.1", Port: 3306}
	ep2 = Endpoint{Name: "db2", Host: "10.0.0.2", Port: 3306}
	ep3 = Endpoint{Name: "db3", Host: "10.0.0.3", Port: 3306}
)

func writers(servers []proxysqltest.Server, hg int) []string {
	var out []string
	for _, s := range servers {
		if s.HostgroupID == hg {
			out = append(out, fmt.Sprintf("%s:%d %s", s.Hostname, s.Port, s.Status))
		}
	}
	return out
}

func TestProxySQLRouteAgainstEmulation(t *testing.T) {
	admin, target := proxySQLFixture(t, nil)
	ctx := t.Context()

	out, err := target.Route(ctx, RouteChange{Cluster: "c1", Epoch: 2, OldPrimary: ep1, NewPrimary: ep2, Replicas: []Endpoint{ep3}})
	if err != nil {
		t.Fatalf("route: %v (detail %s)", err, out.Detail)
	}
	if got, want := writers(admin.RuntimeServers(), 10), []string{"10.0.0.2:3306 ONLINE"}; !reflect.DeepEqual(got, want) {
		t.Errorf("runtime writers = %q, want %q", got, want)
	}
	if got, want := writers(admin.RuntimeServers(), 20), []string{"10.0.0.3:3306 ONLINE"}; !reflect.DeepEqual(got, want) {
		t.Errorf("runtime readers = %q, want %q", got, want)
	}
	if got, want := writers(admin.DiskServers(), 10), []string{"10.0.0.2:3306 ONLINE"}; !reflect.DeepEqual(got, want) {
		t.Errorf("disk writers = %q, want %q (SAVE MYSQL SERVERS TO DISK missing?)", got, want)
	}
	for _, s := range admin.RuntimeServers() {
		if s.HostgroupID == 10 && (s.UseSSL != 1 || s.Comment != "regent-epoch=2") {
			t.Errorf("new writer row = %+v, want use_ssl=1 copied from its reader row and comment regent-epoch=2", s)
		}
	}
	writes := admin.Writes()
	wantOrder := []string{"DELETE FROM mysql_servers WHERE hostgroup_id = 10 AND hostname = '10.0.0.1'",
		"INSERT INTO mysql_servers", "DELETE FROM mysql_servers WHERE hostgroup_id = 20 AND hostname = '10.0.0.2'",
		"LOAD MYSQL SERVERS TO RUNTIME", "SAVE MYSQL SERVERS TO DISK"}
	if len(writes) != len(wantOrder) {
		t.Fatalf("writes = %q, want %d statements like %q", writes, len(wantOrder), wantOrder)
	}
	for i, w := range wantOrder {
		if !strings.HasPrefix(writes[i], w) {
			t.Errorf("statement %d = %q, want prefix %q", i, writes[i], w)
		}
	}
	if !slices.ContainsFunc(admin.Statements(), func(s string) bool { return strings.Contains(s, "FROM runtime_mysql_servers") }) {
		t.Error("the route was not read back from runtime_mysql_servers")
	}
	if !strings.Contains(out.Detail, "verified") {
		t.Errorf("detail %q does not say the route was verified", out.Detail)
	}

	// The same change again changes nothing but still loads and verifies:
	// retries of a failover step are safe.
	admin.ResetStatements()
	if _, err := target.Route(ctx, RouteChange{Cluster: "c1", Epoch: 2, OldPrimary: ep1, NewPrimary: ep2, Replicas: []Endpoint{ep3}}); err != nil {
		t.Fatalf("repeated route: %v", err)
	}
	if got, want := admin.Writes(), []string{"LOAD MYSQL SERVERS TO RUNTIME", "SAVE MYSQL SERVERS TO DISK"}; !reflect.DeepEqual(got, want) {
		t.Errorf("repeated route wrote %q, want only %q", got, want)
	}

	// An older epoch is refused by ProxySQL's own state (the epoch tag),
	// even from a target that never saw epoch 2 (another agent's router).
	admin.ResetStatements()
	_, err = target.Route(ctx, RouteChange{Cluster: "c1", Epoch: 1, OldPrimary: ep2, NewPrimary: ep1})
	var stale *StaleEpochError
	if !errors.As(err, &stale) || stale.Applied != 2 || !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("stale route: err = %v, want a StaleEpochError with applied epoch 2", err)
	}
	if w := admin.Writes(); len(w) != 0 {
		t.Errorf("a refused change wrote %q", w)
	}

	// Attempts with tokens: the successor's route (token 50) stands; the
	// deposed leader's retry at a higher planned epoch but a lower token
	// is refused; the successor's reconciliation at the committed epoch is
	// not, though that epoch is lower.
	if _, err := target.Route(ctx, RouteChange{Cluster: "c1", Epoch: 3, Token: 50, OldPrimary: ep1, NewPrimary: ep3}); err != nil {
		t.Fatalf("route with token 50: %v", err)
	}
	admin.ResetStatements()
	_, err = target.Route(ctx, RouteChange{Cluster: "c1", Epoch: 4, Token: 40, OldPrimary: ep3, NewPrimary: ep2})
	if !errors.As(err, &stale) || stale.AppliedToken != 50 {
		t.Fatalf("superseded route: err = %v, want a StaleEpochError with applied token 50", err)
	}
	if w := admin.Writes(); len(w) != 0 {
		t.Errorf("a superseded change wrote %q", w)
	}
	if _, err := target.Route(ctx, RouteChange{Cluster: "c1", Epoch: 2, Token: 60, OldPrimary: ep1, NewPrimary: ep3}); err != nil {
		t.Fatalf("reconciliation with token 60 at the committed epoch 2: %v", err)
	}
	if got := writers(admin.RuntimeServers(), 10); !slices.Contains(got, "10.0.0.3:3306 ONLINE") {
		t.Errorf("runtime writers = %q, want 10.0.0.3 ONLINE", got)
	}
}

func TestProxySQLUnrouteAgainstEmulation(t *testing.T) {
	admin, target := proxySQLFixture(t, func(c *ProxySQLConfig) { c.SkipSaveToDisk = true })
	out, err := target.Unroute(t.Context(), UnrouteRequest{Cluster: "c1", Epoch: 2, Old: ep1})
	if err != nil {
		t.Fatalf("unroute: %v (%s)", err, out.Detail)
	}
	if got, want := writers(admin.RuntimeServers(), 10), []string{"10.0.0.1:3306 OFFLINE_HARD"}; !reflect.DeepEqual(got, want) {
		t.Errorf("runtime writers = %q, want %q", got, want)
	}
	if got := writers(admin.DiskServers(), 10); !reflect.DeepEqual(got, []string{"10.0.0.1:3306 ONLINE"}) {
		t.Errorf("disk writers = %q: skip_save_to_disk was not honoured", got)
	}
	if slices.Contains(admin.Writes(), "SAVE MYSQL SERVERS TO DISK") {
		t.Error("SAVE MYSQL SERVERS TO DISK sent with skip_save_to_disk")
	}
	// Then the route proper: the old primary leaves the writer hostgroup.
	if _, err := target.Route(t.Context(), RouteChange{Cluster: "c1", Epoch: 2, OldPrimary: ep1, NewPrimary: ep2, Replicas: []Endpoint{ep3}}); err != nil {
		t.Fatal(err)
	}
	if got, want := writers(admin.RuntimeServers(), 10), []string{"10.0.0.2:3306 ONLINE"}; !reflect.DeepEqual(got, want) {
		t.Errorf("runtime writers = %q, want %q", got, want)
	}
}

func TestProxySQLRefusesMixedMode(t *testing.T) {
	admin, target := proxySQLFixture(t, nil)
	admin.SetReplicationHostgroups(proxysqltest.ReplicationHostgroup{WriterHostgroup: 10, ReaderHostgroup: 20})
	_, err := target.Route(t.Context(), RouteChange{Cluster: "c1", Epoch: 2, NewPrimary: ep2})
	if !errors.Is(err, ErrProxySQLMixedMode) {
		t.Fatalf("err = %v, want ErrProxySQLMixedMode", err)
	}
	if !strings.Contains(err.Error(), "DELETE that row from mysql_replication_hostgroups") {
		t.Errorf("error does not tell the operator what to do: %v", err)
	}
	if w := admin.Writes(); len(w) != 0 {
		t.Errorf("refused change wrote %q", w)
	}
	// A replication hostgroup pair for other hostgroups does not matter.
	admin.SetReplicationHostgroups(proxysqltest.ReplicationHostgroup{WriterHostgroup: 100, ReaderHostgroup: 200})
	if _, err := target.Route(t.Context(), RouteChange{Cluster: "c1", Epoch: 2, NewPrimary: ep2}); err != nil {
		t.Fatalf("unrelated replication hostgroups: %v", err)
	}
}

func TestProxySQLErrors(t *testing.T) {
	t.Run("wrong password names the fix", func(t *testing.T) {
		_, target := proxySQLFixture(t, func(c *ProxySQLConfig) { c.Password = "wrong" })
		_, err := target.Route(t.Context(), RouteChange{Cluster: "c1", Epoch: 2, NewPrimary: ep2})
		if err == nil || !strings.Contains(err.Error(), "admin-admin_credentials") {
			t.Fatalf("err = %v, want a hint about the password", err)
		}
	})
	t.Run("admin error is not retried and is reported", func(t *testing.T) {
		admin, target := proxySQLFixture(t, nil)
		admin.FailStatements("LOAD MYSQL SERVERS", 1, "disk I/O error")
		_, err := target.Route(t.Context(), RouteChange{Cluster: "c1", Epoch: 2, NewPrimary: ep2})
		if err == nil || !strings.Contains(err.Error(), "disk I/O error") || !strings.Contains(err.Error(), "LOAD MYSQL SERVERS TO RUNTIME") {
			t.Fatalf("err = %v, want the admin error and the statement", err)
		}
		n := 0
		for _, s := range admin.Writes() {
			if strings.HasPrefix(s, "LOAD") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("LOAD sent %d times, want 1 (server-side errors are not retried)", n)
		}
		// The next attempt finds the table already edited and loads it.
		if _, err := target.Route(t.Context(), RouteChange{Cluster: "c1", Epoch: 2, NewPrimary: ep2}); err != nil {
			t.Fatalf("second attempt: %v", err)
		}
		if got := writers(admin.RuntimeServers(), 10); !reflect.DeepEqual(got, []string{"10.0.0.2:3306 ONLINE"}) {
			t.Errorf("runtime writers = %q", got)
		}
	})
	t.Run("unreachable admin is retried within bounds and named", func(t *testing.T) {
		admin, target := proxySQLFixture(t, nil)
		_ = admin.Close()
		start := time.Now()
		_, err := target.Route(t.Context(), RouteChange{Cluster: "c1", Epoch: 2, NewPrimary: ep2})
		if err == nil || !strings.Contains(err.Error(), "connecting to proxysql psql1") {
			t.Fatalf("err = %v", err)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("gave up after %s", time.Since(start))
		}
	})
	t.Run("instance without address", func(t *testing.T) {
		_, target := proxySQLFixture(t, nil)
		_, err := target.Route(t.Context(), RouteChange{Cluster: "c1", Epoch: 2, NewPrimary: Endpoint{Name: "db9"}})
		if err == nil || !strings.Contains(err.Error(), "db9") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("servers map overrides the endpoint address", func(t *testing.T) {
		admin, target := proxySQLFixture(t, func(c *ProxySQLConfig) {
			c.Servers = map[string]string{"db2": "db2.internal:3307"}
			c.ReaderHostgroup = nil
		})
		if _, err := target.Route(t.Context(), RouteChange{Cluster: "c1", Epoch: 2, NewPrimary: ep2}); err != nil {
			t.Fatal(err)
		}
		if got := writers(admin.RuntimeServers(), 10); !reflect.DeepEqual(got, []string{"db2.internal:3307 ONLINE"}) {
			t.Errorf("runtime writers = %q", got)
		}
	})
	t.Run("close twice", func(t *testing.T) {
		_, target := proxySQLFixture(t, nil)
		if err := target.Close(); err != nil {
			t.Fatal(err)
		}
		if err := target.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := target.Route(context.Background(), RouteChange{Cluster: "c1", Epoch: 2, NewPrimary: ep2}); !errors.Is(err, ErrClosed) {
			t.Fatalf("route after close: %v", err)
		}
	})
}

func TestProxySQLConfigValidate(t *testing.T) {
	ok := ProxySQLConfig{Name: "p", Admin: "127.0.0.1:6032", User: "u", WriterHostgroup: Hostgroup(0)}
	tests := []struct {
		name    string
		mutate  func(*ProxySQLConfig)
		wantErr string
	}{
		{name: "minimal is valid (hostgroup 0 allowed)", mutate: func(*ProxySQLConfig) {}},
		{name: "unix socket admin", mutate: func(c *ProxySQLConfig) { c.Admin = "unix:/tmp/proxysql_admin.sock" }},
		{name: "missing writer hostgroup", mutate: func(c *ProxySQLConfig) { c.WriterHostgroup = nil }, wantErr: "writer_hostgroup: required"},
		{name: "same reader and writer", mutate: func(c *ProxySQLConfig) { c.ReaderHostgroup = Hostgroup(0) }, wantErr: "equals writer_hostgroup"},
		{name: "bad admin", mutate: func(c *ProxySQLConfig) { c.Admin = "localhost" }, wantErr: "admin:"},
		{name: "both password sources", mutate: func(c *ProxySQLConfig) { c.PasswordFile, c.PasswordEnv = "/a", "B" }, wantErr: "not both"},
		{name: "bad policy", mutate: func(c *ProxySQLConfig) { c.OldPrimary = "reader" }, wantErr: "old_primary"},
		{name: "writer_is_also_reader without readers", mutate: func(c *ProxySQLConfig) { c.WriterIsAlsoReader = true }, wantErr: "needs reader_hostgroup"},
		{name: "unknown instance in servers", mutate: func(c *ProxySQLConfig) { c.Servers = map[string]string{"dbX": "h:1"} }, wantErr: "servers.dbX: no instance"},
		{name: "bad server address", mutate: func(c *ProxySQLConfig) { c.Servers = map[string]string{"db1": "h"} }, wantErr: "servers.db1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mutate(&c)
			err := c.Validate("clusters[0].routing.proxysql[0]", []string{"db1", "db2"})
			checkErr(t, err, tc.wantErr)
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Errorf("no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("error %q does not contain %q", err, want)
	}
}

func TestProxySQLKeepsOperatorComments(t *testing.T) {
	admin := proxysqltest.Start(t, proxysqltest.Options{})
	w := proxysqltest.NewServer(10, "10.0.0.1", 3306)
	w.Comment = `rack 'a' \ row 3`
	admin.SetServers(w)
	target, err := NewProxySQLTarget(ProxySQLConfig{Name: "p", Admin: admin.Addr(), User: admin.User(), Password: admin.Password(),
		WriterHostgroup: Hostgroup(10), OldPrimary: OldPrimaryOfflineSoft}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = target.Close() })
	if _, err := target.Route(t.Context(), RouteChange{Cluster: "c", Epoch: 4, OldPrimary: ep1, NewPrimary: ep2}); err != nil {
		t.Fatal(err)
	}
	rs := admin.RuntimeServers()
	if len(rs) != 2 || rs[0].Comment != `rack 'a' \ row 3 regent-epoch=4` || rs[0].Status != ProxySQLOfflineSoft {
		t.Fatalf("runtime = %+v: quotes and backslashes must survive SQLite quoting", rs)
	}
}
