package minidump

import (
	"errors"
	"github.com/kdtriage/kdtriage/kdump/kdumptest"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// corpusDir returns the shared corpus directory or skips the test.
func corpusDir(t testing.TB) string {
	t.Helper()
	return kdumptest.CorpusDir(t)
}

func corpusFiles(t testing.TB, sub string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(corpusDir(t), sub, "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) == 0 {
		t.Skipf("no files in corpus %s/", sub)
	}
	return m
}

// expectedStreams reads the "streams" column of EXPECTED.tsv for MDMP rows.
func expectedStreams(t testing.TB) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(corpusDir(t), "EXPECTED.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	cols := strings.Split(lines[0], "\t")
	idx := map[string]int{}
	for i, c := range cols {
		idx[c] = i
	}
	out := map[string]string{}
	for _, l := range lines[1:] {
		f := strings.Split(l, "\t")
		if len(f) == len(cols) && f[idx["format"]] == "mdmp" {
			out[f[idx["file"]]] = f[idx["streams"]]
		}
	}
	return out
}

func TestCorpusUser(t *testing.T) {
	exp := expectedStreams(t)
	for _, path := range corpusFiles(t, "user") {
		name := "user/" + filepath.Base(path)
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := Open(path)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer f.Close()
			if want, ok := exp[name]; ok {
				if got := strconv.Itoa(int(f.Header().NumberOfStreams)); got != want {
					t.Errorf("NumberOfStreams = %s, EXPECTED.tsv says %s", got, want)
				}
			} else {
				t.Errorf("%s not in EXPECTED.tsv", name)
			}
			if len(f.Problems()) > 0 {
				t.Errorf("problems: %v", f.Problems())
			}
			// Every stream this package parses must parse.
			for _, d := range f.Directory() {
				if s := f.StreamSummary(d); strings.HasPrefix(s, "error:") {
					t.Errorf("stream %d %v: %s", d.Index, d.Type, s)
				}
			}
			ths, err := f.Threads()
			if err != nil {
				t.Fatalf("Threads: %v", err)
			}
			if len(ths) == 0 {
				t.Errorf("no threads")
			}
			mods, err := f.Modules()
			if err != nil {
				t.Fatalf("Modules: %v", err)
			}
			if len(mods) == 0 {
				t.Errorf("no modules")
			}
			for i := range mods {
				if mods[i].Name == "" {
					t.Errorf("module %d at %#x has no name (%v)", i, mods[i].Base, mods[i].Problems)
				}
			}
			si, err := f.SystemInfo()
			if err != nil {
				t.Fatalf("SystemInfo: %v", err)
			}
			mem, err := f.Memory()
			if err != nil {
				t.Fatalf("Memory: %v", err)
			}
			if len(mem.Problems) > 0 {
				t.Errorf("memory problems: %v", mem.Problems)
			}
			// Each thread's stack is readable at its start address (when the
			// writer stored it).
			for _, th := range ths {
				if th.Stack.DataSize == 0 {
					continue
				}
				want := make([]byte, th.Stack.DataSize)
				if _, err := f.r.ReadAt(want, int64(th.Stack.Rva)); err != nil {
					t.Fatalf("thread %#x stack: %v", th.ID, err)
				}
				got := make([]byte, len(want))
				if _, err := mem.ReadVirtual(got, th.Stack.Start); err != nil {
					t.Errorf("thread %#x: reading stack at %#x: %v", th.ID, th.Stack.Start, err)
				} else if string(got) != string(want) {
					t.Errorf("thread %#x: stack bytes differ from the thread's descriptor", th.ID)
				}
				ctx, err := f.ContextBytes(th.Context)
				if err != nil {
					t.Errorf("thread %#x context: %v", th.ID, err)
				} else if len(ctx) < 0xCC {
					t.Errorf("thread %#x: context of %d bytes (%v)", th.ID, len(ctx), si.ProcessorArchitecture)
				}
			}
			if err := f.WriteListing(io.Discard); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCorpusMalformed(t *testing.T) {
	for _, path := range corpusFiles(t, "malformed") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := Open(path)
			if err != nil {
				var fe *FormatError
				if !errors.As(err, &fe) {
					t.Fatalf("Open: untyped error %T %v", err, err)
				}
				t.Logf("Open: %v", err)
				return
			}
			defer f.Close()
			// Opened: a partial result. Something must be reported missing.
			var errs []error
			errs = append(errs, f.Problems()...)
			for _, d := range f.Directory() {
				if s := f.StreamSummary(d); strings.HasPrefix(s, "error:") {
					errs = append(errs, errors.New(s))
				}
			}
			if mem, err := f.Memory(); err != nil {
				errs = append(errs, err)
			} else {
				errs = append(errs, mem.Problems...)
			}
			if len(errs) == 0 {
				t.Errorf("malformed file opened and parsed with no problem reported")
			}
			for _, e := range errs {
				t.Logf("reported: %v", e)
			}
			if err := f.WriteListing(io.Discard); err != nil {
				t.Fatal(err)
			}
		})
	}
}
