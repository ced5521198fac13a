package triage_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/rules"
	"github.com/kdtriage/kdtriage/symbols"
	"github.com/kdtriage/kdtriage/symbols/pe"
	"github.com/kdtriage/kdtriage/triage"
	"github.com/kdtriage/kdtriage/triage/drvtest"
	"github.com/kdtriage/kdtriage/triage/stack"
)

// End-to-end tests on x64 kernel code: a synthetic triage dump (kdumptest)
// whose crashing thread runs through the test driver kdtdrv.sys
// (testdata/drivers, built by clang and lld-link), analysed by
// triage.Analyze with and without a real HTTP symbol server.

// symbolServer builds a SymStore tree with the driver compressed (the
// image by drvtest.WriteCAB, the PDB by gcab when installed) and serves it.
func symbolServer(t testing.TB, dir, driversDir string) (*drvtest.Server, symbols.Key, symbols.Key) {
	t.Helper()
	pdbComp := drvtest.CABWriter
	if drvtest.HaveGcab() {
		pdbComp = drvtest.Gcab
	} else {
		t.Log("gcab not installed (Debian package gcab): the PDB is compressed by the test's own cabinet writer")
	}
	root := filepath.Join(dir, "store")
	ik, pk, err := drvtest.BuildStore(root, driversDir, drvtest.CABWriter, pdbComp)
	if err != nil {
		t.Fatal(err)
	}
	srv := drvtest.NewServer(root)
	t.Cleanup(srv.Close)
	return srv, ik, pk
}

