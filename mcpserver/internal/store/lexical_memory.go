package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"picard.dev/mcpserver/internal/memory"
)

// lexicalIndex holds the blind index of the database (memory_lexicon and
// memory_terms) in memory, with the visibility metadata of each indexed
// memory, so that BM25 is scored in Go: in SQL each posting cost a few
// microseconds, and a query of common words reads tens of thousands. Each
// process (server replica) holds its own.
//
// On SQLite it is separate from searchIndex, which holds only memories
// with a vector (a memory whose embedding is pending is still found by its
// words), and whose vector scan stays as it is. Both are kept coherent the
// same way (changes.go): triggers append the id of every memory whose row,
// shares, vector (SQLite) or lexicon row is written to memory_changes
// (migrations sqlite/00006 and 00007, postgres/00006; whoever the writer
// is), and before each query the index replays the log past its position,
// re-reading those memories in one read transaction (a snapshot), or loads
// in full on first use and when the log was pruned past its position.
// memory_terms is only ever written together with memory_lexicon (insert,
// replaceIndex, cascades), so the log covers it.
//
// It returns what the SQL path (bm25) returns: every memory holding a query
// term and having a memory_lexicon row (under any indexer: the SQL path
// does not filter on it either), filtered by the same visibility rule, N
// and the average length over all memory_lexicon rows, document
// frequencies over all memory_terms rows, results by score, then id.
// Unlike the SQL path, whose statistics may be up to statsTTL old, every
// number here is exact.
//
// Layout: a memory is a slot; each term hash has a list of postings (slot,
// tf) in ascending slot order. A memory that changes gets a new slot at the
// end and its old slot becomes a tombstone, skipped by scoring, until a
// compaction rewrites the lists, so a delete does not touch the postings of
// every term; a change that leaves its terms as they were (permission,
// shares, tags, expiry, a rewrite of the same text) updates the slot in
// place. Tags are held as numbers (tagIDs), so tag filters are applied
// here too; every write of memory_tags goes with a new version of its
// memory, which the log records.
// Memory: 120 bytes per slot and 24 for its lexHot, its entry in pos, 4
// bytes per tag, and 8 bytes per distinct term of the memory plus the
// lists' growth; measured before tags were held, ~340 bytes per memory of
// 8–31 words (17.6 distinct terms on average) drawn as the benchmarks
// draw them, i.e. 34 MB of heap for 100k memories, which take ~2.5 s to
// load. It is not bounded. A search borrows
// an accumulator of 8 bytes per slot from a pool.
type lexicalIndex struct {
	// mu is held exclusively to change the index and shared to score.
	mu        sync.RWMutex
	refresher refreshGroup
	loaded    bool
	log       changeCursor
	slots     []lexSlot
	hot       []lexHot             // by slot: what scoring reads of every posting's memory
	owners    map[uuid.UUID]uint32 // owner id → its number in lexHot
	tagIDs    map[string]uint32    // tag → its number in lexSlot.tags
	pos       map[uuid.UUID]uint32 // memory id → its live slot
	terms     map[int64]uint32     // term hash → its index in lists
	lists     [][]posting          // postings by term, ascending slot
	docs      int                  // live slots with a memory_lexicon row: BM25's N
	sumLen    int64                // their doc_len summed
	dead      int                  // tombstones since the last compaction
	// compactions, loads and replayed count the compactions, the full
	// loads and the memories re-read by replays, for the tests.
	compactions, loads, replayed int
	scratch                      sync.Pool // *lexScratch
}

// posting is one memory_terms row: the memory's slot and the term's
// frequency in it.
type posting struct {
	slot uint32
	tf   uint32
}

