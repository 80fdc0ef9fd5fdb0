package user

import (
	"errors"
	"strings"
	"testing"
)

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Contains(h, "correct horse") {
		t.Fatalf("unexpected hash format %q", h)
	}
	if ok, err := CheckPassword(h, "correct horse"); !ok || err != nil {
		t.Fatalf("right password refused: %v %v", ok, err)
	}
	if ok, _ := CheckPassword(h, "correct horsE"); ok {
		t.Fatal("wrong password accepted")
	}
	h2, _ := HashPassword("correct horse")
	if h == h2 {
		t.Fatal("two hashes of one password are equal: salt missing")
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA", "$argon2id$v=19$m=0,t=1,p=1$c2FsdA$aGFzaA", "$argon2id$v=19$m=8,t=1,p=1$!!$aGFzaA"} {
		if ok, err := CheckPassword(bad, "x"); ok || err == nil {
			t.Errorf("CheckPassword(%q) = %v, %v; want an error", bad, ok, err)
		}
	}
}

func TestNormaliseEmail(t *testing.T) {
	good := map[string]string{" Ada@Example.com ": "Ada@Example.com", "a@localhost": "a@localhost"}
	for in, want := range good {
		if got, err := NormaliseEmail(in); err != nil || got != want {
			t.Errorf("NormaliseEmail(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "ada", "ada@", "Ada <ada@example.com>", "a@b", strings.Repeat("a", 250) + "@x.com"} {
		_, err := NormaliseEmail(bad)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "email" || !errors.Is(err, ErrInvalid) {
			t.Errorf("NormaliseEmail(%q) error = %v, want one naming email", bad, err)
		}
	}
}
