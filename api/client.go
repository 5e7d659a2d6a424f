package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of ClientConfig.
const (
	DefaultTimeout = 10 * time.Second
	// maxAnswer bounds an answer the client reads into memory.
	maxAnswer = 16 << 20
	// followIdle is how long a follow stream may stay silent before the
	// client assumes the agent is gone and follows elsewhere. The server
	// sends a keep-alive line well within it.
	followIdle = 30 * time.Second
	// followGiveUp is how long FollowOperation keeps trying when no agent
	// answers at all.
	followGiveUp = time.Minute
)

// ErrUnreachable is in the chain of the error returned when no endpoint
// could be reached at all.
var ErrUnreachable = errors.New("cannot reach any agent")

// UnreachableError lists why each endpoint failed.
type UnreachableError struct {
	// Attempts maps each endpoint tried to its transport error, in order.
	Attempts []EndpointError
}

// EndpointError is a transport error from one endpoint.
type EndpointError struct {
	Endpoint string
	Err      error
}

func (e *UnreachableError) Error() string {
	var b strings.Builder
	b.WriteString(ErrUnreachable.Error())
	for i, a := range e.Attempts {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %v", a.Endpoint, a.Err)
	}
	return b.String()
}

// Unwrap lets errors.Is(err, ErrUnreachable) match.
func (e *UnreachableError) Unwrap() error { return ErrUnreachable }

// ClientConfig configures a Client.
type ClientConfig struct {
	// Endpoints are agents' API addresses, tried in order: a URL
	// ("https://db1:7443") or host:port, which means https.
	Endpoints []string
	// Token is the bearer token; empty sends none (client certificates may
	// authenticate instead).
	Token string
	// TLS is the TLS client configuration (see LoadClientTLS); nil uses the
	// system roots.
	TLS *tls.Config
	// Timeout bounds each request to one agent; 0 means DefaultTimeout. It
	// does not bound a follow stream, only the wait for its first byte.
	Timeout time.Duration
	// Transport replaces the HTTP transport (tests); when set, TLS is
	// ignored.
	Transport http.RoundTripper
	// UserAgent is sent as User-Agent.
	UserAgent string
}

// Client calls Regent's HTTP API. It moves to the next endpoint when one
// cannot be reached (connection refused, timeout, no Raft leader there) but
// never on an answer such as 4xx, and it remembers the endpoint that last
// answered. A request that changes something is sent again to another
// endpoint only when the first one certainly did not receive it.
type Client struct {
	endpoints []*url.URL
	token     string
	timeout   time.Duration
	hc        *http.Client
	userAgent string

	mu        sync.Mutex
	preferred int
}

// NewClient checks cfg and returns a Client.
func NewClient(cfg ClientConfig) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("no endpoint: give one or more agent addresses (--endpoint or REGENT_ENDPOINT)")
	}
	c := &Client{token: strings.TrimSpace(cfg.Token), timeout: cfg.Timeout, userAgent: cfg.UserAgent}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if strings.ContainsAny(c.token, "\r\n\t ") {
		return nil, errors.New("token contains white space: the token file must hold one token")
	}
	for _, e := range cfg.Endpoints {
		u, err := ParseEndpoint(e)
		if err != nil {
			return nil, err
		}
		c.endpoints = append(c.endpoints, u)
	}
	rt := cfg.Transport
	if rt == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil // agents are reached directly; a proxy variable must not divert admin calls
		if cfg.TLS != nil {
			t.TLSClientConfig = cfg.TLS.Clone()
		}
		t.DialContext = (&net.Dialer{Timeout: c.timeout, KeepAlive: 30 * time.Second}).DialContext
		t.TLSHandshakeTimeout = c.timeout
		rt = t
	}
	c.hc = &http.Client{
		Transport: rt,
		// The API never redirects; following one would drop the token on a
		// host change or replay a POST somewhere unexpected.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// ParseEndpoint parses "https://host:port", "http://host:port" or
// "host:port" (https).
func ParseEndpoint(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("empty endpoint in the list")
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("endpoint %q: scheme must be https or http", s)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("endpoint %q has no host", s)
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("endpoint %q: give only scheme://host:port", s)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// TLSFiles names the files of a TLS client configuration.
type TLSFiles struct {
	// CAFile is a PEM bundle of the CAs that sign the agents' certificates;
	// empty uses the system roots.
	CAFile string
	// CertFile and KeyFile are a client certificate and its key, for
	// agents that accept client certificates.
	CertFile, KeyFile string
	// InsecureSkipVerify skips verification of the agents' certificates.
	// For tests only: anyone on the path can read the token.
	InsecureSkipVerify bool
}

// LoadClientTLS builds a TLS client configuration from files.
func LoadClientTLS(f TLSFiles) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: f.InsecureSkipVerify} //nolint:gosec // the caller's explicit choice
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", f.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (f.CertFile == "") != (f.KeyFile == "") {
		return nil, errors.New("give both a client certificate file and its key file, or neither")
	}
	if f.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Status calls GET /v1/status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var out Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &out)
	return out, err
}

