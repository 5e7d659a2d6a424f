package proxyhook

import (
	"context"
	"database/sql"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/regentdb/regent/proxyhook/haproxytest"
	"github.com/regentdb/regent/topology/mysqltest"
)

// raftView stands in for what an agent reads from Raft: which instance is
// the current epoch's primary, and whether each agent holds its lease.
type raftView struct {
	mu      sync.Mutex
	primary string
	epoch   uint64
	lease   map[string]bool
}

func (r *raftView) set(primary string, epoch uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.primary, r.epoch = primary, epoch
}

func (r *raftView) get(name string) (bool, uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.primary == name, r.epoch, r.lease[name]
}

// dbAgent serves the health endpoints of one real server the way the
// regent agent will: Raft facts from the raftView, writability from the
// server itself.
func startDBAgent(t *testing.T, s *mysqltest.Server, raft *raftView) *agent {
	t.Helper()
	a := &agent{}
	state := func(ctx context.Context) (LocalState, error) {
		isPrimary, epoch, lease := raft.get(s.Name)
		st := LocalState{Instance: s.Name, Epoch: epoch, IsPrimary: isPrimary, LeaseHeld: lease}
		ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		var readOnly int
		if err := s.DB().QueryRowContext(ctx, "SELECT @@global.read_only").Scan(&readOnly); err != nil {
			return st, nil // Reachable stays false
		}
		st.Reachable, st.Writable = true, readOnly == 0
		return st, nil
	}
	a.srv = httptest.NewServer(NewHealthHandler(state, nil))
	t.Cleanup(a.srv.Close)
	return a
}

// TestHAProxyRoutesRealServers runs the routing scenarios over real MariaDB
// and MySQL servers (each with its own TLS certificate) behind a real HAProxy
// in TCP mode: the pull path, the push path and a reload, checking where new
// connections land with @@server_id and that open sessions are cut.
func TestHAProxyRoutesRealServers(t *testing.T) {
	for _, kind := range mysqltest.Kinds(t) {
		t.Run(string(kind), func(t *testing.T) {
			testHAProxyRoutesRealServers(t, kind)
		})
	}
}

