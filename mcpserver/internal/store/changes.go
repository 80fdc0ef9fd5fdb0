package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"gorm.io/gorm"
)

// The in-memory indexes (searchIndex on SQLite, lexicalIndex on both
// dialects) follow the database through memory_changes: triggers append
// the id of every memory whose indexed data a statement changes, whoever
// the writer is (this process, another replica, an admin command, a
// cascade), and before each query an index re-reads the memories logged
// since it last looked. What "since" means differs by dialect, and is all
// a changeCursor abstracts.
//
// SQLite has one writer at a time, so log rows become visible in seq
// order and the last seq applied is a cursor (seqCursor). Postgres
// assigns seq when a row is inserted but transactions commit in any
// order: a reader can see seq 10 while seq 9 is still uncommitted, and a
// cursor would skip 9 for ever. There each row also records its writing
// transaction (tx), and the position is the snapshot that the last load
// or replay read (xidCursor): the rows to apply next are exactly those of
// the transactions that snapshot did not see as finished.

// changeCursor is an index's position in memory_changes.
type changeCursor interface {
	// txOptions are those of the read transaction of a load or replay,
	// whose one snapshot serves for the log and for the memories re-read.
	txOptions() *sql.TxOptions
	// loaded sets the position to that of a full load reading tx's
	// snapshot; it is called in the load's transaction.
	loaded(tx *gorm.DB) error
	// next reads in tx the log rows past the position.
	next(tx *gorm.DB) (logBatch, error)
	// advance moves the position past b, whose memories were re-read.
	advance(b logBatch)
	// pruneDue reports, once per pruneEvery rows applied, that it is time
	// to prune.
	pruneDue() bool
	// prune deletes the log rows before the last keep rows the position
	// passed; on Postgres, only those of the transactions older than all
	// of these and finished in the position's snapshot.
	prune(ctx context.Context, db *DB, keep int64) error
}

// newChangeCursor returns the cursor of dialect, before any load.
func newChangeCursor(dialect string) changeCursor {
	if dialect == DialectPostgres {
		return &xidCursor{}
	}
	return &seqCursor{}
}

// logBatch is what changeCursor.next read of the log.
type logBatch struct {
	// full is true when a replay cannot bring the index up to date: the
	// log was pruned past the position, or the replay would be longer
	// than a load (replayMax rows).
	full bool
	// ids are the memories the rows name, each once.
	ids []uuid.UUID
	// in selects the same memories (" IN (…)", to follow a memory id
	// column) with its arguments args, in the same transaction, so they
	// are not bound one by one.
	in   string
	args []any
	// last is the largest seq read; with none, the cursor on SQLite and 0
	// on Postgres.
	last int64
	// snapshot is, on Postgres, the snapshot of the transaction, the
	// position once b is applied.
	snapshot string
}

// pruneClock is what both cursors keep to prune now and then: the largest
// seq applied and its value at the last prune.
type pruneClock struct{ top, lastPrune int64 }

func (p *pruneClock) pruneDue() bool {
	if p.top-p.lastPrune < pruneEvery {
		return false
	}
	p.lastPrune = p.top
	return true
}

// readLog reads the (seq, memory_id) rows of query into b.ids (those past
// after, each once, in the order read) and b.last (the largest seq), and
// returns the first seq read (-1: none) and the number of rows.
func readLog(tx *gorm.DB, b *logBatch, after int64, query string, args ...any) (first int64, n int, err error) {
	rows, err := tx.Raw(query, args...).Rows()
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	first = -1
	seen := map[uuid.UUID]bool{}
	for rows.Next() {
		var (
			seq int64
			raw string
		)
		if err := rows.Scan(&seq, &raw); err != nil {
			return 0, 0, err
		}
		if first < 0 {
			first = seq
		}
		n++
		b.last = max(b.last, seq)
		id, err := uuid.Parse(raw)
		if err != nil {
			return 0, 0, fmt.Errorf("memory_changes: memory id %q: %w", raw, err)
		}
		if seq > after && !seen[id] {
			seen[id] = true
			b.ids = append(b.ids, id)
		}
	}
	return first, n, rows.Err()
}

// seqCursor is the position of a SQLite index: the last seq applied.
type seqCursor struct {
	pruneClock
	cursor int64
}

func (c *seqCursor) txOptions() *sql.TxOptions { return &sql.TxOptions{ReadOnly: true} }

func (c *seqCursor) loaded(tx *gorm.DB) error {
	var cursor int64
	if err := tx.Raw("SELECT coalesce(max(seq), 0) FROM memory_changes").Row().Scan(&cursor); err != nil {
		return err
	}
	c.cursor, c.top, c.lastPrune = cursor, cursor, cursor
	return nil
}

