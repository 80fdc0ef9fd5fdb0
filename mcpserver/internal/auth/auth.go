// Package auth carries the identity of an authenticated request from the
// bearer-token middleware to the handlers of /mcp and /api, and declares
// what a token verifier must provide. The oauth package implements the
// verifier; the mcp and httpapi packages consume identities. Keeping this
// tiny package between them lets neither adapter import the other.
package auth

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/google/uuid"
)

// Identity is who is calling, as proven by an access token.
type Identity struct {
	UserID   uuid.UUID
	Email    string
	Admin    bool // the account is an administrator (scopes still apply)
	ClientID string
	Scopes   []string
	TokenID  string // jti
	Expiry   time.Time
}

// HasScope reports whether the token was granted scope.
func (id *Identity) HasScope(scope string) bool { return slices.Contains(id.Scopes, scope) }

// Errors of token verification. The middleware maps them to 401 with
// error="invalid_token"; messages must not reveal which check failed in
// more detail than a client needs.
var (
	ErrNoToken      = errors.New("no bearer token")
	ErrInvalidToken = errors.New("invalid token")
)

// Verifier checks a raw bearer token (signature, issuer, audience, expiry,
// revocation, account state) and returns the identity it proves.
type Verifier interface {
	Verify(ctx context.Context, token string) (*Identity, error)
}

type identityKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the identity of the request, or nil.
func FromContext(ctx context.Context) *Identity {
	id, _ := ctx.Value(identityKey{}).(*Identity)
	return id
}
