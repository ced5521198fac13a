package kdumptest

import (
	"fmt"
	"os"
	"slices"
)

// Build builds the dump a Spec describes and returns it as a sparse Image
// with the facts a reader should find in it.
func Build(s Spec) (*Image, *Facts, error) {
	s, err := normalize(s)
	if err != nil {
		return nil, nil, err
	}
	o, err := buildObjects(s)
	if err != nil {
		return nil, nil, err
	}
	var im *Image
	if s.Kind == Triage {
		im = o.writeTriage()
	} else {
		im, err = o.writeMemoryDump()
		if err != nil {
			return nil, nil, err
		}
	}
	o.f.FileSize = im.Size()
	return im, o.f, nil
}

// BuildFile builds the dump a Spec describes and writes it to path as a
// sparse file (see Image.WriteFile).
func BuildFile(path string, s Spec) (*Facts, error) {
	im, facts, err := Build(s)
	if err != nil {
		return nil, err
	}
	fh, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := im.WriteFile(fh); err != nil {
		fh.Close()
		return nil, err
	}
	return facts, fh.Close()
}

// MustBuild is Build for tests: it panics on an invalid Spec.
func MustBuild(s Spec) (*Image, *Facts) {
	im, f, err := Build(s)
	if err != nil {
		panic(err)
	}
	return im, f
}

// ---- headers ----

const pageFill = "PAGE"

func fillPAGE(b []byte) {
	for i := 0; i+4 <= len(b); i += 4 {
		copy(b[i:], pageFill)
	}
}

// header writes the DUMP_HEADER64 / DUMP_HEADER32 (dump-formats §1.2, §1.3).
func (o *objects) header(dumpType uint32, fileSize int64, runs []PageRange) []byte {
	s, f := o.s, o.f
	ctx := o.ctxs[s.CrashCPU]
	if s.Arch.Is64() {
		h := make([]byte, 0x2000)
		fillPAGE(h)
		copy(h[0:], "PAGEDU64")
		le.PutUint32(h[0x8:], 0xF)
		le.PutUint32(h[0xC:], s.Build)
		le.PutUint64(h[0x10:], o.dtb)
		le.PutUint64(h[0x18:], f.PfnDataBase)
		le.PutUint64(h[0x20:], f.PsLoadedModuleList)
		le.PutUint64(h[0x28:], f.PsActiveProcessHead)
		le.PutUint32(h[0x30:], uint32(s.Arch.Machine()))
		le.PutUint32(h[0x34:], uint32(s.Processors))
		le.PutUint32(h[0x38:], s.BugCheck)
		for i, p := range f.Params {
			le.PutUint64(h[0x40+8*i:], p)
		}
		le.PutUint64(h[0x80:], f.KDBG)
		if runs != nil {
			le.PutUint32(h[0x88:], uint32(len(runs)))
			le.PutUint32(h[0x8C:], 0)
			var total uint64
			for i, r := range runs {
				le.PutUint64(h[0x98+16*i:], r.PFN)
				le.PutUint64(h[0xA0+16*i:], r.Pages)
				total += r.Pages
			}
			le.PutUint64(h[0x90:], total)
		}
		clear(h[0x348 : 0x348+3000])
		copy(h[0x348:], ctx)
		clear(h[0xF00:0xF98])
		le.PutUint32(h[0xF00:], 0x80000003)
		le.PutUint64(h[0xF10:], f.IP)
		le.PutUint32(h[0xF98:], dumpType)
		le.PutUint64(h[0xFA0:], uint64(fileSize))
		le.PutUint64(h[0xFA8:], 132545268000000000) // 2021-01-07
		le.PutUint64(h[0x1030:], 36000000000)       // one hour
		le.PutUint32(h[0x1038:], 0)
		if dumpType == 4 {
			le.PutUint32(h[0x1038:], 0xEFF)
		}
		le.PutUint32(h[0x1040:], 1)
		le.PutUint32(h[0x1044:], 0x110)
		h[0x104C], h[0x104D] = 0, 0
		return h
	}
	h := make([]byte, 0x1000)
	fillPAGE(h)
	copy(h[0:], "PAGEDUMP")
	le.PutUint32(h[0x8:], 0xF)
	le.PutUint32(h[0xC:], s.Build)
	le.PutUint32(h[0x10:], uint32(o.dtb))
	le.PutUint32(h[0x14:], uint32(f.PfnDataBase))
	le.PutUint32(h[0x18:], uint32(f.PsLoadedModuleList))
	le.PutUint32(h[0x1C:], uint32(f.PsActiveProcessHead))
	le.PutUint32(h[0x20:], uint32(s.Arch.Machine()))
	le.PutUint32(h[0x24:], uint32(s.Processors))
	le.PutUint32(h[0x28:], s.BugCheck)
	for i, p := range f.Params {
		le.PutUint32(h[0x2C+4*i:], uint32(p))
	}
	if !s.PAEUnset {
		h[0x5C] = 0
		if s.Arch == X86PAE {
			h[0x5C] = 1
		}
	}
	h[0x5D], h[0x5E], h[0x5F] = 0, 0, 0
	le.PutUint32(h[0x60:], uint32(f.KDBG))
	if runs != nil {
		le.PutUint32(h[0x64:], uint32(len(runs)))
		var total uint64
		for i, r := range runs {
			le.PutUint32(h[0x6C+8*i:], uint32(r.PFN))
			le.PutUint32(h[0x70+8*i:], uint32(r.Pages))
			total += r.Pages
		}
		le.PutUint32(h[0x68:], uint32(total))
	}
	clear(h[0x320 : 0x320+1200])
	copy(h[0x320:], ctx)
	clear(h[0x7D0:0x820])
	le.PutUint32(h[0x7D0:], 0x80000003)
	le.PutUint32(h[0x7DC:], uint32(f.IP))
	le.PutUint32(h[0xF88:], dumpType)
	le.PutUint32(h[0xF8C:], 0)
	if dumpType == 4 {
		le.PutUint32(h[0xF8C:], 0xEFF)
	}
	le.PutUint32(h[0xF94:], 1)
	le.PutUint32(h[0xF98:], 0x110)
	le.PutUint64(h[0xFA0:], uint64(fileSize))
	le.PutUint64(h[0xFB8:], 36000000000)
	le.PutUint64(h[0xFC0:], 132545268000000000)
	return h
}

