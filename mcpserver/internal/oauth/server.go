package oauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"

	"picard.dev/mcpserver/internal/activity"
	"picard.dev/mcpserver/internal/user"
	"picard.dev/shared"
)

// Lifetimes.
const (
	AccessTokenTTL  = time.Hour
	RefreshTokenTTL = 30 * 24 * time.Hour
	CodeTTL         = 60 * time.Second
	SessionTTL      = 7 * 24 * time.Hour
	// MaxPersonalTokenTTL bounds personal access tokens, and so how long an
	// operator keeps a previous signing key published after a rotation.
	MaxPersonalTokenTTL = 365 * 24 * time.Hour
	// clockLeeway is the skew allowed when checking exp and iat.
	clockLeeway = 30 * time.Second
	// stateCacheTTL bounds how stale the revocation check of one instance
	// may be about revocations made by another. Under a second, so that
	// with the request that notices it a revocation takes effect on every
	// instance within one second.
	stateCacheTTL = 800 * time.Millisecond
)

// MemoryExporter writes every memory of a user as JSON. The account page
// offers it as a download before deletion; when Options.Exporter is nil the
// page points to the web client's export instead.
type MemoryExporter interface {
	ExportMemories(ctx context.Context, userID uuid.UUID, w io.Writer) error
}

// Options are the dependencies of the authorization server.
type Options struct {
	Issuer   string // MCP_ISSUER_URL, no trailing slash
	Resource string // the protected MCP resource; default Issuer + "/mcp"
	Users    *user.Service
	Store    Store
	Activity activity.Store // optional
	Keys     *SigningKeys
	Logger   *slog.Logger     // optional
	Now      func() time.Time // optional; time.Now
	// Production hides error details from pages.
	Production bool
	// Exporter, optional, serves the memory export offered before account
	// deletion.
	Exporter MemoryExporter
	// Personas, optional, lets users tune their persona on the account
	// page.
	Personas PersonaSettings
	// MetadataClient fetches Client ID Metadata Documents. Nil selects a
	// client that refuses private and loopback addresses at dial time;
	// tests substitute one that reaches their local server.
	MetadataClient *http.Client
	// RegisterPerMinute and LoginPerMinute set the rate limits (per
	// address; logins also per account). Zero selects 10 and 20.
	RegisterPerMinute int
	LoginPerMinute    int
}

// Server is the authorization server. It implements auth.Verifier.
type Server struct {
	issuer   string
	resource string
	users    *user.Service
	store    Store
	activity activity.Store
	keys     *SigningKeys
	log      *slog.Logger
	now      func() time.Time
	prod     bool
	exporter MemoryExporter
	personas PersonaSettings
	secure   bool // cookies get the Secure attribute

	pages map[string]*template.Template

	registerLimit     *keyedLimiter
	loginLimitAddr    *keyedLimiter
	loginLimitAccount *keyedLimiter

	states   stateCache
	verified verifiedTokens
	cimd     *cimdResolver

	metadata []byte
	prm      []byte
}

