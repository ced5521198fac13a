package triage

// User-mode analysis (application crashes in MDMP minidumps).
//
// The report has the kernel report's shape, with Exception in place of the
// bug check and AnalysisSource "um". The culprit is the faulting
// instruction's frame unless the rules pass over it (ignore, maybe_,
// last_: the embedded defaults mark ntdll's and KERNELBASE's exception and
// fail-fast plumbing); an instruction pointer in no module blames the
// caller that jumped there, as !analyze does.
//
// FAILURE_BUCKET_ID follows WinDbg's user-mode form
//
//	CLASS "_" EXCCODE "_" IMAGE "!" FUNCTION
//
// with EXCCODE the exception code in 8 lower-case hex digits, IMAGE the
// image file name with its extension (App.exe, ntdll.dll) and FUNCTION the
// function without offset, "Unknown" without symbols (blanks become "_").
// FAILURE_ID_HASH hashes "um:" + the lower-case bucket (hash.go).
//
// Documented forms (analyze-semantics §1.4 and the issue):
// NULL_CLASS_PTR_WRITE_c0000005_App.exe!Unknown,
// NULL_POINTER_READ_c0000005_test_app.exe!CrashFunction, the
// Unknown_Image!Unknown culprit, the <image>!Unloaded culprit.
// Our reading of the rest (observed in WinDbg output, not documented):
// access violations give NULL_POINTER_{READ,WRITE} for address 0,
// NULL_CLASS_PTR_{READ,WRITE} below 64 KiB, INVALID_POINTER_{READ,WRITE}
// elsewhere (including non-canonical addresses), NULL_INSTRUCTION_PTR,
// SOFTWARE_NX_FAULT and BAD_INSTRUCTION_PTR for execute faults;
// STATUS_STACK_BUFFER_OVERRUN gives STACK_BUFFER_OVERRUN for stack-cookie
// failures and FAIL_FAST_<code name> for other __fastfail codes; other
// codes take the class of exceptionTable (BREAKPOINT, STACK_OVERFLOW,
// HEAP_CORRUPTION, CPP_EXCEPTION...) or APPLICATION_FAULT. Dumps of other
// systems (Breakpad/Crashpad on Linux, macOS) use the signal or Mach
// exception name (SIGSEGV_0000000b_...); dumps with no exception record
// use NO_EXCEPTION without a code.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/rs/zerolog"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/kdump/minidump"
	"github.com/kdtriage/kdtriage/rules"
	"github.com/kdtriage/kdtriage/triage/stack"
)

// userException is the exception a user-mode dump records, whatever the
// container (MDMP exception stream or a legacy dump's debug event).
type userException struct {
	code, flags uint32
	addr        uint64
	nparams     int
	params      []uint64
	threadID    uint32
	hasContext  bool
}

// userAnalysis is the state of one user-mode analysis.
type userAnalysis struct {
	ctx     context.Context
	d       kdump.Dump
	md      *minidump.File // nil for dumps that are not MDMP
	opts    Options
	log     zerolog.Logger
	rep     *Report
	mods    []kdump.Module
	unl     []kdump.UnloadedModule
	mem     kdump.Memory
	ptr     int
	set     *rules.Set
	syms    *umSymbols
	exc     *userException
	windows bool
	// callers[i] is true when frame i's IP is a return address.
	callers []bool
}

func (a *userAnalysis) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	a.rep.Problems = append(a.rep.Problems, msg)
	a.log.Debug().Msg(msg)
}

func (a *userAnalysis) why(format string, args ...any) {
	a.rep.Why = append(a.rep.Why, fmt.Sprintf(format, args...))
}

