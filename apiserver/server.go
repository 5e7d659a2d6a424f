package apiserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/regentdb/regent/api"
)

// Defaults of Config.
const (
	DefaultMaxBodyBytes    = 64 << 10
	DefaultHistoryLimit    = 20
	MaxHistoryLimit        = 1000
	DefaultFollowPoll      = 100 * time.Millisecond
	DefaultFollowKeepAlive = 10 * time.Second
	DefaultFollowMax       = 15 * time.Minute
	DefaultMaxHops         = 2
	DefaultPageHistory     = 10
	// DefaultClusterPage and MaxClusterPage bound a page of GET
	// /v1/clusters.
	DefaultClusterPage = 100
	MaxClusterPage     = 1000
)

// Config configures a Server.
type Config struct {
	// AgentID is this agent's node id: it is sent in X-Regent-Agent on
	// every answer and stops forwarding loops.
	AgentID string
	// Version is the agent's build version, shown on the status page.
	Version string
	// Backend serves the API. Required.
	Backend Backend
	// Health answers the health endpoints (proxyhook's handler); nil
	// leaves them unserved.
	Health http.Handler
	// HealthPaths are where Health is mounted; nil means /primary,
	// /replica, /read-only and /health.
	HealthPaths []string
	// Ready says whether the agent can serve its state as current (GET
	// /readiness answers 200 when it returns nil, 503 with its error
	// otherwise); nil leaves /liveness and /readiness unserved. /liveness
	// answers 200 while the process serves HTTP at all, whatever the local
	// mysqld does: /health, 503 while mysqld is down, cannot be a liveness
	// probe (the agent must outlive its mysqld).
	Ready func(ctx context.Context) error
	// Metrics is served at /metrics and counts API requests; nil leaves
	// /metrics unserved.
	Metrics *Metrics
	// Auth says who may call what.
	Auth AuthConfig
	// Forward is how a follower reaches the leader.
	Forward ForwardConfig
	// Logger receives one line per request; nil discards.
	Logger *slog.Logger
	// MaxBodyBytes bounds a request body; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// FollowPoll is how often a follow stream polls the operation; 0 means
	// DefaultFollowPoll.
	FollowPoll time.Duration
	// FollowKeepAlive is the longest a follow stream stays silent; 0 means
	// DefaultFollowKeepAlive.
	FollowKeepAlive time.Duration
	// FollowMax ends a follow stream after this long (the client follows
	// again); 0 means DefaultFollowMax.
	FollowMax time.Duration
	// PageHistory is how many recent operations per cluster the status
	// page shows; 0 means DefaultPageHistory.
	PageHistory int
	// PageRefresh is the status page's refresh period; 0 means 5s.
	PageRefresh time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// ForwardConfig says how a follower forwards a call to the leader.
type ForwardConfig struct {
	// Transport carries forwarded calls; it needs the TLS client
	// configuration that trusts the other agents' API certificates (see
	// NewForwardTransport). Nil means http.DefaultTransport.
	Transport http.RoundTripper
	// Scheme is https or http: how the leader's API address is called.
	// Empty means https.
	Scheme string
	// MaxHops bounds how many agents a call may pass through before it is
	// refused as a loop; 0 means DefaultMaxHops.
	MaxHops int
}

func (c *Config) setDefaults() {
	if c.HealthPaths == nil {
		c.HealthPaths = []string{"/primary", "/replica", "/read-only", "/health"}
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.FollowPoll <= 0 {
		c.FollowPoll = DefaultFollowPoll
	}
	if c.FollowKeepAlive <= 0 {
		c.FollowKeepAlive = DefaultFollowKeepAlive
	}
	if c.FollowMax <= 0 {
		c.FollowMax = DefaultFollowMax
	}
	if c.PageHistory <= 0 {
		c.PageHistory = DefaultPageHistory
	}
	if c.PageRefresh <= 0 {
		c.PageRefresh = 5 * time.Second
	}
	if c.Forward.Scheme == "" {
		c.Forward.Scheme = "https"
	}
	if c.Forward.MaxHops <= 0 {
		c.Forward.MaxHops = DefaultMaxHops
	}
	if c.Forward.Transport == nil {
		c.Forward.Transport = http.DefaultTransport
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate checks the configuration (after defaults).
func (c *Config) Validate() error {
	if c.Backend == nil {
		return errors.New("apiserver: no Backend")
	}
	if c.AgentID == "" {
		return errors.New("apiserver: AgentID is empty")
	}
	if c.Forward.Scheme != "https" && c.Forward.Scheme != "http" {
		return fmt.Errorf("apiserver: Forward.Scheme %q: want https or http", c.Forward.Scheme)
	}
	for _, p := range c.HealthPaths {
		if len(p) < 2 || p[0] != '/' || p == "/metrics" || len(p) >= 4 && p[:4] == "/v1/" {
			return fmt.Errorf("apiserver: health path %q: want a path such as /primary, outside /v1/ and /metrics", p)
		}
	}
	return c.Auth.validate()
}

// Server serves Regent's HTTP API. Build it with New, serve Handler().
type Server struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	tokens  atomic.Pointer[Tokens]
	handler http.Handler
	page    *statusPage
	fwd     http.Handler
}

// New checks cfg and builds a Server.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, now: cfg.Now}
	s.tokens.Store(cfg.Auth.Tokens)
	page, err := newStatusPage()
	if err != nil {
		return nil, err
	}
	s.page = page
	s.fwd = s.newForwarder()
	s.handler = s.logRequests(s.routes())
	return s, nil
}

// Handler returns the server's root handler.
func (s *Server) Handler() http.Handler { return s.handler }

// SetTokens replaces the accepted tokens (after the tokens file changed);
// nil accepts none.
func (s *Server) SetTokens(t *Tokens) { s.tokens.Store(t) }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	read := func(h http.HandlerFunc) http.Handler { return s.require(RoleReadOnly, h) }
	admin := func(h http.HandlerFunc) http.Handler { return s.require(RoleAdmin, s.onLeader(h)) }
	// handle registers a route and, for its path, a JSON 405 for the
	// other methods (the mux's own 405 is plain text).
	allowed := map[string][]string{}
	var paths []string
	handle := func(method, path string, h http.Handler) {
		mux.Handle(method+" "+path, h)
		if _, ok := allowed[path]; !ok {
			paths = append(paths, path)
		}
		allowed[path] = append(allowed[path], method)
	}

	if s.cfg.Health != nil {
		h := s.open(s.cfg.Health)
		if s.cfg.Auth.ProtectHealth {
			h = s.require(RoleReadOnly, s.cfg.Health)
		}
		for _, p := range s.cfg.HealthPaths {
			handle(http.MethodGet, p, h)
		}
	}
	if s.cfg.Ready != nil {
		probe := func(h http.HandlerFunc) http.Handler {
			if s.cfg.Auth.ProtectHealth {
				return s.require(RoleReadOnly, h)
			}
			return s.open(h)
		}
		handle(http.MethodGet, "/liveness", probe(s.handleLiveness))
		handle(http.MethodGet, "/readiness", probe(s.handleReadiness))
	}
	if s.cfg.Metrics != nil {
		h := s.open(s.cfg.Metrics.Handler())
		if s.cfg.Auth.ProtectMetrics {
			h = s.require(RoleReadOnly, s.cfg.Metrics.Handler())
		}
		handle(http.MethodGet, "/metrics", h)
	}
	page := http.Handler(http.HandlerFunc(s.handlePage))
	if s.cfg.Auth.OpenStatusPage {
		page = s.open(page)
	} else {
		page = s.require(RoleReadOnly, page)
	}
	handle(http.MethodGet, "/{$}", page)

	handle(http.MethodGet, "/v1/status", read(s.handleStatus))
	handle(http.MethodGet, "/v1/clusters", read(s.handleClusters))
	handle(http.MethodGet, "/v1/clusters/{name}", read(s.handleCluster))
	handle(http.MethodGet, "/v1/clusters/{name}/history", read(s.handleHistory))
	handle(http.MethodGet, "/v1/clusters/{name}/check", read(s.handleCheck))
	// In-progress steps live in the leader's runner: ask the leader.
	handle(http.MethodGet, "/v1/clusters/{name}/operations/{id}", s.require(RoleReadOnly, s.onLeader(http.HandlerFunc(s.handleOperation))))
	handle(http.MethodPost, "/v1/clusters/{name}/switchover", admin(s.handleSwitchover))
	handle(http.MethodPost, "/v1/clusters/{name}/failover", admin(s.handleFailover))
	handle(http.MethodPost, "/v1/clusters/{name}/rejoin", admin(s.handleRejoin))
	handle(http.MethodPost, "/v1/clusters/{name}/pause", admin(s.handlePause))
	handle(http.MethodPost, "/v1/clusters/{name}/resume", admin(s.handleResume))
	handle(http.MethodPost, "/v1/clusters/{name}/operations/{id}/ack", admin(s.handleAck))
	handle(http.MethodPost, "/v1/clusters/{name}/instances/{instance}/maintenance", admin(s.handleStartMaintenance))
	handle(http.MethodDelete, "/v1/clusters/{name}/instances/{instance}/maintenance", admin(s.handleEndMaintenance))
	handle(http.MethodPost, "/v1/clusters/{name}/instances/{instance}/repoint", admin(s.handleRepoint))
	// The settings carry the version an edit is made against: read on the
	// leader, which has applied every edit it accepted, so that an edit
	// right after another does not meet a follower's older version (409).
	handle(http.MethodGet, "/v1/clusters/{name}/config", s.require(RoleReadOnly, s.onLeader(http.HandlerFunc(s.handleSettings))))
	handle(http.MethodPost, "/v1/clusters", admin(s.handleDefineCluster))
	handle(http.MethodDelete, "/v1/clusters/{name}", admin(s.handleRemoveCluster))
	handle(http.MethodPost, "/v1/clusters/{name}/instances", admin(s.handleAddInstance))
	handle(http.MethodDelete, "/v1/clusters/{name}/instances/{instance}", admin(s.handleRemoveInstance))
	handle(http.MethodPut, "/v1/clusters/{name}/config", admin(s.handleEditSettings))
	// Discovery makes this agent connect to an address the caller names,
	// with Regent's account: admin only, answered by the agent asked.
	handle(http.MethodGet, "/v1/discover", s.require(RoleAdmin, http.HandlerFunc(s.handleDiscover)))
	handle(http.MethodGet, "/v1/members", read(s.handleMembers))
	handle(http.MethodPost, "/v1/members", admin(s.handleAddMember))
	handle(http.MethodDelete, "/v1/members/{id}", admin(s.handleRemoveMember))

	for _, p := range paths {
		allow := allowed[p]
		header := ""
		for i, m := range allow {
			if i > 0 {
				header += ", "
			}
			header += m
			if m == http.MethodGet {
				header += ", HEAD"
			}
		}
		mux.Handle(p, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", header)
			writeError(w, http.StatusMethodNotAllowed, api.CodeMethodNotAllowed,
				fmt.Sprintf("%s is not allowed on %s: use %s", r.Method, r.URL.Path, header))
		}))
	}
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, api.CodeNotFound,
			fmt.Sprintf("no such route %s; the API is under /v1/ (see the README's API section)", truncateName(r.URL.Path)))
	}))
	return mux
}

