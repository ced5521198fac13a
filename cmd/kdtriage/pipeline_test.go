package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kdtriage/kdtriage/kdump/kdumptest"
	"github.com/kdtriage/kdtriage/workers"
)

// kdtriageBin is the binary built once by TestMain for the process tests
// ("" when the build failed: those tests then fail with buildErr).
var (
	kdtriageBin string
	buildErr    error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kdtriage-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kdtriageBin, buildErr = buildBinary(dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildBinary builds ./ into dir and checks that it has the pipeline
// commands.
func buildBinary(dir string) (string, error) {
	bin := filepath.Join(dir, "kdtriage")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	out, _ := exec.Command(bin, "--help").CombinedOutput()
	for _, c := range []string{"serve", "worker", "submit", "agent", "feed", "reprocess"} {
		if !regexp.MustCompile(`(?m)^\s+` + c + `\s`).Match(out) {
			return "", fmt.Errorf("the kdtriage binary has no %q command (commands.go)", c)
		}
	}
	return bin, nil
}

func needBinary(t *testing.T) {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

// proc is a running kdtriage process.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout *lineBuf
	stderr *lineBuf
	done   chan struct{}
}

// lineBuf collects a stream's lines and signals each new one.
type lineBuf struct {
	mu    sync.Mutex
	lines []string
	ch    chan struct{}
}

func newLineBuf() *lineBuf { return &lineBuf{ch: make(chan struct{}, 1)} }

func (b *lineBuf) feed(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		b.mu.Lock()
		b.lines = append(b.lines, sc.Text())
		b.mu.Unlock()
		select {
		case b.ch <- struct{}{}:
		default:
		}
	}
}

func (b *lineBuf) all() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.lines...)
}

// waitLine waits for a line containing sub and returns it.
func (b *lineBuf) waitLine(t *testing.T, sub string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		for _, l := range b.all() {
			if strings.Contains(l, sub) {
				return l
			}
		}
		select {
		case <-b.ch:
		case <-deadline:
			t.Fatalf("no line with %q within %v; got:\n%s", sub, timeout, strings.Join(b.all(), "\n"))
		}
	}
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	needBinary(t)
	cmd := exec.Command(kdtriageBin, args...)
	cmd.Env = append(os.Environ(), "KDTRIAGE_LOG_FORMAT=json")
	so, _ := cmd.StdoutPipe()
	se, _ := cmd.StderrPipe()
	p := &proc{t: t, cmd: cmd, stdout: newLineBuf(), stderr: newLineBuf(), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.stdout.feed(so) }()
	go func() { defer wg.Done(); p.stderr.feed(se) }()
	go func() { wg.Wait(); cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.done
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			p.t.Errorf("%v exited with %d; stderr:\n%s", p.cmd.Args[1:2], code, strings.Join(p.stderr.all(), "\n"))
		}
	case <-time.After(60 * time.Second):
		p.t.Errorf("%v did not stop on SIGTERM", p.cmd.Args[1:2])
		p.kill()
	}
}

