package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/apiserver"
	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/topology"
)

var _ apiserver.Backend = (*Agent)(nil)

// Leadership says whether this agent leads and where the leader's API is.
func (a *Agent) Leadership() apiserver.Leadership {
	li := a.raft.Leader()
	return apiserver.Leadership{IsLeader: a.raft.IsLeader(), LeaderID: li.ID, LeaderAPIAddr: li.APIAddr}
}

// apiErr maps consensus errors to the API's.
func apiErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, consensus.ErrNotLeader):
		return fmt.Errorf("%w: %v", apiserver.ErrNotLeader, err)
	case errors.Is(err, consensus.ErrNotFound):
		return fmt.Errorf("%w: %v", apiserver.ErrNotFound, err)
	case errors.Is(err, consensus.ErrConflict), errors.Is(err, consensus.ErrStaleEpoch):
		return fmt.Errorf("%w: %v", apiserver.ErrConflict, err)
	case errors.Is(err, consensus.ErrInvalidCommand):
		return fmt.Errorf("%w: %v", apiserver.ErrInvalid, err)
	case errors.Is(err, consensus.ErrTimeout), errors.Is(err, consensus.ErrClosed):
		return fmt.Errorf("%w: %v", apiserver.ErrUnavailable, err)
	}
	return err
}

func callerName(ctx context.Context) string {
	if c, ok := apiserver.CallerFrom(ctx); ok && c.Name != "" {
		return c.Name
	}
	return "api"
}

// Pause blocks automatic action on a cluster.
func (a *Agent) Pause(ctx context.Context, cluster string, req api.PauseRequest) (api.Cluster, error) {
	return a.setPaused(ctx, cluster, true, req.Reason)
}

// Resume lifts a pause.
func (a *Agent) Resume(ctx context.Context, cluster string) (api.Cluster, error) {
	return a.setPaused(ctx, cluster, false, "")
}

func (a *Agent) setPaused(ctx context.Context, cluster string, paused bool, reason string) (api.Cluster, error) {
	c, err := a.cluster(cluster)
	if err != nil {
		return api.Cluster{}, fmt.Errorf("%w: %v", apiserver.ErrNotFound, err)
	}
	if c.state() == nil {
		return api.Cluster{}, fmt.Errorf("%w: cluster %s is not recorded in Raft yet (no leader has seen it); try again in a few seconds", apiserver.ErrUnavailable, cluster)
	}
	if _, err := a.raft.Propose(ctx, consensus.SetPaused{Cluster: cluster, Paused: paused, By: callerName(ctx), Reason: reason, At: a.now()}); err != nil {
		return api.Cluster{}, apiErr(err)
	}
	return a.Cluster(ctx, cluster)
}

// AddMember adds an agent to the Raft configuration and the member table.
func (a *Agent) AddMember(ctx context.Context, req api.AddMemberRequest) (api.Members, error) {
	n, ok := a.raft.(interface {
		AddAgent(context.Context, consensus.Member) error
	})
	if !ok {
		return api.Members{}, fmt.Errorf("%w: membership changes are not available", apiserver.ErrUnavailable)
	}
	if req.NonVoter {
		return api.Members{}, fmt.Errorf("%w: non-voting members are not supported yet", apiserver.ErrInvalid)
	}
	if err := n.AddAgent(ctx, consensus.Member{ID: req.ID, RaftAddr: req.RaftAddr, APIAddr: req.APIAddr}); err != nil {
		return api.Members{}, apiErr(err)
	}
	return a.Members(ctx)
}

// RemoveMember removes an agent.
func (a *Agent) RemoveMember(ctx context.Context, id string) (api.Members, error) {
	if id == a.id {
		return api.Members{}, fmt.Errorf("%w: agent %s leads; remove another agent, or move leadership first by stopping this one", apiserver.ErrRefused, id)
	}
	n, ok := a.raft.(interface {
		RemoveAgent(context.Context, string) error
	})
	if !ok {
		return api.Members{}, fmt.Errorf("%w: membership changes are not available", apiserver.ErrUnavailable)
	}
	if err := n.RemoveAgent(ctx, id); err != nil {
		return api.Members{}, apiErr(err)
	}
	return a.Members(ctx)
}

// minReplicaNetTimeout is the shortest slave_net_timeout /
// replica_net_timeout the preflight accepts without a warning, in seconds.
const minReplicaNetTimeout = 8

