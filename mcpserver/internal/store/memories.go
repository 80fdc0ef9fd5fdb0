package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"picard.dev/mcpserver/internal/memory"
)

// Memories is the memory.Store of a DB, with the maintenance the CLI needs
// (RotateKeys, Reembed, PendingEmbeddings, Reindex, PendingIndex).
type Memories struct{ db *DB }

var _ memory.Store = (*Memories)(nil)

// Memories returns the memory store of db.
func (db *DB) Memories() *Memories { return &Memories{db: db} }

// memoryCols are the columns scanned by memoryRow, for a table aliased m.
const memoryCols = "m.id, m.owner_id, m.ciphertext, m.key_id, m.permission, m.metadata, m.expires_at, m.created_at, m.updated_at, m.version"

type memoryRow struct {
	id, owner  uuid.UUID
	ciphertext string
	keyID      string
	permission string
	metadata   []byte
	expires    sqlTime
	created    sqlTime
	updated    sqlTime
	version    int64
}

func (r *memoryRow) dest() []any {
	return []any{&r.id, &r.owner, &r.ciphertext, &r.keyID, &r.permission, &r.metadata,
		&r.expires, &r.created, &r.updated, &r.version}
}

// sealed is a memory prepared for writing: text sealed, metadata encoded.
type sealed struct {
	token    string
	keyID    string
	metadata string
}

func (s *Memories) seal(m *memory.Memory) (sealed, error) {
	tok, kid, err := s.db.sealer.Seal([]byte(m.Text))
	if err != nil {
		return sealed{}, fmt.Errorf("seal memory %s: %w", m.ID, err)
	}
	md := m.Metadata
	if md == nil {
		md = map[string]any{}
	}
	b, err := json.Marshal(md)
	if err != nil {
		return sealed{}, fmt.Errorf("encode metadata of memory %s: %w", m.ID, err)
	}
	return sealed{token: string(tok), keyID: kid, metadata: string(b)}, nil
}

// embeddingArg binds vector values in the representation of the dialect.
func (db *DB) embeddingArg(vals []float32) any {
	if db.dialect == DialectSQLite {
		return encodeVector(vals)
	}
	return pgVector(vals)
}

// Insert stores all memories with their vectors in one transaction, or none.
func (s *Memories) Insert(ctx context.Context, ms []*memory.Memory, vecs []memory.Vector) error {
	if len(ms) == 0 {
		return nil
	}
	// Sealing is CPU work; do it before taking the write lock.
	var mem, tags, shares, embs [][]any
	for i, m := range ms {
		sl, err := s.seal(m)
		if err != nil {
			return err
		}
		mem = append(mem, []any{m.ID, m.OwnerID, sl.token, sl.keyID, string(m.Permission), sl.metadata,
			s.db.atPtr(m.ExpiresAt), s.db.at(m.CreatedAt), s.db.at(m.UpdatedAt), m.Version})
		for p, t := range m.Tags {
			tags = append(tags, []any{m.ID, p, t})
		}
		for _, u := range m.SharedWith {
			shares = append(shares, []any{m.ID, u})
		}
		if i < len(vecs) && vecs[i].Embedder != "" && len(vecs[i].Values) > 0 {
			v := vecs[i]
			embs = append(embs, []any{m.ID, v.Embedder, len(v.Values), s.db.embeddingArg(v.Values)})
		}
	}
	lex := s.indexRows(ms)
	return s.db.tx(ctx, func(tx *gorm.DB) error {
		if err := insertRows(tx, "memories", []string{"id", "owner_id", "ciphertext", "key_id", "permission",
			"metadata", "expires_at", "created_at", "updated_at", "version"}, mem); err != nil {
			return err
		}
		if lex != nil {
			if err := lex.insert(tx); err != nil {
				return err
			}
		}
		if err := insertRows(tx, "memory_tags", []string{"memory_id", "position", "tag"}, tags); err != nil {
			return err
		}
		if err := insertRows(tx, "memory_shares", []string{"memory_id", "user_id"}, shares); err != nil {
			return err
		}
		return insertRows(tx, "memory_embeddings", []string{"memory_id", "embedder", "dim", "embedding"}, embs)
	})
}

