// Package archive is Picard's portable, full-fidelity format for accounts
// and memories: what `mcpserver export` writes and `mcpserver import`
// reads, and what the account page offers as a download. Memories keep
// their ids, permissions, tags, metadata, expiry and timestamps; owners and
// shares are named by email, so an archive can be restored into another
// server whose accounts have other ids.
//
// An archive is one JSON document:
//
//	{"format": "picard-archive", "version": 1, "kind": "user" | "all",
//	 "exported_at": "RFC 3339",
//	 "users": [{"id", "email", "name", "admin", "disabled", "created_at",
//	            "last_seen_at", "password_hash" (kind "all" only)}],
//	 "memories": [{"id", "owner" (email), "text", "permission",
//	               "shared_with" (emails), "tags", "metadata",
//	               "expiration_date", "created_at", "updated_at"}]}
//
// Memory text is plaintext in an archive, and an archive of kind "all"
// holds password hashes: both are as sensitive as the database and its
// encryption keys together (docs/security.md).
package archive

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"

	"picard.dev/mcpserver/internal/memory"
	"picard.dev/mcpserver/internal/user"
)

// Format and Version identify the archive format.
const (
	Format  = "picard-archive"
	Version = 1
)

// Kinds of archive.
const (
	// KindUser is one account's memories, without its password hash: the
	// account must exist where it is imported.
	KindUser = "user"
	// KindAll is an administrator's backup: every account with its password
	// hash and flags, and every memory. Importing it restores accounts that
	// do not exist yet.
	KindAll = "all"
)

// MaxBytes bounds the archive Read accepts, since it is read whole before
// anything is written.
const MaxBytes = 4 << 30

// Archive is a decoded archive.
type Archive struct {
	Format     string    `json:"format"`
	Version    int       `json:"version"`
	Kind       string    `json:"kind"`
	ExportedAt time.Time `json:"exported_at"`
	Users      []User    `json:"users"`
	Memories   []Memory  `json:"memories"`
}

// User is an account in an archive.
type User struct {
	ID           uuid.UUID  `json:"id"`
	Email        string     `json:"email"`
	Name         string     `json:"name"`
	Admin        bool       `json:"admin"`
	Disabled     bool       `json:"disabled"`
	CreatedAt    time.Time  `json:"created_at"`
	LastSeenAt   *time.Time `json:"last_seen_at"`
	PasswordHash string     `json:"password_hash,omitempty"`
}

// Memory is a memory in an archive.
type Memory struct {
	ID             uuid.UUID      `json:"id"`
	Owner          string         `json:"owner"`
	Text           string         `json:"text"`
	Permission     string         `json:"permission"`
	SharedWith     []string       `json:"shared_with"`
	Tags           []string       `json:"tags"`
	Metadata       map[string]any `json:"metadata"`
	ExpirationDate *time.Time     `json:"expiration_date"`
	CreatedAt      time.Time      `json:"created_at"`
	UpdatedAt      time.Time      `json:"updated_at"`
}

// Error says which record of an archive is wrong.
type Error struct {
	Record string // e.g. "memories[12] (id 0b5e…)", or "archive"
	Err    error
}

func (e *Error) Error() string { return "archive: " + e.Record + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

func userRecord(i int, u *User) string {
	if u.Email != "" {
		return fmt.Sprintf("users[%d] (%s)", i, u.Email)
	}
	return fmt.Sprintf("users[%d]", i)
}

func memoryRecord(i int, m *Memory) string {
	if m.ID != uuid.Nil {
		return fmt.Sprintf("memories[%d] (id %s)", i, m.ID)
	}
	return fmt.Sprintf("memories[%d]", i)
}

// Read decodes and validates a whole archive: a wrong format, an unknown
// field, a record breaking a limit of the contract, a memory whose owner is
// not among the archive's users, or a duplicate id or email is an *Error
// naming the record. It does not look at any database.
func Read(r io.Reader) (*Archive, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxBytes+1))
	if err != nil {
		return nil, &Error{"archive", err}
	}
	if len(data) > MaxBytes {
		return nil, &Error{"archive", fmt.Errorf("is larger than %d bytes", int64(MaxBytes))}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var a Archive
	if err := dec.Decode(&a); err != nil {
		return nil, &Error{"archive", fmt.Errorf("not a Picard archive: %w", err)}
	}
	if dec.More() {
		return nil, &Error{"archive", errors.New("trailing data after the archive")}
	}
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return &a, nil
}

