// Package haproxytest runs real HAProxy processes for tests: in a temporary
// directory, on loopback, in master-worker mode (as systemd runs it), with
// its runtime API on a unix socket at admin level, on a TCP socket at admin
// level and on a unix socket at operator level (to test the refusal), and a
// server-state file. Every process is stopped when the test ends.
//
// It needs the haproxy binary (Debian's haproxy package; REGENT_HAPROXY names
// another). A missing binary fails the test with what to install: a missing
// HAProxy is a broken test machine, not a reason to skip.
package haproxytest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/regentdb/regent/internal/freeport"
)

// HAProxy is one running HAProxy (master and its current worker).
type HAProxy struct {
	Dir string
	// ConfigPath is the haproxy.cfg in use.
	ConfigPath string
	// AdminSocket is the runtime API at admin level (unix socket path).
	AdminSocket string
	// AdminTCP is the runtime API at admin level over TCP (host:port).
	AdminTCP string
	// OperatorSocket is a runtime API socket at operator level only.
	OperatorSocket string
	// StateFile is the server-state-file named in the global section.
	StateFile string

	t       testing.TB
	bin     string
	logPath string
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	stopped bool
}

// Binary returns the haproxy binary to use or fails the test.
func Binary(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("REGENT_HAPROXY"); b != "" {
		return b
	}
	for _, p := range []string{"/usr/sbin/haproxy", "/usr/local/sbin/haproxy"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	t.Fatal("haproxy not found: install Debian's haproxy package (apt-get install haproxy; 'make deps' does) or set REGENT_HAPROXY")
	return ""
}

// FreePort returns a free TCP port of 127.0.0.1 for HAProxy to bind later
// (see package freeport).
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Start writes a haproxy.cfg made of the helper's global and defaults
// sections followed by proxies (frontends, backends, listens), checks it with
// haproxy -c and starts HAProxy. The defaults are mode tcp and
// load-server-state-from-file global.
func Start(t testing.TB, proxies string) *HAProxy {
	t.Helper()
	return StartRaw(t, func(h *HAProxy) string {
		return fmt.Sprintf(`global
    stats socket %s mode 600 level admin
    stats socket ipv4@%s level admin
    stats socket %s mode 600 level operator
    server-state-file %s
    # Bound the life of an old worker after a reload.
    hard-stop-after 5s

defaults
    mode tcp
    timeout connect 1s
    timeout client 1m
    timeout server 1m
    timeout check 1s
    load-server-state-from-file global

%s
`, h.AdminSocket, h.AdminTCP, h.OperatorSocket, h.StateFile, proxies)
	})
}

// StartRaw is Start with the whole configuration written by render, which
// gets the paths and addresses to use (AdminSocket, AdminTCP,
// OperatorSocket, StateFile, Dir). For testing a complete haproxy.cfg such
// as the deploy example.
func StartRaw(t testing.TB, render func(h *HAProxy) string) *HAProxy {
	t.Helper()
	dir := t.TempDir()
	h := &HAProxy{
		Dir:            dir,
		ConfigPath:     filepath.Join(dir, "haproxy.cfg"),
		AdminSocket:    filepath.Join(dir, "admin.sock"),
		AdminTCP:       fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
		OperatorSocket: filepath.Join(dir, "operator.sock"),
		StateFile:      filepath.Join(dir, "server-state"),
		t:              t,
		bin:            Binary(t),
		logPath:        filepath.Join(dir, "haproxy.log"),
	}
	if err := os.WriteFile(h.ConfigPath, []byte(render(h)), 0o600); err != nil {
		t.Fatal(err)
	}
	h.check()
	h.start()
	t.Cleanup(h.Stop)
	return h
}

// Check runs haproxy -c on a configuration file and returns its output.
func Check(t testing.TB, path string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, Binary(t), "-c", "-f", path).CombinedOutput()
	return string(out), err
}

