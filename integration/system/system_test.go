//go:build system

// Package system runs Regent's system tests on docker-compose.test.yml: three
// database hosts (mariadbd and a regent agent in one container each), HAProxy
// and a client, on a private Docker network. Each test brings up a fresh
// environment, breaks it the way hosts and networks break, and checks what
// Regent did and the invariants README "What is tested on real servers, and
// what is not" lists for whole hosts: epochs only grow, at most one writable
// instance (and one agent claiming /primary) at any moment, no acknowledged
// write lost with semi_sync, and convergence.
//
// Run them with `make system-test` (go test -tags system ./integration/system
// -count=1 -v). They are behind the "system" build tag, so `make test` does
// not run them: they need Docker and take a few minutes. They need Docker
// Engine and Docker Compose; without them they fail, saying what is missing
// (they are never skipped). The base image is made once by
// scripts/build-image.sh (debootstrap + docker import, no pull) and reused.
// REGENT_SYSTEM_KEEP=1 leaves a failed test's environment running;
// REGENT_SYSTEM_LOGS=1 writes every container's log to a file even when the
// test passes.
package system

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regentdb/regent/api"
)

// TestPrimaryHostLost kills the primary's whole host (mariadbd and its agent
// together, as a power loss): a replica is promoted at epoch 2, HAProxy sends
// the writes there, and no acknowledged write is lost.
func TestPrimaryHostLost(t *testing.T) {
	e := startEnv(t)
	w := e.startWriter(0)
	wt := e.startWatcher()
	e.waitAcked(w, time.Time{}, 20, 30*time.Second)

	db1 := e.host("db1")
	faultAt := time.Now()
	if out, err := e.docker(time.Minute, "kill", db1.container); err != nil {
		t.Fatalf("docker kill db1: %v: %s", err, out)
	}
	e.logf("db1's host killed (docker kill: mariadbd and its agent at once); writer: %s", w.status())

	newP, promotedIn := e.waitPromoted(faultAt, "db1")
	e.logf("%s promoted at epoch 2, %.2f s after the kill", newP.name, promotedIn.Seconds())
	firstWrite := e.waitWriteLandsOn(w, newP, faultAt)
	e.logf("first write through HAProxy on %s %.2f s after the kill", newP.name, firstWrite.Seconds())
	e.waitAcked(w, time.Now(), 50, 30*time.Second)

	// From inside the network too: the client host writes through HAProxy.
	if sid := e.clientWrite(); sid != newP.serverID {
		t.Errorf("the client's write through HAProxy landed on server_id %d, want %s's %d", sid, newP.name, newP.serverID)
	}
	e.waitReplicates(e.otherReplica("db1", newP.name), newP, "db1")

	w.stop()
	wt.stop()
	t.Logf("watcher timeline (seconds after the kill):%s", wt.timeline(faultAt))
	wt.checkInvariants(t)
	e.reportClaimLosses(wt, newP, faultAt)
	e.checkNoAckedWriteLost(newP, faultAt, w)
	e.checkFinal(newP, "db1")
}

// TestPrimaryCutOffFromOtherHosts cuts the primary's host off from the other
// database hosts while the application writes through HAProxy (so a commit
// is waiting for its semi-sync acknowledgement when the cut happens).
func TestPrimaryCutOffFromOtherHosts(t *testing.T) { cutOffScenario(t, true) }

// TestIdlePrimaryCutOffFromOtherHosts is the same cut with no write in
// flight: the application writes again once a new primary is routed.
func TestIdlePrimaryCutOffFromOtherHosts(t *testing.T) { cutOffScenario(t, false) }

