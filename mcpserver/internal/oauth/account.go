package oauth

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"

	"picard.dev/mcpserver/internal/activity"
	"picard.dev/mcpserver/internal/user"
	"picard.dev/shared"
)

type accountPage struct {
	Apps      []appRow
	Tokens    []*AccessToken
	Activity  []activity.Entry
	AllScopes []string
	CanExport bool
	NewToken  string
	Resource  string
	Persona   *personaForm // nil when the server has no persona settings
}

type appRow struct {
	ClientID string
	Name     string
	Scopes   []string
	Since    time.Time
}

// notices are the fixed messages shown after an account action; the
// query names one, so no text from the URL reaches the page.
var notices = map[string]string{ // #nosec G101 -- messages shown to the user, no credentials
	"profile":  "Your profile was saved.",
	"password": "Your password was changed; other sessions were signed out.",
	"app":      "The application was disconnected and its tokens revoked.",
	"token":    "The token was revoked.",
	"persona":  "Your persona settings were saved.",
}

// requireUser returns the signed-in user, or redirects to the login page
// (GET) or refuses (POST: the form is then not acted on).
func (s *Server) requireUser(c *echo.Context, form url.Values) (*Session, *user.User, error) {
	sess, u := s.current(c)
	if u == nil {
		if c.Request().Method == http.MethodGet {
			return nil, nil, c.Redirect(http.StatusFound, "/login?return_to=/account")
		}
		return nil, nil, s.errorPage(c, http.StatusForbidden, "You are not signed in (or your session ended). Sign in and try again.")
	}
	if form != nil && (!s.sameOrigin(c) || !checkSessionCSRF(sess, form)) {
		return nil, nil, s.errorPage(c, http.StatusForbidden, "This form is not valid (it expired or came from another site). Reload the page and try again.")
	}
	return sess, u, nil
}

func (s *Server) handleAccount(c *echo.Context) error {
	sess, u, err := s.requireUser(c, nil)
	if u == nil {
		return err
	}
	return s.renderAccount(c, http.StatusOK, sess, u, view{Notice: notices[c.QueryParam("notice")]}, "")
}

func (s *Server) renderAccount(c *echo.Context, status int, sess *Session, u *user.User, v view, newToken string) error {
	return s.renderAccountWith(c, status, sess, u, v, newToken, nil)
}

// renderAccountWith renders the account page; pf, when not nil, is a
// persona form to show again as the user typed it.
func (s *Server) renderAccountWith(c *echo.Context, status int, sess *Session, u *user.User, v view, newToken string, pf *personaForm) error {
	ctx := c.Request().Context()
	p := accountPage{AllScopes: shared.AllScopes, CanExport: s.exporter != nil, NewToken: newToken, Resource: s.resource, Persona: pf}
	if pf == nil && s.personas != nil {
		st, err := s.personas.Settings(ctx, u.ID)
		if err != nil {
			return s.internalPage(c, err)
		}
		p.Persona = newPersonaForm(st, s.personas.Limits())
	}
	if !u.Admin {
		p.AllScopes = shared.AllScopes[:2]
	}
	consents, err := s.store.Consents(ctx, u.ID)
	if err != nil {
		return s.internalPage(c, err)
	}
	for _, cons := range consents {
		row := appRow{ClientID: cons.ClientID, Name: cons.ClientID, Scopes: strings.Fields(cons.Scope), Since: cons.CreatedAt}
		// Metadata-document clients are named by their URL; fetching
		// documents to render a page is not worth the latency.
		if !isCIMDClientID(cons.ClientID) {
			if cl, err := s.store.Client(ctx, cons.ClientID); err == nil && cl.Name != "" {
				row.Name = cl.Name
			}
		}
		p.Apps = append(p.Apps, row)
	}
	if p.Tokens, err = s.store.PersonalTokens(ctx, u.ID); err != nil {
		return s.internalPage(c, err)
	}
	if s.activity != nil {
		if p.Activity, err = s.activity.ForUser(ctx, u.ID, 20); err != nil {
			return s.internalPage(c, err)
		}
	}
	v.Title, v.User, v.CSRF, v.Page = "Your account", u, sess.CSRFToken, p
	return s.render(c, status, "account", v)
}

