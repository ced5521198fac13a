package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/kdump/minidump"
)

// mdmpInfo runs infoUserDump on a corpus file and returns the JSON object
// (decoded generically) and the text.
func mdmpInfo(t *testing.T, path string) (map[string]any, string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	format, _ := kdump.Sniff(bytes.NewReader(b), int64(len(b)))
	j := &infoJSON{File: path, Size: int64(len(b))}
	j, text, err := infoUserDump(j, bytes.NewReader(b), int64(len(b)), format)
	if err != nil {
		t.Fatalf("infoUserDump: %v", err)
	}
	raw, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := text(&out); err != nil {
		t.Fatal(err)
	}
	return m, out.String()
}

func TestInfoMDMPMinidump2JSON(t *testing.T) {
	m, _ := mdmpInfo(t, filepath.Join(corpusDir(t), "user", "breakpad-minidump2.dmp"))
	// Values from groundtruth/minidump2.dump.out (Breakpad's minidump_dump).
	if m["format"] != "mdmp" || m["machine"] != "x86" || m["os_build"] != 2600.0 || m["threads"] != 2.0 || m["process_name"] != "test_app.exe" {
		t.Errorf("facts: format %v machine %v os_build %v threads %v process %v", m["format"], m["machine"], m["os_build"], m["threads"], m["process_name"])
	}
	streams, _ := m["streams"].([]any)
	if len(streams) != 9 {
		t.Fatalf("%d streams, want 9", len(streams))
	}
	want := []struct {
		typ  string
		code float64
		size float64
		rva  string
	}{
		{"ThreadListStream", 3, 100, "0x184"}, {"ModuleListStream", 4, 1408, "0x1e8"}, {"MemoryListStream", 5, 52, "0x1505"},
		{"ExceptionStream", 6, 168, "0xdc"}, {"SystemInfoStream", 7, 56, "0x8c"}, {"MiscInfoStream", 15, 24, "0xc4"},
		{"BreakpadInfoStream", 0x47670001, 12, "0x14f9"}, {"UnusedStream", 0, 0, "0x0"},
	}
	for i, w := range want {
		s := streams[i].(map[string]any)
		if s["type"] != w.typ || s["type_code"] != w.code || s["size"] != w.size || s["rva"] != w.rva {
			t.Errorf("stream %d = %v, want %+v", i, s, w)
		}
	}
	mods, _ := m["modules"].([]any)
	if len(mods) != 13 {
		t.Fatalf("%d modules, want 13", len(mods))
	}
	m0 := mods[0].(map[string]any)
	if m0["name"] != "test_app.exe" || m0["base"] != "0x400000" || m0["size"] != "0x2d000" || m0["timestamp"] != "0x45d35f6c" {
		t.Errorf("module 0 = %v", m0)
	}
	ex, _ := m["exception"].(map[string]any)
	if ex["code"] != "0xc0000005" || ex["address"] != "0x40429e" || ex["crash_reason"] != "EXCEPTION_ACCESS_VIOLATION_WRITE" ||
		ex["crash_address"] != "0x45" || ex["access_type"] != "write" || ex["fault_module"] != "test_app.exe" || ex["thread_id"] != "0xbf4" {
		t.Errorf("exception = %v", ex)
	}
	ctx, _ := m["context"].(map[string]any)
	if ctx["ip"] != "0x40429e" || ctx["sp"] != "0x12fe84" {
		t.Errorf("context = %v", ctx)
	}
	if p, ok := m["problems"]; ok {
		t.Errorf("problems: %v", p)
	}
	if _, ok := m["crashpad_annotations"]; ok {
		t.Errorf("crashpad_annotations in a dump without a Crashpad stream")
	}
	e, _ := mdmpInfo(t, filepath.Join(corpusDir(t), "user", "electron-crashpad.dmp"))
	if ann, _ := e["crashpad_annotations"].(map[string]any); ann["prod"] != "Electron" || ann["ver"] != "41.3.0" {
		t.Errorf("electron crashpad_annotations = %v", e["crashpad_annotations"])
	}
}

