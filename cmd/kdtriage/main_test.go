package main

import (
	"bytes"
	"context"
	"github.com/kdtriage/kdtriage/kdump/kdumptest"
	"os"
	"path/filepath"
	"testing"
)

// runCLI runs the CLI in-process and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, bytes.NewReader(nil), &out, &errb)
	return code, out.String(), errb.String()
}

// corpusDir returns ../shared/corpus (or $KDTRIAGE_CORPUS) or skips.
func corpusDir(t *testing.T) string {
	t.Helper()
	return kdumptest.CorpusDir(t)
}

func TestVersionAndHelp(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	if code != 0 || out != "kdtriage dev\n" {
		t.Errorf("version: code %d, out %q", code, out)
	}
	code, out, _ = runCLI(t, "--help")
	if code != 0 || !bytes.Contains([]byte(out), []byte("KDTRIAGE_")) {
		t.Errorf("help: code %d, out %q", code, out)
	}
	code, _, errOut := runCLI(t, "no-such-command")
	if code != exitFailure || errOut == "" {
		t.Errorf("unknown command: code %d, stderr %q", code, errOut)
	}
}

func TestConfigFromEnvAndFile(t *testing.T) {
	t.Setenv("KDTRIAGE_LOG_LEVEL", "verbose-nonsense")
	code, _, errOut := runCLI(t, "version")
	if code != exitFailure || !bytes.Contains([]byte(errOut), []byte("unknown log level")) {
		t.Errorf("bad env log level: code %d, stderr %q", code, errOut)
	}
	t.Setenv("KDTRIAGE_LOG_LEVEL", "")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kdtriage.yaml")
	if err := os.WriteFile(cfg, []byte("log-level: also-nonsense\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, "--config", cfg, "version")
	if code != exitFailure || !bytes.Contains([]byte(errOut), []byte("also-nonsense")) {
		t.Errorf("config file log level: code %d, stderr %q", code, errOut)
	}
	// A flag beats the file.
	code, _, errOut = runCLI(t, "--config", cfg, "--log-level", "debug", "version")
	if code != 0 {
		t.Errorf("flag over file: code %d, stderr %q", code, errOut)
	}
}
