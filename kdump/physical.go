package kdump

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"sort"
	"sync"
)

// PhysicalMemory reads physical pages from a dump that stores them.
type PhysicalMemory interface {
	// ReadPhysical reads len(p) bytes at physical address addr.
	ReadPhysical(p []byte, addr uint64) (n int, err error)
}

// PageSize is the size of the physical pages kernel dumps store.
const PageSize = 0x1000

// Limits that keep hostile physical-memory descriptors from driving
// allocations or arithmetic overflow.
const (
	maxPhysRuns     = 1 << 22 // runs kept from a bitmap or range list (96 MiB worst case)
	maxRunPages     = 1 << 40 // pages in one run (4 PiB)
	maxFileOffset   = 1 << 62
	bitmapChunk     = 64 << 10 // bitmap bytes read at a time
	bitmapHeaderLen = 0x38
	rdmpHeaderLen   = 0x30
	maxRDMPRanges   = 1 << 20
)

// Bitmap and RDMP signatures (little-endian DWORDs).
const (
	sigSDMP = 0x504D4453 // "SDMP"
	sigFDMP = 0x504D4446 // "FDMP"
	sigDUMP = 0x504D5544 // "DUMP"
	sigRDMP = 0x504D4452 // "RDMP"
)

// PhysicalRange is one contiguous run of physical pages stored in the file.
type PhysicalRange struct {
	PFN    uint64 // first page frame number
	Pages  uint64 // number of pages
	Offset int64  // file offset of the first page
}

// memoryDump is the physical memory of a DumpType 1, 5, 6, 8, 9 or 0xA
// dump: a sorted list of page runs, each packed in the file. It also holds
// the kernel-level state derived from that memory (see kernel.go).
type memoryDump struct {
	r    io.ReaderAt
	size int64
	what string          // what describes the page map, for errors
	runs []PhysicalRange // sorted by PFN, non-overlapping
	// truncated is set when the page map was cut at the end of the file:
	// pages the bitmap places past it have no run.
	truncated bool
	// Kernel state, filled lazily.
	kern kernelState
}

// ReadPhysical implements PhysicalMemory. Pages that the dump does not
// store give a *MemoryError wrapping ErrNotPresent; pages that the page map
// places past the end of a truncated file give a *MemoryError wrapping a
// *FormatError that also wraps ErrNotPresent.
func (m *memoryDump) ReadPhysical(p []byte, addr uint64) (int, error) {
	done := 0
	for done < len(p) {
		a := addr + uint64(done)
		if a < addr {
			return done, &MemoryError{Addr: a, Physical: true, Err: ErrNotPresent}
		}
		pfn := a / PageSize
		i := sort.Search(len(m.runs), func(i int) bool { return m.runs[i].PFN+m.runs[i].Pages > pfn })
		if i == len(m.runs) || m.runs[i].PFN > pfn {
			if m.truncated {
				return done, &MemoryError{Addr: a, Physical: true, Err: &FormatError{Offset: m.size, What: m.what,
					Msg: "page is not in the dump, or lies past the end of the truncated file", Err: ErrNotPresent}}
			}
			return done, &MemoryError{Addr: a, Physical: true, Err: ErrNotPresent}
		}
		run := m.runs[i]
		inner := a - run.PFN*PageSize // bytes into the run
		avail := run.Pages*PageSize - inner
		n := min(uint64(len(p)-done), avail)
		off := run.Offset + int64(inner)
		if off >= m.size {
			return done, &MemoryError{Addr: a, Physical: true, Err: m.pastEOF(off)}
		}
		short := false
		if uint64(m.size-off) < n {
			n = uint64(m.size - off)
			short = true
		}
		got, err := m.r.ReadAt(p[done:done+int(n)], off)
		done += got
		if got < int(n) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return done, &MemoryError{Addr: addr + uint64(done), Physical: true,
				Err: &FormatError{Offset: off + int64(got), What: m.what, Msg: "cannot read page", Err: err}}
		}
		if short {
			return done, &MemoryError{Addr: addr + uint64(done), Physical: true, Err: m.pastEOF(m.size)}
		}
	}
	return done, nil
}

func (m *memoryDump) pastEOF(off int64) error {
	return &FormatError{Offset: off, What: m.what,
		Msg: fmt.Sprintf("page lies past the end of the %d-byte file (truncated dump)", m.size), Err: ErrNotPresent}
}

// ranges returns a copy of the page map.
func (m *memoryDump) ranges() []PhysicalRange { return slices.Clone(m.runs) }

