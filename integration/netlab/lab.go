// Package netlab runs process-level hosts in network namespaces on one
// machine, without Docker, for Regent's benchmarks and fault campaigns: each
// host is a network namespace with its own address on a bridge of the lab's
// own (a private /24 with no route out and no NAT), and the test process, in
// the root namespace, reaches every host over that bridge as the client and
// the observer. Faults are injected per host: cut a host off from some
// others (silently: DROP both ways), degrade its link (loss, delay, jitter),
// and freeze, kill or restart its processes; each has its heal.
//
// StartRegent builds a whole installation on a lab: three database hosts
// (one mysqld and one regent agent each) and an HAProxy host, configured as
// deploy/ documents. Nothing in the product imports this package; it needs
// root (network namespaces, iptables), iproute2, iptables and ethtool.
package netlab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/regentdb/regent/topology/mysqltest"
)

// TB is the part of testing.TB the lab uses (mysqltest's).
type TB = mysqltest.TB

const (
	// nsPrefix starts every namespace's name: regentlab-PID-ID-HOST, so
	// that leftovers of a crashed run can be told from a running lab.
	nsPrefix = "regentlab-"
	// stateDir holds one file per running lab (ID: pid and subnet), read
	// to find leftovers and the subnets in use.
	stateDir = "/run/regent-netlab"
	// cutChain is the iptables chain, in each host's namespace, that holds
	// that host's CutOff rules.
	cutChain = "regentlab-cut"
	// cmdTimeout bounds one ip/iptables/tc/ethtool command.
	cmdTimeout = 30 * time.Second
)

// Lab is one bridge with hosts on it. Everything it made is removed at the
// test's cleanup; leftovers of crashed runs are removed when a new lab
// starts.
type Lab struct {
	t TB
	// ID is the lab's random id, part of every name it makes.
	ID string
	// Dir holds the lab's files (configurations, logs).
	Dir string
	// Bridge is the bridge's interface name (root namespace).
	Bridge string
	// Subnet is the lab's /24.
	Subnet *net.IPNet
	// Root is the root namespace as a host on the bridge: the test
	// process's address. It has no namespace and takes no faults; hosts
	// can be cut off from it.
	Root *Host

	ctx    context.Context // canceled at cleanup
	cancel context.CancelFunc
	mu     sync.Mutex
	hosts  []*Host
}

// Host is one network namespace on the lab's bridge (or the root namespace,
// Lab.Root).
type Host struct {
	// Name is the host's short name (db1, lb).
	Name string
	// NS is the network namespace's name; empty for Lab.Root.
	NS string
	// IP is the host's address on the bridge.
	IP string
	// Veth is the root-namespace end of the host's link to the bridge.
	Veth string

	// DB is the host's database server, when it runs one.
	DB *mysqltest.Server
	// Agent is the host's regent agent, when it runs one.
	Agent *Agent

	lab   *Lab
	index int
	link  *shapedLink // set while Netem applies
}

// New creates a lab: a bridge with a free private /24, the root namespace's
// address on it, and the forwarding rule that lets bridged frames through
// the host's firewall. It fails the test, saying what is needed, when not
// run as root or when a tool is missing.
func New(t TB) *Lab {
	t.Helper()
	requireRoot(t)
	ctx, cancel := context.WithCancel(context.Background())
	l := &Lab{t: t, ctx: ctx, cancel: cancel, ID: randomHex(t, 3)}
	dir, err := os.MkdirTemp("", "regent-netlab-")
	if err != nil {
		t.Fatal(err)
	}
	l.Dir = dir
	l.Bridge = "rl" + l.ID + "b"
	t.Cleanup(l.close)

	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// One lab at a time picks its subnet and writes its state: two labs
	// started at once must not take the same /24.
	unlock := lockState(t)
	removeStale(t)
	l.Subnet = pickSubnet(t)
	statePath := filepath.Join(stateDir, l.ID)
	if err := os.WriteFile(statePath, fmt.Appendf(nil, "%d %s\n", os.Getpid(), l.Subnet), 0o644); err != nil {
		unlock()
		t.Fatal(err)
	}
	unlock()

	l.Root = &Host{Name: "root", IP: l.addr(1), lab: l}
	l.mustRun(nil, "ip", "link", "add", l.Bridge, "type", "bridge")
	l.mustRun(nil, "ip", "addr", "add", l.Root.IP+"/24", "dev", l.Bridge)
	l.mustRun(nil, "ip", "link", "set", l.Bridge, "up")
	// Frames the userspace link emulator (Netem) reads must be whole:
	// no segmentation or checksum offload on what leaves the bridge.
	l.mustRun(nil, "ethtool", "-K", l.Bridge, "tx", "off", "tso", "off", "gso", "off")
	// Docker's FORWARD policy is DROP and bridged frames pass through
	// iptables (br_netfilter): let the lab's own through.
	l.mustRun(nil, "iptables", "-w", "-I", "FORWARD", "-i", l.Bridge, "-o", l.Bridge,
		"-m", "comment", "--comment", l.ruleComment(), "-j", "ACCEPT")
	return l
}

