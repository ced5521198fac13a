package stack

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/symbols/pe"
)

// TestUnwindARM64PackedRegI unwinds packed unwind data from hostile images:
// RegI is a 4-bit field, but only x19..x28 (RegI <= 10) can be saved. Larger
// values must be rejected rather than overwrite SP or index past the
// register file.
func TestUnwindARM64PackedRegI(t *testing.T) {
	mem := func(a uint64) (uint64, bool) { return a ^ 0x5555, true }
	var c kdump.Context
	c.GPR[kdump.RegARM64SP] = 0x10000
	valid := RegSet(1)<<kdump.RegARM64SP | RegSet(1)<<kdump.RegARM64LR
	c.GPR[kdump.RegARM64LR] = 0xFFFFF800_00401000
	for regI := uint8(0); regI < 16; regI++ {
		p := pe.ARM64Packed{Flag: 1, FunctionLength: 0x100, RegI: regI, CR: 1, FrameSize: 0x200}
		out, v, ok := unwindARM64Packed(p, c, valid, mem)
		if regI > 10 {
			if ok {
				t.Errorf("RegI %d accepted", regI)
			}
			continue
		}
		if !ok {
			t.Errorf("RegI %d rejected", regI)
			continue
		}
		if out.GPR[kdump.RegARM64SP] != 0x10200 {
			t.Errorf("RegI %d: SP %#x, want 0x10200", regI, out.GPR[kdump.RegARM64SP])
		}
		// x19.. are read from the top of the frame, LR after them.
		saveBase := uint64(0x10200) - (uint64(regI)*8+8+15)&^15
		for i := range uint64(regI) {
			if r := 19 + i; out.GPR[r] != (saveBase+8*i)^0x5555 || !v.Has(int(r)) {
				t.Errorf("RegI %d: x%d = %#x", regI, r, out.GPR[r])
			}
		}
		if want := (saveBase + uint64(regI)*8) ^ 0x5555; out.GPR[kdump.RegARM64LR] != want {
			t.Errorf("RegI %d: LR %#x, want %#x", regI, out.GPR[kdump.RegARM64LR], want)
		}
	}
}

// synthARM64 is synthX64's image for ARM64: .pdata entries {Begin,
// UnwindData} at 0x2800, other bytes (.xdata) by RVA.
func synthARM64(fns [][2]uint32, data map[uint32][]byte) []byte {
	b := synthX64(nil, data)
	le := binary.LittleEndian
	le.PutUint16(b[0x44:], 0xAA64)
	le.PutUint32(b[0x58+112+3*8+4:], uint32(8*len(fns)))
	for i, f := range fns {
		le.PutUint32(b[0x2800+8*i:], f[0])
		le.PutUint32(b[0x2800+8*i+4:], f[1])
	}
	return b
}

// TestUnwindARM64SaveNext: save_next extends the register-pair save that
// follows it in the code list (precedes it in the prolog) to the next pair
// 16 bytes further, as MSVC and the .NET JIT emit for x21/x22, x23/x24....
// Prolog: stp x19,x20,[sp,#-48]!; stp x21,x22,[sp,#16]; stp fp,lr,[sp,#32].
func TestUnwindARM64SaveNext(t *testing.T) {
	const base uint64 = 0xfffff80500000000
	const sp uint64 = 0xffff850400010000
	xdata := make([]byte, 8)
	binary.LittleEndian.PutUint32(xdata, 0x40|1<<21|1<<27) // 0x100 bytes, one epilog in the header, one code word
	copy(xdata[4:], []byte{0x44, 0xE6, 0x26, 0xE4})        // save_fplr 32, save_next, save_r19r20_x 48, end
	img := synthARM64([][2]uint32{{0x1000, 0x1800}}, map[uint32][]byte{0x1800: xdata})
	stack := make([]byte, 0x100)
	le := binary.LittleEndian
	for i, v := range []uint64{0x1919, 0x2020, 0x2121, 0x2222, sp + 0x80, base + 0x1050} {
		le.PutUint64(stack[8*i:], v) // x19, x20, x21, x22, fp, lr
	}
	mem := &testMem{}
	mem.add(base, img)
	mem.add(sp, stack)
	c := &kdump.Context{Machine: kdump.MachineARM64, PC: base + 0x1080}
	c.GPR[kdump.RegARM64SP] = sp
	for r := 19; r <= 22; r++ {
		c.GPR[r] = 0x7777
	}
	mods := []kdump.Module{{Name: "synth.sys", Base: base, Size: uint32(len(img))}}
	frames, err := Walk(context.Background(), Input{Context: c, Memory: mem, Modules: mods, Images: MemoryImages{Memory: mem}, MaxFrames: 2, NoScan: true})
	if err != nil || len(frames) != 2 {
		t.Fatalf("frames %v, %v", frames, err)
	}
	f := frames[1]
	if f.FoundBy != FoundByUnwind || f.IP != base+0x1050 || f.SP != sp+48 {
		t.Fatalf("caller %v: ip %#x sp %#x", f, f.IP, f.SP)
	}
	for r, want := range map[int]uint64{19: 0x1919, 20: 0x2020, 21: 0x2121, 22: 0x2222, kdump.RegARM64FP: sp + 0x80} {
		if got := f.Context.GPR[r]; got != want || !f.Valid.Has(r) {
			t.Errorf("x%d = %#x (valid %v), want %#x", r, got, f.Valid.Has(r), want)
		}
	}
}
