package symbols

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Found describes where Fetch found a file.
type Found struct {
	Path    string // local, uncompressed file
	Exact   bool   // found under the key's index directory; false: by name alone in a plain directory, so the caller must check the file's identity (PDB GUID and age, PE timestamp and size)
	Element int    // index of the symbol-path element that had it (-1 for stores not built from a Path)
	Source  string // the store (directory or URL) that had it
}

func (o *Options) maxFileSize() int64 {
	if o.MaxFileSize > 0 {
		return o.MaxFileSize
	}
	return DefaultMaxFileSize
}

// DefaultCacheDir returns the default downstream store for a user cache
// directory: userCacheDir/kdtriage/sym. The CLI passes os.UserCacheDir().
func DefaultCacheDir(userCacheDir string) string {
	if userCacheDir == "" {
		return ""
	}
	return filepath.Join(userCacheDir, "kdtriage", "sym")
}

// tiered is one element's lookup: downstream caches nearest first, then an
// upstream that is a directory store, an HTTP server, or (for a plain
// directory element) a directory searched by name too.
type tiered struct {
	index   int
	caches  []string   // writable SymStore directories, nearest first
	dir     *dirLevel  // upstream directory store, or nil
	http    *httpLevel // upstream server, or nil
	flat    string     // plain directory also searched by name (ElemDir)
	scratch string     // where compressed files are unpacked when there is no cache
	opts    *Options
}

func (t *tiered) source() string {
	switch {
	case t.http != nil:
		return t.http.base
	case t.dir != nil:
		return t.dir.root
	}
	return t.flat
}

// fetch looks k up in this element. k is valid.
func (t *tiered) fetch(ctx context.Context, k Key) (Found, error) {
	var tried []string
	limit := t.opts.maxFileSize()
	for i, c := range t.caches {
		d := dirLevel{root: c}
		h, err := d.lookup(k)
		if err != nil {
			if !errors.Is(err, ErrNotFound) {
				return Found{}, err
			}
			tried = append(tried, d.candidates(k)...)
			continue
		}
		targets := t.caches[:i]
		if h.compressed {
			targets = t.caches[:i+1]
		}
		f, err := t.materialize(h, k, targets, limit)
		if err == nil {
			f.Source = c
		}
		return f, err
	}
	if t.dir != nil {
		h, err := t.dir.lookup(k)
		if err == nil {
			return t.materialize(h, k, t.caches, limit)
		}
		if !errors.Is(err, ErrNotFound) {
			return Found{}, err
		}
		tried = append(tried, t.dir.candidates(k)...)
	}
	if t.http != nil {
		if t.opts.Offline {
			tried = append(tried, t.http.base+" (offline)")
		} else {
			tmpDir := t.scratch
			if len(t.caches) > 0 {
				tmpDir = t.caches[len(t.caches)-1]
			}
			if tmpDir == "" {
				return Found{}, fmt.Errorf("symbols: no cache directory for %s (set a downstream store or Options.DefaultCache)", t.http.base)
			}
			tmp, compressed, err := t.http.download(ctx, k, tmpDir)
			if err != nil {
				if !errors.Is(err, ErrNotFound) {
					return Found{}, err
				}
				tried = append(tried, t.http.candidates(k)...)
			} else {
				defer os.Remove(tmp)
				return t.materialize(hit{path: tmp, compressed: compressed, exact: true}, k, t.caches, limit)
			}
		}
	}
	if t.flat != "" {
		for _, p := range flatCandidates(t.flat, k) {
			if isFile(p) {
				if isCAB(p) {
					// A compressed file found by name: unpack to scratch.
					return t.materialize(hit{path: p, compressed: true}, k, nil, limit)
				}
				return Found{Path: p, Exact: false, Element: t.index, Source: t.flat}, nil
			}
			tried = append(tried, p)
		}
	}
	return Found{}, &NotFoundError{Key: k, Tried: tried}
}

// flatCandidates lists the by-name locations in a plain directory, after
// WinDbg: DIR/file, DIR/fil_, DIR/ext/file and DIR/symbols/ext/file. WinDbg
// takes ext from the image (dll, exe, sys); a key knows only its own file,
// so ext is the file's extension (pdb for a PDB).
func flatCandidates(dir string, k Key) []string {
	ext := strings.TrimPrefix(filepath.Ext(k.File), ".")
	c := []string{filepath.Join(dir, k.File), filepath.Join(dir, k.CompressedFile())}
	if ext != "" {
		c = append(c, filepath.Join(dir, ext, k.File), filepath.Join(dir, "symbols", ext, k.File))
	}
	return c
}

