package pe

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// openBoth opens a sample as a file and as a mapped image.
func openBoth(t *testing.T, s *sample) map[string]*File {
	t.Helper()
	file, image := s.pe.build()
	ff, err := NewFile(bytes.NewReader(file))
	if err != nil {
		t.Fatalf("NewFile: %v", err)
	}
	base := uint64(0xfffff80012340000)
	fi, err := NewImage(&memImage{base: base, b: image}, base)
	if err != nil {
		t.Fatalf("NewImage: %v", err)
	}
	return map[string]*File{"file": ff, "image": fi}
}

func TestHeaders(t *testing.T) {
	s := sampleX64()
	for name, f := range openBoth(t, s) {
		t.Run(name, func(t *testing.T) {
			if f.Machine != MachineAMD64 || f.TimeDateStamp != 0x62524D62 || !f.Is64() {
				t.Errorf("file header: %+v", f.FileHeader)
			}
			if f.OptionalHeader.CheckSum != 0xABCD || f.OptionalHeader.SizeOfImage != 0x4000 {
				t.Errorf("optional header: checksum %#x size %#x", f.OptionalHeader.CheckSum, f.OptionalHeader.SizeOfImage)
			}
			if len(f.Sections) != 3 || f.Sections[0].Name != ".text" || !f.Sections[0].IsCode() || f.Sections[1].IsCode() {
				t.Errorf("sections: %+v", f.Sections)
			}
			if !f.IsCodeRVA(0x1010) || f.IsCodeRVA(0x2010) || f.IsCodeRVA(0x9000) {
				t.Error("IsCodeRVA wrong")
			}
		})
	}
}

func TestCodeView(t *testing.T) {
	s := sampleX64()
	for name, f := range openBoth(t, s) {
		t.Run(name, func(t *testing.T) {
			cv, err := f.CodeView()
			if err != nil {
				t.Fatal(err)
			}
			if cv.Signature != CodeViewRSDS || cv.Age != 3 || cv.PDBPath != `C:\b\drv.pdb` || cv.PDBName() != "drv.pdb" {
				t.Errorf("cv = %+v", cv)
			}
			if got, want := cv.GUID.String(), "4192FD51-0CEE-41B5-98C1-066D2DA8296B"; got != want {
				t.Errorf("GUID %s, want %s", got, want)
			}
			if got, want := cv.ID(), "4192FD510CEE41B598C1066D2DA8296B3"; got != want {
				t.Errorf("ID %s, want %s", got, want)
			}
			dirs, err := f.DebugDirectories()
			if err != nil || len(dirs) != 2 || dirs[0].Type != DebugTypePOGO || dirs[1].Type != DebugTypeCodeView {
				t.Errorf("debug dirs %+v, %v", dirs, err)
			}
		})
	}
}

func TestParseCodeView(t *testing.T) {
	nb10 := append([]byte("NB10\x00\x00\x00\x00\x78\x56\x34\x12\x02\x00\x00\x00"), "old.pdb\x00junk"...)
	tests := []struct {
		name    string
		in      []byte
		want    *CodeView
		wantErr error
	}{
		{"nb10", nb10, &CodeView{Signature: CodeViewNB10, NB10Sig: 0x12345678, Age: 2, PDBPath: "old.pdb"}, nil},
		{"short", []byte("RS"), nil, ErrTruncated},
		{"short rsds", []byte("RSDS\x01\x02"), nil, ErrTruncated},
		{"short nb10", []byte("NB10\x01\x02"), nil, ErrTruncated},
		{"unknown", []byte("ABCDEFGH"), nil, ErrFormat},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCodeView(tc.in, 0x100)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				var fe *FormatError
				if !errors.As(err, &fe) || fe.Offset != 0x100 {
					t.Errorf("error %v lacks the offset", err)
				}
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if tc.want.Signature == CodeViewNB10 && got.ID() != "123456782" {
				t.Errorf("NB10 ID %s", got.ID())
			}
		})
	}
}

func TestExports(t *testing.T) {
	s := sampleX64()
	for name, f := range openBoth(t, s) {
		t.Run(name, func(t *testing.T) {
			ex, err := f.Exports()
			if err != nil {
				t.Fatal(err)
			}
			want := &Exports{DLLName: "drv.sys", Base: 5, List: []Export{
				{Name: "DriverAlpha", Ordinal: 5, RVA: 0x1000},
				{Name: "ForwardedBugCheck", Ordinal: 6, Forwarder: "ntoskrnl.KeBugCheckEx"},
				{Ordinal: 7, RVA: 0x1080},
			}}
			if !reflect.DeepEqual(ex, want) {
				t.Errorf("got %+v\nwant %+v", ex, want)
			}
		})
	}
}

