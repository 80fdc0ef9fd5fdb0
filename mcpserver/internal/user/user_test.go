package user

import (
	"errors"
	"strings"
	"testing"
)

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

func TestPasswordPolicy(t *testing.T) {
	for _, tc := range []struct {
		pw string
		ok bool
	}{
		{"short", false},
		{"eight ch", true},
		{strings.Repeat("x", MaxPasswordChars), true},
		{strings.Repeat("x", MaxPasswordChars+1), false},
	} {
		err := checkPassword(tc.pw)
		var fe *FieldError
		if tc.ok != (err == nil) || (err != nil && (!errors.As(err, &fe) || fe.Field != "password")) {
			t.Errorf("checkPassword(%d chars) = %v, want ok=%v", len(tc.pw), err, tc.ok)
		}
	}
}
