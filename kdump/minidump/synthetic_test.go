package minidump

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func openSynthetic(t *testing.T, b []byte) *File {
	t.Helper()
	f, err := NewFile(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("NewFile: %v", err)
	}
	return f
}

func TestSyntheticAllStreams(t *testing.T) {
	f := openSynthetic(t, buildSynthetic())
	if p := f.Problems(); len(p) != 0 {
		t.Fatalf("problems: %v", p)
	}
	h := f.Header()
	if h.ImplementationVersion() != 0x1234 || h.Flags.String() != "WithDataSegs|WithHandleData|WithProcessThreadData|WithThreadInfo" {
		t.Errorf("header: impl %#x flags %q", h.ImplementationVersion(), h.Flags)
	}
	for _, d := range f.Directory() {
		if s := f.StreamSummary(d); strings.HasPrefix(s, "error") {
			t.Errorf("stream %v: %s", d.Type, s)
		}
	}

	ths, err := f.Threads()
	if err != nil || len(ths) != 1 || ths[0].ID != synThreadID || ths[0].Stack.Start != synStack || ths[0].Priority != 8 {
		t.Fatalf("Threads = %+v, %v", ths, err)
	}
	tx, err := f.ThreadsEx()
	if err != nil || len(tx) != 1 || tx[0].BackingStore.Start != 0x900000 || tx[0].SuspendCount != 1 {
		t.Errorf("ThreadsEx = %+v, %v", tx, err)
	}
	ctx, err := f.ContextBytes(ths[0].Context)
	if err != nil || len(ctx) != 0x4D0 || binary.LittleEndian.Uint64(ctx[0xF8:]) != synCrashRIP-4 {
		t.Errorf("thread context: %d bytes, %v", len(ctx), err)
	}

	mods, err := f.Modules()
	if err != nil || len(mods) != 3 {
		t.Fatalf("Modules: %d, %v", len(mods), err)
	}
	app, lib, so := &mods[0], &mods[1], &mods[2]
	tests := []struct{ what, got, want string }{
		{"app name", app.BaseName(), "App.exe"},
		{"app version", app.Version.FileVersion(), "10.0.19041.1"},
		{"app product version", app.Version.ProductVersion(), "10.0.19041.1"},
		{"app code id", app.CodeID(), "5F0000005000"},
		{"app cv", app.CodeView.SignatureString(), "RSDS"},
		{"app guid", app.CodeView.GUID.String(), "11223344-5566-7788-0102-030405060708"},
		{"app debug id", app.DebugID(), "11223344556677880102030405060708A"},
		{"app pdb", app.CodeView.PDBBaseName(), "App.pdb"},
		{"lib cv", lib.CodeView.SignatureString(), "NB10"},
		{"lib debug id", lib.DebugID(), "3A2B1C0D3"},
		{"lib pdb", lib.DebugFile(), "lib.pdb"},
		{"lib misc", lib.Misc.Data, "lib.dbg"},
		{"lib version", lib.Version.FileVersion(), ""},
		{"so cv", so.CodeView.SignatureString(), "ELF"},
		{"so code id", so.CodeID(), "deadbeef0102030405060708090a0b0c0d0e0f10"},
		{"so debug id", so.DebugID(), "EFBEADDE0201040305060708090A0B0C0"},
		{"process name", f.ProcessName(), "App.exe"},
		{"crash reason", f.CrashReason(), "EXCEPTION_ACCESS_VIOLATION_WRITE"},
		{"av", f.AccessViolation().String(), "EXCEPTION_ACCESS_VIOLATION_WRITE at 0x10"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.what, tc.got, tc.want)
		}
	}
	if m := f.ModuleAt(synCrashRIP); m == nil || m.BaseName() != "App.exe" {
		t.Errorf("ModuleAt(crash) = %v", m)
	}
	if id, ok := f.CrashingThreadID(); !ok || id != synThreadID {
		t.Errorf("CrashingThreadID = %#x %v", id, ok)
	}
	if !f.AccessViolation().IsNull() {
		t.Errorf("AV at 0x10 not NULL-class")
	}

	// Memory: both lists, reads across and outside ranges.
	mem, err := f.Memory()
	if err != nil || len(mem.Problems) != 0 {
		t.Fatalf("Memory: %v %v", err, mem.Problems)
	}
	if n := len(mem.Ranges()); n != 3 {
		t.Errorf("%d ranges, want 3", n)
	}
	buf := make([]byte, 4)
	if _, err := mem.ReadVirtual(buf, synStack+0x10); err != nil || !bytes.Equal(buf, []byte{0x10, 0x11, 0x12, 0x13}) {
		t.Errorf("stack read = %x, %v", buf, err)
	}
	if _, err := mem.ReadVirtual(buf, synHeapStart+0x1C); err != nil || buf[0] != 0xBC {
		t.Errorf("memory64 read = %x, %v", buf, err)
	}
	n, err := mem.ReadVirtual(buf, synHeapStart+0x1E)
	var me *MemoryError
	if n != 2 || !errors.As(err, &me) || me.Addr != synHeapStart+0x20 || !errors.Is(err, ErrNotPresent) {
		t.Errorf("read past the end: n=%d err=%v", n, err)
	}

	ex, err := f.Exception()
	if err != nil || ex.Code != uint32(StatusAccessViolation) || ex.Address != synCrashRIP || len(ex.Information) != 2 {
		t.Errorf("Exception = %+v, %v", ex, err)
	}
	si, err := f.SystemInfo()
	if err != nil || si.CSDVersion != "Service Pack 9" || si.OSVersion() != "10.0.19045" || si.ProcessorArchitecture != ArchAMD64 || si.CPUVendor() != "" || si.ProcessorFeatures()[0] != 0x1234 {
		t.Errorf("SystemInfo = %+v, %v", si, err)
	}
	mi, err := f.MiscInfo()
	if err != nil || mi.Version != 5 || mi.ProcessID != 4242 || mi.ProcessorMaxMhz != 3600 || mi.TimeZone.Bias != -60 ||
		mi.TimeZone.StandardName != "W. Europe Standard Time" || !strings.HasPrefix(mi.BuildString, "19041.1") ||
		mi.XState.EnabledFeatures != 7 || mi.ProcessCookie != 0xCAFE {
		t.Errorf("MiscInfo = %+v, %v", mi, err)
	}
	hd, err := f.HandleData()
	if err != nil || len(hd.Descriptors) != 2 || len(hd.Problems) != 0 {
		t.Fatalf("HandleData = %+v, %v", hd, err)
	}
	d0 := hd.Descriptors[0]
	if d0.TypeName != "Event" || d0.ObjectName != `\BaseNamedObjects\Foo` || len(d0.ObjectInfo) != 2 || d0.ObjectInfo[1].InfoType != 6 || hd.Descriptors[1].ObjectName != "" {
		t.Errorf("handle descriptors = %+v", hd.Descriptors)
	}
	um, err := f.UnloadedModules()
	if err != nil || len(um) != 1 || um[0].Name != "gone.dll" || !um[0].Contains(0x190000010) {
		t.Errorf("UnloadedModules = %+v, %v", um, err)
	}
	mis, err := f.MemoryInfos()
	if err != nil || len(mis) != 2 || !mis[1].Executable() || mis[0].Writable() || ProtectString(mis[1].Protect) != "PAGE_EXECUTE_READ" {
		t.Errorf("MemoryInfos = %+v, %v", mis, err)
	}
	ti, err := f.ThreadInfos()
	if err != nil || len(ti) != 1 || ti[0].StartAddress != synModBase+0x100 || ti[0].Affinity != 0xF {
		t.Errorf("ThreadInfos = %+v, %v", ti, err)
	}
	tn, err := f.ThreadNames()
	if err != nil || len(tn) != 1 || tn[0].Name != "main" {
		t.Errorf("ThreadNames = %+v, %v", tn, err)
	}
	if c, err := f.Comment(); err != nil || c != "wide comment" {
		t.Errorf("Comment = %q, %v", c, err)
	}
	tk, err := f.Tokens()
	if err != nil || len(tk.Entries) != 1 || tk.Entries[0].TokenID != 7 || len(tk.Entries[0].Data) != 8 {
		t.Errorf("Tokens = %+v, %v", tk, err)
	}
	ft, err := f.FunctionTable()
	if err != nil || len(ft.Descriptors) != 1 || ft.Descriptors[0].EntryCount != 2 || len(ft.Descriptors[0].Entries) != 24 {
		t.Errorf("FunctionTable = %+v, %v", ft, err)
	}
	sm, err := f.SystemMemoryInfo()
	if err != nil || sm.PageSize != 0x1000 || sm.NumberOfProcessors != 8 {
		t.Errorf("SystemMemoryInfo = %+v, %v", sm, err)
	}
	vm, err := f.ProcessVMCounters()
	if err != nil || vm.Revision != 2 || vm.WorkingSetSize != 0x200000 || vm.PrivateUsage != 0x300000 || vm.JobTotalCommitLimit != 0x999 {
		t.Errorf("ProcessVMCounters = %+v, %v", vm, err)
	}
	bi, err := f.BreakpadInfo()
	if err != nil || bi.RequestingThreadID != synThreadID {
		t.Errorf("BreakpadInfo = %+v, %v", bi, err)
	}
	ai, err := f.AssertionInfo()
	if err != nil || ai.Expression != "p != nullptr" || ai.Line != 42 || ai.File != "foo.cc" {
		t.Errorf("AssertionInfo = %+v, %v", ai, err)
	}
	ci, err := f.CrashpadInfo()
	if err != nil || ci.ClientID.String() != "8912604b-f89e-4523-8db7-5fb2164ee538" || len(ci.Problems) != 0 || len(ci.Modules) != 1 ||
		len(ci.Modules[0].ListAnnotations) != 1 || ci.Modules[0].ListAnnotations[0] != "hello from the module" {
		t.Fatalf("CrashpadInfo = %+v, %v", ci, err)
	}
	for k, want := range map[string]string{"prod": "App", "ver": "1.2.3", "note": "hi"} {
		if got, ok := ci.Annotation(k); !ok || got != want {
			t.Errorf("annotation %s = %q, %v", k, got, ok)
		}
	}

	var out strings.Builder
	if err := f.WriteListing(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"00001000 MiniDumpWithThreadInfo", "1 thread\n", "3 modules (3 with CodeView records)",
		"2 handle descriptors (v2, 40 bytes each)", "type BreakpadLinuxMaps (0x47670009)",
		"EXCEPTION_ACCESS_VIOLATION_WRITE at 0x10", "MISC_INFO version 5", "1 thread name",
		"4 annotations", `prod = "App"`, `[module 0] note = "hi"`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("listing lacks %q:\n%s", want, out.String())
		}
	}
}

