package triage

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/symbols"
)

// userDumps returns the corpus's user-mode dumps or skips the test.
func userDumps(t testing.TB) (dir string, files []string) {
	t.Helper()
	dir = corpusDir(t)
	files, _ = filepath.Glob(filepath.Join(dir, "user", "*.dmp"))
	if len(files) == 0 {
		t.Skipf("no user-mode dumps under %s/user", dir)
	}
	return dir, files
}

// breakpadSymbolizer returns the real Symbolizer over the corpus's
// Breakpad symbol store (NAME/ID/NAME.sym).
func breakpadSymbolizer(t testing.TB, dir string) Symbolizer {
	t.Helper()
	p, err := symbols.ParsePath(filepath.Join(dir, "symbols", "breakpad"))
	if err != nil {
		t.Fatal(err)
	}
	chain, err := symbols.NewChain(p, symbols.Options{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	return FromSymbols(symbols.NewSymbolizer(symbols.SymbolizerOptions{Store: chain}))
}

func analyzeUserFile(t testing.TB, path string, opts Options) *Report {
	t.Helper()
	d, err := kdump.OpenAny(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer d.Close()
	rep, err := Analyze(context.Background(), d, opts)
	if err != nil {
		t.Fatalf("Analyze(%s): %v", path, err)
	}
	return rep
}

// TestUserModeCorpus analyses every user-mode dump of the corpus and checks
// that each report is complete and self-consistent, renders in every
// format and follows the documented JSON schema, and that the crash facts
// agree with the dump's own exception record.
func TestUserModeCorpus(t *testing.T) {
	dir, files := userDumps(t)
	schema := loadSchema(t)
	set := defaultRules(t)
	// Classes the dumps' names and sources document (Breakpad's and
	// rust-minidump's test dumps are named after the crash they hold).
	wantClass := map[string]string{
		"breakpad-minidump2.dmp":              "NULL_CLASS_PTR_WRITE",
		"breakpad-null_read_av.dmp":           "NULL_POINTER_READ",
		"breakpad-read_av_non_null.dmp":       "INVALID_POINTER_READ",
		"breakpad-write_av_non_null.dmp":      "INVALID_POINTER_WRITE",
		"breakpad-ascii_write_av.dmp":         "INVALID_POINTER_WRITE",
		"breakpad-tiny-exe-fastfail.dmp":      "FAIL_FAST_FATAL_APP_EXIT",
		"rust-minidump-invalid-parameter.dmp": "INVALID_PARAMETER",
		"breakpad-linux_null_read_av.dmp":     "SIGSEGV",
		"breakpad-linux_divide_by_zero.dmp":   "SIGFPE",
	}
	wantDetail := map[string]string{
		"breakpad-tiny-exe-fastfail.dmp":      "FAST_FAIL_FATAL_APP_EXIT",
		"rust-minidump-invalid-parameter.dmp": "invalid parameter: format != nullptr in common_vfprintf",
	}
	var reps []*Report
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			rep := analyzeUserFile(t, path, Options{Rules: set, Source: SourceInfo{File: name}, LegacyBucket: true})
			reps = append(reps, rep)
			if rep.AnalysisSource != SourceUser {
				t.Errorf("analysis source %q", rep.AnalysisSource)
			}
			if rep.FailureBucketID == "" || rep.FailureIDHash != FailureIDHash(SourceUser, rep.FailureBucketID) ||
				rep.FailureIDHashString != "um:"+strings.ToLower(rep.FailureBucketID) {
				t.Errorf("bucket %q hash %s (%s)", rep.FailureBucketID, rep.FailureIDHash, rep.FailureIDHashString)
			}
			x := rep.Exception
			if x == nil || x.Class == "" || !strings.HasPrefix(rep.FailureBucketID, x.Class+"_") {
				t.Fatalf("exception %+v, bucket %q", x, rep.FailureBucketID)
			}
			if w, ok := wantClass[name]; ok && x.Class != w {
				t.Errorf("class %s, want %s", x.Class, w)
			}
			if w, ok := wantDetail[name]; ok && !strings.HasPrefix(x.Detail, w) {
				t.Errorf("detail %q, want %q...", x.Detail, w)
			}
			if rep.ProcessName == "" || rep.ModuleCount == 0 || len(rep.Stack) == 0 || rep.StackCommand == "" {
				t.Errorf("incomplete: process %q, %d modules, %d frames, stack command %q", rep.ProcessName, rep.ModuleCount, len(rep.Stack), rep.StackCommand)
			}
			if rep.Culprit.Kind == CulpritFrame {
				fr := rep.Stack[rep.Culprit.Frame]
				if !fr.Blamed || !strings.HasSuffix(rep.FailureBucketID, "_"+fr.Image+"!"+bucketFunction(fr.Function)) {
					t.Errorf("bucket %q does not end with the blamed frame %+v", rep.FailureBucketID, fr)
				}
			}
			// The crash facts are the dump's own.
			d, err := kdump.OpenAny(path)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			md := d.(*kdump.UserDump).Minidump()
			if e, err := md.Exception(); err == nil {
				if uint32(x.Code) != e.Code || uint64(x.Address) != e.Address || x.ThreadID != e.ThreadID {
					t.Errorf("exception %+v, dump %+v", x, e)
				}
				if addr, _ := md.CrashAddress(); uint64(x.CrashAddress) != addr || x.Reason != md.CrashReason() {
					t.Errorf("crash %s at %s, dump %s at %#x", x.Reason, x.CrashAddress, md.CrashReason(), addr)
				}
				if c, err := d.Context(); err == nil && uint64(rep.Stack[0].IP) != c.IP() {
					t.Errorf("frame 0 at %s, exception context IP %#x", rep.Stack[0].IP, c.IP())
				}
			} else if x.Class != "NO_EXCEPTION" {
				t.Errorf("no exception stream but class %s", x.Class)
			}
			var text, js bytes.Buffer
			if err := rep.WriteText(&text, TextOptions{Legacy: true}); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"Exception Analysis", "STACK_TEXT:", "FAILURE_BUCKET_ID:  " + rep.FailureBucketID, "FAILURE_ID_HASH:  " + rep.FailureIDHash, "ANALYSIS_SOURCE:  UM"} {
				if !strings.Contains(text.String(), want) {
					t.Errorf("text lacks %q", want)
				}
			}
			if strings.Contains(text.String(), "Bugcheck Analysis") || strings.Contains(text.String(), "BUGCHECK_CODE") {
				t.Error("user-mode text shows bug-check fields")
			}
			if err := rep.WriteJSON(&js, false); err != nil {
				t.Fatal(err)
			}
			var v any
			if err := json.Unmarshal(js.Bytes(), &v); err != nil {
				t.Fatal(err)
			}
			for _, e := range validate(schema, schema, v, "$") {
				t.Errorf("schema: %s", e)
			}
			row := ReportRow(rep)
			if row.Bucket != rep.FailureBucketID || row.BugCheckCode != "0x"+strings.Repeat("0", 8-len(strconv.FormatUint(uint64(x.Code), 16)))+strconv.FormatUint(uint64(x.Code), 16) {
				t.Errorf("row %+v", row)
			}
		})
	}
	var table, csv bytes.Buffer
	if err := WriteTable(&table, reps); err != nil {
		t.Fatal(err)
	}
	if err := WriteCSV(&csv, reps); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(csv.String(), "\n"); n != len(reps)+1 {
		t.Errorf("CSV has %d lines for %d reports", n, len(reps))
	}
	_ = dir
}

