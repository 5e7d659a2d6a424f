package chaos

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Kind is a fault or a command of the nemesis.
type Kind string

// The nemesis's repertoire (issue 12). Faults last Step.For and are healed
// at its end (a killed process is restarted); commands are issued once.
const (
	KillMySQL    Kind = "kill-mysqld"    // kill -9, restarted after For
	FreezeMySQL  Kind = "freeze-mysqld"  // SIGSTOP, SIGCONT after For
	FreezeAgent  Kind = "freeze-agent"   // SIGSTOP of the regent agent
	KillAgent    Kind = "kill-agent"     // kill -9 of the agent, restarted after For
	FreezeHost   Kind = "freeze-host"    // every process of the host stopped
	Isolate      Kind = "isolate"        // the host cut off from every other host, HAProxy included
	CutFromPeers Kind = "cut-from-peers" // cut off from the other database hosts, still reached by HAProxy
	RaftOnly     Kind = "raft-only"      // only the agents' Raft traffic (and lease datagrams) to and from the host dropped
	OneWay       Kind = "one-way"        // the host's packets to the other database hosts dropped; theirs still reach it
	Lossy        Kind = "lossy-link"     // loss, delay and jitter on the host's link
	LeaderMidOp  Kind = "leader-mid-op"  // the Raft leader killed (even Pick) or cut off (odd) in the middle of the next operation
	Switchover   Kind = "switchover"     // a planned switchover, to a random replica or Regent's choice
	Failover     Kind = "manual-failover"
)

// Kinds lists every kind the generator draws from.
var Kinds = []Kind{KillMySQL, FreezeMySQL, FreezeAgent, KillAgent, FreezeHost, Isolate, CutFromPeers, RaftOnly, OneWay, Lossy, LeaderMidOp, Switchover, Failover}

// Target says which host a step hits, resolved when the step runs.
type Target string

const (
	TargetPrimary Target = "primary" // the host of Regent's current primary
	TargetReplica Target = "replica" // a random other database host
	TargetLeader  Target = "leader"  // the host of the current Raft leader
)

// Step is one action of a schedule.
type Step struct {
	// At is when the step starts, from the schedule's start.
	At     time.Duration `json:"at"`
	Kind   Kind          `json:"kind"`
	Target Target        `json:"target,omitempty"`
	// For is how long a fault lasts before it is healed.
	For time.Duration `json:"for,omitempty"`
	// Loss (percent), Delay and Jitter shape a lossy link.
	Loss   float64       `json:"loss,omitempty"`
	Delay  time.Duration `json:"delay,omitempty"`
	Jitter time.Duration `json:"jitter,omitempty"`
	// Pick chooses among candidates (a replica, a switchover's target)
	// when the step runs: the n-th, modulo their count; -1 lets Regent
	// choose a switchover's target.
	Pick int `json:"pick"`
	// AfterStep is the operation step after which LeaderMidOp strikes.
	AfterStep string `json:"after_step,omitempty"`
}

func (s Step) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "+%-6s %s", s.At.Round(time.Millisecond), s.Kind)
	if s.Target != "" {
		fmt.Fprintf(&b, " %s", s.Target)
		if s.Target == TargetReplica {
			fmt.Fprintf(&b, "#%d", s.Pick)
		}
	}
	if s.Kind == Lossy {
		fmt.Fprintf(&b, " loss %.0f%% delay %v jitter %v", s.Loss, s.Delay, s.Jitter)
	}
	if s.AfterStep != "" {
		how := "killed"
		if s.Pick%2 == 1 {
			how = "cut off"
		}
		fmt.Fprintf(&b, " %s after step %s", how, s.AfterStep)
	}
	if (s.Kind == Switchover || s.Kind == Failover) && s.Pick >= 0 {
		fmt.Fprintf(&b, " to replica #%d", s.Pick)
	}
	if s.For > 0 {
		fmt.Fprintf(&b, " for %v", s.For.Round(time.Millisecond))
	}
	return b.String()
}

// Schedule is one seeded sequence of steps. Every fault is healed by Length
// at the latest; the runner heals everything again there.
type Schedule struct {
	Seed   uint64        `json:"seed"`
	Steps  []Step        `json:"steps"`
	Length time.Duration `json:"length"`
}

func (s Schedule) String() string {
	lines := make([]string, 0, len(s.Steps)+1)
	lines = append(lines, fmt.Sprintf("schedule seed %d, %d steps, healed by +%v", s.Seed, len(s.Steps), s.Length))
	for _, st := range s.Steps {
		lines = append(lines, "  "+st.String())
	}
	return strings.Join(lines, "\n")
}

// Kinds returns the kinds the schedule uses, each once, in Kinds' order.
func (s Schedule) Kinds() []Kind {
	var out []Kind
	for _, k := range Kinds {
		for _, st := range s.Steps {
			if st.Kind == k {
				out = append(out, k)
				break
			}
		}
	}
	return out
}

// GenConfig bounds generated schedules.
type GenConfig struct {
	// Window is the span over which steps start.
	Window time.Duration
	// MaxSteps is the most steps a schedule has (at least one).
	MaxSteps int
	// MinFor and MaxFor bound a fault's duration.
	MinFor, MaxFor time.Duration
}

// DefaultGen is what `make chaos` and the short campaign in `make test` use:
// up to four overlapping steps over 12 s, faults of 0.3–6 s (long enough to
// outlast failure_timeout, short enough to heal mid-operation).
var DefaultGen = GenConfig{Window: 12 * time.Second, MaxSteps: 4, MinFor: 300 * time.Millisecond, MaxFor: 6 * time.Second}

// opSteps are the operation steps LeaderMidOp may strike after (both
// failover and switchover run them).
var opSteps = []string{"record-intent", "fence-old-primary", "stop-io-threads", "catch-up", "promote", "route", "commit-epoch", "repoint"}

// Generate draws a schedule from seed alone: the same seed gives the same
// schedule on any machine.
func Generate(seed uint64, cfg GenConfig) Schedule {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	n := 1 + rng.IntN(max(cfg.MaxSteps, 1))
	sch := Schedule{Seed: seed}
	for range n {
		st := Step{
			At:   time.Duration(rng.Int64N(int64(cfg.Window))).Truncate(10 * time.Millisecond),
			Kind: Kinds[rng.IntN(len(Kinds))],
			Pick: rng.IntN(4),
		}
		switch st.Kind {
		case Switchover, Failover:
			if st.Kind == Switchover && rng.IntN(3) == 0 {
				st.Pick = -1
			}
		case LeaderMidOp:
			st.AfterStep = opSteps[rng.IntN(len(opSteps))]
			st.For = cfg.MaxFor
		default:
			st.Target = []Target{TargetPrimary, TargetPrimary, TargetReplica, TargetLeader}[rng.IntN(4)]
			st.For = (cfg.MinFor + time.Duration(rng.Int64N(int64(cfg.MaxFor-cfg.MinFor)))).Round(10 * time.Millisecond)
		}
		if st.Kind == Lossy {
			st.Loss = float64(5 * (1 + rng.IntN(8))) // 5–40 %
			st.Delay = time.Duration(rng.IntN(200)) * time.Millisecond
			st.Jitter = time.Duration(rng.IntN(200)) * time.Millisecond
		}
		sch.Steps = append(sch.Steps, st)
	}
	slices.SortStableFunc(sch.Steps, func(a, b Step) int { return cmp.Compare(a.At, b.At) })
	for _, st := range sch.Steps {
		sch.Length = max(sch.Length, st.At+st.For)
	}
	return sch
}
