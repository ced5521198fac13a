package triage

import (
	"fmt"
	"strings"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/rules"
)

// rulesInput builds what the rule engine looks at.
func (a *kernelAnalysis) rulesInput() rules.Input {
	in := rules.Input{
		Code:    a.bc.Code,
		Params:  a.bc.Params,
		Machine: a.f.Machine().String(),
		OSBuild: a.f.Header().MinorVersion,
		Kind:    rules.KindKernel,
		Modules: make([]rules.Module, 0, len(a.mods)),
		Frames:  rulesFrames(a.rep.Stack),
	}
	if a.isExceptionCode() {
		in.ExceptionCode = uint32(a.bc.Params[0])
	}
	for i := range a.mods {
		m := &a.mods[i]
		in.Modules = append(in.Modules, rules.Module{Name: moduleName(m.Name), Image: imageName(m, a.f.Machine(), a.f.PaeEnabled()), Timestamp: m.TimeDateStamp})
	}
	return in
}

// recordRules copies the rules that fired and their crash-level actions
// into the report.
func recordRules(r *RulesReport, res rules.Result) {
	act := res.Actions
	for _, h := range res.Fired {
		r.Fired = append(r.Fired, RuleHit{ID: h.ID, Source: h.Source.String(), Frame: h.Frame, Why: h.Why})
	}
	r.Tags, r.Queue, r.KnownIssue, r.KB = act.Tags, act.Queue, act.KnownIssue, act.KB
	r.Remediation, r.Severity, r.BlameImage = act.Remediation, act.Severity.String(), act.BlameImage
	r.Override, r.Suffix = act.Bucket, act.BucketSuffix
}

// rulesFrames turns report frames into the rule engine's frames, top of
// stack first; the offset is the function offset when symbols named the
// frame, else the module offset, else the bare address.
func rulesFrames(stack []Frame) []rules.Frame {
	out := make([]rules.Frame, len(stack))
	for i, fr := range stack {
		rf := rules.Frame{Module: fr.Module, Function: fr.Function, Image: fr.Image}
		switch {
		case fr.FuncOffset != nil:
			rf.Offset = uint64(*fr.FuncOffset)
		case fr.Offset != nil:
			rf.Offset = uint64(*fr.Offset)
		default:
			rf.Offset = uint64(fr.IP)
		}
		out[i] = rf
	}
	return out
}

// strength is a frame's claim for blame: the rule's strength, with nt and
// hal frames that no rule owns treated as last_ (they are blamed only when
// nothing else is left).
func strength(fr *Frame, d rules.FrameDecision) rules.Strength {
	if d.Strength == rules.StrengthNone && isKernelOrHAL(fr.Module) {
		return rules.StrengthLast
	}
	return d.Strength
}