// lexSlot is a memory of the index: what the filters of a search read
// (as searchIndex holds them), its length in terms and its number of
// distinct terms (postings). Scoring reads its copy in lexHot, and only
// the id, shares and an unusual permission from here.
type lexSlot struct {
	id         uuid.UUID
	owner      uuid.UUID
	permission memory.Permission
	expires    int64       // microseconds since the epoch; noExpiry when NULL
	shares     []uuid.UUID // only for shared memories
	tags       []uint32    // numbered by lexicalIndex.tagIDs, ascending
	docLen     uint32
	nTerms     uint32
	live       bool // false: a tombstone
	// lexicon is false for a memory with memory_terms rows but no
	// memory_lexicon row: its postings count in document frequencies but
	// it is never scored, as the SQL path joins memory_lexicon.
	lexicon bool
}

// lexHot is what scoring reads of a slot, packed in 24 bytes apart from
// the rest (lexSlot), so the random accesses of scoring (one per posting)
// touch fewer cache lines: the whole array of 100k slots is 2.4 MB.
type lexHot struct {
	expires int64  // as in lexSlot
	owner   uint32 // the owner's number in lexicalIndex.owners
	docLen  uint32
	perm    permCode
	live    bool
	lexicon bool
}

// permCode numbers the permissions for lexHot; permOther stands for any
// other value, compared as text (lexSlot.permission).
type permCode uint8

const (
	permOther permCode = iota
	permPrivate
	permPublic
	permShared
)

// codeOf returns the code of permission p.
func codeOf(p memory.Permission) permCode {
	switch p {
	case memory.Private:
		return permPrivate
	case memory.Public:
		return permPublic
	case memory.Shared:
		return permShared
	}
	return permOther
}

// lexEntry is a memory as read from the database, before it has a slot.
type lexEntry struct {
	slot   lexSlot
	tags   []string // numbered into slot.tags when the entry is put
	hashes []int64
	tfs    []uint32
}

// lexScratch accumulates the scores of one search: score is indexed by
// slot (0: not touched yet, negative: filtered out), touched lists the
// slots to reset afterwards, so a search allocates nothing per memory.
type lexScratch struct {
	score   []float64
	touched []uint32
}

// compactMin is the fewest tombstones worth a compaction, which also waits
// for a quarter of the slots to be tombstones: the work of rewriting every
// list is then paid for by as many changes.
const compactMin = 256

// newLexicalIndex returns an empty index of a database of dialect, loaded
// on first use.
func newLexicalIndex(dialect string) *lexicalIndex {
	return &lexicalIndex{log: newChangeCursor(dialect),
		pos: map[uuid.UUID]uint32{}, terms: map[int64]uint32{}, owners: map[uuid.UUID]uint32{}, tagIDs: map[string]uint32{}}
}

// search ranks the memories matching q's filters by BM25 of query and
// returns the best limit.
func (lx *lexicalIndex) search(ctx context.Context, s *Memories, q memory.SearchQuery, query docTerms, limit int) ([]memory.Hit, error) {
	if err := lx.refresh(ctx, s); err != nil {
		return nil, fmt.Errorf("lexical search: %w", err)
	}
	lx.mu.RLock()
	defer lx.mu.RUnlock()
	type term struct {
		list   []posting
		weight float64
	}
	ts := make([]term, 0, len(query.hashes))
	docs := float64(lx.docs)
	for i, h := range query.hashes {
		t, ok := lx.terms[h]
		if !ok {
			continue
		}
		list := lx.lists[t]
		n := lx.liveCount(list)
		if n == 0 {
			continue
		}
		// The idf of bm25's caller (lexicalHits), with exact N and n.
		ts = append(ts, term{list: list, weight: bm25IDF(docs, n) * float64(query.tfs[i])})
	}
	if len(ts) == 0 {
		return nil, nil
	}
	avgLen := 0.0
	if lx.docs > 0 {
		avgLen = float64(lx.sumLen) / docs
	}
	// The terms of bm25's SQL, evaluated in the same order.
	c1, c2 := bm25K1*(1-bm25B), bm25K1*bm25B/max(avgLen, 1)
	f := lx.filterOf(q)
	if f.none {
		return nil, nil
	}
	sc := lx.getScratch(len(lx.slots))
	defer lx.putScratch(sc)
	for _, t := range ts {
		for _, p := range t.list {
			acc := &sc.score[p.slot]
			if *acc < 0 {
				continue
			}
			h := &lx.hot[p.slot]
			if *acc == 0 {
				sc.touched = append(sc.touched, p.slot)
				if !lx.visible(p.slot, h, &f) {
					*acc = -1
					continue
				}
			}
			tf := float64(p.tf)
			*acc += t.weight * tf * (bm25K1 + 1) / (tf + c1 + c2*float64(h.docLen))
		}
	}
	top := newHitTop(limit)
	for _, i := range sc.touched {
		// Most rank below the worst kept: rejected before their id is read.
		if score := sc.score[i]; score > 0 && (len(top.heap) < limit || score >= top.heap[0].Score) {
			top.push(score, lx.slots[i].id)
		}
	}
	return top.sorted(), nil
}

