package workers

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Metrics are the pipeline's Prometheus metrics. The zero value is not
// usable: call NewMetrics. A nil *Metrics is accepted everywhere and
// records nothing.
type Metrics struct {
	mu       sync.Mutex
	counters map[string]*atomic.Uint64 // name{labels} -> value
	gauges   map[string]*atomic.Int64
	hists    map[string]*Histogram
	help     map[string]string // family -> help
	kinds    map[string]string // family -> counter/gauge/histogram
}

// NewMetrics returns an empty registry.
func NewMetrics() *Metrics {
	return &Metrics{
		counters: map[string]*atomic.Uint64{},
		gauges:   map[string]*atomic.Int64{},
		hists:    map[string]*Histogram{},
		help:     map[string]string{},
		kinds:    map[string]string{},
	}
}

func (m *Metrics) declare(family, kind, help string) {
	if _, ok := m.kinds[family]; !ok {
		m.kinds[family] = kind
		m.help[family] = help
	}
}

// Add adds n to the counter family{labels}; labels is already formatted,
// e.g. `outcome="ok"`, or empty.
func (m *Metrics) Add(family, labels, help string, n uint64) {
	if m == nil {
		return
	}
	key := series(family, labels)
	m.mu.Lock()
	c, ok := m.counters[key]
	if !ok {
		m.declare(family, "counter", help)
		c = new(atomic.Uint64)
		m.counters[key] = c
	}
	m.mu.Unlock()
	c.Add(n)
}

// Gauge adds delta to the gauge family{labels}.
func (m *Metrics) Gauge(family, labels, help string, delta int64) {
	if g := m.gauge(family, labels, help); g != nil {
		g.Add(delta)
	}
}

// Set sets the gauge family{labels} to v.
func (m *Metrics) Set(family, labels, help string, v int64) {
	if g := m.gauge(family, labels, help); g != nil {
		g.Store(v)
	}
}

// gauge returns the gauge family{labels}, declaring it on first use; nil
// for a nil Metrics.
func (m *Metrics) gauge(family, labels, help string) *atomic.Int64 {
	if m == nil {
		return nil
	}
	key := series(family, labels)
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.gauges[key]
	if !ok {
		m.declare(family, "gauge", help)
		g = new(atomic.Int64)
		m.gauges[key] = g
	}
	return g
}

// Observe records v (seconds) in the histogram family.
func (m *Metrics) Observe(family, help string, v float64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	h, ok := m.hists[family]
	if !ok {
		m.declare(family, "histogram", help)
		h = newHistogram()
		m.hists[family] = h
	}
	m.mu.Unlock()
	h.Observe(v)
}

// Histogram returns the histogram family, or nil if nothing was observed.
func (m *Metrics) Histogram(family string) *Histogram {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hists[family]
}

// Counter returns the current value of family{labels}.
func (m *Metrics) Counter(family, labels string) uint64 {
	if m == nil {
		return 0
	}
	m.mu.Lock()
	c := m.counters[series(family, labels)]
	m.mu.Unlock()
	if c == nil {
		return 0
	}
	return c.Load()
}

func series(family, labels string) string {
	if labels == "" {
		return family
	}
	return family + "{" + labels + "}"
}

func familyOf(key string) string {
	for i := 0; i < len(key); i++ {
		if key[i] == '{' {
			return key[:i]
		}
	}
	return key
}