// Cluster calls GET /v1/clusters/{name}.
func (c *Client) Cluster(ctx context.Context, name string) (Cluster, error) {
	var out Cluster
	err := c.do(ctx, http.MethodGet, clusterPath(name, ""), nil, &out)
	return out, err
}

// History calls GET /v1/clusters/{name}/history; limit 0 takes the
// server's default.
func (c *Client) History(ctx context.Context, cluster string, limit int) (History, error) {
	return c.HistoryBefore(ctx, cluster, limit, "")
}

// HistoryBefore is History from the operation before the one with id
// before (a page's Next); "" starts with the newest.
func (c *Client) HistoryBefore(ctx context.Context, cluster string, limit int, before string) (History, error) {
	var out History
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if before != "" {
		q.Set("before", before)
	}
	err := c.do(ctx, http.MethodGet, withQuery(clusterPath(cluster, "/history"), q), nil, &out)
	return out, err
}

// withQuery appends q to path p when q has any value.
func withQuery(p string, q url.Values) string {
	if len(q) == 0 {
		return p
	}
	return p + "?" + q.Encode()
}

// ClusterListOptions select a page of GET /v1/clusters.
type ClusterListOptions struct {
	// Limit is the page's size (0: the server's default).
	Limit int
	// After is the previous page's Next ("" for the first page).
	After string
	// ProblemsOnly keeps the clusters that need attention
	// (Cluster.NeedsAttention).
	ProblemsOnly bool
}

// Clusters calls GET /v1/clusters: one page.
func (c *Client) Clusters(ctx context.Context, o ClusterListOptions) (ClusterList, error) {
	var out ClusterList
	q := url.Values{}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.After != "" {
		q.Set("after", o.After)
	}
	if o.ProblemsOnly {
		q.Set("problems_only", "true")
	}
	err := c.do(ctx, http.MethodGet, withQuery("/v1/clusters", q), nil, &out)
	return out, err
}

// Check calls GET /v1/clusters/{name}/check.
func (c *Client) Check(ctx context.Context, cluster string) (CheckReport, error) {
	var out CheckReport
	err := c.do(ctx, http.MethodGet, clusterPath(cluster, "/check"), nil, &out)
	return out, err
}

// Operation calls GET /v1/clusters/{name}/operations/{id}.
func (c *Client) Operation(ctx context.Context, cluster, id string) (Operation, error) {
	var out Operation
	err := c.do(ctx, http.MethodGet, operationPath(cluster, id), nil, &out)
	return out, err
}

// Switchover calls POST /v1/clusters/{name}/switchover. The answer is the
// operation as started; follow it with FollowOperation.
func (c *Client) Switchover(ctx context.Context, cluster string, req SwitchoverRequest) (Operation, error) {
	if err := req.Validate(); err != nil {
		return Operation{}, err
	}
	var out Operation
	err := c.do(ctx, http.MethodPost, clusterPath(cluster, "/switchover"), req, &out)
	return out, err
}

// Failover calls POST /v1/clusters/{name}/failover.
func (c *Client) Failover(ctx context.Context, cluster string, req FailoverRequest) (Operation, error) {
	if err := req.Validate(); err != nil {
		return Operation{}, err
	}
	var out Operation
	err := c.do(ctx, http.MethodPost, clusterPath(cluster, "/failover"), req, &out)
	return out, err
}

// Rejoin calls POST /v1/clusters/{name}/rejoin.
func (c *Client) Rejoin(ctx context.Context, cluster string, req RejoinRequest) (Operation, error) {
	if err := req.Validate(); err != nil {
		return Operation{}, err
	}
	var out Operation
	err := c.do(ctx, http.MethodPost, clusterPath(cluster, "/rejoin"), req, &out)
	return out, err
}

// AddInstance calls POST /v1/clusters/{name}/instances.
func (c *Client) AddInstance(ctx context.Context, cluster string, req AddInstanceRequest) (Cluster, error) {
	if err := req.Validate(); err != nil {
		return Cluster{}, err
	}
	var out Cluster
	err := c.do(ctx, http.MethodPost, clusterPath(cluster, "/instances"), req, &out)
	return out, err
}

