package symbols

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kdtriage/kdtriage/symbols/pdb"
	"github.com/kdtriage/kdtriage/symbols/pe"
)

// symCorpusDir returns the corpus symbols directory (../shared/corpus from
// the module root, or $KDTRIAGE_CORPUS), skipping when absent.
func symCorpusDir(t testing.TB) string {
	t.Helper()
	c := os.Getenv("KDTRIAGE_CORPUS")
	if c == "" {
		c = filepath.Join("..", "..", "shared", "corpus")
	}
	d := filepath.Join(c, "symbols")
	if _, err := os.Stat(d); err != nil {
		t.Skipf("corpus not found at %s (set KDTRIAGE_CORPUS): %v", c, err)
	}
	return d
}

// testStore is a Store over explicit files (key -> path) and, optionally, a
// directory in Name/ID/File layout. It counts fetches per key.
type testStore struct {
	files map[string]string
	root  string

	mu     sync.Mutex
	counts map[string]int
	block  chan struct{} // if set, Fetch waits for it
}

func (s *testStore) Fetch(ctx context.Context, k Key) (string, error) {
	if err := k.Validate(); err != nil {
		return "", err
	}
	s.mu.Lock()
	if s.counts == nil {
		s.counts = map[string]int{}
	}
	s.counts[k.String()]++
	s.mu.Unlock()
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if p, ok := s.files[k.String()]; ok {
		return p, nil
	}
	if s.root != "" {
		p := filepath.Join(s.root, k.Name, k.ID, k.File)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", &NotFoundError{Key: k}
}

func (s *testStore) count(k Key) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[k.String()]
}

