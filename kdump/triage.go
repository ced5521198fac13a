package kdump

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"unicode/utf16"
)

// TriageHeader is TRIAGE_DUMP64 (at file offset 0x2000) or TRIAGE_DUMP32
// (at 0x1000), widened. All *Offset fields are absolute file offsets.
type TriageHeader struct {
	ServicePackBuild      uint32
	SizeOfDump            uint32
	ValidOffset           uint32
	ContextOffset         uint32
	ExceptionOffset       uint32
	MmOffset              uint32
	UnloadedDriversOffset uint32
	PrcbOffset            uint32
	ProcessOffset         uint32
	ThreadOffset          uint32
	CallStackOffset       uint32
	SizeOfCallStack       uint32
	DriverListOffset      uint32
	DriverCount           uint32
	StringPoolOffset      uint32
	StringPoolSize        uint32
	BrokenDriverOffset    uint32
	TriageOptions         uint32
	TopOfStack            uint64 // lowest VA of the saved stack
	DataPageAddress       uint64
	DataPageOffset        uint32
	DataPageSize          uint32
	DebuggerDataOffset    uint32
	DebuggerDataSize      uint32
	DataBlocksOffset      uint32
	DataBlocksCount       uint32
}

// DataBlock is a TRIAGE_DATA_BLOCK: Size bytes at file Offset hold the
// memory at virtual Address.
type DataBlock struct {
	Address uint64
	Offset  uint32
	Size    uint32
}

// Triage dump limits that keep hostile files from driving allocations.
const (
	triageValid     = 0x44475254 // "TRGD"
	maxDrivers      = 1 << 14
	maxDataBlocks   = 1 << 20
	maxUnloaded     = 1 << 12
	maxDumpString   = 0x8000  // characters in one DUMP_STRING
	maxNameChars    = 1 << 20 // characters of all driver names together
	driverEntry64   = 0x90
	driverEntry32   = 0x4C
	unloadedEntry64 = 0x38
	unloadedEntry32 = 0x28
	triageHeader64  = 0x80
	triageHeader32  = 0x68
	// maxPrcbCandidates caps the PRCB-sized data blocks compared with the
	// PRCB copy (one per processor in real dumps).
	maxPrcbCandidates = 4096
)

// triageDump is the parsed part of a DumpType 4 file.
type triageDump struct {
	hdr      TriageHeader
	drivers  []Module
	unloaded []UnloadedModule
	blocks   []DataBlock
	kdbg     *KDBG
	mem      *overlay

	prcbVA, threadVA, processVA uint64
	// prcbContext is KPRCB.Context read from the PRCB copy: the VA of the
	// crashing processor's bug-check CONTEXT (0 when unknown).
	prcbContext uint64
	// prcbInlineContext is the CONTEXT inside the PRCB copy
	// (KPRCB.ProcessorState.ContextFrame) of kernels whose KDBG gives no
	// KPRCB.Context offset (before Windows 7); nil otherwise.
	prcbInlineContext []byte
	// cpuNumber is KPRCB.Number read from the PRCB copy, -1 when unknown.
	cpuNumber int
	// processSize is the size of the process copy (KDBG SizeEProcess),
	// 0 when the dump holds none.
	processSize int64
}

// readAt reads exactly len(p) bytes at off or returns a FormatError.
func readAt(r io.ReaderAt, size int64, p []byte, off int64, what string) error {
	if off < 0 || off > size || int64(len(p)) > size-off {
		return &FormatError{Offset: off, What: what, Err: io.ErrUnexpectedEOF,
			Msg: fmt.Sprintf("%#x bytes extend past the end of the %d-byte file (truncated dump?)", len(p), size)}
	}
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return &FormatError{Offset: off + int64(n), What: what, Msg: "short read", Err: err}
}

// inFile reports whether [off, off+n) lies inside a file of the given size.
func inFile(off, n uint64, size int64) bool {
	return off <= uint64(size) && n <= uint64(size)-off
}

