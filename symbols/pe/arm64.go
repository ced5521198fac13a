package pe

import (
	"encoding/binary"
	"fmt"
)

// ARM64Packed is the decoded packed unwind data of an ARM64 .pdata entry.
type ARM64Packed struct {
	Flag           uint8  // 1: packed; 2: packed, fragment without prolog
	FunctionLength uint32 // bytes
	RegF           uint8  // number of saved d8..d15 registers minus 1 (0 = none when RegF field is 0)
	RegI           uint8  // number of saved x19..x28 registers
	H              bool   // x0..x7 homed
	CR             uint8  // 0: no LR save; 1: LR saved with the integer registers; 2: reserved (PAC); 3: chained frame (x29, lr pair, fp set up)
	FrameSize      uint32 // total stack frame in bytes
}

// ARM64Epilog is one epilog scope of an .xdata record.
type ARM64Epilog struct {
	StartOffset uint32 // bytes from the function start
	StartIndex  uint16 // byte index into the unwind codes of the first code of the epilog
}

// ARM64XData is a decoded (unpacked) ARM64 .xdata record.
type ARM64XData struct {
	RVA            uint32
	FunctionLength uint32 // bytes
	Version        uint8
	X              bool // exception data present
	E              bool // single epilog packed into the header
	// EpilogCount is the number of epilog scopes, or with E set, the code
	// index of the single epilog.
	EpilogCount uint16
	CodeWords   uint8
	Epilogs     []ARM64Epilog
	// Codes holds the unwind code bytes (CodeWords × 4).
	Codes []byte
	// HandlerRVA is the exception handler when X is set, and
	// HandlerDataRVA the RVA of the data that follows it.
	HandlerRVA     uint32
	HandlerDataRVA uint32
}

// ARM64XData reads the .xdata record of an unpacked ARM64 .pdata entry.
func (f *File) ARM64XData(af ARM64Function) (*ARM64XData, error) {
	if af.Flag() != 0 {
		return nil, f.errAt(-1, "ARM64 .xdata", ErrNotPresent, "entry at %#x has packed unwind data", af.Begin)
	}
	rva := af.UnwindData
	var w [8]byte
	if err := f.readRVA(w[:4], rva, "ARM64 .xdata"); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	h := le.Uint32(w[:])
	x := &ARM64XData{
		RVA:            rva,
		FunctionLength: (h & 0x3FFFF) * 4,
		Version:        uint8(h >> 18 & 3),
		X:              h>>20&1 != 0,
		E:              h>>21&1 != 0,
		EpilogCount:    uint16(h >> 22 & 0x1F),
		CodeWords:      uint8(h >> 27 & 0x1F),
	}
	codeWords := int(x.CodeWords)
	pos := rva + 4
	if x.EpilogCount == 0 && x.CodeWords == 0 {
		if err := f.readRVA(w[4:8], pos, "ARM64 .xdata"); err != nil {
			return nil, err
		}
		h2 := le.Uint32(w[4:])
		x.EpilogCount = uint16(h2 & 0xFFFF)
		codeWords = int(h2 >> 16 & 0xFF)
		pos += 4
	}
	if x.Version != 0 {
		return nil, f.errAt(f.offsetOf(rva), "ARM64 .xdata", ErrFormat, "version %d", x.Version)
	}
	nEp := 0
	if !x.E {
		nEp = int(x.EpilogCount)
	}
	body := make([]byte, 4*nEp+4*codeWords)
	if err := f.readRVA(body, pos, "ARM64 .xdata"); err != nil {
		return nil, err
	}
	x.Epilogs = make([]ARM64Epilog, nEp)
	for i := range x.Epilogs {
		v := le.Uint32(body[4*i:])
		x.Epilogs[i] = ARM64Epilog{StartOffset: (v & 0x3FFFF) * 4, StartIndex: uint16(v >> 22)}
	}
	x.Codes = body[4*nEp:]
	pos += uint32(len(body))
	if x.X {
		if err := f.readRVA(w[:4], pos, "ARM64 .xdata handler"); err != nil {
			return nil, err
		}
		x.HandlerRVA = le.Uint32(w[:])
		x.HandlerDataRVA = pos + 4
	}
	return x, nil
}

// ARM64Op is an ARM64 unwind operation.
type ARM64Op uint8

