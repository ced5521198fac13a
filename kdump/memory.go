package kdump

import (
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"sort"
	"unicode/utf16"
)

// Memory is a virtual address space read from a dump.
//
// ReadVirtual reads len(p) bytes starting at virtual address addr. It returns
// the number of bytes read; when n < len(p) the error says why (usually a
// *MemoryError wrapping ErrNotPresent at the first missing address). Reads
// never block on anything but the underlying file.
type Memory interface {
	ReadVirtual(p []byte, addr uint64) (n int, err error)
}

// ReadU64 reads a little-endian 64-bit value at addr.
func ReadU64(m Memory, addr uint64) (uint64, error) {
	var b [8]byte
	if _, err := m.ReadVirtual(b[:], addr); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// ReadU32 reads a little-endian 32-bit value at addr.
func ReadU32(m Memory, addr uint64) (uint32, error) {
	var b [4]byte
	if _, err := m.ReadVirtual(b[:], addr); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b[:]), nil
}

// ReadU16 reads a little-endian 16-bit value at addr.
func ReadU16(m Memory, addr uint64) (uint16, error) {
	var b [2]byte
	if _, err := m.ReadVirtual(b[:], addr); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b[:]), nil
}

// ReadPointer reads a pointer of the given size (4 or 8 bytes) at addr.
func ReadPointer(m Memory, addr uint64, size int) (uint64, error) {
	if size == 4 {
		v, err := ReadU32(m, addr)
		return uint64(v), err
	}
	return ReadU64(m, addr)
}

// ptrAt decodes a little-endian pointer of size bytes (4 or 8) at off in
// b, or returns 0 when b is too short to hold it.
func ptrAt(b []byte, off, size int) uint64 {
	if off < 0 || off+size > len(b) {
		return 0
	}
	if size == 4 {
		return uint64(binary.LittleEndian.Uint32(b[off:]))
	}
	return binary.LittleEndian.Uint64(b[off:])
}

// maxUnicodeString caps UNICODE_STRING reads from dump memory.
const maxUnicodeString = 0x1000

// ReadUnicodeString reads a UNICODE_STRING (x64 layout when ptrSize is 8,
// x86 layout when 4) at addr and returns its text. Odd, oversize or
// inconsistent lengths are rejected.
func ReadUnicodeString(m Memory, addr uint64, ptrSize int) (string, error) {
	var hdr [16]byte
	n := 8
	if ptrSize == 8 {
		n = 16
	}
	if _, err := m.ReadVirtual(hdr[:n], addr); err != nil {
		return "", err
	}
	length := binary.LittleEndian.Uint16(hdr[0:])
	maxLen := binary.LittleEndian.Uint16(hdr[2:])
	var buf uint64
	if ptrSize == 8 {
		buf = binary.LittleEndian.Uint64(hdr[8:])
	} else {
		buf = uint64(binary.LittleEndian.Uint32(hdr[4:]))
	}
	if length == 0 {
		return "", nil
	}
	if length%2 != 0 || length > maxLen || length > maxUnicodeString || buf == 0 {
		return "", &MemoryError{Addr: addr, Err: errors.New("malformed UNICODE_STRING")}
	}
	b := make([]byte, length)
	if _, err := m.ReadVirtual(b, buf); err != nil {
		return "", err
	}
	return decodeUTF16(b), nil
}