func (f *File) parseTriage() error {
	is64 := f.hdr.Format == FormatKernel64
	base := f.hdr.Size()
	hlen := triageHeader32
	if is64 {
		hlen = triageHeader64
	}
	b := make([]byte, hlen)
	if err := readAt(f.r, f.size, b, base, "triage header"); err != nil {
		return err
	}
	le := binary.LittleEndian
	u32 := func(o int) uint32 { return le.Uint32(b[o:]) }
	t := &triageDump{cpuNumber: -1}
	h := &t.hdr
	h.ServicePackBuild, h.SizeOfDump, h.ValidOffset = u32(0), u32(4), u32(8)
	h.ContextOffset, h.ExceptionOffset, h.MmOffset = u32(0xC), u32(0x10), u32(0x14)
	h.UnloadedDriversOffset, h.PrcbOffset, h.ProcessOffset = u32(0x18), u32(0x1C), u32(0x20)
	h.ThreadOffset, h.CallStackOffset, h.SizeOfCallStack = u32(0x24), u32(0x28), u32(0x2C)
	h.DriverListOffset, h.DriverCount = u32(0x30), u32(0x34)
	h.StringPoolOffset, h.StringPoolSize = u32(0x38), u32(0x3C)
	h.BrokenDriverOffset, h.TriageOptions = u32(0x40), u32(0x44)
	if is64 {
		h.TopOfStack = le.Uint64(b[0x48:])
		h.DataPageAddress = le.Uint64(b[0x60:])
		h.DataPageOffset, h.DataPageSize = u32(0x68), u32(0x6C)
		h.DebuggerDataOffset, h.DebuggerDataSize = u32(0x70), u32(0x74)
		h.DataBlocksOffset, h.DataBlocksCount = u32(0x78), u32(0x7C)
	} else {
		h.TopOfStack = uint64(u32(0x48))
		h.DataPageAddress = uint64(u32(0x4C))
		h.DataPageOffset, h.DataPageSize = u32(0x50), u32(0x54)
		h.DebuggerDataOffset, h.DebuggerDataSize = u32(0x58), u32(0x5C)
		h.DataBlocksOffset, h.DataBlocksCount = u32(0x60), u32(0x64)
	}

	// The TRGD marker proves the triage part was written completely.
	if !inFile(uint64(h.ValidOffset), 4, f.size) {
		return formatErr(base+8, "triage header", "ValidOffset %#x lies past the end of the %d-byte file (truncated dump?)", h.ValidOffset, f.size)
	}
	var mark [4]byte
	if err := readAt(f.r, f.size, mark[:], int64(h.ValidOffset), "triage marker"); err != nil {
		return err
	}
	if le.Uint32(mark[:]) != triageValid {
		return formatErr(int64(h.ValidOffset), "triage marker", "expected TRGD, found %q", mark[:])
	}

	t.mem = &overlay{r: f.r}
	f.triage = t
	var errs []error
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	note(t.readDrivers(f, is64))
	note(t.readUnloaded(f, is64))
	note(t.readBlocks(f, is64))
	note(t.readKDBG(f))
	t.buildOverlay(f)
	note(t.findObjects(f, is64))
	t.mem.build()
	f.partial = append(f.partial, errs...)
	return nil
}

func (t *triageDump) readDrivers(f *File, is64 bool) error {
	h := &t.hdr
	if h.DriverCount == 0 || h.DriverListOffset == 0 {
		return nil
	}
	if h.DriverCount > maxDrivers {
		return formatErr(f.hdr.Size()+0x34, "triage header", "DriverCount %d exceeds the limit of %d", h.DriverCount, maxDrivers)
	}
	stride := uint64(driverEntry32)
	if is64 {
		stride = driverEntry64
	}
	// The string pool follows the entries in every dump seen: when it does,
	// the distance gives the stride even on builds whose entries grew.
	if h.StringPoolOffset > h.DriverListOffset {
		gap := uint64(h.StringPoolOffset - h.DriverListOffset)
		if gap%uint64(h.DriverCount) == 0 {
			if s := gap / uint64(h.DriverCount); s >= stride && s <= 4*stride {
				stride = s
			}
		}
	}
	total := stride * uint64(h.DriverCount)
	if !inFile(uint64(h.DriverListOffset), total, f.size) {
		return formatErr(int64(h.DriverListOffset), "driver list", "%d entries of %#x bytes extend past the end of the %d-byte file", h.DriverCount, stride, f.size)
	}
	buf := make([]byte, total)
	if err := readAt(f.r, f.size, buf, int64(h.DriverListOffset), "driver list"); err != nil {
		return err
	}
	le := binary.LittleEndian
	t.drivers = make([]Module, 0, h.DriverCount)
	var firstErr error
	// Entries may share a name; the budget bounds the text kept for
	// names that a hostile file makes long and distinct.
	names := make(map[uint32]string)
	budget := maxNameChars
	for i := range uint64(h.DriverCount) {
		e := buf[i*stride:]
		var m Module
		nameOff := le.Uint32(e[0:])
		if is64 {
			m.Base = le.Uint64(e[0x38:])
			m.Size = le.Uint32(e[0x48:])
			m.CheckSum = le.Uint32(e[0x80:])
			m.TimeDateStamp = le.Uint32(e[0x88:])
		} else {
			m.Base = uint64(le.Uint32(e[0x1C:]))
			m.Size = le.Uint32(e[0x24:])
			m.CheckSum = le.Uint32(e[0x44:])
			m.TimeDateStamp = le.Uint32(e[0x48:])
		}
		path, seen := names[nameOff]
		if !seen && budget > 0 {
			var err error
			path, err = readDumpString(f.r, f.size, int64(nameOff))
			if err != nil && firstErr == nil {
				firstErr = err
			}
			names[nameOff] = path
			budget -= len(path)
		} else if !seen && firstErr == nil {
			firstErr = formatErr(int64(nameOff), "driver name", "driver %d: the names of the earlier drivers already hold %d characters; the rest are not read", i, maxNameChars)
		}
		m.Path = path
		m.Name = baseName(path)
		t.drivers = append(t.drivers, m)
	}
	return firstErr
}

