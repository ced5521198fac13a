package stack

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/kdtriage/kdtriage/kdump"
)

// synthX64 is a mapped x64 image built in a test: headers, one code section
// at 0x1000 of 0x2000 bytes, and an exception directory at 0x2800. fns are
// the RUNTIME_FUNCTIONs; unwind holds UNWIND_INFO bytes by RVA.
func synthX64(fns [][3]uint32, unwind map[uint32][]byte) []byte {
	const size = 0x3000
	b := make([]byte, size)
	le := binary.LittleEndian
	b[0], b[1] = 'M', 'Z'
	le.PutUint32(b[0x3C:], 0x40)
	copy(b[0x40:], "PE\x00\x00")
	le.PutUint16(b[0x44:], 0x8664) // Machine
	le.PutUint16(b[0x46:], 1)      // NumberOfSections
	le.PutUint16(b[0x54:], 0xF0)   // SizeOfOptionalHeader
	opt := b[0x58:]
	le.PutUint16(opt[0:], 0x20B)
	le.PutUint32(opt[32:], 0x1000) // SectionAlignment
	le.PutUint32(opt[36:], 0x200)  // FileAlignment
	le.PutUint32(opt[56:], size)   // SizeOfImage
	le.PutUint32(opt[60:], 0x400)  // SizeOfHeaders
	le.PutUint32(opt[108:], 16)    // NumberOfRvaAndSizes
	le.PutUint32(opt[112+3*8:], 0x2800)
	le.PutUint32(opt[112+3*8+4:], uint32(12*len(fns)))
	sec := b[0x58+0xF0:]
	copy(sec, ".text")
	le.PutUint32(sec[8:], 0x2000)
	le.PutUint32(sec[12:], 0x1000)
	le.PutUint32(sec[16:], 0x2000)
	le.PutUint32(sec[20:], 0x400)
	le.PutUint32(sec[36:], 0x60000020) // code, execute, read
	for i, f := range fns {
		for j, v := range f {
			le.PutUint32(b[0x2800+12*i+4*j:], v)
		}
	}
	for rva, u := range unwind {
		copy(b[rva:], u)
	}
	return b
}

// walkSynth walks two frames from ip with the stack at sp.
func walkSynth(t *testing.T, img []byte, ip uint64, sp uint64, stack []byte, regs map[int]uint64) []Frame {
	t.Helper()
	const base uint64 = 0xfffff80500000000
	mem := &testMem{}
	mem.add(base, img)
	mem.add(sp, stack)
	c := &kdump.Context{Machine: kdump.MachineAMD64, PC: base + ip}
	c.GPR[kdump.RegRSP] = sp
	for r, v := range regs {
		c.GPR[r] = v
	}
	mods := []kdump.Module{{Name: "synth.sys", Base: base, Size: uint32(len(img))}}
	frames, err := Walk(context.Background(), Input{Context: c, Memory: mem, Modules: mods, Images: MemoryImages{Memory: mem}, MaxFrames: 2, NoScan: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 2 {
		t.Fatalf("%d frames: %v", len(frames), frames)
	}
	return frames
}

// TestChainedUnwindFrameBase: each UNWIND_INFO of a chain has its own
// establisher frame. The fragment allocates 0x20 bytes and chains to the
// primary entry, which allocated 0x40 bytes and saved RBX with a MOV at
// [its RSP + 0x10]: that slot is 0x20 bytes above the fragment's RSP.
func TestChainedUnwindFrameBase(t *testing.T) {
	const base uint64 = 0xfffff80500000000
	parent := []byte{1, 8, 3, 0, // version 1, prolog 8, 3 slots
		8, 0x34, 2, 0, // 0x08: SAVE_NONVOL RBX, offset 2*8
		4, 0x72, // 0x04: ALLOC_SMALL 0x40
	}
	child := []byte{1 | 4<<3, 4, 1, 0, // version 1, CHAININFO, prolog 4, 1 slot
		4, 0x32, 0, 0, // 0x04: ALLOC_SMALL 0x20, padding slot
		0x00, 0x10, 0, 0, 0x00, 0x11, 0, 0, 0x00, 0x18, 0, 0, // chained to {0x1000, 0x1100, 0x1800}
	}
	img := synthX64([][3]uint32{{0x1000, 0x1100, 0x1800}, {0x1100, 0x1200, 0x1840}}, map[uint32][]byte{0x1800: parent, 0x1840: child})
	const sp uint64 = 0xffff850400010000
	stack := make([]byte, 0x100)
	le := binary.LittleEndian
	le.PutUint64(stack[0x10:], 0xBAD)       // what a frame base taken from the fragment's RSP would read
	le.PutUint64(stack[0x30:], 0xB0B0)      // RBX, at the primary's RSP + 0x10
	le.PutUint64(stack[0x60:], base+0x1050) // return address above both allocations
	frames := walkSynth(t, img, 0x1150, sp, stack, map[int]uint64{kdump.RegRBX: 0x1234})
	f := frames[1]
	if f.FoundBy != FoundByUnwind || f.IP != base+0x1050 || f.SP != sp+0x68 || f.Context.GPR[kdump.RegRBX] != 0xB0B0 {
		t.Errorf("caller %v: ip %#x sp %#x rbx %#x; want ip %#x sp %#x rbx 0xb0b0", f, f.IP, f.SP, f.Context.GPR[kdump.RegRBX], base+0x1050, sp+0x68)
	}
}

// TestUnwindMachineFrame: UWOP_PUSH_MACHFRAME (an interrupt or exception
// handler's prolog) takes RIP and RSP from the frame the processor pushed,
// after the optional error code.
func TestUnwindMachineFrame(t *testing.T) {
	const base uint64 = 0xfffff80500000000
	for _, errCode := range []bool{false, true} {
		info := byte(0)
		if errCode {
			info = 1
		}
		// 0x04: ALLOC_SMALL 0x18 (after the machine frame), 0x00: PUSH_MACHFRAME.
		u := []byte{1, 4, 2, 0, 4, 0x22, 0, 0x0A | info<<4}
		img := synthX64([][3]uint32{{0x1000, 0x1100, 0x1800}}, map[uint32][]byte{0x1800: u})
		const sp uint64 = 0xffff850400010000
		stack := make([]byte, 0x100)
		le := binary.LittleEndian
		at := 0x18
		if errCode {
			le.PutUint64(stack[at:], 0xEEEE) // error code
			at += 8
		}
		le.PutUint64(stack[at:], base+0x1080)  // RIP
		le.PutUint64(stack[at+8:], 0x10)       // CS
		le.PutUint64(stack[at+16:], 0x246)     // RFLAGS
		le.PutUint64(stack[at+24:], sp+0x1000) // RSP
		le.PutUint64(stack[at+32:], 0x18)      // SS
		frames := walkSynth(t, img, 0x1040, sp, stack, nil)
		f := frames[1]
		if f.FoundBy != FoundByTrapFrame || f.IP != base+0x1080 || f.SP != sp+0x1000 || f.Context.SegCs != 0x10 || f.Context.SegSs != 0x18 {
			t.Errorf("error code %v: caller %v ip %#x sp %#x cs %#x ss %#x", errCode, f, f.IP, f.SP, f.Context.SegCs, f.Context.SegSs)
		}
	}
}
