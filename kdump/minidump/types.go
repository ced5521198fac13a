package minidump

import (
	"fmt"
	"strings"
)

// StreamType is a MINIDUMP_STREAM_TYPE, including vendor extensions.
type StreamType uint32

// Standard stream types (minidumpapiset.h).
const (
	UnusedStream              StreamType = 0
	ReservedStream0           StreamType = 1
	ReservedStream1           StreamType = 2
	ThreadListStream          StreamType = 3
	ModuleListStream          StreamType = 4
	MemoryListStream          StreamType = 5
	ExceptionStream           StreamType = 6
	SystemInfoStream          StreamType = 7
	ThreadExListStream        StreamType = 8
	Memory64ListStream        StreamType = 9
	CommentStreamA            StreamType = 10
	CommentStreamW            StreamType = 11
	HandleDataStream          StreamType = 12
	FunctionTableStream       StreamType = 13
	UnloadedModuleListStream  StreamType = 14
	MiscInfoStream            StreamType = 15
	MemoryInfoListStream      StreamType = 16
	ThreadInfoListStream      StreamType = 17
	HandleOperationListStream StreamType = 18
	TokenStream               StreamType = 19
	JavaScriptDataStream      StreamType = 20
	SystemMemoryInfoStream    StreamType = 21
	ProcessVmCountersStream   StreamType = 22
	IptTraceStream            StreamType = 23
	ThreadNamesStream         StreamType = 24

	CeStreamNull                StreamType = 0x8000
	CeStreamSystemInfo          StreamType = 0x8001
	CeStreamException           StreamType = 0x8002
	CeStreamModuleList          StreamType = 0x8003
	CeStreamProcessList         StreamType = 0x8004
	CeStreamThreadList          StreamType = 0x8005
	CeStreamThreadContextList   StreamType = 0x8006
	CeStreamThreadCallStackList StreamType = 0x8007
	CeStreamMemoryVirtualList   StreamType = 0x8008
	CeStreamMemoryPhysicalList  StreamType = 0x8009
	CeStreamBucketParameters    StreamType = 0x800A
	CeStreamProcessModuleMap    StreamType = 0x800B
	CeStreamDiagnosisList       StreamType = 0x800C

	LastReservedStream StreamType = 0xFFFF
)

// Vendor stream types: Breakpad ("Gg"), Crashpad ("CP"), Chromium stability
// reports ("Kk") and Mozilla ("Mz").
const (
	BreakpadInfoStream      StreamType = 0x47670001
	BreakpadAssertionInfo   StreamType = 0x47670002
	BreakpadLinuxCPUInfo    StreamType = 0x47670003
	BreakpadLinuxProcStatus StreamType = 0x47670004
	BreakpadLinuxLsbRelease StreamType = 0x47670005
	BreakpadLinuxCmdLine    StreamType = 0x47670006
	BreakpadLinuxEnviron    StreamType = 0x47670007
	BreakpadLinuxAuxv       StreamType = 0x47670008
	BreakpadLinuxMaps       StreamType = 0x47670009
	BreakpadLinuxDsoDebug   StreamType = 0x4767000A
	CrashpadInfoStream      StreamType = 0x43500001
	StabilityReportStream   StreamType = 0x4B6B0002
	MozMacosCrashInfoStream StreamType = 0x4D7A0001
	MozMacosBootargsStream  StreamType = 0x4D7A0002
	MozLinuxLimitsStream    StreamType = 0x4D7A0003
	MozSoftErrorsStream     StreamType = 0x4D7A0004
)

