package topology

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Probe reads a typed Snapshot of the instance on one connection, in four
// round trips at most (variables, status, replica status, and on MySQL the
// heartbeat counters). The deadline comes from ctx. On failure the error is an
// *Error whose Class tells refused from timeout from auth.
func (i *Instance) Probe(ctx context.Context) (*Snapshot, error) {
	start := time.Now()
	conn, err := i.db.Conn(ctx)
	if err != nil {
		return nil, i.wrap("probe", err)
	}
	defer conn.Close()

	vars, err := nameValues(ctx, conn, showVariablesSQL)
	if err != nil {
		return nil, i.wrap("probe", err)
	}
	status, err := nameValues(ctx, conn, showStatusSQL)
	if err != nil {
		return nil, i.wrap("probe", err)
	}
	s := &Snapshot{Addr: i.addr, ProbedAt: start}
	if err := applyVariables(s, vars, status); err != nil {
		return nil, &Error{Class: ClassUnknown, Op: "probe", Addr: i.addr, Err: err}
	}
	i.setFlavor(s.Flavor)

	rows, err := queryRows(ctx, conn, s.Flavor.replicaStatusSQL())
	if err != nil {
		return nil, i.wrap("probe replica status", err)
	}
	if r, ok := pickReplicaRow(rows); ok {
		if s.Replica, err = parseReplicaStatus(r); err != nil {
			return nil, &Error{Class: ClassUnknown, Op: "probe replica status", Addr: i.addr, Err: err}
		}
		if s.Flavor.IsMySQL() {
			var count sql.NullInt64
			var period sql.NullFloat64
			err := conn.QueryRowContext(ctx, mysqlHeartbeatSQL).Scan(&count, &period)
			switch {
			case err == sql.ErrNoRows:
			case err != nil:
				// performance_schema may be off; heartbeats are a detail,
				// not a reason to fail the probe.
				i.log.Debug("reading heartbeat counters", "err", err)
			default:
				s.Replica.ReceivedHeartbeats = uint64(count.Int64)
				s.Replica.HeartbeatPeriod = period.Float64
			}
		}
	}
	s.Latency = time.Since(start)
	return s, nil
}

// nameValues reads a two-column Variable_name/Value result into a map.
func nameValues(ctx context.Context, conn *sql.Conn, q string) (map[string]string, error) {
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := make(map[string]string, 32)
	for rows.Next() {
		var name string
		var value sql.NullString
		if err := rows.Scan(&name, &value); err != nil {
			return nil, fmt.Errorf("%s: %w", q, err)
		}
		m[name] = value.String
	}
	return m, rows.Err()
}
