// Package web is the web client's user interface: Echo handlers rendering
// html/template pages embedded in the binary, with server-side sessions,
// CSRF tokens on every form, strict security headers and no scripts.
package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"picard.dev/webclient/internal/account"
	"picard.dev/webclient/internal/contacts"
	"picard.dev/webclient/internal/memoryclient"
	"picard.dev/webclient/internal/oauthclient"
)

//go:embed templates static
var assets embed.FS

// Cookie names. They differ from the MCP server's because cookies do not
// separate ports and both run on localhost in development.
const (
	SessionCookie = "picard_web_session"
	csrfCookie    = "picard_web_csrf"
	csrfField     = "csrf_token"
)

// Body limits: forms are small; an import may carry a 10 MiB file.
const (
	formLimit   = 1 << 20
	importLimit = 11 << 20
)

// Deps are what the handlers need.
type Deps struct {
	Accounts *account.Service
	OAuth    *oauthclient.Client
	Memories *memoryclient.Client
	Logger   *slog.Logger
	// BaseURL is the public URL; an https URL makes cookies Secure.
	BaseURL string
	// MCPServerURL is the MCP server as the browser reaches it; the CSP
	// allows form submissions to be redirected there.
	MCPServerURL string
	// Ready reports whether the database is usable, for /healthz.
	Ready func(context.Context) error
	// Contacts, optional, remembers the emails a user shared with so
	// pages can show them instead of bare user ids.
	Contacts *contacts.Book
}

type server struct {
	Deps
	pages    map[string]*template.Template
	secure   bool
	csp      string
	limiter  *limiter
	markdown *markdown
}

// New returns the web client's HTTP handler.
func New(d Deps) (http.Handler, error) {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	s := &server{Deps: d, secure: strings.HasPrefix(d.BaseURL, "https://"), limiter: newLimiter(), markdown: newMarkdown()}
	formAction := "'self'"
	if u, err := url.Parse(d.MCPServerURL); err == nil && u.Host != "" {
		// Chrome applies form-action to the redirect that follows a form
		// post, and POST /oauth/connect redirects to the MCP server.
		formAction += " " + u.Scheme + "://" + u.Host
	}
	s.csp = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action " + formAction + "; frame-ancestors 'none'; base-uri 'none'"
	if err := s.parseTemplates(); err != nil {
		return nil, err
	}
	e := echo.New()
	e.Logger = d.Logger
	e.HTTPErrorHandler = s.handleError
	e.Pre(s.securityHeaders)
	e.Use(s.recoverPanics, s.limitBody, s.loadSession, s.checkCSRF)

	static, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, err
	}
	e.StaticFS("/static", static)
	e.GET("/healthz", s.healthz)
	e.GET("/", s.home)
	e.GET("/signup", s.signupPage)
	e.POST("/signup", s.signup)
	e.GET("/login", s.loginPage)
	e.POST("/login", s.login)
	e.POST("/logout", s.logout)

	// Middleware is attached per route rather than to a group: a group
	// with middleware also catches unknown paths, which would turn 404s
	// into login or connect pages.
	user := func(method, path string, h echo.HandlerFunc) { e.Add(method, path, h, s.requireUser) }
	user(http.MethodGet, "/account", s.accountPage)
	user(http.MethodPost, "/account/password", s.changePassword)
	user(http.MethodPost, "/account/delete", s.deleteAccount)
	user(http.MethodGet, "/connect", s.connectPage)
	user(http.MethodPost, "/oauth/connect", s.oauthConnect)
	user(http.MethodGet, "/oauth/callback", s.oauthCallback)
	user(http.MethodPost, "/oauth/disconnect", s.oauthDisconnect)

	conn := func(method, path string, h echo.HandlerFunc) {
		e.Add(method, path, h, s.requireUser, s.requireConnection)
	}
	conn(http.MethodGet, "/memories", s.listMemories)
	conn(http.MethodPost, "/memories", s.createMemory)
	conn(http.MethodGet, "/memories/new", s.newMemoryPage)
	conn(http.MethodGet, "/memories/:id", s.showMemory)
	conn(http.MethodGet, "/memories/:id/edit", s.editMemoryPage)
	conn(http.MethodPost, "/memories/:id/edit", s.editMemory)
	conn(http.MethodGet, "/memories/:id/delete", s.deleteMemoryPage)
	conn(http.MethodPost, "/memories/:id/delete", s.deleteMemory)
	conn(http.MethodPost, "/memories/:id/permission", s.changePermission)
	conn(http.MethodGet, "/import", s.importPage)
	conn(http.MethodPost, "/import", s.importMemories)
	conn(http.MethodGet, "/export", s.export)
	conn(http.MethodGet, "/personas", s.listPersonas)
	conn(http.MethodGet, "/personas/me", s.myPersona)
	conn(http.MethodGet, "/personas/:user_id", s.personaPage)
	conn(http.MethodPost, "/personas/:user_id", s.askPersona)
	return e, nil
}