var streamNames = map[StreamType]string{
	UnusedStream:                "UnusedStream",
	ReservedStream0:             "ReservedStream0",
	ReservedStream1:             "ReservedStream1",
	ThreadListStream:            "ThreadListStream",
	ModuleListStream:            "ModuleListStream",
	MemoryListStream:            "MemoryListStream",
	ExceptionStream:             "ExceptionStream",
	SystemInfoStream:            "SystemInfoStream",
	ThreadExListStream:          "ThreadExListStream",
	Memory64ListStream:          "Memory64ListStream",
	CommentStreamA:              "CommentStreamA",
	CommentStreamW:              "CommentStreamW",
	HandleDataStream:            "HandleDataStream",
	FunctionTableStream:         "FunctionTableStream",
	UnloadedModuleListStream:    "UnloadedModuleListStream",
	MiscInfoStream:              "MiscInfoStream",
	MemoryInfoListStream:        "MemoryInfoListStream",
	ThreadInfoListStream:        "ThreadInfoListStream",
	HandleOperationListStream:   "HandleOperationListStream",
	TokenStream:                 "TokenStream",
	JavaScriptDataStream:        "JavaScriptDataStream",
	SystemMemoryInfoStream:      "SystemMemoryInfoStream",
	ProcessVmCountersStream:     "ProcessVmCountersStream",
	IptTraceStream:              "IptTraceStream",
	ThreadNamesStream:           "ThreadNamesStream",
	CeStreamNull:                "ceStreamNull",
	CeStreamSystemInfo:          "ceStreamSystemInfo",
	CeStreamException:           "ceStreamException",
	CeStreamModuleList:          "ceStreamModuleList",
	CeStreamProcessList:         "ceStreamProcessList",
	CeStreamThreadList:          "ceStreamThreadList",
	CeStreamThreadContextList:   "ceStreamThreadContextList",
	CeStreamThreadCallStackList: "ceStreamThreadCallStackList",
	CeStreamMemoryVirtualList:   "ceStreamMemoryVirtualList",
	CeStreamMemoryPhysicalList:  "ceStreamMemoryPhysicalList",
	CeStreamBucketParameters:    "ceStreamBucketParameters",
	CeStreamProcessModuleMap:    "ceStreamProcessModuleMap",
	CeStreamDiagnosisList:       "ceStreamDiagnosisList",
	LastReservedStream:          "LastReservedStream",
	BreakpadInfoStream:          "BreakpadInfoStream",
	BreakpadAssertionInfo:       "BreakpadAssertionInfoStream",
	BreakpadLinuxCPUInfo:        "BreakpadLinuxCpuInfo",
	BreakpadLinuxProcStatus:     "BreakpadLinuxProcStatus",
	BreakpadLinuxLsbRelease:     "BreakpadLinuxLsbRelease",
	BreakpadLinuxCmdLine:        "BreakpadLinuxCmdLine",
	BreakpadLinuxEnviron:        "BreakpadLinuxEnviron",
	BreakpadLinuxAuxv:           "BreakpadLinuxAuxv",
	BreakpadLinuxMaps:           "BreakpadLinuxMaps",
	BreakpadLinuxDsoDebug:       "BreakpadLinuxDsoDebug",
	CrashpadInfoStream:          "CrashpadInfoStream",
	StabilityReportStream:       "StabilityReportStream",
	MozMacosCrashInfoStream:     "MozMacosCrashInfoStream",
	MozMacosBootargsStream:      "MozMacosBootargsStream",
	MozLinuxLimitsStream:        "MozLinuxLimits",
	MozSoftErrorsStream:         "MozSoftErrors",
}

// String returns the stream's name (e.g. "ThreadListStream",
// "BreakpadInfoStream"), or "StreamType(0x...)" for unknown types.
func (t StreamType) String() string {
	if s, ok := streamNames[t]; ok {
		return s
	}
	return fmt.Sprintf("StreamType(%#x)", uint32(t))
}

// Known reports whether t is a stream type this package can name.
func (t StreamType) Known() bool { _, ok := streamNames[t]; return ok }

// Vendor returns who defines the stream type: "microsoft", "breakpad",
// "crashpad", "chromium", "mozilla" or "unknown".
func (t StreamType) Vendor() string {
	if t <= LastReservedStream {
		return "microsoft"
	}
	switch uint32(t) >> 16 {
	case 0x4767:
		return "breakpad"
	case 0x4350:
		return "crashpad"
	case 0x4B6B:
		return "chromium"
	case 0x4D7A:
		return "mozilla"
	}
	return "unknown"
}

// DumpFlags is the MINIDUMP_TYPE bit set in the header's Flags field.
type DumpFlags uint64

