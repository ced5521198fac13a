package triage

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/kdtriage/kdtriage/kdump"
)

// BenchmarkUserModeListingAndTriage measures what `kdtriage info` plus
// `kdtriage analyze` cost for one typical MDMP held in memory: opening it,
// the .dumpdebug-style listing of every stream, and the full analysis
// (exception, stack walk, rules, bucket) with a compiled rule set and no
// symbols. Target: under 20 ms per dump.
func BenchmarkUserModeListingAndTriage(b *testing.B) {
	dir := corpusDir(b)
	for _, name := range []string{"electron-crashpad.dmp", "breakpad-minidump_crashpad_annotation.dmp", "breakpad-tiny-exe-fastfail.dmp"} {
		data, err := os.ReadFile(filepath.Join(dir, "user", name))
		if err != nil {
			b.Skipf("%s: %v", name, err)
		}
		set := defaultRules(b)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			ctx := context.Background()
			for b.Loop() {
				d, err := kdump.NewAny(bytes.NewReader(data), int64(len(data)))
				if err != nil {
					b.Fatal(err)
				}
				if err := d.(*kdump.UserDump).Minidump().WriteListing(io.Discard); err != nil {
					b.Fatal(err)
				}
				rep, err := Analyze(ctx, d, Options{Rules: set})
				if err != nil || rep.FailureBucketID == "" {
					b.Fatal(err)
				}
				d.Close()
			}
		})
	}
}
