package triage

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// TextOptions selects what the !analyze -v style text contains.
type TextOptions struct {
	// Legacy adds the fields older debugger engines print (BUGCHECK_STR,
	// DEFAULT_BUCKET_ID, FAULTING_IP, BUCKET_ID, ANALYSIS_SOURCE,
	// FAILURE_ID_HASH_STRING...).
	Legacy bool
	// NoExtras leaves out the kdtriage section (confidence, why, rules)
	// that follows the WinDbg-shaped part.
	NoExtras bool
}

const banner = `*******************************************************************************
*                                                                             *
*                        Bugcheck Analysis                                    *
*                                                                             *
*******************************************************************************
`

// WriteText renders the report the way WinDbg's !analyze -v prints a
// kernel dump, field names and order included, followed by a kdtriage
// section (confidence, why the culprit was chosen, the rules that fired).
func (r *Report) WriteText(w io.Writer, opt TextOptions) error {
	if r.Exception != nil {
		// User-mode dumps: exception analysis head (usermode_text.go).
		return r.writeUserText(w, opt)
	}
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	field := func(name, value string) {
		if value != "" {
			p("%s:  %s\n\n", name, value)
		}
	}
	wide := wideMachine(r.Dump.Machine)
	arg := func(v Hex) string { return hexWord(v, wide) }
	addr := func(v Hex) string { return hexAddr(v, wide) }

	p("%s\n", banner)
	b := &r.BugCheck
	p("%s (%s)\n", b.Name, bare(b.Code))
	if b.Hint != "" {
		p("%s\n", b.Hint)
	}
	if b.Subtype != "" {
		p("Subtype: %s\n", b.Subtype)
	}
	p("Arguments:\n")
	for i := range 4 {
		text := b.ParamText[i]
		if text == "" {
			text = "(not documented)"
		}
		p("Arg%d: %s, %s\n", i+1, arg(b.Params[i]), text)
	}
	p("\nDebugging Details:\n------------------\n\n")

	p("KEY_VALUES_STRING: 1\n\n")
	kv := func(k, v string) {
		if v != "" {
			p("    Key  : %s\n    Value: %s\n\n", k, v)
		}
	}
	kv("Bugcheck.Code.KiBugCheckData", "0x"+bare(b.Code))
	kv("Failure.Bucket", r.FailureBucketID)
	kv("Failure.Hash", r.FailureIDHash)
	if r.FaultingIP != nil {
		kv("Failure.Exception.IP.Address", "0x"+bare(r.FaultingIP.Address))
		kv("Failure.Exception.IP.Module", r.FaultingIP.Module)
		if r.FaultingIP.Offset != nil {
			kv("Failure.Exception.IP.Offset", "0x"+bare(*r.FaultingIP.Offset))
		}
	}
	kv("WER.OS.Branch", r.OS.Branch)
	kv("WER.OS.Version", r.OS.Version)
	p("\n")

	field("BUGCHECK_CODE", bare(b.Code))
	for i := range 4 {
		p("BUGCHECK_P%d: %s\n\n", i+1, bare(b.Params[i]))
	}
	if opt.Legacy {
		field("BUGCHECK_STR", b.BugCheckStr)
		field("DEFAULT_BUCKET_ID", defaultBucketID(r))
	}
	if r.Dump.File != "" {
		field("FILE_IN_CAB", baseName(r.Dump.File))
	}
	if r.Dump.Attributes != nil {
		field("DUMP_FILE_ATTRIBUTES", "0x"+bare(*r.Dump.Attributes))
	}
	if name, v, ok := accessAddress(r); ok {
		field(name, arg(v))
	}
	if r.CurrentIRQL != nil {
		field("CURRENT_IRQL", strconv.Itoa(*r.CurrentIRQL))
	}
	if r.FaultingIP != nil {
		switch r.FaultingIP.Where {
		case "module":
			if opt.Legacy {
				field("FAULTING_IP", r.FaultingIP.Symbol+"\n"+addr(r.FaultingIP.Address))
			}
		case "unloaded_module":
			field("INSTR_POINTER_IN_UNLOADED_MODULE", r.FaultingIP.Image)
			field("FAILED_INSTRUCTION_ADDRESS", r.FaultingIP.Symbol+"\n"+addr(r.FaultingIP.Address))
		default:
			field("FAILED_INSTRUCTION_ADDRESS", addr(r.FaultingIP.Address)+" (in no loaded module)")
		}
	}
	field("PROCESS_NAME", r.ProcessName)
	if c := r.Context; c.Address != nil {
		switch c.Source {
		case "context_record":
			p("CONTEXT:  %s -- (.cxr 0x%s)\n", arg(*c.Address), bare(*c.Address))
		case "trap_frame":
			p("TRAP_FRAME:  %s -- (.trap 0x%s)\n", arg(*c.Address), bare(*c.Address))
		}
		writeRegs(bw, c.Regs, wide)
		p("Resetting default scope\n\n")
	}

	p("STACK_TEXT:  \n")
	for i, fr := range r.Stack {
		ret := Hex(0)
		if i+1 < len(r.Stack) {
			ret = r.Stack[i+1].IP
		}
		mark := ""
		if fr.FoundBy != "context" {
			mark = "    [" + fr.FoundBy + "]"
		}
		if fr.Blamed {
			mark += " <-- blamed"
		}
		p("%s %s : %s%s%s\n", addr(fr.SP), addr(ret), windbgSymbol(fr, wide), sourcePos(fr), mark)
	}
	p("\n\n")

	c := &r.Culprit
	if c.Frame >= 0 && c.Frame < len(r.Stack) && r.Stack[c.Frame].SourceFile != "" {
		fr := &r.Stack[c.Frame]
		field("FAULTING_SOURCE_FILE", fr.SourceFile)
		field("FAULTING_SOURCE_LINE_NUMBER", strconv.Itoa(fr.SourceLine))
	}
	field("SYMBOL_NAME", c.Symbol)
	field("MODULE_NAME", c.Module)
	field("IMAGE_NAME", c.Image)
	if c.ImageTimestamp != nil && opt.Legacy {
		field("DEBUG_FLR_IMAGE_TIMESTAMP", bare(*c.ImageTimestamp))
	}
	field("STACK_COMMAND", r.StackCommand)
	field("BUCKET_ID_FUNC_OFFSET", r.BucketIDFuncOffset)
	field("FAILURE_BUCKET_ID", r.FailureBucketID)
	if opt.Legacy {
		field("BUCKET_ID", r.BucketID)
		field("PRIMARY_PROBLEM_CLASS", r.FailureBucketID)
	}
	field("OS_VERSION", r.OS.Version)
	field("BUILDLAB_STR", r.OS.Branch)
	field("OSPLATFORM_TYPE", r.OS.Platform)
	field("OSNAME", r.OS.Name)
	if opt.Legacy {
		field("ANALYSIS_SOURCE", strings.ToUpper(r.AnalysisSource))
		field("FAILURE_ID_HASH_STRING", r.FailureIDHashString)
	}
	field("FAILURE_ID_HASH", r.FailureIDHash)
	if r.Followup != "" {
		p("Followup:     %s\n", r.Followup)
	}
	p("---------\n\n")
	p("Probably caused by : %s\n", r.ProbablyCausedBy)
	if r.Followup != "" {
		p("Followup: %s\n", r.Followup)
	}

	if !opt.NoExtras {
		p("\nkdtriage:\n")
		p("  CONFIDENCE:  %s (blame by %s)\n", c.Confidence, c.By)
		if r.FirstThirdPartyFrame >= 0 && r.FirstThirdPartyFrame < len(r.Stack) {
			fr := r.Stack[r.FirstThirdPartyFrame]
			p("  FIRST_THIRD_PARTY_FRAME:  %d %s [%s]\n", fr.Index, fr.Symbol, fr.FoundBy)
		}
		p("  WHY:\n")
		for _, w := range r.Why {
			p("    - %s\n", w)
		}
		if len(r.Rules.Fired) > 0 {
			p("  RULES_FIRED:\n")
			for _, h := range r.Rules.Fired {
				p("    - %s (%s): %s\n", h.ID, h.Source, h.Why)
			}
		}
		rl := &r.Rules
		if len(rl.Tags) > 0 {
			p("  TAGS:  %s\n", strings.Join(rl.Tags, ", "))
		}
		opt := func(k, v string) {
			if v != "" {
				p("  %s:  %s\n", k, v)
			}
		}
		opt("QUEUE", rl.Queue)
		opt("SEVERITY", rl.Severity)
		opt("KNOWN_ISSUE", rl.KnownIssue)
		opt("KB", rl.KB)
		opt("REMEDIATION", rl.Remediation)
		opt("RULE_SET_HASH", r.RuleSetHash)
		p("  BUCKET_SCHEME:  %s\n", r.BucketSchemeVersion)
		if !r.Dump.CrashTime.IsZero() {
			p("  CRASH_TIME:  %s\n", r.Dump.CrashTime.UTC().Format("2006-01-02 15:04:05Z"))
		}
		opt("DUMP_SHA256", r.Dump.SHA256)
		for _, pr := range r.Problems {
			p("  PROBLEM:  %s\n", pr)
		}
	}
	return bw.Flush()
}

