package kdump

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/kdtriage/kdtriage/kdump/minidump"
)

// ErrLegacyUserDump means the file is a legacy full user-mode dump
// (USERDUMP or USERDU64) that could not be read; see LegacyUserDumpError.
var ErrLegacyUserDump = errors.New("legacy USERDUMP/USERDU64 user-mode dump")

// OpenAny opens a kernel dump (as *File), a user-mode MDMP minidump (as
// *UserDump) or a legacy USERDUMP/USERDU64 full user-mode dump (as
// *LegacyUserDump; a legacy file that cannot be read gives a
// *LegacyUserDumpError that names it). Close the Dump when done.
func OpenAny(path string) (Dump, error) {
	fh, size, err := openSized(path)
	if err != nil {
		return nil, err
	}
	format, err := Sniff(fh, size)
	if err != nil {
		fh.Close()
		return nil, &FormatError{Offset: 0, What: "signature", Msg: "cannot read", Err: err}
	}
	if format == FormatMDMP {
		// minidump.Open reads small files into memory at once.
		fh.Close()
		mf, err := minidump.Open(path)
		if err != nil {
			return nil, wrapMinidumpErr(err)
		}
		return NewUserDump(mf), nil
	}
	d, err := newAny(fh, size, format)
	if err != nil {
		fh.Close()
		return nil, err
	}
	switch d := d.(type) {
	case *File:
		d.closer = fh
	case *LegacyUserDump:
		d.closer = fh
	}
	return d, nil
}

// NewAny reads a kernel dump, a user-mode MDMP minidump or a legacy
// USERDUMP/USERDU64 dump from r, which holds size bytes. Legacy files that
// cannot be read give a *LegacyUserDumpError; other files the errors of
// NewFile.
func NewAny(r io.ReaderAt, size int64) (Dump, error) {
	format, err := Sniff(r, size)
	if err != nil {
		return nil, &FormatError{Offset: 0, What: "signature", Msg: "cannot read", Err: err}
	}
	return newAny(r, size, format)
}

func newAny(r io.ReaderAt, size int64, format Format) (Dump, error) {
	switch format {
	case FormatMDMP:
		mf, err := minidump.NewFile(r, size)
		if err != nil {
			return nil, wrapMinidumpErr(err)
		}
		return NewUserDump(mf), nil
	case FormatUserDump64, FormatUserDump32:
		d, err := parseLegacyUserDump(r, size, format)
		if err != nil {
			return nil, &LegacyUserDumpError{Format: format, Problem: err.Error()}
		}
		if d.info.Problem != "" {
			return nil, &d.info
		}
		return d, nil
	}
	return NewFile(r, size)
}

// wrapMinidumpErr turns a *minidump.FormatError into a *FormatError that
// unwraps to it (so errors.As works for both types and errors.Is finds the
// minidump sentinels).
func wrapMinidumpErr(err error) error {
	var me *minidump.FormatError
	if errors.As(err, &me) {
		return &FormatError{Offset: me.Offset, What: "minidump " + me.What, Msg: me.Msg, Err: minidumpCause{me}}
	}
	return err
}

// minidumpCause is the Err of a *FormatError made from a
// *minidump.FormatError: it prints only the cause (the message is already
// in the FormatError) and unwraps to the minidump error.
type minidumpCause struct{ fe *minidump.FormatError }

func (c minidumpCause) Error() string {
	if c.fe.Err != nil {
		return c.fe.Err.Error()
	}
	return "malformed minidump"
}

func (c minidumpCause) Unwrap() error { return c.fe }

// UserDump is a user-mode MDMP minidump opened by OpenAny or NewAny: it
// implements Dump over a *minidump.File, which Minidump returns for
// everything else the format holds.
type UserDump struct {
	f       *minidump.File
	machine Machine
	arch    minidump.ProcessorArch
}

