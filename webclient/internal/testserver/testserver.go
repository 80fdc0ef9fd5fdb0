// Package testserver is a fake MCP server for the web client's tests: a
// minimal OAuth 2.1 authorization server (metadata, registration, an
// authorize endpoint that approves at once, token with PKCE and refresh
// rotation, revocation) and an MCP endpoint built with the go-sdk server,
// implementing the tools the web client calls with the contract's
// visibility rules. It exists so the client side can be tested before and
// independently of the real mcpserver; it is imported only by tests.
package testserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"

	"picard.dev/shared"
)

// Server is the fake. Its exported fields may be changed between requests.
type Server struct {
	*httptest.Server

	// Delay is added to every /mcp request (to test timeouts).
	Delay atomic.Int64 // nanoseconds
	// Down makes every endpoint answer 503.
	Down atomic.Bool

	RefreshCalls  atomic.Int32
	RevokeCalls   atomic.Int32
	RegisterCalls atomic.Int32

	mu        sync.Mutex
	accessTTL time.Duration
	// grantScopes are granted at authorization; empty grants what was asked.
	grantScopes string
	clients     map[string]string     // client id → secret
	codes       map[string]codeGrant  // code → grant
	access      map[string]tokenGrant // access token → grant
	refresh     map[string]tokenGrant // refresh token → grant
	issued      []string              // every token ever issued
	memories    map[string]*shared.Memory
	users       map[string]string // email → user id
	names       map[string]string // user id → name
	// NextUser is the user the authorize endpoint signs in (by email); see SetNextUser.
	NextUser string
}

type codeGrant struct {
	user, client, challenge, redirect, scope string
}

type tokenGrant struct {
	user, client, scope string
	expiry              time.Time
}

// New starts the fake.
func New() *Server {
	s := &Server{
		accessTTL: time.Hour,
		clients:   map[string]string{},
		codes:     map[string]codeGrant{},
		access:    map[string]tokenGrant{},
		refresh:   map[string]tokenGrant{},
		memories:  map[string]*shared.Memory{},
		users:     map[string]string{},
		names:     map[string]string{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", s.metadata)
	mux.HandleFunc("POST /register", s.register)
	mux.HandleFunc("GET /authorize", s.authorize)
	mux.HandleFunc("POST /token", s.token)
	mux.HandleFunc("POST /revoke", s.revoke)
	mux.Handle("/mcp", auth.RequireBearerToken(s.verify, &auth.RequireBearerTokenOptions{})(
		mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.mcpServer() }, &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true})))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path == "/mcp" {
			if d := time.Duration(s.Delay.Load()); d > 0 {
				// Read the body first: the server notices a client that
				// hung up (and cancels r.Context) only once it is reading
				// the connection again, which it does after the body.
				body, err := io.ReadAll(r.Body)
				if err != nil {
					return
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
				select {
				case <-time.After(d):
				case <-r.Context().Done():
					return
				}
			}
		}
		mux.ServeHTTP(w, r)
	}))
	return s
}

// User creates (or finds) a user of the fake server and returns its id.
func (s *Server) User(email, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.users[email]; ok {
		return id
	}
	id := uuid.NewString()
	s.users[email] = id
	s.names[id] = name
	return id
}

// SetAccessTTL sets the lifetime of access tokens issued from now on.
func (s *Server) SetAccessTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accessTTL = d
}

// SetGrantScopes makes authorization grant these scopes instead of the requested ones.
func (s *Server) SetGrantScopes(scopes string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.grantScopes = scopes
}

// SetNextUser chooses the user (by email) the authorize endpoint signs in.
func (s *Server) SetNextUser(email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.NextUser = email
}

// IssueToken gives user a token pair directly, bypassing the flow.
func (s *Server) IssueToken(userID, scope string) (access string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, _ := s.issue(tokenGrant{user: userID, scope: scope})
	return a
}

// LiveTokens returns every unrevoked token string (access and refresh).
func (s *Server) LiveTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for t := range s.access {
		out = append(out, t)
	}
	for t := range s.refresh {
		out = append(out, t)
	}
	return out
}

// IssuedTokens returns every token ever issued, revoked ones included.
func (s *Server) IssuedTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.issued...)
}

// ForgetClients drops every registration, as a reset server would.
func (s *Server) ForgetClients() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients = map[string]string{}
}

// RevokeAll revokes every token.
func (s *Server) RevokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.access = map[string]tokenGrant{}
	s.refresh = map[string]tokenGrant{}
}

// Memories returns a copy of every stored memory.
func (s *Server) Memories() []shared.Memory {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []shared.Memory
	for _, m := range s.memories {
		out = append(out, *m)
	}
	return out
}

