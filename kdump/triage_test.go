package kdump

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/kdtriage/kdtriage/kdump/kdumptest"
)

// TestTriageArches reads synthetic triage dumps of every architecture and
// width (TRIAGE_DUMP64 and TRIAGE_DUMP32, 0x90- and 0x4C-byte driver
// entries, 16- and 12-byte data blocks, both unloaded-driver layouts)
// through every reader.
func TestTriageArches(t *testing.T) {
	type variant struct {
		name string
		spec func(a kdumptest.Arch) kdumptest.Spec
	}
	variants := []variant{
		{"default", func(a kdumptest.Arch) kdumptest.Spec { return kdumptest.Spec{Arch: a, Kind: kdumptest.Triage} }},
		{"one CPU", func(a kdumptest.Arch) kdumptest.Spec {
			return kdumptest.Spec{Arch: a, Kind: kdumptest.Triage, Processors: 1}
		}},
		{"8 CPUs, crash on 5", func(a kdumptest.Arch) kdumptest.Spec {
			return kdumptest.Spec{Arch: a, Kind: kdumptest.Triage, Processors: 8, CrashCPU: 5}
		}},
		{"inline PRCB context", func(a kdumptest.Arch) kdumptest.Spec {
			return kdumptest.Spec{Arch: a, Kind: kdumptest.Triage, InlinePrcbContext: true}
		}},
		{"explorer.exe, no unloaded drivers", func(a kdumptest.Arch) kdumptest.Spec {
			return kdumptest.Spec{Arch: a, Kind: kdumptest.Triage, ProcessName: "explorer.exe", Unloaded: []kdumptest.Unloaded{}}
		}},
		{"long unloaded names", func(a kdumptest.Arch) kdumptest.Spec {
			base := uint64(0xfffff80490000000)
			if !a.Is64() {
				base = 0x9a000000
			}
			return kdumptest.Spec{Arch: a, Kind: kdumptest.Triage, Unloaded: []kdumptest.Unloaded{
				{Name: "averyveryverylongname.sys", Start: base, End: base + 0x5000},
				{Name: "x.sys", Start: base + 0x10000, End: base + 0x11000},
			}}
		}},
		{"DumpBlob", func(a kdumptest.Arch) kdumptest.Spec {
			return kdumptest.Spec{Arch: a, Kind: kdumptest.Triage, DumpBlob: true}
		}},
		{"Win7", func(a kdumptest.Arch) kdumptest.Spec {
			return kdumptest.Spec{Arch: a, Kind: kdumptest.Triage, Build: 7601}
		}},
	}
	arches := []kdumptest.Arch{kdumptest.X86, kdumptest.X86PAE, kdumptest.ARM, kdumptest.ARM64, kdumptest.AMD64}
	for _, a := range arches {
		for _, v := range variants {
			t.Run(a.String()+"/"+v.name, func(t *testing.T) {
				spec := v.spec(a)
				im, facts := build(t, spec)
				f := openImage(t, im)
				checkCommon(t, f, facts)
				checkTriageHeader(t, f, facts, spec)
				checkTriageMemory(t, f, facts, im)

				pc, err := f.ProcessorContext()
				if err != nil {
					t.Fatalf("ProcessorContext: %v", err)
				}
				if pc.IP() != facts.IP || pc.SP() != facts.SP || pc.Machine != f.Machine() {
					t.Errorf("ProcessorContext ip %#x sp %#x %v, want %#x %#x", pc.IP(), pc.SP(), pc.Machine, facts.IP, facts.SP)
				}
				want := spec.ProcessName
				if want == "" {
					want = "System"
				}
				if name, err := f.ProcessName(); err != nil || name != want {
					t.Errorf("ProcessName %q, %v; want %q", name, err, want)
				}
				if cpu, err := f.CrashingProcessor(); cpu != facts.CrashCPU || err != nil {
					t.Errorf("CrashingProcessor %d, %v; want %d", cpu, err, facts.CrashCPU)
				}
			})
		}
	}
}

