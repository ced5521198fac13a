package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdtriage/kdtriage/rules"
)

// runRules runs "rules ARGS..." in-process and returns the exit code (as
// run would map it), stdout and stderr.
func runRules(t *testing.T, analyze rules.AnalyzeFunc, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := newApp(bytes.NewReader(nil), &out, &errb)
	cmd := a.rulesCommand(analyze)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	err := cmd.ExecuteContext(context.Background())
	code := exitOK
	if err != nil {
		code = exitFailure
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		errb.WriteString(err.Error())
	}
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRulesLint(t *testing.T) {
	code, out, _ := runRules(t, nil, "lint", "../../configs/rules")
	if code != 0 || !strings.Contains(out, "ok: ") || !strings.Contains(out, "10-teams.yaml") {
		t.Errorf("lint configs/rules: code %d\n%s", code, out)
	}
	code, out, _ = runRules(t, nil, "lint")
	if code != 0 || !strings.Contains(out, "default/00-kernel.yaml") {
		t.Errorf("lint defaults: code %d\n%s", code, out)
	}

	bad := filepath.Join("..", "..", "rules", "testdata", "bad", "planted.yaml")
	code, out, errOut := runRules(t, nil, "lint", bad, "../../configs/rules/20-known-issues.yaml")
	if code != exitFailure {
		t.Fatalf("lint bad: code %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		if !strings.HasPrefix(l, bad+":") {
			t.Errorf("line %q is not file:line:column: message", l)
		}
	}
	if len(lines) < 20 || !strings.Contains(out, bad+":20:7: unknown key \"colour\"") || !strings.Contains(errOut, "problem(s)") {
		t.Errorf("lint bad output:\n%s\nstderr %s", out, errOut)
	}

	// --rules is used when no argument is given.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), "owners:\n  x!y*z: A\n")
	code, out, _ = runRules(t, nil, "lint", "--rules", dir)
	if code != exitFailure || !strings.Contains(out, "a.yaml:2:3: bad frame pattern") {
		t.Errorf("lint --rules: code %d\n%s", code, out)
	}
	t.Setenv("KDTRIAGE_RULES_DIR", dir)
	code, out, _ = runRules(t, nil, "lint")
	if code != exitFailure || !strings.Contains(out, "a.yaml:2:3:") {
		t.Errorf("lint with KDTRIAGE_RULES_DIR: code %d\n%s", code, out)
	}
}

func TestRulesExplain(t *testing.T) {
	for _, sym := range []string{"nt!KeBugCheckEx", "nt!KeBugCheckEx+0x10", "ntkrnlmp!KeBugCheckEx"} {
		code, out, _ := runRules(t, nil, "explain", sym)
		if code != 0 || !strings.Contains(out, "decision: ignore (never blamed), by nt!KeBugCheck* at default/00-kernel.yaml:") {
			t.Errorf("explain %s: code %d\n%s", sym, code, out)
		}
	}
	code, out, _ := runRules(t, nil, "explain", "amdppm+0x334c")
	if code != 0 || !strings.Contains(out, "frame: amdppm\n") || !strings.Contains(out, "definite owner MachineOwner, by default") {
		t.Errorf("explain module+offset: code %d\n%s", code, out)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "team.yaml"), "owners:\n  atikmdag: Graphics_Team\n")
	code, out, _ = runRules(t, nil, "explain", "atikmdag!Foo", "--code", "0xA0000001", "--rules", dir)
	if code != 0 {
		t.Fatalf("explain --code: code %d\n%s", code, out)
	}
	// The team's exact module beats the shipped atikmdag* prefix (step 2);
	// the crash-level vendor rule still fires.
	for _, want := range []string{
		"* atikmdag  [" + filepath.ToSlash(dir) + "/team.yaml:2:3]",
		"  amd-display-frames  [default/50-vendors.yaml:",
		"loses to atikmdag: step 2, pattern module exact (8), function any is more specific than module prefix (8), function any",
		"crash-level rules that fire for this crash:\n  amd-display-custom-bugcheck",
		"5. load order",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}
	// Without the code the vendor rule is a near miss and the team wins.
	code, out, _ = runRules(t, nil, "explain", "atikmdag!Foo", "--rules", dir)
	if code != 0 || !strings.Contains(out, "definite owner Graphics_Team") || !strings.Contains(out, "needs code=0xA0000001") {
		t.Errorf("explain without code: code %d\n%s", code, out)
	}
	// Module facts for version and image rules.
	cfg := filepath.Join("..", "..", "configs", "rules")
	code, out, _ = runRules(t, nil, "explain", "rt640x64!RtDpc", "--rules", cfg, "--code", "0x133",
		"--image", "rt640x64.sys", "--version", "10.40.1.2")
	if code != 0 || !strings.Contains(out, "KI-0002-dpc-watchdog-old-nic") || strings.Contains(out, "needs") {
		t.Errorf("explain with module facts: code %d\n%s", code, out)
	}
	code, out, _ = runRules(t, nil, "explain", "rt640x64!RtDpc", "--rules", cfg, "--code", "0x133",
		"--image", "rt640x64.sys", "--version", "10.50")
	if code != 0 || strings.Contains(out, "KI-0002") {
		t.Errorf("explain with a fixed version still lists the known issue: code %d\n%s", code, out)
	}
	if code, _, errOut := runRules(t, nil, "explain", "x!y", "--code", "0xZZ"); code != exitFailure || !strings.Contains(errOut, "--code") {
		t.Errorf("bad --code: code %d %s", code, errOut)
	}
}

