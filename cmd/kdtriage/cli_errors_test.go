package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/kdtriage/kdtriage/kdump/kdumptest"
)

// TestErrorMessages checks that the common mistakes give one line on
// stderr that names the input and says what to do, with the documented exit
// code.
func TestErrorMessages(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.dmp")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	noDumps := filepath.Join(dir, "nodumps")
	if err := os.Mkdir(noDumps, 0o755); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.dmp")
	// A port nothing listens on: take a free one and close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "nats://" + l.Addr().String()
	l.Close()

	tests := []struct {
		name string
		args []string
		code int
		want string // the whole stderr, with dir as $D
	}{
		{"analyze no args", []string{"analyze"}, exitFailure,
			`kdtriage: analyze: give one or more dump files or directories (see "kdtriage analyze --help")`},
		{"info no args", []string{"info"}, exitFailure,
			`kdtriage: info: give one or more dump files or directories (see "kdtriage info --help")`},
		{"analyze missing", []string{"analyze", missing}, exitBadDump,
			`kdtriage: $D/missing.dmp: no such file or directory`},
		{"info missing", []string{"info", missing}, exitBadDump,
			`kdtriage: $D/missing.dmp: no such file or directory`},
		{"info empty directory", []string{"info", noDumps}, exitBadDump,
			`kdtriage: $D/nodumps: no .dmp files in the directory`},
		{"analyze bad format", []string{"analyze", "--format", "xml", empty}, exitFailure,
			`kdtriage: unknown --format "xml": use text, json, table, markdown or csv`},
		{"info bad format", []string{"info", "--format", "yaml", empty}, exitFailure,
			`kdtriage: unknown --format "yaml": use text, json, table, markdown or csv`},
		{"info bad hash", []string{"info", "--hash", "sometimes", empty}, exitFailure,
			`kdtriage: unknown --hash "sometimes": use auto, always or never`},
		{"rules lint missing", []string{"rules", "lint", missing}, exitFailure,
			`kdtriage: rules: $D/missing.dmp: no such file or directory: give a directory of *.yaml rule files, or one rule file`},
		{"rules lint no rule files", []string{"rules", "lint", noDumps}, exitFailure,
			`kdtriage: rules: $D/nodumps: no *.yaml rule files in the directory`},
		{"analyze rules without rule files", []string{"analyze", "--rules", noDumps, empty}, exitFailure,
			`kdtriage: rules: $D/nodumps: no *.yaml rule files in the directory`},
		{"agent watch a file", []string{"agent", "--watch", empty}, exitFailure,
			`kdtriage: --watch $D/empty.dmp: not a directory: give the directory the dumps are written to`},
		{"agent no watch", []string{"agent"}, exitFailure,
			`kdtriage: --watch DIR is required (config: agent.watch), e.g. --watch C:/Windows/Minidump`},
		{"symbols publics missing", []string{"symbols", "publics", filepath.Join("$D", "x.pdb")}, exitBadDump,
			`kdtriage: $D/x.pdb: no such file or directory`},
		{"symbols resolve missing", []string{"symbols", "resolve", "--pdb", filepath.Join("$D", "x.pdb"), "0x10"}, exitBadDump,
			`kdtriage: $D/x.pdb: no such file or directory`},
		{"symbols lookup missing", []string{"symbols", "lookup", missing, "0x10"}, exitBadDump,
			`kdtriage: $D/missing.dmp: no such file or directory`},
		{"symbols lookup directory", []string{"symbols", "lookup", noDumps, "0x10"}, exitBadDump,
			`kdtriage: $D/nodumps: is a directory: give one dump file`},
		{"feed bad format", []string{"feed", "--format", "json"}, exitFailure,
			`kdtriage: unknown --format "json": use ndjson`},
		{"symbols unknown subcommand", []string{"symbols", "lokup"}, exitFailure,
			`kdtriage: unknown command "lokup" for "kdtriage symbols"`},
		{"rules explain no frame", []string{"rules", "explain"}, exitFailure,
			`kdtriage: rules explain: give one frame: module!function, module!function+offset or module+offset (see "kdtriage rules explain --help")`},
		{"rules test missing cases", []string{"rules", "test", filepath.Join("$D", "cases.yaml")}, exitFailure,
			`kdtriage: $D/cases.yaml: no such file or directory`},
		{"rules import missing", []string{"rules", "import-triage-ini", filepath.Join("$D", "triage.ini")}, exitFailure,
			`kdtriage: $D/triage.ini: no such file or directory`},
		{"symbols lookup no address", []string{"symbols", "lookup", empty}, exitFailure,
			`kdtriage: symbols lookup: give a dump file and one or more addresses (see "kdtriage symbols lookup --help")`},
		{"submit no args", []string{"submit"}, exitFailure,
			`kdtriage: submit: give one or more dump files or directories (see "kdtriage submit --help")`},
		{"symbols publics no args", []string{"symbols", "publics"}, exitFailure,
			`kdtriage: symbols publics: give one PDB file (see "kdtriage symbols publics --help")`},
		{"symbols resolve no address", []string{"symbols", "resolve", "--pdb", "x.pdb"}, exitFailure,
			`kdtriage: symbols resolve: give one or more addresses (see "kdtriage symbols resolve --help")`},
		{"submit no server", []string{"submit", "--nats-url", closedURL, empty}, exitFailure,
			`kdtriage: connecting to ` + closedURL + `: nats: no servers available for connection: start one with "kdtriage serve --listen ` + strings.TrimPrefix(closedURL, "nats://") + `", or point --nats-url (config nats.url) at the pipeline's server`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				args[i] = strings.ReplaceAll(a, "$D", dir)
			}
			code, _, errOut := runCLI(t, args...)
			want := strings.ReplaceAll(tt.want, "$D", dir) + "\n"
			if code != tt.code || errOut != want {
				t.Errorf("code %d, stderr\n%q\nwant code %d, stderr\n%q", code, errOut, tt.code, want)
			}
		})
	}
}

