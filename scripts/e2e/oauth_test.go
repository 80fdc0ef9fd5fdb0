package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	sdkauth "github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"

	"picard.dev/shared/pgtest"
)

// TestOAuthFlowWithGoSDKClient is issue 3's acceptance test: the go-sdk MCP
// client, configured as a native MCP client (public client, loopback
// redirect URI, refresh tokens), connects to a real mcpserver knowing only
// its /mcp URL. It discovers the authorization server from the 401,
// registers itself, sends the user through login (or sign-up) and consent
// — submitted here the way a browser submits them — receives the code on
// its loopback listener, exchanges it, lists and calls tools, refreshes
// its token after "expiry" and goes on working; the rotated refresh token
// is dead afterwards.
func TestOAuthFlowWithGoSDKClient(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		srv := startMCP(t, nil)
		runSDKFlow(t, srv, true)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		dsn := pgtest.NewDatabase(t)
		srv := startMCP(t, map[string]string{"MCP_DATABASE_URL": dsn})
		runSDKFlow(t, srv, false)
	})
}

// clientLog records the MCP client's HTTP traffic: method, path, status,
// and the grant type of token requests.
type clientLog struct {
	base http.RoundTripper
	mu   sync.Mutex
	reqs []string
}

func (l *clientLog) RoundTrip(req *http.Request) (*http.Response, error) {
	entry := req.Method + " " + req.URL.Path
	if req.Method == http.MethodPost && req.URL.Path == "/token" && req.Body != nil {
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		entry += " grant_type=" + form.Get("grant_type")
	}
	resp, err := l.base.RoundTrip(req)
	if err == nil {
		entry += fmt.Sprintf(" → %d", resp.StatusCode)
		if resp.StatusCode == http.StatusUnauthorized {
			entry += " " + resp.Header.Get("WWW-Authenticate")
		}
	}
	l.mu.Lock()
	l.reqs = append(l.reqs, entry)
	l.mu.Unlock()
	return resp, err
}

func (l *clientLog) entries() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.reqs...)
}

// expirableSource is the token source the handler uses: oauth2's own
// refreshing source, which the test can make believe its access token has
// expired (an hour is too long to wait).
type expirableSource struct {
	ctx context.Context
	cfg *oauth2.Config

	mu   sync.Mutex
	src  oauth2.TokenSource
	last *oauth2.Token
}

func (s *expirableSource) Token() (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, err := s.src.Token()
	if err == nil {
		s.last = tok
	}
	return tok, err
}

func (s *expirableSource) current() *oauth2.Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// expire makes the next Token call refresh; it returns the token it had.
func (s *expirableSource) expire() *oauth2.Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.last
	stale := old
	stale.Expiry = time.Now().Add(-time.Minute)
	s.src = s.cfg.TokenSource(s.ctx, &stale)
	return &old
}

