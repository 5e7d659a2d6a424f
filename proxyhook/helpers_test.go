package proxyhook

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// testLogger sends logs to t.Log, so they show with the failing test only.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(&tHandler{t: t, mu: &sync.Mutex{}})
}

type tHandler struct {
	t     testing.TB
	mu    *sync.Mutex
	attrs []slog.Attr
}

func (h *tHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *tHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	for _, a := range h.attrs {
		b.WriteString(" " + a.String())
	}
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	h.mu.Lock()
	defer h.mu.Unlock()
	defer func() { _ = recover() }() // a log after the test ended must not panic
	h.t.Log(b.String())
	return nil
}

func (h *tHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *tHandler) WithGroup(string) slog.Handler { return h }
