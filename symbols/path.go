package symbols

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// MicrosoftSymbolServer is the public Microsoft symbol server; a bare "srv*"
// element means this server behind the default downstream store, as in
// WinDbg's .symfix.
const MicrosoftSymbolServer = "https://msdl.microsoft.com/download/symbols"

// ElementKind says what one element of a symbol path is.
type ElementKind uint8

// Kinds of symbol-path elements.
const (
	ElemDir    ElementKind = iota // a plain directory searched directly
	ElemServer                    // srv*... or symsrv*symsrv.dll*...: a chain of symbol stores
	ElemCache                     // cache*DIR: cache what later elements find in DIR
)

// String returns the kind's name.
func (k ElementKind) String() string {
	switch k {
	case ElemDir:
		return "dir"
	case ElemServer:
		return "srv"
	case ElemCache:
		return "cache"
	}
	return fmt.Sprintf("ElementKind(%d)", uint8(k))
}

// Element is one ';'-separated entry of a symbol path.
//
// For ElemServer, Stores lists the symbol stores nearest first; the last one
// is the upstream (a directory, UNC path or http(s) URL) and the ones before
// it are downstream stores (local caches). An empty string stands for the
// default downstream store, which the caller chooses (Options.DefaultCache).
// "srv*URL" gets the default downstream store in front of URL because an HTTP
// store cannot be read in place; "srv*DIR" reads DIR directly without a cache.
// A bare "srv*" means MicrosoftSymbolServer behind the default store.
//
// For ElemCache and ElemDir, Dir is the directory ("" in a cache element:
// the default downstream store).
type Element struct {
	Kind   ElementKind
	Dir    string   // ElemDir, ElemCache
	Stores []string // ElemServer: stores nearest first, upstream last
	DLL    string   // ElemServer written as symsrv*DLL*...: the DLL named
	Raw    string   // the element as written (trimmed)
}

// Upstream returns the last store of a server element ("" for other kinds).
func (e Element) Upstream() string {
	if e.Kind != ElemServer || len(e.Stores) == 0 {
		return ""
	}
	return e.Stores[len(e.Stores)-1]
}

// Downstream returns the cache stores of a server element, nearest first.
func (e Element) Downstream() []string {
	if e.Kind != ElemServer || len(e.Stores) == 0 {
		return nil
	}
	return e.Stores[:len(e.Stores)-1]
}

// String writes the element back in symbol-path syntax.
func (e Element) String() string {
	switch e.Kind {
	case ElemCache:
		return "cache*" + e.Dir
	case ElemServer:
		s := "srv*"
		if e.DLL != "" {
			s = "symsrv*" + e.DLL + "*"
		}
		return s + strings.Join(e.Stores, "*")
	}
	return e.Dir
}

// Path is a parsed symbol path: elements searched in order.
type Path struct {
	Elements []Element
}

// String writes the path back in symbol-path syntax (normalised: "SRV*"
// becomes "srv*", blanks and empty elements are dropped).
func (p Path) String() string {
	parts := make([]string, len(p.Elements))
	for i, e := range p.Elements {
		parts[i] = e.String()
	}
	return strings.Join(parts, ";")
}

// Errors that PathError wraps.
var (
	ErrUnknownPrefix  = errors.New("unknown element prefix")
	ErrEmptyServer    = errors.New("server element names no store")
	ErrURLNotLast     = errors.New("an http(s) store can only be the last (upstream) store of an element")
	ErrBadURL         = errors.New("malformed or unsupported URL")
	ErrUnsupportedDLL = errors.New("only symsrv.dll is supported")
)

// PathError reports a symbol-path element that cannot be used.
type PathError struct {
	Index   int    // element index (0-based) among the ';'-separated entries
	Element string // the element's text
	Err     error  // one of the Err* values above
}

func (e *PathError) Error() string {
	return fmt.Sprintf("symbols: symbol path element %d %q: %v", e.Index, e.Element, e.Err)
}

// Unwrap returns the cause.
func (e *PathError) Unwrap() error { return e.Err }

// maxPathLen bounds the symbol-path text: a path is configuration, not data,
// but it may come from an environment variable.
const maxPathLen = 64 << 10

// ParsePath parses a symbol path in WinDbg's _NT_SYMBOL_PATH syntax:
// ';'-separated elements, each one of
//
//	srv*STORE*...*STORE       a chain of symbol stores, nearest first
//	symsrv*symsrv.dll*STORE*...*STORE   the same, naming the DLL
//	cache*DIR  or  cache*     cache what later elements find in DIR (or
//	                          the default downstream store)
//	DIR                       a plain directory
//
// Prefixes are case-insensitive; blanks around elements and empty elements
// are ignored. An empty STORE is the default downstream store. An empty
// string parses to an empty Path.
func ParsePath(s string) (Path, error) {
	var p Path
	if len(s) > maxPathLen {
		return p, &PathError{Index: 0, Element: s[:64] + "...", Err: errors.New("symbol path too long")}
	}
	for i, raw := range strings.Split(s, ";") {
		t := strings.TrimSpace(raw)
		if t == "" {
			continue
		}
		e, err := parseElement(t)
		if err != nil {
			return Path{}, &PathError{Index: i, Element: t, Err: err}
		}
		p.Elements = append(p.Elements, e)
	}
	return p, nil
}

