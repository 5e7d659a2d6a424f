package topology

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SetReadOnly turns read_only on or off (with super_read_only on MySQL, so that
// even admin sessions cannot write to a fenced primary).
func (i *Instance) SetReadOnly(ctx context.Context, on bool) error {
	f, err := i.Flavor(ctx)
	if err != nil {
		return err
	}
	op := "set read_only=OFF"
	if on {
		op = "set read_only=ON"
	}
	return i.exec(ctx, op, f.readOnlySQL(on)...)
}

// Fence stops the instance from taking writes: it kills client sessions
// first, then sets read_only (and super_read_only), and repeats both until
// read_only holds or ctx ends. The order matters: SET GLOBAL read_only waits
// for commits in progress, and a commit waiting for a semi-sync
// acknowledgement from replicas that are cut off holds it. Killing that
// session first unblocks it on MariaDB, and its client never gets an OK.
//
// MySQL keeps a killed session waiting for its acknowledgement, and the
// commit lock with it, so read_only cannot hold until a replica acknowledges.
// Fence never switches semi-sync off to get through (that would let new
// sessions commit asynchronously and get an OK before read_only holds);
// instead it sets offline_mode, which disconnects and refuses every client
// without CONNECTION_ADMIN, while it keeps trying. Once read_only holds it
// turns offline_mode off again. If ctx ends first, offline_mode stays on and
// the error says so: the caller escalates (Shutdown) before its deadline.
// Either way a commit that no replica acknowledged never gets an OK.
func (i *Instance) Fence(ctx context.Context, opts KillOptions) (KillReport, error) {
	f, err := i.Flavor(ctx)
	if err != nil {
		return KillReport{}, err
	}
	var total KillReport
	offline := false
	for attempt := 0; ; attempt++ {
		rep, kerr := i.KillClientConnections(ctx, opts)
		total.Killed = append(total.Killed, rep.Killed...)
		total.NotKilled = rep.NotKilled
		total.Kept = rep.Kept
		actx, cancel := context.WithTimeout(ctx, fenceAttempt)
		err = i.exec(actx, "fence: set read_only=ON", f.readOnlySQL(true)...)
		cancel()
		if err == nil {
			if offline {
				if oerr := i.exec(ctx, "fence: offline_mode=OFF", "SET GLOBAL offline_mode=OFF"); oerr != nil {
					i.log.Warn("fence: read_only holds but offline_mode could not be turned off again", "err", oerr)
				}
			}
			return total, nil
		}
		if ctx.Err() != nil {
			if kerr != nil {
				return total, errors.Join(err, kerr)
			}
			// The server answered this round (the sessions were listed
			// and killed) but read_only did not hold.
			err = fmt.Errorf("%w: %w", ErrReadOnlyPending, err)
			if offline {
				err = fmt.Errorf("%w (offline_mode=ON keeps clients out meanwhile)", err)
			}
			return total, err
		}
		if attempt == 0 && f.IsMySQL() {
			actx, cancel := context.WithTimeout(ctx, fenceAttempt)
			if oerr := i.exec(actx, "fence: offline_mode=ON", "SET GLOBAL offline_mode=ON"); oerr != nil {
				i.log.Warn("fence: could not set offline_mode while read_only is pending", "err", oerr)
			} else {
				offline = true
			}
			cancel()
		}
	}
}

// ErrReadOnlyPending: the server answers, but SET GLOBAL read_only does not
// complete (it waits for the commit lock: a long rollback, or on MySQL a
// killed commit still waiting for a semi-sync acknowledgement).
var ErrReadOnlyPending = errors.New("the server answers but read_only does not hold")

// ReadOnly reports whether the instance refuses application writes:
// read_only is ON (accounts without SUPER or READ ONLY ADMIN cannot write;
// Fence sets super_read_only too on MySQL). While a SET GLOBAL read_only
// waits for the commit lock the variables may already read ON although the
// server still takes writes, so a pending SET counts as not read-only.
func (i *Instance) ReadOnly(ctx context.Context) (bool, error) {
	var v, pending int
	q := "SELECT @@GLOBAL.read_only, (SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' AND INFO LIKE 'SET GLOBAL %read_only=ON%')"
	if err := i.db.QueryRowContext(ctx, q).Scan(&v, &pending); err != nil {
		return false, i.wrap("read read_only", err)
	}
	return v == 1 && pending == 0, nil
}

// Shutdown stops mysqld (SHUTDOWN; the account needs the SHUTDOWN
// privilege). It is the last resort of a fence that cannot set read_only
// before its deadline. A server that is gone already counts as stopped.
func (i *Instance) Shutdown(ctx context.Context) error {
	err := i.exec(ctx, "shutdown", "SHUTDOWN")
	switch Classify(err) {
	case ClassNone, ClassRefused, ClassGoneAway:
		return nil
	}
	return err
}

// fenceAttempt bounds one attempt to set read_only during a fence, before the
// sessions are killed again.
const fenceAttempt = 500 * time.Millisecond

// KillOptions says which sessions KillClientConnections spares besides the
// server's own threads, replication threads and the calling session.
type KillOptions struct {
	// KeepUsers are never killed, besides Regent's own user (the one this
	// Instance logs in with): for example a monitoring user.
	KeepUsers []string
}

// KillReport says what KillClientConnections did.
type KillReport struct {
	Killed []uint64
	// Kept counts the sessions spared.
	Kept int
	// NotKilled lists sessions the server refused to kill (MySQL: their user
	// has SYSTEM_USER and Regent's does not).
	NotKilled []string
}

// Commands of server-internal and replication threads, in either flavour.
var systemCommands = []string{
	"Binlog Dump", "Binlog Dump GTID", "Daemon", "Slave_IO", "Slave_SQL", "Slave_worker",
	"Replica_IO", "Replica_SQL", "Replica_worker", "Killed",
}

// systemUsers own the server's background and replication threads.
var systemUsers = []string{"system user", "event_scheduler", "system_user", "unauthenticated user"}

// KillClientConnections kills every client session except the server's own
// threads, replication threads, the sessions of KeepUsers and the calling
// one. Fencing a primary pairs this with read_only so that no session started
// before the fence can still commit.
func (i *Instance) KillClientConnections(ctx context.Context, opts KillOptions) (KillReport, error) {
	var rep KillReport
	conn, err := i.db.Conn(ctx)
	if err != nil {
		return rep, i.wrap("kill connections", err)
	}
	defer conn.Close()
	var self uint64
	if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&self); err != nil {
		return rep, i.wrap("kill connections", err)
	}
	rows, err := queryRows(ctx, conn, "SHOW FULL PROCESSLIST")
	if err != nil {
		return rep, i.wrap("kill connections", err)
	}
	for _, r := range rows {
		id, err := strconv.ParseUint(r["Id"], 10, 64)
		if err != nil {
			continue
		}
		user, command := r["User"], r["Command"]
		// Regent's own user is spared too: other agents probe with it.
		if id == self || user == i.user || slices.Contains(systemUsers, user) ||
			slices.Contains(systemCommands, command) || slices.Contains(opts.KeepUsers, user) {
			rep.Kept++
			continue
		}
		if _, err := conn.ExecContext(ctx, "KILL CONNECTION "+strconv.FormatUint(id, 10)); err != nil {
			if isUnknownThread(err) {
				continue // it ended on its own meanwhile
			}
			if isNotOwner(err) {
				// MySQL: a session of a user with SYSTEM_USER needs
				// SYSTEM_USER to be killed. Carry on with the others; the
				// caller is told who was spared.
				rep.Kept++
				rep.NotKilled = append(rep.NotKilled, fmt.Sprintf("%d (%s)", id, user))
				continue
			}
			return rep, i.wrap("kill connections", fmt.Errorf("KILL CONNECTION %d: %w", id, err))
		}
		rep.Killed = append(rep.Killed, id)
	}
	return rep, nil
}

