package triage

import (
	"context"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/symbols"
)

// symbolsAdapter makes a *symbols.Symbolizer a Symbolizer.
type symbolsAdapter struct{ s *symbols.Symbolizer }

// FromSymbols returns a Symbolizer backed by the symbols package: PDBs,
// Breakpad files and image exports found through a symbol path. A nil s
// gives a nil Symbolizer (module+offset names).
func FromSymbols(s *symbols.Symbolizer) Symbolizer {
	if s == nil {
		return nil
	}
	return symbolsAdapter{s}
}

// Symbolize implements Symbolizer.
func (a symbolsAdapter) Symbolize(ctx context.Context, m kdump.Module, rva uint64) (string, uint64, bool) {
	name := m.Path
	if name == "" {
		name = m.Name
	}
	sym, err := a.s.Symbolize(ctx, symbols.ModuleID{Name: name, Base: m.Base, Size: m.Size, TimeDateStamp: m.TimeDateStamp}, rva)
	if err != nil || sym.Function == "" {
		return "", 0, false
	}
	return sym.Function, sym.Offset, true
}
