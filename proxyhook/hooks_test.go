package proxyhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func sh(script string) []string { return []string{"/bin/sh", "-c", script} }

func newTestHooks(t *testing.T, opts HooksOptions, cfgs ...HookConfig) *Hooks {
	t.Helper()
	h, err := NewHooks(cfgs, opts, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHookEnvironment(t *testing.T) {
	// A credential in the agent's environment must not reach hooks.
	t.Setenv("REGENT_MYSQL_PASSWORD", "hunter2")
	t.Setenv("MYSQL_PWD", "hunter2")
	h := newTestHooks(t, HooksOptions{}, HookConfig{Name: "env", Command: sh("env | sort"), Events: []HookEvent{EventPostFailover},
		Env: map[string]string{"SITE": "eu-1"}, Timeout: 5 * time.Second})
	in := HookInput{Cluster: "main", Operation: "ignored-for-post", OperationID: "op-42", Epoch: 9, Token: 77,
		OldPrimary: Endpoint{Name: "db1", Host: "10.0.0.1", Port: 3306}, NewPrimary: Endpoint{Name: "db2", Host: "10.0.0.2", Port: 3307},
		Replicas: []Endpoint{{Name: "db3", Host: "10.0.0.3", Port: 3306}}, Reason: "primary mysqld died\nhard", Result: "succeeded"}
	res, err := h.Run(t.Context(), EventPostFailover, in)
	if err != nil {
		t.Fatalf("run: %v %+v", err, res)
	}
	env := map[string]string{}
	for _, line := range strings.Split(res[0].Output, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	want := map[string]string{
		"REGENT_CLUSTER":          "main",
		"REGENT_EVENT":            "post-failover",
		"REGENT_OPERATION":        "failover",
		"REGENT_OPERATION_ID":     "op-42",
		"REGENT_PHASE":            "post",
		"REGENT_EPOCH":            "9",
		"REGENT_ROUTE_TOKEN":      "77",
		"REGENT_REASON":           "primary mysqld died hard",
		"REGENT_RESULT":           "succeeded",
		"REGENT_OLD_PRIMARY":      "db1",
		"REGENT_OLD_PRIMARY_HOST": "10.0.0.1",
		"REGENT_OLD_PRIMARY_PORT": "3306",
		"REGENT_OLD_PRIMARY_ADDR": "10.0.0.1:3306",
		"REGENT_NEW_PRIMARY":      "db2",
		"REGENT_NEW_PRIMARY_HOST": "10.0.0.2",
		"REGENT_NEW_PRIMARY_PORT": "3307",
		"REGENT_NEW_PRIMARY_ADDR": "10.0.0.2:3307",
		"REGENT_REPLICAS":         "db3=10.0.0.3:3306",
		"REGENT_HOOK_NAME":        "env",
		"REGENT_HOOK_TIMEOUT":     "5",
		"SITE":                    "eu-1",
	}
	for k, v := range want {
		if got, ok := env[k]; !ok || got != v {
			t.Errorf("%s = %q (set: %v), want %q", k, got, ok, v)
		}
	}
	for k, v := range env {
		if strings.Contains(v, "hunter2") {
			t.Errorf("secret leaked into the hook's environment as %s", k)
		}
	}
	if _, ok := env["PATH"]; !ok {
		t.Error("PATH missing: hooks need it to find their tools")
	}
	if !res[0].OK || res[0].ExitCode != 0 {
		t.Errorf("result = %+v", res[0])
	}
}

func TestHookEnvOperation(t *testing.T) {
	tests := []struct {
		name      string
		event     HookEvent
		operation string
		wantOp    string
		wantPhase string
	}{
		{name: "pre-switchover", event: EventPreSwitchover, operation: "failover", wantOp: "switchover", wantPhase: "pre"},
		{name: "fence without operation", event: EventFence, wantOp: "fence", wantPhase: "on"},
		{name: "fence during a failover", event: EventFence, operation: "failover", wantOp: "failover", wantPhase: "on"},
		{name: "route during a switchover", event: EventRoute, operation: "switchover", wantOp: "switchover", wantPhase: "on"},
		{name: "failed", event: EventFailed, operation: "failover", wantOp: "failover", wantPhase: "on"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := HookEnv(HookConfig{Name: "h"}, tc.event, HookInput{Operation: tc.operation})
			if !containsLine(env, "REGENT_OPERATION="+tc.wantOp) || !containsLine(env, "REGENT_PHASE="+tc.wantPhase) {
				t.Errorf("env = %q, want operation %s phase %s", env, tc.wantOp, tc.wantPhase)
			}
			if !containsLine(env, "REGENT_NEW_PRIMARY_PORT=") {
				t.Error("unset variables must still be present (empty) for scripts under set -u")
			}
		})
	}
}

func containsLine(lines []string, l string) bool {
	for _, x := range lines {
		if x == l {
			return true
		}
	}
	return false
}

// processGone reports whether pid no longer runs (absent or a zombie).
func processGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return true
	}
	return b[i+2] == 'Z' || b[i+2] == 'X'
}

