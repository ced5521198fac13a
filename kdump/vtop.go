package kdump

import (
	"encoding/binary"
	"fmt"
	"sync"
)

// PagingMode is the virtual-to-physical translation scheme of a dump.
type PagingMode int

// Paging modes (dump-formats §5).
const (
	PagingNone  PagingMode = iota // no translation (triage dumps, 32-bit ARM)
	PagingX64                     // x64 4-level paging
	PagingPAE                     // x86 PAE, 3 levels
	PagingX86                     // x86 without PAE, 2 levels
	PagingARM64                   // ARM64, 4 KiB granule, 48-bit VAs
)

// String names the paging mode.
func (m PagingMode) String() string {
	switch m {
	case PagingNone:
		return "none"
	case PagingX64:
		return "x64"
	case PagingPAE:
		return "x86-pae"
	case PagingX86:
		return "x86"
	case PagingARM64:
		return "arm64"
	}
	return fmt.Sprintf("PagingMode(%d)", int(m))
}

// Translation is where one virtual address lives in physical memory.
type Translation struct {
	VA, PA   uint64
	PageSize uint64 // 4 KiB, 2 MiB, 4 MiB or 1 GiB
	// Transition is set when the page was found through a Windows
	// transition PTE (valid bit clear, transition bit set): the page is on
	// the standby or modified list and its contents are still correct.
	Transition bool
}

// PageFaultError reports a virtual address whose translation failed.
// It wraps ErrNotPresent.
type PageFaultError struct {
	VA     uint64
	Level  int    // table level where the walk stopped (4 = PML4/L0 ... 1 = PT/L3), 0 if none
	Entry  uint64 // the entry that stopped the walk
	Reason string // "not present", "paged out (prototype PTE)", "in the page file", ...
}

// Error names the address, the table entry that stopped the walk, and why.
func (e *PageFaultError) Error() string {
	if e.Level == 0 {
		return fmt.Sprintf("virtual address %#x: %s", e.VA, e.Reason)
	}
	return fmt.Sprintf("virtual address %#x: level-%d entry %#x: %s", e.VA, e.Level, e.Entry, e.Reason)
}

// Unwrap returns ErrNotPresent.
func (e *PageFaultError) Unwrap() error { return ErrNotPresent }

// Page-table entry bits (x86 and x64).
const (
	pteValid      = 1 << 0
	pteLarge      = 1 << 7
	ptePrototype  = 1 << 10
	pteTransition = 1 << 11

	frameMaskX64        = 0x0000FFFFFFFFF000 // bits 12..47
	frameMaskTransition = 0x00001FFFFFFFF000 // bits 12..44
	frameMaskPAE        = 0x000000FFFFFFF000 // bits 12..39
	frameMaskARM64      = 0x0000FFFFFFFFF000
)

// tableCacheSlots is how many page-table pages a paged memory keeps.
const tableCacheSlots = 16

// tableCache is a small LRU of page-table pages, keyed by physical page.
type tableCache struct {
	tick  uint64
	pa    [tableCacheSlots]uint64
	used  [tableCacheSlots]uint64 // 0 = empty
	pages [tableCacheSlots][PageSize]byte
}

// pagedMemory is a kernel virtual address space: a page-table walk over the
// physical memory of a dump.
type pagedMemory struct {
	phys *memoryDump
	mode PagingMode
	dtb  uint64

	mu    sync.Mutex
	cache tableCache
}

