package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdtriage/kdtriage/symbols"
)

// runSymbolsPath runs `symbols path` in-process; prep may configure the app.
func runSymbolsPath(t *testing.T, prep func(*app), args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	a := newApp(bytes.NewReader(nil), &out, &errb)
	if prep != nil {
		prep(a)
	}
	cmd := a.symbolsPathCommand()
	cmd.SetArgs(args)
	cmd.SetOut(&errb)
	cmd.SetErr(&errb)
	err := cmd.Execute()
	return out.String(), err
}

func TestSymbolsPathSources(t *testing.T) {
	cache := t.TempDir()
	tests := []struct {
		name   string
		env    string
		config string
		flag   string
		want   string
		source symbols.PathSource
	}{
		{"env only", "/env/syms", "", "", "/env/syms", symbols.SourceEnvironment},
		{"config over env", "/env/syms", "/cfg/syms", "", "/cfg/syms", symbols.SourceConfig},
		{"flag over all", "/env/syms", "/cfg/syms", "/flag/syms", "/flag/syms", symbols.SourceFlag},
		{"none", "", "", "", "", symbols.SourceNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("_NT_SYMBOL_PATH", tt.env)
			args := []string{"--format", "json", "--symbol-cache", cache}
			if tt.flag != "" {
				args = append(args, "--symbol-path", tt.flag)
			}
			out, err := runSymbolsPath(t, func(a *app) {
				if tt.config != "" {
					a.v.Set("symbols.path", tt.config)
				}
			}, args...)
			if err != nil {
				t.Fatal(err)
			}
			var j symbolPathJSON
			if err := json.Unmarshal([]byte(out), &j); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if j.Path != tt.want || j.Source != tt.source.String() || j.DefaultCache != cache {
				t.Fatalf("path %q from %q (cache %q), want %q from %q", j.Path, j.Source, j.DefaultCache, tt.want, tt.source)
			}
		})
	}
}

func TestSymbolsPathCandidates(t *testing.T) {
	t.Setenv("_NT_SYMBOL_PATH", "")
	local, cache, def := t.TempDir(), t.TempDir(), t.TempDir()
	path := local + ";srv*" + cache + "*https://msdl.microsoft.com/download/symbols;srv*https://sym.example.com/s"
	guid := "{3844DBB9-2017-4967-BE7A-A4A2C20430FA}"
	id := "3844DBB920174967BE7AA4A2C20430FA2"
	tests := []struct {
		name string
		args []string
		key  string
	}{
		{"pdb", []string{"ntkrnlmp.pdb", guid, "2"}, "ntkrnlmp.pdb/" + id + "/ntkrnlmp.pdb"},
		{"pdb lowercase guid hex age", []string{"ntkrnlmp.pdb", strings.ToLower(guid[1:37]), "0x2"}, "ntkrnlmp.pdb/" + id + "/ntkrnlmp.pdb"},
		{"key", []string{"ntkrnlmp.pdb/" + id + "/ntkrnlmp.pdb"}, "ntkrnlmp.pdb/" + id + "/ntkrnlmp.pdb"},
		{"image", []string{"amdppm.sys", "5F9B9A8E", "0x3B000"}, "amdppm.sys/5F9B9A8E3b000/amdppm.sys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runSymbolsPath(t, nil, append([]string{"--symbol-path", path, "--symbol-cache", def}, tt.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			name := strings.SplitN(tt.key, "/", 2)[0]
			file := tt.key[strings.LastIndex(tt.key, "/")+1:]
			want := []string{
				"Key: " + tt.key,
				filepath.Join(local, name, strings.Split(tt.key, "/")[1], file),
				filepath.Join(cache, filepath.FromSlash(tt.key)),
				"https://msdl.microsoft.com/download/symbols/" + tt.key,
				filepath.Join(def, filepath.FromSlash(tt.key)),
				"https://sym.example.com/s/" + tt.key,
			}
			last := -1
			for _, w := range want {
				i := strings.Index(out, w)
				if i < 0 || i < last {
					t.Fatalf("%q missing or out of order in:\n%s", w, out)
				}
				last = i
			}
		})
	}
}

func TestSymbolsPathErrors(t *testing.T) {
	t.Setenv("_NT_SYMBOL_PATH", "")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad path", []string{"--symbol-path", "foo*bar"}, "unknown element prefix"},
		{"hostile key", []string{"--symbol-path", "/x", "../../etc/passwd"}, "invalid key"},
		{"two args", []string{"a", "b"}, "got 2 arguments"},
		{"bad numbers", []string{"a.sys", "xyz", "12"}, "want a GUID"},
		{"bad age", []string{"a.pdb", "3844DBB920174967BE7AA4A2C20430FA", "two"}, "PDB age"},
		{"bad format", []string{"--format", "xml"}, "unknown --format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runSymbolsPath(t, nil, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}
