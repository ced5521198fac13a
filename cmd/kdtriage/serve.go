package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/kdtriage/kdtriage/triage"
	"github.com/kdtriage/kdtriage/workers"
)

// Pipeline configuration keys (kdtriage.yaml; KDTRIAGE_<KEY> with dots as
// underscores). See configs/kdtriage.yaml and docs/pipeline.md.
const (
	keyStoreDir     = "store_dir"
	keyNATSURL      = "nats.url"
	keyNATSCreds    = "nats.creds"
	keyNATSNKey     = "nats.nkey"
	keyNATSUser     = "nats.user"
	keyNATSPassword = "nats.password"
	keyNATSToken    = "nats.token"
	keyNATSCA       = "nats.tls.ca"
	keyNATSCert     = "nats.tls.cert"
	keyNATSKey      = "nats.tls.key"
)

// setting returns a string setting: the flag when given, else the config
// key when set, else the flag's default.
func (a *app) setting(cmd *cobra.Command, flag, key string) string {
	f := cmd.Flags().Lookup(flag)
	if f != nil && f.Changed {
		return f.Value.String()
	}
	if key != "" && a.v != nil && a.v.IsSet(key) {
		return a.v.GetString(key)
	}
	if f != nil {
		return f.Value.String()
	}
	return ""
}

func (a *app) settingInt(cmd *cobra.Command, flag, key string) (int, error) {
	s := a.setting(cmd, flag, key)
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("--%s %q: %w", flag, s, err)
	}
	return n, nil
}

func (a *app) settingBool(cmd *cobra.Command, flag, key string) (bool, error) {
	s := a.setting(cmd, flag, key)
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("--%s %q: %w", flag, s, err)
	}
	return b, nil
}

func (a *app) settingDuration(cmd *cobra.Command, flag, key string) (time.Duration, error) {
	s := a.setting(cmd, flag, key)
	if s == "" || s == "0" {
		return 0, nil
	}
	d, err := parseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("--%s %q: %w", flag, s, err)
	}
	return d, nil
}

func (a *app) settingSize(cmd *cobra.Command, flag, key string) (int64, error) {
	s := a.setting(cmd, flag, key)
	n, err := parseSize(s)
	if err != nil {
		return 0, fmt.Errorf("--%s %q: %w", flag, s, err)
	}
	return n, nil
}

// parseDuration accepts Go durations plus a "d" (days) suffix: 30d, 12h.
func parseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("bad duration")
		}
		return time.Duration(days * float64(24*time.Hour)), nil
	}
	return time.ParseDuration(s)
}

// parseSize parses a byte size: 123, 64KiB, 10MB, 1.5GiB (K/M/G/T with or
// without "iB"/"B"; powers of 1024 for KiB..., 1000 for KB...).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	mult := float64(1)
	units := []struct {
		suf string
		m   float64
	}{
		{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
		{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3},
		{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1},
	}
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suf); ok {
			s, mult = strings.TrimSpace(n), u.m
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f*mult > 1<<62 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(f * mult), nil
}

// addNATSFlags adds the flags that reach an external NATS server.
func addNATSFlags(cmd *cobra.Command, urlHelp string) {
	f := cmd.Flags()
	f.String("nats-url", "", urlHelp+" (config: nats.url)")
	f.String("creds", "", "NATS credentials file (JWT and nkey seed) (config: nats.creds)")
	f.String("nkey", "", "NATS nkey seed file (config: nats.nkey)")
	f.String("user", "", "NATS user (config: nats.user)")
	f.String("password", "", "NATS password; prefer KDTRIAGE_NATS_PASSWORD (config: nats.password)")
	f.String("token", "", "NATS token; prefer KDTRIAGE_NATS_TOKEN (config: nats.token)")
	f.String("tls-ca", "", "CA bundle that verifies the NATS server (config: nats.tls.ca)")
	f.String("tls-cert", "", "client certificate for mutual TLS (config: nats.tls.cert)")
	f.String("tls-key", "", "client key for mutual TLS (config: nats.tls.key)")
}

