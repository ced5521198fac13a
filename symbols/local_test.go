package symbols

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var testGUID = GUID{0x3844DBB9, 0x2017, 0x4967, [8]byte{0xBE, 0x7A, 0xA4, 0xA2, 0xC2, 0x04, 0x30, 0xFA}}

func TestDirStoreLayouts(t *testing.T) {
	k := PDBKey("ntkrnlmp.pdb", testGUID, 2)
	want := content(1, 70000)
	tests := []struct {
		name  string
		setup func(t *testing.T, root string)
	}{
		{"flat", func(t *testing.T, root string) { put(t, root, k.String(), want) }},
		{"two-tier", func(t *testing.T, root string) {
			put(t, root, "index2.txt", nil)
			put(t, root, "nt/"+k.String(), want)
		}},
		{"two-tier lowercase prefix", func(t *testing.T, root string) {
			put(t, root, "index2.txt", []byte("anything"))
			put(t, root, "nt/"+k.String(), want)
		}},
		{"compressed", func(t *testing.T, root string) {
			put(t, root, "ntkrnlmp.pdb/"+k.ID+"/ntkrnlmp.pd_", makeCAB(t, "ntkrnlmp.pdb", want))
		}},
		{"two-tier compressed", func(t *testing.T, root string) {
			put(t, root, "index2.txt", nil)
			put(t, root, "nt/ntkrnlmp.pdb/"+k.ID+"/ntkrnlmp.pd_", makeCAB(t, "ntkrnlmp.pdb", want))
		}},
		{"lowercase id", func(t *testing.T, root string) {
			put(t, root, "ntkrnlmp.pdb/"+strings.ToLower(k.ID)+"/ntkrnlmp.pdb", want)
		}},
		{"file.ptr PATH absolute", func(t *testing.T, root string) {
			real := put(t, t.TempDir(), "elsewhere/ntkrnlmp.pdb", want)
			put(t, root, "ntkrnlmp.pdb/"+k.ID+"/file.ptr", []byte("PATH:"+real+"\r\n"))
		}},
		{"file.ptr bare relative", func(t *testing.T, root string) {
			put(t, root, "blobs/nt.bin", want)
			put(t, root, "ntkrnlmp.pdb/"+k.ID+"/file.ptr", []byte("../../blobs/nt.bin"))
		}},
		{"file.ptr to compressed", func(t *testing.T, root string) {
			real := put(t, root, "blobs/nt.pd_", makeCAB(t, "ntkrnlmp.pdb", want))
			put(t, root, "ntkrnlmp.pdb/"+k.ID+"/file.ptr", []byte("path: "+real))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, scratch := t.TempDir(), t.TempDir()
			tt.setup(t, root)
			s := NewDirStore(root, Options{DefaultCache: scratch})
			p, err := s.Fetch(context.Background(), k)
			if err != nil {
				t.Fatal(err)
			}
			if got := mustRead(t, p); !bytes.Equal(got, want) {
				t.Fatalf("%s: %d bytes, want the %d stored", p, len(got), len(want))
			}
		})
	}
}