// analyzeUserMode analyses an application crash: a user-mode MDMP
// minidump (*kdump.UserDump, including Breakpad and Crashpad dumps) or
// any other non-kernel kdump.Dump (a legacy USERDUMP/USERDU64 file).
func (analyzers) analyzeUserMode(ctx context.Context, d kdump.Dump, opts Options) (*Report, error) {
	a := &userAnalysis{ctx: ctx, d: d, opts: opts, log: opts.Log, mem: d.Memory(), ptr: d.Machine().PointerSize(), windows: true}
	if a.ptr == 0 {
		a.ptr = 8
	}
	if ud, ok := d.(*kdump.UserDump); ok {
		a.md = ud.Minidump()
	}
	rep := &Report{
		SchemaVersion:        SchemaVersion,
		BucketSchemeVersion:  BucketSchemeVersion,
		AnalysisSource:       SourceUser,
		Host:                 opts.Host,
		FirstThirdPartyFrame: -1,
		Culprit:              Culprit{Frame: -1, Kind: CulpritNone},
		Why:                  []string{},
		Stack:                []Frame{},
	}
	a.rep = rep
	if a.md != nil {
		for _, p := range a.md.Problems() {
			a.problem("%v", p)
		}
	}
	a.set = ruleSet(opts, a.problem)
	if a.set != nil {
		rep.RuleSetHash = a.set.Hash()
	}

	var err error
	if a.mods, err = d.Modules(); err != nil {
		a.problem("module list: %v", err)
	}
	var mdMods []minidump.Module
	if a.md != nil {
		mdMods, _ = a.md.Modules()
		if ud, ok := d.(*kdump.UserDump); ok {
			if a.unl, err = ud.UnloadedModules(); err != nil {
				a.problem("unloaded-module list: %v", err)
			}
		}
	}
	rep.ModuleCount = len(a.mods)
	for _, u := range a.unl {
		rep.UnloadedModules = append(rep.UnloadedModules, UnloadedModuleInfo{Name: cleanName(u.Name), Start: Hex(u.Start), End: Hex(u.End)})
	}
	a.syms = newUMSymbols(opts.Symbols, a.mods, mdMods)

	a.fillDump()
	a.fillOS()
	if name, err := userProcessName(d); err == nil {
		rep.ProcessName = name
	} else {
		a.problem("process name: %v", err)
	}
	a.readException()
	a.fillException()

	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := a.chooseContext()
	if err := a.buildStack(c); err != nil {
		return nil, err
	}
	a.blame()
	a.finishBucket()
	return rep, nil
}

// userProcessName returns the executable's name.
func userProcessName(d kdump.Dump) (string, error) {
	if p, ok := d.(interface{ ProcessName() (string, error) }); ok {
		return p.ProcessName()
	}
	mods, err := d.Modules()
	if err != nil || len(mods) == 0 {
		return "", fmt.Errorf("%w: no main module", kdump.ErrNotPresent)
	}
	return mods[0].Name, nil
}

func (a *userAnalysis) fillDump() {
	d := &a.rep.Dump
	d.File, d.Size, d.SHA256 = a.opts.Source.File, a.opts.Source.Size, a.opts.Source.SHA256
	d.Format = a.d.Format().String()
	d.Machine = a.d.Machine().String()
	if a.md == nil {
		return
	}
	if d.Size == 0 {
		d.Size = a.md.Size()
	}
	h := a.md.Header()
	d.Type = h.Flags.String()
	if h.TimeDateStamp != 0 {
		d.CrashTime = h.Time()
	}
	if si, err := a.md.SystemInfo(); err == nil {
		d.Processors = int(si.NumberOfProcessors)
	}
}

// fillOS fills OSInfo from SystemInfoStream and the build string of
// MiscInfoStream (version 4 and later).
func (a *userAnalysis) fillOS() {
	o := &a.rep.OS
	o.Platform = a.d.Machine().String()
	o.Name = "Windows"
	if a.md == nil {
		return
	}
	si, err := a.md.SystemInfo()
	if err != nil {
		a.problem("system info: %v", err)
		return
	}
	switch si.PlatformID {
	case minidump.PlatformWinNT, minidump.PlatformWin9x, minidump.PlatformWin32s, minidump.PlatformWinCE:
	default:
		a.windows = false
		o.Name = si.PlatformID.String()
		o.Version = fmt.Sprintf("%d.%d.%d", si.MajorVersion, si.MinorVersion, si.BuildNumber)
		if si.CSDVersion != "" {
			o.BuildLab = si.CSDVersion
			if si.MajorVersion == 0 && si.MinorVersion == 0 && si.BuildNumber == 0 {
				o.Version = si.CSDVersion
			}
		}
		return
	}
	o.Build = si.BuildNumber
	o.ProductType = productTypeName(uint32(si.ProductType))
	rev := uint32(0)
	if mi, err := a.md.MiscInfo(); err == nil && mi.BuildString != "" {
		o.BuildLab = mi.BuildString
		if b, r, branch, ok := parseBuildLab(mi.BuildString); ok && b == si.BuildNumber {
			rev, o.Branch = r, branch
		}
	}
	o.Version = fmt.Sprintf("%d.%d.%d.%d", si.MajorVersion, si.MinorVersion, si.BuildNumber, rev)
	o.Name = osName(si.BuildNumber, si.ProductType > 1)
}

// readException reads the exception record.
func (a *userAnalysis) readException() {
	if a.md != nil {
		e, err := a.md.Exception()
		if err != nil {
			if !errors.Is(err, minidump.ErrNoStream) {
				a.problem("exception stream: %v", err)
			}
			return
		}
		a.exc = &userException{code: e.Code, flags: e.Flags, addr: e.Address, nparams: int(e.NumberParameters),
			params: e.Information, threadID: e.ThreadID, hasContext: e.Context.DataSize > 0}
		return
	}
	if l, ok := a.d.(*kdump.LegacyUserDump); ok {
		if info := l.Info(); info.HasException {
			a.exc = &userException{code: info.ExceptionCode, addr: info.ExceptionAddress, threadID: info.ThreadID}
		}
	}
}

