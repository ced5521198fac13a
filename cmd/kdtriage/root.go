package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"golang.org/x/term"
)

// app is the state one invocation of the CLI shares between commands: its
// streams, its configuration and its logger. Nothing here is global, so tests
// run commands in-process side by side.
type app struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// stderrTTY reports whether stderr is a terminal: progress counters are
	// drawn there only then.
	stderrTTY bool

	v   *viper.Viper
	log zerolog.Logger
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *app {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, v: viper.New(), log: zerolog.Nop()}
	if f, ok := stderr.(*os.File); ok {
		a.stderrTTY = term.IsTerminal(int(f.Fd()))
	}
	return a
}

const rootLong = `kdtriage triages Windows crash dumps without Windows or a debugger engine.

It reads small memory dumps (C:\Windows\Minidump\*.dmp), kernel, automatic,
complete and bitmap MEMORY.DMP files and user-mode MDMP dumps, walks the
faulting stack, applies support engineers' rule files and prints reports that
read like WinDbg's !analyze -v, with WinDbg-compatible bucket IDs.

Configuration comes, in increasing precedence, from a YAML file (--config, or
kdtriage.yaml in ., $XDG_CONFIG_HOME/kdtriage or /etc/kdtriage), environment
variables named KDTRIAGE_<KEY> (dots and dashes become underscores, e.g.
KDTRIAGE_LOG_LEVEL=debug) and command-line flags. The symbol path also honours
_NT_SYMBOL_PATH, as WinDbg does.`

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "kdtriage",
		Short: "Triage Windows crash dumps: parse, walk, bucket, report",
		Long:  rootLong,
		Example: `  kdtriage info C:/Windows/Minidump/112117-27671-01.dmp
  kdtriage info --format json *.dmp
  KDTRIAGE_LOG_LEVEL=debug kdtriage info MEMORY.DMP`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.setup(cmd)
		},
	}
	pf := root.PersistentFlags()
	pf.String("config", "", "configuration file (YAML); default: kdtriage.yaml in ., $XDG_CONFIG_HOME/kdtriage, /etc/kdtriage")
	pf.String("log-level", "warn", "log level: trace, debug, info, warn, error, disabled")
	pf.String("log-format", "auto", "log format on stderr: auto (console on a terminal, JSON otherwise), console, json")

	root.AddCommand(a.commands()...)
	return root
}

// setup loads the configuration (file, environment, flags) and builds the
// logger. It runs before every command.
func (a *app) setup(cmd *cobra.Command) error {
	v := a.v
	v.SetEnvPrefix("KDTRIAGE")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_", "-", "_"))
	v.AutomaticEnv()

	// Flags bind under their own names; nested config keys (symbols.path)
	// are bound explicitly by the commands that use them.
	bind := func(f *pflag.Flag) {
		if err := v.BindPFlag(f.Name, f); err != nil {
			panic(err) // only on a nil flag: a programming error
		}
	}
	cmd.Flags().VisitAll(bind)
	cmd.InheritedFlags().VisitAll(bind)

	if path := v.GetString("config"); path != "" {
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			return fmt.Errorf("reading configuration %s: %w", path, err)
		}
	} else if path := findConfig(); path != "" {
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			return fmt.Errorf("reading configuration %s: %w", path, err)
		}
	}

	logger, err := newLogger(a.stderr, v.GetString("log-level"), v.GetString("log-format"))
	if err != nil {
		return err
	}
	a.log = logger
	if f := v.ConfigFileUsed(); f != "" {
		a.log.Debug().Str("file", f).Msg("configuration loaded")
	}
	return nil
}

// newLogger builds the zerolog logger every package receives.
func newLogger(w io.Writer, level, format string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(strings.ToLower(level))
	if err != nil || level == "" {
		return zerolog.Nop(), fmt.Errorf("unknown log level %q: use trace, debug, info, warn, error or disabled", level)
	}
	out := w
	switch format {
	case "json":
	case "console":
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	case "auto", "":
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
		}
	default:
		return zerolog.Nop(), fmt.Errorf("unknown log format %q: use auto, console or json", format)
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger(), nil
}

// version is set at link time with -ldflags "-X main.version=...".
var version = "dev"

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the kdtriage version",
		Long: `Print the version of this kdtriage binary ("dev" for a build without
-ldflags "-X main.version=..."); quote it when reporting a problem.`,
		Example: `  kdtriage version`,
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(a.stdout, "kdtriage", version)
			return err
		},
	}
}

// findConfig returns the first kdtriage.yaml (or .yml) in the current
// directory, the user's configuration directory or /etc/kdtriage.
func findConfig() string {
	dirs := []string{"."}
	if dir, err := os.UserConfigDir(); err == nil {
		dirs = append(dirs, filepath.Join(dir, "kdtriage"))
	}
	dirs = append(dirs, "/etc/kdtriage")
	for _, d := range dirs {
		for _, name := range []string{"kdtriage.yaml", "kdtriage.yml"} {
			p := filepath.Join(d, name)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return p
			}
		}
	}
	return ""
}
