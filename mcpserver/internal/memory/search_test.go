package memory

import (
	"math"
	"testing"

	"github.com/google/uuid"
)

func TestFuse(t *testing.T) {
	a, b, c, d := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	vec := []Hit{{a, 0.8}, {b, 0.4}, {c, 0.2}}
	lex := []Hit{{b, 12}, {d, 6}}
	got := Fuse(10, vec, lex)
	want := map[uuid.UUID]float64{
		a: (1 + 0) / 2.0,   // best by vector, absent from lexical
		b: (0.5 + 1) / 2.0, // half the best cosine, best BM25
		c: (0.25 + 0) / 2.0,
		d: (0 + 0.5) / 2.0,
	}
	if len(got) != 4 || got[0].ID != b || got[1].ID != a {
		t.Fatalf("order %v", got)
	}
	for i, h := range got {
		if math.Abs(h.Score-want[h.ID]) > 1e-12 {
			t.Errorf("score of %v: %v, want %v", h.ID, h.Score, want[h.ID])
		}
		if i > 0 && h.Score > got[i-1].Score {
			t.Errorf("not sorted best first: %v", got)
		}
	}
	// The limit keeps the best.
	if top := Fuse(1, vec, lex); len(top) != 1 || top[0].ID != b {
		t.Errorf("limit 1: %v", top)
	}
	// One empty ranking: the other's scores are halved.
	if only := Fuse(10, nil, lex); len(only) != 2 || only[0].ID != b || only[0].Score != 0.5 {
		t.Errorf("lexical only: %v", only)
	}
	// Ties are broken by id, so the order does not depend on map order.
	x, y := uuid.MustParse("00000000-0000-0000-0000-000000000001"), uuid.MustParse("00000000-0000-0000-0000-000000000002")
	for range 20 {
		if r := Fuse(10, []Hit{{y, 1}, {x, 1}}); r[0].ID != x || r[1].ID != y {
			t.Fatalf("tie order %v", r)
		}
	}
}

func TestParseSearchMode(t *testing.T) {
	for in, want := range map[string]SearchMode{"": ModeHybrid, "hybrid": ModeHybrid, "vector": ModeVector, "lexical": ModeLexical} {
		if got, err := ParseSearchMode(in); err != nil || got != want {
			t.Errorf("%q: %v, %v", in, got, err)
		}
	}
	if _, err := ParseSearchMode("semantic"); err == nil {
		t.Error("semantic accepted")
	}
}
