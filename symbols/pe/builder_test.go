package pe

import (
	"encoding/binary"
	"fmt"
)

// This file builds small PE images for tests, independently of the parser:
// offsets come from the PE/COFF specification.

type tsec struct {
	name  string
	va    uint32
	data  []byte
	vsize uint32 // 0: len(data)
	chars uint32
}

type tpe struct {
	machine   uint16
	pe64      bool
	timestamp uint32
	checksum  uint32
	imageBase uint64
	secs      []tsec
	dirs      map[DirectoryIndex]DataDirectory
}

// build returns the file bytes and the image as the loader maps it.
func (p *tpe) build() (file, image []byte) {
	le := binary.LittleEndian
	const lfanew = 0x80
	optSize := 224
	if p.pe64 {
		optSize = 240
	}
	hdrEnd := lfanew + 24 + optSize + 40*len(p.secs)
	sizeOfHeaders := alignUp(uint32(hdrEnd), 0x200)
	raw := sizeOfHeaders
	type placed struct{ ptr, size uint32 }
	var pl []placed
	sizeOfImage := uint32(0x1000)
	for _, s := range p.secs {
		sz := alignUp(uint32(len(s.data)), 0x200)
		pl = append(pl, placed{raw, sz})
		raw += sz
		vs := s.vsize
		if vs == 0 {
			vs = uint32(len(s.data))
		}
		sizeOfImage = max(sizeOfImage, alignUp(s.va+vs, 0x1000))
	}
	file = make([]byte, raw)
	copy(file, "MZ")
	le.PutUint32(file[0x3C:], lfanew)
	nt := file[lfanew:]
	copy(nt, "PE\x00\x00")
	le.PutUint16(nt[4:], p.machine)
	le.PutUint16(nt[6:], uint16(len(p.secs)))
	le.PutUint32(nt[8:], p.timestamp)
	le.PutUint16(nt[20:], uint16(optSize))
	le.PutUint16(nt[22:], 0x2022)
	opt := nt[24:]
	ddOff, nOff := 96, 92
	if p.pe64 {
		le.PutUint16(opt, Magic64)
		le.PutUint64(opt[24:], p.imageBase)
		ddOff, nOff = 112, 108
	} else {
		le.PutUint16(opt, Magic32)
		le.PutUint32(opt[28:], uint32(p.imageBase))
	}
	le.PutUint32(opt[32:], 0x1000)
	le.PutUint32(opt[36:], 0x200)
	le.PutUint32(opt[56:], sizeOfImage)
	le.PutUint32(opt[60:], sizeOfHeaders)
	le.PutUint32(opt[64:], p.checksum)
	le.PutUint16(opt[68:], 1)
	le.PutUint32(opt[nOff:], 16)
	for d, v := range p.dirs {
		le.PutUint32(opt[ddOff+8*int(d):], v.VirtualAddress)
		le.PutUint32(opt[ddOff+8*int(d)+4:], v.Size)
	}
	sh := opt[optSize:]
	for i, s := range p.secs {
		h := sh[40*i:]
		copy(h, s.name)
		vs := s.vsize
		if vs == 0 {
			vs = uint32(len(s.data))
		}
		le.PutUint32(h[8:], vs)
		le.PutUint32(h[12:], s.va)
		le.PutUint32(h[16:], pl[i].size)
		le.PutUint32(h[20:], pl[i].ptr)
		le.PutUint32(h[36:], s.chars)
		copy(file[pl[i].ptr:], s.data)
	}
	image = make([]byte, sizeOfImage)
	copy(image, file[:sizeOfHeaders])
	for _, s := range p.secs {
		copy(image[s.va:], s.data)
	}
	return file, image
}

func alignUp(v, a uint32) uint32 { return (v + a - 1) &^ (a - 1) }

// asm accumulates the bytes of one section at a known RVA.
type asm struct {
	va uint32
	b  []byte
}

func (a *asm) here() uint32 { return a.va + uint32(len(a.b)) }

func (a *asm) align(n int) {
	for len(a.b)%n != 0 {
		a.b = append(a.b, 0)
	}
}

