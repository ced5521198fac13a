package kdump

import (
	"encoding/binary"
	"math"
	"time"
)

// Header sizes.
const (
	HeaderSize64 = 0x2000 // DUMP_HEADER64
	HeaderSize32 = 0x1000 // DUMP_HEADER32
)

// pageFill is the DWORD 'PAGE' the kernel fills the header with before it
// sets fields: a field holding it was never set.
const pageFill = 0x45474150

// Unset reports whether a 32-bit header field still holds the 'PAGE' fill.
func Unset(v uint32) bool { return v == pageFill }

// BugCheck is a bug-check code with its four parameters.
type BugCheck struct {
	Code   uint32
	Params [4]uint64
}

// BaseCode returns the code without the 0x10000000 "_M" bit: 0x1000007E is
// 0x7E with the same parameters. Codes that do not have the bit are returned
// unchanged.
func (b BugCheck) BaseCode() uint32 {
	if b.Code&0xF0000000 == 0x10000000 {
		return b.Code &^ 0x10000000
	}
	return b.Code
}

// ExceptionRecord is an EXCEPTION_RECORD (32- or 64-bit, widened).
type ExceptionRecord struct {
	Code      uint32
	Flags     uint32
	Record    uint64 // VA of a chained record
	Address   uint64
	NumParams uint32
	// Information holds the first NumParams parameters; the rest are zero
	// (writers leave them at the 'PAGE' fill).
	Information [15]uint64
}

// MemoryRun is one run of the physical memory descriptor.
type MemoryRun struct {
	BasePage  uint64
	PageCount uint64
}

// Dump file attributes (DUMP_FILE_ATTRIBUTES bits).
const (
	AttrHiberCrash                = 1 << 0
	AttrDumpDevicePowerOff        = 1 << 1
	AttrInsufficientDumpfileSize  = 1 << 2
	AttrKernelGeneratedTriageDump = 1 << 3
	AttrLiveDumpGeneratedDump     = 1 << 4
	AttrDumpIsGeneratedOffline    = 1 << 5
	AttrFilterDumpFile            = 1 << 6
	AttrEarlyBootCrash            = 1 << 7
	AttrEncryptedDumpData         = 1 << 8
	AttrDecryptedDump             = 1 << 9
)

// Header is a kernel dump header (DUMP_HEADER64 or DUMP_HEADER32), with
// 32-bit values widened. Fields a writer left at the 'PAGE' fill are
// reported through the *Set booleans or as zero, as each field documents.
type Header struct {
	Format  Format // FormatKernel64 or FormatKernel32
	Machine Machine

	MajorVersion uint32 // 0xF free build, 0xC checked build
	MinorVersion uint32 // NT build number, e.g. 19041

	DirectoryTableBase  uint64 // kernel page-table root (physical)
	PfnDataBase         uint64 // VA of MmPfnDatabase
	PsLoadedModuleList  uint64 // VA of the module list head
	PsActiveProcessHead uint64 // VA of the process list head
	NumberProcessors    uint32

	BugCheck BugCheck

	VersionUser         string // empty when unset
	KdDebuggerDataBlock uint64 // VA of KDDEBUGGER_DATA64

	// PaeEnabled is the 32-bit header's PaeEnabled byte; false for 64-bit
	// dumps and when the byte is unset. A false value does not prove that
	// PAE was off: see File.PagingMode.
	PaeEnabled bool
	// KdSecondaryVersion is the header's KdSecondaryVersion byte.
	KdSecondaryVersion uint8

	// Physical memory descriptor (only DumpTypeFull uses it). Runs is nil
	// when NumberOfRuns is the 'PAGE' fill; it holds at most the 42
	// (64-bit) or 86 (32-bit) runs that fit the header, whatever
	// NumberOfRuns says.
	NumberOfRuns  uint32
	NumberOfPages uint64
	Runs          []MemoryRun

	// Context is the raw CONTEXT record area of the header (the bytes that
	// ParseContext reads); it is 3000 bytes for 64-bit and 1200 for 32-bit.
	Context []byte
	// Exception is the header's exception record: in a bug check this is
	// the KeBugCheckEx breakpoint, not the fault.
	Exception ExceptionRecord

	DumpType          DumpType
	RequiredDumpSpace uint64        // bytes; 0 when unset
	SystemTime        time.Time     // zero when unset
	SystemUpTime      time.Duration // zero when unset or out of range
	Comment           string        // empty when unset

	// MiniDumpFields is the TRIAGE_DUMP_* bit set of a triage dump; 0 when
	// unset (other dump types leave it at the 'PAGE' fill).
	MiniDumpFields        uint32
	SecondaryDataState    uint32
	SecondaryDataStateSet bool
	ProductType           uint32
	ProductTypeSet        bool
	SuiteMask             uint32
	SuiteMaskSet          bool
	WriterStatus          uint32
	WriterStatusSet       bool
	Attributes            uint32 // DUMP_FILE_ATTRIBUTES; 0 when unset
	AttributesSet         bool
	BootID                uint32
	BootIDSet             bool

	// machineRaw is the whole 32-bit MachineImageType field; Machine keeps
	// only its low 16 bits.
	machineRaw uint32
}

