package failover

import (
	"strings"
	"testing"
	"time"
)

// probSum is the part of a Problem a case pins down exactly; reasons are
// checked by substring, since their wording is for people.
type probSum struct {
	Code       Code
	Instances  []string
	Target     string
	Action     Action
	Actionable bool
	Blocked    []BlockKind
	Errant     string
}

func summarize(ps []Problem) []probSum {
	out := make([]probSum, 0, len(ps))
	for _, p := range ps {
		s := probSum{Code: p.Code, Instances: p.Instances, Target: p.Target, Action: p.Action, Actionable: p.Actionable}
		if s.Instances == nil {
			s.Instances = []string{}
		}
		for _, b := range p.Blockers {
			s.Blocked = append(s.Blocked, b.Kind)
		}
		if p.Errant != nil {
			s.Errant = p.Errant.String()
		}
		out = append(out, s)
	}
	return out
}

func TestDeadAt(t *testing.T) {
	cases := []struct {
		name string
		b    *B
		want time.Time
	}{
		{"healthy: never", base(), time.Time{}},
		{"silent 1.9s: at the last sign of life plus failure_timeout",
			base().down("db1", ClassTimeout, ago(1200*ms)).lastReached("db1", ago(1900*ms)), ago(1900 * ms).Add(2 * time.Second)},
		{"the leader's stream heard it last",
			base().down("db1", ClassTimeout, ago(1200*ms)).lastReached("db1", ago(1900*ms)).stream("a2", "db1", 250*ms, ago(1500*ms)),
			ago(1500 * ms).Add(2 * time.Second)},
		{"the leader's stream still hears it: no moment", base().down("db1", ClassTimeout, ago(1200*ms)).stream("a2", "db1", 250*ms, ago(100*ms)), time.Time{}},
		{"dead already: none", base().primaryGone(ago(3 * time.Second)), time.Time{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, p := tc.b.build()
			if got := DeadAt(v, p); !got.Equal(tc.want) {
				t.Errorf("DeadAt = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAnalyze(t *testing.T) {
	healthy := probSum{Code: Healthy, Instances: []string{"db1"}}
	failoverTo := func(target string, inst ...string) probSum {
		return probSum{Code: DeadPrimary, Instances: inst, Target: target, Action: ActionFailover, Actionable: true}
	}
	cases := []struct {
		name    string
		b       *B
		want    []probSum
		reasons map[Code][]string
	}{
		{
			name: "healthy cluster",
			b:    base(),
			want: []probSum{healthy},
			reasons: map[Code][]string{
				Healthy: {"db1 is the primary of epoch 7; 2 replica(s) replicate from it"},
			},
		},
		{
			name: "healthy but paused: automation reported off",
			b:    base().state(func(s *ReplicatedState) { s.Paused, s.PauseReason = true, "maintenance CHG-42" }),
			want: []probSum{{Code: AutomationBlocked, Instances: []string{"db1"}, Blocked: []BlockKind{BlockPaused}}, healthy},
			reasons: map[Code][]string{
				AutomationBlocked: {"paused", "automatic failover is off", "CHG-42"},
			},
		},
		{
			name: "dead primary: all agents fail for longer than failure_timeout, replicas connecting",
			b:    base().primaryGone(ago(3 * time.Second)),
			want: []probSum{failoverTo("db2", "db1")},
			reasons: map[Code][]string{
				DeadPrimary: {"db1 is dead", "3 of 3 agents", "no replica still receives"},
			},
		},
		{
			name: "failure shorter than failure_timeout: no failover",
			b:    base().primaryGone(ago(1 * time.Second)),
			want: []probSum{{Code: UnreachablePrimary, Instances: []string{"db1"}}},
			reasons: map[Code][]string{
				UnreachablePrimary: {"failing from the leader (refused) for 1s only (failure_timeout 2s"},
			},
		},
		{
			name: "minority of agents failing: no failover",
			b: base().primaryGone(ago(5*time.Second)).
				probeBy("a1", "db1", func(pr *Probe) { *pr = healthyProbe(false) }).
				probeBy("a3", "db1", func(pr *Probe) { *pr = healthyProbe(false) }),
			want: []probSum{{Code: UnreachablePrimary, Instances: []string{"db1"}}},
			reasons: map[Code][]string{
				UnreachablePrimary: {"only 1 of the 3 agents"},
			},
		},
		{
			name: "blip on the manager side only: replicas still connected with heartbeats",
			b:    base().down("db1", ClassTimeout, ago(5*time.Second)),
			want: []probSum{{Code: UnreachablePrimary, Instances: []string{"db1", "db2", "db3"}}},
			reasons: map[Code][]string{
				UnreachablePrimary: {"replicas db2, db3 still receive from db1", "unreachable, not dead"},
			},
		},
		{
			name: "primary reachable by its replicas but not by the agents: no failover",
			b: base().down("db1", ClassTimeout, ago(10*time.Second)).
				io("db3", IOConnecting),
			want: []probSum{{Code: UnreachablePrimary, Instances: []string{"db1", "db2"}}},
			reasons: map[Code][]string{
				UnreachablePrimary: {"replicas db2 still receive"},
			},
		},
		{
			name: "replica connected without heartbeat tracking counts as receiving (conservative)",
			b: base().primaryGone(ago(10*time.Second)).
				io("db2", IOYes).
				replica("db2", func(rs *ReplicaStatus) { rs.HeartbeatPeriod = 0 }),
			want: []probSum{{Code: UnreachablePrimary, Instances: []string{"db1", "db2"}}},
		},
		{
			name: "hung primary: IO threads still Yes but no heartbeat for longer than the window",
			b: base().down("db1", ClassTimeout, ago(3*time.Second)).
				progress("db2", ago(3*time.Second)).progress("db3", ago(2600*ms)),
			want: []probSum{failoverTo("db2", "db1")},
		},
		{
			// Issue 10: the first failed probe of a hung server ends a probe
			// timeout after it was sent, up to a probe interval after the
			// hang; the silence began at the last successful probe.
			name: "silence counts from the last successful probe, not from the first failed one",
			b: base().down("db1", ClassTimeout, ago(1200*ms)).lastReached("db1", ago(2100*ms)).
				progress("db2", ago(2100*ms)).progress("db3", ago(2100*ms)).heartbeats(500 * ms),
			want: []probSum{failoverTo("db2", "db1")},
			reasons: map[Code][]string{
				DeadPrimary: {"silent to the leader since 11:59:57.900 (timeout)"},
			},
		},
		{
			name: "silent for less than failure_timeout since the last successful probe: not yet",
			b: base().down("db1", ClassTimeout, ago(1200*ms)).lastReached("db1", ago(1900*ms)).
				progress("db2", ago(1900*ms)).progress("db3", ago(1900*ms)).heartbeats(500 * ms),
			want: []probSum{{Code: UnreachablePrimary, Instances: []string{"db1"}}},
			reasons: map[Code][]string{
				UnreachablePrimary: {"silent to the leader (timeout) for 1.9s only (failure_timeout 2s)"},
			},
		},
		{
			name: "frozen primary: the leader's binlog stream fell silent first, its probes fail since",
			b: base().down("db1", ClassTimeout, ago(1500*ms)).lastReached("db1", ago(2300*ms)).
				stream("a2", "db1", 250*ms, ago(2050*ms)).stream("a1", "db1", 250*ms, ago(2050*ms)).stream("a3", "db1", 250*ms, ago(2100*ms)).
				progress("db2", ago(2000*ms)).progress("db3", ago(2000*ms)).heartbeats(500 * ms),
			want: []probSum{failoverTo("db2", "db1")},
			reasons: map[Code][]string{
				DeadPrimary: {"silent to the leader since 11:59:57.950"},
			},
		},
		{
			name: "the leader's binlog stream still hears the primary: its failing probes are not silence",
			b: base().down("db1", ClassTimeout, ago(10*time.Second)).lastReached("db1", ago(10*time.Second)).
				stream("a2", "db1", 250*ms, ago(600*ms)).
				progress("db2", ago(10*time.Second)).progress("db3", ago(10*time.Second)),
			want: []probSum{{Code: UnreachablePrimary, Instances: []string{"db1"}}},
			reasons: map[Code][]string{
				UnreachablePrimary: {"its binlog stream from db1 heard it at 11:59:59.400"},
			},
		},
		{
			// A slow, lossy network: probes time out, but the streams of two
			// agents still deliver heartbeats, late.
			name: "lossy network: the other agents' streams still hear the primary, no majority",
			b: base().down("db1", ClassTimeout, ago(10*time.Second)).lastReached("db1", ago(10*time.Second)).
				stream("a2", "db1", 250*ms, ago(3*time.Second)).
				stream("a1", "db1", 250*ms, ago(900*ms)).stream("a3", "db1", 250*ms, ago(500*ms)).
				progress("db2", ago(10*time.Second)).progress("db3", ago(10*time.Second)),
			want: []probSum{{Code: UnreachablePrimary, Instances: []string{"db1"}}},
			reasons: map[Code][]string{
				UnreachablePrimary: {"only 1 of the 3 agents", "hear nothing on their binlog streams"},
			},
		},
		{
			name: "a stream that never heard anything is no evidence either way",
			b: base().down("db1", ClassTimeout, ago(3*time.Second)).lastReached("db1", ago(3*time.Second)).
				stream("a1", "db1", 250*ms, time.Time{}).stream("a2", "db1", 250*ms, time.Time{}).
				progress("db2", ago(3*time.Second)).progress("db3", ago(3*time.Second)),
			want: []probSum{failoverTo("db2", "db1")},
		},
		{
			// Issue 10: 20% loss on the primary's link stalls every remote
			// path at once (probes, streams, the replicas' IO threads) for
			// seconds, while the primary serves its clients.
			name: "lossy link: every remote path silent, but its own agent, heard, reached it able to commit",
			b: base().down("db1", ClassTimeout, ago(3*time.Second)).lastReached("db1", ago(3*time.Second)).
				progress("db2", ago(3*time.Second)).progress("db3", ago(3*time.Second)).heartbeats(500*ms).
				probeBy("a1", "db1", func(pr *Probe) { *pr = healthyProbe(false) }),
			want: []probSum{{Code: UnreachablePrimary, Instances: []string{"db1"}}},
			reasons: map[Code][]string{
				UnreachablePrimary: {"its own agent a1, which the leader hears, reached it at 11:59:59.800, able to commit"},
			},
		},
		{
			name: "lossy link: its own agent's report is stale, but its lease pings say it reached the primary just now",
			b: base().down("db1", ClassTimeout, ago(3*time.Second)).lastReached("db1", ago(3*time.Second)).
				progress("db2", ago(3*time.Second)).progress("db3", ago(3*time.Second)).heartbeats(500*ms).
				probeBy("a1", "db1", func(pr *Probe) { *pr = healthyProbe(false); pr.ObservedAt = ago(10 * time.Second) }).
				agent("a1", func(r *AgentReport) {
					lp := healthyProbe(false)
					lp.ObservedAt = ago(300 * ms)
					r.LocalProbe = &lp
				}),
			want: []probSum{{Code: UnreachablePrimary, Instances: []string{"db1"}}},
			reasons: map[Code][]string{
				UnreachablePrimary: {"its own agent a1, which the leader hears, reached it at 11:59:59.700"},
			},
		},
		{
			name: "its lease pings say its latest probe of the primary failed: no veto from an older report",
			b: base().down("db1", ClassTimeout, ago(3*time.Second)).lastReached("db1", ago(3*time.Second)).
				progress("db2", ago(3*time.Second)).progress("db3", ago(3*time.Second)).heartbeats(500*ms).
				probeBy("a1", "db1", func(pr *Probe) { *pr = healthyProbe(false); pr.ObservedAt = ago(2 * time.Second) }).
				agent("a1", func(r *AgentReport) { r.LocalProbe = &Probe{ObservedAt: ago(300 * ms), Error: ClassTimeout} }),
			want: []probSum{failoverTo("db2", "db1")},
		},
		{
			name: "its own agent reaches it but no semi-sync replica is connected: it cannot commit, no veto",
			b: base().down("db1", ClassTimeout, ago(3*time.Second)).lastReached("db1", ago(3*time.Second)).
				progress("db2", ago(3*time.Second)).progress("db3", ago(3*time.Second)).heartbeats(500*ms).
				probeBy("a1", "db1", func(pr *Probe) { *pr = healthyProbe(false); pr.SemiSync.SourceClients = 0 }),
			want: []probSum{failoverTo("db2", "db1")},
		},
		{
			// Issue 10's soak: 20 % loss made both replicas reconnect at
			// once; the primary, alive and heard, lacked semi-sync replicas
			// for a moment and was failed over.
			name: "its own agent reaches it, short of semi-sync replicas for a moment only: veto",
			b: base().down("db1", ClassTimeout, ago(3*time.Second)).lastReached("db1", ago(3*time.Second)).
				progress("db2", ago(3*time.Second)).progress("db3", ago(3*time.Second)).heartbeats(500*ms).
				probeBy("a1", "db1", func(pr *Probe) {
					*pr = healthyProbe(false)
					pr.SemiSync.SourceClients, pr.SemiSync.ShortSince = 0, ago(time.Second)
				}),
			want: []probSum{{Code: UnreachablePrimary, Instances: []string{"db1"}}},
			reasons: map[Code][]string{
				UnreachablePrimary: {"it has lacked semi-sync replicas only since 11:59:59.000", "its replicas are reconnecting, not gone"},
			},
		},
		{
			name: "the same from its lease pings: veto",
			b: base().down("db1", ClassTimeout, ago(3*time.Second)).lastReached("db1", ago(3*time.Second)).
				progress("db2", ago(3*time.Second)).progress("db3", ago(3*time.Second)).heartbeats(500*ms).
				probeBy("a1", "db1", func(pr *Probe) { *pr = healthyProbe(false); pr.ObservedAt = ago(10 * time.Second) }).
				agent("a1", func(r *AgentReport) {
					lp := healthyProbe(false)
					lp.ObservedAt, lp.SemiSync.SourceClients, lp.SemiSync.ShortSince = ago(200*ms), 0, ago(2*time.Second)
					r.LocalProbe = &lp
				}),
			want: []probSum{{Code: UnreachablePrimary, Instances: []string{"db1"}}},
			reasons: map[Code][]string{
				UnreachablePrimary: {"(by its lease pings); it has lacked semi-sync replicas only since 11:59:58.000"},
			},
		},
		{
			// The soak again (01f6a39, MariaDB): both replicas reconnecting
			// through the lossy link for over 5 s, each attempt's TCP and
			// login handshakes retransmitted with back-off.
			name: "its own agent reaches it, short of semi-sync replicas for 20s while both replicas keep connecting to it: veto",
			b: base().down("db1", ClassTimeout, ago(3*time.Second)).lastReached("db1", ago(3*time.Second)).
				io("db2", IOConnecting).io("db3", IOConnecting).
				replica("db2", func(rs *ReplicaStatus) { rs.LastIOErrno, rs.LastIOError = 2013, "error reconnecting to master" }).
				probeBy("a1", "db1", func(pr *Probe) {
					*pr = healthyProbe(false)
					pr.SemiSync.SourceClients, pr.SemiSync.ShortSince = 0, ago(20*time.Second)
				}),
			want: []probSum{{Code: UnreachablePrimary, Instances: []string{"db1"}}},
			reasons: map[Code][]string{
				UnreachablePrimary: {"it has lacked semi-sync replicas since 11:59:40.000, but replicas db2, db3 keep connecting to it, for less than 30s"},
			},
		},
		{
			name: "the same for longer than the reconnect bound (30s): no veto",
			b: base().down("db1", ClassTimeout, ago(3*time.Second)).lastReached("db1", ago(3*time.Second)).
				io("db2", IOConnecting).io("db3", IOConnecting).
				probeBy("a1", "db1", func(pr *Probe) {
					*pr = healthyProbe(false)
					pr.SemiSync.SourceClients, pr.SemiSync.ShortSince = 0, ago(31*time.Second)
				}),
			want: []probSum{failoverTo("db2", "db1")},
		},
		{
			name: "short of semi-sync replicas for 20s, one replica retrying but with a login error: not retrying, no veto",
			b: base().down("db1", ClassTimeout, ago(3*time.Second)).lastReached("db1", ago(3*time.Second)).
				io("db2", IOConnecting).io("db3", IONo).
				replica("db2", func(rs *ReplicaStatus) { rs.LastIOErrno, rs.LastIOError = 1045, "Access denied for user 'repl'" }).
				probeBy("a1", "db1", func(pr *Probe) {
					*pr = healthyProbe(false)
					pr.SemiSync.SourceClients, pr.SemiSync.ShortSince = 0, ago(20*time.Second)
				}),
			want: []probSum{failoverTo("db2", "db1")},
		},
		{
			name: "short of semi-sync replicas for 20s, the only retrying replica retries another source: no veto",
			b: base().down("db1", ClassTimeout, ago(3*time.Second)).lastReached("db1", ago(3*time.Second)).
				io("db2", IONo).io("db3", IOConnecting).source("db3", "db2").
				probeBy("a1", "db1", func(pr *Probe) {
					*pr = healthyProbe(false)
					pr.SemiSync.SourceClients, pr.SemiSync.ShortSince = 0, ago(20*time.Second)
				}),
			want: []probSum{failoverTo("db2", "db1"), {Code: ReplicaPointsElsewhere, Instances: []string{"db3"}, Target: "db3", Action: ActionRepoint, Actionable: true}},
		},
		{
			name: "its own agent's latest probe of it is older than lease_timeout: no veto",
			b: base().down("db1", ClassTimeout, ago(5*time.Second)).lastReached("db1", ago(5*time.Second)).
				progress("db2", ago(5*time.Second)).progress("db3", ago(5*time.Second)).heartbeats(500*ms).
				probeBy("a1", "db1", func(pr *Probe) { *pr = healthyProbe(false); pr.ObservedAt = ago(3100 * ms) }),
			want: []probSum{failoverTo("db2", "db1")},
		},
		{
			name: "its own agent's probe of it fails too (a hung mysqld): no veto",
			b: base().down("db1", ClassTimeout, ago(3*time.Second)).lastReached("db1", ago(3*time.Second)).
				progress("db2", ago(3*time.Second)).progress("db3", ago(3*time.Second)).heartbeats(500 * ms),
			want: []probSum{failoverTo("db2", "db1")},
		},
		{
			name: "fast path contradicted: a binlog stream heard the primary after its agent reported it gone",
			b: base().localGone("a1", ago(300*ms)).
				down("db1", ClassRefused, ago(300*ms)).io("db2", IOConnecting).io("db3", IOConnecting).
				stream("a3", "db1", 250*ms, ago(100*ms)),
			want: []probSum{{Code: UnreachablePrimary, Instances: []string{"db1"}}},
			reasons: map[Code][]string{
				UnreachablePrimary: {"agent a3's binlog stream heard it at 11:59:59.900"},
			},
		},
		{
			name: "fast path: the primary's agent reports mysqld gone, no failure_timeout wait",
			b: base().localGone("a1", ago(50*ms)).
				down("db1", ClassRefused, ago(100*ms)),
			want: []probSum{failoverTo("db2", "db1")},
			reasons: map[Code][]string{
				DeadPrimary: {"fast path", "connection refused on /run/mysqld/mysqld.sock"},
			},
		},
		{
			name: "fast path with every probe older than the report: older probes are no evidence",
			b:    base().localGone("a1", ago(50*ms)),
			want: []probSum{failoverTo("db2", "db1")},
		},
		{
			name: "fast path contradicted: a replica probed after the report still receives",
			b: base().localGone("a1", ago(150*ms)).
				down("db1", ClassRefused, ago(500*ms)).
				probeBy("a3", "db3", func(pr *Probe) { pr.ObservedAt = ago(10 * ms) }),
			want: []probSum{{Code: UnreachablePrimary, Instances: []string{"db1", "db2", "db3"}}},
			reasons: map[Code][]string{
				UnreachablePrimary: {"reports mysqld gone", "but replicas db3 still receive from it"},
			},
		},
		{
			name: "fast path contradicted: an agent reached the primary after the report",
			b: base().localGone("a1", ago(500*ms)).
				down("db1", ClassRefused, ago(500*ms)).io("db2", IOConnecting).io("db3", IOConnecting).
				probeBy("a3", "db1", func(pr *Probe) { *pr = healthyProbe(false); pr.ObservedAt = ago(20 * ms) }),
			want: []probSum{{Code: UnreachablePrimary, Instances: []string{"db1"}}},
			reasons: map[Code][]string{
				UnreachablePrimary: {"agent a3 reached it"},
			},
		},
		{
			name: "fast path disabled by policy: wait for failure_timeout",
			b: base().localGone("a1", ago(50*ms)).primaryGone(ago(100 * ms)).
				policy(func(p *Policy) { p.FastPath = false }),
			want: []probSum{{Code: UnreachablePrimary, Instances: []string{"db1"}}},
		},
		{
			name: "gone report from a silent agent: no fast path, isolation waits for the lease",
			b: base().localGone("a1", ago(2*time.Second)).silent("a1", ago(2*time.Second)).
				primaryGone(ago(1 * time.Second)),
			want: []probSum{{Code: PrimaryIsolated, Instances: []string{"db1"}, Target: "db2", Action: ActionFailover, Blocked: []BlockKind{BlockLease}}},
			reasons: map[Code][]string{
				PrimaryIsolated: {"has not been heard since 11:59:58.000", "lease to lapse at 12:00:01.000"},
			},
		},
		{
			name: "dead primary and a dead semi-sync replica: blocked, it may hold the only acknowledged copies",
			b:    base().primaryGone(ago(3*time.Second)).down("db3", ClassTimeout, ago(3*time.Second)),
			want: []probSum{{Code: DeadPrimaryAndSomeReplicas, Instances: []string{"db1", "db3"}, Action: ActionFailover, Blocked: []BlockKind{BlockNoCandidate}}},
			reasons: map[Code][]string{
				DeadPrimaryAndSomeReplicas: {"replicas db3 are unreachable too"},
			},
		},
		{
			name: "dead primary and a dead replica that did not acknowledge",
			b:    base().primaryGone(ago(3*time.Second)).down("db3", ClassTimeout, ago(3*time.Second)).notAcking("db3"),
			want: []probSum{{Code: DeadPrimaryAndSomeReplicas, Instances: []string{"db1", "db3"}, Target: "db2", Action: ActionFailover, Actionable: true}},
			reasons: map[Code][]string{
				DeadPrimaryAndSomeReplicas: {"replicas db3 are unreachable too"},
			},
		},
		{
			name: "paused: dead primary reported but not actionable, with the reason",
			b:    base().primaryGone(ago(3 * time.Second)).state(func(s *ReplicatedState) { s.Paused = true }),
			want: []probSum{
				{Code: DeadPrimary, Instances: []string{"db1"}, Target: "db2", Action: ActionFailover, Blocked: []BlockKind{BlockPaused}},
				{Code: AutomationBlocked, Instances: []string{"db1"}, Blocked: []BlockKind{BlockPaused}},
			},
			reasons: map[Code][]string{
				AutomationBlocked: {"paused"},
			},
		},
		{
			// Unlike a pause, only the failover waits for an operator.
			name: "automatic_failover false: dead primary reported, blocked as disabled",
			b:    base().primaryGone(ago(3 * time.Second)).policy(func(p *Policy) { p.AutomaticFailover = false }),
			want: []probSum{
				{Code: DeadPrimary, Instances: []string{"db1"}, Target: "db2", Action: ActionFailover, Blocked: []BlockKind{BlockDisabled}},
				{Code: AutomationBlocked, Instances: []string{"db1"}, Blocked: []BlockKind{BlockDisabled}},
			},
			reasons: map[Code][]string{
				AutomationBlocked: {"automatic_failover is false", "regentctl failover"},
			},
		},
		{
			name: "anti-flap window blocks the automatic failover",
			b: base().primaryGone(ago(3 * time.Second)).
				state(func(s *ReplicatedState) { s.AntiFlapUntil = t0.Add(4 * time.Minute) }),
			want: []probSum{
				{Code: DeadPrimary, Instances: []string{"db1"}, Target: "db2", Action: ActionFailover, Blocked: []BlockKind{BlockAntiFlap}},
				{Code: AutomationBlocked, Instances: []string{"db1"}, Blocked: []BlockKind{BlockAntiFlap}},
			},
			reasons: map[Code][]string{
				AutomationBlocked: {"anti-flap window until 12:04:00.000", "manual failover allowed"},
			},
		},
		{
			name: "anti-flap window over: failover actionable",
			b: base().primaryGone(ago(3 * time.Second)).
				state(func(s *ReplicatedState) { s.AntiFlapUntil = ago(time.Second) }),
			want: []probSum{failoverTo("db2", "db1")},
		},
		{
			name: "operation in progress blocks",
			b: base().primaryGone(ago(3 * time.Second)).
				state(func(s *ReplicatedState) {
					s.Operation = Operation{Kind: OpSwitchover, ID: "op-9", StartedAt: ago(10 * time.Second), Target: "db3"}
				}),
			want: []probSum{
				{Code: DeadPrimary, Instances: []string{"db1"}, Target: "db2", Action: ActionFailover, Blocked: []BlockKind{BlockOperation}},
				{Code: AutomationBlocked, Instances: []string{"db1"}, Blocked: []BlockKind{BlockOperation}},
			},
			reasons: map[Code][]string{
				AutomationBlocked: {"operation op-9 (switchover to db3) in progress"},
			},
		},
		{
			name: "abandoned operation does not block (its leader died mid-run)",
			b: base().primaryGone(ago(3 * time.Second)).
				state(func(s *ReplicatedState) {
					s.Operation = Operation{Kind: OpFailover, ID: "op-8", StartedAt: ago(3 * time.Minute)}
				}),
			want: []probSum{failoverTo("db2", "db1")},
		},
		{
			name: "dead primary but every replica is must_not: reported, no candidate",
			b:    base().primaryGone(ago(3*time.Second)).rule("db2", PromotionMustNot).rule("db3", PromotionMustNot),
			want: []probSum{{Code: DeadPrimary, Instances: []string{"db1"}, Action: ActionFailover, Blocked: []BlockKind{BlockNoCandidate}}},
			reasons: map[Code][]string{
				DeadPrimary: {"db1 is dead"},
			},
		},
		{
			name: "authentication errors prove the primary alive",
			b:    base().primaryGone(ago(10*time.Second)).down("db1", ClassAuth, ago(10*time.Second)),
			want: []probSum{{Code: UnreachablePrimary, Instances: []string{"db1"}}},
			reasons: map[Code][]string{
				UnreachablePrimary: {"refuses it (auth)", "credentials"},
			},
		},
		{
			name: "stale leader probe of the primary: not judged dead",
			b: base().primaryGone(ago(10*time.Second)).
				probeBy("a2", "db1", func(pr *Probe) { pr.ObservedAt = ago(5 * time.Second) }),
			want: []probSum{{Code: UnreachablePrimary, Instances: []string{"db1"}}},
			reasons: map[Code][]string{
				UnreachablePrimary: {"latest probe is stale"},
			},
		},
		{
			name: "lone fresh reporter (the leader) suffices with min_agreeing_agents 1",
			b: base().primaryGone(ago(3*time.Second)).
				probeBy("a1", "db1", func(pr *Probe) { pr.ObservedAt = ago(time.Minute) }).
				probeBy("a3", "db1", func(pr *Probe) { pr.ObservedAt = ago(time.Minute) }),
			want: []probSum{failoverTo("db2", "db1")},
		},
		{
			name: "min_agreeing_agents 2 with only the leader reporting: not dead",
			b: base().primaryGone(ago(3*time.Second)).
				probeBy("a1", "db1", func(pr *Probe) { pr.ObservedAt = ago(time.Minute) }).
				probeBy("a3", "db1", func(pr *Probe) { pr.ObservedAt = ago(time.Minute) }).
				policy(func(p *Policy) { p.MinAgreeingAgents = 2 }),
			want: []probSum{{Code: UnreachablePrimary, Instances: []string{"db1"}}},
			reasons: map[Code][]string{
				UnreachablePrimary: {"only 1 of the 1 agents", "min_agreeing_agents=2"},
			},
		},
		{
			name: "primary isolated: its agent silent, lease not lapsed yet",
			b:    base().silent("a1", ago(2*time.Second)),
			want: []probSum{{Code: PrimaryIsolated, Instances: []string{"db1"}, Target: "db2", Action: ActionFailover, Blocked: []BlockKind{BlockLease}}},
			reasons: map[Code][]string{
				PrimaryIsolated: {"lost the quorum and fences db1", "lease_timeout 3s"},
			},
		},
		{
			name: "primary isolated: lease lapsed, failover actionable",
			b:    base().silent("a1", ago(4*time.Second)).writable("db1", false),
			want: []probSum{{Code: PrimaryIsolated, Instances: []string{"db1"}, Target: "db2", Action: ActionFailover, Actionable: true}},
		},
		{
			name: "primary's agent heard but without lease",
			b:    base().agent("a1", func(r *AgentReport) { r.LeaseHeld = false }),
			want: []probSum{{Code: PrimaryIsolated, Instances: []string{"db1"}, Target: "db2", Action: ActionFailover, Blocked: []BlockKind{BlockLease}}},
			reasons: map[Code][]string{
				PrimaryIsolated: {"does not hold the lease"},
			},
		},
		{
			name: "two writable primaries: fence the one outside the epoch",
			b:    base().writable("db3", true),
			want: []probSum{{Code: TwoWritablePrimaries, Instances: []string{"db3", "db1"}, Target: "db3", Action: ActionFence, Actionable: true}},
			reasons: map[Code][]string{
				TwoWritablePrimaries: {"db1 is the primary of epoch 7, so db3 is fenced"},
			},
		},
		{
			name: "two writable primaries while paused: reported, not fenced",
			b:    base().writable("db3", true).state(func(s *ReplicatedState) { s.Paused = true }),
			want: []probSum{
				{Code: TwoWritablePrimaries, Instances: []string{"db3", "db1"}, Target: "db3", Action: ActionFence, Blocked: []BlockKind{BlockPaused}},
				{Code: AutomationBlocked, Instances: []string{"db1"}, Blocked: []BlockKind{BlockPaused}},
			},
		},
		{
			name: "writable replica while the primary is read-only",
			b:    base().writable("db1", false).writable("db2", true),
			want: []probSum{
				{Code: WritableReplica, Instances: []string{"db2"}, Target: "db2", Action: ActionFence, Actionable: true},
				{Code: PrimaryNotWritable, Instances: []string{"db1"}, Target: "db1", Action: ActionRestoreWrites, Blocked: []BlockKind{BlockUnsafe}},
			},
			reasons: map[Code][]string{
				PrimaryNotWritable: {"db2 is writable: it must be fenced first"},
			},
		},
		{
			name: "operation promoting a replica: its writability is expected",
			b: base().writable("db1", false).writable("db2", true).notReplica("db2").
				state(func(s *ReplicatedState) {
					s.Operation = Operation{Kind: OpFailover, ID: "op-10", StartedAt: ago(time.Second), Target: "db2"}
				}),
			want: []probSum{{Code: AutomationBlocked, Instances: []string{"db1"}, Blocked: []BlockKind{BlockOperation}}, healthy},
		},
		{
			name: "replication stopped by a failover in progress is not reported",
			b: base().stopped().state(func(s *ReplicatedState) {
				s.Operation = Operation{Kind: OpFailover, ID: "op-11", StartedAt: ago(time.Second)}
			}),
			want: []probSum{{Code: AutomationBlocked, Instances: []string{"db1"}, Blocked: []BlockKind{BlockOperation}}, healthy},
		},
		{
			name: "primary restarted read-only, its agent holds the lease: restore writes",
			b:    base().writable("db1", false),
			want: []probSum{{Code: PrimaryNotWritable, Instances: []string{"db1"}, Target: "db1", Action: ActionRestoreWrites, Actionable: true}},
			reasons: map[Code][]string{
				PrimaryNotWritable: {"read_only is ON"},
			},
		},
		{
			// Issue 9, defect 6: an aborted failover's undo made the old
			// primary writable again but its route push failed; the status
			// said Healthy while writes through the balancer failed.
			name: "writable primary whose write route the balancers refused: not healthy",
			b:    base().route(RouteCheck{Primary: "db1", Epoch: 7, Err: "haproxy lb1: connection refused", FailingSince: ago(6 * time.Second)}),
			want: []probSum{{Code: PrimaryNotRouted, Instances: []string{"db1"}, Target: "db1"}},
			reasons: map[Code][]string{
				PrimaryNotRouted: {"pushing its write route has failed since", "haproxy lb1: connection refused"},
			},
		},
		{
			name: "a failed route push of an earlier epoch says nothing about the primary",
			b:    base().route(RouteCheck{Primary: "db2", Epoch: 6, Err: "haproxy lb1: connection refused", FailingSince: ago(time.Minute)}),
			want: []probSum{healthy},
		},
		{
			name: "semi-sync blocked, semi_sync_fallback never: commits stay blocked",
			b:    base().semi(func(s *SemiSyncState) { s.SourceClients, s.ShortSince = 0, ago(time.Hour) }),
			want: []probSum{{Code: SemiSyncBlocked, Instances: []string{"db1"}, Target: "db1", Action: ActionSemiSyncFallback, Blocked: []BlockKind{BlockDisabled}}},
			reasons: map[Code][]string{
				SemiSyncBlocked: {"commits block"},
			},
		},
		{
			name: "semi-sync blocked for less than semi_sync_fallback: waiting",
			b: base().semi(func(s *SemiSyncState) { s.SourceClients, s.ShortSince = 0, ago(10*time.Second) }).
				policy(func(p *Policy) { p.SemiSyncFallback = 30 * time.Second }),
			want: []probSum{{Code: SemiSyncBlocked, Instances: []string{"db1"}, Target: "db1", Action: ActionSemiSyncFallback, Blocked: []BlockKind{BlockWaiting}}},
		},
		{
			// Issue 9, defect 3: the fallback is Regent's decision, under
			// its policy.
			name: "semi-sync blocked for semi_sync_fallback: the leader falls back",
			b: base().semi(func(s *SemiSyncState) { s.SourceClients, s.ShortSince = 0, ago(31*time.Second) }).
				policy(func(p *Policy) { p.SemiSyncFallback = 30 * time.Second }),
			want: []probSum{{Code: SemiSyncBlocked, Instances: []string{"db1"}, Target: "db1", Action: ActionSemiSyncFallback, Actionable: true}},
		},
		{
			name: "semi-sync fell back to asynchronous by itself: repaired, not decided",
			b:    base().semi(func(s *SemiSyncState) { s.SourceActive, s.SourceClients = false, 0 }),
			want: []probSum{{Code: SemiSyncBlocked, Instances: []string{"db1"}, Target: "db1", Action: ActionSemiSyncFallback, Blocked: []BlockKind{BlockUnsafe}}},
			reasons: map[Code][]string{
				SemiSyncBlocked: {"fell back to asynchronous", "acknowledged writes may be lost"},
			},
		},
		{
			name: "degraded by the leader, no semi-sync replica back: restore waits",
			b: base().semi(func(s *SemiSyncState) { s.SourceEnabled, s.SourceActive, s.SourceClients = false, false, 0 }).
				io("db2", IONo).io("db3", IONo).
				state(func(s *ReplicatedState) { s.SemiSyncDegraded, s.SemiSyncDegradedSince = true, ago(time.Minute) }),
			want: []probSum{{Code: SemiSyncNotEnforced, Instances: []string{"db1"}, Target: "db1", Action: ActionConfigureSemiSync, Blocked: []BlockKind{BlockUnsafe}},
				{Code: ReplicaNotReplicating, Instances: []string{"db2"}}, {Code: ReplicaNotReplicating, Instances: []string{"db3"}}},
			reasons: map[Code][]string{
				SemiSyncNotEnforced: {"commits asynchronously since 11:59:00.000 by the leader's decision", "only 0 replica(s) receive"},
			},
		},
		{
			name: "degraded by the leader, a semi-sync replica receives again: restored",
			b: base().semi(func(s *SemiSyncState) { s.SourceEnabled, s.SourceActive, s.SourceClients = false, false, 0 }).
				state(func(s *ReplicatedState) { s.SemiSyncDegraded, s.SemiSyncDegradedSince = true, ago(time.Minute) }),
			want: []probSum{{Code: SemiSyncNotEnforced, Instances: []string{"db1"}, Target: "db1", Action: ActionConfigureSemiSync, Actionable: true}},
		},
		{
			name: "semi-sync not enforced: source side off",
			b:    base().semi(func(s *SemiSyncState) { *s = SemiSyncState{} }),
			want: []probSum{{Code: SemiSyncNotEnforced, Instances: []string{"db1"}, Target: "db1", Action: ActionConfigureSemiSync, Actionable: true}},
		},
		{
			name: "semi-sync wait point AFTER_COMMIT is not lossless",
			b:    base().semi(func(s *SemiSyncState) { s.WaitPoint = "AFTER_COMMIT" }),
			want: []probSum{{Code: SemiSyncNotEnforced, Instances: []string{"db1"}, Target: "db1", Action: ActionConfigureSemiSync, Actionable: true}},
			reasons: map[Code][]string{
				SemiSyncNotEnforced: {`"AFTER_COMMIT", not AFTER_SYNC`},
			},
		},
		{
			// Issue 9, defect 3: the server's default timeout (10 s) makes
			// commits asynchronous after a replica outage, silently.
			name: "semi-sync timeout short enough for the server to fall back by itself",
			b:    base().semi(func(s *SemiSyncState) { s.Timeout = 10 * time.Second }),
			want: []probSum{{Code: SemiSyncNotEnforced, Instances: []string{"db1"}, Target: "db1", Action: ActionConfigureSemiSync, Actionable: true}},
			reasons: map[Code][]string{
				SemiSyncNotEnforced: {"the semi-sync timeout is 10s", "falls back to asynchronous commits by itself"},
			},
		},
		{
			// Found by the kill-the-leader table under load: a replica left
			// out of a configure-semi-sync run never acknowledged, and the
			// lossless primary blocked every commit for good.
			name: "a replica receiving with its semi-sync side off: configured",
			b:    base().probes("db3", func(pr *Probe) { pr.SemiSync.ReplicaEnabled = false }),
			want: []probSum{{Code: SemiSyncNotEnforced, Instances: []string{"db1", "db3"}, Target: "db1", Action: ActionConfigureSemiSync, Actionable: true}},
			reasons: map[Code][]string{
				SemiSyncNotEnforced: {"replicas db3 receive from it with their semi-sync replica side off"},
			},
		},
		{
			name: "wait_no_slave off: asynchronous as soon as the replicas disconnect",
			b:    base().semi(func(s *SemiSyncState) { s.WaitNoReplica = false }),
			want: []probSum{{Code: SemiSyncNotEnforced, Instances: []string{"db1"}, Target: "db1", Action: ActionConfigureSemiSync, Actionable: true}},
			reasons: map[Code][]string{
				SemiSyncNotEnforced: {"wait_no_slave/wait_no_replica is OFF"},
			},
		},
		{
			name: "wait count differs from semi_sync_wait_for",
			b:    base().semi(func(s *SemiSyncState) { s.WaitCount = 2 }),
			want: []probSum{{Code: SemiSyncNotEnforced, Instances: []string{"db1"}, Target: "db1", Action: ActionConfigureSemiSync, Actionable: true}},
			reasons: map[Code][]string{
				SemiSyncNotEnforced: {"commits wait for 2 acknowledgement(s), semi_sync_wait_for is 1"},
			},
		},
		{
			name: "async durability does not look at semi-sync",
			b: base().semi(func(s *SemiSyncState) { *s = SemiSyncState{} }).
				policy(func(p *Policy) { p.Durability = DurabilityAsync }),
			want: []probSum{healthy},
		},
		{
			name: "errant transaction on a replica, judged live",
			b:    base().exec("db3", "p:1-100,r3:1-2").probes("db1", func(pr *Probe) { pr.ObservedAt = ago(100 * ms) }),
			want: []probSum{{Code: ErrantGTIDOnReplica, Instances: []string{"db3"}, Errant: "r3:1-2"}},
			reasons: map[Code][]string{
				ErrantGTIDOnReplica: {"db3 holds errant transactions r3:1-2", "comparing it with the primary"},
			},
		},
		{
			name: "replica ahead of an older primary probe is no errant alarm",
			b:    base().exec("db2", "p:1-101").probes("db2", func(pr *Probe) { pr.ObservedAt = ago(50 * ms) }),
			want: []probSum{healthy},
		},
		{
			name: "known errant carried after the primary died",
			b:    base().primaryGone(ago(3*time.Second)).exec("db2", "p:1-100,r2:1").knownErrant("db2", "r2:1"),
			want: []probSum{
				failoverTo("db3", "db1"),
				{Code: ErrantGTIDOnReplica, Instances: []string{"db2"}, Errant: "r2:1"},
			},
			reasons: map[Code][]string{
				ErrantGTIDOnReplica: {"found earlier"},
			},
		},
		{
			name: "replica points at a sibling: repoint",
			b:    base().source("db3", "db2"),
			want: []probSum{{Code: ReplicaPointsElsewhere, Instances: []string{"db3"}, Target: "db3", Action: ActionRepoint, Actionable: true}},
			reasons: map[Code][]string{
				ReplicaPointsElsewhere: {"replicates from db2, not from the primary db1"},
			},
		},
		{
			name: "replica source given as host:port is resolved",
			b:    base().source("db3", "10.0.0.1:3306"),
			want: []probSum{healthy},
		},
		{
			name: "replica points outside the cluster: reported, not touched",
			b:    base().source("db3", "10.9.9.9:3306"),
			want: []probSum{{Code: ReplicaPointsElsewhere, Instances: []string{"db3"}, Target: "db3", Action: ActionRepoint, Blocked: []BlockKind{BlockUnsafe}}},
			reasons: map[Code][]string{
				ReplicaPointsElsewhere: {`"10.9.9.9:3306", which is not an instance of this cluster`},
			},
		},
		{
			name: "replica points elsewhere and holds errant transactions: not repointed",
			b: base().source("db3", "db2").exec("db3", "p:1-100,r3:1").
				probes("db1", func(pr *Probe) { pr.ObservedAt = ago(100 * ms) }),
			want: []probSum{
				{Code: ErrantGTIDOnReplica, Instances: []string{"db3"}, Errant: "r3:1"},
				{Code: ReplicaPointsElsewhere, Instances: []string{"db3"}, Target: "db3", Action: ActionRepoint, Blocked: []BlockKind{BlockUnsafe}},
			},
		},
		{
			name: "former primary back read-only and not a replica: rejoin",
			b:    base().notReplica("db3"),
			want: []probSum{{Code: RejoinNeeded, Instances: []string{"db3"}, Target: "db3", Action: ActionRejoin, Actionable: true}},
		},
		{
			name: "rejoin needed with auto_rejoin off",
			b:    base().notReplica("db3").policy(func(p *Policy) { p.AutoRejoin = false }),
			want: []probSum{{Code: RejoinNeeded, Instances: []string{"db3"}, Target: "db3", Action: ActionRejoin, Blocked: []BlockKind{BlockDisabled}}},
			reasons: map[Code][]string{
				RejoinNeeded: {"regentctl rejoin db3"},
			},
		},
		{
			name: "IO thread stopped with an error",
			b: base().io("db2", IONo).replica("db2", func(rs *ReplicaStatus) {
				rs.LastIOError = "Got fatal error 1236 from master"
			}),
			want: []probSum{{Code: ReplicaNotReplicating, Instances: []string{"db2"}}},
			reasons: map[Code][]string{
				ReplicaNotReplicating: {"IO thread No: Got fatal error 1236"},
			},
		},
		{
			name: "IO thread stopped cleanly: an operator's stop is left alone",
			b:    base().io("db2", IONo),
			want: []probSum{{Code: ReplicaNotReplicating, Instances: []string{"db2"}}},
		},
		{
			// Seen in the chaos campaign (seed 20261574): a failover
			// stopped both IO threads, its leader was cut off, and the next
			// one's abort could not reach db2 to start it again.
			name: "IO thread an aborted operation left stopped: repoint under the primary",
			b:    base().io("db2", IONo).state(func(s *ReplicatedState) { s.StoppedIO = []string{"db2", "db3"} }),
			want: []probSum{
				{Code: ReplicaIOLeftStopped, Instances: []string{"db2"}, Target: "db2", Action: ActionRepoint, Actionable: true},
				{Code: ReplicaNotReplicating, Instances: []string{"db2"}},
			},
			reasons: map[Code][]string{
				ReplicaIOLeftStopped: {"db2's IO thread was stopped by the last operation", "repointed under the primary db1"},
			},
		},
		{
			// Seen in the chaos campaign (MySQL, seed 20262330): the IO
			// thread was in its reconnect loop (the primary's mysqld had
			// just been killed) when the failover stopped it, and
			// Last_IO_Error keeps the reconnect error after the stop.
			name: "IO thread left stopped with a stale reconnect error: repoint under the primary",
			b: base().io("db2", IONo).replica("db2", func(rs *ReplicaStatus) {
				rs.LastIOError = "Error reconnecting to source 'repl@10.0.0.1:3306'. This was attempt 1/10, with a delay of 1 seconds between attempts."
			}).state(func(s *ReplicatedState) { s.StoppedIO = []string{"db2"} }),
			want: []probSum{
				{Code: ReplicaIOLeftStopped, Instances: []string{"db2"}, Target: "db2", Action: ActionRepoint, Actionable: true},
				{Code: ReplicaNotReplicating, Instances: []string{"db2"}},
			},
		},
		{
			name: "IO thread left stopped with a stale reconnect error, by number: repoint under the primary",
			b: base().io("db2", IONo).replica("db2", func(rs *ReplicaStatus) {
				rs.LastIOErrno, rs.LastIOError = 2003, "error connecting to source 'repl@10.0.0.1:3306' - retry-time: 1 retries: 1 message: Can't connect to MySQL server on '10.0.0.1:3306' (111)"
			}).state(func(s *ReplicatedState) { s.StoppedIO = []string{"db2"} }),
			want: []probSum{
				{Code: ReplicaIOLeftStopped, Instances: []string{"db2"}, Target: "db2", Action: ActionRepoint, Actionable: true},
				{Code: ReplicaNotReplicating, Instances: []string{"db2"}},
			},
		},
		{
			name: "IO thread left stopped, then 1236 by number: only reported, whatever the text",
			b: base().io("db2", IONo).replica("db2", func(rs *ReplicaStatus) {
				rs.LastIOErrno, rs.LastIOError = 13114, "Got fatal error 1236 from source when reading data from binary log; reconnecting to source would not help"
			}).state(func(s *ReplicatedState) { s.StoppedIO = []string{"db2"} }),
			want: []probSum{{Code: ReplicaNotReplicating, Instances: []string{"db2"}}},
		},
		{
			name: "IO thread that gave up reconnecting, its source back: repoint, though no operation stopped it",
			b: base().io("db2", IONo).replica("db2", func(rs *ReplicaStatus) {
				rs.LastIOErrno, rs.LastIOError = 2003, "error connecting to source 'repl@10.0.0.1:3306' - retry-time: 1 retries: 10 message: Can't connect to MySQL server on '10.0.0.1:3306' (111)"
			}),
			want: []probSum{
				{Code: ReplicaIOLeftStopped, Instances: []string{"db2"}, Target: "db2", Action: ActionRepoint, Actionable: true},
				{Code: ReplicaNotReplicating, Instances: []string{"db2"}},
			},
			reasons: map[Code][]string{ReplicaIOLeftStopped: {"stopped by itself after giving up reconnecting"}},
		},
		{
			name: "IO thread stopped with no error and no operation that stopped it: an operator's, only reported",
			b:    base().io("db2", IONo),
			want: []probSum{{Code: ReplicaNotReplicating, Instances: []string{"db2"}}},
		},
		{
			name: "IO thread left stopped, but it failed since: only reported",
			b: base().io("db2", IONo).replica("db2", func(rs *ReplicaStatus) { rs.LastIOError = "Got fatal error 1236 from master" }).
				state(func(s *ReplicatedState) { s.StoppedIO = []string{"db2"} }),
			want: []probSum{{Code: ReplicaNotReplicating, Instances: []string{"db2"}}},
		},
		{
			name: "IO thread left stopped while an operation runs: that operation's business",
			b: base().io("db2", IONo).state(func(s *ReplicatedState) {
				s.StoppedIO = []string{"db2"}
				s.Operation = Operation{Kind: OpRejoin, ID: "op-9", StartedAt: s.AntiFlapUntil, Target: "db3"}
			}),
			want: []probSum{{Code: ReplicaNotReplicating, Instances: []string{"db2"}}},
		},
		{
			name: "broken SQL thread",
			b:    base().sqlStopped("db3", "Error 'Duplicate entry' on query"),
			want: []probSum{{Code: ReplicaNotReplicating, Instances: []string{"db3"}}},
			reasons: map[Code][]string{
				ReplicaNotReplicating: {"SQL thread stopped: Error 'Duplicate entry'", "no failover candidate"},
			},
		},
		{
			name: "replica unreachable",
			b:    base().down("db3", ClassRefused, ago(time.Minute)),
			want: []probSum{{Code: ReplicaUnreachable, Instances: []string{"db3"}}},
			reasons: map[Code][]string{
				ReplicaUnreachable: {"unreachable from the leader (a2): refused since 11:59:00.000"},
			},
		},
		{
			name: "replica lagging",
			b:    base().lag("db2", 45*time.Second),
			want: []probSum{{Code: ReplicaLagging, Instances: []string{"db2"}}},
			reasons: map[Code][]string{
				ReplicaLagging: {"lags 45s, more than max_lag_on_failover 10s"},
			},
		},
		{
			name: "delayed replica lagging by its delay is normal",
			b:    base().delay("db3", time.Hour).lag("db3", time.Hour+time.Second),
			want: []probSum{healthy},
		},
		{
			name: "delayed replica lagging beyond its delay",
			b:    base().delay("db3", time.Hour).lag("db3", 2*time.Hour),
			want: []probSum{{Code: ReplicaLagging, Instances: []string{"db3"}}},
			reasons: map[Code][]string{
				ReplicaLagging: {"more than its SQL_Delay 1h0m0s"},
			},
		},
		{
			name: "quarantined instance is reported",
			b:    base().notReplica("db3").quarantine("db3", "errant transactions r3:1"),
			want: []probSum{{Code: InstanceQuarantined, Instances: []string{"db3"}}},
			reasons: map[Code][]string{
				InstanceQuarantined: {"db3 is quarantined: errant transactions r3:1", "regentctl rejoin db3"},
			},
		},
		{
			name: "the old primary a failover replaced, still down: informational, not a broken replica",
			b:    afterFailover().inst("db1", func(in *Instance) { in.LastSeen.Replica = nil }),
			want: []probSum{{Code: FormerPrimaryUnreachable, Instances: []string{"db1"}}, {Code: Healthy, Instances: []string{"db2"}}},
			reasons: map[Code][]string{
				FormerPrimaryUnreachable: {"db1, the primary the last failover replaced, is", "rejoined as a replica of db2 when it returns"},
			},
		},
		{
			name: "the old primary, rejoined and down again, is a replica down",
			b:    afterFailover().inst("db1", func(in *Instance) { in.LastSeen.Replica = &ReplicaStatus{Source: "db2"} }),
			want: []probSum{{Code: ReplicaUnreachable, Instances: []string{"db1"}}},
		},
		{
			name: "replica in maintenance: reported, and its replica problems quiet",
			b:    base().down("db3", ClassRefused, ago(time.Minute)).maintenance("db3", t0.Add(time.Hour)),
			want: []probSum{{Code: InstanceInMaintenance, Instances: []string{"db3"}}, healthy},
			reasons: map[Code][]string{
				InstanceInMaintenance: {"db3 is in maintenance until", "by alice: kernel upgrade", "never promoted", "regentctl maintenance end db3"},
			},
		},
		{
			name: "maintenance ended by itself: the replica's problems are reported again",
			b:    base().down("db3", ClassRefused, ago(time.Minute)).maintenance("db3", t0),
			want: []probSum{{Code: ReplicaUnreachable, Instances: []string{"db3"}}},
		},
		{
			name: "no primary recorded, one writable instance",
			b:    base().state(func(s *ReplicatedState) { s.Primary = "" }),
			want: []probSum{{Code: NoPrimary, Instances: []string{"db1"}}},
			reasons: map[Code][]string{
				NoPrimary: {"db1 is the only writable instance", "regentctl failover --to db1"},
			},
		},
		{
			name: "recorded primary is not configured",
			b:    base().state(func(s *ReplicatedState) { s.Primary = "db9" }),
			want: []probSum{{Code: NoPrimary, Instances: []string{"db1"}}},
			reasons: map[Code][]string{
				NoPrimary: {`"db9" is not an instance`},
			},
		},
		{
			name: "invalid policy",
			b:    base().policy(func(p *Policy) { p.FenceAfter = 5 * time.Second }),
			want: []probSum{{Code: InvalidInput, Instances: []string{}}},
			reasons: map[Code][]string{
				InvalidInput: {"fence_after (5s) must be shorter than lease_timeout (3s)"},
			},
		},
		{
			name: "invalid view: leader without report",
			b:    base().state(func(*ReplicatedState) {}).policy(func(*Policy) {}),
			want: []probSum{{Code: InvalidInput, Instances: []string{}}},
			reasons: map[Code][]string{
				InvalidInput: {`leader "a9" has no agent report`},
			},
		},
		{
			name: "several problems come in priority order",
			b:    base().writable("db3", true).lag("db2", time.Minute).quarantine("db3", "errant r3:1"),
			want: []probSum{
				{Code: TwoWritablePrimaries, Instances: []string{"db3", "db1"}, Target: "db3", Action: ActionFence, Actionable: true},
				{Code: ReplicaLagging, Instances: []string{"db2"}},
				{Code: InstanceQuarantined, Instances: []string{"db3"}},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, p := tc.b.build()
			if tc.name == "invalid view: leader without report" {
				v.Leader = "a9"
			}
			got := Analyze(v, p)
			check(t, "problems", tc.want, summarize(got))
			for code, subs := range tc.reasons {
				found := false
				for _, pr := range got {
					if pr.Code != code {
						continue
					}
					found = true
					text := pr.Reason
					for _, b := range pr.Blockers {
						text += " | " + b.Reason
					}
					mustContain(t, string(code), text, subs...)
				}
				if !found {
					t.Errorf("no %s problem to check reasons on", code)
				}
			}
			for _, pr := range got {
				if pr.Reason == "" {
					t.Errorf("%s has no reason", pr.Code)
				}
				if pr.Action != ActionNone && !pr.Actionable && len(pr.Blockers) == 0 {
					t.Errorf("%s: silent non-action: not actionable and no blocker", pr.Code)
				}
				for _, b := range pr.Blockers {
					if strings.TrimSpace(b.Reason) == "" {
						t.Errorf("%s: blocker %s without a reason", pr.Code, b.Kind)
					}
				}
			}
		})
	}
}

// Analyze must be deterministic: map order never shows.
func TestAnalyzeDeterministic(t *testing.T) {
	v, p := base().writable("db3", true).lag("db2", time.Minute).build()
	first := summarize(Analyze(v, p))
	for i := 0; i < 50; i++ {
		check(t, "run", first, summarize(Analyze(v, p)))
	}
}

func TestProblemKindsTable(t *testing.T) {
	kinds := ProblemKinds()
	seen := map[Code]bool{}
	last := -1
	for _, k := range kinds {
		if seen[k.Code] {
			t.Errorf("duplicate code %s", k.Code)
		}
		seen[k.Code] = true
		if k.Priority <= last {
			t.Errorf("%s: priority %d not after %d: the table must be in priority order", k.Code, k.Priority, last)
		}
		last = k.Priority
		if k.Description == "" {
			t.Errorf("%s has no description", k.Code)
		}
	}
	for _, c := range []Code{DeadPrimary, DeadPrimaryAndSomeReplicas, UnreachablePrimary, PrimaryNotWritable, PrimaryIsolated,
		TwoWritablePrimaries, ReplicaNotReplicating, ReplicaLagging, ReplicaPointsElsewhere, ErrantGTIDOnReplica,
		SemiSyncBlocked, NoPrimary, Healthy} {
		if !seen[c] {
			t.Errorf("the issue's problem %s is missing from the table", c)
		}
	}
}

func TestErrantGTIDsAndCarry(t *testing.T) {
	cases := []struct {
		name  string
		b     *B
		live  map[string]string
		carry map[string]string
	}{
		{
			name:  "clean replicas judged clean",
			b:     base().probes("db1", func(pr *Probe) { pr.ObservedAt = ago(100 * ms) }),
			live:  map[string]string{"db2": "<nil>", "db3": "<nil>"},
			carry: map[string]string{"db1": "<nil>", "db2": "<nil>", "db3": "<nil>"},
		},
		{
			name:  "primary probed before the replicas: no judgement, carried value kept",
			b:     base().probes("db1", func(pr *Probe) { pr.ObservedAt = ago(300 * ms) }).knownErrant("db3", "r3:1"),
			live:  map[string]string{},
			carry: map[string]string{"db1": "<nil>", "db2": "<nil>", "db3": "r3:1"},
		},
		{
			name: "errant found by one agent's ordered pair",
			b: base().exec("db3", "p:1-100,r3:1").probes("db1", func(pr *Probe) { pr.ObservedAt = ago(300 * ms) }).
				probeBy("a1", "db1", func(pr *Probe) { pr.ObservedAt = ago(100 * ms) }),
			live:  map[string]string{"db2": "<nil>", "db3": "r3:1"},
			carry: map[string]string{"db1": "<nil>", "db2": "<nil>", "db3": "r3:1"},
		},
		{
			name:  "repaired replica forgets its carried errant",
			b:     base().knownErrant("db3", "r3:1").probes("db1", func(pr *Probe) { pr.ObservedAt = ago(100 * ms) }),
			live:  map[string]string{"db2": "<nil>", "db3": "<nil>"},
			carry: map[string]string{"db1": "<nil>", "db2": "<nil>", "db3": "<nil>"},
		},
		{
			// a1 found r3:1 on db3, then lost the primary; a2's last pair
			// was taken before the errant write reached db3. That pair
			// says nothing about r3:1 and must not clear a1's finding
			// (a failover then promoted the errant replica).
			name: "a stale clean pair from another agent does not clear what one agent found",
			b: base().exec("db3", "p:1-100,r3:1").knownErrantBy("a1", "db3", "r3:1", ago(200*ms)).
				probeBy("a1", "db1", func(pr *Probe) { pr.Reachable, pr.ObservedAt = false, ago(50*ms) }).
				probeBy("a3", "db1", func(pr *Probe) { pr.Reachable, pr.ObservedAt = false, ago(50*ms) }).
				probeBy("a2", "db1", func(pr *Probe) { pr.ObservedAt = ago(200 * ms) }).
				probeBy("a2", "db3", func(pr *Probe) { pr.Executed, pr.ObservedAt = gs("p:1-100"), ago(250*ms) }),
			live:  map[string]string{"db2": "<nil>", "db3": "<nil>"},
			carry: map[string]string{"db1": "<nil>", "db2": "<nil>", "db3": "r3:1"},
		},
		{
			name:  "dead primary: nothing judged, knowledge kept",
			b:     base().primaryGone(ago(time.Second)).knownErrant("db2", "r2:1-3"),
			live:  map[string]string{},
			carry: map[string]string{"db1": "<nil>", "db2": "r2:1-3", "db3": "<nil>"},
		},
	}
	str := func(m map[string]GTIDSet) map[string]string {
		out := map[string]string{}
		for k, s := range m {
			if s == nil {
				out[k] = "<nil>"
			} else {
				out[k] = s.String()
			}
		}
		return out
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := tc.b.build()
			check(t, "live", tc.live, str(ErrantGTIDs(v)))
			carried := CarryErrant(v)
			known := map[string]GTIDSet{}
			for n := range v.Instances {
				known[n] = unionJudged(carried[n])
			}
			check(t, "carry", tc.carry, str(known))
		})
	}
}

// afterFailover: db2 is the primary (its agent holds the lease, lossless
// semi-sync on), db3 replicates from it, and db1, the primary the failover
// replaced, is down.
func afterFailover() *B {
	return base().state(func(s *ReplicatedState) { s.Primary, s.FormerPrimary = "db2", "db1" }).
		agent("a2", func(r *AgentReport) { r.LeaseHeld = true }).
		notReplica("db2").writable("db2", true).probes("db2", func(pr *Probe) { pr.SemiSync = healthyProbe(false).SemiSync }).
		source("db3", "db2").down("db1", ClassRefused, ago(time.Minute))
}
