package chaos

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/integration/netlab"
)

// category groups faults that cannot overlap on one host: a second fault of
// the same category on a busy host is skipped (and recorded so), so that a
// heal never undoes another fault's effect.
type category int

const (
	catProcess category = iota // the host's processes: kill, freeze
	catNet                     // iptables cuts
	catLink                    // the shaped link
)

func categoryOf(k Kind) category {
	switch k {
	case Isolate, CutFromPeers, RaftOnly, OneWay:
		return catNet
	case Lossy:
		return catLink
	}
	return catProcess
}

type action struct {
	at time.Time
	do func()
}

// strike is a LeaderMidOp watcher's report: host is the leader to kill (nil
// when the watcher gave up).
type strike struct {
	step Step
	host *netlab.Host
	op   string
}

// nemesis carries the schedule out in the calling (test) goroutine: every
// fault is injected and healed here, so that a harness failure fails the
// test where it may. It returns once every fault is healed and everything
// was healed once more for good measure.
func (x *run) nemesis(ctx context.Context) {
	busy := map[string]map[category]bool{}
	var queue []action
	// Commands (switchovers, failovers) run beside the faults; the schedule
	// ends only once each has returned, so that an operation one started
	// is running (and waited for) when convergence is judged.
	var commands sync.WaitGroup
	strikes := make(chan strike, len(x.sch.Steps))
	armed := 0
	end := x.start.Add(x.sch.Length)
	for _, st := range x.sch.Steps {
		queue = append(queue, action{at: x.start.Add(st.At), do: func() {
			switch st.Kind {
			case LeaderMidOp:
				armed++
				go x.watchForStrike(ctx, st, end, strikes)
			case Switchover, Failover:
				commands.Go(func() { x.command(ctx, st) })
			default:
				h := x.resolve(ctx, st.Target, st.Pick)
				cat := categoryOf(st.Kind)
				if busy[h.Name] == nil {
					busy[h.Name] = map[category]bool{}
				}
				if busy[h.Name][cat] {
					x.event("skipped", "%s on %s: the host is under another fault of its kind", st, h.Name)
					return
				}
				heal, ok := x.inject(st, h)
				if !ok {
					return
				}
				busy[h.Name][cat] = true
				queue = append(queue, action{at: time.Now().Add(st.For), do: func() {
					heal()
					busy[h.Name][cat] = false
				}})
			}
		}})
	}
	for len(queue) > 0 || armed > 0 {
		slices.SortStableFunc(queue, func(a, b action) int { return a.at.Compare(b.at) })
		var timer <-chan time.Time
		if len(queue) > 0 {
			timer = time.After(time.Until(queue[0].at))
		}
		select {
		case <-ctx.Done():
			return
		case <-timer:
			next := queue[0]
			queue = queue[1:]
			next.do()
		case s := <-strikes:
			armed--
			if s.host == nil {
				x.event("no-strike", "%s: no operation reached step %s in time", s.step, s.step.AfterStep)
				continue
			}
			h := s.host
			if busy[h.Name] == nil {
				busy[h.Name] = map[category]bool{}
			}
			// Odd picks partition the leader's host from every other host
			// instead of killing its agent.
			partition := s.step.Pick%2 == 1
			cat := catProcess
			if partition {
				cat = catNet
			}
			if busy[h.Name][cat] || (!partition && h.Agent.PID() == 0) {
				x.event("skipped", "%s: leader %s is under another fault", s.step, h.Name)
				continue
			}
			var heal func()
			if partition {
				x.r.CutOff(h, x.r.Except(h, x.r.Root)...)
				x.event("fault", "%s: cut leader %s off from every other host after operation %s's step %s", s.step, h.Name, s.op, s.step.AfterStep)
				heal = func() { x.r.Heal(h); x.event("heal", "healed %s's cut", h.Name) }
			} else {
				x.r.KillAgent(h)
				x.event("fault", "%s: killed leader %s's agent after operation %s's step %s", s.step, h.Name, s.op, s.step.AfterStep)
				heal = func() { x.r.RestartAgent(h); x.event("heal", "restarted %s's agent", h.Name) }
			}
			x.apply(LeaderMidOp)
			busy[h.Name][cat] = true
			queue = append(queue, action{at: time.Now().Add(s.step.For), do: func() {
				heal()
				busy[h.Name][cat] = false
			}})
		}
	}
	commands.Wait()
	x.healAll()
}

