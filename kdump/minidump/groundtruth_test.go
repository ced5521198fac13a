package minidump

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// gtBlock is one record of Breakpad's minidump_dump output: a block name
// (MDRawModule...), the index label before it (module[3] -> 3, else -1)
// and its "key = value" fields.
type gtBlock struct {
	name   string
	index  int
	fields map[string]string
}

var (
	gtIndexRe = regexp.MustCompile(`^[A-Za-z]+\[(\d+)\]$`)
	gtNameRe  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*$`)
)

// parseGroundTruth reads minidump_dump output.
func parseGroundTruth(t *testing.T, path string) []gtBlock {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Skipf("ground truth not available: %v", err)
	}
	defer fh.Close()
	var blocks []gtBlock
	pending := -1
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case gtIndexRe.MatchString(line):
			pending, _ = strconv.Atoi(gtIndexRe.FindStringSubmatch(line)[1])
		case gtNameRe.MatchString(line):
			blocks = append(blocks, gtBlock{name: line, index: pending, fields: map[string]string{}})
			pending = -1
		case strings.HasPrefix(line, "  ") && strings.Contains(line, " = ") && len(blocks) > 0:
			k, v, _ := strings.Cut(line, " = ")
			blocks[len(blocks)-1].fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

func gtBlocks(bs []gtBlock, name string) []gtBlock {
	var out []gtBlock
	for _, b := range bs {
		if b.name == name {
			out = append(out, b)
		}
	}
	return out
}

// gtNum parses the leading number of a field ("0x45d35f73 2007-...", "100").
func gtNum(t *testing.T, b gtBlock, key string) uint64 {
	t.Helper()
	v, ok := b.fields[key]
	if !ok {
		t.Fatalf("%s[%d]: no field %q", b.name, b.index, key)
	}
	tok, _, _ := strings.Cut(v, " ")
	n, err := strconv.ParseUint(tok, 0, 64)
	if err != nil {
		t.Fatalf("%s[%d].%s: %q is not a number", b.name, b.index, key, v)
	}
	return n
}

// gtStr returns a quoted field's text; (null) gives "".
func gtStr(t *testing.T, b gtBlock, key string) string {
	t.Helper()
	v, ok := b.fields[key]
	if !ok {
		t.Fatalf("%s[%d]: no field %q", b.name, b.index, key)
	}
	if v == "(null)" {
		return ""
	}
	return strings.TrimSuffix(strings.TrimPrefix(v, `"`), `"`)
}

type gtCheck struct {
	what      string
	got, want any
}

func gtCompare(t *testing.T, checks []gtCheck) {
	t.Helper()
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s = %v, Breakpad says %v", c.what, c.got, c.want)
		}
	}
}

// TestGroundTruthMinidump2 compares everything Breakpad's minidump_dump
// printed for breakpad-minidump2.dmp with what this package reads.
func TestGroundTruthMinidump2(t *testing.T) {
	dir := corpusDir(t)
	gt := parseGroundTruth(t, filepath.Join(dir, "groundtruth", "minidump2.dump.out"))
	f, err := Open(filepath.Join(dir, "user", "breakpad-minidump2.dmp"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	// Header.
	hs := gtBlocks(gt, "MDRawHeader")
	if len(hs) != 1 {
		t.Fatalf("%d MDRawHeader blocks", len(hs))
	}
	h := f.Header()
	gtCompare(t, []gtCheck{
		{"signature", h.Signature, gtNum(t, hs[0], "signature")},
		{"version", h.Version, gtNum(t, hs[0], "version")},
		{"stream_count", h.NumberOfStreams, gtNum(t, hs[0], "stream_count")},
		{"stream_directory_rva", h.StreamDirectoryRva, gtNum(t, hs[0], "stream_directory_rva")},
		{"checksum", h.CheckSum, gtNum(t, hs[0], "checksum")},
		{"time_date_stamp", h.TimeDateStamp, gtNum(t, hs[0], "time_date_stamp")},
		{"time", h.Time().Format("2006-01-02 15:04:05"), strings.SplitN(hs[0].fields["time_date_stamp"], " ", 2)[1]},
		{"flags", uint64(h.Flags), gtNum(t, hs[0], "flags")},
	})

	// Directory.
	ds := gtBlocks(gt, "MDRawDirectory")
	if len(ds) != len(f.Directory()) {
		t.Fatalf("directory has %d entries, Breakpad lists %d", len(f.Directory()), len(ds))
	}
	for _, d := range ds {
		e := f.Directory()[d.index]
		p := fmt.Sprintf("directory[%d].", d.index)
		gtCompare(t, []gtCheck{
			{p + "stream_type", uint32(e.Type), gtNum(t, d, "stream_type")},
			{p + "data_size", e.DataSize, gtNum(t, d, "location.data_size")},
			{p + "rva", e.Rva, gtNum(t, d, "location.rva")},
		})
		if !e.Type.Known() {
			t.Errorf("%s stream type %v has no name", p, e.Type)
		}
	}

	// Threads and their contexts (x86: flags, eip, esp, ebp).
	ths, err := f.Threads()
	if err != nil {
		t.Fatal(err)
	}
	gtThreads := gtBlocks(gt, "MDRawThread")
	if len(ths) != len(gtThreads) || len(gtThreads) == 0 {
		t.Fatalf("%d threads, Breakpad lists %d", len(ths), len(gtThreads))
	}
	ctxs := gtBlocks(gt, "MDRawContextX86") // one per thread, then the exception's
	if len(ctxs) != len(ths)+1 {
		t.Fatalf("%d x86 contexts in ground truth, want %d", len(ctxs), len(ths)+1)
	}
	checkCtx := func(p string, loc Location, c gtBlock) {
		b, err := f.ContextBytes(loc)
		if err != nil {
			t.Errorf("%s context: %v", p, err)
			return
		}
		gtCompare(t, []gtCheck{
			{p + "context_flags", le.Uint32(b[0:]), gtNum(t, c, "context_flags")},
			{p + "eip", le.Uint32(b[0xB8:]), gtNum(t, c, "eip")},
			{p + "esp", le.Uint32(b[0xC4:]), gtNum(t, c, "esp")},
			{p + "ebp", le.Uint32(b[0xB4:]), gtNum(t, c, "ebp")},
			{p + "eax", le.Uint32(b[0xB0:]), gtNum(t, c, "eax")},
			{p + "eflags", le.Uint32(b[0xC0:]), gtNum(t, c, "eflags")},
		})
	}
	for i, g := range gtThreads {
		th := ths[g.index]
		p := fmt.Sprintf("thread[%d].", g.index)
		gtCompare(t, []gtCheck{
			{p + "thread_id", th.ID, gtNum(t, g, "thread_id")},
			{p + "suspend_count", th.SuspendCount, gtNum(t, g, "suspend_count")},
			{p + "priority_class", th.PriorityClass, gtNum(t, g, "priority_class")},
			{p + "priority", th.Priority, gtNum(t, g, "priority")},
			{p + "teb", th.Teb, gtNum(t, g, "teb")},
			{p + "stack.start", th.Stack.Start, gtNum(t, g, "stack.start_of_memory_range")},
			{p + "stack.size", th.Stack.DataSize, gtNum(t, g, "stack.memory.data_size")},
			{p + "stack.rva", th.Stack.Rva, gtNum(t, g, "stack.memory.rva")},
			{p + "context.size", th.Context.DataSize, gtNum(t, g, "thread_context.data_size")},
			{p + "context.rva", th.Context.Rva, gtNum(t, g, "thread_context.rva")},
		})
		checkCtx(p, th.Context, ctxs[i])
	}

	// Modules.
	mods, err := f.Modules()
	if err != nil {
		t.Fatal(err)
	}
	gtMods := gtBlocks(gt, "MDRawModule")
	if len(mods) != len(gtMods) || len(mods) == 0 {
		t.Fatalf("%d modules, Breakpad lists %d", len(mods), len(gtMods))
	}
	for _, g := range gtMods {
		m := &mods[g.index]
		p := fmt.Sprintf("module[%d].", g.index)
		fv := fmt.Sprintf("%#x:%#x", m.Version.FileVersionMS, m.Version.FileVersionLS)
		pv := fmt.Sprintf("%#x:%#x", m.Version.ProductVersionMS, m.Version.ProductVersionLS)
		checks := []gtCheck{
			{p + "base_of_image", m.Base, gtNum(t, g, "base_of_image")},
			{p + "size_of_image", m.Size, gtNum(t, g, "size_of_image")},
			{p + "checksum", m.CheckSum, gtNum(t, g, "checksum")},
			{p + "time_date_stamp", m.TimeDateStamp, gtNum(t, g, "time_date_stamp")},
			{p + "module_name_rva", m.NameRva, gtNum(t, g, "module_name_rva")},
			{p + "version_info.signature", m.Version.Signature, gtNum(t, g, "version_info.signature")},
			{p + "version_info.struct_version", m.Version.StrucVersion, gtNum(t, g, "version_info.struct_version")},
			{p + "version_info.file_version", fv, g.fields["version_info.file_version"]},
			{p + "version_info.product_version", pv, g.fields["version_info.product_version"]},
			{p + "version_info.file_flags_mask", m.Version.FileFlagsMask, gtNum(t, g, "version_info.file_flags_mask")},
			{p + "version_info.file_os", m.Version.FileOS, gtNum(t, g, "version_info.file_os")},
			{p + "version_info.file_type", m.Version.FileType, gtNum(t, g, "version_info.file_type")},
			{p + "cv_record.data_size", m.CvRecord.DataSize, gtNum(t, g, "cv_record.data_size")},
			{p + "cv_record.rva", m.CvRecord.Rva, gtNum(t, g, "cv_record.rva")},
			{p + "misc_record.data_size", m.MiscRecord.DataSize, gtNum(t, g, "misc_record.data_size")},
			{p + "misc_record.rva", m.MiscRecord.Rva, gtNum(t, g, "misc_record.rva")},
			{p + "code_file", m.Name, gtStr(t, g, "(code_file)")},
			{p + "code_identifier", m.CodeID(), gtStr(t, g, "(code_identifier)")},
			{p + "debug_file", m.DebugFile(), gtStr(t, g, "(debug_file)")},
			{p + "debug_identifier", m.DebugID(), gtStr(t, g, "(debug_identifier)")},
			{p + "version", m.Version.FileVersion(), gtStr(t, g, "(version)")},
		}
		if _, ok := g.fields["(cv_record).cv_signature"]; ok {
			if m.CodeView == nil {
				t.Errorf("%s no CodeView record (%v)", p, m.Problems)
				continue
			}
			checks = append(checks,
				gtCheck{p + "cv_signature", m.CodeView.Signature, gtNum(t, g, "(cv_record).cv_signature")},
				gtCheck{p + "cv.signature", m.CodeView.GUID, g.fields["(cv_record).signature"]},
				gtCheck{p + "cv.age", m.CodeView.Age, gtNum(t, g, "(cv_record).age")},
				gtCheck{p + "cv.pdb_file_name", m.CodeView.PDBName, gtStr(t, g, "(cv_record).pdb_file_name")},
			)
		}
		gtCompare(t, checks)
	}

	// Memory list, and the memory reader over it.
	ml, err := f.MemoryList()
	if err != nil {
		t.Fatal(err)
	}
	mem, err := f.Memory()
	if err != nil {
		t.Fatal(err)
	}
	gtMem := gtBlocks(gt, "MDMemoryDescriptor")
	if len(ml) != len(gtMem) || len(ml) == 0 {
		t.Fatalf("%d memory ranges, Breakpad lists %d", len(ml), len(gtMem))
	}
	for _, g := range gtMem {
		d := ml[g.index]
		p := fmt.Sprintf("region[%d].", g.index)
		gtCompare(t, []gtCheck{
			{p + "start", d.Start, gtNum(t, g, "start_of_memory_range")},
			{p + "size", d.DataSize, gtNum(t, g, "memory.data_size")},
			{p + "rva", d.Rva, gtNum(t, g, "memory.rva")},
		})
		// First and last byte readable through the address space.
		var b [1]byte
		if _, err := mem.ReadVirtual(b[:], d.Start+uint64(d.DataSize)-1); err != nil {
			t.Errorf("%s last byte: %v", p, err)
		}
		if _, err := mem.ReadVirtual(b[:], d.Start+uint64(d.DataSize)); err == nil && !mem.Contains(d.Start+uint64(d.DataSize)) {
			t.Errorf("%s byte past the end read without error", p)
		}
	}

	// Exception.
	ex, err := f.Exception()
	if err != nil {
		t.Fatal(err)
	}
	ge := gtBlocks(gt, "MDException")[0]
	gtCompare(t, []gtCheck{
		{"exception.thread_id", ex.ThreadID, gtNum(t, ge, "thread_id")},
		{"exception.code", ex.Code, gtNum(t, ge, "exception_record.exception_code")},
		{"exception.flags", ex.Flags, gtNum(t, ge, "exception_record.exception_flags")},
		{"exception.record", ex.Record, gtNum(t, ge, "exception_record.exception_record")},
		{"exception.address", ex.Address, gtNum(t, ge, "exception_record.exception_address")},
		{"exception.number_parameters", ex.NumberParameters, gtNum(t, ge, "exception_record.number_parameters")},
		{"exception.context.size", ex.Context.DataSize, gtNum(t, ge, "thread_context.data_size")},
		{"exception.context.rva", ex.Context.Rva, gtNum(t, ge, "thread_context.rva")},
	})
	for i, v := range ex.Information {
		gtCompare(t, []gtCheck{{fmt.Sprintf("exception_information[%d]", i), v, gtNum(t, ge, fmt.Sprintf("exception_record.exception_information[%2d]", i))}})
	}
	checkCtx("exception.", ex.Context, ctxs[len(ctxs)-1])

	// System info.
	si, err := f.SystemInfo()
	if err != nil {
		t.Fatal(err)
	}
	gs := gtBlocks(gt, "MDRawSystemInfo")[0]
	vid := si.VendorID()
	gtCompare(t, []gtCheck{
		{"processor_architecture", uint16(si.ProcessorArchitecture), gtNum(t, gs, "processor_architecture")},
		{"processor_level", si.ProcessorLevel, gtNum(t, gs, "processor_level")},
		{"processor_revision", si.ProcessorRevision, gtNum(t, gs, "processor_revision")},
		{"number_of_processors", si.NumberOfProcessors, gtNum(t, gs, "number_of_processors")},
		{"product_type", si.ProductType, gtNum(t, gs, "product_type")},
		{"major_version", si.MajorVersion, gtNum(t, gs, "major_version")},
		{"minor_version", si.MinorVersion, gtNum(t, gs, "minor_version")},
		{"build_number", si.BuildNumber, gtNum(t, gs, "build_number")},
		{"platform_id", uint32(si.PlatformID), gtNum(t, gs, "platform_id")},
		{"csd_version_rva", si.CSDVersionRva, gtNum(t, gs, "csd_version_rva")},
		{"suite_mask", si.SuiteMask, gtNum(t, gs, "suite_mask")},
		{"vendor_id[0]", vid[0], gtNum(t, gs, "cpu.x86_cpu_info.vendor_id[0]")},
		{"vendor_id[1]", vid[1], gtNum(t, gs, "cpu.x86_cpu_info.vendor_id[1]")},
		{"vendor_id[2]", vid[2], gtNum(t, gs, "cpu.x86_cpu_info.vendor_id[2]")},
		{"version_information", si.VersionInformation(), gtNum(t, gs, "cpu.x86_cpu_info.version_information")},
		{"feature_information", si.FeatureInformation(), gtNum(t, gs, "cpu.x86_cpu_info.feature_information")},
		{"amd_extended_cpu_features", si.AMDExtendedCPUFeatures(), gtNum(t, gs, "cpu.x86_cpu_info.amd_extended_cpu_features")},
		{"csd_version", si.CSDVersion, gtStr(t, gs, "(csd_version)")},
		{"cpu_vendor", si.CPUVendor(), gtStr(t, gs, "(cpu_vendor)")},
	})

	// Misc info.
	mi, err := f.MiscInfo()
	if err != nil {
		t.Fatal(err)
	}
	gm := gtBlocks(gt, "MDRawMiscInfo")[0]
	gtCompare(t, []gtCheck{
		{"size_of_info", mi.SizeOfInfo, gtNum(t, gm, "size_of_info")},
		{"flags1", mi.Flags1, gtNum(t, gm, "flags1")},
		{"process_id", mi.ProcessID, gtNum(t, gm, "process_id")},
		{"process_create_time", mi.ProcessCreateTime, gtNum(t, gm, "process_create_time")},
		{"process_user_time", mi.ProcessUserTime, gtNum(t, gm, "process_user_time")},
		{"process_kernel_time", mi.ProcessKernelTime, gtNum(t, gm, "process_kernel_time")},
		{"misc version", mi.Version, 1},
	})

	// Breakpad info.
	bi, err := f.BreakpadInfo()
	if err != nil {
		t.Fatal(err)
	}
	gb := gtBlocks(gt, "MDRawBreakpadInfo")[0]
	gtCompare(t, []gtCheck{
		{"validity", bi.Validity, gtNum(t, gb, "validity")},
		{"dump_thread_id", bi.DumpThreadID, gtNum(t, gb, "dump_thread_id")},
		{"requesting_thread_id", bi.RequestingThreadID, gtNum(t, gb, "requesting_thread_id")},
	})

	// Crash facts, as Breakpad's stackwalker reports them
	// (groundtruth/minidump2.stackwalk.out: EXCEPTION_ACCESS_VIOLATION_WRITE at 0x45).
	addr, ok := f.CrashAddress()
	gtCompare(t, []gtCheck{
		{"crash reason", f.CrashReason(), "EXCEPTION_ACCESS_VIOLATION_WRITE"},
		{"crash address", fmt.Sprintf("%#x/%v", addr, ok), "0x45/true"},
		{"process name", f.ProcessName(), "test_app.exe"},
	})
}