func decodeUTF16(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

// Range is a range of virtual addresses [Start, End) that a dump can read.
type Range struct {
	Start, End uint64
	// Source names where the bytes come from ("stack", "data block", ...).
	Source string
}

// Ranger is implemented by Memory values that can list what they hold.
type Ranger interface {
	Ranges() []Range
}

// overlayEntry maps [va, va+size) to file [off, off+size).
type overlayEntry struct {
	va     uint64
	size   uint64
	off    int64
	source string
}

// overlay is a virtual address space made of file ranges: the triage dump
// reader. Candidates are added in order of preference; build resolves
// overlaps in favour of the candidate added first and leaves entries
// sorted by va and non-overlapping.
type overlay struct {
	r       io.ReaderAt
	pending []overlayEntry // candidates, in order of preference
	entries []overlayEntry // built: sorted by va, non-overlapping
}

// add records [va, va+size) -> off as a candidate. It must be called
// before build.
func (o *overlay) add(va, size uint64, off int64, source string) {
	if size == 0 || va+size < va {
		return
	}
	o.pending = append(o.pending, overlayEntry{va: va, size: size, off: off, source: source})
}

// build resolves the candidates into entries in O(n log n): the address
// line is cut at every candidate boundary, and each piece goes to the most
// preferred candidate covering it (a min-heap of the candidates open at
// that point, by preference).
func (o *overlay) build() {
	c := o.pending
	o.pending = nil
	if len(c) == 0 {
		return
	}
	type edge struct {
		at   uint64
		idx  int // candidate index
		open bool
	}
	edges := make([]edge, 0, 2*len(c))
	for i, e := range c {
		edges = append(edges, edge{e.va, i, true}, edge{e.va + e.size, i, false})
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if a.at != b.at {
			if a.at < b.at {
				return -1
			}
			return 1
		}
		return 0
	})
	closed := make([]bool, len(c))
	var heap []int // candidate indexes, a min-heap
	push := func(x int) {
		heap = append(heap, x)
		for i := len(heap) - 1; i > 0; {
			p := (i - 1) / 2
			if heap[p] <= heap[i] {
				break
			}
			heap[p], heap[i] = heap[i], heap[p]
			i = p
		}
	}
	pop := func() {
		n := len(heap) - 1
		heap[0] = heap[n]
		heap = heap[:n]
		for i := 0; ; {
			l, r, m := 2*i+1, 2*i+2, i
			if l < n && heap[l] < heap[m] {
				m = l
			}
			if r < n && heap[r] < heap[m] {
				m = r
			}
			if m == i {
				break
			}
			heap[m], heap[i] = heap[i], heap[m]
			i = m
		}
	}
	out := make([]overlayEntry, 0, len(c))
	for i := 0; i < len(edges); {
		at := edges[i].at
		for ; i < len(edges) && edges[i].at == at; i++ {
			if edges[i].open {
				push(edges[i].idx)
			} else {
				closed[edges[i].idx] = true
			}
		}
		for len(heap) > 0 && closed[heap[0]] {
			pop()
		}
		if len(heap) == 0 || i == len(edges) {
			continue
		}
		next := edges[i].at
		w := c[heap[0]]
		piece := overlayEntry{va: at, size: next - at, off: w.off + int64(at-w.va), source: w.source}
		if n := len(out); n > 0 {
			last := &out[n-1]
			if last.va+last.size == at && last.source == w.source && last.off+int64(last.size) == piece.off {
				last.size += piece.size
				continue
			}
		}
		out = append(out, piece)
	}
	o.entries = out
}

// ReadVirtual implements Memory.
func (o *overlay) ReadVirtual(p []byte, addr uint64) (int, error) {
	done := 0
	for done < len(p) {
		a := addr + uint64(done)
		i := sort.Search(len(o.entries), func(i int) bool { return o.entries[i].va+o.entries[i].size > a })
		if i == len(o.entries) || o.entries[i].va > a {
			return done, &MemoryError{Addr: a, Err: ErrNotPresent}
		}
		e := o.entries[i]
		inner := a - e.va
		n := min(uint64(len(p)-done), e.size-inner)
		m, err := o.r.ReadAt(p[done:done+int(n)], e.off+int64(inner))
		done += m
		if m < int(n) { // a short read ends the loop even without an error
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return done, &MemoryError{Addr: addr + uint64(done), Err: &FormatError{Offset: e.off + int64(inner) + int64(m), What: e.source, Msg: "cannot read", Err: err}}
		}
	}
	return done, nil
}

// Ranges implements Ranger.
func (o *overlay) Ranges() []Range {
	out := make([]Range, 0, len(o.entries))
	for _, e := range o.entries {
		if n := len(out); n > 0 && out[n-1].End == e.va && out[n-1].Source == e.source {
			out[n-1].End = e.va + e.size
			continue
		}
		out = append(out, Range{Start: e.va, End: e.va + e.size, Source: e.source})
	}
	return out
}