func runSDKFlow(t *testing.T, srv *mcpServer, signUpDuringFlow bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const (
		email    = "captain@example.com"
		password = "make-it-so-1701"
	)
	browser := newFormBrowser(t)
	if !signUpDuringFlow {
		// The account exists before the client shows up.
		p := browser.get(srv.URL + "/signup")
		p = browser.submit(p, browser.form(p, "/signup"), url.Values{
			"name": {"Jean-Luc"}, "email": {email}, "password": {password}, "password_confirm": {password},
		})
		if p.Status != http.StatusOK {
			t.Fatalf("signing up at mcpserver: %d %s", p.Status, p.URL)
		}
		// A fresh browser, so the flow has to show the login page.
		browser = newFormBrowser(t)
	}

	// The client's loopback listener, as a native MCP client runs one.
	type callback struct{ query url.Values }
	callbacks := make(chan callback, 1)
	loopback := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		select {
		case callbacks <- callback{r.URL.Query()}:
		default:
		}
		fmt.Fprintln(w, "Authorization complete; you can close this window.")
	}))
	defer loopback.Close()
	redirectURI := loopback.URL + "/callback"

	var consentPage string
	fetcher := func(ctx context.Context, args *sdkauth.AuthorizationArgs) (res *sdkauth.AuthorizationResult, err error) {
		defer recoverFlow(&err)
		b := browser.inCallback()
		p := b.get(args.URL)
		if p.URL.Path != "/login" {
			return nil, fmt.Errorf("authorization URL led to %s (status %d), want the login page", p.URL, p.Status)
		}
		if signUpDuringFlow {
			// No account yet: follow the page's own "Create one" link.
			m := regexp.MustCompile(`href="(/signup\?[^"]*)"`).FindStringSubmatch(p.Body)
			if m == nil {
				return nil, fmt.Errorf("login page has no sign-up link:\n%s", p.Body)
			}
			link, err := p.URL.Parse(htmlUnescape(m[1]))
			if err != nil {
				return nil, err
			}
			p = b.get(link.String())
			p = b.submit(p, b.form(p, "/signup"), url.Values{
				"name": {"Jean-Luc"}, "email": {email}, "password": {password}, "password_confirm": {password},
			})
		} else {
			p = b.submit(p, b.form(p, "/login"), url.Values{"email": {email}, "password": {password}})
		}
		if p.URL.Path != "/authorize" || p.Status != http.StatusOK {
			return nil, fmt.Errorf("after login: %s (status %d), want the consent page:\n%s", p.URL, p.Status, p.Body)
		}
		consentPage = p.Body
		f := b.form(p, "/authorize")
		if !slices.Contains(f.Buttons["decision"], "approve") {
			return nil, fmt.Errorf("consent form has no approve button: %v", f.Buttons)
		}
		if f.Values.Get("csrf_token") == "" {
			return nil, fmt.Errorf("consent form has no CSRF token")
		}
		p = b.submit(p, f, url.Values{"decision": {"approve"}})
		if p.URL.String() == "" || !strings.HasPrefix(p.URL.String(), redirectURI+"?") {
			return nil, fmt.Errorf("consent led to %s (status %d), want the loopback redirect URI", p.URL, p.Status)
		}
		select {
		case cb := <-callbacks:
			return &sdkauth.AuthorizationResult{Code: cb.query.Get("code"), State: cb.query.Get("state"), Iss: cb.query.Get("iss")}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}

	log := &clientLog{base: http.DefaultTransport.(*http.Transport).Clone()}
	httpClient := &http.Client{Transport: log, Timeout: 60 * time.Second}
	var (
		source   *expirableSource
		clientID string
	)
	handler, err := sdkauth.NewAuthorizationCodeHandler(&sdkauth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &sdkauth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			ClientName:              "Picard e2e go-sdk client",
			RedirectURIs:            []string{redirectURI},
			GrantTypes:              []string{"authorization_code", "refresh_token"},
			ResponseTypes:           []string{"code"},
			TokenEndpointAuthMethod: "none",
		}},
		AuthorizationCodeFetcher: fetcher,
		RequestRefreshToken:      true,
		Client:                   httpClient,
		NewTokenSource: func(ctx context.Context, cfg *oauth2.Config, tok *oauth2.Token) (oauth2.TokenSource, error) {
			clientID = cfg.ClientID
			source = &expirableSource{ctx: ctx, cfg: cfg, src: cfg.TokenSource(ctx, tok), last: tok}
			return source, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	client := mcp.NewClient(&mcp.Implementation{Name: "picard-e2e", Version: "test"}, nil)
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:     srv.URL + "/mcp",
		HTTPClient:   httpClient,
		OAuthHandler: handler,
		MaxRetries:   -1,
	}, nil)
	if err != nil {
		t.Fatalf("connecting with OAuth: %v\nrequests:\n%s", err, strings.Join(log.entries(), "\n"))
	}
	defer session.Close()

	// The flow went the way the MCP authorization chapter describes.
	reqs := log.entries()
	t.Logf("client requests:\n%s", strings.Join(reqs, "\n"))
	if len(reqs) == 0 || !strings.HasPrefix(reqs[0], "POST /mcp → 401") || !strings.Contains(reqs[0], `resource_metadata="`) {
		t.Errorf("first request: want POST /mcp → 401 with resource_metadata, got %q", reqs[0])
	}
	for _, want := range []string{"GET /.well-known/oauth-protected-resource", "GET /.well-known/oauth-authorization-server", "POST /register → 201", "POST /token grant_type=authorization_code → 200"} {
		if !slices.ContainsFunc(reqs, func(r string) bool { return strings.HasPrefix(r, want) }) {
			t.Errorf("no request %q", want)
		}
	}
	if _, err := uuid.Parse(clientID); err != nil {
		t.Errorf("client_id %q is not a UUID", clientID)
	}
	// The consent page names the client and where it will send the user.
	for _, want := range []string{"Picard e2e go-sdk client", "127.0.0.1", "memories:write"} {
		if !strings.Contains(consentPage, want) {
			t.Errorf("consent page does not mention %q", want)
		}
	}

	first := source.current()
	checkAccessToken(t, first, srv.URL, clientID)
	if first.RefreshToken == "" {
		t.Fatal("no refresh token issued")
	}

	tools, err := session.ListTools(ctx, nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	for _, want := range []string{"submit_memory", "query_memory", "get_memories", "query_user"} {
		if !slices.Contains(names, want) {
			t.Errorf("tools/list lacks %s: %v", want, names)
		}
	}

	var mem struct {
		ID      string `json:"id"`
		OwnerID string `json:"owner_id"`
		Text    string `json:"text"`
	}
	callTool(ctx, t, session, "submit_memory", map[string]any{
		"text": "The captain takes his tea as Earl Grey, hot.", "tags": []string{"e2e", "tea"},
	}, &mem)
	if mem.ID == "" || mem.OwnerID == "" {
		t.Fatalf("submit_memory returned %+v", mem)
	}
	if sub := jwtClaims(t, first.AccessToken)["sub"]; sub != mem.OwnerID {
		t.Errorf("memory owner %s is not the token's subject %v", mem.OwnerID, sub)
	}
	queryFinds(ctx, t, session, "Earl Grey tea", mem.ID)

	// The access token "expires": the next call refreshes through the
	// token endpoint and goes on working with a rotated pair.
	old := source.expire()
	queryFinds(ctx, t, session, "how does the captain like tea", mem.ID)
	now := source.current()
	if now.AccessToken == old.AccessToken || now.RefreshToken == "" || now.RefreshToken == old.RefreshToken {
		t.Errorf("refresh did not rotate the pair (access changed %v, refresh changed %v)",
			now.AccessToken != old.AccessToken, now.RefreshToken != old.RefreshToken)
	}
	checkAccessToken(t, now, srv.URL, clientID)
	if !slices.ContainsFunc(log.entries(), func(r string) bool {
		return strings.HasPrefix(r, "POST /token grant_type=refresh_token → 200")
	}) {
		t.Errorf("no successful refresh_token grant in:\n%s", strings.Join(log.entries(), "\n"))
	}
	if n := countPrefix(log.entries(), "POST /register"); n != 1 {
		t.Errorf("the client registered %d times, want once", n)
	}

	// Reusing the rotated refresh token is refused, and burns the family.
	if code, body := refreshGrant(ctx, t, srv.URL, clientID, old.RefreshToken); code != http.StatusBadRequest || !strings.Contains(body, "invalid_grant") {
		t.Errorf("reusing a rotated refresh token: %d %s, want 400 invalid_grant", code, body)
	}
	if code, body := refreshGrant(ctx, t, srv.URL, clientID, now.RefreshToken); code != http.StatusBadRequest || !strings.Contains(body, "invalid_grant") {
		t.Errorf("current refresh token after reuse was detected: %d %s, want 400 invalid_grant (family revoked)", code, body)
	}
}

