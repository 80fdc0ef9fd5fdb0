package account

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"picard.dev/webclient/internal/store"
)

func newService(t *testing.T) *Service {
	t.Helper()
	db, err := store.Open(context.Background(), "", filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return New(db.Gorm, []byte(strings.Repeat("x", 32)))
}

func TestSignUpAndLogin(t *testing.T) {
	ctx := context.Background()
	s := newService(t)
	u, err := s.SignUp(ctx, " Alice@Example.com ", "long enough password")
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != "alice@example.com" || !strings.HasPrefix(u.PasswordHash, "$argon2id$v=19$") {
		t.Fatalf("user %+v", u)
	}
	for _, tt := range []struct {
		email, pw string
		want      error
	}{
		{"alice@example.com", "long enough password", ErrEmailTaken},
		{"not an email", "long enough password", ErrInvalidEmail},
		{"bob@example.com", "short", ErrWeakPassword},
		{"bob@example.com", strings.Repeat("p", MaxPasswordLen+1), ErrWeakPassword},
	} {
		if _, err := s.SignUp(ctx, tt.email, tt.pw); !errors.Is(err, tt.want) {
			t.Errorf("SignUp(%q): %v, want %v", tt.email, err, tt.want)
		}
	}
	if got, err := s.Authenticate(ctx, "ALICE@example.com", "long enough password"); err != nil || got.ID != u.ID {
		t.Fatalf("login: %v", err)
	}
	for _, bad := range [][2]string{{"alice@example.com", "wrong password!"}, {"nobody@example.com", "long enough password"}, {"", ""}} {
		if _, err := s.Authenticate(ctx, bad[0], bad[1]); !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("Authenticate(%q): %v", bad[0], err)
		}
	}
}

func TestSessions(t *testing.T) {
	ctx := context.Background()
	s := newService(t)
	u, _ := s.SignUp(ctx, "a@example.com", "long enough password")
	t1, err := s.CreateSession(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	t2, _ := s.CreateSession(ctx, u.ID)
	if t1 == t2 {
		t.Fatal("two logins share a session id")
	}
	if got, err := s.SessionUser(ctx, t1); err != nil || got.ID != u.ID {
		t.Fatalf("SessionUser: %v", err)
	}
	if _, err := s.SessionUser(ctx, "forged"); !errors.Is(err, ErrNoSession) {
		t.Fatalf("forged session: %v", err)
	}
	// Changing the password ends other sessions and keeps the current one.
	if err := s.ChangePassword(ctx, u.ID, "wrong", "another long password", t1); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("wrong current password: %v", err)
	}
	if err := s.ChangePassword(ctx, u.ID, "long enough password", "another long password", t1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SessionUser(ctx, t2); !errors.Is(err, ErrNoSession) {
		t.Fatal("other session survived a password change")
	}
	if _, err := s.SessionUser(ctx, t1); err != nil {
		t.Fatal("current session ended by a password change")
	}
	if err := s.DeleteSession(ctx, t1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SessionUser(ctx, t1); !errors.Is(err, ErrNoSession) {
		t.Fatal("session survived logout")
	}
	// Deleting the user deletes its sessions.
	t3, _ := s.CreateSession(ctx, u.ID)
	if err := s.Delete(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SessionUser(ctx, t3); !errors.Is(err, ErrNoSession) {
		t.Fatal("session survived account deletion")
	}
}

func TestCSRF(t *testing.T) {
	s := newService(t)
	tok := s.CSRFToken("session-a")
	if !s.ValidCSRF("session-a", tok) {
		t.Fatal("own token rejected")
	}
	for _, tt := range [][2]string{{"session-b", tok}, {"session-a", ""}, {"", tok}, {"session-a", tok + "x"}} {
		if s.ValidCSRF(tt[0], tt[1]) {
			t.Errorf("ValidCSRF(%q, %q) accepted", tt[0], tt[1])
		}
	}
	other := New(nil, []byte(strings.Repeat("y", 32)))
	if other.ValidCSRF("session-a", tok) {
		t.Fatal("token valid under another secret")
	}
}