// Get returns a memory by id regardless of visibility.
func (s *Memories) Get(ctx context.Context, id uuid.UUID) (*memory.Memory, error) {
	ms, err := s.load(s.db.session(ctx), "SELECT "+memoryCols+" FROM memories m WHERE m.id = ?", id)
	if err != nil {
		return nil, err
	}
	if len(ms) == 0 {
		return nil, memory.ErrNotFound
	}
	return ms[0], nil
}

// byIDs loads memories by id, in the order of ids; missing ones are left out.
func (s *Memories) byIDs(ctx context.Context, ids []uuid.UUID) ([]*memory.Memory, error) {
	found := make(map[uuid.UUID]*memory.Memory, len(ids))
	for chunk := range slices.Chunk(ids, 500) {
		ms, err := s.load(s.db.session(ctx), "SELECT "+memoryCols+" FROM memories m WHERE m.id IN ?", chunk)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			found[m.ID] = m
		}
	}
	out := make([]*memory.Memory, 0, len(ids))
	for _, id := range ids {
		if m, ok := found[id]; ok {
			out = append(out, m)
		}
	}
	return out, nil
}

// load runs a query selecting memoryCols and returns the memories in row
// order, decrypted, with their tags and shares.
func (s *Memories) load(q *gorm.DB, query string, args ...any) ([]*memory.Memory, error) {
	rows, err := q.Raw(query, args...).Rows()
	if err != nil {
		return nil, fmt.Errorf("query memories: %w", err)
	}
	defer rows.Close()
	var ms []*memory.Memory
	for rows.Next() {
		var r memoryRow
		if err := rows.Scan(r.dest()...); err != nil {
			return nil, fmt.Errorf("scan memory: %w", err)
		}
		m, err := s.fromRow(&r)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query memories: %w", unavailable(err))
	}
	rows.Close()
	if err := s.attach(q, ms); err != nil {
		return nil, unavailable(err)
	}
	return ms, nil
}

func (s *Memories) fromRow(r *memoryRow) (*memory.Memory, error) {
	text, err := s.db.sealer.Open([]byte(r.ciphertext))
	if err != nil {
		return nil, fmt.Errorf("open memory %s (sealed with key %s): %w", r.id, r.keyID, err)
	}
	md := map[string]any{}
	if err := json.Unmarshal(r.metadata, &md); err != nil {
		return nil, fmt.Errorf("decode metadata of memory %s: %w", r.id, err)
	}
	return &memory.Memory{
		ID:         r.id,
		OwnerID:    r.owner,
		Text:       string(text),
		Permission: memory.Permission(r.permission),
		SharedWith: []uuid.UUID{},
		Tags:       []string{},
		Metadata:   md,
		ExpiresAt:  r.expires.ptr(),
		CreatedAt:  r.created.Time,
		UpdatedAt:  r.updated.Time,
		Version:    r.version,
	}, nil
}

// attach loads the tags (in their stored order) and shares (sorted) of ms.
func (s *Memories) attach(q *gorm.DB, ms []*memory.Memory) error {
	if len(ms) == 0 {
		return nil
	}
	byID := make(map[uuid.UUID]*memory.Memory, len(ms))
	ids := make([]uuid.UUID, 0, len(ms))
	for _, m := range ms {
		byID[m.ID] = m
		ids = append(ids, m.ID)
	}
	for chunk := range slices.Chunk(ids, 500) {
		err := scanPairs(q, "SELECT memory_id, tag FROM memory_tags WHERE memory_id IN ? ORDER BY memory_id, position", chunk,
			func(id uuid.UUID, tag string) { byID[id].Tags = append(byID[id].Tags, tag) })
		if err != nil {
			return fmt.Errorf("load tags: %w", err)
		}
		err = scanPairs(q, "SELECT memory_id, user_id FROM memory_shares WHERE memory_id IN ? ORDER BY memory_id, user_id", chunk,
			func(id uuid.UUID, user uuid.UUID) { byID[id].SharedWith = append(byID[id].SharedWith, user) })
		if err != nil {
			return fmt.Errorf("load shares: %w", err)
		}
	}
	return nil
}

// scanPairs runs a query of (memory id, value) rows for ids and hands each
// row to add.
func scanPairs[V any](q *gorm.DB, query string, ids []uuid.UUID, add func(uuid.UUID, V)) error {
	rows, err := q.Raw(query, ids).Rows()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id uuid.UUID
			v  V
		)
		if err := rows.Scan(&id, &v); err != nil {
			return err
		}
		add(id, v)
	}
	return rows.Err()
}

