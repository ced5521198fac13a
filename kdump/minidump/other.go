package minidump

import "fmt"

// MemoryInfo is a MINIDUMP_MEMORY_INFO (MemoryInfoListStream): one region
// of the process's address space as VirtualQuery described it.
type MemoryInfo struct {
	BaseAddress       uint64
	AllocationBase    uint64
	AllocationProtect uint32
	RegionSize        uint64
	State             uint32 // MemCommit, MemReserve, MemFree
	Protect           uint32 // Page* protection
	Type              uint32 // MemPrivate, MemMapped, MemImage
}

// Memory states, types and protections.
const (
	MemCommit  = 0x1000
	MemReserve = 0x2000
	MemFree    = 0x10000

	MemPrivate = 0x20000
	MemMapped  = 0x40000
	MemImage   = 0x1000000

	PageNoAccess         = 0x01
	PageReadOnly         = 0x02
	PageReadWrite        = 0x04
	PageWriteCopy        = 0x08
	PageExecute          = 0x10
	PageExecuteRead      = 0x20
	PageExecuteReadWrite = 0x40
	PageExecuteWriteCopy = 0x80
	PageGuard            = 0x100
	PageNoCache          = 0x200
	PageWriteCombine     = 0x400
)

// Executable reports whether the region's protection allows execution.
func (m *MemoryInfo) Executable() bool {
	return m.Protect&(PageExecute|PageExecuteRead|PageExecuteReadWrite|PageExecuteWriteCopy) != 0
}

// Writable reports whether the region's protection allows writes.
func (m *MemoryInfo) Writable() bool {
	return m.Protect&(PageReadWrite|PageWriteCopy|PageExecuteReadWrite|PageExecuteWriteCopy) != 0
}

// Contains reports whether addr lies in the region.
func (m *MemoryInfo) Contains(addr uint64) bool {
	return addr >= m.BaseAddress && addr-m.BaseAddress < m.RegionSize
}

// ProtectString names a page protection, e.g. "PAGE_EXECUTE_READ|PAGE_GUARD".
func ProtectString(p uint32) string {
	names := []struct {
		v uint32
		s string
	}{
		{PageNoAccess, "PAGE_NOACCESS"}, {PageReadOnly, "PAGE_READONLY"}, {PageReadWrite, "PAGE_READWRITE"},
		{PageWriteCopy, "PAGE_WRITECOPY"}, {PageExecute, "PAGE_EXECUTE"}, {PageExecuteRead, "PAGE_EXECUTE_READ"},
		{PageExecuteReadWrite, "PAGE_EXECUTE_READWRITE"}, {PageExecuteWriteCopy, "PAGE_EXECUTE_WRITECOPY"},
		{PageGuard, "PAGE_GUARD"}, {PageNoCache, "PAGE_NOCACHE"}, {PageWriteCombine, "PAGE_WRITECOMBINE"},
	}
	s := ""
	rest := p
	for _, n := range names {
		if p&n.v != 0 {
			if s != "" {
				s += "|"
			}
			s += n.s
			rest &^= n.v
		}
	}
	if rest != 0 || s == "" {
		if s != "" {
			s += "|"
		}
		s += fmt.Sprintf("%#x", rest)
	}
	return s
}

// MemoryInfos returns the MemoryInfoListStream entries.
func (f *File) MemoryInfos() ([]MemoryInfo, error) {
	return f.memInfo.get(func() ([]MemoryInfo, error) {
		b, off, err := f.streamBytes(MemoryInfoListStream)
		if err != nil {
			return nil, err
		}
		n, stride, start, err := tableHeader(b, off, "memory info list", 48, true)
		if err != nil {
			return nil, err
		}
		out := make([]MemoryInfo, n)
		for i := range out {
			e := b[start+i*stride:]
			out[i] = MemoryInfo{
				BaseAddress: le.Uint64(e), AllocationBase: le.Uint64(e[8:]), AllocationProtect: le.Uint32(e[16:]),
				RegionSize: le.Uint64(e[24:]), State: le.Uint32(e[32:]), Protect: le.Uint32(e[36:]), Type: le.Uint32(e[40:]),
			}
		}
		return out, nil
	})
}

// Comment returns the text of CommentStreamW if present, else of
// CommentStreamA (raw bytes up to the first NUL).
func (f *File) Comment() (string, error) {
	if f.HasStream(CommentStreamW) {
		b, err := f.StreamData(CommentStreamW)
		if err != nil {
			return "", err
		}
		return utf16String(b), nil
	}
	b, err := f.StreamData(CommentStreamA)
	if err != nil {
		return "", err
	}
	return cString(b), nil
}

