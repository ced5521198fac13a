package stack

import (
	"encoding/binary"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/symbols/pe"
)

// callCheck is the answer of afterCall.
type callCheck uint8

const (
	callUnknown callCheck = iota // the code bytes are not readable
	callYes
	callNo
)

// afterCall reports whether the instruction that ends just before rva is a
// call: x86/x64 CALL rel32 (E8) or CALL r/m (FF /2 in its register,
// register-indirect, displacement, SIB and RIP-relative forms, with an
// optional REX prefix), or ARM64 BL / BLR / BLRAA(Z) / BLRAB(Z).
func afterCall(img *pe.File, rva uint32, m kdump.Machine) callCheck {
	if m == kdump.MachineARM64 {
		if rva < 4 {
			return callNo
		}
		var b [4]byte
		if img.ReadRVA(b[:], rva-4) != nil {
			return callUnknown
		}
		insn := binary.LittleEndian.Uint32(b[:])
		switch {
		case insn&0xFC000000 == 0x94000000: // BL imm26
			return callYes
		case insn&0xFFFFFC1F == 0xD63F0000: // BLR Xn
			return callYes
		case insn&0xFEFFF800 == 0xD63F0800: // BLRAA/BLRAB/BLRAAZ/BLRABZ
			return callYes
		}
		return callNo
	}
	const window = 8
	if rva < window {
		return callNo
	}
	var b [window]byte
	if img.ReadRVA(b[:], rva-window) != nil {
		return callUnknown
	}
	if isCallBefore(b[:]) {
		return callYes
	}
	return callNo
}

// isCallBefore reports whether the bytes in b (which end at a candidate
// return address) end with a call instruction.
func isCallBefore(b []byte) bool {
	n := len(b)
	at := func(back int) byte { return b[n-back] }
	// CALL rel32: E8 xx xx xx xx.
	if n >= 5 && at(5) == 0xE8 {
		return true
	}
	// CALL r/m64: FF /2. Try each encoding length ending at the return
	// address: opcode FF, ModRM with reg=2, then SIB/displacement.
	for length := 2; length <= 7 && length <= n; length++ {
		if at(length) != 0xFF {
			continue
		}
		modrm := at(length - 1)
		if modrm>>3&7 != 2 {
			continue
		}
		mod, rm := modrm>>6, modrm&7
		want := 2 // FF + ModRM
		switch mod {
		case 0:
			switch rm {
			case 4:
				want++ // SIB
				if length >= 3 && at(length-2)&7 == 5 {
					want += 4 // SIB with no base: disp32
				}
			case 5:
				want += 4 // disp32 (RIP-relative on x64)
			}
		case 1:
			want++
			if rm == 4 {
				want++
			}
		case 2:
			want += 4
			if rm == 4 {
				want++
			}
		case 3:
		}
		if want == length {
			return true
		}
	}
	return false
}
