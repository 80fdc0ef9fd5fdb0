package archive_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"picard.dev/mcpserver/internal/archive"
	"picard.dev/mcpserver/internal/crypt"
	"picard.dev/mcpserver/internal/embed"
	"picard.dev/mcpserver/internal/memory"
	"picard.dev/mcpserver/internal/store"
	"picard.dev/mcpserver/internal/user"
	"picard.dev/shared/argon2id"
)

const (
	ownerID  = "0b5e2c1a-6d1f-4c37-9b36-0d1f2e3a4b5c"
	friendID = "7d0f9a44-2b0e-4a51-8a2f-5c6d7e8f9a0b"
	memID    = "3c9a1d2e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
	memID2   = "5e1b2c3d-4e5f-4a6b-9c8d-7e6f5a4b3c2d"
)

// validArchive is a small archive of kind all; tests break one thing each.
func validArchive() map[string]any {
	return map[string]any{
		"format": "picard-archive", "version": 1, "kind": "all", "exported_at": "2026-01-02T03:04:05Z",
		"users": []any{
			map[string]any{"id": ownerID, "email": "owner@example.com", "name": "Owner", "admin": true, "disabled": false,
				"created_at": "2025-01-01T00:00:00Z", "last_seen_at": nil},
			map[string]any{"id": friendID, "email": "friend@example.com", "name": "Friend", "admin": false, "disabled": true,
				"created_at": "2025-01-02T00:00:00Z", "last_seen_at": "2025-06-01T12:00:00.123456Z"},
		},
		"memories": []any{
			map[string]any{"id": memID, "owner": "owner@example.com", "text": "sailing at dawn", "permission": "shared",
				"shared_with": []any{"friend@example.com"}, "tags": []any{"boats", "plans"},
				"metadata":        map[string]any{"source": "import", "n": 3.5, "nested": map[string]any{"a": []any{1.0, "x"}}},
				"expiration_date": "2030-01-01T00:00:00Z", "created_at": "2025-02-01T00:00:00Z", "updated_at": "2025-03-01T00:00:00.5Z"},
			map[string]any{"id": memID2, "owner": "friend@example.com", "text": "an old memory", "permission": "private",
				"shared_with": []any{}, "tags": []any{}, "metadata": map[string]any{},
				"expiration_date": "2020-01-01T00:00:00Z", "created_at": "2019-01-01T00:00:00Z", "updated_at": "2019-01-01T00:00:00Z"},
		},
	}
}