// fillException builds the report's exception section and the bucket
// class.
func (a *userAnalysis) fillException() {
	e := a.exc
	if e == nil {
		a.rep.Exception = &ExceptionReport{Class: "NO_EXCEPTION", Params: []Hex{},
			Description: "the dump holds no exception record: it was written on request (a hang, a watchdog or a manual dump), not by a crash"}
		a.why("the dump has no exception record, so the analysis looks at the first thread's stack")
		return
	}
	x := &ExceptionReport{Code: Hex(e.code), Flags: Hex(e.flags), Address: Hex(e.addr), NumberParameters: e.nparams,
		ThreadID: e.threadID, CrashAddress: Hex(e.addr), Params: make([]Hex, len(e.params))}
	for i, p := range e.params {
		x.Params[i] = Hex(p)
	}
	a.rep.Exception = x
	if a.md != nil {
		x.Reason, x.Detail = a.md.CrashReason(), a.md.CrashDetail()
		if ai, err := a.md.AssertionInfo(); err == nil && x.Detail == "" {
			x.Detail = assertionDetail(ai)
			a.why("Breakpad's assertion record: %s", x.Detail)
		}
	}
	if !a.windows {
		x.Name = x.Reason
		x.Class = tokenize(x.Reason)
		if x.Class == "" || strings.HasPrefix(x.Reason, "0x") {
			x.Class = "APPLICATION_FAULT"
		}
		x.Description = "signal or exception " + x.Reason + " of a " + a.rep.OS.Name + " process"
		if x.Detail != "" {
			x.Description += " (" + x.Detail + ")"
		}
		a.why("%s crash %s at %s", a.rep.OS.Name, x.Reason, Hex(e.addr))
		return
	}
	x.Name = exceptionName(e.code)
	if x.Reason == "" {
		x.Reason = x.Name
		if x.Reason == "" {
			x.Reason = fmt.Sprintf("%#08x", e.code)
		}
	}
	info, known := exceptionTable[e.code]
	x.Description, x.Class = info.desc, info.class
	if !known {
		x.Class = "APPLICATION_FAULT"
		x.Description = "exception code not in kdtriage's table"
	}
	switch e.code {
	case 0xC0000005, 0xC0000006:
		if len(e.params) >= 2 {
			switch e.params[0] {
			case 0:
				x.Access = "read"
			case 1:
				x.Access = "write"
			case 8:
				x.Access = "execute"
			}
			t := Hex(e.params[1])
			x.Target, x.CrashAddress = &t, t
			x.TargetClass = addressClass(e.params[1], a.ptr)
			if x.Access == "execute" && x.TargetClass == "user" {
				// Mapped memory that cannot be executed: DEP.
				var b [1]byte
				if _, err := a.mem.ReadVirtual(b[:], e.params[1]); err == nil || kdump.ModuleAt(a.mods, e.params[1]) != nil {
					x.DEP = true
				}
			}
			if e.code == 0xC0000005 {
				x.Class = avClass(x.Access, x.TargetClass, x.DEP)
			} else if x.Access != "" {
				x.Class += "_" + strings.ToUpper(x.Access)
			}
			a.why("%s: %s access to %s (%s)", x.Reason, accessWord(x.Access), t, targetWords(x.TargetClass))
		} else {
			a.why("%s without its access parameters", x.Reason)
		}
	case 0xC0000409:
		hasCode := len(e.params) > 0
		var sub uint64
		if hasCode {
			sub = e.params[0]
		}
		x.Class = fastFailClass(sub, hasCode)
		if x.Detail != "" {
			a.why("STATUS_STACK_BUFFER_OVERRUN (__fastfail) with code %d %s", sub, x.Detail)
		}
	default:
		a.why("exception %08x %s: %s", e.code, x.Name, x.Description)
	}
}

func accessWord(a string) string {
	if a == "" {
		return "an unknown"
	}
	return "a " + a
}

func targetWords(class string) string {
	switch class {
	case "null":
		return "a NULL pointer"
	case "null_offset":
		return "an offset from a NULL pointer: a field of a NULL object"
	case "non_canonical":
		return "a non-canonical address: the processor raised a general-protection fault and Windows reports no address"
	case "kernel":
		return "a kernel address"
	}
	return "an invalid user address"
}

