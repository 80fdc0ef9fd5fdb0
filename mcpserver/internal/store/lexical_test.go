package store

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"picard.dev/mcpserver/internal/memory"
	"picard.dev/mcpserver/internal/terms"
)

func TestLexical(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, f *fixture)
	}{
		{"IndexFollowsWrites", testLexicalConsistency},
		{"NoPlaintextTerms", testLexicalNoPlaintext},
		{"BM25", testLexicalBM25},
		{"Visibility", testLexicalVisibility},
		{"Hybrid", testHybrid},
		{"Reindex", testReindex},
		{"StatsFollowBulkWrites", testLexicalStatsDrift},
		{"PrunedEqualsFull", testLexicalPruning},
		{"TermWeights", testTermWeights},
	}
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, newFixture(t, b)) })
			}
		})
	}
}

// search runs a search of one mode as viewer and returns the texts found,
// best first.
func (f *fixture) search(viewer uuid.UUID, mode, query string) []string {
	f.tb.Helper()
	res, err := f.svc.Search(f.ctx, memory.SearchRequest{Viewer: viewer, Query: query, Mode: mode, Limit: 100})
	if err != nil {
		f.tb.Fatalf("%s search %q: %v", mode, query, err)
	}
	out := make([]string, len(res))
	for i, r := range res {
		out[i] = r.Memory.Text
		if i > 0 && r.Score > res[i-1].Score {
			f.tb.Errorf("%s search %q: not sorted best first", mode, query)
		}
		if mode != "vector" && r.Score <= 0 {
			f.tb.Errorf("%s search %q: score %v for %q", mode, query, r.Score, r.Memory.Text)
		}
	}
	return out
}

// distinctTerms is the number of distinct terms of text.
func distinctTerms(text string) int {
	var tok terms.Tokenizer
	ts := tok.Terms(text)
	slices.Sort(ts)
	return len(slices.Compact(ts))
}

