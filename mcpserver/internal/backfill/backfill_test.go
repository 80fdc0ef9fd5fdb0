package backfill_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"picard.dev/mcpserver/internal/backfill"
	"picard.dev/mcpserver/internal/embed"
	"picard.dev/mcpserver/internal/memory"
	"picard.dev/mcpserver/internal/store"
	"picard.dev/mcpserver/internal/store/storetest"
	"picard.dev/mcpserver/internal/user"
)

// flakyEmbedder is the local hash embedder behind a switch: while down, every
// call fails as a provider outage would (after its own retries).
type flakyEmbedder struct {
	*embed.Hash
	down  atomic.Bool
	fails atomic.Int64
}

func (f *flakyEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if f.down.Load() {
		f.fails.Add(1)
		return nil, errors.New("embedding provider: HTTP 503 after 3 retries")
	}
	return f.Hash.Embed(ctx, texts)
}

// EmbedQuery fails like Embed: the service embeds search queries with it.
func (f *flakyEmbedder) EmbedQuery(ctx context.Context, text string, weight func(string) float64) ([]float32, error) {
	if f.down.Load() {
		f.fails.Add(1)
		return nil, errors.New("embedding provider: HTTP 503 after 3 retries")
	}
	return f.Hash.EmbedQuery(ctx, text, weight)
}

