package memory

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestVisible(t *testing.T) {
	owner, friend, stranger := uuid.New(), uuid.New(), uuid.New()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	mk := func(p Permission, exp *time.Time) *Memory {
		return &Memory{OwnerID: owner, Permission: p, SharedWith: []uuid.UUID{friend}, ExpiresAt: exp}
	}
	tests := []struct {
		name           string
		m              *Memory
		viewer         uuid.UUID
		includeExpired bool
		want           bool
	}{
		{"owner sees private", mk(Private, nil), owner, false, true},
		{"stranger does not see private", mk(Private, nil), stranger, false, false},
		{"friend does not see private even if listed", mk(Private, nil), friend, false, false},
		{"stranger sees public", mk(Public, nil), stranger, false, true},
		{"friend sees shared", mk(Shared, nil), friend, false, true},
		{"stranger does not see shared", mk(Shared, nil), stranger, false, false},
		{"unexpired public visible", mk(Public, &future), stranger, false, true},
		{"expired public hidden from others", mk(Public, &past), stranger, false, false},
		{"expired public hidden from others even when asked", mk(Public, &past), stranger, true, false},
		{"expired shared hidden from friend", mk(Shared, &past), friend, true, false},
		{"expired hidden from owner by default", mk(Private, &past), owner, false, false},
		{"expired shown to owner who asks", mk(Private, &past), owner, true, true},
		{"expiry exactly now counts as expired", mk(Public, &now), stranger, false, false},
		{"unknown permission is private", mk(Permission("team"), nil), stranger, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Visible(tt.m, tt.viewer, now, tt.includeExpired); got != tt.want {
				t.Errorf("Visible = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParsePermission(t *testing.T) {
	for _, p := range Permissions {
		got, err := ParsePermission(string(p))
		if err != nil || got != p {
			t.Errorf("ParsePermission(%q) = %q, %v", p, got, err)
		}
	}
	for _, bad := range []string{"", "Public", "everyone", " private"} {
		_, err := ParsePermission(bad)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "permission") {
			t.Errorf("ParsePermission(%q) error = %v, want ErrInvalid naming permission", bad, err)
		}
	}
}

func TestLimits(t *testing.T) {
	tests := []struct {
		name string
		err  error
		kind error
		arg  string
	}{
		{"empty text", checkText("text", ""), ErrInvalid, "text"},
		{"blank text", checkText("text", " \n\t"), ErrInvalid, "text"},
		{"invalid utf8", checkText("text", "\xff"), ErrInvalid, "text"},
		{"text too long", checkText("text", strings.Repeat("é", MaxTextChars+1)), ErrTooLarge, "text"},
		{"too many tags", second(normaliseTags("tags", make([]string, MaxTags+1))), ErrTooLarge, "tags"},
		{"empty tag", second(normaliseTags("tags", []string{"a", " "})), ErrInvalid, "tags[1]"},
		{"long tag", second(normaliseTags("tags", []string{strings.Repeat("x", MaxTagChars+1)})), ErrTooLarge, "tags[0]"},
		{"metadata too large", second(checkMetadata("metadata", map[string]any{"k": strings.Repeat("x", MaxMetadataBytes)})), ErrTooLarge, "metadata"},
		{"metadata empty key", second(checkMetadata("metadata", map[string]any{"": 1})), ErrInvalid, "metadata"},
		{"metadata filter object", checkMetadataFilter("metadata", map[string]any{"k": map[string]any{}}), ErrInvalid, "metadata.k"},
		{"metadata filter null", checkMetadataFilter("metadata", map[string]any{"k": nil}), ErrInvalid, "metadata.k"},
		{"bad uuid", second(ParseID("memory_id", "nope")), ErrInvalid, "memory_id"},
		{"nil uuid", second(ParseID("memory_id", uuid.Nil.String())), ErrInvalid, "memory_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.kind) {
				t.Fatalf("error %v is not %v", tt.err, tt.kind)
			}
			var ae *ArgumentError
			if !errors.As(tt.err, &ae) || ae.Arg != tt.arg {
				t.Fatalf("error %v does not name %q", tt.err, tt.arg)
			}
		})
	}

	ok := []error{
		checkText("text", strings.Repeat("é", MaxTextChars)),
		second(normaliseTags("tags", []string{strings.Repeat("x", MaxTagChars)})),
		checkMetadataFilter("metadata", map[string]any{"a": "x", "b": 1.5, "c": true}),
	}
	for i, err := range ok {
		if err != nil {
			t.Errorf("case %d: unexpected error %v", i, err)
		}
	}
	tags, _ := normaliseTags("tags", []string{" a ", "b", "a"})
	if strings.Join(tags, ",") != "a,b" {
		t.Errorf("normaliseTags = %q, want trimmed and unique in order", tags)
	}
}

func second[T any](_ T, err error) error { return err }

func TestCursorRoundTrip(t *testing.T) {
	c := &Cursor{Sort: SortUpdated, Order: Asc, At: time.Date(2026, 1, 2, 3, 4, 5, 678000, time.UTC), ID: uuid.New()}
	got, err := DecodeCursor("cursor", c.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if *got != *c {
		t.Fatalf("round trip = %+v, want %+v", got, c)
	}
	if got, err := DecodeCursor("cursor", ""); got != nil || err != nil {
		t.Fatalf("empty cursor = %v, %v", got, err)
	}
	for _, bad := range []string{"x", "eyJzIjoiY3JlYXRlZF9hdCJ9", strings.Repeat("A", 300), "e30"} {
		if _, err := DecodeCursor("cursor", bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("DecodeCursor(%q) error = %v, want ErrInvalid", bad, err)
		}
	}
}

func FuzzDecodeCursor(f *testing.F) {
	f.Add((&Cursor{Sort: SortCreated, Order: Desc, At: time.Unix(1, 0), ID: uuid.New()}).Encode())
	f.Add("")
	f.Add("!!")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := DecodeCursor("cursor", s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		if c == nil {
			if s != "" {
				t.Fatalf("nil cursor for %q", s)
			}
			return
		}
		again, err := DecodeCursor("cursor", c.Encode())
		if err != nil || *again != *c {
			t.Fatalf("re-encoding %q: %v, %v", s, again, err)
		}
	})
}

func TestArgumentErrorPrefix(t *testing.T) {
	err := prefixArg("memories[3]", Invalidf("tags[0]", "must not be empty"))
	if err.Error() != "memories[3].tags[0]: must not be empty" || !errors.Is(err, ErrInvalid) {
		t.Fatalf("prefixArg = %v", err)
	}
}
