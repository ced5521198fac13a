package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// maxDeliveriesAdvisory is the part of the server's
// io.nats.jetstream.advisory.v1.max_deliver event the keeper reads.
type maxDeliveriesAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// Keeper turns jobs whose deliveries ran out (the server's MaxDeliver
// advisory, captured by the DEADLETTER stream) into a failure report and a
// dead-letter copy, then removes them from DUMPS. Run one per pipeline (the
// durable consumer shares the work if there are several).
type Keeper struct {
	as       *Assets
	analyzer string
	ruleSet  func() string
	log      zerolog.Logger
	m        *Metrics
}

// NewKeeper returns a dead-letter keeper. analyzer and ruleSet name the
// analysis the failure reports are attributed to (ruleSet may be nil).
func NewKeeper(as *Assets, analyzer string, ruleSet func() string, log zerolog.Logger, m *Metrics) *Keeper {
	if ruleSet == nil {
		ruleSet = func() string { return "" }
	}
	return &Keeper{as: as, analyzer: analyzer, ruleSet: ruleSet, log: log, m: m}
}

// Run processes advisories until ctx is cancelled.
func (k *Keeper) Run(ctx context.Context) error {
	cons, err := k.as.JS.Consumer(ctx, DeadLetterStream, DeadLetterConsumer)
	if err != nil {
		return fmt.Errorf("consumer %s/%s: %w", DeadLetterStream, DeadLetterConsumer, err)
	}
	jobs, err := k.as.JS.Stream(ctx, JobStream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", JobStream, err)
	}
	for ctx.Err() == nil {
		msg, err := next(ctx, cons, 5*time.Second)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			k.log.Warn().Err(err).Msg("dead-letter keeper fetch")
			time.Sleep(time.Second)
			continue
		}
		if msg == nil {
			continue
		}
		if err := k.handle(ctx, jobs, msg); err != nil {
			k.log.Warn().Err(err).Msg("dead-letter keeper")
			msg.NakWithDelay(5 * time.Second)
			continue
		}
		msg.Ack()
	}
	return nil
}

func (k *Keeper) handle(ctx context.Context, jobs jetstream.Stream, msg jetstream.Msg) error {
	var adv maxDeliveriesAdvisory
	if err := json.Unmarshal(msg.Data(), &adv); err != nil || adv.StreamSeq == 0 {
		k.log.Warn().Str("subject", msg.Subject()).Msg("unreadable advisory ignored")
		return nil
	}
	raw, err := jobs.GetMsg(ctx, adv.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil // acknowledged or removed since
	}
	if err != nil {
		return fmt.Errorf("job %d: %w", adv.StreamSeq, err)
	}
	cause := Permanent(fmt.Errorf("%w: %d deliveries without a verdict (workers died or timed out)", errMaxDeliveries, adv.Deliveries))
	var job Job
	if json.Unmarshal(raw.Data, &job) == nil && job.Validate() == nil {
		prev, err := getState(ctx, k.as.State, job.SHA256)
		if err != nil {
			return err
		}
		// Analysed and reported (a new submission of a dump with a good
		// report), or a worker reached a verdict on this very job after it
		// was queued (a failure report, its dead-letter copy already
		// written): only the acknowledgement or termination was lost. A
		// second report would contradict the first, and its state would
		// turn a transient failure permanent.
		if prev != nil && (!job.Reprocess && prev.Status == StatusOK || !raw.Time.IsZero() && prev.AnalyzedAt.After(raw.Time)) {
			if err := jobs.DeleteMsg(ctx, adv.StreamSeq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
				return fmt.Errorf("removing job %d: %w", adv.StreamSeq, err)
			}
			k.log.Info().Str("dump", job.SHA256).Uint64("seq", adv.StreamSeq).Str("report", prev.ReportID).
				Msg("deliveries exhausted after a verdict: job removed")
			return nil
		}
		env := &Envelope{SchemaVersion: 1, Dump: job, Analyzer: k.analyzer, AnalyzedAt: time.Now().UTC(),
			Worker: "dead-letter-keeper", Deliveries: adv.Deliveries}
		if prev != nil {
			env.Supersedes = prev.ReportID
			if job.Reprocess {
				orig := prev.Job
				orig.Reprocess, orig.Force = true, job.Force
				env.Dump = orig
			}
		}
		env = failureEnvelope(env, cause, k.ruleSet())
		if err := publishReport(ctx, k.as, env, &job, cause.Error(), k.m); err != nil {
			return err
		}
	}
	if err := deadLetter(ctx, k.as.JS, raw.Subject, raw.Data, adv.StreamSeq, cause); err != nil {
		return err
	}
	k.m.Add(metricDeadLetter, "", "Jobs copied to the dead-letter stream.", 1)
	if err := jobs.DeleteMsg(ctx, adv.StreamSeq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("removing job %d: %w", adv.StreamSeq, err)
	}
	k.log.Warn().Str("dump", job.SHA256).Uint64("seq", adv.StreamSeq).Msg("deliveries exhausted: dead-lettered")
	return nil
}
