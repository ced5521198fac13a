package kdump

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrKDBGEncoded means the KDBG block in the dump's memory is encoded
// (Windows 8 and later): decoding needs kernel-symbol values, see SetKDBGKeys.
var ErrKDBGEncoded = errors.New("KDBG block is encoded")

// Limits on kernel structures read from dump memory.
const (
	maxModules    = 4096 // PsLoadedModuleList entries walked
	maxProcessors = 4096
	maxKDBGSize   = 0x1000
	// unloadedSlots is MI_UNLOADED_DRIVERS, the size of the kernel's
	// circular array of unloaded-driver records.
	unloadedSlots = 50
)

// LDR_DATA_TABLE_ENTRY offsets (dump-formats §6.2).
type ldrLayout struct {
	size, dllBase, sizeOfImage, fullName, baseName int
}

// ldrLayoutFor returns the layout for pointers of ptrSize bytes.
func ldrLayoutFor(ptrSize int) ldrLayout {
	if ptrSize == 4 {
		return ldrLayout{size: 0x34, dllBase: 0x18, sizeOfImage: 0x20, fullName: 0x24, baseName: 0x2C}
	}
	return ldrLayout{size: 0x68, dllBase: 0x30, sizeOfImage: 0x40, fullName: 0x48, baseName: 0x58}
}

// md returns the memory-bearing part of the dump.
func (f *File) md() *memoryDump {
	md, _ := f.phys.(*memoryDump)
	return md
}

// ptrSize returns the machine's pointer size.
func (f *File) ptrSize() int { return f.hdr.Machine.PointerSize() }

// kptr narrows a KDBG pointer to the machine's width: 32-bit kernels store
// sign-extended 32-bit pointers in the 64-bit KDBG fields.
func (f *File) kptr(v uint64) uint64 {
	if f.ptrSize() == 4 {
		return v & 0xFFFFFFFF
	}
	return v
}

// SetKDBGKeys supplies the kernel globals needed to decode an encoded KDBG
// block (KiWaitNever, KiWaitAlways and the address of KdpDataBlockEncoded,
// from the kernel's symbols). It affects later calls to KDBG and
// CurrentThread on memory-bearing dumps; triage dumps hold a plain copy.
func (f *File) SetKDBGKeys(k KDBGKeys) {
	md := f.md()
	if md == nil {
		return
	}
	ks := &md.kern
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.keys = &k
	ks.kdbg, ks.kdbgErr, ks.kdbgDone = nil, nil, false
	ks.cur, ks.curErr = nil, nil
	ks.mods, ks.modsErr, ks.modsDone = nil, nil, false // the list head may come from KDBG
}

// kernelKDBG reads the KDBG block at the header's KdDebuggerDataBlock.
func (f *File) kernelKDBG() (*KDBG, error) {
	md := f.md()
	ks := &md.kern
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if !ks.kdbgDone {
		ks.kdbg, ks.kdbgErr = f.readKDBG(ks.keys)
		ks.kdbgDone = true
	}
	return ks.kdbg, ks.kdbgErr
}

func (f *File) readKDBG(keys *KDBGKeys) (*KDBG, error) {
	va := f.hdr.KdDebuggerDataBlock
	if !f.validPtr(va) {
		return nil, formatErr(-1, "KDBG", "the header does not give KdDebuggerDataBlock").wrap(ErrNotPresent)
	}
	var hb [0x18]byte
	if _, err := f.mem.ReadVirtual(hb[:], va); err != nil {
		return nil, &FormatError{Offset: -1, What: "KDBG", Msg: fmt.Sprintf("cannot read the block at %#x", va), Err: err}
	}
	le := binary.LittleEndian
	encoded := le.Uint32(hb[0x10:]) != KDBGTag
	if encoded {
		if keys == nil {
			return nil, &FormatError{Offset: -1, What: "KDBG", Err: ErrKDBGEncoded,
				Msg: fmt.Sprintf("owner tag %#x at %#x is not KDBG: the block is encoded; decoding needs KiWaitNever, KiWaitAlways and KdpDataBlockEncoded from the kernel symbols (File.SetKDBGKeys)", le.Uint32(hb[0x10:]), va)}
		}
		if !DecodeKDBG(hb[:], *keys) {
			return nil, &FormatError{Offset: -1, What: "KDBG", Err: ErrKDBGEncoded,
				Msg: fmt.Sprintf("the block at %#x does not decode with the given keys", va)}
		}
	}
	size := le.Uint32(hb[0x14:])
	if size < 0x18 || size > maxKDBGSize {
		return nil, formatErr(-1, "KDBG", "block size %#x at %#x is out of range", size, va)
	}
	// A block cut short by a missing page still gives its first fields;
	// ParseKDBG leaves the rest zero.
	b := make([]byte, (size+7)&^7)
	n, err := f.mem.ReadVirtual(b, va)
	if n < 0x18 {
		return nil, &FormatError{Offset: -1, What: "KDBG", Msg: fmt.Sprintf("cannot read the %#x-byte block at %#x", size, va), Err: err}
	}
	b = b[:min(n, int(size))]
	if encoded {
		DecodeKDBG(b, *keys)
	}
	k, err := ParseKDBG(b, va)
	if err != nil {
		return nil, err
	}
	if f.ptrSize() == 4 {
		narrowKDBG(k)
	}
	return k, nil
}

