package agent

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/topology"
	"github.com/regentdb/regent/topology/mysqltest"
)

// fakeFencer records what the lease asked of the local instance. It stands
// in for a server only in the synctest cases, where time is simulated; the
// same keeper runs against real servers in TestLeaseFencesAfterAFailedProbe.
type fakeFencer struct {
	mu        sync.Mutex
	readOnly  bool
	readErr   error
	holds     bool // Fence succeeds at once; otherwise it blocks until ctx ends
	fences    []time.Time
	deadlines []time.Time
	shutdowns []time.Time
	kills     []time.Time
	killErr   error // Kill fails with it (the agent may not signal mysqld)
	releases  int
	unfences  []time.Time
	// unfenceSources: each Unfence's semi-sync source configuration.
	unfenceSources []*topology.SemiSyncConfig
	semiWaits      bool // SemiSyncWaits: the source side active and a session the fence did not kill runs a statement
	semiActive     bool // SemiSyncWaits: the source side active, every statement's session killed
	// roMeanwhile: while this fence waits, another (the new leader's)
	// makes read_only hold, and this one still fails as pending.
	roMeanwhile bool
}

func (f *fakeFencer) ReadOnly(ctx context.Context) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.readOnly, f.readErr
}

func (f *fakeFencer) Fence(ctx context.Context) error {
	f.mu.Lock()
	f.fences = append(f.fences, time.Now())
	dl, _ := ctx.Deadline()
	f.deadlines = append(f.deadlines, dl)
	holds := f.holds
	f.mu.Unlock()
	if holds {
		f.mu.Lock()
		f.readOnly = true
		f.mu.Unlock()
		return nil
	}
	<-ctx.Done()
	if f.roMeanwhile {
		f.mu.Lock()
		f.readOnly = true
		f.mu.Unlock()
	}
	return fmt.Errorf("fence: %w: set read_only=ON: %w", topology.ErrReadOnlyPending, ctx.Err())
}

func (f *fakeFencer) Kill(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.killErr != nil {
		return f.killErr
	}
	f.kills = append(f.kills, time.Now())
	return nil
}

func (f *fakeFencer) Shutdown(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shutdowns = append(f.shutdowns, time.Now())
	return nil
}

func (f *fakeFencer) SemiSyncWaits(ctx context.Context) (bool, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.semiWaits {
		return true, "7 (app): Waiting for semi-sync ACK from replica", nil
	}
	return f.semiActive, "", nil
}

func (f *fakeFencer) ReleaseSemiSync(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.semiWaits {
		return errSessionsRunning // it checks the sessions itself
	}
	f.releases++
	return nil
}

func (f *fakeFencer) Unfence(ctx context.Context, source *topology.SemiSyncConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unfences = append(f.unfences, time.Now())
	f.unfenceSources = append(f.unfenceSources, source)
	f.readOnly = false
	return nil
}

// calls returns the fences, their deadlines and the stops of mysqld (kills
// and SHUTDOWNs, in time order).
func (f *fakeFencer) calls() (fences, deadlines, stops []time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	stops = append(append([]time.Time(nil), f.kills...), f.shutdowns...)
	slices.SortFunc(stops, time.Time.Compare)
	return append([]time.Time(nil), f.fences...), append([]time.Time(nil), f.deadlines...), stops
}

type leaseRig struct {
	k        *leaseKeeper
	f        *fakeFencer
	mu       sync.Mutex
	contact  time.Time
	st       *consensus.Cluster
	fenced   []string
	fencedAt []time.Time
}

func newLeaseRig(f *fakeFencer) *leaseRig { return newLeaseRigWith(f, f) }

// newLeaseRigWith builds the rig around fencer; f, when not nil, is the same
// fencer as a recorder.
func newLeaseRigWith(f *fakeFencer, fencer localFencer) *leaseRig {
	r := &leaseRig{f: f, contact: time.Now()}
	r.k = &leaseKeeper{policy: failover.DefaultPolicy(), local: "db1", clock: clock{}, log: slog.New(slog.DiscardHandler),
		contact: func() time.Time { r.mu.Lock(); defer r.mu.Unlock(); return r.contact },
		state:   func() *consensus.Cluster { r.mu.Lock(); defer r.mu.Unlock(); return r.st },
		fencer:  fencer, changed: func(context.Context) {},
		fenced: func(_ context.Context, why string) {
			r.mu.Lock()
			r.fenced, r.fencedAt = append(r.fenced, why), append(r.fencedAt, time.Now())
			r.mu.Unlock()
		}}
	return r
}

