package main

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/kdtriage/kdtriage/workers"
)

const feedLong = `Follow the REPORTS stream with a durable consumer.

By default every report is printed as one JSON line (--format ndjson): the
envelope with the dump's metadata, failure bucket, hash, severity, owner,
rule-set hash and the full analysis report. With --webhook URL each report is
POSTed instead, as {"report": ..., "aggregate": ...} with an Idempotency-Key
header equal to the report ID, retried on network errors, 408, 429 and 5xx;
the aggregate (first seen, last seen, count, hosts of the bucket) lets a
ticketing system keep one ticket per bucket.

The durable (--durable) remembers where the feed stopped; --from-start
replays every stored report; --idle DURATION exits after that long without
a new report.`

func (a *app) feedCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "feed",
		Short: "Print reports as NDJSON or POST them to a ticketing webhook",
		Long:  feedLong,
		Example: `  kdtriage feed --from-start --idle 5s | jq -r .failure_bucket_id
  kdtriage feed --durable tickets --webhook https://tickets.example/api/crash --webhook-header "Authorization: Bearer $TOKEN"`,
		Args: cobra.NoArgs,
		RunE: a.runFeed,
	}
	f := cmd.Flags()
	f.String("format", "ndjson", "output format: ndjson")
	f.String("durable", "feed", "durable consumer name (config: feed.durable)")
	f.Bool("from-start", false, "replay every stored report (resets the durable)")
	f.String("idle", "0", "exit after this long without a new report; 0: never")
	f.String("filter", "", "subject filter, e.g. kdtriage.reports.<hash> (default: all)")
	f.String("webhook", "", "POST each report to this URL instead of printing (config: feed.webhook)")
	f.StringArray("webhook-header", nil, `extra "Name: value" header for webhook requests (repeatable)`)
	f.Int("webhook-attempts", 5, "attempts per report before it is redelivered later")
	addNATSFlags(cmd, "NATS server URL(s) (default nats://127.0.0.1:4222)")
	return cmd
}

func (a *app) runFeed(cmd *cobra.Command, _ []string) error {
	ctx := cmd.Context()
	fl := cmd.Flags()
	if format, _ := fl.GetString("format"); format != "ndjson" {
		return checkChoice("--format", format, "ndjson")
	}
	idle, err := a.settingDuration(cmd, "idle", "")
	if err != nil {
		return err
	}
	fromStart, _ := fl.GetBool("from-start")
	filter, _ := fl.GetString("filter")
	nc, err := a.connect(cmd, "kdtriage-feed")
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	opts := workers.FeedOptions{
		Durable:   a.setting(cmd, "durable", "feed.durable"),
		FromStart: fromStart,
		Idle:      idle,
		Filter:    filter,
		Log:       a.log,
	}
	handle := workers.NDJSON(a.stdout)
	if url := a.setting(cmd, "webhook", "feed.webhook"); url != "" {
		hdr := http.Header{}
		hs, _ := fl.GetStringArray("webhook-header")
		for _, h := range hs {
			k, v, ok := strings.Cut(h, ":")
			if !ok || strings.TrimSpace(k) == "" {
				return fmt.Errorf("--webhook-header %q: want \"Name: value\"", h)
			}
			hdr.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
		attempts, _ := fl.GetInt("webhook-attempts")
		wh := &workers.Webhook{URL: url, Header: hdr, Attempts: attempts, Log: a.log,
			Client: &http.Client{Timeout: 30 * time.Second}}
		if kv, err := js.KeyValue(ctx, workers.AggregateBucket); err == nil {
			wh.Aggregates = kv
		}
		handle = wh.Handle
	}
	return workers.RunFeed(ctx, js, opts, handle)
}
