package stack

import (
	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/symbols/pe"
)

// stripPAC removes pointer-authentication bits from an ARM64 code address
// (48-bit virtual addresses: kernel addresses have bit 55 set).
func stripPAC(v uint64) uint64 {
	if v>>55&1 == 1 {
		return v | 0xFFFF_0000_0000_0000
	}
	return v & 0x0000_FFFF_FFFF_FFFF
}

// callerARM64 unwinds one ARM64 frame: Breakpad CFI, the image's .xdata
// unwind codes, the frame-record chain (X29 -> {saved X29, saved LR}), then
// a stack scan.
func (w *walker) callerARM64(f *Frame, first bool) (Frame, bool) {
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
			c, valid, ok := unwindARM64(img, m.Base, f, w.in.Memory)
			if ok && c.PC == 0 {
				return Frame{}, false // a null LR ends the stack (thread start)
			}
			if ok && w.plausibleCaller(f, &c, false) ||
				ok && !f.IsCaller() && c.SP() == f.SP && w.plausibleCaller(f, &c, true) {
				return w.newFrame(c, valid, FoundByUnwind), true
			}
		}
	}
	if f.Valid.Has(kdump.RegARM64FP) {
		fp := f.Context.GPR[kdump.RegARM64FP]
		if fp >= f.SP && fp-f.SP < 1<<20 && fp%16 == 0 {
			next, ok1 := w.readPtr(fp)
			lr, ok2 := w.readPtr(fp + 8)
			lr = stripPAC(lr)
			if ok1 && ok2 && w.looksLikeReturn(lr) {
				c := *f.Context
				c.PC = lr
				c.GPR[kdump.RegARM64FP] = next
				c.GPR[kdump.RegARM64SP] = fp + 16
				return w.newFrame(c, RegSet(1)<<kdump.RegARM64SP|RegSet(1)<<kdump.RegARM64FP, FoundByFramePointer), true
			}
		}
	}
	return w.scan(f, first)
}

