// Package pdb reads Microsoft program databases (MSF 7.0 "PDB 7" files) far
// enough to name code addresses: the PDB info stream (GUID, age), the DBI
// stream (module list, optional debug header, section headers, OMAP), public
// symbols (S_PUB32) and the procedure symbols of module streams
// (S_GPROC32/S_LPROC32 and their _ID variants) that give function extents.
//
// The API follows debug/pe: NewFile wraps an io.ReaderAt, Open opens a path.
// All input is treated as hostile: every size, count and offset is checked
// before use, allocations are bounded by the file size, and errors are
// *FormatError (with the stream and offset), *UnsupportedError or ErrNotPDB.
//
// The layout facts come from the public LLVM PDB documentation (MsfFile.rst,
// PdbStream.rst, DbiStream.rst, PublicStream.rst, ModiStream.rst) and
// Microsoft's published cvinfo.h record definitions.
package pdb

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

// Fixed stream indices.
const (
	streamPDB = 1
	streamDBI = 3
)

// GUID is a PDB signature GUID in its on-disk layout (Data1, Data2 and Data3
// little-endian, then the eight Data4 bytes), as in the PE's RSDS record.
type GUID [16]byte

// String formats the GUID in the registry form
// {XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}.
func (g GUID) String() string {
	le := binary.LittleEndian
	return fmt.Sprintf("{%08X-%04X-%04X-%02X%02X-%X}", le.Uint32(g[0:]), le.Uint16(g[4:]), le.Uint16(g[6:]), g[8], g[9], g[10:16])
}

// SymbolKey returns the symbol-server directory key for this GUID and age:
// 32 uppercase hex digits (Data1..Data3 as integers, then Data4) followed by
// the age in uppercase hex.
func (g GUID) SymbolKey(age uint32) string {
	le := binary.LittleEndian
	return fmt.Sprintf("%08X%04X%04X%X%X", le.Uint32(g[0:]), le.Uint16(g[4:]), le.Uint16(g[6:]), g[8:16], age)
}

// Machine is the DBI stream's target machine (an IMAGE_FILE_MACHINE value).
type Machine uint16

// Machine values found in DBI headers.
const (
	MachineUnknown Machine = 0
	MachineI386    Machine = 0x14C
	MachineAMD64   Machine = 0x8664
	MachineARM64   Machine = 0xAA64
	MachineARMNT   Machine = 0x1C4
)

// String returns the conventional name of m.
func (m Machine) String() string {
	switch m {
	case MachineUnknown:
		return "unknown"
	case MachineI386:
		return "x86"
	case MachineAMD64:
		return "x64"
	case MachineARM64:
		return "arm64"
	case MachineARMNT:
		return "arm"
	}
	return fmt.Sprintf("Machine(%#x)", uint16(m))
}

// Section is one IMAGE_SECTION_HEADER from the PDB's section-header stream.
type Section struct {
	Name            string
	VirtualSize     uint32
	VirtualAddress  uint32
	Characteristics uint32
}

// Module is one entry of the DBI module-information substream.
type Module struct {
	Name       string // module (object) name
	ObjectName string // object file or library
	SymStream  int    // module symbol stream, -1 if none
	SymSize    uint32 // bytes of CodeView symbols in SymStream (including the 4-byte signature)
	C11Size    uint32 // bytes of old-style (C11) line data after the symbols
	C13Size    uint32 // bytes of C13 debug subsections (line tables) after those
}

// File is an open program database. Its methods are safe for concurrent use.
type File struct {
	m      *msf
	closer io.Closer

	version   uint32
	signature uint32
	age       uint32
	guid      GUID

	dbiAge    uint32
	machine   Machine
	symRecord int // symbol record stream, -1 if absent
	publics   int // publics GSI stream, -1 if absent
	modules   []Module
	sections  []Section // section headers used for RVA computation
	omap      []omapEntry

	tableOnce sync.Once
	table     *lookupTable
	tableErr  error

	linesOnce sync.Once
	lines     *lineTable
}

type omapEntry struct{ from, to uint32 }

// Open opens the named PDB file. Close it when done.
func Open(name string) (*File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	pf, err := NewFile(f, st.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	pf.closer = f
	return pf, nil
}

// Close closes the underlying file if the File was created by Open.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	err := f.closer.Close()
	f.closer = nil
	return err
}

