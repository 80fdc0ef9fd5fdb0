package store

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"picard.dev/mcpserver/internal/memory"
	"picard.dev/mcpserver/internal/user"
)

// TestLexicalInMemory checks the in-memory lexical index
// (lexical_memory.go) against the SQL path it replaces, in both dialects,
// on a random corpus and through every kind of write, including writes of
// another handle on the same database (another process or replica); and on
// Postgres, where writers commit in any order, what follows from that
// (changes.go).
func TestLexicalInMemory(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Run("EqualsSQL", func(t *testing.T) { testLexicalMemoryEqualsSQL(t, newFixture(t, b)) })
			t.Run("OtherProcess", func(t *testing.T) { testLexicalMemoryOtherProcess(t, newFixture(t, b)) })
			t.Run("Pending", func(t *testing.T) { testLexicalMemoryPending(t, newFixture(t, b)) })
			t.Run("Ties", func(t *testing.T) { testLexicalMemoryTies(t, newFixture(t, b)) })
			if b.name != DialectPostgres {
				return
			}
			t.Run("OutOfOrderCommits", func(t *testing.T) { testLexicalMemoryOutOfOrder(t, newFixture(t, b)) })
			t.Run("PrunedPastPosition", func(t *testing.T) { testLexicalMemoryPruned(t, newFixture(t, b)) })
			t.Run("Replicas", func(t *testing.T) { testLexicalMemoryReplicas(t, newFixture(t, b)) })
			t.Run("LongOpenTransaction", func(t *testing.T) { testLexicalMemoryLongTransaction(t, newFixture(t, b)) })
		})
	}
}

// zipfText returns a generator of texts of n words drawn Zipf-distributed
// from a vocabulary of 400, as testLexicalPruning draws them.
func zipfText(rng *rand.Rand) func(n int) string {
	vocab := make([]string, 400)
	for i := range vocab {
		vocab[i] = fmt.Sprintf("w%dz", i)
	}
	zipf := rand.NewZipf(rng, 1.1, 1, uint64(len(vocab)-1))
	return func(n int) string {
		w := make([]string, n)
		for i := range w {
			w[i] = vocab[zipf.Uint64()]
		}
		return strings.Join(w, " ")
	}
}

// lexicalBoth runs a lexical search of q through the in-memory index and
// through SQL, and fails unless both return the same hits: the same
// length, and at each place a memory whose SQL score is the one SQL has
// there, within 1e-9 (sums in another order can swap equal scores, as in
// testLexicalPruning). It returns the in-memory hits.
func lexicalBoth(t *testing.T, mem *Memories, q memory.SearchQuery) []memory.Hit {
	t.Helper()
	ix := mem.db.index
	defer func() { ix.prune = 0 }()
	search := func(inSQL bool, limit int) []memory.Hit {
		t.Helper()
		ix.prune = 0
		if inSQL {
			ix.prune = math.MaxInt
		}
		qq := q
		qq.Limit = limit
		hits, err := mem.lexicalHits(t.Context(), qq, limit)
		if err != nil {
			t.Fatal(err)
		}
		return hits
	}
	got := search(false, q.Limit)
	if mem.db.lexIx == nil || !mem.db.lexIx.loaded {
		t.Fatal("the in-memory index was not used")
	}
	want := search(true, q.Limit)
	if len(got) != len(want) {
		t.Fatalf("%+v: %d hits in memory, %d in SQL", q, len(got), len(want))
	}
	full := map[uuid.UUID]float64{}
	for _, h := range search(true, q.Limit+20) {
		full[h.ID] = h.Score
	}
	for j := range want {
		fs, ok := full[got[j].ID]
		if !ok || math.Abs(fs-want[j].Score) > 1e-9 || math.Abs(got[j].Score-want[j].Score) > 1e-9 {
			t.Fatalf("%+v: hit %d is %v in memory, %v in SQL", q, j, got[j], want[j])
		}
	}
	return got
}

