package store

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"picard.dev/mcpserver/internal/memory"
	"picard.dev/mcpserver/internal/terms"
)

// The lexical index is a blind index: memory text is encrypted at rest, so
// instead of words it stores, per memory, the keyed hash of each distinct
// term (internal/terms: normalised, stop words dropped, stemmed) with its
// frequency, and the memory's length in terms. A term hash is the first 8
// bytes of HMAC-SHA256(index key, term); the index key is not an encryption
// key, so rotating the encryption keys leaves the index alone, and without
// the index key the hashes cannot be tested against a dictionary. What the
// index does reveal to someone holding the database alone is which memories
// share terms and how often a term occurs, not which words those are.
//
// Search scores candidates with Okapi BM25, over the memories the viewer
// may see (the same visibility predicate as every other query), with
// document frequencies counted over the whole corpus: in Go over an
// in-memory copy of the index (lexical_memory.go). The same in SQL
// (bm25, maxScore) is what the tests compare that copy with.

// BM25 parameters: the usual defaults (Robertson et al.; Lucene, Anserini).
const (
	bm25K1 = 1.2
	bm25B  = 0.75
)

// IndexKeySize is the size of the blind index key in bytes.
const IndexKeySize = 32

// statsTTL is how long the corpus statistics of BM25 (number of indexed
// memories, average length) are reused. They move slowly and BM25 is
// insensitive to small changes in them; counting them is a scan.
const statsTTL = 10 * time.Second

// statsDrift: the statistics are also counted afresh once this process has
// written or deleted index rows of more than this fraction of the counted
// memories, so that a bulk import (which can double the corpus, or change
// its average length threefold) does not skew BM25 for up to statsTTL.
// Writes of other instances are caught up with by statsTTL.
const statsDrift = 0.01

// exactStatsBelow: a corpus smaller than this is counted on every search,
// which is cheap there and keeps small collections (and tests) exact.
const exactStatsBelow = 2000

// blindIndex turns text into keyed term hashes.
type blindIndex struct {
	key []byte
	// indexer names the terms version and the key (by a fingerprint that
	// reveals nothing of it), recorded with every indexed memory.
	indexer string
	pool    sync.Pool // *analyzer

	statsMu sync.Mutex
	stats   corpusStats
	// changed counts the memories whose index rows this process wrote or
	// deleted since stats were counted.
	changed atomic.Int64
	// prune overrides pruneAbove in tests; 0 means pruneAbove. Set, it
	// also makes search score in SQL (pruning exists only there), so tests
	// compare that with the in-memory index (lexical_memory.go).
	prune int
	// pruned counts the searches a pruned scoring answered.
	pruned atomic.Int64
}

func (b *blindIndex) pruneAbove() int {
	if b.prune > 0 {
		return b.prune
	}
	return pruneAbove
}

type analyzer struct {
	tok terms.Tokenizer
	mac hash.Hash
	sum []byte
}

// hash is a term's entry in the index: the first 8 bytes of its HMAC.
func (a *analyzer) hash(term string) int64 {
	a.mac.Reset()
	a.mac.Write([]byte(term))
	a.sum = a.mac.Sum(a.sum[:0])
	return int64(binary.BigEndian.Uint64(a.sum[:8])) // #nosec G115 -- the hash's 64 bits are reinterpreted as a signed integer on purpose
}

// corpusStats are the collection-wide numbers of BM25.
type corpusStats struct {
	at     time.Time
	docs   float64
	avgLen float64
}

func newBlindIndex(key []byte) (*blindIndex, error) {
	if len(key) != IndexKeySize {
		return nil, fmt.Errorf("store: the index key must be %d bytes, not %d", IndexKeySize, len(key))
	}
	k := slices.Clone(key)
	fp := hmac.New(sha256.New, k)
	fp.Write([]byte("picard blind index key fingerprint"))
	b := &blindIndex{key: k, indexer: terms.Version + "/" + hex.EncodeToString(fp.Sum(nil)[:6])}
	b.pool.New = func() any { return &analyzer{mac: hmac.New(sha256.New, k)} }
	return b, nil
}

