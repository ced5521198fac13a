package workers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kdtriage/kdtriage/kdump/minidump"
	"github.com/kdtriage/kdtriage/kdump/minidump/minidumptest"
	"github.com/kdtriage/kdtriage/triage"
)

func triageAnalyzer(t testing.TB, dir string) *TriageAnalyzer {
	t.Helper()
	a, err := NewTriageAnalyzer(dir, triage.Options{Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestExactlyOnce runs checkExactlyOnce on 12 synthetic dumps (4
// architectures, 3 buckets); it needs no corpus.
func TestExactlyOnce(t *testing.T) { checkExactlyOnce(t, synthKernel(t, 12)) }

// TestCorpusExactlyOnce is the acceptance test: every kernel dump of the
// corpus gives exactly one report. It skips without the corpus.
func TestCorpusExactlyOnce(t *testing.T) { checkExactlyOnce(t, corpusKernel(t)) }

// checkExactlyOnce submits files, expects exactly one report each with the
// analysis's own bucket and hash, headers, metadata and aggregates, then
// submits them all again and expects no new analysis and no new report.
func checkExactlyOnce(t *testing.T, files []string) {
	an := triageAnalyzer(t, "")
	e := newEnv(t, RunOptions{Workers: 2, Analyzer: an, Keeper: true, Aggregator: true})
	meta := Meta{Host: "host-a", Labels: map[string]string{"ring": "canary"}}
	res := e.submitAll(files, meta)
	want := map[string]string{} // sha -> path
	for _, r := range res {
		if !r.Uploaded || r.Duplicate {
			t.Errorf("%s: first submission uploaded=%v duplicate=%v", r.Path, r.Uploaded, r.Duplicate)
		}
		want[r.SHA256] = r.Path
	}
	waitFor(t, 60*time.Second, "one report per dump", func() bool { return e.streamMsgs(ReportStream) >= uint64(len(want)) })
	reps := e.reports()
	got := bySHA(reps)
	for sha, path := range want {
		rs := got[sha]
		if len(rs) != 1 {
			t.Errorf("%s: %d reports, want 1", filepath.Base(path), len(rs))
			continue
		}
		r := rs[0]
		if r.Envelope.Status != StatusOK {
			t.Errorf("%s: status %s (%s)", filepath.Base(path), r.Envelope.Status, r.Envelope.Error)
			continue
		}
		// The envelope must carry what the analyzer computes on its own.
		direct, err := an.Analyze(context.Background(), path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Envelope.Bucket != direct.Bucket || r.Envelope.Hash != direct.Hash {
			t.Errorf("%s: report bucket %q %s, direct analysis %q %s", filepath.Base(path), r.Envelope.Bucket, r.Envelope.Hash, direct.Bucket, direct.Hash)
		}
		if r.Subject != ReportSubject(direct.Hash) {
			t.Errorf("%s: subject %s", filepath.Base(path), r.Subject)
		}
		for h, v := range map[string]string{HeaderBucket: direct.Bucket, HeaderHash: direct.Hash, HeaderSeverity: direct.Severity,
			HeaderOwner: direct.Owner, HeaderDump: sha, HeaderRuleSet: an.RuleSetHash(), nats.MsgIdHdr: r.Envelope.ReportID} {
			if got := r.Header.Get(h); got != v {
				t.Errorf("%s: header %s = %q, want %q", filepath.Base(path), h, got, v)
			}
		}
		if r.Envelope.Dump.Host != "host-a" || r.Envelope.Dump.Labels["ring"] != "canary" || r.Envelope.Dump.Path == "" {
			t.Errorf("%s: metadata lost: %+v", filepath.Base(path), r.Envelope.Dump)
		}
		var rep struct {
			Bucket string `json:"failure_bucket_id"`
		}
		if err := json.Unmarshal(r.Envelope.Report, &rep); err != nil || rep.Bucket != direct.Bucket {
			t.Errorf("%s: embedded report bucket %q (%v)", filepath.Base(path), rep.Bucket, err)
		}
	}
	if n := e.streamMsgs(JobStream); n != 0 {
		t.Errorf("DUMPS holds %d jobs after processing, want 0", n)
	}
	okJobs := e.metrics.Counter(metricJobs, `outcome="ok"`)

	// Again: nothing is uploaded, the jobs are dropped or skipped.
	res = e.submitAll(files, meta)
	for _, r := range res {
		if r.Uploaded {
			t.Errorf("%s: uploaded again", r.Path)
		}
	}
	// Re-publish past the duplicate window too (a job the server does not
	// drop): the worker must skip it by state.
	for sha := range want {
		j := &Job{SHA256: sha, SubmittedAt: time.Now()}
		m, _ := j.msg()
		m.Header.Set(nats.MsgIdHdr, "later-"+sha)
		if _, err := e.js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "resubmissions to drain", func() bool { return e.streamMsgs(JobStream) == 0 })
	if n := e.metrics.Counter(metricJobs, `outcome="ok"`); n != okJobs {
		t.Errorf("resubmission analysed %d dumps again", n-okJobs)
	}
	if n := e.metrics.Counter(metricJobs, `outcome="skipped"`); n < uint64(len(want)) {
		t.Errorf("%d jobs skipped, want at least %d", n, len(want))
	}
	if n := e.streamMsgs(ReportStream); n != uint64(len(want)) {
		t.Errorf("%d reports after resubmission, want %d", n, len(want))
	}

	// Aggregates: one per bucket, counts add up to the dumps.
	waitFor(t, 30*time.Second, "aggregates", func() bool {
		return e.metrics.Counter(metricFeed, `feed="`+AggregatorConsumer+`"`) >= uint64(len(want))
	})
	perBucket := map[string]int{}
	for _, r := range reps {
		perBucket[HashToken(r.Envelope.Hash)]++
	}
	for key, n := range perBucket {
		ent, err := e.as.Aggregates.Get(context.Background(), key)
		if err != nil {
			t.Fatalf("aggregate %s: %v", key, err)
		}
		var a Aggregate
		if err := json.Unmarshal(ent.Value(), &a); err != nil {
			t.Fatal(err)
		}
		if a.Count != uint64(n) || len(a.Hosts) != 1 || a.Hosts[0] != "host-a" || a.FirstSeen.After(a.LastSeen) {
			t.Errorf("aggregate %s: %+v, want count %d", key, a, n)
		}
	}
}

// TestPoisonDumps: malformed inputs end as failure reports and dead
// letters; good dumps submitted around them are still analysed.
func TestPoisonDumps(t *testing.T) {
	files := synthKernel(t, 1)
	dir := t.TempDir()
	good := files[0]
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	poison := map[string][]byte{
		"empty.dmp":     {},
		"zeroed.dmp":    make([]byte, 8192),
		"text.dmp":      []byte("this is not a crash dump\n"),
		"truncated.dmp": data[:0x1100],
	}
	var paths []string
	for name, b := range poison {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	e := newEnv(t, RunOptions{Workers: 2, Analyzer: triageAnalyzer(t, ""), Keeper: true})
	e.submitAll(append(paths, good), Meta{Host: "h"})
	waitFor(t, 30*time.Second, "reports", func() bool { return e.streamMsgs(ReportStream) >= 5 })
	got := bySHA(e.reports())
	for _, p := range paths {
		sha, _, _ := HashFile(p)
		rs := got[sha]
		if len(rs) != 1 {
			t.Errorf("%s: %d reports, want 1", filepath.Base(p), len(rs))
			continue
		}
		env := rs[0].Envelope
		if env.Status != StatusFailed || !env.Permanent || !strings.HasPrefix(env.Bucket, "KDTRIAGE_") || env.Error == "" {
			t.Errorf("%s: %+v", filepath.Base(p), env)
		}
		if rs[0].Header.Get(HeaderStatus) != StatusFailed {
			t.Errorf("%s: status header %q", filepath.Base(p), rs[0].Header.Get(HeaderStatus))
		}
	}
	sha, _, _ := HashFile(good)
	if rs := got[sha]; len(rs) != 1 || rs[0].Envelope.Status != StatusOK {
		t.Errorf("good dump: %d reports", len(rs))
	}
	// Each poison job has a dead-letter copy plus a termination advisory.
	ctx := context.Background()
	dl, err := e.js.Stream(ctx, DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		sha, _, _ := HashFile(p)
		m, err := dl.GetLastMsgForSubject(ctx, subjectDeadLetter+sha)
		if err != nil {
			t.Errorf("%s: no dead letter: %v", filepath.Base(p), err)
			continue
		}
		if m.Header.Get(HeaderReason) == "" {
			t.Errorf("%s: dead letter without reason", filepath.Base(p))
		}
	}
	waitFor(t, 10*time.Second, "termination advisories", func() bool {
		info, err := dl.Info(ctx, jetstream.WithSubjectFilter(advisoryTerminated))
		return err == nil && len(info.State.Subjects) > 0
	})
	if n := e.streamMsgs(JobStream); n != 0 {
		t.Errorf("%d jobs left in DUMPS", n)
	}
}

// flakyAnalyzer fails transiently the first n times per dump.
type flakyAnalyzer struct {
	Analyzer
	n     int32
	calls atomic.Int32
}

func (f *flakyAnalyzer) Analyze(ctx context.Context, path string, job *Job) (*Result, error) {
	if f.calls.Add(1) <= f.n {
		return nil, fmt.Errorf("simulated: %w", os.ErrDeadlineExceeded)
	}
	return f.Analyzer.Analyze(ctx, path, job)
}

func TestTransientRetry(t *testing.T) {
	files := synthKernel(t, 1)
	fa := &flakyAnalyzer{Analyzer: triageAnalyzer(t, ""), n: 2}
	e := newEnv(t, RunOptions{Workers: 1, Analyzer: fa, Config: Config{MaxDeliver: 5}})
	e.submitAll(files[:1], Meta{})
	waitFor(t, 30*time.Second, "report", func() bool { return e.streamMsgs(ReportStream) == 1 })
	r := e.reports()[0]
	if r.Envelope.Status != StatusOK || r.Envelope.Deliveries != 3 {
		t.Errorf("status %s after %d deliveries, want ok after 3", r.Envelope.Status, r.Envelope.Deliveries)
	}
	if n := e.metrics.Counter(metricJobs, `outcome="retry"`); n != 2 {
		t.Errorf("%d retries, want 2", n)
	}
}

// TestTransientExhausted: a job that keeps failing transiently becomes a
// dead letter with a failure report on its last delivery.
func TestTransientExhausted(t *testing.T) {
	files := synthKernel(t, 1)
	fa := &flakyAnalyzer{Analyzer: triageAnalyzer(t, ""), n: 1000}
	e := newEnv(t, RunOptions{Workers: 1, Analyzer: fa, Config: Config{MaxDeliver: 2}})
	e.submitAll(files[:1], Meta{})
	waitFor(t, 30*time.Second, "failure report", func() bool { return e.streamMsgs(ReportStream) == 1 })
	r := e.reports()[0]
	if r.Envelope.Status != StatusFailed || r.Envelope.Bucket != "KDTRIAGE_MAX_DELIVERIES" {
		t.Errorf("got %s %s", r.Envelope.Status, r.Envelope.Bucket)
	}
	waitFor(t, 10*time.Second, "empty DUMPS", func() bool { return e.streamMsgs(JobStream) == 0 })
}

// TestKeeperMaxDeliveries: a job whose workers all die (it is fetched and
// never answered) is caught by the MaxDeliver advisory and turned into a
// failure report and a dead letter by the keeper; DUMPS is emptied.
func TestKeeperMaxDeliveries(t *testing.T) {
	files := synthKernel(t, 1)
	cfg := Config{MaxDeliver: 2, AckWait: 300 * time.Millisecond}
	e := newEnv(t, RunOptions{Keeper: true, Config: cfg})
	res := e.submitAll(files[:1], Meta{Host: "dying"})
	ctx := context.Background()
	cons, err := e.js.Consumer(ctx, JobStream, WorkerConsumer)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // two "workers" take the job and die
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("delivery %d: %v", i+1, err)
		}
		md, _ := msg.Metadata()
		if md.NumDelivered != uint64(i+1) {
			t.Fatalf("delivery %d has count %d", i+1, md.NumDelivered)
		}
	}
	// Live workers keep pulling; the server checks redeliveries (and
	// notices the exhausted job) while a pull request waits.
	waitFor(t, 30*time.Second, "failure report", func() bool {
		if msg, _ := next(ctx, cons, 200*time.Millisecond); msg != nil {
			t.Fatalf("job delivered beyond MaxDeliver")
		}
		return e.streamMsgs(ReportStream) == 1
	})
	r := e.reports()[0]
	if r.Envelope.Status != StatusFailed || r.Envelope.Bucket != "KDTRIAGE_MAX_DELIVERIES" || r.Envelope.Dump.SHA256 != res[0].SHA256 ||
		r.Envelope.Dump.Host != "dying" {
		t.Errorf("failure report: %+v", r.Envelope)
	}
	waitFor(t, 10*time.Second, "empty DUMPS", func() bool { return e.streamMsgs(JobStream) == 0 })
	dl, _ := e.js.Stream(ctx, DeadLetterStream)
	if _, err := dl.GetLastMsgForSubject(ctx, subjectDeadLetter+res[0].SHA256); err != nil {
		t.Errorf("no dead letter: %v", err)
	}
}

// TestRuleReloadAndReprocess: a rule change is picked up by the watcher,
// and reprocessing publishes superseding reports under the new rule set.
func TestRuleReloadAndReprocess(t *testing.T) {
	files := synthKernel(t, 3)
	rdir := t.TempDir()
	rule := func(owner string) {
		y := fmt.Sprintf("version: 1\nowners:\n  nt: %s\n", owner)
		if err := os.WriteFile(filepath.Join(rdir, "team.yaml"), []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rule("Team_A")
	an := triageAnalyzer(t, rdir)
	e := newEnv(t, RunOptions{Workers: 2, Analyzer: an, RulesDir: rdir})
	e.submitAll(files, Meta{Host: "h1"})
	waitFor(t, 30*time.Second, "reports", func() bool { return e.streamMsgs(ReportStream) == 3 })
	h1 := an.RuleSetHash()
	rule("Team_B")
	waitFor(t, 10*time.Second, "rule reload", func() bool { return an.RuleSetHash() != h1 })
	h2 := an.RuleSetHash()

	// Reprocessing with unchanged rules after this is a no-op; with the
	// new rules it supersedes every report.
	n, err := e.sub.Reprocess(context.Background(), nil, false)
	if err != nil || n != 3 {
		t.Fatalf("Reprocess: %d, %v", n, err)
	}
	waitFor(t, 30*time.Second, "superseding reports", func() bool { return e.streamMsgs(ReportStream) == 6 })
	reps := e.reports()
	first := map[string]string{}
	for _, r := range reps[:3] {
		first[r.Envelope.Dump.SHA256] = r.Envelope.ReportID
		if r.Envelope.RuleSetHash != h1 {
			t.Errorf("first report rule set %s, want %s", r.Envelope.RuleSetHash, h1)
		}
	}
	for _, r := range reps[3:] {
		env := r.Envelope
		if env.RuleSetHash != h2 || r.Header.Get(HeaderRuleSet) != h2 {
			t.Errorf("reprocessed rule set %s, want %s", env.RuleSetHash, h2)
		}
		if env.Supersedes == "" || env.Supersedes != first[env.Dump.SHA256] || env.ReportID == env.Supersedes {
			t.Errorf("supersedes %q, first report %q", env.Supersedes, first[env.Dump.SHA256])
		}
		if env.Dump.Host != "h1" || !env.Dump.Reprocess {
			t.Errorf("reprocessed dump metadata %+v", env.Dump)
		}
	}
	before := e.metrics.Counter(metricJobs, `outcome="ok"`)
	if _, err := e.sub.Reprocess(context.Background(), nil, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "no-op reprocess", func() bool { return e.streamMsgs(JobStream) == 0 })
	if after := e.metrics.Counter(metricJobs, `outcome="ok"`); after != before || e.streamMsgs(ReportStream) != 6 {
		t.Errorf("reprocess with unchanged rules analysed %d dumps", after-before)
	}
}

// TestDigestMismatch: bytes stored under the wrong SHA-256 are refused.
func TestDigestMismatch(t *testing.T) {
	e := newEnv(t, RunOptions{Workers: 1, Analyzer: triageAnalyzer(t, "")})
	ctx := context.Background()
	sha := strings.Repeat("ab", 32)
	if _, err := e.as.Dumps.PutBytes(ctx, sha, []byte("forged bytes")); err != nil {
		t.Fatal(err)
	}
	j := &Job{SHA256: sha, Size: 12, SubmittedAt: time.Now()}
	m, _ := j.msg()
	if _, err := e.js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "failure report", func() bool { return e.streamMsgs(ReportStream) == 1 })
	if r := e.reports()[0]; r.Envelope.Bucket != "KDTRIAGE_DIGEST_MISMATCH" {
		t.Errorf("bucket %s", r.Envelope.Bucket)
	}
}

// TestBadJob: a job that is not JSON is dead-lettered, not retried.
func TestBadJob(t *testing.T) {
	e := newEnv(t, RunOptions{Workers: 1, Analyzer: triageAnalyzer(t, "")})
	ctx := context.Background()
	if _, err := e.js.Publish(ctx, subjectNewJob+"x", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "dead letter", func() bool { return e.streamMsgs(JobStream) == 0 })
	dl, _ := e.js.Stream(ctx, DeadLetterStream)
	m, err := dl.GetLastMsgForSubject(ctx, subjectDeadLetter+"unknown")
	if err != nil || !bytes.Equal(m.Data, []byte("{not json")) {
		t.Errorf("dead letter: %v", err)
	}
}

func TestDrainFinishesJobInFlight(t *testing.T) {
	files := synthKernel(t, 1)
	slow := &slowAnalyzer{Analyzer: triageAnalyzer(t, ""), d: 500 * time.Millisecond, started: make(chan struct{}, 1)}
	e := newEnv(t, RunOptions{Workers: 1, Analyzer: slow})
	e.submitAll(files[:1], Meta{})
	<-slow.started
	e.stop() // cancel while the job runs: it must finish and be acked
	if n := e.streamMsgs(ReportStream); n != 1 {
		t.Errorf("%d reports after drain, want 1", n)
	}
	if n := e.streamMsgs(JobStream); n != 0 {
		t.Errorf("%d jobs left after drain, want 0", n)
	}
}

type slowAnalyzer struct {
	Analyzer
	d       time.Duration
	started chan struct{}
}

func (s *slowAnalyzer) Analyze(ctx context.Context, path string, job *Job) (*Result, error) {
	select {
	case s.started <- struct{}{}:
	default:
	}
	time.Sleep(s.d)
	return s.Analyzer.Analyze(ctx, path, job)
}

func TestClassification(t *testing.T) {
	tests := []struct {
		err       error
		permanent bool
	}{
		{errors.New("disk on fire"), false},
		{nats.ErrTimeout, false},
		{context.DeadlineExceeded, false},
		{Permanent(errors.New("x")), true},
		{fmt.Errorf("open: %w", errDigestMismatch), false},
		{Permanent(fmt.Errorf("open: %w", errDigestMismatch)), true},
	}
	for _, tc := range tests {
		if got := IsPermanent(tc.err); got != tc.permanent {
			t.Errorf("IsPermanent(%v) = %v", tc.err, got)
		}
		if got := IsTransient(tc.err); got == tc.permanent {
			t.Errorf("IsTransient(%v) = %v", tc.err, got)
		}
	}
}

// TestRetention: dump bytes leave the object store after the configured
// retention; reports and state stay.
func TestRetention(t *testing.T) {
	files := synthKernel(t, 1)
	e := newEnv(t, RunOptions{Workers: 1, Analyzer: triageAnalyzer(t, ""), Config: Config{Retention: 2 * time.Second}})
	res := e.submitAll(files[:1], Meta{})
	waitFor(t, 30*time.Second, "report", func() bool { return e.streamMsgs(ReportStream) == 1 })
	ctx := context.Background()
	waitFor(t, 30*time.Second, "retention", func() bool {
		_, err := e.as.Dumps.GetInfo(ctx, res[0].SHA256)
		return errors.Is(err, jetstream.ErrObjectNotFound)
	})
	if st, err := getState(ctx, e.as.State, res[0].SHA256); err != nil || st == nil || st.Status != StatusOK {
		t.Errorf("state after retention: %+v %v", st, err)
	}
	if n := e.streamMsgs(ReportStream); n != 1 {
		t.Errorf("%d reports after retention", n)
	}
}

// TestResubmitAfterTransientFailure: a dump that was dead-lettered for a
// transient reason is analysed again when it is submitted again; one that
// failed permanently is not.
func TestResubmitAfterTransientFailure(t *testing.T) {
	files := synthKernel(t, 1)
	fa := &flakyAnalyzer{Analyzer: triageAnalyzer(t, ""), n: 1}
	e := newEnv(t, RunOptions{Workers: 1, Analyzer: fa, Config: Config{MaxDeliver: 1}})
	res := e.submitAll(files[:1], Meta{})
	waitFor(t, 30*time.Second, "failure report", func() bool { return e.streamMsgs(ReportStream) == 1 })
	// Past the duplicate window: a new job for the same dump.
	j := &Job{SHA256: res[0].SHA256, Size: res[0].Size, SubmittedAt: time.Now()}
	m, _ := j.msg()
	m.Header.Set(nats.MsgIdHdr, "again")
	if _, err := e.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "second report", func() bool { return e.streamMsgs(ReportStream) == 2 })
	reps := e.reports()
	if reps[0].Envelope.Status != StatusFailed || reps[0].Envelope.Permanent || reps[1].Envelope.Status != StatusOK {
		t.Errorf("reports: %s/%v then %s", reps[0].Envelope.Status, reps[0].Envelope.Permanent, reps[1].Envelope.Status)
	}
}

// TestUserModeDumps runs checkUserModeDumps on synthetic user-mode
// minidumps (x86, two of them x64); it needs no corpus.
func TestUserModeDumps(t *testing.T) {
	for _, r := range checkUserModeDumps(t, synthUser(t, 4)) {
		// Every synthetic dump (x86 and x64) writes to NULL from App.exe.
		if want := "NULL_POINTER_WRITE_c0000005_App.exe!Unknown"; r.Envelope.Bucket != want {
			t.Errorf("%s: bucket %q, want %q", r.Envelope.Dump.Name, r.Envelope.Bucket, want)
		}
	}
}

// TestCorpusUserModeDumps runs checkUserModeDumps on the corpus's
// user-mode dumps; it skips without the corpus.
func TestCorpusUserModeDumps(t *testing.T) {
	dir := os.Getenv("KDTRIAGE_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "corpus")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "user", "*.dmp"))
	if len(files) == 0 {
		t.Skipf("corpus user-mode dumps not found at %s (set KDTRIAGE_CORPUS)", dir)
	}
	if len(files) > 6 {
		files = files[:6]
	}
	checkUserModeDumps(t, files)
}

// synthUser writes n distinct synthetic user-mode minidumps: an access
// violation in App.exe, x86 for even i and x64 for odd i, the module time
// stamp varying with i.
func synthUser(t *testing.T, n int) []string {
	t.Helper()
	dir := t.TempDir()
	paths := make([]string, n)
	for i := range n {
		// ArchX86 is 0, the builder's "unset": Platform makes it explicit.
		b := &minidumptest.Builder{Arch: minidump.ArchX86, Platform: minidump.PlatformWinNT, Major: 10, Build: 19045,
			Modules: []minidumptest.Module{{Path: `C:\app\App.exe`, Base: 0x400000, Size: 0x10000, TimeDateStamp: 0x5F000000 + uint32(i)}}}
		ctx := minidumptest.X86Context(0x401000, 0x12F010, 0x12F020)
		if i%2 == 1 {
			b.Arch = minidump.ArchAMD64
			ctx = minidumptest.X64Context(0x401000, 0x12F010, 0x12F020)
		}
		b.Threads = []minidumptest.Thread{{ID: 9, StackStart: 0x12F000, Stack: make([]byte, 0x100), Context: ctx}}
		b.Exception = &minidumptest.Exception{ThreadID: 9, Code: 0xC0000005, Address: 0x401000, Information: []uint64{1, 0}, Context: ctx}
		paths[i] = filepath.Join(dir, fmt.Sprintf("user-%02d.dmp", i))
		if err := os.WriteFile(paths[i], b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return paths
}

// checkUserModeDumps: user-mode minidumps go through the same pipeline: a
// report each, analysed or, while the analysis does not support them, a
// permanent UNSUPPORTED_DUMP failure report; never a retry loop.
func checkUserModeDumps(t *testing.T, files []string) []*FeedReport {
	e := newEnv(t, RunOptions{Workers: 2, Analyzer: triageAnalyzer(t, "")})
	e.submitAll(files, Meta{})
	waitFor(t, 30*time.Second, "reports", func() bool { return e.streamMsgs(ReportStream) >= uint64(len(files)) })
	reps := e.reports()
	if len(reps) != len(files) {
		t.Errorf("%d reports for %d dumps", len(reps), len(files))
	}
	for _, r := range reps {
		env := r.Envelope
		if env.Status == StatusFailed && (!env.Permanent || env.Bucket != "KDTRIAGE_UNSUPPORTED_DUMP" && env.Bucket != "KDTRIAGE_CORRUPT_DUMP") {
			t.Errorf("%s: %s %s (%s)", env.Dump.Name, env.Status, env.Bucket, env.Error)
		}
		if env.Status == StatusOK && (env.Bucket == "" || env.Hash == "") {
			t.Errorf("%s: ok without bucket", env.Dump.Name)
		}
		t.Logf("%s: %s %s", env.Dump.Name, env.Status, env.Bucket)
	}
	if n := e.metrics.Counter(metricJobs, `outcome="retry"`); n != 0 {
		t.Errorf("%d retries", n)
	}
	return reps
}

// TestReportStreamDownOnLastDelivery: a permanent failure on the last
// delivery while REPORTS cannot be written must hand the job back and free
// the slot (it used to recurse between fail and retry for as long as the
// publish failed, and the pool never drained).
func TestReportStreamDownOnLastDelivery(t *testing.T) {
	dir := t.TempDir()
	poison := filepath.Join(dir, "text.dmp")
	if err := os.WriteFile(poison, []byte("this is not a crash dump\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, RunOptions{Workers: 1, Analyzer: triageAnalyzer(t, ""), Config: Config{MaxDeliver: 1}})
	ctx := context.Background()
	if err := e.js.DeleteStream(ctx, ReportStream); err != nil {
		t.Fatal(err)
	}
	e.submitAll([]string{poison}, Meta{})
	waitFor(t, 30*time.Second, "the failed report attempt", func() bool {
		return e.metrics.Counter(metricJobs, `outcome="retry"`) >= 1
	})
	time.Sleep(300 * time.Millisecond)
	cancel, done := e.cancel, e.done
	e.cancel = nil
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("pool did not drain: the slot is stuck reporting the failure")
	}
	if n := e.metrics.Counter(metricJobs, `outcome="retry"`); n != 1 {
		t.Errorf("%d hand-backs, want 1 (the job is not delivered again after MaxDeliver)", n)
	}
	if n := e.streamMsgs(JobStream); n != 1 {
		t.Errorf("%d jobs in DUMPS, want 1 left for the keeper", n)
	}
}

// TestUploadOfChangedFile: bytes that do not hash to the name computed
// before the upload (a file still being written) are not stored under that
// name; before, the object was written and a worker would fail the dump
// permanently as a digest mismatch.
func TestUploadOfChangedFile(t *testing.T) {
	e := newEnv(t, RunOptions{})
	ctx := context.Background()
	hashed := sha256.Sum256([]byte("the dump as it was hashed"))
	name := hex.EncodeToString(hashed[:])
	sent := strings.NewReader("the dump as it was uploaded, longer by now")
	_, err := putObject(ctx, e.js, name, "MEMORY.DMP", 8, 2, sent)
	if !errors.Is(err, ErrChangedWhileUploading) {
		t.Fatalf("putObject: %v, want ErrChangedWhileUploading", err)
	}
	if _, err := e.as.Dumps.GetInfo(ctx, name); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Errorf("object stored under the stale name: %v", err)
	}
	// The same bytes under their own name are stored.
	good := []byte("the dump as it was hashed")
	if _, err := putObject(ctx, e.js, name, "MEMORY.DMP", 8, 2, bytes.NewReader(good)); err != nil {
		t.Fatal(err)
	}
	if got, err := e.as.Dumps.GetBytes(ctx, name); err != nil || !bytes.Equal(got, good) {
		t.Errorf("stored %q, %v", got, err)
	}
}

// TestNoGoroutineLeak: a pipeline with every component (workers, rule
// watcher, keeper, aggregator, HTTP endpoint) that processed jobs leaves no
// goroutine behind once it is stopped and its server shut down.
func TestNoGoroutineLeak(t *testing.T) {
	files := synthKernel(t, 6)
	before := runtime.NumGoroutine()
	t.Run("pipeline", func(t *testing.T) {
		e := newEnv(t, RunOptions{Workers: 3, Analyzer: triageAnalyzer(t, t.TempDir()), RulesDir: t.TempDir(),
			Keeper: true, Aggregator: true, HTTPAddr: "127.0.0.1:0"})
		e.submitAll(files, Meta{})
		waitFor(t, 30*time.Second, "reports", func() bool { return e.streamMsgs(ReportStream) == uint64(len(files)) })
	})
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines left behind:\n%s", after-before, buf[:runtime.Stack(buf, true)])
	}
}

// TestKeeperAfterVerdict: a worker published a (transient) failure report
// for a job on its last delivery, and its termination was lost. The keeper
// must only remove the job: it used to publish a second, permanent
// "workers died" report over the first, so that a resubmission of the dump
// was never analysed again.
func TestKeeperAfterVerdict(t *testing.T) {
	files := synthKernel(t, 1)
	cfg := Config{MaxDeliver: 1, AckWait: 300 * time.Millisecond}
	e := newEnv(t, RunOptions{Keeper: true, Config: cfg})
	res := e.submitAll(files, Meta{Host: "h"})
	ctx := context.Background()
	cons, err := e.js.Consumer(ctx, JobStream, WorkerConsumer)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var job Job
	if err := json.Unmarshal(msg.Data(), &job); err != nil {
		t.Fatal(err)
	}
	// What Pool.fail does on the last delivery, short of the Term.
	cause := fmt.Errorf("%w (1): last error: disk full", errMaxDeliveries)
	env := failureEnvelope(&Envelope{SchemaVersion: 1, Dump: job, AnalyzedAt: time.Now().UTC(), Deliveries: 1}, cause, "")
	if err := publishReport(ctx, e.as, env, &job, cause.Error(), e.metrics); err != nil {
		t.Fatal(err)
	}
	// Live workers keep pulling, so the server notices the exhausted job.
	waitFor(t, 30*time.Second, "the keeper to remove the job", func() bool {
		if m, _ := next(ctx, cons, 200*time.Millisecond); m != nil {
			t.Fatalf("job delivered beyond MaxDeliver")
		}
		return e.streamMsgs(JobStream) == 0
	})
	time.Sleep(200 * time.Millisecond)
	if n := e.streamMsgs(ReportStream); n != 1 {
		t.Errorf("%d reports, want the worker's 1", n)
	}
	st, err := getState(ctx, e.as.State, res[0].SHA256)
	if err != nil || st == nil || st.Permanent || st.ReportID != env.ReportID || st.Error != cause.Error() {
		t.Errorf("state %+v (%v), want the worker's transient failure %s", st, err, env.ReportID)
	}
}

// TestMissingObjectNotFinal: a job whose dump bytes are gone from the
// object store (expired with the retention while it waited) gets a failure
// report, but a later submission of the dump uploads and analyses it; the
// failure used to be recorded as permanent, so the dump was never analysed.
func TestMissingObjectNotFinal(t *testing.T) {
	files := synthKernel(t, 1)
	sha, size, err := HashFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, RunOptions{Workers: 1, Analyzer: triageAnalyzer(t, "")})
	ctx := context.Background()
	j := &Job{SHA256: sha, Size: size, SubmittedAt: time.Now()}
	m, _ := j.msg()
	m.Header.Set(nats.MsgIdHdr, "expired-"+sha) // not the submitter's ID
	if _, err := e.js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "failure report", func() bool { return e.streamMsgs(ReportStream) == 1 })
	if r := e.reports()[0].Envelope; r.Status != StatusFailed || r.Bucket != "KDTRIAGE_MISSING_DUMP" || r.Permanent {
		t.Fatalf("first report %s %s permanent=%v (%s)", r.Status, r.Bucket, r.Permanent, r.Error)
	}
	res := e.submitAll(files, Meta{Host: "again"})
	if !res[0].Uploaded {
		t.Errorf("resubmission did not upload the missing bytes")
	}
	waitFor(t, 30*time.Second, "second report", func() bool { return e.streamMsgs(ReportStream) == 2 })
	if r := e.reports()[1].Envelope; r.Status != StatusOK || r.Dump.Host != "again" {
		t.Errorf("second report %s %s (%s)", r.Status, r.Bucket, r.Error)
	}
}

// TestStaleSpoolSwept: a pool removes the spool files a killed worker left
// behind (older than staleSpoolAge) and nothing else.
func TestStaleSpoolSwept(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, age time.Duration) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("spooled"), 0o600); err != nil {
			t.Fatal(err)
		}
		ts := time.Now().Add(-age)
		if err := os.Chtimes(p, ts, ts); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := write("kdtriage-spool-123.dmp", staleSpoolAge+time.Hour)
	fresh := write("kdtriage-spool-456.dmp", time.Minute)
	other := write("MEMORY.DMP", 10*staleSpoolAge)
	newEnv(t, RunOptions{Workers: 1, Analyzer: triageAnalyzer(t, ""), SpoolDir: dir})
	for _, tc := range []struct {
		path string
		gone bool
	}{{stale, true}, {fresh, false}, {other, false}} {
		_, err := os.Stat(tc.path)
		if gone := errors.Is(err, os.ErrNotExist); gone != tc.gone {
			t.Errorf("%s: removed=%v, want %v", filepath.Base(tc.path), gone, tc.gone)
		}
	}
}

// countingAnalyzer counts Analyze calls.
type countingAnalyzer struct {
	Analyzer
	calls atomic.Int32
}

func (c *countingAnalyzer) Analyze(ctx context.Context, path string, job *Job) (*Result, error) {
	c.calls.Add(1)
	return c.Analyzer.Analyze(ctx, path, job)
}

// TestHeartbeatDuringLongAnalysis: an analysis lasting several AckWaits is
// kept alive by InProgress: the job is not redelivered to the idle second
// slot, it is analysed once and reported once, on its first delivery.
func TestHeartbeatDuringLongAnalysis(t *testing.T) {
	files := synthKernel(t, 1)
	ca := &countingAnalyzer{Analyzer: &slowAnalyzer{Analyzer: triageAnalyzer(t, ""), d: 2 * time.Second, started: make(chan struct{}, 1)}}
	e := newEnv(t, RunOptions{Workers: 2, Analyzer: ca, Config: Config{AckWait: 500 * time.Millisecond, MaxDeliver: 3}})
	e.submitAll(files, Meta{})
	waitFor(t, 30*time.Second, "report", func() bool { return e.streamMsgs(ReportStream) == 1 })
	time.Sleep(time.Second) // a redelivery would be analysed by now
	if n := ca.calls.Load(); n != 1 {
		t.Errorf("analysed %d times, want 1", n)
	}
	if n := e.streamMsgs(ReportStream); n != 1 {
		t.Errorf("%d reports, want 1", n)
	}
	if r := e.reports()[0].Envelope; r.Status != StatusOK || r.Deliveries != 1 {
		t.Errorf("report %s after %d deliveries, want ok after 1", r.Status, r.Deliveries)
	}
}
