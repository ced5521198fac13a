package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/kdump/minidump"
	"github.com/kdtriage/kdtriage/triage"
)

// Analyzer analyses one dump file. Implementations must be safe for
// concurrent use by several worker slots.
type Analyzer interface {
	// Analyze analyses the dump at path; job carries its identity and
	// endpoint metadata. Errors are classified with IsPermanent.
	Analyze(ctx context.Context, path string, job *Job) (*Result, error)
	// RuleSetHash is the hash of the rule set the next Analyze call uses.
	RuleSetHash() string
	// Version identifies the analysis code; it is part of the report ID.
	Version() string
}

// Result is what the pipeline needs from an analysis.
type Result struct {
	// Report is the analyzer's JSON report.
	Report json.RawMessage
	// Bucket is the FAILURE_BUCKET_ID and Hash its FAILURE_ID_HASH.
	Bucket, Hash string
	// Severity and Owner route the report.
	Severity, Owner string
	// RuleSetHash is the hash of the rule set that produced the report.
	RuleSetHash string
}

// PermanentError marks an error that retrying cannot fix: the dump itself
// is bad or unsupported.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a PermanentError (nil stays nil).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err is a property of the dump, not of the
// environment: kdump.ErrNotADump, kdump.ErrEmpty, kdump.ErrZeroed,
// kdump.ErrUnsupported, kdump.ErrUserMode, kdump.ErrLegacyUserDump,
// minidump.ErrNotMinidump, minidump.ErrVersion, any *kdump.FormatError or
// *minidump.FormatError, or an error wrapped with Permanent. Everything else (I/O, NATS timeouts,
// cancellation) is transient and retried.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	var pe *PermanentError
	var fe *kdump.FormatError
	var mfe *minidump.FormatError
	switch {
	case errors.As(err, &pe), errors.As(err, &fe), errors.As(err, &mfe):
		return true
	case errors.Is(err, kdump.ErrNotADump), errors.Is(err, kdump.ErrEmpty),
		errors.Is(err, kdump.ErrZeroed), errors.Is(err, kdump.ErrUnsupported),
		errors.Is(err, kdump.ErrUserMode), errors.Is(err, kdump.ErrLegacyUserDump),
		errors.Is(err, minidump.ErrNotMinidump), errors.Is(err, minidump.ErrVersion):
		return true
	}
	return false
}

// IsTransient reports whether err is worth retrying: any error that is not
// permanent (I/O, network, NATS timeouts, cancellation).
func IsTransient(err error) bool { return err != nil && !IsPermanent(err) }

// failureKind names a permanent error for the failure bucket.
func failureKind(err error) string {
	var fe *kdump.FormatError
	switch {
	case errors.Is(err, kdump.ErrEmpty):
		return "EMPTY_DUMP"
	case errors.Is(err, kdump.ErrZeroed):
		return "ZEROED_DUMP"
	case errors.Is(err, kdump.ErrNotADump):
		return "NOT_A_DUMP"
	case errors.Is(err, kdump.ErrUserMode), errors.Is(err, kdump.ErrUnsupported),
		errors.Is(err, kdump.ErrLegacyUserDump), errors.Is(err, minidump.ErrVersion):
		return "UNSUPPORTED_DUMP"
	case errors.As(err, &fe), errors.As(err, new(*minidump.FormatError)):
		return "CORRUPT_DUMP"
	case errors.Is(err, errDigestMismatch):
		return "DIGEST_MISMATCH"
	case errors.Is(err, errMissingObject):
		return "MISSING_DUMP"
	case errors.Is(err, errAnalyzerPanic):
		return "ANALYZER_CRASH"
	case errors.Is(err, errMaxDeliveries):
		return "MAX_DELIVERIES"
	case errors.Is(err, errBadJob):
		return "BAD_JOB"
	}
	return "ANALYSIS_FAILED"
}

// failureBucket is the bucket of a failure report.
func failureBucket(err error) string { return "KDTRIAGE_" + failureKind(err) }

// Errors the pipeline itself classifies as permanent.
var (
	errDigestMismatch = errors.New("dump bytes do not match their SHA-256 key")
	errMissingObject  = errors.New("dump not in the object store")
	errAnalyzerPanic  = errors.New("analyzer panicked")
	errMaxDeliveries  = errors.New("maximum deliveries exceeded")
	errBadJob         = errors.New("malformed job message")
)

// Reloader is implemented by analyzers whose rules can be reloaded while
// the workers run; Run calls Reload when a rule file changes.
type Reloader interface {
	Reload() error
}