// TokenEntry is one MINIDUMP_TOKEN_INFO_HEADER with the token data after it.
type TokenEntry struct {
	TokenSize   uint32
	TokenID     uint32
	TokenHandle uint64
	Data        []byte
}

// TokenList is the TokenStream.
type TokenList struct {
	TokenListSize     uint32
	TokenListEntries  uint32
	ListHeaderSize    uint32
	ElementHeaderSize uint32
	Entries           []TokenEntry
}

// Tokens returns the TokenStream.
func (f *File) Tokens() (*TokenList, error) {
	return f.token.get(func() (*TokenList, error) {
		b, off, err := f.streamBytes(TokenStream)
		if err != nil {
			return nil, err
		}
		const what = "token stream"
		if len(b) < 16 {
			return nil, formatErr(off, what, ErrTruncated, "%d bytes", len(b))
		}
		t := &TokenList{TokenListSize: le.Uint32(b), TokenListEntries: le.Uint32(b[4:]), ListHeaderSize: le.Uint32(b[8:]), ElementHeaderSize: le.Uint32(b[12:])}
		if t.ListHeaderSize < 16 || int64(t.ListHeaderSize) > int64(len(b)) || t.ElementHeaderSize < 16 {
			return nil, formatErr(off+8, what, nil, "header sizes %d/%d", t.ListHeaderSize, t.ElementHeaderSize)
		}
		if t.TokenListEntries > maxListEntries {
			return nil, formatErr(off+4, what, ErrTooLarge, "%d entries", t.TokenListEntries)
		}
		pos := int64(t.ListHeaderSize)
		for i := uint32(0); i < t.TokenListEntries; i++ {
			if pos+16 > int64(len(b)) {
				return t, formatErr(off+pos, what, ErrTruncated, "entry %d of %d", i, t.TokenListEntries)
			}
			e := TokenEntry{TokenSize: le.Uint32(b[pos:]), TokenID: le.Uint32(b[pos+4:]), TokenHandle: le.Uint64(b[pos+8:])}
			if int64(e.TokenSize) < int64(t.ElementHeaderSize) || pos+int64(e.TokenSize) > int64(len(b)) {
				return t, formatErr(off+pos, what, ErrTruncated, "entry %d has size %d", i, e.TokenSize)
			}
			e.Data = b[pos+int64(t.ElementHeaderSize) : pos+int64(e.TokenSize)]
			t.Entries = append(t.Entries, e)
			pos += int64(e.TokenSize)
		}
		return t, nil
	})
}

// FunctionTableDescriptor is a MINIDUMP_FUNCTION_TABLE_DESCRIPTOR with its
// native descriptor and function entries as raw bytes.
type FunctionTableDescriptor struct {
	MinimumAddress   uint64
	MaximumAddress   uint64
	BaseAddress      uint64
	EntryCount       uint32
	NativeDescriptor []byte
	Entries          []byte // EntryCount × SizeOfFunctionEntry bytes
}

// FunctionTable is the FunctionTableStream: dynamic function tables (JIT
// unwind data registered with RtlAddFunctionTable).
type FunctionTable struct {
	SizeOfHeader           uint32
	SizeOfDescriptor       uint32
	SizeOfNativeDescriptor uint32
	SizeOfFunctionEntry    uint32
	NumberOfDescriptors    uint32
	SizeOfAlignPad         uint32
	Descriptors            []FunctionTableDescriptor
}

