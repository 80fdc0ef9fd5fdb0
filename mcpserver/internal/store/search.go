package store

import (
	"container/list"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

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
// an exact scan on SQLite.
func (s *Memories) vectorHits(ctx context.Context, q memory.SearchQuery) ([]memory.Hit, error) {
	if len(q.Vector.Values) == 0 || q.Vector.Embedder == "" {
		return nil, memory.Invalidf("vector", "is empty")
	}
	var hits []hit
	var err error
	if s.db.dialect == DialectPostgres {
		hits, err = s.searchHNSW(ctx, q, false)
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
// (search_index.go) selects the ids that pass the filters, with each
// memory's version, or SQL does for filters the index does not hold; the
// vectors come from a cache of decoded, normalised vectors, so a query only
// reads the blobs of vectors it has not seen at that version.
func (s *Memories) searchExact(ctx context.Context, q memory.SearchQuery) ([]hit, error) {
	query := normalised(q.Vector.Values)
	cands, ok, err := s.db.searchIx.candidates(ctx, s, q, len(query))
	if err != nil {
		return nil, fmt.Errorf("vector search: %w", err)
	}
	if !ok {
		if cands, err = s.sqlCandidates(ctx, q, len(query)); err != nil {
			return nil, err
		}
	}
	return s.scoreCandidates(ctx, q, query, cands)
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

// scoreCandidates returns the q.Limit candidates nearest to the normalised
// query.
func (s *Memories) scoreCandidates(ctx context.Context, q memory.SearchQuery, query []float32, cands []candidate) ([]hit, error) {
	vecs := make([][]float32, len(cands))
	missing := s.db.vectors.lookup(cands, q.Vector.Embedder, vecs)
	if len(missing) > 0 {
		if err := s.loadVectors(ctx, cands, missing, q.Vector.Embedder, vecs); err != nil {
			return nil, err
		}
	}
	top := topK{k: q.Limit}
	for i, v := range vecs {
		if len(v) != len(query) {
			continue // changed embedder or deleted since the candidate query
		}
		top.push(i, dot(query, v), cands[i].id)
	}
	order := top.sorted()
	hits := make([]hit, 0, len(order))
	for _, e := range order {
		id, err := uuid.Parse(cands[e.idx].id)
		if err != nil {
			return nil, fmt.Errorf("vector search: bad memory id %q: %w", cands[e.idx].id, err)
		}
		hits = append(hits, hit{id: id, score: float64(e.score)})
	}
	return hits, nil
}

// candidate is a memory that passed the filters of a search.
type candidate struct {
	id      string
	version int64
}

// loadVectors reads and decodes the vectors of cands[missing[...]] into
// vecs and the cache.
func (s *Memories) loadVectors(ctx context.Context, cands []candidate, missing []int, embedder string, vecs [][]float32) error {
	pos := make(map[string]int, len(missing))
	ids := make([]string, len(missing))
	for i, mi := range missing {
		pos[cands[mi].id] = mi
		ids[i] = cands[mi].id
	}
	for chunk := range slices.Chunk(ids, 500) {
		rows, err := s.db.session(ctx).Raw(`SELECT e.memory_id, m.version, e.embedder, e.embedding FROM memory_embeddings e
			JOIN memories m ON m.id = e.memory_id WHERE e.memory_id IN ?`, chunk).Rows()
		if err != nil {
			return fmt.Errorf("load vectors: %w", err)
		}
		for rows.Next() {
			var (
				cv   cachedVector
				blob []byte
			)
			if err := rows.Scan(&cv.id, &cv.version, &cv.embedder, &blob); err != nil {
				rows.Close()
				return fmt.Errorf("load vectors: %w", err)
			}
			cv.vals = normalised(decodeVector(blob))
			s.db.vectors.add(&cv)
			if i, ok := pos[cv.id]; ok && cv.embedder == embedder {
				vecs[i] = cv.vals
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("load vectors: %w", err)
		}
	}
	return nil
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

// topK keeps the k best scores seen, as a min-heap on (score, id) so the
// worst kept entry is at the root; ties are broken by id for determinism.
type topK struct {
	k    int
	heap []scored
}

type scored struct {
	idx   int
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

func (t *topK) push(idx int, score float32, id string) {
	e := scored{idx: idx, score: score, id: id}
	if len(t.heap) < t.k {
		t.heap = append(t.heap, e)
		for i := len(t.heap) - 1; i > 0; {
			p := (i - 1) / 2
			if !worse(t.heap[i], t.heap[p]) {
				break
			}
			t.heap[i], t.heap[p] = t.heap[p], t.heap[i]
			i = p
		}
		return
	}
	if !worse(t.heap[0], e) {
		return
	}
	t.heap[0] = e
	for i, n := 0, len(t.heap); ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && worse(t.heap[l], t.heap[m]) {
			m = l
		}
		if r < n && worse(t.heap[r], t.heap[m]) {
			m = r
		}
		if m == i {
			break
		}
		t.heap[i], t.heap[m] = t.heap[m], t.heap[i]
		i = m
	}
}

// sorted returns the kept entries best first.
func (t *topK) sorted() []scored {
	out := slices.Clone(t.heap)
	slices.SortFunc(out, func(a, b scored) int {
		switch {
		case worse(b, a):
			return -1
		case worse(a, b):
			return 1
		}
		return 0
	})
	return out
}

// vectorCache holds decoded, normalised vectors by memory id, bounded by
// the bytes of their values and evicting the least recently used. An entry
// records the memory version and embedder it was read at; a lookup at
// another version or embedder is a miss, so a stale vector is never used
// even if an invalidation races with a read.
type vectorCache struct {
	mu      sync.Mutex
	max     int64
	size    int64
	lru     *list.List // of *cachedVector, most recently used first
	entries map[string]*list.Element
}

type cachedVector struct {
	id       string
	version  int64
	embedder string
	vals     []float32
}

func newVectorCache(maxBytes int64) *vectorCache {
	return &vectorCache{max: maxBytes, lru: list.New(), entries: map[string]*list.Element{}}
}

func (cv *cachedVector) bytes() int64 { return int64(4*len(cv.vals)) + 96 }

// lookup fills vecs[i] for the candidates cached at their version and
// embedder, and returns the indexes of the others.
func (c *vectorCache) lookup(cands []candidate, embedder string, vecs [][]float32) (missing []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, cd := range cands {
		el, ok := c.entries[cd.id]
		if !ok {
			missing = append(missing, i)
			continue
		}
		cv := el.Value.(*cachedVector)
		if cv.version != cd.version || cv.embedder != embedder {
			missing = append(missing, i)
			continue
		}
		c.lru.MoveToFront(el)
		vecs[i] = cv.vals
	}
	return missing
}

// add stores cv, replacing an older entry for the same memory, and evicts
// from the back until the cache fits its bound.
func (c *vectorCache) add(cv *cachedVector) {
	if c.max < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[cv.id]; ok {
		c.size -= el.Value.(*cachedVector).bytes()
		c.lru.Remove(el)
	}
	c.entries[cv.id] = c.lru.PushFront(cv)
	c.size += cv.bytes()
	for c.size > c.max && c.lru.Len() > 0 {
		back := c.lru.Back()
		old := back.Value.(*cachedVector)
		c.lru.Remove(back)
		delete(c.entries, old.id)
		c.size -= old.bytes()
	}
}

// remove drops the entries of these memory ids.
func (c *vectorCache) remove(ids ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if el, ok := c.entries[id]; ok {
			c.size -= el.Value.(*cachedVector).bytes()
			c.lru.Remove(el)
			delete(c.entries, id)
		}
	}
}
