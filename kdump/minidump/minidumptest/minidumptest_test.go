package minidumptest

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/kdtriage/kdtriage/kdump/minidump"
)

func TestBuilderRoundTrip(t *testing.T) {
	stack := bytes.Repeat([]byte{0x11}, 0x40)
	b := &Builder{
		Flags:      minidump.MiniDumpWithDataSegs,
		CSDVersion: "Service Pack 1",
		ProcessID:  77,
		Threads:    []Thread{{ID: 0x10, StackStart: 0x7000, Stack: stack, Context: X64Context(0x140001010, 0x7010, 0x7020)}},
		Modules: []Module{{Path: `C:\app\App.exe`, Base: 0x140000000, Size: 0x3000, TimeDateStamp: 0x5F000000, PDBName: "App.pdb",
			GUID: minidump.GUID{Data1: 1, Data2: 2, Data3: 3, Data4: [8]byte{4, 5, 6, 7, 8, 9, 10, 11}}, Age: 2}},
		Memory:    []Memory{{Start: 0x140001000, Data: []byte{0xC6, 0x00, 0x01}}},
		Exception: &Exception{ThreadID: 0x10, Code: 0xC0000005, Address: 0x140001010, Information: []uint64{1, 0}, Context: X64Context(0x140001010, 0x7010, 0x7020)},
		Streams:   []Stream{{Type: minidump.BreakpadInfoStream, Data: binary.LittleEndian.AppendUint32(make([]byte, 8), 0)}},
	}
	data := b.Bytes()
	f, err := minidump.NewFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Problems()) != 0 || f.Header().Flags != minidump.MiniDumpWithDataSegs {
		t.Errorf("problems %v flags %v", f.Problems(), f.Header().Flags)
	}
	si, err := f.SystemInfo()
	if err != nil || si.ProcessorArchitecture != minidump.ArchAMD64 || si.OSVersion() != "10.0.19045" || si.CSDVersion != "Service Pack 1" {
		t.Errorf("system info %+v %v", si, err)
	}
	mods, err := f.Modules()
	if err != nil || len(mods) != 1 || mods[0].BaseName() != "App.exe" || mods[0].DebugID() != "00000001000200030405060708090A0B2" {
		t.Errorf("modules %+v %v", mods, err)
	}
	ths, err := f.Threads()
	if err != nil || len(ths) != 1 || ths[0].ID != 0x10 {
		t.Errorf("threads %+v %v", ths, err)
	}
	mem, err := f.Memory()
	if err != nil || len(mem.Ranges()) != 2 {
		t.Fatalf("memory %v %v", mem, err)
	}
	var v [2]byte
	if _, err := mem.ReadVirtual(v[:], 0x7010); err != nil || v != [2]byte{0x11, 0x11} {
		t.Errorf("stack read %x %v", v, err)
	}
	if f.CrashReason() != "EXCEPTION_ACCESS_VIOLATION_WRITE" || f.ProcessName() != "App.exe" {
		t.Errorf("crash %s process %s", f.CrashReason(), f.ProcessName())
	}
	if mi, err := f.MiscInfo(); err != nil || mi.ProcessID != 77 {
		t.Errorf("misc %+v %v", mi, err)
	}
	if _, err := f.BreakpadInfo(); err != nil {
		t.Errorf("extra stream: %v", err)
	}
}

func TestBuilderX86(t *testing.T) {
	b := &Builder{Arch: minidump.ArchX86, Platform: minidump.PlatformWinNT, Major: 5, Minor: 1, Build: 2600,
		Threads: []Thread{{ID: 1, Context: X86Context(0x401000, 0x12ff00, 0x12ff10)}}}
	data := b.Bytes()
	f, err := minidump.NewFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	ths, _ := f.Threads()
	ctx, err := f.ContextBytes(ths[0].Context)
	if err != nil || binary.LittleEndian.Uint32(ctx[0xB8:]) != 0x401000 {
		t.Errorf("context %v", err)
	}
	if _, err := f.Exception(); err == nil {
		t.Errorf("exception stream without an exception")
	}
}