func TestDirStoreMisses(t *testing.T) {
	k := PDBKey("a.pdb", testGUID, 1)
	tests := []struct {
		name  string
		setup func(t *testing.T, root string)
		want  error
	}{
		{"empty store", func(*testing.T, string) {}, ErrNotFound},
		{"other age", func(t *testing.T, root string) { put(t, root, "a.pdb/"+testGUID.Hex()+"2/a.pdb", []byte("x")) }, ErrNotFound},
		{"two-tier store, flat file", func(t *testing.T, root string) {
			put(t, root, "index2.txt", nil)
			put(t, root, k.String(), []byte("x"))
		}, ErrNotFound},
		{"file.ptr MSG", func(t *testing.T, root string) {
			put(t, root, "a.pdb/"+k.ID+"/file.ptr", []byte("MSG: removed for licensing reasons"))
		}, ErrPointerMessage},
		{"file.ptr UNC", func(t *testing.T, root string) {
			put(t, root, "a.pdb/"+k.ID+"/file.ptr", []byte(`PATH:\\buildsrv\drop\a.pdb`))
		}, ErrNotFound},
		{"file.ptr dangling", func(t *testing.T, root string) {
			put(t, root, "a.pdb/"+k.ID+"/file.ptr", []byte("PATH:/nonexistent/a.pdb"))
		}, ErrNotFound},
		{"compressed too large", func(t *testing.T, root string) {
			put(t, root, "a.pdb/"+k.ID+"/a.pd_", makeCAB(t, "a.pdb", content(2, 300000)))
		}, ErrTooLarge},
		{"corrupt compressed", func(t *testing.T, root string) {
			b := makeCAB(t, "a.pdb", content(2, 5000))
			put(t, root, "a.pdb/"+k.ID+"/a.pd_", b[:len(b)-20])
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			tt.setup(t, root)
			_, err := NewDirStore(root, Options{DefaultCache: t.TempDir(), MaxFileSize: 200000}).Fetch(context.Background(), k)
			if err == nil {
				t.Fatal("found")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if tt.name == "file.ptr MSG" && !strings.Contains(err.Error(), "licensing") {
				t.Errorf("error %q does not carry the message", err)
			}
		})
	}
}

// TestKeysCannotEscape puts a file next to the store that a hostile key
// would reach, and checks that no store, cache or chain reads or writes
// outside its directories.
func TestKeysCannotEscape(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "store")
	cache := filepath.Join(base, "cache")
	put(t, base, "secret/x/secret", []byte("secret"))
	put(t, root, "pingme.txt", nil)
	hostile := []Key{
		{Name: "..", ID: "secret", File: "x"},
		{Name: "../secret", ID: "x", File: "secret"},
		{Name: `..\secret`, ID: "x", File: "secret"},
		{Name: "secret", ID: "..", File: "secret"},
		{Name: filepath.Join(base, "secret"), ID: "x", File: "secret"},
		{Name: "C:", ID: "x", File: "secret"},
		{Name: "a\x00", ID: "x", File: "secret"},
		{Name: "a", ID: "x", File: "../../secret/x/secret"},
		ImageKey("..", 0, 0),
		{Name: "..secret", ID: "x", File: "secret"}, // two-tier prefix ".."
	}
	put(t, base, "..secret/x/secret", []byte("secret"))
	put(t, cache, "index2.txt", nil)
	chain := mustChain(t, "cache*"+cache+";"+root+";srv*"+cache+"*"+root, Options{DefaultCache: cache})
	for _, k := range hostile {
		for name, s := range map[string]Store{"dir": NewDirStore(root, Options{DefaultCache: cache}), "chain": chain} {
			p, err := s.Fetch(context.Background(), k)
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Errorf("%s: Fetch(%q) = %q, %v; want a *KeyError", name, k.String(), p, err)
			}
		}
		if _, err := chain.Candidates(k); err == nil {
			t.Errorf("Candidates(%q) accepted", k.String())
		}
	}
	// Nothing was created outside the two directories.
	entries, _ := os.ReadDir(base)
	for _, e := range entries {
		if n := e.Name(); n != "store" && n != "cache" && n != "secret" && n != "..secret" {
			t.Errorf("unexpected %s in %s", n, base)
		}
	}
}