// wideMachine reports whether values of the dump's machine print with 16
// hex digits: every machine but 32-bit x86 and ARM (an unknown machine
// prints wide, so no digit is lost).
func wideMachine(machine string) bool { return machine != "x86" && machine != "arm" }

// hexWord formats a pointer-sized value as WinDbg does: 16 hex digits on
// 64-bit machines, 8 on 32-bit ones.
func hexWord(v Hex, wide bool) string {
	if wide {
		return fmt.Sprintf("%016x", uint64(v))
	}
	return fmt.Sprintf("%08x", uint64(v))
}

// hexAddr formats an address as WinDbg's stack text does: 64-bit
// addresses with a backtick between the halves (fffff804`85a012d0).
func hexAddr(v Hex, wide bool) string {
	s := hexWord(v, wide)
	if wide {
		return s[:8] + "`" + s[8:]
	}
	return s
}

// bare formats a value in hex without leading zeros or 0x (BUGCHECK_P1).
func bare(v Hex) string { return strconv.FormatUint(uint64(v), 16) }

// windbgSymbol formats a frame as WinDbg's stack text does: module!fn+0x1f,
// module+0x1234 without symbols, or the bare address.
func windbgSymbol(fr Frame, wide bool) string {
	if fr.Module == "" && fr.Unloaded == "" {
		return "0x" + hexAddr(fr.IP, wide)
	}
	return fr.Symbol
}

