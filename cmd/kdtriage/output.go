package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
)

// Output formats shared by the commands.
const (
	formatText     = "text"
	formatJSON     = "json"
	formatTable    = "table"
	formatMarkdown = "markdown"
	formatCSV      = "csv"
)

// checkFormat validates a --format value against the formats a command supports.
func checkFormat(f string, allowed ...string) error {
	return checkChoice("--format", f, allowed...)
}

// checkChoice validates the value of a flag that takes one of a few words.
func checkChoice(flag, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("unknown %s %q: use %s", flag, v, orList(allowed))
}

// orList joins choices for a message: "a", "a or b", "a, b or c".
func orList(choices []string) string {
	switch len(choices) {
	case 0:
		return ""
	case 1:
		return choices[0]
	}
	return strings.Join(choices[:len(choices)-1], ", ") + " or " + choices[len(choices)-1]
}

// minOneArg is cobra.MinimumNArgs(1) with a message that names what to
// give instead of cobra's "requires at least 1 arg(s)".
func minOneArg(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return fmt.Errorf("%s: give %s (see %q)", strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" "), what, cmd.CommandPath()+" --help")
		}
		return nil
	}
}

// exactArgs is cobra.ExactArgs(1) with a message that names what to give.
func exactArgs(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("%s: give %s (see %q)", strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" "), what, cmd.CommandPath()+" --help")
		}
		return nil
	}
}

// pathErr drops the operation and path of an *fs.PathError, so that
// "x.dmp: open x.dmp: no such file or directory" reads "x.dmp: no such file
// or directory" when the caller already names the file.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// hexU64 marshals to JSON as a "0x..." string, as every 64-bit value in
// kdtriage's JSON output is (JSON numbers lose precision above 2^53).
type hexU64 uint64

// MarshalJSON implements json.Marshaler.
func (h hexU64) MarshalJSON() ([]byte, error) {
	return []byte(`"0x` + strconv.FormatUint(uint64(h), 16) + `"`), nil
}

// writeRows renders a header and rows as a table (tablewriter), Markdown or CSV.
func writeRows(w io.Writer, format string, header []string, rows [][]string) error {
	switch format {
	case formatCSV:
		cw := csv.NewWriter(w)
		if err := cw.Write(header); err != nil {
			return err
		}
		if err := cw.WriteAll(rows); err != nil {
			return err
		}
		cw.Flush()
		return cw.Error()
	case formatMarkdown:
		t := tablewriter.NewTable(w, tablewriter.WithRenderer(renderer.NewMarkdown()), tablewriter.WithHeaderAutoFormat(tw.Off))
		t.Header(toAny(header)...)
		if err := t.Bulk(rows); err != nil {
			return err
		}
		return t.Render()
	default:
		t := tablewriter.NewTable(w, tablewriter.WithHeaderAutoFormat(tw.Off))
		t.Header(toAny(header)...)
		if err := t.Bulk(rows); err != nil {
			return err
		}
		return t.Render()
	}
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
