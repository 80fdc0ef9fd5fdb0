package memory

import (
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// SortField is the column a listing is ordered by.
type SortField string

// Sort fields of get_memories.
const (
	SortCreated SortField = "created_at"
	SortUpdated SortField = "updated_at"
)

// Order is the direction of a listing.
type Order string

// Orders of get_memories.
const (
	Desc Order = "desc"
	Asc  Order = "asc"
)

// ListQuery selects memories for get_memories and retrieve_memories. Stores
// apply every field in their query, including the visibility rule for Viewer.
type ListQuery struct {
	Viewer         uuid.UUID
	Owner          uuid.UUID // uuid.Nil: any owner (still subject to visibility)
	Permission     Permission
	Tags           []string       // memories carrying all of them
	Metadata       map[string]any // scalar values; each key must equal its value
	IncludeExpired bool           // only ever honoured for the Viewer's own memories
	CreatedAfter   *time.Time
	CreatedBefore  *time.Time
	Sort           SortField
	Order          Order
	Limit          int
	After          *Cursor // continue after this position
	Now            time.Time
}

// Page is one page of a listing; Next is nil on the last page.
type Page struct {
	Memories []*Memory
	Next     *Cursor
}

// Cursor is a keyset position: the sort value and id of the last memory of a
// page. Pages stay stable under concurrent inserts because the next page
// starts strictly after this position rather than at an offset.
type Cursor struct {
	Sort  SortField
	Order Order
	At    time.Time
	ID    uuid.UUID
}

type cursorWire struct {
	S SortField `json:"s"`
	O Order     `json:"o"`
	T int64     `json:"t"`
	I uuid.UUID `json:"i"`
}

// Encode returns the opaque form handed to clients.
func (c *Cursor) Encode() string {
	if c == nil {
		return ""
	}
	b, _ := json.Marshal(cursorWire{S: c.Sort, O: c.Order, T: c.At.UnixNano(), I: c.ID})
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor parses an opaque cursor; the empty string means the first page.
func DecodeCursor(arg, s string) (*Cursor, error) {
	if s == "" {
		return nil, nil
	}
	if len(s) > 256 {
		return nil, Invalidf(arg, "is not a cursor returned by this server")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, Invalidf(arg, "is not a cursor returned by this server")
	}
	var w cursorWire
	if err := json.Unmarshal(b, &w); err != nil || w.I == uuid.Nil ||
		(w.S != SortCreated && w.S != SortUpdated) || (w.O != Asc && w.O != Desc) {
		return nil, Invalidf(arg, "is not a cursor returned by this server")
	}
	return &Cursor{Sort: w.S, Order: w.O, At: time.Unix(0, w.T).UTC(), ID: w.I}, nil
}

// SearchQuery asks a store for the memories that best match a query among
// those the viewer may see, ranked as Mode says. Expired memories are never
// searched.
type SearchQuery struct {
	Viewer     uuid.UUID
	Owner      uuid.UUID // uuid.Nil: any owner
	Permission Permission
	Tags       []string
	Mode       SearchMode // empty: ModeVector
	Text       string     // the query text, for the lexical ranking
	Vector     Vector     // the query's embedding, for the vector ranking
	// VectorWeight is the vector ranking's weight in a hybrid search,
	// against the lexical ranking's 1 (see Fuse); 0 means 1.
	VectorWeight float64
	// Words marks a Vector of hashed words (from an embedder that reports
	// Lexical(), such as embed.Hash, its words weighed by idf): its nearest
	// neighbours are the memories that share its rarer words, which an
	// approximate index finds poorly, since they lie anywhere in its
	// graph. A store searching such a vector with one also scores the
	// memories the lexical ranking puts first.
	Words bool
	Limit int
	Now   time.Time
}

// Persona is a user who has at least one visible public memory.
type Persona struct {
	UserID         uuid.UUID
	Name           string
	PublicMemories int
}

// Stats are whole-store counts for administrators; they hold no text.
type Stats struct {
	Memories     int
	ByPermission map[Permission]int
	Expired      int
	Owners       int
}
