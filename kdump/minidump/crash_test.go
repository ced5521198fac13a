package minidump

import (
	"fmt"
	"path/filepath"
	"testing"
)

// TestCrashFactsCorpus checks the crash facts of corpus dumps whose crash
// is known: by their names (null/ascii/non-null read and write AVs, Linux
// divide by zero), by ground truth (minidump2) or by the test suites they
// come from.
func TestCrashFactsCorpus(t *testing.T) {
	tests := []struct {
		file, reason, detail string
		addr                 uint64
		proc                 string
	}{
		{"breakpad-minidump2.dmp", "EXCEPTION_ACCESS_VIOLATION_WRITE", "", 0x45, "test_app.exe"},
		{"breakpad-null_read_av.dmp", "EXCEPTION_ACCESS_VIOLATION_READ", "", 0, "crashme.exe"},
		{"breakpad-ascii_read_av.dmp", "EXCEPTION_ACCESS_VIOLATION_READ", "", 0x41414141, "crashme.exe"},
		{"breakpad-ascii_write_av.dmp", "EXCEPTION_ACCESS_VIOLATION_WRITE", "", 0x41414141, "crashme.exe"},
		{"breakpad-write_av_non_null.dmp", "EXCEPTION_ACCESS_VIOLATION_WRITE", "", 0x4e3c9, "crashme.exe"},
		{"breakpad-read_av_non_null.dmp", "EXCEPTION_ACCESS_VIOLATION_READ", "", 0x4e3c9, "crashme.exe"},
		{"breakpad-tiny-exe-fastfail.dmp", "STATUS_STACK_BUFFER_OVERRUN", "FAST_FAIL_FATAL_APP_EXIT", 0x7ff75355af42, "tiny.exe"},
		{"breakpad-linux_divide_by_zero.dmp", "SIGFPE", "", 0x401f27, "driver"},
		{"breakpad-linux_null_read_av.dmp", "SIGSEGV", "", 0, "null_read_av"},
		{"breakpad-linux_inline.dmp", "SIGILL", "ILL_ILLOPN", 0x2161b6, "linux_inline"},
		{"rust-minidump-linux-mini.dmp", "SIGSEGV", "", 0x45, "crash"},
		{"rust-minidump-pipeline-inlines-macos-segv.dmp", "EXC_BAD_ACCESS", "KERN_INVALID_ADDRESS", 0xffffffff80000042, "crash-client"},
		{"rust-minidump-invalid-parameter.dmp", "STATUS_INVALID_PARAMETER", "", 0, "CrashTest.exe"},
		{"rizin-calc.dmp", "EXCEPTION_BREAKPOINT", "", 0x7776ae10, "calc.exe"},
		{"symbol-heavy.dmp", "EXCEPTION_ACCESS_VIOLATION_WRITE", "", 0, "DemoCrash1.exe"},
	}
	dir := corpusDir(t)
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			f, err := Open(filepath.Join(dir, "user", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			addr, ok := f.CrashAddress()
			got := fmt.Sprintf("%s|%s|%#x|%v|%s", f.CrashReason(), f.CrashDetail(), addr, ok, f.ProcessName())
			want := fmt.Sprintf("%s|%s|%#x|%v|%s", tc.reason, tc.detail, tc.addr, true, tc.proc)
			if got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
			e, _ := f.Exception()
			if id, ok := f.CrashingThreadID(); !ok || id != e.ThreadID {
				t.Errorf("CrashingThreadID = %#x, %v", id, ok)
			}
			if _, err := f.Thread(e.ThreadID); err != nil {
				t.Errorf("crashing thread %#x not in the thread list: %v", e.ThreadID, err)
			}
		})
	}
}

func TestAccessViolationKinds(t *testing.T) {
	for _, tc := range []struct {
		info0  uint64
		target uint64
		code   ExceptionCode
		reason string
		null   bool
		known  bool
		detail string
	}{
		{0, 0x10, StatusAccessViolation, "EXCEPTION_ACCESS_VIOLATION_READ", true, true, ""},
		{1, 0x7fff0000, StatusAccessViolation, "EXCEPTION_ACCESS_VIOLATION_WRITE", false, true, ""},
		{8, 0x401000, StatusAccessViolation, "EXCEPTION_ACCESS_VIOLATION_EXEC", false, true, ""},
		{0, ^uint64(0), StatusAccessViolation, "EXCEPTION_ACCESS_VIOLATION_READ", false, false, ""},
		{5, 0x1000, StatusAccessViolation, "EXCEPTION_ACCESS_VIOLATION", true, true, ""},
		{0, 0x20000, StatusInPageError, "EXCEPTION_IN_PAGE_ERROR_READ", false, true, "0xc000009c"},
	} {
		m := newMDB()
		var ex lew
		ex.u32(1).u32(0).u32(uint32(tc.code)).u32(0).u64(0).u64(0x401000).u32(3).u32(0).u64(tc.info0).u64(tc.target).u64(0xC000009C).zero(12 * 8).u32(0).u32(0)
		m.stream(ExceptionStream, ex.b)
		f := openSynthetic(t, m.bytes())
		av := f.AccessViolation()
		if av == nil {
			t.Fatalf("%v: no access violation", tc)
		}
		if av.Reason() != tc.reason || av.IsNull() != tc.null || av.AddressKnown() != tc.known || f.CrashReason() != tc.reason || f.CrashDetail() != tc.detail {
			t.Errorf("%+v: reason %s null %v known %v detail %q", tc, av.Reason(), av.IsNull(), av.AddressKnown(), f.CrashDetail())
		}
	}
}

func TestExceptionCodeNames(t *testing.T) {
	for _, tc := range []struct {
		c    ExceptionCode
		want string
	}{
		{0xC0000005, "EXCEPTION_ACCESS_VIOLATION"},
		{0xC00000FD, "EXCEPTION_STACK_OVERFLOW"},
		{0xE06D7363, "CPP_EH_EXCEPTION"},
		{0xC0000374, "STATUS_HEAP_CORRUPTION"},
		{0xC0000094, "EXCEPTION_INT_DIVIDE_BY_ZERO"},
		{0x12345678, "0x12345678"},
	} {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("%#x: %s, want %s", uint32(tc.c), got, tc.want)
		}
	}
	if FastFailName(2) != "FAST_FAIL_STACK_COOKIE_CHECK_FAILURE" || FastFailName(99) != "" {
		t.Errorf("fast fail names")
	}
}

func TestCrashpadAnnotationsCorpus(t *testing.T) {
	dir := corpusDir(t)
	tests := []struct {
		file string
		kv   map[string]string
	}{
		{"electron-crashpad.dmp", map[string]string{"prod": "Electron", "ver": "41.3.0", "plat": "Win64", "ptype": "browser"}},
		{"breakpad-minidump_crashpad_annotation.dmp", map[string]string{"prod": "xcuitest", "plat": "iOS", "exceptionName": "NSRangeException"}},
	}
	for _, tc := range tests {
		f, err := Open(filepath.Join(dir, "user", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		c, err := f.CrashpadInfo()
		if err != nil || len(c.Problems) != 0 {
			t.Fatalf("%s: %v %v", tc.file, err, c.Problems)
		}
		for k, want := range tc.kv {
			if got, ok := c.Annotation(k); !ok || got != want {
				t.Errorf("%s: %s = %q %v, want %q", tc.file, k, got, ok, want)
			}
		}
	}
}