// frequencies returns BM25's N and the document frequency of each hash,
// exact, as documentFrequencies and corpusStats count them in SQL.
func (lx *lexicalIndex) frequencies(ctx context.Context, s *Memories, hashes []int64) (float64, map[int64]int, error) {
	if err := lx.refresh(ctx, s); err != nil {
		return 0, nil, fmt.Errorf("lexical search: %w", err)
	}
	lx.mu.RLock()
	defer lx.mu.RUnlock()
	df := make(map[int64]int, len(hashes))
	for _, h := range hashes {
		if t, ok := lx.terms[h]; ok {
			df[h] = lx.liveCount(lx.lists[t])
		}
	}
	return float64(lx.docs), df, nil
}

// liveCount is the number of live postings in list: its length unless
// there are tombstones.
func (lx *lexicalIndex) liveCount(list []posting) int {
	if lx.dead == 0 {
		return len(list)
	}
	n := 0
	for _, p := range list {
		if lx.hot[p.slot].live {
			n++
		}
	}
	return n
}

// lexFilter is a query's filters in the terms of lexHot.
type lexFilter struct {
	q      memory.SearchQuery
	now    int64  // microseconds since the epoch
	viewer uint32 // noOwner when the viewer owns no slot
	owner  uint32 // q.Owner's number, or noOwner; only when byOwner
	perm   permCode
	// tags are q.Tags' numbers; none is true when one of them is on no
	// memory of the index, so that nothing matches.
	tags []uint32
	none bool
	// byOwner and byPerm say whether q filters by owner and permission.
	byOwner, byPerm bool
}

// noOwner is the number of an owner no slot has.
const noOwner = math.MaxUint32

// filterOf returns the filters of q, its users numbered as in lexHot.
func (lx *lexicalIndex) filterOf(q memory.SearchQuery) lexFilter {
	f := lexFilter{q: q, now: q.Now.UnixMicro(), viewer: noOwner, owner: noOwner,
		byOwner: q.Owner != uuid.Nil, byPerm: q.Permission != "", perm: codeOf(q.Permission)}
	if n, ok := lx.owners[q.Viewer]; ok {
		f.viewer = n
	}
	if n, ok := lx.owners[q.Owner]; ok {
		f.owner = n
	}
	for _, t := range q.Tags {
		n, ok := lx.tagIDs[t]
		if !ok {
			f.none = true
		}
		f.tags = append(f.tags, n)
	}
	return f
}

// visible applies the filters of the SQL path (visibleTo, q.Owner,
// q.Permission, q.Tags) to the memory of slot, whose lexHot is h.
func (lx *lexicalIndex) visible(slot uint32, h *lexHot, f *lexFilter) bool {
	switch {
	case !h.live, !h.lexicon, h.expires <= f.now,
		f.byOwner && h.owner != f.owner,
		f.byPerm && (h.perm != f.perm || f.perm == permOther && lx.slots[slot].permission != f.q.Permission),
		len(f.tags) > 0 && !holdsTags(lx.slots[slot].tags, f.tags):
		return false
	case h.owner == f.viewer:
		return true
	case h.perm == permPublic:
		return true
	case h.perm == permShared:
		return slices.Contains(lx.slots[slot].shares, f.q.Viewer)
	}
	return false
}

