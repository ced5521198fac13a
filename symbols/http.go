package symbols

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// httpLevel is a symbol server reached over HTTP(S).
type httpLevel struct {
	base string // URL without a trailing slash
	opts *Options
	neg  *negativeCache

	// A server that failed a request through all its retries (timeouts,
	// connection errors, 5xx) is skipped until downUntil: without this a
	// dead server costs every module of every dump the full retry budget.
	mu        sync.Mutex
	downUntil time.Time
	downErr   error
}

// serverDownTime is how long a server that exhausted its retries is skipped.
const serverDownTime = time.Minute

func (o *Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// down returns the failure that put the server aside, while it lasts.
func (h *httpLevel) down() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.downErr == nil || !h.opts.now().Before(h.downUntil) {
		return nil
	}
	return fmt.Errorf("symbols: %s skipped until %s after it failed: %w", h.base, h.downUntil.Format(time.TimeOnly), h.downErr)
}

// markDown puts the server aside for serverDownTime.
func (h *httpLevel) markDown(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.downUntil, h.downErr = h.opts.now().Add(serverDownTime), err
}

// fileURL returns the URL of one file of k on the server.
func (h *httpLevel) fileURL(k Key, file string) string {
	return h.base + "/" + url.PathEscape(k.Name) + "/" + url.PathEscape(k.ID) + "/" + url.PathEscape(file)
}

// candidates lists the URLs tried for k, in order.
func (h *httpLevel) candidates(k Key) []string {
	return []string{h.fileURL(k, k.File), h.fileURL(k, k.CompressedFile()), h.fileURL(k, "file.ptr")}
}

// errMiss marks a 404/410 answer inside this file.
var errMiss = errors.New("miss")

// download fetches k into a temporary file in tmpDir: the file itself,
// else its compressed form, else it reads file.ptr (a PATH: there names a
// file on the server's side that we cannot open, so it counts as a miss;
// a MSG: is returned as a *PointerError). It returns the temporary file and
// whether it is a cabinet.
func (h *httpLevel) download(ctx context.Context, k Key, tmpDir string) (string, bool, error) {
	negKey := h.base + "|" + k.String()
	if h.neg.has(negKey) {
		h.opts.Log.Debug().Str("key", k.String()).Str("server", h.base).Msg("negative cache hit")
		return "", false, &NotFoundError{Key: k, Tried: []string{h.base + " (cached miss)"}}
	}
	if err := h.down(); err != nil {
		return "", false, err
	}
	for _, file := range []string{k.File, k.CompressedFile()} {
		u := h.fileURL(k, file)
		tmp, err := h.get(ctx, u, tmpDir, h.opts.maxFileSize())
		if errors.Is(err, errMiss) {
			continue
		}
		if err != nil {
			return "", false, err
		}
		return tmp, file != k.File || isCAB(tmp), nil
	}
	u := h.fileURL(k, "file.ptr")
	tmp, err := h.get(ctx, u, tmpDir, maxPointerSize)
	if err == nil {
		b, _ := os.ReadFile(tmp)
		os.Remove(tmp)
		s := strings.TrimSpace(string(b))
		if hasPrefixFold(s, "MSG:") {
			return "", false, &PointerError{Ptr: u, Msg: strings.TrimSpace(s[4:]), Err: ErrPointerMessage}
		}
		h.opts.Log.Debug().Str("url", u).Str("pointer", s).Msg("file.ptr on an HTTP server names a path we cannot open")
	} else if !errors.Is(err, errMiss) && !errors.Is(err, ErrTooLarge) {
		return "", false, err
	}
	h.neg.add(negKey)
	return "", false, &NotFoundError{Key: k, Tried: h.candidates(k)}
}

// get downloads u into a temporary file in dir, with retries. A 404 or 410
// gives errMiss.
func (h *httpLevel) get(ctx context.Context, u, dir string, limit int64) (string, error) {
	o := h.opts
	retries := o.Retries
	switch {
	case retries == 0:
		retries = DefaultRetries
	case retries < 0:
		retries = 0
	}
	backoff := o.Backoff
	if backoff <= 0 {
		backoff = DefaultBackoff
	}
	var lastErr error
	for attempt := 0; attempt <= retries; attempt++ {
		if attempt > 0 {
			d := backoff << (attempt - 1)
			d += time.Duration(rand.Int64N(int64(d)/4 + 1)) // jitter: up to +25%
			o.Log.Debug().Str("url", u).Int("attempt", attempt+1).Dur("backoff", d).Err(lastErr).Msg("retrying")
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return "", ctx.Err()
			case <-t.C:
			}
		}
		tmp, retry, err := h.attempt(ctx, u, dir, limit)
		if err == nil {
			return tmp, nil
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if !retry {
			return "", err
		}
		lastErr = err
	}
	err := fmt.Errorf("symbols: GET %s failed after %d attempts: %w", u, retries+1, lastErr)
	h.markDown(err)
	return "", err
}

