// Package user holds the accounts of the MCP server: who people are, how
// they prove it (argon2id password hashes), and whether they may sign in.
// It also resolves the users a memory is shared with. Storage comes in
// through Store; the store package implements it for SQLite and Postgres.
package user

import (
	"context"
	"errors"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// User is an account of the MCP server.
type User struct {
	ID           uuid.UUID
	Email        string // as entered; unique case-insensitively
	Name         string
	PasswordHash string // PHC-formatted argon2id; empty for accounts that cannot log in with a password
	Admin        bool
	Disabled     bool
	CreatedAt    time.Time
	LastSeenAt   *time.Time
}

// Errors of the user domain.
var (
	ErrNotFound       = errors.New("user not found")
	ErrEmailTaken     = errors.New("an account with this email already exists")
	ErrBadCredentials = errors.New("email or password is wrong")
	ErrDisabled       = errors.New("account is disabled")
	ErrInvalid        = errors.New("invalid account data")
)

// Store keeps accounts.
type Store interface {
	// Create stores a new user, or returns ErrEmailTaken.
	Create(ctx context.Context, u *User) error
	// ByID and ByEmail return ErrNotFound when there is no such user;
	// ByEmail matches case-insensitively.
	ByID(ctx context.Context, id uuid.UUID) (*User, error)
	ByEmail(ctx context.Context, email string) (*User, error)
	// Update writes every field of u but ID and CreatedAt.
	Update(ctx context.Context, u *User) error
	// Delete removes the user and, by cascade, everything they own.
	Delete(ctx context.Context, id uuid.UUID) error
	// List returns users ordered by id, after the given id.
	List(ctx context.Context, after uuid.UUID, limit int) ([]*User, error)
	// Touch records that the user was seen at t.
	Touch(ctx context.Context, id uuid.UUID, t time.Time) error
}

// Limits of account fields.
const (
	MaxEmailChars    = 254
	MaxNameChars     = 100
	MinPasswordChars = 8
	MaxPasswordChars = 1024
)

// FieldError names the field that is wrong; it matches ErrInvalid.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// NormaliseEmail checks an address and returns it trimmed. Comparison is
// case-insensitive; the stores index the lower-cased form.
func NormaliseEmail(email string) (string, error) {
	email = strings.TrimSpace(email)
	if email == "" {
		return "", &FieldError{"email", "is required"}
	}
	if utf8.RuneCountInString(email) > MaxEmailChars {
		return "", &FieldError{"email", "is too long"}
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || !strings.Contains(email[strings.LastIndexByte(email, '@')+1:], ".") && !strings.HasSuffix(email, "@localhost") {
		return "", &FieldError{"email", "is not a valid email address"}
	}
	return email, nil
}

func checkName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxNameChars {
		return "", &FieldError{"name", "must be at most 100 characters of text"}
	}
	return name, nil
}

func checkPassword(pw string) error {
	n := utf8.RuneCountInString(pw)
	switch {
	case n < MinPasswordChars:
		return &FieldError{"password", "must be at least 8 characters"}
	case n > MaxPasswordChars:
		return &FieldError{"password", "must be at most 1024 characters"}
	}
	return nil
}
