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

var (
	llvmBlockRe = regexp.MustCompile(`^\s+(\d{4}):([0-9A-F]{8})-([0-9A-F]{8}), line/addr entries = \d+`)
	llvmPairRe  = regexp.MustCompile(`(\S+) ([0-9A-F]{8})`)
)

// llvmLines runs `llvm-pdbutil dump -l` and returns "module|file|sec:off|line"
// for every entry with a real line number.
func llvmLines(tool, path string) (map[string]int, error) {
	out, err := exec.Command(tool, "dump", "-l", path).Output()
	if err != nil {
		return nil, err
	}
	res := map[string]int{}
	mod, file, sec := -1, "", 0
	inBlock := false
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "Mod "):
			n, _ := strconv.Atoi(strings.TrimSpace(line[4:8]))
			mod, inBlock = n, false
		case llvmBlockRe.MatchString(line):
			m := llvmBlockRe.FindStringSubmatch(line)
			sec, _ = strconv.Atoi(m[1])
			inBlock = true
		case strings.TrimSpace(line) == "":
			inBlock = false
		case inBlock:
			for _, p := range llvmPairRe.FindAllStringSubmatch(line, -1) {
				ln, err := strconv.ParseUint(p[1], 10, 32)
				if err != nil {
					continue // ASI and other hidden-line markers
				}
				off, _ := strconv.ParseUint(p[2], 16, 32)
				res[fmt.Sprintf("%d|%s|%d:%d|%d", mod, file, sec, off, ln)]++
			}
		case mod >= 0 && !strings.HasPrefix(line, " "):
			file = line
			if i := strings.LastIndex(file, " ("); i >= 0 {
				file = file[:i]
			}
		}
	}
	return res, nil
}

// TestLinesAgainstLLVM compares every line entry of every corpus PDB with
// llvm-pdbutil's dump.
func TestLinesAgainstLLVM(t *testing.T) {
	pdbs := corpusPDBs(t)
	tool := findLLVMPDBUtil(t)
	total := 0
	for _, path := range pdbs {
		want, err := llvmLines(tool, path)
		if err != nil {
			continue
		}
		f, err := Open(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		es, err := f.Lines()
		f.Close()
		if err != nil {
			t.Errorf("%s: Lines: %v", path, err)
		}
		got := map[string]int{}
		for _, e := range es {
			got[fmt.Sprintf("%d|%s|%d:%d|%d", e.Module, e.File, e.Section, e.Offset, e.Line)]++
		}
		n := 0
		for k, c := range want {
			if got[k] != c {
				if n < 5 {
					t.Errorf("%s: entry %s: %d here, %d in llvm-pdbutil", filepath.Base(path), k, got[k], c)
				}
				n++
			}
		}
		for k, c := range got {
			if want[k] != c && n < 10 {
				t.Errorf("%s: extra entry %s (%d)", filepath.Base(path), k, c)
				n++
			}
		}
		total += len(want)
	}
	if total == 0 {
		t.Error("llvm-pdbutil listed no lines")
	}
	t.Logf("compared %d line entries", total)
}

// TestLineAt checks positions read off llvm-pdbutil's line dump of
// SimplePDB.pdb (SomeCoolFunction: 4 and 5 at 0001:0000; main: 9 and 10 at 0001:0010, 11 at 0x15, 12 at 0x17
// up to 0x18; .text at RVA 0x1000).
func TestLineAt(t *testing.T) {
	path := filepath.Join(corpusDir(t), "symbols", "SimplePDB.pdb")
	f, err := Open(path)
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	const file = `e:\msvc\simplepdb\simplepdb\main.cpp`
	tests := []struct {
		rva   uint32
		line  uint32
		start uint32
		ok    bool
	}{
		{0x1010, 10, 0x1010, true},
		{0x1014, 10, 0x1010, true},
		{0x1015, 11, 0x1015, true},
		{0x1017, 12, 0x1017, true},
		{0x1000, 5, 0x1000, true}, // line 4 is a zero-length entry at the same address
		{0x100D, 0, 0, false},     // padding after SomeCoolFunction
	}
	for _, tc := range tests {
		li, ok := f.LineAt(tc.rva)
		if ok != tc.ok || ok && (li.Line != tc.line || li.Start != tc.start || li.File != file) {
			t.Errorf("LineAt(%#x) = %+v %v, want line %d from %#x", tc.rva, li, ok, tc.line, tc.start)
		}
	}
}

// TestUndecorateAgainstProcs uses the corpus PDBs as an oracle: where a
// decorated public and a procedure share an address, the procedure's name
// is the compiler's own undecorated form. Every name Undecorate decodes
// must equal one of them (identical-code folding can give one address a
// `vector deleting destructor' public and a `scalar deleting destructor'
// procedure; both are accepted as the same body).
func TestUndecorateAgainstProcs(t *testing.T) {
	decoded, kept := 0, 0
	for _, path := range corpusPDBs(t) {
		f, err := Open(path)
		if err != nil {
			continue
		}
		procs, _ := f.Procs()
		pubs, _ := f.Publics()
		f.Close()
		byRVA := map[uint32][]string{}
		for _, p := range procs {
			if p.HasRVA {
				byRVA[p.RVA] = append(byRVA[p.RVA], p.Name)
			}
		}
		for _, p := range pubs {
			names := byRVA[p.RVA]
			if !p.HasRVA || len(names) == 0 || !strings.HasPrefix(p.Name, "?") {
				continue
			}
			u := Undecorate(p.Name)
			if u == p.Name {
				kept++
				continue
			}
			decoded++
			// Compilers differ on whether a class template's constructor
			// and destructor repeat the template arguments
			// (C<T>::~C<T> or C<T>::~C): accept both.
			short := u
			if strings.HasPrefix(p.Name, "??0") || strings.HasPrefix(p.Name, "??1") {
				last := lastComponent(u)
				if j := strings.Index(u[last:], "<"); j >= 0 {
					short = u[:last+j]
				}
			}
			match := false
			for _, n := range names {
				alias := strings.Replace(u, "`vector deleting destructor'", "`scalar deleting destructor'", 1)
				if n == u || n == short || strings.HasSuffix(n, "`scalar deleting destructor'") && alias != u {
					match = true
				}
			}
			if !match {
				t.Errorf("%s: Undecorate(%s) = %q; procedures there: %q", filepath.Base(path), p.Name, u, names)
			}
		}
	}
	if decoded == 0 {
		t.Error("no decorated public with a procedure in the corpus")
	}
	t.Logf("%d names decoded and confirmed, %d kept decorated", decoded, kept)
}

// lastComponent returns where the last "::"-separated component of a
// qualified name starts, ignoring separators inside template arguments.
func lastComponent(q string) int {
	depth, last := 0, 0
	for i := 0; i < len(q); i++ {
		switch {
		case q[i] == '<':
			depth++
		case q[i] == '>':
			depth--
		case depth == 0 && strings.HasPrefix(q[i:], "::"):
			last = i + 2
		}
	}
	return last
}