// requireRoot fails the test when it cannot build a lab: the lab is never
// skipped, a machine that cannot run it must be fixed.
func requireRoot(t TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("netlab needs root (network namespaces, veth pairs, iptables): run the tests as root (sudo go test ./integration/netlab/, or 'make test' as root); euid is %d", os.Geteuid())
	}
	for bin, pkg := range map[string]string{"ip": "iproute2", "iptables": "iptables", "ethtool": "ethtool"} {
		if _, err := lookPath(bin); err != nil {
			t.Fatalf("netlab needs %s: apt-get install %s (scripts/deps.sh installs it)", bin, pkg)
		}
	}
}

func lookPath(bin string) (string, error) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		if p := filepath.Join(dir, bin); fileExists(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found", bin)
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// addr is the lab address ending in n.
func (l *Lab) addr(n int) string {
	ip := l.Subnet.IP.To4()
	return net.IPv4(ip[0], ip[1], ip[2], byte(n)).String()
}

// AccountHost is the MySQL account host pattern of the lab's subnet
// ('10.x.y.%').
func (l *Lab) AccountHost() string {
	ip := l.Subnet.IP.To4()
	return fmt.Sprintf("%d.%d.%d.%%", ip[0], ip[1], ip[2])
}

func (l *Lab) ruleComment() string { return fmt.Sprintf("regentlab %d %s", os.Getpid(), l.ID) }

// AddHost creates a host: a namespace with its loopback up and a veth pair
// to the bridge carrying the next free address (.11, .12, ...).
func (l *Lab) AddHost(name string) *Host {
	l.t.Helper()
	l.mu.Lock()
	index := len(l.hosts) + 1
	h := &Host{Name: name, lab: l, index: index,
		NS:   fmt.Sprintf("%s%d-%s-%s", nsPrefix, os.Getpid(), l.ID, name),
		IP:   l.addr(10 + index),
		Veth: fmt.Sprintf("rl%sh%d", l.ID, index)}
	l.hosts = append(l.hosts, h)
	l.mu.Unlock()
	if index > 200 {
		l.t.Fatalf("netlab: too many hosts")
	}
	l.mustRun(nil, "ip", "netns", "add", h.NS)
	l.mustRun(nil, "ip", "link", "add", h.Veth, "type", "veth", "peer", "name", "eth0", "netns", h.NS)
	l.mustRun(nil, "ip", "link", "set", h.Veth, "master", l.Bridge, "up")
	l.mustRun(h, "ip", "link", "set", "lo", "up")
	l.mustRun(h, "ip", "addr", "add", h.IP+"/24", "dev", "eth0")
	l.mustRun(h, "ip", "link", "set", "eth0", "up")
	l.mustRun(h, "ethtool", "-K", "eth0", "tx", "off", "tso", "off", "gso", "off")
	// CutOff's rules live in a chain of their own, so that Heal removes
	// them and nothing else.
	l.mustRun(h, "iptables", "-w", "-N", cutChain)
	l.mustRun(h, "iptables", "-w", "-I", "INPUT", "-j", cutChain)
	l.mustRun(h, "iptables", "-w", "-I", "OUTPUT", "-j", cutChain)
	return h
}

// Hosts returns the lab's hosts (not Root), in the order they were added.
func (l *Lab) Hosts() []*Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Host(nil), l.hosts...)
}