// docTerms are the distinct term hashes of a text with their frequencies,
// sorted by hash, and the text's length in terms.
type docTerms struct {
	hashes []int64
	tfs    []int
	length int
}

// analyze returns the terms of text.
func (b *blindIndex) analyze(text string) docTerms {
	a := b.pool.Get().(*analyzer)
	defer func() {
		if a.tok.Cap() <= maxPooledText {
			b.pool.Put(a)
		}
	}()
	ts := a.tok.Terms(text)
	counts := make(map[string]int, len(ts))
	for _, t := range ts {
		counts[t]++
	}
	type entry struct {
		h  int64
		tf int
	}
	entries := make([]entry, 0, len(counts))
	for t, n := range counts {
		entries = append(entries, entry{h: a.hash(t), tf: n})
	}
	slices.SortFunc(entries, func(x, y entry) int {
		switch {
		case x.h < y.h:
			return -1
		case x.h > y.h:
			return 1
		}
		return 0
	})
	d := docTerms{hashes: make([]int64, 0, len(entries)), tfs: make([]int, 0, len(entries)), length: len(ts)}
	for i, e := range entries {
		// Two terms whose hashes collide in 64 bits are counted as one.
		if i > 0 && e.h == entries[i-1].h {
			d.tfs[len(d.tfs)-1] += e.tf
			continue
		}
		d.hashes = append(d.hashes, e.h)
		d.tfs = append(d.tfs, e.tf)
	}
	return d
}

// maxPooledText bounds the tokenizer buffers kept for reuse.
const maxPooledText = 1 << 20

// lexiconRows are the rows of memory_lexicon and memory_terms for memories.
type lexiconRows struct {
	docs  [][]any
	terms [][]any
}

func (b *blindIndex) add(rows *lexiconRows, id uuid.UUID, text string) {
	d := b.analyze(text)
	rows.docs = append(rows.docs, []any{id, b.indexer, d.length})
	for i, h := range d.hashes {
		rows.terms = append(rows.terms, []any{h, id, d.tfs[i]})
	}
}

// insert writes rows in tx.
func (rows *lexiconRows) insert(tx *gorm.DB) error {
	if err := insertRows(tx, "memory_lexicon", []string{"memory_id", "indexer", "doc_len"}, rows.docs); err != nil {
		return err
	}
	return insertRows(tx, "memory_terms", []string{"term_hash", "memory_id", "tf"}, rows.terms)
}

// indexRows returns the index rows of ms, or nil without an index key.
func (s *Memories) indexRows(ms []*memory.Memory) *lexiconRows {
	if s.db.index == nil {
		return nil
	}
	rows := &lexiconRows{}
	for _, m := range ms {
		s.db.index.add(rows, m.ID, m.Text)
	}
	s.db.index.changed.Add(int64(len(ms)))
	return rows
}

// replaceIndex replaces the index rows of the memories in rows (computed by
// indexRows) within tx.
func replaceIndex(tx *gorm.DB, rows *lexiconRows) error {
	if rows == nil {
		return nil
	}
	ids := make([]any, len(rows.docs))
	for i, d := range rows.docs {
		ids[i] = d[0]
	}
	for chunk := range slices.Chunk(ids, 1000) {
		if err := tx.Exec("DELETE FROM memory_terms WHERE memory_id IN ?", chunk).Error; err != nil {
			return fmt.Errorf("replace terms: %w", err)
		}
		if err := tx.Exec("DELETE FROM memory_lexicon WHERE memory_id IN ?", chunk).Error; err != nil {
			return fmt.Errorf("replace terms: %w", err)
		}
	}
	return rows.insert(tx)
}