// newPagedMemory chooses the paging mode from the header (and, for x86
// dumps whose header does not say whether PAE is on, from which mode finds
// the KDBG block) and returns the kernel address space.
func (f *File) newPagedMemory(md *memoryDump) Memory {
	h := &f.hdr
	mk := func(mode PagingMode) *pagedMemory {
		return &pagedMemory{phys: md, mode: mode, dtb: h.DirectoryTableBase}
	}
	switch h.Machine {
	case MachineAMD64:
		return mk(PagingX64)
	case MachineARM64:
		return mk(PagingARM64)
	case MachineI386:
		if h.PaeEnabled {
			return mk(PagingPAE)
		}
		// The header byte is clear or unset: PAE kernels still occur, so
		// let the KDBG block decide (its PaeEnabled bit, or where it can
		// be read at all).
		non, pae := mk(PagingX86), mk(PagingPAE)
		if k, err := readPlainKDBG(non, h.KdDebuggerDataBlock); err == nil && !k.PaeEnabled {
			return non
		}
		if k, err := readPlainKDBG(pae, h.KdDebuggerDataBlock); err == nil && k.PaeEnabled {
			return pae
		}
		if h.DirectoryTableBase&0xFFF != 0 { // a PDPT is only 32-byte aligned
			return pae
		}
		return non
	}
	f.partial = append(f.partial, formatErr(-1, "page tables", "no virtual-to-physical translation for %v dumps: virtual memory is unreadable", h.Machine).wrap(ErrUnsupported))
	return &pagedMemory{phys: md, mode: PagingNone}
}

// readPlainKDBG reads an unencoded KDBG block at va.
func readPlainKDBG(m Memory, va uint64) (*KDBG, error) {
	var b [0x380]byte
	if _, err := m.ReadVirtual(b[:], va); err != nil {
		return nil, err
	}
	return ParseKDBG(b[:], va)
}

// PagingMode returns how the dump's virtual addresses are translated.
func (f *File) PagingMode() PagingMode {
	if pm, ok := f.mem.(*pagedMemory); ok {
		return pm.mode
	}
	return PagingNone
}

// Translate translates a kernel virtual address with the dump's page
// tables. It fails for dumps without physical memory (triage dumps).
func (f *File) Translate(va uint64) (Translation, error) {
	pm, ok := f.mem.(*pagedMemory)
	if !ok {
		return Translation{}, formatErr(-1, "page tables", "%v dumps have no page tables", f.hdr.DumpType).wrap(ErrUnsupported)
	}
	return pm.translate(va)
}

// AddressSpace returns the virtual address space whose top-level table is
// at physical address dtb (for example a process's
// KPROCESS.DirectoryTableBase), translated like the kernel's.
func (f *File) AddressSpace(dtb uint64) (Memory, error) {
	pm, ok := f.mem.(*pagedMemory)
	if !ok || pm.mode == PagingNone {
		return nil, formatErr(-1, "page tables", "%v dumps have no page tables", f.hdr.DumpType).wrap(ErrUnsupported)
	}
	return &pagedMemory{phys: pm.phys, mode: pm.mode, dtb: dtb}, nil
}

// ReadVirtual implements Memory. Each page of the range is translated on
// its own.
func (pm *pagedMemory) ReadVirtual(p []byte, addr uint64) (int, error) {
	done := 0
	for done < len(p) {
		a := addr + uint64(done)
		if a < addr { // the read wrapped past the top of the address space
			return done, &MemoryError{Addr: a, Err: &PageFaultError{VA: a, Reason: "read past the top of the address space"}}
		}
		tr, err := pm.translate(a)
		if err != nil {
			return done, &MemoryError{Addr: a, Err: err}
		}
		n := min(len(p)-done, int(PageSize-a%PageSize))
		got, err := pm.phys.ReadPhysical(p[done:done+n], tr.PA)
		done += got
		if err != nil {
			return done, &MemoryError{Addr: addr + uint64(done), Err: err}
		}
	}
	return done, nil
}

// entry reads a page-table entry of size bytes at physical address pa,
// through the table cache.
func (pm *pagedMemory) entry(pa uint64, size int) (uint64, error) {
	page := pa &^ (PageSize - 1)
	in := pa - page
	pm.mu.Lock()
	defer pm.mu.Unlock()
	c := &pm.cache
	c.tick++
	slot, victim := -1, 0
	for i := range tableCacheSlots {
		if c.used[i] != 0 && c.pa[i] == page {
			slot = i
			break
		}
		if c.used[i] < c.used[victim] {
			victim = i
		}
	}
	if slot < 0 {
		c.used[victim] = 0
		if _, err := pm.phys.ReadPhysical(c.pages[victim][:], page); err != nil {
			return 0, err
		}
		slot = victim
		c.pa[slot] = page
	}
	c.used[slot] = c.tick
	b := c.pages[slot][in:]
	if size == 4 {
		return uint64(binary.LittleEndian.Uint32(b)), nil
	}
	return binary.LittleEndian.Uint64(b), nil
}