func (s *Server) accountForm(c *echo.Context) (url.Values, *Session, *user.User, error) {
	form, err := readForm(c)
	if err != nil {
		return nil, nil, nil, s.errorPage(c, http.StatusBadRequest, err.Error())
	}
	sess, u, err := s.requireUser(c, form)
	return form, sess, u, err
}

func fieldMessage(err error) (string, bool) {
	var fe *user.FieldError
	switch {
	case errors.As(err, &fe):
		return "The " + strings.ReplaceAll(fe.Field, "_", " ") + " " + fe.Msg + ".", true
	case errors.Is(err, user.ErrEmailTaken):
		return "Another account already uses this email.", true
	}
	return "", false
}

func (s *Server) handleProfile(c *echo.Context) error {
	form, sess, u, err := s.accountForm(c)
	if u == nil {
		return err
	}
	nu, err := s.users.UpdateProfile(c.Request().Context(), u.ID, form.Get("email"), form.Get("name"))
	if msg, ok := fieldMessage(err); ok {
		return s.renderAccount(c, http.StatusBadRequest, sess, u, view{Error: msg}, "")
	}
	if err != nil {
		return s.internalPage(c, err)
	}
	s.record(c.Request().Context(), nu.ID, "web", "account:profile", "ok")
	return c.Redirect(http.StatusSeeOther, "/account?notice=profile")
}

func (s *Server) handlePassword(c *echo.Context) error {
	form, sess, u, err := s.accountForm(c)
	if u == nil {
		return err
	}
	ctx := c.Request().Context()
	if !s.loginLimitAccount.allow(strings.ToLower(u.Email), s.now()) {
		return s.renderAccount(c, http.StatusTooManyRequests, sess, u, view{Error: "Too many attempts. Please wait a minute."}, "")
	}
	err = s.users.ChangePassword(ctx, u.ID, form.Get("current_password"), form.Get("new_password"))
	if msg, ok := fieldMessage(err); ok {
		return s.renderAccount(c, http.StatusBadRequest, sess, u, view{Error: msg}, "")
	}
	if err != nil {
		return s.internalPage(c, err)
	}
	if err := s.store.DeleteUserSessions(ctx, u.ID, sess.IDHash); err != nil {
		return s.internalPage(c, err)
	}
	s.record(ctx, u.ID, "web", "account:password", "ok")
	return c.Redirect(http.StatusSeeOther, "/account?notice=password")
}

func (s *Server) handleRevokeApp(c *echo.Context) error {
	form, _, u, err := s.accountForm(c)
	if u == nil {
		return err
	}
	ctx := c.Request().Context()
	clientID := form.Get("client_id")
	if clientID == "" || len(clientID) > maxRedirectURIBytes {
		return s.errorPage(c, http.StatusBadRequest, "No application was named.")
	}
	if err := s.store.DeleteConsent(ctx, u.ID, clientID); err != nil && !errors.Is(err, ErrNotFound) {
		return s.internalPage(c, err)
	}
	if err := s.store.RevokeClientGrants(ctx, u.ID, clientID, s.now().UTC()); err != nil {
		return s.internalPage(c, err)
	}
	s.forget(func(_ string, st cachedState) bool { return st.userID == u.ID })
	s.record(ctx, u.ID, clientID, "consent:revoke", "ok")
	return c.Redirect(http.StatusSeeOther, "/account?notice=app")
}