// TestInfoDirectory checks that info, like analyze, takes a directory as
// every *.dmp file under it in name order, and that its table names files
// by base name while CSV keeps the path.
func TestInfoDirectory(t *testing.T) {
	dir := t.TempDir()
	paths := writeSynthetic(t, dir, kdumptest.Spec{Arch: kdumptest.AMD64}, kdumptest.Spec{Arch: kdumptest.ARM64})
	code, out, errOut := runCLI(t, "info", "--format", "csv", "--hash", "never", dir)
	if code != 0 {
		t.Fatalf("csv: code %d, stderr %q", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(paths)+1 {
		t.Fatalf("csv: %d lines for %d dumps:\n%s", len(lines), len(paths), out)
	}
	for i, p := range paths {
		if !strings.HasPrefix(lines[i+1], p+",") {
			t.Errorf("csv row %d = %q, want it to start with %s", i, lines[i+1], p)
		}
	}
	code, out, _ = runCLI(t, "info", "--format", "table", "--hash", "never", dir)
	if code != 0 || strings.Contains(out, dir) || !strings.Contains(out, filepath.Base(paths[0])) {
		t.Errorf("table: code %d, want base names, not %s:\n%s", code, dir, out)
	}
}

// TestMissingSymbolDirWarning checks that a symbol path directory that does
// not exist is named in a warning (analysis still runs), and an existing one
// is not.
func TestMissingSymbolDirWarning(t *testing.T) {
	dir := t.TempDir()
	paths := writeSynthetic(t, dir, kdumptest.Spec{Arch: kdumptest.AMD64})
	missing := filepath.Join(dir, "no-such-sym")
	tests := []struct {
		symPath string
		warn    bool
	}{
		{missing, true},
		{"srv*" + filepath.Join(dir, "cache") + "*" + missing, true},
		{dir, false},
		{"srv*" + filepath.Join(dir, "cache") + "*" + dir, false},
	}
	for _, tt := range tests {
		code, out, errOut := runCLI(t, "analyze", "--offline", "--format", "json", "--symbol-path", tt.symPath, paths[0])
		if code != 0 || strings.Count(out, "\n") != 1 {
			t.Errorf("%s: code %d, stdout %q, stderr %q", tt.symPath, code, out, errOut)
		}
		got := strings.Contains(errOut, "symbol path directory not found") && strings.Contains(errOut, missing)
		if got != tt.warn {
			t.Errorf("%s: warning = %v, want %v; stderr %q", tt.symPath, got, tt.warn, errOut)
		}
	}
}

// TestWorkerRulesDirSources checks that serve and worker take the rule
// directory from --rules, KDTRIAGE_RULES_DIR or the config key rules.dir, as
// their --help says (the config key and the environment were ignored).
func TestWorkerRulesDirSources(t *testing.T) {
	rulesDir, err := filepath.Abs(filepath.Join("..", "..", "configs", "rules"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "kdtriage.yaml")
	if err := os.WriteFile(cfg, []byte("rules:\n  dir: "+rulesDir+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  string
		args []string
	}{
		{"flag", "", []string{"--rules", rulesDir}},
		{"env", rulesDir, nil},
		{"config", "", []string{"--config", cfg}},
	}
	for _, cmdName := range []string{"serve", "worker"} {
		for _, tt := range tests {
			t.Run(cmdName+"/"+tt.name, func(t *testing.T) {
				t.Setenv("KDTRIAGE_RULES_DIR", tt.env)
				a := newApp(nil, &strings.Builder{}, &strings.Builder{})
				root := a.rootCommand()
				cmd, _, err := root.Find([]string{cmdName})
				if err != nil {
					t.Fatal(err)
				}
				if err := cmd.ParseFlags(tt.args); err != nil {
					t.Fatal(err)
				}
				if err := a.setup(cmd); err != nil {
					t.Fatal(err)
				}
				o, err := a.runOptions(cmd)
				if err != nil {
					t.Fatal(err)
				}
				if o.RulesDir != rulesDir {
					t.Errorf("RulesDir %q, want %q", o.RulesDir, rulesDir)
				}
			})
		}
	}
}

// TestInfoRowUserException checks that a user-mode dump's exception fills
// the Bug check and Name columns of info's rows (they were left empty).
func TestInfoRowUserException(t *testing.T) {
	corpus := corpusDir(t)
	p := filepath.Join(corpus, "user", "breakpad-ascii_read_av.dmp")
	code, out, errOut := runCLI(t, "info", "--format", "csv", "--hash", "never", p)
	if code != 0 {
		t.Fatalf("code %d, stderr %q", code, errOut)
	}
	if want := ",0xC0000005,EXCEPTION_ACCESS_VIOLATION,"; !strings.Contains(out, want) {
		t.Errorf("csv %q does not contain %q", out, want)
	}
}

// TestConnectAuthHint checks that a NATS server refusing the credentials
// gives an error that says which settings to check.
func TestConnectAuthHint(t *testing.T) {
	srv, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, Authorization: "s3cret", NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	url := "nats://" + srv.Addr().String()
	dir := t.TempDir()
	dump := filepath.Join(dir, "a.dmp")
	if err := os.WriteFile(dump, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, "submit", "--nats-url", url, "--token", "wrong", dump)
	if code != exitFailure || !strings.Contains(errOut, "uthorization") || !strings.Contains(errOut, "check --creds, --nkey, --user/--password or --token") {
		t.Errorf("code %d, stderr %q", code, errOut)
	}
}
