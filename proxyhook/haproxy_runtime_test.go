package proxyhook

import (
	"bufio"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Captured from HAProxy 2.6.12: "show servers state be_write".
const capturedServersState = `1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port
3 be_write 1 db1 127.0.0.2 0 1 1 1 4 8 2 2 14 0 0 0 - 25099 - 0 25021 - - 25021
3 be_write 2 db2 127.0.0.1 2 0 1 1 3 8 2 0 6 0 0 0 - 25012 - 0 25022 - - 25022
3 be_write 3 nochk 127.0.0.1 2 8 1 1 7 1 0 2 0 0 0 0 - 25013 - 0 0 - - 0

`

func TestParseServersState(t *testing.T) {
	got, err := ParseServersState(capturedServersState)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d servers", len(got))
	}
	db1, db2, nochk := got[0], got[1], got[2]
	if db1.Ref().String() != "be_write/db1" || db1.Addr != "127.0.0.2" || db1.Port != 25099 || db1.CheckPort != 25021 ||
		db1.OpState != OpStopped || db1.AdminState != AdminForcedMaint || db1.BackendID != 3 || db1.ServerID != 1 {
		t.Errorf("db1 = %+v", db1)
	}
	if db1.Routable() || !db1.AdminState.InMaint() || db1.AdminState.String() != "maint" {
		t.Errorf("db1 in maint: routable=%v inMaint=%v %s", db1.Routable(), db1.AdminState.InMaint(), db1.AdminState)
	}
	if !db2.Routable() || db2.OpState.String() != "running" || db2.AdminState.String() != "ready" {
		t.Errorf("db2 = %+v", db2)
	}
	if nochk.Routable() || !nochk.AdminState.Draining() || nochk.CheckAddr != "" || nochk.Fields["srv_fqdn"] != "-" {
		t.Errorf("nochk = %+v", nochk)
	}
}

func TestParseServersStateErrors(t *testing.T) {
	hdr := "# be_id be_name srv_id srv_name srv_op_state srv_admin_state\n"
	tests := []struct {
		name    string
		text    string
		wantErr string
		wantN   int
	}{
		{name: "empty backend list", text: "1\n" + hdr + "\n", wantN: 0},
		{name: "fewer columns of an older or newer version", text: "1\n" + hdr + "1 b 1 s 2 0\n", wantN: 1},
		{name: "CRLF", text: "1\r\n" + strings.TrimSuffix(hdr, "\n") + "\r\n1 b 1 s 2 0\r\n", wantN: 1},
		{name: "nothing", text: "", wantErr: "no header"},
		{name: "an error answer", text: "Can't find backend.\n", wantErr: "format version"},
		{name: "version 2", text: "2\n" + hdr, wantErr: "format version"},
		{name: "missing column", text: "1\n# be_name srv_name srv_op_state\n", wantErr: "lacks column \"srv_admin_state\""},
		{name: "duplicate column", text: "1\n# be_name be_name srv_name srv_op_state srv_admin_state\n", wantErr: "twice"},
		{name: "short row", text: "1\n" + hdr + "1 b 1 s 2\n", wantErr: "5 fields"},
		{name: "non-numeric state", text: "1\n" + hdr + "1 b 1 s up 0\n", wantErr: "srv_op_state"},
		{name: "negative admin state", text: "1\n" + hdr + "1 b 1 s 2 -1\n", wantErr: "negative"},
		{name: "row before header", text: "1\n1 b 1 s 2 0\n", wantErr: "before the header"},
		{name: "two headers", text: "1\n" + hdr + hdr, wantErr: "second header"},
		{name: "placeholder names", text: "1\n" + hdr + "1 - 1 - 2 0\n", wantErr: "without a backend"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseServersState(tc.text)
			checkErr(t, err, tc.wantErr)
			if tc.wantErr == "" && len(got) != tc.wantN {
				t.Errorf("%d servers, want %d", len(got), tc.wantN)
			}
		})
	}
}