func (c *seqCursor) next(tx *gorm.DB) (logBatch, error) {
	// Reading from the cursor's own row tells whether the log was pruned
	// past it (then that row is gone and changes may have been lost).
	b := logBatch{last: c.cursor}
	first, n, err := readLog(tx, &b, c.cursor, "SELECT seq, memory_id FROM memory_changes WHERE seq >= ? ORDER BY seq LIMIT ?",
		c.cursor, replayMax+1)
	if err != nil {
		return logBatch{}, err
	}
	// The cursor's row must still be there (seq 0 has none: the log was
	// empty at load, and it is never pruned to empty); too long a replay
	// is slower than a load.
	b.full = (c.cursor > 0 && first != c.cursor) || (c.cursor == 0 && first > 1) || n > replayMax
	b.in, b.args = " IN (SELECT memory_id FROM memory_changes WHERE seq > ? AND seq <= ?)", []any{c.cursor, b.last}
	return b, nil
}

func (c *seqCursor) advance(b logBatch) { c.cursor, c.top = b.last, b.last }

func (c *seqCursor) prune(ctx context.Context, db *DB, keep int64) error {
	return db.session(ctx).Exec("DELETE FROM memory_changes WHERE seq <= ?", c.cursor-keep).Error
}

// xidCursor is the position of a Postgres index: the snapshot the last
// load or replay read, as pg_current_snapshot() prints it
// (xmin:xmax:xip,…). A row was applied if its transaction is finished in
// that snapshot; every other row the log holds is of a transaction at or
// past its xmax or in progress then (listed in xip), and once committed
// it is read, through the index on tx, and applied. So a transaction that
// stays open for long costs an entry of xip, not a re-read of what was
// written since it began (it holds every snapshot's xmin back).
//
// Pruning deletes the rows of the transactions below a horizon, recorded
// in memory_changes_pruned by the same transaction, and never above the
// pruner's own snapshot's xmin, below which every transaction is
// finished. A reader whose snapshot's xmin is below the horizon may have
// lost rows it had not applied, so it loads in full instead.
type xidCursor struct {
	pruneClock
	snapshot string
}

// pgNewRows selects the log rows of the transactions that a snapshot did
// not see as finished: its xmax and xip (as text, comma-separated) are the
// arguments. xip holds top-level ids, as pg_current_xact_id() logs them.
// The statement is planned with the index on tx whether the arguments are
// constants or not (a prepared statement's generic plan).
const pgNewRows = "tx >= ?::text::xid8 OR tx = ANY(string_to_array(?, ',')::xid8[])"

// newRowsArgs returns the arguments of pgNewRows for the cursor's snapshot.
func (c *xidCursor) newRowsArgs() ([]any, error) {
	parts := strings.Split(c.snapshot, ":")
	if len(parts) != 3 {
		return nil, fmt.Errorf("memory_changes: snapshot %q is not xmin:xmax:xip", c.snapshot)
	}
	return []any{parts[1], parts[2]}, nil
}

func (c *xidCursor) txOptions() *sql.TxOptions {
	// Repeatable read: one snapshot for the whole transaction, which
	// pg_current_snapshot() returns.
	return &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
}

func (c *xidCursor) loaded(tx *gorm.DB) error {
	var (
		snapshot string
		top      int64
	)
	if err := tx.Raw("SELECT pg_current_snapshot()::text, coalesce(max(seq), 0) FROM memory_changes").Row().Scan(&snapshot, &top); err != nil {
		return err
	}
	c.snapshot, c.top, c.lastPrune = snapshot, top, top
	return nil
}

func (c *xidCursor) next(tx *gorm.DB) (logBatch, error) {
	args, err := c.newRowsArgs()
	if err != nil {
		return logBatch{}, err
	}
	var b logBatch
	var pruned bool
	if err := tx.Raw("SELECT pg_current_snapshot()::text, horizon > pg_snapshot_xmin(?::text::pg_snapshot) FROM memory_changes_pruned",
		c.snapshot).Row().Scan(&b.snapshot, &pruned); err != nil {
		return logBatch{}, err
	}
	if pruned {
		b.full = true
		return b, nil
	}
	// No ORDER BY: the rows of an old transaction come with lower seqs
	// than others, wherever the index on tx finds them.
	_, n, err := readLog(tx, &b, 0, "SELECT seq, memory_id FROM memory_changes WHERE "+pgNewRows+" LIMIT ?", append(args, replayMax+1)...)
	if err != nil {
		return logBatch{}, err
	}
	b.full = n > replayMax
	b.in, b.args = " IN (SELECT memory_id FROM memory_changes WHERE "+pgNewRows+")", args
	return b, nil
}

func (c *xidCursor) advance(b logBatch) {
	c.snapshot = b.snapshot
	c.top = max(c.top, b.last)
}

func (c *xidCursor) prune(ctx context.Context, db *DB, keep int64) error {
	return db.tx(ctx, func(tx *gorm.DB) error {
		// The horizon: the oldest transaction among the last keep rows
		// applied, or the snapshot's xmin if lower. The update comes first:
		// it locks the one row, so pruners take turns.
		var horizon string
		err := tx.Raw(`UPDATE memory_changes_pruned SET horizon = greatest(horizon,
			least(pg_snapshot_xmin(?::text::pg_snapshot), (SELECT min(tx) FROM memory_changes WHERE seq > ?))) RETURNING horizon::text`,
			c.snapshot, c.top-keep).Row().Scan(&horizon)
		if err != nil {
			return err
		}
		return tx.Exec("DELETE FROM memory_changes WHERE tx < ?::text::xid8", horizon).Error
	})
}