// blame chooses the culprit (analyze-semantics §1.5) and applies the rules'
// actions.
func (a *kernelAnalysis) blame() {
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
		rep.Stack[i].Decision = strength(&rep.Stack[i], d).String()
		rep.Stack[i].Owner = d.Owner
		rep.Stack[i].Rule = d.Rule
	}

	blamed := -1
	switch {
	case a.info.Blame == BlameNotABug:
		a.manualCrash()
	case a.info.Blame == BlameHardware:
		a.hardware()
	case a.info.Code == 0x101:
		a.inconclusive(fmt.Sprintf("0x101 CLOCK_WATCHDOG_TIMEOUT: processor %d stopped answering clock interrupts; only that processor's stack tells why, and a small dump holds only the bug-checking processor's stack", a.bc.Params[3]))
	case a.info.Blame == BlameObject || a.info.Blame == BlameProcess || (a.info.Code == 0x9F && a.bc.Params[0] == 3):
		a.objectBlame()
	}
	if rep.Culprit.Kind == CulpritNone && rep.Culprit.By == "" {
		if a.ipIdx >= 0 {
			blamed = a.blameIP(res)
		} else {
			blamed = a.blameStack(res, 0, "no parameter names the faulting code, so the stack decides")
		}
	}

	// The rules' crash-level actions, with the frame actually blamed.
	if a.set != nil {
		res = a.set.MatchBlamed(in, blamed)
	}
	act := res.Actions
	recordRules(&rep.Rules, res)
	if act.BlameImage != "" {
		a.applyBlameImage(act.BlameImage, res)
	}
	// The culprit's frame, after blame_image may have moved it.
	if f := rep.Culprit.Frame; f >= 0 && f < len(rep.Stack) {
		rep.Stack[f].Blamed = true
	}

	// Followup: the owner the rules give the blamed frame (or the crash).
	switch {
	case act.Owner != "":
		rep.Followup = act.Owner
	case rep.Culprit.Frame >= 0 && rep.Stack[rep.Culprit.Frame].Owner != "":
		rep.Followup = rep.Stack[rep.Culprit.Frame].Owner
	}
	byModule := false
	if rep.Followup == "" && a.set != nil && rep.Culprit.Frame < 0 && rep.Culprit.Module != "" {
		// No frame is blamed: look the blamed module (or WinDbg's
		// pseudo-module) up the way a frame of it would be.
		d := a.set.Decide(&in, rules.Frame{Module: rep.Culprit.Module, Image: rep.Culprit.Image})
		if d.Owner != "" && d.Strength != rules.StrengthIgnore {
			rep.Followup, byModule = d.Owner, true
		}
	}
	switch {
	case rep.Followup == "":
	case byModule:
		a.why("Followup %s is the rules' owner of the module %s", rep.Followup, rep.Culprit.Module)
	case rep.Culprit.Frame >= 0 && rep.Stack[rep.Culprit.Frame].Owner == rep.Followup:
		a.why("Followup %s is the rules' owner of the blamed frame %d", rep.Followup, rep.Culprit.Frame)
	default:
		a.why("Followup %s is the owner a crash-level rule gives", rep.Followup)
	}
	if rep.Followup == "" {
		a.why("no rule gives an owner, so there is no Followup")
	}
}

// setFrameCulprit blames frame i.
func (a *kernelAnalysis) setFrameCulprit(i int, conf Confidence, by string) int {
	fr := &a.rep.Stack[i]
	m := kdump.ModuleAt(a.mods, uint64(fr.IP))
	c := Culprit{Kind: CulpritFrame, Module: fr.Module, Image: fr.Image, Confidence: conf, Frame: i, By: by}
	addr := fr.IP
	c.Address = &addr
	if m != nil {
		c.Symbol = a.symbolName(m, uint64(fr.IP))
		ts := Hex(m.TimeDateStamp)
		c.ImageTimestamp = &ts
	}
	a.rep.Culprit = c
	return i
}

// blameIP applies §1.5 when a parameter gives the faulting instruction:
// that instruction is the first candidate; rules may pass over it
// (ignore, maybe_, last_), and nt or hal keep it only as a last resort.
func (a *kernelAnalysis) blameIP(res rules.Result) int {
	rep := a.rep
	i := a.ipIdx
	fr := &rep.Stack[i]
	src := "the faulting instruction"
	if rep.FaultingIP != nil && rep.FaultingIP.Param > 0 {
		src = fmt.Sprintf("the faulting instruction in P%d (%s)", rep.FaultingIP.Param, fr.IP)
	}
	if fr.Module == "" {
		a.blameOutsideModules(fr, src)
		return -1
	}
	st := strength(fr, res.Frames[i])
	switch st {
	case rules.StrengthDefinite, rules.StrengthNone:
		a.why("%s lies in %s at %s; %s", src, fr.Image, fr.Symbol, ruleNote(res.Frames[i], st))
		return a.setFrameCulprit(i, ConfidenceHigh, "ip_param")
	case rules.StrengthMaybe:
		if j := a.findBelow(res, i, func(s rules.Strength) bool { return s == rules.StrengthDefinite }); j >= 0 {
			a.why("%s lies in %s, but its owner is only maybe_ (%s); frame %d %s (%s) has a definite owner and wins",
				src, fr.Image, res.Frames[i].Rule, j, rep.Stack[j].Symbol, rep.Stack[j].FoundBy)
			return a.setFrameCulprit(j, ConfidenceMedium, "stack")
		}
		a.why("%s lies in %s (a maybe_ owner) and no frame below has a definite owner", src, fr.Image)
		return a.setFrameCulprit(i, ConfidenceMedium, "ip_param")
	}
	if st == rules.StrengthIgnore {
		return a.blameStack(res, i+1, fmt.Sprintf("%s lies in %s, but %s, so the frames below it decide", src, fr.Image, ruleNote(res.Frames[i], st)))
	}
	// last_ (nt, hal): look for a better frame the stack proves (a
	// definite or maybe_ owner, or a frame nobody claims).
	if j := a.findBelow(res, i, func(s rules.Strength) bool {
		return s.Rank() > rules.StrengthLast.Rank()
	}); j >= 0 {
		a.why("%s lies in %s (%s); frame %d %s, found by %s, has an owner and is blamed instead",
			src, fr.Image, ruleNote(res.Frames[i], st), j, rep.Stack[j].Symbol, rep.Stack[j].FoundBy)
		return a.setFrameCulprit(j, ConfidenceMedium, "stack")
	}
	a.why("%s lies in %s (%s); no frame that the stack proves has a better owner, so %s is blamed as a last resort",
		src, fr.Image, ruleNote(res.Frames[i], st), fr.Module)
	a.noteThirdParty(i)
	return a.setFrameCulprit(i, ConfidenceLow, "ip_param")
}

