package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"picard.dev/scripts/eval/dataset"
)

// categories names LoCoMo's question categories as released (the numbering
// of the data, not the order of the paper's tables). Category 5,
// adversarial, is excluded: its questions have no answer in the
// conversation.
var categories = map[int]string{1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}

// adversarial is the category of unanswerable questions.
const adversarial = 5

// sample is one LoCoMo conversation with its questions, whichever layout it
// was read from.
type sample struct {
	file string                     // where it was read, for errors
	id   string                     // sample_id, or derived from the file name
	conv map[string]json.RawMessage // speaker_a, speaker_b, session_N, session_N_date_time, …
	qa   []qa
}

type qa struct {
	Question string   `json:"question"`
	Answer   *answer  `json:"answer"`
	Evidence []string `json:"evidence"`
	Category *int     `json:"category"`
}

// answer is a question's answer, which LoCoMo gives as a string or, for
// some years and counts, as a JSON number.
type answer string

func (a *answer) UnmarshalJSON(b []byte) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return err
	}
	switch v := v.(type) {
	case string:
		*a = answer(v)
	case json.Number:
		*a = answer(v.String())
	default:
		return fmt.Errorf("answer %s is neither a string nor a number", b)
	}
	return nil
}

type turn struct {
	Speaker     string  `json:"speaker"`
	DiaID       string  `json:"dia_id"`
	Text        *string `json:"text"`
	BlipCaption string  `json:"blip_caption"`
}

// load reads path: the single-file release (a JSON array of samples, each
// with sample_id, conversation and qa), one conversation file, or a
// directory of conversation files (each a sample, or the conversation's
// fields and qa at the top level as in data/multimodal_dialog/locomo10_v2).
func load(path string) ([]sample, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return readFile(path)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var samples []sample
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		s, err := readFile(filepath.Join(path, e.Name()))
		if err != nil {
			return nil, err
		}
		samples = append(samples, s...)
	}
	if len(samples) == 0 {
		return nil, fmt.Errorf("%s: no .json files", path)
	}
	return samples, nil
}

func readFile(path string) ([]sample, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- a file named by the caller
	if err != nil {
		return nil, err
	}
	return parse(path, b)
}

// parse reads the samples of one file named name: an array of samples or
// one conversation object, whose id defaults to "conv-" and the file's base
// name (26.json → conv-26, the sample_id of the single-file release).
func parse(name string, b []byte) ([]sample, error) {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '[':
		var raws []json.RawMessage
		if err := json.Unmarshal(b, &raws); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if len(raws) == 0 {
			return nil, fmt.Errorf("%s: no samples", name)
		}
		samples := make([]sample, 0, len(raws))
		for i, raw := range raws {
			s, err := parseSample(name, fmt.Sprintf("sample %d", i+1), raw)
			if err != nil {
				return nil, err
			}
			samples = append(samples, s)
		}
		return samples, nil
	case len(b) > 0 && b[0] == '{':
		id := strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))
		if !strings.HasPrefix(id, "conv-") {
			id = "conv-" + id
		}
		s, err := parseSample(name, id, b)
		if err != nil {
			return nil, err
		}
		return []sample{s}, nil
	default:
		return nil, fmt.Errorf("%s: not LoCoMo JSON (an array of samples or one conversation object)", name)
	}
}

func parseSample(file, id string, raw json.RawMessage) (sample, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return sample{}, fmt.Errorf("%s: %s: %w", file, id, err)
	}
	if top == nil {
		return sample{}, fmt.Errorf("%s: %s: not an object", file, id)
	}
	if v, ok := top["sample_id"]; ok {
		var sid string
		if err := json.Unmarshal(v, &sid); err != nil || sid == "" {
			return sample{}, fmt.Errorf("%s: %s: sample_id is not a non-empty string", file, id)
		}
		id = sid
	}
	s := sample{file: file, id: id, conv: top}
	if v, ok := top["conversation"]; ok {
		if err := json.Unmarshal(v, &s.conv); err != nil || s.conv == nil {
			return sample{}, fmt.Errorf("%s: %s: conversation is not an object", file, id)
		}
	}
	v, ok := top["qa"]
	if !ok {
		return sample{}, fmt.Errorf("%s: %s: missing qa", file, id)
	}
	if err := json.Unmarshal(v, &s.qa); err != nil {
		return sample{}, fmt.Errorf("%s: %s: qa: %w", file, id, err)
	}
	return s, nil
}

