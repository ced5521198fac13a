package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kdtriage/kdtriage/rules"
	"github.com/kdtriage/kdtriage/triage"
)

const rulesLong = `Work with rule files: the YAML files support engineers edit to say who owns
a crash, which frames are never blamed and what a bucket's tags, known issue,
KB link, remediation and severity are. See docs/rules.md.

Rules come in layers: the embedded defaults (the kernel's bug-check, trap and
exception plumbing, last-resort owners for nt and hal, shipped knowledge),
then the *.yaml files of --rules DIR (config key rules.dir, environment
KDTRIAGE_RULES_DIR) on top.`

// rulesCommand builds "kdtriage rules". analyze runs one dump through the
// real analysis for "rules test"; nil leaves that subcommand reporting that
// it is not available.
func (a *app) rulesCommand(analyze rules.AnalyzeFunc) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Lint, explain, test and import rule files",
		Long:  rulesLong,
		Example: `  kdtriage rules lint ./rules
  kdtriage rules explain nt!KeBugCheckEx
  kdtriage rules explain atikmdag!foo --code 0xA0000001 --rules ./rules
  kdtriage rules test --rules ./rules cases.yaml
  kdtriage rules import-triage-ini triage.ini -o rules/10-triage.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	pf := cmd.PersistentFlags()
	pf.String("rules", "", "directory (or file) of rule files layered over the embedded defaults (config: rules.dir, env: KDTRIAGE_RULES_DIR)")
	pf.Bool("no-defaults", false, "leave out the embedded default rules")
	cmd.AddCommand(a.rulesLintCommand(), a.rulesExplainCommand(), a.rulesTestCommand(analyze), a.rulesImportCommand())
	return cmd
}

// triageCaseAnalyzer is the AnalyzeFunc for "rules test": the real
// analysis (triage.Analyze through analyzeDumpFile) of one dump with the
// rule set under test. Wire it as a.rulesCommand(a.triageCaseAnalyzer()).
func (a *app) triageCaseAnalyzer() rules.AnalyzeFunc {
	return func(ctx context.Context, path string, set *rules.Set) (rules.CaseResult, error) {
		rep, err := analyzeDumpFile(ctx, path, false, triage.Options{Rules: set, Log: a.log})
		if err != nil {
			return rules.CaseResult{}, err
		}
		return rules.CaseResult{
			Bucket:     rep.FailureBucketID,
			Owner:      rep.Followup,
			Image:      rep.Culprit.Image,
			Tags:       rep.Rules.Tags,
			KnownIssue: rep.Rules.KnownIssue,
			Severity:   rep.Rules.Severity,
		}, nil
	}
}

// rulesDirFor resolves the rule directory: --rules, then KDTRIAGE_RULES_DIR,
// then rules.dir from the configuration file.
func (a *app) rulesDirFor(cmd *cobra.Command) string {
	if f := cmd.Flags().Lookup("rules"); f != nil && f.Changed {
		return f.Value.String()
	}
	if a.v == nil {
		return ""
	}
	// The root command binds every flag under its own name, so the key
	// "rules" is a flag and shadows the nested key rules.dir; read the
	// environment and the config file's rules section directly.
	if err := a.v.BindEnv("rules_dir_env", "KDTRIAGE_RULES_DIR"); err == nil {
		if d := a.v.GetString("rules_dir_env"); d != "" {
			return d
		}
	}
	if d := a.v.GetString("rules.dir"); d != "" {
		return d
	}
	if m, ok := a.v.Get("rules").(map[string]any); ok {
		if d, ok := m["dir"].(string); ok {
			return d
		}
	}
	return ""
}

// rulesSet loads the rule layers for a rules subcommand.
func (a *app) rulesSet(cmd *cobra.Command) (*rules.Set, error) {
	noDef, _ := cmd.Flags().GetBool("no-defaults")
	var layers []*rules.Set
	if !noDef {
		def, err := rules.Default()
		if err != nil {
			return nil, fmt.Errorf("embedded rules: %w", err)
		}
		layers = append(layers, def)
	}
	if dir := a.rulesDirFor(cmd); dir != "" {
		user, err := loadRuleDir(dir)
		if err != nil {
			return nil, err
		}
		layers = append(layers, user)
	}
	if len(layers) == 0 {
		return rules.Merge(), nil
	}
	return rules.Merge(layers...), nil
}

func (a *app) rulesLintCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "lint [DIR|FILE...]",
		Short: "Check rule files; print file:line:column: message for every problem",
		Long: `Check rule files and print every problem as file:line:column: message: YAML
