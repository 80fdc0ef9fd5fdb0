package store

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRefreshGroup: searches that arrive while a refresh runs share the
// next one, never the running one (which may have missed their writes);
// errors reach every search of the refresh; a waiter's cancellation is its
// own, and the starter's does not cancel the refresh the others wait for.
func TestRefreshGroup(t *testing.T) {
	t.Run("WaitersShareTheNextRefresh", func(t *testing.T) {
		var g refreshGroup
		var calls atomic.Int32
		release := make(chan struct{})
		entered := make(chan int32, 10)
		refresh := func(context.Context) error {
			n := calls.Add(1)
			entered <- n
			<-release
			return nil
		}
		ctx := context.Background()
		first := make(chan error, 1)
		go func() { first <- g.do(ctx, refresh) }()
		if n := <-entered; n != 1 {
			t.Fatalf("first refresh is call %d", n)
		}
		// Arrivals during refresh 1 must be served by a refresh that
		// starts after them: refresh 2, shared by all ten.
		const waiters = 10
		var wg sync.WaitGroup
		served := make(chan int32, waiters)
		var arrived sync.WaitGroup
		arrived.Add(waiters)
		for range waiters {
			wg.Go(func() {
				arrived.Done()
				if err := g.do(ctx, refresh); err != nil {
					t.Error(err)
				}
				served <- calls.Load()
			})
		}
		arrived.Wait()
		time.Sleep(20 * time.Millisecond) // let them reach the wait
		release <- struct{}{}
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		if n := <-entered; n != 2 {
			t.Fatalf("second refresh is call %d", n)
		}
		select {
		case n := <-served:
			t.Fatalf("a waiter returned after refresh %d, before the refresh that started after it ended", n)
		case <-time.After(20 * time.Millisecond):
		}
		close(release)
		wg.Wait()
		close(served)
		for n := range served {
			if n != 2 {
				t.Errorf("a waiter was served after %d refreshes, want 2", n)
			}
		}
		if n := calls.Load(); n != 2 {
			t.Errorf("%d refreshes for 11 searches, want 2", n)
		}
	})

	t.Run("ErrorsReachEveryWaiter", func(t *testing.T) {
		var g refreshGroup
		boom := errors.New("boom")
		release := make(chan struct{})
		started := make(chan struct{}, 2)
		refresh := func(context.Context) error {
			started <- struct{}{}
			<-release
			return boom
		}
		ctx := context.Background()
		errs := make(chan error, 3)
		go func() { errs <- g.do(ctx, refresh) }()
		<-started
		for range 2 {
			go func() { errs <- g.do(ctx, refresh) }()
		}
		time.Sleep(20 * time.Millisecond)
		close(release)
		for range 3 {
			if err := <-errs; !errors.Is(err, boom) {
				t.Errorf("got %v, want the refresh's error", err)
			}
		}
	})

	t.Run("Cancellation", func(t *testing.T) {
		var g refreshGroup
		release := make(chan struct{})
		started := make(chan context.Context, 2)
		refresh := func(ctx context.Context) error {
			started <- ctx
			<-release
			return ctx.Err()
		}
		starterCtx, cancelStarter := context.WithCancel(context.Background())
		starter := make(chan error, 1)
		go func() { starter <- g.do(starterCtx, refresh) }()
		rctx := <-started
		// A waiter that gives up returns its own error at once.
		waiterCtx, cancelWaiter := context.WithCancel(context.Background())
		waiter := make(chan error, 1)
		go func() { waiter <- g.do(waiterCtx, refresh) }()
		cancelWaiter()
		if err := <-waiter; !errors.Is(err, context.Canceled) {
			t.Errorf("canceled waiter: %v", err)
		}
		// The starter's cancellation does not reach the refresh.
		cancelStarter()
		if rctx.Err() != nil {
			t.Error("the shared refresh was canceled with its starter")
		}
		close(release)
		if err := <-starter; err != nil {
			t.Errorf("starter: %v", err)
		}
	})
}
