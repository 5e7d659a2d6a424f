package netlab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/integration/sandbox"
	"github.com/regentdb/regent/topology/mysqltest"
)

// TestLabPlumbingAndNetworkFaults checks the lab without databases: hosts
// reach each other and the root namespace, a cut is silent (a timeout, not
// a refusal) and only between the hosts named, Heal restores it, the
// emulated link delays and drops, and the lab leaves nothing behind.
func TestLabPlumbingAndNetworkFaults(t *testing.T) {
	var id string
	t.Run("lab", func(t *testing.T) {
		l := New(t)
		id = l.ID
		a, b, c := l.AddHost("a"), l.AddHost("b"), l.AddHost("c")
		t.Logf("lab %s: subnet %s, bridge %s, hosts %s %s %s", l.ID, l.Subnet, l.Bridge, a, b, c)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		addr := echoServer(t, ctx, a)

		for _, from := range []*Host{l.Root, b, c} {
			if err := echo(ctx, from, addr, 5*time.Second); err != nil {
				t.Fatalf("%s -> a before any fault: %v", from.Name, err)
			}
		}
		out, err := b.Run(ctx, "ip", "-4", "route")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "default") {
			t.Fatalf("a lab host has a route out:\n%s", out)
		}

		l.CutOff(a, b)
		err = echo(ctx, b, addr, time.Second)
		if !isTimeout(err) {
			t.Fatalf("b -> a after CutOff(a, b): want a timeout (silence), got %v", err)
		}
		for _, from := range []*Host{l.Root, c} {
			if err := echo(ctx, from, addr, 5*time.Second); err != nil {
				t.Fatalf("%s -> a after CutOff(a, b): %v", from.Name, err)
			}
		}
		l.Heal(a, b)
		if err := echo(ctx, b, addr, 5*time.Second); err != nil {
			t.Fatalf("b -> a after Heal: %v", err)
		}
		l.CutOff(a, l.Except(a, c)...)
		if err := echo(ctx, c, addr, 5*time.Second); err != nil {
			t.Fatalf("c -> a after cutting a off from all but c: %v", err)
		}
		if err := echo(ctx, l.Root, addr, time.Second); !isTimeout(err) {
			t.Fatalf("root -> a after cutting a off from all but c: want a timeout, got %v", err)
		}
		l.Heal(a)

		const delay = 40 * time.Millisecond
		l.Netem(a, 0, delay, 5*time.Millisecond)
		// A lower bound only: the emulated delay is a minimum, whatever
		// the machine's load adds.
		conn, err := l.Root.Dial(ctx, "tcp", addr)
		if err != nil {
			t.Fatalf("root -> a under Netem: %v", err)
		}
		rtt, err := roundTrip(conn)
		conn.Close()
		if err != nil {
			t.Fatalf("echo under Netem: %v", err)
		}
		if rtt < 2*(delay-5*time.Millisecond) {
			t.Fatalf("round trip to a under a %v delay each way took %v", delay, rtt)
		}
		t.Logf("round trip to a with %v each way: %v", delay, rtt)
		l.Netem(a, 100, 0, 0)
		if err := echo(ctx, b, addr, time.Second); !isTimeout(err) {
			t.Fatalf("b -> a under 100%% loss: want a timeout, got %v", err)
		}
		l.ClearNetem(a)
		if err := echo(ctx, b, addr, 5*time.Second); err != nil {
			t.Fatalf("b -> a after ClearNetem: %v", err)
		}
	})
	if id == "" {
		return
	}
	// Cleanup ran when the subtest ended.
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.Contains(e.Name(), "-"+id+"-") {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if lid, _, ok := parseLinkName(i.Name); ok && lid == id {
			t.Errorf("interface %s left behind", i.Name)
		}
	}
	if _, err := os.Stat("/run/regent-netlab/" + id); err == nil {
		t.Errorf("state file of lab %s left behind", id)
	}
}

// echoServer serves an echo on h's port 7777 until ctx ends.
func echoServer(t *testing.T, ctx context.Context, h *Host) string {
	t.Helper()
	ln, err := h.Listen(ctx, "tcp", net.JoinHostPort(h.IP, "7777"))
	if err != nil {
		t.Fatal(err)
	}
	go func() { <-ctx.Done(); ln.Close() }()
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

// echo connects from h to addr and exchanges one line, all within timeout.
func echo(ctx context.Context, h *Host, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := h.Dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	_ = c.SetDeadline(deadline)
	_, err = roundTrip(c)
	return err
}

func roundTrip(c net.Conn) (time.Duration, error) {
	start := time.Now()
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return 0, err
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return err != nil && (errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()))
}

