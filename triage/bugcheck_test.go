package triage

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdtriage/kdtriage/triage/internal/bugcheckgen/tsv"
)

func TestLookupBugCheck(t *testing.T) {
	tests := []struct {
		code    uint32
		name    string
		base    uint32
		blame   Blame
		ipParam int
	}{
		{0x7E, "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED", 0x7E, BlameIP, 2},
		{0x1000007E, "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M", 0x7E, BlameIP, 2},
		{0x1000008E, "KERNEL_MODE_EXCEPTION_NOT_HANDLED_M", 0x8E, BlameIP, 2},
		{0x100000EA, "THREAD_STUCK_IN_DEVICE_DRIVER_M", 0xEA, BlameObject, 0},
		{0x0A, "IRQL_NOT_LESS_OR_EQUAL", 0x0A, BlameIP, 4},
		{0xD1, "DRIVER_IRQL_NOT_LESS_OR_EQUAL", 0xD1, BlameIP, 4},
		{0x50, "PAGE_FAULT_IN_NONPAGED_AREA", 0x50, BlameIP, 3},
		{0x124, "WHEA_UNCORRECTABLE_ERROR", 0x124, BlameHardware, 0},
		{0xE2, "MANUALLY_INITIATED_CRASH", 0xE2, BlameNotABug, 0},
		{0x1A, "MEMORY_MANAGEMENT", 0x1A, BlameStack, 0},
		{0xA0000001, "BUGCHECK_A0000001", 0xA0000001, BlameStack, 0},
	}
	for _, tt := range tests {
		got := LookupBugCheck(tt.code)
		if got.Name != tt.name || got.Code != tt.base || got.Blame != tt.blame || got.IPParam != tt.ipParam {
			t.Errorf("LookupBugCheck(%#x) = {%s %#x %v ip=P%d}, want {%s %#x %v ip=P%d}",
				tt.code, got.Name, got.Code, got.Blame, got.IPParam, tt.name, tt.base, tt.blame, tt.ipParam)
		}
	}
}

func TestBugCheckSubcodes(t *testing.T) {
	tests := []struct {
		code   uint32
		params [4]uint64
		want   string
	}{
		{0x1A, [4]uint64{0x41287}, "illegal page fault"},
		{0x1A, [4]uint64{0x41790}, "page table page has been corrupted"},
		{0x139, [4]uint64{3}, "LIST_ENTRY"},
		{0x133, [4]uint64{1}, "DISPATCH_LEVEL"},
		{0x9F, [4]uint64{3}, "held a power IRP too long"},
		{0x124, [4]uint64{0}, "machine check"},
		{0x109, [4]uint64{0, 0, 0, 1}, "function was modified"},
	}
	for _, tt := range tests {
		info := LookupBugCheck(tt.code)
		if got := info.Subcode(tt.params); !strings.Contains(got, tt.want) {
			t.Errorf("%#x %#x: subcode %q, want it to mention %q", tt.code, tt.params, got, tt.want)
		}
		if got := info.Param(info.SubcodeParam, tt.params); !strings.Contains(got, tt.want) {
			t.Errorf("%#x: Param(P%d) = %q", tt.code, info.SubcodeParam, got)
		}
	}
	// An undocumented subtype falls back to the generic text.
	info := LookupBugCheck(0x139)
	if got := info.Param(1, [4]uint64{0x999}); got != "type of corruption" {
		t.Errorf("unknown 0x139 subtype: %q", got)
	}
}

// Every hand-written entry names a documented code, and the parameter
// indexes stay within P1..P4.
func TestBugCheckParamsConsistent(t *testing.T) {
	for code, p := range bugCheckParams {
		if _, ok := bugCheckNames[code]; !ok {
			t.Errorf("%#x has parameter notes but is not in the code list", code)
		}
		for _, n := range []int{p.ip, p.ctx, p.trap, p.exc, p.obj, p.subcd} {
			if n < 0 || n > 4 {
				t.Errorf("%#x: parameter index %d", code, n)
			}
		}
		if p.subcodes != nil && p.subcd == 0 {
			t.Errorf("%#x: subcodes without a subcode parameter", code)
		}
	}
}

// The committed table is what the generator makes from the shared list.
func TestBugCheckTableUpToDate(t *testing.T) {
	path := filepath.Join("..", "..", "shared", "bugcheck-codes.tsv")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("shared bug-check list not found at %s: %v", path, err)
	}
	rows, err := tsv.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 425 {
		t.Errorf("%d codes in the shared list, want 425", len(rows))
	}
	for _, r := range rows {
		got := LookupBugCheck(r.Code)
		if !got.Known || got.Name != r.Name && !strings.HasPrefix(r.Name, got.Name) {
			t.Errorf("%#x: got %q known=%v, want %q", r.Code, got.Name, got.Known, r.Name)
		}
	}
	if len(bugCheckNames) != len(rows) {
		t.Errorf("table has %d codes, list has %d: run go generate ./triage", len(bugCheckNames), len(rows))
	}
	committed, err := os.ReadFile("bugcheck_table.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(committed, []byte(`"`+rows[len(rows)-1].Name+`"`)) {
		t.Errorf("bugcheck_table.go is stale: run go generate ./triage")
	}
}
