package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/topology"
)

// actuator adapts topology's instance actions to failover.Actuator and
// failover.Inspector for one replication cluster.
type actuator struct {
	cluster string
	prober  *prober
	// set is the cluster's current instances.
	set  func() *instanceSet
	repl replicationAuth
	// keepUsers are spared by KillClientConnections besides Regent's own.
	keepUsers []string
	// semiWaitFor is semi_sync_wait_for: the acknowledgements a semi-sync
	// source waits for.
	semiWaitFor int
}

// losslessSource is the semi-sync source configuration of durability:
// semi_sync (docs/safety.md): AFTER_SYNC, wait_no_slave/wait_no_replica ON,
// the wait count, and a timeout so long the server never falls back alone.
func (a *actuator) losslessSource() topology.SemiSyncConfig { return losslessSource(a.semiWaitFor) }

// losslessSource is the lossless source configuration waiting for waitFor
// acknowledgements.
func losslessSource(waitFor int) topology.SemiSyncConfig {
	return topology.SemiSyncConfig{Source: true, Lossless: true, WaitCount: waitFor}
}

// replicationAuth is what a repointed replica logs in to its source with.
type replicationAuth struct {
	User      string
	Password  string
	Heartbeat time.Duration
	TLS       topology.ReplicationTLS
}

var (
	_ failover.Actuator  = (*actuator)(nil)
	_ failover.Inspector = (*actuator)(nil)
)

func (a *actuator) inst(name string) (*topology.Instance, error) {
	i, ok := a.set().insts[name]
	if !ok {
		return nil, fmt.Errorf("instance %q is not configured in cluster %s", name, a.cluster)
	}
	return i, nil
}

// Probe probes the instance now (the runner's fresh facts).
func (a *actuator) Probe(ctx context.Context, name string) (failover.Probe, error) {
	i, err := a.inst(name)
	if err != nil {
		return failover.Probe{}, err
	}
	return a.prober.probeOne(ctx, name, i).toProbe(), nil
}

// SetReadOnly turns read_only on by fencing (sessions killed first, so that a
// commit stuck waiting for a semi-sync acknowledgement cannot hold it up), and
// off plainly.
func (a *actuator) SetReadOnly(ctx context.Context, name string, on bool) error {
	i, err := a.inst(name)
	if err != nil {
		return err
	}
	if on {
		return a.fence(ctx, name, i)
	}
	return i.SetReadOnly(ctx, false)
}

// fence fences an instance. When it is not the committed primary (an
// operation replaced it) and read_only pends behind commits that wait for
// a semi-sync acknowledgement only in sessions the fence killed (MySQL
// keeps a killed session waiting, and the commit lock with it, for an
// acknowledgement that replicas moved elsewhere never send), it switches
// the source side off and fences again: those commits' clients are gone,
// so no OK reaches anyone, and read_only then holds. This is the lease
// keeper's rule for a replaced instance, for when its own agent is not
// there to apply it (it died with the leader; TestLeaderFenceReleasesKilledWaiters,
// docs/safety.md). The committed primary itself is never released this
// way: an aborted operation may give it its writes back, and it must be
// lossless then.
func (a *actuator) fence(ctx context.Context, name string, i *topology.Instance) error {
	f := instanceFencer{inst: i, keepUsers: a.keepUsers}
	replaced := false
	if a.prober != nil && a.prober.primary != nil {
		primary, _ := a.prober.primary()
		replaced = primary != "" && primary != name
	}
	first := ctx
	if dl, ok := ctx.Deadline(); ok && replaced {
		// A third of the time for the plain fence, the rest for the
		// release (on MySQL switching the source side off can take most of
		// a second) and the fence after it.
		var cancel context.CancelFunc
		first, cancel = context.WithDeadline(ctx, time.Now().Add(time.Until(dl)/3))
		defer cancel()
	}
	err := f.Fence(first)
	if err == nil || !replaced || !errors.Is(err, topology.ErrReadOnlyPending) || ctx.Err() != nil {
		return err
	}
	// The release checks the sessions itself, after ending those it can
	// (instanceFencer.ReleaseSemiSync): no process list here.
	active, werr := f.semiSyncActive(ctx)
	switch {
	case werr != nil:
		return errors.Join(err, werr)
	case !active:
		return err
	}
	if rerr := f.ReleaseSemiSync(ctx); rerr != nil {
		return fmt.Errorf("%w; %w", err, rerr)
	}
	if ferr := f.Fence(ctx); ferr != nil {
		return fmt.Errorf("semi-sync source side switched off to release commits waiting in killed sessions, and still: %w", ferr)
	}
	return nil
}

func (a *actuator) KillClientConnections(ctx context.Context, name string) error {
	i, err := a.inst(name)
	if err != nil {
		return err
	}
	_, err = i.KillClientConnections(ctx, topology.KillOptions{KeepUsers: a.keepUsers})
	return err
}

