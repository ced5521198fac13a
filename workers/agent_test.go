package workers

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a SubmitFunc that records calls and can fail.
type recorder struct {
	mu    sync.Mutex
	paths []string
	fail  int // fail this many calls first
}

func (r *recorder) submit(_ context.Context, path string, _ Meta) (*SubmitResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail > 0 {
		r.fail--
		return nil, errors.New("server unreachable")
	}
	r.paths = append(r.paths, filepath.Base(path))
	sha, size, err := HashFile(path)
	if err != nil {
		return nil, err
	}
	return &SubmitResult{Path: path, SHA256: sha, Size: size, Uploaded: true}, nil
}

func (r *recorder) sent() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := append([]string(nil), r.paths...)
	sort.Strings(s)
	return s
}

// scanUntilSettled runs scans the way Run does, past the settle time.
func scanUntilSettled(a *Agent, settle time.Duration) {
	a.Scan(context.Background())
	time.Sleep(settle + 20*time.Millisecond)
	a.Scan(context.Background())
}

func TestAgentPolicy(t *testing.T) {
	files := synthKernel(t, 1)
	small, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 2<<20) // "larger" than the SmallLimit below, not a triage dump
	copy(big, "PAGEDU64")

	tests := []struct {
		name    string
		opts    AgentOptions
		want    []string
		deleted bool
	}{
		{"consent off", AgentOptions{Consent: false}, nil, false},
		{"default policy", AgentOptions{Consent: true}, []string{"a.dmp", "b.DMP"}, false},
		{"exclude", AgentOptions{Consent: true, Exclude: []string{"b*"}}, []string{"a.dmp"}, false},
		{"include memory", AgentOptions{Consent: true, Include: []string{"*.dmp"}, AllowFull: true}, []string{"MEMORY.DMP", "a.dmp", "b.DMP"}, false},
		{"full over cap", AgentOptions{Consent: true, AllowFull: true, MaxSize: 1 << 20}, []string{"a.dmp", "b.DMP"}, false},
		{"delete after submit", AgentOptions{Consent: true, DeleteAfterSubmit: true}, []string{"a.dmp", "b.DMP"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, b := range map[string][]byte{"a.dmp": small, "b.DMP": small, "MEMORY.DMP": big, "readme.txt": small} {
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			o := tc.opts
			o.Dir, o.StateFile, o.Settle, o.SmallLimit = dir, filepath.Join(t.TempDir(), "state.json"), 50*time.Millisecond, 1<<20
			rec := &recorder{}
			a, err := NewAgent(o, rec.submit)
			if err != nil {
				t.Fatal(err)
			}
			scanUntilSettled(a, o.Settle)
			if got := strings.Join(rec.sent(), ","); got != strings.Join(tc.want, ",") {
				t.Errorf("sent %q, want %q", got, strings.Join(tc.want, ","))
			}
			for _, n := range tc.want {
				_, err := os.Stat(filepath.Join(dir, n))
				if gone := errors.Is(err, os.ErrNotExist); gone != tc.deleted {
					t.Errorf("%s: deleted=%v, want %v", n, gone, tc.deleted)
				}
			}
			// A new agent on the same state sends nothing again.
			rec2 := &recorder{}
			a2, err := NewAgent(o, rec2.submit)
			if err != nil {
				t.Fatal(err)
			}
			scanUntilSettled(a2, o.Settle)
			if len(rec2.sent()) != 0 {
				t.Errorf("resent after restart: %v", rec2.sent())
			}
		})
	}
}

// TestAgentWaitsForCompleteFile: a dump still growing is not sent until it
// has stayed unchanged for Settle.
func TestAgentWaitsForCompleteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "growing.dmp")
	rec := &recorder{}
	a, err := NewAgent(AgentOptions{Dir: dir, StateFile: filepath.Join(dir, "s.json"), Consent: true, Settle: 200 * time.Millisecond}, rec.submit)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		f.Write([]byte(strings.Repeat("x", 1000)))
		a.Scan(context.Background())
		time.Sleep(60 * time.Millisecond)
	}
	if len(rec.sent()) != 0 {
		t.Fatalf("sent while being written: %v", rec.sent())
	}
	f.Close()
	scanUntilSettled(a, 200*time.Millisecond)
	if len(rec.sent()) != 1 {
		t.Errorf("sent %v after the file settled", rec.sent())
	}
}

// TestAgentOfflineBackoff: while the server is unreachable the agent keeps
// the dump and retries after a growing delay.
func TestAgentOfflineBackoff(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x.dmp"), []byte("dump bytes"), 0o600)
	rec := &recorder{fail: 1}
	a, err := NewAgent(AgentOptions{Dir: dir, StateFile: filepath.Join(dir, "s.json"), Consent: true, Settle: 10 * time.Millisecond}, rec.submit)
	if err != nil {
		t.Fatal(err)
	}
	scanUntilSettled(a, 10*time.Millisecond) // fails: retry in 2s
	a.Scan(context.Background())
	if len(rec.sent()) != 0 {
		t.Fatal("retried before the backoff elapsed")
	}
	a.pending[filepath.Join(dir, "x.dmp")].nextTry = time.Now() // the backoff has elapsed
	a.Scan(context.Background())
	if len(rec.sent()) != 1 {
		t.Errorf("not sent after the backoff: %v", rec.sent())
	}
}

// TestAgentWaitsForRequiredDumpSpace: a kernel dump whose header asks for
// more bytes than the file holds (Windows still copying it) is not sent
// even though its size has settled; once complete it is. One that stays
// short past the grace period is sent as it is.
func TestAgentWaitsForRequiredDumpSpace(t *testing.T) {
	full, err := os.ReadFile(synthKernel(t, 1)[0])
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		data       []byte
		afterGrace bool
		want       int
	}{
		{"complete", full, false, 1},
		{"half written", full[:len(full)/2], false, 0},
		{"half written past the grace", full[:len(full)/2], true, 1},
		{"not a kernel dump", []byte("MDMP and whatever"), false, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "MEMORY.DMP")
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			rec := &recorder{}
			a, err := NewAgent(AgentOptions{Dir: dir, StateFile: filepath.Join(t.TempDir(), "s.json"), Consent: true, Include: []string{"*.dmp"},
				Settle: 20 * time.Millisecond}, rec.submit)
			if err != nil {
				t.Fatal(err)
			}
			a.Scan(context.Background())
			if tc.afterGrace {
				a.pending[path].stableSince = time.Now().Add(-a.incompleteGrace())
			}
			time.Sleep(40 * time.Millisecond)
			a.Scan(context.Background())
			if got := len(rec.sent()); got != tc.want {
				t.Errorf("sent %d, want %d", got, tc.want)
			}
			if tc.want == 0 { // completed now: sent on the scans after Settle
				if err := os.WriteFile(path, full, 0o600); err != nil {
					t.Fatal(err)
				}
				scanUntilSettled(a, 20*time.Millisecond)
				if got := len(rec.sent()); got != 1 {
					t.Errorf("sent %d once complete, want 1", got)
				}
			}
		})
	}
}
