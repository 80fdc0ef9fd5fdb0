package embed

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"

	"picard.dev/mcpserver/internal/terms"
)

// DefaultHashDim is the dimension of a [Hash] embedder built with dimension 0.
const DefaultHashDim = 512

// Weights of the three feature families. Whole words matter most; word pairs
// add phrase information; character trigrams catch morphology the stemmer
// misses and typos, but there are many of them per word, so each counts less.
const (
	unigramWeight = 1.0
	bigramWeight  = 0.5
	trigramWeight = 0.25
)

// Family tags keep a word, a word pair and a character trigram that happen
// to share bytes in different hash streams.
const (
	tagUnigram = 'u'
	tagBigram  = 'b'
	tagTrigram = 't'
)

// Boundary markers around a word for its character trigrams. Control bytes
// never occur inside a token, which holds only letters and digits.
const (
	wordStart = 0x02
	wordEnd   = 0x03
)

// maxPooledScratch bounds the buffers kept for reuse, so that one huge text
// does not pin megabytes in the pool forever.
const maxPooledScratch = 1 << 20

// Hash is the local embedder: a feature-hashing bag of words and n-grams,
// not a neural model. It needs no network and no model files, is fast, and
// finds texts that share words (after stemming) or word fragments; it does
// not know that "car" and "automobile" mean the same thing.
//
// For each text it
//   - applies Unicode NFKD, strips combining marks and lower-cases, so
//     "Café" and "cafe" are the same word;
//   - splits into tokens on anything that is not a letter or digit;
//   - drops common English stop words (unless nothing else is left);
//   - stems tokens of plain a–z letters with the Porter algorithm;
//   - extracts word unigrams, adjacent word bigrams and the character
//     trigrams of each word with start and end markers;
//   - hashes each feature (FNV-1a 64 followed by a bit mixer) to a bucket and
//     a sign, weighting it by family and by 1+ln(term frequency);
//   - scales the vector to unit length.
//
// The result depends only on the text and the dimension: the same on every
// run and machine. A text with no letters or digits (for example "" or
// "!?") yields the all-zero vector, whose cosine with anything is 0, so it
// never matches and never produces NaN.
//
// The zero value embeds with dimension [DefaultHashDim]; use [NewHash] for
// another dimension. A Hash is safe for concurrent use and must not be
// copied after first use.
type Hash struct {
	dim  int
	name string
	pool sync.Pool // *hashScratch
}

// NewHash returns a Hash embedder producing vectors of dimension dim, or of
// [DefaultHashDim] when dim <= 0.
func NewHash(dim int) *Hash {
	if dim <= 0 {
		dim = DefaultHashDim
	}
	return &Hash{dim: dim, name: "hash-v1/" + strconv.Itoa(dim)}
}

// Dim returns the vector dimension.
func (h *Hash) Dim() int {
	if h.dim <= 0 {
		return DefaultHashDim
	}
	return h.dim
}

// Name identifies the algorithm version and dimension, e.g. "hash-v1/512".
// A change to the features or weights must change the version, because
// vectors of different versions are not comparable.
func (h *Hash) Name() string {
	if h.name == "" {
		return "hash-v1/" + strconv.Itoa(h.Dim())
	}
	return h.name
}

// Lexical reports true: the vectors are hashed words, so a hybrid search
// lets them break ties of the lexical ranking rather than outvote it (see
// memory.TieBreakWeight).
func (h *Hash) Lexical() bool { return true }

// EmbedQuery embeds a search query as Embed does, except that each word's
// features are scaled by the square root of weight(its stem): a caller
// that knows how rare each word is in the searched memories (BM25's idf)
// gives the vector the corpus statistics a hashing embedder lacks, so a
// rare word of the query counts for more than a common one. Stored vectors
// stay unweighted, so the weights can change with the corpus without
// re-embedding anything.
//
// The square root damps the weights. Scaled by the full idf, the query
// ranks a little better where search is exact (recall@5 0.626 against
// 0.606 on the development set, 0.541 against 0.536 held out), but lies so
// far from the unweighted vectors stored that an HNSW index finds 0.83 of
// its ten nearest neighbours at 100k memories, against 0.92 (measured in
// docs/retrieval.md and docs/performance.md).
func (h *Hash) EmbedQuery(ctx context.Context, text string, weight func(stem string) float64) ([]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("embed: hash: %w", err)
	}
	v := make([]float32, h.Dim())
	s := h.getScratch()
	defer h.putScratch(s)
	s.embed(v, text, weight)
	return v, nil
}

