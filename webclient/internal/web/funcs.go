package web

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"picard.dev/shared"
)

func (s *server) funcs() template.FuncMap {
	return template.FuncMap{
		"ts": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
		"tsp": func(t *time.Time) string {
			if t == nil {
				return ""
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
		"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"join":  strings.Join,
		"score": func(f float64) string { return fmt.Sprintf("%.3f", f) },
		"permissions": func() []string {
			return []string{shared.PermissionPrivate, shared.PermissionPublic, shared.PermissionShared}
		},
		"inc": func(i int) int { return i + 1 },
		// card bundles what the memory-card partial needs, since a
		// template call passes a single value.
		"card": func(v view, it memoryItem, back string) cardData {
			return cardData{Item: it, CanWrite: v.CanWrite, CSRF: v.CSRF, Back: back}
		},
	}
}

type cardData struct {
	Item     memoryItem
	CanWrite bool
	CSRF     string
	Back     string
}
