package kdump

import (
	"encoding/binary"
	"fmt"
)

// Sizes of the CONTEXT records this package decodes.
const (
	ContextSizeAMD64 = 0x4D0
	ContextSizeX86   = 0x2CC
	ContextSizeARM64 = 0x390
	ContextSizeARM   = 0x1A0
)

// Register indexes into Context.GPR. x64 uses the unwind-code numbering
// (RAX=0 ... R15=15), x86 the same order for its eight registers, ARM64
// X0..X30 then SP, and ARM R0..R15.
const (
	RegRAX = 0
	RegRCX = 1
	RegRDX = 2
	RegRBX = 3
	RegRSP = 4
	RegRBP = 5
	RegRSI = 6
	RegRDI = 7
	RegR8  = 8
	RegR15 = 15

	RegARM64FP = 29 // X29
	RegARM64LR = 30 // X30
	RegARM64SP = 31

	RegARMSP = 13
	RegARMLR = 14
	RegARMPC = 15
)

// Context is a CPU register context decoded from a CONTEXT record.
type Context struct {
	Machine Machine
	Flags   uint32 // ContextFlags as stored
	// GPR holds the general-purpose registers in the numbering described
	// by the Reg* constants; unused slots are zero.
	GPR [32]uint64
	// PC is the instruction pointer (RIP, EIP, PC).
	PC uint64
	// Status is EFlags (x86, x64) or CPSR (ARM, ARM64).
	Status uint32
	// SegCs and SegSs are the code and stack selectors (x86, x64 only).
	SegCs, SegSs uint16
}

// IP returns the instruction pointer.
func (c *Context) IP() uint64 { return c.PC }

// SP returns the stack pointer.
func (c *Context) SP() uint64 {
	switch c.Machine {
	case MachineARM64:
		return c.GPR[RegARM64SP]
	case MachineARMNT:
		return c.GPR[RegARMSP]
	}
	return c.GPR[RegRSP]
}

// FP returns the frame pointer: RBP/EBP, X29 or R11 (R7 in Thumb code is
// also common on ARM; callers that care read GPR directly).
func (c *Context) FP() uint64 {
	switch c.Machine {
	case MachineARM64:
		return c.GPR[RegARM64FP]
	case MachineARMNT:
		return c.GPR[11]
	}
	return c.GPR[RegRBP]
}

// ContextSize returns the size of a CONTEXT record for m, or 0 if unknown.
func ContextSize(m Machine) int {
	switch m {
	case MachineAMD64:
		return ContextSizeAMD64
	case MachineI386:
		return ContextSizeX86
	case MachineARM64:
		return ContextSizeARM64
	case MachineARMNT:
		return ContextSizeARM
	}
	return 0
}

// ParseContext decodes a CONTEXT record of machine m from b, which must hold
// at least ContextSize(m) bytes (only the integer and control parts are read,
// so a shorter buffer covering them is accepted).
func ParseContext(m Machine, b []byte) (*Context, error) {
	le := binary.LittleEndian
	c := &Context{Machine: m}
	need := func(n int) error {
		if len(b) < n {
			return fmt.Errorf("%v CONTEXT needs %#x bytes, have %#x", m, n, len(b))
		}
		return nil
	}
	switch m {
	case MachineAMD64:
		if err := need(0x100); err != nil {
			return nil, err
		}
		c.Flags = le.Uint32(b[0x30:])
		c.SegCs = le.Uint16(b[0x38:])
		c.SegSs = le.Uint16(b[0x42:])
		c.Status = le.Uint32(b[0x44:])
		for i := range 16 {
			c.GPR[i] = le.Uint64(b[0x78+8*i:])
		}
		c.PC = le.Uint64(b[0xF8:])
	case MachineI386:
		if err := need(0xCC); err != nil {
			return nil, err
		}
		c.Flags = le.Uint32(b[0:])
		// EAX ECX EDX EBX ESP EBP ESI EDI
		offs := [8]int{0xB0, 0xAC, 0xA8, 0xA4, 0xC4, 0xB4, 0xA0, 0x9C}
		for i, off := range offs {
			c.GPR[i] = uint64(le.Uint32(b[off:]))
		}
		c.PC = uint64(le.Uint32(b[0xB8:]))
		c.SegCs = uint16(le.Uint32(b[0xBC:]))
		c.Status = le.Uint32(b[0xC0:])
		c.SegSs = uint16(le.Uint32(b[0xC8:]))
	case MachineARM64:
		if err := need(0x110); err != nil {
			return nil, err
		}
		c.Flags = le.Uint32(b[0:])
		c.Status = le.Uint32(b[4:])
		for i := range 31 { // X0..X28, FP, LR
			c.GPR[i] = le.Uint64(b[8+8*i:])
		}
		c.GPR[RegARM64SP] = le.Uint64(b[0x100:])
		c.PC = le.Uint64(b[0x108:])
	case MachineARMNT:
		// ARM CONTEXT: ContextFlags, R0..R12, Sp, Lr, Pc, Cpsr.
		if err := need(0x48); err != nil {
			return nil, err
		}
		c.Flags = le.Uint32(b[0:])
		for i := range 16 {
			c.GPR[i] = uint64(le.Uint32(b[4+4*i:]))
		}
		c.PC = c.GPR[RegARMPC]
		c.Status = le.Uint32(b[0x44:])
	default:
		return nil, fmt.Errorf("%w: no CONTEXT layout for %v", ErrUnsupported, m)
	}
	return c, nil
}
