package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/triage"
	"github.com/spf13/cobra"
)

const infoLong = `Print what a dump says about itself: format, architecture, OS build, dump
type, bug-check code and parameters, register context and loaded modules.

Kernel dumps (PAGEDU64 / PAGEDUMP: small memory dumps from C:\Windows\Minidump,
MEMORY.DMP kernel, complete and bitmap dumps) and user-mode MDMP dumps are read;
a directory stands for every *.dmp file under it, in name order. Nothing is
analysed: use "kdtriage analyze" for the !analyze -v style report.

With --format json, one JSON object is printed per dump (one per line for
several dumps); 64-bit values are "0x..." strings. With table, markdown or csv,
one row per dump.

A dump that cannot be read is reported on stderr with the offset of the problem,
the other dumps are still reported, and the exit code is 2.`

// infoModule is one module in the info JSON.
type infoModule struct {
	Name      string `json:"name"`
	Base      hexU64 `json:"base"`
	Size      hexU64 `json:"size"`
	Timestamp hexU64 `json:"timestamp"`
	Path      string `json:"path,omitempty"`
	CheckSum  hexU64 `json:"checksum,omitempty"`
}

// infoBugCheck is the bug-check part of the info JSON.
type infoBugCheck struct {
	Code   hexU64    `json:"code"`
	Name   string    `json:"name"`
	Params [4]hexU64 `json:"params"`
}

// infoContext holds the register context's key registers.
type infoContext struct {
	IP hexU64 `json:"ip"`
	SP hexU64 `json:"sp"`
	FP hexU64 `json:"fp"`
}

// infoUnloaded is one unloaded driver.
type infoUnloaded struct {
	Name  string `json:"name"`
	Start hexU64 `json:"start"`
	End   hexU64 `json:"end"`
}

// infoJSON is the object `kdtriage info --format json` prints per dump.
type infoJSON struct {
	File         string        `json:"file"`
	SHA256       string        `json:"sha256,omitempty"`
	Size         int64         `json:"size"`
	Format       string        `json:"format"`
	Machine      string        `json:"machine"`
	OSBuild      uint32        `json:"os_build"`
	MajorVersion uint32        `json:"major_version,omitempty"`
	DumpType     string        `json:"dump_type,omitempty"`
	DumpTypeCode uint32        `json:"dump_type_code"`
	Processors   uint32        `json:"processors,omitempty"`
	SystemTime   string        `json:"system_time,omitempty"`
	SystemUpTime string        `json:"system_uptime,omitempty"`
	BugCheck     *infoBugCheck `json:"bugcheck,omitempty"`
	// Context is the register context a debugger shows on opening the dump:
	// the crashing processor's bug-check context when the dump holds it,
	// else the header's context record.
	Context *infoContext `json:"context,omitempty"`
	// HeaderContext is the dump header's context record when it differs
	// from Context (for 0x7E-style bug checks it is the faulting context).
	HeaderContext *infoContext   `json:"header_context,omitempty"`
	Process       string         `json:"process_name,omitempty"`
	Modules       []infoModule   `json:"modules"`
	Unloaded      []infoUnloaded `json:"unloaded_modules,omitempty"`
	Problems      []string       `json:"problems,omitempty"`

	// Extra holds format-specific keys (user-mode streams, threads...).
	Extra map[string]any `json:"-"`
}

// MarshalJSON merges Extra into the object.
func (j *infoJSON) MarshalJSON() ([]byte, error) {
	type plain infoJSON
	b, err := json.Marshal((*plain)(j))
	if err != nil || len(j.Extra) == 0 {
		return b, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, v := range j.Extra {
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		m[k] = raw
	}
	return json.Marshal(m)
}

func (a *app) infoCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "info DUMP... | DIR",
		Short: "Print a dump's header facts, context and module list",
		Long:  infoLong,
		Example: `  kdtriage info C:/Windows/Minidump/112117-27671-01.dmp
  kdtriage info --format json MEMORY.DMP | jq .bugcheck
  kdtriage info --format table Minidump/`,
		Args: minOneArg("one or more dump files or directories"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runInfo(cmd, args)
		},
	}
	cmd.Flags().String("format", formatText, "output format: text, json, table, markdown, csv")
	cmd.Flags().String("hash", "auto", "SHA-256 of each file: auto (files up to 1 GiB), always, never; hashing reads the whole file")
	return cmd
}

