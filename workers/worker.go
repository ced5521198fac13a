package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/kdtriage/kdtriage/triage"
)

// State is the analysis state of one dump, kept in StateBucket under its
// SHA-256.
type State struct {
	Status      string `json:"status"` // StatusOK or StatusFailed
	ReportID    string `json:"report_id"`
	RuleSetHash string `json:"rule_set_hash,omitempty"`
	Analyzer    string `json:"analyzer,omitempty"`
	Bucket      string `json:"failure_bucket_id,omitempty"`
	Hash        string `json:"failure_id_hash,omitempty"`
	Error       string `json:"error,omitempty"`
	// Permanent marks a failure that is a property of the dump; a new
	// submission of a dump whose failure was not permanent is analysed again.
	Permanent  bool      `json:"permanent,omitempty"`
	AnalyzedAt time.Time `json:"analyzed_at"`
	Job        Job       `json:"job"`
}

// PoolOptions configure a worker pool.
type PoolOptions struct {
	// Slots is the number of jobs processed at once (default: CPU count).
	Slots int
	// Analyzer analyses spooled dumps (required).
	Analyzer Analyzer
	// SpoolDir holds the temporary dump copies (default os.TempDir()).
	SpoolDir string
	// Config must match the Config given to Setup (AckWait, MaxDeliver,
	// MaxDumpSize are used here).
	Config Config
	// Name identifies this worker process in reports (default host:pid).
	Name string
	// DrainTimeout bounds how long jobs in flight may run after the context
	// is cancelled before they are handed back (Nak). Default 30s.
	DrainTimeout time.Duration
	// FetchWait is how long one pull request waits (default 5s).
	FetchWait time.Duration
	// Log receives the pool's events.
	Log zerolog.Logger
	// Metrics records counters and latencies (may be nil).
	Metrics *Metrics
}

// Pool is a set of worker slots sharing the durable consumer WorkerConsumer.
type Pool struct {
	as   *Assets
	opts PoolOptions
	cons jetstream.Consumer
	log  zerolog.Logger
	m    *Metrics
}

// NewPool binds a pool to the pipeline's assets.
func NewPool(ctx context.Context, as *Assets, opts PoolOptions) (*Pool, error) {
	if opts.Analyzer == nil {
		return nil, errors.New("workers: PoolOptions.Analyzer is nil")
	}
	opts.Config = opts.Config.withDefaults()
	if opts.Slots <= 0 {
		opts.Slots = runtime.NumCPU()
	}
	if opts.SpoolDir == "" {
		opts.SpoolDir = os.TempDir()
	}
	if opts.Name == "" {
		h, _ := os.Hostname()
		opts.Name = fmt.Sprintf("%s:%d", h, os.Getpid())
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	if opts.FetchWait <= 0 {
		opts.FetchWait = 5 * time.Second
	}
	cons, err := as.JS.Consumer(ctx, JobStream, WorkerConsumer)
	if err != nil {
		return nil, fmt.Errorf("consumer %s/%s: %w", JobStream, WorkerConsumer, err)
	}
	// The consumer's own settings win: a worker process started with other
	// flags than the server must still heartbeat in time.
	if info := cons.CachedInfo(); info != nil {
		if info.Config.AckWait > 0 {
			opts.Config.AckWait = info.Config.AckWait
		}
		if info.Config.MaxDeliver > 0 {
			opts.Config.MaxDeliver = info.Config.MaxDeliver
		}
	}
	sweepSpool(opts.SpoolDir, staleSpoolAge, opts.Log)
	return &Pool{as: as, opts: opts, cons: cons, log: opts.Log, m: opts.Metrics}, nil
}

// staleSpoolAge is the age past which a spool file cannot belong to a live
// job: the copy of a worker that was killed (SIGKILL, out of memory) while
// it held a job, which nobody else removes.
const staleSpoolAge = 24 * time.Hour

// sweepSpool removes spool files (kdtriage-spool-*.dmp) in dir last written
// more than maxAge ago, so that workers killed on the same huge dump again
// and again do not fill the spool disk.
func sweepSpool(dir string, maxAge time.Duration, log zerolog.Logger) {
	files, _ := filepath.Glob(filepath.Join(dir, spoolPattern))
	for _, f := range files {
		fi, err := os.Lstat(f)
		if err != nil || !fi.Mode().IsRegular() || time.Since(fi.ModTime()) < maxAge {
			continue
		}
		if err := os.Remove(f); err != nil {
			log.Warn().Err(err).Str("file", f).Msg("removing a stale spool file")
			continue
		}
		log.Info().Str("file", f).Int64("bytes", fi.Size()).Time("written", fi.ModTime()).Msg("stale spool file removed")
	}
}

// Run processes jobs until ctx is cancelled, then drains: no new job is
// fetched and the jobs in flight finish (or, after DrainTimeout, are handed
// back with Nak). It returns nil after a clean drain.
func (p *Pool) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := 0; i < p.opts.Slots; i++ {
		wg.Add(1)
		go func(slot int) {
			defer wg.Done()
			p.slot(ctx, slot)
		}(i)
	}
	wg.Wait()
	p.log.Info().Msg("workers drained")
	return nil
}

