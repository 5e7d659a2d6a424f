package netlab

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// shapedLink is the lab's tc netem: it carries a host's frames between the
// host's veth end, taken off the bridge, and a second veth pair whose other
// end is on the bridge, dropping and delaying them in both directions. The
// kernels of these machines are built without sch_netem (CONFIG_NET_SCH_NETEM
// is not set), so the emulation runs in the test process, on AF_PACKET
// sockets; offloads are off on every lab interface so that each frame is a
// whole packet.
type shapedLink struct {
	h          *Host
	q, p       string // q: the emulator's end; p: on the bridge
	hostFD     int    // bound to h.Veth
	bridgeFD   int    // bound to q
	mu         sync.Mutex
	loss       float64 // probability, 0..1
	delay, jit time.Duration
	stopping   atomic.Bool
	readers    sync.WaitGroup
	pending    sync.WaitGroup // delayed frames not sent yet
	dropped    atomic.Int64
}

func (s *shapedLink) set(lossPercent float64, delay, jitter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loss, s.delay, s.jit = lossPercent/100, delay, jitter
}

// startLink puts h's link through the emulator.
func (l *Lab) startLink(h *Host) (*shapedLink, error) {
	ctx, cancel := context.WithTimeout(l.ctx, 2*time.Minute)
	defer cancel()
	root := &Host{Name: "root"}
	s := &shapedLink{h: h, q: fmt.Sprintf("rl%sq%d", l.ID, h.index), p: fmt.Sprintf("rl%sp%d", l.ID, h.index), hostFD: -1, bridgeFD: -1}
	steps := [][]string{
		{"ip", "link", "add", s.q, "type", "veth", "peer", "name", s.p},
		// The root namespace's own stack must stay out of it: no ARP
		// answers (it would answer for the bridge's address) and no IPv6.
		{"ip", "link", "set", s.q, "arp", "off"},
		{"ip", "link", "set", h.Veth, "arp", "off"},
		{"ip", "link", "set", s.p, "master", l.Bridge, "up"},
		{"ip", "link", "set", s.q, "up"},
	}
	for _, st := range steps {
		if _, err := root.Run(ctx, st[0], st[1:]...); err != nil {
			s.remove(ctx)
			return nil, err
		}
	}
	// No IPv6 either (where the kernel has it): no link-local address, no
	// neighbour discovery of its own.
	_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+s.q+"/disable_ipv6", []byte("1"), 0o644)
	var err error
	if s.hostFD, err = packetSocket(h.Veth); err == nil {
		s.bridgeFD, err = packetSocket(s.q)
	}
	if err == nil {
		_, err = root.Run(ctx, "ip", "link", "set", h.Veth, "nomaster")
	}
	if err != nil {
		s.closeFDs()
		s.remove(ctx)
		return nil, err
	}
	s.readers.Add(2)
	go s.forward(s.hostFD, s.bridgeFD)
	go s.forward(s.bridgeFD, s.hostFD)
	return s, nil
}

// stop puts h's veth back on the bridge and removes the emulator.
func (s *shapedLink) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s.stopping.Store(true)
	s.readers.Wait()
	root := &Host{Name: "root"}
	_, _ = root.Run(ctx, "ip", "link", "set", s.h.Veth, "master", s.h.lab.Bridge)
	_, _ = root.Run(ctx, "ip", "link", "set", s.h.Veth, "arp", "on")
	s.remove(ctx)
	// Delayed frames still due write to the sockets: close them after.
	s.pending.Wait()
	s.closeFDs()
}

func (s *shapedLink) remove(ctx context.Context) {
	_, _ = (&Host{Name: "root"}).Run(ctx, "ip", "link", "del", s.q)
}

func (s *shapedLink) closeFDs() {
	for _, fd := range []int{s.hostFD, s.bridgeFD} {
		if fd >= 0 {
			_ = syscall.Close(fd)
		}
	}
	s.hostFD, s.bridgeFD = -1, -1
}

// forward copies frames arriving on in to out, dropping each with the
// loss probability and sending the others after delay ± jitter (uniform),
// as netem does; jitter may reorder them, as netem's does.
func (s *shapedLink) forward(in, out int) {
	defer s.readers.Done()
	buf := make([]byte, 65536)
	for !s.stopping.Load() {
		n, from, err := syscall.Recvfrom(in, buf, 0)
		if err != nil {
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
				continue
			}
			return
		}
		if ll, ok := from.(*syscall.SockaddrLinklayer); ok && ll.Pkttype == syscall.PACKET_OUTGOING {
			continue // what this emulator wrote itself
		}
		s.mu.Lock()
		loss, delay, jitter := s.loss, s.delay, s.jit
		s.mu.Unlock()
		if loss > 0 && mrand.Float64() < loss {
			s.dropped.Add(1)
			continue
		}
		d := delay
		if jitter > 0 {
			d += time.Duration(mrand.Int64N(int64(2*jitter)+1)) - jitter
		}
		frame := append([]byte(nil), buf[:n]...)
		if d <= 0 {
			_, _ = syscall.Write(out, frame)
			continue
		}
		s.pending.Add(1)
		time.AfterFunc(d, func() {
			defer s.pending.Done()
			_, _ = syscall.Write(out, frame)
		})
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// packetSocket opens an AF_PACKET socket bound to the interface, for every
// protocol, that does not see its own writes and wakes up every 100 ms (so
// that a reader notices stop).
func packetSocket(ifname string) (int, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return -1, err
	}
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, int(htons(syscall.ETH_P_ALL)))
	if err != nil {
		return -1, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	const packetIgnoreOutgoing = 23 // PACKET_IGNORE_OUTGOING (Linux 4.20)
	_ = syscall.SetsockoptInt(fd, syscall.SOL_PACKET, packetIgnoreOutgoing, 1)
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &syscall.Timeval{Usec: 100_000}); err != nil {
		_ = syscall.Close(fd)
		return -1, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(syscall.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		_ = syscall.Close(fd)
		return -1, fmt.Errorf("binding a packet socket to %s: %w", ifname, err)
	}
	return fd, nil
}