// Size returns the header size: 0x2000 for 64-bit dumps and 0x1000 for 32-bit.
func (h *Header) Size() int64 {
	if h.Format == FormatKernel32 {
		return HeaderSize32
	}
	return HeaderSize64
}

// parseHeader decodes a full header buffer (HeaderSize64 or HeaderSize32
// bytes) of the given format.
func parseHeader(b []byte, format Format) (*Header, error) {
	le := binary.LittleEndian
	h := &Header{Format: format}
	u32 := func(off int) uint32 { return le.Uint32(b[off:]) }
	u64 := func(off int) uint64 { return le.Uint64(b[off:]) }
	set := func(off int) (uint32, bool) {
		v := u32(off)
		if v == pageFill {
			return 0, false
		}
		return v, true
	}
	orZero := func(off int) uint32 { v, _ := set(off); return v }
	h.MajorVersion = u32(0x8)
	h.MinorVersion = u32(0xC)
	if format == FormatKernel64 {
		h.DirectoryTableBase = u64(0x10)
		h.PfnDataBase = u64(0x18)
		h.PsLoadedModuleList = u64(0x20)
		h.PsActiveProcessHead = u64(0x28)
		h.machineRaw = u32(0x30)
		h.Machine = Machine(h.machineRaw)
		h.NumberProcessors = u32(0x34)
		h.BugCheck.Code = u32(0x38)
		for i := range 4 {
			h.BugCheck.Params[i] = u64(0x40 + 8*i)
		}
		h.VersionUser = cString(b[0x60:0x80])
		h.KdDebuggerDataBlock = u64(0x80)
		if runs := u32(0x88); runs != pageFill {
			h.NumberOfRuns = runs
			h.NumberOfPages = u64(0x90)
			n := min(runs, (700-16)/16)
			h.Runs = make([]MemoryRun, n)
			for i := range int(n) {
				h.Runs[i] = MemoryRun{BasePage: u64(0x98 + 16*i), PageCount: u64(0xA0 + 16*i)}
			}
		}
		h.Context = b[0x348 : 0x348+3000]
		h.Exception = parseException64(b[0xF00:0xF98])
		h.DumpType = DumpType(u32(0xF98))
		h.RequiredDumpSpace = unset64(u64(0xFA0))
		h.SystemTime = fileTime(u64(0xFA8))
		h.Comment = cString(b[0xFB0:0x1030])
		h.SystemUpTime = upTime(u64(0x1030))
		h.MiniDumpFields = orZero(0x1038)
		h.SecondaryDataState, h.SecondaryDataStateSet = set(0x103C)
		h.ProductType, h.ProductTypeSet = set(0x1040)
		h.SuiteMask, h.SuiteMaskSet = set(0x1044)
		h.WriterStatus, h.WriterStatusSet = set(0x1048)
		if u32(0x104C) != pageFill { // Unused1, KdSecondaryVersion, Unused
			h.KdSecondaryVersion = b[0x104D]
		}
		h.Attributes, h.AttributesSet = set(0x1050)
		h.BootID, h.BootIDSet = set(0x1054)
		return h, nil
	}
	h.DirectoryTableBase = uint64(u32(0x10))
	h.PfnDataBase = uint64(u32(0x14))
	h.PsLoadedModuleList = uint64(u32(0x18))
	h.PsActiveProcessHead = uint64(u32(0x1C))
	h.machineRaw = u32(0x20)
	h.Machine = Machine(h.machineRaw)
	h.NumberProcessors = u32(0x24)
	h.BugCheck.Code = u32(0x28)
	for i := range 4 {
		h.BugCheck.Params[i] = uint64(u32(0x2C + 4*i))
	}
	h.VersionUser = cString(b[0x3C:0x5C])
	if u32(0x5C) != pageFill { // PaeEnabled, KdSecondaryVersion, Spare
		// PaeEnabled is a BOOLEAN: a 'P' is the fill left in that byte alone.
		h.PaeEnabled = b[0x5C] != 0 && b[0x5C] != 'P'
		h.KdSecondaryVersion = b[0x5D]
	}
	h.KdDebuggerDataBlock = uint64(u32(0x60))
	if runs := u32(0x64); runs != pageFill {
		h.NumberOfRuns = runs
		h.NumberOfPages = uint64(u32(0x68))
		n := min(runs, (700-8)/8)
		h.Runs = make([]MemoryRun, n)
		for i := range int(n) {
			h.Runs[i] = MemoryRun{BasePage: uint64(u32(0x6C + 8*i)), PageCount: uint64(u32(0x70 + 8*i))}
		}
	}
	h.Context = b[0x320 : 0x320+1200]
	h.Exception = parseException32(b[0x7D0:0x820])
	h.Comment = cString(b[0x820:0x8A0])
	h.Attributes, h.AttributesSet = set(0x8A0)
	h.BootID, h.BootIDSet = set(0x8A4)
	h.DumpType = DumpType(u32(0xF88))
	h.MiniDumpFields = orZero(0xF8C)
	h.SecondaryDataState, h.SecondaryDataStateSet = set(0xF90)
	h.ProductType, h.ProductTypeSet = set(0xF94)
	h.SuiteMask, h.SuiteMaskSet = set(0xF98)
	h.WriterStatus, h.WriterStatusSet = set(0xF9C)
	h.RequiredDumpSpace = unset64(u64(0xFA0))
	h.SystemUpTime = upTime(u64(0xFB8))
	h.SystemTime = fileTime(u64(0xFC0))
	return h, nil
}