// WriteTo writes the metrics in the Prometheus text exposition format
// (version 0.0.4), families sorted by name.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	m.mu.Lock()
	lines := map[string][]string{}
	for k, c := range m.counters {
		lines[familyOf(k)] = append(lines[familyOf(k)], fmt.Sprintf("%s %d", k, c.Load()))
	}
	for k, g := range m.gauges {
		lines[familyOf(k)] = append(lines[familyOf(k)], fmt.Sprintf("%s %d", k, g.Load()))
	}
	for f, h := range m.hists {
		lines[f] = append(lines[f], h.lines(f)...)
	}
	fams := make([]string, 0, len(lines))
	for f := range lines {
		fams = append(fams, f)
	}
	help, kinds := m.help, m.kinds
	sort.Strings(fams)
	var n int64
	for _, f := range fams {
		if kinds[f] != "histogram" {
			sort.Strings(lines[f])
		}
		k, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", f, help[f], f, kinds[f])
		n += int64(k)
		if err != nil {
			m.mu.Unlock()
			return n, err
		}
		for _, l := range lines[f] {
			k, err := fmt.Fprintln(w, l)
			n += int64(k)
			if err != nil {
				m.mu.Unlock()
				return n, err
			}
		}
	}
	m.mu.Unlock()
	return n, nil
}

// ServeHTTP serves the metrics (for /metrics).
func (m *Metrics) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	m.WriteTo(w)
}

// histBounds are the upper bounds (seconds) of the latency buckets.
func histBounds() []float64 {
	return []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}
}

// Histogram is a fixed-bucket latency histogram that also keeps up to
// 1<<16 raw samples for exact quantiles in benchmarks.
type Histogram struct {
	bounds  []float64
	mu      sync.Mutex
	counts  []uint64 // len(bounds)+1
	sum     float64
	n       uint64
	samples []float64
}

func newHistogram() *Histogram {
	b := histBounds()
	return &Histogram{bounds: b, counts: make([]uint64, len(b)+1)}
}

// Observe records one value.
func (h *Histogram) Observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v)
	h.mu.Lock()
	h.counts[i]++
	h.sum += v
	h.n++
	if len(h.samples) < 1<<16 {
		h.samples = append(h.samples, v)
	}
	h.mu.Unlock()
}

// Quantile returns the q-quantile (0..1) of the kept samples, NaN if none.
func (h *Histogram) Quantile(q float64) float64 {
	h.mu.Lock()
	s := append([]float64(nil), h.samples...)
	h.mu.Unlock()
	if len(s) == 0 {
		return math.NaN()
	}
	sort.Float64s(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	i = max(0, min(i, len(s)-1))
	return s[i]
}

// Count is the number of observations.
func (h *Histogram) Count() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

func (h *Histogram) lines(f string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i]
		out = append(out, fmt.Sprintf("%s_bucket{le=\"%g\"} %d", f, b, cum))
	}
	cum += h.counts[len(h.bounds)]
	out = append(out, fmt.Sprintf("%s_bucket{le=\"+Inf\"} %d", f, cum))
	out = append(out, fmt.Sprintf("%s_sum %g", f, h.sum))
	out = append(out, fmt.Sprintf("%s_count %d", f, h.n))
	return out
}

// Metric families the pipeline records.
const (
	metricJobs       = "kdtriage_jobs_total"
	metricReports    = "kdtriage_reports_published_total"
	metricInFlight   = "kdtriage_jobs_in_flight"
	metricAnalysis   = "kdtriage_analysis_seconds"
	metricLatency    = "kdtriage_submit_to_report_seconds"
	metricSpooled    = "kdtriage_spooled_bytes_total"
	metricSubmitted  = "kdtriage_submitted_total"
	metricUploaded   = "kdtriage_uploaded_bytes_total"
	metricDeadLetter = "kdtriage_dead_letters_total"
	metricFeed       = "kdtriage_feed_reports_total"
	metricRuleReload = "kdtriage_rule_reloads_total"

	metricQueuePending     = "kdtriage_queue_pending"
	metricQueueAckPending  = "kdtriage_queue_ack_pending"
	metricQueueRedelivered = "kdtriage_queue_redelivered"
	metricDeadLetterStored = "kdtriage_dead_letter_messages"
)

// MetricLatency is the histogram of submit-to-report latency in seconds.
const MetricLatency = metricLatency

func since(t time.Time) float64 { return time.Since(t).Seconds() }
