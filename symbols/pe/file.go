package pe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
)

// Safety caps for hostile images.
const (
	maxSections       = 2048     // section headers read
	maxHeaderSize     = 1 << 20  // e_lfanew and SizeOfHeaders
	maxDebugEntries   = 64       // IMAGE_DEBUG_DIRECTORY entries
	maxCodeViewSize   = 4096     // bytes of one CodeView record
	maxExports        = 1 << 16  // export address / name table entries
	maxExportName     = 1024     // bytes of one export or forwarder name
	maxPdataEntries   = 1 << 20  // RUNTIME_FUNCTION entries (12 MiB of x64 .pdata)
	maxChainDepth     = 32       // chained UNWIND_INFO links followed
	maxReadSize       = 16 << 20 // bytes of one directory read at once
	maxUnwindCache    = 1 << 16  // UnwindChain results kept per File
	maxImageSizeField = 1 << 31  // SizeOfImage accepted
)

// Machine is an IMAGE_FILE_MACHINE value from the COFF file header.
type Machine uint16

// Machines this package knows by name.
const (
	MachineUnknown Machine = 0
	MachineI386    Machine = 0x014C
	MachineARMNT   Machine = 0x01C4
	MachineAMD64   Machine = 0x8664
	MachineARM64   Machine = 0xAA64
)

// String returns x86, x64, arm, arm64, or the value in hex.
func (m Machine) String() string {
	switch m {
	case MachineI386:
		return "x86"
	case MachineAMD64:
		return "x64"
	case MachineARMNT:
		return "arm"
	case MachineARM64:
		return "arm64"
	}
	return fmt.Sprintf("machine(%#x)", uint16(m))
}

// Optional-header magic values.
const (
	Magic32 = 0x10B // PE32
	Magic64 = 0x20B // PE32+
)

// DirectoryIndex is an index into the optional header's data directories.
type DirectoryIndex int

// Data directory indexes.
const (
	DirExport      DirectoryIndex = 0
	DirImport      DirectoryIndex = 1
	DirResource    DirectoryIndex = 2
	DirException   DirectoryIndex = 3
	DirSecurity    DirectoryIndex = 4
	DirBaseReloc   DirectoryIndex = 5
	DirDebug       DirectoryIndex = 6
	DirTLS         DirectoryIndex = 9
	DirLoadConfig  DirectoryIndex = 10
	DirIAT         DirectoryIndex = 12
	DirCLR         DirectoryIndex = 14
	numDirectories                = 16
)

// String returns the directory's conventional name (export, exception, ...).
func (d DirectoryIndex) String() string {
	names := [...]string{"export", "import", "resource", "exception", "security", "basereloc",
		"debug", "architecture", "globalptr", "tls", "loadconfig", "boundimport", "iat",
		"delayimport", "clr", "reserved"}
	if d >= 0 && int(d) < len(names) {
		return names[d]
	}
	return fmt.Sprintf("directory(%d)", int(d))
}

// DataDirectory is one {RVA, Size} entry of the optional header.
type DataDirectory struct {
	VirtualAddress uint32
	Size           uint32
}

// FileHeader is the COFF file header.
type FileHeader struct {
	Machine              Machine
	NumberOfSections     uint16
	TimeDateStamp        uint32
	PointerToSymbolTable uint32
	NumberOfSymbols      uint32
	SizeOfOptionalHeader uint16
	Characteristics      uint16
}

// OptionalHeader holds the optional-header fields this package uses, for
// both PE32 and PE32+ (ImageBase widened to 64 bits).
type OptionalHeader struct {
	Magic               uint16
	AddressOfEntryPoint uint32
	BaseOfCode          uint32
	ImageBase           uint64
	SectionAlignment    uint32
	FileAlignment       uint32
	SizeOfImage         uint32
	SizeOfHeaders       uint32
	CheckSum            uint32
	Subsystem           uint16
	DllCharacteristics  uint16
	NumberOfRvaAndSizes uint32
	DataDirectory       [numDirectories]DataDirectory
}

// Section is one section header.
type Section struct {
	Name             string
	VirtualSize      uint32
	VirtualAddress   uint32
	SizeOfRawData    uint32
	PointerToRawData uint32
	Characteristics  uint32
	headerOffset     int64
}

