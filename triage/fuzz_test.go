package triage

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/kdump/kdumptest"
)

// FuzzAnalyze feeds hostile kernel dumps to Analyze: whatever the bytes,
// a dump that opens must give a report (or an error), never a panic or a
// hang, and the report must carry a bucket and its hash. Seeds are
// synthetic dumps (24 to 39 KiB) of every architecture and variants of
// them with other bug checks.
func FuzzAnalyze(f *testing.F) {
	seed := func(s kdumptest.Spec) {
		im, _, err := kdumptest.Build(s)
		if err != nil {
			f.Fatal(err)
		}
		b, err := im.Bytes()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, a := range []kdumptest.Arch{kdumptest.AMD64, kdumptest.ARM64, kdumptest.X86PAE, kdumptest.ARM} {
		seed(kdumptest.Spec{Arch: a})
	}
	for _, code := range []uint32{0x3B, 0x8E, 0x139, 0x9F, 0x116, 0xEF, 0xF4, 0xEA, 0x124, 0x50} {
		seed(kdumptest.Spec{Arch: kdumptest.AMD64, BugCheck: code, Params: [4]uint64{3, 0xfffff80480000000, 0xffff850429891720, 0xffff850429891ee8}})
	}
	// No corpus dump is a seed: the smallest is 280 KiB, and minimising
	// each interesting mutation of it takes the whole -fuzzminimizetime,
	// so a run spent most of its time at 0 execs/s (4,324 execs in 90 s
	// from an empty cache with it, 49,370 without; see maxFuzzSeed).
	// TestCorpusReports and TestCorpusPatchedCodes cover the real dumps.
	set := defaultRules(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := kdump.NewFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		rep, err := Analyze(context.Background(), d, Options{Rules: set, LegacyBucket: true})
		if err != nil {
			return
		}
		if rep.FailureBucketID == "" || rep.FailureIDHash != FailureIDHash(SourceKernel, rep.FailureBucketID) {
			t.Fatalf("bucket %q hash %q", rep.FailureBucketID, rep.FailureIDHash)
		}
		var buf bytes.Buffer
		if err := rep.WriteText(&buf, TextOptions{Legacy: true}); err != nil {
			t.Fatal(err)
		}
		if err := rep.WriteJSON(&buf, false); err != nil {
			t.Fatal(err)
		}
	})
}

// TestAnalyzeHostileParams runs every bug-check code the knowledge table
// has with parameters that point at the stack, at modules, at nothing and
// at the top of the address space, on a synthetic dump: no panics, and
// always a bucket.
func TestAnalyzeHostileParams(t *testing.T) {
	im, facts, err := kdumptest.Build(kdumptest.Spec{Arch: kdumptest.AMD64})
	if err != nil {
		t.Fatal(err)
	}
	data, err := im.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	set := defaultRules(t)
	vals := []uint64{0, 1, 3, facts.SP, facts.SP + 0x100, facts.StackBase - 8, facts.Modules[0].Base + 0x1000,
		facts.Modules[len(facts.Modules)-1].Base, ^uint64(0), ^uint64(0) - 7, 0x0000800000000000}
	codes := []uint32{0x0A, 0x19, 0x1A, 0x1E, 0x24, 0x3B, 0x3D, 0x44, 0x4E, 0x50, 0x7A, 0x7E, 0x7F, 0x8E, 0x9F, 0xA0,
		0xC2, 0xC4, 0xC5, 0xD1, 0xD5, 0xD8, 0xE1, 0xE2, 0xEA, 0xEF, 0xF4, 0x101, 0x109, 0x116, 0x117, 0x124, 0x12B,
		0x133, 0x139, 0x1000007E, 0x1000008E, 0x100000EA, 0xA0000001, 0xDEADDEAD, 0x12345678}
	for _, code := range codes {
		for i, v := range vals {
			b := bytes.Clone(data)
			binary.LittleEndian.PutUint32(b[0x38:], code)
			for p := range 4 {
				binary.LittleEndian.PutUint64(b[0x40+8*p:], vals[(i+p)%len(vals)]^uint64(p&1)*v)
			}
			d, err := kdump.NewFile(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Analyze(context.Background(), d, Options{Rules: set})
			if err != nil {
				t.Fatalf("code %#x: %v", code, err)
			}
			if rep.FailureBucketID == "" || rep.Culprit.Confidence == "" || len(rep.Why) == 0 {
				t.Errorf("code %#x params %v: incomplete report %+v", code, rep.BugCheck.Params, rep.Culprit)
			}
		}
	}
}

// TestAnalyzeMutatedDumps is a deterministic stand-in for a fuzzing run:
// synthetic dumps of every architecture with random bytes overwritten
// (fixed seed). Each must open and analyse, or fail cleanly.
func TestAnalyzeMutatedDumps(t *testing.T) {
	set := defaultRules(t)
	for _, a := range []kdumptest.Arch{kdumptest.AMD64, kdumptest.ARM64, kdumptest.X86PAE, kdumptest.ARM} {
		im, _, err := kdumptest.Build(kdumptest.Spec{Arch: a})
		if err != nil {
			t.Fatal(err)
		}
		data, err := im.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(uint64(a), 1))
		analysed := 0
		for range 250 {
			b := bytes.Clone(data)
			for range 1 + r.IntN(8) {
				b[r.IntN(len(b))] = byte(r.IntN(256))
			}
			d, err := kdump.NewFile(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				continue
			}
			rep, err := Analyze(context.Background(), d, Options{Rules: set})
			if err != nil {
				continue
			}
			analysed++
			if rep.FailureBucketID == "" {
				t.Errorf("%v: report without a bucket", a)
			}
		}
		if analysed == 0 {
			t.Errorf("%v: no mutated dump was analysed", a)
		}
	}
}
