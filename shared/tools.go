package shared

import (
	"encoding/json"
	"time"
)

// Tool names, identical on MCP and /api/tools.
const (
	ToolSubmitMemory         = "submit_memory"
	ToolSubmitMemories       = "submit_memories"
	ToolUpdateMemory         = "update_memory"
	ToolDeleteMemory         = "delete_memory"
	ToolDeleteMemories       = "delete_memories"
	ToolModifyPermissions    = "modify_permissions"
	ToolGetMemories          = "get_memories"
	ToolRetrieveMemories     = "retrieve_memories"
	ToolQueryMemory          = "query_memory"
	ToolQueryUser            = "query_user"
	ToolListPersonas         = "list_personas"
	ToolAdminStats           = "admin_stats"
	ToolAdminListUsers       = "admin_list_users"
	ToolAdminSetUserDisabled = "admin_set_user_disabled"
)

// Search modes of query_memory (the mode argument).
const (
	SearchHybrid  = "hybrid"  // meaning and words, fused (the default)
	SearchVector  = "vector"  // meaning: embedding similarity
	SearchLexical = "lexical" // words: BM25 over the blind index
)

// ToolRequest is the body of POST /api/tools.
type ToolRequest struct {
	Tool string          `json:"tool"`
	Data json.RawMessage `json:"data"`
}

// ToolResponse is the success body of POST /api/tools.
type ToolResponse struct {
	Result json.RawMessage `json:"result"`
}

// NewMemory is the input of submit_memory and each element of submit_memories.
type NewMemory struct {
	Text           string         `json:"text" jsonschema:"the text to remember, 1 to 32768 characters"`
	Permission     string         `json:"permission,omitempty" jsonschema:"private (default), public or shared"`
	Tags           []string       `json:"tags,omitempty" jsonschema:"up to 32 tags of at most 64 characters"`
	Metadata       map[string]any `json:"metadata,omitempty" jsonschema:"a JSON object of at most 8 KiB"`
	ExpirationDate *time.Time     `json:"expiration_date,omitempty" jsonschema:"when the memory expires (RFC 3339); a past date is accepted and marks it expired"`
	SharedWith     []string       `json:"shared_with,omitempty" jsonschema:"user ids or emails to share with (permission shared)"`
}

// SubmitMemoriesArgs is the input of submit_memories.
type SubmitMemoriesArgs struct {
	Memories []NewMemory `json:"memories" jsonschema:"up to 1000 memories, stored all or nothing"`
}

// MemoriesResult carries a list of memories (submit_memories).
type MemoriesResult struct {
	Memories []Memory `json:"memories"`
}

// UpdateMemoryArgs is the input of update_memory: absent fields stay as they are.
type UpdateMemoryArgs struct {
	MemoryID       string          `json:"memory_id" jsonschema:"the memory to change"`
	Text           *string         `json:"text,omitempty" jsonschema:"new text"`
	Tags           *[]string       `json:"tags,omitempty" jsonschema:"new tags (replaces the old ones)"`
	Metadata       *map[string]any `json:"metadata,omitempty" jsonschema:"new metadata (replaces the old object)"`
	ExpirationDate NullableTime    `json:"expiration_date,omitzero" jsonschema:"new expiration (RFC 3339), or null to remove it"`
}

// NullableTime distinguishes an explicit JSON null (clear the value) from an
// absent field. It is a value, not a pointer, in UpdateMemoryArgs: a pointer
// field would be set to nil by a JSON null without UnmarshalJSON running, and
// "remove the expiration" would read as "leave it alone".
type NullableTime struct {
	Time  *time.Time
	IsSet bool
}

// SetTime returns a NullableTime that sets t (nil clears the value).
func SetTime(t *time.Time) NullableTime { return NullableTime{Time: t, IsSet: true} }

// IsZero reports whether the field is absent, so omitzero leaves it out.
func (n NullableTime) IsZero() bool { return !n.IsSet && n.Time == nil }

// MarshalJSON writes the time or null.
func (n NullableTime) MarshalJSON() ([]byte, error) {
	if n.Time == nil {
		return []byte("null"), nil
	}
	return json.Marshal(n.Time)
}

// UnmarshalJSON reads a time or null.
func (n *NullableTime) UnmarshalJSON(b []byte) error {
	n.IsSet = true
	if string(b) == "null" {
		n.Time = nil
		return nil
	}
	var t time.Time
	if err := json.Unmarshal(b, &t); err != nil {
		return err
	}
	n.Time = &t
	return nil
}

// MemoryIDArgs is the input of delete_memory.
type MemoryIDArgs struct {
	MemoryID string `json:"memory_id" jsonschema:"the memory's UUID"`
}

// DeleteMemoryResult is the result of delete_memory.
type DeleteMemoryResult struct {
	MemoryID string `json:"memory_id"`
	Deleted  bool   `json:"deleted"`
}

// DeleteMemoriesArgs is the input of delete_memories.
type DeleteMemoriesArgs struct {
	MemoryIDs []string `json:"memory_ids" jsonschema:"the memories to delete, all or nothing"`
}

// DeleteMemoriesResult is the result of delete_memories.
type DeleteMemoriesResult struct {
	Deleted int `json:"deleted"`
}

// ModifyPermissionsArgs is the input of modify_permissions.
type ModifyPermissionsArgs struct {
	MemoryID   string   `json:"memory_id" jsonschema:"the memory's UUID"`
	Permission string   `json:"permission" jsonschema:"private, public or shared"`
	SharedWith []string `json:"shared_with,omitempty" jsonschema:"user ids or emails (permission shared)"`
}