// handleLiveness answers while the process serves: nothing else is asked.
func (s *Server) handleLiveness(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, api.Probe{OK: true, Agent: s.cfg.AgentID})
}

// handleReadiness answers 200 when the agent can serve its state as
// current, 503 with the reason otherwise.
func (s *Server) handleReadiness(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Ready(r.Context()); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, api.Probe{OK: false, Agent: s.cfg.AgentID, Reason: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, api.Probe{OK: true, Agent: s.cfg.AgentID})
}

// operationPath reads the cluster name and the operation id of an
// operation's route, and notes the id for the request log.
func operationPath(w http.ResponseWriter, r *http.Request) (name, id string, ok bool) {
	if name, ok = pathName(w, r, "name", "cluster name"); !ok {
		return "", "", false
	}
	if id, ok = pathName(w, r, "id", "operation id"); !ok {
		return "", "", false
	}
	noteOperation(r, id)
	return name, id, true
}

// instancePath reads the cluster name and the instance name of an
// instance's route.
func instancePath(w http.ResponseWriter, r *http.Request) (name, inst string, ok bool) {
	if name, ok = pathName(w, r, "name", "cluster name"); !ok {
		return "", "", false
	}
	if inst, ok = pathName(w, r, "instance", "instance name"); !ok {
		return "", "", false
	}
	return name, inst, true
}

