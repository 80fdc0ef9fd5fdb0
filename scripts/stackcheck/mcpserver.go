package stackcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"picard.dev/shared"
)

// MCPOptions configure MCPServer.
type MCPOptions struct {
	// BaseURL is where the checks reach mcpserver, e.g. http://localhost:8001.
	BaseURL string
	// Issuer is the expected OAuth issuer; default BaseURL.
	Issuer string
	// Transport carries every request (nil: http.DefaultTransport); tests
	// pass an httptest server's.
	Transport http.RoundTripper
	// Users, when three are given, are existing accounts used instead of
	// accounts signed up through /signup.
	Users []Credentials
	// AdminToken, optional, is an access token of an admin account with
	// memories:admin (mcpserver tokens issue --scopes "memories:read
	// memories:admin"); without it the admin tools are only checked to be
	// refused to other users.
	AdminToken string
	// RunID names this run's users and tags its memories; default the time.
	RunID string
}

// user is one test account with its tokens and callers.
type user struct {
	Credentials
	label   string
	id      string
	browser *Browser
	client  *Client
	tokens  *TokenResponse
	api     *APICaller
	mcp     *MCPCaller
}

type mcpSuite struct {
	ctx     context.Context
	r       *Report
	o       MCPOptions
	base    string
	hc      *http.Client
	md      *ASMetadata
	jwks    *JWKS
	run     string
	tag     string
	public  *Client
	private *Client
	users   []*user // a, b, c
}

// MCPServer runs every check of a running mcpserver and records them in r.
// It creates its own accounts (or uses o.Users) and deletes the memories it
// created; the accounts stay, so the stack remains usable.
func MCPServer(ctx context.Context, r *Report, o MCPOptions) {
	o.BaseURL = strings.TrimRight(o.BaseURL, "/")
	if o.Issuer == "" {
		o.Issuer = o.BaseURL
	}
	if o.RunID == "" {
		o.RunID = time.Now().UTC().Format("20060102t150405") + "-" + strings.ToLower(randomString(4))
	}
	s := &mcpSuite{
		ctx: ctx, r: r, o: o, base: o.BaseURL, hc: NewHTTPClient(o.Transport),
		run: o.RunID, tag: "stackcheck-" + o.RunID,
	}
	defer func() {
		for _, u := range s.users {
			if u.mcp != nil {
				u.mcp.Close()
			}
		}
	}()
	s.health()
	if !s.metadata() {
		return
	}
	if !s.register() || !s.accounts() {
		return
	}
	a, b := s.users[0], s.users[1]
	s.tokenLifecycle()
	s.authErrors()
	if !s.connectMCP() {
		return
	}
	s.toolList()
	for _, transport := range []string{"api", "mcp"} {
		s.tools(transport, a, b)
	}
	s.permissions()
	s.badInputs()
	s.readOnly()
	s.admin()
	s.cleanup()
}

func (s *mcpSuite) check(name string, fn func() error) bool { return s.r.Check(name, fn) }

func (s *mcpSuite) health() {
	for _, p := range []string{"/healthz", "/readyz"} {
		s.check("GET "+p, func() error {
			resp, err := s.hc.Get(s.base + p)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		})
	}
	s.check("GET /metrics is Prometheus text", func() error {
		p, err := (&Browser{Client: s.hc}).Get(s.ctx, s.base+"/metrics")
		if err != nil {
			return err
		}
		if p.Status != http.StatusOK || !strings.Contains(string(p.Body), "# TYPE") {
			return fmt.Errorf("%s", p)
		}
		return nil
	})
	s.check("GET /openapi.json is OpenAPI 3.1 with /api/tools", func() error {
		var doc struct {
			OpenAPI string         `json:"openapi"`
			Paths   map[string]any `json:"paths"`
		}
		if err := getJSON(s.ctx, s.hc, s.base+"/openapi.json", &doc); err != nil {
			return err
		}
		if !strings.HasPrefix(doc.OpenAPI, "3.1") {
			return fmt.Errorf("openapi %q, want 3.1.x", doc.OpenAPI)
		}
		if _, ok := doc.Paths["/api/tools"]; !ok {
			return errors.New("no /api/tools path")
		}
		return nil
	})
	s.check("GET /docs serves Swagger UI", func() error {
		p, err := (&Browser{Client: s.hc}).Get(s.ctx, s.base+"/docs")
		if err != nil {
			return err
		}
		if p.Redirect() {
			p, err = (&Browser{Client: s.hc}).Follow(s.ctx, p, nil)
			if err != nil {
				return err
			}
		}
		if p.Status != http.StatusOK || !strings.Contains(strings.ToLower(string(p.Body)), "swagger") {
			return fmt.Errorf("%s", p)
		}
		return nil
	})
}