// ARM64 unwind operations.
const (
	ARM64AllocS ARM64Op = iota
	ARM64SaveR19R20X
	ARM64SaveFPLR
	ARM64SaveFPLRX
	ARM64AllocM
	ARM64SaveRegP
	ARM64SaveRegPX
	ARM64SaveReg
	ARM64SaveRegX
	ARM64SaveLRPair
	ARM64SaveFRegP
	ARM64SaveFRegPX
	ARM64SaveFReg
	ARM64SaveFRegX
	ARM64AllocL
	ARM64SetFP
	ARM64AddFP
	ARM64Nop
	ARM64End
	ARM64EndC
	ARM64SaveNext
	ARM64TrapFrame
	ARM64MachineFrame
	ARM64ContextOp
	ARM64ClearUnwoundToCall
	ARM64PACSignLR
	ARM64Other
)

var arm64OpNames = [...]string{"alloc_s", "save_r19r20_x", "save_fplr", "save_fplr_x", "alloc_m",
	"save_regp", "save_regp_x", "save_reg", "save_reg_x", "save_lrpair", "save_fregp",
	"save_fregp_x", "save_freg", "save_freg_x", "alloc_l", "set_fp", "add_fp", "nop", "end",
	"end_c", "save_next", "trap_frame", "machine_frame", "context", "clear_unwound_to_call",
	"pac_sign_lr", "other"}

// String returns the operation's name as Microsoft's documentation spells
// it (save_fplr_x, alloc_s, ...).
func (op ARM64Op) String() string {
	if int(op) < len(arm64OpNames) {
		return arm64OpNames[op]
	}
	return fmt.Sprintf("ARM64Op(%d)", int(op))
}

// ARM64Code is one decoded ARM64 unwind code.
type ARM64Code struct {
	Op ARM64Op
	// Reg is the first register of the operation: an X register number
	// (19+ for saves, 29 for fp/lr) or a D register number (8+).
	Reg uint8
	// Offset is the stack offset in bytes: the allocation size for alloc_*,
	// the (positive) pre-decrement for *_x saves, the offset from SP for the
	// other saves, and the x29 offset from SP for add_fp.
	Offset uint32
	Len    int // encoded length in bytes
}

// DecodeARM64Codes decodes unwind code bytes, stopping after an end or
// end_c code or at the end of b.
func DecodeARM64Codes(b []byte) ([]ARM64Code, error) {
	var out []ARM64Code
	for i := 0; i < len(b); {
		c, err := decodeARM64Code(b[i:])
		if err != nil {
			return out, &FormatError{Offset: int64(i), Mapped: true, What: "ARM64 unwind code", Msg: err.Error(), Err: ErrFormat}
		}
		out = append(out, c)
		i += c.Len
		if c.Op == ARM64End || c.Op == ARM64EndC {
			break
		}
	}
	return out, nil
}