// chooseContext returns the exception's context (or the first thread's
// when the dump records no exception) and fills the report's context.
func (a *userAnalysis) chooseContext() *kdump.Context {
	c, err := a.d.Context()
	if err != nil {
		a.problem("register context: %v", err)
		a.rep.StackCommand = "~0s ; kb"
		a.rep.Context = ContextInfo{Source: "dump_header"}
		return nil
	}
	idx := 0
	if a.exc != nil && a.md != nil {
		if ths, err := a.md.Threads(); err == nil {
			for i := range ths {
				if ths[i].ID == a.exc.threadID {
					idx = i
					break
				}
			}
		}
	}
	src := "dump_header"
	a.rep.StackCommand = fmt.Sprintf("~%ds ; kb", idx)
	if a.exc != nil && a.exc.hasContext {
		src = "exception_record"
		a.rep.StackCommand = fmt.Sprintf("~%ds ; .ecxr ; kb", idx)
		a.why("the stack is walked from the exception's context (.ecxr) of thread %#x", a.exc.threadID)
	}
	a.rep.Context = ContextInfo{Source: src, IP: Hex(c.IP()), SP: Hex(c.SP()), Regs: registers(c)}
	return c
}

// buildStack walks the stack from c with the shared walker: unwind tables
// from the images in the dump or Options.Images, Breakpad CFI from the
// symbols, frame pointers and a validated scan.
func (a *userAnalysis) buildStack(c *kdump.Context) error {
	if c == nil {
		return nil
	}
	var images stack.Images = stack.MemoryImages{Memory: a.mem}
	if a.opts.Images != nil {
		images = stack.ImagesChain{images, a.opts.Images}
	}
	in := stack.Input{Context: c, Memory: a.mem, Modules: a.mods, Images: images}
	if a.syms.full != nil {
		in.CFI = a.syms
	}
	frames, err := stack.Walk(a.ctx, in)
	if cerr := a.ctx.Err(); cerr != nil {
		return cerr
	}
	type raw struct {
		ip, sp  uint64
		foundBy string
		caller  bool
	}
	var rs []raw
	for i := range frames {
		f := &frames[i]
		rs = append(rs, raw{f.IP, f.SP, foundByName(f.FoundBy), f.IsCaller()})
	}
	if len(rs) == 0 {
		if err != nil && !errors.Is(err, stack.ErrUnsupported) {
			a.problem("stack walk: %v", err)
		}
		for i, r := range scanStack(a.mem, c, a.mods) {
			rs = append(rs, raw{r.ip, r.sp, r.foundBy, i > 0})
		}
	} else if err != nil {
		a.problem("stack walk: %v", err)
	}
	a.rep.Stack = make([]Frame, len(rs))
	a.callers = make([]bool, len(rs))
	for i, r := range rs {
		a.callers[i] = r.caller
		a.rep.Stack[i] = a.nameFrame(i, r.ip, r.sp, r.foundBy, r.caller)
	}
	for i := range a.rep.Stack {
		if m := a.rep.Stack[i].Image; m != "" && !isSystemImage(m) {
			a.rep.FirstThirdPartyFrame = i
			break
		}
	}
	switch {
	case a.exc != nil && a.windows:
		info := a.addressInfo(a.exc.addr)
		a.rep.FaultingIP = &info
	case a.exc != nil && len(a.rep.Stack) > 0:
		// Breakpad's Linux and macOS dumps record the fault address, not
		// the instruction: the faulting instruction is the context's.
		info := a.addressInfo(uint64(a.rep.Stack[0].IP))
		a.rep.FaultingIP = &info
	}
	return nil
}

// moduleIndex returns the index in mods of the module holding addr, or -1.
func moduleIndex(mods []kdump.Module, addr uint64) int {
	for i := range mods {
		if mods[i].Contains(addr) {
			return i
		}
	}
	return -1
}

// nameFrame names one frame: module+offset, and with symbols the function,
// its offset and the source line. Return addresses are looked up one byte
// back (the call may be the last instruction of its function), as
// debuggers and minidump_stackwalk do.
func (a *userAnalysis) nameFrame(i int, ip, sp uint64, foundBy string, caller bool) Frame {
	fr := Frame{Index: i, IP: Hex(ip), SP: Hex(sp), FoundBy: foundBy}
	mi := moduleIndex(a.mods, ip)
	if mi < 0 {
		fr.Symbol = Hex(ip).String()
		for j := range a.unl {
			if a.unl[j].Contains(ip) {
				fr.Unloaded = cleanName(a.unl[j].Name)
				fr.Symbol = fmt.Sprintf("Unloaded_%s+0x%x", fr.Unloaded, ip-a.unl[j].Start)
				break
			}
		}
		return fr
	}
	m := &a.mods[mi]
	off := ip - m.Base
	o := Hex(off)
	fr.Module, fr.Image, fr.Offset = userModuleName(m.Name), m.Name, &o
	fr.Symbol = fmt.Sprintf("%s+0x%x", fr.Module, off)
	look := off
	if caller && look > 0 {
		look--
	}
	if s := a.syms.lookup(a.ctx, mi, look); s.ok {
		fo := Hex(s.offset + (off - look))
		fr.Function, fr.FuncOffset = s.function, &fo
		fr.Symbol = fmt.Sprintf("%s!%s+0x%x", fr.Module, s.function, uint64(fo))
		fr.SourceFile, fr.SourceLine = s.file, s.line
	}
	return fr
}

