package workers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"
)

// benchDump returns the smallest kernel dump of the corpus (286 KB, the
// size the documented figures are for) or, without the corpus, a 39 KB
// synthetic x64 triage dump, so the benchmarks always run.
func benchDump(b *testing.B) []byte {
	b.Helper()
	dir := os.Getenv("KDTRIAGE_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "corpus")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "kernel", "*.dmp"))
	if len(files) == 0 {
		b.Logf("corpus not found at %s: benchmarking a synthetic 39 KB dump instead", dir)
		files = synthKernel(b, 1)
	}
	sort.Slice(files, func(i, j int) bool {
		a, _ := os.Stat(files[i])
		b, _ := os.Stat(files[j])
		return a.Size() < b.Size() || a.Size() == b.Size() && files[i] < files[j]
	})
	data, err := os.ReadFile(files[0])
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// distinctDumps writes n distinct small dumps: the same crash with a
// different trailing tag, so each has its own SHA-256.
func distinctDumps(t testing.TB, base []byte, n int, tag string) []string {
	t.Helper()
	dir := t.TempDir()
	paths := make([]string, n)
	buf := append([]byte(nil), base...)
	for i := range n {
		b := append(buf[:len(base)], fmt.Sprintf("%s-%08d", tag, i)...)
		paths[i] = filepath.Join(dir, fmt.Sprintf("%s-%05d.dmp", tag, i))
		if err := os.WriteFile(paths[i], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return paths
}

// TestLoad1000: 1,000 distinct synthetic submissions with 4 workers: every
// dump has exactly one report.
func TestLoad1000(t *testing.T) {
	if testing.Short() {
		t.Skip("load test skipped in -short mode")
	}
	paths := synthKernel(t, 1000)
	e := newEnv(t, RunOptions{Workers: 4, Analyzer: triageAnalyzer(t, ""), Keeper: true})
	res := e.submitAll(paths, Meta{Host: "load"})
	waitFor(t, 120*time.Second, "1000 reports", func() bool { return e.streamMsgs(ReportStream) >= 1000 })
	time.Sleep(200 * time.Millisecond) // anything extra would show up now
	reps := e.reports()
	got := bySHA(reps)
	if len(reps) != 1000 {
		t.Errorf("%d reports, want 1000", len(reps))
	}
	for _, r := range res {
		if rs := got[r.SHA256]; len(rs) != 1 || rs[0].Envelope.Status != StatusOK {
			t.Errorf("%s: %d reports", r.Path, len(rs))
		}
	}
	if n := e.streamMsgs(JobStream); n != 0 {
		t.Errorf("%d jobs left", n)
	}
}

// benchEnv runs a pipeline with 4 worker slots for a benchmark.
func benchEnv(b *testing.B) *env {
	return newEnv(b, RunOptions{Workers: 4, Analyzer: triageAnalyzer(b, ""), Keeper: true})
}

func reportLatency(b *testing.B, e *env) {
	h := e.metrics.Histogram(metricLatency)
	if h == nil || h.Count() == 0 {
		return
	}
	b.ReportMetric(h.Quantile(0.5)*1000, "p50-ms")
	b.ReportMetric(h.Quantile(0.99)*1000, "p99-ms")
}

// BenchmarkPipelineThroughput: b.N distinct small dumps (286 KB) submitted
// by 4 concurrent submitters as fast as possible through the embedded
// server, 4 worker slots; dumps/s is end to end (first submit to last
// report), latency is submit-to-report.
func BenchmarkPipelineThroughput(b *testing.B) {
	base := benchDump(b)
	paths := distinctDumps(b, base, b.N, fmt.Sprintf("tp%d", b.N))
	e := benchEnv(b)
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	e.submitAll(paths, Meta{Host: "bench"})
	waitFor(b, 10*time.Minute, "reports", func() bool { return e.streamMsgs(ReportStream) >= uint64(b.N) })
	el, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "dumps/s")
	// CPU per dump (server, submitters and workers together): on a busy
	// shared machine the wall-clock rate understates what 2 idle cores do.
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/dump")
	reportLatency(b, e)
}

// BenchmarkPipelineLatencyAt50: dumps submitted at a steady 50 per second;
// reports p50/p99 submit-to-report latency.
func BenchmarkPipelineLatencyAt50(b *testing.B) {
	base := benchDump(b)
	paths := distinctDumps(b, base, b.N, fmt.Sprintf("lat%d", b.N))
	e := benchEnv(b)
	b.ReportAllocs()
	b.ResetTimer()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var wg sync.WaitGroup
	errs := make(chan error, b.N)
	for _, p := range paths {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.sub.Submit(context.Background(), p, Meta{Host: "bench"}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	waitFor(b, 10*time.Minute, "reports", func() bool { return e.streamMsgs(ReportStream) >= uint64(b.N) })
	b.StopTimer()
	reportLatency(b, e)
}
