package kdump

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/kdtriage/kdtriage/kdump/kdumptest"
)

var memoryKinds = []kdumptest.Kind{kdumptest.Full, kdumptest.BitmapKernel, kdumptest.BitmapFull,
	kdumptest.BitmapLive, kdumptest.RDMPKernel, kdumptest.RDMPKernelUser, kdumptest.RDMPComplete}

var memoryArches = []kdumptest.Arch{kdumptest.AMD64, kdumptest.X86PAE, kdumptest.X86, kdumptest.ARM64}

func build(t testing.TB, s kdumptest.Spec) (*kdumptest.Image, *kdumptest.Facts) {
	t.Helper()
	im, facts, err := kdumptest.Build(s)
	if err != nil {
		t.Fatal(err)
	}
	return im, facts
}

func openImage(t testing.TB, im *kdumptest.Image) *File {
	t.Helper()
	f, err := NewFile(im, im.Size())
	if err != nil {
		t.Fatalf("NewFile: %v", err)
	}
	return f
}

// checkCommon checks what every synthetic dump must give.
func checkCommon(t *testing.T, f *File, facts *kdumptest.Facts) {
	t.Helper()
	h := f.Header()
	if uint16(h.Machine) != facts.Machine || h.MinorVersion != facts.Build || uint32(h.DumpType) != facts.DumpType {
		t.Errorf("header machine %v build %d type %v, want %#x %d %d", h.Machine, h.MinorVersion, h.DumpType, facts.Machine, facts.Build, facts.DumpType)
	}
	if h.BugCheck.Code != facts.BugCheck || h.BugCheck.Params != facts.Params {
		t.Errorf("bug check %#x %x, want %#x %x", h.BugCheck.Code, h.BugCheck.Params, facts.BugCheck, facts.Params)
	}
	if h.NumberProcessors != uint32(facts.Processors) || h.KdDebuggerDataBlock != facts.KDBG {
		t.Errorf("processors %d KDBG %#x, want %d %#x", h.NumberProcessors, h.KdDebuggerDataBlock, facts.Processors, facts.KDBG)
	}
	if p := f.Problems(); len(p) != 0 {
		t.Errorf("problems: %v", p)
	}
	mods, err := f.Modules()
	if err != nil {
		t.Fatalf("Modules: %v", err)
	}
	if len(mods) != len(facts.Modules) {
		t.Fatalf("%d modules, want %d: %+v", len(mods), len(facts.Modules), mods)
	}
	for i, w := range facts.Modules {
		g := mods[i]
		if g.Name != w.Name || g.Path != w.Path || g.Base != w.Base || g.Size != w.Size || g.TimeDateStamp != w.TimeDateStamp || g.CheckSum != w.CheckSum {
			t.Errorf("module %d = %+v, want %+v", i, g, w)
		}
	}
	c, err := f.Context()
	if err != nil {
		t.Fatal(err)
	}
	if c.IP() != facts.IP || c.SP() != facts.SP || c.FP() != facts.FP {
		t.Errorf("context ip %#x sp %#x fp %#x, want %#x %#x %#x", c.IP(), c.SP(), c.FP(), facts.IP, facts.SP, facts.FP)
	}
	k, err := f.KDBG()
	if err != nil {
		t.Fatalf("KDBG: %v", err)
	}
	mask := ^uint64(0)
	if facts.Machine == 0x14C || facts.Machine == 0x1C4 {
		mask = 0xFFFFFFFF
	}
	if k.VA != facts.KDBG || k.KernBase&mask != facts.KernBase || k.PsLoadedModuleList&mask != facts.PsLoadedModuleList || k.KiProcessorBlock&mask != facts.KiProcessorBlock {
		t.Errorf("KDBG %+v, facts %+v", k, facts)
	}
	th, proc, err := f.CurrentThread()
	if err != nil {
		t.Fatalf("CurrentThread: %v", err)
	}
	if th != facts.Thread || proc != facts.Process {
		t.Errorf("thread %#x process %#x, want %#x %#x", th, proc, facts.Thread, facts.Process)
	}
	name, err := f.ProcessName()
	if facts.ProcessName != "" && (err != nil || name != facts.ProcessName) {
		t.Errorf("process name %q, %v; want %q", name, err, facts.ProcessName)
	}
	// The whole readable stack, and a read across every page of it.
	got := make([]byte, len(facts.Stack))
	if n, err := f.Memory().ReadVirtual(got, facts.StackStart); err != nil || n != len(got) || !bytes.Equal(got, facts.Stack) {
		t.Errorf("stack read: n=%d err=%v equal=%v", n, err, bytes.Equal(got, facts.Stack))
	}
	un, err := f.UnloadedModules()
	if err != nil {
		t.Fatalf("UnloadedModules: %v", err)
	}
	if fmt.Sprint(un) != fmt.Sprint(toUnloaded(facts.Unloaded)) {
		t.Errorf("unloaded %+v, want %+v", un, facts.Unloaded)
	}
}

func toUnloaded(u []kdumptest.Unloaded) []UnloadedModule {
	var out []UnloadedModule
	for _, x := range u {
		out = append(out, UnloadedModule{Name: x.Name, Start: x.Start, End: x.End})
	}
	return out
}

