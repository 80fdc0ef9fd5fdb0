package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v5"

	"picard.dev/mcpserver/internal/mcp"
	"picard.dev/shared"
)

// OpenAPI builds the OpenAPI 3.1 document of the server. Tool schemas come
// from the Registry — the very schemas MCP clients see in tools/list — so
// the document cannot drift from the tools.
func OpenAPI(reg *mcp.Registry, issuer, version string) ([]byte, error) {
	if version == "" {
		version = "dev"
	}
	if issuer == "" {
		issuer = "http://localhost:8001"
	}
	schemas := map[string]any{
		"Error": obj(map[string]any{
			"error": obj(map[string]any{
				"code": map[string]any{"type": "string", "enum": []string{
					shared.CodeInvalidArgument, shared.CodeUnauthenticated, shared.CodePermissionDenied,
					shared.CodeInsufficientScope, shared.CodeNotFound, shared.CodeConflict, shared.CodeTooLarge,
					shared.CodeRateLimited, shared.CodeInternal, shared.CodeUnavailable}},
				"message": map[string]any{"type": "string"},
			}, "code", "message"),
		}, "error"),
		"OAuthError": obj(map[string]any{
			"error":             map[string]any{"type": "string", "description": "RFC 6749 error code"},
			"error_description": map[string]any{"type": "string"},
		}, "error"),
	}
	var (
		requests, results []any
		mapping           = map[string]any{}
		examples          = map[string]any{}
		toolList          []string
	)
	for _, t := range reg.Tools() {
		in, err := toMap(t.Input)
		if err != nil {
			return nil, err
		}
		out, err := toMap(t.Output)
		if err != nil {
			return nil, err
		}
		name := pascal(t.Name)
		schemas[name+"Input"] = in
		schemas[name+"Output"] = out
		desc := t.Description + fmt.Sprintf(" Requires scope %s", t.Scope)
		if t.Admin {
			desc += " and an administrator account"
		}
		desc += "."
		schemas[name+"Request"] = map[string]any{
			"type": "object", "title": t.Name, "description": desc,
			"properties": map[string]any{
				"tool": map[string]any{"const": t.Name},
				"data": ref(name + "Input"),
			},
			"required":             []string{"tool", "data"},
			"additionalProperties": false,
		}
		schemas[name+"Response"] = map[string]any{
			"type": "object", "title": t.Name + " result",
			"properties":           map[string]any{"result": ref(name + "Output")},
			"required":             []string{"result"},
			"additionalProperties": false,
		}
		requests = append(requests, ref(name+"Request"))
		results = append(results, ref(name+"Response"))
		mapping[t.Name] = "#/components/schemas/" + name + "Request"
		examples[t.Name] = map[string]any{
			"summary": t.Title,
			"value":   map[string]any{"tool": t.Name, "data": t.Example},
		}
		toolList = append(toolList, fmt.Sprintf("- `%s` (%s): %s", t.Name, t.Scope, t.Title))
	}

	errorResponse := func(desc string) map[string]any {
		return map[string]any{"description": desc, "content": map[string]any{
			"application/json": map[string]any{"schema": ref("Error")}}}
	}
	oauthError := func(desc string) map[string]any {
		return map[string]any{"description": desc, "content": map[string]any{
			"application/json": map[string]any{"schema": ref("OAuthError")}}}
	}
	jsonObject := func(desc string) map[string]any {
		return map[string]any{"description": desc, "content": map[string]any{
			"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}}
	}
	form := func(props map[string]any, required ...string) map[string]any {
		return map[string]any{"required": true, "content": map[string]any{
			"application/x-www-form-urlencoded": map[string]any{"schema": obj(props, required...)}}}
	}
	str := func(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }
	query := func(name, desc string, required bool) map[string]any {
		return map[string]any{"name": name, "in": "query", "required": required, "schema": map[string]any{"type": "string"}, "description": desc}
	}
	bearer := []any{map[string]any{"bearer": []string{}}}

	paths := map[string]any{
		"/api/tools": map[string]any{"post": map[string]any{
			"operationId": "callTool",
			"summary":     "Call a tool",
			"description": "Calls one of the MCP tools over plain JSON, with the same arguments, results, errors and " +
				"authorization as on /mcp. Tools:\n\n" + strings.Join(toolList, "\n"),
			"security": bearer,
			"requestBody": map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{
				"schema": map[string]any{
					"oneOf":         requests,
					"discriminator": map[string]any{"propertyName": "tool", "mapping": mapping},
				},
				"examples": examples,
			}}},
			"responses": map[string]any{
				"200": map[string]any{"description": "The tool's result", "content": map[string]any{
					"application/json": map[string]any{"schema": map[string]any{"oneOf": results}}}},
				"400": errorResponse("invalid_argument: the body or an argument is wrong; the message names it"),
				"401": errorResponse("unauthenticated: no token, or an invalid, expired or revoked one (see WWW-Authenticate)"),
				"403": errorResponse("insufficient_scope (see WWW-Authenticate), permission_denied, or a browser Origin that is not allowed"),
				"404": errorResponse("not_found: unknown tool, or a memory or user that does not exist or that the caller may not see"),
				"409": errorResponse("conflict: the memory changed concurrently; retry"),
				"413": errorResponse("too_large: body over 1 MiB (10 MiB for submit_memories and delete_memories) or an argument over its limit"),
				"429": errorResponse("rate_limited: too many requests with this token; see Retry-After"),
				"500": errorResponse("internal: an unexpected failure (no details are given)"),
				"503": errorResponse("unavailable: a dependency (chat model, database) did not answer in time"),
			},
		}},
		"/mcp": map[string]any{"post": map[string]any{
			"operationId": "mcp",
			"summary":     "MCP streamable HTTP endpoint",
			"description": "JSON-RPC messages of the Model Context Protocol (streamable HTTP transport, stateless by default). " +
				"Use an MCP client; Accept must list application/json and text/event-stream.",
			"security": bearer,
			"requestBody": map[string]any{"required": true, "content": map[string]any{
				"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}},
			"responses": map[string]any{
				"200": map[string]any{"description": "JSON-RPC response, as JSON or a server-sent event stream", "content": map[string]any{
					"application/json":  map[string]any{"schema": map[string]any{"type": "object"}},
					"text/event-stream": map[string]any{"schema": map[string]any{"type": "string"}},
				}},
				"401": errorResponse("unauthenticated (see WWW-Authenticate for the resource metadata)"),
				"403": errorResponse("a browser Origin that is not allowed"),
				"413": errorResponse("too_large"),
				"429": errorResponse("rate_limited"),
			},
		}},
		"/.well-known/oauth-authorization-server": map[string]any{"get": map[string]any{
			"operationId": "authorizationServerMetadata", "summary": "OAuth authorization server metadata (RFC 8414)",
			"responses": map[string]any{"200": jsonObject("The metadata")},
		}},
		"/.well-known/openid-configuration": map[string]any{"get": map[string]any{
			"operationId": "openidConfiguration", "summary": "The authorization server metadata, at the OpenID location",
			"responses": map[string]any{"200": jsonObject("The metadata")},
		}},
		"/.well-known/oauth-protected-resource": map[string]any{"get": map[string]any{
			"operationId": "protectedResourceMetadata", "summary": "Protected resource metadata (RFC 9728)",
			"responses": map[string]any{"200": jsonObject("The metadata of the resource " + issuer + "/mcp")},
		}},
		"/.well-known/oauth-protected-resource/mcp": map[string]any{"get": map[string]any{
			"operationId": "protectedResourceMetadataMCP", "summary": "Protected resource metadata of /mcp (RFC 9728)",
			"responses": map[string]any{"200": jsonObject("The metadata of the resource " + issuer + "/mcp")},
		}},
		"/.well-known/jwks.json": map[string]any{"get": map[string]any{
			"operationId": "jwks", "summary": "Public keys that sign access tokens",
			"responses": map[string]any{"200": jsonObject("A JSON Web Key Set")},
		}},
		"/register": map[string]any{"post": map[string]any{
			"operationId": "registerClient", "summary": "Dynamic client registration (RFC 7591)",
			"requestBody": map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{
				"schema": obj(map[string]any{
					"redirect_uris":              map[string]any{"type": "array", "items": map[string]any{"type": "string", "format": "uri"}},
					"client_name":                str("shown on the consent page"),
					"token_endpoint_auth_method": map[string]any{"type": "string", "enum": []string{"none", "client_secret_basic", "client_secret_post"}},
					"grant_types":                map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
					"scope":                      str("space-separated scopes"),
				}, "redirect_uris"),
			}}},
			"responses": map[string]any{
				"201": jsonObject("The registered client: client_id (UUID) and, for confidential clients, client_secret"),
				"400": oauthError("invalid_client_metadata or invalid_redirect_uri"),
			},
		}},
		"/authorize": map[string]any{"get": map[string]any{
			"operationId": "authorize", "summary": "Authorization code flow (PKCE S256 required): login, then consent",
			"parameters": []any{
				query("response_type", "code", true), query("client_id", "the client's id", true),
				query("redirect_uri", "one of the client's registered redirect URIs", true),
				query("code_challenge", "PKCE S256 challenge", true), query("code_challenge_method", "S256", true),
				query("scope", "space-separated scopes", false), query("state", "opaque value returned to the client", false),
				query("resource", "the resource indicator (RFC 8707), "+issuer+"/mcp", false),
			},
			"responses": map[string]any{
				"200": map[string]any{"description": "The login or consent page", "content": map[string]any{"text/html": map[string]any{"schema": map[string]any{"type": "string"}}}},
				"302": map[string]any{"description": "Redirect to the client with a code, or with an error"},
				"400": map[string]any{"description": "Unknown client or redirect URI (shown, not redirected)"},
			},
		}},
		"/token": map[string]any{"post": map[string]any{
			"operationId": "token", "summary": "Token endpoint: authorization_code and refresh_token grants",
			"requestBody": form(map[string]any{
				"grant_type":    map[string]any{"type": "string", "enum": []string{"authorization_code", "refresh_token"}},
				"code":          str("the authorization code"),
				"redirect_uri":  str("as in the authorization request"),
				"code_verifier": str("PKCE verifier"),
				"refresh_token": str("for grant_type refresh_token"),
				"client_id":     str("public clients"),
				"resource":      str("optional resource indicator"),
			}, "grant_type"),
			"responses": map[string]any{
				"200": map[string]any{"description": "Tokens", "content": map[string]any{"application/json": map[string]any{"schema": obj(map[string]any{
					"access_token":  map[string]any{"type": "string"},
					"token_type":    map[string]any{"type": "string", "const": "Bearer"},
					"expires_in":    map[string]any{"type": "integer"},
					"refresh_token": map[string]any{"type": "string"},
					"scope":         map[string]any{"type": "string"},
				}, "access_token", "token_type", "expires_in", "scope")}}},
				"400": oauthError("invalid_grant, invalid_request, unsupported_grant_type"),
				"401": oauthError("invalid_client"),
			},
		}},
		"/revoke": map[string]any{"post": map[string]any{
			"operationId": "revoke", "summary": "Token revocation (RFC 7009)",
			"requestBody": form(map[string]any{"token": str("the token"), "token_type_hint": str("access_token or refresh_token")}, "token"),
			"responses":   map[string]any{"200": map[string]any{"description": "Revoked (also for unknown tokens)"}, "401": oauthError("invalid_client")},
		}},
		"/introspect": map[string]any{"post": map[string]any{
			"operationId": "introspect", "summary": "Token introspection (RFC 7662)",
			"requestBody": form(map[string]any{"token": str("the token")}, "token"),
			"responses":   map[string]any{"200": jsonObject("active, and for active tokens scope, client_id, sub, exp, aud"), "401": oauthError("invalid_client")},
		}},
		"/healthz": map[string]any{"get": map[string]any{
			"operationId": "healthz", "summary": "Liveness",
			"responses": map[string]any{"200": jsonObject("The process is up")},
		}},
		"/readyz": map[string]any{"get": map[string]any{
			"operationId": "readyz", "summary": "Readiness: the database is reachable",
			"responses": map[string]any{"200": jsonObject("Ready"), "503": errorResponse("unavailable")},
		}},
		"/metrics": map[string]any{"get": map[string]any{
			"operationId": "metrics", "summary": "Prometheus metrics",
			"responses": map[string]any{"200": map[string]any{"description": "Metrics in the Prometheus text format",
				"content": map[string]any{"text/plain": map[string]any{"schema": map[string]any{"type": "string"}}}}},
		}},
	}

	scopes := map[string]any{
		shared.ScopeRead:  "read memories the caller may see",
		shared.ScopeWrite: "create, change and delete the caller's memories",
		shared.ScopeAdmin: "administration (needs an administrator account)",
	}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "Picard MCP server",
			"version": version,
			"description": "Picard is a self-hostable memory service for AI assistants. The same tools are served over " +
				"MCP (/mcp) and as plain JSON (POST /api/tools). Authenticate with an OAuth 2.1 access token " +
				"(authorization code flow with PKCE) or a personal access token, as `Authorization: Bearer …`.",
		},
		"servers": []any{map[string]any{"url": issuer}},
		"paths":   paths,
		"components": map[string]any{
			"schemas": schemas,
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
				"oauth2": map[string]any{"type": "oauth2", "flows": map[string]any{"authorizationCode": map[string]any{
					"authorizationUrl": issuer + "/authorize", "tokenUrl": issuer + "/token",
					"refreshUrl": issuer + "/token", "scopes": scopes,
				}}},
			},
		},
	}
	return json.MarshalIndent(doc, "", "  ")
}

func obj(props map[string]any, required ...string) map[string]any {
	o := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

func toMap(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

// pascal turns submit_memory into SubmitMemory for schema names.
func pascal(s string) string {
	parts := strings.Split(s, "_")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "")
}

func (a *API) serveOpenAPI(c *echo.Context) error {
	return c.Blob(http.StatusOK, "application/json", a.openapi)
}
