// Package cab reads Microsoft Cabinet (CAB) files, the container that
// SymStore uses for compressed symbol files (ntkrnlmp.pd_, foo.dl_).
//
// It supports single-cabinet files with uncompressed and MSZIP folders.
// MSZIP stores each CFDATA block as the two bytes "CK" followed by a raw
// deflate stream whose history window is carried over from the previous
// block (up to 32 KiB). Quantum and LZX folders, and files continued from or
// into another cabinet, are reported as ErrUnsupported.
//
// The input is untrusted: every count, offset and size is checked against
// the file and against Limits before it is used, so a hostile cabinet
// cannot make the reader allocate without bound, read outside the file or
// loop forever. Errors are *FormatError values carrying the file offset.
//
// The layout follows Microsoft's published Cabinet file format
// specification (MS-CAB): CFHEADER, then CFFOLDER entries, CFFILE entries at
// coffFiles and each folder's CFDATA blocks from coffCabStart.
package cab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
	"unicode/utf8"
)

// Errors matched with errors.Is.
var (
	// ErrNotCAB: the input does not start with "MSCF".
	ErrNotCAB = errors.New("cab: not a cabinet file")
	// ErrUnsupported: a valid feature this reader does not implement
	// (LZX or Quantum compression, multi-cabinet sets).
	ErrUnsupported = errors.New("cab: unsupported feature")
	// ErrChecksum: a CFDATA block's checksum does not match its bytes.
	ErrChecksum = errors.New("cab: checksum mismatch")
	// ErrLimit: the cabinet exceeds one of the reader's Limits.
	ErrLimit = errors.New("cab: limit exceeded")
)

// FormatError reports malformed cabinet data at a file offset.
type FormatError struct {
	Off int64  // offset in the cabinet of the offending structure
	Msg string // what is wrong
	Err error  // an underlying error or one of the Err* values, may be nil
}

