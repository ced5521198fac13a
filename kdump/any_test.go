package kdump

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/kdtriage/kdtriage/kdump/minidump"
	"github.com/kdtriage/kdtriage/kdump/minidump/minidumptest"
)

func TestOpenAnyUserCorpus(t *testing.T) {
	dir := corpusDir(t)
	files, _ := filepath.Glob(filepath.Join(dir, "user", "*.dmp"))
	if len(files) == 0 {
		t.Skip("no user dumps in the corpus")
	}
	for _, p := range files {
		t.Run(filepath.Base(p), func(t *testing.T) {
			d, err := OpenAny(p)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			u, ok := d.(*UserDump)
			if !ok || d.Format() != FormatMDMP {
				t.Fatalf("OpenAny gave %T %v", d, d.Format())
			}
			si, err := u.Minidump().SystemInfo()
			if err != nil {
				t.Fatal(err)
			}
			if want := MachineFromArch(si.ProcessorArchitecture); d.Machine() != want {
				t.Errorf("Machine = %v, want %v", d.Machine(), want)
			}
			mods, err := d.Modules()
			if err != nil || len(mods) == 0 {
				t.Fatalf("Modules: %d, %v", len(mods), err)
			}
			raw, _ := u.Minidump().Modules()
			if mods[0].Base != raw[0].Base || mods[0].Path != raw[0].Name || mods[0].Name != raw[0].BaseName() {
				t.Errorf("module 0 = %+v, minidump has %+v", mods[0], raw[0])
			}
			if d.Machine() == MachineUnknown {
				if _, err := d.Context(); !errors.Is(err, ErrUnsupported) {
					t.Errorf("Context on %v: %v, want ErrUnsupported", si.ProcessorArchitecture, err)
				}
				return
			}
			c, err := d.Context()
			if err != nil {
				t.Fatalf("Context: %v", err)
			}
			if c.Machine != d.Machine() || c.IP() == 0 {
				t.Errorf("context: machine %v ip %#x", c.Machine, c.IP())
			}
			// On Windows the exception context's IP is the exception address
			// (elsewhere the exception address is the faulting data address; a
			// software-raised exception such as the CRT's invalid parameter may
			// have none).
			if e, err := u.Minidump().Exception(); err == nil && si.PlatformID == minidump.PlatformWinNT && e.Address != 0 && c.IP() != e.Address {
				t.Errorf("context ip %#x, exception address %#x", c.IP(), e.Address)
			}
			// The crashing thread's stack is in memory at its SP (when the
			// writer stored a stack covering SP).
			mem := d.Memory()
			if r, ok := mem.(Ranger); !ok || len(r.Ranges()) == 0 {
				t.Errorf("memory has no ranges")
			}
			if _, err := ReadU64(mem, 0); !IsNotPresent(err) {
				t.Errorf("read at 0: %v, want not present", err)
			}
		})
	}
}

