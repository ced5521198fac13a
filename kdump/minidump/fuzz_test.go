package minidump

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// exercise calls every accessor of f; it must not panic or hang.
func exercise(t testing.TB, f *File) {
	ths, _ := f.Threads()
	for _, th := range ths {
		_, _ = f.ContextBytes(th.Context)
	}
	_, _ = f.ThreadsEx()
	mods, _ := f.Modules()
	for i := range mods {
		_ = mods[i].DebugID() + mods[i].CodeID() + mods[i].DebugFile() + mods[i].Version.FileVersion()
	}
	if e, err := f.Exception(); err == nil {
		_, _ = f.ContextBytes(e.Context)
	}
	_, _ = f.SystemInfo()
	_, _ = f.MiscInfo()
	_, _ = f.HandleData()
	_, _ = f.UnloadedModules()
	_, _ = f.MemoryInfos()
	_, _ = f.ThreadInfos()
	_, _ = f.ThreadNames()
	_, _ = f.Comment()
	_, _ = f.Tokens()
	_, _ = f.FunctionTable()
	_, _ = f.SystemMemoryInfo()
	_, _ = f.ProcessVMCounters()
	_, _ = f.BreakpadInfo()
	_, _ = f.AssertionInfo()
	_, _ = f.CrashpadInfo()
	_ = f.CrashReason()
	_, _ = f.CrashAddress()
	_, _ = f.CrashingThreadID()
	_ = f.ProcessName()
	if mem, err := f.Memory(); err == nil {
		var b [16]byte
		for _, r := range mem.Ranges() {
			_, _ = mem.ReadVirtual(b[:], r.Start)
			_, _ = mem.ReadVirtual(b[:], r.End()-1)
		}
		_, _ = mem.ReadVirtual(b[:], ^uint64(0)-4)
	}
	if err := f.WriteListing(io.Discard); err != nil {
		t.Error(err) // Error, not Fatal: exercise also runs on other goroutines
	}
}

func FuzzNewFile(f *testing.F) {
	f.Add(buildSynthetic())
	f.Add([]byte("MDMP\x93\xa7\x00\x00"))
	// Seed with the corpus, read at test time (never copied).
	dir := os.Getenv("KDTRIAGE_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "corpus")
	}
	for _, sub := range []string{"user", "malformed"} {
		files, _ := filepath.Glob(filepath.Join(dir, sub, "*"))
		for _, p := range files {
			if st, err := os.Stat(p); err != nil || st.Size() > 1<<20 {
				continue // keep the fuzzer's inputs small
			}
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		mf, err := NewFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		exercise(t, mf)
	})
}
