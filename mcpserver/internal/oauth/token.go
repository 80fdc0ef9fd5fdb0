package oauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"picard.dev/mcpserver/internal/user"
)

// TokenResponse is the RFC 6749 §5.1 answer of the token endpoint.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope"`
}

// tokenError is an error of the token, revocation or introspection
// endpoints.
type tokenError struct {
	status int
	code   string
	desc   string
}

func (e *tokenError) Error() string { return e.code + ": " + e.desc }

func invalidRequest(desc string) *tokenError {
	return &tokenError{http.StatusBadRequest, "invalid_request", desc}
}
func invalidGrant(desc string) *tokenError {
	return &tokenError{http.StatusBadRequest, "invalid_grant", desc}
}

var errInvalidClient = &tokenError{http.StatusUnauthorized, "invalid_client", "client authentication failed"}

func (s *Server) writeTokenError(c *echo.Context, err error) error {
	var te *tokenError
	if errors.As(err, &te) {
		if te.code == "invalid_client" && c.Request().Header.Get("Authorization") != "" {
			c.Response().Header().Set("WWW-Authenticate", `Basic realm="picard"`)
		}
		return oauthError(c, te.status, te.code, te.desc)
	}
	return s.serverError(c, err)
}

// readTokenForm reads the form of the token, revocation and introspection
// endpoints, refusing repeated parameters (RFC 6749 §3.2).
func readTokenForm(c *echo.Context) (url.Values, error) {
	form, err := readForm(c)
	if err != nil {
		return nil, invalidRequest(err.Error())
	}
	for k, v := range form {
		if len(v) > 1 {
			return nil, invalidRequest(k + " is repeated")
		}
	}
	return form, nil
}

// authenticateClient identifies the client of a token, revocation or
// introspection request: client_secret_basic, client_secret_post, or a
// public client's bare client_id. Exactly one method may be used.
func (s *Server) authenticateClient(ctx context.Context, r *http.Request, form url.Values) (*Client, error) {
	id, secret := form.Get("client_id"), form.Get("client_secret")
	basicID, basicSecret, basic := r.BasicAuth()
	if h := r.Header.Get("Authorization"); h != "" && !basic {
		return nil, errInvalidClient
	}
	if basic {
		if secret != "" {
			return nil, invalidRequest("use one client authentication method, not several")
		}
		// RFC 6749 §2.3.1: both parts are form-encoded inside Basic.
		var err1, err2 error
		basicID, err1 = url.QueryUnescape(basicID)
		basicSecret, err2 = url.QueryUnescape(basicSecret)
		if err1 != nil || err2 != nil || (id != "" && id != basicID) {
			return nil, errInvalidClient
		}
		id, secret = basicID, basicSecret
		if secret == "" {
			return nil, errInvalidClient
		}
	}
	if id == "" {
		return nil, errInvalidClient
	}
	client, err := s.lookupClient(ctx, id)
	if errors.Is(err, ErrNotFound) || errors.Is(err, errNotCIMD) || err != nil && isCIMDClientID(id) {
		// Compare anyway, so an unknown client costs the same time.
		subtle.ConstantTimeCompare([]byte(hashToken(secret)), []byte(hashToken("")))
		return nil, errInvalidClient
	}
	if err != nil {
		return nil, err
	}
	if client.Public() {
		if secret != "" {
			return nil, errInvalidClient
		}
		return client, nil
	}
	if secret == "" || subtle.ConstantTimeCompare([]byte(hashToken(secret)), []byte(client.SecretHash)) != 1 {
		return nil, errInvalidClient
	}
	return client, nil
}

