package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdtriage/kdtriage/kdump/kdumptest"
)

// TestInfoSynthetic runs `kdtriage info --format json` on synthetic dumps
// of every type and architecture (no corpus needed) and compares the keys
// the issue names with what the builder wrote.
func TestInfoSynthetic(t *testing.T) {
	type tc struct {
		arch kdumptest.Arch
		kind kdumptest.Kind
	}
	var cases []tc
	for _, arch := range []kdumptest.Arch{kdumptest.AMD64, kdumptest.X86PAE, kdumptest.X86, kdumptest.ARM64} {
		for _, kind := range []kdumptest.Kind{kdumptest.Triage, kdumptest.Full, kdumptest.BitmapKernel, kdumptest.BitmapFull, kdumptest.RDMPKernel} {
			cases = append(cases, tc{arch, kind})
		}
	}
	cases = append(cases, tc{kdumptest.ARM, kdumptest.Triage})
	dir := t.TempDir()
	machines := map[uint16]string{0x8664: "x64", 0x14c: "x86", 0xaa64: "arm64", 0x1c4: "arm"}
	for _, c := range cases {
		name := fmt.Sprintf("%v-%v", c.arch, c.kind)
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name+".dmp")
			facts, err := kdumptest.BuildFile(path, kdumptest.Spec{Arch: c.arch, Kind: c.kind, BugCheck: 0xD1,
				Params: [4]uint64{0x10, 2, 0, 0x1234}})
			if err != nil {
				t.Fatal(err)
			}
			code, out, errOut := runCLI(t, "info", "--format", "json", path)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var got struct {
				Format       string
				Machine      string
				OSBuild      uint32 `json:"os_build"`
				DumpTypeCode uint32 `json:"dump_type_code"`
				Size         int64
				SHA256       string
				Bugcheck     struct {
					Code, Name string
					Params     []string
				}
				Modules []struct{ Name, Base, Size, Timestamp string }
				Context struct{ IP, SP string }
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			wantFormat := "kernel32"
			if c.arch.Is64() {
				wantFormat = "kernel64"
			}
			if got.Format != wantFormat || got.Machine != machines[facts.Machine] || got.OSBuild != facts.Build ||
				got.DumpTypeCode != facts.DumpType || got.Size != facts.FileSize || len(got.SHA256) != 64 {
				t.Errorf("header keys %+v, facts %+v", got, facts)
			}
			if got.Bugcheck.Code != "0xd1" || got.Bugcheck.Name != "DRIVER_IRQL_NOT_LESS_OR_EQUAL" ||
				strings.Join(got.Bugcheck.Params, ",") != "0x10,0x2,0x0,0x1234" {
				t.Errorf("bugcheck %+v", got.Bugcheck)
			}
			if len(got.Modules) != len(facts.Modules) {
				t.Fatalf("%d modules, want %d", len(got.Modules), len(facts.Modules))
			}
			for i, m := range facts.Modules {
				g := got.Modules[i]
				if g.Name != m.Name || g.Base != fmt.Sprintf("%#x", m.Base) || g.Size != fmt.Sprintf("%#x", m.Size) ||
					g.Timestamp != fmt.Sprintf("%#x", m.TimeDateStamp) {
					t.Errorf("module %d = %+v, want %+v", i, g, m)
				}
			}
			if got.Context.IP == "" || got.Context.SP == "" {
				t.Errorf("context %+v", got.Context)
			}
		})
	}
}
