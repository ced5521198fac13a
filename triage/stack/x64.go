package stack

import (
	"errors"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/symbols/pe"
)

// callerX64 unwinds one x64 frame: Breakpad CFI, then the image's unwind
// tables, then the RBP chain, then a stack scan.
func (w *walker) callerX64(f *Frame, first bool) (Frame, bool) {
	m, _ := w.module(f.IP)
	if m != nil && w.in.CFI != nil {
		c, valid, ok := w.cfiCaller(f, m, first)
		if ok && c.PC == 0 {
			return Frame{}, false // the rules say this is the outermost frame
		}
		if ok && w.plausibleCaller(f, &c, false) {
			return w.newFrame(c, valid, FoundByCFI), true
		}
	}
	if m != nil {
		if img := w.image(m); img != nil {
			c, valid, machineFrame, err := unwindX64(img, m.Base, f.Context, f.Valid, w.in.Memory, w.read64, !f.IsCaller())
			if err == nil && c.PC == 0 {
				return Frame{}, false // a null return address ends the stack (thread start)
			}
			if err == nil && w.plausibleCaller(f, &c, machineFrame) {
				how := FoundByUnwind
				if machineFrame {
					how = FoundByTrapFrame
				}
				return w.newFrame(c, valid, how), true
			}
		}
	}
	if c, ok := w.framePointer(f); ok {
		return w.newFrame(c, RegSet(1)<<kdump.RegRSP|RegSet(1)<<kdump.RegRBP, FoundByFramePointer), true
	}
	return w.scan(f, first)
}

// framePointer follows the RBP/EBP chain: caller IP at [FP+ptr], caller SP
// at FP+2*ptr, caller FP at [FP]. The return address must look like one.
func (w *walker) framePointer(f *Frame) (kdump.Context, bool) {
	fpReg := kdump.RegRBP
	if !f.Valid.Has(fpReg) {
		return kdump.Context{}, false
	}
	ps := uint64(w.ptrSize)
	fp := f.Context.GPR[fpReg]
	sp := f.SP
	if fp < sp || fp-sp > 1<<20 || fp%ps != 0 {
		return kdump.Context{}, false
	}
	ra, ok1 := w.readPtr(fp + ps)
	next, ok2 := w.readPtr(fp)
	if !ok1 || !ok2 || !w.looksLikeReturn(ra) {
		return kdump.Context{}, false
	}
	c := *f.Context
	c.PC = ra
	c.GPR[kdump.RegRSP] = fp + 2*ps
	c.GPR[fpReg] = next
	return c, true
}

// errUnwind reports a failed virtual unwind (a bad read or table).
var errUnwind = errors.New("stack: unwind failed")

