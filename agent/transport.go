package agent

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// ReportPath is where agents post their reports to the leader.
const ReportPath = "/internal/v1/report"

// HTTPTransport delivers reports over the agents' HTTP API, authenticated
// with the shared agent token.
type HTTPTransport struct {
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.Scheme+"://"+addr+ReportPath, bytes.NewReader(body))
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

// ReportHandler receives reports on the leader. It accepts only the shared
// agent token.
func (a *Agent) ReportHandler(token string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		got := strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			http.Error(w, `{"error":"agent reports need the agent token (api.agent_token_file)","code":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		var r Report
		dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, 4<<20))
		if err := dec.Decode(&r); err != nil {
			http.Error(w, fmt.Sprintf(`{"error":%q,"code":"invalid"}`, "malformed report: "+err.Error()), http.StatusBadRequest)
			return
		}
		if err := a.Receive(r); err != nil {
			http.Error(w, fmt.Sprintf(`{"error":%q,"code":"invalid"}`, err.Error()), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
