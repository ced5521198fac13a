package stack

import (
	"encoding/binary"
	"fmt"
	"sort"
)

// testMem is a virtual address space made of byte regions.
type testMem struct {
	regions []region // sorted by start
}

type region struct {
	start uint64
	b     []byte
}

func (m *testMem) add(start uint64, b []byte) {
	m.regions = append(m.regions, region{start, b})
	sort.Slice(m.regions, func(i, j int) bool { return m.regions[i].start < m.regions[j].start })
}

func (m *testMem) find(addr uint64) *region {
	i := sort.Search(len(m.regions), func(i int) bool { return m.regions[i].start > addr }) - 1
	if i < 0 {
		return nil
	}
	r := &m.regions[i]
	if addr-r.start < uint64(len(r.b)) {
		return r
	}
	return nil
}

func (m *testMem) ReadVirtual(p []byte, addr uint64) (int, error) {
	done := 0
	for done < len(p) {
		r := m.find(addr + uint64(done))
		if r == nil {
			return done, fmt.Errorf("address %#x not present", addr+uint64(done))
		}
		done += copy(p[done:], r.b[addr+uint64(done)-r.start:])
	}
	return done, nil
}

func (m *testMem) put64(addr, v uint64) {
	r := m.find(addr)
	if r == nil || addr+8-r.start > uint64(len(r.b)) {
		panic(fmt.Sprintf("test stack too small for %#x", addr))
	}
	binary.LittleEndian.PutUint64(r.b[addr-r.start:], v)
}