func testHAProxyRoutesRealServers(t *testing.T, kind mysqltest.Kind) {
	certs := mysqltest.NewTLSFiles(t)
	raft := &raftView{lease: map[string]bool{}}
	var servers []*mysqltest.Server
	var members []member
	byID := map[uint32]string{}
	for _, name := range []string{"db1", "db2", "db3"} {
		s := mysqltest.Start(t, kind, mysqltest.WithName(name), mysqltest.WithTLS(certs))
		servers = append(servers, s)
		raft.lease[name] = true
		byID[s.ServerID] = name
		members = append(members, member{instance: name, server: "mysql_" + name, port: s.Port, agent: startDBAgent(t, s, raft)})
	}
	db1, db2, db3 := servers[0], servers[1], servers[2]
	front := haproxytest.FreePort(t)
	h := haproxytest.Start(t, writeProxies(front, members))

	// The application connects through HAProxy with TLS, verifying the
	// database's certificate: HAProxy (TCP mode) never sees the plaintext.
	cfg := db1.Config(mysqltest.AppUser, mysqltest.AppPassword)
	cfg.Addr = fmt.Sprintf("127.0.0.1:%d", front)
	cfg.TLSConfig = ""
	cfg.TLS = certs.ClientConfig()
	cfg.DBName = mysqltest.TestDatabase
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 2*time.Second, 5*time.Second, 5*time.Second
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	app := sql.OpenDB(connector)
	t.Cleanup(func() { app.Close() })
	app.SetMaxIdleConns(0) // every query below opens a new connection through HAProxy

	ctx := t.Context()
	landsOn := func() (string, error) {
		var id uint32
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if err := app.QueryRowContext(ctx, "SELECT @@server_id").Scan(&id); err != nil {
			return "", err
		}
		return byID[id], nil
	}
	waitOn := func(want string, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		hits := 0
		var last string
		for attempt := 0; attempt < 5000; attempt++ {
			got, err := landsOn()
			if err == nil && got == want {
				if hits++; hits == 6 {
					return time.Since(start)
				}
				continue
			}
			hits, last = 0, fmt.Sprintf("%q %v", got, err)
			if time.Since(start) > within {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("new connections through HAProxy did not land on %s within %s (last: %s)", want, within, last)
		return 0
	}
	// session opens a connection that stays open, on the current primary.
	session := func(want string) *sql.Conn {
		t.Helper()
		c, err := app.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var id uint32
		var cipher string
		if err := c.QueryRowContext(ctx, "SELECT @@server_id").Scan(&id); err != nil || byID[id] != want {
			t.Fatalf("session on %q (%v), want %s", byID[id], err, want)
		}
		var name string
		if err := c.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil || cipher == "" {
			t.Fatalf("session through HAProxy is not TLS to the database (cipher %q, %v)", cipher, err)
		}
		return c
	}
	waitCutSQL := func(c *sql.Conn, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for attempt := 0; attempt < 1000; attempt++ {
			qctx, cancel := context.WithTimeout(ctx, time.Second)
			var one int
			err := c.QueryRowContext(qctx, "SELECT 1").Scan(&one)
			cancel()
			if err != nil {
				return time.Since(start)
			}
			if time.Since(start) > within {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("open session to the old primary still works after %s", within)
		return 0
	}
	write := func(on *mysqltest.Server) {
		t.Helper()
		// The table exists only where the test created it: on each primary,
		// as root once it is writable (no replication in this test).
		on.Exec(t, "CREATE TABLE IF NOT EXISTS "+mysqltest.TestDatabase+".routed (id INT AUTO_INCREMENT PRIMARY KEY, at VARCHAR(64))")
		if _, err := app.ExecContext(ctx, "INSERT INTO routed (at) VALUES (?)", on.Name); err != nil {
			t.Fatalf("write through HAProxy: %v", err)
		}
		if got := on.QueryString(t, "SELECT COUNT(*) FROM "+mysqltest.TestDatabase+".routed WHERE at = '"+on.Name+"'"); got == "0" {
			t.Fatalf("the write did not reach %s", on.Name)
		}
	}

	// Epoch 1: db1 is the primary.
	mysqltest.SetWritable(t, db1, true)
	raft.set("db1", 1)
	waitOn("db1", 10*time.Second)
	write(db1)
	s1 := session("db1")
	defer s1.Close()

	// Pull path (epoch 2): db1 is fenced (read-only) and db2 promoted; only
	// the agents' answers change, nobody talks to HAProxy.
	mysqltest.SetWritable(t, db1, false)
	mysqltest.SetWritable(t, db2, true)
	raft.set("db2", 2)
	moved := waitOn("db2", 10*time.Second)
	cut := waitCutSQL(s1, 5*time.Second)
	t.Logf("%s pull path: writes on db2 %s after the flip; db1's open session failed %s after that", kind, moved, cut)
	write(db2)
	s2 := session("db2")
	defer s2.Close()

	// Push path (epoch 3), as the failover runner drives it: unroute the old
	// primary before fencing it, promote db3, route.
	target := haproxyTarget(t, "lb1", "unix:"+h.AdminSocket, members, func(c *HAProxyConfig) { c.ServerStateFile = h.StateFile })
	router := NewRouter(testLogger(t))
	router.SetTargets("main", target)
	router.SeedEpoch("main", 2)
	start := time.Now()
	if _, err := router.Unroute(ctx, "main", 3, Endpoint{Name: "db2", Host: db2.Host, Port: db2.Port}); err != nil {
		t.Fatalf("unroute db2: %v", err)
	}
	cut = waitCutSQL(s2, 2*time.Second)
	mysqltest.SetWritable(t, db2, false)
	mysqltest.SetWritable(t, db3, true)
	rep, err := router.Route(ctx, RouteChange{Cluster: "main", Epoch: 3,
		OldPrimary: Endpoint{Name: "db2", Host: db2.Host, Port: db2.Port},
		NewPrimary: Endpoint{Name: "db3", Host: db3.Host, Port: db3.Port}})
	if err != nil {
		t.Fatalf("route to db3: %v", err)
	}
	// Raft has not committed epoch 3 yet (the runner commits after routing):
	// db3's /primary still says 503, yet the push already moved the writes.
	if got, err := landsOn(); err != nil || got != "db3" {
		t.Fatalf("first connection after Route landed on %q (%v), want db3", got, err)
	}
	write(db3)
	raft.set("db3", 3)
	t.Logf("%s push path: db2's session failed %s after unroute; unroute+fence+promote+route took %s (%s)",
		kind, cut, time.Since(start), rep.Results[0].Detail)

	// The route survives a reload: Regent wrote the server-state file.
	h.Reload()
	if got, err := landsOn(); err != nil || got != "db3" {
		t.Fatalf("first connection after the reload landed on %q (%v), want db3", got, err)
	}
	waitOn("db3", 5*time.Second)
	write(db3)
}