// PhysicalRanges returns the runs of physical pages the dump stores, sorted
// by page frame number (nil for dumps without physical memory). Runs may
// extend past the end of a truncated file.
func (f *File) PhysicalRanges() []PhysicalRange {
	if md, ok := f.phys.(*memoryDump); ok {
		return md.ranges()
	}
	return nil
}

// initPhysical builds f.phys and f.mem for DumpType 1, 5, 6, 8, 9 and 0xA.
func (f *File) initPhysical() error {
	md := &memoryDump{r: f.r, size: f.size}
	var err error
	switch f.hdr.DumpType {
	case DumpTypeFull:
		md.what = "physical memory run"
		err = md.initRuns(f)
	case DumpTypeBitmapFull, DumpTypeBitmapKernel:
		md.what = "bitmap dump page"
		err = md.initBitmap(f)
	case DumpTypeKernelRDMP, DumpTypeKernelUser, DumpTypeCompleteRDMP:
		md.what = "RDMP dump page"
		err = md.initRDMP(f)
	default:
		err = formatErr(-1, "physical memory", "%v dumps store no physical memory", f.hdr.DumpType).wrap(ErrUnsupported)
	}
	if err != nil {
		return err
	}
	if n := len(md.runs); n > 0 {
		last := md.runs[0]
		for _, r := range md.runs {
			if r.Offset > last.Offset {
				last = r
			}
		}
		end := uint64(last.Offset) + last.Pages*PageSize
		if end > uint64(f.size) || md.truncated {
			f.partial = append(f.partial, &FormatError{Offset: f.size, What: md.what,
				Msg: fmt.Sprintf("the page map needs %d bytes but the file has %d: pages past the end are missing (truncated dump)", end, f.size),
				Err: io.ErrUnexpectedEOF})
		}
	}
	f.phys = md
	f.mem = f.newPagedMemory(md)
	return nil
}

// addRun appends a run, merging it with the previous one when both pages
// and file bytes are contiguous.
func (m *memoryDump) addRun(pfn, pages uint64, off int64) {
	if n := len(m.runs); n > 0 {
		p := &m.runs[n-1]
		if p.PFN+p.Pages == pfn && p.Offset+int64(p.Pages*PageSize) == off {
			p.Pages += pages
			return
		}
	}
	m.runs = append(m.runs, PhysicalRange{PFN: pfn, Pages: pages, Offset: off})
}

// initRuns reads the PHYSICAL_MEMORY_DESCRIPTOR of a DumpType 1 dump: pages
// are packed run after run right after the header (dump-formats §2.1).
func (m *memoryDump) initRuns(f *File) error {
	h := &f.hdr
	descOff := int64(0x88)
	if h.Format == FormatKernel32 {
		descOff = 0x64
	}
	if h.Runs == nil {
		return formatErr(descOff, "physical memory descriptor", "NumberOfRuns is not set")
	}
	if int(h.NumberOfRuns) > len(h.Runs) {
		return formatErr(descOff, "physical memory descriptor", "NumberOfRuns %d does not fit the header (at most %d)", h.NumberOfRuns, len(h.Runs))
	}
	if h.NumberOfRuns == 0 {
		return formatErr(descOff, "physical memory descriptor", "no memory runs")
	}
	off := uint64(h.Size())
	var total uint64
	for i, r := range h.Runs[:h.NumberOfRuns] {
		at := descOff + 0x10 + int64(i)*16
		if h.Format == FormatKernel32 {
			at = descOff + 8 + int64(i)*8
		}
		if r.PageCount == 0 {
			continue
		}
		if r.PageCount > maxRunPages || r.BasePage > maxRunPages || off+r.PageCount*PageSize > maxFileOffset {
			return formatErr(at, "physical memory descriptor", "run %d (%#x pages at PFN %#x) is out of range", i, r.PageCount, r.BasePage)
		}
		m.runs = append(m.runs, PhysicalRange{PFN: r.BasePage, Pages: r.PageCount, Offset: int64(off)})
		off += r.PageCount * PageSize
		total += r.PageCount
	}
	if err := m.sortRuns(descOff, "physical memory descriptor"); err != nil {
		return err
	}
	if total != h.NumberOfPages {
		f.partial = append(f.partial, formatErr(descOff+8, "physical memory descriptor",
			"NumberOfPages %d differs from the %d pages the runs describe", h.NumberOfPages, total))
	}
	return nil
}

