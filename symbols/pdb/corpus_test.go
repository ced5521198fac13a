package pdb

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// llvmPublic is one S_PUB32 as llvm-pdbutil prints it.
type llvmPublic struct {
	name    string
	flags   string
	section uint16
	offset  uint32
}

func (p llvmPublic) String() string {
	return fmt.Sprintf("%s [%s] %04d:%d", p.name, p.flags, p.section, p.offset)
}

var (
	llvmRecordRe = regexp.MustCompile("^\\s*\\d+ \\| S_PUB32 \\[size = \\d+\\] `(.*)`$")
	llvmAddrRe   = regexp.MustCompile(`^\s*flags = (.*), addr = (\d+):(\d+)$`)
)

// llvmPublics runs `llvm-pdbutil dump -publics` and parses its records.
func llvmPublics(t *testing.T, tool, path string) ([]llvmPublic, error) {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(tool, "dump", "-publics", path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, stderr.String())
	}
	var res []llvmPublic
	var cur *llvmPublic
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := llvmRecordRe.FindStringSubmatch(line); m != nil {
			res = append(res, llvmPublic{name: m[1]})
			cur = &res[len(res)-1]
			continue
		}
		if m := llvmAddrRe.FindStringSubmatch(line); m != nil && cur != nil {
			sec, _ := strconv.ParseUint(m[2], 10, 16)
			off, _ := strconv.ParseUint(m[3], 10, 32)
			cur.flags, cur.section, cur.offset = m[1], uint16(sec), uint32(off)
			cur = nil
		}
	}
	return res, sc.Err()
}