func TestUserDumpMinidump2(t *testing.T) {
	// groundtruth/minidump2.stackwalk.out: the exception context has
	// eip 0x0040429e, esp 0x0012fe84, ebp 0x0012fe88.
	d, err := OpenAny(filepath.Join(corpusDir(t), "user", "breakpad-minidump2.dmp"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c, err := d.Context()
	if err != nil {
		t.Fatal(err)
	}
	if d.Machine() != MachineI386 || c.IP() != 0x40429e || c.SP() != 0x12fe84 || c.FP() != 0x12fe88 {
		t.Errorf("machine %v ip %#x sp %#x fp %#x", d.Machine(), c.IP(), c.SP(), c.FP())
	}
	// The return address above the frame pointer is on the stored stack.
	if v, err := ReadU32(d.Memory(), c.FP()); err != nil || v == 0 {
		t.Errorf("[ebp] = %#x, %v", v, err)
	}
	m := ModuleAt(mustMods(t, d), c.IP())
	if m == nil || m.Name != "test_app.exe" {
		t.Errorf("IP in %v", m)
	}
	u := d.(*UserDump)
	if n, err := u.ProcessName(); err != nil || n != "test_app.exe" {
		t.Errorf("ProcessName = %q, %v", n, err)
	}
	tc, err := u.ThreadContext(0x11c0)
	if err != nil || tc.IP() == c.IP() {
		t.Errorf("thread 0x11c0 context: %v %v", tc, err)
	}
}

func mustMods(t *testing.T, d Dump) []Module {
	t.Helper()
	m, err := d.Modules()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestOpenAnyKernel(t *testing.T) {
	d, err := OpenAny(filepath.Join(corpusDir(t), "kernel", "win10-triage_x64.dmp"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.(*File); !ok || d.Format() != FormatKernel64 {
		t.Errorf("OpenAny gave %T %v", d, d.Format())
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenAnyLegacy(t *testing.T) {
	d, err := OpenAny(filepath.Join(corpusDir(t), "legacy", "kdlibcpp-stacktest_x64_userdu64.dmp"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ld, ok := d.(*LegacyUserDump)
	if !ok {
		t.Fatalf("OpenAny gave %T", d)
	}
	le := ld.Info()
	if le.Format != FormatUserDump64 || le.Machine != MachineAMD64 || le.ThreadCount != 3 || le.ModuleCount != 7 ||
		len(le.Modules) != 7 || le.Modules[0] != "targetapp.exe" || baseName(le.Modules[6]) != "ntdll.dll" ||
		!le.HasException || le.ExceptionCode != 0x80000003 || le.ExceptionAddress != 0x7ff7e1451e65 || le.Problem != "" {
		t.Errorf("legacy header = %+v", le)
	}
}

// legacy32 builds a minimal 32-bit USERDUMP file: one thread, one module
// and one 0x80-byte memory region at 0x400000 holding "MZ".
func legacy32() []byte {
	b := make([]byte, 0x200)
	copy(b, "USERDUMP")
	le := binary.LittleEndian
	le.PutUint32(b[8:], 5)
	le.PutUint32(b[12:], 1)
	le.PutUint32(b[16:], uint32(MachineI386))
	le.PutUint32(b[20:], 1)      // threads
	le.PutUint32(b[24:], 1)      // modules
	le.PutUint32(b[0x24:], 0x80) // ModuleOffset
	le.PutUint32(b[0x30:], 0x40) // DebugEventOffset
	le.PutUint32(b[0x40:], 1)    // EXCEPTION_DEBUG_EVENT
	le.PutUint32(b[0x44:], 0x10)
	le.PutUint32(b[0x48:], 0x20)
	le.PutUint32(b[0x4C:], 0xC0000005)
	le.PutUint32(b[0x58:], 0x401000)
	le.PutUint32(b[0x80:], 0x400000)
	le.PutUint32(b[0x84:], 0x1000)
	le.PutUint32(b[0x88:], 8)
	copy(b[0x8C:], "app.exe\x00")
	le.PutUint32(b[28:], 1)       // regions
	le.PutUint32(b[0x28:], 0x100) // DataOffset
	le.PutUint32(b[0x2C:], 0xA0)  // MemoryRegionOffset
	le.PutUint32(b[0xA0:], 0x400000)
	le.PutUint32(b[0xAC:], 0x80)
	le.PutUint32(b[0xB0:], 0x1000) // MEM_COMMIT
	copy(b[0x100:], "MZ")
	le.PutUint32(b[0x20:], 0x200) // ThreadOffset: CONTEXT appended below
	le.PutUint32(b[0x34:], 0x1C0) // ThreadStateOffset
	le.PutUint32(b[0x1C0:], 0x20) // thread id
	ctx := make([]byte, ContextSizeX86)
	le.PutUint32(ctx[0xB8:], 0x401000) // Eip
	le.PutUint32(ctx[0xC4:], 0x12FF00) // Esp
	return append(b, ctx...)
}

// TestNewAnyLegacy32 checks the 32-bit USERDUMP header.
func TestNewAnyLegacy32(t *testing.T) {
	b := legacy32()
	d, err := NewAny(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	e := d.(*LegacyUserDump).Info()
	if e.Format != FormatUserDump32 || e.Machine != MachineI386 || e.ExceptionCode != 0xC0000005 ||
		e.ExceptionAddress != 0x401000 || e.ThreadID != 0x20 || len(e.Modules) != 1 || e.Modules[0] != "app.exe" {
		t.Errorf("NewAny: %+v, %v", e, err)
	}
	// Truncated: still named, with the problem said.
	_, err = NewAny(bytes.NewReader(b[:0x20]), 0x20)
	if !errors.As(err, &e) || e.Problem == "" || !errors.Is(err, ErrLegacyUserDump) {
		t.Errorf("truncated: %v", err)
	}
}

func TestNewAnyErrors(t *testing.T) {
	mdmpBad := []byte("MDMP\x93\xa7\x00\x00\xff\xff\xff\x00\x20\x00\x00\x00" + string(make([]byte, 16)))
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrEmpty},
		{"zeroed", make([]byte, 4096), ErrZeroed},
		{"mdmp huge directory", mdmpBad, minidump.ErrTooLarge},
		{"mdmp bad version", []byte("MDMP\x00\x00\x00\x00" + string(make([]byte, 24))), minidump.ErrVersion},
		{"text", []byte("hello, world"), ErrNotADump},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewAny(bytes.NewReader(tc.b), int64(len(tc.b)))
			var fe *FormatError
			if !errors.Is(err, tc.want) || !errors.As(err, &fe) {
				t.Errorf("error = %v, want a *FormatError wrapping %v", err, tc.want)
			}
		})
	}
}

func TestUserDumpNoMemory(t *testing.T) {
	// A minidump with a system info stream and nothing else: Memory reads
	// say not present; Context says no threads.
	var b []byte
	b = append(b, "MDMP"...)
	b = binary.LittleEndian.AppendUint32(b, 0xA793)
	b = binary.LittleEndian.AppendUint32(b, 1)
	b = binary.LittleEndian.AppendUint32(b, 32)
	b = append(b, make([]byte, 16)...)
	b = binary.LittleEndian.AppendUint32(b, uint32(minidump.SystemInfoStream))
	b = binary.LittleEndian.AppendUint32(b, 56)
	b = binary.LittleEndian.AppendUint32(b, 44)
	si := make([]byte, 56)
	binary.LittleEndian.PutUint16(si, uint16(minidump.ArchAMD64))
	b = append(b, si...)
	d, err := NewAny(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if d.Machine() != MachineAMD64 {
		t.Errorf("machine %v", d.Machine())
	}
	if _, err := ReadU32(d.Memory(), 0x1000); !IsNotPresent(err) {
		t.Errorf("read: %v", err)
	}
	if _, err := d.Context(); err == nil {
		t.Errorf("Context with no threads succeeded")
	}
	if _, err := d.Modules(); !errors.Is(err, minidump.ErrNoStream) {
		t.Errorf("Modules: %v", err)
	}
}

func TestLegacyUserDumpReader(t *testing.T) {
	// The corpus USERDU64 file: x64, three threads, the debug event's thread
	// 0x2098 stopped at a breakpoint at 0x7ff7e1451e65.
	d, err := OpenLegacyUserDump(filepath.Join(corpusDir(t), "legacy", "kdlibcpp-stacktest_x64_userdu64.dmp"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Format() != FormatUserDump64 || d.Machine() != MachineAMD64 || len(d.Threads()) != 3 || len(d.Regions()) != 56 {
		t.Errorf("format %v machine %v threads %d regions %d", d.Format(), d.Machine(), len(d.Threads()), len(d.Regions()))
	}
	c, err := d.Context()
	if err != nil || c.IP() != 0x7ff7e1451e65 {
		t.Fatalf("context ip %v, %v", c, err)
	}
	if _, err := ReadU64(d.Memory(), c.SP()); err != nil {
		t.Errorf("stack at SP %#x: %v", c.SP(), err)
	}
	mods, _ := d.Modules()
	if len(mods) != 7 || mods[0].Name != "targetapp.exe" || !mods[0].Contains(c.IP()) {
		t.Fatalf("modules: %+v", mods)
	}
	for _, m := range mods {
		// Every image header is in memory, so each module has its PE time stamp.
		if v, err := ReadU16(d.Memory(), m.Base); err != nil || v != 0x5A4D || m.TimeDateStamp == 0 {
			t.Errorf("%s: MZ %#x %v, time stamp %#x", m.Name, v, err, m.TimeDateStamp)
		}
	}
	if _, err := ReadU32(d.Memory(), 0x10); !IsNotPresent(err) {
		t.Errorf("read at 0x10: %v", err)
	}
	var _ Dump = d
}

func TestLegacyUserDump32(t *testing.T) {
	b := legacy32()
	d, err := NewLegacyUserDump(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Context()
	if err != nil || c.IP() != 0x401000 || c.SP() != 0x12FF00 || d.Machine() != MachineI386 {
		t.Errorf("context %+v, %v", c, err)
	}
	if v, err := ReadU16(d.Memory(), 0x400000); err != nil || v != 0x5A4D {
		t.Errorf("memory: %#x %v", v, err)
	}
	// A region whose data runs past the end of the file is an error.
	short := b[:0x170]
	if _, err := NewLegacyUserDump(bytes.NewReader(short), int64(len(short))); err == nil {
		t.Errorf("truncated file opened")
	}
	if _, err := NewLegacyUserDump(bytes.NewReader([]byte("MDMP\x93\xa7")), 6); !errors.Is(err, ErrNotADump) {
		t.Errorf("MDMP as legacy: %v", err)
	}
}

// FuzzNewAny feeds NewAny and NewLegacyUserDump: no panics, typed errors.
func FuzzNewAny(f *testing.F) {
	f.Add(legacy32())
	f.Add([]byte("MDMP\x93\xa7\x00\x00"))
	dir := os.Getenv("KDTRIAGE_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "corpus")
	}
	for _, p := range []string{"user/breakpad-minidump2.dmp", "user/rizin-calc.dmp", "malformed/radare2-trunc_memory64.dmp"} {
		if b, err := os.ReadFile(filepath.Join(dir, p)); err == nil {
			f.Add(b)
		}
	}
	if fh, err := os.Open(filepath.Join(dir, "legacy", "kdlibcpp-stacktest_x64_userdu64.dmp")); err == nil {
		head := make([]byte, 0x2000) // the tables, without the 8 MB of memory
		n, _ := io.ReadFull(fh, head)
		fh.Close()
		f.Add(head[:n])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		if d, err := NewAny(r, int64(len(b))); err == nil {
			_, _ = d.Modules()
			_, _ = d.Context()
			_, _ = ReadU64(d.Memory(), 0x400000)
			_ = d.Close()
		}
		if d, err := NewLegacyUserDump(r, int64(len(b))); err == nil {
			_, _ = d.Modules()
			if c, err := d.Context(); err == nil {
				_, _ = ReadU64(d.Memory(), c.SP())
			}
		} else {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
		}
	})
}

func TestMinidumpErrorText(t *testing.T) {
	b := []byte("MDMP\x93\xa7\x00\x00\xff\xff\xff\x00\x20\x00\x00\x00" + string(make([]byte, 16)))
	_, err := NewAny(bytes.NewReader(b), int64(len(b)))
	var fe *FormatError
	var me *minidump.FormatError
	if !errors.As(err, &fe) || !errors.As(err, &me) || !errors.Is(err, minidump.ErrTooLarge) || me.Offset != 8 {
		t.Fatalf("error %v: kdump %v minidump %v", err, fe, me)
	}
	if want := "minidump header: 16777215 streams at offset 0x8: value exceeds a limit"; err.Error() != want {
		t.Errorf("error text %q, want %q", err.Error(), want)
	}
}

func TestUserDumpSynthetic(t *testing.T) {
	stack := make([]byte, 0x100)
	binary.LittleEndian.PutUint32(stack[0x10:], 0x401234) // a return address
	b := &minidumptest.Builder{
		Arch: minidump.ArchX86, Platform: minidump.PlatformWinNT, Major: 10, Build: 19045,
		Threads: []minidumptest.Thread{
			{ID: 7, StackStart: 0x12F000, Stack: stack, Context: minidumptest.X86Context(0x77001000, 0x12F000, 0x12F080)},
			{ID: 9, Context: minidumptest.X86Context(0x401000, 0x12F010, 0x12F020)},
		},
		Modules: []minidumptest.Module{{Path: `C:\x\App.exe`, Base: 0x400000, Size: 0x10000, TimeDateStamp: 0x5F5F5F5F}},
		Exception: &minidumptest.Exception{ThreadID: 9, Code: 0xC0000005, Address: 0x401000, Information: []uint64{1, 0},
			Context: minidumptest.X86Context(0x401000, 0x12F010, 0x12F020)},
	}
	data := b.Bytes()
	d, err := NewAny(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Context()
	if err != nil || d.Machine() != MachineI386 || c.IP() != 0x401000 || c.SP() != 0x12F010 {
		t.Fatalf("context %+v %v", c, err)
	}
	if ret, err := ReadU32(d.Memory(), c.SP()); err != nil || ret != 0x401234 {
		t.Errorf("[esp] = %#x, %v", ret, err)
	}
	mods, _ := d.Modules()
	if m := ModuleAt(mods, c.IP()); m == nil || m.Name != "App.exe" || m.TimeDateStamp != 0x5F5F5F5F {
		t.Errorf("module at ip: %+v", m)
	}
	u := d.(*UserDump)
	if tc, err := u.ThreadContext(7); err != nil || tc.IP() != 0x77001000 {
		t.Errorf("thread 7: %+v %v", tc, err)
	}
	// Without the exception stream, Context is the first thread's.
	b.Exception = nil
	data = b.Bytes()
	d, err = NewAny(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := d.Context(); err != nil || c.IP() != 0x77001000 {
		t.Errorf("no exception: context %+v %v", c, err)
	}
}

// TestUserDumpContextLayouts decodes thread contexts of every architecture
// the adapter supports, including Breakpad's pre-Windows ARM64 layout.
func TestUserDumpContextLayouts(t *testing.T) {
	le := binary.LittleEndian
	arm64 := make([]byte, ContextSizeARM64)
	le.PutUint64(arm64[0x100:], 0x7ff0) // Sp
	le.PutUint64(arm64[0x108:], 0x1000) // Pc
	le.PutUint64(arm64[8+29*8:], 0x7ff8)
	arm64old := make([]byte, 0x114+0x210)
	le.PutUint64(arm64old[8+31*8:], 0x7ff0) // iregs[31] = sp
	le.PutUint64(arm64old[0x108:], 0x1000)  // pc
	le.PutUint64(arm64old[8+29*8:], 0x7ff8)
	arm := make([]byte, ContextSizeARM)
	le.PutUint32(arm[4+13*4:], 0x7ff0) // Sp
	le.PutUint32(arm[4+15*4:], 0x1000) // Pc
	le.PutUint32(arm[4+11*4:], 0x7ff8)
	tests := []struct {
		arch    minidump.ProcessorArch
		ctx     []byte
		machine Machine
	}{
		{minidump.ArchAMD64, minidumptest.X64Context(0x1000, 0x7ff0, 0x7ff8), MachineAMD64},
		{minidump.ArchX86, minidumptest.X86Context(0x1000, 0x7ff0, 0x7ff8), MachineI386},
		{minidump.ArchARM64, arm64, MachineARM64},
		{minidump.ArchARM64Old, arm64old, MachineARM64},
		{minidump.ArchARM, arm, MachineARMNT},
	}
	for _, tc := range tests {
		b := &minidumptest.Builder{Arch: tc.arch, Platform: minidump.PlatformLinux, Major: 5,
			Threads: []minidumptest.Thread{{ID: 1, Context: tc.ctx}}}
		data := b.Bytes()
		d, err := NewAny(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		c, err := d.Context()
		if err != nil || d.Machine() != tc.machine || c.Machine != tc.machine || c.IP() != 0x1000 || c.SP() != 0x7ff0 || c.FP() != 0x7ff8 {
			t.Errorf("%v: machine %v context %+v, %v", tc.arch, d.Machine(), c, err)
		}
	}
	// An architecture with no CONTEXT layout.
	b := &minidumptest.Builder{Arch: minidump.ArchPPC64, Platform: minidump.PlatformLinux, Major: 5,
		Threads: []minidumptest.Thread{{ID: 1, Context: make([]byte, 0x100)}}}
	data := b.Bytes()
	d, err := NewAny(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Context(); !errors.Is(err, ErrUnsupported) {
		t.Errorf("ppc64 context: %v", err)
	}
}
