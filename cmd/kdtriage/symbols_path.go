package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/kdtriage/kdtriage/symbols"
)

const symbolsPathLong = `Show the effective symbol path and, for a key, every location kdtriage
would try for it, in order.

The symbol path uses WinDbg's _NT_SYMBOL_PATH syntax: ';'-separated
elements, each srv*[CACHE*...]*STORE (STORE a directory or an http(s) URL),
symsrv*symsrv.dll*..., cache*DIR, or a plain directory. It comes from, in
decreasing precedence: --symbol-path, the config key symbols.path (or
KDTRIAGE_SYMBOLS_PATH), then _NT_SYMBOL_PATH.

Elements that name no cache ("srv*URL", "srv**URL", "cache*") use the
default downstream store: --symbol-cache, config symbols.cache, else
$XDG_CACHE_HOME/kdtriage/sym (~/.cache/kdtriage/sym).

The key can be given as
  NAME/ID/FILE          a store path, e.g. ntkrnlmp.pdb/3844DBB9...2/ntkrnlmp.pdb
  NAME TIMESTAMP SIZE   a PE image; TimeDateStamp and SizeOfImage in hex
  NAME GUID AGE         a PDB; the GUID in any usual form, AGE decimal (0x for hex)`

// symbolsPathCommand implements `kdtriage symbols path [KEY | NAME TIMESTAMP
// SIZE | NAME GUID AGE]`.
func (a *app) symbolsPathCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "path [KEY | NAME TIMESTAMP SIZE | NAME GUID AGE]",
		Short: "Show the symbol path and where a key would be looked for",
		Long:  symbolsPathLong,
		Example: `  kdtriage symbols path
  kdtriage symbols path amdppm.sys 5F9B9A8E 3b000
  kdtriage symbols path ntkrnlmp.pdb {3844DBB9-2017-4967-BE7A-A4A2C20430FA} 2
  _NT_SYMBOL_PATH='srv*/srv/sym*https://msdl.microsoft.com/download/symbols' kdtriage symbols path --format json basic32.pdb/0123.../basic32.pdb`,
		Args: func(_ *cobra.Command, args []string) error {
			if n := len(args); n != 0 && n != 1 && n != 3 {
				return fmt.Errorf("want no argument, KEY, NAME TIMESTAMP SIZE or NAME GUID AGE; got %d arguments", n)
			}
			return nil
		},
		RunE: a.runSymbolsPath,
	}
	f := cmd.Flags()
	f.String("format", formatText, "output format: text or json")
	addSymbolFlags(cmd)
	return cmd
}

// addSymbolFlags adds the symbol-store flags shared by commands that read
// symbols, unless the command (or a parent) already has them.
func addSymbolFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	if cmd.Flag("symbol-path") == nil {
		f.String("symbol-path", "", "symbol path in _NT_SYMBOL_PATH syntax (config: symbols.path)")
	}
	if cmd.Flag("symbol-cache") == nil {
		f.String("symbol-cache", "", "default downstream store for srv*URL and cache* (config: symbols.cache; default: user cache dir/kdtriage/sym)")
	}
	if cmd.Flag("offline") == nil {
		f.Bool("offline", false, "never contact symbol servers; use what is cached (config: symbols.offline)")
	}
}

// effectiveSymbolPath returns the symbol path for cmd and where it came
// from: --symbol-path, then config symbols.path / KDTRIAGE_SYMBOLS_PATH,
// then _NT_SYMBOL_PATH.
func (a *app) effectiveSymbolPath(cmd *cobra.Command) (string, symbols.PathSource) {
	var flag, config string
	if cmd != nil {
		if f := cmd.Flags().Lookup("symbol-path"); f != nil {
			flag = f.Value.String()
		}
	}
	if a.v != nil {
		config = a.v.GetString("symbols.path")
	}
	return symbols.EffectivePath(flag, config, os.Getenv("_NT_SYMBOL_PATH"))
}