// lexicalHits ranks the memories matching q's filters by BM25 of q.Text
// and returns the best limit, each with a positive score.
func (s *Memories) lexicalHits(ctx context.Context, q memory.SearchQuery, limit int) ([]memory.Hit, error) {
	ix := s.db.index
	if ix == nil || limit <= 0 {
		return nil, nil
	}
	query := ix.analyze(q.Text)
	if len(query.hashes) == 0 {
		return nil, nil
	}
	if s.db.lexIx != nil && ix.prune == 0 {
		return s.db.lexIx.search(ctx, s, q, query, limit)
	}
	stats, err := s.corpusStats(ctx)
	if err != nil {
		return nil, err
	}
	df, err := s.documentFrequencies(ctx, query.hashes)
	if err != nil {
		return nil, err
	}
	var ts []weightedTerm
	for i, h := range query.hashes {
		n := df[h]
		if n == 0 {
			continue
		}
		ts = append(ts, weightedTerm{hash: h, weight: bm25IDF(stats.docs, n) * float64(query.tfs[i]), df: n})
	}
	if len(ts) == 0 {
		return nil, nil
	}
	// Rarest first: the candidates of a pruned search come from a prefix.
	slices.SortFunc(ts, func(a, b weightedTerm) int { return cmp.Compare(a.df, b.df) })
	hits, err := s.maxScore(ctx, q, stats, ts, limit)
	if hits != nil || err != nil {
		return hits, err
	}
	return s.bm25(ctx, q, stats, ts, nil, limit)
}

// maxScore answers a lexical search over terms (rarest first) without
// reading every posting of its common terms, or returns nil when it cannot
// prove the answer exact; it is MaxScore (Turtle and Flood 1995) in two
// passes. BM25 bounds what a term adds to a memory's score by
// weight·(k1+1), and common terms have the smallest weights. The first
// pass scores, on all terms, only the memories holding one of the rare
// terms (splitCommon); its limit-th score θ is a floor for the answer's.
// A memory holding only terms whose bounds sum to at most θ cannot enter
// the answer, so if the common terms' bounds sum to at most θ the first
// pass is the answer; otherwise a second pass scores the memories holding
// any term outside the largest such set of common terms, which is exact
// by the same argument, when that set saves enough postings.
func (s *Memories) maxScore(ctx context.Context, q memory.SearchQuery, stats corpusStats, terms []weightedTerm, limit int) ([]memory.Hit, error) {
	rare, common := s.splitCommon(terms, limit)
	if len(common) == 0 {
		return nil, nil
	}
	hits, err := s.bm25(ctx, q, stats, terms, rare, limit)
	if err != nil || len(hits) < limit {
		return nil, err
	}
	floor := hits[limit-1].Score
	bound := func(t weightedTerm) float64 { return t.weight * (bm25K1 + 1) }
	sum := 0.0
	for _, t := range common {
		sum += bound(t)
	}
	if sum <= floor {
		s.db.index.pruned.Add(1)
		return hits, nil
	}
	// The non-essential terms: the common terms of the smallest bounds
	// while their sum stays within the floor.
	byBound := slices.Clone(common)
	slices.SortFunc(byBound, func(a, b weightedTerm) int { return cmp.Compare(bound(a), bound(b)) })
	sum, skipped, skippedPostings, total := 0.0, map[int64]bool{}, 0, 0
	for _, t := range byBound {
		if sum+bound(t) > floor {
			break
		}
		sum += bound(t)
		skipped[t.hash] = true
		skippedPostings += t.df
	}
	for _, t := range terms {
		total += t.df
	}
	if skippedPostings*2 < total {
		return nil, nil // scoring everything costs about as much
	}
	var essential []weightedTerm
	for _, t := range terms {
		if !skipped[t.hash] {
			essential = append(essential, t)
		}
	}
	if hits, err = s.bm25(ctx, q, stats, terms, essential, limit); err != nil {
		return nil, err
	}
	s.db.index.pruned.Add(1)
	return hits, nil
}

// TermWeights returns BM25's idf of each term of text over the whole blind
// index, as a function of the term (a stem, as the hashing embedder's
// words are), for weighing a query's words (memory.Service.queryVector).
// A term the text does not have weighs 1, as does every term without an
// index key.
func (s *Memories) TermWeights(ctx context.Context, text string) (func(term string) float64, error) {
	one := func(string) float64 { return 1 }
	ix := s.db.index
	if ix == nil {
		return one, nil
	}
	a := ix.pool.Get().(*analyzer)
	ts := slices.Compact(slices.Sorted(slices.Values(a.tok.Terms(text))))
	hashes := make([]int64, len(ts))
	for i, t := range ts {
		hashes[i] = a.hash(t)
	}
	if a.tok.Cap() <= maxPooledText {
		ix.pool.Put(a)
	}
	if len(ts) == 0 {
		return one, nil
	}
	// Every database with an index key keeps the index in memory (lexIx).
	docs, df, err := s.db.lexIx.frequencies(ctx, s, hashes)
	if err != nil {
		return nil, err
	}
	idf := make(map[string]float64, len(ts))
	for i, t := range ts {
		idf[t] = bm25IDF(docs, df[hashes[i]])
	}
	return func(t string) float64 {
		if w, ok := idf[t]; ok {
			return w
		}
		return 1
	}, nil
}

