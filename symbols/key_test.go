package symbols

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
)

func mustGUID(t *testing.T, s string) GUID {
	t.Helper()
	g, err := ParseGUID(s)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestKeys(t *testing.T) {
	tests := []struct {
		name string
		key  Key
		want string
	}{
		// TimeDateStamp %08X, SizeOfImage %x: Microsoft's own example
		// directory for acpi.dbg is 37cdb039 + 62040.
		{"image", ImageKey("amdppm.sys", 0x5f9b9a8e, 0x3b000), "amdppm.sys/5F9B9A8E3b000/amdppm.sys"},
		{"image padding", ImageKey("hal.dll", 0x1234, 0x1000), "hal.dll/000012341000/hal.dll"},
		{"image lowercase size", ImageKey("x.exe", 0xABCDEF01, 0xAB000), "x.exe/ABCDEF01ab000/x.exe"},
		{"image full path", ImageKey(`\SystemRoot\system32\ntoskrnl.exe`, 1, 2), "ntoskrnl.exe/000000012/ntoskrnl.exe"},
		{"pdb", PDBKey("ntkrnlmp.pdb", GUID{0x3844DBB9, 0x2017, 0x4967, [8]byte{0xBE, 0x7A, 0xA4, 0xA2, 0xC2, 0x04, 0x30, 0xFA}}, 2),
			"ntkrnlmp.pdb/3844DBB920174967BE7AA4A2C20430FA2/ntkrnlmp.pdb"},
		{"pdb age hex", PDBKey(`C:\build\out\foo.pdb`, GUID{Data1: 0xa}, 0x1a), "foo.pdb/0000000A0000000000000000000000001A/foo.pdb"},
		{"pdb forward slashes", PDBKey("/src/obj/bar.pdb", GUID{}, 1), "bar.pdb/000000000000000000000000000000001/bar.pdb"},
		{"nb10", NB10Key("old.pdb", 0x3a2b1c, 0xb), "old.pdb/003A2B1CB/old.pdb"},
		{"breakpad pdb", BreakpadKey("test_app.pdb", "5A9832E5287241C1838ED98914E9B7FF1"), "test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym"},
		{"breakpad elf", BreakpadKey("null_read_av", "7b7d1968ff0d47ae4366e9c3a7e1b6750"), "null_read_av/7B7D1968FF0D47AE4366E9C3A7E1B6750/null_read_av.sym"},
		{"breakpad PDB upper", BreakpadKey("KERNEL32.PDB", "AB1"), "KERNEL32.PDB/AB1/KERNEL32.sym"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.key.String(); got != tt.want {
				t.Errorf("key = %s, want %s", got, tt.want)
			}
			if err := tt.key.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
			back, err := ParseKey(tt.want)
			if err != nil || back.String() != tt.want {
				t.Errorf("ParseKey(%s) = %v, %v", tt.want, back, err)
			}
		})
	}
}