func TestSyntheticTriage(t *testing.T) {
	for _, a := range []kdumptest.Arch{kdumptest.AMD64, kdumptest.ARM64, kdumptest.X86PAE, kdumptest.X86, kdumptest.ARM} {
		t.Run(a.String(), func(t *testing.T) {
			im, facts := build(t, kdumptest.Spec{Arch: a, Kind: kdumptest.Triage})
			f := openImage(t, im)
			checkCommon(t, f, facts)
			if f.Triage() == nil || f.Physical() != nil || f.PagingMode() != PagingNone {
				t.Errorf("triage %v physical %v paging %v", f.Triage(), f.Physical(), f.PagingMode())
			}
			if _, err := f.Translate(facts.KernBase); !errors.Is(err, ErrUnsupported) {
				t.Errorf("Translate on a triage dump: %v", err)
			}
			// The data page holds the kernel's PE header.
			var mz [2]byte
			if _, err := f.Memory().ReadVirtual(mz[:], facts.KernBase); err != nil || string(mz[:]) != "MZ" {
				t.Errorf("data page: %q %v", mz, err)
			}
		})
	}
}

func TestSyntheticMemoryDumps(t *testing.T) {
	for _, a := range memoryArches {
		for _, k := range memoryKinds {
			t.Run(a.String()+"/"+k.String(), func(t *testing.T) {
				im, facts := build(t, kdumptest.Spec{Arch: a, Kind: k})
				f := openImage(t, im)
				checkCommon(t, f, facts)
				checkPaging(t, f, facts)
				checkRanges(t, f, facts)
			})
		}
	}
}

func checkRanges(t *testing.T, f *File, facts *kdumptest.Facts) {
	t.Helper()
	rs := f.PhysicalRanges()
	var got []kdumptest.PageRange
	for _, r := range rs {
		if n := len(got); n > 0 && got[n-1].PFN+got[n-1].Pages == r.PFN {
			got[n-1].Pages += r.Pages
			continue
		}
		got = append(got, kdumptest.PageRange{PFN: r.PFN, Pages: r.Pages})
	}
	if fmt.Sprint(got) != fmt.Sprint(facts.Ranges) {
		t.Errorf("physical ranges %v, want %v", got, facts.Ranges)
	}
}

func checkPaging(t *testing.T, f *File, facts *kdumptest.Facts) {
	t.Helper()
	want := map[kdumptest.Arch]PagingMode{kdumptest.AMD64: PagingX64, kdumptest.X86PAE: PagingPAE, kdumptest.X86: PagingX86, kdumptest.ARM64: PagingARM64}[facts.Arch]
	if f.PagingMode() != want || want.String() != facts.Arch.String() {
		t.Errorf("paging %v, want %v", f.PagingMode(), want)
	}
	probe := func(name string, va, pa, size uint64, transition bool) {
		if va == 0 {
			return
		}
		tr, err := f.Translate(va + 0x18)
		if err != nil {
			t.Errorf("%s: translate %#x: %v", name, va, err)
			return
		}
		if tr.PA != pa+0x18 || tr.Transition != transition || (size != 0 && tr.PageSize != size) {
			t.Errorf("%s: %+v, want PA %#x size %#x transition %v", name, tr, pa+0x18, size, transition)
		}
		v, err := ReadU64(f.Memory(), va+0x18)
		if err != nil || v != kdumptest.Pattern(va+0x18) {
			t.Errorf("%s: read %#x, %v", name, v, err)
		}
	}
	probe("large page", facts.LargePageVA, facts.LargePagePA, facts.LargePageSize, false)
	probe("1 GiB page", facts.HugePageVA, facts.HugePagePA, 1<<30, false)
	probe("transition", facts.TransitionVA, facts.TransitionPA, PageSize, true)
	for va, reason := range map[uint64]string{facts.PrototypeVA: "paged out (prototype PTE)", facts.PageFileVA: "in the page file"} {
		if va == 0 {
			continue
		}
		_, err := f.Translate(va)
		var pf *PageFaultError
		if !errors.As(err, &pf) || !IsNotPresent(err) || pf.Level != 1 || pf.Reason != reason || pf.VA != va || pf.Error() == "" {
			t.Errorf("PTE at %#x: %v, want %s", va, err, reason)
		}
	}
	if facts.Machine == 0x14C {
		if _, err := f.Translate(0x100000000 | facts.KernBase); !IsNotPresent(err) {
			t.Errorf("a 33-bit address on x86: %v", err)
		}
		// Sign-extended 32-bit addresses are accepted.
		if tr, err := f.Translate(0xFFFFFFFF00000000 | facts.LargePageVA); err != nil || tr.PA != facts.LargePagePA {
			t.Errorf("sign-extended address: %+v %v", tr, err)
		}
	}
	// A valid PTE to a page the dump does not store.
	if _, err := ReadU64(f.Memory(), facts.AbsentVA); !IsNotPresent(err) {
		t.Errorf("absent page: %v", err)
	} else {
		var me *MemoryError
		if !errors.As(err, &me) || me.Addr != facts.AbsentVA {
			t.Errorf("absent page error %v", err)
		}
	}
	// Unmapped addresses.
	if _, err := ReadU64(f.Memory(), facts.AbsentVA+0x10000000); !IsNotPresent(err) {
		t.Errorf("unmapped: %v", err)
	}
	if facts.Arch == kdumptest.AMD64 {
		if _, err := f.Translate(0x0000900000000000); err == nil {
			t.Errorf("non-canonical address translated")
		}
	}
	// A process address space with the kernel DTB reads the same bytes.
	as, err := f.AddressSpace(facts.DTB)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := ReadU64(as, facts.LargePageVA); err != nil || v != kdumptest.Pattern(facts.LargePageVA) {
		t.Errorf("address space read %#x %v", v, err)
	}
}