// serve starts kdtriage serve and returns it with its NATS URL and HTTP
// address.
func serve(t *testing.T, store string, extra ...string) (*proc, string, string) {
	t.Helper()
	args := append([]string{"serve", "--store-dir", store, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"}, extra...)
	p := start(t, args...)
	line := p.stdout.waitLine(t, "ready ", 60*time.Second)
	m := regexp.MustCompile(`nats=(\S+) http=(\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("bad ready line %q", line)
	}
	return p, m[1], m[2]
}

// kdt runs a kdtriage command to completion and returns its stdout.
func kdt(t *testing.T, args ...string) string {
	t.Helper()
	needBinary(t)
	cmd := exec.Command(kdtriageBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("kdtriage %s: %v\nstderr:\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

// feedAll reads every report with a fresh durable.
func feedAll(t *testing.T, url string) []workers.Envelope {
	t.Helper()
	out := kdt(t, "feed", "--nats-url", url, "--durable", fmt.Sprintf("check%d", time.Now().UnixNano()), "--from-start", "--idle", "1500ms")
	var envs []workers.Envelope
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var e workers.Envelope
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("feed line %q: %v", l, err)
		}
		envs = append(envs, e)
	}
	return envs
}

// waitReports polls the feed until n reports exist.
func waitReports(t *testing.T, url string, n int, timeout time.Duration) []workers.Envelope {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		envs := feedAll(t, url)
		if len(envs) >= n || time.Now().After(deadline) {
			return envs
		}
	}
}

func corpusKernelFiles(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(corpusDir(t), "kernel", "*.dmp"))
	if len(files) == 0 {
		t.Skip("corpus has no kernel dumps")
	}
	return files
}

// synthKernelFiles writes n distinct synthetic kernel triage dumps (built
// by kdumptest: no corpus needed) to a temp dir: x64, ARM64 and x86 in
// turn, faulting in one of three drivers, each with its own SHA-256 (the
// time stamp of the second module is the dump's index).
func synthKernelFiles(t *testing.T, n int) []string {
	t.Helper()
	dir := t.TempDir()
	arches := []kdumptest.Arch{kdumptest.AMD64, kdumptest.ARM64, kdumptest.X86}
	drivers := []string{"amdppm.sys", "netfoo.sys", "stor9.sys", "gfx7.sys"}
	paths := make([]string, n)
	for i := range n {
		a := arches[i%len(arches)]
		mods := kdumptest.DefaultModules(a)
		mods[1].TimeDateStamp = 0x61000000 + uint32(i)
		last := &mods[len(mods)-1] // the faulting driver by default
		last.Name = drivers[i%len(drivers)]
		last.Path = `\SystemRoot\System32\drivers\` + last.Name
		paths[i] = filepath.Join(dir, fmt.Sprintf("synth-%s-%04d.dmp", a, i))
		if _, err := kdumptest.BuildFile(paths[i], kdumptest.Spec{Arch: a, Kind: kdumptest.Triage, Modules: mods}); err != nil {
			t.Fatal(err)
		}
	}
	return paths
}

// TestServeSubmitFeed: synthetic kernel dumps submitted through serve give
// exactly one report each in the feed; a poison file gives a failure
// report and does not stop the pipeline; submitting everything again
// analyses nothing; /metrics and /healthz answer.
func TestServeSubmitFeed(t *testing.T) { checkServeSubmitFeed(t, synthKernelFiles(t, 8)) }

// TestCorpusServeSubmitFeed is TestServeSubmitFeed on every kernel dump of
// the corpus (the acceptance test through the command); it skips without
// the corpus.
func TestCorpusServeSubmitFeed(t *testing.T) { checkServeSubmitFeed(t, corpusKernelFiles(t)) }

func checkServeSubmitFeed(t *testing.T, files []string) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	os.MkdirAll(in, 0o700)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(in, filepath.Base(f)), b, 0o600)
	}
	os.WriteFile(filepath.Join(in, "zz-poison.dmp"), []byte("MZ not a dump at all"), 0o600)
	srv, url, httpAddr := serve(t, filepath.Join(dir, "store"), "--workers", "2")

	out := kdt(t, "submit", "--nats-url", url, "--host", "ws-17", "--label", "ring=canary", in)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(files)+1 {
		t.Fatalf("submit printed %d lines for %d files:\n%s", len(lines), len(files)+1, out)
	}
	shas := map[string]bool{}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 4 || f[1] != "uploaded" || f[2] != "queued" {
			t.Errorf("submit line %q", l)
			continue
		}
		shas[f[0]] = true
	}
	envs := waitReports(t, url, len(shas), 60*time.Second)
	count := map[string]int{}
	failed := 0
	for _, e := range envs {
		count[e.Dump.SHA256]++
		if e.Status == workers.StatusFailed {
			failed++
			if e.Bucket != "KDTRIAGE_NOT_A_DUMP" {
				t.Errorf("poison bucket %s", e.Bucket)
			}
		} else if e.Bucket == "" || e.Hash == "" || e.Dump.Host != "ws-17" || e.Dump.Labels["ring"] != "canary" {
			t.Errorf("report %+v", e)
		}
	}
	for sha := range shas {
		if count[sha] != 1 {
			t.Errorf("%s: %d reports, want 1", sha, count[sha])
		}
	}
	if len(envs) != len(shas) || failed != 1 {
		t.Errorf("%d reports (%d failed), want %d (1 failed)", len(envs), failed, len(shas))
	}

	// Again: stored and deduplicated, no new report.
	out = kdt(t, "submit", "--nats-url", url, in)
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) != 4 || f[1] != "stored" || f[2] != "duplicate" {
			t.Errorf("second submit line %q", l)
		}
	}
	time.Sleep(time.Second)
	if envs := feedAll(t, url); len(envs) != len(shas) {
		t.Errorf("%d reports after resubmission, want %d", len(envs), len(shas))
	}

	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := fmt.Sprintf(`kdtriage_jobs_total{outcome="ok"} %d`, len(files))
	if !strings.Contains(string(body), want) || !strings.Contains(string(body), "# TYPE kdtriage_submit_to_report_seconds histogram") ||
		!strings.Contains(string(body), "kdtriage_queue_pending 0\n") || !strings.Contains(string(body), "kdtriage_dead_letter_messages ") {
		t.Errorf("/metrics lacks %q:\n%s", want, body)
	}
	resp, err = http.Get("http://" + httpAddr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("/healthz: %v %v", err, resp)
	}
	srv.stop()
}

// makeBigDump writes a copy of a dump extended (sparsely) to size
// bytes: the worker must download and spool all of it.
func makeBigDump(t *testing.T, src, dst string, size int64) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(dst, size); err != nil {
		t.Fatal(err)
	}
}

// TestWorkerKilledMidJob: a worker process SIGKILLed while it holds a job;
// the job is redelivered to another worker and the feed has exactly one
// report for it.
func TestWorkerKilledMidJob(t *testing.T) {
	files := synthKernelFiles(t, 1)
	dir := t.TempDir()
	big := filepath.Join(dir, "MEMORY.DMP")
	makeBigDump(t, files[0], big, 384<<20)
	_, url, _ := serve(t, filepath.Join(dir, "store"), "--workers", "0", "--ack-wait", "2s")

	w1 := start(t, "worker", "--nats-url", url, "--workers", "1", "--log-level", "debug", "--spool-dir", dir)
	w1.stdout.waitLine(t, "ready ", 30*time.Second)
	out := kdt(t, "submit", "--nats-url", url, big)
	sha := strings.Fields(out)[0]
	w1.stderr.waitLine(t, "job received", 60*time.Second)
	w1.kill() // SIGKILL mid-job: no ack, no nak
	if lines := w1.stderr.all(); strings.Contains(strings.Join(lines, "\n"), `"analysed"`) {
		t.Fatalf("worker finished before it was killed: make the dump bigger")
	}

	w2 := start(t, "worker", "--nats-url", url, "--workers", "1", "--spool-dir", dir)
	w2.stdout.waitLine(t, "ready ", 30*time.Second)
	envs := waitReports(t, url, 1, 90*time.Second)
	n := 0
	for _, e := range envs {
		if e.Dump.SHA256 == sha {
			n++
			if e.Status != workers.StatusOK || e.Deliveries < 2 {
				t.Errorf("report status %s after %d deliveries, want ok after >= 2", e.Status, e.Deliveries)
			}
		}
	}
	if n != 1 || len(envs) != 1 {
		t.Errorf("%d reports for the dump (%d in all), want exactly 1", n, len(envs))
	}
	w2.stop()
}

// TestServerRestartLosesNothing: the serve process is SIGKILLed while jobs
// are queued and in flight, restarted on the same store directory, and
// every dump still ends with exactly one report.
func TestServerRestartLosesNothing(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	os.MkdirAll(in, 0o700)
	files := synthKernelFiles(t, 192)
	n := len(files)
	for _, f := range files {
		if err := os.Rename(f, filepath.Join(in, filepath.Base(f))); err != nil {
			t.Fatal(err)
		}
	}
	store := filepath.Join(dir, "store")
	srv, url, _ := serve(t, store, "--workers", "1")
	sub := start(t, "submit", "--nats-url", url, in)
	// SIGKILL the server in the middle of the submissions, with jobs
	// queued and in flight.
	deadline := time.Now().Add(60 * time.Second)
	for len(sub.stdout.all()) < n/3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	srv.kill()
	sub.kill()
	if got := len(sub.stdout.all()); got >= n {
		t.Fatalf("all %d submissions finished before the server was killed", got)
	}

	_, url, _ = serve(t, store, "--workers", "2")
	// The endpoint retries: what was stored is not uploaded again.
	out := kdt(t, "submit", "--nats-url", url, in)
	if got := len(strings.Split(strings.TrimSpace(out), "\n")); got != n {
		t.Fatalf("resubmitted %d of %d", got, n)
	}
	if strings.Count(out, " stored ") == 0 {
		t.Errorf("no dump was found already stored after the restart:\n%s", out)
	}
	envs := waitReports(t, url, n, 120*time.Second)
	count := map[string]int{}
	for _, e := range envs {
		count[e.Dump.SHA256]++
		if e.Status != workers.StatusOK {
			t.Errorf("%s: %s %s", e.Dump.Name, e.Status, e.Error)
		}
	}
	if len(count) != n || len(envs) != n {
		t.Errorf("%d reports for %d dumps, want exactly one each for %d", len(envs), len(count), n)
	}
}

// TestAgentProcess: the agent submits finished dumps from a watched
// directory, only with consent, remembers them across restarts and never
// deletes them.
func TestAgentProcess(t *testing.T) {
	files := synthKernelFiles(t, 3)
	dir := t.TempDir()
	watch := filepath.Join(dir, "Minidump")
	os.MkdirAll(watch, 0o700)
	state := filepath.Join(dir, "agent-state.json")
	_, url, _ := serve(t, filepath.Join(dir, "store"), "--workers", "1")
	common := []string{"agent", "--watch", watch, "--state", state, "--nats-url", url, "--settle", "300ms", "--rescan", "200ms", "--host", "ep-1", "--log-level", "info"}

	for _, f := range files {
		b, _ := os.ReadFile(f)
		os.WriteFile(filepath.Join(watch, filepath.Base(f)), b, 0o600)
	}
	os.WriteFile(filepath.Join(watch, "notes.txt"), []byte("not a dump"), 0o600)

	// Without consent nothing leaves the machine.
	a0 := start(t, common...)
	a0.stderr.waitLine(t, "consent is off: not sent", 30*time.Second)
	a0.stop()
	if envs := feedAll(t, url); len(envs) != 0 {
		t.Fatalf("%d reports without consent", len(envs))
	}

	a1 := start(t, append(common, "--consent")...)
	envs := waitReports(t, url, len(files), 60*time.Second)
	if len(envs) != len(files) {
		t.Fatalf("%d reports, want %d", len(envs), len(files))
	}
	for _, e := range envs {
		if e.Dump.Host != "ep-1" {
			t.Errorf("host %q", e.Dump.Host)
		}
	}
	a1.stop()
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(watch, filepath.Base(f))); err != nil {
			t.Errorf("agent touched the user's dump: %v", err)
		}
	}
	// Restarted, it remembers: no new submission.
	a2 := start(t, append(common, "--consent")...)
	time.Sleep(1500 * time.Millisecond)
	a2.stop()
	for _, l := range a2.stderr.all() {
		if strings.Contains(l, `"submitted"`) {
			t.Errorf("resubmitted after restart: %s", l)
		}
	}
	var st struct {
		Sent map[string]struct {
			SHA256 string `json:"sha256"`
		} `json:"sent"`
	}
	b, err := os.ReadFile(state)
	if err != nil || json.Unmarshal(b, &st) != nil || len(st.Sent) != len(files) {
		t.Errorf("state file: %v, %d entries:\n%s", err, len(st.Sent), b)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"123", 123, true}, {"64KiB", 64 << 10, true}, {"10MB", 10e6, true},
		{"1.5GiB", 3 << 29, true}, {"8G", 8 << 30, true}, {"-1", 0, false}, {"lots", 0, false},
	}
	for _, tc := range tests {
		got, err := parseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v", tc.in, got, err)
		}
	}
	if d, err := parseDuration("30d"); err != nil || d != 30*24*time.Hour {
		t.Errorf("parseDuration(30d) = %v, %v", d, err)
	}
}

// peakRSS reads a live process's peak resident set size (VmHWM) in bytes.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		return -1
	}
	var kb int64
	fmt.Sscan(string(m[1]), &kb)
	return kb << 10
}

// TestBigDumpWorkerRSS sends a 4 GiB synthetic sparse complete memory dump
// (MEMORY.DMP) through submit and a worker process and checks the worker's
// peak RSS stays under 150 MiB. It moves 4 GiB through NATS and takes about
// a minute: run it with KDTRIAGE_BIG_DUMP=1.
func TestBigDumpWorkerRSS(t *testing.T) {
	if os.Getenv("KDTRIAGE_BIG_DUMP") == "" {
		t.Skip("set KDTRIAGE_BIG_DUMP=1 to push a 4 GiB dump through a worker")
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc")
	}
	dir := t.TempDir()
	img, _, err := kdumptest.Build(kdumptest.Spec{Arch: kdumptest.AMD64, Kind: kdumptest.Full, MemoryBytes: 4 << 30})
	if err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "MEMORY.DMP")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := img.WriteFile(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	fi, _ := os.Stat(big)
	t.Logf("dump: %d bytes (%d stored)", fi.Size(), img.StoredBytes())
	_, url, _ := serve(t, filepath.Join(dir, "store"), "--workers", "0")
	w := start(t, "worker", "--nats-url", url, "--workers", "1", "--spool-dir", dir)
	w.stdout.waitLine(t, "ready ", 30*time.Second)
	t0 := time.Now()
	kdt(t, "submit", "--nats-url", url, big)
	t.Logf("submitted in %v", time.Since(t0))
	envs := waitReports(t, url, 1, 10*time.Minute)
	rss := peakRSS(w.cmd.Process.Pid)
	t.Logf("report after %v: %s %s; worker peak RSS %.1f MiB", time.Since(t0), envs[0].Status, envs[0].Bucket, float64(rss)/(1<<20))
	if len(envs) != 1 || envs[0].Status != workers.StatusOK {
		t.Fatalf("reports: %+v", envs)
	}
	if rss <= 0 || rss > 150<<20 {
		t.Errorf("worker peak RSS %d bytes, target < 150 MiB", rss)
	}
	w.stop()
}

// TestSubmitWithoutFiles: submit checks its arguments before it looks for a
// server: a missing file is named plainly (exit 2), an empty directory is
// no error, and neither waits for the unreachable --nats-url.
func TestSubmitWithoutFiles(t *testing.T) {
	needBinary(t)
	empty := t.TempDir()
	missing := filepath.Join(empty, "x.dmp")
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{missing}, exitBadDump, "kdtriage submit: " + missing + ": no such file or directory\n"},
		{[]string{empty}, 0, ""},
	}
	for _, tc := range tests {
		cmd := exec.Command(kdtriageBin, append([]string{"submit", "--nats-url", "nats://127.0.0.1:1"}, tc.args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code || errb.String() != tc.stderr || out.Len() != 0 {
			t.Errorf("submit %v: exit %d, stderr %q, stdout %q; want exit %d, stderr %q", tc.args, code, errb.String(), out.String(), tc.code, tc.stderr)
		}
	}
}
