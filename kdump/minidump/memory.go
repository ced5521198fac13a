package minidump

import (
	"io"
	"slices"
	"sort"
)

// MemoryRange maps the process addresses [Start, Start+Size) to the file
// bytes at Offset.
type MemoryRange struct {
	Start  uint64
	Size   uint64
	Offset int64
}

// End returns the first address past the range.
func (r MemoryRange) End() uint64 { return r.Start + r.Size }

// MemoryList returns the MemoryListStream descriptors as stored.
func (f *File) MemoryList() ([]MemoryDescriptor, error) {
	return f.memList.get(func() ([]MemoryDescriptor, error) {
		b, off, err := f.streamBytes(MemoryListStream)
		if err != nil {
			return nil, err
		}
		n, start, err := listHeader(b, off, "memory list", 16)
		if err != nil {
			return nil, err
		}
		out := make([]MemoryDescriptor, n)
		for i := range out {
			out[i] = parseMemDesc(b[start+16*i:])
		}
		return out, nil
	})
}

// Memory64List returns the Memory64ListStream ranges with their file
// offsets (BaseRva plus the sizes of the ranges before each).
func (f *File) Memory64List() ([]MemoryRange, error) {
	return f.mem64.get(func() ([]MemoryRange, error) {
		b, off, err := f.streamBytes(Memory64ListStream)
		if err != nil {
			return nil, err
		}
		const what = "memory64 list"
		if len(b) < 16 {
			return nil, formatErr(off, what, ErrTruncated, "stream of %d bytes is shorter than its header", len(b))
		}
		n := le.Uint64(b)
		base := le.Uint64(b[8:])
		if n > maxListEntries {
			return nil, formatErr(off, what, ErrTooLarge, "%d ranges", n)
		}
		if 16+n*16 > uint64(len(b)) {
			return nil, formatErr(off, what, ErrTruncated, "%d ranges need %#x bytes, stream has %#x", n, 16+n*16, len(b))
		}
		out := make([]MemoryRange, n)
		rva := base
		for i := range out {
			e := b[16+16*i:]
			start, size := le.Uint64(e), le.Uint64(e[8:])
			if rva > uint64(f.size) || size > uint64(f.size)-rva {
				return out[:i], formatErr(off+16+16*int64(i), what, ErrTruncated,
					"range %d (%#x bytes at file offset %#x) runs past the end of the file (%#x bytes)", i, size, rva, f.size)
			}
			out[i] = MemoryRange{Start: start, Size: size, Offset: int64(rva)}
			rva += size
		}
		return out, nil
	})
}

// Memory is the process address space a minidump stores: the ranges of
// MemoryListStream and Memory64ListStream, sorted, with overlaps resolved
// in favour of the range that starts first.
type Memory struct {
	r      io.ReaderAt
	ranges []MemoryRange // sorted by Start, non-overlapping
	// Problems lists ranges that were dropped (outside the file).
	Problems []error
}

// Memory returns the dump's address space. Ranges whose bytes lie outside
// the file are left out and listed in Memory.Problems; a missing or
// malformed memory list stream is a problem too, not an error, as long as
// the other list gave something. The error is non-nil only when no range
// could be read at all and a list stream was present but broken.
func (f *File) Memory() (*Memory, error) {
	return f.memory.get(f.buildMemory)
}

func (f *File) buildMemory() (*Memory, error) {
	m := &Memory{r: f.r}
	var firstErr error
	if f.HasStream(MemoryListStream) {
		l, err := f.MemoryList()
		if err != nil {
			m.Problems = append(m.Problems, err)
			firstErr = err
		}
		for i, d := range l {
			if int64(d.Rva)+int64(d.DataSize) > f.size {
				m.Problems = append(m.Problems, formatErr(int64(d.Rva), "memory list", ErrTruncated,
					"range %d [%#x, +%#x) at %#x runs past the end of the file", i, d.Start, d.DataSize, d.Rva))
				continue
			}
			if d.DataSize > 0 {
				m.ranges = append(m.ranges, MemoryRange{Start: d.Start, Size: uint64(d.DataSize), Offset: int64(d.Rva)})
			}
		}
	}
	if f.HasStream(Memory64ListStream) {
		l, err := f.Memory64List()
		if err != nil {
			m.Problems = append(m.Problems, err)
			if firstErr == nil {
				firstErr = err
			}
		}
		for _, r := range l {
			if r.Size > 0 {
				m.ranges = append(m.ranges, r)
			}
		}
	}
	// Drop ranges that wrap around the address space.
	m.ranges = slices.DeleteFunc(m.ranges, func(r MemoryRange) bool { return r.Start+r.Size < r.Start })
	slices.SortStableFunc(m.ranges, func(a, b MemoryRange) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	// Trim overlaps: keep the earlier range's bytes.
	out := m.ranges[:0]
	for _, r := range m.ranges {
		if n := len(out); n > 0 && r.Start < out[n-1].End() {
			prevEnd := out[n-1].End()
			if r.End() <= prevEnd {
				continue
			}
			cut := prevEnd - r.Start
			r.Start += cut
			r.Size -= cut
			r.Offset += int64(cut)
		}
		out = append(out, r)
	}
	m.ranges = out
	if len(m.ranges) == 0 && firstErr != nil {
		return m, firstErr
	}
	return m, nil
}

// Ranges returns the sorted, non-overlapping ranges.
func (m *Memory) Ranges() []MemoryRange { return m.ranges }

// find returns the index of the range containing addr, or -1.
func (m *Memory) find(addr uint64) int {
	i := sort.Search(len(m.ranges), func(i int) bool { return m.ranges[i].End() > addr })
	if i < len(m.ranges) && m.ranges[i].Start <= addr {
		return i
	}
	return -1
}

// Contains reports whether the byte at addr is stored.
func (m *Memory) Contains(addr uint64) bool { return m != nil && m.find(addr) >= 0 }

// ReadVirtual reads len(p) bytes at process address addr. A read may span
// adjacent ranges. When n < len(p), err is a *MemoryError for the first
// address that could not be read (wrapping ErrNotPresent, or a *FormatError
// if the file is short).
func (m *Memory) ReadVirtual(p []byte, addr uint64) (int, error) {
	done := 0
	for done < len(p) {
		a := addr + uint64(done)
		if a < addr {
			return done, &MemoryError{Addr: a, Err: ErrNotPresent}
		}
		i := -1
		if m != nil {
			i = m.find(a)
		}
		if i < 0 {
			return done, &MemoryError{Addr: a, Err: ErrNotPresent}
		}
		r := m.ranges[i]
		inner := a - r.Start
		n := min(uint64(len(p)-done), r.Size-inner)
		got, err := m.r.ReadAt(p[done:done+int(n)], r.Offset+int64(inner))
		done += got
		if got < int(n) {
			return done, &MemoryError{Addr: addr + uint64(done), Err: formatErr(r.Offset+int64(inner)+int64(got), "memory range", ErrTruncated, "short read (%v)", err)}
		}
	}
	return done, nil
}