// pathName reads and checks a path parameter.
func pathName(w http.ResponseWriter, r *http.Request, key, what string) (string, bool) {
	v := r.PathValue(key)
	if err := api.CheckName(what, v); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
		return "", false
	}
	return v, true
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.cfg.Backend.Status(r.Context())
	if s.cfg.Version != "" {
		// The build is the binary's, which the server was given: regentctl
		// version shows it (found by the end-to-end test: it was empty).
		st.Version = s.cfg.Version
	}
	writeResult(w, http.StatusOK, st, err)
}

func (s *Server) handleCluster(w http.ResponseWriter, r *http.Request) {
	name, ok := pathName(w, r, "name", "cluster name")
	if !ok {
		return
	}
	c, err := s.cfg.Backend.Cluster(r.Context(), name)
	writeResult(w, http.StatusOK, c, err)
}

// queryLimit reads ?limit, from 1 to most, def when absent; false after
// answering 400.
func queryLimit(w http.ResponseWriter, r *http.Request, def, most int) (int, bool) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > most {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Sprintf("limit must be a whole number from 1 to %d", most))
		return 0, false
	}
	return n, true
}

// handleHistory answers a page of a cluster's history, newest first:
// ?limit operations, from the one after ?before (a page's next).
func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	name, ok := pathName(w, r, "name", "cluster name")
	if !ok {
		return
	}
	limit, ok := queryLimit(w, r, DefaultHistoryLimit, MaxHistoryLimit)
	if !ok {
		return
	}
	// The backend keeps a bounded history (200 entries a cluster): read it
	// whole and cut the page here.
	ops, err := s.cfg.Backend.History(r.Context(), name, MaxHistoryLimit)
	if err != nil {
		writeAPIError(w, backendError(err))
		return
	}
	if before := r.URL.Query().Get("before"); before != "" {
		i := slices.IndexFunc(ops, func(o api.Operation) bool { return o.ID == before })
		if i < 0 {
			writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("no operation %q in the history of cluster %q (it may have aged out of the newest %d): start again without before", before, name, len(ops)))
			return
		}
		ops = ops[i+1:]
	}
	out := api.History{Cluster: name, Operations: []api.Operation{}}
	if len(ops) > limit {
		ops = ops[:limit]
		out.Next = ops[limit-1].ID
	}
	out.Operations = append(out.Operations, ops...)
	writeJSON(w, http.StatusOK, out)
}

