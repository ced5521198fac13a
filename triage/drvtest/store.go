package drvtest

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/kdtriage/kdtriage/symbols"
	"github.com/kdtriage/kdtriage/symbols/pdb"
	"github.com/kdtriage/kdtriage/symbols/pe"
)

// Keys returns the symbol-store keys of the driver's image and PDB.
func Keys(driversDir string) (image, pdbKey symbols.Key, err error) {
	img, err := pe.Open(filepath.Join(driversDir, "kdtdrv.sys"))
	if err != nil {
		return image, pdbKey, err
	}
	defer img.Close()
	cv, err := img.CodeView()
	if err != nil {
		return image, pdbKey, err
	}
	g, err := symbols.GUIDFromBytes(cv.GUID[:])
	if err != nil {
		return image, pdbKey, err
	}
	p, err := pdb.Open(filepath.Join(driversDir, "kdtdrv.pdb"))
	if err != nil {
		return image, pdbKey, err
	}
	defer p.Close()
	if pg := p.GUID(); !bytes.Equal(pg[:], cv.GUID[:]) || p.Age() != cv.Age {
		return image, pdbKey, errors.New("drvtest: kdtdrv.pdb does not match kdtdrv.sys")
	}
	return symbols.ImageKey(ModuleName, img.TimeDateStamp, img.OptionalHeader.SizeOfImage),
		symbols.PDBKey(cv.PDBName(), g, cv.Age), nil
}

// Compressor says how BuildStore writes a compressed file.
type Compressor int

// Compressors.
const (
	Plain     Compressor = iota // the file itself
	CABWriter                   // a single-file MSZIP cabinet written by WriteCAB
	Gcab                        // a cabinet made by `gcab -c -z` (Debian package gcab)
)

// String names the compressor.
func (c Compressor) String() string {
	switch c {
	case Plain:
		return "plain"
	case CABWriter:
		return "cab-writer"
	case Gcab:
		return "gcab"
	}
	return fmt.Sprintf("Compressor(%d)", int(c))
}

// HaveGcab reports whether gcab is installed.
func HaveGcab() bool {
	_, err := exec.LookPath("gcab")
	return err == nil
}

// BuildStore writes a SymStore tree under root holding kdtdrv.sys under
// its image key and kdtdrv.pdb under its PDB key, each stored as its
// compressor says (a compressed file is named with '_' as its last
// character, kdtdrv.sy_). It returns the keys.
func BuildStore(root, driversDir string, image, pdbFile Compressor) (imageKey, pdbKey symbols.Key, err error) {
	imageKey, pdbKey, err = Keys(driversDir)
	if err != nil {
		return
	}
	if err = storeFile(root, imageKey, filepath.Join(driversDir, "kdtdrv.sys"), image); err != nil {
		return
	}
	err = storeFile(root, pdbKey, filepath.Join(driversDir, "kdtdrv.pdb"), pdbFile)
	return
}

func storeFile(root string, k symbols.Key, src string, c Compressor) error {
	dir := filepath.Join(root, k.Name, k.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	switch c {
	case Plain:
		return os.WriteFile(filepath.Join(dir, k.File), data, 0o644)
	case CABWriter:
		var b bytes.Buffer
		if err := WriteCAB(&b, k.File, data); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, k.CompressedFile()), b.Bytes(), 0o644)
	case Gcab:
		// gcab stores the member under the name given: run it where the
		// file has its store name.
		tmp, err := os.MkdirTemp("", "drvtest-gcab")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if err := os.WriteFile(filepath.Join(tmp, k.File), data, 0o644); err != nil {
			return err
		}
		out, err := filepath.Abs(filepath.Join(dir, k.CompressedFile()))
		if err != nil {
			return err
		}
		cmd := exec.Command("gcab", "-c", "-z", out, k.File)
		cmd.Dir = tmp
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("drvtest: gcab: %v: %s", err, b)
		}
		return nil
	}
	return fmt.Errorf("drvtest: unknown compressor %v", c)
}