func (e *FormatError) Error() string {
	s := fmt.Sprintf("cab: %s at offset %#x", e.Msg, e.Off)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error.
func (e *FormatError) Unwrap() error { return e.Err }

// CompressionType is a folder's compression method (the low 4 bits of
// typeCompress).
type CompressionType uint16

// Compression methods.
const (
	CompressNone    CompressionType = 0
	CompressMSZIP   CompressionType = 1
	CompressQuantum CompressionType = 2
	CompressLZX     CompressionType = 3
)

// String returns the method's name.
func (c CompressionType) String() string {
	switch c {
	case CompressNone:
		return "none"
	case CompressMSZIP:
		return "MSZIP"
	case CompressQuantum:
		return "Quantum"
	case CompressLZX:
		return "LZX"
	}
	return fmt.Sprintf("CompressionType(%d)", uint16(c))
}

// Limits bound what a reader accepts. Zero fields take the defaults of
// DefaultLimits.
type Limits struct {
	MaxFolders  int   // folders in the cabinet
	MaxFiles    int   // files in the cabinet
	MaxFileSize int64 // uncompressed size of one file
	// MaxFolderSize bounds the uncompressed bytes decoded to reach and read
	// one file (its offset in the folder plus its size): a folder of tiny
	// MSZIP blocks could otherwise inflate to 4 GiB before the file starts.
	MaxFolderSize int64
}

// DefaultLimits returns the limits used when none are given. They are
// generous for symbol files: the largest PDBs on public servers are a few
// hundred MiB.
func DefaultLimits() Limits {
	return Limits{MaxFolders: 1024, MaxFiles: 65535, MaxFileSize: 2 << 30, MaxFolderSize: 4 << 30}
}

// Header flags.
const (
	flagPrevCabinet    = 0x0001
	flagNextCabinet    = 0x0002
	flagReservePresent = 0x0004
)

// Special iFolder values for files continued across cabinets.
const (
	ifoldContinuedFromPrev    = 0xFFFD
	ifoldContinuedToNext      = 0xFFFE
	ifoldContinuedPrevAndNext = 0xFFFF
)

const (
	headerSize   = 36
	folderSize   = 8
	fileHdrSize  = 16
	dataHdrSize  = 8
	maxNameBytes = 256 // CB_MAX_FILENAME
	attrNameUTF  = 0x80
)

// Folder is one CFFOLDER entry: a run of CFDATA blocks compressed together.
type Folder struct {
	DataOffset   uint32          // coffCabStart: offset of the first CFDATA block
	Blocks       uint16          // cCFData: number of CFDATA blocks
	Compression  CompressionType // low 4 bits of typeCompress
	TypeCompress uint16          // typeCompress as stored (level/window bits included)
}

// File is one CFFILE entry.
type File struct {
	Name        string    // file name as stored (UTF-8 if the name-is-UTF attribute is set)
	Size        uint32    // uncompressed size
	FolderStart uint32    // offset of the file's data in its folder's uncompressed stream
	Folder      uint16    // index of its folder
	Modified    time.Time // DOS date and time, in UTC as no zone is stored
	Attributes  uint16    // FAT attributes (0x01 read-only, 0x20 archive, 0x80 name is UTF-8...)

	cab *Reader
}

// Reader reads one cabinet.
type Reader struct {
	Folders                    []Folder
	Files                      []*File
	SetID                      uint16 // setID from the header
	Index                      uint16 // iCabinet: the cabinet's number in its set
	VersionMajor, VersionMinor uint8

	r           io.ReaderAt
	size        int64
	dataReserve int // cbCFData: reserved bytes in every CFDATA header
	limits      Limits
}

// ReadCloser is a Reader over a file that Close closes.
type ReadCloser struct {
	Reader
	f *os.File
}

// Close closes the underlying file.
func (rc *ReadCloser) Close() error { return rc.f.Close() }

// OpenReader opens the named cabinet file with DefaultLimits.
func OpenReader(name string) (*ReadCloser, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	r, err := NewReaderLimits(f, fi.Size(), DefaultLimits())
	if err != nil {
		f.Close()
		return nil, err
	}
	return &ReadCloser{Reader: *r, f: f}, nil
}

// NewReader reads the cabinet directory from r, which holds size bytes,
// with DefaultLimits.
func NewReader(r io.ReaderAt, size int64) (*Reader, error) {
	return NewReaderLimits(r, size, DefaultLimits())
}

// NewReaderLimits is NewReader with explicit limits.
func NewReaderLimits(r io.ReaderAt, size int64, lim Limits) (*Reader, error) {
	def := DefaultLimits()
	if lim.MaxFolders <= 0 {
		lim.MaxFolders = def.MaxFolders
	}
	if lim.MaxFiles <= 0 {
		lim.MaxFiles = def.MaxFiles
	}
	if lim.MaxFileSize <= 0 {
		lim.MaxFileSize = def.MaxFileSize
	}
	if lim.MaxFolderSize <= 0 {
		lim.MaxFolderSize = def.MaxFolderSize
	}
	c := &Reader{r: r, size: size, limits: lim}
	if size < headerSize {
		if size >= 4 {
			var m [4]byte
			if _, err := r.ReadAt(m[:], 0); err == nil && string(m[:]) != "MSCF" {
				return nil, ErrNotCAB
			}
		}
		return nil, &FormatError{Off: 0, Msg: fmt.Sprintf("file of %d bytes is shorter than a CAB header", size)}
	}
	var h [headerSize]byte
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return nil, &FormatError{Off: 0, Msg: "reading header", Err: err}
	}
	if string(h[0:4]) != "MSCF" {
		return nil, ErrNotCAB
	}
	cbCabinet := int64(binary.LittleEndian.Uint32(h[8:]))
	coffFiles := int64(binary.LittleEndian.Uint32(h[16:]))
	c.VersionMinor, c.VersionMajor = h[24], h[25]
	nFolders := int(binary.LittleEndian.Uint16(h[26:]))
	nFiles := int(binary.LittleEndian.Uint16(h[28:]))
	flags := binary.LittleEndian.Uint16(h[30:])
	c.SetID = binary.LittleEndian.Uint16(h[32:])
	c.Index = binary.LittleEndian.Uint16(h[34:])

	if c.VersionMajor != 1 {
		return nil, &FormatError{Off: 25, Msg: fmt.Sprintf("version %d.%d", c.VersionMajor, c.VersionMinor), Err: ErrUnsupported}
	}
	if cbCabinet > size {
		return nil, &FormatError{Off: 8, Msg: fmt.Sprintf("cabinet size %d but only %d bytes present (truncated)", cbCabinet, size)}
	}
	if cbCabinet < headerSize {
		return nil, &FormatError{Off: 8, Msg: fmt.Sprintf("cabinet size %d smaller than its header", cbCabinet)}
	}
	c.size = cbCabinet // ignore trailing bytes
	if flags&(flagPrevCabinet|flagNextCabinet) != 0 {
		return nil, &FormatError{Off: 30, Msg: "multi-cabinet set", Err: ErrUnsupported}
	}
	if nFolders > lim.MaxFolders {
		return nil, &FormatError{Off: 26, Msg: fmt.Sprintf("%d folders", nFolders), Err: ErrLimit}
	}
	if nFiles > lim.MaxFiles {
		return nil, &FormatError{Off: 28, Msg: fmt.Sprintf("%d files", nFiles), Err: ErrLimit}
	}

	off := int64(headerSize)
	folderReserve := 0
	if flags&flagReservePresent != 0 {
		var rb [4]byte
		if err := c.readAt(rb[:], off); err != nil {
			return nil, err
		}
		cbHeader := int64(binary.LittleEndian.Uint16(rb[0:]))
		folderReserve = int(rb[2])
		c.dataReserve = int(rb[3])
		off += 4 + cbHeader
	}

	// Folders.
	fsz := int64(folderSize + folderReserve)
	if off+int64(nFolders)*fsz > c.size {
		return nil, &FormatError{Off: off, Msg: fmt.Sprintf("%d folder entries run past the end", nFolders)}
	}
	c.Folders = make([]Folder, nFolders)
	for i := range c.Folders {
		var b [folderSize]byte
		if err := c.readAt(b[:], off); err != nil {
			return nil, err
		}
		tc := binary.LittleEndian.Uint16(b[6:])
		c.Folders[i] = Folder{
			DataOffset:   binary.LittleEndian.Uint32(b[0:]),
			Blocks:       binary.LittleEndian.Uint16(b[4:]),
			Compression:  CompressionType(tc & 0x000F),
			TypeCompress: tc,
		}
		if int64(c.Folders[i].DataOffset) > c.size {
			return nil, &FormatError{Off: off, Msg: fmt.Sprintf("folder %d data offset %#x past the end", i, c.Folders[i].DataOffset)}
		}
		off += fsz
	}

	// Files. Each entry is at least 16+1 bytes, which bounds nFiles by the
	// file size before anything is allocated.
	if coffFiles < headerSize || coffFiles+int64(nFiles)*(fileHdrSize+1) > c.size {
		return nil, &FormatError{Off: 16, Msg: fmt.Sprintf("file table at %#x with %d entries does not fit", coffFiles, nFiles)}
	}
	off = coffFiles
	c.Files = make([]*File, 0, nFiles)
	for i := 0; i < nFiles; i++ {
		var b [fileHdrSize]byte
		if err := c.readAt(b[:], off); err != nil {
			return nil, err
		}
		f := &File{
			Size:        binary.LittleEndian.Uint32(b[0:]),
			FolderStart: binary.LittleEndian.Uint32(b[4:]),
			Folder:      binary.LittleEndian.Uint16(b[8:]),
			Modified:    dosTime(binary.LittleEndian.Uint16(b[10:]), binary.LittleEndian.Uint16(b[12:])),
			Attributes:  binary.LittleEndian.Uint16(b[14:]),
			cab:         c,
		}
		name, n, err := c.readName(off + fileHdrSize)
		if err != nil {
			return nil, err
		}
		f.Name = decodeName(name, f.Attributes&attrNameUTF != 0)
		switch f.Folder {
		case ifoldContinuedFromPrev, ifoldContinuedToNext, ifoldContinuedPrevAndNext:
			return nil, &FormatError{Off: off, Msg: fmt.Sprintf("file %q continues across cabinets", f.Name), Err: ErrUnsupported}
		}
		if int(f.Folder) >= nFolders {
			return nil, &FormatError{Off: off + 8, Msg: fmt.Sprintf("file %q names folder %d of %d", f.Name, f.Folder, nFolders)}
		}
		if int64(f.FolderStart)+int64(f.Size) > int64(c.Folders[f.Folder].Blocks)*65535 {
			return nil, &FormatError{Off: off, Msg: fmt.Sprintf("file %q (offset %d, size %d) cannot fit in folder %d of %d blocks", f.Name, f.FolderStart, f.Size, f.Folder, c.Folders[f.Folder].Blocks)}
		}
		c.Files = append(c.Files, f)
		off += fileHdrSize + int64(n)
	}
	return c, nil
}

