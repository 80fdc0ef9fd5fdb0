package memory

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Store keeps memories. Implementations seal text before it reaches their
// database, apply ListQuery and SearchQuery in full (visibility included),
// and make every multi-row change one transaction.
type Store interface {
	// Insert stores all memories with their vectors (vecs[i] belongs to
	// ms[i]; a zero Vector means "not embedded yet"), or none of them.
	Insert(ctx context.Context, ms []*Memory, vecs []Vector) error
	// Get returns a memory by id regardless of visibility, or ErrNotFound.
	Get(ctx context.Context, id uuid.UUID) (*Memory, error)
	// Update writes m if its stored Version still equals m.Version, then
	// increments m.Version; otherwise it returns ErrConflict. A nil vec keeps
	// the stored vector.
	Update(ctx context.Context, m *Memory, vec *Vector) error
	// Delete removes the memories with these ids owned by owner: all of them,
	// or none and ErrNotFound when any is missing or owned by someone else.
	Delete(ctx context.Context, owner uuid.UUID, ids []uuid.UUID) (int, error)
	// List returns one page of the memories matching q.
	List(ctx context.Context, q ListQuery) (Page, error)
	// Search returns up to q.Limit memories, best first, ranked by q.Mode:
	// cosine similarity to q.Vector, BM25 of q.Text, or their fusion (see
	// Fuse); in hybrid mode a memory without a vector is still found by
	// its text.
	Search(ctx context.Context, q SearchQuery) ([]Scored, error)
	// Personas lists users with at least one unexpired public memory, by
	// user id, starting after the given id.
	Personas(ctx context.Context, after uuid.UUID, limit int, now time.Time) ([]Persona, error)
	// Stats counts memories for administrators.
	Stats(ctx context.Context, now time.Time) (Stats, error)
}

// Embedder turns texts into unit-length vectors.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
	// Name identifies the model and dimension; vectors of different names
	// are never compared.
	Name() string
}

// UserDirectory resolves the users a memory is shared with.
type UserDirectory interface {
	// ResolveUsers maps each reference (a user id or an email) to a user id,
	// in order; an unknown reference is an ErrInvalid naming it.
	ResolveUsers(ctx context.Context, arg string, refs []string) ([]uuid.UUID, error)
}

// Service applies the rules of the domain on top of a Store.
type Service struct {
	store    Store
	embedder Embedder
	users    UserDirectory
	now      func() time.Time
	// pending is signalled (without blocking) when a write stored a memory
	// without its vector; see Pending.
	pending chan struct{}
}

// NewService returns a Service. now may be nil (time.Now).
func NewService(store Store, embedder Embedder, users UserDirectory, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, embedder: embedder, users: users, now: now, pending: make(chan struct{}, 1)}
}

// Now is the service's clock, truncated to microseconds: both databases
// store that precision, so memories compare equal before and after storage.
func (s *Service) Now() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// Draft is a memory to create, as a caller describes it.
type Draft struct {
	Text       string
	Permission string // empty: private, or shared when SharedWith is given
	Tags       []string
	Metadata   map[string]any
	ExpiresAt  *time.Time
	SharedWith []string // user ids or emails
}

// Create stores one memory owned by viewer.
func (s *Service) Create(ctx context.Context, viewer uuid.UUID, d Draft) (*Memory, error) {
	ms, err := s.create(ctx, viewer, []Draft{d}, func(_ int) string { return "" })
	if err != nil {
		return nil, err
	}
	return ms[0], nil
}

// CreateBatch stores up to MaxBatch memories owned by viewer, all or none,
// and returns them in input order.
func (s *Service) CreateBatch(ctx context.Context, viewer uuid.UUID, ds []Draft) ([]*Memory, error) {
	switch {
	case len(ds) == 0:
		return nil, Invalidf("memories", "must hold at least one memory")
	case len(ds) > MaxBatch:
		return nil, TooLargef("memories", "has %d memories; the limit is %d", len(ds), MaxBatch)
	}
	return s.create(ctx, viewer, ds, func(i int) string { return fmt.Sprintf("memories[%d]", i) })
}

