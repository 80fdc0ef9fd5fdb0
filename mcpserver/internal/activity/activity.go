// Package activity is the log of who did what, through which client, and
// when. Tool calls, logins and token events are recorded; people see their
// own entries on /account, administrators see counts. Entries never hold
// memory text.
package activity

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// Entry is one recorded action.
type Entry struct {
	ID       int64
	UserID   uuid.UUID
	ClientID string        // OAuth client id, "pat" for personal access tokens, "web" for pages
	Action   string        // e.g. "tool:submit_memory", "login", "token:revoke"
	Outcome  string        // "ok" or an error code such as "not_found"
	Duration time.Duration // how long the action took
	At       time.Time
}

// Store keeps the log.
type Store interface {
	// Record appends entries, all or none; IDs are assigned by the store.
	Record(ctx context.Context, es ...Entry) error
	// ForUser returns the user's newest entries first.
	ForUser(ctx context.Context, user uuid.UUID, limit int) ([]Entry, error)
	// Since counts entries per action at or after t, for admin statistics.
	Since(ctx context.Context, t time.Time) (map[string]int, error)
}
