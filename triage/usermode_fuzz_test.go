package triage

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/kdtriage/kdtriage/kdump"
)

// maxFuzzSeed caps the size of the corpus files FuzzAnalyzeUserMode is
// seeded with. Every input the fuzzer finds interesting is minimised, and
// minimising a several-hundred-KiB file takes the whole -fuzzminimizetime
// each time: with the 287 and 332 KiB corpus files as seeds most of a run
// went into minimisation (0 execs/s for long stretches; 3,443 execs in 90 s
// from an empty fuzz cache, against 36,542 with this cap and as many new
// inputs found). TestUserModeMutated and TestUserModeCorpus still cover the
// larger files.
const maxFuzzSeed = 128 << 10

// FuzzAnalyzeUserMode feeds mutated MDMP files to Analyze: a user-mode dump
// that opens must give a report with a bucket and its "um:" hash (or an
// error), never a panic or a hang, and the report must render as text.
// Seeds: every user-mode and malformed MDMP of the corpus, plus any
// regression inputs under testdata/usermode/.
func FuzzAnalyzeUserMode(f *testing.F) {
	dir := os.Getenv("KDTRIAGE_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "corpus")
	}
	var seeds []string
	for _, pat := range []string{"user/*.dmp", "malformed/*.dmp"} {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		seeds = append(seeds, m...)
	}
	m, _ := filepath.Glob(filepath.Join("testdata", "usermode", "*.dmp"))
	seeds = append(seeds, m...)
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil || len(b) > maxFuzzSeed || len(b) < 4 || string(b[:4]) != "MDMP" {
			continue
		}
		f.Add(b)
	}
	set := defaultRules(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := kdump.NewAny(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		defer d.Close()
		if _, ok := d.(*kdump.UserDump); !ok {
			return
		}
		rep, err := Analyze(context.Background(), d, Options{Rules: set, LegacyBucket: true})
		if err != nil {
			return
		}
		if rep.FailureBucketID == "" || rep.FailureIDHash != FailureIDHash(SourceUser, rep.FailureBucketID) || rep.Exception == nil {
			t.Fatalf("incomplete report: %q %s", rep.FailureBucketID, rep.FailureIDHash)
		}
		var buf bytes.Buffer
		if err := rep.WriteText(&buf, TextOptions{Legacy: true}); err != nil {
			t.Fatal(err)
		}
		_ = ReportRow(rep)
	})
}

// TestUserModeMutated runs the fuzz target's checks over deterministic
// mutations (random bytes overwritten) of the corpus's small user-mode
// dumps, so every test run covers hostile input without the fuzzer.
func TestUserModeMutated(t *testing.T) {
	_, files := userDumps(t)
	set := defaultRules(t)
	rng := rand.New(rand.NewPCG(6, 3))
	reports := 0
	for _, p := range files {
		orig, err := os.ReadFile(p)
		if err != nil || len(orig) > 512<<10 {
			continue
		}
		for range 20 {
			b := bytes.Clone(orig)
			for range 1 + rng.IntN(16) {
				b[rng.IntN(len(b))] = byte(rng.Uint32())
			}
			d, err := kdump.NewAny(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				continue
			}
			rep, err := Analyze(context.Background(), d, Options{Rules: set, LegacyBucket: true})
			d.Close()
			if err != nil {
				continue
			}
			reports++
			if rep.FailureBucketID == "" || rep.FailureIDHash != FailureIDHash(SourceUser, rep.FailureBucketID) || rep.Exception == nil {
				t.Fatalf("%s mutated: incomplete report %q", filepath.Base(p), rep.FailureBucketID)
			}
			var buf bytes.Buffer
			if err := rep.WriteText(&buf, TextOptions{Legacy: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if reports == 0 {
		t.Error("no mutated dump was analysed")
	}
}
