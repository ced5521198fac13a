package breakpad

import (
	"errors"
	"github.com/kdtriage/kdtriage/kdump/kdumptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const sample = `MODULE windows x86 5A9832E5287241C1838ED98914E9B7FF1 test_app.pdb
INFO CODE_ID 45D35F6C2d000 test_app.exe
FILE 1 c:\test_app.cc
FILE 2 c:\inc\inline.h
INLINE_ORIGIN 0 inlined_helper
INLINE_ORIGIN 1 deeper helper(int)
FUNC 1000 40 4 outer(int)
INLINE 0 12 1 0 1010 10 1030 8
INLINE 1 7 2 1 1014 4
1000 10 10 1
1010 10 3 2
1020 20 11 1
FUNC m 2000 10 0 folded name
2000 10 20 1
PUBLIC 1800 8 public_after_outer
PUBLIC m 3000 0 _start
bogus line here
STACK WIN 4 1000 40 3 0 4 0 8 0 1 $T0 $ebp = $eip $T0 4 + ^ =
STACK WIN 4 1008 10 0 0 0 0 0 0 1 $T2 $esp = $eip $T2 ^ =
STACK WIN 0 1000 40 3 0 4 0 8 0 0 1
STACK CFI INIT 2000 10 .cfa: $esp 4 + .ra: .cfa 4 - ^
STACK CFI 2001 .cfa: $esp 8 + $ebp: .cfa 8 - ^
STACK CFI 2004 .cfa: $ebp 8 +
STACK CFI 9000 .cfa: $esp 4 +
`

func mustParse(t *testing.T, s string) *File {
	t.Helper()
	f, err := Parse(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestParseSample(t *testing.T) {
	f := mustParse(t, sample)
	if want := (Module{"windows", "x86", "5A9832E5287241C1838ED98914E9B7FF1", "test_app.pdb"}); f.Module != want {
		t.Errorf("Module = %+v", f.Module)
	}
	if f.CodeID != "45D35F6C2d000" || f.CodeFile != "test_app.exe" {
		t.Errorf("INFO = %q %q", f.CodeID, f.CodeFile)
	}
	if len(f.Funcs) != 2 || len(f.Publics) != 2 || len(f.Win) != 3 || len(f.CFI) != 1 {
		t.Fatalf("counts: %d funcs, %d publics, %d win, %d cfi", len(f.Funcs), len(f.Publics), len(f.Win), len(f.CFI))
	}
	// "bogus line here" and the out-of-range CFI delta are skipped.
	if f.Skipped != 2 || f.FirstSkipped == nil || f.FirstSkipped.Line != 17 {
		t.Errorf("Skipped = %d, first %v", f.Skipped, f.FirstSkipped)
	}
	if fn := f.Funcs[1]; !fn.Multiple || fn.Name != "folded name" || fn.Addr != 0x2000 {
		t.Errorf("FUNC m = %+v", fn)
	}
	if p := f.Publics[1]; !p.Multiple || p.Name != "_start" {
		t.Errorf("PUBLIC m = %+v", p)
	}
	if w := f.Win[1]; w.Type != WinFPO || w.HasProgram || !w.AllocatesBasePointer {
		t.Errorf("STACK WIN 0 = %+v", w)
	}
	if w := f.Win[0]; w.Program != "$T0 $ebp = $eip $T0 4 + ^ =" || w.LocalsSize != 8 || w.PrologSize != 3 || w.ParamSize != 4 {
		t.Errorf("STACK WIN 4 = %+v", w)
	}
}

func TestLookup(t *testing.T) {
	f := mustParse(t, sample)
	tests := []struct {
		addr uint64
		want Location
		ok   bool
	}{
		{0x1005, Location{Function: "outer(int)", Base: 0x1000, ParamSize: 4, HasLine: true, File: `c:\test_app.cc`, Line: 10, LineBase: 0x1000}, true},
		{0x1011, Location{Function: "outer(int)", Base: 0x1000, ParamSize: 4, HasLine: true, File: `c:\inc\inline.h`, Line: 3, LineBase: 0x1010,
			Inlined: []InlineFrame{{"inlined_helper", `c:\test_app.cc`, 12}}}, true},
		{0x1015, Location{Function: "outer(int)", Base: 0x1000, ParamSize: 4, HasLine: true, File: `c:\inc\inline.h`, Line: 3, LineBase: 0x1010,
			Inlined: []InlineFrame{{"inlined_helper", `c:\test_app.cc`, 12}, {"deeper helper(int)", `c:\inc\inline.h`, 7}}}, true},
		{0x1033, Location{Function: "outer(int)", Base: 0x1000, ParamSize: 4, HasLine: true, File: `c:\test_app.cc`, Line: 11, LineBase: 0x1020,
			Inlined: []InlineFrame{{"inlined_helper", `c:\test_app.cc`, 12}}}, true},
		{0x1040, Location{}, false}, // past outer, before the PUBLIC
		{0x1900, Location{Function: "public_after_outer", Base: 0x1800, ParamSize: 8, Public: true}, true},
		{0x2005, Location{Function: "folded name", Base: 0x2000, HasLine: true, File: `c:\test_app.cc`, Line: 20, LineBase: 0x2000}, true},
		{0x2010, Location{}, false}, // past the FUNC that follows the PUBLIC
		{0x3000, Location{Function: "_start", Base: 0x3000, Public: true}, true},
		{0xFFFFFFFFFFFF, Location{Function: "_start", Base: 0x3000, Public: true}, true},
		{0x10, Location{}, false},
	}
	for _, tc := range tests {
		got, ok := f.Lookup(tc.addr)
		if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Lookup(%#x) = %+v %v\nwant %+v %v", tc.addr, got, ok, tc.want, tc.ok)
		}
	}
}

func TestCFIAndWin(t *testing.T) {
	f := mustParse(t, sample)
	tests := []struct {
		addr   uint64
		rules  []string
		merged map[string]string
	}{
		{0x2000, []string{".cfa: $esp 4 + .ra: .cfa 4 - ^"}, map[string]string{".cfa": "$esp 4 +", ".ra": ".cfa 4 - ^"}},
		{0x2003, []string{".cfa: $esp 4 + .ra: .cfa 4 - ^", ".cfa: $esp 8 + $ebp: .cfa 8 - ^"},
			map[string]string{".cfa": "$esp 8 +", ".ra": ".cfa 4 - ^", "$ebp": ".cfa 8 - ^"}},
		{0x200F, []string{".cfa: $esp 4 + .ra: .cfa 4 - ^", ".cfa: $esp 8 + $ebp: .cfa 8 - ^", ".cfa: $ebp 8 +"},
			map[string]string{".cfa": "$ebp 8 +", ".ra": ".cfa 4 - ^", "$ebp": ".cfa 8 - ^"}},
		{0x2010, nil, nil},
	}
	for _, tc := range tests {
		c, ok := f.FindCFI(tc.addr)
		if ok != (tc.rules != nil) || !reflect.DeepEqual(c.Rules, tc.rules) {
			t.Errorf("FindCFI(%#x) = %q %v", tc.addr, c.Rules, ok)
			continue
		}
		if ok && !reflect.DeepEqual(c.Merged(), tc.merged) {
			t.Errorf("FindCFI(%#x).Merged() = %v", tc.addr, c.Merged())
		}
	}
	winTests := []struct {
		addr uint64
		rva  uint32
		typ  WinType
		ok   bool
	}{
		{0x1000, 0x1000, WinFrameData, true},
		{0x1009, 0x1008, WinFrameData, true}, // innermost
		{0x1020, 0x1000, WinFrameData, true}, // FRAME_DATA preferred to FPO
		{0x1040, 0, 0, false},
	}
	for _, tc := range winTests {
		w, ok := f.FindWin(tc.addr)
		if ok != tc.ok || ok && (w.RVA != tc.rva || w.Type != tc.typ) {
			t.Errorf("FindWin(%#x) = %+v %v", tc.addr, w, ok)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want func(error) bool
	}{
		{"empty", "", func(err error) bool { return errors.Is(err, ErrNotSymbolFile) }},
		{"no module", "FILE 1 a.c\n", func(err error) bool { return errors.Is(err, ErrNotSymbolFile) }},
		{"short module", "MODULE windows x86\n", isSyntax},
		{"long line", "MODULE windows x86 ID a.pdb\nFUNC 1 1 0 " + strings.Repeat("x", MaxLineLength) + "\n", isSyntax},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.in))
			if !tc.want(err) {
				t.Errorf("error = %v", err)
			}
		})
	}
	// CRLF line ends and a missing final newline are fine.
	f := mustParse(t, "MODULE windows x86 ID a.pdb\r\nFUNC 10 5 0 f\r\n10 5 7 1\r\nFILE 1 a.c")
	if loc, ok := f.Lookup(0x12); !ok || loc.Line != 7 || loc.File != "a.c" {
		t.Errorf("CRLF lookup = %+v %v", loc, ok)
	}
}

func isSyntax(err error) bool {
	var se *SyntaxError
	return errors.As(err, &se)
}

func TestParseRules(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
	}{
		{".cfa: $rsp 16 + .ra: .cfa -8 + ^", map[string]string{".cfa": "$rsp 16 +", ".ra": ".cfa -8 + ^"}},
		{"$rbx: .cfa -16 + ^ .cfa: $rsp 16 +", map[string]string{"$rbx": ".cfa -16 + ^", ".cfa": "$rsp 16 +"}},
		{"garbage before: x", map[string]string{"before": "x"}},
		{"r:", map[string]string{}},
		{"", map[string]string{}},
	}
	for _, tc := range tests {
		if got := ParseRules(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseRules(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestStorePath(t *testing.T) {
	tests := []struct{ file, id, want string }{
		{"test_app.pdb", "5a9832e5287241c1838ed98914e9b7ff1", "test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym"},
		{`c:\x\kernel32.PDB`, "ID", "kernel32.PDB/ID/kernel32.sym"},
		{"null_read_av", "7B7D", "null_read_av/7B7D/null_read_av.sym"},
	}
	for _, tc := range tests {
		if got := StorePath(tc.file, tc.id); got != tc.want {
			t.Errorf("StorePath(%q, %q) = %q, want %q", tc.file, tc.id, got, tc.want)
		}
	}
}

// corpusDir returns ../shared/corpus relative to the module root, or
// $KDTRIAGE_CORPUS, skipping the test when it is absent.
func corpusDir(t testing.TB) string {
	t.Helper()
	return kdumptest.CorpusDir(t)
}

// TestCorpus parses every .sym file in the corpus store layout and checks
// the lookups behind groundtruth/minidump2.stackwalk.out.
func TestCorpus(t *testing.T) {
	root := filepath.Join(corpusDir(t), "symbols", "breakpad")
	paths, _ := filepath.Glob(filepath.Join(root, "*", "*", "*.sym"))
	if len(paths) == 0 {
		t.Skip("no .sym files in the corpus")
	}
	files := map[string]*File{}
	for _, p := range paths {
		f, err := Open(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		rel, _ := filepath.Rel(root, p)
		if want := filepath.ToSlash(rel); StorePath(f.Module.Name, f.Module.ID) != want {
			t.Errorf("%s: MODULE %+v does not map to its store path", rel, f.Module)
		}
		if f.Skipped != 0 {
			t.Errorf("%s: %d records skipped, first: %v", rel, f.Skipped, f.FirstSkipped)
		}
		// Every FUNC's start and last byte resolve to it.
		for _, fn := range f.Funcs {
			for _, a := range []uint64{fn.Addr, fn.Addr + fn.Size - 1} {
				if loc, ok := f.Lookup(a); !ok || loc.Base != fn.Addr {
					t.Errorf("%s: Lookup(%#x) = %+v %v, want FUNC at %#x", rel, a, loc, ok, fn.Addr)
				}
			}
		}
		files[f.Module.Name] = f
		t.Logf("%s: %d FUNC, %d PUBLIC, %d FILE, %d CFI, %d WIN", rel, len(f.Funcs), len(f.Publics), len(f.Files), len(f.CFI), len(f.Win))
	}
	app, k32 := files["test_app.pdb"], files["kernel32.pdb"]
	if app == nil || k32 == nil {
		t.Skip("test_app.sym or kernel32.sym missing")
	}
	// The frames of minidump2.stackwalk.out: lookups use the return
	// address minus one for callers; offsets are from the instruction.
	frames := []struct {
		f          *File
		lookup, ip uint64
		fn, file   string
		line       uint32
		lineOff    uint64
	}{
		{app, 0x429e, 0x429e, "`anonymous namespace'::CrashFunction", `c:\test_app.cc`, 58, 0x3},
		{app, 0x41ff, 0x4200, "main", `c:\test_app.cc`, 65, 0x5},
		{app, 0x53eb, 0x53ec, "__tmainCRTStartup", `f:\sp\vctools\crt_bld\self_x86\crt\src\crt0.c`, 327, 0x12},
		{k32, 0x16fd6, 0x16fd7, "BaseProcessStart", "", 0, 0},
	}
	for _, fr := range frames {
		loc, ok := fr.f.Lookup(fr.lookup)
		if !ok || loc.Function != fr.fn || loc.File != fr.file || loc.Line != fr.line {
			t.Errorf("Lookup(%#x) = %+v %v, want %s %s:%d", fr.lookup, loc, ok, fr.fn, fr.file, fr.line)
			continue
		}
		if loc.HasLine && fr.ip-loc.LineBase != fr.lineOff {
			t.Errorf("%s: line offset %#x, want %#x", fr.fn, fr.ip-loc.LineBase, fr.lineOff)
		}
		if !loc.HasLine && fr.ip-loc.Base != 0x23 {
			t.Errorf("%s: public offset %#x, want 0x23", fr.fn, fr.ip-loc.Base)
		}
		if _, ok := fr.f.FindWin(fr.lookup); !ok {
			t.Errorf("no STACK WIN for %s at %#x", fr.fn, fr.lookup)
		}
	}
	if w, ok := k32.FindWin(0x16fd6); !ok || w.RVA != 0x16fb4 || w.Type != WinFrameData || w.ParamSize != 4 {
		t.Errorf("kernel32 STACK WIN at 0x16fd6 = %+v %v", w, ok)
	}
	if av := files["null_read_av"]; av != nil {
		c, ok := av.FindCFI(0x2141)
		if !ok || c.Merged()[".cfa"] != "$rsp 16 +" || c.Merged()["$rbx"] != ".cfa -16 + ^" {
			t.Errorf("null_read_av CFI at 0x2141 = %+v %v", c, ok)
		}
	}
}