// summary counts what the conversion kept, normalised and dropped.
type summary struct {
	conversations, sessions, turns, captions int
	kept                                     map[string]int // questions by category
	adversarial, noEvidence, evidenceLost    int            // questions dropped
	evidence, normalised, malformed          int            // evidence ids
	notATurn, repeated                       int
}

func (s *summary) write(w io.Writer) error {
	kept, total := []string{}, 0
	for c := 1; c <= 4; c++ {
		kept = append(kept, fmt.Sprintf("%s %d", categories[c], s.kept[categories[c]]))
		total += s.kept[categories[c]]
	}
	_, err := fmt.Fprintf(w, `locomo: %d conversations, %d sessions, %d turns (%d with a shared photo's caption appended)
locomo: kept %d questions: %s
locomo: dropped %d questions: %d adversarial (category 5), %d with no evidence, %d whose evidence names no turn
locomo: evidence: %d entries read, %d normalised (split, spaces, "D:", leading zeros); dropped %d malformed ids, %d naming no turn, %d repeated
`,
		s.conversations, s.sessions, s.turns, s.captions,
		total, strings.Join(kept, ", "),
		s.adversarial+s.noEvidence+s.evidenceLost, s.adversarial, s.noEvidence, s.evidenceLost,
		s.evidence, s.normalised, s.malformed, s.notATurn, s.repeated)
	return err
}

// convert turns samples into a data set; source names the input in the
// set's description.
func convert(samples []sample, source string) (*dataset.Set, *summary, error) {
	set := &dataset.Set{
		Name: fmt.Sprintf("locomo%d", len(samples)),
		Description: "LoCoMo (Maharana et al., \"Evaluating Very Long-Term Conversational Memory of LLM Agents\", " +
			"ACL 2024; https://github.com/snap-research/locomo; CC BY-NC 4.0, not redistributed here), converted from " +
			source + " by scripts/eval/locomo: a turn that shares a photo carries its BLIP caption, adversarial " +
			"(category 5) questions are left out.",
	}
	sum := &summary{kept: map[string]int{}}
	convs, turns := map[string]bool{}, map[string]bool{}
	for _, s := range samples {
		if convs[s.id] {
			return nil, nil, fmt.Errorf("%s: conversation %s appears twice", s.file, s.id)
		}
		convs[s.id] = true
		c, err := conversation(s, sum)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %s: %w", s.file, s.id, err)
		}
		// Ids are unique within a conversation; only odd ids (a sample_id
		// or dia_id with a slash) could make them meet across two.
		for _, ss := range c.Sessions {
			for _, t := range ss.Turns {
				if turns[t.ID] {
					return nil, nil, fmt.Errorf("%s: %s: turn id %s is also a turn of another conversation", s.file, s.id, t.ID)
				}
				turns[t.ID] = true
			}
		}
		set.Conversations = append(set.Conversations, c)
	}
	sum.conversations = len(set.Conversations)
	return set, sum, nil
}

var sessionKey = regexp.MustCompile(`^session_([0-9]+)$`)