func testLexicalConsistency(t *testing.T, f *fixture) {
	alice := f.user("alice")
	hike := f.create(alice, memory.Draft{Text: "We went hiking in the Alps last summer, hiking every day"})
	cake := f.create(alice, memory.Draft{Text: "My grandmother bakes a lemon cake on Sundays"})
	ms, err := f.svc.CreateBatch(f.ctx, alice, []memory.Draft{{Text: "Batch one mentions violins"}, {Text: "Batch two mentions cellos"}})
	if err != nil {
		t.Fatal(err)
	}
	rows := func(id uuid.UUID) (docLen, termRows int) {
		t.Helper()
		if err := f.db.session(f.ctx).Raw("SELECT doc_len FROM memory_lexicon WHERE memory_id = ?", id).Scan(&docLen).Error; err != nil {
			t.Fatal(err)
		}
		return docLen, f.count("SELECT count(*) FROM memory_terms WHERE memory_id = ?", id)
	}
	for _, m := range []*memory.Memory{hike, cake, ms[0], ms[1]} {
		var tok terms.Tokenizer
		wantLen := len(tok.Terms(m.Text))
		if l, n := rows(m.ID); l != wantLen || n != distinctTerms(m.Text) {
			t.Errorf("%q: doc_len %d, %d term rows; want %d, %d", m.Text, l, n, wantLen, distinctTerms(m.Text))
		}
	}
	if got := f.search(alice, "lexical", "hikes in the alps"); !slices.Equal(got, []string{hike.Text}) {
		t.Errorf("word forms: %q", got)
	}
	if got := f.search(alice, "lexical", "violins and cellos"); len(got) != 2 {
		t.Errorf("batch: %q", got)
	}

	// A new text replaces the terms: the old words no longer match.
	text := "Now the note is about sailing boats"
	if _, err := f.svc.Update(f.ctx, alice, hike.ID, memory.Patch{Text: &text}); err != nil {
		t.Fatal(err)
	}
	if got := f.search(alice, "lexical", "hiking alps"); len(got) != 0 {
		t.Errorf("old words still match: %q", got)
	}
	if got := f.search(alice, "lexical", "sail a boat"); !slices.Equal(got, []string{text}) {
		t.Errorf("new words: %q", got)
	}
	if l, n := rows(hike.ID); l != 3 || n != 3 { // note, sail, boat
		t.Errorf("after update: doc_len %d, %d term rows", l, n)
	}
	// Other changes keep them.
	tags := []string{"sea"}
	if _, err := f.svc.Update(f.ctx, alice, hike.ID, memory.Patch{Tags: &tags}); err != nil {
		t.Fatal(err)
	}
	if got := f.search(alice, "lexical", "sailing"); !slices.Equal(got, []string{text}) {
		t.Errorf("after a tag change: %q", got)
	}

	// Deletion removes every row.
	if _, err := f.svc.Delete(f.ctx, alice, []uuid.UUID{hike.ID, ms[0].ID}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uuid.UUID{hike.ID, ms[0].ID} {
		if n := f.count("SELECT count(*) FROM memory_terms WHERE memory_id = ?", id) +
			f.count("SELECT count(*) FROM memory_lexicon WHERE memory_id = ?", id); n != 0 {
			t.Errorf("%d index rows left after delete", n)
		}
	}
	if got := f.search(alice, "lexical", "sailing violins"); len(got) != 0 {
		t.Errorf("deleted memories found: %q", got)
	}
	total := distinctTerms(cake.Text) + distinctTerms(ms[1].Text)
	if n := f.count("SELECT count(*) FROM memory_terms"); n != total {
		t.Errorf("%d term rows in all, want %d", n, total)
	}
	if n := f.count("SELECT count(*) FROM memory_lexicon"); n != 2 {
		t.Errorf("%d lexicon rows, want 2", n)
	}
}

// testLexicalNoPlaintext checks that no word of a memory, nor its stem,
// reaches the index tables (or, on SQLite, the database file) in any form.
func testLexicalNoPlaintext(t *testing.T, f *fixture) {
	alice := f.user("alice")
	secret := "Xylophonist Quentin memorised the zanzibarian thermodynamics"
	f.create(alice, memory.Draft{Text: secret})
	var needles []string
	var tok terms.Tokenizer
	words, spans := tok.Tokenize(secret)
	for _, sp := range spans {
		w := string(words[sp.Start:sp.End])
		if len(w) >= 5 {
			needles = append(needles, w, string(terms.Stem([]byte(w))))
		}
	}
	for _, table := range []string{"memory_terms", "memory_lexicon"} {
		rows, err := f.db.session(f.ctx).Raw("SELECT * FROM " + table).Rows()
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		n := 0
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			n++
			row := strings.ToLower(fmt.Sprint(vals...))
			for _, v := range vals {
				if b, ok := v.([]byte); ok {
					row += strings.ToLower(string(b))
				}
			}
			for _, w := range needles {
				if strings.Contains(row, w) {
					t.Errorf("%s holds %q: %s", table, w, row)
				}
			}
		}
		rows.Close()
		if n == 0 {
			t.Errorf("%s is empty", table)
		}
	}
	if f.db.Dialect() == DialectSQLite {
		if _, err := f.db.sql.ExecContext(f.ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(f.opts.SQLitePath)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range needles {
			if bytes.Contains(bytes.ToLower(b), []byte(w)) {
				t.Errorf("the database file holds %q", w)
			}
		}
	}
}

// testLexicalBM25 compares lexical scores with Okapi BM25 computed here
// from the plaintext.
func testLexicalBM25(t *testing.T, f *fixture) {
	alice := f.user("alice")
	texts := []string{
		"the red fox jumps over the lazy dog",
		"a red car and a red bicycle",
		"foxes are red, dogs are lazy, and cars are fast",
		"nothing in common here",
		"red red red red red red red red red red",
	}
	for _, text := range texts {
		f.create(alice, memory.Draft{Text: text})
	}
	var tok terms.Tokenizer
	docs := make([][]string, len(texts))
	var total float64
	for i, text := range texts {
		docs[i] = tok.Terms(text)
		total += float64(len(docs[i]))
	}
	avg := total / float64(len(texts))
	bm25 := func(query string) map[string]float64 {
		out := map[string]float64{}
		for _, q := range tok.Terms(query) {
			df := 0
			for _, d := range docs {
				if slices.Contains(d, q) {
					df++
				}
			}
			if df == 0 {
				continue
			}
			idf := math.Log(1 + (float64(len(docs))-float64(df)+0.5)/(float64(df)+0.5))
			for i, d := range docs {
				tf := 0
				for _, w := range d {
					if w == q {
						tf++
					}
				}
				if tf > 0 {
					out[texts[i]] += idf * float64(tf) * 2.2 / (float64(tf) + 1.2*(0.25+0.75*float64(len(d))/avg))
				}
			}
		}
		return out
	}
	for _, query := range []string{"red fox", "lazy dogs", "red red bicycle", "fast cars"} {
		want := bm25(query)
		res, err := f.svc.Search(f.ctx, memory.SearchRequest{Viewer: alice, Query: query, Mode: "lexical"})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != len(want) {
			t.Errorf("%q: %d results, want %d", query, len(res), len(want))
		}
		for _, r := range res {
			if w := want[r.Memory.Text]; math.Abs(r.Score-w) > 1e-9*max(1, w) {
				t.Errorf("%q: score of %q is %v, want %v", query, r.Memory.Text, r.Score, w)
			}
		}
	}
}

func testLexicalVisibility(t *testing.T, f *fixture) {
	alice, bob, carol := f.user("alice"), f.user("bob"), f.user("carol")
	past := f.clock.Now().Add(-time.Hour)
	add := func(owner uuid.UUID, text, perm string, exp *time.Time, shared ...string) *memory.Memory {
		return f.create(owner, memory.Draft{Text: text, Permission: perm, ExpiresAt: exp, SharedWith: shared})
	}
	priv := add(alice, "alice private walrus", "private", nil)
	pub := add(alice, "alice public walrus", "public", nil)
	shr := add(alice, "alice shared walrus", "shared", nil, "bob@example.com")
	add(alice, "alice expired public walrus", "public", &past)
	add(alice, "alice expired private walrus", "private", &past)
	bobs := add(bob, "bob private walrus", "private", nil)

	for _, mode := range []string{"lexical", "hybrid"} {
		for _, tc := range []struct {
			viewer uuid.UUID
			name   string
			want   []*memory.Memory
		}{
			{alice, "alice", []*memory.Memory{priv, pub, shr}},
			{bob, "bob", []*memory.Memory{pub, shr, bobs}},
			{carol, "carol", []*memory.Memory{pub}},
		} {
			got := f.search(tc.viewer, mode, "walrus")
			want := make([]string, len(tc.want))
			for i, m := range tc.want {
				want[i] = m.Text
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s search by %s: %q, want %q", mode, tc.name, got, want)
			}
		}
	}
	// Filters apply as in vector search.
	res, err := f.svc.Search(f.ctx, memory.SearchRequest{Viewer: bob, Query: "walrus", Mode: "lexical", Owner: alice, Permission: "shared"})
	if err != nil || len(res) != 1 || res[0].Memory.ID != shr.ID {
		t.Errorf("owner and permission filters: %v, %v", res, err)
	}
	// A permission change applies at once: the index has no copy of it.
	if _, err := f.svc.SetPermission(f.ctx, alice, priv.ID, "public", nil); err != nil {
		t.Fatal(err)
	}
	if got := f.search(carol, "lexical", "private walrus"); !slices.Contains(got, priv.Text) {
		t.Errorf("made public, still hidden from carol: %q", got)
	}
	if _, err := f.svc.SetPermission(f.ctx, alice, shr.ID, "private", nil); err != nil {
		t.Fatal(err)
	}
	if got := f.search(bob, "lexical", "shared walrus"); slices.Contains(got, shr.Text) {
		t.Errorf("unshared, still found by bob: %q", got)
	}
	// Expiry applies at query time too.
	f.clock.Advance(48 * time.Hour)
	soon := f.clock.Now().Add(time.Hour)
	if _, err := f.svc.Update(f.ctx, alice, pub.ID, memory.Patch{ExpiresAt: ptr(&soon)}); err != nil {
		t.Fatal(err)
	}
	if got := f.search(carol, "lexical", "public walrus"); !slices.Contains(got, pub.Text) {
		t.Errorf("not yet expired, hidden: %q", got)
	}
	f.clock.Advance(2 * time.Hour)
	if got := f.search(carol, "lexical", "public walrus"); slices.Contains(got, pub.Text) {
		t.Errorf("expired, still found: %q", got)
	}
}

func testHybrid(t *testing.T, f *fixture) {
	alice := f.user("alice")
	embedded := f.create(alice, memory.Draft{Text: "my sister plays the cello in an orchestra"})
	// A memory stored without a vector (embedding pending) is found by its
	// words in hybrid and lexical mode, not by vector search.
	pending := &memory.Memory{ID: uuid.New(), OwnerID: alice, Text: "the cello teacher lives in Lyon",
		Permission: memory.Private, SharedWith: []uuid.UUID{}, Tags: []string{}, Metadata: map[string]any{},
		CreatedAt: f.svc.Now(), UpdatedAt: f.svc.Now(), Version: 1}
	if err := f.mem.Insert(f.ctx, []*memory.Memory{pending}, []memory.Vector{{}}); err != nil {
		t.Fatal(err)
	}
	f.create(alice, memory.Draft{Text: "we had pasta for dinner"})
	for _, mode := range []string{"hybrid", "lexical"} {
		got := f.search(alice, mode, "cello")
		if len(got) != 2 || !slices.Contains(got, pending.Text) || !slices.Contains(got, embedded.Text) {
			t.Errorf("%s: %q", mode, got)
		}
	}
	if got := f.search(alice, "vector", "cello"); slices.Contains(got, pending.Text) {
		t.Errorf("vector search found a memory without a vector: %q", got)
	}
	// Hybrid scores: 1 for first by both rankings; a hit of one ranking
	// only scores at most 0.5.
	res, err := f.svc.Search(f.ctx, memory.SearchRequest{Viewer: alice, Query: embedded.Text})
	if err != nil || len(res) == 0 || res[0].Memory.ID != embedded.ID || math.Abs(res[0].Score-1) > 1e-9 {
		t.Fatalf("hybrid, exact text: %v, %v", res, err)
	}
	res, err = f.svc.Search(f.ctx, memory.SearchRequest{Viewer: alice, Query: "Lyon"})
	if err != nil || len(res) != 1 || res[0].Memory.ID != pending.ID || res[0].Score > 0.5 {
		t.Fatalf("hybrid, lexical only: %v, %v", res, err)
	}
	// A query of stop words only has no terms: lexical finds nothing.
	if got := f.search(alice, "lexical", "in the"); len(got) != 0 {
		t.Errorf("stop words matched: %q", got)
	}
	// Unknown modes are refused.
	_, err = f.svc.Search(f.ctx, memory.SearchRequest{Viewer: alice, Query: "cello", Mode: "fuzzy"})
	if !errors.Is(err, memory.ErrInvalid) {
		t.Errorf("mode fuzzy: %v", err)
	}
}

func testReindex(t *testing.T, f *fixture) {
	alice := f.user("alice")
	for i := range 7 {
		f.create(alice, memory.Draft{Text: fmt.Sprintf("note %d about the lighthouse keeper", i)})
	}
	if n, err := f.mem.PendingIndex(f.ctx); err != nil || n != 0 {
		t.Fatalf("pending with the same key: %d, %v", n, err)
	}
	// Another index key: nothing is found by words until reindexed.
	db2 := f.openIndexKey(otherIndexKey)
	svc2 := memory.NewService(db2.Memories(), f.emb, f.usvc, f.clock.Now)
	search2 := func() int {
		res, err := svc2.Search(f.ctx, memory.SearchRequest{Viewer: alice, Query: "lighthouse", Mode: "lexical", Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return len(res)
	}
	if n := search2(); n != 0 {
		t.Fatalf("found %d under another key", n)
	}
	if n, err := db2.Memories().PendingIndex(f.ctx); err != nil || n != 7 {
		t.Fatalf("pending under another key: %d, %v", n, err)
	}
	var last [2]int
	if err := db2.Memories().Reindex(f.ctx, 3, func(done, total int) { last = [2]int{done, total} }); err != nil {
		t.Fatal(err)
	}
	if last != [2]int{7, 7} {
		t.Errorf("progress ended at %v", last)
	}
	if n := search2(); n != 7 {
		t.Errorf("found %d after reindex, want 7", n)
	}
	if n, _ := db2.Memories().PendingIndex(f.ctx); n != 0 {
		t.Errorf("%d pending after reindex", n)
	}
	if n := f.count("SELECT count(*) FROM memory_lexicon"); n != 7 {
		t.Errorf("%d lexicon rows after reindex", n)
	}
	// Without a key nothing is indexed, and reindex says why.
	if err := f.openIndexKey(nil).Memories().Reindex(f.ctx, 0, nil); err == nil {
		t.Error("reindex without a key succeeded")
	}
	opts := f.opts
	opts.IndexKey = []byte("short")
	if _, err := Open(f.ctx, opts); err == nil {
		t.Error("a short index key was accepted")
	}
}

// testLexicalStatsDrift checks that BM25's cached corpus statistics are
// counted afresh as soon as this process has changed more than statsDrift
// of the corpus, not only when statsTTL has passed: after a bulk import the
// average length can change severalfold.
func testLexicalStatsDrift(t *testing.T, f *fixture) {
	alice := f.user("alice")
	add := func(n, words int) []uuid.UUID {
		var ids []uuid.UUID
		for len(ids) < n {
			batch := make([]memory.Draft, min(memory.MaxBatch, n-len(ids)))
			for i := range batch {
				batch[i] = memory.Draft{Text: strings.TrimSpace(strings.Repeat(fmt.Sprintf("word%d ", len(ids)+i), words))}
			}
			ms, err := f.svc.CreateBatch(f.ctx, alice, batch)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				ids = append(ids, m.ID)
			}
		}
		return ids
	}
	stats := func() corpusStats {
		t.Helper()
		st, err := f.mem.corpusStats(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	add(exactStatsBelow, 1)
	if st := stats(); st.docs != exactStatsBelow || st.avgLen != 1 {
		t.Fatalf("stats %+v, want %d documents of length 1", st, exactStatsBelow)
	}
	// Fewer changes than statsDrift of the corpus: the cached count stands.
	few := add(exactStatsBelow*statsDrift/2, 1)
	if st := stats(); st.docs != exactStatsBelow {
		t.Fatalf("stats %+v recounted after %d new memories", st, len(few))
	}
	// A bulk import of long memories: counted again at once.
	add(exactStatsBelow/2, 9)
	want := float64(exactStatsBelow + len(few) + exactStatsBelow/2)
	if st := stats(); st.docs != want || math.Abs(st.avgLen-(want+8*exactStatsBelow/2)/want) > 1e-9 {
		t.Fatalf("stats %+v after a bulk import, want %v documents", st, want)
	}
	// Deletes count as changes too: with them, these inserts pass the
	// drift; without, they would not.
	if _, err := f.svc.Delete(f.ctx, alice, few); err != nil {
		t.Fatal(err)
	}
	more := int(want*statsDrift) + 1 - len(few)
	add(more, 1)
	want += float64(more - len(few))
	if st := stats(); st.docs != want {
		t.Fatalf("stats %+v after deletes and inserts, want %v documents", st, want)
	}
}

// testLexicalPruning checks that scoring only the memories that hold a
// query's rarer terms (splitCommon) returns exactly what scoring every
// posting returns, scores and order included, whenever it is used, and
// that it is used.
func testLexicalPruning(t *testing.T, f *fixture) {
	rng := rand.New(rand.NewPCG(7, 8))
	vocab := make([]string, 400)
	for i := range vocab {
		vocab[i] = fmt.Sprintf("w%dz", i)
	}
	zipf := rand.NewZipf(rng, 1.1, 1, uint64(len(vocab)-1))
	text := func(n int) string {
		w := make([]string, n)
		for i := range w {
			w[i] = vocab[zipf.Uint64()]
		}
		return strings.Join(w, " ")
	}
	alice, bob := f.user("alice"), f.user("bob")
	for _, owner := range []uuid.UUID{alice, bob} {
		for range 2 {
			batch := make([]memory.Draft, 500)
			for i := range batch {
				batch[i] = memory.Draft{Text: text(3 + rng.IntN(15))}
				if rng.IntN(3) == 0 {
					batch[i].Permission = string(memory.Public)
				}
			}
			if _, err := f.svc.CreateBatch(f.ctx, owner, batch); err != nil {
				t.Fatal(err)
			}
		}
	}
	ix := f.mem.db.index
	defer func() { ix.prune = 0 }()
	search := func(prune int, query string, limit int) []memory.Hit {
		ix.prune = prune
		hits, err := f.mem.lexicalHits(f.ctx, memory.SearchQuery{Viewer: alice, Text: query, Limit: limit, Now: f.clock.Now()}, limit)
		if err != nil {
			t.Fatal(err)
		}
		return hits
	}
	before := ix.pruned.Load()
	for i := range 60 {
		query := text(2 + i%4)
		for _, limit := range []int{1, 5, 50} {
			want := search(math.MaxInt, query, limit)
			got := search(1, query, limit)
			if len(got) != len(want) {
				t.Fatalf("%q limit %d: %d hits pruned, %d in full", query, limit, len(got), len(want))
			}
			// Scores are sums in another order, so equal scores can
			// differ in the last bit and swap places: a hit is right if
			// its full score is the one expected at its place.
			full := map[uuid.UUID]float64{}
			for _, h := range search(math.MaxInt, query, limit+20) {
				full[h.ID] = h.Score
			}
			for j := range want {
				fs, ok := full[got[j].ID]
				if !ok || math.Abs(fs-want[j].Score) > 1e-9 || math.Abs(got[j].Score-want[j].Score) > 1e-9 {
					t.Fatalf("%q limit %d: hit %d is %v pruned, %v in full", query, limit, j, got[j], want[j])
				}
			}
		}
	}
	t.Logf("pruned scoring answered %d of 180 searches", ix.pruned.Load()-before)
	if n := ix.pruned.Load() - before; n < 20 {
		t.Fatalf("pruned scoring answered %d of 180 searches; the test does not exercise it", n)
	}
}

// testTermWeights checks the idf weights the hashing embedder's queries
// get: a word in fewer memories weighs more, a word in none most, and a
// word the text does not hold 1.
func testTermWeights(t *testing.T, f *fixture) {
	alice := f.user("alice")
	drafts := []memory.Draft{{Text: "violin music"}}
	for i := range 20 {
		drafts = append(drafts, memory.Draft{Text: fmt.Sprintf("music night %d", i)})
	}
	if _, err := f.svc.CreateBatch(f.ctx, alice, drafts); err != nil {
		t.Fatal(err)
	}
	w, err := f.mem.TermWeights(f.ctx, "Violin music concerto")
	if err != nil {
		t.Fatal(err)
	}
	violin, music, concerto := w("violin"), w("music"), w("concerto")
	if !(concerto > violin && violin > music && music > 0) {
		t.Errorf("weights concerto %v, violin %v, music %v: want concerto > violin > music > 0", concerto, violin, music)
	}
	if want := math.Log(1 + (21-1+0.5)/(1+0.5)); math.Abs(violin-want) > 1e-12 {
		t.Errorf("violin weighs %v, want BM25's idf %v", violin, want)
	}
	if got := w("cello"); got != 1 {
		t.Errorf("a word not in the text weighs %v, want 1", got)
	}
}