// TestMiscInfoVersions checks that each MISC_INFO size selects its version.
func TestMiscInfoVersions(t *testing.T) {
	for _, tc := range []struct {
		size    int
		version int
	}{{MiscInfoSize1, 1}, {MiscInfoSize2, 2}, {MiscInfoSize3, 3}, {MiscInfoSize4, 4}, {MiscInfoSize5, 5}, {MiscInfoSize2 + 4, 2}} {
		m := newMDB()
		b := make([]byte, tc.size)
		binary.LittleEndian.PutUint32(b, uint32(tc.size))
		binary.LittleEndian.PutUint32(b[8:], 77)
		m.stream(MiscInfoStream, b)
		f := openSynthetic(t, m.bytes())
		mi, err := f.MiscInfo()
		if err != nil || mi.Version != tc.version || mi.ProcessID != 77 {
			t.Errorf("size %d: version %v, %v", tc.size, mi, err)
		}
	}
}

// TestHandleDescriptorV1 checks 32-byte descriptors.
func TestHandleDescriptorV1(t *testing.T) {
	m := newMDB()
	ty := m.str("File")
	var hd lew
	hd.u32(16).u32(32).u32(1).u32(0).u64(0x44).u32(ty).u32(0).u32(0).u32(0x12019F).u32(1).u32(1)
	m.stream(HandleDataStream, hd.b)
	h, err := openSynthetic(t, m.bytes()).HandleData()
	if err != nil || len(h.Descriptors) != 1 || h.Descriptors[0].TypeName != "File" || h.SizeOfDescriptor != 32 || h.Descriptors[0].ObjectInfo != nil {
		t.Errorf("HandleData = %+v, %v", h, err)
	}
}