func TestCompressedFile(t *testing.T) {
	for in, want := range map[string]string{"ntkrnlmp.pdb": "ntkrnlmp.pd_", "foo.dll": "foo.dl_", "a.sym": "a.sy_"} {
		if got := (Key{File: in}).CompressedFile(); got != want {
			t.Errorf("CompressedFile(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestKeyValidateRejects(t *testing.T) {
	good := PDBKey("a.pdb", GUID{}, 1)
	tests := []struct {
		name string
		key  Key
	}{
		{"dotdot name", Key{Name: "..", ID: good.ID, File: "a.pdb"}},
		{"dotdot file", Key{Name: "a.pdb", ID: good.ID, File: ".."}},
		{"dot", Key{Name: ".", ID: good.ID, File: "a.pdb"}},
		{"slash", Key{Name: "a/../../etc", ID: good.ID, File: "passwd"}},
		{"backslash", Key{Name: `..\..\x`, ID: good.ID, File: "a.pdb"}},
		{"absolute", Key{Name: "/etc", ID: good.ID, File: "passwd"}},
		{"drive", Key{Name: "C:", ID: good.ID, File: "a.pdb"}},
		{"drive relative", Key{Name: "C:a.pdb", ID: good.ID, File: "a.pdb"}},
		{"stream", Key{Name: "a.pdb", ID: good.ID, File: "a.pdb:evil"}},
		{"nul", Key{Name: "a\x00.pdb", ID: good.ID, File: "a.pdb"}},
		{"control", Key{Name: "a\n.pdb", ID: good.ID, File: "a.pdb"}},
		{"empty name", Key{Name: "", ID: good.ID, File: "a.pdb"}},
		{"empty id", Key{Name: "a.pdb", ID: "", File: "a.pdb"}},
		{"dotdot id", Key{Name: "a.pdb", ID: "..", File: "a.pdb"}},
		{"id with slash", Key{Name: "a.pdb", ID: "AB/../CD", File: "a.pdb"}},
		{"dotdot prefix (two-tier escape)", Key{Name: "..secret", ID: good.ID, File: "a.pdb"}},
		{"trailing dot", Key{Name: "a.pdb.", ID: good.ID, File: "a.pdb"}},
		{"long", Key{Name: string(make([]byte, 300)), ID: good.ID, File: "a.pdb"}},
		{"image key with dotdot name", ImageKey("..", 1, 2)},
		{"pdb key with trailing separator", PDBKey(`C:\dir\`, GUID{}, 1)},
		{"device name", ImageKey("nul", 1, 2)},
		{"device name with extension", PDBKey("CON.pdb", GUID{}, 1)},
		{"device file", Key{Name: "a.pdb", ID: good.ID, File: "com1.pdb"}},
		{"device name blank before extension", Key{Name: "LPT9 .sys", ID: good.ID, File: "a.pdb"}},
		{"console input", Key{Name: "conin$", ID: good.ID, File: "a.pdb"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.key.Validate()
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("Validate(%q) = %v, want *KeyError", tt.key.String(), err)
			}
		})
	}
	// Names that merely start like a device are files.
	for _, n := range []string{"console.pdb", "com.pdb", "com10.sys", "nul_.dll", "auxiliary.pdb", "lpt.sys"} {
		if err := PDBKey(n, GUID{}, 1).Validate(); err != nil {
			t.Errorf("%s rejected: %v", n, err)
		}
	}
	for _, s := range []string{"a/b", "a/b/c/d", "../x/y", `a\..\b`} {
		if _, err := ParseKey(s); err == nil {
			t.Errorf("ParseKey(%q) accepted", s)
		}
	}
}

func TestGUID(t *testing.T) {
	raw := []byte{0xB9, 0xDB, 0x44, 0x38, 0x17, 0x20, 0x67, 0x49, 0xBE, 0x7A, 0xA4, 0xA2, 0xC2, 0x04, 0x30, 0xFA}
	g, err := GUIDFromBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := g.String(), "{3844DBB9-2017-4967-BE7A-A4A2C20430FA}"; got != want {
		t.Errorf("String = %s, want %s", got, want)
	}
	if got, want := g.Hex(), "3844DBB920174967BE7AA4A2C20430FA"; got != want {
		t.Errorf("Hex = %s, want %s", got, want)
	}
	if b := g.Bytes(); string(b[:]) != string(raw) {
		t.Errorf("Bytes = %x, want %x", b, raw)
	}
	for _, s := range []string{"{3844dbb9-2017-4967-be7a-a4a2c20430fa}", "3844DBB9-2017-4967-BE7A-A4A2C20430FA", "3844DBB920174967BE7AA4A2C20430FA"} {
		if p := mustGUID(t, s); p != g {
			t.Errorf("ParseGUID(%s) = %v, want %v", s, p, g)
		}
	}
	for _, s := range []string{"", "{}", "3844DBB920174967BE7AA4A2C20430F", "3844DBB9-2017-4967-BE7AA-4A2C20430FA", "zz44DBB920174967BE7AA4A2C20430FA"} {
		if _, err := ParseGUID(s); err == nil {
			t.Errorf("ParseGUID(%q) accepted", s)
		}
	}
	if _, err := GUIDFromBytes(raw[:15]); err == nil {
		t.Error("GUIDFromBytes accepted 15 bytes")
	}
	js, err := json.Marshal(struct{ G GUID }{g})
	if err != nil || string(js) != `{"G":"{3844DBB9-2017-4967-BE7A-A4A2C20430FA}"}` {
		t.Errorf("json = %s, %v", js, err)
	}
	var back struct{ G GUID }
	if err := json.Unmarshal(js, &back); err != nil || back.G != g {
		t.Errorf("json round trip = %v, %v", back.G, err)
	}
}

// FuzzKeyValidate: whatever a dump supplies, a key that passes Validate
// joins to a path inside the store root, in the plain and two-tier layouts.
func FuzzKeyValidate(f *testing.F) {
	f.Add("ntkrnlmp.pdb", "3844DBB920174967BE7AA4A2C20430FA2", "ntkrnlmp.pdb")
	f.Add("..", "X", "y")
	f.Add("a", "..", `..\..\b`)
	f.Add("C:", "1", "x")
	f.Fuzz(func(t *testing.T, name, id, file string) {
		k := Key{Name: name, ID: id, File: file}
		root := "/store/root"
		p, err := storePath(root, k)
		if k.Validate() != nil {
			if err == nil {
				t.Fatalf("storePath accepted invalid key %q", k)
			}
			return
		}
		if err != nil {
			t.Fatalf("valid key %q rejected: %v", k, err)
		}
		for _, q := range []string{p, filepath.Join(root, prefix(k.Name), k.Name, k.ID, k.File)} {
			if !within(root, q) || filepath.Dir(filepath.Dir(filepath.Dir(p))) != root {
				t.Fatalf("key %q leads to %s, outside %s", k, q, root)
			}
		}
	})
}
