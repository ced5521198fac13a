// Package kdumptest builds synthetic Windows kernel crash dumps for tests:
// triage (small memory) dumps for x64, ARM64, x86 and ARM, and complete
// (physical memory runs), bitmap (SDMP and FDMP) and RDMP dumps for x64,
// x86 with and without PAE, and ARM64, with page tables, a KDBG block, a
// loaded-module list with PE headers, PRCBs and contexts, the current
// thread and process, and a stack.
//
// The builders write bytes at the offsets documented in the project's
// format reference (dump-formats.md) with their own constants; they do not
// share code or structures with package kdump, so tests built on them check
// the parser against the documentation rather than against itself.
//
// Dumps are built as a sparse Image: multi-GiB dumps cost only the pages
// that hold something, both in memory and (through Image.WriteFile) on disk.
package kdumptest

import "fmt"

// Arch is the architecture of a synthetic dump.
type Arch int

// Architectures.
const (
	AMD64  Arch = iota // x64, 4-level paging
	X86PAE             // x86 with PAE (3-level paging)
	X86                // x86 without PAE (2-level paging, 4 MiB large pages)
	ARM64              // ARM64, 4 KiB granule
	ARM                // 32-bit ARM (triage dumps only)
)

// String names the architecture.
func (a Arch) String() string {
	switch a {
	case AMD64:
		return "x64"
	case X86PAE:
		return "x86-pae"
	case X86:
		return "x86"
	case ARM64:
		return "arm64"
	case ARM:
		return "arm"
	}
	return fmt.Sprintf("Arch(%d)", int(a))
}

// Is64 reports whether the architecture writes PAGEDU64 dumps.
func (a Arch) Is64() bool { return a == AMD64 || a == ARM64 }

// Machine returns the IMAGE_FILE_MACHINE value.
func (a Arch) Machine() uint16 {
	switch a {
	case AMD64:
		return 0x8664
	case ARM64:
		return 0xAA64
	case ARM:
		return 0x01C4
	}
	return 0x014C
}

// Kind is the type of a synthetic dump.
type Kind int

// Dump kinds.
const (
	Triage         Kind = iota // DumpType 4
	Full                       // DumpType 1, physical memory runs
	BitmapKernel               // DumpType 5, SDMP: only the pages in use
	BitmapFull                 // DumpType 5, FDMP: every page
	BitmapLive                 // DumpType 6, SDMP layout
	RDMPKernel                 // DumpType 8
	RDMPKernelUser             // DumpType 9
	RDMPComplete               // DumpType 0xA
)

// DumpType returns the header DumpType value of the kind.
func (k Kind) DumpType() uint32 {
	return [...]uint32{Triage: 4, Full: 1, BitmapKernel: 5, BitmapFull: 5, BitmapLive: 6,
		RDMPKernel: 8, RDMPKernelUser: 9, RDMPComplete: 0xA}[k]
}

