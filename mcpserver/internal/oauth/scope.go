package oauth

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"picard.dev/shared"
)

var errUnknownScope = errors.New("unknown scope")

// parseScope splits a space-separated scope string, rejecting unknown
// scopes, and returns the scopes in the server's canonical order without
// duplicates, so equal sets compare equal as strings.
func parseScope(raw string) ([]string, error) {
	if len(raw) > 1024 {
		return nil, errUnknownScope
	}
	var out []string
	for _, f := range strings.Split(raw, " ") {
		if f == "" {
			continue
		}
		if !slices.Contains(shared.AllScopes, f) {
			return nil, errUnknownScope
		}
	}
	for _, s := range shared.AllScopes {
		if slices.Contains(strings.Split(raw, " "), s) {
			out = append(out, s)
		}
	}
	return out, nil
}

func joinScope(s []string) string { return strings.Join(s, " ") }

// subset reports whether every scope of a is in b.
func subset(a, b []string) bool {
	for _, s := range a {
		if !slices.Contains(b, s) {
			return false
		}
	}
	return true
}

// scopeDescriptions are shown on the consent and account pages.
var scopeDescriptions = map[string]string{
	shared.ScopeRead:  "Read your memories and those shared with you",
	shared.ScopeWrite: "Create, change and delete your memories",
	shared.ScopeAdmin: "Use administrator tools (only if your account is an administrator)",
}

// defaultScope is what a client gets when it asks for no scope.
var defaultScope = []string{shared.ScopeRead, shared.ScopeWrite}

func jsonBytes(v any) ([]byte, error) { return json.Marshal(v) }
