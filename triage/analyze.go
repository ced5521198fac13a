package triage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/rs/zerolog"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/rules"
	"github.com/kdtriage/kdtriage/triage/stack"
)

// Symbolizer names code addresses. The symbols package provides one that
// reads PDBs and Breakpad files through a symbol path; a nil Symbolizer
// leaves frames as module+offset, as WinDbg does without symbols.
type Symbolizer interface {
	// Symbolize returns the function of module m that holds the address
	// m.Base+rva and the offset of the address into it. ok is false when
	// no symbols cover the address.
	Symbolize(ctx context.Context, m kdump.Module, rva uint64) (function string, offset uint64, ok bool)
}

// SourceSymbolizer is a Symbolizer that also knows source positions.
// Analyze uses it, when Options.Symbols implements it, to give kernel
// frames a source file and line as user-mode frames have. FromSymbols
// returns one.
type SourceSymbolizer interface {
	Symbolizer
	// SymbolizeSource is Symbolize with the address's source position:
	// sym.File is "" (and sym.Line 0) when the symbols have no line
	// information for it. ok is false when no symbols cover the address.
	SymbolizeSource(ctx context.Context, m kdump.Module, rva uint64) (sym SourceSymbol, ok bool)
}

// SourceSymbol is a symbolised address with its source position.
type SourceSymbol struct {
	Function string // function name
	Offset   uint64 // from the function's start
	File     string // source file; "" when unknown
	Line     int    // source line; 0 when unknown
}

// symbolize names rva in m with s, with the source position when s is a
// SourceSymbolizer. ok is false without symbols for the address.
func symbolize(ctx context.Context, s Symbolizer, m kdump.Module, rva uint64) (SourceSymbol, bool) {
	if s == nil {
		return SourceSymbol{}, false
	}
	if ss, ok := s.(SourceSymbolizer); ok {
		return ss.SymbolizeSource(ctx, m, rva)
	}
	fn, off, ok := s.Symbolize(ctx, m, rva)
	return SourceSymbol{Function: fn, Offset: off}, ok
}

// SourceInfo identifies the file a dump was read from. Analyze copies it
// into the report: it does not read the file again (hashing a 32 GiB
// MEMORY.DMP is the caller's choice).
type SourceInfo struct {
	File   string // path or object name as the caller knows it
	Size   int64  // bytes
	SHA256 string // hex SHA-256 of the whole file, "" when not computed
}

// Options configures Analyze.
type Options struct {
	// Symbols names frames; nil: module+offset only.
	Symbols Symbolizer
	// Rules decide owners, ignored frames and bucket actions. nil: the
	// embedded default set (rules.Default, compiled once per process).
	Rules *rules.Set
	// Log receives debug messages; the zero value logs nothing.
	Log zerolog.Logger
	// Host is copied into the report (where the dump came from).
	Host *HostInfo
	// Source is copied into the report's dump section.
	Source SourceInfo
	// LegacyBucket also fills the legacy BUCKET_ID (X64_ prefix, offsets).
	LegacyBucket bool
	// Images supplies module images (unwind tables, code bytes) to the
	// stack walker, after the images mapped in the dump's memory (see
	// StoreImages); nil: the dump's memory only.
	Images stack.Images
}

// Analyze analyses one dump and returns its report. The report is complete
// even when parts of the dump are unreadable: what is missing is listed in
// Report.Problems. An error is returned only when the dump cannot be
// analysed at all (unsupported kind, cancelled context).
func Analyze(ctx context.Context, dump kdump.Dump, opts Options) (*Report, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch dump.Format() {
	case kdump.FormatKernel64, kdump.FormatKernel32:
		f, ok := dump.(*kdump.File)
		if !ok {
			return nil, fmt.Errorf("triage: %w: kernel dump of type %T", kdump.ErrUnsupported, dump)
		}
		return analyzeKernel(ctx, f, opts)
	default:
		// User-mode (MDMP) analysis lives in usermode*.go, which adds the
		// analyzeUserMode method to analyzers; until then the assertion
		// fails and user-mode dumps are reported as unsupported.
		var an any = analyzers{}
		if um, ok := an.(userModeAnalyzer); ok {
			return um.analyzeUserMode(ctx, dump, opts)
		}
		return nil, fmt.Errorf("triage: %w: %v dumps are not analysed yet", kdump.ErrUnsupported, dump.Format())
	}
}

// analyzers carries the analysis entry points that live in other files of
// the package. usermode*.go adds
//
//	func (analyzers) analyzeUserMode(ctx context.Context, d kdump.Dump, opts Options) (*Report, error)
//
// and Analyze then sends every non-kernel dump to it.
type analyzers struct{}