// addressInfo places an address among the modules.
func (a *userAnalysis) addressInfo(addr uint64) AddressInfo {
	info := AddressInfo{Address: Hex(addr), Where: "no_module"}
	if mi := moduleIndex(a.mods, addr); mi >= 0 {
		m := &a.mods[mi]
		off := Hex(addr - m.Base)
		info.Where, info.Image, info.Module, info.Offset = "module", m.Name, userModuleName(m.Name), &off
		info.Symbol = a.symbolName(mi, addr)
		return info
	}
	for i := range a.unl {
		if a.unl[i].Contains(addr) {
			off := Hex(addr - a.unl[i].Start)
			info.Where = "unloaded_module"
			info.Image = cleanName(a.unl[i].Name)
			info.Module = "Unloaded_" + info.Image
			info.Offset = &off
			info.Symbol = fmt.Sprintf("%s+%x", info.Module, uint64(off))
			return info
		}
	}
	return info
}

// symbolName returns SYMBOL_NAME for an address in module mi:
// module!function+off with symbols, module+rva without.
func (a *userAnalysis) symbolName(mi int, addr uint64) string {
	m := &a.mods[mi]
	name := userModuleName(m.Name)
	if s := a.syms.lookup(a.ctx, mi, addr-m.Base); s.ok {
		return fmt.Sprintf("%s!%s+%x", name, s.function, s.offset)
	}
	return fmt.Sprintf("%s+%x", name, addr-m.Base)
}

// systemImages are Windows' own user-mode images and the Microsoft C
// runtimes: a frame in them is not the first third-party frame.
var systemImages = map[string]bool{
	"ntdll.dll": true, "kernel32.dll": true, "kernelbase.dll": true, "ucrtbase.dll": true, "msvcrt.dll": true,
	"user32.dll": true, "win32u.dll": true, "gdi32.dll": true, "gdi32full.dll": true, "combase.dll": true,
	"ole32.dll": true, "rpcrt4.dll": true, "sechost.dll": true, "advapi32.dll": true, "shell32.dll": true,
	"vcruntime140.dll": true, "vcruntime140_1.dll": true, "msvcp140.dll": true, "wow64.dll": true,
	"wow64win.dll": true, "wow64cpu.dll": true, "uiautomationcore.dll": true,
}

func isSystemImage(image string) bool { return systemImages[strings.ToLower(image)] }

// rulesInput builds what the rule engine looks at.
func (a *userAnalysis) rulesInput() rules.Input {
	in := rules.Input{
		Machine: a.d.Machine().String(),
		OSBuild: a.rep.OS.Build,
		Kind:    rules.KindUser,
		Modules: make([]rules.Module, 0, len(a.mods)),
		Frames:  rulesFrames(a.rep.Stack),
	}
	if a.exc != nil && a.windows {
		in.ExceptionCode = a.exc.code
	}
	for i := range a.mods {
		m := &a.mods[i]
		in.Modules = append(in.Modules, rules.Module{Name: userModuleName(m.Name), Image: m.Name, Timestamp: m.TimeDateStamp})
	}
	return in
}

// blame chooses the culprit: the faulting instruction's frame unless the
// rules pass over it (ignore, maybe_, last_), the caller when the
// instruction pointer is in no module, then the rules' actions and the
// Followup.
func (a *userAnalysis) blame() {
	rep := a.rep
	in := a.rulesInput()
	var res rules.Result
	if a.set != nil {
		res = a.set.Match(in)
	} else {
		res = rules.Result{Frames: make([]rules.FrameDecision, len(in.Frames)), Blame: -1}
	}
	for i := range rep.Stack {
		d := res.Frames[i]
		rep.Stack[i].Decision = d.Strength.String()
		rep.Stack[i].Owner = d.Owner
		rep.Stack[i].Rule = d.Rule
	}
	blamed := -1
	switch {
	case len(rep.Stack) == 0:
		a.inconclusive("the dump gives no usable register context, so there is no stack to blame from")
	case rep.Stack[0].Module == "":
		blamed = a.blameOutsideModules(res)
	default:
		blamed = a.blameTop(res)
	}

	if a.set != nil {
		res = a.set.MatchBlamed(in, blamed)
	}
	act := res.Actions
	recordRules(&rep.Rules, res)
	if act.BlameImage != "" {
		blamed = a.applyBlameImage(act.BlameImage, blamed)
	}
	if blamed >= 0 {
		rep.Stack[blamed].Blamed = true
	}
	switch {
	case act.Owner != "":
		rep.Followup = act.Owner
	case rep.Culprit.Frame >= 0 && rep.Stack[rep.Culprit.Frame].Owner != "":
		rep.Followup = rep.Stack[rep.Culprit.Frame].Owner
	}
	switch {
	case rep.Followup == "":
		a.why("no rule gives an owner, so there is no Followup")
	case rep.Culprit.Frame >= 0 && rep.Stack[rep.Culprit.Frame].Owner == rep.Followup:
		a.why("Followup %s is the rules' owner of the blamed frame %d", rep.Followup, rep.Culprit.Frame)
	default:
		a.why("Followup %s is the owner a crash-level rule gives", rep.Followup)
	}
}