// holdsTags reports whether have (ascending) holds every tag of want.
func holdsTags(have, want []uint32) bool {
	for _, t := range want {
		if _, ok := slices.BinarySearch(have, t); !ok {
			return false
		}
	}
	return true
}

// numberTags returns the numbers of tags, ascending, numbering new ones.
// Numbers are never reused: tags are few, and a load starts afresh.
func (lx *lexicalIndex) numberTags(tags []string) []uint32 {
	if len(tags) == 0 {
		return nil
	}
	out := make([]uint32, len(tags))
	for i, t := range tags {
		n, ok := lx.tagIDs[t]
		if !ok {
			n = uint32(len(lx.tagIDs)) // #nosec G115 -- distinct tags, far below 2^32
			lx.tagIDs[t] = n
		}
		out[i] = n
	}
	slices.Sort(out)
	return out
}

// getScratch returns an accumulator for n slots, all zero.
func (lx *lexicalIndex) getScratch(n int) *lexScratch {
	sc, _ := lx.scratch.Get().(*lexScratch)
	if sc == nil {
		sc = &lexScratch{}
	}
	if cap(sc.score) < n {
		sc.score = make([]float64, n)
	}
	sc.score = sc.score[:n]
	return sc
}

// putScratch zeroes the touched scores of sc and keeps it for reuse.
func (lx *lexicalIndex) putScratch(sc *lexScratch) {
	for _, i := range sc.touched {
		sc.score[i] = 0
	}
	sc.touched = sc.touched[:0]
	lx.scratch.Put(sc)
}

// refresh brings the index up to the database: a full load the first time
// or after a gap in the log, otherwise a replay of the log past its
// position; each in one read transaction, so what it reads of a memory
// (metadata, length, terms) and of the log is one snapshot. It prunes the
// log as searchIndex does, for when only lexical searches run (on
// Postgres, always: there is no search index). Concurrent searches share
// refreshes (refreshGroup).
func (lx *lexicalIndex) refresh(ctx context.Context, s *Memories) error {
	return lx.refresher.do(ctx, func(ctx context.Context) error { return lx.refreshNow(ctx, s) })
}

// refreshNow is refresh for one search.
func (lx *lexicalIndex) refreshNow(ctx context.Context, s *Memories) error {
	lx.mu.Lock()
	defer lx.mu.Unlock()
	err := s.db.gorm.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if !lx.loaded {
			return lx.load(tx)
		}
		return lx.replay(tx)
	}, lx.log.txOptions())
	if err != nil {
		// A load or replay cut short leaves the index incomplete.
		lx.loaded = false
		return unavailable(err)
	}
	if lx.dead >= compactMin && lx.dead*4 >= len(lx.slots) {
		lx.compact()
	}
	if lx.log.pruneDue() {
		if err := lx.log.prune(ctx, s.db, pruneKeep); err != nil {
			s.db.log.Warn("lexical index: pruning memory_changes failed", "err", err)
		}
	}
	return nil
}

// replay re-reads the memories logged past the position, or loads in full
// when the log was pruned past it or the replay would be long.
func (lx *lexicalIndex) replay(tx *gorm.DB) error {
	b, err := lx.log.next(tx)
	if err != nil {
		return err
	}
	if b.full {
		return lx.load(tx)
	}
	if len(b.ids) > 0 {
		fresh, order, err := readLexEntries(tx, "WHERE m.id"+b.in, b.args...)
		if err != nil {
			return err
		}
		if err := readLexTerms(tx, "WHERE memory_id"+b.in+" ORDER BY memory_id, term_hash", b.args,
			func(h int64, id uuid.UUID, tf uint32) {
				if i, ok := order[id]; ok {
					fresh[i].hashes = append(fresh[i].hashes, h)
					fresh[i].tfs = append(fresh[i].tfs, tf)
				}
			}); err != nil {
			return err
		}
		for _, id := range b.ids {
			if i, ok := order[id]; ok {
				lx.put(&fresh[i])
			} else {
				lx.drop(id)
			}
		}
		lx.replayed += len(b.ids)
	}
	lx.log.advance(b)
	return nil
}