// materialize turns a hit into an uncompressed local file: unpacked or
// copied into every target cache (the farthest first), or returned in place
// when there is no target and nothing to unpack.
func (t *tiered) materialize(h hit, k Key, targets []string, limit int64) (Found, error) {
	src := t.source()
	if len(targets) == 0 {
		if !h.compressed {
			return Found{Path: h.path, Exact: h.exact, Element: t.index, Source: src}, nil
		}
		if t.scratch == "" {
			return Found{}, fmt.Errorf("symbols: %s is compressed and there is no cache to unpack it to (set Options.DefaultCache)", h.path)
		}
		targets = []string{t.scratch}
	}
	from := h.path
	for i := len(targets) - 1; i >= 0; i-- {
		dst, err := storePath(targets[i], k)
		if err != nil {
			return Found{}, err
		}
		if dst == from {
			continue
		}
		if err := mkdirInStore(targets[i], filepath.Dir(dst)); err != nil {
			return Found{}, err
		}
		if i == len(targets)-1 && h.compressed {
			err = unpackAtomic(dst, from, k, limit)
		} else {
			err = copyAtomic(dst, from, limit)
		}
		if err != nil {
			return Found{}, err
		}
		t.opts.Log.Debug().Str("key", k.String()).Str("from", from).Str("to", dst).Msg("cached")
		from = dst
	}
	return Found{Path: from, Exact: h.exact, Element: t.index, Source: src}, nil
}

// candidates lists every location fetch would try for k, in order.
func (t *tiered) candidates(k Key) []Candidate {
	var c []Candidate
	for _, d := range t.caches {
		for _, p := range (dirLevel{root: d}).candidates(k) {
			c = append(c, Candidate{Element: t.index, Role: "cache", Location: p})
		}
	}
	if t.dir != nil {
		for _, p := range t.dir.candidates(k) {
			c = append(c, Candidate{Element: t.index, Role: "store", Location: p})
		}
	}
	if t.http != nil {
		role := "server"
		if t.opts.Offline {
			role = "server (skipped: offline)"
		}
		for _, u := range t.http.candidates(k) {
			c = append(c, Candidate{Element: t.index, Role: role, Location: u})
		}
	}
	if t.flat != "" {
		for _, p := range flatCandidates(t.flat, k) {
			c = append(c, Candidate{Element: t.index, Role: "by name", Location: p})
		}
	}
	return c
}

// Candidate is one location a Chain tries for a key.
type Candidate struct {
	Element  int    // symbol-path element index
	Role     string // "cache", "store", "server", "by name"
	Location string // file path or URL
}

// flightGroup runs one call per key at a time; concurrent callers for the
// same key wait for it and share its result.
type flightGroup struct {
	mu    sync.Mutex
	calls map[string]*flight
}

// errLookupPanicked is what waiters get when the lookup they joined panicked.
var errLookupPanicked = errors.New("symbols: the lookup this call waited for panicked")

type flight struct {
	done chan struct{}
	res  Found
	err  error
}

// do runs fn for key unless a call for key is in flight, in which case it
// waits for that call (or for ctx). A waiter whose own context is still
// live retries when the call it joined was cancelled by its caller.
func (g *flightGroup) do(ctx context.Context, key string, fn func() (Found, error)) (Found, error) {
	for {
		g.mu.Lock()
		if g.calls == nil {
			g.calls = map[string]*flight{}
		}
		if f, ok := g.calls[key]; ok {
			g.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return Found{}, ctx.Err()
			}
			if (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) && ctx.Err() == nil {
				continue
			}
			return f.res, f.err
		}
		// The error stands if fn panics: waiters then get it rather than
		// an empty result without an error.
		f := &flight{done: make(chan struct{}), err: errLookupPanicked}
		g.calls[key] = f
		g.mu.Unlock()

		func() {
			defer func() {
				g.mu.Lock()
				delete(g.calls, key)
				g.mu.Unlock()
				close(f.done)
			}()
			f.res, f.err = fn()
		}()
		return f.res, f.err
	}
}

// Chain is a Store over a whole symbol path: it asks the path's elements in
// order and returns the first hit. Within a server element it looks in the
// downstream stores nearest first, then the upstream, and copies what it
// finds into every store in front of the one that had it (unpacking
// compressed files on the way), as symsrv does. A cache* element makes
// the elements after it cache their finds in its directory too. Concurrent
// fetches of one key share one lookup (and so one download).
type Chain struct {
	path    Path
	tiers   []*tiered
	opts    Options
	flights flightGroup
}