func random() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	iss := s.URL
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                         iss,
		"authorization_endpoint":                         iss + "/authorize",
		"token_endpoint":                                 iss + "/token",
		"registration_endpoint":                          iss + "/register",
		"revocation_endpoint":                            iss + "/revoke",
		"code_challenge_methods_supported":               []string{"S256"},
		"authorization_response_iss_parameter_supported": true,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func oauthError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code})
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	s.RegisterCalls.Add(1)
	var req struct {
		RedirectURIs []string `json:"redirect_uris"`
		AuthMethod   string   `json:"token_endpoint_auth_method"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.RedirectURIs) == 0 || req.AuthMethod != "client_secret_basic" {
		oauthError(w, http.StatusBadRequest, "invalid_client_metadata")
		return
	}
	id, secret := uuid.NewString(), random()
	s.mu.Lock()
	s.clients[id] = secret
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"client_id": id, "client_secret": secret, "redirect_uris": req.RedirectURIs})
}

// authorize approves at once for NextUser, as if the user had logged in
// and consented.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	_, known := s.clients[q.Get("client_id")]
	user := s.users[s.NextUser]
	s.mu.Unlock()
	if !known || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("resource") != s.URL+"/mcp" || user == "" {
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	code := random()
	scope := q.Get("scope")
	s.mu.Lock()
	if s.grantScopes != "" {
		scope = s.grantScopes
	}
	s.codes[code] = codeGrant{user: user, client: q.Get("client_id"), challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri"), scope: scope}
	s.mu.Unlock()
	back, _ := url.Parse(q.Get("redirect_uri"))
	v := back.Query()
	v.Set("code", code)
	v.Set("state", q.Get("state"))
	v.Set("iss", s.URL)
	back.RawQuery = v.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound) // #nosec G710 -- a stand-in authorization server for tests
}

func (s *Server) clientAuth(r *http.Request) (string, bool) {
	id, secret, ok := r.BasicAuth()
	if !ok {
		return "", false
	}
	id, _ = url.QueryUnescape(id)
	secret, _ = url.QueryUnescape(secret)
	s.mu.Lock()
	defer s.mu.Unlock()
	want, known := s.clients[id]
	return id, known && want == secret
}

// issue must be called with s.mu held.
func (s *Server) issue(g tokenGrant) (access, refresh string) {
	g.expiry = time.Now().Add(s.accessTTL)
	// A JWT-shaped access token so the client can read its subject.
	payload, _ := json.Marshal(map[string]any{"sub": g.user, "jti": random()})
	access = "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString(payload) + "." + random()
	refresh = random()
	s.access[access] = g
	s.refresh[refresh] = g
	s.issued = append(s.issued, access, refresh)
	return access, refresh
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	client, ok := s.clientAuth(r)
	if !ok {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var g tokenGrant
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		c, ok := s.codes[r.PostForm.Get("code")]
		delete(s.codes, r.PostForm.Get("code"))
		if !ok || c.client != client || c.redirect != r.PostForm.Get("redirect_uri") ||
			oauth2.S256ChallengeFromVerifier(r.PostForm.Get("code_verifier")) != c.challenge ||
			r.PostForm.Get("resource") != s.URL+"/mcp" {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		g = tokenGrant{user: c.user, client: client, scope: c.scope}
	case "refresh_token":
		s.RefreshCalls.Add(1)
		rt := r.PostForm.Get("refresh_token")
		old, ok := s.refresh[rt]
		if !ok || old.client != client {
			oauthError(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		delete(s.refresh, rt) // rotation: each refresh token works once
		g = old
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	access, refresh := s.issue(g)
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": access, "token_type": "Bearer", "expires_in": int(s.accessTTL.Seconds()),
		"refresh_token": refresh, "scope": g.scope,
	})
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.clientAuth(r); !ok {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	s.RevokeCalls.Add(1)
	_ = r.ParseForm()
	tok := r.PostForm.Get("token")
	s.mu.Lock()
	if g, ok := s.refresh[tok]; ok {
		// Revoking a refresh token ends the whole grant.
		for a, ag := range s.access {
			if ag.user == g.user && ag.client == g.client {
				delete(s.access, a)
			}
		}
	}
	delete(s.refresh, tok)
	delete(s.access, tok)
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (s *Server) verify(_ context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.access[token]
	if !ok || time.Now().After(g.expiry) {
		return nil, auth.ErrInvalidToken
	}
	return &auth.TokenInfo{UserID: g.user, Scopes: strings.Fields(g.scope), Expiration: g.expiry}, nil
}

// NewWith serves srv on /mcp without authentication, for tests of how the
// client reads particular server answers.
func NewWith(srv *mcp.Server) *httptest.Server {
	return httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true}))
}
