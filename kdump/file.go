package kdump

import (
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
)

// Dump is what every dump reader provides to analysis: the kernel-dump
// File here and the user-mode reader in package kdump/minidump (through
// OpenAny). Analysis type-switches on the concrete type for anything else.
type Dump interface {
	// Format is the kind of file.
	Format() Format
	// Machine is the processor architecture of the crashed system.
	Machine() Machine
	// Modules lists the loaded modules in load order.
	Modules() ([]Module, error)
	// Context returns the faulting (kernel: bug-check time) register context.
	Context() (*Context, error)
	// Memory returns the dump's virtual address space.
	Memory() Memory
	// Close releases the file, if the dump owns it.
	Close() error
}

// File is an open kernel crash dump (PAGEDU64 or PAGEDUMP).
type File struct {
	r      io.ReaderAt
	size   int64
	closer io.Closer

	hdr    Header
	triage *triageDump
	phys   PhysicalMemory // nil unless the dump type stores physical memory
	mem    Memory

	// partial collects non-fatal problems met while opening: parts of the
	// dump that could not be read. See Problems.
	partial []error
}

// Sniff reports the format of a dump from its first bytes. It returns
// FormatEmpty, FormatZeroed or FormatUnknown for files that are not dumps;
// it does not return an error for those. Telling FormatZeroed from
// FormatUnknown reads the file until the first non-zero byte: all of it
// when it is all zeros.
func Sniff(r io.ReaderAt, size int64) (Format, error) {
	if size == 0 {
		return FormatEmpty, nil
	}
	var b [8]byte
	n, err := r.ReadAt(b[:], 0)
	if n < len(b) && err != nil && err != io.EOF {
		return FormatUnknown, err
	}
	switch {
	case n >= 8 && string(b[:8]) == "PAGEDU64":
		return FormatKernel64, nil
	case n >= 8 && string(b[:8]) == "PAGEDUMP":
		return FormatKernel32, nil
	case n >= 4 && string(b[:4]) == "MDMP":
		return FormatMDMP, nil
	case n >= 8 && string(b[:8]) == "USERDU64":
		return FormatUserDump64, nil
	case n >= 8 && string(b[:8]) == "USERDUMP":
		return FormatUserDump32, nil
	}
	if zeroed, err := allZero(r, size); err != nil {
		return FormatUnknown, err
	} else if zeroed {
		return FormatZeroed, nil
	}
	return FormatUnknown, nil
}

// allZero reports whether the file holds only zero bytes. It reads the
// whole file only when every byte seen so far was zero, 64 KiB at a time.
func allZero(r io.ReaderAt, size int64) (bool, error) {
	buf := make([]byte, 64<<10)
	for off := int64(0); off < size; off += int64(len(buf)) {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		for _, c := range buf[:n] {
			if c != 0 {
				return false, nil
			}
		}
		if err != nil && err != io.EOF {
			return false, err
		}
		if n == 0 {
			break
		}
	}
	return true, nil
}

// notADump builds the ErrNotADump error for a file, with a hint where the
// first bytes plainly say what the file is.
func notADump(r io.ReaderAt) error {
	var b [64]byte
	n, _ := r.ReadAt(b[:], 0)
	head := b[:n]
	hint := ""
	switch {
	case bytes.Contains(head, []byte("EXPORT:V")):
		hint = " (this is an Oracle export file, not a crash dump)"
	case bytes.HasPrefix(head, []byte("MZ")):
		hint = " (this is a Windows executable, not a crash dump)"
	case bytes.HasPrefix(head, []byte("\x7fELF")):
		hint = " (this is an ELF binary or a Linux core file, not a Windows crash dump)"
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		hint = " (this is a ZIP archive: extract the .dmp inside it first)"
	case bytes.HasPrefix(head, []byte("MSCF")):
		hint = " (this is a CAB archive: extract the .dmp inside it first)"
	case bytes.HasPrefix(head, []byte("\x1f\x8b")):
		hint = " (this is gzip-compressed: decompress it first)"
	case bytes.HasPrefix(head, []byte("7z\xbc\xaf")):
		hint = " (this is a 7-Zip archive: extract the .dmp inside it first)"
	case bytes.HasPrefix(head, []byte("Microsoft C/C++ MSF")):
		hint = " (this is a PDB symbol file)"
	case bytes.HasPrefix(head, []byte("HIBR")) || bytes.HasPrefix(head, []byte("hibr")) || bytes.HasPrefix(head, []byte("WAKE")):
		hint = " (this is a hibernation file, not a crash dump)"
	}
	return &FormatError{Offset: 0, What: "signature", Msg: "unrecognised signature " + quoteSig(head) + hint, Err: ErrNotADump}
}

