package store

import (
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
// Search scores candidates with Okapi BM25 in SQL, over the memories the
// viewer may see (the same visibility predicate as every other query), with
// document frequencies counted over the whole corpus.

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
}

type analyzer struct {
	tok terms.Tokenizer
	mac hash.Hash
	sum []byte
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
		a.mac.Reset()
		a.mac.Write([]byte(t))
		a.sum = a.mac.Sum(a.sum[:0])
		entries = append(entries, entry{h: int64(binary.BigEndian.Uint64(a.sum[:8])), tf: n}) // #nosec G115 -- the hash's 64 bits are reinterpreted as a signed integer on purpose
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
	stats, err := s.corpusStats(ctx)
	if err != nil {
		return nil, err
	}
	df, err := s.documentFrequencies(ctx, query.hashes)
	if err != nil {
		return nil, err
	}
	pg := s.db.dialect == DialectPostgres
	float, bigint := "?", "?"
	if pg {
		// Postgres infers an untyped parameter's type from the other operand
		// (integer), which would truncate these.
		float, bigint = "?::float8", "?::bigint"
	}
	var (
		values []string
		args   []any
	)
	for i, h := range query.hashes {
		n := df[h]
		if n == 0 {
			continue
		}
		// The BM25 idf of Lucene, never negative: log(1 + (N-n+0.5)/(n+0.5)).
		// N can lag behind (statsTTL), so n is capped by it.
		docs := max(stats.docs, float64(n))
		idf := math.Log(1 + (docs-float64(n)+0.5)/(float64(n)+0.5))
		values = append(values, "("+bigint+", "+float+")")
		args = append(args, h, idf*float64(query.tfs[i]))
	}
	if len(values) == 0 {
		return nil, nil
	}
	var c conds
	s.db.visibleTo(&c, q.Viewer, q.Owner, q.Now, false)
	if q.Permission != "" {
		c.add("m.permission = ?", string(q.Permission))
	}
	hasTags(&c, q.Tags)
	// score = Σ w · tf·(k1+1) / (tf + k1·(1 - b + b·len/avglen))
	norm := bm25K1 * bm25B / max(stats.avgLen, 1)
	sql := "WITH q (h, w) AS (VALUES " + strings.Join(values, ", ") + ") " +
		"SELECT t.memory_id, sum(q.w * t.tf * " + strconv.FormatFloat(bm25K1+1, 'g', -1, 64) +
		" / (t.tf + " + float + " + " + float + " * l.doc_len)) AS score " +
		"FROM q JOIN memory_terms t ON t.term_hash = q.h " +
		"JOIN memory_lexicon l ON l.memory_id = t.memory_id " +
		"JOIN memories m ON m.id = t.memory_id WHERE " + c.String() +
		" GROUP BY t.memory_id ORDER BY score DESC, t.memory_id LIMIT ?"
	args = append(args, bm25K1*(1-bm25B), norm)
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
// length, counted afresh when the corpus is small or the last count is
// older than statsTTL.
func (s *Memories) corpusStats(ctx context.Context) (corpusStats, error) {
	ix := s.db.index
	ix.statsMu.Lock()
	cached := ix.stats
	ix.statsMu.Unlock()
	if !cached.at.IsZero() && cached.docs >= exactStatsBelow && time.Since(cached.at) < statsTTL {
		return cached, nil
	}
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
		return s.vectorHits(ctx, q)
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
		var vec []memory.Hit
		if len(q.Vector.Values) > 0 {
			vq := q
			vq.Limit = depth
			all, err := s.vectorHits(ctx, vq)
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
		lex, err := s.lexicalHits(ctx, q, depth)
		if err != nil {
			return nil, err
		}
		return memory.Fuse(q.Limit, vec, lex), nil
	}
	return nil, memory.Invalidf("mode", "unknown mode %q", q.Mode)
}
