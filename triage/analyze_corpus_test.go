package triage

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdtriage/kdtriage/kdump"
)

// TestCorpusReports checks every kernel dump of the corpus: a complete
// report, and for codes with an IP parameter the blamed image is the one
// EXPECTED.tsv lists (or the report explains why not).
func TestCorpusReports(t *testing.T) {
	dir := corpusDir(t)
	set := defaultRules(t)
	for _, row := range readExpected(t, dir) {
		t.Run(filepath.Base(row.file), func(t *testing.T) {
			rep := analyzeFile(t, filepath.Join(dir, row.file), Options{Rules: set})
			checkComplete(t, rep)
			if !strings.EqualFold(rep.BugCheck.Code.String(), row.bugcheck) {
				t.Errorf("bugcheck code %s, EXPECTED.tsv says %s", rep.BugCheck.Code, row.bugcheck)
			}
			if row.ipParam == "" {
				return
			}
			if rep.FaultingIP == nil || rep.FaultingIP.Address.String() != row.ipParam {
				t.Fatalf("faulting IP %+v, EXPECTED.tsv says %s", rep.FaultingIP, row.ipParam)
			}
			want := row.ipModule
			if want == "none" {
				if rep.Culprit.Kind != CulpritNoModule || !strings.Contains(rep.FailureBucketID, "NO_MODULE_IP") {
					t.Errorf("IP in no module: culprit %+v bucket %s", rep.Culprit, rep.FailureBucketID)
				}
				if strings.Contains(rep.FailureBucketID, "nt!") || rep.Culprit.Module == "nt" {
					t.Errorf("IP in no module but nt is blamed: %s", rep.FailureBucketID)
				}
				return
			}
			img := want[:strings.IndexByte(want, '+')]
			got := rep.Culprit.Image
			if img == "ntoskrnl.exe" && got == "ntkrnlmp.exe" {
				got = img
				if rep.Culprit.Confidence != ConfidenceLow {
					t.Errorf("nt blamed with %s confidence, want low", rep.Culprit.Confidence)
				}
			}
			if !strings.EqualFold(got, img) {
				// Allowed only when the report says why.
				if !strings.Contains(strings.Join(rep.Why, "\n"), "instead") {
					t.Errorf("blamed %s, EXPECTED.tsv says %s, and the report does not say why", got, img)
				}
			}
		})
	}
}

// checkComplete asserts the fields every kernel report must have.
func checkComplete(t *testing.T, rep *Report) {
	t.Helper()
	must := map[string]string{
		"failure_bucket_id":  rep.FailureBucketID,
		"failure_id_hash":    rep.FailureIDHash,
		"bugcheck name":      rep.BugCheck.Name,
		"culprit image":      rep.Culprit.Image,
		"culprit symbol":     rep.Culprit.Symbol,
		"confidence":         string(rep.Culprit.Confidence),
		"probably caused by": rep.ProbablyCausedBy,
		"stack command":      rep.StackCommand,
		"os version":         rep.OS.Version,
		"os name":            rep.OS.Name,
		"os platform":        rep.OS.Platform,
		"build lab branch":   rep.OS.Branch,
		"rule set hash":      rep.RuleSetHash,
	}
	for k, v := range must {
		if v == "" {
			t.Errorf("report has no %s", k)
		}
	}
	if rep.FailureIDHash != FailureIDHash("km", rep.FailureBucketID) {
		t.Errorf("hash %s does not match bucket %s", rep.FailureIDHash, rep.FailureBucketID)
	}
	if len(rep.Stack) == 0 || len(rep.Why) == 0 {
		t.Errorf("report has %d frames and %d why lines", len(rep.Stack), len(rep.Why))
	}
	if rep.SchemaVersion != SchemaVersion || rep.BucketSchemeVersion == "" {
		t.Errorf("versions %d %q", rep.SchemaVersion, rep.BucketSchemeVersion)
	}
}