// Embed returns one unit-length vector per text (the zero vector for a text
// without letters or digits), in the order of texts. The vectors share one
// backing array but have capped capacity, so appending to one cannot
// overwrite another. It fails only when ctx is done.
func (h *Hash) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("embed: hash: %w", err)
	}
	dim := h.Dim()
	out := make([][]float32, len(texts))
	backing := make([]float32, len(texts)*dim)
	s := h.getScratch()
	defer h.putScratch(s)
	for i, t := range texts {
		// Checking every text would cost more than it saves on short texts.
		if i > 0 && i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("embed: hash: %w", err)
			}
		}
		v := backing[i*dim : (i+1)*dim : (i+1)*dim]
		s.embed(v, t, nil)
		out[i] = v
	}
	return out, nil
}

func (h *Hash) getScratch() *hashScratch {
	if s, ok := h.pool.Get().(*hashScratch); ok {
		return s
	}
	return new(hashScratch)
}

func (h *Hash) putScratch(s *hashScratch) {
	if s.tok.Cap() > maxPooledScratch || cap(s.tri) > maxPooledScratch/8 {
		return
	}
	h.pool.Put(s)
}

// span is a token's byte range in a scratch arena.
type span struct{ start, end int }

// hashScratch holds the reusable buffers of one embedding.
type hashScratch struct {
	tok     terms.Tokenizer
	words   []byte       // normalised tokens, back to back (tok's buffer)
	spans   []terms.Span // tokens in words
	kept    []int        // indexes into spans of tokens that are not stop words
	stems   []byte       // stems of kept tokens, back to back
	stemSp  []span       // stems in stems, parallel to kept
	runeOff []int        // rune offsets of the current word
	triEnd  []int        // end of each kept word's trigrams in tri
	uni     []uint64     // feature hashes per family
	bi      []uint64
	tri     []uint64
}

// embed writes the embedding of text into v (len(v) == dimension); with a
// weight, each word's features are scaled by it (see EmbedQuery).
func (s *hashScratch) embed(v []float32, text string, weight func(stem string) float64) {
	clear(v)
	s.words, s.spans = s.tok.Tokenize(text)
	if len(s.spans) == 0 {
		return
	}

	s.kept = s.kept[:0]
	for i, sp := range s.spans {
		if !terms.IsStopWord(s.words[sp.Start:sp.End]) {
			s.kept = append(s.kept, i)
		}
	}
	if len(s.kept) == 0 {
		// Only stop words ("who am I"): better to match on them than on nothing.
		for i := range s.spans {
			s.kept = append(s.kept, i)
		}
	}

	s.uni, s.bi, s.tri = s.uni[:0], s.bi[:0], s.tri[:0]
	s.stems, s.stemSp, s.triEnd = s.stems[:0], s.stemSp[:0], s.triEnd[:0]
	for _, ti := range s.kept {
		sp := s.spans[ti]
		word := s.words[sp.Start:sp.End]
		s.trigrams(word)
		s.triEnd = append(s.triEnd, len(s.tri))

		start := len(s.stems)
		s.stems = append(s.stems, word...)
		st := terms.Stem(s.stems[start:])
		s.stems = s.stems[:start+len(st)]
		s.stemSp = append(s.stemSp, span{start, len(s.stems)})

		s.uni = append(s.uni, mix(fnvBytes(fnvByte(fnvOffset, tagUnigram), st)))
	}
	for i := 1; i < len(s.stemSp); i++ {
		a, b := s.stemSp[i-1], s.stemSp[i]
		f := fnvBytes(fnvByte(fnvOffset, tagBigram), s.stems[a.start:a.end])
		f = fnvByte(f, 0)
		f = fnvBytes(f, s.stems[b.start:b.end])
		s.bi = append(s.bi, mix(f))
	}

	if weight != nil {
		s.accumulateWeighted(v, weight)
		normalize(v)
		return
	}
	accumulate(v, s.uni, unigramWeight)
	accumulate(v, s.bi, bigramWeight)
	accumulate(v, s.tri, trigramWeight)
	normalize(v)
}

