package workers

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestLeastPrivilege runs the pipeline with the documented permissions
// (configs/deploy/nats-server.conf): an endpoint can submit but not read,
// a worker can analyse and report, a feed can read reports but not submit.
func TestLeastPrivilege(t *testing.T) {
	files := synthKernel(t, 1)
	conf := filepath.Join("..", "configs", "deploy", "nats-server.conf")
	if _, err := os.Stat(conf); err != nil {
		t.Fatalf("sample permissions: %v", err)
	}
	s, err := StartServer(ServerOptions{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", ConfigFile: conf, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	url := "nats://" + s.Addr().String()
	ctx := context.Background()
	conn := func(user, pass string) (*nats.Conn, jetstream.JetStream) {
		t.Helper()
		nc, err := Connect(ConnectOptions{URL: url, User: user, Password: pass, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		t.Cleanup(nc.Close)
		js, _ := jetstream.New(nc, jetstream.WithDefaultTimeout(2*time.Second))
		return nc, js
	}
	_, admin := conn("kdtriage", "change-me-admin")
	if err := Setup(ctx, admin, Config{}); err != nil {
		t.Fatal(err)
	}

	// Endpoint: submits.
	_, ep := conn("endpoint", "change-me-endpoint")
	sub, err := NewSubmitter(ctx, ep, SubmitOptions{})
	if err != nil {
		t.Fatalf("endpoint binds the object store: %v", err)
	}
	res, err := sub.Submit(ctx, files[0], Meta{Host: "ep"})
	if err != nil || !res.Uploaded {
		t.Fatalf("endpoint submit: %+v %v", res, err)
	}
	if res2, err := sub.Submit(ctx, files[0], Meta{Host: "ep"}); err != nil || res2.Uploaded {
		t.Fatalf("endpoint resubmit: %+v %v", res2, err)
	}
	// ... but cannot read dumps, reports, state, or queue reprocessing
	// (denied requests end in a timeout: keep it short).
	denied, dcancel := context.WithTimeout(ctx, 3*time.Second)
	defer dcancel()
	if _, err := sub.obs.GetBytes(denied, res.SHA256); err == nil {
		t.Error("endpoint read dump bytes")
	}
	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		t.Cleanup(cancel)
		return c
	}
	if _, err := ep.CreateOrUpdateConsumer(short(), ReportStream, jetstream.ConsumerConfig{Durable: "spy"}); err == nil {
		t.Error("endpoint created a REPORTS consumer")
	}
	if _, err := ep.KeyValue(short(), StateBucket); err == nil {
		t.Error("endpoint bound the state bucket")
	}
	if _, err := sub.Reprocess(short(), []string{res.SHA256}, true); err == nil {
		t.Error("endpoint queued reprocessing")
	}

	// Worker: analyses with its own rights only.
	_, wjs := conn("worker", "change-me-worker")
	as, err := OpenAssets(ctx, wjs)
	if err != nil {
		t.Fatalf("worker binds assets: %v", err)
	}
	m := NewMetrics()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		pool, err := NewPool(rctx, as, PoolOptions{Slots: 1, Analyzer: triageAnalyzer(t, ""), SpoolDir: t.TempDir(), Metrics: m, Log: testLog(t), FetchWait: time.Second})
		if err != nil {
			done <- err
			return
		}
		done <- pool.Run(rctx)
	}()
	waitFor(t, 30*time.Second, "the worker's report", func() bool {
		return m.Counter(metricReports, `status="ok"`) == 1 || m.Counter(metricJobs, `outcome="retry"`) > 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m.Counter(metricReports, `status="ok"`) != 1 {
		t.Fatalf("worker could not analyse: %v", m)
	}

	// Feed: reads reports.
	_, fjs := conn("feed", "change-me-feed")
	var buf bytes.Buffer
	if err := RunFeed(ctx, fjs, FeedOptions{Durable: "tickets", FromStart: true, Idle: 500 * time.Millisecond}, NDJSON(&buf)); err != nil {
		t.Fatalf("feed: %v", err)
	}
	if !bytes.Contains(buf.Bytes(), []byte(res.SHA256)) {
		t.Errorf("feed did not get the report: %q", buf.String())
	}
	if _, err := fjs.Publish(short(), subjectNewJob+res.SHA256, []byte("{}")); err == nil {
		t.Error("feed published a job")
	}
}
