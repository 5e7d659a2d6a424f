package netlab

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/regentdb/regent/topology/mysqltest"
)

// Except returns the lab's hosts and Root but those in keep: CutOff(h,
// l.Except(h, lb, l.Root)...) cuts h off from everyone but HAProxy and the
// test process.
func (l *Lab) Except(keep ...*Host) []*Host {
	var out []*Host
	for _, h := range append([]*Host{l.Root}, l.Hosts()...) {
		kept := false
		for _, k := range keep {
			kept = kept || k == h
		}
		if !kept {
			out = append(out, h)
		}
	}
	return out
}

// CutOff silences h's traffic with each host of from (Root included), both
// ways: iptables DROP rules in h's namespace for packets from and to their
// addresses. Nothing answers, no RST, no ICMP: connections hang until their
// timeouts, as across a broken switch. Other hosts still reach h. The rules
// are committed at once (one iptables-restore), so that the cut is whole
// from the moment CutOff returns and never partial before it.
func (l *Lab) CutOff(h *Host, from ...*Host) {
	l.t.Helper()
	l.CutOffWith(h, Cut{}, from...)
}

// Cut narrows what CutOffWith drops.
type Cut struct {
	// OneWay drops only h's packets to the peers: theirs still reach h
	// (and TCP handshakes from either side fail, as through a one-way
	// broken link).
	OneWay bool
	// Ports, when not empty, limits the cut to TCP and UDP traffic to or
	// from these ports of either side (for example the agents' Raft port).
	Ports []int
}

func (c Cut) String() string {
	s := "both ways"
	if c.OneWay {
		s = "one way (its packets out)"
	}
	if len(c.Ports) > 0 {
		s += fmt.Sprintf(", ports %v", c.Ports)
	}
	return s
}

// CutOffWith is CutOff narrowed by c. Heal undoes it.
func (l *Lab) CutOffWith(h *Host, c Cut, from ...*Host) {
	l.t.Helper()
	l.mustBeHost(h)
	var rules strings.Builder
	rules.WriteString("*filter\n")
	for _, f := range from {
		if f == h {
			continue
		}
		dirs := []string{"-s", "-d"}
		if c.OneWay {
			dirs = []string{"-d"}
		}
		for _, dir := range dirs {
			if len(c.Ports) == 0 {
				fmt.Fprintf(&rules, "-A %s %s %s -j DROP\n", cutChain, dir, f.IP)
				continue
			}
			for _, port := range c.Ports {
				for _, proto := range []string{"tcp", "udp"} {
					for _, side := range []string{"--sport", "--dport"} {
						fmt.Fprintf(&rules, "-A %s %s %s -p %s %s %d -j DROP\n", cutChain, dir, f.IP, proto, side, port)
					}
				}
			}
		}
	}
	rules.WriteString("COMMIT\n")
	ctx, cancel := context.WithTimeout(l.ctx, cmdTimeout)
	defer cancel()
	cmd := h.Command(ctx, "iptables-restore", "--noflush")
	cmd.Stdin = strings.NewReader(rules.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("netlab: iptables-restore --noflush (in %s): %v: %s\n%s", h.Name, err, out, rules.String())
	}
}

// Heal undoes CutOff: h's cuts from the given hosts, or all of h's cuts when
// none is given (only the latter undoes a CutOffWith with ports).
func (l *Lab) Heal(h *Host, from ...*Host) {
	l.t.Helper()
	l.mustBeHost(h)
	if len(from) == 0 {
		l.mustRun(h, "iptables", "-w", "-F", cutChain)
		return
	}
	for _, f := range from {
		// Each CutOff added one pair of rules per peer; delete them all.
		for _, dir := range []string{"-s", "-d"} {
			for {
				if _, err := h.Run(l.ctx, "iptables", "-w", "-D", cutChain, dir, f.IP, "-j", "DROP"); err != nil {
					break // no such rule (left)
				}
			}
		}
	}
}

// Netem degrades every packet into and out of h: each is lost with
// lossPercent probability and delayed by delay ± jitter (uniform), in each
// direction, so a round trip between h and a healthy host takes 2×delay
// more. A second call replaces the figures. See shapedLink for how (the
// kernels here lack tc's netem).
func (l *Lab) Netem(h *Host, lossPercent float64, delay, jitter time.Duration) {
	l.t.Helper()
	l.mustBeHost(h)
	if lossPercent < 0 || lossPercent > 100 || delay < 0 || jitter < 0 {
		l.t.Fatalf("netlab: Netem(%s, %v%%, %v, %v): out of range", h.Name, lossPercent, delay, jitter)
	}
	if h.link == nil {
		s, err := l.startLink(h)
		if err != nil {
			l.t.Fatalf("netlab: emulating %s's link: %v", h.Name, err)
		}
		h.link = s
	}
	h.link.set(lossPercent, delay, jitter)
}

// ClearNetem undoes Netem: h's link is direct again.
func (l *Lab) ClearNetem(h *Host) {
	l.t.Helper()
	l.mustBeHost(h)
	if h.link != nil {
		h.link.stop()
		h.link = nil
	}
}

