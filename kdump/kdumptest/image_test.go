package kdumptest

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestImageReadWrite(t *testing.T) {
	im := NewImage(10)
	if _, err := im.WriteAt([]byte("hello"), 4094); err != nil {
		t.Fatal(err)
	}
	if im.Size() != 4099 || im.StoredBytes() != 2*blockSize {
		t.Errorf("size %d stored %d", im.Size(), im.StoredBytes())
	}
	// The write grew the image.
	if im.Size() < 10 {
		t.Fatal("size shrank")
	}
	im.WriteAt([]byte("x"), 9999)
	if im.Size() != 10000 {
		t.Errorf("size %d, want 10000", im.Size())
	}
	b := make([]byte, 8)
	n, err := im.ReadAt(b, 4092)
	if n != 8 || err != nil || !bytes.Equal(b, []byte("\x00\x00hello\x00")) {
		t.Errorf("ReadAt %q %d %v", b, n, err)
	}
	n, err = im.ReadAt(b, 9996)
	if n != 4 || err != io.EOF || b[3] != 'x' {
		t.Errorf("ReadAt at the end: %d %v %q", n, err, b)
	}
	if n, err := im.ReadAt(b, 10000); n != 0 || err != io.EOF {
		t.Errorf("ReadAt past the end: %d %v", n, err)
	}
	im.Truncate(4096)
	if n, _ := im.ReadAt(b[:2], 4094); n != 2 || string(b[:2]) != "he" {
		t.Errorf("after truncate: %q", b[:2])
	}
	if n, err := im.ReadAt(b, 4096); n != 0 || err != io.EOF {
		t.Errorf("truncated bytes still readable: %d %v", n, err)
	}
	im.WriteAt([]byte("z"), 5000)
	if n, _ := im.ReadAt(b[:1], 4097); n != 1 || b[0] != 0 {
		t.Errorf("bytes cut by Truncate came back: %q", b[:1])
	}
	all, err := im.Bytes()
	if err != nil || len(all) != 5001 || all[5000] != 'z' || string(all[4094:4096]) != "he" {
		t.Errorf("Bytes: %d %v", len(all), err)
	}
}

// TestSparseFile: a 16 GiB dump written to disk takes a few MiB.
func TestSparseFile(t *testing.T) {
	for _, k := range []Kind{Full, BitmapFull} {
		im, facts, err := Build(Spec{Kind: k, MemoryBytes: 16 << 30})
		if err != nil {
			t.Fatal(err)
		}
		if facts.FileSize < 14<<30 || im.StoredBytes() > 4<<20 {
			t.Errorf("%v: file %d bytes, %d stored", k, facts.FileSize, im.StoredBytes())
		}
		path, err := im.WriteTemp(t.TempDir(), "sparse-*.dmp")
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != facts.FileSize {
			t.Errorf("%v: file size %d, want %d", k, st.Size(), facts.FileSize)
		}
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			if used := sys.Blocks * 512; used > 64<<20 {
				t.Errorf("%v: the sparse file uses %d bytes of disk", k, used)
			}
		}
		// The on-disk bytes equal the image's.
		fh, err := os.Open(filepath.Clean(path))
		if err != nil {
			t.Fatal(err)
		}
		a, b := make([]byte, 0x3000), make([]byte, 0x3000)
		for _, off := range []int64{0, facts.FirstPageOffset, facts.FileSize - 0x3000} {
			fh.ReadAt(a, off)
			im.ReadAt(b, off)
			if !bytes.Equal(a, b) {
				t.Errorf("%v: bytes at %#x differ", k, off)
			}
		}
		fh.Close()
	}
}

func TestBuildRejects(t *testing.T) {
	for _, s := range []Spec{
		{Arch: ARM, Kind: Full},
		{Arch: Arch(9)},
		{Kind: Kind(42)},
		{Kind: Full, MemoryBytes: 1 << 20},
		{Kind: Full, MemoryBytes: 16<<20 + 1},
		{Arch: X86, Kind: Full, MemoryBytes: 8 << 30},
		{Processors: 65},
		{Modules: []Module{}},
	} {
		if _, _, err := Build(s); err == nil {
			t.Errorf("Build(%+v) succeeded", s)
		}
	}
}

// TestBuildDeterministic: the same Spec gives the same bytes.
func TestBuildDeterministic(t *testing.T) {
	for _, s := range []Spec{{Kind: Triage}, {Arch: ARM64, Kind: BitmapKernel}, {Arch: X86PAE, Kind: RDMPComplete}} {
		a, _ := MustBuild(s)
		b, _ := MustBuild(s)
		ab, _ := a.Bytes()
		bb, _ := b.Bytes()
		if !bytes.Equal(ab, bb) {
			t.Errorf("%v/%v: two builds differ", s.Arch, s.Kind)
		}
	}
}

// TestDefaultModulesDisjoint: default module images do not overlap.
func TestDefaultModulesDisjoint(t *testing.T) {
	for _, a := range []Arch{AMD64, X86, ARM64} {
		mods := DefaultModules(a)
		for i, m := range mods {
			for _, n := range mods[i+1:] {
				if m.Base < n.Base+uint64(n.Size) && n.Base < m.Base+uint64(m.Size) {
					t.Errorf("%v: %s and %s overlap", a, m.Path, n.Path)
				}
			}
		}
	}
}

func TestBuildFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.dmp")
	facts, err := BuildFile(path, Spec{Arch: X86PAE, Kind: RDMPKernel})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != facts.FileSize || string(b[:8]) != "PAGEDUMP" || le.Uint32(b[0xF88:]) != 8 {
		t.Errorf("file of %d bytes, header %q type %d", len(b), b[:8], le.Uint32(b[0xF88:]))
	}
	if _, err := BuildFile(filepath.Join(t.TempDir(), "no", "such", "dir"), Spec{}); err == nil {
		t.Error("BuildFile into a missing directory succeeded")
	}
}