func TestSyntheticVariants(t *testing.T) {
	tests := []struct {
		name string
		spec kdumptest.Spec
	}{
		{"x86 non-PAE, PAE byte unset", kdumptest.Spec{Arch: kdumptest.X86, Kind: kdumptest.Full, PAEUnset: true}},
		{"x86 PAE, PAE byte unset", kdumptest.Spec{Arch: kdumptest.X86PAE, Kind: kdumptest.BitmapKernel, PAEUnset: true}},
		{"x64 inline PRCB context", kdumptest.Spec{Arch: kdumptest.AMD64, Kind: kdumptest.Full, InlinePrcbContext: true}},
		{"x86 inline PRCB context", kdumptest.Spec{Arch: kdumptest.X86PAE, Kind: kdumptest.Full, InlinePrcbContext: true}},
		{"x64 one CPU", kdumptest.Spec{Arch: kdumptest.AMD64, Kind: kdumptest.BitmapFull, Processors: 1}},
		{"x64 crash on CPU 0", kdumptest.Spec{Arch: kdumptest.AMD64, Kind: kdumptest.BitmapKernel, CrashCPU: -1, Processors: 8}},
		{"x64 last CPU of 64", kdumptest.Spec{Arch: kdumptest.AMD64, Kind: kdumptest.RDMPKernel, CrashCPU: 63, Processors: 64}},
		{"x64 Win7", kdumptest.Spec{Arch: kdumptest.AMD64, Kind: kdumptest.Full, Build: 7601}},
		{"x64 Win8.1", kdumptest.Spec{Arch: kdumptest.AMD64, Kind: kdumptest.Triage, Build: 9600}},
		{"arm64 19041", kdumptest.Spec{Arch: kdumptest.ARM64, Kind: kdumptest.BitmapKernel, Build: 19041}},
		{"triage with DumpBlob", kdumptest.Spec{Arch: kdumptest.ARM64, Kind: kdumptest.Triage, DumpBlob: true}},
		{"x86 Win7 triage", kdumptest.Spec{Arch: kdumptest.X86, Kind: kdumptest.Triage, Build: 7601}},
		{"x64 5 GiB bitmap kernel", kdumptest.Spec{Arch: kdumptest.AMD64, Kind: kdumptest.BitmapKernel, MemoryBytes: 5 << 30}},
		{"x64 5 GiB full runs", kdumptest.Spec{Arch: kdumptest.AMD64, Kind: kdumptest.Full, MemoryBytes: 5 << 30}},
		{"arm64 3 GiB complete RDMP", kdumptest.Spec{Arch: kdumptest.ARM64, Kind: kdumptest.RDMPComplete, MemoryBytes: 3 << 30}},
		{"x86 PAE 6 GiB FDMP", kdumptest.Spec{Arch: kdumptest.X86PAE, Kind: kdumptest.BitmapFull, MemoryBytes: 6 << 30}},
		{"x86 4 GiB SDMP", kdumptest.Spec{Arch: kdumptest.X86, Kind: kdumptest.BitmapKernel, MemoryBytes: 4 << 30}},
		{"unloaded drivers wrapped", kdumptest.Spec{Arch: kdumptest.AMD64, Kind: kdumptest.BitmapKernel, Unloaded: manyUnloaded(60, 0xfffff80490000000)}},
		{"unloaded drivers, x86, 50", kdumptest.Spec{Arch: kdumptest.X86, Kind: kdumptest.Full, Unloaded: manyUnloaded(50, 0x9a000000)}},
		{"unloaded drivers, triage", kdumptest.Spec{Arch: kdumptest.AMD64, Kind: kdumptest.Triage, Unloaded: manyUnloaded(60, 0xfffff80490000000)}},
		{"no unloaded drivers", kdumptest.Spec{Arch: kdumptest.AMD64, Kind: kdumptest.Full, Unloaded: []kdumptest.Unloaded{}}},
		{"one module", kdumptest.Spec{Arch: kdumptest.X86, Kind: kdumptest.RDMPKernelUser, Modules: kdumptest.DefaultModules(kdumptest.X86)[:1]}},
		{"process name", kdumptest.Spec{Arch: kdumptest.AMD64, Kind: kdumptest.BitmapKernel, ProcessName: "explorer.exe"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			im, facts := build(t, tc.spec)
			f := openImage(t, im)
			checkCommon(t, f, facts)
			if tc.spec.Kind != kdumptest.Triage {
				checkPaging(t, f, facts)
				checkRanges(t, f, facts)
				if cpu, err := f.CrashingProcessor(); err != nil || cpu != facts.CrashCPU {
					t.Errorf("crashing CPU %d, %v; want %d", cpu, err, facts.CrashCPU)
				}
			}
			if tc.spec.DumpBlob && (int64(f.Triage().SizeOfDump) >= f.Size() || f.Header().RequiredDumpSpace <= uint64(f.Size())) {
				t.Errorf("SizeOfDump %#x, RequiredDumpSpace %#x, file %#x", f.Triage().SizeOfDump, f.Header().RequiredDumpSpace, f.Size())
			}
			if tc.spec.MemoryBytes > 4<<30 && im.StoredBytes() > 8<<20 {
				t.Errorf("a %d GiB dump stores %d bytes", tc.spec.MemoryBytes>>30, im.StoredBytes())
			}
		})
	}
}

