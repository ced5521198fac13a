package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kdtriage/kdtriage/symbols"
	"github.com/kdtriage/kdtriage/symbols/breakpad"
	"github.com/kdtriage/kdtriage/symbols/pdb"
	"github.com/kdtriage/kdtriage/symbols/pe"
)

const symbolsPublicsLong = `List the public symbols (S_PUB32 records) of a PDB file.

Each symbol has its section:offset pair and its RVA (computed from the PDB's
section headers, translated through OMAP when the PDB has it). Names are
printed as stored (decorated, e.g. ?Run@Engine@@QEAAXXZ or _main@8) unless
--undecorate is given.

With --format json the output is ONE JSON array of objects
{"name", "section", "offset", "rva"}, rva being a "0x..." string (null when
the section is unknown).`

// symbolsPublicsCommand implements `kdtriage symbols publics FILE.pdb`.
func (a *app) symbolsPublicsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "publics FILE.pdb",
		Short: "List a PDB's public symbols with section:offset and RVA",
		Long:  symbolsPublicsLong,
		Example: `  kdtriage symbols publics ntkrnlmp.pdb
  kdtriage symbols publics --format json --undecorate app.pdb | jq '.[] | select(.name | test("Dispatch"))'`,
		Args: exactArgs("one PDB file"),
		RunE: a.runSymbolsPublics,
	}
	f := cmd.Flags()
	f.String("format", formatText, "output format: text or json")
	f.Bool("undecorate", false, "undecorate MSVC names (?f@C@@... -> C::f, _f@8 -> f)")
	return cmd
}

// publicJSON is one element of `symbols publics --format json`.
type publicJSON struct {
	Name    string  `json:"name"`
	Section uint16  `json:"section"`
	Offset  uint32  `json:"offset"`
	RVA     *hexU64 `json:"rva"`
}

func (a *app) runSymbolsPublics(cmd *cobra.Command, args []string) error {
	format, _ := cmd.Flags().GetString("format")
	if err := checkFormat(format, formatText, formatJSON); err != nil {
		return err
	}
	undecorate, _ := cmd.Flags().GetBool("undecorate")
	f, err := pdb.Open(args[0])
	if err != nil {
		return &exitError{code: exitBadDump, err: fmt.Errorf("%s: %w", args[0], pathErr(err))}
	}
	defer f.Close()
	pubs, err := f.Publics()
	if err != nil {
		return &exitError{code: exitBadDump, err: fmt.Errorf("%s: %w", args[0], pathErr(err))}
	}
	name := func(s string) string {
		switch {
		case !undecorate:
			return s
		case f.Machine() == pdb.MachineI386:
			return pdb.UndecorateX86(s)
		}
		return pdb.Undecorate(s)
	}
	w := bufio.NewWriter(a.stdout)
	if format == formatJSON {
		err = writePublicsJSON(w, pubs, name)
	} else {
		for _, p := range pubs {
			rva := "?"
			if p.HasRVA {
				rva = fmt.Sprintf("0x%08x", p.RVA)
			}
			fmt.Fprintf(w, "%04X:%08X  %-10s  %-16s  %s\n", p.Section, p.Offset, rva, p.Flags, name(p.Name))
		}
	}
	if err != nil {
		return err
	}
	return w.Flush()
}

// writePublicsJSON writes one JSON array, one element per line, without
// HTML escaping (C++ names contain '<', '>' and '&').
func writePublicsJSON(w io.Writer, pubs []pdb.Public, name func(string) string) error {
	if _, err := io.WriteString(w, "["); err != nil {
		return err
	}
	for i, p := range pubs {
		sep := ",\n"
		if i == 0 {
			sep = "\n"
		}
		if _, err := io.WriteString(w, sep); err != nil {
			return err
		}
		j := publicJSON{Name: name(p.Name), Section: p.Section, Offset: p.Offset}
		if p.HasRVA {
			r := hexU64(p.RVA)
			j.RVA = &r
		}
		b, err := marshalNoEscape(j)
		if err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, "\n]\n")
	return err
}