func TestRulesImportTriageINI(t *testing.T) {
	ini := filepath.Join("..", "..", "rules", "testdata", "sample-triage.ini")
	code, out, _ := runRules(t, nil, "import-triage-ini", ini)
	if code != 0 || !strings.Contains(out, "module2!funct*: Person3") {
		t.Fatalf("import: code %d\n%s", code, out)
	}
	dst := filepath.Join(t.TempDir(), "rules", "imported.yaml")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runRules(t, nil, "import-triage-ini", ini, "-o", dst); code != 0 {
		t.Fatalf("import -o: code %d %s", code, errOut)
	}
	// The written file lints clean and explains like the ini.
	if code, out, _ := runRules(t, nil, "lint", filepath.Dir(dst)); code != 0 {
		t.Errorf("imported file does not lint: %s", out)
	}
	code, out, _ = runRules(t, nil, "explain", "module2!functionC", "--rules", filepath.Dir(dst), "--no-defaults")
	if code != 0 || !strings.Contains(out, "definite owner Person3") {
		t.Errorf("explain imported: code %d\n%s", code, out)
	}
	bad := writeFile(t, filepath.Join(t.TempDir(), "bad.ini"), "ok=A\nno equals here\n")
	code, out, errOut := runRules(t, nil, "import-triage-ini", bad)
	if code != exitFailure || !strings.Contains(errOut, "bad.ini:2:1:") || !strings.Contains(out, "ok: A") {
		t.Errorf("import bad: code %d out %q err %q", code, out, errOut)
	}
}