func TestSyntheticEncodedKDBG(t *testing.T) {
	keys := kdumptest.KDBGKeys{KiWaitNever: 0x1d2e3f4a5b6c7d13, KiWaitAlways: 0x9a8b7c6d5e4f3021, KdpDataBlockEncoded: 0xfffff8047c6ea4c8}
	im, facts := build(t, kdumptest.Spec{Arch: kdumptest.AMD64, Kind: kdumptest.BitmapKernel, EncodeKDBG: &keys})
	f := openImage(t, im)
	if _, err := f.KDBG(); !errors.Is(err, ErrKDBGEncoded) {
		t.Fatalf("KDBG of an encoded block: %v, want ErrKDBGEncoded", err)
	}
	if _, _, err := f.CurrentThread(); !errors.Is(err, ErrKDBGEncoded) {
		t.Errorf("CurrentThread without keys: %v", err)
	}
	// The module list does not need the KDBG block.
	if mods, err := f.Modules(); err != nil || len(mods) != len(facts.Modules) {
		t.Errorf("modules %d, %v", len(mods), err)
	}
	bad := keys
	bad.KiWaitAlways++
	f.SetKDBGKeys(KDBGKeys(bad))
	if _, err := f.KDBG(); !errors.Is(err, ErrKDBGEncoded) {
		t.Errorf("wrong keys: %v", err)
	}
	f.SetKDBGKeys(KDBGKeys{KiWaitNever: keys.KiWaitNever, KiWaitAlways: keys.KiWaitAlways, KdpDataBlockEncoded: keys.KdpDataBlockEncoded})
	checkCommon(t, f, facts)

	// Without the header's module-list head, the list needs the decoded block.
	patch64(im, 0x20, 0)
	f = openImage(t, im)
	if _, err := f.Modules(); !IsNotPresent(err) {
		t.Errorf("modules without a list head: %v", err)
	}
	f.SetKDBGKeys(KDBGKeys(keys))
	checkCommon2(t, f, facts)
}

// TestSyntheticBitmapScan checks the word-wise bitmap scan against a bit
// by bit one on random bitmaps whose bit count is not a multiple of 64.
func TestSyntheticBitmapScan(t *testing.T) {
	for seed := range 6 {
		im, facts := build(t, kdumptest.Spec{Arch: kdumptest.AMD64, Kind: kdumptest.BitmapKernel})
		hdr := facts.BitmapHeaderOffset
		var nb [8]byte
		im.ReadAt(nb[:], hdr+0x30)
		nbits := binary.LittleEndian.Uint64(nb[:]) - uint64(seed*13) // spare bits in the last byte and word
		bm := make([]byte, (nbits+7)/8)
		rng := uint64(seed)*0x9E3779B97F4A7C15 + 1
		for i := range bm {
			rng ^= rng << 13
			rng ^= rng >> 7
			rng ^= rng << 17
			switch {
			case i/64%3 == 0:
				bm[i] = 0xFF // whole words set
			case i/64%3 == 1:
				bm[i] = 0
			default:
				bm[i] = byte(rng)
			}
		}
		// Bits past nbits in the last byte must be ignored.
		bm[len(bm)-1] |= 0x80
		im.WriteAt(bm, hdr+0x38)
		var want []PhysicalRange
		var present uint64
		pastEOF := ^uint64(0)
		off := facts.FirstPageOffset
		for pfn := uint64(0); pfn < nbits; pfn++ {
			if bm[pfn/8]>>(pfn%8)&1 == 0 {
				continue
			}
			present++
			if n := len(want); n > 0 && want[n-1].PFN+want[n-1].Pages == pfn {
				want[n-1].Pages++
			} else if off < im.Size() { // runs starting past the end are dropped
				want = append(want, PhysicalRange{PFN: pfn, Pages: 1, Offset: off})
			}
			if off >= im.Size() && pastEOF == ^uint64(0) {
				pastEOF = pfn
			}
			off += PageSize
		}
		binary.LittleEndian.PutUint64(nb[:], nbits)
		im.WriteAt(nb[:], hdr+0x30)
		binary.LittleEndian.PutUint64(nb[:], present)
		im.WriteAt(nb[:], hdr+0x28)
		f, err := NewFile(im, im.Size())
		if err != nil {
			t.Fatal(err)
		}
		got := f.PhysicalRanges()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("seed %d: %d ranges, want %d", seed, len(got), len(want))
		}
		// Pages past the end of the file are reported, not read.
		if len(f.Problems()) != 1 {
			t.Errorf("seed %d: problems %v", seed, f.Problems())
		}
		var b [8]byte
		var fe *FormatError
		if _, err := f.Physical().ReadPhysical(b[:], pastEOF*PageSize); !IsNotPresent(err) || !errors.As(err, &fe) {
			t.Errorf("seed %d: page %#x past the end: %v", seed, pastEOF, err)
		}
	}
}

