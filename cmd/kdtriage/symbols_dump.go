package main

import (
	"bufio"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/kdump/minidump"
	"github.com/kdtriage/kdtriage/symbols"
)

const symbolsLookupLong = `Resolve addresses against the modules of a crash dump.

For each address, find the loaded module that holds it in the dump's module
list, fetch that module's symbols through the symbol path (the image by its
TimeDateStamp and SizeOfImage, then the PDB its CodeView record names; for
user-mode dumps the PDB or Breakpad file by the module's debug identity)
and print module!function+0xoff, with (file:line) when the symbols have
line records. Without symbols the answer is module+0xoff; an address in an
unloaded driver is Unloaded_NAME+0xoff.

The symbol path comes from --symbol-path, the config key symbols.path
(KDTRIAGE_SYMBOLS_PATH) or _NT_SYMBOL_PATH; see 'kdtriage symbols path'.
Addresses are hex, with or without 0x (WinDbg's ` + "`" + ` separator is accepted).`

// symbolsDumpResolveCommand implements `kdtriage symbols lookup DUMP ADDR...`.
func (a *app) symbolsDumpResolveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lookup DUMP ADDR...",
		Short: "Resolve addresses against a dump's modules through the symbol path",
		Long:  symbolsLookupLong,
		Example: `  kdtriage symbols lookup --symbol-path 'srv*C:\sym*https://msdl.microsoft.com/download/symbols' MEMORY.DMP fffff8047bdf5a80
  kdtriage symbols lookup --format json 112117-27671-01.dmp 0xfffff80412341000`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return fmt.Errorf("symbols lookup: give a dump file and one or more addresses (see %q)", cmd.CommandPath()+" --help")
			}
			return nil
		},
		RunE: a.runSymbolsLookup,
	}
	f := cmd.Flags()
	f.String("format", formatText, "output format: text or json")
	f.Bool("raw-names", false, "print decorated names as stored")
	addSymbolFlags(cmd)
	return cmd
}

// lookupJSON is one element of `symbols lookup --format json`.
type lookupJSON struct {
	Address hexU64 `json:"address"`
	Symbol  string `json:"symbol"`
	// Where is "module", "unloaded_module" or "no_module".
	Where      string  `json:"where"`
	Module     string  `json:"module,omitempty"`
	Image      string  `json:"image,omitempty"`
	ModuleBase *hexU64 `json:"module_base,omitempty"`
	Function   string  `json:"function,omitempty"`
	Offset     hexU64  `json:"offset"`
	File       string  `json:"file,omitempty"`
	Line       uint32  `json:"line,omitempty"`
	Source     string  `json:"source,omitempty"`
}

