package oauth

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v5"

	"picard.dev/mcpserver/internal/user"
)

// Sessions of the authorization server's pages are kept server-side, in
// the database: the cookie holds only a random id (stored hashed), so
// signing out, changing the password, disabling or deleting an account
// ends sessions on every instance at once, which a signed cookie could not
// do before it expires.
const (
	SessionCookie = "picard_as_session"
	// csrfCookie carries the double-submit token of the login and sign-up
	// forms, which are posted before there is a session.
	csrfCookie = "picard_as_csrf"
)

// current returns the signed-in user and session, or nils.
func (s *Server) current(c *echo.Context) (*Session, *user.User) {
	ck, err := c.Cookie(SessionCookie)
	if err != nil || ck.Value == "" || len(ck.Value) > 100 {
		return nil, nil
	}
	ctx := c.Request().Context()
	sess, err := s.store.Session(ctx, hashToken(ck.Value))
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			s.log.ErrorContext(ctx, "loading session", "err", err)
		}
		return nil, nil
	}
	if !s.now().Before(sess.ExpiresAt) {
		return nil, nil
	}
	u, err := s.users.Get(ctx, sess.UserID)
	if err != nil || u.Disabled {
		return nil, nil
	}
	return sess, u
}

func (s *Server) startSession(c *echo.Context, u *user.User) error {
	ctx := c.Request().Context()
	// A new id on every login: a session id planted before login is
	// worthless afterwards (session fixation).
	if ck, err := c.Cookie(SessionCookie); err == nil && ck.Value != "" {
		_ = s.store.DeleteSession(ctx, hashToken(ck.Value))
	}
	id := randomToken()
	now := s.now().UTC()
	sess := &Session{IDHash: hashToken(id), UserID: u.ID, CSRFToken: randomToken(), CreatedAt: now, ExpiresAt: now.Add(SessionTTL)}
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return err
	}
	c.SetCookie(s.cookie(SessionCookie, id, int(SessionTTL.Seconds())))
	return nil
}

func (s *Server) endSession(c *echo.Context) {
	if ck, err := c.Cookie(SessionCookie); err == nil && ck.Value != "" {
		if err := s.store.DeleteSession(c.Request().Context(), hashToken(ck.Value)); err != nil {
			s.log.ErrorContext(c.Request().Context(), "ending session", "err", err)
		}
	}
	c.SetCookie(s.cookie(SessionCookie, "", -1))
}

func (s *Server) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{ // #nosec G124 -- Secure whenever the issuer is https (required in production)
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	}
}

// preSessionCSRF returns the double-submit token of the login and sign-up
// forms, setting its cookie if there is none yet.
func (s *Server) preSessionCSRF(c *echo.Context) string {
	if ck, err := c.Cookie(csrfCookie); err == nil && len(ck.Value) == 43 {
		return ck.Value
	}
	t := randomToken()
	c.SetCookie(s.cookie(csrfCookie, t, 0))
	return t
}

// checkPreSessionCSRF compares the form's token with the cookie's.
func checkPreSessionCSRF(c *echo.Context, form url.Values) bool {
	ck, err := c.Cookie(csrfCookie)
	if err != nil || ck.Value == "" {
		return false
	}
	return equalSecret(ck.Value, form.Get("csrf_token"))
}

// checkSessionCSRF compares the form's token with the session's.
func checkSessionCSRF(sess *Session, form url.Values) bool {
	return sess != nil && equalSecret(sess.CSRFToken, form.Get("csrf_token"))
}

func equalSecret(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// sameOrigin rejects cross-site form posts that announce their origin: a
// second fence beside the CSRF tokens and SameSite=Lax.
func (s *Server) sameOrigin(c *echo.Context) bool {
	o := c.Request().Header.Get("Origin")
	if o == "" {
		return true
	}
	return o == originOf(s.issuer)
}

func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Scheme + "://" + u.Host
}

// readForm parses an application/x-www-form-urlencoded body of at most
// 64 KiB, ignoring the query string.
func readForm(c *echo.Context) (url.Values, error) {
	r := c.Request()
	ct := strings.ToLower(strings.TrimSpace(strings.Split(r.Header.Get("Content-Type"), ";")[0]))
	if ct != "application/x-www-form-urlencoded" {
		return nil, errors.New("the body must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(c.Response(), r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return nil, errors.New("the form could not be read (too large or malformed)")
	}
	return r.PostForm, nil
}

// safeReturnTo accepts only our own pages as targets after login: the
// authorization endpoint (with its query) and the account page. Anything
// else, in particular absolute or scheme-relative URLs, becomes /account,
// so the login page cannot be used as an open redirect.
func safeReturnTo(raw string) string {
	if raw == "" || len(raw) > maxQueryBytes+32 || !strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, "//") || strings.ContainsAny(raw, "\\\r\n\t") {
		return "/account"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Fragment != "" {
		return "/account"
	}
	switch u.Path {
	case "/authorize":
		return "/authorize?" + u.RawQuery
	case "/account":
		return "/account"
	}
	return "/account"
}