// Section characteristics used by this package.
const (
	SectionCode    = 0x00000020 // IMAGE_SCN_CNT_CODE
	SectionExecute = 0x20000000 // IMAGE_SCN_MEM_EXECUTE
)

// IsCode reports whether the section holds executable code.
func (s *Section) IsCode() bool { return s.Characteristics&(SectionCode|SectionExecute) != 0 }

// span returns the section's size in memory.
func (s *Section) span() uint32 {
	if s.VirtualSize != 0 {
		return s.VirtualSize
	}
	return s.SizeOfRawData
}

// Contains reports whether rva lies inside the section's memory range.
func (s *Section) Contains(rva uint32) bool {
	return rva >= s.VirtualAddress && rva-s.VirtualAddress < s.span()
}

// Memory is a virtual address space, such as kdump.Memory: ReadVirtual reads
// len(p) bytes at addr and returns an error when fewer were read.
type Memory interface {
	ReadVirtual(p []byte, addr uint64) (n int, err error)
}

// File is an open PE image.
type File struct {
	FileHeader
	OptionalHeader OptionalHeader
	Sections       []Section

	// Either a file (r) or a mapped image (mem at base).
	r      io.ReaderAt
	size   int64 // -1 when unknown
	mem    Memory
	base   uint64
	closer io.Closer

	ntOffset int64

	unwindMu    sync.Mutex
	unwindCache map[uint32][]*UnwindInfo // UnwindChain results by UnwindData RVA

	pdataOnce sync.Once
	pdata     []RuntimeFunction
	pdataA64  []ARM64Function
	pdataErr  error
}

// sizer is implemented by readers that know their size (bytes.Reader,
// io.SectionReader, os.File through Stat).
type sizer interface{ Size() int64 }

// NewFile reads a PE image from a file's bytes. Only the headers and the
// section table are read now; directories are read on demand.
func NewFile(r io.ReaderAt) (*File, error) {
	f := &File{r: r, size: -1}
	if s, ok := r.(sizer); ok {
		f.size = s.Size()
	}
	if err := f.parseHeaders(); err != nil {
		return nil, err
	}
	return f, nil
}

// Open opens the named file and reads it with NewFile. Close the File when
// done.
func Open(name string) (*File, error) {
	fh, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, err
	}
	f := &File{r: fh, size: st.Size(), closer: fh}
	if err := f.parseHeaders(); err != nil {
		fh.Close()
		return nil, err
	}
	return f, nil
}

// NewImage reads a PE image mapped in memory at base, e.g. a driver inside a
// kernel dump: every RVA is read at base+RVA. Pages missing from mem give
// errors wrapping ErrNotPresent when the data on them is needed.
func NewImage(mem Memory, base uint64) (*File, error) {
	f := &File{mem: mem, base: base, size: -1}
	if err := f.parseHeaders(); err != nil {
		return nil, err
	}
	return f, nil
}

// Close closes the file opened by Open; it does nothing otherwise.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	err := f.closer.Close()
	f.closer = nil
	return err
}

// Mapped reports whether the image was read with NewImage.
func (f *File) Mapped() bool { return f.mem != nil }

// Base returns the address the image was read at (NewImage), or the
// preferred ImageBase from the optional header (NewFile, Open).
func (f *File) Base() uint64 {
	if f.mem != nil {
		return f.base
	}
	return f.OptionalHeader.ImageBase
}

// Is64 reports whether the image is PE32+.
func (f *File) Is64() bool { return f.OptionalHeader.Magic == Magic64 }

// Directory returns data directory d, or a zero entry when the optional
// header does not have it.
func (f *File) Directory(d DirectoryIndex) DataDirectory {
	if d < 0 || int(d) >= numDirectories || uint32(d) >= f.OptionalHeader.NumberOfRvaAndSizes {
		return DataDirectory{}
	}
	return f.OptionalHeader.DataDirectory[d]
}

// errAt builds a FormatError at a file offset (or RVA for mapped images).
func (f *File) errAt(off int64, what string, err error, format string, args ...any) *FormatError {
	return &FormatError{Offset: off, Mapped: f.mem != nil, What: what, Msg: fmt.Sprintf(format, args...), Err: err}
}

