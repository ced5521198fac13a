package workers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// RunOptions select the components Run starts on one NATS connection.
type RunOptions struct {
	// Config sizes the JetStream assets; with Setup they are created or
	// updated first.
	Config Config
	Setup  bool
	// Workers is the number of worker slots (0: no workers).
	Workers int
	// Analyzer analyses dumps (required with Workers > 0).
	Analyzer Analyzer
	// RulesDir is watched for changes when the analyzer is a Reloader.
	RulesDir string
	// SpoolDir, Name and DrainTimeout are passed to the worker pool.
	SpoolDir     string
	Name         string
	DrainTimeout time.Duration
	// Keeper runs the dead-letter keeper; Aggregator the per-bucket
	// aggregates feed.
	Keeper, Aggregator bool
	// HTTPAddr serves /metrics and /healthz (empty: no HTTP).
	HTTPAddr string
	// Ready, if set, is called once everything runs, with the HTTP address
	// actually bound ("" without HTTP).
	Ready func(httpAddr string)
	// Log and Metrics are shared by every component.
	Log     zerolog.Logger
	Metrics *Metrics
}

// Run starts the selected components and blocks until ctx is cancelled,
// then drains the workers and returns. A component that fails early stops
// the others and its error is returned.
func Run(ctx context.Context, nc *nats.Conn, o RunOptions) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	if o.Setup {
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := Setup(sctx, js, o.Config)
		cancel()
		if err != nil {
			return err
		}
	}
	as, err := OpenAssets(ctx, js)
	if err != nil {
		return fmt.Errorf("%w: %v", errNotSetUp, err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	start := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				o.Log.Error().Err(err).Str("component", name).Msg("stopped")
				cancel(fmt.Errorf("%s: %w", name, err))
			}
		}()
	}
	if o.Workers > 0 {
		if o.Analyzer == nil {
			return errors.New("workers: RunOptions.Analyzer is nil")
		}
		pool, err := NewPool(ctx, as, PoolOptions{
			Slots: o.Workers, Analyzer: o.Analyzer, SpoolDir: o.SpoolDir, Config: o.Config,
			Name: o.Name, DrainTimeout: o.DrainTimeout, Log: o.Log.With().Str("component", "worker").Logger(),
			Metrics: o.Metrics,
		})
		if err != nil {
			return err
		}
		start("workers", pool.Run)
		if r, ok := o.Analyzer.(Reloader); ok && o.RulesDir != "" {
			start("rules", func(ctx context.Context) error {
				return WatchRules(ctx, o.RulesDir, 0, o.Log.With().Str("component", "rules").Logger(), func() error {
					err := r.Reload()
					if err == nil {
						o.Metrics.Add(metricRuleReload, `result="ok"`, "Rule reloads.", 1)
					} else {
						o.Metrics.Add(metricRuleReload, `result="error"`, "Rule reloads.", 1)
					}
					return err
				})
			})
		}
	}
	if o.Keeper {
		version, ruleSet := "", func() string { return "" }
		if o.Analyzer != nil {
			version, ruleSet = o.Analyzer.Version(), o.Analyzer.RuleSetHash
		}
		k := NewKeeper(as, version, ruleSet, o.Log.With().Str("component", "keeper").Logger(), o.Metrics)
		start("keeper", k.Run)
	}
	if o.Aggregator {
		g := NewAggregator(as, o.Log.With().Str("component", "aggregator").Logger(), o.Metrics)
		start("aggregator", g.Run)
	}
	httpAddr := ""
	if o.HTTPAddr != "" {
		ln, err := net.Listen("tcp", o.HTTPAddr)
		if err != nil {
			cancel(nil)
			wg.Wait()
			return fmt.Errorf("HTTP listener: %w", err)
		}
		httpAddr = ln.Addr().String()
		mux := http.NewServeMux()
		mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
			queueGauges(r.Context(), js, o.Metrics)
			o.Metrics.ServeHTTP(w, r)
		})
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
			hctx, hc := context.WithTimeout(r.Context(), 2*time.Second)
			defer hc()
			if nc.Status() != nats.CONNECTED {
				http.Error(w, "NATS "+nc.Status().String(), http.StatusServiceUnavailable)
				return
			}
			if _, err := js.Stream(hctx, JobStream); err != nil {
				http.Error(w, "JetStream: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				o.Log.Error().Err(err).Msg("HTTP server")
			}
		}()
		context.AfterFunc(ctx, func() {
			sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
			defer c()
			srv.Shutdown(sctx)
		})
	}
	if o.Ready != nil {
		o.Ready(httpAddr)
	}
	<-ctx.Done()
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// queueGauges refreshes the queue gauges from the server at scrape time.
func queueGauges(ctx context.Context, js jetstream.JetStream, m *Metrics) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if c, err := js.Consumer(ctx, JobStream, WorkerConsumer); err == nil {
		if info := c.CachedInfo(); info != nil {
			m.Set(metricQueuePending, "", "Jobs waiting for a worker.", int64(info.NumPending))
			m.Set(metricQueueAckPending, "", "Jobs held by workers.", int64(info.NumAckPending))
			m.Set(metricQueueRedelivered, "", "Jobs being redelivered.", int64(info.NumRedelivered))
		}
	}
	if st, err := js.Stream(ctx, DeadLetterStream); err == nil {
		if info := st.CachedInfo(); info != nil {
			m.Set(metricDeadLetterStored, "", "Messages in the dead-letter stream (copies and advisories).", int64(info.State.Msgs))
		}
	}
}
