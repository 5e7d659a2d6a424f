package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/apiserver"
	"github.com/regentdb/regent/apiserver/apiservertest"
)

// agentServer runs the real apiserver over a FakeBackend on loopback.
func agentServer(t *testing.T) (*apiservertest.FakeBackend, string) {
	t.Helper()
	fake := apiservertest.NewFakeBackend()
	t.Cleanup(fake.Close)
	s, err := apiserver.New(apiserver.Config{
		AgentID: "a1", Version: "test-agent", Backend: fake,
		Auth:       apiserver.AuthConfig{Tokens: apiservertest.Tokens()},
		Logger:     slog.New(slog.DiscardHandler),
		FollowPoll: 2 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return fake, ts.URL
}

// deadEndpoint returns a loopback URL nobody listens on.
func deadEndpoint(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

type result struct {
	code           int
	stdout, stderr string
}

// ctl runs regentctl in-process with env as its whole environment.
func ctl(t *testing.T, env map[string]string, argv ...string) result {
	t.Helper()
	return ctlIn(t, env, "", argv...)
}

// ctlIn runs regentctl with stdin as its standard input.
func ctlIn(t *testing.T, env map[string]string, stdin string, argv ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), argv, strings.NewReader(stdin), &out, &errb, func(k string) string { return env[k] })
	t.Logf("regentctl %s -> %d\n%s%s", strings.Join(argv, " "), code, out.String(), errb.String())
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// env returns an environment that reaches url with the admin token.
func env(url string) map[string]string {
	return map[string]string{envEndpoint: url, envToken: apiservertest.AdminToken}
}

func TestStatusTable(t *testing.T) {
	_, url := agentServer(t)
	r := ctl(t, env(url), "status")
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`Cluster main: primary db1, epoch 7, durability semi_sync`),
		regexp.MustCompile(`Automatic failover: possible`),
		regexp.MustCompile(`INSTANCE\s+ROLE\s+STATE\s+LAG\s+READ_ONLY\s+GTID\s+REACHABLE`),
		regexp.MustCompile(`db1\s+primary\s+ok\s+-\s+OFF\s+0-1-5034\s+a1:ok a2:ok a3:ok`),
		regexp.MustCompile(`db3\s+replica\s+ok\s+2\.5s\s+ON\s+0-1-5031\s+a1:ok a2:ok a3:timeout`),
		regexp.MustCompile(`ReplicaLagging\s+db3\s+report only\s+db3 is 2\.5s behind db1`),
		regexp.MustCompile(`Regent agents: leader a1, term 5`),
		regexp.MustCompile(`a2\s+follower\s+yes\s+10\.0\.0\.12:7000`),
	} {
		if !want.MatchString(r.stdout) {
			t.Errorf("status lacks %s", want)
		}
	}
}

// A healthy cluster's status says so in one line: "Healthy" is the
// analysis's summary, not a problem to list (issue 14). A long reason is
// wrapped under its problem, within the terminal's width.
func TestStatusListsProblemsApartFromTheHealthySummary(t *testing.T) {
	fake, url := agentServer(t)
	c, _ := fake.Cluster(context.Background(), "main")
	c.Problems = []api.Problem{{Code: "Healthy", Description: "nothing is wrong", Priority: 100}}
	fake.SetCluster(c)
	r := ctl(t, env(url), "status")
	if r.code != exitOK || !strings.Contains(r.stdout, "Problems: none") || strings.Contains(r.stdout, "Healthy") {
		t.Fatalf("healthy cluster: exit %d\n%s", r.code, r.stdout)
	}
	long := strings.Repeat("the replica's IO thread stopped with an error that says a great deal ", 4)
	c.Problems = []api.Problem{{Code: "ReplicaNotReplicating", Priority: 60, Instances: []string{"db3"}, Reason: long}}
	fake.SetCluster(c)
	e := env(url)
	e["COLUMNS"] = "80"
	r = ctl(t, e, "status")
	if !regexp.MustCompile(`(?m)^  ReplicaNotReplicating  db3  report only\n      the replica's IO thread`).MatchString(r.stdout) {
		t.Fatalf("problem not listed with its reason under it:\n%s", r.stdout)
	}
	in := false
	for _, l := range strings.Split(r.stdout, "\n") {
		in = in || strings.HasPrefix(l, "Problems:")
		if in && strings.HasPrefix(l, "Regent agents") {
			break
		}
		if in && len([]rune(l)) > 80 {
			t.Errorf("a problem line is %d wide at 80 columns: %q", len([]rune(l)), l)
		}
	}
}

