// Package pe reads Portable Executable images (PE32 and PE32+: .exe, .dll,
// .sys) for crash-dump analysis: the headers that key an image in a symbol
// store (Machine, TimeDateStamp, SizeOfImage, CheckSum), the sections, the
// CodeView debug record that keys its PDB (RSDS and NB10), the export table,
// and the exception data used to unwind stacks: x64 RUNTIME_FUNCTION entries
// with their UNWIND_INFO, and ARM64 .pdata entries with packed or .xdata
// unwind records.
//
// An image can be read from a file (NewFile, Open), where RVAs are mapped to
// file offsets through the section table, or from memory where it is mapped
// (NewImage), e.g. a driver's pages inside a kernel dump, where an RVA is an
// offset from the image base.
//
// Images are hostile input. Every count, size and offset is checked before
// it is used, allocations are capped, and problems are reported as
// *FormatError values carrying the offset of the bad field (a file offset for
// NewFile, an RVA for NewImage) and wrapping ErrFormat, ErrTruncated,
// ErrNotPE, ErrNotPresent or ErrLimit.
//
// The layouts follow the Microsoft PE/COFF specification and the x64 and
// ARM64 exception-handling documentation; see dump-formats.md §6.4, §8.6 and
// §10 in the project's shared documentation.
package pe