syntax, unknown keys, bad frame patterns and globs, bad numbers, duplicate ids,
unknown severities, machines and kinds, impossible ranges and masks, rules that
can never match or do nothing. Arguments are rule directories or files; with
none, the --rules directory (or, without one, the embedded defaults) is checked.
The exit code is 1 when there are problems.`,
		Example: `  kdtriage rules lint                       # the embedded defaults, or --rules / rules.dir
  kdtriage rules lint ./rules
  kdtriage rules lint rules/10-teams.yaml rules/20-known-issues.yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				if dir := a.rulesDirFor(cmd); dir != "" {
					args = []string{dir}
				}
			}
			var all rules.ErrorList
			var sets []*rules.Set
			if len(args) == 0 {
				s, err := rules.Default()
				if err != nil {
					return lintFailure(err, &all)
				}
				sets = append(sets, s)
			}
			for _, arg := range args {
				s, err := loadRuleDir(arg)
				if err != nil {
					if e := lintFailure(err, &all); e != nil {
						return e
					}
					continue
				}
				sets = append(sets, s)
			}
			for _, e := range all {
				fmt.Fprintln(a.stdout, e.Error())
			}
			if len(all) > 0 {
				return &exitError{code: exitFailure, err: fmt.Errorf("rules lint: %d problem(s)", len(all))}
			}
			for _, s := range sets {
				fmt.Fprintf(a.stdout, "ok: %d rules in %s (hash %s)\n", s.Len(), strings.Join(s.Files(), ", "), s.Hash())
			}
			return nil
		},
	}
}

// lintFailure collects an ErrorList, or returns any other error.
func lintFailure(err error, all *rules.ErrorList) error {
	var list rules.ErrorList
	if errors.As(err, &list) {
		*all = append(*all, list...)
		return nil
	}
	return err
}

func (a *app) rulesExplainCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "explain module!function | module!function+offset | module+offset",
		Short: "Show every rule that matches a frame, which one wins and why",
		Long: `Show how the rules treat one frame, like WinDbg's !owner: every owner rule that
matches (in precedence order, the winner marked *), why each loser lost, the
other frame rules and crash-level rules that fire, rules that would match with
a different crash, and the precedence order itself. Crash conditions are
evaluated against the --code, --p1..--p4, --machine, --build, --kind and
--exception flags; image, version and timestamp rules against --image,
--version and --timestamp.`,
		Example: `  kdtriage rules explain nt!KeBugCheckEx
  kdtriage rules explain --rules ./rules atikmdag!foo --code 0xA0000001
  kdtriage rules explain mydrv+0x1a2b --image mydrv.sys --version 2.1.0.7 --code 0xD1 --p4 0xfffff80412341a2b`,
		Args: exactArgs("one frame: module!function, module!function+offset or module+offset"),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := a.rulesSet(cmd)
			if err != nil {
				return err
			}
			in, err := explainInput(cmd)
			if err != nil {
				return err
			}
			fr, err := parseFrameArg(args[0])
			if err != nil {
				return err
			}
			mod := fr.Module
			img, _ := cmd.Flags().GetString("image")
			if img == "" {
				img = fr.Image
			}
			ver, _ := cmd.Flags().GetString("version")
			ts, err := parseFlagNumber(cmd, "timestamp", 32)
			if err != nil {
				return err
			}
			if img != "" || ver != "" || ts != 0 {
				fr.Image = img
				in.Modules = []rules.Module{{Name: mod, Image: img, Version: ver, Timestamp: uint32(ts)}}
			}
			ex := set.Explain(in, fr)
			fmt.Fprintf(a.stdout, "rule set: %d rules, hash %s\n", set.Len(), set.Hash())
			_, err = fmt.Fprint(a.stdout, ex.String())
			return err
		},
	}
	f := cmd.Flags()
	f.String("code", "", "bug-check code (hex with 0x, or decimal); _M variants are folded")
	for i := 1; i <= 4; i++ {
		f.String(fmt.Sprintf("p%d", i), "", fmt.Sprintf("bug-check parameter %d", i))
	}
	f.String("machine", "x64", "machine: x64, x86 or arm64")
	f.Uint32("build", 0, "OS build number")
	f.String("kind", "kernel", "dump kind: kernel or user")
	f.String("exception", "", "exception code")
	f.String("image", "", "image file name of the frame's module (mydrv.sys), for image rules")
	f.String("version", "", "file version of the frame's module (a.b.c.d), for version rules")
	f.String("timestamp", "", "PE TimeDateStamp of the frame's module, for timestamp rules")
	return cmd
}

