// Package minidumptest builds synthetic user-mode minidumps for tests of
// code that reads them (kdump/minidump, the kdump adapter, triage): a
// Builder describes threads, modules, memory and an exception, and Bytes
// lays them out as an MDMP file.
package minidumptest

import (
	"encoding/binary"
	"unicode/utf16"

	"github.com/kdtriage/kdtriage/kdump/minidump"
)

// Module is a loaded image with a CodeView RSDS record (when PDBName is set).
type Module struct {
	Path          string // full path; the base name is the module name
	Base          uint64
	Size          uint32
	TimeDateStamp uint32
	CheckSum      uint32
	PDBName       string
	GUID          minidump.GUID
	Age           uint32
}

// Thread is a thread with its stack bytes (stored at StackStart) and its
// CONTEXT record.
type Thread struct {
	ID         uint32
	Teb        uint64
	StackStart uint64
	Stack      []byte
	Context    []byte
}

// Exception is the exception stream's record and context.
type Exception struct {
	ThreadID    uint32
	Code        uint32
	Flags       uint32
	Address     uint64
	Information []uint64 // at most 15 values
	Context     []byte
}

// Memory is a range of process memory stored in the memory list.
type Memory struct {
	Start uint64
	Data  []byte
}

// Stream is an extra stream written as given.
type Stream struct {
	Type minidump.StreamType
	Data []byte
}

// Builder describes a minidump. The zero value (plus whatever the test
// sets) is a valid x64 Windows 10 dump.
type Builder struct {
	Flags minidump.DumpFlags
	// Arch defaults to ArchAMD64 when Arch and Platform are both zero;
	// ArchX86 is 0, so an x86 dump must also set Platform.
	Arch         minidump.ProcessorArch
	Platform     minidump.Platform // default PlatformWinNT
	Major, Minor uint32            // default 10.0
	Build        uint32            // default 19045
	CSDVersion   string
	Processors   uint8
	ProcessID    uint32 // written in a MISC_INFO stream when non-zero
	TimeStamp    uint32
	Threads      []Thread
	Modules      []Module
	Memory       []Memory
	Exception    *Exception
	Streams      []Stream
}

type writer struct {
	b   []byte
	dir [][3]uint32
}

func (w *writer) blob(data []byte) uint32 {
	for len(w.b)%4 != 0 {
		w.b = append(w.b, 0)
	}
	rva := uint32(len(w.b))
	w.b = append(w.b, data...)
	return rva
}

