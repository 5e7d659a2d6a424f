package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/regentdb/regent/failover"
)

// processLoop watches the local mysqld's process itself, through a pidfd:
// the kernel makes it readable the moment the process exits, whatever its
// sockets do, and that is reported as the fast path's evidence at once
// (README "Detection"). It complements localLoop's held connection, which
// sees the exit too but only by a read failing and a dial being refused. The
// process is found from mysqld's own pid file, or, when that path is not
// readable here (mysqld in a chroot), from the process that holds the
// instance's listening socket (root only); when neither works the loop
// tries again now and then and the dial alone decides.
func (c *clusterRT) processLoop(ctx context.Context) {
	retry := max(time.Second, c.policy.ProbeInterval)
	for ctx.Err() == nil {
		pid, err := c.host.findPID(ctx)
		if err != nil {
			c.log.Debug("local mysqld's process not found; only the dial watches it", logErr, err)
			if !sleepCtx(ctx, retry) {
				return
			}
			continue
		}
		c.watchedPID.Store(int64(pid))
		exited, err := c.host.waitExit(ctx, pid)
		c.watchedPID.Store(0)
		switch {
		case err != nil:
			c.log.Debug("cannot watch the local mysqld's process", "pid", pid, logErr, err)
		case exited:
			c.setLocal(ctx, failover.LocalGone, fmt.Sprintf("mysqld (pid %d) exited", pid))
		}
		// Look again once a server answers (a restart has a new pid).
		for ctx.Err() == nil {
			if !sleepCtx(ctx, retry) {
				return
			}
			c.mu.Lock()
			running := c.localState == failover.LocalRunning
			c.mu.Unlock()
			if running {
				break
			}
		}
	}
}

// hostIO is what the local and process loops read from the host itself.
// newClusterRT takes the real ones; the loops' tests give fakes and run the
// loops in simulated time (testing/synctest).
type hostIO struct {
	// dialLocal dials the local mysqld without logging in (localDial).
	dialLocal func(ctx context.Context, network, addr, tcpAddr string, timeout time.Duration) (failover.LocalState, string, net.Conn)
	// findPID finds the local mysqld's process (clusterRT.findLocalPID).
	findPID func(ctx context.Context) (int, error)
	// waitExit waits until that process exits (waitProcessExit).
	waitExit func(ctx context.Context, pid int) (bool, error)
}

// findLocalPID finds the local mysqld's process id.
func (c *clusterRT) findLocalPID(ctx context.Context) (int, error) {
	var errs []error
	if c.fenceInst != nil {
		qctx, cancel := context.WithTimeout(ctx, c.cfg.ProbeTimeoutOrDefault())
		file, err := c.fenceInst.PIDFile(qctx)
		cancel()
		if err == nil {
			pid, err := pidFromFile(file)
			if err == nil {
				return pid, nil
			}
			errs = append(errs, err)
		} else {
			errs = append(errs, err)
		}
	}
	addr := c.set().addrs[c.local]
	_, port := hostPort(addr)
	p, err := strconv.Atoi(port)
	if err != nil {
		return 0, errors.Join(append(errs, fmt.Errorf("local instance address %q has no port", addr))...)
	}
	pid, err := listenerPID("/proc", p)
	if err != nil {
		return 0, errors.Join(append(errs, err)...)
	}
	return pid, nil
}

// pidFromFile reads a pid file and checks that the process it names is a
// MySQL or MariaDB server.
func pidFromFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s holds %q, not a process id", path, strings.TrimSpace(string(b)))
	}
	if !isServerProcess("/proc", pid) {
		return 0, fmt.Errorf("pid file %s names process %d, which is not mysqld or mariadbd", path, pid)
	}
	return pid, nil
}

// isServerProcess reports whether /proc/PID/comm names a MySQL or MariaDB
// server.
func isServerProcess(proc string, pid int) bool {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "comm"))
	if err != nil {
		return false
	}
	comm := strings.TrimSpace(string(b))
	return comm == "mysqld" || comm == "mariadbd"
}

// listenerPID finds the server process that holds a TCP socket listening on
// port: the socket's inode from proc/net/tcp and tcp6, then the process with
// a descriptor on it (reading other users' descriptors needs root).
func listenerPID(proc string, port int) (int, error) {
	inodes := map[string]bool{}
	for _, f := range []string{"net/tcp", "net/tcp6"} {
		fh, err := os.Open(filepath.Join(proc, f))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			// sl local_address rem_address st ... inode
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[3] != "0A" { // 0A: LISTEN
				continue
			}
			i := strings.LastIndexByte(fs[1], ':')
			if p, err := strconv.ParseUint(fs[1][i+1:], 16, 16); err == nil && int(p) == port {
				inodes[fs[9]] = true
			}
		}
		fh.Close()
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("no socket listens on port %d here", port)
	}
	procs, err := os.ReadDir(proc)
	if err != nil {
		return 0, err
	}
	for _, d := range procs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || !isServerProcess(proc, pid) {
			continue
		}
		fds, err := os.ReadDir(filepath.Join(proc, d.Name(), "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			l, err := os.Readlink(filepath.Join(proc, d.Name(), "fd", fd.Name()))
			if err == nil && strings.HasPrefix(l, "socket:[") && inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no mysqld or mariadbd process found holding the socket on port %d (reading other users' descriptors needs root)", port)
}

// waitProcessExit waits until the process exits (true) or ctx ends
// (false), through a pidfd, which needs no permission over the process.
func waitProcessExit(ctx context.Context, pid int) (bool, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return true, nil
		}
		return false, fmt.Errorf("pidfd_open(%d): %w", pid, err)
	}
	defer unix.Close(fd)
	for ctx.Err() == nil {
		// Poll in slices so that the loop sees ctx end.
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 200)
		switch {
		case errors.Is(err, unix.EINTR):
		case err != nil:
			return false, fmt.Errorf("poll on pidfd: %w", err)
		case n > 0:
			return true, nil
		}
	}
	return false, nil
}

// killProcess sends SIGKILL to pid through a pidfd. The pid is the one the
// process watch holds a pidfd on (it is cleared as soon as that process
// exits), so a reused pid is hit only in the moment between the exit and
// the clearing.
func killProcess(ctx context.Context, pid int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("pidfd_open(%d): %w", pid, err)
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
		return fmt.Errorf("SIGKILL to mysqld (pid %d): %w", pid, err)
	}
	return nil
}
