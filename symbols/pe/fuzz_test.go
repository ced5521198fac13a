package pe

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// exercise runs every reader of f, ignoring errors: fuzzing looks for
// panics, hangs and runaway allocations.
func exercise(f *File) {
	_, _ = f.CodeView()
	_, _ = f.Exports()
	if fs, err := f.RuntimeFunctions(); err == nil {
		for i, rf := range fs {
			if i > 256 {
				break
			}
			_, _ = f.UnwindChain(rf)
			_, _, _ = f.LookupFunction(rf.Begin + 1)
		}
	}
	if fs, err := f.ARM64Functions(); err == nil {
		for i, af := range fs {
			if i > 256 {
				break
			}
			if x, err := f.ARM64XData(af); err == nil {
				_, _ = DecodeARM64Codes(x.Codes)
			}
			_, _, _, _ = f.LookupARM64Function(af.Begin)
		}
	}
}

func FuzzNewFile(f *testing.F) {
	s := sampleX64()
	file, _ := s.pe.build()
	f.Add(file)
	f.Add(sampleARM64().buildFile())
	seeds, _ := filepath.Glob(filepath.Join("testdata", "fuzz-seeds", "*"))
	drivers, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "drivers", "*.sys"))
	for _, p := range append(seeds, drivers...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pf, err := NewFile(bytes.NewReader(b))
		if err != nil {
			return
		}
		exercise(pf)
		// The same bytes as a mapped image.
		base := uint64(0x10000)
		if img, err := NewImage(&memImage{base: base, b: b}, base); err == nil {
			exercise(img)
		}
	})
}

func FuzzParseUnwindInfo(f *testing.F) {
	f.Add([]byte{1, 0x0C, 4, 0x25, 0x0C, 0x03, 0x08, 0x42, 0x02, 0x30, 0x01, 0x50})
	f.Add([]byte{1 | 4<<3, 4, 2, 0, 4, 0x74, 4, 0, 0, 0x10, 0, 0, 0x40, 0x10, 0, 0, 0, 0x20, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ui, err := ParseUnwindInfo(b, 0x1000)
		if err != nil {
			return
		}
		slots := 0
		for _, c := range ui.Codes {
			slots += c.Slots
			_ = c.String()
		}
		if slots != int(ui.CountOfCodes) {
			t.Fatalf("codes use %d slots, CountOfCodes %d", slots, ui.CountOfCodes)
		}
	})
}

func FuzzDecodeARM64Codes(f *testing.F) {
	f.Add([]byte{0x81, 0xE1, 0xE4})
	f.Add([]byte{0xE0, 0x01, 0x02, 0x03, 0xC8, 0x01, 0xE6, 0xE5})
	f.Fuzz(func(t *testing.T, b []byte) {
		codes, _ := DecodeARM64Codes(b)
		n := 0
		for _, c := range codes {
			if c.Len <= 0 {
				t.Fatalf("code %+v has no length", c)
			}
			n += c.Len
		}
		if n > len(b) {
			t.Fatalf("codes span %d bytes of %d", n, len(b))
		}
	})
}
