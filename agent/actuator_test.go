package agent

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/regentdb/regent/config"
	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/topology"
	"github.com/regentdb/regent/topology/mysqltest"
)

// A candidate promoted by a leader that died before its commit is a
// lossless semi-sync source with no replica. The next leader fences it and,
// when it lacks a transaction the old primary has, catches it up from there
// (StepCatchUp), which repoints it without semi-sync options. A replica
// that is still a semi-sync source waits for an acknowledgement for each
// transaction its applier commits, forever: the applier hangs, STOP SLAVE
// hangs with it, and the failover fails at each try (seen in CI in
// TestKillLeaderAfterFrozenPrimaryFailoverStep/mariadb/promote). A repoint
// must turn the source side off.
func TestRepointedInstanceIsNoSemiSyncSource(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		// p is a lossless source whose commits r2 acknowledges.
		c, act, ctx := losslessRig(t, k, 2, "r2")
		// r1's applier must be idle before it becomes a lossless source:
		// a commit it applies after that waits for an acknowledgement no
		// replica of r1 sends, and the RESET's STOP SLAVE hangs behind it
		// (CI, MariaDB: "STOP SLAVE: invalid connection" after 7 s). A
		// failover's candidate has caught up before its promotion.
		mysqltest.WaitCaughtUp(t, c.Replicas[0], c.Primary, 30*time.Second)
		// r1 as the dead leader and the next one left it: promoted (RESET,
		// lossless source, writable), then fenced.
		must(t, act.Promote(ctx, "r1", true))
		must(t, act.SetReadOnly(ctx, "r1", true))

		must(t, act.Repoint(ctx, "r1", "p", failover.RepointOptions{KeepDelay: true}))
		c.Primary.Exec(t, "INSERT INTO "+mysqltest.TestDatabase+".writes (id) VALUES (1)")
		mysqltest.WaitCaughtUp(t, c.Replicas[0], c.Primary, 30*time.Second)
		if s, err := act.set().insts["r1"].Probe(ctx); err != nil || s.SemiSync.SourceEnabled {
			t.Fatalf("r1 replicates and is still a semi-sync source (probe error %v)", err)
		}
		// Its applier is idle: the replica stops at once.
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		defer scancel()
		if err := act.set().insts["r1"].StopReplica(sctx, topology.ThreadsBoth); err != nil {
			t.Fatalf("stop r1's replication: %v", err)
		}
	})
}

