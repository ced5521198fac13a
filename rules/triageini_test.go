package rules

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestImportTriageINIRoundTrip(t *testing.T) {
	data, err := os.ReadFile("testdata/sample-triage.ini")
	if err != nil {
		t.Fatal(err)
	}
	entries, errs := ParseTriageINI("sample-triage.ini", bytes.NewReader(data))
	if len(errs) > 0 {
		t.Fatalf("ParseTriageINI: %v", errs)
	}
	if len(entries) != 14 {
		t.Fatalf("%d entries, want 14", len(entries))
	}
	if e := entries[9]; e.Pattern != "netdrv" || e.Owner != "NetworkTeam" || e.Line != 21 {
		t.Errorf("entry 9: %+v", e)
	}
	out, errs := ImportTriageINI("sample-triage.ini", bytes.NewReader(data))
	if len(errs) > 0 {
		t.Fatalf("ImportTriageINI: %v", errs)
	}
	text := string(out)
	for _, want := range []string{
		"# Kernel plumbing that is never at fault.",
		"# The documentation's worked example.",
		"nt!KeBugCheck*: ignore # sample-triage.ini:9",
		"line 25: nt!KiPageFault=Duplicate_Owner repeats the pattern of line 10",
		"line 26: module1!*=Person1_Again repeats the pattern of line 14",
		`module: odd\*mod`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("import output lacks %q:\n%s", want, text)
		}
	}
	s, err := Parse("imported.yaml", out)
	if err != nil {
		t.Fatalf("imported YAML does not load: %v\n%s", err, text)
	}
	// Every line of the ini resolves as the debugger would resolve it.
	tests := map[string]struct {
		st    Strength
		owner string
	}{
		"nt!KeBugCheckEx":   {StrengthIgnore, ""},
		"nt!KiPageFault":    {StrengthIgnore, ""},
		"nt!MmAccessFault":  {StrengthLast, "MachineOwner"},
		"module1!anything":  {StrengthDefinite, "Person1"},
		"module2!functionB": {StrengthDefinite, "Person2"},
		"module2!functionC": {StrengthDefinite, "Person3"},
		"module2!other":     {StrengthDefinite, "Person4"},
		"modX!functionC":    {StrengthDefinite, "Person5"},
		"netdrv!Send":       {StrengthDefinite, "NetworkTeam"},
		"wdfhelper!Call":    {StrengthMaybe, "FrameworkTeam"},
		"odd*mod!fn":        {StrengthDefinite, "Odd_Owner"},
		"oddXmod!fn":        {StrengthDefinite, "MachineOwner"},
		"random!thing":      {StrengthDefinite, "MachineOwner"},
	}
	for f, want := range tests {
		d := s.Decide(&Input{}, frame(f))
		if d.Strength != want.st || d.Owner != want.owner {
			t.Errorf("%s: %v %q (rule %s), want %v %q", f, d.Strength, d.Owner, d.Rule, want.st, want.owner)
		}
	}
	// Importing twice gives the same bytes.
	again, _ := ImportTriageINI("sample-triage.ini", bytes.NewReader(data))
	if !bytes.Equal(out, again) {
		t.Error("import is not deterministic")
	}
}

func TestImportTriageINIErrors(t *testing.T) {
	_, errs := ImportTriageINI("bad.ini", strings.NewReader("nt!Foo=ignore\nthis line has no equals\nmod=\n"))
	if len(errs) != 2 || errs[0].Line != 2 || errs[1].Line != 3 {
		t.Fatalf("errors %v", errs)
	}
	var el ErrorList = errs
	if !errors.As(error(el), new(ErrorList)) || !strings.Contains(el.Error(), "bad.ini:2:1:") {
		t.Errorf("error text %q", el.Error())
	}
}