// inject applies a fault to h and returns its heal; ok is false (and an
// event says why) when the fault does not apply now.
func (x *run) inject(st Step, h *netlab.Host) (heal func(), ok bool) {
	r := x.r
	peers := slices.DeleteFunc(slices.Clone(r.DBHosts), func(o *netlab.Host) bool { return o == h })
	skip := func(why string) (func(), bool) {
		x.event("skipped", "%s on %s: %s", st, h.Name, why)
		return nil, false
	}
	var undo func()
	switch st.Kind {
	case KillMySQL:
		if h.DB.Exited() {
			return skip("mysqld is not running")
		}
		r.KillMySQL(h)
		undo = func() {
			if h.DB.Exited() {
				r.RestartMySQL(h)
			}
		}
	case FreezeMySQL:
		if h.DB.Exited() {
			return skip("mysqld is not running")
		}
		r.FreezeMySQL(h)
		undo = func() {
			if !h.DB.Exited() {
				r.ThawMySQL(h)
			}
		}
	case FreezeAgent:
		if h.Agent.PID() == 0 {
			return skip("the agent is not running")
		}
		r.FreezeAgent(h)
		undo = func() { r.ThawAgent(h) }
	case KillAgent:
		if h.Agent.PID() == 0 {
			return skip("the agent is not running")
		}
		r.KillAgent(h)
		undo = func() { r.RestartAgent(h) }
	case FreezeHost:
		if h.DB.Exited() && h.Agent.PID() == 0 {
			return skip("nothing runs on the host")
		}
		r.FreezeHost(h)
		undo = func() { r.ThawHost(h) }
	case Isolate:
		r.CutOff(h, r.Except(h, r.Root)...)
		undo = func() { r.Heal(h) }
	case CutFromPeers:
		r.CutOff(h, peers...)
		undo = func() { r.Heal(h) }
	case RaftOnly:
		r.CutOffWith(h, netlab.Cut{Ports: []int{netlab.RaftPort}}, peers...)
		undo = func() { r.Heal(h) }
	case OneWay:
		r.CutOffWith(h, netlab.Cut{OneWay: true}, append(peers, r.LB)...)
		undo = func() { r.Heal(h) }
	case Lossy:
		r.Netem(h, st.Loss, st.Delay, st.Jitter)
		undo = func() { r.ClearNetem(h) }
	default:
		x.t.Fatalf("chaos: no injector for %s", st.Kind)
	}
	x.event("fault", "%s on %s", st, h.Name)
	x.apply(st.Kind)
	return func() {
		undo()
		x.event("heal", "%s on %s", st.Kind, h.Name)
	}, true
}

// healAll undoes whatever may be left on every host, restarts stopped
// agents, and restarts any mysqld that is not running (one its agent's
// fence stopped, as its service manager would).
func (x *run) healAll() {
	r := x.r
	for _, h := range r.DBHosts {
		r.ThawHost(h)
		r.Heal(h)
		r.ClearNetem(h)
		if h.Agent.PID() == 0 {
			r.RestartAgent(h)
		}
		if h.DB.Exited() {
			r.RestartMySQL(h)
			x.event("heal", "restarted %s's mysqld, found stopped", h.Name)
		}
	}
	x.event("heal-all", "every fault healed")
}

// resolve picks the host a step targets, as things stand now.
func (x *run) resolve(ctx context.Context, tg Target, pick int) *netlab.Host {
	r := x.r
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	primary := ""
	leader, c, err := r.Leader(qctx)
	if err == nil {
		primary = c.Primary
	}
	if primary == "" {
		x.mu.Lock()
		primary = x.writable
		x.mu.Unlock()
	}
	switch tg {
	case TargetLeader:
		if leader != nil {
			return leader
		}
	case TargetReplica:
		var others []*netlab.Host
		for _, h := range r.DBHosts {
			if h.Name != primary {
				others = append(others, h)
			}
		}
		return others[pick%len(others)]
	}
	return r.Host(primary)
}

// command issues a switchover or a manual failover through any agent and
// records what Regent answered.
func (x *run) command(ctx context.Context, st Step) {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	to := ""
	if st.Pick >= 0 {
		to = x.resolve(qctx, TargetReplica, st.Pick).Name
	}
	c, err := api.NewClient(api.ClientConfig{Endpoints: []string{"https://" + x.r.DBHosts[0].Agent.APIAddr,
		"https://" + x.r.DBHosts[1].Agent.APIAddr, "https://" + x.r.DBHosts[2].Agent.APIAddr},
		Token: x.r.AdminToken, TLS: x.r.TLS.Clone(), Timeout: 5 * time.Second, UserAgent: "regent-chaos"})
	if err != nil {
		x.event("command", "%s: %v", st, err)
		return
	}
	x.apply(st.Kind)
	var op api.Operation
	if st.Kind == Switchover {
		op, err = c.Switchover(qctx, netlab.ClusterName, api.SwitchoverRequest{To: to})
	} else {
		op, err = c.Failover(qctx, netlab.ClusterName, api.FailoverRequest{To: to})
	}
	if err != nil {
		x.event("command", "%s (to %q): refused: %v", st, to, err)
		return
	}
	x.event("command", "%s (to %q): operation %s, %s", st, to, op.ID, op.Result)
}

// stepKind is the kind of a recorded step: its name without the instances
// it acted on ("promote db2" → "promote"); an undo step has none of the
// kinds a strike waits for.
func stepKind(name string) string {
	kind, _, _ := strings.Cut(name, " ")
	return kind
}

// watchForStrike follows the leader's operations until one has completed
// step st.AfterStep, then reports the leader to kill; it gives up at end.
func (x *run) watchForStrike(ctx context.Context, st Step, end time.Time, out chan<- strike) {
	for time.Now().Before(end) && ctx.Err() == nil {
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		h, c, err := x.r.Leader(qctx)
		if err == nil && c.Operation != nil {
			op, err := x.r.API(h).Operation(qctx, netlab.ClusterName, c.Operation.ID)
			if err == nil {
				for _, s := range op.Steps {
					if stepKind(s.Name) == st.AfterStep && s.Result == api.ResultSuccess {
						cancel()
						out <- strike{step: st, host: h, op: op.ID}
						return
					}
				}
			}
		}
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	out <- strike{step: st}
}
