package minidump

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// FixedFileInfo is VS_FIXEDFILEINFO, the version resource of an image.
type FixedFileInfo struct {
	Signature        uint32 // 0xFEEF04BD when present
	StrucVersion     uint32
	FileVersionMS    uint32
	FileVersionLS    uint32
	ProductVersionMS uint32
	ProductVersionLS uint32
	FileFlagsMask    uint32
	FileFlags        uint32
	FileOS           uint32
	FileType         uint32
	FileSubtype      uint32
	FileDateMS       uint32
	FileDateLS       uint32
}

// FixedFileInfoSignature is VS_FIXEDFILEINFO.dwSignature.
const FixedFileInfoSignature = 0xFEEF04BD

// Valid reports whether the version resource was captured.
func (v *FixedFileInfo) Valid() bool { return v.Signature == FixedFileInfoSignature }

// FileVersion returns "a.b.c.d", or "" when no version was captured.
func (v *FixedFileInfo) FileVersion() string {
	if !v.Valid() {
		return ""
	}
	return fmt.Sprintf("%d.%d.%d.%d", v.FileVersionMS>>16, v.FileVersionMS&0xFFFF, v.FileVersionLS>>16, v.FileVersionLS&0xFFFF)
}

// ProductVersion returns "a.b.c.d", or "" when no version was captured.
func (v *FixedFileInfo) ProductVersion() string {
	if !v.Valid() {
		return ""
	}
	return fmt.Sprintf("%d.%d.%d.%d", v.ProductVersionMS>>16, v.ProductVersionMS&0xFFFF, v.ProductVersionLS>>16, v.ProductVersionLS&0xFFFF)
}

// CodeView signatures.
const (
	CVSignatureRSDS = 0x53445352 // "RSDS": PDB 7.0
	CVSignatureNB10 = 0x3031424E // "NB10": PDB 2.0
	CVSignatureELF  = 0x4270454C // "LEpB": Breakpad ELF build id
)

// GUID is a Windows GUID in its in-memory layout.
type GUID struct {
	Data1 uint32
	Data2 uint16
	Data3 uint16
	Data4 [8]byte
}

// String returns the GUID as xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (lowercase).
func (g GUID) String() string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", g.Data1, g.Data2, g.Data3, g.Data4[:2], g.Data4[2:])
}

// Hex returns the 32 uppercase hex digits used in symbol-server keys.
func (g GUID) Hex() string {
	return fmt.Sprintf("%08X%04X%04X%X", g.Data1, g.Data2, g.Data3, g.Data4[:])
}

func parseGUID(b []byte) GUID {
	var g GUID
	g.Data1 = le.Uint32(b)
	g.Data2 = le.Uint16(b[4:])
	g.Data3 = le.Uint16(b[6:])
	copy(g.Data4[:], b[8:16])
	return g
}

// CodeView is a module's CodeView record: its debug identity.
type CodeView struct {
	Signature uint32 // CVSignatureRSDS, CVSignatureNB10, CVSignatureELF or other
	GUID      GUID   // RSDS
	Age       uint32 // RSDS, NB10
	Offset    uint32 // NB10
	Timestamp uint32 // NB10 signature (a time stamp)
	PDBName   string // RSDS, NB10: the PDB path as recorded
	BuildID   []byte // ELF build id
}

// SignatureString returns "RSDS", "NB10", "ELF" or the signature in hex.
func (c *CodeView) SignatureString() string {
	switch c.Signature {
	case CVSignatureRSDS:
		return "RSDS"
	case CVSignatureNB10:
		return "NB10"
	case CVSignatureELF:
		return "ELF"
	}
	return fmt.Sprintf("%#x", c.Signature)
}

// DebugID returns the symbol-server / Breakpad debug identifier: GUID hex
// plus age in hex for RSDS; signature (8 hex digits) plus age for NB10;
// for ELF build ids the first 16 bytes read as a GUID, plus age 0.
func (c *CodeView) DebugID() string {
	switch c.Signature {
	case CVSignatureRSDS:
		return c.GUID.Hex() + fmt.Sprintf("%X", c.Age)
	case CVSignatureNB10:
		return fmt.Sprintf("%08X%X", c.Timestamp, c.Age)
	case CVSignatureELF:
		var b [16]byte
		copy(b[:], c.BuildID)
		return parseGUID(b[:]).Hex() + "0"
	}
	return ""
}

