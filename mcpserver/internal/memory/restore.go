package memory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
)

// CheckRestored checks a memory read from a backup against the rules every
// stored memory follows (the same limits as a new memory), and normalises
// its tags and metadata as Create would. arg names the record in errors,
// e.g. "memories[12]".
func CheckRestored(arg string, m *Memory) error {
	switch {
	case m.ID == uuid.Nil:
		return Invalidf(arg+".id", "is required")
	case m.OwnerID == uuid.Nil:
		return Invalidf(arg+".owner", "is required")
	case m.CreatedAt.IsZero() || m.UpdatedAt.IsZero():
		return Invalidf(arg, "created_at and updated_at are required")
	}
	if err := checkText(arg+".text", m.Text); err != nil {
		return err
	}
	if _, err := ParsePermission(string(m.Permission)); err != nil {
		return prefixArg(arg, err)
	}
	if m.Permission != Shared && len(m.SharedWith) > 0 {
		return Invalidf(arg+".shared_with", "is only allowed with permission shared (got %s)", m.Permission)
	}
	if len(m.SharedWith) > MaxSharedWith {
		return TooLargef(arg+".shared_with", "has %d users; the limit is %d", len(m.SharedWith), MaxSharedWith)
	}
	tags, err := normaliseTags(arg+".tags", m.Tags)
	if err != nil {
		return err
	}
	md, err := checkMetadata(arg+".metadata", m.Metadata)
	if err != nil {
		return err
	}
	shared := make([]uuid.UUID, 0, len(m.SharedWith))
	for _, id := range m.SharedWith {
		if id != m.OwnerID && !slices.Contains(shared, id) {
			shared = append(shared, id)
		}
	}
	slices.SortFunc(shared, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	m.Tags, m.Metadata, m.SharedWith = tags, md, shared
	m.ExpiresAt = utcPtr(m.ExpiresAt)
	m.CreatedAt, m.UpdatedAt = *utcPtr(&m.CreatedAt), *utcPtr(&m.UpdatedAt)
	if m.Version <= 0 {
		m.Version = 1
	}
	return nil
}

// Restore stores memories from a backup as they are: ids, owners, shares
// and timestamps kept. Each must have passed CheckRestored. A memory whose id
// is already stored with the same owner is skipped, so an interrupted
// restore can simply be run again; one stored with another owner is an
// ErrConflict naming it. The rest are written in one transaction, with
// vectors when the embedder answers (pending otherwise, like any write). It
// returns how many memories it wrote.
func (s *Service) Restore(ctx context.Context, ms []*Memory) (int, error) {
	fresh := make([]*Memory, 0, len(ms))
	for _, m := range ms {
		old, err := s.store.Get(ctx, m.ID)
		switch {
		case errors.Is(err, ErrNotFound):
			fresh = append(fresh, m)
		case err != nil:
			return 0, err
		case old.OwnerID != m.OwnerID:
			return 0, fmt.Errorf("memory %s already exists with another owner: %w", m.ID, ErrConflict)
		}
	}
	if len(fresh) == 0 {
		return 0, nil
	}
	texts := make([]string, len(fresh))
	for i, m := range fresh {
		texts[i] = m.Text
	}
	vecs, err := s.embedForWrite(ctx, texts)
	if err != nil {
		return 0, err
	}
	if err := s.store.Insert(ctx, fresh, vecs); err != nil {
		return 0, fmt.Errorf("store memories: %w", err)
	}
	return len(fresh), nil
}

// StoredOwners returns the owner of each of ids that is stored, regardless
// of visibility: a restore plans with it which memories it will write,
// skip, or refuse, before writing anything.
func (s *Service) StoredOwners(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]uuid.UUID, error) {
	out := make(map[uuid.UUID]uuid.UUID, len(ids))
	for _, id := range ids {
		m, err := s.store.Get(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return nil, err
		default:
			out[id] = m.OwnerID
		}
	}
	return out, nil
}