// readRaw reads at a header offset: a file offset, or an RVA of a mapped
// image (the headers are mapped at RVA = file offset).
func (f *File) readRaw(p []byte, off int64, what string) error {
	if off < 0 {
		return f.errAt(off, what, ErrFormat, "negative offset")
	}
	if f.mem != nil {
		n, err := f.mem.ReadVirtual(p, f.base+uint64(off))
		if n < len(p) {
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return f.errAt(off+int64(n), what, errors.Join(ErrNotPresent, err), "not in memory: %v", err)
		}
		return nil
	}
	if f.size >= 0 && (off > f.size || int64(len(p)) > f.size-off) {
		return f.errAt(off, what, ErrTruncated, "%#x bytes needed, file has %#x", off+int64(len(p)), f.size)
	}
	n, err := f.r.ReadAt(p, off)
	if n < len(p) {
		if err == nil || err == io.EOF {
			return f.errAt(off+int64(n), what, ErrTruncated, "end of file")
		}
		return f.errAt(off+int64(n), what, err, "read error: %v", err)
	}
	return nil
}

func (f *File) parseHeaders() error {
	var dos [0x40]byte
	if err := f.readRaw(dos[:], 0, "DOS header"); err != nil {
		if errors.Is(err, ErrTruncated) || errors.Is(err, ErrNotPresent) {
			return f.errAt(0, "DOS header", errors.Join(ErrNotPE, err), "too short for an MZ header")
		}
		return err
	}
	le := binary.LittleEndian
	if dos[0] != 'M' || dos[1] != 'Z' {
		return f.errAt(0, "DOS header", ErrNotPE, "no MZ signature")
	}
	lfanew := int64(le.Uint32(dos[0x3C:]))
	if lfanew > maxHeaderSize {
		return f.errAt(0x3C, "DOS header", ErrNotPE, "e_lfanew %#x is too large", lfanew)
	}
	var nt [24]byte
	if err := f.readRaw(nt[:], lfanew, "NT headers"); err != nil {
		return err
	}
	if string(nt[:4]) != "PE\x00\x00" {
		return f.errAt(lfanew, "NT headers", ErrNotPE, "no PE signature")
	}
	f.ntOffset = lfanew
	fh := &f.FileHeader
	fh.Machine = Machine(le.Uint16(nt[4:]))
	fh.NumberOfSections = le.Uint16(nt[6:])
	fh.TimeDateStamp = le.Uint32(nt[8:])
	fh.PointerToSymbolTable = le.Uint32(nt[12:])
	fh.NumberOfSymbols = le.Uint32(nt[16:])
	fh.SizeOfOptionalHeader = le.Uint16(nt[20:])
	fh.Characteristics = le.Uint16(nt[22:])

	optOff := lfanew + 24
	if fh.SizeOfOptionalHeader < 2 {
		return f.errAt(lfanew+20, "file header", ErrFormat, "SizeOfOptionalHeader %d is too small", fh.SizeOfOptionalHeader)
	}
	opt := make([]byte, fh.SizeOfOptionalHeader)
	if err := f.readRaw(opt, optOff, "optional header"); err != nil {
		return err
	}
	if err := f.parseOptional(opt, optOff); err != nil {
		return err
	}

	n := int(fh.NumberOfSections)
	if n > maxSections {
		return f.errAt(lfanew+6, "file header", ErrLimit, "%d sections (cap %d)", n, maxSections)
	}
	secOff := optOff + int64(fh.SizeOfOptionalHeader)
	tab := make([]byte, 40*n)
	if err := f.readRaw(tab, secOff, "section table"); err != nil {
		return err
	}
	f.Sections = make([]Section, n)
	for i := range n {
		b := tab[40*i:]
		s := &f.Sections[i]
		s.Name = strings.TrimRight(string(b[:8]), "\x00")
		s.VirtualSize = le.Uint32(b[8:])
		s.VirtualAddress = le.Uint32(b[12:])
		s.SizeOfRawData = le.Uint32(b[16:])
		s.PointerToRawData = le.Uint32(b[20:])
		s.Characteristics = le.Uint32(b[36:])
		s.headerOffset = secOff + int64(40*i)
	}
	return nil
}

