package pdb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/kdtriage/kdtriage/kdump/kdumptest"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdtriage/kdtriage/symbols/cab"
	"github.com/kdtriage/kdtriage/symbols/pe"
)

// corpusDir returns ../shared/corpus relative to the module root, or
// $KDTRIAGE_CORPUS, skipping the test when it is absent.
func corpusDir(t testing.TB) string {
	t.Helper()
	return kdumptest.CorpusDir(t)
}

// corpusPDBs returns every PDB of the corpus: the *.pdb files and the
// compressed *.pd_ ones, unpacked (symbols/cab) into a temporary directory.
func corpusPDBs(t testing.TB) []string {
	dir := filepath.Join(corpusDir(t), "symbols")
	names, err := filepath.Glob(filepath.Join(dir, "*.pdb"))
	if err != nil || len(names) == 0 {
		t.Skipf("no PDBs in the corpus: %v", err)
	}
	packed, _ := filepath.Glob(filepath.Join(dir, "*.pd_"))
	for _, p := range packed {
		names = append(names, unpackCAB(t, p))
	}
	return names
}

// unpackCAB extracts the single member of a compressed symbol file.
func unpackCAB(t testing.TB, path string) string {
	t.Helper()
	rc, err := cab.OpenReader(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer rc.Close()
	if len(rc.Files) != 1 {
		t.Fatalf("%s: %d members, want 1", path, len(rc.Files))
	}
	r, err := rc.Files[0].Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out := filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(path), "_")+"b")
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

var testGUID = GUID{0x78, 0x56, 0x34, 0x12, 0xBC, 0x9A, 0xF0, 0xDE, 1, 2, 3, 4, 5, 6, 7, 8}

func TestGUIDString(t *testing.T) {
	if got, want := testGUID.String(), "{12345678-9ABC-DEF0-0102-030405060708}"; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
	if got, want := testGUID.SymbolKey(0x1A), "123456789ABCDEF001020304050607081A"; got != want {
		t.Errorf("SymbolKey() = %s, want %s", got, want)
	}
}

func synthetic() pdbSpec {
	return pdbSpec{
		age:     3,
		guid:    testGUID,
		machine: uint16(MachineAMD64),
		sections: []Section{
			{Name: ".text", VirtualAddress: 0x1000, VirtualSize: 0x2000},
			{Name: ".data", VirtualAddress: 0x4000, VirtualSize: 0x100},
		},
		publics: []Public{
			{Name: "?Run@Engine@game@@QEAAXXZ", Flags: PublicFunction, Section: 1, Offset: 0x100},
			{Name: "helper", Flags: PublicFunction, Section: 1, Offset: 0x40},
			{Name: "g_state", Section: 2, Offset: 0x10},
			{Name: "asm_stub", Flags: PublicCode, Section: 1, Offset: 0x800},
		},
		procs: []Proc{
			{Kind: SymGProc32, Name: "game::Engine::Run", Section: 1, Offset: 0x100, Length: 0x80},
			{Kind: SymLProc32, Name: "static_fn", Section: 1, Offset: 0x200, Length: 0x20},
			{Kind: SymGProc32ID, Name: "helper", Section: 1, Offset: 0x40, Length: 0x30},
		},
	}
}

func TestSynthetic(t *testing.T) {
	data := synthetic().build()
	f, err := NewFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if f.GUID() != testGUID || f.Age() != 3 || f.Machine() != MachineAMD64 {
		t.Errorf("identity = %v %d %v", f.GUID(), f.Age(), f.Machine())
	}
	pubs, err := f.Publics()
	if err != nil {
		t.Fatal(err)
	}
	if len(pubs) != 4 {
		t.Fatalf("got %d publics, want 4", len(pubs))
	}
	if p := pubs[0]; p.Name != "?Run@Engine@game@@QEAAXXZ" || p.RVA != 0x1100 || !p.HasRVA || p.Flags != PublicFunction {
		t.Errorf("public 0 = %+v", p)
	}
	if p := pubs[2]; p.Name != "g_state" || p.RVA != 0x4010 || p.IsFunction() {
		t.Errorf("public 2 = %+v", p)
	}
	tests := []struct {
		rva  uint32
		name string
		off  uint32
		ok   bool
	}{
		{0x1100, "game::Engine::Run", 0, true},
		{0x117F, "game::Engine::Run", 0x7F, true},
		{0x1180, "", 0, false}, // past Run's end, before static_fn: no public covers it
		{0x1205, "static_fn", 5, true},
		{0x1045, "helper", 5, true},
		{0x1010, "", 0, false}, // before every symbol
		{0x1800, "asm_stub", 0, true},
		{0x2FFF, "asm_stub", 0x17FF, true},
		{0x3000, "", 0, false}, // past .text
		{0x4018, "g_state", 8, true},
	}
	for _, tc := range tests {
		name, off, ok := f.Lookup(tc.rva)
		if name != tc.name || off != tc.off || ok != tc.ok {
			t.Errorf("Lookup(%#x) = %q+%#x %v, want %q+%#x %v", tc.rva, name, off, ok, tc.name, tc.off, tc.ok)
		}
	}
	if err := f.LookupErr(); err != nil {
		t.Errorf("LookupErr = %v", err)
	}
}

