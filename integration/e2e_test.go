package integration

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/integration/sandbox"
	"github.com/regentdb/regent/topology/mysqltest"
)

// TestOperatorWorkflow drives three real regent processes over real database
// servers only through regentctl: status, a switchover with progress, pause
// blocking an automatic failover, resume and the failover after kill -9, and
// the refusals a person gets for a wrong token.
func TestOperatorWorkflow(t *testing.T) {
	for _, k := range mysqltest.Kinds(t) {
		t.Run(string(k), func(t *testing.T) {
			t.Parallel()
			s := sandbox.Start(t, k, sandbox.Options{})

			// check-config reads the certificates: the sandbox's are valid
			// for a day, which it says.
			regent, _ := sandbox.Binaries(t)
			cc, err := exec.Command(regent, "check-config", s.Agents[0].CfgPath).CombinedOutput()
			if err != nil || !strings.Contains(string(cc), "configuration is valid") || !strings.Contains(string(cc), "warning: raft.tls.cert_file") || !strings.Contains(string(cc), "expires at") {
				t.Fatalf("check-config of a sandbox agent's configuration (%v):\n%s", err, cc)
			}

			out, errOut, code := s.Ctl("check")
			if code != 0 || !strings.Contains(out, "reachable") {
				t.Fatalf("check on a well set-up cluster (exit %d):\n%s\n%s", code, out, errOut)
			}
			// Both binaries are stamped with the build's version, and the
			// agent reports its own.
			out, errOut, code = s.Ctl("version")
			if m := regexp.MustCompile(`(?m)^regentctl (\S+) .*\n^agent agent\d: regent (\S+)$`).FindStringSubmatch(out); code != 0 || m == nil || m[1] != m[2] || m[1] == "dev" {
				t.Fatalf("version (exit %d): want regentctl and the agent stamped alike:\n%s\n%s", code, out, errOut)
			}
			out, errOut, code = s.Ctl("members")
			if code != 0 || strings.Count(out, "agent") < 3 || !strings.Contains(out, "leader") {
				t.Fatalf("members (exit %d):\n%s\n%s", code, out, errOut)
			}
			out, errOut, code = s.Ctl("status")
			if code != 0 || !strings.Contains(out, "p") || !strings.Contains(out, "primary") || !strings.Contains(out, "agent1") {
				t.Fatalf("status (exit %d):\n%s\n%s", code, out, errOut)
			}

			out, errOut, code = s.Ctl("switchover", "--to", "r1")
			if code != 0 {
				t.Fatalf("switchover --to r1 exit %d:\n%s\n%s", code, out, errOut)
			}
			all := out + errOut
			for _, want := range []string{"promote", "r1", "blocked"} {
				if !strings.Contains(strings.ToLower(all), want) {
					t.Fatalf("switchover output lacks %q:\n%s", want, all)
				}
			}
			c, raw := s.Cluster()
			if c.Primary != "r1" || c.Epoch != 2 {
				t.Fatalf("after the switchover: %s", raw)
			}

			// Pause, then kill the primary's mysqld: the failure is reported
			// as blocked by the pause, and nothing is promoted.
			if out, errOut, code := s.Ctl("pause", "--reason", "maintenance test"); code != 0 {
				t.Fatalf("pause exit %d: %s %s", code, out, errOut)
			}
			s.DB.Replicas[0].Kill(t)
			// r1's agent outlives its mysqld: its health check fails, its
			// liveness and readiness probes do not.
			s.Eventually("r1's agent: /health 503, /liveness and /readiness 200", 20*time.Second, func() (bool, string) {
				h, _, herr := probeOf(s, s.Agents[1].APIAddr, "/health")
				l, lp, lerr := probeOf(s, s.Agents[1].APIAddr, "/liveness")
				r, rp, rerr := probeOf(s, s.Agents[1].APIAddr, "/readiness")
				return h == 503 && l == 200 && lp.OK && r == 200 && rp.OK,
					fmt.Sprintf("health %d (%v), liveness %d %+v (%v), readiness %d %+v (%v)", h, herr, l, lp, lerr, r, rp, rerr)
			})
			s.Eventually("dead primary reported, blocked by the pause", 20*time.Second, func() (bool, string) {
				c, raw := s.Cluster()
				for _, p := range c.Problems {
					if strings.HasPrefix(p.Code, "DeadPrimary") {
						for _, b := range p.Blockers {
							if b.Kind == "paused" {
								return true, ""
							}
						}
					}
				}
				return false, raw
			})
			if c, raw := s.Cluster(); c.Primary != "r1" || c.Epoch != 2 {
				t.Fatalf("a paused cluster failed over: %s", raw)
			}
			if out, errOut, code := s.Ctl("resume"); code != 0 {
				t.Fatalf("resume exit %d: %s %s", code, out, errOut)
			}
			s.Eventually("automatic failover after resume", 30*time.Second, func() (bool, string) {
				c, raw := s.Cluster()
				return c.Primary != "r1" && c.Primary != "" && c.Epoch == 3, raw
			})
			out, errOut, code = s.Ctl("history")
			if code != 0 || !strings.Contains(out, "failover") || !strings.Contains(out, "switchover") {
				t.Fatalf("history (exit %d):\n%s\n%s", code, out, errOut)
			}

			// The failover waits for an acknowledgement; the primary's
			// replica is put in maintenance and taken out; discovery from
			// the primary finds the tree. All through the real binaries.
			s.Eventually("the failover, finished, waits for an acknowledgement", 10*time.Second, func() (bool, string) {
				c, raw = s.Cluster()
				return len(c.Unacknowledged) == 1, raw
			})
			if out, errOut, code := s.Ctl("ack", c.Unacknowledged[0].ID, "--comment", "e2e: mysqld killed by the test"); code != 0 || !strings.Contains(out, "acknowledged by") {
				t.Fatalf("ack exit %d: %s %s", code, out, errOut)
			}
			replica := "p"
			if c.Primary == "p" {
				replica = "r2"
			}
			if out, errOut, code := s.Ctl("maintenance", "start", replica, "--reason", "e2e", "--for", "1h"); code != 0 {
				t.Fatalf("maintenance start exit %d: %s %s", code, out, errOut)
			}
			// The agent that answers may apply the leader's entries a
			// moment later.
			s.Eventually("status shows the maintenance and no unacknowledged failover", 10*time.Second, func() (bool, string) {
				out, _, _ := s.Ctl("status")
				return strings.Contains(out, "maintenance;") && !strings.Contains(out, "UNACKNOWLEDGED"), out
			})
			if out, errOut, code := s.Ctl("maintenance", "end", replica); code != 0 {
				t.Fatalf("maintenance end exit %d: %s %s", code, out, errOut)
			}
			var primaryAddr string
			for _, in := range c.Instances {
				if in.Name == c.Primary {
					primaryAddr = in.Address
				}
			}
			if out, errOut, code := s.Ctl("discover", primaryAddr); code != 0 || !strings.Contains(out, "address: "+primaryAddr) {
				t.Fatalf("discover %s exit %d:\n%s\n%s", primaryAddr, code, out, errOut)
			}

			// A setting changed at run time through Raft, on every agent,
			// kept in the history; a regent.yaml-only key refused.
			if out, errOut, code := s.Ctl("cluster", "edit-config", "--set", "anti_flap_period=10m", "--yes"); code != 0 || !strings.Contains(out, "at version 1") {
				t.Fatalf("edit-config exit %d:\n%s\n%s", code, out, errOut)
			}
			if out, errOut, code := s.Ctl("cluster", "edit-config", "--set", "fence_after=1s", "--yes"); code == 0 || !strings.Contains(errOut, "fence_after: set only in regent.yaml") {
				t.Fatalf("edit-config of fence_after: exit %d:\n%s\n%s", code, out, errOut)
			}
			if out, errOut, code := s.Ctl("cluster", "remove", replica, "--yes"); code == 0 || !strings.Contains(errOut, "has an agent") {
				t.Fatalf("cluster remove of an instance with an agent: exit %d:\n%s\n%s", code, out, errOut)
			}
			if out, errOut, code := s.Ctl("cluster", "add", "r9", "--address", "no-port", "--yes"); code != 2 || !strings.Contains(errOut, "not host:port") {
				t.Fatalf("cluster add without a port: exit %d:\n%s\n%s", code, out, errOut)
			}
			s.Eventually("the answering agent shows the new setting and its history entry", 10*time.Second, func() (bool, string) {
				show, _, _ := s.Ctl("cluster", "show-config")
				hist, _, _ := s.Ctl("history")
				return strings.Contains(show, "* anti_flap_period: 10m0s") && strings.Contains(hist, "edit-config"), show + hist
			})

			// A wrong token is refused with a message and exit code 4; a
			// read-only token cannot switch over.
			out, errOut, code = s.CtlAs("not-the-right-token-at-all", "status")
			if code != 4 || !strings.Contains(strings.ToLower(out+errOut), "token") {
				t.Fatalf("wrong token: exit %d:\n%s\n%s", code, out, errOut)
			}
			out, errOut, code = s.CtlAs(s.ReadToken, "pause")
			if code != 4 {
				t.Fatalf("read-only token pausing: exit %d:\n%s\n%s", code, out, errOut)
			}

			// /metrics of a real agent is valid Prometheus text and says
			// the epoch.
			checkMetrics(t, s)

			// A token rotated in the file works after SIGHUP, without a
			// restart; the old one no longer does.
			newToken := "rotated-" + strings.Repeat("x", 24)
			sandbox.WriteFile(t, filepath.Join(s.Dir, "tokens"), "admin:"+newToken+":operator\n", 0o600)
			for _, a := range s.Agents {
				pid, err := exec.Command("pgrep", "-f", "--", "--config "+a.CfgPath).Output()
				if err != nil {
					t.Fatalf("no process for %s: %v", a.ID, err)
				}
				for _, p := range strings.Fields(string(pid)) {
					if err := exec.Command("kill", "-HUP", p).Run(); err != nil {
						t.Fatal(err)
					}
				}
			}
			s.Eventually("rotated token accepted", 10*time.Second, func() (bool, string) {
				out, errOut, code := s.CtlAs(newToken, "status")
				return code == 0, out + errOut
			})
			if _, _, code := s.CtlAs(s.AdminToken, "status"); code != 4 {
				t.Fatalf("the replaced token still works (exit %d)", code)
			}
		})
	}
}