// connectOptions reads the NATS connection settings of cmd.
func (a *app) connectOptions(cmd *cobra.Command, name string) workers.ConnectOptions {
	return workers.ConnectOptions{
		URL:          a.setting(cmd, "nats-url", keyNATSURL),
		Name:         name,
		CredsFile:    a.setting(cmd, "creds", keyNATSCreds),
		NKeySeedFile: a.setting(cmd, "nkey", keyNATSNKey),
		User:         a.setting(cmd, "user", keyNATSUser),
		Password:     a.setting(cmd, "password", keyNATSPassword),
		Token:        a.setting(cmd, "token", keyNATSToken),
		CAFile:       a.setting(cmd, "tls-ca", keyNATSCA),
		CertFile:     a.setting(cmd, "tls-cert", keyNATSCert),
		KeyFile:      a.setting(cmd, "tls-key", keyNATSKey),
		Log:          a.log,
	}
}

// connect connects to the external server named by cmd's flags; the
// default URL is nats://127.0.0.1:4222 (a local kdtriage serve --listen).
func (a *app) connect(cmd *cobra.Command, name string) (*nats.Conn, error) {
	o := a.connectOptions(cmd, name)
	if o.URL == "" {
		o.URL = "nats://127.0.0.1:4222"
	}
	nc, err := workers.Connect(o)
	var netErr net.Error
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, nats.ErrNoServers):
		return nil, fmt.Errorf("%w: start one with \"kdtriage serve --listen %s\", or point --nats-url (config nats.url) at the pipeline's server", err, hostPort(o.URL))
	case errors.As(err, &dnsErr), errors.As(err, &netErr):
		return nil, fmt.Errorf("%w: check --nats-url (config nats.url) and that the server is reachable from here", err)
	case errors.Is(err, nats.ErrAuthorization):
		return nil, fmt.Errorf("%w: check --creds, --nkey, --user/--password or --token (config nats.*)", err)
	}
	return nc, err
}

// hostPort returns the HOST:PORT of the first URL of a NATS URL list, for
// messages ("nats://a:4222,nats://b:4222" -> "a:4222").
func hostPort(urls string) string {
	first, _, _ := strings.Cut(urls, ",")
	if u, err := url.Parse(strings.TrimSpace(first)); err == nil && u.Host != "" {
		return u.Host
	}
	return first
}

// addPipelineFlags adds the flags that size the JetStream assets and run
// workers (serve and worker).
func addPipelineFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.Int("workers", runtime.NumCPU(), "worker slots: jobs analysed at once (config: pipeline.workers)")
	f.String("rules", "", "directory of rule files layered over the embedded defaults, reloaded on change (config: rules.dir, env: KDTRIAGE_RULES_DIR)")
	f.String("analyzer", "triage", "analysis: triage (full) or basic (bug check and faulting module only) (config: pipeline.analyzer)")
	f.String("spool-dir", "", "directory for the temporary dump copies workers analyse (default: system temp; config: pipeline.spool_dir)")
	f.String("http", "", "HOST:PORT serving /metrics and /healthz (empty: none; config: pipeline.http)")
	f.String("retention", "30d", "how long dump bytes stay in the object store; 0 keeps them (config: pipeline.retention)")
	f.String("report-max-age", "0", "how long REPORTS keeps reports; 0 keeps them (config: pipeline.report_max_age)")
	f.String("ack-wait", "30s", "time a worker may hold a job between heartbeats before it is redelivered (config: pipeline.ack_wait)")
	f.Int("max-deliver", 5, "deliveries of a job before it is dead-lettered (config: pipeline.max_deliver)")
	f.Int("replicas", 1, "replicas of streams and buckets (3 or 5 on a cluster) (config: pipeline.replicas)")
	f.String("max-dump-size", "0", "largest dump a worker accepts, e.g. 64GiB; 0: no cap (config: pipeline.max_dump_size)")
	f.Bool("compress", false, "store dump bytes S2-compressed: less disk, more CPU per dump (config: pipeline.compress)")
	addSymbolFlags(cmd)
	f.String("drain-timeout", "30s", "on SIGTERM, how long jobs in flight may finish before they are handed back (config: pipeline.drain_timeout)")
}

