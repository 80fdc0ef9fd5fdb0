// Package terms turns text into the normalised words Picard matches on. The
// local hashing embedder (internal/embed) and the lexical blind index
// (internal/store) both use it, so a word is the same word to both:
//
//   - Unicode NFKD, combining marks stripped, lower-cased: "Café" is "cafe";
//   - tokens are the runs of letters and digits; everything else separates;
//   - common English function words are stop words ([IsStopWord]);
//   - plain a–z tokens are reduced by the Porter stemmer ([Stem]), so
//     "hiking", "hikes" and "hike" are one term.
//
// [Version] names these rules; a change to any of them must change it,
// because terms stored by one version do not match terms of another.
package terms

import (
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Version identifies the normalisation, stop words and stemmer. Stores
// record it with every indexed text and re-index texts of another version.
const Version = "terms-v1"

// Span is a token's byte range in the words buffer of a [Tokenizer].
type Span struct{ Start, End int }

// Tokenizer splits text into normalised tokens, reusing its buffers from
// one call to the next. The zero value is ready to use; a Tokenizer is not
// safe for concurrent use.
type Tokenizer struct {
	text  []byte // NFKD form of a non-ASCII input
	words []byte // normalised tokens, back to back
	spans []Span
}

// Tokenize returns the lower-cased, mark-stripped runs of letters and digits
// of text: words holds them back to back and spans delimits each. Both
// alias the Tokenizer's buffers and are valid until its next call.
func (t *Tokenizer) Tokenize(text string) (words []byte, spans []Span) {
	t.words, t.spans = t.words[:0], t.spans[:0]
	start := 0
	end := func() {
		if len(t.words) > start {
			t.spans = append(t.spans, Span{start, len(t.words)})
		}
		start = len(t.words)
	}

	if isASCII(text) {
		for i := 0; i < len(text); i++ {
			c := text[i]
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
				t.words = append(t.words, c)
			case c >= 'A' && c <= 'Z':
				t.words = append(t.words, c+('a'-'A'))
			default:
				end()
			}
		}
		end()
		return t.words, t.spans
	}

	t.text = norm.NFKD.AppendString(t.text[:0], text)
	for i := 0; i < len(t.text); {
		r, size := utf8.DecodeRune(t.text[i:])
		i += size
		switch {
		case r < utf8.RuneSelf:
			c := byte(r) // #nosec G115 -- r < utf8.RuneSelf, so it fits a byte
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
				t.words = append(t.words, c)
			case c >= 'A' && c <= 'Z':
				t.words = append(t.words, c+('a'-'A'))
			default:
				end()
			}
		case unicode.Is(unicode.Mn, r):
			// A combining mark left by NFKD: drop it without splitting the word.
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			t.words = utf8.AppendRune(t.words, unicode.ToLower(r))
		default:
			end()
		}
	}
	end()
	return t.words, t.spans
}

// Cap is the capacity of the Tokenizer's largest buffer, so that a pool can
// drop one grown by a huge text instead of keeping it forever.
func (t *Tokenizer) Cap() int { return max(cap(t.text), cap(t.words), 8*cap(t.spans)) }

// Terms returns the index terms of text in order, repeats included: its
// tokens without stop words, stemmed. A text of nothing but stop words has
// no terms. It reuses the Tokenizer's buffers but returns fresh strings.
func (t *Tokenizer) Terms(text string) []string {
	words, spans := t.Tokenize(text)
	out := make([]string, 0, len(spans))
	var buf []byte
	for _, sp := range spans {
		w := words[sp.Start:sp.End]
		if IsStopWord(w) {
			continue
		}
		buf = append(buf[:0], w...)
		out = append(out, string(Stem(buf)))
	}
	return out
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
