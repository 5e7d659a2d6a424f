package topology

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Probe reads a typed Snapshot of the instance. Once the flavour is known
// (from the first probe) it is one round trip: the variables, the status,
// the replica status and, on MySQL, the heartbeat counters go as one
// multi-statement, and come back as one result set each
// (docs/architecture.md, "The probe: one round trip"). The first probe, and
// one that finds the flavour changed (an upgrade in place), reads the
// replica status in a second round trip. The deadline comes from ctx. On
// failure the error is an *Error whose Class tells refused from timeout
// from auth.
func (i *Instance) Probe(ctx context.Context) (*Snapshot, error) {
	start := time.Now()
	conn, err := i.db.Conn(ctx)
	if err != nil {
		return nil, i.wrap("probe", err)
	}
	defer conn.Close()

	known := i.cachedFlavor()
	rows, err := conn.QueryContext(ctx, probeSQL(known))
	if err != nil {
		return nil, i.wrap("probe", err)
	}
	defer rows.Close()
	vars, err := readNameValues(rows)
	if err != nil {
		return nil, i.wrap("probe", err)
	}
	if !rows.NextResultSet() {
		return nil, i.wrap("probe", missingResult(rows, "status"))
	}
	status, err := readNameValues(rows)
	if err != nil {
		return nil, i.wrap("probe", err)
	}
	s := &Snapshot{Addr: i.addr, ProbedAt: start}
	if err := applyVariables(s, vars, status); err != nil {
		return nil, &Error{Class: ClassUnknown, Op: "probe", Addr: i.addr, Err: err}
	}
	if s.Flavor != known {
		// The statement sent asked for another flavour's replica status (or
		// none): ask again, in the dialect the server just named. Closing
		// reads what is left of the batch; the error it may return is the
		// other dialect's statement refused, and a broken connection fails
		// the next query anyway.
		i.setFlavor(s.Flavor)
		_ = rows.Close()
		if rows, err = conn.QueryContext(ctx, replicaOnlySQL(s.Flavor)); err != nil {
			return nil, i.wrap("probe replica status", err)
		}
		defer rows.Close()
	} else if !rows.NextResultSet() {
		return nil, i.wrap("probe replica status", missingResult(rows, "replica status"))
	}
	replicaRows, err := readRowMaps(rows)
	if err != nil {
		return nil, i.wrap("probe replica status", err)
	}
	if r, ok := pickReplicaRow(replicaRows); ok {
		if s.Replica, err = parseReplicaStatus(r); err != nil {
			return nil, &Error{Class: ClassUnknown, Op: "probe replica status", Addr: i.addr, Err: err}
		}
		if s.Flavor.IsMySQL() {
			i.readHeartbeats(rows, s.Replica)
		}
	}
	s.Latency = time.Since(start)
	return s, nil
}

// probeSQL is the probe's one statement for flavour f: variables and status,
// then, when f is known, the replica status statements of that flavour. The
// statements are fixed, so they are joined once (probeStatements), not on
// every probe.
func probeSQL(f Flavor) string { return probeStatements[f] }

// replicaOnlySQL is what a probe whose flavour was wrong asks again.
func replicaOnlySQL(f Flavor) string { return strings.Join(replicaSQL(f), ";") }

// probeStatements holds probeSQL's answer for every flavour.
var probeStatements = func() map[Flavor]string {
	m := map[Flavor]string{}
	for _, f := range []Flavor{FlavorUnknown, FlavorMariaDB, FlavorMySQL80, FlavorMySQL84} {
		stmts := []string{showVariablesSQL, showStatusSQL}
		if f != FlavorUnknown {
			stmts = append(stmts, replicaSQL(f)...)
		}
		m[f] = strings.Join(stmts, ";")
	}
	return m
}()

// replicaSQL is what a probe asks about replication on flavour f: the
// replica status, and on MySQL the heartbeat counters it keeps elsewhere.
func replicaSQL(f Flavor) []string {
	if f.IsMySQL() {
		return []string{f.replicaStatusSQL(), mysqlHeartbeatSQL}
	}
	return []string{f.replicaStatusSQL()}
}

// readHeartbeats reads the heartbeat counters, the result set after the
// replica status. performance_schema may be off: heartbeats are a detail,
// not a reason to fail the probe.
func (i *Instance) readHeartbeats(rows *sql.Rows, r *ReplicaStatus) {
	if !rows.NextResultSet() {
		i.log.Debug("reading heartbeat counters", "err", rows.Err())
		return
	}
	for rows.Next() {
		var count sql.NullInt64
		var period sql.NullFloat64
		if err := rows.Scan(&count, &period); err != nil {
			i.log.Debug("reading heartbeat counters", "err", err)
			return
		}
		r.ReceivedHeartbeats = uint64(count.Int64)
		r.HeartbeatPeriod = period.Float64
	}
	if err := rows.Err(); err != nil {
		i.log.Debug("reading heartbeat counters", "err", err)
	}
}

// missingResult is the error of a multi-statement that ended before the
// result set named what: the server's error for that statement, or a
// protocol surprise.
func missingResult(rows *sql.Rows, what string) error {
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", what, err)
	}
	return fmt.Errorf("reading %s: the server sent no result set for it", what)
}

// readNameValues reads the current result set, a two-column
// Variable_name/Value one, into a map.
func readNameValues(rows *sql.Rows) (map[string]string, error) {
	m := make(map[string]string, 32)
	for rows.Next() {
		var name string
		var value sql.NullString
		if err := rows.Scan(&name, &value); err != nil {
			return nil, fmt.Errorf("reading variables: %w", err)
		}
		m[name] = value.String
	}
	return m, rows.Err()
}
