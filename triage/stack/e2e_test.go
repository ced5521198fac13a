package stack

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/symbols/pdb"
	"github.com/kdtriage/kdtriage/symbols/pe"
	"github.com/kdtriage/kdtriage/triage/drvtest"
)

// The driver built by testdata/drivers/build.sh. The binaries are
// committed; TestDriverRebuild checks them against a fresh build when clang
// and lld-link are installed.
var driverDir = filepath.Join("..", "..", "testdata", "drivers")

const (
	drvBase   = drvtest.Base
	stackHigh = 0xffff850400900000 // one past the highest stack byte
	stackSize = 0x800000
)

// driverChain is the driver's 12-frame call chain (drvtest.DefaultChain).
var driverChain = drvtest.DefaultChain()

// nonVolatile are the registers a callee must preserve.
var nonVolatile = []int{kdump.RegRBX, kdump.RegRBP, kdump.RegRSI, kdump.RegRDI, 12, 13, 14, 15}

type expectFrame struct {
	function string
	ip, sp   uint64
	regs     [16]uint64
	how      FoundBy
}

// driverScene is a stack through the driver's functions, laid out by
// drvtest.LayStack by running their prologs as the unwind codes describe
// them (the inverse of what the walker does): the memory, the starting
// context and the frames a correct walk must produce.
type driverScene struct {
	img    *pe.File
	file   []byte
	mod    kdump.Module
	mem    *testMem
	ctx    *kdump.Context
	expect []expectFrame
}

func loadDriver(t testing.TB) (*pe.File, []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(driverDir, "kdtdrv.sys"))
	if err != nil {
		t.Fatalf("committed driver missing: %v", err)
	}
	f, err := pe.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return f, b
}

func exportRVAs(t testing.TB, f *pe.File) map[string]uint32 {
	ex, err := f.Exports()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]uint32{}
	for _, e := range ex.List {
		m[e.Name] = e.RVA
	}
	return m
}

// foundBy maps drvtest's FoundBy names to the walker's.
var foundBy = map[string]FoundBy{"context": FoundByContext, "unwind": FoundByUnwind, "trap_frame": FoundByTrapFrame}

func newDriverScene(t testing.TB, chain []drvtest.Link) *driverScene {
	t.Helper()
	f, file := loadDriver(t)
	st, err := drvtest.LayStack(f, chain, stackHigh, stackSize)
	if err != nil {
		t.Fatal(err)
	}
	s := &driverScene{img: f, file: file, mem: &testMem{}}
	s.mod = kdump.Module{Name: "kdtdrv.sys", Base: drvBase, Size: f.OptionalHeader.SizeOfImage, TimeDateStamp: f.TimeDateStamp}
	s.mem.add(st.Low, st.Data)
	for _, fr := range st.Frames {
		how, ok := foundBy[fr.FoundBy]
		if !ok {
			t.Fatalf("drvtest frame %s: found by %q", fr.Function, fr.FoundBy)
		}
		s.expect = append(s.expect, expectFrame{function: fr.Function, ip: fr.IP, sp: fr.SP, regs: fr.Regs, how: how})
	}
	// The innermost frame: the chain's last callee at its first instruction.
	top := st.Frames[0]
	s.ctx = &kdump.Context{Machine: kdump.MachineAMD64, PC: top.IP}
	copy(s.ctx.GPR[:], top.Regs[:])
	return s
}

// check compares a walk with the scene's expectations.
func (s *driverScene) check(t *testing.T, frames []Frame, names func(rva uint64) string) {
	t.Helper()
	if len(frames) != len(s.expect) {
		for i, f := range frames {
			t.Logf("frame %d: %v ip %#x sp %#x", i, f, f.IP, f.SP)
		}
		t.Fatalf("%d frames, want %d", len(frames), len(s.expect))
	}
	for i, f := range frames {
		e := s.expect[i]
		name := names(f.LookupOffset())
		if f.IP != e.ip || f.SP != e.sp || f.FoundBy != e.how || name != e.function || f.Module != "kdtdrv.sys" || f.Offset != e.ip-drvBase {
			t.Errorf("frame %d: %s %v ip %#x sp %#x; want %s ip %#x sp %#x (%v)", i, name, f, f.IP, f.SP, e.function, e.ip, e.sp, e.how)
			continue
		}
		for _, r := range nonVolatile {
			if !f.Valid.Has(r) {
				continue
			}
			if f.Context.GPR[r] != e.regs[r] {
				t.Errorf("frame %d (%s): %v = %#x, want %#x", i, e.function, pe.Register(r), f.Context.GPR[r], e.regs[r])
			}
		}
		t.Logf("frame %2d %-18s %v", i, name, f)
	}
}