// narrowKDBG truncates the pointer fields of a 32-bit kernel's KDBG block,
// which stores them sign-extended, to 32 bits.
func narrowKDBG(k *KDBG) {
	for _, p := range []*uint64{&k.KernBase, &k.PsLoadedModuleList, &k.PsActiveProcessHead, &k.MmPfnDatabase,
		&k.NtBuildLab, &k.KiProcessorBlock, &k.MmUnloadedDrivers, &k.MmLastUnloadedDriver, &k.CmNtCSDVersion, &k.PteBase} {
		*p &= 0xFFFFFFFF
	}
}

// kernelModules walks PsLoadedModuleList (dump-formats §6.3). The walk is
// cycle-safe and capped at 4096 entries; when an entry cannot be read the
// modules read so far are returned with the error.
func (f *File) kernelModules() ([]Module, error) {
	md := f.md()
	head := f.hdr.PsLoadedModuleList
	if !f.validPtr(head) {
		// The header's copy is unset: fall back to the KDBG block's.
		if k, err := f.kernelKDBG(); err == nil {
			head = f.kptr(k.PsLoadedModuleList)
		}
	}
	ks := &md.kern
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if !ks.modsDone {
		ks.mods, ks.modsErr = f.walkModules(head)
		ks.modsDone = true
	}
	return append([]Module(nil), ks.mods...), ks.modsErr
}

// validPtr reports whether a header pointer is set (not 0 or the PAGE fill).
func (f *File) validPtr(v uint64) bool {
	return v != 0 && v != pageFill64 && !(f.ptrSize() == 4 && v == pageFill)
}

func (f *File) walkModules(head uint64) ([]Module, error) {
	ptr := f.ptrSize()
	lay := ldrLayoutFor(ptr)
	if !f.validPtr(head) {
		return nil, formatErr(-1, "module list", "the header does not give PsLoadedModuleList").wrap(ErrNotPresent)
	}
	m := f.mem
	cur, err := ReadPointer(m, head, ptr)
	if err != nil {
		return nil, &FormatError{Offset: -1, What: "module list", Msg: fmt.Sprintf("cannot read the list head at %#x", head), Err: err}
	}
	var mods []Module
	seen := make(map[uint64]bool)
	entry := make([]byte, lay.size)
	le := binary.LittleEndian
	prev := head
	for cur != head {
		if seen[cur] {
			return mods, formatErr(-1, "module list", "entry %#x links back to entry %#x after %d modules (corrupt list)", prev, cur, len(mods))
		}
		if len(mods) >= maxModules {
			return mods, formatErr(-1, "module list", "more than %d modules (corrupt list?)", maxModules)
		}
		seen[cur] = true
		if _, err := m.ReadVirtual(entry, cur); err != nil {
			return mods, &FormatError{Offset: -1, What: "module list", Msg: fmt.Sprintf("cannot read entry %d at %#x", len(mods), cur), Err: err}
		}
		mod := Module{Base: ptrAt(entry, lay.dllBase, ptr), Size: le.Uint32(entry[lay.sizeOfImage:])}
		mod.Path, _ = ReadUnicodeString(m, cur+uint64(lay.fullName), ptr)
		mod.Name, _ = ReadUnicodeString(m, cur+uint64(lay.baseName), ptr)
		if mod.Name == "" {
			mod.Name = baseName(mod.Path)
		}
		if ts, sum, size, ok := readPEHeader(m, mod.Base); ok {
			mod.TimeDateStamp, mod.CheckSum = ts, sum
			if mod.Size == 0 {
				mod.Size = size
			}
		}
		mods = append(mods, mod)
		prev, cur = cur, ptrAt(entry, 0, ptr)
	}
	return mods, nil
}