// symbolStoreOptions returns the store options for cmd: the default
// downstream store (--symbol-cache, config symbols.cache, else
// symbols.DefaultCacheDir(os.UserCacheDir())), offline mode, and the app's
// logger.
func (a *app) symbolStoreOptions(cmd *cobra.Command) symbols.Options {
	o := symbols.Options{Log: a.log}
	if cmd != nil {
		if f := cmd.Flags().Lookup("symbol-cache"); f != nil {
			o.DefaultCache = f.Value.String()
		}
		if f := cmd.Flags().Lookup("offline"); f != nil && f.Value.String() == "true" {
			o.Offline = true
		}
	}
	if a.v != nil {
		if o.DefaultCache == "" {
			o.DefaultCache = a.v.GetString("symbols.cache")
		}
		if a.v.GetBool("symbols.offline") {
			o.Offline = true
		}
	}
	if o.DefaultCache == "" {
		if dir, err := os.UserCacheDir(); err == nil {
			o.DefaultCache = symbols.DefaultCacheDir(dir)
		}
	}
	return o
}

// parseSymbolKey turns the command's arguments into a key.
func parseSymbolKey(args []string) (symbols.Key, error) {
	switch len(args) {
	case 1:
		return symbols.ParseKey(args[0])
	case 3:
		name, id, last := args[0], args[1], args[2]
		if g, err := symbols.ParseGUID(id); err == nil {
			age, err := strconv.ParseUint(last, 0, 32)
			if err != nil {
				return symbols.Key{}, fmt.Errorf("PDB age %q: want a number (decimal, or hex with 0x)", last)
			}
			return checkKey(symbols.PDBKey(name, g, uint32(age)))
		}
		ts, err1 := parseHex32(id)
		size, err2 := parseHex32(last)
		if err1 != nil || err2 != nil {
			return symbols.Key{}, fmt.Errorf("%q %q: want a GUID and an age, or a hex TimeDateStamp and SizeOfImage", id, last)
		}
		return checkKey(symbols.ImageKey(name, ts, size))
	}
	return symbols.Key{}, fmt.Errorf("want KEY, NAME TIMESTAMP SIZE or NAME GUID AGE")
}

func checkKey(k symbols.Key) (symbols.Key, error) { return k, k.Validate() }

// parseHex32 parses a 32-bit hex number with or without 0x.
func parseHex32(s string) (uint32, error) {
	v, err := parseHexAddr(s)
	if err != nil || v > 0xFFFFFFFF {
		return 0, fmt.Errorf("bad 32-bit hex number %q", s)
	}
	return uint32(v), nil
}

// symbolPathJSON is the --format json output of `symbols path`.
type symbolPathJSON struct {
	Path         string                `json:"path"`
	Source       string                `json:"source"`
	DefaultCache string                `json:"default_cache"`
	Offline      bool                  `json:"offline"`
	Elements     []symbolElementJSON   `json:"elements"`
	Key          string                `json:"key,omitempty"`
	Candidates   []symbolCandidateJSON `json:"candidates,omitempty"`
}

type symbolElementJSON struct {
	Index  int      `json:"index"`
	Kind   string   `json:"kind"`
	Text   string   `json:"text"`
	Dir    string   `json:"dir,omitempty"`
	Stores []string `json:"stores,omitempty"`
}

type symbolCandidateJSON struct {
	Element  int    `json:"element"`
	Role     string `json:"role"`
	Location string `json:"location"`
}

