package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kdtriage/kdtriage/symbols/pdb"
	"github.com/kdtriage/kdtriage/triage/drvtest"
)

// runWithLookup runs the CLI in-process like runCLI, with `symbols lookup`
// added to the symbols group when the command tree does not have it yet.
func runWithLookup(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := newApp(bytes.NewReader(nil), &out, &errb)
	root := a.rootCommand()
	sym, _, err := root.Find([]string{"symbols"})
	if err != nil || sym.Name() != "symbols" {
		t.Fatalf("no symbols command group: %v", err)
	}
	wired := false
	for _, c := range sym.Commands() {
		wired = wired || c.Name() == "lookup"
	}
	if !wired {
		sym.AddCommand(a.symbolsDumpResolveCommand())
	}
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	if err := root.ExecuteContext(context.Background()); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			return ee.code, out.String(), errb.String() + err.Error()
		}
		return exitFailure, out.String(), errb.String() + err.Error()
	}
	return exitOK, out.String(), errb.String()
}

// driverScene builds the driver dump (internal/drvtest) in a temporary
// directory and a symbol server for it, and returns the scene, the dump's
// path, the server and a srv*CACHE*URL symbol path.
func driverScene(t *testing.T, opts drvtest.Options) (*drvtest.Scene, string, *drvtest.Server, string) {
	t.Helper()
	t.Setenv("_NT_SYMBOL_PATH", "")
	t.Setenv("KDTRIAGE_SYMBOLS_PATH", "")
	s, err := drvtest.Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dump, err := s.WriteFile(dir, "kdtdrv-0x7e.dmp")
	if err != nil {
		t.Fatal(err)
	}
	pdbComp := drvtest.CABWriter
	if drvtest.HaveGcab() {
		pdbComp = drvtest.Gcab
	}
	root := filepath.Join(dir, "store")
	if _, _, err := drvtest.BuildStore(root, s.DriversDir, drvtest.CABWriter, pdbComp); err != nil {
		t.Fatal(err)
	}
	srv := drvtest.NewServer(root)
	t.Cleanup(srv.Close)
	return s, dump, srv, "srv*" + filepath.Join(dir, "cache") + "*" + srv.URL
}