func readPIDs(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("hook did not write its pids: %v", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, n)
	}
	return pids
}

func waitGone(t *testing.T, pids []int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var alive []int
		for _, p := range pids {
			if !processGone(p) {
				alive = append(alive, p)
			}
		}
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes %v still alive %s after the hook returned", alive, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHookTimeoutKillsProcessGroup(t *testing.T) {
	tests := []struct {
		name   string
		script string
	}{
		{name: "shell and its sleeping child", script: `sleep 300 & echo $! >> "$PIDS"; echo $$ >> "$PIDS"; echo started; sleep 300`},
		{name: "a hook that ignores SIGTERM gets SIGKILL", script: `trap "" TERM; sleep 300 & echo $! >> "$PIDS"; echo $$ >> "$PIDS"; wait`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pids")
			h := newTestHooks(t, HooksOptions{KillGrace: 200 * time.Millisecond}, HookConfig{Name: "slow", Command: sh(tc.script),
				Events: []HookEvent{EventPostSwitchover}, Timeout: 300 * time.Millisecond, Env: map[string]string{"PIDS": pidFile}})
			start := time.Now()
			res, err := h.Run(t.Context(), EventPostSwitchover, HookInput{Cluster: "c"})
			elapsed := time.Since(start)
			if !errors.Is(err, ErrHookFailed) || errors.Is(err, ErrHookAborted) {
				t.Fatalf("err = %v, want ErrHookFailed (post-hook)", err)
			}
			if !res[0].TimedOut || res[0].OK || !strings.Contains(res[0].Error, "timed out") {
				t.Errorf("result = %+v, want a timeout", res[0])
			}
			if elapsed > 5*time.Second {
				t.Errorf("run took %s with a 300ms timeout", elapsed)
			}
			pids := readPIDs(t, pidFile)
			if len(pids) != 2 {
				t.Fatalf("pids = %v", pids)
			}
			waitGone(t, pids, 2*time.Second)
			if tc.name == "shell and its sleeping child" && !strings.Contains(res[0].Output, "started") {
				t.Errorf("output before the timeout was lost: %q", res[0].Output)
			}
		})
	}
}

func TestHookCancelKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pids")
	h := newTestHooks(t, HooksOptions{KillGrace: 200 * time.Millisecond}, HookConfig{Name: "slow",
		Command: sh(`sleep 300 & echo $! >> "$PIDS"; echo $$ >> "$PIDS"; sleep 300`),
		Events:  []HookEvent{EventFence}, Timeout: time.Minute, Env: map[string]string{"PIDS": pidFile}})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		// Cancel once the hook has started its child.
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if b, _ := os.ReadFile(pidFile); len(strings.Fields(string(b))) == 2 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	res, err := h.Run(ctx, EventFence, HookInput{})
	if err == nil || res[0].OK || res[0].TimedOut || !strings.Contains(res[0].Error, "cancel") {
		t.Fatalf("err = %v result = %+v, want a cancelled hook", err, res)
	}
	waitGone(t, readPIDs(t, pidFile), 2*time.Second)
}