// sortRuns sorts the runs by PFN and rejects overlapping ones, naming the
// table they came from (what, at file offset off).
func (m *memoryDump) sortRuns(off int64, what string) error {
	slices.SortFunc(m.runs, func(a, b PhysicalRange) int { return cmp.Compare(a.PFN, b.PFN) })
	for i := 1; i < len(m.runs); i++ {
		if p := m.runs[i-1]; p.PFN+p.Pages > m.runs[i].PFN {
			return formatErr(off, what, "runs at PFN %#x and %#x overlap", p.PFN, m.runs[i].PFN)
		}
	}
	return nil
}

// initBitmap reads the SDMP/FDMP header after the dump header and builds the
// run list from its bitmap, scanning it a chunk at a time (dump-formats §2.2).
func (m *memoryDump) initBitmap(f *File) error {
	base := f.hdr.Size()
	var hb [bitmapHeaderLen]byte
	if err := readAt(f.r, f.size, hb[:], base, "bitmap header"); err != nil {
		return err
	}
	le := binary.LittleEndian
	sig := le.Uint32(hb[0:])
	if sig != sigSDMP && sig != sigFDMP {
		return formatErr(base, "bitmap header", "signature %q is neither SDMP nor FDMP", hb[0:4])
	}
	if le.Uint32(hb[4:]) != sigDUMP {
		return formatErr(base+4, "bitmap header", "ValidDump %q is not DUMP", hb[4:8])
	}
	firstPage := le.Uint64(hb[0x20:])
	present := le.Uint64(hb[0x28:])
	nbits := le.Uint64(hb[0x30:])
	bmOff := base + bitmapHeaderLen
	bmBytes := nbits / 8
	if nbits%8 != 0 {
		bmBytes++
	}
	if !inFile(uint64(bmOff), bmBytes, f.size) {
		return &FormatError{Offset: base + 0x30, What: "bitmap header",
			Msg: fmt.Sprintf("a bitmap of %d bits does not fit the %d-byte file", nbits, f.size), Err: io.ErrUnexpectedEOF}
	}
	if firstPage < uint64(bmOff)+bmBytes || firstPage > maxFileOffset {
		return formatErr(base+0x20, "bitmap header", "FirstPage %#x overlaps the bitmap or is out of range", firstPage)
	}
	if firstPage > uint64(f.size) {
		f.partial = append(f.partial, &FormatError{Offset: base + 0x20, What: "bitmap header",
			Msg: fmt.Sprintf("FirstPage %#x lies past the end of the file: no pages are stored (truncated dump)", firstPage), Err: io.ErrUnexpectedEOF})
	}

	// Scan: runs of set bits become page runs, packed from FirstPage. Runs
	// that would start past the end of the file are not kept (their pages
	// cannot be read), which bounds the run list by the file size.
	fileOff := firstPage
	var setBits uint64
	runStart, inRun := uint64(0), false
	flush := func(end uint64) error {
		if !inRun {
			return nil
		}
		inRun = false
		n := end - runStart
		if fileOff >= uint64(f.size) {
			m.truncated = true
			fileOff += n * PageSize
			return nil
		}
		if len(m.runs) >= maxPhysRuns {
			return formatErr(bmOff, "bitmap", "more than %d page runs", maxPhysRuns)
		}
		if fileOff+n*PageSize > maxFileOffset {
			return formatErr(bmOff, "bitmap", "page offsets overflow")
		}
		m.addRun(runStart, n, int64(fileOff))
		fileOff += n * PageSize
		return nil
	}
	buf := make([]byte, min(bitmapChunk, bmBytes+8))
	for done := uint64(0); done < bmBytes; {
		n := min(uint64(bitmapChunk), bmBytes-done)
		chunk := buf[:n]
		if err := readAt(f.r, f.size, chunk, bmOff+int64(done), "bitmap"); err != nil {
			return err
		}
		for i := uint64(0); i < n; {
			pfn := (done + i) * 8
			var w uint64
			width := uint64(64)
			if i+8 <= n {
				w = le.Uint64(chunk[i:])
			} else {
				width = 8
				w = uint64(chunk[i])
			}
			if pfn+width > nbits { // spare bits in the last byte
				width = nbits - pfn
				w &= (1 << width) - 1
			}
			switch {
			case w == 0:
				if err := flush(pfn); err != nil {
					return err
				}
			case width == 64 && w == ^uint64(0):
				if !inRun {
					runStart, inRun = pfn, true
				}
				setBits += 64
			default:
				setBits += uint64(bits.OnesCount64(w))
				for b := uint64(0); b < width; {
					if w>>b&1 == 1 {
						ones := uint64(bits.TrailingZeros64(^(w >> b)))
						if ones > width-b {
							ones = width - b
						}
						if !inRun {
							runStart, inRun = pfn+b, true
						}
						b += ones
					} else {
						if err := flush(pfn + b); err != nil {
							return err
						}
						zeros := uint64(bits.TrailingZeros64(w >> b))
						if zeros > width-b {
							zeros = width - b
						}
						b += zeros
					}
				}
			}
			if width == 64 {
				i += 8
			} else {
				i++
			}
		}
		done += n
	}
	if err := flush(nbits); err != nil {
		return err
	}
	if setBits != present {
		f.partial = append(f.partial, formatErr(base+0x28, "bitmap header",
			"TotalPresentPages %d differs from the %d bits set in the bitmap (corrupt or truncated dump)", present, setBits))
	}
	return nil
}

