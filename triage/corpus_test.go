package triage

import (
	"bufio"
	"context"
	"github.com/kdtriage/kdtriage/kdump/kdumptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/rules"
)

// corpusDir returns the shared corpus directory or skips the test.
func corpusDir(t testing.TB) string {
	t.Helper()
	return kdumptest.CorpusDir(t)
}

// expectedRow is one kernel row of EXPECTED.tsv.
type expectedRow struct {
	file, bugcheck, ipParam, ipModule string
}

func readExpected(t testing.TB, dir string) []expectedRow {
	t.Helper()
	fh, err := os.Open(filepath.Join(dir, "EXPECTED.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var rows []expectedRow
	sc := bufio.NewScanner(fh)
	var cols map[string]int
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if cols == nil {
			cols = map[string]int{}
			for i, c := range f {
				cols[c] = i
			}
			continue
		}
		get := func(k string) string {
			if i, ok := cols[k]; ok && i < len(f) {
				return f[i]
			}
			return ""
		}
		if !strings.HasPrefix(get("file"), "kernel/") {
			continue
		}
		rows = append(rows, expectedRow{file: get("file"), bugcheck: get("bugcheck"), ipParam: get("ip_param"), ipModule: get("ip_module")})
	}
	if len(rows) == 0 {
		t.Fatal("EXPECTED.tsv has no kernel rows")
	}
	return rows
}

func analyzeFile(t testing.TB, path string, opts Options) *Report {
	t.Helper()
	f, err := kdump.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	rep, err := Analyze(context.Background(), f, opts)
	if err != nil {
		t.Fatalf("Analyze(%s): %v", path, err)
	}
	return rep
}

func defaultRules(t testing.TB) *rules.Set {
	t.Helper()
	s, err := rules.Default()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