func FuzzParseServersState(f *testing.F) {
	f.Add(capturedServersState)
	f.Add("1\n# be_name srv_name srv_op_state srv_admin_state\nb s 2 0\n")
	f.Add("1\n# be_name srv_name srv_op_state srv_admin_state\nb s 99999999999999999999 0\n")
	f.Add("Permission denied\n")
	f.Fuzz(func(t *testing.T, text string) {
		states, err := ParseServersState(text)
		if err != nil {
			return
		}
		for _, s := range states {
			if s.Backend == "" || s.Server == "" {
				t.Fatalf("parsed a row without names: %+v", s)
			}
			_ = s.AdminState.String()
			_ = s.OpState.String()
		}
	})
}

func TestAdminStateString(t *testing.T) {
	tests := []struct {
		s    AdminState
		want string
	}{
		{0, "ready"}, {AdminForcedMaint, "maint"}, {AdminForcedDrain, "drain"},
		{AdminForcedMaint | AdminHostnameMaint, "maint+hostname-maint"}, {0x180, "0x180"},
	}
	for _, tc := range tests {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("AdminState(%#x) = %q, want %q", uint(tc.s), got, tc.want)
		}
	}
}

func TestParseRuntimeAddress(t *testing.T) {
	tests := []struct {
		in, network, addr, wantErr string
	}{
		{in: "unix:/run/haproxy/admin.sock", network: "unix", addr: "/run/haproxy/admin.sock"},
		{in: "/run/haproxy/admin.sock", network: "unix", addr: "/run/haproxy/admin.sock"},
		{in: "unix@/run/haproxy/admin.sock", network: "unix", addr: "/run/haproxy/admin.sock"},
		{in: "tcp:127.0.0.1:9999", network: "tcp", addr: "127.0.0.1:9999"},
		{in: "ipv4@127.0.0.1:9999", network: "tcp", addr: "127.0.0.1:9999"},
		{in: "[::1]:9999", network: "tcp", addr: "[::1]:9999"},
		{in: "unix:", wantErr: "empty"},
		{in: "lb1", wantErr: "want unix:"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			n, a, err := ParseRuntimeAddress(tc.in)
			checkErr(t, err, tc.wantErr)
			if tc.wantErr == "" && (n != tc.network || a != tc.addr) {
				t.Errorf("= %s %s, want %s %s", n, a, tc.network, tc.addr)
			}
		})
	}
}

// fakeRuntime is a scripted runtime API on a unix socket: it answers each
// command from a function, the way HAProxy's non-interactive mode does (one
// command, one answer, close). It records the commands.
type fakeRuntime struct {
	ln     net.Listener
	mu     sync.Mutex
	cmds   []string
	answer func(n int, cmd string) (string, bool) // false: close without answering
	wg     sync.WaitGroup
}

func startFakeRuntime(t *testing.T, answer func(n int, cmd string) (string, bool)) *fakeRuntime {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "rt.sock"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRuntime{ln: ln, answer: answer}
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return
				}
				cmd := strings.TrimSuffix(line, "\n")
				f.mu.Lock()
				n := len(f.cmds)
				f.cmds = append(f.cmds, cmd)
				f.mu.Unlock()
				if a, ok := f.answer(n, cmd); ok {
					_, _ = c.Write([]byte(a))
				}
			})
		}
	})
	t.Cleanup(func() { ln.Close(); f.wg.Wait() })
	return f
}

func (f *fakeRuntime) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cmds...)
}

