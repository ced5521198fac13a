package minidump

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// StreamSummary returns a one-line description of a directory entry's
// contents, such as "18 threads", "383 modules" or "884 handle
// descriptors". Streams that cannot be parsed are described by their error.
func (f *File) StreamSummary(d Directory) string {
	if d.Type == UnusedStream {
		return "unused"
	}
	if first, ok := f.Stream(d.Type); ok && first.Index != d.Index {
		return fmt.Sprintf("duplicate of entry %d (ignored)", first.Index)
	}
	fail := func(err error) string { return "error: " + err.Error() }
	switch d.Type {
	case ThreadListStream, ThreadExListStream:
		var ts []Thread
		var err error
		if d.Type == ThreadListStream {
			ts, err = f.threads.get(func() ([]Thread, error) { return f.parseThreads(ThreadListStream) })
		} else {
			ts, err = f.ThreadsEx()
		}
		if err != nil {
			return fail(err)
		}
		return plural(len(ts), "thread", "threads")
	case ModuleListStream:
		ms, err := f.Modules()
		if err != nil {
			return fail(err)
		}
		s := plural(len(ms), "module", "modules")
		cv := 0
		for i := range ms {
			if ms[i].CodeView != nil {
				cv++
			}
		}
		return fmt.Sprintf("%s (%d with CodeView records)", s, cv)
	case MemoryListStream:
		l, err := f.MemoryList()
		if err != nil {
			return fail(err)
		}
		var total uint64
		for _, d := range l {
			total += uint64(d.DataSize)
		}
		return fmt.Sprintf("%s, %#x bytes", plural(len(l), "memory range", "memory ranges"), total)
	case Memory64ListStream:
		l, err := f.Memory64List()
		var total uint64
		for _, r := range l {
			total += r.Size
		}
		s := fmt.Sprintf("%s, %#x bytes", plural(len(l), "memory range", "memory ranges"), total)
		if err != nil {
			s += "; " + fail(err)
		}
		return s
	case ExceptionStream:
		e, err := f.Exception()
		if err != nil {
			return fail(err)
		}
		return fmt.Sprintf("exception %08x (%s) at %#x in thread %#x", e.Code, ExceptionCode(e.Code), e.Address, e.ThreadID)
	case SystemInfoStream:
		s, err := f.SystemInfo()
		if err != nil {
			return fail(err)
		}
		out := fmt.Sprintf("%v, %s %s", s.ProcessorArchitecture, s.PlatformID, s.OSVersion())
		if s.CSDVersion != "" {
			out += " " + s.CSDVersion
		}
		return out + ", " + plural(int(s.NumberOfProcessors), "processor", "processors")
	case MiscInfoStream:
		m, err := f.MiscInfo()
		if err != nil {
			return fail(err)
		}
		s := fmt.Sprintf("MISC_INFO version %d (%d bytes)", m.Version, m.SizeOfInfo)
		if m.Flags1&MiscInfoProcessID != 0 {
			s += fmt.Sprintf(", process id %d", m.ProcessID)
		}
		return s
	case HandleDataStream:
		h, err := f.HandleData()
		if err != nil {
			return fail(err)
		}
		return fmt.Sprintf("%s (v%d, %d bytes each)", plural(len(h.Descriptors), "handle descriptor", "handle descriptors"),
			map[bool]int{true: 2, false: 1}[h.SizeOfDescriptor >= 40], h.SizeOfDescriptor)
	case UnloadedModuleListStream:
		u, err := f.UnloadedModules()
		if err != nil {
			return fail(err)
		}
		return plural(len(u), "unloaded module", "unloaded modules")
	case MemoryInfoListStream:
		m, err := f.MemoryInfos()
		if err != nil {
			return fail(err)
		}
		return plural(len(m), "memory region", "memory regions")
	case ThreadInfoListStream:
		t, err := f.ThreadInfos()
		if err != nil {
			return fail(err)
		}
		return plural(len(t), "thread info entry", "thread info entries")
	case ThreadNamesStream:
		t, err := f.ThreadNames()
		if err != nil {
			return fail(err)
		}
		return plural(len(t), "thread name", "thread names")
	case CommentStreamA, CommentStreamW:
		b, err := f.ReadLocation(d.Location, d.Type.String(), maxStreamSize)
		if err != nil {
			return fail(err)
		}
		var s string
		if d.Type == CommentStreamW {
			s = utf16String(b)
		} else {
			s = cString(b)
		}
		return fmt.Sprintf("%q", truncate(s, 60))
	case TokenStream:
		t, err := f.Tokens()
		if err != nil {
			return fail(err)
		}
		return plural(len(t.Entries), "token", "tokens")
	case FunctionTableStream:
		t, err := f.FunctionTable()
		if err != nil {
			return fail(err)
		}
		return plural(len(t.Descriptors), "function table", "function tables")
	case SystemMemoryInfoStream:
		s, err := f.SystemMemoryInfo()
		if err != nil {
			return fail(err)
		}
		return fmt.Sprintf("revision %d, page size %#x, %d physical pages", s.Revision, s.PageSize, s.NumberOfPhysicalPages)
	case ProcessVmCountersStream:
		c, err := f.ProcessVMCounters()
		if err != nil {
			return fail(err)
		}
		return fmt.Sprintf("revision %d, working set %#x, private %#x", c.Revision, c.WorkingSetSize, c.PrivateUsage)
	case BreakpadInfoStream:
		b, err := f.BreakpadInfo()
		if err != nil {
			return fail(err)
		}
		return fmt.Sprintf("dump thread %#x, requesting thread %#x (validity %#x)", b.DumpThreadID, b.RequestingThreadID, b.Validity)
	case BreakpadAssertionInfo:
		a, err := f.AssertionInfo()
		if err != nil {
			return fail(err)
		}
		return fmt.Sprintf("type %d %q in %q", a.Type, truncate(a.Expression, 40), truncate(a.Function, 40))
	case CrashpadInfoStream:
		c, err := f.CrashpadInfo()
		if err != nil {
			return fail(err)
		}
		n := len(c.SimpleAnnotations)
		for _, m := range c.Modules {
			n += len(m.ListAnnotations) + len(m.SimpleAnnotations) + len(m.Annotations)
		}
		s := fmt.Sprintf("version %d, report %v, %s", c.Version, c.ReportID, plural(n, "annotation", "annotations"))
		if len(c.Problems) > 0 {
			s += fmt.Sprintf(" (%d unreadable)", len(c.Problems))
		}
		return s
	case BreakpadLinuxCPUInfo, BreakpadLinuxProcStatus, BreakpadLinuxLsbRelease, BreakpadLinuxCmdLine,
		BreakpadLinuxEnviron, BreakpadLinuxMaps, MozLinuxLimitsStream, MozMacosBootargsStream:
		return fmt.Sprintf("%d bytes of text", d.DataSize)
	}
	return fmt.Sprintf("%d bytes", d.DataSize)
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "..."
}