func decodeARM64Code(b []byte) (ARM64Code, error) {
	need := func(n int) error {
		if len(b) < n {
			return fmt.Errorf("code %#02x needs %d bytes, %d left", b[0], n, len(b))
		}
		return nil
	}
	b0 := b[0]
	switch {
	case b0>>5 == 0: // 000xxxxx
		return ARM64Code{Op: ARM64AllocS, Offset: uint32(b0&0x1F) * 16, Len: 1}, nil
	case b0>>5 == 1: // 001zzzzz
		return ARM64Code{Op: ARM64SaveR19R20X, Reg: 19, Offset: uint32(b0&0x1F) * 8, Len: 1}, nil
	case b0>>6 == 1: // 01zzzzzz
		return ARM64Code{Op: ARM64SaveFPLR, Reg: 29, Offset: uint32(b0&0x3F) * 8, Len: 1}, nil
	case b0>>6 == 2: // 10zzzzzz
		return ARM64Code{Op: ARM64SaveFPLRX, Reg: 29, Offset: (uint32(b0&0x3F) + 1) * 8, Len: 1}, nil
	}
	// 11xxxxxx: multi-byte and special codes.
	if b0>>3 == 0x18 { // 11000xxx'xxxxxxxx
		if err := need(2); err != nil {
			return ARM64Code{}, err
		}
		return ARM64Code{Op: ARM64AllocM, Offset: (uint32(b0&7)<<8 | uint32(b[1])) * 16, Len: 2}, nil
	}
	if b0 >= 0xC8 && b0 <= 0xDF {
		if err := need(2); err != nil {
			return ARM64Code{}, err
		}
		v := uint16(b0)<<8 | uint16(b[1])
		z6 := uint32(v & 0x3F)
		x4 := uint8(v >> 6 & 0xF)
		switch {
		case b0>>2 == 0x32: // 110010xx'xxzzzzzz
			return ARM64Code{Op: ARM64SaveRegP, Reg: 19 + x4, Offset: z6 * 8, Len: 2}, nil
		case b0>>2 == 0x33: // 110011xx'xxzzzzzz
			return ARM64Code{Op: ARM64SaveRegPX, Reg: 19 + x4, Offset: (z6 + 1) * 8, Len: 2}, nil
		case b0>>2 == 0x34: // 110100xx'xxzzzzzz
			return ARM64Code{Op: ARM64SaveReg, Reg: 19 + x4, Offset: z6 * 8, Len: 2}, nil
		case b0>>1 == 0x6A: // 1101010x'xxxzzzzz
			return ARM64Code{Op: ARM64SaveRegX, Reg: 19 + uint8(v>>5&0xF), Offset: (uint32(v&0x1F) + 1) * 8, Len: 2}, nil
		case b0>>1 == 0x6B: // 1101011x'xxzzzzzz
			return ARM64Code{Op: ARM64SaveLRPair, Reg: 19 + 2*uint8(v>>6&7), Offset: z6 * 8, Len: 2}, nil
		case b0>>1 == 0x6C: // 1101100x'xxzzzzzz
			return ARM64Code{Op: ARM64SaveFRegP, Reg: 8 + uint8(v>>6&7), Offset: z6 * 8, Len: 2}, nil
		case b0>>1 == 0x6D: // 1101101x'xxzzzzzz
			return ARM64Code{Op: ARM64SaveFRegPX, Reg: 8 + uint8(v>>6&7), Offset: (z6 + 1) * 8, Len: 2}, nil
		case b0>>1 == 0x6E: // 1101110x'xxzzzzzz
			return ARM64Code{Op: ARM64SaveFReg, Reg: 8 + uint8(v>>6&7), Offset: z6 * 8, Len: 2}, nil
		case b0 == 0xDE: // 11011110'xxxzzzzz
			return ARM64Code{Op: ARM64SaveFRegX, Reg: 8 + uint8(v>>5&7), Offset: (uint32(v&0x1F) + 1) * 8, Len: 2}, nil
		case b0 == 0xDF: // alloc_z (SVE): not unwindable here
			return ARM64Code{Op: ARM64Other, Len: 2}, nil
		}
	}
	switch b0 {
	case 0xE0: // alloc_l
		if err := need(4); err != nil {
			return ARM64Code{}, err
		}
		return ARM64Code{Op: ARM64AllocL, Offset: (uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) * 16, Len: 4}, nil
	case 0xE1:
		return ARM64Code{Op: ARM64SetFP, Reg: 29, Len: 1}, nil
	case 0xE2:
		if err := need(2); err != nil {
			return ARM64Code{}, err
		}
		return ARM64Code{Op: ARM64AddFP, Reg: 29, Offset: uint32(b[1]) * 8, Len: 2}, nil
	case 0xE3:
		return ARM64Code{Op: ARM64Nop, Len: 1}, nil
	case 0xE4:
		return ARM64Code{Op: ARM64End, Len: 1}, nil
	case 0xE5:
		return ARM64Code{Op: ARM64EndC, Len: 1}, nil
	case 0xE6:
		return ARM64Code{Op: ARM64SaveNext, Len: 1}, nil
	case 0xE7: // save_any_reg: 3 bytes
		if err := need(3); err != nil {
			return ARM64Code{}, err
		}
		return ARM64Code{Op: ARM64Other, Len: 3}, nil
	case 0xE8:
		return ARM64Code{Op: ARM64TrapFrame, Len: 1}, nil
	case 0xE9:
		return ARM64Code{Op: ARM64MachineFrame, Len: 1}, nil
	case 0xEA, 0xEB:
		return ARM64Code{Op: ARM64ContextOp, Len: 1}, nil
	case 0xEC:
		return ARM64Code{Op: ARM64ClearUnwoundToCall, Len: 1}, nil
	case 0xFC:
		return ARM64Code{Op: ARM64PACSignLR, Len: 1}, nil
	case 0xF8:
		if err := need(2); err != nil {
			return ARM64Code{}, err
		}
		return ARM64Code{Op: ARM64Other, Len: 2}, nil
	case 0xF9:
		if err := need(3); err != nil {
			return ARM64Code{}, err
		}
		return ARM64Code{Op: ARM64Other, Len: 3}, nil
	case 0xFA:
		if err := need(4); err != nil {
			return ARM64Code{}, err
		}
		return ARM64Code{Op: ARM64Other, Len: 4}, nil
	case 0xFB:
		if err := need(5); err != nil {
			return ARM64Code{}, err
		}
		return ARM64Code{Op: ARM64Other, Len: 5}, nil
	}
	return ARM64Code{Op: ARM64Other, Len: 1}, nil
}
