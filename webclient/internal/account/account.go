// Package account manages the web client's own users: sign-up, password
// login (argon2id), server-side sessions kept in the database, and CSRF
// tokens bound to the browser's session.
package account

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"picard.dev/shared/argon2id"
)

// Errors the UI shows to the user.
var (
	ErrEmailTaken         = errors.New("an account with this email already exists")
	ErrInvalidEmail       = errors.New("enter a valid email address")
	ErrWeakPassword       = errors.New("the password must be 10 to 1024 characters long")
	ErrInvalidCredentials = errors.New("wrong email or password")
	ErrNoSession          = errors.New("no such session")
)

// Password length bounds. The upper bound keeps argon2 input sane; there is
// no composition rule (NIST SP 800-63B).
const (
	MinPasswordLen = 10
	MaxPasswordLen = 1024
)

// SessionTTL is how long a session lives after login.
const SessionTTL = 30 * 24 * time.Hour

// User is an account of the web client.
type User struct {
	ID           string `gorm:"primaryKey"`
	Email        string
	PasswordHash string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

type session struct {
	IDHash    string `gorm:"primaryKey"`
	UserID    string
	CreatedAt time.Time
	ExpiresAt time.Time
}

func (session) TableName() string { return "sessions" }

// Service is the account store.
type Service struct {
	db      *gorm.DB
	csrfKey []byte
	now     func() time.Time
}

// New returns a Service over db; secret keys the CSRF tokens.
func New(db *gorm.DB, secret []byte) *Service {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("picard webclient csrf v1"))
	return &Service{db: db, csrfKey: m.Sum(nil), now: time.Now}
}

// NormalizeEmail lower-cases and trims an address and checks it is one.
func NormalizeEmail(email string) (string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || len(email) > 254 {
		return "", ErrInvalidEmail
	}
	return email, nil
}

func checkPasswordPolicy(pw string) error {
	if n := utf8.RuneCountInString(pw); n < MinPasswordLen || len(pw) > MaxPasswordLen {
		return ErrWeakPassword
	}
	return nil
}

// SignUp creates an account.
func (s *Service) SignUp(ctx context.Context, email, password string) (*User, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return nil, err
	}
	if err := checkPasswordPolicy(password); err != nil {
		return nil, err
	}
	hash, err := argon2id.Hash(password)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	u := &User{ID: uuid.NewString(), Email: email, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	if err := s.db.WithContext(ctx).Create(u).Error; err != nil {
		if errors.Is(err, gorm.ErrDuplicatedKey) {
			return nil, ErrEmailTaken
		}
		return nil, fmt.Errorf("creating user: %w", err)
	}
	return u, nil
}

// dummyHash is checked when the email is unknown so that a login attempt
// takes as long for an unknown address as for a known one.
var dummyHash, _ = argon2id.Hash("picard-timing-equaliser")

// Authenticate returns the user with this email and password.
func (s *Service) Authenticate(ctx context.Context, email, password string) (*User, error) {
	email, err := NormalizeEmail(email)
	if err != nil {
		return nil, ErrInvalidCredentials
	}
	var u User
	err = s.db.WithContext(ctx).Where("email = ?", email).First(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		_, _ = argon2id.Check(dummyHash, password)
		return nil, ErrInvalidCredentials
	}
	if err != nil {
		return nil, fmt.Errorf("loading user: %w", err)
	}
	ok, err := argon2id.Check(u.PasswordHash, password)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", u.ID, err)
	}
	if !ok {
		return nil, ErrInvalidCredentials
	}
	return &u, nil
}

