package mcp

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"picard.dev/mcpserver/internal/activity"
)

// slowLog is an activity.Store whose first write waits for release.
type slowLog struct {
	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	calls   int
	entries []activity.Entry
}

func (l *slowLog) Record(_ context.Context, es ...activity.Entry) error {
	l.once.Do(func() { <-l.release })
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	l.entries = append(l.entries, es...)
	return nil
}

func (l *slowLog) ForUser(context.Context, uuid.UUID, int) ([]activity.Entry, error) { return nil, nil }

func (l *slowLog) Since(context.Context, time.Time) (map[string]int, error) { return nil, nil }

// TestRecorderBatches: entries queued while a write is under way are
// written together, in order, and none is dropped.
func TestRecorderBatches(t *testing.T) {
	l := &slowLog{release: make(chan struct{})}
	rc := newRecorder(l, slog.New(slog.NewTextHandler(io.Discard, nil)))
	const n = 1000
	for i := range n {
		rc.record(activity.Entry{Action: "tool:query_memory", Duration: time.Duration(i)})
	}
	close(l.release)
	rc.pending.Wait()
	rc.close()
	if len(l.entries) != n {
		t.Fatalf("%d entries recorded, want %d", len(l.entries), n)
	}
	for i, e := range l.entries {
		if e.Duration != time.Duration(i) {
			t.Fatalf("entry %d is entry %d", i, e.Duration)
		}
	}
	// The first write holds one entry; the others wait, and go in batches
	// of recorderBatch.
	if want := 1 + (n-1+recorderBatch-1)/recorderBatch; l.calls > want {
		t.Errorf("%d writes for %d entries, want at most %d", l.calls, n, want)
	}
}