func TestCorpusAmdppm(t *testing.T) {
	dir := corpusDir(t)
	rep := analyzeFile(t, filepath.Join(dir, "kernel", "win10-triage_x64.dmp"), Options{Rules: defaultRules(t)})
	if rep.Culprit.Image != "amdppm.sys" || rep.FailureBucketID != "AV_amdppm!unknown_function" {
		t.Errorf("culprit %s bucket %s, want amdppm.sys / AV_amdppm!unknown_function", rep.Culprit.Image, rep.FailureBucketID)
	}
	if rep.Culprit.Symbol != "amdppm+334c" || rep.BucketIDFuncOffset != "334c" {
		t.Errorf("symbol %s offset %s", rep.Culprit.Symbol, rep.BucketIDFuncOffset)
	}
	if rep.Culprit.Confidence != ConfidenceHigh {
		t.Errorf("confidence %s", rep.Culprit.Confidence)
	}
	if rep.Context.Source != "context_record" || rep.StackCommand != ".cxr 0xffff850429891720 ; kb" {
		t.Errorf("context %s, stack command %q", rep.Context.Source, rep.StackCommand)
	}
	if rep.OS.Version != "10.0.19041.1" || rep.OS.Branch != "vb_release" || rep.OS.Name != "Windows 10" || rep.OS.Platform != "x64" {
		t.Errorf("os %+v", rep.OS)
	}
	if rep.ProcessName != "System" || rep.Followup != "MachineOwner" {
		t.Errorf("process %q followup %q", rep.ProcessName, rep.Followup)
	}
	// The stack reaches amdppm frames below the faulting one.
	n := 0
	for _, fr := range rep.Stack[1:] {
		if fr.Module == "amdppm" {
			n++
		}
	}
	if n == 0 {
		t.Error("no amdppm frame below the faulting frame")
	}
}

func TestCorpusAMDDisplayFamily(t *testing.T) {
	dir := corpusDir(t)
	set := defaultRules(t)
	count := 0
	for _, row := range readExpected(t, dir) {
		if row.bugcheck != "0xa0000001" {
			continue
		}
		count++
		rep := analyzeFile(t, filepath.Join(dir, row.file), Options{Rules: set})
		if rep.Culprit.Image != "atikmdag.sys" {
			t.Errorf("%s: blamed %s, want atikmdag.sys", row.file, rep.Culprit.Image)
			continue
		}
		// Both sources of blame are named: the stack frame and the rule.
		why := strings.Join(rep.Why, "\n")
		if rep.Culprit.By != "stack" || !strings.Contains(why, "amd-display-custom-bugcheck") {
			t.Errorf("%s: blame by %q, why:\n%s", row.file, rep.Culprit.By, why)
		}
		if !strings.HasPrefix(rep.FailureBucketID, "0xA0000001_atikmdag!") {
			t.Errorf("%s: bucket %s", row.file, rep.FailureBucketID)
		}
	}
	if count != 15 {
		t.Errorf("found %d 0xA0000001 dumps, the corpus README lists 15", count)
	}
}

