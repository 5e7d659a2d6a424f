package apiserver

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/regentdb/regent/api"
)

// statusPageHTML is the status page template: plain HTML and CSS, no
// script, refreshed by a meta tag.
//
//go:embed statuspage.html
var statusPageHTML string

type statusPage struct {
	tmpl *template.Template
}

func newStatusPage() (*statusPage, error) {
	t, err := template.New("status").Funcs(template.FuncMap{
		"ago":      ago,
		"clock":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"clockp":   clockPtr,
		"onoff":    api.OnOff,
		"lag":      lagText,
		"dur":      func(d api.Duration) string { return roundDuration(d.Std()) },
		"durp":     durPtr,
		"opdur":    opDuration,
		"reach":    reachOf,
		"resclass": resultClass,
		"qps": func(q *float64) string {
			if q == nil {
				return "–"
			}
			return strconv.FormatFloat(*q, 'f', 1, 64)
		},
		"conns": func(c *int64) string {
			if c == nil {
				return "–"
			}
			return strconv.FormatInt(*c, 10)
		},
	}).Parse(statusPageHTML)
	if err != nil {
		return nil, fmt.Errorf("status page template: %w", err)
	}
	return &statusPage{tmpl: t}, nil
}

// pageData is what the template renders.
type pageData struct {
	Now       time.Time
	Refresh   int
	Version   string
	AgentID   string
	Status    api.Status
	StatusErr string
	Clusters  []pageCluster
}

type pageCluster struct {
	api.Cluster
	Err        string
	History    []api.Operation
	HistoryErr string
	// Agents are the ids that appear in any instance's reachability, the
	// columns of the reachability cells.
	Agents []string
}

// handlePage renders the status page. A Backend error shows on the page
// rather than replacing it: the page is most needed when things are wrong.
func (s *Server) handlePage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := s.now()
	data := pageData{Now: now, Refresh: int(max(1, s.cfg.PageRefresh.Round(time.Second)/time.Second)),
		Version: s.cfg.Version, AgentID: s.cfg.AgentID}
	status := http.StatusOK
	st, err := s.cfg.Backend.Status(ctx)
	if err != nil {
		data.StatusErr = err.Error()
		status = http.StatusServiceUnavailable
	}
	data.Status = st
	for _, name := range st.Clusters {
		pc := pageCluster{Cluster: api.Cluster{Name: name}}
		if c, err := s.cfg.Backend.Cluster(ctx, name); err != nil {
			pc.Err = err.Error()
		} else {
			pc.Cluster = c
		}
		if h, err := s.cfg.Backend.History(ctx, name, s.cfg.PageHistory); err != nil {
			pc.HistoryErr = err.Error()
		} else {
			pc.History = h
		}
		for _, in := range pc.Instances {
			for a := range in.Reachable {
				if !slices.Contains(pc.Agents, a) {
					pc.Agents = append(pc.Agents, a)
				}
			}
		}
		slices.Sort(pc.Agents)
		data.Clusters = append(data.Clusters, pc)
	}
	var buf bytes.Buffer
	if err := s.page.tmpl.Execute(&buf, data); err != nil {
		s.log.Error("status page template failed", logKeyErr, err)
		writeError(w, http.StatusInternalServerError, api.CodeInternal, "the status page could not be rendered; the error is logged on the agent")
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < 0 {
		return "in " + roundDuration(-d)
	}
	return roundDuration(d) + " ago"
}

func clockPtr(t *time.Time) string {
	if t == nil {
		return "–"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func lagText(r *api.Replication) string { return r.LagText("–") }

func durPtr(d *api.Duration) string {
	if d == nil {
		return "–"
	}
	return roundDuration(d.Std())
}

func opDuration(now time.Time, op api.Operation) string {
	return roundDuration(op.Duration(now))
}

// roundDuration shows a duration with a precision that suits its size.
func roundDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// reachCell is one agent's reachability of one instance on the page.
type reachCell struct {
	Text  string
	Class string
}

func reachOf(in api.Instance, agent string) reachCell {
	r, ok := in.Reachable[agent]
	switch {
	case !ok:
		return reachCell{Text: "–", Class: "muted"}
	case r.OK:
		return reachCell{Text: "ok", Class: "ok"}
	case r.Error != "":
		return reachCell{Text: r.Error, Class: "bad"}
	}
	return reachCell{Text: "down", Class: "bad"}
}

func resultClass(result string) string {
	switch result {
	case api.ResultSuccess:
		return "ok"
	case api.ResultRunning:
		return "info"
	case api.ResultSkipped:
		return "muted"
	}
	return "bad"
}