func parseElement(t string) (Element, error) {
	star := strings.IndexByte(t, '*')
	if star < 0 {
		if isURL(t) {
			// WinDbg treats a bare URL as an error too: it must be in srv*.
			return Element{}, fmt.Errorf("%w: a URL must be written srv*URL", ErrUnknownPrefix)
		}
		return Element{Kind: ElemDir, Dir: t, Raw: t}, nil
	}
	// Blanks around the '*' separators are not part of the prefix
	// ("srv * C:\sym * URL" as people write it in documentation).
	prefix, rest := strings.ToLower(strings.TrimSpace(t[:star])), t[star+1:]
	switch prefix {
	case "cache":
		if strings.Contains(rest, "*") {
			return Element{}, fmt.Errorf("%w: cache* takes one directory", ErrUnknownPrefix)
		}
		if isURL(rest) {
			return Element{}, fmt.Errorf("%w: a cache must be a directory", ErrURLNotLast)
		}
		return Element{Kind: ElemCache, Dir: strings.TrimSpace(rest), Raw: t}, nil
	case "srv":
		return parseServer(t, "", rest)
	case "symsrv":
		dll, stores, _ := strings.Cut(rest, "*")
		dll = strings.TrimSpace(dll)
		if !strings.EqualFold(dll, "symsrv.dll") {
			return Element{}, fmt.Errorf("%w: %q", ErrUnsupportedDLL, dll)
		}
		return parseServer(t, dll, stores)
	}
	return Element{}, fmt.Errorf("%w %q", ErrUnknownPrefix, t[:star])
}

func parseServer(raw, dll, rest string) (Element, error) {
	e := Element{Kind: ElemServer, DLL: dll, Raw: raw}
	stores := strings.Split(rest, "*")
	for i := range stores {
		stores[i] = strings.TrimSpace(stores[i])
	}
	switch {
	case len(stores) == 1 && stores[0] == "":
		if dll != "" {
			return Element{}, ErrEmptyServer
		}
		stores = []string{"", MicrosoftSymbolServer}
	case stores[len(stores)-1] == "":
		return Element{}, fmt.Errorf("%w: the last (upstream) store is empty", ErrEmptyServer)
	case len(stores) == 1 && isURL(stores[0]):
		stores = []string{"", stores[0]}
	}
	for i, s := range stores {
		if !isURL(s) {
			continue
		}
		if i != len(stores)-1 {
			return Element{}, fmt.Errorf("%w (%s)", ErrURLNotLast, s)
		}
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return Element{}, fmt.Errorf("%w: %q", ErrBadURL, s)
		}
	}
	e.Stores = stores
	return e, nil
}

// isURL reports whether s looks like a URL (scheme://...) rather than a
// directory. Drive-letter paths (C:\sym) are directories.
func isURL(s string) bool {
	i := strings.Index(s, "://")
	if i <= 1 {
		return false
	}
	for _, c := range s[:i] {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// PathSource says where the effective symbol path came from.
type PathSource uint8

// Sources of the symbol path, in decreasing precedence.
const (
	SourceNone        PathSource = iota // no symbol path anywhere
	SourceFlag                          // the --symbol-path flag
	SourceConfig                        // config key symbols.path or KDTRIAGE_SYMBOLS_PATH
	SourceEnvironment                   // _NT_SYMBOL_PATH
)

// String returns a human-readable name of the source.
func (s PathSource) String() string {
	switch s {
	case SourceNone:
		return "none"
	case SourceFlag:
		return "--symbol-path flag"
	case SourceConfig:
		return "config symbols.path / KDTRIAGE_SYMBOLS_PATH"
	case SourceEnvironment:
		return "_NT_SYMBOL_PATH"
	}
	return fmt.Sprintf("PathSource(%d)", uint8(s))
}

// EffectivePath picks the symbol path the commands use: the flag value if
// non-blank, else the configured value (config file symbols.path or
// KDTRIAGE_SYMBOLS_PATH, as viper resolves it), else the value of
// _NT_SYMBOL_PATH. The caller reads the environment and passes the strings
// in; this function reads nothing itself.
func EffectivePath(flag, config, ntSymbolPath string) (string, PathSource) {
	switch {
	case strings.TrimSpace(flag) != "":
		return flag, SourceFlag
	case strings.TrimSpace(config) != "":
		return config, SourceConfig
	case strings.TrimSpace(ntSymbolPath) != "":
		return ntSymbolPath, SourceEnvironment
	}
	return "", SourceNone
}