func TestRuntimeClientAnswers(t *testing.T) {
	ref := ServerRef{Backend: "be_write", Server: "db1"}
	tests := []struct {
		name      string
		answer    func(n int, cmd string) (string, bool)
		call      func(context.Context, *RuntimeClient) error
		wantErr   string
		wantIs    error
		wantTries int
		wantFail  bool // fails with an error not checked by text
	}{
		{name: "set state ok", answer: func(int, string) (string, bool) { return "\n", true },
			call: func(ctx context.Context, c *RuntimeClient) error { return c.SetServerState(ctx, ref, StateMaint) }, wantTries: 1},
		{name: "permission denied is ErrNotAdmin with the fix, not retried",
			answer:  func(int, string) (string, bool) { return "Permission denied\n\n", true },
			call:    func(ctx context.Context, c *RuntimeClient) error { return c.ShutdownSessions(ctx, ref) },
			wantErr: "add \"level admin\"", wantIs: ErrNotAdmin, wantTries: 1},
		{name: "no such server is ErrNoSuchServer, not retried",
			answer:  func(int, string) (string, bool) { return "No such server.\n\n", true },
			call:    func(ctx context.Context, c *RuntimeClient) error { return c.SetServerState(ctx, ref, StateReady) },
			wantErr: "check the backend/server names", wantIs: ErrNoSuchServer, wantTries: 1},
		{name: "dropped connection is retried and then succeeds",
			answer: func(n int, _ string) (string, bool) { return "\n", n >= 2 },
			call:   func(ctx context.Context, c *RuntimeClient) error { return c.SetServerHealth(ctx, ref, HealthUp) }, wantTries: 3},
		{name: "dropped connection every time gives up after the attempts",
			answer:   func(int, string) (string, bool) { return "", false },
			call:     func(ctx context.Context, c *RuntimeClient) error { return c.SetServerHealth(ctx, ref, HealthUp) },
			wantFail: true, wantTries: 3},
		{name: "set addr success message",
			answer: func(int, string) (string, bool) {
				return "IP changed from '127.0.0.2' to '127.0.0.1', port changed from '25099' to '25011' by 'stats socket command'\n\n", true
			},
			call: func(ctx context.Context, c *RuntimeClient) error {
				return c.SetServerAddr(ctx, ref, "127.0.0.1", 25011)
			}, wantTries: 1},
		{name: "set addr unchanged is success",
			answer: func(int, string) (string, bool) {
				return "no need to change the addr, no need to change the port by 'stats socket command'\n\n", true
			},
			call: func(ctx context.Context, c *RuntimeClient) error { return c.SetServerAddr(ctx, ref, "::1", 1) }, wantTries: 1},
		{name: "set addr refused",
			answer:  func(int, string) (string, bool) { return "Invalid addr '1.2.3' by 'stats socket command'\n\n", true },
			call:    func(ctx context.Context, c *RuntimeClient) error { return c.SetServerAddr(ctx, ref, "10.0.0.1", 1) },
			wantErr: "Invalid addr", wantIs: ErrHAProxyCommand, wantTries: 1},
		{name: "set addr needs an IP", answer: func(int, string) (string, bool) { return "\n", true },
			call: func(ctx context.Context, c *RuntimeClient) error {
				return c.SetServerAddr(ctx, ref, "db1.example", 3306)
			},
			wantErr: "want an IP address", wantTries: 0},
		{name: "unknown command", answer: func(int, string) (string, bool) { return "Unknown command, but maybe...\n", true },
			call:    func(ctx context.Context, c *RuntimeClient) error { return c.ShutdownSessions(ctx, ref) },
			wantErr: "does not know", wantIs: ErrHAProxyCommand, wantTries: 1},
		{name: "bad name never reaches haproxy", answer: func(int, string) (string, bool) { return "\n", true },
			call: func(ctx context.Context, c *RuntimeClient) error {
				return c.SetServerState(ctx, ServerRef{Backend: "b", Server: "s; shutdown sessions server b/t"}, StateMaint)
			}, wantErr: "haproxy names use", wantTries: 0},
		{name: "show servers state of an unknown backend",
			answer: func(int, string) (string, bool) { return "Can't find backend.\n\n", true },
			call: func(ctx context.Context, c *RuntimeClient) error {
				_, err := c.ShowServersState(ctx, "nope")
				return err
			}, wantErr: "check the backend/server names", wantIs: ErrNoSuchServer, wantTries: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakeRuntime(t, tc.answer)
			c, err := NewRuntimeClient("unix:"+f.ln.Addr().String(), RuntimeOptions{Timeout: time.Second,
				Retry: RetryPolicy{Attempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}})
			if err != nil {
				t.Fatal(err)
			}
			err = tc.call(t.Context(), c)
			if tc.wantFail {
				if err == nil {
					t.Error("no error")
				}
			} else {
				checkErr(t, err, tc.wantErr)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("err = %v, want errors.Is %v", err, tc.wantIs)
			}
			if got := len(f.commands()); got != tc.wantTries {
				t.Errorf("haproxy saw %d commands (%q), want %d", got, f.commands(), tc.wantTries)
			}
		})
	}
}

