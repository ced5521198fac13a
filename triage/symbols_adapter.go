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
	sym, ok := a.SymbolizeSource(ctx, m, rva)
	return sym.Function, sym.Offset, ok
}

// SymbolizeSource implements SourceSymbolizer: the function, and the source
// file and line when the PDB (or Breakpad file) has line information.
func (a symbolsAdapter) SymbolizeSource(ctx context.Context, m kdump.Module, rva uint64) (SourceSymbol, bool) {
	sym, err := a.s.Symbolize(ctx, moduleID(&m, nil), rva)
	if err != nil || sym.Function == "" {
		return SourceSymbol{}, false
	}
	out := SourceSymbol{Function: sym.Function, Offset: sym.Offset}
	if sym.File != "" && sym.Line > 0 {
		out.File, out.Line = sym.File, int(sym.Line)
	}
	return out, true
}