// agentClient is an HTTPS client that trusts the sandbox's CA.
func agentClient(s *sandbox.Sandbox) (*http.Client, error) {
	ca, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}, nil
}

// statusOf asks the agent at addr for its own status (GET /v1/status).
func statusOf(s *sandbox.Sandbox, addr string) (api.Status, error) {
	var st api.Status
	client, err := agentClient(s)
	if err != nil {
		return st, err
	}
	req, err := http.NewRequest(http.MethodGet, "https://"+addr+"/v1/status", nil)
	if err != nil {
		return st, err
	}
	req.Header.Set("Authorization", "Bearer "+s.ReadToken)
	resp, err := client.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /v1/status: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// probeOf calls an agent's open endpoint path (no credentials) and decodes
// a liveness or readiness answer; the status is 0 when the call failed.
func probeOf(s *sandbox.Sandbox, addr, path string) (int, api.Probe, error) {
	var p api.Probe
	client, err := agentClient(s)
	if err != nil {
		return 0, p, err
	}
	resp, err := client.Get("https://" + addr + path)
	if err != nil {
		return 0, p, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, p, err
	}
	if path == "/liveness" || path == "/readiness" {
		err = json.Unmarshal(body, &p)
	}
	return resp.StatusCode, p, err
}

func checkMetrics(t *testing.T, s *sandbox.Sandbox) {
	t.Helper()
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	// The agent builds its snapshot metrics per scrape, from its status:
	// poll (bounded) until that status carries the epoch and the term.
	var body []byte
	s.Eventually("/metrics says the epoch and the Raft term", 10*time.Second, func() (bool, string) {
		resp, err := client.Get("https://" + s.Agents[0].APIAddr + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		var regent []string
		for _, l := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(l, "regent_") {
				regent = append(regent, l)
			}
		}
		ok := resp.StatusCode == 200 && strings.Contains(string(body), "regent_cluster_epoch") && strings.Contains(string(body), "regent_raft_term")
		return ok, fmt.Sprintf("%s; its regent_ lines:\n%.3000s", resp.Status, strings.Join(regent, "\n"))
	})
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found: apt-get install prometheus (make test installs it)")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(string(body))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// A configuration with an unknown key is refused at start, naming the key.
func TestBadConfigRefusedAtStart(t *testing.T) {
	regent, _ := sandbox.Binaries(t)
	dir := t.TempDir()
	cfg := sandbox.WriteFile(t, filepath.Join(dir, "bad.yaml"), "node_id: a\ndata_dir: /tmp/x\nclustres: []\n", 0o600)
	for _, args := range [][]string{{"--config", cfg}, {"check-config", cfg}} {
		out, err := exec.Command(regent, args...).CombinedOutput()
		var ee *exec.ExitError
		if err == nil || !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Fatalf("regent %v: %v\n%s", args, err, out)
		}
		if !strings.Contains(string(out), "clustres") {
			t.Fatalf("regent %v does not name the bad key:\n%s", args, out)
		}
	}
	if _, err := os.Stat(filepath.Join("/tmp/x", "raft.db")); err == nil {
		t.Fatalf("a refused configuration still created Raft state")
	}
}

// A fourth agent (a tie-breaker with no database) joins the running cluster
// through regentctl members add, and leaves with members remove.
func TestMemberJoinAndRemove(t *testing.T) {
	for _, k := range mysqltest.Kinds(t) {
		t.Run(string(k), func(t *testing.T) {
			t.Parallel()
			s := sandbox.Start(t, k, sandbox.Options{})
			regent, _ := sandbox.Binaries(t)
			base, err := os.ReadFile(s.Agents[0].CfgPath)
			if err != nil {
				t.Fatal(err)
			}
			raftAddr := "127.0.0.1:" + strconv.Itoa(sandbox.FreePort(t))
			apiAddr := "127.0.0.1:" + strconv.Itoa(sandbox.FreePort(t))
			cfg := string(base)
			cfg = strings.Replace(cfg, "node_id: agent1", "node_id: agent4", 1)
			cfg = strings.Replace(cfg, filepath.Join(s.Dir, "agent1"), filepath.Join(s.Dir, "agent4"), 1)
			cfg = strings.Replace(cfg, "local_instance: p\n", "", 1)
			cfg = strings.Replace(cfg, "  bind: \""+s.Agents[0].RaftAddr+"\"", "  bind: \""+raftAddr+"\"\n  join: true", 1)
			cfg = strings.Replace(cfg, "  listen: \""+s.Agents[0].APIAddr+"\"", "  listen: \""+apiAddr+"\"", 1)
			// Its own certificate: every agent is known by the one it holds.
			cert, key := s.AgentCert("agent4")
			cfg = strings.ReplaceAll(cfg, filepath.Join(s.Dir, "agent1-key.pem"), key)
			cfg = strings.ReplaceAll(cfg, filepath.Join(s.Dir, "agent1.pem"), cert)
			path := sandbox.WriteFile(t, filepath.Join(s.Dir, "agent4.yaml"), cfg, 0o600)
			logf, err := os.Create(filepath.Join(s.Dir, "agent4.log"))
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(regent, "--config", path)
			cmd.Stdout, cmd.Stderr = logf, logf
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = cmd.Process.Signal(os.Interrupt)
				_ = cmd.Wait()
				logf.Close()
				if t.Failed() {
					b, _ := os.ReadFile(logf.Name())
					t.Logf("agent4 log:\n%s", b)
				}
			})
			// Serving, not ready: it has not joined.
			s.Eventually("agent4 live, and not ready before it joined", 20*time.Second, func() (bool, string) {
				l, _, lerr := probeOf(s, apiAddr, "/liveness")
				r, rp, rerr := probeOf(s, apiAddr, "/readiness")
				return l == 200 && r == 503 && !rp.OK && rp.Reason != "", fmt.Sprintf("liveness %d (%v), readiness %d %+v (%v)", l, lerr, r, rp, rerr)
			})
			if out, errOut, code := s.Ctl("members", "add", "agent4", raftAddr, apiAddr); code != 0 {
				t.Fatalf("members add: exit %d\n%s\n%s", code, out, errOut)
			}
			s.Eventually("agent4 is a member", 20*time.Second, func() (bool, string) {
				out, errOut, code := s.Ctl("members")
				return code == 0 && strings.Contains(out, "agent4") && strings.Contains(out, raftAddr), out + errOut
			})
			// And a Raft follower: the leader dialled it and found agent4's
			// certificate, and agent4 took the leader's, which its peers
			// list named, before it had a configuration of its own.
			s.Eventually("agent4 follows the leader over Raft", 20*time.Second, func() (bool, string) {
				st, err := statusOf(s, apiAddr)
				if err != nil {
					return false, err.Error()
				}
				return st.AgentID == "agent4" && st.LeaderID != "" && st.AppliedIndex > 0, fmt.Sprintf("%+v", st)
			})
			s.Eventually("agent4 ready once it follows", 20*time.Second, func() (bool, string) {
				r, rp, err := probeOf(s, apiAddr, "/readiness")
				return r == 200 && rp.OK, fmt.Sprintf("readiness %d %+v (%v)", r, rp, err)
			})
			if out, errOut, code := s.Ctl("members", "remove", "agent4"); code != 0 {
				t.Fatalf("members remove: exit %d\n%s\n%s", code, out, errOut)
			}
			s.Eventually("agent4 removed", 20*time.Second, func() (bool, string) {
				out, errOut, code := s.Ctl("members")
				return code == 0 && !strings.Contains(out, "agent4"), out + errOut
			})
		})
	}
}