// PDBBaseName returns the last component of PDBName.
func (c *CodeView) PDBBaseName() string { return baseName(c.PDBName) }

const maxCVRecord = 1 << 16

func parseCodeView(b []byte, off int64) (*CodeView, error) {
	if len(b) < 4 {
		return nil, formatErr(off, "CodeView record", ErrTruncated, "%d bytes", len(b))
	}
	c := &CodeView{Signature: le.Uint32(b)}
	switch c.Signature {
	case CVSignatureRSDS:
		if len(b) < 24 {
			return nil, formatErr(off, "CodeView record", ErrTruncated, "RSDS record of %d bytes", len(b))
		}
		c.GUID = parseGUID(b[4:])
		c.Age = le.Uint32(b[20:])
		c.PDBName = cString(b[24:])
	case CVSignatureNB10:
		if len(b) < 16 {
			return nil, formatErr(off, "CodeView record", ErrTruncated, "NB10 record of %d bytes", len(b))
		}
		c.Offset = le.Uint32(b[4:])
		c.Timestamp = le.Uint32(b[8:])
		c.Age = le.Uint32(b[12:])
		c.PDBName = cString(b[16:])
	case CVSignatureELF:
		c.BuildID = append([]byte(nil), b[4:]...)
	}
	return c, nil
}

// MiscRecord is IMAGE_DEBUG_MISC (a .dbg file reference; obsolete).
type MiscRecord struct {
	DataType uint32
	Length   uint32
	Unicode  bool
	Data     string
}

func parseMisc(b []byte) *MiscRecord {
	if len(b) < 12 {
		return nil
	}
	m := &MiscRecord{DataType: le.Uint32(b), Length: le.Uint32(b[4:]), Unicode: b[8] != 0}
	if m.Unicode {
		m.Data = utf16String(b[12:])
	} else {
		m.Data = cString(b[12:])
	}
	return m
}

// Module is a MINIDUMP_MODULE with its name and records read.
type Module struct {
	Base          uint64
	Size          uint32
	CheckSum      uint32
	TimeDateStamp uint32
	NameRva       uint32
	Name          string // full path as recorded (MINIDUMP_STRING at NameRva)
	Version       FixedFileInfo
	CvRecord      Location
	MiscRecord    Location
	CodeView      *CodeView   // nil when absent or unreadable
	Misc          *MiscRecord // nil when absent or unreadable
	// Problems lists what could not be read for this module (name,
	// CodeView or misc record); the rest of the entry is valid.
	Problems []error
}

// BaseName returns the last component of the module's path.
func (m *Module) BaseName() string { return baseName(m.Name) }

// End returns the first address past the module's image.
func (m *Module) End() uint64 { return m.Base + uint64(m.Size) }

// Contains reports whether addr lies in the module's image.
func (m *Module) Contains(addr uint64) bool { return addr >= m.Base && addr-m.Base < uint64(m.Size) }

// CodeID returns the image key: %08X TimeDateStamp followed by %x SizeOfImage
// (for ELF modules, the build id in lowercase hex).
func (m *Module) CodeID() string {
	if m.CodeView != nil && m.CodeView.Signature == CVSignatureELF {
		return hex.EncodeToString(m.CodeView.BuildID)
	}
	return fmt.Sprintf("%08X%x", m.TimeDateStamp, m.Size)
}

// DebugFile returns the PDB path from the CodeView record, or "".
func (m *Module) DebugFile() string {
	if m.CodeView != nil && m.CodeView.PDBName != "" {
		return m.CodeView.PDBName
	}
	if m.CodeView != nil && m.CodeView.Signature == CVSignatureELF {
		return m.Name
	}
	return ""
}

// DebugID returns the CodeView debug identifier, or "".
func (m *Module) DebugID() string {
	if m.CodeView == nil {
		return ""
	}
	return m.CodeView.DebugID()
}

// Modules returns the ModuleListStream entries in the order stored.
func (f *File) Modules() ([]Module, error) {
	return f.modules.get(f.parseModules)
}

