// Package breakpad reads Breakpad text symbol files (.sym): MODULE, INFO,
// FILE, INLINE_ORIGIN, FUNC (with the "m" multiple flag), line records,
// INLINE, PUBLIC, STACK CFI INIT / STACK CFI and STACK WIN (types 0 and 4).
//
// Lookups answer what a stack walker and a frame printer need: the function
// or public symbol containing an address with its start and parameter size,
// the source file and line (and the line record's start, for "line + 0x3"
// offsets), inlined frames, the CFI rules in force at an address (the INIT
// rules followed by every delta up to the address, as strings for a postfix
// evaluator), and the STACK WIN record covering an address.
//
// The format is Breakpad's public symbol_files.md. Input is untrusted: lines
// longer than MaxLineLength are rejected, malformed records are skipped and
// counted (see File.Skipped), numbers are range-checked.
package breakpad

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// MaxLineLength is the longest line accepted. Long C++ template names reach
// a few KiB; anything near this limit is not a symbol file.
const MaxLineLength = 1 << 20

// ErrNotSymbolFile is returned when the first line is not a MODULE record.
var ErrNotSymbolFile = errors.New("breakpad: not a symbol file (no MODULE line)")

// SyntaxError reports a malformed line. Parse returns it for fatal problems
// (an over-long line); File.FirstSkipped holds the first skipped record.
type SyntaxError struct {
	Line   int    // 1-based line number
	Offset int64  // byte offset of the line in the input
	Msg    string // what is wrong
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("breakpad: line %d (offset %#x): %s", e.Line, e.Offset, e.Msg)
}

// Module is the MODULE record.
type Module struct {
	OS   string // windows, Linux, mac, ...
	Arch string // x86, x86_64, arm64, ...
	ID   string // debug identifier (GUID+age for PDBs)
	Name string // debug file name (test_app.pdb)
}

// Func is a FUNC record with its line and inline records.
type Func struct {
	Addr      uint64 // module-relative start
	Size      uint64
	ParamSize uint32 // bytes of parameters the callee pops (x86)
	Name      string
	Multiple  bool // "m": several names share this code (identical-code folding)
	Lines     []Line
	Inlines   []Inline
}

// Line is a line record of a FUNC.
type Line struct {
	Addr uint64
	Size uint64
	Line uint32
	File uint32 // FILE number
}

// Inline is an INLINE record: code of Origin inlined into the enclosing
// function (or into the inline one level up) at CallFile:CallLine.
type Inline struct {
	Depth    uint32 // nesting depth, 0 = inlined directly into the FUNC
	CallLine uint32
	CallFile uint32
	Origin   uint32 // INLINE_ORIGIN id
	Ranges   []Range
}

// Range is an address range [Addr, Addr+Size).
type Range struct {
	Addr, Size uint64
}

// Contains reports whether a lies in r.
func (r Range) Contains(a uint64) bool { return a >= r.Addr && a-r.Addr < r.Size }

// Public is a PUBLIC record. It covers addresses up to the next symbol.
type Public struct {
	Addr      uint64
	ParamSize uint32
	Name      string
	Multiple  bool
}

// WinType is the type of a STACK WIN record.
type WinType uint8

// STACK WIN types (the FRAME_TYPE values of the debug interface).
const (
	WinFPO       WinType = 0 // FPO_DATA
	WinTrap      WinType = 1
	WinTSS       WinType = 2
	WinStandard  WinType = 3
	WinFrameData WinType = 4 // FRAMEDATA with a program string
)

// String returns the name of t.
func (t WinType) String() string {
	switch t {
	case WinFPO:
		return "FPO"
	case WinTrap:
		return "TRAP"
	case WinTSS:
		return "TSS"
	case WinStandard:
		return "STANDARD"
	case WinFrameData:
		return "FRAME_DATA"
	}
	return fmt.Sprintf("WinType(%d)", uint8(t))
}

// StackWin is a STACK WIN record. Program is the postfix program string,
// kept verbatim, when HasProgram is set; otherwise AllocatesBasePointer
// holds the last field.
type StackWin struct {
	Type                 WinType
	RVA                  uint32
	CodeSize             uint32
	PrologSize           uint32
	EpilogSize           uint32
	ParamSize            uint32
	SavedRegsSize        uint32
	LocalsSize           uint32
	MaxStackSize         uint32
	HasProgram           bool
	Program              string
	AllocatesBasePointer bool
}

