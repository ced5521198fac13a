package minidump_test

import (
	"bytes"
	"fmt"

	"github.com/kdtriage/kdtriage/kdump/minidump"
	"github.com/kdtriage/kdtriage/kdump/minidump/minidumptest"
)

func ExampleNewFile() {
	// A synthetic dump: App.exe wrote to address 0x10.
	b := &minidumptest.Builder{
		Modules:   []minidumptest.Module{{Path: `C:\Program Files\App\App.exe`, Base: 0x140000000, Size: 0x10000}},
		Threads:   []minidumptest.Thread{{ID: 0x1a2c, Context: minidumptest.X64Context(0x140001234, 0x7ff000, 0)}},
		Exception: &minidumptest.Exception{ThreadID: 0x1a2c, Code: 0xC0000005, Address: 0x140001234, Information: []uint64{1, 0x10}},
	}
	data := b.Bytes()

	f, err := minidump.NewFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		fmt.Println(err)
		return
	}
	ex, _ := f.Exception()
	m := f.ModuleAt(ex.Address)
	addr, _ := f.CrashAddress()
	fmt.Printf("%s at %s+%#x, target %#x\n", f.CrashReason(), m.BaseName(), ex.Address-m.Base, addr)
	for _, d := range f.Directory() {
		fmt.Printf("%v: %s\n", d.Type, f.StreamSummary(d))
	}
	// Output:
	// EXCEPTION_ACCESS_VIOLATION_WRITE at App.exe+0x1234, target 0x10
	// SystemInfoStream: x64, windows 10.0.19045, 1 processor
	// ThreadListStream: 1 thread
	// ModuleListStream: 1 module (0 with CodeView records)
	// ExceptionStream: exception c0000005 (EXCEPTION_ACCESS_VIOLATION) at 0x140001234 in thread 0x1a2c
}