// bm25IDF is the BM25 idf of Lucene, never negative, of a term in n of
// docs memories: log(1 + (N-n+0.5)/(n+0.5)). N can lag behind n (the SQL
// path's statistics are up to statsTTL old), so it is at least n.
func bm25IDF(docs float64, n int) float64 {
	df := float64(n)
	docs = max(docs, df)
	return math.Log(1 + (docs-df+0.5)/(df+0.5))
}

// weightedTerm is a query term: its hash, its weight (idf times its
// frequency in the query) and its document frequency.
type weightedTerm struct {
	hash   int64
	weight float64
	df     int
}

// pruneAbove is the number of postings (summed document frequencies of the
// query's terms) above which a lexical search first tries to score only
// the memories holding its rarer terms (see splitCommon).
const pruneAbove = 5000

// splitCommon splits terms, rarest first, into the rare ones whose postings
// select the candidates of a pruned search and the common rest, which only
// scores those candidates: the common terms are those beyond the shortest
// prefix that holds 4·limit postings, so that the prefix yields enough
// candidates for the limit-th to score well. BM25 bounds a term's
// contribution by weight·(k1+1), and the common terms have the smallest
// weights, so the bound usually proves the pruned result exact
// (MaxScore, Turtle and Flood 1995). No split (common empty) when the
// postings are few or the rare terms would be all of them.
func (s *Memories) splitCommon(terms []weightedTerm, limit int) (rare, common []weightedTerm) {
	postings := 0
	for _, t := range terms {
		postings += t.df
	}
	if postings <= s.db.index.pruneAbove() {
		return terms, nil
	}
	sum := 0
	for i, t := range terms {
		sum += t.df
		if sum >= 4*limit {
			return terms[:i+1], terms[i+1:]
		}
	}
	return terms, nil
}