func TestDumpFlagsString(t *testing.T) {
	for _, tc := range []struct {
		f    DumpFlags
		want string
	}{
		{0, "Normal"},
		{0x1105, "WithDataSegs|WithHandleData|WithProcessThreadData|WithThreadInfo"},
		{0x40000, "WithTokenInformation"},
		{0x1000000 | 0x100000000, "FilterWriteCombinedMemory|0x100000000"},
	} {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("%#x: %q, want %q", uint64(tc.f), got, tc.want)
		}
	}
}

func TestStreamTypeString(t *testing.T) {
	for _, tc := range []struct {
		t      StreamType
		name   string
		vendor string
	}{
		{ThreadListStream, "ThreadListStream", "microsoft"},
		{0x47670001, "BreakpadInfoStream", "breakpad"},
		{0x43500001, "CrashpadInfoStream", "crashpad"},
		{0x4D7A0004, "MozSoftErrors", "mozilla"},
		{0x12345678, "StreamType(0x12345678)", "unknown"},
	} {
		if tc.t.String() != tc.name || tc.t.Vendor() != tc.vendor {
			t.Errorf("%#x: %s %s", uint32(tc.t), tc.t, tc.t.Vendor())
		}
	}
}

// patch returns a copy of b with v written at off.
func patch32(b []byte, off int, v uint32) []byte {
	c := append([]byte(nil), b...)
	binary.LittleEndian.PutUint32(c[off:], v)
	return c
}