// String names the kind.
func (k Kind) String() string {
	if k < Triage || k > RDMPComplete {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return [...]string{"triage", "full", "bitmap-kernel", "bitmap-full", "bitmap-live", "rdmp-kernel", "rdmp-kernel-user", "rdmp-complete"}[k]
}

// storesAll reports whether the kind stores every physical page.
func (k Kind) storesAll() bool { return k == Full || k == BitmapFull || k == RDMPComplete }

// Module describes a loaded driver.
type Module struct {
	Name          string // base name; empty to store only the full path
	Path          string // full path, e.g. \SystemRoot\system32\ntoskrnl.exe
	Base          uint64
	Size          uint32
	TimeDateStamp uint32
	CheckSum      uint32
}

// Unloaded describes an unloaded driver.
type Unloaded struct {
	Name       string
	Start, End uint64
}

// KDBGKeys are the values used to encode the KDBG block (Windows 8+).
type KDBGKeys struct {
	KiWaitNever, KiWaitAlways, KdpDataBlockEncoded uint64
}

// Spec describes a synthetic dump. The zero value of every field picks a
// sensible default (see Build).
type Spec struct {
	Arch Arch
	Kind Kind
	// Build is the header MinorVersion; 0 means 19041 (22000 on ARM64).
	Build uint32
	// Processors is the CPU count; 0 means 4.
	Processors int
	// CrashCPU is the processor that crashed; -1 means 0, 0 means 1 when
	// there is more than one CPU (so that the crashing CPU is not the
	// fallback). Values >= Processors are reduced modulo Processors.
	CrashCPU int
	// BugCheck and Params; zero means 0x1000007E with an access violation
	// in the last module.
	BugCheck uint32
	Params   [4]uint64
	// Modules; nil means DefaultModules(Arch).
	Modules []Module
	// Unloaded drivers; nil means a default pair, an empty non-nil slice none.
	Unloaded []Unloaded
	// ProcessName of the current process; "" means "System".
	ProcessName string
	// MemoryBytes is the highest physical address + 1 (memory dumps); 0
	// means 16 MiB. Dumps of 2 GiB and more also map a 1 GiB page.
	MemoryBytes uint64
	// StackPages is the kernel stack size in pages; 0 means 3.
	StackPages int
	// InlinePrcbContext stores each CPU's CONTEXT inside its PRCB
	// (KDBG OffsetPrcbProcStateContext, pre-Win7) instead of through the
	// OffsetPrcbContext pointer.
	InlinePrcbContext bool
	// EncodeKDBG, when set, stores the in-memory KDBG block encoded with
	// these keys (memory dumps; triage copies stay plain).
	EncodeKDBG *KDBGKeys
	// PAEUnset leaves the 32-bit header's PaeEnabled byte at the PAGE fill
	// so that a reader must find out from the KDBG block.
	PAEUnset bool
	// DumpBlob appends secondary "DumpBlob" data after a triage dump's
	// SizeOfDump, as Windows does (dump-formats §3.9).
	DumpBlob bool
	// CyclicModules makes the last module entry link back to the second.
	CyclicModules bool
	// BreakModulesAfter, when > 0, makes entry N (1-based) link to an
	// unmapped address, so a walk reads N modules then fails.
	BreakModulesAfter int
}

// Facts is what Build wrote, for tests to compare a reader's results with.
type Facts struct {
	Arch       Arch
	Kind       Kind
	DumpType   uint32
	Machine    uint16
	Build      uint32
	Processors int
	CrashCPU   int
	BugCheck   uint32
	Params     [4]uint64
	FileSize   int64

	DTB                 uint64
	KDBG                uint64 // VA of the KDBG block
	PsLoadedModuleList  uint64
	PsActiveProcessHead uint64
	KiProcessorBlock    uint64
	PfnDataBase         uint64 // header PfnDataBase and KDBG MmPfnDatabase
	KernBase            uint64
	PRCBs               []uint64
	Thread, Process     uint64
	ProcessName         string // "" when the reader cannot know it (ARM)

	IP, SP, FP            uint64
	StackLimit, StackBase uint64 // the thread's stack is [StackLimit, StackBase)
	// Stack holds the readable stack bytes, from StackStart to StackBase:
	// the whole stack in memory dumps, [TopOfStack, StackBase) in triage dumps.
	Stack      []byte
	StackStart uint64
	// TopOfStack is the triage header's TopOfStack (lowest saved address).
	TopOfStack uint64

	Modules  []Module // as a reader should report them
	Unloaded []Unloaded

	// Translation probes of memory dumps. Each probe page holds, in every
	// 8-byte slot, the slot's own virtual address (see Pattern).
	LargePageVA, LargePagePA   uint64 // a page inside a 2 MiB (4 MiB on x86) mapping
	LargePageSize              uint64
	HugePageVA, HugePagePA     uint64 // inside a 1 GiB mapping; 0 when memory < 2 GiB or x86
	TransitionVA, TransitionPA uint64 // mapped by a transition PTE (x86, x64); 0 otherwise
	PrototypeVA                uint64 // a prototype PTE (x86, x64): not readable; 0 otherwise
	PageFileVA                 uint64 // a page-file PTE (x86, x64): not readable; 0 otherwise
	AbsentVA                   uint64 // a valid PTE to a page no dump stores
	// StoredPages is the number of physical pages the dump stores.
	StoredPages uint64
	// Ranges are the stored physical page ranges, sorted.
	Ranges []PageRange
	// Offsets of the layout parts, for corruption tests.
	BitmapHeaderOffset int64 // SDMP/FDMP or RDMP header, 0 otherwise
	FirstPageOffset    int64
	TriageOffset       int64 // TRIAGE_DUMP header, 0 otherwise
}

// PageRange is a run of physical pages.
type PageRange struct{ PFN, Pages uint64 }

// Pattern returns the 8 bytes a probe page holds at va (8-aligned): va.
func Pattern(va uint64) uint64 { return va &^ 7 }

// DefaultModules returns the default driver list for an architecture.
func DefaultModules(a Arch) []Module {
	k, step := uint64(0xfffff8047ba00000), uint64(0x2000000)
	if !a.Is64() {
		k, step = 0x82800000, 0x2000000
	}
	mods := []Module{
		{Name: "ntoskrnl.exe", Path: `\SystemRoot\system32\ntoskrnl.exe`, Base: k, Size: 0x1046000, TimeDateStamp: 0x5F3A1C2B, CheckSum: 0xA3B2C1},
		{Name: "hal.dll", Path: `\SystemRoot\system32\hal.dll`, Base: k + step, Size: 0xA6000, TimeDateStamp: 0x11223344, CheckSum: 0xB00B5},
		{Name: "kd.dll", Path: `\SystemRoot\system32\kd.dll`, Base: k + 2*step, Size: 0xB000, TimeDateStamp: 0x22334455, CheckSum: 0x1234},
		{Name: "CLFS.SYS", Path: `\SystemRoot\System32\drivers\CLFS.SYS`, Base: k + 3*step, Size: 0x6A000, TimeDateStamp: 0x33445566, CheckSum: 0x6B1F0},
		{Name: "", Path: `\SystemRoot\System32\drivers\pathonly.sys`, Base: k + 4*step, Size: 0x9000, TimeDateStamp: 0x44556677, CheckSum: 0x8765},
		{Name: "amdppm.sys", Path: `\SystemRoot\System32\drivers\amdppm.sys`, Base: k + 5*step, Size: 0x3B000, TimeDateStamp: 0x55667788, CheckSum: 0x4A2E1},
	}
	return mods
}

// defaultUnloaded returns the default unloaded drivers.
func defaultUnloaded(a Arch) []Unloaded {
	if a.Is64() {
		return []Unloaded{
			{Name: "dam.sys", Start: 0xfffff80487de0000, End: 0xfffff80487dfc000},
			{Name: "WdBoot.sys", Start: 0xfffff80487e00000, End: 0xfffff80487e0f000},
		}
	}
	return []Unloaded{
		{Name: "dam.sys", Start: 0x8a200000, End: 0x8a21c000},
		{Name: "WdBoot.sys", Start: 0x8a300000, End: 0x8a30f000},
	}
}