func conversation(s sample, sum *summary) (dataset.Conversation, error) {
	c := dataset.Conversation{ID: s.id}
	for i, k := range []string{"speaker_a", "speaker_b"} {
		if err := stringField(s.conv, k, &c.Speakers[i]); err != nil {
			return c, err
		}
	}
	var numbers []int
	for k := range s.conv {
		if m := sessionKey.FindStringSubmatch(k); m != nil {
			n, err := strconv.Atoi(m[1])
			if err != nil {
				return c, fmt.Errorf("%s: %w", k, err)
			}
			numbers = append(numbers, n)
		}
	}
	slices.Sort(numbers)
	turnID := map[string]string{} // LoCoMo's dia_id → the set's turn id
	for _, n := range numbers {
		key := fmt.Sprintf("session_%d", n)
		var turns []turn
		if err := json.Unmarshal(s.conv[key], &turns); err != nil {
			return c, fmt.Errorf("%s: %w", key, err)
		}
		if len(turns) == 0 {
			continue
		}
		var when string
		if err := stringField(s.conv, key+"_date_time", &when); err != nil {
			return c, err
		}
		date, err := parseDate(when)
		if err != nil {
			return c, fmt.Errorf("%s_date_time: %w", key, err)
		}
		ss := dataset.Session{Date: date}
		for i, t := range turns {
			if t.DiaID == "" || t.Speaker == "" || t.Text == nil {
				return c, fmt.Errorf("%s[%d]: needs dia_id, speaker and text", key, i)
			}
			if turnID[t.DiaID] != "" {
				return c, fmt.Errorf("%s[%d]: dia_id %s repeats", key, i, t.DiaID)
			}
			turnID[t.DiaID] = s.id + "/" + t.DiaID
			text := *t.Text
			if t.BlipCaption != "" {
				text += " [shares " + t.BlipCaption + "]"
				sum.captions++
			}
			ss.Turns = append(ss.Turns, dataset.Turn{ID: turnID[t.DiaID], Speaker: t.Speaker, Text: text})
		}
		c.Sessions = append(c.Sessions, ss)
		sum.sessions++
		sum.turns += len(ss.Turns)
	}
	if len(c.Sessions) == 0 {
		return c, errors.New("no sessions with turns")
	}
	for i, q := range s.qa {
		if q.Question == "" || q.Category == nil {
			return c, fmt.Errorf("qa[%d]: needs question and category", i)
		}
		if *q.Category == adversarial {
			sum.adversarial++
			continue
		}
		category, ok := categories[*q.Category]
		if !ok {
			return c, fmt.Errorf("qa[%d]: category %d is not one of 1–5", i, *q.Category)
		}
		if q.Answer == nil {
			return c, fmt.Errorf("qa[%d]: missing answer", i)
		}
		if len(q.Evidence) == 0 {
			sum.noEvidence++
			continue
		}
		var evidence []string
		for _, raw := range q.Evidence {
			sum.evidence++
			ids, malformed := splitEvidence(raw)
			sum.malformed += malformed
			if len(ids) > 0 && (len(ids) > 1 || ids[0] != raw) {
				sum.normalised++
			}
			for _, id := range ids {
				switch {
				case turnID[id] == "":
					sum.notATurn++
				case slices.Contains(evidence, turnID[id]):
					sum.repeated++
				default:
					evidence = append(evidence, turnID[id])
				}
			}
		}
		if len(evidence) == 0 {
			sum.evidenceLost++
			continue
		}
		c.Questions = append(c.Questions, dataset.Question{
			ID:       fmt.Sprintf("%s/q%d", s.id, i+1),
			Question: q.Question,
			Answer:   string(*q.Answer),
			Evidence: evidence,
			Category: category,
		})
		sum.kept[category]++
	}
	return c, nil
}

func stringField(m map[string]json.RawMessage, key string, dst *string) error {
	v, ok := m[key]
	if !ok {
		return fmt.Errorf("missing %s", key)
	}
	if err := json.Unmarshal(v, dst); err != nil || *dst == "" {
		return fmt.Errorf("%s is not a non-empty string", key)
	}
	return nil
}

// parseDate turns LoCoMo's "1:56 pm on 8 May, 2023" into 2023-05-08.
func parseDate(v string) (string, error) {
	s := strings.Join(strings.Fields(v), " ")
	for _, layout := range []string{"3:04 pm on 2 January, 2006", "3:04 pm on 2 Jan, 2006"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Format(time.DateOnly), nil
		}
	}
	return "", fmt.Errorf("cannot parse %q as a date like \"1:56 pm on 8 May, 2023\"", v)
}

var dialogID = regexp.MustCompile(`^D:?([0-9]+):([0-9]+)$`)

// splitEvidence reads one entry of a question's evidence as dialog ids in
// LoCoMo's form D<session>:<turn>. An entry may hold several ids separated
// by ';', ',' or spaces; "D:11:26" and "D30:05" are read as D11:26 and
// D30:5. Pieces that are no dialog id at all (such as a lone "D") are
// counted as malformed.
func splitEvidence(raw string) (ids []string, malformed int) {
	pieces := strings.FieldsFunc(raw, func(r rune) bool {
		return r == ';' || r == ',' || r == ' ' || r == '\t' || r == '\n'
	})
	if len(pieces) == 0 {
		return nil, 1
	}
	for _, p := range pieces {
		m := dialogID.FindStringSubmatch(p)
		if m == nil {
			malformed++
			continue
		}
		session, err1 := strconv.Atoi(m[1])
		n, err2 := strconv.Atoi(m[2])
		if err1 != nil || err2 != nil {
			malformed++
			continue
		}
		ids = append(ids, fmt.Sprintf("D%d:%d", session, n))
	}
	return ids, malformed
}