// MINIDUMP_TYPE flags.
const (
	MiniDumpNormal                         DumpFlags = 0
	MiniDumpWithDataSegs                   DumpFlags = 0x00000001
	MiniDumpWithFullMemory                 DumpFlags = 0x00000002
	MiniDumpWithHandleData                 DumpFlags = 0x00000004
	MiniDumpFilterMemory                   DumpFlags = 0x00000008
	MiniDumpScanMemory                     DumpFlags = 0x00000010
	MiniDumpWithUnloadedModules            DumpFlags = 0x00000020
	MiniDumpWithIndirectlyReferencedMemory DumpFlags = 0x00000040
	MiniDumpFilterModulePaths              DumpFlags = 0x00000080
	MiniDumpWithProcessThreadData          DumpFlags = 0x00000100
	MiniDumpWithPrivateReadWriteMemory     DumpFlags = 0x00000200
	MiniDumpWithoutOptionalData            DumpFlags = 0x00000400
	MiniDumpWithFullMemoryInfo             DumpFlags = 0x00000800
	MiniDumpWithThreadInfo                 DumpFlags = 0x00001000
	MiniDumpWithCodeSegs                   DumpFlags = 0x00002000
	MiniDumpWithoutAuxiliaryState          DumpFlags = 0x00004000
	MiniDumpWithFullAuxiliaryState         DumpFlags = 0x00008000
	MiniDumpWithPrivateWriteCopyMemory     DumpFlags = 0x00010000
	MiniDumpIgnoreInaccessibleMemory       DumpFlags = 0x00020000
	MiniDumpWithTokenInformation           DumpFlags = 0x00040000
	MiniDumpWithModuleHeaders              DumpFlags = 0x00080000
	MiniDumpFilterTriage                   DumpFlags = 0x00100000
	MiniDumpWithAvxXStateContext           DumpFlags = 0x00200000
	MiniDumpWithIptTrace                   DumpFlags = 0x00400000
	MiniDumpScanInaccessiblePartialPages   DumpFlags = 0x00800000
	MiniDumpFilterWriteCombinedMemory      DumpFlags = 0x01000000
	MiniDumpValidTypeFlags                 DumpFlags = 0x01FFFFFF
)

var flagNames = [...]string{
	"WithDataSegs", "WithFullMemory", "WithHandleData", "FilterMemory", "ScanMemory",
	"WithUnloadedModules", "WithIndirectlyReferencedMemory", "FilterModulePaths",
	"WithProcessThreadData", "WithPrivateReadWriteMemory", "WithoutOptionalData",
	"WithFullMemoryInfo", "WithThreadInfo", "WithCodeSegs", "WithoutAuxiliaryState",
	"WithFullAuxiliaryState", "WithPrivateWriteCopyMemory", "IgnoreInaccessibleMemory",
	"WithTokenInformation", "WithModuleHeaders", "FilterTriage", "WithAvxXStateContext",
	"WithIptTrace", "ScanInaccessiblePartialPages", "FilterWriteCombinedMemory",
}