func countPrefix(list []string, prefix string) int {
	n := 0
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#39;", "'", "&quot;", `"`, "&lt;", "<", "&gt;", ">").Replace(s)
}

// callTool calls a tool and decodes its structured result into out.
func callTool(ctx context.Context, t *testing.T, s *mcp.ClientSession, name string, args map[string]any, out any) {
	t.Helper()
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if res.IsError {
		var msg []string
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				msg = append(msg, tc.Text)
			}
		}
		t.Fatalf("%s: tool error: %s", name, strings.Join(msg, "; "))
	}
	raw, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("%s: decoding %s: %v", name, raw, err)
	}
}

func queryFinds(ctx context.Context, t *testing.T, s *mcp.ClientSession, query, id string) {
	t.Helper()
	var res struct {
		Results []struct {
			Memory struct {
				ID string `json:"id"`
			} `json:"memory"`
			Score float64 `json:"score"`
		} `json:"results"`
	}
	callTool(ctx, t, s, "query_memory", map[string]any{"query": query, "limit": 5}, &res)
	if len(res.Results) == 0 || res.Results[0].Memory.ID != id {
		t.Errorf("query_memory %q: want %s first, got %+v", query, id, res.Results)
	}
}

// jwtClaims decodes (without verifying) the payload of a JWT.
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWT: %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	return claims
}

func checkAccessToken(t *testing.T, tok *oauth2.Token, issuer, clientID string) {
	t.Helper()
	c := jwtClaims(t, tok.AccessToken)
	aud := fmt.Sprint(c["aud"])
	if c["iss"] != issuer || !strings.Contains(aud, issuer+"/mcp") || c["client_id"] != clientID {
		t.Errorf("access token claims: iss %v aud %v client_id %v; want %s, %s/mcp, %s", c["iss"], c["aud"], c["client_id"], issuer, issuer, clientID)
	}
	scope := fmt.Sprint(c["scope"])
	for _, want := range []string{"memories:read", "memories:write"} {
		if !strings.Contains(scope, want) {
			t.Errorf("access token scope %q lacks %s", scope, want)
		}
	}
	if exp, ok := c["exp"].(float64); !ok || time.Until(time.Unix(int64(exp), 0)) > time.Hour+time.Minute {
		t.Errorf("access token exp %v: want at most an hour", c["exp"])
	}
	if scope := fmt.Sprint(tok.Extra("scope")); scope == "" || scope == "<nil>" {
		t.Errorf("token response has no scope")
	}
}

// refreshGrant is a refresh_token grant of the public client, sent by hand.
func refreshGrant(ctx context.Context, t *testing.T, issuer, clientID, refresh string) (int, string) {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {clientID}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, issuer+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
