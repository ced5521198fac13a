package triage

//go:generate go run ./internal/bugcheckgen -in ../../shared/bugcheck-codes.tsv -out bugcheck_table.go

import "fmt"

// bugCheckName is one row of the generated table.
type bugCheckName struct {
	name     string
	bugCheck bool
	liveDump bool
	doc      string
}

// Blame says where a bug check's culprit is found.
type Blame int

// Ways a bug check leads to its culprit.
const (
	BlameStack    Blame = iota // the parameters name nothing: walk the stack
	BlameIP                    // a parameter holds the faulting instruction address
	BlameObject                // a parameter points at the guilty object (driver, IRP, device)
	BlameProcess               // a critical process or thread died
	BlameHardware              // a hardware error report (WHEA, corrected pages)
	BlameFirmware              // ACPI / firmware / microcode
	BlameNotABug               // forced by the user (keyboard, debugger, power button)
)

// String returns a short lower-case name.
func (b Blame) String() string {
	switch b {
	case BlameStack:
		return "stack"
	case BlameIP:
		return "ip"
	case BlameObject:
		return "object"
	case BlameProcess:
		return "process"
	case BlameHardware:
		return "hardware"
	case BlameFirmware:
		return "firmware"
	case BlameNotABug:
		return "not-a-bug"
	}
	return fmt.Sprintf("Blame(%d)", int(b))
}

// BugCheckInfo is what kdtriage knows about a bug-check code. Parameter
// indexes are 1-based (P1..P4); 0 means "none".
type BugCheckInfo struct {
	Code     uint32 // the code looked up, with the _M bit removed
	Name     string // symbolic name, e.g. SYSTEM_THREAD_EXCEPTION_NOT_HANDLED
	Known    bool   // the code is in Microsoft's list
	BugCheck bool   // raised as a bug check
	LiveDump bool   // written as a kernel live dump
	// DocURL is Microsoft's page for the code, when known.
	DocURL string
	// Params describes P1..P4 in plain words; "" when undocumented.
	Params [4]string
	Blame  Blame
	// IPParam holds the faulting instruction address.
	IPParam int
	// ContextParam points at a CONTEXT record, TrapParam at a trap frame
	// and ExceptionParam at an EXCEPTION_RECORD.
	ContextParam, TrapParam, ExceptionParam int
	// ObjectParam points at the blamed object (driver code, IRP, device
	// object, process) or, for 0xD8/0xEA/0xF4/0x1D5, names it.
	ObjectParam int
	// SubcodeParam holds a subtype whose meaning Subcodes lists.
	SubcodeParam int
	// Subcodes maps subtype values to their meaning.
	Subcodes map[uint64]string
	// Hint is the first thing to look at, in a sentence.
	Hint string
}

// Param returns the description of parameter n (1..4) for the given
// values, with the subtype's meaning when the parameter is a known subtype.
func (b *BugCheckInfo) Param(n int, params [4]uint64) string {
	if n < 1 || n > 4 {
		return ""
	}
	d := b.Params[n-1]
	if n == b.SubcodeParam {
		if s, ok := b.Subcodes[params[n-1]]; ok {
			if d == "" {
				return s
			}
			return d + ": " + s
		}
	}
	return d
}

// Subcode returns the meaning of the subtype parameter, or "".
func (b *BugCheckInfo) Subcode(params [4]uint64) string {
	if b.SubcodeParam == 0 {
		return ""
	}
	return b.Subcodes[params[b.SubcodeParam-1]]
}

const docBase = "https://learn.microsoft.com/windows-hardware/drivers/debugger/"

// LookupBugCheck returns what is known about a code. Codes with the
// 0x10000000 "_M" bit set are looked up under their base code (0x1000007E is
// 0x7E with the same parameters) unless the full value is itself listed.
// Unknown codes return Known false and a generic description.
func LookupBugCheck(code uint32) BugCheckInfo {
	base := code
	if code&0xF0000000 == 0x10000000 {
		base = code &^ 0x10000000
	}
	info := BugCheckInfo{Code: base, Blame: BlameStack, Name: fmt.Sprintf("BUGCHECK_%X", code)}
	row, ok := bugCheckNames[code]
	if !ok && base != code {
		if b, found := bugCheckNames[base]; found {
			row, ok = b, true
			row.name += "_M"
		}
	}
	if ok {
		info.Known = true
		info.Name = row.name
		info.BugCheck = row.bugCheck
		info.LiveDump = row.liveDump
		if row.doc != "" {
			info.DocURL = docBase + trimMD(row.doc)
		}
	}
	if p, found := bugCheckParams[base]; found {
		p.apply(&info)
	}
	return info
}

func trimMD(p string) string {
	if len(p) > 3 && p[len(p)-3:] == ".md" {
		return p[:len(p)-3]
	}
	return p
}

// paramInfo is the hand-written knowledge about one code.
type paramInfo struct {
	params                         [4]string
	blame                          Blame
	ip, ctx, trap, exc, obj, subcd int
	subcodes                       map[uint64]string
	hint                           string
}

func (p paramInfo) apply(b *BugCheckInfo) {
	b.Params = p.params
	b.Blame = p.blame
	b.IPParam, b.ContextParam, b.TrapParam, b.ExceptionParam = p.ip, p.ctx, p.trap, p.exc
	b.ObjectParam, b.SubcodeParam, b.Subcodes = p.obj, p.subcd, p.subcodes
	b.Hint = p.hint
}

// Access-type descriptions shared by the IRQL and page-fault codes.
const (
	accessRWX = "access: bit 0 set = write, bit 3 set = execute, otherwise read"
	excCode   = "exception code (NTSTATUS)"
	excAddr   = "address of the faulting instruction"
)
