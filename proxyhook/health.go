package proxyhook

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// LocalState is what an agent knows about its local instance, as the health
// decisions need it. The agent fills it from its last probe and from Raft;
// the decisions below do no I/O.
type LocalState struct {
	Cluster  string `json:"cluster,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Epoch is the cluster's current epoch as the agent last read it from Raft.
	Epoch uint64 `json:"epoch"`

	// Reachable: the agent's last probe of the local mysqld succeeded and is
	// recent. The agent sets it false when its probe is older than it trusts.
	Reachable bool `json:"reachable"`
	// IsPrimary: Raft names this instance the primary of the current epoch.
	IsPrimary bool `json:"is_primary"`
	// Writable: read_only (and super_read_only) are OFF.
	Writable bool `json:"writable"`
	// LeaseHeld: the agent holds its lease (heard from the Raft quorum within
	// lease_timeout) and so may let its instance be writable.
	LeaseHeld bool `json:"lease_held"`
	// Replacing names the operation (switchover or failover) that is
	// replacing this primary, from the moment its intent is recorded: the
	// instance leaves write routing before it is fenced. "" when none.
	Replacing string `json:"replacing,omitempty"`

	// Replication, when the instance replicates from a source.
	Replicating      bool `json:"replicating"` // replication is configured
	IOThreadRunning  bool `json:"io_thread_running"`
	SQLThreadRunning bool `json:"sql_thread_running"`
	// Lag is Seconds_Behind_Master (or a heartbeat measure); LagKnown false
	// when the server reports NULL.
	Lag      time.Duration `json:"lag"`
	LagKnown bool          `json:"lag_known"`
	// Maintenance says, while the instance is in maintenance (who, why,
	// until when), that it serves no reads: /replica and /read-only 503.
	Maintenance string `json:"maintenance,omitempty"`
}

// Check names a health endpoint.
type Check string

// The health endpoints, by the path they are served at.
const (
	CheckPrimary  Check = "primary"   // GET /primary: the current writer
	CheckReplica  Check = "replica"   // GET /replica[?max_lag=]: a healthy replica
	CheckReadOnly Check = "read-only" // GET /read-only[?max_lag=]: anything that may serve reads
	CheckHealth   Check = "health"    // GET /health: mysqld answers
)

// HealthPaths returns the paths NewHealthHandler serves, for mounting each
// on a mux: for _, p := range HealthPaths() { mux.Handle("GET "+p, h) }.
func HealthPaths() []string { return []string{"/primary", "/replica", "/read-only", "/health"} }

// HealthQuery holds the parsed query parameters of a health request.
type HealthQuery struct {
	// MaxLag bounds replication lag when HasMaxLag.
	MaxLag    time.Duration
	HasMaxLag bool
}

// ParseHealthQuery parses ?max_lag=: seconds as a non-negative number
// ("10", "0.5") or a Go duration ("500ms", "1m").
func ParseHealthQuery(q url.Values) (HealthQuery, error) {
	var hq HealthQuery
	vals, ok := q["max_lag"]
	if !ok {
		return hq, nil
	}
	if len(vals) != 1 {
		return hq, fmt.Errorf("max_lag given %d times; give it once", len(vals))
	}
	v := strings.TrimSpace(vals[0])
	if v == "" {
		return hq, fmt.Errorf("max_lag is empty; give seconds, e.g. max_lag=10 or max_lag=500ms")
	}
	d, err := parseLag(v)
	if err != nil {
		return hq, err
	}
	hq.MaxLag, hq.HasMaxLag = d, true
	return hq, nil
}

func parseLag(v string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e9 {
			return 0, fmt.Errorf("max_lag=%s: want seconds between 0 and 1e9", v)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("max_lag=%s is neither seconds (e.g. 10 or 0.5) nor a duration (e.g. 500ms)", v)
	}
	if d < 0 {
		return 0, fmt.Errorf("max_lag=%s must not be negative", v)
	}
	return d, nil
}

// Decision is the answer to one health request.
type Decision struct {
	Status int    `json:"status"`
	Check  Check  `json:"check"`
	OK     bool   `json:"ok"`
	Reason string `json:"reason"`
	Role   string `json:"role"`

	Cluster  string `json:"cluster,omitempty"`
	Instance string `json:"instance,omitempty"`
	Epoch    uint64 `json:"epoch"`
	// LagSeconds is set when the lag is known and matters to the check.
	LagSeconds *float64 `json:"lag_seconds,omitempty"`
}

// Role derives a short role name for the body of every answer.
func (s LocalState) Role() string {
	switch {
	case !s.Reachable:
		return "unreachable"
	case s.IsPrimary && s.Replacing != "":
		return "primary-being-replaced"
	case s.IsPrimary && s.Writable && s.LeaseHeld:
		return "primary"
	case s.IsPrimary:
		return "primary-not-writable"
	case s.Replicating:
		return "replica"
	case s.Writable:
		return "writable-not-primary"
	default:
		return "standalone-read-only"
	}
}

// Decide answers one health check from the local state. It is a pure
// function: the same state and query always give the same answer.
//
//   - primary: 200 only when reachable, Raft's current primary, writable and
//     the lease is held. Anything less is 503: HAProxy must not send writes.
//   - replica: 200 when reachable, not the current primary, not in
//     maintenance, replicating with both threads running, and (with max_lag)
//     lag known and within bound.
//   - read-only: 200 for a healthy primary or a healthy replica (max_lag
//     applies to replicas): anything that may serve consistent-enough reads.
//   - health: 200 when the local mysqld answers, whatever its role.
func Decide(check Check, s LocalState, q HealthQuery) Decision {
	d := Decision{Check: check, Role: s.Role(), Cluster: s.Cluster, Instance: s.Instance, Epoch: s.Epoch}
	ok, reason := false, ""
	switch check {
	case CheckPrimary:
		ok, reason = primaryOK(s)
	case CheckReplica:
		ok, reason = replicaOK(s, q, &d)
	case CheckReadOnly:
		if pok, _ := primaryOK(s); pok {
			ok, reason = true, "primary of the current epoch"
		} else {
			ok, reason = replicaOK(s, q, &d)
		}
	case CheckHealth:
		ok, reason = s.Reachable, "mysqld answers"
		if !ok {
			reason = "local mysqld does not answer the agent's probe"
		}
	default:
		return Decision{Status: http.StatusNotFound, Check: check, Reason: fmt.Sprintf("unknown check %q; known: primary, replica, read-only, health", check), Role: d.Role}
	}
	d.OK, d.Reason = ok, reason
	d.Status = http.StatusOK
	if !ok {
		d.Status = http.StatusServiceUnavailable
	}
	return d
}

func primaryOK(s LocalState) (bool, string) {
	switch {
	case !s.Reachable:
		return false, "local mysqld does not answer the agent's probe"
	case !s.IsPrimary:
		return false, fmt.Sprintf("not the primary of epoch %d", s.Epoch)
	case s.Replacing != "":
		return false, fmt.Sprintf("primary of epoch %d being replaced (%s)", s.Epoch, s.Replacing)
	case !s.LeaseHeld:
		return false, "agent does not hold its lease (lost the Raft quorum); instance is being fenced"
	case !s.Writable:
		return false, "instance is read-only"
	}
	return true, fmt.Sprintf("primary of epoch %d, writable, lease held", s.Epoch)
}

func replicaOK(s LocalState, q HealthQuery, d *Decision) (bool, string) {
	if s.LagKnown && s.Replicating {
		secs := s.Lag.Seconds()
		d.LagSeconds = &secs
	}
	switch {
	case !s.Reachable:
		return false, "local mysqld does not answer the agent's probe"
	case s.IsPrimary:
		return false, fmt.Sprintf("primary of epoch %d, not a replica", s.Epoch)
	case s.Maintenance != "":
		return false, "in maintenance: " + s.Maintenance
	case !s.Replicating:
		return false, "replication is not configured"
	case !s.IOThreadRunning && !s.SQLThreadRunning:
		return false, "replication IO and SQL threads are stopped"
	case !s.IOThreadRunning:
		return false, "replication IO thread is not running"
	case !s.SQLThreadRunning:
		return false, "replication SQL thread is not running"
	case q.HasMaxLag && !s.LagKnown:
		return false, "replication lag is unknown"
	case q.HasMaxLag && s.Lag > q.MaxLag:
		return false, fmt.Sprintf("replication lag %s is above max_lag %s", s.Lag, q.MaxLag)
	}
	return true, "replicating"
}

// StateFunc returns the agent's current view of its local instance. It is
// called on every health request and must be cheap: return the last probe's
// result, do not probe.
type StateFunc func(ctx context.Context) (LocalState, error)

// NewHealthHandler serves /primary, /replica, /read-only and /health (see
// Decide) from state. GET and HEAD only. The body is one JSON object; HAProxy
// only looks at the status. A nil logger discards logs.
func NewHealthHandler(state StateFunc, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &healthHandler{state: state, logger: logger}
}

type healthHandler struct {
	state  StateFunc
	logger *slog.Logger
}

func (h *healthHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	check := Check(strings.TrimPrefix(r.URL.Path, "/"))
	switch check {
	case CheckPrimary, CheckReplica, CheckReadOnly, CheckHealth:
	default:
		writeDecision(w, r, Decision{Status: http.StatusNotFound, Check: check,
			Reason: "unknown health endpoint; use /primary, /replica, /read-only or /health"})
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeDecision(w, r, Decision{Status: http.StatusMethodNotAllowed, Check: check, Reason: "use GET or HEAD"})
		return
	}
	q, err := ParseHealthQuery(r.URL.Query())
	if err != nil {
		writeDecision(w, r, Decision{Status: http.StatusBadRequest, Check: check, Reason: err.Error()})
		return
	}
	s, err := h.state(r.Context())
	if err != nil {
		h.logger.Warn("health check could not read the local state", logKeyErr, err)
		writeDecision(w, r, Decision{Status: http.StatusServiceUnavailable, Check: check, Role: "unknown",
			Reason: "agent cannot tell the local state: " + err.Error()})
		return
	}
	writeDecision(w, r, Decide(check, s, q))
}

func writeDecision(w http.ResponseWriter, r *http.Request, d Decision) {
	body, _ := json.Marshal(d) // plain fields: cannot fail
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(d.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(append(body, '\n'))
	}
}