// Names returns the names of the set flags, lowest bit first; bits with no
// name are given as hex. MiniDumpNormal (0) gives ["Normal"].
func (f DumpFlags) Names() []string {
	if f == 0 {
		return []string{"Normal"}
	}
	var out []string
	for i, n := range flagNames {
		if f&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	if rest := f &^ MiniDumpValidTypeFlags; rest != 0 {
		out = append(out, fmt.Sprintf("%#x", uint64(rest)))
	}
	return out
}

// String lists the set flags joined by "|", e.g.
// "WithDataSegs|WithHandleData|WithProcessThreadData|WithThreadInfo".
func (f DumpFlags) String() string { return strings.Join(f.Names(), "|") }

// ProcessorArch is a PROCESSOR_ARCHITECTURE value from SystemInfoStream.
type ProcessorArch uint16

// Processor architectures. Values from 0x8001 on are Breakpad extensions.
const (
	ArchX86          ProcessorArch = 0
	ArchMIPS         ProcessorArch = 1
	ArchAlpha        ProcessorArch = 2
	ArchPPC          ProcessorArch = 3
	ArchSHX          ProcessorArch = 4
	ArchARM          ProcessorArch = 5
	ArchIA64         ProcessorArch = 6
	ArchAlpha64      ProcessorArch = 7
	ArchMSIL         ProcessorArch = 8
	ArchAMD64        ProcessorArch = 9
	ArchIA32OnWin64  ProcessorArch = 10
	ArchNeutral      ProcessorArch = 11
	ArchARM64        ProcessorArch = 12
	ArchARM32OnWin64 ProcessorArch = 13
	ArchSPARC        ProcessorArch = 0x8001
	ArchPPC64        ProcessorArch = 0x8002
	ArchARM64Old     ProcessorArch = 0x8003 // Breakpad's ARM64 before Windows had one
	ArchMIPS64       ProcessorArch = 0x8004
	ArchRISCV        ProcessorArch = 0x8005
	ArchRISCV64      ProcessorArch = 0x8006
	ArchUnknown      ProcessorArch = 0xFFFF
)

var archNames = map[ProcessorArch]string{
	ArchX86: "x86", ArchMIPS: "mips", ArchAlpha: "alpha", ArchPPC: "ppc", ArchSHX: "shx",
	ArchARM: "arm", ArchIA64: "ia64", ArchAlpha64: "alpha64", ArchMSIL: "msil", ArchAMD64: "x64",
	ArchIA32OnWin64: "ia32-on-win64", ArchNeutral: "neutral", ArchARM64: "arm64",
	ArchARM32OnWin64: "arm32-on-win64", ArchSPARC: "sparc", ArchPPC64: "ppc64",
	ArchARM64Old: "arm64", ArchMIPS64: "mips64", ArchRISCV: "riscv", ArchRISCV64: "riscv64",
	ArchUnknown: "unknown",
}

// String returns a short name: x86, x64, arm, arm64, ...
func (a ProcessorArch) String() string {
	if s, ok := archNames[a]; ok {
		return s
	}
	return fmt.Sprintf("arch(%#x)", uint16(a))
}

// Platform is the PlatformId of SystemInfoStream.
type Platform uint32

// Platform ids: the Windows VER_PLATFORM values and Breakpad's extensions.
const (
	PlatformWin32s  Platform = 0
	PlatformWin9x   Platform = 1
	PlatformWinNT   Platform = 2
	PlatformWinCE   Platform = 3
	PlatformUnix    Platform = 0x8000
	PlatformMacOS   Platform = 0x8101
	PlatformIOS     Platform = 0x8102
	PlatformLinux   Platform = 0x8201
	PlatformSolaris Platform = 0x8202
	PlatformAndroid Platform = 0x8203
	PlatformPS3     Platform = 0x8204
	PlatformNaCl    Platform = 0x8205
	PlatformFuchsia Platform = 0x8206
)

var platformNames = map[Platform]string{
	PlatformWin32s: "win32s", PlatformWin9x: "windows-9x", PlatformWinNT: "windows", PlatformWinCE: "windows-ce",
	PlatformUnix: "unix", PlatformMacOS: "macos", PlatformIOS: "ios", PlatformLinux: "linux",
	PlatformSolaris: "solaris", PlatformAndroid: "android", PlatformPS3: "ps3", PlatformNaCl: "nacl",
	PlatformFuchsia: "fuchsia",
}

// String returns windows, linux, macos, ...
func (p Platform) String() string {
	if s, ok := platformNames[p]; ok {
		return s
	}
	return fmt.Sprintf("platform(%#x)", uint32(p))
}

// Location is a MINIDUMP_LOCATION_DESCRIPTOR: DataSize bytes at file
// offset Rva.
type Location struct {
	DataSize uint32
	Rva      uint32
}

// Directory is one MINIDUMP_DIRECTORY entry.
type Directory struct {
	Index int // position in the directory
	Type  StreamType
	Location
}

// MemoryDescriptor is a MINIDUMP_MEMORY_DESCRIPTOR: a range of the
// process's memory starting at Start whose bytes are at Location.
type MemoryDescriptor struct {
	Start uint64
	Location
}
