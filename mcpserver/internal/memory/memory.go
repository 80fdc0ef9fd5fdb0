// Package memory is the domain of Picard: what a memory is, who may see it,
// and the rules every change must follow. It knows nothing of SQL, HTTP or
// MCP; storage and embedding come in through the small interfaces declared
// here, and the adapters (store, mcp, httpapi) depend on this package, never
// the other way round.
package memory

import (
	"time"

	"github.com/google/uuid"
)

// Permission says who besides the owner may see a memory. The set is open:
// a new kind is added by a constant here, its rule in Visible, and the
// matching predicate in the stores.
type Permission string

// The permissions Picard knows today.
const (
	Private Permission = "private" // only the owner
	Public  Permission = "public"  // everyone signed in
	Shared  Permission = "shared"  // the owner and the users in SharedWith
)

// Permissions lists the known permissions in the order tools document them.
var Permissions = []Permission{Private, Public, Shared}

// ParsePermission validates a permission name. The empty string is not
// accepted here: defaults are the caller's decision.
func ParsePermission(s string) (Permission, error) {
	for _, p := range Permissions {
		if string(p) == s {
			return p, nil
		}
	}
	return "", Invalidf("permission", "unknown permission %q (want private, public or shared)", s)
}

// Memory is one remembered text with its access rules and annotations.
// Text is plaintext here; stores seal it before it reaches a database.
type Memory struct {
	ID         uuid.UUID
	OwnerID    uuid.UUID
	Text       string
	Permission Permission
	SharedWith []uuid.UUID // sorted, unique; empty unless Permission is Shared
	Tags       []string    // normalised: trimmed, unique, in the order given
	Metadata   map[string]any
	ExpiresAt  *time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
	// Version increases by one on every change; stores use it to refuse a
	// write based on a stale read, so concurrent updates never lose one.
	Version int64
}

// Expired reports whether the memory's expiration has passed at now.
func (m *Memory) Expired(now time.Time) bool {
	return m.ExpiresAt != nil && !m.ExpiresAt.After(now)
}

// SharedWithUser reports whether the memory is shared with user.
func (m *Memory) SharedWithUser(user uuid.UUID) bool {
	if m.Permission != Shared {
		return false
	}
	for _, id := range m.SharedWith {
		if id == user {
			return true
		}
	}
	return false
}

// Visible is the visibility rule of Picard, the one every store predicate
// must agree with: the owner sees all of their memories (expired ones only
// when includeExpired); anyone else sees public memories and those shared
// with them, and never an expired one.
func Visible(m *Memory, viewer uuid.UUID, now time.Time, includeExpired bool) bool {
	if m.OwnerID == viewer {
		return includeExpired || !m.Expired(now)
	}
	if m.Expired(now) {
		return false
	}
	switch m.Permission {
	case Public:
		return true
	case Shared:
		return m.SharedWithUser(viewer)
	default:
		return false
	}
}

// Vector is an embedding of a memory's text together with the name of the
// embedder that made it (model and dimension), so vectors of different
// embedders are never compared.
type Vector struct {
	Embedder string
	Values   []float32
}

// Scored is a memory with its similarity to a query; higher is better.
type Scored struct {
	Memory *Memory
	Score  float64
}