func TestHookFailurePolicy(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	fail := func(name string, ev HookEvent) HookConfig {
		return HookConfig{Name: name, Command: sh(`echo "refusing: replica lag" >&2; exit 3`), Events: []HookEvent{ev}}
	}
	mark := func(name string, ev HookEvent) HookConfig {
		return HookConfig{Name: name, Command: sh(`echo ` + name + ` >> "$M"`), Events: []HookEvent{ev}, Env: map[string]string{"M": marker}}
	}

	t.Run("failed pre-hook aborts and later pre-hooks do not run", func(t *testing.T) {
		_ = os.Remove(marker)
		h := newTestHooks(t, HooksOptions{}, fail("veto", EventPreFailover), mark("after-veto", EventPreFailover))
		res, err := h.Run(t.Context(), EventPreFailover, HookInput{Cluster: "c"})
		if !errors.Is(err, ErrHookAborted) {
			t.Fatalf("err = %v, want ErrHookAborted", err)
		}
		var he *HookError
		if !errors.As(err, &he) || len(he.Failed) != 1 || he.Failed[0].Hook != "veto" {
			t.Fatalf("HookError = %+v", he)
		}
		if len(res) != 1 || res[0].ExitCode != 3 || !strings.Contains(res[0].Output, "refusing: replica lag") {
			t.Errorf("results = %+v, want the veto with its exit code and stderr", res)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Error("a pre-hook after the failed one ran")
		}
		if !strings.Contains(err.Error(), "operation aborted") || !strings.Contains(err.Error(), "exited with status 3") {
			t.Errorf("message %q does not say what happened", err)
		}
		hist := FormatHookResults(res)
		if !strings.Contains(hist, "== hook veto (pre-failover): FAILED: exited with status 3, exit 3") || !strings.Contains(hist, "refusing: replica lag\n") {
			t.Errorf("history text = %q", hist)
		}
	})
	t.Run("failed post-hook fails the step and the others still run", func(t *testing.T) {
		_ = os.Remove(marker)
		h := newTestHooks(t, HooksOptions{}, fail("notify", EventPostFailover), mark("dns", EventPostFailover))
		res, err := h.Run(t.Context(), EventPostFailover, HookInput{Cluster: "c"})
		if !errors.Is(err, ErrHookFailed) || errors.Is(err, ErrHookAborted) {
			t.Fatalf("err = %v, want ErrHookFailed only", err)
		}
		if len(res) != 2 || res[0].OK || !res[1].OK {
			t.Fatalf("results = %+v, want notify failed and dns ok", res)
		}
		if b, _ := os.ReadFile(marker); strings.TrimSpace(string(b)) != "dns" {
			t.Errorf("marker = %q", b)
		}
	})
	t.Run("all succeed", func(t *testing.T) {
		h := newTestHooks(t, HooksOptions{}, mark("a", EventPreSwitchover), mark("b", EventPreSwitchover))
		res, err := h.Run(t.Context(), EventPreSwitchover, HookInput{})
		if err != nil || len(res) != 2 || !res[0].OK || !res[1].OK {
			t.Fatalf("err = %v res = %+v", err, res)
		}
	})
	t.Run("no hooks for the event", func(t *testing.T) {
		h := newTestHooks(t, HooksOptions{}, mark("a", EventPreSwitchover))
		res, err := h.Run(t.Context(), EventPostFailover, HookInput{})
		if err != nil || res != nil {
			t.Fatalf("err = %v res = %+v", err, res)
		}
	})
	t.Run("missing executable fails clearly", func(t *testing.T) {
		h := newTestHooks(t, HooksOptions{}, HookConfig{Name: "gone", Command: []string{"/nonexistent/hook"}, Events: []HookEvent{EventPreFailover}})
		res, err := h.Run(t.Context(), EventPreFailover, HookInput{})
		if !errors.Is(err, ErrHookAborted) || !strings.Contains(res[0].Error, "starting hook") {
			t.Fatalf("err = %v res = %+v", err, res)
		}
	})
}