// load reads the whole index, with the log position of the same snapshot.
func (lx *lexicalIndex) load(tx *gorm.DB) error {
	if err := lx.log.loaded(tx); err != nil {
		return err
	}
	entries, _, err := readLexEntries(tx, "")
	if err != nil {
		return err
	}
	lx.pos = make(map[uuid.UUID]uint32, len(entries))
	lx.terms = map[int64]uint32{}
	lx.slots = make([]lexSlot, 0, len(entries))
	lx.hot = make([]lexHot, 0, len(entries))
	lx.owners = map[uuid.UUID]uint32{}
	lx.tagIDs = map[string]uint32{}
	lx.lists = nil
	lx.docs, lx.sumLen, lx.dead = 0, 0, 0
	lx.loaded = true
	lx.loads++
	// The slots are in id order and the terms come by (term_hash,
	// memory_id), so each list is built in ascending slot order.
	for i := range entries {
		entries[i].slot.tags = lx.numberTags(entries[i].tags)
		lx.addSlot(entries[i].slot)
	}
	return readLexTerms(tx, "ORDER BY term_hash, memory_id", nil, func(h int64, id uuid.UUID, tf uint32) {
		if slot, ok := lx.pos[id]; ok {
			lx.addPosting(h, posting{slot: slot, tf: tf})
			lx.slots[slot].nTerms++
		}
	})
}

// readLexEntries reads the memories selected by where (over memories m)
// that have a memory_lexicon row or memory_terms rows, in id order, with
// where's arguments; order maps their ids to their index in entries.
func readLexEntries(tx *gorm.DB, where string, args ...any) (entries []lexEntry, order map[uuid.UUID]int, err error) {
	and := " WHERE "
	if where != "" {
		and = " AND "
	}
	rows, err := tx.Raw("SELECT m.id, m.owner_id, m.permission, m.expires_at, "+
		"CASE WHEN m.permission = 'shared' THEN (SELECT "+idList(tx.Dialector.Name(), "s.user_id")+" FROM memory_shares s WHERE s.memory_id = m.id) END, "+
		"(SELECT "+jsonList(tx.Dialector.Name(), "t.tag")+" FROM memory_tags t WHERE t.memory_id = m.id), "+
		"l.doc_len FROM memories m LEFT JOIN memory_lexicon l ON l.memory_id = m.id "+where+and+
		"(l.memory_id IS NOT NULL OR EXISTS (SELECT 1 FROM memory_terms t WHERE t.memory_id = m.id)) ORDER BY m.id", args...).Rows()
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	order = map[uuid.UUID]int{}
	for rows.Next() {
		var (
			sl              lexSlot
			id, owner, perm string
			expires         sqlTime
			docLen          *int64
			shares, tags    *string
		)
		if err := rows.Scan(&id, &owner, &perm, &expires, &shares, &tags, &docLen); err != nil {
			return nil, nil, err
		}
		if sl.id, err = uuid.Parse(id); err != nil {
			return nil, nil, fmt.Errorf("memory id %q: %w", id, err)
		}
		if sl.owner, err = uuid.Parse(owner); err != nil {
			return nil, nil, fmt.Errorf("memory %s: owner %q: %w", id, owner, err)
		}
		sl.permission = internPermission(perm)
		sl.expires = noExpiry
		if expires.Valid {
			sl.expires = expires.Time.UnixMicro()
		}
		if shares != nil && *shares != "" {
			for u := range strings.SplitSeq(*shares, ",") {
				share, err := uuid.Parse(u)
				if err != nil {
					return nil, nil, fmt.Errorf("memory %s: share %q: %w", id, u, err)
				}
				sl.shares = append(sl.shares, share)
			}
		}
		if docLen != nil {
			if *docLen > math.MaxUint32 {
				return nil, nil, fmt.Errorf("memory %s: doc_len %d out of range", id, *docLen)
			}
			sl.docLen, sl.lexicon = uint32(*docLen), true // #nosec G115 -- checked just above; doc_len >= 0 by the schema
		}
		var e lexEntry
		// Tags may hold any character: they come as a JSON array.
		if tags != nil {
			if err := json.Unmarshal([]byte(*tags), &e.tags); err != nil {
				return nil, nil, fmt.Errorf("memory %s: tags: %w", id, err)
			}
		}
		sl.live = true
		e.slot = sl
		order[sl.id] = len(entries)
		entries = append(entries, e)
	}
	return entries, order, rows.Err()
}