// Host returns the host named name, failing the test when there is none.
func (l *Lab) Host(name string) *Host {
	l.t.Helper()
	for _, h := range l.Hosts() {
		if h.Name == name {
			return h
		}
	}
	l.t.Fatalf("netlab: no host %q", name)
	return nil
}

func (h *Host) String() string { return fmt.Sprintf("%s (%s)", h.Name, h.IP) }

// Command returns a command that runs name inside the host's network
// namespace (ip netns exec NS name args...; directly for Root). ip netns
// exec execs the program in place, so the command's process is the
// program's.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	if h.NS == "" {
		return exec.CommandContext(ctx, name, args...)
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// Run runs name inside the host's namespace and returns its combined output.
func (h *Host) Run(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	out, err := h.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s (in %s): %w: %s", name, strings.Join(args, " "), h.Name, err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// mustRun runs a command in h (the root namespace when h is nil) and fails
// the test when it fails.
func (l *Lab) mustRun(h *Host, name string, args ...string) string {
	l.t.Helper()
	if h == nil {
		h = &Host{Name: "root"}
	}
	out, err := h.Run(l.ctx, name, args...)
	if err != nil {
		l.t.Fatalf("netlab: %v", err)
	}
	return out
}

// pids lists the processes in the host's namespace.
func (h *Host) pids(ctx context.Context) ([]int, error) {
	out, err := (&Host{Name: "root"}).Run(ctx, "ip", "netns", "pids", h.NS)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids, nil
}

// close removes everything the lab made: processes still in its
// namespaces, the namespaces (and with them the veth pairs), the
// emulated links, the bridge, the forwarding rule and the state file.
func (l *Lab) close() {
	for _, h := range l.Hosts() {
		if h.link != nil {
			h.link.stop()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errs []error
	for _, h := range l.Hosts() {
		errs = append(errs, removeNamespace(ctx, h.NS))
	}
	errs = append(errs, removeLinks(ctx, l.ID), removeForwardRules(ctx, func(pid int, id string) bool { return id == l.ID }))
	_ = os.Remove(filepath.Join(stateDir, l.ID))
	l.cancel()
	if err := errors.Join(errs...); err != nil {
		l.t.Logf("netlab: cleaning up lab %s: %v", l.ID, err)
	}
	if os.Getenv("REGENT_NETLAB_KEEP") == "1" {
		l.t.Logf("netlab: REGENT_NETLAB_KEEP=1: the lab's files (configurations, logs) stay in %s", l.Dir)
		return
	}
	_ = os.RemoveAll(l.Dir)
}

// removeNamespace kills what still runs in the namespace and deletes it.
func removeNamespace(ctx context.Context, ns string) error {
	root := &Host{Name: "root"}
	h := &Host{Name: ns, NS: ns}
	if pids, err := h.pids(ctx); err == nil {
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGCONT)
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		// The namespace goes away with its last process.
		for deadline := time.Now().Add(30 * time.Second); len(pids) > 0 && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond) // poll interval while processes die
			if pids, err = h.pids(ctx); err != nil {
				break
			}
		}
	}
	if _, err := root.Run(ctx, "ip", "netns", "del", ns); err != nil && !strings.Contains(err.Error(), "No such file") {
		return err
	}
	return nil
}

// parseLinkName recognises the names of the interfaces a lab makes in the
// root namespace: rl<ID>b (the bridge), rl<ID>h<N> (host N's veth end),
// rl<ID>q<N> and rl<ID>p<N> (host N's emulated link). It returns the lab's
// id and the kind letter.
func parseLinkName(name string) (id string, kind byte, ok bool) {
	if len(name) < 9 || !strings.HasPrefix(name, "rl") {
		return "", 0, false
	}
	id, rest := name[2:8], name[8:]
	if _, err := hex.DecodeString(id); err != nil || strings.ToLower(id) != id {
		return "", 0, false
	}
	switch {
	case rest == "b":
		return id, 'b', true
	case len(rest) > 1 && strings.ContainsRune("hqp", rune(rest[0])):
		if _, err := strconv.Atoi(rest[1:]); err == nil {
			return id, rest[0], true
		}
	}
	return "", 0, false
}