// checkTriageHeader compares the TRIAGE_DUMP header with what the builder
// wrote (dump-formats §3.2).
func checkTriageHeader(t *testing.T, f *File, facts *kdumptest.Facts, spec kdumptest.Spec) {
	t.Helper()
	th := f.Triage()
	if th == nil {
		t.Fatal("no triage header")
	}
	ctxOff, excOff := uint32(0x348), uint32(0xF00)
	if !spec.Arch.Is64() {
		ctxOff, excOff = 0x320, 0x7D0
	}
	got := fmt.Sprintf("valid=%v ctx=%#x exc=%#x top=%#x stack=%#x drivers=%d page=%#x/%#x kdbg=%#x opts=%#x",
		th.ValidOffset == th.SizeOfDump-4, th.ContextOffset, th.ExceptionOffset, th.TopOfStack, th.SizeOfCallStack,
		th.DriverCount, th.DataPageAddress, th.DataPageSize, th.DebuggerDataSize, th.TriageOptions)
	want := fmt.Sprintf("valid=true ctx=%#x exc=%#x top=%#x stack=%#x drivers=%d page=%#x/0x1000 kdbg=0x380 opts=0xffffffff",
		ctxOff, excOff, facts.TopOfStack, facts.StackBase-facts.TopOfStack, len(facts.Modules), facts.KernBase)
	if got != want {
		t.Errorf("triage header\n got %s\nwant %s", got, want)
	}
	if spec.DumpBlob {
		if int64(th.SizeOfDump) >= facts.FileSize {
			t.Errorf("SizeOfDump %#x covers the DumpBlob (file %#x)", th.SizeOfDump, facts.FileSize)
		}
	} else if int64(th.SizeOfDump) != facts.FileSize {
		t.Errorf("SizeOfDump %#x, file %#x", th.SizeOfDump, facts.FileSize)
	}
	if th.DriverListOffset == 0 || th.StringPoolOffset <= th.DriverListOffset || th.DataBlocksCount == 0 || th.UnloadedDriversOffset == 0 {
		t.Errorf("triage header %+v", th)
	}
}

// checkTriageMemory reads the ranges a triage dump maps (dump-formats §3.6):
// every data block at its address, the KiProcessorBlock array, the KDBG
// copy, the PRCB, thread and process copies, and the data page.
func checkTriageMemory(t *testing.T, f *File, facts *kdumptest.Facts, im *kdumptest.Image) {
	t.Helper()
	mem := f.Memory()
	blocks := f.DataBlocks()
	if len(blocks) != int(f.Triage().DataBlocksCount) {
		t.Errorf("%d data blocks, header says %d", len(blocks), f.Triage().DataBlocksCount)
	}
	for i, d := range blocks {
		want := make([]byte, d.Size)
		if _, err := im.ReadAt(want, int64(d.Offset)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, d.Size)
		if n, err := mem.ReadVirtual(got, d.Address); err != nil || n != len(got) {
			t.Errorf("data block %d at %#x: n=%d %v", i, d.Address, n, err)
			continue
		}
		// Earlier sources win overlaps (§3.6), but the builder's sources
		// agree byte for byte.
		if !bytes.Equal(got, want) {
			t.Errorf("data block %d at %#x: bytes differ", i, d.Address)
		}
	}
	ptr := f.Machine().PointerSize()
	for i, want := range facts.PRCBs {
		got, err := ReadPointer(mem, facts.KiProcessorBlock+uint64(i*ptr), ptr)
		if err != nil || got != want {
			t.Errorf("KiProcessorBlock[%d] = %#x, %v; want %#x", i, got, err, want)
		}
	}
	var tag [4]byte
	if _, err := mem.ReadVirtual(tag[:], facts.KDBG+0x10); err != nil || string(tag[:]) != "KDBG" {
		t.Errorf("KDBG copy: %q %v", tag, err)
	}
	// The KDBG pointers (sign-extended in 32-bit blocks) read as they are.
	k, err := f.KDBG()
	if err != nil {
		t.Fatal(err)
	}
	lab := make([]byte, 8)
	if _, err := mem.ReadVirtual(lab, k.NtBuildLab); err != nil || !bytes.HasPrefix(lab, fmt.Appendf(nil, "%d.", facts.Build)) {
		t.Errorf("NtBuildLab at %#x: %q %v", k.NtBuildLab, lab, err)
	}
	if p, err := ReadPointer(mem, k.KiProcessorBlock, ptr); err != nil || p != facts.PRCBs[0] {
		t.Errorf("KiProcessorBlock at %#x: %#x %v", k.KiProcessorBlock, p, err)
	}
	if k.KernBase != facts.KernBase || k.PsLoadedModuleList != facts.PsLoadedModuleList || k.MmPfnDatabase != facts.PfnDataBase {
		t.Errorf("KDBG KernBase %#x PsLoadedModuleList %#x, want %#x %#x", k.KernBase, k.PsLoadedModuleList, facts.KernBase, facts.PsLoadedModuleList)
	}
	// KPRCB.CurrentThread is at +4 (x86, ARM) or +8 (x64, ARM64).
	th, err := ReadPointer(mem, facts.PRCBs[facts.CrashCPU]+uint64(ptr), ptr)
	if err != nil || th != facts.Thread {
		t.Errorf("PRCB CurrentThread = %#x, %v; want %#x", th, err, facts.Thread)
	}
	for _, va := range []uint64{facts.Thread, facts.Process, facts.KernBase + PageSize - 8} {
		if _, err := ReadU32(mem, va); err != nil {
			t.Errorf("read at %#x: %v", va, err)
		}
	}
	if _, err := ReadU32(mem, facts.KernBase+PageSize); !IsNotPresent(err) {
		t.Errorf("read past the data page: %v", err)
	}
	if _, err := ReadU32(mem, facts.TopOfStack-4); !IsNotPresent(err) {
		t.Errorf("read below TopOfStack: %v", err)
	}
}