// unwindX64 virtually unwinds one frame with the image's .pdata and
// UNWIND_INFO (dump-formats §10.3). atIP is true when regs.PC is the
// current instruction (first frame, after a trap frame); false when it is a
// return address, which is looked up at PC-1. machineFrame reports that
// the caller's RIP and RSP came from a PUSH_MACHFRAME record.
func unwindX64(img *pe.File, base uint64, regs *kdump.Context, valid RegSet, mem kdump.Memory, read func(uint64) (uint64, error), atIP bool) (c kdump.Context, out RegSet, machineFrame bool, err error) {
	c = *regs
	out = valid
	rva64 := regs.PC - base
	if rva64 > 0xFFFFFFFF {
		return c, out, false, errUnwind
	}
	rva := uint32(rva64)
	lookup := rva
	if !atIP && lookup > 0 {
		lookup--
	}
	rf, ok, lerr := img.LookupFunction(lookup)
	if lerr != nil {
		return c, out, false, lerr
	}
	if !ok {
		// A leaf function: the return address is at RSP.
		ra, err := read(c.GPR[kdump.RegRSP])
		if err != nil {
			return c, out, false, err
		}
		c.PC = ra
		c.GPR[kdump.RegRSP] += 8
		return c, out, false, nil
	}
	chain, cerr := img.UnwindChain(rf)
	if cerr != nil {
		return c, out, false, cerr
	}
	off := rva - rf.Begin
	// Epilog: if the code at RIP is the rest of an epilog, emulate it.
	if atIP {
		if done, eerr := emulateEpilogX64(img, rva, &c, read); eerr == nil && done {
			return c, out, false, nil
		}
	}
	for i, ui := range chain {
		inProlog := i == 0 && off < uint32(ui.SizeOfProlog)
		// Each UNWIND_INFO of a chain has its own establisher frame, the
		// base of its SAVE_NONVOL and SAVE_XMM128 offsets: RSP as left by
		// the codes undone so far, or the frame register minus its offset
		// once SET_FPREG has run (always, for a chained parent: the IP is
		// past its prolog).
		frameBase := c.GPR[kdump.RegRSP]
		if ui.HasFrameRegister() && frameEstablished(ui, off, i == 0) {
			fo := uint64(ui.FrameOffset)
			for _, code := range ui.Codes {
				if code.Op == pe.UWOP_SET_FPREG_LARGE {
					fo = uint64(code.Value)
				}
			}
			frameBase = c.GPR[ui.FrameRegister] - fo
		}
		for _, code := range ui.Codes {
			if code.Op == pe.UWOP_EPILOG || code.Op == pe.UWOP_SPARE_CODE {
				continue
			}
			if inProlog && uint32(code.CodeOffset) > off {
				continue // not executed yet
			}
			rsp := c.GPR[kdump.RegRSP]
			switch code.Op {
			case pe.UWOP_PUSH_NONVOL:
				v, err := read(rsp)
				if err != nil {
					return c, out, false, err
				}
				c.GPR[code.OpInfo&15] = v
				out |= 1 << (code.OpInfo & 15)
				c.GPR[kdump.RegRSP] = rsp + 8
			case pe.UWOP_ALLOC_SMALL, pe.UWOP_ALLOC_LARGE:
				c.GPR[kdump.RegRSP] = rsp + uint64(code.Value)
			case pe.UWOP_SET_FPREG:
				c.GPR[kdump.RegRSP] = c.GPR[ui.FrameRegister] - uint64(ui.FrameOffset)
			case pe.UWOP_SET_FPREG_LARGE:
				c.GPR[kdump.RegRSP] = c.GPR[ui.FrameRegister] - uint64(code.Value)
			case pe.UWOP_SAVE_NONVOL, pe.UWOP_SAVE_NONVOL_FAR:
				v, err := read(frameBase + uint64(code.Value))
				if err != nil {
					return c, out, false, err
				}
				c.GPR[code.OpInfo&15] = v
				out |= 1 << (code.OpInfo & 15)
			case pe.UWOP_SAVE_XMM128, pe.UWOP_SAVE_XMM128_FAR:
				// XMM registers are not tracked.
			case pe.UWOP_PUSH_MACHFRAME:
				base := rsp
				if code.OpInfo&1 != 0 {
					base += 8 // error code
				}
				ip, err1 := read(base)
				sp, err2 := read(base + 24)
				if err1 != nil || err2 != nil {
					return c, out, false, errors.Join(err1, err2)
				}
				cs, _ := kdump.ReadU16(mem, base+8)
				fl, _ := kdump.ReadU32(mem, base+16)
				ss, _ := kdump.ReadU16(mem, base+32)
				c.PC, c.GPR[kdump.RegRSP] = ip, sp
				c.SegCs, c.Status, c.SegSs = cs, fl, ss
				return c, out, true, nil
			}
		}
	}
	ra, err := read(c.GPR[kdump.RegRSP])
	if err != nil {
		return c, out, false, err
	}
	c.PC = ra
	c.GPR[kdump.RegRSP] += 8
	return c, out, false, nil
}

