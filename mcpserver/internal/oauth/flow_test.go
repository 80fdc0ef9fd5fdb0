package oauth_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"picard.dev/mcpserver/internal/oauth"
)

func TestMetadata(t *testing.T) {
	h := newHarness(t, backends()[0])
	for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		resp, err := http.Get(h.issuer + path)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		decode(t, resp, &m)
		if resp.StatusCode != 200 || m["issuer"] != h.issuer {
			t.Fatalf("%s: %d issuer %v", path, resp.StatusCode, m["issuer"])
		}
		for k, want := range map[string]any{
			"authorization_endpoint": h.issuer + "/authorize",
			"token_endpoint":         h.issuer + "/token",
			"registration_endpoint":  h.issuer + "/register",
			"revocation_endpoint":    h.issuer + "/revoke",
			"introspection_endpoint": h.issuer + "/introspect",
			"jwks_uri":               h.issuer + "/.well-known/jwks.json",
			"authorization_response_iss_parameter_supported": true,
			"client_id_metadata_document_supported":          true,
		} {
			if m[k] != want {
				t.Errorf("%s %s = %v, want %v", path, k, m[k], want)
			}
		}
		if got := m["code_challenge_methods_supported"]; !equalJSON(got, []string{"S256"}) {
			t.Errorf("code_challenge_methods_supported = %v", got)
		}
		if got := m["scopes_supported"]; !equalJSON(got, []string{"memories:read", "memories:write", "memories:admin"}) {
			t.Errorf("scopes_supported = %v", got)
		}
		if got := m["token_endpoint_auth_methods_supported"]; !equalJSON(got, []string{"client_secret_basic", "client_secret_post", "none"}) {
			t.Errorf("token_endpoint_auth_methods_supported = %v", got)
		}
	}
	for _, path := range []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"} {
		resp, err := http.Get(h.issuer + path)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		decode(t, resp, &m)
		if m["resource"] != h.resource || !equalJSON(m["authorization_servers"], []string{h.issuer}) {
			t.Errorf("%s: %v", path, m)
		}
	}
	if h.srv.ResourceMetadataURL() != h.issuer+"/.well-known/oauth-protected-resource/mcp" {
		t.Errorf("ResourceMetadataURL = %s", h.srv.ResourceMetadataURL())
	}
	resp, err := http.Get(h.issuer + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	var jwks struct {
		Keys []map[string]any `json:"keys"`
	}
	decode(t, resp, &jwks)
	if len(jwks.Keys) != 1 || jwks.Keys[0]["kid"] != h.keys.KeyIDs()[0] || jwks.Keys[0]["alg"] != "ES256" || jwks.Keys[0]["d"] != nil {
		t.Errorf("jwks: %v", jwks.Keys)
	}
}

func equalJSON(got any, want []string) bool {
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	return string(g) == string(w)
}

// TestCodeFlow walks the whole flow over plain HTTP for a confidential
// and a public client on each database: registration, login, consent,
// code, token, protected call, refresh, introspection, revocation.
func TestCodeFlow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		h := newHarness(t, b)
		for _, public := range []bool{false, true} {
			c, u, tok := h.tokens(public, map[bool]string{false: "conf@example.com", true: "pub@example.com"}[public])
			if tok["token_type"] != "Bearer" || tok["scope"] != "memories:read memories:write" || tok["expires_in"] != 3600.0 {
				t.Fatalf("token response: %v", tok)
			}
			access, refresh := tok["access_token"].(string), tok["refresh_token"].(string)
			if st := h.call(access); st != http.StatusOK {
				t.Fatalf("protected call: %d", st)
			}
			id, err := h.srv.Verify(h.ctx, access)
			if err != nil || id.UserID != u.ID || id.ClientID != c.ID || !slices.Equal(id.Scopes, []string{"memories:read", "memories:write"}) || id.Email != u.Email {
				t.Fatalf("identity %+v, %v", id, err)
			}
			st, tok2 := h.refresh(c, refresh)
			if st != http.StatusOK || tok2["refresh_token"] == refresh || tok2["scope"] != "memories:read memories:write" {
				t.Fatalf("refresh: %d %v", st, tok2)
			}
			if st := h.call(tok2["access_token"].(string)); st != http.StatusOK {
				t.Fatalf("call after refresh: %d", st)
			}
			// Second login is remembered: no consent page this time.
			v, ch := pkce("again")
			loc := h.browser()
			loc.login(u.Email)
			again := loc.authorize(h.authURL(c, ch, nil), u.Email, "")
			if again.Query().Get("code") == "" || again.Query().Get("iss") != h.issuer || again.Query().Get("state") != "st-123" {
				t.Fatalf("remembered consent redirect: %s", again)
			}
			if st, _ := h.exchange(c, again.Query().Get("code"), v); st != http.StatusOK {
				t.Fatalf("second exchange: %d", st)
			}
		}
	})
}