func (w *writer) str(s string) uint32 {
	u := utf16.Encode([]rune(s))
	b := binary.LittleEndian.AppendUint32(nil, uint32(2*len(u)))
	for _, c := range u {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return w.blob(append(b, 0, 0))
}

func (w *writer) stream(t minidump.StreamType, data []byte) {
	rva := w.blob(data)
	w.dir = append(w.dir, [3]uint32{uint32(t), uint32(len(data)), rva})
}

type le []byte

func (b le) u16(v uint16) le { return binary.LittleEndian.AppendUint16(b, v) }
func (b le) u32(v uint32) le { return binary.LittleEndian.AppendUint32(b, v) }
func (b le) u64(v uint64) le { return binary.LittleEndian.AppendUint64(b, v) }

// Bytes lays the dump out: header, streams (system info, misc info,
// threads, modules, memory list, exception, extra streams), directory.
func (bd *Builder) Bytes() []byte {
	w := &writer{b: make([]byte, minidump.HeaderSize)}
	arch, plat := bd.Arch, bd.Platform
	if plat == 0 && arch == 0 {
		arch = minidump.ArchAMD64
	}
	if plat == 0 {
		plat = minidump.PlatformWinNT
	}
	major, build := bd.Major, bd.Build
	if major == 0 {
		major, build = 10, 19045
	}
	cpus := bd.Processors
	if cpus == 0 {
		cpus = 1
	}
	var csd uint32
	if bd.CSDVersion != "" {
		csd = w.str(bd.CSDVersion)
	}
	si := le(nil).u16(uint16(arch)).u16(6).u16(0)
	si = append(si, cpus, 1)
	si = si.u32(major).u32(bd.Minor).u32(build).u32(uint32(plat)).u32(csd).u16(0).u16(0)
	si = append(si, make([]byte, 24)...)
	w.stream(minidump.SystemInfoStream, si)

	if bd.ProcessID != 0 {
		mi := le(nil).u32(minidump.MiscInfoSize1).u32(minidump.MiscInfoProcessID).u32(bd.ProcessID).u32(bd.TimeStamp).u32(0).u32(0)
		w.stream(minidump.MiscInfoStream, mi)
	}

	// Memory: explicit ranges plus every thread's stack.
	type desc struct {
		start uint64
		size  uint32
		rva   uint32
	}
	var mems []desc
	tl := le(nil).u32(uint32(len(bd.Threads)))
	for _, t := range bd.Threads {
		stackRva := w.blob(t.Stack)
		ctxRva := w.blob(t.Context)
		if len(t.Stack) > 0 {
			mems = append(mems, desc{t.StackStart, uint32(len(t.Stack)), stackRva})
		}
		tl = tl.u32(t.ID).u32(0).u32(0x20).u32(0).u64(t.Teb).
			u64(t.StackStart).u32(uint32(len(t.Stack))).u32(stackRva).u32(uint32(len(t.Context))).u32(ctxRva)
	}
	if len(bd.Threads) > 0 {
		w.stream(minidump.ThreadListStream, tl)
	}

	if len(bd.Modules) > 0 {
		type locs struct{ name, cvRva, cvLen uint32 }
		ls := make([]locs, len(bd.Modules))
		for i, m := range bd.Modules {
			ls[i].name = w.str(m.Path)
			if m.PDBName != "" {
				cv := le(nil).u32(minidump.CVSignatureRSDS).u32(m.GUID.Data1).u16(m.GUID.Data2).u16(m.GUID.Data3)
				cv = append(cv, m.GUID.Data4[:]...)
				cv = cv.u32(m.Age)
				cv = append(cv, m.PDBName...)
				cv = append(cv, 0)
				ls[i].cvRva, ls[i].cvLen = w.blob(cv), uint32(len(cv))
			}
		}
		ml := le(nil).u32(uint32(len(bd.Modules)))
		for i, m := range bd.Modules {
			ml = ml.u64(m.Base).u32(m.Size).u32(m.CheckSum).u32(m.TimeDateStamp).u32(ls[i].name)
			ml = append(ml, make([]byte, 52)...) // VS_FIXEDFILEINFO: none
			ml = ml.u32(ls[i].cvLen).u32(ls[i].cvRva).u32(0).u32(0).u64(0).u64(0)
		}
		w.stream(minidump.ModuleListStream, ml)
	}

	for _, m := range bd.Memory {
		mems = append(mems, desc{m.Start, uint32(len(m.Data)), w.blob(m.Data)})
	}
	if len(mems) > 0 {
		mm := le(nil).u32(uint32(len(mems)))
		for _, d := range mems {
			mm = mm.u64(d.start).u32(d.size).u32(d.rva)
		}
		w.stream(minidump.MemoryListStream, mm)
	}

	if e := bd.Exception; e != nil {
		ctxRva := w.blob(e.Context)
		n := min(len(e.Information), minidump.MaxExceptionParameters)
		ex := le(nil).u32(e.ThreadID).u32(0).u32(e.Code).u32(e.Flags).u64(0).u64(e.Address).u32(uint32(n)).u32(0)
		for i := range minidump.MaxExceptionParameters {
			var v uint64
			if i < n {
				v = e.Information[i]
			}
			ex = ex.u64(v)
		}
		ex = ex.u32(uint32(len(e.Context))).u32(ctxRva)
		w.stream(minidump.ExceptionStream, ex)
	}

	for _, s := range bd.Streams {
		w.stream(s.Type, s.Data)
	}

	for len(w.b)%4 != 0 {
		w.b = append(w.b, 0)
	}
	dirRva := uint32(len(w.b))
	for _, d := range w.dir {
		w.b = le(w.b).u32(d[0]).u32(d[1]).u32(d[2])
	}
	h := le(nil).u32(minidump.Signature).u32(minidump.Version).u32(uint32(len(w.dir))).u32(dirRva).u32(0).u32(bd.TimeStamp).u64(uint64(bd.Flags))
	copy(w.b, h)
	return w.b
}

// X64Context returns an AMD64 CONTEXT (0x4D0 bytes) with RIP, RSP and RBP
// set and ContextFlags CONTEXT_FULL.
func X64Context(rip, rsp, rbp uint64) []byte {
	b := make([]byte, 0x4D0)
	binary.LittleEndian.PutUint32(b[0x30:], 0x10000B)
	binary.LittleEndian.PutUint16(b[0x38:], 0x33) // SegCs
	binary.LittleEndian.PutUint64(b[0x98:], rsp)
	binary.LittleEndian.PutUint64(b[0xA0:], rbp)
	binary.LittleEndian.PutUint64(b[0xF8:], rip)
	return b
}

// X86Context returns an x86 CONTEXT (0x2CC bytes) with EIP, ESP and EBP set
// and ContextFlags CONTEXT_FULL.
func X86Context(eip, esp, ebp uint32) []byte {
	b := make([]byte, 0x2CC)
	binary.LittleEndian.PutUint32(b[0:], 0x10007)
	binary.LittleEndian.PutUint32(b[0xB4:], ebp)
	binary.LittleEndian.PutUint32(b[0xB8:], eip)
	binary.LittleEndian.PutUint32(b[0xBC:], 0x1B) // SegCs
	binary.LittleEndian.PutUint32(b[0xC4:], esp)
	return b
}
