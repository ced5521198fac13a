// Package drvtest builds end-to-end test material around the test driver
// testdata/drivers/kdtdrv.sys (x64, built with clang and lld-link from
// kdtdrv.c and unwind.S, with kdtdrv.pdb): a synthetic x64 kernel triage
// dump whose crashing thread runs through the driver's functions, and a
// SymStore tree and HTTP symbol server that serve the driver and its PDB.
//
// The stack is laid out the way the x64 unwinder undoes it: each callee's
// prolog is run as its unwind codes describe it (pushes, allocations, frame
// register, saves), so a correct walk with the image's unwind tables finds
// every frame, and the expected frames are known from the construction,
// not from a walk. It is test support only: nothing outside _test.go files
// imports it.
package drvtest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/kdtriage/kdtriage/kdump/kdumptest"
	"github.com/kdtriage/kdtriage/symbols/pe"
)

// Addresses of the scene.
const (
	// Base is where the driver is loaded.
	Base = 0xfffff80412340000
	// ModuleName is the driver's file name in the module list.
	ModuleName = "kdtdrv.sys"
	// ModulePath is the driver's path in the module list.
	ModulePath = `\SystemRoot\System32\drivers\kdtdrv.sys`
)

// Link is one step of the synthetic call chain, from the outermost frame
// inwards: Caller calls Callee (or, with Interrupt, Caller is interrupted
// at AsmInterruptedAt and Callee is the interrupt handler, entered through
// a machine frame). Via names the function whose call instruction in
// Caller gives the return address; "" means Callee.
type Link struct {
	Caller, Callee string
	Interrupt      bool
	Via            string
}

// DefaultChain returns the 12-frame chain DriverEntry -> CallsAsm ->
// AsmFramePointer -> AsmInterrupted =interrupt=> AsmTrapHandler ->
// AsmFarSaves -> AsmCallback -> FloatWork -> HugeFrame -> LargeFrame ->
// SavesNonVolatiles -> LeafTouch: every x64 unwind operation, chained
// frames of 8 KiB, 640 KiB and 1 MiB, and a machine frame.
func DefaultChain() []Link {
	return []Link{
		{"DriverEntry", "CallsAsm", false, ""},
		{"CallsAsm", "AsmFramePointer", false, ""},
		{"AsmFramePointer", "AsmInterrupted", false, ""},
		{"AsmInterrupted", "AsmTrapHandler", true, ""},
		{"AsmTrapHandler", "AsmFarSaves", false, ""},
		{"AsmFarSaves", "AsmCallback", false, ""},
		{"AsmCallback", "FloatWork", false, ""},
		{"FloatWork", "HugeFrame", false, ""},
		{"HugeFrame", "LargeFrame", false, ""},
		{"LargeFrame", "SavesNonVolatiles", false, ""},
		{"SavesNonVolatiles", "LeafTouch", false, ""},
	}
}

// LongChain returns a chain of frames frames (at least 12, at most 34):
// the default chain, preceded by rounds of it in which SavesNonVolatiles
// "calls" DriverEntry through its call to LeafTouch, cut to size from the
// outermost end. The stack of a long chain is several MiB (each round has
// frames of 1 MiB and 640 KiB).
func LongChain(frames int) []Link {
	var all []Link
	base := DefaultChain()
	for range 2 {
		all = append(all, base[:len(base)-1]...)
		all = append(all, Link{"SavesNonVolatiles", "DriverEntry", false, "LeafTouch"})
	}
	all = append(all, base...)
	n := min(max(frames, len(base)+1)-1, len(all))
	return slices.Clone(all[len(all)-n:])
}

// Frame is a frame a correct walk finds, top of the stack first.
type Frame struct {
	// Function is the export (and PDB symbol) the IP lies in, Offset the
	// IP's distance from it.
	Function string
	Offset   uint64
	IP, SP   uint64
	// FoundBy is how an unwinding walker finds the frame, in the names of
	// triage.Frame.FoundBy: context, unwind or trap_frame.
	FoundBy string
	// Regs are the general-purpose registers in CONTEXT order (RAX, RCX,
	// RDX, RBX, RSP, RBP, RSI, RDI, R8-R15) as the frame holds them: a
	// walk recovers the non-volatile ones (RBX, RBP, RSI, RDI, R12-R15).
	// Regs[4] is SP.
	Regs [16]uint64
}

// RVA returns the frame's offset from the driver's base.
func (f Frame) RVA() uint64 { return f.IP - Base }

