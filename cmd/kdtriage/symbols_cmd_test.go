package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// runSymbolsCmd runs one of the symbols subcommands on its own (the lead
// wires them into the tree) and returns stdout and the error.
func runSymbolsCmd(t *testing.T, mk func(*app) *cobra.Command, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	a := newApp(bytes.NewReader(nil), &out, &errb)
	cmd := mk(a)
	cmd.SetArgs(args)
	cmd.SetOut(&errb)
	cmd.SetErr(&errb)
	err := cmd.Execute()
	return out.String(), err
}

type publicOut struct {
	Name    string  `json:"name"`
	Section uint16  `json:"section"`
	Offset  uint32  `json:"offset"`
	RVA     *string `json:"rva"`
}

func TestSymbolsPublicsJSON(t *testing.T) {
	path := filepath.Join(corpusDir(t), "symbols", "SimplePDB.pdb")
	out, err := runSymbolsCmd(t, (*app).symbolsPublicsCommand, "--format", "json", path)
	if err != nil {
		t.Fatal(err)
	}
	var pubs []publicOut
	if err := json.Unmarshal([]byte(out), &pubs); err != nil {
		t.Fatalf("not one JSON array: %v\n%s", err, out)
	}
	if len(pubs) != 106 {
		t.Errorf("%d publics, want 106", len(pubs))
	}
	// Keys exactly name, section, offset, rva.
	var raw []map[string]any
	json.Unmarshal([]byte(out), &raw)
	if len(raw) == 0 || len(raw[0]) != 4 {
		t.Errorf("object keys: %v", raw[0])
	}
	want := map[string]string{ // llvm-pdbutil: _main 0001:0016, ?SomeCoolFunction@@YAXXZ 0001:0000
		"_main":                    "0x1010",
		"?SomeCoolFunction@@YAXXZ": "0x1000",
		"___security_cookie":       "0x3000",
	}
	for _, p := range pubs {
		if w, ok := want[p.Name]; ok {
			if p.RVA == nil || *p.RVA != w {
				t.Errorf("%s: rva %v, want %s", p.Name, p.RVA, w)
			}
			delete(want, p.Name)
		}
	}
	if len(want) != 0 {
		t.Errorf("missing publics %v", want)
	}

	// --undecorate changes names only.
	out2, err := runSymbolsCmd(t, (*app).symbolsPublicsCommand, "--format", "json", "--undecorate", path)
	if err != nil {
		t.Fatal(err)
	}
	var und []publicOut
	if err := json.Unmarshal([]byte(out2), &und); err != nil || len(und) != len(pubs) {
		t.Fatalf("undecorated: %v, %d entries", err, len(und))
	}
	names := map[string]bool{}
	for i, p := range und {
		names[p.Name] = true
		if p.Section != pubs[i].Section || p.Offset != pubs[i].Offset {
			t.Errorf("entry %d moved: %+v vs %+v", i, p, pubs[i])
		}
	}
	for _, n := range []string{"SomeCoolFunction", "main", "__security_check_cookie"} {
		if !names[n] {
			t.Errorf("undecorated names lack %q", n)
		}
	}
}

// TestSymbolsPublicsLLVM checks the JSON against llvm-pdbutil for every
// corpus PDB it can read.
func TestSymbolsPublicsLLVM(t *testing.T) {
	tool, err := exec.LookPath("llvm-pdbutil")
	if err != nil {
		t.Skip("llvm-pdbutil not installed (Debian package llvm)")
	}
	paths, _ := filepath.Glob(filepath.Join(corpusDir(t), "symbols", "*.pdb"))
	for _, path := range paths {
		llvm, err := exec.Command(tool, "dump", "-publics", path).Output()
		if err != nil {
			continue
		}
		out, err := runSymbolsCmd(t, (*app).symbolsPublicsCommand, "--format", "json", path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		var pubs []publicOut
		if err := json.Unmarshal([]byte(out), &pubs); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if n := strings.Count(string(llvm), "| S_PUB32 "); n != len(pubs) {
			t.Errorf("%s: %d publics, llvm-pdbutil %d", filepath.Base(path), len(pubs), n)
		}
		for _, p := range pubs {
			if !strings.Contains(string(llvm), "`"+p.Name+"`") {
				t.Errorf("%s: %q not in llvm-pdbutil's list", filepath.Base(path), p.Name)
				break
			}
		}
	}
}

func TestSymbolsPublicsText(t *testing.T) {
	path := filepath.Join(corpusDir(t), "symbols", "minimal.pdb")
	out, err := runSymbolsCmd(t, (*app).symbolsPublicsCommand, path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines:\n%s", len(lines), out)
	}
	if !strings.Contains(out, "0001:00000018  0x00001018  function          _main") {
		t.Errorf("no _main line:\n%s", out)
	}
}

func TestSymbolsPublicsErrors(t *testing.T) {
	dir := corpusDir(t)
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"fuzzed", []string{filepath.Join(dir, "symbols", "fuzzed.pdb")}, exitBadDump},
		{"not a pdb", []string{filepath.Join(dir, "symbols", "SimplePDB.exe")}, exitBadDump},
		{"missing", []string{filepath.Join(t.TempDir(), "none.pdb")}, exitBadDump},
		{"bad format", []string{"--format", "xml", filepath.Join(dir, "symbols", "minimal.pdb")}, exitFailure},
		{"no args", nil, exitFailure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runSymbolsCmd(t, (*app).symbolsPublicsCommand, tc.args...)
			if err == nil {
				t.Fatal("no error")
			}
			code := exitFailure
			var ee *exitError
			if errors.As(err, &ee) {
				code = ee.code
			}
			if code != tc.code {
				t.Errorf("exit code %d (%v), want %d", code, err, tc.code)
			}
		})
	}
}

