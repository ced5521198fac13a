package pe

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// DebugType is the Type of an IMAGE_DEBUG_DIRECTORY entry.
type DebugType uint32

// Debug directory types.
const (
	DebugTypeUnknown   DebugType = 0
	DebugTypeCOFF      DebugType = 1
	DebugTypeCodeView  DebugType = 2
	DebugTypeFPO       DebugType = 3
	DebugTypeMisc      DebugType = 4
	DebugTypeException DebugType = 5
	DebugTypeFixup     DebugType = 6
	DebugTypeBorland   DebugType = 9
	DebugTypeCLSID     DebugType = 11
	DebugTypeVCFeature DebugType = 12
	DebugTypePOGO      DebugType = 13
	DebugTypeILTCG     DebugType = 14
	DebugTypeRepro     DebugType = 16
	DebugTypeExDllChar DebugType = 20
)

// String returns the type's short name (CodeView, POGO, ...).
func (t DebugType) String() string {
	switch t {
	case DebugTypeUnknown:
		return "Unknown"
	case DebugTypeCOFF:
		return "COFF"
	case DebugTypeCodeView:
		return "CodeView"
	case DebugTypeFPO:
		return "FPO"
	case DebugTypeMisc:
		return "Misc"
	case DebugTypeException:
		return "Exception"
	case DebugTypeFixup:
		return "Fixup"
	case DebugTypeBorland:
		return "Borland"
	case DebugTypeCLSID:
		return "CLSID"
	case DebugTypeVCFeature:
		return "VCFeature"
	case DebugTypePOGO:
		return "POGO"
	case DebugTypeILTCG:
		return "ILTCG"
	case DebugTypeRepro:
		return "Repro"
	case DebugTypeExDllChar:
		return "ExtendedDLLCharacteristics"
	}
	return fmt.Sprintf("DebugType(%d)", uint32(t))
}

// DebugDirectory is one IMAGE_DEBUG_DIRECTORY entry (28 bytes).
type DebugDirectory struct {
	Characteristics  uint32
	TimeDateStamp    uint32
	MajorVersion     uint16
	MinorVersion     uint16
	Type             DebugType
	SizeOfData       uint32
	AddressOfRawData uint32 // RVA (0 when the data is not mapped)
	PointerToRawData uint32 // file offset
}

// DebugDirectories returns the entries of the debug directory.
func (f *File) DebugDirectories() ([]DebugDirectory, error) {
	b, rva, err := f.readDirectory(DirDebug)
	if err != nil {
		return nil, err
	}
	n := len(b) / 28
	if n > maxDebugEntries {
		return nil, f.errAt(f.offsetOf(rva), "debug directory", ErrLimit, "%d entries (cap %d)", n, maxDebugEntries)
	}
	le := binary.LittleEndian
	out := make([]DebugDirectory, n)
	for i := range out {
		e := b[28*i:]
		out[i] = DebugDirectory{
			Characteristics:  le.Uint32(e[0:]),
			TimeDateStamp:    le.Uint32(e[4:]),
			MajorVersion:     le.Uint16(e[8:]),
			MinorVersion:     le.Uint16(e[10:]),
			Type:             DebugType(le.Uint32(e[12:])),
			SizeOfData:       le.Uint32(e[16:]),
			AddressOfRawData: le.Uint32(e[20:]),
			PointerToRawData: le.Uint32(e[24:]),
		}
	}
	return out, nil
}

// GUID is a GUID in its 16-byte on-disk order (Data1, Data2, Data3
// little-endian, then Data4), as an RSDS record stores it.
type GUID [16]byte

// Data1 returns the first field as an integer.
func (g GUID) Data1() uint32 { return binary.LittleEndian.Uint32(g[0:]) }

// Data2 returns the second field as an integer.
func (g GUID) Data2() uint16 { return binary.LittleEndian.Uint16(g[4:]) }

// Data3 returns the third field as an integer.
func (g GUID) Data3() uint16 { return binary.LittleEndian.Uint16(g[6:]) }

// String returns the GUID in registry form without braces, uppercase:
// 4192FD51-0CEE-41B5-98C1-066D2DA8296B.
func (g GUID) String() string {
	return fmt.Sprintf("%08X-%04X-%04X-%02X%02X-%X", g.Data1(), g.Data2(), g.Data3(), g[8], g[9], g[10:16])
}

// CodeViewSignature is the first DWORD of a CodeView record.
type CodeViewSignature uint32

// CodeView record signatures.
const (
	CodeViewRSDS CodeViewSignature = 0x53445352 // "RSDS": PDB 7.0
	CodeViewNB10 CodeViewSignature = 0x3031424E // "NB10": PDB 2.0
)