func TestStatusSaysPlainlyWhenAutomaticFailoverIsBlocked(t *testing.T) {
	fake, url := agentServer(t)
	c, _ := fake.Cluster(context.Background(), "main")
	c.AutomaticFailover = api.AutomaticFailover{Enabled: false, Blockers: []api.Blocker{
		{Kind: api.BlockDisabled, Reason: "clusters[main].automatic_failover is false in the configuration"}}}
	fake.SetCluster(c)
	r := ctl(t, env(url), "status")
	if r.code != 0 || !strings.Contains(r.stdout, "AUTOMATIC FAILOVER BLOCKED: disabled: clusters[main].automatic_failover is false") {
		t.Fatalf("exit %d:\n%s", r.code, r.stdout)
	}
	if r := ctl(t, env(url), "pause", "--reason", "upgrade"); r.code != 0 || !strings.Contains(r.stdout, "paused by ops-admin") {
		t.Fatalf("pause: %d %s", r.code, r.stdout)
	}
	r = ctl(t, env(url), "status")
	if !strings.Contains(r.stdout, "PAUSED by ops-admin") || !strings.Contains(r.stdout, "AUTOMATIC FAILOVER BLOCKED: paused") {
		t.Fatalf("after pause:\n%s", r.stdout)
	}
	if r := ctl(t, env(url), "resume"); r.code != 0 || !strings.Contains(r.stdout, "resumed") {
		t.Fatalf("resume: %d %s", r.code, r.stdout)
	}
}

func TestStatusJSON(t *testing.T) {
	_, url := agentServer(t)
	r := ctl(t, env(url), "status", "-o", "json")
	var out statusOutput
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 {
		t.Fatalf("exit %d, %v: %s", r.code, err, r.stdout)
	}
	if out.Status.LeaderID != "a1" || len(out.Clusters) != 1 || out.Clusters[0].Primary != "db1" || len(out.Clusters[0].Instances) != 3 {
		t.Fatalf("%+v", out)
	}
}

func TestReadCommandsJSON(t *testing.T) {
	_, url := agentServer(t)
	for _, tc := range []struct {
		args  []string
		into  any
		check func(any) bool
		code  int
	}{
		{[]string{"history"}, &api.History{}, func(v any) bool { return len(v.(*api.History).Operations) == 1 }, 0},
		{[]string{"members"}, &api.Members{}, func(v any) bool { return len(v.(*api.Members).Members) == 3 }, 0},
		{[]string{"members", "list"}, &api.Members{}, func(v any) bool { return v.(*api.Members).LeaderID == "a1" }, 0},
		{[]string{"check"}, &api.CheckReport{}, func(v any) bool { return len(v.(*api.CheckReport).Findings) == 3 }, exitFailed},
		{[]string{"version"}, &versionOutput{}, func(v any) bool { return v.(*versionOutput).Agent == "test-agent" }, 0}, // the server's build
	} {
		r := ctl(t, env(url), append(tc.args, "-o", "json")...)
		if r.code != tc.code {
			t.Errorf("%v: exit %d, want %d", tc.args, r.code, tc.code)
		}
		if err := json.Unmarshal([]byte(r.stdout), tc.into); err != nil || !tc.check(tc.into) {
			t.Errorf("%v: %v: %s", tc.args, err, r.stdout)
		}
	}
}

func TestHistoryAndCheckTables(t *testing.T) {
	_, url := agentServer(t)
	r := ctl(t, env(url), "history", "--limit", "5", "--steps")
	if r.code != 0 || !regexp.MustCompile(`op-0006\s+failover\s+db2→db1\s+6→7\s+success\s+1\.8s\s+1\.7s`).MatchString(r.stdout) ||
		!strings.Contains(r.stdout, "fence-old-primary") {
		t.Fatalf("history:\n%s", r.stdout)
	}
	r = ctl(t, env(url), "check")
	if r.code != exitFailed {
		t.Fatalf("check with an error finding: exit %d", r.code)
	}
	for _, want := range []string{"db3", "read_only", "ERROR", "fix: SET GLOBAL read_only=ON", "WARNING", "slave_net_timeout", "1 error(s), 1 warning(s)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check lacks %q", want)
		}
	}
	if !strings.Contains(r.stderr, "check found 1 error(s) in cluster main") {
		t.Errorf("stderr %q", r.stderr)
	}
}

func TestSwitchoverPrintsProgressAndSucceeds(t *testing.T) {
	fake, url := agentServer(t)
	r := ctl(t, env(url), "switchover", "--to", "db2", "--wait-for-writes", "5s")
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if !regexp.MustCompile(`^switchover op-\d+ of cluster main started \(target db2\)$`).MatchString(lines[0]) {
		t.Errorf("first line %q", lines[0])
	}
	// One line per step, in order, then the outcome.
	if len(lines) != 2+len(fake.SwitchoverSteps) {
		t.Fatalf("%d lines, want %d", len(lines), 2+len(fake.SwitchoverSteps))
	}
	for i, st := range fake.SwitchoverSteps {
		re := regexp.MustCompile(`^\s+\[\+\s*[0-9.]+s\] ` + st.Name + `\s+success\s+[0-9.µmsn]+`)
		if !re.MatchString(lines[1+i]) {
			t.Errorf("line %d %q: want step %s", 1+i, lines[1+i], st.Name)
		}
	}
	if !strings.Contains(r.stdout, "db1 read_only=ON, 3 write sessions killed") {
		t.Error("a step's detail is not shown")
	}
	last := lines[len(lines)-1]
	if !regexp.MustCompile(`^switchover succeeded: db2 is the primary \(epoch 8\); writes blocked [0-9.µmsn]+; took [0-9.µmsn]+$`).MatchString(last) {
		t.Errorf("last line %q", last)
	}
}

