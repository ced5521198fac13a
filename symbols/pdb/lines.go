package pdb

import (
	"encoding/binary"
	"sort"
)

// C13 debug subsection kinds (cvinfo.h DEBUG_S_SUBSECTION_TYPE).
const (
	debugSLines         = 0xF2
	debugSFileChecksums = 0xF4
	debugSIgnore        = 0x80000000
)

// Line numbers the compiler uses for compiler-generated code.
const (
	hiddenLine1 = 0xFEEFEE
	hiddenLine2 = 0xF00F00
)

// LineEntry is one line/address pair of a module's C13 line table.
type LineEntry struct {
	Section uint16
	Offset  uint32 // start of the line's code in Section
	Size    uint32 // bytes of code up to the next entry of its block
	RVA     uint32 // valid only when HasRVA
	HasRVA  bool
	Line    uint32
	File    string
	Module  int
}

// LineInfo is the source position of an address.
type LineInfo struct {
	File  string
	Line  uint32
	Start uint32 // RVA where the line's code starts
}

type lineTable struct {
	entries []LineEntry // with RVAs, sorted by RVA
}

// Lines returns the C13 line tables of every module, in module order.
// Modules whose line data are damaged are skipped; the first error is
// returned with what could be read.
func (f *File) Lines() ([]LineEntry, error) {
	names, nerr := f.namesTable()
	var out []LineEntry
	firstErr := nerr
	budget := f.moduleReadBudget()
	for mi, mod := range f.modules {
		if mod.SymStream >= 0 && mod.C13Size > 0 {
			if budget -= int64(mod.SymSize) + int64(mod.C11Size) + int64(mod.C13Size); budget < 0 {
				if firstErr == nil {
					firstErr = formatErr(mod.SymStream, 0, "module streams add up to more than the file: streams shared between modules?")
				}
				break
			}
		}
		es, err := f.moduleLines(mi, names)
		out = append(out, es...)
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return out, firstErr
}

// LineAt returns the source line of rva. The table is built on first use;
// after that LineAt needs no file access and keeps working after Close.
func (f *File) LineAt(rva uint32) (LineInfo, bool) {
	f.linesOnce.Do(func() {
		es, _ := f.Lines()
		t := &lineTable{}
		for _, e := range es {
			if e.HasRVA {
				t.entries = append(t.entries, e)
			}
		}
		sort.SliceStable(t.entries, func(i, j int) bool { return t.entries[i].RVA < t.entries[j].RVA })
		f.lines = t
	})
	es := f.lines.entries
	i := sort.Search(len(es), func(i int) bool { return es[i].RVA > rva }) - 1
	// Zero-length entries share an address with the next one: look back a
	// few for the entry whose range covers rva.
	for k := 0; i >= 0 && k < 4; i, k = i-1, k+1 {
		e := es[i]
		if rva-e.RVA < max(e.Size, 1) {
			return LineInfo{File: e.File, Line: e.Line, Start: e.RVA}, true
		}
	}
	return LineInfo{}, false
}

// moduleLines parses one module's C13 subsections.
func (f *File) moduleLines(mi int, names map[uint32]string) ([]LineEntry, error) {
	mod := f.modules[mi]
	if mod.SymStream < 0 || mod.C13Size == 0 {
		return nil, nil
	}
	start := int64(mod.SymSize) + int64(mod.C11Size)
	data, err := f.m.readStream(mod.SymStream, start+int64(mod.C13Size))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) < start+int64(mod.C13Size) {
		return nil, formatErr(mod.SymStream, start, "C13 line data run past the stream end")
	}
	c13 := data[start:]
	le := binary.LittleEndian
	// Pass 1: the file checksum subsection maps checksum offsets to names.
	var checksums []byte
	var linesSubs [][]byte
	for p := 0; p+8 <= len(c13); {
		kind, n := le.Uint32(c13[p:]), int(le.Uint32(c13[p+4:]))
		if n < 0 || p+8+n > len(c13) {
			return nil, formatErr(mod.SymStream, start+int64(p), "C13 subsection of %d bytes runs past the end", n)
		}
		body := c13[p+8 : p+8+n]
		switch kind &^ debugSIgnore {
		case debugSFileChecksums:
			if kind&debugSIgnore == 0 {
				checksums = body
			}
		case debugSLines:
			if kind&debugSIgnore == 0 {
				linesSubs = append(linesSubs, body)
			}
		}
		p += 8 + (n+3)&^3
	}
	fileName := func(off uint32) string {
		if int(off)+4 > len(checksums) {
			return ""
		}
		return names[le.Uint32(checksums[off:])]
	}
	var out []LineEntry
	for _, b := range linesSubs {
		if len(b) < 12 {
			return out, formatErr(mod.SymStream, start, "C13 lines subsection of %d bytes", len(b))
		}
		relocOff, seg, flags, codeSize := le.Uint32(b[0:]), le.Uint16(b[4:]), le.Uint16(b[6:]), le.Uint32(b[8:])
		hasColumns := flags&1 != 0
		for p := 12; p+12 <= len(b); {
			fileOff, nLines, blockSize := le.Uint32(b[p:]), le.Uint32(b[p+4:]), le.Uint32(b[p+8:])
			need := 12 + 8*uint64(nLines)
			if hasColumns {
				need += 4 * uint64(nLines)
			}
			if uint64(blockSize) < need || uint64(p)+uint64(blockSize) > uint64(len(b)) {
				return out, formatErr(mod.SymStream, start, "C13 line block of %d entries does not fit %d bytes", nLines, blockSize)
			}
			file := fileName(fileOff)
			first := len(out)
			for i := range int(nLines) {
				e := b[p+12+8*i:]
				off, lf := le.Uint32(e), le.Uint32(e[4:])
				out = append(out, LineEntry{Section: seg, Offset: relocOff + off, Line: lf & 0xFFFFFF, File: file, Module: mi})
			}
			// Sizes: up to the next entry of the block, the last to the end
			// of the contribution.
			blk := out[first:]
			for i := range blk {
				end := relocOff + codeSize
				if i+1 < len(blk) {
					end = blk[i+1].Offset
				}
				if end > blk[i].Offset {
					blk[i].Size = end - blk[i].Offset
				}
				blk[i].RVA, blk[i].HasRVA = f.SectionOffsetToRVA(seg, blk[i].Offset)
			}
			p += int(blockSize)
		}
	}
	// Drop compiler-generated "hidden" lines.
	kept := out[:0]
	for _, e := range out {
		if e.Line != hiddenLine1 && e.Line != hiddenLine2 {
			kept = append(kept, e)
		}
	}
	return kept, nil
}