// TestRulesTestCommand runs "rules test" with the real analysis on a corpus
// dump: it passes with the shipped rules and fails once a rule change moves
// the bucket.
func TestRulesTestCommand(t *testing.T) {
	corpus := corpusDir(t)
	dump, err := filepath.Abs(filepath.Join(corpus, "kernel", "win10-triage_x64.dmp"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cases := writeFile(t, filepath.Join(dir, "cases.yaml"), `cases:
  - name: amdppm segment fault
    dump: `+dump+`
    expect:
      bucket: AV_amdppm!unknown_function
      owner: MachineOwner
      image: amdppm.sys
      no_tags: [display]
`)
	a := newApp(nil, &bytes.Buffer{}, &bytes.Buffer{})
	analyze := a.triageCaseAnalyzer()
	code, out, _ := runRules(t, analyze, "test", cases)
	if code != 0 || !strings.Contains(out, "PASS amdppm segment fault") || !strings.Contains(out, "1 passed, 0 failed") {
		t.Fatalf("rules test with shipped rules: code %d\n%s", code, out)
	}

	rulesDir := filepath.Join(dir, "rules")
	writeFile(t, filepath.Join(rulesDir, "power.yaml"), `rules:
  - id: ki-amdppm
    when: {code: 0x7E, module: amdppm}
    then: {bucket_suffix: _KI0001, known_issue: KI-0001}
`)
	code, out, errOut := runRules(t, analyze, "test", "--rules", rulesDir, cases)
	if code != exitFailure || !strings.Contains(out, "FAIL amdppm segment fault ("+cases+":2:5)") ||
		!strings.Contains(out, `bucket: want "AV_amdppm!unknown_function", got "AV_amdppm!unknown_function_KI0001"`) || !strings.Contains(errOut, "1 of 1") {
		t.Errorf("rules test after a bucket-moving change: code %d\n%s\n%s", code, out, errOut)
	}

	if code, _, errOut := runRules(t, nil, "test", cases); code != exitFailure || !strings.Contains(errOut, "no analysis") {
		t.Errorf("rules test without analysis: code %d %s", code, errOut)
	}
}

// TestRulesDirFromConfig runs through the real root command, whose setup
// binds every flag under its own name: rules.dir must still come from the
// config file and KDTRIAGE_RULES_DIR, and --rules must beat both.
func TestRulesDirFromConfig(t *testing.T) {
	dir := t.TempDir()
	cfgRules := filepath.Join(dir, "cfg-rules")
	envRules := filepath.Join(dir, "env-rules")
	flagRules := filepath.Join(dir, "flag-rules")
	writeFile(t, filepath.Join(cfgRules, "a.yaml"), "owners:\n  mydrv: Cfg_Team\n")
	writeFile(t, filepath.Join(envRules, "a.yaml"), "owners:\n  mydrv: Env_Team\n")
	writeFile(t, filepath.Join(flagRules, "a.yaml"), "owners:\n  mydrv: Flag_Team\n")
	cfg := writeFile(t, filepath.Join(dir, "kdtriage.yaml"), "rules:\n  dir: "+cfgRules+"\n")

	explain := func(extra ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		a := newApp(bytes.NewReader(nil), &out, &errb)
		root := a.rootCommand()
		root.AddCommand(a.rulesCommand(nil))
		root.SetArgs(append([]string{"--config", cfg, "rules", "explain", "mydrv!X"}, extra...))
		if err := root.ExecuteContext(context.Background()); err != nil {
			t.Fatalf("explain: %v %s", err, errb.String())
		}
		return out.String()
	}
	t.Setenv("KDTRIAGE_RULES_DIR", "")
	if out := explain(); !strings.Contains(out, "definite owner Cfg_Team") {
		t.Errorf("config file rules.dir not used:\n%s", out)
	}
	t.Setenv("KDTRIAGE_RULES_DIR", envRules)
	if out := explain(); !strings.Contains(out, "definite owner Env_Team") {
		t.Errorf("KDTRIAGE_RULES_DIR not used:\n%s", out)
	}
	if out := explain("--rules", flagRules); !strings.Contains(out, "definite owner Flag_Team") {
		t.Errorf("--rules not used:\n%s", out)
	}
}

func TestParseFrameArg(t *testing.T) {
	cases := []struct {
		arg               string
		mod, fn, img, err string
	}{
		{arg: "nt!KeBugCheckEx", mod: "nt", fn: "KeBugCheckEx"},
		{arg: "nt!KeBugCheckEx+0x10", mod: "nt", fn: "KeBugCheckEx"},
		{arg: "amdppm+334c", mod: "amdppm"},
		{arg: "amdppm", mod: "amdppm"},
		{arg: "mydrv!operator+", mod: "mydrv", fn: "operator+"},
		{arg: "mydrv!Foo+bar", mod: "mydrv", fn: "Foo+bar"},
		{arg: "amdppm.sys!Fn+0x1", mod: "amdppm", fn: "Fn", img: "amdppm.sys"},
		{arg: "App.EXE+0x10", mod: "App", img: "App.EXE"},
		{arg: "libc.so.6!abort", mod: "libc.so.6", fn: "abort"},
		{arg: "!Fn", err: "has no module"},
		{arg: "+0x10", err: "has no module"},
	}
	for _, c := range cases {
		fr, err := parseFrameArg(c.arg)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.arg, err, c.err)
			}
			continue
		}
		if err != nil || fr.Module != c.mod || fr.Function != c.fn || fr.Image != c.img {
			t.Errorf("%q: %+v %v, want module %q function %q image %q", c.arg, fr, err, c.mod, c.fn, c.img)
		}
	}
	// An image-style argument finds the module's owner rule.
	code, out, _ := runRules(t, nil, "explain", "nt!KeBugCheckEx+0x10")
	code2, out2, _ := runRules(t, nil, "explain", "ntoskrnl.exe!KeBugCheckEx+0x10")
	if code != 0 || code2 != 0 || !strings.Contains(out2, "decision: ignore (never blamed), by nt!KeBugCheck*") {
		t.Errorf("explain by image name: %d %d\n%s\n%s", code, code2, out, out2)
	}
}
