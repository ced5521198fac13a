package rules

import (
	"reflect"
	"strings"
	"testing"
)

func mustParse(t testing.TB, name, src string) *Set {
	t.Helper()
	s, err := Parse(name, []byte(src))
	if err != nil {
		t.Fatalf("Parse %s: %v", name, err)
	}
	return s
}

func frame(s string) Frame {
	mod, fn, _ := strings.Cut(s, "!")
	return Frame{Module: mod, Function: fn}
}

func stack(names ...string) []Frame {
	fs := make([]Frame, len(names))
	for i, n := range names {
		fs[i] = frame(n)
	}
	return fs
}

// The worked example of Microsoft's triage.ini documentation: for
// module2!functionC the search order is module2!functionC, module2!funct*,
// module2!*, mod*!functionC. Each row removes the previous winner.
func TestTriageINISpecificity(t *testing.T) {
	lines := []string{
		"mod*!functionC: Person_ModStar",
		"module2!*: Person_ModuleStar",
		"module2!funct*: Person_FunctStar",
		"module2!functionC: Person_Exact",
		"default: Person_Default",
	}
	want := []string{"Person_Exact", "Person_FunctStar", "Person_ModuleStar", "Person_ModStar", "Person_Default"}
	for i := range want {
		// Keep lines[i:] in reverse file order so file order cannot explain the result.
		var b strings.Builder
		b.WriteString("owners:\n")
		for j := len(lines) - 1; j >= 0; j-- {
			if j < len(lines)-1-i || j == len(lines)-1 {
				b.WriteString("  " + lines[j] + "\n")
			}
		}
		s := mustParse(t, "spec.yaml", b.String())
		d := s.Decide(&Input{}, frame("module2!functionC"))
		if d.Owner != want[i] {
			t.Errorf("step %d: owner %q, want %q\n%s", i, d.Owner, want[i], b.String())
		}
	}
}

