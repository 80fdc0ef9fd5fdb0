package embed

import (
	"context"
	"errors"
	"hash/fnv"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
)

func embedOne(t testing.TB, h *Hash, text string) []float32 {
	t.Helper()
	vs, err := h.Embed(context.Background(), []string{text})
	if err != nil {
		t.Fatal(err)
	}
	return vs[0]
}

func norm2(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

// fingerprint is a stable digest of a vector's exact float bits.
func fingerprint(v []float32) uint64 {
	h := fnv.New64a()
	for _, x := range v {
		bits := math.Float32bits(x)
		h.Write([]byte{byte(bits), byte(bits >> 8), byte(bits >> 16), byte(bits >> 24)})
	}
	return h.Sum64()
}

func TestHashNameDim(t *testing.T) {
	for _, tc := range []struct {
		h    *Hash
		dim  int
		name string
	}{
		{NewHash(0), 512, "hash-v1/512"},
		{NewHash(-3), 512, "hash-v1/512"},
		{NewHash(64), 64, "hash-v1/64"},
		{&Hash{}, 512, "hash-v1/512"},
	} {
		if tc.h.Dim() != tc.dim || tc.h.Name() != tc.name {
			t.Errorf("Dim, Name = %d, %q; want %d, %q", tc.h.Dim(), tc.h.Name(), tc.dim, tc.name)
		}
		if v := embedOne(t, tc.h, "zero value works too"); len(v) != tc.dim {
			t.Errorf("len = %d, want %d", len(v), tc.dim)
		}
	}
}

func TestHashDeterministic(t *testing.T) {
	texts := []string{
		"I love hiking in the mountains",
		"Ünïcödé café, naïve résumé — 東京 2024!",
		"the the the repeated repeated words words words",
	}
	a, err := NewHash(0).Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHash(0)
	for round := 0; round < 3; round++ { // reused scratch buffers must not leak state
		b, err := h.Embed(context.Background(), texts)
		if err != nil {
			t.Fatal(err)
		}
		for i := range texts {
			if fingerprint(a[i]) != fingerprint(b[i]) {
				t.Fatalf("round %d: embedding of %q differs", round, texts[i])
			}
		}
	}
	// Pinned digests: the same bits on every run and machine. If a change to
	// the algorithm alters them, bump the version in Name ("hash-v2") —
	// stored vectors would otherwise be compared with incompatible ones.
	want := []uint64{0x823d5f0e7d22b43c, 0x7ff8da3ae0aa917d, 0xf5eafd7a9d653e86}
	for i := range texts {
		if got := fingerprint(a[i]); got != want[i] {
			t.Errorf("fingerprint(%q) = %#x, want %#x", texts[i], got, want[i])
		}
	}
}

func TestHashUnitLength(t *testing.T) {
	h := NewHash(0)
	for _, text := range []string{
		"a", "hello", "I love hiking in the mountains", strings.Repeat("lorem ipsum dolor sit amet ", 500),
		"数据库 索引", "who am I", "42",
	} {
		v := embedOne(t, h, text)
		if n := norm2(v); math.Abs(n-1) > 1e-5 {
			t.Errorf("|embed(%.20q)| = %v, want 1", text, n)
		}
	}
}

func TestHashEmptyText(t *testing.T) {
	h := NewHash(0)
	other := embedOne(t, h, "anything at all")
	for _, text := range []string{"", "   ", "!?…", "\n\t"} {
		v := embedOne(t, h, text)
		if len(v) != h.Dim() {
			t.Fatalf("len = %d, want %d", len(v), h.Dim())
		}
		if n := norm2(v); n != 0 {
			t.Errorf("embed(%q) has norm %v, want the zero vector", text, n)
		}
		if c := Cosine(v, other); c != 0 || math.IsNaN(float64(c)) {
			t.Errorf("Cosine(zero, x) = %v, want 0", c)
		}
	}
	// A text of stop words only still gets a vector.
	if n := norm2(embedOne(t, h, "who am I")); math.Abs(n-1) > 1e-5 {
		t.Errorf("stop-word-only text: norm %v, want 1", n)
	}
}

func TestHashSimilarity(t *testing.T) {
	h := NewHash(0)
	hike := embedOne(t, h, "I love hiking in the mountains")
	hike2 := embedOne(t, h, "mountain hikes are my favourite")
	tax := embedOne(t, h, "the quarterly tax report")

	related, unrelated1, unrelated2 := Cosine(hike, hike2), Cosine(hike, tax), Cosine(hike2, tax)
	t.Logf("related %.3f, unrelated %.3f %.3f", related, unrelated1, unrelated2)
	if related <= unrelated1 || related <= unrelated2 {
		t.Errorf("related texts score %.3f, not above unrelated %.3f / %.3f", related, unrelated1, unrelated2)
	}
	if related < 0.3 {
		t.Errorf("related texts score only %.3f", related)
	}
	if math.Abs(float64(unrelated1)) > 0.15 {
		t.Errorf("unrelated texts score %.3f", unrelated1)
	}
	if c := Cosine(hike, hike); math.Abs(float64(c)-1) > 1e-5 {
		t.Errorf("self-similarity %.6f", c)
	}

	// A query ranks the matching memory first.
	memories := []string{
		"Dentist appointment on Tuesday at 3pm",
		"My favourite trail is the ridge walk above the lake",
		"Quarterly taxes are due on the 15th",
		"I went hiking in the Alps last summer and loved the mountains",
	}
	vs, err := h.Embed(context.Background(), memories)
	if err != nil {
		t.Fatal(err)
	}
	q := embedOne(t, h, "mountain hike")
	best, bestScore := -1, float32(-2)
	for i, v := range vs {
		if s := Cosine(q, v); s > bestScore {
			best, bestScore = i, s
		}
	}
	if best != 3 {
		t.Errorf("query matched %q, want the hiking memory", memories[best])
	}
}

func TestHashStemmingAndNormalisation(t *testing.T) {
	h := NewHash(0)
	run := embedOne(t, h, "run")
	walk := embedOne(t, h, "walk")
	for _, w := range []string{"running", "runs", "Run", "RUNNING"} {
		v := embedOne(t, h, w)
		if c, base := Cosine(run, v), Cosine(walk, v); c < 0.6 || c <= base {
			t.Errorf("cos(run, %s) = %.3f (vs walk %.3f), want a strong match", w, c, base)
		}
	}
	// Case, accents and compatibility forms fold to the same features.
	a := embedOne(t, h, "Café Crème ﬁnale")
	b := embedOne(t, h, "cafe creme finale")
	if c := Cosine(a, b); c < 0.9999 {
		t.Errorf("cos(accented, plain) = %.5f, want 1", c)
	}
	// Punctuation only separates tokens.
	if c := Cosine(embedOne(t, h, "hello, world!"), embedOne(t, h, "hello world")); c < 0.9999 {
		t.Errorf("punctuation changed the embedding: %.5f", c)
	}
	// Non-Latin scripts get character n-grams.
	if c := Cosine(embedOne(t, h, "東京タワー"), embedOne(t, h, "東京駅")); c <= 0 {
		t.Errorf("CJK texts sharing characters score %.3f", c)
	}
}

func TestHashBatchLayout(t *testing.T) {
	h := NewHash(16)
	vs, err := h.Embed(context.Background(), []string{"alpha", "beta"})
	if err != nil {
		t.Fatal(err)
	}
	before := fingerprint(vs[1])
	_ = append(vs[0], 1, 2, 3) // capacity is capped, so this must not touch vs[1]
	if fingerprint(vs[1]) != before {
		t.Fatal("appending to one vector overwrote the next")
	}
	empty, err := h.Embed(context.Background(), nil)
	if err != nil || len(empty) != 0 {
		t.Errorf("Embed(nil) = %v, %v", empty, err)
	}
}

func TestHashContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewHash(0).Embed(ctx, []string{"x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestHashConcurrent(t *testing.T) {
	h := NewHash(0)
	texts := []string{"first memory about hiking", "second about taxes", "Ünïcode third", strings.Repeat("long ", 300)}
	want, err := h.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				j := (g + i) % len(texts)
				v := embedOne(t, h, texts[j])
				if fingerprint(v) != fingerprint(want[j]) {
					t.Errorf("concurrent embedding of text %d differs", j)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestCosine(t *testing.T) {
	for n := 0; n <= 9; n++ {
		a, b := make([]float32, n), make([]float32, n)
		var want float64
		for i := range a {
			a[i], b[i] = float32(i+1), float32(2*i-3)
			want += float64(a[i]) * float64(b[i])
		}
		if got := Cosine(a, b); math.Abs(float64(got)-want) > 1e-4 {
			t.Errorf("n=%d: Cosine = %v, want %v", n, got, want)
		}
	}
	if got := Cosine([]float32{1, 2, 3}, []float32{1, 1}); got != 3 {
		t.Errorf("different lengths: %v, want 3 (over the shorter)", got)
	}
}

var benchTexts = map[string]string{
	"query":  "what did I say about hiking in the Alps?",
	"memory": strings.Repeat("Yesterday I went hiking with Anna along the ridge above the lake; the weather was perfect and we talked about next year's trip to Patagonia. ", 6),
}

func BenchmarkHashEmbed(b *testing.B) {
	for _, name := range []string{"query", "memory"} {
		text := benchTexts[name]
		b.Run(name, func(b *testing.B) {
			h := NewHash(0)
			ctx := context.Background()
			in := []string{text}
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := h.Embed(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCosine reports the unrolled loop's speed-up over a plain loop
// timed over the same number of iterations in the same run.
func BenchmarkCosine(b *testing.B) {
	h := NewHash(1536)
	vs, err := h.Embed(context.Background(), []string{"one text", "another text"})
	if err != nil {
		b.Fatal(err)
	}
	x, y := vs[0], vs[1]
	naive := func(a, b []float32) float32 {
		var s float32
		for i := range a {
			s += a[i] * b[i]
		}
		return s
	}
	var sink float32
	n := 0
	for b.Loop() {
		sink += Cosine(x, y)
		n++
	}
	fast := b.Elapsed()
	start := time.Now()
	for range n {
		sink += naive(x, y)
	}
	base := time.Since(start)
	if fast > 0 {
		b.ReportMetric(float64(base)/float64(fast), "speedup_vs_naive")
	}
	if sink == 42 { // keep the loops from being optimised away
		b.Log(sink)
	}
}

func FuzzHashEmbed(f *testing.F) {
	for _, s := range []string{"", "hello world", "Ünïcödé ﬁ", "東京", "\xff\xfe broken utf8", "a\u0301\u0301\u0301", "who am I"} {
		f.Add(s)
	}
	h := NewHash(64)
	f.Fuzz(func(t *testing.T, s string) {
		v := embedOne(t, h, s)
		if len(v) != 64 {
			t.Fatalf("len %d", len(v))
		}
		n := norm2(v)
		if math.IsNaN(n) || (n != 0 && math.Abs(n-1) > 1e-4) {
			t.Fatalf("embed(%q) has norm %v", s, n)
		}
		if again := embedOne(t, h, s); fingerprint(again) != fingerprint(v) {
			t.Fatalf("embed(%q) not deterministic", s)
		}
	})
}

// TestEmbedQueryWeights checks that EmbedQuery scales each word's features
// by the square root of its weight: a word of weight 0 is as if absent, a
// heavier word pulls the query towards the texts that hold it, and equal
// weights embed as Embed does up to rounding.
func TestEmbedQueryWeights(t *testing.T) {
	ctx := context.Background()
	h := NewHash(0)
	emb := func(text string) []float32 {
		v, err := h.Embed(ctx, []string{text})
		if err != nil {
			t.Fatal(err)
		}
		return v[0]
	}
	query := func(text string, w map[string]float64) []float32 {
		v, err := h.EmbedQuery(ctx, text, func(term string) float64 { return w[term] })
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	cos := func(a, b []float32) float64 {
		var d float64
		for i := range a {
			d += float64(a[i]) * float64(b[i])
		}
		return d
	}
	if c := cos(query("violin lessons", map[string]float64{"violin": 2, "lesson": 0}), emb("violin")); c < 0.9999 {
		t.Errorf("a word of weight 0 still counts: cosine with the other word alone %.6f", c)
	}
	if c := cos(query("violin lessons", map[string]float64{"violin": 1, "lesson": 1}), emb("violin lessons")); c < 0.9999 {
		t.Errorf("equal weights: cosine with Embed %.6f", c)
	}
	even := query("violin lessons", map[string]float64{"violin": 1, "lesson": 1})
	rare := query("violin lessons", map[string]float64{"violin": 5, "lesson": 1})
	if cos(rare, emb("my violin")) <= cos(even, emb("my violin")) || cos(rare, emb("my lessons")) >= cos(even, emb("my lessons")) {
		t.Error("weighing violin up does not move the query towards the text with violin and away from the other")
	}
	// A weight of 4 scales the word's features by 2: the query's cosine
	// with the word alone, over its cosine with the other word, doubles.
	ratio := func(q []float32) float64 { return cos(q, emb("violin")) / cos(q, emb("lessons")) }
	if r := ratio(query("violin lessons", map[string]float64{"violin": 4, "lesson": 1})) / ratio(even); r < 1.9 || r > 2.1 {
		t.Errorf("weight 4 against 1 moves the query by a factor %.3f, not the square root, 2", r)
	}
	if _, err := h.EmbedQuery(canceled(), "violin", func(string) float64 { return 1 }); err == nil {
		t.Error("EmbedQuery ignores a canceled context")
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
