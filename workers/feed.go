package workers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// FeedReport is one report delivered to a feed handler.
type FeedReport struct {
	// Seq is the report's sequence in REPORTS.
	Seq uint64
	// Subject is kdtriage.reports.<hash token>.
	Subject string
	// Header holds the report headers (HeaderBucket, HeaderHash, ...).
	Header nats.Header
	// Data is the envelope JSON exactly as published.
	Data []byte
	// Envelope is Data decoded.
	Envelope Envelope
}

// FeedOptions configure RunFeed.
type FeedOptions struct {
	// Durable names the durable consumer (default "feed"); a feed resumes
	// where the durable stopped.
	Durable string
	// FromStart resets the durable to the first report in REPORTS. Without
	// it a new durable starts with reports published from now on.
	FromStart bool
	// Idle ends the feed after that long without a new report (0: never).
	Idle time.Duration
	// Filter narrows the subjects (default kdtriage.reports.>).
	Filter string
	// Log receives the feed's events.
	Log zerolog.Logger
	// Metrics records delivered reports (may be nil).
	Metrics *Metrics
}

// RunFeed delivers REPORTS to handle, in order, one at a time, until ctx
// ends or the feed is idle for opts.Idle. A report is acknowledged only
// after handle returns nil; on an error it is redelivered after a delay.
func RunFeed(ctx context.Context, js jetstream.JetStream, opts FeedOptions, handle func(context.Context, *FeedReport) error) error {
	if opts.Durable == "" {
		opts.Durable = "feed"
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       opts.Durable,
		Description:   "kdtriage feed",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Minute,
		MaxAckPending: 1,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverNewPolicy,
		FilterSubject: opts.Filter,
	}
	if opts.FromStart {
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
		if err := js.DeleteConsumer(ctx, ReportStream, opts.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("resetting feed %s: %w", opts.Durable, err)
		}
	}
	cons, err := js.Consumer(ctx, ReportStream, opts.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = js.CreateConsumer(ctx, ReportStream, cfg)
	}
	if err != nil {
		return fmt.Errorf("feed consumer %s: %w", opts.Durable, err)
	}
	last := time.Now()
	wait := 5 * time.Second
	if opts.Idle > 0 {
		wait = min(wait, max(opts.Idle/2, 50*time.Millisecond))
	}
	failures := 0
	for ctx.Err() == nil {
		if opts.Idle > 0 && time.Since(last) >= opts.Idle {
			return nil
		}
		msg, err := next(ctx, cons, wait)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil && msg == nil {
			continue
		}
		if err != nil {
			opts.Log.Warn().Err(err).Msg("feed fetch")
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		last = time.Now()
		md, err := msg.Metadata()
		if err != nil {
			msg.Term()
			continue
		}
		r := &FeedReport{Seq: md.Sequence.Stream, Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()}
		if err := json.Unmarshal(r.Data, &r.Envelope); err != nil {
			opts.Log.Warn().Err(err).Uint64("seq", r.Seq).Msg("unreadable report skipped")
			msg.Ack()
			continue
		}
		if err := handle(ctx, r); err != nil {
			failures++
			delay := min(time.Duration(failures)*time.Second, time.Minute)
			opts.Log.Warn().Err(err).Uint64("seq", r.Seq).Dur("retry_in", delay).Msg("feed handler failed")
			msg.NakWithDelay(delay)
			continue
		}
		failures = 0
		opts.Metrics.Add(metricFeed, "feed=\""+opts.Durable+"\"", "Reports delivered by feeds.", 1)
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := msg.DoubleAck(actx); err != nil {
			opts.Log.Warn().Err(err).Msg("feed ack")
		}
		cancel()
	}
	return nil
}

// NDJSON returns a feed handler writing each envelope as one JSON line.
func NDJSON(w io.Writer) func(context.Context, *FeedReport) error {
	return func(_ context.Context, r *FeedReport) error {
		line := append(bytes.TrimSpace(slices.Clone(r.Data)), '\n')
		_, err := w.Write(line)
		return err
	}
}

// Webhook POSTs reports to a ticketing endpoint.
type Webhook struct {
	// URL receives the POSTs.
	URL string
	// Client is the HTTP client (default: 30s timeout).
	Client *http.Client
	// Attempts is how many times one report is tried before the feed backs
	// off and redelivers it (default 5).
	Attempts int
	// Backoff is the first retry delay, doubled each attempt (default 500ms).
	Backoff time.Duration
	// Header is added to every request (e.g. Authorization).
	Header http.Header
	// Aggregates, when set, adds the bucket's aggregate to the body.
	Aggregates jetstream.KeyValue
	// Log receives delivery events.
	Log zerolog.Logger
}

// WebhookBody is the JSON a webhook receives.
type WebhookBody struct {
	Report    json.RawMessage `json:"report"`
	Aggregate *Aggregate      `json:"aggregate,omitempty"`
}

// Handle is a feed handler: it POSTs r with an Idempotency-Key header equal
// to the report ID, retrying network errors, 408, 429 and 5xx answers.
// A 4xx answer is permanent: the report is logged and skipped.
func (w *Webhook) Handle(ctx context.Context, r *FeedReport) error {
	client := w.Client
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	attempts := max(w.Attempts, 1)
	if w.Attempts == 0 {
		attempts = 5
	}
	backoff := w.Backoff
	if backoff <= 0 {
		backoff = 500 * time.Millisecond
	}
	body := WebhookBody{Report: r.Data}
	if w.Aggregates != nil {
		if e, err := w.Aggregates.Get(ctx, HashToken(r.Envelope.Hash)); err == nil {
			var a Aggregate
			if json.Unmarshal(e.Value(), &a) == nil {
				body.Aggregate = &a
			}
		}
	}
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	var last error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff << (i - 1)):
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(data))
		if err != nil {
			return err
		}
		for k, vs := range w.Header {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", r.Envelope.ReportID)
		req.Header.Set(HeaderBucket, headerValue(r.Envelope.Bucket))
		req.Header.Set(HeaderHash, headerValue(r.Envelope.Hash))
		req.Header.Set("Kdtriage-Delivery-Attempt", strconv.Itoa(i+1))
		resp, err := client.Do(req)
		if err != nil {
			last = err
			continue
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		switch {
		case resp.StatusCode < 300:
			return nil
		case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
			last = fmt.Errorf("webhook answered %s", resp.Status)
		default:
			w.Log.Error().Int("status", resp.StatusCode).Str("report", r.Envelope.ReportID).Msg("webhook rejected report: skipped")
			return nil
		}
	}
	return fmt.Errorf("webhook %s: %d attempts: %w", w.URL, attempts, last)
}

