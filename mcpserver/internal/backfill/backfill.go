// Package backfill fills in the vectors of memories that were stored while
// the embedding provider failed (pending memories; see memory.FillPending).
// One Worker runs beside the HTTP server for as long as it serves: it wakes
// when a write leaves a memory pending, and otherwise checks now and then;
// it embeds in batches and, while the provider keeps failing, retries with
// exponential back-off up to a cap. Nothing is lost while it waits: the
// memories are stored, only vector search cannot find them yet.
package backfill

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Filler is what the worker needs of the memory service.
type Filler interface {
	FillPending(ctx context.Context, batch int) (int, error)
	CountPending(ctx context.Context) (int, error)
	// Pending signals that a write left a memory pending.
	Pending() <-chan struct{}
}

// Defaults of Options.
const (
	DefaultBatch      = 64
	DefaultInterval   = time.Minute
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = time.Minute
)

// Options configure a Worker; zero fields take the defaults.
type Options struct {
	Filler Filler
	// Batch is the number of memories embedded per request and written per
	// transaction.
	Batch int
	// Interval is how often an idle worker looks for pending memories it
	// was not told about (written by another instance, or before a restart).
	Interval time.Duration
	// MinBackoff and MaxBackoff bound the wait between failed attempts,
	// which doubles from MinBackoff up to MaxBackoff (with jitter).
	MinBackoff, MaxBackoff time.Duration
	// Registerer receives the worker's metrics; nil registers none.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Worker fills in pending vectors; see the package documentation.
type Worker struct {
	o       Options
	pending prometheus.Gauge
	filled  prometheus.Counter
	failed  prometheus.Counter
}

// New returns a Worker. It fails only when its metrics cannot be
// registered (a second worker on one registry).
func New(o Options) (*Worker, error) {
	if o.Batch <= 0 {
		o.Batch = DefaultBatch
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Worker{
		o: o,
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "picard_embeddings_pending",
			Help: "Memories stored without a vector, waiting for the embedding provider.",
		}),
		filled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "picard_embeddings_filled_total",
			Help: "Pending memories whose vectors the background worker computed.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "picard_embeddings_fill_failures_total",
			Help: "Attempts of the background worker that failed (provider or database down).",
		}),
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{w.pending, w.filled, w.failed} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return w, nil
}

// Run works until ctx ends and then returns nil. A batch in progress when
// ctx ends is abandoned; its memories stay pending and nothing is lost.
func (w *Worker) Run(ctx context.Context) error {
	ticker := time.NewTicker(w.o.Interval)
	defer ticker.Stop()
	for {
		w.drain(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-w.o.Filler.Pending():
		case <-ticker.C:
		}
	}
}

// drain fills batches until nothing is pending or ctx ends, backing off
// while attempts fail.
func (w *Worker) drain(ctx context.Context) {
	total, err := w.o.Filler.CountPending(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.o.Logger.Warn("counting memories waiting for vectors", "error", err)
		}
	} else {
		w.pending.Set(float64(total))
	}
	if err == nil && total == 0 {
		return
	}
	if total > 0 {
		w.o.Logger.Info("computing vectors of pending memories", "pending", total)
	}
	// A pass handles what was pending when it began plus some slack for
	// memories changed meanwhile; anything newer wakes the next pass.
	rounds := total/w.o.Batch + 16
	done, failures := 0, 0
	for ; ctx.Err() == nil && rounds > 0; rounds-- {
		n, err := w.o.Filler.FillPending(ctx, w.o.Batch)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.failed.Inc()
			failures++
			// Writes keep arriving while the provider is down.
			if n, err := w.o.Filler.CountPending(ctx); err == nil {
				w.pending.Set(float64(n))
			}
			wait := w.backoff(failures)
			w.o.Logger.Warn("embedding pending memories failed; retrying", "error", err,
				"attempt", failures, "retry_in", wait.Round(time.Millisecond), "done", done)
			if !sleep(ctx, wait) {
				return
			}
			continue
		}
		failures = 0
		if n == 0 {
			break
		}
		done += n
		w.filled.Add(float64(n))
		w.pending.Set(float64(max(total-done, 0)))
		w.o.Logger.Debug("embedded pending memories", "batch", n, "done", done, "pending_at_start", total)
	}
	if done > 0 {
		w.o.Logger.Info("pending memories have their vectors", "embedded", done)
	}
	if n, err := w.o.Filler.CountPending(ctx); err == nil {
		w.pending.Set(float64(n))
	}
}

// backoff is the wait after the given number of consecutive failures:
// MinBackoff doubling per failure, capped at MaxBackoff, with up to 20%
// jitter so that instances do not retry in step.
func (w *Worker) backoff(failures int) time.Duration {
	d := w.o.MinBackoff
	for i := 1; i < failures && d < w.o.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, w.o.MaxBackoff)
	return d - time.Duration(rand.Int64N(int64(d)/5+1)) // #nosec G404 -- retry jitter, not a secret
}

// sleep waits for d or until ctx ends, reporting whether it waited in full.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
