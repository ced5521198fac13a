package minidump

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkListing opens a real 2.2 MB Crashpad minidump from memory and
// writes its full listing (every stream parsed, 78 modules, 676 handles,
// 22014 memory regions).
func BenchmarkListing(b *testing.B) {
	path := filepath.Join(corpusDir(b), "user", "electron-crashpad.dmp")
	data, err := os.ReadFile(path)
	if err != nil {
		b.Skip(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		f, err := NewFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			b.Fatal(err)
		}
		if err := f.WriteListing(io.Discard); err != nil {
			b.Fatal(err)
		}
		_ = f.CrashReason()
	}
}

// BenchmarkOpenListing includes reading the file from disk (Open).
func BenchmarkOpenListing(b *testing.B) {
	path := filepath.Join(corpusDir(b), "user", "electron-crashpad.dmp")
	b.ReportAllocs()
	for b.Loop() {
		f, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := f.WriteListing(io.Discard); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}
