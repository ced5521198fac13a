package workers

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

// FuzzJob: job messages come from endpoints. Decoding, validation and
// re-encoding never panic, a valid job survives a round trip, and the
// subjects and headers built from it are well formed.
func FuzzJob(f *testing.F) {
	f.Add([]byte(`{"sha256":"` + strings.Repeat("ab", 32) + `","size":286064,"host":"ws-1","labels":{"ring":"canary"}}`))
	f.Add([]byte(`{"sha256":"../../etc/passwd","size":-1}`))
	f.Add([]byte(`{"sha256":"` + strings.Repeat("0", 64) + `","host":"a\r\nInjected: yes","reprocess":true,"force":true}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[1,2,3]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var j Job
		if json.Unmarshal(data, &j) != nil || j.Validate() != nil {
			return
		}
		m, err := j.msg()
		if err != nil {
			t.Fatal(err)
		}
		if strings.ContainsAny(m.Subject, " \t\r\n*>") || !strings.HasPrefix(m.Subject, "kdtriage.dumps.") {
			t.Fatalf("bad subject %q", m.Subject)
		}
		checkHeaders(t, m.Header)
		var back Job
		if err := json.Unmarshal(m.Data, &back); err != nil || back.SHA256 != j.SHA256 || back.Size != j.Size {
			t.Fatalf("round trip: %v %+v", err, back)
		}
		env := &Envelope{ReportID: reportID(j.SHA256, "r", "a", 0), Dump: j, Bucket: j.Host, Hash: j.Host, Owner: j.Tenant}
		em, err := envelopeMsg(env)
		if err != nil {
			t.Fatal(err)
		}
		checkHeaders(t, em.Header)
		if strings.ContainsAny(em.Subject, " \t\r\n*>") || strings.Count(em.Subject, ".") != 2 {
			t.Fatalf("bad report subject %q", em.Subject)
		}
	})
}

// FuzzHashToken: any failure hash becomes one valid subject token.
func FuzzHashToken(f *testing.F) {
	f.Add("{cc328f95-2c0d-e5bc-3d44-ec74b2a236fd}")
	f.Add("a.b.>*")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		tok := HashToken(s)
		if tok == "" || len(tok) > 64 || strings.ContainsAny(tok, ". \t\r\n*>{}") {
			t.Fatalf("HashToken(%q) = %q", s, tok)
		}
	})
}

func checkHeaders(t *testing.T, h nats.Header) {
	t.Helper()
	for k, vs := range h {
		if strings.ContainsAny(k, " \t\r\n:") {
			t.Fatalf("bad header name %q", k)
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				t.Fatalf("header %s carries a line break: %q", k, v)
			}
		}
	}
}