// dumpString builds a DUMP_STRING with the given Length field.
func dumpString(length uint32, text string, tail ...byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, length)
	for _, c := range utf16.Encode([]rune(text)) {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return append(b, tail...)
}

func TestReadDumpString(t *testing.T) {
	const path = `\SystemRoot\system32\ntoskrnl.exe`
	zeros := make([]byte, 200)
	tests := []struct {
		name    string
		data    []byte
		want    string
		wantErr error // nil: no error
	}{
		{"characters", dumpString(33, path, 0, 0, 0, 0), path, nil},
		{"characters, no NUL at the end of the file", dumpString(33, path), path, nil},
		{"bytes, then zeros", dumpString(66, path, zeros...), path, nil},
		{"bytes, then the next string", append(dumpString(66, path, 0, 0, 0, 0, 0, 0), dumpString(12, `\hal.dll`, zeros...)...), path, nil},
		{"bytes, at the end of the file", dumpString(66, path, 0, 0), path, nil},
		{"empty", dumpString(0, "", 0, 0), "", nil},
		{"cut by the end of the file", dumpString(40, path), path, io.ErrUnexpectedEOF},
		{"length over the limit", dumpString(0x8001, "x"), "", nil},
		{"no length", []byte{1, 0}, "", io.ErrUnexpectedEOF},
		{"non-BMP text", dumpString(3, "\U0001F600x", 0, 0), "\U0001F600x", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readDumpString(bytes.NewReader(tc.data), int64(len(tc.data)), 0)
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			var fe *FormatError
			switch {
			case tc.name == "length over the limit":
				if !errors.As(err, &fe) || fe.Offset != 0 {
					t.Errorf("error %v, want a *FormatError at 0", err)
				}
			case tc.wantErr == nil && err != nil:
				t.Errorf("error %v", err)
			case tc.wantErr != nil && (!errors.Is(err, tc.wantErr) || !errors.As(err, &fe)):
				t.Errorf("error %v, want a *FormatError wrapping %v", err, tc.wantErr)
			}
		})
	}
}

