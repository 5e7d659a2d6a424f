package apiserver

import (
	"context"
	"errors"

	"github.com/regentdb/regent/api"
)

// Backend is what the handlers need of the agent; cmd/regent implements it.
// It is the union of three small interfaces so a part of the agent can be
// given, or faked, separately. Every method gets the request's context; the
// authenticated caller is in it (CallerFrom). Errors wrap the Err…
// sentinels below to choose the HTTP status; their text is shown to the
// caller, so it must say what to do.
type Backend interface {
	Reader
	Operator
	Membership
}

// Reader serves the read-only views. They are answered by any agent from
// its own state.
type Reader interface {
	// Status describes the regent cluster as this agent sees it.
	Status(ctx context.Context) (api.Status, error)
	// ClusterNames lists the replication clusters this agent manages,
	// sorted: GET /v1/clusters pages through them without the cost of
	// Status (the Raft membership, the lease).
	ClusterNames(ctx context.Context) ([]string, error)
	// Cluster describes one replication cluster (ErrNotFound if unknown).
	Cluster(ctx context.Context, name string) (api.Cluster, error)
	// History returns up to limit operations of a cluster, newest first.
	History(ctx context.Context, cluster string, limit int) ([]api.Operation, error)
	// Check returns the preflight findings computed from the latest probes.
	Check(ctx context.Context, cluster string) (api.CheckReport, error)
	// Settings returns a cluster's failover settings, run-time and not.
	Settings(ctx context.Context, cluster string) (api.ClusterSettings, error)
}

// Operator starts and reports operations. The server calls these methods
// only on the leader (Leadership().IsLeader); a follower forwards.
type Operator interface {
	// Leadership says whether this agent is the Raft leader and, if not,
	// where the leader's API is. It is called on every mutating request and
	// must be cheap.
	Leadership() Leadership
	// Operation returns an operation, running or finished (ErrNotFound if
	// unknown). The server polls it to stream progress, so it must be
	// cheap.
	Operation(ctx context.Context, cluster, id string) (api.Operation, error)
	// Switchover starts a planned switchover and returns at once with the
	// running operation; ErrConflict if one runs, ErrRefused if unsafe now.
	Switchover(ctx context.Context, cluster string, req api.SwitchoverRequest) (api.Operation, error)
	// Failover starts a manual failover and returns the running operation.
	Failover(ctx context.Context, cluster string, req api.FailoverRequest) (api.Operation, error)
	// Rejoin starts the rejoin of an instance as a replica.
	Rejoin(ctx context.Context, cluster string, req api.RejoinRequest) (api.Operation, error)
	// Pause blocks automatic action on a cluster and returns its new state.
	Pause(ctx context.Context, cluster string, req api.PauseRequest) (api.Cluster, error)
	// Resume lifts a pause and returns the cluster's new state.
	Resume(ctx context.Context, cluster string) (api.Cluster, error)
	// Discover walks the replication tree around a host:port with Regent's
	// MySQL account and proposes a cluster definition; nothing is changed
	// (ErrInvalid for a bad address, ErrRefused when it cannot be read).
	Discover(ctx context.Context, address string) (api.Discovery, error)
	// Ack records an operator's acknowledgement of a finished operation
	// (ErrNotFound when the history has no such operation, ErrConflict when
	// it is acknowledged already) and returns it.
	Ack(ctx context.Context, cluster, id string, req api.AckRequest) (api.Operation, error)
	// DefineCluster adds a replication cluster at run time (ErrInvalid
	// with the key named, ErrConflict when the name is taken);
	// RemoveCluster takes out one added so (ErrNotFound otherwise,
	// ErrConflict during an operation).
	DefineCluster(ctx context.Context, req api.DefineClusterRequest) (api.DefinedCluster, error)
	RemoveCluster(ctx context.Context, cluster string) (api.DefinedCluster, error)
	// AddInstance adds an instance at run time; RemoveInstance takes one
	// out. Both return the cluster.
	AddInstance(ctx context.Context, cluster string, req api.AddInstanceRequest) (api.Cluster, error)
	RemoveInstance(ctx context.Context, cluster, instance string) (api.Cluster, error)
	// EditSettings changes a cluster's run-time settings and returns them.
	EditSettings(ctx context.Context, cluster string, req api.EditSettingsRequest) (api.ClusterSettings, error)
	// Repoint relocates a replica under another replica, or back under the
	// primary, and returns the ended operation.
	Repoint(ctx context.Context, cluster, instance string, req api.RepointRequest) (api.Operation, error)
	// StartMaintenance puts an instance in maintenance (ErrNotFound for an
	// unknown instance, ErrConflict for the primary) and returns the
	// cluster's new state.
	StartMaintenance(ctx context.Context, cluster, instance string, req api.MaintenanceRequest) (api.Cluster, error)
	// EndMaintenance ends it (ErrNotFound when none) and returns the
	// cluster's new state.
	EndMaintenance(ctx context.Context, cluster, instance string) (api.Cluster, error)
}

// Membership reads and changes the Raft configuration. AddMember and
// RemoveMember are called only on the leader.
type Membership interface {
	Members(ctx context.Context) (api.Members, error)
	AddMember(ctx context.Context, req api.AddMemberRequest) (api.Members, error)
	RemoveMember(ctx context.Context, id string) (api.Members, error)
}

// Leadership is this agent's view of who leads the regent cluster.
type Leadership struct {
	// IsLeader is true on the Raft leader.
	IsLeader bool
	// LeaderID and LeaderAPIAddr (host:port) name the leader; empty when
	// there is none.
	LeaderID, LeaderAPIAddr string
}

// Errors a Backend wraps (fmt.Errorf("...: %w", ErrNotFound)) to choose the
// answer's status. Any other error is a 500.
var (
	// ErrInvalid: the request names something that cannot be (400).
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound: no such cluster, instance, operation or member (404).
	ErrNotFound = errors.New("not found")
	// ErrConflict: another operation runs or the state moved on (409).
	ErrConflict = errors.New("conflict")
	// ErrRefused: well formed but unsafe or impossible now (422).
	ErrRefused = errors.New("refused")
	// ErrNotLeader: leadership was lost while serving the call (503).
	ErrNotLeader = errors.New("not the leader")
	// ErrNoLeader: there is no leader now (503).
	ErrNoLeader = errors.New("no leader")
	// ErrUnavailable: the agent cannot answer now (503).
	ErrUnavailable = errors.New("unavailable")
)
