package pe

import (
	"bufio"
	"bytes"
	"fmt"
	"github.com/kdtriage/kdtriage/kdump/kdumptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// corpusDir returns ../shared/corpus relative to the module root, or
// $KDTRIAGE_CORPUS, skipping the test when it is absent.
func corpusDir(t testing.TB) string {
	t.Helper()
	return kdumptest.CorpusDir(t)
}

func corpusPEs(t testing.TB) []string {
	dir := corpusDir(t)
	var out []string
	for _, pat := range []string{"*.exe", "*.dll", "*.sys"} {
		m, _ := filepath.Glob(filepath.Join(dir, "symbols", pat))
		out = append(out, m...)
	}
	if len(out) == 0 {
		t.Skip("no PE files in the corpus")
	}
	return out
}

// readobjImage is what llvm-readobj --coff-debug-directory --unwind prints.
type readobjImage struct {
	guid    string // hex bytes in file order, "51 FD ..."
	age     uint64
	pdbPath string
	hasPDB  bool
	funcs   []readobjFunc
}

type readobjFunc struct {
	start, end, unwind uint64 // VAs
	version, flags     uint64
	prolog             uint64
	frameReg           string // "-" or a register name
	frameOff           string // "-" or hex
	codeCount          uint64
	codes              []string
	handler            uint64
	hasHandler         bool
	chained            [3]uint64
	hasChain           bool
}

var parenHex = regexp.MustCompile(`\((0x[0-9A-Fa-f]+)\)\s*$`)

func hexIn(t testing.TB, line string) uint64 {
	m := parenHex.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no (0x...) in %q", line)
	}
	v, _ := strconv.ParseUint(m[1][2:], 16, 64)
	return v
}

func fieldValue(line string) string {
	_, v, _ := strings.Cut(line, ":")
	return strings.TrimSpace(v)
}

func num(t testing.TB, s string) uint64 {
	s = strings.Fields(s)[0]
	v, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		t.Fatalf("number %q: %v", s, err)
	}
	return v
}

func runReadobj(t *testing.T, tool, path string) readobjImage {
	out, err := exec.Command(tool, "--coff-debug-directory", "--unwind", path).Output()
	if err != nil {
		t.Fatalf("%s %s: %v", tool, path, err)
	}
	var img readobjImage
	var fn *readobjFunc
	inCodes, inChain := false, false
	chainIdx := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "PDBGUID:"):
			img.guid = strings.Trim(fieldValue(line), "()")
			img.hasPDB = true
		case strings.HasPrefix(line, "PDBAge:"):
			img.age = num(t, fieldValue(line))
		case strings.HasPrefix(line, "PDBFileName:"):
			img.pdbPath = fieldValue(line)
		case line == "RuntimeFunction {":
			img.funcs = append(img.funcs, readobjFunc{})
			fn = &img.funcs[len(img.funcs)-1]
			inChain = false
		case fn == nil:
		case line == "UnwindCodes [":
			inCodes = true
		case inCodes && line == "]":
			inCodes = false
		case inCodes:
			fn.codes = append(fn.codes, line)
		case line == "Chained {":
			inChain, chainIdx = true, 0
			fn.hasChain = true
		case inChain && (strings.HasPrefix(line, "StartAddress:") || strings.HasPrefix(line, "EndAddress:") || strings.HasPrefix(line, "UnwindInfoAddress:")):
			fn.chained[chainIdx] = hexIn(t, line)
			chainIdx++
		case strings.HasPrefix(line, "StartAddress:"):
			fn.start = hexIn(t, line)
		case strings.HasPrefix(line, "EndAddress:"):
			fn.end = hexIn(t, line)
		case strings.HasPrefix(line, "UnwindInfoAddress:"):
			fn.unwind = hexIn(t, line)
		case strings.HasPrefix(line, "Version:"):
			fn.version = num(t, fieldValue(line))
		case strings.HasPrefix(line, "Flags ["):
			fn.flags = hexIn(t, strings.TrimSuffix(strings.TrimPrefix(line, "Flags ["), ""))
		case strings.HasPrefix(line, "PrologSize:"):
			fn.prolog = num(t, fieldValue(line))
		case strings.HasPrefix(line, "FrameRegister:"):
			fn.frameReg = fieldValue(line)
		case strings.HasPrefix(line, "FrameOffset:"):
			fn.frameOff = fieldValue(line)
		case strings.HasPrefix(line, "UnwindCodeCount:"):
			fn.codeCount = num(t, fieldValue(line))
		case strings.HasPrefix(line, "Handler:"):
			fn.handler = hexIn(t, line)
			fn.hasHandler = true
		}
	}
	return img
}