// Validate checks the archive as Read does, and normalises its records
// (trimmed emails, tags and names, UTC times).
func (a *Archive) Validate() error {
	if a.Format != Format {
		return &Error{"archive", fmt.Errorf("format is %q, want %q", a.Format, Format)}
	}
	if a.Version != Version {
		return &Error{"archive", fmt.Errorf("version %d is not supported (this binary reads version %d)", a.Version, Version)}
	}
	if a.Kind != KindUser && a.Kind != KindAll {
		return &Error{"archive", fmt.Errorf("kind is %q, want %q or %q", a.Kind, KindUser, KindAll)}
	}
	ids := map[uuid.UUID]bool{}
	emails := map[string]uuid.UUID{}
	for i := range a.Users {
		u := &a.Users[i]
		du := u.domain()
		if err := user.CheckRestored("user", du); err != nil {
			return &Error{userRecord(i, u), err}
		}
		if a.Kind == KindUser && u.PasswordHash != "" {
			return &Error{userRecord(i, u), errors.New("an archive of kind user carries no password hash")}
		}
		if ids[du.ID] {
			return &Error{userRecord(i, u), fmt.Errorf("id %s appears twice", du.ID)}
		}
		key := strings.ToLower(du.Email)
		if _, dup := emails[key]; dup {
			return &Error{userRecord(i, u), fmt.Errorf("email %s appears twice", du.Email)}
		}
		ids[du.ID], emails[key] = true, du.ID
		u.Email, u.Name, u.CreatedAt, u.LastSeenAt = du.Email, du.Name, du.CreatedAt, du.LastSeenAt
	}
	if a.Kind == KindUser && len(a.Users) != 1 {
		return &Error{"archive", fmt.Errorf("an archive of kind user names exactly one account (it names %d)", len(a.Users))}
	}
	seen := map[uuid.UUID]bool{}
	for i := range a.Memories {
		m := &a.Memories[i]
		rec := memoryRecord(i, m)
		owner, ok := emails[strings.ToLower(strings.TrimSpace(m.Owner))]
		if !ok {
			return &Error{rec, fmt.Errorf("owner %q is not among the archive's users", m.Owner)}
		}
		for j, e := range m.SharedWith {
			if _, err := user.NormaliseEmail(e); err != nil {
				return &Error{rec, fmt.Errorf("shared_with[%d]: %q is not an email address", j, e)}
			}
			m.SharedWith[j] = strings.TrimSpace(e)
		}
		// Shares are checked by email here and resolved on import; a
		// placeholder id per distinct email lets the domain check the rest.
		dm := m.domain(owner, placeholderIDs(m.SharedWith))
		if err := memory.CheckRestored("memory", dm); err != nil {
			return &Error{rec, err}
		}
		if seen[dm.ID] {
			return &Error{rec, errors.New("the id appears twice")}
		}
		seen[dm.ID] = true
		m.Owner = strings.TrimSpace(m.Owner)
		m.Tags, m.Metadata, m.ExpirationDate, m.CreatedAt, m.UpdatedAt = dm.Tags, dm.Metadata, dm.ExpiresAt, dm.CreatedAt, dm.UpdatedAt
	}
	return nil
}

// placeholderIDs gives each distinct email (case-insensitively) its own id.
func placeholderIDs(emails []string) []uuid.UUID {
	out := make([]uuid.UUID, len(emails))
	for i, e := range emails {
		out[i] = uuid.NewSHA1(uuid.NameSpaceURL, []byte("mailto:"+strings.ToLower(e)))
	}
	return out
}

// domain returns the account as the user package knows it.
func (u *User) domain() *user.User {
	return &user.User{
		ID: u.ID, Email: u.Email, Name: u.Name, PasswordHash: u.PasswordHash,
		Admin: u.Admin, Disabled: u.Disabled, CreatedAt: u.CreatedAt, LastSeenAt: u.LastSeenAt,
	}
}

// domain returns the memory as the memory package knows it, owned by owner
// and shared with the given ids.
func (m *Memory) domain(owner uuid.UUID, shared []uuid.UUID) *memory.Memory {
	return &memory.Memory{
		ID: m.ID, OwnerID: owner, Text: m.Text, Permission: memory.Permission(m.Permission),
		SharedWith: shared, Tags: append([]string(nil), m.Tags...), Metadata: m.Metadata,
		ExpiresAt: m.ExpirationDate, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt, Version: 1,
	}
}

// Writer streams an archive: the header, then users, then memories, one
// record per line, so memory use does not grow with the archive.
type Writer struct {
	w     io.Writer
	buf   bytes.Buffer
	enc   *json.Encoder
	stage int // 0: in users, 1: in memories, 2: closed
	first bool
	err   error
}

// NewWriter writes the header of an archive of kind to w.
func NewWriter(w io.Writer, kind string, exportedAt time.Time) (*Writer, error) {
	aw := &Writer{w: w, first: true}
	aw.enc = json.NewEncoder(&aw.buf)
	aw.enc.SetEscapeHTML(false)
	head, err := json.Marshal(struct {
		Format     string    `json:"format"`
		Version    int       `json:"version"`
		Kind       string    `json:"kind"`
		ExportedAt time.Time `json:"exported_at"`
	}{Format, Version, kind, exportedAt.UTC()})
	if err != nil {
		return nil, err
	}
	aw.write(head[:len(head)-1], []byte(",\n\"users\":["))
	return aw, aw.err
}

func (aw *Writer) write(bs ...[]byte) {
	for _, b := range bs {
		if aw.err == nil {
			_, aw.err = aw.w.Write(b)
		}
	}
}

func (aw *Writer) record(v any) error {
	if aw.err != nil {
		return aw.err
	}
	aw.buf.Reset()
	if err := aw.enc.Encode(v); err != nil {
		return err
	}
	sep := []byte(",\n")
	if aw.first {
		sep, aw.first = []byte("\n"), false
	}
	aw.write(sep, bytes.TrimSuffix(aw.buf.Bytes(), []byte("\n")))
	return aw.err
}

// User writes an account; every account comes before the first memory.
func (aw *Writer) User(u User) error {
	if aw.stage != 0 {
		return errors.New("archive: users must be written before memories")
	}
	return aw.record(u)
}

// Memory writes a memory.
func (aw *Writer) Memory(m Memory) error {
	switch aw.stage {
	case 0:
		aw.write([]byte("\n],\n\"memories\":["))
		aw.stage, aw.first = 1, true
	case 2:
		return errors.New("archive: closed")
	}
	if m.SharedWith == nil {
		m.SharedWith = []string{}
	}
	if m.Tags == nil {
		m.Tags = []string{}
	}
	if m.Metadata == nil {
		m.Metadata = map[string]any{}
	}
	return aw.record(m)
}

// Close ends the document.
func (aw *Writer) Close() error {
	switch aw.stage {
	case 0:
		aw.write([]byte("\n],\n\"memories\":[\n]}\n"))
	case 1:
		aw.write([]byte("\n]}\n"))
	}
	aw.stage = 2
	return aw.err
}