func patch64(im *kdumptest.Image, off int64, v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	im.WriteAt(b[:], off)
}

func patch32(im *kdumptest.Image, off int64, v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	im.WriteAt(b[:], off)
}

// TestSyntheticCorruptOpen: broken layouts give a typed error from NewFile.
func TestSyntheticCorruptOpen(t *testing.T) {
	tests := []struct {
		name   string
		spec   kdumptest.Spec
		mutate func(im *kdumptest.Image, f *kdumptest.Facts)
		is     error // also required with errors.Is, when set
	}{
		{"runs: NumberOfRuns too large", kdumptest.Spec{Kind: kdumptest.Full}, func(im *kdumptest.Image, f *kdumptest.Facts) { patch32(im, 0x88, 1000) }, nil},
		{"runs: NumberOfRuns unset", kdumptest.Spec{Kind: kdumptest.Full}, func(im *kdumptest.Image, f *kdumptest.Facts) { patch32(im, 0x88, 0x45474150) }, nil},
		{"runs: no runs", kdumptest.Spec{Kind: kdumptest.Full}, func(im *kdumptest.Image, f *kdumptest.Facts) { patch32(im, 0x88, 0) }, nil},
		{"runs: overlapping", kdumptest.Spec{Kind: kdumptest.Full}, func(im *kdumptest.Image, f *kdumptest.Facts) { patch64(im, 0x98+16, 0x50) }, nil},
		{"runs: huge page count", kdumptest.Spec{Kind: kdumptest.Full}, func(im *kdumptest.Image, f *kdumptest.Facts) { patch64(im, 0xA0, 1<<50) }, nil},
		{"runs: x86 too many", kdumptest.Spec{Arch: kdumptest.X86, Kind: kdumptest.Full}, func(im *kdumptest.Image, f *kdumptest.Facts) { patch32(im, 0x64, 87) }, nil},
		{"bitmap: bad signature", kdumptest.Spec{Kind: kdumptest.BitmapKernel}, func(im *kdumptest.Image, f *kdumptest.Facts) { patch32(im, f.BitmapHeaderOffset, 0x504D4458) }, nil},
		{"bitmap: bad ValidDump", kdumptest.Spec{Kind: kdumptest.BitmapFull}, func(im *kdumptest.Image, f *kdumptest.Facts) { patch32(im, f.BitmapHeaderOffset+4, 0) }, nil},
		{"bitmap: huge bit count", kdumptest.Spec{Kind: kdumptest.BitmapKernel}, func(im *kdumptest.Image, f *kdumptest.Facts) { patch64(im, f.BitmapHeaderOffset+0x30, 1<<62) }, io.ErrUnexpectedEOF},
		{"bitmap: max bit count", kdumptest.Spec{Kind: kdumptest.BitmapKernel}, func(im *kdumptest.Image, f *kdumptest.Facts) { patch64(im, f.BitmapHeaderOffset+0x30, ^uint64(0)) }, nil},
		{"bitmap: FirstPage inside the bitmap", kdumptest.Spec{Kind: kdumptest.BitmapKernel}, func(im *kdumptest.Image, f *kdumptest.Facts) {
			patch64(im, f.BitmapHeaderOffset+0x20, uint64(f.BitmapHeaderOffset+0x40))
		}, nil},
		{"bitmap: FirstPage huge", kdumptest.Spec{Kind: kdumptest.BitmapKernel}, func(im *kdumptest.Image, f *kdumptest.Facts) { patch64(im, f.BitmapHeaderOffset+0x20, 1<<63) }, nil},
		{"bitmap: truncated bitmap", kdumptest.Spec{Kind: kdumptest.BitmapKernel}, func(im *kdumptest.Image, f *kdumptest.Facts) { im.Truncate(f.BitmapHeaderOffset + 0x100) }, io.ErrUnexpectedEOF},
		{"bitmap: truncated header", kdumptest.Spec{Kind: kdumptest.BitmapKernel}, func(im *kdumptest.Image, f *kdumptest.Facts) { im.Truncate(f.BitmapHeaderOffset + 0x10) }, io.ErrUnexpectedEOF},
		{"rdmp: bad signature", kdumptest.Spec{Kind: kdumptest.RDMPKernel}, func(im *kdumptest.Image, f *kdumptest.Facts) { patch32(im, f.BitmapHeaderOffset+4, 0) }, nil},
		{"rdmp: metadata mismatch", kdumptest.Spec{Kind: kdumptest.RDMPKernel}, func(im *kdumptest.Image, f *kdumptest.Facts) { patch64(im, f.BitmapHeaderOffset+0x10, 0x10) }, nil},
		{"rdmp: huge range list", kdumptest.Spec{Kind: kdumptest.RDMPComplete}, func(im *kdumptest.Image, f *kdumptest.Facts) {
			patch64(im, f.BitmapHeaderOffset+0x10, 1<<40)
			patch64(im, f.BitmapHeaderOffset+0x18, 1<<40+0x20+uint64(f.BitmapHeaderOffset))
			patch32(im, f.BitmapHeaderOffset+0x20, 0xFFFFFFFF)
		}, nil},
		{"rdmp: first range empty", kdumptest.Spec{Kind: kdumptest.RDMPKernel}, func(im *kdumptest.Image, f *kdumptest.Facts) { patch64(im, f.BitmapHeaderOffset+0x30, 0) }, nil},
		{"rdmp: overlapping ranges", kdumptest.Spec{Kind: kdumptest.RDMPComplete}, func(im *kdumptest.Image, f *kdumptest.Facts) { patch64(im, f.BitmapHeaderOffset+0x40, 2) }, nil},
		{"encrypted", kdumptest.Spec{Kind: kdumptest.Full}, func(im *kdumptest.Image, f *kdumptest.Facts) { patch32(im, 0x1050, 1<<8) }, ErrUnsupported},
		{"encrypted x86", kdumptest.Spec{Arch: kdumptest.X86, Kind: kdumptest.BitmapKernel}, func(im *kdumptest.Image, f *kdumptest.Facts) { patch32(im, 0x8A0, 1<<8) }, ErrUnsupported},
		{"triage: no TRGD", kdumptest.Spec{Kind: kdumptest.Triage}, func(im *kdumptest.Image, f *kdumptest.Facts) { im.Truncate(f.FileSize - 4) }, nil},
		{"triage: truncated header", kdumptest.Spec{Arch: kdumptest.X86PAE, Kind: kdumptest.Triage}, func(im *kdumptest.Image, f *kdumptest.Facts) { im.Truncate(0x1010) }, io.ErrUnexpectedEOF},
		{"header: truncated", kdumptest.Spec{Kind: kdumptest.Full}, func(im *kdumptest.Image, f *kdumptest.Facts) { im.Truncate(0x1800) }, io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			im, facts := build(t, tc.spec)
			tc.mutate(im, facts)
			f, err := NewFile(im, im.Size())
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v (file %v), want a *FormatError", err, f != nil)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			// What kdtriage info prints: one line that names the offset.
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, " at offset 0x") || fe.Offset < 0 {
				t.Errorf("message %q: want one line naming the file offset", msg)
			}
			t.Log(err)
		})
	}
}

