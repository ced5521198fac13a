package rules

import (
	"strings"
	"testing"
)

// naiveGlob is a slow reference matcher: "*" any run, "?" one byte, "\"
// escapes, ASCII case folded.
func naiveGlob(p, s string) bool {
	if p == "" {
		return s == ""
	}
	switch p[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if naiveGlob(p[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && naiveGlob(p[1:], s[1:])
	case '\\':
		if len(p) < 2 {
			return false
		}
		return s != "" && lowerByte(p[1]) == lowerByte(s[0]) && naiveGlob(p[2:], s[1:])
	}
	return s != "" && lowerByte(p[0]) == lowerByte(s[0]) && naiveGlob(p[1:], s[1:])
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pat, name string
		want      bool
		class     matchClass
	}{
		{"nt", "NT", true, matchExact},
		{"nt", "ntx", false, matchExact},
		{"Ke*", "KeBugCheckEx", true, matchPrefix},
		{"*", "", true, matchAny},
		{"**", "x", true, matchAny},
		{"*Dispatch*", "KiBugCheckDispatch", true, matchGlob},
		{"Ki*Dispatch*", "KiDispatchException", true, matchGlob},
		{"Ki*Dispatch*", "KiRetireDpcList", false, matchGlob},
		{"Ki*Dispatch*", "KiIDispatchX", true, matchGlob},
		{"e1?65*", "e1d65x64", true, matchGlob},
		{`a\*b`, "a*b", true, matchExact},
		{`a\*b`, "axb", false, matchExact},
		{`x\?`, "x?", true, matchExact},
	}
	for _, tc := range tests {
		p, err := compileGlob(tc.pat)
		if err != nil {
			t.Fatalf("%q: %v", tc.pat, err)
		}
		if got := p.match(tc.name); got != tc.want || p.class != tc.class {
			t.Errorf("%q ~ %q: %v class %d, want %v class %d", tc.pat, tc.name, got, p.class, tc.want, tc.class)
		}
	}
	for _, bad := range []string{"", `abc\`} {
		if _, err := compileGlob(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestFramePattern(t *testing.T) {
	good := map[string][2]matchClass{
		"nt":               {matchExact, matchAny},
		"nt!*":             {matchExact, matchAny},
		"nt!default":       {matchExact, matchAny},
		"default":          {matchAny, matchAny},
		"*!*":              {matchAny, matchAny},
		"mod*!functionC":   {matchPrefix, matchExact},
		"module2!funct*":   {matchExact, matchPrefix},
		"Wdf01000!Mx::Foo": {matchExact, matchExact},
	}
	for src, want := range good {
		fp, err := parseFramePattern(src)
		if err != nil {
			t.Errorf("%q: %v", src, err)
			continue
		}
		if fp.module.class != want[0] || fp.function.class != want[1] {
			t.Errorf("%q: classes %d/%d, want %d/%d", src, fp.module.class, fp.function.class, want[0], want[1])
		}
	}
	for _, bad := range []string{"", "a!b!c", "a*b!c", "a!b*c", "!f", "a!", "a b"} {
		if _, err := parseFramePattern(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// FuzzGlob checks the compiled matcher against the naive reference.
func FuzzGlob(f *testing.F) {
	f.Add("Ki*Dispatch*", "KiBugCheckDispatch")
	f.Add("a*b*c", "aXbYbc")
	f.Add(`\*?x`, "*yx")
	f.Add("*", "")
	f.Fuzz(func(t *testing.T, pat, name string) {
		if len(pat) > 64 || len(name) > 64 {
			return
		}
		p, err := compileGlob(pat)
		if err != nil {
			if pat != "" && !strings.HasSuffix(pat, `\`) {
				t.Fatalf("%q: unexpected error %v", pat, err)
			}
			return
		}
		if got, want := p.match(name), naiveGlob(pat, name); got != want {
			t.Fatalf("%q ~ %q: got %v, want %v (class %d)", pat, name, got, want, p.class)
		}
	})
}
