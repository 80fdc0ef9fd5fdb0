package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/google/uuid"

	"picard.dev/mcpserver/internal/memory"
)

// searchIndex holds, for every memory with a vector, what the filters of an
// exact vector search read (owner, permission, expiry, shares, embedder,
// dimension, version), so SQLite search picks its candidates in Go instead
// of stepping a SQL query through every visible row; Postgres searches
// with HNSW and has none. It is kept coherent through memory_changes,
// which triggers append to on every write to memories, memory_shares and
// memory_embeddings, whoever the writer is: before each query the index
// replays the log past its cursor (a seqCursor, changes.go) and re-reads
// those memories. The index is loaded in full on first use and whenever the
// log was pruned past its cursor. The metadata is unbounded (about 180
// bytes per memory). Each entry also holds its decoded, normalised vector
// once a search has read it, so a scan reads no map and takes no lock per
// candidate; those vectors are bounded by maxBytes: past it a vector is
// read from SQL for each search that needs it instead of being kept. There
// is no eviction: for a full scan, keeping a fixed subset hits more often
// than an LRU smaller than the working set, which misses every time.
type searchIndex struct {
	// mu is held exclusively to change the index and shared to scan it.
	mu        sync.RWMutex
	refresher refreshGroup
	loaded    bool
	log       *seqCursor
	entries   []indexEntry
	pos       map[string]int // memory id → index in entries
	maxBytes  int64          // bound on the kept vectors; negative keeps none
	vecBytes  int64          // bytes of the kept vectors
	lastGen   uint64
	// embedders numbers the embedder names, so a scan compares an integer
	// per entry rather than a string.
	embedders map[string]uint32
}

type indexEntry struct {
	id         string
	version    int64
	owner      uuid.UUID
	permission memory.Permission
	expires    int64 // microseconds since the epoch; noExpiry when NULL
	embedder   string
	embedderID uint32 // embedder's number in searchIndex.embedders
	dim        int
	shares     []uuid.UUID // only for shared memories
	// gen changes whenever the entry is re-read, so a vector read from SQL
	// is kept only if no change was replayed since its search began (a
	// vector may change without a new version when a memory is re-embedded).
	gen uint64
	vec []float32 // normalised; nil until read, or when over the bound
}

const (
	noExpiry = int64(1<<63 - 1)
	// pruneEvery and pruneKeep bound memory_changes: after pruneEvery new
	// rows the log is cut to its last pruneKeep, so another process a
	// little behind replays rather than reloads.
	pruneEvery = 50_000
	pruneKeep  = 10_000
	// replayMax is the most log rows replayed one by one; past it a full
	// load is cheaper.
	replayMax = 20_000
)

func newSearchIndex(maxVectorBytes int64) *searchIndex {
	return &searchIndex{log: &seqCursor{}, pos: map[string]int{}, maxBytes: maxVectorBytes, embedders: map[string]uint32{}}
}

// vectorBytes is what a kept vector counts against the bound.
func vectorBytes(v []float32) int64 {
	if v == nil {
		return 0
	}
	return int64(4*len(v)) + 24
}

// refresh brings the index up to the database, one refresh for all the
// searches waiting (refreshGroup).
func (ix *searchIndex) refresh(ctx context.Context, s *Memories) error {
	return ix.refresher.do(ctx, func(ctx context.Context) error {
		ix.mu.Lock()
		defer ix.mu.Unlock()
		return ix.sync(ctx, s)
	})
}

