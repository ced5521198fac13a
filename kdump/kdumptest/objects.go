package kdumptest

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"unicode/utf16"
)

var le = binary.LittleEndian

const pageSize = 0x1000

// vstore is a sparse virtual address space: kernel objects are written here
// first, then placed in physical memory (memory dumps) or copied into the
// triage sections (triage dumps).
type vstore struct {
	pages map[uint64]*[pageSize]byte // keyed by page VA
}

func newVstore() *vstore { return &vstore{pages: make(map[uint64]*[pageSize]byte)} }

func (v *vstore) write(va uint64, b []byte) {
	for done := 0; done < len(b); {
		a := va + uint64(done)
		pg := v.pages[a&^(pageSize-1)]
		if pg == nil {
			pg = new([pageSize]byte)
			v.pages[a&^(pageSize-1)] = pg
		}
		done += copy(pg[a%pageSize:], b[done:])
	}
}

func (v *vstore) read(va uint64, n int) []byte {
	out := make([]byte, n)
	for done := 0; done < n; {
		a := va + uint64(done)
		k := min(n-done, int(pageSize-a%pageSize))
		if pg := v.pages[a&^(pageSize-1)]; pg != nil {
			copy(out[done:done+k], pg[a%pageSize:])
		}
		done += k
	}
	return out
}

func (v *vstore) u64(va, x uint64) { var b [8]byte; le.PutUint64(b[:], x); v.write(va, b[:]) }
func (v *vstore) u32(va uint64, x uint32) {
	var b [4]byte
	le.PutUint32(b[:], x)
	v.write(va, b[:])
}
func (v *vstore) u16(va uint64, x uint16) {
	var b [2]byte
	le.PutUint16(b[:], x)
	v.write(va, b[:])
}

// layout holds the kernel structure offsets a synthetic dump uses. They are
// the builder's own constants (dump-formats §4, §6.2, §7.4); a reader must
// take them from the KDBG block, not assume them.
type layout struct {
	ptr                                                             int
	ldrSize, ldrDllBase, ldrEntry, ldrSizeOfImage, ldrFull, ldrBase int
	prcbSize, prcbCurThread, prcbIdle, prcbCtxPtr, prcbInlineCtx    int
	prcbNumber                                                      int
	thSize, thInitialStack, thStackLimit, thStackBase, thKernStack  int
	thApcProcess, thTeb                                             int
	procSize, procDTB, procPid, procLinks, procImageName            int
	ctxSize, unlStride                                              int
}

func layoutFor(a Arch, build uint32) layout {
	switch a {
	case AMD64, ARM64:
		l := layout{ptr: 8,
			ldrSize: 0xA0, ldrDllBase: 0x30, ldrEntry: 0x38, ldrSizeOfImage: 0x40, ldrFull: 0x48, ldrBase: 0x58,
			prcbSize: 0x800, prcbCurThread: 8, prcbIdle: 0x18, prcbCtxPtr: 0x700, prcbInlineCtx: 0x100, prcbNumber: 0x24,
			thSize: 0x898, thInitialStack: 0x28, thStackLimit: 0x30, thStackBase: 0x38, thKernStack: 0x58, thApcProcess: 0xB8, thTeb: 0xF0,
			procSize: 0xA40, procDTB: 0x28, procPid: 0x440, procLinks: 0x448, procImageName: 0x5A8,
			ctxSize: 0x4D0, unlStride: 0x28}
		switch {
		case build < 9200:
			l.procImageName, l.procPid, l.procLinks = 0x2E0, 0x180, 0x188
		case build < 14393:
			l.procImageName, l.procPid, l.procLinks = 0x438, 0x2E0, 0x2E8
		case build < 19041:
			l.procImageName, l.procPid, l.procLinks = 0x450, 0x2E8, 0x2F0
		}
		if a == ARM64 {
			l.thApcProcess, l.ctxSize = 0xB0, 0x390
			if build >= 22000 {
				l.procImageName, l.procPid, l.procLinks, l.procSize = 0x560, 0x3F8, 0x400, 0xC80
			}
		}
		return l
	}
	l := layout{ptr: 4,
		ldrSize: 0x50, ldrDllBase: 0x18, ldrEntry: 0x1C, ldrSizeOfImage: 0x20, ldrFull: 0x24, ldrBase: 0x2C,
		prcbSize: 0x600, prcbCurThread: 4, prcbIdle: 8, prcbCtxPtr: 0x5F0, prcbInlineCtx: 0x18, prcbNumber: 0x3CC,
		thSize: 0x300, thInitialStack: 0x18, thStackLimit: 0x1C, thStackBase: 0x190, thKernStack: 0x30, thApcProcess: 0x50, thTeb: 0x88,
		procSize: 0x300, procDTB: 0x18, procPid: 0xB4, procLinks: 0xB8, procImageName: 0x174,
		ctxSize: 0x2CC, unlStride: 0x18}
	switch {
	case build < 9200:
		l.procImageName = 0x16C
	case build < 10240:
		l.procImageName = 0x170
	}
	if a == ARM {
		l.ctxSize = 0x1A0
	}
	return l
}

