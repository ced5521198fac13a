package stack

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/kdtriage/kdtriage/kdump"
)

// FuzzWalk walks arbitrary stack bytes through the test driver's image
// (with unwind data) and a module without one, on every machine: no
// panics, no hangs, SP never decreases except across trap frames.
func FuzzWalk(f *testing.F) {
	s := newDriverScene(f, driverChain)
	stack := s.mem.regions[0]
	seed := stack.b[len(stack.b)-0x400:]
	f.Add(seed, uint8(0), uint16(0))
	f.Add(make([]byte, 64), uint8(1), uint16(3))
	img := fixedImage{s.img}
	f.Fuzz(func(t *testing.T, b []byte, machine uint8, ipOff uint16) {
		if len(b) > 1<<16 {
			return
		}
		mem := &testMem{}
		const base = 0xffff850400000000
		mem.add(base, b)
		m := []kdump.Machine{kdump.MachineAMD64, kdump.MachineI386, kdump.MachineARM64}[int(machine)%3]
		c := &kdump.Context{Machine: m, PC: drvBase + 0x1000 + uint64(ipOff)%0x400}
		if m == kdump.MachineI386 {
			c.PC = 0x401000 + uint64(ipOff)
		}
		sp := uint64(base)
		if len(b) >= 8 {
			sp += uint64(binary.LittleEndian.Uint16(b)) % uint64(len(b))
		}
		c.GPR[spReg(m)] = sp
		c.GPR[kdump.RegRBP] = sp + 16
		c.GPR[kdump.RegARM64FP] = sp + 16
		mods := []kdump.Module{s.mod, {Name: "x86.exe", Base: 0x400000, Size: 0x10000}}
		frames, err := Walk(context.Background(), Input{Context: c, Memory: mem, Modules: mods, Images: img, MaxFrames: 64})
		if err != nil {
			t.Fatal(err)
		}
		if len(frames) == 0 || len(frames) > 64 {
			t.Fatalf("%d frames", len(frames))
		}
		for i := 1; i < len(frames); i++ {
			if frames[i].FoundBy != FoundByTrapFrame && frames[i].SP <= frames[i-1].SP {
				t.Fatalf("frame %d: SP %#x after %#x (%v)", i, frames[i].SP, frames[i-1].SP, frames[i])
			}
		}
	})
}

// FuzzWalkImage walks a stack through a hostile module image read from
// dump memory (pe.NewImage): .pdata, UNWIND_INFO chains, ARM64 .xdata and
// packed unwind data all come from the fuzzer. No panics, no hangs, and
// the stack pointer only grows except across trap frames (and from a leaf
// function's first frame on ARM64, which keeps SP).
func FuzzWalkImage(f *testing.F) {
	const base uint64 = 0xfffff80500000000
	const sp uint64 = 0xffff850400010000
	parent := []byte{1, 8, 3, 0, 8, 0x34, 2, 0, 4, 0x72}
	child := []byte{1 | 4<<3, 4, 1, 0, 4, 0x32, 0, 0, 0x00, 0x10, 0, 0, 0x00, 0x11, 0, 0, 0x00, 0x18, 0, 0}
	stack := make([]byte, 0x200)
	binary.LittleEndian.PutUint64(stack[0x60:], base+0x1050)
	f.Add(synthX64([][3]uint32{{0x1000, 0x1100, 0x1800}, {0x1100, 0x1200, 0x1840}}, map[uint32][]byte{0x1800: parent, 0x1840: child}), stack, uint8(0), uint16(0x150))
	f.Add(synthX64([][3]uint32{{0x1000, 0x1100, 0x1800}}, map[uint32][]byte{0x1800: {1, 4, 2, 0, 4, 0x22, 0, 0x1A}}), stack, uint8(0), uint16(0x40))
	arm := synthX64(nil, nil)
	binary.LittleEndian.PutUint16(arm[0x44:], 0xAA64)
	binary.LittleEndian.PutUint32(arm[0x58+112+3*8+4:], 16)
	binary.LittleEndian.PutUint64(arm[0x2800:], 0x1000|uint64(1|0x40<<2|3<<16|1<<21|0x20<<23)<<32) // packed: RegI 3, CR 1
	binary.LittleEndian.PutUint64(arm[0x2808:], 0x1400|uint64(0x1800)<<32)                         // .xdata at 0x1800
	f.Add(arm, stack, uint8(2), uint16(0x20))
	xdata := []byte{0x40, 0, 0x20, 0x08, 0x44, 0xE6, 0x26, 0xE4} // save_fplr, save_next, save_r19r20_x, end
	f.Add(synthARM64([][2]uint32{{0x1000, 0x1800}}, map[uint32][]byte{0x1800: xdata}), stack, uint8(2), uint16(0x80))
	f.Fuzz(func(t *testing.T, img, stk []byte, machine uint8, ip uint16) {
		if len(img) > 1<<16 || len(stk) > 1<<14 {
			return
		}
		mem := &testMem{}
		mem.add(base, img)
		mem.add(sp, stk)
		m := []kdump.Machine{kdump.MachineAMD64, kdump.MachineI386, kdump.MachineARM64}[int(machine)%3]
		c := &kdump.Context{Machine: m, PC: base + 0x1000 + uint64(ip)%0x1000}
		c.GPR[spReg(m)] = sp
		c.GPR[kdump.RegRBP] = sp + 16
		c.GPR[kdump.RegARM64FP] = sp + 16
		c.GPR[kdump.RegARM64LR] = base + 0x1100
		mods := []kdump.Module{{Name: "hostile.sys", Base: base, Size: uint32(max(len(img), 0x3000))}}
		frames, err := Walk(context.Background(), Input{Context: c, Memory: mem, Modules: mods, Images: MemoryImages{Memory: mem}, MaxFrames: 32})
		if err != nil {
			t.Fatal(err)
		}
		if len(frames) == 0 || len(frames) > 32 {
			t.Fatalf("%d frames", len(frames))
		}
		for i := 1; i < len(frames); i++ {
			leaf := i == 1 && m == kdump.MachineARM64 && frames[i].SP == frames[i-1].SP
			if frames[i].FoundBy != FoundByTrapFrame && frames[i].SP <= frames[i-1].SP && !leaf {
				t.Fatalf("frame %d: SP %#x after %#x (%v)", i, frames[i].SP, frames[i-1].SP, frames[i])
			}
		}
	})
}