// marshalNoEscape is json.Marshal without HTML escaping.
func marshalNoEscape(v any) ([]byte, error) {
	var sb strings.Builder
	enc := json.NewEncoder(&sb)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return []byte(strings.TrimSuffix(sb.String(), "\n")), nil
}

const symbolsResolveLong = `Resolve addresses against one module's symbols and print
module!function+0xoff, with (file:line) when the symbols have line records.

Symbols come from a PDB (--pdb), a Breakpad .sym file (--sym) or the export
table of a PE image (--image); with --image and no --pdb the image's own
CodeView record only names the PDB, it does not find it. Addresses are hex
(with or without 0x) RVAs, or absolute addresses when --base is given.
Without symbols for an address the answer is module+0xoff.`

// symbolsResolveCommand implements `kdtriage symbols resolve`.
func (a *app) symbolsResolveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "resolve {--pdb F.pdb | --sym F.sym | --image F.dll} ADDR...",
		Short: "Resolve RVAs to module!function+0xoff against a PDB, a Breakpad .sym or an image",
		Long:  symbolsResolveLong,
		Example: `  kdtriage symbols resolve --pdb amdppm.pdb 0x334c
  kdtriage symbols resolve --sym test_app.sym --base 0x400000 0x40429e 0x404200
  kdtriage symbols resolve --image kernel32.dll --pdb kernel32.pdb 16fd7`,
		Args: minOneArg("one or more addresses"),
		RunE: a.runSymbolsResolve,
	}
	f := cmd.Flags()
	f.String("pdb", "", "PDB file")
	f.String("sym", "", "Breakpad .sym file")
	f.String("image", "", "PE image (exports; module name, timestamp and size)")
	f.String("module", "", "module name to print (default: from the image, the PDB or the .sym file)")
	f.String("base", "", "module base: the addresses are absolute (hex)")
	f.String("format", formatText, "output format: text or json")
	f.Bool("raw-names", false, "print decorated names as stored")
	return cmd
}

// fileStore serves the files given on the command line by key.
type fileStore map[string]string

func (s fileStore) Fetch(_ context.Context, k symbols.Key) (string, error) {
	if p, ok := s[k.String()]; ok {
		return p, nil
	}
	return "", &symbols.NotFoundError{Key: k}
}

// resolveJSON is one element of `symbols resolve --format json`.
type resolveJSON struct {
	Address  hexU64 `json:"address"`
	Symbol   string `json:"symbol"`
	Module   string `json:"module"`
	Function string `json:"function,omitempty"`
	Offset   hexU64 `json:"offset"`
	File     string `json:"file,omitempty"`
	Line     uint32 `json:"line,omitempty"`
	Source   string `json:"source"`
}