func (s *Service) create(ctx context.Context, viewer uuid.UUID, ds []Draft, prefix func(int) string) ([]*Memory, error) {
	now := s.Now()
	ms := make([]*Memory, len(ds))
	texts := make([]string, len(ds))
	for i, d := range ds {
		m, err := s.fromDraft(ctx, viewer, d, now)
		if err != nil {
			if p := prefix(i); p != "" {
				return nil, prefixArg(p, err)
			}
			return nil, err
		}
		ms[i], texts[i] = m, m.Text
	}
	vecs, err := s.embedForWrite(ctx, texts)
	if err != nil {
		return nil, err
	}
	if err := s.store.Insert(ctx, ms, vecs); err != nil {
		return nil, fmt.Errorf("store memories: %w", err)
	}
	return ms, nil
}

func (s *Service) fromDraft(ctx context.Context, viewer uuid.UUID, d Draft, now time.Time) (*Memory, error) {
	if err := checkText("text", d.Text); err != nil {
		return nil, err
	}
	perm := Private
	if d.Permission != "" {
		p, err := ParsePermission(d.Permission)
		if err != nil {
			return nil, err
		}
		perm = p
	} else if len(d.SharedWith) > 0 {
		perm = Shared
	}
	tags, err := normaliseTags("tags", d.Tags)
	if err != nil {
		return nil, err
	}
	md, err := checkMetadata("metadata", d.Metadata)
	if err != nil {
		return nil, err
	}
	shared, err := s.resolveShares(ctx, viewer, perm, d.SharedWith)
	if err != nil {
		return nil, err
	}
	return &Memory{
		ID:         uuid.New(),
		OwnerID:    viewer,
		Text:       d.Text,
		Permission: perm,
		SharedWith: shared,
		Tags:       tags,
		Metadata:   md,
		ExpiresAt:  utcPtr(d.ExpiresAt),
		CreatedAt:  now,
		UpdatedAt:  now,
		Version:    1,
	}, nil
}