// pdbNames names RVAs with the driver's PDB publics.
func pdbNames(t testing.TB) func(uint64) string {
	p, err := pdb.Open(filepath.Join(driverDir, "kdtdrv.pdb"))
	if err != nil {
		t.Fatalf("pdb: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return func(rva uint64) string {
		name, _, ok := p.Lookup(uint32(rva))
		if !ok {
			return fmt.Sprintf("?%#x", rva)
		}
		return name
	}
}

// TestDriverWalk lays a stack through the test driver's functions and
// unwinds it with the image's .pdata, the image coming from a directory of
// images and from the dump's memory. Every frame must be named by the PDB,
// found by unwind data (or the machine frame), with the right IP, SP and
// non-volatile registers.
func TestDriverWalk(t *testing.T) {
	s := newDriverScene(t, driverChain)
	names := pdbNames(t)
	t.Run("dir", func(t *testing.T) {
		frames, err := Walk(context.Background(), Input{Context: s.ctx, Memory: s.mem, Modules: []kdump.Module{s.mod},
			Images: DirImages{Dir: driverDir}, NoScan: true})
		if err != nil {
			t.Fatal(err)
		}
		s.check(t, frames, names)
	})
	t.Run("memory", func(t *testing.T) {
		mem := &testMem{regions: slices.Clone(s.mem.regions)}
		mem.add(drvBase, drvtest.MapImage(s.img, s.file))
		frames, err := Walk(context.Background(), Input{Context: s.ctx, Memory: mem, Modules: []kdump.Module{s.mod},
			Images: MemoryImages{Memory: mem}, NoScan: true})
		if err != nil {
			t.Fatal(err)
		}
		s.check(t, frames, names)
	})
	t.Run("no image: scan", func(t *testing.T) {
		// Without unwind data only the scan is left. It finds the return
		// addresses as long as they are within ScanWords of the previous
		// frame: FloatWork's is 640 KiB above HugeFrame's and ends the walk.
		frames, err := Walk(context.Background(), Input{Context: s.ctx, Memory: s.mem, Modules: []kdump.Module{s.mod}, ScanWords: 2048})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"LeafTouch", "SavesNonVolatiles", "LargeFrame", "HugeFrame"}
		if len(frames) != len(want) {
			t.Fatalf("%d frames: %v", len(frames), frames)
		}
		for i, f := range frames {
			e := s.expect[i]
			if f.IP != e.ip || f.SP != e.sp || names(f.LookupOffset()) != want[i] || i > 0 && f.FoundBy != FoundByScan {
				t.Errorf("frame %d: %v ip %#x sp %#x, want %s ip %#x sp %#x", i, f, f.IP, f.SP, want[i], e.ip, e.sp)
			}
		}
	})
}