func quoteSig(b []byte) string {
	b = b[:min(len(b), 8)]
	out := make([]byte, 0, 2*len(b)+2)
	out = append(out, '"')
	for _, c := range b {
		if c >= 0x20 && c < 0x7F && c != '"' && c != '\\' {
			out = append(out, c)
		} else {
			const hex = "0123456789abcdef"
			out = append(out, '\\', 'x', hex[c>>4], hex[c&0xF])
		}
	}
	return string(append(out, '"'))
}

// NewFile reads a kernel dump from r, which holds size bytes. Only the
// header and the tables that describe the dump's layout are read now.
//
// Files that are not kernel dumps give errors: ErrEmpty, ErrZeroed,
// ErrUserMode (MDMP and USERDUMP files: see OpenAny) or ErrNotADump, each
// wrapped in a *FormatError.
func NewFile(r io.ReaderAt, size int64) (*File, error) {
	format, err := Sniff(r, size)
	if err != nil {
		return nil, &FormatError{Offset: 0, What: "signature", Msg: "cannot read", Err: err}
	}
	switch format {
	case FormatKernel64, FormatKernel32:
	case FormatEmpty:
		return nil, &FormatError{Offset: -1, What: "dump", Err: ErrEmpty}
	case FormatZeroed:
		return nil, &FormatError{Offset: -1, What: "dump", Err: ErrZeroed}
	case FormatMDMP, FormatUserDump64, FormatUserDump32:
		kind := "a legacy full user-mode dump (USERDUMP/USERDU64)"
		if format == FormatMDMP {
			kind = "a user-mode minidump (MDMP)"
		}
		return nil, &FormatError{Offset: 0, What: "signature", Msg: kind + ", not a kernel dump: read it with OpenAny", Err: ErrUserMode}
	default:
		return nil, notADump(r)
	}
	f := &File{r: r, size: size}
	hsize := int64(HeaderSize64)
	if format == FormatKernel32 {
		hsize = HeaderSize32
	}
	hb := make([]byte, hsize)
	if err := readAt(r, size, hb, 0, "dump header"); err != nil {
		return nil, err
	}
	h, err := parseHeader(hb, format)
	if err != nil {
		return nil, err
	}
	f.hdr = *h
	if err := f.validateHeader(); err != nil {
		return nil, err
	}
	switch {
	case h.DumpType == DumpTypeTriage:
		if err := f.parseTriage(); err != nil {
			return nil, err
		}
		f.mem = f.triage.mem
	case h.DumpType.HasPhysicalMemory():
		if h.AttributesSet && h.Attributes&AttrEncryptedDumpData != 0 {
			off := int64(0x1050)
			if h.Format == FormatKernel32 {
				off = 0x8A0
			}
			return nil, formatErr(off, "dump header", "the dump's memory is encrypted (DUMP_FILE_ATTRIBUTES EncryptedDumpData): only the header can be read").wrap(ErrUnsupported)
		}
		if err := f.initPhysical(); err != nil {
			return nil, err
		}
	default:
		f.mem = noMemory{}
	}
	return f, nil
}

func (e *FormatError) wrap(err error) *FormatError { e.Err = err; return e }

func (f *File) validateHeader() error {
	h := &f.hdr
	machineOff, typeOff := int64(0x30), int64(0xF98)
	if h.Format == FormatKernel32 {
		machineOff, typeOff = 0x20, 0xF88
	}
	switch {
	case h.machineRaw == pageFill:
		return formatErr(machineOff, "dump header", "MachineImageType is not set (still the PAGE fill): the dump was not completely written")
	case h.machineRaw>>16 != 0:
		return formatErr(machineOff, "dump header", "unknown MachineImageType %#x", h.machineRaw)
	}
	switch h.Machine {
	case MachineAMD64, MachineARM64:
		if h.Format != FormatKernel64 {
			return formatErr(machineOff, "dump header", "machine %v in a 32-bit (PAGEDUMP) header", h.Machine)
		}
	case MachineI386, MachineARMNT:
		if h.Format != FormatKernel32 {
			return formatErr(machineOff, "dump header", "machine %v in a 64-bit (PAGEDU64) header", h.Machine)
		}
	default:
		return formatErr(machineOff, "dump header", "unknown MachineImageType %#x", h.machineRaw)
	}
	switch h.DumpType {
	case DumpTypeFull, DumpTypeSummary, DumpTypeHeader, DumpTypeTriage, DumpTypeBitmapFull,
		DumpTypeBitmapKernel, DumpTypeKernelRDMP, DumpTypeKernelUser, DumpTypeCompleteRDMP:
	case pageFill:
		return formatErr(typeOff, "dump header", "DumpType is not set (still the PAGE fill): the dump was not completely written")
	default:
		return formatErr(typeOff, "dump header", "unknown DumpType %#x", uint32(h.DumpType))
	}
	return nil
}

