package shared

import "time"

// Permission values of a memory. The set is open: servers may add kinds,
// and clients should show an unknown value rather than reject it.
const (
	PermissionPrivate = "private"
	PermissionPublic  = "public"
	PermissionShared  = "shared"
)

// Memory is the memory object of the API, as both transports return it.
type Memory struct {
	ID             string         `json:"id" jsonschema:"the memory's UUID"`
	OwnerID        string         `json:"owner_id" jsonschema:"UUID of the user who owns the memory"`
	Text           string         `json:"text" jsonschema:"the memory's text (Markdown allowed)"`
	Permission     string         `json:"permission" jsonschema:"who may see it: private, public or shared"`
	SharedWith     []string       `json:"shared_with" jsonschema:"UUIDs of the users it is shared with (permission shared)"`
	Tags           []string       `json:"tags" jsonschema:"tags of the memory"`
	Metadata       map[string]any `json:"metadata" jsonschema:"free-form JSON object"`
	ExpirationDate *time.Time     `json:"expiration_date" jsonschema:"when the memory expires (RFC 3339), or null"`
	Expired        bool           `json:"expired" jsonschema:"true when the expiration date has passed"`
	CreatedAt      time.Time      `json:"created_at" jsonschema:"creation time (RFC 3339)"`
	UpdatedAt      time.Time      `json:"updated_at" jsonschema:"last change (RFC 3339)"`
}

// Scored is a memory with its similarity to a query: higher is better.
type Scored struct {
	Memory Memory  `json:"memory"`
	Score  float64 `json:"score" jsonschema:"how well it matches the query, higher is better; its scale depends on the mode of query_memory"`
}
