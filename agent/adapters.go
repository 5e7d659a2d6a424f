package agent

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/regentdb/regent/consensus"
	"github.com/regentdb/regent/failover"
	"github.com/regentdb/regent/proxyhook"
)

// routerAdapter adapts proxyhook's Router and Hooks to failover.Router and
// failover.Hooks for one cluster.
type routerAdapter struct {
	c   *clusterRT
	tok *routeToken // nil: no routing attempt (hooks, endpoints)
}

// routeToken orders the routing attempts of one run or reconciliation among
// every leader's (proxyhook.Order): the Raft index of the run's recorded
// intent, or, for what records none (the small repairs, which route only
// the committed primary), the index of the state it started from. A
// deposed leader's operation is aborted by its successor before the
// successor acts, at a later index, so the successor's tokens are higher.
type routeToken struct{ v atomic.Uint64 }

func newRouteToken(index uint64) *routeToken {
	t := &routeToken{}
	t.v.Store(index)
	return t
}

// raise records a later authorisation (the intent's index).
func (t *routeToken) raise(index uint64) {
	for {
		cur := t.v.Load()
		if index <= cur || t.v.CompareAndSwap(cur, index) {
			return
		}
	}
}

func (r routerAdapter) token() uint64 {
	if r.tok == nil {
		return 0
	}
	return r.tok.v.Load()
}

var (
	_ failover.Router = routerAdapter{}
	_ failover.Hooks  = routerAdapter{}
)

func (r routerAdapter) endpoint(name string) proxyhook.Endpoint {
	if name == "" {
		return proxyhook.Endpoint{}
	}
	h, p := hostPort(r.c.set().addrs[name])
	port, _ := strconv.Atoi(p)
	return proxyhook.Endpoint{Name: name, Host: h, Port: port}
}

func (r routerAdapter) replicas(except string) []proxyhook.Endpoint {
	var out []proxyhook.Endpoint
	for _, in := range r.c.set().configs {
		if in.Name != except {
			out = append(out, r.endpoint(in.Name))
		}
	}
	return out
}

// routeResult decides what a push's failure means. A stale epoch stops the
// run (another leader moved on). A target that could not be pushed to does
// not: HAProxy's health checks against /primary converge on the new primary
// anyway, and the old primary is fenced whatever the balancers do, so one
// load balancer down must not block a failover. It is logged loudly and the
// routing metric counts it.
func (r routerAdapter) routeResult(rep proxyhook.RouteReport, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, proxyhook.ErrStaleEpoch) {
		return fmt.Errorf("%w: %w", failover.ErrStaleEpoch, err)
	}
	r.c.log.Error("routing push failed on some targets; health checks will converge", "epoch", rep.Epoch, logErr, err)
	return nil
}

func (r routerAdapter) RouteWrites(ctx context.Context, cluster, instance string, epoch uint64) error {
	return r.routeResult(r.route(ctx, cluster, instance, epoch))
}

// route pushes the write route to instance and returns every target's
// failure, which RouteWrites forgives and the leader's reconciliation
// reports (failover.PrimaryNotRouted).
func (r routerAdapter) route(ctx context.Context, cluster, instance string, epoch uint64) (proxyhook.RouteReport, error) {
	old := ""
	if st := r.c.state(); st != nil && st.Primary != instance {
		old = st.Primary
	}
	return r.c.router.Route(ctx, proxyhook.RouteChange{Cluster: cluster, Epoch: epoch, Token: r.token(),
		OldPrimary: r.endpoint(old), NewPrimary: r.endpoint(instance), Replicas: r.replicas(instance)})
}

func (r routerAdapter) UnrouteWrites(ctx context.Context, cluster, instance string, epoch uint64) error {
	rep, err := r.c.router.UnrouteRequest(ctx, proxyhook.UnrouteRequest{Cluster: cluster, Epoch: epoch, Token: r.token(), Old: r.endpoint(instance)})
	return r.routeResult(rep, err)
}

// Run runs the hooks of a phase ("pre-failover", ...).
func (r routerAdapter) Run(ctx context.Context, phase string, plan failover.Plan) (string, error) {
	if r.c.routing == nil || r.c.routing.Hooks == nil {
		return "", nil
	}
	in := proxyhook.HookInput{Cluster: plan.Cluster, Operation: string(plan.Kind), Epoch: plan.Epoch,
		OldPrimary: r.endpoint(plan.OldPrimary), NewPrimary: r.endpoint(plan.NewPrimary), Replicas: r.replicas(plan.NewPrimary)}
	res, err := r.c.routing.Hooks.Run(ctx, proxyhook.HookEvent(phase), in)
	return proxyhook.FormatHookResults(res), err
}

// store adapts the consensus node to failover.StateStore and
// failover.Leadership.
type store struct {
	c   *clusterRT
	tok *routeToken // raised to the index of the run's intent; nil outside runs
}

var (
	_ failover.Leadership   = store{}
	_ failover.StateStore   = store{}
	_ failover.HistoryKinds = store{}
)

func (s store) Barrier(ctx context.Context) error { return s.c.a.raft.Barrier(ctx) }

func (s store) VerifyLeader(ctx context.Context) error {
	return s.c.a.raft.VerifyLeader(ctx)
}

func (s store) propose(ctx context.Context, cmd consensus.Command) error {
	out, err := s.c.a.raft.Propose(ctx, cmd)
	if _, intent := cmd.(consensus.BeginOperation); intent && err == nil && s.tok != nil {
		s.tok.raise(out.Index)
	}
	return err
}

