package stack

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/kdtriage/kdtriage/kdump"
)

func TestIsCallBefore(t *testing.T) {
	tests := []struct {
		name string
		code []byte
		want bool
	}{
		{"call rel32", []byte{0xE8, 1, 2, 3, 4}, true},
		{"call [rip+disp32]", []byte{0xFF, 0x15, 1, 2, 3, 4}, true},
		{"rex.w call [rip+disp32]", []byte{0x48, 0xFF, 0x15, 1, 2, 3, 4}, true},
		{"call rax", []byte{0xFF, 0xD0}, true},
		{"call r8", []byte{0x41, 0xFF, 0xD0}, true},
		{"call [rax]", []byte{0xFF, 0x10}, true},
		{"call [rax+8]", []byte{0xFF, 0x50, 0x08}, true},
		{"call [rsp+8]", []byte{0xFF, 0x54, 0x24, 0x08}, true},
		{"call [rax+disp32]", []byte{0xFF, 0x90, 1, 2, 3, 4}, true},
		{"call [rsp+disp32]", []byte{0xFF, 0x94, 0x24, 1, 2, 3, 4}, true},
		{"call [rax+rcx*8]", []byte{0xFF, 0x14, 0xC8}, true},
		{"call [disp32+rax*8]", []byte{0xFF, 0x14, 0xC5, 1, 2, 3, 4}, true},
		{"nops", []byte{0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90}, false},
		{"jmp rax", []byte{0xFF, 0xE0}, false},
		{"ret", []byte{0x90, 0xC3}, false},
		{"push [rax+8]", []byte{0xFF, 0x70, 0x08}, false},
		{"short", []byte{0xD0}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Pad in front with bytes that are no call opcode.
			b := append([]byte{0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90}, tc.code...)
			if got := isCallBefore(b[len(b)-8:]); got != tc.want {
				t.Errorf("isCallBefore(% x) = %v, want %v", tc.code, got, tc.want)
			}
		})
	}
}

func TestTrapFrameContext(t *testing.T) {
	var tf [KTrapFrameSizeAMD64]byte
	le := binary.LittleEndian
	le.PutUint64(tf[0x30:], 0xAA)                // Rax
	le.PutUint64(tf[0x158:], 0xffff800000001000) // Rbp
	le.PutUint64(tf[0x168:], 0xfffff80400001234) // Rip
	le.PutUint16(tf[0x170:], 0x10)               // SegCs
	le.PutUint32(tf[0x178:], 0x10246)            // EFlags
	le.PutUint64(tf[0x180:], 0xffff800000000f00) // Rsp
	le.PutUint16(tf[0x188:], 0x18)               // SegSs
	mem := &testMem{}
	const va = 0xffff850400001000
	mem.add(va, tf[:])
	c, err := TrapFrameContext(mem, va)
	if err != nil {
		t.Fatal(err)
	}
	if c.PC != 0xfffff80400001234 || c.SP() != 0xffff800000000f00 || c.FP() != 0xffff800000001000 ||
		c.GPR[kdump.RegRAX] != 0xAA || c.SegCs != 0x10 || c.SegSs != 0x18 || c.Status != 0x10246 {
		t.Errorf("context %+v", c)
	}
	if _, err := TrapFrameContext(mem, va+0x100); err == nil {
		t.Error("a trap frame running past memory was accepted")
	}
	var zero [KTrapFrameSizeAMD64]byte
	mem.add(0x10000, zero[:])
	if _, err := TrapFrameContext(mem, 0x10000); err == nil {
		t.Error("an empty trap frame was accepted")
	}
}

func TestContextAt(t *testing.T) {
	b := make([]byte, kdump.ContextSizeAMD64)
	le := binary.LittleEndian
	le.PutUint64(b[0x98:], 0xffff800000002000) // Rsp
	le.PutUint64(b[0xF8:], 0xfffff80400005678) // Rip
	mem := &testMem{}
	mem.add(0xffff850400010000, b)
	c, err := ContextAt(mem, kdump.MachineAMD64, 0xffff850400010000)
	if err != nil || c.PC != 0xfffff80400005678 || c.SP() != 0xffff800000002000 {
		t.Fatalf("ContextAt = %+v, %v", c, err)
	}
	if _, err := ContextAt(mem, kdump.MachineAMD64, 0x1000); err == nil {
		t.Error("unreadable CONTEXT accepted")
	}
	if _, err := ContextAt(mem, kdump.Machine(0x1234), 0xffff850400010000); !errors.Is(err, ErrUnsupported) {
		t.Errorf("unknown machine: %v", err)
	}
}

// stackBuilder lays out a little-endian stack.
type stackBuilder struct {
	base uint64
	b    []byte
	ptr  int
}

