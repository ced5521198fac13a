package workers

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"

	"github.com/kdtriage/kdtriage/kdump"
)

// SubmitFunc submits one file; the agent calls it and retries on error.
type SubmitFunc func(ctx context.Context, path string, meta Meta) (*SubmitResult, error)

// AgentOptions are an endpoint's local policy: what may leave the machine.
type AgentOptions struct {
	// Dir is the watched directory (e.g. C:\Windows\Minidump).
	Dir string
	// StateFile remembers what was sent (required; never inside Dir is best).
	StateFile string
	// Consent must be true for anything to be sent. With consent off the
	// agent only logs what it would have sent.
	Consent bool
	// Include and Exclude are filepath.Match patterns on the base name,
	// case-insensitive. Include defaults to "*.dmp".
	Include, Exclude []string
	// SmallLimit is the size up to which a dump counts as small and is
	// always eligible (default 16 MiB). Triage (small memory) dumps are
	// small whatever their size.
	SmallLimit int64
	// AllowFull allows larger dumps (MEMORY.DMP: kernel, complete, bitmap).
	AllowFull bool
	// MaxSize caps the size of larger dumps (0: no cap).
	MaxSize int64
	// DeleteAfterSubmit deletes a dump once the server has it. Off by
	// default: the user's dumps are never touched otherwise.
	DeleteAfterSubmit bool
	// Settle is how long size and modification time must stay unchanged
	// before a dump counts as completely written (default 5s).
	Settle time.Duration
	// Rescan is the periodic full-scan interval (default 30s); file
	// system events trigger earlier scans.
	Rescan time.Duration
	// MaxBackoff caps the retry delay while the server is unreachable
	// (default 5m).
	MaxBackoff time.Duration
	// Meta is attached to every submission (host, tenant, labels).
	Meta Meta
	// Log receives the agent's events.
	Log zerolog.Logger
}

// Agent watches a dump directory and submits finished dumps under a local
// policy, remembering what it sent.
type Agent struct {
	opts    AgentOptions
	submit  SubmitFunc
	state   agentState
	pending map[string]*candidate
}

type candidate struct {
	size        int64
	mtime       time.Time
	stableSince time.Time
	attempts    int
	nextTry     time.Time
}

// agentState is the persisted record of sent dumps.
type agentState struct {
	Version int                  `json:"version"`
	Sent    map[string]sentEntry `json:"sent"` // key: path|size|mtime
}

type sentEntry struct {
	Path        string    `json:"path"`
	SHA256      string    `json:"sha256"`
	Size        int64     `json:"size"`
	SubmittedAt time.Time `json:"submitted_at"`
	Deleted     bool      `json:"deleted,omitempty"`
}

// NewAgent loads the state file and returns an agent.
func NewAgent(opts AgentOptions, submit SubmitFunc) (*Agent, error) {
	if opts.Dir == "" || opts.StateFile == "" {
		return nil, errors.New("workers: agent needs Dir and StateFile")
	}
	if submit == nil {
		return nil, errors.New("workers: agent needs a SubmitFunc")
	}
	if len(opts.Include) == 0 {
		opts.Include = []string{"*.dmp"}
	}
	if opts.SmallLimit <= 0 {
		opts.SmallLimit = 16 << 20
	}
	if opts.Settle <= 0 {
		opts.Settle = 5 * time.Second
	}
	if opts.Rescan <= 0 {
		opts.Rescan = 30 * time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Minute
	}
	for _, p := range append(append([]string{}, opts.Include...), opts.Exclude...) {
		if _, err := filepath.Match(p, ""); err != nil {
			return nil, fmt.Errorf("pattern %q: %w", p, err)
		}
	}
	a := &Agent{opts: opts, submit: submit, pending: map[string]*candidate{},
		state: agentState{Version: 1, Sent: map[string]sentEntry{}}}
	data, err := os.ReadFile(opts.StateFile)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("agent state: %w", err)
	default:
		if err := json.Unmarshal(data, &a.state); err != nil {
			return nil, fmt.Errorf("agent state %s: %w", opts.StateFile, err)
		}
		if a.state.Sent == nil {
			a.state.Sent = map[string]sentEntry{}
		}
	}
	return a, nil
}