// KdumpAnalyzer is a kdump-only analysis (no stack walk, no rules engine),
// kept as a cheap fallback and a baseline for pipeline benchmarks: it opens the dump, takes the bug-check code and the module
// containing the faulting instruction pointer and derives a coarse bucket
// "0x<code>_<module>" ("0x<code>_UNKNOWN_MODULE" when the IP is in no
// module). Its rule-set hash is the SHA-256 of the rule files in RulesDir
// (see RuleFiles), so a rule change still yields new report IDs.
type KdumpAnalyzer struct {
	dir   string
	rules atomic.Pointer[string]
}

// NewKdumpAnalyzer returns a KdumpAnalyzer whose rule-set hash is that of
// the rule files in rulesDir (may be empty).
func NewKdumpAnalyzer(rulesDir string) (*KdumpAnalyzer, error) {
	a := &KdumpAnalyzer{dir: rulesDir}
	return a, a.Reload()
}

// Reload implements Reloader: it rehashes the rule directory.
func (a *KdumpAnalyzer) Reload() error {
	h, err := HashRuleDir(a.dir)
	if err != nil {
		return err
	}
	a.rules.Store(&h)
	return nil
}

// RuleSetHash implements Analyzer.
func (a *KdumpAnalyzer) RuleSetHash() string {
	if p := a.rules.Load(); p != nil {
		return *p
	}
	return ""
}

// Version implements Analyzer.
func (a *KdumpAnalyzer) Version() string { return "kdump-basic/1" }

// kdumpReport is the JSON report of the KdumpAnalyzer.
type kdumpReport struct {
	Analyzer     string   `json:"analyzer"`
	Format       string   `json:"format"`
	Machine      string   `json:"machine"`
	DumpType     string   `json:"dump_type"`
	BugCheckCode string   `json:"bugcheck_code"`
	BugCheckArgs []string `json:"bugcheck_args"`
	OSBuild      uint32   `json:"os_build"`
	Module       string   `json:"module_name,omitempty"`
	IP           string   `json:"faulting_ip,omitempty"`
	Bucket       string   `json:"failure_bucket_id"`
	Hash         string   `json:"failure_id_hash"`
	Modules      int      `json:"module_count"`
	Problems     []string `json:"problems,omitempty"`
}

// Analyze implements Analyzer.
func (a *KdumpAnalyzer) Analyze(ctx context.Context, path string, _ *Job) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := kdump.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := f.Header()
	bc := f.BugCheck()
	r := kdumpReport{
		Analyzer:     a.Version(),
		Format:       fmt.Sprint(f.Format()),
		Machine:      fmt.Sprint(f.Machine()),
		DumpType:     fmt.Sprint(h.DumpType),
		BugCheckCode: fmt.Sprintf("0x%X", bc.Code),
		OSBuild:      h.MinorVersion,
	}
	for _, p := range bc.Params {
		r.BugCheckArgs = append(r.BugCheckArgs, fmt.Sprintf("0x%x", p))
	}
	mods, merr := f.Modules()
	r.Modules = len(mods)
	if merr != nil {
		r.Problems = append(r.Problems, "modules: "+merr.Error())
	}
	if c, cerr := f.Context(); cerr == nil && c != nil {
		ip := c.IP()
		r.IP = fmt.Sprintf("0x%x", ip)
		if m := kdump.ModuleAt(mods, ip); m != nil {
			r.Module = strings.TrimSuffix(strings.ToLower(m.Name), filepath.Ext(m.Name))
		}
	} else if cerr != nil {
		r.Problems = append(r.Problems, "context: "+cerr.Error())
	}
	for _, p := range f.Problems() {
		r.Problems = append(r.Problems, p.Error())
	}
	mod := r.Module
	if mod == "" {
		mod = "UNKNOWN_MODULE"
	}
	r.Bucket = fmt.Sprintf("0x%X_%s", bc.Code, mod)
	r.Hash = triage.FailureIDHash(triage.SourceKernel, r.Bucket)
	data, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return &Result{
		Report:      data,
		Bucket:      r.Bucket,
		Hash:        r.Hash,
		Severity:    "high",
		Owner:       "MachineOwner",
		RuleSetHash: a.RuleSetHash(),
	}, nil
}

// RuleFiles lists the rule files (*.yaml, *.yml) of dir in name order.
func RuleFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if e.Type().IsRegular() && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			out = append(out, filepath.Join(dir, n))
		}
	}
	sort.Strings(out)
	return out, nil
}