// TestSyntheticPartial: damage that leaves the dump readable gives partial
// results with typed errors.
func TestSyntheticPartial(t *testing.T) {
	t.Run("truncated full dump", func(t *testing.T) {
		im, facts := build(t, kdumptest.Spec{Kind: kdumptest.Full})
		im.Truncate(facts.FirstPageOffset + 0x100*PageSize)
		f := openImage(t, im)
		if len(f.Problems()) != 1 || !errors.Is(f.Problems()[0], io.ErrUnexpectedEOF) {
			t.Errorf("problems %v", f.Problems())
		}
		_, err := ReadU64(f.Memory(), facts.KDBG)
		var fe *FormatError
		if !IsNotPresent(err) || !errors.As(err, &fe) {
			t.Errorf("reading past the end: %v", err)
		}
		var b [8]byte
		if _, err := f.Physical().ReadPhysical(b[:], 0x50*PageSize); err != nil {
			t.Errorf("a page before the cut: %v", err)
		}
		if _, err := f.KDBG(); !IsNotPresent(err) || !errors.As(err, &fe) {
			t.Errorf("KDBG: %v", err)
		}
		if mods, err := f.Modules(); len(mods) != 0 || !IsNotPresent(err) {
			t.Errorf("modules %v, %v", mods, err)
		}
		if _, _, err := f.CurrentThread(); err == nil {
			t.Error("CurrentThread succeeded")
		}
		if _, err := f.ProcessName(); err == nil {
			t.Error("ProcessName succeeded")
		}
	})
	t.Run("page cut in the middle", func(t *testing.T) {
		im, facts := build(t, kdumptest.Spec{Kind: kdumptest.BitmapKernel})
		im.Truncate(facts.FileSize - 0x800)
		f := openImage(t, im)
		if len(f.Problems()) != 1 {
			t.Errorf("problems %v", f.Problems())
		}
		last := f.PhysicalRanges()[len(f.PhysicalRanges())-1]
		pa := (last.PFN+last.Pages-1)*PageSize + 0x7F8
		var b [16]byte
		n, err := f.Physical().ReadPhysical(b[:], pa)
		var me *MemoryError
		if n != 8 || !IsNotPresent(err) || !errors.As(err, &me) || !me.Physical || me.Addr != pa+8 {
			t.Errorf("read across the cut: n=%d %v", n, err)
		}
	})
	t.Run("present count mismatch", func(t *testing.T) {
		im, facts := build(t, kdumptest.Spec{Kind: kdumptest.BitmapFull})
		patch64(im, facts.BitmapHeaderOffset+0x28, facts.StoredPages+1)
		f := openImage(t, im)
		if len(f.Problems()) != 1 {
			t.Errorf("problems %v", f.Problems())
		}
		checkCommon2(t, f, facts)
	})
	t.Run("run page total mismatch", func(t *testing.T) {
		im, facts := build(t, kdumptest.Spec{Kind: kdumptest.Full})
		patch64(im, 0x90, 5)
		f := openImage(t, im)
		if len(f.Problems()) != 1 {
			t.Errorf("problems %v", f.Problems())
		}
		checkCommon2(t, f, facts)
	})
	t.Run("cyclic module list", func(t *testing.T) {
		for _, a := range memoryArches {
			im, facts := build(t, kdumptest.Spec{Arch: a, Kind: kdumptest.BitmapKernel, CyclicModules: true})
			f := openImage(t, im)
			mods, err := f.Modules()
			var fe *FormatError
			if len(mods) != len(facts.Modules) || !errors.As(err, &fe) {
				t.Errorf("%v: %d modules, %v", a, len(mods), err)
			}
		}
	})
	t.Run("broken module list", func(t *testing.T) {
		for _, a := range memoryArches {
			im, _ := build(t, kdumptest.Spec{Arch: a, Kind: kdumptest.Full, BreakModulesAfter: 3})
			f := openImage(t, im)
			mods, err := f.Modules()
			if len(mods) != 3 || !IsNotPresent(err) || mods[2].Name != "kd.dll" {
				t.Errorf("%v: %d modules, %v", a, len(mods), err)
			}
		}
	})
	t.Run("bad header pointers", func(t *testing.T) {
		im, facts := build(t, kdumptest.Spec{Kind: kdumptest.BitmapKernel})
		patch64(im, 0x80, facts.AbsentVA+0x40000) // KdDebuggerDataBlock
		patch64(im, 0x20, 0x0000900000000000)     // PsLoadedModuleList, non-canonical
		f := openImage(t, im)
		if _, err := f.KDBG(); !IsNotPresent(err) {
			t.Errorf("KDBG: %v", err)
		}
		if _, _, err := f.CurrentThread(); !IsNotPresent(err) {
			t.Errorf("CurrentThread: %v", err)
		}
		if _, err := f.UnloadedModules(); !IsNotPresent(err) {
			t.Errorf("UnloadedModules: %v", err)
		}
		if mods, err := f.Modules(); mods != nil || !IsNotPresent(err) {
			t.Errorf("Modules: %v %v", mods, err)
		}
	})
	t.Run("KDBG unset and module list unset", func(t *testing.T) {
		im, _ := build(t, kdumptest.Spec{Arch: kdumptest.X86, Kind: kdumptest.Full})
		patch32(im, 0x60, 0)
		patch32(im, 0x18, 0x45474150)
		f := openImage(t, im)
		if _, err := f.KDBG(); !IsNotPresent(err) {
			t.Errorf("KDBG: %v", err)
		}
		if _, err := f.Modules(); !IsNotPresent(err) {
			t.Errorf("Modules: %v", err)
		}
	})
	t.Run("module list head from KDBG", func(t *testing.T) {
		for _, a := range memoryArches {
			im, facts := build(t, kdumptest.Spec{Arch: a, Kind: kdumptest.BitmapKernel})
			if facts.Arch == kdumptest.AMD64 || facts.Arch == kdumptest.ARM64 {
				patch64(im, 0x20, 0)
			} else {
				patch32(im, 0x18, 0x45474150)
			}
			f := openImage(t, im)
			checkCommon2(t, f, facts)
		}
	})
	t.Run("PAE byte says no PAE", func(t *testing.T) {
		im, facts := build(t, kdumptest.Spec{Arch: kdumptest.X86PAE, Kind: kdumptest.Full})
		im.WriteAt([]byte{0}, 0x5C)
		f := openImage(t, im)
		if f.PagingMode() != PagingPAE {
			t.Errorf("paging %v", f.PagingMode())
		}
		checkCommon2(t, f, facts)
	})
	t.Run("huge processor count", func(t *testing.T) {
		im, _ := build(t, kdumptest.Spec{Kind: kdumptest.Full})
		patch32(im, 0x34, 1<<20)
		f := openImage(t, im)
		var fe *FormatError
		if _, _, err := f.CurrentThread(); !errors.As(err, &fe) {
			t.Errorf("CurrentThread: %v", err)
		}
	})
	t.Run("DTB not in the dump", func(t *testing.T) {
		im, _ := build(t, kdumptest.Spec{Kind: kdumptest.BitmapKernel})
		patch64(im, 0x10, 0xA0000)
		f := openImage(t, im)
		if _, err := f.Modules(); !IsNotPresent(err) {
			t.Errorf("Modules: %v", err)
		}
	})
	t.Run("self-referencing page tables", func(t *testing.T) {
		im, facts := build(t, kdumptest.Spec{Kind: kdumptest.Full})
		f := openImage(t, im)
		// Point every PML4 entry back at the PML4 itself.
		pml4 := facts.DTB &^ 0xFFF
		off := int64(-1)
		for _, r := range f.PhysicalRanges() {
			if pml4/PageSize >= r.PFN && pml4/PageSize < r.PFN+r.Pages {
				off = r.Offset + int64(pml4-r.PFN*PageSize)
			}
		}
		for i := int64(0); i < 512; i++ {
			patch64(im, off+8*i, pml4|0x63)
		}
		f = openImage(t, im)
		if _, err := f.Modules(); err == nil {
			t.Error("module list read through looping page tables")
		}
	})
	t.Run("32-bit ARM memory dump", func(t *testing.T) {
		im, _ := build(t, kdumptest.Spec{Arch: kdumptest.X86, Kind: kdumptest.Full})
		patch32(im, 0x20, 0x1C4)
		f := openImage(t, im)
		if len(f.Problems()) != 1 || !errors.Is(f.Problems()[0], ErrUnsupported) {
			t.Errorf("problems %v", f.Problems())
		}
		if _, err := f.Modules(); !errors.Is(err, ErrUnsupported) {
			t.Errorf("Modules: %v", err)
		}
	})
	t.Run("triage huge driver count", func(t *testing.T) {
		im, facts := build(t, kdumptest.Spec{Kind: kdumptest.Triage})
		patch32(im, facts.TriageOffset+0x34, 0xFFFFFFFF)
		f := openImage(t, im)
		if len(f.Problems()) == 0 {
			t.Error("no problem reported")
		}
		if mods, _ := f.Modules(); len(mods) != 0 {
			t.Errorf("modules %d", len(mods))
		}
	})
}

