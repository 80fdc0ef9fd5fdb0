package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/pgvector/pgvector-go"
	"gorm.io/gorm"

	"picard.dev/mcpserver/internal/memory"
)

// Search returns up to q.Limit memories the viewer may see, unexpired,
// best first as q.Mode ranks them (see memory.SearchMode): by cosine
// similarity to q.Vector among vectors of the same embedder and dimension,
// by BM25 of q.Text over the lexical index (lexical.go), or both fused.
func (s *Memories) Search(ctx context.Context, q memory.SearchQuery) ([]memory.Scored, error) {
	if q.Limit <= 0 {
		q.Limit = memory.DefaultSearch
	}
	hits, err := s.rank(ctx, q)
	if err != nil {
		return nil, err
	}
	ids := make([]uuid.UUID, len(hits))
	for i, h := range hits {
		ids[i] = h.ID
	}
	ms, err := s.byIDs(ctx, ids)
	if err != nil {
		return nil, err
	}
	byID := make(map[uuid.UUID]*memory.Memory, len(ms))
	for _, m := range ms {
		byID[m.ID] = m
	}
	out := make([]memory.Scored, 0, len(hits))
	for _, h := range hits {
		// A memory deleted between the two queries is left out.
		if m, ok := byID[h.ID]; ok {
			out = append(out, memory.Scored{Memory: m, Score: h.Score})
		}
	}
	return out, nil
}

// vectorHits returns the q.Limit nearest vectors: by HNSW on Postgres, by
// an exact scan on SQLite. lex is the lexical ranking of the same query
// when the caller has it (a hybrid search; empty, not nil, if it has no
// hits), else nil.
func (s *Memories) vectorHits(ctx context.Context, q memory.SearchQuery, lex []memory.Hit) ([]memory.Hit, error) {
	if len(q.Vector.Values) == 0 || q.Vector.Embedder == "" {
		return nil, memory.Invalidf("vector", "is empty")
	}
	var hits []hit
	var err error
	if s.db.dialect == DialectPostgres {
		hits, err = s.searchHNSW(ctx, q, false)
		if err == nil && q.Words && s.db.index != nil {
			return s.addWordCandidates(ctx, q, hits, lex)
		}
	} else {
		hits, err = s.searchExact(ctx, q)
	}
	if err != nil {
		return nil, err
	}
	out := make([]memory.Hit, len(hits))
	for i, h := range hits {
		out[i] = memory.Hit{ID: h.id, Score: h.score}
	}
	return out, nil
}

// hit is a search result before its memory is loaded.
type hit struct {
	id    uuid.UUID
	score float64
}

// searchConds adds the filters of q (visibility, owner, permission, tags,
// embedder and dimension) over memories m joined with memory_embeddings e.
func (s *Memories) searchConds(c *conds, q memory.SearchQuery) {
	s.db.visibleTo(c, q.Viewer, q.Owner, q.Now, false)
	if q.Permission != "" {
		c.add("m.permission = ?", string(q.Permission))
	}
	hasTags(c, q.Tags)
	c.add("e.embedder = ?", q.Vector.Embedder)
}

