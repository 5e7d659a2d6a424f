package topology

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
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
// When sessions wait for an acknowledgement, the SET is started before they
// are killed, and they are killed only once it is seen pending: a pending
// SET GLOBAL read_only already holds back every new write statement
// ("Waiting for backup lock" on MariaDB, "Waiting for global read lock" on
// MySQL). So a client that connects while the waiters are being killed
// cannot commit in the moment before read_only holds; on MariaDB 10.11 such
// a commit could skip the semi-sync wait (see KillClientConnections) and be
// acknowledged with no replica holding it (TestFenceKeepsNewWritersOut).
//
// MySQL keeps a killed session waiting for its acknowledgement, and the
// commit lock with it, so read_only cannot hold until a replica acknowledges.
// Fence never switches semi-sync off to get through (that would let new
// sessions commit asynchronously and get an OK before read_only holds);
// instead it sets offline_mode, which disconnects and refuses every client
// without CONNECTION_ADMIN, while it keeps trying. Once read_only holds it
// turns offline_mode off again (whoever set it: this fence, an earlier one, or
// ReleaseKilledWaiters). If ctx ends first, offline_mode stays on and
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
		actx, cancel := context.WithTimeout(ctx, fenceAttempt)
		var set *pendingSet
		rep, kerr := i.killClients(ctx, opts, func(conn *sql.Conn) {
			set = i.startReadOnly(actx, f)
			set.waitPending(actx, i, conn)
		})
		total.Killed = append(total.Killed, rep.Killed...)
		total.NotKilled = rep.NotKilled
		total.Kept = rep.Kept
		if set == nil {
			set = i.startReadOnly(actx, f)
		}
		<-set.done
		err = set.err
		cancel()
		if total.HeldFrom.IsZero() {
			total.HeldFrom = set.sent
		}
		if err == nil {
			if offline || f.IsMySQL() && i.offlineMode(ctx) {
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

// offlineMode reports whether offline_mode is on (MySQL): set by a fence
// that could not make read_only hold, or by ReleaseKilledWaiters, and turned
// off by the fence that makes it hold. An error reads as off.
func (i *Instance) offlineMode(ctx context.Context) bool {
	var on bool
	err := i.db.QueryRowContext(ctx, "SELECT @@global.offline_mode").Scan(&on)
	return err == nil && on
}

// pendingSet is a SET GLOBAL read_only=ON running on a connection of its
// own: done is closed when it returns, with err.
type pendingSet struct {
	id   uint64 // the connection's id, 0 if it never got one
	done chan struct{}
	err  error
	// sent is when the SET was sent (zero if it never was): from then on
	// the server holds new write statements back. Read after done.
	sent time.Time
}

// startReadOnly starts SET GLOBAL read_only=ON (super_read_only on MySQL)
// on a connection of its own and returns at once; ctx bounds it.
func (i *Instance) startReadOnly(ctx context.Context, f Flavor) *pendingSet {
	const op = "fence: set read_only=ON"
	s := &pendingSet{done: make(chan struct{})}
	conn, err := i.db.Conn(ctx)
	if err == nil {
		err = conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&s.id)
		if err != nil {
			conn.Close()
		}
	}
	if err != nil {
		s.err = i.wrap(op, err)
		close(s.done)
		return s
	}
	go func() {
		defer close(s.done)
		defer conn.Close()
		for _, q := range f.readOnlySQL(true) {
			if s.sent.IsZero() {
				s.sent = time.Now()
			}
			if _, err := conn.ExecContext(ctx, q); err != nil {
				s.err = i.wrap(op, fmt.Errorf("%s: %w", q, err))
				return
			}
		}
	}()
	return s
}

// pendingPoll is how long waitPending looks for the SET waiting for its
// lock before the fence goes on without that.
const pendingPoll = 250 * time.Millisecond

// waitPending returns once the SET has returned or waits for a lock (from
// then on it holds back every new write statement), or after pendingPoll.
// It looks on conn, a connection the caller holds: the pool may have no
// third one to give (the lease keeper's has two). Its queries run under
// ctx, not under the shorter pendingPoll: a query cancelled mid-way closes
// the connection, and the caller kills the waiters on it next.
func (s *pendingSet) waitPending(ctx context.Context, i *Instance, conn *sql.Conn) {
	deadline := time.NewTimer(pendingPoll)
	defer deadline.Stop()
	poll := time.NewTicker(2 * time.Millisecond)
	defer poll.Stop()
	for {
		var state string
		err := conn.QueryRowContext(ctx, "SELECT COALESCE(STATE, '') FROM information_schema.PROCESSLIST WHERE ID = ?", s.id).Scan(&state)
		if err == nil && strings.Contains(strings.ToLower(state), "lock") {
			return
		}
		select {
		case <-s.done:
			return
		case <-ctx.Done():
			return
		case <-deadline.C:
			i.log.Warn("fence: read_only was not seen pending before the sessions waiting for a semi-sync acknowledgement were killed", "state", state, "err", err)
			return
		case <-poll.C:
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

// PIDFile returns @@pid_file: where mysqld wrote its process id, as mysqld
// sees the file system (a server in a chroot names a path inside it).
func (i *Instance) PIDFile(ctx context.Context) (string, error) {
	var f string
	if err := i.db.QueryRowContext(ctx, "SELECT @@GLOBAL.pid_file").Scan(&f); err != nil {
		return "", i.wrap("read pid_file", err)
	}
	return f, nil
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

	// afterKill, when set (tests), runs after each KILL, with the killed
	// session's id.
	afterKill func(id uint64)
}

// KillReport says what KillClientConnections did.
type KillReport struct {
	Killed []uint64
	// Kept counts the sessions spared.
	Kept int
	// NotKilled lists sessions the server refused to kill (MySQL: their user
	// has SYSTEM_USER and Regent's does not).
	NotKilled []string
	// HeldFrom is, for Fence, when its first SET GLOBAL read_only was sent:
	// the moment the server began holding new writes back. Killed clients
	// that reconnect can still commit until then. Zero when no SET was sent.
	HeldFrom time.Time
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
//
// Sessions whose commit waits for a semi-sync acknowledgement are killed
// last, after every other client session (listed again just before, so that
// sessions that connected meanwhile go first too). Found by the chaos
// campaign on MariaDB 10.11: killing such a waiter lets commits queued behind
// it through, and after a few killed waiters one of them skips the wait
// altogether and is acknowledged to its client with no replica holding it
// (TestKillingASemiSyncWaiterReleasesNoOtherCommit). A session killed first
// has its socket shut, so whatever its commit does later, no OK reaches it.
func (i *Instance) KillClientConnections(ctx context.Context, opts KillOptions) (KillReport, error) {
	return i.killClients(ctx, opts, nil)
}

// killClients is KillClientConnections with beforeWaiters (when set) run
// once the other sessions are killed, if some session waits for a semi-sync
// acknowledgement, before the process list is read again; it gets the
// connection the kills run on.
func (i *Instance) killClients(ctx context.Context, opts KillOptions, beforeWaiters func(conn *sql.Conn)) (KillReport, error) {
	var rep KillReport
	conn, self, rows, err := i.processList(ctx, "kill connections")
	if err != nil {
		return rep, err
	}
	defer conn.Close()
	waiters, err := i.killSessions(ctx, conn, self, rows, opts, false, &rep)
	if err != nil || len(waiters) == 0 {
		return rep, err
	}
	if beforeWaiters != nil {
		beforeWaiters(conn)
	}
	// Sessions may have connected since the listing: kill them before any
	// waiter, then the waiters.
	again, err := queryRows(ctx, conn, "SHOW FULL PROCESSLIST")
	if err != nil {
		return rep, i.wrap("kill connections", err)
	}
	var late KillReport
	waiters, err = i.killSessions(ctx, conn, self, again, opts, false, &late)
	rep.Killed = append(rep.Killed, late.Killed...)
	rep.NotKilled = append(rep.NotKilled, late.NotKilled...)
	if err != nil {
		return rep, err
	}
	_, err = i.killSessions(ctx, conn, self, waiters, opts, true, &rep)
	return rep, err
}

// killSessions kills the client sessions of rows (a process list) on conn:
// those not waiting for a semi-sync acknowledgement, returning the waiters'
// rows untouched, or (waiters) every one of them.
func (i *Instance) killSessions(ctx context.Context, conn *sql.Conn, self uint64, rows []map[string]string, opts KillOptions, waiters bool, rep *KillReport) ([]map[string]string, error) {
	var waiting []map[string]string
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
		if !waiters && strings.Contains(strings.ToLower(r["State"]), "semi-sync") {
			waiting = append(waiting, r)
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
			return waiting, i.wrap("kill connections", fmt.Errorf("KILL CONNECTION %d: %w", id, err))
		}
		rep.Killed = append(rep.Killed, id)
		if opts.afterKill != nil {
			opts.afterKill(id)
		}
	}
	return waiting, nil
}

// ReleaseKilledWaiters switches the semi-sync source side off, so that
// commits waiting for an acknowledgement in sessions a fence killed complete
// and read_only can hold (docs/safety.md), making sure first that no client
// can commit meanwhile: on MySQL it sets offline_mode (clients without
// CONNECTION_ADMIN are ended and refused) and kills every client session
// again; then, if a session it did not kill still runs a statement, it
// releases nothing and returns those sessions. offline_mode stays on: Fence
// turns it off once read_only holds. Without this, a client that reconnects
// after every kill (an application with a stale address, writing every
// 20 ms in the frozen-mysqld benchmark) always had a statement waiting
// behind the pending read_only, and the release never ran.
func (i *Instance) ReleaseKilledWaiters(ctx context.Context, opts KillOptions) ([]string, error) {
	f, err := i.Flavor(ctx)
	if err != nil {
		return nil, err
	}
	if f.IsMySQL() {
		if err := i.exec(ctx, "release: offline_mode=ON", "SET GLOBAL offline_mode=ON"); err != nil {
			return nil, err
		}
		if _, err := i.KillClientConnections(ctx, opts); err != nil {
			return nil, err
		}
	}
	live, err := i.UnkilledStatements(ctx)
	if err != nil || len(live) > 0 {
		return live, err
	}
	return nil, i.SwitchSemiSyncSourceOff(ctx)
}

// UnkilledStatements lists the sessions, other than the calling one and the
// server's own and replication threads, that run a statement and have not
// been killed, leaving out pending SET GLOBAL read_only statements (a
// fence's own, blocked behind the commit lock). Each is "id (user): state".
//
// A commit waiting for a semi-sync acknowledgement in a killed session can
// no longer be acknowledged to anyone: KILL CONNECTION shuts the session's
// socket down at once, whatever the thread still waits for. So a stop that
// releases the waiting commits with an OK (a graceful SHUTDOWN) acknowledges
// nothing once this list is empty (docs/safety.md).
func (i *Instance) UnkilledStatements(ctx context.Context) ([]string, error) {
	conn, self, rows, err := i.processList(ctx, "list running statements")
	if err != nil {
		return nil, err
	}
	conn.Close()
	var live []string
	for _, r := range rows {
		id, err := strconv.ParseUint(r["Id"], 10, 64)
		if err != nil || id == self {
			continue
		}
		user, command, info := r["User"], r["Command"], strings.ToUpper(r["Info"])
		if command != "Query" || slices.Contains(systemUsers, user) {
			continue // idle, killed, or a server or replication thread
		}
		if strings.HasPrefix(info, "SET GLOBAL") && strings.Contains(info, "READ_ONLY=ON") {
			continue
		}
		// A read commits nothing and waits for no acknowledgement: like an
		// idle session, it holds nothing a release could acknowledge
		// (monitoring and operators' consoles run such reads all the time,
		// and reconnect after a kill).
		if (strings.HasPrefix(info, "SELECT") || strings.HasPrefix(info, "SHOW")) && !strings.Contains(strings.ToLower(r["State"]), "semi-sync") {
			continue
		}
		live = append(live, fmt.Sprintf("%d (%s): %s", id, user, r["State"]))
	}
	return live, nil
}

// processList returns SHOW FULL PROCESSLIST as seen from a connection of its
// own, open for the caller to act on (the caller closes it), and that
// connection's id; what names the action in errors.
func (i *Instance) processList(ctx context.Context, what string) (*sql.Conn, uint64, []map[string]string, error) {
	conn, err := i.db.Conn(ctx)
	if err != nil {
		return nil, 0, nil, i.wrap(what, err)
	}
	var self uint64
	if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&self); err != nil {
		conn.Close()
		return nil, 0, nil, i.wrap(what, err)
	}
	rows, err := queryRows(ctx, conn, "SHOW FULL PROCESSLIST")
	if err != nil {
		conn.Close()
		return nil, 0, nil, i.wrap(what, err)
	}
	return conn, self, rows, nil
}

// StopReplica stops replica threads. When the IO thread is among them it
// has ended once this returns without error: STOP waits for that, and on
// MariaDB endIOThreads runs first.
func (i *Instance) StopReplica(ctx context.Context, t Thread) error {
	f, err := i.Flavor(ctx)
	if err != nil {
		return err
	}
	if t != ThreadSQL {
		if err := i.endIOThreads(ctx, i.db, f); err != nil {
			return err
		}
	}
	return i.exec(ctx, "stop replica", f.stopReplicaSQL(t))
}

// sqlRunner is what endIOThreads needs of a pool or of one connection.
type sqlRunner interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// ioThreadExitGrace bounds how long endIOThreads lets a killed MariaDB IO
// thread run before the STOP that follows; ioThreadExitPoll is how often
// it looks whether the thread has ended meanwhile.
const (
	ioThreadExitGrace = 25 * time.Millisecond
	ioThreadExitPoll  = 2 * time.Millisecond
)

// endIOThreads prepares a MariaDB replica's IO thread for the STOP SLAVE
// that follows, so that the STOP does not wait on a frozen or cut-off
// source. It does nothing on MySQL, whose STOP REPLICA returns at once
// against a frozen source, and which must not get it: a STOP after KILL of
// its IO thread blocks there. Regent's replicas replicate from one source,
// so every Slave_IO thread is that source's.
//
// What a MariaDB (10.11) semi-sync replica does when its IO thread ends,
// whether by KILL or by STOP: on its way out the thread opens a new
// connection to its source to KILL its own dump thread there (a courtesy:
// Repl_semi_sync_slave::kill_connection), with connect and read timeouts of
// rpl_semi_sync_slave_kill_conn_timeout. A frozen source's kernel accepts
// the TCP connection but the server never greets, so the thread sits in
// poll() for that whole timeout ("cannot connect to master to kill slave
// io_thread's connection" in the error log), and only then closes its
// connection and ends. STOP SLAVE waits for the thread to end. The one
// thing that cuts the wait short is the signal STOP SLAVE sends the thread
// when it starts (and again every 2 s): it interrupts that poll(). It is
// sent once, though, and if it comes before the thread has reached the
// poll() it is lost and the STOP waits the timeout out: 1 s with
// SetSemiSync's setting, 2 s (the second signal) with longer ones or 0 (no
// timeout). KILL sends no signal (it shuts the connection down), a second
// KILL does not help, and a second STOP SLAVE waits for the first one's
// lock. Measured with strace on 10.11.19 against a SIGSTOPped source: the
// KILL shuts the IO connection down, the thread connects to the source
// again, STOP's signal lands 0.3 ms after the KILL while that connect is
// still completing, and the thread then waits 1000 ms for a greeting; in a
// trial where the signal came 12 ms after the KILL it interrupted the wait
// and the STOP returned in milliseconds. KILLed then stopped at once, the
// stop waited for the courtesy connection in 25 of 42 such trials here.
//
// So the thread is KILLed first (its connection to the source is shut down
// inside the KILL statement: from then on it receives nothing new and can
// acknowledge nothing), then given up to ioThreadExitGrace to end by itself
// (a live source answers the courtesy KILL at once; an asynchronous replica
// makes none) or to reach that poll(), and only then stopped. No SQL shows
// when the thread has reached the poll(), so the grace is a bound left to
// judgement, not a proof: with it, every one of 45 trials here (load
// average 7 to 9 on two cores) stopped in under 50 ms. When it is too short
// the stop is as slow as before, and no less safe: safety never rests on
// the grace. The STOP returns only once the IO thread has ended, after it
// closed its connection to the source, so from then on the replica can
// neither receive from the old source nor acknowledge to it, however long
// that source stays frozen.
func (i *Instance) endIOThreads(ctx context.Context, db sqlRunner, f Flavor) error {
	if f != FlavorMariaDB {
		return nil
	}
	ids, err := i.threadIDs(ctx, db, "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Slave_IO'")
	if err != nil {
		return i.wrap("stop replica: find the IO thread", err)
	}
	var killed []string
	for _, id := range ids {
		// Gone meanwhile (it stopped, or reconnects): nothing to kill.
		if _, err := db.ExecContext(ctx, "KILL "+id); err != nil {
			if isUnknownThread(err) {
				continue
			}
			return i.wrap("stop replica: kill the IO thread", err)
		}
		killed = append(killed, id)
	}
	if len(killed) == 0 {
		return nil
	}
	q := "SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN (" + strings.Join(killed, ",") + ")"
	grace := time.NewTimer(ioThreadExitGrace)
	defer grace.Stop()
	poll := time.NewTicker(ioThreadExitPoll)
	defer poll.Stop()
	for {
		left, err := i.threadIDs(ctx, db, q)
		switch {
		case ctx.Err() != nil:
			return nil // the STOP that follows reports it
		case err != nil:
			return i.wrap("stop replica: wait for the killed IO thread", err)
		case len(left) == 0:
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-grace.C:
			return nil
		case <-poll.C:
		}
	}
}

// threadIDs runs q, which selects one column of thread ids.
func (i *Instance) threadIDs(ctx context.Context, db sqlRunner, q string) ([]string, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id uint64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, strconv.FormatUint(id, 10))
	}
	return ids, rows.Err()
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
	// Bad options are refused before replication is stopped.
	if err := o.validate(); err != nil {
		return &Error{Class: ClassUnknown, Op: "change source", Addr: i.addr, Err: err}
	}
	if err := i.endIOThreads(ctx, i.db, f); err != nil {
		return err
	}
	// MySQL: a multi-threaded applier stopped in the middle of a
	// transaction's events (the receiver stopped before the rest arrived,
	// as when a failover or a chained repoint stops the IO thread under
	// writes) waits up to 60 s for the rest before STOP REPLICA returns
	// ("deferring to exit until the group completion"; seen by the chaos
	// campaign, seeds 20262424 and 20262442). A change of source needs only
	// the receiver stopped once auto-positioning is on, so the applier
	// keeps running: the new source sends the whole transaction again.
	stop := ThreadsBoth
	if f != FlavorMariaDB {
		if keep, err := i.applierRunsAutoPositioned(ctx); err == nil && keep {
			stop, o.receiverOnly = ThreadIO, true
		}
	}
	if err := i.exec(ctx, "change source: stop replica", f.stopReplicaSQL(stop)); err != nil {
		return err
	}
	if i.afterStop != nil {
		i.afterStop()
	}
	build := func(noBackslashEscapes bool) (string, error) { return f.changeSourceSQL(o, noBackslashEscapes) }
	if err := i.changeSource(ctx, "change source to "+o.String(), build, o.Password); err != nil {
		return i.resumeAfterFailedChange(ctx, f, o, err)
	}
	if err := i.exec(ctx, "change source: start replica", f.startReplicaSQL(ThreadsBoth)); err != nil {
		return i.resumeAfterFailedChange(ctx, f, o, err)
	}
	return nil
}

// applierRunsAutoPositioned reports, on MySQL, whether the applier runs
// and the receiver is auto-positioned (docs: ChangeSource).
func (i *Instance) applierRunsAutoPositioned(ctx context.Context) (bool, error) {
	var state string
	var auto int
	err := i.db.QueryRowContext(ctx, applierAutoPositionSQL).Scan(&state, &auto)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return state == "ON" && auto == 1, nil
}

// changeCleanupTimeout bounds resumeAfterFailedChange.
const changeCleanupTimeout = 5 * time.Second

// resumeAfterFailedChange runs when a change of source failed after
// replication was stopped (the statement timed out, the connection broke).
// Left so, a replica configured with its primary and both threads stopped
// looks stopped by an operator, and nothing starts it again (seen in CI: a
// rejoin's CHANGE MASTER timed out on MariaDB, and the old primary stayed
// stopped for good). So when the replica is configured with the source it
// was to get (the change took effect, or it had that source already), its
// threads are started again, on a context of its own (the caller's has
// often ended: that is why the change failed). A replica still configured
// with another source stays stopped: starting it could reconnect it to an
// old primary whose semi-sync fence rests on its replicas receiving
// nothing. The error returned is err, with what the cleanup did.
func (i *Instance) resumeAfterFailedChange(ctx context.Context, f Flavor, o ChangeSourceOptions, err error) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), changeCleanupTimeout)
	defer cancel()
	rows, qerr := queryRows(cctx, i.db, f.replicaStatusSQL())
	if qerr != nil {
		return fmt.Errorf("%w (replication left stopped: its source could not be read: %v)", err, qerr)
	}
	r, ok := pickReplicaRow(rows)
	if !ok || r.str(replicaColumns.sourceHost) != o.Host || r.str(replicaColumns.sourcePort) != strconv.Itoa(o.Port) {
		return fmt.Errorf("%w (replication left stopped: the source did not change to %s)", err, net.JoinHostPort(o.Host, strconv.Itoa(o.Port)))
	}
	if serr := i.exec(cctx, "change source: start replica again", f.startReplicaSQL(ThreadsBoth)); serr != nil {
		return fmt.Errorf("%w (replication left stopped: %v)", err, serr)
	}
	return fmt.Errorf("%w (replication started again: the source is %s)", err, net.JoinHostPort(o.Host, strconv.Itoa(o.Port)))
}