// StopReplica stops replica threads.
func (i *Instance) StopReplica(ctx context.Context, t Thread) error {
	f, err := i.Flavor(ctx)
	if err != nil {
		return err
	}
	return i.exec(ctx, "stop replica", f.stopReplicaSQL(t))
}

// StartReplica starts replica threads.
func (i *Instance) StartReplica(ctx context.Context, t Thread) error {
	f, err := i.Flavor(ctx)
	if err != nil {
		return err
	}
	return i.exec(ctx, "start replica", f.startReplicaSQL(t))
}

// ChangeSource points the instance at a new source with GTID
// auto-positioning and starts replication: stop, change, start. The
// statement holds the replication password, so errors name only the step.
func (i *Instance) ChangeSource(ctx context.Context, o ChangeSourceOptions) error {
	f, err := i.Flavor(ctx)
	if err != nil {
		return err
	}
	stmt, err := f.changeSourceSQL(o)
	if err != nil {
		return &Error{Class: ClassUnknown, Op: "change source", Addr: i.addr, Err: err}
	}
	if err := i.exec(ctx, "change source: stop replica", f.stopReplicaSQL(ThreadsBoth)); err != nil {
		return err
	}
	if err := i.execSecret(ctx, "change source to "+o.String(), stmt); err != nil {
		return err
	}
	return i.exec(ctx, "change source: start replica", f.startReplicaSQL(ThreadsBoth))
}

