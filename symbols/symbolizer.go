package symbols

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"github.com/kdtriage/kdtriage/symbols/breakpad"
	"github.com/kdtriage/kdtriage/symbols/pdb"
	"github.com/kdtriage/kdtriage/symbols/pe"
)

// SymbolSource says where a Symbol's name came from.
type SymbolSource string

// Symbol sources.
const (
	SymbolSourcePDB      SymbolSource = "pdb"      // a PDB's procedure or public symbols
	SymbolSourceBreakpad SymbolSource = "breakpad" // a Breakpad .sym file
	SymbolSourceExport   SymbolSource = "export"   // the image's export table
	SymbolSourceNone     SymbolSource = "none"     // no symbols: module+offset
)

// String returns the source's name.
func (s SymbolSource) String() string { return string(s) }

// Symbol is an address resolved against a module's symbols.
type Symbol struct {
	Module   string // debugger module name (nt, amdppm, test_app)
	Function string // function name; empty when unknown
	Offset   uint64 // from the function's start, or from the module base when Function is empty
	File     string // source file, when known
	Line     uint32 // source line, when File is set
	// LineOffset is the distance from the start of the line's code
	// (Breakpad prints "file.cc : 58 + 0x3").
	LineOffset uint64
	Source     SymbolSource
}

// String formats the symbol the way debuggers do: module!function+0xoff
// (no "+0x0" at a function's start) or module+0xoff without symbols.
func (s Symbol) String() string {
	var b strings.Builder
	b.WriteString(s.Module)
	if s.Function != "" {
		b.WriteByte('!')
		b.WriteString(s.Function)
		if s.Offset != 0 {
			fmt.Fprintf(&b, "+%#x", s.Offset)
		}
		return b.String()
	}
	fmt.Fprintf(&b, "+%#x", s.Offset)
	return b.String()
}

// SymbolizerOptions configures a Symbolizer.
type SymbolizerOptions struct {
	// Store supplies PDBs, Breakpad .sym files and PE images. nil: only
	// images given in ModuleID.Image are used (exports), else module+offset.
	Store Store
	// Log receives debug messages about symbol loading.
	Log zerolog.Logger
	// MaxModules bounds the number of modules whose parsed symbols are
	// kept (least recently used are dropped). 0: DefaultMaxModules.
	MaxModules int
	// RawNames keeps decorated names (?f@C@@QEAAXXZ, _f@4) instead of
	// undecorating them.
	RawNames bool
}

// DefaultMaxModules is the default capacity of a Symbolizer's module cache.
const DefaultMaxModules = 64

// Symbolizer resolves module-relative addresses to names. It fetches each
// module's symbols once (PDB by PDB key, else Breakpad .sym, else the PE
// image's CodeView record leading to the PDB, and its exports), keeps the
// parsed result in a bounded LRU cache, and is safe for concurrent use:
// concurrent requests for one module share a single load.
type Symbolizer struct {
	opts SymbolizerOptions

	mu      sync.Mutex
	entries map[moduleKey]*list.Element // of *cacheEntry
	lru     *list.List                  // front = most recently used
}

type cacheEntry struct {
	key   moduleKey
	ready chan struct{}
	ms    *ModuleSymbols
	err   error
}

// NewSymbolizer returns a Symbolizer over opts.Store.
func NewSymbolizer(opts SymbolizerOptions) *Symbolizer {
	if opts.MaxModules <= 0 {
		opts.MaxModules = DefaultMaxModules
	}
	return &Symbolizer{opts: opts, entries: map[moduleKey]*list.Element{}, lru: list.New()}
}

// ModuleSymbols is what a Symbolizer loaded for one module. Its contents are
// read-only.
type ModuleSymbols struct {
	// Source is the best symbol source found (SymbolSourceNone if none).
	Source SymbolSource
	// PDBPath is the local PDB used, "" if none.
	PDBPath string
	// Breakpad is the parsed .sym file, nil if none. Stack walkers use its
	// CFI and STACK WIN records.
	Breakpad *breakpad.File
	// CodeView is the image's debug record, when an image was read.
	CodeView *pe.CodeView
	// ImagePath is the local copy of the PE image fetched from the store,
	// "" if none was fetched.
	ImagePath string
	// Errs lists problems other than plain misses (corrupt files, identity
	// mismatches, store failures).
	Errs []error

	pdb      *pdb.File // lookup table built; the file itself is closed
	pdbX86   bool
	exports  []exportSym
	sections []pe.Section
}