// NewUserDump wraps an open minidump.
func NewUserDump(f *minidump.File) *UserDump {
	u := &UserDump{f: f, arch: minidump.ArchUnknown}
	if si, err := f.SystemInfo(); err == nil {
		u.arch = si.ProcessorArchitecture
		u.machine = MachineFromArch(si.ProcessorArchitecture)
	}
	return u
}

// MachineFromArch maps a minidump processor architecture to a Machine
// (MachineUnknown for architectures without a Windows CONTEXT layout).
func MachineFromArch(a minidump.ProcessorArch) Machine {
	switch a {
	case minidump.ArchX86, minidump.ArchIA32OnWin64:
		return MachineI386
	case minidump.ArchAMD64:
		return MachineAMD64
	case minidump.ArchARM64, minidump.ArchARM64Old:
		return MachineARM64
	case minidump.ArchARM, minidump.ArchARM32OnWin64:
		return MachineARMNT
	}
	return MachineUnknown
}

// Minidump returns the underlying minidump.
func (u *UserDump) Minidump() *minidump.File { return u.f }

// Format returns FormatMDMP.
func (u *UserDump) Format() Format { return FormatMDMP }

// Machine returns the process's architecture from SystemInfoStream.
func (u *UserDump) Machine() Machine { return u.machine }

// Modules returns the module list in the order stored (the executable
// first). Name is the base name, Path the full path.
func (u *UserDump) Modules() ([]Module, error) {
	ms, err := u.f.Modules()
	if err != nil {
		return nil, wrapMinidumpErr(err)
	}
	out := make([]Module, len(ms))
	for i := range ms {
		m := &ms[i]
		out[i] = Module{Name: m.BaseName(), Path: m.Name, Base: m.Base, Size: m.Size, TimeDateStamp: m.TimeDateStamp, CheckSum: m.CheckSum}
	}
	return out, nil
}

// UnloadedModules returns the UnloadedModuleListStream as kdump values
// (nil when the dump has none).
func (u *UserDump) UnloadedModules() ([]UnloadedModule, error) {
	if !u.f.HasStream(minidump.UnloadedModuleListStream) {
		return nil, nil
	}
	um, err := u.f.UnloadedModules()
	if err != nil {
		return nil, wrapMinidumpErr(err)
	}
	out := make([]UnloadedModule, len(um))
	for i, m := range um {
		out[i] = UnloadedModule{Name: m.Name, Start: m.Base, End: m.Base + uint64(m.Size)}
	}
	return out, nil
}

// Context returns the crashing thread's context: the exception stream's
// context, else the context of the first thread in the thread list.
func (u *UserDump) Context() (*Context, error) {
	if e, err := u.f.Exception(); err == nil && e.Context.DataSize > 0 {
		c, cerr := u.decodeContext(e.Context)
		if cerr == nil {
			return c, nil
		}
	}
	ths, err := u.f.Threads()
	if err != nil {
		return nil, wrapMinidumpErr(err)
	}
	if len(ths) == 0 {
		return nil, formatErr(-1, "thread list", "the dump has no threads").wrap(ErrNotPresent)
	}
	return u.decodeContext(ths[0].Context)
}

// ThreadContext returns the decoded context of the thread with the given id.
func (u *UserDump) ThreadContext(id uint32) (*Context, error) {
	th, err := u.f.Thread(id)
	if err != nil {
		return nil, wrapMinidumpErr(err)
	}
	return u.decodeContext(th.Context)
}

func (u *UserDump) decodeContext(l minidump.Location) (*Context, error) {
	b, err := u.f.ContextBytes(l)
	if err != nil {
		return nil, wrapMinidumpErr(err)
	}
	if u.arch == minidump.ArchARM64Old {
		return parseBreakpadARM64Old(b, int64(l.Rva))
	}
	if u.machine == MachineUnknown {
		return nil, formatErr(int64(l.Rva), "context record", "no CONTEXT layout for processor architecture %v", u.arch).wrap(ErrUnsupported)
	}
	c, err := ParseContext(u.machine, b)
	if err != nil {
		return nil, &FormatError{Offset: int64(l.Rva), What: "context record", Msg: "cannot decode", Err: err}
	}
	return c, nil
}

