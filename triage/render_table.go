package triage

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
)

// WriteJSON writes the report as one JSON object: indented when indent is
// true, otherwise on one line. A newline follows.
func (r *Report) WriteJSON(w io.Writer, indent bool) error {
	var b []byte
	var err error
	if indent {
		b, err = json.MarshalIndent(r, "", "  ")
	} else {
		b, err = json.Marshal(r)
	}
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Row is one line of the many-dumps views, modelled on BlueScreenView's
// upper pane plus the bucket.
type Row struct {
	DumpFile        string
	CrashTime       string
	BugCheckString  string
	BugCheckCode    string
	Params          [4]string
	CausedByDriver  string
	CausedByAddress string
	Processor       string
	CrashAddress    string
	Bucket          string
	Hash            string
	Followup        string
	Confidence      string
	OSVersion       string
	Processors      string
	DumpSize        string
	FullPath        string
}

// ReportRow flattens a report into a Row.
func ReportRow(r *Report) Row {
	row := Row{
		DumpFile:       baseName(r.Dump.File),
		BugCheckString: r.BugCheck.Name,
		BugCheckCode:   fmt.Sprintf("0x%08x", uint64(r.BugCheck.Code)),
		CausedByDriver: r.Culprit.Image,
		Processor:      r.Dump.Machine,
		Bucket:         r.FailureBucketID,
		Hash:           r.FailureIDHash,
		Followup:       r.Followup,
		Confidence:     string(r.Culprit.Confidence),
		OSVersion:      r.OS.Version,
		FullPath:       r.Dump.File,
	}
	if !r.Dump.CrashTime.IsZero() {
		row.CrashTime = r.Dump.CrashTime.UTC().Format(time.DateTime)
	}
	wide := r.Dump.Machine != "x86" && r.Dump.Machine != "arm"
	for i, v := range r.BugCheck.Params {
		if wide {
			row.Params[i] = fmt.Sprintf("%016x", uint64(v))
		} else {
			row.Params[i] = fmt.Sprintf("%08x", uint64(v))
		}
	}
	switch {
	case r.Culprit.Kind == CulpritFrame && r.Culprit.Frame >= 0 && r.Culprit.Frame < len(r.Stack):
		fr := r.Stack[r.Culprit.Frame]
		if fr.Offset != nil {
			row.CausedByAddress = fmt.Sprintf("%s+%x", fr.Image, uint64(*fr.Offset))
		}
	case r.Culprit.Symbol != "":
		row.CausedByAddress = r.Culprit.Symbol
	}
	if r.FaultingIP != nil {
		row.CrashAddress = r.FaultingIP.Symbol
		if row.CrashAddress == "" {
			row.CrashAddress = r.FaultingIP.Address.String()
		}
	} else if len(r.Stack) > 0 {
		row.CrashAddress = r.Stack[0].Symbol
	}
	if r.Exception != nil {
		userRow(r, &row) // user-mode dumps: the exception instead of a bug check
	}
	if r.Dump.Processors > 0 {
		row.Processors = strconv.Itoa(r.Dump.Processors)
	}
	if r.Dump.Size > 0 {
		row.DumpSize = strconv.FormatInt(r.Dump.Size, 10)
	}
	return row
}

// tableHeader and tableRow are the columns of the terminal table and the
// Markdown view: the BlueScreenView columns that fit a screen.
var tableHeader = []string{"Dump File", "Crash Time", "Bug Check String", "Bug Check Code", "Parameter 1",
	"Caused By Driver", "Caused By Address", "FAILURE_BUCKET_ID", "Confidence", "Followup"}

func tableRow(r Row) []string {
	return []string{r.DumpFile, r.CrashTime, r.BugCheckString, r.BugCheckCode, r.Params[0],
		r.CausedByDriver, r.CausedByAddress, r.Bucket, r.Confidence, r.Followup}
}

// csvHeader holds every BlueScreenView column kdtriage can fill, plus the
// bucket, its hash, the followup and the confidence.
var csvHeader = []string{"Dump File", "Crash Time", "Bug Check String", "Bug Check Code",
	"Parameter 1", "Parameter 2", "Parameter 3", "Parameter 4", "Caused By Driver", "Caused By Address",
	"Processor", "Crash Address", "Processors Count", "OS Version", "Dump File Size", "Full Path",
	"FAILURE_BUCKET_ID", "FAILURE_ID_HASH", "Followup", "Confidence"}

func csvRow(r Row) []string {
	return []string{r.DumpFile, r.CrashTime, r.BugCheckString, r.BugCheckCode,
		r.Params[0], r.Params[1], r.Params[2], r.Params[3], r.CausedByDriver, r.CausedByAddress,
		r.Processor, r.CrashAddress, r.Processors, r.OSVersion, r.DumpSize, r.FullPath,
		r.Bucket, r.Hash, r.Followup, r.Confidence}
}

// WriteTable writes one row per report as a terminal table, like
// BlueScreenView's crash list.
func WriteTable(w io.Writer, reports []*Report) error {
	rows := make([][]string, len(reports))
	for i, r := range reports {
		rows[i] = tableRow(ReportRow(r))
	}
	return renderTable(w, false, tableHeader, rows)
}

// WriteMarkdown writes the table view as a Markdown table.
func WriteMarkdown(w io.Writer, reports []*Report) error {
	rows := make([][]string, len(reports))
	for i, r := range reports {
		rows[i] = tableRow(ReportRow(r))
	}
	return renderTable(w, true, tableHeader, rows)
}

// WriteCSV writes one CSV record per report, with a header line.
func WriteCSV(w io.Writer, reports []*Report) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	for _, r := range reports {
		if err := cw.Write(csvRow(ReportRow(r))); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func renderTable(w io.Writer, markdown bool, header []string, rows [][]string) error {
	opts := []tablewriter.Option{tablewriter.WithHeaderAutoFormat(tw.Off)}
	if markdown {
		opts = append(opts, tablewriter.WithRenderer(renderer.NewMarkdown()))
		for _, row := range rows {
			for i := range row {
				row[i] = strings.ReplaceAll(row[i], "|", `\|`)
			}
		}
	}
	t := tablewriter.NewTable(w, opts...)
	hdr := make([]any, len(header))
	for i, h := range header {
		hdr[i] = h
	}
	t.Header(hdr...)
	if err := t.Bulk(rows); err != nil {
		return err
	}
	return t.Render()
}

// BucketSummary counts the reports of one FAILURE_BUCKET_ID.
type BucketSummary struct {
	Bucket     string    `json:"failure_bucket_id"`
	Hash       string    `json:"failure_id_hash"`
	Count      int       `json:"count"`
	BugCheck   string    `json:"bugcheck"`
	Image      string    `json:"image"`
	Followup   string    `json:"followup,omitempty"`
	Confidence string    `json:"confidence"`
	First      time.Time `json:"first_crash,omitzero"`
	Last       time.Time `json:"last_crash,omitzero"`
	Dumps      []string  `json:"dumps"`
}

// Summarize groups reports by bucket, most frequent first (ties by
// bucket name). Dumps lists every file of the bucket in input order.
func Summarize(reports []*Report) []BucketSummary {
	idx := map[string]int{}
	var out []BucketSummary
	for _, r := range reports {
		i, ok := idx[r.FailureBucketID]
		if !ok {
			i = len(out)
			idx[r.FailureBucketID] = i
			what := fmt.Sprintf("%s (0x%x)", r.BugCheck.Name, uint64(r.BugCheck.Code))
			if e := r.Exception; e != nil {
				what = fmt.Sprintf("%s (0x%x)", e.Name, uint64(e.Code))
			}
			out = append(out, BucketSummary{Bucket: r.FailureBucketID, Hash: r.FailureIDHash,
				BugCheck: what,
				Image:    r.Culprit.Image, Followup: r.Followup, Confidence: string(r.Culprit.Confidence)})
		}
		s := &out[i]
		s.Count++
		s.Dumps = append(s.Dumps, baseName(r.Dump.File))
		if t := r.Dump.CrashTime; !t.IsZero() {
			if s.First.IsZero() || t.Before(s.First) {
				s.First = t
			}
			if t.After(s.Last) {
				s.Last = t
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Bucket < out[j].Bucket
	})
	return out
}

// WriteSummary renders bucket summaries as text (a table), markdown, csv
// or json.
func WriteSummary(w io.Writer, format string, sums []BucketSummary) error {
	header := []string{"Count", "FAILURE_BUCKET_ID", "FAILURE_ID_HASH", "Bug Check", "Image", "Followup", "Confidence", "First Crash", "Last Crash", "Dumps"}
	rows := make([][]string, len(sums))
	for i, s := range sums {
		ts := func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format(time.DateTime)
		}
		dumps := s.Dumps
		more := ""
		if format != "csv" && len(dumps) > 3 {
			more = fmt.Sprintf(" (+%d more)", len(dumps)-3)
			dumps = dumps[:3]
		}
		rows[i] = []string{strconv.Itoa(s.Count), s.Bucket, s.Hash, s.BugCheck, s.Image, s.Followup, s.Confidence,
			ts(s.First), ts(s.Last), strings.Join(dumps, " ") + more}
	}
	switch format {
	case "json":
		for _, s := range sums {
			b, err := json.Marshal(s)
			if err != nil {
				return err
			}
			if _, err := w.Write(append(b, '\n')); err != nil {
				return err
			}
		}
		return nil
	case "csv":
		cw := csv.NewWriter(w)
		if err := cw.Write(header); err != nil {
			return err
		}
		if err := cw.WriteAll(rows); err != nil {
			return err
		}
		cw.Flush()
		return cw.Error()
	case "markdown":
		return renderTable(w, true, header, rows)
	}
	return renderTable(w, false, header, rows)
}