// cutOffScenario cuts db1 off from db2 and db3 (iptables DROP both ways
// inside its container) but not from HAProxy, the client or the test: its
// agent loses the quorum and must fence db1 (read_only=ON) before the leader,
// after lease_timeout, promotes a replica; at no sample may two instances be
// writable. After healing, db1 must be rejoined as a replica or quarantined,
// and never writable again.
func cutOffScenario(t *testing.T, underWrites bool) {
	e := startEnv(t)
	w := e.startWriter(0)
	wt := e.startWatcher()
	e.waitAcked(w, time.Time{}, 20, 30*time.Second)
	writers := []*writer{w}
	if !underWrites {
		w.stop() // its last write has returned: nothing is in flight
	}

	db1 := e.host("db1")
	others := []*host{e.host("db2"), e.host("db3")}
	cutAt := time.Now()
	e.partition(db1, others, true)
	e.logf("db1 cut off from db2 and db3 (iptables DROP both ways); HAProxy, the client and the test still reach it; writer: %s", w.status())

	// The agent must fence db1 before the leader may promote another
	// instance: within lease_timeout of the cut at the latest.
	fencedIn, fenced := e.within("db1 fenced (read_only=ON) by its own agent within lease_timeout", leaseTimeout+5*time.Second, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), sampleTimeout)
		defer cancel()
		var ro int
		err := db1.db.QueryRowContext(ctx, "SELECT @@global.read_only").Scan(&ro)
		return err == nil && ro == 1, fmt.Sprintf("read_only=%d err=%v", ro, err)
	})
	switch {
	case !fenced:
	case fencedIn >= leaseTimeout:
		t.Errorf("db1 was fenced %.2f s after the cut: not within lease_timeout (%v), after which the leader may promote another", fencedIn.Seconds(), leaseTimeout)
	default:
		e.logf("db1 fenced %.2f s after the cut (fence_after %v)", fencedIn.Seconds(), fenceAfter)
	}

	newP, promotedIn := e.waitPromoted(cutAt, "db1")
	e.logf("%s promoted at epoch 2, %.2f s after the cut (lease_timeout %v)", newP.name, promotedIn.Seconds(), leaseTimeout)
	if !underWrites {
		w = e.startWriter(1_000_000)
		writers = append(writers, w)
	}
	firstWrite := e.waitWriteLandsOn(w, newP, cutAt)
	e.logf("first write through HAProxy on %s %.2f s after the cut", newP.name, firstWrite.Seconds())

	// How the leader fenced db1 before it promoted: by waiting out the
	// lease of db1's agent (last heard about when the cut happened, give or
	// take a report interval), or by lossless semi-sync: with every
	// replica's IO thread stopped db1 can acknowledge nothing (README
	// "Semi-sync as a fence").
	fence := e.fenceStep(db1.name)
	e.logf("fence step: %s (%v): %s", fence.Name, fence.Duration, fence.Detail)
	bySemiSync := strings.Contains(fence.Detail, "lossless semi-sync fences")

	// Fenced before promoted, as the samples saw it. Fenced: read-only,
	// or unable to acknowledge a commit (lossless semi-sync with no replica
	// connected). The samples cannot see a semi-sync fence from db1's side
	// (cut off, its replicas' connections just go quiet), so when the
	// leader fenced it that way the fence is dated by the leader's record:
	// the end of its fence step (the containers share the host's clock).
	fenceSeen := wt.firstState("db1", cutAt, stReadOnly, stNoAcks)
	if end := fence.Started.Add(time.Duration(fence.Duration)); bySemiSync && !fence.Started.IsZero() {
		// db1's agent, cut off at cutAt, fences it only when its own lease
		// lapses: the watcher excuses its look of a writer until then.
		wt.fencedBySemiSync("db1", end, cutAt)
		if fenceSeen.IsZero() || end.Before(fenceSeen) {
			fenceSeen = end
		}
	}
	newWritable := wt.firstState(newP.name, cutAt, stWritable)
	switch {
	case fenceSeen.IsZero() || newWritable.IsZero():
		t.Errorf("the watcher did not see a hand-over: db1 never seen fenced after the cut (%v), %s first seen writable %+.2fs after it",
			!fenceSeen.IsZero(), newP.name, newWritable.Sub(cutAt).Seconds())
	case fenceSeen.After(newWritable):
		// Seen in the same sample round is no overlap seen.
		t.Errorf("%s was seen writable (%+.2fs) before db1 was fenced (%+.2fs)", newP.name, newWritable.Sub(cutAt).Seconds(), fenceSeen.Sub(cutAt).Seconds())
	default:
		e.logf("db1 fenced at %+.2fs (semi-sync fence: %v), %s seen writable at %+.2fs after the cut", fenceSeen.Sub(cutAt).Seconds(), bySemiSync, newP.name, newWritable.Sub(cutAt).Seconds())
	}
	if !newWritable.IsZero() && newWritable.Sub(cutAt) < leaseTimeout-time.Second && !bySemiSync {
		t.Errorf("%s became writable %.2f s after the cut: the leader neither waited out db1's lease (%v) nor fenced it by semi-sync (fence step %q: %s)",
			newP.name, newWritable.Sub(cutAt).Seconds(), leaseTimeout, fence.Name, fence.Detail)
	}
	e.waitAcked(w, time.Now(), 30, 30*time.Second)

	healAt := time.Now()
	e.partition(db1, others, false)
	e.logf("network healed")
	outcome := ""
	_, converged := e.within("db1 rejoined as a replica of "+newP.name+" or quarantined, and read-only", 60*time.Second, func() (bool, string) {
		c, err := e.leaderCluster()
		if err != nil {
			return false, err.Error()
		}
		in, _ := instance(c, "db1")
		switch {
		case in.ReadOnly == nil || !*in.ReadOnly:
			return false, describe(c)
		case in.Role == api.RoleQuarantined:
			outcome = "quarantined: " + in.QuarantineReason
		case in.Role == api.RoleReplica && in.Replication != nil && in.Replication.SourceName == newP.name &&
			in.Replication.IOThread == api.ThreadRunning && in.Replication.SQLThread == api.ThreadRunning:
			outcome = "rejoined as a replica of " + newP.name
		default:
			return false, describe(c)
		}
		return c.Primary == newP.name && c.Epoch == 2, describe(c)
	})
	if converged {
		e.logf("db1 %s (%.2f s after healing)", outcome, time.Since(healAt).Seconds())
	}
	e.eventually("db1's agent knows epoch 2", 30*time.Second, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := db1.api.Cluster(ctx, clusterName)
		return err == nil && c.Epoch == 2 && c.Primary == newP.name, fmt.Sprintf("%v %s", err, describe(c))
	})
	e.waitAcked(w, time.Now(), 30, 30*time.Second)

	for _, x := range writers {
		x.stop()
	}
	wt.stop()
	t.Logf("watcher timeline (seconds after the cut):%s", wt.timeline(cutAt))
	wt.checkInvariants(t)
	e.reportClaimLosses(wt, newP, cutAt)
	// Writable again after a sample saw it fenced from its own side. Not
	// after the leader's semi-sync fence: that leaves db1 writable (it just
	// cannot acknowledge) until its own agent sets read_only, which CI saw
	// happen 30 ms after the leader's fence step ended.
	seenFenced := wt.firstState("db1", cutAt, stReadOnly, stNoAcks)
	rounds, _ := wt.snapshot()
	for _, r := range rounds {
		if !seenFenced.IsZero() && r.at.After(seenFenced) && r.state["db1"] == stWritable {
			t.Errorf("db1 was writable again at %+.2fs after the cut, after being fenced", r.at.Sub(cutAt).Seconds())
			break
		}
	}
	e.checkNoAckedWriteLost(newP, cutAt, writers...)
	e.checkFinal(newP, "")
	if strings.HasPrefix(outcome, "rejoined") {
		// A rejoined old primary has every acknowledged write too.
		e.eventually("db1 has every acknowledged write", 30*time.Second, func() (bool, string) {
			rows := rowsOn(t, db1)
			for _, w := range writers {
				for _, x := range w.writes() {
					if _, ok := rows[x.id]; !ok {
						return false, fmt.Sprintf("row %d missing", x.id)
					}
				}
			}
			return true, ""
		})
	}
}

