package kdump

import (
	"errors"
	"fmt"
)

// Format is the kind of file a dump is, as told by its first bytes.
type Format int

// Formats recognised by Sniff.
const (
	FormatUnknown    Format = iota // not a dump kdump knows
	FormatKernel64                 // PAGEDU64: 64-bit kernel dump (x64, ARM64)
	FormatKernel32                 // PAGEDUMP: 32-bit kernel dump (x86, ARM)
	FormatMDMP                     // MDMP: user-mode minidump
	FormatUserDump64               // USERDU64: legacy 64-bit user-mode dump
	FormatUserDump32               // USERDUMP: legacy 32-bit user-mode dump
	FormatEmpty                    // a zero-length file
	FormatZeroed                   // a file of only zero bytes (a dump that was never written)
)

// String returns the short name used in reports: kernel64, kernel32, mdmp,
// userdump, empty, zeroed or unknown.
func (f Format) String() string {
	switch f {
	case FormatUnknown:
		return "unknown"
	case FormatKernel64:
		return "kernel64"
	case FormatKernel32:
		return "kernel32"
	case FormatMDMP:
		return "mdmp"
	case FormatUserDump64, FormatUserDump32:
		return "userdump"
	case FormatEmpty:
		return "empty"
	case FormatZeroed:
		return "zeroed"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Machine is an IMAGE_FILE_MACHINE value.
type Machine uint16

// Machines that Windows dumps come from.
const (
	MachineUnknown Machine = 0
	MachineI386    Machine = 0x014C
	MachineARMNT   Machine = 0x01C4
	MachineAMD64   Machine = 0x8664
	MachineARM64   Machine = 0xAA64
)

// String returns x64, x86, arm64, arm, or the value in hex.
func (m Machine) String() string {
	switch m {
	case MachineAMD64:
		return "x64"
	case MachineI386:
		return "x86"
	case MachineARM64:
		return "arm64"
	case MachineARMNT:
		return "arm"
	}
	return fmt.Sprintf("machine(%#x)", uint16(m))
}

// PointerSize returns 8 for 64-bit machines and 4 for 32-bit ones.
func (m Machine) PointerSize() int {
	if m == MachineAMD64 || m == MachineARM64 {
		return 8
	}
	return 4
}

// DumpType is the DumpType field of a kernel dump header.
type DumpType uint32

// Kernel dump types. Types 8, 9 and 0xA are not in the public enum; their
// names follow what writes them.
const (
	DumpTypeUnknown      DumpType = 0
	DumpTypeFull         DumpType = 1 // complete dump with physical memory runs
	DumpTypeSummary      DumpType = 2 // pre-bitmap kernel summary dump (legacy)
	DumpTypeHeader       DumpType = 3 // header only
	DumpTypeTriage       DumpType = 4 // small memory dump (%SystemRoot%\Minidump)
	DumpTypeBitmapFull   DumpType = 5 // bitmap dump: SDMP (kernel) or FDMP (complete)
	DumpTypeBitmapKernel DumpType = 6 // bitmap dump (live kernel dumps)
	DumpTypeAutomatic    DumpType = 7 // a crash-dump setting; not expected in files
	DumpTypeKernelRDMP   DumpType = 8 // RDMP kernel memory dump (.dump /k)
	DumpTypeKernelUser   DumpType = 9 // RDMP kernel + user memory dump (.dump /ka)
	DumpTypeCompleteRDMP DumpType = 0xA
	DumpTypeInvalid      DumpType = 0xFFFFFFFF
)

// String returns the name used in reports and JSON: triage, full, bitmap, ...
func (t DumpType) String() string {
	switch t {
	case DumpTypeUnknown:
		return "unknown"
	case DumpTypeFull:
		return "full"
	case DumpTypeSummary:
		return "summary"
	case DumpTypeHeader:
		return "header"
	case DumpTypeTriage:
		return "triage"
	case DumpTypeBitmapFull:
		return "bitmap"
	case DumpTypeBitmapKernel:
		return "bitmap-kernel"
	case DumpTypeAutomatic:
		return "automatic"
	case DumpTypeKernelRDMP:
		return "kernel-rdmp"
	case DumpTypeKernelUser:
		return "kernel-user-rdmp"
	case DumpTypeCompleteRDMP:
		return "complete-rdmp"
	case DumpTypeInvalid:
		return "invalid"
	}
	return fmt.Sprintf("DumpType(%#x)", uint32(t))
}

// HasPhysicalMemory reports whether dumps of this type store physical pages.
func (t DumpType) HasPhysicalMemory() bool {
	switch t {
	case DumpTypeFull, DumpTypeBitmapFull, DumpTypeBitmapKernel, DumpTypeKernelRDMP, DumpTypeKernelUser, DumpTypeCompleteRDMP:
		return true
	}
	return false
}

// Sentinel errors. Wrap-aware: test with errors.Is.
var (
	// ErrNotADump means the file is not a crash dump kdump recognises.
	ErrNotADump = errors.New("not a Windows crash dump")
	// ErrEmpty means the file has no bytes: Windows failed to write the dump.
	ErrEmpty = errors.New("the dump was never written: the file is empty (Windows could not save it; check the page file and free disk space)")
	// ErrZeroed means the file holds only zero bytes: the dump was never written.
	ErrZeroed = errors.New("the dump was never written: the file holds only zero bytes (Windows could not save it; check the page file and free disk space)")
	// ErrUnsupported means the file is a dump but of a kind or feature this
	// package does not read (for example encrypted dump data).
	ErrUnsupported = errors.New("unsupported dump feature")
	// ErrNotPresent means a virtual or physical address is not stored in the dump.
	ErrNotPresent = errors.New("memory not present in the dump")
	// ErrUserMode means the file is a user-mode dump: open it with
	// package kdump/minidump (or OpenAny).
	ErrUserMode = errors.New("user-mode dump")
)

// FormatError reports malformed data at a file offset.
type FormatError struct {
	Offset int64  // file offset of the offending data, -1 if unknown
	What   string // what was being read, e.g. "triage header"
	Msg    string // what is wrong
	Err    error  // underlying error (io.ErrUnexpectedEOF, ErrNotADump...), may be nil
}

// Error returns "what: msg at offset 0x...: underlying error", on one line.
func (e *FormatError) Error() string {
	s := e.What
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Offset >= 0 {
		s = fmt.Sprintf("%s at offset %#x", s, e.Offset)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error.
func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(off int64, what, msg string, args ...any) *FormatError {
	return &FormatError{Offset: off, What: what, Msg: fmt.Sprintf(msg, args...)}
}

// MemoryError reports a virtual (or physical) read that could not be satisfied.
type MemoryError struct {
	Addr     uint64 // first address that could not be read
	Physical bool   // Addr is a physical address
	Err      error  // ErrNotPresent, or a *FormatError from the file
}

// Error names the address and why it could not be read.
func (e *MemoryError) Error() string {
	kind := "virtual"
	if e.Physical {
		kind = "physical"
	}
	return fmt.Sprintf("reading %s address %#x: %v", kind, e.Addr, e.Err)
}

// Unwrap returns the underlying error.
func (e *MemoryError) Unwrap() error { return e.Err }
