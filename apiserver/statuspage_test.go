package apiserver_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/apiserver"
	"github.com/regentdb/regent/apiserver/apiservertest"
)

func TestStatusPageNamesThePrimary(t *testing.T) {
	fake := apiservertest.NewFakeBackend()
	defer fake.Close()
	_, ts := newServer(t, fake, nil)
	a := call(t, ts, "GET", "/", readOnly, "")
	if a.status != 200 || !strings.HasPrefix(a.header.Get("Content-Type"), "text/html") {
		t.Fatalf("%d %s", a.status, a.header.Get("Content-Type"))
	}
	page := string(a.body)
	for _, want := range []string{
		`<meta http-equiv="refresh" content="5">`,
		`primary <b class="primary-name">db1</b>`,
		`Cluster main`, `epoch <b>7</b>`, `semi_sync`,
		`db2`, `db3`, `timeout`, // db3 unreachable from a3
		`ReplicaLagging`, `Automatic failover is possible.`,
		`op-0006`, `DeadPrimary`, // the history
		`a1`, `a2`, `a3`, `leader`, // the Raft members
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script") {
		t.Error("the page has a script")
	}
	if csp := a.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
}

func TestStatusPageSaysWhyFailoverIsBlocked(t *testing.T) {
	fake := apiservertest.NewFakeBackend()
	defer fake.Close()
	_, ts := newServer(t, fake, nil)
	if a := call(t, ts, "POST", "/v1/clusters/main/pause", admin, `{"reason":"kernel upgrade"}`); a.status != 200 {
		t.Fatal(a.status)
	}
	page := string(call(t, ts, "GET", "/", readOnly, "").body)
	for _, want := range []string{"AUTOMATIC FAILOVER BLOCKED", "PAUSED by ops-admin", "kernel upgrade"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

func TestStatusPageShowsMaintenanceAndRelocations(t *testing.T) {
	fake := apiservertest.NewFakeBackend()
	defer fake.Close()
	_, ts := newServer(t, fake, nil)
	if a := call(t, ts, "POST", "/v1/clusters/main/instances/db3/maintenance", admin, `{"reason":"disk swap","for":"2h"}`); a.status != 200 {
		t.Fatal(a.status, string(a.body))
	}
	if a := call(t, ts, "POST", "/v1/clusters/main/instances/db3/repoint", admin, `{"to":"db2"}`); a.status != 200 {
		t.Fatal(a.status, string(a.body))
	}
	page := string(call(t, ts, "GET", "/", readOnly, "").body)
	for _, want := range []string{"maintenance until", "by ops-admin: disk swap", "under db2 (regentctl repoint by ops-admin)"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

func TestStatusPageEscapesEverything(t *testing.T) {
	fake := apiservertest.NewFakeBackend()
	defer fake.Close()
	evil := `<script>alert(1)</script>`
	c, _ := fake.Cluster(context.Background(), "main")
	c.Primary = evil
	c.Instances[0].Name = evil
	c.Instances[0].Replication = &api.Replication{Source: `"><img src=x onerror=alert(1)>`, LastSQLError: evil}
	c.Problems[0].Reason = evil
	fake.SetCluster(c)
	_, ts := newServer(t, fake, nil)
	page := string(call(t, ts, "GET", "/", readOnly, "").body)
	if strings.Contains(page, "<script>") || strings.Contains(page, "<img") {
		t.Fatal("the page does not escape what the Backend returns")
	}
	if !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Fatal("the escaped primary name is not on the page")
	}
}

func TestStatusPageShowsBackendErrors(t *testing.T) {
	fake := apiservertest.NewFakeBackend()
	defer fake.Close()
	_, ts := newServer(t, fake, nil)
	fake.FailNext("Cluster", errors.New("probe state unavailable: agent starting"))
	a := call(t, ts, "GET", "/", readOnly, "")
	if a.status != 200 || !strings.Contains(string(a.body), "probe state unavailable") {
		t.Fatalf("%d: the page should show the cluster's error", a.status)
	}
	fake.FailNext("Status", fmt.Errorf("raft not started: %w", apiserver.ErrUnavailable))
	a = call(t, ts, "GET", "/", readOnly, "")
	if a.status != 503 || !strings.Contains(string(a.body), "raft not started") {
		t.Fatalf("%d: the page should show the status error", a.status)
	}
}

// chromiumPath finds Debian's chromium or fails the test saying what to
// install.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found in PATH: install Debian's chromium package (apt-get install chromium), which provides /usr/bin/chromium")
	return ""
}

// runChromium runs headless Chromium with its own profile directory.
func runChromium(t *testing.T, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	home := t.TempDir()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
		"--user-data-dir=" + filepath.Join(home, "profile"), "--hide-scrollbars"}
	cmd := exec.CommandContext(ctx, chromiumPath(t), append(base, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.Bytes()
}

// pageServer serves the status page without credentials: a browser sends
// no bearer token.
func pageServer(t *testing.T) string {
	fake := apiservertest.NewFakeBackend()
	t.Cleanup(fake.Close)
	// db3 in maintenance: the page shows who, why and until when; db2
	// relocated under db3.
	if _, err := fake.StartMaintenance(context.Background(), "main", "db3", api.MaintenanceRequest{Reason: "disk swap", For: api.Duration(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := fake.Repoint(context.Background(), "main", "db2", api.RepointRequest{To: "db3"}); err != nil {
		t.Fatal(err)
	}
	_, ts := newServer(t, fake, func(c *apiserver.Config) { c.Auth.OpenStatusPage = true })
	if !strings.HasPrefix(ts.URL, "http://127.0.0.1:") {
		t.Fatalf("the test server is not on loopback: %s", ts.URL)
	}
	return ts.URL + "/"
}

func TestStatusPageScreenshotInChromium(t *testing.T) {
	url := pageServer(t)
	out := filepath.Join(t.TempDir(), "status.png")
	runChromium(t, "--screenshot="+out, "--window-size=1280,900", url)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("chromium wrote no screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	if got := img.Bounds().Size(); got != image.Pt(1280, 900) {
		t.Fatalf("screenshot is %v, want 1280x900", got)
	}
	colors, nonWhite := pixelStats(img)
	if colors < 50 || nonWhite < 0.05 || len(b) < 20_000 {
		t.Fatalf("the screenshot looks empty: %d colours, %.1f%% non-white, %d bytes", colors, 100*nonWhite, len(b))
	}
	if dir := os.Getenv("REGENT_SCREENSHOT_DIR"); dir != "" {
		// Keep it for a person to look at.
		if err := os.WriteFile(filepath.Join(dir, "regent-status-page.png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshot: %d bytes, %d colours, %.1f%% non-white", len(b), colors, 100*nonWhite)
}

func pixelStats(img image.Image) (colors int, nonWhite float64) {
	seen := map[[3]uint32]bool{}
	total, nw := 0, 0
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y += 2 {
		for x := r.Min.X; x < r.Max.X; x += 2 {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			seen[[3]uint32{cr >> 8, cg >> 8, cb >> 8}] = true
			total++
			if cr>>8 < 240 || cg>>8 < 240 || cb>>8 < 240 {
				nw++
			}
		}
	}
	return len(seen), float64(nw) / float64(total)
}

func TestStatusPageDOMInChromiumNamesThePrimary(t *testing.T) {
	url := pageServer(t)
	dom := string(runChromium(t, "--dump-dom", url))
	if !strings.Contains(dom, `<b class="primary-name">db1</b>`) {
		t.Fatalf("the rendered DOM does not name the primary db1:\n%s", dom)
	}
	if !strings.Contains(dom, "Cluster main") {
		t.Fatal("the rendered DOM does not name the cluster")
	}
	for _, want := range []string{"maintenance until", "disk swap", "UNACKNOWLEDGED FAILOVERS: op-0006", "under db3 (regentctl repoint"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered DOM lacks %q", want)
		}
	}
}
