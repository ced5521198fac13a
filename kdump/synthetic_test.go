package kdump

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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
	for _, a := range []kdumptest.Arch{kdumptest.AMD64, kdumptest.ARM64, kdumptest.X86PAE, kdumptest.ARM} {
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
	if f.PagingMode() != want {
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
	if facts.PrototypeVA != 0 {
		_, err := f.Translate(facts.PrototypeVA)
		var pf *PageFaultError
		if !errors.As(err, &pf) || !IsNotPresent(err) || pf.Level != 1 {
			t.Errorf("prototype PTE: %v", err)
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

var _ = binary.LittleEndian
var _ = io.EOF
