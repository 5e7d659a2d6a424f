package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/regentdb/regent/config"
	"github.com/regentdb/regent/failover"
)

// Why a report is refused: the reason label of the metric
// regent_reports_refused_total and the code of the 4xx answer.
const (
	RefusedToken        = "token"         // no agent token, or a wrong one
	RefusedIdentity     = "identity"      // no agent certificate, or one that names another agent than the report
	RefusedInvalid      = "invalid"       // undecodable, or a field out of its range
	RefusedUnknownAgent = "unknown_agent" // the agent is neither a peer nor in the member table
	RefusedSkew         = "skew"          // sent_at too far from the receiver's clock
	RefusedFuture       = "future"        // a time well after the report's own sent_at
)

// RefusalReasons lists every reason, for metrics that start at zero.
var RefusalReasons = []string{RefusedToken, RefusedIdentity, RefusedInvalid, RefusedUnknownAgent, RefusedSkew, RefusedFuture}

// ReportError is a refused report: why (one of the Refused… reasons) and a
// message for the sender's log.
type ReportError struct {
	Reason string
	Msg    string
}

func (e *ReportError) Error() string { return "report refused (" + e.Reason + "): " + e.Msg }

func refuse(reason, format string, args ...any) *ReportError {
	return &ReportError{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// Bounds on reports.
const (
	// maxReportBytes bounds a report's body.
	maxReportBytes = 4 << 20
	// minReportSkew is the least clock difference (or transit time) a
	// report's sent_at may show against the receiver's clock; the bound
	// is max(minReportSkew, 10 probe intervals).
	minReportSkew = 5 * time.Second
	// reportFutureSlack is how far after its own sent_at a time in a report
	// may lie (a wall clock stepped back between a probe and the send);
	// within it the time is clamped, beyond it the report is refused.
	reportFutureSlack = time.Second
)

// DecodeReport reads one JSON report (at most maxReportBytes, nothing after
// it) and checks its form. Errors are *ReportError with RefusedInvalid.
func DecodeReport(rd io.Reader) (Report, error) {
	var r Report
	data, err := io.ReadAll(io.LimitReader(rd, maxReportBytes+1))
	if err != nil {
		return Report{}, refuse(RefusedInvalid, "reading the report: %v", err)
	}
	if len(data) > maxReportBytes {
		return Report{}, refuse(RefusedInvalid, "the report is larger than %d bytes", maxReportBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&r); err != nil {
		return Report{}, refuse(RefusedInvalid, "malformed report: %v", err)
	}
	if dec.More() {
		return Report{}, refuse(RefusedInvalid, "data after the report")
	}
	if err := r.validate(); err != nil {
		return Report{}, err
	}
	return r, nil
}

// validate checks the report's form: who and when, and names and states
// the leader's view can use.
func (r Report) validate() error {
	if !config.ValidName(r.Agent) {
		return refuse(RefusedInvalid, "agent %q is not a valid node id", truncate(r.Agent))
	}
	if r.SentAt.IsZero() {
		return refuse(RefusedInvalid, "the report has no sent_at")
	}
	for name, cr := range r.Clusters {
		if !config.ValidName(name) {
			return refuse(RefusedInvalid, "cluster name %q is not valid", truncate(name))
		}
		switch cr.Local {
		case "", failover.LocalUnknown, failover.LocalRunning, failover.LocalGone:
		default:
			return refuse(RefusedInvalid, "cluster %s: unknown local state %q", name, truncate(string(cr.Local)))
		}
		for inst := range cr.Observations {
			if !config.ValidName(inst) {
				return refuse(RefusedInvalid, "cluster %s: instance name %q is not valid", name, truncate(inst))
			}
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// maxReportSkew is how far a report's sent_at may be from the receiver's
// clock: 10 probe intervals of the fastest cluster, at least 5 s. Agents'
// clocks must agree within it (NTP); a report delayed longer in transit is
// stale anyway.
func (a *Agent) maxReportSkew() time.Duration {
	bound := minReportSkew
	for _, c := range a.rts() {
		bound = max(bound, 10*c.policy.ProbeInterval)
	}
	return bound
}

// checkReport decides whether Receive takes r at now (see Receive).
func (a *Agent) checkReport(r Report, now time.Time) error {
	if err := r.validate(); err != nil {
		return err
	}
	if !a.knownAgent(r.Agent) {
		return refuse(RefusedUnknownAgent, "agent %q is neither among raft.peers nor in the member table", r.Agent)
	}
	if skew, bound := now.Sub(r.SentAt), a.maxReportSkew(); skew > bound || skew < -bound {
		return refuse(RefusedSkew, "agent %s sent it at %s, %s from this agent's clock (%s), more than %s: are both clocks synchronised (NTP)?",
			r.Agent, r.SentAt.UTC().Format(time.RFC3339Nano), skew.Round(time.Millisecond), now.UTC().Format(time.RFC3339Nano), bound)
	}
	var latest time.Time
	cp := r.clone()
	cp.eachTime(func(t *time.Time) {
		if t.After(latest) {
			latest = *t
		}
	})
	if ahead := latest.Sub(r.SentAt); ahead > reportFutureSlack {
		return refuse(RefusedFuture, "agent %s dates something at %s, %s after it sent the report: no agent observes what has not happened yet",
			r.Agent, latest.UTC().Format(time.RFC3339Nano), ahead.Round(time.Millisecond))
	}
	return nil
}