func testLexicalMemoryEqualsSQL(t *testing.T, f *fixture) {
	rng := rand.New(rand.NewPCG(11, 12))
	text := zipfText(rng)
	names := []string{"alice", "bob", "carol", "dave"}
	users := make([]uuid.UUID, len(names))
	for i, n := range names {
		users[i] = f.user(n)
	}
	tags := []string{"t0", "t1", "t2"}
	// A tag that would break a separated list: it comes as JSON.
	const oddTag = "a,b \"c\"\x1f\u00e9"
	// Permissions and shares at random: shared with one or two others.
	perm := func(owner int) (string, []string) {
		switch rng.IntN(10) {
		case 0, 1, 2, 3:
			return "private", nil
		case 4, 5, 6:
			return "public", nil
		}
		var with []string
		for i, n := range names {
			if i != owner && (len(with) == 0 || rng.IntN(3) == 0) {
				with = append(with, n+"@example.com")
			}
		}
		return "shared", with
	}
	type owned struct {
		id    uuid.UUID
		owner int
	}
	var all []owned
	for o, owner := range users {
		batch := make([]memory.Draft, 150)
		for i := range batch {
			p, with := perm(o)
			batch[i] = memory.Draft{Text: text(3 + rng.IntN(15)), Permission: p, SharedWith: with}
			switch rng.IntN(8) {
			case 0, 1:
				batch[i].Tags = []string{tags[rng.IntN(len(tags))]}
			case 2:
				batch[i].Tags = []string{"t1", "t0", oddTag}
			}
			switch rng.IntN(10) {
			case 0: // expires within the next two hours
				at := f.clock.Now().Add(time.Duration(1+rng.IntN(120)) * time.Minute)
				batch[i].ExpiresAt = &at
			case 1:
				at := f.clock.Now().Add(-time.Hour)
				batch[i].ExpiresAt = &at
			}
		}
		ms, err := f.svc.CreateBatch(f.ctx, owner, batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			all = append(all, owned{m.ID, o})
		}
		// Some without a vector, as if their embedding were pending.
		for range 15 {
			m := &memory.Memory{ID: uuid.New(), OwnerID: owner, Text: text(3 + rng.IntN(15)), Permission: memory.Public,
				SharedWith: []uuid.UUID{}, Tags: []string{}, Metadata: map[string]any{},
				CreatedAt: f.svc.Now(), UpdatedAt: f.svc.Now(), Version: 1}
			if err := f.mem.Insert(f.ctx, []*memory.Memory{m}, []memory.Vector{{}}); err != nil {
				t.Fatal(err)
			}
			all = append(all, owned{m.ID, o})
		}
	}
	pick := func(n int) []owned {
		rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		return slices.Clone(all[:n])
	}
	// compare searches as every user, with and without filters, at three
	// limits, and checks that enough of them find something.
	compare := func(step string, mem *Memories) {
		t.Helper()
		hits := 0
		for i := range 12 {
			query := text(1 + i%5)
			for v, viewer := range users {
				for _, limit := range []int{1, 5, 50} {
					base := memory.SearchQuery{Viewer: viewer, Text: query, Now: f.clock.Now(), Limit: limit}
					qs := []memory.SearchQuery{base}
					switch (i + v) % 4 {
					case 0:
						base.Owner = users[rng.IntN(len(users))]
					case 1:
						base.Permission = []memory.Permission{memory.Private, memory.Public, memory.Shared}[rng.IntN(3)]
					case 2:
						base.Owner, base.Permission = viewer, memory.Private
					case 3:
						// One tag, two, or one no memory has.
						base.Tags = [][]string{{tags[rng.IntN(len(tags))]}, {"t0", "t1"}, {oddTag, "t0"}, {"no such tag"}}[rng.IntN(4)]
					}
					qs = append(qs, base)
					for _, q := range qs {
						hits += len(lexicalBoth(t, mem, q))
					}
				}
			}
		}
		t.Logf("%s: %d hits compared", step, hits)
		if hits < 500 {
			t.Fatalf("%s: only %d hits compared", step, hits)
		}
	}
	compare("initial", f.mem)

	// New texts: old slots become tombstones, enough to compact.
	lx := f.db.lexIx
	compactions := lx.compactions
	for _, m := range pick(300) {
		s := text(3 + rng.IntN(15))
		if _, err := f.svc.Update(f.ctx, users[m.owner], m.id, memory.Patch{Text: &s}); err != nil {
			t.Fatal(err)
		}
	}
	compare("text updates", f.mem)
	if lx.compactions == compactions {
		t.Errorf("300 text updates of %d memories did not compact the index (%d tombstones)", len(all), lx.dead)
	}
	// Tag-only updates rewrite the same terms: no tombstones.
	dead := lx.dead
	for _, m := range pick(20) {
		tg := []string{"t2"}
		if _, err := f.svc.Update(f.ctx, users[m.owner], m.id, memory.Patch{Tags: &tg}); err != nil {
			t.Fatal(err)
		}
	}
	compare("tag updates", f.mem)
	if lx.dead != dead {
		t.Errorf("updates that keep the text made %d tombstones", lx.dead-dead)
	}

	doomed := pick(60)
	for _, m := range doomed {
		if _, err := f.svc.Delete(f.ctx, users[m.owner], []uuid.UUID{m.id}); err != nil {
			t.Fatal(err)
		}
	}
	all = slices.DeleteFunc(all, func(m owned) bool {
		return slices.ContainsFunc(doomed, func(d owned) bool { return d.id == m.id })
	})
	compare("deletes", f.mem)

	for _, m := range pick(100) {
		p, with := perm(m.owner)
		if _, err := f.svc.SetPermission(f.ctx, users[m.owner], m.id, p, with); err != nil {
			t.Fatal(err)
		}
	}
	compare("permissions and shares", f.mem)

	for _, m := range pick(40) {
		at := f.clock.Now().Add(time.Duration(1+rng.IntN(120)) * time.Minute)
		atp := &at
		if _, err := f.svc.Update(f.ctx, users[m.owner], m.id, memory.Patch{ExpiresAt: &atp}); err != nil {
			t.Fatal(err)
		}
	}
	compare("new expiry", f.mem)
	f.clock.Advance(time.Hour)
	compare("an hour later", f.mem)
	f.clock.Advance(2 * time.Hour)
	compare("expired", f.mem)

	// Part of the corpus reindexed under another key, through another
	// handle: those memories leave this key's postings but still count in
	// N and the average length, as in SQL.
	db2 := f.openIndexKey(otherIndexKey)
	if n, err := db2.Memories().reindexBatch(f.ctx, 200); err != nil || n != 200 {
		t.Fatalf("reindexed %d: %v", n, err)
	}
	compare("partly reindexed under another key", f.mem)
	if err := db2.Memories().Reindex(f.ctx, 0, nil); err != nil {
		t.Fatal(err)
	}
	compare("reindexed, searched under the new key", db2.Memories())
}

