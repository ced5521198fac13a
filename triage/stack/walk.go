package stack

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/symbols/pe"
)

// Defaults and caps of a walk.
const (
	DefaultMaxFrames = 256
	maxFramesCap     = 4096
	// DefaultScanWords is how many stack words are scanned for a return
	// address; the first frame (the context) gets 4 times as many.
	DefaultScanWords = 40
	maxScanWords     = 8192
)

// Input is what Walk needs.
type Input struct {
	// Machine is the architecture; 0 means Context.Machine.
	Machine kdump.Machine
	// Context is the starting register context (the faulting one, a trap
	// frame's or a thread's).
	Context *kdump.Context
	// Memory reads the stack and, when present, image pages.
	Memory kdump.Memory
	// Modules are the loaded modules (any order).
	Modules []kdump.Module
	// Images gives module images with unwind tables; may be nil.
	Images Images
	// CFI gives Breakpad call-frame rules; may be nil.
	CFI CFI
	// MaxFrames caps the number of frames (0 = DefaultMaxFrames, at most
	// 4096); ScanWords caps the words scanned per frame (0 =
	// DefaultScanWords).
	MaxFrames int
	ScanWords int
	// NoScan disables the stack-scan fallback.
	NoScan bool
}

// ErrUnsupported is returned for machines the walker cannot unwind.
var ErrUnsupported = errors.New("stack: unsupported machine")

// Walk unwinds the stack that starts at in.Context. It returns the frames
// found; the first is the context itself. The error is non-nil only for
// unusable input or a cancelled ctx (then the frames found so far are
// returned with it); a walk that simply ends (no more plausible frames) is
// not an error.
func Walk(ctx context.Context, in Input) ([]Frame, error) {
	if in.Context == nil {
		return nil, errors.New("stack: no starting context")
	}
	if in.Memory == nil {
		return nil, errors.New("stack: no memory")
	}
	m := in.Machine
	if m == 0 {
		m = in.Context.Machine
	}
	switch m {
	case kdump.MachineAMD64, kdump.MachineI386, kdump.MachineARM64:
	default:
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, m)
	}
	w := newWalker(ctx, in, m)
	first := w.newFrame(*in.Context, allRegs, FoundByContext)
	frames := make([]Frame, 0, 32)
	frames = append(frames, first)
	type key struct{ ip, sp uint64 }
	seen := map[key]bool{{first.IP, first.SP}: true}
	for len(frames) < w.maxFrames {
		if err := ctx.Err(); err != nil {
			return frames, err
		}
		next, ok := w.caller(&frames[len(frames)-1], len(frames) == 1)
		if !ok {
			break
		}
		k := key{next.IP, next.SP}
		if seen[k] {
			break
		}
		seen[k] = true
		frames = append(frames, next)
	}
	return frames, nil
}

// walker holds the state of one walk.
type walker struct {
	ctx       context.Context
	in        Input
	machine   kdump.Machine
	ptrSize   int
	mods      []kdump.Module // sorted by base
	modIndex  []int          // index in in.Modules
	images    map[uint64]*pe.File
	tried     map[uint64]bool
	maxFrames int
	scanWords int
	scratch   [8]byte
	// lastParams is the .cbParams of the last STACK WIN evaluation.
	lastParams uint64
	scanBuf    []byte
}

// read64 reads a little-endian 64-bit word without allocating.
func (w *walker) read64(addr uint64) (uint64, error) {
	if _, err := w.in.Memory.ReadVirtual(w.scratch[:], addr); err != nil {
		return 0, err
	}
	return le64(w.scratch[:]), nil
}

