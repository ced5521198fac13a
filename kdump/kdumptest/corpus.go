package kdumptest

import (
	"os"
	"path/filepath"
	"testing"
)

// CorpusDir returns the shared real-world dump corpus for tests:
// $KDTRIAGE_CORPUS, else shared/corpus beside the module root (found by
// walking up from the working directory to go.mod). It skips the test,
// saying where it looked, when the corpus is absent, so a fresh clone
// still passes.
func CorpusDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("KDTRIAGE_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "shared", "corpus")
		if root, ok := moduleRoot(); ok {
			dir = filepath.Join(filepath.Dir(root), "shared", "corpus")
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "EXPECTED.tsv")); err != nil {
		t.Skipf("corpus not found at %s (set KDTRIAGE_CORPUS to the shared/corpus directory): %v", dir, err)
	}
	return dir
}

// moduleRoot returns the directory holding go.mod above the working directory.
func moduleRoot() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}