// codeFields splits "0x04: SAVE_NONVOL reg=RDI, offset=0x30" into the
// offset, the op name and its key=value operands.
func codeFields(s string) (off uint64, op string, kv map[string]string) {
	s = strings.ReplaceAll(s, ",", " ")
	f := strings.Fields(s)
	kv = map[string]string{}
	if len(f) < 2 {
		return 0, s, kv
	}
	off, _ = strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(f[0], "0x"), ":"), 16, 64)
	op = f[1]
	for _, p := range f[2:] {
		k, v, _ := strings.Cut(p, "=")
		kv[k] = v
	}
	return off, op, kv
}

// sameNumber compares two operands that may be written in hex or decimal.
func sameNumber(a, b string) bool {
	x, err1 := strconv.ParseUint(a, 0, 64)
	y, err2 := strconv.ParseUint(b, 0, 64)
	if err1 != nil || err2 != nil {
		return strings.EqualFold(a, b)
	}
	return x == y
}

// ourCode renders a code with the operands llvm-readobj shows, including
// SET_FPREG's frame register.
func ourCode(ui *UnwindInfo, c UnwindCode) (uint64, string, map[string]string) {
	off, op, kv := codeFields(c.String())
	if c.Op == UWOP_SET_FPREG {
		kv["reg"] = ui.FrameRegister.String()
		kv["offset"] = fmt.Sprintf("0x%X", ui.FrameOffset)
	}
	return off, op, kv
}

// TestAgainstReadobj compares the CodeView identity and every x64 unwind
// record of each corpus PE (and each committed test driver) with
// llvm-readobj --coff-debug-directory --unwind.
func TestAgainstReadobj(t *testing.T) {
	tool, err := exec.LookPath("llvm-readobj")
	if err != nil {
		t.Skip("llvm-readobj not installed (Debian package llvm)")
	}
	files := corpusPEs(t)
	drivers, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "drivers", "*.sys"))
	files = append(files, drivers...)
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			want := runReadobj(t, tool, path)
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			checkCodeView(t, f, want)
			if f.Machine == MachineARM64 {
				checkARM64(t, f, tool, path)
				return
			}
			if f.Machine != MachineAMD64 {
				if len(want.funcs) != 0 {
					t.Errorf("llvm-readobj shows %d functions for %v", len(want.funcs), f.Machine)
				}
				return
			}
			checkUnwind(t, f, want)
		})
	}
}

func checkCodeView(t *testing.T, f *File, want readobjImage) {
	cv, err := f.CodeView()
	if !want.hasPDB {
		if err == nil {
			t.Errorf("CodeView %+v, llvm-readobj shows none", cv)
		}
		return
	}
	if err != nil {
		t.Fatalf("CodeView: %v", err)
	}
	var got []string
	for _, b := range cv.GUID {
		got = append(got, fmt.Sprintf("%02X", b))
	}
	if g := strings.Join(got, " "); g != want.guid {
		t.Errorf("GUID %s, llvm-readobj %s", g, want.guid)
	}
	if uint64(cv.Age) != want.age || cv.PDBPath != want.pdbPath {
		t.Errorf("age %d path %q, llvm-readobj %d %q", cv.Age, cv.PDBPath, want.age, want.pdbPath)
	}
}

