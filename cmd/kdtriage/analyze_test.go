package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/viper"

	"github.com/kdtriage/kdtriage/kdump/kdumptest"
	"github.com/kdtriage/kdtriage/triage"
)

// runAnalyze runs the analyze command in-process and returns stdout,
// stderr and the exit code run() would give.
func runAnalyze(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdout: &out, stderr: &errb, v: viper.New(), log: zerolog.Nop()}
	cmd := a.analyzeCommand()
	cmd.SetArgs(args)
	cmd.SetOut(&errb)
	cmd.SetErr(&errb)
	err := cmd.ExecuteContext(context.Background())
	code := exitOK
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		} else {
			code = exitFailure
			errb.WriteString(err.Error())
		}
	}
	return out.String(), errb.String(), code
}

// writeSynthetic writes synthetic kernel dumps into dir and returns their paths.
func writeSynthetic(t *testing.T, dir string, specs ...kdumptest.Spec) []string {
	t.Helper()
	var paths []string
	for i, s := range specs {
		im, _, err := kdumptest.Build(s)
		if err != nil {
			t.Fatal(err)
		}
		b, err := im.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "dump"+string(rune('a'+i))+".dmp")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

func TestAnalyzeJSONInOrderWithBadDump(t *testing.T) {
	dir := t.TempDir()
	mods := kdumptest.DefaultModules(kdumptest.AMD64)
	paths := writeSynthetic(t, dir,
		kdumptest.Spec{Arch: kdumptest.AMD64},
		kdumptest.Spec{Arch: kdumptest.AMD64, BugCheck: 0xD1, Params: [4]uint64{0x10, 2, 0, mods[3].Base + 0x40}},
		kdumptest.Spec{Arch: kdumptest.ARM64, BugCheck: 0xE2},
	)
	bad := filepath.Join(dir, "broken.dmp")
	if err := os.WriteFile(bad, []byte("PAGEDU64 but nothing else"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--format", "json", "-j", "3"}, paths[0], bad, paths[1], paths[2])
	out, stderr, code := runAnalyze(t, args...)
	if code != exitBadDump {
		t.Errorf("exit code %d, want %d (stderr %s)", code, exitBadDump, stderr)
	}
	if !strings.Contains(stderr, "broken.dmp") {
		t.Errorf("stderr does not name the bad dump: %q", stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d JSON lines, want 3:\n%s", len(lines), out)
	}
	want := []struct{ file, bucket, image string }{
		{paths[0], "AV_amdppm!unknown_function", "amdppm.sys"},
		{paths[1], "AV_CLFS!unknown_function", "CLFS.SYS"},
		{paths[2], "MANUALLY_INITIATED_CRASH", "ManualCrash"},
	}
	for i, l := range lines {
		var r struct {
			Dump struct {
				File   string `json:"file"`
				SHA256 string `json:"sha256"`
			} `json:"dump"`
			Bucket  string `json:"failure_bucket_id"`
			Hash    string `json:"failure_id_hash"`
			Culprit struct {
				Module, Image, Symbol, Confidence string
			} `json:"culprit"`
			Followup string `json:"followup"`
			BugCheck struct {
				Code   string    `json:"code"`
				Name   string    `json:"name"`
				Params [4]string `json:"params"`
			} `json:"bugcheck"`
			Stack []struct {
				IP, SP, Module, Symbol string
				FoundBy                string `json:"found_by"`
			} `json:"stack"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if r.Dump.File != want[i].file || r.Bucket != want[i].bucket || r.Culprit.Image != want[i].image {
			t.Errorf("line %d: file %s bucket %s image %s, want %+v", i, r.Dump.File, r.Bucket, r.Culprit.Image, want[i])
		}
		if len(r.Dump.SHA256) != 64 || !strings.HasPrefix(r.Hash, "{") || r.Culprit.Confidence == "" || r.BugCheck.Name == "" {
			t.Errorf("line %d: incomplete: %s", i, l)
		}
		if !strings.HasPrefix(r.BugCheck.Code, "0x") || !strings.HasPrefix(r.BugCheck.Params[0], "0x") {
			t.Errorf("line %d: 64-bit values are not 0x strings: %+v", i, r.BugCheck)
		}
		if len(r.Stack) == 0 || !strings.HasPrefix(r.Stack[0].IP, "0x") || r.Stack[0].FoundBy == "" {
			t.Errorf("line %d: stack %+v", i, r.Stack)
		}
	}
}

func TestAnalyzeDirectoryViews(t *testing.T) {
	dir := t.TempDir()
	writeSynthetic(t, dir,
		kdumptest.Spec{Arch: kdumptest.AMD64},
		kdumptest.Spec{Arch: kdumptest.AMD64},
		kdumptest.Spec{Arch: kdumptest.AMD64, BugCheck: 0xE2},
	)
	out, stderr, code := runAnalyze(t, "--summary", dir)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "AV_amdppm!unknown_function") || !strings.Contains(out, "MANUALLY_INITIATED_CRASH") {
		t.Errorf("summary lacks the buckets:\n%s", out)
	}
	// The 0x7E bucket holds two dumps.
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "AV_amdppm") && !strings.Contains(l, " 2 ") {
			t.Errorf("AV_amdppm row does not count 2 dumps: %s", l)
		}
	}
	for _, f := range []string{"table", "markdown", "csv"} {
		out, _, code := runAnalyze(t, "--format", f, dir)
		if code != exitOK || strings.Count(out, "AV_amdppm!unknown_function") != 2 {
			t.Errorf("--format %s: exit %d\n%s", f, code, out)
		}
	}
	out, _, _ = runAnalyze(t, "--format", "text", "--legacy", filepath.Join(dir, "dumpa.dmp"))
	for _, want := range []string{"Bugcheck Analysis", "FAILURE_BUCKET_ID:  AV_amdppm!unknown_function", "BUCKET_ID:  X64_0x7E_c0000005_amdppm+", "Probably caused by : amdppm.sys", "STACK_COMMAND:"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q", want)
		}
	}
}

func TestAnalyzeUsageErrors(t *testing.T) {
	if _, _, code := runAnalyze(t, "--format", "xml", "x.dmp"); code != exitFailure {
		t.Errorf("bad format: exit %d", code)
	}
	missing := filepath.Join(t.TempDir(), "missing.dmp")
	if _, stderr, code := runAnalyze(t, missing); code != exitBadDump || !strings.HasPrefix(stderr, "kdtriage: "+missing+": no such file or directory\n") {
		t.Errorf("missing file: exit %d stderr %q", code, stderr)
	}
	rules := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(rules, []byte("version: 1\nowners:\n  nt!Ke*Bug: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, code := runAnalyze(t, "--rules", rules, "x.dmp"); code != exitFailure {
		t.Errorf("bad rules: exit %d", code)
	}
}

// TestAnalyzeCorpus runs the command over the corpus kernel directory.
func TestAnalyzeCorpus(t *testing.T) {
	dir := os.Getenv("KDTRIAGE_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "corpus")
	}
	kernel := filepath.Join(dir, "kernel")
	if _, err := os.Stat(kernel); err != nil {
		t.Skipf("corpus not found at %s (set KDTRIAGE_CORPUS): %v", dir, err)
	}
	out, stderr, code := runAnalyze(t, "--format", "json", kernel)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	ents, _ := filepath.Glob(filepath.Join(kernel, "*.dmp"))
	if len(lines) != len(ents) {
		t.Fatalf("%d reports for %d dumps", len(lines), len(ents))
	}
	for _, l := range lines {
		var r struct {
			Dump    struct{ File string }  `json:"dump"`
			Bucket  string                 `json:"failure_bucket_id"`
			Culprit struct{ Image string } `json:"culprit"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		if filepath.Base(r.Dump.File) == "win10-triage_x64.dmp" && (r.Culprit.Image != "amdppm.sys" || r.Bucket != "AV_amdppm!unknown_function") {
			t.Errorf("win10-triage_x64.dmp: %s %s", r.Culprit.Image, r.Bucket)
		}
	}
}

// BenchmarkAnalyzeFiles runs the command's pipeline (open, SHA-256,
// analyse, in-order emit) over 1,000 dump files with -j GOMAXPROCS: the
// corpus kernel dumps repeated, or synthetic dumps when the corpus is
// absent. It reports dumps per second.
func BenchmarkAnalyzeFiles(b *testing.B) {
	dir := os.Getenv("KDTRIAGE_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "corpus")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "kernel", "*.dmp"))
	if len(files) == 0 {
		tmp := b.TempDir()
		for i := range 4 {
			im, _, err := kdumptest.Build(kdumptest.Spec{Arch: kdumptest.AMD64, Processors: i + 1})
			if err != nil {
				b.Fatal(err)
			}
			p, err := im.WriteTemp(tmp, "bench-*.dmp")
			if err != nil {
				b.Fatal(err)
			}
			files = append(files, p)
		}
	}
	paths := make([]string, 1000)
	for i := range paths {
		paths[i] = files[i%len(files)]
	}
	set, err := loadRules("")
	if err != nil {
		b.Fatal(err)
	}
	opts := triage.Options{Rules: set, LegacyBucket: true}
	ctx := context.Background()
	jobs := runtime.GOMAXPROCS(0)
	b.ReportAllocs()
	var total time.Duration
	for b.Loop() {
		start := time.Now()
		n := 0
		analyzeAll(ctx, paths, jobs, func(p string) (*triage.Report, error) {
			return analyzeDumpFile(ctx, p, true, opts)
		}, func(r analyzeResult) {
			if r.err != nil {
				b.Error(r.err)
			}
			n++
		})
		total += time.Since(start)
		if n != len(paths) {
			b.Fatalf("%d results for %d paths", n, len(paths))
		}
	}
	b.ReportMetric(float64(len(paths)*b.N)/total.Seconds(), "dumps/s")
}

// TestAnalyzeProgress checks that the progress counter goes to stderr only
// when stderr is a terminal, never into the report stream, and is erased
// before each report so that it does not share a terminal line with one.
func TestAnalyzeProgress(t *testing.T) {
	dir := t.TempDir()
	writeSynthetic(t, dir, kdumptest.Spec{Arch: kdumptest.AMD64}, kdumptest.Spec{Arch: kdumptest.ARM64}, kdumptest.Spec{Arch: kdumptest.AMD64})
	for _, tty := range []bool{false, true} {
		var out, errb bytes.Buffer
		a := &app{stdout: &out, stderr: &errb, stderrTTY: tty, v: viper.New(), log: zerolog.Nop()}
		cmd := a.analyzeCommand()
		cmd.SetArgs([]string{"--format", "json", dir})
		if err := cmd.ExecuteContext(context.Background()); err != nil {
			t.Fatal(err)
		}
		want := ""
		if tty {
			want = "analysing 0/3" + "\r\033[Kanalysing 1/3" + "\r\033[Kanalysing 2/3" + "\r\033[K"
		}
		if got := errb.String(); got != want {
			t.Errorf("tty=%v: stderr %q, want %q", tty, got, want)
		}
		if strings.Contains(out.String(), "analysing") || strings.Count(out.String(), "\n") != 3 {
			t.Errorf("tty=%v: stdout %q", tty, out.String())
		}
	}
}

// TestAnalyzeUserRules layers a rules directory over the defaults: its
// owner becomes the Followup and its bucket suffix and tags are applied.
func TestAnalyzeUserRules(t *testing.T) {
	dir := t.TempDir()
	paths := writeSynthetic(t, dir, kdumptest.Spec{Arch: kdumptest.AMD64})
	rulesDir := filepath.Join(dir, "rules")
	if err := os.Mkdir(rulesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	yaml := `version: 1
owners:
  amdppm: Team_Power
rules:
  - id: amdppm-known-issue
    when:
      module: amdppm
    then:
      bucket_suffix: _KI42
      known_issue: KI-42
      tags: [power]
`
	if err := os.WriteFile(filepath.Join(rulesDir, "power.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runAnalyze(t, "--format", "json", "--rules", rulesDir, paths[0])
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r struct {
		Bucket   string `json:"failure_bucket_id"`
		Hash     string `json:"failure_id_hash"`
		Followup string `json:"followup"`
		RuleHash string `json:"rule_set_hash"`
		Rules    struct {
			KnownIssue string   `json:"known_issue"`
			Tags       []string `json:"tags"`
			Fired      []struct{ ID, Source string }
		} `json:"rules"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Followup != "Team_Power" || r.Bucket != "AV_amdppm!unknown_function_KI42" || r.Rules.KnownIssue != "KI-42" {
		t.Errorf("followup %q bucket %q known issue %q", r.Followup, r.Bucket, r.Rules.KnownIssue)
	}
	found := false
	for _, h := range r.Rules.Fired {
		if h.ID == "amdppm-known-issue" && strings.Contains(h.Source, "power.yaml") {
			found = true
		}
	}
	if !found {
		t.Errorf("fired rules do not name amdppm-known-issue in power.yaml: %+v", r.Rules.Fired)
	}
	def, _, _ := runAnalyze(t, "--format", "json", paths[0])
	if strings.Contains(def, r.RuleHash) {
		t.Error("the rule-set hash does not change with the user rules")
	}
}
