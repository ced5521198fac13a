package kdump

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf16"

	"github.com/kdtriage/kdtriage/kdump/kdumptest"
)

// fuzzSeeds returns small synthetic dumps of every arch and layout.
func fuzzSeeds(tb testing.TB) [][]byte {
	var out [][]byte
	add := func(s kdumptest.Spec) {
		im, _, err := kdumptest.Build(s)
		if err != nil {
			tb.Fatal(err)
		}
		b, err := im.Bytes()
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	for _, a := range []kdumptest.Arch{kdumptest.AMD64, kdumptest.ARM64, kdumptest.X86PAE, kdumptest.X86, kdumptest.ARM} {
		add(kdumptest.Spec{Arch: a, Kind: kdumptest.Triage, Processors: 2})
	}
	for _, a := range memoryArches {
		add(kdumptest.Spec{Arch: a, Kind: kdumptest.BitmapKernel, Processors: 2})
		add(kdumptest.Spec{Arch: a, Kind: kdumptest.RDMPKernel, Processors: 2})
	}
	return out
}

// corpusSeeds reads a few real dumps and every malformed file from the
// shared corpus, when it is present.
func corpusSeeds() [][]byte {
	dir := os.Getenv("KDTRIAGE_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "corpus")
	}
	var out [][]byte
	for _, name := range []string{"kernel/win10-triage_x64.dmp", "kernel/win10-arm64_mem.dmp", "kernel/win81-111217-27671-01.dmp"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
			out = append(out, b)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "malformed"))
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join(dir, "malformed", e.Name())); err == nil {
			out = append(out, b)
		}
	}
	return out
}

// exercise calls every reader of an opened dump. It must not panic; errors
// must be typed.
func exercise(t *testing.T, f *File) {
	typed := func(what string, err error) {
		if err == nil {
			return
		}
		var fe *FormatError
		var me *MemoryError
		var pf *PageFaultError
		if !errors.As(err, &fe) && !errors.As(err, &me) && !errors.As(err, &pf) && !errors.Is(err, ErrNotPresent) && !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: untyped error %v", what, err)
		}
	}
	mem := f.Memory()
	mods, err := f.Modules()
	typed("Modules", err)
	if len(mods) > maxModules+maxDrivers {
		t.Errorf("%d modules", len(mods))
	}
	_, err = f.UnloadedModules()
	typed("UnloadedModules", err)
	c, err := f.Context()
	typed("Context", err)
	var buf [256]byte
	if c != nil {
		_, err = mem.ReadVirtual(buf[:], c.SP())
		typed("stack read", err)
		_, err = mem.ReadVirtual(buf[:], c.IP()-8)
		typed("code read", err)
	}
	k, err := f.KDBG()
	typed("KDBG", err)
	if k != nil {
		_, err = mem.ReadVirtual(buf[:], k.KiProcessorBlock)
		typed("KiProcessorBlock read", err)
	}
	_, _, err = f.CurrentThread()
	typed("CurrentThread", err)
	_, err = f.ProcessName()
	typed("ProcessName", err)
	_, err = f.CrashingProcessor()
	typed("CrashingProcessor", err)
	_, err = f.ProcessorContext()
	typed("ProcessorContext", err)
	if r, ok := mem.(Ranger); ok {
		for _, rg := range r.Ranges()[:min(len(r.Ranges()), 4)] {
			_, err = mem.ReadVirtual(buf[:], rg.End-8)
			typed("range end read", err)
		}
	}
	for _, m := range mods[:min(len(mods), 4)] {
		_, err = mem.ReadVirtual(buf[:], m.Base)
		typed("module read", err)
	}
	_, err = mem.ReadVirtual(buf[:], ^uint64(0)-16) // wraps around
	typed("wrap read", err)
	if f.Physical() != nil {
		if _, err := f.Translate(f.Header().KdDebuggerDataBlock); err != nil {
			typed("Translate", err)
		}
		for _, r := range f.PhysicalRanges()[:min(len(f.PhysicalRanges()), 4)] {
			_, err = f.Physical().ReadPhysical(buf[:], r.PFN*PageSize+PageSize-100)
			typed("ReadPhysical", err)
		}
		_, err = f.Physical().ReadPhysical(buf[:], ^uint64(0)-16)
		typed("ReadPhysical wrap", err)
	}
}