func testLexicalMemoryOtherProcess(t *testing.T, f *fixture) {
	alice, bob := f.user("alice"), f.user("bob")
	other := f.open(f.sealer)
	osvc := memory.NewService(other.Memories(), f.emb, user.NewService(other.Users(), f.clock.Now), f.clock.Now)
	findAt := func(step string, now time.Time, viewer uuid.UUID, query string, want ...*memory.Memory) {
		t.Helper()
		hits := lexicalBoth(t, f.mem, memory.SearchQuery{Viewer: viewer, Text: query, Now: now, Limit: 100})
		got := make([]uuid.UUID, len(hits))
		for i, h := range hits {
			got[i] = h.ID
		}
		wantIDs := make([]uuid.UUID, len(want))
		for i, m := range want {
			wantIDs[i] = m.ID
		}
		if !slices.Equal(sortedIDs(got), sortedIDs(wantIDs)) {
			t.Errorf("%s: got %v, want %v", step, got, wantIDs)
		}
	}
	find := func(step string, viewer uuid.UUID, query string, want ...*memory.Memory) {
		t.Helper()
		findAt(step, f.clock.Now(), viewer, query, want...)
	}
	lighthouse := f.create(alice, memory.Draft{Text: "the lighthouse keeper", Permission: "public"})
	find("loaded", bob, "lighthouse", lighthouse)

	zebra, err := osvc.Create(f.ctx, alice, memory.Draft{Text: "a zebra crossing near the lighthouse", Permission: "public"})
	if err != nil {
		t.Fatal(err)
	}
	find("inserted elsewhere", bob, "zebra", zebra)
	find("inserted elsewhere, both", bob, "lighthouse", lighthouse, zebra)

	s := "a pelican crossing"
	if _, err := osvc.Update(f.ctx, alice, zebra.ID, memory.Patch{Text: &s}); err != nil {
		t.Fatal(err)
	}
	find("updated elsewhere, old words", bob, "zebra")
	find("updated elsewhere, new words", bob, "pelican", zebra)

	if _, err := osvc.SetPermission(f.ctx, alice, zebra.ID, "shared", []string{"bob@example.com"}); err != nil {
		t.Fatal(err)
	}
	find("shared elsewhere", bob, "pelican", zebra)
	if _, err := osvc.SetPermission(f.ctx, alice, zebra.ID, "private", nil); err != nil {
		t.Fatal(err)
	}
	find("made private elsewhere", bob, "pelican")
	find("made private elsewhere, owner", alice, "pelican", zebra)

	// Expiry set elsewhere applies at the query's time, to the microsecond.
	at := f.clock.Now().Add(time.Hour).Truncate(time.Microsecond)
	atp := &at
	if _, err := osvc.Update(f.ctx, alice, zebra.ID, memory.Patch{ExpiresAt: &atp}); err != nil {
		t.Fatal(err)
	}
	findAt("before expiry", at.Add(-time.Microsecond), alice, "pelican", zebra)
	findAt("at expiry", at, alice, "pelican")

	if _, err := osvc.Delete(f.ctx, alice, []uuid.UUID{zebra.ID}); err != nil {
		t.Fatal(err)
	}
	find("deleted elsewhere", alice, "pelican")

	// Reindexed elsewhere under another key: this key no longer finds
	// them; reindexed elsewhere under this key again: found again.
	rekeyed := f.openIndexKey(otherIndexKey)
	if err := rekeyed.Memories().Reindex(f.ctx, 0, nil); err != nil {
		t.Fatal(err)
	}
	find("reindexed elsewhere under another key", bob, "lighthouse")
	if err := other.Memories().Reindex(f.ctx, 0, nil); err != nil {
		t.Fatal(err)
	}
	find("reindexed elsewhere under this key", bob, "lighthouse", lighthouse)

	// A log pruned past the index's position makes it load again.
	late, err := osvc.Create(f.ctx, bob, memory.Draft{Text: "a late lighthouse note"})
	if err != nil {
		t.Fatal(err)
	}
	loads := f.db.lexIx.loads
	pruneLog(t, f, other)
	find("log pruned", bob, "lighthouse", lighthouse, late)
	if f.db.lexIx.loads != loads+1 {
		t.Errorf("a log pruned past the position made %d loads, want 1", f.db.lexIx.loads-loads)
	}
}

