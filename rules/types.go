package rules

import (
	"fmt"
	"strings"
)

// Kind is the kind of dump a crash came from.
type Kind uint8

// Dump kinds. KindAny is only meaningful in rule conditions.
const (
	KindAny    Kind = iota // no condition on the dump kind
	KindKernel             // kernel-mode dump (bug check)
	KindUser               // user-mode dump (MDMP application crash)
)

// String returns "kernel", "user" or "any".
func (k Kind) String() string {
	switch k {
	case KindKernel:
		return "kernel"
	case KindUser:
		return "user"
	case KindAny:
		return "any"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Strength says how strongly a frame rule claims a frame, following
// triage.ini: a definite owner beats a maybe_ owner anywhere on the stack, a
// maybe_ owner beats a last_ owner, and ignore takes the frame out of the
// running altogether.
type Strength uint8

// Frame claim strengths, weakest first.
const (
	// StrengthNone: no frame rule with an owner matched the frame. For
	// blame it ranks above last_ owners and below maybe_ owners: a frame
	// nobody claims is a better answer than a last-resort owner such as nt.
	StrengthNone Strength = iota
	// StrengthIgnore: the frame is plumbing (owner "ignore"); never blamed.
	StrengthIgnore
	// StrengthLast: a last_ owner; blamed only when no maybe_ or definite
	// owner exists anywhere on the stack.
	StrengthLast
	// StrengthMaybe: a maybe_ owner; loses to a definite owner lower down.
	StrengthMaybe
	// StrengthDefinite: a plain owner; the first such frame is at fault.
	StrengthDefinite
)

// String returns "none", "ignore", "last", "maybe" or "definite".
func (s Strength) String() string {
	switch s {
	case StrengthNone:
		return "none"
	case StrengthIgnore:
		return "ignore"
	case StrengthLast:
		return "last"
	case StrengthMaybe:
		return "maybe"
	case StrengthDefinite:
		return "definite"
	}
	return fmt.Sprintf("Strength(%d)", uint8(s))
}

// Rank orders strengths for blame selection: ignore (0) < last_ < no
// owner < maybe_ < definite. The blamed frame is the top-most frame of the
// highest rank above 0; callers that choose among frames themselves (the
// triage package, with the faulting IP as first candidate) compare ranks
// so that both agree.
func (s Strength) Rank() int {
	switch s {
	case StrengthIgnore:
		return 0
	case StrengthLast:
		return 1
	case StrengthNone:
		return 2
	case StrengthMaybe:
		return 3
	case StrengthDefinite:
		return 4
	}
	return 0
}

// Severity is the support severity a rule assigns to a crash.
type Severity uint8

// Severities, lowest first. SeverityUnset means no rule set one.
const (
	SeverityUnset Severity = iota
	SeverityInfo
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"", "info", "low", "medium", "high", "critical"}

// String returns the lower-case severity name ("" for SeverityUnset).
func (s Severity) String() string {
	if int(s) < len(severityNames) {
		return severityNames[s]
	}
	return fmt.Sprintf("Severity(%d)", uint8(s))
}

// ParseSeverity parses a severity name (case-insensitive).
func ParseSeverity(s string) (Severity, bool) {
	for i, n := range severityNames {
		if i > 0 && strings.EqualFold(n, s) {
			return Severity(i), true
		}
	}
	return SeverityUnset, false
}

// Module describes one loaded module of the crashed system or process.
type Module struct {
	Name      string // module name as the debugger shows it: "nt", "amdppm", "atikmdag"
	Image     string // image file name: "ntkrnlmp.exe", "amdppm.sys"
	Timestamp uint32 // PE TimeDateStamp (0 when unknown)
	Version   string // file version "a.b.c.d" ("" when unknown)
}

// Frame is one stack frame handed to the rules, top of stack first.
type Frame struct {
	Module   string // module name ("nt", "myfault"); "" when the address is in no module
	Function string // function name without the module ("KeBugCheckEx"); "" without symbols
	Offset   uint64 // offset from the function (or from the module base without symbols)
	Image    string // image file name ("myfault.sys"); optional, looked up in Input.Modules when empty
}

// String formats the frame as module!function+0xoffset, module+0xoffset or
// 0xoffset.
func (f Frame) String() string {
	switch {
	case f.Module != "" && f.Function != "":
		return fmt.Sprintf("%s!%s+0x%x", f.Module, f.Function, f.Offset)
	case f.Module != "":
		return fmt.Sprintf("%s+0x%x", f.Module, f.Offset)
	}
	return fmt.Sprintf("0x%x", f.Offset)
}

// Input is everything the rules look at for one crash. The triage package
// fills it; rules never sees a dump.
type Input struct {
	Code          uint32    // bug-check code as recorded (0x1000007E is accepted and means 0x7E)
	Params        [4]uint64 // bug-check parameters P1..P4
	Machine       string    // "x64", "x86", "arm64" or "arm" (amd64, i386, aarch64 and armnt are accepted)
	OSBuild       uint32    // OS build number (19041); 0 when unknown
	Kind          Kind      // kernel or user dump
	ExceptionCode uint32    // exception code when there is one (0xC0000005); 0 otherwise
	Modules       []Module  // loaded modules (for image names, timestamps and versions)
	Frames        []Frame   // faulting stack, top of stack first
}

// NormalizeCode maps the _M variants of bug-check codes (0x1000007E,
// 0x1000007F, 0x1000008E, 0x100000EA, ...) to their base code. The _M form
// has the same meaning and parameters as the base code.
func NormalizeCode(code uint32) uint32 {
	if code&0xF0000000 == 0x10000000 {
		return code & 0x0FFFFFFF
	}
	return code
}

// Source is where a rule was defined.
type Source struct {
	File   string // file name as loaded ("default/kernel.yaml" for the embedded set)
	Line   int    // 1-based line of the rule
	Column int    // 1-based column of the rule
	Layer  int    // 0 for the embedded defaults; each later Merge argument one higher
}

// String formats the source as file:line:column.
func (s Source) String() string {
	return fmt.Sprintf("%s:%d:%d", s.File, s.Line, s.Column)
}

// Actions are the crash-level outcomes of the rules that fired. Single-valued
// fields come from the highest-precedence fired rule that sets them; Tags is
// the sorted union of all fired rules' tags.
type Actions struct {
	Owner        string   // Followup owner (without maybe_/last_); "" when no rule gives one
	Queue        string   // ticket queue
	BlameImage   string   // image the rules blame when the stack does not show it ("atikmdag.sys")
	Bucket       string   // replaces the whole FAILURE_BUCKET_ID
	BucketSuffix string   // appended to the FAILURE_BUCKET_ID ("_KI1234")
	Tags         []string // sorted, no duplicates
	KnownIssue   string   // known-issue id
	KB           string   // knowledge-base link
	Remediation  string   // what the customer should do
	Severity     Severity // support severity
}

// Hit names a rule that fired and what it contributed.
type Hit struct {
	ID     string // rule id
	Source Source // where the rule is defined
	Frame  int    // index of the frame it matched, -1 for crash-level rules
	Why    string // one line: what matched and what it set
}

// FrameDecision is the rules' verdict on one frame.
type FrameDecision struct {
	Strength Strength // how strongly the winning rule claims the frame
	Owner    string   // owner without the maybe_/last_ prefix; "" for ignore and none
	Rule     string   // id of the winning frame rule; "" when none matched
	Source   Source   // where that rule is defined
}

// Result is the outcome of matching a crash against a rule set.
type Result struct {
	// Frames has one decision per input frame, same order.
	Frames []FrameDecision
	// Blame is the index of the frame the rules blame: the top-most frame of
	// the strongest class (definite, then maybe_, then frames no rule owns,
	// then last_); ignored frames are never chosen. -1 when every frame is
	// ignored or there are no frames.
	Blame int
	// Actions are the merged crash-level actions.
	Actions Actions
	// Fired lists the rules that contributed, highest precedence first.
	Fired []Hit
}