// cFunctionLines returns, for each function defined in kdtdrv.c, the
// range of source lines from its signature to its closing brace.
func cFunctionLines(t *testing.T, driversDir string) map[string][2]int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(driversDir, "kdtdrv.c"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^(?:__declspec\(noinline\) )?u64 (\w+)\(.*\{$`)
	out := map[string][2]int{}
	cur, start := "", 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "#else" {
			break // the ARM64 build's functions
		}
		if m := re.FindStringSubmatch(line); m != nil {
			cur, start = m[1], n
		} else if line == "}" && cur != "" {
			out[cur] = [2]int{start, n}
			cur = ""
		}
	}
	if len(out) < 6 {
		t.Fatalf("found only %d functions in kdtdrv.c", len(out))
	}
	return out
}

// TestSymbolsLookupDump resolves the driver dump's frame addresses (and
// addresses in nt, in an unloaded driver and in no module) with `kdtriage
// symbols lookup DUMP ADDR...` through a real HTTP symbol server: the
// module comes from the dump's module list, the image and PDB from the
// server (compressed), lines from the PDB. A second run is served from
// the cache.
func TestSymbolsLookupDump(t *testing.T) {
	s, dump, srv, path := driverScene(t, drvtest.Options{})
	p, err := pdb.Open(filepath.Join(s.DriversDir, "kdtdrv.pdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	bodies := cFunctionLines(t, s.DriversDir)

	args := []string{"symbols", "lookup", "--symbol-path", path, dump}
	var want []string
	withLines := 0
	for _, f := range s.Frames {
		a := fmt.Sprintf("%#x", f.IP)
		args = append(args, a)
		sym := "kdtdrv!" + f.Function
		if f.Offset != 0 {
			sym += fmt.Sprintf("+%#x", f.Offset)
		}
		// The line as the PDB read directly gives it; for functions of
		// kdtdrv.c it must lie in the function's body.
		if li, ok := p.LineAt(uint32(f.RVA())); ok && li.File != "" {
			sym += fmt.Sprintf(" (%s:%d)", li.File, li.Line)
			if r, isC := bodies[f.Function]; isC {
				withLines++
				if !strings.HasSuffix(strings.ReplaceAll(li.File, `\`, "/"), "/kdtdrv.c") || int(li.Line) < r[0] || int(li.Line) > r[1] {
					t.Errorf("%s+%#x: line %s:%d outside kdtdrv.c:%d-%d", f.Function, f.Offset, li.File, li.Line, r[0], r[1])
				}
			}
		} else if _, isC := bodies[f.Function]; isC {
			t.Errorf("%s+%#x: the PDB has no line", f.Function, f.Offset)
		}
		want = append(want, a+"\t"+sym)
	}
	if withLines < 6 {
		t.Errorf("only %d frames with lines", withLines)
	}
	// nt without symbols on the server, an unloaded driver, no module.
	nt := s.Facts.Modules[0].Base + 0x3F5A80
	args = append(args, fmt.Sprintf("%x", nt), "fffff80487de1234", "0x1234")
	want = append(want, fmt.Sprintf("%x\tnt+0x3f5a80", nt), "fffff80487de1234\tUnloaded_dam.sys+0x1234", "0x1234\t0x1234 (in no loaded module)")

	code, out, errOut := runWithLookup(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if got := strings.TrimSuffix(out, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("output:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	t.Logf("output:\n%s", out)
	// kdtdrv: image and PDB, a 404 for each plain file then the cabinet;
	// ntoskrnl.exe: three misses (plain, compressed, file.ptr).
	reqs := srv.Requests()
	ok := 0
	for _, r := range reqs {
		if strings.HasPrefix(r, "200 ") {
			ok++
			if !strings.HasSuffix(r, "_") {
				t.Errorf("served a plain file: %s", r)
			}
		}
	}
	if ok != 2 || len(reqs) != 7 {
		t.Errorf("requests: %q", reqs)
	}

	// JSON, from the cache: kdtdrv is not asked for again (ntoskrnl's
	// misses are remembered only per process).
	srv.Reset()
	code, out, errOut = runWithLookup(t, "symbols", "lookup", "--symbol-path", path, "--format", "json", dump, fmt.Sprintf("%#x", s.Frames[0].IP))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res []struct {
		Address, Symbol, Where, Image, Function, Source, File string
		ModuleBase                                            string `json:"module_base"`
		Offset                                                string
		Line                                                  uint32
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	li, _ := p.LineAt(uint32(s.Frames[0].RVA()))
	if len(res) != 1 || res[0].Address != fmt.Sprintf("%#x", s.Frames[0].IP) || res[0].Symbol != "kdtdrv!LeafTouch" || res[0].Where != "module" ||
		res[0].Image != "kdtdrv.sys" || res[0].ModuleBase != fmt.Sprintf("%#x", uint64(drvtest.Base)) || res[0].Source != "pdb" ||
		res[0].Function != "LeafTouch" || res[0].Offset != "0x0" || res[0].File != li.File || res[0].Line != li.Line {
		t.Errorf("json: %s", out)
	}
	if n, _ := srv.Count(); n != 0 {
		t.Errorf("second run asked the server: %q", srv.Requests())
	}
}

// TestSymbolsLookupDumpErrors: bad addresses, an unreadable dump, and no
// symbol path (module+offset).
func TestSymbolsLookupDumpErrors(t *testing.T) {
	s, dump, _, _ := driverScene(t, drvtest.Options{})
	if code, _, _ := runWithLookup(t, "symbols", "lookup", dump, "xyz"); code != exitFailure {
		t.Errorf("bad address: exit %d", code)
	}
	bad := filepath.Join(t.TempDir(), "bad.dmp")
	if err := os.WriteFile(bad, []byte("PAGEDU64 but nothing else"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := runWithLookup(t, "symbols", "lookup", bad, "0x1000"); code != exitBadDump {
		t.Errorf("bad dump: exit %d", code)
	}
	code, out, errOut := runWithLookup(t, "symbols", "lookup", "--symbol-cache", t.TempDir(), dump, fmt.Sprintf("%x", s.Frames[1].IP))
	if want := fmt.Sprintf("%x\tkdtdrv+%#x\n", s.Frames[1].IP, s.Frames[1].RVA()); code != 0 || out != want {
		t.Errorf("no symbol path: exit %d, %q (want %q), %s", code, out, want, errOut)
	}
}

// TestAnalyzeDriverDump runs `kdtriage analyze` on the driver dump with
// --symbol-path srv*CACHE*URL: the text report shows the symbolised stack
// (every frame kdtdrv!Function+0xoff, found by unwind data) and the
// bucket of the faulting function; without a symbol path the frames are
// kdtdrv+0xrva found by scanning and the bucket names no function.
func TestAnalyzeDriverDump(t *testing.T) {
	s, dump, srv, path := driverScene(t, drvtest.Options{})
	code, out, errOut := runCLI(t, "analyze", "--symbol-path", path, "--hash=false", dump)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	checkStackText(t, out, s.Frames, true)
	for _, want := range []string{"SYMBOL_NAME:  kdtdrv!LeafTouch+0\n", "IMAGE_NAME:  kdtdrv.sys\n", "FAILURE_BUCKET_ID:  AV_kdtdrv!LeafTouch\n",
		"Probably caused by : kdtdrv.sys ( kdtdrv!LeafTouch+0 )\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if _, ok := srv.Count(); ok != 2 {
		t.Errorf("requests %q", srv.Requests())
	}

	code, out, errOut = runCLI(t, "analyze", "--hash=false", dump)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	checkStackText(t, out, s.Frames[:3], false)
	for _, want := range []string{"SYMBOL_NAME:  kdtdrv+1000\n", "FAILURE_BUCKET_ID:  AV_kdtdrv!unknown_function\n", "Probably caused by : kdtdrv.sys ( kdtdrv+1000 )\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("report:\n%s", out)
	}
}

// checkStackText checks the STACK_TEXT lines of a text report: one per
// frame, in order, each "SP RET : SYMBOL [how]".
func checkStackText(t *testing.T, out string, frames []drvtest.Frame, named bool) {
	t.Helper()
	_, rest, ok := strings.Cut(out, "STACK_TEXT:  \n")
	if !ok {
		t.Fatalf("no STACK_TEXT in\n%s", out)
	}
	block, _, _ := strings.Cut(rest, "\n\n")
	lines := strings.Split(block, "\n")
	if len(lines) != len(frames) {
		t.Fatalf("%d stack lines, want %d:\n%s", len(lines), len(frames), block)
	}
	for i, f := range frames {
		sym := fmt.Sprintf("kdtdrv+0x%x", f.RVA())
		how := "scan"
		if named {
			sym, how = fmt.Sprintf("kdtdrv!%s+0x%x", f.Function, f.Offset), f.FoundBy
		}
		// Named frames of C functions carry their source position
		// ("[/path/kdtdrv.c @ 23]"), assembly ones none.
		pat := " : " + regexp.QuoteMeta(sym)
		if named {
			pat += `( \[[^\]]*kdtdrv\.c @ [0-9]+\])?`
		}
		if i > 0 {
			pat += regexp.QuoteMeta("    [" + how + "]")
		}
		if !regexp.MustCompile(pat + "$").MatchString(strings.TrimSuffix(lines[i], " <-- blamed")) {
			t.Errorf("stack line %d %q, want it to end in %s", i, lines[i], pat)
		}
	}
}

// TestSymbolsLookupUserDump resolves the crash address of the Breakpad
// corpus dump user/breakpad-minidump2.dmp with the corpus's Breakpad
// symbols: the module's debug identity comes from the minidump's CodeView
// record, and the function and line agree with minidump_stackwalk's
// groundtruth/minidump2.stackwalk.out.
func TestSymbolsLookupUserDump(t *testing.T) {
	dir := corpusDir(t)
	t.Setenv("_NT_SYMBOL_PATH", "")
	t.Setenv("KDTRIAGE_SYMBOLS_PATH", "")
	gt, err := os.ReadFile(filepath.Join(dir, "groundtruth", "minidump2.stackwalk.out"))
	if err != nil {
		t.Skipf("ground truth missing: %v", err)
	}
	// " 0  test_app.exe!FUNCTION [test_app.cc : 58 + 0x3]" then "eip = 0x...".
	m := regexp.MustCompile(`(?m)^ 0  test_app\.exe!(.+) \[(\S+) : (\d+) \+ 0x[0-9a-f]+\]\n\s+eip = (0x[0-9a-f]+)`).FindSubmatch(gt)
	if m == nil {
		t.Fatal("frame 0 not found in the ground truth")
	}
	fn, file, line, eip := string(m[1]), string(m[2]), string(m[3]), string(m[4])
	code, out, errOut := runWithLookup(t, "symbols", "lookup", "--symbol-path", filepath.Join(dir, "symbols", "breakpad"),
		"--format", "json", filepath.Join(dir, "user", "breakpad-minidump2.dmp"), eip)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var res []struct {
		Function, File, Image, Source string
		Line                          int
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res) != 1 {
		t.Fatalf("%v: %s", err, out)
	}
	r := res[0]
	if r.Function != fn || !strings.HasSuffix(r.File, file) || fmt.Sprint(r.Line) != line || r.Image != "test_app.exe" {
		t.Errorf("got %+v, want %s %s:%s", r, fn, file, line)
	}
}