// Virtual address plan.
type vaPlan struct {
	kern, pool, stackBase, probe, huge uint64
	largeRegion                        uint64 // bytes mapped with large pages from kern
}

func planFor(a Arch, kern uint64) vaPlan {
	if a.Is64() {
		return vaPlan{kern: kern, pool: 0xffffa08000000000, stackBase: 0xffff850429893000, probe: 0xffffb00000000000, huge: 0xffffc00000000000, largeRegion: 0x400000}
	}
	return vaPlan{kern: kern, pool: 0x85000000, stackBase: 0x8c893000, probe: 0x90000000, largeRegion: 0x400000}
}

// objects builds the kernel objects of a dump in a vstore.
type objects struct {
	s    Spec
	lay  layout
	plan vaPlan
	v    *vstore
	f    *Facts
	pool uint64

	kdbgPlain []byte
	ctxs      [][]byte // per CPU CONTEXT bytes
	ctxVAs    []uint64
	blocks    [][2]uint64 // triage data blocks: {va, size}
	modLDR    []uint64
	unlArray  uint64
	buildLab  uint64
	dtb       uint64
}

func (o *objects) alloc(n int, align uint64) uint64 {
	o.pool = (o.pool + align - 1) &^ (align - 1)
	va := o.pool
	o.pool += uint64(n)
	return va
}

// putPtr writes a pointer of the layout's size.
func (o *objects) putPtr(va, x uint64) {
	if o.lay.ptr == 4 {
		o.v.u32(va, uint32(x))
		return
	}
	o.v.u64(va, x)
}

// kdbgPtr returns a pointer as KDBG stores it: 32-bit values sign-extended.
func (o *objects) kdbgPtr(x uint64) uint64 {
	if o.lay.ptr == 4 {
		return uint64(int64(int32(uint32(x))))
	}
	return x
}

func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		le.PutUint16(b[2*i:], c)
	}
	return b
}

// putUnicode writes a UNICODE_STRING at va describing s stored at buf.
func (o *objects) putUnicode(va uint64, s string) {
	if s == "" {
		return
	}
	b := utf16le(s)
	buf := o.alloc(len(b)+2, 8)
	o.v.write(buf, b)
	o.v.u16(va, uint16(len(b)))
	o.v.u16(va+2, uint16(len(b)+2))
	o.putPtr(va+uint64(o.lay.ptr), buf)
}

