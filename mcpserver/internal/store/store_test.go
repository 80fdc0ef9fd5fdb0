package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"picard.dev/mcpserver/internal/activity"
	"picard.dev/mcpserver/internal/memory"
	"picard.dev/mcpserver/internal/user"
)

// TestStore runs the whole suite against each backend: SQLite in a temp
// dir, and Postgres from pgtest (skipped with a reason outside CI when
// Postgres is missing).
func TestStore(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, f *fixture)
	}{
		{"Migrations", testMigrations},
		{"CRUD", testCRUD},
		{"Timestamps", testTimestamps},
		{"Visibility", testVisibility},
		{"ExpiryBoundary", testExpiryBoundary},
		{"Filters", testFilters},
		{"Pagination", testPagination},
		{"PaginationConcurrentInserts", testPaginationConcurrentInserts},
		{"Search", testSearch},
		{"ConcurrentWriters", testConcurrentWriters},
		{"BatchInsertAllOrNothing", testBatchInsertAllOrNothing},
		{"DeleteAllOrNothing", testDeleteAllOrNothing},
		{"Users", testUsers},
		{"CascadeOnUserDelete", testCascade},
		{"Activity", testActivity},
		{"PersonasAndStats", testPersonasAndStats},
		{"RotateKeys", testRotateKeys},
		{"Reembed", testReembed},
		{"NoPlaintextAtRest", testNoPlaintext},
	}
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, newFixture(t, b)) })
			}
		})
	}
}

func testMigrations(t *testing.T, f *fixture) {
	if err := f.db.CheckSchema(f.ctx); err != nil {
		t.Fatalf("migrated schema: %v", err)
	}
	if err := f.db.Migrate(f.ctx); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	cur, latest, err := f.db.SchemaVersion(f.ctx)
	if err != nil || cur != latest || latest < 1 {
		t.Fatalf("schema version %d of %d, %v", cur, latest, err)
	}
	if err := f.db.EnsureVectorIndex(f.ctx, f.emb.dim); err != nil {
		t.Fatalf("second EnsureVectorIndex: %v", err)
	}
	if f.db.Dialect() == DialectPostgres {
		testVectorIndexParameters(t, f)
	}
	if err := f.db.Ping(f.ctx); err != nil {
		t.Fatal(err)
	}

	// A database nobody migrated is refused, naming the command to run.
	fresh := newFixtureUnmigrated(t, f)
	err = fresh.CheckSchema(f.ctx)
	if !errors.Is(err, ErrSchemaOutdated) || !strings.Contains(err.Error(), "mcpserver migrate") {
		t.Fatalf("unmigrated schema: got %v", err)
	}
}

