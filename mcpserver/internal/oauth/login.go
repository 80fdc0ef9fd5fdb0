package oauth

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v5"

	"picard.dev/mcpserver/internal/user"
)

type loginPage struct {
	ReturnTo  string
	Email     string
	ForClient bool
}

type signupPage struct {
	ReturnTo string
	Email    string
	Name     string
}

const msgBadLogin = "The email or password is wrong."

func (s *Server) handleLoginPage(c *echo.Context) error {
	rt := safeReturnTo(c.QueryParam("return_to"))
	if _, u := s.current(c); u != nil {
		return c.Redirect(http.StatusFound, rt)
	}
	return s.renderLogin(c, http.StatusOK, rt, "", "")
}

func (s *Server) renderLogin(c *echo.Context, status int, returnTo, email, errMsg string) error {
	return s.render(c, status, "login", view{
		Title: "Sign in", CSRF: s.preSessionCSRF(c), Error: errMsg,
		Page: loginPage{ReturnTo: returnTo, Email: email, ForClient: strings.HasPrefix(returnTo, "/authorize?")},
	})
}

func (s *Server) handleLogin(c *echo.Context) error {
	form, err := readForm(c)
	if err != nil {
		return s.errorPage(c, http.StatusBadRequest, err.Error())
	}
	rt := safeReturnTo(form.Get("return_to"))
	email := strings.TrimSpace(form.Get("email"))
	if len(email) > user.MaxEmailChars {
		email = email[:user.MaxEmailChars]
	}
	if !s.sameOrigin(c) || !checkPreSessionCSRF(c, form) {
		return s.renderLogin(c, http.StatusForbidden, rt, email, "Your form expired. Please sign in again.")
	}
	now := s.now()
	// Both limits are taken on every attempt, known email or not, so
	// the answer says nothing about whether an account exists.
	addrOK := s.loginLimitAddr.allow(c.RealIP(), now)
	acctOK := s.loginLimitAccount.allow(strings.ToLower(email), now)
	if !addrOK || !acctOK {
		c.Response().Header().Set("Retry-After", "60")
		return s.renderLogin(c, http.StatusTooManyRequests, rt, email, "Too many sign-in attempts. Please wait a minute and try again.")
	}
	ctx := c.Request().Context()
	u, err := s.users.Authenticate(ctx, email, form.Get("password"))
	switch {
	case errors.Is(err, user.ErrBadCredentials):
		return s.renderLogin(c, http.StatusUnauthorized, rt, email, msgBadLogin)
	case errors.Is(err, user.ErrDisabled):
		return s.renderLogin(c, http.StatusForbidden, rt, email, "This account is disabled.")
	case err != nil:
		return s.internalPage(c, err)
	}
	if err := s.startSession(c, u); err != nil {
		return s.internalPage(c, err)
	}
	s.record(ctx, u.ID, "web", "login", "ok")
	return c.Redirect(http.StatusSeeOther, rt)
}

func (s *Server) handleSignupPage(c *echo.Context) error {
	rt := safeReturnTo(c.QueryParam("return_to"))
	if _, u := s.current(c); u != nil {
		return c.Redirect(http.StatusFound, rt)
	}
	return s.render(c, http.StatusOK, "signup", view{Title: "Create an account", CSRF: s.preSessionCSRF(c), Page: signupPage{ReturnTo: rt}})
}

func (s *Server) handleSignup(c *echo.Context) error {
	form, err := readForm(c)
	if err != nil {
		return s.errorPage(c, http.StatusBadRequest, err.Error())
	}
	p := signupPage{ReturnTo: safeReturnTo(form.Get("return_to")), Email: form.Get("email"), Name: form.Get("name")}
	fail := func(status int, msg string) error {
		return s.render(c, status, "signup", view{Title: "Create an account", CSRF: s.preSessionCSRF(c), Error: msg, Page: p})
	}
	if !s.sameOrigin(c) || !checkPreSessionCSRF(c, form) {
		return fail(http.StatusForbidden, "Your form expired. Please try again.")
	}
	if !s.loginLimitAddr.allow(c.RealIP(), s.now()) {
		c.Response().Header().Set("Retry-After", "60")
		return fail(http.StatusTooManyRequests, "Too many attempts. Please wait a minute and try again.")
	}
	// password_confirm is checked when the form sends it; scripted
	// clients that post only email and password are served too.
	if _, sent := form["password_confirm"]; sent && form.Get("password_confirm") != form.Get("password") {
		return fail(http.StatusBadRequest, "The two passwords differ.")
	}
	ctx := c.Request().Context()
	u, err := s.users.Register(ctx, user.Registration{Email: form.Get("email"), Name: form.Get("name"), Password: form.Get("password")})
	var fe *user.FieldError
	switch {
	case errors.As(err, &fe):
		return fail(http.StatusBadRequest, "The "+strings.ReplaceAll(fe.Field, "_", " ")+" "+fe.Msg+".")
	case errors.Is(err, user.ErrEmailTaken):
		return fail(http.StatusConflict, "An account with this email already exists. Sign in instead.")
	case err != nil:
		return s.internalPage(c, err)
	}
	if err := s.startSession(c, u); err != nil {
		return s.internalPage(c, err)
	}
	s.record(ctx, u.ID, "web", "signup", "ok")
	return c.Redirect(http.StatusSeeOther, p.ReturnTo)
}

func (s *Server) handleLogout(c *echo.Context) error {
	form, err := readForm(c)
	if err != nil {
		return s.errorPage(c, http.StatusBadRequest, err.Error())
	}
	sess, _ := s.current(c)
	if sess != nil && !checkSessionCSRF(sess, form) {
		return s.errorPage(c, http.StatusForbidden, "Your form expired. Reload the page and try again.")
	}
	s.endSession(c)
	return c.Redirect(http.StatusSeeOther, "/login")
}