// WriteCAB writes a cabinet (MS-CAB) holding one file, name, compressed
// with MSZIP: one folder, blocks of 32 KiB each deflated on its own
// behind the "CK" signature, with block checksums.
func WriteCAB(w *bytes.Buffer, name string, data []byte) error {
	const block = 0x8000
	var blocks [][]byte
	var sizes []int
	for off := 0; off < len(data); off += block {
		chunk := data[off:min(off+block, len(data))]
		var c bytes.Buffer
		c.WriteString("CK")
		fw, err := flate.NewWriter(&c, flate.BestCompression)
		if err != nil {
			return err
		}
		if _, err := fw.Write(chunk); err != nil {
			return err
		}
		if err := fw.Close(); err != nil {
			return err
		}
		if c.Len() > block+12 {
			// Incompressible: one final stored deflate block (RFC 1951
			// 3.2.4) keeps within MS-CAB's 32768+12 bytes.
			c.Reset()
			c.WriteString("CK")
			n := len(chunk)
			c.Write([]byte{0x01, byte(n), byte(n >> 8), ^byte(n), ^byte(n >> 8)})
			c.Write(chunk)
		}
		blocks = append(blocks, c.Bytes())
		sizes = append(sizes, len(chunk))
	}
	if len(blocks) > 0xFFFF || len(data) > 0x7FFFFFFF {
		return errors.New("drvtest: file too large for one cabinet folder")
	}
	const hdrSize, folderSize, fileFixed = 36, 8, 16
	fileEntry := fileFixed + len(name) + 1
	dataStart := hdrSize + folderSize + fileEntry
	total := dataStart
	for _, b := range blocks {
		total += 8 + len(b)
	}
	u16 := func(v int) { var b [2]byte; le.PutUint16(b[:], uint16(v)); w.Write(b[:]) }
	u32 := func(v int) { var b [4]byte; le.PutUint32(b[:], uint32(v)); w.Write(b[:]) }
	// CFHEADER
	w.WriteString("MSCF")
	u32(0)
	u32(total)
	u32(0)
	u32(hdrSize + folderSize) // coffFiles
	u32(0)
	w.WriteByte(3) // versionMinor
	w.WriteByte(1) // versionMajor
	u16(1)         // cFolders
	u16(1)         // cFiles
	u16(0)         // flags
	u16(0x4B44)    // setID
	u16(0)         // iCabinet
	// CFFOLDER
	u32(dataStart)
	u16(len(blocks))
	u16(1) // MSZIP
	// CFFILE
	u32(len(data))
	u32(0)      // offset in the folder
	u16(0)      // folder
	u16(0x5921) // 2024-09-01
	u16(0x6000) // 12:00
	u16(0x20)   // archive
	w.WriteString(name)
	w.WriteByte(0)
	// CFDATA
	for i, b := range blocks {
		var h [4]byte
		le.PutUint16(h[0:], uint16(len(b)))
		le.PutUint16(h[2:], uint16(sizes[i]))
		u32(int(cabChecksum(h[:], cabChecksum(b, 0))))
		w.Write(h[:])
		w.Write(b)
	}
	return nil
}

// Server is a SymStore tree served over HTTP by an httptest.Server. It
// answers GET /NAME/ID/FILE with the file under Root (404 when absent)
// and counts every request.
type Server struct {
	*httptest.Server
	Root string

	mu   sync.Mutex
	log  []string // "200 /kdtdrv.sys/.../kdtdrv.sy_"
	hits int
}

// NewServer starts a server over root. Close it when done.
func NewServer(root string) *Server {
	s := &Server{Root: root}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	p := path.Clean("/" + r.URL.Path)
	status := http.StatusOK
	var data []byte
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		status = http.StatusMethodNotAllowed
	} else if b, err := os.ReadFile(filepath.Join(s.Root, filepath.FromSlash(strings.TrimPrefix(p, "/")))); err != nil {
		status = http.StatusNotFound
	} else {
		data = b
	}
	s.mu.Lock()
	s.log = append(s.log, fmt.Sprintf("%d %s", status, p))
	if status == http.StatusOK {
		s.hits++
	}
	s.mu.Unlock()
	if status != http.StatusOK {
		http.Error(w, http.StatusText(status), status)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(data)
}

// Requests returns the requests served so far, as "STATUS /path", in order.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// Count returns the number of requests and of 200 answers so far.
func (s *Server) Count() (requests, ok int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.log), s.hits
}

// Reset forgets the requests counted so far.
func (s *Server) Reset() {
	s.mu.Lock()
	s.log, s.hits = nil, 0
	s.mu.Unlock()
}

// cabChecksum is MS-CAB's CSUMCompute: the XOR of the bytes taken as
// little-endian 32-bit words, the 1 to 3 bytes left over packed
// most significant first, starting from seed.
func cabChecksum(b []byte, seed uint32) uint32 {
	sum := seed
	n := len(b) / 4 * 4
	for i := 0; i < n; i += 4 {
		sum ^= le.Uint32(b[i:])
	}
	var tail uint32
	for _, c := range b[n:] {
		tail = tail<<8 | uint32(c)
	}
	return sum ^ tail
}
