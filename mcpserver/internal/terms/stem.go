package terms

// Stem applies the Porter (1980) suffix-stripping algorithm to a lower-case
// ASCII word in place and returns the stem, a prefix of w's backing array.
// Words with any byte outside a–z and words of at most two letters are
// returned unchanged: the algorithm only knows English.
//
// No step ever makes the word longer than it was, so the stem always fits in
// the original slice.
func Stem(w []byte) []byte {
	if len(w) <= 2 {
		return w
	}
	for _, c := range w {
		if c < 'a' || c > 'z' {
			return w
		}
	}
	p := porter{b: w, k: len(w) - 1}
	p.step1ab()
	if p.k > 0 {
		p.step1c()
		p.step2()
		p.step3()
		p.step4()
		p.step5()
	}
	return w[:p.k+1]
}

// porter follows the structure of Martin Porter's reference C implementation:
// b[0..k] is the word being stemmed, and j marks the end of the stem before a
// suffix matched by ends.
type porter struct {
	b    []byte
	k, j int
}

// cons reports whether b[i] is a consonant.
func (p *porter) cons(i int) bool {
	switch p.b[i] {
	case 'a', 'e', 'i', 'o', 'u':
		return false
	case 'y':
		return i == 0 || !p.cons(i-1)
	}
	return true
}

// m measures the number of vowel–consonant sequences in b[0..j].
func (p *porter) m() int {
	n, i := 0, 0
	for {
		if i > p.j {
			return n
		}
		if !p.cons(i) {
			break
		}
		i++
	}
	i++
	for {
		for {
			if i > p.j {
				return n
			}
			if p.cons(i) {
				break
			}
			i++
		}
		i++
		n++
		for {
			if i > p.j {
				return n
			}
			if !p.cons(i) {
				break
			}
			i++
		}
		i++
	}
}

// vowelInStem reports whether b[0..j] contains a vowel.
func (p *porter) vowelInStem() bool {
	for i := 0; i <= p.j; i++ {
		if !p.cons(i) {
			return true
		}
	}
	return false
}

// doublec reports whether b[i-1..i] is a double consonant.
func (p *porter) doublec(i int) bool {
	return i >= 1 && p.b[i] == p.b[i-1] && p.cons(i)
}

// cvc reports whether b[i-2..i] is consonant–vowel–consonant with the last
// consonant not w, x or y (hop, not snow).
func (p *porter) cvc(i int) bool {
	if i < 2 || !p.cons(i) || p.cons(i-1) || !p.cons(i-2) {
		return false
	}
	switch p.b[i] {
	case 'w', 'x', 'y':
		return false
	}
	return true
}

// ends reports whether b[0..k] ends with s and, if so, sets j before it.
func (p *porter) ends(s string) bool {
	l := len(s)
	if l > p.k+1 || string(p.b[p.k-l+1:p.k+1]) != s {
		return false
	}
	p.j = p.k - l
	return true
}

// setTo replaces b[j+1..k] with s.
func (p *porter) setTo(s string) {
	copy(p.b[p.j+1:], s)
	p.k = p.j + len(s)
}

// r replaces the matched suffix with s when the stem has m() > 0.
func (p *porter) r(s string) {
	if p.m() > 0 {
		p.setTo(s)
	}
}

// replaceFirst applies r to the first matching suffix of pairs (suffix,
// replacement, suffix, replacement, …) and stops there.
func (p *porter) replaceFirst(pairs ...string) {
	for i := 0; i+1 < len(pairs); i += 2 {
		if p.ends(pairs[i]) {
			p.r(pairs[i+1])
			return
		}
	}
}

// step1ab removes plurals and -ed or -ing.
func (p *porter) step1ab() {
	if p.b[p.k] == 's' {
		switch {
		case p.ends("sses"):
			p.k -= 2
		case p.ends("ies"):
			p.setTo("i")
		case p.b[p.k-1] != 's':
			p.k--
		}
	}
	if p.ends("eed") {
		if p.m() > 0 {
			p.k--
		}
		return
	}
	if (p.ends("ed") || p.ends("ing")) && p.vowelInStem() {
		p.k = p.j
		switch {
		case p.ends("at"):
			p.setTo("ate")
		case p.ends("bl"):
			p.setTo("ble")
		case p.ends("iz"):
			p.setTo("ize")
		case p.doublec(p.k):
			switch p.b[p.k] {
			case 'l', 's', 'z':
			default:
				p.k--
			}
		default:
			p.j = p.k
			if p.m() == 1 && p.cvc(p.k) {
				p.setTo("e")
			}
		}
	}
}

// step1c turns a terminal y into i when there is another vowel in the stem.
func (p *porter) step1c() {
	if p.ends("y") && p.vowelInStem() {
		p.b[p.k] = 'i'
	}
}

// step2 maps double suffixes to single ones (-ization → -ize).
func (p *porter) step2() {
	switch p.b[p.k-1] {
	case 'a':
		p.replaceFirst("ational", "ate", "tional", "tion")
	case 'c':
		p.replaceFirst("enci", "ence", "anci", "ance")
	case 'e':
		p.replaceFirst("izer", "ize")
	case 'l':
		p.replaceFirst("bli", "ble", "alli", "al", "entli", "ent", "eli", "e", "ousli", "ous")
	case 'o':
		p.replaceFirst("ization", "ize", "ation", "ate", "ator", "ate")
	case 's':
		p.replaceFirst("alism", "al", "iveness", "ive", "fulness", "ful", "ousness", "ous")
	case 't':
		p.replaceFirst("aliti", "al", "iviti", "ive", "biliti", "ble")
	case 'g':
		p.replaceFirst("logi", "log")
	}
}

// step3 deals with -ic-, -full, -ness and the like.
func (p *porter) step3() {
	switch p.b[p.k] {
	case 'e':
		p.replaceFirst("icate", "ic", "ative", "", "alize", "al")
	case 'i':
		p.replaceFirst("iciti", "ic")
	case 'l':
		p.replaceFirst("ical", "ic", "ful", "")
	case 's':
		p.replaceFirst("ness", "")
	}
}

// step4 removes -ant, -ence and similar suffixes when the stem has m() > 1.
func (p *porter) step4() {
	var matched bool
	switch p.b[p.k-1] {
	case 'a':
		matched = p.ends("al")
	case 'c':
		matched = p.ends("ance") || p.ends("ence")
	case 'e':
		matched = p.ends("er")
	case 'i':
		matched = p.ends("ic")
	case 'l':
		matched = p.ends("able") || p.ends("ible")
	case 'n':
		matched = p.ends("ant") || p.ends("ement") || p.ends("ment") || p.ends("ent")
	case 'o':
		matched = (p.ends("ion") && p.j >= 0 && (p.b[p.j] == 's' || p.b[p.j] == 't')) || p.ends("ou")
	case 's':
		matched = p.ends("ism")
	case 't':
		matched = p.ends("ate") || p.ends("iti")
	case 'u':
		matched = p.ends("ous")
	case 'v':
		matched = p.ends("ive")
	case 'z':
		matched = p.ends("ize")
	}
	if matched && p.m() > 1 {
		p.k = p.j
	}
}

// step5 removes a final -e and reduces -ll to -l when the stem has m() > 1.
func (p *porter) step5() {
	p.j = p.k
	if p.b[p.k] == 'e' {
		a := p.m()
		if a > 1 || (a == 1 && !p.cvc(p.k-1)) {
			p.k--
		}
	}
	if p.b[p.k] == 'l' && p.doublec(p.k) && p.m() > 1 {
		p.k--
	}
}
