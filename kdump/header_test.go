package kdump

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kdtriage/kdtriage/kdump/kdumptest"
)

// TestHeaderFields checks every header field kdumptest writes, for both
// header widths (dump-formats §1.2, §1.3), and that the fields it leaves
// at the 'PAGE' fill read as unset.
func TestHeaderFields(t *testing.T) {
	tests := []struct {
		arch kdumptest.Arch
		kind kdumptest.Kind
	}{
		{kdumptest.AMD64, kdumptest.Triage},
		{kdumptest.AMD64, kdumptest.Full},
		{kdumptest.ARM64, kdumptest.Triage},
		{kdumptest.ARM64, kdumptest.BitmapKernel},
		{kdumptest.X86, kdumptest.Triage},
		{kdumptest.X86, kdumptest.Full},
		{kdumptest.X86PAE, kdumptest.Triage},
		{kdumptest.X86PAE, kdumptest.Full},
		{kdumptest.ARM, kdumptest.Triage},
	}
	for _, tc := range tests {
		t.Run(tc.arch.String()+"/"+tc.kind.String(), func(t *testing.T) {
			im, facts := build(t, kdumptest.Spec{Arch: tc.arch, Kind: tc.kind, Processors: 3})
			f := openImage(t, im)
			h := f.Header()
			wantFormat, wantSize := FormatKernel64, int64(0x2000)
			if !tc.arch.Is64() {
				wantFormat, wantSize = FormatKernel32, 0x1000
			}
			wantFields := uint32(0)
			if tc.kind == kdumptest.Triage {
				wantFields = 0xEFF
			}
			type field struct {
				name      string
				got, want any
			}
			fields := []field{
				{"Format", h.Format, wantFormat},
				{"Size", h.Size(), wantSize},
				{"Machine", uint16(h.Machine), facts.Machine},
				{"MajorVersion", h.MajorVersion, uint32(0xF)},
				{"MinorVersion", h.MinorVersion, facts.Build},
				{"DirectoryTableBase", h.DirectoryTableBase, facts.DTB},
				{"PfnDataBase", h.PfnDataBase, facts.PfnDataBase},
				{"PsLoadedModuleList", h.PsLoadedModuleList, facts.PsLoadedModuleList},
				{"PsActiveProcessHead", h.PsActiveProcessHead, facts.PsActiveProcessHead},
				{"NumberProcessors", h.NumberProcessors, uint32(3)},
				{"BugCheck", h.BugCheck, BugCheck{Code: facts.BugCheck, Params: facts.Params}},
				{"KdDebuggerDataBlock", h.KdDebuggerDataBlock, facts.KDBG},
				{"VersionUser", h.VersionUser, ""},
				{"PaeEnabled", h.PaeEnabled, tc.arch == kdumptest.X86PAE},
				{"KdSecondaryVersion", h.KdSecondaryVersion, uint8(0)},
				{"Exception.Code", h.Exception.Code, uint32(0x80000003)},
				{"Exception.Address", h.Exception.Address, facts.IP},
				{"DumpType", uint32(h.DumpType), facts.DumpType},
				{"SystemTime", h.SystemTime, time.Date(2021, 1, 7, 21, 0, 0, 0, time.UTC)},
				{"SystemUpTime", h.SystemUpTime, time.Hour},
				{"Comment", h.Comment, ""},
				{"MiniDumpFields", h.MiniDumpFields, wantFields},
				{"SecondaryDataState", fmt.Sprint(h.SecondaryDataState, h.SecondaryDataStateSet), "0 false"},
				{"ProductType", fmt.Sprint(h.ProductType, h.ProductTypeSet), "1 true"},
				{"SuiteMask", fmt.Sprint(h.SuiteMask, h.SuiteMaskSet), "272 true"},
				{"WriterStatus", fmt.Sprint(h.WriterStatus, h.WriterStatusSet), "0 false"},
				{"Attributes", fmt.Sprint(h.Attributes, h.AttributesSet), "0 false"},
				{"BootID", fmt.Sprint(h.BootID, h.BootIDSet), "0 false"},
			}
			if tc.kind == kdumptest.Triage {
				if h.RequiredDumpSpace != uint64(facts.FileSize) {
					t.Errorf("RequiredDumpSpace = %#x, want the file size %#x", h.RequiredDumpSpace, facts.FileSize)
				}
			}
			if tc.kind == kdumptest.Full {
				var runs []MemoryRun
				var pages uint64
				for _, r := range facts.Ranges {
					runs = append(runs, MemoryRun{BasePage: r.PFN, PageCount: r.Pages})
					pages += r.Pages
				}
				fields = append(fields, field{"NumberOfRuns", h.NumberOfRuns, uint32(len(runs))},
					field{"NumberOfPages", h.NumberOfPages, pages},
					field{"Runs", fmt.Sprint(h.Runs[:h.NumberOfRuns]), fmt.Sprint(runs)})
			} else if h.Runs != nil {
				t.Errorf("Runs = %v for a %v dump whose descriptor is the PAGE fill", h.Runs, tc.kind)
			}
			for _, fl := range fields {
				if fmt.Sprint(fl.got) != fmt.Sprint(fl.want) {
					t.Errorf("%s = %v, want %v", fl.name, fl.got, fl.want)
				}
			}
			c, err := f.Context()
			if err != nil || c.IP() != facts.IP || c.SP() != facts.SP {
				t.Errorf("Context: %+v, %v", c, err)
			}
		})
	}
}