// readPEHeader reads TimeDateStamp, CheckSum and SizeOfImage from the PE
// header of an image mapped at base (dump-formats §6.4).
func readPEHeader(m Memory, base uint64) (ts, sum, size uint32, ok bool) {
	var dos [0x40]byte
	if base == 0 {
		return 0, 0, 0, false
	}
	if _, err := m.ReadVirtual(dos[:], base); err != nil || dos[0] != 'M' || dos[1] != 'Z' {
		return 0, 0, 0, false
	}
	le := binary.LittleEndian
	lfanew := le.Uint32(dos[0x3C:])
	if lfanew < 0x40 || lfanew > 0x1000 {
		return 0, 0, 0, false
	}
	var nt [24 + 68]byte
	if _, err := m.ReadVirtual(nt[:], base+uint64(lfanew)); err != nil || string(nt[:4]) != "PE\x00\x00" {
		return 0, 0, 0, false
	}
	magic := le.Uint16(nt[24:])
	if magic != 0x10B && magic != 0x20B {
		return 0, 0, 0, false
	}
	return le.Uint32(nt[8:]), le.Uint32(nt[24+64:]), le.Uint32(nt[24+56:]), true
}

// kernelUnloadedModules reads the kernel's unloaded-driver records through
// KDBG.MmUnloadedDrivers (a pointer to the kernel's circular array of
// MI_UNLOADED_DRIVERS UNLOADED_DRIVERS records: UNICODE_STRING Name,
// StartAddress, EndAddress, LARGE_INTEGER CurrentTime) and
// KDBG.MmLastUnloadedDriver (the slot the next record goes to). The records
// are returned oldest first: slots [last, 50) hold older records once the
// array has wrapped, slots [0, last) the newest. This layout is not in
// dump-formats.md (it is the public UNLOADED_DRIVERS type); records that do
// not look sane (no name, an empty or huge range) are skipped, and slots
// past MmLastUnloadedDriver that cannot be read are ignored.
func (f *File) kernelUnloadedModules() ([]UnloadedModule, error) {
	k, err := f.kernelKDBG()
	if err != nil {
		return nil, err
	}
	if k.MmUnloadedDrivers == 0 || k.MmLastUnloadedDriver == 0 {
		return nil, nil
	}
	ptr := f.ptrSize()
	m := f.mem
	arr, err := ReadPointer(m, f.kptr(k.MmUnloadedDrivers), ptr)
	if err != nil {
		return nil, &FormatError{Offset: -1, What: "unloaded drivers", Msg: "cannot read MmUnloadedDrivers", Err: err}
	}
	last, err := ReadU32(m, f.kptr(k.MmLastUnloadedDriver))
	if err != nil {
		return nil, &FormatError{Offset: -1, What: "unloaded drivers", Msg: "cannot read MmLastUnloadedDriver", Err: err}
	}
	if arr == 0 {
		return nil, nil
	}
	if last > unloadedSlots {
		return nil, formatErr(-1, "unloaded drivers", "MmLastUnloadedDriver %d exceeds the %d slots", last, unloadedSlots)
	}
	stride, startOff := uint64(0x28), uint64(0x10) // x64: UNICODE_STRING(16) Start End Time
	if ptr == 4 {
		stride, startOff = 0x18, 0x8
	}
	read := func(i uint64) (UnloadedModule, bool, error) {
		e := arr + i*stride
		name, err := ReadUnicodeString(m, e, ptr)
		if err != nil {
			return UnloadedModule{}, false, &FormatError{Offset: -1, What: "unloaded drivers", Msg: fmt.Sprintf("cannot read record %d at %#x", i, e), Err: err}
		}
		start, err1 := ReadPointer(m, e+startOff, ptr)
		end, err2 := ReadPointer(m, e+startOff+uint64(ptr), ptr)
		if err := errors.Join(err1, err2); err != nil {
			return UnloadedModule{}, false, &FormatError{Offset: -1, What: "unloaded drivers", Msg: fmt.Sprintf("cannot read record %d at %#x", i, e), Err: err}
		}
		if name == "" || end <= start || end-start > 1<<32 {
			return UnloadedModule{}, false, nil
		}
		for _, r := range name {
			if r < 0x20 || r == 0xFFFD {
				return UnloadedModule{}, false, nil
			}
		}
		return UnloadedModule{Name: name, Start: start, End: end}, true, nil
	}
	var out []UnloadedModule
	for i := uint64(last); i < unloadedSlots; i++ { // older records, once wrapped
		u, ok, err := read(i)
		if err != nil {
			break
		}
		if ok {
			out = append(out, u)
		}
	}
	for i := range uint64(last) {
		u, ok, err := read(i)
		if err != nil {
			return out, err
		}
		if ok {
			out = append(out, u)
		}
	}
	return out, nil
}

// cpuState is the crashing processor as found from the PRCBs.
type cpuState struct {
	index           int
	prcb            uint64
	thread, process uint64
}

// kernelCurrentThread finds the crashing CPU's current thread and process
// (dump-formats §4.2): the CPU whose PRCB context has the header context's
// stack pointer, else CPU 0.
func (f *File) kernelCurrentThread() (thread, process uint64, err error) {
	c, err := f.crashingCPU()
	if err != nil {
		return 0, 0, err
	}
	return c.thread, c.process, nil
}