type fixture struct {
	svc   *memory.Service
	emb   *flakyEmbedder
	owner uuid.UUID
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	db := storetest.SQLite(t, store.Options{IndexKey: []byte("0123456789abcdef0123456789abcdef")})
	users := user.NewService(db.Users(), nil)
	u, err := users.Register(ctx, user.Registration{Email: "ada@example.com", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	emb := &flakyEmbedder{Hash: embed.NewHash(64)}
	return &fixture{svc: memory.NewService(db.Memories(), emb, users, nil), emb: emb, owner: u.ID}
}

// topHit reports whether a vector search for text ranks id first.
func (f *fixture) topHit(t *testing.T, text string, id uuid.UUID) bool {
	t.Helper()
	res, err := f.svc.Search(context.Background(), memory.SearchRequest{Viewer: f.owner, Query: text, Mode: "vector", Limit: 3})
	if err != nil {
		t.Fatalf("vector search: %v", err)
	}
	return len(res) > 0 && res[0].Memory.ID == id
}

// waitFor polls cond every 10 ms for at most d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNothingLostWhileTheEmbedderIsDown writes while the provider fails:
// every write is acknowledged and stored without a vector, vector search
// skips those memories, the worker retries with back-off while the provider
// stays down, and once it is back every memory is found by vector search
// with the text it was last given.
func TestNothingLostWhileTheEmbedderIsDown(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	healthy, err := f.svc.Create(ctx, f.owner, memory.Draft{Text: "embedded before the outage: sourdough starter feeding schedule"})
	if err != nil {
		t.Fatal(err)
	}

	f.emb.down.Store(true)
	var (
		texts = map[uuid.UUID]string{healthy.ID: healthy.Text}
		ids   []uuid.UUID
	)
	for i := range 5 {
		m, err := f.svc.Create(ctx, f.owner, memory.Draft{Text: fmt.Sprintf("single memory %d about lighthouse keeper number %d", i, i*7919)})
		if err != nil {
			t.Fatalf("Create while the embedder is down: %v", err)
		}
		texts[m.ID] = m.Text
		ids = append(ids, m.ID)
	}
	drafts := make([]memory.Draft, 40)
	for i := range drafts {
		drafts[i] = memory.Draft{Text: fmt.Sprintf("batch memory %d on orchard variety %d", i, i*104729), Tags: []string{"batch"}}
	}
	batch, err := f.svc.CreateBatch(ctx, f.owner, drafts)
	if err != nil {
		t.Fatalf("CreateBatch while the embedder is down: %v", err)
	}
	for _, m := range batch {
		texts[m.ID] = m.Text
		ids = append(ids, m.ID)
	}
	// Changing the text of an embedded memory while the provider is down
	// stores the text and drops the stale vector.
	newText := "rewritten during the outage: kombucha second fermentation"
	if _, err := f.svc.Update(ctx, f.owner, healthy.ID, memory.Patch{Text: &newText}); err != nil {
		t.Fatalf("Update while the embedder is down: %v", err)
	}
	texts[healthy.ID] = newText
	ids = append(ids, healthy.ID)

	if n, err := f.svc.CountPending(ctx); err != nil || n != len(ids) {
		t.Fatalf("CountPending = %d, %v; want %d", n, err, len(ids))
	}
	select {
	case <-f.svc.Pending():
	default:
		t.Fatal("no pending signal after writes without vectors")
	}
	// A query cannot be embedded either: that is a 503, not a 500.
	if _, err := f.svc.Search(ctx, memory.SearchRequest{Viewer: f.owner, Query: "lighthouse", Mode: "vector"}); !errors.Is(err, memory.ErrUnavailable) {
		t.Fatalf("vector search while the embedder is down: %v, want ErrUnavailable", err)
	}
	// Lexical search needs no embedder: it finds pending memories meanwhile.
	lex, err := f.svc.Search(ctx, memory.SearchRequest{Viewer: f.owner, Query: "lighthouse keeper", Mode: "lexical", Limit: 10})
	if err != nil {
		t.Fatalf("lexical search while the embedder is down: %v", err)
	}
	if len(lex) != 5 {
		t.Errorf("lexical search while the embedder is down found %d memories, want the 5 about lighthouse keepers", len(lex))
	}
	// Hybrid search, the default, falls back to the lexical ranking rather
	// than failing.
	hyb, err := f.svc.Search(ctx, memory.SearchRequest{Viewer: f.owner, Query: "lighthouse keeper", Limit: 10})
	if err != nil {
		t.Fatalf("hybrid search while the embedder is down: %v", err)
	}
	for i := range max(len(hyb), len(lex)) {
		if i >= len(hyb) || i >= len(lex) || hyb[i].Memory.ID != lex[i].Memory.ID {
			t.Fatalf("hybrid search while the embedder is down: %d results, want the lexical ranking's %d in the same order", len(hyb), len(lex))
		}
	}
	// With the provider answering again but no worker yet, vector search
	// skips the pending memories (and finds nothing stale for the rewrite).
	f.emb.down.Store(false)
	if f.topHit(t, texts[ids[0]], ids[0]) || f.topHit(t, newText, healthy.ID) {
		t.Fatal("vector search found a memory that has no vector yet")
	}
	f.emb.down.Store(true)

	reg := prometheus.NewRegistry()
	w, err := backfill.New(backfill.Options{
		Filler: f.svc, Batch: 16, Interval: time.Hour,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	defer func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("the worker did not stop within 10 s of its context ending")
		}
	}()

	// The worker keeps retrying while the provider stays down, backing off.
	before := f.emb.fails.Load()
	waitFor(t, 10*time.Second, "the worker to retry three times", func() bool { return f.emb.fails.Load() >= before+3 })
	if n, _ := f.svc.CountPending(ctx); n != len(ids) {
		t.Fatalf("pending = %d while the provider is down, want %d", n, len(ids))
	}
	if got := pendingGauge(t, reg); got != float64(len(ids)) {
		t.Errorf("picard_embeddings_pending = %v, want %d", got, len(ids))
	}

	f.emb.down.Store(false)
	waitFor(t, 20*time.Second, "every pending memory to get its vector", func() bool {
		n, err := f.svc.CountPending(ctx)
		return err == nil && n == 0
	})
	for _, id := range ids {
		m, err := f.svc.Get(ctx, f.owner, id, false)
		if err != nil {
			t.Fatalf("memory %s acknowledged during the outage is gone: %v", id, err)
		}
		if m.Text != texts[id] {
			t.Errorf("memory %s has text %q, want %q", id, m.Text, texts[id])
		}
		if !f.topHit(t, texts[id], id) {
			t.Errorf("vector search for %q does not rank memory %s first after recovery", texts[id], id)
		}
	}
	waitFor(t, 5*time.Second, "the pending gauge to reach 0", func() bool { return pendingGauge(t, reg) == 0 })
}

// pendingGauge reads picard_embeddings_pending from reg.
func pendingGauge(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "picard_embeddings_pending" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no picard_embeddings_pending metric")
	return 0
}
