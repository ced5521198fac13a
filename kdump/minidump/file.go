package minidump

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"sync"
	"time"
	"unicode/utf16"
)

// Signature is the first four bytes of every minidump, "MDMP".
const Signature = 0x504D444D

// Version is MINIDUMP_VERSION, the low 16 bits of the header's Version.
const Version = 0xA793

// HeaderSize is the size of MINIDUMP_HEADER.
const HeaderSize = 32

// Limits applied to counts and sizes read from a file.
const (
	maxStreams     = 1 << 16  // directory entries
	maxStreamSize  = 1 << 28  // bytes of one stream read into memory
	maxStringBytes = 1 << 16  // one MINIDUMP_STRING
	maxContextSize = 1 << 16  // one thread context (XSAVE contexts are a few KiB)
	maxListEntries = 1 << 22  // entries in any list
	openInMemory   = 64 << 20 // Open reads files up to this size into memory
)

var le = binary.LittleEndian

// Header is MINIDUMP_HEADER.
type Header struct {
	Signature          uint32
	Version            uint32 // low 16 bits: 0xA793; high 16: writer-specific
	NumberOfStreams    uint32
	StreamDirectoryRva uint32
	CheckSum           uint32
	TimeDateStamp      uint32 // seconds since 1970, UTC
	Flags              DumpFlags
}

// Time returns TimeDateStamp as a time in UTC.
func (h *Header) Time() time.Time { return time.Unix(int64(h.TimeDateStamp), 0).UTC() }

// ImplementationVersion returns the high 16 bits of Version.
func (h *Header) ImplementationVersion() uint16 { return uint16(h.Version >> 16) }

// lazy holds a value computed once on first use.
type lazy[T any] struct {
	once sync.Once
	v    T
	err  error
}

func (l *lazy[T]) get(f func() (T, error)) (T, error) {
	l.once.Do(func() { l.v, l.err = f() })
	return l.v, l.err
}

// File is an open minidump. Its methods are safe for concurrent use.
type File struct {
	r      io.ReaderAt
	size   int64
	closer io.Closer

	hdr  Header
	dir  []Directory
	prob []error

	// strMu guards strs and strBudget: decoded strings by RVA, and how many
	// more string bytes may be decoded (a hostile file can point many
	// entries at overlapping large strings).
	strMu     sync.Mutex
	strs      map[uint32]string
	strBudget int64

	threads      lazy[[]Thread]
	threadsEx    lazy[[]Thread]
	modules      lazy[[]Module]
	memList      lazy[[]MemoryDescriptor]
	mem64        lazy[[]MemoryRange]
	memory       lazy[*Memory]
	exception    lazy[*Exception]
	sysInfo      lazy[*SystemInfo]
	miscInfo     lazy[*MiscInfo]
	handles      lazy[*HandleData]
	unloaded     lazy[[]UnloadedModule]
	memInfo      lazy[[]MemoryInfo]
	threadInfo   lazy[[]ThreadInfo]
	threadNames  lazy[[]ThreadName]
	token        lazy[*TokenList]
	funcTable    lazy[*FunctionTable]
	sysMemInfo   lazy[*SystemMemoryInfo]
	vmCounters   lazy[*ProcessVMCounters]
	breakpadInfo lazy[*BreakpadInfo]
	crashpadInfo lazy[*CrashpadInfo]
	assertion    lazy[*AssertionInfo]
}