// ChangePassword sets a new password after checking the current one, and
// ends every other session of the user (a changed password should lock
// out whoever else knew the old one).
func (s *Service) ChangePassword(ctx context.Context, userID, current, next, keepSession string) error {
	var u User
	if err := s.db.WithContext(ctx).First(&u, "id = ?", userID).Error; err != nil {
		return fmt.Errorf("loading user: %w", err)
	}
	ok, err := argon2id.Check(u.PasswordHash, current)
	if err != nil {
		return err
	}
	if !ok {
		return ErrInvalidCredentials
	}
	if err := checkPasswordPolicy(next); err != nil {
		return err
	}
	hash, err := argon2id.Hash(next)
	if err != nil {
		return err
	}
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&User{}).Where("id = ?", userID).Updates(map[string]any{"password_hash": hash, "updated_at": s.now().UTC()}).Error; err != nil {
			return err
		}
		return tx.Where("user_id = ? AND id_hash <> ?", userID, hashToken(keepSession)).Delete(&session{}).Error
	})
}

// CheckPassword verifies the password of a signed-in user, for confirming
// destructive actions.
func (s *Service) CheckPassword(ctx context.Context, userID, password string) error {
	var u User
	if err := s.db.WithContext(ctx).First(&u, "id = ?", userID).Error; err != nil {
		return fmt.Errorf("loading user: %w", err)
	}
	ok, err := argon2id.Check(u.PasswordHash, password)
	if err != nil {
		return err
	}
	if !ok {
		return ErrInvalidCredentials
	}
	return nil
}

// Delete removes the user; sessions, tokens and pending flows go with it
// through ON DELETE CASCADE.
func (s *Service) Delete(ctx context.Context, userID string) error {
	return s.db.WithContext(ctx).Delete(&User{}, "id = ?", userID).Error
}

// NewToken returns a random URL-safe token of 256 bits.
func NewToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(t string) string {
	h := sha256.Sum256([]byte(t))
	return hex.EncodeToString(h[:])
}

// HashToken is the SHA-256 of a token as stored in the database; other
// packages use it to bind their records to a session.
func HashToken(t string) string { return hashToken(t) }

// CreateSession starts a session and returns the cookie value. Every login
// gets a fresh value, which is what prevents session fixation.
func (s *Service) CreateSession(ctx context.Context, userID string) (string, error) {
	tok := NewToken()
	now := s.now().UTC()
	if err := s.db.WithContext(ctx).Create(&session{IDHash: hashToken(tok), UserID: userID, CreatedAt: now, ExpiresAt: now.Add(SessionTTL)}).Error; err != nil {
		return "", fmt.Errorf("creating session: %w", err)
	}
	return tok, nil
}

// SessionUser returns the user of a live session.
func (s *Service) SessionUser(ctx context.Context, token string) (*User, error) {
	if token == "" {
		return nil, ErrNoSession
	}
	var sess session
	err := s.db.WithContext(ctx).Where("id_hash = ? AND expires_at > ?", hashToken(token), s.now().UTC()).First(&sess).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("loading session: %w", err)
	}
	var u User
	if err := s.db.WithContext(ctx).First(&u, "id = ?", sess.UserID).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, ErrNoSession
		}
		return nil, fmt.Errorf("loading user: %w", err)
	}
	return &u, nil
}

// DeleteSession ends one session.
func (s *Service) DeleteSession(ctx context.Context, token string) error {
	return s.db.WithContext(ctx).Where("id_hash = ?", hashToken(token)).Delete(&session{}).Error
}

// PurgeExpired deletes expired sessions.
func (s *Service) PurgeExpired(ctx context.Context) error {
	return s.db.WithContext(ctx).Where("expires_at <= ?", s.now().UTC()).Delete(&session{}).Error
}

// CSRFToken returns the CSRF token for a browser identified by key (the
// session cookie value, or a pre-session cookie for anonymous forms). It is
// an HMAC, so it needs no storage and changes whenever the session does.
func (s *Service) CSRFToken(key string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte(key))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// ValidCSRF reports whether token belongs to key.
func (s *Service) ValidCSRF(key, token string) bool {
	if key == "" || token == "" {
		return false
	}
	return hmac.Equal([]byte(s.CSRFToken(key)), []byte(token))
}