// CrashingProcessor returns the index of the processor that crashed. In
// memory-bearing dumps it is the one whose saved PRCB context has the
// header context's stack pointer (CPU 0 when none matches). In triage
// dumps it is the slot of KiProcessorBlock that holds the address of the
// PRCB copy, when the data blocks record both.
func (f *File) CrashingProcessor() (int, error) {
	if f.triage != nil {
		return f.triage.crashingCPU(f)
	}
	if f.md() == nil {
		return 0, formatErr(-1, "processors", "%v dumps hold no memory", f.hdr.DumpType).wrap(ErrNotPresent)
	}
	c, err := f.crashingCPU()
	if err != nil {
		return 0, err
	}
	return c.index, nil
}

func (f *File) crashingCPU() (*cpuState, error) {
	k, err := f.kernelKDBG()
	if err != nil {
		return nil, err
	}
	ks := &f.md().kern
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.cur == nil && ks.curErr == nil {
		ks.cur, ks.curErr = f.findCrashingCPU(k)
	}
	return ks.cur, ks.curErr
}

func (f *File) findCrashingCPU(k *KDBG) (*cpuState, error) {
	ptr := f.ptrSize()
	m := f.mem
	n := f.hdr.NumberProcessors
	if n == 0 || n == pageFill {
		n = 1
	}
	if n > maxProcessors {
		off := int64(0x34)
		if f.hdr.Format == FormatKernel32 {
			off = 0x24
		}
		return nil, formatErr(off, "dump header", "NumberProcessors %d exceeds %d", n, maxProcessors)
	}
	if k.KiProcessorBlock == 0 {
		return nil, formatErr(-1, "KDBG", "KiProcessorBlock is not set").wrap(ErrNotPresent)
	}
	arr := make([]byte, int(n)*ptr)
	got, err := m.ReadVirtual(arr, f.kptr(k.KiProcessorBlock))
	if got < ptr {
		return nil, &FormatError{Offset: -1, What: "KiProcessorBlock", Msg: fmt.Sprintf("cannot read the PRCB array at %#x", f.kptr(k.KiProcessorBlock)), Err: err}
	}
	n = uint32(got / ptr)
	prcb := func(i int) uint64 { return ptrAt(arr, i*ptr, ptr) }
	crash := 0
	if hc, err := f.Context(); err == nil {
		spOff := contextSPOffset(f.hdr.Machine)
		for i := range int(n) {
			p := prcb(i)
			if p == 0 || spOff < 0 {
				continue
			}
			var ctx uint64
			switch {
			case k.OffsetPrcbContext != 0:
				ctx, err = ReadPointer(m, p+uint64(k.OffsetPrcbContext), ptr)
				if err != nil || ctx == 0 {
					continue
				}
			case k.OffsetPrcbProcStateContext != 0:
				ctx = p + uint64(k.OffsetPrcbProcStateContext)
			default:
				continue
			}
			sp, err := ReadPointer(m, ctx+uint64(spOff), ptr)
			if err == nil && sp == hc.SP() {
				crash = i
				break
			}
		}
	}
	c := &cpuState{index: crash, prcb: prcb(crash)}
	if c.prcb == 0 {
		return nil, formatErr(-1, "KiProcessorBlock", "processor %d has no PRCB", crash).wrap(ErrNotPresent)
	}
	cur := uint64(k.OffsetPrcbCurrentThread)
	if cur == 0 {
		cur = uint64(ptr) * 2
		if ptr == 4 {
			cur = 4
		}
	}
	c.thread, err = ReadPointer(m, c.prcb+cur, ptr)
	if err != nil {
		return nil, &FormatError{Offset: -1, What: "PRCB", Msg: fmt.Sprintf("cannot read CurrentThread of processor %d", crash), Err: err}
	}
	if c.thread != 0 && k.OffsetKThreadApcProcess != 0 {
		c.process, err = ReadPointer(m, c.thread+uint64(k.OffsetKThreadApcProcess), ptr)
		if err != nil {
			return nil, &FormatError{Offset: -1, What: "thread", Msg: fmt.Sprintf("cannot read ApcState.Process of thread %#x", c.thread), Err: err}
		}
	}
	return c, nil
}

// contextSPOffset is where a CONTEXT record of machine m keeps the stack
// pointer (dump-formats §7), or -1.
func contextSPOffset(m Machine) int {
	switch m {
	case MachineAMD64:
		return 0x98
	case MachineI386:
		return 0xC4
	case MachineARM64:
		return 0x100
	case MachineARMNT:
		return 0x38
	}
	return -1
}
