package pe

import (
	"encoding/binary"
	"fmt"
)

// Register is an x64 register number as used by unwind codes: 0 RAX, 1 RCX,
// 2 RDX, 3 RBX, 4 RSP, 5 RBP, 6 RSI, 7 RDI, 8..15 R8..R15.
type Register uint8

// x64 register numbers.
const (
	RAX Register = iota
	RCX
	RDX
	RBX
	RSP
	RBP
	RSI
	RDI
	R8
	R9
	R10
	R11
	R12
	R13
	R14
	R15
)

// String returns the register's name in upper case (RBX, R12).
func (r Register) String() string {
	names := [...]string{"RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI"}
	if int(r) < len(names) {
		return names[r]
	}
	if r < 16 {
		return fmt.Sprintf("R%d", int(r))
	}
	return fmt.Sprintf("Register(%d)", int(r))
}

// UnwindOp is an x64 unwind operation code.
type UnwindOp uint8

// x64 unwind operations.
const (
	UWOP_PUSH_NONVOL     UnwindOp = 0
	UWOP_ALLOC_LARGE     UnwindOp = 1
	UWOP_ALLOC_SMALL     UnwindOp = 2
	UWOP_SET_FPREG       UnwindOp = 3
	UWOP_SAVE_NONVOL     UnwindOp = 4
	UWOP_SAVE_NONVOL_FAR UnwindOp = 5
	UWOP_EPILOG          UnwindOp = 6 // version 2
	UWOP_SPARE_CODE      UnwindOp = 7
	UWOP_SAVE_XMM128     UnwindOp = 8
	UWOP_SAVE_XMM128_FAR UnwindOp = 9
	UWOP_PUSH_MACHFRAME  UnwindOp = 10
	UWOP_SET_FPREG_LARGE UnwindOp = 11
)

var unwindOpNames = [...]string{
	"PUSH_NONVOL", "ALLOC_LARGE", "ALLOC_SMALL", "SET_FPREG", "SAVE_NONVOL", "SAVE_NONVOL_FAR",
	"EPILOG", "SPARE_CODE", "SAVE_XMM128", "SAVE_XMM128_FAR", "PUSH_MACHFRAME", "SET_FPREG_LARGE",
}

// String returns the operation's name without the UWOP_ prefix, as
// llvm-readobj prints it.
func (op UnwindOp) String() string {
	if int(op) < len(unwindOpNames) {
		return unwindOpNames[op]
	}
	return fmt.Sprintf("UnwindOp(%d)", int(op))
}

// UnwindFlags are the flags of an UNWIND_INFO.
type UnwindFlags uint8

// UNWIND_INFO flags.
const (
	UNW_FLAG_EHANDLER  UnwindFlags = 0x1
	UNW_FLAG_UHANDLER  UnwindFlags = 0x2
	UNW_FLAG_CHAININFO UnwindFlags = 0x4
)

// String lists the set flags: "EHANDLER|UHANDLER", or "0".
func (fl UnwindFlags) String() string {
	s := ""
	for _, x := range []struct {
		f UnwindFlags
		n string
	}{{UNW_FLAG_EHANDLER, "EHANDLER"}, {UNW_FLAG_UHANDLER, "UHANDLER"}, {UNW_FLAG_CHAININFO, "CHAININFO"}} {
		if fl&x.f != 0 {
			if s != "" {
				s += "|"
			}
			s += x.n
		}
	}
	if rest := fl &^ 7; rest != 0 {
		if s != "" {
			s += "|"
		}
		s += fmt.Sprintf("%#x", uint8(rest))
	}
	if s == "" {
		return "0"
	}
	return s
}

// UnwindCode is one decoded x64 unwind operation with its operand slots
// folded in.
type UnwindCode struct {
	// CodeOffset is the offset from the function start of the end of the
	// prolog instruction this code describes (for UWOP_EPILOG: the raw byte).
	CodeOffset uint8
	Op         UnwindOp
	OpInfo     uint8
	// Value is the decoded operand: bytes allocated (ALLOC_*), the offset
	// in bytes from the establisher frame (SAVE_NONVOL*, SAVE_XMM128*), the
	// frame offset in bytes (SET_FPREG_LARGE), 1 when an error code was
	// pushed (PUSH_MACHFRAME), the raw 16-bit operand (EPILOG).
	Value uint32
	// Slots is the number of 2-byte slots the code occupies.
	Slots int
}

// Register returns OpInfo as a register number (PUSH_NONVOL, SAVE_NONVOL*,
// and XMM register numbers for SAVE_XMM128*).
func (c UnwindCode) Register() Register { return Register(c.OpInfo) }