func (s *server) healthz(c *echo.Context) error {
	if s.Ready != nil {
		ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
		defer cancel()
		if err := s.Ready(ctx); err != nil {
			s.Logger.Error("health check failed", "error", err)
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// securityHeaders runs before routing so every response, 404s included,
// carries them.
func (s *server) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", s.csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if s.secure {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if !strings.HasPrefix(c.Request().URL.Path, "/static/") {
			// Pages show private data; keep them out of shared caches and
			// the back-forward cache of a logged-out browser.
			h.Set("Cache-Control", "no-store")
		}
		return next(c)
	}
}

func (s *server) recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				s.Logger.Error("panic in handler", "panic", r, "path", c.Request().URL.Path)
				err = errors.New("internal error")
			}
		}()
		return next(c)
	}
}

func (s *server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		r := c.Request()
		if r.Body != nil && r.Method != http.MethodGet && r.Method != http.MethodHead {
			limit := int64(formLimit)
			if r.URL.Path == "/import" {
				limit = importLimit
			}
			r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
		}
		return next(c)
	}
}

// loadSession finds the signed-in user and the key CSRF tokens are bound
// to: the session cookie, or for visitors a random pre-session cookie.
func (s *server) loadSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		if strings.HasPrefix(c.Request().URL.Path, "/static/") || c.Request().URL.Path == "/healthz" {
			return next(c)
		}
		if ck, err := c.Cookie(SessionCookie); err == nil && ck.Value != "" {
			u, err := s.Accounts.SessionUser(c.Request().Context(), ck.Value)
			switch {
			case err == nil:
				c.Set("user", u)
				c.Set("session", ck.Value)
				c.Set("csrfKey", ck.Value)
				return next(c)
			case errors.Is(err, account.ErrNoSession):
				s.clearCookie(c, SessionCookie)
			default:
				return err
			}
		}
		key := ""
		if ck, err := c.Cookie(csrfCookie); err == nil && len(ck.Value) >= 32 {
			key = ck.Value
		} else {
			key = account.NewToken()
			s.setCookie(c, csrfCookie, key, 0)
		}
		c.Set("csrfKey", key)
		return next(c)
	}
}

// checkCSRF refuses every state-changing request without the form token of
// this browser's session.
func (s *server) checkCSRF(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		switch c.Request().Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			return next(c)
		}
		key, _ := c.Get("csrfKey").(string)
		tok := c.FormValue(csrfField)
		if tok == "" {
			tok = c.Request().Header.Get("X-CSRF-Token")
		}
		if !s.Accounts.ValidCSRF(key, tok) {
			var mbe *http.MaxBytesError
			if _, err := c.FormValues(); errors.As(err, &mbe) {
				return errTooLarge
			}
			return s.render(c, http.StatusForbidden, "error.html", errorPage{
				Title:   "Form expired",
				Message: "This form has expired or did not come from this site. Go back, reload the page and try again.",
			})
		}
		return next(c)
	}
}

