package oauth

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/labstack/echo/v5"

	"picard.dev/mcpserver/internal/user"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/style.css
var styleCSS []byte

var pageNames = []string{"login", "signup", "consent", "error", "account"}

var templateFuncs = template.FuncMap{
	"scopeText": func(s string) string {
		if d, ok := scopeDescriptions[s]; ok {
			return d
		}
		return s
	},
	"date": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") },
	"datep": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04 MST")
	},
}

// parsePages builds one template set per page: the shared layout plus the
// page's "content".
func parsePages() (map[string]*template.Template, error) {
	layout, err := template.New("layout.html").Funcs(templateFuncs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("oauth templates: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := layout.Clone()
		if err != nil {
			return nil, err
		}
		if pages[name], err = t.ParseFS(templateFS, "templates/"+name+".html"); err != nil {
			return nil, fmt.Errorf("oauth templates: %w", err)
		}
	}
	return pages, nil
}

// view is what every page template gets; Page holds the page's own data.
type view struct {
	Title  string
	User   *user.User // the signed-in user, if any
	CSRF   string     // the token forms of this page must send back
	Error  string
	Notice string
	Page   any
}

func (s *Server) render(c *echo.Context, status int, name string, v view) error {
	var buf bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&buf, "layout.html", v); err != nil {
		s.log.ErrorContext(c.Request().Context(), "rendering page", "page", name, "err", err)
		return c.String(http.StatusInternalServerError, "internal error")
	}
	return c.HTMLBlob(status, buf.Bytes())
}

// errorPage shows an error that must not be sent to a client's redirect
// URI (RFC 6749 §4.1.2.1: an invalid client or redirect URI).
func (s *Server) errorPage(c *echo.Context, status int, msg string) error {
	return s.render(c, status, "error", view{Title: "Something went wrong", Error: msg})
}

// internalPage logs err and shows a generic error page.
func (s *Server) internalPage(c *echo.Context, err error) error {
	s.log.ErrorContext(c.Request().Context(), "page failed", "path", c.Request().URL.Path, "err", err)
	msg := "Something went wrong on our side. Please try again."
	if !s.prod {
		msg += " (" + err.Error() + ")"
	}
	return s.errorPage(c, http.StatusInternalServerError, msg)
}

func (s *Server) handleCSS(c *echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=3600")
	return c.Blob(http.StatusOK, "text/css; charset=utf-8", styleCSS)
}
