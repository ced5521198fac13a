package triage

import (
	"context"
	"strings"
	"testing"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/kdump/kdumptest"
)

// fakeSymbols names every address of a module as function F<page> at the
// offset within its 4 KiB page, and knows nothing about the kernel.
type fakeSymbols struct{ module string }

func (s fakeSymbols) Symbolize(_ context.Context, m kdump.Module, rva uint64) (string, uint64, bool) {
	if !strings.EqualFold(m.Name, s.module) {
		return "", 0, false
	}
	return "F" + Hex(rva >> 12).String()[2:], rva & 0xFFF, true
}

func TestAnalyzeWithSymbols(t *testing.T) {
	rep := synthetic(t, kdumptest.Spec{Arch: kdumptest.AMD64}, Options{Symbols: fakeSymbols{"amdppm.sys"}, LegacyBucket: true})
	if rep.FailureBucketID != "AV_amdppm!F3" {
		t.Errorf("bucket %s, want AV_amdppm!F3", rep.FailureBucketID)
	}
	if rep.Culprit.Symbol != "amdppm!F3+34c" || rep.BucketIDFuncOffset != "34c" {
		t.Errorf("symbol %s offset %s", rep.Culprit.Symbol, rep.BucketIDFuncOffset)
	}
	if !strings.HasSuffix(rep.BucketID, "_amdppm!F3+34c") {
		t.Errorf("legacy bucket %s", rep.BucketID)
	}
	if fr := rep.Stack[rep.Culprit.Frame]; fr.Function != "F3" || fr.Symbol != "amdppm!F3+0x34c" {
		t.Errorf("blamed frame %+v", fr)
	}
	if rep.FailureIDHash != FailureIDHash("km", "AV_amdppm!F3") {
		t.Error("hash does not follow the symbolized bucket")
	}
}

// TestRulesIgnoreSymbolizedFrame checks that a rule ignoring the faulting
// function moves the blame down the stack and that the report says so.
func TestRulesIgnoreSymbolizedFrame(t *testing.T) {
	set := rulesFromText(t, `version: 1
owners:
  amdppm!F3: ignore
  nt: last_MachineOwner
  default: Team_Default
`)
	rep := synthetic(t, kdumptest.Spec{Arch: kdumptest.AMD64}, Options{Rules: set, Symbols: fakeSymbols{"amdppm.sys"}})
	why := strings.Join(rep.Why, "\n")
	if rep.Culprit.Frame == 0 && rep.Culprit.Symbol == "amdppm!F3+34c" {
		t.Errorf("the ignored frame is still blamed: %s", why)
	}
	if !strings.Contains(why, "ignore") {
		t.Errorf("why does not mention the ignore rule:\n%s", why)
	}
}
