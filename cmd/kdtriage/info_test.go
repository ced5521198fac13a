package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInfoJSONCorpus(t *testing.T) {
	dir := corpusDir(t)
	path := filepath.Join(dir, "kernel", "win10-triage_x64.dmp")
	code, out, errOut := runCLI(t, "info", "--format", "json", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got struct {
		File, SHA256, Format, Machine string
		Size                          int64
		OSBuild                       uint32 `json:"os_build"`
		DumpType                      string `json:"dump_type"`
		DumpTypeCode                  uint32 `json:"dump_type_code"`
		Bugcheck                      struct {
			Code, Name string
			Params     []string
		}
		Modules       []struct{ Name, Base, Size, Timestamp string }
		Context       struct{ IP, SP string }
		HeaderContext struct{ IP, SP string } `json:"header_context"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.SHA256 != "6875e8ff013eddb9d562165067be24e2a231a8851690bb101f6597ca9534cd28" || got.Size != 1444532 ||
		got.Format != "kernel64" || got.Machine != "x64" || got.OSBuild != 19041 || got.DumpType != "triage" || got.DumpTypeCode != 4 {
		t.Errorf("header facts: %+v", got)
	}
	if got.Bugcheck.Code != "0x1000007e" || got.Bugcheck.Name != "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M" ||
		strings.Join(got.Bugcheck.Params, ",") != "0xffffffffc0000005,0xfffff8048b58334c,0xffff850429891ee8,0xffff850429891720" {
		t.Errorf("bugcheck: %+v", got.Bugcheck)
	}
	if len(got.Modules) != 151 || got.Modules[0].Name != "ntoskrnl.exe" {
		t.Fatalf("modules: %d, first %+v", len(got.Modules), got.Modules[0])
	}
	found := false
	for _, m := range got.Modules {
		if m.Name == "amdppm.sys" {
			found = m.Base == "0xfffff8048b580000" && m.Size == "0x3b000"
		}
	}
	if !found {
		t.Error("amdppm.sys with base 0xfffff8048b580000 size 0x3b000 not listed")
	}
	// The corpus README's context: nt!KeBugCheckEx on the crashing CPU.
	if got.Context.IP != "0xfffff8047bdf5a80" || got.Context.SP != "0xffff850429890ee8" {
		t.Errorf("context: %+v", got.Context)
	}
	// The header holds the faulting context (RIP = P2).
	if got.HeaderContext.IP != "0xfffff8048b58334c" || got.HeaderContext.SP != "0xffff850429892120" {
		t.Errorf("header context: %+v", got.HeaderContext)
	}
}

// Several files: the bad ones are reported on stderr with their offset,
// the good ones still printed (one JSON object per line), exit code 2.
func TestInfoMixedFiles(t *testing.T) {
	dir := corpusDir(t)
	tmp := t.TempDir()
	oracle := filepath.Join(tmp, "export.dmp")
	if err := os.WriteFile(oracle, append([]byte("\x03\x00\x01EXPORT:V19.00.00\n"), make([]byte, 100)...), 0o644); err != nil {
		t.Fatal(err)
	}
	trunc := filepath.Join(tmp, "trunc.dmp")
	src, err := os.ReadFile(filepath.Join(dir, "kernel", "win10-triage_x64.dmp"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(trunc, src[:0x3000], 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "kernel", "win81-111217-27671-01.dmp")
	code, out, errOut := runCLI(t, "info", "--format", "json", "--hash=never", oracle, good, trunc, filepath.Join(dir, "malformed", "win81-111317-52656-01.dmp"), good)
	if code != exitBadDump {
		t.Errorf("exit %d, want %d", code, exitBadDump)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d JSON lines, want 2: %s", len(lines), out)
	}
	errLines := strings.Split(strings.TrimSpace(errOut), "\n")
	if len(errLines) != 3 {
		t.Fatalf("%d error lines, want 3: %s", len(errLines), errOut)
	}
	for i, want := range []string{"Oracle export", "offset 0x", "never written"} {
		if !strings.Contains(errLines[i], want) {
			t.Errorf("error line %d %q does not mention %q", i, errLines[i], want)
		}
	}
}

func TestInfoFormats(t *testing.T) {
	dir := corpusDir(t)
	path := filepath.Join(dir, "kernel", "win81-111317-27812-01.dmp")
	for _, tc := range []struct{ format, want string }{
		{"text", "PAGE_FAULT_IN_NONPAGED_AREA"},
		{"table", "│ kernel64"},
		{"markdown", "|:-"},
		{"csv", "File,Format,Machine"},
	} {
		code, out, errOut := runCLI(t, "info", "--hash=never", "--format", tc.format, path)
		if code != 0 || !strings.Contains(out, tc.want) {
			t.Errorf("--format %s: exit %d, stderr %s, output lacks %q:\n%s", tc.format, code, errOut, tc.want, out)
		}
	}
	if code, _, errOut := runCLI(t, "info", "--format", "yaml", path); code != exitFailure || !strings.Contains(errOut, "unknown --format") {
		t.Errorf("bad format: exit %d, %s", code, errOut)
	}
}

// User-mode dumps go through the same command: the .dumpdebug-style
// listing in text and the stream/thread/exception keys in JSON.
func TestInfoUserDumpCLI(t *testing.T) {
	dir := corpusDir(t)
	path := filepath.Join(dir, "user", "breakpad-minidump2.dmp")
	code, out, errOut := runCLI(t, "info", "--format", "json", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got struct {
		Format, Machine string
		Streams         []struct {
			Type     string
			TypeCode int `json:"type_code"`
		}
		Threads   int
		Modules   []struct{ Name, Base string }
		Exception struct {
			Code, Address string
			CrashAddress  string `json:"crash_address"`
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.Format != "mdmp" || got.Machine != "x86" || len(got.Streams) != 9 || got.Threads != 2 || len(got.Modules) != 13 {
		t.Errorf("facts: %+v", got)
	}
	// The write to 0x45 by the instruction at 0x40429e (minidump2.stackwalk.out).
	if got.Exception.Code != "0xc0000005" || got.Exception.Address != "0x40429e" || got.Exception.CrashAddress != "0x45" {
		t.Errorf("exception: %+v", got.Exception)
	}
	code, out, _ = runCLI(t, "info", path)
	if code != 0 || !strings.Contains(out, "ThreadListStream") || !strings.Contains(out, "2 threads") {
		t.Errorf("text listing: exit %d\n%s", code, out)
	}
	// A legacy USERDU64 dump is recognised and named.
	code, out, errOut = runCLI(t, "info", "--format", "json", filepath.Join(dir, "legacy", "kdlibcpp-stacktest_x64_userdu64.dmp"))
	if code != 0 || !strings.Contains(out, `"format":"userdump"`) {
		t.Errorf("legacy USERDU64: exit %d, %s\n%s", code, errOut, out)
	}
}