// findBelow returns the first frame below i, found by a trusted method,
// whose strength satisfies ok and that is not nt or hal; -1 when none.
func (a *kernelAnalysis) findBelow(res rules.Result, i int, ok func(rules.Strength) bool) int {
	for j := i + 1; j < len(a.rep.Stack); j++ {
		fr := &a.rep.Stack[j]
		if !trusted(fr.FoundBy) || fr.Module == "" || isKernelOrHAL(fr.Module) {
			continue
		}
		if ok(strength(fr, res.Frames[j])) {
			return j
		}
	}
	return -1
}

// noteThirdParty adds the first frame outside nt and hal to the why, so a
// low-confidence kernel blame shows the alternative.
func (a *kernelAnalysis) noteThirdParty(blamed int) {
	if k := a.rep.FirstThirdPartyFrame; k >= 0 && k != blamed {
		fr := &a.rep.Stack[k]
		a.why("the first frame outside nt and hal is frame %d %s (%s, found by %s); it is shown, not blamed, because %s",
			k, fr.Symbol, fr.Image, fr.FoundBy, thirdPartyCaveat(fr))
	}
}

// thirdPartyCaveat says why the first frame outside nt and hal was not
// blamed.
func thirdPartyCaveat(fr *Frame) string {
	switch {
	case fr.Decision == rules.StrengthIgnore.String():
		return "rule " + fr.Rule + " marks it ignore"
	case fr.FoundBy == "scan":
		return "a scanned return address may be stale data left on the stack"
	}
	return "the blame follows the faulting instruction, not its callers"
}

func ruleNote(d rules.FrameDecision, st rules.Strength) string {
	switch {
	case d.Rule != "" && d.Owner != "":
		return fmt.Sprintf("rule %s (%s) gives it the %s owner %s", d.Rule, d.Source, st, d.Owner)
	case d.Rule != "":
		return fmt.Sprintf("rule %s (%s) marks it %s", d.Rule, d.Source, st)
	case st == rules.StrengthLast:
		return "nt and hal are blamed only when nothing else is left"
	}
	return "no rule passes over it"
}

// blameOutsideModules handles a faulting IP that is in no loaded module.
func (a *kernelAnalysis) blameOutsideModules(fr *Frame, src string) {
	addr := fr.IP
	if fr.Unloaded != "" {
		a.why("%s is inside the range of %s, a driver that was unloaded before the crash: code ran after its driver left (or through a stale pointer into it)", src, fr.Unloaded)
		a.rep.Culprit = Culprit{Kind: CulpritUnloaded, Module: "Unloaded_" + fr.Unloaded, Image: fr.Unloaded,
			Symbol: fr.Symbol, Confidence: ConfidenceMedium, Frame: -1, Address: &addr, By: "ip_param"}
		return
	}
	a.why("%s is in no loaded module and in no unloaded driver's range: the code ran from memory no image owns (pool, or a jump to garbage); nt is not blamed for it", src)
	a.noteThirdParty(-1)
	a.rep.Culprit = Culprit{Kind: CulpritNoModule, Module: "Unknown_Module", Image: "Unknown_Image",
		Symbol: fr.IP.String(), Confidence: ConfidenceLow, Frame: -1, Address: &addr, By: "ip_param"}
}

