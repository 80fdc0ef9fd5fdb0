package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"picard.dev/mcpserver/internal/activity"
)

// Activity is the activity.Store of a DB.
type Activity struct{ db *DB }

var _ activity.Store = (*Activity)(nil)

// Activity returns the activity log of db.
func (db *DB) Activity() *Activity { return &Activity{db: db} }

// Record appends entries in one transaction. An entry without a user
// (uuid.Nil) is stored with no user, e.g. a failed login for an unknown
// email; a zero At means now.
func (s *Activity) Record(ctx context.Context, es ...activity.Entry) error {
	now := time.Now()
	rows := make([][]any, len(es))
	for i, e := range es {
		at := e.At
		if at.IsZero() {
			at = now
		}
		var userID any
		if e.UserID != uuid.Nil {
			userID = e.UserID
		}
		rows[i] = []any{userID, e.ClientID, e.Action, e.Outcome, e.Duration.Milliseconds(), s.db.at(at)}
	}
	err := s.db.tx(ctx, func(tx *gorm.DB) error {
		return insertRows(tx, "activity", []string{"user_id", "client_id", "action", "outcome", "duration_ms", "at"}, rows)
	})
	if err != nil {
		return fmt.Errorf("record activity: %w", err)
	}
	return nil
}

// ForUser returns the user's newest entries first.
func (s *Activity) ForUser(ctx context.Context, userID uuid.UUID, limit int) ([]activity.Entry, error) {
	if limit <= 0 {
		limit = 50
	}
	rows, err := s.db.session(ctx).Raw(`SELECT id, user_id, client_id, action, outcome, duration_ms, at FROM activity
		WHERE user_id = ? ORDER BY at DESC, id DESC LIMIT ?`, userID, limit).Rows()
	if err != nil {
		return nil, fmt.Errorf("list activity: %w", err)
	}
	defer rows.Close()
	out := []activity.Entry{}
	for rows.Next() {
		var (
			e  activity.Entry
			ms int64
			at sqlTime
		)
		if err := rows.Scan(&e.ID, &e.UserID, &e.ClientID, &e.Action, &e.Outcome, &ms, &at); err != nil {
			return nil, fmt.Errorf("scan activity: %w", err)
		}
		e.Duration, e.At = time.Duration(ms)*time.Millisecond, at.Time
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list activity: %w", err)
	}
	return out, nil
}

// Since counts entries per action at or after t.
func (s *Activity) Since(ctx context.Context, t time.Time) (map[string]int, error) {
	rows, err := s.db.session(ctx).Raw("SELECT action, count(*) FROM activity WHERE at >= ? GROUP BY action", s.db.at(t)).Rows()
	if err != nil {
		return nil, fmt.Errorf("count activity: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var action string
		var n int
		if err := rows.Scan(&action, &n); err != nil {
			return nil, fmt.Errorf("count activity: %w", err)
		}
		out[action] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count activity: %w", err)
	}
	return out, nil
}
