package stackcheck

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
)

// ASMetadata is the part of RFC 8414 metadata the checks use.
type ASMetadata struct {
	Issuer                        string   `json:"issuer"`
	AuthorizationEndpoint         string   `json:"authorization_endpoint"`
	TokenEndpoint                 string   `json:"token_endpoint"`
	RegistrationEndpoint          string   `json:"registration_endpoint"`
	RevocationEndpoint            string   `json:"revocation_endpoint"`
	IntrospectionEndpoint         string   `json:"introspection_endpoint"`
	JWKSURI                       string   `json:"jwks_uri"`
	ScopesSupported               []string `json:"scopes_supported"`
	ResponseTypesSupported        []string `json:"response_types_supported"`
	GrantTypesSupported           []string `json:"grant_types_supported"`
	CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported"`
}

// Client is a registered OAuth client.
type Client struct {
	ID, Secret  string
	RedirectURI string
}

// TokenResponse is an RFC 6749 token response.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
}

// OAuthError is an RFC 6749 error response.
type OAuthError struct {
	Status      int
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func (e *OAuthError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Description)
}

// getJSON fetches u and decodes a 200 JSON answer into v.
func getJSON(ctx context.Context, hc *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", u, resp.StatusCode, snippet(body))
	}
	if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, "json") {
		return fmt.Errorf("GET %s: Content-Type %q, want JSON", u, ct)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}

// postOAuth posts a form to an OAuth endpoint (with client credentials in
// Basic auth for a confidential client) and decodes a 200 answer into v.
func postOAuth(ctx context.Context, hc *http.Client, endpoint string, c *Client, form url.Values, v any) error {
	if c != nil && c.Secret == "" {
		form.Set("client_id", c.ID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c != nil && c.Secret != "" {
		req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		oe := &OAuthError{Status: resp.StatusCode}
		if err := json.Unmarshal(body, oe); err != nil || oe.Code == "" {
			return fmt.Errorf("POST %s: %d, not an RFC 6749 error body: %s", endpoint, resp.StatusCode, snippet(body))
		}
		return oe
	}
	if v == nil || len(body) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("POST %s: %w: %s", endpoint, err, snippet(body))
	}
	return nil
}

// Register registers a client (RFC 7591); confidential selects
// client_secret_basic, else a public client using PKCE only.
func Register(ctx context.Context, hc *http.Client, md *ASMetadata, name, redirectURI string, confidential bool) (*Client, error) {
	method := "none"
	if confidential {
		method = "client_secret_basic"
	}
	body, _ := json.Marshal(map[string]any{
		"client_name":                name,
		"redirect_uris":              []string{redirectURI},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": method,
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, md.RegistrationEndpoint, strings.NewReader(string(body)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("POST /register: %d, want 201: %s", resp.StatusCode, snippet(rb))
	}
	var out struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal(rb, &out); err != nil {
		return nil, fmt.Errorf("POST /register: %w", err)
	}
	if !isUUID(out.ClientID) {
		return nil, fmt.Errorf("client_id %q is not a UUID", out.ClientID)
	}
	if confidential && out.ClientSecret == "" {
		return nil, errors.New("a confidential client got no client_secret")
	}
	if !confidential && out.ClientSecret != "" {
		return nil, errors.New("a public client (token_endpoint_auth_method none) got a client_secret")
	}
	return &Client{ID: out.ClientID, Secret: out.ClientSecret, RedirectURI: redirectURI}, nil
}

// Credentials are an account's email and password.
type Credentials struct{ Email, Password string }

// Authorization is a started code flow.
type Authorization struct {
	URL      string
	Verifier string
	State    string
}

// NewAuthorization builds an authorization request with PKCE S256.
func NewAuthorization(md *ASMetadata, c *Client, scope, resource string) *Authorization {
	a := &Authorization{Verifier: randomString(48), State: randomString(16)}
	sum := sha256.Sum256([]byte(a.Verifier))
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {c.ID},
		"redirect_uri":          {c.RedirectURI},
		"scope":                 {scope},
		"state":                 {a.State},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}
	if resource != "" {
		q.Set("resource", resource)
	}
	a.URL = md.AuthorizationEndpoint + "?" + q.Encode()
	return a
}

// Authorize walks the authorization server's pages in browser b, as a user
// would: it logs in with creds when asked and approves (or, with deny,
// refuses) the consent, until the server redirects to the client's
// redirect URI. It returns that redirect's query.
func Authorize(ctx context.Context, b *Browser, c *Client, a *Authorization, creds Credentials, deny bool) (url.Values, error) {
	loc, err := WalkAuthorization(ctx, b, a.URL, creds, deny, func(u *url.URL) bool { return strings.HasPrefix(u.String(), c.RedirectURI) })
	if err != nil {
		return nil, err
	}
	q := loc.Query()
	if q.Get("state") != a.State {
		return nil, fmt.Errorf("redirect to the client carries state %q, want %q", q.Get("state"), a.State)
	}
	return q, nil
}

// WalkAuthorization starts at an authorization URL and submits the login
// (email, password) and consent (decision=approve, or deny) forms it meets
// until a redirect whose target atClient accepts; it returns that target.
func WalkAuthorization(ctx context.Context, b *Browser, start string, creds Credentials, deny bool, atClient func(*url.URL) bool) (*url.URL, error) {
	p, err := b.Get(ctx, start)
	if err != nil {
		return nil, err
	}
	loggedIn := false
	for step := 0; step < 8; step++ {
		if p, err = b.Follow(ctx, p, atClient); err != nil {
			return nil, err
		}
		if p.Redirect() {
			return p.Location()
		}
		if p.Status != http.StatusOK {
			return nil, fmt.Errorf("authorization page: %s", p)
		}
		forms, err := Forms(p.Body)
		if err != nil {
			return nil, err
		}
		var next *Form
		fill := url.Values{}
		for _, f := range forms {
			if f.HasButton("decision", "approve") {
				next = f
				decision := "approve"
				if deny {
					decision = "deny"
				}
				fill.Set("decision", decision)
				break
			}
		}
		if next == nil {
			for _, f := range forms {
				if f.Has("password") && f.Has("email") && !f.Has("password_confirm") {
					if loggedIn {
						return nil, fmt.Errorf("the login form came back after logging in as %s: %s", creds.Email, p)
					}
					next, loggedIn = f, true
					fill.Set("email", creds.Email)
					fill.Set("password", creds.Password)
					break
				}
			}
		}
		if next == nil {
			return nil, fmt.Errorf("neither a login form (email, password) nor a consent form (button decision=approve) on %s", p)
		}
		if p, err = b.Submit(ctx, p, next, fill); err != nil {
			return nil, err
		}
	}
	return nil, errors.New("no redirect to the client after 8 pages")
}

// Exchange redeems an authorization code.
func Exchange(ctx context.Context, hc *http.Client, md *ASMetadata, c *Client, a *Authorization, code string) (*TokenResponse, error) {
	var t TokenResponse
	err := postOAuth(ctx, hc, md.TokenEndpoint, c, url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {c.RedirectURI},
		"code_verifier": {a.Verifier},
	}, &t)
	if err != nil {
		return nil, err
	}
	return &t, checkTokenResponse(&t)
}

// Refresh redeems a refresh token.
func Refresh(ctx context.Context, hc *http.Client, md *ASMetadata, c *Client, refresh string) (*TokenResponse, error) {
	var t TokenResponse
	if err := postOAuth(ctx, hc, md.TokenEndpoint, c, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}, &t); err != nil {
		return nil, err
	}
	return &t, checkTokenResponse(&t)
}