// String renders the code as llvm-readobj does, e.g.
// "0x04: SAVE_NONVOL reg=RDI, offset=0x30" (SET_FPREG without the frame
// register, which lives in the UnwindInfo).
func (c UnwindCode) String() string {
	p := fmt.Sprintf("0x%02X: %v", c.CodeOffset, c.Op)
	switch c.Op {
	case UWOP_PUSH_NONVOL:
		return p + " reg=" + c.Register().String()
	case UWOP_ALLOC_LARGE, UWOP_ALLOC_SMALL:
		return p + fmt.Sprintf(" size=%d", c.Value)
	case UWOP_SAVE_NONVOL, UWOP_SAVE_NONVOL_FAR:
		return p + fmt.Sprintf(" reg=%v, offset=0x%X", c.Register(), c.Value)
	case UWOP_SAVE_XMM128, UWOP_SAVE_XMM128_FAR:
		return p + fmt.Sprintf(" reg=XMM%d, offset=0x%X", c.OpInfo, c.Value)
	case UWOP_PUSH_MACHFRAME:
		if c.Value != 0 {
			return p + " errcode=yes"
		}
		return p + " errcode=no"
	}
	return p
}

// codeSlots returns the number of slots an operation occupies.
func codeSlots(op UnwindOp, info uint8) (int, bool) {
	switch op {
	case UWOP_PUSH_NONVOL, UWOP_ALLOC_SMALL, UWOP_SET_FPREG, UWOP_PUSH_MACHFRAME:
		return 1, true
	case UWOP_SAVE_NONVOL, UWOP_SAVE_XMM128, UWOP_EPILOG:
		return 2, true
	case UWOP_SAVE_NONVOL_FAR, UWOP_SAVE_XMM128_FAR, UWOP_SPARE_CODE, UWOP_SET_FPREG_LARGE:
		return 3, true
	case UWOP_ALLOC_LARGE:
		switch info {
		case 0:
			return 2, true
		case 1:
			return 3, true
		}
	}
	return 0, false
}

// UnwindInfo is a decoded x64 UNWIND_INFO.
type UnwindInfo struct {
	RVA           uint32 // where it was read
	Version       uint8  // 1, or 2 with epilog codes
	Flags         UnwindFlags
	SizeOfProlog  uint8
	CountOfCodes  uint8 // number of 2-byte slots
	FrameRegister Register
	// FrameOffset is the scaled offset in bytes (16 × the 4-bit field):
	// the frame register holds RSP + FrameOffset once established.
	FrameOffset uint32
	Codes       []UnwindCode
	// Chained is the parent function's entry when Flags has CHAININFO.
	Chained *RuntimeFunction
	// HandlerRVA is the exception or termination handler when Flags has
	// EHANDLER or UHANDLER, and HandlerDataRVA the RVA of its
	// language-specific data that follows it.
	HandlerRVA     uint32
	HandlerDataRVA uint32
}

// HasFrameRegister reports whether the function establishes a frame
// register (FrameRegister is meaningful).
func (ui *UnwindInfo) HasFrameRegister() bool { return ui.FrameRegister != 0 }

// ParseUnwindInfo decodes an x64 UNWIND_INFO from b (which may extend past
// the record), read at rva (for the result and errors).
func ParseUnwindInfo(b []byte, rva uint32) (*UnwindInfo, error) {
	bad := func(off int, err error, format string, args ...any) error {
		return &FormatError{Offset: int64(rva) + int64(off), Mapped: true, What: "UNWIND_INFO", Msg: fmt.Sprintf(format, args...), Err: err}
	}
	if len(b) < 4 {
		return nil, bad(0, ErrTruncated, "%d bytes", len(b))
	}
	ui := &UnwindInfo{
		RVA:           rva,
		Version:       b[0] & 7,
		Flags:         UnwindFlags(b[0] >> 3),
		SizeOfProlog:  b[1],
		CountOfCodes:  b[2],
		FrameRegister: Register(b[3] & 0xF),
		FrameOffset:   uint32(b[3]>>4) * 16,
	}
	if ui.Version != 1 && ui.Version != 2 {
		return nil, bad(0, ErrFormat, "version %d", ui.Version)
	}
	n := int(ui.CountOfCodes)
	if len(b) < 4+2*n {
		return nil, bad(4, ErrTruncated, "%d code slots need %d bytes, have %d", n, 4+2*n, len(b))
	}
	le := binary.LittleEndian
	slot := func(i int) uint16 { return le.Uint16(b[4+2*i:]) }
	ui.Codes = make([]UnwindCode, 0, n)
	for i := 0; i < n; {
		c := UnwindCode{CodeOffset: b[4+2*i], Op: UnwindOp(b[5+2*i] & 0xF), OpInfo: b[5+2*i] >> 4}
		k, ok := codeSlots(c.Op, c.OpInfo)
		if !ok {
			return nil, bad(4+2*i, ErrFormat, "unknown unwind op %d (info %d)", c.Op, c.OpInfo)
		}
		if i+k > n {
			return nil, bad(4+2*i, ErrFormat, "%v needs %d slots, %d left", c.Op, k, n-i)
		}
		c.Slots = k
		switch c.Op {
		case UWOP_ALLOC_SMALL:
			c.Value = uint32(c.OpInfo)*8 + 8
		case UWOP_ALLOC_LARGE:
			if c.OpInfo == 0 {
				c.Value = uint32(slot(i+1)) * 8
			} else {
				c.Value = uint32(slot(i+1)) | uint32(slot(i+2))<<16
			}
		case UWOP_SAVE_NONVOL:
			c.Value = uint32(slot(i+1)) * 8
		case UWOP_SAVE_NONVOL_FAR, UWOP_SAVE_XMM128_FAR:
			c.Value = uint32(slot(i+1)) | uint32(slot(i+2))<<16
		case UWOP_SAVE_XMM128:
			c.Value = uint32(slot(i+1)) * 16
		case UWOP_SET_FPREG_LARGE:
			c.Value = (uint32(slot(i+1)) | uint32(slot(i+2))<<16) * 16
		case UWOP_PUSH_MACHFRAME:
			c.Value = uint32(c.OpInfo & 1)
		case UWOP_EPILOG:
			c.Value = uint32(slot(i + 1))
		}
		ui.Codes = append(ui.Codes, c)
		i += k
	}
	tail := 4 + 2*((n+1)&^1)
	switch {
	case ui.Flags&UNW_FLAG_CHAININFO != 0:
		if len(b) < tail+12 {
			return nil, bad(tail, ErrTruncated, "chained RUNTIME_FUNCTION")
		}
		ui.Chained = &RuntimeFunction{Begin: le.Uint32(b[tail:]), End: le.Uint32(b[tail+4:]), UnwindData: le.Uint32(b[tail+8:])}
	case ui.Flags&(UNW_FLAG_EHANDLER|UNW_FLAG_UHANDLER) != 0:
		if len(b) < tail+4 {
			return nil, bad(tail, ErrTruncated, "exception handler RVA")
		}
		ui.HandlerRVA = le.Uint32(b[tail:])
		ui.HandlerDataRVA = rva + uint32(tail) + 4
	}
	return ui, nil
}