// userModeAnalyzer is what usermode*.go implements on analyzers.
type userModeAnalyzer interface {
	analyzeUserMode(ctx context.Context, d kdump.Dump, opts Options) (*Report, error)
}

// kernelAnalysis is the state of one kernel-dump analysis.
type kernelAnalysis struct {
	ctx   context.Context
	f     *kdump.File
	opts  Options
	log   zerolog.Logger
	rep   *Report
	bc    kdump.BugCheck
	info  BugCheckInfo
	mods  []kdump.Module
	unl   []kdump.UnloadedModule
	mem   kdump.Memory
	ptr   int
	set   *rules.Set
	ipIdx int // index in rep.Stack of the faulting-IP frame, -1 when none
	// service is the service name of an object blame (0x9F/3), for the bucket.
	service string
}

func (a *kernelAnalysis) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	a.rep.Problems = append(a.rep.Problems, msg)
	a.log.Debug().Msg(msg)
}

func (a *kernelAnalysis) why(format string, args ...any) {
	a.rep.Why = append(a.rep.Why, fmt.Sprintf(format, args...))
}

// ruleSet returns the rules to apply: opts.Rules, else the embedded
// defaults; a defaults that fail to compile are reported through problem.
func ruleSet(opts Options, problem func(format string, args ...any)) *rules.Set {
	if opts.Rules != nil {
		return opts.Rules
	}
	s, err := rules.Default()
	if err != nil {
		problem("default rules: %v", err)
		return nil
	}
	return s
}

func analyzeKernel(ctx context.Context, f *kdump.File, opts Options) (*Report, error) {
	h := f.Header()
	a := &kernelAnalysis{ctx: ctx, f: f, opts: opts, log: opts.Log, bc: f.BugCheck(), mem: f.Memory(),
		ptr: h.Machine.PointerSize(), ipIdx: -1}
	a.info = LookupBugCheck(a.bc.Code)
	rep := &Report{
		SchemaVersion:        SchemaVersion,
		BucketSchemeVersion:  BucketSchemeVersion,
		AnalysisSource:       SourceKernel,
		Host:                 opts.Host,
		FirstThirdPartyFrame: -1,
		Culprit:              Culprit{Frame: -1, Kind: CulpritNone},
	}
	a.rep = rep
	for _, p := range f.Problems() {
		a.problem("%v", p)
	}

	a.set = ruleSet(opts, a.problem)
	if a.set != nil {
		rep.RuleSetHash = a.set.Hash()
	}

	var err error
	if a.mods, err = f.Modules(); err != nil {
		a.problem("module list: %v", err)
	}
	if a.unl, err = f.UnloadedModules(); err != nil {
		a.problem("unloaded-module list: %v", err)
	}
	rep.ModuleCount = len(a.mods)
	for _, u := range a.unl {
		rep.UnloadedModules = append(rep.UnloadedModules, UnloadedModuleInfo{Name: cleanName(u.Name), Start: Hex(u.Start), End: Hex(u.End)})
	}

	a.fillDump()
	a.fillBugCheck()
	buildLab := readBuildLab(f)
	rep.OS = osInfo(f, buildLab)
	if name, err := f.ProcessName(); err == nil {
		rep.ProcessName = name
	} else {
		a.problem("process name: %v", err)
	}
	rep.CurrentIRQL = a.irql()
	rep.Verifier = a.verifierOn()

	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := a.chooseContext()
	a.buildStack(c)
	a.blame()
	a.finishBucket()
	return rep, nil
}

func (a *kernelAnalysis) fillDump() {
	h := a.f.Header()
	d := &a.rep.Dump
	d.File, d.Size, d.SHA256 = a.opts.Source.File, a.opts.Source.Size, a.opts.Source.SHA256
	if d.Size == 0 {
		d.Size = a.f.Size()
	}
	d.Format = h.Format.String()
	d.Type = h.DumpType.String()
	d.Machine = h.Machine.String()
	d.CrashTime = h.SystemTime
	if h.SystemUpTime > 0 {
		d.Uptime = h.SystemUpTime.String()
	}
	d.Processors = int(h.NumberProcessors)
	if h.AttributesSet {
		v := Hex(h.Attributes)
		d.Attributes = &v
	}
}