// keepContact renews the quorum contact every 100ms until stop.
func (r *leaseRig) keepContact(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
			r.mu.Lock()
			r.contact = time.Now()
			r.mu.Unlock()
		}
	}
}

// The lease loop against simulated time (testing/synctest) and a recording
// fencer: when the lease is lost, when the fence starts, its deadline, the
// escalation. Default policy: fence_after 1.5s, lease_timeout 3s, a check
// every 300ms, deadline at contact + 2.7s, escalation at contact + 2.1s.
func TestLeaseKeeper(t *testing.T) {
	t.Run("issue 9 defect 4: the fence is attempted though the last probe failed and read_only cannot be read", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeFencer{readErr: errors.New("read read_only: timeout"), holds: true}
			r := newLeaseRig(f)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			t0 := r.contact // contact stops now
			go r.k.loop(ctx)
			time.Sleep(3 * time.Second)
			fences, deadlines, _ := f.calls()
			if len(fences) == 0 {
				t.Fatalf("no fence within 3s of the last contact")
			}
			if d := fences[0].Sub(t0); d < 1500*time.Millisecond || d > 1800*time.Millisecond {
				t.Errorf("first fence %v after the contact, want within one check (300ms) of fence_after (1.5s)", d)
			}
			if want := t0.Add(2100 * time.Millisecond); !deadlines[0].Equal(want) {
				t.Errorf("fence budget ends at +%v, want the escalation point +2.1s", deadlines[0].Sub(t0))
			}
			if r.k.heldNow() {
				t.Errorf("lease reported held after losing contact")
			}
			cancel()
			synctest.Wait()
		})
	})
	// Found by the compose cut-off test in CI: the last contact fell
	// between two checks, so the lease lapsed up to a check late (185ms
	// there); the leader's semi-sync fence had promoted a replica by then,
	// and both agents answered 200 on /primary in one sample round.
	t.Run("the lease lapses at last contact + fence_after, not at the next check", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeFencer{holds: true}
			r := newLeaseRig(f)
			r.st = &consensus.Cluster{Primary: "db1", Epoch: 1}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go r.k.loop(ctx)
			time.Sleep(50 * time.Millisecond) // off the checks' phase
			r.mu.Lock()
			r.contact = time.Now()
			t0 := r.contact // contact stops now
			r.mu.Unlock()
			time.Sleep(1500*time.Millisecond - time.Millisecond)
			if !r.k.heldNow() {
				t.Fatalf("lease not held 1ms before fence_after (1.5s) ran out")
			}
			time.Sleep(time.Millisecond)
			if r.k.heldNow() {
				t.Errorf("lease still held at last contact + fence_after")
			}
			synctest.Wait()
			if fences, _, _ := f.calls(); len(fences) == 0 || !fences[0].Equal(t0.Add(1500*time.Millisecond)) {
				t.Errorf("fences at %v after the contact, want the first at fence_after (1.5s)", sinceAll(t0, fences))
			}
			cancel()
			synctest.Wait()
		})
	})
	// Found by the compose host-lost test in CI: the leader recorded db2 as
	// the candidate and promoted it; db2's agent applied the promotion's
	// record 8 ms after the promotion, and in between its check saw db1
	// named primary and db2 writable, fenced db2 and killed its sessions.
	// While an operation that changes the primary has no candidate yet (as
	// far as this agent has applied), the run owns writability.
	t.Run("a candidate promoted before its agent applied the record of it is not fenced", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeFencer{holds: true}
			r := newLeaseRig(f)
			op := &consensus.Operation{ID: "op-1", Kind: consensus.KindFailover, OldPrimary: "db9", EpochBefore: 4}
			r.st = &consensus.Cluster{Primary: "db9", Epoch: 4, Operation: op}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go r.keepContact(ctx)
			go r.k.loop(ctx)
			time.Sleep(time.Second)
			if fences, _, _ := f.calls(); len(fences) != 0 {
				t.Fatalf("the writable candidate was fenced %d times before its candidacy was applied", len(fences))
			}
			// The record arrives: db1 is the candidate, still not fenced.
			r.mu.Lock()
			c := *op
			c.Candidate = "db1"
			r.st = &consensus.Cluster{Primary: "db9", Epoch: 4, Operation: &c}
			r.mu.Unlock()
			time.Sleep(time.Second)
			if fences, _, _ := f.calls(); len(fences) != 0 {
				t.Fatalf("the candidate was fenced")
			}
			// Another instance is the candidate: db1 must be read-only.
			r.mu.Lock()
			c2 := c
			c2.Candidate = "db3"
			r.st = &consensus.Cluster{Primary: "db9", Epoch: 4, Operation: &c2}
			r.mu.Unlock()
			time.Sleep(time.Second)
			if fences, _, _ := f.calls(); len(fences) == 0 {
				t.Fatalf("writable while another instance is the candidate, and not fenced")
			}
			cancel()
			synctest.Wait()
		})
	})
	t.Run("issue 9 defect 10: a fence that never holds ends in a stop before the deadline, not a fresh budget per retry", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeFencer{}
			r := newLeaseRig(f)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			t0 := r.contact
			go r.k.loop(ctx)
			time.Sleep(2800 * time.Millisecond)
			fences, deadlines, shutdowns := f.calls()
			if len(fences) == 0 || len(shutdowns) == 0 {
				t.Fatalf("fences %d, shutdowns %d", len(fences), len(shutdowns))
			}
			// One budget up to the escalation point, not a fresh one per
			// retry; after it, single attempts.
			if !deadlines[0].Equal(t0.Add(2100 * time.Millisecond)) {
				t.Errorf("first fence's budget ends at +%v, want the escalation point +2.1s", deadlines[0].Sub(t0))
			}
			for i := 1; i < len(deadlines); i++ {
				if b := deadlines[i].Sub(fences[i]); b > fenceAttemptMin {
					t.Errorf("fence %d at +%v got a budget of %v", i, fences[i].Sub(t0), b)
				}
			}
			if s := shutdowns[0].Sub(t0); s < 2100*time.Millisecond || s >= 2700*time.Millisecond {
				t.Errorf("mysqld stopped at +%v, want between the escalation point (+2.1s) and the deadline (+2.7s)", s)
			}
			cancel()
			synctest.Wait()
		})
	})
	// Found by the chaos campaign (MySQL, seed 20261597): the escalation
	// stopped mysqld with a graceful SHUTDOWN, which completed a commit
	// waiting for a semi-sync acknowledgement and told its client OK (a
	// client that connected after the keeper's check of the sessions);
	// the failover had promoted another instance, and the write was lost.
	// mysqld is killed instead; when it cannot be, a SHUTDOWN is used only
	// where no commit can wait for an acknowledgement.
	t.Run("escalation: mysqld killed, never shut down while a commit may wait for semi-sync", func(t *testing.T) {
		for _, c := range []struct {
			name         string
			semiActive   bool
			killErr      error
			wantKill     bool
			wantShutdown bool
		}{
			{"semi-sync waits, mysqld can be killed", true, nil, true, false},
			{"semi-sync waits, mysqld cannot be killed: left up, fenced by semi-sync", true, syscall.EPERM, false, false},
			{"no semi-sync wait, mysqld can be killed", false, nil, true, false},
			{"no semi-sync wait, mysqld cannot be killed: SHUTDOWN", false, syscall.EPERM, false, true},
		} {
			t.Run(c.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					f := &fakeFencer{semiActive: c.semiActive, killErr: c.killErr}
					r := newLeaseRig(f)
					r.st = &consensus.Cluster{Primary: "db1", Epoch: 1}
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					go r.k.loop(ctx)
					time.Sleep(5 * time.Second)
					f.mu.Lock()
					kills, shutdowns := len(f.kills), len(f.shutdowns)
					f.mu.Unlock()
					if (kills > 0) != c.wantKill || (shutdowns > 0) != c.wantShutdown {
						t.Errorf("kills %d, SHUTDOWNs %d; want a kill %v, a SHUTDOWN %v", kills, shutdowns, c.wantKill, c.wantShutdown)
					}
					cancel()
					synctest.Wait()
				})
			})
		}
	})
	t.Run("issue 10: contact lost and back, still the primary: fenced, then the writes given back", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeFencer{holds: true}
			r := newLeaseRig(f)
			r.st = &consensus.Cluster{Primary: "db1", Epoch: 3}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go r.k.loop(ctx)
			time.Sleep(2 * time.Second) // contact lost at the start: fenced after 1.5s
			if fences, _, _ := f.calls(); len(fences) != 1 || len(f.unfences) != 0 {
				t.Fatalf("after losing contact: %d fences, %d unfences; want 1, 0", len(fences), len(f.unfences))
			}
			go r.keepContact(ctx)
			time.Sleep(time.Second)
			f.mu.Lock()
			unfences, ro := len(f.unfences), f.readOnly
			f.mu.Unlock()
			if unfences != 1 || ro || !r.k.heldNow() {
				t.Fatalf("after contact came back: %d unfences (want 1), read-only %v, lease held %v", unfences, ro, r.k.heldNow())
			}
			// Durability semi_sync (the default): lossless before the writes.
			if src := f.unfenceSources[0]; src == nil || *src != losslessSource(1) {
				t.Errorf("writes given back with semi-sync source %+v, want %+v", src, losslessSource(1))
			}
			time.Sleep(2 * time.Second)
			if f.mu.Lock(); len(f.unfences) != 1 {
				t.Errorf("the writes were given back %d times", len(f.unfences))
			}
			f.mu.Unlock()
			cancel()
			synctest.Wait()
		})
	})
	// The writes are given back with the source side left as it is when
	// the leader decided the fallback to asynchronous commits, or under
	// async durability.
	for name, c := range map[string]struct {
		st *consensus.Cluster
		p  func(*failover.Policy)
	}{
		"degraded": {st: &consensus.Cluster{Primary: "db1", Epoch: 3, SemiSyncDegraded: &consensus.SemiSyncDegradation{Reason: "fallback"}}},
		"async":    {st: &consensus.Cluster{Primary: "db1", Epoch: 3}, p: func(p *failover.Policy) { p.Durability = failover.DurabilityAsync }},
	} {
		t.Run("contact back, "+name+": writes given back without configuring semi-sync", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fakeFencer{holds: true}
				r := newLeaseRig(f)
				r.st = c.st
				if c.p != nil {
					p := r.k.policy
					c.p(&p)
					r.k.effective = func() failover.Policy { return p }
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				go r.k.loop(ctx)
				time.Sleep(2 * time.Second)
				go r.keepContact(ctx)
				time.Sleep(time.Second)
				f.mu.Lock()
				srcs := slices.Clone(f.unfenceSources)
				f.mu.Unlock()
				if len(srcs) != 1 || srcs[0] != nil {
					t.Errorf("unfences with sources %v, want one with none", srcs)
				}
				cancel()
				synctest.Wait()
			})
		})
	}
	// Found by the switchover benchmark (health checks only, MySQL) and
	// the chaos campaign (a frozen host that thawed after its failover): a
	// replaced old primary kept a killed commit waiting for a semi-sync
	// acknowledgement that its moved replicas would never send; read_only
	// pended. Stopping it ended a planned switchover with the old primary
	// down; leaving it, read_only never held and the cluster never
	// converged. A replaced instance whose waiting sessions are all killed
	// has its source side switched off (the commits complete, their
	// clients gone) and stays up; an instance that lost contact while it
	// was the primary (and could still count itself so) is stopped.
	t.Run("semi-sync active, every waiting session killed: stopped after lost contact, released when replaced", func(t *testing.T) {
		for _, c := range []struct {
			name        string
			st          *consensus.Cluster
			contact     bool
			wantStop    bool
			wantRelease bool
			roMeanwhile bool
		}{
			{"contact lost while the primary", &consensus.Cluster{Primary: "db1", Epoch: 1}, false, true, false, false},
			{"another instance the primary", &consensus.Cluster{Primary: "db2", Epoch: 2}, true, false, true, false},
			// Found by the chaos campaign (MySQL, seed 20261218): while
			// the old primary's own fence pended, the new leader's rejoin
			// fence released its killed waiter and made read_only hold;
			// the keeper, acting on its own attempt's error, still stopped
			// mysqld in the middle of the rejoin.
			{"read_only held by another fence while this one pended", &consensus.Cluster{Primary: "db1", Epoch: 1}, false, false, false, true},
		} {
			t.Run(c.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					f := &fakeFencer{semiActive: true, roMeanwhile: c.roMeanwhile}
					r := newLeaseRig(f)
					r.st = c.st
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					if c.contact {
						go r.keepContact(ctx)
					}
					go r.k.loop(ctx)
					time.Sleep(5 * time.Second)
					fences, _, shutdowns := f.calls()
					if len(fences) == 0 {
						t.Fatalf("never fenced")
					}
					if stopped := len(shutdowns) > 0; stopped != c.wantStop {
						t.Errorf("mysqld stopped: %v, want %v", stopped, c.wantStop)
					}
					f.mu.Lock()
					released := f.releases > 0
					f.mu.Unlock()
					if released != c.wantRelease {
						t.Errorf("semi-sync source side switched off: %v, want %v", released, c.wantRelease)
					}
					cancel()
					synctest.Wait()
				})
			})
		}
	})
	t.Run("issue 10: contact back, but another instance became primary meanwhile: stays fenced", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeFencer{holds: true}
			r := newLeaseRig(f)
			r.st = &consensus.Cluster{Primary: "db1", Epoch: 3}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go r.k.loop(ctx)
			time.Sleep(2 * time.Second)
			r.mu.Lock()
			r.st = &consensus.Cluster{Primary: "db2", Epoch: 4}
			r.mu.Unlock()
			go r.keepContact(ctx)
			time.Sleep(2 * time.Second)
			if f.mu.Lock(); len(f.unfences) != 0 || !f.readOnly {
				t.Errorf("writes given back to a replaced primary: %d unfences, read-only %v", len(f.unfences), f.readOnly)
			}
			f.mu.Unlock()
			cancel()
			synctest.Wait()
		})
	})
	t.Run("a read-only instance is not fenced again on every check", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeFencer{readOnly: true, holds: true}
			r := newLeaseRig(f)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go r.k.loop(ctx)
			time.Sleep(5 * time.Second)
			if fences, _, _ := f.calls(); len(fences) != 0 {
				t.Errorf("read-only instance fenced %d times", len(fences))
			}
			cancel()
			synctest.Wait()
		})
	})
	t.Run("a failover replacing the instance: fenced once, though read-only, while the lease is held", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeFencer{readOnly: true, holds: true}
			r := newLeaseRig(f)
			r.st = &consensus.Cluster{Primary: "db1", Epoch: 3, Operation: &consensus.Operation{ID: "op-1", Kind: consensus.KindFailover, OldPrimary: "db1"}}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go r.keepContact(ctx)
			go r.k.loop(ctx)
			time.Sleep(2 * time.Second)
			if fences, _, _ := f.calls(); len(fences) != 1 {
				t.Errorf("fenced %d times for one operation, want 1", len(fences))
			}
			if r.k.heldNow() {
				t.Errorf("lease held while an operation replaces the instance")
			}
			cancel()
			synctest.Wait()
		})
	})
	// Issue 9, "also decide": an agent that starts without a quorum (the
	// others are down, or it is cut off) and finds its instance the
	// writable primary. Decided: it fences, after a grace of fence_after
	// counted from its start (time for Raft to connect): it cannot hold a
	// lease it never had, and no leader could count on it while it was not
	// running, so waiting the grace is no less safe than its absence was.
	t.Run("started without a quorum: the primary is fenced once fence_after has passed since the start", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeFencer{holds: true}
			r := newLeaseRig(f)
			r.contact = time.Time{} // never in contact
			r.st = &consensus.Cluster{Primary: "db1", Epoch: 3}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			start := time.Now()
			go r.k.loop(ctx)
			time.Sleep(1400 * time.Millisecond)
			if fences, _, _ := f.calls(); len(fences) != 0 {
				t.Fatalf("fenced %v after the start, before fence_after (1.5s)", fences[0].Sub(start))
			}
			time.Sleep(600 * time.Millisecond)
			fences, _, _ := f.calls()
			if len(fences) != 1 {
				t.Fatalf("fenced %d times within 2s of a start without a quorum, want once", len(fences))
			}
			if d := fences[0].Sub(start); d < 1500*time.Millisecond || d > 1800*time.Millisecond {
				t.Errorf("fenced %v after the start, want within one check (300ms) of fence_after (1.5s)", d)
			}
			if r.k.heldNow() {
				t.Errorf("lease held without ever reaching a quorum")
			}
			cancel()
			synctest.Wait()
		})
	})
	t.Run("in contact and primary: held, never fenced", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := &fakeFencer{holds: true}
			r := newLeaseRig(f)
			r.st = &consensus.Cluster{Primary: "db1", Epoch: 3}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go r.keepContact(ctx)
			go r.k.loop(ctx)
			time.Sleep(5 * time.Second)
			if fences, _, _ := f.calls(); len(fences) != 0 || !r.k.heldNow() {
				t.Errorf("fences %d, held %v", len(fences), r.k.heldNow())
			}
			cancel()
			synctest.Wait()
		})
	})
}