// readDumpString reads a DUMP_STRING at off: a u32 Length, then UTF-16LE
// text and a NUL (dump-formats §3.3). Length counts characters in the
// dumps seen, but some writers stored a byte count; the text ends after
// Length characters or at the first NUL, whichever comes first, which
// reads both (a byte count puts the NUL half-way through a character
// count). Text cut off by the end of the file is returned with an error.
func readDumpString(r io.ReaderAt, size int64, off int64) (string, error) {
	var lb [4]byte
	if err := readAt(r, size, lb[:], off, "driver name"); err != nil {
		return "", err
	}
	n := binary.LittleEndian.Uint32(lb[:])
	if n > maxDumpString {
		return "", formatErr(off, "driver name", "length %d exceeds %d characters", n, maxDumpString)
	}
	want := 2 * int64(n)
	b := make([]byte, min(want, size-off-4))
	if err := readAt(r, size, b, off+4, "driver name"); err != nil {
		return "", err
	}
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+2 <= len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			return string(utf16.Decode(u)), nil
		}
		u = append(u, c)
	}
	if int64(len(b)) < want {
		return string(utf16.Decode(u)), &FormatError{Offset: off, What: "driver name",
			Msg: fmt.Sprintf("the %d-character name runs past the end of the file", n), Err: io.ErrUnexpectedEOF}
	}
	return string(utf16.Decode(u)), nil
}

func (t *triageDump) readUnloaded(f *File, is64 bool) error {
	off := int64(t.hdr.UnloadedDriversOffset)
	if off == 0 {
		return nil
	}
	var cb [4]byte
	if err := readAt(f.r, f.size, cb[:], off, "unloaded drivers"); err != nil {
		return err
	}
	le := binary.LittleEndian
	count := le.Uint32(cb[:])
	if count > maxUnloaded {
		return formatErr(off, "unloaded drivers", "count %d exceeds the limit of %d", count, maxUnloaded)
	}
	stride, start := uint64(unloadedEntry32), off+4
	if is64 {
		stride, start = unloadedEntry64, off+8
	}
	total := stride * uint64(count)
	if !inFile(uint64(start), total, f.size) {
		return formatErr(off, "unloaded drivers", "%d entries extend past the end of the %d-byte file", count, f.size)
	}
	buf := make([]byte, total)
	if err := readAt(f.r, f.size, buf, start, "unloaded drivers"); err != nil {
		return err
	}
	t.unloaded = make([]UnloadedModule, 0, count)
	for i := range uint64(count) {
		e := buf[i*stride:]
		nameOff, addrOff := 0x10, 0x28
		if !is64 {
			nameOff, addrOff = 0x8, 0x20
		}
		u := make([]uint16, 0, 12)
		for j := range 12 {
			c := le.Uint16(e[nameOff+2*j:])
			if c == 0 {
				break
			}
			u = append(u, c)
		}
		m := UnloadedModule{Name: string(utf16.Decode(u))}
		if is64 {
			m.Start, m.End = le.Uint64(e[addrOff:]), le.Uint64(e[addrOff+8:])
		} else {
			m.Start, m.End = uint64(le.Uint32(e[addrOff:])), uint64(le.Uint32(e[addrOff+4:]))
		}
		t.unloaded = append(t.unloaded, m)
	}
	return nil
}