// blameStack blames from the frames from index from on: the top-most frame
// of the strongest rule class (definite, maybe_, unowned, last_; ignored
// frames never), in the rules package's order (rules.Strength.Rank).
// intro says why the stack decides.
func (a *kernelAnalysis) blameStack(res rules.Result, from int, intro string) int {
	rep := a.rep
	best, bestRank := -1, 0
	for i := from; i < len(rep.Stack); i++ {
		fr := &rep.Stack[i]
		if fr.Module == "" {
			continue
		}
		rk := strength(fr, res.Frames[i]).Rank()
		if rk > bestRank {
			best, bestRank = i, rk
		}
	}
	if best < 0 {
		ignored := 0
		for i := from; i < len(rep.Stack); i++ {
			if strength(&rep.Stack[i], res.Frames[i]) == rules.StrengthIgnore {
				ignored++
			}
		}
		reason := "no frame on the stack lies in a module that can be blamed"
		if ignored > 0 {
			reason = fmt.Sprintf("every frame that lies in a module is ignored by the rules (%d frame(s)), so no frame is at fault", ignored)
		}
		a.inconclusive(intro + ": " + reason)
		return -1
	}
	fr := &rep.Stack[best]
	st := strength(fr, res.Frames[best])
	// A scanned return address right under the context is the caller of
	// the routine that stopped the system; deeper scanned values may be
	// stale data, so blame on them is weak.
	conf := ConfidenceMedium
	switch {
	case isKernelOrHAL(fr.Module):
		conf = ConfidenceLow
	case fr.FoundBy == "context":
		conf = ConfidenceHigh
	case fr.FoundBy == "scan" && best > 1:
		conf = ConfidenceLow
	}
	skipped := 0
	for i := from; i < best; i++ {
		if rep.Stack[i].Module != "" {
			skipped++
		}
	}
	a.why("%s: frame %d %s (%s, found by %s) is the top-most frame of the strongest class (%s; %s), %d frame(s) above it passed over",
		intro, best, fr.Symbol, fr.Image, fr.FoundBy, st, ruleNote(res.Frames[best], st), skipped)
	if conf == ConfidenceLow {
		a.noteThirdParty(best)
	}
	return a.setFrameCulprit(best, conf, "stack")
}

// inconclusive records that nothing can be blamed.
func (a *kernelAnalysis) inconclusive(reason string) {
	a.why("%s: the analysis is inconclusive", reason)
	a.rep.Culprit = Culprit{Kind: CulpritNone, Module: "Unknown_Module", Image: "Unknown_Image",
		Symbol: "ANALYSIS_INCONCLUSIVE", Confidence: ConfidenceLow, Frame: -1, By: "inconclusive"}
}

// manualCrash handles crashes forced on purpose.
func (a *kernelAnalysis) manualCrash() {
	a.why("%s is raised on purpose (keyboard, debugger or power button): it is not a bug in any driver", a.info.Name)
	a.rep.Culprit = Culprit{Kind: CulpritManual, Module: "ManualCrash", Image: "ManualCrash",
		Symbol: "MANUALLY_INITIATED_CRASH", Confidence: ConfidenceHigh, Frame: -1, By: "bugcheck"}
}

// hardware handles hardware error reports (0x124, 0x7A, 0x12B...).
func (a *kernelAnalysis) hardware() {
	vendor := a.cpuVendor()
	a.why("%s reports a hardware error; the culprit is the %s", a.info.Name, hardwareNoun(a.info.Code))
	img := "hardware"
	mod := "hardware"
	if a.info.Code == 0x124 {
		mod, img = vendor, vendor+".sys"
		a.why("the processor vendor %s comes from the processor power driver that is loaded", vendor)
	}
	a.rep.Culprit = Culprit{Kind: CulpritHardware, Module: mod, Image: img, Symbol: mod, Confidence: ConfidenceMedium, Frame: -1, By: "hardware"}
}

func hardwareNoun(code uint32) string {
	switch code {
	case 0x7A:
		return "storage path (disk, cable, controller or its driver)"
	case 0x12B:
		return "memory (RAM)"
	}
	return "hardware (see the WHEA error record in P2)"
}