func (a *kernelAnalysis) fillBugCheck() {
	b := &a.rep.BugCheck
	b.Code = Hex(a.bc.Code)
	b.Name = a.info.Name
	for i := range 4 {
		b.Params[i] = Hex(a.bc.Params[i])
		b.ParamText[i] = a.info.Param(i+1, a.bc.Params)
	}
	b.Subtype = a.info.Subcode(a.bc.Params)
	b.Hint = a.info.Hint
	b.DocURL = a.info.DocURL
	b.BugCheckStr = bugCheckStr(a.bc, &a.info)
}

// irql returns the IRQL at the failure when a parameter holds it.
func (a *kernelAnalysis) irql() *int {
	var v uint64
	switch a.info.Code {
	case 0x0A, 0xD1, 0xC5, 0xE1, 0x121:
		v = a.bc.Params[1]
	default:
		return nil
	}
	if v > 31 {
		return nil
	}
	n := int(v)
	return &n
}

// verifierOn reports whether Driver Verifier's extension is loaded.
func (a *kernelAnalysis) verifierOn() bool {
	for i := range a.mods {
		if strings.EqualFold(a.mods[i].Name, "VerifierExt.sys") {
			return true
		}
	}
	return false
}

// param returns bug-check parameter n (1..4), or 0 for n out of range.
func (a *kernelAnalysis) param(n int) uint64 {
	if n < 1 || n > 4 {
		return 0
	}
	return a.bc.Params[n-1]
}

// isExceptionCode reports whether the code's P1 is an exception code.
func (a *kernelAnalysis) isExceptionCode() bool {
	switch a.info.Code {
	case 0x1E, 0x3B, 0x7E, 0x8E:
		return true
	}
	return false
}

// chooseContext picks the register context for the stack: a context
// record, trap frame or exception record named by the parameters when it
// is readable and plausible, otherwise the dump header's context.
func (a *kernelAnalysis) chooseContext() *kdump.Context {
	rep := a.rep
	hdr, err := a.f.Context()
	if err != nil {
		a.problem("dump header context: %v", err)
		hdr = &kdump.Context{Machine: a.f.Machine()}
	}
	use := func(c *kdump.Context, source string, addr uint64, param int, cmd string) *kdump.Context {
		rep.Context = ContextInfo{Source: source, Param: param, IP: Hex(c.IP()), SP: Hex(c.SP()), Regs: registers(c)}
		if addr != 0 {
			v := Hex(addr)
			rep.Context.Address = &v
		}
		rep.StackCommand = cmd
		return c
	}
	if n := a.info.ContextParam; n > 0 {
		addr := a.param(n)
		if c, err := a.readContextRecord(addr); err == nil {
			a.why("used the context record in P%d (%s) for the stack", n, Hex(addr))
			return use(c, "context_record", addr, n, fmt.Sprintf(".cxr %s ; kb", Hex(addr)))
		} else if addr != 0 {
			a.problem("context record at P%d %s: %v", n, Hex(addr), err)
		}
	}
	if n := a.info.TrapParam; n > 0 {
		addr := a.param(n)
		if c, err := a.readTrapFrame(addr); err == nil {
			a.why("used the trap frame in P%d (%s) for the stack", n, Hex(addr))
			return use(c, "trap_frame", addr, n, fmt.Sprintf(".trap %s ; kb", Hex(addr)))
		} else if addr != 0 {
			a.problem("trap frame at P%d %s: %v", n, Hex(addr), err)
		}
	}
	return use(hdr, "dump_header", 0, 0, ".cxr; .ecxr ; kb")
}

// plausibleContext checks a context read from memory: a non-zero,
// aligned stack pointer and an instruction pointer in kernel space.
func (a *kernelAnalysis) plausibleContext(c *kdump.Context) error {
	if c.IP() == 0 || c.SP() == 0 {
		return errors.New("zero instruction or stack pointer")
	}
	if c.SP()%uint64(a.ptr) != 0 {
		return fmt.Errorf("misaligned stack pointer %s", Hex(c.SP()))
	}
	if a.ptr == 8 && (c.IP()>>47 != 0x1FFFF || c.SP()>>47 != 0x1FFFF) {
		return fmt.Errorf("instruction pointer %s or stack pointer %s is not a kernel address", Hex(c.IP()), Hex(c.SP()))
	}
	return nil
}

// readContextRecord reads a CONTEXT record of the dump's machine at addr.
func (a *kernelAnalysis) readContextRecord(addr uint64) (*kdump.Context, error) {
	if addr == 0 {
		return nil, errors.New("no address")
	}
	size := kdump.ContextSize(a.f.Machine())
	if size == 0 {
		return nil, kdump.ErrUnsupported
	}
	b := make([]byte, size)
	if _, err := a.mem.ReadVirtual(b, addr); err != nil {
		return nil, err
	}
	c, err := kdump.ParseContext(a.f.Machine(), b)
	if err != nil {
		return nil, err
	}
	return c, a.plausibleContext(c)
}

