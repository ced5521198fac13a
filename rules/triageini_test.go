package rules

import (
	"bytes"
	"errors"
	"fmt"
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

// TestParseTriageINILimits: a file over MaxFileSize and an over-long line
// are reported, not silently cut off; the lines before them are kept and a
// line cut by the size limit is not imported.
func TestParseTriageINILimits(t *testing.T) {
	line := "drv000000!Function=Team_Owner\n" // 30 bytes
	n := MaxFileSize/len(line) + 1            // the last line crosses the limit
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "drv%06d!Function=Team_Owner\n", i)
	}
	entries, errs := ParseTriageINI("big.ini", strings.NewReader(b.String()))
	if len(errs) != 1 || !strings.Contains(errs[0].Msg, "byte limit") {
		t.Fatalf("errors %v", errs)
	}
	if len(entries) != MaxFileSize/len(line) {
		t.Errorf("%d entries, want the %d complete lines before the limit", len(entries), MaxFileSize/len(line))
	}
	if last := entries[len(entries)-1]; last.Owner != "Team_Owner" {
		t.Errorf("last entry %+v", last)
	}

	// Exactly MaxFileSize bytes is fine.
	exact := strings.Repeat(line, MaxFileSize/len(line))
	exact += strings.Repeat(";", MaxFileSize-len(exact)-1) + "\n"
	if _, errs := ParseTriageINI("exact.ini", strings.NewReader(exact)); len(errs) != 0 {
		t.Errorf("a file of exactly %d bytes: %v", MaxFileSize, errs)
	}

	long := "a=b\n" + strings.Repeat("x", maxINILine+1) + "=Owner\nc=d\n"
	entries, errs = ParseTriageINI("long.ini", strings.NewReader(long))
	if len(errs) != 1 || errs[0].Line != 2 || !strings.Contains(errs[0].Msg, "longer than") || len(entries) != 1 {
		t.Errorf("long line: entries %v errors %v", entries, errs)
	}
}
