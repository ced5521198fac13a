package minidump

import "fmt"

// ExceptionCode is a Windows exception code (an NTSTATUS value).
type ExceptionCode uint32

// Common exception codes.
const (
	StatusGuardPageViolation         ExceptionCode = 0x80000001
	StatusDatatypeMisalignment       ExceptionCode = 0x80000002
	StatusBreakpoint                 ExceptionCode = 0x80000003
	StatusSingleStep                 ExceptionCode = 0x80000004
	StatusAccessViolation            ExceptionCode = 0xC0000005
	StatusInPageError                ExceptionCode = 0xC0000006
	StatusInvalidHandle              ExceptionCode = 0xC0000008
	StatusInvalidParameter           ExceptionCode = 0xC000000D
	StatusNoMemory                   ExceptionCode = 0xC0000017
	StatusIllegalInstruction         ExceptionCode = 0xC000001D
	StatusNoncontinuableException    ExceptionCode = 0xC0000025
	StatusInvalidDisposition         ExceptionCode = 0xC0000026
	StatusArrayBoundsExceeded        ExceptionCode = 0xC000008C
	StatusFloatDenormalOperand       ExceptionCode = 0xC000008D
	StatusFloatDivideByZero          ExceptionCode = 0xC000008E
	StatusFloatInexactResult         ExceptionCode = 0xC000008F
	StatusFloatInvalidOperation      ExceptionCode = 0xC0000090
	StatusFloatOverflow              ExceptionCode = 0xC0000091
	StatusFloatStackCheck            ExceptionCode = 0xC0000092
	StatusFloatUnderflow             ExceptionCode = 0xC0000093
	StatusIntegerDivideByZero        ExceptionCode = 0xC0000094
	StatusIntegerOverflow            ExceptionCode = 0xC0000095
	StatusPrivilegedInstruction      ExceptionCode = 0xC0000096
	StatusStackOverflow              ExceptionCode = 0xC00000FD
	StatusDLLNotFound                ExceptionCode = 0xC0000135
	StatusOrdinalNotFound            ExceptionCode = 0xC0000138
	StatusEntryPointNotFound         ExceptionCode = 0xC0000139
	StatusControlCExit               ExceptionCode = 0xC000013A
	StatusDLLInitFailed              ExceptionCode = 0xC0000142
	StatusPossibleDeadlock           ExceptionCode = 0xC0000194
	StatusFloatMultipleFaults        ExceptionCode = 0xC00002B4
	StatusFloatMultipleTraps         ExceptionCode = 0xC00002B5
	StatusHeapCorruption             ExceptionCode = 0xC0000374
	StatusStackBufferOverrun         ExceptionCode = 0xC0000409
	StatusInvalidCRuntimeParameter   ExceptionCode = 0xC0000417
	StatusFatalUserCallbackException ExceptionCode = 0xC000041D
	StatusAssertionFailure           ExceptionCode = 0xC0000420
	StatusFailFastException          ExceptionCode = 0xC0000602
	StatusDelayLoadModuleNotFound    ExceptionCode = 0xC06D007E
	StatusDelayLoadProcNotFound      ExceptionCode = 0xC06D007F
	StatusCPPException               ExceptionCode = 0xE06D7363
	StatusCLRException               ExceptionCode = 0xE0434352
	StatusCOMPlusException           ExceptionCode = 0xE0434F4D
	StatusSetThreadName              ExceptionCode = 0x406D1388
	StatusDbgControlC                ExceptionCode = 0x40010005
)

