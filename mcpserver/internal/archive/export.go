package archive

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"

	"picard.dev/mcpserver/internal/memory"
	"picard.dev/mcpserver/internal/user"
)

// Accounts is what export and import need of accounts; *user.Service
// implements it.
type Accounts interface {
	Get(ctx context.Context, id uuid.UUID) (*user.User, error)
	ByEmail(ctx context.Context, email string) (*user.User, error)
	List(ctx context.Context, after uuid.UUID, limit int) ([]*user.User, error)
	Restore(ctx context.Context, u *user.User) error
}

// Memories is what export and import need of memories; *memory.Service
// implements it.
type Memories interface {
	List(ctx context.Context, q memory.ListQuery) (memory.Page, error)
	Stats(ctx context.Context) (memory.Stats, error)
	StoredOwners(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]uuid.UUID, error)
	Restore(ctx context.Context, ms []*memory.Memory) (int, error)
}

// Progress is told how many memories are done out of total.
type Progress func(done, total int)

// Exporter writes archives.
type Exporter struct {
	Accounts Accounts
	Memories Memories
	Now      func() time.Time // nil: time.Now
}

func (x Exporter) now() time.Time {
	if x.Now != nil {
		return x.Now()
	}
	return time.Now()
}

// ExportMemories writes an archive of kind user for one account: the
// account (without its password hash) and all its memories, expired ones
// included. The account page offers it as a download.
func (x Exporter) ExportMemories(ctx context.Context, userID uuid.UUID, w io.Writer) error {
	return x.ExportUser(ctx, userID, w, nil)
}

// ExportUser is ExportMemories with progress; progress may be nil.
func (x Exporter) ExportUser(ctx context.Context, userID uuid.UUID, w io.Writer, progress Progress) error {
	u, err := x.Accounts.Get(ctx, userID)
	if err != nil {
		return fmt.Errorf("export: account %s: %w", userID, err)
	}
	total := 0
	if progress != nil {
		if total, err = x.count(ctx, u.ID); err != nil {
			return err
		}
	}
	aw, err := NewWriter(w, KindUser, x.now())
	if err != nil {
		return err
	}
	rec := fromUser(u)
	rec.PasswordHash = ""
	if err := aw.User(rec); err != nil {
		return err
	}
	emails := map[uuid.UUID]string{}
	done := 0
	if err := x.memoriesOf(ctx, aw, u, emails, &done, total, progress); err != nil {
		return err
	}
	return aw.Close()
}

// ExportAll writes an archive of kind all: every account with its password
// hash, then every memory, owner by owner. progress may be nil.
func (x Exporter) ExportAll(ctx context.Context, w io.Writer, progress Progress) error {
	st, err := x.Memories.Stats(ctx)
	if err != nil {
		return err
	}
	aw, err := NewWriter(w, KindAll, x.now())
	if err != nil {
		return err
	}
	emails := map[uuid.UUID]string{}
	var users []*user.User
	for after := uuid.Nil; ; {
		page, err := x.Accounts.List(ctx, after, 500)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		for _, u := range page {
			if err := aw.User(fromUser(u)); err != nil {
				return err
			}
			emails[u.ID] = u.Email
			users = append(users, u)
		}
		after = page[len(page)-1].ID
	}
	done := 0
	for _, u := range users {
		if err := x.memoriesOf(ctx, aw, u, emails, &done, st.Memories, progress); err != nil {
			return err
		}
	}
	return aw.Close()
}

// count counts an account's memories, for progress.
func (x Exporter) count(ctx context.Context, owner uuid.UUID) (int, error) {
	n := 0
	err := x.each(ctx, owner, func(ms []*memory.Memory) error { n += len(ms); return nil })
	return n, err
}

// each hands the memories of owner (expired ones too) to fn a page at a
// time, oldest first.
func (x Exporter) each(ctx context.Context, owner uuid.UUID, fn func([]*memory.Memory) error) error {
	q := memory.ListQuery{Viewer: owner, Owner: owner, IncludeExpired: true, Sort: memory.SortCreated, Order: memory.Asc, Limit: memory.MaxListLimit}
	for {
		page, err := x.Memories.List(ctx, q)
		if err != nil {
			return err
		}
		if err := fn(page.Memories); err != nil {
			return err
		}
		if page.Next == nil {
			return nil
		}
		q.After = page.Next
	}
}

func (x Exporter) memoriesOf(ctx context.Context, aw *Writer, u *user.User, emails map[uuid.UUID]string, done *int, total int, progress Progress) error {
	return x.each(ctx, u.ID, func(ms []*memory.Memory) error {
		for _, m := range ms {
			rec := Memory{
				ID: m.ID, Owner: u.Email, Text: m.Text, Permission: string(m.Permission),
				SharedWith: make([]string, 0, len(m.SharedWith)), Tags: m.Tags, Metadata: m.Metadata,
				ExpirationDate: m.ExpiresAt, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
			}
			for _, id := range m.SharedWith {
				e, ok := emails[id]
				if !ok {
					su, err := x.Accounts.Get(ctx, id)
					if err != nil {
						return fmt.Errorf("export: memory %s is shared with %s: %w", m.ID, id, err)
					}
					e, emails[id] = su.Email, su.Email
				}
				rec.SharedWith = append(rec.SharedWith, e)
			}
			if err := aw.Memory(rec); err != nil {
				return err
			}
			*done++
		}
		if progress != nil {
			progress(*done, max(total, *done))
		}
		return nil
	})
}

func fromUser(u *user.User) User {
	return User{
		ID: u.ID, Email: u.Email, Name: u.Name, Admin: u.Admin, Disabled: u.Disabled,
		CreatedAt: u.CreatedAt, LastSeenAt: u.LastSeenAt, PasswordHash: u.PasswordHash,
	}
}
