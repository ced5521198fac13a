package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/kdump/minidump"
)

// mdmpStream is one entry of the "streams" key of the info JSON.
type mdmpStream struct {
	Type     string `json:"type"`
	TypeCode uint32 `json:"type_code"`
	Size     uint32 `json:"size"`
	Rva      hexU64 `json:"rva"`
	Summary  string `json:"summary,omitempty"`
}

// mdmpException is the "exception" key of the info JSON.
type mdmpException struct {
	Code       hexU64   `json:"code"`
	Name       string   `json:"name,omitempty"`
	Address    hexU64   `json:"address"`
	ThreadID   hexU64   `json:"thread_id"`
	Flags      hexU64   `json:"flags,omitempty"`
	Parameters []hexU64 `json:"parameters,omitempty"`
	// CrashReason and CrashAddress are Breakpad-style: for access
	// violations EXCEPTION_ACCESS_VIOLATION_WRITE and the target address.
	CrashReason  string `json:"crash_reason,omitempty"`
	CrashDetail  string `json:"crash_detail,omitempty"`
	CrashAddress hexU64 `json:"crash_address"`
	AccessType   string `json:"access_type,omitempty"`
	FaultModule  string `json:"fault_module,omitempty"`
	FaultOffset  hexU64 `json:"fault_offset,omitempty"`
}

// infoUserDump reads a user-mode dump for `kdtriage info`: MDMP files are
// parsed with kdump/minidump; legacy USERDUMP/USERDU64 files give the
// *kdump.LegacyUserDumpError that names them. The text printer is rendered
// before returning, so it does not depend on r staying open.
func infoUserDump(j *infoJSON, r io.ReaderAt, size int64, format kdump.Format) (*infoJSON, func(io.Writer) error, error) {
	if format == kdump.FormatUserDump64 || format == kdump.FormatUserDump32 {
		return infoLegacy(j, r, size)
	}
	if format != kdump.FormatMDMP {
		return nil, nil, fmt.Errorf("%v file: not a user-mode dump", format)
	}
	f, err := minidump.NewFile(r, size)
	if err != nil {
		return nil, nil, err
	}
	fillMDMPInfo(j, f)
	var buf bytes.Buffer
	if err := writeMDMPInfoText(&buf, j, f); err != nil {
		return nil, nil, err
	}
	text := buf.Bytes()
	return j, func(w io.Writer) error { _, err := w.Write(text); return err }, nil
}

// fillMDMPInfo fills the info JSON from a minidump: the common keys
// (format, machine, os_build, modules, context, process_name, problems) and,
// in Extra, the user-mode keys of mdmpInfoJSON.
func fillMDMPInfo(j *infoJSON, f *minidump.File) {
	u := kdump.NewUserDump(f)
	h := f.Header()
	j.Format = kdump.FormatMDMP.String()
	j.Machine = u.Machine().String()
	j.DumpType = h.Flags.String()
	j.DumpTypeCode = uint32(h.Flags)
	if h.TimeDateStamp != 0 {
		j.SystemTime = h.Time().Format(time.RFC3339)
	}
	if si, err := f.SystemInfo(); err == nil {
		if u.Machine() == kdump.MachineUnknown {
			j.Machine = si.ProcessorArchitecture.String()
		}
		j.OSBuild = si.BuildNumber
		j.MajorVersion = si.MajorVersion
		j.Processors = uint32(si.NumberOfProcessors)
		for _, p := range si.Problems {
			j.Problems = append(j.Problems, "system info: "+p.Error())
		}
	} else if f.HasStream(minidump.SystemInfoStream) {
		j.Problems = append(j.Problems, "system info: "+err.Error())
	}
	if c, err := u.Context(); err == nil {
		j.Context = &infoContext{IP: hexU64(c.IP()), SP: hexU64(c.SP()), FP: hexU64(c.FP())}
	} else {
		j.Problems = append(j.Problems, "context: "+err.Error())
	}
	mods, err := f.Modules()
	if err != nil && f.HasStream(minidump.ModuleListStream) {
		j.Problems = append(j.Problems, "module list: "+err.Error())
	}
	j.Modules = make([]infoModule, 0, len(mods))
	for i := range mods {
		m := &mods[i]
		j.Modules = append(j.Modules, infoModule{Name: m.BaseName(), Base: hexU64(m.Base), Size: hexU64(m.Size),
			Timestamp: hexU64(m.TimeDateStamp), Path: m.Name, CheckSum: hexU64(m.CheckSum)})
		for _, p := range m.Problems {
			j.Problems = append(j.Problems, fmt.Sprintf("module %d: %v", i, p))
		}
	}
	if un, err := u.UnloadedModules(); err == nil {
		for _, m := range un {
			j.Unloaded = append(j.Unloaded, infoUnloaded{Name: m.Name, Start: hexU64(m.Start), End: hexU64(m.End)})
		}
	}
	j.Process = f.ProcessName()
	for _, p := range f.Problems() {
		j.Problems = append(j.Problems, p.Error())
	}
	for _, d := range f.Directory() {
		if s := f.StreamSummary(d); strings.HasPrefix(s, "error: ") {
			j.Problems = append(j.Problems, fmt.Sprintf("stream %d (%v): %s", d.Index, d.Type, strings.TrimPrefix(s, "error: ")))
		}
	}
	if j.Extra == nil {
		j.Extra = map[string]any{}
	}
	for k, v := range mdmpExtra(f) {
		j.Extra[k] = v
	}
}