// TestHeaderPatched sets or clears single header fields of both widths and
// checks how they read: the 'PAGE' fill means "not set" (dump-formats §0.1).
func TestHeaderPatched(t *testing.T) {
	const fill = 0x45474150
	fill64 := uint64(0x4547415045474150)
	type offs struct{ x64, x86 int64 }
	tests := []struct {
		name  string
		at    offs
		width int // 1, 4 or 8 bytes; 0 writes text
		value uint64
		text  string
		check func(h *Header) string // "" when right
	}{
		{"SystemUpTime fill", offs{0x1030, 0xFB8}, 8, fill64, "", func(h *Header) string {
			return expect(h.SystemUpTime, time.Duration(0))
		}},
		{"SystemUpTime low half set", offs{0x1030, 0xFB8}, 8, 0x45474150_23C34600, "", func(h *Header) string {
			return expect(h.SystemUpTime, time.Duration(0)) // the high half is still the fill
		}},
		{"SystemUpTime huge", offs{0x1030, 0xFB8}, 8, 0x1123456789ABCDEF, "", func(h *Header) string {
			return expect(h.SystemUpTime, time.Duration(0))
		}},
		{"SystemUpTime 10 days", offs{0x1030, 0xFB8}, 8, 10 * 24 * 36_000_000_000, "", func(h *Header) string {
			return expect(h.SystemUpTime, 240*time.Hour)
		}},
		{"SystemTime fill", offs{0xFA8, 0xFC0}, 8, fill64, "", func(h *Header) string {
			return expect(h.SystemTime.IsZero(), true)
		}},
		{"SystemTime before 1970", offs{0xFA8, 0xFC0}, 8, 1, "", func(h *Header) string {
			return expect(h.SystemTime.IsZero(), true)
		}},
		{"RequiredDumpSpace fill", offs{0xFA0, 0xFA0}, 8, fill64, "", func(h *Header) string {
			return expect(h.RequiredDumpSpace, uint64(0))
		}},
		{"MiniDumpFields fill", offs{0x1038, 0xF8C}, 4, fill, "", func(h *Header) string {
			return expect(h.MiniDumpFields, uint32(0))
		}},
		{"ProductType fill", offs{0x1040, 0xF94}, 4, fill, "", func(h *Header) string {
			return expect(fmt.Sprint(h.ProductType, h.ProductTypeSet), "0 false")
		}},
		{"SuiteMask fill", offs{0x1044, 0xF98}, 4, fill, "", func(h *Header) string {
			return expect(fmt.Sprint(h.SuiteMask, h.SuiteMaskSet), "0 false")
		}},
		{"WriterStatus set", offs{0x1048, 0xF9C}, 4, 2, "", func(h *Header) string {
			return expect(fmt.Sprint(h.WriterStatus, h.WriterStatusSet), "2 true")
		}},
		{"SecondaryDataState set", offs{0x103C, 0xF90}, 4, 0, "", func(h *Header) string {
			return expect(fmt.Sprint(h.SecondaryDataState, h.SecondaryDataStateSet), "0 true")
		}},
		{"Attributes set", offs{0x1050, 0x8A0}, 4, AttrKernelGeneratedTriageDump, "", func(h *Header) string {
			return expect(fmt.Sprint(h.Attributes, h.AttributesSet), "8 true")
		}},
		{"BootID set", offs{0x1054, 0x8A4}, 4, 0xD, "", func(h *Header) string {
			return expect(fmt.Sprint(h.BootID, h.BootIDSet), "13 true")
		}},
		{"KdSecondaryVersion fill", offs{0x104C, 0x5C}, 4, fill, "", func(h *Header) string {
			return expect(fmt.Sprint(h.KdSecondaryVersion, h.PaeEnabled), "0 false")
		}},
		{"KdSecondaryVersion 2", offs{0x104D, 0x5D}, 1, 2, "", func(h *Header) string {
			return expect(h.KdSecondaryVersion, uint8(2))
		}},
		{"Comment", offs{0xFB0, 0x820}, 0, 0, "written by a test\x00", func(h *Header) string {
			return expect(h.Comment, "written by a test")
		}},
		{"Comment not text", offs{0xFB0, 0x820}, 0, 0, "\x01\x02\x00", func(h *Header) string {
			return expect(h.Comment, "")
		}},
		{"VersionUser", offs{0x60, 0x3C}, 0, 0, "10.0.19041\x00", func(h *Header) string {
			return expect(h.VersionUser, "10.0.19041")
		}},
		{"Exception parameters", offs{0xF18, 0x7E0}, 4, 2, "", func(h *Header) string {
			return expect(h.Exception.NumParams, uint32(2))
		}},
		{"Exception information past NumberParameters", offs{0xF20 + 8, 0x14 + 0x7D0 + 4}, 4, 0xDEAD, "", func(h *Header) string {
			return expect(h.Exception.Information[1], uint64(0)) // NumberParameters is 0
		}},
	}
	for _, is64 := range []bool{true, false} {
		arch, width := kdumptest.AMD64, "64"
		if !is64 {
			arch, width = kdumptest.X86PAE, "32"
		}
		for _, tc := range tests {
			t.Run(width+"/"+tc.name, func(t *testing.T) {
				im, _ := build(t, kdumptest.Spec{Arch: arch, Kind: kdumptest.Triage})
				at := tc.at.x64
				if !is64 {
					at = tc.at.x86
				}
				switch tc.width {
				case 0:
					im.WriteAt([]byte(tc.text), at)
				case 1:
					im.WriteAt([]byte{byte(tc.value)}, at)
				case 4:
					patch32(im, at, uint32(tc.value))
				case 8:
					patch64(im, at, tc.value)
				}
				f := openImage(t, im)
				if msg := tc.check(f.Header()); msg != "" {
					t.Error(msg)
				}
			})
		}
	}
}

