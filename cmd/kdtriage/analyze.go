package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/rules"
	"github.com/kdtriage/kdtriage/symbols"
	"github.com/kdtriage/kdtriage/triage"
	"github.com/kdtriage/kdtriage/triage/stack"
)

const analyzeLong = `Analyse crash dumps and print reports that read like WinDbg's !analyze -v:
the bug check and its parameters, the faulting context and stack, the blamed
module (SYMBOL_NAME, MODULE_NAME, IMAGE_NAME), FAILURE_BUCKET_ID with a
WinDbg-compatible FAILURE_ID_HASH, "Probably caused by", the Followup owner
from the rule files, and why the culprit was chosen.

Arguments are dump files or directories; a directory stands for every *.dmp
file under it. Dumps are analysed in parallel (--jobs) and reported in the
order given (directories in name order).

Formats: text (the !analyze -v layout, one report after another), json (one
JSON object per dump, one per line; 64-bit values are "0x..." strings; see
docs/report-schema.md), table (one BlueScreenView-like row per dump),
markdown and csv (the same rows). --summary prints one row per bucket instead:
how many dumps, the hash, the blamed image, the followup and which dumps.

Rules: the embedded defaults, plus every *.yaml file of --rules DIR (config
key rules.dir) as a higher layer.

A dump that cannot be read is reported on stderr; the others are still
reported, and the exit code is 2.`

// analyzeResult is the outcome for one input file.
type analyzeResult struct {
	path string
	rep  *triage.Report
	err  error
}

func (a *app) analyzeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "analyze DUMP... | DIR",
		Short: "Analyse dumps: !analyze -v style reports, buckets and blame",
		Long:  analyzeLong,
		Example: `  kdtriage analyze C:/Windows/Minidump/112117-27671-01.dmp
  kdtriage analyze --format json MEMORY.DMP | jq .failure_bucket_id
  kdtriage analyze --format table Minidump/
  kdtriage analyze --summary --rules ./rules Minidump/`,
		Args: minOneArg("one or more dump files or directories"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runAnalyze(cmd, args)
		},
	}
	f := cmd.Flags()
	f.String("format", formatText, "output format: text, json, table, markdown, csv")
	f.Bool("summary", false, "print one row per FAILURE_BUCKET_ID instead of one report per dump")
	f.String("rules", "", "directory (or file) of rule files layered over the embedded defaults (config: rules.dir, env: KDTRIAGE_RULES_DIR)")
	addSymbolFlags(cmd)
	f.IntP("jobs", "j", runtime.NumCPU(), "dumps analysed in parallel")
	f.Bool("legacy", false, "also print the fields of older debugger engines (BUCKET_ID, BUGCHECK_STR, ...)")
	f.Bool("hash", true, "compute each file's SHA-256 for the report (reads the whole file)")
	return cmd
}

