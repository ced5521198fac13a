package symbols

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// symServer is a real HTTP symbol server over a SymStore tree on disk, with
// per-path behaviours and request counting.
type symServer struct {
	root string
	srv  *httptest.Server

	mu       sync.Mutex
	hits     map[string]int           // URL path -> requests
	slow     map[string]time.Duration // URL path -> delay before answering
	fail503  map[string]int           // URL path -> number of 503 answers before serving
	status   map[string]int           // URL path -> fixed status
	stall    map[string]bool          // URL path -> send half the body, then hang
	delay    time.Duration            // before every file answer
	chunked  bool                     // omit Content-Length
	inFlight int
	maxIn    int
}

func newSymServer(t *testing.T) *symServer {
	s := &symServer{root: t.TempDir(), hits: map[string]int{}, slow: map[string]time.Duration{}, fail503: map[string]int{}, status: map[string]int{}, stall: map[string]bool{}}
	s.srv = httptest.NewServer(s)
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the base of the store, like https://msdl.microsoft.com/download/symbols.
func (s *symServer) URL() string { return s.srv.URL + "/download/symbols" }

func (s *symServer) count(rel string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits["/download/symbols/"+rel]
}

func (s *symServer) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.hits {
		n += v
	}
	return n
}

func (s *symServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	s.mu.Lock()
	s.hits[p]++
	n := s.hits[p]
	slow, fails, st, delay, chunked, stall := s.slow[p], s.fail503[p], s.status[p], s.delay, s.chunked, s.stall[p]
	s.inFlight++
	s.maxIn = max(s.maxIn, s.inFlight)
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.inFlight--; s.mu.Unlock() }()

	wait := func(d time.Duration) bool {
		select {
		case <-time.After(d):
			return true
		case <-r.Context().Done():
			return false
		}
	}
	if slow > 0 && !wait(slow) {
		return
	}
	if n <= fails {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	if st != 0 {
		http.Error(w, http.StatusText(st), st)
		return
	}
	rel, ok := strings.CutPrefix(p, "/download/symbols/")
	if !ok || path.Clean("/"+rel) != "/"+rel {
		http.NotFound(w, r)
		return
	}
	b, err := os.ReadFile(filepath.Join(s.root, filepath.FromSlash(rel)))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	if delay > 0 && !wait(delay) {
		return
	}
	if !chunked {
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	}
	if stall {
		w.Write(b[:len(b)/2])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return
	}
	w.Write(b)
}

func fastOpts(cache string) Options {
	return Options{DefaultCache: cache, Timeout: 2 * time.Second, Backoff: time.Millisecond, Retries: 2}
}

func TestHTTPFetch(t *testing.T) {
	s := newSymServer(t)
	plain := PDBKey("plain.pdb", testGUID, 1)
	packed := PDBKey("ntkrnlmp.pdb", testGUID, 2)
	wantPlain, wantPacked := content(10, 50000), content(11, 200000)
	put(t, s.root, plain.String(), wantPlain)
	put(t, s.root, "ntkrnlmp.pdb/"+packed.ID+"/ntkrnlmp.pd_", makeCAB(t, "ntkrnlmp.pdb", wantPacked))

	cache := t.TempDir()
	c := mustChain(t, "srv*"+cache+"*"+s.URL(), fastOpts(""))
	ctx := context.Background()
	for _, tc := range []struct {
		k    Key
		want []byte
		reqs int // requests the first fetch makes
	}{
		{plain, wantPlain, 1},
		{packed, wantPacked, 2}, // the plain name 404s, then the _ name
	} {
		before := s.total()
		p, err := c.Fetch(ctx, tc.k)
		if err != nil {
			t.Fatal(err)
		}
		if p != filepath.Join(cache, filepath.FromSlash(tc.k.String())) {
			t.Errorf("path %s is not in the cache", p)
		}
		if !bytes.Equal(mustRead(t, p), tc.want) {
			t.Fatalf("%s: wrong bytes", tc.k)
		}
		if got := s.total() - before; got != tc.reqs {
			t.Errorf("%s: %d requests, want %d", tc.k, got, tc.reqs)
		}
		// Warm: no request at all.
		before = s.total()
		if p2, err := c.Fetch(ctx, tc.k); err != nil || p2 != p {
			t.Fatalf("warm fetch = %s, %v", p2, err)
		}
		if s.total() != before {
			t.Errorf("warm fetch of %s went to the server", tc.k)
		}
	}
	// No temporary files are left in the cache.
	filepath.WalkDir(cache, func(p string, d os.DirEntry, err error) error {
		if strings.Contains(d.Name(), ".tmp") || strings.HasSuffix(d.Name(), "_") {
			t.Errorf("left over in the cache: %s", p)
		}
		return nil
	})
	// Offline, a new chain over the same cache still finds both, and asks
	// the server nothing.
	before := s.total()
	off := mustChain(t, "srv*"+cache+"*"+s.URL(), Options{Offline: true})
	for _, k := range []Key{plain, packed} {
		if _, err := off.Fetch(ctx, k); err != nil {
			t.Errorf("offline %s: %v", k, err)
		}
	}
	if _, err := off.Fetch(ctx, PDBKey("other.pdb", testGUID, 1)); !errors.Is(err, ErrNotFound) {
		t.Errorf("offline miss: %v", err)
	}
	if s.total() != before {
		t.Errorf("offline chain made %d requests", s.total()-before)
	}
}

