// Package kdump reads Windows crash dumps: kernel dumps (PAGEDUMP for 32-bit
// x86/ARM kernels, PAGEDU64 for x64/ARM64) of every type (triage/small
// memory dumps, complete dumps with physical memory runs, kernel and full
// bitmap dumps, the newer RDMP types 8, 9 and 0xA), and it recognises
// user-mode MDMP and legacy USERDUMP/USERDU64 files.
//
// The API follows debug/pe and debug/elf: NewFile over an io.ReaderAt, Open
// over a path. Parsing is lazy and bounded: opening a dump reads the header
// and the small tables that describe where memory lives; pages are read only
// when asked for, so the cost of an analysis follows what it touches, not the
// size of the dump. Every length, count and offset read from the file is
// checked before use; malformed input yields a *FormatError naming the file
// offset, never a panic.
//
// The layouts implemented here are described, with their sources, in the
// project's format reference (dump-formats.md in the shared documentation).
//
// Memory model. A kernel dump exposes one virtual address space through
// Memory: for triage dumps it is an overlay of the ranges the dump stores
// (the current thread's stack at TopOfStack, the data blocks, the debugger
// data copy, the data page, and the PRCB, thread and process copies at their
// virtual addresses); for complete, kernel and bitmap dumps it is a page-table
// walk from the header's DirectoryTableBase over the physical pages the dump
// holds.
package kdump
