package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"picard.dev/mcpserver/internal/config"
	"picard.dev/mcpserver/internal/memory"
	"picard.dev/mcpserver/internal/user"
	"picard.dev/shared/pgtest"
)

const archivePassword = "correct horse battery staple"

// cliConfig is the configuration of a command run against dataDir (its own
// generated keys and, without MCP_DATABASE_URL in vars, its own SQLite file).
func cliConfig(t *testing.T, dataDir string, vars map[string]string) *config.Config {
	t.Helper()
	env := map[string]string{"MCP_DATA_DIR": dataDir, "MCP_EMBEDDER": "hash", "MCP_LOG_LEVEL": "warn"}
	for k, v := range vars {
		env[k] = v
	}
	cfg, err := LoadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

type command func(context.Context, *config.Config, *slog.Logger, []string, IO) error

// runCommand runs a subcommand and returns its standard output.
func runCommand(t *testing.T, cmd command, cfg *config.Config, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	log := slog.New(slog.NewTextHandler(&stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	err := cmd(context.Background(), cfg, log, args, IO{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr})
	return stdout.String(), err
}

func openTestCore(t *testing.T, cfg *config.Config) *core {
	t.Helper()
	c, err := openCore(context.Background(), cfg, slog.New(slog.DiscardHandler), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// seed fills a database with accounts and memories that exercise every
// field of the archive: admin and disabled accounts, last-seen times, every
// permission, shares, tags, nested metadata, past and future expiry,
// updated memories, and more memories than one page of a listing.
func seed(t *testing.T, c *core) {
	t.Helper()
	ctx := context.Background()
	reg := func(email string, admin bool) *user.User {
		u, err := c.users.Register(ctx, user.Registration{Email: email, Password: archivePassword, Admin: admin})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	owner, friend, third := reg("owner@example.com", true), reg("Friend@Example.com", false), reg("third@example.com", false)
	if err := c.users.Touch(ctx, friend.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.users.SetDisabled(ctx, third.ID, true); err != nil {
		t.Fatal(err)
	}
	past, future := time.Now().Add(-48*time.Hour), time.Now().Add(30*24*time.Hour)
	create := func(u *user.User, d memory.Draft) *memory.Memory {
		m, err := c.memories.Create(ctx, u.ID, d)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	create(owner, memory.Draft{Text: "private: the spare key is under the blue pot", Tags: []string{"home", "keys"},
		Metadata:  map[string]any{"source": "chat", "confidence": 0.75, "nested": map[string]any{"list": []any{1.0, "two", true, nil}}},
		ExpiresAt: &future})
	create(owner, memory.Draft{Text: "public: I sail on weekends", Permission: "public", Tags: []string{"sailing"}})
	shared := create(owner, memory.Draft{Text: "shared: dinner plans for Friday", SharedWith: []string{"friend@example.com", third.ID.String()}})
	create(owner, memory.Draft{Text: "expired: the old wifi password", ExpiresAt: &past})
	create(friend, memory.Draft{Text: "friend's private note", Metadata: map[string]any{"n": 42.0}})
	text := "shared: dinner plans moved to Saturday"
	if _, err := c.memories.Update(ctx, owner.ID, shared.ID, memory.Patch{Text: &text}); err != nil {
		t.Fatal(err)
	}
	many := make([]memory.Draft, 600)
	for i := range many {
		many[i] = memory.Draft{Text: fmt.Sprintf("log entry %d: nothing happened", i), Tags: []string{"log"}}
	}
	if _, err := c.memories.CreateBatch(ctx, owner.ID, many); err != nil {
		t.Fatal(err)
	}
}

// snapshot is everything a backup must preserve, read through the services.
type snapshot struct {
	Users    []*user.User
	Memories map[uuid.UUID]*memory.Memory
}

func takeSnapshot(t *testing.T, c *core) snapshot {
	t.Helper()
	ctx := context.Background()
	us, err := c.users.List(ctx, uuid.Nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	s := snapshot{Users: us, Memories: map[uuid.UUID]*memory.Memory{}}
	for _, u := range us {
		q := memory.ListQuery{Viewer: u.ID, IncludeExpired: true, Sort: memory.SortCreated, Order: memory.Asc, Limit: memory.MaxListLimit}
		for {
			page, err := c.memories.List(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range page.Memories {
				m.Version = 0 // a restored memory starts a new history
				s.Memories[m.ID] = m
			}
			if page.Next == nil {
				break
			}
			q.After = page.Next
		}
	}
	return s
}

// withoutExportTime decodes an archive, dropping the time of the export.
func withoutExportTime(t *testing.T, archive string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(archive), &v); err != nil {
		t.Fatalf("archive is not JSON: %v", err)
	}
	delete(v, "exported_at")
	return v
}

// TestBackupRestoreRoundTrip exports every account and memory of one
// database, imports the archive into a fresh one (SQLite, and Postgres
// when available: restores cross dialects and encryption keys), and
// checks that everything came back identical: ids, text, permissions,
// shares, tags, metadata, timestamps, accounts with their password hashes.
// A second import changes nothing.
func TestBackupRestoreRoundTrip(t *testing.T) {
	src := cliConfig(t, t.TempDir(), nil)
	sc := openTestCore(t, src)
	seed(t, sc)
	want := takeSnapshot(t, sc)
	backup, err := runCommand(t, exportCommand, src, "--all")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "backup.json")
	if err := os.WriteFile(file, []byte(backup), 0o600); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(backup, `"password_hash":"$argon2id$`) {
		t.Fatalf("the backup lacks password hashes:\n%.2000s", backup)
	}
	for _, m := range withoutExportTime(t, backup)["memories"].([]any) {
		m := m.(map[string]any)
		if m["text"] == "shared: dinner plans moved to Saturday" {
			got := fmt.Sprint(m["shared_with"])
			if got != "[Friend@Example.com third@example.com]" && got != "[third@example.com Friend@Example.com]" {
				t.Fatalf("shares in the backup: %s", got)
			}
		}
	}

	for _, target := range []struct {
		name string
		vars func(t *testing.T) map[string]string
	}{
		{"sqlite", func(*testing.T) map[string]string { return nil }},
		{"postgres", func(t *testing.T) map[string]string {
			return map[string]string{"MCP_DATABASE_URL": pgtest.NewDatabase(t)}
		}},
	} {
		t.Run(target.name, func(t *testing.T) {
			dst := cliConfig(t, t.TempDir(), target.vars(t))
			if _, err := runCommand(t, importCommand, dst, file); err != nil {
				t.Fatal(err)
			}
			dc := openTestCore(t, dst)
			if got := takeSnapshot(t, dc); !reflect.DeepEqual(got, want) {
				diffSnapshots(t, got, want)
			}
			again, err := runCommand(t, exportCommand, dst, "--all")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(withoutExportTime(t, again), withoutExportTime(t, backup)) {
				t.Fatal("the archive of the restored database differs from the backup")
			}

			// Running the import again writes nothing twice.
			if _, err := runCommand(t, importCommand, dst, "--batch", "7", file); err != nil {
				t.Fatal(err)
			}
			if got := takeSnapshot(t, dc); !reflect.DeepEqual(got, want) {
				t.Fatal("a second import changed the database")
			}

			// Restored accounts sign in with their passwords; restored
			// memories are found by search.
			ctx := context.Background()
			if _, err := dc.users.Authenticate(ctx, "owner@example.com", archivePassword); err != nil {
				t.Fatalf("restored owner cannot sign in: %v", err)
			}
			owner, _ := dc.users.ByEmail(ctx, "owner@example.com")
			res, err := dc.memories.Search(ctx, memory.SearchRequest{Viewer: owner.ID, Query: "spare key blue pot"})
			if err != nil || len(res) == 0 || !strings.Contains(res[0].Memory.Text, "spare key") {
				t.Fatalf("search after restore: %v %v", res, err)
			}
		})
	}
}

func diffSnapshots(t *testing.T, got, want snapshot) {
	t.Helper()
	if !reflect.DeepEqual(got.Users, want.Users) {
		for i := range want.Users {
			if i < len(got.Users) && !reflect.DeepEqual(got.Users[i], want.Users[i]) {
				t.Errorf("user %d:\n got %+v\nwant %+v", i, got.Users[i], want.Users[i])
			}
		}
		if len(got.Users) != len(want.Users) {
			t.Errorf("%d users, want %d", len(got.Users), len(want.Users))
		}
	}
	if len(got.Memories) != len(want.Memories) {
		t.Errorf("%d memories, want %d", len(got.Memories), len(want.Memories))
	}
	n := 0
	for id, w := range want.Memories {
		if g := got.Memories[id]; !reflect.DeepEqual(g, w) && n < 5 {
			n++
			t.Errorf("memory %s:\n got %+v\nwant %+v", id, g, w)
		}
	}
	t.FailNow()
}

// TestExportUserImport moves one account's memories to another server
// whose accounts have other ids: shares are resolved by email, and the
// archive is refused, with nothing written, while the account is missing.
func TestExportUserImport(t *testing.T) {
	ctx := context.Background()
	src := cliConfig(t, t.TempDir(), nil)
	sc := openTestCore(t, src)
	seed(t, sc)
	out, err := runCommand(t, exportCommand, src, "--user", "OWNER@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "password_hash") || !strings.Contains(out, `"kind":"user"`) || strings.Contains(out, "friend's private note") {
		t.Fatalf("a user export holds a password hash or another user's memory:\n%.1000s", out)
	}
	file := filepath.Join(t.TempDir(), "owner.json")
	if err := os.WriteFile(file, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}

	dst := cliConfig(t, t.TempDir(), nil)
	dc := openTestCore(t, dst)
	if _, err := runCommand(t, importCommand, dst, file); err == nil || !strings.Contains(err.Error(), "users[0] (owner@example.com)") {
		t.Fatalf("import for a missing account: %v", err)
	}
	for _, e := range []string{"owner@example.com", "friend@example.com", "third@example.com"} {
		if _, err := dc.users.Register(ctx, user.Registration{Email: e, Password: archivePassword}); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := dc.memories.Stats(ctx); st.Memories != 0 {
		t.Fatalf("a refused import wrote %d memories", st.Memories)
	}
	if _, err := runCommand(t, importCommand, dst, file); err != nil {
		t.Fatal(err)
	}
	srcOwner, _ := sc.users.ByEmail(ctx, "owner@example.com")
	dstOwner, _ := dc.users.ByEmail(ctx, "owner@example.com")
	dstFriend, _ := dc.users.ByEmail(ctx, "friend@example.com")
	dstThird, _ := dc.users.ByEmail(ctx, "third@example.com")
	want, got := takeSnapshot(t, sc), takeSnapshot(t, dc)
	count := 0
	for id, w := range want.Memories {
		if w.OwnerID != srcOwner.ID {
			continue
		}
		count++
		g := got.Memories[id]
		if g == nil || g.OwnerID != dstOwner.ID || g.Text != w.Text || g.Permission != w.Permission ||
			!reflect.DeepEqual(g.Tags, w.Tags) || !reflect.DeepEqual(g.Metadata, w.Metadata) ||
			!g.CreatedAt.Equal(w.CreatedAt) || !g.UpdatedAt.Equal(w.UpdatedAt) || !reflect.DeepEqual(g.ExpiresAt, w.ExpiresAt) ||
			len(g.SharedWith) != len(w.SharedWith) {
			t.Fatalf("memory %s:\n got %+v\nwant %+v", id, g, w)
		}
		if w.Permission == memory.Shared {
			wantShares := []uuid.UUID{dstFriend.ID, dstThird.ID}
			if strings.Compare(wantShares[0].String(), wantShares[1].String()) > 0 {
				wantShares[0], wantShares[1] = wantShares[1], wantShares[0]
			}
			if !reflect.DeepEqual(g.SharedWith, wantShares) {
				t.Fatalf("shares %v, want %v", g.SharedWith, wantShares)
			}
		}
	}
	if count != len(got.Memories) {
		t.Fatalf("%d memories imported, want %d", len(got.Memories), count)
	}
}

// TestImportRefusesABadFile: a broken record stops the import before
// anything is written, and the error names the record.
func TestImportRefusesABadFile(t *testing.T) {
	src := cliConfig(t, t.TempDir(), nil)
	seed(t, openTestCore(t, src))
	backup, err := runCommand(t, exportCommand, src, "--all")
	if err != nil {
		t.Fatal(err)
	}
	var a map[string]any
	if err := json.Unmarshal([]byte(backup), &a); err != nil {
		t.Fatal(err)
	}
	mems := a["memories"].([]any)
	bad := mems[300].(map[string]any)
	bad["tags"] = []any{strings.Repeat("t", 65)}
	b, _ := json.Marshal(a)
	file := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	dst := cliConfig(t, t.TempDir(), nil)
	_, err = runCommand(t, importCommand, dst, file)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("memories[300] (id %s): memory.tags[0]", bad["id"])) {
		t.Fatalf("bad file: %v", err)
	}
	dc := openTestCore(t, dst)
	us, _ := dc.users.List(context.Background(), uuid.Nil, 10)
	st, _ := dc.memories.Stats(context.Background())
	if len(us) != 0 || st.Memories != 0 {
		t.Fatalf("a refused import wrote %d users and %d memories", len(us), st.Memories)
	}

	for _, args := range [][]string{{}, {"--user", "a@b.co", "--all"}} {
		if _, err := runCommand(t, exportCommand, dst, args...); err == nil {
			t.Errorf("export %v: accepted", args)
		}
	}
	for _, args := range [][]string{{}, {"a", "b"}, {"--batch", "0", "x"}} {
		if _, err := runCommand(t, importCommand, dst, args...); err == nil {
			t.Errorf("import %v: accepted", args)
		}
	}
}