func (s *mcpSuite) metadata() bool {
	ok := s.check("RFC 8414 authorization server metadata", func() error {
		var md ASMetadata
		if err := getJSON(s.ctx, s.hc, s.base+"/.well-known/oauth-authorization-server", &md); err != nil {
			return err
		}
		switch {
		case md.Issuer != s.o.Issuer:
			return fmt.Errorf("issuer %q, want %q (no trailing slash)", md.Issuer, s.o.Issuer)
		case md.AuthorizationEndpoint == "" || md.TokenEndpoint == "" || md.RegistrationEndpoint == "" || md.RevocationEndpoint == "" || md.IntrospectionEndpoint == "" || md.JWKSURI == "":
			return fmt.Errorf("an endpoint is missing: %+v", md)
		case !slices.Contains(md.CodeChallengeMethodsSupported, "S256"):
			return fmt.Errorf("code_challenge_methods_supported %v lacks S256", md.CodeChallengeMethodsSupported)
		case slices.Contains(md.CodeChallengeMethodsSupported, "plain"):
			return errors.New("code_challenge_methods_supported offers plain; PKCE S256 is required")
		case !slices.Contains(md.GrantTypesSupported, "authorization_code") || !slices.Contains(md.GrantTypesSupported, "refresh_token"):
			return fmt.Errorf("grant_types_supported %v", md.GrantTypesSupported)
		case !slices.Contains(md.ResponseTypesSupported, "code"):
			return fmt.Errorf("response_types_supported %v", md.ResponseTypesSupported)
		}
		for _, sc := range shared.AllScopes {
			if !slices.Contains(md.ScopesSupported, sc) {
				return fmt.Errorf("scopes_supported %v lacks %s", md.ScopesSupported, sc)
			}
		}
		s.md = &md
		return nil
	})
	if !ok {
		return false
	}
	// The endpoints are published under the issuer; the checks reach the
	// server at BaseURL, which may differ (a proxy, a container network).
	s.md = s.rebase(s.md)
	s.check("OpenID configuration names the same issuer", func() error {
		var md ASMetadata
		if err := getJSON(s.ctx, s.hc, s.base+"/.well-known/openid-configuration", &md); err != nil {
			return err
		}
		if md.Issuer != s.o.Issuer {
			return fmt.Errorf("issuer %q, want %q", md.Issuer, s.o.Issuer)
		}
		return nil
	})
	for _, p := range []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"} {
		s.check("RFC 9728 protected resource metadata at "+p, func() error {
			var prm struct {
				Resource             string   `json:"resource"`
				AuthorizationServers []string `json:"authorization_servers"`
				ScopesSupported      []string `json:"scopes_supported"`
			}
			if err := getJSON(s.ctx, s.hc, s.base+p, &prm); err != nil {
				return err
			}
			if prm.Resource != s.o.Issuer+"/mcp" {
				return fmt.Errorf("resource %q, want %q", prm.Resource, s.o.Issuer+"/mcp")
			}
			if !slices.Contains(prm.AuthorizationServers, s.o.Issuer) {
				return fmt.Errorf("authorization_servers %v lacks %s", prm.AuthorizationServers, s.o.Issuer)
			}
			return nil
		})
	}
	return s.check("JWKS publishes public signing keys", func() error {
		var set JWKS
		if err := getJSON(s.ctx, s.hc, s.md.JWKSURI, &set); err != nil {
			return err
		}
		if len(set.Keys) == 0 {
			return errors.New("no keys")
		}
		for _, k := range set.Keys {
			if k.Kid == "" || k.Kty == "" {
				return fmt.Errorf("key without kid or kty: %+v", k)
			}
			if k.D != "" {
				return errors.New("the JWKS publishes a private key (d)")
			}
		}
		s.jwks = &set
		return nil
	})
}

// rebase points the metadata's endpoints at BaseURL when the issuer differs.
func (s *mcpSuite) rebase(md *ASMetadata) *ASMetadata {
	if s.o.Issuer == s.base {
		return md
	}
	c := *md
	for _, p := range []*string{&c.AuthorizationEndpoint, &c.TokenEndpoint, &c.RegistrationEndpoint, &c.RevocationEndpoint, &c.IntrospectionEndpoint, &c.JWKSURI} {
		if rest, ok := strings.CutPrefix(*p, s.o.Issuer); ok {
			*p = s.base + rest
		}
	}
	return &c
}

const redirectURI = "http://127.0.0.1:9/stackcheck/callback"

func (s *mcpSuite) register() bool {
	ok := s.check("dynamic registration of a public client (PKCE only)", func() (err error) {
		s.public, err = Register(s.ctx, s.hc, s.md, "Picard stackcheck (public) "+s.run, redirectURI, false)
		return err
	})
	return s.check("dynamic registration of a confidential client", func() (err error) {
		s.private, err = Register(s.ctx, s.hc, s.md, "Picard stackcheck (confidential) "+s.run, redirectURI, true)
		return err
	}) && ok
}