// pipelineConfig reads the asset configuration of cmd.
func (a *app) pipelineConfig(cmd *cobra.Command) (workers.Config, error) {
	var c workers.Config
	var err error
	if c.Retention, err = a.settingDuration(cmd, "retention", "pipeline.retention"); err != nil {
		return c, err
	}
	if c.ReportMaxAge, err = a.settingDuration(cmd, "report-max-age", "pipeline.report_max_age"); err != nil {
		return c, err
	}
	if c.AckWait, err = a.settingDuration(cmd, "ack-wait", "pipeline.ack_wait"); err != nil {
		return c, err
	}
	if c.MaxDeliver, err = a.settingInt(cmd, "max-deliver", "pipeline.max_deliver"); err != nil {
		return c, err
	}
	if c.Replicas, err = a.settingInt(cmd, "replicas", "pipeline.replicas"); err != nil {
		return c, err
	}
	if c.MaxDumpSize, err = a.settingSize(cmd, "max-dump-size", "pipeline.max_dump_size"); err != nil {
		return c, err
	}
	if c.Compress, err = a.settingBool(cmd, "compress", "pipeline.compress"); err != nil {
		return c, err
	}
	return c, nil
}

// runOptions builds the worker side of a pipeline run.
func (a *app) runOptions(cmd *cobra.Command) (workers.RunOptions, error) {
	cfg, err := a.pipelineConfig(cmd)
	if err != nil {
		return workers.RunOptions{}, err
	}
	n, err := a.settingInt(cmd, "workers", "pipeline.workers")
	if err != nil {
		return workers.RunOptions{}, err
	}
	drain, err := a.settingDuration(cmd, "drain-timeout", "pipeline.drain_timeout")
	if err != nil {
		return workers.RunOptions{}, err
	}
	o := workers.RunOptions{
		Config:       cfg,
		Workers:      n,
		RulesDir:     a.rulesDirFor(cmd), // --rules, KDTRIAGE_RULES_DIR, rules.dir
		SpoolDir:     a.setting(cmd, "spool-dir", "pipeline.spool_dir"),
		HTTPAddr:     a.setting(cmd, "http", "pipeline.http"),
		DrainTimeout: drain,
		Log:          a.log,
		Metrics:      workers.NewMetrics(),
	}
	switch kind := a.setting(cmd, "analyzer", "pipeline.analyzer"); kind {
	case "triage":
		// Symbols as for analyze: --symbol-path, symbols.path or
		// _NT_SYMBOL_PATH; without one frames stay module+offset.
		symPath, _ := a.effectiveSymbolPath(cmd)
		sym, images, err := a.newSymbolizer(symPath, a.symbolStoreOptions(cmd))
		if err != nil {
			return o, err
		}
		base := triage.Options{Log: a.log, Symbols: sym, Images: images, LegacyBucket: true}
		if o.Analyzer, err = workers.NewTriageAnalyzer(o.RulesDir, base); err != nil {
			return o, err
		}
	case "basic":
		if o.Analyzer, err = workers.NewKdumpAnalyzer(o.RulesDir); err != nil {
			return o, err
		}
	default:
		return o, fmt.Errorf("--analyzer %q: use triage or basic", kind)
	}
	return o, nil
}

