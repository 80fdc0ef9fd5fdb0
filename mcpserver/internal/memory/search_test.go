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
	got := Fuse(10, Ranking{vec, 1}, Ranking{lex, 1})
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
	if top := Fuse(1, Ranking{vec, 1}, Ranking{lex, 1}); len(top) != 1 || top[0].ID != b {
		t.Errorf("limit 1: %v", top)
	}
	// One empty ranking: the other's scores are halved.
	if only := Fuse(10, Ranking{nil, 1}, Ranking{lex, 1}); len(only) != 2 || only[0].ID != b || only[0].Score != 0.5 {
		t.Errorf("lexical only: %v", only)
	}
	// A tie-breaking vector ranking reorders only near-equal lexical
	// scores, and its own hits come after every lexical hit.
	e, f := uuid.New(), uuid.New()
	lex2 := []Hit{{d, 10}, {b, 9.95}, {e, 2}}
	vec2 := []Hit{{f, 0.9}, {b, 0.8}, {e, 0.7}, {d, 0.1}}
	tb := Fuse(10, Ranking{vec2, TieBreakWeight}, Ranking{lex2, 1})
	if len(tb) != 4 || tb[0].ID != b || tb[1].ID != d || tb[2].ID != e || tb[3].ID != f {
		t.Errorf("tie-break order %v, want b d e f", tb)
	}
	if w := (TieBreakWeight*(0.8/0.9) + 9.95/10) / (1 + TieBreakWeight); math.Abs(tb[0].Score-w) > 1e-12 {
		t.Errorf("weighted score %v, want %v", tb[0].Score, w)
	}
	if Fuse(10) != nil || Fuse(10, Ranking{lex, 0}) != nil {
		t.Error("no weight: hits returned")
	}
	// Ties are broken by id, so the order does not depend on map order.
	x, y := uuid.MustParse("00000000-0000-0000-0000-000000000001"), uuid.MustParse("00000000-0000-0000-0000-000000000002")
	for range 20 {
		if r := Fuse(10, Ranking{[]Hit{{y, 1}, {x, 1}}, 1}); r[0].ID != x || r[1].ID != y {
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