// checkCommon2 checks modules and the current thread only.
func checkCommon2(t *testing.T, f *File, facts *kdumptest.Facts) {
	t.Helper()
	mods, err := f.Modules()
	if err != nil || len(mods) != len(facts.Modules) {
		t.Errorf("modules %d, %v", len(mods), err)
	}
	if th, _, err := f.CurrentThread(); err != nil || th != facts.Thread {
		t.Errorf("thread %#x %v", th, err)
	}
}

// TestSynthetic16GiBFiles opens sparse 16 GiB dumps from disk with Open.
func TestSynthetic16GiBFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("writes sparse 16 GiB files")
	}
	for _, k := range []kdumptest.Kind{kdumptest.Full, kdumptest.BitmapFull, kdumptest.BitmapKernel, kdumptest.RDMPComplete} {
		t.Run(k.String(), func(t *testing.T) {
			im, facts := build(t, kdumptest.Spec{Kind: k, MemoryBytes: 16 << 30, Processors: 16, CrashCPU: 11})
			path, err := im.WriteTemp(t.TempDir(), "big-*.dmp")
			if err != nil {
				t.Fatal(err)
			}
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			checkCommon(t, f, facts)
			checkPaging(t, f, facts)
			checkRanges(t, f, facts)
			if f.Size() != facts.FileSize {
				t.Errorf("size %d, want %d", f.Size(), facts.FileSize)
			}
		})
	}
}