// NewFile reads a minidump from r, which holds size bytes. Only the header
// and the stream directory are read now.
//
// Errors are *FormatError values wrapping ErrNotMinidump, ErrVersion,
// ErrTruncated or ErrTooLarge.
func NewFile(r io.ReaderAt, size int64) (*File, error) {
	if size < 0 {
		return nil, formatErr(-1, "file", ErrTruncated, "negative size %d", size)
	}
	f := &File{r: r, size: size, strBudget: 4*size + 1<<20}
	var hb [HeaderSize]byte
	if size < 4 {
		return nil, formatErr(0, "header", ErrNotMinidump, "file of %d bytes has no signature", size)
	}
	n, err := r.ReadAt(hb[:min(int64(HeaderSize), size)], 0)
	if n < 4 {
		return nil, formatErr(0, "header", ErrTruncated, "cannot read signature (%v)", err)
	}
	if le.Uint32(hb[0:]) != Signature {
		return nil, formatErr(0, "header", ErrNotMinidump, "signature %q is not MDMP", hb[:4])
	}
	if n < HeaderSize {
		return nil, formatErr(int64(n), "header", ErrTruncated, "file of %d bytes is shorter than the %d-byte header", size, HeaderSize)
	}
	f.hdr = Header{
		Signature:          le.Uint32(hb[0:]),
		Version:            le.Uint32(hb[4:]),
		NumberOfStreams:    le.Uint32(hb[8:]),
		StreamDirectoryRva: le.Uint32(hb[12:]),
		CheckSum:           le.Uint32(hb[16:]),
		TimeDateStamp:      le.Uint32(hb[20:]),
		Flags:              DumpFlags(le.Uint64(hb[24:])),
	}
	if uint16(f.hdr.Version) != Version {
		return nil, formatErr(4, "header", ErrVersion, "version %#x (low word must be %#x)", f.hdr.Version, Version)
	}
	if f.hdr.NumberOfStreams > maxStreams {
		return nil, formatErr(8, "header", ErrTooLarge, "%d streams", f.hdr.NumberOfStreams)
	}
	dirOff := int64(f.hdr.StreamDirectoryRva)
	dirLen := int64(f.hdr.NumberOfStreams) * 12
	if f.hdr.NumberOfStreams > 0 && dirOff < HeaderSize {
		return nil, formatErr(12, "header", nil, "stream directory RVA %#x overlaps the header", dirOff)
	}
	if dirLen > 0 && dirOff+dirLen > size {
		return nil, formatErr(12, "stream directory", ErrTruncated,
			"%d entries at %#x need %#x bytes, file has %#x", f.hdr.NumberOfStreams, dirOff, dirLen, size)
	}
	db := make([]byte, dirLen)
	if err := f.readFull(db, dirOff, "stream directory"); err != nil {
		return nil, err
	}
	f.dir = make([]Directory, f.hdr.NumberOfStreams)
	for i := range f.dir {
		e := db[12*i:]
		f.dir[i] = Directory{Index: i, Type: StreamType(le.Uint32(e)), Location: Location{DataSize: le.Uint32(e[4:]), Rva: le.Uint32(e[8:])}}
		d := &f.dir[i]
		if d.Type != UnusedStream && int64(d.Rva)+int64(d.DataSize) > size {
			f.prob = append(f.prob, formatErr(dirOff+12*int64(i), "stream directory", ErrTruncated,
				"%v (entry %d) at %#x+%#x runs past the end of the file (%#x bytes)", d.Type, i, d.Rva, d.DataSize, size))
		}
	}
	return f, nil
}

// Open opens the named file and reads it with NewFile. Files up to 64 MiB
// are read into memory at once; larger ones are read on demand. Close the
// File when done.
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
	if st.Size() <= openInMemory {
		b := make([]byte, st.Size())
		n, err := io.ReadFull(fh, b)
		fh.Close()
		if err != nil && err != io.ErrUnexpectedEOF {
			return nil, err
		}
		return NewFile(bytes.NewReader(b[:n]), int64(n))
	}
	f, err := NewFile(fh, st.Size())
	if err != nil {
		fh.Close()
		return nil, err
	}
	f.closer = fh
	return f, nil
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

// Header returns the MINIDUMP_HEADER.
func (f *File) Header() *Header { return &f.hdr }

// Size returns the size of the file in bytes.
func (f *File) Size() int64 { return f.size }