func TestRuntimeFunctions(t *testing.T) {
	s := sampleX64()
	for name, f := range openBoth(t, s) {
		t.Run(name, func(t *testing.T) {
			fs, err := f.RuntimeFunctions()
			if err != nil {
				t.Fatal(err)
			}
			if len(fs) != 6 {
				t.Fatalf("%d functions", len(fs))
			}
			for i := 1; i < len(fs); i++ {
				if fs[i-1].Begin >= fs[i].Begin {
					t.Fatalf("not sorted: %+v", fs)
				}
			}
			tests := []struct {
				rva  uint32
				ok   bool
				want RuntimeFunction
			}{
				{0x0FFF, false, RuntimeFunction{}},
				{0x1000, true, s.funcs[0]},
				{0x103F, true, s.funcs[0]},
				{0x1040, true, s.funcs[1]},
				{0x10FF, true, s.funcs[2]},
				{0x1110, true, s.funcs[0]}, // indirect
				{0x1150, false, RuntimeFunction{}},
				{0x120F, true, s.funcs[4]},
				{0x1210, false, RuntimeFunction{}},
			}
			for _, tc := range tests {
				got, ok, err := f.LookupFunction(tc.rva)
				if err != nil || ok != tc.ok || got != tc.want {
					t.Errorf("LookupFunction(%#x) = %+v, %v, %v; want %+v, %v", tc.rva, got, ok, err, tc.want, tc.ok)
				}
			}
		})
	}
}