// blameTop applies the rules to the faulting frame (frame 0).
func (a *userAnalysis) blameTop(res rules.Result) int {
	rep := a.rep
	fr := &rep.Stack[0]
	src := fmt.Sprintf("the faulting instruction %s", fr.IP)
	if fr.FoundBy != "context" {
		src = fmt.Sprintf("the top frame %s (%s)", fr.IP, fr.FoundBy)
	}
	st := res.Frames[0].Strength
	switch st {
	case rules.StrengthDefinite, rules.StrengthNone:
		a.why("%s lies in %s at %s; %s", src, fr.Image, fr.Symbol, ruleNote(res.Frames[0], st))
		return a.setFrameCulprit(0, ConfidenceHigh, "context")
	case rules.StrengthMaybe:
		if j := a.findBelow(res, 0, func(s rules.Strength) bool { return s == rules.StrengthDefinite }); j >= 0 {
			a.why("%s lies in %s, but its owner is only maybe_ (%s); frame %d %s (%s) has a definite owner and wins",
				src, fr.Image, res.Frames[0].Rule, j, rep.Stack[j].Symbol, rep.Stack[j].FoundBy)
			return a.setFrameCulprit(j, ConfidenceMedium, "stack")
		}
		a.why("%s lies in %s (a maybe_ owner) and no frame below has a definite owner", src, fr.Image)
		return a.setFrameCulprit(0, ConfidenceMedium, "context")
	case rules.StrengthIgnore:
		return a.blameStack(res, 1, fmt.Sprintf("%s lies in %s, but %s, so the frames below it decide", src, fr.Image, ruleNote(res.Frames[0], st)))
	}
	// last_: the system's exception and fail-fast plumbing.
	if j := a.findBelow(res, 0, func(s rules.Strength) bool {
		return s.Rank() > rules.StrengthLast.Rank()
	}); j >= 0 {
		a.why("%s lies in %s (%s); frame %d %s, found by %s, is the first frame below it the rules do not pass over and is blamed instead",
			src, fr.Image, ruleNote(res.Frames[0], st), j, rep.Stack[j].Symbol, rep.Stack[j].FoundBy)
		return a.setFrameCulprit(j, ConfidenceMedium, "stack")
	}
	a.why("%s lies in %s (%s); no frame below it has a better claim, so it is blamed as a last resort", src, fr.Image, ruleNote(res.Frames[0], st))
	return a.setFrameCulprit(0, ConfidenceLow, "context")
}

// findBelow returns the first frame below i, found by a trusted method and
// in a module, whose strength satisfies ok; -1 when none.
func (a *userAnalysis) findBelow(res rules.Result, i int, ok func(rules.Strength) bool) int {
	for j := i + 1; j < len(a.rep.Stack); j++ {
		fr := &a.rep.Stack[j]
		if !trusted(fr.FoundBy) || fr.Module == "" {
			continue
		}
		if ok(res.Frames[j].Strength) {
			return j
		}
	}
	return -1
}

// blameStack blames the top-most frame of the strongest class from index
// from on, in the rules' order (rules.Strength.Rank: an unowned frame beats
// a last_ one, which in user mode marks the system's plumbing).
func (a *userAnalysis) blameStack(res rules.Result, from int, intro string) int {
	rep := a.rep
	best, bestRank := -1, 0
	for i := from; i < len(rep.Stack); i++ {
		fr := &rep.Stack[i]
		if fr.Module == "" {
			continue
		}
		if rk := res.Frames[i].Strength.Rank(); rk > bestRank {
			best, bestRank = i, rk
		}
	}
	if best < 0 {
		ignored := 0
		for i := from; i < len(rep.Stack); i++ {
			if rep.Stack[i].Module != "" && res.Frames[i].Strength == rules.StrengthIgnore {
				ignored++
			}
		}
		reason := "no frame below lies in a module that can be blamed"
		if ignored > 0 {
			reason = fmt.Sprintf("every frame below that lies in a module is ignored by the rules (%d frame(s)), so no frame is at fault", ignored)
		}
		a.inconclusive(intro + "; " + reason)
		return -1
	}
	fr := &rep.Stack[best]
	st := res.Frames[best].Strength
	conf := ConfidenceMedium
	if !trusted(fr.FoundBy) || st == rules.StrengthLast {
		conf = ConfidenceLow
	}
	a.why("%s: frame %d %s (%s, found by %s) is the top-most frame of the strongest class (%s; %s)",
		intro, best, fr.Symbol, fr.Image, fr.FoundBy, st, ruleNote(res.Frames[best], st))
	return a.setFrameCulprit(best, conf, "stack")
}