func TestOMAP(t *testing.T) {
	s := synthetic()
	// The PDB's own layout: .text at 0x1000 originally; the image moved
	// 0x1000..0x1200 to 0x5000 and dropped the rest.
	s.origSecs = s.sections
	s.sections = []Section{{Name: ".text", VirtualAddress: 0x5000, VirtualSize: 0x200}}
	s.omapFrom = []omapEntry{{0x1000, 0x5000}, {0x1200, 0}}
	data := s.build()
	f, err := NewFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	pubs, err := f.Publics()
	if err != nil {
		t.Fatal(err)
	}
	if p := pubs[0]; !p.HasRVA || p.RVA != 0x5100 {
		t.Errorf("OMAP-mapped public = %+v, want RVA 0x5100", p)
	}
	if p := pubs[3]; p.HasRVA {
		t.Errorf("public in an unmapped range = %+v, want no RVA", p)
	}
	if name, off, ok := f.Lookup(0x5110); !ok || name != "game::Engine::Run" || off != 0x10 {
		t.Errorf("Lookup(0x5110) = %q %#x %v", name, off, ok)
	}
}

func TestErrors(t *testing.T) {
	good := synthetic().build()
	le := binary.LittleEndian
	mod := func(f func(b []byte) []byte) []byte {
		return f(append([]byte(nil), good...))
	}
	tests := []struct {
		name  string
		data  []byte
		check func(error) bool
	}{
		{"empty", nil, func(err error) bool { return errors.Is(err, ErrNotPDB) }},
		{"elf", []byte("\x7fELF\x02\x01\x01" + string(make([]byte, 100))), func(err error) bool { return errors.Is(err, ErrNotPDB) }},
		{"pdb2", append([]byte("Microsoft C/C++ program database 2.00\r\n\x1aJG\x00\x00"), make([]byte, 64)...), func(err error) bool {
			var ue *UnsupportedError
			return errors.Is(err, ErrUnsupported) && errors.As(err, &ue)
		}},
		{"block size", mod(func(b []byte) []byte { le.PutUint32(b[0x20:], 1000); return b }), isFormat},
		{"block map outside", mod(func(b []byte) []byte { le.PutUint32(b[0x34:], 1<<20); return b }), isFormat},
		{"directory too big", mod(func(b []byte) []byte { le.PutUint32(b[0x2C:], 1<<30); return b }), isFormat},
		{"truncated", good[:len(good)-512], isFormat},
		{"superblock only", good[:0x38], isFormat},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewFile(bytes.NewReader(tc.data), int64(len(tc.data)))
			if err == nil || !tc.check(err) {
				t.Errorf("NewFile error = %v (%T)", err, err)
			}
		})
	}
}

func isFormat(err error) bool {
	var fe *FormatError
	return errors.As(err, &fe)
}