// stackwalkFrame is one frame of minidump_stackwalk's crashed thread.
type stackwalkFrame struct {
	module, function, file string
	line                   int
	offset                 uint64 // "+ 0x23" after the function (no source line)
	hasOffset              bool
	eip, esp               uint64
	foundBy                string
}

var (
	swFrameRE = regexp.MustCompile(`^\s*\d+\s+([^!\s]+)!(.*?)(?: \[(.+) : (\d+) \+ 0x[0-9a-f]+\]| \+ (0x[0-9a-f]+))?$`)
	swRegRE   = regexp.MustCompile(`([a-z]{2,3}) = (0x[0-9a-f]+)`)
)

// readStackwalk reads minidump_stackwalk's text output: the crash reason
// and address and the crashed thread's frames.
func readStackwalk(t *testing.T, path string) (reason string, addr uint64, frames []stackwalkFrame) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	in := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "Crash reason:"):
			reason = strings.TrimSpace(strings.TrimPrefix(line, "Crash reason:"))
		case strings.HasPrefix(line, "Crash address:"):
			addr, _ = strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(strings.TrimPrefix(line, "Crash address:")), "0x"), 16, 64)
		case strings.HasSuffix(line, "(crashed)"):
			in = true
		case !in:
		case line == "":
			if len(frames) > 0 {
				return
			}
		case strings.Contains(line, "Found by:"):
			frames[len(frames)-1].foundBy = strings.TrimSpace(strings.SplitN(line, "Found by:", 2)[1])
		case swFrameRE.MatchString(line):
			m := swFrameRE.FindStringSubmatch(line)
			f := stackwalkFrame{module: m[1], function: m[2], file: m[3]}
			if m[4] != "" {
				f.line, _ = strconv.Atoi(m[4])
			}
			if m[5] != "" {
				f.offset, _ = strconv.ParseUint(m[5][2:], 16, 64)
				f.hasOffset = true
			}
			frames = append(frames, f)
		case len(frames) > 0:
			for _, r := range swRegRE.FindAllStringSubmatch(line, -1) {
				v, _ := strconv.ParseUint(r[2][2:], 16, 64)
				switch r[1] {
				case "eip":
					frames[len(frames)-1].eip = v
				case "esp":
					frames[len(frames)-1].esp = v
				}
			}
		}
	}
	return
}