func checkTokenResponse(t *TokenResponse) error {
	switch {
	case t.AccessToken == "":
		return errors.New("token response without access_token")
	case !strings.EqualFold(t.TokenType, "bearer"):
		return fmt.Errorf("token_type %q, want Bearer", t.TokenType)
	case t.Scope == "":
		return errors.New("token response without scope (the contract says it is always included)")
	case t.ExpiresIn <= 0 || t.ExpiresIn > 3600:
		return fmt.Errorf("expires_in %d, want 1..3600 (1 h access tokens)", t.ExpiresIn)
	}
	return nil
}

// Revoke revokes a token (RFC 7009).
func Revoke(ctx context.Context, hc *http.Client, md *ASMetadata, c *Client, token string) error {
	return postOAuth(ctx, hc, md.RevocationEndpoint, c, url.Values{"token": {token}}, nil)
}

// Introspect asks whether a token is active (RFC 7662).
func Introspect(ctx context.Context, hc *http.Client, md *ASMetadata, c *Client, token string) (map[string]any, error) {
	var out map[string]any
	err := postOAuth(ctx, hc, md.IntrospectionEndpoint, c, url.Values{"token": {token}}, &out)
	return out, err
}

// JWKS is a JSON Web Key Set.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// JWK is one key of a JWKS (EC or RSA).
type JWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	N   string `json:"n"`
	E   string `json:"e"`
	D   string `json:"d"` // must be absent: private
}

// VerifyJWT checks an access token's signature against the JWKS (ES256 or
// RS256) and returns its claims.
func VerifyJWT(token string, set *JWKS) (map[string]any, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("access token has %d parts, want a JWS compact JWT", len(parts))
	}
	var hdr struct{ Alg, Kid, Typ string }
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return nil, fmt.Errorf("JWT header: %w", err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("JWT signature: %w", err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	verified := false
	for _, k := range set.Keys {
		if hdr.Kid != "" && k.Kid != hdr.Kid {
			continue
		}
		switch {
		case hdr.Alg == "ES256" && k.Kty == "EC" && k.Crv == "P-256":
			x, errX := base64.RawURLEncoding.DecodeString(k.X)
			y, errY := base64.RawURLEncoding.DecodeString(k.Y)
			if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 || len(sig) != 64 {
				continue
			}
			pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
			if err != nil {
				continue
			}
			verified = ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
		case hdr.Alg == "RS256" && k.Kty == "RSA":
			n, e := b64int(k.N), b64int(k.E)
			if n == nil || e == nil {
				continue
			}
			verified = rsa.VerifyPKCS1v15(&rsa.PublicKey{N: n, E: int(e.Int64())}, crypto.SHA256, digest[:], sig) == nil
		}
		if verified {
			break
		}
	}
	if !verified {
		return nil, fmt.Errorf("no key of the JWKS (kid %q, alg %s) verifies the access token's signature", hdr.Kid, hdr.Alg)
	}
	var claims map[string]any
	if err := decodeSegment(parts[1], &claims); err != nil {
		return nil, fmt.Errorf("JWT claims: %w", err)
	}
	return claims, nil
}

func decodeSegment(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func b64int(s string) *big.Int {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil
	}
	return new(big.Int).SetBytes(b)
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}

// audience reads the aud claim, a string or a list.
func audience(claims map[string]any) []string {
	switch a := claims["aud"].(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, x := range a {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
