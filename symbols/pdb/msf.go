package pdb

import (
	"bytes"
	"encoding/binary"
	"io"
)

// MSF 7.0 container: a superblock, a block map naming the blocks of the
// stream directory, and the directory naming the blocks of every stream.

var (
	msf7Magic = []byte("Microsoft C/C++ MSF 7.00\r\n\x1aDS\x00\x00\x00")
	pdb2Magic = []byte("Microsoft C/C++ program database 2.00\r\n\x1aJG\x00\x00")
)

const (
	superBlockSize = 0x38
	// nilStreamSize marks a stream that has no blocks.
	nilStreamSize = 0xFFFFFFFF
	// maxStreams caps the directory's stream count.
	maxStreams = 1 << 20
)

// msf is the parsed container: enough to read any stream.
type msf struct {
	r         io.ReaderAt
	size      int64
	blockSize uint32
	numBlocks uint32
	sizes     []uint32   // stream sizes (nilStreamSize for nil streams)
	blocks    [][]uint32 // per stream block indices
}

func validBlockSize(bs uint32) bool {
	switch bs {
	case 512, 1024, 2048, 4096, 8192, 16384, 32768:
		return true
	}
	return false
}

func readMSF(r io.ReaderAt, size int64) (*msf, error) {
	if size < int64(len(pdb2Magic)) && size < superBlockSize {
		return nil, ErrNotPDB
	}
	var sb [superBlockSize]byte
	n, err := r.ReadAt(sb[:], 0)
	if n < len(sb) {
		if n >= len(pdb2Magic) && bytes.Equal(sb[:len(pdb2Magic)], pdb2Magic) {
			return nil, &UnsupportedError{Format: "Microsoft C/C++ program database 2.00 (PDB 2.0, pre-VC 7.0)"}
		}
		if err == nil || err == io.EOF {
			return nil, ErrNotPDB
		}
		return nil, err
	}
	if bytes.Equal(sb[:len(pdb2Magic)], pdb2Magic) {
		return nil, &UnsupportedError{Format: "Microsoft C/C++ program database 2.00 (PDB 2.0, pre-VC 7.0)"}
	}
	if !bytes.Equal(sb[:len(msf7Magic)], msf7Magic) {
		return nil, ErrNotPDB
	}
	le := binary.LittleEndian
	m := &msf{r: r, size: size}
	m.blockSize = le.Uint32(sb[0x20:])
	m.numBlocks = le.Uint32(sb[0x28:])
	dirBytes := le.Uint32(sb[0x2C:])
	blockMapAddr := le.Uint32(sb[0x34:])
	if !validBlockSize(m.blockSize) {
		return nil, formatErr(-1, 0x20, "block size %d is not a power of two between 512 and 32768", m.blockSize)
	}
	bs := int64(m.blockSize)
	if int64(m.numBlocks)*bs > size+bs {
		// The file is shorter than the block count claims. Accept it (the
		// reads will fail on the missing blocks) but bound the count.
		m.numBlocks = uint32((size + bs - 1) / bs)
	}
	if int64(dirBytes) > size || dirBytes < 4 {
		return nil, formatErr(-1, 0x2C, "stream directory size %d is invalid for a %d-byte file", dirBytes, size)
	}
	nDirBlocks := (int64(dirBytes) + bs - 1) / bs
	if nDirBlocks*4 > bs {
		return nil, &UnsupportedError{Format: "MSF directory block map larger than one block"}
	}
	if blockMapAddr == 0 || blockMapAddr >= m.numBlocks {
		return nil, formatErr(-1, 0x34, "block map address %d outside the %d blocks", blockMapAddr, m.numBlocks)
	}
	mapBuf := make([]byte, nDirBlocks*4)
	if _, err := r.ReadAt(mapBuf, int64(blockMapAddr)*bs); err != nil {
		return nil, formatErr(-1, int64(blockMapAddr)*bs, "reading directory block map: %v", err)
	}
	dirBlocks := make([]uint32, nDirBlocks)
	for i := range dirBlocks {
		dirBlocks[i] = le.Uint32(mapBuf[i*4:])
	}
	dir, err := m.readBlocks(-1, dirBlocks, int64(dirBytes))
	if err != nil {
		return nil, err
	}
	// Directory: u32 NumStreams; u32 Sizes[NumStreams]; block lists.
	numStreams := le.Uint32(dir)
	if numStreams > maxStreams || int64(numStreams)*4+4 > int64(len(dir)) {
		return nil, formatErr(-1, int64(dirBlocks[0])*bs, "stream count %d does not fit the %d-byte directory", numStreams, len(dir))
	}
	m.sizes = make([]uint32, numStreams)
	m.blocks = make([][]uint32, numStreams)
	pos := int64(4)
	for i := range m.sizes {
		m.sizes[i] = le.Uint32(dir[pos:])
		pos += 4
	}
	for i, sz := range m.sizes {
		if sz == nilStreamSize {
			continue
		}
		if int64(sz) > size {
			return nil, formatErr(-1, 0, "stream %d claims %d bytes, more than the %d-byte file", i, sz, size)
		}
		nb := (int64(sz) + bs - 1) / bs
		if pos+nb*4 > int64(len(dir)) {
			return nil, formatErr(-1, 0, "stream directory truncated in the block list of stream %d", i)
		}
		bl := make([]uint32, nb)
		for j := range bl {
			bl[j] = le.Uint32(dir[pos:])
			pos += 4
		}
		m.blocks[i] = bl
	}
	return m, nil
}

// readBlocks concatenates blocks and truncates the result to n bytes.
func (m *msf) readBlocks(stream int, blocks []uint32, n int64) ([]byte, error) {
	bs := int64(m.blockSize)
	if n > int64(len(blocks))*bs || n > m.size {
		return nil, formatErr(stream, 0, "%d bytes do not fit %d blocks", n, len(blocks))
	}
	buf := make([]byte, n)
	for i, b := range blocks {
		lo := int64(i) * bs
		if lo >= n {
			break
		}
		hi := min(lo+bs, n)
		if b >= m.numBlocks {
			return nil, formatErr(stream, lo, "block index %d outside the %d blocks", b, m.numBlocks)
		}
		if _, err := m.r.ReadAt(buf[lo:hi], int64(b)*bs); err != nil {
			return nil, formatErr(stream, lo, "reading block %d: %v", b, err)
		}
	}
	return buf, nil
}

// streamSize returns the size of stream i, and false for a missing or nil stream.
func (m *msf) streamSize(i int) (uint32, bool) {
	if i < 0 || i >= len(m.sizes) || m.sizes[i] == nilStreamSize {
		return 0, false
	}
	return m.sizes[i], true
}

// readStream returns up to limit bytes from the start of stream i
// (limit < 0: the whole stream).
func (m *msf) readStream(i int, limit int64) ([]byte, error) {
	sz, ok := m.streamSize(i)
	if !ok {
		return nil, formatErr(i, 0, "stream does not exist")
	}
	n := int64(sz)
	if limit >= 0 && limit < n {
		n = limit
	}
	return m.readBlocks(i, m.blocks[i], n)
}
