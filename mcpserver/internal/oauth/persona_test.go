package oauth_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"

	"picard.dev/mcpserver/internal/oauth"
	"picard.dev/mcpserver/internal/persona"
)

// lazyPersonas lets the harness's options name the persona service before
// the database it stores into exists.
type lazyPersonas struct{ svc *persona.Service }

func (l *lazyPersonas) Settings(ctx context.Context, id uuid.UUID) (persona.Settings, error) {
	return l.svc.Settings(ctx, id)
}

func (l *lazyPersonas) UpdateSettings(ctx context.Context, id uuid.UUID, s persona.Settings) (persona.Settings, error) {
	return l.svc.UpdateSettings(ctx, id, s)
}

func (l *lazyPersonas) Limits() persona.Limits { return l.svc.Limits() }

var _ oauth.PersonaSettings = (*persona.Service)(nil)

func TestPersonaSettings(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		lp := &lazyPersonas{}
		h := newUnstarted(t, b, func(o *oauth.Options) { o.Personas = lp }, func(h *harness) {
			lp.svc = persona.New(persona.Options{Settings: h.db.PersonaSettings(),
				Limits: persona.Limits{MaxTemperature: 0.8, MaxTokens: 300}})
		})
		h.http.Start()
		u := h.newUser("persona@example.com", false)
		br := h.browser()
		br.login(u.Email)
		stored := func() persona.Settings {
			t.Helper()
			st, err := lp.svc.Settings(h.ctx, u.ID)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}

		// The section shows the defaults and the operator's limits.
		_, page := br.get(h.issuer + "/account")
		for _, want := range []string{
			`id="persona"`, `action="/account/persona"`, `name="answers_others" value="yes" checked`,
			"0 to 0.8", "default 0.3", "1 to 300", "default 300", `max="0.8"`, `max="300"`, `maxlength="500"`,
		} {
			if !strings.Contains(page, want) {
				t.Errorf("account page lacks %q", want)
			}
		}

		// A valid form is saved; the unticked box turns answers to others off.
		resp, page := br.accountForm("/account/persona", url.Values{
			"description": {"  A Bach fan who runs.  "}, "temperature": {"0.5"}, "max_tokens": {"200"},
		})
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Your persona settings were saved.") {
			t.Fatalf("save: %d %s", resp.StatusCode, errorDivRe.FindString(page))
		}
		st := stored()
		if st.Description != "A Bach fan who runs." || st.AnswersOthers || st.Temperature == nil || *st.Temperature != 0.5 || st.MaxTokens == nil || *st.MaxTokens != 200 {
			t.Fatalf("stored %+v", st)
		}
		for _, want := range []string{">A Bach fan who runs.</textarea>", `value="0.5"`, `value="200"`} {
			if !strings.Contains(page, want) {
				t.Errorf("saved value %q not shown", want)
			}
		}
		if strings.Contains(page, `name="answers_others" value="yes" checked`) {
			t.Error("answers_others shown ticked after unticking it")
		}

		// Every bad field is named, the input is kept, and nothing is saved.
		long := strings.Repeat("é", 501)
		resp, page = br.accountForm("/account/persona", url.Values{
			"description": {long}, "answers_others": {"yes"}, "temperature": {"0.9"}, "max_tokens": {"lots"},
		})
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("invalid form: %d", resp.StatusCode)
		}
		for _, want := range []string{
			`id="persona_description_error">The description has 501 characters; the limit is 500.`,
			`id="persona_temperature_error">The temperature must be a number from 0 to 0.8`,
			`id="persona_max_tokens_error">The maximum length must be a whole number of tokens from 1 to 300`,
			`value="lots"`, `value="0.9"`, `name="answers_others" value="yes" checked`,
		} {
			if !strings.Contains(html.UnescapeString(page), want) {
				t.Errorf("invalid form: page lacks %q", want)
			}
		}
		if got := stored(); got.Description != st.Description || got.AnswersOthers || *got.Temperature != 0.5 || *got.MaxTokens != 200 {
			t.Fatalf("an invalid form changed the settings: %+v", got)
		}
		for _, tc := range []url.Values{
			{"temperature": {"-0.1"}}, {"temperature": {"NaN"}}, {"max_tokens": {"0"}}, {"max_tokens": {"301"}}, {"max_tokens": {"2.5"}},
		} {
			if resp, _ := br.accountForm("/account/persona", tc); resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%v: %d, want 400", tc, resp.StatusCode)
			}
		}

		// Empty model parameters return to the operator's defaults.
		if resp, _ := br.accountForm("/account/persona", url.Values{"answers_others": {"yes"}, "temperature": {""}, "max_tokens": {""}}); resp.StatusCode != http.StatusOK {
			t.Fatalf("reset: %d", resp.StatusCode)
		}
		if got := stored(); got.Description != "" || !got.AnswersOthers || got.Temperature != nil || got.MaxTokens != nil {
			t.Fatalf("reset stored %+v", got)
		}

		// A forged form changes nothing.
		resp, _ = br.post(h.issuer+"/account/persona", url.Values{"csrf_token": {"forged"}, "description": {"evil"}})
		if resp.StatusCode != http.StatusForbidden || stored().Description != "" {
			t.Fatalf("forged persona form: %d %+v", resp.StatusCode, stored())
		}
	})
}

func TestPersonaSettingsAbsent(t *testing.T) {
	h := newHarness(t, backends()[0])
	u := h.newUser("nopersona@example.com", false)
	br := h.browser()
	br.login(u.Email)
	_, page := br.get(h.issuer + "/account")
	if strings.Contains(page, "/account/persona") {
		t.Fatal("persona section shown without a persona service")
	}
	f := hiddenFields(page, "/account/profile")
	if resp, _ := br.post(h.issuer+"/account/persona", f); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("POST /account/persona without a persona service: %d", resp.StatusCode)
	}
}