func (s *Server) handleToken(c *echo.Context) error {
	ctx := c.Request().Context()
	form, err := readTokenForm(c)
	if err != nil {
		return s.writeTokenError(c, err)
	}
	client, err := s.authenticateClient(ctx, c.Request(), form)
	if err != nil {
		return s.writeTokenError(c, err)
	}
	if r := form.Get("resource"); r != "" && r != s.resource {
		return s.writeTokenError(c, &tokenError{http.StatusBadRequest, "invalid_target", "the only resource of this server is " + s.resource})
	}
	var resp *TokenResponse
	switch gt := form.Get("grant_type"); gt {
	case GrantAuthorizationCode:
		resp, err = s.exchangeCode(ctx, client, form)
	case GrantRefreshToken:
		if !hasGrantType(client, GrantRefreshToken) {
			err = &tokenError{http.StatusBadRequest, "unauthorized_client", "the client did not register the refresh_token grant"}
		} else {
			resp, err = s.refresh(ctx, client, form)
		}
	case "":
		err = invalidRequest("grant_type is missing")
	default:
		err = &tokenError{http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token"}
	}
	if err != nil {
		return s.writeTokenError(c, err)
	}
	return noStoreJSON(c, http.StatusOK, resp)
}

func hasGrantType(c *Client, gt string) bool {
	for _, g := range c.GrantTypes {
		if g == gt {
			return true
		}
	}
	return false
}

func (s *Server) exchangeCode(ctx context.Context, client *Client, form url.Values) (*TokenResponse, error) {
	code, verifier := form.Get("code"), form.Get("code_verifier")
	switch {
	case code == "" || len(code) > 200:
		return nil, invalidRequest("code is missing or malformed")
	case verifier == "":
		return nil, invalidRequest("code_verifier is missing (PKCE is required)")
	case !validVerifier(verifier):
		return nil, invalidRequest("code_verifier must be 43 to 128 unreserved characters")
	}
	now := s.now().UTC()
	// Redeeming first, atomically in the database, makes the code single
	// use even under concurrent requests to several instances; checks
	// that fail afterwards leave it spent, so a stolen code cannot be
	// retried with guessed verifiers.
	g, err := s.store.RedeemCode(ctx, hashToken(code), now)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, invalidGrant("the authorization code is invalid")
	case errors.Is(err, ErrAlreadyUsed):
		// RFC 6749 §4.1.2: a replayed code revokes what it produced.
		s.log.WarnContext(ctx, "authorization code replayed; revoking its grant", "client_id", client.ID, "grant", g.ID)
		if err := s.revokeGrant(ctx, g); err != nil {
			return nil, err
		}
		s.record(ctx, g.UserID, g.ClientID, "token:code_replay", "revoked")
		return nil, invalidGrant("the authorization code was already used")
	case err != nil:
		return nil, err
	}
	// A revoked grant is not checked here: the winner of a redemption race
	// still gets its answer (exactly one redemption succeeds), but if a
	// replay revoked the grant meanwhile, Verify and refresh refuse the
	// tokens, because they consult the grant, not just the token.
	switch {
	case g.ClientID != client.ID:
		return nil, invalidGrant("the authorization code was issued to another client")
	case !now.Before(g.CodeExpiresAt):
		return nil, invalidGrant("the authorization code expired")
	case form.Get("redirect_uri") != g.RedirectURI:
		return nil, invalidGrant("redirect_uri differs from the authorization request")
	case !pkceMatches(verifier, g.CodeChallenge):
		return nil, invalidGrant("code_verifier does not match the code_challenge")
	case form.Get("resource") != "" && g.Resource != "" && form.Get("resource") != g.Resource:
		return nil, &tokenError{http.StatusBadRequest, "invalid_target", "resource differs from the authorization request"}
	}
	u, err := s.users.Get(ctx, g.UserID)
	if errors.Is(err, user.ErrNotFound) || err == nil && u.Disabled {
		return nil, invalidGrant("the account is not available")
	}
	if err != nil {
		return nil, err
	}
	resp, err := s.issueTokens(ctx, client, g, strings.Fields(g.Scope))
	if err != nil {
		return nil, err
	}
	s.record(ctx, g.UserID, client.ID, "token:issue", "ok")
	return resp, nil
}

