package pdb

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
)

// SymKind is a CodeView symbol record kind (cvinfo.h SYM_ENUM_e).
type SymKind uint16

// Symbol record kinds this package reads or recognises.
const (
	SymPub32        SymKind = 0x110E // S_PUB32
	SymLProc32      SymKind = 0x110F // S_LPROC32
	SymGProc32      SymKind = 0x1110 // S_GPROC32
	SymLProc32ID    SymKind = 0x1146 // S_LPROC32_ID
	SymGProc32ID    SymKind = 0x1147 // S_GPROC32_ID
	SymLProc32DPC   SymKind = 0x1155 // S_LPROC32_DPC
	SymLProc32DPCID SymKind = 0x1156 // S_LPROC32_DPC_ID
	SymThunk32      SymKind = 0x1102 // S_THUNK32
	SymTrampoline   SymKind = 0x112C // S_TRAMPOLINE (incremental-linking thunk)
	SymProcRef      SymKind = 0x1125 // S_PROCREF
	SymLProcRef     SymKind = 0x1127 // S_LPROCREF
)

// String returns the cvinfo.h name of k.
func (k SymKind) String() string {
	switch k {
	case SymPub32:
		return "S_PUB32"
	case SymLProc32:
		return "S_LPROC32"
	case SymGProc32:
		return "S_GPROC32"
	case SymLProc32ID:
		return "S_LPROC32_ID"
	case SymGProc32ID:
		return "S_GPROC32_ID"
	case SymLProc32DPC:
		return "S_LPROC32_DPC"
	case SymLProc32DPCID:
		return "S_LPROC32_DPC_ID"
	case SymThunk32:
		return "S_THUNK32"
	case SymTrampoline:
		return "S_TRAMPOLINE"
	case SymProcRef:
		return "S_PROCREF"
	case SymLProcRef:
		return "S_LPROCREF"
	}
	return fmt.Sprintf("SymKind(%#x)", uint16(k))
}

// PublicFlags are the CV_PUBSYMFLAGS of an S_PUB32 record.
type PublicFlags uint32

// Public symbol flags.
const (
	PublicCode     PublicFlags = 0x1 // fCode: the symbol is code
	PublicFunction PublicFlags = 0x2 // fFunction: the symbol is a function
	PublicManaged  PublicFlags = 0x4 // fManaged: managed code or data
	PublicMSIL     PublicFlags = 0x8 // fMSIL: managed IL code
)

// String lists the set flags as "code | function", or "none".
func (fl PublicFlags) String() string {
	var parts []string
	for _, x := range []struct {
		f PublicFlags
		s string
	}{{PublicCode, "code"}, {PublicFunction, "function"}, {PublicManaged, "managed"}, {PublicMSIL, "msil"}} {
		if fl&x.f != 0 {
			parts = append(parts, x.s)
		}
	}
	if rest := fl &^ 0xF; rest != 0 {
		parts = append(parts, fmt.Sprintf("%#x", uint32(rest)))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " | ")
}

// Public is one S_PUB32 record.
type Public struct {
	Name    string      // decorated name as stored
	Flags   PublicFlags // CV_PUBSYMFLAGS
	Section uint16      // 1-based section number (0 for absolute symbols)
	Offset  uint32      // offset inside the section
	RVA     uint32      // image-relative address; valid only when HasRVA
	HasRVA  bool        // the section is known (and OMAP, if any, maps the address)
	Record  uint32      // offset of the record in the symbol record stream
}

// IsFunction reports whether the public names code (fFunction or fCode).
func (p Public) IsFunction() bool { return p.Flags&(PublicFunction|PublicCode) != 0 }

// Proc is a procedure symbol from a module stream: a function with extents
// (S_GPROC32 and relatives), a thunk (S_THUNK32) or an incremental-linking
// trampoline (S_TRAMPOLINE, whose Name is empty and whose target is given).
type Proc struct {
	Kind    SymKind
	Name    string // name as stored (usually undecorated, e.g. "ns::C::f")
	Section uint16
	Offset  uint32
	Length  uint32 // code length in bytes
	RVA     uint32 // valid only when HasRVA
	HasRVA  bool
	Module  int // index into Modules()

	// Trampolines only: where the thunk jumps.
	TargetSection uint16
	TargetOffset  uint32
}

