package kdump

import "strings"

// Module is a loaded kernel module (driver) or user-mode image.
type Module struct {
	Name          string // base name, e.g. "ntoskrnl.exe"
	Path          string // the path as recorded, e.g. \SystemRoot\system32\ntoskrnl.exe
	Base          uint64
	Size          uint32
	TimeDateStamp uint32 // PE header TimeDateStamp (symbol-server key), 0 if unknown
	CheckSum      uint32
}

// End returns the first address past the module.
func (m *Module) End() uint64 { return m.Base + uint64(m.Size) }

// Contains reports whether addr lies inside the module's image.
func (m *Module) Contains(addr uint64) bool { return addr >= m.Base && addr-m.Base < uint64(m.Size) }

// UnloadedModule is a driver that was unloaded before the crash.
type UnloadedModule struct {
	Name       string
	Start, End uint64
}

// Contains reports whether addr lies in the range the driver occupied.
func (u *UnloadedModule) Contains(addr uint64) bool { return addr >= u.Start && addr < u.End }

// ModuleAt returns the module of mods containing addr, or nil.
func ModuleAt(mods []Module, addr uint64) *Module {
	for i := range mods {
		if mods[i].Contains(addr) {
			return &mods[i]
		}
	}
	return nil
}

// baseName returns the last component of a Windows or NT path.
func baseName(p string) string {
	if i := strings.LastIndexAny(p, `\/`); i >= 0 {
		return p[i+1:]
	}
	return p
}