func TestHTTPMissAndNegativeCache(t *testing.T) {
	s := newSymServer(t)
	k := PDBKey("missing.pdb", testGUID, 1)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	negFile := filepath.Join(t.TempDir(), "misses.json")
	o := fastOpts(t.TempDir())
	o.Now, o.NegativeTTL, o.NegativeCacheFile = clock, time.Hour, negFile
	c := mustChain(t, "srv*"+s.URL(), o)

	_, err := c.Fetch(context.Background(), k)
	var nf *NotFoundError
	if !errors.As(err, &nf) || len(nf.Errs) != 0 {
		t.Fatalf("error %v, want a plain *NotFoundError", err)
	}
	if got := s.total(); got != 3 {
		t.Fatalf("%d requests for a miss, want 3 (file, file_, file.ptr)", got)
	}
	if _, err := c.Fetch(context.Background(), k); !errors.Is(err, ErrNotFound) || s.total() != 3 {
		t.Fatalf("second miss: %v after %d requests; want no new request", err, s.total())
	}
	// Persisted: a new chain (a new process) remembers the miss.
	c2 := mustChain(t, "srv*"+s.URL(), o)
	if _, err := c2.Fetch(context.Background(), k); !errors.Is(err, ErrNotFound) || s.total() != 3 {
		t.Fatalf("persisted miss: %v after %d requests", err, s.total())
	}
	// After the TTL the server is asked again, and now has the file.
	put(t, s.root, k.String(), []byte("arrived later"))
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	p, err := c.Fetch(context.Background(), k)
	if err != nil || string(mustRead(t, p)) != "arrived later" {
		t.Fatalf("after TTL: %s, %v", p, err)
	}
}

