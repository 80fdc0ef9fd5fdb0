package memory

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Limits of the contract. Each is enforced by the Service before anything
// is stored, with an error naming the argument.
const (
	MaxTextChars     = 32768
	MaxTags          = 32
	MaxTagChars      = 64
	MaxMetadataBytes = 8 << 10
	MaxBatch         = 1000
	MaxListLimit     = 500
	DefaultListLimit = 50
	MaxSearchLimit   = 100
	DefaultSearch    = 10
	MaxQueryChars    = 4096
	MaxSharedWith    = 100
)

func checkText(arg, text string) error {
	if !utf8.ValidString(text) {
		return Invalidf(arg, "is not valid UTF-8")
	}
	if strings.TrimSpace(text) == "" {
		return Invalidf(arg, "must not be empty")
	}
	if n := utf8.RuneCountInString(text); n > MaxTextChars {
		return TooLargef(arg, "has %d characters; the limit is %d", n, MaxTextChars)
	}
	return nil
}

// normaliseTags trims each tag, drops exact duplicates and enforces the
// limits; it returns a new slice (never nil) so callers can store it as is.
func normaliseTags(arg string, tags []string) ([]string, error) {
	if len(tags) > MaxTags {
		return nil, TooLargef(arg, "has %d tags; the limit is %d", len(tags), MaxTags)
	}
	out := make([]string, 0, len(tags))
	seen := make(map[string]bool, len(tags))
	for i, t := range tags {
		t = strings.TrimSpace(t)
		argI := fmt.Sprintf("%s[%d]", arg, i)
		switch {
		case !utf8.ValidString(t):
			return nil, Invalidf(argI, "is not valid UTF-8")
		case t == "":
			return nil, Invalidf(argI, "must not be empty")
		case utf8.RuneCountInString(t) > MaxTagChars:
			return nil, TooLargef(argI, "is longer than %d characters", MaxTagChars)
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out, nil
}

// checkMetadata enforces the size limit on the JSON encoding of metadata and
// returns a copy that has been through JSON, so only JSON values are stored.
func checkMetadata(arg string, md map[string]any) (map[string]any, error) {
	if md == nil {
		return map[string]any{}, nil
	}
	b, err := json.Marshal(md)
	if err != nil {
		return nil, Invalidf(arg, "is not a JSON object: %v", err)
	}
	if len(b) > MaxMetadataBytes {
		return nil, TooLargef(arg, "is %d bytes of JSON; the limit is %d", len(b), MaxMetadataBytes)
	}
	out := map[string]any{}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, Invalidf(arg, "is not a JSON object: %v", err)
	}
	for k := range out {
		if k == "" {
			return nil, Invalidf(arg, "has an empty key")
		}
	}
	return out, nil
}

// checkMetadataFilter accepts only scalar values: a filter matches memories
// whose metadata has each key with exactly that value.
func checkMetadataFilter(arg string, md map[string]any) error {
	if len(md) > MaxTags {
		return TooLargef(arg, "has %d keys; the limit is %d", len(md), MaxTags)
	}
	for k, v := range md {
		switch v.(type) {
		case string, bool, float64, int, int64, json.Number:
		case nil:
			return Invalidf(arg+"."+k, "null cannot be matched; leave the key out")
		default:
			return Invalidf(arg+"."+k, "must be a string, number or boolean")
		}
	}
	return nil
}

// ParseID parses a memory or user id, naming arg in the error.
func ParseID(arg, s string) (uuid.UUID, error) {
	id, err := uuid.Parse(strings.TrimSpace(s))
	if err != nil || id == uuid.Nil {
		return uuid.Nil, Invalidf(arg, "%q is not a UUID", s)
	}
	return id, nil
}
