package user

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"picard.dev/shared/argon2id"
)

// Service applies the account rules on top of a Store.
type Service struct {
	store Store
	now   func() time.Time

	// dummyHash is checked against when an email is unknown, so a login
	// attempt takes as long for a missing account as for a wrong password.
	dummyOnce sync.Once
	dummyHash string
}

// NewService returns a Service; now may be nil (time.Now).
func NewService(store Store, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, now: now}
}

// Registration is what a new account is made from.
type Registration struct {
	Email    string
	Name     string
	Password string
	Admin    bool
}

// Register creates an account.
func (s *Service) Register(ctx context.Context, r Registration) (*User, error) {
	email, err := NormaliseEmail(r.Email)
	if err != nil {
		return nil, err
	}
	name, err := checkName(r.Name)
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = email[:strings.IndexByte(email, '@')]
	}
	if err := checkPassword(r.Password); err != nil {
		return nil, err
	}
	hash, err := argon2id.Hash(r.Password)
	if err != nil {
		return nil, err
	}
	u := &User{
		ID:           uuid.New(),
		Email:        email,
		Name:         name,
		PasswordHash: hash,
		Admin:        r.Admin,
		CreatedAt:    s.now().UTC().Truncate(time.Microsecond),
	}
	if err := s.store.Create(ctx, u); err != nil {
		return nil, err
	}
	return u, nil
}

// Authenticate checks an email and password. Unknown email and wrong
// password give the same error, after the same amount of work.
func (s *Service) Authenticate(ctx context.Context, email, password string) (*User, error) {
	u, err := s.store.ByEmail(ctx, strings.TrimSpace(email))
	if errors.Is(err, ErrNotFound) {
		s.dummyOnce.Do(func() { s.dummyHash, _ = argon2id.Hash("picard-dummy-password") })
		_, _ = argon2id.Check(s.dummyHash, password)
		return nil, ErrBadCredentials
	}
	if err != nil {
		return nil, err
	}
	if u.PasswordHash == "" {
		return nil, ErrBadCredentials
	}
	ok, err := argon2id.Check(u.PasswordHash, password)
	if err != nil || !ok {
		return nil, ErrBadCredentials
	}
	if u.Disabled {
		return nil, ErrDisabled
	}
	return u, nil
}

// ChangePassword sets a new password after checking the current one.
func (s *Service) ChangePassword(ctx context.Context, id uuid.UUID, current, next string) error {
	u, err := s.store.ByID(ctx, id)
	if err != nil {
		return err
	}
	if ok, err := argon2id.Check(u.PasswordHash, current); err != nil || !ok {
		return &FieldError{"current_password", "is wrong"}
	}
	if err := checkPassword(next); err != nil {
		return err
	}
	hash, err := argon2id.Hash(next)
	if err != nil {
		return err
	}
	u.PasswordHash = hash
	return s.store.Update(ctx, u)
}

// UpdateProfile changes the display name and email.
func (s *Service) UpdateProfile(ctx context.Context, id uuid.UUID, email, name string) (*User, error) {
	u, err := s.store.ByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if u.Email, err = NormaliseEmail(email); err != nil {
		return nil, err
	}
	if u.Name, err = checkName(name); err != nil {
		return nil, err
	}
	if err := s.store.Update(ctx, u); err != nil {
		return nil, err
	}
	return u, nil
}

// SetDisabled disables or enables an account. Revoking the account's tokens
// is the caller's part (the oauth package owns tokens).
func (s *Service) SetDisabled(ctx context.Context, id uuid.UUID, disabled bool) (*User, error) {
	u, err := s.store.ByID(ctx, id)
	if err != nil {
		return nil, err
	}
	u.Disabled = disabled
	if err := s.store.Update(ctx, u); err != nil {
		return nil, err
	}
	return u, nil
}

// Get returns a user by id.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (*User, error) { return s.store.ByID(ctx, id) }

// ByEmail returns a user by email, case-insensitively.
func (s *Service) ByEmail(ctx context.Context, email string) (*User, error) {
	return s.store.ByEmail(ctx, strings.TrimSpace(email))
}

// List returns a page of users ordered by id.
func (s *Service) List(ctx context.Context, after uuid.UUID, limit int) ([]*User, error) {
	return s.store.List(ctx, after, limit)
}

// Delete removes an account and everything it owns.
func (s *Service) Delete(ctx context.Context, id uuid.UUID) error { return s.store.Delete(ctx, id) }

// Touch records activity of a user.
func (s *Service) Touch(ctx context.Context, id uuid.UUID) error {
	return s.store.Touch(ctx, id, s.now().UTC().Truncate(time.Microsecond))
}

// ResolveUsers maps user ids or emails to ids of existing, enabled users.
// It satisfies memory.UserDirectory; the error names the reference that
// could not be resolved and wraps ErrInvalid.
func (s *Service) ResolveUsers(ctx context.Context, arg string, refs []string) ([]uuid.UUID, error) {
	out := make([]uuid.UUID, len(refs))
	for i, ref := range refs {
		ref = strings.TrimSpace(ref)
		var u *User
		var err error
		if id, perr := uuid.Parse(ref); perr == nil {
			u, err = s.store.ByID(ctx, id)
		} else {
			u, err = s.store.ByEmail(ctx, ref)
		}
		if errors.Is(err, ErrNotFound) {
			return nil, &ResolveError{Arg: fmt.Sprintf("%s[%d]", arg, i), Ref: ref}
		}
		if err != nil {
			return nil, err
		}
		out[i] = u.ID
	}
	return out, nil
}

// ResolveError says a shared_with reference names no user.
type ResolveError struct {
	Arg string
	Ref string
}

func (e *ResolveError) Error() string { return fmt.Sprintf("%s: no user %q", e.Arg, e.Ref) }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ResolveError) Is(target error) bool { return target == ErrInvalid }