// newFixtureUnmigrated opens another, empty database of f's dialect.
func newFixtureUnmigrated(t *testing.T, f *fixture) *DB {
	for _, b := range backends() {
		if b.name == f.db.Dialect() {
			opts := b.options(t)
			opts.Sealer = f.sealer
			db, err := Open(f.ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		}
	}
	t.Fatal("no backend")
	return nil
}

func testCRUD(t *testing.T, f *fixture) {
	alice, bob := f.user("alice"), f.user("bob")
	exp := f.clock.Now().Add(48 * time.Hour)
	m := f.create(alice, memory.Draft{
		Text:       "Alice likes green tea — 緑茶",
		Tags:       []string{"tea", "drinks", "zz"},
		Metadata:   map[string]any{"source": "chat", "n": 3, "nested": map[string]any{"a": []any{1, "x"}}},
		ExpiresAt:  &exp,
		SharedWith: []string{"BOB@example.com"},
	})
	if m.Permission != memory.Shared || !slices.Equal(m.SharedWith, []uuid.UUID{bob}) {
		t.Fatalf("draft with shared_with: %+v", m)
	}
	got, err := f.mem.Get(f.ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameMemory(t, m, got)

	// Update through the service: text (new vector), tags, metadata, expiry.
	text := "Alice prefers oolong now"
	m2, err := f.svc.Update(f.ctx, alice, m.ID, memory.Patch{
		Text: &text, Tags: &[]string{"oolong"}, Metadata: &map[string]any{"source": "import"},
		ExpiresAt: ptr[*time.Time](nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	if m2.Version != 2 || !m2.UpdatedAt.After(m.UpdatedAt) || !m2.CreatedAt.Equal(m.CreatedAt) {
		t.Fatalf("after update: version %d, created %s→%s, updated %s→%s", m2.Version, m.CreatedAt, m2.CreatedAt, m.UpdatedAt, m2.UpdatedAt)
	}
	got, err = f.mem.Get(f.ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameMemory(t, m2, got)
	res, err := f.svc.Search(f.ctx, memory.SearchRequest{Viewer: alice, Query: text})
	if err != nil || len(res) != 1 || res[0].Score < 0.999 {
		t.Fatalf("search for the new text: %+v, %v", res, err)
	}

	// Permission changes replace the shares.
	m3, err := f.svc.SetPermission(f.ctx, alice, m.ID, "public", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = f.mem.Get(f.ctx, m.ID)
	sameMemory(t, m3, got)
	if f.count("SELECT count(*) FROM memory_shares") != 0 {
		t.Fatal("shares left after making the memory public")
	}

	// A stale version is a conflict and changes nothing.
	stale := *got
	stale.Version = 1
	stale.Text = "lost update"
	if err := f.mem.Update(f.ctx, &stale, nil); !errors.Is(err, memory.ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	if g, _ := f.mem.Get(f.ctx, m.ID); g.Text != text {
		t.Fatalf("stale update changed the text to %q", g.Text)
	}
	ghost := *got
	ghost.ID = uuid.New()
	if err := f.mem.Update(f.ctx, &ghost, nil); !errors.Is(err, memory.ErrNotFound) {
		t.Fatalf("update of a missing memory: %v", err)
	}
	// Bob may see the public memory but not change it.
	if _, err := f.svc.Update(f.ctx, bob, m.ID, memory.Patch{Text: &text}); !errors.Is(err, memory.ErrForbidden) {
		t.Fatalf("bob updating alice's public memory: %v", err)
	}

	// A zero vector removes the embedding; nil keeps it.
	if err := f.mem.Update(f.ctx, got, &memory.Vector{}); err != nil {
		t.Fatal(err)
	}
	if n := f.count("SELECT count(*) FROM memory_embeddings"); n != 0 {
		t.Fatalf("%d embeddings after removing the vector", n)
	}

	n, err := f.svc.Delete(f.ctx, alice, []uuid.UUID{m.ID, m.ID})
	if err != nil || n != 1 {
		t.Fatalf("delete: %d, %v", n, err)
	}
	if _, err := f.mem.Get(f.ctx, m.ID); !errors.Is(err, memory.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	for _, table := range []string{"memory_tags", "memory_shares", "memory_embeddings"} {
		if n := f.count("SELECT count(*) FROM " + table); n != 0 {
			t.Errorf("%d rows left in %s", n, table)
		}
	}
}

// testTimestamps checks microseconds survive and that order in the database
// is time order, including across the epoch and digits boundaries.
func testTimestamps(t *testing.T, f *fixture) {
	alice := f.user("alice")
	times := []time.Time{
		time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 1000, time.UTC),
		time.Date(2001, 9, 9, 1, 46, 39, 999999000, time.UTC), // 999999999 s
		time.Date(2001, 9, 9, 1, 46, 40, 0, time.UTC),         // 1000000000 s
		time.Date(2025, 6, 1, 10, 0, 0, 123456000, time.FixedZone("CEST", 2*3600)),
		time.Date(2025, 6, 1, 10, 0, 0, 123457000, time.UTC),
	}
	var ms []*memory.Memory
	for i, at := range times {
		ms = append(ms, &memory.Memory{ID: uuid.New(), OwnerID: alice, Text: fmt.Sprint("t", i), Permission: memory.Private,
			Tags: []string{}, SharedWith: []uuid.UUID{}, Metadata: map[string]any{}, CreatedAt: at, UpdatedAt: at, Version: 1})
	}
	if err := f.mem.Insert(f.ctx, ms, nil); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		got, err := f.mem.Get(f.ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.CreatedAt.Equal(m.CreatedAt) {
			t.Errorf("created_at %s came back as %s", m.CreatedAt, got.CreatedAt)
		}
	}
	want := slices.Clone(ms)
	slices.SortFunc(want, func(a, b *memory.Memory) int { return a.CreatedAt.Compare(b.CreatedAt) })
	got := f.listAll(memory.ListQuery{Viewer: alice, Owner: alice, Sort: memory.SortCreated, Order: memory.Asc, Limit: 2, Now: f.clock.Now()})
	if !slices.Equal(ids(got), ids(want)) {
		t.Fatalf("ascending order is not time order")
	}
}

// visibilityWorld is a set of memories covering every visibility case.
type visibilityWorld struct {
	users []uuid.UUID // alice, bob, carol, dave
	all   []*memory.Memory
	names names
	now   time.Time
}

func buildVisibility(f *fixture) visibilityWorld {
	alice, bob, carol, dave := f.user("alice"), f.user("bob"), f.user("carol"), f.user("dave")
	w := visibilityWorld{users: []uuid.UUID{alice, bob, carol, dave}, names: names{}}
	past := f.clock.Now().Add(-time.Hour)
	future := f.clock.Now().Add(time.Hour)
	add := func(name string, owner uuid.UUID, perm string, exp *time.Time, shared ...string) {
		m := f.create(owner, memory.Draft{Text: "note about " + name + " and the garden", Permission: perm, ExpiresAt: exp, SharedWith: shared})
		w.all = append(w.all, m)
		w.names[m.ID] = name
	}
	add("a-private", alice, "private", nil)
	add("a-public", alice, "public", nil)
	add("a-shared-bob", alice, "shared", nil, "bob@example.com")
	add("a-shared-bob-carol", alice, "shared", &future, "bob@example.com", "carol@example.com")
	add("a-shared-none", alice, "shared", nil)
	add("a-private-expired", alice, "private", &past)
	add("a-public-expired", alice, "public", &past)
	add("a-shared-bob-expired", alice, "shared", &past, "bob@example.com")
	add("b-public", bob, "public", &future)
	add("b-shared-alice", bob, "shared", nil, "alice@example.com")
	add("b-private", bob, "private", nil)
	add("b-public-expired", bob, "public", &past)
	w.now = f.clock.Now()
	return w
}

// testVisibility checks that List and Search agree with memory.Visible for
// every viewer, owner filter and include_expired.
func testVisibility(t *testing.T, f *fixture) {
	w := buildVisibility(f)
	userNames := []string{"alice", "bob", "carol", "dave"}
	for vi, viewer := range w.users {
		owners := append([]uuid.UUID{uuid.Nil}, w.users...)
		for _, owner := range owners {
			for _, incl := range []bool{false, true} {
				var want []uuid.UUID
				var wantSearch []uuid.UUID
				for _, m := range w.all {
					if owner != uuid.Nil && m.OwnerID != owner {
						continue
					}
					if memory.Visible(m, viewer, w.now, incl) {
						want = append(want, m.ID)
					}
					if memory.Visible(m, viewer, w.now, false) {
						wantSearch = append(wantSearch, m.ID)
					}
				}
				ownerName := "any"
				if owner != uuid.Nil {
					ownerName = userNames[slices.Index(w.users, owner)]
				}
				label := fmt.Sprintf("viewer %s, owner %s, include_expired %v", userNames[vi], ownerName, incl)
				got := f.listAll(memory.ListQuery{Viewer: viewer, Owner: owner, IncludeExpired: incl, Limit: 3, Now: w.now})
				if g, wn := w.names.of(ids(got)), w.names.of(want); !slices.Equal(g, wn) {
					t.Errorf("list, %s:\n got %v\nwant %v", label, g, wn)
				}
				if incl {
					continue
				}
				res, err := f.mem.Search(f.ctx, memory.SearchQuery{Viewer: viewer, Owner: owner, Limit: 100, Now: w.now,
					Vector: memory.Vector{Embedder: f.emb.Name(), Values: f.emb.vector("garden note")}})
				if err != nil {
					t.Fatal(err)
				}
				if g, wn := w.names.of(scoredIDs(res)), w.names.of(wantSearch); !slices.Equal(g, wn) {
					t.Errorf("search, %s:\n got %v\nwant %v", label, g, wn)
				}
			}
		}
		// Get through the service follows the same rule.
		for _, m := range w.all {
			for _, incl := range []bool{false, true} {
				_, err := f.svc.Get(f.ctx, viewer, m.ID, incl)
				visible := memory.Visible(m, viewer, f.svc.Now(), incl)
				if visible != (err == nil) || (!visible && !errors.Is(err, memory.ErrNotFound)) {
					t.Errorf("get %s by %s (include_expired %v): visible %v, err %v", w.names[m.ID], userNames[vi], incl, visible, err)
				}
			}
		}
	}
}

// testExpiryBoundary: a memory is expired from the instant of its
// expiration on, exactly as memory.Memory.Expired says.
func testExpiryBoundary(t *testing.T, f *fixture) {
	alice, bob := f.user("alice"), f.user("bob")
	at := f.clock.Now().Add(time.Hour).Truncate(time.Microsecond)
	m := f.create(alice, memory.Draft{Text: "ephemeral", Permission: "public", ExpiresAt: &at})
	for _, tc := range []struct {
		now  time.Time
		want bool
	}{{at.Add(-time.Microsecond), true}, {at, false}, {at.Add(time.Microsecond), false}} {
		got := f.listAll(memory.ListQuery{Viewer: bob, Now: tc.now})
		if (len(got) == 1) != tc.want || memory.Visible(m, bob, tc.now, false) != tc.want {
			t.Errorf("at %s: %d memories for bob, want visible %v", tc.now, len(got), tc.want)
		}
		got = f.listAll(memory.ListQuery{Viewer: alice, Owner: alice, Now: tc.now})
		if (len(got) == 1) != tc.want {
			t.Errorf("at %s: %d memories for alice without include_expired, want visible %v", tc.now, len(got), tc.want)
		}
		got = f.listAll(memory.ListQuery{Viewer: alice, Owner: alice, IncludeExpired: true, Now: tc.now})
		if len(got) != 1 {
			t.Errorf("at %s: alice with include_expired sees %d", tc.now, len(got))
		}
	}
	// The service reports the expiry and hides it once past.
	past := f.clock.Now().Add(-time.Minute)
	old := f.create(alice, memory.Draft{Text: "imported history", Permission: "public", ExpiresAt: &past})
	if !old.Expired(f.svc.Now()) {
		t.Fatal("a past expiration must be accepted and expired")
	}
	if _, err := f.svc.Get(f.ctx, alice, old.ID, false); !errors.Is(err, memory.ErrNotFound) {
		t.Fatalf("owner without include_expired: %v", err)
	}
	if _, err := f.svc.Get(f.ctx, alice, old.ID, true); err != nil {
		t.Fatalf("owner with include_expired: %v", err)
	}
	p, err := f.svc.List(f.ctx, memory.ListQuery{Viewer: bob, Owner: alice, IncludeExpired: true})
	if err != nil || len(p.Memories) != 1 || p.Memories[0].ID != m.ID {
		t.Fatalf("bob asking for alice's expired memories: %v, %v", p.Memories, err)
	}
}

func testFilters(t *testing.T, f *fixture) {
	alice, bob := f.user("alice"), f.user("bob")
	var times []time.Time
	mk := func(text, perm string, tags []string, md map[string]any, shared ...string) *memory.Memory {
		m := f.create(alice, memory.Draft{Text: text, Permission: perm, Tags: tags, Metadata: md, SharedWith: shared})
		times = append(times, m.CreatedAt)
		return m
	}
	f1 := mk("one", "private", []string{"a", "b"}, map[string]any{"lang": "go", "n": 1, "ok": true, "s": "1", "big": 12345678901})
	f2 := mk("two", "public", []string{"b", "c"}, map[string]any{"lang": "rust", "n": 1.5, "ok": false, "arr": []any{"go"}})
	f3 := mk("three", "shared", []string{"a", "b", "c"}, map[string]any{"lang": "go", "n": 2, "nested": map[string]any{"lang": "go"}}, "bob@example.com")
	f4 := mk("four", "public", nil, nil)
	nm := names{f1.ID: "f1", f2.ID: "f2", f3.ID: "f3", f4.ID: "f4"}
	f.create(bob, memory.Draft{Text: "bob's", Permission: "public", Tags: []string{"a", "b"}, Metadata: map[string]any{"lang": "go"}})

	cases := []struct {
		name string
		q    memory.ListQuery
		want []string
	}{
		{"all", memory.ListQuery{}, []string{"f1", "f2", "f3", "f4"}},
		{"permission private", memory.ListQuery{Permission: memory.Private}, []string{"f1"}},
		{"permission public", memory.ListQuery{Permission: memory.Public}, []string{"f2", "f4"}},
		{"permission shared", memory.ListQuery{Permission: memory.Shared}, []string{"f3"}},
		{"tag a", memory.ListQuery{Tags: []string{"a"}}, []string{"f1", "f3"}},
		{"tags a and c", memory.ListQuery{Tags: []string{"a", "c"}}, []string{"f3"}},
		{"tag b", memory.ListQuery{Tags: []string{"b"}}, []string{"f1", "f2", "f3"}},
		{"unknown tag", memory.ListQuery{Tags: []string{"z"}}, nil},
		{"string", memory.ListQuery{Metadata: map[string]any{"lang": "go"}}, []string{"f1", "f3"}},
		{"int", memory.ListQuery{Metadata: map[string]any{"n": 1}}, []string{"f1"}},
		{"float equal to int", memory.ListQuery{Metadata: map[string]any{"n": 1.0}}, []string{"f1"}},
		{"json number", memory.ListQuery{Metadata: map[string]any{"n": json.Number("2")}}, []string{"f3"}},
		{"fraction", memory.ListQuery{Metadata: map[string]any{"n": 1.5}}, []string{"f2"}},
		{"big int", memory.ListQuery{Metadata: map[string]any{"big": int64(12345678901)}}, []string{"f1"}},
		{"string is not number", memory.ListQuery{Metadata: map[string]any{"n": "1"}}, nil},
		{"number is not string", memory.ListQuery{Metadata: map[string]any{"s": 1}}, nil},
		{"string 1", memory.ListQuery{Metadata: map[string]any{"s": "1"}}, []string{"f1"}},
		{"true", memory.ListQuery{Metadata: map[string]any{"ok": true}}, []string{"f1"}},
		{"false", memory.ListQuery{Metadata: map[string]any{"ok": false}}, []string{"f2"}},
		{"bool is not string", memory.ListQuery{Metadata: map[string]any{"ok": "true"}}, nil},
		{"bool is not number", memory.ListQuery{Metadata: map[string]any{"ok": 1}}, nil},
		{"scalar does not match array", memory.ListQuery{Metadata: map[string]any{"arr": "go"}}, nil},
		{"nested keys are not top-level", memory.ListQuery{Metadata: map[string]any{"nested.lang": "go"}}, nil},
		{"missing key", memory.ListQuery{Metadata: map[string]any{"missing": "x"}}, nil},
		{"two keys", memory.ListQuery{Metadata: map[string]any{"lang": "go", "n": 2}}, []string{"f3"}},
		{"key with quote and dot", memory.ListQuery{Metadata: map[string]any{`a"b.c`: "x"}}, nil},
		{"created after", memory.ListQuery{CreatedAfter: &times[0]}, []string{"f2", "f3", "f4"}},
		{"created before", memory.ListQuery{CreatedBefore: &times[2]}, []string{"f1", "f2"}},
		{"created range", memory.ListQuery{CreatedAfter: &times[0], CreatedBefore: &times[3]}, []string{"f2", "f3"}},
		{"combined", memory.ListQuery{Tags: []string{"b"}, Permission: memory.Public, Metadata: map[string]any{"lang": "rust"}}, []string{"f2"}},
	}
	for _, tc := range cases {
		for _, order := range []memory.Order{memory.Asc, memory.Desc} {
			q := tc.q
			q.Viewer, q.Order, q.Limit = alice, order, 2
			var got []uuid.UUID
			for {
				p, err := f.svc.List(f.ctx, q)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				got = append(got, ids(p.Memories)...)
				if p.Next == nil {
					break
				}
				q.After = p.Next
			}
			if g := nm.of(got); !slices.Equal(g, tc.want) && !(len(g) == 0 && len(tc.want) == 0) {
				t.Errorf("%s (%s): got %v, want %v", tc.name, order, g, tc.want)
			}
		}
	}
	// Bob, looking at alice's memories, gets the filters and his visibility.
	p, err := f.svc.List(f.ctx, memory.ListQuery{Viewer: bob, Owner: alice, Tags: []string{"b"}})
	if err != nil {
		t.Fatal(err)
	}
	if g := nm.of(ids(p.Memories)); !slices.Equal(g, []string{"f2", "f3"}) {
		t.Errorf("bob's view of alice's tag b: %v", g)
	}
}

// paginationSet inserts memories with repeated timestamps, so that the
// keyset's id tie-breaker matters.
func paginationSet(f *fixture, owner uuid.UUID, n int, base time.Time) []*memory.Memory {
	f.tb.Helper()
	var ms []*memory.Memory
	for i := range n {
		ms = append(ms, &memory.Memory{
			ID: uuid.New(), OwnerID: owner, Text: fmt.Sprint("page item ", i), Permission: memory.Private,
			Tags: []string{}, SharedWith: []uuid.UUID{}, Metadata: map[string]any{},
			CreatedAt: base.Add(time.Duration(i/3) * time.Second),
			UpdatedAt: base.Add(time.Duration((n-i)/2) * time.Second),
			Version:   1,
		})
	}
	if err := f.mem.Insert(f.ctx, ms, nil); err != nil {
		f.tb.Fatal(err)
	}
	return ms
}

func expectedOrder(ms []*memory.Memory, sort memory.SortField, order memory.Order) []uuid.UUID {
	out := slices.Clone(ms)
	key := func(m *memory.Memory) time.Time {
		if sort == memory.SortUpdated {
			return m.UpdatedAt
		}
		return m.CreatedAt
	}
	slices.SortFunc(out, func(a, b *memory.Memory) int {
		c := key(a).Compare(key(b))
		if c == 0 {
			c = strings.Compare(a.ID.String(), b.ID.String())
		}
		if order == memory.Desc {
			c = -c
		}
		return c
	})
	return ids(out)
}

func testPagination(t *testing.T, f *fixture) {
	alice := f.user("alice")
	ms := paginationSet(f, alice, 23, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	for _, sort := range []memory.SortField{memory.SortCreated, memory.SortUpdated} {
		for _, order := range []memory.Order{memory.Asc, memory.Desc} {
			var got []uuid.UUID
			q := memory.ListQuery{Viewer: alice, Sort: sort, Order: order, Limit: 5}
			pages := 0
			for {
				p, err := f.svc.List(f.ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				pages++
				got = append(got, ids(p.Memories)...)
				if p.Next == nil {
					break
				}
				// Continue through the opaque form, as clients do.
				c, err := memory.DecodeCursor("cursor", p.Next.Encode())
				if err != nil {
					t.Fatal(err)
				}
				q.After = c
			}
			if want := expectedOrder(ms, sort, order); !slices.Equal(got, want) {
				t.Errorf("%s %s: order differs from (sort value, id)", sort, order)
			}
			if pages != 5 {
				t.Errorf("%s %s: %d pages of 5 for 23 memories", sort, order, pages)
			}
		}
	}
	// An exact multiple of the page size ends without an empty extra page.
	p, err := f.svc.List(f.ctx, memory.ListQuery{Viewer: alice, Limit: 23})
	if err != nil || len(p.Memories) != 23 || p.Next != nil {
		t.Fatalf("one full page: %d memories, next %v, %v", len(p.Memories), p.Next, err)
	}
}

// testPaginationConcurrentInserts inserts memories between page fetches,
// newer than everything and in the middle of the range already paged
// through and still to come: every original memory appears exactly once.
func testPaginationConcurrentInserts(t *testing.T, f *fixture) {
	alice := f.user("alice")
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	orig := paginationSet(f, alice, 30, base)
	for _, order := range []memory.Order{memory.Asc, memory.Desc} {
		seen := map[uuid.UUID]int{}
		q := memory.ListQuery{Viewer: alice, Order: order, Limit: 4}
		for page := 0; ; page++ {
			p, err := f.svc.List(f.ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range p.Memories {
				seen[m.ID]++
			}
			if p.Next == nil {
				break
			}
			q.After = p.Next
			// Newer than everything (the usual case), and back-dated into
			// the listed range (imports).
			f.create(alice, memory.Draft{Text: fmt.Sprint("concurrent ", page)})
			paginationSet(f, alice, 1, base.Add(time.Duration(page)*time.Second+500*time.Millisecond))
		}
		for _, m := range orig {
			if seen[m.ID] != 1 {
				t.Errorf("%s: original memory seen %d times", order, seen[m.ID])
			}
		}
		for id, n := range seen {
			if n > 1 {
				t.Errorf("%s: memory %s seen %d times", order, id, n)
			}
		}
	}
}

func testSearch(t *testing.T, f *fixture) {
	alice, bob := f.user("alice"), f.user("bob")
	texts := []string{
		"the cat sat on the mat",
		"dogs chase cats in the park",
		"quantum computing with superconducting qubits",
		"a recipe for lemon cake with sugar",
		"the stock market fell sharply today",
	}
	byText := map[string]*memory.Memory{}
	for i, text := range texts {
		tags := []string{"all"}
		if i%2 == 0 {
			tags = append(tags, "even")
		}
		byText[text] = f.create(alice, memory.Draft{Text: text, Permission: "public", Tags: tags})
	}
	bobs := f.create(bob, memory.Draft{Text: "the cat sat on the mat again", Permission: "public"})

	res, err := f.svc.Search(f.ctx, memory.SearchRequest{Viewer: alice, Query: "the cat sat on the mat", Mode: "vector"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 6 || res[0].Memory.ID != byText[texts[0]].ID || res[0].Score < 0.999 {
		t.Fatalf("best match: %v", res)
	}
	for i := 1; i < len(res); i++ {
		if res[i].Score > res[i-1].Score+1e-6 {
			t.Fatalf("results not sorted best first: %v then %v", res[i-1].Score, res[i].Score)
		}
	}
	if res[1].Memory.ID != bobs.ID {
		t.Errorf("second best should be bob's near-duplicate, got %q", res[1].Memory.Text)
	}
	// Scores agree with the exact cosine of the test embedder.
	q := f.emb.vector("the cat sat on the mat")
	for _, r := range res {
		want := dot(q, f.emb.vector(r.Memory.Text))
		if d := r.Score - float64(want); d > 1e-4 || d < -1e-4 {
			t.Errorf("score %v for %q, exact cosine %v", r.Score, r.Memory.Text, want)
		}
	}

	// The filters are checked on vector search, which ranks every memory
	// with a vector; hybrid and lexical leave out those sharing nothing with
	// the query (see lexical_test.go).
	check := func(label string, req memory.SearchRequest, want int) []memory.Scored {
		t.Helper()
		req.Viewer = alice
		if req.Mode == "" {
			req.Mode = "vector"
		}
		res, err := f.svc.Search(f.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != want {
			t.Errorf("%s: %d results, want %d", label, len(res), want)
		}
		return res
	}
	check("limit", memory.SearchRequest{Query: "cat", Limit: 2}, 2)
	for _, r := range check("owner", memory.SearchRequest{Query: "cat", Owner: bob}, 1) {
		if r.Memory.OwnerID != bob {
			t.Error("owner filter ignored")
		}
	}
	check("tags", memory.SearchRequest{Query: "cat", Tags: []string{"all", "even"}}, 3)
	check("permission", memory.SearchRequest{Query: "cat", Permission: "private"}, 0)

	// Vectors of another embedder are never compared.
	other := hashEmbedder{dim: 64}
	vq := memory.SearchQuery{Viewer: alice, Limit: 10, Now: f.svc.Now(),
		Vector: memory.Vector{Embedder: "another-model", Values: other.vector("cat")}}
	if res, err := f.mem.Search(f.ctx, vq); err != nil || len(res) != 0 {
		t.Fatalf("search with another embedder's name: %d results, %v", len(res), err)
	}
	// Nor vectors of another dimension under the same name.
	vq.Vector = memory.Vector{Embedder: f.emb.Name(), Values: hashEmbedder{dim: 32}.vector("cat")}
	if res, err := f.mem.Search(f.ctx, vq); err != nil || len(res) != 0 {
		t.Fatalf("search with another dimension: %d results, %v", len(res), err)
	}

	// An update re-embeds: the old text no longer matches best, the new does
	// (and SQLite's cache must not serve the old vector).
	newText := "lemon cake recipe"
	if _, err := f.svc.Update(f.ctx, alice, byText[texts[0]].ID, memory.Patch{Text: &newText}); err != nil {
		t.Fatal(err)
	}
	res = check("after update", memory.SearchRequest{Query: "lemon cake recipe", Limit: 1}, 1)
	if res[0].Memory.ID != byText[texts[0]].ID || res[0].Score < 0.999 {
		t.Errorf("after update the best match is %q (%v)", res[0].Memory.Text, res[0].Score)
	}
	if _, err := f.svc.Delete(f.ctx, alice, []uuid.UUID{byText[texts[0]].ID}); err != nil {
		t.Fatal(err)
	}
	res = check("after delete", memory.SearchRequest{Query: "lemon cake recipe", Limit: 10}, 5)
	if slices.Contains(scoredIDs(res), byText[texts[0]].ID) {
		t.Error("a deleted memory is still found")
	}
	if f.db.Dialect() == DialectPostgres {
		testHNSW(t, f)
	}
}

// testHNSW checks that Postgres answers through the partial HNSW index and
// measures recall@10 against an exact scan of the same query.
func testHNSW(t *testing.T, f *fixture) {
	owner := f.user("bulk")
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 3000
	ms, vecs := randomMemories(rng, owner, n, f.emb, f.clock.Now())
	if err := f.mem.Insert(f.ctx, ms, vecs); err != nil {
		t.Fatal(err)
	}
	if err := f.db.session(f.ctx).Exec("ANALYZE").Error; err != nil {
		t.Fatal(err)
	}
	recall, err := hnswRecall(f.ctx, f.mem, owner, f.emb, rng, 30, f.svc.Now())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("HNSW recall@10 against exact search over %d vectors: %.3f", n, recall)
	if recall < 0.9 {
		t.Errorf("HNSW recall@10 is %.3f", recall)
	}
	testWordCandidates(t, f, rng)
	var plan []string
	d := fmt.Sprint(f.emb.dim)
	err = f.db.tx(f.ctx, func(tx *gorm.DB) error {
		// At a few thousand rows the planner rightly prefers a sequential
		// scan (an m 32 graph costs more to enter); what matters here is
		// that the query's expression matches the partial index.
		if err := tx.Exec("SET LOCAL enable_seqscan = off").Error; err != nil {
			return err
		}
		return tx.Raw("EXPLAIN SELECT e.memory_id FROM memory_embeddings e WHERE e.dim = "+d+
			" ORDER BY (e.embedding::vector("+d+")) <=> ?::vector("+d+") LIMIT 10", pgVector(vecs[0].Values)).Scan(&plan).Error
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(plan, "\n"), "memory_embeddings_hnsw_"+d) {
		t.Errorf("the kNN query does not use the HNSW index:\n%s", strings.Join(plan, "\n"))
	}
}

// testWordCandidates: a search for a vector of words (SearchQuery.Words)
// also scores the memories BM25 ranks first, so it finds the neighbours an
// HNSW walk misses, with their exact similarity. The walk is starved: ten
// candidates (ef_search 10, no iterative scan) of which the viewer may see
// one in ten.
func testWordCandidates(t *testing.T, f *fixture, rng *rand.Rand) {
	// 1,024 dimensions, so that memories rarely share a bucket without
	// sharing a word.
	emb := hashEmbedder{dim: 1024}
	owner, viewer := f.user("words"), f.user("viewer")
	ms, vecs := randomMemories(rng, owner, 2000, emb, f.clock.Now())
	for i, m := range ms {
		if i%10 != 0 {
			m.Permission = memory.Private
		}
		// Words of their own: the lexical ranking is not to be filled
		// with the public memories of testHNSW, of another dimension.
		m.Text = strings.ReplaceAll(m.Text, "w", "v")
		vecs[i].Values = emb.vector(m.Text)
	}
	if err := f.mem.Insert(f.ctx, ms, vecs); err != nil {
		t.Fatal(err)
	}
	if err := f.db.EnsureVectorIndex(f.ctx, emb.dim); err != nil {
		t.Fatal(err)
	}
	if err := f.db.session(f.ctx).Exec("ANALYZE").Error; err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.pgvectorIterative(f.ctx); err != nil {
		t.Fatal(err)
	}
	ef, iterative := f.db.efSearch, f.db.iterativeScan
	f.db.efSearch, f.db.iterativeScan = 10, false
	t.Cleanup(func() { f.db.efSearch, f.db.iterativeScan = ef, iterative })
	textOf := make(map[uuid.UUID]string, len(ms))
	for _, m := range ms {
		textOf[m.ID] = " " + m.Text + " "
	}
	var plain, words, want int
	for range 30 {
		// Two words of a memory the viewer may see.
		ws := strings.Fields(ms[rng.IntN(len(ms)/10)*10].Text)
		q := memory.SearchQuery{Viewer: viewer, Limit: 5, Now: f.svc.Now(), Text: ws[0] + " " + ws[len(ws)-1],
			Vector: memory.Vector{Embedder: emb.Name(), Values: emb.vector(ws[0] + " " + ws[len(ws)-1])}}
		exact, err := f.mem.searchHNSW(f.ctx, q, true)
		if err != nil {
			t.Fatal(err)
		}
		// The neighbours that share a word with the query (others share
		// only a bucket, which no lexical ranking can know of): each must
		// be found, or the results be as similar.
		found := func(got []memory.Hit) int {
			n := 0
			for _, e := range exact {
				if !strings.Contains(textOf[e.id], " "+ws[0]+" ") && !strings.Contains(textOf[e.id], " "+ws[len(ws)-1]+" ") {
					continue
				}
				if slices.ContainsFunc(got, func(h memory.Hit) bool { return h.ID == e.id }) ||
					(len(got) == len(exact) && got[len(got)-1].Score >= e.score-1e-6) {
					n++
				}
			}
			return n
		}
		exactHits := make([]memory.Hit, len(exact))
		for i, e := range exact {
			exactHits[i] = memory.Hit{ID: e.id, Score: e.score}
		}
		want += found(exactHits)
		got, err := f.mem.vectorHits(f.ctx, q, nil)
		if err != nil {
			t.Fatal(err)
		}
		plain += found(got)
		q.Words = true
		if got, err = f.mem.vectorHits(f.ctx, q, nil); err != nil {
			t.Fatal(err)
		}
		words += found(got)
		exactScore := map[uuid.UUID]float64{}
		for _, h := range exact {
			exactScore[h.id] = h.score
		}
		for i, h := range got {
			if s, ok := exactScore[h.ID]; ok && math.Abs(s-h.Score) > 1e-6 {
				t.Errorf("%q: result %d scores %v, exactly %v", q.Text, i, h.Score, s)
			}
			if i > 0 && h.Score > got[i-1].Score {
				t.Errorf("%q: result %d scores %v, above the one before it (%v)", q.Text, i, h.Score, got[i-1].Score)
			}
		}
	}
	rPlain, rWords := float64(plain)/float64(want), float64(words)/float64(want)
	t.Logf("recall@5 of the %d neighbours sharing a word, by a starved HNSW walk: alone %.3f, with word candidates %.3f", want, rPlain, rWords)
	if rWords < 1 || rWords < rPlain+0.3 {
		t.Errorf("recall@5 of a starved HNSW walk with word candidates is %.3f (alone %.3f)", rWords, rPlain)
	}
}

// randomMemories makes public memories of random words with their vectors.
func randomMemories(rng *rand.Rand, owner uuid.UUID, n int, emb hashEmbedder, at time.Time) ([]*memory.Memory, []memory.Vector) {
	ms := make([]*memory.Memory, n)
	vecs := make([]memory.Vector, n)
	for i := range ms {
		text := randomText(rng)
		ms[i] = &memory.Memory{ID: uuid.New(), OwnerID: owner, Text: text, Permission: memory.Public,
			Tags: []string{fmt.Sprint("t", i%10)}, SharedWith: []uuid.UUID{}, Metadata: map[string]any{"i": i},
			CreatedAt: at, UpdatedAt: at, Version: 1}
		vecs[i] = memory.Vector{Embedder: emb.Name(), Values: emb.vector(text)}
	}
	return ms, vecs
}

// randomText draws 6–15 words from a Zipf-distributed vocabulary, so texts
// share common words the way real notes do.
func randomText(rng *rand.Rand) string {
	n := 6 + rng.IntN(10)
	words := make([]string, n)
	for i := range words {
		// Inverse-CDF of a rough Zipf over 5000 words.
		r := int(5000 * rng.Float64() * rng.Float64() * rng.Float64())
		words[i] = fmt.Sprintf("w%d", r)
	}
	return strings.Join(words, " ")
}

// hnswRecall runs queries through the index and through an exact scan and
// returns the mean fraction of the exact top 10 that the index found.
func hnswRecall(ctx context.Context, s *Memories, viewer uuid.UUID, emb hashEmbedder, rng *rand.Rand, queries int, now time.Time) (float64, error) {
	var sum float64
	for range queries {
		q := memory.SearchQuery{Viewer: viewer, Limit: 10, Now: now,
			Vector: memory.Vector{Embedder: emb.Name(), Values: emb.vector(randomText(rng))}}
		approx, err := s.searchHNSW(ctx, q, false)
		if err != nil {
			return 0, err
		}
		exact, err := s.searchHNSW(ctx, q, true)
		if err != nil {
			return 0, err
		}
		found := map[uuid.UUID]bool{}
		for _, h := range approx {
			found[h.id] = true
		}
		hits := 0
		for _, h := range exact {
			if found[h.id] {
				hits++
			}
		}
		if len(exact) > 0 {
			sum += float64(hits) / float64(len(exact))
		} else {
			sum++
		}
	}
	return sum / float64(queries), nil
}

// testConcurrentWriters: concurrent read-modify-write cycles on one memory
// lose nothing, through the store's version check and through the service.
func testConcurrentWriters(t *testing.T, f *fixture) {
	alice := f.user("alice")
	m := f.create(alice, memory.Draft{Text: "counter", Metadata: map[string]any{"count": 0}})
	const writers, each = 10, 5
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Go(func() {
			for range each {
				for {
					cur, err := f.mem.Get(f.ctx, m.ID)
					if err != nil {
						errs <- err
						return
					}
					cur.Metadata["count"] = cur.Metadata["count"].(float64) + 1
					err = f.mem.Update(f.ctx, cur, nil)
					if errors.Is(err, memory.ErrConflict) {
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					break
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, err := f.mem.Get(f.ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Metadata["count"] != float64(writers*each) || got.Version != 1+writers*each {
		t.Fatalf("count %v, version %d after %d increments", got.Metadata["count"], got.Version, writers*each)
	}

	// Through the service: every patch is applied to a fresh read. The
	// service retries a conflict a bounded number of times; with ten
	// simultaneous writers a few can still run out and answer ErrConflict
	// (HTTP 409), which a client retries, as here. Nothing is lost either
	// way: each accepted patch adds exactly one version.
	var surfaced atomic.Int64
	errs = make(chan error, writers)
	for i := range writers {
		wg.Go(func() {
			for {
				_, err := f.svc.Update(f.ctx, alice, m.ID, memory.Patch{Tags: &[]string{fmt.Sprint("writer-", i)}})
				if errors.Is(err, memory.ErrConflict) {
					surfaced.Add(1)
					continue
				}
				errs <- err
				return
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := surfaced.Load(); n > 0 {
		t.Logf("%d service updates ran out of conflict retries and were retried by the caller", n)
	}
	got, _ = f.mem.Get(f.ctx, m.ID)
	if got.Version != 1+writers*each+writers || len(got.Tags) != 1 {
		t.Fatalf("after %d service updates: version %d, tags %v", writers, got.Version, got.Tags)
	}
}

func testBatchInsertAllOrNothing(t *testing.T, f *fixture) {
	alice := f.user("alice")
	good := func(text string) *memory.Memory {
		now := f.svc.Now()
		return &memory.Memory{ID: uuid.New(), OwnerID: alice, Text: text, Permission: memory.Shared,
			SharedWith: []uuid.UUID{alice}, Tags: []string{"x", "y"}, Metadata: map[string]any{}, CreatedAt: now, UpdatedAt: now, Version: 1}
	}
	vec := memory.Vector{Embedder: f.emb.Name(), Values: f.emb.vector("x")}
	cases := map[string]func() ([]*memory.Memory, []memory.Vector){
		"duplicate id": func() ([]*memory.Memory, []memory.Vector) {
			a, b := good("a"), good("b")
			b.ID = a.ID
			return []*memory.Memory{a, good("c"), b}, []memory.Vector{vec, vec, vec}
		},
		"unknown owner": func() ([]*memory.Memory, []memory.Vector) {
			bad := good("b")
			bad.OwnerID = uuid.New()
			return []*memory.Memory{good("a"), bad}, nil
		},
		"share with unknown user": func() ([]*memory.Memory, []memory.Vector) {
			bad := good("b")
			bad.SharedWith = []uuid.UUID{uuid.New()}
			return []*memory.Memory{good("a"), bad}, []memory.Vector{vec, vec}
		},
		"duplicate tag": func() ([]*memory.Memory, []memory.Vector) {
			bad := good("b")
			bad.Tags = []string{"x", "x"}
			return []*memory.Memory{good("a"), bad}, []memory.Vector{vec, vec}
		},
	}
	for name, mk := range cases {
		ms, vecs := mk()
		if err := f.mem.Insert(f.ctx, ms, vecs); err == nil {
			t.Errorf("%s: insert succeeded", name)
		}
		for _, table := range []string{"memories", "memory_tags", "memory_shares", "memory_embeddings"} {
			if n := f.count("SELECT count(*) FROM " + table); n != 0 {
				t.Errorf("%s: %d rows in %s after a failed batch", name, n, table)
			}
		}
	}
	// A large batch (over the parameter limit of one statement) goes in
	// whole.
	var ms []*memory.Memory
	var vecs []memory.Vector
	for i := range memory.MaxBatch {
		m := good(fmt.Sprint("batch ", i))
		m.Tags = make([]string, memory.MaxTags)
		for j := range m.Tags {
			m.Tags[j] = fmt.Sprint("tag", j)
		}
		ms, vecs = append(ms, m), append(vecs, vec)
	}
	if err := f.mem.Insert(f.ctx, ms, vecs); err != nil {
		t.Fatal(err)
	}
	if n := f.count("SELECT count(*) FROM memory_tags"); n != memory.MaxBatch*memory.MaxTags {
		t.Fatalf("%d tag rows", n)
	}
}

func testDeleteAllOrNothing(t *testing.T, f *fixture) {
	alice, bob := f.user("alice"), f.user("bob")
	a1 := f.create(alice, memory.Draft{Text: "a1"})
	a2 := f.create(alice, memory.Draft{Text: "a2"})
	b1 := f.create(bob, memory.Draft{Text: "b1", Permission: "public"})
	b2 := f.create(bob, memory.Draft{Text: "b2"})
	for _, tc := range []struct {
		name string
		del  []uuid.UUID
		want error
	}{
		{"someone else's public", []uuid.UUID{a1.ID, a2.ID, b1.ID}, memory.ErrForbidden},
		{"someone else's private", []uuid.UUID{a1.ID, b2.ID}, memory.ErrNotFound},
		{"missing", []uuid.UUID{a1.ID, uuid.New()}, memory.ErrNotFound},
	} {
		n, err := f.svc.Delete(f.ctx, alice, tc.del)
		if !errors.Is(err, tc.want) || n != 0 {
			t.Errorf("%s: %d, %v; want %v", tc.name, n, err, tc.want)
		}
		if c := f.count("SELECT count(*) FROM memories"); c != 4 {
			t.Fatalf("%s: %d memories left of 4", tc.name, c)
		}
	}
	n, err := f.svc.Delete(f.ctx, alice, []uuid.UUID{a1.ID, a2.ID})
	if err != nil || n != 2 {
		t.Fatalf("delete own: %d, %v", n, err)
	}
}

func testUsers(t *testing.T, f *fixture) {
	u, err := f.usvc.Register(f.ctx, user.Registration{Email: "Jean-Luc@Example.com", Password: "make it so, number one"})
	if err != nil {
		t.Fatal(err)
	}
	for _, email := range []string{"jean-luc@example.com", "JEAN-LUC@EXAMPLE.COM"} {
		_, err := f.usvc.Register(f.ctx, user.Registration{Email: email, Password: "another password"})
		if !errors.Is(err, user.ErrEmailTaken) {
			t.Errorf("register %s: %v", email, err)
		}
	}
	got, err := f.users.ByEmail(f.ctx, "JEAN-luc@example.COM")
	if err != nil || got.ID != u.ID || got.Email != "Jean-Luc@Example.com" || got.Name != "Jean-Luc" {
		t.Fatalf("by email: %+v, %v", got, err)
	}
	if _, err := f.usvc.Authenticate(f.ctx, "jean-luc@example.com", "make it so, number one"); err != nil {
		t.Fatalf("authenticate: %v", err)
	}
	if _, err := f.users.ByID(f.ctx, uuid.New()); !errors.Is(err, user.ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	if _, err := f.users.ByEmail(f.ctx, "nobody@example.com"); !errors.Is(err, user.ErrNotFound) {
		t.Fatalf("unknown email: %v", err)
	}

	other := f.user("will")
	if _, err := f.usvc.UpdateProfile(f.ctx, other, "jean-luc@EXAMPLE.com", "Will"); !errors.Is(err, user.ErrEmailTaken) {
		t.Fatalf("taking another's email: %v", err)
	}
	// Changing only the case of one's own email is allowed.
	if _, err := f.usvc.UpdateProfile(f.ctx, u.ID, "jean-luc@example.com", "Picard"); err != nil {
		t.Fatalf("recase own email: %v", err)
	}
	if _, err := f.usvc.SetDisabled(f.ctx, u.ID, true); err != nil {
		t.Fatal(err)
	}
	seen := time.Date(2025, 5, 5, 5, 5, 5, 555555000, time.UTC)
	if err := f.users.Touch(f.ctx, u.ID, seen); err != nil {
		t.Fatal(err)
	}
	got, _ = f.users.ByID(f.ctx, u.ID)
	if !got.Disabled || got.Name != "Picard" || got.LastSeenAt == nil || !got.LastSeenAt.Equal(seen) || !got.CreatedAt.Equal(u.CreatedAt) {
		t.Fatalf("after updates: %+v", got)
	}
	if err := f.users.Touch(f.ctx, uuid.New(), seen); !errors.Is(err, user.ErrNotFound) {
		t.Fatalf("touch unknown: %v", err)
	}
	if err := f.users.Update(f.ctx, &user.User{ID: uuid.New(), Email: "x@example.com"}); !errors.Is(err, user.ErrNotFound) {
		t.Fatalf("update unknown: %v", err)
	}

	for i := range 5 {
		f.user(fmt.Sprint("crew", i))
	}
	var all []uuid.UUID
	after := uuid.Nil
	for {
		page, err := f.users.List(f.ctx, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, u := range page {
			all = append(all, u.ID)
		}
		after = page[len(page)-1].ID
	}
	if len(all) != 7 || !slices.Equal(all, sortedIDs(all)) {
		t.Fatalf("listed %d users (want 7), sorted %v", len(all), slices.Equal(all, sortedIDs(all)))
	}
	if err := f.users.Delete(f.ctx, uuid.New()); !errors.Is(err, user.ErrNotFound) {
		t.Fatalf("delete unknown: %v", err)
	}
}

func testCascade(t *testing.T, f *fixture) {
	alice, bob := f.user("alice"), f.user("bob")
	a := f.create(alice, memory.Draft{Text: "alice's", Tags: []string{"t"}, SharedWith: []string{"bob@example.com"}})
	b := f.create(bob, memory.Draft{Text: "bob's", Tags: []string{"t"}, SharedWith: []string{"alice@example.com"}})
	act := f.db.Activity()
	for _, u := range []uuid.UUID{alice, bob} {
		if err := act.Record(f.ctx, activity.Entry{UserID: u, ClientID: "web", Action: "login", Outcome: "ok", At: f.clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.users.Delete(f.ctx, alice); err != nil {
		t.Fatal(err)
	}
	if _, err := f.mem.Get(f.ctx, a.ID); !errors.Is(err, memory.ErrNotFound) {
		t.Fatalf("alice's memory after deleting her: %v", err)
	}
	got, err := f.mem.Get(f.ctx, b.ID)
	if err != nil || len(got.SharedWith) != 0 {
		t.Fatalf("bob's memory keeps a share with deleted alice: %+v, %v", got, err)
	}
	for table, want := range map[string]int{"memories": 1, "memory_tags": 1, "memory_shares": 0, "memory_embeddings": 1, "activity": 1} {
		if n := f.count("SELECT count(*) FROM " + table); n != want {
			t.Errorf("%s: %d rows, want %d", table, n, want)
		}
	}
}

func testActivity(t *testing.T, f *fixture) {
	alice, bob, carolID := f.user("alice"), f.user("bob"), f.user("carol")
	act := f.db.Activity()
	start := f.clock.Now()
	es := []activity.Entry{
		{UserID: alice, ClientID: "c1", Action: "tool:submit_memory", Outcome: "ok", Duration: 12 * time.Millisecond},
		{UserID: alice, ClientID: "pat", Action: "tool:query_memory", Outcome: "ok"},
		{UserID: bob, ClientID: "web", Action: "login", Outcome: "ok"},
		{UserID: alice, ClientID: "c1", Action: "tool:submit_memory", Outcome: "invalid_argument"},
		{ClientID: "web", Action: "login", Outcome: "bad_credentials"},
	}
	for i := range es {
		es[i].At = start.Add(time.Duration(i) * time.Second)
	}
	// One at a time, then the rest in one call, as the recorder batches.
	for _, e := range es[:2] {
		if err := act.Record(f.ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := act.Record(f.ctx, es[2:]...); err != nil {
		t.Fatal(err)
	}
	// More than one INSERT's parameter budget, still all recorded.
	many := make([]activity.Entry, 300)
	for i := range many {
		many[i] = activity.Entry{UserID: carolID, ClientID: "c2", Action: "tool:get_memory", Outcome: "ok", At: start}
	}
	if err := act.Record(f.ctx, many...); err != nil {
		t.Fatal(err)
	}
	if got, err := act.ForUser(f.ctx, carolID, 1000); err != nil || len(got) != len(many) {
		t.Fatalf("a batch of %d: %d recorded, %v", len(many), len(got), err)
	}
	got, err := act.ForUser(f.ctx, alice, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Outcome != "invalid_argument" || got[1].Action != "tool:query_memory" || got[0].UserID != alice {
		t.Fatalf("newest first: %+v", got)
	}
	all, _ := act.ForUser(f.ctx, alice, 10)
	if last := all[len(all)-1]; last.Duration != 12*time.Millisecond || last.ClientID != "c1" || !last.At.Equal(start) {
		t.Fatalf("oldest entry: %+v", last)
	}
	counts, err := act.Since(f.ctx, start.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if counts["login"] != 2 || counts["tool:submit_memory"] != 1 || counts["tool:query_memory"] != 1 {
		t.Fatalf("since: %v", counts)
	}
}

func testPersonasAndStats(t *testing.T, f *fixture) {
	w := buildVisibility(f)
	carol := w.users[2]
	f.create(carol, memory.Draft{Text: "carol's private", Permission: "private"})
	ps, err := f.svc.Personas(f.ctx, uuid.Nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	var all []memory.Persona
	for len(ps) > 0 {
		all = append(all, ps...)
		ps, err = f.svc.Personas(f.ctx, ps[len(ps)-1].UserID, 1)
		if err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int{"alice": 1, "bob": 1}
	if len(all) != 2 {
		t.Fatalf("personas: %+v", all)
	}
	for _, p := range all {
		if want[p.Name] != p.PublicMemories {
			t.Errorf("persona %s has %d public memories, want %d", p.Name, p.PublicMemories, want[p.Name])
		}
	}
	st, err := f.svc.Stats(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantStats := memory.Stats{Memories: 13, Expired: 4, Owners: 3,
		ByPermission: map[memory.Permission]int{memory.Private: 4, memory.Public: 4, memory.Shared: 5}}
	if fmt.Sprint(st) != fmt.Sprint(wantStats) {
		t.Fatalf("stats %+v, want %+v", st, wantStats)
	}
}

func testRotateKeys(t *testing.T, f *fixture) {
	alice := f.user("alice")
	var texts []string
	for i := range 37 {
		texts = append(texts, fmt.Sprintf("secret %d", i))
		f.create(alice, memory.Draft{Text: texts[i]})
	}
	k1 := f.sealer.keys[0]
	k2 := newKey(t)
	rotated := f.open(newSealer("k2", k2, "k1", k1))
	mem := rotated.Memories()

	// Interrupt after two batches of 5.
	ctx, cancel := context.WithCancel(f.ctx)
	var calls [][2]int
	err := mem.RotateKeys(ctx, 5, func(done, total int) {
		calls = append(calls, [2]int{done, total})
		if done >= 10 {
			cancel()
		}
	})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted rotation: %v", err)
	}
	if calls[0] != [2]int{0, 37} {
		t.Errorf("first progress call %v", calls[0])
	}
	n2 := f.count("SELECT count(*) FROM memories WHERE key_id = 'k2'")
	if n2 < 10 || n2 >= 37 {
		t.Fatalf("%d rows re-sealed before the interruption", n2)
	}
	// Nothing is lost: every memory opens with the ring of both keys.
	mid, err := mem.List(f.ctx, memory.ListQuery{Viewer: alice, Owner: alice, Limit: 100, Now: f.svc.Now()})
	if err != nil || len(mid.Memories) != 37 {
		t.Fatalf("%d memories readable mid-rotation: %v", len(mid.Memories), err)
	}
	// Resume.
	var last [2]int
	if err := mem.RotateKeys(f.ctx, 5, func(done, total int) { last = [2]int{done, total} }); err != nil {
		t.Fatal(err)
	}
	if last != [2]int{37 - n2, 37 - n2} {
		t.Errorf("resumed rotation ended at %v, want %d of %d", last, 37-n2, 37-n2)
	}
	if n := f.count("SELECT count(*) FROM memories WHERE key_id <> 'k2'"); n != 0 {
		t.Fatalf("%d rows still sealed by the old key", n)
	}
	// The old key can go now.
	onlyNew := f.open(newSealer("k2", k2)).Memories()
	var gotTexts []string
	page, err := onlyNew.List(f.ctx, memory.ListQuery{Viewer: alice, Owner: alice, Limit: 100, Now: f.svc.Now()})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range page.Memories {
		gotTexts = append(gotTexts, m.Text)
	}
	slices.Sort(gotTexts)
	slices.Sort(texts)
	if !slices.Equal(gotTexts, texts) {
		t.Fatal("texts differ after rotation")
	}
	// And the old key alone opens nothing any more.
	if _, err := f.open(newSealer("k1", k1)).Memories().Get(f.ctx, page.Memories[0].ID); err == nil {
		t.Fatal("the old key still opens a rotated memory")
	}
	// A second run has nothing to do.
	if err := mem.RotateKeys(f.ctx, 5, nil); err != nil {
		t.Fatal(err)
	}
}

func testReembed(t *testing.T, f *fixture) {
	alice := f.user("alice")
	now := f.svc.Now()
	var ms []*memory.Memory
	var vecs []memory.Vector
	old := hashEmbedder{dim: 32}
	for i := range 12 {
		text := fmt.Sprintf("memory number %d about topic%d", i, i)
		ms = append(ms, &memory.Memory{ID: uuid.New(), OwnerID: alice, Text: text, Permission: memory.Private,
			Tags: []string{}, SharedWith: []uuid.UUID{}, Metadata: map[string]any{}, CreatedAt: now, UpdatedAt: now, Version: 1})
		switch i % 3 {
		case 0:
			vecs = append(vecs, memory.Vector{}) // never embedded
		case 1:
			vecs = append(vecs, memory.Vector{Embedder: "old-model", Values: old.vector(text)})
		default:
			vecs = append(vecs, memory.Vector{Embedder: f.emb.Name(), Values: f.emb.vector(text)})
		}
	}
	if err := f.mem.Insert(f.ctx, ms, vecs); err != nil {
		t.Fatal(err)
	}
	pending, err := f.mem.PendingEmbeddings(f.ctx, f.emb.Name())
	if err != nil || pending != 8 {
		t.Fatalf("pending %d, %v", pending, err)
	}
	// Interrupted after the first batch, then resumed.
	ctx, cancel := context.WithCancel(f.ctx)
	err = f.mem.Reembed(ctx, f.emb, 3, func(done, total int) {
		if done > 0 {
			cancel()
		}
	})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted reembed: %v", err)
	}
	if p, _ := f.mem.PendingEmbeddings(f.ctx, f.emb.Name()); p != 5 {
		t.Fatalf("%d pending after one batch of 3", p)
	}
	var last [2]int
	if err := f.mem.Reembed(f.ctx, f.emb, 3, func(done, total int) { last = [2]int{done, total} }); err != nil {
		t.Fatal(err)
	}
	if last != [2]int{5, 5} {
		t.Errorf("progress ended at %v", last)
	}
	if p, _ := f.mem.PendingEmbeddings(f.ctx, f.emb.Name()); p != 0 {
		t.Fatalf("%d pending after reembed", p)
	}
	for _, m := range ms {
		res, err := f.svc.Search(f.ctx, memory.SearchRequest{Viewer: alice, Query: m.Text, Limit: 1, Mode: "vector"})
		if err != nil || len(res) != 1 || res[0].Memory.ID != m.ID || res[0].Score < 0.999 {
			t.Fatalf("search for %q after reembed: %q %v, %v", m.Text, res[0].Memory.Text, res[0].Score, err)
		}
	}
	if p, _ := f.mem.PendingEmbeddings(f.ctx, "old-model"); p != 12 {
		t.Fatalf("pending for the old model: %d", p)
	}
}

// testNoPlaintext reads the raw database (the SQLite files; the Postgres
// rows as text) and finds no memory text, while the same read does find an
// unencrypted tag, which shows the check can see plaintext when it is there.
func testNoPlaintext(t *testing.T, f *fixture) {
	alice := f.user("alice")
	const secret, tag = "PLAINTEXT-CANARY-8d1f", "TAGCANARY-3c7e"
	for i := range 20 {
		f.create(alice, memory.Draft{Text: fmt.Sprintf("%s number %d", secret, i), Tags: []string{tag}})
	}
	if _, err := f.svc.Update(f.ctx, alice, f.listAll(memory.ListQuery{Viewer: alice, Owner: alice, Now: f.svc.Now()})[0].ID,
		memory.Patch{Text: ptr(secret + " updated")}); err != nil {
		t.Fatal(err)
	}
	if f.db.Dialect() == DialectSQLite {
		dir := filepath.Dir(f.opts.SQLitePath)
		read := func() []byte {
			var all []byte
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				b, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, b...)
			}
			return all
		}
		// While open (the WAL holds the recent pages) and after a close
		// (checkpointed into the main file).
		for _, stage := range []string{"open", "closed"} {
			if stage == "closed" {
				f.db.Close()
			}
			raw := read()
			if bytes.Contains(raw, []byte(secret)) || bytes.Contains(raw, []byte("PLAINTEXT-CANARY")) {
				t.Errorf("%s: memory text found in the database files", stage)
			}
			if !bytes.Contains(raw, []byte(tag)) {
				t.Errorf("%s: the unencrypted tag is not in the files either; the check is blind", stage)
			}
		}
		return
	}
	var rows, tags string
	if err := f.db.session(f.ctx).Raw("SELECT string_agg(m::text, E'\\n') FROM memories m").Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	if err := f.db.session(f.ctx).Raw("SELECT string_agg(t::text, E'\\n') FROM memory_tags t").Scan(&tags).Error; err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rows, "PLAINTEXT-CANARY") {
		t.Error("memory text found in the memories table")
	}
	if !strings.Contains(rows, "gAAAAA") || !strings.Contains(tags, tag) {
		t.Error("the raw rows hold neither Fernet tokens nor the tag; the check is blind")
	}
}

// testVectorIndexParameters checks that the HNSW index is built with the
// graph parameters search recall depends on, and that an index an earlier
// version built with pgvector's defaults is kept, with a warning that
// names the statements rebuilding it.
func testVectorIndexParameters(t *testing.T, f *fixture) {
	name := "memory_embeddings_hnsw_" + strconv.Itoa(f.emb.dim)
	reloptions := func() string {
		var opts string
		if err := f.db.gorm.Raw("SELECT array_to_string(coalesce(reloptions, '{}'), ',') FROM pg_class WHERE relname = ?", name).Row().Scan(&opts); err != nil {
			t.Fatal(err)
		}
		return opts
	}
	if got, want := reloptions(), "m=32,ef_construction=128"; got != want {
		t.Fatalf("index options %q, want %q", got, want)
	}

	d := strconv.Itoa(f.emb.dim)
	for _, stmt := range []string{"DROP INDEX " + name,
		"CREATE INDEX " + name + " ON memory_embeddings USING hnsw ((embedding::vector(" + d + ")) vector_cosine_ops) WHERE dim = " + d} {
		if err := f.db.gorm.Exec(stmt).Error; err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	opts := f.opts
	opts.Sealer = f.sealer
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	db, err := Open(f.ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.EnsureVectorIndex(f.ctx, f.emb.dim); err != nil {
		t.Fatal(err)
	}
	if got := reloptions(); got != "" {
		t.Fatalf("the old index was replaced (options %q); it should be kept", got)
	}
	want := "ALTER INDEX " + name + " SET (m=32, ef_construction=128); REINDEX INDEX CONCURRENTLY " + name
	if !strings.Contains(logs.String(), "vector index built with other parameters") || !strings.Contains(logs.String(), want) {
		t.Fatalf("no warning naming %q in the log:\n%s", want, logs.String())
	}
}