// DefineCluster calls POST /v1/clusters.
func (c *Client) DefineCluster(ctx context.Context, req DefineClusterRequest) (DefinedCluster, error) {
	if err := req.Validate(); err != nil {
		return DefinedCluster{}, err
	}
	var out DefinedCluster
	err := c.do(ctx, http.MethodPost, "/v1/clusters", req, &out)
	return out, err
}

// RemoveCluster calls DELETE /v1/clusters/{name}.
func (c *Client) RemoveCluster(ctx context.Context, cluster string) (DefinedCluster, error) {
	if err := CheckName("cluster", cluster); err != nil {
		return DefinedCluster{}, err
	}
	var out DefinedCluster
	err := c.do(ctx, http.MethodDelete, clusterPath(cluster, ""), nil, &out)
	return out, err
}

// RemoveInstance calls DELETE /v1/clusters/{name}/instances/{instance}.
func (c *Client) RemoveInstance(ctx context.Context, cluster, instance string) (Cluster, error) {
	if err := CheckName("instance", instance); err != nil {
		return Cluster{}, err
	}
	var out Cluster
	err := c.do(ctx, http.MethodDelete, clusterPath(cluster, "/instances/"+url.PathEscape(instance)), nil, &out)
	return out, err
}

// Settings calls GET /v1/clusters/{name}/config.
func (c *Client) Settings(ctx context.Context, cluster string) (ClusterSettings, error) {
	var out ClusterSettings
	err := c.do(ctx, http.MethodGet, clusterPath(cluster, "/config"), nil, &out)
	return out, err
}

// EditSettings calls PUT /v1/clusters/{name}/config.
func (c *Client) EditSettings(ctx context.Context, cluster string, req EditSettingsRequest) (ClusterSettings, error) {
	if err := req.Validate(); err != nil {
		return ClusterSettings{}, err
	}
	var out ClusterSettings
	err := c.do(ctx, http.MethodPut, clusterPath(cluster, "/config"), req, &out)
	return out, err
}

// Repoint calls POST /v1/clusters/{name}/instances/{instance}/repoint: it
// relocates a replica and answers once the repoint has ended, with its
// outcome and steps (a repoint has no place in the history to follow).
func (c *Client) Repoint(ctx context.Context, cluster, instance string, req RepointRequest) (Operation, error) {
	if err := CheckName("instance", instance); err != nil {
		return Operation{}, err
	}
	if err := req.Validate(); err != nil {
		return Operation{}, err
	}
	var out Operation
	err := c.do(ctx, http.MethodPost, clusterPath(cluster, "/instances/"+url.PathEscape(instance)+"/repoint"), req, &out)
	return out, err
}

// Discover calls GET /v1/discover?address=ADDR on the first agent that
// answers (not forwarded: the agent asked connects).
func (c *Client) Discover(ctx context.Context, address string) (Discovery, error) {
	var out Discovery
	err := c.do(ctx, http.MethodGet, "/v1/discover?address="+url.QueryEscape(address), nil, &out)
	return out, err
}

// Ack calls POST /v1/clusters/{name}/operations/{id}/ack and returns the
// acknowledged operation.
func (c *Client) Ack(ctx context.Context, cluster, id string, req AckRequest) (Operation, error) {
	if err := req.Validate(); err != nil {
		return Operation{}, err
	}
	var out Operation
	err := c.do(ctx, http.MethodPost, operationPath(cluster, id)+"/ack", req, &out)
	return out, err
}

// StartMaintenance calls POST
// /v1/clusters/{name}/instances/{instance}/maintenance and returns the
// cluster's new state.
func (c *Client) StartMaintenance(ctx context.Context, cluster, instance string, req MaintenanceRequest) (Cluster, error) {
	if err := CheckName("instance", instance); err != nil {
		return Cluster{}, err
	}
	if err := req.Validate(); err != nil {
		return Cluster{}, err
	}
	var out Cluster
	err := c.do(ctx, http.MethodPost, maintenancePath(cluster, instance), req, &out)
	return out, err
}

// EndMaintenance calls DELETE
// /v1/clusters/{name}/instances/{instance}/maintenance and returns the
// cluster's new state.
func (c *Client) EndMaintenance(ctx context.Context, cluster, instance string) (Cluster, error) {
	if err := CheckName("instance", instance); err != nil {
		return Cluster{}, err
	}
	var out Cluster
	err := c.do(ctx, http.MethodDelete, maintenancePath(cluster, instance), nil, &out)
	return out, err
}

