package store

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestBestK checks the bounded heap against sorting everything: the k
// best in order, ties broken as worse says, for k of 0, 1, some and more
// than were pushed.
func TestBestK(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	worseInt := func(a, b [2]int) bool { return a[0] < b[0] || (a[0] == b[0] && a[1] > b[1]) }
	for _, k := range []int{0, 1, 7, 200} {
		for range 50 {
			items := make([][2]int, rng.IntN(120))
			for i := range items {
				items[i] = [2]int{rng.IntN(20), i} // many equal scores
			}
			top := bestK[[2]int]{k: k, worse: worseInt}
			for _, x := range items {
				top.push(x)
			}
			want := slices.Clone(items)
			slices.SortFunc(want, func(a, b [2]int) int {
				if worseInt(b, a) {
					return -1
				}
				return 1
			})
			want = want[:min(k, len(want))]
			if got := top.sorted(); !slices.Equal(got, want) {
				t.Fatalf("k %d: got %v, want %v", k, got, want)
			}
		}
	}
}