func TestRuntimeClientCtxAndUnreachable(t *testing.T) {
	// A socket that never answers: the ctx deadline ends the wait.
	testCtx := t.Context() // done before cleanups run
	f := startFakeRuntime(t, func(int, string) (string, bool) { <-testCtx.Done(); return "", false })
	c, err := NewRuntimeClient(f.ln.Addr().String(), RuntimeOptions{Timeout: 10 * time.Second, Retry: RetryPolicy{Attempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = c.SetServerState(ctx, ServerRef{Backend: "b", Server: "s"}, StateMaint)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the ctx deadline", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("ctx not honoured: %s", time.Since(start))
	}

	c2, _ := NewRuntimeClient("unix:"+filepath.Join(t.TempDir(), "none.sock"), RuntimeOptions{Retry: RetryPolicy{Attempts: 2, InitialBackoff: time.Millisecond}})
	err = c2.ShutdownSessions(t.Context(), ServerRef{Backend: "b", Server: "s"})
	if err == nil || !strings.Contains(err.Error(), "is haproxy running") {
		t.Fatalf("err = %v, want a hint that haproxy is not there", err)
	}
}

// An HAProxy older than 2.4 has no "get var": routes still go through,
// unguarded, and the detail says so. (A scripted runtime API: only HAProxy
// 2.6 can be installed here.)
func TestHAProxyGuardWithoutProcessVariables(t *testing.T) {
	f := startFakeRuntime(t, func(_ int, cmd string) (string, bool) {
		switch {
		case strings.HasPrefix(cmd, "get var"):
			return "Unknown command. Please enter one of the following commands only :\n  help\n", true
		case strings.HasPrefix(cmd, "show servers state"):
			return "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n" +
				"2 be 1 s1 127.0.0.1 2 0 1 1 0 1 0 0 0 0 0 0 - 1 - 0 0 - - 0\n" +
				"2 be 2 s2 127.0.0.1 0 1 1 1 0 1 0 0 0 0 0 0 - 2 - 0 0 - - 0\n", true
		}
		return "\n", true
	})
	tg, err := NewHAProxyTarget(HAProxyConfig{Name: "old", RuntimeAPI: "unix:" + f.ln.Addr().String(),
		WriteServers: map[string]string{"a": "be/s1", "b": "be/s2"}, Timeout: time.Second}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	out, err := tg.Route(t.Context(), RouteChange{Cluster: "c1", Epoch: 2, Token: 9, NewPrimary: Endpoint{Name: "a"}})
	if err != nil {
		t.Fatalf("route: %v (%s)", err, out.Detail)
	}
	if !strings.Contains(out.Detail, "attempts not ordered") {
		t.Errorf("detail %q does not say the route went unguarded", out.Detail)
	}
	for _, c := range f.commands() {
		if strings.Contains(c, "set var") {
			t.Errorf("sent %q to an HAProxy without process variables", c)
		}
	}
}