func (s *Server) refresh(ctx context.Context, client *Client, form url.Values) (*TokenResponse, error) {
	raw := form.Get("refresh_token")
	if raw == "" || len(raw) > 200 {
		return nil, invalidRequest("refresh_token is missing or malformed")
	}
	hash := hashToken(raw)
	rt, err := s.store.RefreshToken(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		return nil, invalidGrant("the refresh token is invalid")
	}
	if err != nil {
		return nil, err
	}
	// Checked before rotating, so another client presenting a stolen
	// token cannot spend it.
	if rt.ClientID != client.ID {
		return nil, invalidGrant("the refresh token was issued to another client")
	}
	now := s.now().UTC()
	rt, err = s.store.RotateRefreshToken(ctx, hash, now)
	if errors.Is(err, ErrAlreadyUsed) {
		// Reuse of a rotated token: either the client or a thief holds a
		// stale copy. Revoke the whole family (OAuth 2.1 §4.3.1).
		s.log.WarnContext(ctx, "rotated refresh token reused; revoking its grant", "client_id", client.ID, "grant", rt.GrantID)
		g, gerr := s.store.Grant(ctx, rt.GrantID)
		if gerr == nil {
			gerr = s.revokeGrant(ctx, g)
		}
		if gerr != nil && !errors.Is(gerr, ErrNotFound) {
			return nil, gerr
		}
		s.record(ctx, rt.UserID, rt.ClientID, "token:refresh_reuse", "revoked")
		return nil, invalidGrant("the refresh token was already used")
	}
	if errors.Is(err, ErrNotFound) {
		return nil, invalidGrant("the refresh token is invalid")
	}
	if err != nil {
		return nil, err
	}
	if !now.Before(rt.ExpiresAt) {
		return nil, invalidGrant("the refresh token expired")
	}
	g, err := s.store.Grant(ctx, rt.GrantID)
	if errors.Is(err, ErrNotFound) {
		return nil, invalidGrant("the authorization was revoked")
	}
	if err != nil {
		return nil, err
	}
	if g.RevokedAt != nil {
		return nil, invalidGrant("the authorization was revoked")
	}
	u, err := s.users.Get(ctx, rt.UserID)
	if errors.Is(err, user.ErrNotFound) || err == nil && u.Disabled {
		return nil, invalidGrant("the account is not available")
	}
	if err != nil {
		return nil, err
	}
	scopes := strings.Fields(rt.Scope)
	if req := form.Get("scope"); req != "" {
		asked, err := parseScope(req)
		if err != nil || !subset(asked, scopes) {
			return nil, &tokenError{http.StatusBadRequest, "invalid_scope", "a refresh can only narrow the granted scope"}
		}
		scopes = asked
	}
	return s.issueTokens(ctx, client, g, scopes)
}

// issueTokens mints an access token with scopes, and a new refresh token
// for the grant's full scope when the client uses refresh tokens.
func (s *Server) issueTokens(ctx context.Context, client *Client, g *Grant, scopes []string) (*TokenResponse, error) {
	gid := g.ID
	access, _, err := s.issueAccessToken(ctx, g.UserID, client.ID, scopes, &gid, KindOAuth, "", AccessTokenTTL)
	if err != nil {
		return nil, err
	}
	resp := &TokenResponse{AccessToken: access, TokenType: "Bearer", ExpiresIn: int64(AccessTokenTTL / time.Second), Scope: joinScope(scopes)}
	if hasGrantType(client, GrantRefreshToken) {
		raw := randomToken()
		now := s.now().UTC()
		if err := s.store.CreateRefreshToken(ctx, &RefreshToken{
			Hash: hashToken(raw), GrantID: g.ID, UserID: g.UserID, ClientID: client.ID,
			Scope: g.Scope, CreatedAt: now, ExpiresAt: now.Add(RefreshTokenTTL),
		}); err != nil {
			return nil, err
		}
		resp.RefreshToken = raw
	}
	return resp, nil
}

// issueAccessToken signs a JWT access token (RFC 9068 profile) and records
// its jti, so it can be revoked.
func (s *Server) issueAccessToken(ctx context.Context, userID uuid.UUID, clientID string, scopes []string, grantID *uuid.UUID, kind, name string, ttl time.Duration) (string, *AccessToken, error) {
	now := s.now().UTC().Truncate(time.Second)
	rec := &AccessToken{
		JTI: uuid.NewString(), GrantID: grantID, UserID: userID, ClientID: clientID, Kind: kind, Name: name,
		Scope: joinScope(scopes), CreatedAt: now, ExpiresAt: now.Add(ttl),
	}
	tok, err := jwt.NewBuilder().
		Issuer(s.issuer).
		Subject(userID.String()).
		Audience([]string{s.resource}).
		IssuedAt(now).
		Expiration(rec.ExpiresAt).
		JwtID(rec.JTI).
		Claim("client_id", clientID).
		Claim("scope", rec.Scope).
		Build()
	if err != nil {
		return "", nil, fmt.Errorf("build access token: %w", err)
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.TypeKey, "at+jwt"); err != nil {
		return "", nil, err
	}
	k := s.keys.signer()
	signed, err := jwt.Sign(tok, jwt.WithKey(k.alg, k.private, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", nil, fmt.Errorf("sign access token: %w", err)
	}
	// Recorded before it is handed out: a token without a row would be
	// refused by Verify anyway.
	if err := s.store.CreateAccessToken(ctx, rec); err != nil {
		return "", nil, err
	}
	return string(signed), rec, nil
}