// bm25 scores the memories matching q's filters by BM25 over terms and
// returns the best limit. With candidates, only the memories holding at
// least one of the candidate terms are scored (on all terms); without,
// every memory holding any term is.
func (s *Memories) bm25(ctx context.Context, q memory.SearchQuery, stats corpusStats, terms, candidates []weightedTerm, limit int) ([]memory.Hit, error) {
	pg := s.db.dialect == DialectPostgres
	float, bigint := "?", "?"
	if pg {
		// Postgres infers an untyped parameter's type from the other operand
		// (integer), which would truncate these.
		float, bigint = "?::float8", "?::bigint"
	}
	values := make([]string, len(terms))
	var args []any
	for i, t := range terms {
		values[i] = "(" + bigint + ", " + float + ")"
		args = append(args, t.hash, t.weight)
	}
	args = append(args, bm25K1*(1-bm25B), bm25K1*bm25B/max(stats.avgLen, 1))
	from := "FROM q JOIN memory_terms t ON t.term_hash = q.h "
	if candidates != nil {
		hashes := make([]int64, len(candidates))
		for i, t := range candidates {
			hashes[i] = t.hash
		}
		// Each candidate's postings are looked up by the primary key
		// (term_hash, memory_id), term by term; CROSS JOIN keeps SQLite
		// from reading every term of each candidate instead.
		from = "FROM (SELECT DISTINCT memory_id FROM memory_terms WHERE term_hash IN ?) c CROSS JOIN q " +
			"JOIN memory_terms t ON t.term_hash = q.h AND t.memory_id = c.memory_id "
		args = append(args, hashes)
	}
	var c conds
	s.db.visibleTo(&c, q.Viewer, q.Owner, q.Now, false)
	if q.Permission != "" {
		c.add("m.permission = ?", string(q.Permission))
	}
	hasTags(&c, q.Tags)
	// score = Σ w · tf·(k1+1) / (tf + k1·(1 - b + b·len/avglen)), the
	// two parameters appended above
	sql := "WITH q (h, w) AS (VALUES " + strings.Join(values, ", ") + ") " +
		"SELECT t.memory_id, sum(q.w * t.tf * " + strconv.FormatFloat(bm25K1+1, 'g', -1, 64) +
		" / (t.tf + " + float + " + " + float + " * l.doc_len)) AS score " + from +
		"JOIN memory_lexicon l ON l.memory_id = t.memory_id " +
		"JOIN memories m ON m.id = t.memory_id WHERE " + c.String() +
		" GROUP BY t.memory_id ORDER BY score DESC, t.memory_id LIMIT ?"
	args = append(args, c.args...)
	args = append(args, limit)
	rows, err := s.db.session(ctx).Raw(sql, args...).Rows()
	if err != nil {
		return nil, fmt.Errorf("lexical search: %w", err)
	}
	defer rows.Close()
	var hits []memory.Hit
	for rows.Next() {
		var h memory.Hit
		if err := rows.Scan(&h.ID, &h.Score); err != nil {
			return nil, fmt.Errorf("lexical search: %w", err)
		}
		hits = append(hits, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lexical search: %w", err)
	}
	return hits, nil
}

// documentFrequencies counts, for each term hash, the indexed memories
// holding it, over the whole corpus.
func (s *Memories) documentFrequencies(ctx context.Context, hashes []int64) (map[int64]int, error) {
	rows, err := s.db.session(ctx).Raw("SELECT term_hash, count(*) FROM memory_terms WHERE term_hash IN ? GROUP BY term_hash", hashes).Rows()
	if err != nil {
		return nil, fmt.Errorf("lexical search: document frequencies: %w", err)
	}
	defer rows.Close()
	df := make(map[int64]int, len(hashes))
	for rows.Next() {
		var (
			h int64
			n int
		)
		if err := rows.Scan(&h, &n); err != nil {
			return nil, fmt.Errorf("lexical search: document frequencies: %w", err)
		}
		df[h] = n
	}
	return df, rows.Err()
}

// corpusStats returns the number of indexed memories and their average
// length, counted afresh when the corpus is small, the last count is older
// than statsTTL, or this process has changed more than statsDrift of it
// since.
func (s *Memories) corpusStats(ctx context.Context) (corpusStats, error) {
	ix := s.db.index
	ix.statsMu.Lock()
	cached := ix.stats
	ix.statsMu.Unlock()
	if !cached.at.IsZero() && cached.docs >= exactStatsBelow && time.Since(cached.at) < statsTTL &&
		float64(ix.changed.Load()) <= statsDrift*cached.docs {
		return cached, nil
	}
	ix.changed.Store(0)
	var (
		docs  int64
		total float64
	)
	err := s.db.session(ctx).Raw("SELECT count(*), coalesce(sum(doc_len), 0) FROM memory_lexicon").Row().Scan(&docs, &total)
	if err != nil {
		return corpusStats{}, fmt.Errorf("lexical search: corpus statistics: %w", unavailable(err))
	}
	st := corpusStats{at: time.Now(), docs: float64(docs)}
	if docs > 0 {
		st.avgLen = total / float64(docs)
	}
	ix.statsMu.Lock()
	ix.stats = st
	ix.statsMu.Unlock()
	return st, nil
}

// lexiconPending selects memories m not indexed by the indexer, joined to
// memory_lexicon l.
const lexiconPending = "FROM memories m LEFT JOIN memory_lexicon l ON l.memory_id = m.id WHERE l.memory_id IS NULL OR l.indexer <> ?"

// PendingIndex counts the memories not in the lexical index under the
// current index key and terms version: stored before the index existed,
// while the server had no index key, or under another key or version.
func (s *Memories) PendingIndex(ctx context.Context) (int, error) {
	if s.db.index == nil {
		return 0, errNoIndexKey
	}
	var n int
	if err := s.db.session(ctx).Raw("SELECT count(*) "+lexiconPending, s.db.index.indexer).Scan(&n).Error; err != nil {
		return 0, fmt.Errorf("count memories to index: %w", err)
	}
	return n, nil
}

var errNoIndexKey = fmt.Errorf("store: no index key is configured")

// Reindex rebuilds the lexical index rows of every memory counted by
// PendingIndex, for `mcpserver reindex` after the index key (or the terms
// version) changed. Each batch is read, analysed and rewritten in one
// transaction, so an interruption (a cancelled ctx) keeps the finished
// batches, and running it again continues. progress is called as in
// RotateKeys.
func (s *Memories) Reindex(ctx context.Context, batch int, progress func(done, total int)) error {
	if batch <= 0 {
		batch = defaultBatch
	}
	total, err := s.PendingIndex(ctx)
	if err != nil {
		return err
	}
	report(progress, 0, total)
	done := 0
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("reindex: %w", err)
		}
		n, err := s.reindexBatch(ctx, batch)
		if err != nil {
			return fmt.Errorf("reindex: %w", err)
		}
		if n == 0 {
			return nil
		}
		done += n
		report(progress, done, max(total, done))
	}
}

