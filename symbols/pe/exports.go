package pe

import (
	"encoding/binary"
)

// Export is one exported symbol.
type Export struct {
	Name      string // empty for exports by ordinal only
	Ordinal   uint32 // biased ordinal (Base + index)
	RVA       uint32 // the address; 0 when Forwarder is set
	Forwarder string // "DLL.Name" or "DLL.#ord" for forwarded exports
}

// Exports describes an image's export directory.
type Exports struct {
	DLLName string
	Base    uint32 // ordinal base
	List    []Export
}

// Exports reads the export directory: every entry of the export address
// table, with its names and forwarders. Tables larger than 65536 entries
// give an error wrapping ErrLimit.
func (f *File) Exports() (*Exports, error) {
	dd := f.Directory(DirExport)
	if dd.VirtualAddress == 0 || dd.Size == 0 {
		return nil, &FormatError{Offset: -1, Mapped: f.mem != nil, What: "export directory", Msg: "the image has none", Err: ErrNotPresent}
	}
	var hdr [40]byte
	if err := f.readRVA(hdr[:], dd.VirtualAddress, "export directory"); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	nameRVA := le.Uint32(hdr[12:])
	base := le.Uint32(hdr[16:])
	nFuncs := le.Uint32(hdr[20:])
	nNames := le.Uint32(hdr[24:])
	funcsRVA := le.Uint32(hdr[28:])
	namesRVA := le.Uint32(hdr[32:])
	ordsRVA := le.Uint32(hdr[36:])
	pos := f.offsetOf(dd.VirtualAddress)
	if nFuncs > maxExports || nNames > maxExports {
		return nil, f.errAt(pos+20, "export directory", ErrLimit, "%d functions, %d names (cap %d)", nFuncs, nNames, maxExports)
	}
	ex := &Exports{Base: base}
	if nameRVA != 0 {
		if s, err := f.readCString(nameRVA, maxExportName, "export DLL name"); err == nil {
			ex.DLLName = s
		}
	}
	funcs := make([]byte, 4*nFuncs)
	if err := f.readRVA(funcs, funcsRVA, "export address table"); err != nil && nFuncs > 0 {
		return nil, err
	}
	names := make([]byte, 4*nNames)
	ords := make([]byte, 2*nNames)
	if nNames > 0 {
		if err := f.readRVA(names, namesRVA, "export name table"); err != nil {
			return nil, err
		}
		if err := f.readRVA(ords, ordsRVA, "export ordinal table"); err != nil {
			return nil, err
		}
	}
	ex.List = make([]Export, nFuncs)
	for i := range ex.List {
		e := &ex.List[i]
		e.Ordinal = base + uint32(i)
		rva := le.Uint32(funcs[4*i:])
		if rva >= dd.VirtualAddress && rva-dd.VirtualAddress < dd.Size {
			s, err := f.readCString(rva, maxExportName, "export forwarder")
			if err != nil {
				return nil, err
			}
			e.Forwarder = s
			continue
		}
		e.RVA = rva
	}
	for i := range int(nNames) {
		idx := uint32(le.Uint16(ords[2*i:]))
		if idx >= nFuncs {
			return nil, f.errAt(f.offsetOf(ordsRVA+uint32(2*i)), "export ordinal table", ErrFormat, "index %d >= %d functions", idx, nFuncs)
		}
		s, err := f.readCString(le.Uint32(names[4*i:]), maxExportName, "export name")
		if err != nil {
			return nil, err
		}
		if ex.List[idx].Name == "" {
			ex.List[idx].Name = s
		}
	}
	return ex, nil
}