// namesTable reads the "/names" string table named by the PDB info stream's
// named-stream map, keyed by string offset.
func (f *File) namesTable() (map[uint32]string, error) {
	idx, err := f.namedStream("/names")
	if err != nil || idx < 0 {
		return nil, err
	}
	b, err := f.m.readStream(idx, maxRecordStream)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	if len(b) < 12 || le.Uint32(b) != 0xEFFEEFFE {
		return nil, formatErr(idx, 0, "/names stream has no string table signature")
	}
	n := int64(le.Uint32(b[8:]))
	if 12+n > int64(len(b)) {
		return nil, formatErr(idx, 8, "/names string buffer of %d bytes runs past the stream", n)
	}
	buf := b[12 : 12+n]
	names := map[uint32]string{}
	for off := 0; off < len(buf); {
		s, k, ok := cstring(buf[off:])
		if !ok {
			break
		}
		names[uint32(off)] = s
		off += k
	}
	return names, nil
}

// namedStream looks name up in the PDB info stream's named-stream map; -1
// when absent.
func (f *File) namedStream(name string) (int, error) {
	b, err := f.m.readStream(streamPDB, -1)
	if err != nil {
		return -1, err
	}
	le := binary.LittleEndian
	p := 28
	bad := func(msg string) (int, error) { return -1, formatErr(streamPDB, int64(p), "named stream map: %s", msg) }
	if p+4 > len(b) {
		return bad("truncated")
	}
	strLen := int(le.Uint32(b[p:]))
	p += 4
	if strLen < 0 || p+strLen > len(b) {
		return bad("string buffer runs past the stream")
	}
	strs := b[p : p+strLen]
	p += strLen
	if p+8 > len(b) {
		return bad("truncated hash table header")
	}
	capacity := le.Uint32(b[p+4:])
	p += 8
	readBits := func() ([]uint32, bool) {
		if p+4 > len(b) {
			return nil, false
		}
		n := int(le.Uint32(b[p:]))
		p += 4
		if n < 0 || n > (len(b)-p)/4 {
			return nil, false
		}
		w := make([]uint32, n)
		for i := range w {
			w[i] = le.Uint32(b[p+4*i:])
		}
		p += 4 * n
		return w, true
	}
	present, ok := readBits()
	if !ok {
		return bad("bad present bit vector")
	}
	if _, ok := readBits(); !ok {
		return bad("bad deleted bit vector")
	}
	for i := uint32(0); i < capacity && int(i/32) < len(present); i++ {
		if present[i/32]&(1<<(i%32)) == 0 {
			continue
		}
		if p+8 > len(b) {
			return bad("truncated bucket")
		}
		key, val := le.Uint32(b[p:]), le.Uint32(b[p+4:])
		p += 8
		if int(key) < len(strs) {
			if s, _, ok := cstring(strs[key:]); ok && s == name {
				return int(val), nil
			}
		}
	}
	return -1, nil
}