// readTrapFrame reads a KTRAP_FRAME at addr (x64 and x86 layouts).
func (a *kernelAnalysis) readTrapFrame(addr uint64) (*kdump.Context, error) {
	if addr == 0 {
		return nil, errors.New("no address")
	}
	le := binary.LittleEndian
	m := a.f.Machine()
	c := &kdump.Context{Machine: m}
	switch m {
	case kdump.MachineAMD64:
		var b [0x190]byte
		if _, err := a.mem.ReadVirtual(b[:], addr); err != nil {
			return nil, err
		}
		// Volatile registers, then Rbp, Rip, SegCs, EFlags, Rsp, SegSs.
		c.GPR[kdump.RegRAX] = le.Uint64(b[0x30:])
		c.GPR[kdump.RegRCX] = le.Uint64(b[0x38:])
		c.GPR[kdump.RegRDX] = le.Uint64(b[0x40:])
		for i := range 4 { // R8..R11
			c.GPR[kdump.RegR8+i] = le.Uint64(b[0x48+8*i:])
		}
		c.GPR[kdump.RegRBP] = le.Uint64(b[0x158:])
		c.PC = le.Uint64(b[0x168:])
		c.SegCs = le.Uint16(b[0x170:])
		c.Status = le.Uint32(b[0x178:])
		c.GPR[kdump.RegRSP] = le.Uint64(b[0x180:])
		c.SegSs = le.Uint16(b[0x188:])
	case kdump.MachineI386:
		var b [0x8C]byte
		if _, err := a.mem.ReadVirtual(b[:], addr); err != nil {
			return nil, err
		}
		c.GPR[kdump.RegRBP] = uint64(le.Uint32(b[0x60:]))
		c.PC = uint64(le.Uint32(b[0x68:]))
		c.SegCs = uint16(le.Uint32(b[0x6C:]))
		c.Status = le.Uint32(b[0x70:])
		// A kernel-to-kernel trap does not push ESP: the interrupted stack
		// continues right after the frame's hardware part.
		c.GPR[kdump.RegRSP] = addr + 0x74
		if c.SegCs&3 != 0 {
			c.GPR[kdump.RegRSP] = uint64(le.Uint32(b[0x74:]))
		}
	default:
		return nil, fmt.Errorf("%w: trap frames of %v", kdump.ErrUnsupported, m)
	}
	return c, a.plausibleContext(c)
}

// registers returns the context's general registers by name.
func registers(c *kdump.Context) map[string]Hex {
	r := map[string]Hex{}
	switch c.Machine {
	case kdump.MachineAMD64:
		names := [...]string{"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"}
		for i, n := range names {
			r[n] = Hex(c.GPR[i])
		}
		r["rip"] = Hex(c.PC)
		r["eflags"] = Hex(c.Status)
	case kdump.MachineI386:
		names := [...]string{"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"}
		for i, n := range names {
			r[n] = Hex(c.GPR[i])
		}
		r["eip"] = Hex(c.PC)
		r["efl"] = Hex(c.Status)
	case kdump.MachineARM64:
		for i := range 29 {
			r["x"+strconv.Itoa(i)] = Hex(c.GPR[i])
		}
		r["fp"] = Hex(c.GPR[kdump.RegARM64FP])
		r["lr"] = Hex(c.GPR[kdump.RegARM64LR])
		r["sp"] = Hex(c.GPR[kdump.RegARM64SP])
		r["pc"] = Hex(c.PC)
		r["cpsr"] = Hex(c.Status)
	case kdump.MachineARMNT:
		for i := range 13 {
			r["r"+strconv.Itoa(i)] = Hex(c.GPR[i])
		}
		r["sp"] = Hex(c.GPR[kdump.RegARMSP])
		r["lr"] = Hex(c.GPR[kdump.RegARMLR])
		r["pc"] = Hex(c.PC)
		r["cpsr"] = Hex(c.Status)
	}
	return r
}

// faultingIP returns the faulting instruction address the parameters
// give, and the parameter (0 when it came from an exception record).
func (a *kernelAnalysis) faultingIP() (uint64, int, bool) {
	if n := a.info.IPParam; n > 0 && a.param(n) != 0 {
		return a.param(n), n, true
	}
	if n := a.info.ExceptionParam; n > 0 && a.param(n) != 0 {
		var b [0x18]byte
		if _, err := a.mem.ReadVirtual(b[:], a.param(n)); err == nil {
			var addr uint64
			if a.ptr == 8 {
				addr = binary.LittleEndian.Uint64(b[0x10:])
			} else {
				addr = uint64(binary.LittleEndian.Uint32(b[0xC:]))
			}
			if addr != 0 {
				return addr, n, true
			}
		}
	}
	return 0, 0, false
}

