package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"picard.dev/mcpserver/internal/memory"
	"picard.dev/shared/pgtest"
)

func TestUnavailableClassification(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connect error", &pgconn.ConnectError{}, true},
		{"refused dial", fmt.Errorf("query: %w", dial), true},
		{"bad connection", driver.ErrBadConn, true},
		{"connection done", sql.ErrConnDone, true},
		{"closed pgx connection", pgconn.ErrConnClosed, true},
		{"connection dropped mid-answer", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"server shutting down", &pgconn.PgError{Code: "57P01"}, true},
		{"server starting up", &pgconn.PgError{Code: "57P03"}, true},
		{"connection exception", &pgconn.PgError{Code: "08006"}, true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"deadline", context.DeadlineExceeded, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"syntax error", &pgconn.PgError{Code: "42601"}, false},
		{"cancelled by the caller", context.Canceled, false},
		{"not found", memory.ErrNotFound, false},
		{"anything else", errors.New("boom"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := unavailable(tt.err)
			if got := errors.Is(err, memory.ErrUnavailable); got != tt.want {
				t.Errorf("unavailable(%v) is ErrUnavailable = %v, want %v", tt.err, got, tt.want)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("unavailable(%v) lost the cause", tt.err)
			}
		})
	}
	if unavailable(nil) != nil {
		t.Error("unavailable(nil) is not nil")
	}
}

// TestStoppedPostgresIsUnavailable stops the server under an open store:
// statements, transactions, row scans and pings all wrap
// memory.ErrUnavailable, and the same handle works again once the server
// is back.
func TestStoppedPostgresIsUnavailable(t *testing.T) {
	pg := pgtest.StartCluster(t)
	f := newFixture(t, backend{DialectPostgres, func(testing.TB) Options {
		return Options{URL: pg.DSN(), IndexKey: testIndexKey}
	}})
	owner := f.user("ada")
	m := f.create(owner, memory.Draft{Text: "before the outage"})
	pg.Stop(t)
	checks := map[string]error{"ping": f.db.Ping(f.ctx)}
	_, checks["get"] = f.mem.Get(f.ctx, m.ID)
	checks["insert"] = f.mem.Insert(f.ctx, []*memory.Memory{{ID: uuid.New(), OwnerID: owner, Text: "x", Permission: memory.Private, Version: 1}}, nil)
	_, checks["stats"] = f.mem.Stats(f.ctx, f.clock.Now())
	_, checks["unembedded"] = f.mem.Unembedded(f.ctx, 10)
	_, _, checks["rate limit"] = f.db.RateLimits().Take(f.ctx, "k", time.Now(), time.Second, 1)
	_, checks["user"] = f.users.ByID(f.ctx, owner)
	for what, err := range checks {
		if !errors.Is(err, memory.ErrUnavailable) {
			t.Errorf("%s with the server stopped: %v, want ErrUnavailable", what, err)
		}
	}
	pg.Start(t)
	if _, err := f.mem.Get(f.ctx, m.ID); err != nil {
		t.Errorf("get after the server returned: %v", err)
	}
}

