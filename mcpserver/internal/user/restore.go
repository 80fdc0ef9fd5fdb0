package user

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"picard.dev/shared/argon2id"
)

// CheckRestored checks an account read from a backup and normalises it as
// Register would (trimmed email and name, UTC times). field prefixes the
// field names in errors, e.g. "users[3]".
func CheckRestored(field string, u *User) error {
	if u.ID == uuid.Nil {
		return &FieldError{field + ".id", "is required"}
	}
	email, err := NormaliseEmail(u.Email)
	if err != nil {
		return refield(field+".email", err)
	}
	name, err := checkName(u.Name)
	if err != nil {
		return refield(field+".name", err)
	}
	if u.PasswordHash != "" && !argon2id.Valid(u.PasswordHash) {
		return &FieldError{field + ".password_hash", "is not an argon2id hash in PHC format made by Picard"}
	}
	if u.CreatedAt.IsZero() {
		return &FieldError{field + ".created_at", "is required"}
	}
	u.Email, u.Name = email, name
	u.CreatedAt = u.CreatedAt.UTC().Truncate(time.Microsecond)
	if u.LastSeenAt != nil {
		t := u.LastSeenAt.UTC().Truncate(time.Microsecond)
		u.LastSeenAt = &t
	}
	return nil
}

// refield renames the field of a FieldError.
func refield(field string, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		return &FieldError{field, fe.Msg}
	}
	return err
}

// Restore creates an account from a backup exactly as it was: id, email,
// name, password hash, admin and disabled flags, timestamps. u must have
// passed CheckRestored. ErrEmailTaken when another account has the email.
func (s *Service) Restore(ctx context.Context, u *User) error {
	return s.store.Create(ctx, u)
}