// TestIntrospectAndRevoke: RFC 7662 for a resource server client and RFC
// 7009 for the token's own client.
func TestIntrospectAndRevoke(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		h := newHarness(t, b)
		c, u, tok := h.tokens(false, "intro@example.com")
		rs := h.register(false, "https://rs.example.com/cb")
		access := tok["access_token"].(string)

		st, body, _ := h.postForm("/introspect", url.Values{"token": {access}}, rs.ID, rs.Secret)
		if st != 200 || body["active"] != true || body["sub"] != u.ID.String() || body["client_id"] != c.ID || body["aud"] != h.resource {
			t.Fatalf("introspect: %d %v", st, body)
		}
		// Refresh tokens only to their own client.
		st, body, _ = h.postForm("/introspect", url.Values{"token": {tok["refresh_token"].(string)}}, rs.ID, rs.Secret)
		if st != 200 || body["active"] != false {
			t.Fatalf("introspect other's refresh token: %v", body)
		}
		_, body, _ = h.postForm("/introspect", url.Values{"token": {tok["refresh_token"].(string)}}, c.ID, c.Secret)
		if body["active"] != true || body["token_type"] != "refresh_token" {
			t.Fatalf("introspect own refresh token: %v", body)
		}
		// Public clients cannot introspect.
		pub := h.register(true, "http://localhost:1234/cb")
		st, _, _ = h.postForm("/introspect", url.Values{"token": {access}, "client_id": {pub.ID}}, "", "")
		if st != 401 {
			t.Fatalf("public introspection: %d", st)
		}
		// Another client's revocation is ignored (200, nothing happens).
		st, _, _ = h.postForm("/revoke", url.Values{"token": {access}}, rs.ID, rs.Secret)
		if st != 200 || h.call(access) != 200 {
			t.Fatalf("foreign revoke: %d", st)
		}
		st, _, _ = h.postForm("/revoke", url.Values{"token": {access}, "token_type_hint": {"access_token"}}, c.ID, c.Secret)
		if st != 200 {
			t.Fatalf("revoke: %d", st)
		}
		if got := h.call(access); got != 401 {
			t.Fatalf("revoked access token accepted: %d", got)
		}
		_, body, _ = h.postForm("/introspect", url.Values{"token": {access}}, rs.ID, rs.Secret)
		if body["active"] != false {
			t.Fatalf("introspect revoked: %v", body)
		}
		// Revoking the refresh token ends the grant: refresh fails.
		st, _, _ = h.postForm("/revoke", url.Values{"token": {tok["refresh_token"].(string)}}, c.ID, c.Secret)
		if st != 200 {
			t.Fatalf("revoke refresh: %d", st)
		}
		if st, body := h.refresh(c, tok["refresh_token"].(string)); st != 400 || body["error"] != "invalid_grant" {
			t.Fatalf("refresh after revoke: %d %v", st, body)
		}
		// Unknown tokens: 200.
		if st, _, _ := h.postForm("/revoke", url.Values{"token": {"nonsense"}}, c.ID, c.Secret); st != 200 {
			t.Fatalf("revoke unknown: %d", st)
		}
	})
}

func TestRegistration(t *testing.T) {
	h := newHarness(t, backends()[0])
	var out oauth.RegistrationResponse
	resp := h.postJSON("/register", map[string]any{"redirect_uris": []string{"https://app.example.com/cb"}, "client_name": "App"}, &out)
	if resp.StatusCode != 201 || out.ClientSecret == "" || out.TokenEndpointAuthMethod != "client_secret_basic" || len(out.ClientID) != 36 {
		t.Fatalf("confidential: %d %+v", resp.StatusCode, out)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	out = oauth.RegistrationResponse{}
	resp = h.postJSON("/register", map[string]any{"redirect_uris": []string{"http://127.0.0.1/cb", "com.example.app:/oauth"}, "token_endpoint_auth_method": "none"}, &out)
	if resp.StatusCode != 201 || out.ClientSecret != "" || out.ApplicationType != "native" {
		t.Fatalf("public: %d %+v", resp.StatusCode, out)
	}
	bad := []map[string]any{
		{},
		{"redirect_uris": []string{"http://evil.example.com/cb"}},
		{"redirect_uris": []string{"javascript:alert(1)"}},
		{"redirect_uris": []string{"data:text/html,hi"}},
		{"redirect_uris": []string{"file:///etc/passwd"}},
		{"redirect_uris": []string{"https://app.example.com/cb#frag"}},
		{"redirect_uris": []string{"https://*.example.com/cb"}},
		{"redirect_uris": []string{"https://app.example.com/cb"}, "token_endpoint_auth_method": "private_key_jwt"},
		{"redirect_uris": []string{"https://app.example.com/cb"}, "grant_types": []string{"client_credentials"}},
		{"redirect_uris": []string{"https://app.example.com/cb"}, "response_types": []string{"token"}},
		{"redirect_uris": []string{"https://app.example.com/cb"}, "scope": "openid"},
		{"redirect_uris": "https://app.example.com/cb"},
	}
	for _, req := range bad {
		var e map[string]any
		resp := h.postJSON("/register", req, &e)
		code, _ := e["error"].(string)
		if resp.StatusCode != 400 || (code != "invalid_redirect_uri" && code != "invalid_client_metadata") {
			t.Errorf("%v: %d %v", req, resp.StatusCode, e)
		}
	}
	big := strings.Repeat("x", 70<<10)
	var e map[string]any
	if resp := h.postJSON("/register", map[string]any{"redirect_uris": []string{"https://a.example/cb"}, "client_name": big}, &e); resp.StatusCode != 413 {
		t.Errorf("oversized registration: %d", resp.StatusCode)
	}
}
