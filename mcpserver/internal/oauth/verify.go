package oauth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"picard.dev/mcpserver/internal/auth"
	"picard.dev/mcpserver/internal/user"
	"picard.dev/shared"
)

var _ auth.Verifier = (*Server)(nil)

// maxTokenBytes bounds what Verify parses; our tokens are well under 1 KiB.
const maxTokenBytes = 8 << 10

// claims are the checked contents of an access token.
type claims struct {
	jti      string
	userID   uuid.UUID
	clientID string
	scopes   []string
	issuedAt time.Time
	expiry   time.Time
}

// parseAccessToken checks signature (by kid), issuer, audience and
// expiry (with 30 s leeway) of a JWT access token.
func (s *Server) parseAccessToken(raw string, checkExpiry bool) (*claims, error) {
	if raw == "" || len(raw) > maxTokenBytes {
		return nil, auth.ErrInvalidToken
	}
	tok, err := jwt.ParseString(raw,
		jwt.WithKeySet(s.keys.public),
		jwt.WithValidate(checkExpiry),
		jwt.WithIssuer(s.issuer),
		jwt.WithAudience(s.resource),
		jwt.WithAcceptableSkew(clockLeeway),
		jwt.WithClock(jwt.ClockFunc(s.now)),
		jwt.WithRequiredClaim("jti"),
		jwt.WithRequiredClaim("sub"),
		jwt.WithRequiredClaim("exp"),
	)
	if err != nil {
		return nil, auth.ErrInvalidToken
	}
	if !checkExpiry {
		// Signature was checked; issuer and audience still must match.
		iss, _ := tok.Issuer()
		aud, _ := tok.Audience()
		if iss != s.issuer || len(aud) == 0 || !containsString(aud, s.resource) {
			return nil, auth.ErrInvalidToken
		}
	}
	var cl claims
	cl.jti, _ = tok.JwtID()
	sub, _ := tok.Subject()
	if cl.userID, err = uuid.Parse(sub); err != nil || cl.jti == "" {
		return nil, auth.ErrInvalidToken
	}
	_ = tok.Get("client_id", &cl.clientID)
	var scope string
	_ = tok.Get("scope", &scope)
	cl.scopes = strings.Fields(scope)
	cl.issuedAt, _ = tok.IssuedAt()
	cl.expiry, _ = tok.Expiration()
	return &cl, nil
}

func containsString(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// Verify checks a bearer token for /mcp and /api: signature (by kid),
// issuer, audience = our resource, expiry with 30 s leeway, not revoked
// (itself or its grant), and the account exists and is enabled. Errors
// wrap auth.ErrInvalidToken; database failures are returned as they are.
func (s *Server) Verify(ctx context.Context, raw string) (*auth.Identity, error) {
	cl, err := s.verifiedClaims(raw)
	if err != nil {
		return nil, err
	}
	st, err := s.tokenState(ctx, cl)
	if err != nil {
		return nil, err
	}
	if !st.valid {
		return nil, auth.ErrInvalidToken
	}
	return &auth.Identity{
		UserID:   cl.userID,
		Email:    st.identity.Email,
		Admin:    st.identity.Admin,
		ClientID: cl.clientID,
		Scopes:   slices.Clone(cl.scopes), // cl is shared through the cache
		TokenID:  cl.jti,
		Expiry:   cl.expiry,
	}, nil
}

// verifiedTokens remembers the claims of access tokens whose signature,
// issuer and audience have been checked, keyed by the token's SHA-256, so
// that a client's every request does not pay for parsing the JWT and an
// ECDSA verification. Only the expiry can change the answer for the same
// bytes (the signing keys of a Server never change); revocation and the
// account's state are checked on every request by tokenState.
type verifiedTokens struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]*claims
}

// maxVerifiedTokens bounds the cache; beyond it, expired entries are
// dropped, and if that is not enough the cache starts over.
const maxVerifiedTokens = 10000

// verifiedClaims is parseAccessToken with expiry checking, through the
// cache of verified tokens.
func (s *Server) verifiedClaims(raw string) (*claims, error) {
	if raw == "" || len(raw) > maxTokenBytes {
		return nil, auth.ErrInvalidToken
	}
	key := sha256.Sum256([]byte(raw))
	now := s.now()
	c := &s.verified
	c.mu.Lock()
	cl, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		if now.After(cl.expiry.Add(clockLeeway)) {
			c.mu.Lock()
			delete(c.m, key)
			c.mu.Unlock()
			return nil, auth.ErrInvalidToken
		}
		return cl, nil
	}
	cl, err := s.parseAccessToken(raw, true)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[[sha256.Size]byte]*claims{}
	}
	if len(c.m) >= maxVerifiedTokens {
		for k, v := range c.m {
			if now.After(v.expiry.Add(clockLeeway)) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxVerifiedTokens {
			clear(c.m)
		}
	}
	c.m[key] = cl
	return cl, nil
}

