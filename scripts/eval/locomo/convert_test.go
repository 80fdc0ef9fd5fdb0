package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"picard.dev/scripts/eval/dataset"
)

// conv7 is a hand-written conversation in the layout of LoCoMo's
// per-conversation files: out-of-order sessions, an empty session, a date
// without a session, a shared photo, a numeric answer, and the kinds of
// malformed evidence the release has.
const conv7 = `{
 "speaker_a": "Ines",
 "speaker_b": "Bruno",
 "session_2_date_time": "9:05 am on 3 March, 2024",
 "session_2": [
  {"speaker": "Ines", "dia_id": "D2:1", "text": "The bakery on the corner finally reopened."},
  {"speaker": "Bruno", "dia_id": "D2:2", "text": "Look what I made on Sunday!",
   "img_url": ["https://example.org/kite.jpg"], "blip_caption": "a photo of a red kite on a beach", "query": "red kite"}
 ],
 "session_1_date_time": "11:40 pm on 28 February, 2024",
 "session_1": [
  {"speaker": "Bruno", "dia_id": "D1:1", "text": "I started learning the cello last week."},
  {"speaker": "Ines", "dia_id": "D1:2", "text": "My sister moved to Porto in January."},
  {"speaker": "Bruno", "dia_id": "D1:3", "text": "Porto is lovely in spring."}
 ],
 "session_10_date_time": "2:00 pm on 1 April, 2024",
 "session_10": [
  {"speaker": "Ines", "dia_id": "D10:1", "text": "I passed my driving test."}
 ],
 "session_3_date_time": "2:00 pm on 9 March, 2024",
 "session_3": [],
 "session_11_date_time": "2:00 pm on 1 May, 2024",
 "events_session_1": {"Bruno": ["Bruno starts the cello."], "Ines": [], "date": "28 February, 2024"},
 "qa": [
  {"question": "What instrument is Bruno learning?", "answer": "cello", "evidence": ["D1:1"], "category": 4},
  {"question": "When did Ines's sister move?", "answer": 2024, "evidence": ["D1:02"], "category": 2},
  {"question": "What did Bruno make, and where did Ines's sister move?", "answer": "a kite; Porto", "evidence": ["D2:2; D1:2"], "category": 1},
  {"question": "Would Ines enjoy a visit to Porto?", "answer": "probably", "evidence": ["D:1:3", "D9:9", "D"], "category": 3},
  {"question": "What did Bruno say about Paris?", "evidence": ["D1:3"], "category": 5, "adversarial_answer": "lovely in spring"},
  {"question": "Does Ines like bread?", "answer": "yes", "evidence": [], "category": 3},
  {"question": "What did Ines buy?", "answer": "a lamp", "evidence": ["D7:1"], "category": 4},
  {"question": "What changed for both of them?", "answer": "cello, driving licence", "evidence": ["D1:1 D10:1", "D1:1"], "category": 1}
 ]
}`

// conv8 is a second, plain conversation.
const conv8 = `{
 "speaker_a": "Yuki",
 "speaker_b": "Omar",
 "session_1_date_time": "7:15 pm on 12 Oct, 2023",
 "session_1": [
  {"speaker": "Yuki", "dia_id": "D1:1", "text": "We adopted a grey cat yesterday."},
  {"speaker": "Omar", "dia_id": "D1:2", "text": "What is its name?"},
  {"speaker": "Yuki", "dia_id": "D1:3", "text": "Pebble."}
 ],
 "qa": [
  {"question": "What is the name of Yuki's cat?", "answer": "Pebble", "evidence": ["D1:1", "D1:3"], "category": 4}
 ]
}`