// unwindARM64 applies an .xdata record's prolog unwind codes in order (each
// undoes one prolog instruction) and returns through LR; packed entries are
// unwound by unwindARM64Packed, and code without an entry as a leaf (PC =
// LR, first frame only). Epilogs are not recognised: an IP inside one gives
// a wrong caller that plausibility checks usually reject.
func unwindARM64(img *pe.File, base uint64, f *Frame, mem kdump.Memory) (kdump.Context, RegSet, bool) {
	c := *f.Context
	valid := f.Valid
	rva64 := f.IP - base
	if rva64 > 0xFFFFFFFF {
		return c, valid, false
	}
	rva := uint32(rva64)
	lookup := rva
	if f.IsCaller() && lookup >= 4 {
		lookup -= 4
	}
	af, _, ok, err := img.LookupARM64Function(lookup)
	if err != nil {
		return c, valid, false
	}
	if !ok {
		// No .pdata entry: a leaf function, which keeps its return address
		// in LR and allocates no stack. Only the current frame can be one.
		if f.IsCaller() || !valid.Has(kdump.RegARM64LR) {
			return c, valid, false
		}
		c.PC = stripPAC(c.GPR[kdump.RegARM64LR])
		return c, valid &^ (1 << kdump.RegARM64LR), true
	}
	read := func(a uint64) (uint64, bool) {
		v, err := kdump.ReadU64(mem, a)
		return v, err == nil
	}
	sp := c.GPR[kdump.RegARM64SP]
	if p, packed := af.Packed(); packed {
		return unwindARM64Packed(p, c, valid, read)
	}
	x, err := img.ARM64XData(af)
	if err != nil {
		return c, valid, false
	}
	codes, err := pe.DecodeARM64Codes(x.Codes)
	if err != nil {
		return c, valid, false
	}
	// In the prolog, skip the codes of instructions not yet executed.
	skip := 0
	if !f.IsCaller() {
		n := 0
		for _, code := range codes {
			if code.Op == pe.ARM64End || code.Op == pe.ARM64EndC {
				break
			}
			n++
		}
		done := int((rva - af.Begin) / 4)
		if done < n {
			skip = n - done
		}
	}
	lrSet := false
	for i, code := range codes {
		if i < skip {
			continue
		}
		switch code.Op {
		case pe.ARM64End, pe.ARM64EndC:
			goto done
		case pe.ARM64AllocS, pe.ARM64AllocM, pe.ARM64AllocL:
			sp += uint64(code.Offset)
		case pe.ARM64SaveR19R20X:
			a, ok1 := read(sp)
			b, ok2 := read(sp + 8)
			if !ok1 || !ok2 {
				return c, valid, false
			}
			c.GPR[19], c.GPR[20] = a, b
			valid |= 1<<19 | 1<<20
			sp += uint64(code.Offset)
		case pe.ARM64SaveFPLR, pe.ARM64SaveFPLRX:
			at := sp + uint64(code.Offset)
			if code.Op == pe.ARM64SaveFPLRX {
				at = sp
			}
			a, ok1 := read(at)
			b, ok2 := read(at + 8)
			if !ok1 || !ok2 {
				return c, valid, false
			}
			c.GPR[kdump.RegARM64FP], c.GPR[kdump.RegARM64LR] = a, b
			valid |= 1<<kdump.RegARM64FP | 1<<kdump.RegARM64LR
			lrSet = true
			if code.Op == pe.ARM64SaveFPLRX {
				sp += uint64(code.Offset)
			}
		case pe.ARM64SaveRegP, pe.ARM64SaveRegPX, pe.ARM64SaveLRPair:
			at := sp + uint64(code.Offset)
			if code.Op == pe.ARM64SaveRegPX {
				at = sp
			}
			a, ok1 := read(at)
			b, ok2 := read(at + 8)
			if !ok1 || !ok2 {
				return c, valid, false
			}
			second := int(code.Reg) + 1
			if code.Op == pe.ARM64SaveLRPair {
				second = kdump.RegARM64LR
				lrSet = true
			}
			if code.Reg < 31 {
				c.GPR[code.Reg] = a
				valid |= 1 << code.Reg
			}
			if second < 31 {
				c.GPR[second] = b
				valid |= 1 << second
			}
			if code.Op == pe.ARM64SaveRegPX {
				sp += uint64(code.Offset)
			}
		case pe.ARM64SaveReg, pe.ARM64SaveRegX:
			at := sp + uint64(code.Offset)
			if code.Op == pe.ARM64SaveRegX {
				at = sp
			}
			a, ok := read(at)
			if !ok {
				return c, valid, false
			}
			if code.Reg < 31 {
				c.GPR[code.Reg] = a
				valid |= 1 << code.Reg
			}
			if code.Op == pe.ARM64SaveRegX {
				sp += uint64(code.Offset)
			}
		case pe.ARM64SaveNext:
			reg, off, ok := saveNextSlot(codes, i)
			if !ok {
				continue // a pair of FP registers (not tracked), or malformed
			}
			a, ok1 := read(sp + off)
			b, ok2 := read(sp + off + 8)
			if !ok1 || !ok2 {
				return c, valid, false
			}
			c.GPR[reg], c.GPR[reg+1] = a, b
			valid |= 1<<reg | 1<<(reg+1)
		case pe.ARM64SaveFRegPX, pe.ARM64SaveFRegX:
			sp += uint64(code.Offset)
		case pe.ARM64SetFP:
			sp = c.GPR[kdump.RegARM64FP]
		case pe.ARM64AddFP:
			sp = c.GPR[kdump.RegARM64FP] - uint64(code.Offset)
		case pe.ARM64MachineFrame, pe.ARM64TrapFrame, pe.ARM64ContextOp, pe.ARM64Other:
			// Custom stacks (trap frames, machine frames, contexts) have
			// layouts that are not documented publicly: let the frame-record
			// chain or the scan take over.
			return c, valid, false
		}
	}
done:
	if !lrSet && !valid.Has(kdump.RegARM64LR) {
		return c, valid, false
	}
	c.PC = stripPAC(c.GPR[kdump.RegARM64LR])
	c.GPR[kdump.RegARM64SP] = sp
	return c, valid, true
}

