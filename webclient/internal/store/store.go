// Package store opens the web client's database (SQLite by default,
// Postgres when configured) through GORM and applies the schema from
// embedded, numbered goose migrations — never AutoMigrate, so the schema
// is reviewed SQL and identical across installations.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/glebarez/sqlite"
	"github.com/pressly/goose/v3"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

//go:embed migrations
var migrations embed.FS

// Dialect names a supported database.
type Dialect string

// The supported databases.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DB is an open database.
type DB struct {
	Gorm    *gorm.DB
	Dialect Dialect
	sql     *sql.DB
}

// Open connects to Postgres when dsn is a postgres:// URL, else to the
// SQLite file at sqlitePath (created with its directory if missing).
// It does not migrate; call Migrate.
func Open(ctx context.Context, dsn, sqlitePath string) (*DB, error) {
	cfg := &gorm.Config{Logger: logger.Discard, TranslateError: true}
	var (
		g       *gorm.DB
		err     error
		dialect Dialect
	)
	if dsn != "" {
		dialect = Postgres
		g, err = gorm.Open(postgres.Open(dsn), cfg)
	} else {
		dialect = SQLite
		if err := os.MkdirAll(filepath.Dir(sqlitePath), 0o700); err != nil {
			return nil, fmt.Errorf("creating database directory: %w", err)
		}
		// WAL lets readers proceed during a write; busy_timeout makes a
		// writer wait for the lock instead of failing; foreign keys give
		// us ON DELETE CASCADE.
		g, err = gorm.Open(sqlite.Open("file:"+sqlitePath+"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)"), cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s database: %w", dialect, err)
	}
	sqlDB, err := g.DB()
	if err != nil {
		return nil, err
	}
	if dialect == SQLite {
		// One writer at a time is all SQLite supports; a single connection
		// avoids "database is locked" between our own goroutines.
		sqlDB.SetMaxOpenConns(1)
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("connecting to %s database: %w", dialect, err)
	}
	return &DB{Gorm: g, Dialect: dialect, sql: sqlDB}, nil
}

func (db *DB) provider() (*goose.Provider, error) {
	sub, err := fs.Sub(migrations, "migrations/"+string(db.Dialect))
	if err != nil {
		return nil, err
	}
	d := goose.DialectSQLite3
	if db.Dialect == Postgres {
		d = goose.DialectPostgres
	}
	return goose.NewProvider(d, db.sql, sub)
}

// Migrate applies every pending migration.
func (db *DB) Migrate(ctx context.Context) error {
	p, err := db.provider()
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	return nil
}

// ErrSchemaOutdated reports that migrations are pending.
var ErrSchemaOutdated = errors.New("database schema is not up to date; run `webclient migrate`")

// CheckVersion reports ErrSchemaOutdated when a migration is pending.
func (db *DB) CheckVersion(ctx context.Context) error {
	p, err := db.provider()
	if err != nil {
		return err
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return err
	}
	if pending {
		return ErrSchemaOutdated
	}
	return nil
}

// Ping checks the database is reachable.
func (db *DB) Ping(ctx context.Context) error { return db.sql.PingContext(ctx) }

// Close closes the connection pool.
func (db *DB) Close() error { return db.sql.Close() }