// accumulateWeighted adds the features of the words embed extracted, each
// word's features scaled by the square root of weight(its stem) (see
// EmbedQuery): its unigram and character trigrams by that, a bigram by the
// geometric mean of its two words'.
// Repeated features add up linearly (queries rarely repeat a word).
func (s *hashScratch) accumulateWeighted(v []float32, weight func(stem string) float64) {
	ws := make([]float64, len(s.stemSp))
	for i, sp := range s.stemSp {
		ws[i] = math.Sqrt(max(weight(string(s.stems[sp.start:sp.end])), 0))
	}
	add := func(f uint64, w float64) {
		x := float32(w)
		if f>>63 != 0 {
			x = -x
		}
		v[f%uint64(len(v))] += x
	}
	triStart := 0
	for i, w := range ws {
		add(s.uni[i], unigramWeight*w)
		for _, f := range s.tri[triStart:s.triEnd[i]] {
			add(f, trigramWeight*w)
		}
		triStart = s.triEnd[i]
		if i > 0 {
			add(s.bi[i-1], bigramWeight*math.Sqrt(ws[i-1]*w))
		}
	}
}

// trigrams appends the hashes of the character trigrams of word, framed by
// start and end markers; a word of n characters has n trigrams.
func (s *hashScratch) trigrams(word []byte) {
	s.runeOff = s.runeOff[:0]
	for i := 0; i < len(word); {
		s.runeOff = append(s.runeOff, i)
		if word[i] < utf8.RuneSelf {
			i++
		} else {
			_, size := utf8.DecodeRune(word[i:])
			i += size
		}
	}
	n := len(s.runeOff)
	s.runeOff = append(s.runeOff, len(word))
	// Units 0..n+1: the start marker, the n characters, the end marker.
	unit := func(h uint64, u int) uint64 {
		switch u {
		case 0:
			return fnvByte(h, wordStart)
		case n + 1:
			return fnvByte(h, wordEnd)
		}
		return fnvBytes(h, word[s.runeOff[u-1]:s.runeOff[u]])
	}
	for i := 0; i < n; i++ {
		f := fnvByte(fnvOffset, tagTrigram)
		f = unit(f, i)
		f = unit(f, i+1)
		f = unit(f, i+2)
		s.tri = append(s.tri, mix(f))
	}
}

// accumulate adds each distinct feature of feats once, with sign and bucket
// taken from its hash and weight × (1 + ln tf). It sorts feats.
func accumulate(v []float32, feats []uint64, weight float64) {
	slices.Sort(feats)
	dim := uint64(len(v))
	for i := 0; i < len(feats); {
		j := i + 1
		for j < len(feats) && feats[j] == feats[i] {
			j++
		}
		f := feats[i]
		// The explicit conversion rounds to float32 and keeps the compiler from
		// fusing this into the addition, which would differ between machines.
		w := float32(weight * tfWeight(j-i))
		if f>>63 != 0 {
			w = -w
		}
		v[f%dim] += w
		i = j
	}
}

// tfWeight is the sublinear term-frequency weight 1 + ln(tf).
func tfWeight(tf int) float64 {
	if tf == 1 {
		return 1
	}
	return 1 + math.Log(float64(tf))
}

// normalize scales v to unit length; the zero vector stays zero.
func normalize(v []float32) {
	var sum float64
	for _, x := range v {
		sq := float64(x) * float64(x)
		sum += float64(sq) // explicit conversion: no fused multiply-add
	}
	if sum == 0 {
		return
	}
	inv := 1 / math.Sqrt(sum)
	for i, x := range v {
		v[i] = float32(float64(x) * inv)
	}
}

// FNV-1a, 64 bit.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvByte(h uint64, c byte) uint64 {
	return (h ^ uint64(c)) * fnvPrime
}

func fnvBytes(h uint64, b []byte) uint64 {
	for _, c := range b {
		h = (h ^ uint64(c)) * fnvPrime
	}
	return h
}

// mix is the MurmurHash3 finalizer. FNV's low bits, which pick the bucket,
// are weak for short inputs; mixing spreads every input bit over all 64.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