// LastContact reports when each agent was last heard over Raft and when this
// node last had the quorum.
func (s store) LastContact(ctx context.Context) (map[failover.AgentID]time.Time, time.Time, error) {
	out := map[failover.AgentID]time.Time{failover.AgentID(s.c.a.id): s.c.now()}
	pcs, err := s.c.a.raft.PeerContacts()
	if err != nil {
		return nil, time.Time{}, err
	}
	// Raft contact only, as in clusterRT.view: a report proves the agent
	// alive, not that it holds its lease.
	for _, pc := range pcs {
		out[failover.AgentID(pc.ID)] = pc.LastHeard
	}
	return out, s.c.a.raft.LastQuorumContact(), nil
}

// Apply maps the runner's replicated-state changes to consensus commands,
// one to one.
func (s store) Apply(ctx context.Context, ch failover.Change) error {
	var cmd consensus.Command
	switch ch.Kind {
	case failover.ChangeIntent:
		cmd = consensus.BeginOperation{Cluster: ch.Cluster, OperationID: ch.OperationID, Kind: recordedKind(ch.Operation),
			ExpectEpoch: ch.ExpectEpoch, Target: ch.Target, Trigger: consensus.TruncateDetail(ch.Trigger), At: ch.At,
			// Consensus refuses automatic operations in the anti-flap
			// window; only failovers are meant to be (the core has
			// already applied pause to every automatic action).
			Automatic: ch.Automatic && (ch.Operation == failover.OpFailover || ch.Operation == failover.OpForcedFailover)}
	case failover.ChangeStep:
		// One vocabulary: the runner's result is the stored one, and
		// consensus refuses a value it does not know (step.result).
		res := ch.Step.Result
		detail := ch.Step.Detail
		if ch.Step.Err != "" {
			detail = ch.Step.Err
		}
		if ch.Step.Output != "" {
			detail += "\n" + ch.Step.Output
		}
		cmd = consensus.RecordStep{Cluster: ch.Cluster, OperationID: ch.OperationID, Step: consensus.Step{
			Name: ch.Step.HistoryName(), Start: ch.Step.Started, Duration: ch.Step.Duration, Result: res, Detail: consensus.TruncateDetail(detail)}}
	case failover.ChangeCommitEpoch:
		cmd = consensus.CommitPrimary{Cluster: ch.Cluster, OperationID: ch.OperationID, NewPrimary: ch.Instance,
			ExpectEpoch: ch.ExpectEpoch, GTID: consensus.TruncateDetail(ch.GTID), At: ch.At}
	case failover.ChangeAntiFlap:
		cmd = consensus.SetAntiFlap{Cluster: ch.Cluster, Until: ch.AntiFlapUntil}
	case failover.ChangeFinish:
		res := consensus.Result(ch.Result)
		if res == consensus.ResultAborted {
			cmd = consensus.AbortOperation{Cluster: ch.Cluster, OperationID: ch.OperationID, Reason: consensus.TruncateDetail(ch.Reason), At: ch.At}
		} else {
			cmd = consensus.FinishOperation{Cluster: ch.Cluster, OperationID: ch.OperationID, Result: res, Reason: consensus.TruncateDetail(ch.Reason), At: ch.At}
		}
	case failover.ChangeAbort:
		cmd = consensus.AbortOperation{Cluster: ch.Cluster, OperationID: ch.OperationID, Reason: consensus.TruncateDetail(ch.Reason), At: ch.At}
	case failover.ChangeQuarantine:
		reason := ch.Reason
		if ch.GTID != "" {
			reason += " (errant GTIDs: " + ch.GTID + ")"
		}
		cmd = consensus.SetQuarantine{Cluster: ch.Cluster, Instance: ch.Instance, Reason: consensus.TruncateDetail(reason), By: s.c.a.id, At: ch.At}
	case failover.ChangeLiftQuarantine:
		cmd = consensus.ClearQuarantine{Cluster: ch.Cluster, Instance: ch.Instance}
	case failover.ChangeSemiSync:
		cmd = consensus.SetSemiSyncDegraded{Cluster: ch.Cluster, OperationID: ch.OperationID, Degraded: ch.Degraded, Reason: consensus.TruncateDetail(ch.Reason), At: ch.At}
	case failover.ChangeSource:
		cmd = consensus.SetSource{Cluster: ch.Cluster, Instance: ch.Instance, Source: ch.Target, By: ch.Trigger, At: ch.At}
	case failover.ChangeCandidate:
		cmd = consensus.SetCandidate{Cluster: ch.Cluster, OperationID: ch.OperationID, Instance: ch.Instance}
	default:
		return fmt.Errorf("no consensus command for change %q", ch.Kind)
	}
	return s.propose(ctx, cmd)
}

// RecordsOperation says which operations have a place in the replicated
// history: the small repairs (fence, repoint, restore writes, configuring
// semi-sync) change no epoch and are only logged; a fallback to
// asynchronous commits and its restore are recorded.
func (store) RecordsOperation(k failover.OperationKind) bool {
	switch k {
	case failover.OpFailover, failover.OpForcedFailover, failover.OpSwitchover, failover.OpRejoin, failover.OpQuarantine,
		failover.OpSemiSyncFallback, failover.OpSemiSyncRestore:
		return true
	}
	return false
}
