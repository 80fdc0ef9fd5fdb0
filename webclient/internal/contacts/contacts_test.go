package contacts_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"picard.dev/webclient/internal/contacts"
	"picard.dev/webclient/internal/store"
)

func TestLearnOnlyWhatIsCertain(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, "", filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.Gorm.Exec(`INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES ('u1', 'alice@example.com', 'h', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`).Error; err != nil {
		t.Fatal(err)
	}
	book := contacts.New(db.Gorm)
	bob, carol, dave, erin, frank, gina := uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()
	steps := []struct {
		typed, resolved []string
	}{
		{[]string{" bob@example.com "}, []string{bob}},
		// Bob is known, so Carol is the one new id, whatever the order.
		{[]string{"carol@example.com", "BOB@example.com"}, []string{carol, bob}},
		// Two new emails and two new ids: the order says nothing.
		{[]string{"dave@example.com", "erin@example.com"}, []string{dave, erin}},
		// An id typed as such accounts for itself.
		{[]string{frank, "gina@example.com"}, []string{gina, frank}},
		{nil, nil},
	}
	for _, s := range steps {
		if err := book.Learn(ctx, "u1", s.typed, s.resolved); err != nil {
			t.Fatal(err)
		}
	}
	got, err := book.Emails(ctx, "u1", []string{bob, carol, dave, erin, frank, gina})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{bob: "bob@example.com", carol: "carol@example.com", gina: "gina@example.com"}
	if len(got) != len(want) {
		t.Fatalf("Emails = %v, want %v", got, want)
	}
	for id, e := range want {
		if got[id] != e {
			t.Errorf("Emails[%s] = %q, want %q", id, got[id], e)
		}
	}
	// The book is per user.
	if other, err := book.Emails(ctx, "u2", []string{bob}); err != nil || len(other) != 0 {
		t.Fatalf("another user's book: %v %v", other, err)
	}
}
