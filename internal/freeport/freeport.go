// Package freeport hands tests TCP ports of 127.0.0.1 for processes they
// start later (an agent, HAProxy, a Raft node) to bind.
//
// A port the kernel hands out for port 0 comes from its ephemeral range,
// which is also where every outgoing connection takes its local end: in the
// moment between a test closing its probe listener and the process binding
// the port, any connection of a parallel test may take it (CI saw "bind:
// address already in use" that way). Get therefore picks ports below the
// ephemeral range, checks that nothing listens on them, and never hands the
// same port out twice in one test binary.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// given holds the ports handed out by this test binary.
var given struct {
	sync.Mutex
	ports map[int]bool
}

// Get returns a port of 127.0.0.1 that nothing listened on a moment ago and
// that no earlier Get of this binary returned.
func Get() (int, error) {
	lo, hi := 20000, ephemeralLow()
	if hi-lo < 1000 {
		lo, hi = 10000, 20000
	}
	given.Lock()
	defer given.Unlock()
	if given.ports == nil {
		given.ports = map[int]bool{}
	}
	for range 1000 {
		p := lo + rand.IntN(hi-lo)
		if given.ports[p] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l.Close()
		given.ports[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("no free port of 127.0.0.1 between %d and %d", lo, hi)
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768 if
// it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}