func TestUndecorate(t *testing.T) {
	tests := []struct{ in, want, x86 string }{
		{"?SomeCoolFunction@@YAXXZ", "SomeCoolFunction", "SomeCoolFunction"},
		{"?Foo@CTest1@@UBEHXZ", "CTest1::Foo", "CTest1::Foo"},
		{"?Run@Engine@game@@QEAAXXZ", "game::Engine::Run", "game::Engine::Run"},
		{"??0Engine@game@@QEAA@XZ", "game::Engine::Engine", "game::Engine::Engine"},
		{"??1Engine@@QEAA@XZ", "Engine::~Engine", "Engine::~Engine"},
		{"?f@A@1@@YAXXZ", "A::A::f", "A::A::f"}, // back-reference to fragment 1
		{"??$?6U?$char_traits@D@std@@@std@@YAAAV?$basic_ostream@DU?$char_traits@D@std@@@0@AAV10@PBD@Z",
			"??$?6U?$char_traits@D@std@@@std@@YAAAV?$basic_ostream@DU?$char_traits@D@std@@@0@AAV10@PBD@Z",
			"??$?6U?$char_traits@D@std@@@std@@YAAAV?$basic_ostream@DU?$char_traits@D@std@@@0@AAV10@PBD@Z"},
		{"??_GEngine@@UEAAPEAXI@Z", "Engine::`scalar deleting destructor'", "Engine::`scalar deleting destructor'"},
		{"??4Engine@game@@QEAAAEAV01@AEBV01@@Z", "game::Engine::operator=", "game::Engine::operator="},
		{"??2@YAPEAX_K@Z", "operator new", "operator new"},
		{"??_U@YAPAXI@Z", "operator new[]", "operator new[]"},
		{"??BEngine@@QEAA_NXZ", "??BEngine@@QEAA_NXZ", "??BEngine@@QEAA_NXZ"}, // conversion operator: kept
		{"??0@@", "??0@@", "??0@@"},
		{"??1?$unique_ptr@VCTest2@@U?$default_delete@VCTest2@@@std@@@std@@QAE@XZ",
			"std::unique_ptr<CTest2,std::default_delete<CTest2> >::~unique_ptr<CTest2,std::default_delete<CTest2> >",
			"std::unique_ptr<CTest2,std::default_delete<CTest2> >::~unique_ptr<CTest2,std::default_delete<CTest2> >"},
		{"??$forward@AEBQEAD@std@@YAAEBQEADAEBQEAD@Z", "std::forward<char * const &>", "std::forward<char * const &>"},
		{"??$f@W4color@@$0BA@$0?3_N@@YAXXZ", "f<enum color,16,-4,bool>", "f<enum color,16,-4,bool>"},
		{"??$g@PEAPEBD$$QEAH@@YAXXZ", "g<char const * *,int &&>", "g<char const * *,int &&>"},
		{"??$h@V?$v@H@std@@0@@YAXXZ", "h<std::v<int>,std::v<int> >", "h<std::v<int>,std::v<int> >"}, // type back-reference
		{"?CrashFunction@?A0x1b2c3d4e@@YAXXZ", "`anonymous namespace'::CrashFunction", "`anonymous namespace'::CrashFunction"},
		{"??$k@P6AXXZ@@YAXXZ", "??$k@P6AXXZ@@YAXXZ", "??$k@P6AXXZ@@YAXXZ"}, // function pointer argument: kept
		{"?x@?$y@", "?x@?$y@", "?x@?$y@"},
		{"??", "??", "??"},
		{"??_", "??_", "??_"},
		{"?broken", "?broken", "?broken"},
		{"?x@9@@", "?x@9@@", "?x@9@@"},
		{"@__security_check_cookie@4", "__security_check_cookie", "__security_check_cookie"},
		{"_QueryPerformanceCounter@4", "QueryPerformanceCounter", "QueryPerformanceCounter"},
		{"_main", "_main", "main"},
		{"main", "main", "main"},
		{"_", "_", "_"},
		{"", "", ""},
	}
	for _, tc := range tests {
		if got := Undecorate(tc.in); got != tc.want {
			t.Errorf("Undecorate(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := UndecorateX86(tc.in); got != tc.x86 {
			t.Errorf("UndecorateX86(%q) = %q, want %q", tc.in, got, tc.x86)
		}
	}
}

func TestStringers(t *testing.T) {
	tests := []struct{ got, want string }{
		{(PublicFunction | PublicCode).String(), "code | function"},
		{PublicFlags(0).String(), "none"},
		{PublicFlags(0x12).String(), "function | 0x10"},
		{SymPub32.String(), "S_PUB32"},
		{SymKind(0x1234).String(), "SymKind(0x1234)"},
		{MachineI386.String(), "x86"},
		{Machine(0x1234).String(), "Machine(0x1234)"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// TestCompressedPDBMatchesImage: basic32.pd_ unpacks to the PDB whose GUID
// and age basic32.dll's RSDS record names.
func TestCompressedPDBMatchesImage(t *testing.T) {
	dir := filepath.Join(corpusDir(t), "symbols")
	packed := filepath.Join(dir, "basic32.pd_")
	if _, err := os.Stat(packed); err != nil {
		t.Skip(err)
	}
	f, err := Open(unpackCAB(t, packed))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := pe.Open(filepath.Join(dir, "basic32.dll"))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	cv, err := img.CodeView()
	if err != nil {
		t.Fatal(err)
	}
	if GUID(cv.GUID) != f.GUID() || cv.Age != f.Age() {
		t.Errorf("PDB %v age %d, image RSDS %v age %d", f.GUID(), f.Age(), cv.GUID, cv.Age)
	}
	if f.Machine() != MachineI386 {
		t.Errorf("machine %v", f.Machine())
	}
	pubs, err := f.Publics()
	if err != nil || len(pubs) == 0 {
		t.Errorf("publics: %d, %v", len(pubs), err)
	}
}

// TestSharedModuleStreams: thousands of modules naming one large stream are
// cut off by the read budget instead of being parsed thousands of times.
func TestSharedModuleStreams(t *testing.T) {
	s := synthetic()
	for i := range 200 {
		s.procs = append(s.procs, Proc{Kind: SymGProc32, Name: fmt.Sprintf("function_with_a_long_name_%04d", i), Section: 1, Offset: 0x1000 + uint32(i)*8, Length: 8})
	}
	s.modules = 3000
	data := s.build()
	f, err := NewFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Modules()) != 3000 {
		t.Fatalf("%d modules", len(f.Modules()))
	}
	procs, err := f.Procs()
	if !isFormat(err) {
		t.Errorf("Procs error = %v, want a FormatError", err)
	}
	if limit := 2*len(data) + 1<<20; len(procs) == 0 || len(procs)*40 > 4*limit {
		t.Errorf("%d procs read", len(procs))
	}
	if name, _, ok := f.Lookup(0x2008); !ok || name != "function_with_a_long_name_0001" {
		t.Errorf("Lookup = %q %v", name, ok)
	}
}