// blameOutsideModules handles an instruction pointer in no loaded module:
// an unloaded DLL, or a jump through a bad pointer. Like !analyze, the
// caller that made the jump is blamed when the stack shows one.
func (a *userAnalysis) blameOutsideModules(res rules.Result) int {
	rep := a.rep
	fr := &rep.Stack[0]
	addr := fr.IP
	if fr.Unloaded != "" {
		a.why("the faulting instruction %s is inside the range of %s, a DLL unloaded before the crash: code ran after its DLL left (or through a stale pointer into it)", addr, fr.Unloaded)
		rep.Culprit = Culprit{Kind: CulpritUnloaded, Module: "Unloaded_" + fr.Unloaded, Image: fr.Unloaded,
			Symbol: fr.Symbol, Confidence: ConfidenceMedium, Frame: -1, Address: &addr, By: "context"}
		return -1
	}
	a.why("the faulting instruction %s is in no loaded module (a call or jump through a bad pointer, or code that was freed)", addr)
	for j := 1; j < len(rep.Stack); j++ {
		c := &rep.Stack[j]
		if c.Module == "" || res.Frames[j].Strength == rules.StrengthIgnore {
			continue
		}
		conf := ConfidenceMedium
		if !trusted(c.FoundBy) {
			conf = ConfidenceLow
		}
		a.why("frame %d %s (%s, found by %s) made the transfer and is blamed, as !analyze blames the caller of an invalid instruction pointer", j, c.Symbol, c.Image, c.FoundBy)
		return a.setFrameCulprit(j, conf, "stack")
	}
	rep.Culprit = Culprit{Kind: CulpritNoModule, Module: "Unknown_Module", Image: "Unknown_Image",
		Symbol: fr.IP.String(), Confidence: ConfidenceLow, Frame: -1, Address: &addr, By: "context"}
	a.why("no frame below it lies in a module, so the culprit is unknown")
	return -1
}

// setFrameCulprit blames frame i.
func (a *userAnalysis) setFrameCulprit(i int, conf Confidence, by string) int {
	fr := &a.rep.Stack[i]
	c := Culprit{Kind: CulpritFrame, Module: fr.Module, Image: fr.Image, Confidence: conf, Frame: i, By: by}
	addr := fr.IP
	c.Address = &addr
	c.Symbol = fr.Symbol
	if mi := moduleIndex(a.mods, uint64(fr.IP)); mi >= 0 {
		m := &a.mods[mi]
		ts := Hex(m.TimeDateStamp)
		c.ImageTimestamp = &ts
		c.Symbol = fmt.Sprintf("%s+%x", fr.Module, uint64(fr.IP)-m.Base)
		if fr.Function != "" && fr.FuncOffset != nil {
			c.Symbol = fmt.Sprintf("%s!%s+%x", fr.Module, fr.Function, uint64(*fr.FuncOffset))
		}
	}
	a.rep.Culprit = c
	return i
}

// inconclusive records that nothing can be blamed.
func (a *userAnalysis) inconclusive(reason string) {
	a.why("%s: the analysis is inconclusive", reason)
	a.rep.Culprit = Culprit{Kind: CulpritNone, Module: "Unknown_Module", Image: "Unknown_Image",
		Symbol: "ANALYSIS_INCONCLUSIVE", Confidence: ConfidenceLow, Frame: -1, By: "inconclusive"}
}

// applyBlameImage handles a rule's blame_image action.
func (a *userAnalysis) applyBlameImage(img string, blamed int) int {
	rep := a.rep
	if strings.EqualFold(rep.Culprit.Image, img) {
		a.why("a rule blames %s as well: the stack and the rules agree", img)
		return blamed
	}
	if rep.Culprit.Confidence != ConfidenceLow && rep.Culprit.Kind != CulpritNone {
		a.why("a rule would blame %s, but the %s (%s confidence) is kept", img, describeCulprit(rep.Culprit), rep.Culprit.Confidence)
		return blamed
	}
	for i := range rep.Stack {
		if strings.EqualFold(rep.Stack[i].Image, img) {
			a.why("a rule blames %s; frame %d %s lies in it and is blamed", img, i, rep.Stack[i].Symbol)
			return a.setFrameCulprit(i, ConfidenceMedium, "rule")
		}
	}
	a.why("a rule blames the image %s, which the stack does not show", img)
	rep.Culprit = Culprit{Kind: CulpritImage, Module: userModuleName(img), Image: img, Symbol: "IMAGE_" + img,
		Confidence: ConfidenceMedium, Frame: -1, By: "rule"}
	return -1
}