// handleClusters answers a page of the replication clusters in name order,
// each described as GET /v1/clusters/{name} does: ?limit clusters after
// ?after (a page's next), only those that need attention with
// ?problems_only=true. A fleet's status takes a few requests, not one per
// cluster.
func (s *Server) handleClusters(w http.ResponseWriter, r *http.Request) {
	limit, ok := queryLimit(w, r, DefaultClusterPage, MaxClusterPage)
	if !ok {
		return
	}
	q := r.URL.Query()
	problemsOnly := false
	if v := q.Get("problems_only"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, fmt.Sprintf("problems_only must be true or false, not %q", v))
			return
		}
		problemsOnly = b
	}
	after := q.Get("after")
	if after != "" {
		if err := api.CheckName("after", after); err != nil {
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
			return
		}
	}
	names, err := s.cfg.Backend.ClusterNames(r.Context())
	if err != nil {
		writeAPIError(w, backendError(err))
		return
	}
	names = slices.Sorted(slices.Values(names)) // whatever the backend's order
	out := api.ClusterList{Clusters: []api.Cluster{}, Total: len(names)}
	start, _ := slices.BinarySearch(names, after)
	if after != "" && start < len(names) && names[start] == after {
		start++
	}
	for i := start; i < len(names); i++ {
		if len(out.Clusters) == limit {
			out.Next = names[i-1] // the last one looked at
			break
		}
		c, err := s.cfg.Backend.Cluster(r.Context(), names[i])
		if errors.Is(err, ErrNotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			writeAPIError(w, backendError(err))
			return
		}
		out.Scanned++
		if !problemsOnly || c.NeedsAttention() {
			out.Clusters = append(out.Clusters, c)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleCheck(w http.ResponseWriter, r *http.Request) {
	name, ok := pathName(w, r, "name", "cluster name")
	if !ok {
		return
	}
	rep, err := s.cfg.Backend.Check(r.Context(), name)
	writeResult(w, http.StatusOK, rep, err)
}

func (s *Server) handleOperation(w http.ResponseWriter, r *http.Request) {
	name, id, ok := operationPath(w, r)
	if !ok {
		return
	}
	follow := false
	if v := r.URL.Query().Get("follow"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, api.CodeBadRequest, "follow must be 1 or 0 (true or false)")
			return
		}
		follow = b
	}
	if follow {
		s.followOperation(w, r, name, id)
		return
	}
	op, err := s.cfg.Backend.Operation(r.Context(), name, id)
	writeResult(w, http.StatusOK, op, err)
}

