package fleet

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times: 100 on
// every Linux build this runs on (getconf CLK_TCK).
const clockTicks = 100

// procUsage is a process's CPU time so far and its resident memory now.
type procUsage struct {
	cpu time.Duration
	rss int64
}

func readProc(pid int) (procUsage, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procUsage{}, err
	}
	// The command name is in parentheses and may hold spaces: the fields
	// after its closing one start with the state (field 3).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 22 {
		return procUsage{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	rssPages, _ := strconv.ParseInt(f[21], 10, 64)
	return procUsage{cpu: time.Duration(utime+stime) * time.Second / clockTicks, rss: rssPages * int64(os.Getpagesize())}, nil
}

// metrics is one scrape, parsed by the Prometheus text parser.
type metrics map[string]*dto.MetricFamily

func (e *env) scrape(ctx context.Context, i int) (metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+e.agents[i].apiAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := e.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("/metrics of %s: %s: %s", e.agents[i].id, resp.Status, b)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("/metrics of %s: %w", e.agents[i].id, err)
	}
	return metrics(fams), nil
}

// value is a counter's, gauge's or untyped metric's value, summed over its
// label sets (0 when the agent does not export it).
func (m metrics) value(name string) float64 {
	var sum float64
	for _, s := range m[name].GetMetric() {
		switch {
		case s.Counter != nil:
			sum += s.GetCounter().GetValue()
		case s.Gauge != nil:
			sum += s.GetGauge().GetValue()
		case s.Untyped != nil:
			sum += s.GetUntyped().GetValue()
		}
	}
	return sum
}

// histogram returns a histogram's cumulative buckets (upper bound ->
// count) summed over its label sets, the +Inf one under math.Inf(1).
func (m metrics) histogram(name string) map[float64]float64 {
	out := map[float64]float64{}
	for _, s := range m[name].GetMetric() {
		h := s.GetHistogram()
		if h == nil {
			continue
		}
		for _, b := range h.GetBucket() {
			if !math.IsInf(b.GetUpperBound(), 1) { // the text's +Inf bucket is the sample count
				out[b.GetUpperBound()] += float64(b.GetCumulativeCount())
			}
		}
		out[math.Inf(1)] += float64(h.GetSampleCount())
	}
	return out
}

// quantile returns the upper bound of the bucket in which the q-quantile
// of the observations made between two scrapes falls, and their count.
func quantile(before, after map[float64]float64, q float64) (bound float64, n float64) {
	bounds := make([]float64, 0, len(after))
	for le := range after {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	total := after[math.Inf(1)] - before[math.Inf(1)]
	if total <= 0 {
		return math.NaN(), 0
	}
	for _, le := range bounds {
		if after[le]-before[le] >= q*total {
			return le, total
		}
	}
	return math.Inf(1), total
}

// agentSample is what one agent shows at one moment.
type agentSample struct {
	at      time.Time
	usage   procUsage
	m       metrics
	raftDB  int64
	leader  bool
	applied float64
}

func (e *env) sampleAgent(ctx context.Context, i int) (agentSample, error) {
	s := agentSample{at: time.Now()}
	var err error
	if s.usage, err = readProc(e.agents[i].cmd.Process.Pid); err != nil {
		return s, err
	}
	if s.m, err = e.scrape(ctx, i); err != nil {
		return s, err
	}
	if fi, err := os.Stat(filepath.Join(e.agents[i].dataDir, "raft.db")); err == nil {
		s.raftDB = fi.Size()
	}
	s.leader = s.m.value("regent_raft_is_leader") == 1
	s.applied = s.m.value("regent_raft_applied_index")
	return s, nil
}

// simsCPU is the CPU time all fleetsim processes used so far.
func (e *env) simsCPU() time.Duration {
	var total time.Duration
	for _, p := range e.sims {
		if u, err := readProc(p.cmd.Process.Pid); err == nil {
			total += u.cpu
		}
	}
	return total
}

// snapshotInfo is a Raft snapshot this agent took while it ran: its size
// (meta.json) and how long it took (the raft library's log lines "starting
// snapshot up to" and "snapshot complete up to").
type snapshotInfo struct {
	count    int
	size     int64
	duration time.Duration
}

func (e *env) snapshots(i int) snapshotInfo {
	var info snapshotInfo
	dirs, _ := filepath.Glob(filepath.Join(e.agents[i].dataDir, "snapshots", "*", "meta.json"))
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		var meta struct{ Size int64 }
		if json.Unmarshal(b, &meta) == nil && meta.Size > info.size {
			info.size = meta.Size
		}
	}
	f, err := os.Open(e.agents[i].logPath)
	if err != nil {
		return info
	}
	defer f.Close()
	var started time.Time
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, `msg="starting snapshot up to"`):
			started = logTime(line)
		case strings.Contains(line, `msg="snapshot complete up to"`) && !started.IsZero():
			if d := logTime(line).Sub(started); d > info.duration {
				info.duration = d
			}
			info.count++
			started = time.Time{}
		}
	}
	return info
}

// logTime reads the time= field of a text log line.
func logTime(line string) time.Time {
	_, rest, ok := strings.Cut(line, "time=")
	if !ok {
		return time.Time{}
	}
	v, _, _ := strings.Cut(rest, " ")
	t, _ := time.Parse(time.RFC3339Nano, v)
	return t
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDur(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func ms(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