const serveLong = `Run the whole fleet pipeline in one process: an embedded NATS server with
JetStream on --store-dir, the streams, object store and KV buckets, N workers,
the dead-letter keeper and the per-bucket aggregates, plus /metrics and
/healthz on --http.

--listen HOST:PORT lets other processes (kdtriage submit, agent, worker, feed)
reach the embedded server; --nats-config loads a nats-server configuration
file (accounts, users, permissions, TLS) for it. With --nats-url the
embedded server is not started and everything runs against that server or
cluster instead (credentials: --creds, --nkey, --user/--password, --token,
TLS: --tls-ca, --tls-cert, --tls-key).

On SIGINT/SIGTERM no new job is taken, jobs in flight finish (up to
--drain-timeout) and the server shuts down cleanly. See docs/pipeline.md.`

func (a *app) serveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the pipeline: embedded NATS JetStream, workers, feeds, metrics",
		Long:  serveLong,
		Example: `  kdtriage serve --store-dir /var/lib/kdtriage --listen 127.0.0.1:4222 --http 127.0.0.1:9090
  kdtriage serve --nats-url nats://nats1:4222,nats://nats2:4222 --creds worker.creds --replicas 3`,
		Args: cobra.NoArgs,
		RunE: a.runServe,
	}
	f := cmd.Flags()
	f.String("store-dir", "", "JetStream store directory (default: user cache dir/kdtriage/jetstream; config: store_dir)")
	f.String("listen", "", "HOST:PORT where the embedded server accepts NATS clients (default: in-process only; config: serve.listen)")
	f.String("nats-config", "", "nats-server configuration file for the embedded server (config: nats.server_config)")
	addNATSFlags(cmd, "external NATS server URL(s); when set no embedded server is started")
	addPipelineFlags(cmd)
	return cmd
}

func (a *app) runServe(cmd *cobra.Command, _ []string) error {
	ctx := cmd.Context()
	o, err := a.runOptions(cmd)
	if err != nil {
		return err
	}
	o.Setup, o.Keeper, o.Aggregator = true, true, true
	var nc *nats.Conn
	natsAddr := ""
	if a.setting(cmd, "nats-url", keyNATSURL) != "" {
		if nc, err = a.connect(cmd, "kdtriage-serve"); err != nil {
			return err
		}
		natsAddr = nc.ConnectedUrlRedacted()
	} else {
		dir := a.setting(cmd, "store-dir", keyStoreDir)
		if dir == "" {
			cache, err := os.UserCacheDir()
			if err != nil {
				return fmt.Errorf("no --store-dir and no user cache dir: %w", err)
			}
			dir = filepath.Join(cache, "kdtriage", "jetstream")
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		srv, err := workers.StartServer(workers.ServerOptions{
			StoreDir:   dir,
			Listen:     a.setting(cmd, "listen", "serve.listen"),
			ConfigFile: a.setting(cmd, "nats-config", "nats.server_config"),
			Log:        a.log,
		})
		if err != nil {
			return err
		}
		defer func() {
			srv.Shutdown()
			srv.WaitForShutdown()
		}()
		if nc, err = workers.ConnectEmbedded(srv, "kdtriage-serve"); err != nil {
			return err
		}
		if addr := srv.Addr(); addr != nil {
			natsAddr = "nats://" + addr.String()
		}
		a.log.Info().Str("store_dir", dir).Str("nats", natsAddr).Msg("embedded NATS server running")
	}
	defer nc.Close()
	return a.runPipeline(ctx, nc, o, natsAddr)
}

// runPipeline runs o on nc and announces readiness on stdout (one line:
// "ready nats=URL http=ADDR workers=N") so scripts and tests can wait for it.
func (a *app) runPipeline(ctx context.Context, nc *nats.Conn, o workers.RunOptions, natsAddr string) error {
	o.Ready = func(httpAddr string) {
		fmt.Fprintf(a.stdout, "ready nats=%s http=%s workers=%d\n", orDash(natsAddr), orDash(httpAddr), o.Workers)
		if f, ok := a.stdout.(*os.File); ok {
			f.Sync()
		}
	}
	return workers.Run(ctx, nc, o)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
