package apiserver

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/regentdb/regent/api"
)

// HTTPServer serves the agent's HTTP API under Limits. Build it with
// Server.NewHTTPServer; run it with Serve, stop it with Shutdown.
type HTTPServer struct {
	hs      *http.Server
	limits  Limits
	tls     *tls.Config
	health  map[string]bool
	log     *slog.Logger
	limiter atomic.Pointer[connLimiter]

	mu       sync.Mutex
	lastShed time.Time // when the connection limit was last logged
	shedSeen uint64    // evicted + refused at that moment
}

type reserveKey struct{}

// labelPool names a connection pool of the limiter: main or health.
const labelPool = "pool"

// NewHTTPServer returns the HTTP server of the agent's API: root (the API's
// Handler and whatever the agent mounts beside it) behind limits (zero
// fields take DefaultLimits), over TLS when tlsConfig is not nil. HTTP/1.1
// only: the limits are counted in connections. Its connection counts go to
// the server's Metrics.
func (s *Server) NewHTTPServer(root http.Handler, limits Limits, tlsConfig *tls.Config) (*HTTPServer, error) {
	limits = limits.WithDefaults()
	if err := limits.Validate("api.limits"); err != nil {
		return nil, err
	}
	h := &HTTPServer{limits: limits, tls: tlsConfig, health: map[string]bool{}, log: s.log}
	for _, p := range s.cfg.HealthPaths {
		h.health[p] = true
	}
	if s.cfg.Ready != nil {
		// An orchestrator's probes must get through a flood too, or it
		// restarts a working agent.
		h.health["/liveness"], h.health["/readiness"] = true, true
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	h.hs = &http.Server{
		Handler:           h.guard(root),
		ReadHeaderTimeout: limits.ReadHeaderTimeout,
		ReadTimeout:       limits.ReadTimeout,
		WriteTimeout:      limits.WriteTimeout,
		IdleTimeout:       limits.IdleTimeout,
		MaxHeaderBytes:    limits.MaxHeaderBytes,
		Protocols:         &protocols,
		ConnState: func(c net.Conn, st http.ConnState) {
			if l := h.limiter.Load(); l != nil {
				l.setState(c, st)
			}
		},
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if lc := asLimited(c); lc != nil && lc.reserve {
				return context.WithValue(ctx, reserveKey{}, true)
			}
			return ctx
		},
		ErrorLog: log.New(httpErrorLog{s.log}, "", 0),
	}
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.reg.MustRegister(&connCollector{h: h, conns: prometheus.NewDesc("regent_api_connections",
			"Connections the HTTP API holds, by pool: main (up to api.limits.max_connections) and health (the reserve for health checks).",
			[]string{labelPool}, nil), shed: prometheus.NewDesc("regent_api_connections_shed_total",
			"Connections the HTTP API closed at its limit: evicted (waited longest without a request, to make room) or refused (every connection busy).",
			[]string{labelReason}, nil)})
	}
	return h, nil
}

// Serve accepts connections on ln until Shutdown; it returns
// http.ErrServerClosed then.
func (h *HTTPServer) Serve(ln net.Listener) error {
	l := newConnLimiter(ln, h.limits.MaxConnections, h.limits.HealthConnections, HealthReserveTimeout)
	l.onShed = h.shed
	h.limiter.Store(l)
	var served net.Listener = l
	if h.tls != nil {
		served = tls.NewListener(l, h.tls)
	}
	return h.hs.Serve(served)
}

// Shutdown stops accepting, closes idle connections and waits for the
// others until ctx ends.
func (h *HTTPServer) Shutdown(ctx context.Context) error { return h.hs.Shutdown(ctx) }

// shed logs, at most once a minute, that the limit is shedding connections.
func (h *HTTPServer) shed() {
	l := h.limiter.Load()
	general, reserved, evicted, refused := l.counts()
	now := time.Now()
	h.mu.Lock()
	if now.Sub(h.lastShed) < time.Minute {
		h.mu.Unlock()
		return
	}
	since := evicted + refused - h.shedSeen
	h.lastShed, h.shedSeen = now, evicted+refused
	h.mu.Unlock()
	h.log.Warn("the HTTP API is at its connection limit: connections that held a slot without a request are closed to make room, and health checks use the reserve (api.limits); a client is holding connections open",
		"connections", general, "health_reserve", reserved, "shed_since_last_warning", since, "evicted_total", evicted, "refused_total", refused)
}

// guard applies what the listener cannot: a connection on the health
// reserve serves one health request and closes; and a request whose body
// the handler did not read (an unauthenticated caller gets 401 before its
// body is looked at) closes its connection at once, rather than the server
// waiting up to read_timeout to drain a body sent a byte at a time.
func (h *HTTPServer) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reserve, _ := r.Context().Value(reserveKey{}).(bool); reserve {
			w.Header().Set("Connection", "close")
			if !h.health[r.URL.Path] {
				writeError(w, http.StatusServiceUnavailable, api.CodeUnavailable,
					"the agent is at its connection limit (api.limits.max_connections) and serves only its health endpoints now: retry in a moment")
				return
			}
		}
		body := &bodyTracker{ReadCloser: r.Body, length: r.ContentLength}
		r.Body = body
		gw := &guardWriter{ResponseWriter: w, body: body}
		next.ServeHTTP(gw, r)
		if !body.consumed() {
			if !gw.wrote {
				w.Header().Set("Connection", "close")
			}
			// net/http drains up to 256 KB of an unread body after the
			// handler, at the client's pace: end that now.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now())
		}
	})
}

// bodyTracker notes how much of a request body the handler read.
type bodyTracker struct {
	io.ReadCloser
	length int64 // Content-Length; -1 when unknown (chunked)
	read   int64
	eof    bool
}

func (b *bodyTracker) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *bodyTracker) consumed() bool {
	return b.eof || b.length >= 0 && b.read >= b.length
}

// guardWriter closes the connection after an answer written before the
// request's body was read.
type guardWriter struct {
	http.ResponseWriter
	body  *bodyTracker
	wrote bool
}

func (w *guardWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		if !w.body.consumed() {
			w.Header().Set("Connection", "close")
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *guardWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *guardWriter) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *guardWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// httpErrorLog takes net/http's own error lines. A TLS handshake that ends
// early is what an evicted connection or a port scan looks like: debug, or
// a flood would flood the log too.
type httpErrorLog struct{ log *slog.Logger }

func (e httpErrorLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelWarn
	if strings.Contains(msg, "TLS handshake error") {
		level = slog.LevelDebug
	}
	e.log.Log(context.Background(), level, msg)
	return len(p), nil
}

// connCollector exports the limiter's counts.
type connCollector struct {
	h           *HTTPServer
	conns, shed *prometheus.Desc
}

func (c *connCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.conns; ch <- c.shed }

func (c *connCollector) Collect(ch chan<- prometheus.Metric) {
	l := c.h.limiter.Load()
	if l == nil {
		return
	}
	general, reserved, evicted, refused := l.counts()
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(general), "main")
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(reserved), "health")
	ch <- prometheus.MustNewConstMetric(c.shed, prometheus.CounterValue, float64(evicted), "evicted")
	ch <- prometheus.MustNewConstMetric(c.shed, prometheus.CounterValue, float64(refused), "refused")
}
