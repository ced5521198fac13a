package triage

import (
	"fmt"
	"strings"

	"github.com/kdtriage/kdtriage/kdump/minidump"
)

// ExceptionReport is the exception record of a user-mode dump: what
// WinDbg prints after .exr -1 plus what the analysis derives from it.
type ExceptionReport struct {
	// Code is the exception code (an NTSTATUS on Windows, the signal or
	// Mach exception number in Breakpad dumps of other systems).
	Code Hex `json:"code"`
	// Name is the symbolic name: EXCEPTION_ACCESS_VIOLATION,
	// STATUS_STACK_BUFFER_OVERRUN, SIGSEGV...; "" for unknown codes.
	Name string `json:"name"`
	// Description says in words what the code means.
	Description string `json:"description,omitempty"`
	Flags       Hex    `json:"flags"`
	// Address is ExceptionAddress: where the exception was raised.
	Address Hex `json:"address"`
	// NumberParameters is the count as recorded; Params holds at most 15.
	NumberParameters int   `json:"number_parameters"`
	Params           []Hex `json:"params"`
	// ThreadID is the thread that raised the exception.
	ThreadID uint32 `json:"thread_id"`
	// Reason is the crash reason as Breakpad's minidump_stackwalk prints
	// it: EXCEPTION_ACCESS_VIOLATION_WRITE, SIGSEGV...
	Reason string `json:"reason"`
	// Detail is the sub-reason when there is one: the __fastfail code of
	// STATUS_STACK_BUFFER_OVERRUN (FAST_FAIL_FATAL_APP_EXIT), the I/O
	// status of an in-page error, the Linux si_code.
	Detail string `json:"detail,omitempty"`
	// Access is read, write or execute for access violations and in-page
	// errors; Target is the address the instruction tried to access and
	// TargetClass classifies it: null (0), null_offset (below 64 KiB),
	// non_canonical (x64 general-protection fault: Windows reports all
	// ones), kernel (above the user address space), user.
	Access      string `json:"access,omitempty"`
	Target      *Hex   `json:"target,omitempty"`
	TargetClass string `json:"target_class,omitempty"`
	// DEP is set for an execute access to an address that is mapped but
	// not executable (data execution prevention).
	DEP bool `json:"dep,omitempty"`
	// CrashAddress is the address the crash is about: Target for access
	// violations, else Address (Breakpad's "Crash address").
	CrashAddress Hex `json:"crash_address"`
	// Class is the problem class the bucket starts with
	// (NULL_CLASS_PTR_WRITE, STACK_BUFFER_OVERRUN, BREAKPOINT...).
	Class string `json:"class"`
}

// exceptionInfo is what kdtriage knows about an exception code: the class
// token its buckets start with and a description in our own words.
type exceptionInfo struct {
	class string
	desc  string
}

// exceptionTable holds the Windows exception codes (NTSTATUS values and
// the compiler runtimes' software exceptions) that application crashes
// carry. Names come from minidump.ExceptionCode.
var exceptionTable = map[uint32]exceptionInfo{
	0x80000001: {"GUARD_PAGE_VIOLATION", "a guard page was touched"},
	0x80000002: {"DATATYPE_MISALIGNMENT", "misaligned data access"},
	0x80000003: {"BREAKPOINT", "a breakpoint instruction (int 3 / brk) was executed with no debugger attached"},
	0x80000004: {"SINGLE_STEP", "a single-step or hardware breakpoint trap"},
	0xC0000005: {"ACCESS_VIOLATION", "access violation: the instruction referenced memory it may not access"},
	0xC0000006: {"IN_PAGE_ERROR", "in-page error: the page could not be read from its file (disk, network or removed media)"},
	0xC0000008: {"INVALID_HANDLE", "an invalid handle was used"},
	0xC000000D: {"INVALID_PARAMETER", "an invalid parameter was passed to a service or function"},
	0xC0000017: {"NO_MEMORY", "not enough virtual memory or paging file quota"},
	0xC000001D: {"ILLEGAL_INSTRUCTION", "the processor met an instruction it does not implement (bad jump, or a CPU feature the machine lacks)"},
	0xC0000025: {"NONCONTINUABLE_EXCEPTION", "execution was continued after an exception that cannot be continued"},
	0xC0000026: {"INVALID_DISPOSITION", "an exception handler returned an invalid disposition"},
	0xC000008C: {"ARRAY_BOUNDS_EXCEEDED", "an array index was out of bounds (bound instruction)"},
	0xC000008D: {"FLOAT_DENORMAL_OPERAND", "floating-point denormal operand"},
	0xC000008E: {"FLOAT_DIVIDE_BY_ZERO", "floating-point division by zero"},
	0xC000008F: {"FLOAT_INEXACT_RESULT", "floating-point inexact result"},
	0xC0000090: {"FLOAT_INVALID_OPERATION", "floating-point invalid operation"},
	0xC0000091: {"FLOAT_OVERFLOW", "floating-point overflow"},
	0xC0000092: {"FLOAT_STACK_CHECK", "floating-point stack over- or underflow"},
	0xC0000093: {"FLOAT_UNDERFLOW", "floating-point underflow"},
	0xC0000094: {"INTEGER_DIVIDE_BY_ZERO", "integer division by zero"},
	0xC0000095: {"INTEGER_OVERFLOW", "integer overflow (signed division of the most negative value by -1)"},
	0xC0000096: {"PRIVILEGED_INSTRUCTION", "a privileged instruction was executed in user mode"},
	0xC00000FD: {"STACK_OVERFLOW", "the thread's stack overflowed (deep or endless recursion, or a huge local array)"},
	0xC0000135: {"DLL_NOT_FOUND", "a DLL the program imports was not found"},
	0xC0000138: {"ORDINAL_NOT_FOUND", "an imported ordinal was not found in its DLL"},
	0xC0000139: {"ENTRYPOINT_NOT_FOUND", "an imported function was not found in its DLL"},
	0xC000013A: {"CONTROL_C_EXIT", "the application was ended by Ctrl+C"},
	0xC0000142: {"DLL_INIT_FAILED", "a DLL's initialisation routine failed"},
	0xC0000194: {"POSSIBLE_DEADLOCK", "a critical section wait timed out: possible deadlock"},
	0xC00002B4: {"FLOAT_MULTIPLE_FAULTS", "several floating-point faults"},
	0xC00002B5: {"FLOAT_MULTIPLE_TRAPS", "several floating-point traps"},
	0xC0000374: {"HEAP_CORRUPTION", "the heap manager found a corrupted heap (double free, overrun, use after free)"},
	0xC0000409: {"STACK_BUFFER_OVERRUN", "the process ended itself with __fastfail: a security check failed (stack cookie, CFG, corrupt list...) or the runtime asked for a fast exit"},
	0xC0000417: {"INVALID_CRUNTIME_PARAMETER", "the C runtime was passed an invalid parameter"},
	0xC000041D: {"FATAL_USER_CALLBACK_EXCEPTION", "an exception was raised in a user-mode callback from the kernel"},
	0xC0000420: {"ASSERTION_FAILURE", "an assertion failed (int 2c)"},
	0xC0000602: {"FAIL_FAST", "the process asked to fail fast (RaiseFailFastException)"},
	0xC06D007E: {"DELAYLOAD_MODULE_NOT_FOUND", "a delay-loaded DLL was not found"},
	0xC06D007F: {"DELAYLOAD_PROC_NOT_FOUND", "a delay-loaded function was not found"},
	0xE06D7363: {"CPP_EXCEPTION", "an unhandled C++ exception (throw)"},
	0xE0434352: {"CLR_EXCEPTION", "an unhandled .NET exception"},
	0xE0434F4D: {"CLR_EXCEPTION", "an unhandled .NET (COM+) exception"},
}