// Open opens the named file and reads it with NewFile. Close the File when done.
func Open(name string) (*File, error) {
	fh, size, err := openSized(name)
	if err != nil {
		return nil, err
	}
	f, err := NewFile(fh, size)
	if err != nil {
		fh.Close()
		return nil, err
	}
	f.closer = fh
	return f, nil
}

// openSized opens a file for reading and returns it with its size.
func openSized(name string) (*os.File, int64, error) {
	fh, err := os.Open(name)
	if err != nil {
		return nil, 0, err
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, 0, err
	}
	return fh, st.Size(), nil
}

// Close closes the underlying file if the File was made by Open.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	err := f.closer.Close()
	f.closer = nil
	return err
}

// Header returns the parsed dump header.
func (f *File) Header() *Header { return &f.hdr }

// Format returns FormatKernel64 or FormatKernel32.
func (f *File) Format() Format { return f.hdr.Format }

// Machine returns the crashed system's architecture.
func (f *File) Machine() Machine { return f.hdr.Machine }

// Size returns the size of the dump file in bytes.
func (f *File) Size() int64 { return f.size }

// BugCheck returns the bug-check code and parameters.
func (f *File) BugCheck() BugCheck { return f.hdr.BugCheck }

// Problems lists the non-fatal problems met while opening the dump: parts
// that could not be read and are therefore missing from the results.
func (f *File) Problems() []error { return f.partial }

// Memory returns the dump's kernel virtual address space.
func (f *File) Memory() Memory { return f.mem }

// Physical returns the dump's physical memory, or nil for dump types that
// store none (triage dumps).
func (f *File) Physical() PhysicalMemory { return f.phys }

// Triage returns the triage header of a small memory dump, or nil.
func (f *File) Triage() *TriageHeader {
	if f.triage == nil {
		return nil
	}
	return &f.triage.hdr
}

// DataBlocks returns the triage dump's data blocks that lie inside the
// file (nil for other types). The slice is the caller's.
func (f *File) DataBlocks() []DataBlock {
	if f.triage == nil {
		return nil
	}
	return slices.Clone(f.triage.blocks)
}

// Context returns the register context stored in the dump header. For most
// bug checks it is the context at KeBugCheckEx; for 0x7E-style codes
// Windows stores the faulting context there.
func (f *File) Context() (*Context, error) {
	c, err := ParseContext(f.hdr.Machine, f.hdr.Context)
	if err != nil {
		off := int64(0x348)
		if f.hdr.Format == FormatKernel32 {
			off = 0x320
		}
		return nil, &FormatError{Offset: off, What: "context record", Msg: "cannot decode", Err: err}
	}
	return c, nil
}

// Modules returns the loaded modules in load order: the triage dump's
// driver list, or the PsLoadedModuleList walk for memory-bearing dumps.
// The slice is the caller's to keep or change.
func (f *File) Modules() ([]Module, error) {
	if f.triage != nil {
		return slices.Clone(f.triage.drivers), nil
	}
	if f.phys == nil {
		return nil, nil
	}
	return f.kernelModules()
}

// UnloadedModules returns the drivers unloaded before the crash, when the
// dump records them. The slice is the caller's.
func (f *File) UnloadedModules() ([]UnloadedModule, error) {
	if f.triage != nil {
		return slices.Clone(f.triage.unloaded), nil
	}
	if f.phys == nil {
		return nil, nil
	}
	return f.kernelUnloadedModules()
}

// KDBG returns the kernel debugger data block: the triage dump's copy, or
// the block at the header's KdDebuggerDataBlock for memory-bearing dumps.
func (f *File) KDBG() (*KDBG, error) {
	if f.triage != nil {
		if f.triage.kdbg == nil {
			return nil, formatErr(-1, "debugger data", "the triage dump holds no debugger data").wrap(ErrNotPresent)
		}
		return f.triage.kdbg, nil
	}
	if f.phys == nil {
		return nil, formatErr(-1, "debugger data", "%v dumps hold no memory", f.hdr.DumpType).wrap(ErrNotPresent)
	}
	return f.kernelKDBG()
}