func (p *Pool) slot(ctx context.Context, slot int) {
	log := p.log.With().Int("slot", slot).Logger()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		msg, err := next(ctx, p.cons, p.opts.FetchWait)
		if ctx.Err() != nil {
			return
		}
		if err == nil && msg == nil {
			continue
		}
		if err != nil {
			log.Warn().Err(err).Msg("fetching job")
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		p.handle(ctx, msg, log)
	}
}

// handle processes one job. The job's own context survives ctx's
// cancellation for DrainTimeout, so a drain lets it finish.
func (p *Pool) handle(ctx context.Context, msg jetstream.Msg, log zerolog.Logger) {
	jctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(p.opts.DrainTimeout, cancel)
		context.AfterFunc(jctx, func() { t.Stop() })
	})
	defer stop()

	p.m.Gauge(metricInFlight, "", "Jobs being processed.", 1)
	defer p.m.Gauge(metricInFlight, "", "Jobs being processed.", -1)

	md, err := msg.Metadata()
	if err != nil {
		log.Error().Err(err).Msg("job without metadata")
		msg.Term()
		return
	}
	var job Job
	err = json.Unmarshal(msg.Data(), &job)
	if err == nil {
		err = job.Validate()
	}
	if err != nil {
		err = Permanent(fmt.Errorf("%w: %v", errBadJob, err))
		log.Warn().Err(err).Uint64("seq", md.Sequence.Stream).Msg("malformed job")
		p.deadLetter(jctx, msg.Subject(), msg.Data(), md.Sequence.Stream, err)
		p.m.Add(metricJobs, `outcome="failed"`, "Jobs processed by outcome.", 1)
		msg.TermWithReason("malformed job")
		return
	}
	log = log.With().Str("dump", job.SHA256).Uint64("delivery", md.NumDelivered).Logger()
	log.Debug().Msg("job received")

	prev, err := p.state(jctx, job.SHA256)
	if err != nil {
		p.retry(msg, md, log, err)
		return
	}
	if skip(prev, &job, p.opts.Analyzer) {
		log.Debug().Str("report", prev.ReportID).Msg("already analysed: skipped")
		p.m.Add(metricJobs, `outcome="skipped"`, "Jobs processed by outcome.", 1)
		p.ack(jctx, msg, log)
		return
	}

	// Heartbeats keep the job ours while we work.
	hbStop := make(chan struct{})
	var hbWG sync.WaitGroup
	hbWG.Add(1)
	go func() {
		defer hbWG.Done()
		t := time.NewTicker(p.opts.Config.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-hbStop:
				return
			case <-t.C:
				if err := msg.InProgress(); err != nil {
					log.Warn().Err(err).Msg("heartbeat")
				}
			}
		}
	}()
	start := time.Now()
	res, aerr := p.analyze(jctx, &job, msg)
	close(hbStop)
	hbWG.Wait()
	p.m.Observe(metricAnalysis, "Time from fetch to verdict, seconds.", time.Since(start).Seconds())

	switch {
	case aerr == nil:
		env := p.envelope(&job, md, prev)
		env.Status = StatusOK
		env.Bucket, env.Hash, env.Severity, env.Owner = res.Bucket, res.Hash, res.Severity, res.Owner
		env.RuleSetHash = res.RuleSetHash
		env.Report = res.Report
		env.ReportID = reportID(job.SHA256, res.RuleSetHash, env.Analyzer, gen(&job))
		if err := p.publish(jctx, env, &job, ""); err != nil {
			p.retry(msg, md, log, err)
			return
		}
		p.m.Add(metricJobs, `outcome="ok"`, "Jobs processed by outcome.", 1)
		log.Info().Str("bucket", env.Bucket).Str("report", env.ReportID).Dur("took", time.Since(start)).Msg("analysed")
		p.ack(jctx, msg, log)
	case IsPermanent(aerr):
		p.fail(jctx, msg, md, &job, prev, aerr, log)
	case jctx.Err() != nil:
		// Drain deadline: hand the job back at once.
		log.Warn().Err(aerr).Msg("drain timeout: job handed back")
		msg.Nak()
	default:
		p.retry(msg, md, log, aerr)
	}
}