func (t *triageDump) readBlocks(f *File, is64 bool) error {
	h := &t.hdr
	if h.DataBlocksCount == 0 || h.DataBlocksOffset == 0 {
		return nil
	}
	if h.DataBlocksCount > maxDataBlocks {
		countOff := f.hdr.Size() + 0x64 // TRIAGE_DUMP32.DataBlocksCount
		if is64 {
			countOff = f.hdr.Size() + 0x7C
		}
		return formatErr(countOff, "triage header", "DataBlocksCount %d exceeds the limit of %d", h.DataBlocksCount, maxDataBlocks)
	}
	stride := uint64(12)
	if is64 {
		stride = 16
	}
	total := stride * uint64(h.DataBlocksCount)
	if !inFile(uint64(h.DataBlocksOffset), total, f.size) {
		return formatErr(int64(h.DataBlocksOffset), "data blocks", "%d descriptors extend past the end of the %d-byte file", h.DataBlocksCount, f.size)
	}
	buf := make([]byte, total)
	if err := readAt(f.r, f.size, buf, int64(h.DataBlocksOffset), "data blocks"); err != nil {
		return err
	}
	le := binary.LittleEndian
	t.blocks = make([]DataBlock, 0, h.DataBlocksCount)
	var bad error
	for i := range uint64(h.DataBlocksCount) {
		e := buf[i*stride:]
		var d DataBlock
		if is64 {
			d = DataBlock{Address: le.Uint64(e[0:]), Offset: le.Uint32(e[8:]), Size: le.Uint32(e[12:])}
		} else {
			d = DataBlock{Address: uint64(le.Uint32(e[0:])), Offset: le.Uint32(e[4:]), Size: le.Uint32(e[8:])}
		}
		if !inFile(uint64(d.Offset), uint64(d.Size), f.size) {
			if bad == nil {
				bad = formatErr(int64(h.DataBlocksOffset)+int64(i*stride), "data blocks", "block %d (%#x bytes at %#x) lies past the end of the file", i, d.Size, d.Offset)
			}
			continue
		}
		t.blocks = append(t.blocks, d)
	}
	return bad
}

func (t *triageDump) readKDBG(f *File) error {
	h := &t.hdr
	if h.DebuggerDataOffset == 0 || h.DebuggerDataSize == 0 {
		return nil
	}
	size := min(h.DebuggerDataSize, 0x1000)
	b := make([]byte, size)
	if err := readAt(f.r, f.size, b, int64(h.DebuggerDataOffset), "debugger data"); err != nil {
		return err
	}
	k, err := ParseKDBG(b, f.hdr.KdDebuggerDataBlock)
	if err != nil {
		if fe, ok := err.(*FormatError); ok {
			fe.Offset = int64(h.DebuggerDataOffset)
		}
		return err
	}
	if f.ptrSize() == 4 {
		narrowKDBG(k)
	}
	t.kdbg = k
	return nil
}

// buildOverlay maps every stored range at its virtual address, in order of
// preference (dump-formats §3.6).
func (t *triageDump) buildOverlay(f *File) {
	h := &t.hdr
	if h.SizeOfCallStack != 0 && inFile(uint64(h.CallStackOffset), uint64(h.SizeOfCallStack), f.size) {
		t.mem.add(h.TopOfStack, uint64(h.SizeOfCallStack), int64(h.CallStackOffset), "stack")
	}
	for _, d := range t.blocks {
		t.mem.add(d.Address, uint64(d.Size), int64(d.Offset), "data block")
	}
	if h.DebuggerDataSize != 0 && inFile(uint64(h.DebuggerDataOffset), uint64(h.DebuggerDataSize), f.size) {
		t.mem.add(f.hdr.KdDebuggerDataBlock, uint64(h.DebuggerDataSize), int64(h.DebuggerDataOffset), "debugger data")
	}
	if h.DataPageAddress != 0 && h.DataPageSize != 0 && inFile(uint64(h.DataPageOffset), uint64(h.DataPageSize), f.size) {
		t.mem.add(h.DataPageAddress, uint64(h.DataPageSize), int64(h.DataPageOffset), "data page")
	}
}