// readAt reads exactly len(b) bytes at off, which must lie inside the
// cabinet.
func (c *Reader) readAt(b []byte, off int64) error {
	if off < 0 || off+int64(len(b)) > c.size {
		return &FormatError{Off: off, Msg: fmt.Sprintf("%d bytes needed past the end of the cabinet (%d bytes)", len(b), c.size)}
	}
	if _, err := c.r.ReadAt(b, off); err != nil {
		return &FormatError{Off: off, Msg: "read", Err: err}
	}
	return nil
}

// readName reads a NUL-terminated name at off; it returns the name bytes
// and the bytes consumed including the NUL.
func (c *Reader) readName(off int64) ([]byte, int, error) {
	n := int64(maxNameBytes + 1)
	if off+n > c.size {
		n = c.size - off
	}
	if n <= 0 {
		return nil, 0, &FormatError{Off: off, Msg: "file name past the end"}
	}
	b := make([]byte, n)
	if err := c.readAt(b, off); err != nil {
		return nil, 0, err
	}
	for i, ch := range b {
		if ch == 0 {
			if i == 0 {
				return nil, 0, &FormatError{Off: off, Msg: "empty file name"}
			}
			return b[:i], i + 1, nil
		}
	}
	return nil, 0, &FormatError{Off: off, Msg: "file name not terminated within 256 bytes"}
}

