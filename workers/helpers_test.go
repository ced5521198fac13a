package workers

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/kdtriage/kdtriage/kdump/kdumptest"
)

// synthArches and synthDrivers are cycled through by synthKernel so that
// its dumps cover every triage architecture and fall into several buckets.
var (
	synthArches  = []kdumptest.Arch{kdumptest.AMD64, kdumptest.ARM64, kdumptest.X86, kdumptest.ARM}
	synthDrivers = []string{"amdppm.sys", "netfoo.sys", "stor9.sys"}
)

// synthKernel writes n distinct small synthetic kernel triage dumps (built
// by kdumptest, so they need no corpus) to a temp dir and returns their
// paths. Dump i is of architecture synthArches[i%4], faults in the driver
// synthDrivers[i%3] and differs from every other in the time stamp of its
// second module, so each has its own SHA-256.
func synthKernel(t testing.TB, n int) []string {
	t.Helper()
	dir := t.TempDir()
	paths := make([]string, n)
	for i := range n {
		a := synthArches[i%len(synthArches)]
		mods := kdumptest.DefaultModules(a)
		mods[1].TimeDateStamp = 0x60000000 + uint32(i)
		last := &mods[len(mods)-1] // the faulting driver by default
		last.Name = synthDrivers[i%len(synthDrivers)]
		last.Path = `\SystemRoot\System32\drivers\` + last.Name
		paths[i] = filepath.Join(dir, fmt.Sprintf("synth-%s-%05d.dmp", a, i))
		if _, err := kdumptest.BuildFile(paths[i], kdumptest.Spec{Arch: a, Kind: kdumptest.Triage, Modules: mods}); err != nil {
			t.Fatal(err)
		}
	}
	return paths
}

// corpusKernel returns the corpus's kernel dumps or skips the test.
func corpusKernel(t testing.TB) []string {
	t.Helper()
	dir := os.Getenv("KDTRIAGE_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "corpus")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "kernel", "*.dmp"))
	if len(files) == 0 {
		t.Skipf("corpus not found at %s (set KDTRIAGE_CORPUS): skipping corpus test", dir)
	}
	return files
}

// env is a running pipeline on an in-process server with a temp store.
type env struct {
	t       testing.TB
	srv     *server.Server
	nc      *nats.Conn
	js      jetstream.JetStream
	as      *Assets
	sub     *Submitter
	metrics *Metrics
	cfg     Config
	cancel  context.CancelFunc
	done    chan error
}

func testLog(t testing.TB) zerolog.Logger {
	if os.Getenv("KDTRIAGE_TEST_LOG") != "" {
		return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.DebugLevel)
	}
	return zerolog.Nop()
}

// startServer starts an embedded server on a temp store dir.
func startServer(t testing.TB, dir, listen string) *server.Server {
	t.Helper()
	s, err := StartServer(ServerOptions{StoreDir: dir, Listen: listen, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// newEnv sets up the assets and runs o's components (Setup forced on).
func newEnv(t testing.TB, o RunOptions) *env {
	t.Helper()
	s := startServer(t, t.TempDir(), "")
	nc, err := ConnectEmbedded(s, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if err := Setup(ctx, js, o.Config); err != nil {
		t.Fatal(err)
	}
	as, err := OpenAssets(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := NewSubmitter(ctx, js, SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	o.Log = testLog(t)
	if o.SpoolDir == "" {
		o.SpoolDir = t.TempDir()
	}
	e := &env{t: t, srv: s, nc: nc, js: js, as: as, sub: sub, metrics: o.Metrics, cfg: o.Config, done: make(chan error, 1)}
	rctx, cancel := context.WithCancel(ctx)
	e.cancel = cancel
	ready := make(chan struct{})
	o.Ready = func(string) { close(ready) }
	go func() { e.done <- Run(rctx, nc, o) }()
	select {
	case <-ready:
	case err := <-e.done:
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(e.stop)
	return e
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		e.t.Error("Run did not drain within 30s")
	}
}

// reports returns every report in REPORTS.
func (e *env) reports() []*FeedReport {
	e.t.Helper()
	ctx := context.Background()
	cons, err := e.js.OrderedConsumer(ctx, ReportStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		e.t.Fatal(err)
	}
	st, err := e.js.Stream(ctx, ReportStream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*FeedReport
	for uint64(len(out)) < info.State.Msgs {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			e.t.Fatalf("reading reports: %v (%d of %d)", err, len(out), info.State.Msgs)
		}
		md, _ := msg.Metadata()
		r := &FeedReport{Seq: md.Sequence.Stream, Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()}
		if err := json.Unmarshal(r.Data, &r.Envelope); err != nil {
			e.t.Fatalf("report %d: %v", r.Seq, err)
		}
		out = append(out, r)
	}
	return out
}

// streamMsgs returns the message count of a stream.
func (e *env) streamMsgs(name string) uint64 {
	e.t.Helper()
	st, err := e.js.Stream(context.Background(), name)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Msgs
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// submitAll submits files concurrently (4 at a time).
func (e *env) submitAll(files []string, meta Meta) []*SubmitResult {
	e.t.Helper()
	out := make([]*SubmitResult, len(files))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	errs := make(chan error, len(files))
	for i, f := range files {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r, err := e.sub.Submit(context.Background(), f, meta)
			if err != nil {
				errs <- err
				return
			}
			out[i] = r
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		e.t.Fatal(err)
	}
	return out
}

// bySHA counts reports per dump.
func bySHA(reps []*FeedReport) map[string][]*FeedReport {
	m := map[string][]*FeedReport{}
	for _, r := range reps {
		m[r.Envelope.Dump.SHA256] = append(m[r.Envelope.Dump.SHA256], r)
	}
	return m
}
