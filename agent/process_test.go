package agent

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// listenerPID reads /proc as the kernel writes it: a fake tree with one
// listening socket on port 3306 (0CEA) held by a mariadbd, and distractors
// (the same port not listening, another port listening, a non-server
// process holding a matching socket).
func TestListenerPID(t *testing.T) {
	proc := t.TempDir()
	write := func(path, content string) {
		t.Helper()
		p := filepath.Join(proc, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(pid, fd, target string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(proc, pid, "fd"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(proc, pid, "fd", fd)); err != nil {
			t.Fatal(err)
		}
	}
	write("net/tcp", `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   106        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0CEA 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000   106        0 5555 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7777 1 0000000000000000 100 0 0 10 0
`)
	write("10/comm", "bash\n")
	link("10", "3", "socket:[4242]") // not a server, though it holds the socket
	write("20/comm", "mariadbd\n")
	link("20", "1", "/dev/null")
	link("20", "25", "socket:[5555]")
	link("20", "26", "socket:[4242]")
	write("30/comm", "mysqld\n")
	link("30", "4", "socket:[7777]")

	pid, err := listenerPID(proc, 3306)
	if err != nil || pid != 20 {
		t.Errorf("port 3306: pid %d, err %v; want 20", pid, err)
	}
	if pid, err := listenerPID(proc, 8000); err != nil || pid != 30 {
		t.Errorf("port 8000: pid %d, err %v; want 30", pid, err)
	}
	if pid, err := listenerPID(proc, 3307); err == nil {
		t.Errorf("port 3307, where nothing listens: pid %d, want an error", pid)
	}
}

// The vitals a lease ping carries decode into the probe they were made
// from, aged from the ping's arrival.
func TestVitalsRoundTrip(t *testing.T) {
	now := time.Date(2026, 12, 6, 1, 0, 0, 0, time.UTC)
	o := Observation{ObservedAt: now.Add(-120 * time.Millisecond), Reachable: true, ReadOnly: false}
	o.SemiSync.SourceEnabled, o.SemiSync.SourceClients, o.SemiSync.WaitForReplicaCount = true, 2, 1
	arrived := now.Add(40 * time.Millisecond)
	pr := decodeVitals(encodeVitals(o, true, now), arrived)
	if pr == nil || !pr.Reachable || pr.ReadOnly || !pr.SemiSync.SourceEnabled || pr.SemiSync.SourceClients != 2 || pr.SemiSync.WaitCount != 1 ||
		!pr.ObservedAt.Equal(arrived.Add(-120*time.Millisecond)) {
		t.Errorf("decoded %+v", pr)
	}
	fenced := Observation{ObservedAt: now, Reachable: true, SuperReadOnly: true}
	if pr := decodeVitals(encodeVitals(fenced, true, now), now); pr == nil || !pr.ReadOnly {
		t.Errorf("a super_read_only instance decoded as %+v", pr)
	}
	if pr := decodeVitals(encodeVitals(Observation{ObservedAt: now, Error: "timeout"}, true, now), now); pr == nil || pr.Reachable {
		t.Errorf("a failed probe decoded as %+v", pr)
	}
	if pr := decodeVitals(encodeVitals(o, false, now), now); pr != nil {
		t.Errorf("no local instance decoded as %+v", pr)
	}
	if !pr.SemiSync.ShortSince.IsZero() {
		t.Errorf("an instance with enough semi-sync replicas decoded as short since %v", pr.SemiSync.ShortSince)
	}
	short := o
	short.SemiSync.SourceClients, short.SemiSyncShortSince = 0, o.ObservedAt.Add(-1500*time.Millisecond)
	if pr := decodeVitals(encodeVitals(short, true, now), arrived); pr == nil || !pr.SemiSync.ShortSince.Equal(pr.ObservedAt.Add(-1500*time.Millisecond)) {
		t.Errorf("short of semi-sync replicas for 1.5 s decoded as %+v", pr)
	}
}
