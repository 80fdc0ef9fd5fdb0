package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v5"
	"golang.org/x/time/rate"

	"picard.dev/shared"
)

// SharedRates keeps rate-limit state that every instance on one database
// sees (store.RateLimits implements it), so that a token's limit holds
// however a load balancer spreads its requests.
type SharedRates interface {
	// Take counts one request of key against one request per interval
	// with bursts of up to burst, and says whether it is allowed and, if
	// not, how long until one would be.
	Take(ctx context.Context, key string, now time.Time, interval time.Duration, burst int) (bool, time.Duration, error)
	// Prune forgets keys idle since before.
	Prune(ctx context.Context, before time.Time) (int64, error)
}

// sharedTakeTimeout bounds the database round trip of a shared limit; when
// it fails the request is let through (see limiter.allow).
const sharedTakeTimeout = time.Second

// limiter keeps a token bucket per access token in this process and, when
// shared is set, the same limit in the database across instances. The
// local bucket comes first: a token over its limit here is over it
// everywhere, and is refused without a database write, so floods cost no
// more than before. Local buckets idle for longer than it takes to refill
// are dropped by a sweeper, since a full bucket and a new one are the same.
type limiter struct {
	rps    rate.Limit
	burst  int
	shared SharedRates
	log    *slog.Logger

	mu      sync.Mutex
	buckets map[string]*bucket
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiter(rps float64, burst int, shared SharedRates, log *slog.Logger) *limiter {
	l := &limiter{
		rps: rate.Limit(rps), burst: max(burst, 1), shared: shared, log: log,
		buckets: map[string]*bucket{}, stop: make(chan struct{}), done: make(chan struct{}),
	}
	go l.sweep()
	return l
}

// allow takes a request from key's bucket, or says how long to wait. A
// failure of the shared state (the database is down) lets the request
// through on the local limit alone: the request will meet the outage
// anyway, and the limit must not turn an outage into 429s.
func (l *limiter) allow(ctx context.Context, key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	b := l.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(l.rps, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	l.mu.Unlock()
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	if l.shared == nil {
		return true, 0
	}
	ctx, cancel := context.WithTimeout(ctx, sharedTakeTimeout)
	defer cancel()
	interval := time.Duration(float64(time.Second) / float64(l.rps))
	ok, wait, err := l.shared.Take(ctx, key, now, interval, l.burst)
	switch {
	case err != nil:
		l.log.Warn("shared rate limit unavailable; applying this instance's limit only", "error", err)
		return true, 0
	case !ok:
		// Requests refused everywhere must not use up this instance's
		// bucket, or it would refuse more than the shared limit does.
		r.CancelAt(now)
		return false, wait
	}
	return true, 0
}

func (l *limiter) sweep() {
	defer close(l.done)
	idle := time.Duration(float64(l.burst)/float64(l.rps)*float64(time.Second)) + time.Minute
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case now := <-t.C:
			l.mu.Lock()
			for k, b := range l.buckets {
				if now.Sub(b.seen) > idle {
					delete(l.buckets, k)
				}
			}
			l.mu.Unlock()
			if l.shared != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if _, err := l.shared.Prune(ctx, now.Add(-idle)); err != nil {
					l.log.Warn("pruning shared rate limits", "error", err)
				}
				cancel()
			}
		}
	}
}

// close stops the sweeper and waits for it, so nothing touches the
// database after the API is closed.
func (l *limiter) close() {
	l.once.Do(func() { close(l.stop) })
	<-l.done
}

// rateLimit applies the per-token limit, answering 429 with Retry-After.
func (a *API) rateLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		if a.limiter == nil {
			return next(c)
		}
		key, _ := c.Request().Context().Value(rateKey{}).(string)
		ok, wait := a.limiter.allow(c.Request().Context(), key, time.Now())
		if !ok {
			secs := int(math.Ceil(wait.Seconds()))
			return &httpError{
				status: http.StatusTooManyRequests,
				body: shared.APIError{Code: shared.CodeRateLimited, Message: fmt.Sprintf(
					"more than %g requests per second with this token; retry in %d s", float64(a.limiter.rps), max(secs, 1))},
				header: http.Header{"Retry-After": {strconv.Itoa(max(secs, 1))}},
			}
		}
		return next(c)
	}
}
