package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"

	"picard.dev/mcpserver/internal/user"
	"picard.dev/shared"
)

// AuthorizeParams are the parameters of an authorization request.
type AuthorizeParams struct {
	ClientID            string
	RedirectURI         string
	ResponseType        string
	Scope               string
	State               string
	CodeChallenge       string
	CodeChallengeMethod string
	Resource            string
	Prompt              string
}

// authorizeParamNames lists the parameters carried from /authorize through
// login and consent.
var authorizeParamNames = []string{"client_id", "redirect_uri", "response_type", "scope", "state", "code_challenge", "code_challenge_method", "resource", "prompt"}

// AuthorizeError is a rejected authorization request. Page errors concern
// the client or the redirect URI and are shown to the user, never sent to
// the redirect URI; the others go back to the client (RFC 6749 §4.1.2.1).
type AuthorizeError struct {
	Page        bool
	Code        string
	Description string
}

func (e *AuthorizeError) Error() string { return e.Code + ": " + e.Description }

func pageErr(desc string) *AuthorizeError {
	return &AuthorizeError{Page: true, Code: "invalid_request", Description: desc}
}

func redirectErr(code, desc string) *AuthorizeError {
	return &AuthorizeError{Code: code, Description: desc}
}

// ParseAuthorizeParams checks the syntax of an authorization request. The
// first error returned must be shown as a page; the second, if the client
// and redirect URI turn out valid, is sent to the redirect URI.
func ParseAuthorizeParams(q url.Values) (AuthorizeParams, *AuthorizeError, *AuthorizeError) {
	var p AuthorizeParams
	for _, name := range []string{"client_id", "redirect_uri"} {
		if len(q[name]) > 1 {
			return p, pageErr(name + " is repeated"), nil
		}
	}
	p.ClientID = q.Get("client_id")
	p.RedirectURI = q.Get("redirect_uri")
	switch {
	case p.ClientID == "":
		return p, pageErr("client_id is missing"), nil
	case len(p.ClientID) > maxRedirectURIBytes || !printableASCII(p.ClientID):
		return p, pageErr("client_id is not valid"), nil
	case len(p.RedirectURI) > maxRedirectURIBytes:
		return p, pageErr("redirect_uri is too long"), nil
	}
	p.State = q.Get("state")
	if len(p.State) > maxStateBytes || len(q["state"]) > 1 {
		// Too long or ambiguous to echo back safely.
		p.State = ""
		return p, nil, redirectErr("invalid_request", "state is repeated or longer than 1024 bytes")
	}
	for _, name := range authorizeParamNames {
		if len(q[name]) > 1 {
			return p, nil, redirectErr("invalid_request", name+" is repeated")
		}
	}
	p.ResponseType = q.Get("response_type")
	p.Scope = q.Get("scope")
	p.CodeChallenge = q.Get("code_challenge")
	p.CodeChallengeMethod = q.Get("code_challenge_method")
	p.Resource = q.Get("resource")
	p.Prompt = q.Get("prompt")
	switch {
	case p.ResponseType == "":
		return p, nil, redirectErr("invalid_request", "response_type is missing")
	case p.ResponseType != "code":
		return p, nil, redirectErr("unsupported_response_type", "only response_type=code is supported")
	case p.CodeChallenge == "":
		return p, nil, redirectErr("invalid_request", "PKCE is required: send code_challenge and code_challenge_method=S256")
	case p.CodeChallengeMethod != "S256":
		return p, nil, redirectErr("invalid_request", "code_challenge_method must be S256")
	case !validChallenge(p.CodeChallenge):
		return p, nil, redirectErr("invalid_request", "code_challenge must be the 43-character base64url SHA-256 of the verifier")
	case len(p.Scope) > 1024:
		return p, nil, redirectErr("invalid_scope", "scope is too long")
	case len(p.Resource) > maxRedirectURIBytes:
		return p, nil, redirectErr("invalid_target", "resource is too long")
	case p.Prompt != "" && p.Prompt != "consent" && p.Prompt != "none" && p.Prompt != "login":
		// prompt=login is accepted and not enforced: a signed-in user is
		// not asked for the password again.
		return p, nil, redirectErr("invalid_request", "prompt may be none, login or consent")
	}
	if _, err := parseScope(p.Scope); err != nil {
		return p, nil, redirectErr("invalid_scope", "scope may contain only memories:read, memories:write and memories:admin")
	}
	return p, nil, nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// validChallenge: BASE64URL(SHA256(verifier)) is always 43 characters.
func validChallenge(c string) bool {
	if len(c) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(c)
	return err == nil
}

// validVerifier: RFC 7636 §4.1, 43 to 128 unreserved characters.
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		b := v[i]
		if !(b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '-' || b == '.' || b == '_' || b == '~') {
			return false
		}
	}
	return true
}