func TestPlainDirectoryElement(t *testing.T) {
	dir, cache := t.TempDir(), t.TempDir()
	k := PDBKey("app.pdb", testGUID, 1)
	want := content(3, 1000)
	put(t, dir, "pdb/app.pdb", want) // WinDbg's DIR\ext\file layout
	c := mustChain(t, dir, Options{DefaultCache: cache})
	f, err := c.Locate(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	if f.Exact || !bytes.Equal(mustRead(t, f.Path), want) {
		t.Fatalf("Locate = %+v: want an inexact match by name with the file's bytes", f)
	}
	// In store layout the same directory gives an exact match.
	put(t, dir, k.String(), want)
	f, err = c.Locate(context.Background(), k)
	if err != nil || !f.Exact {
		t.Fatalf("Locate = %+v, %v; want exact", f, err)
	}
}

func TestCacheElementAndDownstreamChain(t *testing.T) {
	k := ImageKey("amdppm.sys", 0x5F9B9A8E, 0x3b000)
	want := content(4, 4000)
	up, c1, c2, cache := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	put(t, up, "amdppm.sys/"+k.ID+"/amdppm.sy_", makeCAB(t, "amdppm.sys", want))

	// srv*C1*C2*UP: found upstream (compressed), unpacked into C2, copied to C1.
	c := mustChain(t, "srv*"+c1+"*"+c2+"*"+up, Options{})
	p, err := c.Fetch(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	if want1 := filepath.Join(c1, "amdppm.sys", k.ID, "amdppm.sys"); p != want1 {
		t.Errorf("path %s, want %s", p, want1)
	}
	for _, d := range []string{c1, c2} {
		if got := mustRead(t, filepath.Join(d, filepath.FromSlash(k.String()))); !bytes.Equal(got, want) {
			t.Errorf("%s holds wrong bytes", d)
		}
	}
	// Remove from C1 and the upstream: the copy in C2 refills C1.
	os.RemoveAll(filepath.Join(c1, "amdppm.sys"))
	os.RemoveAll(filepath.Join(up, "amdppm.sys"))
	f, err := c.Locate(context.Background(), k)
	if err != nil || f.Path != filepath.Join(c1, filepath.FromSlash(k.String())) || f.Source != c2 || !f.Exact {
		t.Fatalf("refill from C2: %+v, %v", f, err)
	}

	// cache*DIR in front of a plain store element caches what it finds.
	up2 := t.TempDir()
	put(t, up2, k.String(), want)
	c = mustChain(t, "cache*"+cache+";"+up2, Options{})
	if p, err = c.Fetch(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(cache, filepath.FromSlash(k.String())) || !bytes.Equal(mustRead(t, p), want) {
		t.Fatalf("cache* did not cache: %s", p)
	}
}

func TestChainOrderAndCandidates(t *testing.T) {
	a, b, cache := t.TempDir(), t.TempDir(), t.TempDir()
	k := PDBKey("x.pdb", testGUID, 3)
	put(t, a, k.String(), []byte("from a"))
	put(t, b, k.String(), []byte("from b"))
	c := mustChain(t, a+";"+b+";srv*"+cache+"*https://symbols.example.com/sym/", Options{})
	f, err := c.Locate(context.Background(), k)
	if err != nil || f.Element != 0 || string(mustRead(t, f.Path)) != "from a" {
		t.Fatalf("Locate = %+v, %v; want element 0", f, err)
	}
	cands, err := c.Candidates(k)
	if err != nil {
		t.Fatal(err)
	}
	var locs []string
	for _, x := range cands {
		locs = append(locs, x.Location)
	}
	wantOrder := []string{
		filepath.Join(a, "x.pdb", k.ID, "x.pdb"),
		filepath.Join(b, "x.pdb", k.ID, "x.pdb"),
		filepath.Join(cache, "x.pdb", k.ID, "x.pdb"),
		"https://symbols.example.com/sym/x.pdb/" + k.ID + "/x.pdb",
		"https://symbols.example.com/sym/x.pdb/" + k.ID + "/x.pd_",
		"https://symbols.example.com/sym/x.pdb/" + k.ID + "/file.ptr",
	}
	last := -1
	for _, w := range wantOrder {
		i := indexOf(locs, w)
		if i < 0 || i < last {
			t.Fatalf("candidate %s missing or out of order in\n%s", w, strings.Join(locs, "\n"))
		}
		last = i
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func TestNewChainNeedsDefaultCache(t *testing.T) {
	for _, s := range []string{"srv*https://s.example/x", "cache*;/tmp", "srv**http://s"} {
		p, err := ParsePath(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := NewChain(p, Options{}); err == nil {
			t.Errorf("NewChain(%q) without DefaultCache succeeded", s)
		}
		if _, err := NewChain(p, Options{DefaultCache: t.TempDir()}); err != nil {
			t.Errorf("NewChain(%q): %v", s, err)
		}
	}
}

// TestCorpusCompressedStore serves the real basic32.pd_ from a local store.
func TestCorpusCompressedStore(t *testing.T) {
	src, err := filepath.Abs(filepath.Join(corpusDir(t), "symbols", "basic32.pd_"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	k := Key{Name: "basic32.pdb", ID: "0123456789ABCDEF0123456789ABCDEF1", File: "basic32.pdb"}
	dst := filepath.Join(root, "basic32.pdb", k.ID, "basic32.pd_")
	os.MkdirAll(filepath.Dir(dst), 0o755)
	if err := os.Symlink(src, dst); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	p, err := mustChain(t, "srv*"+cache+"*"+root, Options{}).Fetch(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	b := mustRead(t, p)
	if !bytes.HasPrefix(b, []byte("Microsoft C/C++ MSF 7.00\r\n\x1aDS")) || len(b) != 6590464 {
		t.Fatalf("unpacked %d bytes starting %q", len(b), b[:min(len(b), 32)])
	}
}

// TestCorpusBreakpadStore looks up the Breakpad test symbols, which are in
// symbol-store layout, through a plain directory element.
func TestCorpusBreakpadStore(t *testing.T) {
	dir := filepath.Join(corpusDir(t), "symbols", "breakpad")
	c := mustChain(t, dir, Options{DefaultCache: t.TempDir()})
	for _, k := range []Key{
		BreakpadKey("test_app.pdb", "5A9832E5287241C1838ED98914E9B7FF1"),
		BreakpadKey("null_read_av", "7b7d1968ff0d47ae4366e9c3a7e1b6750"),
	} {
		f, err := c.Locate(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		if !f.Exact || !bytes.HasPrefix(mustRead(t, f.Path), []byte("MODULE ")) {
			t.Errorf("%s: %+v is not an exact hit on a .sym file", k, f)
		}
	}
	if _, err := c.Fetch(context.Background(), BreakpadKey("test_app.pdb", "00000000000000000000000000000000F")); !errors.Is(err, ErrNotFound) {
		t.Errorf("wrong ID: %v", err)
	}
}

// TestIndex2DirectoryDoesNotFlipLayout caches a file whose key is named
// "index2.txt" in a flat cache. The directory that creates must not turn
// the cache into a two-tier store, which would hide what it held before.
func TestIndex2DirectoryDoesNotFlipLayout(t *testing.T) {
	up, cache := t.TempDir(), t.TempDir()
	nt := PDBKey("ntkrnlmp.pdb", testGUID, 1)
	hostile := ImageKey("index2.txt", 0x12345678, 0x1000)
	put(t, up, nt.String(), []byte("nt"))
	put(t, up, hostile.String(), []byte("hostile"))
	c := mustChain(t, "srv*"+cache+"*"+up, Options{})
	for _, k := range []Key{nt, hostile} {
		if _, err := c.Fetch(context.Background(), k); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(cache, "index2.txt")); err != nil || !fi.IsDir() {
		t.Fatalf("expected the hostile key's directory in the cache: %v", err)
	}
	// With the upstream gone, the first file must still come from the cache.
	c = mustChain(t, "srv*"+cache+"*"+t.TempDir(), Options{})
	f, err := c.Locate(context.Background(), nt)
	if err != nil {
		t.Fatalf("cached %s lost after caching %s: %v", nt, hostile, err)
	}
	if got := string(mustRead(t, f.Path)); got != "nt" || f.Source != cache {
		t.Errorf("got %q from %s, want \"nt\" from %s", got, f.Source, cache)
	}
}

// TestCacheSymlinkNotFollowedOnWrite plants a symbolic link in a cache
// where a key's directory goes: caching must not write through it.
func TestCacheSymlinkNotFollowedOnWrite(t *testing.T) {
	up, cache, outside := t.TempDir(), t.TempDir(), t.TempDir()
	k := PDBKey("ntkrnlmp.pdb", testGUID, 1)
	put(t, up, k.String(), []byte("nt"))
	if err := os.Symlink(outside, filepath.Join(cache, k.Name)); err != nil {
		t.Skipf("no symbolic links here: %v", err)
	}
	c := mustChain(t, "srv*"+cache+"*"+up, Options{})
	_, err := c.Fetch(context.Background(), k)
	if err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Fetch = %v, want an error naming the symbolic link", err)
	}
	entries, _ := os.ReadDir(outside)
	for _, e := range entries {
		t.Errorf("written outside the cache: %s", e.Name())
	}
}