// parseFrameArg reads the frame "rules explain" is asked about, in any form
// a stack or a report shows: module!function, module!function+0x1d,
// module+0x12d0, module. A "+" is taken for an offset only when a hex
// number follows it (C++'s operator+ stays a name). A module written as an
// image file (amdppm.sys!Fn) is looked up under its debugger name
// (amdppm) with that image, as the analysis names frames.
func parseFrameArg(arg string) (rules.Frame, error) {
	sym := arg
	if i := strings.LastIndexByte(sym, '+'); i >= 0 && isHexOffset(sym[i+1:]) {
		sym = sym[:i]
	}
	mod, fn, _ := strings.Cut(sym, "!")
	if mod == "" {
		return rules.Frame{}, fmt.Errorf("explain: %q has no module; write module!function, module!function+0xoff or module", arg)
	}
	fr := rules.Frame{Module: mod, Function: fn}
	if i := strings.LastIndexByte(mod, '.'); i > 0 {
		switch strings.ToLower(mod[i:]) {
		case ".sys", ".exe", ".dll":
			fr.Module, fr.Image = mod[:i], mod
		}
	}
	return fr, nil
}

// isHexOffset reports whether s is a hex offset: 0x1d or 1d.
func isHexOffset(s string) bool {
	s = strings.TrimPrefix(strings.ToLower(s), "0x")
	if s == "" {
		return false
	}
	_, err := strconv.ParseUint(s, 16, 64)
	return err == nil
}

// parseFlagNumber reads a decimal or 0x-hex number flag ("" is 0).
func parseFlagNumber(cmd *cobra.Command, name string, bits int) (uint64, error) {
	s, _ := cmd.Flags().GetString(name)
	if s == "" {
		return 0, nil
	}
	var v uint64
	var err error
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		v, err = strconv.ParseUint(h, 16, bits)
	} else {
		v, err = strconv.ParseUint(s, 10, bits)
	}
	if err != nil {
		return 0, fmt.Errorf("--%s %q: not a %d-bit number (decimal or 0x hex)", name, s, bits)
	}
	return v, nil
}

// explainInput builds the crash described by the explain flags.
func explainInput(cmd *cobra.Command) (rules.Input, error) {
	f := cmd.Flags()
	in := rules.Input{}
	num := func(name string, bits int) (uint64, error) { return parseFlagNumber(cmd, name, bits) }
	code, err := num("code", 32)
	if err != nil {
		return in, err
	}
	in.Code = uint32(code)
	for i := range in.Params {
		if in.Params[i], err = num(fmt.Sprintf("p%d", i+1), 64); err != nil {
			return in, err
		}
	}
	exc, err := num("exception", 32)
	if err != nil {
		return in, err
	}
	in.ExceptionCode = uint32(exc)
	in.Machine, _ = f.GetString("machine")
	in.OSBuild, _ = f.GetUint32("build")
	switch k, _ := f.GetString("kind"); strings.ToLower(k) {
	case "kernel":
		in.Kind = rules.KindKernel
	case "user":
		in.Kind = rules.KindUser
	default:
		return in, fmt.Errorf("--kind %q: use kernel or user", k)
	}
	return in, nil
}

