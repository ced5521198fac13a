package triage

import (
	"context"
	"strconv"
	"strings"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/kdump/minidump"
	"github.com/kdtriage/kdtriage/symbols"
)

// umSymbols names the frames of a user-mode dump and gives the stack
// walker Breakpad call-frame information. With the symbols package behind
// Options.Symbols (FromSymbols) it looks modules up by their full debug
// identity from the minidump's CodeView records (PDB GUID and age,
// Breakpad debug file and ID), which finds PDBs and Breakpad .sym files in
// a symbol store; other Symbolizers get the plain module.
type umSymbols struct {
	generic Symbolizer
	full    *symbols.Symbolizer
	mods    []kdump.Module
	ids     []symbols.ModuleID // parallel to mods when full != nil
}

// umSymbol is a resolved address.
type umSymbol struct {
	function string
	offset   uint64 // from the function's start
	file     string
	line     int
	ok       bool
}

func newUMSymbols(s Symbolizer, mods []kdump.Module, mdMods []minidump.Module) *umSymbols {
	u := &umSymbols{generic: s, mods: mods}
	if ad, ok := s.(symbolsAdapter); ok && ad.s != nil {
		u.full = ad.s
		u.ids = make([]symbols.ModuleID, len(mods))
		for i := range mods {
			var md *minidump.Module
			if len(mdMods) == len(mods) {
				md = &mdMods[i]
			}
			u.ids[i] = moduleID(&mods[i], md)
		}
	}
	return u
}

// moduleID builds the symbols package's identity of a module.
func moduleID(m *kdump.Module, md *minidump.Module) symbols.ModuleID {
	name := m.Path
	if name == "" {
		name = m.Name
	}
	id := symbols.ModuleID{Name: name, Base: m.Base, Size: m.Size, TimeDateStamp: m.TimeDateStamp}
	if md == nil {
		return id
	}
	id.DebugFile, id.DebugID, id.CodeID = md.DebugFile(), md.DebugID(), md.CodeID()
	if cv := md.CodeView; cv != nil {
		switch cv.Signature {
		case minidump.CVSignatureRSDS:
			id.PDBName, id.PDBAge = cv.PDBName, cv.Age
			id.PDBGUID = symbols.GUID{Data1: cv.GUID.Data1, Data2: cv.GUID.Data2, Data3: cv.GUID.Data3, Data4: cv.GUID.Data4}
		case minidump.CVSignatureNB10:
			id.PDBName, id.PDBAge, id.PDBSignature = cv.PDBName, cv.Age, cv.Timestamp
		}
	}
	return id
}

// index returns the index of module m in the list, or -1.
func (u *umSymbols) index(m *kdump.Module) int {
	for i := range u.mods {
		if u.mods[i].Base == m.Base && u.mods[i].Size == m.Size {
			return i
		}
	}
	return -1
}

// lookup resolves rva in module i.
func (u *umSymbols) lookup(ctx context.Context, i int, rva uint64) umSymbol {
	if i < 0 || i >= len(u.mods) {
		return umSymbol{}
	}
	if u.full != nil {
		s, err := u.full.Symbolize(ctx, u.ids[i], rva)
		if err != nil || s.Function == "" {
			return umSymbol{}
		}
		return umSymbol{function: s.Function, offset: s.Offset, file: s.File, line: int(s.Line), ok: true}
	}
	if u.generic == nil {
		return umSymbol{}
	}
	sym, ok := symbolize(ctx, u.generic, u.mods[i], rva)
	return umSymbol{function: sym.Function, offset: sym.Offset, file: sym.File, line: sym.Line, ok: ok}
}

// Rules implements stack.CFI from the modules' Breakpad .sym files: STACK
// WIN FrameData records with a program, else STACK CFI rules.
func (u *umSymbols) Rules(ctx context.Context, m kdump.Module, rva uint32) (map[string]string, bool, error) {
	if u.full == nil {
		return nil, false, nil
	}
	i := u.index(&m)
	if i < 0 {
		return nil, false, nil
	}
	ms, err := u.full.Module(ctx, u.ids[i])
	if err != nil {
		return nil, false, err
	}
	bp := ms.Breakpad
	if bp == nil {
		return nil, false, nil
	}
	if w, ok := bp.FindWin(uint64(rva)); ok && w.HasProgram {
		return map[string]string{
			".program":     w.Program,
			".cbParams":    strconv.FormatUint(uint64(w.ParamSize), 10),
			".cbSavedRegs": strconv.FormatUint(uint64(w.SavedRegsSize), 10),
			".cbLocals":    strconv.FormatUint(uint64(w.LocalsSize), 10),
			".cbPrologue":  strconv.FormatUint(uint64(w.PrologSize), 10),
		}, true, nil
	}
	if c, ok := bp.FindCFI(uint64(rva)); ok {
		return c.Merged(), true, nil
	}
	return nil, false, nil
}

// userModuleName is the debugger's name of a user-mode module: the file
// name without a PE extension (test_app for test_app.exe); names of other
// systems' modules (libc.so.6) are kept whole.
func userModuleName(image string) string {
	if i := strings.LastIndexByte(image, '.'); i > 0 {
		switch strings.ToLower(image[i:]) {
		case ".exe", ".dll", ".sys", ".drv", ".ocx", ".cpl", ".scr", ".efi", ".node", ".pyd", ".com":
			return image[:i]
		}
	}
	return image
}
