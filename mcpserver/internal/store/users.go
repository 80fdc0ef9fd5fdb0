package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"picard.dev/mcpserver/internal/user"
)

// Users is the user.Store of a DB. Emails are unique case-insensitively
// through the email_lower column, lower-cased here so both dialects agree.
type Users struct{ db *DB }

var _ user.Store = (*Users)(nil)

// Users returns the account store of db.
func (db *DB) Users() *Users { return &Users{db: db} }

const userCols = "id, email, name, password_hash, admin, disabled, created_at, last_seen_at"

// Create stores a new user, or returns user.ErrEmailTaken.
func (s *Users) Create(ctx context.Context, u *user.User) error {
	err := s.db.session(ctx).Exec(`INSERT INTO users (id, email, email_lower, name, password_hash, admin, disabled, created_at, last_seen_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Email, strings.ToLower(u.Email), u.Name, u.PasswordHash, u.Admin, u.Disabled,
		s.db.at(u.CreatedAt), s.db.atPtr(u.LastSeenAt)).Error
	if err != nil {
		return s.writeError(ctx, err, u)
	}
	return nil
}

// writeError turns a unique violation on the email into user.ErrEmailTaken.
func (s *Users) writeError(ctx context.Context, err error, u *user.User) error {
	if isDuplicate(err) {
		if other, lerr := s.ByEmail(ctx, u.Email); lerr == nil && other.ID != u.ID {
			return user.ErrEmailTaken
		}
	}
	return fmt.Errorf("store user: %w", err)
}

// ByID returns a user or user.ErrNotFound.
func (s *Users) ByID(ctx context.Context, id uuid.UUID) (*user.User, error) {
	return s.one(ctx, "SELECT "+userCols+" FROM users WHERE id = ?", id)
}

// ByEmail returns the user with this email, compared case-insensitively,
// or user.ErrNotFound.
func (s *Users) ByEmail(ctx context.Context, email string) (*user.User, error) {
	return s.one(ctx, "SELECT "+userCols+" FROM users WHERE email_lower = ?", strings.ToLower(email))
}

func (s *Users) one(ctx context.Context, query string, args ...any) (*user.User, error) {
	us, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	if len(us) == 0 {
		return nil, user.ErrNotFound
	}
	return us[0], nil
}

func (s *Users) query(ctx context.Context, query string, args ...any) ([]*user.User, error) {
	rows, err := s.db.session(ctx).Raw(query, args...).Rows()
	if err != nil {
		return nil, fmt.Errorf("query users: %w", err)
	}
	defer rows.Close()
	us := []*user.User{}
	for rows.Next() {
		var (
			u             user.User
			created, seen sqlTime
		)
		if err := rows.Scan(&u.ID, &u.Email, &u.Name, &u.PasswordHash, &u.Admin, &u.Disabled, &created, &seen); err != nil {
			return nil, fmt.Errorf("scan user: %w", err)
		}
		u.CreatedAt, u.LastSeenAt = created.Time, seen.ptr()
		us = append(us, &u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query users: %w", err)
	}
	return us, nil
}

// Update writes every field of u but ID and CreatedAt; user.ErrEmailTaken
// when the new email belongs to another account.
func (s *Users) Update(ctx context.Context, u *user.User) error {
	res := s.db.session(ctx).Exec(`UPDATE users SET email = ?, email_lower = ?, name = ?, password_hash = ?, admin = ?,
		disabled = ?, last_seen_at = ? WHERE id = ?`,
		u.Email, strings.ToLower(u.Email), u.Name, u.PasswordHash, u.Admin, u.Disabled, s.db.atPtr(u.LastSeenAt), u.ID)
	if res.Error != nil {
		return s.writeError(ctx, res.Error, u)
	}
	if res.RowsAffected == 0 {
		return user.ErrNotFound
	}
	return nil
}

// Delete removes the user; the foreign keys cascade to their memories,
// tags, shares (theirs and those naming them), vectors and activity.
func (s *Users) Delete(ctx context.Context, id uuid.UUID) error {
	err := s.db.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Exec("DELETE FROM users WHERE id = ?", id)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return user.ErrNotFound
		}
		return nil
	})
	if errors.Is(err, user.ErrNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	return nil
}

// List returns up to limit users ordered by id, after the given id.
func (s *Users) List(ctx context.Context, after uuid.UUID, limit int) ([]*user.User, error) {
	if limit <= 0 {
		limit = 50
	}
	return s.query(ctx, "SELECT "+userCols+" FROM users WHERE id > ? ORDER BY id LIMIT ?", after, limit)
}

// Touch records that the user was seen at t.
func (s *Users) Touch(ctx context.Context, id uuid.UUID, t time.Time) error {
	res := s.db.session(ctx).Exec("UPDATE users SET last_seen_at = ? WHERE id = ?", s.db.at(t), id)
	if res.Error != nil {
		return fmt.Errorf("touch user: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return user.ErrNotFound
	}
	return nil
}