func baseOf(p string) string {
	if i := strings.LastIndexAny(p, `\/`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// context returns a CONTEXT record for the architecture.
func contextRecord(a Arch, size int, ip, sp, fp uint64) []byte {
	c := make([]byte, size)
	switch a {
	case AMD64:
		le.PutUint32(c[0x30:], 0x10001F)
		le.PutUint32(c[0x34:], 0x1F80)
		le.PutUint16(c[0x38:], 0x10)
		le.PutUint16(c[0x42:], 0x18)
		le.PutUint32(c[0x44:], 0x282)
		le.PutUint64(c[0x78:], 0xC0FFEE) // Rax
		le.PutUint64(c[0x98:], sp)
		le.PutUint64(c[0xA0:], fp)
		le.PutUint64(c[0xF8:], ip)
		le.PutUint32(c[0x118:], 0x1F80)
	case X86, X86PAE:
		le.PutUint32(c[0:], 0x1001F)
		le.PutUint32(c[0xB0:], 0xC0FFEE) // Eax
		le.PutUint32(c[0xB4:], uint32(fp))
		le.PutUint32(c[0xB8:], uint32(ip))
		le.PutUint32(c[0xBC:], 8)
		le.PutUint32(c[0xC0:], 0x282)
		le.PutUint32(c[0xC4:], uint32(sp))
		le.PutUint32(c[0xC8:], 0x10)
	case ARM64:
		le.PutUint32(c[0:], 0x400007)
		le.PutUint32(c[4:], 0x60000005)
		le.PutUint64(c[8:], 0xC0FFEE) // X0
		le.PutUint64(c[0xF0:], fp)
		le.PutUint64(c[0xF8:], ip+0x40) // Lr
		le.PutUint64(c[0x100:], sp)
		le.PutUint64(c[0x108:], ip)
	case ARM:
		le.PutUint32(c[0:], 0x200007)
		le.PutUint32(c[4:], 0xC0FFEE) // R0
		le.PutUint32(c[4+11*4:], uint32(fp))
		le.PutUint32(c[4+13*4:], uint32(sp))
		le.PutUint32(c[4+14*4:], uint32(ip+0x40))
		le.PutUint32(c[4+15*4:], uint32(ip))
		le.PutUint32(c[0x44:], 0x60000030)
	}
	return c
}

// normalize fills in the defaults of a Spec.
func normalize(s Spec) (Spec, error) {
	if s.Arch < AMD64 || s.Arch > ARM {
		return s, fmt.Errorf("kdumptest: unknown arch %d", s.Arch)
	}
	if s.Kind < Triage || s.Kind > RDMPComplete {
		return s, fmt.Errorf("kdumptest: unknown kind %d", s.Kind)
	}
	if s.Arch == ARM && s.Kind != Triage {
		return s, fmt.Errorf("kdumptest: 32-bit ARM dumps are triage dumps only")
	}
	if s.Build == 0 {
		s.Build = 19041
		if s.Arch == ARM64 {
			s.Build = 22000
		}
	}
	if s.Processors <= 0 {
		s.Processors = 4
	}
	if s.Processors > 64 {
		return s, fmt.Errorf("kdumptest: at most 64 processors")
	}
	switch {
	case s.CrashCPU < 0:
		s.CrashCPU = 0
	case s.CrashCPU == 0 && s.Processors > 1:
		s.CrashCPU = 1
	}
	s.CrashCPU %= s.Processors
	if s.Modules == nil {
		s.Modules = DefaultModules(s.Arch)
	}
	if len(s.Modules) == 0 {
		return s, fmt.Errorf("kdumptest: need at least the kernel module")
	}
	if s.Unloaded == nil {
		s.Unloaded = defaultUnloaded(s.Arch)
	}
	if s.ProcessName == "" {
		s.ProcessName = "System"
	}
	if s.MemoryBytes == 0 {
		s.MemoryBytes = 16 << 20
	}
	if s.MemoryBytes < 16<<20 || s.MemoryBytes%pageSize != 0 {
		return s, fmt.Errorf("kdumptest: MemoryBytes %#x must be a multiple of 4 KiB and at least 16 MiB", s.MemoryBytes)
	}
	if (s.Arch == X86 && s.MemoryBytes > 4<<30) || (s.Arch == X86PAE && s.MemoryBytes > 64<<30) || s.MemoryBytes > 1<<40 {
		return s, fmt.Errorf("kdumptest: MemoryBytes %#x is too large for %v", s.MemoryBytes, s.Arch)
	}
	if s.StackPages <= 0 {
		s.StackPages = 3
	}
	if s.BugCheck == 0 {
		last := s.Modules[len(s.Modules)-1]
		s.BugCheck = 0x1000007E
		s.Params = [4]uint64{0xFFFFFFFFC0000005, last.Base + 0x334C, 0, 0}
		if !s.Arch.Is64() {
			s.Params[0] = 0xC0000005
		}
	}
	return s, nil
}

// buildObjects writes every kernel object of the dump into a vstore.
func buildObjects(s Spec) (*objects, error) {
	o := &objects{s: s, lay: layoutFor(s.Arch, s.Build), v: newVstore()}
	o.plan = planFor(s.Arch, s.Modules[0].Base)
	o.pool = o.plan.pool
	o.dtb = 0x1AD000
	if s.Arch == X86PAE {
		o.dtb = 0x1AD020
	}
	f := &Facts{Arch: s.Arch, Kind: s.Kind, DumpType: s.Kind.DumpType(), Machine: s.Arch.Machine(), Build: s.Build,
		Processors: s.Processors, CrashCPU: s.CrashCPU, BugCheck: s.BugCheck, Params: s.Params, DTB: o.dtb}
	o.f = f
	lay, k, ptr := o.lay, o.plan.kern, uint64(o.lay.ptr)
	f.KernBase = k
	f.KDBG = k + 0x200B20
	f.PsLoadedModuleList = k + 0x201000
	f.PsActiveProcessHead = k + 0x201010
	f.KiProcessorBlock = k + 0x201100
	f.PfnDataBase = o.plan.pool + 0x40000000
	mmUnloaded, mmLast := k+0x201300, k+0x201308
	o.buildLab = k + 0x201400
	o.v.write(o.buildLab, []byte(fmt.Sprintf("%d.1.%sfre.vb_release.191206-1406\x00", s.Build, map[bool]string{true: "amd64", false: "x86"}[s.Arch.Is64()])))

	// Stack and contexts.
	f.StackBase = o.plan.stackBase
	f.StackLimit = f.StackBase - uint64(s.StackPages)*pageSize
	f.SP = f.StackBase - 0xEE0
	if !s.Arch.Is64() {
		f.SP = f.StackBase - 0x6E0
	}
	f.FP = f.SP + 0x40
	f.IP = k + 0x3F5A80
	f.TopOfStack = f.SP - 0x200
	if s.Arch == ARM64 {
		f.TopOfStack = f.SP
	}
	stack := make([]byte, f.StackBase-f.StackLimit)
	for i := 0; i+int(ptr) <= len(stack); i += int(ptr) {
		va := f.StackLimit + uint64(i)
		val := k + 0x10000 + va&0xFFF0
		if ptr == 4 {
			le.PutUint32(stack[i:], uint32(val))
		} else {
			le.PutUint64(stack[i:], val)
		}
	}
	o.v.write(f.StackLimit, stack)
	f.Stack, f.StackStart = stack, f.StackLimit

	// Process.
	f.Process = o.alloc(lay.procSize, 0x40)
	o.v.write(f.Process+uint64(lay.procImageName), append([]byte(s.ProcessName), 0))
	o.putPtr(f.Process+uint64(lay.procDTB), o.dtb)
	o.putPtr(f.Process+uint64(lay.procPid), 4)
	o.putPtr(f.Process+uint64(lay.procLinks), f.PsActiveProcessHead)
	o.putPtr(f.Process+uint64(lay.procLinks)+ptr, f.PsActiveProcessHead)
	o.putPtr(f.PsActiveProcessHead, f.Process+uint64(lay.procLinks))
	o.putPtr(f.PsActiveProcessHead+ptr, f.Process+uint64(lay.procLinks))
	f.ProcessName = s.ProcessName
	if s.Arch == ARM {
		f.ProcessName = "" // no known EPROCESS.ImageFileName offset
	}

	// PRCBs, threads, contexts.
	for i := range s.Processors {
		prcb := o.alloc(lay.prcbSize+0x180, pageSize) + 0x180
		f.PRCBs = append(f.PRCBs, prcb)
		o.putPtr(f.KiProcessorBlock+uint64(i)*ptr, prcb)
		th := o.alloc(lay.thSize, 0x40)
		o.putPtr(th+uint64(lay.thApcProcess), f.Process)
		sp, ip := f.SP+uint64(i+1)*0x10000, k+0x1234
		if i == s.CrashCPU {
			sp, ip = f.SP, f.IP
			f.Thread = th
			o.putPtr(th+uint64(lay.thInitialStack), f.StackBase-0x30)
			o.putPtr(th+uint64(lay.thStackLimit), f.StackLimit)
			o.putPtr(th+uint64(lay.thStackBase), f.StackBase)
			o.putPtr(th+uint64(lay.thKernStack), f.SP)
		}
		o.putPtr(prcb+uint64(lay.prcbCurThread), th)
		o.putPtr(prcb+uint64(lay.prcbIdle), th)
		o.v.write(prcb+uint64(lay.prcbNumber), []byte{byte(i), byte(i >> 8)}) // KPRCB.Number (u16)
		ctx := contextRecord(s.Arch, lay.ctxSize, ip, sp, sp+0x40)
		o.ctxs = append(o.ctxs, ctx)
		if s.InlinePrcbContext {
			o.v.write(prcb+uint64(lay.prcbInlineCtx), ctx)
			o.ctxVAs = append(o.ctxVAs, prcb+uint64(lay.prcbInlineCtx))
		} else {
			cva := o.alloc(lay.ctxSize, 0x10)
			o.v.write(cva, ctx)
			o.putPtr(prcb+uint64(lay.prcbCtxPtr), cva)
			o.ctxVAs = append(o.ctxVAs, cva)
			o.blocks = append(o.blocks, [2]uint64{cva, uint64(lay.ctxSize)})
		}
		o.blocks = append(o.blocks, [2]uint64{prcb, uint64(lay.prcbSize)})
	}
	o.blocks = append(o.blocks, [2]uint64{f.KiProcessorBlock, uint64(s.Processors) * ptr}, [2]uint64{o.buildLab, 0x30})
	if s.Params[2] == 0 && s.BugCheck&0xFFFFFFF == 0x7E {
		f.Params[2], f.Params[3] = f.SP-0x238, f.SP-0xA00
	}

	// Modules: LDR entries and PE headers.
	o.putPtr(f.PsLoadedModuleList, f.PsLoadedModuleList)
	o.putPtr(f.PsLoadedModuleList+ptr, f.PsLoadedModuleList)
	prev := f.PsLoadedModuleList
	for i, m := range s.Modules {
		e := o.alloc(lay.ldrSize, 0x10)
		o.modLDR = append(o.modLDR, e)
		o.putPtr(prev, e)     // prev.Flink
		o.putPtr(e+ptr, prev) // Blink
		o.putPtr(e, f.PsLoadedModuleList)
		o.putPtr(f.PsLoadedModuleList+ptr, e)
		o.putPtr(e+uint64(lay.ldrDllBase), m.Base)
		o.putPtr(e+uint64(lay.ldrEntry), m.Base+0x1000)
		o.v.u32(e+uint64(lay.ldrSizeOfImage), m.Size)
		o.putUnicode(e+uint64(lay.ldrFull), m.Path)
		o.putUnicode(e+uint64(lay.ldrBase), m.Name)
		o.writePE(m)
		prev = e
		rep := m
		if rep.Name == "" {
			rep.Name = baseOf(m.Path)
		}
		if s.BreakModulesAfter <= 0 || i < s.BreakModulesAfter {
			f.Modules = append(f.Modules, rep)
		}
	}
	if n := len(o.modLDR); s.CyclicModules && n > 1 {
		o.putPtr(o.modLDR[n-1], o.modLDR[1])
	}
	if b := s.BreakModulesAfter; b > 0 && b < len(o.modLDR) {
		o.putPtr(o.modLDR[b-1], o.plan.probe+0x100000) // never mapped
	}

	// Unloaded drivers.
	// The kernel's array has 50 slots; records go to slot
	// MmLastUnloadedDriver, wrapping around (the oldest are overwritten).
	o.unlArray = o.alloc(unloadedSlots*lay.unlStride, 0x10)
	for i, u := range s.Unloaded {
		e := o.unlArray + uint64(i%unloadedSlots*lay.unlStride)
		o.putUnicode(e, u.Name)
		o.putPtr(e+2*ptr, u.Start)
		o.putPtr(e+3*ptr, u.End)
		o.v.u64(e+4*ptr, 0x01D6A2B3C4D5E6F7)
	}
	f.Unloaded = append([]Unloaded(nil), s.Unloaded[max(0, len(s.Unloaded)-unloadedSlots):]...)
	o.putPtr(mmUnloaded, o.unlArray)
	o.v.u32(mmLast, uint32(len(s.Unloaded)%unloadedSlots))

	// KDBG.
	kd := make([]byte, 0x380)
	p64 := func(off int, x uint64) { le.PutUint64(kd[off:], o.kdbgPtr(x)) }
	p16 := func(off int, x int) { le.PutUint16(kd[off:], uint16(x)) }
	p64(0, f.KDBG)
	p64(8, f.KDBG)
	copy(kd[0x10:], "KDBG")
	le.PutUint32(kd[0x14:], 0x380)
	p64(0x18, k)
	if s.Arch == X86PAE {
		p16(0x36, 1)
	}
	p64(0x48, f.PsLoadedModuleList)
	p64(0x50, f.PsActiveProcessHead)
	p64(0xC0, f.PfnDataBase)
	p64(0x208, o.buildLab)
	p64(0x218, f.KiProcessorBlock)
	p64(0x220, mmUnloaded)
	p64(0x228, mmLast)
	p16(0x29A, lay.thTeb)
	p16(0x29C, lay.thKernStack)
	p16(0x29E, lay.thInitialStack)
	p16(0x2A0, lay.thApcProcess)
	p16(0x2A8, lay.procSize)
	p16(0x2AE, lay.procDTB)
	p16(0x2B0, lay.prcbSize)
	p16(0x2B4, lay.prcbCurThread)
	p16(0x2BC, lay.prcbInlineCtx)
	p16(0x2BE, lay.prcbNumber)
	p16(0x2C0, lay.thSize)
	if !s.InlinePrcbContext {
		p16(0x338, lay.prcbCtxPtr)
	}
	le.PutUint32(kd[0x340:], uint32(lay.thStackLimit))
	le.PutUint32(kd[0x344:], uint32(lay.thStackBase))
	p16(0x350, lay.prcbIdle)
	if s.Arch.Is64() {
		p64(0x360, 0xFFFFFD8000000000)
	}
	o.kdbgPlain = kd
	o.v.write(f.KDBG, kd)
	if keys := s.EncodeKDBG; keys != nil && s.Kind != Triage {
		enc := slices.Clone(kd)
		for off := 0; off+8 <= len(enc); off += 8 {
			t := le.Uint64(enc[off:]) ^ keys.KiWaitAlways
			t = bits.ReverseBytes64(t)
			t ^= keys.KdpDataBlockEncoded
			t = bits.RotateLeft64(t, -int(keys.KiWaitNever&0xFF))
			le.PutUint64(enc[off:], t^keys.KiWaitNever)
		}
		o.v.write(f.KDBG, enc)
	}
	return o, nil
}

// unloadedSlots is MI_UNLOADED_DRIVERS.
const unloadedSlots = 50

// writePE writes a minimal PE header at the module's base.
func (o *objects) writePE(m Module) {
	h := make([]byte, 0x200)
	h[0], h[1] = 'M', 'Z'
	const lfanew = 0x100
	le.PutUint32(h[0x3C:], lfanew)
	nt := h[lfanew:]
	copy(nt, "PE\x00\x00")
	le.PutUint16(nt[4:], o.s.Arch.Machine())
	le.PutUint16(nt[6:], 1)
	le.PutUint32(nt[8:], m.TimeDateStamp)
	opt := nt[24:]
	if o.s.Arch.Is64() {
		le.PutUint16(nt[20:], 0xF0)
		le.PutUint16(opt, 0x20B)
	} else {
		le.PutUint16(nt[20:], 0xE0)
		le.PutUint16(opt, 0x10B)
	}
	le.PutUint32(opt[56:], m.Size)
	le.PutUint32(opt[64:], m.CheckSum)
	o.v.write(m.Base, h)
}
