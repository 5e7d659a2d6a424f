package apiserver

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"

	"github.com/regentdb/regent/api"
)

// Log keys.
const (
	logKeyMethod       = "method"
	logKeyPath         = "path"
	logKeyStatus       = "status"
	logKeyDuration     = "duration"
	logKeyRemote       = "remote"
	logKeyCaller       = "caller"
	logKeyOperation    = "operation"
	logKeyForwarded    = "forwarded_to"
	logKeyForwardedBy  = "forwarded_by"
	logKeyForwardedFor = "forwarded_for"
	// logKeyForwardIgnored: the request carried forwarding headers without
	// the certificate of the agent they name.
	logKeyForwardIgnored = "forward_headers_ignored"
	logKeyErr            = "err"
	logKeyBytes          = "bytes"
)

// requestNotes collects what handlers learn about a request for its log
// line (the caller, the operation id). Handlers only write; the logging
// middleware reads after the handler returns.
type requestNotes struct {
	mu          sync.Mutex
	caller      string
	operation   string
	forwardedTo string
}

type notesKey struct{}

func notes(r *http.Request) *requestNotes {
	n, _ := r.Context().Value(notesKey{}).(*requestNotes)
	return n
}

func noteCaller(r *http.Request, c string) {
	if n := notes(r); n != nil {
		n.mu.Lock()
		n.caller = c
		n.mu.Unlock()
	}
}

func noteOperation(r *http.Request, id string) {
	if n := notes(r); n != nil {
		n.mu.Lock()
		n.operation = id
		n.mu.Unlock()
	}
}

func noteForward(r *http.Request, to string) {
	if n := notes(r); n != nil {
		n.mu.Lock()
		n.forwardedTo = to
		n.mu.Unlock()
	}
}

// recorder captures the status and size of an answer. It passes Flush and
// the rest of http.ResponseController through Unwrap, so streams work.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (rec *recorder) WriteHeader(code int) {
	if rec.status == 0 {
		rec.status = code
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *recorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	n, err := rec.ResponseWriter.Write(b)
	rec.bytes += int64(n)
	return n, err
}

func (rec *recorder) Flush() {
	if f, ok := rec.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (rec *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(rec.ResponseWriter).Hijack()
}

func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// logRequests logs one line per request: method, path (never the query,
// which a careless client might fill with secrets), status, duration,
// remote address, caller and operation id. It never logs a header. It also
// turns a handler's panic into a 500 JSON answer and a logged stack, and
// counts the request in the metrics.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		n := &requestNotes{}
		r = r.WithContext(context.WithValue(r.Context(), notesKey{}, n))
		rec := &recorder{ResponseWriter: w}
		rec.Header().Set(HeaderAgent, s.cfg.AgentID)
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler { //nolint:errorlint // sentinel compared by identity, as net/http does
					panic(p)
				}
				s.log.Error("api handler panicked", logKeyMethod, r.Method, logKeyPath, r.URL.Path,
					logKeyErr, fmt.Sprint(p), "stack", string(debug.Stack()))
				if rec.status == 0 {
					writeError(rec, http.StatusInternalServerError, api.CodeInternal,
						"the agent hit a bug serving this call; it is logged on the agent")
				}
			}
			d := s.now().Sub(start)
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			n.mu.Lock()
			attrs := []slog.Attr{
				slog.String(logKeyMethod, r.Method),
				slog.String(logKeyPath, r.URL.Path),
				slog.Int(logKeyStatus, status),
				slog.Duration(logKeyDuration, d),
				slog.String(logKeyRemote, r.RemoteAddr),
				slog.Int64(logKeyBytes, rec.bytes),
			}
			if n.caller != "" {
				attrs = append(attrs, slog.String(logKeyCaller, n.caller))
			}
			if n.operation != "" {
				attrs = append(attrs, slog.String(logKeyOperation, n.operation))
			}
			if by := r.Header.Get(HeaderForwardedBy); by != "" {
				// Forwarded by a follower: say by whom and for whom, but
				// only when the call came with the certificate of the agent
				// the header names last (the one that forwarded it). Any
				// caller can write these headers; an audit log must not
				// repeat them as fact.
				if id, ok := s.forwardingAgent(r); ok && lastID(by) == id {
					attrs = append(attrs, slog.String(logKeyForwardedBy, by),
						slog.String(logKeyForwardedFor, r.Header.Get("X-Forwarded-For")))
				} else {
					attrs = append(attrs, slog.Bool(logKeyForwardIgnored, true))
				}
			}
			if n.forwardedTo != "" {
				attrs = append(attrs, slog.String(logKeyForwarded, n.forwardedTo))
			}
			n.mu.Unlock()
			level := slog.LevelInfo
			switch {
			case isQuietPath(r.URL.Path) && status != http.StatusInternalServerError:
				// HAProxy and Prometheus poll these several times a second,
				// and a 503 from /primary on a replica is the answer HAProxy
				// asked for, not a failure.
				level = slog.LevelDebug
			case status >= 500:
				level = slog.LevelError
			}
			s.log.LogAttrs(r.Context(), level, "api request", attrs...)
			if s.cfg.Metrics != nil {
				route := r.Pattern
				if route == "" {
					route = "unmatched"
				}
				s.cfg.Metrics.observeRequest(route, strconv.Itoa(status))
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// lastID is the last id of a comma-separated X-Regent-Forwarded-By list.
func lastID(list string) string {
	i := strings.LastIndexByte(list, ',')
	return strings.TrimSpace(list[i+1:])
}

func isQuietPath(p string) bool {
	switch p {
	case "/metrics", "/primary", "/replica", "/read-only", "/health", "/liveness", "/readiness":
		return true
	}
	return false
}