func checkUnwind(t *testing.T, f *File, want readobjImage) {
	fs, err := f.RuntimeFunctions()
	if err != nil {
		t.Fatalf("RuntimeFunctions: %v", err)
	}
	if len(fs) != len(want.funcs) {
		// llvm-readobj decodes the whole .pdata section; the loader (and
		// this package) use the exception directory's size. Accept a
		// longer listing only when that is the reason.
		dir := f.Directory(DirException)
		sec := f.SectionAt(dir.VirtualAddress)
		if len(want.funcs) < len(fs) || sec == nil || sec.VirtualAddress != dir.VirtualAddress ||
			int(sec.VirtualSize/12) != len(want.funcs) || int(dir.Size/12) != len(fs) {
			t.Fatalf("%d functions, llvm-readobj %d", len(fs), len(want.funcs))
		}
		t.Logf("llvm-readobj lists %d entries of section %s; the exception directory holds %d", len(want.funcs), sec.Name, len(fs))
		want.funcs = want.funcs[:len(fs)]
	}
	base := f.OptionalHeader.ImageBase
	codes := 0
	for i, rf := range fs {
		w := want.funcs[i]
		if uint64(rf.Begin)+base != w.start || uint64(rf.End)+base != w.end || uint64(rf.UnwindData)+base != w.unwind {
			t.Errorf("function %d: %#x-%#x unwind %#x, llvm-readobj %#x-%#x %#x", i, rf.Begin, rf.End, rf.UnwindData, w.start-base, w.end-base, w.unwind-base)
			continue
		}
		ui, err := f.UnwindInfo(rf)
		if err != nil {
			t.Errorf("function %#x: %v", rf.Begin, err)
			continue
		}
		// llvm-readobj prints "RBP (0x5)" and the unscaled 4-bit offset.
		frameReg, frameOff := "-", "-"
		if ui.HasFrameRegister() {
			frameReg, frameOff = ui.FrameRegister.String(), fmt.Sprintf("0x%X", ui.FrameOffset/16)
		}
		if f := strings.Fields(w.frameReg); len(f) > 0 {
			w.frameReg = f[0]
		}
		if uint64(ui.Version) != w.version || uint64(ui.Flags) != w.flags || uint64(ui.SizeOfProlog) != w.prolog ||
			uint64(ui.CountOfCodes) != w.codeCount || frameReg != w.frameReg || !sameNumber(frameOff, w.frameOff) && frameOff != w.frameOff {
			t.Errorf("function %#x: v%d flags %#x prolog %d codes %d frame %s/%s; llvm-readobj v%d flags %#x prolog %d codes %d frame %s/%s",
				rf.Begin, ui.Version, uint8(ui.Flags), ui.SizeOfProlog, ui.CountOfCodes, frameReg, frameOff,
				w.version, w.flags, w.prolog, w.codeCount, w.frameReg, w.frameOff)
		}
		if len(ui.Codes) != len(w.codes) {
			t.Errorf("function %#x: %d codes, llvm-readobj %d: %q", rf.Begin, len(ui.Codes), len(w.codes), w.codes)
			continue
		}
		for j, c := range ui.Codes {
			off, op, kv := ourCode(ui, c)
			woff, wop, wkv := codeFields(w.codes[j])
			if off != woff || op != wop || len(kv) != len(wkv) {
				t.Errorf("function %#x code %d: %q (%v), llvm-readobj %q", rf.Begin, j, c, kv, w.codes[j])
				continue
			}
			for k, v := range wkv {
				if !sameNumber(kv[k], v) {
					t.Errorf("function %#x code %d: %s=%s, llvm-readobj %s=%s", rf.Begin, j, k, kv[k], k, v)
				}
			}
			codes++
		}
		if w.hasHandler != (ui.HandlerRVA != 0 || ui.Flags&(UNW_FLAG_EHANDLER|UNW_FLAG_UHANDLER) != 0) ||
			w.hasHandler && uint64(ui.HandlerRVA)+base != w.handler {
			t.Errorf("function %#x: handler %#x, llvm-readobj %v %#x", rf.Begin, ui.HandlerRVA, w.hasHandler, w.handler)
		}
		if w.hasChain != (ui.Chained != nil) {
			t.Errorf("function %#x: chained %v, llvm-readobj %v", rf.Begin, ui.Chained, w.hasChain)
		} else if w.hasChain {
			c := ui.Chained
			if uint64(c.Begin)+base != w.chained[0] || uint64(c.End)+base != w.chained[1] || uint64(c.UnwindData)+base != w.chained[2] {
				t.Errorf("function %#x: chained %+v, llvm-readobj %#x", rf.Begin, c, w.chained)
			}
		}
	}
	t.Logf("%d functions, %d unwind codes agree", len(fs), codes)
}

// TestCorpusMappedEqualsFile maps each corpus PE as the loader would and
// checks that NewImage reads the same identity and .pdata as Open.
func TestCorpusMappedEqualsFile(t *testing.T) {
	for _, path := range corpusPEs(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			image := make([]byte, f.OptionalHeader.SizeOfImage)
			copy(image, raw[:min(len(raw), int(f.OptionalHeader.SizeOfHeaders))])
			for _, s := range f.Sections {
				n := min(s.SizeOfRawData, s.span())
				if int(s.PointerToRawData)+int(n) <= len(raw) && int(s.VirtualAddress)+int(n) <= len(image) {
					copy(image[s.VirtualAddress:], raw[s.PointerToRawData:s.PointerToRawData+n])
				}
			}
			base := uint64(0xfffff80400000000)
			m, err := NewImage(&memImage{base: base, b: image}, base)
			if err != nil {
				t.Fatal(err)
			}
			cv1, err1 := f.CodeView()
			cv2, err2 := m.CodeView()
			if (err1 == nil) != (err2 == nil) || err1 == nil && *cv1 != *cv2 {
				t.Errorf("CodeView file %+v %v, mapped %+v %v", cv1, err1, cv2, err2)
			}
			if f.Machine == MachineAMD64 {
				a, _ := f.RuntimeFunctions()
				b, _ := m.RuntimeFunctions()
				if len(a) == 0 || len(a) != len(b) {
					t.Fatalf("pdata file %d, mapped %d", len(a), len(b))
				}
				for i := range a {
					u1, e1 := f.UnwindInfo(a[i])
					u2, e2 := m.UnwindInfo(b[i])
					if e1 != nil || e2 != nil || fmt.Sprint(u1.Codes) != fmt.Sprint(u2.Codes) {
						t.Fatalf("function %#x differs: %v %v", a[i].Begin, e1, e2)
					}
				}
			}
			if e1, err := f.Exports(); err == nil {
				e2, err := m.Exports()
				if err != nil || len(e1.List) != len(e2.List) {
					t.Errorf("exports file %d, mapped %v", len(e1.List), err)
				}
			}
		})
	}
}