// Options configures Build.
type Options struct {
	// Chain is the call chain; nil means DefaultChain.
	Chain []Link
	// ImageInMemory stores the driver's mapped image in the dump (as a
	// triage data block at Base), so that a walker can read the unwind
	// tables from dump memory.
	ImageInMemory bool
	// DriversDir is testdata/drivers; "" finds it from the working
	// directory upwards (the module root's testdata/drivers).
	DriversDir string
}

// Scene is a synthetic dump with a stack through the driver.
type Scene struct {
	// Dump is the triage dump (x64, DumpType 4).
	Dump *kdumptest.Image
	// Facts are what kdumptest wrote before the stack was added.
	Facts *kdumptest.Facts
	// Frames are the frames a correct walk finds, top first.
	Frames []Frame
	// FaultIP is the faulting instruction (bug check 0x1000007E P2): the
	// top frame's IP.
	FaultIP uint64
	// ContextRecord and ExceptionRecord are the P4 and P3 addresses.
	ContextRecord, ExceptionRecord uint64
	// StackLow and StackHigh bound the stack the dump holds.
	StackLow, StackHigh uint64
	// TimeDateStamp and SizeOfImage identify the driver's image.
	TimeDateStamp, SizeOfImage uint32
	// DriversDir is where kdtdrv.sys and kdtdrv.pdb are.
	DriversDir string
	// Exports maps the driver's export names to RVAs.
	Exports map[string]uint32
}

// FindDriversDir returns testdata/drivers of the module, searching from
// the working directory upwards for go.mod.
func FindDriversDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			d := filepath.Join(dir, "testdata", "drivers")
			if _, err := os.Stat(filepath.Join(d, "kdtdrv.sys")); err != nil {
				return "", fmt.Errorf("drvtest: %w", err)
			}
			return d, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("drvtest: no go.mod above the working directory")
		}
		dir = up
	}
}

var le = binary.LittleEndian

// mem is a sparse little-endian memory for laying out the stack.
type mem struct {
	low  uint64
	data []byte
}

func (m *mem) put64(addr, v uint64) error {
	if addr < m.low || addr-m.low+8 > uint64(len(m.data)) {
		return fmt.Errorf("drvtest: stack write at %#x outside [%#x, %#x)", addr, m.low, m.low+uint64(len(m.data)))
	}
	le.PutUint64(m.data[addr-m.low:], v)
	return nil
}

// Build lays out the scene.
func Build(opts Options) (*Scene, error) {
	dir := opts.DriversDir
	if dir == "" {
		d, err := FindDriversDir()
		if err != nil {
			return nil, err
		}
		dir = d
	}
	file, err := os.ReadFile(filepath.Join(dir, "kdtdrv.sys"))
	if err != nil {
		return nil, err
	}
	img, err := pe.NewFile(bytes.NewReader(file))
	if err != nil {
		return nil, err
	}
	rvas, err := exportRVAs(img)
	if err != nil {
		return nil, err
	}
	chain := opts.Chain
	if chain == nil {
		chain = DefaultChain()
	}
	if len(chain) == 0 {
		return nil, errors.New("drvtest: empty chain")
	}
	s := &Scene{DriversDir: dir, Exports: rvas, TimeDateStamp: img.TimeDateStamp, SizeOfImage: img.OptionalHeader.SizeOfImage}

	// The dump: default modules plus the driver, bug check 0x1000007E with
	// the exception and context records on the stack below the fault.
	mods := append(kdumptest.DefaultModules(kdumptest.AMD64), kdumptest.Module{Name: ModuleName, Path: ModulePath,
		Base: Base, Size: s.SizeOfImage, TimeDateStamp: s.TimeDateStamp, CheckSum: 0x1D2C3})
	// The stack: 2 MiB per round of the chain, below the thread's stack base.
	const stackTop = 0xffff850429893000
	size := uint64(0x280000) * uint64((len(chain)+len(DefaultChain())-1)/len(DefaultChain()))

	st, err := layStack(img, rvas, chain, stackTop, size)
	if err != nil {
		return nil, err
	}
	m := &mem{low: st.Low, data: st.Data}
	s.StackLow, s.StackHigh = m.low, stackTop
	s.Frames = st.Frames
	s.FaultIP = st.Frames[0].IP
	sp, regs := st.Frames[0].SP, st.Frames[0].Regs

	// The records, below the faulting frame's stack pointer.
	s.ContextRecord = (sp - 0x1000) &^ 0xF
	s.ExceptionRecord = s.ContextRecord - 0x100
	if s.ExceptionRecord < m.low {
		return nil, errors.New("drvtest: no room for the exception records")
	}
	ctx := make([]byte, 0x4D0)
	le.PutUint32(ctx[0x30:], 0x10001F) // CONTEXT_AMD64 | CONTROL | INTEGER | SEGMENTS | FLOATING_POINT
	le.PutUint32(ctx[0x34:], 0x1F80)   // MxCsr
	le.PutUint16(ctx[0x38:], 0x10)     // SegCs
	le.PutUint16(ctx[0x42:], 0x18)     // SegSs
	le.PutUint32(ctx[0x44:], 0x10282)  // EFlags
	for i, r := range regs {
		le.PutUint64(ctx[0x78+8*i:], r)
	}
	le.PutUint64(ctx[0xF8:], s.FaultIP)
	copy(m.data[s.ContextRecord-m.low:], ctx)
	exc := make([]byte, 0x98)
	le.PutUint32(exc[0:], 0xC0000005)
	le.PutUint64(exc[0x10:], s.FaultIP)
	le.PutUint32(exc[0x18:], 2)
	le.PutUint64(exc[0x20:], 1) // a write
	le.PutUint64(exc[0x28:], 0) // to address 0
	copy(m.data[s.ExceptionRecord-m.low:], exc)

	im, facts, err := kdumptest.Build(kdumptest.Spec{Arch: kdumptest.AMD64, Kind: kdumptest.Triage, Modules: mods,
		BugCheck: 0x1000007E, Params: [4]uint64{0xFFFFFFFFC0000005, s.FaultIP, s.ExceptionRecord, s.ContextRecord}})
	if err != nil {
		return nil, err
	}
	var blocks []block
	if opts.ImageInMemory {
		blocks = append(blocks, block{Base, MapImage(img, file)})
	}
	if err := patchTriage(im, m.low, m.data, blocks); err != nil {
		return nil, err
	}
	s.Dump, s.Facts = im, facts
	return s, nil
}