func findLLVMPDBUtil(t *testing.T) string {
	for _, name := range []string{"llvm-pdbutil", "llvm-pdbutil-19", "llvm-pdbutil-18", "llvm-pdbutil-17", "llvm-pdbutil-16"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("llvm-pdbutil not installed (Debian package llvm)")
	return ""
}

// TestPublicsAgainstLLVM compares every S_PUB32 of every corpus PDB with
// llvm-pdbutil's dump: name, flags, section and offset, record for record.
func TestPublicsAgainstLLVM(t *testing.T) {
	pdbs := corpusPDBs(t)
	tool := findLLVMPDBUtil(t)
	compared := 0
	for _, path := range pdbs {
		t.Run(filepath.Base(path), func(t *testing.T) {
			want, llvmErr := llvmPublics(t, tool, path)
			f, err := Open(path)
			if llvmErr != nil {
				// llvm rejects the file: we must reject it too, with a typed error.
				if err == nil {
					t.Fatalf("llvm-pdbutil failed (%v) but Open succeeded", llvmErr)
				}
				if !typedError(err) {
					t.Fatalf("Open error %v (%T) is not a typed error", err, err)
				}
				t.Logf("both reject: ours: %v; llvm: %v", err, strings.TrimSpace(llvmErr.Error()))
				return
			}
			if err != nil {
				t.Fatalf("Open: %v (llvm-pdbutil reads it)", err)
			}
			defer f.Close()
			pubs, err := f.Publics()
			if err != nil {
				t.Fatalf("Publics: %v", err)
			}
			got := make([]llvmPublic, len(pubs))
			for i, p := range pubs {
				got[i] = llvmPublic{p.Name, p.Flags.String(), p.Section, p.Offset}
			}
			sortPublics(got)
			sortPublics(want)
			if len(got) != len(want) {
				t.Errorf("%d publics, llvm-pdbutil lists %d", len(got), len(want))
			}
			for i := range min(len(got), len(want)) {
				if got[i] != want[i] {
					t.Errorf("public %d: got %v, llvm-pdbutil %v", i, got[i], want[i])
					break
				}
			}
			if len(want) == 0 {
				t.Errorf("llvm-pdbutil lists no publics: the comparison proves nothing")
			}
			compared += len(want)
		})
	}
	t.Logf("compared %d public symbols", compared)
}

func sortPublics(ps []llvmPublic) {
	sort.Slice(ps, func(i, j int) bool { return ps[i].String() < ps[j].String() })
}

func typedError(err error) bool {
	var fe *FormatError
	var ue *UnsupportedError
	return errors.As(err, &fe) || errors.As(err, &ue) || errors.Is(err, ErrNotPDB)
}

var summaryRe = regexp.MustCompile(`(?m)^\s*Age: (\d+)\s*\n\s*GUID: (\{[0-9A-F-]+\})`)

// TestIdentityAgainstLLVM compares GUID and age with llvm-pdbutil's summary.
func TestIdentityAgainstLLVM(t *testing.T) {
	pdbs := corpusPDBs(t)
	tool := findLLVMPDBUtil(t)
	for _, path := range pdbs {
		out, err := exec.Command(tool, "dump", "-summary", path).Output()
		if err != nil {
			continue // rejected files are covered by TestPublicsAgainstLLVM
		}
		m := summaryRe.FindSubmatch(out)
		if m == nil {
			t.Errorf("%s: cannot parse llvm-pdbutil summary", path)
			continue
		}
		f, err := Open(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if got := fmt.Sprint(f.Age()); got != string(m[1]) {
			t.Errorf("%s: age %s, llvm %s", path, got, m[1])
		}
		if got := f.GUID().String(); got != string(m[2]) {
			t.Errorf("%s: GUID %s, llvm %s", path, got, m[2])
		}
		f.Close()
	}
}

// TestCorpusLookup checks that every procedure of every corpus PDB is found
// by Lookup at its start and its last byte, and that public functions
// without a procedure resolve to themselves.
func TestCorpusLookup(t *testing.T) {
	for _, path := range corpusPDBs(t) {
		f, err := Open(path)
		if err != nil {
			if !typedError(err) {
				t.Errorf("%s: untyped error %v", path, err)
			}
			continue
		}
		procs, err := f.Procs()
		if err != nil {
			t.Errorf("%s: Procs: %v", path, err)
		}
		starts := map[uint32]bool{}
		n := 0
		for _, p := range procs {
			if !p.HasRVA || p.Length == 0 {
				continue
			}
			starts[p.RVA] = true
			for _, off := range []uint32{0, p.Length - 1} {
				name, got, ok := f.Lookup(p.RVA + off)
				// Identical-code folding can give several procs one address:
				// accept any proc name at that start.
				if !ok || got != off {
					t.Errorf("%s: Lookup(%#x) = %q+%#x %v, want %s+%#x", filepath.Base(path), p.RVA+off, name, got, ok, p.Name, off)
				}
			}
			n++
		}
		pubs, err := f.Publics()
		if err != nil {
			t.Errorf("%s: Publics: %v", path, err)
		}
		for _, p := range pubs {
			if !p.HasRVA || starts[p.RVA] || !p.IsFunction() {
				continue
			}
			name, off, ok := f.Lookup(p.RVA)
			if !ok || off != 0 {
				t.Errorf("%s: Lookup(%#x) = %q+%#x %v, want public %s", filepath.Base(path), p.RVA, name, off, ok, p.Name)
			}
		}
		t.Logf("%s: %d procs, %d publics", filepath.Base(path), n, len(pubs))
		f.Close()
	}
}

// TestHostileCorpusFiles opens the fuzzed and minimal PDBs: each must give a
// result or a typed error, never a panic.
func TestHostileCorpusFiles(t *testing.T) {
	dir := filepath.Join(corpusDir(t), "symbols")
	for _, name := range []string{"fuzzed.pdb", "minimal.pdb"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Skipf("%s: %v", name, err)
		}
		f, err := NewFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !typedError(err) {
				t.Errorf("%s: untyped error %v", name, err)
			}
			continue
		}
		if _, err := f.Publics(); err != nil && !typedError(err) {
			t.Errorf("%s: Publics: untyped error %v", name, err)
		}
		f.Lookup(0x1000)
	}
}
