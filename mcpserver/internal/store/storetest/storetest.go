// Package storetest opens real stores for the tests of other packages: a
// fresh, migrated SQLite database in the test's temporary directory, sealed
// with a newly generated Fernet key, closed when the test ends.
package storetest

import (
	"context"
	"path/filepath"
	"testing"

	"picard.dev/mcpserver/internal/crypt"
	"picard.dev/mcpserver/internal/store"
)

// SQLite opens and migrates a new SQLite database. Fields of opts that are
// left zero get the test defaults: a file in tb.TempDir() and a fresh key
// ring; the rest (an index key, cache sizes) are passed through.
func SQLite(tb testing.TB, opts store.Options) *store.DB {
	tb.Helper()
	ctx := context.Background()
	if opts.Sealer == nil {
		key, err := crypt.GenerateKey()
		if err != nil {
			tb.Fatal(err)
		}
		kr, err := crypt.ParseKeys(key)
		if err != nil {
			tb.Fatal(err)
		}
		opts.Sealer = kr
	}
	if opts.SQLitePath == "" {
		opts.SQLitePath = filepath.Join(tb.TempDir(), "mcp.db")
	}
	db, err := store.Open(ctx, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	return db
}