func (a *app) runInfo(cmd *cobra.Command, args []string) error {
	format, _ := cmd.Flags().GetString("format")
	if err := checkFormat(format, formatText, formatJSON, formatTable, formatMarkdown, formatCSV); err != nil {
		return err
	}
	hashMode, _ := cmd.Flags().GetString("hash")
	if err := checkChoice("--hash", hashMode, "auto", "always", "never"); err != nil {
		return err
	}
	paths, expandErrs := expandDumpArgs(args)
	for _, e := range expandErrs {
		fmt.Fprintf(a.stderr, "kdtriage: %v\n", e)
	}
	failed := len(expandErrs)
	printed := 0
	var rows [][]string
	for _, path := range paths {
		info, text, err := a.infoOne(path, hashMode)
		if err != nil {
			failed++
			fmt.Fprintf(a.stderr, "kdtriage: %s: %v\n", path, pathErr(err))
			continue
		}
		switch format {
		case formatJSON:
			b, err := json.Marshal(info)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s\n", b)
		case formatText:
			if printed > 0 {
				fmt.Fprintln(a.stdout)
			}
			printed++
			if err := text(a.stdout); err != nil {
				return err
			}
		default:
			row := infoRow(info)
			if format != formatCSV {
				// The full path is in CSV and JSON; a table names the file,
				// as analyze's does, to stay readable on a terminal.
				row[0] = filepath.Base(row[0])
			}
			rows = append(rows, row)
		}
	}
	if len(rows) > 0 {
		header := []string{"File", "Format", "Machine", "Build", "Type", "Bug check", "Name", "P1", "P2", "P3", "P4", "Modules", "IP"}
		if err := writeRows(a.stdout, format, header, rows); err != nil {
			return err
		}
	}
	if failed > 0 {
		return &exitError{code: exitBadDump}
	}
	return nil
}

func infoRow(j *infoJSON) []string {
	r := []string{j.File, j.Format, j.Machine, fmt.Sprint(j.OSBuild), j.DumpType, "", "", "", "", "", "", fmt.Sprint(len(j.Modules)), ""}
	if j.BugCheck != nil {
		r[5] = fmt.Sprintf("0x%08X", uint64(j.BugCheck.Code))
		r[6] = j.BugCheck.Name
		for i, p := range j.BugCheck.Params {
			r[7+i] = fmt.Sprintf("%#x", uint64(p))
		}
	}
	if j.BugCheck == nil {
		// A user-mode dump's exception fills the bug-check columns, as
		// analyze's table does.
		var ex *mdmpException
		switch e := j.Extra["exception"].(type) {
		case mdmpException:
			ex = &e
		case *mdmpException:
			ex = e
		}
		if ex != nil {
			r[5] = fmt.Sprintf("0x%08X", uint64(ex.Code))
			r[6] = ex.Name
		}
	}
	if j.Context != nil {
		r[12] = fmt.Sprintf("%#x", uint64(j.Context.IP))
	}
	return r
}

// autoHashLimit is the largest file --hash=auto hashes: hashing reads
// every byte, while info itself reads only what it prints.
const autoHashLimit = 1 << 30

// infoOne reads one dump and returns its JSON object and a text printer.
func (a *app) infoOne(path string, hashMode string) (*infoJSON, func(io.Writer) error, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, nil, err
	}
	if st.IsDir() {
		return nil, nil, errors.New("is a directory: pass the dump files inside it")
	}
	j := &infoJSON{File: path, Size: st.Size()}
	if hashMode == "always" || hashMode == "auto" && st.Size() <= autoHashLimit {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(fh, 0, st.Size())); err != nil {
			return nil, nil, err
		}
		j.SHA256 = hex.EncodeToString(h.Sum(nil))
	}
	f, err := kdump.NewFile(fh, st.Size())
	if err != nil {
		return a.infoOther(j, fh, st.Size(), err)
	}
	a.log.Debug().Str("file", path).Stringer("type", f.Header().DumpType).Msg("kernel dump opened")
	fillKernelInfo(j, f)
	return j, func(w io.Writer) error { return writeKernelText(w, j, f) }, nil
}

// infoOther handles files kdump.NewFile does not read as kernel dumps.
func (a *app) infoOther(j *infoJSON, fh *os.File, size int64, openErr error) (*infoJSON, func(io.Writer) error, error) {
	format, _ := kdump.Sniff(fh, size)
	switch format {
	case kdump.FormatMDMP, kdump.FormatUserDump64, kdump.FormatUserDump32:
		return a.infoUser(j, fh, size, format, openErr)
	}
	return nil, nil, openErr
}

func fillKernelInfo(j *infoJSON, f *kdump.File) {
	h := f.Header()
	j.Format = h.Format.String()
	j.Machine = h.Machine.String()
	j.OSBuild = h.MinorVersion
	j.MajorVersion = h.MajorVersion
	j.DumpType = h.DumpType.String()
	j.DumpTypeCode = uint32(h.DumpType)
	j.Processors = h.NumberProcessors
	if !h.SystemTime.IsZero() {
		j.SystemTime = h.SystemTime.Format(time.RFC3339)
	}
	if h.SystemUpTime > 0 {
		j.SystemUpTime = h.SystemUpTime.Round(time.Second).String()
	}
	bc := triage.LookupBugCheck(h.BugCheck.Code)
	j.BugCheck = &infoBugCheck{Code: hexU64(h.BugCheck.Code), Name: bc.Name}
	for i, p := range h.BugCheck.Params {
		j.BugCheck.Params[i] = hexU64(p)
	}
	hc, err := f.Context()
	if err != nil {
		j.Problems = append(j.Problems, err.Error())
	}
	if pc, perr := f.ProcessorContext(); perr == nil {
		j.Context = newInfoContext(pc)
		if hc != nil && (hc.IP() != pc.IP() || hc.SP() != pc.SP()) {
			j.HeaderContext = newInfoContext(hc)
		}
	} else if hc != nil {
		j.Context = newInfoContext(hc)
	}
	mods, err := f.Modules()
	if err != nil {
		j.Problems = append(j.Problems, err.Error())
	}
	j.Modules = make([]infoModule, 0, len(mods))
	for _, m := range mods {
		j.Modules = append(j.Modules, infoModule{Name: m.Name, Base: hexU64(m.Base), Size: hexU64(m.Size),
			Timestamp: hexU64(m.TimeDateStamp), Path: m.Path, CheckSum: hexU64(m.CheckSum)})
	}
	if un, err := f.UnloadedModules(); err == nil {
		for _, u := range un {
			j.Unloaded = append(j.Unloaded, infoUnloaded{Name: u.Name, Start: hexU64(u.Start), End: hexU64(u.End)})
		}
	}
	if name, err := f.ProcessName(); err == nil {
		j.Process = name
	}
	for _, p := range f.Problems() {
		j.Problems = append(j.Problems, p.Error())
	}
}