// Directory returns the stream directory as stored, including unused
// entries.
func (f *File) Directory() []Directory { return f.dir }

// Problems lists non-fatal problems found while opening: directory
// entries that point outside the file. Streams they describe give errors
// when read.
func (f *File) Problems() []error { return f.prob }

// Stream returns the first directory entry of type t that is not empty.
func (f *File) Stream(t StreamType) (Directory, bool) {
	for _, d := range f.dir {
		if d.Type == t && d.DataSize > 0 {
			return d, true
		}
	}
	for _, d := range f.dir {
		if d.Type == t {
			return d, true
		}
	}
	return Directory{}, false
}

// HasStream reports whether the directory lists a stream of type t.
func (f *File) HasStream(t StreamType) bool { _, ok := f.Stream(t); return ok }

// StreamData returns the bytes of the first stream of type t.
func (f *File) StreamData(t StreamType) ([]byte, error) {
	d, ok := f.Stream(t)
	if !ok {
		return nil, formatErr(-1, t.String(), ErrNoStream, "no %v in the directory", t)
	}
	return f.ReadLocation(d.Location, t.String(), maxStreamSize)
}

// ReadLocation returns the bytes a location descriptor points to, refusing
// sizes above limit.
func (f *File) ReadLocation(l Location, what string, limit int64) ([]byte, error) {
	if int64(l.DataSize) > limit {
		return nil, formatErr(int64(l.Rva), what, ErrTooLarge, "%#x bytes (limit %#x)", l.DataSize, limit)
	}
	if int64(l.Rva)+int64(l.DataSize) > f.size {
		return nil, formatErr(int64(l.Rva), what, ErrTruncated, "%#x bytes at %#x run past the end of the file (%#x bytes)", l.DataSize, l.Rva, f.size)
	}
	b := make([]byte, l.DataSize)
	if err := f.readFull(b, int64(l.Rva), what); err != nil {
		return nil, err
	}
	return b, nil
}

// readFull reads len(b) bytes at off, which the caller has bounds-checked.
func (f *File) readFull(b []byte, off int64, what string) error {
	if off < 0 || off+int64(len(b)) > f.size {
		return formatErr(off, what, ErrTruncated, "%#x bytes at %#x run past the end of the file (%#x bytes)", len(b), off, f.size)
	}
	n, err := f.r.ReadAt(b, off)
	if n < len(b) {
		return formatErr(off+int64(n), what, ErrTruncated, "short read (%v)", err)
	}
	return nil
}

// ReadString reads the MINIDUMP_STRING (u32 byte length, UTF-16LE text) at
// rva. Strings are cached by RVA; the total amount of string data decoded
// from one file is limited to a few times the file's size.
func (f *File) ReadString(rva uint32) (string, error) {
	f.strMu.Lock()
	defer f.strMu.Unlock()
	if s, ok := f.strs[rva]; ok {
		return s, nil
	}
	const what = "string"
	off := int64(rva)
	if off+4 > f.size {
		return "", formatErr(off, what, ErrTruncated, "string length at %#x is past the end of the file", rva)
	}
	var lb [4]byte
	if err := f.readFull(lb[:], off, what); err != nil {
		return "", err
	}
	n := le.Uint32(lb[:])
	if n > maxStringBytes {
		return "", formatErr(off, what, ErrTooLarge, "length %#x", n)
	}
	if n%2 != 0 {
		return "", formatErr(off, what, nil, "odd UTF-16 byte length %d", n)
	}
	if err := f.chargeLocked(int64(n), off, what); err != nil {
		return "", err
	}
	b := make([]byte, n)
	if err := f.readFull(b, off+4, what); err != nil {
		return "", err
	}
	s := utf16String(b)
	if f.strs == nil {
		f.strs = map[uint32]string{}
	}
	f.strs[rva] = s
	return s, nil
}