// pruneLog prunes memory_changes through db, another handle than f.db,
// past the position of f.db's lexical index, whose next refresh must then
// load in full: on SQLite by deleting every row but the last (the cursor's
// row among them), on Postgres by db's index pruning up to its own
// position, read after every write so far.
func pruneLog(t *testing.T, f *fixture, db *DB) {
	t.Helper()
	if f.db.dialect == DialectSQLite {
		if err := db.session(f.ctx).Exec("DELETE FROM memory_changes WHERE seq < (SELECT max(seq) FROM memory_changes)").Error; err != nil {
			t.Fatal(err)
		}
		return
	}
	// The horizon is past f.db's position once no transaction that was
	// open when f.db's index last read the log still is; the tests open
	// none, but autovacuum can.
	for try := 0; ; try++ {
		if err := db.lexIx.refresh(f.ctx, db.Memories()); err != nil {
			t.Fatal(err)
		}
		if err := db.lexIx.log.prune(f.ctx, db, 0); err != nil {
			t.Fatal(err)
		}
		var past bool
		if err := db.session(f.ctx).Raw("SELECT horizon > pg_snapshot_xmin(?::pg_snapshot) FROM memory_changes_pruned",
			f.db.lexIx.log.(*xidCursor).snapshot).Scan(&past).Error; err != nil {
			t.Fatal(err)
		}
		if past {
			return
		}
		if try == 100 {
			t.Fatal("the pruning horizon stays behind the index's position")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testLexicalMemoryPending(t *testing.T, f *fixture) {
	alice := f.user("alice")
	embedded := f.create(alice, memory.Draft{Text: "my sister plays the cello"})
	f.create(alice, memory.Draft{Text: "we had pasta for dinner"})
	pending := func(mem *Memories, text string) *memory.Memory {
		m := &memory.Memory{ID: uuid.New(), OwnerID: alice, Text: text, Permission: memory.Private,
			SharedWith: []uuid.UUID{}, Tags: []string{}, Metadata: map[string]any{},
			CreatedAt: f.svc.Now(), UpdatedAt: f.svc.Now(), Version: 1}
		if err := mem.Insert(f.ctx, []*memory.Memory{m}, []memory.Vector{{}}); err != nil {
			t.Fatal(err)
		}
		return m
	}
	before := pending(f.mem, "the cello teacher lives in Lyon")
	check := func(step string, want ...*memory.Memory) {
		t.Helper()
		hits := lexicalBoth(t, f.mem, memory.SearchQuery{Viewer: alice, Text: "cello", Now: f.clock.Now(), Limit: 10})
		got := make([]uuid.UUID, len(hits))
		for i, h := range hits {
			got[i] = h.ID
		}
		if !slices.Equal(sortedIDs(got), sortedIDs(ids(want))) {
			t.Errorf("%s: got %v, want %v", step, got, ids(want))
		}
	}
	check("pending at load", embedded, before)
	after := pending(f.open(f.sealer).Memories(), "a cello recital")
	check("pending, inserted elsewhere", embedded, before, after)
	// Through the service, in hybrid mode: found by its words alone.
	res, err := f.svc.Search(f.ctx, memory.SearchRequest{Viewer: alice, Query: "recital"})
	if err != nil || len(res) != 1 || res[0].Memory.ID != after.ID {
		t.Fatalf("hybrid search of a pending memory: %v, %v", res, err)
	}
}

// testLexicalMemoryTies checks that equal scores are ordered by id, as SQL
// orders them, including which of them a limit keeps: memories of the same
// text score exactly alike. They are written after the index loaded, so
// their slots are in the order of writing, not of ids.
func testLexicalMemoryTies(t *testing.T, f *fixture) {
	alice := f.user("alice")
	f.create(alice, memory.Draft{Text: "a harbour, a harbour, and a quiet harbour at night"})
	lexicalBoth(t, f.mem, memory.SearchQuery{Viewer: alice, Text: "harbour", Now: f.clock.Now(), Limit: 1})
	drafts := make([]memory.Draft, 40)
	for i := range drafts {
		drafts[i] = memory.Draft{Text: "the quiet harbour"}
	}
	if _, err := f.svc.CreateBatch(f.ctx, alice, drafts); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{1, 5, 50} {
		q := memory.SearchQuery{Viewer: alice, Text: "harbour", Now: f.clock.Now(), Limit: limit}
		got := lexicalBoth(t, f.mem, q)
		f.mem.db.index.prune = math.MaxInt
		want, err := f.mem.lexicalHits(f.ctx, q, limit)
		f.mem.db.index.prune = 0
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: in memory %v, in SQL %v", limit, got, want)
		}
		for i := 2; i < len(got); i++ {
			if got[i].Score != got[1].Score || got[i].ID.String() < got[i-1].ID.String() {
				t.Errorf("limit %d: hit %d: not tied, or not after hit %d by id", limit, i, i-1)
			}
		}
	}
}

// insertOpen writes m (text and index rows) in tx, as Insert would,
// leaving tx open.
func insertOpen(t *testing.T, s *Memories, tx *gorm.DB, m *memory.Memory) {
	t.Helper()
	sl, err := s.seal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := insertRows(tx, "memories", []string{"id", "owner_id", "ciphertext", "key_id", "permission", "metadata", "created_at", "updated_at", "version"},
		[][]any{{m.ID, m.OwnerID, sl.token, sl.keyID, string(m.Permission), sl.metadata, s.db.at(m.CreatedAt), s.db.at(m.UpdatedAt), m.Version}}); err != nil {
		t.Fatal(err)
	}
	if err := s.indexRows([]*memory.Memory{m}).insert(tx); err != nil {
		t.Fatal(err)
	}
}

// finder returns a check that a lexical search of query as viewer finds
// exactly want, in memory as in SQL.
func finder(t *testing.T, f *fixture, mem *Memories) func(step string, viewer uuid.UUID, query string, want ...*memory.Memory) {
	return func(step string, viewer uuid.UUID, query string, want ...*memory.Memory) {
		t.Helper()
		hits := lexicalBoth(t, mem, memory.SearchQuery{Viewer: viewer, Text: query, Now: f.clock.Now(), Limit: 100})
		got := make([]uuid.UUID, len(hits))
		for i, h := range hits {
			got[i] = h.ID
		}
		if !slices.Equal(sortedIDs(got), sortedIDs(ids(want))) {
			t.Errorf("%s: got %v, want %v", step, got, ids(want))
		}
	}
}

// testLexicalMemoryOutOfOrder commits two writers in the opposite order of
// their log rows: the index must not skip the rows of the first, which
// were not visible when it read those of the second.
func testLexicalMemoryOutOfOrder(t *testing.T, f *fixture) {
	alice, bob := f.user("alice"), f.user("bob")
	other := f.open(f.sealer)
	osvc := memory.NewService(other.Memories(), f.emb, user.NewService(other.Users(), f.clock.Now), f.clock.Now)
	find := finder(t, f, f.mem)
	anchor := f.create(alice, memory.Draft{Text: "a walrus on the anchor chain", Permission: "public"})
	find("loaded", bob, "walrus", anchor)

	// T1 writes first and stays open.
	t1 := f.db.gorm.WithContext(f.ctx).Begin()
	if t1.Error != nil {
		t.Fatal(t1.Error)
	}
	defer t1.Rollback()
	first := &memory.Memory{ID: uuid.New(), OwnerID: alice, Text: "the first walrus", Permission: memory.Public,
		SharedWith: []uuid.UUID{}, Tags: []string{}, Metadata: map[string]any{}, CreatedAt: f.svc.Now(), UpdatedAt: f.svc.Now(), Version: 1}
	insertOpen(t, f.mem, t1, first)
	// T2 writes next, through another replica, and commits.
	second, err := osvc.Create(f.ctx, alice, memory.Draft{Text: "the second walrus", Permission: "public"})
	if err != nil {
		t.Fatal(err)
	}
	find("T2 committed, T1 open", bob, "walrus", anchor, second)
	if err := t1.Commit().Error; err != nil {
		t.Fatal(err)
	}
	// The premise: T1's log rows come before T2's.
	if n := f.count("SELECT count(*) FROM memory_changes a, memory_changes b WHERE a.memory_id = ? AND b.memory_id = ? AND a.seq > b.seq",
		first.ID, second.ID); n != 0 {
		t.Fatalf("%d log rows of T1 come after one of T2", n)
	}
	find("T1 committed", bob, "walrus", anchor, first, second)
	if f.db.lexIx.loads != 1 {
		t.Errorf("%d loads, want 1: the writes were replayed", f.db.lexIx.loads)
	}
}

// testLexicalMemoryPruned prunes the log behind and then past the index's
// position: behind, the index replays; past, it loads in full; either way
// it answers as SQL does.
func testLexicalMemoryPruned(t *testing.T, f *fixture) {
	rng := rand.New(rand.NewPCG(21, 22))
	text := zipfText(rng)
	alice, bob := f.user("alice"), f.user("bob")
	other := f.open(f.sealer)
	osvc := memory.NewService(other.Memories(), f.emb, user.NewService(other.Users(), f.clock.Now), f.clock.Now)
	drafts := make([]memory.Draft, 200)
	for i := range drafts {
		drafts[i] = memory.Draft{Text: text(3 + rng.IntN(15)), Permission: []string{"public", "private"}[i%2]}
	}
	ms, err := f.svc.CreateBatch(f.ctx, alice, drafts)
	if err != nil {
		t.Fatal(err)
	}
	compare := func(step string) {
		t.Helper()
		hits := 0
		for i := range 20 {
			for _, viewer := range []uuid.UUID{alice, bob} {
				hits += len(lexicalBoth(t, f.mem, memory.SearchQuery{Viewer: viewer, Text: text(1 + i%4), Now: f.clock.Now(), Limit: 20}))
			}
		}
		if hits < 100 {
			t.Fatalf("%s: only %d hits compared", step, hits)
		}
	}
	// writes changes every kind of indexed data through the other replica.
	writes := func() {
		t.Helper()
		for i := range 30 {
			m := ms[rng.IntN(len(ms))]
			var err error
			switch i % 3 {
			case 0:
				s := text(3 + rng.IntN(15))
				_, err = osvc.Update(f.ctx, alice, m.ID, memory.Patch{Text: &s})
			case 1:
				_, err = osvc.SetPermission(f.ctx, alice, m.ID, "shared", []string{"bob@example.com"})
			case 2:
				_, err = osvc.Create(f.ctx, bob, memory.Draft{Text: text(3 + rng.IntN(15)), Permission: "public"})
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	compare("loaded")
	lx := f.db.lexIx

	// Behind: the other replica prunes up to its position, read before
	// this index read the writes.
	writes()
	if err := other.lexIx.refresh(f.ctx, other.Memories()); err != nil {
		t.Fatal(err)
	}
	compare("written elsewhere")
	if err := other.lexIx.log.prune(f.ctx, other, 0); err != nil {
		t.Fatal(err)
	}
	writes()
	loads := lx.loads
	compare("pruned behind the position")
	if lx.loads != loads {
		t.Errorf("a log pruned behind the position made %d loads", lx.loads-loads)
	}

	// Past: up to the other replica's position, read after new writes.
	writes()
	pruneLog(t, f, other)
	if n := f.count("SELECT count(*) FROM memory_changes WHERE tx < (SELECT horizon FROM memory_changes_pruned)"); n != 0 {
		t.Errorf("%d log rows left below the pruning horizon", n)
	}
	compare("pruned past the position")
	if lx.loads != loads+1 {
		t.Errorf("a log pruned past the position made %d loads, want 1", lx.loads-loads)
	}
	writes()
	compare("written after the load")
	if lx.loads != loads+1 {
		t.Errorf("%d loads after the one the pruning caused", lx.loads-loads-1)
	}
}

// testLexicalMemoryReplicas writes through two replicas at once while both
// search, so commits land between and during their refreshes in any
// order; then each must answer as SQL does.
func testLexicalMemoryReplicas(t *testing.T, f *fixture) {
	rng := rand.New(rand.NewPCG(31, 32))
	text := zipfText(rng)
	texts := make([]string, 400)
	for i := range texts {
		texts[i] = text(3 + rng.IntN(15))
	}
	alice, bob := f.user("alice"), f.user("bob")
	other := f.open(f.sealer)
	replicas := []*memory.Service{f.svc, memory.NewService(other.Memories(), f.emb, user.NewService(other.Users(), f.clock.Now), f.clock.Now)}
	stores := []*Memories{f.mem, other.Memories()}
	var (
		writers, searchers sync.WaitGroup
		done               atomic.Bool
		errs               = make(chan error, 2*len(replicas))
	)
	for r, svc := range replicas {
		writers.Add(1)
		go func() {
			defer writers.Done()
			var mine []uuid.UUID
			for i := range 100 {
				s := texts[(r*100+i)%len(texts)]
				if len(mine) > 0 && i%4 == 3 {
					if _, err := svc.Update(f.ctx, alice, mine[i%len(mine)], memory.Patch{Text: &s}); err != nil {
						errs <- err
						return
					}
					continue
				}
				drafts := make([]memory.Draft, 1+i%5)
				for j := range drafts {
					drafts[j] = memory.Draft{Text: texts[(r*100+i+j*7)%len(texts)], Permission: "public"}
				}
				ms, err := svc.CreateBatch(f.ctx, alice, drafts)
				if err != nil {
					errs <- err
					return
				}
				for _, m := range ms {
					mine = append(mine, m.ID)
				}
			}
		}()
		searchers.Add(1)
		go func() {
			defer searchers.Done()
			for i := 0; !done.Load(); i++ {
				q := memory.SearchQuery{Viewer: bob, Text: texts[i%len(texts)], Now: f.clock.Now(), Limit: 10}
				if _, err := stores[r].lexicalHits(f.ctx, q, 10); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	writers.Wait()
	done.Store(true)
	searchers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for r, mem := range stores {
		hits := 0
		for i := range 40 {
			hits += len(lexicalBoth(t, mem, memory.SearchQuery{Viewer: bob, Text: text(1 + i%4), Now: f.clock.Now(), Limit: 20}))
		}
		if hits < 200 {
			t.Errorf("replica %d: only %d hits compared", r, hits)
		}
		if lx := mem.db.lexIx; lx.loads != 1 || lx.replayed == 0 {
			t.Errorf("replica %d: %d loads and %d memories replayed, want 1 load and replays", r, lx.loads, lx.replayed)
		}
	}
}

// testLexicalMemoryLongTransaction keeps a transaction open, which holds
// back the xmin of every snapshot, while another replica writes: each
// refresh must re-read only the memories written since the last, not all
// those written since the transaction began.
func testLexicalMemoryLongTransaction(t *testing.T, f *fixture) {
	alice := f.user("alice")
	other := f.open(f.sealer)
	osvc := memory.NewService(other.Memories(), f.emb, user.NewService(other.Users(), f.clock.Now), f.clock.Now)
	find := finder(t, f, f.mem)
	find("loaded", alice, "heron")

	long := f.db.gorm.WithContext(f.ctx).Begin()
	if long.Error != nil {
		t.Fatal(long.Error)
	}
	defer long.Rollback()
	var xid string
	if err := long.Raw("SELECT pg_current_xact_id()::text").Scan(&xid).Error; err != nil {
		t.Fatal(err)
	}
	lx := f.db.lexIx
	var herons []*memory.Memory
	for i := range 5 {
		m, err := osvc.Create(f.ctx, alice, memory.Draft{Text: fmt.Sprintf("heron number %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		herons = append(herons, m)
		replayed := lx.replayed
		find(fmt.Sprintf("heron %d", i), alice, "heron", herons...)
		if lx.replayed != replayed+1 {
			t.Errorf("heron %d: %d memories re-read, want 1", i, lx.replayed-replayed)
		}
	}
	var held bool
	if err := f.db.session(f.ctx).Raw("SELECT pg_snapshot_xmin(pg_current_snapshot()) <= ?::xid8", xid).Scan(&held).Error; err != nil {
		t.Fatal(err)
	}
	if !held {
		t.Fatal("the open transaction does not hold xmin back")
	}
	replayed := lx.replayed
	for range 3 {
		find("nothing new", alice, "heron", herons...)
	}
	if lx.replayed != replayed || lx.loads != 1 {
		t.Errorf("with nothing new, %d memories re-read and %d loads", lx.replayed-replayed, lx.loads)
	}
	if err := long.Rollback().Error; err != nil {
		t.Fatal(err)
	}
	find("closed", alice, "heron", herons...)
	if lx.replayed != replayed {
		t.Errorf("the end of a transaction that wrote nothing re-read %d memories", lx.replayed-replayed)
	}
}
