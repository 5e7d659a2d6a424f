package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/regentdb/regent/config"
)

// scrubChild is the process TestScrubEnvironment inspects (helperMain runs
// it): it reads the secret as the agent does, says so, scrubs when told,
// and reports what it then sees of itself.
func scrubChild() {
	secret, err := config.ReadSecret("", "REGENT_TEST_SECRET")
	if err != nil {
		fmt.Println("error", err)
		return
	}
	in := bufio.NewReader(os.Stdin)
	fmt.Println("read")
	if _, err := in.ReadString('\n'); err != nil {
		return
	}
	if err := scrubEnvironment([]string{"REGENT_TEST_SECRET"}); err != nil {
		fmt.Println("error", err)
		return
	}
	dumpable, _ := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	env, _ := exec.Command("env").Output()
	fmt.Printf("scrubbed getenv=%q dumpable=%d child-inherits=%v copy-intact=%v\n", os.Getenv("REGENT_TEST_SECRET"), dumpable,
		bytes.Contains(env, []byte("REGENT_TEST_SECRET")), secret == os.Getenv("REGENT_TEST_EXPECT"))
	_, _ = io.Copy(io.Discard, in) // hold until the parent has looked
}

// A password given in the environment (*_env) is gone from
// /proc/PID/environ once the agent has read it, other variables stay, the
// agent's own copy still holds it, children do not inherit it, and the
// process is no longer dumpable (same-user processes cannot read its
// environ or memory).
func TestScrubEnvironment(t *testing.T) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	secret := "pw-" + hex.EncodeToString(b)
	cmd := helperCommand("scrub")
	cmd.Env = append(cmd.Env, "REGENT_TEST_SECRET="+secret, "REGENT_TEST_EXPECT="+secret, "REGENT_TEST_KEEP=visible")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stdin.Close(); _ = cmd.Wait() }()
	out := bufio.NewReader(stdout)
	line := func() string {
		t.Helper()
		s, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("child: %v (so far %q)", err, s)
		}
		if strings.HasPrefix(s, "error") {
			t.Fatalf("child: %s", s)
		}
		return strings.TrimSpace(s)
	}
	environ := func() []byte {
		t.Helper()
		b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/environ")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if got := line(); got != "read" {
		t.Fatalf("child says %q", got)
	}
	// With REGENT_TEST_EXPECT the value is in there twice; the scrub is
	// asked for one name only, so look for the variable itself.
	if !bytes.Contains(environ(), []byte("REGENT_TEST_SECRET="+secret)) {
		t.Fatal("the secret is not in the child's /proc/PID/environ to begin with: the test shows nothing")
	}
	if _, err := io.WriteString(stdin, "scrub\n"); err != nil {
		t.Fatal(err)
	}
	report := line()
	if want := `scrubbed getenv="" dumpable=0 child-inherits=false copy-intact=true`; report != want {
		t.Errorf("child reports %s\nwant %s", report, want)
	}
	after, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/environ")
	if errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0 {
		// Not dumpable: a process of the same user (this test, or a hook)
		// may no longer read it at all. Only root can check the bytes.
		t.Logf("after the scrub this process (uid %d) may not read the child's environ: %v", os.Geteuid(), err)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(after, []byte("REGENT_TEST_SECRET="+secret)) || bytes.Contains(after, []byte("REGENT_TEST_SECRET="+secret[:8])) {
		t.Errorf("the secret is still in /proc/PID/environ after the scrub")
	}
	if !bytes.Contains(after, []byte("\x00REGENT_TEST_KEEP=visible\x00")) {
		t.Errorf("another variable was damaged: %q", after)
	}
}
