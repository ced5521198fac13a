package rules

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// CaseResult is what an analysis produced for one dump, as far as rule tests
// care.
type CaseResult struct {
	Bucket     string   // FAILURE_BUCKET_ID
	Owner      string   // Followup
	Image      string   // blamed image (IMAGE_NAME)
	Tags       []string // tags from the rules
	KnownIssue string   // known-issue id
	Severity   string   // severity name
}

// AnalyzeFunc analyses the dump at dumpPath with the rule set and returns
// the fields rule tests compare. The triage package provides the real one;
// the rules package never opens dumps itself.
type AnalyzeFunc func(ctx context.Context, dumpPath string, set *Set) (CaseResult, error)

// Expect is what a case expects. Nil fields are not checked.
type Expect struct {
	Bucket     *string  // exact FAILURE_BUCKET_ID (case-insensitive, as bucket identity is)
	Owner      *string  // exact owner
	Image      *string  // blamed image (case-insensitive)
	KnownIssue *string  // exact known-issue id ("" expects none)
	Severity   *string  // severity name
	Tags       []string // every one must be present
	NoTags     []string // none may be present
}

// Case is one rule test: a dump and what analysing it must give.
type Case struct {
	Name   string // case name (defaults to the dump's file name)
	Dump   string // dump path, resolved against the cases file's directory
	Expect Expect
	Source Source // where the case is defined
}

// CaseOutcome is the result of running one case.
type CaseOutcome struct {
	Case     Case
	Got      CaseResult
	Err      error    // the analysis failed
	Failures []string // one line per expectation that did not hold
}

// Passed reports whether the analysis ran and every expectation held.
func (o CaseOutcome) Passed() bool { return o.Err == nil && len(o.Failures) == 0 }

var (
	casesTopKeys = set("cases")
	caseKeys     = set("name", "dump", "expect")
	expectKeys   = set("bucket", "owner", "image", "known_issue", "severity", "tags", "no_tags")
)

// ParseCases reads a cases file:
//
//	cases:
//	  - name: amd display
//	    dump: ../dumps/081514-18312-01.dmp
//	    expect: {bucket: "0xA0000001_IMAGE_atikmdag.sys", owner: AMD_Display_Driver, tags: [display]}
//
// Relative dump paths are resolved against baseDir.
func ParseCases(name string, data []byte, baseDir string) ([]Case, error) {
	p := &parser{file: name}
	if len(data) > MaxFileSize {
		return nil, ErrorList{{File: name, Msg: "cases file is too large"}}
	}
	var doc yaml.Node
	if err := safeUnmarshal(data, &doc); err != nil {
		return nil, ErrorList{{File: name, Msg: err.Error()}}
	}
	if len(doc.Content) == 0 {
		return nil, ErrorList{{File: name, Msg: "no cases"}}
	}
	var cases []Case
	p.mapping(doc.Content[0], "a cases file", casesTopKeys, func(_ string, _, v *yaml.Node) {
		if v.Kind != yaml.SequenceNode {
			p.errorf(v, "cases must be a list")
			return
		}
		for _, item := range v.Content {
			c := Case{Source: Source{File: name, Line: item.Line, Column: item.Column}}
			p.mapping(item, "a case", caseKeys, func(key string, _, v *yaml.Node) {
				switch key {
				case "name":
					c.Name, _ = p.str(v)
				case "dump":
					c.Dump, _ = p.str(v)
				case "expect":
					p.expect(&c.Expect, v)
				}
			})
			if item.Kind != yaml.MappingNode {
				continue
			}
			if c.Dump == "" {
				p.errorf(item, "case has no dump path")
				continue
			}
			if !filepath.IsAbs(c.Dump) && baseDir != "" {
				c.Dump = filepath.Join(baseDir, c.Dump)
			}
			if c.Name == "" {
				c.Name = filepath.Base(c.Dump)
			}
			cases = append(cases, c)
		}
	})
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	if len(cases) == 0 {
		return nil, ErrorList{{File: name, Msg: "no cases"}}
	}
	return cases, nil
}

func (p *parser) expect(e *Expect, n *yaml.Node) {
	p.mapping(n, "expect", expectKeys, func(key string, _, v *yaml.Node) {
		switch key {
		case "tags", "no_tags":
			var out []string
			for _, t := range p.list(v) {
				if s, ok := p.str(t); ok {
					out = append(out, s)
				}
			}
			if key == "tags" {
				e.Tags = out
			} else {
				e.NoTags = out
			}
			return
		}
		s := ""
		if !(v.Kind == yaml.ScalarNode && v.Tag == "!!null") {
			var ok bool
			if s, ok = p.str(v); !ok {
				return
			}
		}
		switch key {
		case "bucket":
			e.Bucket = &s
		case "owner":
			e.Owner = &s
		case "image":
			e.Image = &s
		case "known_issue":
			e.KnownIssue = &s
		case "severity":
			if _, ok := ParseSeverity(s); !ok && s != "" {
				p.errorf(v, "unknown severity %q: use info, low, medium, high or critical", s)
			}
			e.Severity = &s
		}
	})
}

// LoadCases reads a cases file from disk; dump paths are relative to it.
func LoadCases(path string) ([]Case, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > MaxFileSize {
		return nil, fmt.Errorf("%s: cases file is too large", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseCases(path, data, filepath.Dir(path))
}

// RunCases analyses every case's dump with set and compares the results
// with the expectations. It stops early only when ctx is cancelled.
func RunCases(ctx context.Context, cases []Case, set *Set, analyze AnalyzeFunc) []CaseOutcome {
	out := make([]CaseOutcome, 0, len(cases))
	for _, c := range cases {
		o := CaseOutcome{Case: c}
		if err := ctx.Err(); err != nil {
			o.Err = err
			out = append(out, o)
			continue
		}
		o.Got, o.Err = analyze(ctx, c.Dump, set)
		if o.Err == nil {
			o.Failures = compare(c.Expect, o.Got)
		}
		out = append(out, o)
	}
	return out
}

func compare(e Expect, g CaseResult) []string {
	var f []string
	check := func(field string, want *string, got string, fold bool) {
		if want == nil {
			return
		}
		if *want == got || (fold && strings.EqualFold(*want, got)) {
			return
		}
		f = append(f, fmt.Sprintf("%s: want %q, got %q", field, *want, got))
	}
	check("bucket", e.Bucket, g.Bucket, true)
	check("owner", e.Owner, g.Owner, false)
	check("image", e.Image, g.Image, true)
	check("known_issue", e.KnownIssue, g.KnownIssue, false)
	check("severity", e.Severity, g.Severity, true)
	have := map[string]bool{}
	for _, t := range g.Tags {
		have[t] = true
	}
	var missing, extra []string
	for _, t := range e.Tags {
		if !have[t] {
			missing = append(missing, t)
		}
	}
	for _, t := range e.NoTags {
		if have[t] {
			extra = append(extra, t)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		f = append(f, fmt.Sprintf("tags: missing %s (got %s)", strings.Join(missing, ", "), strings.Join(g.Tags, ", ")))
	}
	if len(extra) > 0 {
		f = append(f, fmt.Sprintf("tags: unwanted %s present", strings.Join(extra, ", ")))
	}
	return f
}
