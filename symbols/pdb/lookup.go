package pdb

import (
	"fmt"
	"sort"
)

// lookupTable is the sorted address table behind Lookup, built once.
type lookupTable struct {
	procs   []tableEntry // procedures with extents, sorted by start
	publics []tableEntry // publics with an RVA, sorted by start
	sects   []Section    // section ranges (final layout) for the same-section check
}

type tableEntry struct {
	start, size uint32
	name        string
}

// Lookup names the function containing rva. A procedure symbol whose extent
// covers rva wins; otherwise the nearest public symbol at or below rva in the
// same section is used. off is rva minus the symbol's start. The table is
// built on the first call (reading the symbol and module streams once);
// after that, Lookup needs no file access and keeps working after Close.
func (f *File) Lookup(rva uint32) (name string, off uint32, ok bool) {
	r, ok := f.Find(rva)
	return r.Name, r.Offset, ok
}

// Match is the result of Find.
type Match struct {
	Name   string // procedure name (undecorated) or public name (decorated)
	Start  uint32 // RVA of the symbol
	Size   uint32 // procedure length; 0 for publics
	Offset uint32 // the looked-up RVA minus Start
	Public bool   // the name comes from an S_PUB32 record
}

// Find is Lookup with details about the symbol found.
func (f *File) Find(rva uint32) (Match, bool) {
	t, _ := f.lookupTable()
	if t == nil {
		return Match{}, false
	}
	return t.lookup(rva)
}

// LookupErr returns the error, if any, met while building the lookup table.
// Lookup still answers from whatever could be read.
func (f *File) LookupErr() error {
	_, err := f.lookupTable()
	return err
}

func (f *File) lookupTable() (*lookupTable, error) {
	f.tableOnce.Do(func() {
		t := &lookupTable{}
		procs, perr := f.Procs()
		var tramps []Proc
		for _, p := range procs {
			if !p.HasRVA || p.Length == 0 {
				continue
			}
			if p.Kind == SymTrampoline {
				tramps = append(tramps, p)
				continue
			}
			t.procs = append(t.procs, tableEntry{p.RVA, p.Length, p.Name})
		}
		pubs, err := f.Publics()
		for _, p := range pubs {
			if p.HasRVA {
				t.publics = append(t.publics, tableEntry{p.RVA, 0, p.Name})
			}
		}
		sort.SliceStable(t.procs, func(i, j int) bool { return t.procs[i].start < t.procs[j].start })
		sort.SliceStable(t.publics, func(i, j int) bool { return t.publics[i].start < t.publics[j].start })
		t.sects = f.finalSections()
		// Incremental-linking thunks are named after their targets, as
		// debuggers show them: ILT+<offset>(<target>).
		var extra []tableEntry
		for _, p := range tramps {
			target := "?"
			if rva, ok := f.SectionOffsetToRVA(p.TargetSection, p.TargetOffset); ok {
				if m, ok := t.lookup(rva); ok && m.Offset == 0 {
					target = m.Name
				}
			}
			extra = append(extra, tableEntry{p.RVA, p.Length, fmt.Sprintf("ILT+%d(%s)", p.Offset, target)})
		}
		if len(extra) > 0 {
			t.procs = append(t.procs, extra...)
			sort.SliceStable(t.procs, func(i, j int) bool { return t.procs[i].start < t.procs[j].start })
		}
		if err == nil {
			err = perr
		}
		f.table, f.tableErr = t, err
	})
	return f.table, f.tableErr
}

// finalSections returns the section ranges in the image's final layout. With
// OMAP the PDB's (original) headers do not describe the image, so the check
// is skipped (nil).
func (f *File) finalSections() []Section {
	if f.omap != nil {
		return nil
	}
	return f.sections
}

// upper returns the index of the last entry with start <= rva, or -1.
func upper(es []tableEntry, rva uint32) int {
	return sort.Search(len(es), func(i int) bool { return es[i].start > rva }) - 1
}

func (t *lookupTable) lookup(rva uint32) (Match, bool) {
	if i := upper(t.procs, rva); i >= 0 {
		e := t.procs[i]
		if rva-e.start < e.size {
			return Match{Name: e.name, Start: e.start, Size: e.size, Offset: rva - e.start}, true
		}
	}
	i := upper(t.publics, rva)
	if i < 0 {
		return Match{}, false
	}
	e := t.publics[i]
	// A proc that ends between the public and rva is a better bound: the
	// address lies past a known function, so the public does not describe it.
	if j := upper(t.procs, rva); j >= 0 {
		p := t.procs[j]
		if p.start >= e.start && p.start+p.size <= rva {
			return Match{}, false
		}
	}
	if t.sects != nil && !sameSection(t.sects, e.start, rva) {
		return Match{}, false
	}
	return Match{Name: e.name, Start: e.start, Offset: rva - e.start, Public: true}, true
}

func sameSection(ss []Section, a, b uint32) bool {
	for _, s := range ss {
		size := max(s.VirtualSize, 1)
		if a >= s.VirtualAddress && a-s.VirtualAddress < size {
			return b >= s.VirtualAddress && b-s.VirtualAddress < size
		}
	}
	return false
}
