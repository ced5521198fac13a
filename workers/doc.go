// Package workers is the kdtriage fleet pipeline on NATS JetStream.
//
// Endpoints upload dump bytes to the object store bucket "dumps" under the
// dump's SHA-256 and publish a small job on the work-queue stream DUMPS
// (subjects kdtriage.dumps.>) with Nats-Msg-Id set to that SHA-256, so a
// second submission inside the duplicate window is dropped by the server and
// a later one is recognised by the analysis state kept in the KV bucket
// kdtriage-state. Workers pull jobs from the durable consumer "workers", one
// message in flight per slot, spool the dump to a temporary file (memory does
// not grow with the dump's size), verify its SHA-256, analyse it and publish
// the report on kdtriage.reports.<failure hash> in the REPORTS stream with an
// idempotent Nats-Msg-Id before they acknowledge the job.
//
// Failure handling:
//
//   - transient errors (I/O, NATS timeouts) NakWithDelay the job with a
//     growing delay; the last allowed delivery turns the job into a dead
//     letter instead;
//   - permanent errors (not a dump, malformed dump, empty or zeroed file,
//     unsupported kind, digest mismatch, analyzer panic) publish a failure
//     report, copy the job to the DEADLETTER stream and Term the message;
//   - a job whose deliveries run out without a verdict (for example every
//     worker that took it died) is caught through the server's MaxDeliver
//     advisory, which the DEADLETTER stream captures together with the
//     termination advisories; the dead-letter keeper turns it into a failure
//     report and a dead-letter copy and removes it from DUMPS.
//
// Reports are envelopes (type Envelope) carrying the dump's metadata, the
// failure bucket, its hash, severity, owner, the rule-set hash and the
// analyzer's own JSON report. Feeds are durable consumers of REPORTS; the
// aggregator keeps per-bucket aggregates (first seen, last seen, count,
// hosts) in the KV bucket kdtriage-buckets with compare-and-set updates.
//
// Nothing in this package logs through a global logger or reads global
// configuration: every component takes a zerolog.Logger and explicit options.
package workers
