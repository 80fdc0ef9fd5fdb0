package store

import (
	"context"
	"path/filepath"
	"testing"

	"picard.dev/shared/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testMigrations migrates twice (idempotence) and checks the cascade from
// users to sessions that account deletion relies on.
func testMigrations(t *testing.T, db *DB) {
	ctx := context.Background()
	if err := db.CheckVersion(ctx); err != ErrSchemaOutdated {
		t.Fatalf("fresh database: CheckVersion = %v, want ErrSchemaOutdated", err)
	}
	for range 2 {
		if err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.CheckVersion(ctx); err != nil {
		t.Fatal(err)
	}
	g := db.Gorm.WithContext(ctx)
	if err := g.Exec(`INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES ('u1', 'a@b.c', 'h', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`).Error; err != nil {
		t.Fatal(err)
	}
	if err := g.Exec(`INSERT INTO sessions (id_hash, user_id, created_at, expires_at) VALUES ('s1', 'u1', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`).Error; err != nil {
		t.Fatal(err)
	}
	if err := g.Exec(`DELETE FROM users WHERE id = 'u1'`).Error; err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := g.Raw(`SELECT COUNT(*) FROM sessions`).Scan(&n).Error; err != nil || n != 0 {
		t.Fatalf("sessions after deleting the user: %d (%v)", n, err)
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSQLite(t *testing.T) {
	db, err := Open(context.Background(), "", filepath.Join(t.TempDir(), "sub", "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	testMigrations(t, db)
}

func TestPostgres(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	db, err := Open(context.Background(), dsn, "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	testMigrations(t, db)
}
