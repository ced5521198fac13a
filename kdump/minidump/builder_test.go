package minidump

import (
	"encoding/binary"
	"unicode/utf16"
)

// lew builds little-endian byte strings.
type lew struct{ b []byte }

func (w *lew) u8(v uint8) *lew   { w.b = append(w.b, v); return w }
func (w *lew) u16(v uint16) *lew { w.b = binary.LittleEndian.AppendUint16(w.b, v); return w }
func (w *lew) u32(v uint32) *lew { w.b = binary.LittleEndian.AppendUint32(w.b, v); return w }
func (w *lew) u64(v uint64) *lew { w.b = binary.LittleEndian.AppendUint64(w.b, v); return w }
func (w *lew) raw(p []byte) *lew { w.b = append(w.b, p...); return w }
func (w *lew) zero(n int) *lew   { w.b = append(w.b, make([]byte, n)...); return w }

// utf16z returns s as UTF-16LE, padded with NULs to n bytes (n 0: no padding).
func utf16z(s string, n int) []byte {
	var w lew
	for _, c := range utf16.Encode([]rune(s)) {
		w.u16(c)
	}
	if n > 0 {
		w.b = append(w.b, make([]byte, n-len(w.b))...)
	}
	return w.b
}

// mdb builds synthetic minidumps: header at 0, blobs from 32 on, the
// directory last.
type mdb struct {
	b     []byte
	dir   [][3]uint32
	flags uint64
}

func newMDB() *mdb { return &mdb{b: make([]byte, HeaderSize)} }

// blob appends data at a 4-byte aligned offset and returns its RVA.
func (m *mdb) blob(data []byte) uint32 {
	for len(m.b)%4 != 0 {
		m.b = append(m.b, 0)
	}
	rva := uint32(len(m.b))
	m.b = append(m.b, data...)
	return rva
}

// str appends a MINIDUMP_STRING and returns its RVA.
func (m *mdb) str(s string) uint32 {
	u := utf16z(s, 0)
	var w lew
	w.u32(uint32(len(u))).raw(u).u16(0)
	return m.blob(w.b)
}

// stream appends a stream and its directory entry.
func (m *mdb) stream(t StreamType, data []byte) uint32 {
	rva := m.blob(data)
	m.dir = append(m.dir, [3]uint32{uint32(t), uint32(len(data)), rva})
	return rva
}

func (m *mdb) bytes() []byte {
	out := append([]byte(nil), m.b...)
	for len(out)%4 != 0 {
		out = append(out, 0)
	}
	dirRva := uint32(len(out))
	for _, d := range m.dir {
		out = binary.LittleEndian.AppendUint32(out, d[0])
		out = binary.LittleEndian.AppendUint32(out, d[1])
		out = binary.LittleEndian.AppendUint32(out, d[2])
	}
	var h lew
	h.u32(Signature).u32(0x1234<<16 | Version).u32(uint32(len(m.dir))).u32(dirRva).u32(0).u32(0x5F000000).u64(m.flags)
	copy(out, h.b)
	return out
}

// x64Context returns an AMD64 CONTEXT with RIP and RSP set.
func x64Context(rip, rsp uint64) []byte {
	b := make([]byte, 0x4D0)
	binary.LittleEndian.PutUint32(b[0x30:], 0x10001F)
	binary.LittleEndian.PutUint64(b[0x98:], rsp)
	binary.LittleEndian.PutUint64(b[0xF8:], rip)
	return b
}

// synthetic facts used by the tests.
const (
	synThreadID  = 0x1234
	synStack     = 0x7ff000
	synModBase   = 0x140000000
	synModSize   = 0x5000
	synCrashRIP  = 0x140001234
	synAVTarget  = 0x10
	synHeapStart = 0x20000000
)

