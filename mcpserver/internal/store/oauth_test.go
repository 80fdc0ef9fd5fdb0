package store

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"picard.dev/mcpserver/internal/oauth"
)

// TestOAuthStore covers the store side of the authorization server on both
// databases; the oauth package's tests drive the same store end to end.
func TestOAuthStore(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b)
			s := f.db.OAuth()
			alice := f.user("alice")
			now := f.clock.Now().UTC().Truncate(time.Microsecond)

			c := &oauth.Client{ID: uuid.NewString(), SecretHash: "h", Name: "App", RedirectURIs: []string{"https://a.example/cb", "http://127.0.0.1/cb"},
				GrantTypes: []string{"authorization_code", "refresh_token"}, TokenEndpointAuthMethod: "client_secret_basic", ApplicationType: "web", CreatedAt: now}
			if err := s.CreateClient(f.ctx, c); err != nil {
				t.Fatal(err)
			}
			got, err := s.Client(f.ctx, c.ID)
			if err != nil || !slices.Equal(got.RedirectURIs, c.RedirectURIs) || !slices.Equal(got.GrantTypes, c.GrantTypes) || !got.CreatedAt.Equal(now) {
				t.Fatalf("client round trip: %+v %v", got, err)
			}
			if _, err := s.Client(f.ctx, uuid.NewString()); !errors.Is(err, oauth.ErrNotFound) {
				t.Fatalf("unknown client: %v", err)
			}

			g := &oauth.Grant{ID: uuid.New(), CodeHash: "code1", UserID: alice, ClientID: c.ID, Scope: "memories:read",
				CodeChallenge: "ch", CodeExpiresAt: now.Add(time.Minute), CreatedAt: now}
			if err := s.CreateGrant(f.ctx, g); err != nil {
				t.Fatal(err)
			}
			if r, err := s.RedeemCode(f.ctx, "code1", now); err != nil || r.ID != g.ID || r.CodeUsedAt == nil {
				t.Fatalf("redeem: %+v %v", r, err)
			}
			if r, err := s.RedeemCode(f.ctx, "code1", now); !errors.Is(err, oauth.ErrAlreadyUsed) || r == nil || r.ID != g.ID {
				t.Fatalf("second redeem: %+v %v", r, err)
			}
			if _, err := s.RedeemCode(f.ctx, "nope", now); !errors.Is(err, oauth.ErrNotFound) {
				t.Fatalf("unknown code: %v", err)
			}

			gid := g.ID
			a := &oauth.AccessToken{JTI: uuid.NewString(), GrantID: &gid, UserID: alice, ClientID: c.ID, Kind: oauth.KindOAuth, Scope: "memories:read", ExpiresAt: now.Add(time.Hour), CreatedAt: now}
			pat := &oauth.AccessToken{JTI: uuid.NewString(), UserID: alice, ClientID: oauth.PATClientID, Kind: oauth.KindPersonal, Name: "cli", Scope: "memories:read", ExpiresAt: now.Add(48 * time.Hour), CreatedAt: now}
			for _, x := range []*oauth.AccessToken{a, pat} {
				if err := s.CreateAccessToken(f.ctx, x); err != nil {
					t.Fatal(err)
				}
			}
			if st, err := s.AccessTokenState(f.ctx, a.JTI); err != nil || st.Revoked {
				t.Fatalf("fresh token state: %+v %v", st, err)
			}
			if _, err := s.AccessTokenState(f.ctx, "unknown"); !errors.Is(err, oauth.ErrNotFound) {
				t.Fatalf("unknown jti: %v", err)
			}
			if pats, err := s.PersonalTokens(f.ctx, alice); err != nil || len(pats) != 1 || pats[0].Name != "cli" || pats[0].GrantID != nil {
				t.Fatalf("personal tokens: %+v %v", pats, err)
			}

			r1 := &oauth.RefreshToken{Hash: "r1", GrantID: g.ID, UserID: alice, ClientID: c.ID, Scope: "memories:read", ExpiresAt: now.Add(time.Hour), CreatedAt: now}
			if err := s.CreateRefreshToken(f.ctx, r1); err != nil {
				t.Fatal(err)
			}
			if r, err := s.RotateRefreshToken(f.ctx, "r1", now); err != nil || r.UsedAt == nil {
				t.Fatalf("rotate: %+v %v", r, err)
			}
			if _, err := s.RotateRefreshToken(f.ctx, "r1", now); !errors.Is(err, oauth.ErrAlreadyUsed) {
				t.Fatalf("second rotate: %v", err)
			}

			// Revoking the grant revokes its access tokens, not the PAT.
			if err := s.RevokeGrant(f.ctx, g.ID, now); err != nil {
				t.Fatal(err)
			}
			if st, _ := s.AccessTokenState(f.ctx, a.JTI); !st.Revoked {
				t.Fatal("access token of a revoked grant not revoked")
			}
			if st, _ := s.AccessTokenState(f.ctx, pat.JTI); st.Revoked {
				t.Fatal("PAT revoked with a grant")
			}
			if n, err := s.RevokeUserTokens(f.ctx, alice, now); err != nil || n != 2 {
				// The PAT and the OAuth token (its grant was already revoked).
				t.Fatalf("RevokeUserTokens: %d %v", n, err)
			}
			if st, _ := s.AccessTokenState(f.ctx, pat.JTI); !st.Revoked {
				t.Fatal("PAT survived RevokeUserTokens")
			}

			cons := &oauth.Consent{UserID: alice, ClientID: c.ID, Scope: "memories:read", CreatedAt: now, UpdatedAt: now}
			if err := s.SaveConsent(f.ctx, cons); err != nil {
				t.Fatal(err)
			}
			cons.Scope = "memories:read memories:write"
			if err := s.SaveConsent(f.ctx, cons); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Consent(f.ctx, alice, c.ID); err != nil || got.Scope != cons.Scope {
				t.Fatalf("consent upsert: %+v %v", got, err)
			}

			sess := &oauth.Session{IDHash: "s1", UserID: alice, CSRFToken: "csrf", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
			if err := s.CreateSession(f.ctx, sess); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Session(f.ctx, "s1"); err != nil || got.CSRFToken != "csrf" || !got.ExpiresAt.Equal(sess.ExpiresAt) {
				t.Fatalf("session: %+v %v", got, err)
			}

			// Housekeeping two days later: everything expired goes, and the
			// grant whose tokens are all gone with it.
			if err := s.DeleteExpired(f.ctx, now.Add(49*time.Hour)); err != nil {
				t.Fatal(err)
			}
			for table, want := range map[string]int{"oauth_grants": 0, "oauth_access_tokens": 0, "oauth_refresh_tokens": 0, "oauth_sessions": 0, "oauth_consents": 1, "oauth_clients": 1} {
				if n := f.count("SELECT count(*) FROM " + table); n != want {
					t.Errorf("after DeleteExpired %s: %d rows, want %d", table, n, want)
				}
			}

			// Deleting the user cascades to everything of theirs.
			if err := s.CreateSession(f.ctx, sess); err != nil {
				t.Fatal(err)
			}
			if err := f.users.Delete(f.ctx, alice); err != nil {
				t.Fatal(err)
			}
			for _, table := range []string{"oauth_consents", "oauth_sessions"} {
				if n := f.count("SELECT count(*) FROM " + table); n != 0 {
					t.Errorf("%s after deleting the user: %d rows", table, n)
				}
			}
		})
	}
}
