package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"picard.dev/mcpserver/internal/memory"
)

// defaultBatch is the batch size of the maintenance commands when none is
// given: large enough to amortise a transaction, small enough that an
// interruption loses little work.
const defaultBatch = 500

// RotateKeys re-seals with the sealer's primary key every memory sealed by
// another key, for `mcpserver keys rotate`. Each batch is one transaction,
// so an interruption (a cancelled ctx) keeps every finished batch and loses
// nothing; running it again continues with the rows still sealed by an old
// key. Afterwards old keys can be removed from the configuration. progress,
// if not nil, is called after each batch with the rows done and the total
// that were pending at the start.
func (s *Memories) RotateKeys(ctx context.Context, batch int, progress func(done, total int)) error {
	if batch <= 0 {
		batch = defaultBatch
	}
	primary := s.db.sealer.PrimaryID()
	var total int
	if err := s.db.session(ctx).Raw("SELECT count(*) FROM memories WHERE key_id <> ?", primary).Scan(&total).Error; err != nil {
		return fmt.Errorf("rotate keys: %w", err)
	}
	report(progress, 0, total)
	done := 0
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("rotate keys: %w", err)
		}
		n, err := s.rotateBatch(ctx, primary, batch)
		if err != nil {
			return fmt.Errorf("rotate keys: %w", err)
		}
		if n == 0 {
			return nil
		}
		done += n
		report(progress, done, max(total, done))
	}
}

// rotateBatch re-seals up to batch rows in one transaction and returns how
// many it read. A row whose ciphertext changed meanwhile is left alone: the
// write that changed it sealed it with the primary key.
func (s *Memories) rotateBatch(ctx context.Context, primary string, batch int) (int, error) {
	n := 0
	err := s.db.tx(ctx, func(tx *gorm.DB) error {
		type row struct {
			id     uuid.UUID
			token  string
			sealer string
		}
		rows, err := tx.Raw("SELECT id, ciphertext, key_id FROM memories WHERE key_id <> ? ORDER BY id LIMIT ?", primary, batch).Rows()
		if err != nil {
			return err
		}
		var todo []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.token, &r.sealer); err != nil {
				rows.Close()
				return err
			}
			todo = append(todo, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range todo {
			text, err := s.db.sealer.Open([]byte(r.token))
			if err != nil {
				return fmt.Errorf("open memory %s sealed with key %s (is that key still configured?): %w", r.id, r.sealer, err)
			}
			tok, kid, err := s.db.sealer.Seal(text)
			if err != nil {
				return fmt.Errorf("seal memory %s: %w", r.id, err)
			}
			if kid != primary {
				return fmt.Errorf("sealer sealed with key %s, not its primary key %s", kid, primary)
			}
			if err := tx.Exec("UPDATE memories SET ciphertext = ?, key_id = ? WHERE id = ? AND ciphertext = ?",
				string(tok), kid, r.id, r.token).Error; err != nil {
				return err
			}
		}
		n = len(todo)
		return nil
	})
	return n, err
}

// Embedder is what Reembed needs of an embedder: the same shape as
// memory.Embedder.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	Name() string
}

// pendingWhere selects memories m without a vector of an embedder, joined
// to memory_embeddings e.
const pendingWhere = "FROM memories m LEFT JOIN memory_embeddings e ON e.memory_id = m.id WHERE e.memory_id IS NULL OR e.embedder <> ?"

// PendingEmbeddings counts the memories without a vector made by the named
// embedder: never embedded, or embedded by another one.
func (s *Memories) PendingEmbeddings(ctx context.Context, embedder string) (int, error) {
	var n int
	if err := s.db.session(ctx).Raw("SELECT count(*) "+pendingWhere, embedder).Scan(&n).Error; err != nil {
		return 0, fmt.Errorf("count pending embeddings: %w", err)
	}
	return n, nil
}

// Reembed computes the vectors of the memories that have none from emb
// (see PendingEmbeddings), for `mcpserver reembed` after a change of
// embedder. Each batch is embedded outside any transaction and then written
// in one; a memory changed meanwhile keeps the vector its update wrote. An
// interruption keeps the finished batches; running it again continues.
// progress is called as in RotateKeys.
func (s *Memories) Reembed(ctx context.Context, emb Embedder, batch int, progress func(done, total int)) error {
	if batch <= 0 {
		batch = defaultBatch
	}
	name := emb.Name()
	total, err := s.PendingEmbeddings(ctx, name)
	if err != nil {
		return err
	}
	report(progress, 0, total)
	done := 0
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("reembed: %w", err)
		}
		n, err := s.reembedBatch(ctx, emb, name, batch)
		if err != nil {
			return fmt.Errorf("reembed: %w", err)
		}
		if n == 0 {
			return nil
		}
		done += n
		report(progress, done, max(total, done))
	}
}

func (s *Memories) reembedBatch(ctx context.Context, emb Embedder, name string, batch int) (int, error) {
	rows, err := s.db.session(ctx).Raw("SELECT m.id, m.ciphertext, m.version "+pendingWhere+" ORDER BY m.id LIMIT ?", name, batch).Rows()
	if err != nil {
		return 0, err
	}
	var (
		ids      []uuid.UUID
		versions = map[uuid.UUID]int64{}
		texts    []string
	)
	for rows.Next() {
		var (
			id      uuid.UUID
			token   string
			version int64
		)
		if err := rows.Scan(&id, &token, &version); err != nil {
			rows.Close()
			return 0, err
		}
		text, err := s.db.sealer.Open([]byte(token))
		if err != nil {
			rows.Close()
			return 0, fmt.Errorf("open memory %s: %w", id, err)
		}
		ids = append(ids, id)
		versions[id] = version
		texts = append(texts, string(text))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return 0, nil
	}
	vals, err := emb.Embed(ctx, texts)
	if err != nil {
		return 0, fmt.Errorf("embed: %w", err)
	}
	if len(vals) != len(texts) {
		return 0, fmt.Errorf("embedder %s returned %d vectors for %d texts", name, len(vals), len(texts))
	}
	lock := ""
	if s.db.dialect == DialectPostgres {
		// SQLite's BEGIN IMMEDIATE already excludes other writers.
		lock = " FOR UPDATE"
	}
	err = s.db.tx(ctx, func(tx *gorm.DB) error {
		current := map[uuid.UUID]int64{}
		rows, err := tx.Raw("SELECT id, version FROM memories WHERE id IN ? ORDER BY id"+lock, ids).Rows()
		if err != nil {
			return err
		}
		for rows.Next() {
			var id uuid.UUID
			var v int64
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
		for i, id := range ids {
			if v, ok := current[id]; !ok || v != versions[id] {
				continue // deleted or changed since it was read
			}
			if len(vals[i]) == 0 {
				return fmt.Errorf("embedder %s returned an empty vector", name)
			}
			if err := upsertEmbedding(tx, s.db, id, memory.Vector{Embedder: name, Values: vals[i]}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return len(ids), nil
}

func report(progress func(done, total int), done, total int) {
	if progress != nil {
		progress(done, total)
	}
}
