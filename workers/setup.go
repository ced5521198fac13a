package workers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Names of the JetStream assets the pipeline uses.
const (
	// DumpBucket is the object store bucket holding dump bytes keyed by SHA-256.
	DumpBucket = "dumps"
	// JobStream is the work-queue stream of jobs.
	JobStream = "DUMPS"
	// JobSubjects is the subject filter of JobStream.
	JobSubjects = "kdtriage.dumps.>"
	// ReportStream is the limits-retention stream of reports.
	ReportStream = "REPORTS"
	// ReportSubjects is the subject filter of ReportStream.
	ReportSubjects = "kdtriage.reports.>"
	// DeadLetterStream holds dead-letter copies of jobs and the consumer
	// advisories (max deliveries, terminated) of JobStream.
	DeadLetterStream = "DEADLETTER"
	// StateBucket is the KV bucket of analysis state, keyed by dump SHA-256.
	StateBucket = "kdtriage-state"
	// AggregateBucket is the KV bucket of per-bucket aggregates, keyed by
	// the failure hash token.
	AggregateBucket = "kdtriage-buckets"
	// WorkerConsumer is the durable pull consumer the workers share.
	WorkerConsumer = "workers"
	// AggregatorConsumer is the durable consumer the aggregator uses.
	AggregatorConsumer = "aggregator"
	// DeadLetterConsumer is the durable consumer of the dead-letter keeper.
	DeadLetterConsumer = "keeper"
)

// Subject prefixes and advisory subjects.
const (
	subjectNewJob       = "kdtriage.dumps.new."
	subjectReprocessJob = "kdtriage.dumps.reprocess."
	subjectReport       = "kdtriage.reports."
	subjectDeadLetter   = "kdtriage.deadletter."
	advisoryMaxDeliver  = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + JobStream + ".*"
	advisoryTerminated  = "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED." + JobStream + ".*"
)

// Config sizes and times the JetStream assets. The zero value is usable:
// every zero field takes the default documented on it.
type Config struct {
	// Replicas is the replica count of every stream, bucket and consumer
	// (1 on a single server; 3 or 5 on a cluster). Default 1.
	Replicas int
	// Memory stores everything in memory instead of files (tests only).
	Memory bool
	// Retention is how long dump bytes stay in the object store; zero keeps
	// them until deleted. It is applied as the bucket's TTL.
	Retention time.Duration
	// ReportMaxAge is how long REPORTS keeps reports; zero keeps them.
	ReportMaxAge time.Duration
	// DeadLetterMaxAge is how long DEADLETTER keeps entries. Default 30 days.
	DeadLetterMaxAge time.Duration
	// DuplicateWindow is the Nats-Msg-Id dedup window of DUMPS and
	// REPORTS. Default 10 minutes.
	DuplicateWindow time.Duration
	// AckWait is how long a worker may hold a job without a heartbeat
	// before it is redelivered. Default 30s.
	AckWait time.Duration
	// MaxDeliver is how many times a job is delivered before it becomes a
	// dead letter. Default 5.
	MaxDeliver int
	// MaxDumpSize caps the size of one dump object (0: no cap).
	MaxDumpSize int64
	// Compress stores dump bytes S2-compressed: dumps shrink a few times
	// but every metadata lookup and fetch decompresses whole store blocks,
	// which costs about a third of the pipeline's CPU on small dumps.
	Compress bool
}

func (c Config) withDefaults() Config {
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.DeadLetterMaxAge <= 0 {
		c.DeadLetterMaxAge = 30 * 24 * time.Hour
	}
	if c.DuplicateWindow <= 0 {
		c.DuplicateWindow = 10 * time.Minute
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = 5
	}
	return c
}