// started answers a call that started an operation: 202, the operation,
// and where to follow it.
func (s *Server) started(w http.ResponseWriter, r *http.Request, cluster string, op api.Operation, err error) {
	if err != nil {
		writeAPIError(w, backendError(err))
		return
	}
	noteOperation(r, op.ID)
	w.Header().Set("Location", "/v1/clusters/"+url.PathEscape(cluster)+"/operations/"+url.PathEscape(op.ID))
	w.Header().Set("X-Regent-Operation", op.ID)
	writeJSON(w, http.StatusAccepted, op)
}

func (s *Server) handleSwitchover(w http.ResponseWriter, r *http.Request) {
	name, ok := pathName(w, r, "name", "cluster name")
	if !ok {
		return
	}
	req, aerr := decodeBody[api.SwitchoverRequest](w, r, s.cfg.MaxBodyBytes)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	op, err := s.cfg.Backend.Switchover(r.Context(), name, req)
	s.started(w, r, name, op, err)
}

func (s *Server) handleFailover(w http.ResponseWriter, r *http.Request) {
	name, ok := pathName(w, r, "name", "cluster name")
	if !ok {
		return
	}
	req, aerr := decodeBody[api.FailoverRequest](w, r, s.cfg.MaxBodyBytes)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	op, err := s.cfg.Backend.Failover(r.Context(), name, req)
	s.started(w, r, name, op, err)
}

func (s *Server) handleRejoin(w http.ResponseWriter, r *http.Request) {
	name, ok := pathName(w, r, "name", "cluster name")
	if !ok {
		return
	}
	req, aerr := decodeBody[api.RejoinRequest](w, r, s.cfg.MaxBodyBytes)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	op, err := s.cfg.Backend.Rejoin(r.Context(), name, req)
	s.started(w, r, name, op, err)
}

func (s *Server) handlePause(w http.ResponseWriter, r *http.Request) {
	name, ok := pathName(w, r, "name", "cluster name")
	if !ok {
		return
	}
	req, aerr := decodeBody[api.PauseRequest](w, r, s.cfg.MaxBodyBytes)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	c, err := s.cfg.Backend.Pause(r.Context(), name, req)
	writeResult(w, http.StatusOK, c, err)
}

// emptyRequest is the body of a call that takes no parameters: nothing, or
// {}.
type emptyRequest struct{}

func (emptyRequest) Validate() error { return nil }

func (s *Server) handleResume(w http.ResponseWriter, r *http.Request) {
	name, ok := pathName(w, r, "name", "cluster name")
	if !ok {
		return
	}
	if _, aerr := decodeBody[emptyRequest](w, r, s.cfg.MaxBodyBytes); aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	c, err := s.cfg.Backend.Resume(r.Context(), name)
	writeResult(w, http.StatusOK, c, err)
}

func (s *Server) handleAck(w http.ResponseWriter, r *http.Request) {
	name, id, ok := operationPath(w, r)
	if !ok {
		return
	}
	req, aerr := decodeBody[api.AckRequest](w, r, s.cfg.MaxBodyBytes)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	op, err := s.cfg.Backend.Ack(r.Context(), name, id, req)
	writeResult(w, http.StatusOK, op, err)
}

func (s *Server) handleStartMaintenance(w http.ResponseWriter, r *http.Request) {
	name, inst, ok := instancePath(w, r)
	if !ok {
		return
	}
	req, aerr := decodeBody[api.MaintenanceRequest](w, r, s.cfg.MaxBodyBytes)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	c, err := s.cfg.Backend.StartMaintenance(r.Context(), name, inst, req)
	writeResult(w, http.StatusOK, c, err)
}