func expect(got, want any) string {
	if got != want {
		return fmt.Sprintf("got %v, want %v", got, want)
	}
	return ""
}

// TestHeaderRejected: header values that make the dump unreadable give a
// one-line *FormatError at the field's offset.
func TestHeaderRejected(t *testing.T) {
	tests := []struct {
		name     string
		arch     kdumptest.Arch
		at       int64
		value    uint32
		wantText string
	}{
		{"x64 machine fill", kdumptest.AMD64, 0x30, 0x45474150, "dump header: MachineImageType is not set (still the PAGE fill): the dump was not completely written at offset 0x30"},
		{"x64 machine high bits", kdumptest.AMD64, 0x30, 0x10008664, "dump header: unknown MachineImageType 0x10008664 at offset 0x30"},
		{"x64 machine x86", kdumptest.AMD64, 0x30, 0x14C, "dump header: machine x86 in a 64-bit (PAGEDU64) header at offset 0x30"},
		{"x86 machine x64", kdumptest.X86, 0x20, 0x8664, "dump header: machine x64 in a 32-bit (PAGEDUMP) header at offset 0x20"},
		{"x86 machine high bits", kdumptest.X86, 0x20, 0x1014C, "dump header: unknown MachineImageType 0x1014c at offset 0x20"},
		{"x64 DumpType fill", kdumptest.AMD64, 0xF98, 0x45474150, "dump header: DumpType is not set (still the PAGE fill): the dump was not completely written at offset 0xf98"},
		{"x86 DumpType 7", kdumptest.X86, 0xF88, 7, "dump header: unknown DumpType 0x7 at offset 0xf88"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			im, _ := build(t, kdumptest.Spec{Arch: tc.arch, Kind: kdumptest.Triage})
			patch32(im, tc.at, tc.value)
			_, err := NewFile(im, im.Size())
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Offset != tc.at {
				t.Fatalf("got %v, want a *FormatError at %#x", err, tc.at)
			}
			if err.Error() != tc.wantText {
				t.Errorf("error text\n got %q\nwant %q", err.Error(), tc.wantText)
			}
		})
	}
}

