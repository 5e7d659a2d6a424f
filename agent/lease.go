package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/topology"
)

// localFencer is what the lease needs of the local instance.
type localFencer interface {
	// ReadOnly reports whether the instance refuses client writes.
	ReadOnly(ctx context.Context) (bool, error)
	// Fence kills client sessions and sets read_only, retrying until it
	// holds or ctx ends.
	Fence(ctx context.Context) error
	// Kill stops mysqld at once (SIGKILL): the last resort when read_only
	// cannot hold before the deadline. Nothing the server was doing
	// completes, so no client is told a commit succeeded.
	Kill(ctx context.Context) error
	// Shutdown stops mysqld gracefully: only when it cannot be killed and
	// no commit can wait for a semi-sync acknowledgement (a SHUTDOWN
	// completes those and, on MySQL, tells their clients OK).
	Shutdown(ctx context.Context) error
	// Unfence gives the writes back (read_only and super_read_only OFF),
	// after configuring the semi-sync source side as source when it is not
	// nil (failover's losslessWrites rule).
	Unfence(ctx context.Context, source *topology.SemiSyncConfig) error
	// SemiSyncWaits reports whether commits may be waiting for a
	// semi-sync acknowledgement (the source side is on and active), and
	// which sessions the fence did not kill run a statement ("" when none):
	// their clients could still be told a waiting commit succeeded.
	SemiSyncWaits(ctx context.Context) (active bool, unkilled string, err error)
	// ReleaseSemiSync turns the semi-sync source side off, so that
	// commits waiting for an acknowledgement complete without one.
	ReleaseSemiSync(ctx context.Context) error
}

// fenceAttemptMin is the least time one fence attempt, or one liveness check
// before an escalation, is given.
const fenceAttemptMin = 500 * time.Millisecond

// instanceFencer fences through a connection pool of its own, so that probes
// stuck on a hung server cannot starve the fence of connections.
type instanceFencer struct {
	inst      *topology.Instance
	keepUsers []string
	// pid is the local mysqld's process id as the process watch found it
	// (0: not known).
	pid func() int
}

func (f instanceFencer) ReadOnly(ctx context.Context) (bool, error) { return f.inst.ReadOnly(ctx) }

// Fence fences the instance and, when a runner's fence step called it,
// tells the runner when writes began to be held back (failover.WritesHeldFrom).
func (f instanceFencer) Fence(ctx context.Context) error {
	rep, err := f.inst.Fence(ctx, topology.KillOptions{KeepUsers: f.keepUsers})
	failover.WritesHeldFrom(ctx, rep.HeldFrom)
	return err
}

func (f instanceFencer) Shutdown(ctx context.Context) error { return f.inst.Shutdown(ctx) }

func (f instanceFencer) Kill(ctx context.Context) error {
	pid := 0
	if f.pid != nil {
		pid = f.pid()
	}
	if pid <= 0 {
		return errors.New("the local mysqld's process is not known (the process watch has not found it)")
	}
	return killProcess(ctx, pid)
}

func (f instanceFencer) Unfence(ctx context.Context, source *topology.SemiSyncConfig) error {
	if source != nil {
		if err := f.inst.SetSemiSync(ctx, *source); err != nil {
			return fmt.Errorf("writes not given back: configuring the lossless semi-sync source side failed: %w", err)
		}
	}
	return f.inst.SetReadOnly(ctx, false)
}

func (f instanceFencer) ReleaseSemiSync(ctx context.Context) error {
	live, err := f.inst.ReleaseKilledWaiters(ctx, topology.KillOptions{KeepUsers: f.keepUsers})
	if err == nil && len(live) > 0 {
		err = fmt.Errorf("%w: %s", errSessionsRunning, strings.Join(live, "; "))
	}
	return err
}

// semiSyncActive reports whether the semi-sync source side is on and
// active: commits may wait for an acknowledgement.
func (f instanceFencer) semiSyncActive(ctx context.Context) (bool, error) {
	s, err := f.inst.Probe(ctx)
	if err != nil {
		return false, err
	}
	return s.SemiSync.SourceEnabled && s.SemiSync.SourceActive, nil
}

