package shared

// OAuth scopes of the MCP server.
const (
	ScopeRead  = "memories:read"
	ScopeWrite = "memories:write"
	ScopeAdmin = "memories:admin"
)

// AllScopes lists every scope the server knows, in the order it advertises them.
var AllScopes = []string{ScopeRead, ScopeWrite, ScopeAdmin}