// New builds the authorization server.
func New(o Options) (*Server, error) {
	switch {
	case o.Issuer == "" || strings.HasSuffix(o.Issuer, "/"):
		return nil, errors.New("oauth: Issuer must be set, without a trailing slash")
	case o.Users == nil || o.Store == nil || o.Keys == nil:
		return nil, errors.New("oauth: Users, Store and Keys are required")
	}
	iu, err := url.Parse(o.Issuer)
	if err != nil || (iu.Scheme != "http" && iu.Scheme != "https") || iu.Host == "" {
		return nil, errors.New("oauth: Issuer must be an absolute http(s) URL")
	}
	if o.Resource == "" {
		o.Resource = o.Issuer + "/mcp"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RegisterPerMinute <= 0 {
		o.RegisterPerMinute = 10
	}
	if o.LoginPerMinute <= 0 {
		o.LoginPerMinute = 20
	}
	s := &Server{
		issuer:   o.Issuer,
		resource: o.Resource,
		users:    o.Users,
		store:    o.Store,
		activity: o.Activity,
		keys:     o.Keys,
		log:      o.Logger.With("component", "oauth"),
		now:      o.Now,
		prod:     o.Production,
		exporter: o.Exporter,
		personas: o.Personas,
		secure:   iu.Scheme == "https",

		registerLimit:     newKeyedLimiter(time.Minute/time.Duration(o.RegisterPerMinute), o.RegisterPerMinute),
		loginLimitAddr:    newKeyedLimiter(time.Minute/time.Duration(o.LoginPerMinute), o.LoginPerMinute),
		loginLimitAccount: newKeyedLimiter(time.Minute/time.Duration(max(o.LoginPerMinute/4, 1)), max(o.LoginPerMinute/2, 1)),
		states:            stateCache{m: map[string]cachedState{}},
	}
	s.cimd = newCIMDResolver(o.MetadataClient, s.now)
	if s.pages, err = parsePages(); err != nil {
		return nil, err
	}
	if err := s.renderMetadata(); err != nil {
		return nil, err
	}
	return s, nil
}

// Issuer returns the issuer identifier.
func (s *Server) Issuer() string { return s.issuer }

// Resource returns the protected resource identifier, $ISSUER/mcp.
func (s *Server) Resource() string { return s.resource }

// ResourceMetadataURL is the RFC 9728 metadata URL of the MCP resource, for
// the resource_metadata parameter of WWW-Authenticate challenges.
func (s *Server) ResourceMetadataURL() string {
	return s.issuer + "/.well-known/oauth-protected-resource/mcp"
}

// Mount registers every route of the authorization server on e.
func (s *Server) Mount(e *echo.Echo) {
	for _, p := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		e.GET(p, s.handleMetadata, cors)
		e.OPTIONS(p, preflight)
	}
	for _, p := range []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"} {
		e.GET(p, s.handleResourceMetadata, cors)
		e.OPTIONS(p, preflight)
	}
	e.GET("/.well-known/jwks.json", s.handleJWKS, cors)
	e.OPTIONS("/.well-known/jwks.json", preflight)

	// Browser-based MCP clients (the Inspector, for one) call these
	// cross-origin; they carry no cookies, so a wildcard origin is safe.
	e.POST("/register", s.handleRegister, cors)
	e.OPTIONS("/register", preflight)
	e.POST("/token", s.handleToken, cors)
	e.OPTIONS("/token", preflight)
	e.POST("/revoke", s.handleRevoke, cors)
	e.OPTIONS("/revoke", preflight)
	e.POST("/introspect", s.handleIntrospect)

	e.GET("/authorize", s.handleAuthorize, pageHeaders)
	e.POST("/authorize", s.handleConsent, pageHeaders)
	e.GET("/login", s.handleLoginPage, pageHeaders)
	e.POST("/login", s.handleLogin, pageHeaders)
	e.GET("/signup", s.handleSignupPage, pageHeaders)
	e.POST("/signup", s.handleSignup, pageHeaders)
	e.POST("/logout", s.handleLogout, pageHeaders)
	e.GET("/account", s.handleAccount, pageHeaders)
	e.POST("/account/profile", s.handleProfile, pageHeaders)
	e.POST("/account/persona", s.handlePersona, pageHeaders)
	e.POST("/account/password", s.handlePassword, pageHeaders)
	e.POST("/account/apps/revoke", s.handleRevokeApp, pageHeaders)
	e.POST("/account/tokens", s.handleCreatePAT, pageHeaders)
	e.POST("/account/tokens/revoke", s.handleRevokePAT, pageHeaders)
	e.GET("/account/export", s.handleExport, pageHeaders)
	e.POST("/account/delete", s.handleDeleteAccount, pageHeaders)
	e.GET("/as/style.css", s.handleCSS)
}

