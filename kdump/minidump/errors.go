package minidump

import (
	"errors"
	"fmt"
)

// Sentinel errors. Test with errors.Is.
var (
	// ErrNotMinidump means the file does not start with the MDMP signature.
	ErrNotMinidump = errors.New("not a minidump")
	// ErrVersion means the header's version is not MINIDUMP_VERSION (0xA793).
	ErrVersion = errors.New("unsupported minidump version")
	// ErrNoStream means the dump has no stream of the requested type.
	ErrNoStream = errors.New("stream not present")
	// ErrTooLarge means a count or size exceeds what this package accepts.
	ErrTooLarge = errors.New("value exceeds a limit")
	// ErrNotPresent means a virtual address is not stored in the dump.
	ErrNotPresent = errors.New("memory not present in the dump")
	// ErrTruncated means data runs past the end of the file or its stream.
	ErrTruncated = errors.New("truncated")
)

// FormatError reports malformed data at a file offset.
type FormatError struct {
	Offset int64  // file offset of the offending data, -1 if unknown
	What   string // what was being read, e.g. "module list"
	Msg    string // what is wrong
	Err    error  // underlying sentinel (ErrTruncated, ErrTooLarge...), may be nil
}

// Error returns "minidump: what: msg at offset 0x...: cause".
func (e *FormatError) Error() string {
	s := "minidump: " + e.What + ": " + e.Msg
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

func formatErr(off int64, what string, err error, msg string, args ...any) *FormatError {
	return &FormatError{Offset: off, What: what, Msg: fmt.Sprintf(msg, args...), Err: err}
}

// MemoryError reports a virtual-memory read that could not be satisfied.
type MemoryError struct {
	Addr uint64 // first address that could not be read
	Err  error  // ErrNotPresent, or a *FormatError from the file
}

// Error names the address and the cause.
func (e *MemoryError) Error() string {
	return fmt.Sprintf("minidump: reading address %#x: %v", e.Addr, e.Err)
}

// Unwrap returns the underlying error.
func (e *MemoryError) Unwrap() error { return e.Err }