// readobjARM64 is one ARM64 RuntimeFunction as llvm-readobj prints it:
// its "Key: value" fields and the prologue opcodes of .xdata records.
type readobjARM64 struct {
	fields  map[string]string
	opcodes []string // "0xc200", ... in order, "end" included
}

func runReadobjARM64(t *testing.T, tool, path string) []readobjARM64 {
	out, err := exec.Command(tool, "--unwind", path).Output()
	if err != nil {
		t.Fatalf("%s --unwind %s: %v", tool, path, err)
	}
	var fs []readobjARM64
	inPrologue := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "RuntimeFunction {":
			fs = append(fs, readobjARM64{fields: map[string]string{}})
		case len(fs) == 0:
		case line == "Prologue [":
			inPrologue = true
		case inPrologue && line == "]":
			inPrologue = false
		case inPrologue:
			if strings.HasPrefix(line, "0x") {
				fs[len(fs)-1].opcodes = append(fs[len(fs)-1].opcodes, strings.Fields(line)[0])
			}
		default:
			if k, v, ok := strings.Cut(line, ":"); ok && !strings.Contains(k, " ") {
				if _, dup := fs[len(fs)-1].fields[k]; !dup {
					fs[len(fs)-1].fields[k] = strings.TrimSpace(v)
				}
			}
		}
	}
	return fs
}

func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

// checkARM64 compares the ARM64 .pdata entries, packed fields and .xdata
// headers and codes with llvm-readobj --unwind.
func checkARM64(t *testing.T, f *File, tool, path string) {
	want := runReadobjARM64(t, tool, path)
	fs, err := f.ARM64Functions()
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != len(want) {
		t.Fatalf("%d functions, llvm-readobj %d", len(fs), len(want))
	}
	base := f.OptionalHeader.ImageBase
	for i, af := range fs {
		w := want[i].fields
		got := map[string]string{"Function": fmt.Sprintf("0x%X", base+uint64(af.Begin))}
		if p, ok := af.Packed(); ok {
			got["Fragment"] = yesNo(p.Flag == 2)
			got["FunctionLength"] = fmt.Sprint(p.FunctionLength)
			got["RegF"] = fmt.Sprint(p.RegF)
			got["RegI"] = fmt.Sprint(p.RegI)
			got["HomedParameters"] = yesNo(p.H)
			got["CR"] = fmt.Sprint(p.CR)
			got["FrameSize"] = fmt.Sprint(p.FrameSize)
		} else {
			x, err := f.ARM64XData(af)
			if err != nil {
				t.Errorf("function %#x: %v", af.Begin, err)
				continue
			}
			got["ExceptionRecord"] = fmt.Sprintf("0x%X", base+uint64(x.RVA))
			got["FunctionLength"] = fmt.Sprint(x.FunctionLength)
			got["Version"] = fmt.Sprint(x.Version)
			got["ExceptionData"] = yesNo(x.X)
			got["EpiloguePacked"] = yesNo(x.E)
			if x.E {
				got["EpilogueOffset"] = fmt.Sprint(x.EpilogCount)
			} else {
				got["EpilogueScopes"] = fmt.Sprint(len(x.Epilogs))
			}
			got["ByteCodeLength"] = fmt.Sprint(len(x.Codes))
			codes, err := DecodeARM64Codes(x.Codes)
			if err != nil {
				t.Errorf("function %#x: %v", af.Begin, err)
			}
			var ops []string
			at := 0
			for _, c := range codes {
				ops = append(ops, fmt.Sprintf("0x%x", x.Codes[at:at+c.Len]))
				at += c.Len
			}
			var wantOps []string
			for _, o := range want[i].opcodes {
				wantOps = append(wantOps, strings.ToLower(o))
			}
			if fmt.Sprint(ops) != fmt.Sprint(wantOps) {
				t.Errorf("function %#x: codes %v, llvm-readobj %v", af.Begin, ops, wantOps)
			}
		}
		for k, v := range got {
			wv := w[k]
			if f := strings.Fields(wv); len(f) > 0 && k != "Fragment" {
				wv = f[0]
			}
			if !strings.EqualFold(v, wv) {
				t.Errorf("function %#x: %s = %s, llvm-readobj %q", af.Begin, k, v, w[k])
			}
		}
	}
	t.Logf("%d ARM64 functions agree", len(fs))
}