// NewChain builds the stores of p. It fails when an element needs the
// default downstream store and opts.DefaultCache is empty, or when a URL is
// malformed.
func NewChain(p Path, opts Options) (*Chain, error) {
	c := &Chain{path: p, opts: opts}
	o := &c.opts
	neg := newNegativeCache(o)
	var cacheDir string // from the last cache* element
	resolve := func(dir string, i int) (string, error) {
		if dir != "" {
			return dir, nil
		}
		if o.DefaultCache == "" {
			return "", &PathError{Index: i, Element: p.Elements[i].Raw, Err: errors.New("needs the default downstream store, and none is configured")}
		}
		return o.DefaultCache, nil
	}
	for i, e := range p.Elements {
		switch e.Kind {
		case ElemCache:
			d, err := resolve(e.Dir, i)
			if err != nil {
				return nil, err
			}
			cacheDir = d
		case ElemDir:
			t := &tiered{index: i, opts: o, scratch: o.DefaultCache, dir: &dirLevel{root: e.Dir}, flat: e.Dir}
			if cacheDir != "" {
				t.caches = []string{cacheDir}
				t.scratch = cacheDir
			}
			c.tiers = append(c.tiers, t)
		case ElemServer:
			t := &tiered{index: i, opts: o, scratch: o.DefaultCache}
			if cacheDir != "" {
				t.caches = append(t.caches, cacheDir)
			}
			for _, s := range e.Downstream() {
				d, err := resolve(s, i)
				if err != nil {
					return nil, err
				}
				if len(t.caches) == 0 || t.caches[len(t.caches)-1] != d {
					t.caches = append(t.caches, d)
				}
			}
			up := e.Upstream()
			if isURL(up) {
				t.http = &httpLevel{base: strings.TrimRight(up, "/"), opts: o, neg: neg}
			} else {
				t.dir = &dirLevel{root: up}
			}
			if len(t.caches) > 0 {
				t.scratch = t.caches[0]
			}
			c.tiers = append(c.tiers, t)
		}
	}
	return c, nil
}

// Path returns the symbol path the chain was built from.
func (c *Chain) Path() Path { return c.path }

// Fetch implements Store.
func (c *Chain) Fetch(ctx context.Context, k Key) (string, error) {
	f, err := c.Locate(ctx, k)
	return f.Path, err
}

// Locate is Fetch with details of where the file was found.
func (c *Chain) Locate(ctx context.Context, k Key) (Found, error) {
	if err := k.Validate(); err != nil {
		return Found{}, err
	}
	return c.flights.do(ctx, k.String(), func() (Found, error) {
		var tried []string
		var errs []error
		for _, t := range c.tiers {
			if err := ctx.Err(); err != nil {
				return Found{}, err
			}
			f, err := t.fetch(ctx, k)
			if err == nil {
				return f, nil
			}
			var nf *NotFoundError
			if errors.As(err, &nf) {
				tried = append(tried, nf.Tried...)
				errs = append(errs, nf.Errs...)
				continue
			}
			if errors.Is(err, ErrNotFound) {
				tried = append(tried, err.Error())
				continue
			}
			// A broken server or cache must not hide the elements after it.
			c.opts.Log.Warn().Err(err).Str("key", k.String()).Int("element", t.index).Msg("symbol store failed")
			errs = append(errs, err)
		}
		return Found{}, &NotFoundError{Key: k, Tried: tried, Errs: errs}
	})
}

// Candidates lists every location Fetch would try for k, in order. It
// touches the file system only to see whether stores are two-tier.
func (c *Chain) Candidates(k Key) ([]Candidate, error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	var out []Candidate
	for _, t := range c.tiers {
		out = append(out, t.candidates(k)...)
	}
	return out, nil
}

// NewDirStore returns a Store over one SymStore-layout directory (flat,
// two-tier with index2.txt, file.ptr). Compressed files are unpacked into
// opts.DefaultCache.
func NewDirStore(root string, opts Options) Store {
	o := opts
	return &single{t: &tiered{index: -1, dir: &dirLevel{root: root}, scratch: o.DefaultCache, opts: &o}}
}

// NewHTTPStore returns a Store over a symbol server at baseURL whose files
// are kept in cacheDir (a SymStore-layout directory).
func NewHTTPStore(baseURL, cacheDir string, opts Options) (Store, error) {
	if !isURL(baseURL) {
		return nil, fmt.Errorf("%w: %q", ErrBadURL, baseURL)
	}
	if cacheDir == "" {
		return nil, errors.New("symbols: an HTTP store needs a cache directory")
	}
	o := opts
	t := &tiered{index: -1, caches: []string{cacheDir}, scratch: cacheDir, opts: &o,
		http: &httpLevel{base: strings.TrimRight(baseURL, "/"), opts: &o, neg: newNegativeCache(&o)}}
	return &single{t: t}, nil
}

// single adapts one tiered element to Store.
type single struct {
	t       *tiered
	flights flightGroup
}

func (s *single) Fetch(ctx context.Context, k Key) (string, error) {
	if err := k.Validate(); err != nil {
		return "", err
	}
	f, err := s.flights.do(ctx, k.String(), func() (Found, error) { return s.t.fetch(ctx, k) })
	return f.Path, err
}
