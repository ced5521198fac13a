package symbols

import (
	"errors"
	"reflect"
	"testing"
)

func TestParsePath(t *testing.T) {
	ms := MicrosoftSymbolServer
	tests := []struct {
		in   string
		want []Element
		norm string
	}{
		{"", nil, ""},
		{" ; ;", nil, ""},
		{`srv*C:\sym*https://msdl.microsoft.com/download/symbols`,
			[]Element{{Kind: ElemServer, Stores: []string{`C:\sym`, ms}}}, `srv*C:\sym*` + ms},
		{"SRV*https://sym.example/x", []Element{{Kind: ElemServer, Stores: []string{"", "https://sym.example/x"}}}, "srv**https://sym.example/x"},
		{"srv**https://sym.example/x", []Element{{Kind: ElemServer, Stores: []string{"", "https://sym.example/x"}}}, "srv**https://sym.example/x"},
		{"srv*", []Element{{Kind: ElemServer, Stores: []string{"", ms}}}, "srv**" + ms},
		{`srv*\\share\symbols`, []Element{{Kind: ElemServer, Stores: []string{`\\share\symbols`}}}, `srv*\\share\symbols`},
		{"srv*/c1*/c2*http://s", []Element{{Kind: ElemServer, Stores: []string{"/c1", "/c2", "http://s"}}}, "srv*/c1*/c2*http://s"},
		{"symsrv*symsrv.dll*/cache*https://s/sym", []Element{{Kind: ElemServer, DLL: "symsrv.dll", Stores: []string{"/cache", "https://s/sym"}}}, "symsrv*symsrv.dll*/cache*https://s/sym"},
		{"SymSrv*SYMSRV.DLL*/c*http://s", []Element{{Kind: ElemServer, DLL: "SYMSRV.DLL", Stores: []string{"/c", "http://s"}}}, "symsrv*SYMSRV.DLL*/c*http://s"},
		{"cache*/var/cache/sym;/opt/syms; srv*http://s ",
			[]Element{{Kind: ElemCache, Dir: "/var/cache/sym"}, {Kind: ElemDir, Dir: "/opt/syms"}, {Kind: ElemServer, Stores: []string{"", "http://s"}}},
			"cache*/var/cache/sym;/opt/syms;srv**http://s"},
		{"cache*", []Element{{Kind: ElemCache}}, "cache*"},
		{`SRV * C:\My Symbols * https://s/sym ; cache * /c ;`, []Element{{Kind: ElemServer, Stores: []string{`C:\My Symbols`, "https://s/sym"}}, {Kind: ElemCache, Dir: "/c"}},
			`srv*C:\My Symbols*https://s/sym;cache*/c`},
		{"symsrv * symsrv.dll * /c * http://s", []Element{{Kind: ElemServer, DLL: "symsrv.dll", Stores: []string{"/c", "http://s"}}}, "symsrv*symsrv.dll*/c*http://s"},
		{`C:\symbols;D:\more`, []Element{{Kind: ElemDir, Dir: `C:\symbols`}, {Kind: ElemDir, Dir: `D:\more`}}, `C:\symbols;D:\more`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := ParsePath(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Elements) != len(tt.want) {
				t.Fatalf("%d elements, want %d: %+v", len(p.Elements), len(tt.want), p.Elements)
			}
			for i := range tt.want {
				got := p.Elements[i]
				got.Raw = ""
				if !reflect.DeepEqual(got, tt.want[i]) {
					t.Errorf("element %d = %+v, want %+v", i, got, tt.want[i])
				}
			}
			if s := p.String(); s != tt.norm {
				t.Errorf("String = %q, want %q", s, tt.norm)
			}
			again, err := ParsePath(p.String())
			if err != nil || again.String() != p.String() {
				t.Errorf("reparse of %q = %q, %v", p.String(), again.String(), err)
			}
		})
	}
}

func TestParsePathErrors(t *testing.T) {
	tests := []struct {
		in    string
		want  error
		index int
	}{
		{"/ok;foo*bar", ErrUnknownPrefix, 1},
		{"https://msdl.microsoft.com/download/symbols", ErrUnknownPrefix, 0},
		{"srv*http://a*/cache", ErrURLNotLast, 0},
		{"srv*/c*", ErrEmptyServer, 0},
		{"symsrv*other.dll*/c*http://s", ErrUnsupportedDLL, 0},
		{"symsrv*symsrv.dll*", ErrEmptyServer, 0},
		{"srv*/c*ftp://host/x", ErrBadURL, 0},
		{"srv*/c*http://", ErrBadURL, 0},
		{"cache*http://x", ErrURLNotLast, 0},
		{"cache*/a*/b", ErrUnknownPrefix, 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParsePath(tt.in)
			var pe *PathError
			if !errors.As(err, &pe) || !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want a *PathError wrapping %v", err, tt.want)
			}
			if pe.Index != tt.index {
				t.Errorf("index %d, want %d", pe.Index, tt.index)
			}
		})
	}
}

func TestEffectivePath(t *testing.T) {
	tests := []struct {
		flag, config, env string
		want              string
		src               PathSource
	}{
		{"f", "c", "e", "f", SourceFlag},
		{"", "c", "e", "c", SourceConfig},
		{"  ", "c", "e", "c", SourceConfig},
		{"", "", "e", "e", SourceEnvironment},
		{"", "", "", "", SourceNone},
	}
	for _, tt := range tests {
		got, src := EffectivePath(tt.flag, tt.config, tt.env)
		if got != tt.want || src != tt.src {
			t.Errorf("EffectivePath(%q,%q,%q) = %q,%v, want %q,%v", tt.flag, tt.config, tt.env, got, src, tt.want, tt.src)
		}
	}
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"srv*C:\\sym*https://msdl.microsoft.com/download/symbols", "cache*;srv*", "symsrv*symsrv.dll*a*b*http://c", "a;b;c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			return
		}
		again, err := ParsePath(p.String())
		if err != nil {
			t.Fatalf("reparse of %q (from %q): %v", p.String(), s, err)
		}
		if again.String() != p.String() {
			t.Fatalf("not stable: %q -> %q", p.String(), again.String())
		}
	})
}