// charge takes n bytes from the budget for data kept per entry (strings,
// CodeView and misc records, handle object information).
func (f *File) charge(n, off int64, what string) error {
	f.strMu.Lock()
	defer f.strMu.Unlock()
	return f.chargeLocked(n, off, what)
}

func (f *File) chargeLocked(n, off int64, what string) error {
	if n > f.strBudget {
		return formatErr(off, what, ErrTooLarge, "per-entry data of the file exceeds %d bytes in total", 4*f.size+1<<20)
	}
	f.strBudget -= n
	return nil
}

// utf16String decodes UTF-16LE bytes, stopping at the first NUL.
func utf16String(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := le.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// cString returns b up to its first NUL.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// listHeader checks a "u32 count, entries[count]" list of entrySize-byte
// entries in b (stream bytes at file offset off) and returns the count and
// the offset of the first entry. Breakpad writers sometimes pad the count to
// 8 bytes; that layout is accepted when the size says so.
func listHeader(b []byte, off int64, what string, entrySize int) (count, start int, err error) {
	if len(b) < 4 {
		return 0, 0, formatErr(off, what, ErrTruncated, "stream of %d bytes has no count", len(b))
	}
	n := int64(le.Uint32(b))
	if n > maxListEntries {
		return 0, 0, formatErr(off, what, ErrTooLarge, "%d entries", n)
	}
	need := 4 + n*int64(entrySize)
	switch {
	case int64(len(b)) == need:
		return int(n), 4, nil
	case int64(len(b)) == need+4:
		return int(n), 8, nil
	case int64(len(b)) < need:
		return 0, 0, formatErr(off, what, ErrTruncated, "%d entries of %d bytes need %#x bytes, stream has %#x", n, entrySize, need, len(b))
	}
	return int(n), 4, nil
}

// tableHeader checks a "SizeOfHeader, SizeOfEntry, NumberOfEntries" table
// (u32 fields; count64 makes NumberOfEntries a u64) and returns the count,
// the entry stride and the offset of the first entry. minEntry is the
// smallest entry this package can read.
func tableHeader(b []byte, off int64, what string, minEntry int, count64 bool) (count, stride, start int, err error) {
	hmin := 12
	if count64 {
		hmin = 16
	}
	if len(b) < hmin {
		return 0, 0, 0, formatErr(off, what, ErrTruncated, "stream of %d bytes is shorter than its header", len(b))
	}
	hsize := int64(le.Uint32(b))
	esize := int64(le.Uint32(b[4:]))
	var n uint64
	if count64 {
		n = le.Uint64(b[8:])
	} else {
		n = uint64(le.Uint32(b[8:]))
	}
	if hsize < int64(hmin) || hsize > int64(len(b)) {
		return 0, 0, 0, formatErr(off, what, ErrTruncated, "SizeOfHeader %d (stream %d bytes)", hsize, len(b))
	}
	if esize < int64(minEntry) || esize > 1<<16 {
		return 0, 0, 0, formatErr(off+4, what, nil, "entry size %d (need at least %d)", esize, minEntry)
	}
	if n > maxListEntries {
		return 0, 0, 0, formatErr(off+8, what, ErrTooLarge, "%d entries", n)
	}
	if hsize+int64(n)*esize > int64(len(b)) {
		return 0, 0, 0, formatErr(off+8, what, ErrTruncated, "%d entries of %d bytes after a %d-byte header need %#x bytes, stream has %#x",
			n, esize, hsize, hsize+int64(n)*esize, len(b))
	}
	return int(n), int(esize), int(hsize), nil
}

// streamBytes returns the stream's bytes and its file offset.
func (f *File) streamBytes(t StreamType) ([]byte, int64, error) {
	d, ok := f.Stream(t)
	if !ok {
		return nil, -1, formatErr(-1, t.String(), ErrNoStream, "no %v in the directory", t)
	}
	b, err := f.ReadLocation(d.Location, t.String(), maxStreamSize)
	return b, int64(d.Rva), err
}