// Stack is a stack through the driver laid out by LayStack.
type Stack struct {
	// Data is the stack memory, from its lowest address Low up to the
	// stack's high end.
	Low  uint64
	Data []byte
	// Frames are the frames a correct walk finds, top first. Frames[0]
	// is the innermost callee at its first instruction: its IP and Regs
	// are the register context a walk starts from.
	Frames []Frame
}

// LayStack lays out the stack of chain (nil means DefaultChain) through
// img, the driver loaded at Base, in the memory [high-size, high): each
// callee's prolog is run as its unwind codes describe it (pushes,
// allocations, frame register, saves), the inverse of what an unwinder
// does. The registers start as 0x1111_0000_0000_0000 | index<<8; a callee
// then changes every register it saved, except its frame register. It
// fails when an export is missing, a callee has an unwind code a prolog
// cannot run, or the stack does not fit.
func LayStack(img *pe.File, chain []Link, high, size uint64) (*Stack, error) {
	rvas, err := exportRVAs(img)
	if err != nil {
		return nil, err
	}
	if chain == nil {
		chain = DefaultChain()
	}
	return layStack(img, rvas, chain, high, size)
}

// exportRVAs maps img's export names to RVAs.
func exportRVAs(img *pe.File) (map[string]uint32, error) {
	ex, err := img.Exports()
	if err != nil {
		return nil, err
	}
	rvas := map[string]uint32{}
	for _, e := range ex.List {
		rvas[e.Name] = e.RVA
	}
	return rvas, nil
}