func (h *HAProxy) check() {
	h.t.Helper()
	out, err := Check(h.t, h.ConfigPath)
	if err != nil {
		h.t.Fatalf("haproxy -c rejected the test configuration: %v\n%s\n--- %s ---\n%s", err, out, h.ConfigPath, readFile(h.ConfigPath))
	}
}

func (h *HAProxy) start() {
	h.t.Helper()
	logf, err := os.OpenFile(h.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		h.t.Fatal(err)
	}
	// -W: master-worker, as systemd runs it; SIGUSR2 reloads.
	cmd := exec.Command(h.bin, "-W", "-f", h.ConfigPath, "-p", filepath.Join(h.Dir, "haproxy.pid"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		h.t.Fatalf("starting haproxy: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	h.mu.Lock()
	h.cmd, h.exited, h.stopped = cmd, exited, false
	h.mu.Unlock()
	if _, err := h.waitWorker(0, 10*time.Second); err != nil {
		h.Stop()
		h.t.Fatalf("haproxy did not come up: %v\n%s", err, h.Log())
	}
}

// Exec sends one command to the admin runtime socket and returns the answer.
func (h *HAProxy) Exec(cmd string) (string, error) {
	c, err := net.DialTimeout("unix", h.AdminSocket, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// WorkerPID returns the pid of the worker that answers the runtime API.
func (h *HAProxy) WorkerPID() (int, error) {
	out, err := h.Exec("show info")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Pid: "); ok {
			var pid int
			_, err := fmt.Sscan(v, &pid)
			return pid, err
		}
	}
	return 0, fmt.Errorf("no Pid in show info: %q", out)
}

// waitWorker waits until a worker other than old answers the runtime API.
func (h *HAProxy) waitWorker(old int, within time.Duration) (int, error) {
	deadline := time.Now().Add(within)
	var lastErr error
	for {
		pid, err := h.WorkerPID()
		if err == nil && pid != old {
			return pid, nil
		}
		lastErr = err
		h.mu.Lock()
		exited := h.exited
		h.mu.Unlock()
		select {
		case <-exited:
			return 0, fmt.Errorf("haproxy exited")
		default:
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no new worker within %s (last: %v)", within, lastErr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SaveState writes "show servers state" to StateFile, as an ExecReload step
// does before a reload in production (see deploy/haproxy).
func (h *HAProxy) SaveState() {
	h.t.Helper()
	out, err := h.Exec("show servers state")
	if err != nil || !strings.HasPrefix(out, "1\n") {
		h.t.Fatalf("show servers state: %v %q", err, out)
	}
	if err := os.WriteFile(h.StateFile, []byte(out), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// Reload makes the master re-read the configuration and start a new worker
// (SIGUSR2, what systemctl reload does), and waits for the new worker.
func (h *HAProxy) Reload() {
	h.t.Helper()
	old, err := h.WorkerPID()
	if err != nil {
		h.t.Fatalf("before reload: %v", err)
	}
	h.check()
	h.mu.Lock()
	cmd := h.cmd
	h.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		h.t.Fatalf("reload: %v", err)
	}
	if _, err := h.waitWorker(old, 10*time.Second); err != nil {
		h.t.Fatalf("reload: %v\n%s", err, h.Log())
	}
}

// Stop stops HAProxy (SIGTERM to the master, SIGKILL to its process group if
// it does not exit in 5s). Safe to call twice.
func (h *HAProxy) Stop() {
	h.mu.Lock()
	if h.stopped || h.cmd == nil {
		h.mu.Unlock()
		return
	}
	h.stopped = true
	cmd, exited := h.cmd, h.exited
	h.mu.Unlock()
	pgid := cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-exited
	}
	// Workers left behind by a reload belong to the same group.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if h.t.Failed() {
		h.t.Logf("haproxy log (%s):\n%s", h.logPath, h.Log())
	}
}

// Log returns HAProxy's output so far.
func (h *HAProxy) Log() string { return readFile(h.logPath) }

func readFile(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(bytes.TrimSpace(b))
}
