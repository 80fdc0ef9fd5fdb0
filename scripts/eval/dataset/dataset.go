// Package dataset is the format of Picard's retrieval evaluation data: long
// conversations between two people, split into dated sessions of turns,
// with questions whose answers sit in specific turns (the evidence). It is
// the shape of public conversational-memory benchmarks (LoCoMo and the
// like), so one of those converted to this JSON runs through the same
// harness (scripts/eval).
package dataset

import (
	"encoding/json"
	"fmt"
	"os"
)

// Set is a data set.
type Set struct {
	Name          string         `json:"name"`
	Description   string         `json:"description,omitempty"`
	Conversations []Conversation `json:"conversations"`
}

// Conversation is one haystack: its turns are stored as the memories of one
// user, and its questions are asked by that user.
type Conversation struct {
	ID        string     `json:"id"`
	Speakers  [2]string  `json:"speakers"`
	Sessions  []Session  `json:"sessions"`
	Questions []Question `json:"questions"`
}

// Session is one sitting of a conversation.
type Session struct {
	Date  string `json:"date"` // YYYY-MM-DD
	Turns []Turn `json:"turns"`
}

// Turn is one utterance; ID is unique within the set.
type Turn struct {
	ID      string `json:"id"`
	Speaker string `json:"speaker"`
	Text    string `json:"text"`
	// Role says why a generator wrote the turn (evidence, distractor,
	// reply, smalltalk); informational only.
	Role string `json:"role,omitempty"`
}

// Question is asked of a conversation; Evidence are the turn ids that
// answer it.
type Question struct {
	ID       string   `json:"id"`
	Question string   `json:"question"`
	Answer   string   `json:"answer"`
	Evidence []string `json:"evidence"`
	Category string   `json:"category,omitempty"` // single-hop, multi-hop, temporal, open-domain
}

// MemoryText is how a turn is stored as a memory: the speaker's name, a
// colon, the text.
func MemoryText(t Turn) string { return t.Speaker + ": " + t.Text }

// Load reads a data set and checks that every evidence id names a turn of
// its conversation.
func Load(path string) (*Set, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- a file named by the caller
	if err != nil {
		return nil, err
	}
	var s Set
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, c := range s.Conversations {
		turns := map[string]bool{}
		for _, ss := range c.Sessions {
			for _, t := range ss.Turns {
				if turns[t.ID] {
					return nil, fmt.Errorf("%s: conversation %s: turn id %s repeats", path, c.ID, t.ID)
				}
				turns[t.ID] = true
			}
		}
		for _, q := range c.Questions {
			if len(q.Evidence) == 0 {
				return nil, fmt.Errorf("%s: question %s has no evidence", path, q.ID)
			}
			for _, e := range q.Evidence {
				if !turns[e] {
					return nil, fmt.Errorf("%s: question %s: evidence %s is not a turn of conversation %s", path, q.ID, e, c.ID)
				}
			}
		}
	}
	return &s, nil
}

// Counts returns the numbers of conversations, turns and questions.
func (s *Set) Counts() (convs, turns, questions int) {
	for _, c := range s.Conversations {
		for _, ss := range c.Sessions {
			turns += len(ss.Turns)
		}
		questions += len(c.Questions)
	}
	return len(s.Conversations), turns, questions
}