// waitReplicates waits until the leader (not on the skipped hosts) sees r
// replicating from p with both threads running.
func (e *env) waitReplicates(r, p *host, skip ...string) {
	e.t.Helper()
	e.eventually(r.name+" replicates from "+p.name, time.Minute, func() (bool, string) {
		c, err := e.leaderClusterExcept(skip...)
		if err != nil {
			return false, err.Error()
		}
		in, _ := instance(c, r.name)
		rep := in.Replication
		return rep != nil && rep.SourceName == p.name && rep.IOThread == api.ThreadRunning && rep.SQLThread == api.ThreadRunning, describe(c)
	})
}

// reportClaimLosses logs how often the new primary's agent stopped
// answering 200 on /primary after it first did, while its instance stayed
// writable: every such drop makes HAProxy cut all write sessions
// (on-marked-down shutdown-sessions). Not a safety invariant, so it is
// reported rather than failed.
func (e *env) reportClaimLosses(wt *watcher, p *host, after time.Time) {
	n, reasons := wt.claimLosses(p.name, after)
	if n == 0 {
		e.logf("%s's /primary stayed 200 once it was routed", p.name)
		return
	}
	var parts []string
	for r, k := range reasons {
		parts = append(parts, fmt.Sprintf("%d× %q", k, r))
	}
	sort.Strings(parts)
	e.logf("FINDING: %s's /primary dropped from 200 %d times while it stayed the writable primary (HAProxy cuts every write session each time): %s",
		p.name, n, strings.Join(parts, "; "))
}

// waitPromoted waits until the leader (not on the named hosts) records a
// new writable primary at epoch 2 with no operation running.
func (e *env) waitPromoted(since time.Time, old string) (*host, time.Duration) {
	e.t.Helper()
	var name string
	e.eventually("a replica promoted at epoch 2", 60*time.Second, func() (bool, string) {
		c, err := e.leaderClusterExcept(old)
		if err != nil {
			return false, err.Error()
		}
		name = c.Primary
		return c.Epoch == 2 && c.Primary != "" && c.Primary != old && writable(c, c.Primary) && c.Operation == nil, describe(c)
	})
	return e.host(name), time.Since(since)
}