// ResetReplication removes all replication configuration from a promoted
// replica, so that it can never reconnect to its old source.
func (i *Instance) ResetReplication(ctx context.Context) error {
	f, err := i.Flavor(ctx)
	if err != nil {
		return err
	}
	return i.exec(ctx, "reset replication", f.stopReplicaSQL(ThreadsBoth), f.resetReplicaAllSQL())
}

// WaitForGTID waits until the instance has executed every transaction of set,
// for at most timeout. It returns ErrWaitTimeout (wrapped) when time runs out.
// ctx must allow more than timeout.
func (i *Instance) WaitForGTID(ctx context.Context, set GTIDSet, timeout time.Duration) error {
	f, err := i.Flavor(ctx)
	if err != nil {
		return err
	}
	if set.IsEmpty() {
		return nil
	}
	deadline := time.Now().Add(timeout)
	for {
		// MariaDB's MASTER_GTID_WAIT waits on gtid_slave_pos, which does not
		// move for transactions a server wrote itself; checking the executed
		// state first answers those at once, on both flavours.
		done, err := i.hasExecuted(ctx, f, set)
		if err != nil || done {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return i.wrap("wait for GTID", fmt.Errorf("%w %s", ErrWaitTimeout, set.Summary()))
		}
		// Wait in slices so that a MariaDB wait that cannot see a
		// self-written GTID still ends by the deadline check above.
		var res int64
		if err := i.db.QueryRowContext(ctx, f.waitGTIDSQL(set, min(left, time.Second))).Scan(&res); err != nil {
			return i.wrap("wait for GTID", err)
		}
	}
}

func (i *Instance) hasExecuted(ctx context.Context, f Flavor, set GTIDSet) (bool, error) {
	q := "SELECT @@GLOBAL.gtid_executed"
	if f == FlavorMariaDB {
		q = "SELECT @@GLOBAL.gtid_binlog_state"
	}
	var text string
	if err := i.db.QueryRowContext(ctx, q).Scan(&text); err != nil {
		return false, i.wrap("wait for GTID", err)
	}
	have, err := ParseGTIDSet(f, compactGTIDText(text))
	if err != nil {
		return false, &Error{Class: ClassUnknown, Op: "wait for GTID", Addr: i.addr, Err: err}
	}
	return have.Contains(set), nil
}

// SemiSyncConfig is the semi-synchronous role of an instance.
type SemiSyncConfig struct {
	// Source: commits wait for a replica's acknowledgement, with wait point
	// AFTER_SYNC (lossless: nothing is visible before a replica has it).
	Source bool
	// Replica: acknowledge transactions to the source.
	Replica bool
	// Timeout before the source falls back to asynchronous replication; 0
	// keeps the server's value (LosslessTimeout with Lossless).
	Timeout time.Duration
	// Lossless (with Source): the server never falls back to asynchronous
	// commits by itself. Wait point AFTER_SYNC, wait_no_slave /
	// wait_no_replica ON (keep waiting when no replica is connected) and,
	// unless Timeout says otherwise, LosslessTimeout. These are set before
	// the source side is switched on, so that it is lossless from its first
	// commit.
	Lossless bool
	// WaitCount is how many acknowledgements a commit waits for (0 keeps the
	// server's value). MariaDB always waits for one: more is an error there.
	WaitCount int
}

// LosslessTimeout is the semi-sync timeout Regent sets for lossless
// durability: the largest value both flavours accept (about 49 days), so
// that only Regent decides to fall back to asynchronous commits. The server
// default, 10 s, makes a primary whose replicas are away for longer than
// that acknowledge commits no replica has.
const LosslessTimeout = 4294967295 * time.Millisecond