// ---- triage dumps (dump-formats §3) ----

func align8(x int64) int64 { return (x + 7) &^ 7 }

func (o *objects) writeTriage() *Image {
	s, f, lay := o.s, o.f, o.lay
	is64 := s.Arch.Is64()
	im := NewImage(0)
	hsize, thsize := int64(0x1000), int64(0x68)
	if is64 {
		hsize, thsize = 0x2000, 0x80
	}
	off := hsize + thsize
	put := func(b []byte) int64 {
		at := align8(off)
		im.WriteAt(b, at)
		off = at + int64(len(b))
		return at
	}
	// Mm information.
	mm := make([]byte, 0x50)
	le.PutUint32(mm[0:], 1)
	le.PutUint32(mm[4:], 0x50)
	mmOff := put(mm)
	// Unloaded drivers.
	var unl []byte
	if is64 {
		unl = make([]byte, 8+0x38*len(s.Unloaded))
		for i, u := range s.Unloaded {
			e := unl[8+0x38*i:]
			name := utf16le(u.Name)
			le.PutUint16(e[0:], uint16(len(name)))
			le.PutUint16(e[2:], uint16(len(name)))
			copy(e[0x10:0x10+22], name)
			le.PutUint64(e[0x28:], u.Start)
			le.PutUint64(e[0x30:], u.End)
		}
	} else {
		unl = make([]byte, 4+0x28*len(s.Unloaded))
		for i, u := range s.Unloaded {
			e := unl[4+0x28*i:]
			name := utf16le(u.Name)
			le.PutUint16(e[0:], uint16(len(name)))
			le.PutUint16(e[2:], uint16(len(name)))
			copy(e[0x8:0x8+22], name)
			le.PutUint32(e[0x20:], uint32(u.Start))
			le.PutUint32(e[0x24:], uint32(u.End))
		}
	}
	le.PutUint32(unl, uint32(len(s.Unloaded)))
	unlOff := put(unl)
	f.Unloaded = nil
	for _, u := range s.Unloaded {
		if r := []rune(u.Name); len(r) > 11 {
			u.Name = string(r[:11])
		}
		f.Unloaded = append(f.Unloaded, u)
	}
	prcbOff := put(o.v.read(f.PRCBs[s.CrashCPU], lay.prcbSize))
	procOff := put(o.v.read(f.Process, lay.procSize))
	threadOff := put(o.v.read(f.Thread, lay.thSize))
	stackOff := put(o.v.read(f.TopOfStack, int(f.StackBase-f.TopOfStack)))
	f.Stack = f.Stack[f.TopOfStack-f.StackLimit:]
	f.StackStart = f.TopOfStack
	kdbgOff := put(o.kdbgPlain)
	// Driver list and string pool.
	stride := int64(0x4C)
	if is64 {
		stride = 0x90
	}
	n := int64(len(s.Modules))
	listOff := align8(off)
	off = listOff + n*stride
	poolOff := align8(off)
	off = poolOff
	entries := make([]byte, n*stride)
	for i, m := range s.Modules {
		name := utf16le(m.Path)
		ds := make([]byte, 4+len(name)+2)
		le.PutUint32(ds, uint32(len(name)/2))
		copy(ds[4:], name)
		at := put(ds)
		e := entries[int64(i)*stride:]
		le.PutUint32(e[0:], uint32(at))
		if is64 {
			le.PutUint64(e[0x38:], m.Base)
			le.PutUint32(e[0x48:], m.Size)
			le.PutUint32(e[0x80:], m.CheckSum)
			le.PutUint32(e[0x88:], m.TimeDateStamp)
		} else {
			le.PutUint32(e[0x1C:], uint32(m.Base))
			le.PutUint32(e[0x24:], m.Size)
			le.PutUint32(e[0x44:], m.CheckSum)
			le.PutUint32(e[0x48:], m.TimeDateStamp)
		}
	}
	im.WriteAt(entries, listOff)
	poolSize := align8(off) - poolOff
	off = align8(off)
	// Triage modules report names from the path.
	for i := range f.Modules {
		f.Modules[i].Name = baseOf(f.Modules[i].Path)
	}
	// Data blocks: descriptor array, then the bytes packed.
	bstride := int64(12)
	if is64 {
		bstride = 16
	}
	blocksOff := align8(off)
	desc := make([]byte, int64(len(o.blocks))*bstride)
	data := blocksOff + int64(len(desc))
	for i, b := range o.blocks {
		bytes := o.v.read(b[0], int(b[1]))
		im.WriteAt(bytes, data)
		d := desc[int64(i)*bstride:]
		if is64 {
			le.PutUint64(d[0:], b[0])
			le.PutUint32(d[8:], uint32(data))
			le.PutUint32(d[12:], uint32(b[1]))
		} else {
			le.PutUint32(d[0:], uint32(b[0]))
			le.PutUint32(d[4:], uint32(data))
			le.PutUint32(d[8:], uint32(b[1]))
		}
		data += int64(len(bytes))
	}
	im.WriteAt(desc, blocksOff)
	off = data
	// Data page: the kernel's PE header page.
	pageOff := put(o.v.read(f.KernBase, pageSize))
	validOff := put([]byte("TRGD"))
	size := off

	t := make([]byte, thsize)
	u32 := func(o int, v int64) { le.PutUint32(t[o:], uint32(v)) }
	u32(0x4, size)
	u32(0x8, validOff)
	if is64 {
		u32(0xC, 0x348)
		u32(0x10, 0xF00)
	} else {
		u32(0xC, 0x320)
		u32(0x10, 0x7D0)
	}
	u32(0x14, mmOff)
	u32(0x18, unlOff)
	u32(0x1C, prcbOff)
	u32(0x20, procOff)
	u32(0x24, threadOff)
	u32(0x28, stackOff)
	u32(0x2C, int64(f.StackBase-f.TopOfStack))
	u32(0x30, listOff)
	u32(0x34, n)
	u32(0x38, poolOff)
	u32(0x3C, poolSize)
	le.PutUint32(t[0x44:], 0xFFFFFFFF)
	if is64 {
		le.PutUint64(t[0x48:], f.TopOfStack)
		le.PutUint64(t[0x60:], f.KernBase)
		u32(0x68, pageOff)
		u32(0x6C, pageSize)
		u32(0x70, kdbgOff)
		u32(0x74, int64(len(o.kdbgPlain)))
		u32(0x78, blocksOff)
		u32(0x7C, int64(len(o.blocks)))
	} else {
		u32(0x48, int64(f.TopOfStack))
		u32(0x4C, int64(f.KernBase))
		u32(0x50, pageOff)
		u32(0x54, pageSize)
		u32(0x58, kdbgOff)
		u32(0x5C, int64(len(o.kdbgPlain)))
		u32(0x60, blocksOff)
		u32(0x64, int64(len(o.blocks)))
	}
	im.WriteAt(t, hsize)
	required := size
	if s.DumpBlob {
		blob := make([]byte, 0x60)
		copy(blob, "DumpBlob")
		le.PutUint32(blob[8:], 0x10)
		le.PutUint32(blob[12:], 0xF000|s.Build)
		le.PutUint32(blob[16:], 0x20)
		copy(blob[0x20:], "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10")
		le.PutUint32(blob[0x30:], 0x30)
		copy(blob[0x34:], "win32kfull")
		im.WriteAt(blob, align8(size))
		required = im.Size() + 0x10000 // writers over-estimate
	}
	im.WriteAt(o.header(4, required, nil), 0)
	f.TriageOffset = hsize
	f.DTB = o.dtb
	return im
}

