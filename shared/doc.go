// Package shared holds the wire types that mcpserver and webclient both
// speak: the memory object, tool names and their arguments and results,
// OAuth scopes and API error codes. It is a leaf: it imports no sibling
// module, so either side can depend on it without dragging in the other.
//
// Three subpackages are not wire types but code both services need alike:
// argon2id (how both hash account passwords), health (the healthcheck
// subcommands) and pgtest (throwaway Postgres databases for tests).
package shared