// mdmpExtra returns the user-mode keys: streams, threads, exception,
// mdmp_flags, and the OS and CPU details.
func mdmpExtra(f *minidump.File) map[string]any {
	x := map[string]any{}
	streams := make([]mdmpStream, 0, len(f.Directory()))
	for _, d := range f.Directory() {
		streams = append(streams, mdmpStream{Type: d.Type.String(), TypeCode: uint32(d.Type), Size: d.DataSize, Rva: hexU64(d.Rva), Summary: f.StreamSummary(d)})
	}
	x["streams"] = streams
	threads := 0
	if ts, err := f.Threads(); err == nil {
		threads = len(ts)
	}
	x["threads"] = threads
	h := f.Header()
	x["mdmp_flags"] = map[string]any{"value": hexU64(h.Flags), "names": h.Flags.Names()}
	x["mdmp_version"] = hexU64(h.Version)
	if si, err := f.SystemInfo(); err == nil {
		x["os_version"] = si.OSVersion()
		x["platform"] = si.PlatformID.String()
		x["processor_architecture"] = si.ProcessorArchitecture.String()
		if si.CSDVersion != "" {
			x["csd_version"] = si.CSDVersion
		}
		if v := si.CPUVendor(); v != "" {
			x["cpu_vendor"] = v
		}
	}
	if mi, err := f.MiscInfo(); err == nil && mi.Flags1&minidump.MiscInfoProcessID != 0 {
		x["process_id"] = mi.ProcessID
	}
	if c, err := f.CrashpadInfo(); err == nil && len(c.SimpleAnnotations) > 0 {
		ann := map[string]string{}
		for _, kv := range c.SimpleAnnotations {
			ann[kv.Key] = kv.Value
		}
		x["crashpad_annotations"] = ann
	}
	if e, err := f.Exception(); err == nil {
		ex := mdmpException{Code: hexU64(e.Code), Name: minidump.ExceptionCode(e.Code).Name(), Address: hexU64(e.Address),
			ThreadID: hexU64(e.ThreadID), Flags: hexU64(e.Flags), CrashReason: f.CrashReason(), CrashDetail: f.CrashDetail()}
		for _, p := range e.Information {
			ex.Parameters = append(ex.Parameters, hexU64(p))
		}
		if a, ok := f.CrashAddress(); ok {
			ex.CrashAddress = hexU64(a)
		}
		if av := f.AccessViolation(); av != nil {
			ex.AccessType = strings.ToLower(av.Kind.String())
		}
		if m := f.ModuleAt(e.Address); m != nil {
			ex.FaultModule = m.BaseName()
			ex.FaultOffset = hexU64(e.Address - m.Base)
		}
		x["exception"] = ex
	}
	return x
}