// Symbol record stream limits.
const maxRecordStream = 1 << 30

// symRecords returns the whole symbol record stream.
func (f *File) symRecords() ([]byte, error) {
	if f.symRecord < 0 {
		return nil, nil
	}
	return f.m.readStream(f.symRecord, maxRecordStream)
}

// Publics returns every S_PUB32 record. When the publics stream's address map
// is readable the records are the ones it lists, in address order; otherwise
// the symbol record stream is scanned and the result sorted by section and
// offset.
func (f *File) Publics() ([]Public, error) {
	recs, err := f.symRecords()
	if err != nil {
		return nil, err
	}
	if recs == nil {
		return nil, nil
	}
	if offs, ok := f.publicsAddrMap(len(recs)); ok {
		out := make([]Public, 0, len(offs))
		for _, off := range offs {
			p, ok, err := f.parsePublic(recs, off)
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, p)
			}
		}
		return out, nil
	}
	var out []Public
	err = walkRecords(f.symRecord, recs, 0, func(off int, kind SymKind, _ []byte) error {
		if kind != SymPub32 {
			return nil
		}
		p, ok, err := f.parsePublic(recs, uint32(off))
		if err == nil && ok {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Section != out[j].Section {
			return out[i].Section < out[j].Section
		}
		return out[i].Offset < out[j].Offset
	})
	return out, nil
}

// publicsAddrMap reads the address map of the publics GSI stream: offsets of
// S_PUB32 records in the symbol record stream, sorted by address.
func (f *File) publicsAddrMap(recLen int) ([]uint32, bool) {
	if f.publics < 0 {
		return nil, false
	}
	b, err := f.m.readStream(f.publics, maxRecordStream)
	if err != nil || len(b) < 28 {
		return nil, false
	}
	le := binary.LittleEndian
	symHash := int64(le.Uint32(b[0:]))
	addrMap := int64(le.Uint32(b[4:]))
	start := 28 + symHash
	if addrMap%4 != 0 || start+addrMap > int64(len(b)) {
		return nil, false
	}
	offs := make([]uint32, addrMap/4)
	for i := range offs {
		offs[i] = le.Uint32(b[start+int64(i)*4:])
		if int(offs[i]) >= recLen {
			return nil, false
		}
	}
	return offs, true
}

// parsePublic decodes the S_PUB32 record at off. ok is false when the record
// there is not an S_PUB32.
func (f *File) parsePublic(recs []byte, off uint32) (Public, bool, error) {
	rec, kind, err := recordAt(f.symRecord, recs, int(off))
	if err != nil {
		return Public{}, false, err
	}
	if kind != SymPub32 {
		return Public{}, false, nil
	}
	if len(rec) < 14 {
		return Public{}, false, formatErr(f.symRecord, int64(off), "S_PUB32 record of %d bytes is too short", len(rec)+4)
	}
	le := binary.LittleEndian
	p := Public{
		Flags:   PublicFlags(le.Uint32(rec[0:])),
		Offset:  le.Uint32(rec[4:]),
		Section: le.Uint16(rec[8:]),
		Record:  off,
	}
	p.Name = recordName(rec[10:])
	p.RVA, p.HasRVA = f.SectionOffsetToRVA(p.Section, p.Offset)
	return p, true, nil
}

// recordName returns the NUL-terminated name at the start of b, or all of b
// when the terminator is missing (records are padded, so it normally exists).
func recordName(b []byte) string {
	if s, _, ok := cstring(b); ok {
		return s
	}
	return string(b)
}

// recordAt returns the body (after the kind) and kind of the record at off.
func recordAt(stream int, recs []byte, off int) ([]byte, SymKind, error) {
	if off < 0 || off+4 > len(recs) {
		return nil, 0, formatErr(stream, int64(off), "symbol record offset outside the %d-byte stream", len(recs))
	}
	le := binary.LittleEndian
	n := int(le.Uint16(recs[off:]))
	if n < 2 || off+2+n > len(recs) {
		return nil, 0, formatErr(stream, int64(off), "symbol record length %d runs past the stream end", n)
	}
	return recs[off+4 : off+2+n], SymKind(le.Uint16(recs[off+2:])), nil
}

