package triage

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/kdump/kdumptest"
	"github.com/kdtriage/kdtriage/rules"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// goldenDir is the module's testdata/golden directory.
const goldenDir = "../testdata/golden"

// checkGolden compares got with the golden file name, or rewrites it with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(goldenDir, name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(stable(t, name, got), stable(t, name, want)) {
		t.Errorf("%s differs from the golden file (run go test -update after reviewing):\n--- got ---\n%s", name, got)
	}
}

// stable removes from a golden report what depends on the exact frames the
// stack walker finds (STACK_TEXT, the stack array, frame indexes in the
// explanations), so that walker improvements do not fail these tests while
// every field the analysis decides (bucket, culprit, hash, followup...) is
// still compared exactly. The golden files keep the full text for review.
func stable(t *testing.T, name string, b []byte) []byte {
	t.Helper()
	switch filepath.Ext(name) {
	case ".json":
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		delete(m, "stack")
		delete(m, "why")
		delete(m, "first_third_party_frame")
		if c, ok := m["culprit"].(map[string]any); ok {
			delete(c, "frame")
		}
		if r, ok := m["rules"].(map[string]any); ok {
			delete(r, "fired")
		}
		out, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		return out
	case ".txt":
		var out []string
		inStack := false
		for _, l := range strings.Split(string(b), "\n") {
			switch {
			case strings.HasPrefix(l, "STACK_TEXT:"):
				inStack = true
				continue
			case inStack && l == "":
				inStack = false
			case inStack, strings.HasPrefix(l, "    - "), strings.HasPrefix(l, "  FIRST_THIRD_PARTY_FRAME:"):
				continue
			}
			out = append(out, l)
		}
		return []byte(strings.Join(out, "\n"))
	}
	return b
}

// goldenRules is the fixed rule set of the golden reports.
func goldenRules(t testing.TB) *rules.Set {
	t.Helper()
	s, err := rules.LoadDir(filepath.Join("testdata", "rules"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// synthetic builds a kdumptest dump and analyses it.
func synthetic(t *testing.T, s kdumptest.Spec, opts Options) *Report {
	t.Helper()
	im, _, err := kdumptest.Build(s)
	if err != nil {
		t.Fatal(err)
	}
	f, err := kdump.NewFile(im, im.Size())
	if err != nil {
		t.Fatal(err)
	}
	if opts.Rules == nil {
		opts.Rules = goldenRules(t)
	}
	rep, err := Analyze(context.Background(), f, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// syntheticCases are synthetic dumps whose reports are kept as golden files.
func syntheticCases() []struct {
	name string
	spec kdumptest.Spec
} {
	mods := kdumptest.DefaultModules(kdumptest.AMD64)
	amd := mods[5]
	return []struct {
		name string
		spec kdumptest.Spec
	}{
		{"synthetic-x64-7e", kdumptest.Spec{Arch: kdumptest.AMD64}},
		{"synthetic-x64-d1", kdumptest.Spec{Arch: kdumptest.AMD64, BugCheck: 0xD1, Params: [4]uint64{0xffff8001acdc6010, 2, 0, amd.Base + 0x12d0}}},
		{"synthetic-x64-50-pool", kdumptest.Spec{Arch: kdumptest.AMD64, BugCheck: 0x50, Params: [4]uint64{0xffffe78f90345f71, 0x11, 0xffffe78f90345f71, 2}}},
		{"synthetic-arm64-e2", kdumptest.Spec{Arch: kdumptest.ARM64, BugCheck: 0xE2}},
		{"synthetic-x86-a", kdumptest.Spec{Arch: kdumptest.X86PAE, BugCheck: 0xA, Params: [4]uint64{0x4, 2, 1, 0x82800000 + 0x4321}}},
	}
}

func TestGoldenSynthetic(t *testing.T) {
	var reps []*Report
	for _, c := range syntheticCases() {
		rep := synthetic(t, c.spec, Options{Source: SourceInfo{File: c.name + ".dmp"}, LegacyBucket: true})
		reps = append(reps, rep)
		var text, js bytes.Buffer
		if err := rep.WriteText(&text, TextOptions{Legacy: true}); err != nil {
			t.Fatal(err)
		}
		if err := rep.WriteJSON(&js, true); err != nil {
			t.Fatal(err)
		}
		checkGolden(t, c.name+".txt", text.Bytes())
		checkGolden(t, c.name+".json", js.Bytes())
	}
	for _, v := range []struct {
		name  string
		write func(*bytes.Buffer) error
	}{
		{"synthetic-table.txt", func(b *bytes.Buffer) error { return WriteTable(b, reps) }},
		{"synthetic-table.md", func(b *bytes.Buffer) error { return WriteMarkdown(b, reps) }},
		{"synthetic-table.csv", func(b *bytes.Buffer) error { return WriteCSV(b, reps) }},
		{"synthetic-summary.txt", func(b *bytes.Buffer) error { return WriteSummary(b, "table", Summarize(reps)) }},
	} {
		var b bytes.Buffer
		if err := v.write(&b); err != nil {
			t.Fatal(err)
		}
		checkGolden(t, v.name, b.Bytes())
	}
}

// TestGoldenCorpus keeps the reports of a few real dumps as golden files.
// File names are the corpus base names only (no local paths).
func TestGoldenCorpus(t *testing.T) {
	dir := corpusDir(t)
	set := goldenRules(t)
	var reps []*Report
	for _, row := range readExpected(t, dir) {
		name := filepath.Base(row.file)
		rep := analyzeFile(t, filepath.Join(dir, row.file), Options{Rules: set, Source: SourceInfo{File: name}})
		reps = append(reps, rep)
		switch name {
		case "win10-triage_x64.dmp", "win81-111217-27671-01.dmp", "win10-100623-6156-01.dmp", "win10-102622-12000-01.dmp", "win10-arm64_mem.dmp":
			var text, js bytes.Buffer
			if err := rep.WriteText(&text, TextOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := rep.WriteJSON(&js, true); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, "corpus-"+name+".txt", text.Bytes())
			checkGolden(t, "corpus-"+name+".json", js.Bytes())
		}
	}
	var table, sum bytes.Buffer
	if err := WriteTable(&table, reps); err != nil {
		t.Fatal(err)
	}
	if err := WriteSummary(&sum, "table", Summarize(reps)); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "corpus-kernel-table.txt", table.Bytes())
	checkGolden(t, "corpus-kernel-summary.txt", sum.Bytes())
}

// rulesFromText compiles a rule file given as text.
func rulesFromText(t testing.TB, text string) *rules.Set {
	t.Helper()
	s, err := rules.Parse("test.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
