package symbols

import (
	"fmt"
	"strings"

	"github.com/kdtriage/kdtriage/symbols/pe"
)

// ModuleID is everything a dump says about a loaded module's identity: its
// place in memory, its PE image key, its PDB key (from the CodeView record,
// when the dump has one) and its Breakpad identifiers. Fields that the dump
// does not provide stay zero; the Symbolizer uses whatever is set.
type ModuleID struct {
	Name          string // image file name or path as recorded (\SystemRoot\system32\ntoskrnl.exe, C:\app\test_app.exe)
	Base          uint64 // load address
	Size          uint32 // SizeOfImage
	TimeDateStamp uint32 // PE TimeDateStamp: with Size, the image key

	PDBName      string // CodeView PDB path or name (ntkrnlmp.pdb)
	PDBGUID      GUID   // RSDS GUID; zero when the record is NB10 or missing
	PDBAge       uint32 // RSDS or NB10 age
	PDBSignature uint32 // NB10 signature (PDB 2.0); zero for RSDS

	// Breakpad identifiers. DebugFile and DebugID default to PDBName and
	// the GUID+age form of the RSDS record.
	DebugFile string // Breakpad debug file (test_app.pdb, libc.so.6)
	DebugID   string // Breakpad debug ID (33 hex digits for PDBs)
	CodeID    string // Breakpad code ID (TimeDateStamp+SizeOfImage for PE)

	// Image, when set, is the module's PE image mapped from dump memory
	// (pe.NewImage). It supplies the CodeView record and the exports when
	// no symbol store has a copy of the image.
	Image *pe.File
}

// FileName returns the base name of the image (test_app.exe).
func (m ModuleID) FileName() string { return baseName(m.Name) }

// ShortName returns the module name debuggers print before '!': nt for
// every kernel image, hal for every HAL, otherwise the file name without
// its extension (amdppm.sys -> amdppm).
func (m ModuleID) ShortName() string { return ModuleShortName(m.Name) }

// ModuleShortName returns the debugger's name for an image file name or
// path (see ModuleID.ShortName).
func ModuleShortName(name string) string {
	b := baseName(name)
	switch strings.ToLower(b) {
	case "ntoskrnl.exe", "ntkrnlmp.exe", "ntkrnlpa.exe", "ntkrpamp.exe":
		return "nt"
	case "hal.dll", "halmacpi.dll", "halacpi.dll", "halaacpi.dll":
		return "hal"
	}
	if i := strings.LastIndexByte(b, '.'); i > 0 {
		return b[:i]
	}
	return b
}

// Contains reports whether addr lies inside the module's image.
func (m ModuleID) Contains(addr uint64) bool {
	return addr >= m.Base && addr-m.Base < uint64(m.Size)
}

// HasPDB reports whether the module names its PDB (RSDS or NB10).
func (m ModuleID) HasPDB() bool {
	return baseName(m.PDBName) != "" && (!m.PDBGUID.IsZero() || m.PDBSignature != 0)
}

// PDBKey returns the symbol-store key of the module's PDB.
func (m ModuleID) PDBKey() (Key, bool) {
	if !m.HasPDB() {
		return Key{}, false
	}
	if m.PDBGUID.IsZero() {
		return NB10Key(m.PDBName, m.PDBSignature, m.PDBAge), true
	}
	return PDBKey(m.PDBName, m.PDBGUID, m.PDBAge), true
}

// ImageKey returns the symbol-store key of the module's PE image.
func (m ModuleID) ImageKey() (Key, bool) {
	if baseName(m.Name) == "" || m.TimeDateStamp == 0 || m.Size == 0 {
		return Key{}, false
	}
	return ImageKey(m.Name, m.TimeDateStamp, m.Size), true
}

// BreakpadDebugID returns DebugID, or the GUID+age form derived from the
// RSDS record (32 hex digits and the age in hex).
func (m ModuleID) BreakpadDebugID() string {
	if m.DebugID != "" {
		return strings.ToUpper(m.DebugID)
	}
	if !m.PDBGUID.IsZero() {
		return m.PDBGUID.Hex() + fmt.Sprintf("%X", m.PDBAge)
	}
	return ""
}

// BreakpadKey returns the symbol-store key of the module's Breakpad .sym
// file (debug file / debug ID / name.sym).
func (m ModuleID) BreakpadKey() (Key, bool) {
	file := m.DebugFile
	if file == "" {
		file = m.PDBName
	}
	id := m.BreakpadDebugID()
	if baseName(file) == "" || id == "" {
		return Key{}, false
	}
	return BreakpadKey(file, id), true
}

// moduleKey identifies a module's symbols independently of where it is
// loaded. It is comparable, so building it costs no allocation.
type moduleKey struct {
	name          string
	timeDateStamp uint32
	size          uint32
	pdbName       string
	guid          GUID
	age, sig      uint32
	debugFile     string
	debugID       string
	codeID        string
	image         *pe.File
}

func (m ModuleID) cacheKey() moduleKey {
	return moduleKey{baseName(m.Name), m.TimeDateStamp, m.Size, baseName(m.PDBName), m.PDBGUID, m.PDBAge,
		m.PDBSignature, baseName(m.DebugFile), m.DebugID, m.CodeID, m.Image}
}

// FindModule returns the module containing addr.
func FindModule(mods []ModuleID, addr uint64) (ModuleID, bool) {
	for _, m := range mods {
		if m.Contains(addr) {
			return m, true
		}
	}
	return ModuleID{}, false
}