func TestInfoMDMPText(t *testing.T) {
	dir := corpusDir(t)
	tests := []struct {
		file string
		want []string
	}{
		{"breakpad-minidump2.dmp", []string{
			"ThreadListStream (0x3), size 00000064, RVA 00000184", "2 threads", "13 modules (13 with CodeView records)",
			"BreakpadInfoStream (0x47670001)", "EXCEPTION_ACCESS_VIOLATION_WRITE", "windows 5.1.2600 Service Pack 2",
			"test_app.exe+0x429e", "Flags           00000000",
		}},
		{"electron-crashpad.dmp", []string{
			`prod = "Electron"`, `ver = "41.3.0"`,
			"47 threads", "78 modules", "676 handle descriptors", "22014 memory regions", "CrashpadInfoStream (0x43500001)",
			"47 thread names", "1 unloaded module", "StabilityReportStream (0x4b6b0002)",
		}},
		{"rizin-calc.dmp", []string{
			"00040000 MiniDumpWithTokenInformation", "TokenStream (0x13)", "1 token", "MISC_INFO version 5 (1364 bytes)",
			"ProcessVmCountersStream", "EXCEPTION_BREAKPOINT", "windows 6.1.7601 Service Pack 1",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			_, text := mdmpInfo(t, filepath.Join(dir, "user", tc.file))
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("text lacks %q", w)
				}
			}
			if strings.Contains(text, "error:") {
				t.Errorf("text reports a stream error:\n%s", text)
			}
		})
	}
}

// TestInfoMDMPCorpus checks every user dump yields JSON with the user-mode
// keys, and mdmpInfoJSON agrees with fillMDMPInfo.
func TestInfoMDMPCorpus(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(corpusDir(t), "user", "*.dmp"))
	for _, p := range files {
		m, _ := mdmpInfo(t, p)
		for _, k := range []string{"streams", "threads", "modules", "machine", "os_build"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%s: no %q key", filepath.Base(p), k)
			}
		}
		f, err := minidump.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		mm := mdmpInfoJSON(p, f)
		if len(mm["streams"].([]mdmpStream)) != int(f.Header().NumberOfStreams) || mm["machine"] != m["machine"] {
			t.Errorf("%s: mdmpInfoJSON streams %d machine %v", filepath.Base(p), len(mm["streams"].([]mdmpStream)), mm["machine"])
		}
	}
}

func TestInfoUserDumpErrors(t *testing.T) {
	dir := corpusDir(t)
	b, err := os.ReadFile(filepath.Join(dir, "legacy", "kdlibcpp-stacktest_x64_userdu64.dmp"))
	if err != nil {
		t.Skip(err)
	}
	// The corpus USERDU64 file is reported (not an error).
	j, text, err := infoUserDump(&infoJSON{File: "x.dmp"}, bytes.NewReader(b), int64(len(b)), kdump.FormatUserDump64)
	if err != nil {
		t.Fatalf("legacy: %v", err)
	}
	var out strings.Builder
	if err := text(&out); err != nil {
		t.Fatal(err)
	}
	if j.Format != "userdump" || j.Machine != "x64" || len(j.Modules) != 7 || j.Process != "targetapp.exe" || j.Context == nil ||
		uint64(j.Context.IP) != 0x7ff7e1451e65 || !strings.Contains(out.String(), "USERDU64 legacy full user-mode dump") ||
		!strings.Contains(out.String(), "EXCEPTION_BREAKPOINT at 0x7ff7e1451e65") {
		t.Errorf("legacy info: %+v\n%s", j, out.String())
	}
	// A truncated one gives the typed error that names it.
	_, _, err = infoUserDump(&infoJSON{}, bytes.NewReader(b[:0x400]), 0x400, kdump.FormatUserDump64)
	var le *kdump.LegacyUserDumpError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "USERDU64") {
		t.Errorf("truncated legacy: %v", err)
	}
	bad, err := os.ReadFile(filepath.Join(dir, "malformed", "radare2-mdmp-dos.dmp"))
	if err != nil {
		t.Skip(err)
	}
	_, _, err = infoUserDump(&infoJSON{}, bytes.NewReader(bad), int64(len(bad)), kdump.FormatMDMP)
	var fe *minidump.FormatError
	if !errors.As(err, &fe) || fe.Offset < 0 {
		t.Errorf("malformed: %v", err)
	}
}