// ResetReplication removes all replication configuration from a promoted
// replica, so that it can never reconnect to its old source.
func (i *Instance) ResetReplication(ctx context.Context) error {
	f, err := i.Flavor(ctx)
	if err != nil {
		return err
	}
	if err := i.endIOThreads(ctx, i.db, f); err != nil {
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
	have, err := i.executed(ctx, f, "wait for GTID")
	return err == nil && have.Contains(set), err
}

// executed reads the executed set alone (@@gtid_executed, on MariaDB
// @@gtid_binlog_state): one round trip, not a probe.
func (i *Instance) executed(ctx context.Context, f Flavor, op string) (GTIDSet, error) {
	q := "SELECT @@GLOBAL.gtid_executed"
	if f == FlavorMariaDB {
		q = "SELECT @@GLOBAL.gtid_binlog_state"
	}
	var text string
	if err := i.db.QueryRowContext(ctx, q).Scan(&text); err != nil {
		return GTIDSet{}, i.wrap(op, err)
	}
	have, err := ParseGTIDSet(f, compactGTIDText(text))
	if err != nil {
		return GTIDSet{}, &Error{Class: ClassUnknown, Op: op, Addr: i.addr, Err: err}
	}
	return have, nil
}

// Executed reads the instance's executed GTID set, in one round trip.
func (i *Instance) Executed(ctx context.Context) (GTIDSet, error) {
	f, err := i.Flavor(ctx)
	if err != nil {
		return GTIDSet{}, err
	}
	return i.executed(ctx, f, "read the executed GTID set")
}

// CommittedBeyond reports whether the instance has executed a transaction
// that set lacks: a commit since set was read from it.
func (i *Instance) CommittedBeyond(ctx context.Context, set GTIDSet) (bool, error) {
	f, err := i.Flavor(ctx)
	if err != nil {
		return false, err
	}
	have, err := i.executed(ctx, f, "read the executed GTID set")
	return err == nil && !set.Contains(have), err
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
	// KeepReplica leaves the replica side as it is and Replica is ignored:
	// switching it restarts a running IO thread, wasted time for a replica
	// whose replication is reset next (a promotion, on the write-blocked
	// path).
	KeepReplica bool
}

// LosslessTimeout is the semi-sync timeout Regent sets for lossless
// durability: the largest value both flavours accept (about 49 days), so
// that only Regent decides to fall back to asynchronous commits. The server
// default, 10 s, makes a primary whose replicas are away for longer than
// that acknowledge commits no replica has.
const LosslessTimeout = 4294967295 * time.Millisecond

// semiSyncVars opens a connection (the caller closes it) and reads the
// server's variables, its flavour and the names of its semi-sync
// variables; op names the action in errors.
func (i *Instance) semiSyncVars(ctx context.Context, op string) (*sql.Conn, Flavor, map[string]string, semiSyncNames, error) {
	conn, err := i.db.Conn(ctx)
	if err != nil {
		return nil, 0, nil, semiSyncNames{}, i.wrap(op, err)
	}
	vars, err := nameValues(ctx, conn, showVariablesSQL)
	if err != nil {
		conn.Close()
		return nil, 0, nil, semiSyncNames{}, i.wrap(op, err)
	}
	f, err := ParseFlavor(vars["version"], vars["version_comment"])
	if err != nil {
		conn.Close()
		return nil, 0, nil, semiSyncNames{}, &Error{Class: ClassUnknown, Op: op, Addr: i.addr, Err: err}
	}
	return conn, f, vars, f.semiSync(vars), nil
}

// SwitchSemiSyncSourceOff turns the semi-sync source side off (when its
// plugin is loaded and it is on): commits waiting for an acknowledgement
// then complete at once, without one. Only for an instance whose waiting
// sessions are all killed, whose clients can no longer be told, or that
// becomes a replica (docs/safety.md).
func (i *Instance) SwitchSemiSyncSourceOff(ctx context.Context) error {
	conn, _, vars, n, err := i.semiSyncVars(ctx, "semi-sync source off")
	if err != nil {
		return err
	}
	defer conn.Close()
	if v, ok := vars[n.sourceEnabled]; !ok || !parseBoolVar(v) {
		return nil
	}
	if _, err := conn.ExecContext(ctx, "SET GLOBAL "+n.sourceEnabled+"=OFF"); err != nil {
		return i.wrap("semi-sync source off", err)
	}
	return nil
}

// SetSemiSync configures semi-synchronous replication. On MySQL the plugins
// are installed if missing (production servers should load them in my.cnf:
// plugin-load-add=semisync_source.so,semisync_replica.so, because INSTALL
// PLUGIN fails under super_read_only). The replica IO thread is restarted when
// the replica role changes, as the server requires.
func (i *Instance) SetSemiSync(ctx context.Context, c SemiSyncConfig) error {
	conn, f, vars, n, err := i.semiSyncVars(ctx, "set semi-sync")
	if err != nil {
		return err
	}
	defer conn.Close()
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
	if c.KeepReplica {
		c.Replica = wasReplica
	}
	set(n.replicaEnabled, onOff(c.Replica), wasReplica == c.Replica)
	if f == FlavorMariaDB && c.Replica && !c.KeepReplica {
		// A semi-sync replica's IO thread, as it ends, connects to its
		// source to kill its dump thread there and waits up to this long
		// (5 s by default) for a source that does not answer; STOP SLAVE
		// waits with it unless its signal ends the wait (endIOThreads).
		// 1 s, the least that is not "no timeout", bounds the stops whose
		// signal comes too early.
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
			if err := i.endIOThreads(ctx, conn, f); err != nil {
				return i.wrap("set semi-sync: restart IO thread", err)
			}
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
// register a report host, their binlog dump connections. Binlog watches
// (WatchBinlog) are not replicas and are left out.
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
		if c := p["Command"]; (c == "Binlog Dump" || c == "Binlog Dump GTID") && p["db"] != watchDatabase {
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
// them when they do not end: the wait is bounded, and the operator sees
// what held the switchover up.
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