// TestHeaderOnlyDump: a dump without memory (DumpType 3) still gives its
// header and context; every memory reader says what is missing.
func TestHeaderOnlyDump(t *testing.T) {
	for _, a := range []kdumptest.Arch{kdumptest.AMD64, kdumptest.X86} {
		t.Run(a.String(), func(t *testing.T) {
			im, facts := build(t, kdumptest.Spec{Arch: a, Kind: kdumptest.Full})
			at := int64(0xF98)
			if !a.Is64() {
				at = 0xF88
			}
			patch32(im, at, 3)
			f := openImage(t, im)
			if c, err := f.Context(); err != nil || c.IP() != facts.IP {
				t.Errorf("Context: %v %v", c, err)
			}
			if mods, err := f.Modules(); mods != nil || err != nil {
				t.Errorf("Modules: %v %v", mods, err)
			}
			if _, err := ReadU32(f.Memory(), facts.KernBase); !IsNotPresent(err) {
				t.Errorf("memory read: %v", err)
			}
			checks := map[string]error{}
			_, _, checks["CurrentThread"] = f.CurrentThread()
			_, checks["ProcessName"] = f.ProcessName()
			_, checks["CrashingProcessor"] = f.CrashingProcessor()
			_, checks["KDBG"] = f.KDBG()
			_, checks["ProcessorContext"] = f.ProcessorContext()
			for name, err := range checks {
				var fe *FormatError
				if !IsNotPresent(err) || !errors.As(err, &fe) || !strings.Contains(err.Error(), "header dumps hold no memory") {
					t.Errorf("%s: %v, want a *FormatError saying header dumps hold no memory", name, err)
				}
			}
		})
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		v    fmt.Stringer
		want string
	}{
		{FormatUnknown, "unknown"}, {FormatKernel64, "kernel64"}, {FormatKernel32, "kernel32"}, {FormatMDMP, "mdmp"},
		{FormatUserDump64, "userdump"}, {FormatUserDump32, "userdump"}, {FormatEmpty, "empty"}, {FormatZeroed, "zeroed"},
		{Format(99), "Format(99)"}, {Format(-1), "Format(-1)"},
		{MachineAMD64, "x64"}, {MachineI386, "x86"}, {MachineARM64, "arm64"}, {MachineARMNT, "arm"}, {Machine(0x200), "machine(0x200)"},
		{DumpTypeTriage, "triage"}, {DumpTypeFull, "full"}, {DumpTypeBitmapFull, "bitmap"}, {DumpTypeBitmapKernel, "bitmap-kernel"},
		{DumpTypeCompleteRDMP, "complete-rdmp"}, {DumpType(0x45474150), "DumpType(0x45474150)"},
		{PagingX64, "x64"}, {PagingPAE, "x86-pae"}, {PagingX86, "x86"}, {PagingARM64, "arm64"}, {PagingNone, "none"}, {PagingMode(9), "PagingMode(9)"},
	}
	for _, tc := range tests {
		if got := tc.v.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestParseException(t *testing.T) {
	b := make([]byte, 0x98)
	for i := range b {
		b[i] = "PAGE"[i%4]
	}
	binary.LittleEndian.PutUint32(b[0:], 0xC0000005)
	binary.LittleEndian.PutUint32(b[4:], 1)
	binary.LittleEndian.PutUint64(b[8:], 0)
	binary.LittleEndian.PutUint64(b[0x10:], 0xfffff8048b58334c)
	binary.LittleEndian.PutUint32(b[0x18:], 2)
	binary.LittleEndian.PutUint64(b[0x20:], 1)
	binary.LittleEndian.PutUint64(b[0x28:], 0xffffd000deadbeef)
	e := parseException64(b)
	want := ExceptionRecord{Code: 0xC0000005, Flags: 1, Address: 0xfffff8048b58334c, NumParams: 2, Information: [15]uint64{1, 0xffffd000deadbeef}}
	if e != want {
		t.Errorf("64-bit: %+v\nwant %+v", e, want)
	}
	binary.LittleEndian.PutUint32(b[0x18:], 99) // more than the 15 slots
	if e := parseException64(b); e.Information[14] != 0x4547415045474150 {
		t.Errorf("64-bit, 99 parameters: %+v", e)
	}

	b32 := make([]byte, 0x50)
	for i := range b32 {
		b32[i] = "PAGE"[i%4]
	}
	binary.LittleEndian.PutUint32(b32[0:], 0x80000003)
	binary.LittleEndian.PutUint32(b32[4:], 0)
	binary.LittleEndian.PutUint32(b32[8:], 0)
	binary.LittleEndian.PutUint32(b32[0xC:], 0x82a3f5a8)
	binary.LittleEndian.PutUint32(b32[0x10:], 1)
	binary.LittleEndian.PutUint32(b32[0x14:], 7)
	e = parseException32(b32)
	want = ExceptionRecord{Code: 0x80000003, Address: 0x82a3f5a8, NumParams: 1, Information: [15]uint64{7}}
	if e != want {
		t.Errorf("32-bit: %+v\nwant %+v", e, want)
	}
}
