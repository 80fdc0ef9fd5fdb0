package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

//go:embed migrations/postgres/*.sql migrations/sqlite/*.sql
var migrations embed.FS

// Dialects returned by DB.Dialect.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// Sealer encrypts memory text before it is stored and decrypts it when it is
// read. crypt.Keyring implements it: the primary key seals, every key opens,
// and each token is stored with the id of the key that sealed it so that
// RotateKeys can find the rows still sealed by an older key.
type Sealer interface {
	Seal(plaintext []byte) (token []byte, keyID string, err error)
	Open(token []byte) ([]byte, error)
	PrimaryID() string
}

// Options configure Open.
type Options struct {
	// URL selects Postgres when it is a postgres:// or postgresql:// URL;
	// empty selects SQLite at SQLitePath.
	URL string
	// SQLitePath is the SQLite database file; its directory is created.
	SQLitePath string
	// Sealer seals memory text; required.
	Sealer Sealer
	// Logger receives migration and maintenance messages; nil discards.
	Logger *slog.Logger
	// MaxOpenConns bounds the connection pool; 0 picks a default (10 for
	// Postgres, GOMAXPROCS but at least 4 for SQLite, whose writers queue
	// on one lock anyway).
	MaxOpenConns int
	// VectorCacheBytes bounds the decoded vectors SQLite search keeps in
	// memory, in its search index; 0 means 256 MiB, a negative value keeps
	// none (each search reads every vector from SQL).
	VectorCacheBytes int64
	// EfSearch is hnsw.ef_search for Postgres searches; 0 means 400, the
	// smallest setting with recall@10 ≥ 0.95 against exact search for a
	// caller who sees about a quarter of the vectors (docs/performance.md).
	EfSearch int
	// IndexKey keys the lexical blind index (HMAC-SHA256 of each term); it
	// must be 32 bytes and must not be one of the Sealer's keys. Without it
	// memories are not indexed by their terms and lexical search finds
	// nothing (hybrid search is then vector search); the server always
	// sets it. Changing it requires `mcpserver reindex`.
	IndexKey []byte
}

// DB is an open database of the MCP server. It is safe for concurrent use.
type DB struct {
	gorm     *gorm.DB
	sql      *sql.DB
	dialect  string
	sealer   Sealer
	log      *slog.Logger
	searchIx *searchIndex  // used on SQLite only: Postgres searches vectors with HNSW
	lexIx    *lexicalIndex // with an index key only
	efSearch int
	index    *blindIndex // nil: no lexical index

	// iterativeScan records whether pgvector supports
	// hnsw.iterative_scan (0.8 and later); checked on first use.
	pgvMu         sync.Mutex
	pgvChecked    bool
	iterativeScan bool
}

