package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/kdtriage/kdtriage/workers"
)

const submitLong = `Upload dumps to the pipeline and queue them for analysis.

Each file is hashed (SHA-256), uploaded in chunks to the object store bucket
"dumps" under that hash unless it is already there, and announced with a job
on DUMPS whose Nats-Msg-Id is the hash, so a dump submitted twice is analysed
once. Directories are walked for --include files (default *.dmp).

Every job carries the host (--host, default this machine's name), the time
the dump was written (file modification time), its original path, the tenant
and --label KEY=VALUE pairs. One line per file is printed:
  <sha256> <uploaded|stored> <queued|duplicate> <path>`

func (a *app) submitCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "submit PATH...",
		Short: "Upload dumps to the pipeline and queue them for analysis",
		Long:  submitLong,
		Example: `  kdtriage submit --nats-url nats://triage:4222 C:/Windows/Minidump
  kdtriage submit --label ring=canary --label site=lab MEMORY.DMP`,
		Args: minOneArg("one or more dump files or directories"),
		RunE: a.runSubmit,
	}
	addNATSFlags(cmd, "NATS server URL(s) (default nats://127.0.0.1:4222)")
	addSubmitFlags(cmd)
	cmd.Flags().StringSlice("include", []string{"*.dmp"}, "file patterns taken from directories (case-insensitive)")
	return cmd
}

// addSubmitFlags adds the metadata and upload flags shared with agent.
func addSubmitFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("host", "", "host name recorded with the dumps (default: this machine's name; config: submit.host)")
	f.String("tenant", "", "tenant recorded with the dumps (config: submit.tenant)")
	f.StringArray("label", nil, "KEY=VALUE label recorded with the dumps (repeatable; config: submit.labels map)")
	f.String("bandwidth", "0", "upload bandwidth cap in bytes per second, e.g. 512KiB; 0: unlimited (config: submit.bandwidth)")
}

// submitMeta reads the metadata flags.
func (a *app) submitMeta(cmd *cobra.Command) (workers.Meta, error) {
	m := workers.Meta{Host: a.setting(cmd, "host", "submit.host"), Tenant: a.setting(cmd, "tenant", "submit.tenant")}
	if m.Host == "" {
		m.Host, _ = os.Hostname()
	}
	labels := map[string]string{}
	if a.v != nil {
		for k, v := range a.v.GetStringMapString("submit.labels") {
			labels[k] = v
		}
	}
	ls, _ := cmd.Flags().GetStringArray("label")
	for _, l := range ls {
		k, v, ok := strings.Cut(l, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t\r\n:") {
			return m, fmt.Errorf("--label %q: want KEY=VALUE", l)
		}
		labels[k] = v
	}
	if len(labels) > 0 {
		m.Labels = labels
	}
	return m, nil
}

func (a *app) newSubmitter(ctx context.Context, cmd *cobra.Command, js jetstream.JetStream) (*workers.Submitter, error) {
	bw, err := a.settingSize(cmd, "bandwidth", "submit.bandwidth")
	if err != nil {
		return nil, err
	}
	return workers.NewSubmitter(ctx, js, workers.SubmitOptions{BytesPerSecond: bw})
}

func (a *app) runSubmit(cmd *cobra.Command, args []string) error {
	ctx := cmd.Context()
	meta, err := a.submitMeta(cmd)
	if err != nil {
		return err
	}
	include, _ := cmd.Flags().GetStringSlice("include")
	files, bad := expandSubmitArgs(args, include)
	report := func() error {
		for _, err := range bad {
			fmt.Fprintln(a.stderr, "kdtriage submit:", pathErrorText(err))
		}
		if len(bad) > 0 {
			return &exitError{code: exitBadDump}
		}
		return nil
	}
	if len(files) == 0 {
		// Nothing to send (an empty Minidump directory is fine): say why
		// without waiting for a server.
		return report()
	}
	nc, err := a.connect(cmd, "kdtriage-submit")
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	sub, err := a.newSubmitter(ctx, cmd, js)
	if err != nil {
		return err
	}
	for _, f := range files {
		res, err := sub.Submit(ctx, f, meta)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var pe *fs.PathError
			if errors.As(err, &pe) || errors.Is(err, workers.ErrChangedWhileUploading) {
				bad = append(bad, err)
				continue
			}
			return err
		}
		up, q := "stored", "queued"
		if res.Uploaded {
			up = "uploaded"
		}
		if res.Duplicate {
			q = "duplicate"
		}
		fmt.Fprintf(a.stdout, "%s %s %s %s\n", res.SHA256, up, q, res.Path)
	}
	return report()
}

// pathErrorText words a file error as "path: reason" (not "stat path:
// reason", which names a system call the user never made).
func pathErrorText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Path + ": " + pe.Err.Error()
	}
	return err.Error()
}

// expandSubmitArgs lists the files to submit: files as given, directories
// walked for files matching include (case-insensitive), in name order.
func expandSubmitArgs(args, include []string) ([]string, []error) {
	var out []string
	var bad []error
	for _, arg := range args {
		fi, err := os.Stat(arg)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		if !fi.IsDir() {
			out = append(out, arg)
			continue
		}
		var found []string
		err = filepath.WalkDir(arg, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				bad = append(bad, err)
				return nil
			}
			if d.Type().IsRegular() && matchAny(include, d.Name()) {
				found = append(found, p)
			}
			return nil
		})
		if err != nil {
			bad = append(bad, err)
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, bad
}

func matchAny(patterns []string, name string) bool {
	n := strings.ToLower(name)
	for _, p := range patterns {
		if ok, _ := filepath.Match(strings.ToLower(p), n); ok {
			return true
		}
	}
	return false
}