func encode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadRejectsBadArchives(t *testing.T) {
	if _, err := archive.Read(bytes.NewReader(encode(t, validArchive()))); err != nil {
		t.Fatalf("valid archive: %v", err)
	}
	users := func(a map[string]any) []any { return a["users"].([]any) }
	mems := func(a map[string]any) []any { return a["memories"].([]any) }
	mem := func(a map[string]any, i int) map[string]any { return mems(a)[i].(map[string]any) }
	for _, c := range []struct {
		name   string
		breakA func(a map[string]any)
		want   string // in the error
	}{
		{"format", func(a map[string]any) { a["format"] = "something-else" }, `archive: archive: format is "something-else"`},
		{"version", func(a map[string]any) { a["version"] = 2 }, "version 2 is not supported"},
		{"kind", func(a map[string]any) { a["kind"] = "some" }, `kind is "some"`},
		{"unknown field", func(a map[string]any) { mem(a, 1)["colour"] = "red" }, `unknown field "colour"`},
		{"empty text", func(a map[string]any) { mem(a, 1)["text"] = "  " }, "memories[1] (id " + memID2 + "): memory.text: must not be empty"},
		{"long text", func(a map[string]any) { mem(a, 0)["text"] = strings.Repeat("x", memory.MaxTextChars+1) }, "memories[0] (id " + memID + "): memory.text: has 32769 characters"},
		{"permission", func(a map[string]any) { mem(a, 1)["permission"] = "secret" }, `memories[1] (id ` + memID2 + `): memory.permission: unknown permission "secret"`},
		{"shares on private", func(a map[string]any) { mem(a, 1)["shared_with"] = []any{"owner@example.com"} }, "memories[1] (id " + memID2 + "): memory.shared_with: is only allowed with permission shared"},
		{"share not an email", func(a map[string]any) { mem(a, 0)["shared_with"] = []any{"nobody"} }, `shared_with[0]: "nobody" is not an email address`},
		{"too many tags", func(a map[string]any) { mem(a, 0)["tags"] = make([]any, 33) }, "memory.tags: has 33 tags"},
		{"unknown owner", func(a map[string]any) { mem(a, 1)["owner"] = "ghost@example.com" }, `owner "ghost@example.com" is not among the archive's users`},
		{"duplicate memory", func(a map[string]any) { mem(a, 1)["id"] = memID }, "memories[1] (id " + memID + "): the id appears twice"},
		{"no id", func(a map[string]any) { delete(mem(a, 1), "id") }, "memories[1]: memory.id: is required"},
		{"no created_at", func(a map[string]any) { delete(mem(a, 1), "created_at") }, "created_at and updated_at are required"},
		{"metadata too large", func(a map[string]any) {
			mem(a, 0)["metadata"] = map[string]any{"pad": strings.Repeat("y", memory.MaxMetadataBytes)}
		}, "memory.metadata: is"},
		{"bad email", func(a map[string]any) { users(a)[1].(map[string]any)["email"] = "not an email" }, "users[1] (not an email): user.email: is not a valid email address"},
		{"duplicate email", func(a map[string]any) { users(a)[1].(map[string]any)["email"] = "OWNER@example.com" }, "email OWNER@example.com appears twice"},
		{"duplicate user id", func(a map[string]any) { users(a)[1].(map[string]any)["id"] = ownerID }, "appears twice"},
		{"bad hash", func(a map[string]any) { users(a)[0].(map[string]any)["password_hash"] = "plaintext!" }, "users[0] (owner@example.com): user.password_hash: is not an argon2id hash"},
		{"expensive hash", func(a map[string]any) {
			users(a)[0].(map[string]any)["password_hash"] = "$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5"
		}, "user.password_hash"},
		{"hash in a user archive", func(a map[string]any) {
			a["kind"] = "user"
			a["users"] = users(a)[:1]
			a["memories"] = mems(a)[:1]
			users(a)[0].(map[string]any)["password_hash"] = validHash(t)
		}, "carries no password hash"},
		{"two users in a user archive", func(a map[string]any) { a["kind"] = "user" }, "names exactly one account"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := validArchive()
			c.breakA(a)
			_, err := archive.Read(bytes.NewReader(encode(t, a)))
			var ae *archive.Error
			if err == nil || !errors.As(err, &ae) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an *archive.Error containing %q", err, c.want)
			}
		})
	}
	for _, raw := range []string{"", "[]", "{", `{"format":"picard-archive","version":1,"kind":"all","users":[],"memories":[]} {}`} {
		if _, err := archive.Read(strings.NewReader(raw)); err == nil {
			t.Errorf("%q: accepted", raw)
		}
	}
}