// FunctionTable returns the FunctionTableStream.
func (f *File) FunctionTable() (*FunctionTable, error) {
	return f.funcTable.get(func() (*FunctionTable, error) {
		b, off, err := f.streamBytes(FunctionTableStream)
		if err != nil {
			return nil, err
		}
		const what = "function table"
		if len(b) < 24 {
			return nil, formatErr(off, what, ErrTruncated, "%d bytes", len(b))
		}
		t := &FunctionTable{SizeOfHeader: le.Uint32(b), SizeOfDescriptor: le.Uint32(b[4:]), SizeOfNativeDescriptor: le.Uint32(b[8:]),
			SizeOfFunctionEntry: le.Uint32(b[12:]), NumberOfDescriptors: le.Uint32(b[16:]), SizeOfAlignPad: le.Uint32(b[20:])}
		if t.SizeOfHeader < 24 || t.SizeOfDescriptor < 32 || t.SizeOfHeader > uint32(len(b)) ||
			t.SizeOfDescriptor > 1<<16 || t.SizeOfNativeDescriptor > 1<<16 || t.SizeOfFunctionEntry > 1<<16 || t.SizeOfAlignPad > 1<<16 {
			return nil, formatErr(off, what, nil, "header sizes %d/%d/%d/%d", t.SizeOfHeader, t.SizeOfDescriptor, t.SizeOfNativeDescriptor, t.SizeOfFunctionEntry)
		}
		if t.NumberOfDescriptors > maxListEntries {
			return nil, formatErr(off+16, what, ErrTooLarge, "%d descriptors", t.NumberOfDescriptors)
		}
		pos := int64(t.SizeOfHeader)
		for i := uint32(0); i < t.NumberOfDescriptors; i++ {
			if pos+int64(t.SizeOfDescriptor) > int64(len(b)) {
				return t, formatErr(off+pos, what, ErrTruncated, "descriptor %d of %d", i, t.NumberOfDescriptors)
			}
			d := FunctionTableDescriptor{MinimumAddress: le.Uint64(b[pos:]), MaximumAddress: le.Uint64(b[pos+8:]),
				BaseAddress: le.Uint64(b[pos+16:]), EntryCount: le.Uint32(b[pos+24:])}
			pad := int64(le.Uint32(b[pos+28:]))
			pos += int64(t.SizeOfDescriptor)
			entries := int64(d.EntryCount) * int64(t.SizeOfFunctionEntry)
			if pad > 1<<16 || pos+int64(t.SizeOfNativeDescriptor)+entries+pad > int64(len(b)) {
				return t, formatErr(off+pos, what, ErrTruncated, "descriptor %d: %d entries", i, d.EntryCount)
			}
			d.NativeDescriptor = b[pos : pos+int64(t.SizeOfNativeDescriptor)]
			pos += int64(t.SizeOfNativeDescriptor)
			d.Entries = b[pos : pos+entries]
			pos += entries + pad
			t.Descriptors = append(t.Descriptors, d)
		}
		return t, nil
	})
}

// SystemMemoryInfo is MINIDUMP_SYSTEM_MEMORY_INFO_1's revision, flags and
// MINIDUMP_SYSTEM_BASIC_INFORMATION; Raw holds the whole stream for the
// file-cache and performance blocks that follow.
type SystemMemoryInfo struct {
	Revision                     uint16
	Flags                        uint16
	TimerResolution              uint32
	PageSize                     uint32
	NumberOfPhysicalPages        uint32
	LowestPhysicalPageNumber     uint32
	HighestPhysicalPageNumber    uint32
	AllocationGranularity        uint32
	MinimumUserModeAddress       uint64
	MaximumUserModeAddress       uint64
	ActiveProcessorsAffinityMask uint64
	NumberOfProcessors           uint32
	Raw                          []byte
}

// SystemMemoryInfo returns the SystemMemoryInfoStream.
func (f *File) SystemMemoryInfo() (*SystemMemoryInfo, error) {
	return f.sysMemInfo.get(func() (*SystemMemoryInfo, error) {
		b, off, err := f.streamBytes(SystemMemoryInfoStream)
		if err != nil {
			return nil, err
		}
		if len(b) < 0x38 {
			return nil, formatErr(off, "system memory info", ErrTruncated, "%d bytes", len(b))
		}
		return &SystemMemoryInfo{
			Revision: le.Uint16(b), Flags: le.Uint16(b[2:]),
			TimerResolution: le.Uint32(b[4:]), PageSize: le.Uint32(b[8:]), NumberOfPhysicalPages: le.Uint32(b[12:]),
			LowestPhysicalPageNumber: le.Uint32(b[16:]), HighestPhysicalPageNumber: le.Uint32(b[20:]),
			AllocationGranularity: le.Uint32(b[24:]), MinimumUserModeAddress: le.Uint64(b[28:]),
			MaximumUserModeAddress: le.Uint64(b[36:]), ActiveProcessorsAffinityMask: le.Uint64(b[44:]),
			NumberOfProcessors: le.Uint32(b[52:]), Raw: b,
		}, nil
	})
}

// ProcessVMCounters is MINIDUMP_PROCESS_VM_COUNTERS_1 or _2 (Revision).
// Fields a revision or its Flags do not cover are zero.
type ProcessVMCounters struct {
	Revision                   uint16
	Flags                      uint16 // revision 2
	PageFaultCount             uint32
	PeakWorkingSetSize         uint64
	WorkingSetSize             uint64
	QuotaPeakPagedPoolUsage    uint64
	QuotaPagedPoolUsage        uint64
	QuotaPeakNonPagedPoolUsage uint64
	QuotaNonPagedPoolUsage     uint64
	PagefileUsage              uint64
	PeakPagefileUsage          uint64
	PeakVirtualSize            uint64 // revision 2
	VirtualSize                uint64 // revision 2
	PrivateUsage               uint64
	PrivateWorkingSetSize      uint64 // revision 2
	SharedCommitUsage          uint64 // revision 2
	JobSharedCommitUsage       uint64 // revision 2
	JobPrivateCommitUsage      uint64 // revision 2
	JobPeakPrivateCommitUsage  uint64 // revision 2
	JobPrivateCommitLimit      uint64 // revision 2
	JobTotalCommitLimit        uint64 // revision 2
}

