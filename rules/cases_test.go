package rules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeAnalyze stands in for triage.Analyze: a "dump" is a JSON Input, and
// the bucket is 0x<code>_<module>!<function> of the blamed frame, or
// IMAGE_<blame_image> when a rule names the image.
func fakeAnalyze(_ context.Context, path string, set *Set) (CaseResult, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return CaseResult{}, err
	}
	var in Input
	if err := json.Unmarshal(data, &in); err != nil {
		return CaseResult{}, err
	}
	res := set.Match(in)
	cr := CaseResult{Owner: res.Actions.Owner, Tags: res.Actions.Tags, KnownIssue: res.Actions.KnownIssue,
		Severity: res.Actions.Severity.String()}
	prefix := fmt.Sprintf("0x%X_", NormalizeCode(in.Code))
	switch {
	case res.Actions.Bucket != "":
		cr.Bucket = res.Actions.Bucket
	case res.Actions.BlameImage != "":
		cr.Bucket, cr.Image = prefix+"IMAGE_"+res.Actions.BlameImage, res.Actions.BlameImage
	case res.Blame >= 0:
		f := in.Frames[res.Blame]
		cr.Bucket, cr.Image = prefix+f.Module+"!"+f.Function, f.Module+".sys"
	default:
		cr.Bucket = prefix + "UNKNOWN"
	}
	cr.Bucket += res.Actions.BucketSuffix
	return cr, nil
}

func TestRulesTestFailsWhenABucketMoves(t *testing.T) {
	cases, err := LoadCases("testdata/cases/cases.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) != 2 || cases[1].Name != "d2.fakedump.json" || cases[0].Source.Line != 2 {
		t.Fatalf("cases %+v", cases)
	}
	if want := filepath.Join("testdata", "cases", "d1.fakedump.json"); cases[0].Dump != want {
		t.Fatalf("dump path %q, want %q", cases[0].Dump, want)
	}
	def, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range RunCases(context.Background(), cases, def, fakeAnalyze) {
		if !o.Passed() {
			t.Errorf("with the default rules, %s fails: %v %v (got %+v)", o.Case.Name, o.Err, o.Failures, o.Got)
		}
	}

	// A support engineer marks the helper as plumbing: the bucket moves to
	// mydrv!Dispatch and the case must fail, saying so.
	changed := Merge(def, mustParse(t, "team.yaml", "owners:\n  mydrv!Helper*: ignore\n"))
	out := RunCases(context.Background(), cases, changed, fakeAnalyze)
	if out[0].Passed() {
		t.Fatal("case passed although the rule change moved its bucket")
	}
	if len(out[0].Failures) != 1 || out[0].Failures[0] != `bucket: want "0x7E_mydrv!HelperCopy", got "0x7E_mydrv!Dispatch"` {
		t.Errorf("failures %q", out[0].Failures)
	}
	if !out[1].Passed() {
		t.Errorf("unrelated case failed: %v", out[1].Failures)
	}

	// Missing tags, unwanted tags, wrong owner.
	tagged := Merge(def, mustParse(t, "t.yaml", `
rules:
  - id: tag-all
    when: {kind: kernel}
    then: {tags: [display]}
  - id: owner-mydrv
    when: {module: mydrv}
    then: {owner: Team_X}
`))
	out = RunCases(context.Background(), cases, tagged, fakeAnalyze)
	got := strings.Join(out[0].Failures, "|")
	if !strings.Contains(got, `owner: want "MachineOwner", got "Team_X"`) || !strings.Contains(got, "tags: unwanted display present") {
		t.Errorf("failures %q", got)
	}
}

func TestRunCasesErrors(t *testing.T) {
	cases := []Case{{Name: "missing", Dump: "testdata/cases/nope.json"}}
	def, _ := Default()
	out := RunCases(context.Background(), cases, def, fakeAnalyze)
	if out[0].Passed() || !errors.Is(out[0].Err, os.ErrNotExist) {
		t.Errorf("outcome %+v", out[0])
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out = RunCases(ctx, cases, def, func(context.Context, string, *Set) (CaseResult, error) {
		t.Error("analysis ran after cancel")
		return CaseResult{}, nil
	})
	if !errors.Is(out[0].Err, context.Canceled) {
		t.Errorf("cancelled outcome %+v", out[0])
	}
	for _, src := range []string{"", "cases: 3", "cases:\n  - name: x\n", "cases:\n  - dump: a\n    expect: {colour: red}\n",
		"cases:\n  - dump: a\n    expect: {severity: urgent}\n"} {
		if _, err := ParseCases("c.yaml", []byte(src), ""); err == nil {
			t.Errorf("ParseCases(%q): no error", src)
		}
	}
}
