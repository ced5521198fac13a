package kdump

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/kdtriage/kdtriage/kdump/kdumptest"
)

// countingReader counts the bytes read from the file.
type countingReader struct {
	r io.ReaderAt
	n atomic.Int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// analyzeOnce is what an analysis does first: open, header, module list,
// context, and the context thread's stack from SP up to the thread's
// StackBase (at most 64 KiB). It returns the stack bytes read.
func analyzeOnce(r io.ReaderAt, size int64) (int, error) {
	f, err := NewFile(r, size)
	if err != nil {
		return 0, err
	}
	_ = f.Header().BugCheck
	mods, err := f.Modules()
	if err != nil {
		return 0, err
	}
	if len(mods) == 0 {
		return 0, errors.New("no modules")
	}
	c, err := f.Context()
	if err != nil {
		return 0, err
	}
	th, _, err := f.CurrentThread()
	if err != nil {
		return 0, err
	}
	k, err := f.KDBG()
	if err != nil {
		return 0, err
	}
	ptr := f.Machine().PointerSize()
	base, err := ReadPointer(f.Memory(), th+uint64(k.OffsetKThreadStackBase), ptr)
	if err != nil {
		return 0, err
	}
	sp := c.SP()
	if base <= sp || base-sp > 64<<10 {
		return 0, errors.New("context SP is not below the thread's StackBase")
	}
	buf := make([]byte, base-sp)
	return f.Memory().ReadVirtual(buf, sp)
}

func benchAnalyze(b *testing.B, path string) {
	fh, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		b.Fatal(err)
	}
	cr := &countingReader{r: fh}
	// Heap growth of one analysis, keeping its results alive.
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := analyzeOnce(cr, st.Size()); err != nil {
		b.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	heap := int64(after.TotalAlloc - before.TotalAlloc)
	cr.n.Store(0)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		if _, err := analyzeOnce(cr, st.Size()); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(cr.n.Load())/float64(n), "file-bytes/op")
	b.ReportMetric(float64(heap), "heap-bytes")
	b.ReportMetric(float64(st.Size()), "dump-bytes")
}

// writeSynthetic writes a sparse synthetic dump into dir.
func writeSynthetic(b *testing.B, dir string, s kdumptest.Spec) string {
	im, _, err := kdumptest.Build(s)
	if err != nil {
		b.Fatal(err)
	}
	path, err := im.WriteTemp(dir, "synthetic-*.dmp")
	if err != nil {
		b.Fatal(err)
	}
	return path
}

func BenchmarkAnalyze(b *testing.B) {
	b.Run("corpus-triage-x64", func(b *testing.B) {
		dir := corpusDir(b)
		benchAnalyze(b, filepath.Join(dir, "kernel", "win10-triage_x64.dmp"))
	})
	for _, tc := range []struct {
		name string
		spec kdumptest.Spec
	}{
		{"synthetic-triage-x64", kdumptest.Spec{Kind: kdumptest.Triage, Processors: 16}},
		{"synthetic-full-16MiB", kdumptest.Spec{Kind: kdumptest.Full, Processors: 16}},
		{"synthetic-full-16GiB", kdumptest.Spec{Kind: kdumptest.Full, Processors: 16, MemoryBytes: 16 << 30}},
		{"synthetic-bitmap-kernel-16GiB", kdumptest.Spec{Kind: kdumptest.BitmapKernel, Processors: 16, MemoryBytes: 16 << 30}},
		{"synthetic-bitmap-full-16GiB", kdumptest.Spec{Kind: kdumptest.BitmapFull, Processors: 16, MemoryBytes: 16 << 30}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			benchAnalyze(b, writeSynthetic(b, b.TempDir(), tc.spec))
		})
	}
}