// Contains reports whether rva lies in the record's code range.
func (w *StackWin) Contains(rva uint64) bool {
	return rva >= uint64(w.RVA) && rva-uint64(w.RVA) < uint64(w.CodeSize)
}

// CFI is a STACK CFI INIT record with its deltas (STACK CFI lines), each a
// rule string such as ".cfa: $rsp 16 + .ra: .cfa -8 + ^".
type CFI struct {
	Addr   uint64
	Size   uint64
	Init   string
	Deltas []CFIDelta // in file order (ascending addresses)
}

// CFIDelta is a STACK CFI record: rules that apply from Addr on.
type CFIDelta struct {
	Addr  uint64
	Rules string
}

// File is a parsed symbol file. It is read-only after Parse and safe for
// concurrent use.
type File struct {
	Module   Module
	CodeID   string // INFO CODE_ID
	CodeFile string // INFO CODE_ID's optional file name
	Files    map[uint32]string
	Origins  map[uint32]string // INLINE_ORIGIN names
	Funcs    []Func            // sorted by Addr
	Publics  []Public          // sorted by Addr
	CFI      []CFI             // sorted by Addr
	Win      []StackWin        // sorted by RVA

	// Skipped counts malformed or misplaced records that were ignored;
	// FirstSkipped describes the first one.
	Skipped      int
	FirstSkipped *SyntaxError

	funcEnd []uint64 // prefix maxima of Funcs end addresses
	cfiEnd  []uint64
	winEnd  []uint64
}

// Open parses the named .sym file.
func Open(name string) (*File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f)
}

// NewFile parses the symbol file held in r (size bytes).
func NewFile(r io.ReaderAt, size int64) (*File, error) {
	return Parse(io.NewSectionReader(r, 0, size))
}