// ---- memory dumps ----

// physMem is the synthetic machine's physical memory: only pages that hold
// something exist.
type physMem struct {
	top      uint64 // highest PFN + 1
	pages    map[uint64]*[pageSize]byte
	next     uint64
	step     uint64
	reserved [][2]uint64 // PFN ranges the allocator skips
}

// Physical layout constants (PFNs).
const (
	rootPFN       = 0x1AD   // top-level page table (0x1AD000)
	largePFN      = 0x400   // 4 MiB of frames for the kernel's large pages
	allocStartPFN = 0x800   // first PFN for 4 KiB allocations
	holePFN       = 0xA0    // inside the legacy hole [0x9F, 0x100): never RAM
	hugePFN       = 0x40000 // 1 GiB frame for the huge-page probe
)

func (p *physMem) isRAM(pfn uint64) bool {
	switch {
	case pfn == 0 || pfn >= p.top:
		return false
	case pfn >= 0x9F && pfn < 0x100:
		return false
	case p.top > 0x100000 && pfn >= 0xC0000 && pfn < 0x100000:
		return false
	}
	return true
}

// ramRanges lists the RAM of the machine.
func (p *physMem) ramRanges() []PageRange {
	out := []PageRange{{1, 0x9F - 1}}
	if p.top > 0x100000 {
		out = append(out, PageRange{0x100, 0xC0000 - 0x100}, PageRange{0x100000, p.top - 0x100000})
	} else {
		out = append(out, PageRange{0x100, p.top - 0x100})
	}
	return out
}