// skip reports whether a job needs no analysis: a new submission of a dump
// that already has a report (or a permanent failure), or a reprocessing job
// (without Force) whose rule set and analyzer have not changed.
func skip(prev *State, job *Job, an Analyzer) bool {
	if prev == nil {
		return false
	}
	if !job.Reprocess {
		return prev.Status == StatusOK || prev.Permanent
	}
	return !job.Force && prev.RuleSetHash == an.RuleSetHash() && prev.Analyzer == an.Version()
}

func gen(j *Job) int64 {
	if j.Force {
		return j.SubmittedAt.UnixNano()
	}
	return 0
}

// analyze spools the dump and runs the analyzer, turning a panic into a
// permanent error.
func (p *Pool) analyze(ctx context.Context, job *Job, msg jetstream.Msg) (res *Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error().Str("dump", job.SHA256).Interface("panic", r).Bytes("stack", debug.Stack()).Msg("analyzer panic")
			res, err = nil, Permanent(fmt.Errorf("%w: %v", errAnalyzerPanic, r))
		}
	}()
	path, err := spool(ctx, p.as.Dumps, job.SHA256, p.opts.SpoolDir, p.opts.Config.MaxDumpSize, func() { msg.InProgress() })
	if err != nil {
		return nil, err
	}
	defer os.Remove(path)
	if fi, err := os.Stat(path); err == nil {
		p.m.Add(metricSpooled, "", "Dump bytes spooled from the object store.", uint64(fi.Size()))
	}
	res, err = p.opts.Analyzer.Analyze(ctx, path, job)
	if err == nil && res == nil {
		err = errors.New("analyzer returned no result")
	}
	return res, err
}

func (p *Pool) envelope(job *Job, md *jetstream.MsgMetadata, prev *State) *Envelope {
	e := &Envelope{
		SchemaVersion: 1,
		Dump:          *job,
		Analyzer:      p.opts.Analyzer.Version(),
		AnalyzedAt:    time.Now().UTC(),
		Worker:        p.opts.Name,
	}
	if md != nil {
		e.Deliveries = md.NumDelivered
	}
	if prev != nil {
		e.Supersedes = prev.ReportID
		if job.Reprocess {
			// A reprocessing job carries no endpoint metadata: keep the
			// original submission's.
			orig := prev.Job
			orig.Reprocess, orig.Force = true, job.Force
			e.Dump = orig
		}
	}
	return e
}

// publish publishes env on REPORTS (idempotent through its report ID) and
// records the state.
func (p *Pool) publish(ctx context.Context, env *Envelope, job *Job, errText string) error {
	return publishReport(ctx, p.as, env, job, errText, p.m)
}

func publishReport(ctx context.Context, as *Assets, env *Envelope, job *Job, errText string, m *Metrics) error {
	msg, err := envelopeMsg(env)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := as.JS.PublishMsg(pctx, msg); err != nil {
		return fmt.Errorf("publishing report %s: %w", env.ReportID, err)
	}
	st := State{
		Status: env.Status, ReportID: env.ReportID, RuleSetHash: env.RuleSetHash, Analyzer: env.Analyzer,
		Bucket: env.Bucket, Hash: env.Hash, Error: errText, Permanent: env.Permanent, AnalyzedAt: env.AnalyzedAt, Job: env.Dump,
	}
	st.Job.Reprocess, st.Job.Force = false, false
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if _, err := as.State.Put(pctx, job.SHA256, data); err != nil {
		return fmt.Errorf("recording state of %s: %w", job.SHA256, err)
	}
	m.Add(metricReports, fmt.Sprintf("status=%q", env.Status), "Reports published by status.", 1)
	if !env.Dump.SubmittedAt.IsZero() && !env.Dump.Reprocess {
		m.Observe(metricLatency, "Time from submission to published report, seconds.", since(env.Dump.SubmittedAt))
	}
	return nil
}

// fail publishes a failure report and a dead-letter copy, then terminates
// the job.
func (p *Pool) fail(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, job *Job, prev *State, cause error, log zerolog.Logger) {
	env := failureEnvelope(p.envelope(job, md, prev), cause, p.opts.Analyzer.RuleSetHash())
	if err := p.publish(ctx, env, job, cause.Error()); err != nil {
		// Not p.retry: on the last delivery it would call fail again, and
		// recurse for as long as REPORTS cannot be written. After the last
		// delivery the server raises the MaxDeliver advisory and the keeper
		// writes the failure report.
		p.nakLater(msg, md, log, fmt.Errorf("%w (while reporting: %v)", err, cause))
		return
	}
	p.deadLetter(ctx, msg.Subject(), msg.Data(), md.Sequence.Stream, cause)
	p.m.Add(metricJobs, `outcome="failed"`, "Jobs processed by outcome.", 1)
	log.Warn().Err(cause).Str("report", env.ReportID).Msg("permanent failure: dead-lettered")
	if err := msg.TermWithReason(truncate(cause.Error(), 200)); err != nil {
		log.Warn().Err(err).Msg("term")
	}
}