func (l *Lab) mustBeHost(h *Host) {
	l.t.Helper()
	if h == nil || h.NS == "" || h.lab != l {
		l.t.Fatalf("netlab: %v is not a host of this lab (the root namespace takes no faults)", h)
	}
}

// FreezeMySQL stops h's mysqld with SIGSTOP: it keeps its sockets and
// answers nothing. ThawMySQL undoes it.
func (l *Lab) FreezeMySQL(h *Host) { l.t.Helper(); l.db(h).Pause(l.t) }

// ThawMySQL resumes h's frozen mysqld (SIGCONT).
func (l *Lab) ThawMySQL(h *Host) { l.t.Helper(); l.db(h).Resume(l.t) }

// KillMySQL kills h's mysqld (SIGKILL) and waits for it to exit.
// RestartMySQL undoes it.
func (l *Lab) KillMySQL(h *Host) { l.t.Helper(); l.db(h).Kill(l.t) }

// RestartMySQL starts h's killed mysqld again, with its data.
func (l *Lab) RestartMySQL(h *Host) { l.t.Helper(); l.db(h).Restart(l.t) }

// FreezeAgent stops h's regent agent with SIGSTOP. ThawAgent undoes it.
func (l *Lab) FreezeAgent(h *Host) {
	l.t.Helper()
	if err := l.agent(h).signal(syscall.SIGSTOP); err != nil {
		l.t.Fatalf("netlab: %v", err)
	}
}

// ThawAgent resumes h's frozen agent (SIGCONT).
func (l *Lab) ThawAgent(h *Host) {
	l.t.Helper()
	if err := l.agent(h).signal(syscall.SIGCONT); err != nil {
		l.t.Fatalf("netlab: %v", err)
	}
}

// KillAgent kills h's agent (SIGKILL) and waits for it to exit.
// RestartAgent undoes it.
func (l *Lab) KillAgent(h *Host) {
	l.t.Helper()
	a := l.agent(h)
	if a.PID() == 0 {
		l.t.Fatalf("netlab: the agent on %s is not running", h.Name)
	}
	a.stop(syscall.SIGKILL, time.Minute)
}

// RestartAgent starts h's agent again with its configuration and data
// directory (its Raft state).
func (l *Lab) RestartAgent(h *Host) {
	l.t.Helper()
	a := l.agent(h)
	if a.PID() != 0 {
		l.t.Fatalf("netlab: the agent on %s is still running", h.Name)
	}
	a.start(l.t)
}

// FreezeHost stops every process in h's namespace (mysqld, the agent,
// HAProxy on its host) with SIGSTOP, as a hung machine. ThawHost undoes it.
func (l *Lab) FreezeHost(h *Host) { l.t.Helper(); l.signalAll(h, syscall.SIGSTOP) }

// ThawHost resumes every process in h's namespace (SIGCONT).
func (l *Lab) ThawHost(h *Host) { l.t.Helper(); l.signalAll(h, syscall.SIGCONT) }

// KillHost kills h's agent and mysqld, as a host losing power.
// RestartHost undoes it.
func (l *Lab) KillHost(h *Host) {
	l.t.Helper()
	if h.Agent != nil {
		l.KillAgent(h)
	}
	if h.DB != nil {
		l.KillMySQL(h)
	}
}

// RestartHost starts h's mysqld and then its agent again, as a rebooted
// host would.
func (l *Lab) RestartHost(h *Host) {
	l.t.Helper()
	if h.DB != nil {
		l.RestartMySQL(h)
	}
	if h.Agent != nil {
		l.RestartAgent(h)
	}
}

func (l *Lab) signalAll(h *Host, sig syscall.Signal) {
	l.t.Helper()
	l.mustBeHost(h)
	ctx, cancel := context.WithTimeout(l.ctx, cmdTimeout)
	defer cancel()
	pids, err := h.pids(ctx)
	if err != nil {
		l.t.Fatalf("netlab: %v", err)
	}
	if len(pids) == 0 {
		if sig == syscall.SIGCONT {
			return // nothing to resume (its agent and mysqld were stopped meanwhile)
		}
		l.t.Fatalf("netlab: no process runs on %s", h.Name)
	}
	for _, p := range pids {
		if err := syscall.Kill(p, sig); err != nil {
			l.t.Fatalf("netlab: signal %v to pid %d on %s: %v", sig, p, h.Name, err)
		}
	}
}

func (l *Lab) db(h *Host) *mysqltest.Server {
	l.t.Helper()
	l.mustBeHost(h)
	if h.DB == nil {
		l.t.Fatalf("netlab: %s runs no database", h.Name)
	}
	return h.DB
}

func (l *Lab) agent(h *Host) *Agent {
	l.t.Helper()
	l.mustBeHost(h)
	if h.Agent == nil {
		l.t.Fatalf("netlab: %s runs no agent", h.Name)
	}
	return h.Agent
}