// exceptionName returns the symbolic name of a Windows exception code.
func exceptionName(code uint32) string {
	if n := minidump.ExceptionCode(code).Name(); n != "" {
		return n
	}
	switch code {
	case 0xC000041D:
		return "STATUS_FATAL_USER_CALLBACK_EXCEPTION"
	}
	return ""
}

// addressClass classifies the target of an access violation.
func addressClass(addr uint64, ptr int) string {
	switch {
	case addr == ^uint64(0) || ptr == 4 && addr == 0xFFFFFFFF:
		return "non_canonical"
	case addr == 0:
		return "null"
	case addr < 0x10000:
		return "null_offset"
	case ptr == 8 && addr>>47 != 0 && addr>>47 != 0x1FFFF:
		return "non_canonical"
	case ptr == 8 && addr>>47 == 0x1FFFF, ptr == 4 && addr >= 0x80000000:
		return "kernel"
	}
	return "user"
}

// avClass returns the bucket class of an access violation:
//
//	read/write of address 0:          NULL_POINTER_READ / NULL_POINTER_WRITE
//	read/write below 64 KiB:          NULL_CLASS_PTR_READ / NULL_CLASS_PTR_WRITE (a member of a NULL object)
//	read/write of any other address:  INVALID_POINTER_READ / INVALID_POINTER_WRITE
//	execute of a NULL address:        NULL_INSTRUCTION_PTR
//	execute of mapped data (DEP):     SOFTWARE_NX_FAULT
//	execute of anything else:         BAD_INSTRUCTION_PTR
//	access type unknown:              ACCESS_VIOLATION
func avClass(access, target string, dep bool) string {
	switch access {
	case "execute":
		switch {
		case target == "null" || target == "null_offset":
			return "NULL_INSTRUCTION_PTR"
		case dep:
			return "SOFTWARE_NX_FAULT"
		}
		return "BAD_INSTRUCTION_PTR"
	case "read", "write":
		rw := strings.ToUpper(access)
		switch target {
		case "null":
			return "NULL_POINTER_" + rw
		case "null_offset":
			return "NULL_CLASS_PTR_" + rw
		}
		return "INVALID_POINTER_" + rw
	}
	return "ACCESS_VIOLATION"
}

// fastFailClass returns the class of a STATUS_STACK_BUFFER_OVERRUN from
// its __fastfail code: stack-cookie failures (codes 0 and 2) keep the
// STACK_BUFFER_OVERRUN class; other codes are FAIL_FAST_<reason>.
func fastFailClass(code uint64, hasCode bool) string {
	if !hasCode || code == 0 || code == 2 {
		return "STACK_BUFFER_OVERRUN"
	}
	if n := minidump.FastFailName(code); n != "" {
		return "FAIL_FAST_" + strings.TrimPrefix(n, "FAST_FAIL_")
	}
	return fmt.Sprintf("FAIL_FAST_%d", code)
}

// tokenize turns a crash reason into a bucket token (upper case letters,
// digits and underscores).
func tokenize(s string) string {
	var b strings.Builder
	for _, c := range strings.ToUpper(s) {
		switch {
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	return strings.Trim(b.String(), "_")
}
