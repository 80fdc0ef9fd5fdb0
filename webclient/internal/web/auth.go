package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v5"

	"picard.dev/webclient/internal/account"
	"picard.dev/webclient/internal/oauthclient"
)

type homePage struct {
	State oauthclient.State
}

func (s *server) home(c *echo.Context) error {
	var d homePage
	if u := currentUser(c); u != nil {
		st, err := s.OAuth.Status(c.Request().Context(), u.ID)
		if err != nil {
			return err
		}
		d.State = st
		c.Set("conn", st)
	}
	return s.render(c, http.StatusOK, "home.html", d)
}

type credentialsForm struct {
	Email string
	Next  string
	Error string
}

// safeNext accepts only a local path, so ?next= cannot redirect off-site.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\r\n") {
		return "/"
	}
	return next
}

func (s *server) signupPage(c *echo.Context) error {
	if currentUser(c) != nil {
		return c.Redirect(http.StatusSeeOther, "/")
	}
	return s.render(c, http.StatusOK, "signup.html", credentialsForm{})
}

func (s *server) signup(c *echo.Context) error {
	f := credentialsForm{Email: strings.TrimSpace(c.FormValue("email"))}
	pw, confirm := c.FormValue("password"), c.FormValue("password_confirm")
	if !s.limiter.allow("ip:" + c.RealIP()) {
		f.Error = "Too many attempts. Please wait a minute and try again."
		return s.render(c, http.StatusTooManyRequests, "signup.html", f)
	}
	if pw != confirm {
		f.Error = "The two passwords do not match."
		return s.render(c, http.StatusUnprocessableEntity, "signup.html", f)
	}
	u, err := s.Accounts.SignUp(c.Request().Context(), f.Email, pw)
	if errors.Is(err, account.ErrEmailTaken) || errors.Is(err, account.ErrInvalidEmail) || errors.Is(err, account.ErrWeakPassword) {
		f.Error = capitalize(err.Error()) + "."
		return s.render(c, http.StatusUnprocessableEntity, "signup.html", f)
	}
	if err != nil {
		return err
	}
	if err := s.startSession(c, u.ID); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/connect?m=signedup")
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// startSession replaces whatever session the browser had with a new one:
// a fresh identifier at every login is what defeats session fixation.
func (s *server) startSession(c *echo.Context, userID string) error {
	ctx := c.Request().Context()
	if old, ok := c.Get("session").(string); ok && old != "" {
		if err := s.Accounts.DeleteSession(ctx, old); err != nil {
			return err
		}
	}
	tok, err := s.Accounts.CreateSession(ctx, userID)
	if err != nil {
		return err
	}
	s.setCookie(c, SessionCookie, tok, int(account.SessionTTL.Seconds()))
	s.clearCookie(c, csrfCookie)
	return nil
}

func (s *server) loginPage(c *echo.Context) error {
	if currentUser(c) != nil {
		return c.Redirect(http.StatusSeeOther, safeNext(c.QueryParam("next")))
	}
	return s.render(c, http.StatusOK, "login.html", credentialsForm{Next: safeNext(c.QueryParam("next"))})
}

func (s *server) login(c *echo.Context) error {
	f := credentialsForm{Email: strings.TrimSpace(c.FormValue("email")), Next: safeNext(c.FormValue("next"))}
	if !s.limiter.allow("ip:"+c.RealIP(), "email:"+strings.ToLower(f.Email)) {
		f.Error = "Too many login attempts. Please wait a minute and try again."
		return s.render(c, http.StatusTooManyRequests, "login.html", f)
	}
	u, err := s.Accounts.Authenticate(c.Request().Context(), f.Email, c.FormValue("password"))
	if errors.Is(err, account.ErrInvalidCredentials) {
		f.Error = "Wrong email or password."
		return s.render(c, http.StatusUnauthorized, "login.html", f)
	}
	if err != nil {
		return err
	}
	if err := s.startSession(c, u.ID); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, f.Next)
}

func (s *server) logout(c *echo.Context) error {
	if tok, ok := c.Get("session").(string); ok && tok != "" {
		if err := s.Accounts.DeleteSession(c.Request().Context(), tok); err != nil {
			return err
		}
	}
	s.clearCookie(c, SessionCookie)
	return c.Redirect(http.StatusSeeOther, "/?m=loggedout")
}

type accountPage struct {
	State         oauthclient.State
	PasswordError string
	DeleteError   string
}

func (s *server) accountView(c *echo.Context, d accountPage) (accountPage, error) {
	st, err := s.OAuth.Status(c.Request().Context(), currentUser(c).ID)
	d.State = st
	c.Set("conn", st)
	return d, err
}

func (s *server) accountPage(c *echo.Context) error {
	d, err := s.accountView(c, accountPage{})
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "account.html", d)
}

func (s *server) changePassword(c *echo.Context) error {
	u := currentUser(c)
	next, confirm := c.FormValue("new_password"), c.FormValue("new_password_confirm")
	var msg string
	if next != confirm {
		msg = "The two new passwords do not match."
	} else {
		sess, _ := c.Get("session").(string)
		err := s.Accounts.ChangePassword(c.Request().Context(), u.ID, c.FormValue("current_password"), next, sess)
		switch {
		case err == nil:
			return c.Redirect(http.StatusSeeOther, "/account?m=password")
		case errors.Is(err, account.ErrInvalidCredentials):
			msg = "The current password is wrong."
		case errors.Is(err, account.ErrWeakPassword):
			msg = capitalize(err.Error()) + "."
		default:
			return err
		}
	}
	d, err := s.accountView(c, accountPage{PasswordError: msg})
	if err != nil {
		return err
	}
	return s.render(c, http.StatusUnprocessableEntity, "account.html", d)
}

func (s *server) deleteAccount(c *echo.Context) error {
	u := currentUser(c)
	ctx := c.Request().Context()
	if err := s.Accounts.CheckPassword(ctx, u.ID, c.FormValue("password")); err != nil {
		if !errors.Is(err, account.ErrInvalidCredentials) {
			return err
		}
		d, err := s.accountView(c, accountPage{DeleteError: "The password is wrong; the account was not deleted."})
		if err != nil {
			return err
		}
		return s.render(c, http.StatusUnprocessableEntity, "account.html", d)
	}
	s.OAuth.Forget(ctx, u.ID)
	if err := s.Accounts.Delete(ctx, u.ID); err != nil {
		return err
	}
	s.clearCookie(c, SessionCookie)
	return c.Redirect(http.StatusSeeOther, "/?m=goodbye")
}