// Aggregate is the per-bucket record ticketing uses to keep one ticket per
// bucket, stored in AggregateBucket under HashToken(hash).
type Aggregate struct {
	Bucket    string    `json:"failure_bucket_id"`
	Hash      string    `json:"failure_id_hash"`
	Owner     string    `json:"owner,omitempty"`
	Severity  string    `json:"severity,omitempty"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Count     uint64    `json:"count"`
	// Hosts lists distinct hosts, sorted, at most MaxAggregateHosts;
	// HostCount counts them all (up to that cap, then it keeps counting
	// new reports' hosts it cannot tell apart as distinct).
	Hosts        []string `json:"hosts"`
	HostsCapped  bool     `json:"hosts_capped,omitempty"`
	LastReportID string   `json:"last_report_id"`
	// LastSeq is the REPORTS sequence last folded in: it makes a
	// redelivered report a no-op.
	LastSeq uint64 `json:"last_seq"`
}

// MaxAggregateHosts caps the host list of an aggregate.
const MaxAggregateHosts = 256

// Fold adds one report to the aggregate; it reports false when the report
// was already folded in (seq at or below LastSeq).
func (a *Aggregate) Fold(seq uint64, e *Envelope) bool {
	if seq <= a.LastSeq {
		return false
	}
	seen := e.Dump.CollectedAt
	if seen.IsZero() {
		seen = e.AnalyzedAt
	}
	if a.Count == 0 || seen.Before(a.FirstSeen) {
		a.FirstSeen = seen
	}
	if seen.After(a.LastSeen) {
		a.LastSeen = seen
	}
	a.Bucket, a.Hash = e.Bucket, e.Hash
	a.Owner, a.Severity = e.Owner, e.Severity
	a.Count++
	if h := e.Dump.Host; h != "" {
		if i, found := slices.BinarySearch(a.Hosts, h); !found {
			if len(a.Hosts) < MaxAggregateHosts {
				a.Hosts = slices.Insert(a.Hosts, i, h)
			} else {
				a.HostsCapped = true
			}
		}
	}
	a.LastReportID = e.ReportID
	a.LastSeq = seq
	return true
}

// Aggregator keeps AggregateBucket up to date from REPORTS with
// compare-and-set updates. Reprocessing reports are not counted again.
type Aggregator struct {
	as  *Assets
	log zerolog.Logger
	m   *Metrics
}

// NewAggregator returns an aggregator over the pipeline's assets.
func NewAggregator(as *Assets, log zerolog.Logger, m *Metrics) *Aggregator {
	return &Aggregator{as: as, log: log, m: m}
}

// Run folds reports into aggregates until ctx is cancelled.
func (g *Aggregator) Run(ctx context.Context) error {
	return RunFeed(ctx, g.as.JS, FeedOptions{Durable: AggregatorConsumer, Log: g.log, Metrics: g.m}, g.Fold)
}

// Fold is the aggregator's feed handler.
func (g *Aggregator) Fold(ctx context.Context, r *FeedReport) error {
	e := &r.Envelope
	if e.Dump.Reprocess || e.Supersedes != "" {
		return nil
	}
	key := HashToken(e.Hash)
	for attempt := 0; attempt < 100; attempt++ {
		var a Aggregate
		var rev uint64
		ent, err := g.as.Aggregates.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			rev = ent.Revision()
			if err := json.Unmarshal(ent.Value(), &a); err != nil {
				a = Aggregate{}
			}
		}
		if !a.Fold(r.Seq, e) {
			return nil
		}
		data, err := json.Marshal(&a)
		if err != nil {
			return err
		}
		if rev == 0 {
			_, err = g.as.Aggregates.Create(ctx, key, data)
		} else {
			_, err = g.as.Aggregates.Update(ctx, key, data, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !isWrongSequence(err) {
			return err
		}
	}
	return fmt.Errorf("aggregate %s: too many concurrent updates", key)
}

func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}