// Check is the preflight of regentctl check (README "regentctl"), computed
// from this agent's latest probes: every finding comes with a fix.
func (a *Agent) Check(ctx context.Context, cluster string) (api.CheckReport, error) {
	c, err := a.cluster(cluster)
	if err != nil {
		return api.CheckReport{}, fmt.Errorf("%w: %v", apiserver.ErrNotFound, err)
	}
	rep := api.CheckReport{Cluster: cluster, CheckedAt: a.now()}
	add := func(check, inst, sev, msg, fix string) {
		rep.Findings = append(rep.Findings, api.Finding{Check: check, Instance: inst, Severity: sev, Message: msg, Fix: fix})
	}
	obs := c.prober.snapshot()
	st := c.state()
	ids := map[uint32]string{}
	for _, in := range c.cfg.Instances {
		o, ok := obs[in.Name]
		switch {
		case !ok:
			add("reachable", in.Name, api.SeverityWarning, "not probed yet", "wait a probe interval and check again")
			continue
		case !o.Reachable && (o.Error == topology.ClassAuth || o.Error == topology.ClassAccessDenied):
			add("privileges", in.Name, api.SeverityError, "Regent's MySQL user cannot log in or lacks privileges: "+o.ErrorDetail,
				"create Regent's user with the grants in deploy/regent/users-mariadb.sql or users-mysql.sql, and check mysql.user and the password file")
			continue
		case !o.Reachable:
			add("reachable", in.Name, api.SeverityError, "unreachable: "+o.ErrorDetail, "start mysqld or fix the address in the configuration")
			continue
		}
		add("reachable", in.Name, api.SeverityOK, "reachable", "")
		if other, dup := ids[o.ServerID]; dup {
			add("server_id", in.Name, api.SeverityError, fmt.Sprintf("server_id %d is also the server_id of %s", o.ServerID, other), "give every server a unique server_id in my.cnf")
		}
		ids[o.ServerID] = in.Name
		primary := st != nil && st.Primary == in.Name
		// Before a primary is recorded (or on an agent that has not applied
		// it yet) a writable instance is not known to be a replica.
		known := st != nil && st.Primary != ""
		if known && !primary && !o.ReadOnly && !o.SuperReadOnly {
			add("read_only", in.Name, api.SeverityError, "a replica is writable", "SET GLOBAL read_only=ON, and put read_only=ON in my.cnf (only Regent turns it off on the primary)")
		}
		if r := o.Replica; r != nil {
			if r.HeartbeatPeriod == 0 || r.HeartbeatPeriod > 2 {
				add("heartbeat", in.Name, api.SeverityWarning, fmt.Sprintf("replication heartbeat period %.1fs: a dead source is noticed late", r.HeartbeatPeriod),
					"repoint with MASTER_HEARTBEAT_PERIOD / SOURCE_HEARTBEAT_PERIOD of 1s or less (Regent does when it repoints)")
			}
		}
	}
	for name, i := range c.instances {
		if o := obs[name]; !o.Reachable {
			continue
		}
		snap, err := i.Probe(ctx)
		if err != nil {
			continue
		}
		if !snap.LogBin || !snap.LogReplicaUpdates {
			add("binlog", name, api.SeverityError, "log_bin or log_slave_updates is off", "set log_bin and log_slave_updates=ON in my.cnf: every instance must be able to become a primary")
		}
		if snap.GTIDMode != "ON" || !snap.GTIDStrict {
			add("gtid", name, api.SeverityError, fmt.Sprintf("GTIDs: gtid_mode=%s, strict/consistency=%v", snap.GTIDMode, snap.GTIDStrict),
				"MySQL: gtid_mode=ON and enforce_gtid_consistency=ON; MariaDB: gtid_strict_mode=ON")
		}
		if snap.BinlogFormat != "ROW" {
			add("binlog_format", name, api.SeverityWarning, "binlog_format="+snap.BinlogFormat, "set binlog_format=ROW")
		}
		if c.policy.Durability == "semi_sync" && !snap.SemiSync.Available {
			add("semi_sync", name, api.SeverityError, "semi-synchronous replication is not available", "MySQL: plugin-load-add=semisync_source.so;semisync_replica.so in my.cnf")
		}
		// Short: on a lossy or jittery link TCP's backoff alone stalls a
		// stream for seconds, the replica reconnects, and each reconnect
		// takes a dozen round trips under the same timeout; replicas that
		// reconnect at once leave a semi-sync primary unable to commit
		// (the soak in BENCHMARKS.md, with 4 s). Regent does not need the
		// replica to notice a dead source: it watches heartbeat progress.
		if snap.ReplicaNetTimeout > 0 && snap.ReplicaNetTimeout < minReplicaNetTimeout {
			add("replica_net_timeout", name, api.SeverityWarning, fmt.Sprintf("replica_net_timeout=%ds: on a lossy or slow link this replica keeps reconnecting, and a semi-sync primary whose replicas reconnect at once cannot commit", snap.ReplicaNetTimeout),
				fmt.Sprintf("SET GLOBAL slave_net_timeout=15 (replica_net_timeout on MySQL), and the same in my.cnf; %ds or more passes. Regent notices a dead source by the heartbeats, not by this timeout", minReplicaNetTimeout))
		}
		if snap.ReplicaNetTimeout > 10 && snap.Replica != nil && snap.Replica.HeartbeatPeriod == 0 {
			add("replica_net_timeout", name, api.SeverityWarning, fmt.Sprintf("replica_net_timeout=%ds without heartbeats: a dead source is noticed only after that long", snap.ReplicaNetTimeout),
				"repoint with a heartbeat period of 1s or less (Regent does when it repoints), and keep slave_net_timeout/replica_net_timeout at about 15s")
		}
	}
	return rep, nil
}
