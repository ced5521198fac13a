// Package minidump reads user-mode minidumps (MDMP files): the dumps that
// MiniDumpWriteDump, Windows Error Reporting, Breakpad and Crashpad write.
//
// The API follows debug/pe: NewFile over an io.ReaderAt, Open over a path.
// Opening a file reads only the 32-byte header and the stream directory;
// each stream is parsed on first use and the result is kept. Every count,
// size and RVA read from the file is checked against the file size and
// against fixed caps before anything is allocated; malformed data yields a
// *FormatError naming the file offset, never a panic.
//
// Layouts follow the public minidumpapiset.h (compiled with 4-byte packing,
// so 64-bit fields may sit at offsets that are 4 mod 8) and the vendor
// extensions documented by Breakpad, Crashpad and rust-minidump; see
// dump-formats.md §8 in the project's shared documentation.
//
// This package does not depend on package kdump; kdump.OpenAny wraps a File
// in an adapter that implements kdump.Dump.
package minidump