func pkceMatches(verifier, challenge string) bool {
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

// lookupClient finds a registered client or fetches a metadata document.
func (s *Server) lookupClient(ctx context.Context, id string) (*Client, error) {
	if isCIMDClientID(id) {
		return s.cimd.resolve(ctx, id)
	}
	if _, err := uuid.Parse(id); err != nil {
		return nil, ErrNotFound
	}
	return s.store.Client(ctx, id)
}

// authzRequest is a validated authorization request.
type authzRequest struct {
	AuthorizeParams
	client   *Client
	redirect string   // where to send the browser
	scopes   []string // what the client asked for, canonical
}

// checkAuthorize validates a request completely. A page error means the
// user sees an error page; otherwise a non-nil error is redirected.
func (s *Server) checkAuthorize(ctx context.Context, q url.Values) (*authzRequest, *AuthorizeError) {
	if len(q.Encode()) > maxQueryBytes {
		return nil, pageErr("the authorization request is too large")
	}
	p, perr, rerr := ParseAuthorizeParams(q)
	if perr != nil {
		return nil, perr
	}
	client, err := s.lookupClient(ctx, p.ClientID)
	if err != nil {
		if !errors.Is(err, ErrNotFound) && !isCIMDClientID(p.ClientID) {
			s.log.ErrorContext(ctx, "looking up client", "err", err)
		}
		return nil, pageErr("the application is not registered with this server (unknown client_id)")
	}
	r := &authzRequest{AuthorizeParams: p, client: client}
	switch {
	case p.RedirectURI == "" && len(client.RedirectURIs) == 1:
		r.redirect = client.RedirectURIs[0]
	case p.RedirectURI == "":
		return nil, pageErr("redirect_uri is missing")
	case redirectMatches(client.RedirectURIs, p.RedirectURI) && ValidateRedirectURI(p.RedirectURI) == nil:
		r.redirect = p.RedirectURI
	default:
		return nil, pageErr("redirect_uri is not one the application registered")
	}
	if rerr != nil {
		return r, rerr
	}
	r.scopes, _ = parseScope(p.Scope)
	if len(r.scopes) == 0 {
		r.scopes = defaultScope
		if client.Scope != "" {
			r.scopes, _ = parseScope(client.Scope)
		}
	}
	if client.Scope != "" {
		allowed, _ := parseScope(client.Scope)
		if !subset(r.scopes, allowed) {
			return r, redirectErr("invalid_scope", "the application did not register this scope")
		}
	}
	if p.Resource != "" && p.Resource != s.resource {
		return r, redirectErr("invalid_target", "the only resource of this server is "+s.resource)
	}
	return r, nil
}

// grantedScopes is what the user can give: memories:admin only from an
// administrator account (asking for it is not an error; the token
// response's scope says what was granted).
func grantedScopes(requested []string, u *user.User) []string {
	out := make([]string, 0, len(requested))
	for _, sc := range requested {
		if sc == shared.ScopeAdmin && !u.Admin {
			continue
		}
		out = append(out, sc)
	}
	return out
}

// redirectTo builds the authorization response URI (RFC 6749 §4.1.2, with
// iss from RFC 9207).
func (s *Server) redirectTo(target string, params map[string]string, state string) string {
	u, err := url.Parse(target)
	if err != nil {
		return target // validated at registration; cannot happen
	}
	q := u.Query()
	for k, v := range params {
		q.Set(k, v)
	}
	if state != "" {
		q.Set("state", state)
	}
	q.Set("iss", s.issuer)
	u.RawQuery = q.Encode()
	return u.String()
}

func (s *Server) redirectError(c *echo.Context, status int, r *authzRequest, e *AuthorizeError) error {
	params := map[string]string{"error": e.Code}
	if e.Description != "" {
		params["error_description"] = e.Description
	}
	return c.Redirect(status, s.redirectTo(r.redirect, params, r.State))
}

type consentPage struct {
	ClientName   string
	ClientID     string
	RedirectHost string
	Unverified   bool
	Scopes       []string
	Hidden       []hiddenField
}

type hiddenField struct{ Name, Value string }

func (s *Server) handleAuthorize(c *echo.Context) error {
	if len(c.Request().URL.RawQuery) > maxQueryBytes {
		return s.errorPage(c, http.StatusBadRequest, "This sign-in request cannot be completed: the authorization request is too large.")
	}
	q := c.QueryParams()
	return s.authorize(c, q, false, http.StatusFound)
}

// handleConsent receives the consent form.
func (s *Server) handleConsent(c *echo.Context) error {
	form, err := readForm(c)
	if err != nil {
		return s.errorPage(c, http.StatusBadRequest, err.Error())
	}
	return s.authorize(c, form, true, http.StatusSeeOther)
}

// authorize runs an authorization request from the query (GET) or from the
// consent form (POST, decided).
func (s *Server) authorize(c *echo.Context, q url.Values, decided bool, status int) error {
	ctx := c.Request().Context()
	params := url.Values{}
	for _, n := range authorizeParamNames {
		if v, ok := q[n]; ok {
			params[n] = v
		}
	}
	r, aerr := s.checkAuthorize(ctx, params)
	if aerr != nil && aerr.Page {
		return s.errorPage(c, http.StatusBadRequest, "This sign-in request cannot be completed: "+aerr.Description+".")
	}
	if aerr != nil {
		return s.redirectError(c, status, r, aerr)
	}
	sess, u := s.current(c)
	if decided {
		if sess == nil {
			return s.errorPage(c, http.StatusForbidden, "Your session ended before you decided. Start the connection again from the application.")
		}
		if !s.sameOrigin(c) || !checkSessionCSRF(sess, q) {
			return s.errorPage(c, http.StatusForbidden, "This consent form is not valid (it expired or came from another site). Start the connection again from the application.")
		}
	}
	if u == nil {
		if r.Prompt == "none" {
			return s.redirectError(c, status, r, redirectErr("login_required", "the user is not signed in"))
		}
		rt := "/authorize?" + params.Encode()
		return c.Redirect(http.StatusFound, "/login?return_to="+url.QueryEscape(rt))
	}
	scopes := grantedScopes(r.scopes, u)
	if len(scopes) == 0 {
		return s.redirectError(c, status, r, redirectErr("invalid_scope", "memories:admin needs an administrator account"))
	}
	if decided {
		switch q.Get("decision") {
		case "approve":
			if err := s.rememberConsent(ctx, u, r.client.ID, scopes); err != nil {
				return s.internalPage(c, err)
			}
			s.record(ctx, u.ID, r.client.ID, "consent:grant", "ok")
		case "deny":
			s.record(ctx, u.ID, r.client.ID, "consent:deny", "ok")
			return s.redirectError(c, status, r, redirectErr("access_denied", "the user denied access"))
		default:
			return s.errorPage(c, http.StatusBadRequest, "Choose Allow or Deny.")
		}
	} else if r.Prompt != "consent" {
		cons, err := s.store.Consent(ctx, u.ID, r.client.ID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return s.internalPage(c, err)
		}
		if cons == nil || !subset(scopes, strings.Fields(cons.Scope)) {
			if r.Prompt == "none" {
				return s.redirectError(c, status, r, redirectErr("consent_required", "the user has not approved this application"))
			}
			return s.showConsent(c, sess, u, r, scopes, params)
		}
	} else {
		return s.showConsent(c, sess, u, r, scopes, params)
	}
	code, err := s.issueCode(ctx, u, r, scopes)
	if err != nil {
		return s.internalPage(c, err)
	}
	return c.Redirect(status, s.redirectTo(r.redirect, map[string]string{"code": code}, r.State))
}

func (s *Server) showConsent(c *echo.Context, sess *Session, u *user.User, r *authzRequest, scopes []string, params url.Values) error {
	p := consentPage{
		ClientName:   r.client.Name,
		ClientID:     r.client.ID,
		RedirectHost: redirectHost(r.redirect),
		Unverified:   true,
		Scopes:       scopes,
	}
	if p.ClientName == "" {
		p.ClientName = "An unnamed application"
	}
	params.Del("prompt") // the decision is the consent
	for _, n := range authorizeParamNames {
		if v := params.Get(n); v != "" {
			p.Hidden = append(p.Hidden, hiddenField{n, v})
		}
	}
	return s.render(c, http.StatusOK, "consent", view{Title: "Allow access", User: u, CSRF: sess.CSRFToken, Page: p})
}

// rememberConsent stores the union of what the user approved before and now.
func (s *Server) rememberConsent(ctx context.Context, u *user.User, clientID string, scopes []string) error {
	now := s.now().UTC()
	cons, err := s.store.Consent(ctx, u.ID, clientID)
	switch {
	case errors.Is(err, ErrNotFound):
		cons = &Consent{UserID: u.ID, ClientID: clientID, CreatedAt: now}
	case err != nil:
		return err
	}
	all := strings.Fields(cons.Scope)
	for _, sc := range scopes {
		if !slices.Contains(all, sc) {
			all = append(all, sc)
		}
	}
	canon, _ := parseScope(strings.Join(all, " "))
	cons.Scope = joinScope(canon)
	cons.UpdatedAt = now
	return s.store.SaveConsent(ctx, cons)
}

func (s *Server) issueCode(ctx context.Context, u *user.User, r *authzRequest, scopes []string) (string, error) {
	code := randomToken()
	now := s.now().UTC()
	g := &Grant{
		ID:            uuid.New(),
		CodeHash:      hashToken(code),
		UserID:        u.ID,
		ClientID:      r.client.ID,
		RedirectURI:   r.RedirectURI,
		Scope:         joinScope(scopes),
		Resource:      r.Resource,
		CodeChallenge: r.CodeChallenge,
		CodeExpiresAt: now.Add(CodeTTL),
		CreatedAt:     now,
	}
	if err := s.store.CreateGrant(ctx, g); err != nil {
		return "", err
	}
	return code, nil
}
