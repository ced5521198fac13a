package rules

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var markerRE = regexp.MustCompile(`# ERROR: (.*)$`)

// plantedErrors reads the "# ERROR: text" markers of a test file: line ->
// expected message fragment.
func plantedErrors(t *testing.T, path string) map[int]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{}
	for i, l := range strings.Split(string(data), "\n") {
		if m := markerRE.FindStringSubmatch(l); m != nil {
			want[i+1] = strings.TrimSpace(m[1])
		}
	}
	return want
}

func TestLintFindsEveryPlantedError(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want := plantedErrors(t, f)
			if len(want) == 0 {
				t.Fatal("file plants no errors")
			}
			_, err := LoadFiles(f)
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("LoadFiles: want ErrorList, got %v", err)
			}
			got := map[int][]string{}
			for _, e := range list {
				if e.File != f {
					t.Errorf("error names file %q, want %q", e.File, f)
				}
				if e.Line <= 0 || e.Column <= 0 {
					t.Errorf("error without position: %v", e)
				}
				if !strings.HasPrefix(e.Error(), f+":") {
					t.Errorf("error text %q does not start with file:line:column", e.Error())
				}
				got[e.Line] = append(got[e.Line], e.Msg)
			}
			var lines []int
			for l := range want {
				lines = append(lines, l)
			}
			sort.Ints(lines)
			for _, l := range lines {
				found := false
				for _, m := range got[l] {
					if strings.Contains(m, want[l]) {
						found = true
					}
				}
				if !found {
					t.Errorf("line %d: want an error containing %q, got %q", l, want[l], got[l])
				}
			}
			for l, ms := range got {
				if _, ok := want[l]; !ok {
					t.Errorf("line %d: unexpected errors %q", l, ms)
				}
			}
		})
	}
}

func TestErrorColumns(t *testing.T) {
	src := "rules:\n  - id: a\n    when:\n      code: 0xQ\n    then:\n      tags: [x]\n"
	_, err := Parse("f.yaml", []byte(src))
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 1 {
		t.Fatalf("want one error, got %v", err)
	}
	if got := list[0].Error(); got != `f.yaml:4:13: bad hex number "0xQ"` {
		t.Errorf("got %q", got)
	}
}

func TestGoodFilesLoadClean(t *testing.T) {
	for _, dir := range []string{"testdata/good", "../configs/rules"} {
		s, err := LoadDir(dir)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if s.Len() == 0 {
			t.Fatalf("%s: no rules loaded", dir)
		}
	}
	d, err := Default()
	if err != nil {
		t.Fatalf("Default: %v", err)
	}
	if d.Len() < 40 {
		t.Fatalf("default set has only %d rules", d.Len())
	}
}