// attempt makes one request. It reports whether a failure is worth
// retrying (5xx, 429, timeouts, connection errors).
func (h *httpLevel) attempt(ctx context.Context, u, dir string, limit int64) (string, bool, error) {
	o := h.opts
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, u, nil)
	if err != nil {
		return "", false, err
	}
	ua := o.UserAgent
	if ua == "" {
		ua = "kdtriage-symbols"
	}
	req.Header.Set("User-Agent", ua)
	client := o.Client
	if client == nil {
		client = http.DefaultClient
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return "", isTransient(err), fmt.Errorf("symbols: GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return "", false, errMiss
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return "", true, &HTTPError{URL: u, Status: resp.StatusCode}
	case resp.StatusCode != http.StatusOK:
		return "", false, &HTTPError{URL: u, Status: resp.StatusCode}
	}
	if resp.ContentLength > limit {
		return "", false, fmt.Errorf("%w: %s is %d bytes (limit %d)", ErrTooLarge, u, resp.ContentLength, limit)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", false, err
	}
	f, err := os.CreateTemp(dir, ".kdtriage-dl-*.tmp")
	if err != nil {
		return "", false, err
	}
	n, err := io.Copy(f, io.LimitReader(resp.Body, limit+1))
	cerr := f.Close()
	if err == nil {
		err = cerr
	}
	if err == nil && n > limit {
		err = fmt.Errorf("%w: %s exceeds %d bytes", ErrTooLarge, u, limit)
		os.Remove(f.Name())
		return "", false, err
	}
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("symbols: GET %s: got %d of %d bytes", u, n, resp.ContentLength)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", ctx.Err() == nil, fmt.Errorf("symbols: GET %s: %w", u, err)
	}
	o.Log.Debug().Str("url", u).Int64("bytes", n).Dur("took", time.Since(start)).Msg("downloaded")
	return f.Name(), false, nil
}

// isTransient reports whether a transport error is worth retrying.
func isTransient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// negativeCache remembers misses per server and key for a while, in memory
// and optionally in a JSON file.
type negativeCache struct {
	ttl  time.Duration
	now  func() time.Time
	file string

	mu      sync.Mutex
	loaded  bool
	entries map[string]time.Time // key -> expiry
}

func newNegativeCache(o *Options) *negativeCache {
	ttl := o.NegativeTTL
	if ttl == 0 {
		ttl = DefaultNegativeTTL
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	return &negativeCache{ttl: ttl, now: now, file: o.NegativeCacheFile, entries: map[string]time.Time{}}
}

// maxNegativeEntries bounds the negative cache; the oldest entries go first.
const maxNegativeEntries = 100000

type negativeFile struct {
	Version int              `json:"version"`
	Misses  map[string]int64 `json:"misses"` // key -> expiry, Unix seconds
}

// loadLocked reads the persisted entries once.
func (n *negativeCache) loadLocked() {
	if n.loaded || n.file == "" {
		n.loaded = true
		return
	}
	n.loaded = true
	f, err := os.Open(n.file)
	if err != nil {
		return
	}
	defer f.Close()
	var nf negativeFile
	if err := json.NewDecoder(io.LimitReader(f, 64<<20)).Decode(&nf); err != nil || nf.Version != 1 {
		return
	}
	now := n.now()
	for k, exp := range nf.Misses {
		if t := time.Unix(exp, 0); t.After(now) && len(n.entries) < maxNegativeEntries {
			n.entries[k] = t
		}
	}
}

func (n *negativeCache) has(key string) bool {
	if n.ttl < 0 {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.loadLocked()
	exp, ok := n.entries[key]
	if !ok {
		return false
	}
	if !n.now().Before(exp) {
		delete(n.entries, key)
		return false
	}
	return true
}

func (n *negativeCache) add(key string) {
	if n.ttl < 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.loadLocked()
	now := n.now()
	if len(n.entries) >= maxNegativeEntries {
		for k, exp := range n.entries {
			if !now.Before(exp) {
				delete(n.entries, k)
			}
		}
		for k := range n.entries { // still full: drop arbitrary entries
			if len(n.entries) < maxNegativeEntries {
				break
			}
			delete(n.entries, k)
		}
	}
	n.entries[key] = now.Add(n.ttl)
	if n.file != "" {
		nf := negativeFile{Version: 1, Misses: make(map[string]int64, len(n.entries))}
		for k, exp := range n.entries {
			nf.Misses[k] = exp.Unix()
		}
		b, err := json.Marshal(nf)
		if err == nil {
			err = writeAtomic(n.file, strings.NewReader(string(b)), int64(len(b)))
		}
		_ = err // persistence is best effort; the in-memory entry stands
	}
}