// scan scores against the normalised query, into top, every memory that
// passes the filters of q (as searchConds would select them) and whose
// vector the index holds, and returns the others that pass, whose vectors
// the caller reads from SQL. ok is false when q has a filter the index does
// not hold (tags): the caller then asks SQL for the candidates.
func (ix *searchIndex) scan(ctx context.Context, s *Memories, q memory.SearchQuery, query []float32, top *topK) (missing []candidate, ok bool, err error) {
	if len(q.Tags) > 0 {
		return nil, false, nil
	}
	if err := ix.refresh(ctx, s); err != nil {
		return nil, false, err
	}
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	dim := len(query)
	now := q.Now.UnixMicro()
	emb, known := ix.embedders[q.Vector.Embedder]
	if !known {
		return nil, true, nil // no vector of this embedder
	}
	for i := range ix.entries {
		e := &ix.entries[i]
		if e.dim != dim || e.embedderID != emb || e.expires <= now {
			continue
		}
		if q.Owner != uuid.Nil && e.owner != q.Owner {
			continue
		}
		if q.Permission != "" && e.permission != q.Permission {
			continue
		}
		if e.owner != q.Viewer {
			switch e.permission {
			case memory.Public:
			case memory.Shared:
				if !slices.Contains(e.shares, q.Viewer) {
					continue
				}
			default:
				continue
			}
		}
		if e.vec == nil {
			missing = append(missing, candidate{id: e.id, version: e.version, gen: e.gen})
			continue
		}
		top.push(dot(query, e.vec), e.id)
	}
	return missing, true, nil
}

// scanCandidates scores into top the candidates, selected by SQL, whose
// vectors the index holds at their version, and returns the others.
func (ix *searchIndex) scanCandidates(ctx context.Context, s *Memories, cands []candidate, query []float32, embedder string, top *topK) (missing []candidate, err error) {
	if err := ix.refresh(ctx, s); err != nil {
		return nil, err
	}
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	for _, cd := range cands {
		if i, ok := ix.pos[cd.id]; ok {
			e := &ix.entries[i]
			if e.version == cd.version && e.embedder == embedder && len(e.vec) == len(query) {
				top.push(dot(query, e.vec), e.id)
				continue
			}
			cd.gen = e.gen
		}
		missing = append(missing, cd)
	}
	return missing, nil
}

// keep stores the vectors read for cands, each if its entry was not
// re-read since (same gen and version), it is of the entry's embedder and
// dimension, and it fits the bound.
func (ix *searchIndex) keep(cands []candidate, vecs []loadedVector) {
	if ix.maxBytes < 0 {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for k, cd := range cands {
		v := vecs[k]
		i, ok := ix.pos[cd.id]
		if !ok || v.vals == nil {
			continue
		}
		e := &ix.entries[i]
		if e.gen != cd.gen || e.version != cd.version || v.version != cd.version ||
			e.embedder != v.embedder || e.dim != len(v.vals) || e.vec != nil {
			continue
		}
		if n := vectorBytes(v.vals); ix.vecBytes+n <= ix.maxBytes {
			e.vec = v.vals
			ix.vecBytes += n
		}
	}
}

// sync brings the index up to the database: a full load the first time or
// after a gap in the log, otherwise a replay of the log past its cursor.
func (ix *searchIndex) sync(ctx context.Context, s *Memories) error {
	if !ix.loaded {
		return ix.load(ctx, s)
	}
	b, err := ix.log.next(s.db.session(ctx))
	if err != nil {
		return fmt.Errorf("search index: %w", err)
	}
	if b.full {
		return ix.load(ctx, s)
	}
	for chunk := range slices.Chunk(b.ids, 500) {
		ids := make([]string, len(chunk))
		for i, id := range chunk {
			ids[i] = id.String()
		}
		fresh, err := readIndexEntries(ctx, s, ids)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if e, ok := fresh[id]; ok {
				ix.put(e)
			} else {
				ix.drop(id)
			}
		}
	}
	ix.log.advance(b)
	if ix.log.pruneDue() {
		if err := ix.log.prune(ctx, s.db, pruneKeep); err != nil {
			s.db.log.Warn("search index: pruning memory_changes failed", "err", err)
		}
	}
	return nil
}

