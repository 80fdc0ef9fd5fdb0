package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/google/uuid"

	"picard.dev/mcpserver/internal/memory"
	"picard.dev/mcpserver/internal/user"
)

// Importer restores archives.
type Importer struct {
	Accounts Accounts
	Memories Memories
	// SkipUnknownShares drops a share naming an email that no account has
	// (here or in the archive) instead of refusing the archive.
	SkipUnknownShares bool
	// Batch is the number of memories written per transaction; 0 means 500.
	Batch  int
	Logger *slog.Logger // nil discards
}

// ImportStats says what an import did.
type ImportStats struct {
	AccountsCreated  int // restored from the archive
	AccountsExisting int // already here, matched by email; left as they are
	MemoriesWritten  int
	MemoriesSkipped  int // already here with the same id and owner
	SharesDropped    int // only with SkipUnknownShares
}

// ErrAccountMissing means an archive of kind user names an account this
// server does not have.
var ErrAccountMissing = errors.New("no such account here")

// Import restores a validated archive (from Read). It first plans the whole
// import without writing — matching accounts by email, resolving shares,
// checking memory ids — so a wrong archive (an *Error naming the record)
// writes nothing. Then it creates the missing accounts and writes the
// memories in batches, skipping those already present: an interrupted
// import is completed by running it again, and running it twice writes
// nothing twice. Accounts that exist are not changed.
func (im Importer) Import(ctx context.Context, a *Archive, progress Progress) (ImportStats, error) {
	var st ImportStats
	log := im.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Accounts: the archive's email → the id it has (or will have) here.
	ids := map[string]uuid.UUID{}
	var create []*user.User
	for i := range a.Users {
		au := &a.Users[i]
		rec := userRecord(i, au)
		existing, err := im.Accounts.ByEmail(ctx, au.Email)
		switch {
		case err == nil:
			ids[strings.ToLower(au.Email)] = existing.ID
			st.AccountsExisting++
			if existing.ID != au.ID {
				log.Info("account exists here with another id; its memories are imported into it", "email", au.Email, "archive_id", au.ID, "id", existing.ID)
			}
			continue
		case !errors.Is(err, user.ErrNotFound):
			return st, err
		}
		if a.Kind == KindUser {
			return st, &Error{rec, fmt.Errorf("%w: create the account first (mcpserver users create --email %s), then import again", ErrAccountMissing, au.Email)}
		}
		if other, err := im.Accounts.Get(ctx, au.ID); err == nil {
			return st, &Error{rec, fmt.Errorf("id %s belongs to another account here (%s)", au.ID, other.Email)}
		} else if !errors.Is(err, user.ErrNotFound) {
			return st, err
		}
		ids[strings.ToLower(au.Email)] = au.ID
		create = append(create, au.domain())
	}

	// Memories: owner and shares resolved, ids checked.
	known := map[string]uuid.UUID{} // emails looked up here, beyond the archive's
	resolve := func(email string) (uuid.UUID, bool, error) {
		key := strings.ToLower(email)
		if id, ok := ids[key]; ok {
			return id, true, nil
		}
		if id, ok := known[key]; ok {
			return id, id != uuid.Nil, nil
		}
		u, err := im.Accounts.ByEmail(ctx, email)
		if errors.Is(err, user.ErrNotFound) {
			known[key] = uuid.Nil
			return uuid.Nil, false, nil
		}
		if err != nil {
			return uuid.Nil, false, err
		}
		known[key] = u.ID
		return u.ID, true, nil
	}
	ms := make([]*memory.Memory, len(a.Memories))
	memIDs := make([]uuid.UUID, len(a.Memories))
	for i := range a.Memories {
		am := &a.Memories[i]
		rec := memoryRecord(i, am)
		owner := ids[strings.ToLower(am.Owner)]
		shared := make([]uuid.UUID, 0, len(am.SharedWith))
		for j, e := range am.SharedWith {
			id, ok, err := resolve(e)
			switch {
			case err != nil:
				return st, err
			case ok:
				shared = append(shared, id)
			case im.SkipUnknownShares:
				st.SharesDropped++
				log.Warn("share dropped: no account has this email", "memory", am.ID, "email", e)
			default:
				return st, &Error{rec, fmt.Errorf("shared_with[%d]: no account %s here or in the archive (import with --skip-unknown-shares to drop such shares)", j, e)}
			}
		}
		m := am.domain(owner, shared)
		if err := memory.CheckRestored("memory", m); err != nil {
			return st, &Error{rec, err}
		}
		ms[i], memIDs[i] = m, m.ID
	}
	stored, err := im.Memories.StoredOwners(ctx, memIDs)
	if err != nil {
		return st, err
	}
	todo := ms[:0:0]
	for i, m := range ms {
		owner, ok := stored[m.ID]
		switch {
		case !ok:
			todo = append(todo, m)
		case owner == m.OwnerID:
			st.MemoriesSkipped++
		default:
			return st, &Error{memoryRecord(i, &a.Memories[i]), fmt.Errorf("a memory with this id exists here with another owner: %w", memory.ErrConflict)}
		}
	}

	// Nothing was written so far; now write.
	for _, u := range create {
		if err := im.Accounts.Restore(ctx, u); err != nil {
			return st, fmt.Errorf("restore account %s: %w", u.Email, err)
		}
		st.AccountsCreated++
	}
	batch := im.Batch
	if batch <= 0 {
		batch = 500
	}
	total := len(ms)
	done := st.MemoriesSkipped
	if progress != nil && total > 0 {
		progress(done, total)
	}
	for start := 0; start < len(todo); start += batch {
		chunk := todo[start:min(start+batch, len(todo))]
		n, err := im.Memories.Restore(ctx, chunk)
		if err != nil {
			return st, fmt.Errorf("restore memories (%d written so far; safe to run again): %w", st.MemoriesWritten, err)
		}
		st.MemoriesWritten += n
		st.MemoriesSkipped += len(chunk) - n
		done += len(chunk)
		if progress != nil {
			progress(done, total)
		}
	}
	return st, nil
}
