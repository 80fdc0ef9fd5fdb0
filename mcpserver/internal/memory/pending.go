package memory

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// A memory is pending while it has no vector: it was written while the
// embedding provider failed. Writes never wait for the provider to recover —
// the memory is stored (sealed, with its tags and shares) and acknowledged,
// vector search skips it, and FillPending computes its vector later.

// VectorStore is what FillPending needs of a store besides Store.
// store.Memories implements it.
type VectorStore interface {
	// Unembedded returns up to limit memories that have no vector at all,
	// with the version their text was read at.
	Unembedded(ctx context.Context, limit int) ([]Unembedded, error)
	// SetVectors stores each vector for its memory if the memory still has
	// that version (a changed memory keeps what its change wrote) and
	// returns how many were stored.
	SetVectors(ctx context.Context, vs []VersionedVector) (int, error)
	// CountUnembedded counts the memories without a vector.
	CountUnembedded(ctx context.Context) (int, error)
}

// Unembedded is a memory waiting for its vector.
type Unembedded struct {
	ID      uuid.UUID
	Version int64
	Text    string
}

// VersionedVector is a vector for a memory as it was at Version.
type VersionedVector struct {
	ID      uuid.UUID
	Version int64
	Vector  Vector
}

// Pending receives a value when a write stored a memory without its vector
// because the embedder failed; the embedding worker waits on it so that it
// starts retrying without delay. Signals do not queue beyond one.
func (s *Service) Pending() <-chan struct{} { return s.pending }

// embedForWrite embeds the texts of a write. If the embedder fails while
// ctx is still live, the write goes ahead without vectors (zero Vectors,
// one per text) rather than failing: the memories are pending. The
// embedder gets at most half of the time left before ctx's deadline, so the
// write itself still has time to be stored after slow retries.
func (s *Service) embedForWrite(ctx context.Context, texts []string) ([]Vector, error) {
	vecs, err := s.embedWithin(ctx, texts)
	if err == nil {
		return vecs, nil
	}
	if ctx.Err() != nil {
		return nil, err
	}
	select {
	case s.pending <- struct{}{}:
	default:
	}
	return make([]Vector, len(texts)), nil
}

// embedWithin embeds texts giving the embedder at most half of the time
// left before ctx's deadline, so that the caller can still do its own work
// (store a write, or search lexically) when the embedder is slow to fail.
func (s *Service) embedWithin(ctx context.Context, texts []string) ([]Vector, error) {
	ctx, cancel := halfDeadline(ctx)
	defer cancel()
	return s.embed(ctx, texts)
}

// halfDeadline returns ctx with a deadline at half the time left before
// ctx's, if it has one.
func halfDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok {
		return context.WithTimeout(ctx, time.Until(d)/2)
	}
	return context.WithCancel(ctx)
}

// ErrNoVectorStore means the service's store cannot list memories without
// vectors, so FillPending cannot work.
var ErrNoVectorStore = errors.New("the memory store does not implement memory.VectorStore")

// FillPending computes the vectors of up to batch pending memories and
// stores them, returning how many pending memories it handled. A memory
// changed between reading and writing is left pending for the next call,
// which reads its new text. Zero with a nil error means nothing is pending.
// An embedder failure wraps ErrUnavailable and stores nothing; calling
// again retries.
func (s *Service) FillPending(ctx context.Context, batch int) (int, error) {
	vs, ok := s.store.(VectorStore)
	if !ok {
		return 0, ErrNoVectorStore
	}
	if batch <= 0 {
		batch = MaxBatch
	}
	todo, err := vs.Unembedded(ctx, batch)
	if err != nil || len(todo) == 0 {
		return 0, err
	}
	texts := make([]string, len(todo))
	for i, u := range todo {
		texts[i] = u.Text
	}
	vecs, err := s.embed(ctx, texts)
	if err != nil {
		return 0, err
	}
	out := make([]VersionedVector, len(todo))
	for i, u := range todo {
		if len(vecs[i].Values) == 0 {
			return 0, fmt.Errorf("%w: embedding provider returned an empty vector for memory %s", ErrUnavailable, u.ID)
		}
		out[i] = VersionedVector{ID: u.ID, Version: u.Version, Vector: vecs[i]}
	}
	if _, err := vs.SetVectors(ctx, out); err != nil {
		return 0, err
	}
	return len(todo), nil
}

// CountPending counts the memories waiting for a vector.
func (s *Service) CountPending(ctx context.Context) (int, error) {
	vs, ok := s.store.(VectorStore)
	if !ok {
		return 0, ErrNoVectorStore
	}
	return vs.CountUnembedded(ctx)
}