// TestUserModeMinidump2Stackwalk analyses Breakpad's minidump2 with the
// real Symbolizer over the corpus's Breakpad symbol store and compares the
// crash and the symbolised stack with minidump_stackwalk's output.
func TestUserModeMinidump2Stackwalk(t *testing.T) {
	dir := corpusDir(t)
	rep := analyzeUserFile(t, filepath.Join(dir, "user", "breakpad-minidump2.dmp"), Options{Symbols: breakpadSymbolizer(t, dir)})
	reason, addr, want := readStackwalk(t, filepath.Join(dir, "groundtruth", "minidump2.stackwalk.out"))
	if len(want) == 0 {
		t.Fatal("no frames in the ground truth")
	}
	x := rep.Exception
	if x.Reason != reason || uint64(x.CrashAddress) != addr {
		t.Errorf("crash %s at %s; minidump_stackwalk %s at %#x", x.Reason, x.CrashAddress, reason, addr)
	}
	if len(rep.Stack) != len(want) {
		t.Fatalf("%d frames, minidump_stackwalk %d: %+v", len(rep.Stack), len(want), rep.Stack)
	}
	foundBy := map[string]string{"given as instruction pointer in context": "context", "call frame info": "cfi",
		"stack scanning": "scan", "previous frame's frame pointer": "frame_pointer"}
	for i, fr := range rep.Stack {
		w := want[i]
		if fr.Image != w.module || fr.Function != w.function || uint64(fr.IP) != w.eip || uint64(fr.SP) != w.esp || fr.FoundBy != foundBy[w.foundBy] {
			t.Errorf("frame %d: %s %s!%s ip %s sp %s (%s); minidump_stackwalk %s!%s eip %#x esp %#x (%s)",
				i, fr.Symbol, fr.Image, fr.Function, fr.IP, fr.SP, fr.FoundBy, w.module, w.function, w.eip, w.esp, w.foundBy)
		}
		if w.file != "" && (baseName(fr.SourceFile) != baseName(w.file) || fr.SourceLine != w.line) {
			t.Errorf("frame %d: source %s:%d; minidump_stackwalk %s:%d", i, fr.SourceFile, fr.SourceLine, w.file, w.line)
		}
		if w.hasOffset {
			// Both give the offset of the address itself (the function is
			// looked up one byte back for return addresses).
			if off := uint64(*fr.FuncOffset); off != w.offset {
				t.Errorf("frame %d: %s+%#x; minidump_stackwalk +%#x", i, fr.Function, off, w.offset)
			}
		}
	}
	if rep.FailureBucketID != "NULL_CLASS_PTR_WRITE_c0000005_test_app.exe!`anonymous_namespace'::CrashFunction" {
		t.Errorf("bucket %s", rep.FailureBucketID)
	}
	if rep.Culprit.Frame != 0 || rep.Culprit.Confidence != ConfidenceHigh {
		t.Errorf("culprit %+v", rep.Culprit)
	}
}

