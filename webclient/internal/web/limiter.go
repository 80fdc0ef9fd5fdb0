package web

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter rate-limits login and sign-up attempts per client address and
// per email, so neither one address nor a botnet aimed at one account can
// guess passwords quickly.
type limiter struct {
	mu      sync.Mutex
	entries map[string]*limitEntry
	last    time.Time // last sweep
	now     func() time.Time
}

type limitEntry struct {
	l    *rate.Limiter
	seen time.Time
}

// Every attempt costs one token; a key gets 10 at once, then one every 6 s.
const (
	attemptEvery = 6 * time.Second
	attemptBurst = 10
)

func newLimiter() *limiter {
	return &limiter{entries: map[string]*limitEntry{}, now: time.Now}
}

// allow reports whether every key may make another attempt; all keys are
// charged either way, so an attacker cannot probe which key is exhausted.
func (l *limiter) allow(keys ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.last) > time.Minute {
		for k, e := range l.entries {
			if now.Sub(e.seen) > 10*time.Minute {
				delete(l.entries, k)
			}
		}
		l.last = now
	}
	ok := true
	for _, k := range keys {
		e := l.entries[k]
		if e == nil {
			e = &limitEntry{l: rate.NewLimiter(rate.Every(attemptEvery), attemptBurst)}
			l.entries[k] = e
		}
		e.seen = now
		if !e.l.AllowN(now, 1) {
			ok = false
		}
	}
	return ok
}
