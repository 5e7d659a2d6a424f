package apiserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/regentdb/regent/api"
	"github.com/regentdb/regent/identity"
)

// Headers of forwarded calls.
const (
	// HeaderForwardHops counts the agents a call has been forwarded by.
	HeaderForwardHops = "X-Regent-Forward-Hops"
	// HeaderForwardedBy lists their ids, comma-separated.
	HeaderForwardedBy = "X-Regent-Forwarded-By"
	// HeaderAgent names the agent that answered, on every answer.
	HeaderAgent = "X-Regent-Agent"
)

type leaderAddrKey struct{}

// NewForwardTransport returns a transport for calls from one agent to
// another: forwarding to the leader, and reports. tlsConfig must trust the
// other agents' API certificates and hold this agent's certificate, which
// it presents (nil for plain HTTP). Over TLS, a request whose context names
// an agent (identity.WithExpectedAgent) goes only to a server whose
// certificate names that agent (URI SAN urn:regent:agent:ID): a process on
// a down agent's address, holding any other certificate the CA signed,
// receives neither the token nor the call. Connections to different agents
// are never shared. Timeouts bound connecting, not the answer, which may be
// a long stream.
func NewForwardTransport(tlsConfig *tls.Config) http.RoundTripper {
	if tlsConfig == nil {
		return newAgentTransport(nil, "")
	}
	return &agentTransports{tls: tlsConfig.Clone(), byAgent: map[string]*http.Transport{}}
}

// agentTransports keeps one http.Transport per expected agent, so that a
// pooled connection checked for one agent never carries a request meant for
// another.
type agentTransports struct {
	tls     *tls.Config
	mu      sync.Mutex
	byAgent map[string]*http.Transport // "" for requests that expect no agent
}

func (a *agentTransports) RoundTrip(req *http.Request) (*http.Response, error) {
	want, _ := identity.ExpectedAgent(req.Context())
	a.mu.Lock()
	t, ok := a.byAgent[want]
	if !ok {
		t = newAgentTransport(a.tls, want)
		a.byAgent[want] = t
	}
	a.mu.Unlock()
	return t.RoundTrip(req)
}

func newAgentTransport(tlsConfig *tls.Config, want string) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil // agent to agent: never through an HTTP proxy from the environment
	t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 5 * time.Second
	t.ResponseHeaderTimeout = 30 * time.Second
	if tlsConfig != nil {
		t.TLSClientConfig = tlsConfig.Clone()
		if want != "" {
			t.TLSClientConfig.VerifyConnection = identity.RequireAgent(want)
		}
	}
	return t
}

// onLeader runs h on the leader; on a follower it forwards the call to the
// leader, or says where the leader is.
func (s *Server) onLeader(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l := s.cfg.Backend.Leadership()
		if l.IsLeader {
			h.ServeHTTP(w, r)
			return
		}
		if l.LeaderAPIAddr == "" {
			writeError(w, http.StatusServiceUnavailable, api.CodeNoLeader, fmt.Sprintf(
				"agent %s knows no Raft leader now (an election is running, or this agent cannot reach a quorum): retry in a few seconds or ask another agent",
				s.cfg.AgentID))
			return
		}
		hops := 0
		if v := r.Header.Get(HeaderForwardHops); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				writeError(w, http.StatusBadRequest, api.CodeBadRequest, HeaderForwardHops+" must be a whole number")
				return
			}
			hops = n
		}
		by := r.Header.Get(HeaderForwardedBy)
		if hops >= s.cfg.Forward.MaxHops || containsID(by, s.cfg.AgentID) {
			writeError(w, http.StatusLoopDetected, api.CodeForwardLoop, fmt.Sprintf(
				"the call went through agents %s and reached %s, which is not the leader either (it believes %s is): leadership is changing; retry in a few seconds",
				by, s.cfg.AgentID, l.LeaderID))
			return
		}
		if c, _ := CallerFrom(r.Context()); c.Method == "certificate" {
			// A client certificate cannot be passed on: send the caller to
			// the leader instead (api.Client follows this).
			writeAPIError(w, &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeNotLeader,
				LeaderID: l.LeaderID, LeaderAPIAddr: l.LeaderAPIAddr,
				Message: fmt.Sprintf("agent %s is not the leader: send this call to the leader %s at %s", s.cfg.AgentID, l.LeaderID, l.LeaderAPIAddr)})
			return
		}
		if isFollow(r) {
			// The leader's stream passes through: it must outlive this
			// agent's timeouts as it outlives the leader's.
			s.streamWriteDeadline(w)
		}
		noteForward(r, l.LeaderID)
		// The leader's answer names the leader.
		w.Header().Del(HeaderAgent)
		// The caller's token goes to the leader's certificate only.
		ctx := identity.WithExpectedAgent(context.WithValue(r.Context(), leaderAddrKey{}, l), l.LeaderID)
		s.fwd.ServeHTTP(w, r.WithContext(ctx))
	})
}

func containsID(list, id string) bool {
	for _, p := range strings.Split(list, ",") {
		if strings.TrimSpace(p) == id {
			return true
		}
	}
	return false
}

func (s *Server) newForwarder() http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			l, _ := pr.In.Context().Value(leaderAddrKey{}).(Leadership)
			pr.SetURL(&url.URL{Scheme: s.cfg.Forward.Scheme, Host: l.LeaderAPIAddr})
			pr.SetXForwarded()
			hops, _ := strconv.Atoi(pr.In.Header.Get(HeaderForwardHops))
			pr.Out.Header.Set(HeaderForwardHops, strconv.Itoa(hops+1))
			by := pr.In.Header.Get(HeaderForwardedBy)
			if by != "" {
				by += ","
			}
			pr.Out.Header.Set(HeaderForwardedBy, by+s.cfg.AgentID)
			// The caller's Authorization header passes unchanged: the
			// leader authenticates the call again.
		},
		Transport: s.cfg.Forward.Transport,
		// Follow streams must reach the caller line by line.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			l, _ := r.Context().Value(leaderAddrKey{}).(Leadership)
			w.Header().Set(HeaderAgent, s.cfg.AgentID)
			if r.Context().Err() != nil {
				return // the caller left
			}
			s.log.Warn("cannot forward an API call to the leader", logKeyPath, r.URL.Path,
				"leader", l.LeaderID, "leader_api_addr", l.LeaderAPIAddr, logKeyErr, err)
			if dialFailed(err) {
				writeError(w, http.StatusBadGateway, api.CodeLeaderUnreachable, fmt.Sprintf(
					"agent %s could not reach the leader %s at %s (%v); the call was not run: retry, or ask another agent",
					s.cfg.AgentID, l.LeaderID, l.LeaderAPIAddr, err))
				return
			}
			writeError(w, http.StatusBadGateway, api.CodeForwardFailed, fmt.Sprintf(
				"agent %s lost the connection to the leader %s at %s while forwarding (%v): the leader may have run the call; check 'regentctl status' and 'regentctl history' before retrying",
				s.cfg.AgentID, l.LeaderID, l.LeaderAPIAddr, err))
		},
	}
}

// dialFailed reports whether err means the call never reached the leader:
// no connection, or a TLS server that is not the leader's (its certificate
// names another agent, or none the CA signed).
func dialFailed(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var pe *identity.PeerError
	var ve *tls.CertificateVerificationError
	if errors.As(err, &pe) || errors.As(err, &ve) {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}