// errSessionsRunning: a release refused because sessions the fence did not
// kill run statements; their clients could be told a waiting commit
// succeeded.
var errSessionsRunning = errors.New("not releasing the commits waiting for a semi-sync acknowledgement while sessions the fence did not kill run statements")

func (f instanceFencer) SemiSyncWaits(ctx context.Context) (bool, string, error) {
	active, err := f.semiSyncActive(ctx)
	if err != nil || !active {
		return false, "", err
	}
	live, err := f.inst.UnkilledStatements(ctx)
	if err != nil {
		return true, "", err
	}
	return true, strings.Join(live, "; "), nil
}

// leaseKeeper enforces the self-fencing lease on the local instance
// (docs/safety.md): failover.DecideLease says when the instance must be read-only
// and by when; the keeper checks every fence_after/5, and at the moment the
// lease lapses (last contact + fence_after), and, while the decision
// says fence, keeps trying until read_only holds, and stops mysqld when it
// cannot hold before the deadline. It never consults the prober: a probe that
// failed or is stale says nothing about whether the instance takes writes
// now.
type leaseKeeper struct {
	policy   failover.Policy
	local    string
	clock    failover.Clock
	contact  func() time.Time // last contact with the Raft quorum
	caughtUp func() bool      // applied every entry known committed (nil: assume so)
	// leads reports whether this agent is the Raft leader (nil: assume
	// so). Only a leader's state is known current when contact resumes: a
	// follower may hear the quorum again (the lease channel) before Raft
	// brings it the entries committed meanwhile, a new epoch included.
	leads func() bool
	state func() *consensus.Cluster // the replicated state (nil before InitCluster)
	// effective is the policy under the run-time settings (nil: policy),
	// for those that may change at run time (durability).
	effective func() failover.Policy
	fencer    localFencer
	log       *slog.Logger
	// changed is called after the lease was taken or released (publish).
	changed func(ctx context.Context)
	// fenced is called after a fence held (hooks, re-probe, publish).
	fenced func(ctx context.Context, why string)

	mu       sync.Mutex
	started  time.Time // when loop began
	held     bool
	replOp   string    // the operation replacing the local instance
	replSeen time.Time // when it was first seen
	fencedOp string    // the operation whose fence held (fenced once per operation)
	// forContact: the keeper fenced the instance, while it was the
	// primary, because contact with the quorum was lost; cleared when the
	// writes are given back or the instance stops being the primary.
	forContact bool
}

// heldNow reports whether the agent holds its lease. The last check's
// decision stands only until last contact + fence_after: the lease lapses
// then, whenever the next check runs (/primary answers from this).
func (k *leaseKeeper) heldNow() bool { return k.heldBefore(k.lapsesAt()) }

// heldBefore reports whether the last check's decision holds now, given
// when the lease lapses.
func (k *leaseKeeper) heldBefore(lapses time.Time) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.held && k.clock.Now().Before(lapses)
}

// lapsesAt is when the lease lapses without further contact: last quorum
// contact (the keeper's start before the first) + fence_after.
func (k *leaseKeeper) lapsesAt() time.Time {
	c := k.contact()
	if c.IsZero() {
		k.mu.Lock()
		c = k.started
		k.mu.Unlock()
	}
	return c.Add(k.policy.FenceAfter)
}

func (k *leaseKeeper) every() time.Duration { return max(20*time.Millisecond, k.policy.FenceAfter/5) }

func (k *leaseKeeper) loop(ctx context.Context) {
	k.mu.Lock()
	k.started = k.clock.Now()
	k.mu.Unlock()
	for {
		k.check(ctx)
		// Check again after every(), or when the lease lapses if that
		// comes first: the fence starts at fence_after to the moment,
		// not up to a check later (the leader's semi-sync fence may
		// promote a replica about then).
		wait := k.every()
		if lapses := k.lapsesAt(); k.heldBefore(lapses) {
			wait = min(wait, lapses.Sub(k.clock.Now()))
		}
		select {
		case <-ctx.Done():
			return
		case <-k.clock.After(wait):
		}
	}
}

