package apiserver

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// followOperation streams an operation as newline-delimited JSON: one full
// snapshot now, one each time it changes, one at least every
// FollowKeepAlive, ending after the snapshot whose result is final (or
// after FollowMax, or when the Backend no longer knows the operation, for
// example because this agent lost the leadership; the client then follows
// again elsewhere).
//
// Polling the Backend keeps the Backend interface small and the stream
// robust: a snapshot is always complete, so nothing depends on having seen
// an earlier line.
func (s *Server) followOperation(w http.ResponseWriter, r *http.Request, cluster, id string) {
	ctx := r.Context()
	op, err := s.cfg.Backend.Operation(ctx, cluster, id)
	if err != nil {
		writeAPIError(w, backendError(err))
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no") // ask reverse proxies not to buffer the stream
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)

	var last []byte
	var lastWrite time.Time
	send := func(b []byte) bool {
		// Each line gets its own write deadline, so the server's
		// WriteTimeout does not cut a long operation's stream.
		_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := w.Write(append(b, '\n')); err != nil {
			return false
		}
		if err := rc.Flush(); err != nil {
			return false
		}
		last, lastWrite = b, time.Now()
		return true
	}
	encode := func(v any) []byte {
		b, _ := json.Marshal(v) // api types: cannot fail
		return b
	}
	if !send(encode(op)) || op.Done() {
		return
	}
	tick := time.NewTicker(s.cfg.FollowPoll)
	defer tick.Stop()
	end := time.NewTimer(s.cfg.FollowMax)
	defer end.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-end.C:
			return
		case <-tick.C:
		}
		op, err := s.cfg.Backend.Operation(ctx, cluster, id)
		if err != nil {
			s.log.Info("operation stream ended: the operation is no longer known here", logKeyOperation, id, logKeyErr, err)
			return
		}
		b := encode(op)
		if bytes.Equal(b, last) && time.Since(lastWrite) < s.cfg.FollowKeepAlive {
			continue
		}
		if !send(b) || op.Done() {
			return
		}
	}
}

// streamWriteDeadline lets a stream this agent passes on (a follower
// forwarding the leader's) outlive the server's write timeout
// (api.limits.write_timeout), which would cut it: the stream still ends
// after FollowMax. followOperation sets a deadline per line instead.
func (s *Server) streamWriteDeadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.FollowMax + time.Minute))
}

// isFollow reports whether r asks for an operation stream (?follow=1).
func isFollow(r *http.Request) bool {
	b, err := strconv.ParseBool(r.URL.Query().Get("follow"))
	return err == nil && b
}
