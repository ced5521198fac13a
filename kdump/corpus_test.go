package kdump

import (
	"bufio"
	"errors"
	"fmt"
	"github.com/kdtriage/kdtriage/kdump/kdumptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// corpusDir returns the shared corpus directory or skips the test.
func corpusDir(t testing.TB) string {
	t.Helper()
	return kdumptest.CorpusDir(t)
}

type expectedRow map[string]string

func readExpected(t testing.TB, dir string) []expectedRow {
	t.Helper()
	fh, err := os.Open(filepath.Join(dir, "EXPECTED.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	var cols []string
	var rows []expectedRow
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if cols == nil {
			cols = f
			continue
		}
		r := expectedRow{}
		for i, c := range cols {
			if i < len(f) {
				r[c] = f[i]
			}
		}
		rows = append(rows, r)
	}
	return rows
}

func parseHex(t testing.TB, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
	if err != nil {
		t.Fatalf("bad hex %q in EXPECTED.tsv", s)
	}
	return v
}

// TestCorpusKernelDumps checks every kernel row of EXPECTED.tsv.
func TestCorpusKernelDumps(t *testing.T) {
	dir := corpusDir(t)
	n := 0
	for _, row := range readExpected(t, dir) {
		if row["format"] != "kernel64" && row["format"] != "kernel32" {
			continue
		}
		n++
		t.Run(row["file"], func(t *testing.T) {
			f, err := Open(filepath.Join(dir, row["file"]))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			h := f.Header()
			if got := h.Format.String(); got != row["format"] {
				t.Errorf("format %s, want %s", got, row["format"])
			}
			if got := uint64(h.Machine); got != parseHex(t, row["machine"]) {
				t.Errorf("machine %#x, want %s", got, row["machine"])
			}
			if got := fmt.Sprint(h.MinorVersion); got != row["build"] {
				t.Errorf("build %s, want %s", got, row["build"])
			}
			if got := fmt.Sprint(uint32(h.DumpType)); got != row["dumptype"] {
				t.Errorf("dump type %s, want %s", got, row["dumptype"])
			}
			if got := uint64(h.BugCheck.Code); got != parseHex(t, row["bugcheck"]) {
				t.Errorf("bug check %#x, want %s", got, row["bugcheck"])
			}
			for i, p := range strings.Split(row["params"], ",") {
				if got := h.BugCheck.Params[i]; got != parseHex(t, p) {
					t.Errorf("P%d %#x, want %s", i+1, got, p)
				}
			}
			mods, err := f.Modules()
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(len(mods)); got != row["drivers"] {
				t.Errorf("%s drivers, want %s", got, row["drivers"])
			}
			if len(mods) > 0 && mods[0].Name != row["first_driver"] {
				t.Errorf("first driver %q, want %q", mods[0].Name, row["first_driver"])
			}
			if ip := row["ip_param"]; ip != "" {
				addr := parseHex(t, ip)
				got := "none"
				if m := ModuleAt(mods, addr); m != nil {
					got = fmt.Sprintf("%s+%#x", m.Name, addr-m.Base)
				}
				if got != row["ip_module"] {
					t.Errorf("IP %s in %s, want %s", ip, got, row["ip_module"])
				}
			}
			// Windows 10 triage dumps carry the bug-check CONTEXT in a data
			// block; Windows 8.1 ones record only the pointer to it.
			if c, err := f.ProcessorContext(); err == nil {
				if ModuleAt(mods, c.IP()) == nil {
					t.Errorf("processor context IP %#x is in no module", c.IP())
				}
			} else if h.MinorVersion >= 10000 || !IsNotPresent(err) {
				t.Errorf("processor context: %v", err)
			}
			if name, err := f.ProcessName(); err != nil || name == "" {
				t.Errorf("process name %q: %v", name, err)
			}
			if p := f.Problems(); len(p) > 0 {
				t.Errorf("problems reading a good dump: %v", p)
			}
		})
	}
	if n == 0 {
		t.Fatal("EXPECTED.tsv has no kernel rows")
	}
}

// TestCorpusTriageX64Facts checks the facts the corpus README states for
// win10-triage_x64.dmp.
func TestCorpusTriageX64Facts(t *testing.T) {
	dir := corpusDir(t)
	f, err := Open(filepath.Join(dir, "kernel", "win10-triage_x64.dmp"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mods, _ := f.Modules()
	var amd *Module
	for i := range mods {
		if strings.EqualFold(mods[i].Name, "amdppm.sys") {
			amd = &mods[i]
		}
	}
	if amd == nil || amd.Base != 0xfffff8048b580000 || amd.Size != 0x3b000 {
		t.Errorf("amdppm.sys = %+v, want base 0xfffff8048b580000 size 0x3b000", amd)
	}
	want := []string{"ntoskrnl.exe", "hal.dll", "kd.dll", "CLFS.SYS"}
	for i, w := range want {
		if mods[i].Name != w {
			t.Errorf("driver %d = %q, want %q", i, mods[i].Name, w)
		}
	}
	c, err := f.Context()
	if err != nil {
		t.Fatal(err)
	}
	// The header holds the faulting context (RIP = P2) ...
	if c.IP() != 0xfffff8048b58334c || c.SP() != 0xffff850429892120 {
		t.Errorf("header context RIP %#x RSP %#x", c.IP(), c.SP())
	}
	// ... and the PRCB the bug-check context the README gives (nt!KeBugCheckEx).
	pc, err := f.ProcessorContext()
	if err != nil {
		t.Fatal(err)
	}
	if pc.IP() != 0xfffff8047bdf5a80 || pc.SP() != 0xffff850429890ee8 {
		t.Errorf("processor context RIP %#x RSP %#x, want 0xfffff8047bdf5a80 0xffff850429890ee8", pc.IP(), pc.SP())
	}
	tr := f.Triage()
	if tr.DriverListOffset != 0x10828 || tr.StringPoolOffset != 0x15d18 || tr.StringPoolSize != 0x3720 || tr.DataBlocksCount != 0x727 {
		t.Errorf("triage header %+v", tr)
	}
	k, err := f.KDBG()
	if err != nil {
		t.Fatal(err)
	}
	if k.VA != 0xfffff8047c600b20 || k.SizePrcb != 0xAF00 || k.OffsetKThreadApcProcess != 0xB8 {
		t.Errorf("KDBG %+v", k)
	}
	// The saved stack is readable through the virtual memory reader.
	var b [8]byte
	if _, err := f.Memory().ReadVirtual(b[:], c.SP()); err != nil {
		t.Errorf("reading the stack at RSP: %v", err)
	}
	name, err := f.ProcessName()
	if err != nil || name != "System" {
		t.Errorf("process name %q, %v; want System", name, err)
	}
	un, _ := f.UnloadedModules()
	if len(un) != 4 || un[0].Name != "dam.sys" || un[0].Start != 0xfffff80487de0000 || un[0].End != 0xfffff80487dfc000 {
		t.Errorf("unloaded %+v", un)
	}

	// Header, triage header and KDBG values checked on this file in
	// dump-formats §1.2, §3.2, §3.8 and §4.
	h := f.Header()
	facts := []struct {
		name      string
		got, want any
	}{
		{"MajorVersion", h.MajorVersion, uint32(0xF)},
		{"MinorVersion", h.MinorVersion, uint32(19041)},
		{"NumberProcessors", h.NumberProcessors, uint32(16)},
		{"DirectoryTableBase", h.DirectoryTableBase, uint64(0x1ad000)},
		{"KdDebuggerDataBlock", h.KdDebuggerDataBlock, uint64(0xfffff8047c600b20)},
		{"BugCheck", h.BugCheck, BugCheck{0x1000007E, [4]uint64{0xffffffffc0000005, 0xfffff8048b58334c, 0xffff850429891ee8, 0xffff850429891720}}},
		{"Exception.Code", h.Exception.Code, uint32(0x80000003)},
		{"VersionUser", h.VersionUser, ""},
		{"Comment", h.Comment, ""},
		{"MiniDumpFields", h.MiniDumpFields, uint32(0xCFF)},
		{"SecondaryDataStateSet", h.SecondaryDataStateSet, false},
		{"ProductType", fmt.Sprint(h.ProductType, h.ProductTypeSet), "1 true"},
		{"SuiteMask", fmt.Sprint(h.SuiteMask, h.SuiteMaskSet), "272 true"},
		{"KdSecondaryVersion", h.KdSecondaryVersion, uint8(0)},
		{"AttributesSet", h.AttributesSet, false},
		{"BootIDSet", h.BootIDSet, false},
		{"SizeOfDump", tr.SizeOfDump, uint32(0x13A28C)},
		{"ValidOffset", tr.ValidOffset, uint32(0x13a288)},
		{"ContextOffset", tr.ContextOffset, uint32(0x348)},
		{"ExceptionOffset", tr.ExceptionOffset, uint32(0xF00)},
		{"PrcbOffset", tr.PrcbOffset, uint32(0x21b8)},
		{"ProcessOffset", tr.ProcessOffset, uint32(0xd0b8)},
		{"ThreadOffset", tr.ThreadOffset, uint32(0xdaf8)},
		{"CallStackOffset", tr.CallStackOffset, uint32(0xe390)},
		{"SizeOfCallStack", tr.SizeOfCallStack, uint32(0x2118)},
		{"TopOfStack", tr.TopOfStack, uint64(0xffff850429890ee8)},
		{"DriverCount", tr.DriverCount, uint32(0x97)},
		{"DebuggerData", fmt.Sprintf("%#x/%#x", tr.DebuggerDataOffset, tr.DebuggerDataSize), "0x104a8/0x380"},
		{"KDBG.Size", k.Size, uint32(0x380)},
		{"KDBG.OffsetPrcbCurrentThread", k.OffsetPrcbCurrentThread, uint16(0x8)},
		{"KDBG.OffsetPrcbContext", k.OffsetPrcbContext, uint16(0x85C0)},
		{"KDBG.OffsetKThreadTeb", k.OffsetKThreadTeb, uint16(0xF0)},
		{"KDBG.OffsetKThreadKernelStack", k.OffsetKThreadKernelStack, uint16(0x58)},
		{"KDBG.OffsetKThreadInitialStack", k.OffsetKThreadInitialStack, uint16(0x28)},
		{"KDBG.OffsetKThreadStackLimit", k.OffsetKThreadStackLimit, uint32(0x30)},
		{"KDBG.OffsetKThreadStackBase", k.OffsetKThreadStackBase, uint32(0x38)},
		{"KDBG.SizeEProcess", k.SizeEProcess, uint16(0xA40)},
		{"KDBG.SizeEThread", k.SizeEThread, uint16(0x898)},
		{"KDBG.PteBase", k.PteBase, uint64(0xFFFFFD8000000000)},
	}
	for _, fc := range facts {
		if fc.got != fc.want {
			t.Errorf("%s = %v, want %v", fc.name, fc.got, fc.want)
		}
	}
}

// TestCorpusCrashingProcessor: in every corpus triage dump, the two ways
// of finding the crashing CPU (the PRCB copy's slot in KiProcessorBlock,
// and KPRCB.Number) agree wherever both are recorded.
func TestCorpusCrashingProcessor(t *testing.T) {
	dir := corpusDir(t)
	paths, _ := filepath.Glob(filepath.Join(dir, "kernel", "*.dmp"))
	both := 0
	for _, p := range paths {
		f, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		cpu, err := f.CrashingProcessor()
		if err != nil || cpu < 0 || cpu >= int(f.Header().NumberProcessors) {
			t.Errorf("%s: CrashingProcessor %d, %v", filepath.Base(p), cpu, err)
		}
		if n := f.triage.cpuNumber; f.triage.prcbVA != 0 && n >= 0 {
			both++
			if n != cpu {
				t.Errorf("%s: KiProcessorBlock slot %d, KPRCB.Number %d", filepath.Base(p), cpu, n)
			}
		}
		f.Close()
	}
	if both == 0 {
		t.Error("no corpus dump records both")
	}
}

// TestCorpusMalformed: every malformed file gives a typed error, no panic.
func TestCorpusMalformed(t *testing.T) {
	dir := corpusDir(t)
	ents, err := os.ReadDir(filepath.Join(dir, "malformed"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Run(e.Name(), func(t *testing.T) {
			_, err := Open(filepath.Join(dir, "malformed", e.Name()))
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a *FormatError", err)
			}
			t.Logf("%v", err)
		})
	}
}