// resolveShares turns references into a sorted set of user ids without the
// owner, and refuses shares on a memory that is not shared.
func (s *Service) resolveShares(ctx context.Context, owner uuid.UUID, perm Permission, refs []string) ([]uuid.UUID, error) {
	if len(refs) == 0 {
		return []uuid.UUID{}, nil
	}
	if perm != Shared {
		return nil, Invalidf("shared_with", "is only allowed with permission shared (got %s)", perm)
	}
	if len(refs) > MaxSharedWith {
		return nil, TooLargef("shared_with", "has %d users; the limit is %d", len(refs), MaxSharedWith)
	}
	ids, err := s.users.ResolveUsers(ctx, "shared_with", refs)
	if err != nil {
		return nil, err
	}
	out := make([]uuid.UUID, 0, len(ids))
	for _, id := range ids {
		if id != owner && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	slices.SortFunc(out, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	return out, nil
}

func (s *Service) embed(ctx context.Context, texts []string) ([]Vector, error) {
	vals, err := s.embedder.Embed(ctx, texts)
	if err != nil {
		return nil, fmt.Errorf("%w: embedding provider: %w", ErrUnavailable, err)
	}
	if len(vals) != len(texts) {
		return nil, fmt.Errorf("%w: embedding provider returned %d vectors for %d texts", ErrUnavailable, len(vals), len(texts))
	}
	vecs := make([]Vector, len(vals))
	for i, v := range vals {
		vecs[i] = Vector{Embedder: s.embedder.Name(), Values: v}
	}
	return vecs, nil
}

// Get returns a memory the viewer may see, or ErrNotFound.
func (s *Service) Get(ctx context.Context, viewer, id uuid.UUID, includeExpired bool) (*Memory, error) {
	m, err := s.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if !Visible(m, viewer, s.Now(), includeExpired) {
		return nil, ErrNotFound
	}
	return m, nil
}

// owned returns a memory for a change by viewer: ErrNotFound when the viewer
// cannot see it (expired ones included, since the owner may still edit them),
// ErrForbidden when they can see but do not own it.
func (s *Service) owned(ctx context.Context, viewer, id uuid.UUID) (*Memory, error) {
	m, err := s.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if m.OwnerID != viewer {
		if Visible(m, viewer, s.Now(), false) {
			return nil, fmt.Errorf("only the owner may change memory %s: %w", id, ErrForbidden)
		}
		return nil, ErrNotFound
	}
	return m, nil
}

// Patch is a partial update: nil fields stay as they are.
type Patch struct {
	Text      *string
	Tags      *[]string
	Metadata  *map[string]any
	ExpiresAt **time.Time // non-nil pointer to nil clears the expiration
}

// Update applies a patch to a memory the viewer owns.
func (s *Service) Update(ctx context.Context, viewer, id uuid.UUID, p Patch) (*Memory, error) {
	if p.Text != nil {
		if err := checkText("text", *p.Text); err != nil {
			return nil, err
		}
	}
	var tags []string
	if p.Tags != nil {
		t, err := normaliseTags("tags", *p.Tags)
		if err != nil {
			return nil, err
		}
		tags = t
	}
	var md map[string]any
	if p.Metadata != nil {
		m, err := checkMetadata("metadata", *p.Metadata)
		if err != nil {
			return nil, err
		}
		md = m
	}
	var vec *Vector
	if p.Text != nil {
		// A zero vector (the embedder failed) removes the stale one: the
		// memory is pending until the embedding worker fills it in.
		vecs, err := s.embedForWrite(ctx, []string{*p.Text})
		if err != nil {
			return nil, err
		}
		vec = &vecs[0]
	}
	return s.change(ctx, viewer, id, func(m *Memory) {
		if p.Text != nil {
			m.Text = *p.Text
		}
		if p.Tags != nil {
			m.Tags = tags
		}
		if p.Metadata != nil {
			m.Metadata = md
		}
		if p.ExpiresAt != nil {
			m.ExpiresAt = utcPtr(*p.ExpiresAt)
		}
	}, vec)
}

// SetPermission changes who may see a memory the viewer owns.
func (s *Service) SetPermission(ctx context.Context, viewer, id uuid.UUID, permission string, sharedWith []string) (*Memory, error) {
	perm, err := ParsePermission(permission)
	if err != nil {
		return nil, err
	}
	shared, err := s.resolveShares(ctx, viewer, perm, sharedWith)
	if err != nil {
		return nil, err
	}
	return s.change(ctx, viewer, id, func(m *Memory) {
		m.Permission = perm
		m.SharedWith = shared
	}, nil)
}

// maxConflictRetries bounds how often a change is re-applied to a fresh
// read when a concurrent writer got there first.
const maxConflictRetries = 16

// conflictBackoff is how long a change waits before its next attempt: a
// random delay that grows with the attempt, so writers that collided do not
// collide again in lock step.
func conflictBackoff(attempt int) time.Duration {
	limit := time.Millisecond << min(attempt, 6)        // 1 ms … 64 ms
	return time.Duration(rand.Int64N(int64(limit)) + 1) // #nosec G404 -- jitter for retries, not a secret
}

// change reads, modifies and writes a memory with optimistic concurrency,
// re-reading on conflict, so concurrent patches of one memory all survive.
func (s *Service) change(ctx context.Context, viewer, id uuid.UUID, apply func(*Memory), vec *Vector) (*Memory, error) {
	for attempt := 0; ; attempt++ {
		m, err := s.owned(ctx, viewer, id)
		if err != nil {
			return nil, err
		}
		apply(m)
		m.UpdatedAt = s.Now()
		err = s.store.Update(ctx, m, vec)
		if err == nil {
			return m, nil
		}
		if !errors.Is(err, ErrConflict) || attempt == maxConflictRetries {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(conflictBackoff(attempt)):
		}
	}
}

// Delete removes memories the viewer owns, all or none.
func (s *Service) Delete(ctx context.Context, viewer uuid.UUID, ids []uuid.UUID) (int, error) {
	switch {
	case len(ids) == 0:
		return 0, Invalidf("memory_ids", "must hold at least one id")
	case len(ids) > MaxBatch:
		return 0, TooLargef("memory_ids", "has %d ids; the limit is %d", len(ids), MaxBatch)
	}
	uniq := slices.Clone(ids)
	slices.SortFunc(uniq, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
	uniq = slices.Compact(uniq)
	n, err := s.store.Delete(ctx, viewer, uniq)
	if errors.Is(err, ErrNotFound) {
		// Answer as Update does: a memory the viewer may see but does not
		// own is forbidden; one they cannot see stays not found.
		for _, id := range uniq {
			if _, oerr := s.owned(ctx, viewer, id); errors.Is(oerr, ErrForbidden) {
				return 0, oerr
			}
		}
	}
	return n, err
}

// List returns a page of memories. q.Viewer must be set; q.Owner defaults to
// the viewer. Limits and defaults are applied here.
func (s *Service) List(ctx context.Context, q ListQuery) (Page, error) {
	if q.Owner == uuid.Nil {
		q.Owner = q.Viewer
	}
	if q.Permission != "" {
		if _, err := ParsePermission(string(q.Permission)); err != nil {
			return Page{}, err
		}
	}
	tags, err := normaliseTags("tags", q.Tags)
	if err != nil {
		return Page{}, err
	}
	q.Tags = tags
	if err := checkMetadataFilter("metadata", q.Metadata); err != nil {
		return Page{}, err
	}
	if q.CreatedAfter != nil && q.CreatedBefore != nil && !q.CreatedAfter.Before(*q.CreatedBefore) {
		return Page{}, Invalidf("created_after", "must be before created_before")
	}
	switch q.Sort {
	case "":
		q.Sort = SortCreated
	case SortCreated, SortUpdated:
	default:
		return Page{}, Invalidf("sort", "unknown sort %q (want created_at or updated_at)", q.Sort)
	}
	switch q.Order {
	case "":
		q.Order = Desc
	case Asc, Desc:
	default:
		return Page{}, Invalidf("order", "unknown order %q (want asc or desc)", q.Order)
	}
	switch {
	case q.Limit == 0:
		q.Limit = DefaultListLimit
	case q.Limit < 0 || q.Limit > MaxListLimit:
		return Page{}, Invalidf("limit", "must be between 1 and %d", MaxListLimit)
	}
	if q.After != nil && (q.After.Sort != q.Sort || q.After.Order != q.Order) {
		return Page{}, Invalidf("cursor", "belongs to a listing with another sort or order")
	}
	if q.Owner != q.Viewer {
		q.IncludeExpired = false
	}
	q.Now = s.Now()
	return s.store.List(ctx, q)
}

// SearchRequest is a search by a viewer.
type SearchRequest struct {
	Viewer     uuid.UUID
	Query      string
	Mode       string    // hybrid (the default), vector or lexical; see SearchMode
	Owner      uuid.UUID // uuid.Nil: any owner
	Permission string
	Tags       []string
	Limit      int
}

// Search returns the memories the viewer may see that best match the
// query, best first, ranked as r.Mode says (see SearchMode for what the
// scores mean).
func (s *Service) Search(ctx context.Context, r SearchRequest) ([]Scored, error) {
	if strings.TrimSpace(r.Query) == "" {
		return nil, Invalidf("query", "must not be empty")
	}
	if utf8.RuneCountInString(r.Query) > MaxQueryChars {
		return nil, TooLargef("query", "is longer than %d characters", MaxQueryChars)
	}
	mode, err := ParseSearchMode(r.Mode)
	if err != nil {
		return nil, err
	}
	q := SearchQuery{Viewer: r.Viewer, Owner: r.Owner, Mode: mode, Text: r.Query, Limit: r.Limit, Now: s.Now(), Words: s.wordsEmbedder()}
	if r.Permission != "" {
		p, err := ParsePermission(r.Permission)
		if err != nil {
			return nil, err
		}
		q.Permission = p
	}
	tags, err := normaliseTags("tags", r.Tags)
	if err != nil {
		return nil, err
	}
	q.Tags = tags
	switch {
	case q.Limit == 0:
		q.Limit = DefaultSearch
	case q.Limit < 0 || q.Limit > MaxSearchLimit:
		return nil, Invalidf("limit", "must be between 1 and %d", MaxSearchLimit)
	}
	switch mode {
	case ModeVector:
		v, err := s.queryVector(ctx, r.Query)
		if err != nil {
			return nil, err
		}
		q.Vector = v
	case ModeHybrid:
		ectx, cancel := halfDeadline(ctx)
		v, err := s.queryVector(ectx, r.Query)
		cancel()
		switch {
		case err == nil:
			q.Vector = v
			q.VectorWeight = s.vectorWeight()
		case ctx.Err() == nil:
			// The embedding provider is down or slow: answer from the
			// lexical ranking alone rather than fail the search.
			q.Mode = ModeLexical
		default:
			return nil, err
		}
	}
	return s.store.Search(ctx, q)
}

// queryVector embeds a search query. An embedder that can weigh the
// query's words (embed.Hash, whose vectors are hashed words without corpus
// statistics) gets each word's idf over the searched memories from a store
// that counts them (the blind index), so rare words count for more, as in
// BM25; any other embedder embeds the query as it embeds memories.
func (s *Service) queryVector(ctx context.Context, text string) (Vector, error) {
	type weighing interface {
		EmbedQuery(ctx context.Context, text string, weight func(term string) float64) ([]float32, error)
	}
	type weights interface {
		TermWeights(ctx context.Context, text string) (func(term string) float64, error)
	}
	qe, ok1 := s.embedder.(weighing)
	tw, ok2 := s.store.(weights)
	if !ok1 || !ok2 {
		vecs, err := s.embed(ctx, []string{text})
		if err != nil {
			return Vector{}, err
		}
		return vecs[0], nil
	}
	weight, err := tw.TermWeights(ctx, text)
	if err != nil {
		return Vector{}, err
	}
	v, err := qe.EmbedQuery(ctx, text, weight)
	if err != nil {
		return Vector{}, fmt.Errorf("%w: embedding provider: %w", ErrUnavailable, err)
	}
	return Vector{Embedder: s.embedder.Name(), Values: v}, nil
}

// vectorWeight is the weight of the vector ranking in a hybrid search: 1,
// or TieBreakWeight for an embedder whose vectors are hashed words (it
// reports Lexical() true). Such vectors hold nothing the lexical index
// lacks but its corpus statistics, so they order memories BM25 scores
// alike and otherwise come after BM25's hits. Measured on three data sets
// (docs/retrieval.md), equal weights never beat BM25 alone at the top of
// the ranking with the hashing embedder, and on the public one they lost
// 0.04 of recall@5.
func (s *Service) vectorWeight() float64 {
	if s.wordsEmbedder() {
		return TieBreakWeight
	}
	return 1
}

// wordsEmbedder reports whether the embedder's vectors are hashed words.
func (s *Service) wordsEmbedder() bool {
	l, ok := s.embedder.(interface{ Lexical() bool })
	return ok && l.Lexical()
}

// Personas lists users with public memories, a page at a time.
func (s *Service) Personas(ctx context.Context, after uuid.UUID, limit int) ([]Persona, error) {
	switch {
	case limit == 0:
		limit = DefaultListLimit
	case limit < 0 || limit > MaxListLimit:
		return nil, Invalidf("limit", "must be between 1 and %d", MaxListLimit)
	}
	return s.store.Personas(ctx, after, limit, s.Now())
}

// Stats returns whole-store counts for administrators.
func (s *Service) Stats(ctx context.Context) (Stats, error) {
	return s.store.Stats(ctx, s.Now())
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC().Truncate(time.Microsecond)
	return &u
}