// check decides the lease once and carries the decision out.
func (k *leaseKeeper) check(ctx context.Context) {
	now := k.clock.Now()
	in := failover.LeaseInput{Now: now, LastQuorumContact: k.contact()}
	k.mu.Lock()
	if in.LastQuorumContact.IsZero() {
		// No contact yet since this agent started: count from the start.
		// No leader can count on a fence by an agent that was not running,
		// so this grace of fence_after (for Raft to connect, as it does
		// within an election) makes nothing less safe than the agent's
		// absence did; past it, the instance is fenced.
		in.LastQuorumContact = k.started
	}
	k.mu.Unlock()
	opID := ""
	if st := k.state(); st != nil {
		in.Epoch = st.Epoch
		op := st.Operation
		switch {
		case op != nil && op.Kind.ChangesPrimary() && op.Kind != consensus.KindSwitchover && op.OldPrimary == k.local:
			// A failover replacing this instance: the leader may not reach
			// it, so its agent fences it. A switchover fences the old
			// primary itself, after waiting for long write transactions:
			// fencing here would start the write-blocked window early.
			opID = op.ID
		case op != nil && op.Kind.ChangesPrimary() && op.Candidate == k.local:
			// This instance is being promoted: it is writable a moment
			// before the new epoch is committed. The candidate is recorded
			// before it is made writable, so every other instance stays
			// fenced meanwhile, a half-promoted one of an aborted operation
			// included.
		case op != nil && op.Kind.ChangesPrimary() && op.Candidate == "":
			// No candidate recorded yet, as far as this agent has applied:
			// the leader records it before making it writable, but this
			// agent may apply that record a moment after the promotion
			// (the compose host-lost test saw a promoted db2 fenced by its
			// own agent 8 ms after it was made writable). Until then the
			// run owns writability: it fences the old primary itself, and
			// once a candidate is recorded every other instance is fenced
			// again (docs/safety.md, *Promotions are recorded before they
			// happen*).
		case st.Primary != "" && st.Primary != k.local:
			in.OtherPrimary = st.Primary
		}
		in.LocalPrimary = st.Primary == k.local && op == nil
	}
	// Writes are given back by the agent itself only while it leads (found
	// by the compose cut-off test: a follower whose lease pongs came back
	// before Raft's entries gave writes back to a primary already
	// replaced); otherwise the leader's restore-writes operation does.
	in.CaughtUp = (k.caughtUp == nil || k.caughtUp()) && (k.leads == nil || k.leads())
	k.mu.Lock()
	if opID != k.replOp {
		k.replOp, k.replSeen = opID, now
	}
	if in.OtherPrimary != "" {
		k.forContact = false
	}
	in.FencedForContact = k.forContact
	if opID != "" {
		in.ReplacedSince = k.replSeen
	}
	d := failover.DecideLease(k.policy, in)
	was := k.held
	k.held = d.Held
	done := opID != "" && k.fencedOp == opID
	k.mu.Unlock()
	if was != d.Held {
		level := slog.LevelInfo
		if !d.Held {
			level = slog.LevelWarn
		}
		k.log.Log(ctx, level, "lease", "held", d.Held, "why", d.Reason)
		defer k.changed(ctx) // after fencing: reports must not delay it
	}
	if d.Restore {
		k.restore(ctx)
		return
	}
	if !d.Fence || done {
		return
	}
	k.enforce(ctx, d, opID, in.LocalPrimary)
}

// restore gives back the writes the keeper took when contact was lost
// (failover.LeaseDecision.Restore).
func (k *leaseKeeper) restore(ctx context.Context) {
	// Lossless first under durability semi_sync: the instance may have
	// restarted while fenced, and SET GLOBAL does not survive that
	// (docs/safety.md, *Writes are given back only losslessly*).
	var source *topology.SemiSyncConfig
	p := k.policy
	if k.effective != nil {
		p = k.effective()
	}
	if st := k.state(); p.Durability == failover.DurabilitySemiSync && (st == nil || st.SemiSyncDegraded == nil) {
		c := losslessSource(p.SemiSyncWaitFor)
		source = &c
	}
	rctx, cancel := context.WithTimeout(ctx, max(k.every(), fenceAttemptMin))
	err := k.fencer.Unfence(rctx, source)
	cancel()
	if err != nil {
		k.log.Warn("lease held again, but giving the writes back failed; retrying", logInstance, k.local, logErr, err)
		return
	}
	k.mu.Lock()
	k.forContact = false
	k.mu.Unlock()
	k.log.Warn("lease held again: writes given back to the local instance (read_only=OFF), the primary of the current epoch", logInstance, k.local)
	k.fenced(ctx, "lease held again: writes given back")
}

