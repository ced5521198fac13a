package triage

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Versions recorded in every report.
const (
	// SchemaVersion is the version of the JSON report layout described in
	// docs/report-schema.md. It changes when a field is renamed or removed
	// or its meaning changes; adding a field does not change it.
	SchemaVersion = 1
	// BucketSchemeVersion names the grammar the FAILURE_BUCKET_ID and
	// BUCKET_ID strings follow. A new scheme may put the same crash in a
	// different bucket, so consumers compare buckets only within a scheme.
	BucketSchemeVersion = "kdtriage-modern-1"
)

// Hex is a 64-bit value that JSON encodes as a "0x..." string (JSON
// numbers lose precision above 2^53).
type Hex uint64

// String formats the value as 0x followed by lower-case hex digits.
func (h Hex) String() string { return "0x" + strconv.FormatUint(uint64(h), 16) }

// MarshalJSON encodes the value as a "0x..." string.
func (h Hex) MarshalJSON() ([]byte, error) { return []byte(`"` + h.String() + `"`), nil }

// UnmarshalJSON accepts a "0x..." string or a plain JSON number.
func (h *Hex) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"), 16, 64)
	if err != nil || !strings.HasPrefix(string(b), `"`) {
		if n, err2 := strconv.ParseUint(s, 10, 64); err2 == nil && !strings.HasPrefix(string(b), `"`) {
			*h = Hex(n)
			return nil
		}
		return fmt.Errorf("triage: bad hex value %s", b)
	}
	*h = Hex(v)
	return nil
}

// Confidence says how much to trust the blame.
type Confidence string

// Confidence levels.
const (
	// ConfidenceHigh: the faulting instruction (a bug-check parameter or
	// the exception context) lies in the blamed third-party module, or a
	// parameter names the guilty object.
	ConfidenceHigh Confidence = "high"
	// ConfidenceMedium: the blamed frame came from the stack (unwound, or
	// the scanned return address right under the context) or from a rule
	// rather than from the fault itself.
	ConfidenceMedium Confidence = "medium"
	// ConfidenceLow: nt or hal was blamed because nothing else was left,
	// the faulting code is in no loaded module, the blamed frame is a
	// scanned value deeper in the stack, or the analysis is inconclusive.
	ConfidenceLow Confidence = "low"
)

// CulpritKind says what kind of thing the culprit is.
type CulpritKind string

// Culprit kinds.
const (
	CulpritFrame    CulpritKind = "frame"     // a stack frame (module!function or module+offset)
	CulpritImage    CulpritKind = "image"     // a whole image with no frame to point at (IMAGE_ buckets)
	CulpritProcess  CulpritKind = "process"   // a critical process died (0xEF, 0xF4)
	CulpritHardware CulpritKind = "hardware"  // a hardware error report (0x124 and friends)
	CulpritNoModule CulpritKind = "no_module" // the faulting IP is in no loaded module (code in pool or garbage)
	CulpritUnloaded CulpritKind = "unloaded"  // the faulting IP is in a driver that was unloaded
	CulpritManual   CulpritKind = "manual"    // the crash was forced on purpose
	CulpritNone     CulpritKind = "none"      // nothing could be blamed
)