func TestPrecedenceTable(t *testing.T) {
	tests := []struct {
		name  string
		files [][2]string // layers: name, content; later layers are user files
		in    Input
		frame string
		want  string // winning rule id
	}{
		{
			name:  "exact function beats prefix",
			files: [][2]string{{"a.yaml", "owners:\n  nt!Ke*: A\n  nt!KeBugCheckEx: B\n"}},
			frame: "nt!KeBugCheckEx", want: "nt!KeBugCheckEx",
		},
		{
			name:  "longer prefix beats shorter",
			files: [][2]string{{"a.yaml", "owners:\n  nt!K*: A\n  nt!KeBug*: B\n"}},
			frame: "nt!KeBugCheckEx", want: "nt!KeBug*",
		},
		{
			name:  "module match beats function match",
			files: [][2]string{{"a.yaml", "owners:\n  \"*!KeBugCheckEx\": A\n  nt: B\n"}},
			frame: "nt!KeBugCheckEx", want: "nt",
		},
		{
			name: "more conditions beat fewer at equal pattern",
			files: [][2]string{{"a.yaml", `
owners:
  mydrv: A
rules:
  - id: with-code
    when: {frame: mydrv, code: 0xD1}
    then: {owner: B}
`}},
			in:    Input{Code: 0xD1},
			frame: "mydrv!Foo", want: "with-code",
		},
		{
			name: "conditions that fail do not count",
			files: [][2]string{{"a.yaml", `
owners:
  mydrv: A
rules:
  - id: with-code
    when: {frame: mydrv, code: 0xD1}
    then: {owner: B}
`}},
			in:    Input{Code: 0x50},
			frame: "mydrv!Foo", want: "mydrv",
		},
		{
			name: "priority beats specificity",
			files: [][2]string{{"a.yaml", `
owners:
  nt!KeBugCheckEx: ignore
rules:
  - id: forced
    priority: 1
    when: {module: "n*"}
    then: {owner: Kernel_Team}
`}},
			frame: "nt!KeBugCheckEx", want: "forced",
		},
		{
			name: "user layer beats defaults at equal key",
			files: [][2]string{
				{"default.yaml", "owners:\n  nt!KiPageFault: ignore\n"},
				{"user.yaml", "owners:\n  nt!KiPageFault: Kernel_Team\n"},
			},
			frame: "nt!KiPageFault", want: "nt!KiPageFault@user.yaml",
		},
		{
			name: "defaults' specific rule beats user's general rule",
			files: [][2]string{
				{"default.yaml", "owners:\n  nt!KiPageFault: ignore\n"},
				{"user.yaml", "owners:\n  nt: Kernel_Team\n"},
			},
			frame: "nt!KiPageFault", want: "nt!KiPageFault",
		},
		{
			name: "earlier rule wins a full tie",
			files: [][2]string{{"a.yaml", `
rules:
  - id: first
    when: {frame: "mydrv!*"}
    then: {owner: A}
  - id: second
    when: {module: mydrv}
    then: {owner: B}
`}},
			frame: "mydrv!X", want: "first",
		},
		{
			name:  "module names are case-insensitive",
			files: [][2]string{{"a.yaml", "owners:\n  MyDrv!DoIt: A\n"}},
			frame: "mydrv!doit", want: "MyDrv!DoIt",
		},
		{
			name:  "kernel image names are treated as nt",
			files: [][2]string{{"a.yaml", "owners:\n  nt!KeBugCheckEx: ignore\n"}},
			frame: "ntkrnlmp!KeBugCheckEx", want: "nt!KeBugCheckEx",
		},
		{
			name: "_M code variants match the base code",
			files: [][2]string{{"a.yaml", `
rules:
  - id: base
    when: {module: mydrv, code: 0x7E}
    then: {owner: A}
`}},
			in:    Input{Code: 0x1000007E},
			frame: "mydrv!X", want: "base",
		},
		{
			name: "parameter mask",
			files: [][2]string{{"a.yaml", `
rules:
  - id: masked
    when: {module: mydrv, params: {p3: {value: 0x8, mask: 0x8}}}
    then: {owner: A}
`}},
			in:    Input{Params: [4]uint64{0, 0, 0x9, 0}},
			frame: "mydrv!X", want: "masked",
		},
		{
			name: "module version range",
			files: [][2]string{{"a.yaml", `
rules:
  - id: old
    when: {module: mydrv, version: {max: "1.9"}}
    then: {owner: Old}
  - id: any
    when: {module: mydrv}
    then: {owner: New}
`}},
			in:    Input{Modules: []Module{{Name: "MYDRV", Image: "mydrv.sys", Version: "1.5.0.3"}}},
			frame: "mydrv!X", want: "old",
		},
		{
			name: "timestamp out of range falls through",
			files: [][2]string{{"a.yaml", `
rules:
  - id: before-2020
    when: {image: mydrv.sys, timestamp: {max: 2020-01-01}}
    then: {owner: Old}
  - id: any
    when: {module: mydrv}
    then: {owner: New}
`}},
			in:    Input{Modules: []Module{{Name: "mydrv", Image: "mydrv.sys", Timestamp: 1700000000}}},
			frame: "mydrv!X", want: "any",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var sets []*Set
			for _, f := range tc.files {
				sets = append(sets, mustParse(t, f[0], f[1]))
			}
			s := Merge(sets...)
			d := s.Decide(&tc.in, frame(tc.frame))
			got := d.Rule
			if strings.Contains(tc.want, "@") {
				got += "@" + d.Source.File
			}
			if got != tc.want {
				t.Errorf("winner %q, want %q", got, tc.want)
			}
			// Explain must agree with Decide.
			ex := s.Explain(tc.in, frame(tc.frame))
			if len(ex.Owners) == 0 || !ex.Owners[0].Winner || ex.Owners[0].ID != d.Rule {
				t.Errorf("Explain disagrees: %+v", ex.Owners)
			}
		})
	}
}