// SignUp creates an account through a server's /signup page in browser b.
func SignUp(ctx context.Context, b *Browser, base string, c Credentials, name string) error {
	p, err := b.Get(ctx, base+"/signup")
	if err != nil {
		return err
	}
	if p.Status != http.StatusOK {
		return fmt.Errorf("GET /signup: %s", p)
	}
	f, err := FindForm(p, func(f *Form) bool { return f.Has("email") && f.Has("password") })
	if err != nil {
		return err
	}
	fill := url.Values{"email": {c.Email}, "password": {c.Password}}
	if f.Has("password_confirm") {
		fill.Set("password_confirm", c.Password)
	}
	if f.Has("name") {
		fill.Set("name", name)
	}
	if p, err = b.Submit(ctx, p, f, fill); err != nil {
		return err
	}
	if !p.Redirect() && p.Status != http.StatusOK {
		return fmt.Errorf("POST %s: %s", f.Action, p)
	}
	if p.Status == http.StatusOK {
		// A page rather than a redirect is the form again with an error.
		if forms, _ := Forms(p.Body); len(forms) > 0 {
			for _, g := range forms {
				if g.Has("password") && g.Has("email") && g.Has("password_confirm") == f.Has("password_confirm") && strings.Contains(p.URL.Path, "signup") {
					return fmt.Errorf("sign-up was not accepted: %s", p)
				}
			}
		}
	}
	return nil
}

func (s *mcpSuite) accounts() bool {
	labels := []string{"a", "b", "c"}
	for i, l := range labels {
		u := &user{label: l, browser: NewBrowser(s.o.Transport)}
		if len(s.o.Users) >= 3 {
			u.Credentials = s.o.Users[i]
		} else {
			u.Credentials = Credentials{Email: fmt.Sprintf("stackcheck-%s-%s@example.com", s.run, l), Password: "Pw-" + randomString(20)}
			if !s.check("sign-up of user "+l+" through /signup", func() error {
				return SignUp(s.ctx, u.browser, s.base, u.Credentials, "Stackcheck "+strings.ToUpper(l))
			}) {
				return false
			}
		}
		u.client = s.public
		if l == "b" {
			u.client = s.private // one user goes through the confidential client
		}
		if !s.check("user "+l+": authorization code flow with PKCE (login and consent forms)", func() error {
			t, err := s.flow(u, u.client, shared.ScopeRead+" "+shared.ScopeWrite, l == "a")
			if err != nil {
				return err
			}
			if !strings.Contains(t.Scope, shared.ScopeWrite) || !strings.Contains(t.Scope, shared.ScopeRead) {
				return fmt.Errorf("granted scope %q, want memories:read and memories:write", t.Scope)
			}
			if t.RefreshToken == "" {
				return errors.New("no refresh_token")
			}
			u.tokens = t
			u.api = &APICaller{HTTP: s.hc, Base: s.base, Token: t.AccessToken}
			return nil
		}) {
			return false
		}
		s.users = append(s.users, u)
	}
	s.check("access token is a JWT signed by a JWKS key, for the issuer and $ISSUER/mcp", func() error {
		claims, err := VerifyJWT(s.users[0].tokens.AccessToken, s.jwks)
		if err != nil {
			return err
		}
		if claims["iss"] != s.o.Issuer {
			return fmt.Errorf("iss %v, want %s", claims["iss"], s.o.Issuer)
		}
		if aud := audience(claims); !slices.Contains(aud, s.o.Issuer+"/mcp") {
			return fmt.Errorf("aud %v, want %s/mcp", aud, s.o.Issuer)
		}
		exp, _ := claims["exp"].(float64)
		iat, _ := claims["iat"].(float64)
		if d := exp - iat; d <= 0 || d > 3600 {
			return fmt.Errorf("exp - iat = %v s, want at most 1 h", d)
		}
		if sub, _ := claims["sub"].(string); sub == "" {
			return errors.New("no sub claim")
		}
		return nil
	})
	return true
}

// flow runs one authorization (login when needed, consent) for u and
// exchanges the code.
func (s *mcpSuite) flow(u *user, c *Client, scope string, withResource bool) (*TokenResponse, error) {
	resource := ""
	if withResource {
		resource = s.o.Issuer + "/mcp"
	}
	a := NewAuthorization(s.md, c, scope, resource)
	q, err := Authorize(s.ctx, u.browser, c, a, u.Credentials, false)
	if err != nil {
		return nil, err
	}
	if q.Get("error") != "" {
		return nil, fmt.Errorf("authorization refused: %s %s", q.Get("error"), q.Get("error_description"))
	}
	if iss := q.Get("iss"); iss != "" && iss != s.o.Issuer {
		return nil, fmt.Errorf("the redirect's iss %q is not the issuer %q", iss, s.o.Issuer)
	}
	return Exchange(s.ctx, s.hc, s.md, c, a, q.Get("code"))
}

