package pe

import (
	"errors"
	"fmt"
)

// Sentinel errors wrapped by *FormatError; test with errors.Is.
var (
	// ErrNotPE means the input has no MZ/PE signature.
	ErrNotPE = errors.New("pe: not a PE image")
	// ErrFormat means a field holds a value that cannot be right.
	ErrFormat = errors.New("pe: malformed image")
	// ErrTruncated means a structure runs past the end of the input.
	ErrTruncated = errors.New("pe: truncated")
	// ErrNotPresent means the image has no such directory or record, or
	// (for mapped images) the page holding it is not in memory.
	ErrNotPresent = errors.New("pe: not present")
	// ErrLimit means a count or size exceeds a safety cap of this package.
	ErrLimit = errors.New("pe: size limit exceeded")
)

// FormatError reports a problem at a position in an image. Offset is a file
// offset for images read with NewFile or Open, and an RVA for images read
// with NewImage (Mapped is then true); it is -1 when unknown.
type FormatError struct {
	Offset int64
	Mapped bool
	What   string // the structure being read, e.g. "section table"
	Msg    string
	Err    error // ErrFormat, ErrTruncated, ErrNotPE, ErrNotPresent, ErrLimit or an I/O error
}

func (e *FormatError) Error() string {
	where := "offset"
	if e.Mapped {
		where = "rva"
	}
	s := "pe: " + e.What
	if e.Offset >= 0 {
		s += fmt.Sprintf(" at %s %#x", where, e.Offset)
	}
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Err != nil && e.Msg == "" {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying sentinel or I/O error.
func (e *FormatError) Unwrap() error { return e.Err }