// tokenState asks the database whether a token is still good, at most once
// per second per token and instance: revocations made by another instance
// are seen within stateCacheTTL, those made by this one at once.
func (s *Server) tokenState(ctx context.Context, cl *claims) (cachedState, error) {
	now := s.now()
	s.states.mu.Lock()
	st, ok := s.states.m[cl.jti]
	s.states.mu.Unlock()
	if ok && now.Sub(st.at) < stateCacheTTL && now.Sub(st.at) >= 0 {
		return st, nil
	}
	st = cachedState{at: now, userID: cl.userID}
	ts, err := s.store.AccessTokenState(ctx, cl.jti)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return st, fmt.Errorf("token state: %w", err)
	case !ts.Revoked:
		u, err := s.users.Get(ctx, cl.userID)
		switch {
		case errors.Is(err, user.ErrNotFound):
		case err != nil:
			return st, fmt.Errorf("token user: %w", err)
		case !u.Disabled:
			st.valid, st.identity = true, *u
		}
	}
	s.states.mu.Lock()
	if len(s.states.m) > 10000 {
		for k, v := range s.states.m {
			if now.Sub(v.at) >= stateCacheTTL {
				delete(s.states.m, k)
			}
		}
	}
	s.states.m[cl.jti] = st
	s.states.mu.Unlock()
	return st, nil
}

// forget drops cached token states that match, after a revocation here.
func (s *Server) forget(match func(jti string, st cachedState) bool) {
	s.states.mu.Lock()
	defer s.states.mu.Unlock()
	for k, v := range s.states.m {
		if match(k, v) {
			delete(s.states.m, k)
		}
	}
}

func (s *Server) revokeGrant(ctx context.Context, g *Grant) error {
	if err := s.store.RevokeGrant(ctx, g.ID, s.now().UTC()); err != nil {
		return err
	}
	// The cache does not know grants; dropping the user's entries is
	// cheap and exact enough.
	s.forget(func(_ string, st cachedState) bool { return st.userID == g.UserID })
	return nil
}

// RevokeUserTokens revokes every access token (personal ones included)
// and every grant, with its refresh tokens, of a user: for disabling an
// account and the admin tool. It returns how many access tokens and grants
// were still live. Sessions are left alone: a disabled account's sessions
// are refused when used.
func (s *Server) RevokeUserTokens(ctx context.Context, userID uuid.UUID) (int, error) {
	n, err := s.store.RevokeUserTokens(ctx, userID, s.now().UTC())
	if err != nil {
		return 0, fmt.Errorf("revoke user tokens: %w", err)
	}
	s.forget(func(_ string, st cachedState) bool { return st.userID == userID })
	return n, nil
}

// ErrInvalidPAT is returned by IssuePersonalToken for bad scopes or lifetimes.
var ErrInvalidPAT = errors.New("invalid personal access token request")

// IssuePersonalToken creates a personal access token for the command line
// (`mcpserver tokens issue`): the same kind of JWT as OAuth access tokens,
// with client_id "pat", revocable and listed on the account page.
func (s *Server) IssuePersonalToken(ctx context.Context, userID uuid.UUID, scopes []string, ttl time.Duration) (string, error) {
	return s.issuePAT(ctx, userID, "command line", scopes, ttl)
}

func (s *Server) issuePAT(ctx context.Context, userID uuid.UUID, name string, scopes []string, ttl time.Duration) (string, error) {
	canon, err := parseScope(strings.Join(scopes, " "))
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: scopes must be among %s", ErrInvalidPAT, strings.Join(shared.AllScopes, ", "))
	case len(canon) == 0:
		return "", fmt.Errorf("%w: at least one scope is required", ErrInvalidPAT)
	case ttl <= 0 || ttl > MaxPersonalTokenTTL:
		return "", fmt.Errorf("%w: the lifetime must be between 1s and %s", ErrInvalidPAT, MaxPersonalTokenTTL)
	}
	u, err := s.users.Get(ctx, userID)
	if err != nil {
		return "", err
	}
	if u.Disabled {
		return "", user.ErrDisabled
	}
	if containsString(canon, shared.ScopeAdmin) && !u.Admin {
		return "", fmt.Errorf("%w: memories:admin needs an administrator account", ErrInvalidPAT)
	}
	tok, _, err := s.issueAccessToken(ctx, userID, PATClientID, canon, nil, KindPersonal, name, ttl)
	if err != nil {
		return "", err
	}
	s.record(ctx, userID, PATClientID, "pat:create", "ok")
	return tok, nil
}