func (s *Memories) reindexBatch(ctx context.Context, batch int) (int, error) {
	n := 0
	err := s.db.tx(ctx, func(tx *gorm.DB) error {
		lock := ""
		if s.db.dialect == DialectPostgres {
			// A concurrent update of a memory's text waits, so its new terms
			// are not overwritten by those of the text read here. SQLite's
			// BEGIN IMMEDIATE already excludes other writers.
			lock = " FOR UPDATE OF m"
		}
		rows, err := tx.Raw("SELECT m.id, m.ciphertext "+lexiconPending+" ORDER BY m.id LIMIT ?"+lock, s.db.index.indexer, batch).Rows()
		if err != nil {
			return err
		}
		var ms []*memory.Memory
		for rows.Next() {
			var (
				id    uuid.UUID
				token string
			)
			if err := rows.Scan(&id, &token); err != nil {
				rows.Close()
				return err
			}
			text, err := s.db.sealer.Open([]byte(token))
			if err != nil {
				rows.Close()
				return fmt.Errorf("open memory %s: %w", id, err)
			}
			ms = append(ms, &memory.Memory{ID: id, Text: string(text)})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		n = len(ms)
		return replaceIndex(tx, s.indexRows(ms))
	})
	return n, err
}

// rank returns the hits of q in the order of its mode, before their
// memories are loaded.
func (s *Memories) rank(ctx context.Context, q memory.SearchQuery) ([]memory.Hit, error) {
	switch q.Mode {
	case memory.ModeVector, "":
		return s.vectorHits(ctx, q, nil)
	case memory.ModeLexical:
		if strings.TrimSpace(q.Text) == "" {
			return nil, memory.Invalidf("query", "must not be empty")
		}
		return s.lexicalHits(ctx, q, q.Limit)
	case memory.ModeHybrid:
		if strings.TrimSpace(q.Text) == "" {
			return nil, memory.Invalidf("query", "must not be empty")
		}
		depth := memory.HybridDepth(q.Limit)
		lex, err := s.lexicalHits(ctx, q, depth)
		if err != nil {
			return nil, err
		}
		if lex == nil {
			lex = []memory.Hit{} // counted, and none: vectorHits need not ask again
		}
		var vec []memory.Hit
		if len(q.Vector.Values) > 0 {
			vq := q
			vq.Limit = depth
			all, err := s.vectorHits(ctx, vq, lex)
			if err != nil {
				return nil, err
			}
			// A similarity of zero or less shares nothing with the query;
			// fused, it would still get a positive score.
			for _, h := range all {
				if h.Score > 0 {
					vec = append(vec, h)
				}
			}
		}
		w := q.VectorWeight
		if w <= 0 {
			w = 1
		}
		return memory.Fuse(q.Limit, memory.Ranking{Hits: vec, Weight: w}, memory.Ranking{Hits: lex, Weight: 1}), nil
	}
	return nil, memory.Invalidf("mode", "unknown mode %q", q.Mode)
}
