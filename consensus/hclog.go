package consensus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// Log keys used by this package.
const (
	logKeyNode      = "node_id"
	logKeyComponent = "component"
	logKeyPeer      = "peer"
	logKeyRemote    = "remote_addr"
	logKeyAddr      = "addr"
	logKeyDirection = "direction"
	logKeyErr       = "err"
	logKeyIndex     = "index"
	logKeyCommand   = "command"
	logKeyCluster   = "cluster"
	logKeyLeader    = "leader"
	logKeyTerm      = "term"
	logKeyPeers     = "peers"
	logKeyPresented = "presented"
	logKeyExpected  = "expected"
)

// levelTrace is below slog's Debug: Raft's trace output.
const levelTrace = slog.LevelDebug - 4

// hclogAdapter sends hashicorp/raft's hclog output to an injected slog.Logger.
// Raft's logger name becomes the "component" attribute; the level filter is
// the slog handler's, plus SetLevel if Raft ever calls it.
type hclogAdapter struct {
	log     *slog.Logger
	name    string
	implied []any
	level   *atomic.Int32 // hclog.Level; shared by derived loggers
}

var _ hclog.Logger = (*hclogAdapter)(nil)

func newHCLogAdapter(l *slog.Logger, name string) *hclogAdapter {
	lv := &atomic.Int32{}
	lv.Store(int32(hclog.Trace))
	return &hclogAdapter{log: l, name: name, level: lv}
}

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return levelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (a *hclogAdapter) enabled(l hclog.Level) bool {
	if l == hclog.Off || l < hclog.Level(a.level.Load()) {
		return false
	}
	return a.log.Enabled(context.Background(), slogLevel(l))
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	if level > hclog.Debug && closedConnError(args) {
		// Raft's network transport reports the connections we close on
		// shutdown as errors; they are expected.
		level = hclog.Debug
	}
	if !a.enabled(level) {
		return
	}
	attrs := make([]any, 0, 1+len(a.implied)/2+len(args)/2)
	if a.name != "" {
		attrs = append(attrs, slog.String(logKeyComponent, a.name))
	}
	attrs = appendPairs(attrs, a.implied)
	attrs = appendPairs(attrs, args)
	a.log.Log(context.Background(), slogLevel(level), msg, attrs...)
}

func closedConnError(kv []any) bool {
	for _, v := range kv {
		if err, ok := v.(error); ok && errors.Is(err, net.ErrClosed) {
			return true
		}
	}
	return false
}

// appendPairs turns hclog's alternating key/value arguments into slog
// attributes, tolerating a dangling value or a non-string key.
func appendPairs(dst, kv []any) []any {
	for i := 0; i < len(kv); i += 2 {
		if i+1 == len(kv) {
			dst = append(dst, slog.Any("EXTRA_VALUE_AT_END", kv[i]))
			break
		}
		key, ok := kv[i].(string)
		if !ok {
			key = fmt.Sprint(kv[i])
		}
		val := kv[i+1]
		if f, ok := val.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				val = fmt.Sprintf(format, f[1:]...)
			}
		}
		dst = append(dst, slog.Any(key, val))
	}
	return dst
}

func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *hclogAdapter) IsTrace() bool { return a.enabled(hclog.Trace) }
func (a *hclogAdapter) IsDebug() bool { return a.enabled(hclog.Debug) }
func (a *hclogAdapter) IsInfo() bool  { return a.enabled(hclog.Info) }
func (a *hclogAdapter) IsWarn() bool  { return a.enabled(hclog.Warn) }
func (a *hclogAdapter) IsError() bool { return a.enabled(hclog.Error) }

func (a *hclogAdapter) ImpliedArgs() []any { return a.implied }

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	b := *a
	b.implied = append(append([]any(nil), a.implied...), args...)
	return &b
}

func (a *hclogAdapter) Name() string { return a.name }

func (a *hclogAdapter) Named(name string) hclog.Logger {
	b := *a
	if b.name != "" {
		b.name += "." + name
	} else {
		b.name = name
	}
	return &b
}

func (a *hclogAdapter) ResetNamed(name string) hclog.Logger {
	b := *a
	b.name = name
	return &b
}

func (a *hclogAdapter) SetLevel(level hclog.Level) { a.level.Store(int32(level)) }
func (a *hclogAdapter) GetLevel() hclog.Level      { return hclog.Level(a.level.Load()) }

func (a *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

func (a *hclogAdapter) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	level := hclog.Info
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		level = opts.ForceLevel
	}
	return &stdWriter{a: a, level: level}
}

// stdWriter logs each written line as one record.
type stdWriter struct {
	a     *hclogAdapter
	level hclog.Level
}

func (w *stdWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		if s := strings.TrimSpace(string(line)); s != "" {
			w.a.Log(w.level, s)
		}
	}
	return len(p), nil
}
