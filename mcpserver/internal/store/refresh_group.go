package store

import (
	"context"
	"sync"
	"time"
)

// refreshTimeout bounds a refresh shared by several searches, which runs
// without any one search's cancellation (see refreshGroup).
const refreshTimeout = 30 * time.Second

// refreshGroup runs the refreshes of an in-memory index (searchIndex,
// lexicalIndex) for concurrent searches. Each search needs a refresh that
// starts after it arrives, so that it sees every write committed before it
// began; the searches that arrive while a refresh runs wait for the next
// one together, which the first of them starts when the running one ends.
// Without it, each search refreshed in turn under the index's lock: at 200
// concurrent clients on Postgres, searches queued on round trips to the
// database that found nothing new to the search before them.
type refreshGroup struct {
	mu      sync.Mutex
	running bool
	idle    chan struct{} // closed when the running refresh ends
	next    *refreshCall  // the refresh that searches arriving now wait for
}

// refreshCall is one refresh and the searches waiting for it.
type refreshCall struct {
	done    chan struct{} // closed when err is set
	started bool
	err     error
}

// do returns once a call of refresh that started after do was called has
// ended, with its error, or with ctx's error if ctx ends first. refresh
// serves every search waiting for it, so it runs without the cancellation
// of the one that starts it, bounded by refreshTimeout.
func (g *refreshGroup) do(ctx context.Context, refresh func(context.Context) error) error {
	g.mu.Lock()
	if g.next == nil {
		g.next = &refreshCall{done: make(chan struct{})}
	}
	call := g.next
	for {
		if call.started {
			g.mu.Unlock()
			select {
			case <-call.done:
				return call.err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if !g.running {
			g.running, call.started, g.next = true, true, nil
			g.idle = make(chan struct{})
			g.mu.Unlock()
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
			call.err = refresh(rctx)
			cancel()
			close(call.done)
			g.mu.Lock()
			g.running = false
			close(g.idle)
			g.mu.Unlock()
			return call.err
		}
		// A refresh that started before this search is running: wait for
		// it to end, then start this search's (unless another waiter has).
		idle := g.idle
		g.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
		g.mu.Lock()
	}
}