// Open connects to the database selected by opts. It does not migrate;
// call Migrate (or CheckSchema to refuse an outdated schema).
func Open(ctx context.Context, opts Options) (*DB, error) {
	if opts.Sealer == nil {
		return nil, errors.New("store: a Sealer is required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := &gorm.Config{
		Logger:                 logger.Discard,
		TranslateError:         true,
		SkipDefaultTransaction: true,
	}
	var (
		g       *gorm.DB
		err     error
		dialect string
		conns   = opts.MaxOpenConns
	)
	switch {
	case strings.HasPrefix(opts.URL, "postgres://"), strings.HasPrefix(opts.URL, "postgresql://"):
		dialect = DialectPostgres
		g, err = gorm.Open(postgres.Open(opts.URL), cfg)
		if conns == 0 {
			conns = 10
		}
	case opts.URL != "":
		return nil, fmt.Errorf("store: database URL must start with postgres:// (got scheme %q)", scheme(opts.URL))
	case opts.SQLitePath == "":
		return nil, errors.New("store: neither a database URL nor a SQLite path is configured")
	default:
		dialect = DialectSQLite
		if err := os.MkdirAll(filepath.Dir(opts.SQLitePath), 0o700); err != nil {
			return nil, fmt.Errorf("store: create database directory: %w", err)
		}
		g, err = gorm.Open(sqlite.Open(sqliteDSN(opts.SQLitePath)), cfg)
		if conns == 0 {
			conns = max(4, runtime.GOMAXPROCS(0))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s database: %w", dialect, err)
	}
	if err := g.Use(classifyPlugin{}); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	sqlDB, err := g.DB()
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	sqlDB.SetMaxOpenConns(conns)
	sqlDB.SetMaxIdleConns(conns)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("store: connect to %s database: %w", dialect, unavailable(err))
	}
	var index *blindIndex
	if opts.IndexKey != nil {
		if index, err = newBlindIndex(opts.IndexKey); err != nil {
			sqlDB.Close()
			return nil, err
		}
	} else {
		log.Warn("store: no index key; memories are not indexed for lexical search")
	}
	cacheBytes := opts.VectorCacheBytes
	if cacheBytes == 0 {
		cacheBytes = 256 << 20
	}
	ef := opts.EfSearch
	if ef <= 0 {
		ef = 400
	}
	var lexIx *lexicalIndex
	if index != nil {
		lexIx = newLexicalIndex(dialect)
	}
	return &DB{
		gorm:     g,
		sql:      sqlDB,
		dialect:  dialect,
		sealer:   opts.Sealer,
		log:      log,
		searchIx: newSearchIndex(cacheBytes),
		lexIx:    lexIx,
		efSearch: ef,
		index:    index,
	}, nil
}

// sqliteDSN enables WAL (readers never wait for the writer), foreign keys
// (ON DELETE CASCADE), a busy timeout (a writer waits for the lock rather
// than failing) and BEGIN IMMEDIATE, so a transaction that reads before it
// writes cannot fail on lock upgrade. A batch of 1,000 memories writes
// ~18,000 lexical index rows into a B-tree ordered by term: with the
// default 2 MB page cache and statement journals in temporary files, half
// of submit_memories went to spilling pages and writing those journals;
// a 16 MiB cache per connection (allocated as used) and in-memory
// temporary storage made it 1.3x faster (docs/performance.md).
func sqliteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "mmap_size(1073741824)")
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Add("_pragma", "cache_size(-16384)")
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// scheme returns the scheme of a URL without echoing credentials.
func scheme(s string) string {
	if i := strings.Index(s, ":"); i > 0 {
		return s[:i]
	}
	return ""
}

// Dialect returns DialectSQLite or DialectPostgres.
func (db *DB) Dialect() string { return db.dialect }

// Ping checks that the database answers, for readiness probes.
func (db *DB) Ping(ctx context.Context) error { return unavailable(db.sql.PingContext(ctx)) }

// Close closes the connection pool.
func (db *DB) Close() error { return db.sql.Close() }

// ErrSchemaOutdated means the database schema is older than this binary
// expects; `mcpserver migrate` brings it up to date.
var ErrSchemaOutdated = errors.New("database schema is not up to date; run `mcpserver migrate`")

// ErrSchemaNewer means the database was migrated by a newer binary.
var ErrSchemaNewer = errors.New("database schema is newer than this binary; upgrade mcpserver")

