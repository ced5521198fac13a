package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/kdtriage/kdtriage/workers"
)

const agentLong = `Watch a dump directory on an endpoint and submit every finished dump.

A dump counts as finished when its size and modification time stay unchanged
for --settle and it can be opened. Before anything leaves the machine the local
policy applies, like Windows Error Reporting's: --consent must be on (off:
the agent only logs what it would send), --include / --exclude patterns on
the file name, small dumps (up to --small-limit, and every small memory dump)
always, larger dumps such as MEMORY.DMP only with --allow-full and up to
--max-size, uploads capped at --bandwidth bytes per second, TLS to the server
(--tls-ca, --tls-cert, --tls-key).

The agent remembers what it sent in --state (a small JSON file), retries with
exponential backoff while the server is unreachable, and never deletes a dump
unless --delete-after-submit is given.

It builds for Windows: GOOS=windows GOARCH=amd64 (or arm64) go build
./cmd/kdtriage, then run
  kdtriage.exe agent --watch C:\Windows\Minidump --consent --nats-url tls://triage.example:4222
(as a service: see configs/deploy/).`

func (a *app) agentCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent --watch DIR",
		Short: "Watch a dump directory and submit finished dumps under a local policy",
		Long:  agentLong,
		Example: `  kdtriage agent --watch C:/Windows/Minidump --consent --nats-url tls://triage:4222 --creds endpoint.creds
  kdtriage agent --watch C:/Windows --include MEMORY.DMP --allow-full --max-size 8GiB --bandwidth 2MiB --consent`,
		Args: cobra.NoArgs,
		RunE: a.runAgent,
	}
	f := cmd.Flags()
	f.String("watch", "", "directory to watch (config: agent.watch)")
	f.String("state", "", "state file remembering what was sent (default: user config dir/kdtriage/agent-state.json; config: agent.state)")
	f.Bool("consent", false, "allow dumps to leave this machine (config: agent.consent)")
	f.StringSlice("include", []string{"*.dmp"}, "file name patterns to send (config: agent.include)")
	f.StringSlice("exclude", nil, "file name patterns never sent (config: agent.exclude)")
	f.String("small-limit", "16MiB", "dumps up to this size are always eligible (config: agent.small_limit)")
	f.Bool("allow-full", false, "also send larger dumps (MEMORY.DMP: kernel, complete, bitmap) (config: agent.allow_full)")
	f.String("max-size", "0", "size cap for larger dumps, e.g. 8GiB; 0: none (config: agent.max_size)")
	f.Bool("delete-after-submit", false, "delete a dump once the server has it (config: agent.delete_after_submit)")
	f.String("settle", "5s", "how long a dump must stay unchanged before it is sent (config: agent.settle)")
	f.String("rescan", "30s", "full directory scan interval (config: agent.rescan)")
	f.String("max-backoff", "5m", "longest wait between retries while offline (config: agent.max_backoff)")
	addNATSFlags(cmd, "NATS server URL(s) (default nats://127.0.0.1:4222)")
	addSubmitFlags(cmd)
	return cmd
}

func (a *app) runAgent(cmd *cobra.Command, _ []string) error {
	ctx := cmd.Context()
	o := workers.AgentOptions{Dir: a.setting(cmd, "watch", "agent.watch"), StateFile: a.setting(cmd, "state", "agent.state"), Log: a.log}
	if o.Dir == "" {
		return fmt.Errorf("--watch DIR is required (config: agent.watch), e.g. --watch C:/Windows/Minidump")
	}
	// A directory that does not exist yet is watched for: Windows creates
	// C:\Windows\Minidump at the first crash. A file is a mistake.
	if st, err := os.Stat(o.Dir); err == nil && !st.IsDir() {
		return fmt.Errorf("--watch %s: not a directory: give the directory the dumps are written to", o.Dir)
	} else if errors.Is(err, fs.ErrNotExist) {
		a.log.Warn().Str("dir", o.Dir).Msg("--watch directory does not exist yet: waiting for it (Windows creates C:\\Windows\\Minidump at the first crash); check the path if that is not expected")
	}
	if o.StateFile == "" {
		dir, err := os.UserConfigDir()
		if err != nil {
			return fmt.Errorf("no --state and no user config dir: %w", err)
		}
		o.StateFile = filepath.Join(dir, "kdtriage", "agent-state.json")
	}
	var err error
	if o.Consent, err = a.settingBool(cmd, "consent", "agent.consent"); err != nil {
		return err
	}
	if o.AllowFull, err = a.settingBool(cmd, "allow-full", "agent.allow_full"); err != nil {
		return err
	}
	if o.DeleteAfterSubmit, err = a.settingBool(cmd, "delete-after-submit", "agent.delete_after_submit"); err != nil {
		return err
	}
	if o.SmallLimit, err = a.settingSize(cmd, "small-limit", "agent.small_limit"); err != nil {
		return err
	}
	if o.MaxSize, err = a.settingSize(cmd, "max-size", "agent.max_size"); err != nil {
		return err
	}
	if o.Settle, err = a.settingDuration(cmd, "settle", "agent.settle"); err != nil {
		return err
	}
	if o.Rescan, err = a.settingDuration(cmd, "rescan", "agent.rescan"); err != nil {
		return err
	}
	if o.MaxBackoff, err = a.settingDuration(cmd, "max-backoff", "agent.max_backoff"); err != nil {
		return err
	}
	o.Include, _ = cmd.Flags().GetStringSlice("include")
	if !cmd.Flags().Changed("include") && a.v.IsSet("agent.include") {
		o.Include = a.v.GetStringSlice("agent.include")
	}
	o.Exclude, _ = cmd.Flags().GetStringSlice("exclude")
	if !cmd.Flags().Changed("exclude") && a.v.IsSet("agent.exclude") {
		o.Exclude = a.v.GetStringSlice("agent.exclude")
	}
	if o.Meta, err = a.submitMeta(cmd); err != nil {
		return err
	}
	if !o.Consent {
		a.log.Warn().Msg("consent is off: dumps are found and checked but not sent (--consent)")
	}
	conn := &lazySubmitter{a: a, cmd: cmd}
	defer conn.close()
	agent, err := workers.NewAgent(o, conn.submit)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "watching %s\n", o.Dir)
	return agent.Run(ctx)
}

// lazySubmitter connects on first use and again after a failed connection,
// so an endpoint that starts offline keeps trying (the agent backs off).
type lazySubmitter struct {
	a   *app
	cmd *cobra.Command

	mu  sync.Mutex
	nc  *nats.Conn
	sub *workers.Submitter
}

func (l *lazySubmitter) submit(ctx context.Context, path string, meta workers.Meta) (*workers.SubmitResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sub == nil {
		nc, err := l.a.connect(l.cmd, "kdtriage-agent")
		if err != nil {
			return nil, err
		}
		js, err := jetstream.New(nc)
		if err != nil {
			nc.Close()
			return nil, err
		}
		sub, err := l.a.newSubmitter(ctx, l.cmd, js)
		if err != nil {
			nc.Close()
			return nil, err
		}
		l.nc, l.sub = nc, sub
	}
	return l.sub.Submit(ctx, path, meta)
}

func (l *lazySubmitter) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.nc != nil {
		l.nc.Close()
	}
}
