// Command kdtriage triages Windows crash dumps: it reads kernel (PAGEDUMP /
// PAGEDU64) and user-mode (MDMP) dumps, walks the faulting stack, applies
// rule files and prints !analyze -v style reports. The same binary runs the
// fleet pipeline on NATS JetStream.
//
// The commands are thin: every piece of logic lives in the packages under
// kdump, symbols, triage, rules and workers.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes shared by every command.
const (
	exitOK      = 0 // everything asked for was done
	exitFailure = 1 // a usage or runtime error unrelated to the input files
	exitBadDump = 2 // at least one input could not be read (the others were still reported)
)

// exitError carries a specific exit code out of a command's RunE.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// run executes the CLI with the given arguments and streams and returns the
// process exit code. Tests call it in-process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := newApp(stdin, stdout, stderr)
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "kdtriage:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "kdtriage:", err)
	return exitFailure
}