// frameEstablished reports whether ui's frame register holds the frame at
// offset off into the function: past the prolog, in a chained entry, or
// once the prolog's SET_FPREG has run. Only the first UNWIND_INFO of a
// chain can be in its prolog.
func frameEstablished(ui *pe.UnwindInfo, off uint32, first bool) bool {
	if !first || off >= uint32(ui.SizeOfProlog) || ui.Chained != nil {
		return true
	}
	for _, code := range ui.Codes {
		if (code.Op == pe.UWOP_SET_FPREG || code.Op == pe.UWOP_SET_FPREG_LARGE) && uint32(code.CodeOffset) <= off {
			return true
		}
	}
	return false
}

// emulateEpilogX64 recognises an epilog at rva (add rsp,imm / lea rsp,[fp+d],
// then pops of non-volatile registers, then ret or a jmp) and emulates it.
// It reports done=false when the code is not an epilog.
func emulateEpilogX64(img *pe.File, rva uint32, c *kdump.Context, read func(uint64) (uint64, error)) (bool, error) {
	var code [32]byte
	n := len(code)
	for n > 0 && img.ReadRVA(code[:n], rva) != nil {
		n /= 2
	}
	b := code[:n]
	if len(b) == 0 {
		return false, nil
	}
	i := 0
	rsp := c.GPR[kdump.RegRSP]
	// Optional stack release.
	switch {
	case len(b) >= 4 && b[0] == 0x48 && b[1] == 0x83 && b[2] == 0xC4: // add rsp, imm8
		rsp += uint64(int64(int8(b[3])))
		i = 4
	case len(b) >= 7 && b[0] == 0x48 && b[1] == 0x81 && b[2] == 0xC4: // add rsp, imm32
		rsp += uint64(int64(int32(le32(b[3:]))))
		i = 7
	case len(b) >= 4 && (b[0] == 0x48 || b[0] == 0x49) && b[1] == 0x8D && b[2]>>6 == 1 && b[2]>>3&7 == 4: // lea rsp, [reg+disp8]
		reg := int(b[2]&7) | int(b[0]&1)<<3
		rsp = c.GPR[reg] + uint64(int64(int8(b[3])))
		i = 4
	case len(b) >= 7 && (b[0] == 0x48 || b[0] == 0x49) && b[1] == 0x8D && b[2]>>6 == 2 && b[2]>>3&7 == 4: // lea rsp, [reg+disp32]
		reg := int(b[2]&7) | int(b[0]&1)<<3
		rsp = c.GPR[reg] + uint64(int64(int32(le32(b[3:]))))
		i = 7
	}
	type pop struct{ reg int }
	var popBuf [16]pop
	pops := popBuf[:0]
	for i < len(b) {
		switch {
		case b[i] >= 0x58 && b[i] <= 0x5F:
			pops = append(pops, pop{int(b[i] - 0x58)})
			i++
			continue
		case b[i] == 0x41 && i+1 < len(b) && b[i+1] >= 0x58 && b[i+1] <= 0x5F:
			pops = append(pops, pop{8 + int(b[i+1]-0x58)})
			i += 2
			continue
		}
		break
	}
	if i >= len(b) {
		return false, nil
	}
	switch {
	case b[i] == 0xC3 || b[i] == 0xC2: // ret / ret imm16
	case b[i] == 0xF3 && i+1 < len(b) && b[i+1] == 0xC3: // rep ret
	case b[i] == 0xE9 || b[i] == 0xEB: // tail jump
		if i == 0 {
			return false, nil // a plain jmp is not an epilog
		}
	case b[i] == 0x48 && i+2 < len(b) && b[i+1] == 0xFF && b[i+2] == 0x25: // rex.w jmp [rip+x]
		if i == 0 {
			return false, nil
		}
	default:
		return false, nil
	}
	for _, p := range pops {
		v, err := read(rsp)
		if err != nil {
			return false, err
		}
		c.GPR[p.reg] = v
		rsp += 8
	}
	ra, err := read(rsp)
	if err != nil {
		return false, err
	}
	c.PC = ra
	c.GPR[kdump.RegRSP] = rsp + 8
	return true, nil
}