func (a *asm) u8(v ...byte) uint32 { r := a.here(); a.b = append(a.b, v...); return r }
func (a *asm) u16(v uint16) uint32 {
	r := a.here()
	a.b = binary.LittleEndian.AppendUint16(a.b, v)
	return r
}
func (a *asm) u32(v uint32) uint32 {
	r := a.here()
	a.b = binary.LittleEndian.AppendUint32(a.b, v)
	return r
}
func (a *asm) str(s string) uint32 { r := a.here(); a.b = append(append(a.b, s...), 0); return r }

// memImage serves a mapped image as Memory at base, with optional holes.
type memImage struct {
	base  uint64
	b     []byte
	holes [][2]uint64 // [start, end) addresses that are not present
}

func (m *memImage) ReadVirtual(p []byte, addr uint64) (int, error) {
	end := addr + uint64(len(p))
	for _, h := range m.holes {
		if addr < h[1] && end > h[0] {
			n := 0
			if h[0] > addr {
				n = int(h[0] - addr)
				copy(p, m.b[addr-m.base:])
			}
			return n, fmt.Errorf("address %#x not present", max(addr, h[0]))
		}
	}
	if addr < m.base || addr-m.base >= uint64(len(m.b)) {
		return 0, fmt.Errorf("address %#x not present", addr)
	}
	n := copy(p, m.b[addr-m.base:])
	if n < len(p) {
		return n, fmt.Errorf("address %#x not present", addr+uint64(n))
	}
	return n, nil
}

// sampleX64 builds an x64 image with every kind of data this package reads.
// It returns the builder and the RVAs of interesting records.
type sample struct {
	pe         tpe
	funcs      []RuntimeFunction // as placed in .pdata (sorted)
	unwind     map[string]uint32
	exportsRVA uint32
}