func (f *File) parseModules() ([]Module, error) {
	b, off, err := f.streamBytes(ModuleListStream)
	if err != nil {
		return nil, err
	}
	const size = 108
	n, start, err := listHeader(b, off, "module list", size)
	if err != nil {
		return nil, err
	}
	out := make([]Module, n)
	for i := range out {
		e := b[start+i*size:]
		m := &out[i]
		m.Base = le.Uint64(e)
		m.Size = le.Uint32(e[8:])
		m.CheckSum = le.Uint32(e[12:])
		m.TimeDateStamp = le.Uint32(e[16:])
		m.NameRva = le.Uint32(e[20:])
		v := e[24:]
		m.Version = FixedFileInfo{
			le.Uint32(v), le.Uint32(v[4:]), le.Uint32(v[8:]), le.Uint32(v[12:]), le.Uint32(v[16:]),
			le.Uint32(v[20:]), le.Uint32(v[24:]), le.Uint32(v[28:]), le.Uint32(v[32:]), le.Uint32(v[36:]),
			le.Uint32(v[40:]), le.Uint32(v[44:]), le.Uint32(v[48:]),
		}
		m.CvRecord = Location{DataSize: le.Uint32(e[76:]), Rva: le.Uint32(e[80:])}
		m.MiscRecord = Location{DataSize: le.Uint32(e[84:]), Rva: le.Uint32(e[88:])}
		if name, err := f.ReadString(m.NameRva); err == nil {
			m.Name = name
		} else {
			m.Problems = append(m.Problems, err)
		}
		if m.CvRecord.DataSize > 0 {
			err := f.charge(int64(m.CvRecord.DataSize), int64(m.CvRecord.Rva), "CodeView record")
			var cb []byte
			if err == nil {
				cb, err = f.ReadLocation(m.CvRecord, "CodeView record", maxCVRecord)
			}
			if err == nil {
				m.CodeView, err = parseCodeView(cb, int64(m.CvRecord.Rva))
			}
			if err != nil {
				m.Problems = append(m.Problems, err)
			}
		}
		if m.MiscRecord.DataSize > 0 {
			err := f.charge(int64(m.MiscRecord.DataSize), int64(m.MiscRecord.Rva), "misc record")
			var mb []byte
			if err == nil {
				mb, err = f.ReadLocation(m.MiscRecord, "misc record", maxCVRecord)
			}
			if err == nil {
				m.Misc = parseMisc(mb)
			} else {
				m.Problems = append(m.Problems, err)
			}
		}
	}
	return out, nil
}

// ModuleAt returns the module containing addr, or nil.
func (f *File) ModuleAt(addr uint64) *Module {
	mods, _ := f.Modules()
	for i := range mods {
		if mods[i].Contains(addr) {
			return &mods[i]
		}
	}
	return nil
}

// UnloadedModule is a MINIDUMP_UNLOADED_MODULE.
type UnloadedModule struct {
	Base          uint64
	Size          uint32
	CheckSum      uint32
	TimeDateStamp uint32
	Name          string
}

// Contains reports whether addr lies in the range the module occupied.
func (u *UnloadedModule) Contains(addr uint64) bool {
	return addr >= u.Base && addr-u.Base < uint64(u.Size)
}

// UnloadedModules returns the UnloadedModuleListStream entries.
func (f *File) UnloadedModules() ([]UnloadedModule, error) {
	return f.unloaded.get(func() ([]UnloadedModule, error) {
		b, off, err := f.streamBytes(UnloadedModuleListStream)
		if err != nil {
			return nil, err
		}
		n, stride, start, err := tableHeader(b, off, "unloaded module list", 24, false)
		if err != nil {
			return nil, err
		}
		out := make([]UnloadedModule, n)
		for i := range out {
			e := b[start+i*stride:]
			out[i] = UnloadedModule{Base: le.Uint64(e), Size: le.Uint32(e[8:]), CheckSum: le.Uint32(e[12:]), TimeDateStamp: le.Uint32(e[16:])}
			out[i].Name, _ = f.ReadString(le.Uint32(e[20:]))
		}
		return out, nil
	})
}

// baseName returns the last component of a Windows or POSIX path.
func baseName(p string) string {
	if i := strings.LastIndexAny(p, `\/`); i >= 0 {
		return p[i+1:]
	}
	return p
}