// UnwindInfo reads the UNWIND_INFO of an x64 .pdata entry.
func (f *File) UnwindInfo(rf RuntimeFunction) (*UnwindInfo, error) {
	return f.UnwindInfoAt(rf.UnwindData &^ 1)
}

// UnwindInfoAt reads an x64 UNWIND_INFO at rva.
func (f *File) UnwindInfoAt(rva uint32) (*UnwindInfo, error) {
	var hdr [4]byte
	if err := f.readRVA(hdr[:], rva, "UNWIND_INFO"); err != nil {
		return nil, err
	}
	n := 4 + 2*((int(hdr[2])+1)&^1)
	if UnwindFlags(hdr[0]>>3)&UNW_FLAG_CHAININFO != 0 {
		n += 12
	} else if UnwindFlags(hdr[0]>>3)&(UNW_FLAG_EHANDLER|UNW_FLAG_UHANDLER) != 0 {
		n += 4
	}
	b := make([]byte, n)
	if err := f.readRVA(b, rva, "UNWIND_INFO"); err != nil {
		return nil, err
	}
	ui, err := ParseUnwindInfo(b, rva)
	if err != nil {
		if fe, ok := err.(*FormatError); ok {
			fe.Mapped = f.mem != nil
			if !fe.Mapped {
				fe.Offset = f.offsetOf(uint32(fe.Offset))
			}
		}
		return nil, err
	}
	return ui, nil
}

// UnwindChain reads the UNWIND_INFO of rf and every chained parent, primary
// entry last. It stops with an error wrapping ErrLimit after 32 links or on a
// cycle. Results are cached in the File and shared: do not modify them.
func (f *File) UnwindChain(rf RuntimeFunction) ([]*UnwindInfo, error) {
	key := rf.UnwindData &^ 1
	f.unwindMu.Lock()
	chain, ok := f.unwindCache[key]
	f.unwindMu.Unlock()
	if ok {
		return chain, nil
	}
	chain, err := f.unwindChain(rf)
	if err != nil {
		return chain, err
	}
	f.unwindMu.Lock()
	if f.unwindCache == nil {
		f.unwindCache = make(map[uint32][]*UnwindInfo)
	}
	if len(f.unwindCache) < maxUnwindCache {
		f.unwindCache[key] = chain
	}
	f.unwindMu.Unlock()
	return chain, nil
}

func (f *File) unwindChain(rf RuntimeFunction) ([]*UnwindInfo, error) {
	var out []*UnwindInfo
	var seen []uint32
	for range maxChainDepth {
		rva := rf.UnwindData &^ 1
		for _, s := range seen {
			if s == rva {
				return out, f.errAt(f.offsetOf(rva), "UNWIND_INFO", ErrFormat, "chained unwind info loops back to %#x", rva)
			}
		}
		seen = append(seen, rva)
		ui, err := f.UnwindInfo(rf)
		if err != nil {
			return out, err
		}
		out = append(out, ui)
		if ui.Chained == nil {
			return out, nil
		}
		rf = *ui.Chained
	}
	return out, f.errAt(f.offsetOf(rf.UnwindData), "UNWIND_INFO", ErrLimit, "more than %d chained entries", maxChainDepth)
}