// TestGoldenUserMode keeps text and JSON reports of user-mode dumps as
// golden files (testdata/golden/um-*).
func TestGoldenUserMode(t *testing.T) {
	dir := corpusDir(t)
	set := goldenRules(t)
	sym := breakpadSymbolizer(t, dir)
	for _, c := range []struct {
		file string
		sym  Symbolizer
	}{
		{"breakpad-minidump2.dmp", sym},
		{"breakpad-tiny-exe-fastfail.dmp", nil},
		{"electron-crashpad.dmp", nil},
	} {
		rep := analyzeUserFile(t, filepath.Join(dir, "user", c.file), Options{Rules: set, Symbols: c.sym, Source: SourceInfo{File: c.file}})
		var text, js bytes.Buffer
		if err := rep.WriteText(&text, TextOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := rep.WriteJSON(&js, true); err != nil {
			t.Fatal(err)
		}
		base := "um-" + strings.TrimSuffix(c.file, ".dmp")
		checkGolden(t, base+".txt", text.Bytes())
		checkGolden(t, base+".json", js.Bytes())
	}
}

func TestAVClass(t *testing.T) {
	cases := []struct {
		access string
		addr   uint64
		ptr    int
		dep    bool
		target string
		class  string
	}{
		{"write", 0x45, 4, false, "null_offset", "NULL_CLASS_PTR_WRITE"},
		{"read", 0, 8, false, "null", "NULL_POINTER_READ"},
		{"write", 0, 8, false, "null", "NULL_POINTER_WRITE"},
		{"read", 0xffff, 8, false, "null_offset", "NULL_CLASS_PTR_READ"},
		{"read", 0x10000, 8, false, "user", "INVALID_POINTER_READ"},
		{"write", 0xdeadbeef, 4, false, "kernel", "INVALID_POINTER_WRITE"},
		{"read", ^uint64(0), 8, false, "non_canonical", "INVALID_POINTER_READ"},
		{"read", 0x8000000000000000, 8, false, "non_canonical", "INVALID_POINTER_READ"},
		{"write", 0xffff800000001000, 8, false, "kernel", "INVALID_POINTER_WRITE"},
		{"execute", 0, 8, false, "null", "NULL_INSTRUCTION_PTR"},
		{"execute", 0x7ff600001000, 8, true, "user", "SOFTWARE_NX_FAULT"},
		{"execute", 0x7ff600001000, 8, false, "user", "BAD_INSTRUCTION_PTR"},
		{"", 0x1234, 8, false, "null_offset", "ACCESS_VIOLATION"},
	}
	for _, c := range cases {
		tc := addressClass(c.addr, c.ptr)
		if tc != c.target {
			t.Errorf("addressClass(%#x, %d) = %s, want %s", c.addr, c.ptr, tc, c.target)
		}
		if got := avClass(c.access, tc, c.dep); got != c.class {
			t.Errorf("avClass(%s, %s, %v) = %s, want %s", c.access, tc, c.dep, got, c.class)
		}
	}
}

func TestFastFailClass(t *testing.T) {
	cases := []struct {
		code uint64
		has  bool
		want string
	}{
		{2, true, "STACK_BUFFER_OVERRUN"}, {0, true, "STACK_BUFFER_OVERRUN"}, {0, false, "STACK_BUFFER_OVERRUN"},
		{7, true, "FAIL_FAST_FATAL_APP_EXIT"}, {3, true, "FAIL_FAST_CORRUPT_LIST_ENTRY"},
		{10, true, "FAIL_FAST_GUARD_ICALL_CHECK_FAILURE"}, {999, true, "FAIL_FAST_999"},
	}
	for _, c := range cases {
		if got := fastFailClass(c.code, c.has); got != c.want {
			t.Errorf("fastFailClass(%d, %v) = %s, want %s", c.code, c.has, got, c.want)
		}
	}
}

func TestUserNames(t *testing.T) {
	for in, want := range map[string]string{"App.exe": "App", "ntdll.dll": "ntdll", "libc.so.6": "libc.so.6", "crash": "crash", "a.b.DLL": "a.b"} {
		if got := userModuleName(in); got != want {
			t.Errorf("userModuleName(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"EXCEPTION_ACCESS_VIOLATION_WRITE": "EXCEPTION_ACCESS_VIOLATION_WRITE", "SIGSEGV": "SIGSEGV", "EXC_BAD_ACCESS / KERN": "EXC_BAD_ACCESS___KERN"} {
		if got := tokenize(in); got != want {
			t.Errorf("tokenize(%q) = %q, want %q", in, got, want)
		}
	}
	if bucketFunction("") != "Unknown" || bucketFunction("`anonymous namespace'::f") != "`anonymous_namespace'::f" {
		t.Error("bucketFunction")
	}
	for code, name := range map[uint32]string{0xC0000005: "EXCEPTION_ACCESS_VIOLATION", 0xC0000374: "STATUS_HEAP_CORRUPTION",
		0xC0000409: "STATUS_STACK_BUFFER_OVERRUN", 0x80000003: "EXCEPTION_BREAKPOINT", 0xC00000FD: "EXCEPTION_STACK_OVERFLOW",
		0xC0000135: "STATUS_DLL_NOT_FOUND", 0xE06D7363: "CPP_EH_EXCEPTION", 0xC000001D: "EXCEPTION_ILLEGAL_INSTRUCTION",
		0xC0000094: "EXCEPTION_INT_DIVIDE_BY_ZERO"} {
		if got := exceptionName(code); got != name {
			t.Errorf("exceptionName(%#x) = %q, want %q", code, got, name)
		}
		if exceptionTable[code].class == "" {
			t.Errorf("no class for %#x", code)
		}
	}
}

// TestUserModeRules checks that the rules decide user-mode blame and
// buckets: an ignored faulting frame hands the blame to its caller, a
// last_ module yields to the first frame below it, and crash-level rules
// (kind user, exception code) add owners, tags and bucket suffixes.
func TestUserModeRules(t *testing.T) {
	dir := corpusDir(t)
	path := filepath.Join(dir, "user", "breakpad-minidump2.dmp")
	sym := breakpadSymbolizer(t, dir)
	cases := []struct {
		name       string
		rules      string
		frame      int
		conf       Confidence
		bucket     string
		followup   string
		tag        string
		kernelOnly bool
		why        string
	}{
		{name: "unowned", rules: "version: 1\n", frame: 0, conf: ConfidenceHigh,
			bucket: "NULL_CLASS_PTR_WRITE_c0000005_test_app.exe!`anonymous_namespace'::CrashFunction"},
		{name: "ignored top", rules: "version: 1\nowners:\n  test_app!`anonymous*: ignore\n  default: Apps\n",
			frame: 1, conf: ConfidenceMedium, bucket: "NULL_CLASS_PTR_WRITE_c0000005_test_app.exe!main", followup: "Apps"},
		{name: "last_ module", rules: "version: 1\nowners:\n  test_app!`anonymous*: last_Apps\n  test_app!main: Team_Main\n",
			frame: 1, conf: ConfidenceMedium, bucket: "NULL_CLASS_PTR_WRITE_c0000005_test_app.exe!main", followup: "Team_Main"},
		{name: "crash-level rule", rules: "version: 1\nrules:\n  - id: um-av\n    when:\n      kind: user\n      exception: 0xC0000005\n    then:\n      owner: Crash_Team\n      tags: [av]\n      bucket_suffix: _KI1\n",
			frame: 0, conf: ConfidenceHigh, bucket: "NULL_CLASS_PTR_WRITE_c0000005_test_app.exe!`anonymous_namespace'::CrashFunction_KI1", followup: "Crash_Team", tag: "av"},
		{name: "kernel-only rule", rules: "version: 1\nrules:\n  - id: km\n    when:\n      kind: kernel\n      code: 0xD1\n    then:\n      owner: Kernel_Team\n",
			frame: 0, conf: ConfidenceHigh, bucket: "NULL_CLASS_PTR_WRITE_c0000005_test_app.exe!`anonymous_namespace'::CrashFunction", kernelOnly: true},
		{name: "everything ignored", rules: "version: 1\nowners:\n  default: ignore\n",
			frame: -1, conf: ConfidenceLow, bucket: "NULL_CLASS_PTR_WRITE_c0000005_Unknown_Image!Unknown",
			why: "every frame below that lies in a module is ignored by the rules (3 frame(s)), so no frame is at fault"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := analyzeUserFile(t, path, Options{Symbols: sym, Rules: rulesFromText(t, c.rules)})
			if rep.Culprit.Frame != c.frame || rep.Culprit.Confidence != c.conf || rep.FailureBucketID != c.bucket || rep.Followup != c.followup {
				t.Errorf("culprit frame %d %s, bucket %s, followup %q; want frame %d %s, %s, %q\nwhy: %q",
					rep.Culprit.Frame, rep.Culprit.Confidence, rep.FailureBucketID, rep.Followup, c.frame, c.conf, c.bucket, c.followup, rep.Why)
			}
			if why := strings.Join(rep.Why, "\n"); c.why != "" && !strings.Contains(why, c.why) {
				t.Errorf("why lacks %q:\n%s", c.why, why)
			}
			if c.tag != "" && (len(rep.Rules.Tags) != 1 || rep.Rules.Tags[0] != c.tag) {
				t.Errorf("tags %v", rep.Rules.Tags)
			}
			if c.kernelOnly && len(rep.Rules.Fired) != 0 {
				t.Errorf("a kernel rule fired on a user dump: %+v", rep.Rules.Fired)
			}
		})
	}
}