// TestTriageDriverNames: names shared by several entries are read once,
// and the text kept for names is bounded whatever the file says.
func TestTriageDriverNames(t *testing.T) {
	t.Run("byte-count lengths", func(t *testing.T) {
		for _, a := range []kdumptest.Arch{kdumptest.AMD64, kdumptest.X86} {
			im, facts := build(t, kdumptest.Spec{Arch: a, Kind: kdumptest.Triage})
			f := openImage(t, im)
			// Rewrite every Length as a byte count, as some writers do.
			for _, i := range []int{0, 1, 2, 3, 4, 5} {
				stride := int64(0x90)
				if !a.Is64() {
					stride = 0x4C
				}
				var b [4]byte
				im.ReadAt(b[:], int64(f.Triage().DriverListOffset)+int64(i)*stride)
				at := int64(binary.LittleEndian.Uint32(b[:]))
				im.ReadAt(b[:], at)
				patch32(im, at, 2*binary.LittleEndian.Uint32(b[:]))
			}
			f = openImage(t, im)
			checkCommon(t, f, facts)
		}
	})
	t.Run("long distinct names", func(t *testing.T) {
		var mods []kdumptest.Module
		for i := range 40 {
			mods = append(mods, kdumptest.Module{Path: fmt.Sprintf(`\%02d`, i) + strings.Repeat("x", 0x7FF0) + ".sys",
				Base: 0xfffff80400000000 + uint64(i)<<24, Size: 0x1000, TimeDateStamp: uint32(i)})
		}
		im, _ := build(t, kdumptest.Spec{Kind: kdumptest.Triage, Modules: mods})
		f := openImage(t, im)
		got, _ := f.Modules()
		if len(got) != len(mods) {
			t.Fatalf("%d modules, want %d", len(got), len(mods))
		}
		total, named := 0, 0
		for i, m := range got {
			total += len(m.Path)
			if m.Path != "" {
				named++
				if m.Path != mods[i].Path {
					t.Errorf("module %d path differs", i)
				}
			}
			if m.TimeDateStamp != uint32(i) {
				t.Errorf("module %d timestamp %d", i, m.TimeDateStamp)
			}
		}
		if total > maxNameChars+maxDumpString || named == len(mods) || named < maxNameChars/0x8000 {
			t.Errorf("%d names read, %d characters", named, total)
		}
		var fe *FormatError
		if p := f.Problems(); len(p) != 1 || !errors.As(p[0], &fe) || !strings.Contains(p[0].Error(), "driver name") {
			t.Errorf("problems %v", p)
		}
	})
	t.Run("one name for every entry", func(t *testing.T) {
		im, facts := build(t, kdumptest.Spec{Kind: kdumptest.Triage})
		f := openImage(t, im)
		var b [4]byte
		im.ReadAt(b[:], int64(f.Triage().DriverListOffset))
		for i := range len(facts.Modules) {
			im.WriteAt(b[:], int64(f.Triage().DriverListOffset)+int64(i)*0x90)
		}
		f = openImage(t, im)
		mods, _ := f.Modules()
		for i, m := range mods {
			if m.Path != facts.Modules[0].Path || m.Base != facts.Modules[i].Base {
				t.Errorf("module %d: %+v", i, m)
			}
		}
	})
}

// TestPaeEnabled: PAE is found from the header byte, or, when the writer
// left it at the PAGE fill, from the KDBG block or the page tables.
func TestPaeEnabled(t *testing.T) {
	tests := []struct {
		spec kdumptest.Spec
		want bool
	}{
		{kdumptest.Spec{Arch: kdumptest.X86PAE, Kind: kdumptest.Triage}, true},
		{kdumptest.Spec{Arch: kdumptest.X86PAE, Kind: kdumptest.Triage, PAEUnset: true}, true},
		{kdumptest.Spec{Arch: kdumptest.X86, Kind: kdumptest.Triage}, false},
		{kdumptest.Spec{Arch: kdumptest.X86, Kind: kdumptest.Triage, PAEUnset: true}, false},
		{kdumptest.Spec{Arch: kdumptest.X86PAE, Kind: kdumptest.BitmapKernel, PAEUnset: true}, true},
		{kdumptest.Spec{Arch: kdumptest.X86, Kind: kdumptest.Full, PAEUnset: true}, false},
		{kdumptest.Spec{Arch: kdumptest.ARM, Kind: kdumptest.Triage}, false},
		{kdumptest.Spec{Arch: kdumptest.AMD64, Kind: kdumptest.Triage}, false},
	}
	for _, tc := range tests {
		name := fmt.Sprintf("%v/%v/unset=%v", tc.spec.Arch, tc.spec.Kind, tc.spec.PAEUnset)
		t.Run(name, func(t *testing.T) {
			im, _ := build(t, tc.spec)
			f := openImage(t, im)
			if got := f.PaeEnabled(); got != tc.want {
				t.Errorf("PaeEnabled() = %v, want %v (header byte %v)", got, tc.want, f.Header().PaeEnabled)
			}
		})
	}
}