// cpuVendor guesses the CPU vendor from the processor driver loaded.
func (a *kernelAnalysis) cpuVendor() string {
	for i := range a.mods {
		switch strings.ToLower(a.mods[i].Name) {
		case "intelppm.sys":
			return "GenuineIntel"
		case "amdppm.sys", "amdk8.sys":
			return "AuthenticAMD"
		}
	}
	return "UnknownCPU"
}

// objectBlame blames the object a parameter names (0x116/0x117 pointer
// into a driver, 0xEA/0xD8 driver name, 0xEF/0xF4 process, 0x9F/3 IRP).
func (a *kernelAnalysis) objectBlame() {
	rep := a.rep
	n := a.info.ObjectParam
	v := a.param(n)
	switch {
	case a.info.Code == 0x9F && a.bc.Params[0] == 3:
		if img, svc, ok := a.irpDriver(a.bc.Params[3]); ok {
			a.why("0x9F/3: the blocked IRP in P4 (%s) is held by driver %s (%s)", Hex(a.bc.Params[3]), svc, img)
			addr := Hex(a.bc.Params[3])
			rep.Culprit = Culprit{Kind: CulpritImage, Module: moduleName(img), Image: img, Symbol: "IMAGE_" + img,
				Confidence: ConfidenceHigh, Frame: -1, Address: &addr, By: "object"}
			a.service = svc
			return
		}
		a.problem("0x9F/3: the IRP in P4 %s or its device stack is not in the dump", Hex(a.bc.Params[3]))
	case a.info.Blame == BlameProcess:
		if name := a.processName(); name != "" {
			a.why("%s: the critical process %s died; the process is the culprit", a.info.Name, name)
			addr := Hex(v)
			rep.Culprit = Culprit{Kind: CulpritProcess, Module: name, Image: name, Symbol: name,
				Confidence: ConfidenceHigh, Frame: -1, Address: &addr, By: "process"}
			return
		}
		a.problem("%s: the process name in P%d is not in the dump", a.info.Name, n)
	case n > 0 && v != 0:
		if m := kdump.ModuleAt(a.mods, v); m != nil {
			img := imageName(m, a.f.Machine(), a.f.PaeEnabled())
			a.why("P%d (%s) points into %s: %s names it as responsible", n, Hex(v), img, a.info.Name)
			addr := Hex(v)
			ts := Hex(m.TimeDateStamp)
			rep.Culprit = Culprit{Kind: CulpritImage, Module: moduleName(m.Name), Image: img, Symbol: a.symbolName(m, v),
				Confidence: ConfidenceHigh, Frame: -1, Address: &addr, ImageTimestamp: &ts, By: "object"}
			return
		}
		if name := a.readDriverName(v); name != "" {
			a.why("P%d (%s) names the driver %s", n, Hex(v), name)
			addr := Hex(v)
			rep.Culprit = Culprit{Kind: CulpritImage, Module: moduleName(name), Image: name, Symbol: "IMAGE_" + name,
				Confidence: ConfidenceHigh, Frame: -1, Address: &addr, By: "object"}
			return
		}
		a.problem("%s: P%d (%s) is in no module and names nothing the dump holds", a.info.Name, n, Hex(v))
	default:
		a.why("%s would name the culprit in P%d, but the parameter is 0", a.info.Name, n)
	}
	a.why("falling back to the stack")
}

// processName returns the image name of the process a 0xEF/0xF4 names.
func (a *kernelAnalysis) processName() string {
	if a.info.Code == 0xF4 {
		var b [16]byte
		if n, _ := a.mem.ReadVirtual(b[:], a.bc.Params[2]); n > 0 {
			if s := printable(append(b[:n:n], 0)); s != "" {
				return s
			}
		}
		return ""
	}
	// 0xEF P1 is the process; its name is readable when it is the
	// current process.
	if _, proc, err := a.f.CurrentThread(); err == nil && proc == a.bc.Params[0] {
		if name, err := a.f.ProcessName(); err == nil {
			return name
		}
	}
	return ""
}

