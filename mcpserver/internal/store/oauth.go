package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"picard.dev/mcpserver/internal/oauth"
)

// OAuth is the oauth.Store of a DB: clients, grants (authorization codes
// and token families), access token records, refresh tokens, consents and
// the sessions of the authorization server's pages.
type OAuth struct{ db *DB }

var _ oauth.Store = (*OAuth)(nil)

// OAuth returns the authorization server store of db.
func (db *DB) OAuth() *OAuth { return &OAuth{db: db} }

// CreateClient stores a registered client.
func (s *OAuth) CreateClient(ctx context.Context, c *oauth.Client) error {
	uris, err := json.Marshal(c.RedirectURIs)
	if err != nil {
		return err
	}
	err = s.db.session(ctx).Exec(`INSERT INTO oauth_clients (id, secret_hash, name, redirect_uris, grant_types,
		token_endpoint_auth_method, scope, client_uri, application_type, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.SecretHash, c.Name, string(uris), strings.Join(c.GrantTypes, " "), c.TokenEndpointAuthMethod,
		c.Scope, c.ClientURI, c.ApplicationType, s.db.at(c.CreatedAt)).Error
	if err != nil {
		return fmt.Errorf("store oauth client: %w", err)
	}
	return nil
}

// Client returns a registered client or oauth.ErrNotFound.
func (s *OAuth) Client(ctx context.Context, id string) (*oauth.Client, error) {
	rows, err := s.db.session(ctx).Raw(`SELECT id, secret_hash, name, redirect_uris, grant_types, token_endpoint_auth_method,
		scope, client_uri, application_type, created_at FROM oauth_clients WHERE id = ?`, id).Rows()
	if err != nil {
		return nil, fmt.Errorf("load oauth client: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("load oauth client: %w", err)
		}
		return nil, oauth.ErrNotFound
	}
	var (
		c            oauth.Client
		uris, grants string
		created      sqlTime
	)
	if err := rows.Scan(&c.ID, &c.SecretHash, &c.Name, &uris, &grants, &c.TokenEndpointAuthMethod,
		&c.Scope, &c.ClientURI, &c.ApplicationType, &created); err != nil {
		return nil, fmt.Errorf("scan oauth client: %w", err)
	}
	if err := json.Unmarshal([]byte(uris), &c.RedirectURIs); err != nil {
		return nil, fmt.Errorf("oauth client %s redirect_uris: %w", c.ID, err)
	}
	c.GrantTypes = strings.Fields(grants)
	c.CreatedAt = created.Time
	return &c, nil
}

const grantCols = `id, code_hash, user_id, client_id, redirect_uri, scope, resource, code_challenge,
	code_expires_at, code_used_at, revoked_at, created_at`

// CreateGrant stores a new grant with its authorization code.
func (s *OAuth) CreateGrant(ctx context.Context, g *oauth.Grant) error {
	err := s.db.session(ctx).Exec(`INSERT INTO oauth_grants (`+grantCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		g.ID, g.CodeHash, g.UserID, g.ClientID, g.RedirectURI, g.Scope, g.Resource, g.CodeChallenge,
		s.db.at(g.CodeExpiresAt), s.db.atPtr(g.CodeUsedAt), s.db.atPtr(g.RevokedAt), s.db.at(g.CreatedAt)).Error
	if err != nil {
		return fmt.Errorf("store oauth grant: %w", err)
	}
	return nil
}

func (s *OAuth) grant(ctx context.Context, where string, arg any) (*oauth.Grant, error) {
	rows, err := s.db.session(ctx).Raw("SELECT "+grantCols+" FROM oauth_grants WHERE "+where, arg).Rows()
	if err != nil {
		return nil, fmt.Errorf("load oauth grant: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("load oauth grant: %w", err)
		}
		return nil, oauth.ErrNotFound
	}
	var (
		g                               oauth.Grant
		expires, used, revoked, created sqlTime
	)
	if err := rows.Scan(&g.ID, &g.CodeHash, &g.UserID, &g.ClientID, &g.RedirectURI, &g.Scope, &g.Resource,
		&g.CodeChallenge, &expires, &used, &revoked, &created); err != nil {
		return nil, fmt.Errorf("scan oauth grant: %w", err)
	}
	g.CodeExpiresAt, g.CodeUsedAt, g.RevokedAt, g.CreatedAt = expires.Time, used.ptr(), revoked.ptr(), created.Time
	return &g, nil
}

// Grant returns a grant by id.
func (s *OAuth) Grant(ctx context.Context, id uuid.UUID) (*oauth.Grant, error) {
	return s.grant(ctx, "id = ?", id)
}

// RedeemCode marks a code used with one conditional UPDATE: of any number
// of concurrent redemptions, on any number of instances, exactly one
// changes the row.
func (s *OAuth) RedeemCode(ctx context.Context, codeHash string, t time.Time) (*oauth.Grant, error) {
	res := s.db.session(ctx).Exec("UPDATE oauth_grants SET code_used_at = ? WHERE code_hash = ? AND code_used_at IS NULL", s.db.at(t), codeHash)
	if res.Error != nil {
		return nil, fmt.Errorf("redeem code: %w", res.Error)
	}
	g, err := s.grant(ctx, "code_hash = ?", codeHash)
	if err != nil {
		return nil, err
	}
	if res.RowsAffected == 0 {
		return g, oauth.ErrAlreadyUsed
	}
	return g, nil
}

// RevokeGrant marks a grant revoked.
func (s *OAuth) RevokeGrant(ctx context.Context, id uuid.UUID, t time.Time) error {
	err := s.db.session(ctx).Exec("UPDATE oauth_grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", s.db.at(t), id).Error
	if err != nil {
		return fmt.Errorf("revoke grant: %w", err)
	}
	return nil
}

// RevokeClientGrants revokes every grant of a user to a client.
func (s *OAuth) RevokeClientGrants(ctx context.Context, userID uuid.UUID, clientID string, t time.Time) error {
	err := s.db.session(ctx).Exec("UPDATE oauth_grants SET revoked_at = ? WHERE user_id = ? AND client_id = ? AND revoked_at IS NULL",
		s.db.at(t), userID, clientID).Error
	if err != nil {
		return fmt.Errorf("revoke client grants: %w", err)
	}
	return nil
}

const accessCols = "jti, grant_id, user_id, client_id, kind, name, scope, expires_at, created_at, revoked_at"

// CreateAccessToken records an issued access token.
func (s *OAuth) CreateAccessToken(ctx context.Context, a *oauth.AccessToken) error {
	var grant any
	if a.GrantID != nil {
		grant = *a.GrantID
	}
	err := s.db.session(ctx).Exec("INSERT INTO oauth_access_tokens ("+accessCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		a.JTI, grant, a.UserID, a.ClientID, a.Kind, a.Name, a.Scope, s.db.at(a.ExpiresAt), s.db.at(a.CreatedAt), s.db.atPtr(a.RevokedAt)).Error
	if err != nil {
		return fmt.Errorf("store access token: %w", err)
	}
	return nil
}

func (s *OAuth) accessTokens(ctx context.Context, query string, args ...any) ([]*oauth.AccessToken, error) {
	rows, err := s.db.session(ctx).Raw("SELECT "+accessCols+" FROM oauth_access_tokens WHERE "+query, args...).Rows()
	if err != nil {
		return nil, fmt.Errorf("load access tokens: %w", err)
	}
	defer rows.Close()
	out := []*oauth.AccessToken{}
	for rows.Next() {
		var (
			a                         oauth.AccessToken
			grant                     uuid.NullUUID
			expires, created, revoked sqlTime
		)
		if err := rows.Scan(&a.JTI, &grant, &a.UserID, &a.ClientID, &a.Kind, &a.Name, &a.Scope, &expires, &created, &revoked); err != nil {
			return nil, fmt.Errorf("scan access token: %w", err)
		}
		if grant.Valid {
			a.GrantID = &grant.UUID
		}
		a.ExpiresAt, a.CreatedAt, a.RevokedAt = expires.Time, created.Time, revoked.ptr()
		out = append(out, &a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load access tokens: %w", err)
	}
	return out, nil
}

// AccessToken returns the record of a jti.
func (s *OAuth) AccessToken(ctx context.Context, jti string) (*oauth.AccessToken, error) {
	as, err := s.accessTokens(ctx, "jti = ?", jti)
	if err != nil {
		return nil, err
	}
	if len(as) == 0 {
		return nil, oauth.ErrNotFound
	}
	return as[0], nil
}

// AccessTokenState answers the revocation check of Verify with one
// indexed lookup: the token's own revocation and that of its grant.
func (s *OAuth) AccessTokenState(ctx context.Context, jti string) (oauth.TokenState, error) {
	rows, err := s.db.session(ctx).Raw(`SELECT a.revoked_at, g.revoked_at FROM oauth_access_tokens a
		LEFT JOIN oauth_grants g ON g.id = a.grant_id WHERE a.jti = ?`, jti).Rows()
	if err != nil {
		return oauth.TokenState{}, fmt.Errorf("token state: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return oauth.TokenState{}, fmt.Errorf("token state: %w", err)
		}
		return oauth.TokenState{}, oauth.ErrNotFound
	}
	var own, family sqlTime
	if err := rows.Scan(&own, &family); err != nil {
		return oauth.TokenState{}, fmt.Errorf("scan token state: %w", err)
	}
	return oauth.TokenState{Revoked: own.Valid || family.Valid}, nil
}

// RevokeAccessToken marks one access token revoked.
func (s *OAuth) RevokeAccessToken(ctx context.Context, jti string, t time.Time) error {
	err := s.db.session(ctx).Exec("UPDATE oauth_access_tokens SET revoked_at = ? WHERE jti = ? AND revoked_at IS NULL", s.db.at(t), jti).Error
	if err != nil {
		return fmt.Errorf("revoke access token: %w", err)
	}
	return nil
}

// PersonalTokens lists a user's personal access tokens, newest first.
func (s *OAuth) PersonalTokens(ctx context.Context, userID uuid.UUID) ([]*oauth.AccessToken, error) {
	return s.accessTokens(ctx, "user_id = ? AND kind = ? ORDER BY created_at DESC, jti", userID, oauth.KindPersonal)
}

const refreshCols = "token_hash, grant_id, user_id, client_id, scope, expires_at, created_at, used_at"

// CreateRefreshToken stores a refresh token's hash.
func (s *OAuth) CreateRefreshToken(ctx context.Context, r *oauth.RefreshToken) error {
	err := s.db.session(ctx).Exec("INSERT INTO oauth_refresh_tokens ("+refreshCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		r.Hash, r.GrantID, r.UserID, r.ClientID, r.Scope, s.db.at(r.ExpiresAt), s.db.at(r.CreatedAt), s.db.atPtr(r.UsedAt)).Error
	if err != nil {
		return fmt.Errorf("store refresh token: %w", err)
	}
	return nil
}

// RefreshToken returns a refresh token by hash.
func (s *OAuth) RefreshToken(ctx context.Context, hash string) (*oauth.RefreshToken, error) {
	rows, err := s.db.session(ctx).Raw("SELECT "+refreshCols+" FROM oauth_refresh_tokens WHERE token_hash = ?", hash).Rows()
	if err != nil {
		return nil, fmt.Errorf("load refresh token: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("load refresh token: %w", err)
		}
		return nil, oauth.ErrNotFound
	}
	var (
		r                      oauth.RefreshToken
		expires, created, used sqlTime
	)
	if err := rows.Scan(&r.Hash, &r.GrantID, &r.UserID, &r.ClientID, &r.Scope, &expires, &created, &used); err != nil {
		return nil, fmt.Errorf("scan refresh token: %w", err)
	}
	r.ExpiresAt, r.CreatedAt, r.UsedAt = expires.Time, created.Time, used.ptr()
	return &r, nil
}

// RotateRefreshToken marks a refresh token used with one conditional
// UPDATE, so exactly one of concurrent rotations wins.
func (s *OAuth) RotateRefreshToken(ctx context.Context, hash string, t time.Time) (*oauth.RefreshToken, error) {
	res := s.db.session(ctx).Exec("UPDATE oauth_refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL", s.db.at(t), hash)
	if res.Error != nil {
		return nil, fmt.Errorf("rotate refresh token: %w", res.Error)
	}
	r, err := s.RefreshToken(ctx, hash)
	if err != nil {
		return nil, err
	}
	if res.RowsAffected == 0 {
		return r, oauth.ErrAlreadyUsed
	}
	return r, nil
}

// RevokeUserTokens revokes every grant and access token of a user in one
// transaction and counts those that were live.
func (s *OAuth) RevokeUserTokens(ctx context.Context, userID uuid.UUID, t time.Time) (int, error) {
	var n int64
	err := s.db.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Exec("UPDATE oauth_grants SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL AND code_used_at IS NOT NULL", s.db.at(t), userID)
		if res.Error != nil {
			return res.Error
		}
		n = res.RowsAffected
		// Unredeemed codes are revoked too, uncounted.
		if err := tx.Exec("UPDATE oauth_grants SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL", s.db.at(t), userID).Error; err != nil {
			return err
		}
		res = tx.Exec("UPDATE oauth_access_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ?", s.db.at(t), userID, s.db.at(t))
		n += res.RowsAffected
		if res.Error != nil {
			return res.Error
		}
		// Expired ones too, so the record is uniform; uncounted.
		return tx.Exec("UPDATE oauth_access_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL", s.db.at(t), userID).Error
	})
	if err != nil {
		return 0, fmt.Errorf("revoke user tokens: %w", err)
	}
	return int(n), nil
}

// Consent returns the consent of a user to a client.
func (s *OAuth) Consent(ctx context.Context, userID uuid.UUID, clientID string) (*oauth.Consent, error) {
	cs, err := s.consents(ctx, "user_id = ? AND client_id = ?", userID, clientID)
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, oauth.ErrNotFound
	}
	return cs[0], nil
}

// Consents lists a user's consents, newest first.
func (s *OAuth) Consents(ctx context.Context, userID uuid.UUID) ([]*oauth.Consent, error) {
	return s.consents(ctx, "user_id = ? ORDER BY updated_at DESC, client_id", userID)
}

func (s *OAuth) consents(ctx context.Context, where string, args ...any) ([]*oauth.Consent, error) {
	rows, err := s.db.session(ctx).Raw("SELECT user_id, client_id, scope, created_at, updated_at FROM oauth_consents WHERE "+where, args...).Rows()
	if err != nil {
		return nil, fmt.Errorf("load consents: %w", err)
	}
	defer rows.Close()
	out := []*oauth.Consent{}
	for rows.Next() {
		var (
			c                oauth.Consent
			created, updated sqlTime
		)
		if err := rows.Scan(&c.UserID, &c.ClientID, &c.Scope, &created, &updated); err != nil {
			return nil, fmt.Errorf("scan consent: %w", err)
		}
		c.CreatedAt, c.UpdatedAt = created.Time, updated.Time
		out = append(out, &c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load consents: %w", err)
	}
	return out, nil
}

// SaveConsent inserts or replaces a consent.
func (s *OAuth) SaveConsent(ctx context.Context, c *oauth.Consent) error {
	err := s.db.session(ctx).Exec(`INSERT INTO oauth_consents (user_id, client_id, scope, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, updated_at = excluded.updated_at`,
		c.UserID, c.ClientID, c.Scope, s.db.at(c.CreatedAt), s.db.at(c.UpdatedAt)).Error
	if err != nil {
		return fmt.Errorf("save consent: %w", err)
	}
	return nil
}

// DeleteConsent forgets a consent; deleting a missing one is not an error.
func (s *OAuth) DeleteConsent(ctx context.Context, userID uuid.UUID, clientID string) error {
	if err := s.db.session(ctx).Exec("DELETE FROM oauth_consents WHERE user_id = ? AND client_id = ?", userID, clientID).Error; err != nil {
		return fmt.Errorf("delete consent: %w", err)
	}
	return nil
}

// CreateSession stores a page session.
func (s *OAuth) CreateSession(ctx context.Context, ss *oauth.Session) error {
	err := s.db.session(ctx).Exec("INSERT INTO oauth_sessions (id_hash, user_id, csrf_token, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
		ss.IDHash, ss.UserID, ss.CSRFToken, s.db.at(ss.CreatedAt), s.db.at(ss.ExpiresAt)).Error
	if err != nil {
		return fmt.Errorf("store session: %w", err)
	}
	return nil
}

// Session returns a session by the hash of its id.
func (s *OAuth) Session(ctx context.Context, idHash string) (*oauth.Session, error) {
	rows, err := s.db.session(ctx).Raw("SELECT id_hash, user_id, csrf_token, created_at, expires_at FROM oauth_sessions WHERE id_hash = ?", idHash).Rows()
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("load session: %w", err)
		}
		return nil, oauth.ErrNotFound
	}
	var (
		ss               oauth.Session
		created, expires sqlTime
	)
	if err := rows.Scan(&ss.IDHash, &ss.UserID, &ss.CSRFToken, &created, &expires); err != nil {
		return nil, fmt.Errorf("scan session: %w", err)
	}
	ss.CreatedAt, ss.ExpiresAt = created.Time, expires.Time
	return &ss, nil
}

// DeleteSession ends a session.
func (s *OAuth) DeleteSession(ctx context.Context, idHash string) error {
	if err := s.db.session(ctx).Exec("DELETE FROM oauth_sessions WHERE id_hash = ?", idHash).Error; err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteUserSessions ends every session of a user but keep.
func (s *OAuth) DeleteUserSessions(ctx context.Context, userID uuid.UUID, keep string) error {
	if err := s.db.session(ctx).Exec("DELETE FROM oauth_sessions WHERE user_id = ? AND id_hash <> ?", userID, keep).Error; err != nil {
		return fmt.Errorf("delete sessions: %w", err)
	}
	return nil
}

// accessTokenGrace keeps access token rows a little past expiry, longer
// than the leeway Verify allows, so an expired-but-tolerated token is never
// "unknown".
const accessTokenGrace = 5 * time.Minute

// DeleteExpired removes sessions, refresh tokens and access token records
// past their expiry, then grants whose code expired and that have no
// token left: a replayed code or refresh token of such a grant could no
// longer yield anything.
func (s *OAuth) DeleteExpired(ctx context.Context, t time.Time) error {
	err := s.db.tx(ctx, func(tx *gorm.DB) error {
		for _, q := range []struct {
			sql string
			at  time.Time
		}{
			{"DELETE FROM oauth_sessions WHERE expires_at < ?", t},
			{"DELETE FROM oauth_refresh_tokens WHERE expires_at < ?", t},
			{"DELETE FROM oauth_access_tokens WHERE expires_at < ?", t.Add(-accessTokenGrace)},
			{`DELETE FROM oauth_grants WHERE code_expires_at < ?
				AND NOT EXISTS (SELECT 1 FROM oauth_refresh_tokens r WHERE r.grant_id = oauth_grants.id)
				AND NOT EXISTS (SELECT 1 FROM oauth_access_tokens a WHERE a.grant_id = oauth_grants.id)`, t},
		} {
			if err := tx.Exec(q.sql, s.db.at(q.at)).Error; err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete expired oauth rows: %w", err)
	}
	return nil
}