func (c Config) storage() jetstream.StorageType {
	if c.Memory {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

// Setup creates or updates every stream, bucket and durable consumer of the
// pipeline. It is idempotent and safe to run from several processes.
func Setup(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	cfg = cfg.withDefaults()
	st := cfg.storage()
	if _, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      DumpBucket,
		Description: "kdtriage dump bytes keyed by SHA-256",
		TTL:         cfg.Retention,
		Storage:     st,
		Replicas:    cfg.Replicas,
		Compression: cfg.Compress,
	}); err != nil {
		return fmt.Errorf("object store %s: %w", DumpBucket, err)
	}
	streams := []jetstream.StreamConfig{{
		Name:        JobStream,
		Description: "kdtriage analysis jobs (work queue)",
		Subjects:    []string{JobSubjects},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     st,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DuplicateWindow,
		MaxMsgSize:  64 << 10,
	}, {
		Name:        ReportStream,
		Description: "kdtriage reports by failure hash",
		Subjects:    []string{ReportSubjects},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      cfg.ReportMaxAge,
		Storage:     st,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DuplicateWindow,
		AllowDirect: true,
	}, {
		Name:        DeadLetterStream,
		Description: "kdtriage dead letters and job consumer advisories",
		Subjects:    []string{subjectDeadLetter + ">", advisoryMaxDeliver, advisoryTerminated},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      cfg.DeadLetterMaxAge,
		Storage:     st,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DuplicateWindow,
	}}
	for _, sc := range streams {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("stream %s: %w", sc.Name, err)
		}
	}
	kvs := []jetstream.KeyValueConfig{{
		Bucket:      StateBucket,
		Description: "kdtriage analysis state by dump SHA-256",
		History:     1,
		Storage:     st,
		Replicas:    cfg.Replicas,
	}, {
		Bucket:      AggregateBucket,
		Description: "kdtriage per-bucket aggregates",
		History:     1,
		Storage:     st,
		Replicas:    cfg.Replicas,
	}}
	for _, kc := range kvs {
		if _, err := js.CreateOrUpdateKeyValue(ctx, kc); err != nil {
			return fmt.Errorf("KV bucket %s: %w", kc.Bucket, err)
		}
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, JobStream, jobConsumerConfig(cfg)); err != nil {
		return fmt.Errorf("consumer %s: %w", WorkerConsumer, err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, DeadLetterStream, jetstream.ConsumerConfig{
		Durable:       DeadLetterConsumer,
		Description:   "dead-letter keeper: turns MaxDeliver advisories into failure reports",
		FilterSubject: advisoryMaxDeliver,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
		Replicas:      cfg.Replicas,
	}); err != nil {
		return fmt.Errorf("consumer %s: %w", DeadLetterConsumer, err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, ReportStream, jetstream.ConsumerConfig{
		Durable:       AggregatorConsumer,
		Description:   "per-bucket aggregates",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 1, // in order: the aggregate's last sequence makes updates idempotent
		MaxDeliver:    -1,
		Replicas:      cfg.Replicas,
	}); err != nil {
		return fmt.Errorf("consumer %s: %w", AggregatorConsumer, err)
	}
	return nil
}

func jobConsumerConfig(cfg Config) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       WorkerConsumer,
		Description:   "kdtriage workers",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    cfg.MaxDeliver,
		MaxAckPending: 10000,
		Replicas:      cfg.Replicas,
	}
}

// Assets are the handles a pipeline component needs. OpenAssets binds them
// on an existing setup (see Setup).
type Assets struct {
	JS         jetstream.JetStream
	Dumps      jetstream.ObjectStore
	State      jetstream.KeyValue
	Aggregates jetstream.KeyValue
}

// OpenAssets binds the object store and KV buckets created by Setup.
func OpenAssets(ctx context.Context, js jetstream.JetStream) (*Assets, error) {
	a := &Assets{JS: js}
	var err error
	if a.Dumps, err = js.ObjectStore(ctx, DumpBucket); err != nil {
		return nil, fmt.Errorf("object store %s: %w", DumpBucket, err)
	}
	if a.State, err = js.KeyValue(ctx, StateBucket); err != nil {
		return nil, fmt.Errorf("KV bucket %s: %w", StateBucket, err)
	}
	if a.Aggregates, err = js.KeyValue(ctx, AggregateBucket); err != nil {
		return nil, fmt.Errorf("KV bucket %s: %w", AggregateBucket, err)
	}
	return a, nil
}

// errNotSetUp is wrapped when an asset is missing.
var errNotSetUp = errors.New("pipeline not set up: run kdtriage serve first")

// next fetches one message from cons, waiting at most wait; it returns
// (nil, nil) when nothing arrived in time and ctx.Err() when ctx ended.
func next(ctx context.Context, cons jetstream.Consumer, wait time.Duration) (jetstream.Msg, error) {
	fctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	msg, err := cons.Next(jetstream.FetchContext(fctx))
	if err == nil {
		return msg, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoMessages) {
		return nil, nil
	}
	return nil, err
}
