package terms

import "testing"

func TestStem(t *testing.T) {
	// Outputs of the reference implementation (Porter's voc.txt/output.txt)
	// for words exercising every step.
	cases := map[string]string{
		"caresses": "caress", "ponies": "poni", "ties": "ti", "caress": "caress", "cats": "cat",
		"feed": "feed", "agreed": "agre", "plastered": "plaster", "bled": "bled",
		"motoring": "motor", "sing": "sing", "conflated": "conflat", "troubled": "troubl",
		"sized": "size", "hopping": "hop", "tanned": "tan", "falling": "fall",
		"hissing": "hiss", "fizzed": "fizz", "failing": "fail", "filing": "file",
		"happy": "happi", "sky": "sky", "relational": "relat", "conditional": "condit",
		"rational": "ration", "digitizer": "digit", "generalization": "gener",
		"oscillators": "oscil", "operator": "oper", "feudalism": "feudal",
		"decisiveness": "decis", "hopefulness": "hope", "callousness": "callous",
		"formality": "formal", "sensitivity": "sensit", "sensibility": "sensibl",
		"triplicate": "triplic", "formative": "form", "formalize": "formal",
		"electricity": "electr", "electrical": "electr", "hopeful": "hope", "goodness": "good",
		"revival": "reviv", "allowance": "allow", "inference": "infer", "airliner": "airlin",
		"gyroscopic": "gyroscop", "adjustable": "adjust", "defensible": "defens",
		"irritant": "irrit", "replacement": "replac", "adjustment": "adjust",
		"dependent": "depend", "adoption": "adopt", "communism": "commun",
		"activate": "activ", "homologous": "homolog", "effective": "effect",
		"bowdlerize": "bowdler", "probate": "probat", "rate": "rate", "cease": "ceas",
		"controlling": "control", "roll": "roll",
		"running": "run", "runs": "run", "run": "run", "hiking": "hike", "hikes": "hike",
		"mountains": "mountain", "mountain": "mountain",
		// Unchanged: short, or not plain a–z.
		"is": "is", "a": "a", "mp3s": "mp3s", "naïve": "naïve", "": "",
	}
	for in, want := range cases {
		b := []byte(in)
		if got := string(Stem(b)); got != want {
			t.Errorf("Stem(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzStem(f *testing.F) {
	for _, s := range []string{"running", "ies", "eed", "sses", "ational", "y", "yyy", "bbbing", "ated"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := []byte(s)
		got := Stem(b)
		if len(got) > len(s) {
			t.Fatalf("Stem(%q) = %q grew", s, got)
		}
	})
}
