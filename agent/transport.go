package agent

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/regentdb/regent/identity"
)

// ReportPath is where agents post their reports to the leader.
const ReportPath = "/internal/v1/report"

// HTTPTransport delivers reports over the agents' HTTP API, authenticated
// with the shared agent token and, over TLS, the agent's certificate.
type HTTPTransport struct {
	// Client must present this agent's certificate over TLS and check, on
	// every connection, that the server's names the agent the request is
	// for (identity.ExpectedAgent of the request's context; apiserver's
	// NewForwardTransport does): the token must reach no one else.
	Client *http.Client
	Scheme string // http or https
	Token  string
	// Addr returns an agent's API host:port ("" when unknown).
	Addr func(id string) string
}

// Deliver posts r to the agent with id to.
func (t *HTTPTransport) Deliver(ctx context.Context, to string, r Report) error {
	addr := t.Addr(to)
	if addr == "" {
		return fmt.Errorf("no API address known for agent %s", to)
	}
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(identity.WithExpectedAgent(ctx, to), http.MethodPost, t.Scheme+"://"+addr+ReportPath, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+t.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("report to %s: %s: %s", to, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// ReportAuth says how the report route authenticates senders.
type ReportAuth struct {
	// Token is the shared agent token (api.agent_token_file), required of
	// every report.
	Token string
	// AgentCAs verifies agents' client certificates (api.tls.ca_file). Set
	// when the API serves TLS: a report is then taken only from the agent
	// its certificate names (URI SAN urn:regent:agent:ID), and the body's
	// agent must be that one. Nil when the API has no TLS: reports are then
	// bound to the shared token alone, which every agent holds.
	AgentCAs *x509.CertPool
	// Refused, when set, is told the reason of every refused report
	// (RefusalReasons; a metric).
	Refused func(reason string)
}

// ReportHandler receives reports on the leader (and on every other agent,
// for their status pages). It answers 204, or a JSON error: 401 for a
// missing or wrong token, 403 when the sender's certificate does not name
// the agent the report claims to come from, 400 for a report Receive
// refuses.
func (a *Agent) ReportHandler(auth ReportAuth) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		fail := func(status int, e *ReportError) {
			if auth.Refused != nil {
				auth.Refused(e.Reason)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(struct {
				Error string `json:"error"`
				Code  string `json:"code"`
			}{e.Msg, "report_refused_" + e.Reason})
		}
		got := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(got), []byte(auth.Token)) != 1 {
			fail(http.StatusUnauthorized, refuse(RefusedToken, "agent reports need the agent token (api.agent_token_file)"))
			return
		}
		sender := ""
		if auth.AgentCAs != nil {
			id, err := identity.VerifiedAgent(req.TLS, auth.AgentCAs)
			if err != nil {
				fail(http.StatusForbidden, refuse(RefusedIdentity,
					"reports are taken only from an agent's certificate (URI SAN %s<node_id>, signed by the CA of api.tls.ca_file): %v", identity.AgentPrefix, err))
				return
			}
			sender = id
		}
		r, err := DecodeReport(http.MaxBytesReader(w, req.Body, maxReportBytes+1))
		if err != nil {
			fail(http.StatusBadRequest, asReportError(err))
			return
		}
		if sender != "" && r.Agent != sender {
			fail(http.StatusForbidden, refuse(RefusedIdentity,
				"the report says it comes from agent %s, and the certificate it came with names agent %s: an agent reports only for itself", r.Agent, sender))
			return
		}
		if err := a.Receive(r); err != nil {
			fail(http.StatusBadRequest, asReportError(err))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func asReportError(err error) *ReportError {
	var re *ReportError
	if errors.As(err, &re) {
		return re
	}
	return refuse(RefusedInvalid, "%v", err)
}