// idList is the aggregate that joins the ids of col, in a database of
// dialect, with commas.
func idList(dialect, col string) string {
	if dialect == DialectPostgres {
		return "string_agg(" + col + "::text, ',')"
	}
	return "group_concat(" + col + ")"
}

// jsonList is the aggregate that makes a JSON array of the values of col,
// in a database of dialect (NULL or [] for none).
func jsonList(dialect, col string) string {
	if dialect == DialectPostgres {
		return "json_agg(" + col + ")::text"
	}
	return "json_group_array(" + col + ")"
}

// readLexTerms calls fn with each memory_terms row selected by tail (a
// WHERE and ORDER BY clause) with args.
func readLexTerms(tx *gorm.DB, tail string, args []any, fn func(h int64, id uuid.UUID, tf uint32)) error {
	rows, err := tx.Raw("SELECT term_hash, memory_id, tf FROM memory_terms "+tail, args...).Rows()
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		h, tf int64
		raw   sql.RawBytes
	)
	for rows.Next() {
		if err := rows.Scan(&h, &raw, &tf); err != nil {
			return err
		}
		id, err := uuid.ParseBytes(raw)
		if err != nil {
			return fmt.Errorf("memory_terms: memory id %q: %w", raw, err)
		}
		if tf <= 0 || tf > math.MaxUint32 {
			return fmt.Errorf("memory_terms: memory %s: tf %d out of range", id, tf)
		}
		fn(h, id, uint32(tf)) // #nosec G115 -- checked just above
	}
	return rows.Err()
}

// internPermission returns the permission named p, sharing the constant's
// string for the known ones.
func internPermission(p string) memory.Permission {
	for _, known := range []memory.Permission{memory.Private, memory.Public, memory.Shared} {
		if p == string(known) {
			return known
		}
	}
	return memory.Permission(p)
}

// put makes e the memory's entry: in place when its terms and length are
// those of its live slot, else in a new slot, the old one a tombstone.
func (lx *lexicalIndex) put(e *lexEntry) {
	if slot, ok := lx.pos[e.slot.id]; ok && lx.sameTerms(slot, e) {
		sl := &lx.slots[slot]
		sl.owner, sl.permission, sl.expires, sl.shares = e.slot.owner, e.slot.permission, e.slot.expires, e.slot.shares
		sl.tags = lx.numberTags(e.tags)
		lx.hot[slot] = lx.hotOf(sl)
		return
	}
	lx.drop(e.slot.id)
	sl := e.slot
	sl.tags = lx.numberTags(e.tags)
	sl.nTerms = uint32(len(e.hashes)) // #nosec G115 -- the distinct terms of one memory
	slot := lx.addSlot(sl)
	for i, h := range e.hashes {
		lx.addPosting(h, posting{slot: slot, tf: e.tfs[i]})
	}
}