// buildSynthetic returns a minidump with every stream this package reads.
func buildSynthetic() []byte {
	m := newMDB()
	m.flags = uint64(MiniDumpWithDataSegs | MiniDumpWithHandleData | MiniDumpWithProcessThreadData | MiniDumpWithThreadInfo)

	// Thread list: one thread with a 0x100-byte stack and an x64 context.
	stack := make([]byte, 0x100)
	for i := range stack {
		stack[i] = byte(i)
	}
	stackRva := m.blob(stack)
	ctxRva := m.blob(x64Context(synCrashRIP-4, synStack+0x10))
	var tl lew
	tl.u32(1).u32(synThreadID).u32(0).u32(0x20).u32(8).u64(0x7fe000).
		u64(synStack).u32(uint32(len(stack))).u32(stackRva).u32(0x4D0).u32(ctxRva)
	m.stream(ThreadListStream, tl.b)

	// ThreadEx list with a backing store.
	var tx lew
	tx.u32(1).u32(synThreadID).u32(1).u32(0x20).u32(8).u64(0x7fe000).
		u64(synStack).u32(uint32(len(stack))).u32(stackRva).u32(0x4D0).u32(ctxRva).
		u64(0x900000).u32(0).u32(0)
	m.stream(ThreadExListStream, tx.b)

	// Module list: App.exe with RSDS, lib.dll with NB10 and a misc record,
	// libfoo.so with an ELF build id.
	var rsds lew
	rsds.u32(CVSignatureRSDS).u32(0x11223344).u16(0x5566).u16(0x7788).raw([]byte{1, 2, 3, 4, 5, 6, 7, 8}).u32(0xA).raw([]byte("C:\\build\\App.pdb\x00"))
	var nb10 lew
	nb10.u32(CVSignatureNB10).u32(0).u32(0x3A2B1C0D).u32(3).raw([]byte("lib.pdb\x00"))
	var elf lew
	elf.u32(CVSignatureELF).raw([]byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	var misc lew
	misc.u32(1).u32(12 + 8).u8(0).zero(3).raw([]byte("lib.dbg\x00"))
	type mod struct {
		base       uint64
		size       uint32
		name       string
		cv, mscRec []byte
		ver        bool
	}
	mods := []mod{
		{synModBase, synModSize, `C:\Program Files\App\App.exe`, rsds.b, nil, true},
		{0x180000000, 0x3000, `C:\Windows\System32\lib.dll`, nb10.b, misc.b, false},
		{0x7f0000000000, 0x2000, `/usr/lib/libfoo.so`, elf.b, nil, false},
	}
	var ml lew
	ml.u32(uint32(len(mods)))
	type locs struct{ name, cvRva, cvLen, miscRva, miscLen uint32 }
	var ls []locs
	for _, md := range mods {
		l := locs{name: m.str(md.name)}
		if md.cv != nil {
			l.cvRva, l.cvLen = m.blob(md.cv), uint32(len(md.cv))
		}
		if md.mscRec != nil {
			l.miscRva, l.miscLen = m.blob(md.mscRec), uint32(len(md.mscRec))
		}
		ls = append(ls, l)
	}
	for i, md := range mods {
		ml.u64(md.base).u32(md.size).u32(0xC0FFEE).u32(0x5F000000 + uint32(i)).u32(ls[i].name)
		if md.ver {
			ml.u32(FixedFileInfoSignature).u32(0x10000).u32(0x000A0000).u32(0x4A610001).u32(0x000A0000).u32(0x4A610001).zero(7 * 4)
		} else {
			ml.zero(52)
		}
		ml.u32(ls[i].cvLen).u32(ls[i].cvRva).u32(ls[i].miscLen).u32(ls[i].miscRva).u64(0).u64(0)
	}
	m.stream(ModuleListStream, ml.b)

	// Memory list: the stack and 16 bytes of module code.
	code := []byte{0x90, 0x90, 0x90, 0x90, 0xC7, 0x04, 0x25, 0x10, 0, 0, 0, 1, 0, 0, 0, 0xCC}
	codeRva := m.blob(code)
	var mm lew
	mm.u32(2).u64(synStack).u32(uint32(len(stack))).u32(stackRva).u64(synCrashRIP - 4).u32(uint32(len(code))).u32(codeRva)
	m.stream(MemoryListStream, mm.b)

	// Exception: write AV at synAVTarget.
	exCtxRva := m.blob(x64Context(synCrashRIP, synStack+0x20))
	var ex lew
	ex.u32(synThreadID).u32(0).u32(uint32(StatusAccessViolation)).u32(0).u64(0).u64(synCrashRIP).u32(2).u32(0).u64(1).u64(synAVTarget).zero(13 * 8).u32(0x4D0).u32(exCtxRva)
	m.stream(ExceptionStream, ex.b)

	// System info: x64 Windows 10 with a CSD string.
	csd := m.str("Service Pack 9")
	var si lew
	si.u16(uint16(ArchAMD64)).u16(6).u16(0x9E0A).u8(8).u8(1).u32(10).u32(0).u32(19045).u32(uint32(PlatformWinNT)).u32(csd).u16(0x100).u16(0).
		u64(0x1234).u64(0x5678).u64(0)
	m.stream(SystemInfoStream, si.b)

	// Misc info version 5.
	mi := make([]byte, MiscInfoSize5)
	binary.LittleEndian.PutUint32(mi[0:], MiscInfoSize5)
	binary.LittleEndian.PutUint32(mi[4:], MiscInfoProcessID|MiscInfoTimezone|MiscInfoBuildString|MiscInfoProcessCookie)
	binary.LittleEndian.PutUint32(mi[8:], 4242)
	binary.LittleEndian.PutUint32(mi[24:], 3600) // ProcessorMaxMhz
	binary.LittleEndian.PutUint32(mi[56:], 2)    // TimeZoneId
	binary.LittleEndian.PutUint32(mi[60:], uint32(0xFFFFFFC4))
	copy(mi[64:], utf16z("W. Europe Standard Time", 64))
	copy(mi[0xE8:], utf16z("19041.1.amd64fre.vb_release.191206-1406", 0))
	binary.LittleEndian.PutUint64(mi[0x348:], 0x7) // EnabledFeatures
	binary.LittleEndian.PutUint32(mi[0x550:], 0xCAFE)
	m.stream(MiscInfoStream, mi)

	// Handle data v2: two descriptors, one with an object-info chain.
	tEvent, oName := m.str("Event"), m.str(`\BaseNamedObjects\Foo`)
	info2 := m.blob(new(lew).u32(0).u32(6).u32(4).u32(0xAABBCCDD).b)
	info1 := m.blob(new(lew).u32(info2).u32(1).u32(8).u64(0x1122334455667788).b)
	var hd lew
	hd.u32(16).u32(40).u32(2).u32(0)
	hd.u64(0x4).u32(tEvent).u32(oName).u32(0).u32(0x1F0003).u32(2).u32(32770).u32(info1).u32(0)
	hd.u64(0x8).u32(tEvent).u32(0).u32(0).u32(0x1F0003).u32(1).u32(1).u32(0).u32(0)
	m.stream(HandleDataStream, hd.b)

	// Unloaded modules.
	var um lew
	um.u32(12).u32(24).u32(1).u64(0x190000000).u32(0x4000).u32(0).u32(0x5E000000).u32(m.str("gone.dll"))
	m.stream(UnloadedModuleListStream, um.b)

	// Memory info list.
	var mil lew
	mil.u32(16).u32(48).u64(2).
		u64(synModBase).u64(synModBase).u32(PageExecuteWriteCopy).u32(0).u64(0x1000).u32(MemCommit).u32(PageReadOnly).u32(MemImage).u32(0).
		u64(synModBase + 0x1000).u64(synModBase).u32(PageExecuteWriteCopy).u32(0).u64(0x1000).u32(MemCommit).u32(PageExecuteRead).u32(MemImage).u32(0)
	m.stream(MemoryInfoListStream, mil.b)

	// Thread info list.
	var til lew
	til.u32(12).u32(64).u32(1).u32(synThreadID).u32(ThreadInfoErrorThread).u32(0).u32(0x103).
		u64(1).u64(0).u64(2).u64(3).u64(synModBase + 0x100).u64(0xF)
	m.stream(ThreadInfoListStream, til.b)

	// Thread names.
	var tn lew
	tn.u32(1).u32(synThreadID).u64(uint64(m.str("main")))
	m.stream(ThreadNamesStream, tn.b)

	// Comments.
	m.stream(CommentStreamA, []byte("ansi comment\x00"))
	m.stream(CommentStreamW, append(utf16z("wide comment", 0), 0, 0))

	// Token stream: one token with 8 bytes of data.
	var tk lew
	tk.u32(16 + 24).u32(1).u32(16).u32(16).u32(24).u32(7).u64(0x50).u64(0xDEADBEEF)
	m.stream(TokenStream, tk.b)

	// Function table: one descriptor, 8-byte native descriptor, 2 entries of 12 bytes.
	var ft lew
	ft.u32(24).u32(32).u32(8).u32(12).u32(1).u32(0).
		u64(0x30000000).u64(0x30001000).u64(0x30000000).u32(2).u32(0).
		u64(0xAAAA).zero(24)
	m.stream(FunctionTableStream, ft.b)

	// System memory info (basic part) and VM counters v2.
	sm := make([]byte, 0x1EC)
	binary.LittleEndian.PutUint16(sm[0:], 1)
	binary.LittleEndian.PutUint32(sm[8:], 0x1000)
	binary.LittleEndian.PutUint32(sm[12:], 0x100000)
	binary.LittleEndian.PutUint32(sm[52:], 8)
	m.stream(SystemMemoryInfoStream, sm)
	vm := make([]byte, 0x98)
	binary.LittleEndian.PutUint16(vm[0:], 2)
	binary.LittleEndian.PutUint16(vm[2:], 0x1F)
	binary.LittleEndian.PutUint64(vm[0x10:], 0x200000)
	binary.LittleEndian.PutUint64(vm[0x58:], 0x300000)
	binary.LittleEndian.PutUint64(vm[0x90:], 0x999)
	m.stream(ProcessVmCountersStream, vm)

	// Vendor streams.
	m.stream(BreakpadInfoStream, new(lew).u32(3).u32(0x99).u32(synThreadID).b)
	var as lew
	as.raw(utf16z("p != nullptr", 256)).raw(utf16z("Foo::Bar", 256)).raw(utf16z("foo.cc", 256)).u32(42).u32(1)
	m.stream(BreakpadAssertionInfo, as.b)
	u8s := func(s string) uint32 { return m.blob(new(lew).u32(uint32(len(s))).raw([]byte(s)).u8(0).b) }
	dict := m.blob(new(lew).u32(2).u32(u8s("prod")).u32(u8s("App")).u32(u8s("ver")).u32(u8s("1.2.3")).b)
	list := m.blob(new(lew).u32(1).u32(u8s("hello from the module")).b)
	objs := m.blob(new(lew).u32(1).u32(u8s("note")).u16(CrashpadAnnotationString).u16(0).u32(m.blob(new(lew).u32(2).raw([]byte("hi")).b)).b)
	modInfo := m.blob(new(lew).u32(1).u32(8).u32(list).u32(0).u32(0).u32(16).u32(objs).b)
	modList := m.blob(new(lew).u32(1).u32(0).u32(28).u32(modInfo).b)
	var cp lew
	cp.u32(1).raw(make([]byte, 16)).raw([]byte{0x4b, 0x60, 0x12, 0x89, 0x9e, 0xf8, 0x23, 0x45, 0x8d, 0xb7, 0x5f, 0xb2, 0x16, 0x4e, 0xe5, 0x38}).
		u32(20).u32(dict).u32(16).u32(modList)
	m.stream(CrashpadInfoStream, cp.b)
	m.stream(BreakpadLinuxMaps, []byte("00400000-00401000 r-xp 0 0:0 0 /bin/x\n"))

	// Memory64 list: one 0x20-byte heap range placed at the end of the data.
	heap := make([]byte, 0x20)
	for i := range heap {
		heap[i] = 0xA0 + byte(i)
	}
	var m64 lew
	m64.u64(1).u64(0) // BaseRva patched below
	m64.u64(synHeapStart).u64(uint64(len(heap)))
	m64rva := m.stream(Memory64ListStream, m64.b)
	heapRva := m.blob(heap)
	binary.LittleEndian.PutUint64(m.b[m64rva+8:], uint64(heapRva))

	m.dir = append(m.dir, [3]uint32{0, 0, 0}) // an unused entry
	return m.bytes()
}