func FuzzNewFile(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b)
	}
	for _, b := range corpusSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		df, err := NewFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("NewFile: untyped error %v", err)
			}
			return
		}
		exercise(t, df)
	})
}

func FuzzParseKDBG(f *testing.F) {
	im, facts, err := kdumptest.Build(kdumptest.Spec{Kind: kdumptest.Triage})
	if err != nil {
		f.Fatal(err)
	}
	df, err := NewFile(im, im.Size())
	if err != nil {
		f.Fatal(err)
	}
	b := make([]byte, 0x380)
	if _, err := df.Memory().ReadVirtual(b, facts.KDBG); err != nil {
		f.Fatal(err)
	}
	f.Add(b, uint64(0x1234))
	f.Add(b[:0x20], uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, never uint64) {
		if k, err := ParseKDBG(b, 0); err == nil && k == nil {
			t.Fatal("nil KDBG without error")
		}
		c := bytes.Clone(b)
		if DecodeKDBG(c, KDBGKeys{KiWaitNever: never, KiWaitAlways: ^never, KdpDataBlockEncoded: never * 3}) {
			if _, err := ParseKDBG(c, 0); err != nil {
				t.Fatalf("decoded block with the tag does not parse: %v", err)
			}
		}
	})
}

// FuzzPatchedDump patches bytes anywhere in the stored parts of synthetic
// dumps of every layout (headers, page tables, the module list, KDBG,
// PRCBs...) without copying whole files, so each run is cheap.
func FuzzPatchedDump(f *testing.F) {
	var bases []*kdumptest.Image
	for _, a := range memoryArches {
		for _, k := range []kdumptest.Kind{kdumptest.Full, kdumptest.BitmapKernel, kdumptest.RDMPComplete} {
			im, _, err := kdumptest.Build(kdumptest.Spec{Arch: a, Kind: k, Processors: 2})
			if err != nil {
				f.Fatal(err)
			}
			bases = append(bases, im)
		}
	}
	for _, a := range []kdumptest.Arch{kdumptest.AMD64, kdumptest.ARM64, kdumptest.X86, kdumptest.ARM} {
		im, _, err := kdumptest.Build(kdumptest.Spec{Arch: a, Kind: kdumptest.Triage, Processors: 2})
		if err != nil {
			f.Fatal(err)
		}
		bases = append(bases, im)
	}
	for i := range bases {
		f.Add(uint8(i), uint32(0), uint32(0x88), []byte{0xFF, 0xFF})
		f.Add(uint8(i), uint32(3), uint32(0x100), []byte("\x00\x00\x00\x00\x00\x00\x00\x00"))
		f.Add(uint8(i), uint32(7), uint32(0x800), []byte{0x01, 0x10, 0, 0, 0, 0, 0, 0x80})
	}
	f.Fuzz(func(t *testing.T, which uint8, block, at uint32, patch []byte) {
		base := bases[int(which)%len(bases)]
		blocks := base.Blocks()
		im := base.Clone()
		off := blocks[int(block)%len(blocks)] + int64(at%4096)
		im.WriteAt(patch[:min(len(patch), 64)], off)
		if which&0x80 != 0 { // also cut the file
			im.Truncate(off)
		}
		df, err := NewFile(im, im.Size())
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("NewFile: untyped error %v", err)
			}
			return
		}
		exercise(t, df)
	})
}

// FuzzReadDumpString reads a DUMP_STRING from arbitrary bytes: no panic,
// never more text than the Length field allows.
func FuzzReadDumpString(f *testing.F) {
	f.Add(dumpString(33, `\SystemRoot\system32\ntoskrnl.exe`, 0, 0))
	f.Add(dumpString(66, `\SystemRoot\system32\ntoskrnl.exe`, 0, 0, 0, 0))
	f.Add(dumpString(3, "\U0001F600x"))
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := readDumpString(bytes.NewReader(b), int64(len(b)), 0)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("untyped error %v", err)
			}
		}
		if len(b) >= 4 {
			n := int(b[0]) | int(b[1])<<8 | int(b[2])<<16 | int(b[3])<<24
			if units := len(utf16.Encode([]rune(s))); units > n {
				t.Fatalf("%d UTF-16 units from a Length of %d", units, n)
			}
		}
	})
}
