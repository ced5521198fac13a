package pdb

import (
	"bytes"
	"encoding/binary"
)

// msfBuilder lays out streams in an MSF 7.0 container for tests. It is
// written from the format description, independently of the reader.
type msfBuilder struct {
	blockSize int
	streams   [][]byte // nil entry = nil stream
}

func (b *msfBuilder) bytes() []byte {
	bs := b.blockSize
	if bs == 0 {
		bs = 512
	}
	le := binary.LittleEndian
	var blocks [][]byte
	blocks = append(blocks, make([]byte, bs), make([]byte, bs), make([]byte, bs)) // superblock, FPM1, FPM2
	alloc := func(data []byte) []uint32 {
		var idx []uint32
		for off := 0; off < len(data); off += bs {
			blk := make([]byte, bs)
			copy(blk, data[off:])
			idx = append(idx, uint32(len(blocks)))
			blocks = append(blocks, blk)
		}
		return idx
	}
	var dir bytes.Buffer
	binary.Write(&dir, le, uint32(len(b.streams)))
	var lists [][]uint32
	for _, s := range b.streams {
		if s == nil {
			binary.Write(&dir, le, uint32(0xFFFFFFFF))
			lists = append(lists, nil)
			continue
		}
		binary.Write(&dir, le, uint32(len(s)))
		lists = append(lists, alloc(s))
	}
	for _, l := range lists {
		for _, x := range l {
			binary.Write(&dir, le, x)
		}
	}
	dirBlocks := alloc(dir.Bytes())
	mapBlock := make([]byte, bs)
	for i, x := range dirBlocks {
		le.PutUint32(mapBlock[i*4:], x)
	}
	mapIdx := uint32(len(blocks))
	blocks = append(blocks, mapBlock)

	sb := blocks[0]
	copy(sb, "Microsoft C/C++ MSF 7.00\r\n\x1aDS\x00\x00\x00")
	le.PutUint32(sb[0x20:], uint32(bs))
	le.PutUint32(sb[0x24:], 1)
	le.PutUint32(sb[0x28:], uint32(len(blocks)))
	le.PutUint32(sb[0x2C:], uint32(dir.Len()))
	le.PutUint32(sb[0x34:], mapIdx)
	return bytes.Join(blocks, nil)
}

// pdbSpec describes a small synthetic PDB.
type pdbSpec struct {
	age      uint32
	guid     GUID
	machine  uint16
	sections []Section
	publics  []Public // Name, Flags, Section, Offset used
	procs    []Proc   // Name, Kind, Section, Offset, Length used; all in one module
	omapFrom []omapEntry
	origSecs []Section
	modules  int // copies of the module entry (all sharing one stream); 0 means 1
}

func sectionStream(ss []Section) []byte {
	var out []byte
	for _, s := range ss {
		h := make([]byte, 40)
		copy(h, s.Name)
		binary.LittleEndian.PutUint32(h[8:], s.VirtualSize)
		binary.LittleEndian.PutUint32(h[12:], s.VirtualAddress)
		binary.LittleEndian.PutUint32(h[36:], s.Characteristics)
		out = append(out, h...)
	}
	return out
}

// record encodes a CodeView symbol record padded to 4 bytes.
func record(kind SymKind, body []byte) []byte {
	n := 4 + len(body)
	pad := (4 - n%4) % 4
	out := make([]byte, 4, n+pad)
	binary.LittleEndian.PutUint16(out, uint16(n-2+pad))
	binary.LittleEndian.PutUint16(out[2:], uint16(kind))
	out = append(out, body...)
	return append(out, make([]byte, pad)...)
}

func (s pdbSpec) build() []byte {
	le := binary.LittleEndian
	info := make([]byte, 28)
	le.PutUint32(info, 20000404)
	le.PutUint32(info[4:], 0x5F5E100)
	le.PutUint32(info[8:], s.age)
	copy(info[12:], s.guid[:])

	// Symbol record stream with S_PUB32 records.
	var syms []byte
	var offs []uint32
	for _, p := range s.publics {
		body := make([]byte, 10)
		le.PutUint32(body, uint32(p.Flags))
		le.PutUint32(body[4:], p.Offset)
		le.PutUint16(body[8:], p.Section)
		body = append(body, p.Name...)
		body = append(body, 0)
		offs = append(offs, uint32(len(syms)))
		syms = append(syms, record(SymPub32, body)...)
	}
	// Publics stream: header, empty GSI hash, address map (record order).
	pubs := make([]byte, 28+16)
	le.PutUint32(pubs[0:], 16)
	le.PutUint32(pubs[4:], uint32(4*len(offs)))
	le.PutUint32(pubs[28:], 0xFFFFFFFF)
	le.PutUint32(pubs[32:], 0xF12F091A)
	for _, o := range offs {
		pubs = le.AppendUint32(pubs, o)
	}
	// Module stream.
	mod := []byte{4, 0, 0, 0}
	for _, p := range s.procs {
		body := make([]byte, 0x23)
		le.PutUint32(body[0x0C:], p.Length)
		le.PutUint32(body[0x1C:], p.Offset)
		le.PutUint16(body[0x20:], p.Section)
		body = append(body, p.Name...)
		body = append(body, 0)
		mod = append(mod, record(p.Kind, body)...)
	}
	// Streams: 0 old dir, 1 info, 2 TPI, 3 DBI, 4 IPI, 5 symrec, 6 publics,
	// 7 module, 8 sections, 9 omap from src, 10 original sections.
	const symrecIdx, pubIdx, modIdx, secIdx, omapIdx, origIdx = 5, 6, 7, 8, 9, 10

	modInfo := make([]byte, 64)
	le.PutUint16(modInfo[0x22:], modIdx)
	le.PutUint32(modInfo[0x24:], uint32(len(mod)))
	modInfo = append(modInfo, "test.obj\x00test.obj\x00"...)
	for len(modInfo)%4 != 0 {
		modInfo = append(modInfo, 0)
	}
	one := modInfo
	for i := 1; i < s.modules; i++ {
		modInfo = append(modInfo, one...)
	}
	dbg := make([]byte, 22)
	for i := range 11 {
		le.PutUint16(dbg[2*i:], 0xFFFF)
	}
	le.PutUint16(dbg[2*dbgSectionHdr:], secIdx)
	if s.omapFrom != nil {
		le.PutUint16(dbg[2*dbgOmapFromSrc:], omapIdx)
		le.PutUint16(dbg[2*dbgSectionHdrOrig:], origIdx)
	}
	dbi := make([]byte, 64)
	le.PutUint32(dbi[0:], 0xFFFFFFFF)
	le.PutUint32(dbi[4:], 19990903)
	le.PutUint32(dbi[8:], s.age)
	le.PutUint16(dbi[0x0C:], 0xFFFF)
	le.PutUint16(dbi[0x10:], pubIdx)
	le.PutUint16(dbi[0x14:], symrecIdx)
	le.PutUint32(dbi[0x18:], uint32(len(modInfo)))
	le.PutUint32(dbi[0x30:], uint32(len(dbg)))
	le.PutUint16(dbi[0x3A:], s.machine)
	dbi = append(dbi, modInfo...)
	dbi = append(dbi, dbg...)

	var omap []byte
	for _, e := range s.omapFrom {
		omap = le.AppendUint32(omap, e.from)
		omap = le.AppendUint32(omap, e.to)
	}
	b := &msfBuilder{streams: [][]byte{
		{}, info, {}, dbi, {}, syms, pubs, mod, sectionStream(s.sections), omap, sectionStream(s.origSecs),
	}}
	return b.bytes()
}