// searchHNSW asks Postgres for the nearest vectors through the partial HNSW
// index of the query's dimension. Filters make an HNSW scan return fewer
// rows than asked for, so ef_search is raised and pgvector's iterative scan
// (0.8+) continues until enough rows pass; relaxed order is re-sorted by
// exact distance. With exact, index scans are disabled and the same query
// is answered by a sequential scan: the baseline for measuring recall.
func (s *Memories) searchHNSW(ctx context.Context, q memory.SearchQuery, exact bool) ([]hit, error) {
	iterative, err := s.db.pgvectorIterative(ctx)
	if err != nil {
		return nil, err
	}
	d := strconv.Itoa(len(q.Vector.Values))
	expr := "(e.embedding::vector(" + d + ")) <=> ?::vector(" + d + ")"
	var c conds
	c.add("e.dim = " + d) // a literal, so the planner matches the partial index
	s.searchConds(&c, q)
	vec := pgVector(q.Vector.Values)
	query := "WITH nearest AS MATERIALIZED (SELECT e.memory_id, " + expr + " AS distance" +
		" FROM memory_embeddings e JOIN memories m ON m.id = e.memory_id WHERE " + c.String() +
		" ORDER BY " + expr + " LIMIT ?) SELECT memory_id, distance FROM nearest ORDER BY distance, memory_id"
	args := append([]any{vec}, c.args...)
	args = append(args, vec, q.Limit)
	var hits []hit
	err = s.db.tx(ctx, func(tx *gorm.DB) error {
		ef := max(s.db.efSearch, q.Limit)
		if err := tx.Exec("SET LOCAL hnsw.ef_search = " + strconv.Itoa(ef)).Error; err != nil {
			return err
		}
		if exact {
			if err := tx.Exec("SET LOCAL enable_indexscan = off").Error; err != nil {
				return err
			}
		}
		if iterative {
			if err := tx.Exec("SET LOCAL hnsw.iterative_scan = relaxed_order").Error; err != nil {
				return err
			}
		}
		rows, err := tx.Raw(query, args...).Rows()
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var h hit
			var dist float64
			if err := rows.Scan(&h.id, &dist); err != nil {
				return err
			}
			h.score = 1 - dist
			hits = append(hits, h)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("vector search: %w", err)
	}
	return hits, nil
}

// wordCandidates is how many of the lexical ranking's best memories a
// search for a vector of words scores besides those HNSW returns.
func wordCandidates(limit int) int { return max(4*limit, 40) }

// addWordCandidates adds to hits, HNSW's nearest neighbours of a vector of
// hashed words (memory.SearchQuery.Words), the memories the lexical
// ranking of the same query puts first, each scored by its exact cosine
// similarity, and keeps the q.Limit best. The query weighs its words by
// idf, so its nearest neighbours are the memories sharing its rarer
// words: a few, anywhere in the graph, where HNSW's greedy walk from its
// entry point often does not reach them (recall@10 0.83 at 100k), while
// BM25 ranks exactly those first.
func (s *Memories) addWordCandidates(ctx context.Context, q memory.SearchQuery, hits []hit, lex []memory.Hit) ([]memory.Hit, error) {
	if lex == nil {
		var err error
		if lex, err = s.lexicalHits(ctx, q, wordCandidates(q.Limit)); err != nil {
			return nil, err
		}
	}
	top := newHitTop(q.Limit)
	have := make(map[uuid.UUID]bool, len(hits))
	for _, h := range hits {
		top.push(h.score, h.id)
		have[h.id] = true
	}
	var ids []uuid.UUID
	for _, h := range lex {
		if !have[h.ID] {
			ids = append(ids, h.ID)
		}
	}
	if len(ids) > 0 {
		d := strconv.Itoa(len(q.Vector.Values))
		rows, err := s.db.session(ctx).Raw("SELECT memory_id, (embedding::vector("+d+")) <=> ?::vector("+d+")"+
			" FROM memory_embeddings WHERE memory_id IN ? AND embedder = ? AND dim = "+d,
			pgVector(q.Vector.Values), ids, q.Vector.Embedder).Rows()
		if err != nil {
			return nil, fmt.Errorf("vector search: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id uuid.UUID
			var dist float64
			if err := rows.Scan(&id, &dist); err != nil {
				return nil, fmt.Errorf("vector search: %w", err)
			}
			top.push(1-dist, id)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("vector search: %w", err)
		}
	}
	return top.sorted(), nil
}

// pgvectorIterative reports whether the installed pgvector has iterative
// index scans (0.8.0 and later).
func (db *DB) pgvectorIterative(ctx context.Context) (bool, error) {
	db.pgvMu.Lock()
	defer db.pgvMu.Unlock()
	if db.pgvChecked {
		return db.iterativeScan, nil
	}
	var v string
	if err := db.session(ctx).Raw("SELECT extversion FROM pg_extension WHERE extname = 'vector'").Row().Scan(&v); err != nil {
		return false, fmt.Errorf("pgvector version: %w", unavailable(err))
	}
	major, minor := 0, 0
	parts := strings.SplitN(v, ".", 3)
	if len(parts) >= 2 {
		major, _ = strconv.Atoi(parts[0])
		minor, _ = strconv.Atoi(parts[1])
	}
	db.iterativeScan = major > 0 || minor >= 8
	db.pgvChecked = true
	return db.iterativeScan, nil
}

// searchExact scores every candidate vector in Go. The search index
// (search_index.go) selects the memories that pass the filters and holds
// their decoded, normalised vectors up to its bound, or SQL selects them
// for filters the index does not hold; only vectors the index does not
// hold are read from SQL.
func (s *Memories) searchExact(ctx context.Context, q memory.SearchQuery) ([]hit, error) {
	query := normalised(q.Vector.Values)
	top := newTopK(q.Limit)
	ix := s.db.searchIx
	missing, ok, err := ix.scan(ctx, s, q, query, top)
	if err != nil {
		return nil, fmt.Errorf("vector search: %w", err)
	}
	if !ok {
		cands, err := s.sqlCandidates(ctx, q, len(query))
		if err != nil {
			return nil, err
		}
		if missing, err = ix.scanCandidates(ctx, s, cands, query, q.Vector.Embedder, top); err != nil {
			return nil, fmt.Errorf("vector search: %w", err)
		}
	}
	if len(missing) > 0 {
		vecs, err := s.loadVectors(ctx, missing)
		if err != nil {
			return nil, err
		}
		for i, v := range vecs {
			// Changed embedder or deleted since the candidates were chosen.
			if v.embedder == q.Vector.Embedder && len(v.vals) == len(query) {
				top.push(dot(query, v.vals), missing[i].id)
			}
		}
		ix.keep(missing, vecs)
	}
	order := top.sorted()
	hits := make([]hit, 0, len(order))
	for _, e := range order {
		id, err := uuid.Parse(e.id)
		if err != nil {
			return nil, fmt.Errorf("vector search: bad memory id %q: %w", e.id, err)
		}
		hits = append(hits, hit{id: id, score: float64(e.score)})
	}
	return hits, nil
}

// sqlCandidates selects the memories that pass the filters of q, with
// their versions, in SQL: for queries the search index does not cover.
func (s *Memories) sqlCandidates(ctx context.Context, q memory.SearchQuery, dim int) ([]candidate, error) {
	var c conds
	c.add("e.dim = ?", dim)
	s.searchConds(&c, q)
	// memories_search covers the columns read here; SQLite's planner would
	// otherwise prefer the primary key index and then read table pages.
	rows, err := s.db.session(ctx).Raw("SELECT m.id, m.version FROM memory_embeddings e "+
		"JOIN memories m INDEXED BY memories_search ON m.id = e.memory_id WHERE "+c.String(), c.args...).Rows()
	if err != nil {
		return nil, fmt.Errorf("vector search: %w", err)
	}
	var cands []candidate
	for rows.Next() {
		var cd candidate
		if err := rows.Scan(&cd.id, &cd.version); err != nil {
			rows.Close()
			return nil, fmt.Errorf("vector search: %w", err)
		}
		cands = append(cands, cd)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("vector search: %w", err)
	}
	return cands, nil
}

// candidate is a memory that passed the filters of a search, at the
// version and index generation (searchIndex) it was chosen at.
type candidate struct {
	id      string
	version int64
	gen     uint64
}

// loadedVector is a vector read from SQL, decoded and normalised, with the
// memory version and embedder it was read at.
type loadedVector struct {
	id       string
	version  int64
	embedder string
	vals     []float32
}

// loadVectors reads the vectors of cands: out[i] is cands[i]'s, zero when
// it has none any more.
func (s *Memories) loadVectors(ctx context.Context, cands []candidate) ([]loadedVector, error) {
	pos := make(map[string]int, len(cands))
	ids := make([]string, len(cands))
	for i, cd := range cands {
		pos[cd.id] = i
		ids[i] = cd.id
	}
	out := make([]loadedVector, len(cands))
	for chunk := range slices.Chunk(ids, 500) {
		rows, err := s.db.session(ctx).Raw(`SELECT e.memory_id, m.version, e.embedder, e.embedding FROM memory_embeddings e
			JOIN memories m ON m.id = e.memory_id WHERE e.memory_id IN ?`, chunk).Rows()
		if err != nil {
			return nil, fmt.Errorf("load vectors: %w", err)
		}
		for rows.Next() {
			var (
				v    loadedVector
				blob []byte
			)
			if err := rows.Scan(&v.id, &v.version, &v.embedder, &blob); err != nil {
				rows.Close()
				return nil, fmt.Errorf("load vectors: %w", err)
			}
			v.vals = normalised(decodeVector(blob))
			if i, ok := pos[v.id]; ok {
				out[i] = v
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("load vectors: %w", err)
		}
	}
	return out, nil
}

// encodeVector is the SQLite representation of a vector: float32 little
// endian.
func encodeVector(vals []float32) []byte {
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func decodeVector(b []byte) []float32 {
	vals := make([]float32, len(b)/4)
	for i := range vals {
		vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return vals
}

// pgVector is the Postgres representation of a vector.
func pgVector(vals []float32) pgvector.Vector { return pgvector.NewVector(vals) }

// normalised returns v scaled to unit length (a copy), so that the dot
// product of two normalised vectors is their cosine similarity.
func normalised(v []float32) []float32 {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	out := make([]float32, len(v))
	if sum == 0 {
		return out
	}
	inv := float32(1 / math.Sqrt(sum))
	for i, x := range v {
		out[i] = x * inv
	}
	return out
}

// dot returns the dot product of two vectors of equal length, unrolled by
// four with independent accumulators so the loop is not bound by the
// latency of one addition chain.
func dot(a, b []float32) float32 {
	n := len(a)
	b = b[:n]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= n; i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < n; i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// topK keeps the k best scores seen; ties are broken by id for
// determinism.
type topK struct{ bestK[scored] }

func newTopK(k int) *topK { return &topK{bestK[scored]{k: k, worse: worse}} }

type scored struct {
	score float32
	id    string
}

// worse reports whether a ranks below b.
func worse(a, b scored) bool {
	if a.score != b.score {
		return a.score < b.score
	}
	return a.id > b.id
}

func (t *topK) push(score float32, id string) {
	// Most candidates rank below the worst kept one: reject them with an
	// inline comparison before building an entry.
	if t.full() {
		if root := t.heap[0]; !(root.score < score || (root.score == score && root.id > id)) {
			return
		}
	}
	t.bestK.push(scored{score: score, id: id})
}