func TestBlameSelection(t *testing.T) {
	s := mustParse(t, "blame.yaml", `
owners:
  nt!KeBugCheckEx: ignore
  nt!KiPageFault: ignore
  nt: last_Kernel
  frame: maybe_Framework
  drva: Team_A
  drvb: Team_B
`)
	tests := []struct {
		stack []string
		blame int
		owner string
	}{
		{[]string{"nt!KeBugCheckEx", "nt!KiPageFault", "drva!Foo", "drvb!Bar"}, 2, "Team_A"},
		// A definite owner lower on the stack beats a maybe_ owner higher up.
		{[]string{"nt!KeBugCheckEx", "frame!Call", "drvb!Bar", "nt!IopfCallDriver"}, 2, "Team_B"},
		// A maybe_ owner lower down beats a last_ owner higher up.
		{[]string{"nt!KeBugCheckEx", "nt!MmAccessFault", "frame!Call", "nt!KiStartSystemThread"}, 2, "Framework"},
		// Only last_ owners: the top-most one.
		{[]string{"nt!KeBugCheckEx", "nt!ExpWorker", "nt!KiStartSystemThread"}, 1, "Kernel"},
		// A frame no rule owns ranks above last_ but below maybe_.
		{[]string{"nt!KeBugCheckEx", "nt!ExpWorker", "unknowndrv!X"}, 2, ""},
		{[]string{"nt!KeBugCheckEx", "unknowndrv!X", "frame!Call"}, 2, "Framework"},
		// An address in no module matches no pattern.
		{[]string{"nt!KeBugCheckEx", "nt!KiPageFault", "!", "nt!Foo"}, 2, ""},
		// Everything ignored: no blame.
		{[]string{"nt!KeBugCheckEx", "nt!KiPageFault"}, -1, ""},
		{nil, -1, ""},
	}
	for _, tc := range tests {
		res := s.Match(Input{Frames: stack(tc.stack...)})
		if res.Blame != tc.blame || res.Actions.Owner != tc.owner {
			t.Errorf("%v: blame %d owner %q, want %d %q", tc.stack, res.Blame, res.Actions.Owner, tc.blame, tc.owner)
		}
		if len(res.Frames) != len(tc.stack) {
			t.Errorf("%v: %d decisions", tc.stack, len(res.Frames))
		}
	}
}