// parseException64 decodes an EXCEPTION_RECORD64 (0x98 bytes).
func parseException64(b []byte) ExceptionRecord {
	le := binary.LittleEndian
	e := ExceptionRecord{
		Code:      le.Uint32(b[0:]),
		Flags:     le.Uint32(b[4:]),
		Record:    le.Uint64(b[8:]),
		Address:   le.Uint64(b[0x10:]),
		NumParams: le.Uint32(b[0x18:]),
	}
	for i := range min(e.NumParams, 15) {
		e.Information[i] = le.Uint64(b[0x20+8*i:])
	}
	return e
}

func parseException32(b []byte) ExceptionRecord {
	le := binary.LittleEndian
	e := ExceptionRecord{
		Code:      le.Uint32(b[0:]),
		Flags:     le.Uint32(b[4:]),
		Record:    uint64(le.Uint32(b[8:])),
		Address:   uint64(le.Uint32(b[0xC:])),
		NumParams: le.Uint32(b[0x10:]),
	}
	for i := range min(e.NumParams, 15) {
		e.Information[i] = uint64(le.Uint32(b[0x14+4*i:]))
	}
	return e
}

// cString returns the NUL-terminated ASCII text in b, or "" when b is the
// 'PAGE' fill or holds no printable text.
func cString(b []byte) string {
	if len(b) >= 4 && string(b[:4]) == "PAGE" {
		return ""
	}
	n := 0
	for n < len(b) && b[n] != 0 {
		if b[n] < 0x20 || b[n] > 0x7E {
			return ""
		}
		n++
	}
	return string(b[:n])
}

// pageFill64 is the 'PAGE' fill read as a 64-bit field.
const pageFill64 = 0x4547415045474150

// unset64 returns v, or 0 when v still holds the 'PAGE' fill (in either
// half: a writer may set only the low DWORD).
func unset64(v uint64) uint64 {
	if v == pageFill64 || v>>32 == pageFill {
		return 0
	}
	return v
}

// upTime converts a SystemUpTime (100 ns units) to a duration: zero when
// unset or too large for a time.Duration (over 29 000 years).
func upTime(v uint64) time.Duration {
	v = unset64(v)
	if v > math.MaxInt64/100 {
		return 0
	}
	return time.Duration(v) * 100
}

// fileTime converts a FILETIME (100 ns since 1601) to a time; zero and the
// 'PAGE' fill give the zero time.
func fileTime(v uint64) time.Time {
	if unset64(v) == 0 {
		return time.Time{}
	}
	const epochDiff = 116444736000000000 // 1601-01-01 to 1970-01-01 in 100 ns
	if v < epochDiff {
		return time.Time{}
	}
	d := v - epochDiff
	return time.Unix(int64(d/1e7), int64(d%1e7)*100).UTC()
}