// Update writes m if the stored version still equals m.Version, replacing
// its tags and shares and, when vec is not nil, its vector (a zero Vector
// removes it). It increments m.Version on success and returns
// memory.ErrConflict when another write came first.
func (s *Memories) Update(ctx context.Context, m *memory.Memory, vec *memory.Vector) error {
	sl, err := s.seal(m)
	if err != nil {
		return err
	}
	// The terms are rewritten on every update rather than only when the
	// text changed: the store cannot tell, and it costs a few rows.
	lex := s.indexRows([]*memory.Memory{m})
	err = s.db.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Exec(`UPDATE memories SET ciphertext = ?, key_id = ?, permission = ?, metadata = ?, expires_at = ?,
			updated_at = ?, version = version + 1 WHERE id = ? AND version = ?`,
			sl.token, sl.keyID, string(m.Permission), sl.metadata, s.db.atPtr(m.ExpiresAt), s.db.at(m.UpdatedAt), m.ID, m.Version)
		if res.Error != nil {
			return fmt.Errorf("update memory: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			var n int64
			if err := tx.Raw("SELECT count(*) FROM memories WHERE id = ?", m.ID).Scan(&n).Error; err != nil {
				return fmt.Errorf("update memory: %w", err)
			}
			if n == 0 {
				return memory.ErrNotFound
			}
			return fmt.Errorf("memory %s changed since it was read: %w", m.ID, memory.ErrConflict)
		}
		if err := tx.Exec("DELETE FROM memory_tags WHERE memory_id = ?", m.ID).Error; err != nil {
			return fmt.Errorf("update tags: %w", err)
		}
		tags := make([][]any, len(m.Tags))
		for p, t := range m.Tags {
			tags[p] = []any{m.ID, p, t}
		}
		if err := insertRows(tx, "memory_tags", []string{"memory_id", "position", "tag"}, tags); err != nil {
			return err
		}
		if err := tx.Exec("DELETE FROM memory_shares WHERE memory_id = ?", m.ID).Error; err != nil {
			return fmt.Errorf("update shares: %w", err)
		}
		shares := make([][]any, len(m.SharedWith))
		for i, u := range m.SharedWith {
			shares[i] = []any{m.ID, u}
		}
		if err := insertRows(tx, "memory_shares", []string{"memory_id", "user_id"}, shares); err != nil {
			return err
		}
		if err := replaceIndex(tx, lex); err != nil {
			return err
		}
		if vec == nil {
			return nil
		}
		if vec.Embedder == "" || len(vec.Values) == 0 {
			return tx.Exec("DELETE FROM memory_embeddings WHERE memory_id = ?", m.ID).Error
		}
		return upsertEmbedding(tx, s.db, m.ID, *vec)
	})
	if err != nil {
		return err
	}
	m.Version++
	return nil
}

func upsertEmbedding(tx *gorm.DB, db *DB, id uuid.UUID, v memory.Vector) error {
	err := tx.Exec(`INSERT INTO memory_embeddings (memory_id, embedder, dim, embedding) VALUES (?, ?, ?, ?)
		ON CONFLICT (memory_id) DO UPDATE SET embedder = excluded.embedder, dim = excluded.dim, embedding = excluded.embedding`,
		id, v.Embedder, len(v.Values), db.embeddingArg(v.Values)).Error
	if err != nil {
		return fmt.Errorf("store vector of memory %s: %w", id, err)
	}
	return nil
}