// TestRegentFencesAndReplacesACutOffPrimary is the lab's smoke test, on
// each flavour with the Fast profile: db1, the primary, is cut off from
// db2 and db3 but still reached by HAProxy and the test; Regent must fence
// it, promote another instance, route writes there (through HAProxy, from
// the root namespace), lose no acknowledged write, and after the cut heals
// keep db1 read-only (rejoined as a replica, or quarantined).
func TestRegentFencesAndReplacesACutOffPrimary(t *testing.T) {
	for _, k := range mysqltest.Kinds(t) {
		t.Run(string(k), func(t *testing.T) {
			start := time.Now()
			logf := func(format string, args ...any) {
				t.Helper()
				t.Logf("[%6.2fs] %s", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
			}
			r := StartRegent(t, k, Options{Profile: Fast})
			db1, db2, db3 := r.DBHosts[0], r.DBHosts[1], r.DBHosts[2]
			logf("lab %s up: subnet %s, db1 %s, db2 %s, db3 %s, HAProxy %s", r.ID, r.Subnet, db1.IP, db2.IP, db3.IP, r.HAProxyAddr)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			before, err := r.LeaderCluster(ctx)
			if err != nil {
				t.Fatal(err)
			}

			w := mysqltest.NewWriter(r.HAProxyAddr, k, 100000, 20*time.Millisecond)
			w.Start(ctx)
			defer w.Stop()
			w.WaitAcked(t, 20, 30*time.Second)
			logf("writer: %d rows acknowledged through HAProxy", len(w.Acked()))

			r.CutOff(db1, db2, db3)
			cutAt := time.Now()
			logf("db1 cut off from db2 and db3 (HAProxy and the test still reach it)")

			// Fenced: read_only=ON, or mysqld stopped by its agent (MySQL
			// cannot turn read_only on while a commit waits for a semi-sync
			// acknowledgement that cannot come; the agent then shuts it down).
			var how string
			stopped := false
			mysqltest.Eventually(t, "db1 fenced (read_only=ON, or mysqld stopped by its agent)", 30*time.Second, func() (bool, string) {
				if db1.DB.Exited() {
					how, stopped = "mysqld stopped by its agent", true
					return true, ""
				}
				qctx, qcancel := context.WithTimeout(ctx, time.Second)
				defer qcancel()
				var ro string
				err := db1.DB.DB().QueryRowContext(qctx, "SELECT @@GLOBAL.read_only").Scan(&ro)
				var me *mysql.MySQLError
				if errors.As(err, &me) && me.Number == 1053 { // ER_SERVER_SHUTDOWN
					how, stopped = "mysqld shutting down, stopped by its agent", true
					return true, ""
				}
				if err != nil {
					return false, err.Error()
				}
				how = "read_only=ON"
				return ro == "1", "read_only=" + ro
			})
			logf("db1 fenced (%s) %.2fs after the cut", how, time.Since(cutAt).Seconds())

			var after api.Cluster
			mysqltest.Eventually(t, "another instance promoted", 60*time.Second, func() (bool, string) {
				c, err := r.LeaderCluster(ctx)
				if err != nil {
					return false, err.Error()
				}
				in, _ := sandbox.InstanceOf(c, c.Primary)
				if c.Primary == "" || c.Primary == "db1" || c.Epoch <= before.Epoch || in.ReadOnly == nil || *in.ReadOnly {
					return false, sandbox.Describe(c)
				}
				after = c
				return true, ""
			})
			newPrimary := r.Host(after.Primary)
			logf("%s promoted (epoch %d -> %d) %.2fs after the cut", newPrimary.Name, before.Epoch, after.Epoch, time.Since(cutAt).Seconds())

			mysqltest.Eventually(t, "a write through HAProxy lands on "+newPrimary.Name, 60*time.Second, func() (bool, string) {
				db := r.AppDB()
				defer db.Close()
				qctx, qcancel := context.WithTimeout(ctx, 3*time.Second)
				defer qcancel()
				conn, err := db.Conn(qctx)
				if err != nil {
					return false, err.Error()
				}
				defer conn.Close()
				if _, err := conn.ExecContext(qctx, "INSERT INTO writes (id) VALUES (-1) ON DUPLICATE KEY UPDATE at=CURRENT_TIMESTAMP(6)"); err != nil {
					return false, err.Error()
				}
				var id uint32
				if err := conn.QueryRowContext(qctx, "SELECT @@server_id").Scan(&id); err != nil {
					return false, err.Error()
				}
				return id == newPrimary.DB.ServerID, fmt.Sprintf("landed on server_id %d", id)
			})
			logf("a write through HAProxy succeeded on %s %.2fs after the cut", newPrimary.Name, time.Since(cutAt).Seconds())
			ackedAtFailover := len(w.Acked())
			w.WaitAcked(t, ackedAtFailover+10, 30*time.Second)
			w.Stop()
			acked := w.Acked()
			failed, _, lastErr := w.Failed()
			missing := w.Missing(t, newPrimary.DB)
			logf("writer: %d acknowledged, %d failed (last error: %v), %d acknowledged rows missing on %s", len(acked), failed, lastErr, len(missing), newPrimary.Name)
			if len(missing) > 0 {
				t.Errorf("acknowledged writes lost: %v", missing)
			}

			r.Heal(db1)
			healAt := time.Now()
			logf("cut healed")
			if stopped {
				// As its service manager (or an operator) would: it comes
				// back read-only, as every server's configuration says.
				db1.DB.WaitExited(t, 2*time.Minute)
				logf("db1's mysqld, stopped by the fence, has exited")
				r.RestartMySQL(db1)
				logf("db1's mysqld restarted")
			}
			var final api.Instance
			mysqltest.Eventually(t, "db1 rejoined as a replica of "+newPrimary.Name+" or quarantined", 90*time.Second, func() (bool, string) {
				c, err := r.LeaderCluster(ctx)
				if err != nil {
					return false, err.Error()
				}
				in, ok := sandbox.InstanceOf(c, "db1")
				if !ok {
					return false, sandbox.Describe(c)
				}
				rejoined := in.Role == api.RoleReplica && in.Replication != nil && in.Replication.SourceName == newPrimary.Name &&
					in.Replication.IOThread == api.ThreadRunning && in.Replication.SQLThread == api.ThreadRunning
				if (rejoined || in.Role == api.RoleQuarantined) && c.Operation == nil {
					final = in
					return true, ""
				}
				return false, sandbox.Describe(c)
			})
			ro := db1.DB.QueryString(t, "SELECT @@GLOBAL.read_only")
			logf("db1 after healing: role %s%s, read_only=%s, %.2fs after the heal", final.Role, quarantine(final), ro, time.Since(healAt).Seconds())
			if ro != "1" {
				t.Errorf("db1 is writable after healing (read_only=%s)", ro)
			}
			if final.Role == api.RoleReplica {
				mysqltest.WaitCaughtUp(t, db1.DB, newPrimary.DB, 60*time.Second)
				if m := w.Missing(t, db1.DB); len(m) > 0 {
					t.Errorf("rejoined db1 misses acknowledged writes %v", m)
				}
			}
			if !slices.Equal(w.Acked(), acked) {
				t.Errorf("the writer acknowledged more after it stopped")
			}
		})
	}
}

func quarantine(in api.Instance) string {
	if in.QuarantineReason == "" {
		return ""
	}
	return " (" + in.QuarantineReason + ")"
}

// TestNewRemovesLeftoversOfCrashedRuns: what a lab of a test process that
// no longer runs left behind (its namespace, bridge, forwarding rule and
// state file) is gone once a new lab starts.
func TestNewRemovesLeftoversOfCrashedRuns(t *testing.T) {
	requireRoot(t)
	done := exec.Command("true")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	dead := done.ProcessState.Pid()
	id := randomHex(t, 3)
	ns := fmt.Sprintf("%s%d-%s-x", nsPrefix, dead, id)
	bridge := "rl" + id + "b"
	comment := fmt.Sprintf("regentlab %d %s", dead, id)
	root := &Host{Name: "root"}
	ctx := context.Background()
	t.Cleanup(func() {
		// In case the lab did not remove them.
		_ = removeNamespace(ctx, ns)
		_ = removeLinks(ctx, id)
		_ = removeForwardRules(ctx, func(pid int, lid string) bool { return lid == id })
		_ = os.Remove(stateDir + "/" + id)
	})
	for _, args := range [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "link", "add", bridge, "type", "bridge"},
		{"iptables", "-w", "-I", "FORWARD", "-i", bridge, "-o", bridge, "-m", "comment", "--comment", comment, "-j", "ACCEPT"},
	} {
		if _, err := root.Run(ctx, args[0], args[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stateDir+"/"+id, fmt.Appendf(nil, "%d 10.99.99.0/24\n", dead), 0o644); err != nil {
		t.Fatal(err)
	}

	New(t)

	if fileExists("/run/netns/" + ns) {
		t.Errorf("namespace %s left", ns)
	}
	if _, err := net.InterfaceByName(bridge); err == nil {
		t.Errorf("bridge %s left", bridge)
	}
	if out, _ := root.Run(ctx, "iptables", "-w", "-S", "FORWARD"); strings.Contains(out, comment) {
		t.Errorf("forwarding rule %q left:\n%s", comment, out)
	}
	if fileExists(stateDir + "/" + id) {
		t.Errorf("state file of lab %s left", id)
	}
}

// TestHostFaults checks the process faults and their heals, and the
// emulated link under real traffic, on a replica's host of an installation
// with the Defaults profile and pull-only routing: each fault takes effect,
// replication goes on through a lossy, slow link, and after all of them the
// installation is back where it started.
func TestHostFaults(t *testing.T) {
	for _, k := range mysqltest.Kinds(t) {
		t.Run(string(k), func(t *testing.T) {
			r := StartRegent(t, k, Options{Profile: Defaults, PullOnly: true})
			h := r.DBHosts[2]
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()

			r.Netem(h, 5, 20*time.Millisecond, 5*time.Millisecond)
			db := r.AppDB()
			for i := 1; i <= 20; i++ {
				if _, err := db.ExecContext(ctx, fmt.Sprintf("INSERT INTO writes (id) VALUES (%d)", -1000-i)); err != nil {
					t.Fatalf("write through HAProxy while %s's link is degraded: %v", h.Name, err)
				}
			}
			db.Close()
			mysqltest.WaitCaughtUp(t, h.DB, r.DBHosts[0].DB, 60*time.Second)
			r.ClearNetem(h)
			r.WaitReady(t, "db1", 60*time.Second)

			r.FreezeHost(h)
			for _, pid := range []int{h.DB.PID(), h.Agent.PID()} {
				mysqltest.Eventually(t, fmt.Sprintf("pid %d stopped", pid), 10*time.Second, func() (bool, string) {
					st := procState(pid)
					return st == "T" || st == "t", "state " + st
				})
			}
			r.ThawHost(h)
			for _, pid := range []int{h.DB.PID(), h.Agent.PID()} {
				mysqltest.Eventually(t, fmt.Sprintf("pid %d running again", pid), 10*time.Second, func() (bool, string) {
					st := procState(pid)
					return st != "T" && st != "t", "state " + st
				})
			}

			r.KillAgent(h)
			if pid := h.Agent.PID(); pid != 0 {
				t.Fatalf("the agent still runs as %d after KillAgent", pid)
			}
			r.RestartAgent(h)
			mysqltest.Eventually(t, "the restarted agent answers", 30*time.Second, func() (bool, string) {
				_, err := r.API(h).Status(ctx)
				return err == nil, fmt.Sprint(err)
			})

			r.FreezeMySQL(h)
			r.ThawMySQL(h)
			r.KillMySQL(h)
			if !h.DB.Exited() {
				t.Fatal("mysqld has not exited after KillMySQL")
			}
			r.RestartMySQL(h)

			r.WaitReady(t, "db1", 90*time.Second)
			if out, errOut, code := r.Ctl("status"); code != 0 || !strings.Contains(out, "db1") {
				t.Fatalf("regentctl status: exit %d: %s %s", code, out, errOut)
			}
			c, err := r.LeaderCluster(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("after freezing, thawing, killing and restarting %s's processes: %s", h.Name, sandbox.Describe(c))
		})
	}
}

// procState is the state letter of /proc/PID/stat ("" when unreadable).
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}