// initRDMP reads the "RDMP" range list of DumpType 8, 9 and 0xA dumps.
//
// This layout has a single public source (kdmp-parser, dump-formats §2.3,
// reliability [1]): a 0x20-byte header, 0x10 bytes of type-specific fields,
// then {BasePfn, PageCount} pairs up to FirstPageOffset; pages are packed
// from FirstPageOffset in range order. The walk stops at the first range
// with BasePfn 0 and, for type 0xA, once TotalNumberOfPages is reached.
func (m *memoryDump) initRDMP(f *File) error {
	base := f.hdr.Size()
	var hb [rdmpHeaderLen]byte
	if err := readAt(f.r, f.size, hb[:], base, "RDMP header"); err != nil {
		return err
	}
	le := binary.LittleEndian
	if le.Uint32(hb[4:]) != sigRDMP || le.Uint32(hb[8:]) != sigDUMP {
		return formatErr(base+4, "RDMP header", "signature %q is not RDMPDUMP", hb[4:12])
	}
	meta := le.Uint64(hb[0x10:])
	first := le.Uint64(hb[0x18:])
	arrayOff := uint64(base) + rdmpHeaderLen
	if meta < 0x20 || first < arrayOff || meta-0x20 != first-(uint64(base)+0x40) || first > maxFileOffset {
		return formatErr(base+0x10, "RDMP header", "MetadataSize %#x and FirstPageOffset %#x disagree", meta, first)
	}
	count := (first - arrayOff) / 16
	var total uint64
	isComplete := f.hdr.DumpType == DumpTypeCompleteRDMP
	if isComplete {
		count = min(count, uint64(le.Uint32(hb[0x20:])))
		total = le.Uint64(hb[0x28:])
	}
	if count > maxRDMPRanges {
		return formatErr(base+0x10, "RDMP header", "%d ranges exceed the limit of %d", count, maxRDMPRanges)
	}
	if !inFile(arrayOff, count*16, f.size) {
		return &FormatError{Offset: int64(arrayOff), What: "RDMP ranges", Msg: fmt.Sprintf("%d ranges extend past the end of the file", count), Err: io.ErrUnexpectedEOF}
	}
	buf := make([]byte, count*16)
	if err := readAt(f.r, f.size, buf, int64(arrayOff), "RDMP ranges"); err != nil {
		return err
	}
	off := first
	var seen uint64
	for i := range count {
		pfn, n := le.Uint64(buf[16*i:]), le.Uint64(buf[16*i+8:])
		if pfn == 0 {
			break
		}
		if isComplete && seen+n > total {
			n = total - seen
		}
		if n == 0 {
			continue
		}
		if n > maxRunPages || pfn > maxRunPages || off+n*PageSize > maxFileOffset {
			return formatErr(int64(arrayOff+16*i), "RDMP ranges", "range %d (%#x pages at PFN %#x) is out of range", i, n, pfn)
		}
		m.runs = append(m.runs, PhysicalRange{PFN: pfn, Pages: n, Offset: int64(off)})
		off += n * PageSize
		seen += n
		if isComplete && seen >= total {
			break
		}
	}
	if err := m.sortRuns(int64(arrayOff), "RDMP ranges"); err != nil {
		return err
	}
	if len(m.runs) == 0 {
		return formatErr(int64(arrayOff), "RDMP ranges", "no page ranges")
	}
	return nil
}

// errNoTranslation is used for machines whose dumps store memory this
// package cannot translate (32-bit ARM).
var errNoTranslation = fmt.Errorf("%w: no virtual-to-physical translation for this machine", ErrUnsupported)

// kernelState caches what kernel.go derives from a memory-bearing dump.
type kernelState struct {
	mu       sync.Mutex
	keys     *KDBGKeys
	kdbg     *KDBG
	kdbgErr  error
	kdbgDone bool
	mods     []Module
	modsErr  error
	modsDone bool
	cur      *cpuState
	curErr   error
}
