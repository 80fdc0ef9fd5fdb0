package oauth

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"

	"picard.dev/mcpserver/internal/memory"
	"picard.dev/mcpserver/internal/persona"
)

// PersonaSettings reads and saves a user's persona settings for the
// account page; *persona.Service implements it. It is optional: without it
// the page has no Persona section.
type PersonaSettings interface {
	Settings(ctx context.Context, userID uuid.UUID) (persona.Settings, error)
	UpdateSettings(ctx context.Context, userID uuid.UUID, s persona.Settings) (persona.Settings, error)
	Limits() persona.Limits
}

// personaForm is the Persona section of the account page, kept as typed so
// a rejected form is shown again unchanged, with a message per field.
type personaForm struct {
	Description   string
	AnswersOthers bool
	Temperature   string // empty: the operator's default
	MaxTokens     string // empty: the operator's default
	Errors        map[string]string
	Limits        persona.Limits
	MaxChars      int
}

func newPersonaForm(st persona.Settings, lim persona.Limits) *personaForm {
	f := &personaForm{Description: st.Description, AnswersOthers: st.AnswersOthers, Limits: lim, MaxChars: persona.MaxDescriptionChars}
	if st.Temperature != nil {
		f.Temperature = strconv.FormatFloat(*st.Temperature, 'f', -1, 64)
	}
	if st.MaxTokens != nil {
		f.MaxTokens = strconv.Itoa(*st.MaxTokens)
	}
	return f
}

func personaFormFrom(form url.Values, lim persona.Limits) *personaForm {
	return &personaForm{
		Description:   form.Get("description"),
		AnswersOthers: form.Get("answers_others") == "yes",
		Temperature:   strings.TrimSpace(form.Get("temperature")),
		MaxTokens:     strings.TrimSpace(form.Get("max_tokens")),
		Limits:        lim,
		MaxChars:      persona.MaxDescriptionChars,
	}
}

func (f *personaForm) fail(field, format string, a ...any) {
	if f.Errors == nil {
		f.Errors = map[string]string{}
	}
	if _, dup := f.Errors[field]; !dup {
		f.Errors[field] = fmt.Sprintf(format, a...)
	}
}

// settings checks every field, so one answer names all that is wrong; the
// persona service checks again when saving.
func (f *personaForm) settings() (persona.Settings, bool) {
	st := persona.Settings{Description: strings.TrimSpace(f.Description), AnswersOthers: f.AnswersOthers}
	switch n := utf8.RuneCountInString(st.Description); {
	case !utf8.ValidString(st.Description):
		f.fail("description", "The description is not valid text.")
	case n > f.MaxChars:
		f.fail("description", "The description has %d characters; the limit is %d.", n, f.MaxChars)
	}
	if f.Temperature != "" {
		t, err := strconv.ParseFloat(f.Temperature, 64)
		if err != nil || math.IsNaN(t) || t < 0 || t > f.Limits.MaxTemperature {
			f.fail("temperature", "The temperature must be a number from 0 to %g, or empty for the default.", f.Limits.MaxTemperature)
		} else {
			st.Temperature = &t
		}
	}
	if f.MaxTokens != "" {
		n, err := strconv.Atoi(f.MaxTokens)
		if err != nil || n < 1 || n > f.Limits.MaxTokens {
			f.fail("max_tokens", "The maximum length must be a whole number of tokens from 1 to %d, or empty for the default.", f.Limits.MaxTokens)
		} else {
			st.MaxTokens = &n
		}
	}
	return st, len(f.Errors) == 0
}

// personaFields are the form fields the persona service may name in an
// argument error.
var personaFields = map[string]bool{"description": true, "temperature": true, "max_tokens": true}

const msgPersonaNotSaved = "Your persona settings were not saved: fix the fields marked below."

func (s *Server) handlePersona(c *echo.Context) error {
	if s.personas == nil {
		return s.errorPage(c, http.StatusNotFound, "Persona settings are not available on this server.")
	}
	form, sess, u, err := s.accountForm(c)
	if u == nil {
		return err
	}
	ctx := c.Request().Context()
	f := personaFormFrom(form, s.personas.Limits())
	st, ok := f.settings()
	if !ok {
		return s.renderAccountWith(c, http.StatusBadRequest, sess, u, view{Error: msgPersonaNotSaved}, "", f)
	}
	_, err = s.personas.UpdateSettings(ctx, u.ID, st)
	var ae *memory.ArgumentError
	if errors.As(err, &ae) {
		field := ae.Arg
		if !personaFields[field] {
			field = "description"
		}
		f.fail(field, "The %s %s.", strings.ReplaceAll(field, "_", " "), ae.Msg)
		return s.renderAccountWith(c, http.StatusBadRequest, sess, u, view{Error: msgPersonaNotSaved}, "", f)
	}
	if err != nil {
		return s.internalPage(c, err)
	}
	s.record(ctx, u.ID, "web", "account:persona", "ok")
	return c.Redirect(http.StatusSeeOther, "/account?notice=persona#persona")
}
