package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pressly/goose/v3"

	"picard.dev/mcpserver/internal/memory"
	"picard.dev/mcpserver/internal/user"
)

// TestSchemaUpgradeKeepsData writes data with the first schema (raw SQL, as
// a database created by the first release would hold it), then applies
// every later migration one at a time, checking after each that no row of
// the first schema's tables is gone, and at the end that everything reads
// back through the current code exactly as written — text, tags, shares,
// metadata, expiry, timestamps, accounts, vectors — and that the upgraded
// database takes new writes. It iterates over whatever migrations exist.
func TestSchemaUpgradeKeepsData(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			opts := b.options(t)
			sealer := newSealer("k1", newKey(t))
			opts.Sealer = sealer
			db, err := Open(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			p, err := db.provider()
			if err != nil {
				t.Fatal(err)
			}
			srcs := p.ListSources()
			if len(srcs) == 0 || srcs[0].Version != 1 {
				t.Fatalf("migrations do not start at version 1: %v", srcs)
			}
			if _, err := p.UpTo(ctx, 1); err != nil {
				t.Fatal(err)
			}

			emb := hashEmbedder{dim: 32}
			now := time.Now().UTC().Truncate(time.Microsecond)
			later := now.Add(90 * time.Minute)
			alice := &user.User{ID: uuid.New(), Email: "Alice@Example.com", Name: "Alice", PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
				Admin: true, CreatedAt: now.Add(-time.Hour), LastSeenAt: &later}
			bob := &user.User{ID: uuid.New(), Email: "bob@example.com", Name: "Bob", Disabled: true, CreatedAt: now.Add(-time.Minute)}
			exp := now.Add(24 * time.Hour)
			want := []*memory.Memory{
				{ID: uuid.New(), OwnerID: alice.ID, Text: "the spare key is under the blue pot", Permission: memory.Private,
					SharedWith: []uuid.UUID{}, Tags: []string{"home", "keys"}, ExpiresAt: &exp,
					Metadata:  map[string]any{"source": "chat", "n": 2.5, "nested": map[string]any{"ok": true}},
					CreatedAt: now.Add(-30 * time.Minute), UpdatedAt: now, Version: 3},
				{ID: uuid.New(), OwnerID: alice.ID, Text: "dinner on friday with bob", Permission: memory.Shared,
					SharedWith: []uuid.UUID{bob.ID}, Tags: []string{}, Metadata: map[string]any{},
					CreatedAt: now.Add(-20 * time.Minute), UpdatedAt: now.Add(-20 * time.Minute), Version: 1},
				{ID: uuid.New(), OwnerID: bob.ID, Text: "bob sails on weekends", Permission: memory.Public,
					SharedWith: []uuid.UUID{}, Tags: []string{"sailing"}, Metadata: map[string]any{},
					CreatedAt: now.Add(-10 * time.Minute), UpdatedAt: now.Add(-5 * time.Minute), Version: 2},
			}

			// The first schema, written as its release would have.
			exec := func(q string, args ...any) {
				t.Helper()
				if err := db.gorm.WithContext(ctx).Exec(q, args...).Error; err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			for _, u := range []*user.User{alice, bob} {
				exec(`INSERT INTO users (id, email, email_lower, name, password_hash, admin, disabled, created_at, last_seen_at)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, u.ID, u.Email, strings.ToLower(u.Email), u.Name, u.PasswordHash,
					u.Admin, u.Disabled, db.at(u.CreatedAt), db.atPtr(u.LastSeenAt))
			}
			for _, m := range want {
				tok, kid, err := sealer.Seal([]byte(m.Text))
				if err != nil {
					t.Fatal(err)
				}
				md := `{}`
				if len(m.Metadata) > 0 {
					md = `{"source": "chat", "n": 2.5, "nested": {"ok": true}}`
				}
				exec(`INSERT INTO memories (id, owner_id, ciphertext, key_id, permission, metadata, expires_at, created_at, updated_at, version)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, m.ID, m.OwnerID, string(tok), kid, string(m.Permission), md,
					db.atPtr(m.ExpiresAt), db.at(m.CreatedAt), db.at(m.UpdatedAt), m.Version)
				for i, tag := range m.Tags {
					exec(`INSERT INTO memory_tags (memory_id, position, tag) VALUES (?, ?, ?)`, m.ID, i, tag)
				}
				for _, u := range m.SharedWith {
					exec(`INSERT INTO memory_shares (memory_id, user_id) VALUES (?, ?)`, m.ID, u)
				}
				vec := emb.vector(m.Text)
				exec(`INSERT INTO memory_embeddings (memory_id, embedder, dim, embedding) VALUES (?, ?, ?, ?)`,
					m.ID, emb.Name(), len(vec), db.embeddingArg(vec))
			}
			exec(`INSERT INTO activity (user_id, client_id, action, outcome, duration_ms, at) VALUES (?, ?, ?, ?, ?, ?)`,
				alice.ID, "pat", "tool:submit_memory", "ok", 12, db.at(now))

			firstTables := []string{"users", "memories", "memory_tags", "memory_shares", "memory_embeddings", "activity"}
			counts := func() []int64 {
				out := make([]int64, len(firstTables))
				for i, tbl := range firstTables {
					if err := db.gorm.WithContext(ctx).Raw("SELECT count(*) FROM " + tbl).Scan(&out[i]).Error; err != nil {
						t.Fatalf("count %s: %v", tbl, err)
					}
				}
				return out
			}
			before := counts()

			// Every later migration, one at a time.
			applied := 1
			for {
				res, err := p.UpByOne(ctx)
				if errors.Is(err, goose.ErrNoNextVersion) {
					break
				}
				if err != nil {
					t.Fatalf("migration after version %d: %v", applied, err)
				}
				applied++
				if got := counts(); !slices.Equal(got, before) {
					t.Fatalf("after %s the first schema's tables %v hold %v rows, before %v", res.Source.Path, firstTables, got, before)
				}
			}
			if applied != len(srcs) {
				t.Fatalf("applied %d of %d migrations", applied, len(srcs))
			}
			if err := db.CheckSchema(ctx); err != nil {
				t.Fatal(err)
			}
			if err := db.EnsureVectorIndex(ctx, emb.dim); err != nil {
				t.Fatal(err)
			}

			// Everything reads back through today's code.
			for _, u := range []*user.User{alice, bob} {
				got, err := db.Users().ByID(ctx, u.ID)
				if err != nil || !reflect.DeepEqual(got, u) {
					t.Fatalf("user after upgrade:\n got %+v (%v)\nwant %+v", got, err, u)
				}
			}
			for _, m := range want {
				got, err := db.Memories().Get(ctx, m.ID)
				if err != nil || !reflect.DeepEqual(got, m) {
					t.Fatalf("memory after upgrade:\n got %+v (%v)\nwant %+v", got, err, m)
				}
			}
			hits, err := db.Memories().Search(ctx, memory.SearchQuery{
				Viewer: alice.ID, Vector: memory.Vector{Embedder: emb.Name(), Values: emb.vector("spare key blue pot")}, Limit: 5, Now: now,
			})
			if err != nil || len(hits) == 0 || hits[0].Memory.ID != want[0].ID {
				t.Fatalf("vector search after upgrade: %v %v", hits, err)
			}
			page, err := db.Memories().List(ctx, memory.ListQuery{Viewer: bob.ID, Owner: alice.ID, Now: now})
			if err != nil || len(page.Memories) != 1 || page.Memories[0].ID != want[1].ID {
				t.Fatalf("bob's view of alice after upgrade: %v %v", page.Memories, err)
			}

			// And the upgraded database takes new writes.
			svc := memory.NewService(db.Memories(), emb, user.NewService(db.Users(), nil), nil)
			if _, err := svc.Create(ctx, alice.ID, memory.Draft{Text: "written after the upgrade", SharedWith: []string{bob.Email}}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// destructive matches statements that can lose data.
var destructive = regexp.MustCompile(`(?i)\b(DROP\s+TABLE|DROP\s+COLUMN|TRUNCATE|DELETE\s+FROM|ALTER\s+TABLE\s+\S+\s+RENAME)\b`)

// copyMarker must precede a destructive statement in an Up migration: it
// says where the data went first (e.g. "-- picard:copied-first: rows moved
// to memories_v2 above"). Down migrations are never run by the server.
const copyMarker = "-- picard:copied-first:"

// unmarkedDestructive returns the destructive statements of the Up part of
// a migration that no copyMarker comment line precedes, as "line: text".
func unmarkedDestructive(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	up, marked, line := false, false, 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(text, "-- +goose Up"):
			up = true
			continue
		case strings.HasPrefix(text, "-- +goose Down"):
			up = false
			continue
		case strings.HasPrefix(text, copyMarker):
			marked = strings.TrimSpace(strings.TrimPrefix(text, copyMarker)) != ""
			continue
		case strings.HasPrefix(text, "--"):
			continue
		}
		if up && destructive.MatchString(text) && !marked {
			out = append(out, fmt.Sprintf("%d: %s", line, text))
		}
		if text != "" {
			marked = false
		}
	}
	return out, sc.Err()
}

// TestMigrationsAreNotDestructive scans the Up part of every migration of
// both dialects for statements that drop or delete data, and requires each
// to be preceded by a comment line with copyMarker and a reason.
func TestMigrationsAreNotDestructive(t *testing.T) {
	// The scanner itself.
	sample := `-- +goose Up
CREATE TABLE memories_v2 (id TEXT);
DROP TABLE memories;
-- picard:copied-first: every row went to memories_v2 above
ALTER TABLE memories DROP COLUMN ciphertext;
-- picard:copied-first:
DELETE FROM memory_tags;
-- +goose Down
DROP TABLE memories_v2;
`
	got, err := unmarkedDestructive(strings.NewReader(sample))
	if want := []string{"3: DROP TABLE memories;", "7: DELETE FROM memory_tags;"}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("scanner found %q, want %q", got, want)
	}

	files := 0
	err = fs.WalkDir(migrations, "migrations", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".sql") {
			return err
		}
		files++
		f, err := migrations.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		bad, err := unmarkedDestructive(f)
		for _, b := range bad {
			t.Errorf("%s:%s destroys data; copy it first and say so in a %q comment line before it", path, b, copyMarker)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatal("no migrations found")
	}
}