func TestSymbolsResolvePDB(t *testing.T) {
	dir := filepath.Join(corpusDir(t), "symbols")
	out, err := runSymbolsCmd(t, (*app).symbolsResolveCommand, "--pdb", filepath.Join(dir, "SimplePDB.pdb"), "0x1012", "1000", "10")
	if err != nil {
		t.Fatal(err)
	}
	// Lines from llvm-pdbutil dump -l: main's 0001:0010 is line 10,
	// SomeCoolFunction's 0001:0000 line 5.
	want := "0x1012\tSimplePDB!main+0x2 (e:\\msvc\\simplepdb\\simplepdb\\main.cpp:10)\n" +
		"1000\tSimplePDB!SomeCoolFunction (e:\\msvc\\simplepdb\\simplepdb\\main.cpp:5)\n" +
		"10\tSimplePDB+0x10\n"
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	// With the image: the module is named after it and --base works.
	out, err = runSymbolsCmd(t, (*app).symbolsResolveCommand, "--image", filepath.Join(dir, "SimplePDB.exe"),
		"--pdb", filepath.Join(dir, "SimplePDB.pdb"), "--base", "0x400000", "--format", "json", "0x401012")
	if err != nil {
		t.Fatal(err)
	}
	var res []map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res) != 1 {
		t.Fatalf("%v: %s", err, out)
	}
	if res[0]["symbol"] != "SimplePDB!main+0x2" || res[0]["address"] != "0x401012" || res[0]["source"] != "pdb" {
		t.Errorf("json: %v", res[0])
	}
}

func TestSymbolsResolveBreakpad(t *testing.T) {
	dir := filepath.Join(corpusDir(t), "symbols", "breakpad")
	sym := filepath.Join(dir, "test_app.pdb", "5A9832E5287241C1838ED98914E9B7FF1", "test_app.sym")
	if _, err := os.Stat(sym); err != nil {
		t.Skip(err)
	}
	out, err := runSymbolsCmd(t, (*app).symbolsResolveCommand, "--sym", sym, "--module", "test_app.exe", "--base", "400000", "0x40429e", "0x4041ff")
	if err != nil {
		t.Fatal(err)
	}
	want := "0x40429e\ttest_app!`anonymous namespace'::CrashFunction+0xe (c:\\test_app.cc:58)\n" +
		"0x4041ff\ttest_app!main+0x4f (c:\\test_app.cc:65)\n"
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	k32 := filepath.Join(dir, "kernel32.pdb", "BCE8785C57B44245A669896B6A19B9542", "kernel32.sym")
	out, err = runSymbolsCmd(t, (*app).symbolsResolveCommand, "--sym", k32, "16fd7")
	if err != nil {
		t.Fatal(err)
	}
	if out != "16fd7\tkernel32!BaseProcessStart+0x23\n" {
		t.Errorf("kernel32: %q", out)
	}
}

func TestSymbolsResolveErrors(t *testing.T) {
	dir := filepath.Join(corpusDir(t), "symbols")
	tests := [][]string{
		{"0x10"}, // no symbols given
		{"--pdb", filepath.Join(dir, "SimplePDB.pdb"), "xyz"},                      // bad address
		{"--pdb", filepath.Join(dir, "SimplePDB.pdb"), "--base", "0x1000", "0x10"}, // below base
		{"--pdb", filepath.Join(dir, "fuzzed.pdb"), "0x10"},                        // corrupt PDB
		{"--sym", filepath.Join(dir, "SimplePDB.pdb"), "0x10"},                     // not a .sym
	}
	for _, args := range tests {
		if out, err := runSymbolsCmd(t, (*app).symbolsResolveCommand, args...); err == nil {
			t.Errorf("%v: no error, output %q", args, out)
		}
	}
}
