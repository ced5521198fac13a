package symbols

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Store finds symbol files by key. Fetch returns the path of a local,
// uncompressed copy of the file (downloading, unpacking and caching it as
// needed) or an error that matches ErrNotFound when the store does not have
// it. Implementations are safe for concurrent use.
type Store interface {
	Fetch(ctx context.Context, k Key) (localPath string, err error)
}

// Errors returned by stores. Test with errors.Is.
var (
	// ErrNotFound: no store has the file (or the store is offline and the
	// file is not cached). *NotFoundError matches it.
	ErrNotFound = errors.New("symbols: not found")
	// ErrTooLarge: a download or unpacked file exceeds Options.MaxFileSize.
	ErrTooLarge = errors.New("symbols: file too large")
	// ErrPointerMessage: a file.ptr held "MSG:" text instead of a path.
	ErrPointerMessage = errors.New("symbols: file.ptr holds a message")
)

// NotFoundError reports a key that no location had, listing what was tried.
// Errs holds failures other than plain misses (a server timing out, a
// corrupt compressed file): the file may exist where those happened.
type NotFoundError struct {
	Key   Key
	Tried []string // locations tried, in order (paths and URLs)
	Errs  []error  // failures other than misses, in order
}

// Unwrap returns Errs, so errors.Is(err, context.DeadlineExceeded) and
// similar tests see the failures behind a miss.
func (e *NotFoundError) Unwrap() []error { return e.Errs }

func (e *NotFoundError) Error() string {
	msg := fmt.Sprintf("symbols: %s not found", e.Key)
	if len(e.Tried) > 0 {
		msg += " (tried " + strings.Join(e.Tried, ", ") + ")"
	}
	for _, err := range e.Errs {
		msg += "; " + err.Error()
	}
	return msg
}

// Is makes errors.Is(err, ErrNotFound) true.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// HTTPError reports an unexpected HTTP status from a symbol server.
type HTTPError struct {
	URL    string
	Status int
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("symbols: GET %s: HTTP %d %s", e.URL, e.Status, http.StatusText(e.Status))
}

// Defaults for Options fields left zero.
const (
	DefaultTimeout     = 30 * time.Second
	DefaultRetries     = 3
	DefaultBackoff     = 250 * time.Millisecond
	DefaultMaxFileSize = 1 << 30 // 1 GiB: the largest public PDBs are a few hundred MiB
	DefaultNegativeTTL = 30 * time.Minute
)

// Options configures the stores built from a symbol path. The zero value
// works offline-less with defaults, but has no default downstream store.
type Options struct {
	// Log receives debug messages about lookups and downloads.
	Log zerolog.Logger
	// Client performs HTTP requests; nil means a client without its own
	// timeout (Timeout below bounds each attempt).
	Client *http.Client
	// DefaultCache is the default downstream store: where "srv*URL",
	// "srv**URL" and "cache*" put files. The CLI uses
	// $XDG_CACHE_HOME/kdtriage/sym (os.UserCacheDir()/kdtriage/sym); see
	// DefaultCacheDir. Empty: elements that need it are errors when a
	// store is built.
	DefaultCache string
	// Offline forbids network access: HTTP stores answer from their
	// downstream caches only.
	Offline bool
	// Timeout bounds one HTTP attempt (headers and body). 0: DefaultTimeout.
	Timeout time.Duration
	// Retries is the number of extra attempts after a 5xx answer, a
	// timeout or a connection error (never after a 4xx). 0: DefaultRetries;
	// negative: no retries.
	Retries int
	// Backoff is the delay before the first retry; it doubles each time.
	// 0: DefaultBackoff.
	Backoff time.Duration
	// MaxFileSize caps a download and an unpacked file. 0: DefaultMaxFileSize.
	MaxFileSize int64
	// NegativeTTL is how long a miss (404) is remembered for a server.
	// 0: DefaultNegativeTTL; negative: misses are not remembered.
	NegativeTTL time.Duration
	// NegativeCacheFile, if set, persists remembered misses across runs
	// (a small JSON file, written atomically).
	NegativeCacheFile string
	// UserAgent is sent with HTTP requests; empty: "kdtriage-symbols".
	UserAgent string
	// Now returns the current time (tests); nil: time.Now.
	Now func() time.Time
}