// The old primary of a committed failover, frozen through it, wakes with a
// commit waiting for a semi-sync acknowledgement that its moved replicas
// never send. Its own agent died with the leader, so no lease keeper
// releases it; the next leader fences it (TwoWritablePrimaries, then each
// rejoin). On MySQL the killed waiter keeps the commit lock, read_only
// pended at every try, and the cluster never converged (CI:
// TestKillLeaderAfterFrozenPrimaryFailoverStep/mysql/commit-epoch). The
// leader's fence now releases such commits as the lease keeper does, for a
// replaced instance only, and never with an OK to a live client.
func TestLeaderFenceReleasesKilledWaiters(t *testing.T) {
	forEachFlavor(t, func(t *testing.T, k mysqltest.Kind) {
		c, act, ctx := losslessRig(t, k, 1, "r1")
		h := &harness{t: t}
		h.eventually("p waits for r1's acknowledgements", 30*time.Second, func() (bool, string) {
			s, err := act.set().insts["p"].Probe(ctx)
			return err == nil && s.SemiSync.SourceActive && s.SemiSync.SourceClients == 1, fmt.Sprintf("%v %+v", err, s)
		})
		// Nothing acknowledges any more: a commit waits.
		must(t, act.StopReplicaIO(ctx, "r1"))
		app := appDB(t, c.Primary)
		done := make(chan error, 1)
		go func() {
			_, err := app.ExecContext(ctx, "INSERT INTO "+mysqltest.TestDatabase+".writes (id) VALUES (1)")
			done <- err
		}()
		h.eventually("the commit waits for an acknowledgement", 10*time.Second, func() (bool, string) {
			n := c.Primary.QueryString(t, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '"+mysqltest.AppUser+"' AND STATE LIKE '%semi-sync%'")
			return n == "1", n + " sessions waiting"
		})
		noOK := func() {
			t.Helper()
			select {
			case err := <-done:
				if err == nil {
					t.Fatalf("the commit waiting for an acknowledgement got an OK")
				}
				done <- err // for the next look
			default:
			}
		}

		// p still the committed primary: never released.
		act.prober.primary = func() (string, uint64) { return "p", 1 }
		fctx, fcancel := context.WithTimeout(ctx, 2*time.Second)
		err := act.SetReadOnly(fctx, "p", true)
		fcancel()
		noOK()
		if k == mysqltest.MySQL {
			// The killed waiter holds the commit lock.
			if !errors.Is(err, topology.ErrReadOnlyPending) {
				t.Fatalf("fence of the committed primary: %v, want read_only pending", err)
			}
			if s, perr := act.set().insts["p"].Probe(ctx); perr != nil || !s.SemiSync.SourceEnabled {
				t.Fatalf("the committed primary's semi-sync source side was switched off (probe error %v)", perr)
			}
		} else if err != nil {
			// MariaDB ends a killed waiter's wait: read_only holds.
			t.Fatalf("fence of the committed primary: %v", err)
		}

		// A client with a stale address, as the frozen-mysqld benchmark's
		// direct client: it reconnects after every kill and writes again,
		// so on MySQL a statement of its always waits behind the pending
		// read_only. The release must end it rather than wait for it (the
		// benchmark's old primary never converged), and none of its
		// writes may be acknowledged.
		stale := make(chan int, 1)
		stop := make(chan struct{})
		if k == mysqltest.MySQL {
			// As after fences whose budget ran out in their first attempt
			// (the lease keeper's past its escalation point): offline_mode
			// is not on.
			c.Primary.Exec(t, "SET GLOBAL offline_mode=OFF")
			go func() {
				acked := 0
				defer func() { stale <- acked }()
				for i := 0; i < 1000; i++ {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
					_, err := app.ExecContext(sctx, fmt.Sprintf("INSERT INTO %s.writes (id) VALUES (%d)", mysqltest.TestDatabase, 1000+i))
					scancel()
					if err == nil {
						acked++
					}
				}
			}()
			h.eventually("the stale client waits behind the pending read_only", 10*time.Second, func() (bool, string) {
				n := c.Primary.QueryString(t, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '"+mysqltest.AppUser+"' AND STATE = 'Waiting for global read lock'")
				return n != "0", n + " sessions waiting"
			})
		} else {
			stale <- 0
		}

		// Replaced: released, and fenced, within the default step_timeout
		// (a rejoin's fence step): a third of it for the plain fence, too
		// short for it to set offline_mode.
		act.prober.primary = func() (string, uint64) { return "r1", 2 }
		fctx, fcancel = context.WithTimeout(ctx, 1500*time.Millisecond)
		err = act.SetReadOnly(fctx, "p", true)
		fcancel()
		close(stop)
		if err != nil {
			t.Fatalf("fence of the replaced primary: %v", err)
		}
		if v := c.Primary.QueryString(t, "SELECT @@read_only"); v != "1" {
			t.Fatalf("read_only=%s after the fence", v)
		}
		if n := <-stale; n != 0 {
			t.Errorf("the stale client's writes were acknowledged %d times", n)
		}
		if k == mysqltest.MySQL {
			if v := c.Primary.QueryString(t, "SELECT @@offline_mode"); v != "0" {
				t.Errorf("offline_mode=%s after the fence: clients are still refused", v)
			}
		}
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("the commit waiting for an acknowledgement got an OK")
			}
			t.Logf("the waiting client got %v", err)
		case <-time.After(10 * time.Second):
			t.Fatalf("the waiting client never got an answer")
		}
	})
}

// losslessRig starts p and n replicas with the test table, and an actuator
// over them that makes p a lossless semi-sync source and acker its
// semi-sync replica; ctx lasts the test.
func losslessRig(t *testing.T, k mysqltest.Kind, n int, acker string) (*mysqltest.Cluster, *actuator, context.Context) {
	t.Helper()
	c := mysqltest.StartCluster(t, k, n)
	mysqltest.EnsureTable(t, c.Primary)
	act := realActuator(t, c.Servers()...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	must(t, act.ConfigureSemiSync(ctx, "p", "source"))
	must(t, act.ConfigureSemiSync(ctx, acker, "replica"))
	return c, act, ctx
}

// realActuator is an actuator of cluster "main" over servers, named as
// mysqltest names them, with the harness's replication settings.
func realActuator(t *testing.T, servers ...*mysqltest.Server) *actuator {
	t.Helper()
	instances := map[string]*topology.Instance{}
	var configs []config.InstanceConfig
	for _, s := range servers {
		instances[s.Name] = openInstance(t, s)
		configs = append(configs, config.InstanceConfig{Name: s.Name, Address: s.Addr()})
	}
	set := newInstanceSet(0, configs, instances)
	current := func() *instanceSet { return set }
	return &actuator{cluster: "main", set: current,
		prober:    newProber("main", 5*time.Second, current),
		repl:      replicationAuth{User: mysqltest.ReplUser, Password: mysqltest.ReplPassword, Heartbeat: 250 * time.Millisecond},
		keepUsers: []string{mysqltest.ReplUser}, semiWaitFor: 1}
}

// openInstance connects to s as Regent's account, as an agent does.
func openInstance(t *testing.T, s *mysqltest.Server) *topology.Instance {
	t.Helper()
	cfg := topology.ConnConfig{Addr: s.Addr(), User: mysqltest.AdminUser, Password: mysqltest.AdminPassword,
		ConnectTimeout: 300 * time.Millisecond, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	if s.Kind == mysqltest.MySQL {
		cfg.TLS, _ = topology.ClientTLS(topology.TLSFiles{InsecureSkipVerify: true})
	}
	inst, err := topology.Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inst.Close() })
	return inst
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