// waitWriteLandsOn waits until the writer has a write acknowledged after
// `after` that is on p's table with p's server_id, and returns how long
// after `after` the first such write was acknowledged.
func (e *env) waitWriteLandsOn(w *writer, p *host, after time.Time) time.Duration {
	e.t.Helper()
	var first time.Duration
	e.eventually("a write through HAProxy lands on "+p.name, 60*time.Second, func() (bool, string) {
		acks := w.ackedAfter(after)
		if len(acks) == 0 {
			c, err := e.leaderCluster()
			return false, fmt.Sprintf("writer: %s; leader's view: %s %v", w.status(), describe(c), err)
		}
		rows := rowsOn(e.t, p)
		for _, a := range acks {
			if rows[a.id] == p.serverID {
				first = a.acked.Sub(after)
				return true, ""
			}
		}
		return false, w.status()
	})
	return first
}

// clientWrite writes a row through HAProxy from the client container, as
// an application on the database network would (retrying like one: a
// connection may be cut while routing settles), and returns the server_id
// that took it.
func (e *env) clientWrite() uint32 {
	e.t.Helper()
	var sid uint64
	attempt := 0
	e.eventually("a write from the client container through HAProxy", 30*time.Second, func() (bool, string) {
		attempt++
		id := 1_000_000_000 + attempt
		out, err := e.composeRun(time.Minute, "exec", "-T", "client", "mariadb", "--defaults-extra-file=/etc/regent-client/app.cnf",
			"-N", "-e", fmt.Sprintf("INSERT INTO writes (id, sid) VALUES (%d, @@server_id); SELECT sid FROM writes WHERE id=%d", id, id))
		if err != nil {
			return false, fmt.Sprintf("attempt %d: %v: %s", attempt, err, strings.TrimSpace(out))
		}
		sid, err = strconv.ParseUint(lastLine(out), 10, 32)
		return err == nil, fmt.Sprintf("attempt %d: unexpected output %q", attempt, out)
	})
	e.logf("the client container's write through HAProxy landed on server_id %d (attempt %d)", sid, attempt)
	return uint32(sid)
}

func (e *env) otherReplica(names ...string) *host {
	for _, h := range e.hosts {
		if !contains(names, h.name) {
			return h
		}
	}
	e.t.Fatalf("no host other than %v", names)
	return nil
}

// partition cuts h off from the hosts in from (or heals it): DROP both ways
// inside h's own network namespace. Everyone else (HAProxy, the client, the
// test through its published ports) still reaches h.
func (e *env) partition(h *host, from []*host, cut bool) {
	e.t.Helper()
	op := "-I"
	if !cut {
		op = "-D"
	}
	var cmds []string
	for _, o := range from {
		cmds = append(cmds,
			fmt.Sprintf("iptables -w %s INPUT -s %s -j DROP", op, o.ip),
			fmt.Sprintf("iptables -w %s OUTPUT -d %s -j DROP", op, o.ip))
	}
	if out, err := e.docker(time.Minute, "exec", h.container, "sh", "-c", strings.Join(cmds, " && ")); err != nil {
		e.t.Fatalf("iptables in %s: %v: %s", h.name, err, out)
	}
}

// checkNoAckedWriteLost checks that the new primary has every write the
// writers had acknowledged.
func (e *env) checkNoAckedWriteLost(p *host, faultAt time.Time, writers ...*writer) {
	e.t.Helper()
	rows := rowsOn(e.t, p)
	var missing []int64
	total, after := 0, 0
	for _, w := range writers {
		for _, x := range w.writes() {
			total++
			if x.acked.After(faultAt) {
				after++
			}
			if _, ok := rows[x.id]; !ok {
				missing = append(missing, x.id)
			}
		}
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i] < missing[j] })
	if len(missing) > 0 {
		e.t.Errorf("%d acknowledged writes are not on the new primary %s: %v", len(missing), p.name, missing)
		return
	}
	e.logf("no acknowledged write lost: %d acknowledged (%d after the fault), all on %s", total, after, p.name)
}

// checkFinal checks the end state: exactly one writable instance, the new
// primary, and every agent that answers at epoch 2 naming it.
func (e *env) checkFinal(p *host, dead string) {
	e.t.Helper()
	for _, h := range e.hosts {
		if h.name == dead {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		var ro int
		err := h.db.QueryRowContext(ctx, "SELECT @@global.read_only").Scan(&ro)
		cancel()
		switch {
		case err != nil:
			e.t.Errorf("%s: read_only: %v", h.name, err)
		case h == p && ro != 0:
			e.t.Errorf("the new primary %s is read-only at the end", h.name)
		case h != p && ro == 0:
			e.t.Errorf("%s is writable at the end, besides the primary %s", h.name, p.name)
		}
		e.eventually(h.name+"'s agent at epoch 2 with "+p.name+" as primary", 30*time.Second, func() (bool, string) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			c, err := h.api.Cluster(ctx, clusterName)
			return err == nil && c.Epoch == 2 && c.Primary == p.name, fmt.Sprintf("%v %s", err, describe(c))
		})
	}
}