// findObjects locates the virtual addresses of the PRCB, thread and process
// copies and maps them (dump-formats §3.6 step 5).
func (t *triageDump) findObjects(f *File, is64 bool) error {
	h := &t.hdr
	k := t.kdbg
	if k == nil || h.PrcbOffset == 0 {
		return nil
	}
	ptr := f.hdr.Machine.PointerSize()
	prcbSize := uint64(k.SizePrcb)
	if prcbSize == 0 {
		return formatErr(int64(h.PrcbOffset), "PRCB copy", "the debugger data gives no SizePrcb: the current thread cannot be located")
	}
	if !inFile(uint64(h.PrcbOffset), prcbSize, f.size) {
		return formatErr(int64(h.PrcbOffset), "PRCB copy", "the %#x bytes the debugger data gives as SizePrcb extend past the end of the %d-byte file", prcbSize, f.size)
	}
	// The PRCB copy's VA: the data block holding identical bytes.
	prcb := make([]byte, prcbSize)
	if err := readAt(f.r, f.size, prcb, int64(h.PrcbOffset), "PRCB copy"); err != nil {
		return err
	}
	// Compare each stored offset once, and at most maxPrcbCandidates of
	// them: a real dump has one PRCB-sized block per processor.
	var blk []byte
	compared := make(map[uint32]bool)
	for _, d := range t.blocks {
		if uint64(d.Size) != prcbSize || compared[d.Offset] {
			continue
		}
		if len(compared) >= maxPrcbCandidates {
			break
		}
		compared[d.Offset] = true
		if blk == nil {
			blk = make([]byte, prcbSize)
		}
		if readAt(f.r, f.size, blk, int64(d.Offset), "data block") == nil && bytes.Equal(blk, prcb) {
			t.prcbVA = d.Address
			break
		}
	}
	if t.prcbVA != 0 {
		t.mem.add(t.prcbVA, prcbSize, int64(h.PrcbOffset), "PRCB copy")
	}
	// Current thread from the PRCB copy, process from the thread copy.
	cur := int(k.OffsetPrcbCurrentThread)
	if cur == 0 {
		cur = 8
		if !is64 {
			cur = 4
		}
	}
	t.threadVA = ptrAt(prcb, cur, ptr)
	if o := int(k.OffsetPrcbNumber); o != 0 && o+2 <= len(prcb) {
		if n := int(binary.LittleEndian.Uint16(prcb[o:])); n < int(f.hdr.NumberProcessors) && f.hdr.NumberProcessors <= maxProcessors {
			t.cpuNumber = n
		}
	}
	if k.OffsetPrcbContext != 0 {
		t.prcbContext = ptrAt(prcb, int(k.OffsetPrcbContext), ptr)
	} else if o, n := int(k.OffsetPrcbProcStateContext), ContextSize(f.hdr.Machine); o != 0 && n != 0 && o+n <= len(prcb) {
		// Before Windows 7 the CONTEXT is inline: ProcessorState.ContextFrame.
		t.prcbInlineContext = prcb[o : o+n : o+n]
	}
	if h.ThreadOffset != 0 && k.SizeEThread != 0 && inFile(uint64(h.ThreadOffset), uint64(k.SizeEThread), f.size) {
		th := make([]byte, k.SizeEThread)
		if err := readAt(f.r, f.size, th, int64(h.ThreadOffset), "thread copy"); err != nil {
			return err
		}
		if t.threadVA != 0 {
			t.mem.add(t.threadVA, uint64(k.SizeEThread), int64(h.ThreadOffset), "thread copy")
		}
		if k.OffsetKThreadApcProcess != 0 {
			t.processVA = ptrAt(th, int(k.OffsetKThreadApcProcess), ptr)
		}
	}
	if h.ProcessOffset != 0 && k.SizeEProcess != 0 && inFile(uint64(h.ProcessOffset), uint64(k.SizeEProcess), f.size) {
		t.processSize = int64(k.SizeEProcess)
		if t.processVA != 0 {
			t.mem.add(t.processVA, uint64(k.SizeEProcess), int64(h.ProcessOffset), "process copy")
		}
	}
	return nil
}

// crashingCPU finds the PRCB copy's address in the KiProcessorBlock array
// (dump-formats §3.6: the array is one of the data blocks), or else reads
// KPRCB.Number from the copy (at KDBG OffsetPrcbNumber).
func (t *triageDump) crashingCPU(f *File) (int, error) {
	if k := t.kdbg; t.prcbVA != 0 && k != nil && k.KiProcessorBlock != 0 {
		n := f.hdr.NumberProcessors
		if n == 0 || n == pageFill || n > maxProcessors {
			n = maxProcessors
		}
		ptr := f.ptrSize()
		arr := make([]byte, int(n)*ptr)
		got, _ := t.mem.ReadVirtual(arr, k.KiProcessorBlock)
		for i := 0; (i+1)*ptr <= got; i++ {
			if ptrAt(arr, i*ptr, ptr) == t.prcbVA {
				return i, nil
			}
		}
	}
	if t.cpuNumber >= 0 {
		return t.cpuNumber, nil
	}
	return 0, formatErr(int64(t.hdr.PrcbOffset), "PRCB copy", "the dump does not record which processor's PRCB was copied").wrap(ErrNotPresent)
}
