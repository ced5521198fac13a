package cab

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReader opens arbitrary bytes as a cabinet and reads every file under
// small limits: it must never panic, hang or allocate without bound.
func FuzzReader(f *testing.F) {
	f.Add(buildCAB(f, []tfolder{{CompressMSZIP, 1000}}, []tfile{{"a.pdb", repetitive(1, 3000), 0}}, true).cab)
	f.Add(buildCAB(f, []tfolder{{CompressNone, 100}, {CompressMSZIP, 512}}, []tfile{{"x", []byte("abc"), 0}, {"y", repetitive(2, 2000), 1}}, false).cab)
	dir := os.Getenv("KDTRIAGE_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "corpus")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "symbols", "basic32.pd_")); err == nil {
		f.Add(b[:min(len(b), 4<<10)]) // the start of a real cabinet
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := Limits{MaxFolders: 16, MaxFiles: 64, MaxFileSize: 1 << 20, MaxFolderSize: 2 << 20}
		r, err := NewReaderLimits(bytes.NewReader(data), int64(len(data)), lim)
		if err != nil {
			return
		}
		for _, f := range r.Files {
			rc, err := f.Open()
			if err != nil {
				continue
			}
			n, err := io.Copy(io.Discard, rc)
			if err == nil && n != int64(f.Size) {
				t.Fatalf("file %q: read %d bytes without error, size says %d", f.Name, n, f.Size)
			}
		}
	})
}
