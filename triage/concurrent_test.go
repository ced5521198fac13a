package triage

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/kdump/kdumptest"
)

// TestAnalyzeConcurrentDefaultRules analyses dumps from several goroutines
// with Options.Rules nil, so they share the embedded rule set compiled
// once (run with -race): every report is the same as a lone analysis's.
func TestAnalyzeConcurrentDefaultRules(t *testing.T) {
	im, _, err := kdumptest.Build(kdumptest.Spec{Arch: kdumptest.AMD64})
	if err != nil {
		t.Fatal(err)
	}
	data, err := im.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	analyze := func() (*Report, error) {
		f, err := kdump.NewFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return nil, err
		}
		return Analyze(context.Background(), f, Options{})
	}
	want, err := analyze()
	if err != nil {
		t.Fatal(err)
	}
	if want.RuleSetHash != defaultRules(t).Hash() {
		t.Fatalf("rule set hash %s, want the embedded set's", want.RuleSetHash)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 4 {
				rep, err := analyze()
				switch {
				case err != nil:
					errs <- err.Error()
				case rep.FailureBucketID != want.FailureBucketID || rep.Followup != want.Followup || rep.RuleSetHash != want.RuleSetHash:
					errs <- rep.FailureBucketID + " " + rep.Followup
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("concurrent analysis: %s (want %s %s)", e, want.FailureBucketID, want.Followup)
	}
}
