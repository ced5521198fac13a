package symbols_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kdtriage/kdtriage/symbols"
	"github.com/kdtriage/kdtriage/symbols/pdb"
	"github.com/kdtriage/kdtriage/symbols/pe"
)

// TestCorpusBasic32EndToEnd is the acceptance check for compressed
// files: the PDB key of basic32.dll (from its CodeView record) is served as
// basic32.pd_ by a real HTTP symbol server; the chain downloads and unpacks
// it, and the PDB's GUID and age match the DLL's.
func TestCorpusBasic32EndToEnd(t *testing.T) {
	dir := os.Getenv("KDTRIAGE_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "corpus")
	}
	dll := filepath.Join(dir, "symbols", "basic32.dll")
	packed := filepath.Join(dir, "symbols", "basic32.pd_")
	if _, err := os.Stat(packed); err != nil {
		t.Skipf("corpus not found at %s (set KDTRIAGE_CORPUS): %v", dir, err)
	}
	img, err := pe.Open(dll)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	cv, err := img.CodeView()
	if err != nil {
		t.Fatal(err)
	}
	g, err := symbols.GUIDFromBytes(cv.GUID[:])
	if err != nil {
		t.Fatal(err)
	}
	key := symbols.PDBKey(cv.PDBPath, g, cv.Age)
	if key.Name != "basic32.pdb" || key.ID != cv.ID() {
		t.Fatalf("key %s disagrees with the pe package's id %s", key, cv.ID())
	}

	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/sym/"+key.Name+"/"+key.ID+"/basic32.pd_" {
			http.ServeFile(w, r, packed)
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()

	cache := t.TempDir()
	p, err := symbols.ParsePath("srv*" + cache + "*" + srv.URL + "/sym")
	if err != nil {
		t.Fatal(err)
	}
	chain, err := symbols.NewChain(p, symbols.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	local, err := chain.Fetch(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(local, cache) {
		t.Errorf("fetched file %s is not in the cache %s", local, cache)
	}
	f, err := pdb.Open(local)
	if err != nil {
		t.Fatalf("unpacked file is not a PDB: %v", err)
	}
	defer f.Close()
	// The DBI stream's age is the one the image records; the info stream's
	// may be higher after incremental links.
	if pg := f.GUID(); string(pg[:]) != string(cv.GUID[:]) || f.DBIAge() != cv.Age || f.Age() < cv.Age {
		t.Fatalf("PDB GUID %x age %d/%d (info/DBI), DLL wants %x age %d", pg, f.Age(), f.DBIAge(), cv.GUID, cv.Age)
	}
	if n := hits.Load(); n != 2 {
		t.Errorf("%d requests, want 2 (basic32.pdb missing, then basic32.pd_)", n)
	}
}