func newWalker(ctx context.Context, in Input, m kdump.Machine) *walker {
	w := &walker{ctx: ctx, in: in, machine: m, ptrSize: m.PointerSize(),
		images: map[uint64]*pe.File{}, tried: map[uint64]bool{}}
	w.maxFrames = in.MaxFrames
	if w.maxFrames <= 0 {
		w.maxFrames = DefaultMaxFrames
	}
	w.maxFrames = min(w.maxFrames, maxFramesCap)
	w.scanWords = in.ScanWords
	if w.scanWords <= 0 {
		w.scanWords = DefaultScanWords
	}
	w.scanWords = min(w.scanWords, maxScanWords)
	idx := make([]int, 0, len(in.Modules))
	for i, md := range in.Modules {
		if md.Size == 0 || md.Base+uint64(md.Size) < md.Base {
			continue
		}
		idx = append(idx, i)
	}
	slices.SortFunc(idx, func(a, b int) int {
		x, y := in.Modules[a].Base, in.Modules[b].Base
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	w.modIndex = idx
	w.mods = make([]kdump.Module, len(idx))
	for i, j := range idx {
		w.mods[i] = in.Modules[j]
	}
	return w
}

// module returns the module containing addr and its index in in.Modules.
func (w *walker) module(addr uint64) (*kdump.Module, int) {
	i, _ := slices.BinarySearchFunc(w.mods, addr, func(m kdump.Module, a uint64) int {
		switch {
		case m.Base > a:
			return 1
		case m.Base < a:
			return -1
		}
		return 0
	})
	// i is the first module with Base >= addr.
	if i < len(w.mods) && w.mods[i].Base == addr {
		return &w.mods[i], w.modIndex[i]
	}
	if i == 0 {
		return nil, -1
	}
	if m := &w.mods[i-1]; m.Contains(addr) {
		return m, w.modIndex[i-1]
	}
	return nil, -1
}

// image returns the module's image, asking the provider once per walk.
func (w *walker) image(m *kdump.Module) *pe.File {
	if w.in.Images == nil {
		return nil
	}
	if w.tried[m.Base] {
		return w.images[m.Base]
	}
	w.tried[m.Base] = true
	f, err := w.in.Images.Image(w.ctx, *m)
	if err != nil || f == nil {
		return nil
	}
	w.images[m.Base] = f
	return f
}

// newFrame builds a frame from registers.
func (w *walker) newFrame(regs kdump.Context, valid RegSet, how FoundBy) Frame {
	c := regs
	f := Frame{IP: c.PC, SP: c.SP(), FoundBy: how, Context: &c, Valid: valid, ModuleIndex: -1}
	fpReg := kdump.RegRBP
	if w.machine == kdump.MachineARM64 {
		fpReg = kdump.RegARM64FP
	}
	if valid.Has(fpReg) {
		f.FP = c.GPR[fpReg]
	}
	if m, i := w.module(f.IP); m != nil {
		f.Module, f.ModuleBase, f.Offset, f.ModuleIndex = m.Name, m.Base, f.IP-m.Base, i
	}
	return f
}

// caller finds the frame that called f.
func (w *walker) caller(f *Frame, first bool) (Frame, bool) {
	// A frame-pointer chain that reaches a null frame pointer has ended on
	// purpose (thread start); scanning past it only finds stale words.
	if f.FoundBy == FoundByFramePointer && f.FP == 0 {
		return Frame{}, false
	}
	switch w.machine {
	case kdump.MachineAMD64:
		return w.callerX64(f, first)
	case kdump.MachineARM64:
		return w.callerARM64(f, first)
	case kdump.MachineI386:
		return w.callerX86(f, first)
	}
	return Frame{}, false
}

// canonical reports whether addr can be a code address on the machine.
func (w *walker) canonical(addr uint64) bool {
	if addr < 0x1000 {
		return false
	}
	switch w.machine {
	case kdump.MachineI386:
		return addr <= 0xFFFFFFFF
	default:
		return addr < 0x0000_8000_0000_0000 || addr >= 0xFFFF_8000_0000_0000
	}
}

// readPtr reads a pointer-sized word.
func (w *walker) readPtr(addr uint64) (uint64, bool) {
	v, err := kdump.ReadPointer(w.in.Memory, addr, w.ptrSize)
	return v, err == nil
}

// plausibleCaller checks a candidate caller frame produced by unwinding
// (not scanning): a canonical IP inside a module (or, with no module list,
// anywhere canonical), and a stack pointer that grew.
func (w *walker) plausibleCaller(callee *Frame, c *kdump.Context, allowAnySP bool) bool {
	if !w.canonical(c.PC) {
		return false
	}
	if len(w.mods) > 0 {
		if m, _ := w.module(c.PC); m == nil {
			return false
		}
	}
	if !allowAnySP && c.SP() <= callee.SP {
		return false
	}
	return true
}

// scan looks for a return address on the stack above f's SP. The word
// found becomes the caller's IP; the caller's SP is just above it. On x64 a
// machine frame met on the way ({RIP, CS, RFLAGS, RSP, SS}, as pushed by the
// processor on an interrupt or exception and stored at the end of a
// KTRAP_FRAME) continues the walk at the interrupted RIP and RSP instead;
// when no return address is within the window, a wider window is searched
// for a machine frame alone.
func (w *walker) scan(f *Frame, first bool) (Frame, bool) {
	if w.in.NoScan {
		return Frame{}, false
	}
	limit := w.scanWords
	if first || f.FoundBy == FoundByTrapFrame {
		limit *= 4
	}
	ps := uint64(w.ptrSize)
	start := f.SP
	if start%ps != 0 {
		start += ps - start%ps
	}
	wide := limit
	if w.machine == kdump.MachineAMD64 {
		wide = min(max(limit, w.scanWords*16), maxScanWords)
	}
	// Read the window in one go; a short read stops at the first
	// unreadable word.
	need := (wide + 4) * w.ptrSize
	if cap(w.scanBuf) < need {
		w.scanBuf = make([]byte, need)
	}
	buf := w.scanBuf[:need]
	n, _ := w.in.Memory.ReadVirtual(buf, start)
	words := n / w.ptrSize
	word := func(i int) uint64 {
		if w.ptrSize == 8 {
			return le64(buf[8*i:])
		}
		return uint64(le32(buf[4*i:]))
	}
	for i := range min(words, limit) {
		addr := wordAddr(start, i, ps)
		if nf, ok := w.machineFrameAt(f, word, i, words, addr); ok {
			return nf, true
		}
		v := word(i)
		if w.machine == kdump.MachineARM64 {
			v = stripPAC(v)
		}
		if !w.looksLikeReturn(v) {
			continue
		}
		c := *f.Context
		c.PC = v
		setSP(&c, w.machine, addr+ps)
		// Callee-saved registers are unknown after a scan.
		return w.newFrame(c, RegSet(1)<<spReg(w.machine), FoundByScan), true
	}
	for i := limit; i < words; i++ {
		if nf, ok := w.machineFrameAt(f, word, i, words, wordAddr(start, i, ps)); ok {
			return nf, true
		}
	}
	return Frame{}, false
}

// wordAddr is the address of the i-th stack word from start.
func wordAddr(start uint64, i int, ps uint64) uint64 { return start + uint64(i)*ps }

// machineFrameAt recognises an x64 machine frame at word i: RIP in a
// module's code, a kernel or user code selector, RFLAGS with the reserved
// bit 1 set and no bits above 21, a canonical RSP above the frame (or a user
// RSP), and a stack selector. The caller continues at RIP with that RSP.
func (w *walker) machineFrameAt(f *Frame, word func(int) uint64, i, words int, at uint64) (Frame, bool) {
	if w.machine != kdump.MachineAMD64 || i+5 > words {
		return Frame{}, false
	}
	rip, cs, fl, rsp, ss := word(i), word(i+1)&0xFFFF, word(i+2)&0xFFFFFFFF, word(i+3), word(i+4)&0xFFFF
	switch {
	case cs != 0x10 && cs != 0x33 && cs != 0x23:
		return Frame{}, false
	case fl&2 == 0 || fl>>22 != 0:
		return Frame{}, false
	case ss != 0x18 && ss != 0x2B && ss != 0:
		return Frame{}, false
	case !w.canonical(rsp) || rsp&7 != 0:
		return Frame{}, false
	case cs == 0x10 && (rsp <= at || rsp-at > 1<<20):
		return Frame{}, false
	case !w.canonical(rip):
		return Frame{}, false
	}
	m, _ := w.module(rip)
	if m == nil && cs == 0x10 {
		return Frame{}, false
	}
	if m != nil {
		if img := w.image(m); img != nil && !img.IsCodeRVA(uint32(rip-m.Base)) {
			return Frame{}, false
		}
	}
	c := *f.Context
	c.PC = rip
	c.GPR[kdump.RegRSP] = rsp
	c.SegCs, c.Status, c.SegSs = uint16(cs), uint32(fl), uint16(ss)
	return w.newFrame(c, RegSet(1)<<kdump.RegRSP, FoundByTrapFrame), true
}

// looksLikeReturn reports whether v can be a return address: canonical,
// inside a module, and when the module's image is available, inside an
// executable section right after a call instruction.
func (w *walker) looksLikeReturn(v uint64) bool {
	if !w.canonical(v) {
		return false
	}
	m, _ := w.module(v)
	if m == nil {
		return false
	}
	rva := v - m.Base
	if rva < 0x1000 { // the headers page holds no code
		return false
	}
	img := w.image(m)
	if img == nil {
		return true
	}
	if !img.IsCodeRVA(uint32(rva)) {
		return false
	}
	// Images read from dump memory may lack the code page: then the call
	// cannot be checked and the candidate stands on the section check.
	return afterCall(img, uint32(rva), w.machine) != callNo
}

func spReg(m kdump.Machine) int {
	if m == kdump.MachineARM64 {
		return kdump.RegARM64SP
	}
	return kdump.RegRSP
}

func setSP(c *kdump.Context, m kdump.Machine, v uint64) { c.GPR[spReg(m)] = v }

func le64(b []byte) uint64 {
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