func sampleX64() *sample {
	s := &sample{unwind: map[string]uint32{}}
	text := &asm{va: 0x1000}
	for range 0x400 {
		text.u8(0xCC)
	}
	rd := &asm{va: 0x2000}
	// Debug directory: a POGO entry first, then CodeView RSDS.
	dbg := rd.here()
	rsds := dbg + 2*28
	rd.u32(0)
	rd.u32(0x12345678)
	rd.u32(0)
	rd.u32(uint32(DebugTypePOGO))
	rd.u32(0)
	rd.u32(0)
	rd.u32(0)
	rd.u32(0)
	rd.u32(0x12345678)
	rd.u32(0)
	rd.u32(uint32(DebugTypeCodeView))
	rd.u32(24 + 12)
	rd.u32(rsds)
	rd.u32(0) // PointerToRawData patched below
	rd.u8([]byte("RSDS")...)
	rd.u8(0x51, 0xFD, 0x92, 0x41, 0xEE, 0x0C, 0xB5, 0x41, 0x98, 0xC1, 0x06, 0x6D, 0x2D, 0xA8, 0x29, 0x6B)
	rd.u32(3)
	rd.str(`C:\b\drv.pdb`)
	rd.align(4)

	// Unwind infos.
	ui := func(name string, flags, prolog byte, frame byte, codes []uint16, trailer ...uint32) {
		rd.align(4)
		s.unwind[name] = rd.here()
		rd.u8(1|flags<<3, prolog, byte(len(codes)), frame)
		for _, c := range codes {
			rd.u16(c)
		}
		if len(codes)%2 == 1 {
			rd.u16(0)
		}
		for _, t := range trailer {
			rd.u32(t)
		}
	}
	code := func(off byte, op UnwindOp, info byte) uint16 { return uint16(off) | uint16(byte(op)|info<<4)<<8 }
	// f0: push rbp; push rbx; sub rsp,0x28 (alloc small); lea rbp,[rsp+0x20] (set_fpreg rbp, offset 2*16)
	ui("f0", 0, 0x0C, byte(RBP)|2<<4, []uint16{
		code(0x0C, UWOP_SET_FPREG, 0),
		code(0x08, UWOP_ALLOC_SMALL, 4),
		code(0x02, UWOP_PUSH_NONVOL, byte(RBX)),
		code(0x01, UWOP_PUSH_NONVOL, byte(RBP)),
	})
	// f1: alloc large (both forms), save nonvol (+far), xmm128 (+far), handler.
	ui("f1", byte(UNW_FLAG_EHANDLER), 0x30, 0, []uint16{
		code(0x30, UWOP_SAVE_XMM128_FAR, 7), 0x0000, 0x0002,
		code(0x28, UWOP_SAVE_XMM128, 6), 0x0003,
		code(0x20, UWOP_SAVE_NONVOL_FAR, byte(R12)), 0x1000, 0x0001,
		code(0x18, UWOP_SAVE_NONVOL, byte(RSI)), 0x0006,
		code(0x10, UWOP_ALLOC_LARGE, 1), 0x0010, 0x0002,
		code(0x08, UWOP_ALLOC_LARGE, 0), 0x0200,
	}, 0x1234, 0xDEADBEEF)
	// f2: machine frame with error code, then an epilog code (version 2 info patched below).
	ui("f2", 0, 0, 0, []uint16{
		code(0x01, UWOP_PUSH_MACHFRAME, 1),
	})
	// f3: chained to f0.
	ui("f3", byte(UNW_FLAG_CHAININFO), 0x04, 0, []uint16{
		code(0x04, UWOP_SAVE_NONVOL, byte(RDI)), 0x0004,
	}, 0x1000, 0x1040, 0) // UnwindData patched below
	ui("f4", 0, 0x04, 0, []uint16{
		code(0x04, UWOP_ALLOC_SMALL, 0),
		code(0x02, UWOP_EPILOG, 1), 0x0004,
	})
	// f4 is version 2
	rd.b[s.unwind["f4"]-rd.va] = 2

	// Exports: DLL name, 3 functions (one forwarded), 2 names.
	rd.align(4)
	exp := rd.here()
	expHdr := len(rd.b)
	rd.b = append(rd.b, make([]byte, 40)...)
	dllName := rd.str("drv.sys")
	fwd := rd.str("ntoskrnl.KeBugCheckEx")
	rd.align(4)
	eat := rd.u32(0x1000)
	rd.u32(0) // forwarder, patched
	rd.u32(0x1080)
	n1 := rd.str("DriverAlpha")
	n2 := rd.str("ForwardedBugCheck")
	rd.align(4)
	enpt := rd.u32(n1)
	rd.u32(n2)
	eot := rd.u16(0)
	rd.u16(1)
	expEnd := rd.here()
	le := binary.LittleEndian
	h := rd.b[expHdr:]
	le.PutUint32(h[12:], dllName)
	le.PutUint32(h[16:], 5)
	le.PutUint32(h[20:], 3)
	le.PutUint32(h[24:], 2)
	le.PutUint32(h[28:], eat)
	le.PutUint32(h[32:], enpt)
	le.PutUint32(h[36:], eot)
	le.PutUint32(rd.b[eat+4-rd.va:], fwd)
	s.exportsRVA = exp
	// patch chained UnwindData of f3 -> f0
	chainOff := s.unwind["f3"] - rd.va + 4 + 4 + 8
	le.PutUint32(rd.b[chainOff:], s.unwind["f0"])

	pd := &asm{va: 0x3000}
	s.funcs = []RuntimeFunction{
		{0x1000, 0x1040, s.unwind["f0"]},
		{0x1040, 0x1080, s.unwind["f3"]},
		{0x1080, 0x1100, s.unwind["f1"]},
		{0x1100, 0x1110, s.unwind["f2"]},
		{0x1200, 0x1210, s.unwind["f4"]},
	}
	// Write them out of order to check sorting.
	for _, i := range []int{1, 0, 2, 4, 3} {
		pd.u32(s.funcs[i].Begin)
		pd.u32(s.funcs[i].End)
		pd.u32(s.funcs[i].UnwindData)
	}
	// An indirect entry: 0x1110..0x1120 -> the entry of f0's at .pdata+12.
	pd.u32(0x1110)
	pd.u32(0x1120)
	pd.u32((pd.va + 12) | 1)

	s.pe = tpe{
		machine: uint16(MachineAMD64), pe64: true, timestamp: 0x62524D62, checksum: 0xABCD,
		imageBase: 0x140000000,
		secs: []tsec{
			{name: ".text", va: 0x1000, data: text.b, chars: 0x60000020},
			{name: ".rdata", va: 0x2000, data: rd.b, chars: 0x40000040},
			{name: ".pdata", va: 0x3000, data: pd.b, chars: 0x40000040},
		},
		dirs: map[DirectoryIndex]DataDirectory{
			DirDebug:     {dbg, 2 * 28},
			DirExport:    {exp, expEnd - exp},
			DirException: {0x3000, uint32(len(pd.b))},
		},
	}
	return s
}
