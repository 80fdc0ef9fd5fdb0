package memory

import (
	"slices"
	"strings"

	"github.com/google/uuid"
)

// SearchMode is how a search ranks memories. The score of a result means
// something different in each mode, but is always "higher is better":
//
//   - ModeVector: the cosine similarity of the memory's embedding to the
//     query's, from -1 to 1. Memories without an embedding are not found.
//   - ModeLexical: the Okapi BM25 score (k1 1.2, b 0.75) of the memory's
//     terms for the query's terms: 0 or more, unbounded, comparable only
//     within one search. Only memories sharing a term with the query are
//     found.
//   - ModeHybrid: both rankings fused (see Fuse): the mean of the memory's
//     BM25 score divided by the best BM25 score of the search and its
//     cosine divided by the best cosine, from 0 to 1, where 1 means "best by
//     both"; a memory found by only one ranking scores at most 0.5. Memories
//     not yet embedded are found by their text, and memories with an
//     embedding but no shared term by their embedding (if its similarity is
//     positive).
type SearchMode string

// The search modes of query_memory.
const (
	ModeHybrid  SearchMode = "hybrid"
	ModeVector  SearchMode = "vector"
	ModeLexical SearchMode = "lexical"
)

// SearchModes lists the modes in the order tools document them.
var SearchModes = []SearchMode{ModeHybrid, ModeVector, ModeLexical}

// ParseSearchMode validates a mode name; the empty string is ModeHybrid.
func ParseSearchMode(s string) (SearchMode, error) {
	if s == "" {
		return ModeHybrid, nil
	}
	for _, m := range SearchModes {
		if string(m) == s {
			return m, nil
		}
	}
	return "", Invalidf("mode", "unknown mode %q (want hybrid, vector or lexical)", s)
}

// Hit is a search result before its memory is loaded: what a store's
// rankings produce and Fuse combines.
type Hit struct {
	ID    uuid.UUID
	Score float64
}

// HybridDepth is how many hits each ranking contributes to a hybrid search
// of limit results: fusion can promote a memory that neither ranking put in
// its first limit, so each is read deeper than the limit.
func HybridDepth(limit int) int { return min(max(2*limit, 50), 200) }

// Ranking is one ranking of a hybrid search and its weight in the fusion.
type Ranking struct {
	Hits   []Hit // best first, without repeated ids, with positive scores
	Weight float64
}

// TieBreakWeight is the weight of a vector ranking that should only order
// memories the lexical ranking scores (almost) alike, and come after them
// otherwise: a vector score moves a memory past another only where their
// normalised BM25 scores differ by less than about 1%. It is the weight of
// the local hashing embedder's ranking (see Service.Search).
const TieBreakWeight = 0.01

// Fuse combines rankings into one: a hit's fused score is the weighted
// mean over the rankings of its score divided by the best score of that
// ranking (0 where it is absent). Scores therefore lie in (0, 1]; 1 means
// first in every ranking. It returns the best limit hits, ties broken by id
// so that the order is deterministic.
//
// Normalising by the best score keeps what rank fusion throws away: how
// much better the first BM25 hit is than the tenth, and how close two
// cosines are. On Picard's evaluation (docs/retrieval.md) it beats
// reciprocal rank fusion on both the development and the held-out set.
func Fuse(limit int, rankings ...Ranking) []Hit {
	fused := map[uuid.UUID]float64{}
	total := 0.0
	for _, r := range rankings {
		total += r.Weight
		best := 0.0
		for _, h := range r.Hits {
			best = max(best, h.Score)
		}
		if best <= 0 {
			continue
		}
		for _, h := range r.Hits {
			if h.Score > 0 {
				fused[h.ID] += r.Weight * h.Score / best
			}
		}
	}
	if total <= 0 {
		return nil
	}
	out := make([]Hit, 0, len(fused))
	for id, s := range fused {
		out = append(out, Hit{ID: id, Score: s / total})
	}
	slices.SortFunc(out, func(a, b Hit) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return strings.Compare(a.ID.String(), b.ID.String())
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}