// GetMemoriesArgs is the input of get_memories.
type GetMemoriesArgs struct {
	UserID         string         `json:"user_id,omitempty" jsonschema:"whose memories; default the caller"`
	Permission     string         `json:"permission,omitempty" jsonschema:"only memories with this permission"`
	Tags           []string       `json:"tags,omitempty" jsonschema:"only memories carrying all of these tags"`
	Metadata       map[string]any `json:"metadata,omitempty" jsonschema:"only memories whose metadata has these key/value pairs"`
	IncludeExpired bool           `json:"include_expired,omitempty" jsonschema:"include expired memories (owner only)"`
	CreatedAfter   *time.Time     `json:"created_after,omitempty" jsonschema:"only memories created after this time"`
	CreatedBefore  *time.Time     `json:"created_before,omitempty" jsonschema:"only memories created before this time"`
	Sort           string         `json:"sort,omitempty" jsonschema:"created_at (default) or updated_at"`
	Order          string         `json:"order,omitempty" jsonschema:"desc (default) or asc"`
	Limit          int            `json:"limit,omitempty" jsonschema:"page size, 1 to 500 (default 50)"`
	Cursor         string         `json:"cursor,omitempty" jsonschema:"next_cursor of the previous page"`
}

// PageArgs is the input of retrieve_memories and list_personas.
type PageArgs struct {
	Limit  int    `json:"limit,omitempty" jsonschema:"page size"`
	Cursor string `json:"cursor,omitempty" jsonschema:"next_cursor of the previous page"`
}

// MemoryPage is a page of memories.
type MemoryPage struct {
	Memories   []Memory `json:"memories"`
	NextCursor string   `json:"next_cursor,omitempty"`
}

// QueryMemoryArgs is the input of query_memory.
type QueryMemoryArgs struct {
	Query      string   `json:"query" jsonschema:"what to look for, in natural language"`
	Mode       string   `json:"mode,omitempty" jsonschema:"how to rank: hybrid (meaning and words, the default), vector (meaning only) or lexical (words only)"`
	Limit      int      `json:"limit,omitempty" jsonschema:"how many results, 1 to 100 (default 10)"`
	UserID     string   `json:"user_id,omitempty" jsonschema:"only memories of this user"`
	Permission string   `json:"permission,omitempty" jsonschema:"only memories with this permission"`
	Tags       []string `json:"tags,omitempty" jsonschema:"only memories carrying all of these tags"`
}

// QueryMemoryResult is the result of query_memory, best first.
type QueryMemoryResult struct {
	Results []Scored `json:"results"`
}

// QueryUserArgs is the input of query_user.
type QueryUserArgs struct {
	UserID string `json:"user_id" jsonschema:"the persona to ask (user UUID)"`
	Prompt string `json:"prompt" jsonschema:"the question"`
}

// QueryUserResult is the answer of a persona.
type QueryUserResult struct {
	Answer   string   `json:"answer"`
	Memories []Scored `json:"memories"`
	Model    string   `json:"model"`
}

// Persona is an entry of list_personas.
type Persona struct {
	UserID         string `json:"user_id"`
	Name           string `json:"name"`
	PublicMemories int    `json:"public_memories"`
}

// PersonaPage is the result of list_personas.
type PersonaPage struct {
	Personas   []Persona `json:"personas"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

// EmptyArgs is the input of tools that take no arguments (admin_stats).
type EmptyArgs struct{}

// AdminStatsResult is the result of admin_stats: counts only, never text.
type AdminStatsResult struct {
	Memories       int            `json:"memories" jsonschema:"number of memories, expired ones included"`
	ByPermission   map[string]int `json:"by_permission" jsonschema:"number of memories per permission"`
	Expired        int            `json:"expired" jsonschema:"number of expired memories"`
	Owners         int            `json:"owners" jsonschema:"number of users owning at least one memory"`
	ActivitySince  time.Time      `json:"activity_since" jsonschema:"start of the activity window (24 hours ago)"`
	ActivityCounts map[string]int `json:"activity" jsonschema:"recorded actions per kind since activity_since, e.g. tool:submit_memory"`
}

// AdminListUsersArgs is the input of admin_list_users.
type AdminListUsersArgs struct {
	Limit  int    `json:"limit,omitempty" jsonschema:"page size, 1 to 500 (default 50)"`
	Cursor string `json:"cursor,omitempty" jsonschema:"next_cursor of the previous page"`
}

// AdminUser is an account as administrators see it.
type AdminUser struct {
	UserID     string     `json:"user_id" jsonschema:"the user's UUID"`
	Email      string     `json:"email" jsonschema:"the account's email address"`
	Name       string     `json:"name" jsonschema:"display name"`
	Admin      bool       `json:"admin" jsonschema:"whether the account is an administrator"`
	Disabled   bool       `json:"disabled" jsonschema:"whether the account is disabled"`
	CreatedAt  time.Time  `json:"created_at" jsonschema:"when the account was created (RFC 3339)"`
	LastSeenAt *time.Time `json:"last_seen_at" jsonschema:"last recorded activity (RFC 3339), or null"`
}

// AdminUserPage is the result of admin_list_users.
type AdminUserPage struct {
	Users      []AdminUser `json:"users"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

// AdminSetUserDisabledArgs is the input of admin_set_user_disabled.
type AdminSetUserDisabledArgs struct {
	UserID   string `json:"user_id" jsonschema:"the account to change (user UUID)"`
	Disabled bool   `json:"disabled" jsonschema:"true disables the account and revokes its tokens; false enables it"`
}

// AdminSetUserDisabledResult is the result of admin_set_user_disabled.
type AdminSetUserDisabledResult struct {
	User          AdminUser `json:"user"`
	RevokedTokens int       `json:"revoked_tokens" jsonschema:"number of tokens revoked by this call"`
}