var errTooLarge = echo.NewHTTPError(http.StatusRequestEntityTooLarge, "The submitted data is too large.")

func (s *server) setCookie(c *echo.Context, name, value string, maxAge int) {
	c.SetCookie(&http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode}) // #nosec G124 -- Secure whenever the base URL is https (required in production)
}

func (s *server) clearCookie(c *echo.Context, name string) {
	c.SetCookie(&http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode}) // #nosec G124 -- Secure whenever the base URL is https (required in production)
}

func currentUser(c *echo.Context) *account.User {
	u, _ := c.Get("user").(*account.User)
	return u
}

func (s *server) requireUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		if currentUser(c) == nil {
			if c.Request().Method != http.MethodGet {
				return c.Redirect(http.StatusSeeOther, "/login")
			}
			return c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(c.Request().URL.RequestURI()))
		}
		return next(c)
	}
}

// requireConnection sends users without a usable grant to the connect page
// instead of letting each memory page fail on its own.
func (s *server) requireConnection(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		st, err := s.OAuth.Status(c.Request().Context(), currentUser(c).ID)
		if err != nil {
			return err
		}
		if !st.Connected {
			return s.render(c, http.StatusOK, "connect.html", connectPage{State: st, Needed: true})
		}
		c.Set("conn", st)
		return next(c)
	}
}

func connState(c *echo.Context) oauthclient.State {
	st, _ := c.Get("conn").(oauthclient.State)
	return st
}

// view is what every page template receives.
type view struct {
	User     *account.User
	CSRF     string
	Conn     oauthclient.State
	CanWrite bool
	Flash    string
	Path     string
	D        any
}

func (s *server) parseTemplates() error {
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return err
	}
	s.pages = map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimPrefix(n, "templates/")
		if base == "layout.html" {
			continue
		}
		t, err := template.New("layout.html").Funcs(s.funcs()).ParseFS(assets, "templates/layout.html", "templates/partials.tmpl", n)
		if err != nil {
			return err
		}
		s.pages[base] = t
	}
	return nil
}

// render executes a page into a buffer first, so a template error becomes
// an error page rather than half a page.
func (s *server) render(c *echo.Context, status int, page string, data any) error {
	t, ok := s.pages[page]
	if !ok {
		return errors.New("unknown page " + page)
	}
	v := view{User: currentUser(c), Path: c.Request().URL.Path, D: data}
	if key, _ := c.Get("csrfKey").(string); key != "" {
		v.CSRF = s.Accounts.CSRFToken(key)
	}
	if st, ok := c.Get("conn").(oauthclient.State); ok {
		v.Conn = st
		v.CanWrite = st.Has("memories:write")
	}
	v.Flash = flashMessage(c.QueryParam("m"))
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		return err
	}
	return c.HTMLBlob(status, buf.Bytes())
}

// flashMessages are the confirmations a redirect may ask for with ?m=;
// a fixed table so no text from the URL is ever shown.
var flashMessages = map[string]string{
	"created":      "Memory saved.",
	"updated":      "Memory updated.",
	"deleted":      "Memory deleted.",
	"permission":   "Permission changed.",
	"imported":     "Import complete.",
	"connected":    "Connected to the memory server.",
	"disconnected": "Disconnected from the memory server.",
	"password":     "Password changed.",
	"goodbye":      "Your account was deleted.",
	"signedup":     "Welcome! Connect to your memory server to get started.",
	"loggedout":    "You are logged out.",
}

func flashMessage(key string) string { return flashMessages[key] }

type errorPage struct {
	Title   string
	Message string
	Retry   bool // offer to try again (the memory server was unavailable)
}