// decodeName converts a stored name to a Go string. Names without the UTF
// attribute are in an unknown code page; bytes above 0x7F are mapped as
// Latin-1 so the result is always valid UTF-8.
func decodeName(b []byte, isUTF bool) string {
	if isUTF && utf8.Valid(b) {
		return string(b)
	}
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// dosTime converts a FAT date and time to a time.Time in UTC. Out-of-range
// fields give the zero time.
func dosTime(d, t uint16) time.Time {
	if d == 0 {
		return time.Time{}
	}
	year := int(d>>9) + 1980
	month := time.Month(d >> 5 & 0xF)
	day := int(d & 0x1F)
	hour, min, sec := int(t>>11), int(t>>5&0x3F), int(t&0x1F)*2
	if month < 1 || month > 12 || day < 1 || hour > 23 || min > 59 || sec > 59 {
		return time.Time{}
	}
	return time.Date(year, month, day, hour, min, sec, 0, time.UTC)
}

// Open returns a reader of the file's uncompressed contents. It reads the
// file's folder from its start, so opening the last file of a big folder
// decompresses everything before it. Data errors (bad checksum, corrupt
// deflate stream, truncated folder) are returned from Read.
func (f *File) Open() (io.ReadCloser, error) {
	c := f.cab
	if int64(f.Size) > c.limits.MaxFileSize {
		return nil, &FormatError{Off: 0, Msg: fmt.Sprintf("file %q of %d bytes", f.Name, f.Size), Err: ErrLimit}
	}
	if end := int64(f.FolderStart) + int64(f.Size); end > c.limits.MaxFolderSize {
		return nil, &FormatError{Off: 0, Msg: fmt.Sprintf("file %q ends %d bytes into its folder", f.Name, end), Err: ErrLimit}
	}
	fo := c.Folders[f.Folder]
	switch fo.Compression {
	case CompressNone, CompressMSZIP:
	default:
		return nil, &FormatError{Off: 0, Msg: fmt.Sprintf("folder %d uses %v compression", f.Folder, fo.Compression), Err: ErrUnsupported}
	}
	fr := &folderReader{c: c, folder: fo, off: int64(fo.DataOffset), left: int(fo.Blocks)}
	if f.FolderStart > 0 {
		if _, err := io.CopyN(io.Discard, fr, int64(f.FolderStart)); err != nil {
			return nil, truncated(f, err)
		}
	}
	return &fileReader{f: f, fr: fr, left: int64(f.Size)}, nil
}

func truncated(f *File, err error) error {
	if err == io.EOF {
		return &FormatError{Off: int64(f.cab.Folders[f.Folder].DataOffset), Msg: fmt.Sprintf("folder %d ends before file %q does", f.Folder, f.Name), Err: io.ErrUnexpectedEOF}
	}
	return err
}

// fileReader limits a folder stream to one file.
type fileReader struct {
	f    *File
	fr   *folderReader
	left int64
}

func (r *fileReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.fr.Read(p)
	r.left -= int64(n)
	if err == io.EOF && r.left > 0 {
		err = truncated(r.f, err)
	} else if err == io.EOF {
		err = nil
	}
	return n, err
}

func (r *fileReader) Close() error { return nil }
