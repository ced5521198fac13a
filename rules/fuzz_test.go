package rules

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the rule-file loader: it must never
// panic, every error must carry the file name, and whatever loads must match
// and explain without panicking.
func FuzzParse(f *testing.F) {
	for _, pat := range []string{"testdata/good/*.yaml", "testdata/bad/*.yaml", "default/*.yaml", "../configs/rules/*.yaml", "testdata/fuzz-seeds/*"} {
		files, _ := filepath.Glob(pat)
		for _, p := range files {
			if data, err := os.ReadFile(p); err == nil {
				f.Add(data)
			}
		}
	}
	f.Add([]byte("owners: {a: b}\n"))
	f.Add([]byte("rules: [{id: x, when: {code: 0x7e}, then: {tags: [a]}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.yaml", data)
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error is not a non-empty ErrorList: %v", err)
			}
			for _, e := range list {
				if !strings.HasPrefix(e.Error(), "fuzz.yaml") {
					t.Fatalf("error without file name: %q", e.Error())
				}
			}
			return
		}
		in := Input{Code: 0x7E, Kind: KindKernel, Machine: "x64", OSBuild: 19041,
			Modules: []Module{{Name: "a", Image: "a.sys", Timestamp: 1, Version: "1.2.3.4"}},
			Frames:  stack("nt!KeBugCheckEx", "a!b", "x!y", "!")}
		res := s.Match(in)
		if res.Blame < -1 || res.Blame >= len(in.Frames) {
			t.Fatalf("blame %d", res.Blame)
		}
		_ = s.Explain(in, frame("a!b")).String()
		if len(s.Hash()) != 64 {
			t.Fatalf("hash %q", s.Hash())
		}
	})
}

// FuzzImportTriageINI: the importer must not panic, and what it produces
// without errors must load.
func FuzzImportTriageINI(f *testing.F) {
	if data, err := os.ReadFile("testdata/sample-triage.ini"); err == nil {
		f.Add(data)
	}
	f.Add([]byte("a*b!c*d=x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, errs := ImportTriageINI("f.ini", strings.NewReader(string(data)))
		if len(errs) > 0 {
			return
		}
		if _, err := Parse("imported.yaml", out); err != nil {
			t.Fatalf("import output does not load: %v\ninput %q\noutput:\n%s", err, data, out)
		}
	})
}
