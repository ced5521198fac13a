package breakpad

import (
	"sort"
	"strings"
)

// Location describes what the symbol file knows about one address.
type Location struct {
	Function  string // FUNC or PUBLIC name
	Base      uint64 // start of that FUNC or PUBLIC
	ParamSize uint32
	Public    bool // the name comes from a PUBLIC record (no lines)

	HasLine  bool
	File     string // source file of the innermost code at the address
	Line     uint32
	LineBase uint64 // start of the line record (for "line + 0xN" displays)

	// Inlined frames at the address, outermost first. Inlined[i].Function
	// was inlined into Inlined[i-1] (or into Function for i == 0) at
	// CallFile:CallLine; File/Line above belong to the innermost frame.
	Inlined []InlineFrame
}

// InlineFrame is one level of inlined code at an address.
type InlineFrame struct {
	Function string // INLINE_ORIGIN name
	CallFile string
	CallLine uint32
}

// maxContainingSteps bounds the backward scan of containing.
const maxContainingSteps = 4096

// containing returns the indices of every range containing addr, innermost
// last: i ranges over entries with start <= addr from the nearest downward,
// stopping once no earlier entry can reach addr (prefix maxima of ends).
func containing(n int, startOf func(int) uint64, ends []uint64, contains func(int) bool, addr uint64) []int {
	i := sort.Search(n, func(i int) bool { return startOf(i) > addr }) - 1
	var out []int
	// Real files nest a handful of ranges at most; the step cap keeps
	// lookups cheap on hostile files with thousands of overlapping ranges.
	for steps := 0; i >= 0 && ends[i] > addr && steps < maxContainingSteps; i, steps = i-1, steps+1 {
		if contains(i) {
			out = append(out, i)
		}
	}
	return out
}

// FindFunc returns the FUNC containing addr: the innermost when FUNCs nest
// or overlap (the one with the greatest start, then the first in the file).
func (f *File) FindFunc(addr uint64) (*Func, bool) {
	idx := containing(len(f.Funcs), func(i int) uint64 { return f.Funcs[i].Addr }, f.funcEnd,
		func(i int) bool { return Range{f.Funcs[i].Addr, f.Funcs[i].Size}.Contains(addr) }, addr)
	if len(idx) == 0 {
		return nil, false
	}
	best := idx[0]
	for _, i := range idx[1:] {
		if f.Funcs[i].Addr == f.Funcs[best].Addr {
			best = i // same start: the earlier record wins
		}
	}
	return &f.Funcs[best], true
}

// FindPublic returns the PUBLIC record covering addr: the nearest one at or
// below addr, provided no FUNC lies between it and addr (a PUBLIC extends
// only to the next symbol). It does not check whether a FUNC covers addr;
// Lookup does that first.
func (f *File) FindPublic(addr uint64) (*Public, bool) {
	i := sort.Search(len(f.Publics), func(i int) bool { return f.Publics[i].Addr > addr }) - 1
	if i < 0 {
		return nil, false
	}
	// Several PUBLICs at one address: take the first in the file.
	for i > 0 && f.Publics[i-1].Addr == f.Publics[i].Addr {
		i--
	}
	p := &f.Publics[i]
	j := sort.Search(len(f.Funcs), func(j int) bool { return f.Funcs[j].Addr > addr }) - 1
	if j >= 0 && f.Funcs[j].Addr > p.Addr {
		return nil, false
	}
	return p, true
}

// Lookup describes addr (module-relative): the FUNC containing it, with
// source line and inlined frames, or else the covering PUBLIC.
func (f *File) Lookup(addr uint64) (Location, bool) {
	if fn, ok := f.FindFunc(addr); ok {
		loc := Location{Function: fn.Name, Base: fn.Addr, ParamSize: fn.ParamSize}
		if ln, ok := fn.FindLine(addr); ok {
			loc.HasLine = true
			loc.File = f.Files[ln.File]
			loc.Line = ln.Line
			loc.LineBase = ln.Addr
		}
		loc.Inlined = f.inlined(fn, addr)
		return loc, true
	}
	if p, ok := f.FindPublic(addr); ok {
		return Location{Function: p.Name, Base: p.Addr, ParamSize: p.ParamSize, Public: true}, true
	}
	return Location{}, false
}

// FindLine returns the line record of fn containing addr.
func (fn *Func) FindLine(addr uint64) (Line, bool) {
	i := sort.Search(len(fn.Lines), func(i int) bool { return fn.Lines[i].Addr > addr }) - 1
	// Line records do not nest; look back a little in case of overlaps.
	for k := 0; i >= 0 && k < 8; i, k = i-1, k+1 {
		l := fn.Lines[i]
		if (Range{l.Addr, l.Size}).Contains(addr) {
			return l, true
		}
	}
	return Line{}, false
}

