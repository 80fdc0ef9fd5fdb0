package main

import (
	"math"
	"slices"
	"strings"
	"unicode"
)

// okapi is the Okapi BM25 baseline of the evaluation, computed in the
// harness from the plaintext of one conversation, independently of the
// server: tokens are lower-cased runs of letters and digits, English stop
// words are dropped, nothing is stemmed (the common baseline of
// conversational-memory benchmarks). k1 = 1.2, b = 0.75, and the idf
// log(1 + (N - n + 0.5) / (n + 0.5)), which is never negative.
type okapi struct {
	ids    []string
	docs   []map[string]int
	lens   []float64
	avgLen float64
	df     map[string]int
}

const (
	okapiK1 = 1.2
	okapiB  = 0.75
)

func newOkapi(ids, texts []string) *okapi {
	o := &okapi{ids: ids, df: map[string]int{}}
	var total float64
	for _, t := range texts {
		tf := map[string]int{}
		toks := baselineTokens(t)
		for _, w := range toks {
			tf[w]++
		}
		for w := range tf {
			o.df[w]++
		}
		o.docs = append(o.docs, tf)
		o.lens = append(o.lens, float64(len(toks)))
		total += float64(len(toks))
	}
	if len(texts) > 0 {
		o.avgLen = total / float64(len(texts))
	}
	return o
}

// rank returns the ids of the k best documents for query, best first,
// leaving out documents that share no term with it.
func (o *okapi) rank(query string, k int) []string {
	n := float64(len(o.docs))
	type scored struct {
		i int
		s float64
	}
	var out []scored
	q := baselineTokens(query)
	slices.Sort(q)
	q = slices.Compact(q)
	for i, d := range o.docs {
		var s float64
		for _, w := range q {
			tf := float64(d[w])
			if tf == 0 {
				continue
			}
			df := float64(o.df[w])
			idf := math.Log(1 + (n-df+0.5)/(df+0.5))
			s += idf * tf * (okapiK1 + 1) / (tf + okapiK1*(1-okapiB+okapiB*o.lens[i]/o.avgLen))
		}
		if s > 0 {
			out = append(out, scored{i, s})
		}
	}
	slices.SortStableFunc(out, func(a, b scored) int {
		switch {
		case a.s > b.s:
			return -1
		case a.s < b.s:
			return 1
		}
		return 0
	})
	ids := make([]string, 0, min(k, len(out)))
	for _, s := range out[:min(k, len(out))] {
		ids = append(ids, o.ids[s.i])
	}
	return ids
}

func baselineTokens(text string) []string {
	var out []string
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		if !baselineStopWords[w] {
			out = append(out, w)
		}
	}
	return out
}

// baselineStopWords is the classic English list (NLTK's).
var baselineStopWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`i me my myself we our ours ourselves you your yours yourself yourselves he him his
		himself she her hers herself it its itself they them their theirs themselves what which who whom this that these
		those am is are was were be been being have has had having do does did doing a an the and but if or because as
		until while of at by for with about against between into through during before after above below to from up down
		in out on off over under again further then once here there when where why how all any both each few more most
		other some such no nor not only own same so than too very s t can will just don should now d ll m o re ve y`) {
		m[w] = true
	}
	return m
}()
