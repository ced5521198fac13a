package cab

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
)

// windowSize is the deflate history that MSZIP carries from block to block.
const windowSize = 32 << 10

// folderReader decodes a folder's CFDATA blocks in order as one stream.
type folderReader struct {
	c      *Reader
	folder Folder
	off    int64 // offset of the next CFDATA header
	left   int   // blocks not yet decoded
	out    []byte
	pos    int    // next unread byte in out
	window []byte // MSZIP history: the last <= 32 KiB of output
	err    error
	data   []byte // reusable buffer for compressed block bytes
	dec    io.ReadCloser
	br     bytes.Reader
}

func (r *folderReader) Read(p []byte) (int, error) {
	for r.pos >= len(r.out) {
		if r.err != nil {
			return 0, r.err
		}
		if r.left == 0 {
			r.err = io.EOF
			return 0, io.EOF
		}
		if err := r.nextBlock(); err != nil {
			r.err = err
			return 0, err
		}
	}
	n := copy(p, r.out[r.pos:])
	r.pos += n
	return n, nil
}

// nextBlock reads and decodes the CFDATA block at r.off.
func (r *folderReader) nextBlock() error {
	c := r.c
	var h [dataHdrSize]byte
	if err := c.readAt(h[:], r.off); err != nil {
		return err
	}
	sum := binary.LittleEndian.Uint32(h[0:])
	cbData := int(binary.LittleEndian.Uint16(h[4:]))
	cbUncomp := int(binary.LittleEndian.Uint16(h[6:]))
	blockOff := r.off
	dataOff := r.off + dataHdrSize + int64(c.dataReserve)
	if cbUncomp == 0 {
		return &FormatError{Off: blockOff, Msg: "data block continued in the next cabinet", Err: ErrUnsupported}
	}
	if dataOff+int64(cbData) > c.size {
		return &FormatError{Off: blockOff, Msg: fmt.Sprintf("data block of %d bytes runs past the end", cbData)}
	}
	// Header fields after the checksum, plus the per-block reserve, are
	// covered by the checksum too.
	hdr := make([]byte, 4+c.dataReserve)
	if err := c.readAt(hdr, r.off+4); err != nil {
		return err
	}
	if cap(r.data) < cbData {
		r.data = make([]byte, cbData, 65535)
	}
	data := r.data[:cbData]
	if err := c.readAt(data, dataOff); err != nil {
		return err
	}
	if sum != 0 {
		if got := checksum(hdr, checksum(data, 0)); got != sum {
			return &FormatError{Off: blockOff, Msg: fmt.Sprintf("block checksum %#08x, computed %#08x", sum, got), Err: ErrChecksum}
		}
	}
	r.off = dataOff + int64(cbData)
	r.left--

	if cap(r.out) < cbUncomp {
		r.out = make([]byte, 0, 65535)
	}
	r.out = r.out[:cbUncomp]
	r.pos = 0
	switch r.folder.Compression {
	case CompressNone:
		if cbData != cbUncomp {
			return &FormatError{Off: blockOff, Msg: fmt.Sprintf("stored block with %d data bytes claims %d uncompressed", cbData, cbUncomp)}
		}
		copy(r.out, data)
	case CompressMSZIP:
		if cbData < 2 || data[0] != 'C' || data[1] != 'K' {
			return &FormatError{Off: dataOff, Msg: "MSZIP block without the CK signature"}
		}
		r.br.Reset(data[2:])
		if r.dec == nil {
			r.dec = flate.NewReaderDict(&r.br, r.window)
		} else if err := r.dec.(flate.Resetter).Reset(&r.br, r.window); err != nil {
			return &FormatError{Off: dataOff, Msg: "MSZIP reset", Err: err}
		}
		if _, err := io.ReadFull(r.dec, r.out); err != nil {
			return &FormatError{Off: dataOff, Msg: fmt.Sprintf("MSZIP block does not inflate to %d bytes", cbUncomp), Err: err}
		}
		r.slide()
	default:
		return &FormatError{Off: blockOff, Msg: r.folder.Compression.String(), Err: ErrUnsupported}
	}
	return nil
}

// slide appends the block just decoded to the history window, keeping the
// last windowSize bytes.
func (r *folderReader) slide() {
	if r.window == nil {
		r.window = make([]byte, 0, 2*windowSize+65535)
	}
	if len(r.window)+len(r.out) > cap(r.window) {
		keep := r.window[len(r.window)-min(len(r.window), windowSize):]
		r.window = append(r.window[:0], keep...)
	}
	r.window = append(r.window, r.out...)
	if len(r.window) > windowSize {
		// NewReaderDict uses at most the last 32 KiB anyway; pass exactly that.
		keep := r.window[len(r.window)-windowSize:]
		r.window = append(r.window[:0], keep...)
	}
}

// checksum computes the CAB block checksum (MS-CAB CSUMCompute): the XOR of
// the data taken as little-endian 32-bit words, with the 1 to 3 trailing
// bytes folded in with the first of them in the highest position used.
func checksum(b []byte, seed uint32) uint32 {
	s := seed
	n := len(b) / 4
	for i := 0; i < n; i++ {
		s ^= binary.LittleEndian.Uint32(b[4*i:])
	}
	var ul uint32
	rest := b[4*n:]
	for _, c := range rest {
		ul = ul<<8 | uint32(c)
	}
	return s ^ ul
}