// load reads the whole index. The cursor is read first, so a change that
// lands during the load is replayed by the next sync (reading a memory
// twice is harmless).
func (ix *searchIndex) load(ctx context.Context, s *Memories) error {
	if err := ix.log.loaded(s.db.session(ctx)); err != nil {
		return fmt.Errorf("search index: %w", err)
	}
	fresh, err := readIndexEntries(ctx, s, nil)
	if err != nil {
		return err
	}
	clear(ix.entries) // drops the kept vectors with the entries
	ix.entries = ix.entries[:0]
	ix.vecBytes = 0
	clear(ix.pos)
	for _, e := range fresh {
		ix.put(e)
	}
	ix.loaded = true
	return nil
}

// readIndexEntries reads the entries of these memories (all when ids is
// nil) in one statement, so each entry is one consistent snapshot; a
// memory without a vector has none.
func readIndexEntries(ctx context.Context, s *Memories, ids []string) (map[string]indexEntry, error) {
	query := "SELECT m.id, m.version, m.owner_id, m.permission, m.expires_at, e.embedder, e.dim, " +
		"CASE WHEN m.permission = 'shared' THEN (SELECT " + idList(s.db.dialect, "s.user_id") + " FROM memory_shares s WHERE s.memory_id = m.id) END " +
		"FROM memory_embeddings e JOIN memories m ON m.id = e.memory_id"
	var args []any
	if ids != nil {
		query += " WHERE e.memory_id IN ?"
		args = append(args, ids)
	}
	rows, err := s.db.session(ctx).Raw(query, args...).Rows()
	if err != nil {
		return nil, fmt.Errorf("search index: %w", err)
	}
	defer rows.Close()
	out := make(map[string]indexEntry, len(ids))
	for rows.Next() {
		var (
			e       indexEntry
			owner   string
			perm    string
			expires *int64
			shares  *string
		)
		if err := rows.Scan(&e.id, &e.version, &owner, &perm, &expires, &e.embedder, &e.dim, &shares); err != nil {
			return nil, fmt.Errorf("search index: %w", err)
		}
		if e.owner, err = uuid.Parse(owner); err != nil {
			return nil, fmt.Errorf("search index: memory %s: owner %q: %w", e.id, owner, err)
		}
		e.permission = memory.Permission(perm)
		e.expires = noExpiry
		if expires != nil {
			e.expires = *expires
		}
		if shares != nil && *shares != "" {
			for u := range strings.SplitSeq(*shares, ",") {
				id, err := uuid.Parse(u)
				if err != nil {
					return nil, fmt.Errorf("search index: memory %s: share %q: %w", e.id, u, err)
				}
				e.shares = append(e.shares, id)
			}
		}
		out[e.id] = e
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search index: %w", err)
	}
	return out, nil
}

// put adds or replaces the entry of e.id, without a vector: a vector may
// have changed without a new version (re-embedding).
func (ix *searchIndex) put(e indexEntry) {
	ix.lastGen++
	e.gen, e.vec = ix.lastGen, nil
	id, ok := ix.embedders[e.embedder]
	if !ok {
		id = uint32(len(ix.embedders)) // #nosec G115 -- a handful of embedder names
		ix.embedders[e.embedder] = id
	}
	e.embedderID = id
	if i, ok := ix.pos[e.id]; ok {
		ix.vecBytes -= vectorBytes(ix.entries[i].vec)
		ix.entries[i] = e
		return
	}
	ix.pos[e.id] = len(ix.entries)
	ix.entries = append(ix.entries, e)
}

// drop removes the entry of id, moving the last entry into its place.
func (ix *searchIndex) drop(id string) {
	i, ok := ix.pos[id]
	if !ok {
		return
	}
	ix.vecBytes -= vectorBytes(ix.entries[i].vec)
	last := len(ix.entries) - 1
	if i != last {
		ix.entries[i] = ix.entries[last]
		ix.pos[ix.entries[i].id] = i
	}
	ix.entries[last] = indexEntry{}
	ix.entries = ix.entries[:last]
	delete(ix.pos, id)
}
