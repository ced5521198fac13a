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
