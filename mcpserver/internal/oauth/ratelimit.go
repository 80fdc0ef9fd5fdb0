package oauth

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// keyedLimiter is a token bucket per key (an address or an account). Idle
// buckets are dropped so that a stream of distinct keys cannot grow it
// without bound.
type keyedLimiter struct {
	mu      sync.Mutex
	every   rate.Limit
	burst   int
	buckets map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

const maxBuckets = 50000

func newKeyedLimiter(per time.Duration, burst int) *keyedLimiter {
	return &keyedLimiter{every: rate.Every(per), burst: burst, buckets: map[string]*bucket{}}
}

// allow takes one token from key's bucket at now.
func (l *keyedLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			l.sweep(now)
		}
		b = &bucket{lim: rate.NewLimiter(l.every, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	return b.lim.AllowN(now, 1)
}

// sweep drops buckets that have refilled completely: forgetting them
// changes nothing. If that is not enough (a flood of distinct keys), it
// drops arbitrary buckets down to half the cap, which at worst forgives
// a few callers early.
func (l *keyedLimiter) sweep(now time.Time) {
	full := time.Duration(float64(l.burst) / float64(l.every) * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.seen) > full {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) <= maxBuckets/2 {
			break
		}
		delete(l.buckets, k)
	}
}
