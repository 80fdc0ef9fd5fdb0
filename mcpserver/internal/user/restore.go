package user

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/argon2"
)

// Bounds of the argon2id parameters a restored hash may carry: a backup is
// trusted input, but a hash whose parameters make every login take minutes
// is a mistake worth refusing.
const (
	maxArgonMemoryKiB = 1 << 20 // 1 GiB
	maxArgonTime      = 16
	maxArgonThreads   = 16
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
	if u.PasswordHash != "" && !validHash(u.PasswordHash) {
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

// validHash reports whether h has the shape HashPassword produces, with
// parameters CheckPassword can afford to verify.
func validHash(h string) bool {
	parts := strings.Split(h, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return false
	}
	var mem, iters, threads uint32
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &iters, &threads); err != nil || n != 3 ||
		mem == 0 || mem > maxArgonMemoryKiB || iters == 0 || iters > maxArgonTime || threads == 0 || threads > maxArgonThreads {
		return false
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return false
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	return err == nil && len(key) >= 16 && len(key) <= 64
}

// Restore creates an account from a backup exactly as it was: id, email,
// name, password hash, admin and disabled flags, timestamps. u must have
// passed CheckRestored. ErrEmailTaken when another account has the email.
func (s *Service) Restore(ctx context.Context, u *User) error {
	return s.store.Create(ctx, u)
}