// removeLinks deletes the root-namespace interfaces of lab id (the bridge,
// emulated links; veth ends that outlived their namespace).
func removeLinks(ctx context.Context, id string) error {
	var errs []error
	ifs, err := net.Interfaces()
	if err != nil {
		return err
	}
	root := &Host{Name: "root"}
	// Veth pairs first, the bridge last.
	for pass := 0; pass < 2; pass++ {
		for _, i := range ifs {
			lid, kind, ok := parseLinkName(i.Name)
			if !ok || lid != id || (kind == 'b') != (pass == 1) {
				continue
			}
			if _, err := root.Run(ctx, "ip", "link", "del", i.Name); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// removeForwardRules deletes the FORWARD rules of labs for which match holds.
func removeForwardRules(ctx context.Context, match func(pid int, id string) bool) error {
	root := &Host{Name: "root"}
	out, err := root.Run(ctx, "iptables", "-w", "-S", "FORWARD")
	if err != nil {
		return err
	}
	var errs []error
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, `--comment "regentlab `)
		if !strings.HasPrefix(line, "-A FORWARD ") || i < 0 {
			continue
		}
		f := strings.Fields(strings.Trim(line[i+len(`--comment "`):], `"`))
		if len(f) < 3 {
			continue
		}
		pid, _ := strconv.Atoi(f[1])
		id := strings.TrimSuffix(f[2], `"`)
		if !match(pid, id) {
			continue
		}
		// "-A FORWARD spec" deleted as "-D FORWARD spec"; the comment's
		// quotes are the shell's, not part of the argument.
		args := splitRule(strings.TrimPrefix(line, "-A FORWARD "))
		if _, err := root.Run(ctx, "iptables", append([]string{"-w", "-D", "FORWARD"}, args...)...); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// splitRule splits an iptables -S rule into arguments, honouring double
// quotes.
func splitRule(s string) []string {
	var args []string
	var cur strings.Builder
	inQuote, has := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote, has = !inQuote, true
		case r == ' ' && !inQuote:
			if has {
				args = append(args, cur.String())
				cur.Reset()
				has = false
			}
		default:
			cur.WriteRune(r)
			has = true
		}
	}
	if has {
		args = append(args, cur.String())
	}
	return args
}

// lockState takes the lab machine-wide lock; the returned function releases
// it.
func lockState(t TB) func() {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(stateDir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// removeStale removes what labs of test processes that no longer run left
// behind (a test binary killed by -timeout cannot clean up): their
// namespaces and processes, interfaces, forwarding rules and state files.
// It is called with the state lock held.
func removeStale(t TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	deadIDs := map[string]bool{}
	liveIDs := map[string]bool{}
	entries, _ := os.ReadDir(stateDir)
	for _, e := range entries {
		if e.Name() == "lock" {
			continue
		}
		b, _ := os.ReadFile(filepath.Join(stateDir, e.Name()))
		var pid int
		_, _ = fmt.Sscanf(string(b), "%d", &pid)
		if alive(pid) {
			liveIDs[e.Name()] = true
			continue
		}
		deadIDs[e.Name()] = true
	}
	// Namespaces by name: regentlab-PID-ID-HOST.
	if out, err := os.ReadDir("/run/netns"); err == nil {
		for _, e := range out {
			rest, ok := strings.CutPrefix(e.Name(), nsPrefix)
			if !ok {
				continue
			}
			f := strings.SplitN(rest, "-", 3)
			if len(f) < 3 {
				continue
			}
			pid, _ := strconv.Atoi(f[0])
			if alive(pid) {
				continue
			}
			deadIDs[f[1]] = true
			t.Logf("netlab: removing namespace %s, left behind by an earlier run", e.Name())
			if err := removeNamespace(ctx, e.Name()); err != nil {
				t.Logf("netlab: %v", err)
			}
		}
	}
	// Interfaces rl<ID>...: of a dead lab, or of no lab at all (its state
	// file gone).
	if ifs, err := net.Interfaces(); err == nil {
		for _, i := range ifs {
			id, _, ok := parseLinkName(i.Name)
			if !ok || liveIDs[id] {
				continue
			}
			deadIDs[id] = true
		}
	}
	for id := range deadIDs {
		if liveIDs[id] {
			continue
		}
		if err := removeLinks(ctx, id); err != nil {
			t.Logf("netlab: removing the interfaces of lab %s: %v", id, err)
		}
		_ = os.Remove(filepath.Join(stateDir, id))
	}
	if err := removeForwardRules(ctx, func(pid int, id string) bool { return !alive(pid) }); err != nil {
		t.Logf("netlab: removing stale forwarding rules: %v", err)
	}
}

// pickSubnet picks a random 10.x.y.0/24 that nothing on the machine uses:
// no address or route of the root namespace overlaps it, and no running lab
// has it. Called with the state lock held.
func pickSubnet(t TB) *net.IPNet {
	t.Helper()
	var used []*net.IPNet
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
				used = append(used, n)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "-4", "route", "show", "table", "all").Output()
	if err != nil {
		t.Fatalf("netlab: ip route: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		dst := f[0]
		if dst == "local" || dst == "broadcast" || dst == "unicast" {
			if len(f) < 2 {
				continue
			}
			dst = f[1]
		}
		if dst == "default" {
			continue
		}
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		if _, n, err := net.ParseCIDR(dst); err == nil {
			used = append(used, n)
		}
	}
	entries, _ := os.ReadDir(stateDir)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(stateDir, e.Name()))
		if f := strings.Fields(string(b)); len(f) == 2 {
			if _, n, err := net.ParseCIDR(f[1]); err == nil {
				used = append(used, n)
			}
		}
	}
	for try := 0; try < 1000; try++ {
		cand := &net.IPNet{IP: net.IPv4(10, byte(100+mrand.IntN(100)), byte(mrand.IntN(256)), 0).To4(), Mask: net.CIDRMask(24, 32)}
		free := true
		for _, n := range used {
			if n.Contains(cand.IP) || cand.Contains(n.IP) {
				free = false
				break
			}
		}
		if free {
			return cand
		}
	}
	t.Fatal("netlab: no free 10.x.y.0/24 found")
	return nil
}

func randomHex(t TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// inNetns runs f on an OS thread switched into h's network namespace (the
// calling thread's for Root): sockets f creates belong to that namespace
// for good.
func (h *Host) inNetns(f func() error) error {
	if h.NS == "" {
		return f()
	}
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer self.Close()
	target, err := os.Open(filepath.Join("/run/netns", h.NS))
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := setns(target.Fd()); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering %s: %w", h.NS, err)
	}
	ferr := f()
	if err := setns(self.Fd()); err != nil {
		// The thread stays locked and dies with this goroutine: it must
		// not run anything else in the wrong namespace.
		return fmt.Errorf("leaving %s: %w", h.NS, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

func setns(fd uintptr) error { return unix.Setns(int(fd), unix.CLONE_NEWNET) }

// Listen opens a listener inside h's namespace (address as for net.Listen,
// usually h.IP:port); it serves from the test process.
func (h *Host) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	var ln net.Listener
	err := h.inNetns(func() (err error) {
		ln, err = (&net.ListenConfig{}).Listen(ctx, network, address)
		return err
	})
	return ln, err
}

// Dial connects from inside h's namespace, as a program on h would.
func (h *Host) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := h.inNetns(func() (err error) {
		// The socket is made (and the connection started) on this
		// thread; the dial's wait may go on on any thread.
		c, err = (&net.Dialer{}).DialContext(ctx, network, address)
		return err
	})
	return c, err
}
