package pdb

import (
	"errors"
	"fmt"
)

// ErrNotPDB is returned (wrapped) when the input does not start with a PDB
// signature at all.
var ErrNotPDB = errors.New("pdb: not a program database")

// ErrUnsupported is returned (wrapped) for program databases in a format
// this package recognises but does not read, such as the pre-2000 "PDB 2.00"
// container or a "big MSF" directory spread over several block-map blocks.
var ErrUnsupported = errors.New("pdb: unsupported format")

// FormatError reports malformed PDB content. Off is the byte offset of the
// offending field, either in the file (Stream < 0) or inside the named
// stream.
type FormatError struct {
	Stream int    // stream index, or -1 for the MSF container itself
	Off    int64  // offset of the bad field (in the file or in Stream)
	Msg    string // what is wrong
}

func (e *FormatError) Error() string {
	if e.Stream < 0 {
		return fmt.Sprintf("pdb: malformed file at offset %#x: %s", e.Off, e.Msg)
	}
	return fmt.Sprintf("pdb: malformed stream %d at offset %#x: %s", e.Stream, e.Off, e.Msg)
}

// UnsupportedError describes a recognised but unsupported format. It matches
// ErrUnsupported with errors.Is.
type UnsupportedError struct {
	Format string // a human description, e.g. "Microsoft C/C++ program database 2.00"
}

func (e *UnsupportedError) Error() string {
	return "pdb: unsupported format: " + e.Format
}

// Is reports whether target is ErrUnsupported.
func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupported }

func formatErr(stream int, off int64, format string, args ...any) error {
	return &FormatError{Stream: stream, Off: off, Msg: fmt.Sprintf(format, args...)}
}