func (a *app) runSymbolsPath(cmd *cobra.Command, args []string) error {
	format, _ := cmd.Flags().GetString("format")
	if err := checkFormat(format, formatText, formatJSON); err != nil {
		return err
	}
	var key symbols.Key
	if len(args) > 0 {
		k, err := parseSymbolKey(args)
		if err != nil {
			return err
		}
		key = k
	}
	text, src := a.effectiveSymbolPath(cmd)
	p, err := symbols.ParsePath(text)
	if err != nil {
		return fmt.Errorf("symbol path from %v: %w", src, err)
	}
	warnMissingSymbolDirs(a.log, p)
	opts := a.symbolStoreOptions(cmd)
	out := symbolPathJSON{Path: p.String(), Source: src.String(), DefaultCache: opts.DefaultCache, Offline: opts.Offline, Elements: []symbolElementJSON{}}
	for i, e := range p.Elements {
		ej := symbolElementJSON{Index: i, Kind: e.Kind.String(), Text: e.String(), Dir: e.Dir}
		for _, s := range e.Stores {
			if s == "" {
				s = "(default: " + opts.DefaultCache + ")"
			}
			ej.Stores = append(ej.Stores, s)
		}
		out.Elements = append(out.Elements, ej)
	}
	if len(args) > 0 {
		out.Key = key.String()
		chain, err := symbols.NewChain(p, opts)
		if err != nil {
			return err
		}
		cands, err := chain.Candidates(key)
		if err != nil {
			return err
		}
		out.Candidates = []symbolCandidateJSON{}
		for _, c := range cands {
			out.Candidates = append(out.Candidates, symbolCandidateJSON{Element: c.Element, Role: c.Role, Location: c.Location})
		}
	}
	if format == formatJSON {
		b, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(a.stdout, "%s\n", b)
		return err
	}
	return writeSymbolPathText(a, out)
}

func writeSymbolPathText(a *app, out symbolPathJSON) error {
	w := a.stdout
	var b strings.Builder
	if out.Path == "" {
		fmt.Fprintf(&b, "Symbol path: (empty: set --symbol-path, symbols.path or _NT_SYMBOL_PATH)\n")
	} else {
		fmt.Fprintf(&b, "Symbol path: %s\n", out.Path)
		fmt.Fprintf(&b, "From:        %s\n", out.Source)
	}
	fmt.Fprintf(&b, "Default downstream store: %s\n", out.DefaultCache)
	if out.Offline {
		fmt.Fprintf(&b, "Offline: symbol servers are not contacted\n")
	}
	for _, e := range out.Elements {
		switch e.Kind {
		case "srv":
			fmt.Fprintf(&b, "  [%d] srv    %s\n", e.Index, strings.Join(e.Stores, "  ->  "))
		case "cache":
			d := e.Dir
			if d == "" {
				d = "(default: " + out.DefaultCache + ")"
			}
			fmt.Fprintf(&b, "  [%d] cache  %s (for the elements after it)\n", e.Index, d)
		default:
			fmt.Fprintf(&b, "  [%d] dir    %s\n", e.Index, e.Dir)
		}
	}
	if out.Key != "" {
		fmt.Fprintf(&b, "Key: %s\n", out.Key)
		if len(out.Candidates) == 0 {
			fmt.Fprintf(&b, "No locations to try.\n")
		} else {
			fmt.Fprintf(&b, "Locations tried, in order:\n")
		}
		for i, c := range out.Candidates {
			fmt.Fprintf(&b, "  %3d  [%d] %-8s %s\n", i+1, c.Element, c.Role, c.Location)
		}
	}
	_, err := fmt.Fprint(w, b.String())
	return err
}

// warnMissingSymbolDirs logs a warning for every directory of the symbol
// path that does not exist (a plain directory, or a srv* element whose
// upstream store is local): such an element can never supply a symbol, and a
// mistyped path otherwise only shows as frames left module+offset. Caches
// are not checked: the chain creates them.
func warnMissingSymbolDirs(log zerolog.Logger, p symbols.Path) {
	for i, e := range p.Elements {
		var dir string
		switch e.Kind {
		case symbols.ElemDir:
			dir = e.Dir
		case symbols.ElemServer:
			dir = e.Upstream()
		}
		if dir == "" || strings.Contains(dir, "://") {
			continue
		}
		if _, err := os.Stat(dir); err != nil {
			log.Warn().Int("element", i).Str("dir", dir).Msg("symbol path directory not found: its symbols will not be used; check --symbol-path / symbols.path / _NT_SYMBOL_PATH")
		}
	}
}