func TestHTTPFailures(t *testing.T) {
	k := PDBKey("f.pdb", testGUID, 1)
	rel := k.String()
	tests := []struct {
		name     string
		setup    func(s *symServer)
		opts     func(o *Options)
		wantErr  error // nil: success
		wantReqs int   // requests for rel
	}{
		{"503 then 200", func(s *symServer) { s.fail503["/download/symbols/"+rel] = 2 }, nil, nil, 3},
		{"503 forever", func(s *symServer) { s.fail503["/download/symbols/"+rel] = 100 }, nil, ErrNotFound, 3},
		{"403 is not retried", func(s *symServer) { s.status["/download/symbols/"+rel] = 403 }, nil, ErrNotFound, 1},
		{"slow answer hits the timeout", func(s *symServer) { s.slow["/download/symbols/"+rel] = 5 * time.Second },
			func(o *Options) { o.Timeout, o.Retries = 100*time.Millisecond, 1 }, context.DeadlineExceeded, 2},
		{"body stalls mid-way", func(s *symServer) { s.stall["/download/symbols/"+rel] = true },
			func(o *Options) { o.Timeout, o.Retries = 150*time.Millisecond, 1 }, context.DeadlineExceeded, 2},
		{"too large", nil, func(o *Options) { o.MaxFileSize = 1000 }, ErrTooLarge, 1},
		{"too large without length", func(s *symServer) { s.chunked = true }, func(o *Options) { o.MaxFileSize = 1000 }, ErrTooLarge, 1},
		{"no retries", func(s *symServer) { s.fail503["/download/symbols/"+rel] = 1 }, func(o *Options) { o.Retries = -1 }, ErrNotFound, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSymServer(t)
			want := content(20, 5000)
			put(t, s.root, rel, want)
			if tt.setup != nil {
				tt.setup(s)
			}
			o := fastOpts(t.TempDir())
			if tt.opts != nil {
				tt.opts(&o)
			}
			c := mustChain(t, "srv*"+s.URL(), o)
			start := time.Now()
			p, err := c.Fetch(context.Background(), k)
			if tt.wantErr == nil {
				if err != nil || !bytes.Equal(mustRead(t, p), want) {
					t.Fatalf("Fetch = %s, %v", p, err)
				}
			} else if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if got := s.count(rel); got != tt.wantReqs {
				t.Errorf("%d requests for %s, want %d", got, rel, tt.wantReqs)
			}
			if time.Since(start) > 4*time.Second {
				t.Errorf("took %v: the timeout did not cut the slow answer", time.Since(start))
			}
			filepath.WalkDir(o.DefaultCache, func(p string, d os.DirEntry, err error) error {
				if err == nil && strings.HasSuffix(d.Name(), ".tmp") {
					t.Errorf("temporary file left behind: %s", p)
				}
				return nil
			})
			// A failure that is not a miss must not be remembered as one.
			if tt.wantErr != nil && !errors.Is(tt.wantErr, ErrNotFound) {
				if neg := c.tiers[0].http.neg; neg.has(c.tiers[0].http.base + "|" + k.String()) {
					t.Error("failure recorded in the negative cache")
				}
			}
		})
	}
}

// TestHTTPSingleDownload asks for one key from many goroutines at once;
// the server must see exactly one request for it.
func TestHTTPSingleDownload(t *testing.T) {
	s := newSymServer(t)
	k := PDBKey("hot.pdb", testGUID, 7)
	want := content(30, 300000)
	put(t, s.root, k.String(), want)
	s.delay = 200 * time.Millisecond // keep the download in flight while the others ask
	c := mustChain(t, "srv*"+s.URL(), fastOpts(t.TempDir()))
	const n = 32
	var wg sync.WaitGroup
	paths := make([]string, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			paths[i], errs[i] = c.Fetch(context.Background(), k)
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || paths[i] != paths[0] {
			t.Fatalf("goroutine %d: %s, %v", i, paths[i], errs[i])
		}
	}
	if !bytes.Equal(mustRead(t, paths[0]), want) {
		t.Fatal("wrong bytes")
	}
	if got := s.count(k.String()); got != 1 {
		t.Fatalf("server saw %d requests for %s, want 1", got, k)
	}
}

// TestHTTPStoreDirect uses NewHTTPStore without a symbol path, and checks
// that hostile keys never reach the server.
func TestHTTPStoreDirect(t *testing.T) {
	s := newSymServer(t)
	k := ImageKey("amdppm.sys", 0x5F9B9A8E, 0x3b000)
	put(t, s.root, k.String(), []byte("MZ image"))
	cache := t.TempDir()
	st, err := NewHTTPStore(s.URL()+"/", cache, fastOpts(""))
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.Fetch(context.Background(), k)
	if err != nil || string(mustRead(t, p)) != "MZ image" {
		t.Fatalf("Fetch = %s, %v", p, err)
	}
	before := s.total()
	for _, bad := range []Key{{Name: "..", ID: "X", File: "y"}, {Name: "a%2F..", ID: "X", File: "y/../z"}} {
		if _, err := st.Fetch(context.Background(), bad); err == nil {
			t.Errorf("hostile key %q accepted", bad)
		}
	}
	if s.total() != before {
		t.Error("hostile keys reached the server")
	}
	if _, err := NewHTTPStore("not a url", cache, Options{}); err == nil {
		t.Error("NewHTTPStore accepted a non-URL")
	}
}