// handleError turns errors from handlers into friendly pages.
func (s *server) handleError(c *echo.Context, err error) {
	if r, _ := echo.UnwrapResponse(c.Response()); r != nil && r.Committed {
		s.Logger.Error("error after response started", "path", c.Request().URL.Path, "error", err)
		return
	}
	status, page := s.classify(c, err)
	if rerr := s.render(c, status, "error.html", page); rerr != nil {
		s.Logger.Error("rendering error page", "error", rerr)
		_ = c.String(status, page.Message)
	}
}

// classify maps an error to a status and the page explaining it; it also
// records a refused access token so the next page offers to reconnect.
func (s *server) classify(c *echo.Context, err error) (int, errorPage) {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, memoryclient.ErrUnauthorized):
		if u := currentUser(c); u != nil {
			_ = s.OAuth.TokenRejected(c.Request().Context(), u.ID)
		}
		return http.StatusUnauthorized, errorPage{Title: "Please reconnect", Message: "The memory server no longer accepts this connection. Reconnect on the Connect page to continue."}
	case errors.Is(err, oauthclient.ErrReconnect):
		return http.StatusUnauthorized, errorPage{Title: "Please reconnect", Message: oauthclient.ErrReconnect.Error() + "."}
	case errors.Is(err, oauthclient.ErrNotConnected):
		return http.StatusConflict, errorPage{Title: "Not connected", Message: "Connect to your memory server first."}
	case errors.Is(err, memoryclient.ErrUnavailable), errors.Is(err, oauthclient.ErrUnavailable):
		s.Logger.Warn("memory server unavailable", "path", c.Request().URL.Path, "error", err)
		return http.StatusServiceUnavailable, errorPage{Title: "Memory server unavailable", Message: "The memory server did not answer in time. Nothing was lost; please try again in a moment.", Retry: true}
	case errors.Is(err, memoryclient.ErrNotFound):
		return http.StatusNotFound, errorPage{Title: "Not found", Message: "This memory does not exist, or you may not see it."}
	case errors.Is(err, memoryclient.ErrInsufficientScope):
		return http.StatusForbidden, errorPage{Title: "Not allowed", Message: "Your connection only allows reading. Reconnect with write access to change memories."}
	case errors.Is(err, memoryclient.ErrForbidden):
		return http.StatusForbidden, errorPage{Title: "Not allowed", Message: "You may not do that."}
	case errors.Is(err, memoryclient.ErrInvalid):
		return http.StatusBadRequest, errorPage{Title: "Not accepted", Message: err.Error()}
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, errorPage{Title: "Too large", Message: "The submitted data is too large."}
	}
	if code := echo.StatusCode(err); code != 0 && code < 500 {
		msg := http.StatusText(code)
		var he *echo.HTTPError
		if errors.As(err, &he) && he.Message != "" {
			msg = he.Message
		}
		if code == http.StatusNotFound {
			msg = "There is no page here."
		}
		return code, errorPage{Title: http.StatusText(code), Message: msg}
	}
	s.Logger.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "error", err)
	return http.StatusInternalServerError, errorPage{Title: "Something went wrong", Message: "An unexpected error occurred. It has been logged; please try again."}
}

// formError is the message to show above a re-rendered form for err, so
// the user's input is kept; ok is false for errors that need a full page.
func (s *server) formError(c *echo.Context, err error) (string, bool) {
	switch {
	case errors.Is(err, memoryclient.ErrInvalid), errors.Is(err, memoryclient.ErrForbidden):
		var te *memoryclient.ToolError
		if errors.As(err, &te) && te.Message != "" {
			return "The memory server did not accept this: " + te.Message, true
		}
		return "The memory server did not accept this input.", true
	case errors.Is(err, memoryclient.ErrUnavailable), errors.Is(err, oauthclient.ErrUnavailable),
		errors.Is(err, memoryclient.ErrUnauthorized), errors.Is(err, oauthclient.ErrReconnect),
		errors.Is(err, memoryclient.ErrInsufficientScope):
		_, page := s.classify(c, err)
		return page.Message + " Your input is kept below.", true
	}
	return "", false
}
