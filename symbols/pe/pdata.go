package pe

import (
	"encoding/binary"
	"slices"
)

// RuntimeFunction is an x64 .pdata entry (RUNTIME_FUNCTION, 12 bytes): the
// function's RVA range [Begin, End) and the RVA of its UNWIND_INFO.
type RuntimeFunction struct {
	Begin      uint32
	End        uint32
	UnwindData uint32
}

// Contains reports whether rva lies in [Begin, End).
func (rf RuntimeFunction) Contains(rva uint32) bool { return rva >= rf.Begin && rva < rf.End }

// loadPdata reads the exception directory once.
func (f *File) loadPdata() error {
	f.pdataOnce.Do(func() {
		b, rva, err := f.readDirectory(DirException)
		if err != nil {
			f.pdataErr = err
			return
		}
		le := binary.LittleEndian
		switch f.Machine {
		case MachineAMD64:
			n := len(b) / 12
			if n > maxPdataEntries {
				f.pdataErr = f.errAt(f.offsetOf(rva), "exception directory", ErrLimit, "%d entries (cap %d)", n, maxPdataEntries)
				return
			}
			fs := make([]RuntimeFunction, 0, n)
			for i := range n {
				e := b[12*i:]
				rf := RuntimeFunction{Begin: le.Uint32(e), End: le.Uint32(e[4:]), UnwindData: le.Uint32(e[8:])}
				if rf.Begin == 0 && rf.End == 0 {
					continue // padding
				}
				fs = append(fs, rf)
			}
			if !slices.IsSortedFunc(fs, func(a, b RuntimeFunction) int { return cmpU32(a.Begin, b.Begin) }) {
				slices.SortFunc(fs, func(a, b RuntimeFunction) int { return cmpU32(a.Begin, b.Begin) })
			}
			f.pdata = fs
		case MachineARM64:
			n := len(b) / 8
			if n > maxPdataEntries {
				f.pdataErr = f.errAt(f.offsetOf(rva), "exception directory", ErrLimit, "%d entries (cap %d)", n, maxPdataEntries)
				return
			}
			fs := make([]ARM64Function, 0, n)
			for i := range n {
				e := b[8*i:]
				af := ARM64Function{Begin: le.Uint32(e), UnwindData: le.Uint32(e[4:])}
				if af.Begin == 0 && af.UnwindData == 0 {
					continue
				}
				fs = append(fs, af)
			}
			if !slices.IsSortedFunc(fs, func(a, b ARM64Function) int { return cmpU32(a.Begin, b.Begin) }) {
				slices.SortFunc(fs, func(a, b ARM64Function) int { return cmpU32(a.Begin, b.Begin) })
			}
			f.pdataA64 = fs
		default:
			f.pdataErr = f.errAt(-1, "exception directory", ErrNotPresent, "no .pdata layout for machine %v", f.Machine)
		}
	})
	return f.pdataErr
}

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// RuntimeFunctions returns the x64 .pdata entries sorted by Begin. The
// slice is shared: do not modify it.
func (f *File) RuntimeFunctions() ([]RuntimeFunction, error) {
	if f.Machine != MachineAMD64 {
		return nil, f.errAt(-1, "exception directory", ErrNotPresent, "not an x64 image (%v)", f.Machine)
	}
	if err := f.loadPdata(); err != nil {
		return nil, err
	}
	return f.pdata, nil
}

// LookupFunction returns the x64 RUNTIME_FUNCTION covering rva. ok is false
// for leaf code without an entry. Indirect entries (UnwindData with bit 0
// set, pointing at another RUNTIME_FUNCTION) are resolved.
func (f *File) LookupFunction(rva uint32) (rf RuntimeFunction, ok bool, err error) {
	fs, err := f.RuntimeFunctions()
	if err != nil {
		return RuntimeFunction{}, false, err
	}
	i, found := slices.BinarySearchFunc(fs, rva, func(e RuntimeFunction, t uint32) int { return cmpU32(e.Begin, t) })
	if !found {
		if i == 0 {
			return RuntimeFunction{}, false, nil
		}
		i--
	}
	rf = fs[i]
	if !rf.Contains(rva) {
		return RuntimeFunction{}, false, nil
	}
	for range maxChainDepth {
		if rf.UnwindData&1 == 0 {
			return rf, true, nil
		}
		var b [12]byte
		if err := f.readRVA(b[:], rf.UnwindData&^1, "indirect RUNTIME_FUNCTION"); err != nil {
			return RuntimeFunction{}, false, err
		}
		le := binary.LittleEndian
		rf = RuntimeFunction{Begin: le.Uint32(b[:]), End: le.Uint32(b[4:]), UnwindData: le.Uint32(b[8:])}
	}
	return RuntimeFunction{}, false, f.errAt(int64(rf.UnwindData), "indirect RUNTIME_FUNCTION", ErrLimit, "more than %d indirections", maxChainDepth)
}

// ARM64Function is an ARM64 .pdata entry (8 bytes): the function's start RVA
// and either packed unwind data (Flag 1 or 2) or the RVA of an .xdata record
// (Flag 0).
type ARM64Function struct {
	Begin      uint32
	UnwindData uint32
}

// Flag returns the low two bits of UnwindData: 0 = .xdata RVA, 1 = packed
// unwind data, 2 = packed data of a fragment without prolog, 3 = reserved.
func (af ARM64Function) Flag() uint8 { return uint8(af.UnwindData & 3) }

// Packed decodes packed unwind data; ok is false for .xdata entries.
func (af ARM64Function) Packed() (p ARM64Packed, ok bool) {
	if af.Flag() != 1 && af.Flag() != 2 {
		return ARM64Packed{}, false
	}
	d := af.UnwindData
	return ARM64Packed{
		Flag:           uint8(d & 3),
		FunctionLength: (d >> 2 & 0x7FF) * 4,
		RegF:           uint8(d >> 13 & 7),
		RegI:           uint8(d >> 16 & 0xF),
		H:              d>>20&1 != 0,
		CR:             uint8(d >> 21 & 3),
		FrameSize:      (d >> 23 & 0x1FF) * 16,
	}, true
}

// ARM64Functions returns the ARM64 .pdata entries sorted by Begin. The slice
// is shared: do not modify it.
func (f *File) ARM64Functions() ([]ARM64Function, error) {
	if f.Machine != MachineARM64 {
		return nil, f.errAt(-1, "exception directory", ErrNotPresent, "not an ARM64 image (%v)", f.Machine)
	}
	if err := f.loadPdata(); err != nil {
		return nil, err
	}
	return f.pdataA64, nil
}

// LookupARM64Function returns the ARM64 .pdata entry covering rva and its
// length in bytes (from the packed data or the .xdata header).
func (f *File) LookupARM64Function(rva uint32) (af ARM64Function, length uint32, ok bool, err error) {
	fs, err := f.ARM64Functions()
	if err != nil {
		return ARM64Function{}, 0, false, err
	}
	i, found := slices.BinarySearchFunc(fs, rva, func(e ARM64Function, t uint32) int { return cmpU32(e.Begin, t) })
	if !found {
		if i == 0 {
			return ARM64Function{}, 0, false, nil
		}
		i--
	}
	af = fs[i]
	if p, isPacked := af.Packed(); isPacked {
		length = p.FunctionLength
	} else {
		x, err := f.ARM64XData(af)
		if err != nil {
			return ARM64Function{}, 0, false, err
		}
		length = x.FunctionLength
	}
	if rva-af.Begin >= length {
		return ARM64Function{}, 0, false, nil
	}
	return af, length, true, nil
}