// BenchmarkWalk30 unwinds a 30-frame stack through the test driver with
// its unwind tables (the driver's call chain repeated; one machine frame
// per round).
func BenchmarkWalk30(b *testing.B) {
	// Three rounds of the chain (34 frames, the longest LongChain gives), in
	// which SavesNonVolatiles "calls" DriverEntry through its call to
	// LeafTouch.
	s := newDriverScene(b, drvtest.LongChain(34))
	f, err := pe.NewFile(bytes.NewReader(s.file))
	if err != nil {
		b.Fatal(err)
	}
	img := fixedImage{f}
	in := Input{Context: s.ctx, Memory: s.mem, Modules: []kdump.Module{s.mod}, Images: img, MaxFrames: 30, NoScan: true}
	frames, err := Walk(context.Background(), in)
	if err != nil || len(frames) != 30 {
		for _, fr := range frames {
			b.Logf("%v ip %#x sp %#x", fr, fr.IP, fr.SP)
		}
		b.Fatalf("%d frames, %v", len(frames), err)
	}
	for i, fr := range frames[1:] {
		if fr.FoundBy != FoundByUnwind && fr.FoundBy != FoundByTrapFrame || fr.IP != s.expect[i+1].ip {
			b.Fatalf("frame %d: %v", i+1, fr)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Walk(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/30, "ns/frame")
}

// fixedImage serves one already-parsed image.
type fixedImage struct{ f *pe.File }

func (fi fixedImage) Image(context.Context, kdump.Module) (*pe.File, error) { return fi.f, nil }

// TestDriverEpilog starts the walk inside AsmFramePointer's epilog, after
// "lea rsp,[rbp+0x20]; pop rbx" (where the unwind codes no longer describe
// the stack): the walker must emulate the rest of the epilog.
func TestDriverEpilog(t *testing.T) {
	chain := driverChain[:2] // DriverEntry -> CallsAsm -> AsmFramePointer
	s := newDriverScene(t, chain)
	rvas := exportRVAs(t, s.img)
	// Find "pop rbp; ret" (5D C3) in AsmFramePointer.
	rf, _, _ := s.img.LookupFunction(rvas["AsmFramePointer"])
	code := make([]byte, rf.End-rf.Begin)
	if err := s.img.ReadRVA(code, rf.Begin); err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(code, []byte{0x5D, 0xC3})
	if at < 0 {
		t.Fatal("no pop rbp; ret in AsmFramePointer")
	}
	caller := s.expect[1] // CallsAsm
	c := *s.ctx
	c.PC = drvBase + uint64(rf.Begin) + uint64(at)
	c.GPR[kdump.RegRSP] = caller.sp - 16 // saved rbp, then the return address
	c.GPR[kdump.RegRBX] = caller.regs[kdump.RegRBX]
	c.GPR[kdump.RegRBP] = 0xBAD
	frames, err := Walk(context.Background(), Input{Context: &c, Memory: s.mem, Modules: []kdump.Module{s.mod},
		Images: DirImages{Dir: driverDir}, NoScan: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 3 {
		t.Fatalf("frames %v", frames)
	}
	f := frames[1]
	if f.IP != caller.ip || f.SP != caller.sp || f.FoundBy != FoundByUnwind || f.Context.GPR[kdump.RegRBP] != caller.regs[kdump.RegRBP] {
		t.Errorf("frame 1 %v ip %#x sp %#x rbp %#x; want ip %#x sp %#x rbp %#x", f, f.IP, f.SP, f.Context.GPR[kdump.RegRBP], caller.ip, caller.sp, caller.regs[kdump.RegRBP])
	}
}

// TestDriverRebuild rebuilds the test driver with build.sh when clang and
// lld-link are installed and checks that the committed binary is what the
// sources give: same exports and the same unwind data.
func TestDriverRebuild(t *testing.T) {
	for _, tool := range []string{"clang", "lld-link", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian packages clang and lld)", tool)
		}
	}
	out := t.TempDir()
	cmd := exec.Command("sh", filepath.Join(driverDir, "build.sh"), out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, b)
	}
	committed, _ := loadDriver(t)
	rebuilt, err := pe.Open(filepath.Join(out, "kdtdrv.sys"))
	if err != nil {
		t.Fatal(err)
	}
	defer rebuilt.Close()
	if fmt.Sprint(exportRVAs(t, committed)) != fmt.Sprint(exportRVAs(t, rebuilt)) {
		t.Errorf("exports differ: rebuild the committed driver with build.sh")
	}
	a, err1 := committed.RuntimeFunctions()
	b, err2 := rebuilt.RuntimeFunctions()
	if err1 != nil || err2 != nil || len(a) != len(b) {
		t.Fatalf("pdata: %v %v %d %d", err1, err2, len(a), len(b))
	}
	for i := range a {
		u1, _ := committed.UnwindChain(a[i])
		u2, _ := rebuilt.UnwindChain(b[i])
		if a[i] != b[i] || fmt.Sprint(u1[0].Codes) != fmt.Sprint(u2[0].Codes) {
			t.Errorf("function %#x differs from the rebuilt one", a[i].Begin)
		}
	}
	// The ARM64 build: same .pdata entries and .xdata bytes.
	ca, err1 := pe.Open(filepath.Join(driverDir, "kdtdrv_arm64.sys"))
	ra, err2 := pe.Open(filepath.Join(out, "kdtdrv_arm64.sys"))
	if err1 != nil || err2 != nil {
		t.Fatalf("arm64: %v %v", err1, err2)
	}
	defer ca.Close()
	defer ra.Close()
	x, _ := ca.ARM64Functions()
	y, _ := ra.ARM64Functions()
	if len(x) == 0 || fmt.Sprint(x) != fmt.Sprint(y) {
		t.Errorf("arm64 .pdata differs: %v vs %v", x, y)
	}
	for i := range x {
		if x[i].Flag() != 0 {
			continue
		}
		d1, _ := ca.ARM64XData(x[i])
		d2, _ := ra.ARM64XData(y[i])
		if d1 == nil || d2 == nil || !bytes.Equal(d1.Codes, d2.Codes) {
			t.Errorf("arm64 function %#x: .xdata differs", x[i].Begin)
		}
	}
}

// TestDriverWalkConcurrent walks the driver scene from several goroutines
// sharing one parsed image (its caches are shared): run with -race.
func TestDriverWalkConcurrent(t *testing.T) {
	s := newDriverScene(t, driverChain)
	f, err := pe.NewFile(bytes.NewReader(s.file))
	if err != nil {
		t.Fatal(err)
	}
	in := Input{Context: s.ctx, Memory: s.mem, Modules: []kdump.Module{s.mod}, Images: fixedImage{f}, NoScan: true}
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			frames, err := Walk(context.Background(), in)
			if err == nil && len(frames) != len(s.expect) {
				err = fmt.Errorf("%d frames", len(frames))
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
