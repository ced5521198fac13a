package triage

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdtriage/kdtriage/kdump"
)

// TestUserModeLegacyUserDump analyses the corpus's legacy USERDU64 dump
// (kdump.LegacyUserDump): the report carries its exception, its stack and
// a user-mode bucket.
func TestUserModeLegacyUserDump(t *testing.T) {
	dir := corpusDir(t)
	files, _ := filepath.Glob(filepath.Join(dir, "legacy", "*.dmp"))
	if len(files) == 0 {
		t.Skip("no legacy dumps in the corpus")
	}
	for _, p := range files {
		d, err := kdump.OpenLegacyUserDump(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		rep, err := Analyze(context.Background(), d, Options{Rules: defaultRules(t)})
		d.Close()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		info := d.Info()
		x := rep.Exception
		if info.HasException && (uint32(x.Code) != info.ExceptionCode || uint64(x.Address) != info.ExceptionAddress) {
			t.Errorf("%s: exception %+v, header %+v", p, x, info)
		}
		if rep.AnalysisSource != SourceUser || len(rep.Stack) == 0 || !strings.HasPrefix(rep.FailureBucketID, x.Class+"_") ||
			rep.FailureIDHash != FailureIDHash(SourceUser, rep.FailureBucketID) || rep.ProcessName == "" {
			t.Errorf("%s: incomplete report: bucket %q, %d frames, process %q", p, rep.FailureBucketID, len(rep.Stack), rep.ProcessName)
		}
		var buf bytes.Buffer
		if err := rep.WriteText(&buf, TextOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s (%s)", filepath.Base(p), rep.FailureBucketID, rep.Culprit.Symbol)
	}
}