var exceptionNames = map[ExceptionCode]string{
	StatusGuardPageViolation:         "EXCEPTION_GUARD_PAGE",
	StatusDatatypeMisalignment:       "EXCEPTION_DATATYPE_MISALIGNMENT",
	StatusBreakpoint:                 "EXCEPTION_BREAKPOINT",
	StatusSingleStep:                 "EXCEPTION_SINGLE_STEP",
	StatusAccessViolation:            "EXCEPTION_ACCESS_VIOLATION",
	StatusInPageError:                "EXCEPTION_IN_PAGE_ERROR",
	StatusInvalidHandle:              "EXCEPTION_INVALID_HANDLE",
	StatusInvalidParameter:           "STATUS_INVALID_PARAMETER",
	StatusNoMemory:                   "STATUS_NO_MEMORY",
	StatusIllegalInstruction:         "EXCEPTION_ILLEGAL_INSTRUCTION",
	StatusNoncontinuableException:    "EXCEPTION_NONCONTINUABLE_EXCEPTION",
	StatusInvalidDisposition:         "EXCEPTION_INVALID_DISPOSITION",
	StatusArrayBoundsExceeded:        "EXCEPTION_ARRAY_BOUNDS_EXCEEDED",
	StatusFloatDenormalOperand:       "EXCEPTION_FLT_DENORMAL_OPERAND",
	StatusFloatDivideByZero:          "EXCEPTION_FLT_DIVIDE_BY_ZERO",
	StatusFloatInexactResult:         "EXCEPTION_FLT_INEXACT_RESULT",
	StatusFloatInvalidOperation:      "EXCEPTION_FLT_INVALID_OPERATION",
	StatusFloatOverflow:              "EXCEPTION_FLT_OVERFLOW",
	StatusFloatStackCheck:            "EXCEPTION_FLT_STACK_CHECK",
	StatusFloatUnderflow:             "EXCEPTION_FLT_UNDERFLOW",
	StatusIntegerDivideByZero:        "EXCEPTION_INT_DIVIDE_BY_ZERO",
	StatusIntegerOverflow:            "EXCEPTION_INT_OVERFLOW",
	StatusPrivilegedInstruction:      "EXCEPTION_PRIV_INSTRUCTION",
	StatusStackOverflow:              "EXCEPTION_STACK_OVERFLOW",
	StatusDLLNotFound:                "STATUS_DLL_NOT_FOUND",
	StatusOrdinalNotFound:            "STATUS_ORDINAL_NOT_FOUND",
	StatusEntryPointNotFound:         "STATUS_ENTRYPOINT_NOT_FOUND",
	StatusControlCExit:               "STATUS_CONTROL_C_EXIT",
	StatusDLLInitFailed:              "STATUS_DLL_INIT_FAILED",
	StatusPossibleDeadlock:           "EXCEPTION_POSSIBLE_DEADLOCK",
	StatusFloatMultipleFaults:        "STATUS_FLOAT_MULTIPLE_FAULTS",
	StatusFloatMultipleTraps:         "STATUS_FLOAT_MULTIPLE_TRAPS",
	StatusHeapCorruption:             "STATUS_HEAP_CORRUPTION",
	StatusStackBufferOverrun:         "STATUS_STACK_BUFFER_OVERRUN",
	StatusInvalidCRuntimeParameter:   "STATUS_INVALID_CRUNTIME_PARAMETER",
	StatusFatalUserCallbackException: "STATUS_FATAL_USER_CALLBACK_EXCEPTION",
	StatusAssertionFailure:           "STATUS_ASSERTION_FAILURE",
	StatusFailFastException:          "STATUS_FAIL_FAST_EXCEPTION",
	StatusDelayLoadModuleNotFound:    "VCPP_EXCEPTION_DELAYLOAD_MODULE_NOT_FOUND",
	StatusDelayLoadProcNotFound:      "VCPP_EXCEPTION_DELAYLOAD_PROC_NOT_FOUND",
	StatusCPPException:               "CPP_EH_EXCEPTION",
	StatusCLRException:               "CLR_EXCEPTION",
	StatusCOMPlusException:           "CLR_EXCEPTION_COMPLUS",
	StatusSetThreadName:              "MS_VC_SET_THREAD_NAME",
	StatusDbgControlC:                "DBG_CONTROL_C",
}

// Name returns the symbolic name, or "" for codes not in the table.
func (c ExceptionCode) Name() string { return exceptionNames[c] }

// String returns the symbolic name, or the code in hex.
func (c ExceptionCode) String() string {
	if s, ok := exceptionNames[c]; ok {
		return s
	}
	return fmt.Sprintf("%#08x", uint32(c))
}

// AccessKind says what an access violation tried to do.
type AccessKind int

// Access kinds (ExceptionInformation[0] of an access violation: 0 read,
// 1 write, 8 execute / DEP).
const (
	AccessUnknown AccessKind = iota
	AccessRead
	AccessWrite
	AccessExecute
)

// String returns READ, WRITE, EXEC or UNKNOWN (as in Breakpad's crash
// reasons, e.g. EXCEPTION_ACCESS_VIOLATION_WRITE).
func (k AccessKind) String() string {
	switch k {
	case AccessRead:
		return "READ"
	case AccessWrite:
		return "WRITE"
	case AccessExecute:
		return "EXEC"
	}
	return "UNKNOWN"
}

// AccessViolation describes an access violation or in-page error.
type AccessViolation struct {
	Code    ExceptionCode
	Kind    AccessKind
	Address uint64 // the address the instruction tried to access
	// Status is the NTSTATUS of the failed paging I/O (in-page errors only).
	Status uint32
}

// Reason returns the crash reason in Breakpad's style, e.g.
// EXCEPTION_ACCESS_VIOLATION_WRITE.
func (a *AccessViolation) Reason() string {
	if a.Kind == AccessUnknown {
		return a.Code.String()
	}
	return a.Code.String() + "_" + a.Kind.String()
}