// Run removes expired codes, tokens and sessions every ten minutes until
// ctx ends. The lead runs it beside the HTTP server; without it nothing
// breaks, the tables only grow.
func (s *Server) Run(ctx context.Context) error {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		if err := s.store.DeleteExpired(ctx, s.now()); err != nil && ctx.Err() == nil {
			s.log.Warn("removing expired oauth rows", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Metadata is RFC 8414 authorization server metadata.
type Metadata struct {
	Issuer                                     string   `json:"issuer"`
	AuthorizationEndpoint                      string   `json:"authorization_endpoint"`
	TokenEndpoint                              string   `json:"token_endpoint"`
	RegistrationEndpoint                       string   `json:"registration_endpoint"`
	RevocationEndpoint                         string   `json:"revocation_endpoint"`
	IntrospectionEndpoint                      string   `json:"introspection_endpoint"`
	JWKSURI                                    string   `json:"jwks_uri"`
	ScopesSupported                            []string `json:"scopes_supported"`
	ResponseTypesSupported                     []string `json:"response_types_supported"`
	ResponseModesSupported                     []string `json:"response_modes_supported"`
	GrantTypesSupported                        []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported          []string `json:"token_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethodsSupported     []string `json:"revocation_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthMethodsSupported  []string `json:"introspection_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported              []string `json:"code_challenge_methods_supported"`
	AuthorizationResponseIssParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
	ClientIDMetadataDocumentSupported          bool     `json:"client_id_metadata_document_supported"`
	ServiceDocumentation                       string   `json:"service_documentation,omitempty"`
}

// ResourceMetadata is RFC 9728 protected resource metadata.
type ResourceMetadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers"`
	ScopesSupported        []string `json:"scopes_supported"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	ResourceName           string   `json:"resource_name"`
	JWKSURI                string   `json:"jwks_uri,omitempty"`
}

func (s *Server) renderMetadata() error {
	secretMethods := []string{AuthClientSecretBasic, AuthClientSecretPost}
	m := Metadata{
		Issuer:                                     s.issuer,
		AuthorizationEndpoint:                      s.issuer + "/authorize",
		TokenEndpoint:                              s.issuer + "/token",
		RegistrationEndpoint:                       s.issuer + "/register",
		RevocationEndpoint:                         s.issuer + "/revoke",
		IntrospectionEndpoint:                      s.issuer + "/introspect",
		JWKSURI:                                    s.issuer + "/.well-known/jwks.json",
		ScopesSupported:                            shared.AllScopes,
		ResponseTypesSupported:                     []string{"code"},
		ResponseModesSupported:                     []string{"query"},
		GrantTypesSupported:                        []string{GrantAuthorizationCode, GrantRefreshToken},
		TokenEndpointAuthMethodsSupported:          []string{AuthClientSecretBasic, AuthClientSecretPost, AuthNone},
		RevocationEndpointAuthMethodsSupported:     []string{AuthClientSecretBasic, AuthClientSecretPost, AuthNone},
		IntrospectionEndpointAuthMethodsSupported:  secretMethods,
		CodeChallengeMethodsSupported:              []string{"S256"},
		AuthorizationResponseIssParameterSupported: true,
		ClientIDMetadataDocumentSupported:          true,
	}
	var err error
	if s.metadata, err = jsonBytes(m); err != nil {
		return err
	}
	s.prm, err = jsonBytes(ResourceMetadata{
		Resource:               s.resource,
		AuthorizationServers:   []string{s.issuer},
		ScopesSupported:        shared.AllScopes,
		BearerMethodsSupported: []string{"header"},
		ResourceName:           "Picard memory",
		JWKSURI:                s.issuer + "/.well-known/jwks.json",
	})
	return err
}

func (s *Server) handleMetadata(c *echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.JSONBlob(http.StatusOK, s.metadata)
}

func (s *Server) handleResourceMetadata(c *echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.JSONBlob(http.StatusOK, s.prm)
}

func (s *Server) handleJWKS(c *echo.Context) error {
	// Short caching: after a rotation resource servers must see the new
	// key within minutes.
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.Blob(http.StatusOK, "application/jwk-set+json", s.keys.JWKS())
}

// cors allows any origin on endpoints that use no cookies.
func cors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		c.Response().Header().Set("Access-Control-Allow-Origin", "*")
		c.Response().Header().Set("Access-Control-Expose-Headers", "WWW-Authenticate")
		return next(c)
	}
}

func preflight(c *echo.Context) error {
	h := c.Response().Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, MCP-Protocol-Version")
	h.Set("Access-Control-Max-Age", "600")
	return c.NoContent(http.StatusNoContent)
}

// pageHeaders keeps the pages out of frames (clickjacking of the consent
// button), out of caches, and away from any script.
func pageHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		// same-origin, not no-referrer: under no-referrer browsers send
		// "Origin: null" on form posts, which sameOrigin refuses.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		return next(c)
	}
}

// OAuthError is an RFC 6749 §5.2 error body.
type OAuthError struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func oauthError(c *echo.Context, status int, code, desc string) error {
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	return c.JSON(status, OAuthError{Code: code, Description: desc})
}

// serverError logs err and answers server_error without details.
func (s *Server) serverError(c *echo.Context, err error) error {
	s.log.ErrorContext(c.Request().Context(), "oauth endpoint failed", "path", c.Request().URL.Path, "err", err)
	return oauthError(c, http.StatusInternalServerError, "server_error", "internal error")
}

func noStoreJSON(c *echo.Context, status int, v any) error {
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	return c.JSON(status, v)
}

func (s *Server) record(ctx context.Context, userID uuid.UUID, clientID, action, outcome string) {
	if s.activity == nil {
		return
	}
	if err := s.activity.Record(ctx, activity.Entry{UserID: userID, ClientID: clientID, Action: action, Outcome: outcome, At: s.now().UTC()}); err != nil {
		s.log.WarnContext(ctx, "recording activity", "action", action, "err", err)
	}
}

// randomToken returns 32 random bytes, base64url: 256 bits, which is why a
// plain SHA-256 is enough to store it (no guessing attack to slow down).
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(t string) string {
	h := sha256.Sum256([]byte(t))
	return hex.EncodeToString(h[:])
}

// stateCache remembers for a moment what the database said about a token,
// so a burst of requests with one token costs one lookup per second.
type stateCache struct {
	mu sync.Mutex
	m  map[string]cachedState
}

type cachedState struct {
	at       time.Time
	userID   uuid.UUID
	valid    bool
	identity user.User // the account as it was at that moment
}