// layStack is LayStack with the exports already read.
func layStack(img *pe.File, rvas map[string]uint32, chain []Link, high, size uint64) (*Stack, error) {
	if len(chain) == 0 {
		return nil, errors.New("drvtest: empty chain")
	}
	if size < 0x100 || size > high || size > 1<<30 {
		return nil, fmt.Errorf("drvtest: stack size %#x below %#x out of range", size, high)
	}
	m := &mem{low: high - size, data: make([]byte, size)}
	var regs [16]uint64
	for i := range regs {
		regs[i] = 0x1111_0000_0000_0000 | uint64(i)<<8
	}
	sp := high - 0x100
	var frames []Frame
	var perr error
	push := func(v uint64) {
		sp -= 8
		if err := m.put64(sp, v); err != nil && perr == nil {
			perr = err
		}
	}
	fnStart := func(name string) (uint32, error) {
		r, ok := rvas[name]
		if !ok || r == 0 {
			return 0, fmt.Errorf("drvtest: kdtdrv.sys exports no %s", name)
		}
		return r, nil
	}
	push(0) // the outermost frame's return address: the walk ends there
	for n, l := range chain {
		callerRVA, err := fnStart(l.Caller)
		if err != nil {
			return nil, err
		}
		calleeRVA, err := fnStart(l.Callee)
		if err != nil {
			return nil, err
		}
		viaRVA := calleeRVA
		if l.Via != "" {
			if viaRVA, err = fnStart(l.Via); err != nil {
				return nil, err
			}
		}
		fr := Frame{Function: l.Caller, FoundBy: "unwind"}
		if l.Interrupt {
			// The interrupted instruction is the label AsmInterruptedAt,
			// itself an export (and a public symbol).
			at, err := fnStart("AsmInterruptedAt")
			if err != nil {
				return nil, err
			}
			fr.Function, fr.IP, fr.FoundBy = "AsmInterruptedAt", Base+uint64(at), "trap_frame"
			old := sp
			sp &^= 15
			push(0x18)         // SS
			push(old)          // RSP
			push(0x10246)      // RFLAGS
			push(0x10)         // CS
			push(fr.IP)        // RIP
			push(0xE0000000EE) // error code
			fr.SP = old
		} else {
			ret, err := callSite(img, callerRVA, viaRVA)
			if err != nil {
				return nil, err
			}
			fr.IP = Base + uint64(ret)
			push(fr.IP)
			fr.SP = sp + 8
		}
		fr.Offset = fr.IP - Base - uint64(rvas[fr.Function])
		fr.Regs = regs
		fr.Regs[4] = fr.SP
		frames = append(frames, fr)

		// Run the callee's prolog.
		rf, ok, err := img.LookupFunction(calleeRVA)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue // a leaf without unwind data
		}
		ui, err := img.UnwindInfo(rf)
		if err != nil {
			return nil, err
		}
		codes := slices.Clone(ui.Codes)
		slices.Reverse(codes) // prolog order
		var saves []pe.UnwindCode
		for _, c := range codes {
			switch c.Op {
			case pe.UWOP_PUSH_NONVOL:
				push(regs[c.OpInfo])
			case pe.UWOP_ALLOC_SMALL, pe.UWOP_ALLOC_LARGE:
				sp -= uint64(c.Value)
			case pe.UWOP_SET_FPREG:
				regs[ui.FrameRegister] = sp + uint64(ui.FrameOffset)
			case pe.UWOP_SAVE_NONVOL, pe.UWOP_SAVE_NONVOL_FAR:
				saves = append(saves, c)
			case pe.UWOP_PUSH_MACHFRAME, pe.UWOP_SAVE_XMM128, pe.UWOP_SAVE_XMM128_FAR:
			default:
				return nil, fmt.Errorf("drvtest: %s: unexpected unwind code %v", l.Callee, c)
			}
		}
		est := sp
		if ui.HasFrameRegister() {
			est = regs[ui.FrameRegister] - uint64(ui.FrameOffset)
		}
		for _, c := range saves {
			if err := m.put64(est+uint64(c.Value), regs[c.OpInfo]); err != nil {
				return nil, err
			}
		}
		// The callee now uses every register it saved.
		for _, c := range codes {
			if c.Op == pe.UWOP_PUSH_NONVOL || c.Op == pe.UWOP_SAVE_NONVOL || c.Op == pe.UWOP_SAVE_NONVOL_FAR {
				if ui.HasFrameRegister() && pe.Register(c.OpInfo) == ui.FrameRegister {
					continue // holds the frame
				}
				regs[c.OpInfo] = 0x2222_0000_0000_0000 | uint64(n)<<16 | uint64(c.OpInfo)
			}
		}
	}
	if perr != nil {
		return nil, perr
	}
	last := chain[len(chain)-1].Callee
	lastRVA, err := fnStart(last)
	if err != nil {
		return nil, err
	}
	regs[4] = sp
	frames = append(frames, Frame{Function: last, IP: Base + uint64(lastRVA), SP: sp, FoundBy: "context", Regs: regs})
	slices.Reverse(frames)
	return &Stack{Low: m.low, Data: m.data, Frames: frames}, nil
}

// callSite returns the return address of the first "call rel32" in the
// function at caller that targets callee.
func callSite(f *pe.File, caller, callee uint32) (uint32, error) {
	rf, ok, err := f.LookupFunction(caller)
	if err != nil || !ok {
		return 0, fmt.Errorf("drvtest: no .pdata for %#x: %v", caller, err)
	}
	code := make([]byte, rf.End-rf.Begin)
	if err := f.ReadRVA(code, rf.Begin); err != nil {
		return 0, err
	}
	for i := 0; i+5 <= len(code); i++ {
		if code[i] != 0xE8 {
			continue
		}
		next := rf.Begin + uint32(i) + 5
		if next+le.Uint32(code[i+1:]) == callee {
			return next, nil
		}
	}
	return 0, fmt.Errorf("drvtest: no call from %#x to %#x", caller, callee)
}

