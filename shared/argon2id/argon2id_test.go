package argon2id

import (
	"errors"
	"strings"
	"testing"
)

func TestHashAndCheck(t *testing.T) {
	h, err := Hash("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Contains(h, "correct horse") || !Valid(h) {
		t.Fatalf("unexpected hash %q", h)
	}
	if ok, err := Check(h, "correct horse"); !ok || err != nil {
		t.Fatalf("right password refused: %v %v", ok, err)
	}
	if ok, err := Check(h, "correct horsE"); ok || err != nil {
		t.Fatalf("wrong password: %v %v", ok, err)
	}
	if h2, _ := Hash("correct horse"); h2 == h {
		t.Fatal("two hashes of one password are equal: no salt")
	}
}

func TestOtherParametersStillVerify(t *testing.T) {
	// A hash with RFC 9106's second recommended parameters (64 MiB, 3
	// passes, 2 lanes), as the web client made before both services shared
	// this package.
	const old = "$argon2id$v=19$m=65536,t=3,p=2$c2FsdHNhbHRzYWx0c2FsdA$WxzcuiJMn0H6IQWLhK4MPw0RTDuhAJH4DXEj1NZuVt0"
	if !Valid(old) {
		t.Fatal("a hash with other parameters is not valid")
	}
	if _, err := Check(old, "whatever"); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

func TestMalformed(t *testing.T) {
	for _, bad := range []string{
		"",
		"plain",
		"$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=18$m=8,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=0,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=9999999,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=8,t=99,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=8,t=1,p=1$!!$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=8,t=1,p=1$c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$a2V5",
	} {
		if Valid(bad) {
			t.Errorf("Valid(%q) = true", bad)
		}
		if ok, err := Check(bad, "x"); ok || !errors.Is(err, ErrMalformed) {
			t.Errorf("Check(%q) = %v, %v; want ErrMalformed", bad, ok, err)
		}
	}
}