func TestRateLimitsShareOneBudget(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			other := f.open(f.sealer) // a second instance on the same database
			limits := []*RateLimits{f.db.RateLimits(), other.RateLimits()}
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			const burst = 4
			interval := 100 * time.Millisecond

			// A burst is shared by both handles, then one request per interval.
			allowed := 0
			for i := range 2 * burst {
				ok, wait, err := limits[i%2].Take(f.ctx, "token-a", now, interval, burst)
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					allowed++
				} else if wait <= 0 || wait > interval {
					t.Errorf("refused with wait %s, want within (0, %s]", wait, interval)
				}
			}
			if allowed != burst {
				t.Fatalf("allowed %d of %d at one instant, want the burst of %d", allowed, 2*burst, burst)
			}
			if ok, _, _ := limits[1].Take(f.ctx, "token-b", now, interval, burst); !ok {
				t.Error("another key was refused: keys must not share a budget")
			}
			if ok, _, _ := limits[0].Take(f.ctx, "token-a", now.Add(interval), interval, burst); !ok {
				t.Error("refused one interval later")
			}
			if ok, _, _ := limits[1].Take(f.ctx, "token-a", now.Add(interval), interval, burst); ok {
				t.Error("allowed twice in one interval after the burst")
			}

			// Concurrent takes at one instant never exceed the burst.
			var got atomic.Int64
			var wg sync.WaitGroup
			later := now.Add(time.Hour)
			for i := range 16 {
				wg.Go(func() {
					ok, _, err := limits[i%2].Take(f.ctx, "token-c", later, interval, burst)
					if err != nil {
						t.Error(err)
					}
					if ok {
						got.Add(1)
					}
				})
			}
			wg.Wait()
			if got.Load() != burst {
				t.Errorf("%d concurrent takes allowed, want %d", got.Load(), burst)
			}

			n, err := limits[0].Prune(f.ctx, later)
			if err != nil {
				t.Fatal(err)
			}
			if n != 2 {
				t.Errorf("pruned %d idle keys, want 2 (token-a and token-b)", n)
			}
		})
	}
}

// TestSetVectorsSkipsChangedMemories: a vector computed for an old version
// of a memory is not stored over its new text.
func TestSetVectorsSkipsChangedMemories(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			owner := f.user("ada")
			ms := []*memory.Memory{
				{ID: uuid.New(), OwnerID: owner, Text: "first", Permission: memory.Private, Version: 1, CreatedAt: f.clock.Now(), UpdatedAt: f.clock.Now()},
				{ID: uuid.New(), OwnerID: owner, Text: "second", Permission: memory.Private, Version: 1, CreatedAt: f.clock.Now(), UpdatedAt: f.clock.Now()},
			}
			if err := f.mem.Insert(f.ctx, ms, nil); err != nil {
				t.Fatal(err)
			}
			todo, err := f.mem.Unembedded(f.ctx, 10)
			if err != nil || len(todo) != 2 {
				t.Fatalf("Unembedded = %v, %v", todo, err)
			}
			changed := *ms[1]
			changed.Text = "second, changed"
			if err := f.mem.Update(f.ctx, &changed, nil); err != nil {
				t.Fatal(err)
			}
			vecs := make([]memory.VersionedVector, len(todo))
			for i, u := range todo {
				vecs[i] = memory.VersionedVector{ID: u.ID, Version: u.Version, Vector: memory.Vector{Embedder: f.emb.Name(), Values: f.emb.vector(u.Text)}}
			}
			n, err := f.mem.SetVectors(f.ctx, vecs)
			if err != nil || n != 1 {
				t.Fatalf("SetVectors = %d, %v; want 1 (the changed memory skipped)", n, err)
			}
			left, err := f.mem.Unembedded(f.ctx, 10)
			if err != nil || len(left) != 1 || left[0].ID != ms[1].ID || left[0].Text != "second, changed" {
				t.Fatalf("still pending: %+v, %v", left, err)
			}
		})
	}
}

// BenchmarkRateLimitTake measures the database cost the shared rate limit
// adds to a request, as a ratio to the cheapest round trip (SELECT 1) on
// the same database in the same run.
func BenchmarkRateLimitTake(b *testing.B) {
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			f := newFixture(b, be)
			limits := f.db.RateLimits()
			measure := func(op func(i int) error) time.Duration {
				start := time.Now()
				for i := range b.N {
					if err := op(i); err != nil {
						b.Fatal(err)
					}
				}
				return time.Since(start)
			}
			b.ResetTimer()
			base := measure(func(int) error { return f.db.session(f.ctx).Exec("SELECT 1").Error })
			now := time.Now()
			take := measure(func(i int) error {
				// 64 tokens, each well within its limit, as under normal load.
				_, _, err := limits.Take(f.ctx, fmt.Sprintf("token-%d", i%64), now.Add(time.Duration(i)*time.Millisecond), time.Millisecond, 40)
				return err
			})
			b.ReportMetric(float64(take.Nanoseconds())/float64(b.N), "take-ns/op")
			b.ReportMetric(float64(take)/float64(base), "take/select1")
		})
	}
}