// Report is the result of analysing one dump: the fields of a modern
// !analyze -v plus what kdtriage adds (confidence, why, rules). Its JSON
// form is documented in docs/report-schema.md and
// docs/report.schema.json; field names never change within a SchemaVersion.
type Report struct {
	SchemaVersion       int    `json:"schema_version"`
	BucketSchemeVersion string `json:"bucket_scheme_version"`
	RuleSetHash         string `json:"rule_set_hash,omitempty"`
	// AnalysisSource is "km" for kernel dumps and "um" for user-mode dumps.
	AnalysisSource string `json:"analysis_source"`

	Dump DumpInfo  `json:"dump"`
	Host *HostInfo `json:"host,omitempty"`

	BugCheck BugCheckReport `json:"bugcheck"`
	// Exception is the exception record of a user-mode dump (nil for
	// kernel dumps); see usermode.go.
	Exception *ExceptionReport `json:"exception,omitempty"`

	// FailureBucketID is the modern FAILURE_BUCKET_ID.
	FailureBucketID string `json:"failure_bucket_id"`
	// FailureIDHash is WinDbg's FAILURE_ID_HASH of FailureBucketID.
	FailureIDHash string `json:"failure_id_hash"`
	// FailureIDHashString is the hashed text ("km:" + lower-case bucket).
	FailureIDHashString string `json:"failure_id_hash_string"`
	// BucketID is the legacy BUCKET_ID (architecture prefix, offset kept).
	BucketID string `json:"bucket_id,omitempty"`
	// BucketIDFuncOffset is the offset pruned from the modern bucket.
	BucketIDFuncOffset string `json:"bucket_id_func_offset,omitempty"`

	Culprit Culprit `json:"culprit"`
	// ProbablyCausedBy is the one-line blame: "amdppm.sys ( amdppm+334c )".
	ProbablyCausedBy string `json:"probably_caused_by"`
	// Followup is the owner of the blamed frame from the rules; empty when
	// no rule gives one (WinDbg then prints no Followup line).
	Followup string `json:"followup,omitempty"`
	// Why explains, step by step, how the culprit was chosen.
	Why []string `json:"why"`

	// FaultingIP is the faulting instruction named by a bug-check
	// parameter or the exception context, when there is one.
	FaultingIP *AddressInfo `json:"faulting_ip,omitempty"`
	// Context is the register context the stack was walked from.
	Context ContextInfo `json:"context"`
	// StackCommand rebuilds the context in WinDbg ("STACK_COMMAND").
	StackCommand string  `json:"stack_command"`
	Stack        []Frame `json:"stack"`
	// FirstThirdPartyFrame is the index in Stack of the first frame outside
	// the kernel and the HAL, or -1; shown next to low-confidence blames.
	FirstThirdPartyFrame int `json:"first_third_party_frame"`

	ProcessName string `json:"process_name,omitempty"`
	// CurrentIRQL is the IRQL at the time of the failure, when derivable.
	CurrentIRQL *int `json:"current_irql,omitempty"`
	// Verifier reports whether Driver Verifier was active (VerifierExt.sys loaded).
	Verifier bool   `json:"verifier"`
	OS       OSInfo `json:"os"`

	Rules RulesReport `json:"rules"`

	// UnloadedModules lists the drivers unloaded before the crash.
	UnloadedModules []UnloadedModuleInfo `json:"unloaded_modules,omitempty"`
	// ModuleCount is the number of loaded modules.
	ModuleCount int `json:"module_count"`
	// Problems lists the parts of the dump that could not be read or used;
	// the report is complete apart from them.
	Problems []string `json:"problems,omitempty"`
}

// DumpInfo identifies the analysed file.
type DumpInfo struct {
	File       string    `json:"file,omitempty"`
	Size       int64     `json:"size,omitempty"`
	SHA256     string    `json:"sha256,omitempty"`
	Format     string    `json:"format"`
	Type       string    `json:"type,omitempty"`
	Machine    string    `json:"machine"`
	CrashTime  time.Time `json:"crash_time,omitzero"`
	Uptime     string    `json:"system_uptime,omitempty"`
	Processors int       `json:"processors,omitempty"`
	// Attributes is DUMP_FILE_ATTRIBUTES when the header sets it.
	Attributes *Hex `json:"attributes,omitempty"`
}

// HostInfo is metadata about where a dump came from, filled by the caller
// (the CLI or a worker); Analyze copies it into the report untouched.
type HostInfo struct {
	Hostname    string            `json:"hostname,omitempty"`
	Tenant      string            `json:"tenant,omitempty"`
	SourcePath  string            `json:"source_path,omitempty"`
	CollectedAt time.Time         `json:"collected_at,omitzero"`
	Labels      map[string]string `json:"labels,omitempty"`
}

// BugCheckReport is the bug check with its name and parameter texts.
type BugCheckReport struct {
	Code   Hex    `json:"code"`
	Name   string `json:"name"`
	Params [4]Hex `json:"params"`
	// ParamText describes each parameter for this code (and subtype).
	ParamText [4]string `json:"param_text"`
	// BugCheckStr is the old BUGCHECK_STR: code plus subtype tokens.
	BugCheckStr string `json:"bugcheck_str"`
	// Subtype is the meaning of the subtype parameter, when known.
	Subtype string `json:"subtype,omitempty"`
	Hint    string `json:"hint,omitempty"`
	DocURL  string `json:"doc_url,omitempty"`
}

// Culprit is what the analysis blames.
type Culprit struct {
	Kind CulpritKind `json:"kind"`
	// Module is the debugger's module name (MODULE_NAME): nt, amdppm.
	Module string `json:"module"`
	// Image is the image file name (IMAGE_NAME): ntkrnlmp.exe, amdppm.sys.
	Image string `json:"image"`
	// Symbol is SYMBOL_NAME: module!function+offset, or module+rva
	// without symbols.
	Symbol     string     `json:"symbol"`
	Confidence Confidence `json:"confidence"`
	// Frame is the index of the blamed frame in the stack, or -1.
	Frame int `json:"frame"`
	// Address is the blamed instruction or object address.
	Address *Hex `json:"address,omitempty"`
	// ImageTimestamp is the blamed image's PE TimeDateStamp.
	ImageTimestamp *Hex `json:"image_timestamp,omitempty"`
	// By says where the blame came from: ip_param, context, stack, rule,
	// object, process, hardware, fallback.
	By string `json:"by"`
}