// symbolOptions builds what `kdtriage analyze --symbol-path P` builds: one
// chain for both the symbolizer and the walker's images.
func symbolOptions(t testing.TB, path string) triage.Options {
	t.Helper()
	p, err := symbols.ParsePath(path)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := symbols.NewChain(p, symbols.Options{Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return triage.Options{
		Symbols: triage.FromSymbols(symbols.NewSymbolizer(symbols.SymbolizerOptions{Store: chain})),
		Images:  triage.StoreImages(chain),
	}
}

func analyzeScene(t testing.TB, s *drvtest.Scene, opts triage.Options) *triage.Report {
	t.Helper()
	b, err := s.Dump.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	f, err := kdump.NewFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := triage.Analyze(context.Background(), f, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func logStack(t testing.TB, rep *triage.Report) {
	t.Helper()
	for _, f := range rep.Stack {
		t.Logf("%2d %v %v %-36s %s", f.Index, f.IP, f.SP, f.Symbol, f.FoundBy)
	}
}

// checkFrames compares the report's stack with the scene's frames:
// same count, IP, SP, module, name and how each was found. named says
// whether functions must be named (with symbols) or left module+0xrva.
// foundBy, when set, overrides the expected way frames below the top
// were found.
// asmRoutines are the functions of testdata/drivers/unwind.S (its .globl
// labels), assembled without line information.
var asmRoutines = map[string]bool{"AsmFramePointer": true, "AsmTrapHandler": true, "AsmInterrupted": true,
	"AsmInterruptedAt": true, "AsmFarSaves": true, "LeafTouchAsm": true}

func checkFrames(t *testing.T, rep *triage.Report, want []drvtest.Frame, named bool, foundBy string) {
	t.Helper()
	if len(rep.Stack) != len(want) {
		logStack(t, rep)
		t.Fatalf("%d frames, want %d", len(rep.Stack), len(want))
	}
	for i, fr := range rep.Stack {
		w := want[i]
		how := w.FoundBy
		if foundBy != "" && i > 0 {
			how = foundBy
		}
		sym := fmt.Sprintf("kdtdrv+0x%x", w.RVA())
		fn := ""
		if named {
			sym, fn = fmt.Sprintf("kdtdrv!%s+0x%x", w.Function, w.Offset), w.Function
		}
		if uint64(fr.IP) != w.IP || uint64(fr.SP) != w.SP || fr.Module != "kdtdrv" || fr.Image != "kdtdrv.sys" ||
			fr.Offset == nil || uint64(*fr.Offset) != w.RVA() || fr.Symbol != sym || fr.Function != fn || fr.FoundBy != how {
			t.Errorf("frame %d: %s ip %v sp %v [%s]; want %s ip %#x sp %#x [%s]", i, fr.Symbol, fr.IP, fr.SP, fr.FoundBy, sym, w.IP, w.SP, how)
		}
		if named && (fr.FuncOffset == nil || uint64(*fr.FuncOffset) != w.Offset) {
			t.Errorf("frame %d: function offset %v, want %#x", i, fr.FuncOffset, w.Offset)
		}
		// kdtdrv.c is compiled with CodeView line information, unwind.S
		// without: C frames carry their source line, assembly ones none.
		switch {
		case !named || asmRoutines[w.Function]:
			if fr.SourceFile != "" || fr.SourceLine != 0 {
				t.Errorf("frame %d %s: source %s:%d, want none", i, fr.Symbol, fr.SourceFile, fr.SourceLine)
			}
		case !strings.HasSuffix(strings.ReplaceAll(fr.SourceFile, `\`, "/"), "/kdtdrv.c") || fr.SourceLine <= 0:
			t.Errorf("frame %d %s: source %q line %d, want kdtdrv.c and a line", i, fr.Symbol, fr.SourceFile, fr.SourceLine)
		}
	}
}

// TestDriverDumpSymbolServer analyses the driver dump with the symbol path
// srv*CACHE*URL over a real HTTP server holding the image and the PDB as
// compressed cabinets only. The walker gets the image (unwind tables) from
// the server, the symbolizer the PDB through the image's CodeView record;
// every frame is named kdtdrv!Function+0xoff and found by unwind data (the
// interrupted one by its machine frame), and the bucket blames the
// faulting function. A second analysis with a new chain over the same
// cache asks the server nothing.
func TestDriverDumpSymbolServer(t *testing.T) {
	s, err := drvtest.Build(drvtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srv, ik, pk := symbolServer(t, dir, s.DriversDir)
	cache := filepath.Join(dir, "cache")
	path := "srv*" + cache + "*" + srv.URL

	check := func(t *testing.T, rep *triage.Report) {
		t.Helper()
		checkFrames(t, rep, s.Frames, true, "")
		c := rep.Culprit
		if c.Kind != triage.CulpritFrame || c.Frame != 0 || c.Image != "kdtdrv.sys" || c.Module != "kdtdrv" ||
			c.Symbol != "kdtdrv!LeafTouch+0" || c.Confidence != triage.ConfidenceHigh || c.By != "ip_param" {
			t.Errorf("culprit %+v", c)
		}
		if rep.FailureBucketID != "AV_kdtdrv!LeafTouch" {
			t.Errorf("FAILURE_BUCKET_ID %q, want AV_kdtdrv!LeafTouch", rep.FailureBucketID)
		}
		if rep.ProbablyCausedBy != "kdtdrv.sys ( kdtdrv!LeafTouch+0 )" {
			t.Errorf("probably caused by %q", rep.ProbablyCausedBy)
		}
		if fip := rep.FaultingIP; fip == nil || uint64(fip.Address) != s.FaultIP || fip.Symbol != "kdtdrv!LeafTouch+0" || fip.Param != 2 {
			t.Errorf("faulting IP %+v", fip)
		}
		if rep.Context.Source != "context_record" || rep.Context.Param != 4 {
			t.Errorf("context %s from P%d, want the context record in P4", rep.Context.Source, rep.Context.Param)
		}
		if len(rep.Problems) != 0 {
			t.Errorf("problems: %q", rep.Problems)
		}
	}

	t.Run("cold", func(t *testing.T) {
		rep := analyzeScene(t, s, symbolOptions(t, path))
		logStack(t, rep)
		check(t, rep)
		// The plain files are not on the server: each key costs a 404 and
		// the compressed file; nothing else is asked.
		want := []string{
			"404 /" + ik.Name + "/" + ik.ID + "/" + ik.File, "200 /" + ik.Name + "/" + ik.ID + "/" + ik.CompressedFile(),
			"404 /" + pk.Name + "/" + pk.ID + "/" + pk.File, "200 /" + pk.Name + "/" + pk.ID + "/" + pk.CompressedFile(),
		}
		if got := srv.Requests(); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		// The cache holds the unpacked files, byte for byte.
		for _, k := range []symbols.Key{ik, pk} {
			got, err := os.ReadFile(filepath.Join(cache, k.Name, k.ID, k.File))
			if err != nil {
				t.Fatalf("cache: %v", err)
			}
			orig, err := os.ReadFile(filepath.Join(s.DriversDir, k.File))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, orig) {
				t.Errorf("cached %s differs from testdata/drivers", k)
			}
		}
	})
	t.Run("warm cache", func(t *testing.T) {
		srv.Reset()
		rep := analyzeScene(t, s, symbolOptions(t, path))
		check(t, rep)
		if n, _ := srv.Count(); n != 0 {
			t.Errorf("second run asked the server %d times: %q", n, srv.Requests())
		}
	})
}

// TestDriverDumpWithoutSymbols analyses the driver dump with no symbol
// path: frames are kdtdrv+0xrva and the culprit is kdtdrv.sys. With no
// image anywhere the walker can only scan, and finds the frames whose
// return address lies within its scan window; with the image's pages in
// the dump's memory it unwinds every frame from memory.
func TestDriverDumpWithoutSymbols(t *testing.T) {
	checkCulprit := func(t *testing.T, rep *triage.Report) {
		t.Helper()
		c := rep.Culprit
		if c.Kind != triage.CulpritFrame || c.Frame != 0 || c.Image != "kdtdrv.sys" || c.Module != "kdtdrv" || c.Symbol != "kdtdrv+1000" {
			t.Errorf("culprit %+v", c)
		}
		if rep.FailureBucketID != "AV_kdtdrv!unknown_function" || rep.ProbablyCausedBy != "kdtdrv.sys ( kdtdrv+1000 )" {
			t.Errorf("bucket %q, probably caused by %q", rep.FailureBucketID, rep.ProbablyCausedBy)
		}
	}
	t.Run("scan", func(t *testing.T) {
		s, err := drvtest.Build(drvtest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		rep := analyzeScene(t, s, triage.Options{})
		logStack(t, rep)
		// The scan looks DefaultScanWords words above each frame's SP (four
		// times as many above the context's): the frames whose return
		// address lies that close are found, the first one further away
		// (LargeFrame's 8 KiB of locals) ends the walk.
		n := 1
		for n < len(s.Frames) && s.Frames[n].FoundBy == "unwind" {
			limit := uint64(stack.DefaultScanWords)
			if n == 1 {
				limit *= 4
			}
			if (s.Frames[n].SP-8-s.Frames[n-1].SP)/8 >= limit {
				break
			}
			n++
		}
		if n < 3 {
			t.Fatalf("the scene leaves the scan only %d frames", n)
		}
		checkFrames(t, rep, s.Frames[:n], false, "scan")
		checkCulprit(t, rep)
	})
	t.Run("image in dump memory", func(t *testing.T) {
		s, err := drvtest.Build(drvtest.Options{ImageInMemory: true})
		if err != nil {
			t.Fatal(err)
		}
		rep := analyzeScene(t, s, triage.Options{})
		logStack(t, rep)
		checkFrames(t, rep, s.Frames, false, "")
		checkCulprit(t, rep)
		if len(rep.Problems) != 0 {
			t.Errorf("problems: %q", rep.Problems)
		}
	})
}

// emptyDir returns a new empty directory under dir (a cold cache).
func emptyDir(b *testing.B, dir string) string {
	d, err := os.MkdirTemp(dir, "cold")
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkSymbolize10000 resolves 10,000 addresses of the driver through
// a Symbolizer over srv*CACHE*URL (a real HTTP server with the image and
// PDB compressed). cold: every iteration starts with an empty cache and a
// new chain and Symbolizer, so it downloads, unpacks and parses both
// files; warm: one Symbolizer, symbols loaded before the timer starts.
// Metrics: ns/addr and HTTP requests per iteration.
func BenchmarkSymbolize10000(b *testing.B) {
	dir := b.TempDir()
	driversDir, err := drvtest.FindDriversDir()
	if err != nil {
		b.Fatal(err)
	}
	srv, _, _ := symbolServer(b, dir, driversDir)
	img, err := pe.Open(filepath.Join(driversDir, "kdtdrv.sys"))
	if err != nil {
		b.Fatal(err)
	}
	// Addresses inside the functions that have unwind data (the padding
	// between functions belongs to no symbol).
	fns, err := img.RuntimeFunctions()
	m := symbols.ModuleID{Name: drvtest.ModulePath, Base: drvtest.Base, Size: img.OptionalHeader.SizeOfImage, TimeDateStamp: img.TimeDateStamp}
	img.Close()
	if err != nil || len(fns) < 8 {
		b.Fatalf("%d functions: %v", len(fns), err)
	}
	var code []uint64
	for _, f := range fns {
		for r := f.Begin; r < f.End; r++ {
			code = append(code, uint64(r))
		}
	}
	const n = 10000
	rvas := make([]uint64, n)
	for i := range rvas {
		rvas[i] = code[(i*37)%len(code)]
	}
	newSymbolizer := func(cache string) *symbols.Symbolizer {
		p, err := symbols.ParsePath("srv*" + cache + "*" + srv.URL)
		if err != nil {
			b.Fatal(err)
		}
		chain, err := symbols.NewChain(p, symbols.Options{Retries: -1})
		if err != nil {
			b.Fatal(err)
		}
		return symbols.NewSymbolizer(symbols.SymbolizerOptions{Store: chain})
	}
	resolveAll := func(s *symbols.Symbolizer) {
		for _, r := range rvas {
			sym, err := s.Symbolize(context.Background(), m, r)
			if err != nil || sym.Source != symbols.SymbolSourcePDB {
				b.Fatalf("%#x: %v %v", r, sym, err)
			}
		}
	}
	b.Run("cold", func(b *testing.B) {
		srv.Reset()
		b.ReportAllocs()
		for b.Loop() {
			resolveAll(newSymbolizer(emptyDir(b, dir)))
		}
		reqs, _ := srv.Count()
		b.ReportMetric(float64(reqs)/float64(b.N), "requests/op")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/addr")
	})
	b.Run("warm", func(b *testing.B) {
		s := newSymbolizer(filepath.Join(dir, "warm"))
		resolveAll(s)
		srv.Reset()
		b.ReportAllocs()
		for b.Loop() {
			resolveAll(s)
		}
		reqs, _ := srv.Count()
		b.ReportMetric(float64(reqs)/float64(b.N), "requests/op")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/addr")
	})
}

// BenchmarkAnalyze30Frames analyses a dump whose stack has 30 frames
// through the driver (the chain repeated; two machine frames): the walk
// unwinds each with the image from the symbol server and names it from
// the PDB. warm: one chain and Symbolizer for all iterations; cold: a new
// cache, chain and Symbolizer each iteration (4 requests: two 404s, two
// cabinets). Metrics: ns/frame and requests per analysis.
func BenchmarkAnalyze30Frames(b *testing.B) {
	const frames = 30
	s, err := drvtest.Build(drvtest.Options{Chain: drvtest.LongChain(frames)})
	if err != nil {
		b.Fatal(err)
	}
	if len(s.Frames) != frames {
		b.Fatalf("scene has %d frames", len(s.Frames))
	}
	dir := b.TempDir()
	srv, _, _ := symbolServer(b, dir, s.DriversDir)
	raw, err := s.Dump.Bytes()
	if err != nil {
		b.Fatal(err)
	}
	f, err := kdump.NewFile(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		b.Fatal(err)
	}
	set, err := rules.Default()
	if err != nil {
		b.Fatal(err)
	}
	analyze := func(opts triage.Options) {
		opts.Rules = set // compiled once, as a worker does
		rep, err := triage.Analyze(context.Background(), f, opts)
		if err != nil {
			b.Fatal(err)
		}
		if len(rep.Stack) != frames || rep.Stack[frames-1].Function != s.Frames[frames-1].Function || rep.FailureBucketID != "AV_kdtdrv!LeafTouch" {
			logStack(b, rep)
			b.Fatalf("%d frames, bucket %s", len(rep.Stack), rep.FailureBucketID)
		}
	}
	path := "srv*%s*" + srv.URL
	b.Run("warm", func(b *testing.B) {
		opts := symbolOptions(b, fmt.Sprintf(path, filepath.Join(dir, "warm")))
		analyze(opts)
		srv.Reset()
		b.ReportAllocs()
		for b.Loop() {
			analyze(opts)
		}
		reqs, _ := srv.Count()
		b.ReportMetric(float64(reqs)/float64(b.N), "requests/op")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/frames, "ns/frame")
	})
	b.Run("cold", func(b *testing.B) {
		srv.Reset()
		b.ReportAllocs()
		for b.Loop() {
			analyze(symbolOptions(b, fmt.Sprintf(path, emptyDir(b, dir))))
		}
		reqs, _ := srv.Count()
		b.ReportMetric(float64(reqs)/float64(b.N), "requests/op")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/frames, "ns/frame")
	})
}

// TestDriverDumpLocalSymbols uses no server at all: the symbol path is the
// plain directory testdata/drivers, where kdtdrv.sys and kdtdrv.pdb are
// found by name (and checked against the module's timestamp, size and the
// image's PDB identity). The walk and the names are those of the server
// run.
func TestDriverDumpLocalSymbols(t *testing.T) {
	s, err := drvtest.Build(drvtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep := analyzeScene(t, s, symbolOptions(t, s.DriversDir))
	checkFrames(t, rep, s.Frames, true, "")
	if rep.FailureBucketID != "AV_kdtdrv!LeafTouch" || len(rep.Problems) != 0 {
		t.Errorf("bucket %q, problems %q", rep.FailureBucketID, rep.Problems)
	}
}