func (p *physMem) page(pfn uint64) *[pageSize]byte {
	pg := p.pages[pfn]
	if pg == nil {
		pg = new([pageSize]byte)
		p.pages[pfn] = pg
	}
	return pg
}

func (p *physMem) alloc() (uint64, error) {
	for tries := 0; tries < 1<<22; tries++ {
		pfn := p.next
		p.next += p.step
		if p.next >= p.top {
			p.next, p.step = allocStartPFN+1, 1
		}
		if !p.isRAM(pfn) || p.pages[pfn] != nil {
			continue
		}
		skip := false
		for _, r := range p.reserved {
			if pfn >= r[0] && pfn < r[1] {
				skip = true
			}
		}
		if !skip {
			p.page(pfn)
			return pfn, nil
		}
	}
	return 0, fmt.Errorf("kdumptest: out of physical memory")
}

func (p *physMem) get64(pa uint64) uint64 { return le.Uint64(p.page(pa / pageSize)[pa%pageSize:]) }
func (p *physMem) put64(pa, v uint64)     { le.PutUint64(p.page(pa / pageSize)[pa%pageSize:], v) }
func (p *physMem) get32(pa uint64) uint32 { return le.Uint32(p.page(pa / pageSize)[pa%pageSize:]) }
func (p *physMem) put32(pa uint64, v uint32) {
	le.PutUint32(p.page(pa / pageSize)[pa%pageSize:], v)
}