func (a *actuator) StopReplicaIO(ctx context.Context, name string) error {
	i, err := a.inst(name)
	if err != nil {
		return err
	}
	return i.StopReplica(ctx, topology.ThreadIO)
}

var _ failover.ParallelIOStopper = (*actuator)(nil)

// StopReplicaIOs stops several replicas' IO threads at once: each stop is
// on its own connection and server, and one replica slow to stop (MariaDB
// against a frozen source) must not hold up the others.
func (a *actuator) StopReplicaIOs(ctx context.Context, names []string) []error {
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() { errs[i] = a.StopReplicaIO(ctx, n) })
	}
	wg.Wait()
	return errs
}

func (a *actuator) StartReplicaIO(ctx context.Context, name string) error {
	i, err := a.inst(name)
	if err != nil {
		return err
	}
	return i.StartReplica(ctx, topology.ThreadIO)
}

func (a *actuator) WaitExecuted(ctx context.Context, name string, set failover.GTIDSet) error {
	i, err := a.inst(name)
	if err != nil {
		return err
	}
	timeout := time.Minute
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	return i.WaitForGTID(ctx, unwrapGTID(set), timeout)
}

func (a *actuator) Repoint(ctx context.Context, name, source string, opts failover.RepointOptions) error {
	i, err := a.inst(name)
	if err != nil {
		return err
	}
	addr, ok := a.set().addrs[source]
	if !ok {
		return fmt.Errorf("source %q is not configured in cluster %s", source, a.cluster)
	}
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	port, _ := strconv.Atoi(portText)
	// A replica is never a semi-sync source: its applier's commits would
	// wait for an acknowledgement no one sends, for ever (a promoted
	// candidate caught up from the old primary, docs/safety.md). The
	// plans fence an instance before they repoint it, so no client of its
	// own waits there.
	if opts.SemiSync {
		if err := i.SetSemiSync(ctx, topology.SemiSyncConfig{Replica: true}); err != nil {
			return err
		}
	} else if err := i.SwitchSemiSyncSourceOff(ctx); err != nil {
		return err
	}
	return i.ChangeSource(ctx, topology.ChangeSourceOptions{
		Host: host, Port: port, User: a.repl.User, Password: a.repl.Password,
		Demote: opts.Demote, HeartbeatPeriod: a.repl.Heartbeat, ConnectRetry: time.Second, TLS: a.repl.TLS,
	})
}

func (a *actuator) Promote(ctx context.Context, name string, semiSync bool) error {
	i, err := a.inst(name)
	if err != nil {
		return err
	}
	// What can fail runs before the RESET, which cannot be undone: a
	// promotion that fails after it leaves a former replica with nothing
	// to replicate from.
	// The replica side is switched off only after the RESET: before it,
	// switching it would restart the IO thread the RESET stops anyway
	// (tens of milliseconds on MySQL, in the write-blocked window).
	cfg := topology.SemiSyncConfig{}
	if semiSync {
		cfg = a.losslessSource()
	}
	keep := cfg
	keep.KeepReplica = true
	if err := i.SetSemiSync(ctx, keep); err != nil && semiSync {
		return err
	}
	if err := i.ResetReplication(ctx); err != nil {
		return err
	}
	// A SET GLOBAL, no IO thread left to restart. Failing here is failing
	// as the read_only below would: the server stopped answering.
	if err := i.SetSemiSync(ctx, cfg); err != nil && semiSync {
		return err
	}
	return i.SetReadOnly(ctx, false)
}

func (a *actuator) ConfigureSemiSync(ctx context.Context, name, role string) error {
	i, err := a.inst(name)
	if err != nil {
		return err
	}
	switch role {
	case "source":
		return i.SetSemiSync(ctx, a.losslessSource())
	case "replica":
		return i.SetSemiSync(ctx, topology.SemiSyncConfig{Replica: true})
	case "off":
		// The fallback: the source side off releases the waiting commits.
		return i.SetSemiSync(ctx, topology.SemiSyncConfig{})
	}
	return fmt.Errorf("unknown semi-sync role %q (want source, replica or off)", role)
}

// WaitWriteTransactions waits until no write transaction older than a few
// hundred milliseconds runs, and names the blockers when ctx ends first.
func (a *actuator) WaitWriteTransactions(ctx context.Context, name string) error {
	i, err := a.inst(name)
	if err != nil {
		return err
	}
	for {
		trx, err := i.LongWriteTransactions(ctx, 300*time.Millisecond)
		if err != nil {
			return err
		}
		if len(trx) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			var b []string
			for _, t := range trx {
				b = append(b, fmt.Sprintf("thread %d (user %s, %d rows, started %s ago)", t.ThreadID, t.User, t.RowsModified, time.Since(t.Started).Round(time.Millisecond)))
			}
			return fmt.Errorf("long write transactions still running on %s: %s", name, strings.Join(b, "; "))
		case <-time.After(topology.LongTransactionPoll):
		}
	}
}