// singleFile wraps conversations in the layout of data/locomo10.json.
func singleFile(t *testing.T, convs map[string]string) string {
	t.Helper()
	var samples []map[string]any
	for _, id := range slices.Sorted(maps.Keys(convs)) {
		var c map[string]json.RawMessage
		if err := json.Unmarshal([]byte(convs[id]), &c); err != nil {
			t.Fatal(err)
		}
		qa := c["qa"]
		delete(c, "qa")
		samples = append(samples, map[string]any{
			"sample_id": id, "conversation": c, "qa": qa,
			"event_summary": map[string]any{}, "observation": map[string]any{}, "session_summary": map[string]any{},
		})
	}
	b, err := json.Marshal(samples)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// convertAndLoad runs the command on in and loads its output as the harness
// does.
func convertAndLoad(t *testing.T, in string) (*dataset.Set, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.json")
	var stderr bytes.Buffer
	if err := run(in, out, nil, &stderr); err != nil {
		t.Fatal(err)
	}
	set, err := dataset.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	return set, stderr.String()
}

// TestLayouts converts the same two conversations from a directory of
// per-conversation files and from the single-file release, and checks the
// results are the same, load, and are what the conversion promises.
func TestLayouts(t *testing.T) {
	dir := writeFiles(t, map[string]string{"7.json": conv7, "8.json": conv8, "notes.txt": "not data"})
	fromDir, summary := convertAndLoad(t, dir)
	single := filepath.Join(writeFiles(t, map[string]string{
		"locomo10.json": singleFile(t, map[string]string{"conv-7": conv7, "conv-8": conv8}),
	}), "locomo10.json")
	fromFile, _ := convertAndLoad(t, single)
	fromDir.Description, fromFile.Description = "", ""
	if a, b := mustJSON(t, fromDir), mustJSON(t, fromFile); a != b {
		t.Errorf("the layouts convert differently:\n%s\n%s", a, b)
	}

	set := fromDir
	if set.Name != "locomo2" || len(set.Conversations) != 2 {
		t.Fatalf("name %s, %d conversations", set.Name, len(set.Conversations))
	}
	c := set.Conversations[0]
	if c.ID != "conv-7" || c.Speakers != [2]string{"Ines", "Bruno"} {
		t.Errorf("conversation %s, speakers %v", c.ID, c.Speakers)
	}
	var dates []string
	for _, s := range c.Sessions {
		dates = append(dates, s.Date)
	}
	if want := []string{"2024-02-28", "2024-03-03", "2024-04-01"}; !slices.Equal(dates, want) {
		t.Errorf("session dates %v, want %v", dates, want)
	}
	if got := c.Sessions[0].Turns[0]; got != (dataset.Turn{ID: "conv-7/D1:1", Speaker: "Bruno", Text: "I started learning the cello last week."}) {
		t.Errorf("first turn %+v", got)
	}
	if got := c.Sessions[1].Turns[1].Text; got != "Look what I made on Sunday! [shares a photo of a red kite on a beach]" {
		t.Errorf("photo turn %q", got)
	}

	type q struct{ id, answer, category, evidence string }
	var got []q
	for _, x := range c.Questions {
		got = append(got, q{x.ID, x.Answer, x.Category, strings.Join(x.Evidence, " ")})
	}
	want := []q{
		{"conv-7/q1", "cello", "single-hop", "conv-7/D1:1"},
		{"conv-7/q2", "2024", "temporal", "conv-7/D1:2"},
		{"conv-7/q3", "a kite; Porto", "multi-hop", "conv-7/D2:2 conv-7/D1:2"},
		{"conv-7/q4", "probably", "open-domain", "conv-7/D1:3"},
		{"conv-7/q8", "cello, driving licence", "multi-hop", "conv-7/D1:1 conv-7/D10:1"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("questions\n got %v\nwant %v", got, want)
	}
	if e := set.Conversations[1].Questions[0].Evidence; !slices.Equal(e, []string{"conv-8/D1:1", "conv-8/D1:3"}) {
		t.Errorf("conv-8 evidence %v", e)
	}

	for _, line := range []string{
		"2 conversations, 4 sessions, 9 turns (1 with a shared photo's caption appended)",
		"kept 6 questions: multi-hop 2, temporal 1, open-domain 1, single-hop 2",
		"dropped 3 questions: 1 adversarial (category 5), 1 with no evidence, 1 whose evidence names no turn",
		"evidence: 11 entries read, 4 normalised (split, spaces, \"D:\", leading zeros); dropped 1 malformed ids, 2 naming no turn, 1 repeated",
	} {
		if !strings.Contains(summary, line) {
			t.Errorf("summary lacks %q:\n%s", line, summary)
		}
	}
}

// TestOneFile converts one per-conversation file, to standard output.
func TestOneFile(t *testing.T) {
	in := filepath.Join(writeFiles(t, map[string]string{"conv-8.json": conv8}), "conv-8.json")
	var stdout, stderr bytes.Buffer
	if err := run(in, "", &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	var set dataset.Set
	if err := json.Unmarshal(stdout.Bytes(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Conversations) != 1 || set.Conversations[0].ID != "conv-8" {
		t.Errorf("conversations %+v", set.Conversations)
	}
	if !strings.Contains(stderr.String(), "1 conversations, 1 sessions, 3 turns") {
		t.Errorf("summary %s", stderr.String())
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseDate(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"1:56 pm on 8 May, 2023", "2023-05-08"},
		{"10:37 am on 27 June, 2023", "2023-06-27"},
		{"12:09 am on  1 January, 2024", "2024-01-01"},
		{"7:15 pm on 12 Oct, 2023", "2023-10-12"},
	} {
		got, err := parseDate(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseDate(%q) = %q, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "8 May 2023", "1:56 pm on 31 February, 2023", "25:00 pm on 8 May, 2023"} {
		if got, err := parseDate(in); err == nil {
			t.Errorf("parseDate(%q) = %q, want an error", in, got)
		}
	}
}

func TestSplitEvidence(t *testing.T) {
	for _, tc := range []struct {
		in        string
		ids       []string
		malformed int
	}{
		{"D1:3", []string{"D1:3"}, 0},
		{" D1:3 ", []string{"D1:3"}, 0},
		{"D30:05", []string{"D30:5"}, 0},
		{"D:11:26", []string{"D11:26"}, 0},
		{"D8:6; D9:17", []string{"D8:6", "D9:17"}, 0},
		{"D9:1 D4:4,D4:6", []string{"D9:1", "D4:4", "D4:6"}, 0},
		{"D", nil, 1},
		{"", nil, 1},
		{"D1:3; session 2", []string{"D1:3"}, 2},
		{"D99999999999999999999:1", nil, 1},
	} {
		ids, malformed := splitEvidence(tc.in)
		if !slices.Equal(ids, tc.ids) || malformed != tc.malformed {
			t.Errorf("splitEvidence(%q) = %v, %d; want %v, %d", tc.in, ids, malformed, tc.ids, tc.malformed)
		}
	}
}

// TestErrors checks that bad input fails with an error naming the file and
// the problem.
func TestErrors(t *testing.T) {
	replace := func(from, to string) string {
		if !strings.Contains(conv8, from) {
			t.Fatalf("fixture lacks %q", from)
		}
		return strings.Replace(conv8, from, to, 1)
	}
	for _, tc := range []struct {
		name, text, want string
	}{
		{"not JSON", "speaker_a: Yuki", "not LoCoMo JSON"},
		{"truncated", conv8[:200], "unexpected end of JSON input"},
		{"array of strings", `["conv-1"]`, "sample 1"},
		{"empty array", `[]`, "no samples"},
		{"no speaker", replace(`"speaker_a": "Yuki",`, ""), "missing speaker_a"},
		{"speaker not a string", replace(`"speaker_b": "Omar"`, `"speaker_b": 7`), "speaker_b is not a non-empty string"},
		{"no qa", replace(`"qa": [`, `"questions": [`), "missing qa"},
		{"no date", replace(`"session_1_date_time": "7:15 pm on 12 Oct, 2023",`, ""), "missing session_1_date_time"},
		{"bad date", replace(`7:15 pm on 12 Oct, 2023`, `autumn 2023`), `session_1_date_time: cannot parse "autumn 2023"`},
		{"session not a list", replace(`"session_1": [`, `"session_1": "none", "turns": [`), "session_1: json: cannot unmarshal string"},
		{"turn without text", replace(`"text": "Pebble."`, `"txt": "Pebble."`), "session_1[2]: needs dia_id, speaker and text"},
		{"repeated dia_id", replace(`"dia_id": "D1:2"`, `"dia_id": "D1:1"`), "dia_id D1:1 repeats"},
		{"no category", replace(`, "category": 4`, ""), "qa[0]: needs question and category"},
		{"bad category", replace(`"category": 4`, `"category": 9`), "qa[0]: category 9 is not one of 1–5"},
		{"no answer", replace(`"answer": "Pebble", `, ""), "qa[0]: missing answer"},
		{"answer a list", replace(`"answer": "Pebble"`, `"answer": ["Pebble"]`), "neither a string nor a number"},
		{"no sessions", `{"speaker_a": "A", "speaker_b": "B", "qa": []}`, "no sessions with turns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"8.json": tc.text})
			err := run(dir, filepath.Join(dir, "out.json"), nil, &bytes.Buffer{})
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), "8.json") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name the file and %q", err, tc.want)
			}
		})
	}
	t.Run("duplicate conversation", func(t *testing.T) {
		dir := writeFiles(t, map[string]string{"8.json": conv8, "conv-8.json": conv8})
		if err := run(dir, filepath.Join(dir, "out.json"), nil, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "conv-8 appears twice") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("no files", func(t *testing.T) {
		dir := t.TempDir()
		if err := run(dir, filepath.Join(dir, "out.json"), nil, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "no .json files") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("missing path", func(t *testing.T) {
		if err := run(filepath.Join(t.TempDir(), "locomo10.json"), "", nil, &bytes.Buffer{}); err == nil {
			t.Error("no error")
		}
	})
}

// FuzzConvert feeds arbitrary files to the converter: it must not panic,
// and whatever it accepts must be a data set the harness loads.
func FuzzConvert(f *testing.F) {
	f.Add([]byte(conv7))
	f.Add([]byte(conv8))
	f.Add([]byte(`[{"sample_id": "conv-1", "conversation": {"speaker_a": "A", "speaker_b": "B",
		"session_1_date_time": "1:00 pm on 1 May, 2023", "session_1": [{"speaker": "A", "dia_id": "D1:1", "text": "hi"}]},
		"qa": [{"question": "q", "answer": 1, "evidence": ["D1:01;D:1:1"], "category": 2}]}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		samples, err := parse("fuzz.json", b)
		if err != nil {
			return
		}
		set, _, err := convert(samples, "fuzz.json")
		if err != nil {
			return
		}
		all := map[string]bool{}
		for _, c := range set.Conversations {
			turns := map[string]bool{}
			for _, s := range c.Sessions {
				for _, tu := range s.Turns {
					if all[tu.ID] {
						t.Fatalf("turn id %s repeats", tu.ID)
					}
					all[tu.ID], turns[tu.ID] = true, true
				}
			}
			for _, q := range c.Questions {
				if len(q.Evidence) == 0 {
					t.Fatalf("question %s has no evidence", q.ID)
				}
				for _, e := range q.Evidence {
					if !turns[e] {
						t.Fatalf("question %s: evidence %s is no turn", q.ID, e)
					}
				}
			}
		}
	})
}