// TestTriagePartial: damage to one part of a triage dump leaves the rest
// readable and is reported once, as a one-line *FormatError with the file
// offset, through Problems.
func TestTriagePartial(t *testing.T) {
	type patchFn func(im *kdumptest.Image, th *TriageHeader, base int64)
	tests := []struct {
		name  string
		arch  kdumptest.Arch
		patch patchFn
		want  string // in the problem's text
		check func(t *testing.T, f *File)
	}{
		{"no SizePrcb", kdumptest.AMD64, func(im *kdumptest.Image, th *TriageHeader, base int64) {
			patch32(im, int64(th.DebuggerDataOffset)+0x2B0, 0)
		}, "gives no SizePrcb", func(t *testing.T, f *File) {
			if _, _, err := f.CurrentThread(); !IsNotPresent(err) {
				t.Errorf("CurrentThread: %v", err)
			}
		}},
		{"SizePrcb past the end", kdumptest.X86, func(im *kdumptest.Image, th *TriageHeader, base int64) {
			im.WriteAt([]byte{0xFF, 0xFF}, int64(th.DebuggerDataOffset)+0x2B0)
			patch32(im, base+0x1C, uint32(im.Size()-0x100))
		}, "extend past the end", nil},
		{"driver count too large", kdumptest.X86, func(im *kdumptest.Image, th *TriageHeader, base int64) {
			patch32(im, base+0x34, maxDrivers+1)
		}, "triage header: DriverCount 16385 exceeds the limit of 16384 at offset 0x1034", func(t *testing.T, f *File) {
			if mods, err := f.Modules(); len(mods) != 0 || err != nil {
				t.Errorf("Modules: %d %v", len(mods), err)
			}
		}},
		{"driver list past the end", kdumptest.ARM64, func(im *kdumptest.Image, th *TriageHeader, base int64) {
			patch32(im, base+0x30, uint32(im.Size()-0x10))
		}, "6 entries of 0x90 bytes extend past the end of the", nil},
		{"driver name past the end", kdumptest.ARM, func(im *kdumptest.Image, th *TriageHeader, base int64) {
			patch32(im, int64(th.DriverListOffset)+0x4C, uint32(im.Size()-2))
		}, "driver name", func(t *testing.T, f *File) {
			mods, _ := f.Modules()
			if len(mods) != 6 || mods[1].Path != "" || mods[2].Name != "kd.dll" {
				t.Errorf("modules %+v", mods)
			}
		}},
		{"unloaded count too large", kdumptest.X86PAE, func(im *kdumptest.Image, th *TriageHeader, base int64) {
			patch32(im, int64(th.UnloadedDriversOffset), 1<<20)
		}, "exceeds the limit", nil},
		{"data block past the end", kdumptest.X86, func(im *kdumptest.Image, th *TriageHeader, base int64) {
			patch32(im, int64(th.DataBlocksOffset)+12+4, uint32(im.Size()))
		}, "block 1", func(t *testing.T, f *File) {
			if len(f.DataBlocks()) != int(f.Triage().DataBlocksCount)-1 {
				t.Errorf("%d data blocks kept", len(f.DataBlocks()))
			}
		}},
		{"data blocks too many", kdumptest.AMD64, func(im *kdumptest.Image, th *TriageHeader, base int64) {
			patch32(im, base+0x7C, maxDataBlocks+1)
		}, "DataBlocksCount 1048577 exceeds the limit", nil},
		{"data blocks too many, x86", kdumptest.X86, func(im *kdumptest.Image, th *TriageHeader, base int64) {
			patch32(im, base+0x64, 0xFFFFFFFF)
		}, "DataBlocksCount 4294967295 exceeds the limit of 1048576 at offset 0x1064", nil},
		{"debugger data past the end", kdumptest.ARM64, func(im *kdumptest.Image, th *TriageHeader, base int64) {
			patch32(im, base+0x70, uint32(im.Size()-0x10))
		}, "debugger data", func(t *testing.T, f *File) {
			if _, err := f.KDBG(); !IsNotPresent(err) {
				t.Errorf("KDBG: %v", err)
			}
			if _, err := f.ProcessorContext(); err == nil {
				t.Error("ProcessorContext without KDBG")
			}
			if c, err := f.Context(); err != nil || c == nil {
				t.Errorf("Context: %v", err)
			}
		}},
		{"debugger data encoded", kdumptest.X86, func(im *kdumptest.Image, th *TriageHeader, base int64) {
			patch32(im, int64(th.DebuggerDataOffset)+0x10, 0x12345678)
		}, "owner tag 0x12345678", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			im, facts := build(t, kdumptest.Spec{Arch: tc.arch, Kind: kdumptest.Triage})
			th := *openImage(t, im).Triage()
			tc.patch(im, &th, facts.TriageOffset)
			f := openImage(t, im)
			p := f.Problems()
			if len(p) != 1 {
				t.Fatalf("problems %v, want one", p)
			}
			var fe *FormatError
			msg := p[0].Error()
			if !errors.As(p[0], &fe) || fe.Offset < 0 || !strings.Contains(msg, " at offset 0x") || strings.Contains(msg, "\n") || !strings.Contains(msg, tc.want) {
				t.Errorf("problem %q: want a one-line *FormatError with an offset, saying %q", msg, tc.want)
			}
			t.Log(msg)
			if c, err := f.Context(); err != nil || c.IP() != facts.IP {
				t.Errorf("Context: %v", err)
			}
			if tc.check != nil {
				tc.check(t, f)
			}
		})
	}
}