func (a *app) runAnalyze(cmd *cobra.Command, args []string) error {
	fl := cmd.Flags()
	format, _ := fl.GetString("format")
	if err := checkFormat(format, formatText, formatJSON, formatTable, formatMarkdown, formatCSV); err != nil {
		return err
	}
	summary, _ := fl.GetBool("summary")
	legacy, _ := fl.GetBool("legacy")
	doHash, _ := fl.GetBool("hash")
	jobs, _ := fl.GetInt("jobs")
	if jobs < 1 {
		jobs = 1
	}
	set, err := loadRules(a.rulesDirFor(cmd))
	if err != nil {
		return err
	}
	symPath, _ := a.effectiveSymbolPath(cmd)
	sym, images, err := a.newSymbolizer(symPath, a.symbolStoreOptions(cmd))
	if err != nil {
		return err
	}

	paths, expandErrs := expandDumpArgs(args)
	for _, e := range expandErrs {
		fmt.Fprintf(a.stderr, "kdtriage: %v\n", e)
	}
	opts := triage.Options{Rules: set, Log: a.log, Symbols: sym, Images: images, LegacyBucket: legacy || format != formatText}

	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	// Text and JSON stream in input order as results arrive; the table,
	// CSV, Markdown and summary views need every result first.
	streaming := !summary && (format == formatText || format == formatJSON)
	var reports []*triage.Report
	failed := len(expandErrs)
	// The counter is drawn on stderr when it is a terminal, and erased
	// before anything else is written, so that it never shares a line with
	// a report or an error on the same terminal.
	progress := a.stderrTTY && len(paths) > 1
	done := 0
	emitted := 0
	var outErr error
	if progress {
		fmt.Fprintf(a.stderr, "analysing 0/%d", len(paths))
	}
	analyzeAll(ctx, paths, jobs, func(path string) (*triage.Report, error) {
		return analyzeDumpFile(ctx, path, doHash, opts)
	}, func(r analyzeResult) {
		done++
		if progress {
			fmt.Fprint(a.stderr, "\r\033[K")
			defer func() {
				if done < len(paths) {
					fmt.Fprintf(a.stderr, "analysing %d/%d", done, len(paths))
				}
			}()
		}
		if r.err != nil {
			failed++
			fmt.Fprintf(a.stderr, "kdtriage: %s: %v\n", r.path, pathErr(r.err))
			return
		}
		if !streaming {
			reports = append(reports, r.rep)
			return
		}
		if outErr != nil {
			return
		}
		switch format {
		case formatJSON:
			outErr = r.rep.WriteJSON(a.stdout, false)
		default:
			if emitted > 0 {
				fmt.Fprintln(a.stdout)
			}
			outErr = r.rep.WriteText(a.stdout, triage.TextOptions{Legacy: legacy})
		}
		emitted++
	})
	if outErr != nil {
		return outErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !streaming && len(reports) > 0 {
		if err := writeReports(a.stdout, format, summary, reports); err != nil {
			return err
		}
	}
	if failed > 0 {
		return &exitError{code: exitBadDump}
	}
	return nil
}

// writeReports renders the collected views.
func writeReports(w io.Writer, format string, summary bool, reports []*triage.Report) error {
	if summary {
		f := format
		if f == formatText || f == formatTable {
			f = "table"
		}
		return triage.WriteSummary(w, f, triage.Summarize(reports))
	}
	switch format {
	case formatCSV:
		return triage.WriteCSV(w, reports)
	case formatMarkdown:
		return triage.WriteMarkdown(w, reports)
	}
	return triage.WriteTable(w, reports)
}

// newSymbolizer builds the symbol lookup and the image provider for a
// symbol path; an empty path gives neither (frames stay module+offset and
// nothing is fetched from the network).
func (a *app) newSymbolizer(symPath string, opts symbols.Options) (triage.Symbolizer, stack.Images, error) {
	if symPath == "" {
		return nil, nil, nil
	}
	p, err := symbols.ParsePath(symPath)
	if err != nil {
		return nil, nil, fmt.Errorf("symbol path: %w", err)
	}
	warnMissingSymbolDirs(a.log, p)
	chain, err := symbols.NewChain(p, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("symbol path: %w", err)
	}
	sym := symbols.NewSymbolizer(symbols.SymbolizerOptions{Store: chain, Log: a.log})
	return triage.FromSymbols(sym), triage.StoreImages(chain), nil
}

// loadRules returns the embedded defaults, with the rule files of dir
// layered over them when dir is set.
func loadRules(dir string) (*rules.Set, error) {
	def, err := rules.Default()
	if err != nil {
		return nil, fmt.Errorf("embedded rules: %w", err)
	}
	if dir == "" {
		return def, nil
	}
	user, err := loadRuleDir(dir)
	if err != nil {
		return nil, err
	}
	return rules.Merge(def, user), nil
}

// expandDumpArgs turns the arguments into a list of files: files as
// given, directories as every *.dmp file under them in name order.
func expandDumpArgs(args []string) ([]string, []error) {
	var out []string
	var errs []error
	for _, arg := range args {
		st, err := os.Stat(arg)
		if err != nil {
			// "x.dmp: no such file or directory", not "stat x.dmp: ...".
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = fmt.Errorf("%s: %w", arg, pe.Err)
			}
			errs = append(errs, err)
			continue
		}
		if !st.IsDir() {
			out = append(out, arg)
			continue
		}
		var found []string
		err = filepath.WalkDir(arg, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				errs = append(errs, err)
				return nil
			}
			if !d.IsDir() && strings.EqualFold(filepath.Ext(p), ".dmp") {
				found = append(found, p)
			}
			return nil
		})
		if err != nil {
			errs = append(errs, err)
		}
		if len(found) == 0 {
			errs = append(errs, fmt.Errorf("%s: no .dmp files in the directory", arg))
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, errs
}

// analyzeAll runs fn over paths with up to jobs goroutines and calls emit
// once per path, in input order, from the calling goroutine.
func analyzeAll(ctx context.Context, paths []string, jobs int, fn func(string) (*triage.Report, error), emit func(analyzeResult)) {
	if len(paths) == 0 {
		return
	}
	jobs = min(jobs, len(paths))
	results := make([]chan analyzeResult, len(paths))
	for i := range results {
		results[i] = make(chan analyzeResult, 1)
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r := analyzeResult{path: paths[i]}
				if err := ctx.Err(); err != nil {
					r.err = err
				} else {
					r.rep, r.err = fn(paths[i])
				}
				results[i] <- r
			}
		}()
	}
	go func() {
		defer close(next)
		for i := range paths {
			select {
			case next <- i:
			case <-ctx.Done():
				for j := i; j < len(paths); j++ {
					results[j] <- analyzeResult{path: paths[j], err: ctx.Err()}
				}
				return
			}
		}
	}()
	for i := range paths {
		emit(<-results[i])
	}
	wg.Wait()
}

// analyzeDumpFile opens, hashes and analyses one file.
func analyzeDumpFile(ctx context.Context, path string, doHash bool, opts triage.Options) (*triage.Report, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, errors.New("is a directory")
	}
	opts.Source = triage.SourceInfo{File: path, Size: st.Size()}
	if doHash {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(fh, 0, st.Size())); err != nil {
			return nil, err
		}
		opts.Source.SHA256 = hex.EncodeToString(h.Sum(nil))
	}
	d, err := kdump.NewAny(fh, st.Size())
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return triage.Analyze(ctx, d, opts)
}