// walkRecords calls fn for every record in recs starting at start.
func walkRecords(stream int, recs []byte, start int, fn func(off int, kind SymKind, body []byte) error) error {
	for off := start; off+4 <= len(recs); {
		body, kind, err := recordAt(stream, recs, off)
		if err != nil {
			return err
		}
		if err := fn(off, kind, body); err != nil {
			return err
		}
		off += 2 + int(binary.LittleEndian.Uint16(recs[off:]))
	}
	return nil
}

// Procs returns the procedure symbols of every module stream, sorted by RVA
// (procedures whose section is unknown come last). Modules whose stream is
// damaged are skipped; the first such error is returned with the procedures
// that could be read.
func (f *File) Procs() ([]Proc, error) {
	var out []Proc
	var firstErr error
	budget := f.moduleReadBudget()
	for mi, mod := range f.modules {
		if mod.SymStream < 0 || mod.SymSize <= 4 {
			continue
		}
		if budget -= int64(mod.SymSize); budget < 0 {
			if firstErr == nil {
				firstErr = formatErr(mod.SymStream, 0, "module streams add up to more than the file: streams shared between modules?")
			}
			break
		}
		data, err := f.m.readStream(mod.SymStream, int64(mod.SymSize))
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if len(data) < 4 || binary.LittleEndian.Uint32(data) != 4 {
			// Not C13 CodeView (C7/C11 signatures 1 and 2 are not read).
			continue
		}
		err = walkRecords(mod.SymStream, data, 4, func(off int, kind SymKind, body []byte) error {
			le := binary.LittleEndian
			switch kind {
			case SymGProc32, SymLProc32, SymGProc32ID, SymLProc32ID, SymLProc32DPC, SymLProc32DPCID:
			case SymThunk32:
				if len(body) < 0x15 {
					return formatErr(mod.SymStream, int64(off), "S_THUNK32 record of %d bytes is too short", len(body)+4)
				}
				p := Proc{Kind: kind, Offset: le.Uint32(body[0x0C:]), Section: le.Uint16(body[0x10:]),
					Length: uint32(le.Uint16(body[0x12:])), Name: recordName(body[0x15:]), Module: mi}
				p.RVA, p.HasRVA = f.SectionOffsetToRVA(p.Section, p.Offset)
				out = append(out, p)
				return nil
			case SymTrampoline:
				if len(body) < 0x10 {
					return formatErr(mod.SymStream, int64(off), "S_TRAMPOLINE record of %d bytes is too short", len(body)+4)
				}
				p := Proc{Kind: kind, Length: uint32(le.Uint16(body[2:])), Offset: le.Uint32(body[4:]),
					TargetOffset: le.Uint32(body[8:]), Section: le.Uint16(body[0x0C:]), TargetSection: le.Uint16(body[0x0E:]), Module: mi}
				p.RVA, p.HasRVA = f.SectionOffsetToRVA(p.Section, p.Offset)
				out = append(out, p)
				return nil
			default:
				return nil
			}
			if len(body) < 0x23 {
				return formatErr(mod.SymStream, int64(off), "%v record of %d bytes is too short", kind, len(body)+4)
			}
			p := Proc{
				Kind:    kind,
				Length:  le.Uint32(body[0x0C:]),
				Offset:  le.Uint32(body[0x1C:]),
				Section: le.Uint16(body[0x20:]),
				Name:    recordName(body[0x23:]),
				Module:  mi,
			}
			p.RVA, p.HasRVA = f.SectionOffsetToRVA(p.Section, p.Offset)
			out = append(out, p)
			return nil
		})
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].HasRVA != out[j].HasRVA {
			return out[i].HasRVA
		}
		return out[i].RVA < out[j].RVA
	})
	return out, firstErr
}

// moduleReadBudget bounds the bytes read from module streams in one pass.
// In a real PDB every module has its own stream, so the total is at most
// the file size; a hostile file could make thousands of modules share one
// large stream.
func (f *File) moduleReadBudget() int64 { return 2*f.m.size + 1<<20 }