// pager writes page tables for one architecture.
type pager struct {
	arch Arch
	pm   *physMem
	root uint64 // PA of the top table (PDPT for PAE)
	err  error
}

// next returns the table that entry (pa) points to, creating it.
func (pg *pager) next(entryPA uint64, size int) uint64 {
	var e uint64
	if size == 4 {
		e = uint64(pg.pm.get32(entryPA))
	} else {
		e = pg.pm.get64(entryPA)
	}
	if e&1 != 0 {
		return e & 0x0000FFFFFFFFF000
	}
	pfn, err := pg.pm.alloc()
	if err != nil {
		pg.err = err
		pfn = rootPFN // keep going; Build reports the error
	}
	t := pfn * pageSize
	switch {
	case size == 4:
		pg.pm.put32(entryPA, uint32(t)|0x63)
	case pg.arch == ARM64:
		pg.pm.put64(entryPA, t|3)
	case pg.arch == X86PAE && entryPA&^0xFFF == pg.root&^0xFFF && entryPA < pg.root+32:
		pg.pm.put64(entryPA, t|1) // PDPT entries have only the present bit
	default:
		pg.pm.put64(entryPA, t|0x63)
	}
	return t
}

// slot returns the PA of the entry for va at the given depth (0 = top)
// and the entry size, creating intermediate tables.
func (pg *pager) slot(va uint64, depth int) (uint64, int) {
	switch pg.arch {
	case X86:
		if depth == 0 {
			return pg.root + (va>>22&0x3FF)*4, 4
		}
		pt := pg.next(pg.root+(va>>22&0x3FF)*4, 4)
		return pt + (va>>12&0x3FF)*4, 4
	case X86PAE:
		e := pg.root + (va>>30&3)*8
		if depth == 0 {
			return e, 8
		}
		pd := pg.next(e, 8)
		if depth == 1 {
			return pd + (va>>21&0x1FF)*8, 8
		}
		pt := pg.next(pd+(va>>21&0x1FF)*8, 8)
		return pt + (va>>12&0x1FF)*8, 8
	}
	t := pg.root
	for level := 0; ; level++ {
		e := t + (va>>(39-9*uint(level))&0x1FF)*8
		if level == depth {
			return e, 8
		}
		t = pg.next(e, 8)
	}
}

// leafDepth is the depth of 4 KiB entries.
func (pg *pager) leafDepth() int {
	switch pg.arch {
	case X86:
		return 1
	case X86PAE:
		return 2
	}
	return 3
}

func (pg *pager) setEntry(va uint64, depth int, v uint64) {
	pa, size := pg.slot(va, depth)
	if size == 4 {
		pg.pm.put32(pa, uint32(v))
	} else {
		pg.pm.put64(pa, v)
	}
}

// map4K maps one page.
func (pg *pager) map4K(va, pa uint64) {
	v := pa | 0x63 // present, write, accessed, dirty
	switch pg.arch {
	case AMD64, X86PAE:
		v |= 1 << 63 // NX: must be masked off by a reader
	case ARM64:
		v = pa | 3 | 1<<10 | 1<<53 | 1<<54 // page, AF, PXN, UXN
	}
	pg.setEntry(va, pg.leafDepth(), v)
}

// mapLarge maps a 2 MiB page (4 MiB on x86 without PAE).
func (pg *pager) mapLarge(va, pa uint64) {
	switch pg.arch {
	case X86:
		pg.setEntry(va, 0, pa|0xE3)
	case X86PAE:
		pg.setEntry(va, 1, pa|0xE3|1<<63)
	case AMD64:
		pg.setEntry(va, 2, pa|0xE3|1<<12|1<<63) // PS, PAT bit set
	case ARM64:
		pg.setEntry(va, 2, pa|1|1<<10)
	}
}

// mapHuge maps a 1 GiB page (x64, ARM64).
func (pg *pager) mapHuge(va, pa uint64) {
	if pg.arch == ARM64 {
		pg.setEntry(va, 1, pa|1|1<<10)
		return
	}
	pg.setEntry(va, 1, pa|0xE3|1<<63)
}