// Parse reads a symbol file from r.
func Parse(r io.Reader) (*File, error) {
	p := &parser{f: &File{Files: map[uint32]string{}, Origins: map[uint32]string{}}}
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte // a line longer than the reader's buffer
	for {
		chunk, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull || len(long) > 0 {
			if len(long)+len(chunk) > MaxLineLength {
				return nil, &SyntaxError{Line: p.line + 1, Offset: p.off, Msg: fmt.Sprintf("line longer than %d bytes", MaxLineLength)}
			}
			long = append(long, chunk...)
			if err == bufio.ErrBufferFull {
				continue
			}
			chunk = long
		}
		if len(chunk) > 0 {
			p.line++
			if perr := p.parseLine(chunk); perr != nil {
				return nil, perr
			}
			p.off += int64(len(chunk))
		}
		long = long[:0]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if !p.sawModule {
		return nil, ErrNotSymbolFile
	}
	p.f.finish()
	return p.f, nil
}

type parser struct {
	f         *File
	line      int
	off       int64
	sawModule bool
	curFunc   int // index into f.Funcs of the FUNC that line records follow, -1 if none
	curCFI    int
}

func (p *parser) skip(msg string) {
	p.f.Skipped++
	if p.f.FirstSkipped == nil {
		p.f.FirstSkipped = &SyntaxError{Line: p.line, Offset: p.off, Msg: msg}
	}
}

func (p *parser) parseLine(raw []byte) error {
	raw = bytes.TrimRight(raw, "\r\n")
	if len(raw) == 0 {
		return nil
	}
	line := string(raw)
	if !p.sawModule {
		if !strings.HasPrefix(line, "MODULE ") {
			return ErrNotSymbolFile
		}
		f := strings.SplitN(line, " ", 5)
		if len(f) < 5 {
			return &SyntaxError{Line: p.line, Offset: p.off, Msg: "MODULE needs os, arch, id and name"}
		}
		p.f.Module = Module{OS: f[1], Arch: f[2], ID: f[3], Name: f[4]}
		p.sawModule = true
		p.curFunc, p.curCFI = -1, -1
		return nil
	}
	kw, rest, _ := strings.Cut(line, " ")
	switch kw {
	case "FILE":
		p.curFunc = -1
		id, name, ok := strings.Cut(rest, " ")
		n, err := strconv.ParseUint(id, 10, 32)
		if !ok || err != nil {
			p.skip("malformed FILE record")
			return nil
		}
		p.f.Files[uint32(n)] = name
	case "INLINE_ORIGIN":
		p.curFunc = -1
		id, name, ok := strings.Cut(rest, " ")
		n, err := strconv.ParseUint(id, 10, 32)
		if !ok || err != nil {
			p.skip("malformed INLINE_ORIGIN record")
			return nil
		}
		p.f.Origins[uint32(n)] = name
	case "FUNC":
		p.curFunc = -1
		multiple := false
		if strings.HasPrefix(rest, "m ") {
			multiple, rest = true, rest[2:]
		}
		f := strings.SplitN(rest, " ", 4)
		if len(f) < 3 {
			p.skip("malformed FUNC record")
			return nil
		}
		addr, e1 := parseHex(f[0])
		size, e2 := parseHex(f[1])
		param, e3 := strconv.ParseUint(f[2], 16, 32)
		if e1 != nil || e2 != nil || e3 != nil {
			p.skip("malformed FUNC record")
			return nil
		}
		name := ""
		if len(f) == 4 {
			name = f[3]
		}
		p.f.Funcs = append(p.f.Funcs, Func{Addr: addr, Size: size, ParamSize: uint32(param), Name: name, Multiple: multiple})
		p.curFunc = len(p.f.Funcs) - 1
	case "INLINE":
		if p.curFunc < 0 {
			p.skip("INLINE record outside a FUNC")
			return nil
		}
		f := strings.Fields(rest)
		if len(f) < 6 || len(f)%2 != 0 {
			p.skip("malformed INLINE record")
			return nil
		}
		var nums [4]uint32
		for i := range nums {
			v, err := strconv.ParseUint(f[i], 10, 32)
			if err != nil {
				p.skip("malformed INLINE record")
				return nil
			}
			nums[i] = uint32(v)
		}
		in := Inline{Depth: nums[0], CallLine: nums[1], CallFile: nums[2], Origin: nums[3]}
		for i := 4; i+1 < len(f); i += 2 {
			a, e1 := parseHex(f[i])
			s, e2 := parseHex(f[i+1])
			if e1 != nil || e2 != nil {
				p.skip("malformed INLINE range")
				return nil
			}
			in.Ranges = append(in.Ranges, Range{a, s})
		}
		fn := &p.f.Funcs[p.curFunc]
		fn.Inlines = append(fn.Inlines, in)
	case "PUBLIC":
		p.curFunc = -1
		multiple := false
		if strings.HasPrefix(rest, "m ") {
			multiple, rest = true, rest[2:]
		}
		f := strings.SplitN(rest, " ", 3)
		if len(f) < 2 {
			p.skip("malformed PUBLIC record")
			return nil
		}
		addr, e1 := parseHex(f[0])
		param, e2 := strconv.ParseUint(f[1], 16, 32)
		if e1 != nil || e2 != nil {
			p.skip("malformed PUBLIC record")
			return nil
		}
		name := ""
		if len(f) == 3 {
			name = f[2]
		}
		p.f.Publics = append(p.f.Publics, Public{Addr: addr, ParamSize: uint32(param), Name: name, Multiple: multiple})
	case "STACK":
		p.curFunc = -1
		p.parseStack(rest)
	case "INFO":
		p.curFunc = -1
		if v, ok := strings.CutPrefix(rest, "CODE_ID "); ok {
			id, file, _ := strings.Cut(v, " ")
			p.f.CodeID, p.f.CodeFile = id, file
		}
	case "MODULE":
		p.skip("second MODULE record")
	default:
		p.parseLineRecord(line)
	}
	return nil
}

func (p *parser) parseLineRecord(line string) {
	if p.curFunc < 0 {
		p.skip("unknown record or line record outside a FUNC")
		return
	}
	f := strings.Fields(line)
	if len(f) != 4 {
		p.skip("malformed line record")
		return
	}
	addr, e1 := parseHex(f[0])
	size, e2 := parseHex(f[1])
	ln, e3 := strconv.ParseInt(f[2], 10, 64)
	file, e4 := strconv.ParseUint(f[3], 10, 32)
	if e1 != nil || e2 != nil || e3 != nil || e4 != nil {
		p.skip("malformed line record")
		return
	}
	// Some producers write negative line numbers: clamp to 0 ("unknown").
	ln = max(0, min(ln, 1<<32-1))
	fn := &p.f.Funcs[p.curFunc]
	fn.Lines = append(fn.Lines, Line{Addr: addr, Size: size, Line: uint32(ln), File: uint32(file)})
}

func (p *parser) parseStack(rest string) {
	kind, rest, _ := strings.Cut(rest, " ")
	switch kind {
	case "CFI":
		if v, ok := strings.CutPrefix(rest, "INIT "); ok {
			f := strings.SplitN(v, " ", 3)
			if len(f) < 3 {
				p.skip("malformed STACK CFI INIT record")
				return
			}
			addr, e1 := parseHex(f[0])
			size, e2 := parseHex(f[1])
			if e1 != nil || e2 != nil {
				p.skip("malformed STACK CFI INIT record")
				return
			}
			p.f.CFI = append(p.f.CFI, CFI{Addr: addr, Size: size, Init: f[2]})
			p.curCFI = len(p.f.CFI) - 1
			return
		}
		addrS, rules, ok := strings.Cut(rest, " ")
		addr, err := parseHex(addrS)
		if !ok || err != nil {
			p.skip("malformed STACK CFI record")
			return
		}
		if p.curCFI < 0 {
			p.skip("STACK CFI record without STACK CFI INIT")
			return
		}
		c := &p.f.CFI[p.curCFI]
		if addr < c.Addr || addr-c.Addr >= c.Size {
			p.skip("STACK CFI record outside its STACK CFI INIT range")
			return
		}
		c.Deltas = append(c.Deltas, CFIDelta{Addr: addr, Rules: rules})
	case "WIN":
		f := strings.SplitN(rest, " ", 11)
		if len(f) < 11 {
			p.skip("malformed STACK WIN record")
			return
		}
		var n [10]uint32
		for i := range n {
			v, err := strconv.ParseUint(f[i], 16, 32)
			if err != nil {
				p.skip("malformed STACK WIN record")
				return
			}
			n[i] = uint32(v)
		}
		if n[0] > uint32(WinFrameData) {
			p.skip("STACK WIN record of unknown type")
			return
		}
		w := StackWin{
			Type: WinType(n[0]), RVA: n[1], CodeSize: n[2], PrologSize: n[3], EpilogSize: n[4],
			ParamSize: n[5], SavedRegsSize: n[6], LocalsSize: n[7], MaxStackSize: n[8],
			HasProgram: n[9] != 0,
		}
		if w.HasProgram {
			w.Program = f[10]
		} else {
			v, err := strconv.ParseUint(strings.TrimSpace(f[10]), 16, 32)
			if err != nil {
				p.skip("malformed STACK WIN allocates_base_pointer")
				return
			}
			w.AllocatesBasePointer = v != 0
		}
		p.f.Win = append(p.f.Win, w)
	default:
		p.skip("unknown STACK record")
	}
}

func parseHex(s string) (uint64, error) {
	return strconv.ParseUint(s, 16, 64)
}

func end(a, s uint64) uint64 {
	if e := a + s; e >= a {
		return e
	}
	return ^uint64(0)
}

// finish sorts the tables and builds the prefix-maximum arrays used to find
// every range containing an address.
func (f *File) finish() {
	sort.SliceStable(f.Funcs, func(i, j int) bool { return f.Funcs[i].Addr < f.Funcs[j].Addr })
	sort.SliceStable(f.Publics, func(i, j int) bool { return f.Publics[i].Addr < f.Publics[j].Addr })
	sort.SliceStable(f.CFI, func(i, j int) bool { return f.CFI[i].Addr < f.CFI[j].Addr })
	sort.SliceStable(f.Win, func(i, j int) bool { return f.Win[i].RVA < f.Win[j].RVA })
	for i := range f.Funcs {
		fn := &f.Funcs[i]
		sort.SliceStable(fn.Lines, func(a, b int) bool { return fn.Lines[a].Addr < fn.Lines[b].Addr })
	}
	f.funcEnd = prefixMax(len(f.Funcs), func(i int) uint64 { return end(f.Funcs[i].Addr, f.Funcs[i].Size) })
	f.cfiEnd = prefixMax(len(f.CFI), func(i int) uint64 { return end(f.CFI[i].Addr, f.CFI[i].Size) })
	f.winEnd = prefixMax(len(f.Win), func(i int) uint64 { return end(uint64(f.Win[i].RVA), uint64(f.Win[i].CodeSize)) })
}

func prefixMax(n int, endOf func(int) uint64) []uint64 {
	out := make([]uint64, n)
	var m uint64
	for i := range out {
		m = max(m, endOf(i))
		out[i] = m
	}
	return out
}
