package stack

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/symbols/pe"
)

func corpusFile(t testing.TB, rel string) string {
	t.Helper()
	dir := os.Getenv("KDTRIAGE_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "corpus")
	}
	p := filepath.Join(dir, rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("corpus file %s not found (set KDTRIAGE_CORPUS): %v", p, err)
	}
	return p
}

// TestTriageX64NoSymbols walks win10-triage_x64.dmp with nothing but the
// dump: no symbol store, no images. The triage dump holds no image pages of
// amdppm.sys or Wdf01000.sys and only the header page of ntoskrnl.exe, so
// no unwind data is available:
//
//   - frame 0 is the header CONTEXT, whose RIP is the faulting address
//     (bug-check parameter 2): amdppm+0x334c;
//   - every other frame is found by scanning the saved stack for words that
//     point into a loaded module. Through MemoryImages the ntoskrnl header
//     page gives its section table, so nt words outside executable sections
//     (data pointers) are rejected; amdppm and Wdf01000 words cannot be
//     checked that way, so some of their frames may be data pointers.
//
// The walk runs through amdppm's frames, then Wdf01000's, and ends in
// ntoskrnl's (the PnP start-device thread), as Microsoft's debugger shows
// with symbols.
//
// A second walk starts from the bug-check context (the CONTEXT that the
// crashing KPRCB's Context field points to: RIP in nt!KeBugCheckEx, RSP at
// the triage TopOfStack). It scans through the kernel's exception-dispatch
// frames, finds the machine frame the processor pushed for the fault
// (RIP amdppm+0x334c, RSP the faulting RSP) and from there goes on exactly as
// the first walk: it reaches the amdppm frames under the nt ones.
func TestTriageX64NoSymbols(t *testing.T) {
	d, err := kdump.Open(corpusFile(t, "kernel/win10-triage_x64.dmp"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	mods, err := d.Modules()
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Context()
	if err != nil {
		t.Fatal(err)
	}
	// The CONTEXT named by P4 of 0x1000007E is the one the header holds.
	starts, errs := BugCheckStarts(d.Machine(), d.BugCheck().Code, d.BugCheck().Params, d.Memory())
	if len(errs) != 0 || len(starts) != 1 || starts[0].Source != "CONTEXT (P4)" || *starts[0].Context != *c {
		t.Errorf("BugCheckStarts = %+v, %v; want the header context from P4", starts, errs)
	}
	tri := d.Triage()
	stackLow, stackHigh := tri.TopOfStack, tri.TopOfStack+uint64(tri.SizeOfCallStack)
	for _, tc := range []struct {
		name   string
		images Images
	}{{"no images", nil}, {"dump memory", MemoryImages{Memory: d.Memory()}}} {
		t.Run(tc.name, func(t *testing.T) {
			frames, err := Walk(context.Background(), Input{Context: c, Memory: d.Memory(), Modules: mods, Images: tc.images})
			if err != nil {
				t.Fatal(err)
			}
			for i, f := range frames {
				t.Logf("%2d %v sp %#x", i, f, f.SP)
			}
			f0 := frames[0]
			if f0.FoundBy != FoundByContext || f0.IP != d.BugCheck().Params[1] || f0.Module != "amdppm.sys" || f0.Offset != 0x334c {
				t.Fatalf("frame 0 = %v ip %#x, want amdppm+0x334c (context) = P2", f0, f0.IP)
			}
			// Runs of modules: amdppm first, then Wdf01000, last ntoskrnl.
			var runs []string
			amdppm := 0
			for i, f := range frames[1:] {
				if f.FoundBy != FoundByScan {
					t.Errorf("frame %d: %v, want scan", i+1, f)
				}
				if f.SP <= frames[i].SP || f.SP < stackLow || f.SP > stackHigh {
					t.Errorf("frame %d: sp %#x after %#x, stack [%#x, %#x)", i+1, f.SP, frames[i].SP, stackLow, stackHigh)
				}
				if len(runs) == 0 || runs[len(runs)-1] != f.Module {
					runs = append(runs, f.Module)
				}
				if len(runs) == 1 && f.Module == "amdppm.sys" {
					amdppm++
				}
			}
			if len(runs) < 3 || runs[0] != "amdppm.sys" || runs[1] != "Wdf01000.sys" || runs[len(runs)-1] != "ntoskrnl.exe" {
				t.Errorf("module runs %q, want amdppm.sys, Wdf01000.sys, ..., ntoskrnl.exe", runs)
			}
			if amdppm < 5 {
				t.Errorf("%d amdppm frames under the faulting one, want at least 5", amdppm)
			}
			// From the bug-check context.
			bc := prcbContext(t, d)
			if bc.SP() != stackLow || kdump.ModuleAt(mods, bc.PC).Name != "ntoskrnl.exe" {
				t.Fatalf("KPRCB context rip %#x rsp %#x, want ntoskrnl and rsp = TopOfStack %#x", bc.PC, bc.SP(), stackLow)
			}
			fromBugCheck, err := Walk(context.Background(), Input{Context: bc, Memory: d.Memory(), Modules: mods, Images: tc.images})
			if err != nil {
				t.Fatal(err)
			}
			trap := -1
			for i, f := range fromBugCheck {
				if f.FoundBy == FoundByTrapFrame {
					trap = i
					break
				}
			}
			if trap < 0 || fromBugCheck[trap].IP != f0.IP || fromBugCheck[trap].SP != f0.SP {
				t.Fatalf("the walk from KeBugCheckEx found no machine frame at the fault (%v)", fromBugCheck)
			}
			for i := 1; i < trap; i++ {
				if f := fromBugCheck[i]; f.FoundBy != FoundByScan || f.SP <= fromBugCheck[i-1].SP || f.SP >= f0.SP {
					t.Errorf("bug-check walk frame %d: %v sp %#x", i, f, f.SP)
				}
			}
			rest := fromBugCheck[trap+1:]
			if len(rest) != len(frames)-1 && len(fromBugCheck) < DefaultMaxFrames {
				t.Errorf("after the machine frame: %d frames, the faulting-context walk has %d", len(rest), len(frames)-1)
			}
			for i, f := range rest {
				if i+1 >= len(frames) || f.IP != frames[i+1].IP || f.SP != frames[i+1].SP {
					t.Errorf("bug-check walk frame %d = %v, faulting-context walk frame %d differs", trap+1+i, f, i+1)
					break
				}
			}
			t.Logf("from KeBugCheckEx: %d frames, machine frame at %d", len(fromBugCheck), trap)
			if tc.images != nil {
				img, err := tc.images.Image(context.Background(), *kdump.ModuleAt(mods, 0xfffff8047ba00000))
				if err != nil {
					t.Fatalf("ntoskrnl header page: %v", err)
				}
				for _, f := range frames {
					if f.Module == "ntoskrnl.exe" && !img.IsCodeRVA(uint32(f.Offset)) {
						t.Errorf("%v is not in ntoskrnl code", f)
					}
				}
			}
		})
	}
}

// TestTriageARM64FrameRecords walks win10-arm64_mem.dmp (a 17134 ARM64
// triage dump, 0xE2 MANUALLY_INITIATED_CRASH) with nothing but the dump.
// ARM64 Windows code keeps frame records, so after the header CONTEXT
// (PC in ntoskrnl) every frame comes from the X29 chain until the chain's
// null terminator: the keyboard driver that raised the crash, HID parsing
// and class drivers, WDF and the USB host controller driver, then the
// kernel. Microsoft's debugger shows frame 11 in Wdf01000
// (FxRequest::CompleteInternal); so does this walk.
func TestTriageARM64FrameRecords(t *testing.T) {
	d, err := kdump.Open(corpusFile(t, "kernel/win10-arm64_mem.dmp"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	mods, err := d.Modules()
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Context()
	if err != nil {
		t.Fatal(err)
	}
	frames, err := Walk(context.Background(), Input{Context: c, Memory: d.Memory(), Modules: mods, Images: MemoryImages{Memory: d.Memory()}})
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range frames {
		t.Logf("%2d %v sp %#x", i, f, f.SP)
	}
	if len(frames) < 12 {
		t.Fatalf("%d frames", len(frames))
	}
	if frames[0].FoundBy != FoundByContext || frames[0].Module != "ntoskrnl.exe" {
		t.Errorf("frame 0 = %v", frames[0])
	}
	for i, f := range frames[1:] {
		if f.FoundBy != FoundByFramePointer || f.SP <= frames[i].SP {
			t.Errorf("frame %d = %v sp %#x", i+1, f, f.SP)
		}
	}
	if frames[1].Module != "kbdhid.sys" || frames[11].Module != "Wdf01000.sys" || frames[len(frames)-1].Module != "ntoskrnl.exe" || frames[len(frames)-1].FP != 0 {
		t.Errorf("frames 1, 11, last: %v, %v, %v (fp %#x)", frames[1], frames[11], frames[len(frames)-1], frames[len(frames)-1].FP)
	}
}

// prcbContext reads the bug-check CONTEXT through the triage dump's copy of
// the crashing KPRCB: the pointer at KDBG.OffsetPrcbContext. The copy is
// read from the file (package kdump does not expose it).
func prcbContext(t *testing.T, d *kdump.File) *kdump.Context {
	t.Helper()
	k, err := d.KDBG()
	if err != nil {
		t.Fatal(err)
	}
	tri := d.Triage()
	fh, err := os.Open(corpusFile(t, "kernel/win10-triage_x64.dmp"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var b [8]byte
	if _, err := fh.ReadAt(b[:], int64(tri.PrcbOffset)+int64(k.OffsetPrcbContext)); err != nil {
		t.Fatal(err)
	}
	c, err := ContextAt(d.Memory(), kdump.MachineAMD64, binary.LittleEndian.Uint64(b[:]))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCorpusKernelDumps walks every kernel dump of the corpus from its
// header context with nothing but the dump, checking the walk's invariants.
func TestCorpusKernelDumps(t *testing.T) {
	dir := filepath.Dir(corpusFile(t, "kernel/win10-triage_x64.dmp"))
	paths, _ := filepath.Glob(filepath.Join(dir, "*.dmp"))
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			d, err := kdump.Open(p)
			if err != nil {
				t.Skipf("not readable: %v", err)
			}
			defer d.Close()
			mods, _ := d.Modules()
			c, err := d.Context()
			if err != nil {
				t.Skipf("no context: %v", err)
			}
			frames, err := Walk(context.Background(), Input{Context: c, Memory: d.Memory(), Modules: mods, Images: MemoryImages{Memory: d.Memory()}})
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) == 0 || frames[0].IP != c.PC || len(frames) > DefaultMaxFrames {
				t.Fatalf("%d frames", len(frames))
			}
			for i := 1; i < len(frames); i++ {
				if frames[i].FoundBy != FoundByTrapFrame && frames[i].SP <= frames[i-1].SP {
					t.Errorf("frame %d: sp %#x after %#x", i, frames[i].SP, frames[i-1].SP)
				}
				if frames[i].Module == "" && frames[i].FoundBy != FoundByTrapFrame {
					t.Errorf("frame %d (%v) is in no module", i, frames[i])
				}
			}
			t.Logf("%v: %d frames, first %v, last %v", d.BugCheck(), len(frames), frames[0], frames[len(frames)-1])
		})
	}
}

// TestChainedUnwind unwinds through chained UNWIND_INFO in a real MSVC
// image (exceptions-test.exe): the fragment at 0x4406 saves RDI with a MOV
// and chains to the primary entry at 0x43F0, which allocates 8 bytes.
func TestChainedUnwind(t *testing.T) {
	img, err := pe.Open(corpusFile(t, "symbols/exceptions-test.exe"))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	rf, ok, err := img.LookupFunction(0x4410)
	if err != nil || !ok || rf.Begin != 0x4406 {
		t.Fatalf("LookupFunction(0x4410) = %+v %v %v", rf, ok, err)
	}
	chain, err := img.UnwindChain(rf)
	if err != nil || len(chain) != 2 || chain[0].Codes[0].Op != pe.UWOP_SAVE_NONVOL || chain[1].Codes[0].Op != pe.UWOP_ALLOC_SMALL {
		t.Fatalf("chain %v, %v", chain, err)
	}
	base := img.OptionalHeader.ImageBase
	mod := kdump.Module{Name: "exceptions-test.exe", Base: base, Size: img.OptionalHeader.SizeOfImage}
	const sp = 0x14fe00
	s := &stackBuilder{base: sp, b: make([]byte, 0x40), ptr: 8}
	s.put(0, 0xD1D1)      // RDI saved by the fragment
	s.put(8, base+0x4450) // return address
	mem := &testMem{}
	mem.add(sp, s.b)
	for _, tc := range []struct {
		name string
		ip   uint32
		rdi  uint64
	}{{"body", 0x4410, 0xD1D1}, {"fragment prolog", 0x4408, 0x7777}} {
		t.Run(tc.name, func(t *testing.T) {
			c := &kdump.Context{Machine: kdump.MachineAMD64, PC: base + uint64(tc.ip)}
			c.GPR[kdump.RegRSP] = sp
			c.GPR[kdump.RegRDI] = 0x7777
			frames, err := Walk(context.Background(), Input{Context: c, Memory: mem, Modules: []kdump.Module{mod}, Images: fixedImage{img}, MaxFrames: 2, NoScan: true})
			if err != nil || len(frames) != 2 {
				t.Fatalf("frames %v, %v", frames, err)
			}
			f := frames[1]
			if f.IP != base+0x4450 || f.SP != sp+16 || f.FoundBy != FoundByUnwind || f.Context.GPR[kdump.RegRDI] != tc.rdi {
				t.Errorf("caller %v ip %#x sp %#x rdi %#x; want ip %#x sp %#x rdi %#x", f, f.IP, f.SP, f.Context.GPR[kdump.RegRDI], base+0x4450, sp+16, tc.rdi)
			}
		})
	}
}

// TestCorpusUserDumps walks the crashing thread of every user-mode dump in
// the corpus with the images' pages found in the dump (if any), checking
// the walk's invariants.
func TestCorpusUserDumps(t *testing.T) {
	dir := filepath.Dir(corpusFile(t, "user/breakpad-minidump2.dmp"))
	paths, _ := filepath.Glob(filepath.Join(dir, "*.dmp"))
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			d, err := kdump.OpenAny(p)
			if err != nil {
				t.Skipf("not readable: %v", err)
			}
			defer d.Close()
			mods, _ := d.Modules()
			c, err := d.Context()
			if err != nil {
				t.Skipf("no context: %v", err)
			}
			frames, err := Walk(context.Background(), Input{Context: c, Memory: d.Memory(), Modules: mods, Images: MemoryImages{Memory: d.Memory()}})
			if err != nil {
				t.Skipf("%v: %v", d.Machine(), err)
			}
			for i := 1; i < len(frames); i++ {
				if frames[i].FoundBy != FoundByTrapFrame && frames[i].SP <= frames[i-1].SP {
					t.Errorf("frame %d: sp %#x after %#x", i, frames[i].SP, frames[i-1].SP)
				}
			}
			t.Logf("%v: %d frames: %v", d.Machine(), len(frames), frames[:min(len(frames), 6)])
		})
	}
}
