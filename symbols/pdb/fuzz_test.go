package pdb

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzNewFile feeds arbitrary bytes to NewFile and, when that succeeds, to
// every symbol reader. Seeds: the synthetic PDBs and the corpus PDBs
// (minimal.pdb, fuzzed.pdb and the MSVC-built ones) when present, plus
// regression inputs from testdata/fuzz.
func FuzzNewFile(f *testing.F) {
	f.Add(synthetic().build())
	s := synthetic()
	s.origSecs = s.sections
	s.omapFrom = []omapEntry{{0x1000, 0x5000}, {0x1200, 0}}
	f.Add(s.build())
	dir := os.Getenv("KDTRIAGE_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "corpus")
	}
	names, _ := filepath.Glob(filepath.Join(dir, "symbols", "*.pdb"))
	for _, n := range names {
		if data, err := os.ReadFile(n); err == nil && len(data) <= 400<<10 {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pf, err := NewFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !typedError(err) {
				t.Fatalf("untyped error %v (%T)", err, err)
			}
			return
		}
		pubs, _ := pf.Publics()
		for _, p := range pubs {
			pf.Lookup(p.RVA)
			Undecorate(p.Name)
		}
		pf.Procs()
		if es, _ := pf.Lines(); len(es) > 0 {
			pf.LineAt(es[0].RVA)
		}
		pf.LineAt(0x1000)
		pf.Lookup(0)
		pf.Lookup(0xFFFFFFFF)
	})
}

// FuzzUndecorate runs the MSVC name decoder on arbitrary names. Seeds:
// decorated names of the synthetic PDB and of the corpus PDBs.
func FuzzUndecorate(f *testing.F) {
	for _, s := range []string{"?Run@Engine@game@@QEAAXXZ", "??1?$unique_ptr@VCTest2@@U?$default_delete@VCTest2@@@std@@@std@@QAE@XZ",
		"??$forward@AEBQEAD@std@@YAAEBQEADAEBQEAD@Z", "??$f@W4color@@$0BA@$0?3_N@@YAXXZ", "?CrashFunction@?A0x1b2c3d4e@@YAXXZ",
		"??_GEngine@@UEAAPEAXI@Z", "_f@12", "@g@8"} {
		f.Add(s)
	}
	dir := os.Getenv("KDTRIAGE_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "corpus")
	}
	if pf, err := Open(filepath.Join(dir, "symbols", "exceptions-test.pdb")); err == nil {
		pubs, _ := pf.Publics()
		for i, p := range pubs {
			if i%8 == 0 {
				f.Add(p.Name)
			}
		}
		pf.Close()
	}
	f.Fuzz(func(t *testing.T, name string) {
		u := Undecorate(name)
		if name != "" && u == "" {
			t.Fatalf("Undecorate(%q) is empty", name)
		}
		UndecorateX86(name)
	})
}