// The slices File returns are the caller's: changing them does not change
// what the next call returns.
func TestTriageSlicesAreCopies(t *testing.T) {
	im, facts := build(t, kdumptest.Spec{Kind: kdumptest.Triage})
	f := openImage(t, im)
	mods, _ := f.Modules()
	mods[0].Name = "changed"
	un, _ := f.UnloadedModules()
	un[0].Name = "changed"
	blocks := f.DataBlocks()
	blocks[0].Address = 1
	mods, _ = f.Modules()
	un, _ = f.UnloadedModules()
	if mods[0].Name != facts.Modules[0].Name || un[0].Name != facts.Unloaded[0].Name || f.DataBlocks()[0].Address == 1 {
		t.Errorf("a caller's change showed through: %q %q %#x", mods[0].Name, un[0].Name, f.DataBlocks()[0].Address)
	}
}

// TestTriageCrashingProcessor: the crashing CPU comes from the PRCB copy's
// slot in KiProcessorBlock, else from KPRCB.Number.
func TestTriageCrashingProcessor(t *testing.T) {
	tests := []struct {
		name             string
		arch             kdumptest.Arch
		noArray, noIndex bool
	}{
		{"x64 both", kdumptest.AMD64, false, false},
		{"x64 KPRCB.Number only", kdumptest.AMD64, true, false},
		{"x86 KPRCB.Number only", kdumptest.X86, true, false},
		{"arm KiProcessorBlock only", kdumptest.ARM, false, true},
		{"arm64 neither", kdumptest.ARM64, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			im, facts := build(t, kdumptest.Spec{Arch: tc.arch, Kind: kdumptest.Triage, Processors: 6, CrashCPU: 4})
			kd := int64(openImage(t, im).Triage().DebuggerDataOffset)
			if tc.noArray {
				patch64(im, kd+0x218, 0x1000) // KiProcessorBlock: nowhere
			}
			if tc.noIndex {
				im.WriteAt([]byte{0, 0}, kd+0x2BE) // OffsetPrcbNumber
			}
			f := openImage(t, im)
			cpu, err := f.CrashingProcessor()
			if tc.noArray && tc.noIndex {
				var fe *FormatError
				if !IsNotPresent(err) || !errors.As(err, &fe) {
					t.Errorf("CrashingProcessor %d, %v; want a not-present error", cpu, err)
				}
				return
			}
			if err != nil || cpu != facts.CrashCPU {
				t.Errorf("CrashingProcessor %d, %v; want %d", cpu, err, facts.CrashCPU)
			}
		})
	}
}
