package triage

import (
	"bytes"
	"context"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/kdump/kdumptest"
)

// BenchmarkAnalyzeSynthetic analyses a synthetic x64 triage dump held in
// memory (open included).
func BenchmarkAnalyzeSynthetic(b *testing.B) {
	im, _, err := kdumptest.Build(kdumptest.Spec{Arch: kdumptest.AMD64})
	if err != nil {
		b.Fatal(err)
	}
	data, err := im.Bytes()
	if err != nil {
		b.Fatal(err)
	}
	set := defaultRules(b)
	b.ReportAllocs()
	for b.Loop() {
		f, err := kdump.NewFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Analyze(context.Background(), f, Options{Rules: set}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAnalyzeSmallDump opens and analyses the corpus' 280 KiB
// Windows 8.1 small memory dump from disk.
func BenchmarkAnalyzeSmallDump(b *testing.B) {
	dir := corpusDir(b)
	path := filepath.Join(dir, "kernel", "win81-111217-27671-01.dmp")
	set := defaultRules(b)
	b.ReportAllocs()
	for b.Loop() {
		f, err := kdump.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Analyze(context.Background(), f, Options{Rules: set}); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

// BenchmarkAnalyzeDirectory analyses 1,000 dumps (the corpus kernel dumps
// repeated) with GOMAXPROCS workers, as `kdtriage analyze DIR` does, and
// reports dumps per second.
func BenchmarkAnalyzeDirectory(b *testing.B) {
	dir := corpusDir(b)
	files, _ := filepath.Glob(filepath.Join(dir, "kernel", "*.dmp"))
	if len(files) == 0 {
		b.Skip("no kernel dumps in the corpus")
	}
	paths := make([]string, 1000)
	for i := range paths {
		paths[i] = files[i%len(files)]
	}
	set := defaultRules(b)
	workers := runtime.GOMAXPROCS(0)
	b.ReportAllocs()
	var total time.Duration
	for b.Loop() {
		start := time.Now()
		next := make(chan string)
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for p := range next {
					f, err := kdump.Open(p)
					if err != nil {
						b.Error(err)
						continue
					}
					if _, err := Analyze(context.Background(), f, Options{Rules: set}); err != nil {
						b.Error(err)
					}
					f.Close()
				}
			}()
		}
		for _, p := range paths {
			next <- p
		}
		close(next)
		wg.Wait()
		total += time.Since(start)
	}
	b.ReportMetric(float64(len(paths)*b.N)/total.Seconds(), "dumps/s")
}

// BenchmarkFailureIDHash measures the bucket hash.
func BenchmarkFailureIDHash(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = FailureIDHash(SourceKernel, "0x124_16_GenuineIntel__UNKNOWN_IMAGE_GenuineIntel.sys")
	}
}

// BenchmarkAnalyzeNilRules analyses the synthetic dump with Options.Rules
// nil, the embedded default rule set: what a caller that does not compile
// the rules itself pays per dump.
func BenchmarkAnalyzeNilRules(b *testing.B) {
	im, _, err := kdumptest.Build(kdumptest.Spec{Arch: kdumptest.AMD64})
	if err != nil {
		b.Fatal(err)
	}
	data, err := im.Bytes()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		f, err := kdump.NewFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Analyze(context.Background(), f, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