// SetSemiSync configures semi-synchronous replication. On MySQL the plugins
// are installed if missing (production servers should load them in my.cnf:
// plugin-load-add=semisync_source.so,semisync_replica.so, because INSTALL
// PLUGIN fails under super_read_only). The replica IO thread is restarted when
// the replica role changes, as the server requires.
func (i *Instance) SetSemiSync(ctx context.Context, c SemiSyncConfig) error {
	conn, err := i.db.Conn(ctx)
	if err != nil {
		return i.wrap("set semi-sync", err)
	}
	defer conn.Close()
	vars, err := nameValues(ctx, conn, showVariablesSQL)
	if err != nil {
		return i.wrap("set semi-sync", err)
	}
	f, err := ParseFlavor(vars["version"], vars["version_comment"])
	if err != nil {
		return &Error{Class: ClassUnknown, Op: "set semi-sync", Addr: i.addr, Err: err}
	}
	n := f.semiSync(vars)
	if f.IsMySQL() {
		for _, p := range []struct{ enabled, plugin, lib string }{
			{n.sourceEnabled, n.sourcePlugin, n.sourceLib},
			{n.replicaEnabled, n.replicaPlugin, n.replicaLib},
		} {
			if _, ok := vars[p.enabled]; ok {
				continue
			}
			if _, err := conn.ExecContext(ctx, "INSTALL PLUGIN "+p.plugin+" SONAME "+quote(p.lib)); err != nil {
				return i.wrap("set semi-sync", fmt.Errorf("plugin %s is not loaded and INSTALL PLUGIN failed (load it in my.cnf: plugin-load-add=%s): %w", p.plugin, p.lib, err))
			}
		}
	}
	wasReplica := parseBoolVar(vars[n.replicaEnabled])
	// Only what differs is set: on MySQL, turning the source side off
	// waits for its acknowledgement thread and can take most of a second,
	// which a switchover would count as write-blocked time.
	var stmts []string
	set := func(name, value string, same bool) {
		if !same {
			stmts = append(stmts, "SET GLOBAL "+name+"="+value)
		}
	}
	// The source's settings first: it must be lossless from the moment it
	// is switched on.
	if c.Source {
		set(n.waitPoint, "AFTER_SYNC", strings.EqualFold(vars[n.waitPoint], "AFTER_SYNC"))
	}
	timeout := c.Timeout
	if c.Source && c.Lossless {
		set(n.waitNoReplica, "ON", parseBoolVar(vars[n.waitNoReplica]))
		if timeout == 0 {
			timeout = LosslessTimeout
		}
	}
	if timeout > 0 {
		ms := strconv.FormatInt(timeout.Milliseconds(), 10)
		set(n.timeout, ms, vars[n.timeout] == ms)
	}
	if c.WaitCount > 0 {
		if _, ok := vars[n.waitCount]; !ok && c.WaitCount != 1 {
			return &Error{Class: ClassUnknown, Op: "set semi-sync", Addr: i.addr,
				Err: fmt.Errorf("this server waits for exactly one semi-sync acknowledgement (it has no %s): set semi_sync_wait_for to 1", n.waitCount)}
		} else if ok {
			v := strconv.Itoa(c.WaitCount)
			set(n.waitCount, v, vars[n.waitCount] == v)
		}
	}
	set(n.sourceEnabled, onOff(c.Source), parseBoolVar(vars[n.sourceEnabled]) == c.Source)
	set(n.replicaEnabled, onOff(c.Replica), wasReplica == c.Replica)
	if f == FlavorMariaDB && c.Replica {
		// STOP SLAVE on a semi-sync replica connects to the source to kill
		// its dump thread and waits up to this long (5 s by default) when
		// the source's host is silent: longer than a failover step.
		set("rpl_semi_sync_slave_kill_conn_timeout", "1", vars["rpl_semi_sync_slave_kill_conn_timeout"] == "1")
	}
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return i.wrap("set semi-sync", fmt.Errorf("%s: %w", q, err))
		}
	}
	if wasReplica != c.Replica {
		rows, err := queryRows(ctx, conn, f.replicaStatusSQL())
		if err != nil {
			return i.wrap("set semi-sync", err)
		}
		r, ok := pickReplicaRow(rows)
		if io := IOState(r.str(replicaColumns.ioRunning)); ok && (io == IORunning || io == IOConnecting) {
			for _, q := range []string{f.stopReplicaSQL(ThreadIO), f.startReplicaSQL(ThreadIO)} {
				if _, err := conn.ExecContext(ctx, q); err != nil {
					return i.wrap("set semi-sync: restart IO thread", fmt.Errorf("%s: %w", q, err))
				}
			}
		}
	}
	return nil
}

func onOff(b bool) string {
	if b {
		return "ON"
	}
	return "OFF"
}

// ConnectedReplica is a replica connected to a source, as the source sees it.
type ConnectedReplica struct {
	// ServerID, Host and Port come from SHOW SLAVE HOSTS / SHOW REPLICAS,
	// which needs --report-host on the replica; without it Host is empty and
	// only the dump thread's client address is known.
	ServerID uint32
	Host     string
	Port     int
	UUID     string
	// ClientAddr is the address of the binlog dump connection (from the
	// process list), when it could be matched.
	ClientAddr string
}

