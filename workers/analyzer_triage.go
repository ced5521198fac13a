package workers

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/kdtriage/kdtriage/kdump"
	"github.com/kdtriage/kdtriage/rules"
	"github.com/kdtriage/kdtriage/triage"
)

// TriageAnalyzer runs the full analysis (package triage) of kernel and
// user-mode dumps (kdump.OpenAny) with the embedded
// default rules merged with the rule files of a directory. The rule set is
// swapped atomically on Reload, so a reload never disturbs analyses in
// flight and every report names the rule set that produced it.
type TriageAnalyzer struct {
	dir  string
	base triage.Options
	set  atomic.Pointer[rules.Set]
}

// NewTriageAnalyzer loads the rules (embedded defaults, then rulesDir when
// not empty). base supplies the analysis options shared by every dump
// (Symbols, Images, LegacyBucket, Log); its Rules, Host and Source are
// replaced per dump.
func NewTriageAnalyzer(rulesDir string, base triage.Options) (*TriageAnalyzer, error) {
	a := &TriageAnalyzer{dir: rulesDir, base: base}
	return a, a.Reload()
}

// Reload implements Reloader. On error the previous rule set stays active.
func (a *TriageAnalyzer) Reload() error {
	def, err := rules.Default()
	if err != nil {
		return fmt.Errorf("default rules: %w", err)
	}
	set := def
	if a.dir != "" {
		user, err := rules.LoadDir(a.dir)
		if err != nil {
			return fmt.Errorf("rules %s: %w", a.dir, err)
		}
		set = rules.Merge(def, user)
	}
	a.set.Store(set)
	return nil
}

// RuleSetHash implements Analyzer.
func (a *TriageAnalyzer) RuleSetHash() string {
	if s := a.set.Load(); s != nil {
		return s.Hash()
	}
	return ""
}

// Version implements Analyzer.
func (a *TriageAnalyzer) Version() string {
	return fmt.Sprintf("triage/%d/%s", triage.SchemaVersion, triage.BucketSchemeVersion)
}

// Analyze implements Analyzer.
func (a *TriageAnalyzer) Analyze(ctx context.Context, path string, job *Job) (*Result, error) {
	set := a.set.Load()
	f, err := kdump.OpenAny(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	opts := a.base
	opts.Rules = set
	if job != nil {
		opts.Host = &triage.HostInfo{Hostname: job.Host, Tenant: job.Tenant, SourcePath: job.Path,
			CollectedAt: job.CollectedAt, Labels: job.Labels}
		opts.Source = triage.SourceInfo{File: job.Name, Size: job.Size, SHA256: job.SHA256}
	} else if fi, err := os.Stat(path); err == nil {
		opts.Source = triage.SourceInfo{File: path, Size: fi.Size()}
	}
	rep, err := triage.Analyze(ctx, f, opts)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(rep)
	if err != nil {
		return nil, err
	}
	owner := rep.Followup
	if owner == "" {
		owner = rep.Rules.Queue
	}
	sev := rep.Rules.Severity
	if sev == "" {
		sev = "unrated"
	}
	return &Result{
		Report:      data,
		Bucket:      rep.FailureBucketID,
		Hash:        rep.FailureIDHash,
		Severity:    sev,
		Owner:       owner,
		RuleSetHash: set.Hash(),
	}, nil
}