func maintenancePath(cluster, instance string) string {
	return clusterPath(cluster, "/instances/"+url.PathEscape(instance)+"/maintenance")
}

// Pause calls POST /v1/clusters/{name}/pause and returns the cluster's new
// state.
func (c *Client) Pause(ctx context.Context, cluster string, req PauseRequest) (Cluster, error) {
	if err := req.Validate(); err != nil {
		return Cluster{}, err
	}
	var out Cluster
	err := c.do(ctx, http.MethodPost, clusterPath(cluster, "/pause"), req, &out)
	return out, err
}

// Resume calls POST /v1/clusters/{name}/resume and returns the cluster's
// new state.
func (c *Client) Resume(ctx context.Context, cluster string) (Cluster, error) {
	var out Cluster
	err := c.do(ctx, http.MethodPost, clusterPath(cluster, "/resume"), struct{}{}, &out)
	return out, err
}

// Members calls GET /v1/members.
func (c *Client) Members(ctx context.Context) (Members, error) {
	var out Members
	err := c.do(ctx, http.MethodGet, "/v1/members", nil, &out)
	return out, err
}

// AddMember calls POST /v1/members.
func (c *Client) AddMember(ctx context.Context, req AddMemberRequest) (Members, error) {
	if err := req.Validate(); err != nil {
		return Members{}, err
	}
	var out Members
	err := c.do(ctx, http.MethodPost, "/v1/members", req, &out)
	return out, err
}

// RemoveMember calls DELETE /v1/members/{id}.
func (c *Client) RemoveMember(ctx context.Context, id string) (Members, error) {
	if err := CheckName("member id", id); err != nil {
		return Members{}, err
	}
	var out Members
	err := c.do(ctx, http.MethodDelete, "/v1/members/"+url.PathEscape(id), nil, &out)
	return out, err
}

// FollowOperation follows an operation until it ends, calling fn with every
// snapshot the server sends (the first one immediately), and returns the
// final one. When the stream breaks it follows again, on another agent if
// need be; snapshots are complete, so fn may see the same steps again and
// should compare by step index. It gives up when ctx ends, on an error
// answer (such as 404: the operation is unknown to the leader), or when no
// agent has answered for a minute.
func (c *Client) FollowOperation(ctx context.Context, cluster, id string, fn func(Operation)) (Operation, error) {
	path := operationPath(cluster, id) + "?follow=1"
	var last Operation
	lastOK := time.Now()
	backoff := 100 * time.Millisecond
	for {
		op, err := c.followOnce(ctx, path, fn)
		if err == nil && op.Done() {
			return op, nil
		}
		if op.ID != "" {
			last, lastOK = op, time.Now()
			backoff = 100 * time.Millisecond
		}
		if ctx.Err() != nil {
			return last, ctx.Err()
		}
		var apiErr *Error
		if errors.As(err, &apiErr) && !retryableAnswer(apiErr) {
			return last, err
		}
		if err != nil && time.Since(lastOK) > followGiveUp {
			return last, fmt.Errorf("following operation %s: %w", id, err)
		}
		// The agent that broke the stream may be going down: start with
		// the next one.
		c.rotate()
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// followOnce reads one follow stream until it ends; it returns the last
// snapshot read and why the stream ended (nil when the operation ended).
func (c *Client) followOnce(ctx context.Context, path string, fn func(Operation)) (Operation, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, ep, err := c.send(ctx, http.MethodGet, path, nil, true)
	if err != nil {
		return Operation{}, err
	}
	defer resp.Body.Close()
	// A watchdog cancels the stream when it stays silent too long: the
	// agent may be frozen rather than gone.
	idle := time.AfterFunc(followIdle, cancel)
	defer idle.Stop()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxAnswer)
	var last Operation
	for sc.Scan() {
		idle.Reset(followIdle)
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var op Operation
		if err := json.Unmarshal(line, &op); err != nil {
			return last, fmt.Errorf("bad line in the operation stream from %s: %w", ep, err)
		}
		last = op
		fn(op)
		if op.Done() {
			return op, nil
		}
	}
	if err := sc.Err(); err != nil {
		return last, fmt.Errorf("operation stream from %s: %w", ep, err)
	}
	return last, fmt.Errorf("operation stream from %s ended before the operation did", ep)
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
	}
	resp, ep, err := c.send(ctx, method, path, raw, false)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("read answer from %s: %w", ep, err)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode answer from %s: %w", ep, err)
	}
	return nil
}

