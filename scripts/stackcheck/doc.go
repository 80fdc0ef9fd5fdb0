// Package stackcheck holds the integration checks of a running Picard stack,
// seen from outside as a user, an MCP client and a browser would see it:
// MCPServer checks mcpserver (OAuth metadata, registration, the code flow
// with PKCE through its login and consent forms, tokens, every tool over MCP
// and /api/tools, resources, permissions between users, bad inputs) and
// WebClient checks the web client (sign-up, connecting to mcpserver, a
// memory through the forms, search, personas, disconnecting).
//
// Each check prints "PASS name" or "FAIL name: reason" to a Report; the
// programs scripts/test_mcp_server and scripts/test_webclient print the
// summary "N passed, M failed" last. Tests can run the same checks against
// in-process servers (httptest) by calling MCPServer or WebClient with a
// Report of their own and failing when Report.Failed is not zero.
package stackcheck
