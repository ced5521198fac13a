package workers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFeedNDJSONAndIdle(t *testing.T) {
	files := synthKernel(t, 4)
	e := newEnv(t, RunOptions{Workers: 2, Analyzer: triageAnalyzer(t, "")})
	e.submitAll(files, Meta{Host: "h"})
	waitFor(t, 30*time.Second, "reports", func() bool { return e.streamMsgs(ReportStream) == 4 })

	var buf bytes.Buffer
	start := time.Now()
	err := RunFeed(context.Background(), e.js, FeedOptions{Durable: "nd", FromStart: true, Idle: 300 * time.Millisecond}, NDJSON(&buf))
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 20*time.Second {
		t.Errorf("idle feed took %v to end", time.Since(start))
	}
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	seen := map[string]bool{}
	for sc.Scan() {
		var env Envelope
		if err := json.Unmarshal(sc.Bytes(), &env); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		seen[env.ReportID] = true
	}
	if len(seen) != 4 {
		t.Errorf("%d distinct reports in NDJSON, want 4", len(seen))
	}
	// The durable resumes: nothing new.
	buf.Reset()
	if err := RunFeed(context.Background(), e.js, FeedOptions{Durable: "nd", Idle: 300 * time.Millisecond}, NDJSON(&buf)); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Errorf("resumed durable delivered again:\n%s", buf.String())
	}
}

// TestWebhook: a ticketing endpoint that fails twice with 503 still gets
// every report, each time with the same Idempotency-Key; a feed handler
// error redelivers later instead of losing the report.
func TestWebhook(t *testing.T) {
	files := synthKernel(t, 3)
	e := newEnv(t, RunOptions{Workers: 1, Analyzer: triageAnalyzer(t, ""), Aggregator: true})
	e.submitAll(files, Meta{Host: "h"})
	waitFor(t, 30*time.Second, "reports", func() bool { return e.streamMsgs(ReportStream) == 3 })

	var mu sync.Mutex
	calls := map[string]int{}
	delivered := map[string]WebhookBody{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		calls[key]++
		if r.Header.Get("Authorization") != "Bearer x" || !strings.HasPrefix(key, "r-") {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if calls[key] <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		var b WebhookBody
		if err := json.Unmarshal(body, &b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		delivered[key] = b
	}))
	defer srv.Close()
	wh := &Webhook{URL: srv.URL, Attempts: 5, Backoff: 10 * time.Millisecond,
		Header: http.Header{"Authorization": {"Bearer x"}}, Aggregates: e.as.Aggregates}
	if err := RunFeed(context.Background(), e.js, FeedOptions{Durable: "tickets", FromStart: true, Idle: 500 * time.Millisecond}, wh.Handle); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(delivered) != 3 {
		t.Fatalf("%d reports delivered, want 3 (calls %v)", len(delivered), calls)
	}
	for key, b := range delivered {
		if calls[key] != 3 {
			t.Errorf("%s: %d calls, want 3", key, calls[key])
		}
		var env Envelope
		if err := json.Unmarshal(b.Report, &env); err != nil || env.ReportID != key {
			t.Errorf("%s: body report id %q (%v)", key, env.ReportID, err)
		}
	}

	// An endpoint that is down longer than the attempts: the handler fails
	// and the report is delivered again later.
	down := &Webhook{URL: "http://127.0.0.1:1/", Attempts: 2, Backoff: time.Millisecond}
	r := &FeedReport{Envelope: Envelope{ReportID: "r-x"}}
	if err := down.Handle(context.Background(), r); err == nil {
		t.Error("webhook to a closed port succeeded")
	}
}

func TestAggregateFold(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var a Aggregate
	reports := []struct {
		seq  uint64
		host string
		at   time.Time
		new  bool
	}{
		{1, "b", t0.Add(time.Hour), true},
		{2, "a", t0, true},
		{2, "a", t0, false}, // redelivery
		{3, "b", t0.Add(2 * time.Hour), true},
	}
	for _, r := range reports {
		e := &Envelope{ReportID: "r", Bucket: "B", Hash: "{h}", Dump: Job{Host: r.host, CollectedAt: r.at}}
		if got := a.Fold(r.seq, e); got != r.new {
			t.Errorf("Fold(%d) = %v", r.seq, got)
		}
	}
	if a.Count != 3 || !a.FirstSeen.Equal(t0) || !a.LastSeen.Equal(t0.Add(2*time.Hour)) || strings.Join(a.Hosts, ",") != "a,b" {
		t.Errorf("aggregate %+v", a)
	}
}

func TestMetricsExposition(t *testing.T) {
	m := NewMetrics()
	m.Add(metricJobs, `outcome="ok"`, "Jobs.", 2)
	m.Add(metricJobs, `outcome="failed"`, "Jobs.", 1)
	m.Gauge(metricInFlight, "", "In flight.", 3)
	m.Observe(metricLatency, "Latency.", 0.02)
	m.Observe(metricLatency, "Latency.", 3)
	var b bytes.Buffer
	if _, err := m.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# TYPE kdtriage_jobs_total counter\n",
		`kdtriage_jobs_total{outcome="ok"} 2` + "\n",
		`kdtriage_jobs_total{outcome="failed"} 1` + "\n",
		"# TYPE kdtriage_jobs_in_flight gauge\nkdtriage_jobs_in_flight 3\n",
		`kdtriage_submit_to_report_seconds_bucket{le="0.025"} 1` + "\n",
		`kdtriage_submit_to_report_seconds_bucket{le="5"} 2` + "\n",
		`kdtriage_submit_to_report_seconds_bucket{le="+Inf"} 2` + "\n",
		"kdtriage_submit_to_report_seconds_count 2\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("exposition lacks %q:\n%s", want, b.String())
		}
	}
	h := m.Histogram(metricLatency)
	if h.Quantile(0.5) != 0.02 || h.Quantile(1) != 3 {
		t.Errorf("quantiles %v %v", h.Quantile(0.5), h.Quantile(1))
	}
}

func TestRateReader(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 100<<10)
	r := NewRateReader(context.Background(), bytes.NewReader(data), 1<<30)
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	// A slow reader gives up when its context ends.
	ctx, cancel := context.WithCancel(context.Background())
	slow := NewRateReader(ctx, bytes.NewReader(data), 1)
	buf := make([]byte, 64<<10)
	if _, err := slow.Read(buf); err != nil { // the initial burst
		t.Fatal(err)
	}
	cancel()
	if _, err := slow.Read(buf); err != context.Canceled {
		t.Errorf("read after cancel: %v", err)
	}
}