// send tries the endpoints, starting with the one that last answered, and
// returns the first response with a 2xx status (or the error answer that
// ends the attempt). A not_leader answer is followed to the leader once.
func (c *Client) send(ctx context.Context, method, path string, body []byte, stream bool) (*http.Response, string, error) {
	c.mu.Lock()
	start := c.preferred
	c.mu.Unlock()
	idempotent := method == http.MethodGet || method == http.MethodHead
	var attempts []EndpointError
	var lastAnswer error
	for i := 0; i < len(c.endpoints); i++ {
		idx := (start + i) % len(c.endpoints)
		base := c.endpoints[idx]
		resp, err := c.roundTrip(ctx, base, method, path, body, stream)
		if err != nil {
			if ctx.Err() != nil {
				return nil, "", fmt.Errorf("%s %s: %w", method, path, ctx.Err())
			}
			attempts = append(attempts, EndpointError{Endpoint: base.String(), Err: err})
			if !idempotent && !notSent(err) {
				return nil, "", fmt.Errorf("%s %s on %s: %w (the agent may have received it: check with 'regentctl status' before retrying)", method, path, base, err)
			}
			continue
		}
		if resp.StatusCode < 300 {
			c.setPreferred(idx)
			return resp, base.String(), nil
		}
		apiErr := readError(resp, base.String())
		if apiErr.Code == CodeNotLeader && apiErr.LeaderAPIAddr != "" {
			// The agent would not forward (for example a caller
			// authenticated by client certificate): ask the leader.
			leader := &url.URL{Scheme: base.Scheme, Host: apiErr.LeaderAPIAddr}
			resp, err := c.roundTrip(ctx, leader, method, path, body, stream)
			if err == nil && resp.StatusCode < 300 {
				c.setPreferred(idx)
				return resp, leader.String(), nil
			}
			if err == nil {
				apiErr = readError(resp, leader.String())
			} else {
				attempts = append(attempts, EndpointError{Endpoint: leader.String(), Err: err})
			}
		}
		if !retryableAnswer(apiErr) {
			c.setPreferred(idx)
			return nil, "", apiErr
		}
		// This agent cannot serve the call now (no leader here, leader not
		// reachable from here): another agent may.
		lastAnswer = apiErr
	}
	if lastAnswer != nil {
		return nil, "", lastAnswer
	}
	return nil, "", &UnreachableError{Attempts: attempts}
}

func (c *Client) rotate() {
	c.mu.Lock()
	c.preferred = (c.preferred + 1) % len(c.endpoints)
	c.mu.Unlock()
}

func (c *Client) setPreferred(i int) {
	c.mu.Lock()
	c.preferred = i
	c.mu.Unlock()
}

// roundTrip sends one request to one agent, bounded by the client's
// timeout: up to the end of the answer for a plain call, up to the response
// headers for a stream. Closing the response's body releases the attempt.
func (c *Client) roundTrip(ctx context.Context, base *url.URL, method, path string, body []byte, stream bool) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	actx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(c.timeout, cancel)
	req, err := http.NewRequestWithContext(actx, method, base.String()+path, rd)
	if err != nil {
		timer.Stop()
		cancel()
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if stream {
		req.Header.Set("Accept", "application/x-ndjson")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		timer.Stop()
		cancel()
		return nil, err
	}
	if stream {
		timer.Stop()
	}
	resp.Body = &releasingBody{ReadCloser: resp.Body, release: func() { timer.Stop(); cancel() }}
	return resp, nil
}

// releasingBody ends its request's attempt context when closed.
type releasingBody struct {
	io.ReadCloser
	release func()
	once    sync.Once
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}

// retryableAnswer reports whether an error answer means "this agent cannot
// serve the call now" rather than "the call is wrong or was refused": only
// then is another agent tried. None of them means the call was acted on.
func retryableAnswer(e *Error) bool {
	switch e.Code {
	case CodeNoLeader, CodeNotLeader, CodeUnavailable, CodeLeaderUnreachable:
		return true
	}
	return false
}

// notSent reports whether a transport error happened before the request
// could reach the agent, so that sending it elsewhere cannot run it twice.
func notSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

func readError(resp *http.Response, endpoint string) *Error {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	e := &Error{}
	if err := json.Unmarshal(b, e); err != nil || e.Message == "" {
		msg := strings.TrimSpace(string(b))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		e = &Error{Message: "unexpected answer (is this a Regent agent?): " + msg, Code: CodeInternal}
	}
	e.Status = resp.StatusCode
	e.Endpoint = endpoint
	return e
}

func clusterPath(name, suffix string) string {
	return "/v1/clusters/" + url.PathEscape(name) + suffix
}

func operationPath(cluster, id string) string {
	return clusterPath(cluster, "/operations/"+url.PathEscape(id))
}