// enforce makes the local instance read-only by d.Deadline. A failover's
// fence runs once (it also kills sessions of a read-only instance); the
// others only when the instance is not read-only, or cannot say.
func (k *leaseKeeper) enforce(ctx context.Context, d failover.LeaseDecision, opID string, primary bool) {
	if opID == "" {
		rctx, cancel := context.WithTimeout(ctx, min(k.every(), time.Second))
		ro, err := k.fencer.ReadOnly(rctx)
		cancel()
		if err == nil && ro {
			return
		}
	}
	// The fence may use the time up to the escalation point, and at least
	// one attempt's worth when that point has passed (a frozen host woke up
	// past its deadline).
	budget := max(d.EscalateAt.Sub(k.clock.Now()), fenceAttemptMin)
	fctx, cancel := context.WithTimeout(ctx, budget)
	err := k.fencer.Fence(fctx)
	cancel()
	if err == nil {
		k.log.Warn("self-fenced the local instance: read_only=ON, client sessions killed", logInstance, k.local, "why", d.Reason)
		k.mu.Lock()
		if opID != "" {
			k.fencedOp = opID
		}
		if d.ForContact && primary {
			k.forContact = true
		}
		k.mu.Unlock()
		k.fenced(ctx, d.Reason)
		return
	}
	if ctx.Err() != nil {
		return
	}
	if topology.Classify(err) == topology.ClassRefused {
		// Nothing listens: a server that is gone takes no writes, and is
		// fenced when it answers again (the next check).
		k.log.Info("self-fencing: the local mysqld is not running", logInstance, k.local, "why", d.Reason)
		return
	}
	if k.clock.Now().Before(d.EscalateAt) {
		k.log.Error("self-fencing: cannot set read_only yet; retrying", logInstance, k.local, "why", d.Reason, "deadline", d.Deadline, logErr, err)
		return
	}
	// Escalate only against a server that answers and still refuses
	// read_only (a long rollback, or on MySQL a killed commit waiting for a
	// semi-sync acknowledgement). A server that does not answer at all (a
	// frozen mysqld) commits nothing meanwhile, and a stop queued behind it
	// would only take it down when it wakes: it is fenced at the first check
	// after it answers again.
	if !errors.Is(err, topology.ErrReadOnlyPending) {
		k.log.Error("self-fencing: the local mysqld does not answer; it is fenced as soon as it does", logInstance, k.local,
			"why", d.Reason, "deadline", d.Deadline, logErr, err)
		return
	}
	// Another fence (the new leader's, which releases a replaced
	// instance's killed waiters) may have made read_only hold while this
	// one waited: the instance takes no writes then, and escalating on this
	// attempt's stale error would stop a server in the middle of its rejoin
	// (found by the chaos campaign, RELIABILITY.md seed 20261218). A held
	// read_only also means no commit waits: setting it takes the commit
	// lock that a waiting commit holds.
	roctx, rocancel := context.WithTimeout(ctx, fenceAttemptMin)
	ro, roerr := k.fencer.ReadOnly(roctx)
	rocancel()
	if roerr == nil && ro {
		k.log.Info("self-fencing: read_only holds now (set by another fence); nothing to escalate", logInstance, k.local, "why", d.Reason)
		return
	}
	// While commits may wait for a semi-sync acknowledgement (the usual
	// reason read_only pends on MySQL: a commit waiting in a session the
	// fence killed keeps the commit lock), nothing that would release them
	// runs while a session the fence did not kill runs a statement: a
	// graceful SHUTDOWN, like switching the source side off, completes the
	// waiting commits with an OK, which would acknowledge to a live client
	// a write that only this instance holds (lost by the failover). A
	// killed session's socket is shut already, so its OK reaches no one.
	// Then an instance that may still count itself the primary (the fence
	// is for lost contact alone) is stopped; one that an operation replaced
	// has its source side switched off instead, which frees the commit
	// lock so that read_only holds at the next attempt, and it stays up to
	// rejoin or be quarantined (a planned switchover must not end with the
	// old primary stopped: found by the switchover benchmark; a replaced
	// primary left with read_only pending for ever never converged: found
	// by the chaos campaign).
	wctx, wcancel := context.WithTimeout(ctx, fenceAttemptMin)
	active, unkilled, werr := k.fencer.SemiSyncWaits(wctx)
	wcancel()
	if werr == nil && active && !d.ForContact {
		// ReleaseSemiSync checks the sessions itself, after ending those
		// it can: on MySQL it sets offline_mode and kills again, which
		// ends statements held back behind the pending read_only (a
		// client that reconnects after every kill always has one there).
		// A SHUTDOWN has no such guard: the pending read_only it kills
		// could let a held-back statement commit and be acknowledged.
		unkilled = ""
	}
	if werr != nil || unkilled != "" {
		k.log.Error("self-fencing: read_only pends behind commits that may wait for a semi-sync acknowledgement in sessions the fence did not kill; not releasing them (that would acknowledge them)",
			logInstance, k.local, "why", d.Reason, "deadline", d.Deadline, "sessions", unkilled, logErr, errors.Join(err, werr))
		return
	}
	if active && !d.ForContact {
		rctx, rcancel := context.WithTimeout(ctx, fenceAttemptMin)
		rerr := k.fencer.ReleaseSemiSync(rctx)
		rcancel()
		if rerr != nil {
			k.log.Error("self-fencing: read_only pends behind killed sessions' commits waiting for a semi-sync acknowledgement, and switching the source side off failed",
				logInstance, k.local, "why", d.Reason, logErr, errors.Join(err, rerr))
			return
		}
		k.log.Warn("self-fencing: switched the semi-sync source side off to release commits waiting in killed sessions, so that read_only can hold (their clients are gone)",
			logInstance, k.local, "why", d.Reason)
		return
	}
	// read_only could not be set in time: stop mysqld rather than let it
	// take writes once the leader may promote another. By killing its
	// process: a graceful SHUTDOWN ends the pending read_only, lets a
	// statement held back behind it commit, and on MySQL completes a
	// commit waiting for a semi-sync acknowledgement with an OK to its
	// client (TestShutdownAcknowledgesACommitWaitingForSemiSync; the chaos
	// campaign's seed 20261597: a client that connected after the check
	// above was told OK for a write the failover lost).
	kctx, kcancel := context.WithTimeout(ctx, fenceAttemptMin)
	kerr := k.fencer.Kill(kctx)
	kcancel()
	if kerr == nil {
		k.log.Error("self-fencing: read_only could not be set in time; killed mysqld (SIGKILL)", logInstance, k.local, "why", d.Reason, "deadline", d.Deadline, logErr, err)
		k.fenced(ctx, d.Reason+"; mysqld killed because read_only could not be set in time")
		return
	}
	if active {
		// It acknowledges nothing while no replica acknowledges; a
		// SHUTDOWN could acknowledge what waits.
		k.log.Error("self-fencing: read_only pends behind a commit waiting for a semi-sync acknowledgement and mysqld cannot be killed; not stopping it gracefully (that would acknowledge the commit); it acknowledges nothing while no replica does. Give the agent the right to signal mysqld (CAP_KILL, deploy/systemd)",
			logInstance, k.local, "why", d.Reason, "deadline", d.Deadline, logErr, errors.Join(err, kerr))
		return
	}
	sctx, scancel := context.WithTimeout(ctx, max(d.Deadline.Sub(k.clock.Now()), time.Second))
	serr := k.fencer.Shutdown(sctx)
	scancel()
	if serr != nil {
		k.log.Error("self-fencing: read_only could not be set before the escalation point and stopping mysqld failed", logInstance, k.local,
			"why", d.Reason, "deadline", d.Deadline, logErr, errors.Join(err, serr))
		return
	}
	k.log.Error("self-fencing: read_only could not be set in time; stopped mysqld (SHUTDOWN: it could not be killed, and no commit waits for a semi-sync acknowledgement)", logInstance, k.local, "why", d.Reason, "deadline", d.Deadline, logErr, errors.Join(err, kerr))
	k.fenced(ctx, d.Reason+"; mysqld stopped because read_only could not be set in time")
}
