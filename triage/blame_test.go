package triage

import (
	"strings"
	"testing"

	"github.com/kdtriage/kdtriage/kdump/kdumptest"
	"github.com/kdtriage/kdtriage/rules"
)

// TestBlameStackOrder: stack blame follows the rules package's order
// (definite > maybe_ > no owner > last_; ignore never), the same order
// rules.Set.Match uses and docs/rules.md states.
func TestBlameStackOrder(t *testing.T) {
	S := func(ss ...rules.Strength) []rules.FrameDecision {
		d := make([]rules.FrameDecision, len(ss))
		for i, s := range ss {
			d[i].Strength = s
		}
		return d
	}
	frames := func(mods ...string) []Frame {
		st := make([]Frame, len(mods))
		for i, m := range mods {
			st[i] = Frame{Index: i, Module: m, Image: m + ".sys", Symbol: m + "+0x10", FoundBy: "unwind"}
		}
		return st
	}
	N, I, L, M, D := rules.StrengthNone, rules.StrengthIgnore, rules.StrengthLast, rules.StrengthMaybe, rules.StrengthDefinite
	cases := []struct {
		name   string
		mods   []string
		dec    []rules.FrameDecision
		blamed int
		conf   Confidence
	}{
		{"unowned driver beats last_ nt above it", []string{"nt", "mydrv"}, S(L, N), 1, ConfidenceMedium},
		{"unowned nt counts as last_", []string{"nt", "mydrv"}, S(N, N), 1, ConfidenceMedium},
		{"maybe_ beats unowned above it", []string{"mydrv", "Wdf01000"}, S(N, M), 1, ConfidenceMedium},
		{"definite beats maybe_ above it", []string{"Wdf01000", "mydrv"}, S(M, D), 1, ConfidenceMedium},
		{"top-most of the class", []string{"a", "b"}, S(D, D), 0, ConfidenceMedium},
		{"ignored never", []string{"mydrv", "nt"}, S(I, L), 1, ConfidenceLow},
		{"all ignored", []string{"mydrv", "nt"}, S(I, I), -1, ConfidenceLow},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := &kernelAnalysis{rep: &Report{Stack: frames(c.mods...), FirstThirdPartyFrame: -1}, ipIdx: -1}
			got := a.blameStack(rules.Result{Frames: c.dec, Blame: -1}, 0, "test")
			if got != c.blamed || a.rep.Culprit.Frame != c.blamed || a.rep.Culprit.Confidence != c.conf {
				t.Errorf("blamed %d (culprit frame %d, %s), want %d (%s)\n%s", got, a.rep.Culprit.Frame, a.rep.Culprit.Confidence,
					c.blamed, c.conf, strings.Join(a.rep.Why, "\n"))
			}
		})
	}
}

// TestIgnoreFaultingModule pins what a user rule ignoring the crash's own
// faulting module does (docs/rules.md, "An ignored faulting frame"): the
// blame passes down the stack like any ignored frame, the Followup is the
// owner of the frame that takes the blame, FAULTING_IP still names the
// ignored instruction; when every frame is ignored nothing is blamed and
// the report says why.
func TestIgnoreFaultingModule(t *testing.T) {
	d1 := kdumptest.Spec{Arch: kdumptest.AMD64, BugCheck: 0xD1, Params: [4]uint64{0x10, 2, 0, kdumptest.DefaultModules(kdumptest.AMD64)[5].Base + 0x12d0}}
	cases := []struct {
		name, rules string
		bucket      string
		frame       int
		followup    string
		conf        Confidence
		why         []string
	}{
		{"passes to nt", "owners:\n  amdppm: ignore\n  nt: last_Kernel_Team\n  default: Team_Default\n",
			"AV_nt!unknown_function", 1, "Kernel_Team", ConfidenceLow,
			[]string{"rule amdppm (test.yaml:2:3) marks it ignore, so the frames below it decide", "frame 1 nt+0x3f5a80", "it is shown, not blamed, because rule amdppm marks it ignore"}},
		{"everything ignored", "owners:\n  amdppm: ignore\n  nt: ignore\n",
			"AV_ANALYSIS_INCONCLUSIVE", -1, "", ConfidenceLow,
			[]string{"marks it ignore, so the frames below it decide: every frame that lies in a module is ignored by the rules (1 frame(s))", "no rule gives an owner"}},
		{"everything ignored, default owner", "owners:\n  amdppm: ignore\n  nt: ignore\n  default: Team_Default\n",
			"AV_ANALYSIS_INCONCLUSIVE", -1, "Team_Default", ConfidenceLow,
			[]string{"every frame that lies in a module is ignored", "Followup Team_Default is the rules' owner of the module Unknown_Module"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep := synthetic(t, d1, Options{Rules: rulesFromText(t, c.rules)})
			why := strings.Join(rep.Why, "\n")
			if rep.FailureBucketID != c.bucket || rep.Culprit.Frame != c.frame || rep.Followup != c.followup || rep.Culprit.Confidence != c.conf {
				t.Errorf("bucket %s frame %d followup %q conf %s; want %s %d %q %s\n%s", rep.FailureBucketID, rep.Culprit.Frame,
					rep.Followup, rep.Culprit.Confidence, c.bucket, c.frame, c.followup, c.conf, why)
			}
			if rep.FaultingIP == nil || rep.FaultingIP.Module != "amdppm" || rep.Stack[0].Decision != "ignore" || rep.Stack[0].Blamed {
				t.Errorf("faulting IP %+v, frame 0 %+v", rep.FaultingIP, rep.Stack[0])
			}
			for _, w := range c.why {
				if !strings.Contains(why, w) {
					t.Errorf("why lacks %q:\n%s", w, why)
				}
			}
		})
	}
}

// TestBlameImageMovesBlamedMark: when a rule's blame_image moves a weak
// culprit to a frame of that image, that frame (and only it) is marked
// blamed in the stack.
func TestBlameImageMovesBlamedMark(t *testing.T) {
	d1 := kdumptest.Spec{Arch: kdumptest.AMD64, BugCheck: 0xD1, Params: [4]uint64{0x10, 2, 0, kdumptest.DefaultModules(kdumptest.AMD64)[5].Base + 0x12d0}}
	set := rulesFromText(t, `owners:
  amdppm: ignore
  nt: last_Kernel_Team
rules:
  - id: blame-amd
    when: {code: 0xD1}
    then: {blame_image: amdppm.sys}
`)
	rep := synthetic(t, d1, Options{Rules: set})
	if rep.Culprit.Frame != 0 || rep.Culprit.By != "rule" || rep.Culprit.Image != "amdppm.sys" {
		t.Fatalf("culprit %+v\n%s", rep.Culprit, strings.Join(rep.Why, "\n"))
	}
	for i, fr := range rep.Stack {
		if fr.Blamed != (i == 0) {
			t.Errorf("frame %d %s blamed=%v", i, fr.Symbol, fr.Blamed)
		}
	}
}
