package store

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"picard.dev/mcpserver/internal/memory"
	"picard.dev/mcpserver/internal/user"
)

// TestSearchCoherence checks that a write between two searches is seen by
// the second, whichever path it takes (on SQLite, the in-memory search
// index replaying memory_changes), including writes through another handle
// on the same database (another process, such as an admin command) and a
// log pruned past the index's cursor.
func TestSearchCoherence(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			alice, bob, carol := f.user("alice"), f.user("bob"), f.user("carol")
			// Another handle, as another process would open it.
			other := f.open(f.sealer)
			osvc := memory.NewService(other.Memories(), f.emb, user.NewService(other.Users(), f.clock.Now), f.clock.Now)

			check := func(step string, viewer uuid.UUID, now time.Time, q memory.SearchQuery, want ...*memory.Memory) {
				t.Helper()
				q.Viewer, q.Now, q.Limit = viewer, now, 100
				q.Vector = memory.Vector{Embedder: f.emb.Name(), Values: f.emb.vector("garden note")}
				res, err := f.mem.Search(f.ctx, q)
				if err != nil {
					t.Fatalf("%s: %v", step, err)
				}
				wantIDs := make([]uuid.UUID, len(want))
				for i, m := range want {
					wantIDs[i] = m.ID
				}
				if got := sortedIDs(scoredIDs(res)); !slices.Equal(got, sortedIDs(wantIDs)) {
					t.Errorf("%s: got %v, want %v", step, got, sortedIDs(wantIDs))
				}
			}
			now := f.clock.Now
			all := memory.SearchQuery{}

			pub := f.create(alice, memory.Draft{Text: "a garden note", Permission: "public"})
			check("public, cold", bob, now(), all, pub)
			check("public, warm", bob, now(), all, pub)

			priv := f.create(alice, memory.Draft{Text: "a private garden note"})
			check("private of another", bob, now(), all, pub)
			check("own private", alice, now(), all, pub, priv)

			if _, err := f.svc.SetPermission(f.ctx, alice, pub.ID, "shared", []string{"carol@example.com"}); err != nil {
				t.Fatal(err)
			}
			check("shared with carol, bob", bob, now(), all)
			check("shared with carol, carol", carol, now(), all, pub)
			if _, err := f.svc.SetPermission(f.ctx, alice, pub.ID, "shared", []string{"bob@example.com"}); err != nil {
				t.Fatal(err)
			}
			check("reshared with bob, bob", bob, now(), all, pub)
			check("unshared from carol", carol, now(), all)
			check("owner and permission filters", bob, now(), memory.SearchQuery{Owner: alice, Permission: memory.Shared}, pub)
			check("permission filter", bob, now(), memory.SearchQuery{Permission: memory.Public})
			if _, err := f.svc.SetPermission(f.ctx, alice, pub.ID, "public", nil); err != nil {
				t.Fatal(err)
			}
			check("public again", carol, now(), all, pub)

			// Expiry is evaluated at the query's time, to the microsecond.
			at := now().Add(time.Hour).Truncate(time.Microsecond)
			atp := &at
			if _, err := f.svc.Update(f.ctx, alice, pub.ID, memory.Patch{ExpiresAt: &atp}); err != nil {
				t.Fatal(err)
			}
			check("before expiry", bob, at.Add(-time.Microsecond), all, pub)
			check("at expiry", bob, at, all)
			check("at expiry, owner", alice, at, all, priv)

			// Tags are filtered in SQL; the index must not be in the way.
			tagged := f.create(bob, memory.Draft{Text: "tagged garden note", Permission: "public", Tags: []string{"t1"}})
			check("tag filter", carol, now(), memory.SearchQuery{Tags: []string{"t1"}}, tagged)
			check("new public of bob", carol, now(), all, pub, tagged)

			// Writes through another handle.
			fromOther, err := osvc.Create(f.ctx, carol, memory.Draft{Text: "garden note from elsewhere", Permission: "public"})
			if err != nil {
				t.Fatal(err)
			}
			check("created elsewhere", bob, now(), all, pub, tagged, fromOther)
			if _, err := osvc.SetPermission(f.ctx, carol, fromOther.ID, "private", nil); err != nil {
				t.Fatal(err)
			}
			check("made private elsewhere", bob, now(), all, pub, tagged)

			if _, err := f.svc.Delete(f.ctx, bob, []uuid.UUID{tagged.ID}); err != nil {
				t.Fatal(err)
			}
			check("deleted", carol, now(), all, pub, fromOther)

			// Deleting a user cascades to their memories.
			if _, err := osvc.SetPermission(f.ctx, carol, fromOther.ID, "public", nil); err != nil {
				t.Fatal(err)
			}
			check("public again elsewhere", bob, now(), all, pub, fromOther)
			if err := other.Users().Delete(f.ctx, carol); err != nil {
				t.Fatal(err)
			}
			check("owner deleted elsewhere", bob, now(), all, pub)

			if b.name != DialectSQLite {
				return
			}
			// A log pruned past the cursor makes the index load again.
			late, err := osvc.Create(f.ctx, bob, memory.Draft{Text: "late garden note", Permission: "public"})
			if err != nil {
				t.Fatal(err)
			}
			if err := f.db.session(f.ctx).Exec("DELETE FROM memory_changes WHERE seq < (SELECT max(seq) FROM memory_changes)").Error; err != nil {
				t.Fatal(err)
			}
			check("after pruning", alice, now(), all, pub, priv, late)
			if f.db.searchIx.log.cursor == 0 {
				t.Error("the index did not load")
			}
		})
	}
}