// apiStatus calls /api/tools get_memories with token and returns the error.
func (s *mcpSuite) apiWith(token string) *APICaller {
	return &APICaller{HTTP: s.hc, Base: s.base, Token: token}
}

func wantRefused(err error) error {
	var te *ToolError
	if !errors.As(err, &te) || te.Status != http.StatusUnauthorized {
		return fmt.Errorf("got %v, want HTTP 401", err)
	}
	return nil
}

func wantOAuthError(err error, code string) error {
	var oe *OAuthError
	if !errors.As(err, &oe) || oe.Code != code {
		return fmt.Errorf("got %v, want the OAuth error %s", err, code)
	}
	return nil
}

func (s *mcpSuite) tokenLifecycle() {
	a, b := s.users[0], s.users[1]
	s.check("refresh_token grant rotates the refresh token; the old one is refused", func() error {
		t, err := s.flow(a, a.client, shared.ScopeRead+" "+shared.ScopeWrite, false)
		if err != nil {
			return err
		}
		t2, err := Refresh(s.ctx, s.hc, s.md, a.client, t.RefreshToken)
		if err != nil {
			return fmt.Errorf("refresh: %w", err)
		}
		if t2.RefreshToken == "" || t2.RefreshToken == t.RefreshToken {
			return errors.New("the refresh did not return a new refresh token")
		}
		if err := s.apiWith(t2.AccessToken).Call(s.ctx, shared.ToolRetrieveMemories, map[string]any{"limit": 1}, nil); err != nil {
			return fmt.Errorf("the refreshed access token: %w", err)
		}
		_, err = Refresh(s.ctx, s.hc, s.md, a.client, t.RefreshToken)
		return wantOAuthError(err, "invalid_grant")
	})
	s.check("a replayed authorization code is refused and its access token revoked", func() error {
		auth := NewAuthorization(s.md, b.client, shared.ScopeRead, "")
		q, err := Authorize(s.ctx, b.browser, b.client, auth, b.Credentials, false)
		if err != nil {
			return err
		}
		t, err := Exchange(s.ctx, s.hc, s.md, b.client, auth, q.Get("code"))
		if err != nil {
			return err
		}
		_, err = Exchange(s.ctx, s.hc, s.md, b.client, auth, q.Get("code"))
		if err := wantOAuthError(err, "invalid_grant"); err != nil {
			return fmt.Errorf("second exchange: %w", err)
		}
		return wantRefused(s.apiWith(t.AccessToken).Call(s.ctx, shared.ToolRetrieveMemories, map[string]any{}, nil))
	})
	s.check("a wrong PKCE code_verifier is refused", func() error {
		auth := NewAuthorization(s.md, a.client, shared.ScopeRead, "")
		q, err := Authorize(s.ctx, a.browser, a.client, auth, a.Credentials, false)
		if err != nil {
			return err
		}
		auth.Verifier = randomString(48)
		_, err = Exchange(s.ctx, s.hc, s.md, a.client, auth, q.Get("code"))
		return wantOAuthError(err, "invalid_grant")
	})
	s.check("consent denied redirects with error=access_denied", func() error {
		// A client a has never approved, so the consent page is shown even
		// if the server remembers earlier consents.
		fresh, err := Register(s.ctx, s.hc, s.md, "Picard stackcheck (denied) "+s.run, redirectURI, false)
		if err != nil {
			return err
		}
		auth := NewAuthorization(s.md, fresh, shared.ScopeRead, "")
		q, err := Authorize(s.ctx, a.browser, fresh, auth, a.Credentials, true)
		if err != nil {
			return err
		}
		if q.Get("error") != "access_denied" || q.Get("code") != "" {
			return fmt.Errorf("redirect query %v, want error=access_denied and no code", q)
		}
		return nil
	})
	s.check("revocation (RFC 7009) and introspection (RFC 7662)", func() error {
		t, err := s.flow(b, b.client, shared.ScopeRead, false)
		if err != nil {
			return err
		}
		in, err := Introspect(s.ctx, s.hc, s.md, b.client, t.AccessToken)
		if err != nil {
			return fmt.Errorf("introspect: %w", err)
		}
		if in["active"] != true {
			return fmt.Errorf("introspection of a fresh token: %v", in)
		}
		if err := Revoke(s.ctx, s.hc, s.md, b.client, t.AccessToken); err != nil {
			return fmt.Errorf("revoke: %w", err)
		}
		if err := wantRefused(s.apiWith(t.AccessToken).Call(s.ctx, shared.ToolRetrieveMemories, map[string]any{}, nil)); err != nil {
			return fmt.Errorf("/api with the revoked token: %w", err)
		}
		if in, err = Introspect(s.ctx, s.hc, s.md, b.client, t.AccessToken); err != nil {
			return fmt.Errorf("introspect: %w", err)
		}
		if in["active"] != false {
			return fmt.Errorf("introspection of a revoked token: %v", in)
		}
		if _, err := ConnectMCP(s.ctx, s.o.Transport, s.base+"/mcp", t.AccessToken); err == nil {
			return errors.New("/mcp accepted the revoked token")
		}
		return nil
	})
	s.check("revoking a refresh token stops the refresh", func() error {
		t, err := s.flow(b, b.client, shared.ScopeRead, false)
		if err != nil {
			return err
		}
		if err := Revoke(s.ctx, s.hc, s.md, b.client, t.RefreshToken); err != nil {
			return err
		}
		_, err = Refresh(s.ctx, s.hc, s.md, b.client, t.RefreshToken)
		return wantOAuthError(err, "invalid_grant")
	})
}