func failureEnvelope(e *Envelope, cause error, ruleSet string) *Envelope {
	e.Status = StatusFailed
	e.Error = cause.Error()
	// A missing object ends the job but says nothing about the dump (its
	// bytes expired with the retention, perhaps while the job waited): a
	// new submission uploads them again and must be analysed.
	e.Permanent = IsPermanent(cause) && !errors.Is(cause, errMissingObject)
	e.Bucket = failureBucket(cause)
	e.Hash = triage.FailureIDHash(triage.SourceKernel, e.Bucket)
	e.Severity = "info"
	e.Owner = "kdtriage"
	e.RuleSetHash = ruleSet
	e.ReportID = reportID(e.Dump.SHA256, ruleSet, e.Analyzer+"|failed", gen(&e.Dump))
	return e
}

// retry hands a job back after a transient error, with a delay growing with
// the delivery count; on the last allowed delivery it dead-letters it.
func (p *Pool) retry(msg jetstream.Msg, md *jetstream.MsgMetadata, log zerolog.Logger, cause error) {
	if md != nil && md.NumDelivered >= uint64(p.opts.Config.MaxDeliver) {
		var job Job
		if json.Unmarshal(msg.Data(), &job) == nil && job.Validate() == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			prev, _ := p.state(ctx, job.SHA256)
			p.fail(ctx, msg, md, &job, prev, fmt.Errorf("%w (%d): last error: %v", errMaxDeliveries, md.NumDelivered, cause), log)
			return
		}
	}
	p.nakLater(msg, md, log, cause)
}

// nakLater hands a job back with a delay growing with its delivery count.
func (p *Pool) nakLater(msg jetstream.Msg, md *jetstream.MsgMetadata, log zerolog.Logger, cause error) {
	n := uint64(1)
	if md != nil {
		n = md.NumDelivered
	}
	delay := min(time.Duration(1<<min(n, 10))*250*time.Millisecond, 2*time.Minute)
	log.Warn().Err(cause).Dur("retry_in", delay).Msg("transient failure")
	p.m.Add(metricJobs, `outcome="retry"`, "Jobs processed by outcome.", 1)
	if err := msg.NakWithDelay(delay); err != nil {
		log.Warn().Err(err).Msg("nak")
	}
}

func (p *Pool) ack(ctx context.Context, msg jetstream.Msg, log zerolog.Logger) {
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := msg.DoubleAck(actx); err != nil {
		// The report is out and the state recorded: a redelivery is skipped.
		log.Warn().Err(err).Msg("ack")
	}
}

func (p *Pool) state(ctx context.Context, sha string) (*State, error) {
	return getState(ctx, p.as.State, sha)
}

func getState(ctx context.Context, kv jetstream.KeyValue, sha string) (*State, error) {
	e, err := kv.Get(ctx, sha)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state of %s: %w", sha, err)
	}
	var st State
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return nil, nil // unreadable state: analyse again
	}
	return &st, nil
}

// deadLetter copies a job into DEADLETTER with the reason.
func (p *Pool) deadLetter(ctx context.Context, subject string, data []byte, seq uint64, cause error) {
	if err := deadLetter(ctx, p.as.JS, subject, data, seq, cause); err != nil {
		p.log.Error().Err(err).Msg("dead letter")
		return
	}
	p.m.Add(metricDeadLetter, "", "Jobs copied to the dead-letter stream.", 1)
}

func deadLetter(ctx context.Context, js jetstream.JetStream, subject string, data []byte, seq uint64, cause error) error {
	var job Job
	token := "unknown"
	if json.Unmarshal(data, &job) == nil && validSHA256(job.SHA256) {
		token = job.SHA256
	}
	m := nats.NewMsg(subjectDeadLetter + token)
	m.Data = data
	m.Header.Set(nats.MsgIdHdr, fmt.Sprintf("dl-%s-%d", token, seq))
	m.Header.Set(HeaderReason, headerValue(cause.Error()))
	m.Header.Set("Kdtriage-Original-Subject", headerValue(subject))
	m.Header.Set("Kdtriage-Original-Seq", fmt.Sprint(seq))
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := js.PublishMsg(pctx, m)
	return err
}