func (a *app) runSymbolsResolve(cmd *cobra.Command, args []string) error {
	fl := cmd.Flags()
	pdbPath, _ := fl.GetString("pdb")
	symPath, _ := fl.GetString("sym")
	imgPath, _ := fl.GetString("image")
	modName, _ := fl.GetString("module")
	baseS, _ := fl.GetString("base")
	format, _ := fl.GetString("format")
	raw, _ := fl.GetBool("raw-names")
	if err := checkFormat(format, formatText, formatJSON); err != nil {
		return err
	}
	if pdbPath == "" && symPath == "" && imgPath == "" {
		return errors.New("symbols resolve: give --pdb, --sym or --image")
	}
	var base uint64
	if baseS != "" {
		v, err := parseHexAddr(baseS)
		if err != nil {
			return fmt.Errorf("--base: %w", err)
		}
		base = v
	}
	addrs := make([]uint64, len(args))
	for i, s := range args {
		v, err := parseHexAddr(s)
		if err != nil {
			return err
		}
		if v < base {
			return fmt.Errorf("address %s is below --base %s", s, baseS)
		}
		addrs[i] = v - base
	}

	m, store, err := resolveModule(pdbPath, symPath, imgPath)
	if err != nil {
		return &exitError{code: exitBadDump, err: err}
	}
	if modName != "" {
		m.Name = modName
	}
	s := symbols.NewSymbolizer(symbols.SymbolizerOptions{Store: store, Log: a.log, RawNames: raw})
	ms, err := s.Module(cmd.Context(), m)
	if err != nil {
		return err
	}
	for _, e := range ms.Errs {
		a.log.Warn().Err(e).Msg("symbols")
	}
	if len(ms.Errs) > 0 && ms.Source == symbols.SymbolSourceNone {
		return &exitError{code: exitBadDump, err: ms.Errs[0]}
	}
	w := bufio.NewWriter(a.stdout)
	var out []resolveJSON
	for i, rva := range addrs {
		sym, err := s.Symbolize(cmd.Context(), m, rva)
		if err != nil {
			return err
		}
		if format == formatJSON {
			out = append(out, resolveJSON{Address: hexU64(rva + base), Symbol: sym.String(), Module: sym.Module,
				Function: sym.Function, Offset: hexU64(sym.Offset), File: sym.File, Line: sym.Line, Source: string(sym.Source)})
			continue
		}
		line := sym.String()
		if sym.File != "" {
			line += fmt.Sprintf(" (%s:%d)", sym.File, sym.Line)
		}
		fmt.Fprintf(w, "%s\t%s\n", args[i], line)
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

// resolveModule builds the module identity and a store holding exactly the
// files given.
func resolveModule(pdbPath, symPath, imgPath string) (symbols.ModuleID, fileStore, error) {
	var m symbols.ModuleID
	store := fileStore{}
	if imgPath != "" {
		img, err := pe.Open(imgPath)
		if err != nil {
			return m, nil, fmt.Errorf("%s: %w", imgPath, pathErr(err))
		}
		m.Name, m.TimeDateStamp, m.Size = filepath.Base(imgPath), img.TimeDateStamp, img.OptionalHeader.SizeOfImage
		img.Close()
		k, ok := m.ImageKey()
		if !ok {
			return m, nil, fmt.Errorf("%s: no TimeDateStamp or SizeOfImage", imgPath)
		}
		store[k.String()] = imgPath
	}
	if pdbPath != "" {
		f, err := pdb.Open(pdbPath)
		if err != nil {
			return m, nil, fmt.Errorf("%s: %w", pdbPath, pathErr(err))
		}
		g := f.GUID()
		m.PDBName, m.PDBAge = filepath.Base(pdbPath), f.Age()
		m.PDBGUID, _ = symbols.GUIDFromBytes(g[:])
		f.Close()
		if m.Name == "" {
			m.Name = m.PDBName
		}
		k, _ := m.PDBKey()
		store[k.String()] = pdbPath
	}
	if symPath != "" {
		f, err := breakpad.Open(symPath)
		if err != nil {
			return m, nil, fmt.Errorf("%s: %w", symPath, pathErr(err))
		}
		m.DebugFile, m.DebugID = f.Module.Name, f.Module.ID
		if m.Name == "" {
			m.Name = f.CodeFile
			if m.Name == "" {
				m.Name = f.Module.Name
			}
		}
		k, ok := m.BreakpadKey()
		if !ok {
			return m, nil, fmt.Errorf("%s: MODULE record without an id", symPath)
		}
		store[k.String()] = symPath
	}
	return m, store, nil
}

// parseHexAddr parses a hex address with or without 0x (and WinDbg's `
// separator in 64-bit addresses).
func parseHexAddr(s string) (uint64, error) {
	t := strings.ReplaceAll(s, "`", "")
	t = strings.TrimPrefix(strings.TrimPrefix(t, "0x"), "0X")
	v, err := strconv.ParseUint(t, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid address %q: want hex", s)
	}
	return v, nil
}
