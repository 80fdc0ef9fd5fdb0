package oauth

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
)

// Errors a Store returns.
var (
	// ErrNotFound: no such row (or it belongs to someone else).
	ErrNotFound = errors.New("oauth: not found")
	// ErrAlreadyUsed: an authorization code or refresh token was presented
	// again after its single use. The store returns it together with the
	// row, so the caller can revoke the grant it belongs to.
	ErrAlreadyUsed = errors.New("oauth: already used")
)

// Token endpoint authentication methods.
const (
	AuthNone              = "none"
	AuthClientSecretBasic = "client_secret_basic"
	AuthClientSecretPost  = "client_secret_post"
)

// Grant types.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
)

// PATClientID is the client_id claim of personal access tokens.
const PATClientID = "pat"

// Client is a registered OAuth client. Clients identified by a Client ID
// Metadata Document are not stored; they are fetched and cached.
type Client struct {
	ID                      string // a UUID, or an https URL for metadata-document clients
	SecretHash              string // hex SHA-256 of the secret; empty for public clients
	Name                    string
	RedirectURIs            []string
	GrantTypes              []string
	TokenEndpointAuthMethod string
	Scope                   string // space-separated scopes it may ask for; empty: every scope
	ClientURI               string
	ApplicationType         string // web or native
	CreatedAt               time.Time
}

// Public reports whether the client has no secret.
func (c *Client) Public() bool { return c.TokenEndpointAuthMethod == AuthNone }

// Grant is one authorization a user gave a client: it starts as an
// authorization code and, once the code is redeemed, is the family every
// access and refresh token issued from it belongs to. Revoking the grant
// revokes the whole family.
type Grant struct {
	ID            uuid.UUID
	CodeHash      string // hex SHA-256 of the authorization code
	UserID        uuid.UUID
	ClientID      string
	RedirectURI   string // as sent to /authorize (may be empty when the client has one)
	Scope         string
	Resource      string
	CodeChallenge string
	CodeExpiresAt time.Time
	CodeUsedAt    *time.Time
	RevokedAt     *time.Time
	CreatedAt     time.Time
}

// Token kinds of an AccessToken row.
const (
	KindOAuth    = "oauth"
	KindPersonal = "pat"
)

// AccessToken is the record of an issued JWT access token, kept so that it
// can be revoked by its jti and personal access tokens can be listed.
type AccessToken struct {
	JTI       string
	GrantID   *uuid.UUID // nil for personal access tokens
	UserID    uuid.UUID
	ClientID  string
	Kind      string // KindOAuth or KindPersonal
	Name      string // personal access tokens: the name the user gave it
	Scope     string
	ExpiresAt time.Time
	CreatedAt time.Time
	RevokedAt *time.Time
}

// RefreshToken is an opaque refresh token, stored only as a hash.
type RefreshToken struct {
	Hash      string // hex SHA-256 of the token
	GrantID   uuid.UUID
	UserID    uuid.UUID
	ClientID  string
	Scope     string
	ExpiresAt time.Time
	CreatedAt time.Time
	UsedAt    *time.Time // set when rotated
}

// Consent remembers that a user approved a client for a set of scopes, so
// the consent page is not shown again for the same or a smaller set.
type Consent struct {
	UserID    uuid.UUID
	ClientID  string
	Scope     string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Session is a login session of the authorization server's pages.
type Session struct {
	IDHash    string // hex SHA-256 of the cookie value
	UserID    uuid.UUID
	CSRFToken string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// TokenState is what Verify needs to know about a jti beyond its signature.
type TokenState struct {
	Revoked bool // the token or its grant was revoked
}

// Store keeps clients, grants, tokens, consents and sessions. Methods that
// decide a race (RedeemCode, RotateRefreshToken) must do so atomically in
// the database, so several server instances agree.
type Store interface {
	CreateClient(ctx context.Context, c *Client) error
	// Client returns ErrNotFound for an unknown id.
	Client(ctx context.Context, id string) (*Client, error)

	CreateGrant(ctx context.Context, g *Grant) error
	// RedeemCode marks the code of the grant with codeHash used at t, if it
	// was unused. It returns the grant; ErrAlreadyUsed (with the grant) when
	// the code had been used before, ErrNotFound when there is no such code.
	RedeemCode(ctx context.Context, codeHash string, t time.Time) (*Grant, error)
	Grant(ctx context.Context, id uuid.UUID) (*Grant, error)
	// RevokeGrant marks the grant revoked; its access and refresh tokens are
	// refused from then on.
	RevokeGrant(ctx context.Context, id uuid.UUID, t time.Time) error
	// RevokeClientGrants revokes every grant of user to client.
	RevokeClientGrants(ctx context.Context, userID uuid.UUID, clientID string, t time.Time) error

	CreateAccessToken(ctx context.Context, a *AccessToken) error
	AccessToken(ctx context.Context, jti string) (*AccessToken, error)
	// AccessTokenState reports whether the token or its grant is revoked;
	// ErrNotFound when no such jti was issued (or its user was deleted).
	AccessTokenState(ctx context.Context, jti string) (TokenState, error)
	RevokeAccessToken(ctx context.Context, jti string, t time.Time) error
	// PersonalTokens lists a user's personal access tokens, newest first,
	// including revoked and expired ones the housekeeping has not removed.
	PersonalTokens(ctx context.Context, userID uuid.UUID) ([]*AccessToken, error)

	CreateRefreshToken(ctx context.Context, r *RefreshToken) error
	// RotateRefreshToken marks the token used at t if it was unused and
	// returns it; ErrAlreadyUsed (with the token) when it had been used,
	// ErrNotFound when unknown.
	RotateRefreshToken(ctx context.Context, hash string, t time.Time) (*RefreshToken, error)
	RefreshToken(ctx context.Context, hash string) (*RefreshToken, error)

	// RevokeUserTokens revokes every grant and access token of the user
	// and returns how many were not revoked before.
	RevokeUserTokens(ctx context.Context, userID uuid.UUID, t time.Time) (int, error)

	Consent(ctx context.Context, userID uuid.UUID, clientID string) (*Consent, error)
	// SaveConsent inserts or replaces the consent of (UserID, ClientID).
	SaveConsent(ctx context.Context, c *Consent) error
	DeleteConsent(ctx context.Context, userID uuid.UUID, clientID string) error
	// Consents lists a user's consents, newest first.
	Consents(ctx context.Context, userID uuid.UUID) ([]*Consent, error)

	CreateSession(ctx context.Context, s *Session) error
	Session(ctx context.Context, idHash string) (*Session, error)
	DeleteSession(ctx context.Context, idHash string) error
	// DeleteUserSessions ends every session of the user except the one
	// whose hash is keep (which may be empty).
	DeleteUserSessions(ctx context.Context, userID uuid.UUID, keep string) error

	// DeleteExpired removes codes, tokens and sessions that expired before
	// t and can no longer matter (revoked grants are kept while any of
	// their tokens could still be presented).
	DeleteExpired(ctx context.Context, t time.Time) error
}
