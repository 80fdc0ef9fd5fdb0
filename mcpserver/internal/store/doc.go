// Package store implements the storage interfaces of the domain packages
// (memory.Store, user.Store, activity.Store) on two databases: SQLite, the
// embedded default (pure Go, WAL, foreign keys on), and Postgres with
// pgvector. GORM is used as the query layer only; the schema lives in
// numbered SQL migrations embedded in the binary and applied with goose,
// never AutoMigrate.
//
// # Layout
//
// A *DB is one open database: Open connects, Migrate applies pending
// migrations, CheckSchema refuses to serve from an outdated schema (the
// miniflux way). Each domain store is a small type over the same *DB:
//
//	db.Memories()  *Memories  memory.Store, plus the maintenance of the CLI
//	                          (RotateKeys, Reembed, PendingEmbeddings,
//	                          Reindex, PendingIndex)
//	db.Users()     *Users     user.Store
//	db.Activity()  *Activity  activity.Store
//
// # Adding a store type
//
// Put the tables in a new migration numbered after the last one, in both
// dialect directories and with the same number, e.g.
// migrations/postgres/00002_oauth.sql and migrations/sqlite/00002_oauth.sql
// (the embed pattern picks them up). Then add a file with the type and its
// constructor on *DB:
//
//	type Clients struct{ db *DB }
//	func (db *DB) Clients() *Clients { return &Clients{db: db} }
//
// Its methods use the helpers of this package, which hide the dialect
// differences: db.session(ctx) for a statement, db.tx(ctx, fn) for a
// transaction (BEGIN IMMEDIATE on SQLite), db.at / db.atPtr to bind a time
// and sqlTime to scan one, and isDuplicate to recognise a unique violation.
// Write SQL with ? placeholders (GORM rewrites them for Postgres) and avoid
// the character '@', which makes GORM parse named parameters.
//
// # Dialect differences
//
// Ids are uuid in Postgres and canonical lower-case text in SQLite, which
// sort alike. Times are timestamptz in Postgres and INTEGER microseconds
// since the Unix epoch in SQLite, so integer order is time order; both keep
// microseconds, which is the precision the domain works in. Memory text is
// sealed by a Sealer before it reaches either database. Vector search is
// HNSW (cosine, one partial index per dimension, see DB.EnsureVectorIndex)
// in Postgres and an exact scan in Go over decoded, cached vectors in
// SQLite. Lexical search is BM25 over a blind index of keyed term hashes
// (lexical.go), the same in both, scored in Go over an in-memory copy of
// the index (lexical_memory.go). The in-memory indexes follow the database
// through a log of changed memories that triggers write; how a reader
// finds what it has not applied differs, as SQLite has one writer at a
// time and Postgres many (changes.go).
package store