// CurrentThread returns the virtual addresses of the crashing processor's
// current thread (ETHREAD) and process (EPROCESS).
func (f *File) CurrentThread() (thread, process uint64, err error) {
	if f.triage != nil {
		if f.triage.threadVA == 0 {
			return 0, 0, formatErr(-1, "PRCB copy", "the current thread could not be located").wrap(ErrNotPresent)
		}
		return f.triage.threadVA, f.triage.processVA, nil
	}
	if f.phys == nil {
		return 0, 0, formatErr(-1, "current thread", "%v dumps hold no memory", f.hdr.DumpType).wrap(ErrNotPresent)
	}
	return f.kernelCurrentThread()
}

// ProcessName returns the image file name of the current process
// (EPROCESS.ImageFileName), e.g. "System" or "explorer.exe".
func (f *File) ProcessName() (string, error) {
	_, proc, err := f.CurrentThread()
	if err != nil {
		return "", err
	}
	if proc == 0 {
		return "", formatErr(-1, "process", "the current thread's process (ApcState.Process) is not recorded").wrap(ErrNotPresent)
	}
	off, known := imageFileNameOffset(f.hdr.Machine, f.hdr.MinorVersion)
	if known {
		var b [15]byte
		if _, err := f.mem.ReadVirtual(b[:], proc+off); err == nil {
			if name := cString(b[:]); name != "" {
				return name, nil
			}
		}
	}
	// Builds and machines whose layout is not in the table: look for the
	// name in the process object itself.
	if name := f.scanImageFileName(proc); name != "" {
		return name, nil
	}
	if !known {
		return "", formatErr(-1, "process", "no EPROCESS.ImageFileName offset known for %v build %d, and no name-shaped field in the process object at %#x", f.hdr.Machine, f.hdr.MinorVersion, proc).wrap(ErrUnsupported)
	}
	return "", formatErr(-1, "process", "EPROCESS.ImageFileName at %#x is not readable text", proc+off).wrap(ErrNotPresent)
}

// scanImageFileName searches the current process object for an
// ImageFileName-shaped field: up to 15 bytes of file-name characters, NUL
// padded, that end in ".exe" or name one of the kernel's own processes.
// The field is pointer-aligned in every known layout.
func (f *File) scanImageFileName(proc uint64) string {
	size := uint64(0xC80)
	if f.triage != nil && f.triage.processSize > 0 {
		size = uint64(f.triage.processSize)
	}
	b := make([]byte, size)
	n, _ := f.mem.ReadVirtual(b, proc)
	b = b[:n]
	for off := 0x100; off+15 <= len(b); off += f.ptrSize() {
		name := cString(b[off : off+15])
		if name == "" || len(name) < 3 || !plausibleProcessName(name) {
			continue
		}
		return name
	}
	return ""
}

func plausibleProcessName(s string) bool {
	switch s {
	case "System", "Idle", "Registry", "MemCompression", "Secure System":
		return true
	}
	if len(s) < 5 || !strings.EqualFold(s[len(s)-4:], ".exe") {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._- ()", c)) {
			return false
		}
	}
	return true
}

// imageFileNameOffset returns EPROCESS.ImageFileName for a build: the
// entry for the newest listed build not above it (dump-formats §7.4).
func imageFileNameOffset(m Machine, build uint32) (uint64, bool) {
	type row struct {
		build uint32
		off   uint64
	}
	var rows []row
	switch m {
	case MachineAMD64:
		rows = []row{{7601, 0x2E0}, {9200, 0x438}, {9600, 0x438}, {14393, 0x450}, {17134, 0x450}, {18362, 0x450}, {19041, 0x5A8}, {22000, 0x5A8}}
	case MachineARM64:
		// 17134: found in the corpus ARM64 triage dump; 22000: dump-formats §7.4.
		rows = []row{{17134, 0x3F8}, {22000, 0x560}}
	case MachineI386:
		rows = []row{{7600, 0x16C}, {9200, 0x170}, {10240, 0x174}}
	default:
		return 0, false
	}
	if build < rows[0].build {
		return 0, false
	}
	off := rows[0].off
	for _, r := range rows {
		if build >= r.build {
			off = r.off
		}
	}
	return off, true
}

// noMemory is the empty address space of header-only dumps.
type noMemory struct{}

func (noMemory) ReadVirtual(_ []byte, addr uint64) (int, error) {
	return 0, &MemoryError{Addr: addr, Err: ErrNotPresent}
}

var _ Dump = (*File)(nil)

// IsNotPresent reports whether err means "not in the dump".
func IsNotPresent(err error) bool { return errors.Is(err, ErrNotPresent) }