// sameTerms reports whether slot holds exactly e's lexicon row and terms:
// its postings are found by binary search, lists being in slot order.
func (lx *lexicalIndex) sameTerms(slot uint32, e *lexEntry) bool {
	sl := &lx.slots[slot]
	if sl.lexicon != e.slot.lexicon || sl.docLen != e.slot.docLen || int(sl.nTerms) != len(e.hashes) {
		return false
	}
	for i, h := range e.hashes {
		t, ok := lx.terms[h]
		if !ok {
			return false
		}
		list := lx.lists[t]
		j, found := slices.BinarySearchFunc(list, slot, func(p posting, s uint32) int {
			switch {
			case p.slot < s:
				return -1
			case p.slot > s:
				return 1
			}
			return 0
		})
		if !found || list[j].tf != e.tfs[i] {
			return false
		}
	}
	// As many distinct terms, each of e's found: the same set.
	return true
}

// addSlot appends sl, live, and returns its slot.
func (lx *lexicalIndex) addSlot(sl lexSlot) uint32 {
	slot := uint32(len(lx.slots)) // #nosec G115 -- compaction keeps the slots near the number of indexed memories, far below 2^32
	lx.slots = append(lx.slots, sl)
	lx.hot = append(lx.hot, lx.hotOf(&sl))
	lx.pos[sl.id] = slot
	if sl.lexicon {
		lx.docs++
		lx.sumLen += int64(sl.docLen)
	}
	return slot
}

// hotOf returns the lexHot of sl, numbering its owner if new.
func (lx *lexicalIndex) hotOf(sl *lexSlot) lexHot {
	n, ok := lx.owners[sl.owner]
	if !ok {
		n = uint32(len(lx.owners)) // #nosec G115 -- owners are accounts, far below 2^32 - 1 (noOwner)
		lx.owners[sl.owner] = n
	}
	return lexHot{expires: sl.expires, owner: n, docLen: sl.docLen, perm: codeOf(sl.permission), live: sl.live, lexicon: sl.lexicon}
}

// addPosting appends p to the list of term h.
func (lx *lexicalIndex) addPosting(h int64, p posting) {
	t, ok := lx.terms[h]
	if !ok {
		t = uint32(len(lx.lists)) // #nosec G115 -- distinct terms of the corpus, far below 2^32
		lx.terms[h] = t
		lx.lists = append(lx.lists, nil)
	}
	lx.lists[t] = append(lx.lists[t], p)
}

// drop makes the slot of id a tombstone, if it has one.
func (lx *lexicalIndex) drop(id uuid.UUID) {
	slot, ok := lx.pos[id]
	if !ok {
		return
	}
	delete(lx.pos, id)
	sl := &lx.slots[slot]
	if sl.lexicon {
		lx.docs--
		lx.sumLen -= int64(sl.docLen)
	}
	*sl = lexSlot{}
	lx.hot[slot] = lexHot{}
	lx.dead++
}

// compact drops the tombstones: live slots are renumbered in their order,
// so every list stays in ascending slot order, and empty lists go.
func (lx *lexicalIndex) compact() {
	renum := make([]uint32, len(lx.slots))
	live := lx.slots[:0]
	for i, sl := range lx.slots {
		if !sl.live {
			renum[i] = math.MaxUint32
			continue
		}
		renum[i] = uint32(len(live)) // #nosec G115 -- fewer than the slots, themselves uint32
		lx.pos[sl.id] = renum[i]
		lx.hot[len(live)] = lx.hot[i]
		live = append(live, sl)
	}
	clear(lx.slots[len(live):])
	lx.slots = live
	lx.hot = lx.hot[:len(live)]
	lists := make([][]posting, 0, len(lx.terms))
	for h, t := range lx.terms {
		list := lx.lists[t][:0]
		for _, p := range lx.lists[t] {
			if s := renum[p.slot]; s != math.MaxUint32 {
				list = append(list, posting{slot: s, tf: p.tf})
			}
		}
		if len(list) == 0 {
			delete(lx.terms, h)
			continue
		}
		lx.terms[h] = uint32(len(lists)) // #nosec G115 -- distinct terms of the corpus, far below 2^32
		lists = append(lists, list)
	}
	lx.lists = lists
	lx.dead = 0
	lx.compactions++
}