// authErrors: requests without a usable token.
func (s *mcpSuite) authErrors() {
	wantChallenge := func(resp *http.Response) error {
		if resp.StatusCode != http.StatusUnauthorized {
			return fmt.Errorf("status %d, want 401", resp.StatusCode)
		}
		h := resp.Header.Get("WWW-Authenticate")
		if !strings.HasPrefix(h, "Bearer") || !strings.Contains(h, `resource_metadata="`) {
			return fmt.Errorf("WWW-Authenticate %q, want Bearer with resource_metadata", h)
		}
		return nil
	}
	post := func(path, token, body string) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(s.ctx, http.MethodPost, s.base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := s.hc.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"stackcheck","version":"1"}}}`
	for _, c := range []struct{ name, path, token, body string }{
		{"/mcp without a token: 401 with resource_metadata", "/mcp", "", init},
		{"/mcp with a malformed token: 401", "/mcp", "not-a-token", init},
		{"/api/tools without a token: 401 with resource_metadata", "/api/tools", "", `{"tool":"retrieve_memories","data":{}}`},
		{"/api/tools with a forged token: 401", "/api/tools", forgedJWT(), `{"tool":"retrieve_memories","data":{}}`},
	} {
		s.check(c.name, func() error {
			resp, err := post(c.path, c.token, c.body)
			if err != nil {
				return err
			}
			return wantChallenge(resp)
		})
	}
	s.check("/api/tools 401 has a JSON unauthenticated body", func() error {
		err := s.apiWith("").Call(s.ctx, shared.ToolRetrieveMemories, map[string]any{}, nil)
		if codeOf(err) != shared.CodeUnauthenticated {
			return fmt.Errorf("got %v, want unauthenticated", err)
		}
		return nil
	})
}

// forgedJWT is a well-formed but unsigned-by-us token.
func forgedJWT() string {
	enc := func(v any) string { b, _ := json.Marshal(v); return strings.TrimRight(base64URL(b), "=") }
	return enc(map[string]string{"alg": "HS256", "typ": "JWT"}) + "." +
		enc(map[string]any{"sub": "00000000-0000-0000-0000-000000000000", "exp": time.Now().Add(time.Hour).Unix()}) + ".c2lnbmF0dXJl"
}

func (s *mcpSuite) connectMCP() bool {
	for _, u := range s.users[:2] {
		if !s.check("user "+u.label+": MCP session over streamable HTTP with the bearer token", func() (err error) {
			u.mcp, err = ConnectMCP(s.ctx, s.o.Transport, s.base+"/mcp", u.tokens.AccessToken)
			return err
		}) {
			return false
		}
	}
	return true
}

var userTools = []string{
	shared.ToolSubmitMemory, shared.ToolSubmitMemories, shared.ToolUpdateMemory, shared.ToolDeleteMemory,
	shared.ToolDeleteMemories, shared.ToolModifyPermissions, shared.ToolGetMemories, shared.ToolRetrieveMemories,
	shared.ToolQueryMemory, shared.ToolQueryUser, shared.ToolListPersonas,
}

func (s *mcpSuite) toolList() {
	a := s.users[0]
	s.check("MCP tools/list has every tool with input schemas", func() error {
		res, err := a.mcp.Session.ListTools(s.ctx, nil)
		if err != nil {
			return err
		}
		have := map[string]*mcp.Tool{}
		for _, t := range res.Tools {
			have[t.Name] = t
		}
		for _, name := range userTools {
			t, ok := have[name]
			if !ok {
				return fmt.Errorf("tool %s is missing (have %d tools)", name, len(res.Tools))
			}
			if t.InputSchema == nil || t.Description == "" {
				return fmt.Errorf("tool %s has no input schema or description", name)
			}
		}
		return nil
	})
	s.check("MCP resource templates memories://{memory_id} and users://{user_id}/memories", func() error {
		res, err := a.mcp.Session.ListResourceTemplates(s.ctx, nil)
		if err != nil {
			return err
		}
		var have []string
		for _, t := range res.ResourceTemplates {
			have = append(have, t.URITemplate)
		}
		for _, want := range []string{"memories://{memory_id}", "users://{user_id}/memories"} {
			if !slices.Contains(have, want) {
				return fmt.Errorf("templates %v lack %s", have, want)
			}
		}
		return nil
	})
}

func (u *user) caller(transport string) Caller {
	if transport == "mcp" {
		return u.mcp
	}
	return u.api
}

func ids(ms []shared.Memory) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func scoredIDs(rs []shared.Scored) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Memory.ID
	}
	return out
}

// tools exercises every user tool over one transport as user a, with b as
// the user memories are shared with.
func (s *mcpSuite) tools(transport string, a, b *user) {
	ca, cb := a.caller(transport), b.caller(transport)
	ttag := s.tag + "-" + transport
	tags := []string{s.tag, ttag}
	name := func(tool string) string { return transport + " " + tool }
	var first shared.Memory
	var batch []shared.Memory
	past := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

	if !s.check(name(shared.ToolSubmitMemory), func() error {
		in := shared.NewMemory{
			Text: "Stackcheck " + transport + ": Captain Picard prefers Earl Grey tea, hot.",
			Tags: append([]string{"tea"}, tags...), Metadata: map[string]any{"suite": "stackcheck", "run": s.run},
		}
		if err := ca.Call(s.ctx, shared.ToolSubmitMemory, in, &first); err != nil {
			return err
		}
		switch {
		case !isUUID(first.ID) || !isUUID(first.OwnerID):
			return fmt.Errorf("id %q owner_id %q are not UUIDs", first.ID, first.OwnerID)
		case first.Text != in.Text:
			return fmt.Errorf("text %q, want %q", first.Text, in.Text)
		case first.Permission != shared.PermissionPrivate:
			return fmt.Errorf("permission %q, want the default private", first.Permission)
		case !slices.Contains(first.Tags, "tea") || first.Metadata["run"] != s.run:
			return fmt.Errorf("tags %v metadata %v not kept", first.Tags, first.Metadata)
		case first.Expired || first.ExpirationDate != nil:
			return errors.New("a memory without expiration_date came back expired or with one")
		case first.CreatedAt.IsZero() || first.UpdatedAt.IsZero():
			return errors.New("created_at or updated_at missing")
		}
		if a.id == "" {
			a.id = first.OwnerID
		} else if a.id != first.OwnerID {
			return fmt.Errorf("owner_id %s, but this user's memories so far belong to %s", first.OwnerID, a.id)
		}
		return nil
	}) {
		return
	}
	if b.id == "" {
		s.check("user b's id from a memory of its own", func() error {
			var m shared.Memory
			if err := b.api.Call(s.ctx, shared.ToolSubmitMemory, shared.NewMemory{Text: "Stackcheck: user b exists.", Tags: []string{s.tag}}, &m); err != nil {
				return err
			}
			b.id = m.OwnerID
			return nil
		})
	}

	s.check(name(shared.ToolSubmitMemories)+" (input order, shared_with by email, past expiration)", func() error {
		in := shared.SubmitMemoriesArgs{Memories: []shared.NewMemory{
			{Text: "Stackcheck " + transport + ": the Enterprise-D is a Galaxy class starship.", Permission: shared.PermissionPublic, Tags: tags},
			{Text: "Stackcheck " + transport + ": the away team meets in transporter room three.", Permission: shared.PermissionShared, SharedWith: []string{b.Email}, Tags: tags},
			{Text: "Stackcheck " + transport + ": the old shore leave schedule on Risa.", Permission: shared.PermissionPublic, Tags: tags, ExpirationDate: &past},
		}}
		var out shared.MemoriesResult
		if err := ca.Call(s.ctx, shared.ToolSubmitMemories, in, &out); err != nil {
			return err
		}
		if len(out.Memories) != 3 {
			return fmt.Errorf("%d memories, want 3", len(out.Memories))
		}
		for i, m := range out.Memories {
			if m.Text != in.Memories[i].Text {
				return fmt.Errorf("memory %d is %q, want %q (input order)", i, m.Text, in.Memories[i].Text)
			}
		}
		if sw := out.Memories[1].SharedWith; b.id != "" && !slices.Contains(sw, b.id) {
			return fmt.Errorf("shared_with %v, want b's id %s (given by email)", sw, b.id)
		}
		if !out.Memories[2].Expired {
			return errors.New("a memory with a past expiration_date is not expired: true")
		}
		batch = out.Memories
		return nil
	})

	s.check(name(shared.ToolUpdateMemory), func() error {
		text := first.Text + " (updated)"
		newTags := append([]string{"tea", "updated"}, tags...)
		var m shared.Memory
		if err := ca.Call(s.ctx, shared.ToolUpdateMemory, shared.UpdateMemoryArgs{MemoryID: first.ID, Text: &text, Tags: &newTags}, &m); err != nil {
			return err
		}
		if m.Text != text || !slices.Contains(m.Tags, "updated") || m.ID != first.ID {
			return fmt.Errorf("got %+v", m)
		}
		if m.UpdatedAt.Before(m.CreatedAt) {
			return errors.New("updated_at before created_at")
		}
		if m.Metadata["run"] != s.run {
			return errors.New("metadata was lost by an update that did not name it")
		}
		first = m
		return nil
	})

	s.check(name(shared.ToolModifyPermissions), func() error {
		var m shared.Memory
		if err := ca.Call(s.ctx, shared.ToolModifyPermissions, shared.ModifyPermissionsArgs{MemoryID: first.ID, Permission: shared.PermissionShared, SharedWith: []string{b.id}}, &m); err != nil {
			return err
		}
		if m.Permission != shared.PermissionShared || !slices.Contains(m.SharedWith, b.id) {
			return fmt.Errorf("permission %q shared_with %v", m.Permission, m.SharedWith)
		}
		var seen shared.MemoryPage
		if err := cb.Call(s.ctx, shared.ToolGetMemories, shared.GetMemoriesArgs{UserID: a.id, Tags: []string{ttag}}, &seen); err != nil {
			return err
		}
		if !slices.Contains(ids(seen.Memories), first.ID) {
			return errors.New("b does not see the memory shared with it")
		}
		if err := ca.Call(s.ctx, shared.ToolModifyPermissions, shared.ModifyPermissionsArgs{MemoryID: first.ID, Permission: shared.PermissionPrivate}, &m); err != nil {
			return err
		}
		if m.Permission != shared.PermissionPrivate {
			return fmt.Errorf("permission %q after making it private", m.Permission)
		}
		return nil
	})

	s.check(name(shared.ToolGetMemories)+" (own, tags, include_expired)", func() error {
		var page shared.MemoryPage
		if err := ca.Call(s.ctx, shared.ToolGetMemories, shared.GetMemoriesArgs{Tags: tags}, &page); err != nil {
			return err
		}
		got := ids(page.Memories)
		if len(batch) == 3 {
			want := []string{first.ID, batch[0].ID, batch[1].ID}
			if !sameSet(got, want) {
				return fmt.Errorf("got %v, want %v (expired excluded)", got, want)
			}
			if err := ca.Call(s.ctx, shared.ToolGetMemories, shared.GetMemoriesArgs{Tags: tags, IncludeExpired: true}, &page); err != nil {
				return err
			}
			if !slices.Contains(ids(page.Memories), batch[2].ID) {
				return errors.New("include_expired does not return the owner's expired memory")
			}
		}
		var two shared.MemoryPage
		if err := ca.Call(s.ctx, shared.ToolGetMemories, shared.GetMemoriesArgs{Tags: []string{ttag, "updated"}}, &two); err != nil {
			return err
		}
		if !slices.Equal(ids(two.Memories), []string{first.ID}) {
			return fmt.Errorf("tags [%s updated] gave %v, want only %s (all tags must match)", ttag, ids(two.Memories), first.ID)
		}
		return nil
	})

	s.check(name(shared.ToolRetrieveMemories)+" (pagination)", func() error {
		var p1, p2 shared.MemoryPage
		if err := ca.Call(s.ctx, shared.ToolRetrieveMemories, shared.PageArgs{Limit: 1}, &p1); err != nil {
			return err
		}
		if len(p1.Memories) != 1 || p1.NextCursor == "" {
			return fmt.Errorf("limit 1 gave %d memories and next_cursor %q", len(p1.Memories), p1.NextCursor)
		}
		if err := ca.Call(s.ctx, shared.ToolRetrieveMemories, shared.PageArgs{Limit: 1, Cursor: p1.NextCursor}, &p2); err != nil {
			return err
		}
		if len(p2.Memories) != 1 || p2.Memories[0].ID == p1.Memories[0].ID {
			return fmt.Errorf("the second page repeats the first or is empty: %v", ids(p2.Memories))
		}
		for _, m := range append(p1.Memories, p2.Memories...) {
			if m.OwnerID != a.id {
				return fmt.Errorf("retrieve_memories returned %s's memory", m.OwnerID)
			}
		}
		return nil
	})

	s.check(name(shared.ToolQueryMemory)+" (best first)", func() error {
		var res shared.QueryMemoryResult
		if err := ca.Call(s.ctx, shared.ToolQueryMemory, shared.QueryMemoryArgs{Query: "Galaxy class starship Enterprise", Tags: []string{ttag}, Limit: 5}, &res); err != nil {
			return err
		}
		if len(res.Results) == 0 {
			return errors.New("no results")
		}
		if len(batch) > 0 && res.Results[0].Memory.ID != batch[0].ID {
			return fmt.Errorf("best result %q, want the starship memory", res.Results[0].Memory.Text)
		}
		for i := 1; i < len(res.Results); i++ {
			if res.Results[i].Score > res.Results[i-1].Score {
				return fmt.Errorf("scores not sorted best first: %v", res.Results)
			}
		}
		if len(batch) == 3 && slices.Contains(scoredIDs(res.Results), batch[2].ID) {
			return errors.New("query_memory returned an expired memory")
		}
		return nil
	})

	s.check(name(shared.ToolQueryUser)+" (b asks a's persona)", func() error {
		var res shared.QueryUserResult
		if err := cb.Call(s.ctx, shared.ToolQueryUser, shared.QueryUserArgs{UserID: a.id, Prompt: "Which starship is the Enterprise-D?"}, &res); err != nil {
			return err
		}
		if len(res.Memories) > 0 && strings.TrimSpace(res.Answer) == "" {
			return errors.New("memories matched but the answer is empty")
		}
		for _, m := range res.Memories {
			if m.Memory.OwnerID != a.id {
				return fmt.Errorf("a memory of %s in a's persona", m.Memory.OwnerID)
			}
			if m.Memory.Permission == shared.PermissionPrivate || m.Memory.Expired {
				return fmt.Errorf("b's question to a's persona used %s memory %q", m.Memory.Permission, m.Memory.Text)
			}
		}
		if len(res.Memories) == 0 {
			return errors.New("no memories used, though a has a public memory about the Enterprise-D")
		}
		return nil
	})

	s.check(name(shared.ToolListPersonas), func() error {
		cursor := ""
		for range 50 {
			var page shared.PersonaPage
			if err := cb.Call(s.ctx, shared.ToolListPersonas, shared.PageArgs{Limit: 100, Cursor: cursor}, &page); err != nil {
				return err
			}
			for _, p := range page.Personas {
				if p.UserID == a.id {
					if p.PublicMemories < 1 {
						return fmt.Errorf("a is listed with %d public memories", p.PublicMemories)
					}
					return nil
				}
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		return errors.New("a, who has a public memory, is not listed")
	})

	s.check(name(shared.ToolDeleteMemory), func() error {
		var res shared.DeleteMemoryResult
		if err := ca.Call(s.ctx, shared.ToolDeleteMemory, shared.MemoryIDArgs{MemoryID: first.ID}, &res); err != nil {
			return err
		}
		if !res.Deleted || res.MemoryID != first.ID {
			return fmt.Errorf("got %+v", res)
		}
		err := ca.Call(s.ctx, shared.ToolDeleteMemory, shared.MemoryIDArgs{MemoryID: first.ID}, nil)
		if codeOf(err) != shared.CodeNotFound {
			return fmt.Errorf("deleting it again: %v, want not_found", err)
		}
		return nil
	})

	s.check(name(shared.ToolDeleteMemories)+" (all or nothing)", func() error {
		if len(batch) != 3 {
			return Skip("submit_memories failed")
		}
		// One id that does not exist: nothing may be deleted.
		bad := []string{batch[0].ID, "00000000-0000-4000-8000-000000000000"}
		if err := ca.Call(s.ctx, shared.ToolDeleteMemories, shared.DeleteMemoriesArgs{MemoryIDs: bad}, nil); err == nil {
			return errors.New("deleting a list with an unknown id succeeded")
		}
		var page shared.MemoryPage
		if err := ca.Call(s.ctx, shared.ToolGetMemories, shared.GetMemoriesArgs{Tags: tags}, &page); err != nil {
			return err
		}
		if !slices.Contains(ids(page.Memories), batch[0].ID) {
			return errors.New("a failed delete_memories deleted some memories")
		}
		var res shared.DeleteMemoriesResult
		if err := ca.Call(s.ctx, shared.ToolDeleteMemories, shared.DeleteMemoriesArgs{MemoryIDs: ids(batch)}, &res); err != nil {
			return err
		}
		if res.Deleted != 3 {
			return fmt.Errorf("deleted %d, want 3", res.Deleted)
		}
		return nil
	})
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
