package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fernet/fernet-go"
	"github.com/google/uuid"

	"picard.dev/mcpserver/internal/memory"
	"picard.dev/mcpserver/internal/user"
	"picard.dev/shared/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fernetSealer is a real Fernet sealer for the tests: the first key seals,
// all keys open, key ids are given names.
type fernetSealer struct {
	keys []*fernet.Key
	ids  []string
}

func newSealer(named ...any) *fernetSealer {
	s := &fernetSealer{}
	for i := 0; i < len(named); i += 2 {
		s.ids = append(s.ids, named[i].(string))
		s.keys = append(s.keys, named[i+1].(*fernet.Key))
	}
	return s
}

func newKey(tb testing.TB) *fernet.Key {
	var k fernet.Key
	if err := k.Generate(); err != nil {
		tb.Fatal(err)
	}
	return &k
}

func (s *fernetSealer) Seal(p []byte) ([]byte, string, error) {
	tok, err := fernet.EncryptAndSign(p, s.keys[0])
	return tok, s.ids[0], err
}

func (s *fernetSealer) Open(tok []byte) ([]byte, error) {
	msg := fernet.VerifyAndDecrypt(tok, 0, s.keys)
	if msg == nil {
		return nil, errors.New("fernet: no key opens this token")
	}
	return msg, nil
}

func (s *fernetSealer) PrimaryID() string { return s.ids[0] }

// hashEmbedder is a deterministic embedder for the tests: each lower-cased
// word is hashed to a dimension with a sign, and the sum is normalised.
type hashEmbedder struct{ dim int }

func (e hashEmbedder) Name() string { return fmt.Sprintf("test-hash-%d", e.dim) }

func (e hashEmbedder) Embed(_ context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		out[i] = e.vector(t)
	}
	return out, nil
}

func (e hashEmbedder) vector(text string) []float32 {
	v := make([]float32, e.dim)
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	}) {
		h := fnv.New64a()
		h.Write([]byte(w))
		x := mix(h.Sum64())
		sign := float32(1)
		if x>>63 == 1 {
			sign = -1
		}
		v[x%uint64(e.dim)] += sign
	}
	var sum float64
	for _, x := range v {
		sum += float64(x * x)
	}
	if sum == 0 {
		v[0] = 1
		return v
	}
	inv := float32(1 / math.Sqrt(sum))
	for i := range v {
		v[i] *= inv
	}
	return v
}

// mix is splitmix64's finaliser: FNV of short words that differ in one
// character differ in few bits, which would put them in the same dimension.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// clock is the services' clock: it starts at a fixed instant and moves one
// millisecond per reading, so timestamps are distinct and ordered.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testIndexKey keys the lexical index of the test databases.
var testIndexKey = []byte("0123456789abcdef0123456789abcdef")

// backend opens a fresh, empty database of one dialect.
type backend struct {
	name    string
	options func(tb testing.TB) Options
}

func backends() []backend {
	return []backend{
		{DialectSQLite, func(tb testing.TB) Options {
			return Options{SQLitePath: filepath.Join(tb.TempDir(), "mcpserver.db"), IndexKey: testIndexKey}
		}},
		{DialectPostgres, func(tb testing.TB) Options {
			return Options{URL: pgtest.NewDatabase(tb), IndexKey: testIndexKey}
		}},
	}
}

// fixture is a migrated database with services over it.
type fixture struct {
	tb     testing.TB
	ctx    context.Context
	opts   Options
	sealer *fernetSealer
	db     *DB
	mem    *Memories
	users  *Users
	clock  *clock
	emb    hashEmbedder
	svc    *memory.Service
	usvc   *user.Service
}

func newFixture(tb testing.TB, b backend) *fixture {
	tb.Helper()
	f := &fixture{tb: tb, ctx: context.Background(), opts: b.options(tb), clock: newClock(), emb: hashEmbedder{dim: 64}}
	f.sealer = newSealer("k1", newKey(tb))
	f.db = f.open(f.sealer)
	if err := f.db.Migrate(f.ctx); err != nil {
		tb.Fatal(err)
	}
	if err := f.db.EnsureVectorIndex(f.ctx, f.emb.dim); err != nil {
		tb.Fatal(err)
	}
	f.mem, f.users = f.db.Memories(), f.db.Users()
	f.usvc = user.NewService(f.users, f.clock.Now)
	f.svc = memory.NewService(f.mem, f.emb, f.usvc, f.clock.Now)
	return f
}

// open opens another handle on the fixture's database with a sealer.
func (f *fixture) open(s Sealer) *DB { return f.openWith(s, f.opts.IndexKey) }

