// Package oauth is the OAuth 2.1 authorization server of mcpserver: a small,
// strict subset of OAuth 2.1 and of the specifications the MCP
// authorization chapter names.
//
//   - Metadata: RFC 8414 authorization server metadata (also at the OpenID
//     discovery path), RFC 9728 protected resource metadata for the MCP
//     resource, and the JWKS.
//   - Clients: RFC 7591 dynamic registration (confidential and public
//     clients) and Client ID Metadata Documents (an https URL as client_id).
//   - The authorization code grant with PKCE S256 required of every client,
//     RFC 9207 iss in every authorization response, RFC 8707 resource
//     indicators, and refresh tokens that rotate on every use.
//   - RFC 7009 revocation and RFC 7662 introspection.
//   - JWT access tokens (RFC 9068 profile) that [Server.Verify] checks for the
//     bearer middleware of /mcp and /api, with a revocation list shared
//     through the database.
//   - The pages people see: login, sign-up, consent and /account (profile,
//     persona settings, connected applications, personal access tokens,
//     activity, deletion).
//
// Storage comes in through [Store], implemented by the store package for
// SQLite and Postgres. Everything that must hold across several server
// instances (single use of codes, refresh token rotation, revocation) is
// decided by the database, not by process memory.
package oauth