func (a *app) runSymbolsLookup(cmd *cobra.Command, args []string) error {
	fl := cmd.Flags()
	format, _ := fl.GetString("format")
	raw, _ := fl.GetBool("raw-names")
	if err := checkFormat(format, formatText, formatJSON); err != nil {
		return err
	}
	addrs := make([]uint64, len(args)-1)
	for i, s := range args[1:] {
		v, err := parseHexAddr(s)
		if err != nil {
			return err
		}
		addrs[i] = v
	}
	// The dump first: a wrong file name is the likelier mistake, and it
	// should not hide behind symbol path warnings.
	if st, err := os.Stat(args[0]); err == nil && st.IsDir() {
		return &exitError{code: exitBadDump, err: fmt.Errorf("%s: is a directory: give one dump file", args[0])}
	}
	d, err := kdump.OpenAny(args[0])
	if err != nil {
		return &exitError{code: exitBadDump, err: fmt.Errorf("%s: %w", args[0], pathErr(err))}
	}
	defer d.Close()

	text, src := a.effectiveSymbolPath(cmd)
	p, err := symbols.ParsePath(text)
	if err != nil {
		return fmt.Errorf("symbol path from %v: %w", src, err)
	}
	var store symbols.Store
	warnMissingSymbolDirs(a.log, p)
	if len(p.Elements) > 0 {
		chain, err := symbols.NewChain(p, a.symbolStoreOptions(cmd))
		if err != nil {
			return fmt.Errorf("symbol path: %w", err)
		}
		store = chain
	} else {
		a.log.Warn().Msg("no symbol path (--symbol-path, symbols.path, _NT_SYMBOL_PATH): addresses are named module+offset")
	}

	mods, err := d.Modules()
	if err != nil {
		if len(mods) == 0 {
			return &exitError{code: exitBadDump, err: fmt.Errorf("%s: module list: %w", args[0], err)}
		}
		a.log.Warn().Err(err).Msg("module list read in part")
	}
	ids := dumpModuleIDs(d, mods)
	var unloaded []kdump.UnloadedModule
	if f, ok := d.(*kdump.File); ok {
		unloaded, _ = f.UnloadedModules()
	}

	s := symbols.NewSymbolizer(symbols.SymbolizerOptions{Store: store, Log: a.log, RawNames: raw})
	ctx := cmd.Context()
	w := bufio.NewWriter(a.stdout)
	out := []lookupJSON{}
	warned := map[int]bool{}
	for i, addr := range addrs {
		r := lookupJSON{Address: hexU64(addr), Where: "no_module", Offset: hexU64(addr)}
		if idx := moduleAt(mods, addr); idx >= 0 {
			m := &mods[idx]
			id := ids[idx]
			ms, err := s.Module(ctx, id)
			if err != nil {
				return err
			}
			if !warned[idx] {
				warned[idx] = true
				for _, e := range ms.Errs {
					a.log.Warn().Err(e).Str("module", m.Name).Msg("symbols")
				}
			}
			sym, err := s.Symbolize(ctx, id, addr-m.Base)
			if err != nil {
				return err
			}
			base := hexU64(m.Base)
			r = lookupJSON{Address: hexU64(addr), Symbol: sym.String(), Where: "module", Module: sym.Module, Image: m.Name,
				ModuleBase: &base, Function: sym.Function, Offset: hexU64(sym.Offset), File: sym.File, Line: sym.Line, Source: string(sym.Source)}
		} else if u := unloadedAt(unloaded, addr); u != nil {
			r.Where, r.Image, r.Offset = "unloaded_module", u.Name, hexU64(addr-u.Start)
			r.Symbol = fmt.Sprintf("Unloaded_%s+%#x", u.Name, addr-u.Start)
		} else {
			r.Symbol = fmt.Sprintf("%#x (in no loaded module)", addr)
		}
		if format == formatJSON {
			out = append(out, r)
			continue
		}
		line := r.Symbol
		if r.File != "" {
			line += fmt.Sprintf(" (%s:%d)", r.File, r.Line)
		}
		fmt.Fprintf(w, "%s\t%s\n", args[i+1], line)
	}
	if format == formatJSON {
		b, err := marshalNoEscape(out)
		if err != nil {
			return err
		}
		w.Write(b)
		w.WriteString("\n")
	}
	return w.Flush()
}

// dumpModuleIDs returns the symbol identity of each module: name, base,
// size and timestamp, plus the CodeView and Breakpad identity a user-mode
// dump records.
func dumpModuleIDs(d kdump.Dump, mods []kdump.Module) []symbols.ModuleID {
	var md []minidump.Module
	if ud, ok := d.(*kdump.UserDump); ok && ud.Minidump() != nil {
		md, _ = ud.Minidump().Modules()
	}
	ids := make([]symbols.ModuleID, len(mods))
	for i, m := range mods {
		name := m.Path
		if name == "" {
			name = m.Name
		}
		id := symbols.ModuleID{Name: name, Base: m.Base, Size: m.Size, TimeDateStamp: m.TimeDateStamp}
		if len(md) == len(mods) && md[i].Base == m.Base {
			mm := &md[i]
			id.DebugFile, id.DebugID, id.CodeID = mm.DebugFile(), mm.DebugID(), mm.CodeID()
			if cv := mm.CodeView; cv != nil {
				switch cv.Signature {
				case minidump.CVSignatureRSDS:
					id.PDBName, id.PDBAge = cv.PDBName, cv.Age
					id.PDBGUID = symbols.GUID{Data1: cv.GUID.Data1, Data2: cv.GUID.Data2, Data3: cv.GUID.Data3, Data4: cv.GUID.Data4}
				case minidump.CVSignatureNB10:
					id.PDBName, id.PDBAge, id.PDBSignature = cv.PDBName, cv.Age, cv.Timestamp
				}
			}
		}
		ids[i] = id
	}
	return ids
}

// moduleAt returns the index of the module holding addr, or -1.
func moduleAt(mods []kdump.Module, addr uint64) int {
	for i := range mods {
		if mods[i].Contains(addr) {
			return i
		}
	}
	return -1
}

// unloadedAt returns the unloaded driver whose range holds addr.
func unloadedAt(us []kdump.UnloadedModule, addr uint64) *kdump.UnloadedModule {
	for i := range us {
		if us[i].Contains(addr) {
			return &us[i]
		}
	}
	return nil
}