// WriteListing writes a .dumpdebug-style listing: the header with its
// flags decoded, then every directory entry with its type name, size, RVA
// and a one-line summary, then the key facts (system, exception, threads,
// modules). Parse errors in a stream are printed in its place; the error
// returned is the writer's.
func (f *File) WriteListing(w io.Writer) error {
	bw := bufio.NewWriter(w)
	h := &f.hdr
	fmt.Fprintf(bw, "----- User Mini Dump Analysis\n\nMINIDUMP_HEADER:\n")
	fmt.Fprintf(bw, "Version         %04X (%04X)\n", uint16(h.Version), h.ImplementationVersion())
	fmt.Fprintf(bw, "NumberOfStreams %d\n", h.NumberOfStreams)
	fmt.Fprintf(bw, "StreamDirectoryRva %#x\n", h.StreamDirectoryRva)
	fmt.Fprintf(bw, "CheckSum        %08X\n", h.CheckSum)
	fmt.Fprintf(bw, "TimeDateStamp   %08X %s\n", h.TimeDateStamp, h.Time().Format("2006-01-02 15:04:05 UTC"))
	fmt.Fprintf(bw, "Flags           %08X\n", uint64(h.Flags))
	for i, n := range flagNames {
		if bit := DumpFlags(1) << i; h.Flags&bit != 0 {
			fmt.Fprintf(bw, "                %08X MiniDump%s\n", uint64(bit), n)
		}
	}
	if rest := h.Flags &^ MiniDumpValidTypeFlags; rest != 0 {
		fmt.Fprintf(bw, "                %08X (unknown bits)\n", uint64(rest))
	}
	fmt.Fprintf(bw, "\nStreams:\n")
	for _, d := range f.dir {
		fmt.Fprintf(bw, "Stream %d: type %s (%#x), size %08X, RVA %08X\n  %s\n",
			d.Index, d.Type, uint32(d.Type), d.DataSize, d.Rva, f.StreamSummary(d))
	}
	for _, p := range f.prob {
		fmt.Fprintf(bw, "Problem: %v\n", p)
	}
	if s, err := f.SystemInfo(); err == nil {
		fmt.Fprintf(bw, "\nSystem: %v, %d processor(s), level %d revision %#x", s.ProcessorArchitecture, s.NumberOfProcessors, s.ProcessorLevel, s.ProcessorRevision)
		if v := s.CPUVendor(); v != "" {
			fmt.Fprintf(bw, ", %s", v)
		}
		fmt.Fprintf(bw, "\nOS: %s %s (platform %#x)", s.PlatformID, s.OSVersion(), uint32(s.PlatformID))
		if s.CSDVersion != "" {
			fmt.Fprintf(bw, " %s", s.CSDVersion)
		}
		fmt.Fprintln(bw)
		for _, p := range s.Problems {
			fmt.Fprintf(bw, "  problem: %v\n", p)
		}
	}
	if e, err := f.Exception(); err == nil {
		fmt.Fprintf(bw, "\nException: code %08X (%s) flags %#x at %#x, thread %#x\n", e.Code, ExceptionCode(e.Code), e.Flags, e.Address, e.ThreadID)
		for i, p := range e.Information {
			fmt.Fprintf(bw, "  Parameter[%d] %#x\n", i, p)
		}
		if av := f.AccessViolation(); av != nil {
			fmt.Fprintf(bw, "  %s\n", av)
		}
		if d := f.CrashDetail(); d != "" {
			fmt.Fprintf(bw, "  Crash reason %s / %s\n", f.CrashReason(), d)
		} else {
			fmt.Fprintf(bw, "  Crash reason %s\n", f.CrashReason())
		}
	}
	if c, err := f.CrashpadInfo(); err == nil {
		fmt.Fprintf(bw, "\nCrashpad annotations:\n")
		for _, kv := range c.SimpleAnnotations {
			fmt.Fprintf(bw, "  %s = %q\n", kv.Key, truncate(kv.Value, 100))
		}
		for _, m := range c.Modules {
			for _, s := range m.ListAnnotations {
				fmt.Fprintf(bw, "  [module %d] %q\n", m.ModuleIndex, truncate(s, 100))
			}
			for _, kv := range m.SimpleAnnotations {
				fmt.Fprintf(bw, "  [module %d] %s = %q\n", m.ModuleIndex, kv.Key, truncate(kv.Value, 100))
			}
			for _, a := range m.Annotations {
				fmt.Fprintf(bw, "  [module %d] %s = %q\n", m.ModuleIndex, a.Name, truncate(a.String(), 100))
			}
		}
	}
	if ts, err := f.Threads(); err == nil && len(ts) > 0 {
		fmt.Fprintf(bw, "\nThreads (%d):\n", len(ts))
		for _, t := range ts {
			fmt.Fprintf(bw, "  %5x  TEB %#x  stack %#x+%#x  context %#x@%#x\n", t.ID, t.Teb, t.Stack.Start, t.Stack.DataSize, t.Context.DataSize, t.Context.Rva)
		}
	}
	if ms, err := f.Modules(); err == nil && len(ms) > 0 {
		fmt.Fprintf(bw, "\nModules (%d):\n", len(ms))
		for i := range ms {
			m := &ms[i]
			fmt.Fprintf(bw, "  %#x %#x %08X %s", m.Base, m.End(), m.TimeDateStamp, m.Name)
			if v := m.Version.FileVersion(); v != "" {
				fmt.Fprintf(bw, " %s", v)
			}
			if m.CodeView != nil {
				fmt.Fprintf(bw, " %s %s %s", m.CodeView.SignatureString(), m.DebugID(), strings.TrimSpace(m.DebugFile()))
			}
			fmt.Fprintln(bw)
			for _, p := range m.Problems {
				fmt.Fprintf(bw, "    problem: %v\n", p)
			}
		}
	}
	return bw.Flush()
}
