package mysqltest

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strings"
	"time"
)

// Cluster is a primary and its replicas, replicating with GTID
// auto-positioning.
type Cluster struct {
	Kind     Kind
	Primary  *Server
	Replicas []*Server
}

// Servers returns the primary followed by the replicas.
func (c *Cluster) Servers() []*Server {
	return append([]*Server{c.Primary}, c.Replicas...)
}

// StartCluster starts a primary (made writable) and n replicas (read-only)
// replicating from it, and waits until every replica runs both threads.
// Servers are named p, r1, r2, ...
func StartCluster(t TB, k Kind, n int, opts ...Option) *Cluster {
	t.Helper()
	c := &Cluster{Kind: k}
	c.Primary = Start(t, k, append(opts, WithName("p"))...)
	for i := 1; i <= n; i++ {
		c.Replicas = append(c.Replicas, Start(t, k, append(opts, WithName(fmt.Sprintf("r%d", i)))...))
	}
	SetWritable(t, c.Primary, true)
	for _, r := range c.Replicas {
		ReplicateFrom(t, r, c.Primary)
	}
	for _, r := range c.Replicas {
		WaitReplicating(t, r, 60*time.Second)
	}
	return c
}

// SetWritable turns read_only (and super_read_only on MySQL) off or on.
func SetWritable(t TB, s *Server, writable bool) {
	t.Helper()
	switch {
	case writable && s.Kind == MySQL:
		s.Exec(t, "SET GLOBAL super_read_only=OFF", "SET GLOBAL read_only=OFF")
	case writable:
		s.Exec(t, "SET GLOBAL read_only=OFF")
	case s.Kind == MySQL:
		s.Exec(t, "SET GLOBAL super_read_only=ON")
	default:
		s.Exec(t, "SET GLOBAL read_only=ON")
	}
}

// ReplicateFrom points replica at source with GTID auto-positioning and starts
// replication. It writes its own SQL (not topology's) so that the topology
// package's tests check topology against an independent set-up.
func ReplicateFrom(t TB, replica, source *Server) {
	t.Helper()
	switch replica.Kind {
	case MariaDB:
		replica.Exec(t,
			"STOP SLAVE",
			fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%d, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1",
				source.Host, source.Port, ReplUser, ReplPassword),
			"START SLAVE",
		)
	case MySQL:
		replica.Exec(t,
			"STOP REPLICA",
			fmt.Sprintf("CHANGE REPLICATION SOURCE TO SOURCE_HOST='%s', SOURCE_PORT=%d, SOURCE_USER='%s', SOURCE_PASSWORD='%s', SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1, SOURCE_CONNECT_RETRY=1, SOURCE_HEARTBEAT_PERIOD=1",
				source.Host, source.Port, ReplUser, ReplPassword),
			"START REPLICA",
		)
	}
}

// ReplicaThreads returns the IO thread state and SQL thread state as the
// server reports them, and the last IO and SQL errors.
func ReplicaThreads(t TB, s *Server) (io, sqlThread, lastErr string) {
	t.Helper()
	q := "SHOW SLAVE STATUS"
	ioCol, sqlCol := "Slave_IO_Running", "Slave_SQL_Running"
	if s.Kind == MySQL {
		q = "SHOW REPLICA STATUS"
		ioCol, sqlCol = "Replica_IO_Running", "Replica_SQL_Running"
	}
	row := queryRow(t, s, q)
	if row == nil {
		return "", "", "not a replica"
	}
	return row[ioCol], row[sqlCol], strings.TrimSpace(row["Last_IO_Error"] + " " + row["Last_SQL_Error"])
}

// ReplicationSource returns the address ("host:port") s is configured to
// replicate from, "" when it is not a replica.
func ReplicationSource(t TB, s *Server) string {
	t.Helper()
	q, hostCol, portCol := "SHOW SLAVE STATUS", "Master_Host", "Master_Port"
	if s.Kind == MySQL {
		q, hostCol, portCol = "SHOW REPLICA STATUS", "Source_Host", "Source_Port"
	}
	row := queryRow(t, s, q)
	if row == nil {
		return ""
	}
	return net.JoinHostPort(row[hostCol], row[portCol])
}

// WaitReplicating waits until both replica threads of s run.
func WaitReplicating(t TB, s *Server, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		io, sqlT, lastErr := ReplicaThreads(t, s)
		if io == "Yes" && sqlT == "Yes" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: replication not running after %v: IO=%q SQL=%q %s", s, timeout, io, sqlT, lastErr)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// ExecutedGTID returns the server's executed GTID set as text:
// @@gtid_executed on MySQL, @@gtid_binlog_state on MariaDB.
func ExecutedGTID(t TB, s *Server) string {
	t.Helper()
	if s.Kind == MySQL {
		return strings.ReplaceAll(s.QueryString(t, "SELECT @@GLOBAL.gtid_executed"), "\n", "")
	}
	return s.QueryString(t, "SELECT @@GLOBAL.gtid_binlog_state")
}

// WaitCaughtUp waits until replica has applied everything source has
// executed, using each flavour's own wait function.
func WaitCaughtUp(t TB, replica, source *Server, timeout time.Duration) {
	t.Helper()
	var q string
	switch source.Kind {
	case MariaDB:
		pos := source.QueryString(t, "SELECT @@GLOBAL.gtid_binlog_pos")
		q = fmt.Sprintf("SELECT MASTER_GTID_WAIT('%s', %d)", pos, int(timeout.Seconds()))
	case MySQL:
		set := ExecutedGTID(t, source)
		q = fmt.Sprintf("SELECT WAIT_FOR_EXECUTED_GTID_SET('%s', %d)", set, int(timeout.Seconds()))
	}
	if got := replica.QueryString(t, q); got != "0" {
		io, sqlT, lastErr := ReplicaThreads(t, replica)
		t.Fatalf("%s did not catch up with %s within %v (wait returned %s; IO=%s SQL=%s %s)", replica, source, timeout, got, io, sqlT, lastErr)
	}
}

func queryRow(t TB, s *Server, q string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rows *sql.Rows
	err := retryKilled(func() (err error) {
		rows, err = s.DB().QueryContext(ctx, q)
		return err
	})
	if err != nil {
		t.Fatalf("%s: %s: %v", s, q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	if !rows.Next() {
		return nil
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		t.Fatal(err)
	}
	m := make(map[string]string, len(cols))
	for i, c := range cols {
		m[c] = vals[i].String
	}
	return m
}

// Eventually polls cond every 20 ms until it holds, failing t with what and
// cond's last detail when timeout passes first. Tests use it instead of
// sleeps.
func Eventually(t TB, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	EventuallyEvery(t, what, timeout, 20*time.Millisecond, cond)
}

// EventuallyEvery is Eventually with another poll interval, for conditions
// that cost more to check.
func EventuallyEvery(t TB, what string, timeout, every time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %v: %s", what, timeout, detail)
		}
		time.Sleep(every) // poll interval
	}
}