// Run watches the directory until ctx is cancelled.
func (a *Agent) Run(ctx context.Context) error {
	log := a.opts.Log
	w, err := fsnotify.NewWatcher()
	var events chan fsnotify.Event
	if err == nil {
		defer w.Close()
		if err := w.Add(a.opts.Dir); err != nil {
			log.Warn().Err(err).Msg("no file system events: periodic scans only")
		} else {
			events = w.Events
		}
	}
	tick := time.NewTicker(min(a.opts.Settle, a.opts.Rescan))
	defer tick.Stop()
	lastFull := time.Time{}
	for {
		if time.Since(lastFull) >= a.opts.Rescan || len(a.pending) > 0 {
			a.Scan(ctx)
			lastFull = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil
		case ev := <-events:
			log.Debug().Str("file", ev.Name).Str("op", ev.Op.String()).Msg("dump directory event")
			lastFull = time.Time{}
		case <-tick.C:
		}
	}
}

// Scan makes one pass over the directory: new or changed files become
// candidates, candidates stable for Settle are checked against the policy
// and submitted. It returns how many dumps were submitted.
func (a *Agent) Scan(ctx context.Context) int {
	log := a.opts.Log
	ents, err := os.ReadDir(a.opts.Dir)
	if err != nil {
		log.Warn().Err(err).Str("dir", a.opts.Dir).Msg("scanning")
		return 0
	}
	now := time.Now()
	seen := map[string]bool{}
	sent := 0
	for _, e := range ents {
		if !e.Type().IsRegular() || !a.matches(e.Name()) {
			continue
		}
		path := filepath.Join(a.opts.Dir, e.Name())
		fi, err := e.Info()
		if err != nil {
			continue
		}
		seen[path] = true
		key := sentKey(path, fi)
		if _, done := a.state.Sent[key]; done {
			delete(a.pending, path)
			continue
		}
		c := a.pending[path]
		if c == nil || c.size != fi.Size() || !c.mtime.Equal(fi.ModTime()) {
			a.pending[path] = &candidate{size: fi.Size(), mtime: fi.ModTime(), stableSince: now}
			continue
		}
		if now.Sub(c.stableSince) < a.opts.Settle || now.Before(c.nextTry) {
			continue
		}
		// Windows' directory listing can lag behind a file still open for
		// writing: take the size from the file itself.
		if cur, err := os.Stat(path); err != nil || cur.Size() != c.size || !cur.ModTime().Equal(c.mtime) {
			delete(a.pending, path)
			continue
		}
		if ok, why := a.allowed(path, fi.Size(), now.Sub(c.stableSince) >= a.incompleteGrace()); !ok {
			if why != "" {
				log.Info().Str("file", path).Str("reason", why).Msg("not sent (policy)")
				a.state.Sent[key] = sentEntry{Path: path, Size: fi.Size(), SubmittedAt: time.Time{}}
				a.save()
			}
			delete(a.pending, path)
			continue
		}
		if !a.opts.Consent {
			log.Info().Str("file", path).Msg("consent is off: not sent")
			c.nextTry = now.Add(a.opts.Rescan)
			continue
		}
		res, err := a.submit(ctx, path, a.opts.Meta)
		if err != nil {
			c.attempts++
			d := min(time.Duration(1<<min(c.attempts, 20))*time.Second, a.opts.MaxBackoff)
			c.nextTry = now.Add(d)
			log.Warn().Err(err).Str("file", path).Dur("retry_in", d).Msg("submit failed")
			continue
		}
		ent := sentEntry{Path: path, SHA256: res.SHA256, Size: res.Size, SubmittedAt: time.Now().UTC()}
		if a.opts.DeleteAfterSubmit {
			if err := os.Remove(path); err != nil {
				log.Warn().Err(err).Str("file", path).Msg("delete after submit")
			} else {
				ent.Deleted = true
			}
		}
		a.state.Sent[key] = ent
		a.save()
		delete(a.pending, path)
		sent++
		log.Info().Str("file", path).Str("sha256", res.SHA256).Bool("uploaded", res.Uploaded).Msg("submitted")
	}
	for p := range a.pending {
		if !seen[p] {
			delete(a.pending, p)
		}
	}
	return sent
}

