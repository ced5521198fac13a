package stack

import (
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