// buildStack walks the stack from c and names every frame.
func (a *kernelAnalysis) buildStack(c *kdump.Context) {
	raw, errs := walkStack(a.ctx, a.mem, c, a.mods, a.opts.Images)
	for _, err := range errs {
		a.problem("stack walk: %v", err)
	}
	if ip, n, ok := a.faultingIP(); ok {
		if raw[0].ip != ip {
			// The context is not the fault's (usually KeBugCheckEx): put
			// the faulting instruction on top, as !analyze does when it
			// applies the trap frame.
			raw = append([]rawFrame{{ip: ip, foundBy: "ip_param"}}, raw...)
		}
		a.ipIdx = 0
		info := a.addressInfo(ip)
		if n > 0 && a.info.IPParam == n {
			info.Param = n
		}
		a.rep.FaultingIP = &info
	}
	a.rep.Stack = make([]Frame, len(raw))
	for i, r := range raw {
		a.rep.Stack[i] = a.nameFrame(i, r)
	}
	for i := range a.rep.Stack {
		if m := a.rep.Stack[i].Module; m != "" && !isKernelOrHAL(m) {
			a.rep.FirstThirdPartyFrame = i
			break
		}
	}
}

// addressInfo places an address among the loaded and unloaded modules.
func (a *kernelAnalysis) addressInfo(addr uint64) AddressInfo {
	info := AddressInfo{Address: Hex(addr), Where: "no_module"}
	if m := kdump.ModuleAt(a.mods, addr); m != nil {
		off := Hex(addr - m.Base)
		info.Where = "module"
		info.Image = imageName(m, a.f.Machine(), a.f.PaeEnabled())
		info.Module = moduleName(m.Name)
		info.Offset = &off
		info.Symbol = a.symbolName(m, addr)
		return info
	}
	for i := range a.unl {
		if a.unl[i].Contains(addr) {
			off := Hex(addr - a.unl[i].Start)
			info.Where = "unloaded_module"
			info.Image = cleanName(a.unl[i].Name)
			info.Module = "Unloaded_" + info.Image
			info.Offset = &off
			info.Symbol = fmt.Sprintf("%s+%x", info.Module, addr-a.unl[i].Start)
			return info
		}
	}
	return info
}

// symbolName returns SYMBOL_NAME for an address in module m:
// module!function+off with symbols, module+rva without.
func (a *kernelAnalysis) symbolName(m *kdump.Module, addr uint64) string {
	name := moduleName(m.Name)
	if a.opts.Symbols != nil {
		if fn, off, ok := a.opts.Symbols.Symbolize(a.ctx, *m, addr-m.Base); ok {
			return fmt.Sprintf("%s!%s+%x", name, fn, off)
		}
	}
	return fmt.Sprintf("%s+%x", name, addr-m.Base)
}

func (a *kernelAnalysis) nameFrame(i int, r rawFrame) Frame {
	fr := Frame{Index: i, IP: Hex(r.ip), SP: Hex(r.sp), FoundBy: r.foundBy}
	m := kdump.ModuleAt(a.mods, r.ip)
	if m == nil {
		fr.Symbol = Hex(r.ip).String()
		for j := range a.unl {
			if a.unl[j].Contains(r.ip) {
				fr.Unloaded = cleanName(a.unl[j].Name)
				fr.Symbol = fmt.Sprintf("Unloaded_%s+0x%x", fr.Unloaded, r.ip-a.unl[j].Start)
				break
			}
		}
		return fr
	}
	off := Hex(r.ip - m.Base)
	fr.Module = moduleName(m.Name)
	fr.Image = imageName(m, a.f.Machine(), a.f.PaeEnabled())
	fr.Offset = &off
	fr.Symbol = fmt.Sprintf("%s+0x%x", fr.Module, uint64(off))
	if sym, ok := symbolize(a.ctx, a.opts.Symbols, *m, uint64(off)); ok && sym.Function != "" {
		fo := Hex(sym.Offset)
		fr.Function, fr.FuncOffset = sym.Function, &fo
		fr.Symbol = fmt.Sprintf("%s!%s+0x%x", fr.Module, sym.Function, sym.Offset)
		if sym.File != "" && sym.Line > 0 {
			fr.SourceFile, fr.SourceLine = sym.File, sym.Line
		}
	}
	return fr
}