func TestHookOutputBounded(t *testing.T) {
	h := newTestHooks(t, HooksOptions{OutputLimit: 1024}, HookConfig{Name: "chatty",
		Command: sh(`echo FIRST; i=0; while [ $i -lt 2000 ]; do echo "line $i of noise"; i=$((i+1)); done; echo LAST >&2`),
		Events:  []HookEvent{EventPostFailover}})
	res, err := h.Run(t.Context(), EventPostFailover, HookInput{})
	if err != nil {
		t.Fatal(err)
	}
	r := res[0]
	if !r.OutputTruncated || r.OutputBytes < 20000 || len(r.Output) > 1200 {
		t.Errorf("truncated=%v bytes=%d kept=%d, want a bounded output", r.OutputTruncated, r.OutputBytes, len(r.Output))
	}
	if !strings.HasPrefix(r.Output, "FIRST") || !strings.HasSuffix(r.Output, "LAST\n") || !strings.Contains(r.Output, "bytes omitted") {
		t.Errorf("output should keep head and tail around a marker: %q", r.Output)
	}
}

func TestHookBackgroundLeftoverIsKilled(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pids")
	h := newTestHooks(t, HooksOptions{KillGrace: 200 * time.Millisecond}, HookConfig{Name: "leaky",
		Command: sh(`sleep 300 & echo $! > "$PIDS"; echo done`), Events: []HookEvent{EventPostFailover},
		Env: map[string]string{"PIDS": pidFile}})
	start := time.Now()
	res, err := h.Run(t.Context(), EventPostFailover, HookInput{})
	if err != nil || !res[0].OK {
		t.Fatalf("a hook that exited 0 must succeed: %v %+v", err, res)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("took %s", time.Since(start))
	}
	waitGone(t, readPIDs(t, pidFile), 2*time.Second)
}

func TestHookConfigValidate(t *testing.T) {
	ok := HookConfig{Name: "n", Command: []string{"/bin/true"}, Events: []HookEvent{EventPostFailover}}
	tests := []struct {
		name    string
		mutate  func(*HookConfig)
		wantErr string
	}{
		{name: "valid", mutate: func(*HookConfig) {}},
		{name: "no name", mutate: func(c *HookConfig) { c.Name = "" }, wantErr: "name: required"},
		{name: "no command", mutate: func(c *HookConfig) { c.Command = nil }, wantErr: "command: required"},
		{name: "relative command", mutate: func(c *HookConfig) { c.Command = []string{"notify.sh"} }, wantErr: "absolute path"},
		{name: "no events", mutate: func(c *HookConfig) { c.Events = nil }, wantErr: "events: required"},
		{name: "unknown event", mutate: func(c *HookConfig) { c.Events = []HookEvent{"post-promote"} }, wantErr: "not an event"},
		{name: "negative timeout", mutate: func(c *HookConfig) { c.Timeout = -1 }, wantErr: "timeout"},
		{name: "secret-looking env", mutate: func(c *HookConfig) { c.Env = map[string]string{"SLACK_TOKEN": "x"} }, wantErr: "looks like a secret"},
		{name: "password env", mutate: func(c *HookConfig) { c.Env = map[string]string{"DB_PASSWORD": "x"} }, wantErr: "looks like a secret"},
		{name: "REGENT_ override", mutate: func(c *HookConfig) { c.Env = map[string]string{"REGENT_EPOCH": "1"} }, wantErr: "set by Regent"},
		{name: "bad env name", mutate: func(c *HookConfig) { c.Env = map[string]string{"A=B": "x"} }, wantErr: "not a valid variable name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mutate(&c)
			checkErr(t, c.Validate("hooks[0]"), tc.wantErr)
		})
	}
	if _, err := NewHooks([]HookConfig{ok, ok}, HooksOptions{}, nil); err == nil || !strings.Contains(err.Error(), "used twice") {
		t.Errorf("duplicate names: %v", err)
	}
}