func TestUnwindInfo(t *testing.T) {
	s := sampleX64()
	f := openBoth(t, s)["file"]
	tests := []struct {
		name  string
		codes []string
		check func(t *testing.T, ui *UnwindInfo)
	}{
		{"f0", []string{"0x0C: SET_FPREG", "0x08: ALLOC_SMALL size=40", "0x02: PUSH_NONVOL reg=RBX", "0x01: PUSH_NONVOL reg=RBP"},
			func(t *testing.T, ui *UnwindInfo) {
				if ui.FrameRegister != RBP || ui.FrameOffset != 32 || ui.SizeOfProlog != 0x0C || ui.Flags != 0 {
					t.Errorf("header %+v", ui)
				}
			}},
		{"f1", []string{
			"0x30: SAVE_XMM128_FAR reg=XMM7, offset=0x20000",
			"0x28: SAVE_XMM128 reg=XMM6, offset=0x30",
			"0x20: SAVE_NONVOL_FAR reg=R12, offset=0x11000",
			"0x18: SAVE_NONVOL reg=RSI, offset=0x30",
			"0x10: ALLOC_LARGE size=131088",
			"0x08: ALLOC_LARGE size=4096"},
			func(t *testing.T, ui *UnwindInfo) {
				if ui.HandlerRVA != 0x1234 || ui.HandlerDataRVA != ui.RVA+4+2*16+4 || ui.Flags != UNW_FLAG_EHANDLER {
					t.Errorf("handler %#x data %#x flags %v", ui.HandlerRVA, ui.HandlerDataRVA, ui.Flags)
				}
				if ui.CountOfCodes != 15 || ui.Codes[0].Slots != 3 || ui.Codes[5].Slots != 2 {
					t.Errorf("slots: %+v", ui.Codes)
				}
			}},
		{"f2", []string{"0x01: PUSH_MACHFRAME errcode=yes"}, nil},
		{"f3", []string{"0x04: SAVE_NONVOL reg=RDI, offset=0x20"},
			func(t *testing.T, ui *UnwindInfo) {
				if ui.Chained == nil || *ui.Chained != (RuntimeFunction{0x1000, 0x1040, s.unwind["f0"]}) {
					t.Errorf("chained %+v", ui.Chained)
				}
			}},
		{"f4", []string{"0x04: ALLOC_SMALL size=8", "0x02: EPILOG"},
			func(t *testing.T, ui *UnwindInfo) {
				if ui.Version != 2 || ui.Codes[1].Value != 4 || ui.Codes[1].OpInfo != 1 {
					t.Errorf("epilog %+v", ui)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ui, err := f.UnwindInfoAt(s.unwind[tc.name])
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range ui.Codes {
				got = append(got, c.String())
			}
			if !reflect.DeepEqual(got, tc.codes) {
				t.Errorf("codes\n got %q\nwant %q", got, tc.codes)
			}
			if tc.check != nil {
				tc.check(t, ui)
			}
		})
	}
	chain, err := f.UnwindChain(s.funcs[1])
	if err != nil || len(chain) != 2 || chain[1].RVA != s.unwind["f0"] {
		t.Errorf("UnwindChain: %v, %v", chain, err)
	}
}

func TestUnwindErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"version 3", []byte{3, 0, 0, 0}, ErrFormat},
		{"codes truncated", []byte{1, 0, 4, 0, 0, 0}, ErrTruncated},
		{"op needs more slots", []byte{1, 0, 1, 0, 0x08, 0x04}, ErrFormat},
		{"alloc large bad info", []byte{1, 0, 2, 0, 0x08, 0x21, 0, 0}, ErrFormat},
		{"unknown op", []byte{1, 0, 1, 0, 0x08, 0x0C, 0, 0}, ErrFormat},
		{"chain truncated", []byte{1 | 4<<3, 0, 0, 0, 1, 2, 3}, ErrTruncated},
		{"handler truncated", []byte{1 | 1<<3, 0, 0, 0, 1}, ErrTruncated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseUnwindInfo(tc.in, 0x500)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestChainLoop(t *testing.T) {
	s := sampleX64()
	// Make f0 chain to f3, which chains to f0.
	rd := &s.pe.secs[1]
	off := s.unwind["f0"] - 0x2000
	rd.data[off] = 1 | byte(UNW_FLAG_CHAININFO)<<3
	rd.data[off+2] = 0 // no codes: the chained entry follows the header
	copy(rd.data[off+4:], []byte{0x40, 0x10, 0, 0, 0x80, 0x10, 0, 0})
	rd.data[off+12] = byte(s.unwind["f3"])
	rd.data[off+13] = byte(s.unwind["f3"] >> 8)
	rd.data[off+14], rd.data[off+15] = 0, 0
	file, _ := s.pe.build()
	f, err := NewFile(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.UnwindChain(s.funcs[1]); !errors.Is(err, ErrFormat) {
		t.Fatalf("loop: err = %v", err)
	}
}

func TestMappedImageHoles(t *testing.T) {
	s := sampleX64()
	_, image := s.pe.build()
	base := uint64(0x7ff600000000)
	// The .pdata page is missing.
	m := &memImage{base: base, b: image, holes: [][2]uint64{{base + 0x3000, base + 0x4000}}}
	f, err := NewImage(m, base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.CodeView(); err != nil {
		t.Errorf("CodeView: %v", err)
	}
	_, err = f.RuntimeFunctions()
	var fe *FormatError
	if !errors.Is(err, ErrNotPresent) || !errors.As(err, &fe) || !fe.Mapped || fe.Offset != 0x3000 {
		t.Errorf("RuntimeFunctions with a missing page: %v", err)
	}
	// No header page at all.
	if _, err := NewImage(&memImage{base: base}, base); !errors.Is(err, ErrNotPE) {
		t.Errorf("empty memory: %v", err)
	}
}

func TestHeaderErrors(t *testing.T) {
	s := sampleX64()
	good, _ := s.pe.build()
	mut := func(f func(b []byte) []byte) []byte { b := bytes.Clone(good); return f(b) }
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrNotPE},
		{"no MZ", mut(func(b []byte) []byte { b[0] = 'X'; return b }), ErrNotPE},
		{"huge lfanew", mut(func(b []byte) []byte { b[0x3F] = 0x7F; return b }), ErrNotPE},
		{"lfanew past end", mut(func(b []byte) []byte { b[0x3D] = 0x7F; return b }), ErrTruncated},
		{"no PE", mut(func(b []byte) []byte { b[0x80] = 'X'; return b }), ErrNotPE},
		{"bad magic", mut(func(b []byte) []byte { b[0x80+24] = 0x99; return b }), ErrFormat},
		{"tiny optional header", mut(func(b []byte) []byte { b[0x80+20] = 1; b[0x80+21] = 0; return b }), ErrFormat},
		{"short optional header", mut(func(b []byte) []byte { b[0x80+20] = 0x40; b[0x80+21] = 0; return b }), ErrFormat},
		{"too many sections", mut(func(b []byte) []byte { b[0x80+6] = 0xFF; b[0x80+7] = 0xFF; return b }), ErrLimit},
		{"truncated sections", good[:0x80+24+240+20], ErrTruncated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewFile(bytes.NewReader(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("%T is not a *FormatError", err)
			}
		})
	}
}

func TestPE32(t *testing.T) {
	rd := &asm{va: 0x2000}
	rd.u32(0)
	rd.u32(0)
	rd.u32(0)
	rd.u32(uint32(DebugTypeCodeView))
	rd.u32(16 + 8)
	rd.u32(0x2000 + 28)
	rd.u32(0)
	rd.u8([]byte("NB10")...)
	rd.u32(0)
	rd.u32(0x3C000000)
	rd.u32(1)
	rd.str("x86.pdb")
	p := tpe{machine: uint16(MachineI386), timestamp: 7, imageBase: 0x400000,
		secs: []tsec{{name: ".rdata", va: 0x2000, data: rd.b, chars: 0x40000040}},
		dirs: map[DirectoryIndex]DataDirectory{DirDebug: {0x2000, 28}}}
	file, _ := p.build()
	f, err := NewFile(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if f.Is64() || f.Machine != MachineI386 || f.OptionalHeader.ImageBase != 0x400000 || f.Base() != 0x400000 {
		t.Errorf("headers: %+v %+v", f.FileHeader, f.OptionalHeader)
	}
	cv, err := f.CodeView()
	if err != nil || cv.Signature != CodeViewNB10 || cv.ID() != "3C0000001" || cv.PDBName() != "x86.pdb" {
		t.Errorf("CodeView %+v, %v", cv, err)
	}
	if _, err := f.RuntimeFunctions(); !errors.Is(err, ErrNotPresent) {
		t.Errorf("x86 RuntimeFunctions: %v", err)
	}
	if _, err := f.Exports(); !errors.Is(err, ErrNotPresent) {
		t.Errorf("Exports: %v", err)
	}
}