// dirEntry returns the file offset of the directory entry of type t.
func dirEntry(t *testing.T, b []byte, st StreamType) int {
	t.Helper()
	dir := int(binary.LittleEndian.Uint32(b[12:]))
	n := int(binary.LittleEndian.Uint32(b[8:]))
	for i := range n {
		if StreamType(binary.LittleEndian.Uint32(b[dir+12*i:])) == st {
			return dir + 12*i
		}
	}
	t.Fatalf("no %v", st)
	return 0
}

// TestMalformed breaks the synthetic dump in targeted ways: each must give
// a *FormatError wrapping the right sentinel, with an offset, not a panic.
func TestMalformed(t *testing.T) {
	good := buildSynthetic()
	streamRva := func(st StreamType) int { return int(binary.LittleEndian.Uint32(good[dirEntry(t, good, st)+8:])) }
	type access func(f *File) error
	tests := []struct {
		name string
		b    []byte
		open error  // error from NewFile, or nil
		acc  access // accessor that must fail
		want error
	}{
		{"empty", nil, ErrNotMinidump, nil, nil},
		{"short header", good[:20], ErrTruncated, nil, nil},
		{"bad signature", patch32(good, 0, 0x504D444E), ErrNotMinidump, nil, nil},
		{"bad version", patch32(good, 4, 0xA794), ErrVersion, nil, nil},
		{"huge stream count", patch32(good, 8, 0x7FFFFFFF), ErrTooLarge, nil, nil},
		{"directory past end", patch32(good, 12, uint32(len(good)-4)), ErrTruncated, nil, nil},
		{"thread count too big", patch32(good, streamRva(ThreadListStream), 1000), nil,
			func(f *File) error { _, err := f.Threads(); return err }, ErrTruncated},
		{"module count huge", patch32(good, streamRva(ModuleListStream), 0xFFFFFFFF), nil,
			func(f *File) error { _, err := f.Modules(); return err }, ErrTooLarge},
		{"stream past end", patch32(good, dirEntry(t, good, SystemInfoStream)+8, uint32(len(good)-8)), nil,
			func(f *File) error { _, err := f.SystemInfo(); return err }, ErrTruncated},
		{"stream too short", patch32(good, dirEntry(t, good, ExceptionStream)+4, 0x20), nil,
			func(f *File) error { _, err := f.Exception(); return err }, ErrTruncated},
		{"handle entry size tiny", patch32(good, streamRva(HandleDataStream)+4, 8), nil,
			func(f *File) error { _, err := f.HandleData(); return err }, nil},
		{"memory info count huge", patch32(good, streamRva(MemoryInfoListStream)+8, 0x10000), nil,
			func(f *File) error { _, err := f.MemoryInfos(); return err }, ErrTruncated},
		{"memory64 base past end", patch32(good, streamRva(Memory64ListStream)+8, uint32(len(good))), nil,
			func(f *File) error { _, err := f.Memory64List(); return err }, ErrTruncated},
		{"misc size tiny", patch32(good, streamRva(MiscInfoStream), 8), nil,
			func(f *File) error { _, err := f.MiscInfo(); return err }, ErrTruncated},
		{"no stream", func() []byte { m := newMDB(); return m.bytes() }(), nil,
			func(f *File) error { _, err := f.Modules(); return err }, ErrNoStream},
		{"token size zero", patch32(good, streamRva(TokenStream)+16, 0), nil,
			func(f *File) error { _, err := f.Tokens(); return err }, ErrTruncated},
		{"function table count", patch32(good, streamRva(FunctionTableStream)+16, 5), nil,
			func(f *File) error { _, err := f.FunctionTable(); return err }, ErrTruncated},
		{"context too large", patch32(good, streamRva(ExceptionStream)+0xA0, 0x7FFFFFFF), nil,
			func(f *File) error {
				e, err := f.Exception()
				if err != nil {
					return nil
				}
				_, err = f.ContextBytes(e.Context)
				return err
			}, ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := NewFile(bytes.NewReader(tc.b), int64(len(tc.b)))
			if tc.open != nil {
				var fe *FormatError
				if !errors.Is(err, tc.open) || !errors.As(err, &fe) {
					t.Fatalf("NewFile error = %v, want a *FormatError wrapping %v", err, tc.open)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewFile: %v", err)
			}
			err = tc.acc(f)
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error = %v (%T), want a *FormatError", err, err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error = %v, want %v", err, tc.want)
			}
			if tc.want != ErrNoStream && fe.Offset < 0 {
				t.Errorf("error has no offset: %v", err)
			}
			// The listing still works and names the broken stream.
			var out strings.Builder
			if err := f.WriteListing(&out); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestHandleInfoChainLoop checks that a looping object-info chain ends.
func TestHandleInfoChainLoop(t *testing.T) {
	m := newMDB()
	// The record's NextInfoRva points to itself: it will be at the next blob.
	rva := uint32(len(m.b))
	m.blob(new(lew).u32(rva).u32(1).u32(0).b)
	var hd lew
	hd.u32(16).u32(40).u32(1).u32(0).u64(0x4).u32(0).u32(0).u32(0).u32(0).u32(1).u32(1).u32(rva).u32(0)
	m.stream(HandleDataStream, hd.b)
	h, err := openSynthetic(t, m.bytes()).HandleData()
	if err != nil || len(h.Descriptors[0].ObjectInfo) != 1 || len(h.Problems) != 1 {
		t.Errorf("HandleData = %+v, %v", h, err)
	}
}

// TestOverlappingRanges checks that overlapping memory ranges resolve in
// favour of the one that starts first and that reads span adjacent ranges.
func TestOverlappingRanges(t *testing.T) {
	m := newMDB()
	a := m.blob(bytes.Repeat([]byte{0xAA}, 0x10))
	b := m.blob(bytes.Repeat([]byte{0xBB}, 0x10))
	c := m.blob(bytes.Repeat([]byte{0xCC}, 0x10))
	var ml lew
	ml.u32(3).u64(0x1008).u32(0x10).u32(b).u64(0x1000).u32(0x10).u32(a).u64(0x1018).u32(0x10).u32(c)
	m.stream(MemoryListStream, ml.b)
	mem, err := openSynthetic(t, m.bytes()).Memory()
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 0x28)
	if n, err := mem.ReadVirtual(got, 0x1000); n != 0x28 || err != nil {
		t.Fatalf("read %d, %v", n, err)
	}
	want := append(append(bytes.Repeat([]byte{0xAA}, 0x10), bytes.Repeat([]byte{0xBB}, 0x8)...), bytes.Repeat([]byte{0xCC}, 0x10)...)
	if !bytes.Equal(got, want) {
		t.Errorf("got %x\nwant %x", got, want)
	}
}

// TestConcurrentAccess reads every stream from several goroutines at once
// (run with -race): the lazy parsers and the string cache are shared.
func TestConcurrentAccess(t *testing.T) {
	f := openSynthetic(t, buildSynthetic())
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			exercise(t, f)
		}()
	}
	for range 4 {
		<-done
	}
	mods, err := f.Modules()
	if err != nil || len(mods) != 3 || mods[0].BaseName() != "App.exe" {
		t.Errorf("after concurrent use: %d modules, %v", len(mods), err)
	}
}