// AddressInfo places an address among the dump's modules.
type AddressInfo struct {
	Address Hex    `json:"address"`
	Module  string `json:"module,omitempty"`
	Image   string `json:"image,omitempty"`
	Offset  *Hex   `json:"offset,omitempty"`
	Symbol  string `json:"symbol,omitempty"`
	// Where is "module", "unloaded_module" or "no_module".
	Where string `json:"where"`
	// Param is the bug-check parameter (1..4) the address came from; 0
	// when it came from the context.
	Param int `json:"param,omitempty"`
}

// ContextInfo describes the register context used for the stack.
type ContextInfo struct {
	// Source is "dump_header", "context_record", "trap_frame" or
	// "exception_record".
	Source string `json:"source"`
	// Address is where the record lives (0 for the dump header's context).
	Address *Hex `json:"address,omitempty"`
	// Param is the bug-check parameter that gave the record (1..4), or 0.
	Param int            `json:"param,omitempty"`
	IP    Hex            `json:"ip"`
	SP    Hex            `json:"sp"`
	Regs  map[string]Hex `json:"registers,omitempty"`
}

// Frame is one stack frame, top of stack first.
type Frame struct {
	Index int `json:"index"`
	IP    Hex `json:"ip"`
	SP    Hex `json:"sp"`
	// Module and Image are empty when the address is in no loaded module.
	Module string `json:"module,omitempty"`
	Image  string `json:"image,omitempty"`
	// Offset is the address relative to the module base.
	Offset *Hex `json:"offset,omitempty"`
	// Function and FuncOffset come from symbols; empty without them.
	Function   string `json:"function,omitempty"`
	FuncOffset *Hex   `json:"function_offset,omitempty"`
	// Symbol is module!function+0xoff, module+0xrva or the bare address.
	Symbol string `json:"symbol"`
	// FoundBy says how the frame was found: context, ip_param, cfi,
	// frame_pointer, scan.
	FoundBy string `json:"found_by"`
	// SourceFile and SourceLine give the frame's source position when the
	// symbols have line information (PDB or Breakpad).
	SourceFile string `json:"source_file,omitempty"`
	SourceLine int    `json:"source_line,omitempty"`
	// Unloaded names the unloaded driver whose range holds the address.
	Unloaded string `json:"unloaded,omitempty"`
	// Rule verdict on this frame.
	Decision string `json:"decision,omitempty"`
	Owner    string `json:"owner,omitempty"`
	Rule     string `json:"rule,omitempty"`
	Blamed   bool   `json:"blamed,omitempty"`
}

// OSInfo describes the crashed system's Windows.
type OSInfo struct {
	// Version is OS_VERSION: 10.0.19041.1.
	Version string `json:"version,omitempty"`
	Build   uint32 `json:"build"`
	// BuildLab is the kernel's NtBuildLab string, when the dump holds it.
	BuildLab string `json:"build_lab,omitempty"`
	// Branch is BUILDLAB_STR: vb_release.
	Branch string `json:"branch,omitempty"`
	// Platform is OSPLATFORM_TYPE: x64, x86, arm64.
	Platform string `json:"platform"`
	// Name is OSNAME computed from the build ("Windows 11" for builds
	// 22000 and later, which WinDbg itself prints as Windows 10).
	Name        string `json:"name"`
	ProductType string `json:"product_type,omitempty"`
}

// RulesReport is what the rules contributed.
type RulesReport struct {
	Fired       []RuleHit `json:"fired,omitempty"`
	Tags        []string  `json:"tags,omitempty"`
	Queue       string    `json:"queue,omitempty"`
	KnownIssue  string    `json:"known_issue,omitempty"`
	KB          string    `json:"kb,omitempty"`
	Remediation string    `json:"remediation,omitempty"`
	Severity    string    `json:"severity,omitempty"`
	BlameImage  string    `json:"blame_image,omitempty"`
	Override    string    `json:"bucket_override,omitempty"`
	Suffix      string    `json:"bucket_suffix,omitempty"`
}

// RuleHit is one rule that fired.
type RuleHit struct {
	ID     string `json:"id"`
	Source string `json:"source"`
	Frame  int    `json:"frame"`
	Why    string `json:"why"`
}

// UnloadedModuleInfo is a driver unloaded before the crash.
type UnloadedModuleInfo struct {
	Name  string `json:"name"`
	Start Hex    `json:"start"`
	End   Hex    `json:"end"`
}

// MarshalIndent returns the report as indented JSON.
func (r *Report) MarshalIndent() ([]byte, error) { return json.MarshalIndent(r, "", "  ") }