func sentKey(path string, fi os.FileInfo) string {
	return fmt.Sprintf("%s|%d|%d", path, fi.Size(), fi.ModTime().UnixNano())
}

func (a *Agent) matches(name string) bool {
	n := strings.ToLower(name)
	in := false
	for _, p := range a.opts.Include {
		if ok, _ := filepath.Match(strings.ToLower(p), n); ok {
			in = true
			break
		}
	}
	if !in {
		return false
	}
	for _, p := range a.opts.Exclude {
		if ok, _ := filepath.Match(strings.ToLower(p), n); ok {
			return false
		}
	}
	return true
}

// allowed applies the size policy. It also checks that the file can be
// opened and read (a dump still being written by Windows is locked). A
// false result with an empty reason means "not yet".
//
// A kernel dump whose header asks for more bytes (RequiredDumpSpace) than
// the file has is still being written: "not yet", until it has been
// stable for incompleteGrace (then it is a truncated dump, sent as it is
// for the analysis to report).
func (a *Agent) allowed(path string, size int64, pastGrace bool) (bool, string) {
	f, err := os.Open(path)
	if err != nil {
		return false, ""
	}
	defer f.Close()
	var head [8]byte
	if _, err := f.ReadAt(head[:], 0); err != nil && !errors.Is(err, io.EOF) {
		return false, ""
	}
	if need := requiredDumpSpace(f, head); need > uint64(size) {
		if !pastGrace {
			a.opts.Log.Debug().Str("file", path).Int64("size", size).Uint64("required", need).Msg("dump not completely written yet")
			return false, ""
		}
		a.opts.Log.Warn().Str("file", path).Int64("size", size).Uint64("required", need).Msg("dump shorter than its header says: sent as it is")
	}
	if size <= a.opts.SmallLimit {
		return true, ""
	}
	if kf, err := kdump.NewFile(f, size); err == nil {
		small := kf.Header().DumpType == kdump.DumpTypeTriage
		kf.Close()
		if small {
			return true, ""
		}
	}
	if !a.opts.AllowFull {
		return false, fmt.Sprintf("larger dump (%d bytes) and full dumps are not allowed", size)
	}
	if a.opts.MaxSize > 0 && size > a.opts.MaxSize {
		return false, fmt.Sprintf("%d bytes is above the %d-byte cap", size, a.opts.MaxSize)
	}
	return true, ""
}

// incompleteGrace is how long a dump that looks incompletely written must
// stay unchanged before it is sent anyway.
func (a *Agent) incompleteGrace() time.Duration {
	return max(10*a.opts.Settle, 2*time.Minute)
}

// requiredDumpSpace returns a kernel dump header's RequiredDumpSpace (the
// complete file's size, at 0xFA0 in both the 32- and 64-bit headers), or 0
// when the file is no kernel dump or the field is unset.
func requiredDumpSpace(f io.ReaderAt, head [8]byte) uint64 {
	if h := string(head[:]); h != "PAGEDU64" && h != "PAGEDUMP" {
		return 0
	}
	var b [8]byte
	if _, err := f.ReadAt(b[:], 0xFA0); err != nil {
		return 0
	}
	v := binary.LittleEndian.Uint64(b[:])
	if v == 0x4547415045474150 { // "PAGEPAGE": the header's fill, unset
		return 0
	}
	return v
}

// save writes the state file atomically.
func (a *Agent) save() {
	data, err := json.MarshalIndent(&a.state, "", "  ")
	if err != nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(a.opts.StateFile), 0o700); err != nil {
		a.opts.Log.Warn().Err(err).Msg("agent state")
		return
	}
	tmp := a.opts.StateFile + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		a.opts.Log.Warn().Err(err).Msg("agent state")
		return
	}
	if err := os.Rename(tmp, a.opts.StateFile); err != nil {
		a.opts.Log.Warn().Err(err).Msg("agent state")
	}
}

// Sent lists the SHA-256s the agent has submitted, sorted.
func (a *Agent) Sent() []string {
	var out []string
	for _, e := range a.state.Sent {
		if e.SHA256 != "" {
			out = append(out, e.SHA256)
		}
	}
	sort.Strings(out)
	return out
}