func validHash(t testing.TB) string {
	h, err := argon2id.Hash("a good long password")
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestWriterRead writes an archive with the streaming Writer and reads it
// back unchanged.
func TestWriterRead(t *testing.T) {
	want, err := archive.Read(bytes.NewReader(encode(t, validArchive())))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := archive.NewWriter(&buf, want.Kind, want.ExportedAt)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range want.Users {
		if err := w.User(u); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range want.Memories {
		if err := w.Memory(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.User(want.Users[0]); err == nil {
		t.Fatal("a user after the memories was accepted")
	}
	got, err := archive.Read(&buf)
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read back\n%+v\nwant\n%+v", got, want)
	}

	// An empty archive is valid too.
	buf.Reset()
	w, _ = archive.NewWriter(&buf, archive.KindAll, time.Now())
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if a, err := archive.Read(&buf); err != nil || len(a.Users)+len(a.Memories) != 0 {
		t.Fatalf("empty archive: %v %+v", err, a)
	}
}

type services struct {
	users *user.Service
	mem   *memory.Service
	db    *store.DB
}

func newServices(t *testing.T) services {
	t.Helper()
	ctx := context.Background()
	key, _ := crypt.GenerateKey()
	kr, err := crypt.ParseKeys(key)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, store.Options{SQLitePath: filepath.Join(t.TempDir(), "a.db"), Sealer: kr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	us := user.NewService(db.Users(), nil)
	return services{users: us, mem: memory.NewService(db.Memories(), embed.NewHash(0), us, nil), db: db}
}

func (s services) importer() archive.Importer {
	return archive.Importer{Accounts: s.users, Memories: s.mem, Batch: 1}
}

func (s services) counts(t *testing.T) (users, memories int) {
	t.Helper()
	us, err := s.users.List(context.Background(), uuid.Nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.mem.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(us), st.Memories
}

// TestImport restores an archive, resumes an interrupted import without
// duplicates, and refuses archives that do not fit the database while
// writing nothing.
func TestImport(t *testing.T) {
	ctx := context.Background()
	full, err := archive.Read(bytes.NewReader(encode(t, validArchive())))
	if err != nil {
		t.Fatal(err)
	}

	s := newServices(t)
	// An import interrupted after the first memory: run the import of a
	// prefix, then the whole archive.
	partial := *full
	partial.Memories = full.Memories[:1]
	st, err := s.importer().Import(ctx, &partial, nil)
	if err != nil || st.AccountsCreated != 2 || st.MemoriesWritten != 1 {
		t.Fatalf("partial import: %+v %v", st, err)
	}
	var calls [][2]int
	st, err = s.importer().Import(ctx, full, func(done, total int) { calls = append(calls, [2]int{done, total}) })
	if err != nil || st.AccountsCreated != 0 || st.AccountsExisting != 2 || st.MemoriesWritten != 1 || st.MemoriesSkipped != 1 {
		t.Fatalf("resumed import: %+v %v", st, err)
	}
	if len(calls) == 0 || calls[len(calls)-1] != [2]int{2, 2} {
		t.Fatalf("progress: %v", calls)
	}
	if u, m := s.counts(t); u != 2 || m != 2 {
		t.Fatalf("%d users, %d memories after import", u, m)
	}
	m, err := s.mem.Get(ctx, uuid.MustParse(ownerID), uuid.MustParse(memID), true)
	if err != nil {
		t.Fatal(err)
	}
	want := full.Memories[0]
	if m.Text != want.Text || m.Permission != memory.Shared || !reflect.DeepEqual(m.SharedWith, []uuid.UUID{uuid.MustParse(friendID)}) ||
		!reflect.DeepEqual(m.Tags, want.Tags) || !reflect.DeepEqual(m.Metadata, want.Metadata) ||
		!m.CreatedAt.Equal(want.CreatedAt) || !m.UpdatedAt.Equal(want.UpdatedAt) || !m.ExpiresAt.Equal(*want.ExpirationDate) {
		t.Fatalf("restored %+v\nfrom %+v", m, want)
	}
	friend, err := s.users.Get(ctx, uuid.MustParse(friendID))
	if err != nil || !friend.Disabled || friend.LastSeenAt == nil || friend.Email != "friend@example.com" {
		t.Fatalf("restored friend %+v %v", friend, err)
	}
	// Restored memories are searchable: their vectors were computed.
	res, err := s.mem.Search(ctx, memory.SearchRequest{Viewer: uuid.MustParse(ownerID), Query: "sailing at dawn"})
	if err != nil || len(res) == 0 || res[0].Memory.ID != uuid.MustParse(memID) {
		t.Fatalf("search after import: %v %v", res, err)
	}

	// Refusals that only the database can tell, each writing nothing.
	fresh := newServices(t)
	if _, err := fresh.users.Register(ctx, user.Registration{Email: "squatter@example.com", Password: "long enough password"}); err != nil {
		t.Fatal(err)
	}
	userArchive := func() *archive.Archive {
		a := *full
		a.Kind = archive.KindUser
		a.Users = full.Users[:1]
		a.Memories = full.Memories[:1]
		return &a
	}
	_, err = fresh.importer().Import(ctx, userArchive(), nil)
	if !errors.Is(err, archive.ErrAccountMissing) || !strings.Contains(err.Error(), "users[0] (owner@example.com)") {
		t.Fatalf("user archive for a missing account: %v", err)
	}
	if _, err := fresh.users.Register(ctx, user.Registration{Email: "owner@example.com", Password: "long enough password"}); err != nil {
		t.Fatal(err)
	}
	_, err = fresh.importer().Import(ctx, userArchive(), nil)
	if err == nil || !strings.Contains(err.Error(), "memories[0] (id "+memID+"): shared_with[0]: no account friend@example.com") {
		t.Fatalf("unknown share: %v", err)
	}
	if u, m := fresh.counts(t); u != 2 || m != 0 {
		t.Fatalf("a refused import wrote: %d users, %d memories", u, m)
	}
	im := fresh.importer()
	im.SkipUnknownShares = true
	st, err = im.Import(ctx, userArchive(), nil)
	if err != nil || st.SharesDropped != 1 || st.MemoriesWritten != 1 || st.AccountsExisting != 1 {
		t.Fatalf("import dropping shares: %+v %v", st, err)
	}
	owner, _ := fresh.users.ByEmail(ctx, "owner@example.com")
	if m, err := fresh.mem.Get(ctx, owner.ID, uuid.MustParse(memID), true); err != nil || len(m.SharedWith) != 0 || m.OwnerID != owner.ID {
		t.Fatalf("memory imported into an existing account: %+v %v", m, err)
	}

	// The same memory id owned by someone else here is a conflict.
	clash := *full
	clash.Users = []archive.User{full.Users[1]}
	clash.Memories = []archive.Memory{full.Memories[0]}
	clash.Memories[0].Owner = "friend@example.com"
	clash.Memories[0].SharedWith = nil
	clash.Memories[0].Permission = "private"
	_, err = fresh.importer().Import(ctx, &clash, nil)
	if !errors.Is(err, memory.ErrConflict) || !strings.Contains(err.Error(), "memories[0] (id "+memID+")") {
		t.Fatalf("id clash: %v", err)
	}
	if u, m := fresh.counts(t); u != 2 || m != 1 {
		t.Fatalf("a refused import wrote: %d users, %d memories", u, m)
	}
}

// FuzzRead feeds arbitrary bytes to the archive parser: it must never
// panic, and whatever it accepts must survive a write and a second read
// unchanged.
func FuzzRead(f *testing.F) {
	f.Add(encode(f, validArchive()))
	f.Add([]byte(`{"format":"picard-archive","version":1,"kind":"user","exported_at":"2026-01-01T00:00:00Z","users":[],"memories":[]}`))
	f.Add([]byte(`{"format":"picard-archive","version":1,"kind":"all","users":[{"id":"` + ownerID + `","email":"a@b.co","created_at":"2025-01-01T00:00:00Z"}],"memories":[{"id":"` + memID + `","owner":"A@b.co","text":" x ","permission":"public","tags":[" t ","t"],"created_at":"2025-01-01T00:00:00Z","updated_at":"2025-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"format":"picard-archive","version":1,"kind":"all","users":null,"memories":[null]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := archive.Read(bytes.NewReader(data))
		if err != nil {
			var ae *archive.Error
			if !errors.As(err, &ae) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		var buf bytes.Buffer
		w, err := archive.NewWriter(&buf, a.Kind, a.ExportedAt)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range a.Users {
			if err := w.User(u); err != nil {
				t.Fatal(err)
			}
		}
		for _, m := range a.Memories {
			if err := w.Memory(m); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		b, err := archive.Read(&buf)
		if err != nil {
			t.Fatalf("an accepted archive does not read back: %v\n%s", err, buf.String())
		}
		if !reflect.DeepEqual(normalised(a), normalised(b)) {
			t.Fatalf("changed on the way round:\n%+v\n%+v", a, b)
		}
	})
}

// normalised is an archive with nil and empty lists and maps made alike,
// which the writer does on purpose.
func normalised(a *archive.Archive) string {
	b, _ := json.Marshal(a)
	var v any
	_ = json.Unmarshal(b, &v)
	out, _ := json.Marshal(v)
	return strings.NewReplacer("null", "[]", "{}", "[]").Replace(string(out))
}