func (f *File) parseOptional(b []byte, off int64) error {
	le := binary.LittleEndian
	o := &f.OptionalHeader
	o.Magic = le.Uint16(b)
	var ddOff, nOff int
	switch o.Magic {
	case Magic32:
		ddOff, nOff = 96, 92
	case Magic64:
		ddOff, nOff = 112, 108
	default:
		return f.errAt(off, "optional header", ErrFormat, "unknown magic %#x", o.Magic)
	}
	if len(b) < ddOff {
		return f.errAt(off, "optional header", ErrFormat, "%#x bytes, need %#x for magic %#x", len(b), ddOff, o.Magic)
	}
	o.AddressOfEntryPoint = le.Uint32(b[16:])
	o.BaseOfCode = le.Uint32(b[20:])
	if o.Magic == Magic32 {
		o.ImageBase = uint64(le.Uint32(b[28:]))
	} else {
		o.ImageBase = le.Uint64(b[24:])
	}
	o.SectionAlignment = le.Uint32(b[32:])
	o.FileAlignment = le.Uint32(b[36:])
	o.SizeOfImage = le.Uint32(b[56:])
	o.SizeOfHeaders = le.Uint32(b[60:])
	o.CheckSum = le.Uint32(b[64:])
	o.Subsystem = le.Uint16(b[68:])
	o.DllCharacteristics = le.Uint16(b[70:])
	o.NumberOfRvaAndSizes = le.Uint32(b[nOff:])
	if o.SizeOfImage > maxImageSizeField {
		return f.errAt(off+56, "optional header", ErrLimit, "SizeOfImage %#x", o.SizeOfImage)
	}
	n := min(int(min(o.NumberOfRvaAndSizes, numDirectories)), (len(b)-ddOff)/8)
	for i := range n {
		o.DataDirectory[i].VirtualAddress = le.Uint32(b[ddOff+8*i:])
		o.DataDirectory[i].Size = le.Uint32(b[ddOff+8*i+4:])
	}
	if uint32(n) < o.NumberOfRvaAndSizes {
		o.NumberOfRvaAndSizes = uint32(n)
	}
	return nil
}

// Section returns the first section named name, or nil.
func (f *File) Section(name string) *Section {
	for i := range f.Sections {
		if f.Sections[i].Name == name {
			return &f.Sections[i]
		}
	}
	return nil
}

// SectionAt returns the section whose memory range holds rva, or nil.
func (f *File) SectionAt(rva uint32) *Section {
	for i := range f.Sections {
		if f.Sections[i].Contains(rva) {
			return &f.Sections[i]
		}
	}
	return nil
}

// IsCodeRVA reports whether rva lies in an executable section.
func (f *File) IsCodeRVA(rva uint32) bool {
	s := f.SectionAt(rva)
	return s != nil && s.IsCode()
}

// ReadRVA reads len(p) bytes at rva: from memory for mapped images, through
// the section table for files (bytes of a section past its raw data read as
// zero). The read must stay inside one section or the headers.
func (f *File) ReadRVA(p []byte, rva uint32) error {
	return f.readRVA(p, rva, "data")
}

func (f *File) readRVA(p []byte, rva uint32, what string) error {
	end := uint64(rva) + uint64(len(p))
	if f.mem != nil {
		if f.OptionalHeader.SizeOfImage != 0 && end > uint64(f.OptionalHeader.SizeOfImage) {
			return f.errAt(int64(rva), what, ErrFormat, "%#x bytes run past SizeOfImage %#x", len(p), f.OptionalHeader.SizeOfImage)
		}
		return f.readRaw(p, int64(rva), what)
	}
	if rva < f.OptionalHeader.SizeOfHeaders && end <= uint64(f.OptionalHeader.SizeOfHeaders) && f.SectionAt(rva) == nil {
		return f.readRaw(p, int64(rva), what)
	}
	s := f.SectionAt(rva)
	if s == nil {
		return f.errAt(int64(rva), what, ErrFormat, "rva %#x is in no section", rva)
	}
	inner := rva - s.VirtualAddress
	if end-uint64(s.VirtualAddress) > uint64(s.span()) {
		return f.errAt(int64(rva), what, ErrFormat, "rva %#x+%#x runs past section %s", rva, len(p), s.Name)
	}
	clear(p)
	if inner >= s.SizeOfRawData {
		return nil // uninitialised data
	}
	n := min(uint32(len(p)), s.SizeOfRawData-inner)
	if err := f.readRaw(p[:n], int64(s.PointerToRawData)+int64(inner), what); err != nil {
		return err
	}
	return nil
}

