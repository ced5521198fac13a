package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"

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
	for _, a := range allowed {
		if f == a {
			return nil
		}
	}
	return fmt.Errorf("unknown --format %q: use one of %v", f, allowed)
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
