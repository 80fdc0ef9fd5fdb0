package web

import (
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"

	"picard.dev/shared"
)

// maxPromptLen bounds questions to personas.
const maxPromptLen = 2000

type personasPage struct {
	Personas []shared.Persona
	NextURL  string
	FirstURL string
}

func (s *server) listPersonas(c *echo.Context) error {
	cursor := c.QueryParam("cursor")
	page, err := s.conn(c).ListPersonas(c.Request().Context(), shared.PageArgs{Limit: 50, Cursor: cursor})
	if err != nil {
		return err
	}
	d := personasPage{Personas: page.Personas}
	if page.NextCursor != "" {
		d.NextURL = "/personas?cursor=" + url.QueryEscape(page.NextCursor)
	}
	if cursor != "" {
		d.FirstURL = "/personas"
	}
	return s.render(c, http.StatusOK, "personas.html", d)
}

type personaPage struct {
	UserID string
	Name   string
	Own    bool
	Items  []memoryItem // what the viewer can see of the persona
	Prompt string
	Answer *shared.QueryUserResult
	// AnswerHTML is the answer rendered as memory text is: Markdown,
	// sanitised, since a model's answer may quote memories verbatim.
	AnswerHTML template.HTML
	Sources    []memoryItem
	Error      string
	Asked      bool
	NoSource   bool
	// SettingsURL is the MCP server's page where users tune their own
	// persona; set on the user's own persona page.
	SettingsURL string
}

// personaSettingsURL is where the signed-in user tunes their persona: the
// account page of the MCP server, as the browser reaches it.
func (s *server) personaSettingsURL() string {
	if s.MCPServerURL == "" {
		return ""
	}
	return strings.TrimRight(s.MCPServerURL, "/") + "/account#persona"
}

func personaID(c *echo.Context) (string, error) {
	id := c.Param("user_id")
	if _, err := uuid.Parse(id); err != nil {
		return "", echo.ErrNotFound
	}
	return id, nil
}

// personaName is only for the heading; it comes from the directory link.
func personaName(c *echo.Context, id string) string {
	name := strings.TrimSpace(c.QueryParam("name"))
	if name == "" || utf8.RuneCountInString(name) > 100 {
		return id
	}
	return name
}

func (s *server) loadPersona(c *echo.Context, d *personaPage) error {
	d.Own = d.UserID != "" && d.UserID == connState(c).Subject
	args := shared.GetMemoriesArgs{UserID: d.UserID, Limit: pageSize}
	if d.Own || d.UserID == "" {
		// Own persona: show what others see, the public memories.
		args = shared.GetMemoriesArgs{Permission: shared.PermissionPublic, Limit: pageSize}
	}
	page, err := s.conn(c).GetMemories(c.Request().Context(), args)
	if err != nil {
		return err
	}
	for _, m := range page.Memories {
		d.Items = append(d.Items, s.item(c, m))
	}
	return nil
}

func (s *server) personaPage(c *echo.Context) error {
	id, err := personaID(c)
	if err != nil {
		return err
	}
	d := personaPage{UserID: id, Name: personaName(c, id)}
	if err := s.loadPersona(c, &d); err != nil {
		return err
	}
	if d.Own {
		d.SettingsURL = s.personaSettingsURL()
	}
	return s.render(c, http.StatusOK, "persona.html", d)
}

// myPersona shows the user what others can see of them and lets them ask
// their own persona.
func (s *server) myPersona(c *echo.Context) error {
	d := personaPage{UserID: connState(c).Subject, Name: "You", Own: true}
	if err := s.loadPersona(c, &d); err != nil {
		return err
	}
	if d.UserID == "" && len(d.Items) > 0 {
		d.UserID = d.Items[0].OwnerID
	}
	d.Own = true
	d.SettingsURL = s.personaSettingsURL()
	return s.render(c, http.StatusOK, "persona.html", d)
}

func (s *server) askPersona(c *echo.Context) error {
	id, err := personaID(c)
	if err != nil {
		return err
	}
	d := personaPage{UserID: id, Name: personaName(c, id), Prompt: strings.TrimSpace(c.FormValue("prompt")), Asked: true}
	if n := c.FormValue("name"); n != "" && utf8.RuneCountInString(n) <= 100 {
		d.Name = n
	}
	d.Own = id == connState(c).Subject
	if d.Own {
		d.SettingsURL = s.personaSettingsURL()
	}
	status := http.StatusOK
	switch {
	case d.Prompt == "":
		d.Error = "Type a question."
		status = http.StatusUnprocessableEntity
	case utf8.RuneCountInString(d.Prompt) > maxPromptLen:
		d.Error = "The question is too long."
		status = http.StatusUnprocessableEntity
	default:
		ans, err := s.conn(c).QueryUser(c.Request().Context(), shared.QueryUserArgs{UserID: id, Prompt: d.Prompt})
		if err != nil {
			msg, ok := s.formError(c, err)
			if !ok {
				return err
			}
			d.Error, status = msg, http.StatusServiceUnavailable
			if _, page := s.classify(c, err); !page.Retry {
				status = http.StatusUnprocessableEntity
			}
		} else {
			d.Answer = ans
			d.AnswerHTML = s.markdown.render(ans.Answer)
			for _, sc := range ans.Memories {
				it := s.item(c, sc.Memory)
				it.Score, it.HasScore = sc.Score, true
				d.Sources = append(d.Sources, it)
			}
			d.NoSource = len(ans.Memories) == 0
		}
	}
	return s.render(c, status, "persona.html", d)
}
