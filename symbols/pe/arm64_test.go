package pe

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"
)

// sampleARM64 has one packed entry and one .xdata entry with two epilog
// scopes and an exception handler.
func sampleARM64() *tpe {
	rd := &asm{va: 0x2000}
	x := rd.here()
	// FunctionLength 0x40 words, Vers 0, X=1, E=0, EpilogCount 2, CodeWords 2.
	rd.u32(0x40 | 1<<20 | 2<<22 | 2<<27)
	rd.u32(0x30 | 3<<22) // epilog at 0xC0 bytes, code index 3
	rd.u32(0x38 | 3<<22)
	// Codes: save_fplr_x 16 (0x81), set_fp (0xE1), end (0xE4), then the
	// epilog codes start at index 3: save_fplr_x (0x81), end (0xE4), pad.
	rd.u8(0x81, 0xE1, 0xE4, 0x81, 0xE4, 0xE3, 0xE3, 0xE3)
	rd.u32(0x1500) // handler
	pd := &asm{va: 0x3000}
	// Packed: Flag 1, FunctionLength 0x10 words, RegF 0, RegI 2, H 0, CR 3, FrameSize 0x20 (×16).
	pd.u32(0x1000)
	pd.u32(1 | 0x10<<2 | 2<<16 | 3<<21 | 2<<23)
	pd.u32(0x1100)
	pd.u32(x)
	return &tpe{machine: uint16(MachineARM64), pe64: true, imageBase: 0x140000000,
		secs: []tsec{
			{name: ".text", va: 0x1000, data: make([]byte, 0x400), chars: 0x60000020},
			{name: ".rdata", va: 0x2000, data: rd.b, chars: 0x40000040},
			{name: ".pdata", va: 0x3000, data: pd.b, chars: 0x40000040},
		},
		dirs: map[DirectoryIndex]DataDirectory{DirException: {0x3000, uint32(len(pd.b))}},
	}
}

func (p *tpe) buildFile() []byte { b, _ := p.build(); return b }

func TestARM64(t *testing.T) {
	f, err := NewFile(bytes.NewReader(sampleARM64().buildFile()))
	if err != nil {
		t.Fatal(err)
	}
	fs, err := f.ARM64Functions()
	if err != nil || len(fs) != 2 {
		t.Fatalf("functions %v, %v", fs, err)
	}
	p, ok := fs[0].Packed()
	want := ARM64Packed{Flag: 1, FunctionLength: 0x40, RegI: 2, CR: 3, FrameSize: 0x20}
	if !ok || p != want {
		t.Errorf("packed %+v, want %+v", p, want)
	}
	if _, ok := fs[1].Packed(); ok {
		t.Error("xdata entry decoded as packed")
	}
	x, err := f.ARM64XData(fs[1])
	if err != nil {
		t.Fatal(err)
	}
	if x.FunctionLength != 0x100 || !x.X || x.E || x.EpilogCount != 2 || x.HandlerRVA != 0x1500 ||
		!reflect.DeepEqual(x.Epilogs, []ARM64Epilog{{0xC0, 3}, {0xE0, 3}}) || len(x.Codes) != 8 {
		t.Errorf("xdata %+v", x)
	}
	codes, err := DecodeARM64Codes(x.Codes)
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != 3 || codes[0] != (ARM64Code{Op: ARM64SaveFPLRX, Reg: 29, Offset: 16, Len: 1}) || codes[1].Op != ARM64SetFP || codes[2].Op != ARM64End {
		t.Errorf("codes %+v", codes)
	}
	for _, tc := range []struct {
		rva    uint32
		ok     bool
		begin  uint32
		length uint32
	}{{0x1000, true, 0x1000, 0x40}, {0x1040, false, 0, 0}, {0x11FF, true, 0x1100, 0x100}, {0x1200, false, 0, 0}} {
		af, n, ok, err := f.LookupARM64Function(tc.rva)
		if err != nil || ok != tc.ok || af.Begin != tc.begin || n != tc.length {
			t.Errorf("LookupARM64Function(%#x) = %+v %#x %v %v", tc.rva, af, n, ok, err)
		}
	}
}

func TestDecodeARM64Codes(t *testing.T) {
	tests := []struct {
		in   []byte
		want ARM64Code
	}{
		{[]byte{0x1F}, ARM64Code{Op: ARM64AllocS, Offset: 31 * 16, Len: 1}},
		{[]byte{0x22}, ARM64Code{Op: ARM64SaveR19R20X, Reg: 19, Offset: 16, Len: 1}},
		{[]byte{0x42}, ARM64Code{Op: ARM64SaveFPLR, Reg: 29, Offset: 16, Len: 1}},
		{[]byte{0x8F}, ARM64Code{Op: ARM64SaveFPLRX, Reg: 29, Offset: 128, Len: 1}},
		{[]byte{0xC1, 0x02}, ARM64Code{Op: ARM64AllocM, Offset: 0x102 * 16, Len: 2}},
		{[]byte{0xC8, 0x42}, ARM64Code{Op: ARM64SaveRegP, Reg: 20, Offset: 16, Len: 2}},
		{[]byte{0xCC, 0x01}, ARM64Code{Op: ARM64SaveRegPX, Reg: 19, Offset: 16, Len: 2}},
		{[]byte{0xD0, 0x83}, ARM64Code{Op: ARM64SaveReg, Reg: 21, Offset: 24, Len: 2}},
		{[]byte{0xD4, 0x21}, ARM64Code{Op: ARM64SaveRegX, Reg: 20, Offset: 16, Len: 2}},
		{[]byte{0xD6, 0x42}, ARM64Code{Op: ARM64SaveLRPair, Reg: 21, Offset: 16, Len: 2}},
		{[]byte{0xD8, 0x42}, ARM64Code{Op: ARM64SaveFRegP, Reg: 9, Offset: 16, Len: 2}},
		{[]byte{0xDA, 0x01}, ARM64Code{Op: ARM64SaveFRegPX, Reg: 8, Offset: 16, Len: 2}},
		{[]byte{0xDC, 0x42}, ARM64Code{Op: ARM64SaveFReg, Reg: 9, Offset: 16, Len: 2}},
		{[]byte{0xDE, 0x21}, ARM64Code{Op: ARM64SaveFRegX, Reg: 9, Offset: 16, Len: 2}},
		{[]byte{0xE0, 0x00, 0x01, 0x00}, ARM64Code{Op: ARM64AllocL, Offset: 0x100 * 16, Len: 4}},
		{[]byte{0xE2, 0x04}, ARM64Code{Op: ARM64AddFP, Reg: 29, Offset: 32, Len: 2}},
		{[]byte{0xE6}, ARM64Code{Op: ARM64SaveNext, Len: 1}},
		{[]byte{0xE9}, ARM64Code{Op: ARM64MachineFrame, Len: 1}},
		{[]byte{0xE8}, ARM64Code{Op: ARM64TrapFrame, Len: 1}},
	}
	for _, tc := range tests {
		got, err := DecodeARM64Codes(tc.in)
		if err != nil || len(got) != 1 || got[0] != tc.want {
			t.Errorf("% x: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	if _, err := DecodeARM64Codes([]byte{0xE0, 1}); err == nil {
		t.Error("truncated alloc_l accepted")
	}
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], 0)
	if c, _ := DecodeARM64Codes(b[:]); len(c) != 4 {
		t.Errorf("zero bytes: %+v", c)
	}
}