// patched returns a corpus dump with its bug-check code and parameters
// replaced, opened from memory.
func patched(t *testing.T, path string, code uint32, params [4]uint64) *kdump.File {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Clone(b)
	binary.LittleEndian.PutUint32(b[0x38:], code)
	for i, p := range params {
		binary.LittleEndian.PutUint64(b[0x40+8*i:], p)
	}
	f, err := kdump.NewFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestCorpusPatchedCodes drives the code-specific paths with real module
// lists and memory: the win10-triage_x64 dump with other bug checks.
func TestCorpusPatchedCodes(t *testing.T) {
	dir := corpusDir(t)
	path := filepath.Join(dir, "kernel", "win10-triage_x64.dmp")
	set := defaultRules(t)
	f0, err := kdump.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	mods, _ := f0.Modules()
	unl, _ := f0.UnloadedModules()
	f0.Close()
	mod := func(name string) kdump.Module {
		for _, m := range mods {
			if strings.EqualFold(m.Name, name) {
				return m
			}
		}
		t.Fatalf("no module %s", name)
		return kdump.Module{}
	}
	amd := mod("amdppm.sys")
	nt := mod("ntoskrnl.exe")
	if len(unl) == 0 {
		t.Fatal("no unloaded modules in the dump")
	}
	cases := []struct {
		name   string
		code   uint32
		params [4]uint64
		bucket string
		kind   CulpritKind
		image  string
		conf   Confidence
		irql   int
	}{
		{"D1 in driver", 0xD1, [4]uint64{0x10, 2, 0, amd.Base + 0x1234}, "AV_amdppm!unknown_function", CulpritFrame, "amdppm.sys", ConfidenceHigh, 2},
		// The IP is in nt, but this dump's context (a trusted frame) is in
		// amdppm: nt is only a last resort, so the stack's answer wins.
		{"D1 in nt", 0xD1, [4]uint64{0x10, 2, 0, nt.Base + 0x5000}, "AV_amdppm!unknown_function", CulpritFrame, "amdppm.sys", ConfidenceMedium, 2},
		{"50 unloaded", 0x50, [4]uint64{0x10, 0x10, unl[0].Start + 0x40, 0}, "AV_X_UNLOADED_IMAGE_" + cleanName(unl[0].Name), CulpritUnloaded, cleanName(unl[0].Name), ConfidenceMedium, -1},
		{"50 pool write", 0x50, [4]uint64{0x10, 2, 0xffffc08b00001000, 0}, "AV_W_NO_MODULE_IP_Unknown_Image", CulpritNoModule, "Unknown_Image", ConfidenceLow, -1},
		{"116 TDR", 0x116, [4]uint64{0xffffc08b00000000, amd.Base + 0x2000, 0xC000009A, 4}, "0x116_IMAGE_amdppm.sys", CulpritImage, "amdppm.sys", ConfidenceHigh, -1},
		{"124 WHEA", 0x124, [4]uint64{0, 0xffffc08b00000000, 0xbe000000, 0x800400}, "0x124_0_AuthenticAMD__UNKNOWN_IMAGE_AuthenticAMD.sys", CulpritHardware, "AuthenticAMD.sys", ConfidenceMedium, -1},
		{"3B other exception", 0x3B, [4]uint64{0xC0000006, amd.Base + 0x3000, 0, 0}, "0x3B_C0000006_amdppm!unknown_function", CulpritFrame, "amdppm.sys", ConfidenceHigh, -1},
		{"E2 manual", 0xE2, [4]uint64{}, "MANUALLY_INITIATED_CRASH", CulpritManual, "ManualCrash", ConfidenceHigh, -1},
		{"139 list entry", 0x139, [4]uint64{3, 0, 0, 0}, "0x139_3_CORRUPT_LIST_ENTRY_amdppm!unknown_function", CulpritFrame, "amdppm.sys", ConfidenceHigh, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := patched(t, path, c.code, c.params)
			rep, err := Analyze(context.Background(), f, Options{Rules: set, LegacyBucket: true})
			if err != nil {
				t.Fatal(err)
			}
			checkComplete(t, rep)
			if rep.FailureBucketID != c.bucket || rep.Culprit.Kind != c.kind || rep.Culprit.Image != c.image || rep.Culprit.Confidence != c.conf {
				t.Errorf("got bucket %s kind %s image %s conf %s\nwant %s %s %s %s\nwhy: %s",
					rep.FailureBucketID, rep.Culprit.Kind, rep.Culprit.Image, rep.Culprit.Confidence,
					c.bucket, c.kind, c.image, c.conf, strings.Join(rep.Why, "\n"))
			}
			if c.irql >= 0 && (rep.CurrentIRQL == nil || *rep.CurrentIRQL != c.irql) {
				t.Errorf("CURRENT_IRQL %v, want %d", rep.CurrentIRQL, c.irql)
			}
			if rep.BucketID == "" || !strings.HasPrefix(rep.BucketID, "X64_") {
				t.Errorf("legacy bucket %q", rep.BucketID)
			}
		})
	}
}