// String returns the reason and target, e.g.
// "EXCEPTION_ACCESS_VIOLATION_WRITE at 0x45".
func (a *AccessViolation) String() string {
	s := fmt.Sprintf("%s at %#x", a.Reason(), a.Address)
	if a.Code == StatusInPageError {
		s += fmt.Sprintf(" (I/O status %#08x)", a.Status)
	}
	return s
}

// AddressKnown reports whether Address is the real target: for a
// general-protection fault (a non-canonical address on x64) Windows
// reports all ones instead.
func (a *AccessViolation) AddressKnown() bool {
	return a.Address != ^uint64(0) && a.Address != 0xFFFFFFFF
}

// IsNull reports whether the target address is in the first 64 KiB: a NULL
// (or NULL-plus-offset) dereference.
func (a *AccessViolation) IsNull() bool { return a.Address < 0x10000 }

// AccessViolation returns the details of an access violation or in-page
// error in a Windows dump, or nil when the exception is neither or the
// parameters are missing.
func (f *File) AccessViolation() *AccessViolation {
	e, err := f.Exception()
	if err != nil {
		return nil
	}
	if s, err := f.SystemInfo(); err == nil && !isWindows(s.PlatformID) {
		return nil
	}
	code := ExceptionCode(e.Code)
	if code != StatusAccessViolation && code != StatusInPageError || len(e.Information) < 2 {
		return nil
	}
	a := &AccessViolation{Code: code, Address: e.Information[1]}
	switch e.Information[0] {
	case 0:
		a.Kind = AccessRead
	case 1:
		a.Kind = AccessWrite
	case 8:
		a.Kind = AccessExecute
	}
	if code == StatusInPageError && len(e.Information) >= 3 {
		a.Status = uint32(e.Information[2])
	}
	return a
}

func isWindows(p Platform) bool {
	return p == PlatformWinNT || p == PlatformWin9x || p == PlatformWin32s || p == PlatformWinCE
}

var linuxSignals = map[uint32]string{
	1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
	8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE",
	14: "SIGALRM", 15: "SIGTERM", 31: "SIGSYS", 0xFFFFFFFF: "DUMP_REQUESTED",
}

var machExceptions = map[uint32]string{
	1: "EXC_BAD_ACCESS", 2: "EXC_BAD_INSTRUCTION", 3: "EXC_ARITHMETIC", 4: "EXC_EMULATION",
	5: "EXC_SOFTWARE", 6: "EXC_BREAKPOINT", 7: "EXC_SYSCALL", 8: "EXC_MACH_SYSCALL",
	9: "EXC_RPC_ALERT", 10: "EXC_CRASH", 11: "EXC_RESOURCE", 12: "EXC_GUARD",
}

// CrashReason returns the exception's name as crash tools print it: for
// Windows dumps the NTSTATUS name, with _READ/_WRITE/_EXEC for access
// violations; for Linux and Android dumps the signal name; for macOS and iOS
// the Mach exception name. Unknown codes are given in hex. It returns ""
// when the dump has no exception stream.
func (f *File) CrashReason() string {
	e, err := f.Exception()
	if err != nil {
		return ""
	}
	plat := PlatformWinNT
	if s, err := f.SystemInfo(); err == nil {
		plat = s.PlatformID
	}
	switch plat {
	case PlatformLinux, PlatformAndroid:
		if s, ok := linuxSignals[e.Code]; ok {
			return s
		}
	case PlatformMacOS, PlatformIOS:
		if s, ok := machExceptions[e.Code]; ok {
			return s
		}
	default:
		if av := f.AccessViolation(); av != nil {
			return av.Reason()
		}
		return ExceptionCode(e.Code).String()
	}
	return fmt.Sprintf("%#08x", e.Code)
}

// CrashAddress returns the address a crash is about: the access
// violation's target for Windows access violations, else the exception
// address. ok is false when the dump has no exception stream.
func (f *File) CrashAddress() (addr uint64, ok bool) {
	e, err := f.Exception()
	if err != nil {
		return 0, false
	}
	if av := f.AccessViolation(); av != nil {
		return av.Address, true
	}
	return e.Address, true
}

// CrashingThreadID returns the id of the thread that crashed: the exception
// stream's thread, else Breakpad's requesting thread. ok is false when the
// dump names neither.
func (f *File) CrashingThreadID() (id uint32, ok bool) {
	if e, err := f.Exception(); err == nil {
		return e.ThreadID, true
	}
	if b, err := f.BreakpadInfo(); err == nil && b.Validity&BreakpadRequestingThreadIDValid != 0 {
		return b.RequestingThreadID, true
	}
	return 0, false
}

// MainModule returns the process's main executable: the first module of the
// module list (the loader lists the executable first), or nil.
func (f *File) MainModule() *Module {
	mods, err := f.Modules()
	if err != nil || len(mods) == 0 {
		return nil
	}
	return &mods[0]
}