func (db *DB) provider() (*goose.Provider, error) {
	sub, err := fs.Sub(migrations, "migrations/"+db.dialect)
	if err != nil {
		return nil, err
	}
	d := goose.DialectSQLite3
	var opts []goose.ProviderOption
	if db.dialect == DialectPostgres {
		d = goose.DialectPostgres
		// Two instances starting at once must not both migrate.
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(d, db.sql, sub, opts...)
	if err != nil {
		return nil, fmt.Errorf("store: migrations: %w", err)
	}
	return p, nil
}

// Migrate applies every pending migration, each in its own transaction, and
// logs what it applied. It is safe to run again and to interrupt.
func (db *DB) Migrate(ctx context.Context) error {
	p, err := db.provider()
	if err != nil {
		return err
	}
	results, err := p.Up(ctx)
	for _, r := range results {
		if r.Error == nil {
			db.log.Info("applied migration", "dialect", db.dialect, "version", r.Source.Version,
				"file", filepath.Base(r.Source.Path), "duration", r.Duration)
		}
	}
	if err != nil {
		return fmt.Errorf("store: migrate %s database: %w", db.dialect, err)
	}
	return nil
}

// SchemaVersion returns the version the database is at and the version
// this binary's migrations lead to.
func (db *DB) SchemaVersion(ctx context.Context) (current, latest int64, err error) {
	p, err := db.provider()
	if err != nil {
		return 0, 0, err
	}
	current, err = p.GetDBVersion(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("store: schema version: %w", err)
	}
	srcs := p.ListSources()
	if len(srcs) > 0 {
		latest = srcs[len(srcs)-1].Version
	}
	return current, latest, nil
}

// CheckSchema returns an error wrapping ErrSchemaOutdated when migrations
// are pending, or ErrSchemaNewer when the database is ahead of the binary;
// the server calls it at start-up instead of serving from a wrong schema.
func (db *DB) CheckSchema(ctx context.Context) error {
	p, err := db.provider()
	if err != nil {
		return err
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return fmt.Errorf("store: check schema: %w", err)
	}
	current, latest, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	switch {
	case pending:
		return fmt.Errorf("%w (database at version %d, binary expects %d)", ErrSchemaOutdated, current, latest)
	case current > latest:
		return fmt.Errorf("%w (database at version %d, binary knows up to %d)", ErrSchemaNewer, current, latest)
	}
	return nil
}

// maxHNSWDim is the largest dimension pgvector can index with HNSW.
const maxHNSWDim = 2000

// The HNSW graph's build parameters. pgvector's defaults (m 16,
// ef_construction 64) give recall@10 0.76 for the filtered searches of
// query_memory at 100k memories with ef_search 400; m 32 and
// ef_construction 128 give 0.97 (docs/performance.md). Each node keeps
// twice as many neighbours, so the index is larger and an insert costs
// more; a search at the same ef_search costs about the same.
const (
	hnswM              = 32
	hnswEfConstruction = 128
	// hnswBuildMemory is maintenance_work_mem for building the index: the
	// graph of 100k 512-dimension vectors (about 250 MB) then fits in
	// memory, which builds it several times faster than on disk. Postgres
	// allocates it only as the graph grows.
	hnswBuildMemory = "512MB"
)

// EnsureVectorIndex creates, if missing, the HNSW index for vectors of dim
// dimensions in Postgres: a partial index on embedding::vector(dim) for the
// rows with that dimension, since HNSW needs a fixed dimension and the
// column has none. The server calls it at start-up with its embedder's
// dimension; searches use exactly the same expression. It does nothing on
// SQLite, and only logs a warning for dimensions HNSW cannot index (search
// then stays exact). An index built with other parameters (by an older
// version) is kept and a warning says how to rebuild it.
func (db *DB) EnsureVectorIndex(ctx context.Context, dim int) error {
	if db.dialect != DialectPostgres {
		return nil
	}
	if dim <= 0 {
		return fmt.Errorf("store: vector index: dimension %d is not positive", dim)
	}
	if dim > maxHNSWDim {
		db.log.Warn("embedding dimension too large for an HNSW index; vector search stays exact", "dim", dim, "max", maxHNSWDim)
		return nil
	}
	d := strconv.Itoa(dim)
	name := "memory_embeddings_hnsw_" + d
	want := []string{"m=" + strconv.Itoa(hnswM), "ef_construction=" + strconv.Itoa(hnswEfConstruction)}
	var has string
	err := db.session(ctx).Raw("SELECT array_to_string(coalesce(reloptions, '{}'), ',') FROM pg_class WHERE relname = ? AND relkind = 'i'", name).
		Row().Scan(&has)
	switch {
	case err == nil:
		if has != strings.Join(want, ",") {
			db.log.Warn("vector index built with other parameters; rebuild it for better recall",
				"index", name, "has", has, "want", strings.Join(want, ","),
				"sql", "ALTER INDEX "+name+" SET ("+strings.Join(want, ", ")+"); REINDEX INDEX CONCURRENTLY "+name)
		}
		return nil
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("store: vector index for dimension %d: %w", dim, unavailable(err))
	}
	stmt := "CREATE INDEX IF NOT EXISTS " + name + " ON memory_embeddings USING hnsw ((embedding::vector(" + d +
		")) vector_cosine_ops) WITH (" + strings.Join(want, ", ") + ") WHERE dim = " + d
	err = db.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Exec("SET LOCAL maintenance_work_mem = '" + hnswBuildMemory + "'").Error; err != nil {
			return err
		}
		return tx.Exec(stmt).Error
	})
	if err != nil {
		return fmt.Errorf("store: create vector index for dimension %d: %w", dim, err)
	}
	return nil
}