// Delete removes the memories with these ids owned by owner, all of them or
// none (and memory.ErrNotFound) when any is missing or someone else's.
func (s *Memories) Delete(ctx context.Context, owner uuid.UUID, ids []uuid.UUID) (int, error) {
	uniq := slices.Clone(ids)
	slices.SortFunc(uniq, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	uniq = slices.Compact(uniq)
	if len(uniq) == 0 {
		return 0, nil
	}
	err := s.db.tx(ctx, func(tx *gorm.DB) error {
		var n int64
		for chunk := range slices.Chunk(uniq, 1000) {
			res := tx.Exec("DELETE FROM memories WHERE owner_id = ? AND id IN ?", owner, chunk)
			if res.Error != nil {
				return fmt.Errorf("delete memories: %w", res.Error)
			}
			n += res.RowsAffected
		}
		if n != int64(len(uniq)) {
			return memory.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if s.db.index != nil {
		s.db.index.changed.Add(int64(len(uniq)))
	}
	return len(uniq), nil
}

// live is the condition "not expired at now" for a memory aliased m.
func (db *DB) live(c *conds, now time.Time) {
	c.add("(m.expires_at IS NULL OR m.expires_at > ?)", db.at(now))
}

// visibleTo adds the visibility rule of memory.Visible for viewer, as SQL
// over a memory aliased m: the owner sees their own (expired ones only with
// includeExpired); anyone sees unexpired public memories and unexpired
// shared ones with a share row for them. When the query already fixes the
// owner, the rule is specialised so the owner indexes apply.
func (db *DB) visibleTo(c *conds, viewer, owner uuid.UUID, now time.Time, includeExpired bool) {
	others := "(m.expires_at IS NULL OR m.expires_at > ?) AND (m.permission = 'public' OR (m.permission = 'shared' AND " +
		"EXISTS (SELECT 1 FROM memory_shares s WHERE s.memory_id = m.id AND s.user_id = ?)))"
	switch {
	case owner != uuid.Nil && owner == viewer:
		c.add("m.owner_id = ?", owner)
		if !includeExpired {
			db.live(c, now)
		}
	case owner != uuid.Nil:
		c.add("m.owner_id = ?", owner)
		c.add(others, db.at(now), viewer)
	case includeExpired:
		c.add("(m.owner_id = ? OR ("+others+"))", viewer, db.at(now), viewer)
	default:
		c.add("((m.owner_id = ? AND (m.expires_at IS NULL OR m.expires_at > ?)) OR ("+others+"))",
			viewer, db.at(now), db.at(now), viewer)
	}
}

// hasTags adds "carries every one of tags".
func hasTags(c *conds, tags []string) {
	for _, t := range tags {
		c.add("EXISTS (SELECT 1 FROM memory_tags t WHERE t.memory_id = m.id AND t.tag = ?)", t)
	}
}

// metadataEquals adds, for each key, "the metadata has this key with this
// scalar value", comparing numbers as numbers and never a string with a
// number or a boolean.
func (db *DB) metadataEquals(c *conds, md map[string]any) error {
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v, err := scalar(md[k])
		if err != nil {
			return memory.Invalidf("metadata."+k, "%v", err)
		}
		if db.dialect == DialectPostgres {
			b, err := json.Marshal(v)
			if err != nil {
				return memory.Invalidf("metadata."+k, "%v", err)
			}
			// jsonb equality compares numbers numerically and never
			// equates values of different JSON types.
			c.add("(m.metadata -> ?) = ?::jsonb", k, string(b))
			continue
		}
		each := "EXISTS (SELECT 1 FROM json_each(m.metadata) j WHERE j.key = ? AND "
		switch v := v.(type) {
		case string:
			c.add(each+"j.type = 'text' AND j.atom = ?)", k, v)
		case bool:
			if v {
				c.add(each+"j.type = 'true')", k)
			} else {
				c.add(each+"j.type = 'false')", k)
			}
		case float64:
			c.add(each+"j.type IN ('integer', 'real') AND j.atom = ?)", k, v)
		}
	}
	return nil
}

// scalar normalises a metadata filter value to string, bool or float64.
func scalar(v any) (any, error) {
	switch v := v.(type) {
	case string, bool, float64:
		return v, nil
	case int:
		return float64(v), nil
	case int64:
		return float64(v), nil
	case float32:
		return float64(v), nil
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", v.String())
		}
		return f, nil
	default:
		return nil, fmt.Errorf("must be a string, number or boolean, not %T", v)
	}
}

// List returns one page of the memories matching q, with keyset pagination
// on (sort value, id): it fetches one row more than the page to know
// whether another page follows.
func (s *Memories) List(ctx context.Context, q memory.ListQuery) (memory.Page, error) {
	if q.Limit <= 0 {
		q.Limit = memory.DefaultListLimit
	}
	if q.Sort == "" {
		q.Sort = memory.SortCreated
	}
	if q.Order == "" {
		q.Order = memory.Desc
	}
	if q.Now.IsZero() {
		q.Now = time.Now()
	}
	var col string
	switch q.Sort {
	case memory.SortCreated:
		col = "m.created_at"
	case memory.SortUpdated:
		col = "m.updated_at"
	default:
		return memory.Page{}, memory.Invalidf("sort", "unknown sort %q", q.Sort)
	}
	dir, cmp := "DESC", "<"
	if q.Order == memory.Asc {
		dir, cmp = "ASC", ">"
	}
	var c conds
	s.db.visibleTo(&c, q.Viewer, q.Owner, q.Now, q.IncludeExpired)
	if q.Permission != "" {
		c.add("m.permission = ?", string(q.Permission))
	}
	hasTags(&c, q.Tags)
	if err := s.db.metadataEquals(&c, q.Metadata); err != nil {
		return memory.Page{}, err
	}
	if q.CreatedAfter != nil {
		c.add("m.created_at > ?", s.db.at(*q.CreatedAfter))
	}
	if q.CreatedBefore != nil {
		c.add("m.created_at < ?", s.db.at(*q.CreatedBefore))
	}
	if q.After != nil {
		c.add("("+col+", m.id) "+cmp+" (?, ?)", s.db.at(q.After.At), q.After.ID)
	}
	query := "SELECT " + memoryCols + " FROM memories m WHERE " + c.String() +
		" ORDER BY " + col + " " + dir + ", m.id " + dir + " LIMIT ?"
	ms, err := s.load(s.db.session(ctx), query, append(c.args, q.Limit+1)...)
	if err != nil {
		return memory.Page{}, err
	}
	page := memory.Page{Memories: ms}
	if len(ms) > q.Limit {
		page.Memories = ms[:q.Limit]
		last := page.Memories[q.Limit-1]
		at := last.CreatedAt
		if q.Sort == memory.SortUpdated {
			at = last.UpdatedAt
		}
		page.Next = &memory.Cursor{Sort: q.Sort, Order: q.Order, At: at, ID: last.ID}
	}
	if page.Memories == nil {
		page.Memories = []*memory.Memory{}
	}
	return page, nil
}

// Personas lists users with at least one unexpired public memory, ordered
// by user id after the given one, with the number of such memories.
func (s *Memories) Personas(ctx context.Context, after uuid.UUID, limit int, now time.Time) ([]memory.Persona, error) {
	if limit <= 0 {
		limit = memory.DefaultListLimit
	}
	rows, err := s.db.session(ctx).Raw(`SELECT u.id, u.name, count(*) FROM memories m JOIN users u ON u.id = m.owner_id
		WHERE m.permission = 'public' AND (m.expires_at IS NULL OR m.expires_at > ?) AND u.id > ?
		GROUP BY u.id, u.name ORDER BY u.id LIMIT ?`, s.db.at(now), after, limit).Rows()
	if err != nil {
		return nil, fmt.Errorf("list personas: %w", err)
	}
	defer rows.Close()
	out := []memory.Persona{}
	for rows.Next() {
		var p memory.Persona
		if err := rows.Scan(&p.UserID, &p.Name, &p.PublicMemories); err != nil {
			return nil, fmt.Errorf("scan persona: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list personas: %w", err)
	}
	return out, nil
}

// Stats counts memories by permission, expired ones, and distinct owners.
func (s *Memories) Stats(ctx context.Context, now time.Time) (memory.Stats, error) {
	st := memory.Stats{ByPermission: map[memory.Permission]int{}}
	q := s.db.session(ctx)
	rows, err := q.Raw("SELECT permission, count(*) FROM memories GROUP BY permission").Rows()
	if err != nil {
		return st, fmt.Errorf("memory stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p string
		var n int
		if err := rows.Scan(&p, &n); err != nil {
			return st, fmt.Errorf("memory stats: %w", err)
		}
		st.ByPermission[memory.Permission(p)] = n
		st.Memories += n
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("memory stats: %w", err)
	}
	rows.Close()
	var counts struct{ Expired, Owners int }
	err = q.Raw(`SELECT (SELECT count(*) FROM memories WHERE expires_at <= ?) AS expired,
		(SELECT count(DISTINCT owner_id) FROM memories) AS owners`, s.db.at(now)).Row().Scan(&counts.Expired, &counts.Owners)
	if err != nil {
		return st, fmt.Errorf("memory stats: %w", unavailable(err))
	}
	st.Expired, st.Owners = counts.Expired, counts.Owners
	return st, nil
}