// mdmpInfoJSON returns the info JSON of a minidump as a map: the keys of
// fillMDMPInfo, for callers that do not build an infoJSON.
func mdmpInfoJSON(path string, f *minidump.File) map[string]any {
	j := &infoJSON{File: path, Size: f.Size()}
	fillMDMPInfo(j, f)
	out := map[string]any{
		"file": j.File, "size": j.Size, "format": j.Format, "machine": j.Machine, "os_build": j.OSBuild,
		"major_version": j.MajorVersion, "dump_type": j.DumpType, "dump_type_code": j.DumpTypeCode,
		"processors": j.Processors, "modules": j.Modules, "process_name": j.Process,
	}
	if j.SystemTime != "" {
		out["system_time"] = j.SystemTime
	}
	if j.Context != nil {
		out["context"] = j.Context
	}
	if len(j.Unloaded) > 0 {
		out["unloaded_modules"] = j.Unloaded
	}
	if len(j.Problems) > 0 {
		out["problems"] = j.Problems
	}
	for k, v := range j.Extra {
		out[k] = v
	}
	return out
}

// writeMDMPInfoText writes the text form of `kdtriage info` for a
// minidump: a summary in the style of the kernel report, then the
// .dumpdebug-style listing.
func writeMDMPInfoText(w io.Writer, j *infoJSON, f *minidump.File) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(k, format string, args ...any) {
		fmt.Fprintf(tw, "%s:\t"+format+"\n", append([]any{k}, args...)...)
	}
	p("File", "%s", j.File)
	p("Size", "%d bytes", j.Size)
	if j.SHA256 != "" {
		p("SHA-256", "%s", j.SHA256)
	}
	cpus := fmt.Sprintf("%d processors", j.Processors)
	if j.Processors == 1 {
		cpus = "1 processor"
	}
	p("Format", "%s (MDMP user-mode minidump), %s, %s", j.Format, j.Machine, cpus)
	if si, err := f.SystemInfo(); err == nil {
		osText := fmt.Sprintf("%s %s", si.PlatformID, si.OSVersion())
		if si.CSDVersion != "" {
			osText += " " + si.CSDVersion
		}
		p("OS", "%s", osText)
	}
	p("Dump flags", "%#x %s", uint64(f.Header().Flags), f.Header().Flags)
	if j.SystemTime != "" {
		p("Dump time", "%s", j.SystemTime)
	}
	if j.Process != "" {
		p("Process", "%s", j.Process)
	}
	if e, err := f.Exception(); err == nil {
		reason := f.CrashReason()
		if d := f.CrashDetail(); d != "" {
			reason += " / " + d
		}
		p("Exception", "%#08x %s at %#x, thread %#x", e.Code, reason, e.Address, e.ThreadID)
		if av := f.AccessViolation(); av != nil {
			p("  Access", "%s of %#x", strings.ToLower(av.Kind.String()), av.Address)
		}
		if m := f.ModuleAt(e.Address); m != nil {
			p("  Address in", "%s+%#x", m.BaseName(), e.Address-m.Base)
		}
	}
	if j.Context != nil {
		p("Context", "ip %#x  sp %#x  fp %#x", uint64(j.Context.IP), uint64(j.Context.SP), uint64(j.Context.FP))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if err := writeMDMPText(w, f); err != nil {
		return err
	}
	writeInfoTail(w, j)
	return nil
}

// writeMDMPText writes the .dumpdebug-style listing of a minidump: header
// with the MINIDUMP_TYPE flags decoded, every stream with its type name,
// size, RVA and a one-line summary, then system, exception, threads and
// modules.
func writeMDMPText(w io.Writer, f *minidump.File) error { return f.WriteListing(w) }

