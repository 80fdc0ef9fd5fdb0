package oauth

import (
	"context"
	"errors"
	"net/http"

	"github.com/labstack/echo/v5"

	"picard.dev/mcpserver/internal/auth"
)

// handleRevoke is RFC 7009 token revocation. A client can revoke only its
// own tokens; anything else (unknown, expired, another client's) is
// answered 200 as well, so the endpoint reveals nothing.
func (s *Server) handleRevoke(c *echo.Context) error {
	ctx := c.Request().Context()
	form, err := readTokenForm(c)
	if err != nil {
		return s.writeTokenError(c, err)
	}
	client, err := s.authenticateClient(ctx, c.Request(), form)
	if err != nil {
		return s.writeTokenError(c, err)
	}
	token := form.Get("token")
	if token == "" {
		return s.writeTokenError(c, invalidRequest("token is missing"))
	}
	if err := s.revokeToken(ctx, client, token, form.Get("token_type_hint")); err != nil {
		return s.serverError(c, err)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.NoContent(http.StatusOK)
}

func (s *Server) revokeToken(ctx context.Context, client *Client, token, hint string) error {
	tryRefresh := func() (bool, error) {
		if len(token) > 200 {
			return false, nil
		}
		rt, err := s.store.RefreshToken(ctx, hashToken(token))
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		if err != nil || rt.ClientID != client.ID {
			return err == nil, err
		}
		// Revoking a refresh token revokes its grant and with it the
		// access tokens issued from it (RFC 7009 §2.1).
		g, err := s.store.Grant(ctx, rt.GrantID)
		if errors.Is(err, ErrNotFound) {
			return true, nil
		}
		if err == nil {
			err = s.revokeGrant(ctx, g)
		}
		if err == nil {
			s.record(ctx, rt.UserID, client.ID, "token:revoke", "ok")
		}
		return true, err
	}
	tryAccess := func() (bool, error) {
		cl, err := s.parseAccessToken(token, false)
		if err != nil {
			return false, nil
		}
		rec, err := s.store.AccessToken(ctx, cl.jti)
		if errors.Is(err, ErrNotFound) {
			return true, nil
		}
		if err != nil || rec.ClientID != client.ID {
			return true, err
		}
		if err := s.store.RevokeAccessToken(ctx, cl.jti, s.now().UTC()); err != nil {
			return true, err
		}
		s.forget(func(jti string, _ cachedState) bool { return jti == cl.jti })
		s.record(ctx, rec.UserID, client.ID, "token:revoke", "ok")
		return true, nil
	}
	order := []func() (bool, error){tryAccess, tryRefresh}
	if hint == "refresh_token" {
		order = []func() (bool, error){tryRefresh, tryAccess}
	}
	for _, try := range order {
		if done, err := try(); done || err != nil {
			return err
		}
	}
	return nil
}

// IntrospectionResponse is the RFC 7662 §2.2 answer.
type IntrospectionResponse struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Username  string `json:"username,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	Exp       int64  `json:"exp,omitempty"`
	Iat       int64  `json:"iat,omitempty"`
	Sub       string `json:"sub,omitempty"`
	Aud       string `json:"aud,omitempty"`
	Iss       string `json:"iss,omitempty"`
	JTI       string `json:"jti,omitempty"`
}

// handleIntrospect is RFC 7662 introspection, for confidential clients
// (resource servers). Access tokens are answered to any of them; refresh
// tokens only to the client they were issued to.
func (s *Server) handleIntrospect(c *echo.Context) error {
	ctx := c.Request().Context()
	form, err := readTokenForm(c)
	if err != nil {
		return s.writeTokenError(c, err)
	}
	client, err := s.authenticateClient(ctx, c.Request(), form)
	if err != nil {
		return s.writeTokenError(c, err)
	}
	if client.Public() {
		return s.writeTokenError(c, &tokenError{http.StatusUnauthorized, "invalid_client", "introspection needs a confidential client"})
	}
	token := form.Get("token")
	if token == "" {
		return s.writeTokenError(c, invalidRequest("token is missing"))
	}
	resp, err := s.introspect(ctx, client, token)
	if err != nil {
		return s.serverError(c, err)
	}
	return noStoreJSON(c, http.StatusOK, resp)
}

func (s *Server) introspect(ctx context.Context, client *Client, token string) (*IntrospectionResponse, error) {
	inactive := &IntrospectionResponse{Active: false}
	if id, err := s.Verify(ctx, token); err == nil {
		cl, _ := s.parseAccessToken(token, true)
		return &IntrospectionResponse{
			Active: true, Scope: joinScope(id.Scopes), ClientID: id.ClientID, Username: id.Email,
			TokenType: "Bearer", Exp: id.Expiry.Unix(), Iat: cl.issuedAt.Unix(), Sub: id.UserID.String(),
			Aud: s.resource, Iss: s.issuer, JTI: id.TokenID,
		}, nil
	} else if !errors.Is(err, auth.ErrInvalidToken) {
		return nil, err
	}
	if len(token) > 200 {
		return inactive, nil
	}
	rt, err := s.store.RefreshToken(ctx, hashToken(token))
	if errors.Is(err, ErrNotFound) {
		return inactive, nil
	}
	if err != nil {
		return nil, err
	}
	now := s.now()
	if rt.ClientID != client.ID || rt.UsedAt != nil || !now.Before(rt.ExpiresAt) {
		return inactive, nil
	}
	g, err := s.store.Grant(ctx, rt.GrantID)
	if errors.Is(err, ErrNotFound) || err == nil && g.RevokedAt != nil {
		return inactive, nil
	}
	if err != nil {
		return nil, err
	}
	u, err := s.users.Get(ctx, rt.UserID)
	if err != nil || u.Disabled {
		return inactive, nil
	}
	return &IntrospectionResponse{
		Active: true, Scope: rt.Scope, ClientID: rt.ClientID, Username: u.Email, TokenType: "refresh_token",
		Exp: rt.ExpiresAt.Unix(), Iat: rt.CreatedAt.Unix(), Sub: rt.UserID.String(), Iss: s.issuer,
	}, nil
}
