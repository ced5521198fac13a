package workers

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Header names the pipeline sets on jobs and reports.
const (
	HeaderHost        = "Kdtriage-Host"
	HeaderCollectedAt = "Kdtriage-Collected-At"
	HeaderPath        = "Kdtriage-Path"
	HeaderTenant      = "Kdtriage-Tenant"
	HeaderLabelPrefix = "Kdtriage-Label-"
	HeaderDump        = "Kdtriage-Dump"
	HeaderReportID    = "Kdtriage-Report-Id"
	HeaderBucket      = "Kdtriage-Bucket"
	HeaderHash        = "Kdtriage-Hash"
	HeaderSeverity    = "Kdtriage-Severity"
	HeaderOwner       = "Kdtriage-Owner"
	HeaderRuleSet     = "Kdtriage-Rule-Set"
	HeaderStatus      = "Kdtriage-Status"
	HeaderSupersedes  = "Kdtriage-Supersedes"
	HeaderReason      = "Kdtriage-Reason"
)

// Job is the message a submitter publishes on DUMPS. The dump bytes live in
// the object store under SHA256.
type Job struct {
	SHA256      string            `json:"sha256"`
	Size        int64             `json:"size"`
	Name        string            `json:"name,omitempty"` // base name of the file
	Path        string            `json:"path,omitempty"` // path on the endpoint
	Host        string            `json:"host,omitempty"`
	Tenant      string            `json:"tenant,omitempty"`
	CollectedAt time.Time         `json:"collected_at,omitzero"`
	SubmittedAt time.Time         `json:"submitted_at,omitzero"`
	Labels      map[string]string `json:"labels,omitempty"`
	// Reprocess marks a job that re-runs analysis of a stored dump.
	Reprocess bool `json:"reprocess,omitempty"`
	// Force re-runs analysis even when the rule set has not changed.
	Force bool `json:"force,omitempty"`
}

// validSHA256 reports whether s is a lower-case hex SHA-256.
func validSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// maxLabels caps the labels a job may carry.
const maxLabels = 32

// Validate checks a job received from the network.
func (j *Job) Validate() error {
	if !validSHA256(j.SHA256) {
		return fmt.Errorf("job: invalid sha256 %q", truncate(j.SHA256, 80))
	}
	if j.Size < 0 {
		return fmt.Errorf("job: negative size %d", j.Size)
	}
	if len(j.Labels) > maxLabels {
		return fmt.Errorf("job: %d labels (max %d)", len(j.Labels), maxLabels)
	}
	return nil
}

// msg builds the NATS message of a job.
func (j *Job) msg() (*nats.Msg, error) {
	data, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	subj := subjectNewJob + j.SHA256
	id := j.SHA256
	if j.Reprocess {
		subj = subjectReprocessJob + j.SHA256
		id = "reprocess-" + j.SHA256 + "-" + fmt.Sprint(j.SubmittedAt.UnixNano())
	}
	m := nats.NewMsg(subj)
	m.Data = data
	m.Header.Set(nats.MsgIdHdr, id)
	m.Header.Set(HeaderDump, j.SHA256)
	if j.Host != "" {
		m.Header.Set(HeaderHost, headerValue(j.Host))
	}
	if !j.CollectedAt.IsZero() {
		m.Header.Set(HeaderCollectedAt, j.CollectedAt.UTC().Format(time.RFC3339Nano))
	}
	if j.Path != "" {
		m.Header.Set(HeaderPath, headerValue(j.Path))
	}
	if j.Tenant != "" {
		m.Header.Set(HeaderTenant, headerValue(j.Tenant))
	}
	for k, v := range j.Labels {
		if headerName(k) {
			m.Header.Set(HeaderLabelPrefix+k, headerValue(v))
		}
	}
	return m, nil
}

// Envelope is the body of every message on REPORTS: the dump's metadata,
// the verdict and the analyzer's report.
type Envelope struct {
	// SchemaVersion is the envelope's schema version (currently 1).
	SchemaVersion int `json:"schema_version"`
	// ReportID is the idempotent report ID (also the message's Nats-Msg-Id).
	ReportID string `json:"report_id"`
	// Status is "ok" for an analysis and "failed" for a failure report.
	Status string `json:"status"`
	// Error explains a failure report.
	Error string `json:"error,omitempty"`
	// Permanent tells whether the failure is a property of the dump.
	Permanent bool `json:"permanent,omitempty"`

	Dump Job `json:"dump"`

	Bucket      string `json:"failure_bucket_id"`
	Hash        string `json:"failure_id_hash"`
	Severity    string `json:"severity,omitempty"`
	Owner       string `json:"owner,omitempty"`
	RuleSetHash string `json:"rule_set_hash,omitempty"`
	Analyzer    string `json:"analyzer,omitempty"`

	AnalyzedAt time.Time `json:"analyzed_at"`
	Worker     string    `json:"worker,omitempty"`
	Deliveries uint64    `json:"deliveries,omitempty"`
	// Supersedes is the ID of the report this one replaces (reprocessing).
	Supersedes string `json:"supersedes,omitempty"`

	// Report is the analyzer's own JSON report (absent on failures).
	Report json.RawMessage `json:"report,omitempty"`
}

// Status values of an Envelope.
const (
	StatusOK     = "ok"
	StatusFailed = "failed"
)

// reportID is the idempotent ID of the report of dump sha under a rule set
// and analyzer version; gen distinguishes forced reprocessing runs.
func reportID(sha, ruleSet, analyzer string, gen int64) string {
	s := fmt.Sprintf("%s|%s|%s|%d", sha, ruleSet, analyzer, gen)
	sum := md5.Sum([]byte(s))
	return "r-" + sha[:16] + "-" + hex.EncodeToString(sum[:8])
}

// HashToken turns a failure hash into a subject token: lower-case, braces
// and anything outside [0-9a-z-] removed. Empty input yields "unknown".
func HashToken(hash string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(hash) {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r == '-' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "unknown"
	}
	return truncate(b.String(), 64)
}

// ReportSubject is the subject a report with failure hash hash goes to.
func ReportSubject(hash string) string { return subjectReport + HashToken(hash) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// headerValue sanitises a header value: no CR/LF, bounded length.
func headerValue(s string) string {
	s = strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
	return truncate(s, 512)
}

// headerName reports whether a label key can be part of a header name
// (labels with other keys travel in the JSON body only).
func headerName(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for _, r := range k {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// envelopeMsg builds the REPORTS message of an envelope.
func envelopeMsg(e *Envelope) (*nats.Msg, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(ReportSubject(e.Hash))
	m.Data = data
	m.Header.Set(nats.MsgIdHdr, e.ReportID)
	m.Header.Set(HeaderReportID, e.ReportID)
	m.Header.Set(HeaderDump, e.Dump.SHA256)
	m.Header.Set(HeaderBucket, headerValue(e.Bucket))
	m.Header.Set(HeaderHash, headerValue(e.Hash))
	m.Header.Set(HeaderStatus, e.Status)
	if e.Severity != "" {
		m.Header.Set(HeaderSeverity, headerValue(e.Severity))
	}
	if e.Owner != "" {
		m.Header.Set(HeaderOwner, headerValue(e.Owner))
	}
	if e.RuleSetHash != "" {
		m.Header.Set(HeaderRuleSet, headerValue(e.RuleSetHash))
	}
	if e.Supersedes != "" {
		m.Header.Set(HeaderSupersedes, e.Supersedes)
	}
	if e.Dump.Host != "" {
		m.Header.Set(HeaderHost, headerValue(e.Dump.Host))
	}
	return m, nil
}