// inlined returns the inline frames of fn at addr, outermost first.
func (f *File) inlined(fn *Func, addr uint64) []InlineFrame {
	var hits []Inline
	for _, in := range fn.Inlines {
		for _, r := range in.Ranges {
			if r.Contains(addr) {
				hits = append(hits, in)
				break
			}
		}
	}
	if len(hits) == 0 {
		return nil
	}
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].Depth < hits[j].Depth })
	out := make([]InlineFrame, len(hits))
	for i, in := range hits {
		out[i] = InlineFrame{Function: f.Origins[in.Origin], CallFile: f.Files[in.CallFile], CallLine: in.CallLine}
	}
	return out
}

// CFIRules is the CFI in force at one address.
type CFIRules struct {
	Addr, Size uint64   // the STACK CFI INIT range
	Rules      []string // the INIT rules, then every delta with address <= the lookup address, in order
}

// FindCFI returns the CFI rules for addr: the STACK CFI INIT record whose
// range contains addr (innermost when they overlap) and its deltas up to
// addr.
func (f *File) FindCFI(addr uint64) (CFIRules, bool) {
	idx := containing(len(f.CFI), func(i int) uint64 { return f.CFI[i].Addr }, f.cfiEnd,
		func(i int) bool { return Range{f.CFI[i].Addr, f.CFI[i].Size}.Contains(addr) }, addr)
	if len(idx) == 0 {
		return CFIRules{}, false
	}
	c := &f.CFI[idx[0]]
	out := CFIRules{Addr: c.Addr, Size: c.Size, Rules: []string{c.Init}}
	for _, d := range c.Deltas {
		if d.Addr > addr {
			break
		}
		out.Rules = append(out.Rules, d.Rules)
	}
	return out, true
}

// Merged applies the rule strings in order and returns register -> postfix
// expression (".cfa", ".ra", "$rbp", ...). Later rules for a register replace
// earlier ones. Malformed fragments (an expression without a register) are
// ignored.
func (c CFIRules) Merged() map[string]string {
	m := map[string]string{}
	for _, r := range c.Rules {
		for reg, expr := range ParseRules(r) {
			m[reg] = expr
		}
	}
	return m
}

// ParseRules splits one CFI rule string ("reg: expr reg: expr ...") into
// register -> expression. A token ending in ':' starts a register's rule.
func ParseRules(s string) map[string]string {
	m := map[string]string{}
	reg := ""
	var expr []string
	flush := func() {
		if reg != "" && len(expr) > 0 {
			m[reg] = strings.Join(expr, " ")
		}
	}
	for _, tok := range strings.Fields(s) {
		if len(tok) > 1 && strings.HasSuffix(tok, ":") {
			flush()
			reg, expr = tok[:len(tok)-1], expr[:0]
			continue
		}
		expr = append(expr, tok)
	}
	flush()
	return m
}

// FindWin returns the STACK WIN record for addr. As Breakpad's resolver
// does, FRAME_DATA (type 4) records are preferred over FPO (type 0) ones;
// among records of one type the innermost (greatest start) wins.
func (f *File) FindWin(addr uint64) (*StackWin, bool) {
	idx := containing(len(f.Win), func(i int) uint64 { return uint64(f.Win[i].RVA) }, f.winEnd,
		func(i int) bool { return f.Win[i].Contains(addr) }, addr)
	for _, t := range []WinType{WinFrameData, WinFPO} {
		for _, i := range idx {
			if f.Win[i].Type == t {
				return &f.Win[i], true
			}
		}
	}
	if len(idx) > 0 {
		return &f.Win[idx[0]], true
	}
	return nil, false
}

// StorePath returns the symbol-store relative path of the .sym file for a
// debug file and ID: NAME/ID/NAME.sym, with a ".pdb" extension of the name
// replaced by ".sym" (test_app.pdb/ID/test_app.sym).
func StorePath(debugFile, debugID string) string {
	if i := strings.LastIndexAny(debugFile, `/\`); i >= 0 {
		debugFile = debugFile[i+1:]
	}
	sym := debugFile
	if len(sym) > 4 && strings.EqualFold(sym[len(sym)-4:], ".pdb") {
		sym = sym[:len(sym)-4]
	}
	return debugFile + "/" + strings.ToUpper(debugID) + "/" + sym + ".sym"
}