// session returns a GORM handle bound to ctx for one statement.
func (db *DB) session(ctx context.Context) *gorm.DB { return db.gorm.WithContext(ctx) }

// tx runs fn in a transaction: committed when fn returns nil, rolled back
// otherwise. On SQLite it begins IMMEDIATE (see sqliteDSN). Failures to
// begin or commit, and those fn returns, are classified by unavailable.
func (db *DB) tx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return unavailable(db.gorm.WithContext(ctx).Transaction(fn))
}

// at binds a time in the representation of the dialect: timestamptz in
// Postgres, microseconds since the epoch in SQLite.
func (db *DB) at(t time.Time) any {
	if db.dialect == DialectSQLite {
		return t.UnixMicro()
	}
	return t.UTC().Truncate(time.Microsecond)
}

// atPtr is at for a nullable time.
func (db *DB) atPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return db.at(*t)
}

// sqlTime scans a time of either dialect; Valid is false for NULL.
type sqlTime struct {
	Time  time.Time
	Valid bool
}

// Scan implements sql.Scanner.
func (s *sqlTime) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*s = sqlTime{}
	case time.Time:
		*s = sqlTime{Time: v.UTC(), Valid: true}
	case int64:
		*s = sqlTime{Time: time.UnixMicro(v).UTC(), Valid: true}
	default:
		return fmt.Errorf("store: cannot scan %T as a time", src)
	}
	return nil
}

// ptr returns the time or nil.
func (s sqlTime) ptr() *time.Time {
	if !s.Valid {
		return nil
	}
	t := s.Time
	return &t
}

// isDuplicate reports whether err is a unique or primary key violation.
func isDuplicate(err error) bool { return errors.Is(err, gorm.ErrDuplicatedKey) }

// maxParams bounds the bound parameters of one statement, under both
// SQLite's (32766) and Postgres' (65535) limits.
const maxParams = 30000

// maxSQLiteParams is the bound for SQLite: its driver matches each
// parameter to its argument by a linear search, so binding a statement of
// n parameters costs O(n²); 30,000 parameters took longer to bind than
// the rows took to write (docs/performance.md).
const maxSQLiteParams = 1000

// insertRows inserts rows into table with multi-row INSERT statements,
// as many rows per statement as the parameter limit allows.
func insertRows(tx *gorm.DB, table string, cols []string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	limit := maxParams
	if tx.Dialector.Name() == DialectSQLite {
		limit = maxSQLiteParams
	}
	per := max(1, limit/len(cols))
	tuple := "(" + strings.Repeat("?,", len(cols)-1) + "?)"
	head := "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES "
	for start := 0; start < len(rows); start += per {
		chunk := rows[start:min(start+per, len(rows))]
		var b strings.Builder
		b.Grow(len(head) + len(chunk)*(len(tuple)+1))
		b.WriteString(head)
		args := make([]any, 0, len(chunk)*len(cols))
		for i, r := range chunk {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(tuple)
			args = append(args, r...)
		}
		if err := tx.Exec(b.String(), args...).Error; err != nil {
			return fmt.Errorf("insert into %s: %w", table, err)
		}
	}
	return nil
}

// conds collects the conditions of a WHERE clause with their arguments.
type conds struct {
	parts []string
	args  []any
}

func (c *conds) add(cond string, args ...any) {
	c.parts = append(c.parts, cond)
	c.args = append(c.args, args...)
}

func (c *conds) String() string {
	if len(c.parts) == 0 {
		return "1 = 1"
	}
	return strings.Join(c.parts, " AND ")
}