func newInfoContext(c *kdump.Context) *infoContext {
	return &infoContext{IP: hexU64(c.IP()), SP: hexU64(c.SP()), FP: hexU64(c.FP())}
}

func writeKernelText(w io.Writer, j *infoJSON, f *kdump.File) error {
	h := f.Header()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(k, format string, args ...any) {
		fmt.Fprintf(tw, "%s:\t"+format+"\n", append([]any{k}, args...)...)
	}
	p("File", "%s", j.File)
	p("Size", "%d bytes", j.Size)
	if j.SHA256 != "" {
		p("SHA-256", "%s", j.SHA256)
	}
	sig := "PAGEDU64"
	if h.Format == kdump.FormatKernel32 {
		sig = "PAGEDUMP"
	}
	p("Format", "%s (%s), %s, %d processors", j.Format, sig, j.Machine, h.NumberProcessors)
	build := "free"
	if h.MajorVersion == 0xC {
		build = "checked"
	}
	p("OS build", "%d (%s)", h.MinorVersion, build)
	p("Dump type", "%s (%d)", j.DumpType, j.DumpTypeCode)
	if j.SystemTime != "" {
		p("Crash time", "%s", j.SystemTime)
	}
	if j.SystemUpTime != "" {
		p("Uptime", "%s", j.SystemUpTime)
	}
	p("Bug check", "0x%08X %s", h.BugCheck.Code, j.BugCheck.Name)
	info := triage.LookupBugCheck(h.BugCheck.Code)
	for i, v := range h.BugCheck.Params {
		desc := info.Param(i+1, h.BugCheck.Params)
		if desc != "" {
			desc = "  " + desc
		}
		p(fmt.Sprintf("  P%d", i+1), "0x%016x%s", v, desc)
	}
	if j.Context != nil {
		p("Context", "ip %#x  sp %#x  fp %#x", uint64(j.Context.IP), uint64(j.Context.SP), uint64(j.Context.FP))
		if m := kdump.ModuleAt(mustModules(f), uint64(j.Context.IP)); m != nil {
			p("  IP in", "%s+%#x", m.Name, uint64(j.Context.IP)-m.Base)
		}
	}
	if hc := j.HeaderContext; hc != nil {
		p("Header context", "ip %#x  sp %#x  fp %#x", uint64(hc.IP), uint64(hc.SP), uint64(hc.FP))
		if m := kdump.ModuleAt(mustModules(f), uint64(hc.IP)); m != nil {
			p("  IP in", "%s+%#x", m.Name, uint64(hc.IP)-m.Base)
		}
	}
	if j.Process != "" {
		p("Process", "%s", j.Process)
	}
	if t := f.Triage(); t != nil {
		p("Triage", "stack %#x bytes at %#x, %d data blocks, %d drivers", t.SizeOfCallStack, t.TopOfStack, t.DataBlocksCount, t.DriverCount)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nModules (%d):\n", len(j.Modules))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  Base\tEnd\tTimestamp\tName")
	for _, m := range j.Modules {
		fmt.Fprintf(tw, "  %#x\t%#x\t%08x\t%s\n", uint64(m.Base), uint64(m.Base)+uint64(m.Size), uint64(m.Timestamp), m.Name)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	writeInfoTail(w, j)
	return nil
}

// writeInfoTail writes the unloaded modules and the unreadable parts
// that end every text listing.
func writeInfoTail(w io.Writer, j *infoJSON) {
	if len(j.Unloaded) > 0 {
		fmt.Fprintf(w, "\nUnloaded modules (%d):\n", len(j.Unloaded))
		for _, u := range j.Unloaded {
			fmt.Fprintf(w, "  %#x %#x %s\n", uint64(u.Start), uint64(u.End), u.Name)
		}
	}
	if len(j.Problems) > 0 {
		fmt.Fprintf(w, "\nMissing or unreadable parts:\n  %s\n", strings.Join(j.Problems, "\n  "))
	}
}

func mustModules(f *kdump.File) []kdump.Module {
	m, _ := f.Modules()
	return m
}