// parseBreakpadARM64Old decodes Breakpad's pre-Windows ARM64 context
// (architecture 0x8003): u64 context_flags, u64 iregs[32] (X0..X30, SP),
// u64 pc, u32 cpsr.
func parseBreakpadARM64Old(b []byte, off int64) (*Context, error) {
	if len(b) < 0x114 {
		return nil, formatErr(off, "context record", "old ARM64 context of %#x bytes, need 0x114", len(b))
	}
	c := &Context{Machine: MachineARM64, Flags: uint32(binary.LittleEndian.Uint64(b))}
	for i := range 32 {
		c.GPR[i] = binary.LittleEndian.Uint64(b[8+8*i:])
	}
	c.PC = binary.LittleEndian.Uint64(b[0x108:])
	c.Status = binary.LittleEndian.Uint32(b[0x110:])
	return c, nil
}

// Memory returns the memory the minidump stores (MemoryListStream and
// Memory64ListStream). Reads outside it fail with a *MemoryError wrapping
// ErrNotPresent.
func (u *UserDump) Memory() Memory {
	m, _ := u.f.Memory() // a broken list still yields the ranges that could be read
	return userMemory{m}
}

// ProcessName returns the main module's base name, e.g. "App.exe".
func (u *UserDump) ProcessName() (string, error) {
	if n := u.f.ProcessName(); n != "" {
		return n, nil
	}
	return "", formatErr(-1, "module list", "no main module").wrap(ErrNotPresent)
}

// Close closes the underlying file if it was opened by OpenAny.
func (u *UserDump) Close() error { return u.f.Close() }

var _ Dump = (*UserDump)(nil)

// userMemory adapts *minidump.Memory to Memory and Ranger, translating its
// errors to *MemoryError values.
type userMemory struct{ m *minidump.Memory }

// ReadVirtual implements Memory.
func (um userMemory) ReadVirtual(p []byte, addr uint64) (int, error) {
	if um.m == nil {
		return 0, &MemoryError{Addr: addr, Err: ErrNotPresent}
	}
	n, err := um.m.ReadVirtual(p, addr)
	if err == nil {
		return n, nil
	}
	var me *minidump.MemoryError
	if errors.As(err, &me) {
		if errors.Is(me.Err, minidump.ErrNotPresent) {
			return n, &MemoryError{Addr: me.Addr, Err: ErrNotPresent}
		}
		return n, &MemoryError{Addr: me.Addr, Err: wrapMinidumpErr(me.Err)}
	}
	return n, &MemoryError{Addr: addr + uint64(n), Err: err}
}

// Ranges implements Ranger.
func (um userMemory) Ranges() []Range {
	if um.m == nil {
		return nil
	}
	rs := um.m.Ranges()
	out := make([]Range, len(rs))
	for i, r := range rs {
		out[i] = Range{Start: r.Start, End: r.End(), Source: "minidump memory"}
	}
	return out
}

// LegacyUserDumpError describes a legacy full user-mode dump (USERDUMP or
// USERDU64, USERMODE_CRASHDUMP_HEADER32/64 as published in Microsoft
// Research's Singularity Dump.h), which kdtriage does not analyse. The
// fields hold what its header says; Err wraps ErrLegacyUserDump and
// ErrUnsupported.
type LegacyUserDumpError struct {
	Format            Format // FormatUserDump64 or FormatUserDump32
	MajorVersion      uint32
	MinorVersion      uint32
	Machine           Machine
	ThreadCount       uint32
	ModuleCount       uint32
	MemoryRegionCount uint32
	// ExceptionCode and ExceptionAddress come from the dump's debug event
	// when it is an exception event (HasException).
	HasException     bool
	ProcessID        uint32
	ThreadID         uint32
	ExceptionCode    uint32
	ExceptionAddress uint64
	// Modules lists the image paths of the module list (first the
	// executable), when readable.
	Modules []string
	// Problem says which part of the header could not be read, if any.
	Problem string
}

