package workers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Meta is the endpoint metadata a submission carries.
type Meta struct {
	Host   string
	Tenant string
	Labels map[string]string
	// CollectedAt is when the dump was written (default: file mtime).
	CollectedAt time.Time
}

// SubmitOptions configure a Submitter.
type SubmitOptions struct {
	// BytesPerSecond caps the upload bandwidth (0: unlimited).
	BytesPerSecond int64
	// ChunkSize is the object store chunk size. Default: one chunk for a
	// dump up to 512 KiB (a small memory dump travels as one message),
	// 128 KiB chunks for larger dumps (the reading worker's buffers scale
	// with the chunk size). The server's max_payload must be larger.
	ChunkSize uint32
	// Timeout bounds the job publish (default 10s).
	Timeout time.Duration
}

// Submitter uploads dumps and publishes jobs. It needs only publish rights
// on the object store bucket and DUMPS (see docs/pipeline.md).
type Submitter struct {
	js   jetstream.JetStream
	obs  jetstream.ObjectStore
	opts SubmitOptions
}

// maxUploadInFlight bounds the chunks an upload has in flight: the client
// holds them until acknowledged (16 x 128 KiB = 2 MiB on an endpoint) and
// the server refuses more than it can queue (429 too many requests).
const maxUploadInFlight = 16

// NewSubmitter binds the object store bucket DumpBucket.
func NewSubmitter(ctx context.Context, js jetstream.JetStream, opts SubmitOptions) (*Submitter, error) {
	// A JetStream context of our own caps the asynchronous chunk publishes.
	jo := js.Options()
	jopts := []jetstream.JetStreamOpt{jetstream.WithPublishAsyncMaxPending(maxUploadInFlight)}
	if jo.DefaultTimeout > 0 {
		jopts = append(jopts, jetstream.WithDefaultTimeout(jo.DefaultTimeout))
	}
	var err error
	switch {
	case jo.Domain != "":
		js, err = jetstream.NewWithDomain(js.Conn(), jo.Domain, jopts...)
	case jo.APIPrefix != "" && jo.APIPrefix != "$JS.API.":
		js, err = jetstream.NewWithAPIPrefix(js.Conn(), jo.APIPrefix, jopts...)
	default:
		js, err = jetstream.New(js.Conn(), jopts...)
	}
	if err != nil {
		return nil, err
	}
	obs, err := js.ObjectStore(ctx, DumpBucket)
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", DumpBucket, err)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	return &Submitter{js: js, obs: obs, opts: opts}, nil
}

// SubmitResult describes one submission.
type SubmitResult struct {
	Path   string
	SHA256 string
	Size   int64
	// Uploaded is false when the object store already held the bytes.
	Uploaded bool
	// Duplicate is true when the server dropped the job as a duplicate
	// (same SHA-256 inside the duplicate window).
	Duplicate bool
	// Seq is the job's sequence in DUMPS.
	Seq uint64
}

// HashFile returns the hex SHA-256 and size of a file.
func HashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Submit uploads the file at path (unless the object store already has
// its SHA-256) and publishes its job.
func (s *Submitter) Submit(ctx context.Context, path string, meta Meta) (*SubmitResult, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	sum, size, err := HashFile(path)
	if err != nil {
		return nil, err
	}
	res := &SubmitResult{Path: path, SHA256: sum, Size: size}
	info, err := s.obs.GetInfo(ctx, sum)
	switch {
	case err == nil && !info.Deleted && int64(info.Size) == size:
	case err == nil || errors.Is(err, jetstream.ErrObjectNotFound):
		if err := s.upload(ctx, path, sum); err != nil {
			return nil, err
		}
		res.Uploaded = true
	default:
		return nil, fmt.Errorf("looking up %s: %w", sum, err)
	}
	if meta.CollectedAt.IsZero() {
		meta.CollectedAt = fi.ModTime().UTC()
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	job := &Job{
		SHA256: sum, Size: size, Name: filepath.Base(path), Path: abs, Host: meta.Host, Tenant: meta.Tenant,
		CollectedAt: meta.CollectedAt, SubmittedAt: time.Now().UTC(), Labels: meta.Labels,
	}
	ack, err := s.publish(ctx, job)
	if err != nil {
		return nil, err
	}
	res.Duplicate, res.Seq = ack.Duplicate, ack.Sequence
	return res, nil
}

func (s *Submitter) publish(ctx context.Context, job *Job) (*jetstream.PubAck, error) {
	m, err := job.msg()
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	ack, err := s.js.PublishMsg(pctx, m, jetstream.WithExpectStream(JobStream))
	if err != nil {
		return nil, fmt.Errorf("publishing job %s: %w", job.SHA256, err)
	}
	return ack, nil
}

// upload puts the file in the object store under sum, reading it again
// through the bandwidth limiter and checking it still hashes to sum.
func (s *Submitter) upload(ctx context.Context, path, sum string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if s.opts.BytesPerSecond > 0 {
		r = NewRateReader(ctx, r, s.opts.BytesPerSecond)
	}
	chunk := s.opts.ChunkSize
	if chunk == 0 {
		chunk = 128 << 10
		if fi, err := f.Stat(); err == nil && fi.Size() <= 512<<10 {
			chunk = uint32(max(fi.Size(), 1))
		}
	}
	// putObject refuses to name the object sum unless the bytes sent hash
	// to it (ErrChangedWhileUploading): nothing is stored for a file that
	// changed since it was hashed, and the agent tries again later.
	if _, err := putObject(ctx, s.js, sum, filepath.Base(path), chunk, maxUploadInFlight, r); err != nil {
		if errors.Is(err, ErrChangedWhileUploading) {
			return fmt.Errorf("%s: %w; try again once it is completely written", path, ErrChangedWhileUploading)
		}
		return fmt.Errorf("uploading %s: %w", path, err)
	}
	return nil
}

// Reprocess publishes reprocessing jobs for the given stored dumps (all
// stored dumps when shas is empty). Workers re-run the analysis when the
// rule set or analyzer changed (always with force) and publish superseding
// reports. It returns the number of jobs published.
func (s *Submitter) Reprocess(ctx context.Context, shas []string, force bool) (int, error) {
	if len(shas) == 0 {
		infos, err := s.obs.List(ctx)
		if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
			return 0, fmt.Errorf("listing %s: %w", DumpBucket, err)
		}
		for _, in := range infos {
			if !in.Deleted && validSHA256(in.Name) {
				shas = append(shas, in.Name)
			}
		}
	}
	n := 0
	for _, sha := range shas {
		if !validSHA256(sha) {
			return n, fmt.Errorf("%q is not a SHA-256", sha)
		}
		job := &Job{SHA256: sha, SubmittedAt: time.Now().UTC(), Reprocess: true, Force: force}
		if _, err := s.publish(ctx, job); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