// MapImage returns the image of f (whose file contents are file) laid out
// as the loader maps it: headers, then each section's raw data at its
// RVA. Sections whose data lies outside file or the image are left out.
func MapImage(f *pe.File, file []byte) []byte {
	img := make([]byte, f.OptionalHeader.SizeOfImage)
	copy(img, file[:min(uint64(f.OptionalHeader.SizeOfHeaders), uint64(len(file)))])
	for _, s := range f.Sections {
		n := min(s.SizeOfRawData, s.VirtualSize)
		if uint64(s.PointerToRawData)+uint64(n) > uint64(len(file)) || uint64(s.VirtualAddress)+uint64(n) > uint64(len(img)) {
			continue
		}
		copy(img[s.VirtualAddress:], file[s.PointerToRawData:s.PointerToRawData+n])
	}
	return img
}

// block is memory to add to a triage dump.
type block struct {
	addr uint64
	data []byte
}

// Offsets in TRIAGE_DUMP64 (dump-formats §3) and DUMP_HEADER64.
const (
	triageAt           = 0x2000
	tSizeOfDump        = 0x04
	tCallStackOffset   = 0x28
	tSizeOfCallStack   = 0x2C
	tTopOfStack        = 0x48
	tDataBlocksOffset  = 0x78
	tDataBlocksCount   = 0x7C
	hRequiredDumpSpace = 0xFA0
)

// patchTriage replaces the triage dump's saved stack with stack (at VA
// low) and appends data blocks, rewriting the header fields that
// describe them. The old descriptors are kept.
func patchTriage(im *kdumptest.Image, low uint64, stack []byte, extra []block) error {
	var t [0x80]byte
	if _, err := im.ReadAt(t[:], triageAt); err != nil {
		return err
	}
	off := (im.Size() + 0xFFF) &^ 0xFFF
	if off+int64(len(stack)) > 0xFFFFFFFF {
		return errors.New("drvtest: dump too large for 32-bit offsets")
	}
	if _, err := im.WriteAt(stack, off); err != nil {
		return err
	}
	le.PutUint32(t[tCallStackOffset:], uint32(off))
	le.PutUint32(t[tSizeOfCallStack:], uint32(len(stack)))
	le.PutUint64(t[tTopOfStack:], low)
	off += int64(len(stack))

	n := le.Uint32(t[tDataBlocksCount:])
	desc := make([]byte, 16*int(n), 16*(int(n)+len(extra)))
	if n > 0 {
		if _, err := im.ReadAt(desc, int64(le.Uint32(t[tDataBlocksOffset:]))); err != nil {
			return err
		}
	}
	sort.Slice(extra, func(i, j int) bool { return extra[i].addr < extra[j].addr })
	for _, b := range extra {
		off = (off + 0xF) &^ 0xF
		if _, err := im.WriteAt(b.data, off); err != nil {
			return err
		}
		var d [16]byte
		le.PutUint64(d[0:], b.addr)
		le.PutUint32(d[8:], uint32(off))
		le.PutUint32(d[12:], uint32(len(b.data)))
		desc = append(desc, d[:]...)
		off += int64(len(b.data))
	}
	off = (off + 0xF) &^ 0xF
	if _, err := im.WriteAt(desc, off); err != nil {
		return err
	}
	le.PutUint32(t[tDataBlocksOffset:], uint32(off))
	le.PutUint32(t[tDataBlocksCount:], uint32(len(desc)/16))
	off += int64(len(desc))
	if off > 0xFFFFFFFF {
		return errors.New("drvtest: dump too large for 32-bit offsets")
	}
	le.PutUint32(t[tSizeOfDump:], uint32(off))
	if _, err := im.WriteAt(t[:], triageAt); err != nil {
		return err
	}
	var req [8]byte
	le.PutUint64(req[:], uint64(off))
	_, err := im.WriteAt(req[:], hRequiredDumpSpace)
	return err
}

// WriteFile writes the scene's dump to dir/name and returns its path.
func (s *Scene) WriteFile(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	fh, err := os.Create(p)
	if err != nil {
		return "", err
	}
	if err := s.Dump.WriteFile(fh); err != nil {
		fh.Close()
		return "", err
	}
	return p, fh.Close()
}
