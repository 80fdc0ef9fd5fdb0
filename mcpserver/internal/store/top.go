package store

import (
	"bytes"
	"slices"

	"github.com/google/uuid"

	"picard.dev/mcpserver/internal/memory"
)

// bestK keeps the k best of the items pushed to it: a min-heap whose root
// is the worst item kept, so that an item is compared with the root only
// once the heap is full. worse reports whether a ranks below b; it must be
// a strict total order (ties broken, by id, for determinism).
type bestK[T any] struct {
	k     int
	heap  []T
	worse func(a, b T) bool
}

// full reports whether k items are kept: an item must then beat the root.
func (t *bestK[T]) full() bool { return len(t.heap) >= t.k }

// push offers x: kept if fewer than k are kept or x ranks above the worst
// kept, which it then replaces.
func (t *bestK[T]) push(x T) {
	if len(t.heap) < t.k {
		t.heap = append(t.heap, x)
		for i := len(t.heap) - 1; i > 0; {
			p := (i - 1) / 2
			if !t.worse(t.heap[i], t.heap[p]) {
				break
			}
			t.heap[i], t.heap[p] = t.heap[p], t.heap[i]
			i = p
		}
		return
	}
	if t.k == 0 || !t.worse(t.heap[0], x) {
		return
	}
	t.heap[0] = x
	for i, n := 0, len(t.heap); ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && t.worse(t.heap[l], t.heap[m]) {
			m = l
		}
		if r < n && t.worse(t.heap[r], t.heap[m]) {
			m = r
		}
		if m == i {
			break
		}
		t.heap[i], t.heap[m] = t.heap[m], t.heap[i]
		i = m
	}
}

// sorted returns the kept items best first, in a new slice.
func (t *bestK[T]) sorted() []T {
	out := slices.Clone(t.heap)
	slices.SortFunc(out, func(a, b T) int {
		switch {
		case t.worse(b, a):
			return -1
		case t.worse(a, b):
			return 1
		}
		return 0
	})
	return out
}

// hitTop keeps the k best (score, id) seen, ranked by hitWorse: by score,
// then by id ascending, as the SQL of lexical and vector search orders
// them (score DESC or distance, then memory_id). Ids are canonical
// lower-case text in SQLite and uuid in Postgres, which both sort as
// their bytes do.
type hitTop struct{ bestK[memory.Hit] }

func newHitTop(k int) *hitTop { return &hitTop{bestK[memory.Hit]{k: k, worse: hitWorse}} }

// hitWorse reports whether a ranks below b.
func hitWorse(a, b memory.Hit) bool {
	if a.Score != b.Score {
		return a.Score < b.Score
	}
	return bytes.Compare(a.ID[:], b.ID[:]) > 0
}

// push offers a hit: kept if the heap is not full or it ranks above the
// worst kept, which it then replaces.
func (t *hitTop) push(score float64, id uuid.UUID) { t.bestK.push(memory.Hit{ID: id, Score: score}) }