func symGUID(t testing.TB, s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func simplePDBModule(t testing.TB) ModuleID {
	return ModuleID{
		Name: `C:\bin\SimplePDB.exe`, Base: 0x400000, Size: 0x6000,
		PDBName: `c:\build\SimplePDB.pdb`, PDBGUID: symGUID(t, "{1516D2A3-E686-4C06-BD82-C50FBE615236}"), PDBAge: 3,
	}
}

func TestSymbolString(t *testing.T) {
	tests := []struct {
		s    Symbol
		want string
	}{
		{Symbol{Module: "nt", Function: "KeBugCheckEx"}, "nt!KeBugCheckEx"},
		{Symbol{Module: "amdppm", Function: "WriteIoMemRawEx", Offset: 0x112}, "amdppm!WriteIoMemRawEx+0x112"},
		{Symbol{Module: "amdppm", Offset: 0x334c}, "amdppm+0x334c"},
		{Symbol{Module: "x", Offset: 0}, "x+0x0"},
	}
	for _, tc := range tests {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func TestModuleID(t *testing.T) {
	m := ModuleID{Name: `\SystemRoot\system32\ntoskrnl.exe`, TimeDateStamp: 0x5F0C1F1C, Size: 0xA4F000,
		PDBName: "ntkrnlmp.pdb", PDBGUID: symGUID(t, "{3844DBB9-2017-4967-BE7A-A4A2C20430FA}"), PDBAge: 1}
	if got := m.ShortName(); got != "nt" {
		t.Errorf("ShortName = %q", got)
	}
	if k, ok := m.ImageKey(); !ok || k.String() != "ntoskrnl.exe/5F0C1F1Ca4f000/ntoskrnl.exe" {
		t.Errorf("ImageKey = %v %v", k, ok)
	}
	if k, ok := m.PDBKey(); !ok || k.String() != "ntkrnlmp.pdb/3844DBB920174967BE7AA4A2C20430FA1/ntkrnlmp.pdb" {
		t.Errorf("PDBKey = %v %v", k, ok)
	}
	if k, ok := m.BreakpadKey(); !ok || k.String() != "ntkrnlmp.pdb/3844DBB920174967BE7AA4A2C20430FA1/ntkrnlmp.sym" {
		t.Errorf("BreakpadKey = %v %v", k, ok)
	}
	nb10 := ModuleID{Name: "old.dll", PDBName: "old.pdb", PDBSignature: 0x3A2B1C0D, PDBAge: 2}
	if k, ok := nb10.PDBKey(); !ok || k.ID != "3A2B1C0D2" {
		t.Errorf("NB10 PDBKey = %v %v", k, ok)
	}
	none := ModuleID{Name: "x.sys"}
	if _, ok := none.PDBKey(); ok {
		t.Error("PDBKey without identity")
	}
	if _, ok := none.ImageKey(); ok {
		t.Error("ImageKey without timestamp")
	}
	if _, ok := none.BreakpadKey(); ok {
		t.Error("BreakpadKey without id")
	}
	for in, want := range map[string]string{"amdppm.sys": "amdppm", "HAL.DLL": "hal", "a.b.dll": "a.b", "noext": "noext", `C:\x\test_app.exe`: "test_app"} {
		if got := ModuleShortName(in); got != want {
			t.Errorf("ModuleShortName(%q) = %q, want %q", in, got, want)
		}
	}
	mods := []ModuleID{{Name: "a", Base: 0x1000, Size: 0x100}, {Name: "b", Base: 0x2000, Size: 0x100}}
	if m, ok := FindModule(mods, 0x20ff); !ok || m.Name != "b" {
		t.Errorf("FindModule = %v %v", m, ok)
	}
	if _, ok := FindModule(mods, 0x2100); ok {
		t.Error("FindModule past the end")
	}
}

func TestSymbolizePDB(t *testing.T) {
	dir := symCorpusDir(t)
	m := simplePDBModule(t)
	k, _ := m.PDBKey()
	store := &testStore{files: map[string]string{k.String(): filepath.Join(dir, "SimplePDB.pdb")}}
	s := NewSymbolizer(SymbolizerOptions{Store: store})
	ctx := context.Background()
	// Extents from llvm-pdbutil: SomeCoolFunction 0001:0000 (13 bytes),
	// main 0001:0016 (8 bytes), __security_check_cookie 0001:0024; .text at 0x1000.
	tests := []struct {
		rva  uint64
		want string
		src  SymbolSource
	}{
		{0x1000, "SimplePDB!SomeCoolFunction", SymbolSourcePDB},
		{0x1012, "SimplePDB!main+0x2", SymbolSourcePDB},
		{0x1018, "SimplePDB!__security_check_cookie", SymbolSourcePDB},
		{0x10, "SimplePDB+0x10", SymbolSourceNone},
		{1 << 40, "SimplePDB+0x10000000000", SymbolSourceNone},
	}
	for _, tc := range tests {
		sym, err := s.Symbolize(ctx, m, tc.rva)
		if err != nil || sym.String() != tc.want || sym.Source != tc.src {
			t.Errorf("Symbolize(%#x) = %v (%s) %v, want %s (%s)", tc.rva, sym, sym.Source, err, tc.want, tc.src)
		}
	}
	ms, err := s.Module(ctx, m)
	if err != nil || ms.Source != SymbolSourcePDB || ms.PDBPath == "" || len(ms.Errs) != 0 {
		t.Errorf("Module = %+v %v", ms, err)
	}
	// Undecoration of a public without a procedure is on by default: the
	// x86 stdcall import thunk names lose their decoration.
	sym, _ := s.SymbolizeAddress(ctx, []ModuleID{m}, m.Base+0x1000)
	if sym.String() != "SimplePDB!SomeCoolFunction" {
		t.Errorf("SymbolizeAddress = %v", sym)
	}
	if sym, _ := s.SymbolizeAddress(ctx, []ModuleID{m}, 0x10); sym.Module != "" || sym.Offset != 0x10 {
		t.Errorf("SymbolizeAddress outside modules = %+v", sym)
	}
	if n := store.count(k); n != 1 {
		t.Errorf("PDB fetched %d times, want 1", n)
	}
}

func TestSymbolizeMismatchAndMissing(t *testing.T) {
	dir := symCorpusDir(t)
	m := simplePDBModule(t)
	wrong := m
	wrong.PDBGUID.Data1++
	k, _ := wrong.PDBKey()
	store := &testStore{files: map[string]string{k.String(): filepath.Join(dir, "SimplePDB.pdb")}}
	s := NewSymbolizer(SymbolizerOptions{Store: store})
	sym, err := s.Symbolize(context.Background(), wrong, 0x1012)
	if err != nil || sym.Source != SymbolSourceNone || sym.String() != "SimplePDB+0x1012" {
		t.Errorf("mismatched PDB: %v (%s) %v", sym, sym.Source, err)
	}
	ms, _ := s.Module(context.Background(), wrong)
	if len(ms.Errs) != 1 || !strings.Contains(ms.Errs[0].Error(), "does not match") {
		t.Errorf("Errs = %v", ms.Errs)
	}
	// No store at all.
	none := NewSymbolizer(SymbolizerOptions{})
	if sym, err := none.Symbolize(context.Background(), m, 0x1012); err != nil || sym.String() != "SimplePDB+0x1012" {
		t.Errorf("no store: %v %v", sym, err)
	}
	// A corrupt PDB is reported, not fatal.
	bad := filepath.Join(dir, "fuzzed.pdb")
	k2, _ := m.PDBKey()
	s2 := NewSymbolizer(SymbolizerOptions{Store: &testStore{files: map[string]string{k2.String(): bad}}})
	if sym, err := s2.Symbolize(context.Background(), m, 0x1012); err != nil || sym.Source != SymbolSourceNone {
		t.Errorf("corrupt PDB: %v %v", sym, err)
	}
	ms2, _ := s2.Module(context.Background(), m)
	var fe *pdb.FormatError
	if len(ms2.Errs) != 1 || !errors.As(ms2.Errs[0], &fe) {
		t.Errorf("corrupt PDB Errs = %v", ms2.Errs)
	}
}

// TestSymbolizeThroughImage gives only what a kernel dump has (name,
// timestamp, size): the image from the store supplies the RSDS record, which
// keys the PDB.
func TestSymbolizeThroughImage(t *testing.T) {
	dir := symCorpusDir(t)
	tests := []struct {
		exe, pdbFile string
		rvaOf        string // a procedure to find
	}{
		{"SimplePDB.exe", "SimplePDB.pdb", "main"},
		{"xframe_eh_dll.dll", "xframe_eh_dll.pdb", "pass_through_dll"},
		{"exceptions-test.exe", "exceptions-test.pdb", "trycatch_cpp"},
	}
	for _, tc := range tests {
		t.Run(tc.exe, func(t *testing.T) {
			img, err := pe.Open(filepath.Join(dir, tc.exe))
			if err != nil {
				t.Fatal(err)
			}
			cv, err := img.CodeView()
			img.Close()
			if err != nil {
				t.Fatal(err)
			}
			m := ModuleID{Name: tc.exe, Base: 0x10000000, Size: img.OptionalHeader.SizeOfImage, TimeDateStamp: img.TimeDateStamp}
			ik, _ := m.ImageKey()
			g, _ := GUIDFromBytes(cv.GUID[:])
			pk := PDBKey(cv.PDBName(), g, cv.Age)
			store := &testStore{files: map[string]string{
				ik.String(): filepath.Join(dir, tc.exe),
				pk.String(): filepath.Join(dir, tc.pdbFile),
			}}
			pf, err := pdb.Open(filepath.Join(dir, tc.pdbFile))
			if err != nil {
				t.Fatal(err)
			}
			procs, _ := pf.Procs()
			pf.Close()
			var rva uint32
			for _, p := range procs {
				if p.Name == tc.rvaOf {
					rva = p.RVA
				}
			}
			if rva == 0 {
				t.Fatalf("no procedure %s", tc.rvaOf)
			}
			s := NewSymbolizer(SymbolizerOptions{Store: store})
			sym, err := s.Symbolize(context.Background(), m, uint64(rva)+1)
			want := ModuleShortName(tc.exe) + "!" + tc.rvaOf + "+0x1"
			if err != nil || sym.String() != want || sym.Source != SymbolSourcePDB {
				t.Errorf("Symbolize = %v (%s) %v, want %s", sym, sym.Source, err, want)
			}
			ms, _ := s.Module(context.Background(), m)
			if ms.CodeView == nil || ms.ImagePath == "" {
				t.Errorf("Module = %+v", ms)
			}
		})
	}
}

// TestSymbolizeExports: without a PDB, exported functions name addresses.
func TestSymbolizeExports(t *testing.T) {
	dir := symCorpusDir(t)
	path := filepath.Join(dir, "xframe_eh_dll.dll")
	img, err := pe.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	ex, err := img.Exports()
	if err != nil || len(ex.List) == 0 {
		t.Skipf("no exports: %v", err)
	}
	m := ModuleID{Name: "xframe_eh_dll.dll", Base: 0x180000000, Size: img.OptionalHeader.SizeOfImage, TimeDateStamp: img.TimeDateStamp}
	ik, _ := m.ImageKey()
	store := &testStore{files: map[string]string{ik.String(): path}}
	s := NewSymbolizer(SymbolizerOptions{Store: store})
	n := 0
	for _, e := range ex.List {
		if e.Forwarder != "" || e.Name == "" {
			continue
		}
		sym, err := s.Symbolize(context.Background(), m, uint64(e.RVA)+2)
		if err != nil || sym.Source != SymbolSourceExport || sym.Function == "" || sym.Offset > 2 {
			t.Errorf("export %s at %#x: %v (%s) %v", e.Name, e.RVA, sym, sym.Source, err)
		}
		n++
	}
	if n == 0 {
		t.Skip("no named exports")
	}
}

// TestSymbolizeBreakpad resolves the frames of groundtruth
// minidump2.stackwalk.out against the corpus Breakpad store.
func TestSymbolizeBreakpad(t *testing.T) {
	dir := symCorpusDir(t)
	store := &testStore{root: filepath.Join(dir, "breakpad")}
	s := NewSymbolizer(SymbolizerOptions{Store: store})
	app := ModuleID{Name: `c:\test_app.exe`, Base: 0x400000, Size: 0x2d000, PDBName: "test_app.pdb",
		PDBGUID: symGUID(t, "5A9832E5287241C1838ED98914E9B7FF"), PDBAge: 1}
	k32 := ModuleID{Name: `C:\WINDOWS\system32\kernel32.dll`, Base: 0x7c800000, Size: 0xf4000, PDBName: "kernel32.pdb",
		PDBGUID: symGUID(t, "BCE8785C57B44245A669896B6A19B954"), PDBAge: 2}
	ntdll := ModuleID{Name: `C:\WINDOWS\system32\ntdll.dll`, Base: 0x7c900000, Size: 0xb0000, PDBName: "ntdll.pdb",
		PDBGUID: symGUID(t, "36515FB5D04345E491F672FA2E2878C0"), PDBAge: 2}
	mods := []ModuleID{app, k32, ntdll}
	tests := []struct {
		addr       uint64
		want, file string
		line       uint32
		src        SymbolSource
	}{
		{0x0040429e, "test_app!`anonymous namespace'::CrashFunction+0xe", `c:\test_app.cc`, 58, SymbolSourceBreakpad},
		{0x004041ff, "test_app!main+0x4f", `c:\test_app.cc`, 65, SymbolSourceBreakpad},
		{0x004053eb, "test_app!__tmainCRTStartup+0x15e", `f:\sp\vctools\crt_bld\self_x86\crt\src\crt0.c`, 327, SymbolSourceBreakpad},
		{0x7c816fd6, "kernel32!BaseProcessStart+0x22", "", 0, SymbolSourceBreakpad},
		{0x7c901234, "ntdll+0x1234", "", 0, SymbolSourceNone},
	}
	for _, tc := range tests {
		sym, err := s.SymbolizeAddress(context.Background(), mods, tc.addr)
		if err != nil || sym.String() != tc.want || sym.File != tc.file || sym.Line != tc.line || sym.Source != tc.src {
			t.Errorf("SymbolizeAddress(%#x) = %v %s:%d (%s) %v, want %s %s:%d", tc.addr, sym, sym.File, sym.Line, sym.Source, err, tc.want, tc.file, tc.line)
		}
	}
	ms, _ := s.Module(context.Background(), app)
	if ms.Breakpad == nil || len(ms.Breakpad.Win) == 0 {
		t.Error("test_app: no STACK WIN records exposed")
	}
	if sym, _ := s.Symbolize(context.Background(), app, 0x429e); sym.LineOffset != 3 {
		t.Errorf("line offset = %#x, want 0x3", sym.LineOffset)
	}
}

func TestSymbolizerCache(t *testing.T) {
	dir := symCorpusDir(t)
	a := simplePDBModule(t)
	b := ModuleID{Name: "other.dll", PDBName: "other.pdb", PDBGUID: symGUID(t, "{00000000-0000-0000-0000-000000000001}"), PDBAge: 1}
	ka, _ := a.PDBKey()
	kb, _ := b.PDBKey()
	store := &testStore{files: map[string]string{ka.String(): filepath.Join(dir, "SimplePDB.pdb")}, block: make(chan struct{})}
	s := NewSymbolizer(SymbolizerOptions{Store: store, MaxModules: 1})
	ctx := context.Background()

	// Concurrent requests for one module share one load.
	var wg sync.WaitGroup
	var bad atomic.Int32
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if sym, err := s.Symbolize(ctx, a, 0x1012); err != nil || sym.Function != "main" {
				bad.Add(1)
			}
		}()
	}
	close(store.block)
	wg.Wait()
	if bad.Load() != 0 || store.count(ka) != 1 {
		t.Fatalf("%d bad results, %d fetches", bad.Load(), store.count(ka))
	}
	// Capacity 1: b evicts a, so a is fetched again.
	s.Symbolize(ctx, b, 0)
	s.Symbolize(ctx, a, 0x1012)
	if store.count(ka) != 2 || store.count(kb) != 1 {
		t.Errorf("fetches after eviction: a %d, b %d", store.count(ka), store.count(kb))
	}
	// Misses are cached too.
	s.Symbolize(ctx, a, 0x1012)
	if store.count(ka) != 2 {
		t.Errorf("a fetched %d times", store.count(ka))
	}
}

func TestSymbolizerCancel(t *testing.T) {
	m := simplePDBModule(t)
	store := &testStore{block: make(chan struct{})}
	s := NewSymbolizer(SymbolizerOptions{Store: store})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Symbolize(ctx, m, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	// The failed load is not cached.
	close(store.block)
	sym, err := s.Symbolize(context.Background(), m, 1)
	if err != nil || sym.Source != SymbolSourceNone {
		t.Errorf("after cancel: %v %v", sym, err)
	}
	k, _ := m.PDBKey()
	if store.count(k) != 2 {
		t.Errorf("fetches = %d, want 2", store.count(k))
	}
}

// BenchmarkSymbolize resolves 10,000 addresses spread over a real PDB's
// code with a warm cache.
func BenchmarkSymbolize(b *testing.B) {
	dir := symCorpusDir(b)
	path := filepath.Join(dir, "exceptions-test.pdb")
	f, err := pdb.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	pg := f.GUID()
	g, _ := GUIDFromBytes(pg[:])
	m := ModuleID{Name: "exceptions-test.exe", Size: 0x14000, PDBName: "exceptions-test.pdb", PDBGUID: g, PDBAge: f.Age()}
	var lo, hi uint32 = ^uint32(0), 0
	for _, sec := range f.Sections() {
		if sec.Name == ".text" {
			lo, hi = sec.VirtualAddress, sec.VirtualAddress+sec.VirtualSize
		}
	}
	f.Close()
	if lo >= hi {
		b.Fatal("no .text section")
	}
	k, _ := m.PDBKey()
	s := NewSymbolizer(SymbolizerOptions{Store: &testStore{files: map[string]string{k.String(): path}}})
	ctx := context.Background()
	addrs := make([]uint64, 10000)
	for i := range addrs {
		addrs[i] = uint64(lo + uint32(uint64(i)*7919%uint64(hi-lo)))
	}
	if _, err := s.Symbolize(ctx, m, addrs[0]); err != nil { // warm
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	named := 0
	for b.Loop() {
		named = 0
		for _, a := range addrs {
			sym, err := s.Symbolize(ctx, m, a)
			if err != nil {
				b.Fatal(err)
			}
			if sym.Function != "" {
				named++
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(addrs)), "ns/addr")
	b.ReportMetric(float64(named)/float64(len(addrs))*100, "%named")
	if named == 0 {
		b.Fatalf("no address named in %#x..%#x", lo, hi)
	}
}

// TestSymbolizePDBLines: PDB line tables give file:line (positions from
// llvm-pdbutil dump -l of SimplePDB.pdb).
func TestSymbolizePDBLines(t *testing.T) {
	dir := symCorpusDir(t)
	m := simplePDBModule(t)
	k, _ := m.PDBKey()
	s := NewSymbolizer(SymbolizerOptions{Store: &testStore{files: map[string]string{k.String(): filepath.Join(dir, "SimplePDB.pdb")}}})
	sym, err := s.Symbolize(context.Background(), m, 0x1016)
	if err != nil || sym.File != `e:\msvc\simplepdb\simplepdb\main.cpp` || sym.Line != 11 || sym.LineOffset != 1 {
		t.Errorf("Symbolize(0x1016) = %+v %v", sym, err)
	}
}

// failingStore answers every key with a miss behind which a server failed.
type failingStore struct{}

func (failingStore) Fetch(_ context.Context, k Key) (string, error) {
	return "", &NotFoundError{Key: k, Errs: []error{errors.New("server timed out")}}
}

func TestSymbolizeStoreFailure(t *testing.T) {
	m := simplePDBModule(t)
	s := NewSymbolizer(SymbolizerOptions{Store: failingStore{}})
	sym, err := s.Symbolize(context.Background(), m, 0x1012)
	if err != nil || sym.String() != "SimplePDB+0x1012" {
		t.Errorf("Symbolize = %v %v", sym, err)
	}
	ms, _ := s.Module(context.Background(), m)
	if len(ms.Errs) == 0 || !strings.Contains(ms.Errs[0].Error(), "server timed out") {
		t.Errorf("Errs = %v", ms.Errs)
	}
}

// panicStore panics on its first Fetch, as a parser bug on a hostile file
// would inside a load, and misses afterwards.
type panicStore struct{ calls atomic.Int32 }

func (p *panicStore) Fetch(_ context.Context, k Key) (string, error) {
	if p.calls.Add(1) == 1 {
		panic("boom")
	}
	return "", &NotFoundError{Key: k}
}

// TestSymbolizerLoadPanic: a load that panics (and is recovered by the
// caller, as a worker does per job) must not leave a cache entry that
// later callers wait on for ever.
func TestSymbolizerLoadPanic(t *testing.T) {
	m := ModuleID{Name: "a.dll", PDBName: "a.pdb", PDBGUID: testGUID, PDBAge: 1}
	s := NewSymbolizer(SymbolizerOptions{Store: &panicStore{}})
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the store's panic did not reach the caller")
			}
		}()
		s.Symbolize(context.Background(), m, 0x10)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sym, err := s.Symbolize(ctx, m, 0x10)
	if err != nil || sym.String() != "a+0x10" {
		t.Fatalf("after a panicked load: %v, %v; want a+0x10", sym, err)
	}
}