// translate walks the page tables for va.
func (pm *pagedMemory) translate(va uint64) (Translation, error) {
	switch pm.mode {
	case PagingX64:
		return pm.walkX64(va)
	case PagingPAE:
		return pm.walkPAE(va)
	case PagingX86:
		return pm.walkX86(va)
	case PagingARM64:
		return pm.walkARM64(va)
	}
	return Translation{VA: va}, errNoTranslation
}

// windowsEntry classifies a non-large x86/x64 table entry the Windows way:
// valid, transition (still in memory), or not present with a reason.
func windowsEntry(va uint64, level int, e, validMask, transMask uint64) (frame uint64, transition bool, err error) {
	switch {
	case e&pteValid != 0:
		return e & validMask, false, nil
	case e&pteTransition != 0 && e&ptePrototype == 0:
		return e & transMask, true, nil
	case e == 0:
		return 0, false, &PageFaultError{VA: va, Level: level, Entry: e, Reason: "not present"}
	case e&ptePrototype != 0:
		return 0, false, &PageFaultError{VA: va, Level: level, Entry: e, Reason: "paged out (prototype PTE)"}
	}
	return 0, false, &PageFaultError{VA: va, Level: level, Entry: e, Reason: "in the page file"}
}

func (pm *pagedMemory) walkX64(va uint64) (Translation, error) {
	if top := va >> 47; top != 0 && top != 0x1FFFF {
		return Translation{}, &PageFaultError{VA: va, Reason: "non-canonical address"}
	}
	tr := Translation{VA: va}
	table := pm.dtb & frameMaskX64
	for level := 4; level >= 1; level-- {
		shift := 12 + 9*uint(level-1)
		e, err := pm.entry(table+(va>>shift&0x1FF)*8, 8)
		if err != nil {
			return tr, err
		}
		if e&pteValid != 0 && e&pteLarge != 0 && (level == 3 || level == 2) {
			size := uint64(1) << shift
			frame := e & frameMaskX64 &^ (size - 1) // also clears PAT (bit 12)
			tr.PA, tr.PageSize = frame|va&(size-1), size
			return tr, nil
		}
		frame, trans, err := windowsEntry(va, level, e, frameMaskX64, frameMaskTransition)
		if err != nil {
			return tr, err
		}
		tr.Transition = tr.Transition || trans
		table = frame
	}
	tr.PA, tr.PageSize = table|va&0xFFF, PageSize
	return tr, nil
}

// x86VA checks that a 32-bit address is plain or sign-extended (as KDBG
// stores 32-bit pointers) and returns its low 32 bits.
func x86VA(va uint64) (uint64, error) {
	if hi := va >> 32; hi != 0 && hi != 0xFFFFFFFF {
		return 0, &PageFaultError{VA: va, Reason: "address beyond 32 bits"}
	}
	return va & 0xFFFFFFFF, nil
}

func (pm *pagedMemory) walkPAE(full uint64) (Translation, error) {
	va, err := x86VA(full)
	if err != nil {
		return Translation{}, err
	}
	tr := Translation{VA: full}
	pdpte, err := pm.entry(pm.dtb&0xFFFFFFE0+(va>>30)*8, 8)
	if err != nil {
		return tr, err
	}
	if pdpte&pteValid == 0 {
		return tr, &PageFaultError{VA: full, Level: 3, Entry: pdpte, Reason: "not present"}
	}
	pde, err := pm.entry(pdpte&frameMaskPAE+(va>>21&0x1FF)*8, 8)
	if err != nil {
		return tr, err
	}
	if pde&pteValid != 0 && pde&pteLarge != 0 {
		tr.PA, tr.PageSize = pde&frameMaskPAE&^0x1FFFFF|va&0x1FFFFF, 0x200000
		return tr, nil
	}
	pt, trans, err := windowsEntry(full, 2, pde, frameMaskPAE, frameMaskPAE)
	if err != nil {
		return tr, err
	}
	pte, err := pm.entry(pt+(va>>12&0x1FF)*8, 8)
	if err != nil {
		return tr, err
	}
	frame, trans2, err := windowsEntry(full, 1, pte, frameMaskPAE, frameMaskPAE)
	if err != nil {
		return tr, err
	}
	tr.PA, tr.PageSize, tr.Transition = frame|va&0xFFF, PageSize, trans || trans2
	return tr, nil
}