func (a *app) rulesTestCommand(analyze rules.AnalyzeFunc) *cobra.Command {
	return &cobra.Command{
		Use:   "test CASES.yaml...",
		Short: "Analyse sample dumps and check their bucket, owner and tags",
		Long: `Run rule tests: each case names a dump (relative to the cases file) and the
expected bucket, owner, image, known issue, severity and tags (tags must be
present, no_tags absent):

  cases:
    - name: amd display driver
      dump: dumps/081514-18312-01.dmp
      expect:
        bucket: 0xA0000001_IMAGE_atikmdag.sys
        owner: AMD_Display_Driver
        tags: [display]

Every case is analysed with the current rules; a case whose result differs
(for example because a rule change moved its bucket) fails, and the exit code
is 1.`,
		Example: `  kdtriage rules test --rules ./rules cases.yaml
  kdtriage rules test --no-defaults --rules ./rules tests/*.yaml`,
		Args: minOneArg("one or more rule test case files (CASES.yaml)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if analyze == nil {
				return errors.New("rules test: this build has no analysis wired in")
			}
			set, err := a.rulesSet(cmd)
			if err != nil {
				return err
			}
			var all []rules.Case
			for _, p := range args {
				cs, err := rules.LoadCases(p)
				if err != nil {
					return errors.New(pathErrorText(err))
				}
				all = append(all, cs...)
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			out := rules.RunCases(ctx, all, set, analyze)
			failed := 0
			for _, o := range out {
				if o.Passed() {
					fmt.Fprintf(a.stdout, "PASS %s\n", o.Case.Name)
					continue
				}
				failed++
				fmt.Fprintf(a.stdout, "FAIL %s (%s)\n", o.Case.Name, o.Case.Source)
				if o.Err != nil {
					fmt.Fprintf(a.stdout, "    analysis failed: %v\n", o.Err)
				}
				for _, f := range o.Failures {
					fmt.Fprintf(a.stdout, "    %s\n", f)
				}
			}
			fmt.Fprintf(a.stdout, "%d passed, %d failed (rule set hash %s)\n", len(out)-failed, failed, set.Hash())
			if failed > 0 {
				return &exitError{code: exitFailure, err: fmt.Errorf("rules test: %d of %d case(s) failed", failed, len(out))}
			}
			return nil
		},
	}
}

func (a *app) rulesImportCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import-triage-ini FILE",
		Short: "Convert a WinDbg triage.ini into a rule file",
		Long: `Convert a WinDbg triage.ini (Module[!Function]=Owner lines) into a YAML rule
file: each line becomes an entry of the owners section with the comments above
it kept and its source line noted; a repeated pattern keeps its first owner; a
"*" inside a name (a literal for the debugger) becomes a rule with escaped
globs. Prints to stdout, or to -o FILE. Lines that cannot be converted are
reported as file:line:column: message and make the exit code 1.`,
		Example: `  kdtriage rules import-triage-ini triage.ini -o rules/10-triage.yaml
  kdtriage rules import-triage-ini "C:/Program Files (x86)/Windows Kits/10/Debuggers/x64/triage/triage.ini"`,
		Args: exactArgs("one triage.ini file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			fh, err := os.Open(args[0])
			if err != nil {
				return errors.New(pathErrorText(err))
			}
			defer fh.Close()
			out, errs := rules.ImportTriageINI(args[0], fh)
			for _, e := range errs {
				fmt.Fprintln(a.stderr, e.Error())
			}
			if out == nil {
				return &exitError{code: exitFailure, err: errors.New("import-triage-ini: nothing converted")}
			}
			// The output must load: check before writing it anywhere.
			if _, err := rules.Parse(args[0]+" (converted)", out); err != nil {
				return fmt.Errorf("import-triage-ini: converted file does not load: %w", err)
			}
			if dst, _ := cmd.Flags().GetString("output"); dst != "" {
				if err := os.WriteFile(dst, out, 0o644); err != nil {
					return errors.New(pathErrorText(err))
				}
			} else if _, err := a.stdout.Write(out); err != nil {
				return err
			}
			if len(errs) > 0 {
				return &exitError{code: exitFailure, err: fmt.Errorf("import-triage-ini: %d line(s) not converted", len(errs))}
			}
			return nil
		},
	}
	cmd.Flags().StringP("output", "o", "", "write the rule file here instead of stdout")
	return cmd
}

// loadRuleDir is rules.LoadDir with messages a user can act on: a missing
// path is named without the "stat" of the system call, and a directory
// without any *.yaml / *.yml file (rules.LoadDir reads the top level only) is
// an error rather than a silently empty layer.
func loadRuleDir(dir string) (*rules.Set, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("rules: %s: %w: give a directory of *.yaml rule files, or one rule file", dir, pathErr(err))
	}
	if st.IsDir() {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("rules: %s: %w", dir, pathErr(err))
		}
		found := false
		for _, e := range ents {
			n := e.Name()
			if !e.IsDir() && !strings.HasPrefix(n, ".") && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("rules: %s: no *.yaml rule files in the directory", dir)
		}
	}
	return rules.LoadDir(dir)
}