// TestSyntheticConcurrent reads one dump from several goroutines (run
// with -race).
func TestSyntheticConcurrent(t *testing.T) {
	for _, k := range []kdumptest.Kind{kdumptest.Triage, kdumptest.BitmapKernel} {
		im, facts := build(t, kdumptest.Spec{Kind: k})
		f := openImage(t, im)
		done := make(chan error, 8)
		for g := range 8 {
			go func() {
				var err error
				for i := range 20 {
					switch (g + i) % 4 {
					case 0:
						var mods []Module
						if mods, err = f.Modules(); err == nil && len(mods) != len(facts.Modules) {
							err = fmt.Errorf("%d modules", len(mods))
						}
					case 1:
						_, _, err = f.CurrentThread()
					case 2:
						b := make([]byte, len(facts.Stack))
						if _, err = f.Memory().ReadVirtual(b, facts.StackStart); err == nil && !bytes.Equal(b, facts.Stack) {
							err = errors.New("stack differs")
						}
					case 3:
						_, err = f.KDBG()
					}
					if err != nil {
						break
					}
				}
				done <- err
			}()
		}
		for range 8 {
			if err := <-done; err != nil {
				t.Errorf("%v: %v", k, err)
			}
		}
	}
}

func manyUnloaded(n int, base uint64) []kdumptest.Unloaded {
	var out []kdumptest.Unloaded
	for i := range n {
		start := base + uint64(i)*0x100000
		out = append(out, kdumptest.Unloaded{Name: fmt.Sprintf("drv%02d.sys", i), Start: start, End: start + 0x8000 + uint64(i)*0x1000})
	}
	return out
}

// TestPagedReadDoesNotWrap: a read that runs past the top of the address
// space stops there instead of going on at address 0.
func TestPagedReadDoesNotWrap(t *testing.T) {
	im, facts := build(t, kdumptest.Spec{Kind: kdumptest.Full})
	f := openImage(t, im)
	// Point every PML4 entry back at the PML4: every canonical address
	// then translates (to the PML4 page itself).
	pml4 := facts.DTB &^ 0xFFF
	off := int64(-1)
	for _, r := range f.PhysicalRanges() {
		if pml4/PageSize >= r.PFN && pml4/PageSize < r.PFN+r.Pages {
			off = r.Offset + int64(pml4-r.PFN*PageSize)
		}
	}
	for i := int64(0); i < 512; i++ {
		patch64(im, off+8*i, pml4|0x63)
	}
	f = openImage(t, im)
	var b [16]byte
	n, err := f.Memory().ReadVirtual(b[:], ^uint64(0)-7)
	var pf *PageFaultError
	if n != 8 || !IsNotPresent(err) || !errors.As(err, &pf) || pf.VA != 0 {
		t.Errorf("read across the top: n=%d %v", n, err)
	}
}