func fillPattern(pg *[pageSize]byte, va uint64) {
	for i := 0; i < pageSize; i += 8 {
		le.PutUint64(pg[i:], Pattern(va+uint64(i)))
	}
}

func (o *objects) writeMemoryDump() (*Image, error) {
	s, f := o.s, o.f
	pm := &physMem{top: s.MemoryBytes / pageSize, pages: make(map[uint64]*[pageSize]byte), next: allocStartPFN, step: 1}
	if pm.top > 0x100000 {
		pm.step = max(1, (pm.top-allocStartPFN)/8192)
	}
	pm.reserved = append(pm.reserved, [2]uint64{largePFN, largePFN + 0x400})
	huge := pm.top >= 2*hugePFN && s.Arch.Is64()
	if huge {
		pm.reserved = append(pm.reserved, [2]uint64{hugePFN, 2 * hugePFN})
	}
	pm.page(rootPFN)
	pg := &pager{arch: s.Arch, pm: pm, root: o.dtb}

	// Probe pages, written before placement.
	f.LargePageVA = o.plan.kern + 0x300000
	var probe [pageSize]byte
	fillPattern(&probe, f.LargePageVA)
	o.v.write(f.LargePageVA, probe[:])
	f.LargePageSize = 0x200000
	if s.Arch == X86 {
		f.LargePageSize = 0x400000
	}
	f.LargePagePA = largePFN*pageSize + 0x300000

	// Place every written virtual page.
	vas := make([]uint64, 0, len(o.v.pages))
	for va := range o.v.pages {
		vas = append(vas, va)
	}
	slices.Sort(vas)
	for _, va := range vas {
		var pfn uint64
		if va >= o.plan.kern && va < o.plan.kern+o.plan.largeRegion {
			pfn = largePFN + (va-o.plan.kern)/pageSize
		} else {
			var err error
			if pfn, err = pm.alloc(); err != nil {
				return nil, err
			}
			pg.map4K(va, pfn*pageSize)
		}
		*pm.page(pfn) = *o.v.pages[va]
	}
	if s.Arch == X86 {
		pg.mapLarge(o.plan.kern, largePFN*pageSize)
	} else {
		pg.mapLarge(o.plan.kern, largePFN*pageSize)
		pg.mapLarge(o.plan.kern+0x200000, largePFN*pageSize+0x200000)
	}
	if huge {
		f.HugePageVA = o.plan.huge + 0x12345000
		f.HugePagePA = hugePFN*pageSize + 0x12345000
		pg.mapHuge(o.plan.huge, hugePFN*pageSize)
		fillPattern(pm.page(f.HugePagePA/pageSize), f.HugePageVA)
	}
	if s.Arch != ARM64 {
		pfn, err := pm.alloc()
		if err != nil {
			return nil, err
		}
		f.TransitionVA, f.TransitionPA = o.plan.probe, pfn*pageSize
		fillPattern(pm.page(pfn), f.TransitionVA)
		tv := pfn*pageSize | 0x800
		if s.Arch == AMD64 {
			tv |= 1 << 46 // a software bit above the transition frame mask
		}
		pg.setEntry(f.TransitionVA, pg.leafDepth(), tv)
		f.PrototypeVA = o.plan.probe + 0x1000
		pg.setEntry(f.PrototypeVA, pg.leafDepth(), 0x12345400)
		f.PageFileVA = o.plan.probe + 0x3000
		pg.setEntry(f.PageFileVA, pg.leafDepth(), 0x2345000|1<<1|0x80) // page-file number and offset, not valid
	}
	f.AbsentVA = o.plan.probe + 0x2000
	pg.map4K(f.AbsentVA, holePFN*pageSize)
	if pg.err != nil {
		return nil, pg.err
	}

	// Which pages the dump stores.
	var stored []PageRange
	if s.Kind.storesAll() {
		stored = pm.ramRanges()
	} else {
		pfns := make([]uint64, 0, len(pm.pages))
		for pfn := range pm.pages {
			if pm.isRAM(pfn) {
				pfns = append(pfns, pfn)
			}
		}
		slices.Sort(pfns)
		for _, p := range pfns {
			if n := len(stored); n > 0 && stored[n-1].PFN+stored[n-1].Pages == p {
				stored[n-1].Pages++
				continue
			}
			stored = append(stored, PageRange{p, 1})
		}
	}
	f.Ranges = stored
	for _, r := range stored {
		f.StoredPages += r.Pages
	}

	hsize := int64(0x1000)
	if s.Arch.Is64() {
		hsize = 0x2000
	}
	im := NewImage(0)
	var first int64
	var runs []PageRange
	switch s.Kind {
	case Full:
		if len(stored) > 42 {
			return nil, fmt.Errorf("kdumptest: %d runs do not fit the header", len(stored))
		}
		runs = stored
		first = hsize
	case BitmapKernel, BitmapFull, BitmapLive:
		bmBytes := int64((pm.top + 7) / 8)
		first = (hsize + 0x38 + bmBytes + pageSize - 1) &^ (pageSize - 1)
		bh := make([]byte, 0x38)
		sig := "SDMP"
		if s.Kind == BitmapFull {
			sig = "FDMP"
		}
		copy(bh, sig+"DUMP")
		le.PutUint64(bh[0x20:], uint64(first))
		le.PutUint64(bh[0x28:], f.StoredPages)
		le.PutUint64(bh[0x30:], pm.top)
		im.WriteAt(bh, hsize)
		// The bitmap, a range at a time (whole bytes of 0xFF in the middle).
		for _, r := range stored {
			writeBits(im, hsize+0x38, r.PFN, r.Pages)
		}
		f.BitmapHeaderOffset = hsize
	case RDMPKernel, RDMPKernelUser, RDMPComplete:
		arr := hsize + 0x30
		first = (arr + int64(len(stored)+1)*16 + pageSize - 1) &^ (pageSize - 1)
		rh := make([]byte, 0x30)
		le.PutUint32(rh[0:], 0x40)
		copy(rh[4:], "RDMPDUMP")
		le.PutUint64(rh[0x10:], uint64(first-hsize-0x20))
		le.PutUint64(rh[0x18:], uint64(first))
		if s.Kind == RDMPComplete {
			le.PutUint32(rh[0x20:], uint32(len(stored)))
			le.PutUint64(rh[0x28:], f.StoredPages)
		}
		im.WriteAt(rh, hsize)
		ra := make([]byte, 16*len(stored))
		for i, r := range stored {
			le.PutUint64(ra[16*i:], r.PFN)
			le.PutUint64(ra[16*i+8:], r.Pages)
		}
		im.WriteAt(ra, arr)
		f.BitmapHeaderOffset = hsize
	}
	f.FirstPageOffset = first
	// Pages, packed in PFN order.
	off := first
	for _, r := range stored {
		for pfn, pg := range pm.pages {
			if pfn >= r.PFN && pfn < r.PFN+r.Pages {
				im.WriteAt(pg[:], off+int64(pfn-r.PFN)*pageSize)
			}
		}
		off += int64(r.Pages) * pageSize
	}
	im.size = max(im.size, off)
	im.WriteAt(o.header(s.Kind.DumpType(), off, runs), 0)
	return im, nil
}

// writeBits sets bits [pfn, pfn+n) of the bitmap at off.
func writeBits(im *Image, off int64, pfn, n uint64) {
	end := pfn + n
	for pfn < end && pfn%8 != 0 {
		setBit(im, off, pfn)
		pfn++
	}
	if full := (end - pfn) / 8; full > 0 {
		buf := make([]byte, min(full, 1<<16))
		for i := range buf {
			buf[i] = 0xFF
		}
		for done := uint64(0); done < full; {
			k := min(uint64(len(buf)), full-done)
			im.WriteAt(buf[:k], off+int64(pfn/8+done))
			done += k
		}
		pfn += full * 8
	}
	for ; pfn < end; pfn++ {
		setBit(im, off, pfn)
	}
}

func setBit(im *Image, off int64, pfn uint64) {
	var b [1]byte
	im.ReadAt(b[:], off+int64(pfn/8))
	b[0] |= 1 << (pfn % 8)
	im.WriteAt(b[:], off+int64(pfn/8))
}