// The same keeper against real servers, with the real fencer: the quorum
// contact stops at t0 and the instance is writable.
func TestLeaseKeeperOnRealServers(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		t.Run("writable primary: read-only before the deadline", func(t *testing.T) {
			c := mysqltest.StartCluster(t, k, 1)
			r := realLeaseRig(t, c.Primary)
			mysqltest.SetWritable(t, c.Primary, true)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go r.k.loop(ctx)
			deadline := r.contact.Add(r.k.policy.LeaseTimeout - failover.LeaseMargin(r.k.policy))
			h := &harness{t: t}
			h.eventually("read-only", 10*time.Second, func() (bool, string) {
				return c.Primary.QueryString(t, "SELECT @@read_only") == "1", "writable"
			})
			if time.Now().After(deadline) {
				t.Fatalf("read-only only at %v, after the deadline %v", time.Now(), deadline)
			}
		})
		t.Run("frozen through the deadline: fenced as soon as it answers", func(t *testing.T) {
			c := mysqltest.StartCluster(t, k, 1)
			r := realLeaseRig(t, c.Primary)
			mysqltest.SetWritable(t, c.Primary, true)
			c.Primary.Pause(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go r.k.loop(ctx)
			time.Sleep(r.k.policy.LeaseTimeout) // the deadline passes while frozen
			c.Primary.Resume(t)
			woke := time.Now()
			h := &harness{t: t}
			h.eventually("read-only", 10*time.Second, func() (bool, string) {
				return c.Primary.QueryString(t, "SELECT @@read_only") == "1", "writable"
			})
			t.Logf("fenced %v after waking", time.Since(woke))
			// Fenced, not stopped: a frozen server commits nothing, and
			// stopping it on waking would only lose the instance.
			if v := c.Primary.QueryString(t, "SELECT 1"); v != "1" {
				t.Fatalf("the woken server does not answer")
			}
		})
		// Found by the frozen-mysqld benchmark (issue 10): a client that
		// wrote to the old primary as it thawed, after the fence's last
		// sweep of sessions, had its commit acknowledged when the keeper
		// stopped mysqld: a graceful SHUTDOWN releases the commits waiting
		// for a semi-sync acknowledgement with an OK, so a write that only
		// the old primary holds was acknowledged, and lost. Here the waiting
		// session belongs to Regent's own account, which the fence spares,
		// so the sweep cannot reach it whatever the timing.
		t.Run("a waiting commit the fence does not kill: mysqld not stopped, the commit never acknowledged", func(t *testing.T) {
			c := mysqltest.StartCluster(t, k, 1)
			mysqltest.EnsureTable(t, c.Primary)
			r := realLeaseRig(t, c.Primary)
			mysqltest.SetWritable(t, c.Primary, true)
			v := semiSyncVar(k)
			wait := v + "_wait_no_slave"
			if k == mysqltest.MySQL {
				wait = v + "_wait_no_replica"
			}
			c.Primary.Exec(t, "SET GLOBAL "+v+"_timeout=4294967295", "SET GLOBAL "+wait+"=ON", "SET GLOBAL "+v+"_enabled=ON")
			c.Replicas[0].Exec(t, "STOP "+replicaWord(k)+" IO_THREAD")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			regentConn, err := mysql.NewConnector(c.Primary.Config(mysqltest.AdminUser, mysqltest.AdminPassword))
			if err != nil {
				t.Fatal(err)
			}
			regentDB := sql.OpenDB(regentConn)
			defer regentDB.Close()
			done := make(chan error, 1)
			go func() {
				_, err := regentDB.ExecContext(ctx, "INSERT INTO regent_test.writes (id) VALUES (1)")
				done <- err
			}()
			h := &harness{t: t}
			h.eventually("the commit waits for an acknowledgement", 10*time.Second, func() (bool, string) {
				n := c.Primary.QueryString(t, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '"+mysqltest.AdminUser+"' AND STATE LIKE '%semi-sync%'")
				return n == "1", n + " sessions waiting"
			})
			r.contact = time.Now()
			go r.k.loop(ctx)
			// Past the lease deadline and the escalation point, with room.
			until := r.contact.Add(r.k.policy.LeaseTimeout + time.Second)
			for time.Now().Before(until) {
				select {
				case err := <-done:
					if err == nil {
						t.Fatalf("the commit waiting for a semi-sync acknowledgement was acknowledged (mysqld stopped: %v)", c.Primary.Exited())
					}
					t.Logf("the waiting client got %v", err)
					return
				case <-time.After(50 * time.Millisecond): // sampling interval
				}
			}
			if c.Primary.Exited() {
				t.Errorf("mysqld was stopped; stopping it would release the waiting commit")
			}
		})
		// Found by the chaos campaign (seed 20262851, MariaDB): a primary
		// whose mysqld restarted comes back with the semi-sync source side
		// off (SET GLOBAL does not survive a restart); given its writes back
		// so, it acknowledged commits no replica held, and a failover lost
		// them. Here the keeper fenced it for lost contact, mysqld restarted
		// meanwhile, and contact returns with the replica's IO thread
		// stopped: a commit must wait for an acknowledgement, not be told OK.
		t.Run("fenced for lost contact, restarted, contact back: lossless before writable", func(t *testing.T) {
			c := mysqltest.StartCluster(t, k, 1)
			mysqltest.EnsureTable(t, c.Primary)
			r := realLeaseRig(t, c.Primary)
			mysqltest.SetWritable(t, c.Primary, true)
			r.contact = time.Now().Add(-time.Minute)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go r.k.loop(ctx)
			h := &harness{t: t}
			h.eventually("fenced for lost contact", 10*time.Second, func() (bool, string) {
				r.mu.Lock()
				defer r.mu.Unlock()
				return len(r.fenced) > 0, "not yet"
			})
			c.Primary.Kill(t)
			c.Primary.Restart(t)
			c.Replicas[0].Exec(t, "STOP "+replicaWord(k)+" IO_THREAD")
			go r.keepContact(ctx)
			h.eventually("writes given back", 20*time.Second, func() (bool, string) {
				ro := c.Primary.QueryString(t, "SELECT @@read_only")
				return ro == "0", "read_only=" + ro
			})
			v := semiSyncVar(k)
			if on, to := c.Primary.QueryString(t, "SELECT @@"+v+"_enabled"), c.Primary.QueryString(t, "SELECT @@"+v+"_timeout"); on != "1" || to != "4294967295" {
				t.Fatalf("writable with the semi-sync source side enabled=%s timeout=%s, want 1 and 4294967295", on, to)
			}
			// No replica receives: the commit waits (a bounded look; it must
			// not be acknowledged while it is watched).
			ictx, icancel := context.WithTimeout(ctx, 2*time.Second)
			defer icancel()
			if _, err := appDB(t, c.Primary).ExecContext(ictx, "INSERT INTO regent_test.writes (id) VALUES (1)"); err == nil {
				t.Fatalf("a commit no replica received was acknowledged")
			}
		})
		t.Run("a commit stuck waiting for semi-sync in a session the fence kills: fenced on MariaDB, stopped on MySQL, never acknowledged", func(t *testing.T) {
			c := mysqltest.StartCluster(t, k, 1)
			mysqltest.EnsureTable(t, c.Primary)
			r := realLeaseRig(t, c.Primary)
			mysqltest.SetWritable(t, c.Primary, true)
			c.Primary.Exec(t, "SET GLOBAL "+semiSyncVar(k)+"_enabled=ON", "SET GLOBAL "+semiSyncVar(k)+"_timeout=3600000")
			c.Replicas[0].Exec(t, "STOP "+replicaWord(k)+" IO_THREAD")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			app := appDB(t, c.Primary)
			done := make(chan error, 1)
			go func() {
				_, err := app.ExecContext(ctx, "INSERT INTO regent_test.writes (id) VALUES (1)")
				done <- err
			}()
			h0 := &harness{t: t}
			h0.eventually("the commit waits for an acknowledgement", 10*time.Second, func() (bool, string) {
				n := c.Primary.QueryString(t, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '"+mysqltest.AppUser+"' AND STATE LIKE '%semi-sync%'")
				return n == "1", n + " sessions waiting"
			})
			r.contact = time.Now()
			go r.k.loop(ctx)
			deadline := r.contact.Add(r.k.policy.LeaseTimeout - failover.LeaseMargin(r.k.policy))
			h := &harness{t: t}
			if k == mysqltest.MySQL {
				// The killed waiter keeps the commit lock: read_only cannot
				// hold. The keeper kills mysqld at the escalation point
				// rather than leave a writable-looking server behind (a
				// SIGKILL, which completes no commit).
				select {
				case err := <-done:
					if err == nil {
						t.Fatalf("the stuck commit was acknowledged")
					}
					t.Logf("the killed client got %v", err)
				case <-time.After(20 * time.Second):
					t.Fatalf("the stuck client was never cut off")
				}
				h.eventually("mysqld stopped by the keeper", 20*time.Second, func() (bool, string) {
					return c.Primary.Exited(), "running"
				})
				h.eventually("the keeper reports the stop", 10*time.Second, func() (bool, string) {
					r.mu.Lock()
					defer r.mu.Unlock()
					return len(r.fenced) > 0 && strings.Contains(r.fenced[len(r.fenced)-1], "mysqld killed"), fmt.Sprint(r.fenced)
				})
				return
			}
			// Killing the waiter releases read_only on MariaDB.
			h.eventually("read-only", 10*time.Second, func() (bool, string) {
				return c.Primary.QueryString(t, "SELECT @@read_only") == "1", "writable"
			})
			var at []time.Time
			h.eventually("the keeper reports the fence", 10*time.Second, func() (bool, string) {
				r.mu.Lock()
				defer r.mu.Unlock()
				at = r.fencedAt
				return len(at) > 0, "not yet"
			})
			if at[0].After(deadline) {
				t.Errorf("fenced or stopped at %v, want before the deadline %v", at, deadline)
			}
			select {
			case err := <-done:
				if err == nil {
					t.Fatalf("the stuck commit was acknowledged")
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("the stuck client never got an answer")
			}
		})
	})
}

func realLeaseRig(t *testing.T, s *mysqltest.Server) *leaseRig {
	t.Helper()
	r := newLeaseRigWith(nil, instanceFencer{inst: openInstance(t, s), pid: s.PID})
	r.k.log = slog.New(slog.NewTextHandler(&testLog{t: t}, nil))
	r.st = &consensus.Cluster{Primary: "db1", Epoch: 1}
	return r
}

// appDB is a connection pool of the application's account.
func appDB(t *testing.T, s *mysqltest.Server) *sql.DB {
	t.Helper()
	conn, err := mysql.NewConnector(s.Config(mysqltest.AppUser, mysqltest.AppPassword))
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// sinceAll gives each of ts as a duration after t0, for messages.
func sinceAll(t0 time.Time, ts []time.Time) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, x := range ts {
		out[i] = x.Sub(t0)
	}
	return out
}