// saveNextSlot resolves the save_next at codes[i]: it saves the register
// pair after the one saved by the next code that is not a save_next
// (codes list the prolog backwards), k pairs on and 16*k bytes further,
// where k is the distance to that code. It returns the first X register of
// the pair and its offset from the SP at that point of the unwind (the SP
// a pre-indexed save_regp_x or save_r19r20_x leaves, and save_next does
// not move). ok is false for pairs of FP registers and for a pair that
// would pass x28.
func saveNextSlot(codes []pe.ARM64Code, i int) (reg int, off uint64, ok bool) {
	b := i + 1
	for b < len(codes) && codes[b].Op == pe.ARM64SaveNext {
		b++
	}
	if b >= len(codes) {
		return 0, 0, false
	}
	k := b - i
	base := codes[b]
	switch base.Op {
	case pe.ARM64SaveRegP:
		off = uint64(base.Offset)
	case pe.ARM64SaveRegPX, pe.ARM64SaveR19R20X:
	default:
		return 0, 0, false
	}
	reg = int(base.Reg) + 2*k
	if reg+1 > 28 {
		return 0, 0, false
	}
	return reg, off + 16*uint64(k), true
}

// unwindARM64Packed unwinds a function described by packed unwind data from
// its body: the canonical prolog saves x19.. (and LR when CR=1) at the top
// of the frame (SavSZ bytes below the entry SP), then FP registers and homed
// parameters, then allocates the locals; with CR=3 a frame record {x29, lr}
// sits at the bottom of the frame and x29 points to it.
func unwindARM64Packed(p pe.ARM64Packed, c kdump.Context, valid RegSet, read func(uint64) (uint64, bool)) (kdump.Context, RegSet, bool) {
	if p.RegI > 10 {
		return c, valid, false // only x19..x28 are saved: a hostile 4-bit field
	}
	intSize := uint64(p.RegI) * 8
	if p.CR == 1 {
		intSize += 8
	}
	fpSize := uint64(0)
	if p.RegF > 0 {
		fpSize = uint64(p.RegF+1) * 8
	}
	homed := uint64(0)
	if p.H {
		homed = 64
	}
	savSize := (intSize + fpSize + homed + 15) &^ 15
	frame := uint64(p.FrameSize)
	if savSize > frame {
		return c, valid, false
	}
	var entrySP uint64
	switch p.CR {
	case 3:
		if !valid.Has(kdump.RegARM64FP) {
			return c, valid, false
		}
		fp := c.GPR[kdump.RegARM64FP]
		savedFP, ok1 := read(fp)
		lr, ok2 := read(fp + 8)
		if !ok1 || !ok2 {
			return c, valid, false
		}
		c.GPR[kdump.RegARM64FP], c.GPR[kdump.RegARM64LR] = savedFP, lr
		valid |= 1<<kdump.RegARM64FP | 1<<kdump.RegARM64LR
		entrySP = fp + frame
	case 0, 1:
		entrySP = c.GPR[kdump.RegARM64SP] + frame
	default:
		return c, valid, false
	}
	saveBase := entrySP - savSize
	for i := range uint64(p.RegI) {
		v, ok := read(saveBase + 8*i)
		if !ok {
			return c, valid, false
		}
		c.GPR[19+i] = v
		valid |= 1 << (19 + i)
	}
	if p.CR == 1 {
		lr, ok := read(saveBase + intSize - 8)
		if !ok {
			return c, valid, false
		}
		c.GPR[kdump.RegARM64LR] = lr
		valid |= 1 << kdump.RegARM64LR
	}
	if !valid.Has(kdump.RegARM64LR) {
		return c, valid, false
	}
	c.PC = stripPAC(c.GPR[kdump.RegARM64LR])
	c.GPR[kdump.RegARM64SP] = entrySP
	return c, valid, true
}