func (s *stackBuilder) put(off int, v uint64) {
	if s.ptr == 4 {
		binary.LittleEndian.PutUint32(s.b[off:], uint32(v))
	} else {
		binary.LittleEndian.PutUint64(s.b[off:], v)
	}
}

// TestX86EBPChain walks an x86 stack through its EBP chain.
func TestX86EBPChain(t *testing.T) {
	mods := []kdump.Module{{Name: "app.exe", Base: 0x400000, Size: 0x10000}, {Name: "lib.dll", Base: 0x10000000, Size: 0x10000}}
	s := &stackBuilder{base: 0x80000, b: make([]byte, 0x200), ptr: 4}
	// frame 0: ebp = 0x80010 -> [0x80010] = 0x80040, [0x80014] = ret 0x10001234
	s.put(0x10, 0x80040)
	s.put(0x14, 0x10001234)
	s.put(0x40, 0x80080)
	s.put(0x44, 0x401000)
	s.put(0x80, 0) // end of chain
	s.put(0x84, 0)
	mem := &testMem{}
	mem.add(s.base, s.b)
	c := &kdump.Context{Machine: kdump.MachineI386, PC: 0x400500}
	c.GPR[kdump.RegRSP] = 0x80000
	c.GPR[kdump.RegRBP] = 0x80010
	frames, err := Walk(context.Background(), Input{Context: c, Memory: mem, Modules: mods, NoScan: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		ip, sp uint64
		how    FoundBy
	}{{0x400500, 0x80000, FoundByContext}, {0x10001234, 0x80018, FoundByFramePointer}, {0x401000, 0x80048, FoundByFramePointer}}
	if len(frames) != len(want) {
		t.Fatalf("frames %v", frames)
	}
	for i, w := range want {
		if frames[i].IP != w.ip || frames[i].SP != w.sp || frames[i].FoundBy != w.how {
			t.Errorf("frame %d: %v ip %#x sp %#x, want %#x %#x %v", i, frames[i], frames[i].IP, frames[i].SP, w.ip, w.sp, w.how)
		}
	}
	if frames[1].String() != "lib+0x1234 (frame-pointer)" || frames[1].LookupOffset() != 0x1233 || frames[0].LookupOffset() != 0x500 {
		t.Errorf("String %q LookupOffset %#x", frames[1].String(), frames[1].LookupOffset())
	}
}

// rulesCFI serves fixed rules for one module.
type rulesCFI map[uint32]map[string]string

func (r rulesCFI) Rules(_ context.Context, _ kdump.Module, rva uint32) (map[string]string, bool, error) {
	for start, rules := range r {
		if rva >= start && rva < start+0x100 {
			return rules, true, nil
		}
	}
	return nil, false, nil
}

func TestCFIX64(t *testing.T) {
	mods := []kdump.Module{{Name: "app.exe", Base: 0x140000000, Size: 0x10000}}
	s := &stackBuilder{base: 0x7ff000, b: make([]byte, 0x100), ptr: 8}
	// Callee at 0x140001010: frame of 0x18 bytes, rbx saved at cfa-16.
	s.put(0x08, 0xB0B0)      // saved rbx
	s.put(0x10, 0x140002345) // return address
	s.put(0x18+0x10, 0)      // nothing after
	mem := &testMem{}
	mem.add(s.base, s.b)
	c := &kdump.Context{Machine: kdump.MachineAMD64, PC: 0x140001010}
	c.GPR[kdump.RegRSP] = s.base
	c.GPR[kdump.RegRBX] = 0x1234
	cfi := rulesCFI{0x1000: {".cfa": "$rsp 24 +", ".ra": ".cfa 8 - ^", "$rbx": ".cfa 16 - ^"}}
	frames, err := Walk(context.Background(), Input{Context: c, Memory: mem, Modules: mods, CFI: cfi, NoScan: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 2 || frames[1].FoundBy != FoundByCFI || frames[1].IP != 0x140002345 || frames[1].SP != s.base+0x18 ||
		!frames[1].Valid.Has(kdump.RegRBX) || frames[1].Context.GPR[kdump.RegRBX] != 0xB0B0 {
		t.Fatalf("frames %v", frames)
	}
}

func TestStackWinX86(t *testing.T) {
	mods := []kdump.Module{{Name: "app.exe", Base: 0x400000, Size: 0x10000}}
	s := &stackBuilder{base: 0x80000, b: make([]byte, 0x100), ptr: 4}
	s.put(0x20, 0x80080) // saved ebp
	s.put(0x24, 0x402000)
	mem := &testMem{}
	mem.add(s.base, s.b)
	c := &kdump.Context{Machine: kdump.MachineI386, PC: 0x401010}
	c.GPR[kdump.RegRSP] = 0x80000
	c.GPR[kdump.RegRBP] = 0x80020
	cfi := rulesCFI{0x1000: {".program": "$T0 $ebp = $eip $T0 4 + ^ = $ebp $T0 ^ = $esp $T0 8 + =", ".cbLocals": "0x10"}}
	frames, err := Walk(context.Background(), Input{Context: c, Memory: mem, Modules: mods, CFI: cfi, NoScan: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) < 2 || frames[1].FoundBy != FoundByCFI || frames[1].IP != 0x402000 || frames[1].SP != 0x80028 || frames[1].FP != 0x80080 {
		t.Fatalf("frames %v (%+v)", frames, frames)
	}
}

func TestPostfix(t *testing.T) {
	mem := &testMem{}
	mem.add(0x1000, []byte{0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0})
	tests := []struct {
		expr string
		want uint64
		err  bool
	}{
		{"1 2 +", 3, false},
		{"10 3 -", 7, false},
		{"6 7 *", 42, false},
		{"7 2 /", 3, false},
		{"7 2 %", 1, false},
		{"0x1234 16 @", 0x1230, false},
		{"$rsp 8 + ^", 0x12345678, false},
		{"1 0 /", 0, true},
		{"1 +", 0, true},
		{"1 2", 0, true},
		{"$nope", 0, true},
		{"1 3 @", 0, true},
		{"8 ^", 0, true},
	}
	for _, tc := range tests {
		e := &evaluator{vars: map[string]uint64{"$rsp": 0xFF8}, mem: mem, ptr: 8}
		got, err := e.eval(tc.expr)
		if (err != nil) != tc.err || err == nil && got != tc.want {
			t.Errorf("eval(%q) = %#x, %v; want %#x (error %v)", tc.expr, got, err, tc.want, tc.err)
		}
	}
}

// TestARM64FrameRecords walks an ARM64 stack through X29 frame records.
func TestARM64FrameRecords(t *testing.T) {
	mods := []kdump.Module{{Name: "nt.exe", Base: 0xfffff80000000000, Size: 0x100000}}
	s := &stackBuilder{base: 0xffff800000010000, b: make([]byte, 0x100), ptr: 8}
	s.put(0x10, s.base+0x40)
	s.put(0x18, 0x8ad5_f800_0000_5678) // LR with PAC bits: strips to 0xfffff80000005678
	s.put(0x40, 0)
	s.put(0x48, 0)
	mem := &testMem{}
	mem.add(s.base, s.b)
	c := &kdump.Context{Machine: kdump.MachineARM64, PC: 0xfffff80000001000}
	c.GPR[kdump.RegARM64SP] = s.base
	c.GPR[kdump.RegARM64FP] = s.base + 0x10
	frames, err := Walk(context.Background(), Input{Context: c, Memory: mem, Modules: mods, NoScan: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 2 || frames[1].IP != 0xfffff80000005678 || frames[1].SP != s.base+0x20 || frames[1].FoundBy != FoundByFramePointer || frames[1].FP != s.base+0x40 {
		t.Fatalf("frames %v", frames)
	}
}

func TestWalkLimits(t *testing.T) {
	mods := []kdump.Module{{Name: "app.exe", Base: 0x140000000, Size: 0x10000}}
	// A stack full of the same return address: scanning finds one per
	// word; MaxFrames stops the walk.
	s := &stackBuilder{base: 0x7ff000, b: make([]byte, 0x1000), ptr: 8}
	for off := 0; off < len(s.b); off += 8 {
		s.put(off, 0x140001234)
	}
	mem := &testMem{}
	mem.add(s.base, s.b)
	c := &kdump.Context{Machine: kdump.MachineAMD64, PC: 0x140001000}
	c.GPR[kdump.RegRSP] = s.base
	frames, err := Walk(context.Background(), Input{Context: c, Memory: mem, Modules: mods, MaxFrames: 10})
	if err != nil || len(frames) != 10 {
		t.Errorf("MaxFrames 10: %d frames, %v", len(frames), err)
	}
	for i := 1; i < len(frames); i++ {
		if frames[i].SP <= frames[i-1].SP {
			t.Errorf("SP did not grow at frame %d", i)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Walk(ctx, Input{Context: c, Memory: mem, Modules: mods}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if _, err := Walk(context.Background(), Input{Memory: mem}); err == nil {
		t.Error("no context accepted")
	}
	if _, err := Walk(context.Background(), Input{Context: &kdump.Context{Machine: kdump.MachineARMNT}, Memory: mem}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("ARM32: %v", err)
	}
	// Non-canonical and null words are never frames.
	for off := 0; off < len(s.b); off += 8 {
		s.put(off, 0x0000_9000_0000_0000)
	}
	frames, _ = Walk(context.Background(), Input{Context: c, Memory: mem, Modules: []kdump.Module{{Name: "x", Base: 0x0000_8ff0_0000_0000, Size: 0x7fffffff}}})
	if len(frames) != 1 {
		t.Errorf("non-canonical words gave frames %v", frames)
	}
}

func TestBugCheckStarts(t *testing.T) {
	mem := &testMem{}
	var tf [KTrapFrameSizeAMD64]byte
	binary.LittleEndian.PutUint64(tf[0x168:], 0xfffff80400001234)
	binary.LittleEndian.PutUint64(tf[0x180:], 0xffff800000000f00)
	mem.add(0xffff850400001000, tf[:])
	ctx := make([]byte, kdump.ContextSizeAMD64)
	binary.LittleEndian.PutUint64(ctx[0xF8:], 0xfffff80400005678)
	binary.LittleEndian.PutUint64(ctx[0x98:], 0xffff800000002000)
	mem.add(0xffff850400003000, ctx)
	tests := []struct {
		code   uint32
		params [4]uint64
		source string
		ip     uint64
		errs   int
	}{
		{0x1000008E, [4]uint64{0xc0000005, 0, 0xffff850400001000, 0}, "KTRAP_FRAME (P3)", 0xfffff80400001234, 0},
		{0x139, [4]uint64{3, 0xffff850400001000, 0, 0}, "KTRAP_FRAME (P2)", 0xfffff80400001234, 0},
		{0x3B, [4]uint64{0xc0000005, 0, 0xffff850400003000, 0}, "CONTEXT (P3)", 0xfffff80400005678, 0},
		{0x7E, [4]uint64{0xc0000005, 0, 0, 0xffff850400003000}, "CONTEXT (P4)", 0xfffff80400005678, 0},
		{0x7E, [4]uint64{0xc0000005, 0, 0, 0xffff850400009000}, "", 0, 1},
		{0xD1, [4]uint64{1, 2, 0, 0xfffff80400001234}, "", 0, 0},
	}
	for _, tc := range tests {
		starts, errs := BugCheckStarts(kdump.MachineAMD64, tc.code, tc.params, mem)
		if len(errs) != tc.errs {
			t.Errorf("%#x: errors %v", tc.code, errs)
		}
		if tc.source == "" {
			if len(starts) != 0 {
				t.Errorf("%#x: starts %+v", tc.code, starts)
			}
			continue
		}
		if len(starts) != 1 || starts[0].Source != tc.source || starts[0].Context.PC != tc.ip {
			t.Errorf("%#x: starts %+v, want %s ip %#x", tc.code, starts, tc.source, tc.ip)
		}
	}
}

// TestScanMachineFrame: beyond the normal scan window, a machine frame
// (RIP, CS, RFLAGS, RSP, SS) continues the walk at the interrupted code.
func TestScanMachineFrame(t *testing.T) {
	mods := []kdump.Module{{Name: "nt.exe", Base: 0xfffff80400000000, Size: 0x100000}, {Name: "drv.sys", Base: 0xfffff80500000000, Size: 0x10000}}
	s := &stackBuilder{base: 0xffff850400010000, b: make([]byte, 0x2000), ptr: 8}
	at := 300 * 8
	s.put(at, 0xfffff80500001234)     // RIP
	s.put(at+8, 0x10)                 // CS
	s.put(at+16, 0x10246)             // RFLAGS
	s.put(at+24, s.base+0x1800)       // RSP
	s.put(at+32, 0x18)                // SS
	s.put(0x1800, 0xfffff80400005555) // the interrupted code's caller
	mem := &testMem{}
	mem.add(s.base, s.b)
	c := &kdump.Context{Machine: kdump.MachineAMD64, PC: 0xfffff80400001000}
	c.GPR[kdump.RegRSP] = s.base
	frames, err := Walk(context.Background(), Input{Context: c, Memory: mem, Modules: mods})
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) < 3 || frames[1].FoundBy != FoundByTrapFrame || frames[1].IP != 0xfffff80500001234 || frames[1].SP != s.base+0x1800 ||
		frames[2].IP != 0xfffff80400005555 || frames[2].FoundBy != FoundByScan {
		t.Fatalf("frames %v", frames)
	}
	// A selector that is no code selector is not a machine frame.
	s.put(at+8, 0x77)
	frames, _ = Walk(context.Background(), Input{Context: c, Memory: mem, Modules: mods})
	for _, f := range frames {
		if f.FoundBy == FoundByTrapFrame {
			t.Errorf("machine frame with CS 0x77 accepted: %v", frames)
		}
	}
}