func (s *Server) handleEndMaintenance(w http.ResponseWriter, r *http.Request) {
	name, inst, ok := instancePath(w, r)
	if !ok {
		return
	}
	c, err := s.cfg.Backend.EndMaintenance(r.Context(), name, inst)
	writeResult(w, http.StatusOK, c, err)
}

func (s *Server) handleAddInstance(w http.ResponseWriter, r *http.Request) {
	name, ok := pathName(w, r, "name", "cluster name")
	if !ok {
		return
	}
	req, aerr := decodeBody[api.AddInstanceRequest](w, r, s.cfg.MaxBodyBytes)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	c, err := s.cfg.Backend.AddInstance(r.Context(), name, req)
	writeResult(w, http.StatusOK, c, err)
}

func (s *Server) handleDefineCluster(w http.ResponseWriter, r *http.Request) {
	req, aerr := decodeBody[api.DefineClusterRequest](w, r, s.cfg.MaxBodyBytes)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	d, err := s.cfg.Backend.DefineCluster(r.Context(), req)
	writeResult(w, http.StatusCreated, d, err)
}

func (s *Server) handleRemoveCluster(w http.ResponseWriter, r *http.Request) {
	name, ok := pathName(w, r, "name", "cluster name")
	if !ok {
		return
	}
	d, err := s.cfg.Backend.RemoveCluster(r.Context(), name)
	writeResult(w, http.StatusOK, d, err)
}

func (s *Server) handleRemoveInstance(w http.ResponseWriter, r *http.Request) {
	name, inst, ok := instancePath(w, r)
	if !ok {
		return
	}
	c, err := s.cfg.Backend.RemoveInstance(r.Context(), name, inst)
	writeResult(w, http.StatusOK, c, err)
}

func (s *Server) handleSettings(w http.ResponseWriter, r *http.Request) {
	name, ok := pathName(w, r, "name", "cluster name")
	if !ok {
		return
	}
	st, err := s.cfg.Backend.Settings(r.Context(), name)
	writeResult(w, http.StatusOK, st, err)
}

func (s *Server) handleEditSettings(w http.ResponseWriter, r *http.Request) {
	name, ok := pathName(w, r, "name", "cluster name")
	if !ok {
		return
	}
	req, aerr := decodeBody[api.EditSettingsRequest](w, r, s.cfg.MaxBodyBytes)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	st, err := s.cfg.Backend.EditSettings(r.Context(), name, req)
	writeResult(w, http.StatusOK, st, err)
}

func (s *Server) handleRepoint(w http.ResponseWriter, r *http.Request) {
	name, inst, ok := instancePath(w, r)
	if !ok {
		return
	}
	req, aerr := decodeBody[api.RepointRequest](w, r, s.cfg.MaxBodyBytes)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	op, err := s.cfg.Backend.Repoint(r.Context(), name, inst, req)
	writeResult(w, http.StatusOK, op, err)
}

func (s *Server) handleDiscover(w http.ResponseWriter, r *http.Request) {
	addr := r.URL.Query().Get("address")
	if addr == "" {
		writeError(w, http.StatusBadRequest, api.CodeBadRequest, "give the instance to start from: /v1/discover?address=HOST:PORT (regentctl discover HOST:PORT)")
		return
	}
	d, err := s.cfg.Backend.Discover(r.Context(), addr)
	writeResult(w, http.StatusOK, d, err)
}

func (s *Server) handleMembers(w http.ResponseWriter, r *http.Request) {
	m, err := s.cfg.Backend.Members(r.Context())
	writeResult(w, http.StatusOK, m, err)
}

func (s *Server) handleAddMember(w http.ResponseWriter, r *http.Request) {
	req, aerr := decodeBody[api.AddMemberRequest](w, r, s.cfg.MaxBodyBytes)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	m, err := s.cfg.Backend.AddMember(r.Context(), req)
	writeResult(w, http.StatusOK, m, err)
}

func (s *Server) handleRemoveMember(w http.ResponseWriter, r *http.Request) {
	id, ok := pathName(w, r, "id", "member id")
	if !ok {
		return
	}
	m, err := s.cfg.Backend.RemoveMember(r.Context(), id)
	writeResult(w, http.StatusOK, m, err)
}