type exportSym struct {
	rva  uint32
	name string
}

// errLoadPanicked marks a cache entry whose load panicked.
var errLoadPanicked = errors.New("symbols: loading the module's symbols panicked")

// Module returns the symbols of m, loading them on first use. The error is
// non-nil only when ctx ends; missing or broken symbols are reported in
// ModuleSymbols.Errs and give Source == SymbolSourceNone.
func (s *Symbolizer) Module(ctx context.Context, m ModuleID) (*ModuleSymbols, error) {
	key := m.cacheKey()
	for {
		s.mu.Lock()
		if el, ok := s.entries[key]; ok {
			s.lru.MoveToFront(el)
			e := el.Value.(*cacheEntry)
			s.mu.Unlock()
			select {
			case <-e.ready:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if e.err != nil {
				// The loader's context ended (or its load panicked); load
				// again with ours.
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				continue
			}
			return e.ms, nil
		}
		e := &cacheEntry{key: key, ready: make(chan struct{})}
		s.entries[key] = s.lru.PushFront(e)
		for s.lru.Len() > s.opts.MaxModules {
			old := s.lru.Back()
			s.lru.Remove(old)
			delete(s.entries, old.Value.(*cacheEntry).key)
		}
		s.mu.Unlock()

		// errLoadPanicked stands if load panics (a parser bug on a hostile
		// file): the entry is then dropped and its waiters load again,
		// instead of waiting for ever on an entry that never gets ready.
		e.err = errLoadPanicked
		func() {
			defer func() {
				if e.err != nil {
					s.mu.Lock()
					if el, ok := s.entries[key]; ok && el.Value == e {
						s.lru.Remove(el)
						delete(s.entries, key)
					}
					s.mu.Unlock()
				}
				close(e.ready)
			}()
			e.ms, e.err = s.load(ctx, m)
		}()
		return e.ms, e.err
	}
}

// Symbolize resolves rva (an offset from m's base) to a symbol. Missing
// symbols are not an error: the result is then module+offset with Source
// SymbolSourceNone. The error is non-nil only when ctx ends.
func (s *Symbolizer) Symbolize(ctx context.Context, m ModuleID, rva uint64) (Symbol, error) {
	sym := Symbol{Module: m.ShortName(), Offset: rva, Source: SymbolSourceNone}
	ms, err := s.Module(ctx, m)
	if err != nil {
		return sym, err
	}
	return ms.resolve(sym, m, rva, s.opts.RawNames), nil
}

// SymbolizeAddress finds the module of mods containing addr and resolves
// the address in it. Without a module the result has an empty Module and
// the absolute address as Offset.
func (s *Symbolizer) SymbolizeAddress(ctx context.Context, mods []ModuleID, addr uint64) (Symbol, error) {
	m, ok := FindModule(mods, addr)
	if !ok {
		return Symbol{Offset: addr, Source: SymbolSourceNone}, nil
	}
	return s.Symbolize(ctx, m, addr-m.Base)
}

func (ms *ModuleSymbols) resolve(sym Symbol, m ModuleID, rva uint64, raw bool) Symbol {
	if ms.pdb != nil && rva <= 0xFFFFFFFF {
		if r, ok := ms.pdb.Find(uint32(rva)); ok {
			name := r.Name // procedure names are already undecorated
			if r.Public {
				name = ms.display(name, raw)
			}
			sym.Function, sym.Offset, sym.Source = name, uint64(r.Offset), SymbolSourcePDB
			if li, ok := ms.pdb.LineAt(uint32(rva)); ok && li.File != "" {
				sym.File, sym.Line, sym.LineOffset = li.File, li.Line, rva-uint64(li.Start)
			}
			return sym
		}
	}
	if bp := ms.Breakpad; bp != nil && (m.Size == 0 || rva < uint64(m.Size)) {
		if loc, ok := bp.Lookup(rva); ok {
			sym.Function, sym.Offset, sym.Source = loc.Function, rva-loc.Base, SymbolSourceBreakpad
			if loc.HasLine && loc.File != "" {
				sym.File, sym.Line, sym.LineOffset = loc.File, loc.Line, rva-loc.LineBase
			}
			return sym
		}
	}
	if len(ms.exports) > 0 && rva <= 0xFFFFFFFF {
		r := uint32(rva)
		i := sort.Search(len(ms.exports), func(i int) bool { return ms.exports[i].rva > r }) - 1
		if i >= 0 && sameSection(ms.sections, ms.exports[i].rva, r) {
			e := ms.exports[i]
			sym.Function, sym.Offset, sym.Source = ms.display(e.name, raw), uint64(r-e.rva), SymbolSourceExport
			return sym
		}
	}
	return sym
}

func (ms *ModuleSymbols) display(name string, raw bool) string {
	if raw {
		return name
	}
	if ms.pdbX86 {
		return pdb.UndecorateX86(name)
	}
	return pdb.Undecorate(name)
}

func sameSection(ss []pe.Section, a, b uint32) bool {
	for i := range ss {
		if ss[i].Contains(a) {
			return ss[i].Contains(b)
		}
	}
	return false
}

// load fetches and parses m's symbols. Only context errors are returned.
func (s *Symbolizer) load(ctx context.Context, m ModuleID) (*ModuleSymbols, error) {
	ms := &ModuleSymbols{Source: SymbolSourceNone}
	log := s.opts.Log.With().Str("module", m.FileName()).Logger()

	if err := s.loadPDB(ctx, ms, m, log); err != nil {
		return nil, err
	}
	if ms.pdb == nil {
		if err := s.loadBreakpad(ctx, ms, m, log); err != nil {
			return nil, err
		}
	}
	if ms.pdb == nil && ms.Breakpad == nil {
		// The image gives the PDB identity (kernel dumps carry no
		// CodeView records) and, failing that, its exports.
		if err := s.loadImage(ctx, ms, m, log); err != nil {
			return nil, err
		}
	}
	switch {
	case ms.pdb != nil:
		ms.Source = SymbolSourcePDB
	case ms.Breakpad != nil:
		ms.Source = SymbolSourceBreakpad
	case len(ms.exports) > 0:
		ms.Source = SymbolSourceExport
	}
	log.Debug().Str("source", string(ms.Source)).Int("problems", len(ms.Errs)).Msg("module symbols loaded")
	return ms, nil
}

// fetch asks the store for k. A miss gives "", nil; other failures are
// recorded in ms.Errs; only context errors are returned.
func (s *Symbolizer) fetch(ctx context.Context, ms *ModuleSymbols, k Key, log zerolog.Logger) (string, error) {
	if s.opts.Store == nil {
		return "", nil
	}
	path, err := s.opts.Store.Fetch(ctx, k)
	if err == nil {
		return path, nil
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	if errors.Is(err, ErrNotFound) {
		log.Debug().Str("key", k.String()).Msg("symbol file not found")
		// A plain miss is not a problem; a miss behind which a server
		// failed (NotFoundError.Errs) is reported.
		var nf *NotFoundError
		if !errors.As(err, &nf) || len(nf.Errs) == 0 {
			return "", nil
		}
	}
	ms.Errs = append(ms.Errs, err)
	return "", nil
}

func (s *Symbolizer) loadPDB(ctx context.Context, ms *ModuleSymbols, m ModuleID, log zerolog.Logger) error {
	k, ok := m.PDBKey()
	if !ok {
		return nil
	}
	path, err := s.fetch(ctx, ms, k, log)
	if err != nil || path == "" {
		return err
	}
	f, err := pdb.Open(path)
	if err != nil {
		ms.Errs = append(ms.Errs, fmt.Errorf("%s: %w", k, err))
		return nil
	}
	defer f.Close()
	if !m.PDBGUID.IsZero() && f.GUID() != pdb.GUID(m.PDBGUID.Bytes()) {
		ms.Errs = append(ms.Errs, fmt.Errorf("%s: PDB GUID %v does not match the module's %v", k, f.GUID(), m.PDBGUID))
		return nil
	}
	if f.Age() != m.PDBAge {
		log.Debug().Uint32("pdb_age", f.Age()).Uint32("module_age", m.PDBAge).Msg("PDB age differs from the module's")
	}
	// Build the lookup and line tables now: lookups then need no file
	// access, so the file can be closed.
	if err := f.LookupErr(); err != nil {
		ms.Errs = append(ms.Errs, fmt.Errorf("%s: %w", k, err))
	}
	f.LineAt(0)
	ms.pdb, ms.pdbX86, ms.PDBPath = f, f.Machine() == pdb.MachineI386, path
	return nil
}

func (s *Symbolizer) loadBreakpad(ctx context.Context, ms *ModuleSymbols, m ModuleID, log zerolog.Logger) error {
	k, ok := m.BreakpadKey()
	if !ok {
		return nil
	}
	path, err := s.fetch(ctx, ms, k, log)
	if err != nil || path == "" {
		return err
	}
	f, err := breakpad.Open(path)
	if err != nil {
		ms.Errs = append(ms.Errs, fmt.Errorf("%s: %w", k, err))
		return nil
	}
	if !strings.EqualFold(f.Module.ID, m.BreakpadDebugID()) {
		ms.Errs = append(ms.Errs, fmt.Errorf("%s: MODULE id %s does not match the module's %s", k, f.Module.ID, m.BreakpadDebugID()))
		return nil
	}
	ms.Breakpad = f
	return nil
}

func (s *Symbolizer) loadImage(ctx context.Context, ms *ModuleSymbols, m ModuleID, log zerolog.Logger) error {
	img := m.Image
	if img == nil {
		k, ok := m.ImageKey()
		if !ok {
			return nil
		}
		path, err := s.fetch(ctx, ms, k, log)
		if err != nil || path == "" {
			return err
		}
		f, err := pe.Open(path)
		if err != nil {
			ms.Errs = append(ms.Errs, fmt.Errorf("%s: %w", k, err))
			return nil
		}
		defer f.Close()
		if f.TimeDateStamp != m.TimeDateStamp || f.OptionalHeader.SizeOfImage != m.Size {
			ms.Errs = append(ms.Errs, fmt.Errorf("%s: image TimeDateStamp %08X, SizeOfImage %#x do not match the module", k, f.TimeDateStamp, f.OptionalHeader.SizeOfImage))
			return nil
		}
		img, ms.ImagePath = f, path
	}
	if cv, err := img.CodeView(); err == nil {
		ms.CodeView = cv
		if !m.HasPDB() {
			withPDB := m
			withPDB.PDBName, withPDB.PDBAge = cv.PDBName(), cv.Age
			if cv.Signature == pe.CodeViewRSDS {
				g, _ := GUIDFromBytes(cv.GUID[:])
				withPDB.PDBGUID = g
			} else {
				withPDB.PDBSignature = cv.NB10Sig
			}
			if err := s.loadPDB(ctx, ms, withPDB, log); err != nil {
				return err
			}
			if ms.pdb == nil {
				if err := s.loadBreakpad(ctx, ms, withPDB, log); err != nil {
					return err
				}
			}
		}
	}
	if ms.pdb != nil || ms.Breakpad != nil {
		return nil
	}
	ex, err := img.Exports()
	if err != nil {
		if !errors.Is(err, pe.ErrNotPresent) {
			ms.Errs = append(ms.Errs, err)
		}
		return nil
	}
	for _, e := range ex.List {
		if e.Forwarder != "" || e.RVA == 0 {
			continue
		}
		name := e.Name
		if name == "" {
			name = fmt.Sprintf("#%d", e.Ordinal)
		}
		ms.exports = append(ms.exports, exportSym{e.RVA, name})
	}
	sort.SliceStable(ms.exports, func(i, j int) bool { return ms.exports[i].rva < ms.exports[j].rva })
	ms.sections = append([]pe.Section(nil), img.Sections...)
	return nil
}