func TestSwitchoverThatFailsExitsOne(t *testing.T) {
	fake, url := agentServer(t)
	fake.SwitchoverSteps = []apiservertest.FakeStep{
		{Name: "check-target"},
		{Name: "wait-for-gtid", Result: api.ResultFailed, Detail: "db2 did not reach 0-1-5034 within 5s; db1 is writable again"},
	}
	r := ctl(t, env(url), "switchover")
	if r.code != exitFailed {
		t.Fatalf("exit %d", r.code)
	}
	if !strings.Contains(r.stdout, "wait-for-gtid") || !strings.Contains(r.stdout, "switchover failed") || !strings.Contains(r.stdout, "db1 is writable again") {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
}

func TestSwitchoverJSONKeepsProgressOnStderr(t *testing.T) {
	_, url := agentServer(t)
	r := ctl(t, env(url), "switchover", "--to", "db3", "-o", "json")
	var op api.Operation
	if err := json.Unmarshal([]byte(r.stdout), &op); err != nil || r.code != 0 || op.Result != api.ResultSuccess || op.NewPrimary != "db3" {
		t.Fatalf("exit %d %v: %s", r.code, err, r.stdout)
	}
	if !strings.Contains(r.stderr, "promote") {
		t.Fatalf("no progress on stderr: %s", r.stderr)
	}
}

func TestSwitchoverRefusedAndNoWait(t *testing.T) {
	_, url := agentServer(t)
	r := ctl(t, env(url), "switchover", "--to", "db1")
	if r.code != exitFailed || !strings.Contains(r.stderr, "db1 is the primary, not a replica") {
		t.Fatalf("refused switchover: exit %d %s", r.code, r.stderr)
	}
	r = ctl(t, env(url), "switchover", "--wait=false")
	if r.code != 0 || !strings.Contains(r.stdout, "not waiting") {
		t.Fatalf("--wait=false: %d %s", r.code, r.stdout)
	}
}

func TestFailoverRejoinAndMembers(t *testing.T) {
	fake, url := agentServer(t)
	r := ctl(t, env(url), "failover", "--to", "db3", "--force")
	if r.code != 0 || !strings.Contains(r.stdout, "forced-failover succeeded: db3 is the primary") {
		t.Fatalf("failover: %d %s", r.code, r.stdout)
	}
	if r := ctl(t, env(url), "rejoin", "db1"); r.code != 0 || !strings.Contains(r.stdout, "rejoin succeeded") {
		t.Fatalf("rejoin: %d %s", r.code, r.stdout)
	}
	if r := ctl(t, env(url), "members", "add", "a4", "10.0.0.14:7000", "10.0.0.14:7443"); r.code != 0 || !strings.Contains(r.stdout, "agent a4 added") || !strings.Contains(r.stdout, "10.0.0.14:7443") {
		t.Fatalf("add: %d %s", r.code, r.stdout)
	}
	if r := ctl(t, env(url), "members", "remove", "a4"); r.code != 0 || strings.Contains(r.stdout, "10.0.0.14") {
		t.Fatalf("remove: %d %s", r.code, r.stdout)
	}
	if r := ctl(t, env(url), "members", "remove", "a9"); r.code != exitUsage || !strings.Contains(r.stderr, `no member "a9"`) {
		t.Fatalf("remove unknown: %d %s", r.code, r.stderr)
	}
	var methods []string
	for _, c := range fake.Calls() {
		methods = append(methods, c.Method+":"+c.Caller)
	}
	if got := strings.Join(methods, " "); got != "Failover:ops-admin Rejoin:ops-admin AddMember:ops-admin RemoveMember:ops-admin RemoveMember:ops-admin" {
		t.Fatalf("calls %s", got)
	}
}

func TestEditConfigShowsTheChangeAsksAndApplies(t *testing.T) {
	fake, url := agentServer(t)
	r := ctl(t, env(url), "cluster", "show-config")
	if r.code != 0 || !strings.Contains(r.stdout, "settings version 0, never changed at run time") || !strings.Contains(r.stdout, "  anti_flap_period: 5m0s") ||
		!strings.Contains(r.stdout, "# only in regent.yaml") || !strings.Contains(r.stdout, "  fence_after: 1.5s") {
		t.Fatalf("show-config: %d %s", r.code, r.stdout)
	}
	// Declined: nothing is sent.
	r = ctlIn(t, env(url), "n\n", "cluster", "edit-config", "--set", "anti_flap_period=10m")
	if r.code != exitFailed || !strings.Contains(r.stdout, "anti_flap_period: 5m0s → 10m") || !strings.Contains(r.stderr, "nothing changed") {
		t.Fatalf("declined: %d %s %s", r.code, r.stdout, r.stderr)
	}
	r = ctlIn(t, env(url), "y\n", "cluster", "edit-config", "--set", "anti_flap_period=10m")
	if r.code != 0 || !strings.Contains(r.stdout, "are at version 1 (by ops-admin)") {
		t.Fatalf("confirmed: %d %s %s", r.code, r.stdout, r.stderr)
	}
	r = ctl(t, env(url), "cluster", "show-config")
	if !strings.Contains(r.stdout, "* anti_flap_period: 10m") || !strings.Contains(r.stdout, "changed at run time by ops-admin") {
		t.Fatalf("show-config after the edit: %s", r.stdout)
	}
	// A restart-only key is refused by the agent, with the key named.
	r = ctl(t, env(url), "cluster", "edit-config", "--set", "fence_after=1s", "--yes")
	if r.code == 0 || !strings.Contains(r.stderr, "fence_after: set only in regent.yaml") {
		t.Fatalf("restart-only key: %d %s", r.code, r.stderr)
	}
	if r := ctl(t, env(url), "cluster", "edit-config", "--set", "novalue", "--yes"); r.code != exitUsage || !strings.Contains(r.stderr, "want KEY=VALUE") {
		t.Fatalf("bad --set: %d %s", r.code, r.stderr)
	}
	var methods []string
	for _, c := range fake.Calls() {
		methods = append(methods, c.Method)
	}
	if got := strings.Join(methods, " "); got != "EditSettings EditSettings" {
		t.Fatalf("calls %s: the declined edit and the bad flag must not reach the agent", got)
	}
}

// A whole cluster created and deleted at run time: the definition read
// from a file or standard input, confirmed, refused when empty or for a
// regent.yaml cluster; a declined deletion reaches no agent.
func TestClusterCreateAndDelete(t *testing.T) {
	fake, url := agentServer(t)
	def := "name: shop\ninstances:\n  - {name: x1, address: 10.0.1.1:3306}\n"
	file := filepath.Join(t.TempDir(), "shop.yaml")
	if err := os.WriteFile(file, []byte(def), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := ctlIn(t, env(url), "n\n", "cluster", "create", "--file", file); r.code != exitFailed || !strings.Contains(r.stderr, "nothing changed") || !strings.Contains(r.stdout+r.stderr, "name: shop") {
		t.Fatalf("create declined: %d %s", r.code, r.stderr)
	}
	r := ctlIn(t, env(url), "y\n", "cluster", "create", "--file", file)
	if r.code != 0 || !strings.Contains(r.stdout, "cluster shop created") {
		t.Fatalf("create: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := ctl(t, env(url), "status", "--cluster", "shop"); r.code != 0 || !strings.Contains(r.stdout, "Created at run time by") {
		t.Fatalf("status of the new cluster: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := ctlIn(t, env(url), def, "cluster", "create", "--file", "-", "--yes"); r.code != exitFailed || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("create again from stdin: %d %s", r.code, r.stderr)
	}
	if r := ctl(t, env(url), "cluster", "create", "--yes"); r.code != exitUsage || !strings.Contains(r.stderr, "--file FILE") {
		t.Fatalf("create without a file: %d %s", r.code, r.stderr)
	}
	if r := ctl(t, env(url), "cluster", "delete", "main", "--yes"); r.code != exitUsage || !strings.Contains(r.stderr, "regent.yaml") {
		t.Fatalf("delete a regent.yaml cluster: %d %s", r.code, r.stderr)
	}
	if r := ctlIn(t, env(url), "no\n", "cluster", "delete", "shop"); r.code != exitFailed {
		t.Fatalf("delete declined: %d %s", r.code, r.stderr)
	}
	if r := ctlIn(t, env(url), "yes\n", "cluster", "delete", "shop"); r.code != 0 || !strings.Contains(r.stdout, "cluster shop deleted") {
		t.Fatalf("delete: %d %s %s", r.code, r.stdout, r.stderr)
	}
	var methods []string
	for _, c := range fake.Calls() {
		methods = append(methods, c.Method)
	}
	if got := strings.Join(methods, " "); got != "DefineCluster DefineCluster RemoveCluster RemoveCluster" {
		t.Fatalf("calls %s: declined commands must not reach the agent", got)
	}
}

func TestClusterAddAndRemove(t *testing.T) {
	fake, url := agentServer(t)
	r := ctl(t, env(url), "cluster", "add", "db4", "--address", "10.0.0.14:3306", "--label", "zone=b", "--yes")
	if r.code != 0 || !strings.Contains(r.stdout, "db4 added to cluster main") {
		t.Fatalf("add: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := ctl(t, env(url), "status"); !strings.Contains(r.stdout, "db4") {
		t.Fatalf("status does not list db4: %s", r.stdout)
	}
	if r := ctl(t, env(url), "cluster", "add", "db5", "--address", "nope", "--yes"); r.code != exitUsage || !strings.Contains(r.stderr, "not host:port") {
		t.Fatalf("add without a port: %d %s", r.code, r.stderr)
	}
	if r := ctl(t, env(url), "cluster", "add", "db5", "--address", "10.0.0.15:3306", "--label", "zone", "--yes"); r.code != exitUsage || !strings.Contains(r.stderr, "want KEY=VALUE") {
		t.Fatalf("add with a bad label: %d %s", r.code, r.stderr)
	}
	if r := ctlIn(t, env(url), "no\n", "cluster", "remove", "db4"); r.code != exitFailed || !strings.Contains(r.stderr, "nothing changed") {
		t.Fatalf("remove declined: %d %s", r.code, r.stderr)
	}
	if r := ctlIn(t, env(url), "yes\n", "cluster", "remove", "db4"); r.code != 0 || !strings.Contains(r.stdout, "db4 removed") {
		t.Fatalf("remove: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := ctl(t, env(url), "cluster", "remove", "db1", "--yes"); r.code != exitFailed || !strings.Contains(r.stderr, "switch over") {
		t.Fatalf("remove the primary: %d %s", r.code, r.stderr)
	}
	var methods []string
	for _, c := range fake.Calls() {
		methods = append(methods, c.Method)
	}
	if got := strings.Join(methods, " "); got != "AddInstance RemoveInstance RemoveInstance" {
		t.Fatalf("calls %s: the refused flags and the declined removal must not reach the agent", got)
	}
}

func TestRepointPrintsItsStepsAndShowsInStatus(t *testing.T) {
	fake, url := agentServer(t)
	r := ctl(t, env(url), "repoint", "db3", "--to", "db2")
	if r.code != 0 || !strings.Contains(r.stdout, "repoint db3") || !strings.Contains(r.stdout, "db3 replicates from db2; took") {
		t.Fatalf("repoint: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := ctl(t, env(url), "status"); r.code != 0 || !strings.Contains(r.stdout, "under db2") {
		t.Fatalf("status does not show db3 relocated: %d %s", r.code, r.stdout)
	}
	if r := ctl(t, env(url), "repoint", "db1", "--to", "db2"); r.code != exitFailed || !strings.Contains(r.stderr, "db1 is not a replica") {
		t.Fatalf("repoint of the primary: %d %s", r.code, r.stderr)
	}
	if r := ctl(t, env(url), "repoint", "db3", "--to", "bad name!"); r.code != exitUsage {
		t.Fatalf("repoint to a bad name: %d %s", r.code, r.stderr)
	}
	if r := ctl(t, env(url), "repoint", "db3"); r.code != 0 || !strings.Contains(r.stdout, "db3 replicates from the primary") {
		t.Fatalf("repoint back: %d %s", r.code, r.stdout)
	}
	if got := len(fake.Calls()); got != 3 {
		t.Fatalf("%d calls reached the agent, want 3 (the bad name is refused by regentctl)", got)
	}
}

func TestMaintenanceStartShowsInStatusAndEnds(t *testing.T) {
	fake, url := agentServer(t)
	r := ctl(t, env(url), "maintenance", "start", "db3", "--reason", "disk swap", "--for", "2h")
	if r.code != 0 || !strings.Contains(r.stdout, "db3 is in maintenance until") || !strings.Contains(r.stdout, "(by ops-admin)") {
		t.Fatalf("start: %d %s", r.code, r.stdout)
	}
	if r := ctl(t, env(url), "status"); r.code != 0 || !strings.Contains(r.stdout, "maintenance; ok") {
		t.Fatalf("status does not show db3 in maintenance: %d %s", r.code, r.stdout)
	}
	if r := ctl(t, env(url), "maintenance", "start", "db1", "--reason", "r", "--for", "1h"); r.code != exitFailed || !strings.Contains(r.stderr, "switch over first") {
		t.Fatalf("maintenance of the primary: %d %s", r.code, r.stderr)
	}
	if r := ctl(t, env(url), "maintenance", "end", "db3"); r.code != 0 || !strings.Contains(r.stdout, "db3's maintenance ended") {
		t.Fatalf("end: %d %s", r.code, r.stdout)
	}
	if r := ctl(t, env(url), "maintenance", "end", "db3"); r.code != exitUsage || !strings.Contains(r.stderr, "not in maintenance") {
		t.Fatalf("end again: %d %s", r.code, r.stderr)
	}
	var methods []string
	for _, c := range fake.Calls() {
		methods = append(methods, c.Method+":"+c.Caller)
	}
	if got := strings.Join(methods, " "); got != "StartMaintenance:ops-admin StartMaintenance:ops-admin EndMaintenance:ops-admin EndMaintenance:ops-admin" {
		t.Fatalf("calls %s", got)
	}
}

func TestAckAFailover(t *testing.T) {
	fake, url := agentServer(t)
	if r := ctl(t, env(url), "status"); !strings.Contains(r.stdout, "UNACKNOWLEDGED FAILOVERS: op-0006") {
		t.Fatalf("status does not list the unacknowledged failover: %s", r.stdout)
	}
	r := ctl(t, env(url), "ack", "0006", "--comment", "db1's disk died; replaced")
	if r.code != 0 || !strings.Contains(r.stdout, "failover op-0006 acknowledged by ops-admin") {
		t.Fatalf("ack: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := ctl(t, env(url), "status"); strings.Contains(r.stdout, "UNACKNOWLEDGED") {
		t.Fatalf("status still lists it: %s", r.stdout)
	}
	if r := ctl(t, env(url), "ack", "op-0006"); r.code != exitFailed || !strings.Contains(r.stderr, "acknowledged by ops-admin") {
		t.Fatalf("second ack: %d %s", r.code, r.stderr)
	}
	if r := ctl(t, env(url), "ack", "op-9999"); r.code != exitUsage {
		t.Fatalf("ack of an unknown operation: %d %s", r.code, r.stderr)
	}
	var methods []string
	for _, c := range fake.Calls() {
		methods = append(methods, c.Method+":"+c.Arg)
	}
	if got := strings.Join(methods, " "); got != "Ack:op-0006 Ack:op-0006" {
		t.Fatalf("calls %s", got)
	}
}

func TestDiscover(t *testing.T) {
	fake, url := agentServer(t)
	r := ctl(t, env(url), "discover", "10.0.0.11:3306")
	if r.code != 0 || !strings.Contains(r.stdout, "Replication tree around 10.0.0.11:3306 (3 instances)") ||
		!strings.Contains(r.stdout, "{name: db1, address: 10.0.0.11:3306, agent: AGENT}") {
		t.Fatalf("discover: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := ctl(t, env(url), "discover", "10.0.0.99:5"); r.code != exitFailed || !strings.Contains(r.stderr, "connection refused") {
		t.Fatalf("discover of a server that does not answer: %d %s", r.code, r.stderr)
	}
	if r := ctl(t, env(url), "discover", "nohost"); r.code != exitUsage || !strings.Contains(r.stderr, "HOST:PORT") {
		t.Fatalf("discover of a bad address: %d %s", r.code, r.stderr)
	}
	ro := map[string]string{envEndpoint: url, envToken: apiservertest.ReadOnlyToken}
	if r := ctl(t, ro, "discover", "10.0.0.11:3306"); r.code != exitAuth {
		t.Fatalf("discover with a read-only token: %d %s", r.code, r.stderr)
	}
	if n := len(fake.Calls()); n != 2 {
		t.Fatalf("%d Discover calls reached the agent, want 2", n)
	}
}

func TestEndpointFailoverToTheSecondAgent(t *testing.T) {
	_, url := agentServer(t)
	e := env(deadEndpoint(t) + "," + url)
	r := ctl(t, e, "status")
	if r.code != 0 || !strings.Contains(r.stdout, "primary db1") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	r = ctl(t, e, "switchover", "--to", "db2")
	if r.code != 0 || !strings.Contains(r.stdout, "succeeded") {
		t.Fatalf("switchover through the second endpoint: %d %s", r.code, r.stderr)
	}
}

func TestNoAgentReachableExitsThree(t *testing.T) {
	r := ctl(t, env(deadEndpoint(t)+","+deadEndpoint(t)), "status", "--timeout", "500ms")
	if r.code != exitUnreachable || !strings.Contains(r.stderr, "cannot reach any agent") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
}

func TestAuthErrorsExitFour(t *testing.T) {
	_, url := agentServer(t)
	r := ctl(t, map[string]string{envEndpoint: url, envToken: "not-the-right-token-42"}, "status")
	if r.code != exitAuth {
		t.Fatalf("wrong token: exit %d", r.code)
	}
	// The server's message, which says how to pass a token.
	if !strings.Contains(r.stderr, "the token was not accepted") || !strings.Contains(r.stderr, "--token-file") || !strings.Contains(r.stderr, "401") {
		t.Fatalf("stderr %q", r.stderr)
	}
	r = ctl(t, map[string]string{envEndpoint: url}, "status")
	if r.code != exitAuth || !strings.Contains(r.stderr, "needs credentials") {
		t.Fatalf("no token: exit %d %s", r.code, r.stderr)
	}
	r = ctl(t, map[string]string{envEndpoint: url, envToken: apiservertest.ReadOnlyToken}, "pause")
	if r.code != exitAuth || !strings.Contains(r.stderr, "403") || !strings.Contains(r.stderr, "admin") {
		t.Fatalf("read-only token on pause: exit %d %s", r.code, r.stderr)
	}
}

func TestTokenFromAFile(t *testing.T) {
	_, url := agentServer(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "token")
	if err := os.WriteFile(p, []byte(apiservertest.ReadOnlyToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := ctl(t, map[string]string{envEndpoint: url}, "--token-file", p, "members"); r.code != 0 {
		t.Fatalf("--token-file: %d", r.code)
	}
	if r := ctl(t, map[string]string{envEndpoint: url, envTokenFile: p}, "members"); r.code != 0 {
		t.Fatalf("%s: %d", envTokenFile, r.code)
	}
	bad := filepath.Join(dir, "tokens")
	_ = os.WriteFile(bad, []byte("admin:"+apiservertest.AdminToken+"\nread-only:x\n"), 0o600)
	if r := ctl(t, map[string]string{envEndpoint: url}, "--token-file", bad, "members"); r.code != exitUsage || !strings.Contains(r.stderr, "only the token") {
		t.Fatalf("a tokens file given as a token file: %d %s", r.code, r.stderr)
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	fake, url := agentServer(t)
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"status", "--token", "secret"}, "unknown flag: --token"},
		{[]string{"status", "-o", "yaml"}, `-o "yaml"`},
		{[]string{"failover"}, "--to INSTANCE"},
		{[]string{"rejoin"}, "want INSTANCE"},
		{[]string{"members", "add", "a4"}, "want ID RAFT_ADDR API_ADDR"},
		{[]string{"members", "add", "a4", "nohost", "h:1"}, "raft_addr"},
		{[]string{"history", "--limit", "0"}, "--limit"},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"status", "--cluster", "nope"}, `no replication cluster "nope"`},
		{[]string{"switchover", "--to", "db9"}, `no instance "db9"`},
		{[]string{"status", "extra"}, "takes no argument"},
		{[]string{"maintenance", "start", "db3", "--for", "1h"}, "needs a reason"},
		{[]string{"maintenance", "start", "db3", "--reason", "disk swap"}, "how long it lasts"},
		{[]string{"maintenance", "start", "db9", "--reason", "r", "--for", "1h"}, `no instance "db9"`},
		{[]string{"maintenance", "end"}, "want INSTANCE"},
	} {
		r := ctl(t, env(url), tc.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.says) {
			t.Errorf("%v: exit %d, stderr %q: want 2 and %q", tc.args, r.code, r.stderr, tc.says)
		}
	}
	if r := ctl(t, map[string]string{}, "status"); r.code != exitUsage || !strings.Contains(r.stderr, envEndpoint) {
		t.Errorf("no endpoint: %d %s", r.code, r.stderr)
	}
	// Several clusters and no --cluster: the names are listed.
	c, _ := fake.Cluster(context.Background(), "main")
	c.Name = "billing"
	fake.SetCluster(c)
	r := ctl(t, env(url), "history")
	if r.code != exitUsage || !strings.Contains(r.stderr, "several clusters (billing, main): choose one with --cluster NAME") {
		t.Errorf("several clusters: %d %s", r.code, r.stderr)
	}
	if r := ctl(t, env(url), "history", "--cluster", "billing"); r.code != 0 {
		t.Errorf("--cluster billing: %d", r.code)
	}
	if r := ctl(t, env(url), "status"); r.code != 0 || !strings.Contains(r.stdout, "Cluster billing") || !strings.Contains(r.stdout, "Cluster main") {
		t.Errorf("status of several clusters: %d %s", r.code, r.stdout)
	}
}

func TestVersionWithoutAnAgent(t *testing.T) {
	r := ctl(t, map[string]string{}, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "regentctl "+version) {
		t.Fatalf("%d %q", r.code, r.stdout)
	}
	r = ctl(t, map[string]string{envEndpoint: deadEndpoint(t)}, "version", "--timeout", "300ms")
	if r.code != 0 || !strings.Contains(r.stderr, "cannot reach any agent") {
		t.Fatalf("%d %q", r.code, r.stderr)
	}
}

func TestHelpDocumentsExitCodes(t *testing.T) {
	r := ctl(t, map[string]string{}, "--help")
	for _, want := range []string{"Exit codes:", "3  no agent could be reached", "4  authentication", "REGENT_TOKEN", "no --token flag"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestShellCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		r := ctl(t, map[string]string{}, "completion", shell)
		if r.code != 0 || !strings.Contains(r.stdout, "regentctl") {
			t.Errorf("completion %s: %d", shell, r.code)
		}
	}
	// Dynamic completion of --to asks the agent for instances.
	_, url := agentServer(t)
	r := ctl(t, env(url), "__complete", "switchover", "--to", "")
	if r.code != 0 || !strings.Contains(r.stdout, "db2") {
		t.Errorf("completion of --to: %d %s", r.code, r.stdout)
	}
}

// Every subcommand lives in its own file.
func TestEachSubcommandInItsOwnFile(t *testing.T) {
	for _, name := range []string{"status", "history", "switchover", "failover", "pause", "resume", "rejoin", "maintenance", "ack", "discover", "members", "check", "version"} {
		if _, err := os.Stat(name + ".go"); err != nil {
			t.Error(fmt.Errorf("subcommand %s: %w", name, err))
		}
	}
}

func TestTLSWithCAFile(t *testing.T) {
	fake := apiservertest.NewFakeBackend()
	t.Cleanup(fake.Close)
	s, err := apiserver.New(apiserver.Config{AgentID: "a1", Backend: fake, Auth: apiserver.AuthConfig{Tokens: apiservertest.Tokens()}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(s.Handler())
	t.Cleanup(ts.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	e := env(ts.URL)
	if r := ctl(t, e, "--ca-file", ca, "status"); r.code != 0 {
		t.Fatalf("with --ca-file: %d %s", r.code, r.stderr)
	}
	e[envCAFile] = ca
	if r := ctl(t, e, "members"); r.code != 0 {
		t.Fatalf("with %s: %d %s", envCAFile, r.code, r.stderr)
	}
	delete(e, envCAFile)
	if r := ctl(t, e, "status"); r.code != exitUnreachable || !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("without the CA: %d %s", r.code, r.stderr)
	}
	if r := ctl(t, e, "--insecure-skip-verify", "status"); r.code != 0 {
		t.Fatalf("--insecure-skip-verify: %d %s", r.code, r.stderr)
	}
}

// status --problems-only leaves the healthy clusters out and says how
// many.
func TestStatusProblemsOnly(t *testing.T) {
	fake, url := agentServer(t)
	for _, n := range []string{"shop", "billing"} {
		fake.SetCluster(api.Cluster{Name: n, Primary: n + "-db1", Epoch: 2, Durability: "semi_sync",
			AutomaticFailover: api.AutomaticFailover{Enabled: true, Possible: true},
			Problems:          []api.Problem{{Code: api.ProblemHealthy, Description: "nothing is wrong"}}})
	}
	r := ctl(t, env(url), "status")
	for _, n := range []string{"Cluster main:", "Cluster shop:", "Cluster billing:"} {
		if r.code != exitOK || !strings.Contains(r.stdout, n) {
			t.Fatalf("status lacks %q (exit %d)", n, r.code)
		}
	}
	r = ctl(t, env(url), "status", "--problems-only")
	if r.code != exitOK || !strings.Contains(r.stdout, "Cluster main:") || strings.Contains(r.stdout, "Cluster shop:") ||
		strings.Contains(r.stdout, "Cluster billing:") || !strings.Contains(r.stdout, "1 of 3 cluster(s) need attention") {
		t.Fatalf("status --problems-only: exit %d\n%s", r.code, r.stdout)
	}
}

// history pages: --limit operations, and the last line names the --before
// of the next page.
func TestHistoryBefore(t *testing.T) {
	fake, url := agentServer(t)
	var ops []api.Operation
	for i := 5; i >= 1; i-- {
		ops = append(ops, api.Operation{ID: fmt.Sprintf("op-00%d", i), Cluster: "main", Kind: "switchover", Result: api.ResultSuccess, OldPrimary: "db1", NewPrimary: "db2"})
	}
	fake.SetHistory("main", ops)
	r := ctl(t, env(url), "history", "--limit", "2")
	if r.code != exitOK || !strings.Contains(r.stdout, "op-005") || strings.Contains(r.stdout, "op-003") || !strings.Contains(r.stdout, "regentctl history --before op-004") {
		t.Fatalf("first page:\n%s", r.stdout)
	}
	r = ctl(t, env(url), "history", "--limit", "2", "--before", "op-004")
	if r.code != exitOK || !strings.Contains(r.stdout, "op-003") || !strings.Contains(r.stdout, "op-002") || strings.Contains(r.stdout, "op-004") {
		t.Fatalf("second page:\n%s", r.stdout)
	}
	r = ctl(t, env(url), "history", "--before", "op-404")
	if r.code != exitUsage {
		t.Fatalf("--before an unknown id: exit %d, want %d (not found)", r.code, exitUsage)
	}
	if !strings.Contains(r.stderr, "start again without before") {
		t.Errorf("--before an unknown id: stderr %q", r.stderr)
	}
}