// ProcessVMCounters returns the ProcessVmCountersStream.
func (f *File) ProcessVMCounters() (*ProcessVMCounters, error) {
	return f.vmCounters.get(func() (*ProcessVMCounters, error) {
		b, off, err := f.streamBytes(ProcessVmCountersStream)
		if err != nil {
			return nil, err
		}
		const what = "process VM counters"
		if len(b) < 0x50 {
			return nil, formatErr(off, what, ErrTruncated, "%d bytes", len(b))
		}
		c := &ProcessVMCounters{Revision: le.Uint16(b)}
		u := func(o int) uint64 { return le.Uint64(b[o:]) }
		c.PageFaultCount = le.Uint32(b[4:])
		c.PeakWorkingSetSize, c.WorkingSetSize = u(8), u(0x10)
		c.QuotaPeakPagedPoolUsage, c.QuotaPagedPoolUsage = u(0x18), u(0x20)
		c.QuotaPeakNonPagedPoolUsage, c.QuotaNonPagedPoolUsage = u(0x28), u(0x30)
		c.PagefileUsage, c.PeakPagefileUsage = u(0x38), u(0x40)
		if c.Revision < 2 {
			c.PrivateUsage = u(0x48)
			return c, nil
		}
		if len(b) < 0x98 {
			return nil, formatErr(off, what, ErrTruncated, "revision %d in %d bytes", c.Revision, len(b))
		}
		c.Flags = le.Uint16(b[2:])
		c.PeakVirtualSize, c.VirtualSize, c.PrivateUsage = u(0x48), u(0x50), u(0x58)
		c.PrivateWorkingSetSize, c.SharedCommitUsage = u(0x60), u(0x68)
		c.JobSharedCommitUsage, c.JobPrivateCommitUsage, c.JobPeakPrivateCommitUsage = u(0x70), u(0x78), u(0x80)
		c.JobPrivateCommitLimit, c.JobTotalCommitLimit = u(0x88), u(0x90)
		return c, nil
	})
}

// BreakpadInfo is MDRawBreakpadInfo (BreakpadInfoStream).
type BreakpadInfo struct {
	Validity           uint32 // 1: DumpThreadID valid, 2: RequestingThreadID valid
	DumpThreadID       uint32 // the thread that wrote the dump
	RequestingThreadID uint32 // the thread that crashed or asked for the dump
}

// Breakpad validity bits.
const (
	BreakpadDumpThreadIDValid       = 1
	BreakpadRequestingThreadIDValid = 2
)

// BreakpadInfo returns the BreakpadInfoStream.
func (f *File) BreakpadInfo() (*BreakpadInfo, error) {
	return f.breakpadInfo.get(func() (*BreakpadInfo, error) {
		b, off, err := f.streamBytes(BreakpadInfoStream)
		if err != nil {
			return nil, err
		}
		if len(b) < 12 {
			return nil, formatErr(off, "Breakpad info", ErrTruncated, "%d bytes", len(b))
		}
		return &BreakpadInfo{Validity: le.Uint32(b), DumpThreadID: le.Uint32(b[4:]), RequestingThreadID: le.Uint32(b[8:])}, nil
	})
}

// AssertionInfo is MDRawAssertionInfo (Breakpad's invalid-parameter and
// pure-virtual-call reports).
type AssertionInfo struct {
	Expression string
	Function   string
	File       string
	Line       uint32
	Type       uint32 // 1 invalid parameter, 2 pure virtual call
}

// AssertionInfo returns the BreakpadAssertionInfo stream.
func (f *File) AssertionInfo() (*AssertionInfo, error) {
	return f.assertion.get(func() (*AssertionInfo, error) {
		b, off, err := f.streamBytes(BreakpadAssertionInfo)
		if err != nil {
			return nil, err
		}
		if len(b) < 776 {
			return nil, formatErr(off, "assertion info", ErrTruncated, "%d bytes, need 776", len(b))
		}
		return &AssertionInfo{Expression: utf16String(b[0:256]), Function: utf16String(b[256:512]), File: utf16String(b[512:768]),
			Line: le.Uint32(b[768:]), Type: le.Uint32(b[772:])}, nil
	})
}