// ListReplicas returns the replicas connected to the instance: registered
// replicas (SHOW SLAVE HOSTS / SHOW REPLICAS) and, for replicas that did not
// register a report host, their binlog dump connections.
func (i *Instance) ListReplicas(ctx context.Context) ([]ConnectedReplica, error) {
	f, err := i.Flavor(ctx)
	if err != nil {
		return nil, err
	}
	hosts, err := queryRows(ctx, i.db, f.listReplicasSQL())
	if err != nil {
		return nil, i.wrap("list replicas", err)
	}
	var out []ConnectedReplica
	for _, h := range hosts {
		r := row(h)
		id, _ := strconv.ParseUint(r.str([]string{"Server_Id", "Server_id"}), 10, 32)
		port, _ := strconv.Atoi(r.str([]string{"Port"}))
		out = append(out, ConnectedReplica{
			ServerID: uint32(id), Host: r.str([]string{"Host"}), Port: port,
			UUID: r.str([]string{"Replica_UUID", "Slave_UUID"}),
		})
	}
	procs, err := queryRows(ctx, i.db, "SHOW FULL PROCESSLIST")
	if err != nil {
		return nil, i.wrap("list replicas", err)
	}
	dumps := 0
	for _, p := range procs {
		if c := p["Command"]; c == "Binlog Dump" || c == "Binlog Dump GTID" {
			dumps++
			if dumps > len(out) {
				out = append(out, ConnectedReplica{ClientAddr: p["Host"]})
			}
		}
	}
	slices.SortFunc(out, func(a, b ConnectedReplica) int {
		return strings.Compare(fmt.Sprintf("%s:%05d:%d:%s", a.Host, a.Port, a.ServerID, a.ClientAddr), fmt.Sprintf("%s:%05d:%d:%s", b.Host, b.Port, b.ServerID, b.ClientAddr))
	})
	return out, nil
}

// LongTransactionPoll is the least interval between two calls of
// LongWriteTransactions that lets the server refresh what it reports.
const LongTransactionPoll = 150 * time.Millisecond

// WriteTransaction is a transaction that has modified rows and is still open.
type WriteTransaction struct {
	ThreadID     uint64
	User         string
	Started      time.Time
	RowsModified uint64
	Query        string
}

// LongWriteTransactions lists the open transactions that have modified rows
// and started more than olderThan ago (information_schema.INNODB_TRX): a
// switchover waits for them rather than kill them in mid-write, and reports
// them when they do not end (FIELD-NOTES §12).
//
// trx_started has whole seconds only (a DATETIME), so the condition adds the
// second it may have lost: a transaction is listed only when it is surely
// older than olderThan, never a millisecond-old insert that happened to
// start late in a second. The age reported is approximate to that second.
//
// InnoDB refreshes INNODB_TRX only when it was not read for 100 ms: callers
// that poll must wait longer than that between calls (LongTransactionPoll),
// or they keep reading the same stale cache.
func (i *Instance) LongWriteTransactions(ctx context.Context, olderThan time.Duration) ([]WriteTransaction, error) {
	q := "SELECT t.trx_mysql_thread_id, COALESCE(p.USER, ''), TIMESTAMPDIFF(MICROSECOND, t.trx_started, NOW(6)), t.trx_rows_modified, COALESCE(t.trx_query, '') " +
		"FROM information_schema.INNODB_TRX t LEFT JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id " +
		"WHERE t.trx_rows_modified > 0 AND t.trx_started + INTERVAL 1 SECOND <= NOW(6) - INTERVAL " + strconv.FormatInt(olderThan.Microseconds(), 10) + " MICROSECOND"
	rows, err := i.db.QueryContext(ctx, q)
	if err != nil {
		return nil, i.wrap("list write transactions", err)
	}
	defer rows.Close()
	var out []WriteTransaction
	now := time.Now()
	for rows.Next() {
		var w WriteTransaction
		var ageMicros int64
		if err := rows.Scan(&w.ThreadID, &w.User, &ageMicros, &w.RowsModified, &w.Query); err != nil {
			return nil, i.wrap("list write transactions", err)
		}
		w.Started = now.Add(-time.Duration(ageMicros) * time.Microsecond)
		out = append(out, w)
	}
	return out, i.wrap("list write transactions", rows.Err())
}