// ProcessName returns the base name of the main module, e.g. "App.exe", or
// "" when the dump has no module list.
func (f *File) ProcessName() string {
	if m := f.MainModule(); m != nil {
		return m.BaseName()
	}
	return ""
}

// fastFailNames are the __fastfail codes of winnt.h (ExceptionInformation[0]
// of STATUS_STACK_BUFFER_OVERRUN).
var fastFailNames = map[uint64]string{
	0: "FAST_FAIL_LEGACY_GS_VIOLATION", 1: "FAST_FAIL_VTGUARD_CHECK_FAILURE", 2: "FAST_FAIL_STACK_COOKIE_CHECK_FAILURE",
	3: "FAST_FAIL_CORRUPT_LIST_ENTRY", 4: "FAST_FAIL_INCORRECT_STACK", 5: "FAST_FAIL_INVALID_ARG",
	6: "FAST_FAIL_GS_COOKIE_INIT", 7: "FAST_FAIL_FATAL_APP_EXIT", 8: "FAST_FAIL_RANGE_CHECK_FAILURE",
	9: "FAST_FAIL_UNSAFE_REGISTRY_ACCESS", 10: "FAST_FAIL_GUARD_ICALL_CHECK_FAILURE", 11: "FAST_FAIL_GUARD_WRITE_CHECK_FAILURE",
	12: "FAST_FAIL_INVALID_FIBER_SWITCH", 13: "FAST_FAIL_INVALID_SET_OF_CONTEXT", 14: "FAST_FAIL_INVALID_REFERENCE_COUNT",
	18: "FAST_FAIL_INVALID_JUMP_BUFFER", 19: "FAST_FAIL_MRDATA_MODIFIED", 20: "FAST_FAIL_CERTIFICATION_FAILURE",
	21: "FAST_FAIL_INVALID_EXCEPTION_CHAIN", 22: "FAST_FAIL_CRYPTO_LIBRARY", 23: "FAST_FAIL_INVALID_CALL_IN_DLL_CALLOUT",
	24: "FAST_FAIL_INVALID_IMAGE_BASE",
}

// FastFailName returns the name of a __fastfail code, or "" if unknown.
func FastFailName(code uint64) string { return fastFailNames[code] }

// Linux si_code values per signal (the exception flags of Breakpad's Linux
// dumps).
var linuxSigCodes = map[uint32]map[uint32]string{
	4:  {1: "ILL_ILLOPC", 2: "ILL_ILLOPN", 3: "ILL_ILLADR", 4: "ILL_ILLTRP", 5: "ILL_PRVOPC", 6: "ILL_PRVREG", 7: "ILL_COPROC", 8: "ILL_BADSTK"},
	7:  {1: "BUS_ADRALN", 2: "BUS_ADRERR", 3: "BUS_OBJERR"},
	8:  {1: "FPE_INTDIV", 2: "FPE_INTOVF", 3: "FPE_FLTDIV", 4: "FPE_FLTOVF", 5: "FPE_FLTUND", 6: "FPE_FLTRES", 7: "FPE_FLTINV", 8: "FPE_FLTSUB"},
	11: {1: "SEGV_MAPERR", 2: "SEGV_ACCERR", 3: "SEGV_BNDERR", 4: "SEGV_PKUERR"},
}

// CrashDetail returns the sub-reason of the crash when the dump records
// one: the __fastfail code of STATUS_STACK_BUFFER_OVERRUN (e.g.
// FAST_FAIL_FATAL_APP_EXIT), the I/O status of an in-page error, the Linux
// si_code (e.g. SEGV_MAPERR) or the Mach kern_return_t of EXC_BAD_ACCESS
// (KERN_INVALID_ADDRESS, KERN_PROTECTION_FAILURE). It returns "" otherwise.
func (f *File) CrashDetail() string {
	e, err := f.Exception()
	if err != nil {
		return ""
	}
	plat := PlatformWinNT
	if s, err := f.SystemInfo(); err == nil {
		plat = s.PlatformID
	}
	switch plat {
	case PlatformLinux, PlatformAndroid:
		return linuxSigCodes[e.Code][e.Flags]
	case PlatformMacOS, PlatformIOS:
		if e.Code == 1 { // EXC_BAD_ACCESS
			switch e.Flags {
			case 1:
				return "KERN_INVALID_ADDRESS"
			case 2:
				return "KERN_PROTECTION_FAILURE"
			case 13:
				return "EXC_I386_GPFLT"
			}
		}
		return ""
	}
	switch ExceptionCode(e.Code) {
	case StatusStackBufferOverrun:
		if len(e.Information) > 0 {
			if n := FastFailName(e.Information[0]); n != "" {
				return n
			}
			return fmt.Sprintf("FAST_FAIL_%d", e.Information[0])
		}
	case StatusInPageError:
		if av := f.AccessViolation(); av != nil {
			return fmt.Sprintf("%#08x", av.Status)
		}
	}
	return ""
}