func TestHTTPFilePtrMessage(t *testing.T) {
	s := newSymServer(t)
	k := PDBKey("gone.pdb", testGUID, 1)
	put(t, s.root, "gone.pdb/"+k.ID+"/file.ptr", []byte("MSG: this build was withdrawn"))
	_, err := mustChain(t, "srv*"+s.URL(), fastOpts(t.TempDir())).Fetch(context.Background(), k)
	if !errors.Is(err, ErrPointerMessage) || !strings.Contains(err.Error(), "withdrawn") {
		t.Fatalf("error %v, want the file.ptr message", err)
	}
}

func TestContextCancel(t *testing.T) {
	s := newSymServer(t)
	k := PDBKey("c.pdb", testGUID, 1)
	put(t, s.root, k.String(), []byte("x"))
	s.slow["/download/symbols/"+k.String()] = 10 * time.Second
	c := mustChain(t, "srv*"+s.URL(), fastOpts(t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Fetch(ctx, k)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the context's deadline", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("cancellation took %v", time.Since(start))
	}
}

func benchmarkServer(b *testing.B) (*symServer, Key, int) {
	s := &symServer{root: b.TempDir(), hits: map[string]int{}, slow: map[string]time.Duration{}, fail503: map[string]int{}, status: map[string]int{}}
	s.srv = httptest.NewServer(s)
	b.Cleanup(s.srv.Close)
	k := PDBKey("bench.pdb", testGUID, 1)
	data := content(40, 1<<20)
	put(b, s.root, "bench.pdb/"+k.ID+"/bench.pd_", makeCAB(b, "bench.pdb", data))
	return s, k, len(data)
}

// BenchmarkFetchCold downloads and unpacks a compressed 1 MiB PDB into an
// empty cache each iteration.
func BenchmarkFetchCold(b *testing.B) {
	s, k, size := benchmarkServer(b)
	b.ReportAllocs()
	b.SetBytes(int64(size))
	for b.Loop() {
		b.StopTimer()
		cache := b.TempDir()
		c := mustChain(b, "srv*"+cache+"*"+s.URL(), fastOpts(""))
		b.StartTimer()
		if _, err := c.Fetch(context.Background(), k); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(s.total())/float64(b.N), "requests/op")
}

// BenchmarkFetchWarm fetches the same key from a filled cache.
func BenchmarkFetchWarm(b *testing.B) {
	s, k, _ := benchmarkServer(b)
	c := mustChain(b, "srv*"+b.TempDir()+"*"+s.URL(), fastOpts(""))
	if _, err := c.Fetch(context.Background(), k); err != nil {
		b.Fatal(err)
	}
	before := s.total()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Fetch(context.Background(), k); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(s.total()-before)/float64(b.N), "requests/op")
}

// TestHTTPServerDown: once a server has failed a request through all its
// retries, the next keys do not pay the retry budget again; it is asked
// again after serverDownTime.
func TestHTTPServerDown(t *testing.T) {
	s := newSymServer(t)
	a, b := PDBKey("a.pdb", testGUID, 1), PDBKey("b.pdb", testGUID, 1)
	put(t, s.root, a.String(), []byte("a"))
	put(t, s.root, b.String(), []byte("b"))
	s.fail503["/download/symbols/"+a.String()] = 100
	s.fail503["/download/symbols/"+b.String()] = 100
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	o := fastOpts(t.TempDir())
	o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := mustChain(t, "srv*"+s.URL(), o)
	if _, err := c.Fetch(context.Background(), a); err == nil {
		t.Fatal("a found on a failing server")
	}
	if got := s.count(a.String()); got != 3 {
		t.Fatalf("%d requests for a, want 3 (1 + 2 retries)", got)
	}
	_, err := c.Fetch(context.Background(), b)
	var he *HTTPError
	if err == nil || !errors.As(err, &he) || he.Status != http.StatusServiceUnavailable || !strings.Contains(err.Error(), "skipped") {
		t.Fatalf("b: %v; want the earlier 503 saying the server is skipped", err)
	}
	if got := s.count(b.String()); got != 0 {
		t.Fatalf("%d requests for b while the server is down, want 0", got)
	}
	mu.Lock()
	now = now.Add(serverDownTime)
	mu.Unlock()
	s.mu.Lock()
	s.fail503["/download/symbols/"+b.String()] = 0
	s.mu.Unlock()
	p, err := c.Fetch(context.Background(), b)
	if err != nil || string(mustRead(t, p)) != "b" {
		t.Fatalf("b after the pause: %s, %v", p, err)
	}
}
