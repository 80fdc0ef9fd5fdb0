package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"picard.dev/mcpserver/internal/memory"
)

var _ memory.VectorStore = (*Memories)(nil)

// unembeddedWhere selects memories m that have no vector at all: written
// while the embedder failed (or changed while it did). Memories with a
// vector of another embedder are not pending; `mcpserver reembed` replaces
// those.
const unembeddedWhere = "NOT EXISTS (SELECT 1 FROM memory_embeddings e WHERE e.memory_id = m.id)"

// Unembedded returns up to limit memories without a vector, by id, with
// their text and the version it was read at.
func (s *Memories) Unembedded(ctx context.Context, limit int) ([]memory.Unembedded, error) {
	if limit <= 0 {
		limit = defaultBatch
	}
	rows, err := s.db.session(ctx).Raw("SELECT m.id, m.ciphertext, m.version FROM memories m WHERE "+
		unembeddedWhere+" ORDER BY m.id LIMIT ?", limit).Rows()
	if err != nil {
		return nil, fmt.Errorf("list memories without vectors: %w", err)
	}
	defer rows.Close()
	var out []memory.Unembedded
	for rows.Next() {
		var (
			u     memory.Unembedded
			token string
		)
		if err := rows.Scan(&u.ID, &token, &u.Version); err != nil {
			return nil, fmt.Errorf("list memories without vectors: %w", unavailable(err))
		}
		text, err := s.db.sealer.Open([]byte(token))
		if err != nil {
			return nil, fmt.Errorf("open memory %s: %w", u.ID, err)
		}
		u.Text = string(text)
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list memories without vectors: %w", unavailable(err))
	}
	return out, nil
}

// CountUnembedded counts the memories without a vector.
func (s *Memories) CountUnembedded(ctx context.Context) (int, error) {
	var n int
	if err := s.db.session(ctx).Raw("SELECT count(*) FROM memories m WHERE " + unembeddedWhere).Scan(&n).Error; err != nil {
		return 0, fmt.Errorf("count memories without vectors: %w", err)
	}
	return n, nil
}

// SetVectors stores, in one transaction, the vector of each memory whose
// version is still the one given, and returns how many it stored. A memory
// deleted or changed meanwhile is skipped: its change decided its vector.
func (s *Memories) SetVectors(ctx context.Context, vs []memory.VersionedVector) (int, error) {
	if len(vs) == 0 {
		return 0, nil
	}
	ids := make([]uuid.UUID, len(vs))
	for i, v := range vs {
		if v.Vector.Embedder == "" || len(v.Vector.Values) == 0 {
			return 0, fmt.Errorf("store vectors: memory %s has an empty vector", v.ID)
		}
		ids[i] = v.ID
	}
	lock := ""
	if s.db.dialect == DialectPostgres {
		// Hold the rows so an update cannot slip in between the version
		// check and the write; SQLite's BEGIN IMMEDIATE already excludes
		// other writers.
		lock = " FOR UPDATE"
	}
	stored := 0
	err := s.db.tx(ctx, func(tx *gorm.DB) error {
		current := make(map[uuid.UUID]int64, len(ids))
		rows, err := tx.Raw("SELECT id, version FROM memories WHERE id IN ? ORDER BY id"+lock, ids).Rows()
		if err != nil {
			return err
		}
		for rows.Next() {
			var (
				id uuid.UUID
				v  int64
			)
			if err := rows.Scan(&id, &v); err != nil {
				rows.Close()
				return err
			}
			current[id] = v
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, v := range vs {
			if cur, ok := current[v.ID]; !ok || cur != v.Version {
				continue
			}
			if err := upsertEmbedding(tx, s.db, v.ID, v.Vector); err != nil {
				return err
			}
			stored++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store vectors: %w", err)
	}
	return stored, nil
}