func (pm *pagedMemory) walkX86(full uint64) (Translation, error) {
	va, err := x86VA(full)
	if err != nil {
		return Translation{}, err
	}
	tr := Translation{VA: full}
	pde, err := pm.entry(pm.dtb&0xFFFFF000+(va>>22)*4, 4)
	if err != nil {
		return tr, err
	}
	if pde&pteValid != 0 && pde&pteLarge != 0 {
		tr.PA, tr.PageSize = pde&0xFFC00000|va&0x3FFFFF, 0x400000
		return tr, nil
	}
	pt, trans, err := windowsEntry(full, 2, pde, 0xFFFFF000, 0xFFFFF000)
	if err != nil {
		return tr, err
	}
	pte, err := pm.entry(pt+(va>>12&0x3FF)*4, 4)
	if err != nil {
		return tr, err
	}
	frame, trans2, err := windowsEntry(full, 1, pte, 0xFFFFF000, 0xFFFFF000)
	if err != nil {
		return tr, err
	}
	tr.PA, tr.PageSize, tr.Transition = frame|va&0xFFF, PageSize, trans || trans2
	return tr, nil
}

// walkARM64 walks 4 KiB-granule, 4-level tables (dump-formats §5.4). Only
// hardware-valid descriptors are used: Windows software bits in invalid
// ARM64 descriptors are not documented.
func (pm *pagedMemory) walkARM64(va uint64) (Translation, error) {
	if top := va >> 48; top != 0 && top != 0xFFFF {
		return Translation{}, &PageFaultError{VA: va, Reason: "address beyond 48 bits"}
	}
	tr := Translation{VA: va}
	table := pm.dtb & frameMaskARM64
	for level := 0; level <= 3; level++ {
		shift := 39 - 9*uint(level)
		d, err := pm.entry(table+(va>>shift&0x1FF)*8, 8)
		if err != nil {
			return tr, err
		}
		switch {
		case d&1 == 0:
			return tr, &PageFaultError{VA: va, Level: 4 - level, Entry: d, Reason: "not present"}
		case d&2 == 0: // block descriptor
			if level != 1 && level != 2 {
				return tr, &PageFaultError{VA: va, Level: 4 - level, Entry: d, Reason: "invalid block descriptor"}
			}
			size := uint64(1) << shift
			tr.PA, tr.PageSize = d&frameMaskARM64&^(size-1)|va&(size-1), size
			return tr, nil
		}
		table = d & frameMaskARM64
	}
	tr.PA, tr.PageSize = table|va&0xFFF, PageSize
	return tr, nil
}

// PaeEnabled reports whether a 32-bit x86 kernel ran with PAE (and so was
// the PAE kernel image): the header's PaeEnabled byte when set, else the
// KDBG block's PaeEnabled bit (triage dumps), else whether the page tables
// of a memory-bearing dump are PAE tables. It is false for other machines.
func (f *File) PaeEnabled() bool {
	if f.hdr.Machine != MachineI386 {
		return false
	}
	if f.hdr.PaeEnabled {
		return true
	}
	if pm, ok := f.mem.(*pagedMemory); ok {
		return pm.mode == PagingPAE
	}
	if f.triage != nil && f.triage.kdbg != nil {
		return f.triage.kdbg.PaeEnabled
	}
	return false
}