// Error says what the file is, what its header holds and what to do.
func (e *LegacyUserDumpError) Error() string {
	sig, bits := "USERDU64", "64"
	if e.Format == FormatUserDump32 {
		sig, bits = "USERDUMP", "32"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: a legacy %s-bit full user-mode dump (the pre-minidump format of userdump.exe and the debuggers' .dump /f)", sig, bits)
	if e.Problem == "" || e.Machine != 0 {
		fmt.Fprintf(&b, "; process %v, header version %d/%#x, %d threads, %d modules", e.Machine, e.MajorVersion, e.MinorVersion, e.ThreadCount, e.ModuleCount)
		if len(e.Modules) > 0 {
			fmt.Fprintf(&b, ", executable %s", baseName(e.Modules[0]))
		}
		if e.HasException {
			fmt.Fprintf(&b, ", exception %#08x at %#x in thread %#x", e.ExceptionCode, e.ExceptionAddress, e.ThreadID)
		}
	}
	if e.Problem != "" {
		fmt.Fprintf(&b, " (%s)", e.Problem)
	}
	b.WriteString(": analysis needs an MDMP minidump; open the file in WinDbg and write one with .dump /ma")
	return b.String()
}

// Unwrap returns ErrLegacyUserDump and ErrUnsupported.
func (e *LegacyUserDumpError) Unwrap() []error { return []error{ErrLegacyUserDump, ErrUnsupported} }

// Limits for legacy user dumps.
const (
	maxLegacyModules    = 4096
	maxLegacyModuleName = 1024
	maxLegacyThreads    = 1 << 16
	maxLegacyRegions    = 1 << 20
)

// LegacyRegion is one MEMORY_BASIC_INFORMATION of a legacy user dump, with
// the file offset of its bytes (the dump stores the bytes of every listed
// region, back to back from DataOffset).
type LegacyRegion struct {
	Base, AllocationBase uint64
	AllocationProtect    uint32
	Size                 uint64
	State, Protect, Type uint32
	Offset               int64
}

// LegacyThread is a CRASH_THREAD entry with the file offset of its CONTEXT.
type LegacyThread struct {
	ID, SuspendCount, PriorityClass, Priority uint32
	Teb                                       uint64
	ContextOffset                             int64
}

// LegacyUserDump is a legacy full user-mode dump (USERDUMP or USERDU64):
// header, debug event, threads with their contexts, modules and every
// memory region of the process. It implements Dump. OpenAny reports these
// files with a *LegacyUserDumpError; open them with OpenLegacyUserDump or
// NewLegacyUserDump to read them.
type LegacyUserDump struct {
	r      io.ReaderAt
	size   int64
	closer io.Closer
	info   LegacyUserDumpError
	thread []LegacyThread
	mods   []Module
	region []LegacyRegion
	mem    *legacyMemory
}

// OpenLegacyUserDump opens a USERDUMP/USERDU64 file. Close it when done.
func OpenLegacyUserDump(path string) (*LegacyUserDump, error) {
	fh, size, err := openSized(path)
	if err != nil {
		return nil, err
	}
	d, err := NewLegacyUserDump(fh, size)
	if err != nil {
		fh.Close()
		return nil, err
	}
	d.closer = fh
	return d, nil
}

// NewLegacyUserDump reads a USERDUMP/USERDU64 dump from r. Errors are
// *FormatError values (ErrNotADump for other files).
func NewLegacyUserDump(r io.ReaderAt, size int64) (*LegacyUserDump, error) {
	format, err := Sniff(r, size)
	if err != nil {
		return nil, &FormatError{Offset: 0, What: "signature", Msg: "cannot read", Err: err}
	}
	if format != FormatUserDump64 && format != FormatUserDump32 {
		return nil, formatErr(0, "signature", "not a USERDUMP/USERDU64 file (%v)", format).wrap(ErrNotADump)
	}
	d, err := parseLegacyUserDump(r, size, format)
	if err != nil {
		return nil, err
	}
	if d.info.Problem != "" {
		return nil, formatErr(-1, "legacy user dump", "%s", d.info.Problem)
	}
	return d, nil
}

// Info returns what the header and debug event say (the same fields OpenAny
// reports in its *LegacyUserDumpError).
func (d *LegacyUserDump) Info() *LegacyUserDumpError { return &d.info }

// Format returns FormatUserDump64 or FormatUserDump32.
func (d *LegacyUserDump) Format() Format { return d.info.Format }

// Machine returns the header's MachineImageType.
func (d *LegacyUserDump) Machine() Machine { return d.info.Machine }

// Threads returns the thread states with their context offsets.
func (d *LegacyUserDump) Threads() []LegacyThread { return d.thread }

// Regions returns the memory regions.
func (d *LegacyUserDump) Regions() []LegacyRegion { return d.region }

// Modules returns the module list; TimeDateStamp and CheckSum come from
// each image's PE header in the dump's memory when it is there.
func (d *LegacyUserDump) Modules() ([]Module, error) { return d.mods, nil }

// Context returns the context of the thread of the debug event (the
// faulting thread), else of the first thread.
func (d *LegacyUserDump) Context() (*Context, error) {
	if len(d.thread) == 0 {
		return nil, formatErr(-1, "legacy user dump", "no threads").wrap(ErrNotPresent)
	}
	t := d.thread[0]
	for _, th := range d.thread {
		if d.info.HasException && th.ID == d.info.ThreadID {
			t = th
		}
	}
	return d.ThreadContext(t)
}

// ThreadContext decodes a thread's CONTEXT.
func (d *LegacyUserDump) ThreadContext(t LegacyThread) (*Context, error) {
	b := make([]byte, ContextSize(d.info.Machine))
	if err := readAt(d.r, d.size, b, t.ContextOffset, "thread context"); err != nil {
		return nil, err
	}
	c, err := ParseContext(d.info.Machine, b)
	if err != nil {
		return nil, &FormatError{Offset: t.ContextOffset, What: "thread context", Msg: "cannot decode", Err: err}
	}
	return c, nil
}

// Memory returns the process memory.
func (d *LegacyUserDump) Memory() Memory { return d.mem }

// Close closes the file if the dump was opened by OpenLegacyUserDump.
func (d *LegacyUserDump) Close() error {
	if d.closer == nil {
		return nil
	}
	err := d.closer.Close()
	d.closer = nil
	return err
}

var _ Dump = (*LegacyUserDump)(nil)

// legacyMemory reads the regions of a legacy user dump.
type legacyMemory struct {
	r       io.ReaderAt
	regions []LegacyRegion // sorted by Base, non-overlapping
}

// ReadVirtual implements Memory.
func (m *legacyMemory) ReadVirtual(p []byte, addr uint64) (int, error) {
	done := 0
	for done < len(p) {
		a := addr + uint64(done)
		i := sort.Search(len(m.regions), func(i int) bool { return m.regions[i].Base+m.regions[i].Size > a })
		if i == len(m.regions) || m.regions[i].Base > a || a < addr {
			return done, &MemoryError{Addr: a, Err: ErrNotPresent}
		}
		rg := m.regions[i]
		inner := a - rg.Base
		n := min(uint64(len(p)-done), rg.Size-inner)
		got, err := m.r.ReadAt(p[done:done+int(n)], rg.Offset+int64(inner))
		done += got
		if got < int(n) {
			return done, &MemoryError{Addr: addr + uint64(done), Err: &FormatError{Offset: rg.Offset + int64(inner) + int64(got), What: "memory region", Msg: "short read", Err: err}}
		}
	}
	return done, nil
}

// Ranges implements Ranger.
func (m *legacyMemory) Ranges() []Range {
	out := make([]Range, len(m.regions))
	for i, rg := range m.regions {
		out[i] = Range{Start: rg.Base, End: rg.Base + rg.Size, Source: "user dump region"}
	}
	return out
}

// parseLegacyUserDump reads the USERMODE_CRASHDUMP_HEADER32/64 and the
// tables it points to. Parts that cannot be read are described in
// info.Problem; the error is only for files too short for a header.
func parseLegacyUserDump(r io.ReaderAt, size int64, format Format) (*LegacyUserDump, error) {
	d := &LegacyUserDump{r: r, size: size, info: LegacyUserDumpError{Format: format}}
	e := &d.info
	le := binary.LittleEndian
	is64 := format == FormatUserDump64
	hsize, ptr := 0x40, 4
	if is64 {
		hsize, ptr = 0x60, 8
	}
	h := make([]byte, hsize)
	if err := readAt(r, size, h, 0, "legacy user dump header"); err != nil {
		return nil, err
	}
	e.MajorVersion, e.MinorVersion = le.Uint32(h[8:]), le.Uint32(h[12:])
	e.Machine = Machine(le.Uint32(h[16:]))
	e.ThreadCount, e.ModuleCount, e.MemoryRegionCount = le.Uint32(h[20:]), le.Uint32(h[24:]), le.Uint32(h[28:])
	off := func(i int) int64 { // offset fields after the counts
		if is64 {
			return int64(le.Uint64(h[0x20+8*i:]) & (1<<62 - 1))
		}
		return int64(le.Uint32(h[0x20+4*i:]))
	}
	threadOff, moduleOff, dataOff, regionOff, debugEventOff, threadStateOff := off(0), off(1), off(2), off(3), off(4), off(5)
	d.mem = &legacyMemory{r: r}
	problem := func(format string, args ...any) {
		if e.Problem == "" {
			e.Problem = fmt.Sprintf(format, args...)
		}
	}

	// DEBUG_EVENT: code, process id, thread id, then (64-bit: after 4
	// bytes of padding) an EXCEPTION_RECORD for exception events.
	var ev [0x30]byte
	if err := readAt(r, size, ev[:], debugEventOff, "debug event"); err == nil && le.Uint32(ev[0:]) == 1 {
		e.HasException = true
		e.ProcessID, e.ThreadID = le.Uint32(ev[4:]), le.Uint32(ev[8:])
		if is64 {
			e.ExceptionCode = le.Uint32(ev[0x10:])
			e.ExceptionAddress = le.Uint64(ev[0x20:])
		} else {
			e.ExceptionCode = le.Uint32(ev[0x0C:])
			e.ExceptionAddress = uint64(le.Uint32(ev[0x18:]))
		}
	}

	// Module list: packed {base (pointer), u32 size, u32 name length, name}.
	pos := moduleOff
	for i := uint32(0); i < e.ModuleCount && i < maxLegacyModules; i++ {
		var mh [16]byte
		if err := readAt(r, size, mh[:ptr+8], pos, "legacy module list"); err != nil {
			problem("module %d unreadable at %#x", i, pos)
			break
		}
		n := int64(le.Uint32(mh[ptr+4:]))
		if n == 0 || n > maxLegacyModuleName {
			problem("module %d has a name of %d bytes at %#x", i, n, pos)
			break
		}
		name := make([]byte, n)
		if err := readAt(r, size, name, pos+int64(ptr)+8, "legacy module name"); err != nil {
			problem("module %d name unreadable at %#x", i, pos)
			break
		}
		path := cString(name)
		base := le.Uint64(mh[:8])
		if !is64 {
			base = uint64(le.Uint32(mh[:4]))
		}
		e.Modules = append(e.Modules, path)
		d.mods = append(d.mods, Module{Name: baseName(path), Path: path, Base: base, Size: le.Uint32(mh[ptr:])})
		pos += int64(ptr) + 8 + n
	}

	// Memory regions (MEMORY_BASIC_INFORMATION64 or 32), data back to back.
	rsize := int64(28)
	if is64 {
		rsize = 48
	}
	if e.MemoryRegionCount > maxLegacyRegions {
		problem("%d memory regions", e.MemoryRegionCount)
	} else if n := int64(e.MemoryRegionCount); n > 0 && !inFile(uint64(regionOff), uint64(n*rsize), size) {
		problem("memory region table (%d entries at %#x) runs past the end of the file", n, regionOff)
	} else if n > 0 {
		rb := make([]byte, n*rsize)
		if err := readAt(r, size, rb, regionOff, "memory regions"); err != nil {
			problem("memory region table unreadable at %#x", regionOff)
		} else {
			data := dataOff
			for i := range n {
				b := rb[i*rsize:]
				var rg LegacyRegion
				if is64 {
					rg = LegacyRegion{Base: le.Uint64(b), AllocationBase: le.Uint64(b[8:]), AllocationProtect: le.Uint32(b[16:]),
						Size: le.Uint64(b[24:]), State: le.Uint32(b[32:]), Protect: le.Uint32(b[36:]), Type: le.Uint32(b[40:])}
				} else {
					rg = LegacyRegion{Base: uint64(le.Uint32(b)), AllocationBase: uint64(le.Uint32(b[4:])), AllocationProtect: le.Uint32(b[8:]),
						Size: uint64(le.Uint32(b[12:])), State: le.Uint32(b[16:]), Protect: le.Uint32(b[20:]), Type: le.Uint32(b[24:])}
				}
				rg.Offset = data
				if !inFile(uint64(data), rg.Size, size) {
					problem("memory region %d (%#x bytes at %#x) runs past the end of the file", i, rg.Size, data)
					break
				}
				data += int64(rg.Size)
				d.region = append(d.region, rg)
			}
		}
	}
	sorted := slices.Clone(d.region)
	slices.SortFunc(sorted, func(a, b LegacyRegion) int { return cmp.Compare(a.Base, b.Base) })
	for _, rg := range sorted {
		if rg.Size == 0 || rg.Base+rg.Size < rg.Base {
			continue
		}
		if n := len(d.mem.regions); n > 0 && rg.Base < d.mem.regions[n-1].Base+d.mem.regions[n-1].Size {
			continue // overlapping: keep the first
		}
		d.mem.regions = append(d.mem.regions, rg)
	}

	// Threads: CONTEXT records at ThreadOffset, CRASH_THREAD entries at
	// ThreadStateOffset.
	csize := int64(ContextSize(e.Machine))
	tsize := int64(0x30)
	if is64 {
		tsize = 0x50
	}
	if e.ThreadCount > maxLegacyThreads {
		problem("%d threads", e.ThreadCount)
	} else if csize > 0 {
		for i := range int64(e.ThreadCount) {
			var tb [0x18]byte
			if err := readAt(r, size, tb[:], threadStateOff+i*tsize, "thread state"); err != nil {
				problem("thread %d state unreadable", i)
				break
			}
			t := LegacyThread{ID: le.Uint32(tb[:]), SuspendCount: le.Uint32(tb[4:]), PriorityClass: le.Uint32(tb[8:]), Priority: le.Uint32(tb[12:]),
				ContextOffset: threadOff + i*csize}
			if is64 {
				t.Teb = le.Uint64(tb[16:])
			} else {
				t.Teb = uint64(le.Uint32(tb[16:]))
			}
			d.thread = append(d.thread, t)
		}
	}

	// Image time stamps and checksums from the PE headers in memory.
	for i := range d.mods {
		m := &d.mods[i]
		if lfanew, err := ReadU32(d.mem, m.Base+0x3C); err == nil && lfanew < 0x1000 {
			if sig, err := ReadU32(d.mem, m.Base+uint64(lfanew)); err == nil && sig == 0x4550 {
				m.TimeDateStamp, _ = ReadU32(d.mem, m.Base+uint64(lfanew)+8)
				m.CheckSum, _ = ReadU32(d.mem, m.Base+uint64(lfanew)+24+0x40)
			}
		}
	}
	return d, nil
}
