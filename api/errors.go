package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes: the "code" field of an error answer. Scripts branch on them;
// people read the message.
const (
	CodeBadRequest        = "bad_request"        // 400: malformed body, unknown field, bad parameter
	CodeUnauthorized      = "unauthorized"       // 401: no or wrong credentials
	CodeForbidden         = "forbidden"          // 403: a read-only credential on a mutating call
	CodeNotFound          = "not_found"          // 404: no such cluster, instance, operation, member or route
	CodeMethodNotAllowed  = "method_not_allowed" // 405
	CodeConflict          = "conflict"           // 409: another operation runs, or the state changed
	CodeTooLarge          = "too_large"          // 413: body over the limit
	CodeUnsupportedMedia  = "unsupported_media"  // 415: body is not application/json
	CodeRefused           = "refused"            // 422: the request is well formed but unsafe now (target lags, ...)
	CodeInternal          = "internal"           // 500
	CodeLeaderUnreachable = "leader_unreachable" // 502: this agent could not forward to the leader
	CodeForwardFailed     = "forward_failed"     // 502: forwarding broke after the leader may have received the call
	CodeNotLeader         = "not_leader"         // 503: ask the leader (see Error.LeaderAPIAddr)
	CodeNoLeader          = "no_leader"          // 503: no Raft leader now (election, or quorum lost)
	CodeUnavailable       = "unavailable"        // 503: the agent cannot answer now (starting, stopping)
	CodeForwardLoop       = "forward_loop"       // 508: forwarding went in a circle
)

// Error is the JSON body of every error answer, and the error the Client
// returns for one.
type Error struct {
	// Message says what is wrong and what to do about it.
	Message string `json:"error"`
	// Code is one of the Code… constants.
	Code string `json:"code"`
	// LeaderID is the Raft leader's node id, on not_leader answers.
	LeaderID string `json:"leader_id,omitempty"`
	// LeaderAPIAddr is the Raft leader's API address, on not_leader
	// answers.
	LeaderAPIAddr string `json:"leader_api_addr,omitempty"`
	// Status is the HTTP status of the answer; it is not in the body.
	Status int `json:"-"`
	// Endpoint is the agent that answered; set by the Client only.
	Endpoint string `json:"-"`
}

// Error returns the server's message with the status, for logs and CLIs.
func (e *Error) Error() string {
	if e.Endpoint != "" {
		return fmt.Sprintf("%s (HTTP %d %s from %s)", e.Message, e.Status, e.Code, e.Endpoint)
	}
	return fmt.Sprintf("%s (HTTP %d %s)", e.Message, e.Status, e.Code)
}

// StatusOf returns the HTTP status of an *Error in err's chain, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// IsAuth reports whether err is a 401 or 403 answer.
func IsAuth(err error) bool {
	s := StatusOf(err)
	return s == http.StatusUnauthorized || s == http.StatusForbidden
}