// sourcePos is the " [file @ line]" WinDbg's stack text appends to a frame
// whose symbols have line information; "" without.
func sourcePos(fr Frame) string {
	if fr.SourceFile == "" {
		return ""
	}
	return fmt.Sprintf(" [%s @ %d]", fr.SourceFile, fr.SourceLine)
}

// writeRegs prints registers three to a line in a stable order, each with
// the machine's word width (wide: 16 hex digits, else 8).
func writeRegs(w io.Writer, regs map[string]Hex, wide bool) {
	order := []string{"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rip", "rsp", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
		"eax", "ebx", "ecx", "edx", "esi", "edi", "eip", "esp", "ebp"}
	seen := map[string]bool{}
	var names []string
	for _, n := range order {
		if _, ok := regs[n]; ok {
			names = append(names, n)
			seen[n] = true
		}
	}
	var rest []string
	for n := range regs {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	names = append(names, rest...)
	for i, n := range names {
		sep := " "
		if (i+1)%3 == 0 || i == len(names)-1 {
			sep = "\n"
		}
		fmt.Fprintf(w, "%s=%s%s", n, hexWord(regs[n], wide), sep)
	}
}

// accessAddress returns the field that restates the referenced address of
// an access-violation bug check (READ_ADDRESS, WRITE_ADDRESS or
// EXECUTE_ADDRESS, from P1) and the address: 0xA and 0xD1 say the access
// in P3, 0x50 in P2.
func accessAddress(r *Report) (string, Hex, bool) {
	b := &r.BugCheck
	var letter string
	switch code := LookupBugCheck(uint32(b.Code)).Code; code {
	case 0x0A, 0xD1:
		// 0xA: bit 0 write, bit 3 execute; 0xD1: 0 read, 1 write, 2 or 8 execute.
		switch p3 := uint64(b.Params[2]); {
		case p3&0x8 != 0 || code == 0xD1 && p3&0x2 != 0:
			letter = "X"
		case p3&0x1 != 0:
			letter = "W"
		default:
			letter = "R"
		}
	case 0x50:
		letter = accessLetter(uint64(b.Params[1]), r.OS.Build)
	default:
		return "", 0, false
	}
	name := map[string]string{"R": "READ_ADDRESS", "W": "WRITE_ADDRESS", "X": "EXECUTE_ADDRESS"}[letter]
	return name, b.Params[0], true
}

// defaultBucketID returns the old DEFAULT_BUCKET_ID class.
func defaultBucketID(r *Report) string {
	switch {
	case r.OS.Build >= 9200: // Windows 10 and 11 engines still print WIN8_
		return "WIN8_DRIVER_FAULT"
	case r.OS.Build >= 7600:
		return "WIN7_DRIVER_FAULT"
	case r.OS.Build >= 6000:
		return "VISTA_DRIVER_FAULT"
	}
	return "DRIVER_FAULT"
}

// baseName returns the last element of a slash or backslash path.
func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}