func TestActionsMerge(t *testing.T) {
	s := Merge(mustParse(t, "d.yaml", `
owners:
  default: MachineOwner
rules:
  - id: d-tags
    when: {code: 0xD1}
    then: {tags: [irql, default-tag], severity: low, remediation: Default text.}
`), mustParse(t, "u.yaml", `
owners:
  mydrv: Team_My
rules:
  - id: u-known
    when: {code: 0xD1, module: mydrv}
    then: {known_issue: KI-7, tags: [irql, mine], severity: high, bucket_suffix: _KI7}
  - id: u-any
    when: {module: helper, scope: any}
    then: {tags: [helper-on-stack]}
  - id: u-blamed-only
    when: {module: helper}
    then: {tags: [helper-blamed]}
`))
	res := s.Match(Input{Code: 0xD1, Frames: stack("mydrv!Go", "helper!Run")})
	a := res.Actions
	if res.Blame != 0 || a.Owner != "Team_My" || a.KnownIssue != "KI-7" || a.Severity != SeverityHigh ||
		a.BucketSuffix != "_KI7" || a.Remediation != "Default text." {
		t.Errorf("actions %+v blame %d", a, res.Blame)
	}
	if want := []string{"default-tag", "helper-on-stack", "irql", "mine"}; !reflect.DeepEqual(a.Tags, want) {
		t.Errorf("tags %v, want %v", a.Tags, want)
	}
	var ids []string
	for _, h := range res.Fired {
		ids = append(ids, h.ID)
		if h.Source.Line == 0 || h.Why == "" {
			t.Errorf("hit without source or why: %+v", h)
		}
	}
	if want := []string{"u-any", "u-known", "mydrv", "d-tags"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("fired %v, want %v", ids, want)
	}
	// With the caller blaming frame 1, helper-blamed fires and mydrv's owner does not.
	res = s.MatchBlamed(Input{Code: 0xD1, Frames: stack("mydrv!Go", "helper!Run")}, 1)
	if res.Blame != 1 || res.Actions.Owner != "MachineOwner" || !contains(res.Actions.Tags, "helper-blamed") {
		t.Errorf("MatchBlamed: %+v", res)
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func TestDefaultSet(t *testing.T) {
	s, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	never := []string{
		"nt!KeBugCheckEx", "nt!KeBugCheck2", "nt!KiBugCheckDispatch", "nt!KiPageFault",
		"nt!KiGeneralProtectionFault", "nt!KiSystemServiceCopyEnd", "nt!KiExceptionDispatch",
		"nt!RtlDispatchException", "nt!KiTrap0E", "nt!KiDoubleFaultAbort", "nt!DbgkForwardException",
		"nt!ExpRaiseHardError", "nt!KiInterruptDispatchNoLock", "nt!KiIpiInterrupt", "hal!HalBugCheckSystem",
		"nt!KxWaitForLockOwnerShip", "nt!KiDispatchInterrupt", "nt!DbgBreakPointWithStatus",
		"VerifierExt!SLIC_abc", "nt!VerifierExAcquireFastMutex", "ntkrnlmp!KeBugCheckEx",
	}
	for _, f := range never {
		if d := s.Decide(&Input{Kind: KindKernel}, frame(f)); d.Strength != StrengthIgnore {
			t.Errorf("%s: %v by %s, want ignore", f, d.Strength, d.Rule)
		}
	}
	for f, want := range map[string]Strength{
		"nt!MmAccessFault":                  StrengthLast,
		"nt!KiFastFailDispatch":             StrengthLast,
		"hal!HalpTimerClockIpi":             StrengthLast,
		"Wdf01000!FxPkgPnp::Foo":            StrengthMaybe,
		"amdppm!WriteIoMemRawEx":            StrengthDefinite,
		"Wdf01000!FxVerifierBugCheckWorker": StrengthIgnore,
	} {
		if d := s.Decide(&Input{}, frame(f)); d.Strength != want {
			t.Errorf("%s: %v by %s, want %v", f, d.Strength, d.Rule, want)
		}
	}

	// The corpus's 0x1000007E: blame lands on amdppm under the default rules.
	res := s.Match(Input{Code: 0x1000007E, Kind: KindKernel, Frames: stack(
		"nt!KeBugCheckEx", "nt!KiBugCheckDispatch", "nt!KiSegmentNotPresentFault", "amdppm!WriteIoMemRawEx",
		"amdppm!WriteGenAddrEx", "Wdf01000!FxPnpDeviceStart", "nt!PnpStartDevice", "nt!KiStartSystemThread")})
	if res.Blame != 3 || res.Actions.Owner != "MachineOwner" {
		t.Errorf("amdppm stack: blame %d owner %q", res.Blame, res.Actions.Owner)
	}

	// 0xA0000001: the shipped rule blames atikmdag.sys even when the stack
	// shows only the kernel.
	res = s.Match(Input{Code: 0xA0000001, Params: [4]uint64{5}, Kind: KindKernel, Frames: stack(
		"nt!KeBugCheckEx", "nt!KiStartSystemThread")})
	a := res.Actions
	if a.BlameImage != "atikmdag.sys" || a.Owner != "AMD_Display_Driver" || !contains(a.Tags, "display") ||
		a.Remediation == "" || a.Severity != SeverityHigh {
		t.Errorf("0xA0000001: %+v", a)
	}
	found := false
	for _, h := range res.Fired {
		if h.ID == "amd-display-custom-bugcheck" && strings.HasPrefix(h.Source.File, "default/") {
			found = true
		}
	}
	if !found {
		t.Errorf("0xA0000001: shipped rule not among fired %+v", res.Fired)
	}
	// Its frames, when present, are blamed over the kernel.
	res = s.Match(Input{Code: 0xA0000001, Kind: KindKernel, Frames: stack(
		"nt!KeBugCheckEx", "atikmdag!foo", "nt!KiStartSystemThread")})
	if res.Blame != 1 || res.Frames[1].Owner != "AMD_Display_Driver" {
		t.Errorf("0xA0000001 with atikmdag frame: %+v", res)
	}
	// Other codes are untouched.
	res = s.Match(Input{Code: 0xD1, Kind: KindKernel, Frames: stack("nt!KeBugCheckEx", "atikmdag!foo")})
	if res.Actions.BlameImage != "" || res.Actions.Owner != "MachineOwner" {
		t.Errorf("0xD1 with atikmdag: %+v", res.Actions)
	}
}

func TestExplainText(t *testing.T) {
	d, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	user := mustParse(t, "team.yaml", "owners:\n  nt!KeBugCheck*: Kernel_Team\n  nt: last_Kernel_Team\n")
	s := Merge(d, user)
	ex := s.Explain(Input{Code: 0xD1, Kind: KindKernel}, frame("nt!KeBugCheckEx"))
	if ex.Decision.Rule != "nt!KeBugCheck*" || ex.Decision.Source.File != "team.yaml" || ex.Decision.Owner != "Kernel_Team" {
		t.Fatalf("decision %+v", ex.Decision)
	}
	txt := ex.String()
	for _, want := range []string{
		"decision: definite owner Kernel_Team, by nt!KeBugCheck* at team.yaml:2:3",
		"* nt!KeBugCheck*  [team.yaml:2:3]",
		"  nt!KeBugCheck*  [default/00-kernel.yaml:16:3]",
		"loses to nt!KeBugCheck*: step 4, layer 1 (team.yaml) over layer 0 (default/00-kernel.yaml)",
		"loses to nt!KeBugCheck*: step 2, pattern module exact (2), function prefix (10) is more specific than module exact (2), function any",
		"1. higher priority",
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("explain text lacks %q:\n%s", want, txt)
		}
	}
	// Near misses: the AMD frame rule needs its code.
	ex = d.Explain(Input{Code: 0xD1}, frame("atikmdag!x"))
	if len(ex.NearMisses) != 1 || !strings.Contains(ex.NearMisses[0].Reason, "code=0xA0000001") {
		t.Errorf("near misses %+v", ex.NearMisses)
	}
}

func TestHash(t *testing.T) {
	a := mustParse(t, "a.yaml", "# comment\nowners:\n  nt: ignore\n  mydrv: A\n")
	b := mustParse(t, "b.yaml", "owners:\n\n  nt: ignore # other comment\n  mydrv: A\n")
	c := mustParse(t, "a.yaml", "owners:\n  nt: ignore\n  mydrv: B\n")
	if a.Hash() != b.Hash() {
		t.Errorf("comments and file names changed the hash")
	}
	if a.Hash() == c.Hash() {
		t.Errorf("an owner change kept the hash")
	}
	if len(a.Hash()) != 64 {
		t.Errorf("hash %q", a.Hash())
	}
	d1, _ := Default()
	d2, _ := Default()
	if d1.Hash() != d2.Hash() || Merge(d1, a).Hash() == d1.Hash() {
		t.Errorf("default hash unstable or merge ignored")
	}
}

func TestDefaultSetUserMode(t *testing.T) {
	s, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	res := s.Match(Input{Kind: KindUser, ExceptionCode: 0xE06D7363, Frames: stack(
		"KERNELBASE!RaiseException", "vcruntime140!_CxxThrowException", "myapp!Parser::Fail",
		"myapp!main", "kernel32!BaseThreadInitThunk", "ntdll!RtlUserThreadStart")})
	if res.Blame != 2 || res.Actions.Owner != "MachineOwner" {
		t.Errorf("C++ throw: blame %d owner %q", res.Blame, res.Actions.Owner)
	}
	res = s.Match(Input{Kind: KindUser, Frames: stack(
		"ntdll!RtlReportFatalFailure", "ntdll!RtlpHeapHandleError", "ntdll!RtlpLogHeapFailure", "kernel32!BaseThreadInitThunk")})
	if res.Blame != 1 || res.Frames[1].Strength != StrengthLast {
		t.Errorf("heap failure: blame %d %+v", res.Blame, res.Frames)
	}
}

// TestConcurrentMatch shares one Set between goroutines; run with -race.
func TestConcurrentMatch(t *testing.T) {
	s, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	in := Input{Code: 0xD1, Kind: KindKernel, Modules: []Module{{Name: "mydrv", Image: "mydrv.sys"}},
		Frames: stack("nt!KeBugCheckEx", "nt!KiPageFault", "mydrv!Go", "nt!IofCallDriver")}
	want := s.Match(in)
	done := make(chan Result)
	for g := 0; g < 4; g++ {
		go func() {
			var r Result
			for i := 0; i < 200; i++ {
				r = s.Match(in)
			}
			done <- r
		}()
	}
	for g := 0; g < 4; g++ {
		if r := <-done; !reflect.DeepEqual(r, want) {
			t.Errorf("concurrent result differs: %+v", r)
		}
	}
}

func TestNilAndEmptySet(t *testing.T) {
	var s *Set
	in := Input{Frames: stack("nt!KeBugCheckEx", "mydrv!X")}
	for _, set := range []*Set{s, Merge()} {
		res := set.Match(in)
		if res.Blame != 0 || len(res.Frames) != 2 || res.Actions.Owner != "" || len(res.Fired) != 0 {
			t.Errorf("empty set: %+v", res)
		}
		if set.Len() != 0 || len(set.Hash()) != 64 || set.Decide(&in, frame("a!b")).Rule != "" {
			t.Errorf("empty set accessors")
		}
		_ = set.Explain(in, frame("a!b")).String()
	}
	if s.Hash() != Merge().Hash() {
		t.Error("nil and empty sets hash differently")
	}
}

// TestDefaultCompiledOnce: Default returns one shared compiled set, and
// merging it with a user layer leaves it as it was (it is shared by every
// analysis in the process).
func TestDefaultCompiledOnce(t *testing.T) {
	a, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatal("Default compiled the embedded rules again")
	}
	fresh, err := compileDefault()
	if err != nil {
		t.Fatal(err)
	}
	hash, n := a.Hash(), a.Len()
	if hash != fresh.Hash() {
		t.Fatalf("cached default hash %s, freshly compiled %s", hash, fresh.Hash())
	}
	user, err := Parse("user.yaml", []byte("owners:\n  nt!KeBugCheckEx: Kernel_Team\n  amdppm: ignore\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := Merge(a, user)
	in := Input{Kind: KindKernel, Frames: stack("nt!KeBugCheckEx")}
	if d := m.Decide(&in, in.Frames[0]); d.Owner != "Kernel_Team" {
		t.Fatalf("merged set: %+v", d)
	}
	if d := a.Decide(&in, in.Frames[0]); d.Strength != StrengthIgnore {
		t.Errorf("the shared default changed after Merge: nt!KeBugCheckEx is %+v", d)
	}
	if a.Hash() != hash || a.Len() != n {
		t.Errorf("the shared default changed after Merge: hash %s len %d, was %s %d", a.Hash(), a.Len(), hash, n)
	}
}