// NewFile reads the container, the PDB info stream and the DBI stream of the
// program database in r (size bytes). Symbol streams are read on demand.
func NewFile(r io.ReaderAt, size int64) (*File, error) {
	m, err := readMSF(r, size)
	if err != nil {
		return nil, err
	}
	f := &File{m: m, symRecord: -1, publics: -1}
	if err := f.readInfo(); err != nil {
		return nil, err
	}
	if err := f.readDBI(); err != nil {
		return nil, err
	}
	return f, nil
}

// GUID returns the signature GUID from the PDB info stream.
func (f *File) GUID() GUID { return f.guid }

// Age returns the age from the PDB info stream.
func (f *File) Age() uint32 { return f.age }

// DBIAge returns the age recorded in the DBI stream (0 when absent).
func (f *File) DBIAge() uint32 { return f.dbiAge }

// Signature returns the 32-bit time stamp signature from the PDB info stream.
func (f *File) Signature() uint32 { return f.signature }

// Version returns the PDB info stream version (20000404 for VC 7.0 and later).
func (f *File) Version() uint32 { return f.version }

// Machine returns the target machine from the DBI header.
func (f *File) Machine() Machine { return f.machine }

// NumStreams returns the number of streams in the MSF directory.
func (f *File) NumStreams() int { return len(f.m.sizes) }

// Sections returns the section headers used to turn section:offset pairs
// into RVAs (the original, pre-OMAP headers when the image was rearranged).
func (f *File) Sections() []Section { return append([]Section(nil), f.sections...) }

// Modules returns the DBI module list.
func (f *File) Modules() []Module { return append([]Module(nil), f.modules...) }

func (f *File) readInfo() error {
	b, err := f.m.readStream(streamPDB, 28)
	if err != nil {
		return err
	}
	if len(b) < 28 {
		return formatErr(streamPDB, 0, "PDB info stream is %d bytes, need 28", len(b))
	}
	le := binary.LittleEndian
	f.version = le.Uint32(b[0:])
	f.signature = le.Uint32(b[4:])
	f.age = le.Uint32(b[8:])
	copy(f.guid[:], b[12:28])
	if f.version < 20000404 {
		// VC 2.0..VC 6.0 info streams have no GUID.
		return &UnsupportedError{Format: fmt.Sprintf("PDB info stream version %d (no GUID)", f.version)}
	}
	return nil
}

// DBI header offsets.
const (
	dbiHeaderSize = 64
	maxModules    = 1 << 16
)

func (f *File) readDBI() error {
	sz, ok := f.m.streamSize(streamDBI)
	if !ok || sz == 0 {
		return nil // a PDB without DBI (type-only): no symbols
	}
	b, err := f.m.readStream(streamDBI, -1)
	if err != nil {
		return err
	}
	if len(b) < dbiHeaderSize {
		return formatErr(streamDBI, 0, "DBI stream is %d bytes, need %d", len(b), dbiHeaderSize)
	}
	le := binary.LittleEndian
	if int32(le.Uint32(b[0:])) != -1 {
		return &UnsupportedError{Format: "pre-VC 4.1 DBI stream header"}
	}
	f.dbiAge = le.Uint32(b[8:])
	f.publics = streamIndex(le.Uint16(b[0x10:]))
	f.symRecord = streamIndex(le.Uint16(b[0x14:]))
	f.machine = Machine(le.Uint16(b[0x3A:]))

	// Substreams, in physical order.
	sizes := []struct {
		name string
		off  int
	}{
		{"module info", 0x18},
		{"section contribution", 0x1C},
		{"section map", 0x20},
		{"source info", 0x24},
		{"type server map", 0x28},
		{"EC", 0x34},
		{"optional debug header", 0x30},
	}
	var subs [7][]byte
	pos := int64(dbiHeaderSize)
	for i, s := range sizes {
		n := int64(int32(le.Uint32(b[s.off:])))
		if n < 0 || pos+n > int64(len(b)) {
			return formatErr(streamDBI, int64(s.off), "%s substream size %d exceeds the %d-byte DBI stream", s.name, n, len(b))
		}
		subs[i] = b[pos : pos+n]
		pos += n
	}
	if err := f.readModules(subs[0], dbiHeaderSize); err != nil {
		return err
	}
	return f.readDebugHeader(subs[6])
}

func streamIndex(v uint16) int {
	if v == 0xFFFF {
		return -1
	}
	return int(v)
}