// TestSearchVectorBound checks that SQLite search gives the same results
// whether the search index keeps every vector, some (its byte bound
// reached) or none, through the index and through the SQL candidate query
// (a tag filter), and that the kept vectors stay within the bound.
func TestSearchVectorBound(t *testing.T) {
	f := newFixture(t, backends()[0])
	alice := f.user("alice")
	for i := range 12 {
		f.create(alice, memory.Draft{Text: "garden note number " + strconv.Itoa(i), Permission: "public", Tags: []string{"t" + strconv.Itoa(i%2)}})
	}
	perVector := vectorBytes(make([]float32, f.emb.dim))
	handles := map[string]int64{"all": 0, "five": 5 * perVector, "none": -1}
	queries := map[string]memory.SearchQuery{"index": {}, "sql": {Tags: []string{"t1"}}}
	want := map[string][]memory.Scored{}
	for _, name := range []string{"all", "five", "none"} {
		opts := f.opts
		opts.Sealer, opts.VectorCacheBytes = f.sealer, handles[name]
		db, err := Open(f.ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		for qname, q := range queries {
			q.Viewer, q.Now, q.Limit = alice, f.clock.Now(), 5
			q.Vector = memory.Vector{Embedder: f.emb.Name(), Values: f.emb.vector("garden note number 3")}
			for _, pass := range []string{"cold", "warm"} {
				res, err := db.Memories().Search(f.ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				got := make([]memory.Scored, len(res))
				for i, r := range res {
					got[i] = memory.Scored{Memory: &memory.Memory{ID: r.Memory.ID}, Score: r.Score}
				}
				if w, ok := want[qname]; !ok {
					want[qname] = got
				} else if !slices.EqualFunc(got, w, func(a, b memory.Scored) bool { return a.Memory.ID == b.Memory.ID && a.Score == b.Score }) {
					t.Errorf("%s, %s query, %s: got %v, want %v", name, qname, pass, scoredIDs(got), scoredIDs(w))
				}
			}
		}
		ix := db.searchIx
		kept := 0
		for _, e := range ix.entries {
			if e.vec != nil {
				kept++
			}
		}
		switch name {
		case "all":
			if kept != 12 {
				t.Errorf("all: kept %d vectors, want 12", kept)
			}
		case "five":
			if kept != 5 || ix.vecBytes > ix.maxBytes {
				t.Errorf("five: kept %d vectors (%d bytes, bound %d), want 5", kept, ix.vecBytes, ix.maxBytes)
			}
		case "none":
			if kept != 0 || ix.vecBytes != 0 {
				t.Errorf("none: kept %d vectors (%d bytes)", kept, ix.vecBytes)
			}
		}
	}
}
