package stack

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/symbols/pe"
)

var arm64Chain = []string{"DriverEntry", "WithFrameRecord", "FloatWork", "HugeFrame", "LargeFrame", "SavesNonVolatiles", "LeafTouch"}

const arm64Base = 0xfffff80455660000

// blSite returns the return address of the first BL in caller that targets
// callee.
func blSite(t testing.TB, f *pe.File, caller, callee uint32) uint32 {
	_, n, ok, err := f.LookupARM64Function(caller)
	if err != nil || !ok {
		t.Fatalf("no .pdata for %#x: %v", caller, err)
	}
	code := make([]byte, n)
	if err := f.ReadRVA(code, caller); err != nil {
		t.Fatal(err)
	}
	for i := 0; i+4 <= len(code); i += 4 {
		insn := binary.LittleEndian.Uint32(code[i:])
		if insn&0xFC000000 != 0x94000000 {
			continue
		}
		off := int32(insn<<6) >> 4 // imm26 * 4, sign-extended
		if uint32(int32(caller)+int32(i)+off) == callee {
			return caller + uint32(i) + 4
		}
	}
	t.Fatalf("no BL from %#x to %#x", caller, callee)
	return 0
}

// TestDriverWalkARM64 lays a stack through the ARM64 build of the test
// driver by running each function's prolog as its packed unwind data or
// .xdata codes describe it, then walks it with the image's .pdata: every
// frame must be found by unwind data with the right PC, SP and x19-x29.
func TestDriverWalkARM64(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(driverDir, "kdtdrv_arm64.sys"))
	if err != nil {
		t.Fatalf("committed driver missing: %v", err)
	}
	f, err := pe.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if f.Machine != pe.MachineARM64 {
		t.Fatalf("machine %v", f.Machine)
	}
	rvas := exportRVAs(t, f)
	mem := &testMem{}
	stack := make([]byte, 0x200000)
	const top = 0xffff850500400000
	mem.add(top-uint64(len(stack)), stack)
	mod := kdump.Module{Name: "kdtdrv_arm64.sys", Base: arm64Base, Size: f.OptionalHeader.SizeOfImage, TimeDateStamp: f.TimeDateStamp}

	var regs [32]uint64
	for i := range 31 {
		regs[i] = 0x3333_0000_0000_0000 | uint64(i)<<8
	}
	sp := uint64(top - 0x100)
	regs[kdump.RegARM64LR] = 0
	type want struct {
		name   string
		pc, sp uint64
		regs   [32]uint64
		how    FoundBy
	}
	var expect []want
	packedSeen, xdataSeen, frameRecordSeen := false, false, false
	for n := 0; n+1 < len(arm64Chain); n++ {
		caller, callee := rvas[arm64Chain[n]], rvas[arm64Chain[n+1]]
		ret := arm64Base + uint64(blSite(t, f, caller, callee))
		regs[kdump.RegARM64LR] = ret
		expect = append(expect, want{arm64Chain[n], ret, sp, regs, FoundByUnwind})
		af, _, ok, err := f.LookupARM64Function(callee)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			continue // leaf
		}
		var saved []int
		store := func(at uint64, r int) { mem.put64(at, regs[r]); saved = append(saved, r) }
		if p, isPacked := af.Packed(); isPacked {
			packedSeen = true
			intSize := uint64(p.RegI) * 8
			if p.CR == 1 {
				intSize += 8
			}
			fpSize := uint64(0)
			if p.RegF > 0 {
				fpSize = uint64(p.RegF+1) * 8
			}
			savSize := (intSize + fpSize + 15) &^ 15
			sp -= savSize
			for i := range int(p.RegI) {
				store(sp+8*uint64(i), 19+i)
			}
			if p.CR == 1 {
				store(sp+intSize-8, kdump.RegARM64LR)
			}
			sp -= uint64(p.FrameSize) - savSize
			if p.CR == 3 {
				frameRecordSeen = true
				store(sp, kdump.RegARM64FP)
				store(sp+8, kdump.RegARM64LR)
				regs[kdump.RegARM64FP] = sp
			}
		} else {
			xdataSeen = true
			x, err := f.ARM64XData(af)
			if err != nil {
				t.Fatal(err)
			}
			codes, err := pe.DecodeARM64Codes(x.Codes)
			if err != nil {
				t.Fatal(err)
			}
			if i := slices.IndexFunc(codes, func(c pe.ARM64Code) bool { return c.Op == pe.ARM64End }); i >= 0 {
				codes = codes[:i]
			}
			slices.Reverse(codes)
			for _, c := range codes {
				off := uint64(c.Offset)
				switch c.Op {
				case pe.ARM64AllocS, pe.ARM64AllocM, pe.ARM64AllocL:
					sp -= off
				case pe.ARM64SaveFPLRX:
					sp -= off
					store(sp, kdump.RegARM64FP)
					store(sp+8, kdump.RegARM64LR)
				case pe.ARM64SaveFPLR:
					store(sp+off, kdump.RegARM64FP)
					store(sp+off+8, kdump.RegARM64LR)
				case pe.ARM64SaveRegPX:
					sp -= off
					store(sp, int(c.Reg))
					store(sp+8, int(c.Reg)+1)
				case pe.ARM64SaveRegP:
					store(sp+off, int(c.Reg))
					store(sp+off+8, int(c.Reg)+1)
				case pe.ARM64SetFP:
					regs[kdump.RegARM64FP] = sp
				case pe.ARM64Nop:
				default:
					t.Fatalf("%s: prolog code %v not simulated", arm64Chain[n+1], c.Op)
				}
			}
		}
		// The callee now uses the registers it saved.
		for _, r := range saved {
			if r == kdump.RegARM64FP && regs[r] == sp {
				continue
			}
			regs[r] = 0x4444_0000_0000_0000 | uint64(n)<<16 | uint64(r)
		}
	}
	if !packedSeen || !xdataSeen || !frameRecordSeen {
		t.Fatalf("the driver no longer has packed (%v), .xdata (%v) and frame-record (%v) functions", packedSeen, xdataSeen, frameRecordSeen)
	}
	ctx := &kdump.Context{Machine: kdump.MachineARM64, PC: arm64Base + uint64(rvas["LeafTouch"])}
	copy(ctx.GPR[:], regs[:])
	ctx.GPR[kdump.RegARM64SP] = sp
	expect = append(expect, want{"LeafTouch", ctx.PC, sp, regs, FoundByContext})
	slices.Reverse(expect)

	img := fixedImage{f}
	frames, err := Walk(context.Background(), Input{Context: ctx, Memory: mem, Modules: []kdump.Module{mod}, Images: img, NoScan: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != len(expect) {
		t.Fatalf("%d frames, want %d: %v", len(frames), len(expect), frames)
	}
	for i, fr := range frames {
		e := expect[i]
		if fr.IP != e.pc || fr.SP != e.sp || fr.FoundBy != e.how {
			t.Errorf("frame %d: %v pc %#x sp %#x; want %s pc %#x sp %#x (%v)", i, fr, fr.IP, fr.SP, e.name, e.pc, e.sp, e.how)
			continue
		}
		for r := 19; r <= kdump.RegARM64FP; r++ {
			if fr.Valid.Has(r) && fr.Context.GPR[r] != e.regs[r] {
				t.Errorf("frame %d (%s): x%d = %#x, want %#x", i, e.name, r, fr.Context.GPR[r], e.regs[r])
			}
		}
		t.Logf("frame %d %-18s %v", i, e.name, fr)
	}
}