// infoLegacy reports a legacy USERDUMP/USERDU64 file: header, exception,
// context and modules. Files whose tables cannot be read give the
// *kdump.LegacyUserDumpError that names them.
func infoLegacy(j *infoJSON, r io.ReaderAt, size int64) (*infoJSON, func(io.Writer) error, error) {
	d, err := kdump.NewLegacyUserDump(r, size)
	if err != nil {
		_, aerr := kdump.NewAny(r, size)
		if aerr != nil {
			return nil, nil, aerr
		}
		return nil, nil, err
	}
	info := d.Info()
	j.Format = d.Format().String()
	j.Machine = d.Machine().String()
	j.DumpType = "legacy-full"
	if c, err := d.Context(); err == nil {
		j.Context = &infoContext{IP: hexU64(c.IP()), SP: hexU64(c.SP()), FP: hexU64(c.FP())}
	} else {
		j.Problems = append(j.Problems, "context: "+err.Error())
	}
	mods, _ := d.Modules()
	j.Modules = make([]infoModule, 0, len(mods))
	for _, m := range mods {
		j.Modules = append(j.Modules, infoModule{Name: m.Name, Base: hexU64(m.Base), Size: hexU64(m.Size),
			Timestamp: hexU64(m.TimeDateStamp), Path: m.Path, CheckSum: hexU64(m.CheckSum)})
	}
	if len(mods) > 0 {
		j.Process = mods[0].Name
	}
	if j.Extra == nil {
		j.Extra = map[string]any{}
	}
	j.Extra["threads"] = len(d.Threads())
	j.Extra["memory_regions"] = len(d.Regions())
	if info.HasException {
		ex := mdmpException{Code: hexU64(info.ExceptionCode), Name: minidump.ExceptionCode(info.ExceptionCode).Name(),
			Address: hexU64(info.ExceptionAddress), ThreadID: hexU64(info.ThreadID), CrashAddress: hexU64(info.ExceptionAddress),
			CrashReason: minidump.ExceptionCode(info.ExceptionCode).String()}
		if m := kdump.ModuleAt(mods, info.ExceptionAddress); m != nil {
			ex.FaultModule, ex.FaultOffset = m.Name, hexU64(info.ExceptionAddress-m.Base)
		}
		j.Extra["exception"] = ex
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	p := func(k, format string, args ...any) {
		fmt.Fprintf(tw, "%s:\t"+format+"\n", append([]any{k}, args...)...)
	}
	p("File", "%s", j.File)
	p("Size", "%d bytes", j.Size)
	if j.SHA256 != "" {
		p("SHA-256", "%s", j.SHA256)
	}
	sig := "USERDU64"
	if d.Format() == kdump.FormatUserDump32 {
		sig = "USERDUMP"
	}
	p("Format", "%s (%s legacy full user-mode dump; analysis needs an MDMP minidump), %s", j.Format, sig, j.Machine)
	p("Header version", "%d/%#x", info.MajorVersion, info.MinorVersion)
	p("Threads", "%d", len(d.Threads()))
	p("Memory regions", "%d", len(d.Regions()))
	if j.Process != "" {
		p("Process", "%s", j.Process)
	}
	if info.HasException {
		p("Exception", "%#08x %s at %#x, thread %#x", info.ExceptionCode, minidump.ExceptionCode(info.ExceptionCode), info.ExceptionAddress, info.ThreadID)
	}
	if j.Context != nil {
		p("Context", "ip %#x  sp %#x  fp %#x", uint64(j.Context.IP), uint64(j.Context.SP), uint64(j.Context.FP))
	}
	if err := tw.Flush(); err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(&buf, "\nModules (%d):\n", len(j.Modules))
	for _, m := range j.Modules {
		fmt.Fprintf(&buf, "  %#x %#x %08x %s\n", uint64(m.Base), uint64(m.Base)+uint64(m.Size), uint64(m.Timestamp), m.Path)
	}
	if len(j.Problems) > 0 {
		fmt.Fprintf(&buf, "\nMissing or unreadable parts:\n  %s\n", strings.Join(j.Problems, "\n  "))
	}
	text := buf.Bytes()
	return j, func(w io.Writer) error { _, err := w.Write(text); return err }, nil
}