// readDriverName reads a driver name a parameter points at: a
// UNICODE_STRING, or UTF-16 / ASCII text.
func (a *kernelAnalysis) readDriverName(addr uint64) string {
	if s, err := kdump.ReadUnicodeString(a.mem, addr, a.ptr); err == nil && plausibleName(s) {
		return s
	}
	var b [64]byte
	n, _ := a.mem.ReadVirtual(b[:], addr)
	if n < 4 {
		return ""
	}
	if b[1] == 0 && b[3] == 0 { // UTF-16LE
		var sb strings.Builder
		for i := 0; i+1 < n && b[i] != 0; i += 2 {
			sb.WriteByte(b[i])
		}
		if s := sb.String(); plausibleName(s) {
			return s
		}
		return ""
	}
	if s := printable(append(b[:n:n], 0)); plausibleName(s) {
		return s
	}
	return ""
}

func plausibleName(s string) bool {
	if len(s) < 2 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c > 0x7E {
			return false
		}
	}
	return true
}

// irpDriver follows a 0x9F/3 IRP to the driver of its current stack
// location: IRP -> IO_STACK_LOCATION.DeviceObject -> DriverObject ->
// DriverStart (the image) and DriverName (the service).
func (a *kernelAnalysis) irpDriver(irp uint64) (image, service string, ok bool) {
	if a.ptr != 8 || irp == 0 {
		return "", "", false
	}
	// x64 layouts: IRP.Tail.Overlay.CurrentStackLocation at 0xB8;
	// IO_STACK_LOCATION.DeviceObject at 0x28; DEVICE_OBJECT.DriverObject
	// at 0x8; DRIVER_OBJECT.DriverStart at 0x18, DriverName at 0x38.
	loc, err := kdump.ReadU64(a.mem, irp+0xB8)
	if err != nil || loc == 0 {
		return "", "", false
	}
	dev, err := kdump.ReadU64(a.mem, loc+0x28)
	if err != nil || dev == 0 {
		return "", "", false
	}
	drv, err := kdump.ReadU64(a.mem, dev+0x8)
	if err != nil || drv == 0 {
		return "", "", false
	}
	start, err := kdump.ReadU64(a.mem, drv+0x18)
	if err != nil {
		return "", "", false
	}
	m := kdump.ModuleAt(a.mods, start)
	if m == nil {
		return "", "", false
	}
	name, _ := kdump.ReadUnicodeString(a.mem, drv+0x38, 8)
	if i := strings.LastIndexByte(name, '\\'); i >= 0 {
		name = name[i+1:]
	}
	if name == "" {
		name = moduleName(m.Name)
	}
	return imageName(m, a.f.Machine(), false), name, true
}

// applyBlameImage handles a rule's blame_image action: it confirms a
// culprit in that image, or replaces a weak culprit with it.
func (a *kernelAnalysis) applyBlameImage(img string, res rules.Result) {
	rep := a.rep
	rule := ""
	for _, h := range res.Fired {
		if h.Frame < 0 {
			rule = h.ID + " (" + h.Source.String() + ")"
			break
		}
	}
	if strings.EqualFold(rep.Culprit.Image, img) {
		a.why("rule %s blames %s as well: the stack and the rules agree", rule, img)
		return
	}
	weak := rep.Culprit.Confidence == ConfidenceLow || rep.Culprit.Kind == CulpritNone
	if !weak {
		a.why("rule %s would blame %s, but the %s (%s confidence) is kept", rule, img, describeCulprit(rep.Culprit), rep.Culprit.Confidence)
		return
	}
	// Prefer a frame in that image, if the stack has one.
	for i := range rep.Stack {
		if strings.EqualFold(rep.Stack[i].Image, img) {
			a.why("rule %s blames %s; frame %d %s lies in it and is blamed", rule, img, i, rep.Stack[i].Symbol)
			a.setFrameCulprit(i, ConfidenceMedium, "rule")
			return
		}
	}
	a.why("rule %s blames the image %s, which the stack does not show", rule, img)
	rep.Culprit = Culprit{Kind: CulpritImage, Module: moduleName(img), Image: img, Symbol: "IMAGE_" + img,
		Confidence: ConfidenceMedium, Frame: -1, By: "rule"}
}

func describeCulprit(c Culprit) string {
	if c.Symbol != "" {
		return "culprit " + c.Symbol
	}
	return "culprit " + c.Image
}
