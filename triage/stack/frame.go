package stack

import (
	"fmt"
	"strings"

	"github.com/kdtriage/kdtriage/kdump"
)

// FoundBy says how a frame was found.
type FoundBy uint8

// How frames are found, from the most to the least trustworthy.
const (
	FoundByContext      FoundBy = iota // the starting register context
	FoundByCFI                         // Breakpad STACK CFI / STACK WIN rules
	FoundByUnwind                      // the image's unwind tables (.pdata/.xdata)
	FoundByTrapFrame                   // a machine frame or trap frame (interrupt, exception)
	FoundByFramePointer                // the frame-pointer chain (RBP, EBP, X29)
	FoundByScan                        // a return address found by scanning the stack
)

// String returns context, cfi, unwind, trap-frame, frame-pointer or scan.
func (f FoundBy) String() string {
	switch f {
	case FoundByContext:
		return "context"
	case FoundByCFI:
		return "cfi"
	case FoundByUnwind:
		return "unwind"
	case FoundByTrapFrame:
		return "trap-frame"
	case FoundByFramePointer:
		return "frame-pointer"
	case FoundByScan:
		return "scan"
	}
	return fmt.Sprintf("FoundBy(%d)", uint8(f))
}

// Frame is one frame of a stack.
type Frame struct {
	// IP is the instruction pointer: the faulting or current instruction
	// for the first frame (and frames after a trap frame), a return
	// address for the others.
	IP uint64
	// SP is the stack pointer in this frame; FP the frame pointer register
	// (RBP, EBP, X29) when known, else 0.
	SP, FP uint64
	// Module is the file name of the module holding IP (amdppm.sys), empty
	// when IP is in no module; ModuleBase its base address and Offset is
	// IP - ModuleBase (the RVA).
	Module     string
	ModuleBase uint64
	Offset     uint64
	// ModuleIndex is the index of the module in Input.Modules, or -1.
	ModuleIndex int
	// FoundBy says how the frame was found.
	FoundBy FoundBy
	// Context holds the registers recovered for this frame; only those in
	// Valid are meaningful (PC and the stack pointer always are).
	Context *kdump.Context
	Valid   RegSet

	// calleeParams is the parameter size of this frame's callee, from its
	// STACK WIN record (x86 Breakpad .cbCalleeParams).
	calleeParams uint64
}

// RegSet is a set of register numbers (kdump.Context.GPR indexes).
type RegSet uint64

// Has reports whether register r is in the set.
func (s RegSet) Has(r int) bool { return r >= 0 && r < 64 && s&(1<<r) != 0 }

// allRegs is every GPR slot.
const allRegs RegSet = 1<<32 - 1

// IsCaller reports whether IP is a return address, i.e. the frame was found
// by unwinding a callee (not the starting context or a trap frame).
func (f *Frame) IsCaller() bool {
	return f.FoundBy != FoundByContext && f.FoundBy != FoundByTrapFrame
}

// LookupOffset returns the RVA to symbolise: Offset for the first frame
// and trap frames, Offset-1 for return addresses (the call instruction may
// be the last one of its function).
func (f *Frame) LookupOffset() uint64 {
	if f.IsCaller() && f.Offset > 0 {
		return f.Offset - 1
	}
	return f.Offset
}

// ModuleName returns the module's name without its extension, as debuggers
// print it (amdppm for amdppm.sys, nt for the kernel is the symbolizer's
// business).
func (f *Frame) ModuleName() string {
	n := f.Module
	if i := strings.LastIndexByte(n, '.'); i > 0 {
		n = n[:i]
	}
	return n
}

// String renders the frame as module+0xoffset (or the bare address) with
// how it was found: "amdppm+0x334c (scan)".
func (f Frame) String() string {
	if f.Module == "" {
		return fmt.Sprintf("%#x (%v)", f.IP, f.FoundBy)
	}
	return fmt.Sprintf("%s+%#x (%v)", f.ModuleName(), f.Offset, f.FoundBy)
}