// readModules parses the module-information substream. base is its offset in
// the DBI stream (for error messages).
func (f *File) readModules(b []byte, base int64) error {
	le := binary.LittleEndian
	pos := 0
	for pos+64 <= len(b) {
		if len(f.modules) >= maxModules {
			return formatErr(streamDBI, base+int64(pos), "more than %d modules", maxModules)
		}
		rec := b[pos:]
		mod := Module{
			SymStream: streamIndex(le.Uint16(rec[0x22:])),
			SymSize:   le.Uint32(rec[0x24:]),
			C11Size:   le.Uint32(rec[0x28:]),
			C13Size:   le.Uint32(rec[0x2C:]),
		}
		p := 64
		name, n, ok := cstring(rec[p:])
		if !ok {
			return formatErr(streamDBI, base+int64(pos+p), "unterminated module name")
		}
		p += n
		obj, n, ok := cstring(rec[p:])
		if !ok {
			return formatErr(streamDBI, base+int64(pos+p), "unterminated object name")
		}
		p += n
		mod.Name, mod.ObjectName = name, obj
		f.modules = append(f.modules, mod)
		pos += (p + 3) &^ 3
	}
	return nil
}

// Optional debug header slots.
const (
	dbgOmapToSrc      = 3
	dbgOmapFromSrc    = 4
	dbgSectionHdr     = 5
	dbgSectionHdrOrig = 10
	sectionHeaderSize = 40
	maxSections       = 1 << 16
	maxOmapEntries    = 1 << 24
)

func (f *File) readDebugHeader(b []byte) error {
	le := binary.LittleEndian
	slot := func(i int) int {
		if 2*i+2 > len(b) {
			return -1
		}
		return streamIndex(le.Uint16(b[2*i:]))
	}
	secStream := slot(dbgSectionHdr)
	if omap := slot(dbgOmapFromSrc); omap >= 0 {
		if orig := slot(dbgSectionHdrOrig); orig >= 0 {
			entries, err := f.readOMAP(omap)
			if err != nil {
				return err
			}
			f.omap = entries
			secStream = orig
		}
	}
	if secStream < 0 {
		return nil
	}
	data, err := f.m.readStream(secStream, maxSections*sectionHeaderSize)
	if err != nil {
		return err
	}
	for p := 0; p+sectionHeaderSize <= len(data); p += sectionHeaderSize {
		h := data[p:]
		name := strings.TrimRight(string(h[:8]), "\x00")
		f.sections = append(f.sections, Section{
			Name:            name,
			VirtualSize:     le.Uint32(h[8:]),
			VirtualAddress:  le.Uint32(h[12:]),
			Characteristics: le.Uint32(h[36:]),
		})
	}
	return nil
}

func (f *File) readOMAP(stream int) ([]omapEntry, error) {
	data, err := f.m.readStream(stream, maxOmapEntries*8)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	out := make([]omapEntry, 0, len(data)/8)
	var prev uint32
	for p := 0; p+8 <= len(data); p += 8 {
		e := omapEntry{le.Uint32(data[p:]), le.Uint32(data[p+4:])}
		if e.from < prev {
			return nil, formatErr(stream, int64(p), "OMAP table is not sorted")
		}
		prev = e.from
		out = append(out, e)
	}
	return out, nil
}

// SectionOffsetToRVA converts a 1-based section number and offset into an
// RVA of the image, applying OMAP when the PDB has it. ok is false when the
// section is unknown or OMAP maps the address to nothing.
func (f *File) SectionOffsetToRVA(section uint16, offset uint32) (rva uint32, ok bool) {
	if section == 0 || int(section) > len(f.sections) {
		return 0, false
	}
	rva = f.sections[section-1].VirtualAddress + offset
	if f.omap == nil {
		return rva, true
	}
	return mapOMAP(f.omap, rva)
}

func mapOMAP(t []omapEntry, rva uint32) (uint32, bool) {
	lo, hi := 0, len(t)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if t[mid].from <= rva {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return 0, false
	}
	e := t[lo-1]
	if e.to == 0 {
		return 0, false
	}
	return e.to + (rva - e.from), true
}

// cstring returns the NUL-terminated string at the start of b and the number
// of bytes it occupies including the terminator.
func cstring(b []byte) (string, int, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), i + 1, true
		}
	}
	return "", 0, false
}
