package proxysqltest

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

func open(t *testing.T, a *Admin) *sql.DB {
	t.Helper()
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr = a.User(), a.Password(), "tcp", a.Addr()
	c.Timeout = 2 * time.Second
	conn, err := mysql.NewConnector(c)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestEmulationLayers(t *testing.T) {
	a := Start(t, Options{})
	db := open(t, a)
	ctx := t.Context()
	exec := func(q string) {
		t.Helper()
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	count := func(table string) int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	exec("INSERT INTO mysql_servers (hostgroup_id, hostname, port) VALUES (10, 'h1', 3306), (20, 'h''2', 3306)")
	if count("mysql_servers") != 2 || count("runtime_mysql_servers") != 0 || count("disk.mysql_servers") != 0 {
		t.Fatal("an edit reached runtime or disk before LOAD/SAVE")
	}
	exec("LOAD MYSQL SERVERS TO RUNTIME")
	if count("runtime_mysql_servers") != 2 || count("disk.mysql_servers") != 0 {
		t.Fatal("LOAD did not copy memory to runtime only")
	}
	exec("SAVE MYSQL SERVERS TO DISK")
	if count("disk.mysql_servers") != 2 {
		t.Fatal("SAVE did not copy memory to disk")
	}
	// SQLite strings: a quote is doubled and a backslash is just a backslash.
	exec(`UPDATE mysql_servers SET status = 'OFFLINE_SOFT', comment = 'it''s me\' WHERE hostgroup_id = 20 AND hostname = 'h''2'`)
	var status, comment string
	if err := db.QueryRowContext(ctx, "SELECT status, comment FROM mysql_servers WHERE hostname = 'h''2'").Scan(&status, &comment); err != nil {
		t.Fatal(err)
	}
	if status != "OFFLINE_SOFT" || comment != `it's me\` {
		t.Errorf("status %q comment %q", status, comment)
	}
	exec("DELETE FROM mysql_servers WHERE hostgroup_id IN (10, 11) AND NOT port <> 3306")
	if count("mysql_servers") != 1 {
		t.Error("DELETE with IN/NOT/<> removed the wrong rows")
	}
	exec("LOAD MYSQL SERVERS FROM DISK")
	if count("mysql_servers") != 2 {
		t.Error("LOAD ... FROM DISK did not restore memory")
	}
	if got := a.Writes(); len(got) != 6 || !strings.HasPrefix(got[0], "INSERT INTO mysql_servers") {
		t.Errorf("recorded writes = %q", got)
	}
	if rs := a.RuntimeServers(); len(rs) != 2 || rs[0].Hostname != "h1" || rs[0].Weight != 1 || rs[0].MaxConnections != 1000 {
		t.Errorf("runtime rows / defaults: %+v", rs)
	}
}

func TestEmulationRefusals(t *testing.T) {
	a := Start(t, Options{})
	a.SetServers(NewServer(10, "h1", 3306))
	db := open(t, a)
	tests := []struct {
		name, q, wantErr string
	}{
		{"duplicate key", "INSERT INTO mysql_servers (hostgroup_id, hostname, port) VALUES (10, 'h1', 3306)", "UNIQUE constraint failed"},
		{"bad status", "UPDATE mysql_servers SET status = 'UP'", "CHECK constraint failed"},
		{"runtime tables are read-only", "DELETE FROM runtime_mysql_servers", "read-only"},
		{"unknown table", "SELECT * FROM mysql_users", "no such table"},
		{"unknown column", "SELECT foo FROM mysql_servers", "no such column"},
		{"not an integer", "UPDATE mysql_servers SET port = 'x'", "datatype mismatch"},
		{"outside the subset", "SHOW TABLES", "does not understand"},
		{"same writer and reader", "INSERT INTO mysql_replication_hostgroups (writer_hostgroup, reader_hostgroup) VALUES (1, 1)", "CHECK constraint"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := db.ExecContext(context.Background(), tc.q)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "ProxySQL Admin Error") {
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
	if rs := a.Servers(); len(rs) != 1 || rs[0].Status != "ONLINE" || rs[0].Port != 3306 {
		t.Errorf("a refused statement changed the table: %+v", rs)
	}
	// Wrong password is refused at the handshake, as ProxySQL does.
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr = "admin", "nope", "tcp", a.Addr()
	conn, _ := mysql.NewConnector(c)
	bad := sql.OpenDB(conn)
	defer bad.Close()
	if err := bad.PingContext(context.Background()); err == nil || !strings.Contains(err.Error(), "Access denied") {
		t.Errorf("wrong password: %v", err)
	}
}

func TestEmulationCloseTwice(t *testing.T) {
	a, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	db := open(t, a)
	if err := db.PingContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

func FuzzEmulationExec(f *testing.F) {
	for _, q := range []string{
		"SELECT hostgroup_id, hostname FROM mysql_servers WHERE hostgroup_id IN (1,2) AND NOT (port = 3306 OR status <> 'ONLINE') ORDER BY hostname DESC LIMIT 2",
		"INSERT INTO mysql_servers VALUES (1,'h',3306,0,'ONLINE',1,0,1000,0,0,0,'c')",
		"UPDATE mysql_servers SET comment = 'a''b\\' WHERE hostname IS NOT NULL",
		"LOAD MYSQL SERVERS TO RUN", "SAVE MYSQL SERVERS FROM MEM;", "DELETE FROM mysql_servers WHERE port >= -1",
		"SELECT `hostname` FROM main.mysql_servers", "'", "(", "SELECT COUNT(*) FROM mysql_servers",
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		a := &Admin{memory: newLayer(), runtime: newLayer(), disk: newLayer()}
		a.memory.servers.rows = append(a.memory.servers.rows, serverRow(NewServer(1, "h", 3306)))
		_, _ = a.exec(q) // must not panic
		for _, r := range a.memory.servers.rows {
			if len(r) != len(serversSchema.columns) {
				t.Fatalf("%q left a row of %d cells", q, len(r))
			}
		}
	})
}