func (s *Server) handleCreatePAT(c *echo.Context) error {
	form, sess, u, err := s.accountForm(c)
	if u == nil {
		return err
	}
	name := strings.TrimSpace(form.Get("name"))
	ttl, perr := time.ParseDuration(form.Get("ttl"))
	switch {
	case name == "" || utf8.RuneCountInString(name) > 100 || !utf8.ValidString(name):
		return s.renderAccount(c, http.StatusBadRequest, sess, u, view{Error: "Give the token a name of at most 100 characters."}, "")
	case perr != nil:
		return s.renderAccount(c, http.StatusBadRequest, sess, u, view{Error: "Choose how long the token lasts."}, "")
	}
	tok, err := s.issuePAT(c.Request().Context(), u.ID, name, form["scope"], ttl)
	if errors.Is(err, ErrInvalidPAT) {
		return s.renderAccount(c, http.StatusBadRequest, sess, u, view{Error: strings.TrimPrefix(err.Error(), ErrInvalidPAT.Error()+": ")}, "")
	}
	if err != nil {
		return s.internalPage(c, err)
	}
	// Rendered in the POST response, never stored or redirected with:
	// the token is shown exactly once.
	return s.renderAccount(c, http.StatusOK, sess, u, view{Notice: "Token created."}, tok)
}

func (s *Server) handleRevokePAT(c *echo.Context) error {
	form, _, u, err := s.accountForm(c)
	if u == nil {
		return err
	}
	ctx := c.Request().Context()
	jti := form.Get("jti")
	rec, err := s.store.AccessToken(ctx, jti)
	if errors.Is(err, ErrNotFound) || err == nil && (rec.UserID != u.ID || rec.Kind != KindPersonal) {
		return s.errorPage(c, http.StatusNotFound, "No such token.")
	}
	if err != nil {
		return s.internalPage(c, err)
	}
	if err := s.store.RevokeAccessToken(ctx, jti, s.now().UTC()); err != nil {
		return s.internalPage(c, err)
	}
	s.forget(func(k string, _ cachedState) bool { return k == jti })
	s.record(ctx, u.ID, PATClientID, "pat:revoke", "ok")
	return c.Redirect(http.StatusSeeOther, "/account?notice=token")
}

func (s *Server) handleExport(c *echo.Context) error {
	_, u, err := s.requireUser(c, nil)
	if u == nil {
		return err
	}
	if s.exporter == nil {
		return s.errorPage(c, http.StatusNotFound, "Export is not available here; use the web client's Export page.")
	}
	h := c.Response().Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Disposition", `attachment; filename="picard-memories.json"`)
	return s.exporter.ExportMemories(c.Request().Context(), u.ID, c.Response())
}

func (s *Server) handleDeleteAccount(c *echo.Context) error {
	form, sess, u, err := s.accountForm(c)
	if u == nil {
		return err
	}
	ctx := c.Request().Context()
	if form.Get("confirm") != "yes" {
		return s.renderAccount(c, http.StatusBadRequest, sess, u, view{Error: "Tick the box to confirm the deletion."}, "")
	}
	if !s.loginLimitAccount.allow(strings.ToLower(u.Email), s.now()) {
		return s.renderAccount(c, http.StatusTooManyRequests, sess, u, view{Error: "Too many attempts. Please wait a minute."}, "")
	}
	if _, err := s.users.Authenticate(ctx, u.Email, form.Get("password")); err != nil {
		return s.renderAccount(c, http.StatusUnauthorized, sess, u, view{Error: "The password is wrong."}, "")
	}
	if err := s.deleteAccount(c, u.ID); err != nil {
		return s.internalPage(c, err)
	}
	return s.render(c, http.StatusOK, "login", view{
		Title: "Account deleted", CSRF: s.preSessionCSRF(c),
		Notice: "Your account, its memories and its tokens were deleted.",
		Page:   loginPage{ReturnTo: "/account"},
	})
}

// deleteAccount revokes first (so caches of other instances see revoked
// rows for a moment rather than a stale "valid"), then deletes the user;
// the database cascades to memories, grants, tokens and sessions.
func (s *Server) deleteAccount(c *echo.Context, id uuid.UUID) error {
	ctx := c.Request().Context()
	if _, err := s.RevokeUserTokens(ctx, id); err != nil {
		return err
	}
	if err := s.users.Delete(ctx, id); err != nil {
		return err
	}
	s.endSession(c)
	s.log.InfoContext(ctx, "account deleted by its owner", "user", id)
	return nil
}