// openWith opens another handle on the fixture's database with a sealer
// and an index key.
func (f *fixture) openWith(s Sealer, indexKey []byte) *DB {
	f.tb.Helper()
	opts := f.opts
	opts.Sealer, opts.IndexKey = s, indexKey
	db, err := Open(f.ctx, opts)
	if err != nil {
		f.tb.Fatal(err)
	}
	f.tb.Cleanup(func() { db.Close() })
	return db
}

// otherIndexKey is an index key other than the fixtures' (testIndexKey).
var otherIndexKey = []byte("another key of thirty-two bytes!")

// openIndexKey opens another handle on the fixture's database, with its
// sealer and the index key key.
func (f *fixture) openIndexKey(key []byte) *DB { return f.openWith(f.sealer, key) }

// user creates an account (without a password, to keep argon2 out of the
// tests) and returns its id.
func (f *fixture) user(name string) uuid.UUID {
	f.tb.Helper()
	u := &user.User{ID: uuid.New(), Email: name + "@example.com", Name: name, CreatedAt: f.clock.Now().Truncate(time.Microsecond)}
	if err := f.users.Create(f.ctx, u); err != nil {
		f.tb.Fatal(err)
	}
	return u.ID
}

func (f *fixture) create(owner uuid.UUID, d memory.Draft) *memory.Memory {
	f.tb.Helper()
	m, err := f.svc.Create(f.ctx, owner, d)
	if err != nil {
		f.tb.Fatalf("create %q: %v", d.Text, err)
	}
	return m
}

func (f *fixture) count(query string, args ...any) int {
	f.tb.Helper()
	var n int
	if err := f.db.session(f.ctx).Raw(query, args...).Scan(&n).Error; err != nil {
		f.tb.Fatalf("%s: %v", query, err)
	}
	return n
}

// listAll follows cursors through every page of q.
func (f *fixture) listAll(q memory.ListQuery) []*memory.Memory {
	f.tb.Helper()
	var out []*memory.Memory
	for {
		p, err := f.mem.List(f.ctx, q)
		if err != nil {
			f.tb.Fatal(err)
		}
		out = append(out, p.Memories...)
		if p.Next == nil {
			return out
		}
		q.After = p.Next
	}
}

func ids(ms []*memory.Memory) []uuid.UUID {
	out := make([]uuid.UUID, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func scoredIDs(ss []memory.Scored) []uuid.UUID {
	out := make([]uuid.UUID, len(ss))
	for i, s := range ss {
		out[i] = s.Memory.ID
	}
	return out
}

func sortedIDs(in []uuid.UUID) []uuid.UUID {
	out := slices.Clone(in)
	slices.SortFunc(out, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// names maps ids back to the names a test gave its memories, for messages.
type names map[uuid.UUID]string

func (n names) of(in []uuid.UUID) []string {
	out := make([]string, len(in))
	for i, id := range in {
		if s, ok := n[id]; ok {
			out[i] = s
		} else {
			out[i] = id.String()[:8]
		}
	}
	slices.Sort(out)
	return out
}

// sameMemory fails unless got equals want in every field.
func sameMemory(tb testing.TB, want, got *memory.Memory) {
	tb.Helper()
	wantExp, gotExp := "nil", "nil"
	if want.ExpiresAt != nil {
		wantExp = want.ExpiresAt.UTC().Format(time.RFC3339Nano)
	}
	if got.ExpiresAt != nil {
		gotExp = got.ExpiresAt.UTC().Format(time.RFC3339Nano)
	}
	switch {
	case got.ID != want.ID, got.OwnerID != want.OwnerID, got.Text != want.Text, got.Permission != want.Permission,
		got.Version != want.Version:
		tb.Errorf("memory differs:\nwant %+v\n got %+v", want, got)
	case !slices.Equal(got.Tags, want.Tags):
		tb.Errorf("tags: want %q, got %q", want.Tags, got.Tags)
	case !slices.Equal(sortedIDs(got.SharedWith), sortedIDs(want.SharedWith)):
		tb.Errorf("shared with: want %v, got %v", want.SharedWith, got.SharedWith)
	case fmt.Sprint(got.Metadata) != fmt.Sprint(want.Metadata):
		tb.Errorf("metadata: want %v, got %v", want.Metadata, got.Metadata)
	case wantExp != gotExp:
		tb.Errorf("expires: want %s, got %s", wantExp, gotExp)
	case !got.CreatedAt.Equal(want.CreatedAt), !got.UpdatedAt.Equal(want.UpdatedAt):
		tb.Errorf("times: want %s/%s, got %s/%s", want.CreatedAt, want.UpdatedAt, got.CreatedAt, got.UpdatedAt)
	case got.CreatedAt.Location() != time.UTC:
		tb.Errorf("created_at is not UTC: %s", got.CreatedAt)
	}
}

func ptr[T any](v T) *T { return &v }