// bucketFunction returns the function part of a user-mode bucket: the
// function name with blanks replaced, or "Unknown" without symbols.
func bucketFunction(fn string) string {
	if fn == "" {
		return "Unknown"
	}
	return strings.ReplaceAll(fn, " ", "_")
}

// finishBucket builds FAILURE_BUCKET_ID (CLASS_CODE_IMAGE!FUNCTION, the
// form of WinDbg's user-mode buckets), its "um:" hash, the legacy
// BUCKET_ID and "Probably caused by".
func (a *userAnalysis) finishBucket() {
	rep := a.rep
	c := &rep.Culprit
	x := rep.Exception
	prefix := x.Class
	if a.exc != nil {
		prefix += "_" + fmt.Sprintf("%08x", a.exc.code)
	}
	var culprit, legacy string
	switch c.Kind {
	case CulpritFrame:
		fr := &rep.Stack[c.Frame]
		culprit = fr.Image + "!" + bucketFunction(fr.Function)
		switch {
		case fr.Function != "" && fr.FuncOffset != nil:
			rep.BucketIDFuncOffset = strconv.FormatUint(uint64(*fr.FuncOffset), 16)
			legacy = fmt.Sprintf("%s!%s+%s", fr.Module, fr.Function, rep.BucketIDFuncOffset)
		case fr.Offset != nil:
			rep.BucketIDFuncOffset = strconv.FormatUint(uint64(*fr.Offset), 16)
			legacy = fmt.Sprintf("%s+%s", fr.Module, rep.BucketIDFuncOffset)
		}
		rep.ProbablyCausedBy = fmt.Sprintf("%s ( %s )", c.Image, c.Symbol)
	case CulpritUnloaded:
		culprit = c.Image + "!Unloaded"
		legacy = c.Symbol
		rep.ProbablyCausedBy = fmt.Sprintf("%s ( %s, unloaded )", c.Image, c.Symbol)
	case CulpritImage:
		culprit = c.Image + "!Unknown"
		legacy = c.Symbol
		rep.ProbablyCausedBy = c.Image
	case CulpritNoModule:
		culprit = "Unknown_Image!Unknown"
		legacy = "Unknown_Image"
		rep.ProbablyCausedBy = "Unknown_Image ( code outside every loaded module )"
	default:
		culprit = "Unknown_Image!Unknown"
		legacy = "ANALYSIS_INCONCLUSIVE"
		rep.ProbablyCausedBy = "Unknown_Image ( ANALYSIS_INCONCLUSIVE )"
	}
	bucket := prefix + "_" + culprit
	if o := rep.Rules.Override; o != "" {
		a.why("rule override replaces the bucket %s with %s", bucket, o)
		bucket = o
	}
	if s := rep.Rules.Suffix; s != "" {
		bucket += s
		a.why("a rule appends %s to the bucket", s)
	}
	rep.FailureBucketID = bucket
	rep.FailureIDHashString = FailureIDHashString(rep.AnalysisSource, bucket)
	rep.FailureIDHash = FailureIDHash(rep.AnalysisSource, bucket)
	if a.opts.LegacyBucket {
		if rep.Rules.Override != "" {
			rep.BucketID = strings.ToUpper(rep.OS.Platform) + "_" + rep.Rules.Override
		} else {
			rep.BucketID = strings.ToUpper(rep.OS.Platform) + "_APPLICATION_FAULT_" + prefix + "_" + legacy + rep.Rules.Suffix
		}
	}
}

// assertionDetail summarises Breakpad's invalid-parameter or
// pure-virtual-call record.
func assertionDetail(ai *minidump.AssertionInfo) string {
	kind := "assertion"
	switch ai.Type {
	case 1:
		kind = "invalid parameter"
	case 2:
		kind = "pure virtual call"
	}
	var parts []string
	if ai.Expression != "" {
		parts = append(parts, ai.Expression)
	}
	if ai.Function != "" {
		parts = append(parts, "in "+ai.Function)
	}
	if ai.File != "" {
		parts = append(parts, fmt.Sprintf("at %s:%d", ai.File, ai.Line))
	}
	if len(parts) == 0 {
		return kind
	}
	return kind + ": " + strings.Join(parts, " ")
}