// String returns RSDS, NB10 or the value in hex.
func (s CodeViewSignature) String() string {
	switch s {
	case CodeViewRSDS:
		return "RSDS"
	case CodeViewNB10:
		return "NB10"
	}
	return fmt.Sprintf("CodeViewSignature(%#x)", uint32(s))
}

// CodeView is the debug identity of an image: the key of its PDB.
type CodeView struct {
	Signature CodeViewSignature
	GUID      GUID   // RSDS only
	NB10Sig   uint32 // NB10 only: the PDB's signature (a timestamp)
	Age       uint32
	PDBPath   string // as recorded, often a full build path
}

// PDBName returns the last component of PDBPath, the name used in symbol
// stores.
func (cv *CodeView) PDBName() string {
	p := cv.PDBPath
	if i := strings.LastIndexAny(p, `\/`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// ID returns the symbol-store index of the PDB: for RSDS the GUID as 32
// uppercase hex digits followed by the age in uppercase hex; for NB10 the
// signature as 8 hex digits followed by the age.
func (cv *CodeView) ID() string {
	if cv.Signature == CodeViewNB10 {
		return fmt.Sprintf("%08X%X", cv.NB10Sig, cv.Age)
	}
	g := cv.GUID
	return fmt.Sprintf("%08X%04X%04X%X%X", g.Data1(), g.Data2(), g.Data3(), g[8:16], cv.Age)
}

// ParseCodeView decodes an RSDS or NB10 record (also found in minidump
// module lists). off is the record's position, reported in errors.
func ParseCodeView(b []byte, off int64) (*CodeView, error) {
	le := binary.LittleEndian
	if len(b) < 4 {
		return nil, &FormatError{Offset: off, What: "CodeView record", Msg: "shorter than its signature", Err: ErrTruncated}
	}
	cv := &CodeView{Signature: CodeViewSignature(le.Uint32(b))}
	var name []byte
	switch cv.Signature {
	case CodeViewRSDS:
		if len(b) < 0x18 {
			return nil, &FormatError{Offset: off, What: "CodeView RSDS record", Msg: fmt.Sprintf("%d bytes, need 24", len(b)), Err: ErrTruncated}
		}
		copy(cv.GUID[:], b[4:20])
		cv.Age = le.Uint32(b[20:])
		name = b[24:]
	case CodeViewNB10:
		if len(b) < 0x10 {
			return nil, &FormatError{Offset: off, What: "CodeView NB10 record", Msg: fmt.Sprintf("%d bytes, need 16", len(b)), Err: ErrTruncated}
		}
		cv.NB10Sig = le.Uint32(b[8:])
		cv.Age = le.Uint32(b[12:])
		name = b[16:]
	default:
		return nil, &FormatError{Offset: off, What: "CodeView record", Msg: fmt.Sprintf("unknown signature %#x", uint32(cv.Signature)), Err: ErrFormat}
	}
	for i, c := range name {
		if c == 0 {
			name = name[:i]
			break
		}
	}
	cv.PDBPath = strings.ToValidUTF8(string(name), "\uFFFD")
	return cv, nil
}

// CodeView returns the image's first CodeView record (RSDS or NB10). It
// reads the record by RVA (mapped images, and files whose record is mapped)
// or by file offset.
func (f *File) CodeView() (*CodeView, error) {
	dirs, err := f.DebugDirectories()
	if err != nil {
		return nil, err
	}
	var firstErr error
	for _, d := range dirs {
		if d.Type != DebugTypeCodeView {
			continue
		}
		if d.SizeOfData > maxCodeViewSize {
			return nil, f.errAt(int64(d.PointerToRawData), "CodeView record", ErrLimit, "SizeOfData %#x", d.SizeOfData)
		}
		b := make([]byte, d.SizeOfData)
		var pos int64
		switch {
		case d.AddressOfRawData != 0:
			pos = f.offsetOf(d.AddressOfRawData)
			err = f.readRVA(b, d.AddressOfRawData, "CodeView record")
		case f.mem == nil && d.PointerToRawData != 0:
			pos = int64(d.PointerToRawData)
			err = f.readRaw(b, pos, "CodeView record")
		default:
			err = f.errAt(-1, "CodeView record", ErrNotPresent, "not mapped")
		}
		if err == nil {
			var cv *CodeView
			cv, err = ParseCodeView(b, pos)
			if err == nil {
				return cv, nil
			}
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return nil, &FormatError{Offset: -1, Mapped: f.mem != nil, What: "debug directory", Msg: "no CodeView entry", Err: ErrNotPresent}
}