// checkRange reports an error when [rva, rva+n) cannot be read: past
// SizeOfImage for mapped images, outside one section (or past the end of
// the file) for files. Callers use it before allocating n bytes.
func (f *File) checkRange(rva, n uint32, what string) error {
	end := uint64(rva) + uint64(n)
	if f.mem != nil {
		if end > uint64(f.OptionalHeader.SizeOfImage) {
			return f.errAt(int64(rva), what, ErrFormat, "%#x bytes run past SizeOfImage %#x", n, f.OptionalHeader.SizeOfImage)
		}
		return nil
	}
	s := f.SectionAt(rva)
	if s == nil {
		if end <= uint64(f.OptionalHeader.SizeOfHeaders) && (f.size < 0 || int64(end) <= f.size) {
			return nil
		}
		return f.errAt(int64(rva), what, ErrFormat, "rva %#x is in no section", rva)
	}
	if end-uint64(s.VirtualAddress) > uint64(s.span()) {
		return f.errAt(int64(rva), what, ErrFormat, "rva %#x+%#x runs past section %s", rva, n, s.Name)
	}
	raw := min(n, s.SizeOfRawData-min(s.SizeOfRawData, rva-s.VirtualAddress))
	if f.size >= 0 && raw > 0 && int64(s.PointerToRawData)+int64(rva-s.VirtualAddress)+int64(raw) > f.size {
		return f.errAt(int64(s.PointerToRawData)+int64(rva-s.VirtualAddress), what, ErrTruncated, "section %s runs past the end of the file", s.Name)
	}
	return nil
}

// offsetOf returns the position to report for an RVA: the file offset for
// files (when it maps to raw data) or the RVA itself for mapped images.
func (f *File) offsetOf(rva uint32) int64 {
	if f.mem != nil {
		return int64(rva)
	}
	if s := f.SectionAt(rva); s != nil && rva-s.VirtualAddress < s.SizeOfRawData {
		return int64(s.PointerToRawData) + int64(rva-s.VirtualAddress)
	}
	return int64(rva)
}

// readDirectory reads a whole data directory (capped at maxReadSize).
func (f *File) readDirectory(d DirectoryIndex) ([]byte, uint32, error) {
	dd := f.Directory(d)
	if dd.VirtualAddress == 0 || dd.Size == 0 {
		return nil, 0, &FormatError{Offset: -1, Mapped: f.mem != nil, What: d.String() + " directory", Msg: "the image has none", Err: ErrNotPresent}
	}
	if dd.Size > maxReadSize {
		return nil, 0, f.errAt(int64(dd.VirtualAddress), d.String()+" directory", ErrLimit, "size %#x", dd.Size)
	}
	if err := f.checkRange(dd.VirtualAddress, dd.Size, d.String()+" directory"); err != nil {
		return nil, 0, err
	}
	b := make([]byte, dd.Size)
	if err := f.readRVA(b, dd.VirtualAddress, d.String()+" directory"); err != nil {
		return nil, 0, err
	}
	return b, dd.VirtualAddress, nil
}

// readCString reads a NUL-terminated string of at most limit bytes at rva.
func (f *File) readCString(rva uint32, limit int, what string) (string, error) {
	var out []byte
	var buf [64]byte
	for len(out) < limit {
		n := len(buf)
		// Stay inside the current section (or image) for each chunk.
		if f.mem == nil {
			if s := f.SectionAt(rva + uint32(len(out))); s != nil {
				left := s.span() - (rva + uint32(len(out)) - s.VirtualAddress)
				n = int(min(uint32(n), left))
			}
		} else if f.OptionalHeader.SizeOfImage != 0 {
			left := int64(f.OptionalHeader.SizeOfImage) - int64(rva) - int64(len(out))
			if left <= 0 {
				break
			}
			n = int(min(int64(n), left))
		}
		if n <= 0 {
			break
		}
		if err := f.readRVA(buf[:n], rva+uint32(len(out)), what); err != nil {
			return "", err
		}
		for i, c := range buf[:n] {
			if c == 0 {
				return string(append(out, buf[:i]...)), nil
			}
		}
		out = append(out, buf[:n]...)
	}
	return "", f.errAt(int64(rva), what, ErrFormat, "string not terminated within %d bytes", limit)
}