// TestPartialModuleAndSystemInfo: a module name and a CSD string that point
// outside the file leave the rest readable and are reported.
func TestPartialModuleAndSystemInfo(t *testing.T) {
	m := newMDB()
	var ml lew
	ml.u32(1).u64(0x400000).u32(0x1000).u32(0).u32(0).u32(0xFFFFFF00).zero(52).u32(0).u32(0).u32(0).u32(0).u64(0).u64(0)
	m.stream(ModuleListStream, ml.b)
	var si lew
	si.u16(uint16(ArchX86)).u16(6).u16(0).u8(1).u8(1).u32(5).u32(1).u32(2600).u32(2).u32(0xFFFFFF00).u16(0).u16(0).zero(24)
	m.stream(SystemInfoStream, si.b)
	f := openSynthetic(t, m.bytes())
	mods, err := f.Modules()
	if err != nil || len(mods) != 1 || mods[0].Base != 0x400000 || mods[0].Name != "" || len(mods[0].Problems) != 1 {
		t.Fatalf("modules %+v, %v", mods, err)
	}
	s, err := f.SystemInfo()
	if err != nil || s.BuildNumber != 2600 || len(s.Problems) != 1 {
		t.Fatalf("system info %+v, %v", s, err)
	}
	var out strings.Builder
	if err := f.WriteListing(&out); err != nil {
		t.Fatal(err)
	}
	if strings.Count(out.String(), "problem: ") != 2 {
		t.Errorf("listing does not report both problems:\n%s", out.String())
	}
}
